//! The hub's syslog input (`supergrep serve --syslog-udp ADDR --syslog-tcp ADDR`), fed
//! by real senders: an `rsyslogd` started here (imfile → omfwd over TCP, both framings),
//! util-linux `logger` (UDP, TCP, octet counting, RFC 5424 and 3164), and hand-made
//! malformed input. A WebSocket client on the hub checks host, path, set and text.
//!
//! Needs `rsyslogd` and `logger` (Debian/Ubuntu packages `rsyslog` and `bsdutils`).

mod support;

use std::io::Write;
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use supergrep::protocol::WireLine;
use support::files::append;
use support::hub::Hub;
use support::proc::Proc;
use support::ws::SyncClient;
use support::{connect_from, free_port, hostname, short_hostname};

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("supergrep-syslog-test")
        .tempdir()
        .unwrap()
}

/// A hub with syslog input on free ports, and a client subscribed to every line (as
/// `all`): `(hub, client, udp port, tcp port)`.
fn hub_and_client() -> (Hub, SyncClient, u16, u16) {
    let (hub, udp, tcp) = Hub::start_syslog(&[]);
    let mut client = SyncClient::connect(&hub.ws_url());
    client.subscribe("all", &[], 0);
    (hub, client, udp, tcp)
}

fn udp_send(port: u16, data: &[u8]) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.send_to(data, ("127.0.0.1", port)).unwrap();
}

fn tcp_connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port)).unwrap()
}

/// `(host, path, set, text)` of a line.
fn fields(l: &WireLine) -> (&str, &str, &str, &str) {
    (&l.host, &l.path, &l.set, &l.text)
}

// ---------------------------------------------------------------------------------
// 6. rsyslogd
// ---------------------------------------------------------------------------------

fn rsyslogd() -> Command {
    Command::new(support::tool("rsyslogd", "rsyslog"))
}

/// A config for a foreground rsyslogd of its own: only imfile (no imuxsock, so no
/// /dev/log; no imklog), its work directory in `dir`, forwarding to the hub over TCP.
fn rsyslog_conf(
    dir: &Path,
    watched: &Path,
    port: u16,
    framing: Option<&str>,
    hostname: Option<&str>,
) -> String {
    let work = dir.join("rsyslog-work");
    std::fs::create_dir_all(&work).unwrap();
    let hostname = hostname
        .map(|h| format!(" localHostname=\"{h}\""))
        .unwrap_or_default();
    let framing = framing
        .map(|f| format!(" TCP_Framing=\"{f}\""))
        .unwrap_or_default();
    format!(
        "global(workDirectory=\"{work}\"{hostname})\n\
         module(load=\"imfile\")\n\
         input(type=\"imfile\" File=\"{watched}\" Tag=\"myapp:\")\n\
         action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{port}\" protocol=\"tcp\"{framing})\n",
        work = work.display(),
        watched = watched.display(),
    )
}

fn rsyslog_forwards_appended_lines(framing: Option<&str>, hostname: Option<&str>) {
    let dir = tempdir();
    let (hub, _, tcp) = Hub::start_syslog(&[]);
    let mut client = SyncClient::connect(&hub.ws_url());
    client.subscribe("rs", &["rsyslog says"], 0);

    let watched = dir.path().join("app.log");
    std::fs::write(&watched, "").unwrap();
    let conf = dir.path().join("rsyslog.conf");
    std::fs::write(
        &conf,
        rsyslog_conf(dir.path(), &watched, tcp, framing, hostname),
    )
    .unwrap();
    let check = rsyslogd()
        .arg("-N1")
        .arg("-f")
        .arg(&conf)
        .output()
        .expect("run rsyslogd (package rsyslog)");
    assert!(
        check.status.success(),
        "rsyslogd -N1 refused the config: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let mut cmd = rsyslogd();
    cmd.arg("-n")
        .arg("-f")
        .arg(&conf)
        .arg("-i")
        .arg(dir.path().join("rsyslogd.pid"));
    let mut rsyslogd = Proc::spawn("rsyslogd", cmd);

    // imfile reads a new file from its start: nothing to wait for before writing.
    let written: Vec<String> = (1..=20)
        .map(|i| format!("rsyslog says {i:03} héllo ✓ [x=\"1\"] done"))
        .collect();
    for chunk in written.chunks(6) {
        let mut s = String::new();
        for l in chunk {
            s.push_str(l);
            s.push('\n');
        }
        append(&watched, &s);
    }
    let last = written.last().unwrap().clone();
    client.wait_lines("rsyslog's last line", |ls| {
        ls.iter().any(|l| l.text == last)
    });
    client.settle(Duration::from_millis(300));
    assert!(rsyslogd.running(), "rsyslogd: {}", rsyslogd.stderr_text());

    // What rsyslog sends as HOSTNAME: its local host name without the domain, or the
    // one configured.
    let host = hostname.map_or_else(short_hostname, str::to_owned);
    let got: Vec<_> = client.lines.iter().map(fields).collect();
    let want: Vec<_> = written
        .iter()
        .map(|t| (host.as_str(), "syslog:myapp", "syslog", t.as_str()))
        .collect();
    assert_eq!(got, want);
    let id = format!("{host}:syslog:myapp");
    assert!(
        hub.streams().iter().any(|s| s.0 == id && s.3 == "syslog"),
        "{:?}",
        hub.streams()
    );
    rsyslogd.signal("TERM");
    rsyslogd.wait_exit();
}

#[test]
fn rsyslog_imfile_lines_arrive_octet_counted() {
    rsyslog_forwards_appended_lines(Some("octet-counted"), None);
}

#[test]
fn rsyslog_imfile_lines_arrive_with_traditional_framing() {
    rsyslog_forwards_appended_lines(None, Some("rsyslog-test-host"));
}

// ---------------------------------------------------------------------------------
// 7. logger
// ---------------------------------------------------------------------------------

fn logger(port: u16, args: &[&str], message: Option<&str>) {
    let out = Command::new(support::tool("logger", "bsdutils"))
        .arg("-n")
        .arg("127.0.0.1")
        .arg("-P")
        .arg(port.to_string())
        .args(args)
        .args(message)
        .output()
        .expect("run logger (package bsdutils)");
    assert!(
        out.status.success(),
        "logger {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn logger_messages_arrive_with_sender_hostname_and_tag() {
    let dir = tempdir();
    let (hub, mut client, udp, tcp) = hub_and_client();
    // logger puts gethostname() in RFC 5424 messages and cuts the domain off for
    // RFC 3164 ones; with --rfc5424=nohost there is none and the hub names the
    // sender's address.
    let full = hostname();
    let short = short_hostname();
    let cases: Vec<(u16, Vec<&str>, &str, &str)> = vec![
        (udp, vec!["-d", "-t", "app"], "udp default (rfc5424)", &full),
        (
            udp,
            vec!["-d", "--rfc5424", "-t", "app"],
            "udp rfc5424",
            &full,
        ),
        (
            udp,
            vec!["-d", "--rfc3164", "-t", "app"],
            "udp rfc3164",
            &short,
        ),
        (
            udp,
            vec!["-d", "--rfc5424=nohost", "-t", "app"],
            "udp rfc5424 without host",
            "127.0.0.1",
        ),
        (tcp, vec!["-T", "-t", "app"], "tcp default (rfc5424)", &full),
        (
            tcp,
            vec!["-T", "--rfc3164", "-t", "app"],
            "tcp rfc3164",
            &short,
        ),
        (
            tcp,
            vec!["-T", "--octet-count", "-t", "app"],
            "tcp octet-counted rfc5424",
            &full,
        ),
        (
            tcp,
            vec!["-T", "--octet-count", "--rfc3164", "-t", "app"],
            "tcp octet-counted rfc3164",
            &short,
        ),
        (
            tcp,
            vec![
                "-T",
                "--octet-count",
                "-i",
                "--msgid",
                "ID47",
                "--sd-id",
                "origin@32473",
                "--sd-param",
                "ip=\"10.0.0.1\"",
                "-t",
                "app",
            ],
            "tcp with pid, msgid and structured data",
            &full,
        ),
        (
            udp,
            vec!["-d", "--rfc3164", "-i", "-t", "app"],
            "udp rfc3164 with pid",
            &short,
        ),
    ];
    for (port, args, text, _) in &cases {
        logger(*port, args, Some(&format!("logger says {text}")));
    }
    // Many messages on one octet-counted TCP connection (one per line of a file).
    let many: Vec<String> = (1..=50)
        .map(|i| format!("logger file line {i:03}"))
        .collect();
    let file = dir.path().join("messages.txt");
    std::fs::write(&file, many.join("\n") + "\n").unwrap();
    logger(
        tcp,
        &[
            "-T",
            "--octet-count",
            "-t",
            "app",
            "-f",
            file.to_str().unwrap(),
        ],
        None,
    );

    client.wait_lines("every logger message", |ls| {
        cases
            .iter()
            .all(|(_, _, t, _)| ls.iter().any(|l| l.text == format!("logger says {t}")))
            && ls.iter().any(|l| l.text == "logger file line 050")
    });
    client.settle(Duration::from_millis(300));
    for (_, args, text, host) in &cases {
        let text = format!("logger says {text}");
        let got: Vec<_> = client
            .lines
            .iter()
            .filter(|l| l.text == text)
            .map(fields)
            .collect();
        assert_eq!(
            got,
            [(*host, "syslog:app", "syslog", text.as_str())],
            "logger {args:?}"
        );
    }
    let got: Vec<_> = client
        .lines
        .iter()
        .filter(|l| l.text.starts_with("logger file line"))
        .map(fields)
        .collect();
    let want: Vec<_> = many
        .iter()
        .map(|t| (full.as_str(), "syslog:app", "syslog", t.as_str()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(client.lines.len(), cases.len() + many.len());
    let streams = hub.streams();
    for host in [&full, &short] {
        let id = format!("{host}:syslog:app");
        assert!(streams.iter().any(|s| s.0 == id), "{id} in {streams:?}");
    }
}

/// This logger has no option to claim another host name, so such messages are made
/// here: the host a sender names is the stream's host.
#[test]
fn a_hostname_in_the_message_names_the_stream() {
    let (_hub, mut client, udp, tcp) = hub_and_client();
    udp_send(
        udp,
        b"<165>1 2026-11-22T03:00:00.003Z db01.example.com postgres 42 - [meta x=\"]\"] slow query",
    );
    let mut s = tcp_connect(tcp);
    s.write_all(b"<13>Nov 22 03:00:00 web07 nginx[123]: GET / 502\n")
        .unwrap();
    let framed = "<30>2026-11-22T03:00:00+00:00 cache01 redis: oom";
    s.write_all(format!("{} {framed}", framed.len()).as_bytes())
        .unwrap();
    s.write_all(b"<13>Nov  2 03:00:00 cron: no host here\n")
        .unwrap();
    drop(s);
    client.wait_lines("four messages", |ls| ls.len() >= 4);
    client.settle(Duration::from_millis(300));
    let mut got: Vec<_> = client.lines.iter().map(fields).collect();
    got.sort();
    let mut want = vec![
        (
            "db01.example.com",
            "syslog:postgres",
            "syslog",
            "slow query",
        ),
        ("web07", "syslog:nginx", "syslog", "GET / 502"),
        ("cache01", "syslog:redis", "syslog", "oom"),
        // No host in the message: the sender's address.
        ("127.0.0.1", "syslog:cron", "syslog", "no host here"),
    ];
    want.sort();
    assert_eq!(got, want);
}

/// `[syslog]` in the config: addresses and the set name of its streams; a flag
/// overrides the config's address.
#[test]
fn syslog_section_of_the_config_names_the_set() {
    let dir = tempdir();
    let config = dir.path().join("supergrep.toml");
    let hub = (0..20)
        .find_map(|_| {
            let (udp, tcp_in_config, tcp_flag) = (free_port(), free_port(), free_port());
            std::fs::write(
                &config,
                format!(
                    "[syslog]\nudp = \"127.0.0.1:{udp}\"\ntcp = \"127.0.0.1:{tcp_in_config}\"\nset = \"netlogs\"\n"
                ),
            )
            .unwrap();
            let flag = format!("127.0.0.1:{tcp_flag}");
            let args = ["--config", config.to_str().unwrap(), "--syslog-tcp", &flag];
            Hub::try_start(free_port(), &args).map(|h| (h, udp, tcp_in_config, tcp_flag))
        })
        .expect("a hub with the config's syslog ports");
    let (hub, udp, tcp_in_config, tcp_flag) = hub;
    let mut client = SyncClient::connect(&hub.ws_url());
    client.subscribe("all", &[], 0);
    udp_send(udp, b"<13>Nov 22 03:00:00 web01 app: over udp");
    let mut s = tcp_connect(tcp_flag);
    s.write_all(b"<13>Nov 22 03:00:00 web01 app: over tcp\n")
        .unwrap();
    drop(s);
    for text in ["over udp", "over tcp"] {
        let l = client.wait_text(text);
        assert_eq!(fields(&l), ("web01", "syslog:app", "netlogs", text));
    }
    // The flag replaced the config's TCP address.
    assert!(
        TcpStream::connect(("127.0.0.1", tcp_in_config)).is_err(),
        "the config's tcp address is not used when --syslog-tcp is given"
    );
    assert_eq!(
        hub.streams(),
        [(
            "web01:syslog:app".to_owned(),
            "web01".to_owned(),
            "syslog:app".to_owned(),
            "netlogs".to_owned()
        )]
    );
}

// ---------------------------------------------------------------------------------
// 8. Malformed input
// ---------------------------------------------------------------------------------

#[test]
fn malformed_syslog_input_becomes_raw_lines_and_the_hub_keeps_working() {
    let (mut hub, mut client, udp, tcp) = hub_and_client();
    let raw = |text: &str| {
        (
            "127.0.0.1".to_owned(),
            "syslog:unknown".to_owned(),
            "syslog".to_owned(),
            text.to_owned(),
        )
    };
    let owned = |l: &WireLine| {
        (
            l.host.clone(),
            l.path.clone(),
            l.set.clone(),
            l.text.clone(),
        )
    };

    // Plain text, no <PRI>: kept whole, from the sender's address.
    udp_send(udp, b"plain udp text without a priority");
    let l = client.wait_text("plain udp text without a priority");
    assert_eq!(owned(&l), raw("plain udp text without a priority"));

    // Binary junk: invalid UTF-8 replaced, control characters kept.
    let junk = b"\xff\xfejunk\x01\x02\x80! udp-junk-marker";
    udp_send(udp, junk);
    let want = String::from_utf8_lossy(junk).into_owned();
    assert!(want.contains('\u{fffd}'));
    let l = client.wait_text(&want);
    assert_eq!(owned(&l), raw(&want));

    // A <PRI> and nothing that parses after it.
    udp_send(udp, b"<13>not a timestamp at all");
    let l = client.wait_text("<13>not a timestamp at all");
    assert_eq!(owned(&l), raw("<13>not a timestamp at all"));

    // Plain text over TCP, newline-framed, with a CRLF and an empty line.
    let mut s = tcp_connect(tcp);
    s.write_all(b"plain tcp text 1\r\n\nplain tcp text 2\n")
        .unwrap();
    drop(s);
    client.wait_text("plain tcp text 2");
    let l = client.wait_text("plain tcp text 1");
    assert_eq!(owned(&l), raw("plain tcp text 1"));

    // An over-long message (200 KB) in each framing, then a good one on the same
    // connection: the long one is cut at max_line (64 KiB) and marked, and the
    // framing stays in step.
    let long = "x".repeat(200 * 1024);
    let header = "<13>Nov 22 03:00:00 web01 longapp: ";
    let mut s = tcp_connect(tcp);
    s.write_all(format!("{header}{long}\n").as_bytes()).unwrap();
    s.write_all(format!("{header}after the long newline-framed one\n").as_bytes())
        .unwrap();
    let msg = format!("{header}{long}");
    s.write_all(format!("{} {msg}", msg.len()).as_bytes())
        .unwrap();
    let after = format!("{header}after the long octet-counted one");
    s.write_all(format!("{} {after}", after.len()).as_bytes())
        .unwrap();
    drop(s);
    client.wait_text("after the long octet-counted one");
    client.wait_text("after the long newline-framed one");
    let cut: Vec<&WireLine> = client
        .lines
        .iter()
        .filter(|l| l.text.starts_with("xxxx"))
        .collect();
    assert_eq!(cut.len(), 2, "two cut lines");
    for l in cut {
        assert_eq!(
            (l.host.as_str(), l.path.as_str()),
            ("web01", "syslog:longapp")
        );
        let kept = l.text.trim_start_matches('x');
        assert_eq!(l.text.len() - kept.len(), 64 * 1024, "cut at max_line");
        assert!(
            kept.starts_with(" [… ") && kept.ends_with(" bytes cut]"),
            "marked as cut: {kept:?}"
        );
    }

    // Half a message, then the connection closes: what came is a line.
    let mut s = tcp_connect(tcp);
    s.write_all(b"<13>Nov 22 03:00:00 web01 halfapp: half a mess")
        .unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    drop(s);
    let l = client.wait_text("half a mess");
    assert_eq!(
        (l.host.as_str(), l.path.as_str()),
        ("web01", "syslog:halfapp")
    );

    // A connection that sends nothing, one that sends only newlines: no line, no
    // harm. One that sends a count and nothing more: nothing proves it a count (no
    // `<` follows), so it is kept as the raw text it is.
    drop(tcp_connect(tcp));
    let mut s = tcp_connect(tcp);
    s.write_all(b"\n\n\r\n").unwrap();
    drop(s);
    let mut s = tcp_connect(tcp);
    s.write_all(b"12 ").unwrap();
    drop(s);

    // The hub still works: good messages over both, and its HTTP side.
    udp_send(udp, b"<13>Nov 22 03:00:00 web01 app: good udp after junk");
    let mut s = tcp_connect(tcp);
    s.write_all(b"<13>Nov 22 03:00:00 web01 app: good tcp after junk\n")
        .unwrap();
    drop(s);
    for text in ["good udp after junk", "good tcp after junk"] {
        let l = client.wait_text(text);
        assert_eq!(
            fields(&l),
            ("web01", "syslog:app", "syslog", text),
            "a good message after the junk"
        );
    }
    client.settle(Duration::from_millis(300));
    assert!(
        client.lines.iter().any(|l| l.text == "12 "),
        "the lone count kept as text"
    );
    assert_eq!(
        client.lines.len(),
        13,
        "one line per message: {:#?}",
        client
            .lines
            .iter()
            .map(|l| l.text.chars().take(60).collect::<String>())
            .collect::<Vec<_>>()
    );
    let (status, body) = hub.get("/healthz");
    assert_eq!((status, body.trim()), (200, "ok"));
    assert!(hub.proc.running(), "the hub is still running");
}

/// The cut mark says how many bytes were cut (as the file tailer's does).
#[test]
fn overlong_tcp_message_mark_counts_the_bytes_cut() {
    let (_hub, mut client, _, tcp) = hub_and_client();
    let long = "x".repeat(200 * 1024);
    let mut s = tcp_connect(tcp);
    s.write_all(format!("<13>Nov 22 03:00:00 web01 longapp: {long}\n").as_bytes())
        .unwrap();
    drop(s);
    client.wait_lines("the long line", |ls| !ls.is_empty());
    let want = format!(
        "{} [… {} bytes cut]",
        &long[..64 * 1024],
        long.len() - 64 * 1024
    );
    let text = &client.lines[0].text;
    assert_eq!(
        text.trim_start_matches('x'),
        want.trim_start_matches('x'),
        "the mark"
    );
}

/// An octet-counted frame that ends early (the sender died) is kept, as the
/// newline-framed half message is: never dropped silently.
#[test]
fn truncated_octet_counted_frame_is_kept() {
    let (_hub, mut client, _, tcp) = hub_and_client();
    let mut s = tcp_connect(tcp);
    s.write_all(b"100 <13>Nov 22 03:00:00 web01 halfapp: half counted")
        .unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    drop(s);
    // Then a good message on another connection, so that the wait is bounded by
    // something that does arrive.
    let mut s = tcp_connect(tcp);
    s.write_all(b"<13>Nov 22 03:00:00 web01 app: marker after the half frame\n")
        .unwrap();
    drop(s);
    client.wait_text("marker after the half frame");
    client.settle(Duration::from_millis(500));
    assert!(
        client.lines.iter().any(|l| l.text.contains("half counted")),
        "{:#?}",
        client.lines
    );
}

// ---------------------------------------------------------------------------------
// 9. Hardening: names, connection limits
// ---------------------------------------------------------------------------------

/// A host with `:` or control characters made ambiguous stream ids (`vm:fake` +
/// `syslog:x`): they are percent-escaped in hosts, control characters in tags too.
#[test]
fn colons_and_control_characters_in_hosts_and_tags_are_escaped() {
    let (hub, mut client, udp, tcp) = hub_and_client();
    let mut s = tcp_connect(tcp);
    s.write_all(b"<13>Nov 22 03:00:00 vm:fake nginx: colon host\n")
        .unwrap();
    drop(s);
    udp_send(
        udp,
        b"<165>1 2026-11-22T03:00:00.003Z ho\x1b[31mst ap\x07p 42 - - control chars",
    );
    let colon = client.wait_text("colon host");
    assert_eq!(
        fields(&colon),
        ("vm%3Afake", "syslog:nginx", "syslog", "colon host")
    );
    let control = client.wait_text("control chars");
    assert_eq!(
        fields(&control),
        ("ho%1B[31mst", "syslog:ap%07p", "syslog", "control chars")
    );
    let ids: Vec<String> = hub.streams().into_iter().map(|s| s.0).collect();
    for id in &ids {
        assert!(!id.chars().any(char::is_control), "{id:?}");
        let (host, path) = id.split_once(':').unwrap();
        assert!(path.starts_with("syslog:"), "{id:?} splits at its host");
        assert!(!host.is_empty());
    }
}

/// A hub whose `[syslog]` section has `extra` (TCP only): `(hub, tcp port)`.
fn hub_with_syslog_limits(dir: &Path, extra: &str) -> (Hub, u16) {
    let config = dir.join("supergrep.toml");
    (0..20)
        .find_map(|_| {
            let tcp = free_port();
            std::fs::write(
                &config,
                format!("[syslog]\ntcp = \"127.0.0.1:{tcp}\"\n{extra}"),
            )
            .unwrap();
            Hub::try_start(free_port(), &["--config", config.to_str().unwrap()]).map(|h| (h, tcp))
        })
        .expect("a hub with syslog on a free port")
}

/// Whether the hub closed `s` (read returns 0 or fails with a reset).
fn closed_by_hub(s: &mut TcpStream) -> bool {
    use std::io::Read;
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(0) | Err(_))
}

/// Idle connections up to the cap no longer shut real senders out: the one idle
/// longest is closed to make room. One address cannot take more than its own cap.
#[test]
fn idle_senders_at_the_cap_make_room_and_one_address_is_capped() {
    let dir = tempdir();
    let (hub, tcp) = hub_with_syslog_limits(
        dir.path(),
        "max_connections = 4\nmax_connections_per_address = 2\n",
    );
    let mut client = SyncClient::connect(&hub.ws_url());
    client.subscribe("all", &[], 0);
    // Four idle connections, two from each of two addresses; each says one
    // message first, so that the hub has surely taken it in (in this order).
    let mut idle = Vec::new();
    for (k, ip) in ["127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3"]
        .iter()
        .enumerate()
    {
        let mut s = connect_from(ip, tcp);
        s.write_all(format!("<13>Nov 22 03:00:00 idle{k} app: idle {k}\n").as_bytes())
            .unwrap();
        client.wait_text(&format!("idle {k}"));
        idle.push(s);
    }
    // A third from 127.0.0.2 is refused: closed, its message never arrives.
    let mut third = connect_from("127.0.0.2", tcp);
    let _ = third.write_all(b"<13>Nov 22 03:00:00 web01 app: third\n");
    assert!(
        closed_by_hub(&mut third),
        "a third connection from 127.0.0.2"
    );
    // A real sender from elsewhere gets through: the longest idle one goes.
    let mut real = connect_from("127.0.0.4", tcp);
    real.write_all(b"<13>Nov 22 03:00:00 web01 app: a real sender\n")
        .unwrap();
    let l = client.wait_text("a real sender");
    assert_eq!(
        fields(&l),
        ("web01", "syslog:app", "syslog", "a real sender")
    );
    assert!(closed_by_hub(&mut idle[0]), "the longest idle connection");
    // The others are still connected: they can still send.
    idle[3]
        .write_all(b"<13>Nov 22 03:00:00 idle3 app: still here\n")
        .unwrap();
    client.wait_text("still here");
    assert!(
        !client.lines.iter().any(|l| l.text == "third"),
        "{:?}",
        client.lines
    );
}

/// A sender that stays silent (or stops mid-message) is disconnected after
/// `idle_timeout_secs`.
#[test]
fn silent_senders_are_disconnected_after_the_idle_timeout() {
    let dir = tempdir();
    let (_hub, tcp) = hub_with_syslog_limits(dir.path(), "idle_timeout_secs = 1\n");
    let mut silent = tcp_connect(tcp);
    silent
        .set_read_timeout(Some(support::wait::PATIENCE))
        .unwrap();
    let mut midway = tcp_connect(tcp);
    midway
        .set_read_timeout(Some(support::wait::PATIENCE))
        .unwrap();
    midway
        .write_all(b"100 <13>Nov 22 03:00:00 web01 app: hal")
        .unwrap();
    assert!(closed_by_hub(&mut silent), "a silent sender");
    assert!(closed_by_hub(&mut midway), "a sender stopped mid-message");
}
