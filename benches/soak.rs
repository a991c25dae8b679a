//! Soak run of the hub (issue 25 §6; not in CI): `benches/soak.sh [SECONDS]`.
//!
//! One `supergrep serve` following a file of its own and taking syslog over TCP and
//! UDP, three `supergrep agent`s shipping a file each, and for the whole run (600 s by
//! default):
//! - writers appending numbered lines to the four files and sending them over
//!   syslog, the hub's file and one agent's file rotated (rename + create) now and then;
//! - 150 steady clients, each subscribed to one group of lines (3 of them to every
//!   line), whose accounting is exact: every line its filter matches arrived once or
//!   was counted in a `dropped` message, and nothing else arrived;
//! - 50 churning clients, connecting, reading a few seconds and leaving, over and
//!   over: no line twice, none that their filter does not match;
//! - one hostile client: a connection that subscribes to every line and never reads,
//!   and one after another that send garbage (malformed and oversized messages,
//!   binary frames, pattern bombs, too many subscriptions) and leave.
//!
//! Before it starts, 100,000 lines (syslog datagrams, one batch each, as the run's
//! lines mostly are) fill the hub's backlog ring, so that memory at the start is that
//! of a hub in use. RSS (`VmRSS`) and open descriptors (`/proc/PID/fd`)
//! are read once the steady clients are connected and before the churn starts, and
//! again at the end once the churning and hostile clients are gone: the run fails
//! (exit status 1) if the accounting fails or either grew beyond its margin.
//!
//! Environment: `SOAK_SECS` (or the first argument), `SOAK_RATE` (lines per second per
//! source, default 100; six sources), `SOAK_ROTATE_SECS` (default 30),
//! `SOAK_RSS_MARGIN` (default 0.25, of the start, plus 16 MiB), `SOAK_FD_MARGIN`
//! (default 8), `SOAK_REPORT=1` rewrites BENCHMARKS.md's "Soak" section,
//! `SUPERGREP_BIN` another binary to run.

mod support;

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use support::{
    connect_client, cpu_model, env_or, refresh_benchmarks_md, status_mib, supergrep_bin, today,
    watchdog, Frame, Hub, Proc, Ws, PATIENCE,
};

/// Groups of lines: each line is for one (`to=cG` at its end).
const GROUPS: u64 = 49;
const STEADY_PER_GROUP: usize = 3;
const STEADY_ALL: usize = 3;
const CHURNERS: usize = 50;
/// The sources, in the order of their line counters.
const SOURCES: [&str; 6] = ["hub", "a0", "a1", "a2", "tcp", "udp"];
/// Syslog messages come from this host and tag.
const SYSLOG_HEAD: &str = "<13>Nov 22 03:00:00 soakhost soak: ";

fn line(src: usize, n: u64) -> String {
    let g = (n + src as u64 * 7) % GROUPS;
    format!(
        "soak src={} n={n} some ordinary log text of a typical length, id=4f2a to=c{g}",
        SOURCES[src]
    )
}

/// `(source, n)` of a soak line.
fn parse_line(text: &str) -> Option<(usize, u64)> {
    let rest = text.strip_prefix("soak src=")?;
    let (src, rest) = rest.split_once(" n=")?;
    let (n, _) = rest.split_once(' ')?;
    Some((SOURCES.iter().position(|s| *s == src)?, n.parse().ok()?))
}

fn group_of(text: &str) -> Option<u64> {
    text.rsplit_once(" to=c")?.1.parse().ok()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn http_get(addr: &str, path: &str) -> String {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(PATIENCE));
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut body = String::new();
    if s.write_all(req.as_bytes()).is_ok() {
        let _ = s.read_to_string(&mut body);
    }
    body
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "soak: gave up waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------
// Writers

/// One file being written, rotated by rename + create.
struct Log {
    path: PathBuf,
    file: File,
}

impl Log {
    fn open(path: &Path) -> Log {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        Log {
            path: path.to_owned(),
            file,
        }
    }

    fn rotate(&mut self) {
        let old = self.path.with_extension("log.1");
        std::fs::rename(&self.path, old).unwrap();
        *self = Log::open(&self.path);
    }

    fn inode(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        self.file.metadata().map_or(0, |m| m.ino())
    }
}

/// Writes `rate` lines per second to every source until `stop`; returns the counts.
fn write_all(
    logs: &mut [Log; 4],
    syslog: u16,
    rate: u64,
    rotate: Duration,
    stop: &AtomicBool,
    written: &[AtomicU64; 6],
) -> u64 {
    let mut tcp = TcpStream::connect(("127.0.0.1", syslog)).unwrap();
    tcp.set_nodelay(true).unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let start = Instant::now();
    let (mut last_rotation, mut rotations) = (Instant::now(), 0u64);
    let mut inodes: HashSet<(usize, u64)> = logs.iter().map(Log::inode).enumerate().collect();
    while !stop.load(Ordering::Relaxed) {
        // Catch up to where the rate says we should be, 10 ms at a time.
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        let n0 = written[0].load(Ordering::Relaxed);
        for n in n0..due {
            for (src, log) in logs.iter_mut().enumerate() {
                writeln!(log.file, "{}", line(src, n)).unwrap();
                written[src].store(n + 1, Ordering::Relaxed);
            }
            tcp.write_all(format!("{SYSLOG_HEAD}{}\n", line(4, n)).as_bytes())
                .unwrap();
            written[4].store(n + 1, Ordering::Relaxed);
            udp.send_to(
                format!("{SYSLOG_HEAD}{}", line(5, n)).as_bytes(),
                ("127.0.0.1", syslog),
            )
            .unwrap();
            written[5].store(n + 1, Ordering::Relaxed);
        }
        if last_rotation.elapsed() >= rotate {
            // The hub's own file and agent a0's.
            logs[0].rotate();
            logs[1].rotate();
            // An inode a file had before, freed since: the hub may take the new
            // file's lines for the old one's (see BENCHMARKS.md, "Soak").
            for (i, log) in logs[..2].iter().enumerate() {
                if !inodes.insert((i, log.inode())) {
                    eprintln!(
                        "soak: {} got an inode an earlier generation of it had ({})",
                        log.path.display(),
                        log.inode()
                    );
                }
            }
            rotations += 1;
            last_rotation = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    rotations
}

// ---------------------------------------------------------------------------------
// Clients

/// What a client saw.
#[derive(Default)]
struct Seen {
    got: HashSet<(usize, u64)>,
    duplicates: u64,
    unwanted: u64,
    dropped: u64,
    errors: Vec<String>,
    connections: u64,
}

/// Reads lines into `seen` until `stop` or `until`, checking each against `group`
/// (`None`: every soak line).
async fn read_into(
    ws: &mut Ws,
    seen: &mut Seen,
    group: Option<u64>,
    stop: &AtomicBool,
    until: Option<Instant>,
    progress: &AtomicU64,
) -> bool {
    loop {
        progress.store(seen.got.len() as u64 + seen.dropped, Ordering::Relaxed);
        if stop.load(Ordering::Relaxed) || until.is_some_and(|u| Instant::now() >= u) {
            return true;
        }
        let next = tokio::time::timeout(Duration::from_millis(200), ws.next()).await;
        let msg = match next {
            Err(_) => continue,
            Ok(Some(Ok(Message::Text(t)))) => t,
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_)) | None) => return false,
        };
        let Ok(frame) = serde_json::from_str::<Frame>(msg.as_str()) else {
            seen.errors.push(format!(
                "bad frame: {}",
                &msg.as_str()[..msg.len().min(200)]
            ));
            continue;
        };
        match &*frame.kind {
            "lines" => {
                for l in &frame.lines {
                    let wanted = group.is_none_or(|g| group_of(&l.text) == Some(g));
                    match parse_line(&l.text) {
                        Some(key) if wanted => {
                            if !seen.got.insert(key) {
                                seen.duplicates += 1;
                            }
                        }
                        _ => seen.unwanted += 1,
                    }
                }
            }
            "dropped" => seen.dropped += frame.count,
            "error" => seen.errors.push(msg.as_str().to_owned()),
            _ => {}
        }
    }
}

fn filter(group: Option<u64>) -> Vec<String> {
    match group {
        Some(g) => vec![format!(" to=c{g}$")],
        None => vec!["^soak src=".to_owned()],
    }
}

/// A churning client: connects, reads 1-5 s, leaves, again until `stop`.
async fn churn(url: String, group: u64, stop: Arc<AtomicBool>, k: u64) -> Seen {
    let mut seen = Seen::default();
    let mut round = k;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let Ok(mut ws) = connect_client(url.clone(), filter(Some(group))).await else {
            seen.errors.push("churn: connect failed".into());
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        seen.connections += 1;
        // Duplicates are per connection: a new one starts afresh.
        seen.got.clear();
        let stay = Duration::from_millis(1000 + (round * 7919) % 4000);
        let progress = AtomicU64::new(0);
        read_into(
            &mut ws,
            &mut seen,
            Some(group),
            &stop,
            Some(Instant::now() + stay),
            &progress,
        )
        .await;
        let _ = ws.close(None).await;
    }
    seen
}

/// The hostile client's payloads, one connection each.
fn garbage(round: u64) -> Vec<Message> {
    let big = "x".repeat(2 << 20);
    let many: Vec<String> = (0..5000).map(|i| format!("p{i}")).collect();
    let text = |s: String| Message::text(s);
    match round % 8 {
        0 => vec![text(format!("{{\"type\":\"subscribe\",\"id\":\"{big}\"}}"))],
        1 => vec![text("[".repeat(100_000)), text("{\"type\":".into()), text("\u{0}\u{1b}]0;x\u{7}".into())],
        2 => vec![Message::binary(vec![0xff; 70_000]), Message::binary(b"{\"type\":\"lines\"}\nx\n".to_vec())],
        3 => vec![text(serde_json::json!({"type":"subscribe","id":"a","include": many}).to_string())],
        4 => vec![text(serde_json::json!({"type":"subscribe","id":"b","include":["(a*)*b", "x{1000}{1000}", "[", "\\p{Greek}{500}"]}).to_string())],
        5 => (0..100).map(|i| text(serde_json::json!({"type":"subscribe","id":format!("s{i}"),"include":["soak"],"backlog":100_000}).to_string())).collect(),
        6 => vec![text(serde_json::json!({"type":"context","id":"c","stream":"nope","seq":u64::MAX,"before":usize::MAX,"after":usize::MAX}).to_string()), text("{\"type\":\"unsubscribe\",\"id\":\"none\"}".into())],
        _ => vec![text(serde_json::json!({"type":"subscribe","id":"z","include":["soak"],"backlog":-1,"ignore_case":"yes"}).to_string())],
    }
}

/// Garbage senders one after another, and a subscriber to everything that never
/// reads, until `stop`. Returns the connections made.
async fn hostile(url: String, stop: Arc<AtomicBool>) -> u64 {
    let mut connections = 0u64;
    let sleeper = connect_client(url.clone(), filter(None)).await.ok();
    let mut round = 0;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        if let Ok(Ok((mut ws, _))) =
            tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(url.clone())).await
        {
            connections += 1;
            for msg in garbage(round) {
                if ws.send(msg).await.is_err() {
                    break;
                }
            }
            // Read the answers briefly, then go.
            let _ = tokio::time::timeout(Duration::from_millis(100), async {
                while ws.next().await.is_some() {}
            })
            .await;
            let _ = ws.close(None).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(sleeper);
    connections
}

// ---------------------------------------------------------------------------------
// The run

struct Reading {
    rss_mib: f64,
    fds: usize,
}

fn reading(pid: u32) -> Reading {
    Reading {
        rss_mib: status_mib(pid, "VmRSS"),
        fds: open_fds(pid),
    }
}

fn main() {
    let secs: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or_else(|| env_or("SOAK_SECS", 600));
    let rate: u64 = env_or("SOAK_RATE", 100);
    let rotate = Duration::from_secs(env_or("SOAK_ROTATE_SECS", 30));
    let rss_margin: f64 = env_or("SOAK_RSS_MARGIN", 0.25);
    let fd_margin: usize = env_or("SOAK_FD_MARGIN", 8);
    watchdog("soak", Duration::from_secs(secs + 600));

    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<PathBuf> = ["hub", "a0", "a1", "a2"]
        .iter()
        .map(|n| dir.path().join(format!("{n}.log")))
        .collect();
    for p in &paths {
        File::create(p).unwrap();
    }
    let syslog = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let syslog_addr = format!("127.0.0.1:{syslog}");
    let bin = supergrep_bin();
    let hub = Hub::start_with(
        &bin,
        &paths[0],
        &["--syslog-tcp", &syslog_addr, "--syslog-udp", &syslog_addr],
    );
    let pid = hub.pid();
    let url = format!("ws://{}/ws", hub.addr);
    let agents: Vec<Proc> = (0..3)
        .map(|i| {
            let log = File::create(dir.path().join(format!("agent{i}.err"))).unwrap();
            Proc::spawn(
                Command::new(&bin)
                    .args([
                        "agent",
                        "--hub",
                        &format!("ws://{}", hub.addr),
                        "--name",
                        &format!("soak-a{i}"),
                    ])
                    .arg(&paths[i + 1])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(log),
            )
        })
        .collect();
    wait_for("the agents' streams", || {
        let streams = http_get(&hub.addr, "/api/streams");
        (0..3).all(|i| streams.contains(&format!("soak-a{i}:")))
    });

    // The backlog ring full, of lines for nobody, one batch each as the run's lines
    // mostly are (a ring of 100,000 one-line batches holds more than one of a few
    // big ones): syslog datagrams, until the ring is full.
    {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let deadline = Instant::now() + 4 * PATIENCE;
        let mut k = 0u64;
        while hub.metric("supergrep_backlog_lines") < 100_000.0 {
            assert!(
                Instant::now() < deadline,
                "soak: the warm-up did not fill the ring"
            );
            for _ in 0..2000 {
                let text = format!("{SYSLOG_HEAD}warm-up n={k} for nobody: some ordinary log text of a typical length");
                let _ = udp.send_to(text.as_bytes(), ("127.0.0.1", syslog));
                k += 1;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let steady: Vec<(Option<u64>, Ws)> = rt.block_on(async {
        let mut out = Vec::new();
        for k in 0..(GROUPS as usize * STEADY_PER_GROUP + STEADY_ALL) {
            let group = (k >= STEADY_ALL).then(|| (k - STEADY_ALL) as u64 % GROUPS);
            let ws = connect_client(url.clone(), filter(group))
                .await
                .expect("a steady client");
            out.push((group, ws));
        }
        out
    });
    let n_steady = steady.len();
    wait_for("the steady clients", || {
        hub.metric("supergrep_clients") as usize == n_steady
    });
    let at_start = reading(pid);
    let cpu_start = support::cpu_secs(&pid.to_string());

    let progress: Vec<Arc<AtomicU64>> =
        (0..n_steady).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let steady_tasks: Vec<_> = steady
        .into_iter()
        .zip(&progress)
        .map(|((group, mut ws), progress)| {
            let (stop, progress) = (stop.clone(), progress.clone());
            rt.spawn(async move {
                let mut seen = Seen {
                    connections: 1,
                    ..Seen::default()
                };
                if !read_into(&mut ws, &mut seen, group, &stop, None, &progress).await {
                    seen.errors.push("the hub closed a steady client".into());
                }
                (group, seen, ws)
            })
        })
        .collect();
    let churn_stop = Arc::new(AtomicBool::new(false));
    let churners: Vec<_> = (0..CHURNERS as u64)
        .map(|k| rt.spawn(churn(url.clone(), k % GROUPS, churn_stop.clone(), k)))
        .collect();
    let hostile_task = rt.spawn(hostile(url.clone(), churn_stop.clone()));

    let written = Arc::new(std::array::from_fn::<AtomicU64, 6, _>(|_| {
        AtomicU64::new(0)
    }));
    let write_stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (written, write_stop, paths) = (written.clone(), write_stop.clone(), paths.clone());
        std::thread::spawn(move || {
            let mut logs = [0, 1, 2, 3].map(|i| Log::open(&paths[i]));
            write_all(&mut logs, syslog, rate, rotate, &write_stop, &written)
        })
    };
    let started = Instant::now();
    let mut peak_rss = at_start.rss_mib;
    let mut next_log = Duration::from_secs(60);
    while started.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_secs(1));
        peak_rss = peak_rss.max(status_mib(pid, "VmRSS"));
        if started.elapsed() >= next_log {
            next_log += Duration::from_secs(60);
            eprintln!(
                "soak: {}s, hub RSS {:.1} MiB, {} fds",
                started.elapsed().as_secs(),
                status_mib(pid, "VmRSS"),
                open_fds(pid)
            );
        }
    }
    write_stop.store(true, Ordering::Relaxed);
    let rotations = writer.join().unwrap();
    let written: Vec<u64> = written.iter().map(|w| w.load(Ordering::Relaxed)).collect();
    let elapsed = started.elapsed();
    let cpu = support::cpu_secs(&pid.to_string()) - cpu_start;

    // Churn and hostility end; every steady client gets the rest of its lines.
    churn_stop.store(true, Ordering::Relaxed);
    let churned: Vec<Seen> = churners
        .into_iter()
        .map(|t| rt.block_on(t).unwrap())
        .collect();
    let hostile_connections = rt.block_on(hostile_task).unwrap();
    let total: u64 = written.iter().sum();
    let expected = |group: Option<u64>| -> u64 {
        match group {
            None => total,
            Some(g) => (0..6)
                .map(|src| {
                    (0..written[src])
                        .filter(|&n| (n + src as u64 * 7) % GROUPS == g)
                        .count() as u64
                })
                .sum(),
        }
    };
    let groups: Vec<Option<u64>> = (0..n_steady)
        .map(|k| (k >= STEADY_ALL).then(|| (k - STEADY_ALL) as u64 % GROUPS))
        .collect();
    // Every steady client has its lines (delivered or dropped), the churning and
    // hostile ones are gone, or PATIENCE is over (then the accounting says so).
    let settle = Instant::now() + PATIENCE;
    while Instant::now() < settle {
        let all_in = groups
            .iter()
            .zip(&progress)
            .all(|(g, p)| p.load(Ordering::Relaxed) >= expected(*g));
        if all_in && hub.metric("supergrep_clients") as usize == n_steady {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let steady: Vec<_> = steady_tasks
        .into_iter()
        .map(|t| rt.block_on(t).unwrap())
        .collect();
    let clients_at_end = hub.metric("supergrep_clients") as usize;
    let at_end = reading(pid);

    // Accounting.
    let mut failures = Vec::new();
    let (mut exact, mut delivered, mut dropped) = (0, 0u64, 0u64);
    for (group, seen, _) in &steady {
        let want = expected(*group);
        delivered += seen.got.len() as u64;
        dropped += seen.dropped;
        let ok = seen.got.len() as u64 + seen.dropped == want
            && seen.duplicates == 0
            && seen.unwanted == 0
            && seen.errors.is_empty();
        if ok {
            exact += 1;
        } else if failures.len() < 10 {
            let who = match group {
                Some(g) => format!("of group {g}"),
                None => "of every line".to_owned(),
            };
            failures.push(format!(
                "steady client {who}: {} delivered + {} dropped of {want}, {} twice, {} unwanted, errors {:?}",
                seen.got.len(), seen.dropped, seen.duplicates, seen.unwanted, &seen.errors[..seen.errors.len().min(3)]
            ));
        }
    }
    // Which lines a client of every line is missing, per source: where to look.
    if let Some((_, seen, _)) = steady.iter().find(|(g, _, _)| g.is_none()) {
        for (src, name) in SOURCES.iter().enumerate() {
            let missing: Vec<u64> = (0..written[src])
                .filter(|n| !seen.got.contains(&(src, *n)))
                .collect();
            if !missing.is_empty() {
                let mut runs: Vec<(u64, u64)> = Vec::new();
                for &n in &missing {
                    match runs.last_mut() {
                        Some((_, end)) if *end + 1 == n => *end = n,
                        _ => runs.push((n, n)),
                    }
                }
                failures.push(format!(
                    "source {name}: {} of {} lines missing, in {} runs (first: {:?})",
                    missing.len(),
                    written[src],
                    runs.len(),
                    &runs[..runs.len().min(5)]
                ));
            }
        }
    }
    let churn_connections: u64 = churned.iter().map(|s| s.connections).sum();
    let churn_bad: u64 = churned
        .iter()
        .map(|s| s.duplicates + s.unwanted + s.errors.len() as u64)
        .sum();
    if churn_bad > 0 {
        failures.push(format!(
            "churning clients: {churn_bad} duplicates, unwanted lines or errors"
        ));
    }
    let rss_limit = at_start.rss_mib * (1.0 + rss_margin) + 16.0;
    if at_end.rss_mib > rss_limit {
        failures.push(format!(
            "RSS grew: {:.1} -> {:.1} MiB (limit {rss_limit:.1})",
            at_start.rss_mib, at_end.rss_mib
        ));
    }
    if at_end.fds > at_start.fds + fd_margin {
        failures.push(format!(
            "descriptors grew: {} -> {} (margin {fd_margin})",
            at_start.fds, at_end.fds
        ));
    }
    if clients_at_end != n_steady {
        failures.push(format!(
            "{clients_at_end} clients at the end, {n_steady} expected"
        ));
    }

    let per_source: Vec<String> = SOURCES
        .iter()
        .zip(&written)
        .map(|(s, n)| format!("{s} {n}"))
        .collect();
    let report = format!(
        "## Soak\n\n\
         `benches/soak.sh {secs}`, run on {} — {} cores (`nproc`), {}. Hub, its writers and all clients share these cores.\n\n\
         Workload: for {:.0} s, {rate} lines/s from each of six sources (the hub's own file, three agents' files, syslog TCP, syslog UDP), \
         the hub's file and one agent's rotated (rename + create) every {} s ({rotations} rotations); {n_steady} steady clients \
         ({STEADY_ALL} subscribed to every line, the others to one of {GROUPS} groups), {CHURNERS} churning clients (connect, read 1–5 s, leave), \
         one hostile client (a subscriber to every line that never reads; garbage senders one after another). \
         The backlog ring held 100,000 lines (one-line batches, as in the run) before the start.\n\n\
         | figure | value |\n| --- | ---: |\n\
         | lines written (per source) | {total} ({}) |\n\
         | steady clients exact (delivered + dropped = matched, none twice, none unwanted) | {exact}/{n_steady} |\n\
         | lines delivered / dropped to steady clients | {delivered} / {dropped} |\n\
         | churning connections (duplicates, unwanted lines, errors) | {churn_connections} ({churn_bad}) |\n\
         | hostile connections | {hostile_connections} |\n\
         | hub RSS: start → end (peak) | {:.1} → {:.1} ({peak_rss:.1}) MiB |\n\
         | hub descriptors: start → end | {} → {} |\n\
         | hub CPU | {:.1}% of a core |\n\
         | result | {} |\n",
        today(), std::thread::available_parallelism().map_or(0, |n| n.get()), cpu_model(),
        elapsed.as_secs_f64(), rotate.as_secs(), per_source.join(", "),
        at_start.rss_mib, at_end.rss_mib, at_start.fds, at_end.fds,
        100.0 * cpu / elapsed.as_secs_f64(),
        if failures.is_empty() { "pass".to_owned() } else { format!("FAIL: {}", failures.join("; ")) },
    );
    println!("{report}");
    let metrics = hub.metrics();
    let mut names: Vec<_> = metrics
        .keys()
        .filter(|k| k.contains("agent") || k.contains("dropped") || k.contains("ingested"))
        .collect();
    names.sort();
    for name in names {
        eprintln!("soak: hub metric {name} {}", metrics[name]);
    }
    if !failures.is_empty() {
        // The agents' logs outlive the run's directory, to look into.
        let keep = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/soak");
        let _ = std::fs::create_dir_all(&keep);
        for i in 0..3 {
            let name = format!("agent{i}.err");
            let _ = std::fs::copy(dir.path().join(&name), keep.join(&name));
        }
        eprintln!("soak: the agents' logs are in {}", keep.display());
    }
    for f in &failures {
        eprintln!("soak: {f}");
    }
    if env_or("SOAK_REPORT", 0) == 1 {
        let md = Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
        refresh_benchmarks_md(&md, "## Soak", &report).unwrap();
    }
    drop(agents);
    drop(hub);
    std::process::exit(i32::from(!failures.is_empty()));
}
