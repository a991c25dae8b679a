//! Fan-out benchmark of the hub (`supergrep serve`).
//!
//! N WebSocket clients, each with its own filter, follow one file that a writer
//! appends real log lines to at a fixed rate. Measured per N: append→client latency
//! (p50/p99/max), hub CPU and memory, whether every client got exactly its lines; and,
//! in the same run, the latency of `tail -F FILE | grep --line-buffered` on the same
//! lines at the same rate.
//!
//! ```text
//! SUPERGREP_CORPUS=/work/shared/corpus cargo bench --bench fanout
//! ```
//!
//! Environment:
//! - `SUPERGREP_CORPUS` (required): a directory with Loghub samples in `loghub/*.log`
//!   (or `*.log` directly);
//! - `FANOUT_CLIENTS` (default `0,1,100,1000`): client counts, one fresh hub each
//!   (0 = ingest only, the hub's cost without any subscriber);
//! - `FANOUT_RATE` (default 20000): lines per second; `FANOUT_SECS` (default 15);
//! - `FANOUT_SHARED` (default `[Ee]xception`, ~1% of the corpus): the pattern every
//!   client includes;
//! - `FANOUT_OWN_RATE` (default 10): lines per second tagged for each client;
//! - `FANOUT_WARM_LINES` (default 100000, the hub's default backlog ring): lines
//!   written before the clients connect, so the ring is full when memory is measured;
//! - `FANOUT_QUIET_WAIT` (default 180): the machine may be shared, so before each run
//!   the bench waits up to this many seconds for the other processes to go nearly idle
//!   (their CPU during each run is reported either way);
//! - `FANOUT_BASELINE=0` skips the `tail | grep` run; `FANOUT_REPORT=0` leaves
//!   `BENCHMARKS.md` alone.
//! - `SUPERGREP_BIN`: another hub binary to measure (default: `target/release/supergrep`,
//!   which `cargo bench` builds for this bench).
//!
//! Every written line is `<corpus line> sgk=<k> sgt=<nanos> to=client<k mod M>`:
//! `k` numbers the measured lines from 0, `sgt` is the time just before the `write`
//! call (nanoseconds since an `Instant` of this process, which the clients share), and
//! `M = max(N, rate / own rate)`. Client `i` subscribes to `[SHARED, \bclient<i>\b]`,
//! so the hub's matcher holds N distinct subscriptions (plus one shared pattern) and
//! the bench knows exactly which lines each client must receive.
//!
//! Everything runs on 127.0.0.1; child processes are killed on drop (and by a
//! watchdog if the whole run takes far longer than planned).

mod support;

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::watch;

use support::{
    connect_client, cpu_model, drain, env_list, env_or, epoch, lat_cell, latency, ms, now_nanos,
    parse_tag, read_lines, refresh_benchmarks_md, run_client, status_mib, supergrep_bin,
    sync_probe, today, wait_quiet, watchdog, write_paced, Check, Corpus, CpuUse, CpuWindow, Hub,
    Lat, Seen, TailGrep, Written, Ws, PATIENCE, TICK,
};

/// After the writer stops, how long clients get to receive the rest.
const DRAIN: Duration = Duration::from_secs(15);
/// Clients connecting at once.
const CONNECT_CONCURRENCY: usize = 32;
const SECTION: &str = "## Fan-out (hub)";

// ---------------------------------------------------------------------------------
// Configuration and tags
// ---------------------------------------------------------------------------------

struct Config {
    corpus_dir: PathBuf,
    bin: PathBuf,
    clients: Vec<usize>,
    rate: u64,
    secs: f64,
    shared: String,
    own_rate: u64,
    quiet_wait: Duration,
    warm_lines: u64,
    baseline: bool,
    report: bool,
}

impl Config {
    fn from_env(corpus_dir: PathBuf) -> Config {
        let clients = env_list("FANOUT_CLIENTS", "0,1,100,1000");
        let rate: u64 = env_or("FANOUT_RATE", 20_000);
        assert!(rate > 0, "FANOUT_RATE must be positive");
        let own_rate: u64 = env_or("FANOUT_OWN_RATE", 10);
        assert!(own_rate > 0, "FANOUT_OWN_RATE must be positive");
        Config {
            corpus_dir,
            bin: supergrep_bin(),
            clients,
            rate,
            secs: env_or("FANOUT_SECS", 15.0),
            shared: env_or("FANOUT_SHARED", "[Ee]xception".to_string()),
            own_rate,
            quiet_wait: Duration::from_secs_f64(env_or("FANOUT_QUIET_WAIT", 180.0)),
            warm_lines: env_or("FANOUT_WARM_LINES", 100_000),
            baseline: env_or("FANOUT_BASELINE", 1u8) != 0,
            report: env_or("FANOUT_REPORT", 1u8) != 0,
        }
    }

    /// Tag modulus: client `i` gets the lines with `k % m == i`.
    fn modulus(&self, n: usize) -> u64 {
        (n as u64).max(self.rate / self.own_rate).max(1)
    }

    fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.secs)
    }
}

/// What each client must receive, once `total` lines have been written.
fn expected_counts(corpus: &Corpus, m: u64, n: usize, total: u64) -> Vec<u64> {
    let mut own = vec![0u64; n];
    let mut both = vec![0u64; n];
    let mut shared = 0;
    for k in 0..total {
        let to = (k % m) as usize;
        let s = corpus.is_match(k);
        shared += u64::from(s);
        if to < n {
            own[to] += 1;
            both[to] += u64::from(s);
        }
    }
    (0..n).map(|i| shared + own[i] - both[i]).collect()
}

fn tag_pattern(i: usize) -> String {
    format!(r"\bclient{i:05}\b")
}

/// Measured line `k`: ` sgk=<k> sgt=<t> to=client<k mod m>` after a corpus line.
fn write_line(buf: &mut Vec<u8>, corpus: &Corpus, m: u64, k: u64, t: u64) -> std::io::Result<()> {
    writeln!(
        buf,
        "{} sgk={k} sgt={t} to=client{:05}",
        corpus.line(k),
        k % m
    )
}

/// Checks a line received by client `me` (of modulus `m`) and records it in `seen`.
fn client_line(
    seen: &mut Seen,
    text: &str,
    read: Option<i64>,
    me: u64,
    m: u64,
    corpus: &Corpus,
    now: u64,
) {
    let tag = parse_tag(text).and_then(|(k, t, rest)| {
        let to: u64 = rest.strip_prefix("to=client")?.parse().ok()?;
        Some((k, t, to))
    });
    let Some((k, t, to)) = tag else {
        seen.unexpected += 1;
        return;
    };
    let wanted = corpus.is_match(k) || (k % m == me && to == me);
    seen.record(k, t, wanted, read, now);
}

// ---------------------------------------------------------------------------------
// The writer
// ---------------------------------------------------------------------------------

/// Lines as long as the measured ones but tagged for nobody, written as fast as the
/// hub takes them: fills the backlog ring.
fn write_warm(out: &mut File, corpus: &Corpus, lines: u64) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1 << 20);
    let mut k = 0;
    while k < lines {
        buf.clear();
        let end = (k + 5000).min(lines);
        let t = now_nanos();
        for kk in k..end {
            writeln!(
                buf,
                "{} sgwarm={kk} sgt={t} to=nobody{:05}",
                corpus.line(kk),
                kk % 2000
            )?;
        }
        out.write_all(&buf)?;
        k = end;
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

struct HubRun {
    n: usize,
    written: Written,
    subscribe_secs: f64,
    rebuild_ms: f64,
    check: Check,
    lat: Lat,
    /// Append→read by the hub's tailer.
    read_lat: Lat,
    drain_secs: f64,
    cpu: CpuUse,
    rss0: f64,
    rss_connected: f64,
    rss_end: f64,
    hwm: f64,
    delivered: f64,
    hub_dropped: f64,
    bytes_sent: f64,
}

fn run_hub(cfg: &Config, corpus: &Arc<Corpus>, n: usize, rt: &tokio::runtime::Runtime) -> HubRun {
    wait_quiet(cfg.quiet_wait);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("app.log");
    File::create(&path).expect("create the log file");
    let hub = Hub::start(&cfg.bin, &path);
    let mut out = OpenOptions::new().append(true).open(&path).unwrap();

    // Fill the backlog ring, so that memory with 0 clients includes it.
    write_warm(&mut out, corpus, cfg.warm_lines).expect("write");
    let deadline = Instant::now() + PATIENCE * 2;
    while hub.metric("supergrep_lines_ingested_total") < cfg.warm_lines as f64 {
        assert!(
            Instant::now() < deadline,
            "the hub did not ingest the warm-up lines"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let rss0 = status_mib(hub.pid(), "VmRSS");

    // Connect and subscribe every client.
    let m = cfg.modulus(n);
    let url = format!("ws://{}/ws", hub.addr);
    let rebuild0 = hub.metric("supergrep_matcher_rebuild_microseconds_total");
    let t = Instant::now();
    let conns: Vec<(usize, Result<Ws, String>)> = rt.block_on(
        futures_util::stream::iter(0..n)
            .map(|i| {
                let (url, shared) = (url.clone(), cfg.shared.clone());
                async move { (i, connect_client(url, vec![shared, tag_pattern(i)]).await) }
            })
            .buffer_unordered(CONNECT_CONCURRENCY)
            .collect(),
    );
    let subscribe_secs = t.elapsed().as_secs_f64();
    let rebuild_ms =
        (hub.metric("supergrep_matcher_rebuild_microseconds_total") - rebuild0) / 1000.0;
    let (stop_tx, stop_rx) = watch::channel(false);
    let counters: Vec<Arc<AtomicU64>> = (0..n).map(|_| Arc::default()).collect();
    let mut tasks = Vec::new();
    let mut failed = Vec::new();
    let mut conns = conns;
    conns.sort_by_key(|(i, _)| *i);
    for (i, conn) in conns {
        match conn {
            Ok(ws) => {
                let corpus = corpus.clone();
                tasks.push(rt.spawn(run_client(
                    ws,
                    counters[i].clone(),
                    stop_rx.clone(),
                    move |seen, text, read, now| {
                        client_line(seen, text, read, i as u64, m, &corpus, now)
                    },
                )))
            }
            Err(e) => failed.push(format!("client {i}: {e}")),
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {n} clients could not subscribe, e.g. {}",
        failed.len(),
        failed[0]
    );
    std::thread::sleep(Duration::from_millis(500));
    let rss_connected = status_mib(hub.pid(), "VmRSS");

    // The measured run.
    let cpu = CpuWindow::start(&[hub.pid()]);
    let writer = {
        let corpus = corpus.clone();
        let (rate, dur) = (cfg.rate, cfg.duration());
        std::thread::spawn(move || {
            write_paced(&mut out, rate, dur, |buf, k, t| {
                write_line(buf, &corpus, m, k, t)
            })
        })
    };
    let written = writer.join().unwrap().expect("write");
    let cpu = cpu.end();
    let rss_end = status_mib(hub.pid(), "VmRSS");

    let expected = expected_counts(corpus, m, n, written.lines);
    let drain_secs = drain(&counters, &expected, DRAIN);
    let _ = stop_tx.send(true);
    let seen: Vec<Seen> = rt.block_on(async {
        let mut seen = Vec::new();
        for task in tasks {
            match tokio::time::timeout(PATIENCE, task).await {
                Ok(Ok(s)) => seen.push(s),
                _ => seen.push(Seen {
                    errors: vec!["client task failed".into()],
                    ..Seen::default()
                }),
            }
        }
        seen
    });
    let metrics = hub.metrics();
    let hwm = status_mib(hub.pid(), "VmHWM");
    drop(hub);
    let check = Check::of(&seen, &expected);
    let read_lat = latency(
        seen.iter()
            .flat_map(|s| s.read_us.iter().copied())
            .collect(),
    );
    let lat = latency(seen.into_iter().flat_map(|s| s.latency_us).collect());
    HubRun {
        n,
        written,
        subscribe_secs,
        rebuild_ms,
        check,
        lat,
        read_lat,
        drain_secs,
        cpu,
        rss0,
        rss_connected,
        rss_end,
        hwm,
        delivered: metrics
            .get("supergrep_matches_delivered_total")
            .copied()
            .unwrap_or(0.0),
        hub_dropped: metrics
            .get("supergrep_matches_dropped_total")
            .copied()
            .unwrap_or(0.0),
        bytes_sent: metrics
            .get("supergrep_bytes_sent_total")
            .copied()
            .unwrap_or(0.0),
    }
}

struct BaselineRun {
    pattern: String,
    written: Written,
    check: Check,
    lat: Lat,
    cpu: CpuUse,
}

/// `tail -n0 -F FILE | grep --line-buffered -E PATTERN` with client 0's filter.
fn run_baseline(cfg: &Config, corpus: &Arc<Corpus>) -> BaselineRun {
    wait_quiet(cfg.quiet_wait);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("app.log");
    File::create(&path).expect("create the log file");
    let m = cfg.modulus(1);
    let pattern = format!("{}|{}", cfg.shared, tag_pattern(0));
    let (pipeline, grep_out) = TailGrep::start(&path, &pattern);
    let counter = Arc::new(AtomicU64::new(0));
    let (probe_rx, reader) = {
        let (corpus, counter) = (corpus.clone(), counter.clone());
        read_lines(grep_out, "sgprobe", move |seen, line, now| {
            client_line(seen, line, None, 0, m, &corpus, now);
            counter.store(seen.received, Ordering::Relaxed);
        })
    };
    let mut out = OpenOptions::new().append(true).open(&path).unwrap();
    sync_probe(&mut out, "sgprobe to=client00000", &probe_rx, "tail | grep");

    let cpu = CpuWindow::start(&pipeline.pids());
    let written = write_paced(&mut out, cfg.rate, cfg.duration(), |buf, k, t| {
        write_line(buf, corpus, m, k, t)
    })
    .expect("write");
    let cpu = cpu.end();
    let expected = expected_counts(corpus, m, 1, written.lines);
    drain(&[counter], &expected, DRAIN);
    drop(pipeline);
    let seen = reader.join().unwrap();
    let check = Check::of(std::slice::from_ref(&seen), &expected);
    BaselineRun {
        pattern,
        written,
        check,
        lat: latency(seen.latency_us),
        cpu,
    }
}

// ---------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------

fn table(cfg: &Config, runs: &[HubRun], base: Option<&BaselineRun>) -> String {
    let mut t = String::new();
    t.push_str(
        "| receivers | lines written (rate) | matches per client | delivery check | `dropped` | latency p50 / p99 / max (ms) | hub CPU | bench CPU | others' CPU | hub RSS: 0 clients → end (peak) | per client |\n",
    );
    t.push_str("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    if let Some(b) = base {
        let _ = writeln!(
            t,
            "| `tail -F \\| grep`, 1 filter | {} ({:.0}/s) | {} | {} | – | {} | {:.1}% (tail+grep) | {:.1}% | {:.1}% | – | – |",
            b.written.lines,
            b.written.lines as f64 / b.written.secs,
            b.check.expected_max,
            b.check.summary(1),
            lat_cell(&b.lat),
            b.cpu.procs,
            b.cpu.bench,
            b.cpu.others,
        );
    }
    // Memory per client: against the 0-client run (same workload, ring as full) when
    // there is one, else against this hub before its clients connected.
    let idle = runs.iter().find(|r| r.n == 0).map(|r| r.rss_end);
    for r in runs {
        let per_client = if r.n >= 10 {
            let base = idle.unwrap_or(r.rss0);
            format!("{:.0} KiB", (r.rss_end - base) * 1024.0 / r.n as f64)
        } else if r.n > 0 {
            "(noise)".into()
        } else {
            "–".into()
        };
        let (matches, check, lat) = if r.n == 0 {
            ("–".to_string(), "–".to_string(), "–".to_string())
        } else {
            let matches = if r.check.expected_min == r.check.expected_max {
                r.check.expected_max.to_string()
            } else {
                format!("{}–{}", r.check.expected_min, r.check.expected_max)
            };
            (matches, r.check.summary(r.n), lat_cell(&r.lat))
        };
        let _ = writeln!(
            t,
            "| hub, {} client{} | {} ({:.0}/s) | {} | {} | {} | {} | {:.1}% | {:.1}% | {:.1}% | {:.1} → {:.1} ({:.1}) MiB | {} |",
            r.n,
            if r.n == 1 { "" } else { "s" },
            r.written.lines,
            r.written.lines as f64 / r.written.secs,
            matches,
            check,
            if r.hub_dropped as u64 == r.check.dropped {
                r.check.dropped.to_string()
            } else {
                format!("{} (hub: {})", r.check.dropped, r.hub_dropped)
            },
            lat,
            r.cpu.procs,
            r.cpu.bench,
            r.cpu.others,
            r.rss0,
            r.rss_end,
            r.hwm,
            per_client,
        );
    }
    let _ = writeln!(
        t,
        "\nCPU is % of one core over the {:.0} s of writing (200% = both cores); \
         \"others'\" is every other process of the machine in that time (from /proc/stat). \
         \"per client\" = (RSS at the end − {}) / clients. RSS peak is VmHWM over the \
         hub's life.",
        cfg.secs,
        if runs.iter().any(|r| r.n == 0) {
            "RSS at the end of the 0-client run"
        } else {
            "RSS of the same hub before its clients connected"
        }
    );
    t
}

fn details(runs: &[HubRun]) -> String {
    let mut t = String::new();
    t.push_str("| clients | subscribe all | matcher rebuild time | RSS after connect | append→hub read p50 / p99 (ms) | latency p99.9 | lines > 20 ms | frames received | matches queued by hub | bytes sent | drain after writing | biggest write batch |\n");
    t.push_str(
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in runs.iter().filter(|r| r.n > 0) {
        let _ = writeln!(
            t,
            "| {} | {:.2} s | {:.0} ms | {:.1} MiB | {} / {} | {} ms | {:.2}% | {} | {:.0} | {:.1} MB | {:.2} s | {} lines |",
            r.n,
            r.subscribe_secs,
            r.rebuild_ms,
            r.rss_connected,
            ms(r.read_lat.p50),
            ms(r.read_lat.p99),
            ms(r.lat.p999),
            r.lat.over_20ms * 100.0,
            r.check.frames,
            r.delivered,
            r.bytes_sent / 1e6,
            r.drain_secs,
            r.written.biggest_batch,
        );
    }
    t.push_str(
        "\n\"append→hub read\" compares the hub's `ts` (when its tailer read the line, whole \
         milliseconds) with the append time: the part of the latency spent before matching. \
         \"matcher rebuild time\" is the hub's own total for the N subscribes (one rebuild each).\n",
    );
    t
}

fn section(cfg: &Config, corpus: &Corpus, runs: &[HubRun], base: Option<&BaselineRun>) -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut s = String::new();
    let _ = writeln!(s, "{SECTION}\n");
    let _ = writeln!(
        s,
        "`benches/fanout.rs`, run on {} — {cores} cores (`nproc`), {}. **The bench's WebSocket \
         clients, its writer and the hub share these {cores} cores**, so the hub's figures \
         include contention with its own load generator, and latency includes the clients' \
         scheduling and JSON parsing (the bench's own CPU is given beside the hub's).\n",
        today(),
        cpu_model(),
    );
    let _ = writeln!(
        s,
        "Workload: {} lines/s for {} s of real Loghub lines ({} files interleaved, {} lines, \
         `\\r` stripped), appended to one file in batches every {} ms, each line tagged \
         ` sgk=<k> sgt=<append time> to=client<k mod M>`. Every client subscribes to \
         `[\"{}\", \"\\bclientNNNNN\\b\"]` with its own number: the shared pattern matches \
         {:.2}% of the corpus lines, and each client gets {} lines/s tagged for it, so the \
         matcher holds N distinct subscriptions. Before the clients connect, {} lines tagged for nobody \
         fill the hub's backlog ring (the \"0 clients\" RSS includes it). Latency is from just \
         before the writer's `write` to the client having the frame; a client's check is exact \
         when it got every line its filter matches, once, in order, and nothing else.\n",
        cfg.rate,
        cfg.secs,
        corpus.files.len(),
        corpus.lines.len(),
        TICK.as_millis(),
        cfg.shared,
        corpus.match_share() * 100.0,
        cfg.own_rate,
        cfg.warm_lines,
    );
    let busy: Vec<String> = base
        .map(|b| ("tail | grep".to_string(), b.cpu.others))
        .into_iter()
        .chain(
            runs.iter()
                .map(|r| (format!("{} clients", r.n), r.cpu.others)),
        )
        .filter(|(_, others)| *others > 25.0)
        .map(|(what, others)| format!("{what}: {others:.0}%"))
        .collect();
    if !busy.is_empty() {
        let _ = writeln!(
            s,
            "**Disturbed:** other processes of this shared machine used much CPU during some runs \
             ({}; % of one core), so their latency and CPU figures are worse than the hub's own.\n",
            busy.join(", ")
        );
    }
    s.push_str(&table(cfg, runs, base));
    s.push('\n');
    s.push_str(&details(runs));
    s.push('\n');
    if let Some(b) = base {
        let _ = writeln!(
            s,
            "Baseline: `tail -n0 -F FILE | grep --line-buffered -E '{}'` (GNU coreutils/grep; \
             spawned directly with a pipe between them) on a separate file written the same way, \
             run alone before the hub runs; its stdout is read by a thread of the bench.\n",
            b.pattern
        );
    }
    let _ = writeln!(
        s,
        "Reproduce (these figures' settings; `cargo bench` builds `target/release/supergrep` \
         itself): `SUPERGREP_CORPUS=/work/shared/corpus FANOUT_CLIENTS={} FANOUT_RATE={} \
         FANOUT_SECS={} FANOUT_SHARED='{}' FANOUT_OWN_RATE={} FANOUT_WARM_LINES={} cargo bench \
         --bench fanout` (`FANOUT_BASELINE=0` skips the baseline, `FANOUT_REPORT=0` leaves this \
         file alone, `FANOUT_QUIET_WAIT` bounds the wait for an idle machine). Each client count \
         gets a fresh hub.\n",
        cfg.clients
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(","),
        cfg.rate,
        cfg.secs,
        cfg.shared,
        cfg.own_rate,
        cfg.warm_lines,
    );
    s
}

// ---------------------------------------------------------------------------------

fn main() {
    let Some(corpus_dir) = std::env::var_os("SUPERGREP_CORPUS").filter(|v| !v.is_empty()) else {
        println!(
            "fanout: set SUPERGREP_CORPUS to a directory of real log samples (Loghub \
             `loghub/*.log`), e.g.\n  SUPERGREP_CORPUS=/work/shared/corpus cargo bench --bench fanout\n\
             Skipping."
        );
        return;
    };
    let cfg = Config::from_env(PathBuf::from(corpus_dir));
    let shared = regex::Regex::new(&cfg.shared).expect("FANOUT_SHARED does not compile");
    assert!(
        !shared.is_match(" sgk=123 sgt=456789 to=client00042")
            && !shared.is_match(" sgwarm=123 sgt=456789 to=nobody00042"),
        "FANOUT_SHARED must not match the bench's tags"
    );
    let corpus = Arc::new(Corpus::load(&cfg.corpus_dir, &shared));
    epoch();
    let runs_planned = cfg.clients.len() + usize::from(cfg.baseline);
    watchdog(
        "fanout",
        Duration::from_secs_f64(
            runs_planned as f64
                * (cfg.secs + cfg.quiet_wait.as_secs_f64() + 4.0 * PATIENCE.as_secs_f64())
                + 60.0,
        ),
    );
    println!(
        "fanout: {} lines from {} files ({:.2}% match {:?}), {} lines/s for {} s, clients {:?}, hub {}",
        corpus.lines.len(),
        corpus.files.len(),
        corpus.match_share() * 100.0,
        cfg.shared,
        cfg.rate,
        cfg.secs,
        cfg.clients,
        cfg.bin.display()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    let base = cfg.baseline.then(|| {
        println!("fanout: baseline tail -F | grep ...");
        let b = run_baseline(&cfg, &corpus);
        println!(
            "  {} lines, {} matches, {}, p50 {} ms p99 {} ms max {} ms, tail+grep CPU {:.1}%",
            b.written.lines,
            b.lat.samples,
            b.check.summary(1),
            ms(b.lat.p50),
            ms(b.lat.p99),
            ms(b.lat.max),
            b.cpu.procs
        );
        b
    });
    let mut runs = Vec::new();
    for &n in &cfg.clients {
        println!("fanout: hub with {n} clients ...");
        let r = run_hub(&cfg, &corpus, n, &rt);
        println!(
            "  subscribed in {:.2} s; {} lines; {}; dropped {}; p50 {} ms p99 {} ms max {} ms; hub CPU {:.1}% bench CPU {:.1}% others {:.1}%; RSS {:.1} -> {:.1} MiB (HWM {:.1})",
            r.subscribe_secs,
            r.written.lines,
            r.check.summary(n),
            r.check.dropped,
            ms(r.lat.p50),
            ms(r.lat.p99),
            ms(r.lat.max),
            r.cpu.procs,
            r.cpu.bench,
            r.cpu.others,
            r.rss0,
            r.rss_end,
            r.hwm
        );
        for e in &r.check.errors {
            println!("  client error: {e}");
        }
        runs.push(r);
    }
    rt.shutdown_timeout(Duration::from_secs(2));

    let section = section(&cfg, &corpus, &runs, base.as_ref());
    println!("\n{section}");
    if cfg.report {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
        match refresh_benchmarks_md(&path, SECTION, &section) {
            Ok(()) => println!(
                "fanout: wrote the \"{SECTION}\" section of {}",
                path.display()
            ),
            Err(e) => eprintln!("fanout: cannot write {}: {e}", path.display()),
        }
    }
}
