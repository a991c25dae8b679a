//! Agent ingest, a source: one agent connected to the hub's `/agent` endpoint, its
//! lines into ingest like any local tailer's, each batch once. The hub remembers,
//! per stream, how far into which file (device, inode) it has lines ([`received`]),
//! and drops a batch it already has (an agent re-sends what was not acknowledged
//! when the connection dropped). The HTTP side only upgrades the connection and
//! hands it over as a [`Link`]: this file knows no axum.
//!
//! Streams belong to their source. An agent writes only `NAME:PATH` streams of its
//! own name, which may not be the hub's (its local files are `HOST:PATH`), and never
//! the syslog input's (`HOST:syslog:TAG`, set `syslog`); so no agent can write into,
//! or make vanish by disconnecting, a stream of the hub's files or of syslog. A
//! refused stream gets a `stream_refused` error once; its batches are acknowledged
//! (the agent must not keep them forever) and dropped, counted in `/metrics`. Nor
//! does an agent date its lines: their time is when the hub received them, unless
//! the config says `trust_agent_time`.
//!
//! [`received`]: super::received

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use super::received::ReceivedFiles;
use super::{EventSender, SourceEvent};
use crate::hub::Hub;
use crate::line::{cap_long_lines, owned_slice, Origin, ReadBatch, Stream};
use crate::protocol::{code, AgentMsg, HubMsg, VERSION};
use crate::shutdown::Handle;

const HELLO_WITHIN: Duration = Duration::from_secs(10);
const SILENT_FOR: Duration = Duration::from_secs(90);
/// Streams one agent may have (a glob over a huge tree is refused past this).
const MAX_STREAMS: usize = 10_000;
/// New streams one agent may add in a minute.
const MAX_NEW_STREAMS_PER_MINUTE: u32 = 1_000;
/// Longest path an agent's stream may have (Linux's PATH_MAX).
const MAX_PATH_BYTES: usize = 4096;

/// What every agent's session shares: where lines go, how far the hub has each
/// agent's files, and the hub's agent names and counters.
pub struct AgentIngest {
    hub: Arc<Hub>,
    out: EventSender,
    /// How far the hub has each agent's files (agents send batches again); it
    /// outlives sessions, as a re-send comes on the next connection.
    received: ReceivedFiles,
    /// Agents' line times are kept (else the hub's receive time).
    trust_agent_time: bool,
    max_line: usize,
    connected: AtomicUsize,
}

impl AgentIngest {
    /// Agents' lines go to `out`, the same ingest as the local tailers'; lines are
    /// cut at `max_line` bytes as a tailer's are.
    pub fn new(
        hub: Arc<Hub>,
        out: EventSender,
        trust_agent_time: bool,
        max_line: usize,
    ) -> AgentIngest {
        AgentIngest {
            hub,
            out,
            received: ReceivedFiles::default(),
            trust_agent_time,
            max_line,
            connected: AtomicUsize::new(0),
        }
    }

    /// Agents connected now (past their hello and name claim).
    pub fn connected(&self) -> usize {
        self.connected.load(Ordering::Relaxed)
    }
}

/// One frame from an agent, as the session reads it.
pub enum Frame {
    /// A text frame's bytes (UTF-8, as the WebSocket layer checked).
    Text(Bytes),
    Binary(Bytes),
    Close,
    /// A ping or pong: nothing for the session.
    Control,
}

/// The link's peer is gone (or the frame could not go out).
#[derive(Debug)]
pub struct LinkClosed;

/// An agent's connection, as the HTTP side hands it over once upgraded.
pub trait Link: Send {
    /// The next frame; `None` when the connection ended or broke.
    fn recv(&mut self) -> impl Future<Output = Option<Frame>> + Send;
    /// Sends one text frame.
    fn send_text(&mut self, text: String) -> impl Future<Output = Result<(), LinkClosed>> + Send;
    /// Sends the close frame of a hub that shuts down.
    fn going_away(&mut self) -> impl Future<Output = ()> + Send;
}

/// Why an agent's hello is refused (told to it as `bad_request`).
#[derive(Debug, thiserror::Error)]
pub enum HelloError {
    #[error("an agent must start with agent_hello")]
    NotHello,
    #[error("this hub speaks protocol {VERSION}, the agent {0}")]
    Version(u32),
    #[error("the agent's name must be 1-255 characters without ':' or control characters")]
    BadName,
    #[error(
        "the name {name:?} is the hub's own (its local files are {hub_host}:PATH): \
         start the agent with another --name"
    )]
    HubsName { name: String, hub_host: String },
    #[error("malformed agent_hello: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// One agent's session, from its hello to its last stream removed. `shutdown` is
/// held until then.
pub async fn run(mut link: impl Link, agents: Arc<AgentIngest>, shutdown: Handle) {
    let refused = |code: &str, message: String| HubMsg::Error {
        code: code.into(),
        message,
    };
    // An agent still to say hello is a session too: it gets its close frame.
    let hello = tokio::select! {
        hello = hello(&mut link) => Some(hello),
        () = shutdown.stopping() => None,
    };
    let Some(hello) = hello else {
        link.going_away().await;
        return;
    };
    let name = match hello {
        Ok(name) => name,
        Err(why) => {
            let _ = send(&mut link, &refused(code::BAD_REQUEST, why.to_string())).await;
            return;
        }
    };
    // Held until this agent's streams are removed (the end of this function), so
    // the next agent of the name adds them after.
    let _name = match agents.hub.claim_agent_name(&name) {
        Ok(claim) => claim,
        Err(since) => {
            let why = format!(
                "an agent named {name:?} is connected already (since {}); the hub takes \
                 one agent of a name at a time: give this one another --name",
                crate::line::format_ts(since)
            );
            tracing::warn!("refused an agent: {why}");
            let _ = send(&mut link, &refused(code::NAME_IN_USE, why)).await;
            return;
        }
    };
    let welcome = HubMsg::Welcome {
        version: VERSION,
        server: format!("supergrep {}", env!("CARGO_PKG_VERSION")),
        // The upgrade accepts them (see the server's `/agent`).
        unmasked_lines: true,
    };
    if send(&mut link, &welcome).await.is_err() {
        return;
    }
    tracing::info!(agent = %name, "agent connected");
    agents.connected.fetch_add(1, Ordering::Relaxed);
    let mut streams = AgentStreams::default();
    let _ = serve(&mut link, &agents, &name, &mut streams, &shutdown).await;
    // Its streams go with it (and come back when it reconnects).
    for stream in streams.known.into_values().flatten() {
        let _ = to_ingest(&agents, SourceEvent::StreamRemoved(stream)).await;
    }
    agents.connected.fetch_sub(1, Ordering::Relaxed);
    tracing::info!(agent = %name, "agent disconnected");
}

/// The agent's name, from its first message.
async fn hello(link: &mut impl Link) -> Result<String, HelloError> {
    let first = tokio::time::timeout(HELLO_WITHIN, link.recv()).await;
    let Ok(Some(Frame::Text(text))) = first else {
        return Err(HelloError::NotHello);
    };
    match serde_json::from_slice::<AgentMsg>(&text)? {
        AgentMsg::AgentHello { version, name, .. } => {
            if version != VERSION {
                return Err(HelloError::Version(version));
            }
            if name.is_empty()
                || name.len() > 255
                || name.chars().any(|c| c.is_control() || c == ':')
            {
                return Err(HelloError::BadName);
            }
            let hub_host = crate::line::local_hostname();
            if name.eq_ignore_ascii_case(&hub_host) {
                return Err(HelloError::HubsName { name, hub_host });
            }
            Ok(name)
        }
        _ => Err(HelloError::NotHello),
    }
}

/// Not an error to report: the agent is gone.
struct Gone;

/// One `lines` message, from a text frame or a binary one.
struct Batch {
    batch: u64,
    path: String,
    set: String,
    origin: Origin,
    ts: String,
    /// Checked for UTF-8 by ingest, as a tailer's lines are.
    bytes: Bytes,
}

/// What a frame from the agent says.
enum Incoming {
    Batch(Batch),
    Other(AgentMsg),
}

async fn serve(
    link: &mut impl Link,
    agents: &AgentIngest,
    name: &str,
    streams: &mut AgentStreams,
    shutdown: &Handle,
) -> Result<(), Gone> {
    // Ingest sets this to the last batch it has taken in; the agent is acknowledged
    // from it (acks are cumulative: several batches ingested at once cost one ack).
    let (ingested, mut acks) = watch::channel(0u64);
    let ingested = Arc::new(ingested);
    let mut acked = 0;
    loop {
        let msg = tokio::select! {
            () = shutdown.stopping() => {
                link.going_away().await;
                return Err(Gone);
            }
            Ok(()) = acks.changed() => {
                let upto = *acks.borrow_and_update();
                if upto > acked {
                    acked = upto;
                    send(link, &HubMsg::Ack { batch: upto }).await?;
                }
                continue;
            }
            msg = tokio::time::timeout(SILENT_FOR, link.recv()) => match msg {
                Ok(Some(m)) => m,
                _ => return Err(Gone),
            },
        };
        let incoming = match msg {
            Frame::Text(t) => parse(&t, None),
            Frame::Binary(data) => {
                let (header, lines) = crate::protocol::lines_frame_parts(&data);
                parse(&data[header], Some(data.slice(lines)))
            }
            Frame::Close => return Err(Gone),
            Frame::Control => continue,
        };
        let incoming = match incoming {
            Ok(m) => m,
            Err(e) => {
                let error = HubMsg::Error {
                    code: code::BAD_REQUEST.into(),
                    message: format!("malformed message: {e}"),
                };
                send(link, &error).await?;
                continue;
            }
        };
        match incoming {
            Incoming::Other(AgentMsg::StreamAdded { path, set }) => {
                stream(link, agents, name, streams, path, set).await?;
            }
            Incoming::Other(AgentMsg::StreamRemoved { path, set }) => {
                if let Some(Some(s)) = streams.known.remove(&(path, set)) {
                    to_ingest(agents, SourceEvent::StreamRemoved(s)).await?;
                }
            }
            Incoming::Other(AgentMsg::Resending { batches }) => {
                agents
                    .hub
                    .counters
                    .batches_resent
                    .fetch_add(batches, Ordering::Relaxed);
            }
            Incoming::Other(_) => {}
            Incoming::Batch(b) => {
                match stream(link, agents, name, streams, b.path, b.set).await? {
                    Some(stream) => admit(agents, stream, b.origin, b.ts, b.bytes).await?,
                    // Acknowledged all the same: the agent must not keep it forever.
                    None => {
                        let refused = &agents.hub.counters.agent_batches_refused;
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // Acknowledged once ingest has everything before this receipt.
                let receipt = SourceEvent::Receipt {
                    upto: b.batch,
                    to: ingested.clone(),
                };
                to_ingest(agents, receipt).await?;
            }
        }
    }
}

/// One batch of an agent's stream into ingest, unless the hub has it already.
async fn admit(
    agents: &AgentIngest,
    stream: Arc<Stream>,
    origin: Origin,
    ts: String,
    mut bytes: Bytes,
) -> Result<(), Gone> {
    let counters = &agents.hub.counters;
    if agents.received.admit(&stream.id, origin, &mut bytes) {
        // The agent's word for when the lines were read, if the hub takes it.
        let received = std::time::SystemTime::now();
        let ts = if agents.trust_agent_time {
            humantime::parse_rfc3339_weak(&ts).unwrap_or(received)
        } else {
            received
        };
        let batch = ReadBatch {
            stream,
            ts,
            bytes: cap_long_lines(bytes, agents.max_line),
            origin: Some(origin),
        };
        to_ingest(agents, SourceEvent::Lines(batch)).await?;
    } else {
        counters.duplicates_dropped.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// A message from a text frame, or the header of a binary one (`body`: its lines).
fn parse(json: &[u8], body: Option<Bytes>) -> Result<Incoming, serde_json::Error> {
    Ok(match serde_json::from_slice::<AgentMsg>(json)? {
        AgentMsg::Lines {
            batch,
            path,
            set,
            dev,
            ino,
            born,
            start,
            end,
            ts,
            text,
        } => Incoming::Batch(Batch {
            batch,
            path,
            set,
            // Positions as the agent sends them (`Origin::position`): only compared.
            origin: Origin {
                dev,
                ino,
                born,
                epoch: 0,
                start,
                end,
            },
            ts,
            bytes: match body {
                Some(body) => owned_slice(body),
                None => text.into(),
            },
        }),
        other => Incoming::Other(other),
    })
}

async fn to_ingest(agents: &AgentIngest, event: SourceEvent) -> Result<(), Gone> {
    agents.out.send(event).await.map_err(|_| Gone)
}

/// One agent's streams by (path, set): `None` for one refused (said once).
#[derive(Default)]
struct AgentStreams {
    known: HashMap<(String, String), Option<Arc<Stream>>>,
    /// Streams added in the current minute, and when it began.
    added: u32,
    minute: Option<std::time::Instant>,
    /// The rate limit was said this minute.
    said_rate: bool,
}

/// Why an agent may not have the stream `path` in `set`, if it may not.
fn refusal(path: &str, set: &str, streams: &AgentStreams) -> Option<String> {
    if set == "syslog" || path.starts_with("syslog:") {
        return Some(format!(
            "{path:?} in set {set:?}: the set syslog and paths syslog:… belong to the hub's syslog input"
        ));
    }
    if path.is_empty() || path.len() > MAX_PATH_BYTES {
        return Some(format!(
            "a stream's path must be 1-{MAX_PATH_BYTES} bytes (this one: {})",
            path.len()
        ));
    }
    if streams.known.values().filter(|s| s.is_some()).count() >= MAX_STREAMS {
        return Some(format!(
            "{path:?}: an agent may have {MAX_STREAMS} streams at most"
        ));
    }
    None
}

/// The stream of one of this agent's files, announced to the hub the first time;
/// `None` when it is refused (the agent is told why, once).
async fn stream(
    link: &mut impl Link,
    agents: &AgentIngest,
    name: &str,
    streams: &mut AgentStreams,
    path: String,
    set: String,
) -> Result<Option<Arc<Stream>>, Gone> {
    let key = (path, set);
    if let Some(s) = streams.known.get(&key) {
        return Ok(s.clone());
    }
    let now = std::time::Instant::now();
    if streams
        .minute
        .is_none_or(|m| now.duration_since(m) >= Duration::from_secs(60))
    {
        (streams.minute, streams.added, streams.said_rate) = (Some(now), 0, false);
    }
    if streams.added >= MAX_NEW_STREAMS_PER_MINUTE {
        // Not remembered: the same stream may be added once the minute is over.
        if !std::mem::replace(&mut streams.said_rate, true) {
            let why = format!(
                "{:?}: an agent may add {MAX_NEW_STREAMS_PER_MINUTE} streams a minute",
                key.0
            );
            refuse(link, why).await?;
        }
        return Ok(None);
    }
    if let Some(why) = refusal(&key.0, &key.1, streams) {
        tracing::warn!(agent = %name, "refused a stream: {why}");
        // Refusals are remembered too (said once), up to as many again as streams.
        if streams.known.len() < 2 * MAX_STREAMS {
            streams.known.insert(key, None);
        }
        refuse(link, why).await?;
        return Ok(None);
    }
    streams.added += 1;
    // Control characters in a path are escaped (see `source::names`); the name was
    // checked at hello.
    let path = crate::source::names::path(&key.0);
    let s = Arc::new(Stream::new(name, path, key.1.clone()));
    streams.known.insert(key, Some(s.clone()));
    to_ingest(agents, SourceEvent::StreamAdded(s.clone())).await?;
    Ok(Some(s))
}

async fn refuse(link: &mut impl Link, why: String) -> Result<(), Gone> {
    let error = HubMsg::Error {
        code: code::STREAM_REFUSED.into(),
        message: why,
    };
    send(link, &error).await
}

async fn send(link: &mut impl Link, msg: &HubMsg) -> Result<(), Gone> {
    let json = serde_json::to_string(msg).map_err(|_| Gone)?;
    match tokio::time::timeout(SILENT_FOR, link.send_text(json)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(Gone),
    }
}
