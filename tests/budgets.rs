//! Issue 25 §2: the hub's pattern budgets per client connection, per remote address
//! and for the whole hub, shared fairly: one attacker's connections cannot use up the
//! hub for everyone else. Real hubs, real WebSocket clients; other machines are other
//! loopback addresses (127.0.0.2, …), which the hub tells apart.

mod support;

use std::path::Path;

use supergrep::protocol::ServerMsg;
use support::files::{append, empty_files};
use support::hub::Hub;
use support::proc::supergrep;
use support::ws::Client;

/// A hub with `toml` as its config, following one empty file (returned).
fn hub_with_config(toml: &str) -> (tempfile::TempDir, std::path::PathBuf, Hub) {
    let dir = tempfile::tempdir().unwrap();
    let f = empty_files(dir.path(), &["app.log"]).remove(0);
    let config = dir.path().join("hub.toml");
    std::fs::write(&config, toml).unwrap();
    let hub = Hub::start_following(&["--config", s(&config), s(&f)], &[&f]);
    (dir, f, hub)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `n` distinct literal patterns, named after `tag`.
fn patterns(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{tag}-{i}-never")).collect()
}

/// Subscribes `id` to `include` and returns the hub's answer: `Ok` for `subscribed`,
/// else the error's code and message.
async fn subscribe(c: &mut Client, id: &str, include: &[String]) -> Result<(), (String, String)> {
    c.send(serde_json::json!({"type": "subscribe", "id": id, "include": include}))
        .await;
    let answer = c
        .recv_where(|m| match m {
            ServerMsg::Subscribed { id: i } => i == id,
            ServerMsg::Error { id: i, .. } => i.as_deref() == Some(id),
            _ => false,
        })
        .await;
    match answer {
        ServerMsg::Error { code, message, .. } => Err((code, message)),
        _ => Ok(()),
    }
}

/// The code a subscribe was refused with (panics if it was admitted).
async fn refused(c: &mut Client, id: &str, include: &[String]) -> (String, String) {
    subscribe(c, id, include)
        .await
        .expect_err("the subscribe was admitted")
}

/// Subscribes refused so far with `code`, as `/metrics` counts them.
fn refusals(hub: &Hub, code: &str) -> Option<u64> {
    hub.metric(&format!(
        "supergrep_subscribes_refused_total{{code=\"{code}\"}}"
    ))
}

/// The attack of the issue: 20 connections × 1,000 patterns from one address took
/// the hub's whole 20,000, and every other client's "Failed password" was refused.
/// Now that address stops at its own 4,000, and another client subscribes and gets
/// its matches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_use_up_the_hub() {
    let (_dir, log, hub) = hub_with_config("");
    let mut attackers = Vec::new();
    let mut admitted = 0;
    for c in 0..20 {
        let mut client = Client::connect_from(&hub.ws_url(), "127.0.0.1").await;
        match subscribe(&mut client, "flood", &patterns(&format!("a{c}"), 1000)).await {
            Ok(()) => admitted += 1,
            Err((code, message)) => {
                assert_eq!(code, "address_budget", "{message}");
                assert!(message.contains("4000"), "the limit is named: {message}");
            }
        }
        attackers.push(client);
    }
    let mut user = Client::connect_from(&hub.ws_url(), "127.0.0.2").await;
    subscribe(&mut user, "ssh", &["Failed password".into()])
        .await
        .expect("another address subscribes");
    assert_eq!(admitted, 4, "4 × 1,000 patterns per address");
    assert_eq!(refusals(&hub, "address_budget"), Some(16));
    assert_eq!(hub.metric("supergrep_client_patterns"), Some(4001));
    append(&log, "sshd[1]: Failed password for root\n");
    let (got, _) = user
        .lines_until(&["ssh"], "sshd[1]: Failed password for root")
        .await;
    assert_eq!(got["ssh"].len(), 1);
}

/// Each limit refuses with its own code, says its numbers, and is counted in
/// `/metrics`: the client's patterns (`too_many_patterns`, as before), the
/// address's (`address_budget`); another address has a budget of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_limit_has_its_own_code_and_count() {
    let (_dir, _log, hub) = hub_with_config(
        "[limits]\nmax_patterns_per_client = 10\nmax_patterns_per_address = 25\n\
         max_subscriptions_per_client = 2\n",
    );
    let url = hub.ws_url();
    let mut one = Client::connect_from(&url, "127.0.0.1").await;
    let mut two = Client::connect_from(&url, "127.0.0.1").await;
    let mut three = Client::connect_from(&url, "127.0.0.1").await;
    subscribe(&mut one, "a", &patterns("one", 10))
        .await
        .unwrap();
    let (code, message) = refused(&mut one, "b", &patterns("one-more", 1)).await;
    assert_eq!(code, "too_many_patterns");
    assert!(message.contains("10 patterns per client"), "{message}");
    subscribe(&mut one, "every line", &[]).await.unwrap();
    let (code, message) = refused(&mut one, "third", &[]).await;
    assert_eq!(code, "too_many_subscriptions");
    assert!(message.contains("at most 2 subscriptions"), "{message}");
    subscribe(&mut two, "a", &patterns("two", 10))
        .await
        .unwrap();
    let (code, message) = refused(&mut three, "a", &patterns("three", 6)).await;
    assert_eq!(code, "address_budget");
    assert!(
        message.contains("25 patterns per address (127.0.0.1)") && message.contains("26"),
        "{message}"
    );
    subscribe(&mut three, "a", &patterns("three", 5))
        .await
        .unwrap();

    let mut elsewhere = Client::connect_from(&url, "127.0.0.3").await;
    subscribe(&mut elsewhere, "a", &patterns("elsewhere", 10))
        .await
        .unwrap();
    assert_eq!(refusals(&hub, "too_many_subscriptions"), Some(1));
    assert_eq!(refusals(&hub, "too_many_patterns"), Some(1));
    assert_eq!(refusals(&hub, "address_budget"), Some(1));
    // Every code is listed from the start, and only subscribes are counted.
    assert_eq!(refusals(&hub, "hub_budget"), Some(0));
    assert_eq!(hub.metric("supergrep_client_patterns"), Some(35));
}

/// At the hub's total, the address over its share gives way to the one within it:
/// its largest subscription is dropped (and it is told, `hub_budget`), never the
/// newcomer refused; and an address over its share is refused at the total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_hub_total_the_address_over_its_share_gives_way() {
    let (_dir, log, hub) = hub_with_config(
        "[limits]\nmax_patterns = 30\nmax_patterns_per_client = 30\nmax_patterns_per_address = 30\n",
    );
    let url = hub.ws_url();
    let mut big = Client::connect_from(&url, "127.0.0.1").await;
    subscribe(&mut big, "small", &patterns("big", 10))
        .await
        .unwrap();
    subscribe(&mut big, "large", &patterns("bigger", 20))
        .await
        .unwrap();

    // The hub holds its 30; 127.0.0.2 asks for 5, within its share (30 / 2).
    let mut newcomer = Client::connect_from(&url, "127.0.0.2").await;
    let mut wanted = patterns("new", 4);
    wanted.push("Failed password".into());
    subscribe(&mut newcomer, "ssh", &wanted).await.unwrap();
    let dropped = big
        .recv_where(|m| matches!(m, ServerMsg::Error { .. }))
        .await;
    let ServerMsg::Error {
        id, code, message, ..
    } = dropped
    else {
        unreachable!()
    };
    assert_eq!(
        (id.as_deref(), code.as_str()),
        (Some("large"), "hub_budget")
    );
    assert!(message.contains("share of 15"), "{message}");
    assert_eq!(hub.metric("supergrep_subscriptions_revoked_total"), Some(1));
    assert_eq!(hub.metric("supergrep_client_patterns"), Some(15));

    // The newcomer's subscription works: the matcher took it.
    append(&log, "Failed password for root\n");
    let (got, _) = newcomer
        .lines_until(&["ssh"], "Failed password for root")
        .await;
    assert_eq!(got["ssh"].len(), 1);

    // Below the total anyone may grow; at it, one over its share is refused.
    subscribe(&mut big, "again", &patterns("again", 15))
        .await
        .unwrap();
    let (code, message) = refused(&mut big, "more", &patterns("more", 1)).await;
    assert_eq!(code, "hub_budget");
    assert!(
        message.contains("would hold 26, over its share of 15"),
        "{message}"
    );
    // Refused once; the subscription dropped to make room is not a refused subscribe.
    assert_eq!(refusals(&hub, "hub_budget"), Some(1));
}

/// A client's patterns go back to its address's budget when it replaces a
/// subscription, unsubscribes, or goes (here abruptly: the TCP connection dropped
/// without a close frame); another client then uses them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patterns_are_released_on_replace_unsubscribe_and_disconnect() {
    let (_dir, _log, hub) =
        hub_with_config("[limits]\nmax_patterns_per_client = 10\nmax_patterns_per_address = 10\n");
    let url = hub.ws_url();
    let mut one = Client::connect_from(&url, "127.0.0.1").await;
    let mut two = Client::connect_from(&url, "127.0.0.1").await;
    subscribe(&mut one, "x", &patterns("one", 10))
        .await
        .unwrap();
    assert_eq!(
        refused(&mut two, "y", &patterns("two", 1)).await.0,
        "address_budget"
    );

    // Replaced: the new 4 count, the old 10 no longer.
    subscribe(&mut one, "x", &patterns("one-again", 4))
        .await
        .unwrap();
    subscribe(&mut two, "y", &patterns("two", 6)).await.unwrap();
    assert_eq!(
        refused(&mut two, "z", &patterns("two-more", 1)).await.0,
        "address_budget"
    );

    // Unsubscribed (no answer: the gauge says when the hub let go).
    one.send(serde_json::json!({"type": "unsubscribe", "id": "x"}))
        .await;
    hub.wait_metric("supergrep_client_patterns", 6);
    subscribe(&mut two, "z", &patterns("two-more", 4))
        .await
        .unwrap();

    // Gone without a word: dropping the socket sends no close frame.
    drop(two);
    hub.wait_metric("supergrep_client_patterns", 0);
    let mut three = Client::connect_from(&url, "127.0.0.1").await;
    subscribe(&mut three, "all", &patterns("three", 10))
        .await
        .unwrap();
    assert_eq!(refusals(&hub, "address_budget"), Some(2));
}

/// Issue 25 §2 (d): patterns count, and so does what they compile to. One
/// connection subscribing big patterns (each well within the per-pattern cap) is
/// refused at its budget of compiled bytes (`compiled_budget`, the limit named),
/// then another of the same address at the address's; a client of another address
/// still subscribes and gets its match.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_bytes_are_budgeted_per_connection_and_per_address() {
    let (_dir, log, hub) = hub_with_config(
        "[limits]\nmax_subscriptions_per_client = 1000\n\
         max_compiled_bytes_per_client = 4000000\nmax_compiled_bytes_per_address = 6000000\n",
    );
    let url = hub.ws_url();
    // One subscribe per pattern, until refused: the refusal says why.
    async fn fill(c: &mut Client, tag: &str) -> (usize, String, String) {
        for i in 0..200 {
            let big = vec![format!(r"{tag}-{i}-\w{{10}}")];
            if let Err((code, message)) = subscribe(c, &format!("{tag}{i}"), &big).await {
                return (i, code, message);
            }
        }
        panic!("200 big subscriptions admitted");
    }
    let mut greedy = Client::connect_from(&url, "127.0.0.1").await;
    let (admitted, code, message) = fill(&mut greedy, "g").await;
    assert_eq!(code, "compiled_budget", "{message}");
    assert!(
        message.contains("at most 4000000 compiled bytes of patterns per client"),
        "{message}"
    );
    assert!(
        admitted > 0 && message.contains("this subscription compiles to at least"),
        "{message}"
    );
    let mut second = Client::connect_from(&url, "127.0.0.1").await;
    let (_, code, message) = fill(&mut second, "s").await;
    assert_eq!(code, "compiled_budget", "{message}");
    assert!(
        message.contains("at most 6000000 compiled bytes of patterns per address (127.0.0.1)"),
        "{message}"
    );

    let mut user = Client::connect_from(&url, "127.0.0.2").await;
    subscribe(&mut user, "ssh", &["Failed password".into()])
        .await
        .expect("another address subscribes");
    append(&log, "sshd[1]: Failed password for root\n");
    let (got, _) = user
        .lines_until(&["ssh"], "sshd[1]: Failed password for root")
        .await;
    assert_eq!(got["ssh"].len(), 1);
    assert_eq!(refusals(&hub, "compiled_budget"), Some(2));
}

/// `supergrep --connect` whose subscription a limit refuses says so, naming the
/// limit, and exits with status 2: before, it said the message and went on running
/// with no subscription, printing nothing ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_refused_by_a_budget_says_which_and_exits_2() {
    let (_dir, _log, hub) = hub_with_config("[limits]\nmax_patterns_per_address = 2\n");
    let mut full = Client::connect_from(&hub.ws_url(), "127.0.0.1").await;
    subscribe(&mut full, "a", &patterns("full", 2))
        .await
        .unwrap();
    let mut terminal = supergrep(&["--connect", &hub.bare_ws_url(), "-e", "error"]);
    let status = terminal.wait_exit();
    let said = terminal.stderr_text();
    assert_eq!(status.code(), Some(2), "{said}");
    assert!(
        said.contains("supergrep: the hub at ws://127.0.0.1:")
            && said.contains("refused our subscription (address_budget)")
            && said.contains("at most 2 patterns per address"),
        "{said}"
    );
    assert_eq!(refusals(&hub, "address_budget"), Some(1));
}

/// The per-client pattern limit is a limit like the others to `--connect`: named
/// with its code, status 2 (it used to print the bare message).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_over_the_client_pattern_limit_names_it_and_exits_2() {
    let (_dir, _log, hub) = hub_with_config("[limits]\nmax_patterns_per_client = 1\n");
    let mut terminal = supergrep(&["--connect", &hub.bare_ws_url(), "-e", "a", "-e", "b"]);
    let status = terminal.wait_exit();
    let said = terminal.stderr_text();
    assert_eq!(status.code(), Some(2), "{said}");
    assert!(
        said.contains("refused our subscription (too_many_patterns)")
            && said.contains("1 patterns per client"),
        "{said}"
    );
    assert_eq!(refusals(&hub, "too_many_patterns"), Some(1));
}

/// `supergrep --connect` whose subscription the hub later drops to make room for
/// another address within its share (`hub_budget`, unasked) says so and exits 2,
/// rather than go on with nothing; the other address gets its match.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_whose_subscription_is_dropped_says_so_and_exits_2() {
    let (_dir, log, hub) = hub_with_config(
        "[limits]\nmax_patterns = 4\nmax_patterns_per_client = 4\nmax_patterns_per_address = 4\n",
    );
    let args = ["-e", "one", "-e", "two", "-e", "three", "-e", "error"];
    let url = hub.bare_ws_url();
    let mut terminal = supergrep(&[&["--connect", url.as_str()][..], &args].concat());
    // It holds the hub's 4 patterns (in the matcher: the count of patterns is
    // reserved before), and prints what matches.
    hub.wait_metric("supergrep_subscriptions", 1);
    assert_eq!(hub.metric("supergrep_client_patterns"), Some(4));
    append(&log, "an error before\n");
    assert_eq!(
        terminal.lines(1),
        [format!("{}:an error before", support::stream_id(&log))]
    );

    // 127.0.0.2 asks for 1, within its share (4 / 2): the terminal's goes.
    let mut other = Client::connect_from(&hub.ws_url(), "127.0.0.2").await;
    subscribe(&mut other, "ssh", &["Failed password".into()])
        .await
        .expect("the address within its share is admitted");
    let status = terminal.wait_exit();
    let said = terminal.stderr_text();
    assert_eq!(status.code(), Some(2), "{said}");
    assert!(
        said.contains("dropped our subscription (hub_budget)") && said.contains("share of 2"),
        "{said}"
    );
    assert_eq!(hub.metric("supergrep_subscriptions_revoked_total"), Some(1));
    append(&log, "Failed password for root\n");
    let (got, _) = other
        .lines_until(&["ssh"], "Failed password for root")
        .await;
    assert_eq!(got["ssh"].len(), 1);
}
