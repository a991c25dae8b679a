//! One agent connected to the hub's `/agent` endpoint: its lines go into ingest like
//! any local tailer's, each batch once. The hub remembers, per stream, how far into
//! which file (device, inode) it has lines, and drops a batch it already has (an
//! agent re-sends what was not acknowledged when the connection dropped).
//!
//! Streams belong to their source. An agent writes only `NAME:PATH` streams of its
//! own name, which may not be the hub's (its local files are `HOST:PATH`), and never
//! the syslog input's (`HOST:syslog:TAG`, set `syslog`); so no agent can write into,
//! or make vanish by disconnecting, a stream of the hub's files or of syslog. A
//! refused stream gets a `stream_refused` error once; its batches are acknowledged
//! (the agent must not keep them forever) and dropped, counted in `/metrics`. Nor
//! does an agent date its lines: their time is when the hub received them, unless
//! the config says `trust_agent_time`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use bytes::Bytes;
use tokio::sync::watch;

use super::ServerState;
use crate::line::{cap_long_lines, owned_slice, Origin, ReadBatch, Stream};
use crate::protocol::{code, AgentMsg, HubMsg, VERSION};
use crate::shutdown::Handle;
use crate::source::SourceEvent;

const HELLO_WITHIN: Duration = Duration::from_secs(10);
const SILENT_FOR: Duration = Duration::from_secs(90);
/// Streams one agent may have (a glob over a huge tree is refused past this).
const MAX_STREAMS: usize = 10_000;
/// New streams one agent may add in a minute.
const MAX_NEW_STREAMS_PER_MINUTE: u32 = 1_000;
/// Longest path an agent's stream may have (Linux's PATH_MAX).
const MAX_PATH_BYTES: usize = 4096;

/// `shutdown` is held until the agent's streams are removed.
pub async fn run(mut socket: WebSocket, state: Arc<ServerState>, shutdown: Handle) {
    let refused = |code: &str, message: String| HubMsg::Error {
        code: code.into(),
        message,
    };
    // An agent still to say hello is a session too: it gets its close frame.
    let hello = tokio::select! {
        hello = hello(&mut socket) => Some(hello),
        () = shutdown.stopping() => None,
    };
    let Some(hello) = hello else {
        let _ = socket.send(super::going_away()).await;
        return;
    };
    let name = match hello {
        Ok(name) => name,
        Err(why) => {
            let _ = send(&mut socket, &refused(code::BAD_REQUEST, why)).await;
            return;
        }
    };
    // Held until this agent's streams are removed (the end of this function), so
    // the next agent of the name adds them after.
    let _name = match state.hub.claim_agent_name(&name) {
        Ok(claim) => claim,
        Err(since) => {
            let why = format!(
                "an agent named {name:?} is connected already (since {}); the hub takes \
                 one agent of a name at a time: give this one another --name",
                humantime::format_rfc3339_seconds(since)
            );
            tracing::warn!("refused an agent: {why}");
            let _ = send(&mut socket, &refused(code::NAME_IN_USE, why)).await;
            return;
        }
    };
    let welcome = HubMsg::Welcome {
        version: VERSION,
        server: format!("supergrep {}", env!("CARGO_PKG_VERSION")),
        // The upgrade accepts them (see `agent`).
        unmasked_lines: true,
    };
    if send(&mut socket, &welcome).await.is_err() {
        return;
    }
    tracing::info!(agent = %name, "agent connected");
    state.agents.fetch_add(1, Ordering::Relaxed);
    let mut streams = AgentStreams::default();
    let _ = serve(&mut socket, &state, &name, &mut streams, &shutdown).await;
    // Its streams go with it (and come back when it reconnects).
    for stream in streams.known.into_values().flatten() {
        let _ = to_ingest(&state, SourceEvent::StreamRemoved(stream)).await;
    }
    state.agents.fetch_sub(1, Ordering::Relaxed);
    tracing::info!(agent = %name, "agent disconnected");
}

/// The close frame of a hub that shuts down.
async fn hello(socket: &mut WebSocket) -> Result<String, String> {
    let first = tokio::time::timeout(HELLO_WITHIN, socket.recv()).await;
    let Ok(Some(Ok(Message::Text(text)))) = first else {
        return Err("an agent must start with agent_hello".into());
    };
    match serde_json::from_str::<AgentMsg>(text.as_str()) {
        Ok(AgentMsg::AgentHello { version, name, .. }) => {
            if version != VERSION {
                return Err(format!(
                    "this hub speaks protocol {VERSION}, the agent {version}"
                ));
            }
            if name.is_empty()
                || name.len() > 255
                || name.chars().any(|c| c.is_control() || c == ':')
            {
                return Err(
                    "the agent's name must be 1-255 characters without ':' or control characters"
                        .into(),
                );
            }
            let hub_host = crate::line::local_hostname();
            if name.eq_ignore_ascii_case(&hub_host) {
                return Err(format!(
                    "the name {name:?} is the hub's own (its local files are {hub_host}:PATH): \
                     start the agent with another --name"
                ));
            }
            Ok(name)
        }
        Ok(_) => Err("an agent must start with agent_hello".into()),
        Err(e) => Err(format!("malformed agent_hello: {e}")),
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
    socket: &mut WebSocket,
    state: &ServerState,
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
                let _ = socket.send(super::going_away()).await;
                return Err(Gone);
            }
            Ok(()) = acks.changed() => {
                let upto = *acks.borrow_and_update();
                if upto > acked {
                    acked = upto;
                    send(socket, &HubMsg::Ack { batch: upto }).await?;
                }
                continue;
            }
            msg = tokio::time::timeout(SILENT_FOR, socket.recv()) => match msg {
                Ok(Some(Ok(m))) => m,
                _ => return Err(Gone),
            },
        };
        let incoming = match msg {
            Message::Text(t) => parse(t.as_bytes(), None),
            Message::Binary(data) => {
                let (header, lines) = crate::protocol::lines_frame_parts(&data);
                parse(&data[header], Some(data.slice(lines)))
            }
            Message::Close(_) => return Err(Gone),
            _ => continue,
        };
        let incoming = match incoming {
            Ok(m) => m,
            Err(e) => {
                let error = HubMsg::Error {
                    code: code::BAD_REQUEST.into(),
                    message: format!("malformed message: {e}"),
                };
                send(socket, &error).await?;
                continue;
            }
        };
        match incoming {
            Incoming::Other(AgentMsg::StreamAdded { path, set }) => {
                stream(socket, state, name, streams, path, set).await?;
            }
            Incoming::Other(AgentMsg::StreamRemoved { path, set }) => {
                if let Some(Some(s)) = streams.known.remove(&(path, set)) {
                    to_ingest(state, SourceEvent::StreamRemoved(s)).await?;
                }
            }
            Incoming::Other(AgentMsg::Resending { batches }) => {
                state
                    .hub
                    .counters
                    .batches_resent
                    .fetch_add(batches, Ordering::Relaxed);
            }
            Incoming::Other(_) => {}
            Incoming::Batch(b) => {
                match stream(socket, state, name, streams, b.path, b.set).await? {
                    Some(stream) => admit(state, stream, b.origin, b.ts, b.bytes).await?,
                    // Acknowledged all the same: the agent must not keep it forever.
                    None => {
                        let refused = &state.hub.counters.agent_batches_refused;
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // Acknowledged once ingest has everything before this receipt.
                let receipt = SourceEvent::Receipt {
                    upto: b.batch,
                    to: ingested.clone(),
                };
                to_ingest(state, receipt).await?;
            }
        }
    }
}

/// One batch of an agent's stream into ingest, unless the hub has it already.
async fn admit(
    state: &ServerState,
    stream: Arc<Stream>,
    origin: Origin,
    ts: String,
    mut bytes: Bytes,
) -> Result<(), Gone> {
    let counters = &state.hub.counters;
    if state.agent_files.admit(&stream.id, origin, &mut bytes) {
        // The agent's word for when the lines were read, if the hub takes it.
        let received = std::time::SystemTime::now();
        let ts = if state.trust_agent_time {
            humantime::parse_rfc3339_weak(&ts).unwrap_or(received)
        } else {
            received
        };
        let batch = ReadBatch {
            stream,
            ts,
            bytes: cap_long_lines(bytes, state.limits.max_line),
            origin: Some(origin),
        };
        to_ingest(state, SourceEvent::Lines(batch)).await?;
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

async fn to_ingest(state: &ServerState, event: SourceEvent) -> Result<(), Gone> {
    state.ingest.send(event).await.map_err(|_| Gone)
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
    socket: &mut WebSocket,
    state: &ServerState,
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
            refuse(socket, why).await?;
        }
        return Ok(None);
    }
    if let Some(why) = refusal(&key.0, &key.1, streams) {
        tracing::warn!(agent = %name, "refused a stream: {why}");
        // Refusals are remembered too (said once), up to as many again as streams.
        if streams.known.len() < 2 * MAX_STREAMS {
            streams.known.insert(key, None);
        }
        refuse(socket, why).await?;
        return Ok(None);
    }
    streams.added += 1;
    // Control characters in a path are escaped (see `source::names`); the name was
    // checked at hello.
    let path = crate::source::names::path(&key.0);
    let s = Arc::new(Stream::new(name, path, key.1.clone()));
    streams.known.insert(key, Some(s.clone()));
    to_ingest(state, SourceEvent::StreamAdded(s.clone())).await?;
    Ok(Some(s))
}

async fn refuse(socket: &mut WebSocket, why: String) -> Result<(), Gone> {
    let error = HubMsg::Error {
        code: code::STREAM_REFUSED.into(),
        message: why,
    };
    send(socket, &error).await
}

async fn send(socket: &mut WebSocket, msg: &HubMsg) -> Result<(), Gone> {
    let json = serde_json::to_string(msg).map_err(|_| Gone)?;
    match tokio::time::timeout(SILENT_FOR, socket.send(Message::Text(json.into()))).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(Gone),
    }
}
