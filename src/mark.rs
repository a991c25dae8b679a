//! `supergrep mark --hub ws://HOST:PORT TEXT`: announces an event (a deploy, say) to
//! every viewer of a hub, through its `POST /api/markers`; `mark --nats URL TEXT`
//! publishes it to the cluster's stream instead (`supergrep.markers`).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cli::MarkArgs;
use crate::client::{EndpointError, HubEndpoint};
use crate::cluster::connect::ConnectError;
use crate::cluster::marker::MarkerMessage;
use crate::cluster::NatsConfigError;

/// How long a hub or JetStream has to take the marker.
const PATIENCE: Duration = Duration::from_secs(10);

/// Why a marker was not sent, in words a shell user can act on.
#[derive(Debug, thiserror::Error)]
pub enum MarkError {
    #[error(transparent)]
    Hub(#[from] EndpointError),
    #[error("give the hub (--hub URL) or NATS (--nats URL)")]
    NoTarget,
    #[error("talking to the hub at {authority}: {why}")]
    Io { authority: String, why: String },
    #[error("the {0} did not answer in 10 s")]
    Timeout(String),
    #[error("the hub refused the marker: {status_line}: {reason}")]
    Refused { status_line: String, reason: String },
    #[error("bad marker: empty text")]
    Empty,
    #[error(transparent)]
    NatsConfig(#[from] NatsConfigError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("NATS at {servers} did not take the marker: {why}")]
    Publish { servers: String, why: String },
}

/// Sends one marker, to the hub or (with `--nats`) to the cluster's stream.
pub async fn send(args: &MarkArgs) -> Result<(), MarkError> {
    if args.cluster.given() {
        return publish(args).await;
    }
    let Some(hub) = args.hub.as_deref() else {
        return Err(MarkError::NoTarget);
    };
    // The URL given to agents or --connect works here too.
    let url = hub.trim_end_matches('/');
    let url = url
        .strip_suffix("/ws")
        .or(url.strip_suffix("/agent"))
        .unwrap_or(url);
    let hub = HubEndpoint::new(url, "", None, args.tls_ca.as_deref(), "--hub")?;
    let (host, port) = hub.authority();
    let authority = format!("{host}:{port}");
    let body = serde_json::json!({ "text": args.text.join(" ") }).to_string();
    let auth = args
        .token
        .as_deref()
        .map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    // The hub's path prefix, if it sits behind a proxy.
    let prefix = hub.display().splitn(4, '/').nth(3).unwrap_or("");
    let prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("/{prefix}")
    };
    let request = format!(
        "POST {prefix}/api/markers HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n{auth}Connection: close\r\n\r\n{body}",
        body.len()
    );
    let exchange = async {
        let mut stream = crate::tls::connect(&host, port, hub.tls()).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.take(64 * 1024).read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&response).into_owned())
    };
    let response = match tokio::time::timeout(PATIENCE, exchange).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            return Err(MarkError::Io {
                authority,
                why: e.to_string(),
            })
        }
        Err(_) => return Err(MarkError::Timeout(format!("hub at {authority}"))),
    };
    let status_line = response.lines().next().unwrap_or("");
    let status = status_line.split(' ').nth(1).unwrap_or("");
    if status.starts_with('2') {
        return Ok(());
    }
    let reason = response.split("\r\n\r\n").nth(1).unwrap_or("").trim();
    Err(MarkError::Refused {
        status_line: status_line.to_owned(),
        reason: reason.to_owned(),
    })
}

/// `mark --nats`: the marker on `supergrep.markers`, taken once JetStream acks it.
async fn publish(args: &MarkArgs) -> Result<(), MarkError> {
    let settings = args.cluster.to_config(args.tls_ca.clone()).validated()?;
    let ts = crate::line::format_ts(std::time::SystemTime::now());
    let marker = MarkerMessage::new(ts, &args.text.join(" ")).ok_or(MarkError::Empty)?;
    let servers = settings.display();
    let failed = |why: String| MarkError::Publish {
        servers: servers.clone(),
        why,
    };
    let sent = async {
        let client = crate::cluster::connect::connect(&settings, "supergrep mark").await?;
        let js = async_nats::jetstream::new(client);
        js.publish(crate::cluster::subject::MARKERS, marker.to_json().into())
            .await
            .map_err(|e| failed(e.to_string()))?
            .await
            .map_err(|e| failed(e.to_string()))?;
        Ok(())
    };
    match tokio::time::timeout(PATIENCE, sent).await {
        Ok(r) => r,
        Err(_) => Err(MarkError::Timeout(format!("NATS at {servers}"))),
    }
}
