//! Hostile-client benchmark (issue 25 §2): does one client's costly patterns slow the
//! hub and every other client?
//!
//! Each round runs the same hub twice, each time on a fresh file: once with only a
//! normal client (subscribed to `P`), once with a hostile client too, holding N
//! patterns like `(?i)\w+=\w*a\w*\s+\S*17\S*\s\w{2,8}$` (the letter and the number
//! vary) and reading everything the hub sends it. Measured, each time:
//! - the normal client's append→receive latency (p50/p99) of every matching line, real
//!   log lines written at a fixed rate, and whether it got exactly those lines;
//! - the hub's lines/s: a bulk of lines appended at once, timed from the append to
//!   the normal client's receipt of the line after them;
//! - the hub's RSS with the hostile client, and after it left;
//! - the hub's CPU time over both phases, per thread: ingest's and the sessions'
//!   (everything but the isolated workers) and the isolated workers'; and the CPU
//!   the rest of the machine used meanwhile (it is shared: wall times are noisy,
//!   these are not).
//!
//! The report gives the ratios with/without (medians over the rounds).
//!
//! ```text
//! SUPERGREP_CORPUS=/work/shared/corpus cargo bench --bench hostile
//! ```
//!
//! Environment:
//! - `SUPERGREP_CORPUS` (required): Loghub samples, `loghub/*.log` (or `*.log`);
//! - `HOSTILE_PATTERNS` (200): the hostile client's patterns;
//! - `HOSTILE_RATE` (10000) lines/s and `HOSTILE_SECS` (10): the latency phase;
//! - `HOSTILE_BULK` (300000): lines of the throughput phase;
//! - `HOSTILE_PATTERN` (`[Ee]xception`): P;
//! - `HOSTILE_ROUNDS` (3); `HOSTILE_QUIET_WAIT` (15 s, as in `latency`);
//! - `HOSTILE_REPORT=0` leaves `BENCHMARKS.md` alone;
//! - `SUPERGREP_BIN`: another binary (e.g. an older build, to see the problem).

mod support;

#[path = "../tests/support/hostile.rs"]
mod hostile_patterns;
use hostile_patterns::hostile_patterns;

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use support::{
    connect_client, cpu_model, drain, env_or, epoch, latency, measured_line, median, ms, now_nanos,
    parse_tag, refresh_benchmarks_md, run_client, status_mib, supergrep_bin, sync_probe,
    thread_cpu_secs, today, wait_quiet, watchdog, write_paced, Check, Corpus, CpuWindow, Hub, Lat,
    Seen, PATIENCE,
};

const SECTION: &str = "## Hostile client";
const PROBE: &str = "sgprobe";
/// The line after the bulk: its receipt ends the throughput phase.
const END: &str = "sgend";
const DRAIN: Duration = Duration::from_secs(10);

struct Config {
    corpus_dir: PathBuf,
    bin: PathBuf,
    patterns: usize,
    rate: u64,
    secs: f64,
    bulk: u64,
    pattern: String,
    rounds: usize,
    quiet_wait: Duration,
    report: bool,
}

impl Config {
    fn from_env(corpus_dir: PathBuf) -> Config {
        Config {
            corpus_dir,
            bin: supergrep_bin(),
            patterns: env_or("HOSTILE_PATTERNS", 200),
            rate: env_or("HOSTILE_RATE", 10_000),
            secs: env_or("HOSTILE_SECS", 10.0),
            bulk: env_or("HOSTILE_BULK", 300_000),
            pattern: env_or("HOSTILE_PATTERN", "[Ee]xception".to_string()),
            rounds: env_or::<usize>("HOSTILE_ROUNDS", 3).max(1),
            quiet_wait: Duration::from_secs_f64(env_or("HOSTILE_QUIET_WAIT", 15.0)),
            report: env_or("HOSTILE_REPORT", 1u8) != 0,
        }
    }

    /// Lines of the latency phase (as `write_paced` counts them).
    fn paced_lines(&self) -> u64 {
        (self.rate as f64 * self.secs).round() as u64
    }
}

/// One run: with or without the hostile client.
struct Round {
    hostile: bool,
    lat: Lat,
    check: Check,
    lines_per_sec: f64,
    /// The hostile client's lines received and told as dropped, when it stopped.
    hostile_seen: Option<(u64, u64)>,
    /// Lines the hub had skipped for the hostile client by then (`/metrics`).
    skipped: f64,
    /// CPU seconds over both phases: the hub's threads but the isolated workers,
    /// those workers, and % of a core the rest of the machine used.
    hub_cpu: f64,
    isolated_cpu: f64,
    others: f64,
    /// The hub's: subscriptions evaluated apart (with the hostile client).
    isolated: f64,
    /// Hub RSS, MiB: before the bulk, its peak, and after the hostile client left.
    rss: (f64, f64, f64),
    /// Compiled patterns the hub held after the hostile client left.
    patterns_after: f64,
}

fn run(
    cfg: &Config,
    corpus: &Arc<Corpus>,
    probe: &str,
    end: &str,
    hostile: bool,
    rt: &tokio::runtime::Runtime,
) -> Round {
    wait_quiet(cfg.quiet_wait);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("app.log");
    File::create(&path).expect("create the log file");
    let hub = Hub::start(&cfg.bin, &path);
    let url = format!("ws://{}/ws", hub.addr);

    let hostile_client = hostile.then(|| {
        let ws = rt
            .block_on(connect_client(url.clone(), hostile_patterns(cfg.patterns)))
            .unwrap_or_else(|e| panic!("the hostile client could not subscribe: {e}"));
        let (stop, stop_rx) = watch::channel(false);
        let task = rt.spawn(run_client(
            ws,
            Arc::new(AtomicU64::new(0)),
            stop_rx,
            |seen: &mut Seen, _: &str, _, _| seen.received += 1,
        ));
        (stop, task)
    });
    let isolated = hub.metric("supergrep_isolated_subscriptions");

    let ws = rt
        .block_on(connect_client(url, vec![cfg.pattern.clone()]))
        .unwrap_or_else(|e| panic!("the normal client could not subscribe: {e}"));
    let counter = Arc::new(AtomicU64::new(0));
    let (probe_tx, probes) = mpsc::channel();
    let (end_tx, ends) = mpsc::channel();
    let (stop, stop_rx) = watch::channel(false);
    let paced = cfg.paced_lines();
    let task = {
        let corpus = corpus.clone();
        rt.spawn(run_client(
            ws,
            counter.clone(),
            stop_rx,
            move |seen, text, read, now| {
                if text.starts_with(PROBE) {
                    let _ = probe_tx.send(());
                } else if text.starts_with(END) {
                    let _ = end_tx.send(now);
                } else if parse_tag(text).is_some_and(|(k, _, _)| k >= paced) {
                    // The bulk: its lines' times are not latencies.
                } else {
                    measured_line(seen, text, read, &corpus, now);
                }
            },
        ))
    };
    let mut out = OpenOptions::new().append(true).open(&path).unwrap();
    sync_probe(&mut out, probe, &probes, "hub");
    let (window, cpu0) = (CpuWindow::start(&[hub.pid()]), cpu_split(hub.pid()));

    // Latency: lines at a fixed rate.
    let written = write_paced(
        &mut out,
        cfg.rate,
        Duration::from_secs_f64(cfg.secs),
        |buf, k, t| writeln!(buf, "{} sgk={k} sgt={t}", corpus.line(k)),
    )
    .expect("write");
    let expected = corpus.matches_in(written.lines);
    drain(std::slice::from_ref(&counter), &[expected], DRAIN);

    // Throughput: a bulk at once, then the end line.
    let rss_before = status_mib(hub.pid(), "VmRSS");
    let mut bulk = Vec::with_capacity(cfg.bulk as usize * 140);
    for k in paced..paced + cfg.bulk {
        writeln!(bulk, "{} sgk={k} sgt=0", corpus.line(k)).unwrap();
    }
    writeln!(bulk, "{end}").unwrap();
    let t0 = now_nanos();
    out.write_all(&bulk).expect("write the bulk");
    let t1 = ends
        .recv_timeout(PATIENCE * 4)
        .expect("the normal client never got the end of the bulk");
    let lines_per_sec = cfg.bulk as f64 / ((t1.saturating_sub(t0)) as f64 / 1e9);
    let cpu1 = cpu_split(hub.pid());
    let others = window.end().others;
    let skipped = hub.metric("supergrep_isolated_lines_dropped_total");
    let rss_peak = status_mib(hub.pid(), "VmHWM");

    let hostile_seen = hostile_client.map(|(stop, task)| {
        let _ = stop.send(true);
        let seen = rt
            .block_on(async { tokio::time::timeout(PATIENCE, task).await })
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        (seen.received, seen.dropped)
    });
    // The hostile client is gone (its task ended and closed the socket): its memory
    // should be given back.
    let deadline = Instant::now() + PATIENCE;
    while hub.metric("supergrep_subscriptions") > 1.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    let rss_after = status_mib(hub.pid(), "VmRSS");
    let patterns_after = hub.metric("supergrep_compiled_patterns");

    let _ = stop.send(true);
    let seen = rt
        .block_on(async { tokio::time::timeout(PATIENCE, task).await })
        .ok()
        .and_then(Result::ok)
        .unwrap_or_else(|| Seen {
            errors: vec!["client task failed".into()],
            ..Seen::default()
        });
    let check = Check::of(std::slice::from_ref(&seen), &[expected]);
    Round {
        hostile,
        lat: latency(seen.latency_us),
        check,
        lines_per_sec,
        hostile_seen,
        skipped,
        hub_cpu: cpu1.0 - cpu0.0,
        isolated_cpu: cpu1.1 - cpu0.1,
        others,
        isolated,
        rss: (rss_before, rss_peak, rss_after),
        patterns_after,
    }
}

/// CPU seconds of the hub's threads so far: all but the isolated workers, and those.
fn cpu_split(pid: u32) -> (f64, f64) {
    let threads = thread_cpu_secs(pid);
    let isolated: f64 = threads
        .iter()
        .filter(|(name, _)| name.starts_with("isolated-"))
        .map(|(_, s)| s)
        .sum();
    (threads.values().sum::<f64>() - isolated, isolated)
}

fn report(cfg: &Config, corpus: &Corpus, rounds: &[Round]) -> String {
    let side = |hostile: bool| rounds.iter().filter(move |r| r.hostile == hostile);
    let med = |hostile: bool, f: &dyn Fn(&Round) -> f64| median(side(hostile).map(f).collect());
    let (lps0, lps1) = (
        med(false, &|r| r.lines_per_sec),
        med(true, &|r| r.lines_per_sec),
    );
    let (p99_0, p99_1) = (med(false, &|r| r.lat.p99), med(true, &|r| r.lat.p99));
    let (cpu0, cpu1) = (med(false, &|r| r.hub_cpu), med(true, &|r| r.hub_cpu));
    let mut s = String::new();
    let _ = writeln!(s, "{SECTION}\n");
    let _ = writeln!(
        s,
        "`cargo bench --bench hostile` ({}, {} CPUs, {}; {}). A hub follows one file; a \
         normal client subscribes to `{}` ({:.2}% of the lines). With a hostile client \
         too, holding {} patterns like `(?i)\\w+=\\w*a\\w*\\s+\\S*17\\S*\\s\\w{{2,8}}$` \
         (letter and number varied) and reading all it gets. Latency: {} lines/s for {} s \
         ({} Loghub files interleaved); lines/s: {} lines appended at once, until the \
         normal client has the line after them. Medians of {} rounds; each round runs \
         both, on fresh hubs.\n",
        today(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        cfg.bin.display(),
        cfg.pattern,
        corpus.match_share() * 100.0,
        cfg.patterns,
        cfg.rate,
        cfg.secs,
        corpus.files.len(),
        cfg.bulk,
        cfg.rounds,
    );
    let _ = writeln!(
        s,
        "| | normal client p50 / p99 (ms) | hub lines/s | exact | hostile: received / told dropped / skipped | isolated | hub CPU s: all but the isolated / isolated | others' load (% of a core) | hub RSS MiB: before bulk / peak / after the hostile left |"
    );
    let _ = writeln!(s, "|---|---:|---:|---|---:|---:|---:|---:|---|");
    for r in rounds {
        let _ = writeln!(
            s,
            "| {} | {} / {} | {:.0} | {} | {} | {} | {:.2} / {:.2} | {:.0} | {:.0} / {:.0} / {:.0} |",
            if r.hostile { "with hostile" } else { "alone" },
            ms(r.lat.p50),
            ms(r.lat.p99),
            r.lines_per_sec,
            r.check.summary(1),
            r.hostile_seen.map_or("–".into(), |(got, dropped)| format!(
                "{got} / {dropped} / {}",
                r.skipped
            )),
            if r.hostile {
                format!("{}", r.isolated)
            } else {
                "–".into()
            },
            r.hub_cpu,
            r.isolated_cpu,
            r.others,
            r.rss.0,
            r.rss.1,
            r.rss.2,
        );
    }
    let _ = writeln!(
        s,
        "\n**With/without: hub lines/s {:.2}, normal client p99 {:.2}** (medians: {:.0} \
         against {:.0} lines/s, {} against {} ms); the hub's CPU but the isolated \
         workers' {:.2} ({:.2} against {:.2} s).\n",
        lps1 / lps0,
        p99_1 / p99_0,
        lps1,
        lps0,
        ms(p99_1),
        ms(p99_0),
        cpu1 / cpu0,
        cpu1,
        cpu0,
    );
    s
}

fn main() {
    let Some(corpus_dir) = std::env::var_os("SUPERGREP_CORPUS").filter(|v| !v.is_empty()) else {
        println!(
            "hostile: set SUPERGREP_CORPUS to a directory of Loghub samples, e.g.\n  \
             SUPERGREP_CORPUS=/work/shared/corpus cargo bench --bench hostile\nSkipping."
        );
        return;
    };
    let cfg = Config::from_env(PathBuf::from(corpus_dir));
    let pattern = regex::Regex::new(&cfg.pattern).expect("HOSTILE_PATTERN does not compile");
    let corpus = Arc::new(Corpus::load(&cfg.corpus_dir, &pattern));
    let matching = corpus
        .lines
        .iter()
        .zip(&corpus.matches)
        .find(|(_, &m)| m)
        .map(|(l, _)| l.clone())
        .expect("HOSTILE_PATTERN matches no corpus line");
    let (probe, end) = (format!("{PROBE} {matching}"), format!("{END} {matching}"));
    epoch();
    let per_run = cfg.secs + cfg.quiet_wait.as_secs_f64() + 8.0 * PATIENCE.as_secs_f64();
    watchdog(
        "hostile",
        Duration::from_secs_f64(2.0 * cfg.rounds as f64 * per_run + 60.0),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut rounds = Vec::new();
    for round in 0..cfg.rounds {
        for hostile in [false, true] {
            let r = run(&cfg, &corpus, &probe, &end, hostile, &rt);
            println!(
                "round {round} {}: p50 {} p99 {} ms, {:.0} lines/s, {}, hostile {:?} skipped {}, isolated {}, CPU s {:.2} / {:.2}, others {:.0}%, RSS {:?}, patterns after {}",
                if hostile { "with hostile" } else { "alone" },
                ms(r.lat.p50),
                ms(r.lat.p99),
                r.lines_per_sec,
                r.check.summary(1),
                r.hostile_seen,
                r.skipped,
                r.isolated,
                r.hub_cpu,
                r.isolated_cpu,
                r.others,
                r.rss,
                r.patterns_after
            );
            rounds.push(r);
        }
    }
    let section = report(&cfg, &corpus, &rounds);
    println!("\n{section}");
    if cfg.report {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
        if let Err(e) = refresh_benchmarks_md(&path, SECTION, &section) {
            eprintln!("hostile: cannot update {}: {e}", path.display());
        }
    }
}
