//! `/metrics` in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{ServerState, TokenQuery};

pub async fn render(
    State(state): State<Arc<ServerState>>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
) -> Response {
    if !super::metrics_token_ok(&state, &query, &headers) {
        return super::refuse(
            &state,
            StatusCode::UNAUTHORIZED,
            "unauthorized: /metrics needs the token (or metrics_token), as ?token=… or \
             Authorization: Bearer",
        );
    }
    let hub = &state.hub;
    let c = &hub.counters;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    metric(
        "supergrep_lines_ingested_total",
        "counter",
        "Lines read from all sources.",
        c.lines_ingested.load(Ordering::Relaxed),
    );
    metric(
        "supergrep_batches_ingested_total",
        "counter",
        "Batches of lines taken in from all sources (a file read or an agent frame, say).",
        c.batches_ingested.load(Ordering::Relaxed),
    );
    metric(
        "supergrep_matches_delivered_total",
        "counter",
        "Matches queued for clients and sinks.",
        c.matches_delivered.load(Ordering::Relaxed),
    );
    metric(
        "supergrep_matches_dropped_total",
        "counter",
        "Matches dropped because a client read too slowly.",
        c.matches_dropped.load(Ordering::Relaxed),
    );
    metric(
        "supergrep_clients",
        "gauge",
        "Connected WebSocket clients.",
        state.clients.load(Ordering::Relaxed) as u64,
    );
    metric(
        "supergrep_subscriptions",
        "gauge",
        "Active subscriptions.",
        hub.subscription_count() as u64,
    );
    metric(
        "supergrep_patterns",
        "gauge",
        "Distinct compiled patterns.",
        hub.pattern_count() as u64,
    );
    let (rebuilds, micros) = hub.rebuild_stats();
    metric(
        "supergrep_matcher_rebuilds_total",
        "counter",
        "Matcher rebuilds (subscription changes).",
        rebuilds,
    );
    metric(
        "supergrep_matcher_rebuild_microseconds_total",
        "counter",
        "Time spent rebuilding the matcher.",
        micros,
    );
    metric(
        "supergrep_backlog_lines",
        "gauge",
        "Lines held in the backlog ring.",
        hub.backlog_lines(),
    );
    metric(
        "supergrep_bytes_sent_total",
        "counter",
        "WebSocket payload bytes sent.",
        state.bytes_sent.load(Ordering::Relaxed),
    );
    metric(
        "supergrep_requests_refused_total",
        "counter",
        "Requests refused (token, origin, client limit).",
        state.refused.load(Ordering::Relaxed),
    );
    metric(
        "supergrep_connections_refused_total",
        "counter",
        "Connections closed at once: their address had max_connections_per_address open.",
        state.connections_refused.load(Ordering::Relaxed),
    );
    metric(
        "supergrep_connections",
        "gauge",
        "Open HTTP connections (a WebSocket counts until its upgrade).",
        state.connections.load(Ordering::Relaxed) as u64,
    );
    metric(
        "supergrep_accept_errors_total",
        "counter",
        "Failed accepts of HTTP and syslog TCP connections (out of file descriptors, say); each waits a little before the next.",
        state.accept_errors.load(Ordering::Relaxed),
    );
    metric(
        "supergrep_messages_too_big_total",
        "counter",
        "Client messages refused for exceeding max_message_bytes.",
        state.oversized.load(Ordering::Relaxed),
    );
    metric(
        "supergrep_agents",
        "gauge",
        "Connected agents.",
        state.agents.connected() as u64,
    );
    metric(
        "supergrep_agent_duplicates_dropped_total",
        "counter",
        "Agent batches dropped because the hub already had them (re-sent after a reconnect).",
        c.duplicates_dropped.load(Ordering::Relaxed),
    );
    metric(
        "supergrep_agent_batches_refused_total",
        "counter",
        "Agent batches dropped because their stream was refused (stream_refused).",
        c.agent_batches_refused.load(Ordering::Relaxed),
    );
    metric(
        "supergrep_agent_batches_resent_total",
        "counter",
        "Batches agents sent again after reconnecting (the hub had not acknowledged them).",
        c.batches_resent.load(Ordering::Relaxed),
    );
    for m in hub.cost_metrics() {
        metric(m.name, m.kind, m.help, m.value);
    }
    metric(
        "supergrep_client_patterns",
        "gauge",
        "Patterns held by WebSocket clients, as counted against their budgets (include + exclude of each subscription).",
        state.budgets.total() as u64,
    );
    metric(
        "supergrep_subscriptions_revoked_total",
        "counter",
        "Subscriptions dropped at the hub's pattern total, to make room for an address within its share (hub_budget).",
        state.budgets.revoked(),
    );
    counters_by(
        &mut out,
        "supergrep_subscribes_refused_total",
        "Subscribes refused, by the error code the client was told (the limit hit, or what was wrong with the request).",
        "code",
        state.subscribes_refused(),
    );
    counters_by(
        &mut out,
        "supergrep_host_lines_total",
        "Lines read per host (an agent's name, a syslog sender, this machine).",
        "host",
        hub.lines_per_host(),
    );
    counters_by(
        &mut out,
        "supergrep_stream_lines_total",
        "Lines read per stream.",
        "stream",
        hub.lines_per_stream(),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// One counter with a label, a sample per value, sorted.
fn counters_by(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    mut values: Vec<(String, u64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    values.sort();
    for (value, n) in values {
        let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {n}", escape(&value));
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
