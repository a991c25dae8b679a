//! `/agent`: the upgrade to a WebSocket, handed to the agents' source
//! ([`crate::source::agent_ingest`]) as its [`Link`]. Nothing of the protocol here.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::{refuse_upgrade, ServerState, TokenQuery};
use crate::shutdown::{self, Kind};
use crate::source::agent_ingest::{self, Frame, Link, LinkClosed};

pub(super) async fn upgrade(
    State(state): State<Arc<ServerState>>,
    Extension(request): Extension<shutdown::Handle>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if let Some(refusal) = refuse_upgrade(&state, &query, &headers) {
        return refusal;
    }
    let session = request.child(Kind::Agent);
    let agents = state.agents.clone();
    // A batch is up to a read chunk of lines, plus its header. Agents may send their
    // batches unmasked (the welcome says so): masking guards proxies against bytes
    // chosen by script in a browser, and costs both sides a pass over every batch.
    ws.max_message_size(16 << 20)
        .accept_unmasked_frames(true)
        .on_upgrade(move |socket| agent_ingest::run(AgentSocket(socket), agents, session))
}

/// An agent's WebSocket, as the source reads and writes it.
struct AgentSocket(WebSocket);

impl Link for AgentSocket {
    async fn recv(&mut self) -> Option<Frame> {
        Some(match self.0.recv().await?.ok()? {
            Message::Text(text) => Frame::Text(text.into()),
            Message::Binary(data) => Frame::Binary(data),
            Message::Close(_) => Frame::Close,
            Message::Ping(_) | Message::Pong(_) => Frame::Control,
        })
    }

    async fn send_text(&mut self, text: String) -> Result<(), LinkClosed> {
        self.0
            .send(Message::Text(text.into()))
            .await
            .map_err(|_| LinkClosed)
    }

    async fn going_away(&mut self) {
        let _ = self.0.send(super::going_away()).await;
    }
}
