//! Streams belong to their source (README, "Safety"): an agent writes only streams
//! of its own name, never the hub's own files' or the syslog input's, and a stream
//! that went leaves `/metrics`. The real hub; agents as the real binary, or as a raw
//! WebSocket client on `/agent` where the test must say what a spoofing agent says.

mod support;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use support::agent::{write_numbered, Agent};
use support::files::{append, empty};
use support::hub::Hub;
use support::wait::wait_until;
use support::ws::{subscribe, try_connect, Client, Ws};
use support::{hostname, stream_id};
use tokio_tungstenite::tungstenite::Message;

async fn send(ws: &mut Ws, msg: Value) {
    ws.send(Message::text(msg.to_string())).await.unwrap();
}

/// The next text frame from the hub, as JSON.
async fn next(ws: &mut Ws) -> Value {
    loop {
        let frame = tokio::time::timeout(support::wait::PATIENCE, ws.next())
            .await
            .expect("an answer from the hub");
        match frame {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

fn lines(batch: u64, path: &str, set: &str, text: &str) -> Value {
    json!({"type": "lines", "batch": batch, "path": path, "set": set, "dev": 1, "ino": 2,
           "start": 0, "end": text.len(), "ts": "2026-12-07T00:00:00Z", "text": text})
}

/// A raw agent named `web01` on `hub`'s `/agent`, past its welcome.
async fn welcomed_agent(hub: &Hub) -> Ws {
    let mut ws = try_connect(&format!("{}/agent", hub.agent_url()), &[])
        .await
        .unwrap();
    let hello = json!({"type": "agent_hello", "version": 1, "name": "web01", "agent": "test"});
    send(&mut ws, hello).await;
    assert_eq!(next(&mut ws).await["type"], "welcome");
    ws
}

#[tokio::test]
async fn an_agent_cannot_write_the_syslog_inputs_streams() {
    let hub = Hub::start(&[]);
    let mut ws = welcomed_agent(&hub).await;

    // A path of the syslog input's, announced and then written to.
    let spoof = json!({"type": "stream_added", "path": "syslog:sshd", "set": "default"});
    send(&mut ws, spoof).await;
    let refused = next(&mut ws).await;
    assert_eq!(refused["code"], "stream_refused", "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("syslog"),
        "{refused}"
    );
    send(&mut ws, lines(1, "syslog:sshd", "default", "spoofed\n")).await;
    // Acknowledged all the same: the agent must not hold the batch forever.
    assert_eq!(next(&mut ws).await, json!({"type": "ack", "batch": 1}));

    // The set `syslog`, first seen in a batch (said once, however many batches).
    for batch in [2, 3] {
        send(
            &mut ws,
            lines(batch, "/var/log/x.log", "syslog", "spoofed\n"),
        )
        .await;
    }
    let refused = next(&mut ws).await;
    assert_eq!(refused["code"], "stream_refused", "{refused}");
    // Acks are cumulative: 2 and 3, or 3 alone; no second error between them.
    loop {
        let ack = next(&mut ws).await;
        assert_eq!(ack["type"], "ack", "{ack}");
        if ack["batch"] == 3 {
            break;
        }
    }

    // The connection lives, and the agent's own streams are taken.
    send(&mut ws, lines(4, "/var/log/app.log", "default", "fine\n")).await;
    assert_eq!(next(&mut ws).await, json!({"type": "ack", "batch": 4}));
    let ids: Vec<String> = hub.streams().into_iter().map(|s| s.0).collect();
    assert_eq!(ids, ["web01:/var/log/app.log"]);
    assert_eq!(hub.metric("supergrep_agent_batches_refused_total"), Some(3));
}

/// An agent named as the hub's own host would write into the hub's local streams
/// (same `host:path`) and, when it left, make them vanish from `/api/streams`.
#[test]
fn an_agent_may_not_take_the_hubs_own_name() {
    let dir = tempfile::tempdir().unwrap();
    let log = empty(dir.path().join("app.log"));
    let hub = Hub::start_following(&[log.to_str().unwrap()], &[&log]);
    let mut agent = Agent::spawn(&hub.agent_url(), &hostname(), &[&log], &[]);
    let status = agent.proc.wait_exit();
    assert_eq!(status.code(), Some(2));
    let said = agent.proc.stderr_text();
    assert!(said.contains("another --name"), "{said}");

    // The hub's stream is its own still, numbered by the hub alone.
    let ids: Vec<String> = hub.streams().into_iter().map(|s| s.0).collect();
    assert_eq!(ids, [stream_id(&log)]);
    let mut client = support::ws::SyncClient::connect(&hub.ws_url());
    client.subscribe("all", &[], 0);
    append(&log, "after the agent\n");
    let line = client.wait_text("after the agent");
    assert_eq!(line.seq, 1);
}

/// `supergrep_stream_lines_total` has a series per live stream only: an agent's
/// streams leave it with the agent (it grew with every stream ever seen).
#[test]
fn a_stream_that_went_leaves_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let log = empty(dir.path().join("app.log"));
    let hub = Hub::start(&[]);
    let mut agent = Agent::start(&hub.agent_url(), "web02", &[&log], &[]);
    write_numbered(&log, "web02", 1..=5);
    let series = format!(
        "supergrep_stream_lines_total{{stream=\"web02:{}\"}}",
        log.display()
    );
    wait_until("the agent's lines are counted", || {
        hub.metric(&series) == Some(5)
    });
    agent.proc.kill();
    wait_until("the agent's stream is gone", || hub.streams().is_empty());
    assert_eq!(hub.metric(&series), None, "{}", hub.metrics());
}

/// Two agents of one name would write into each other's streams, and the first to
/// leave would remove them: the second waits, saying why, until the name is free.
#[test]
fn a_second_agent_of_a_name_waits_until_the_first_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        empty(dir.path().join("a.log")),
        empty(dir.path().join("b.log")),
    );
    let hub = Hub::start(&[]);
    let mut first = Agent::start(&hub.agent_url(), "web03", &[&a], &[]);
    let mut second = Agent::spawn(&hub.agent_url(), "web03", &[&b], &[]);
    second
        .proc
        .wait_stderr(&["an agent named \"web03\" is connected already", "retrying"]);
    assert!(second.proc.running());
    let ids = |hub: &Hub| -> Vec<String> { hub.streams().into_iter().map(|s| s.0).collect() };
    append(&a, "from the first\n");
    wait_until("the first agent's stream", || {
        ids(&hub) == [format!("web03:{}", a.display())]
    });

    first.proc.kill();
    second.wait_connected(1);
    let mut client = support::ws::SyncClient::connect(&hub.ws_url());
    client.subscribe("all", &[], 0);
    append(&b, "from the second\n");
    let line = client.wait_text("from the second");
    assert_eq!(line.host, "web03");
    assert_eq!(ids(&hub), [format!("web03:{}", b.display())]);
}

/// A raw agent on a hub started with `toml` as its config file, past its welcome.
async fn agent_on_hub_with(toml: &str) -> (tempfile::TempDir, Hub, Ws) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hub.toml");
    std::fs::write(&config, toml).unwrap();
    let hub = Hub::start(&["--config", config.to_str().unwrap()]);
    let ws = welcomed_agent(&hub).await;
    (dir, hub, ws)
}

/// The time a client is given for a line an agent says it read in 2001.
async fn time_of_a_line_dated_2001(toml: &str) -> String {
    let (_dir, hub, mut agent) = agent_on_hub_with(toml).await;
    let mut client = Client::connect(&hub).await;
    client.subscribe(subscribe("all", &["dated"])).await;
    let mut batch = lines(1, "/var/log/app.log", "default", "dated 2001\n");
    batch["ts"] = json!("2001-01-01T00:00:00Z");
    send(&mut agent, batch).await;
    let (mut got, _) = client.lines_until(&["all"], "dated 2001").await;
    got.remove("all").unwrap().remove(0).ts
}

/// An agent's line times are taken as given only when the hub trusts them; else a
/// line is dated when the hub received it, so no agent can back- or forward-date
/// what a reader sees.
#[tokio::test]
async fn an_agents_line_times_are_the_hubs_unless_trusted() {
    let before = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let untrusted = time_of_a_line_dated_2001("").await;
    // RFC 3339 in UTC: later is greater as text.
    assert!(untrusted >= before, "{untrusted} is before {before}");

    let trusted = time_of_a_line_dated_2001("trust_agent_time = true\n").await;
    assert!(trusted.starts_with("2001-01-01T00:00:00"), "{trusted}");
}
