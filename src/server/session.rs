//! One WebSocket client of the hub: reads its requests, and writes its matches from
//! its own bounded queue. One task per client does both, so replies such as a
//! subscription's backlog always go out before that subscription's live lines.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use tokio::sync::broadcast::error::RecvError;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};

use super::subscriptions::{Asked, Subscriptions};
use super::ServerState;
use crate::hub::{Delivery, Notice, Overflow, SinkKind, SinkQueue, Spans, Taken, Takes};
use crate::line::format_ts;
use crate::protocol::{self, code, ClientMsg, ServerMsg, WireStream, VERSION};

const PING_EVERY: Duration = Duration::from_secs(20);
/// A client silent this long (not even answering pings) is gone.
const DEAD_AFTER: Duration = Duration::from_secs(60);
/// Matches per `lines` frame at most.
const LINES_PER_FRAME: usize = 1000;

/// The socket went away (or the hub is shutting down): end the session.
struct Gone;

struct Session {
    state: Arc<ServerState>,
    client: u64,
    /// Its subscriptions, their ids, keys and budget (all they hold goes with it).
    subs: Subscriptions,
    socket: WebSocket,
}

/// `shutdown` is held until the session has let go of everything.
pub async fn run(
    socket: WebSocket,
    state: Arc<ServerState>,
    peer: IpAddr,
    shutdown: crate::shutdown::Handle,
) {
    let client = state.next_client.fetch_add(1, Ordering::Relaxed);
    state.clients.fetch_add(1, Ordering::Relaxed);
    let kind = SinkKind {
        takes: Takes::Lines(Overflow::DropOldest),
        spans: Spans::Wanted,
    };
    let queue = Arc::new(SinkQueue::new(state.limits.client_queue, kind));
    let subs = Subscriptions::new(
        state.hub.subscriber(queue),
        state.budgets.open(client, peer),
        state.limits,
    );
    let mut session = Session {
        state: state.clone(),
        client,
        subs,
        socket,
    };
    let _ = session.serve(&shutdown).await;
    // Its queue closes, the hub lets go of its subscriptions, then the budgets do.
    drop(session);
    state.clients.fetch_sub(1, Ordering::Relaxed);
    drop(shutdown);
}

impl Session {
    async fn serve(&mut self, shutdown: &crate::shutdown::Handle) -> Result<(), Gone> {
        let hub = self.state.hub.clone();
        // Taken together, so that a stream appearing meanwhile is told exactly once:
        // in `hello` or as a `streams` message after it.
        let (streams, mut notices) = hub.streams_and_notices();
        let streams = streams.iter().map(|s| WireStream::from(&**s)).collect();
        self.send(&ServerMsg::Hello {
            version: VERSION,
            server: format!("supergrep {}", env!("CARGO_PKG_VERSION")),
            streams,
            boot: self.state.boot.clone(),
        })
        .await?;
        let mut ping = tokio::time::interval(PING_EVERY);
        let mut last_heard = Instant::now();
        let queue = self.subs.queue().clone();
        let revoked = self.subs.wake();
        loop {
            tokio::select! {
                () = shutdown.stopping() => {
                    let _ = self.socket.send(super::going_away()).await;
                    return Err(Gone);
                }
                msg = self.socket.recv() => {
                    let msg = match msg {
                        Some(Ok(msg)) => msg,
                        Some(Err(e)) => return Err(self.refuse_broken(e).await),
                        None => return Err(Gone),
                    };
                    last_heard = Instant::now();
                    match msg {
                        Message::Text(text) => self.handle(text.as_str()).await?,
                        Message::Binary(_) => {
                            self.send(&ServerMsg::error(None, code::BAD_REQUEST, "messages must be JSON text frames")).await?
                        }
                        Message::Close(_) => return Err(Gone),
                        Message::Ping(_) | Message::Pong(_) => {}
                    }
                }
                _ = revoked.notified() => self.tell_revoked().await?,
                taken = queue.take::<Delivery>(LINES_PER_FRAME * 4) => {
                    let Some(taken) = taken else { return Err(Gone) };
                    self.deliver(taken).await?;
                }
                notice = notices.recv() => match notice {
                    Ok(notice) => self.notify(notice).await?,
                    // Notices were missed: resend what streams there are (markers
                    // missed are gone, but the streams are known again).
                    Err(RecvError::Lagged(missed)) => {
                        tracing::debug!(client = self.client, missed, "notices missed; resending streams");
                        let added = hub.streams().iter().map(|s| WireStream::from(&**s)).collect();
                        self.send(&ServerMsg::Streams { added, removed: Vec::new() }).await?;
                    }
                    Err(RecvError::Closed) => {}
                },
                _ = ping.tick() => {
                    if last_heard.elapsed() > DEAD_AFTER {
                        tracing::debug!(client = self.client, "no answer to pings; closing");
                        return Err(Gone);
                    }
                    self.send_raw(Message::Ping(Default::default())).await?;
                }
            }
        }
    }

    async fn handle(&mut self, text: &str) -> Result<(), Gone> {
        let msg = match serde_json::from_str::<ClientMsg>(text) {
            Ok(msg) => msg,
            Err(e) => {
                // Name the request when the client gave it an id.
                let id = serde_json::from_str::<serde_json::Value>(text)
                    .ok()
                    .and_then(|v| v.get("id")?.as_str().map(str::to_owned));
                let message = format!("malformed message: {e}");
                return self
                    .send(&ServerMsg::error(id.as_deref(), code::BAD_REQUEST, message))
                    .await;
            }
        };
        match msg {
            ClientMsg::Subscribe {
                id,
                include,
                exclude,
                ignore_case,
                streams,
                backlog,
            } => {
                let asked = Asked {
                    include,
                    exclude,
                    ignore_case,
                    streams,
                    backlog,
                };
                let reply = self.subs.subscribe(&id, asked).await;
                match reply {
                    Ok(recent) => {
                        self.send(&ServerMsg::Subscribed { id: id.clone() }).await?;
                        self.send_lines(&id, &recent).await
                    }
                    Err(err) => {
                        // Every refused subscribe is counted here, by the code it is told.
                        if let ServerMsg::Error { code, .. } = &err {
                            self.state.count_refused_subscribe(code);
                        }
                        self.send(&err).await
                    }
                }
            }
            ClientMsg::Unsubscribe { id } => {
                if self.subs.unsubscribe(&id) {
                    return Ok(());
                }
                let message = format!("no subscription {id:?}");
                self.send(&ServerMsg::error(Some(&id), code::BAD_REQUEST, message))
                    .await
            }
            ClientMsg::Context {
                id,
                stream,
                seq,
                before,
                after,
            } => {
                let max = self.state.limits.max_context_lines as u64;
                let lines = self.state.hub.context(
                    &stream,
                    seq,
                    (before as u64).min(max),
                    (after as u64).min(max),
                );
                // A stream the hub has no lines of and does not follow is unknown (one
                // removed whose lines are still held answers from them).
                if lines.is_empty() && !self.state.hub.streams().iter().any(|s| s.id == stream) {
                    let message = format!("no stream {stream:?}");
                    return self
                        .send(&ServerMsg::error(Some(&id), code::UNKNOWN_STREAM, message))
                        .await;
                }
                let lines = lines
                    .iter()
                    .map(|l| crate::protocol::WireLine::from_line(l, Vec::new()))
                    .collect();
                self.send(&ServerMsg::Context { id, stream, lines }).await
            }
        }
    }

    /// Subscriptions given up to make room for an address within its share: the hub
    /// has let go of them already; the client is told, by their ids.
    async fn tell_revoked(&mut self) -> Result<(), Gone> {
        for (id, why) in self.subs.revoked() {
            tracing::info!(client = self.client, id, "subscription dropped: {why}");
            let message = format!("subscription {id:?} {why}");
            self.send(&ServerMsg::error(Some(&id), code::HUB_BUDGET, message))
                .await?;
        }
        Ok(())
    }

    async fn deliver(&mut self, taken: Taken<Delivery>) -> Result<(), Gone> {
        for (key, count) in &taken.dropped {
            if let Some(id) = self.subs.id_of(*key).map(str::to_owned) {
                self.state
                    .hub
                    .counters
                    .matches_dropped
                    .fetch_add(*count, Ordering::Relaxed);
                self.send(&ServerMsg::Dropped { id, count: *count }).await?;
            }
        }
        // Consecutive deliveries of one subscription go out as one frame.
        let mut rest = taken.matches.as_slice();
        while let Some(first) = rest.first() {
            let run = rest.iter().take_while(|d| d.sub == first.sub).count();
            let (group, tail) = rest.split_at(run);
            rest = tail;
            if let Some(id) = self.subs.id_of(first.sub).map(str::to_owned) {
                self.send_lines(&id, group).await?;
            }
        }
        Ok(())
    }

    /// `lines` frames of one subscription's matches, each line's shared encoding
    /// (made once for all clients) plus this client's spans.
    async fn send_lines(&mut self, id: &str, deliveries: &[Delivery]) -> Result<(), Gone> {
        for chunk in deliveries.chunks(LINES_PER_FRAME) {
            let lines = chunk.iter().map(|d| (&d.line, d.spans.as_slice()));
            let json = protocol::lines_frame(id, lines).map_err(|_| Gone)?;
            self.send_raw(Message::Text(json.into())).await?;
        }
        Ok(())
    }

    async fn notify(&mut self, notice: Notice) -> Result<(), Gone> {
        let msg = match notice {
            Notice::StreamAdded(s) => ServerMsg::Streams {
                added: vec![WireStream::from(&*s)],
                removed: vec![],
            },
            Notice::StreamRemoved(s) => ServerMsg::Streams {
                added: vec![],
                removed: vec![s.id.clone()],
            },
            Notice::Marker { ts, text } => ServerMsg::Marker {
                ts: format_ts(ts),
                text,
            },
        };
        self.send(&msg).await
    }

    /// A frame we could not take (too large, not WebSocket): counted, told to the
    /// client as far as the connection still allows, and the session ends.
    async fn refuse_broken(&mut self, e: axum::Error) -> Gone {
        // tungstenite's refusal of a frame or message over `max_message_bytes`.
        let too_big = matches!(
            std::error::Error::source(&e).and_then(|e| e.downcast_ref::<WsError>()),
            Some(WsError::Capacity(CapacityError::MessageTooLong { .. }))
        );
        let (code, why) = if too_big {
            self.state.oversized.fetch_add(1, Ordering::Relaxed);
            (
                1009,
                format!(
                    "message too big (limit {} bytes)",
                    self.state.limits.max_message_bytes
                ),
            )
        } else {
            (1002, format!("protocol error: {e}"))
        };
        tracing::debug!(client = self.client, "closing: {why}");
        let _ = self
            .send(&ServerMsg::error(None, code::BAD_REQUEST, why.clone()))
            .await;
        let _ = self
            .socket
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: why.into(),
            })))
            .await;
        Gone
    }

    async fn send(&mut self, msg: &ServerMsg) -> Result<(), Gone> {
        self.send_raw(Message::Text(msg.to_json().into())).await
    }

    async fn send_raw(&mut self, msg: Message) -> Result<(), Gone> {
        if let Message::Text(t) = &msg {
            self.state
                .bytes_sent
                .fetch_add(t.len() as u64, Ordering::Relaxed);
        }
        // A client that stops reading blocks the send once its TCP window is full;
        // its queue drops meanwhile, and after DEAD_AFTER it is given up on.
        match tokio::time::timeout(DEAD_AFTER, self.socket.send(msg)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Gone),
        }
    }
}
