//! One agent connected to the hub's `/agent` endpoint: its lines go into ingest like
//! any local tailer's, each batch once. The hub remembers, per stream, how far into
//! which file (device, inode) it has lines, and drops a batch it already has (an
//! agent re-sends what was not acknowledged when the connection dropped).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};

use super::ServerState;
use crate::line::{LineBatch, Origin, Stream};
use crate::protocol::{code, AgentMsg, HubMsg, VERSION};
use crate::source::SourceEvent;

const HELLO_WITHIN: Duration = Duration::from_secs(10);
const SILENT_FOR: Duration = Duration::from_secs(90);

pub async fn run(mut socket: WebSocket, state: Arc<ServerState>) {
    let name = match hello(&mut socket).await {
        Ok(name) => name,
        Err(why) => {
            let _ = send(
                &mut socket,
                &HubMsg::Error {
                    code: code::BAD_REQUEST.into(),
                    message: why,
                },
            )
            .await;
            return;
        }
    };
    let welcome = HubMsg::Welcome {
        version: VERSION,
        server: format!("supergrep {}", env!("CARGO_PKG_VERSION")),
    };
    if send(&mut socket, &welcome).await.is_err() {
        return;
    }
    tracing::info!(agent = %name, "agent connected");
    state.agents.fetch_add(1, Ordering::Relaxed);
    let mut streams: HashMap<(String, String), Arc<Stream>> = HashMap::new();
    let _ = serve(&mut socket, &state, &name, &mut streams).await;
    // Its streams go with it (and come back when it reconnects).
    for stream in streams.into_values() {
        let _ = state.ingest.send(SourceEvent::StreamRemoved(stream)).await;
    }
    state.agents.fetch_sub(1, Ordering::Relaxed);
    tracing::info!(agent = %name, "agent disconnected");
}

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
            Ok(name)
        }
        Ok(_) => Err("an agent must start with agent_hello".into()),
        Err(e) => Err(format!("malformed agent_hello: {e}")),
    }
}

/// Not an error to report: the agent is gone.
struct Gone;

async fn serve(
    socket: &mut WebSocket,
    state: &ServerState,
    name: &str,
    streams: &mut HashMap<(String, String), Arc<Stream>>,
) -> Result<(), Gone> {
    let mut shutdown = state.shutdown.clone();
    loop {
        let msg = tokio::select! {
            _ = async { shutdown.wait_for(|&down| down).await.map(|_| ()) } => {
                let _ = socket.send(Message::Close(Some(axum::extract::ws::CloseFrame {
                    code: 1001,
                    reason: "the hub is shutting down".into(),
                }))).await;
                return Err(Gone);
            }
            msg = tokio::time::timeout(SILENT_FOR, socket.recv()) => match msg {
                Ok(Some(Ok(m))) => m,
                _ => return Err(Gone),
            },
        };
        // A text frame is one JSON message; a binary frame is a `lines` header, a
        // newline, and the lines themselves.
        let parsed = match &msg {
            Message::Text(t) => serde_json::from_str::<AgentMsg>(t.as_str()),
            Message::Binary(data) => {
                let split = memchr::memchr(b'\n', data).unwrap_or(data.len());
                serde_json::from_slice::<AgentMsg>(&data[..split]).map(|m| match m {
                    AgentMsg::Lines {
                        batch,
                        path,
                        set,
                        dev,
                        ino,
                        start,
                        end,
                        ts,
                        ..
                    } => {
                        let body = data.get(split + 1..).unwrap_or_default();
                        let text = match std::str::from_utf8(body) {
                            Ok(t) => t.to_owned(),
                            Err(_) => String::from_utf8_lossy(body).into_owned(),
                        };
                        AgentMsg::Lines {
                            batch,
                            path,
                            set,
                            dev,
                            ino,
                            start,
                            end,
                            ts,
                            text,
                        }
                    }
                    other => other,
                })
            }
            Message::Close(_) => return Err(Gone),
            _ => continue,
        };
        let msg = match parsed {
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
        match msg {
            AgentMsg::AgentHello { .. } => {}
            AgentMsg::StreamAdded { path, set } => {
                stream(state, name, streams, path, set).await?;
            }
            AgentMsg::StreamRemoved { path, set } => {
                if let Some(s) = streams.remove(&(path, set)) {
                    state
                        .ingest
                        .send(SourceEvent::StreamRemoved(s))
                        .await
                        .map_err(|_| Gone)?;
                }
            }
            AgentMsg::Lines {
                batch,
                path,
                set,
                dev,
                ino,
                start,
                end,
                ts,
                text,
            } => {
                let stream = stream(state, name, streams, path, set).await?;
                let origin = Origin {
                    dev,
                    ino,
                    start,
                    end,
                };
                let mut text = text;
                if state.hub.admit_remote(&stream.id, origin, &mut text) {
                    let ts = humantime::parse_rfc3339_weak(&ts)
                        .unwrap_or_else(|_| std::time::SystemTime::now());
                    let batch = LineBatch {
                        stream,
                        ts,
                        text: cap_lines(text, state.limits.max_line),
                        origin: Some(origin),
                    };
                    state
                        .ingest
                        .send(SourceEvent::Lines(batch))
                        .await
                        .map_err(|_| Gone)?;
                } else {
                    state
                        .hub
                        .counters
                        .duplicates_dropped
                        .fetch_add(1, Ordering::Relaxed);
                }
                send(socket, &HubMsg::Ack { batch }).await?;
            }
        }
    }
}

/// The stream of one of this agent's files, announced to the hub the first time.
async fn stream(
    state: &ServerState,
    name: &str,
    streams: &mut HashMap<(String, String), Arc<Stream>>,
    path: String,
    set: String,
) -> Result<Arc<Stream>, Gone> {
    let key = (path, set);
    if let Some(s) = streams.get(&key) {
        return Ok(s.clone());
    }
    let s = Arc::new(Stream::new(name, key.0.clone(), key.1.clone()));
    streams.insert(key, s.clone());
    state
        .ingest
        .send(SourceEvent::StreamAdded(s.clone()))
        .await
        .map_err(|_| Gone)?;
    Ok(s)
}

/// The hub's own line limit holds for agents too, whatever theirs is.
fn cap_lines(text: String, max_line: usize) -> String {
    if text.split('\n').all(|l| l.len() <= max_line) {
        return text;
    }
    let mut out = String::with_capacity(text.len().min(max_line * 4));
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if line.len() > max_line {
            let mut end = max_line;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            out.push_str(&line[..end]);
            out.push_str(&format!(" [… {} bytes cut]", line.len() - end));
        } else {
            out.push_str(line);
        }
    }
    out
}

async fn send(socket: &mut WebSocket, msg: &HubMsg) -> Result<(), Gone> {
    let json = serde_json::to_string(msg).map_err(|_| Gone)?;
    match tokio::time::timeout(SILENT_FOR, socket.send(Message::Text(json.into()))).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(Gone),
    }
}
