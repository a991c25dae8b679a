//! The hub's HTTP side: one port for the web UI, the WebSocket API and the
//! operational endpoints. Handlers stay thin; sessions live in [`session`].

mod agent;
mod budget;
mod host;
mod http;
mod metrics;
mod session;
mod subscriptions;
mod ui;

use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Extension, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::config::HubLimits;
use crate::hub::Hub;
use crate::protocol::{code, WireStream};
use crate::shutdown::{self, Kind};
use crate::source::agent_ingest::AgentIngest;

/// The close frame every session, a client's or an agent's, gets when the hub stops.
fn going_away() -> axum::extract::ws::Message {
    axum::extract::ws::Message::Close(Some(axum::extract::ws::CloseFrame {
        code: 1001,
        reason: "the hub is shutting down".into(),
    }))
}

/// Everything a request handler may need.
pub struct ServerState {
    pub hub: Arc<Hub>,
    pub limits: HubLimits,
    pub token: Option<String>,
    pub allowed_origins: Vec<String>,
    /// Names the hub answers to (see [`host`]), lowercase.
    pub allowed_hosts: Vec<String>,
    /// Also accepted on `/metrics`.
    pub metrics_token: Option<String>,
    /// Differs per start of the hub (see `hello.boot`).
    pub boot: String,
    /// For the web UI: links `path/file.ext:123` to a source browser.
    pub source_url: Option<String>,
    /// The agents' source: each `/agent` connection is handed to it.
    pub agents: Arc<AgentIngest>,
    /// The log sets followed here and their path globs, for the web UI to say which
    /// glob matches no file yet (set once at start, see [`ServerState::set_log_sets`]).
    log_sets: std::sync::OnceLock<Vec<UiLogSet>>,
    clients: AtomicUsize,
    next_client: AtomicU64,
    bytes_sent: AtomicU64,
    refused: AtomicU64,
    /// Client messages over `max_message_bytes`.
    oversized: AtomicU64,
    /// Open HTTP connections (a WebSocket's until its upgrade).
    connections: AtomicUsize,
    per_address: http::PerAddress,
    /// Connections closed at once: their address had `max_connections_per_address`.
    connections_refused: AtomicU64,
    /// Patterns held per client and per address (see [`budget`]).
    budgets: Arc<budget::Budgets>,
    /// Subscribes refused, per `error` code told (each code listed from the start).
    subscribes_refused: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    /// Failed accepts (out of file descriptors, say), here and in syslog input.
    accept_errors: Arc<AtomicU64>,
}

/// The `error` codes a subscribe may be refused with, listed in `/metrics` before
/// any is counted.
const SUBSCRIBE_REFUSALS: &[&str] = &[
    code::BAD_REQUEST,
    code::INVALID_REGEX,
    code::PATTERN_TOO_LONG,
    code::TOO_MANY_SUBSCRIPTIONS,
    code::TOO_MANY_PATTERNS,
    code::ADDRESS_BUDGET,
    code::HUB_BUDGET,
    code::COMPILED_BUDGET,
    code::TOO_MANY_COSTLY,
    code::BUSY,
];

/// Who may reach the hub's HTTP side, besides its token, and what it takes on
/// their word.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub allowed_origins: Vec<String>,
    pub allowed_hosts: Vec<String>,
    pub metrics_token: Option<String>,
    /// Failed accepts, shared with the other accept loops (syslog's).
    pub accept_errors: Arc<AtomicU64>,
}

impl ServerState {
    pub fn new(
        hub: Arc<Hub>,
        limits: HubLimits,
        token: Option<String>,
        access: Access,
        source_url: Option<String>,
        agents: Arc<AgentIngest>,
    ) -> Arc<ServerState> {
        let boot = format!(
            "{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
                ^ std::process::id() as u128
        );
        // The hub's total for clients: what the matcher takes, less the patterns it
        // holds already (the `[[irc]]` sinks, subscribed before the server starts).
        let budgets = budget::Budgets::new(budget::Sizes {
            per_client: limits.max_patterns_per_client,
            per_address: limits.max_patterns_per_address,
            hub: limits.max_patterns.saturating_sub(hub.pattern_count()),
            bytes_per_client: limits.max_compiled_bytes_per_client,
            bytes_per_address: limits.max_compiled_bytes_per_address,
        });
        let subscribes_refused = SUBSCRIBE_REFUSALS
            .iter()
            .map(|&c| (c.to_owned(), 0))
            .collect();
        Arc::new(ServerState {
            budgets,
            subscribes_refused: std::sync::Mutex::new(subscribes_refused),
            hub,
            limits,
            token,
            allowed_hosts: host::allowed(&access.allowed_hosts),
            allowed_origins: access.allowed_origins.clone(),
            metrics_token: access.metrics_token.clone(),
            boot,
            source_url,
            agents,
            log_sets: std::sync::OnceLock::new(),
            clients: AtomicUsize::new(0),
            next_client: AtomicU64::new(1),
            bytes_sent: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            oversized: AtomicU64::new(0),
            connections: AtomicUsize::new(0),
            per_address: http::PerAddress::default(),
            connections_refused: AtomicU64::new(0),
            accept_errors: access.accept_errors,
        })
    }
}

impl ServerState {
    /// The log sets this hub follows (name, path globs), shown by the web UI. Only the
    /// first call counts.
    pub fn set_log_sets(&self, sets: impl IntoIterator<Item = (String, Vec<String>)>) {
        let sets = sets
            .into_iter()
            .map(|(name, paths)| UiLogSet { name, paths })
            .collect();
        let _ = self.log_sets.set(sets);
    }

    /// Counts a subscribe refused with `code` (the session does, as it answers).
    fn count_refused_subscribe(&self, code: &str) {
        let mut refused = self
            .subscribes_refused
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match refused.get_mut(code) {
            Some(n) => *n += 1,
            None => {
                refused.insert(code.to_owned(), 1);
            }
        }
    }

    /// Subscribes refused so far, per `error` code.
    fn subscribes_refused(&self) -> Vec<(String, u64)> {
        let refused = self
            .subscribes_refused
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        refused.iter().map(|(c, n)| (c.clone(), *n)).collect()
    }
}

pub fn router(state: Arc<ServerState>) -> Router {
    ui::routes()
        .route("/api/ui", get(ui_settings))
        .route("/ws", get(websocket))
        .route("/agent", get(agent::upgrade))
        .route("/api/streams", get(streams))
        .route("/api/markers", post(marker))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics::render))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            host::check,
        ))
        .with_state(state)
}

/// Where the hub listens: plain TCP, or TLS when it has a certificate.
pub enum HubListener {
    Plain(tokio::net::TcpListener),
    Tls(crate::tls::TlsListener),
}

/// Accepts connections until `shutdown` says stop. Each connection, and the session
/// it is upgraded to, holds a handle of its own (a child of this one): on the stop,
/// sessions send a close frame and end, and the stop waits for them.
pub async fn serve(listener: HubListener, state: Arc<ServerState>, shutdown: shutdown::Handle) {
    let app = router(state.clone());
    match listener {
        HubListener::Plain(tcp) => http::serve_plain(tcp, app, state, shutdown).await,
        // The TLS listener sets TCP_NODELAY itself, before the handshake.
        HubListener::Tls(tls) => http::serve_tls(tls, app, state, shutdown).await,
    }
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// Why a request is refused before it gets anywhere.
fn refuse(state: &ServerState, status: StatusCode, why: &str) -> Response {
    state
        .refused
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::info!("refused a request: {why}");
    (status, format!("{why}\n")).into_response()
}

fn token_ok(state: &ServerState, query: &TokenQuery, headers: &HeaderMap) -> bool {
    match &state.token {
        Some(want) => sent_token(query, headers, want),
        None => true,
    }
}

/// Whether the request carries `want` (`?token=` or `Authorization: Bearer`).
fn sent_token(query: &TokenQuery, headers: &HeaderMap, want: &str) -> bool {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    [query.token.as_deref(), bearer]
        .into_iter()
        .flatten()
        .any(|got| constant_time_eq(got.as_bytes(), want.as_bytes()))
}

/// `/metrics` names hosts and paths, as `/api/streams` does: with a token set, it
/// takes that token or `metrics_token`; with only `metrics_token`, that one.
fn metrics_token_ok(state: &ServerState, query: &TokenQuery, headers: &HeaderMap) -> bool {
    let tokens = [state.token.as_deref(), state.metrics_token.as_deref()];
    let mut wanted = tokens.into_iter().flatten().peekable();
    wanted.peek().is_none() || wanted.any(|want| sent_token(query, headers, want))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Browsers send `Origin`; only the hub's own page (or configured origins) may open
/// a WebSocket, so a random web page cannot read your logs. Non-browser clients send
/// no Origin.
fn origin_ok(state: &ServerState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let own = [format!("http://{host}"), format!("https://{host}")];
    own.iter().any(|o| o == origin) || state.allowed_origins.iter().any(|o| o == origin)
}

/// The checks every WebSocket upgrade passes (clients and agents alike): the token,
/// then the Origin. `Some` is the refusal.
fn refuse_upgrade(
    state: &ServerState,
    query: &TokenQuery,
    headers: &HeaderMap,
) -> Option<Response> {
    if !token_ok(state, query, headers) {
        return Some(refuse(
            state,
            StatusCode::UNAUTHORIZED,
            "unauthorized: a valid token is required",
        ));
    }
    if !origin_ok(state, headers) {
        return Some(refuse(
            state,
            StatusCode::FORBIDDEN,
            "forbidden: foreign Origin",
        ));
    }
    None
}

async fn websocket(
    State(state): State<Arc<ServerState>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Extension(request): Extension<shutdown::Handle>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if let Some(refusal) = refuse_upgrade(&state, &query, &headers) {
        return refusal;
    }
    if state.clients.load(std::sync::atomic::Ordering::Relaxed) >= state.limits.max_clients {
        return refuse(&state, StatusCode::SERVICE_UNAVAILABLE, "too many clients");
    }
    // Taken while the request's is held: the stop cannot miss the session.
    let session = request.child(Kind::Client);
    // Clients send a few small requests: a small read buffer (tungstenite's default
    // is 128 KiB per connection, 128 MB for 1,000 tabs). Writes are batched frames.
    ws.max_message_size(state.limits.max_message_bytes)
        .max_frame_size(state.limits.max_message_bytes)
        .read_buffer_size(8 * 1024)
        .write_buffer_size(16 * 1024)
        .on_upgrade(move |socket| session::run(socket, state, peer.ip(), session))
}

/// A stream with how many lines it has had (the UI turns that into lines/s).
#[derive(Debug, Serialize)]
struct StreamInfo {
    #[serde(flatten)]
    stream: WireStream,
    lines: u64,
}

async fn streams(
    State(state): State<Arc<ServerState>>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
) -> Response {
    // Stream names say what runs where: behind the token like the logs themselves.
    if !token_ok(&state, &query, &headers) {
        return refuse(
            &state,
            StatusCode::UNAUTHORIZED,
            "unauthorized: a valid token is required",
        );
    }
    let counts: std::collections::HashMap<String, u64> =
        state.hub.lines_per_stream().into_iter().collect();
    Json(
        state
            .hub
            .streams()
            .iter()
            .map(|s| StreamInfo {
                lines: counts.get(&s.id).copied().unwrap_or(0),
                stream: WireStream::from(&**s),
            })
            .collect::<Vec<_>>(),
    )
    .into_response()
}

/// Settings the web UI reads at start.
#[derive(Debug, Serialize)]
struct UiSettings {
    /// Template turning `path/file.ext:123` in a line into a link: `{path}`, `{line}`.
    source_url: Option<String>,
    /// The log sets followed and their globs (with a valid token only: they name
    /// paths on this host).
    #[serde(skip_serializing_if = "Option::is_none")]
    log_sets: Option<Vec<UiLogSet>>,
}

#[derive(Debug, Clone, Serialize)]
struct UiLogSet {
    name: String,
    paths: Vec<String>,
}

async fn ui_settings(
    State(state): State<Arc<ServerState>>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
) -> Json<UiSettings> {
    let log_sets = token_ok(&state, &query, &headers)
        .then(|| state.log_sets.get().cloned().unwrap_or_default());
    Json(UiSettings {
        source_url: state.source_url.clone(),
        log_sets,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MarkerRequest {
    text: String,
}

async fn marker(
    State(state): State<Arc<ServerState>>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !token_ok(&state, &query, &headers) {
        return refuse(
            &state,
            StatusCode::UNAUTHORIZED,
            "unauthorized: a valid token is required",
        );
    }
    // Against cross-site POSTs (a form or `text/plain` fetch needs no preflight):
    // JSON only, and from no page but the hub's own (or an allowed origin).
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return refuse(
            &state,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported media type: a marker is sent as Content-Type: application/json",
        );
    }
    if !origin_ok(&state, &headers) {
        return refuse(&state, StatusCode::FORBIDDEN, "forbidden: foreign Origin");
    }
    let request: MarkerRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("bad marker: {e}\n")).into_response(),
    };
    let text: String = request
        .text
        .chars()
        .filter(|c| !c.is_control())
        .take(1000)
        .collect();
    if text.trim().is_empty() {
        return (StatusCode::BAD_REQUEST, "bad marker: empty text\n").into_response();
    }
    state.hub.mark(text);
    (StatusCode::ACCEPTED, "ok\n").into_response()
}
