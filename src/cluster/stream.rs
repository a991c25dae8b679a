//! The one JetStream stream of a cluster: lines on `supergrep.lines.>` and markers on
//! `supergrep.markers`, limits retention (every hub reads every line; nothing is
//! removed by being read), a duplicate window in which a re-sent batch (same
//! `Nats-Msg-Id`) is dropped. [`ensure`] creates it when missing and refuses, saying
//! how, one that exists with another shape.

use std::time::Duration;

use async_nats::jetstream::stream::{Config, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, ErrorCode};

use super::config::Validated;
use super::subject::{LINES_ALL, MARKERS};

/// How long JetStream remembers message ids: a batch re-sent within it is dropped.
/// An agent re-sends within seconds of a reconnect; two minutes is JetStream's default.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("NATS at {servers}: asking JetStream for stream {name}: {why}")]
    JetStream {
        servers: String,
        name: String,
        why: String,
    },
    #[error(
        "stream {name} on NATS at {servers} has another shape than [nats] asks for: {}; \
         change [nats] or the stream (nats stream edit/rm)",
        .differences.join("; ")
    )]
    Shape {
        servers: String,
        name: String,
        differences: Vec<String>,
    },
}

/// The stream `cfg` asks for.
pub fn wanted(cfg: &Validated) -> Config {
    Config {
        name: cfg.stream.clone(),
        subjects: vec![LINES_ALL.into(), MARKERS.into()],
        retention: RetentionPolicy::Limits,
        storage: StorageType::File,
        num_replicas: cfg.replicas,
        max_age: cfg.max_age.unwrap_or_default(),
        max_bytes: cfg.max_bytes.unwrap_or(-1),
        duplicate_window: DUPLICATE_WINDOW,
        ..Config::default()
    }
}

/// How `actual` differs from `wanted` in what matters to supergrep, in words.
pub fn differences(wanted: &Config, actual: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut ws = wanted.subjects.clone();
    let mut a = actual.subjects.clone();
    ws.sort();
    a.sort();
    if ws != a {
        out.push(format!("subjects {a:?}, not {ws:?}"));
    }
    if wanted.num_replicas != actual.num_replicas {
        out.push(format!(
            "{} replicas, not {}",
            actual.num_replicas, wanted.num_replicas
        ));
    }
    if wanted.retention != actual.retention {
        out.push(format!(
            "retention {:?}, not {:?}",
            actual.retention, wanted.retention
        ));
    }
    if wanted.max_age != actual.max_age {
        out.push(format!(
            "max_age {:?}, not {:?}",
            actual.max_age, wanted.max_age
        ));
    }
    // JetStream writes "no limit" as -1 or 0.
    let limit = |b: i64| (b > 0).then_some(b);
    if limit(wanted.max_bytes) != limit(actual.max_bytes) {
        out.push(format!(
            "max_bytes {}, not {}",
            actual.max_bytes, wanted.max_bytes
        ));
    }
    out
}

/// Creates the stream when it is missing; checks its shape when it exists.
pub async fn ensure(
    js: &jetstream::Context,
    cfg: &Validated,
) -> Result<jetstream::stream::Stream, StreamError> {
    let want = wanted(cfg);
    let failed = |why: String| StreamError::JetStream {
        servers: cfg.display(),
        name: cfg.stream.clone(),
        why,
    };
    match js.get_stream(&cfg.stream).await {
        Ok(stream) => {
            let differences = differences(&want, &stream.cached_info().config);
            if differences.is_empty() {
                Ok(stream)
            } else {
                Err(StreamError::Shape {
                    servers: cfg.display(),
                    name: cfg.stream.clone(),
                    differences,
                })
            }
        }
        Err(e) if is_not_found(&e) => {
            tracing::info!("creating JetStream stream {}", cfg.stream);
            js.create_stream(want)
                .await
                .map_err(|e| failed(e.to_string()))
        }
        Err(e) => Err(failed(e.to_string())),
    }
}

fn is_not_found(e: &jetstream::context::GetStreamError) -> bool {
    matches!(
        e.kind(),
        jetstream::context::GetStreamErrorKind::JetStream(j)
            if j.error_code() == ErrorCode::STREAM_NOT_FOUND
    )
}
