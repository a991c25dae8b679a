//! One client's costly patterns must not slow every other client (DESIGN §5): the
//! real `supergrep serve`, a real followed file, real WebSocket clients.
//!
//! The hostile client holds 200 patterns like `(?i)\w+=\w*a\w*\s+\S*17\S*\s\w{2,8}$`
//! (a big case-insensitive automaton whose only literal, `17`, most lines hold). The
//! hub evaluates such a subscription apart, on a worker of its own: the tests show
//! it by what the hub says (`/metrics`, the order of replies), never by timing.

mod support;

use std::path::Path;

use serde_json::json;
use supergrep::protocol::ServerMsg;
use support::files::{append, empty_files};
use support::hostile::hostile_patterns;
use support::hub::Hub;
use support::ws::Client;

/// `i` in letters (`a`–`j` for the digits): the lines hold no number but `17`, so the
/// hostile subscription's one candidate pattern per line is the first, which matches.
fn letters(i: usize) -> String {
    i.to_string()
        .bytes()
        .map(|d| (b'a' + d - b'0') as char)
        .collect()
}

/// A hub following `DIR/app.log` whose client queues hold every line written here
/// (what this file tests is the hub's evaluation, not a slow reader's queue), and
/// whose clients may hold all the compiled bytes the matcher takes (300 hostile
/// patterns compile to 190 MB, over a client's default 128 MiB).
fn hub() -> (tempfile::TempDir, Hub, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let f = empty_files(dir.path(), &["app.log"]);
    let config = dir.path().join("hub.toml");
    let limits = "[limits]\nclient_queue = 1000000\n\
                  max_compiled_bytes_per_client = 536870912\n\
                  max_compiled_bytes_per_address = 536870912\n";
    std::fs::write(&config, limits).unwrap();
    let args = [s(&config), s(&f[0])];
    let hub = Hub::start_following(&["--config", args[0], args[1]], &[&f[0]]);
    let log = f[0].clone();
    (dir, hub, log)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Whether `m` is the answer (`subscribed` or `error`) to subscription `id`.
fn answers(id: &str) -> impl Fn(&ServerMsg) -> bool + '_ {
    move |m| match m {
        ServerMsg::Subscribed { id: i } => i == id,
        ServerMsg::Error { id: Some(i), .. } => i == id,
        _ => false,
    }
}

/// Waits until no compile runs, for as long as the compiles make progress: each
/// pattern compiled shows in `supergrep_compiled_patterns`, and every change starts
/// the [`PATIENCE`](support::wait::PATIENCE) over (a slow build compiles the slow
/// subscription's 300 patterns for longer than that, but never stops advancing).
fn wait_while_compiling(hub: &Hub) {
    let mut seen = hub.metric("supergrep_compiled_patterns");
    let mut deadline = std::time::Instant::now() + support::wait::PATIENCE;
    while hub.metric("supergrep_compiles_running") != Some(0) {
        let now = hub.metric("supergrep_compiled_patterns");
        if now != seen {
            (seen, deadline) = (now, std::time::Instant::now() + support::wait::PATIENCE);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the compile made no progress: {seen:?} patterns compiled"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_subscription_is_evaluated_apart_and_every_line_is_accounted_for() {
    let (_dir, hub, log) = hub();
    let mut normal = Client::connect(&hub).await;
    normal
        .subscribe(json!({"type": "subscribe", "id": "n", "include": ["bar"]}))
        .await;
    let mut hostile = Client::connect(&hub).await;
    hostile
        .send(json!({"type": "subscribe", "id": "h", "include": hostile_patterns(200)}))
        .await;
    // 200 of these take seconds to compile, longer than PATIENCE in a debug build on
    // a loaded machine: awaited for as long as the compile makes progress.
    support::wait::wait_until("the hostile subscription's compile to start", || {
        hub.metric("supergrep_compiles_running") == Some(1)
            || hub.metric("supergrep_subscriptions") == Some(2)
    });
    wait_while_compiling(&hub);
    let reply = hostile.recv_where(answers("h")).await;
    assert_eq!(reply, ServerMsg::Subscribed { id: "h".into() });
    // Apart from the shared matcher (today's hub had no such thing: it fails here).
    assert_eq!(hub.metric("supergrep_isolated_subscriptions"), Some(1));
    assert_eq!(hub.metric("supergrep_subscriptions"), Some(2));

    const LINES: usize = 100_000;
    let text: String = (0..LINES)
        .map(|i| format!("n-{} k=bar x17y ok\n", letters(i)))
        .collect();
    append(&log, &text);
    let last = format!("n-{} k=bar x17y ok", letters(LINES - 1));

    // The normal client gets every line, in order, and nothing dropped.
    let (lines, others) = normal.lines_until(&["n"], &last).await;
    let seqs: Vec<u64> = lines["n"].iter().map(|l| l.seq).collect();
    assert_eq!(seqs, (1..=LINES as u64).collect::<Vec<_>>());
    assert!(
        !others
            .iter()
            .any(|m| matches!(m, ServerMsg::Dropped { .. })),
        "{others:?}"
    );

    // The hostile client: every line matches one of its patterns, so each is either
    // delivered or counted in `dropped`, exactly once.
    let (mut delivered, mut dropped) = (0u64, 0u64);
    while delivered + dropped < LINES as u64 {
        match hostile.recv().await {
            ServerMsg::Lines { id, lines } => {
                assert_eq!(id, "h");
                delivered += lines.len() as u64;
            }
            ServerMsg::Dropped { id, count } => {
                assert_eq!(id, "h");
                dropped += count;
            }
            _ => {}
        }
    }
    assert_eq!(delivered + dropped, LINES as u64);
    // What it dropped is what the hub skipped for it, counted as such.
    assert_eq!(
        hub.metric("supergrep_isolated_lines_dropped_total"),
        Some(dropped)
    );
    // And it is still served: once its worker has caught up (its queue empty, so a
    // line has room), a line written after the flood is delivered, not dropped. (A
    // worker that only ever dropped would pass the count above.)
    hub.wait_metric("supergrep_isolated_lines_queued", 0);
    append(&log, "n-after k=bar x17y ok\n");
    let (lines, others) = hostile.lines_until(&["h"], "n-after k=bar x17y ok").await;
    assert_eq!(lines["h"].len(), 1, "{:?}", lines["h"]);
    assert!(
        !others
            .iter()
            .any(|m| matches!(m, ServerMsg::Dropped { .. })),
        "{others:?}"
    );

    // When it goes, so do its worker and compiled patterns: only `bar` is left.
    drop(hostile);
    hub.wait_metric("supergrep_isolated_subscriptions", 0);
    hub.wait_metric("supergrep_compiled_patterns", 1);
}

/// The premise, a compile still running while the other client subscribes, is
/// checked from outside, not assumed: `supergrep_compiles_running` is 1 before the
/// quick client asks and still 1 once its line arrived (its own compile had ended
/// by its `subscribed`, so the one running is the slow one's), with one
/// subscription live. So the test cannot pass without it. It holds with room to
/// spare: 300 of these patterns take seconds to compile (over 30 s in a debug build
/// on a loaded machine), one `bar` and a line's delivery a few milliseconds; so
/// the slow one's answer is awaited for as long as its compile makes progress (its
/// patterns are counted in `supergrep_compiled_patterns` as each is compiled).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_compile_does_not_hold_up_another_clients_subscribe() {
    let (_dir, hub, log) = hub();
    let mut slow = Client::connect(&hub).await;
    slow.send(json!({"type": "subscribe", "id": "slow", "include": hostile_patterns(300)}))
        .await;
    // Its compile is under way…
    support::wait::wait_until("the slow subscription to compile", || {
        hub.metric("supergrep_compiles_running") == Some(1)
    });
    // …when another client subscribes: it is answered, and its lines flow, while the
    // slow one is still compiling (on today's hub it waited behind it).
    let mut quick = Client::connect(&hub).await;
    quick
        .subscribe(json!({"type": "subscribe", "id": "q", "include": ["bar"]}))
        .await;
    append(&log, "quick k=bar\n");
    let (lines, _) = quick.lines_until(&["q"], "quick k=bar").await;
    assert_eq!(lines["q"].len(), 1);
    assert_eq!(
        hub.metric("supergrep_compiles_running"),
        Some(1),
        "the slow compile finished first: this test's premise does not hold"
    );
    assert_eq!(hub.metric("supergrep_subscriptions"), Some(1));
    // The slow one is answered in the end.
    wait_while_compiling(&hub);
    let reply = slow.recv_where(answers("slow")).await;
    assert_eq!(reply, ServerMsg::Subscribed { id: "slow".into() });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pattern_over_the_length_limit_is_refused_by_name_and_counted() {
    let (_dir, hub, _log) = hub();
    let mut client = Client::connect(&hub).await;
    // 100 KiB: over the 64 KiB a pattern may be, under the message limit.
    let long = format!("(?i){}", "abcd".repeat(25 * 1024));
    client
        .send(json!({"type": "subscribe", "id": "big", "include": [long]}))
        .await;
    match client.recv_where(answers("big")).await {
        ServerMsg::Error { code, message, .. } => {
            assert_eq!(code, "pattern_too_long");
            assert!(message.contains("limit 65536 bytes"), "{message}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(
        hub.metric("supergrep_subscribes_refused_total{code=\"pattern_too_long\"}"),
        Some(1)
    );
    // The client and the hub go on.
    client
        .subscribe(json!({"type": "subscribe", "id": "ok", "include": ["bar"]}))
        .await;
}

/// SIGTERM with a subscription evaluated apart: its worker thread ends once the hub
/// is freed, and is joined (said in the log) within the stop's bound; the hub exits
/// 0 by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_joins_the_worker_of_a_subscription_evaluated_apart() {
    let (_dir, mut hub, _log) = hub();
    let mut hostile = Client::connect(&hub).await;
    hostile
        .subscribe(json!({"type": "subscribe", "id": "h", "include": hostile_patterns(200)}))
        .await;
    assert_eq!(hub.metric("supergrep_isolated_subscriptions"), Some(1));
    hub.proc.signal("TERM");
    let status = hub.proc.wait_exit();
    let said = hub.proc.stderr_text();
    assert_eq!(status.code(), Some(0), "{status:?}; it said:\n{said}");
    // (Its compile thread had ended, and was joined when the worker started.)
    for thread in ["isolated-", "matcher"] {
        assert!(
            said.contains(&format!("stopping: joined the {thread}")),
            "the {thread} thread was not joined; the hub said:\n{said}"
        );
    }
    assert!(!said.contains("gave up"), "{said}");
}
