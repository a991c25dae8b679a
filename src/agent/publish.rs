//! `supergrep agent --nats URL[,URL] PATH…`: the same tailer, its batches published to
//! JetStream (`supergrep.lines.<set>.<host>`, see [`crate::cluster::lines`]) instead of
//! shipped to a hub.
//!
//! One batch is in flight at a time and the next goes only after JetStream's ack: a
//! batch lost while a node dies is sent again before any later one, so each file's
//! lines land in the stream in order (pipelining could store a later batch before a
//! lost earlier one). A re-sent batch has the same `Nats-Msg-Id` and JetStream drops it
//! if it had stored it. The batches wait in the same bounded buffer as for a hub; when
//! it is full the agent stops reading and the rest waits in the files. `--state-file`
//! moves only on an ack.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::publish::PublishAck;

use super::{save_state, start_tailer, BACKOFF_MAX, BACKOFF_MIN, MAX_PENDING_BYTES, SAVE_EVERY};
use crate::cli::AgentArgs;
use crate::cluster::config::Validated;
use crate::cluster::connect::{connect, ConnectError};
use crate::cluster::lines::LinesMessage;
use crate::exit::UsageError;
use crate::line::format_ts;
use crate::source::glob::Target;
use crate::source::tail::Resume;
use crate::source::{EventReceiver, SourceEvent};

/// Below NATS's default `max_payload` (1 MiB) with room for the headers.
const READ_CHUNK: usize = 256 << 10;
/// How long to wait for JetStream's ack of one batch before sending it again.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

struct Pending {
    message: LinesMessage,
    resume: (PathBuf, Resume),
}

type InFlight = Pin<Box<dyn Future<Output = Result<PublishAck, PublishError>> + Send>>;

struct Publisher {
    settings: Validated,
    pending: VecDeque<Pending>,
    pending_bytes: usize,
    acked: HashMap<PathBuf, Resume>,
    state_file: Option<PathBuf>,
    dirty: bool,
}

pub(super) async fn run(
    args: &AgentArgs,
    name: String,
    resume: HashMap<PathBuf, Resume>,
    targets: Vec<Target>,
) -> anyhow::Result<()> {
    let settings = args
        .cluster
        .to_config(args.tls_ca.clone())
        .validated()
        .map_err(|e| UsageError(e.to_string()))?;
    let (mut rx, tailing) =
        start_tailer(targets, name.clone(), &args.set, resume.clone(), READ_CHUNK)?;
    let mut publisher = Publisher {
        settings,
        pending: VecDeque::new(),
        pending_bytes: 0,
        acked: resume,
        state_file: args.state_file.clone(),
        dirty: false,
    };
    let result = publisher.publish(&name, &mut rx).await;
    // First, so that a tailer slow to end cannot cost what JetStream acknowledged.
    publisher.save();
    tailing.end(rx).await;
    result
}

impl Publisher {
    async fn publish(&mut self, name: &str, rx: &mut EventReceiver) -> anyhow::Result<()> {
        let mut stop = std::pin::pin!(crate::signals::terminated());
        let mut tail_done = false;
        // Connect, following into the buffer meanwhile. Once connected, the client
        // reconnects by itself; the batches wait here until acknowledged.
        let mut backoff = BACKOFF_MIN;
        let client = loop {
            // A server that never answers must not hold up a SIGTERM.
            let client_name = format!("supergrep agent {name}");
            let attempt = tokio::select! {
                c = connect(&self.settings, &client_name) => c,
                _ = stop.as_mut() => return Ok(()),
            };
            match attempt {
                Ok(c) => break c,
                Err(e @ ConnectError::Unreachable { .. }) => crate::say!(
                    "supergrep agent: {e}; retrying in {:.1}s",
                    backoff.as_secs_f64()
                ),
                // Wrong credentials, a bad file: trying again will not help.
                Err(e) => return Err(UsageError(format!("supergrep agent: {e}")).into()),
            }
            let until = tokio::time::Instant::now() + crate::client::jitter(backoff);
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => break,
                    _ = stop.as_mut() => return Ok(()),
                    event = rx.recv(), if self.has_room() && !tail_done => match event {
                        Some(e) => self.take(e, name),
                        None => tail_done = true,
                    },
                }
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        };
        crate::say!(
            "supergrep agent: publishing to NATS at {} as {name}",
            self.settings.display()
        );
        let js = async_nats::jetstream::ContextBuilder::new()
            .timeout(ACK_TIMEOUT)
            .build(client);
        let mut in_flight: Option<InFlight> = None;
        let mut retry_at: Option<tokio::time::Instant> = None;
        let mut backoff = BACKOFF_MIN;
        // What was said of the last refusal: each kind said once, not per retry.
        let mut said: Option<String> = None;
        let mut save = tokio::time::interval(SAVE_EVERY);
        loop {
            if tail_done && self.pending.is_empty() {
                return Ok(());
            }
            if in_flight.is_none() && retry_at.is_none() {
                if let Some(front) = self.pending.front() {
                    let (js, m) = (js.clone(), front.message.clone());
                    in_flight = Some(Box::pin(async move {
                        js.publish_with_headers(m.subject, m.headers, m.payload)
                            .await?
                            .await
                    }));
                }
            }
            tokio::select! {
                _ = stop.as_mut() => return Ok(()),
                event = rx.recv(), if self.has_room() && !tail_done => match event {
                    Some(e) => self.take(e, name),
                    None => tail_done = true,
                },
                ack = async {
                    match in_flight.as_mut() {
                        Some(f) => f.await,
                        None => std::future::pending().await,
                    }
                }, if in_flight.is_some() => {
                    in_flight = None;
                    match ack {
                        Ok(_) => {
                            self.acknowledged();
                            backoff = BACKOFF_MIN;
                            said = None;
                        }
                        Err(e) => {
                            let why = match e.kind() {
                                PublishErrorKind::StreamNotFound => format!(
                                    "no JetStream stream on NATS at {} takes {} (create one with the \
                                     subjects supergrep.lines.> and supergrep.markers: see the README)",
                                    self.settings.display(),
                                    self.pending.front().map_or("", |p| p.message.subject.as_str())
                                ),
                                PublishErrorKind::MaxPayloadExceeded => {
                                    return Err(UsageError(format!(
                                        "supergrep agent: a batch is larger than the NATS servers at {} take \
                                         (max_payload); raise it to at least 1 MiB",
                                        self.settings.display()
                                    ))
                                    .into());
                                }
                                // A full stream, a message or storage limit: the
                                // agent stops shipping until it is mended, so say it.
                                _ => format!(
                                    "NATS at {} did not store a batch: {e}",
                                    self.settings.display()
                                ),
                            };
                            if said.as_deref() != Some(why.as_str()) {
                                crate::say!("supergrep agent: {why}; retrying");
                                said = Some(why);
                            }
                            retry_at = Some(tokio::time::Instant::now() + crate::client::jitter(backoff));
                            backoff = (backoff * 2).min(BACKOFF_MAX);
                        }
                    }
                }
                _ = async {
                    match retry_at {
                        Some(t) => tokio::time::sleep_until(t).await,
                        None => std::future::pending().await,
                    }
                }, if retry_at.is_some() => {
                    retry_at = None;
                }
                _ = save.tick() => self.save(),
            }
        }
    }

    fn has_room(&self) -> bool {
        self.pending_bytes < MAX_PENDING_BYTES
    }

    fn take(&mut self, event: SourceEvent, host: &str) {
        // Only lines travel through NATS: the hubs see a file when its lines come.
        let SourceEvent::Lines(b) = event else { return };
        let Some(origin) = b.origin else { return };
        let message = LinesMessage::new(
            host,
            &b.stream.set,
            &b.stream.path,
            &origin,
            &format_ts(b.ts),
            b.bytes,
        );
        self.pending_bytes += message.len();
        self.pending.push_back(Pending {
            message,
            resume: (PathBuf::from(&b.stream.path), Resume::delivered(&origin)),
        });
    }

    /// JetStream has the oldest batch (stored now, or before: a duplicate).
    fn acknowledged(&mut self) {
        if let Some(p) = self.pending.pop_front() {
            self.pending_bytes -= p.message.len();
            self.acked.insert(p.resume.0, p.resume.1);
            self.dirty = true;
        }
    }

    fn save(&mut self) {
        let Some(path) = &self.state_file else { return };
        if self.dirty && save_state(path, &mut self.acked) {
            self.dirty = false;
        }
    }
}
