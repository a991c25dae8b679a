//! Issue 25 §6, against the real binary: garbage at every port a hub listens on
//! (WebSocket text and binary frames at `/ws` and `/agent`, before and after a valid
//! `agent_hello`; bytes at the HTTP port; bytes in arbitrary chunks at syslog over
//! TCP; datagrams at syslog over UDP), after which the hub still runs and a normal
//! client, subscribed all along, still gets its matches from a followed file, an
//! agent and syslog. And syslog's TCP framing, octet-counted and newline-framed mixed
//! and sent in arbitrary pieces: each message once, whole, in order.
//!
//! Quick by default; `SUPERGREP_FUZZ_CASES` raises the case counts, a fiftieth of it here
//! (benches/fuzz.sh).

mod fuzz_support;
mod support;

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use futures_util::SinkExt;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use supergrep::protocol::{HubMsg, WireLine};
use tokio_tungstenite::tungstenite::Message;

use fuzz_support::{any_text, byte_soup, config_costly, near_message, syslog_message};
use support::files::{append, TempLog};
use support::hub::Hub;
use support::wait::PATIENCE;
use support::ws::SyncClient;

/// One hostile thing to do to the hub.
#[derive(Debug, Clone)]
enum Attack {
    /// Frames at `/ws` (true: binary).
    Client(Vec<(bool, Vec<u8>)>),
    /// Frames at `/agent`, after a valid `agent_hello` or not.
    Agent {
        hello: bool,
        frames: Vec<(bool, Vec<u8>)>,
    },
    /// Bytes at the HTTP port, in pieces.
    Http(Vec<Vec<u8>>),
    /// Bytes at syslog over TCP, in pieces.
    SyslogTcp(Vec<Vec<u8>>),
    /// Datagrams at syslog over UDP.
    SyslogUdp(Vec<Vec<u8>>),
}

fn frame() -> impl Strategy<Value = (bool, Vec<u8>)> {
    prop_oneof![
        3 => near_message().prop_map(|m| (false, m.into_bytes())),
        1 => any_text(64).prop_map(|t| (false, t.into_bytes())),
        2 => byte_soup(96).prop_map(|b| (true, b)),
        // A binary `lines` frame with a near-valid header.
        2 => (near_message(), byte_soup(64)).prop_map(|(head, body)| {
            let mut frame = head.into_bytes();
            frame.push(b'\n');
            frame.extend_from_slice(&body);
            (true, frame)
        }),
    ]
}

fn pieces() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let piece = prop_oneof![
        byte_soup(48),
        syslog_message().prop_map(String::into_bytes),
        (syslog_message(), 0usize..2000)
            .prop_map(|(m, extra)| format!("{} {m}", m.len() + extra).into_bytes()),
    ];
    prop::collection::vec(piece, 1..8)
}

fn attack() -> impl Strategy<Value = Attack> {
    let frames = || prop::collection::vec(frame(), 1..6);
    prop_oneof![
        frames().prop_map(Attack::Client),
        (any::<bool>(), frames()).prop_map(|(hello, frames)| Attack::Agent { hello, frames }),
        prop::collection::vec(byte_soup(64), 1..4).prop_map(Attack::Http),
        pieces().prop_map(Attack::SyslogTcp),
        prop::collection::vec(
            prop_oneof![byte_soup(64), syslog_message().prop_map(String::into_bytes)],
            1..6
        )
        .prop_map(Attack::SyslogUdp),
    ]
}

/// Sends `frames` on a new connection to `url` (after an `agent_hello` if `hello`),
/// then closes it. Refusals and resets are the hub's right.
async fn ws_frames(url: &str, hello: Option<&str>, frames: &[(bool, Vec<u8>)]) {
    let Ok(Ok((mut ws, _))) =
        tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(url)).await
    else {
        panic!("{url}: no WebSocket connection");
    };
    if let Some(name) = hello {
        let hello =
            serde_json::json!({"type": "agent_hello", "version": 1, "name": name, "agent": "fuzz"});
        let _ = ws.send(Message::text(hello.to_string())).await;
    }
    for (binary, bytes) in frames {
        let msg = match binary {
            true => Message::binary(bytes.clone()),
            false => Message::text(String::from_utf8_lossy(bytes).into_owned()),
        };
        if ws.send(msg).await.is_err() {
            return;
        }
    }
    let _ = ws.close(None).await;
}

/// Bytes in pieces on one TCP connection, which is then closed.
fn tcp_pieces(port: u16, pieces: &[Vec<u8>]) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_nodelay(true).unwrap();
    for piece in pieces {
        if stream.write_all(piece).is_err() {
            return;
        }
    }
}

/// The hub's answers to one agent, up to its `ack` of `batch`.
async fn agent_round(hub: &Hub, name: &str, text: &str) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{}/agent", hub.agent_url()))
        .await
        .unwrap();
    let hello =
        serde_json::json!({"type": "agent_hello", "version": 1, "name": name, "agent": "fuzz"});
    ws.send(Message::text(hello.to_string())).await.unwrap();
    let lines = serde_json::json!({
        "type": "lines", "batch": 1, "path": "/fuzz/agent.log", "set": "default",
        "dev": 1, "ino": 1, "start": 0, "end": text.len(), "ts": "", "text": text,
    });
    ws.send(Message::text(lines.to_string())).await.unwrap();
    loop {
        let next = tokio::time::timeout(PATIENCE, futures_util::StreamExt::next(&mut ws)).await;
        let Ok(Some(Ok(msg))) = next else {
            panic!("agent {name}: no ack from the hub");
        };
        if let Message::Text(t) = msg {
            match serde_json::from_str::<HubMsg>(t.as_str()).unwrap() {
                HubMsg::Ack { batch: 1 } => break,
                HubMsg::Error { code, message } => panic!("agent {name}: {code}: {message}"),
                _ => {}
            }
        }
    }
    let _ = ws.close(None).await;
}

/// A hub with syslog on both transports, following one file, and a client
/// subscribed to the lines that check it.
fn target() -> (Hub, u16, TempLog, SyncClient) {
    let log = TempLog::new("followed.log");
    let syslog = support::free_port();
    let addr = format!("127.0.0.1:{syslog}");
    let hub = Hub::start_following(
        &["--syslog-udp", &addr, "--syslog-tcp", &addr, log.s()],
        &[log.path.as_path()],
    );
    let mut client = SyncClient::connect(&hub.ws_url());
    client.subscribe("check", &["^fuzz-(file|agent|tcp|udp) \\d+$"], 0);
    (hub, syslog, log, client)
}

/// The hub runs, and each way in still works: a line appended to the followed
/// file, one from a new agent, one over syslog TCP and one over UDP all reach the
/// client subscribed before the attacks.
fn still_serving(
    rt: &tokio::runtime::Runtime,
    hub: &mut Hub,
    syslog: u16,
    log: &TempLog,
    client: &mut SyncClient,
    n: u64,
) {
    assert!(
        hub.proc.running(),
        "the hub ended: {}",
        hub.proc.stderr_text()
    );
    append(&log.path, &format!("fuzz-file {n}\n"));
    rt.block_on(agent_round(
        hub,
        &format!("fuzz-check-{n}"),
        &format!("fuzz-agent {n}\n"),
    ));
    tcp_pieces(
        syslog,
        &[format!("<13>Nov 22 03:00:00 h fuzz: fuzz-tcp {n}\n").into_bytes()],
    );
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let datagram = format!("<13>Nov 22 03:00:00 h fuzz: fuzz-udp {n}");
    for kind in ["file", "agent", "tcp", "udp"] {
        let want = format!("fuzz-{kind} {n}");
        if kind == "udp" {
            // UDP may lose a datagram even on loopback: sent again until it arrives.
            client.wait_lines(&want, |ls: &[WireLine]| {
                let _ = udp.send_to(datagram.as_bytes(), ("127.0.0.1", syslog));
                ls.iter().any(|l| l.text == want)
            });
        } else {
            client.wait_text(&want);
        }
    }
    assert!(
        client.closed.is_none(),
        "the checking client was closed: {:?}",
        client.closed
    );
}

#[test]
fn garbage_at_every_port_leaves_the_hub_serving() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (hub, syslog, log, client) = target();
    let (ws_url, agent_url) = (hub.ws_url(), format!("{}/agent", hub.agent_url()));
    let mut runner = TestRunner::new(config_costly(24));
    let port = hub.port;
    let (hub, client, rounds) = (RefCell::new(hub), RefCell::new(client), Cell::new(0u64));
    let attacks = prop::collection::vec(attack(), 1..6);
    runner
        .run(&attacks, |attacks| {
            let round = rounds.get() + 1;
            rounds.set(round);
            for (k, attack) in attacks.iter().enumerate() {
                match attack {
                    Attack::Client(frames) => rt.block_on(ws_frames(&ws_url, None, frames)),
                    Attack::Agent { hello, frames } => {
                        let name = format!("fuzz-{round}-{k}");
                        rt.block_on(ws_frames(
                            &agent_url,
                            hello.then_some(name.as_str()),
                            frames,
                        ))
                    }
                    Attack::Http(pieces) => tcp_pieces(port, pieces),
                    Attack::SyslogTcp(pieces) => tcp_pieces(syslog, pieces),
                    Attack::SyslogUdp(datagrams) => {
                        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
                        for d in datagrams {
                            let _ = udp.send_to(d, ("127.0.0.1", syslog));
                        }
                    }
                }
            }
            still_serving(
                &rt,
                &mut hub.borrow_mut(),
                syslog,
                &log,
                &mut client.borrow_mut(),
                round,
            );
            Ok(())
        })
        .unwrap();
}

// ---------------------------------------------------------------------------------------
// Syslog over TCP: framing

/// One message as a sender frames it: octet-counted (RFC 6587) or ended by `\n`.
fn framed(text: &str, counted: bool) -> Vec<u8> {
    let msg = format!("<13>Nov 22 03:00:00 web01 app: {text}");
    match counted {
        true => format!("{} {msg}", msg.len()).into_bytes(),
        false => format!("{msg}\n").into_bytes(),
    }
}

/// Cuts `bytes` at `cuts` (indices into it, any order), inside an octet count and
/// the `<` after it too.
fn cut_at(bytes: &[u8], cuts: &[prop::sample::Index]) -> Vec<Vec<u8>> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
    at.extend([0, bytes.len()]);
    at.sort_unstable();
    at.dedup();
    at.windows(2).map(|w| bytes[w[0]..w[1]].to_vec()).collect()
}

#[test]
fn syslog_tcp_framing_keeps_every_message_whole_and_once() {
    let (hub, _, tcp) = Hub::start_syslog(&[]);
    let mut client = SyncClient::connect(&hub.ws_url());
    client.subscribe("framed", &["^framed "], 0);
    let mut runner = TestRunner::new(config_costly(24));
    let (client, sent) = (RefCell::new(client), Cell::new(0usize));
    let messages = (
        prop::collection::vec((any::<bool>(), any_text(40)), 1..12),
        prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    );
    runner
        .run(&messages, |(messages, cuts)| {
            let (mut bytes, mut want) = (Vec::new(), Vec::new());
            for (counted, text) in &messages {
                // One message is one line (no newline inside), with a number to tell
                // it by.
                let n = sent.get();
                sent.set(n + 1);
                let text = format!("framed {n} {}", text.replace(['\n', '\r', '\0'], " "));
                bytes.extend_from_slice(&framed(&text, *counted));
                want.push(text);
            }
            // Newline-framed last, or the counted one would wait for more.
            let mut client = client.borrow_mut();
            let before = client.lines.len();
            let last = format!("framed {} end", sent.get());
            sent.set(sent.get() + 1);
            bytes.extend_from_slice(&framed(&last, false));
            want.push(last.clone());
            let pieces = cut_at(&bytes, &cuts);
            let mut stream = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
            stream.set_nodelay(true).unwrap();
            for piece in &pieces {
                stream.write_all(piece).unwrap();
                // Each piece its own read: the hub sees the cuts.
                std::thread::sleep(Duration::from_millis(1));
            }
            client.wait_text(&last);
            let got: Vec<&str> = client.lines[before..]
                .iter()
                .map(|l| l.text.as_str())
                .collect();
            prop_assert_eq!(got, want, "pieces: {:?}", pieces);
            Ok(())
        })
        .unwrap();
}

/// Found while writing the framing property: the hub reads TCP through an 8 KiB
/// buffer and recognised an octet count only when the buffer's rest showed the
/// count, its space and the `<` after it. When a read ended inside that prefix,
/// which a fast octet-counting sender (rsyslog's `TCP_Framing="octet-counted"`)
/// makes happen at 8 KiB boundaries, the message was taken as newline-framed: it
/// and the counted messages after it, which end in no newline, ran together into
/// one line, up to the next newline or the line limit. Here a first message of
/// 8,190 bytes puts the next one's count at the buffer's end.
#[test]
fn regression_an_octet_count_across_the_read_buffers_end_is_still_a_count() {
    let (hub, _, tcp) = Hub::start_syslog(&[]);
    let mut client = SyncClient::connect(&hub.ws_url());
    client.subscribe("framed", &["framed "], 0);
    let head = framed("framed 0 ", false);
    let first = format!("framed 0 {}", "x".repeat(8190 - head.len()));
    let mut bytes = framed(&first, false);
    assert_eq!(bytes.len(), 8190);
    bytes.extend(framed("framed 1", true));
    bytes.extend(framed("framed 2", true));
    bytes.extend(framed("framed 3 end", false));
    let mut stream = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    stream.write_all(&bytes).unwrap();
    client.wait_lines("the last message", |ls| {
        ls.iter().any(|l| l.text.contains("framed 3 end"))
    });
    let got: Vec<&str> = client.lines.iter().map(|l| l.text.as_str()).collect();
    // Was: [first, "39 <13>Nov 22 03:00:00 web01 app: framed 139 <13>Nov 22 03:00:00
    // web01 app: framed 2<13>Nov 22 03:00:00 web01 app: framed 3 end"].
    assert_eq!(
        got,
        [first.as_str(), "framed 1", "framed 2", "framed 3 end"]
    );
}
