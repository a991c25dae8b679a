//! Latency benchmark: how long after a line is appended to a log file does a matching
//! line reach whoever watches it?
//!
//! A writer appends real log lines to a file at a fixed rate; three receivers watch it,
//! one after the other, each alone (a fresh file each), at each rate:
//! - `tail -n0 -F FILE | grep --line-buffered -E P`, the baseline;
//! - `supergrep -e P FILE` (terminal mode), its stdout read through a pipe;
//! - `supergrep serve FILE` with one WebSocket client subscribed to `[P]`.
//!
//! Measured per receiver and rate: append→receive latency (p50/p99/max) of every
//! matching line, whether it got exactly the matching lines (each once, in order,
//! unaltered), and the CPU of the receiver's processes, of this bench and of everything
//! else on the machine.
//!
//! ```text
//! SUPERGREP_CORPUS=/work/shared/corpus cargo bench --bench latency
//! ```
//!
//! Environment:
//! - `SUPERGREP_CORPUS` (required): a directory with Loghub samples in `loghub/*.log`
//!   (or `*.log` directly);
//! - `LATENCY_RATES` (default `1000,10000,100000`): lines per second;
//! - `LATENCY_SECS` (default 10): seconds of writing per receiver and rate;
//! - `LATENCY_PATTERN` (default `[Ee]xception`, ~1% of the corpus lines): P;
//! - `LATENCY_RECEIVERS` (default `tail-grep,terminal,terminal-symlink,hub`): which
//!   receivers, in this order at each rate; `terminal-symlink` follows the file
//!   through a symlink in another directory (as `/var/log/containers/*.log` on
//!   Kubernetes);
//! - `LATENCY_ROUNDS` (default 1): how many times to go round every rate and receiver;
//!   in each cell of the table, p50/p99/p99.9 are the median of the rounds' figures,
//!   max the worst round's (and "N/N exact" counts the rounds that delivered exactly);
//! - `LATENCY_QUIET_WAIT` (default 15): the machine may be shared, so before each run
//!   the bench waits up to this many seconds for the other processes to go nearly idle
//!   (their CPU during each run is reported either way);
//! - `LATENCY_REPORT=0` leaves `BENCHMARKS.md` alone;
//! - `SUPERGREP_BIN`: another binary to measure (default: `target/release/supergrep`,
//!   which `cargo bench` builds for this bench).
//!
//! Every written line is `<corpus line> sgk=<k> sgt=<nanos>` (see `support`): the
//! receiver's line is checked against the corpus line `k` and its latency is the time
//! it was read minus `sgt`, the time just before the writer's `write` call.
//!
//! Everything runs on 127.0.0.1; child processes are killed on drop (and by a
//! watchdog if the whole run takes far longer than planned).

mod support;

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use tokio::sync::watch;

use support::{
    connect_client, context_switches, cpu_model, drain, env_list, env_or, epoch, lat_cell, latency,
    measured_line, median, ms, read_lines, refresh_benchmarks_md, run_client, status_mib,
    supergrep_bin, sync_probe, today, wait_quiet, watchdog, write_paced, Check, Corpus, CpuUse,
    CpuWindow, Hub, Lat, Proc, Seen, TailGrep, Written, PATIENCE, TICK,
};

/// After the writer stops, how long a receiver gets to deliver the rest.
const DRAIN: Duration = Duration::from_secs(10);
const SECTION: &str = "## Latency";
/// Lines that start with this are the probes that tell a receiver is following.
const PROBE: &str = "sgprobe";

// ---------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    TailGrep,
    Terminal,
    TerminalSymlink,
    Hub,
}

impl Kind {
    fn parse(s: &str) -> Kind {
        match s.trim() {
            "tail-grep" => Kind::TailGrep,
            "terminal" => Kind::Terminal,
            "terminal-symlink" => Kind::TerminalSymlink,
            "hub" => Kind::Hub,
            other => panic!("LATENCY_RECEIVERS: {other:?} is not one of tail-grep, terminal, terminal-symlink, hub"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::TailGrep => "`tail -F \\| grep`",
            Kind::Terminal => "`supergrep -e P FILE`",
            Kind::TerminalSymlink => "`supergrep -e P LINK` (LINK -> FILE, another directory)",
            Kind::Hub => "`supergrep serve` + 1 WebSocket client",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Kind::TailGrep => "tail | grep",
            Kind::Terminal => "terminal",
            Kind::TerminalSymlink => "terminal, symlink",
            Kind::Hub => "hub + WebSocket",
        }
    }
}

struct Config {
    corpus_dir: PathBuf,
    bin: PathBuf,
    rates: Vec<u64>,
    secs: f64,
    pattern: String,
    receivers: Vec<Kind>,
    rounds: usize,
    quiet_wait: Duration,
    report: bool,
}

impl Config {
    fn from_env(corpus_dir: PathBuf) -> Config {
        let rates: Vec<u64> = env_list("LATENCY_RATES", "1000,10000,100000");
        assert!(
            !rates.is_empty() && rates.iter().all(|&r| r > 0),
            "LATENCY_RATES must be positive"
        );
        let receivers = std::env::var("LATENCY_RECEIVERS")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| "tail-grep,terminal,terminal-symlink,hub".into())
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(Kind::parse)
            .collect();
        Config {
            corpus_dir,
            bin: supergrep_bin(),
            rates,
            secs: env_or("LATENCY_SECS", 10.0),
            pattern: env_or("LATENCY_PATTERN", "[Ee]xception".to_string()),
            receivers,
            rounds: env_or::<usize>("LATENCY_ROUNDS", 1).max(1),
            quiet_wait: Duration::from_secs_f64(env_or("LATENCY_QUIET_WAIT", 15.0)),
            report: env_or("LATENCY_REPORT", 1u8) != 0,
        }
    }

    fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.secs)
    }
}

/// Measured line `k`: the corpus line, then ` sgk=<k> sgt=<t>`.
fn write_line(buf: &mut Vec<u8>, corpus: &Corpus, k: u64, t: u64) -> std::io::Result<()> {
    writeln!(buf, "{} sgk={k} sgt={t}", corpus.line(k))
}

// ---------------------------------------------------------------------------------
// One run: one receiver, one rate
// ---------------------------------------------------------------------------------

/// One receiver at one rate, over every round.
struct Run {
    kind: Kind,
    rate: u64,
    rounds: usize,
    /// Summed over the rounds (the biggest batch: the biggest of any).
    written: Written,
    check: Check,
    /// Matching lines written, over the rounds.
    expected: u64,
    /// The median over the rounds of each round's p50, p99 and p99.9; the max of all
    /// rounds; lines later than 20 ms over all rounds.
    lat: Lat,
    /// Append→read by the hub's tailer (its `ts`, whole milliseconds), as `lat`; hub
    /// only.
    read_lat: Option<Lat>,
    /// Matches the hub counted as dropped for its client; hub only.
    hub_dropped: Option<f64>,
    /// Averaged over the rounds' writing time.
    cpu: CpuUse,
    /// Peak RSS of the receiver's processes (summed), MiB; the highest of the rounds.
    rss_peak: f64,
    /// The longest of the rounds.
    drain_secs: f64,
    /// Context switches of the receiver's processes while writing, per second.
    switches: f64,
}

/// One receiver at one rate, once.
struct Round {
    written: Written,
    seen: Seen,
    expected: u64,
    hub_dropped: Option<f64>,
    cpu: CpuUse,
    rss_peak: f64,
    drain_secs: f64,
    switches: u64,
}

impl Run {
    /// Pools the rounds of one receiver at one rate.
    fn of(kind: Kind, rate: u64, rounds: Vec<Round>) -> Run {
        let secs: f64 = rounds.iter().map(|r| r.written.secs).sum();
        let avg = |f: fn(&CpuUse) -> f64| {
            rounds
                .iter()
                .map(|r| f(&r.cpu) * r.written.secs)
                .sum::<f64>()
                / secs
        };
        let cpu = CpuUse {
            procs: avg(|c| c.procs),
            bench: avg(|c| c.bench),
            others: avg(|c| c.others),
        };
        let written = Written {
            lines: rounds.iter().map(|r| r.written.lines).sum(),
            secs,
            biggest_batch: rounds
                .iter()
                .map(|r| r.written.biggest_batch)
                .max()
                .unwrap_or(0),
            writes: rounds.iter().map(|r| r.written.writes).sum(),
        };
        let expected: Vec<u64> = rounds.iter().map(|r| r.expected).collect();
        let hub_dropped =
            (kind == Kind::Hub).then(|| rounds.iter().filter_map(|r| r.hub_dropped).sum::<f64>());
        let rss_peak = rounds.iter().map(|r| r.rss_peak).fold(0.0, f64::max);
        let drain_secs = rounds.iter().map(|r| r.drain_secs).fold(0.0, f64::max);
        let switches = rounds.iter().map(|r| r.switches).sum::<u64>() as f64 / secs;
        let seen: Vec<Seen> = rounds.into_iter().map(|r| r.seen).collect();
        let check = Check::of(&seen, &expected);
        let read_lat = (kind == Kind::Hub)
            .then(|| median_lat(seen.iter().map(|s| latency(s.read_us.clone())).collect()));
        Run {
            kind,
            rate,
            rounds: seen.len(),
            written,
            check,
            expected: expected.iter().sum(),
            lat: median_lat(seen.into_iter().map(|s| latency(s.latency_us)).collect()),
            read_lat,
            hub_dropped,
            cpu,
            rss_peak,
            drain_secs,
            switches,
        }
    }
}

/// Rounds' latencies as one: the median of their percentiles (the issue asks for
/// medians of several runs on these noisy machines), the worst maximum, all samples.
fn median_lat(rounds: Vec<Lat>) -> Lat {
    let median = |f: fn(&Lat) -> f64| median(rounds.iter().map(f).collect());
    let samples: usize = rounds.iter().map(|l| l.samples).sum();
    Lat {
        p50: median(|l| l.p50),
        p99: median(|l| l.p99),
        p999: median(|l| l.p999),
        max: rounds.iter().map(|l| l.max).fold(0.0, f64::max),
        samples,
        over_20ms: rounds
            .iter()
            .map(|l| l.over_20ms * l.samples as f64)
            .sum::<f64>()
            / samples.max(1) as f64,
    }
}

/// What is running for one receiver.
enum Receiver {
    Pipe {
        procs: Vec<Proc>,
        reader: std::thread::JoinHandle<Seen>,
    },
    Hub {
        hub: Hub,
        task: tokio::task::JoinHandle<Seen>,
        stop: watch::Sender<bool>,
    },
}

impl Receiver {
    fn pids(&self) -> Vec<u32> {
        match self {
            Receiver::Pipe { procs, .. } => procs.iter().map(Proc::pid).collect(),
            Receiver::Hub { hub, .. } => vec![hub.pid()],
        }
    }
}

fn run(
    cfg: &Config,
    corpus: &Arc<Corpus>,
    probe: &str,
    kind: Kind,
    rate: u64,
    rt: &tokio::runtime::Runtime,
) -> Round {
    wait_quiet(cfg.quiet_wait);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("app.log");
    File::create(&path).expect("create the log file");
    let counter = Arc::new(AtomicU64::new(0));
    let on_line = {
        let (corpus, counter) = (corpus.clone(), counter.clone());
        move |seen: &mut Seen, text: &str, read: Option<i64>, now: u64| {
            measured_line(seen, text, read, &corpus, now);
            counter.store(seen.received, Ordering::Relaxed);
        }
    };
    let (receiver, probes) = match kind {
        Kind::TailGrep => {
            let (pipeline, out) = TailGrep::start(&path, &cfg.pattern);
            let (probes, reader) = read_lines(out, PROBE, move |seen, text, now| {
                on_line(seen, text, None, now)
            });
            let TailGrep { tail, grep } = pipeline;
            (
                Receiver::Pipe {
                    procs: vec![tail, grep],
                    reader,
                },
                probes,
            )
        }
        Kind::Terminal | Kind::TerminalSymlink => {
            let followed = if kind == Kind::TerminalSymlink {
                let links = dir.path().join("links");
                std::fs::create_dir(&links).expect("create the links directory");
                let link = links.join("app.log");
                std::os::unix::fs::symlink(&path, &link).expect("symlink the log file");
                link
            } else {
                path.clone()
            };
            let mut proc = Proc::spawn(
                Command::new(&cfg.bin)
                    .args(["-e", &cfg.pattern])
                    .arg(&followed)
                    .env_remove("SUPERGREP_LOG")
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit()),
            );
            let out = proc.0.stdout.take().unwrap();
            let (probes, reader) = read_lines(out, PROBE, move |seen, text, now| {
                on_line(seen, text, None, now)
            });
            (
                Receiver::Pipe {
                    procs: vec![proc],
                    reader,
                },
                probes,
            )
        }
        Kind::Hub => {
            let hub = Hub::start(&cfg.bin, &path);
            let url = format!("ws://{}/ws", hub.addr);
            let ws = rt
                .block_on(connect_client(url, vec![cfg.pattern.clone()]))
                .unwrap_or_else(|e| panic!("the WebSocket client could not subscribe: {e}"));
            let (probe_tx, probes) = mpsc::channel();
            let (stop, stop_rx) = watch::channel(false);
            let task = rt.spawn(run_client(
                ws,
                counter.clone(),
                stop_rx,
                move |seen, text, read, now| {
                    if text.starts_with(PROBE) {
                        let _ = probe_tx.send(());
                    } else {
                        on_line(seen, text, read, now);
                    }
                },
            ));
            (Receiver::Hub { hub, task, stop }, probes)
        }
    };
    let mut out = OpenOptions::new().append(true).open(&path).unwrap();
    sync_probe(&mut out, probe, &probes, kind.short());

    let pids = receiver.pids();
    let switches0: u64 = pids.iter().map(|&p| context_switches(p)).sum();
    let cpu = CpuWindow::start(&pids);
    let written = write_paced(&mut out, rate, cfg.duration(), |buf, k, t| {
        write_line(buf, corpus, k, t)
    })
    .expect("write");
    let cpu = cpu.end();
    // (Threads that ended in between take their counts with them.)
    let switches = pids
        .iter()
        .map(|&p| context_switches(p))
        .sum::<u64>()
        .saturating_sub(switches0);
    let expected = corpus.matches_in(written.lines);
    let drain_secs = drain(std::slice::from_ref(&counter), &[expected], DRAIN);
    let rss_peak = pids.iter().map(|&p| status_mib(p, "VmHWM")).sum();
    let (seen, hub_dropped) = match receiver {
        Receiver::Pipe { procs, reader } => {
            drop(procs);
            (reader.join().unwrap(), None)
        }
        Receiver::Hub { hub, task, stop } => {
            let _ = stop.send(true);
            let seen = rt.block_on(async {
                match tokio::time::timeout(PATIENCE, task).await {
                    Ok(Ok(s)) => s,
                    _ => Seen {
                        errors: vec!["client task failed".into()],
                        ..Seen::default()
                    },
                }
            });
            let dropped = hub.metric("supergrep_matches_dropped_total");
            (seen, Some(dropped))
        }
    };
    Round {
        written,
        seen,
        expected,
        hub_dropped,
        cpu,
        rss_peak,
        drain_secs,
        switches,
    }
}

// ---------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------

/// The `tail | grep` run at the same rate.
fn baseline_of(runs: &[Run], rate: u64) -> Option<&Run> {
    runs.iter()
        .find(|r| r.rate == rate && r.kind == Kind::TailGrep)
}

fn rate_cell(rate: u64) -> String {
    if rate >= 1000 && rate.is_multiple_of(1000) {
        format!("{}k", rate / 1000)
    } else {
        rate.to_string()
    }
}

fn table(runs: &[Run]) -> String {
    let mut t = String::new();
    t.push_str(
        "| lines/s | receiver | lines written (rate) | matches got / expected | delivery check | latency p50 / p99 / max (ms) | p99 − `tail \\| grep` | p50 ÷ `tail \\| grep` | receiver CPU | bench CPU | others' CPU | receiver RSS peak |\n",
    );
    t.push_str(
        "| ---: | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in runs {
        let (diff, ratio) = match baseline_of(runs, r.rate) {
            Some(b) if r.kind != Kind::TailGrep && b.lat.samples > 0 => (
                format!("{:+.2} ms", r.lat.p99 - b.lat.p99),
                if b.lat.p50 > 0.0 {
                    format!("{:.1}×", r.lat.p50 / b.lat.p50)
                } else {
                    "–".into()
                },
            ),
            _ => ("–".into(), "–".into()),
        };
        let mut check = r.check.summary(r.rounds);
        if let Some(d) = r.hub_dropped.filter(|&d| d > 0.0) {
            let _ = write!(check, ", {d:.0} dropped");
        }
        let _ = writeln!(
            t,
            "| {} | {} | {} ({:.0}/s) | {} / {} | {} | {} | {} | {} | {:.1}% | {:.1}% | {:.1}% | {:.1} MiB |",
            rate_cell(r.rate),
            r.kind.name(),
            r.written.lines,
            r.written.rate(),
            r.lat.samples,
            r.expected,
            check,
            lat_cell(&r.lat),
            diff,
            ratio,
            r.cpu.procs,
            r.cpu.bench,
            r.cpu.others,
            r.rss_peak,
        );
    }
    t
}

fn details(runs: &[Run]) -> String {
    let mut t = String::new();
    t.push_str("| lines/s | receiver | latency p99.9 (ms) | lines > 20 ms | append→hub read p50 / p99 (ms) | reads / frames | appends | receiver context switches | biggest write batch | drain after writing |\n");
    t.push_str("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for r in runs {
        let read = r.read_lat.as_ref().map_or("–".to_string(), |l| {
            format!("{} / {}", ms(l.p50), ms(l.p99))
        });
        let _ = writeln!(
            t,
            "| {} | {} | {} | {:.2}% | {} | {} | {:.0}/s | {:.0}/s | {} lines | {:.2} s |",
            rate_cell(r.rate),
            r.kind.short().replace('|', "\\|"),
            ms(r.lat.p999),
            r.lat.over_20ms * 100.0,
            read,
            r.check.frames,
            r.written.writes as f64 / r.written.secs,
            r.switches,
            r.written.biggest_batch,
            r.drain_secs,
        );
    }
    t
}

/// Where each supergrep receiver stands against the aim at 10k lines/s (or the rate
/// closest to it that was measured).
fn aim(runs: &[Run]) -> Option<String> {
    let rate = runs
        .iter()
        .map(|r| r.rate)
        .min_by_key(|&r| r.abs_diff(10_000))?;
    let base = baseline_of(runs, rate)?;
    let parts: Vec<String> = runs
        .iter()
        .filter(|r| r.rate == rate && r.kind != Kind::TailGrep)
        .map(|r| {
            let d = r.lat.p99 - base.lat.p99;
            format!(
                "{} {:+.2} ms ({})",
                r.kind.short(),
                d,
                if d <= 2.0 { "met" } else { "not met" }
            )
        })
        .collect();
    (!parts.is_empty()).then(|| {
        format!(
            "**Aim** (issue 7): p99 append→client latency within 2 ms of `tail -F | grep` at \
             10k lines/s. At {} lines/s, p99 minus the baseline's {} ms: {}.\n",
            rate,
            ms(base.lat.p99),
            parts.join("; ")
        )
    })
}

fn section(cfg: &Config, corpus: &Corpus, runs: &[Run]) -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut s = String::new();
    let _ = writeln!(s, "{SECTION}\n");
    let _ = writeln!(
        s,
        "`benches/latency.rs`, run on {} — {cores} cores (`nproc`), {}. The writer, the \
         receiver and the bench's reader (a thread reading the pipe, or a tokio WebSocket \
         client parsing JSON) share these {cores} cores.\n",
        today(),
        cpu_model(),
    );
    let _ = writeln!(
        s,
        "Workload: real Loghub lines ({} files interleaved, {} lines, `\\r` stripped), \
         appended to a fresh file in batches every {} ms for {} s at each rate{}, each line \
         tagged ` sgk=<k> sgt=<append time>`. P = `{}` matches {:.2}% of the corpus lines: that \
         share of what is written comes out. Each receiver runs alone, one after \
         the other at each rate, after the bench has waited (up to {} s) for the machine to \
         be quiet. Latency is from just before the writer's `write` to the bench having read \
         the line (from the pipe, or the WebSocket frame); the check is exact when the \
         receiver delivered every matching line once, in order, unaltered, and nothing else.\n",
        corpus.files.len(),
        corpus.lines.len(),
        TICK.as_millis(),
        cfg.secs,
        if cfg.rounds > 1 {
            format!(
                ", {} times (rounds going through every rate and receiver; in each cell, \
                 p50, p99 and p99.9 are the median of the rounds' figures, max is the worst \
                 round's, lines and CPU are over all rounds, and \"N/N exact\" counts exact \
                 rounds)",
                cfg.rounds
            )
        } else {
            String::new()
        },
        cfg.pattern,
        corpus.match_share() * 100.0,
        cfg.quiet_wait.as_secs_f64(),
    );
    let busy: Vec<String> = runs
        .iter()
        .filter(|r| r.cpu.others > 25.0)
        .map(|r| {
            format!(
                "{} at {}: {:.0}%",
                r.kind.short(),
                rate_cell(r.rate),
                r.cpu.others
            )
        })
        .collect();
    if !busy.is_empty() {
        let _ = writeln!(
            s,
            "**Disturbed:** other processes of this shared machine used much CPU during some runs \
             ({}; % of one core), so those figures are worse than the receiver's own.\n",
            busy.join(", ")
        );
    }
    s.push_str(&table(runs));
    let _ = writeln!(
        s,
        "\nCPU is % of one core over the {:.0} s of writing (200% = both cores): \"receiver\" \
         is tail + grep, or the one supergrep process; \"bench\" is the writer and the reader; \
         \"others'\" is every other process of the machine in that time (from /proc/stat). \
         \"p99 − `tail | grep`\" and \"p50 ÷\" compare with the baseline at the same rate in \
         this run. RSS peak is VmHWM (tail + grep summed).\n",
        cfg.secs
    );
    if let Some(a) = aim(runs) {
        s.push_str(&a);
        s.push('\n');
    }
    s.push_str(&details(runs));
    let _ = write!(
        s,
        "\n\"append→hub read\" compares the hub's `ts` (when its tailer read the line, whole \
         milliseconds) with the append time: the part of the latency spent before matching. \
         \"reads / frames\": lines read from the pipe, or `lines` frames received. \
         \"receiver context switches\": of all threads of tail and grep, or of supergrep, \
         while writing (from /proc/PID/task/*/status), about how often the receiver woke up, \
         against \"appends\", the writer's `write` calls (one every {} ms when a line is due). \
         A big write \
         batch means the writer itself was held up and caught up at once.\n\n",
        TICK.as_millis(),
    );
    let _ = writeln!(
        s,
        "Commands: `tail -n0 -F FILE | grep --line-buffered -E 'P'` (GNU coreutils/grep, \
         spawned directly with a pipe between them), `supergrep -e 'P' FILE` (text output \
         into a pipe), `supergrep serve --listen 127.0.0.1:0 FILE` with a client that sends \
         `{{\"type\":\"subscribe\",\"id\":\"s\",\"include\":[\"P\"]}}`.\n"
    );
    let _ = writeln!(
        s,
        "Reproduce (these figures' settings; `cargo bench` builds `target/release/supergrep` \
         itself): `SUPERGREP_CORPUS=/work/shared/corpus LATENCY_RATES={} LATENCY_SECS={} \
         LATENCY_ROUNDS={} LATENCY_PATTERN='{}' cargo bench --bench latency` (`LATENCY_RECEIVERS` picks \
         receivers, `LATENCY_REPORT=0` leaves this file alone, `LATENCY_QUIET_WAIT` bounds the \
         wait for an idle machine).\n",
        cfg.rates
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(","),
        cfg.secs,
        cfg.rounds,
        cfg.pattern,
    );
    s
}

// ---------------------------------------------------------------------------------

fn main() {
    let Some(corpus_dir) = std::env::var_os("SUPERGREP_CORPUS").filter(|v| !v.is_empty()) else {
        println!(
            "latency: set SUPERGREP_CORPUS to a directory of real log samples (Loghub \
             `loghub/*.log`), e.g.\n  SUPERGREP_CORPUS=/work/shared/corpus cargo bench --bench latency\n\
             Skipping."
        );
        return;
    };
    let cfg = Config::from_env(PathBuf::from(corpus_dir));
    let pattern = regex::Regex::new(&cfg.pattern).expect("LATENCY_PATTERN does not compile");
    assert!(
        !pattern.is_match(" sgk=123 sgt=456789"),
        "LATENCY_PATTERN must not match the bench's tags"
    );
    let corpus = Arc::new(Corpus::load(&cfg.corpus_dir, &pattern));
    // The probe: a line P matches, so that every receiver shows it.
    let probe = corpus
        .lines
        .iter()
        .zip(&corpus.matches)
        .find(|(_, &m)| m)
        .map(|(l, _)| format!("{PROBE} {l}"))
        .expect("LATENCY_PATTERN matches no corpus line");
    assert!(
        pattern.is_match(&probe),
        "LATENCY_PATTERN must match {probe:?}"
    );
    epoch();
    let runs_planned = cfg.rates.len() * cfg.receivers.len() * cfg.rounds;
    watchdog(
        "latency",
        Duration::from_secs_f64(
            runs_planned as f64
                * (cfg.secs + cfg.quiet_wait.as_secs_f64() + 3.0 * PATIENCE.as_secs_f64())
                + 60.0,
        ),
    );
    println!(
        "latency: {} lines from {} files ({:.2}% match {:?}), rates {:?} lines/s, {} s each, {}",
        corpus.lines.len(),
        corpus.files.len(),
        corpus.match_share() * 100.0,
        cfg.pattern,
        cfg.rates,
        cfg.secs,
        cfg.bin.display()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");

    // Rounds go round every rate and receiver, so that a noisy spell of the machine
    // falls on all of them rather than on one.
    let cells: Vec<(u64, Kind)> = cfg
        .rates
        .iter()
        .flat_map(|&rate| cfg.receivers.iter().map(move |&kind| (rate, kind)))
        .collect();
    let mut rounds: Vec<Vec<Round>> = cells.iter().map(|_| Vec::new()).collect();
    for round in 1..=cfg.rounds {
        for (&(rate, kind), done) in cells.iter().zip(&mut rounds) {
            println!(
                "latency: {} at {rate} lines/s (round {round} of {}) ...",
                kind.short(),
                cfg.rounds
            );
            let r = run(&cfg, &corpus, &probe, kind, rate, &rt);
            let lat = latency(r.seen.latency_us.clone());
            let check = Check::of(std::slice::from_ref(&r.seen), &[r.expected]);
            println!(
                "  {} lines ({:.0}/s); {} of {} matches; {}; p50 {} ms p99 {} ms max {} ms; receiver CPU {:.1}% bench {:.1}% others {:.1}%",
                r.written.lines,
                r.written.rate(),
                lat.samples,
                r.expected,
                check.summary(1),
                ms(lat.p50),
                ms(lat.p99),
                ms(lat.max),
                r.cpu.procs,
                r.cpu.bench,
                r.cpu.others,
            );
            for e in &check.errors {
                println!("  receiver error: {e}");
            }
            done.push(r);
        }
    }
    rt.shutdown_timeout(Duration::from_secs(2));
    let runs: Vec<Run> = cells
        .into_iter()
        .zip(rounds)
        .map(|((rate, kind), rounds)| Run::of(kind, rate, rounds))
        .collect();

    let section = section(&cfg, &corpus, &runs);
    println!("\n{section}");
    if cfg.report {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
        match refresh_benchmarks_md(&path, SECTION, &section) {
            Ok(()) => println!(
                "latency: wrote the \"{SECTION}\" section of {}",
                path.display()
            ),
            Err(e) => eprintln!("latency: cannot write {}: {e}", path.display()),
        }
    }
}
