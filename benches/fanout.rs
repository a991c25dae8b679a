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

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// How long any single wait (hub start, a connect, draining) may take.
const PATIENCE: Duration = Duration::from_secs(30);
/// After the writer stops, how long clients get to receive the rest.
const DRAIN: Duration = Duration::from_secs(15);
/// The writer appends a batch this often.
const TICK: Duration = Duration::from_millis(1);
/// Clients connecting at once.
const CONNECT_CONCURRENCY: usize = 32;
const SECTION: &str = "## Fan-out (hub)";

// ---------------------------------------------------------------------------------
// Configuration and corpus
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

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value")),
        _ => default,
    }
}

impl Config {
    fn from_env(corpus_dir: PathBuf) -> Config {
        let clients = std::env::var("FANOUT_CLIENTS")
            .unwrap_or_else(|_| "0,1,100,1000".into())
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                s.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("FANOUT_CLIENTS: {s:?} is not a number"))
            })
            .collect();
        let rate: u64 = env_or("FANOUT_RATE", 20_000);
        assert!(rate > 0, "FANOUT_RATE must be positive");
        let own_rate: u64 = env_or("FANOUT_OWN_RATE", 10);
        assert!(own_rate > 0, "FANOUT_OWN_RATE must be positive");
        Config {
            corpus_dir,
            // Cargo builds the binary (same profile as this bench, i.e. release) and
            // names it here.
            bin: std::env::var_os("SUPERGREP_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_supergrep"))),
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

/// Real log lines, the files interleaved line by line (a steady mix of sources, as a
/// hub following several services sees), `\r` stripped.
struct Corpus {
    lines: Vec<String>,
    /// Whether the shared pattern matches line `j`.
    shared: Vec<bool>,
    files: Vec<String>,
}

impl Corpus {
    fn load(dir: &Path, shared: &regex::Regex) -> Corpus {
        let loghub = dir.join("loghub");
        let dir = if loghub.is_dir() {
            loghub
        } else {
            dir.to_owned()
        };
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        paths.sort();
        assert!(!paths.is_empty(), "no *.log files in {}", dir.display());
        let per_file: Vec<Vec<String>> = paths
            .iter()
            .map(|p| {
                let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                String::from_utf8_lossy(&bytes)
                    .split('\n')
                    .map(|l| l.trim_end_matches('\r'))
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .collect();
        let longest = per_file.iter().map(Vec::len).max().unwrap_or(0);
        let mut lines = Vec::new();
        for i in 0..longest {
            for f in &per_file {
                if let Some(l) = f.get(i) {
                    lines.push(l.clone());
                }
            }
        }
        let shared = lines.iter().map(|l| shared.is_match(l)).collect();
        Corpus {
            lines,
            shared,
            files: paths
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect(),
        }
    }

    fn line(&self, k: u64) -> &str {
        &self.lines[(k % self.lines.len() as u64) as usize]
    }

    fn is_shared(&self, k: u64) -> bool {
        self.shared[(k % self.lines.len() as u64) as usize]
    }

    fn shared_share(&self) -> f64 {
        self.shared.iter().filter(|&&s| s).count() as f64 / self.lines.len() as f64
    }
}

/// What each client must receive, once `total` lines have been written.
fn expected_counts(corpus: &Corpus, m: u64, n: usize, total: u64) -> Vec<u64> {
    let mut own = vec![0u64; n];
    let mut both = vec![0u64; n];
    let mut shared = 0;
    for k in 0..total {
        let to = (k % m) as usize;
        let s = corpus.is_shared(k);
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

/// `(k, sgt nanos, to)` of a line the writer tagged.
fn parse_tag(text: &str) -> Option<(u64, u64, u64)> {
    let at = text.rfind(" sgk=")?;
    let mut parts = text[at + 1..].split(' ');
    let k = parts.next()?.strip_prefix("sgk=")?.parse().ok()?;
    let t = parts.next()?.strip_prefix("sgt=")?.parse().ok()?;
    let to = parts.next()?.strip_prefix("to=client")?.parse().ok()?;
    Some((k, t, to))
}

/// The bench's clock: an `Instant`, and the wall-clock time (nanoseconds since the Unix
/// epoch) it was taken at, to compare with the hub's `ts`.
fn epoch() -> (Instant, u64) {
    static EPOCH: OnceLock<(Instant, u64)> = OnceLock::new();
    *EPOCH.get_or_init(|| {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        (Instant::now(), wall)
    })
}

fn now_nanos() -> u64 {
    epoch().0.elapsed().as_nanos() as u64
}

/// Days from 1970-01-01 to a civil date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A `ts` of the hub (`2026-11-22T01:02:03.123Z`, when the tailer read the line), on
/// the bench's clock (nanoseconds since [`epoch`]); `None` if it does not parse.
fn parse_ts(ts: &str) -> Option<i64> {
    let b = ts.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[10] != b'T' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| ts.get(r)?.parse::<i64>().ok();
    let days = days_from_civil(num(0..4)?, num(5..7)?, num(8..10)?);
    let secs = days * 86_400 + num(11..13)? * 3600 + num(14..16)? * 60 + num(17..19)?;
    let frac = ts[19..]
        .strip_prefix('.')
        .unwrap_or("")
        .trim_end_matches('Z');
    let nanos = if frac.is_empty() {
        0
    } else {
        let digits = &frac[..frac.len().min(9)];
        digits.parse::<i64>().ok()? * 10i64.pow(9 - digits.len() as u32)
    };
    Some(secs * 1_000_000_000 + nanos - epoch().1 as i64)
}

// ---------------------------------------------------------------------------------
// Processes: start, measure, always kill
// ---------------------------------------------------------------------------------

/// Pids of the children alive now, for the watchdog.
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// A child process killed (and reaped) on drop, even when unwinding from a panic.
struct Proc(Child);

impl Proc {
    fn spawn(cmd: &mut Command) -> Proc {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        CHILDREN.lock().unwrap().push(child.id());
        Proc(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let pid = self.0.id();
        if let Ok(mut c) = CHILDREN.lock() {
            c.retain(|&p| p != pid);
        }
    }
}

/// Ends the whole run (killing our children by pid) if it overstays its budget.
fn watchdog(budget: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(budget);
        eprintln!("fanout: still running after {budget:?}; killing the children and giving up");
        let pids = CHILDREN.lock().map(|c| c.clone()).unwrap_or_default();
        for pid in pids {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        std::process::exit(1);
    });
}

fn clock_ticks() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// utime + stime of a process (`"self"` or a pid), in seconds.
fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0.0;
    };
    // Fields from 3 (state) on: utime is field 14, stime 15.
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i)?.parse::<u64>().ok())
        .sum();
    ticks as f64 / clock_ticks()
}

/// CPU time all processes of the machine have used (busy, not idle or waiting for
/// I/O), in seconds: to see how much of it went to others during a run.
fn machine_busy_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    // user nice system idle iowait irq softirq steal (guest is inside user)
    let f: Vec<u64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let busy: u64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| f.get(i)).sum();
    busy as f64 / clock_ticks()
}

/// The machine is shared: before a run, waits (at most `max`) until the rest of it
/// has been nearly idle for 2 s. Returns the busy share seen last, in % of one core.
fn wait_quiet(max: Duration) -> f64 {
    let start = Instant::now();
    loop {
        let (b0, self0) = (machine_busy_secs(), cpu_secs("self"));
        std::thread::sleep(Duration::from_secs(2));
        let busy = (machine_busy_secs() - b0 - (cpu_secs("self") - self0)) / 2.0 * 100.0;
        if busy < 25.0 || start.elapsed() >= max {
            if busy >= 25.0 {
                println!(
                    "  (the machine is busy: {busy:.0}% of a core used by others; going ahead)"
                );
            }
            return busy;
        }
    }
}

/// CPU use over a measured window, in % of one core.
struct CpuWindow {
    t0: Instant,
    pids: Vec<String>,
    procs0: f64,
    self0: f64,
    machine0: f64,
}

struct CpuUse {
    /// The measured processes (the hub, or tail + grep).
    procs: f64,
    /// This bench: writer, clients.
    bench: f64,
    /// Everything else on the machine.
    others: f64,
}

impl CpuWindow {
    fn start(pids: &[u32]) -> CpuWindow {
        let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
        CpuWindow {
            t0: Instant::now(),
            procs0: pids.iter().map(|p| cpu_secs(p)).sum(),
            self0: cpu_secs("self"),
            machine0: machine_busy_secs(),
            pids,
        }
    }

    fn end(&self) -> CpuUse {
        let wall = self.t0.elapsed().as_secs_f64();
        let procs = self.pids.iter().map(|p| cpu_secs(p)).sum::<f64>() - self.procs0;
        let bench = cpu_secs("self") - self.self0;
        let machine = machine_busy_secs() - self.machine0;
        let pct = |v: f64| v / wall * 100.0;
        CpuUse {
            procs: pct(procs),
            bench: pct(bench),
            others: pct((machine - procs - bench).max(0.0)),
        }
    }
}

/// A `kB` field of /proc/PID/status (VmRSS, VmHWM), in MiB.
fn status_mib(pid: u32, key: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A running `supergrep serve` on one file.
struct Hub {
    proc: Proc,
    addr: String,
}

impl Hub {
    fn start(bin: &Path, file: &Path) -> Hub {
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .arg(file)
            // The tailer says `following` at debug level; nothing else is chatty.
            .env("SUPERGREP_LOG", "warn,supergrep::source::tail=debug")
            .env_remove("SUPERGREP_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut proc = Proc::spawn(&mut cmd);
        let stderr = proc.0.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Keep draining after the bench stops listening, so the hub never blocks.
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + PATIENCE;
        let (mut addr, mut following) = (None, false);
        let mut seen = Vec::new();
        while addr.is_none() || !following {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.split("serving http://").nth(1) {
                        addr = rest.split('/').next().map(str::to_owned);
                    }
                    following |= line.contains("following");
                    seen.push(line);
                }
                Err(_) => panic!(
                    "the hub did not start within {PATIENCE:?}; its stderr:\n{}",
                    seen.join("\n")
                ),
            }
        }
        Hub {
            proc,
            addr: addr.unwrap(),
        }
    }

    fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// `/metrics`, as name → value.
    fn metrics(&self) -> HashMap<String, f64> {
        let mut out = HashMap::new();
        let Ok(mut s) = TcpStream::connect(&self.addr) else {
            return out;
        };
        let _ = s.set_read_timeout(Some(PATIENCE));
        let req = format!(
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        let mut body = String::new();
        if s.write_all(req.as_bytes()).is_ok() && s.read_to_string(&mut body).is_ok() {
            for line in body.lines() {
                let mut parts = line.split_whitespace();
                if let (Some(name), Some(value), None) = (parts.next(), parts.next(), parts.next())
                {
                    if let Ok(v) = value.parse() {
                        out.insert(name.to_owned(), v);
                    }
                }
            }
        }
        out
    }

    fn metric(&self, name: &str) -> f64 {
        self.metrics().get(name).copied().unwrap_or(0.0)
    }
}

// ---------------------------------------------------------------------------------
// The writer
// ---------------------------------------------------------------------------------

struct Written {
    lines: u64,
    secs: f64,
    /// Largest batch, in lines (a stalled writer catches up with a big one).
    biggest_batch: u64,
}

/// Appends `rate × dur` tagged lines to `out`, a batch every [`TICK`].
fn write_paced(
    out: &mut File,
    corpus: &Corpus,
    m: u64,
    rate: u64,
    dur: Duration,
) -> std::io::Result<Written> {
    let total = (rate as f64 * dur.as_secs_f64()).round() as u64;
    let mut buf = Vec::with_capacity(1 << 16);
    let (mut k, mut biggest_batch) = (0u64, 0u64);
    let start = Instant::now();
    let mut next = start;
    while k < total {
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64).clamp(k, total);
        if due > k {
            buf.clear();
            let t = now_nanos();
            for kk in k..due {
                writeln!(
                    buf,
                    "{} sgk={kk} sgt={t} to=client{:05}",
                    corpus.line(kk),
                    kk % m
                )?;
            }
            out.write_all(&buf)?;
            biggest_batch = biggest_batch.max(due - k);
            k = due;
        }
        next += TICK;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else if now - next > Duration::from_millis(20) {
            next = now;
        }
    }
    Ok(Written {
        lines: k,
        secs: start.elapsed().as_secs_f64(),
        biggest_batch,
    })
}

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

// ---------------------------------------------------------------------------------
// Receivers: WebSocket clients and the grep baseline, checked the same way
// ---------------------------------------------------------------------------------

/// What one receiver saw.
#[derive(Default)]
struct Seen {
    received: u64,
    /// Lines it should not have got (not its filter, or untagged).
    unexpected: u64,
    /// Lines at or before one already received.
    out_of_order: u64,
    dropped: u64,
    frames: u64,
    errors: Vec<String>,
    ended_early: bool,
    last_k: Option<u64>,
    /// Append→receive, microseconds.
    latency_us: Vec<u32>,
    /// Append→read by the hub's tailer (its `ts`, in whole milliseconds), microseconds.
    read_us: Vec<u32>,
}

impl Seen {
    /// Checks one received line; `read` is the hub's `ts` on the bench's clock.
    fn line(&mut self, text: &str, read: Option<i64>, me: u64, m: u64, corpus: &Corpus, now: u64) {
        let Some((k, t, to)) = parse_tag(text) else {
            self.unexpected += 1;
            return;
        };
        if self.last_k.is_some_and(|last| k <= last) {
            self.out_of_order += 1;
            return;
        }
        self.last_k = Some(k);
        if !(corpus.is_shared(k) || (k % m == me && to == me)) {
            self.unexpected += 1;
            return;
        }
        self.received += 1;
        let us = now.saturating_sub(t) / 1000;
        self.latency_us.push(us.min(u64::from(u32::MAX)) as u32);
        if let Some(read) = read {
            let us = (read - t as i64).max(0) as u64 / 1000;
            self.read_us.push(us.min(u64::from(u32::MAX)) as u32);
        }
    }
}

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    lines: Vec<FrameLine<'a>>,
    #[serde(default)]
    count: u64,
    #[serde(default, borrow)]
    message: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct FrameLine<'a> {
    #[serde(borrow)]
    text: Cow<'a, str>,
    #[serde(borrow)]
    ts: Cow<'a, str>,
}

async fn next_text(ws: &mut Ws) -> Result<String, String> {
    loop {
        match tokio::time::timeout(PATIENCE, ws.next()).await {
            Err(_) => return Err("no frame from the hub".into()),
            Ok(None) => return Err("connection closed".into()),
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(Some(Ok(Message::Text(t)))) => return Ok(t.as_str().to_owned()),
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Connects client `i`, reads `hello`, subscribes, waits for `subscribed`.
async fn connect_client(url: String, i: usize, shared: String) -> Result<Ws, String> {
    let (mut ws, _) = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(url))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    let hello = next_text(&mut ws).await?;
    if !hello.contains(r#""type":"hello""#) {
        return Err(format!("first message is not hello: {hello}"));
    }
    let sub = serde_json::json!({
        "type": "subscribe",
        "id": "s",
        "include": [shared, tag_pattern(i)],
    });
    ws.send(Message::text(sub.to_string()))
        .await
        .map_err(|e| format!("send: {e}"))?;
    loop {
        let text = next_text(&mut ws).await?;
        let frame: Frame = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        match &*frame.kind {
            "subscribed" => return Ok(ws),
            "error" => return Err(format!("subscribe refused: {text}")),
            _ => {}
        }
    }
}

/// Reads matches until `stop` turns true.
async fn run_client(
    mut ws: Ws,
    me: u64,
    m: u64,
    corpus: Arc<Corpus>,
    counter: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) -> Seen {
    let mut seen = Seen::default();
    loop {
        tokio::select! {
            biased;
            _ = stop.wait_for(|&s| s) => break,
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let now = now_nanos();
                    let frame: Frame = match serde_json::from_str(t.as_str()) {
                        Ok(f) => f,
                        Err(e) => {
                            seen.errors.push(format!("bad frame ({e})"));
                            continue;
                        }
                    };
                    match &*frame.kind {
                        "lines" => {
                            seen.frames += 1;
                            for l in &frame.lines {
                                seen.line(&l.text, parse_ts(&l.ts), me, m, &corpus, now);
                            }
                            counter.store(seen.received, Ordering::Relaxed);
                        }
                        "dropped" => seen.dropped += frame.count,
                        "error" => seen.errors.push(frame.message.unwrap_or_default().into_owned()),
                        _ => {}
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    seen.ended_early = true;
                    break;
                }
            }
        }
    }
    seen
}

/// Latency summary, milliseconds.
#[derive(Clone, Copy, Default)]
struct Lat {
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
    samples: usize,
    /// Share of lines later than 20 ms.
    over_20ms: f64,
}

fn latency(mut us: Vec<u32>) -> Lat {
    if us.is_empty() {
        return Lat::default();
    }
    us.sort_unstable();
    let at = |p: f64| {
        let i = ((p * us.len() as f64).ceil() as usize).clamp(1, us.len()) - 1;
        us[i] as f64 / 1000.0
    };
    Lat {
        p50: at(0.50),
        p99: at(0.99),
        p999: at(0.999),
        max: *us.last().unwrap() as f64 / 1000.0,
        samples: us.len(),
        over_20ms: us.iter().filter(|&&u| u > 20_000).count() as f64 / us.len() as f64,
    }
}

/// Waits until every counter reaches its expected value, or [`DRAIN`] passes.
fn drain(counters: &[Arc<AtomicU64>], expected: &[u64]) -> f64 {
    let start = Instant::now();
    while start.elapsed() < DRAIN {
        let behind = counters
            .iter()
            .zip(expected)
            .any(|(c, &e)| c.load(Ordering::Relaxed) < e);
        if !behind {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed().as_secs_f64()
}

// ---------------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------------

/// Delivery check over all clients of a run.
#[derive(Default)]
struct Check {
    clients_exact: usize,
    expected_min: u64,
    expected_max: u64,
    missing: u64,
    unexpected: u64,
    out_of_order: u64,
    dropped: u64,
    frames: u64,
    ended_early: usize,
    errors: Vec<String>,
}

impl Check {
    fn of(seen: &[Seen], expected: &[u64]) -> Check {
        let mut c = Check {
            expected_min: expected.iter().copied().min().unwrap_or(0),
            expected_max: expected.iter().copied().max().unwrap_or(0),
            ..Check::default()
        };
        for (s, &e) in seen.iter().zip(expected) {
            c.missing += e.saturating_sub(s.received);
            c.unexpected += s.unexpected + s.received.saturating_sub(e);
            c.out_of_order += s.out_of_order;
            c.dropped += s.dropped;
            c.frames += s.frames;
            c.ended_early += usize::from(s.ended_early);
            if s.received == e && s.unexpected == 0 && s.out_of_order == 0 {
                c.clients_exact += 1;
            }
            for e in &s.errors {
                if c.errors.len() < 5 {
                    c.errors.push(e.clone());
                }
            }
        }
        c
    }

    fn summary(&self, n: usize) -> String {
        let mut s = format!("{}/{n} exact", self.clients_exact);
        for (what, v) in [
            ("missing", self.missing),
            ("unexpected", self.unexpected),
            ("out of order", self.out_of_order),
            ("ended early", self.ended_early as u64),
        ] {
            if v > 0 {
                let _ = write!(s, ", {v} {what}");
            }
        }
        s
    }
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
                async move { (i, connect_client(url, i, shared).await) }
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
            Ok(ws) => tasks.push(rt.spawn(run_client(
                ws,
                i as u64,
                m,
                corpus.clone(),
                counters[i].clone(),
                stop_rx.clone(),
            ))),
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
        std::thread::spawn(move || write_paced(&mut out, &corpus, m, rate, dur))
    };
    let written = writer.join().unwrap().expect("write");
    let cpu = cpu.end();
    let rss_end = status_mib(hub.pid(), "VmRSS");

    let expected = expected_counts(corpus, m, n, written.lines);
    let drain_secs = drain(&counters, &expected);
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

/// `tail -n0 -F FILE | grep --line-buffered -E PATTERN` with client 0's filter. The
/// two are spawned directly with a pipe between them, as `sh` would, so that both are
/// our children and are killed by pid.
fn run_baseline(cfg: &Config, corpus: &Arc<Corpus>) -> BaselineRun {
    wait_quiet(cfg.quiet_wait);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("app.log");
    File::create(&path).expect("create the log file");
    let m = cfg.modulus(1);
    let pattern = format!("{}|{}", cfg.shared, tag_pattern(0));
    let mut tail = Proc::spawn(
        Command::new("tail")
            .args(["-n", "0", "-F"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped()),
    );
    let tail_out = tail.0.stdout.take().unwrap();
    let mut grep = Proc::spawn(
        Command::new("grep")
            .args(["--line-buffered", "-E", &pattern])
            .stdin(Stdio::from(tail_out))
            .stdout(Stdio::piped()),
    );
    let grep_out = grep.0.stdout.take().unwrap();
    let counter = Arc::new(AtomicU64::new(0));
    let (probe_tx, probe_rx) = mpsc::channel();
    let reader = {
        let (corpus, counter) = (corpus.clone(), counter.clone());
        std::thread::spawn(move || {
            let mut seen = Seen::default();
            for line in BufReader::new(grep_out).lines() {
                let Ok(line) = line else { break };
                let now = now_nanos();
                if line.starts_with("sgprobe") {
                    let _ = probe_tx.send(());
                    continue;
                }
                seen.frames += 1;
                seen.line(&line, None, 0, m, &corpus, now);
                counter.store(seen.received, Ordering::Relaxed);
            }
            seen
        })
    };
    let mut out = OpenOptions::new().append(true).open(&path).unwrap();
    // tail -n0 skips what is there when it opens the file: probe until it shows.
    let deadline = Instant::now() + PATIENCE;
    loop {
        writeln!(out, "sgprobe to=client00000").unwrap();
        if probe_rx.recv_timeout(Duration::from_millis(200)).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "tail | grep shows nothing");
    }
    while probe_rx.recv_timeout(Duration::from_millis(300)).is_ok() {}

    let cpu = CpuWindow::start(&[tail.pid(), grep.pid()]);
    let written = write_paced(&mut out, corpus, m, cfg.rate, cfg.duration()).expect("write");
    let cpu = cpu.end();
    let expected = expected_counts(corpus, m, 1, written.lines);
    drain(&[counter], &expected);
    drop(grep);
    drop(tail);
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

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == "model name").then(|| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Today (UTC) as YYYY-MM-DD.
fn today() -> String {
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn lat_cell(l: &Lat) -> String {
    format!("{} / {} / {}", ms(l.p50), ms(l.p99), ms(l.max))
}

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
        corpus.shared_share() * 100.0,
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

/// Replaces the `## Fan-out (hub)` section of BENCHMARKS.md (or appends it), leaving
/// the rest of the file as it is.
fn refresh_benchmarks_md(path: &Path, section: &str) -> std::io::Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let start = if old.starts_with(SECTION) {
        Some(0)
    } else {
        old.find(&format!("\n{SECTION}\n")).map(|i| i + 1)
    };
    let new = match start {
        Some(start) => {
            let end = old[start + SECTION.len()..]
                .find("\n## ")
                .map_or(old.len(), |i| start + SECTION.len() + i + 1);
            format!("{}{}{}", &old[..start], section, &old[end..])
        }
        None => {
            let sep = if old.ends_with("\n\n") {
                ""
            } else if old.ends_with('\n') {
                "\n"
            } else {
                "\n\n"
            };
            format!("{old}{sep}{section}")
        }
    };
    std::fs::write(path, new)
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
    assert!(
        cfg.bin.exists(),
        "{} is missing: run `cargo build --release` (or set SUPERGREP_BIN)",
        cfg.bin.display()
    );
    epoch();
    let runs_planned = cfg.clients.len() + usize::from(cfg.baseline);
    watchdog(Duration::from_secs_f64(
        runs_planned as f64
            * (cfg.secs + cfg.quiet_wait.as_secs_f64() + 4.0 * PATIENCE.as_secs_f64())
            + 60.0,
    ));
    println!(
        "fanout: {} lines from {} files ({:.2}% match {:?}), {} lines/s for {} s, clients {:?}, hub {}",
        corpus.lines.len(),
        corpus.files.len(),
        corpus.shared_share() * 100.0,
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
        match refresh_benchmarks_md(&path, &section) {
            Ok(()) => println!(
                "fanout: wrote the \"{SECTION}\" section of {}",
                path.display()
            ),
            Err(e) => eprintln!("fanout: cannot write {}: {e}", path.display()),
        }
    }
}
