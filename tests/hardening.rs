//! Issue 25's hardening, where it spans sources: names agents send are escaped, and
//! a hub out of file descriptors waits, counts the failed accepts, and serves again
//! once descriptors free up.

mod support;

use std::io::Write;

use support::agent::Agent;
use support::files::append;
use support::free_port;
use support::http::{metric_in, try_http};
use support::hub::{open_fds, serve_with_few_descriptors, Hub};
use support::proc::Proc;
use support::wait::wait_until;
use support::ws::SyncClient;

/// A path with control characters (a file named with ESC) comes through an agent
/// escaped, as `%1B`, so that it cannot drive a terminal that prints it.
#[test]
fn control_characters_in_an_agents_paths_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("evil\u{1b}]0;title\u{7}.log");
    std::fs::write(&file, "").unwrap();
    let hub = Hub::start(&[]);
    let mut client = SyncClient::connect(&hub.ws_url());
    client.subscribe("all", &[], 0);
    let _agent = Agent::start(&hub.agent_url(), "web01", &[&file], &[]);
    append(&file, "through the agent\n");
    let line = client.wait_text("through the agent");
    let want = format!("{}/evil%1B]0;title%07.log", dir.path().display());
    assert_eq!(
        (line.host.as_str(), line.path.as_str()),
        ("web01", want.as_str())
    );
    let streams = hub.streams();
    assert!(
        streams.iter().any(|s| s.0 == format!("web01:{want}")),
        "{streams:?}"
    );
}

/// A hub limited to `limit` descriptors, with syslog over TCP: `(hub, its HTTP
/// port, its syslog port)`.
fn hub_with_few_descriptors(limit: u32) -> (Proc, u16, u16) {
    let (port, syslog) = (free_port(), free_port());
    let args = [
        "--listen".to_owned(),
        format!("127.0.0.1:{port}"),
        "--syslog-tcp".to_owned(),
        format!("127.0.0.1:{syslog}"),
    ];
    (serve_with_few_descriptors(limit, &args), port, syslog)
}

/// Out of file descriptors, accepting failed at once again and again (100% of a
/// core); now each failure waits and is counted, and the hub serves again when
/// descriptors free up.
#[test]
fn out_of_descriptors_accepts_wait_are_counted_and_recover() {
    let limit = 64;
    let (hub, port, syslog) = hub_with_few_descriptors(limit);
    // Senders from several addresses (each has a cap of its own), until the hub
    // holds every descriptor it may.
    let mut senders = Vec::new();
    for k in 0..(limit as usize + 16) {
        let ip = format!("127.0.0.{}", 2 + k / 50);
        senders.push(support::connect_from(&ip, syslog));
    }
    wait_until("the hub out of descriptors", || {
        open_fds(hub.pid()) >= limit as usize
    });
    drop(senders);
    // Descriptors free up: the hub answers again, and counted what failed.
    let mut errors = None;
    wait_until("/metrics again, with the failed accepts", || {
        let answer = try_http(port, "GET", "/metrics", &[], "");
        errors = answer
            .ok()
            .filter(|(status, _)| *status == 200)
            .and_then(|(_, body)| metric_in(&body, "supergrep_accept_errors_total"));
        errors.is_some_and(|n| n > 0)
    });
    // And syslog takes senders again.
    let mut client = SyncClient::connect(&format!("ws://127.0.0.1:{port}/ws"));
    client.subscribe("all", &[], 0);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", syslog)).unwrap();
    s.write_all(b"<13>Nov 22 03:00:00 web01 app: after the shortage\n")
        .unwrap();
    client.wait_text("after the shortage");
}
