//! The hub end to end (DESIGN §1, §4, §5): the real `supergrep serve` on a free
//! loopback port, real files in a temporary directory, real WebSocket clients.
//!
//! Nothing here waits for a fixed time or asserts on timing. A test waits for what the
//! hub says (bounded by `support::wait::PATIENCE`). "Nothing else arrived" is shown with
//! sentinel lines: the hub keeps each subscription's matches in order, so once a
//! subscription has received the last line written, it has received everything before
//! it. When a client has several subscriptions, the order *between* them within one
//! batch is not defined, so [`settle`] appends two sentinels one after the other: every
//! match of a line written before the first sentinel was queued before the second
//! sentinel was even read from the file.
//!
//! Expected results are computed with the `regex` crate over what the test wrote.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use futures_util::SinkExt;
use serde_json::json;
use supergrep::protocol::{ServerMsg, WireLine, WireStream};
use support::files::{append, empty_files, joined};
use support::filter::Filter;
use support::http::http;
use support::hub::{rss_kb, Hub};
use support::proc::{bin, supergrep, Proc};
use support::wait::PATIENCE;
use support::ws::{subscribe, try_connect, Client};
use support::{connect_from, hostname, stream_id};
use tokio_tungstenite::tungstenite::Message;

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

/// A hub with the config file `toml` (whose token, if it sets one, is `token`),
/// following `DIR/app.log`.
fn hub_with_config(toml: &str, token: Option<&str>) -> (tempfile::TempDir, Hub) {
    let dir = tempfile::tempdir().unwrap();
    let f = empty_files(dir.path(), &["app.log"]);
    let config = dir.path().join("hub.toml");
    std::fs::write(&config, toml).unwrap();
    let hub = Hub::start_with_token(&["--config", s(&config), s(&f[0])], &[&f[0]], token);
    (dir, hub)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A TOML string.
fn toml_str(v: &str) -> String {
    toml::Value::String(v.to_owned()).to_string()
}

/// Subscription id of the sentinel watcher used by [`settle`].
const WATCH: &str = "watch";
/// What [`settle`] appends; `WATCH` subscribes to it.
const SENTINEL: &str = "zz-sentinel";

/// Appends a sentinel line to `path`, waits until `WATCH` (subscribed with
/// `watch_sub()`) receives it, then does the same with a second one. Returns what
/// arrived meanwhile: lines per subscription id and the other messages. Afterwards
/// every match of every line written to `path` before the call has arrived.
async fn settle(
    client: &mut Client,
    path: &Path,
    round: &str,
) -> (HashMap<String, Vec<WireLine>>, Vec<ServerMsg>) {
    let mut lines: HashMap<String, Vec<WireLine>> = HashMap::new();
    let mut others = Vec::new();
    for i in 0..2 {
        let sentinel = format!("{SENTINEL} {round}.{i}");
        append(path, &format!("{sentinel}\n"));
        let (got, other) = client.lines_until(&[WATCH], &sentinel).await;
        for (id, l) in got {
            lines.entry(id).or_default().extend(l);
        }
        others.extend(other);
    }
    (lines, others)
}

fn watch_sub() -> serde_json::Value {
    subscribe(WATCH, &[&format!("^{SENTINEL}")])
}

fn texts(lines: &[WireLine]) -> Vec<&str> {
    lines.iter().map(|l| l.text.as_str()).collect()
}

/// Lines with their `seq` rising strictly: nothing came twice or out of order.
fn assert_rising(lines: &[WireLine]) {
    for w in lines.windows(2) {
        assert!(
            w[0].seq < w[1].seq,
            "seq does not rise: {} then {} ({:?}, {:?})",
            w[0].seq,
            w[1].seq,
            w[0].text,
            w[1].text
        );
    }
}

fn no_errors(others: &[ServerMsg]) {
    for m in others {
        assert!(
            !matches!(m, ServerMsg::Error { .. } | ServerMsg::Dropped { .. }),
            "unexpected {m:?}"
        );
    }
}

// ---------------------------------------------------------------------------------
// 1. hello
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_comes_first_and_lists_every_stream_with_its_set() {
    let dir = tempfile::tempdir().unwrap();
    let f = empty_files(dir.path(), &["a.log", "b.log", "c.log"]);
    std::fs::create_dir(dir.path().join("late")).unwrap();
    let late_glob = dir.path().join("late/*.log");
    let config = dir.path().join("hub.toml");
    std::fs::write(
        &config,
        format!(
            "[[set]]\nname = \"web\"\npaths = [{}]\n\n[[set]]\nname = \"db\"\npaths = [{}]\n\n\
             [[set]]\nname = \"late\"\npaths = [{}]\n",
            toml_str(s(&f[0])),
            toml_str(s(&f[1])),
            toml_str(s(&late_glob)),
        ),
    )
    .unwrap();
    let hub = Hub::start_following(&["--config", s(&config), s(&f[2])], &[&f[0], &f[1], &f[2]]);

    let client = Client::connect(&hub).await;
    let ServerMsg::Hello {
        version,
        server,
        mut streams,
        ..
    } = client.hello.clone()
    else {
        unreachable!()
    };
    assert_eq!(version, 1);
    assert_eq!(server, format!("supergrep {}", env!("CARGO_PKG_VERSION")));
    let wire = |p: &Path, set: &str| WireStream {
        id: stream_id(p),
        host: hostname(),
        path: p.display().to_string(),
        set: set.into(),
    };
    let mut want = vec![
        wire(&f[0], "web"),
        wire(&f[1], "db"),
        wire(&f[2], "default"),
    ];
    streams.sort_by(|a, b| a.id.cmp(&b.id));
    want.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(streams, want);
    assert!(want
        .iter()
        .all(|s| s.id == format!("{}:{}", s.host, s.path)));

    // /api/streams lists the same.
    let (status, body) = http(hub.port, "GET", "/api/streams", &[], "");
    assert_eq!(status, 200);
    let mut listed: Vec<WireStream> = serde_json::from_str(&body).unwrap();
    listed.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(listed, want);

    // A file that appears later under a set's glob is announced to connected clients.
    let mut client = client;
    let late = dir.path().join("late/x.log");
    std::fs::write(&late, "").unwrap();
    let msg = client
        .recv_where(|m| matches!(m, ServerMsg::Streams { .. }))
        .await;
    assert_eq!(
        msg,
        ServerMsg::Streams {
            added: vec![wire(&late, "late")],
            removed: vec![]
        }
    );

    // Deleted, it goes once its handle is done (5 s without growing), and is no longer
    // listed. (A deleted file's handle was kept, and its stream listed, for good.)
    std::fs::remove_file(&late).unwrap();
    let msg = client
        .recv_where(|m| matches!(m, ServerMsg::Streams { .. }))
        .await;
    assert_eq!(
        msg,
        ServerMsg::Streams {
            added: vec![],
            removed: vec![stream_id(&late)]
        }
    );
    let (_, body) = http(hub.port, "GET", "/api/streams", &[], "");
    let listed: Vec<WireStream> = serde_json::from_str(&body).unwrap();
    assert!(listed.iter().all(|s| s.path != late.display().to_string()));
}

/// A file two sets name (itself, and through a glob) is read once and belongs to the
/// first set in the config. (Each set had a tailer of its own: every line came twice,
/// numbered on under one stream id, and the set it showed varied from run to run.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_two_sets_name_is_read_once_in_the_first_set() {
    let dir = tempfile::tempdir().unwrap();
    let f = empty_files(dir.path(), &["a.log", "b.log"]);
    let glob = dir.path().join("*.log");
    let config = dir.path().join("hub.toml");
    std::fs::write(
        &config,
        format!(
            "[[set]]\nname = \"one\"\npaths = [{}]\n\n[[set]]\nname = \"all\"\npaths = [{}]\n",
            toml_str(s(&f[0])),
            toml_str(s(&glob)),
        ),
    )
    .unwrap();
    let hub = Hub::start_following(&["--config", s(&config)], &[&f[0], &f[1]]);
    let mut c = Client::connect(&hub).await;
    let ServerMsg::Hello { streams, .. } = c.hello.clone() else {
        unreachable!()
    };
    let set_of = |p: &Path| {
        let id = stream_id(p);
        let sets: Vec<String> = streams
            .iter()
            .filter(|w| w.id == id)
            .map(|w| w.set.clone())
            .collect();
        sets
    };
    assert_eq!(set_of(&f[0]), ["one"]);
    assert_eq!(set_of(&f[1]), ["all"]);

    c.subscribe(json!({"type": "subscribe", "id": "all", "include": []}))
        .await;
    append(&f[0], "first\nsecond\n");
    append(&f[1], "zz-end\n");
    let (got, others) = c.lines_until(&["all"], "zz-end").await;
    no_errors(&others);
    let mut got = got["all"].clone();
    // Whatever more comes (a second reading would), until half a second of quiet.
    while let Ok(msg) = tokio::time::timeout(Duration::from_millis(500), c.recv()).await {
        if let ServerMsg::Lines { lines, .. } = msg {
            got.extend(lines);
        }
    }
    let of_a: Vec<(u64, &str, &str)> = got
        .iter()
        .filter(|l| l.path == s(&f[0]))
        .map(|l| (l.seq, l.set.as_str(), l.text.as_str()))
        .collect();
    assert_eq!(of_a, [(1, "one", "first"), (2, "one", "second")]);
}

// ---------------------------------------------------------------------------------
// 2. subscriptions: matches, spans, seq, exclude, ignore_case, stream selectors
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matching_lines_arrive_with_spans_in_characters_and_rising_seq() {
    let dir = tempfile::tempdir().unwrap();
    let f = empty_files(dir.path(), &["app.log"]);
    let hub = Hub::start_following(&[s(&f[0])], &[&f[0]]);
    let mut c = Client::connect(&hub).await;

    let end = "zz-end error";
    // (id, include, exclude, ignore_case)
    let subs: [(&str, &[&str], &[&str], bool); 4] = [
        ("all", &[], &[], false),
        ("plain", &["error", "caf.", "日本"], &[], false),
        ("ex", &["error"], &["healthcheck"], false),
        ("ic", &["ERROR", "CAFÉ"], &[], true),
    ];
    for (id, include, exclude, ignore_case) in subs {
        c.subscribe(json!({"type": "subscribe", "id": id, "include": include,
            "exclude": exclude, "ignore_case": ignore_case}))
            .await;
    }
    let written: Vec<String> = [
        "GET /index 200 ok",
        "ERROR db timeout",
        "error: disk full, error again",
        "healthcheck error ignored",
        "naïve café: error — 日本 error ✓",
        "Error in module ünïcödé",
        "nothing here",
        "",
        "tab\tseparated error",
        "CAFÉ Café café ÇA",
        end,
    ]
    .iter()
    .map(|l| l.to_string())
    .collect();
    append(&f[0], &joined(&written[..4]));
    append(&f[0], &joined(&written[4..]));

    let ids: Vec<&str> = subs.iter().map(|s| s.0).collect();
    let (got, others) = c.lines_until(&ids, end).await;
    no_errors(&others);

    // `all` sees every line, numbered one by one.
    let all = &got["all"];
    assert_eq!(texts(all), written);
    for (i, l) in all.iter().enumerate() {
        assert_eq!(l.seq, all[0].seq + i as u64, "seq rises by one per line");
        assert_eq!(l.host, hostname());
        assert_eq!(l.path, f[0].display().to_string());
        assert_eq!(l.set, "default");
        assert!(l.ts.ends_with('Z'), "{}", l.ts);
        humantime::parse_rfc3339(&l.ts).unwrap();
        assert!(l.spans.is_empty(), "no include, no spans: {l:?}");
    }
    for (id, include, exclude, ignore_case) in subs {
        let filter = Filter::new(include, exclude, ignore_case);
        let want: Vec<(u64, &str, Vec<[usize; 2]>)> = filter
            .select(&written)
            .into_iter()
            .map(|(i, l)| (all[i].seq, l, filter.spans(l)))
            .collect();
        let have: Vec<(u64, &str, Vec<[usize; 2]>)> = got[id]
            .iter()
            .map(|l| (l.seq, l.text.as_str(), l.spans.clone()))
            .collect();
        assert_eq!(have, want, "subscription {id}");
    }
    // The non-ASCII line, spelled out: spans count characters, not bytes.
    let plain = &got["plain"];
    let cafe = plain.iter().find(|l| l.text.starts_with("naïve")).unwrap();
    assert_eq!(cafe.spans, [[6, 10], [12, 17], [20, 22], [23, 28]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_selectors_pick_sets_and_host_path_globs() {
    let dir = tempfile::tempdir().unwrap();
    let f = empty_files(dir.path(), &["web.log", "db.log", "misc.log"]);
    let config = dir.path().join("hub.toml");
    std::fs::write(
        &config,
        format!(
            "[[set]]\nname = \"web\"\npaths = [{}]\n[[set]]\nname = \"db\"\npaths = [{}]\n",
            toml_str(s(&f[0])),
            toml_str(s(&f[1]))
        ),
    )
    .unwrap();
    let hub = Hub::start_following(&["--config", s(&config), s(&f[2])], &[&f[0], &f[1], &f[2]]);
    // (selector, the files it should see)
    let cases: Vec<(Vec<String>, Vec<usize>)> = vec![
        (vec!["web".into()], vec![0]),
        (vec![format!("{}:*/db.log", hostname())], vec![1]),
        (vec!["*:*/misc.log".into()], vec![2]),
        (vec!["default".into(), "web".into()], vec![0, 2]),
        (vec!["nosuchset".into(), "nohost:*".into()], vec![]),
    ];
    let mut clients = Vec::new();
    for (streams, _) in &cases {
        let mut c = Client::connect(&hub).await;
        c.subscribe(json!({"type": "subscribe", "id": "s", "include": ["error"],
            "streams": streams}))
            .await;
        c.subscribe(watch_sub()).await;
        clients.push(c);
    }
    for (i, p) in f.iter().enumerate() {
        append(p, &format!("error one in {i}\nok\nerror two in {i}\n"));
    }
    // Every file gets its sentinels: a watcher (no selector) sees them all.
    let mut got = Vec::new();
    for (ci, c) in clients.iter_mut().enumerate() {
        let mut lines: Vec<WireLine> = Vec::new();
        for (i, p) in f.iter().enumerate() {
            let (l, others) = settle(c, p, &format!("c{ci}f{i}")).await;
            no_errors(&others);
            lines.extend(l.get("s").cloned().unwrap_or_default());
        }
        got.push(lines);
    }
    for ((streams, want_files), lines) in cases.iter().zip(got) {
        let mut want: Vec<String> = want_files
            .iter()
            .flat_map(|i| [format!("error one in {i}"), format!("error two in {i}")])
            .collect();
        let mut have: Vec<String> = lines.iter().map(|l| l.text.clone()).collect();
        want.sort();
        have.sort();
        assert_eq!(have, want, "selector {streams:?}");
        for l in &lines {
            let i: usize = l.text.rsplit(' ').next().unwrap().parse().unwrap();
            assert_eq!(l.path, f[i].display().to_string());
            assert_eq!(l.set, ["web", "db", "default"][i]);
        }
    }
}

// ---------------------------------------------------------------------------------
// 3. backlog
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_comes_first_then_live_lines_none_twice() {
    let dir = tempfile::tempdir().unwrap();
    let f = empty_files(dir.path(), &["app.log"]);
    let hub = Hub::start_following(&[s(&f[0])], &[&f[0]]);

    // Lines written before anyone subscribes; a probe tells when the hub has them.
    let before: Vec<String> = (0..60)
        .map(|i| {
            if i % 3 == 0 {
                format!("before {i} error")
            } else {
                format!("before {i} ok")
            }
        })
        .collect();
    let mut probe = Client::connect(&hub).await;
    probe.subscribe(subscribe("all", &[])).await;
    append(&f[0], &joined(&before[..25]));
    append(&f[0], &joined(&before[25..]));
    probe.lines_until(&["all"], before.last().unwrap()).await;

    let filter = Filter::new(&["error"], &[], false);
    let old: Vec<&str> = filter.select(&before).into_iter().map(|x| x.1).collect();
    assert_eq!(old.len(), 20);

    let mut c = Client::connect(&hub).await;
    // (id, backlog asked for)
    let asks = [("last5", Some(5)), ("plenty", Some(1000)), ("none", None)];
    for (id, backlog) in asks {
        let mut msg = subscribe(id, &["error"]);
        if let Some(n) = backlog {
            msg["backlog"] = json!(n);
        }
        c.subscribe(msg).await;
    }
    let after: Vec<String> = (0..30)
        .map(|i| {
            if i % 4 == 0 {
                format!("after {i} error")
            } else {
                format!("after {i} ok")
            }
        })
        .chain(["zz-end error".to_string()])
        .collect();
    append(&f[0], &joined(&after));
    let ids: Vec<&str> = asks.iter().map(|a| a.0).collect();
    let (got, others) = c.lines_until(&ids, "zz-end error").await;
    no_errors(&others);

    let live: Vec<&str> = filter.select(&after).into_iter().map(|x| x.1).collect();
    for (id, backlog) in asks {
        let n = backlog.unwrap_or(0).min(old.len());
        let want: Vec<&str> = old[old.len() - n..].iter().chain(&live).copied().collect();
        assert_eq!(texts(&got[id]), want, "subscription {id}");
        assert_rising(&got[id]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_taken_while_lines_pour_in_has_no_gap_and_no_repeat() {
    const LINES: usize = 12_000;
    const BACKLOG: usize = 1500;
    const CLIENTS: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let f = empty_files(dir.path(), &["app.log"]);
    let hub = Hub::start_following(&[s(&f[0])], &[&f[0]]);
    let end = "zz-end even";
    let written: Vec<String> = (0..LINES)
        .map(|k| format!("{k:05} {}", if k % 2 == 0 { "even" } else { "odd" }))
        .chain([end.to_string()])
        .collect();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(Client::connect(&hub).await);
    }

    // The writer appends small chunks and says when it is 1/5, 2/5… of the way; each
    // client subscribes at one of those points, while lines keep coming.
    let (progress_tx, mut progress) = tokio::sync::mpsc::unbounded_channel();
    let writer = {
        let (path, written) = (f[0].clone(), written.clone());
        tokio::task::spawn_blocking(move || {
            for (i, chunk) in written.chunks(40).enumerate() {
                append(&path, &joined(chunk));
                if (i + 1) % (LINES / 40 / (CLIENTS + 1)) == 0 {
                    let _ = progress_tx.send(i);
                }
            }
        })
    };
    for c in &mut clients {
        progress.recv().await.unwrap();
        c.subscribe(json!({"type": "subscribe", "id": "e", "include": ["even"],
            "backlog": BACKLOG}))
            .await;
    }
    writer.await.unwrap();

    // Each client: the last BACKLOG matches before it subscribed (or all of them, if
    // fewer) and every one after: a suffix of the matches, without gap or repeat.
    // (At most 6,001 matches in all: the client queue of 10,000 cannot overflow.)
    let want: Vec<&str> = Filter::new(&["even"], &[], false)
        .select(&written)
        .into_iter()
        .map(|x| x.1)
        .collect();
    for (i, c) in clients.iter_mut().enumerate() {
        let (got, others) = c.lines_until(&["e"], end).await;
        no_errors(&others);
        let have = texts(&got["e"]);
        assert!(
            have.len() >= BACKLOG.min(want.len()),
            "client {i}: {} lines",
            have.len()
        );
        assert_eq!(have, want[want.len() - have.len()..], "client {i}");
    }
}

// ---------------------------------------------------------------------------------
// 4. resubscribe, unsubscribe
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribing_replaces_the_filter_and_unsubscribing_stops_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let f = empty_files(dir.path(), &["app.log"]);
    let hub = Hub::start_following(&[s(&f[0])], &[&f[0]]);
    let mut c = Client::connect(&hub).await;
    c.subscribe(watch_sub()).await;

    c.subscribe(subscribe("a", &["alpha"])).await;
    append(&f[0], "alpha 1\nbeta 1\n");
    let (got, others) = settle(&mut c, &f[0], "1").await;
    no_errors(&others);
    assert_eq!(texts(&got["a"]), ["alpha 1"]);

    // Same id, new filter: the old one's matches stop, the new one's come.
    c.subscribe(subscribe("a", &["beta"])).await;
    append(&f[0], "alpha 2\nbeta 2\n");
    let (got, others) = settle(&mut c, &f[0], "2").await;
    no_errors(&others);
    assert_eq!(texts(&got["a"]), ["beta 2"]);

    // Unsubscribed: nothing more. (Requests are handled in order: once the watcher's
    // resubscription is confirmed, the unsubscribe took effect.)
    c.send(json!({"type": "unsubscribe", "id": "a"})).await;
    c.subscribe(watch_sub()).await;
    append(&f[0], "alpha 3\nbeta 3\n");
    let (got, others) = settle(&mut c, &f[0], "3").await;
    no_errors(&others);
    assert!(
        !got.contains_key("a"),
        "after unsubscribe: {:?}",
        got.get("a")
    );

    // Unsubscribing what does not exist is a request error naming it.
    c.send(json!({"type": "unsubscribe", "id": "a"})).await;
    let err = c.recv_where(|m| matches!(m, ServerMsg::Error { .. })).await;
    let ServerMsg::Error { id, code, .. } = err else {
        unreachable!()
    };
    assert_eq!((id.as_deref(), code.as_str()), (Some("a"), "bad_request"));
}

// ---------------------------------------------------------------------------------
// 5. context
// ---------------------------------------------------------------------------------

async fn context(
    c: &mut Client,
    id: &str,
    stream: &str,
    seq: u64,
    before: u64,
    after: u64,
) -> Vec<WireLine> {
    c.send(
        json!({"type": "context", "id": id, "stream": stream, "seq": seq,
        "before": before, "after": after}),
    )
    .await;
    let reply = c
        .recv_where(|m| matches!(m, ServerMsg::Context { id: i, .. } if i == id))
        .await;
    let ServerMsg::Context {
        stream: s, lines, ..
    } = reply
    else {
        unreachable!()
    };
    assert_eq!(s, stream);
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_returns_the_lines_around_a_line_fewer_at_the_edges() {
    let dir = tempfile::tempdir().unwrap();
    let f = empty_files(dir.path(), &["app.log", "other.log"]);
    let hub = Hub::start_following(&[s(&f[0]), s(&f[1])], &[&f[0], &f[1]]);
    let id = stream_id(&f[0]);
    let mut c = Client::connect(&hub).await;
    c.subscribe(subscribe("all", &[])).await;
    let written: Vec<String> = (0..30).map(|i| format!("ctx line {i}")).collect();
    append(&f[0], &joined(&written[..10]));
    // Another stream's lines in between do not count.
    append(&f[1], "other 1\nother 2\n");
    append(&f[0], &joined(&written[10..]));
    let (got, _) = c.lines_until(&["all"], "ctx line 29").await;
    let seqs: Vec<u64> = got["all"]
        .iter()
        .filter(|l| l.path == f[0].display().to_string())
        .map(|l| l.seq)
        .collect();
    assert_eq!(seqs.len(), 30);

    let check = |lines: &[WireLine], range: std::ops::RangeInclusive<usize>| {
        let want: Vec<(u64, &str)> = range.map(|i| (seqs[i], written[i].as_str())).collect();
        let have: Vec<(u64, &str)> = lines.iter().map(|l| (l.seq, l.text.as_str())).collect();
        assert_eq!(have, want);
        for l in lines {
            assert_eq!(format!("{}:{}", l.host, l.path), id);
        }
    };
    check(&context(&mut c, "mid", &id, seqs[10], 3, 4).await, 7..=14);
    check(&context(&mut c, "start", &id, seqs[1], 5, 2).await, 0..=3);
    check(&context(&mut c, "end", &id, seqs[29], 1, 10).await, 28..=29);
    check(&context(&mut c, "one", &id, seqs[5], 0, 0).await, 5..=5);
    // A stream the hub does not know: the protocol's `unknown_stream`, with the id.
    c.send(
        json!({"type": "context", "id": "nope", "stream": "nohost:/no/such.log",
        "seq": 1, "before": 5, "after": 5}),
    )
    .await;
    let reply = c
        .recv_where(|m| matches!(m, ServerMsg::Error { .. } | ServerMsg::Context { .. }))
        .await;
    let ServerMsg::Error { id, code, .. } = &reply else {
        panic!("context of an unknown stream answered {reply:?}");
    };
    assert_eq!(
        (id.as_deref(), code.as_str()),
        (Some("nope"), "unknown_stream")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_is_answered_only_from_what_the_ring_still_holds() {
    let dir = tempfile::tempdir().unwrap();
    let f = empty_files(dir.path(), &["app.log"]);
    let hub = Hub::start_following(&["--backlog", "10", s(&f[0])], &[&f[0]]);
    let id = stream_id(&f[0]);
    let mut c = Client::connect(&hub).await;
    c.subscribe(subscribe("all", &[])).await;
    // One line per batch (each written once the previous one arrived), so the ring of
    // 10 lines holds exactly the last 10.
    let mut seqs = Vec::new();
    for i in 0..30 {
        let line = format!("ring line {i}");
        append(&f[0], &format!("{line}\n"));
        let (got, _) = c.lines_until(&["all"], &line).await;
        seqs.extend(got["all"].iter().map(|l| l.seq));
    }
    assert_eq!(seqs.len(), 30);
    let old = context(&mut c, "old", &id, seqs[0], 0, 5).await;
    assert!(old.is_empty(), "evicted lines came back: {old:?}");
    let recent = context(&mut c, "recent", &id, seqs[29], 25, 0).await;
    let want: Vec<String> = (20..30).map(|i| format!("ring line {i}")).collect();
    assert_eq!(texts(&recent), want);
}

// ---------------------------------------------------------------------------------
// 6. many clients, each its own matches
// ---------------------------------------------------------------------------------

/// A deterministic mix of log lines.
fn mixed_lines(n: usize) -> Vec<String> {
    let words = [
        "error", "ERROR", "warn", "Warning", "info", "timeout", "debug", "fatal",
    ];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let a = words[(x % 8) as usize];
            let b = words[((x >> 8) % 8) as usize];
            format!(
                "{i} {a} user={} {b} path=/p/{}",
                (x >> 16) % 300,
                (x >> 32) % 50
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_with_different_filters_each_get_exactly_their_matches() {
    let dir = tempfile::tempdir().unwrap();
    let f = empty_files(dir.path(), &["app.log"]);
    let hub = Hub::start_following(&[s(&f[0])], &[&f[0]]);
    let end = "zz-end error warn";
    // (include, exclude, ignore_case)
    let filters: [(&[&str], &[&str], bool); 2] = [
        (&["error", "timeout"], &[r"user=1\d\d\b"], false),
        (&["warn", r"fatal.*path=/p/4\d"], &["info"], true),
    ];
    let mut clients = Vec::new();
    for (include, exclude, ignore_case) in filters {
        let mut c = Client::connect(&hub).await;
        c.subscribe(json!({"type": "subscribe", "id": "f", "include": include,
            "exclude": exclude, "ignore_case": ignore_case}))
            .await;
        clients.push(c);
    }
    let mut written = mixed_lines(3000);
    written.push(end.into());
    for chunk in written.chunks(700) {
        append(&f[0], &joined(chunk));
    }
    for (c, (include, exclude, ignore_case)) in clients.iter_mut().zip(filters) {
        let (got, others) = c.lines_until(&["f"], end).await;
        no_errors(&others);
        let filter = Filter::new(include, exclude, ignore_case);
        let want: Vec<(&str, Vec<[usize; 2]>)> = filter
            .select(&written)
            .into_iter()
            .map(|(_, l)| (l, filter.spans(l)))
            .collect();
        let have: Vec<(&str, Vec<[usize; 2]>)> = got["f"]
            .iter()
            .map(|l| (l.text.as_str(), l.spans.clone()))
            .collect();
        assert!(want.len() > 100 && want.len() < written.len() - 100);
        assert_eq!(have, want, "filter {include:?} -{exclude:?}");
        assert_rising(&got["f"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_clients_each_get_exactly_their_own_matches() {
    const CLIENTS: usize = 500;
    let dir = tempfile::tempdir().unwrap();
    let f = empty_files(dir.path(), &["app.log"]);
    let hub = Hub::start_following(&[s(&f[0])], &[&f[0]]);
    let url = hub.ws_url();
    let include = |i: usize| [format!(r"\bclient{i:04}\b"), "PANIC".to_string()];
    let clients = join_all((0..CLIENTS).map(|i| {
        let url = url.clone();
        async move {
            let mut c = Client::connect_url(&url, &[]).await;
            let [mine, shared] = include(i);
            c.subscribe(subscribe("mine", &[&mine, &shared])).await;
            c
        }
    }))
    .await;
    assert_eq!(hub.metric("supergrep_clients"), Some(CLIENTS as u64));
    assert_eq!(hub.metric("supergrep_subscriptions"), Some(CLIENTS as u64));

    let end = "zz-end PANIC";
    let mut written: Vec<String> = (0..4000)
        .map(|k| {
            let who = (k * 7 + k / 500) % CLIENTS;
            let what = if k % 97 == 0 { "PANIC" } else { "ok" };
            format!("req {k} client{who:04} {what}")
        })
        .collect();
    written.push(end.into());
    for chunk in written.chunks(1000) {
        append(&f[0], &joined(chunk));
    }
    // Expected, per client: computed once over everything written (one regex pass
    // per line rather than 500 filters over every line: this is a debug build).
    let token = regex::Regex::new(r"\bclient(\d{4})\b").unwrap();
    let shared = regex::Regex::new("PANIC").unwrap();
    let mut want: Vec<Vec<String>> = vec![Vec::new(); CLIENTS];
    for line in &written {
        let mine = token
            .captures_iter(line)
            .filter_map(|c| c[1].parse::<usize>().ok())
            .collect::<Vec<_>>();
        for (i, w) in want.iter_mut().enumerate() {
            if shared.is_match(line) || mine.contains(&i) {
                w.push(line.clone());
            }
        }
    }
    let results = join_all(
        clients
            .into_iter()
            .zip(want)
            .enumerate()
            .map(|(i, (mut c, want))| {
                tokio::spawn(async move {
                    let (got, others) = c.lines_until(&["mine"], end).await;
                    no_errors(&others);
                    assert_eq!(texts(&got["mine"]), want, "client {i}");
                    want.len()
                })
            }),
    )
    .await;
    let total: usize = results.into_iter().map(|r| r.unwrap()).sum();
    // Every client got its own lines (8 each) plus the shared ones.
    assert!(total > CLIENTS * 8, "{total}");
}

// ---------------------------------------------------------------------------------
// 7. a slow client
// ---------------------------------------------------------------------------------

/// Sets its flag when dropped, also when the test panics.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn flood_line(k: usize, pad: usize) -> String {
    format!("{k:06} payload {}", "x".repeat(pad))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_told_what_it_lost_and_hurts_nobody() {
    const LINES: usize = 200_000;
    const PAD: usize = 1000;
    let dir = tempfile::tempdir().unwrap();
    let f = empty_files(dir.path(), &["flood.log"]);
    // A small ring, so that memory is about the clients, not the backlog.
    let hub = Hub::start_following(&["--backlog", "10000", s(&f[0])], &[&f[0]]);

    // Every line matches `slow`; one line in 100 matches `fast`: 2,001 matches in all,
    // fewer than the per-client queue (10,000), so by DESIGN §1 `fast` loses none of
    // them however fast they are written.
    let mut slow = Client::connect(&hub).await;
    slow.subscribe(subscribe("slow", &["payload"])).await;
    let mut fast = Client::connect(&hub).await;
    fast.subscribe(subscribe("fast", &[r"^\d{4}00 ", "zz-end"]))
        .await;
    let end = "zz-end payload";

    let line = |k: usize| flood_line(k, PAD);
    let fast_reader = tokio::spawn(async move {
        let (got, others) = fast.lines_until(&["fast"], end).await;
        no_errors(&others);
        got["fast"].clone()
    });

    // The hub's RSS, sampled until the end of the test (memory, not timing).
    let peak = Arc::new(AtomicU64::new(0));
    let done = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let sampler = {
        let (peak, done, pid) = (peak.clone(), done.0.clone(), hub.proc.pid());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(kb) = rss_kb(pid) {
                    peak.fetch_max(kb, Ordering::Relaxed);
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        })
    };

    // Big appends, as fast as the file takes them.
    let path = f[0].clone();
    tokio::task::spawn_blocking(move || {
        let line = |k: usize| flood_line(k, PAD);
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        let mut chunk = String::new();
        for k in 0..LINES {
            chunk.push_str(&line(k));
            chunk.push('\n');
            if chunk.len() > 8 << 20 {
                file.write_all(chunk.as_bytes()).unwrap();
                chunk.clear();
            }
        }
        chunk.push_str(end);
        chunk.push('\n');
        file.write_all(chunk.as_bytes()).unwrap();
    })
    .await
    .unwrap();

    // The reading client got every one of its matches, in order.
    let got_fast = fast_reader.await.unwrap();
    let want_fast: Vec<String> = (0..LINES)
        .filter(|k| k % 100 == 0)
        .map(line)
        .chain([end.to_string()])
        .collect();
    assert_eq!(got_fast.len(), want_fast.len());
    assert!(got_fast.iter().zip(&want_fast).all(|(g, w)| g.text == *w));

    // Now the slow one reads again: what it got plus what it was told it lost is
    // exactly what matched (every line), and what it got is a rising subsequence.
    let (got, others) = slow.lines_until(&["slow"], end).await;
    let mut dropped = 0;
    for m in &others {
        match m {
            ServerMsg::Dropped { id, count } => {
                assert_eq!(id, "slow");
                assert!(*count > 0);
                dropped += count;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let got = &got["slow"];
    drop(done);
    sampler.join().unwrap();

    assert_rising(got);
    let base = got.last().unwrap().seq - LINES as u64;
    for l in &got[..got.len() - 1] {
        assert_eq!(l.text, line((l.seq - base) as usize));
    }
    let matched = LINES as u64 + 1;
    assert!(
        dropped > 0,
        "200,000 lines of 1 kB do not fit a 10,000-match queue plus socket buffers"
    );
    assert_eq!(
        got.len() as u64 + dropped,
        matched,
        "received {} + dropped {dropped} != matched {matched}",
        got.len()
    );

    // Memory stays bounded. What the hub may hold at once: the ring (10,000 lines of
    // 1 kB = 10 MB), two client queues (10,000 matches each, ~11 MB each), a few
    // frames in flight (4,000 lines taken at once, ~4 MB of JSON), 64 batches of up to
    // 256 kB between tailer and hub (16 MB), plus the program itself (~20 MB): well
    // under 100 MB. Keeping every match of the slow client instead would take over
    // 200 MB (200,000 lines of 1 kB, before JSON). 200 MB lies between the two.
    let peak_mb = peak.load(Ordering::Relaxed) / 1024;
    let now_mb = hub.rss_kb() / 1024;
    eprintln!("hub RSS: peak {peak_mb} MB, now {now_mb} MB; dropped {dropped}");
    assert!(peak_mb < 200, "hub RSS peaked at {peak_mb} MB");
    assert!(now_mb < 200, "hub RSS is {now_mb} MB");
}

/// Lines of /proc/PID/maps: the process's memory mappings.
fn memory_maps(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map(|m| m.lines().count())
        .unwrap_or(0)
}

/// A log written a line at a time fills the ring with one-line batches, each read
/// into a 256 KiB buffer. The ring must keep the lines, not the buffers: glibc maps
/// such a buffer on its own and, shrunk, it stayed a mapping of its own, one per batch
/// (a 100,000-line ring of them was 283 MiB and reached the kernel's map limit).
#[test]
fn a_ring_of_one_line_batches_keeps_no_read_buffers() {
    const LINES: usize = 5000;
    let dir = tempfile::tempdir().unwrap();
    let f = empty_files(dir.path(), &["slow.log"]);
    let hub = Hub::start_following(&["--backlog", "100000", s(&f[0])], &[&f[0]]);
    let maps_before = memory_maps(hub.proc.pid());
    for k in 0..LINES {
        append(&f[0], &format!("slow line {k}\n"));
        // Give the tailer time to read each line on its own.
        std::thread::sleep(Duration::from_micros(200));
    }
    hub.wait_metric("supergrep_lines_ingested_total", LINES as u64);
    let batches = hub
        .metric("supergrep_batches_ingested_total")
        .expect("supergrep_batches_ingested_total in /metrics");
    let maps_after = memory_maps(hub.proc.pid());
    eprintln!("{batches} batches; memory maps {maps_before} -> {maps_after}");
    assert!(batches > 0 && batches <= LINES as u64);
    assert!(
        maps_after < maps_before + 100 + batches as usize / 10,
        "{batches} batches in the ring took the hub from {maps_before} to {maps_after} memory maps"
    );
}

// ---------------------------------------------------------------------------------
// 8. bad requests
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_errors_and_the_connection_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let f = empty_files(dir.path(), &["app.log"]);
    let hub = Hub::start_following(&[s(&f[0])], &[&f[0]]);
    let mut c = Client::connect(&hub).await;

    let error = |m: ServerMsg| match m {
        ServerMsg::Error {
            id, code, message, ..
        } => (id, code, message),
        other => panic!("expected an error, got {other:?}"),
    };

    // Not JSON.
    c.send_text("{not json".into()).await;
    let (id, code, _) = error(c.recv().await);
    assert_eq!((id, code.as_str()), (None, "bad_request"));
    // JSON, but no such request; the id is named.
    c.send(json!({"type": "frobnicate", "id": "q"})).await;
    let (id, code, _) = error(c.recv().await);
    assert_eq!((id.as_deref(), code.as_str()), (Some("q"), "bad_request"));
    // A binary frame.
    c.ws.send(Message::binary(b"{\"type\":\"subscribe\"}".to_vec()))
        .await
        .unwrap();
    let (_, code, _) = error(c.recv().await);
    assert_eq!(code, "bad_request");

    // An invalid regex: the subscription's id, and a message naming the pattern.
    c.send(json!({"type": "subscribe", "id": "bad", "include": ["ok", "foo(bar"]}))
        .await;
    let reply = c.recv().await;
    assert!(
        matches!(&reply, ServerMsg::Error { pattern: Some(p), .. } if p == "foo(bar"),
        "the error names the failing pattern: {reply:?}"
    );
    let (id, code, message) = error(reply);
    assert_eq!(
        (id.as_deref(), code.as_str()),
        (Some("bad"), "invalid_regex")
    );
    assert!(message.contains("foo(bar"), "{message}");

    // The same connection still subscribes and receives; the failed subscription
    // receives nothing.
    c.subscribe(subscribe("good", &["ok"])).await;
    c.subscribe(watch_sub()).await;
    append(&f[0], "ok 1\nnope\nok 2\n");
    let (got, others) = settle(&mut c, &f[0], "1").await;
    no_errors(&others);
    assert_eq!(texts(&got["good"]), ["ok 1", "ok 2"]);
    assert!(!got.contains_key("bad"));

    // At most 32 subscriptions per client (the default limit): "good" and the watcher
    // are two; replacing one at the limit is fine.
    for i in 0..30 {
        c.subscribe(subscribe(&format!("s{i}"), &["x"])).await;
    }
    c.send(subscribe("one-too-many", &["x"])).await;
    let (id, code, _) = error(c.recv().await);
    assert_eq!(
        (id.as_deref(), code.as_str()),
        (Some("one-too-many"), "too_many_subscriptions")
    );
    c.subscribe(subscribe("s7", &["y"])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_is_told_to_the_client() {
    let (_dir, hub) = hub_with_config("[limits]\nmax_message_bytes = 1000\n", None);
    let mut c = Client::connect(&hub).await;
    let pattern = "a".repeat(2000);
    c.send(subscribe("big", &[&pattern])).await;
    match c.frame().await {
        Some(Message::Text(t)) => {
            let m: ServerMsg = serde_json::from_str(t.as_str()).unwrap();
            assert!(matches!(m, ServerMsg::Error { .. }), "{m:?}");
        }
        Some(Message::Close(Some(frame))) => {
            assert_eq!(u16::from(frame.code), 1009, "{frame:?}");
        }
        other => panic!("the connection ended without a word: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------
// 9. token and Origin
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_required_when_set_for_websockets_and_markers() {
    let dir = tempfile::tempdir().unwrap();
    let f = empty_files(dir.path(), &["app.log"]);
    let hub = Hub::start_following(&["--token", "s3cret", s(&f[0])], &[&f[0]]);
    let url = hub.bare_ws_url();

    assert_eq!(try_connect(&url, &[]).await.err(), Some(401));
    assert_eq!(
        try_connect(&format!("{url}?token=nope"), &[]).await.err(),
        Some(401)
    );
    assert_eq!(
        try_connect(&format!("{url}?token=s3cre"), &[]).await.err(),
        Some(401)
    );
    let mut c = Client::connect_url(&format!("{url}?token=s3cret"), &[]).await;
    let mut bearer = Client::connect_url(&url, &[("Authorization", "Bearer s3cret")]).await;

    // Markers need it too; refused ones are not announced.
    let post_marker = |query: &str, text: &str| {
        let body = json!({ "text": text }).to_string();
        http(
            hub.port,
            "POST",
            &format!("/api/markers{query}"),
            &[("Content-Type", "application/json")],
            &body,
        )
        .0
    };
    // `supergrep mark` (DESIGN §3).
    let mark = |args: &[&str]| {
        bin()
            .args(["mark", "--hub", &format!("ws://127.0.0.1:{}", hub.port)])
            .args(args)
            .output()
            .unwrap()
    };
    assert_eq!(post_marker("", "refused 1"), 401);
    assert_eq!(post_marker("?token=wrong", "refused 2"), 401);
    let refused = mark(&["refused 3"]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("401"), "{stderr}");
    assert_eq!(post_marker("?token=s3cret", "deploy 42"), 202);
    // `mark` with the token.
    let marked = mark(&["--token", "s3cret", "deploy", "43"]);
    assert_eq!(
        marked.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&marked.stderr)
    );
    for c in [&mut c, &mut bearer] {
        for want in ["deploy 42", "deploy 43"] {
            let m = c
                .recv_where(|m| matches!(m, ServerMsg::Marker { .. }))
                .await;
            assert!(
                matches!(&m, ServerMsg::Marker { text, .. } if text == want),
                "{m:?}"
            );
        }
    }
    // Stream names are behind the token too.
    let (status, _) = http(hub.port, "GET", "/api/streams", &[], "");
    assert_eq!(status, 401);
    // Every refusal is counted.
    assert_eq!(hub.metric("supergrep_requests_refused_total"), Some(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_the_config_file_is_required_too() {
    let (_dir, hub) = hub_with_config("token = \"fromconfig\"\n", Some("fromconfig"));
    let url = hub.bare_ws_url();
    assert_eq!(try_connect(&url, &[]).await.err(), Some(401));
    assert_eq!(
        try_connect(&format!("{url}?token=nope"), &[]).await.err(),
        Some(401)
    );
    Client::connect_url(&format!("{url}?token=fromconfig"), &[]).await;
    let (status, _) = http(hub.port, "POST", "/api/markers", &[], r#"{"text":"x"}"#);
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_from_a_foreign_origin_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let f = empty_files(dir.path(), &["app.log"]);
    let config = dir.path().join("hub.toml");
    std::fs::write(
        &config,
        "allowed_origins = [\"https://logs.example.com\"]\n",
    )
    .unwrap();
    let hub = Hub::start_following(&["--config", s(&config), s(&f[0])], &[&f[0]]);
    let url = hub.ws_url();
    let own = format!("http://127.0.0.1:{}", hub.port);
    for evil in [
        "http://evil.example",
        "null",
        "http://127.0.0.1",
        "http://127.0.0.1:1",
    ] {
        assert_eq!(
            try_connect(&url, &[("Origin", evil)]).await.err(),
            Some(403),
            "Origin {evil}"
        );
    }
    Client::connect_url(&url, &[("Origin", own.as_str())]).await;
    Client::connect_url(&url, &[("Origin", "https://logs.example.com")]).await;
    // Non-browser clients send no Origin at all.
    Client::connect_url(&url, &[]).await;
}

/// `/metrics` names hosts and paths: with a token set it needs it (or
/// `metrics_token`, for Prometheus), as `?token=` or `Authorization: Bearer`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_token_or_the_metrics_token() {
    let (dir, hub) = hub_with_config(
        "token = \"s3cret\"\nmetrics_token = \"prom\"\n",
        Some("s3cret"),
    );
    let get = |path: &str, headers: &[(&str, &str)]| http(hub.port, "GET", path, headers, "").0;
    assert_eq!(get("/metrics", &[]), 401);
    assert_eq!(get("/metrics?token=wrong", &[]), 401);
    assert_eq!(get("/metrics", &[("Authorization", "Bearer wrong")]), 401);
    assert_eq!(get("/metrics?token=s3cret", &[]), 200);
    assert_eq!(get("/metrics", &[("Authorization", "Bearer s3cret")]), 200);
    assert_eq!(get("/metrics?token=prom", &[]), 200);
    assert_eq!(get("/metrics", &[("Authorization", "Bearer prom")]), 200);
    // The metrics token opens nothing else.
    assert_eq!(
        get("/api/streams", &[("Authorization", "Bearer prom")]),
        401
    );
    assert_eq!(
        try_connect(&format!("{}?token=prom", hub.bare_ws_url()), &[])
            .await
            .err(),
        Some(401)
    );
    // A hub with only a metrics token keeps /metrics behind it.
    let only = dir.path().join("only.toml");
    std::fs::write(&only, "metrics_token = \"prom\"\n").unwrap();
    let open = Hub::start(&["--config", s(&only)]);
    assert_eq!(http(open.port, "GET", "/metrics", &[], "").0, 401);
    let (status, _) = http(
        open.port,
        "GET",
        "/metrics",
        &[("Authorization", "Bearer prom")],
        "",
    );
    assert_eq!(status, 200);
}

/// A tokenless hub takes markers only as JSON and not from another site's page: a
/// cross-site form or `text/plain` fetch needs no preflight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markers_from_another_site_or_not_json_are_refused() {
    let hub = Hub::start(&[]);
    let mut c = Client::connect(&hub).await;
    let post = |headers: &[(&str, &str)], text: &str| {
        let body = json!({ "text": text }).to_string();
        http(hub.port, "POST", "/api/markers", headers, &body).0
    };
    let json_type = ("Content-Type", "application/json");
    assert_eq!(post(&[("Content-Type", "text/plain")], "csrf 1"), 415);
    assert_eq!(post(&[], "csrf 2"), 415);
    assert_eq!(
        post(
            &[("Content-Type", "application/x-www-form-urlencoded")],
            "csrf 3"
        ),
        415
    );
    assert_eq!(
        post(&[json_type, ("Origin", "http://evil.example")], "csrf 4"),
        403
    );
    assert_eq!(post(&[json_type, ("Origin", "null")], "csrf 5"), 403);
    let own = format!("http://127.0.0.1:{}", hub.port);
    assert_eq!(
        post(&[json_type, ("Origin", &own)], "from the hub's page"),
        202
    );
    assert_eq!(
        post(
            &[("Content-Type", "application/json; charset=utf-8")],
            "from curl"
        ),
        202
    );
    // `supergrep mark` still gets through.
    let marked = bin()
        .args([
            "mark",
            "--hub",
            &format!("ws://127.0.0.1:{}", hub.port),
            "from mark",
        ])
        .output()
        .unwrap();
    assert_eq!(
        marked.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&marked.stderr)
    );
    // Only the three accepted markers reach the client, in order.
    for want in ["from the hub's page", "from curl", "from mark"] {
        let m = c
            .recv_where(|m| matches!(m, ServerMsg::Marker { .. }))
            .await;
        assert!(
            matches!(&m, ServerMsg::Marker { text, .. } if text == want),
            "{m:?}"
        );
    }
}

/// DNS rebinding: a page on `evil.example`, resolved to 127.0.0.1, reads a tokenless
/// hub as its own origin; its requests say `Host: evil.example`. Only IP addresses,
/// localhost, the hostname and `allowed_hosts` are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_for_a_name_the_hub_does_not_answer_to_are_refused() {
    let (_dir, hub) = hub_with_config("allowed_hosts = [\"logs.example.com\"]\n", None);
    let port = hub.port;
    let get = |path: &str, host: &str| {
        let host = host.replace("PORT", &port.to_string());
        http(port, "GET", path, &[("Host", &host)], "")
    };
    for path in ["/api/streams", "/", "/metrics", "/api/ui"] {
        let (status, body) = get(path, "evil.example:PORT");
        assert_eq!(status, 403, "{path}: {body}");
        assert!(body.contains("allowed_hosts"), "{body}");
    }
    // A WebSocket upgrade by that name is refused too.
    let upgrade = [
        ("Host", "evil.example"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    assert_eq!(http(port, "GET", "/ws", &upgrade, "").0, 403);
    for ok in [
        "127.0.0.1:PORT",
        "localhost:PORT",
        "LocalHost",
        "[::1]:PORT",
        "logs.example.com:PORT",
        "logs.example.com",
    ] {
        let (status, body) = get("/api/streams", ok);
        assert_eq!(status, 200, "Host {ok}: {body}");
    }
    let (status, body) = get("/api/streams", &support::hostname());
    assert_eq!(status, 200, "the hostname: {body}");
}

/// A connection that never finishes its request head is closed after
/// `http_header_timeout_secs` (it was held forever).
#[test]
fn a_request_head_that_never_ends_is_timed_out() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hub.toml");
    std::fs::write(&config, "[limits]\nhttp_header_timeout_secs = 1\n").unwrap();
    let hub = Hub::start(&["--config", s(&config)]);
    let mut half = std::net::TcpStream::connect(("127.0.0.1", hub.port)).unwrap();
    half.set_read_timeout(Some(PATIENCE)).unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = half
        .read(&mut buf)
        .expect("the hub should close a half-open connection");
    let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(n == 0 || answer.starts_with("HTTP/1.1 408"), "{answer:?}");
}

/// One address cannot hold more than `max_connections_per_address` connections at
/// once (half-open ones here); another address still gets through.
#[test]
fn connections_are_capped_per_address() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hub.toml");
    std::fs::write(
        &config,
        "[limits]\nhttp_header_timeout_secs = 600\nmax_connections_per_address = 3\n",
    )
    .unwrap();
    let hub = Hub::start(&["--config", s(&config)]);
    let idle: Vec<std::net::TcpStream> = (0..3)
        .map(|_| {
            let mut c = connect_from("127.0.0.1", hub.port);
            c.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
            c
        })
        .collect();
    support::wait::wait_until("three connections open", || {
        let (status, body) = http_from("127.0.0.2", hub.port, "/metrics");
        // Theirs, and this request's own.
        status == 200 && support::http::metric_in(&body, "supergrep_connections") == Some(4)
    });
    // A fourth from 127.0.0.1 is closed at once, unanswered.
    let mut fourth = connect_from("127.0.0.1", hub.port);
    let _ = fourth.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let mut buf = [0u8; 1024];
    let n = fourth.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "{:?}", String::from_utf8_lossy(&buf[..n]));
    // Another address is served meanwhile, and the refusal counted.
    let (status, body) = http_from("127.0.0.2", hub.port, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        support::http::metric_in(&body, "supergrep_connections_refused_total"),
        Some(1)
    );
    drop(idle);
    // Their places are given back.
    support::wait::wait_until("the idle connections gone", || {
        http_from("127.0.0.1", hub.port, "/healthz").0 == 200
    });
}

/// `GET path` from the local address `ip`: the status and the body.
fn http_from(ip: &str, port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = connect_from(ip, port);
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    // A refused connection is closed unanswered: status 0.
    let _ = s.read_to_string(&mut raw);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}

// ---------------------------------------------------------------------------------
// 10. SIGTERM
// ---------------------------------------------------------------------------------

/// Connects `n` clients (one of them subscribed), sends SIGTERM, and returns for each
/// client the first frame it got after that (`None`: the connection just ended), and
/// the hub's exit status.
async fn sigterm_with_clients(n: usize) -> (Vec<Option<Message>>, std::process::ExitStatus) {
    let dir = tempfile::tempdir().unwrap();
    let f = empty_files(dir.path(), &["app.log"]);
    let mut hub = Hub::start_following(&[s(&f[0])], &[&f[0]]);
    let mut clients = Vec::new();
    for _ in 0..n {
        clients.push(Client::connect(&hub).await);
    }
    clients[0].subscribe(subscribe("a", &["x"])).await;
    hub.wait_metric("supergrep_clients", n as u64);
    hub.proc.signal("TERM");
    let mut frames = Vec::new();
    for c in &mut clients {
        frames.push(c.frame().await);
    }
    let status = hub.proc.wait_exit();
    (frames, status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_every_connection_and_exits_zero() {
    let (frames, status) = sigterm_with_clients(2).await;
    // Every connection ends (`frame` is bounded by PATIENCE): with a Close frame, or
    // (see the ignored test below) without one.
    for f in &frames {
        assert!(
            matches!(f, None | Some(Message::Close(_))),
            "after SIGTERM: {f:?}"
        );
    }
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_sends_every_client_a_close_frame() {
    let (frames, status) = sigterm_with_clients(200).await;
    let closed = frames
        .iter()
        .filter(|f| matches!(f, Some(Message::Close(_))))
        .count();
    assert_eq!(
        closed,
        frames.len(),
        "only {closed} of {} clients got a Close frame; the others' connections just ended",
        frames.len(),
    );
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// An agent connected but still to say hello is an open session too: SIGTERM gives
/// it a close frame. (The hub counted agents only once welcomed, so it exited under
/// this one, whose connection just ended.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_sends_a_close_frame_to_an_agent_yet_to_say_hello() {
    use futures_util::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let f = empty_files(dir.path(), &["app.log"]);
    let mut hub = Hub::start_following(&[s(&f[0])], &[&f[0]]);
    let mut agent = try_connect(&format!("{}/agent", hub.agent_url()), &[])
        .await
        .unwrap();
    hub.proc.signal("TERM");
    let frame = loop {
        let next = tokio::time::timeout(PATIENCE, agent.next())
            .await
            .expect("no frame from the hub");
        match next {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => break other,
        }
    };
    match frame {
        Some(Ok(Message::Close(Some(close)))) => assert_eq!(u16::from(close.code), 1001),
        other => panic!("after SIGTERM, the agent got {other:?}, not a close frame"),
    }
    let status = hub.proc.wait_exit();
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// SIGTERM stops every part of a hub following a file, with syslog input and a
/// client: the tailer, woken in its wait on file events, and the ingest thread end
/// and are joined, the hub is freed and its own threads (the matcher's, the one
/// that compiled the client's subscription) are joined after it (each said in its
/// log), nothing is given up on, and it exits 0 by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_and_joins_the_tailer_and_ingest_threads() {
    let dir = tempfile::tempdir().unwrap();
    let f = empty_files(dir.path(), &["app.log"]);
    let (mut hub, _, _) = Hub::start_syslog(&[s(&f[0])]);
    hub.proc.wait_following(&f[0]);
    let mut client = Client::connect(&hub).await;
    client.subscribe(subscribe("a", &["x"])).await;
    hub.proc.signal("TERM");
    let status = hub.proc.wait_exit();
    let said = hub.proc.stderr_text();
    assert_eq!(status.code(), Some(0), "{status:?}; it said:\n{said}");
    for thread in ["tailer", "ingest", "matcher", "compile"] {
        assert!(
            said.contains(&format!("stopping: joined the {thread} thread")),
            "the {thread} thread was not joined; the hub said:\n{said}"
        );
    }
    // The matcher's thread is the hub's: it ends once the hub is freed.
    assert!(said.contains("stopping: the hub is freed"), "{said}");
    let freed = said.find("stopping: the hub is freed").unwrap();
    let matcher = said.find("stopping: joined the matcher thread").unwrap();
    assert!(freed < matcher, "joined before the hub was freed:\n{said}");
    assert!(!said.contains("gave up"), "{said}");
}

// ---------------------------------------------------------------------------------
// 11. HTTP endpoints and markers
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_healthz_and_markers() {
    let dir = tempfile::tempdir().unwrap();
    let f = empty_files(dir.path(), &["app.log"]);
    let hub = Hub::start_following(&[s(&f[0])], &[&f[0]]);

    let (status, body) = http(hub.port, "GET", "/healthz", &[], "");
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    let mut a = Client::connect(&hub).await;
    let mut b = Client::connect(&hub).await;
    a.subscribe(subscribe("e", &["error"])).await;
    let written: Vec<String> = (0..50)
        .map(|i| format!("{i} {}", if i % 5 == 0 { "error" } else { "fine" }))
        .chain(["zz-end error".into()])
        .collect();
    append(&f[0], &joined(&written));
    let (got, _) = a.lines_until(&["e"], "zz-end error").await;
    let matched = Filter::new(&["error"], &[], false).select(&written).len();
    assert_eq!(got["e"].len(), matched);

    // Everything counted is known exactly by now.
    let (status, metrics) = http(hub.port, "GET", "/metrics", &[], "");
    assert_eq!(status, 200, "a hub without a token has /metrics open");
    for name in [
        "supergrep_lines_ingested_total",
        "supergrep_matches_delivered_total",
        "supergrep_matches_dropped_total",
        "supergrep_clients",
        "supergrep_subscriptions",
    ] {
        assert!(
            metrics.contains(&format!("# TYPE {name} ")),
            "no TYPE for {name}:\n{metrics}"
        );
    }
    // (Counted just after the hand-over to the client, so possibly a moment after
    // the client has the line: wait for the count rather than read it once.)
    hub.wait_metric("supergrep_lines_ingested_total", written.len() as u64);
    hub.wait_metric("supergrep_matches_delivered_total", matched as u64);
    assert_eq!(hub.metric("supergrep_matches_dropped_total"), Some(0));
    assert_eq!(hub.metric("supergrep_clients"), Some(2));
    assert_eq!(hub.metric("supergrep_subscriptions"), Some(1));
    let per_stream = format!(
        "supergrep_stream_lines_total{{stream=\"{}\"}} {}",
        stream_id(&f[0]),
        written.len()
    );
    assert!(
        metrics.lines().any(|l| l == per_stream),
        "no {per_stream:?} in:\n{metrics}"
    );
    // /api/streams says how many lines each stream has had.
    let (status, body) = http(hub.port, "GET", "/api/streams", &[], "");
    assert_eq!(status, 200);
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        listed,
        json!([{"id": stream_id(&f[0]), "host": hostname(), "path": s(&f[0]),
            "set": "default", "lines": written.len()}])
    );

    // A marker goes to every client.
    let (status, _) = http(
        hub.port,
        "POST",
        "/api/markers",
        &[("Content-Type", "application/json")],
        r#"{"text":"deploy 42"}"#,
    );
    assert_eq!(status, 202);
    for c in [&mut a, &mut b] {
        let m = c
            .recv_where(|m| matches!(m, ServerMsg::Marker { .. }))
            .await;
        let ServerMsg::Marker { ts, text } = m else {
            unreachable!()
        };
        assert_eq!(text, "deploy 42");
        humantime::parse_rfc3339(&ts).unwrap();
    }
    // Bad markers are refused.
    for bad in [r#"{"txt":"x"}"#, "not json", r#"{"text":"   "}"#] {
        let json = [("Content-Type", "application/json")];
        let (status, _) = http(hub.port, "POST", "/api/markers", &json, bad);
        assert_eq!(status, 400, "{bad}");
    }
}

// ---------------------------------------------------------------------------------
// 12. --connect
// ---------------------------------------------------------------------------------

/// `supergrep --connect URL ARGS…`, printing what it receives.
fn connect_client(url: &str, args: &[&str]) -> Proc {
    let mut all = vec!["--connect", url];
    all.extend_from_slice(args);
    supergrep(&all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_prints_matches_and_survives_a_hub_restart() {
    let dir = tempfile::tempdir().unwrap();
    let f = empty_files(dir.path(), &["app.log"]);
    let args = [s(&f[0])];
    let mut hub = Hub::start_following(&args, &[&f[0]]);
    let port = hub.port;
    let mut client = connect_client(&format!("ws://127.0.0.1:{port}"), &["-e", "error"]);
    hub.wait_metric("supergrep_subscriptions", 1);

    let prefix = format!("{}:", stream_id(&f[0]));
    let first = ["one error", "fine", "two error", "zz-end-1 error"];
    append(&f[0], &joined(&first));
    let mut printed = client.lines_until("zz-end-1 error");

    hub.proc.signal("KILL");
    hub.proc.wait_exit();
    client.wait_stderr(&["reconnecting"]);
    // While the hub is away the client says so, and why, and goes on trying.
    let said = client.wait_stderr(&[
        &format!("supergrep: cannot reach the hub at ws://127.0.0.1:{port}/ws"),
        "retrying in",
    ]);
    assert!(said.contains("refused"), "the reason: {said}");
    let hub = Hub::start_on(port, &args, &[&f[0]]);
    client.wait_stderr(&["supergrep: connected to"]);
    hub.wait_metric("supergrep_subscriptions", 1);

    let second = ["three error", "fine again", "four error", "zz-end-2 error"];
    append(&f[0], &joined(&second));
    printed.extend(client.lines_until("zz-end-2 error"));

    let filter = Filter::new(&["error"], &[], false);
    let want: Vec<String> = filter
        .select(&first)
        .into_iter()
        .chain(filter.select(&second))
        .map(|(_, l)| format!("{prefix}{l}"))
        .collect();
    assert_eq!(printed, want);
    // Nothing else came meanwhile (the last line was the last one written).
    assert!(client.drain(Duration::ZERO).is_empty());
}

/// A TCP relay between `--connect` and the hub that the test can cut, to lose the hub
/// without restarting it.
struct Relay {
    port: u16,
    up: Arc<AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Relay {
    async fn start(target: u16) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, cut_rx) = tokio::sync::watch::channel(0u64);
        let relay_up = up.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !relay_up.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut cut_rx = cut_rx.clone();
                cut_rx.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_rx.changed() => {}
                    }
                });
            }
        });
        Relay { port, up, cut }
    }

    /// Drops every relayed connection and refuses new ones.
    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_fills_the_gap_after_losing_the_same_hub_printing_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let f = empty_files(dir.path(), &["app.log"]);
    let hub = Hub::start_following(&[s(&f[0])], &[&f[0]]);
    let relay = Relay::start(hub.port).await;
    let mut client = connect_client(&format!("ws://127.0.0.1:{}", relay.port), &["-e", "error"]);
    hub.wait_metric("supergrep_subscriptions", 1);
    let prefix = format!("{}:", stream_id(&f[0]));

    let first = ["one error", "fine", "two error", "zz-end-1 error"];
    append(&f[0], &joined(&first));
    let mut printed = client.lines_until("zz-end-1 error");

    relay.down();
    client.wait_stderr(&["reconnecting"]);
    hub.wait_metric("supergrep_subscriptions", 0);
    // Written while the client is away: the hub keeps them in its ring.
    let gap = ["three error", "fine", "four error"];
    append(&f[0], &joined(&gap));
    hub.wait_metric("supergrep_lines_ingested_total", 7);
    relay.up();
    client.wait_stderr(&["supergrep: connected to"]);
    hub.wait_metric("supergrep_subscriptions", 1);
    let last = ["five error", "zz-end-2 error"];
    append(&f[0], &joined(&last));
    printed.extend(client.lines_until("zz-end-2 error"));

    let filter = Filter::new(&["error"], &[], false);
    let want: Vec<String> = [&first[..], &gap[..], &last[..]]
        .iter()
        .flat_map(|part| filter.select(part))
        .map(|(_, l)| format!("{prefix}{l}"))
        .collect();
    assert_eq!(printed, want);
}

// ---------------------------------------------------------------------------------
// 13. config errors
// ---------------------------------------------------------------------------------

#[test]
fn config_errors_exit_2_and_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    std::fs::write(&log, "").unwrap();
    let set = format!("[[set]]\nname = \"web\"\npathz = [{}]\n", toml_str(s(&log)));
    let cases = [
        ("lisen = \"127.0.0.1:1\"\n", "lisen"),
        ("[limits]\nclient_queu = 5\n", "client_queu"),
        (set.as_str(), "pathz"),
        ("[limits]\nclient_queue = 0\n", "client_queue"),
        ("listen = \"nowhere\"\n", "listen"),
        (
            "[[irc]]\nserver = \"irc://h\"\nchannel = \"#c\"\nrate = 0.0\n",
            "rate",
        ),
        // Hubs do not read NATS yet: said, not silently ignored.
        (
            "[nats]\nservers = [\"nats://127.0.0.1:4222\"]\n",
            "a hub does not read NATS yet",
        ),
    ];
    for (i, (text, key)) in cases.iter().enumerate() {
        let config = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&config, text).unwrap();
        let out = bin()
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg(&log)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text:?}: {stderr}");
        assert!(
            stderr.contains(key),
            "{text:?}: stderr does not name {key:?}: {stderr}"
        );
        assert!(out.stdout.is_empty());
    }
}

/// A demo hub that cannot start (its port taken) removes the sample logs it began
/// writing. (They were left in the temporary directory, one directory per try.)
#[test]
fn a_demo_that_cannot_start_leaves_no_files() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = bin();
    cmd.args(["serve", "--demo", "--listen", &listen])
        .env("TMPDIR", tmp.path());
    let exited = support::proc::run_to_exit(cmd, "the demo on a taken port");
    let stderr = exited.stderr;
    assert_eq!(exited.code, 2, "{stderr}");
    assert!(stderr.contains(&listen), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
}

/// The demo writes into a directory it made new, not into one of its name that
/// someone else made in the shared temporary directory beforehand (a local user
/// could read the demo's logs there, or point its files elsewhere by symlinks).
#[test]
fn the_demo_writes_into_a_directory_of_its_own() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    // What the demo used to take: `supergrep-demo-PID`, for the next PIDs.
    let mut probe = std::process::Command::new("true").spawn().unwrap();
    let next_pid = probe.id();
    probe.wait().unwrap();
    let planted: Vec<_> = (next_pid..next_pid + 1024)
        .map(|pid| tmp.path().join(format!("supergrep-demo-{pid}")))
        .collect();
    for dir in &planted {
        std::fs::create_dir(dir).unwrap();
    }
    let listen = format!("127.0.0.1:{}", support::free_port());
    let mut cmd = bin();
    cmd.args(["serve", "--demo", "--listen", &listen])
        .env("TMPDIR", tmp.path());
    let mut hub = support::proc::Proc::spawn("demo hub", cmd);
    hub.wait_stderr(&["serving http://"]);
    let made: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|d| !planted.contains(d))
        .collect();
    assert_eq!(made.len(), 1, "the demo's directory: {made:?}");
    let mode = std::fs::metadata(&made[0]).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "{}", made[0].display());
    hub.signal("TERM");
    hub.wait_exit();
    assert!(!made[0].exists(), "{} is left", made[0].display());
    assert!(planted
        .iter()
        .all(|d| std::fs::read_dir(d).unwrap().next().is_none()));
}

/// SIGTERM ends the demo's writer too, before its directory goes: it is joined
/// with the tailer and ingest threads, and the hub exits 0 by itself.
#[test]
fn sigterm_ends_and_joins_the_demo_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", support::free_port());
    let mut cmd = bin();
    cmd.args(["serve", "--demo", "--listen", &listen])
        .env("TMPDIR", tmp.path());
    let mut hub = support::proc::Proc::spawn("demo hub", cmd);
    hub.wait_stderr(&["serving http://"]);
    hub.signal("TERM");
    let status = hub.wait_exit();
    let said = hub.stderr_text();
    assert_eq!(status.code(), Some(0), "{status:?}; it said:\n{said}");
    for thread in ["demo writer", "tailer", "ingest"] {
        assert!(
            said.contains(&format!("stopping: joined the {thread} thread")),
            "the {thread} thread was not joined; the hub said:\n{said}"
        );
    }
    assert!(!said.contains("gave up"), "{said}");
}
