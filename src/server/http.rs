//! Serving HTTP connections: our own accept loop, because `axum::serve` has no
//! header-read timeout (a half-open connection was held forever), no cap per address
//! and no count of failed accepts. hyper's HTTP/1 server does the rest (WebSocket
//! upgrades included).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};

use super::ServerState;
use crate::shutdown::{Handle, Kind};

/// Connections open per client address.
#[derive(Default)]
pub struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

/// One connection's place in [`PerAddress`]; given back when dropped.
pub struct Slot {
    state: Arc<ServerState>,
    ip: IpAddr,
}

impl PerAddress {
    /// A place for a connection from `ip`, unless it has `max` open already.
    pub fn take(state: &Arc<ServerState>, ip: IpAddr, max: usize) -> Option<Slot> {
        let mut open = state
            .per_address
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot {
            state: state.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .state
            .per_address
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Serves plain TCP connections until shutdown.
pub async fn serve_plain(
    tcp: tokio::net::TcpListener,
    app: Router,
    state: Arc<ServerState>,
    shutdown: Handle,
) {
    let mut backoff = None;
    loop {
        let accepted = tokio::select! {
            a = tcp.accept() => a,
            () = shutdown.stopping() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => {
                backoff = None;
                a
            }
            Err(e) => {
                let wait = crate::open_files::accept_backoff(backoff);
                backoff = Some(wait);
                state.accept_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("accept: {e}; waiting {wait:?}");
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        // Matches are small frames that must go out at once: no Nagle delay (it
        // cost ~40 ms per lone match, measured by benches/fanout.rs).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
        spawn_connection(stream, peer, &app, &state, &shutdown);
    }
}

/// Serves the TLS listener's connections (handshaken already) until shutdown.
pub async fn serve_tls(
    mut tls: crate::tls::TlsListener,
    app: Router,
    state: Arc<ServerState>,
    shutdown: Handle,
) {
    use axum::serve::Listener as _;
    loop {
        let (stream, peer) = tokio::select! {
            a = tls.accept() => a,
            () = shutdown.stopping() => return,
        };
        spawn_connection(stream, peer, &app, &state, &shutdown);
    }
}

/// Serves one connection on a task of its own, if its address has room. Its
/// requests carry a shutdown handle, for the sessions they are upgraded to.
fn spawn_connection<I>(
    io: I,
    peer: SocketAddr,
    app: &Router,
    state: &Arc<ServerState>,
    accept: &Handle,
) where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let max = state.limits.max_connections_per_address;
    let Some(slot) = PerAddress::take(state, peer.ip(), max) else {
        state.connections_refused.fetch_add(1, Ordering::Relaxed);
        tracing::info!("refused a connection from {peer}: {max} open from that address");
        return;
    };
    let header_timeout = Duration::from_secs(state.limits.http_header_timeout_secs);
    // The peer's address for the handlers (per-address budgets), as axum's
    // `ConnectInfo`.
    let tower = TowerToHyperService::new(app.clone());
    // The service holds the connection's handle (the connection owns it, to the
    // end of this task) and gives each request one, for the session it may become.
    let connection = accept.child(Kind::HttpConnection);
    let shutdown = connection.signal();
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request
            .extensions_mut()
            .insert(connection.child(Kind::HttpRequest));
        hyper::service::Service::call(&tower, request)
    });
    let state = state.clone();
    state.connections.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(async move {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout);
        let conn = builder
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        tokio::pin!(conn);
        let ended = tokio::select! {
            r = conn.as_mut() => Some(r),
            () = shutdown.stopping() => None,
        };
        let served = match ended {
            Some(r) => r,
            None => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = served {
            tracing::debug!("connection from {peer}: {e}");
        }
        drop(slot);
        state.connections.fetch_sub(1, Ordering::Relaxed);
    });
}
