//! What the live benchmarks (`fanout.rs`, `latency.rs`) share: the corpus, the paced
//! writer, child processes killed by pid, CPU and memory readings, waiting for a quiet
//! machine, a `supergrep serve` to measure, WebSocket frames, delivery checks,
//! latency summaries and the BENCHMARKS.md section they write.
//!
//! Every measured line ends in ` sgk=<k> sgt=<nanos>` (plus whatever a bench adds
//! after it): `k` numbers the measured lines from 0, `sgt` is the time just before the
//! writer's `write` call, in nanoseconds since an `Instant` of the bench process
//! ([`now_nanos`]), which its receivers share.

// Each bench uses its own part of this module.
#![allow(dead_code)]

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// How long any single wait (hub start, a connect, draining) may take.
pub const PATIENCE: Duration = Duration::from_secs(30);
/// The writer appends a batch this often.
pub const TICK: Duration = Duration::from_millis(1);

// ---------------------------------------------------------------------------------
// Configuration and corpus
// ---------------------------------------------------------------------------------

/// An environment variable parsed as `T`, or `default` when unset or empty.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value")),
        _ => default,
    }
}

/// A comma-separated list of numbers from the environment, or `default`.
pub fn env_list<T: std::str::FromStr>(name: &str, default: &str) -> Vec<T> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.into())
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name}: {s:?} is not a number"))
        })
        .collect()
}

/// The `supergrep` binary to measure: `SUPERGREP_BIN`, else the one Cargo built for
/// the bench (same profile as the bench, i.e. release).
pub fn supergrep_bin() -> PathBuf {
    let bin = std::env::var_os("SUPERGREP_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_supergrep")));
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --release` (or set SUPERGREP_BIN)",
        bin.display()
    );
    bin
}

/// Real log lines, the files interleaved line by line (a steady mix of sources, as a
/// hub following several services sees), `\r` stripped.
pub struct Corpus {
    pub lines: Vec<String>,
    /// Whether the bench's pattern matches line `j`.
    pub matches: Vec<bool>,
    pub files: Vec<String>,
}

impl Corpus {
    /// The `*.log` files of `dir/loghub` (or of `dir`), and which lines `pattern`
    /// matches.
    pub fn load(dir: &Path, pattern: &regex::Regex) -> Corpus {
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
        let matches = lines.iter().map(|l| pattern.is_match(l)).collect();
        Corpus {
            lines,
            matches,
            files: paths
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect(),
        }
    }

    /// The corpus line measured line `k` carries.
    pub fn line(&self, k: u64) -> &str {
        &self.lines[(k % self.lines.len() as u64) as usize]
    }

    pub fn is_match(&self, k: u64) -> bool {
        self.matches[(k % self.lines.len() as u64) as usize]
    }

    /// Share of the corpus lines the pattern matches.
    pub fn match_share(&self) -> f64 {
        self.matches.iter().filter(|&&s| s).count() as f64 / self.lines.len() as f64
    }

    /// How many of the first `total` measured lines the pattern matches.
    pub fn matches_in(&self, total: u64) -> u64 {
        let n = self.lines.len() as u64;
        let per_cycle = self.matches.iter().filter(|&&s| s).count() as u64;
        let rest = (0..total % n).filter(|&j| self.matches[j as usize]).count() as u64;
        total / n * per_cycle + rest
    }
}

// ---------------------------------------------------------------------------------
// Clocks
// ---------------------------------------------------------------------------------

/// The bench's clock: an `Instant`, and the wall-clock time (nanoseconds since the Unix
/// epoch) it was taken at, to compare with the hub's `ts`.
pub fn epoch() -> (Instant, u64) {
    static EPOCH: OnceLock<(Instant, u64)> = OnceLock::new();
    *EPOCH.get_or_init(|| {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        (Instant::now(), wall)
    })
}

pub fn now_nanos() -> u64 {
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
pub fn parse_ts(ts: &str) -> Option<i64> {
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
pub struct Proc(pub Child);

impl Proc {
    pub fn spawn(cmd: &mut Command) -> Proc {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        CHILDREN.lock().unwrap().push(child.id());
        Proc(child)
    }

    pub fn pid(&self) -> u32 {
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
pub fn watchdog(name: &'static str, budget: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(budget);
        eprintln!("{name}: still running after {budget:?}; killing the children and giving up");
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
pub fn cpu_secs(pid: &str) -> f64 {
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

/// CPU seconds (utime + stime) of each thread of a process now, by thread name
/// (`comm`), summed over the threads of one name.
pub fn thread_cpu_secs(pid: u32) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let tid = task.file_name().to_string_lossy().into_owned();
        let Ok(name) = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")) else {
            continue;
        };
        *out.entry(name.trim().to_owned()).or_default() += cpu_secs(&format!("{pid}/task/{tid}"));
    }
    out
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
pub fn wait_quiet(max: Duration) -> f64 {
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
pub struct CpuWindow {
    t0: Instant,
    pids: Vec<String>,
    procs0: f64,
    self0: f64,
    machine0: f64,
}

pub struct CpuUse {
    /// The measured processes (the hub, or tail + grep).
    pub procs: f64,
    /// This bench: writer, clients.
    pub bench: f64,
    /// Everything else on the machine.
    pub others: f64,
}

impl CpuWindow {
    pub fn start(pids: &[u32]) -> CpuWindow {
        let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
        CpuWindow {
            t0: Instant::now(),
            procs0: pids.iter().map(|p| cpu_secs(p)).sum(),
            self0: cpu_secs("self"),
            machine0: machine_busy_secs(),
            pids,
        }
    }

    pub fn end(&self) -> CpuUse {
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

/// Context switches (voluntary and not) of every thread of a process so far: how often
/// it went to sleep or was put aside, i.e. roughly its wake-ups.
pub fn context_switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("status")).ok())
        .flat_map(|status| {
            status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split(':').nth(1)?.trim().parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

/// A `kB` field of /proc/PID/status (VmRSS, VmHWM), in MiB.
pub fn status_mib(pid: u32, key: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A running `supergrep serve` on one file.
pub struct Hub {
    proc: Proc,
    pub addr: String,
}

impl Hub {
    /// Starts the hub on a free port; returns once it serves and follows `file`.
    pub fn start(bin: &Path, file: &Path) -> Hub {
        Hub::start_with(bin, file, &[])
    }

    /// [`start`](Self::start) with more arguments (`--syslog-tcp ADDR`, say).
    pub fn start_with(bin: &Path, file: &Path, args: &[&str]) -> Hub {
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
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

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// `/metrics`, as name → value.
    pub fn metrics(&self) -> HashMap<String, f64> {
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

    pub fn metric(&self, name: &str) -> f64 {
        self.metrics().get(name).copied().unwrap_or(0.0)
    }
}

/// `tail -n0 -F FILE | grep --line-buffered -E PATTERN`. The two are spawned directly
/// with a pipe between them, as `sh` would, so that both are our children and are
/// killed by pid.
pub struct TailGrep {
    pub tail: Proc,
    pub grep: Proc,
}

impl TailGrep {
    /// Starts the pipeline; returns it and grep's stdout.
    pub fn start(file: &Path, pattern: &str) -> (TailGrep, ChildStdout) {
        let mut tail = Proc::spawn(
            Command::new("tail")
                .args(["-n", "0", "-F"])
                .arg(file)
                .stdin(Stdio::null())
                .stdout(Stdio::piped()),
        );
        let tail_out = tail.0.stdout.take().unwrap();
        let mut grep = Proc::spawn(
            Command::new("grep")
                .args(["--line-buffered", "-E", pattern])
                .stdin(Stdio::from(tail_out))
                .stdout(Stdio::piped()),
        );
        let grep_out = grep.0.stdout.take().unwrap();
        (TailGrep { tail, grep }, grep_out)
    }

    pub fn pids(&self) -> [u32; 2] {
        [self.tail.pid(), self.grep.pid()]
    }
}

/// Reads a receiver's stdout line by line on a thread of its own: lines that start
/// with `probe` are signalled on the returned channel, every other line goes to `line`
/// with the time it was read. The thread returns what `line` recorded when the stream
/// ends.
pub fn read_lines<F>(
    stdout: ChildStdout,
    probe: &'static str,
    mut line: F,
) -> (mpsc::Receiver<()>, std::thread::JoinHandle<Seen>)
where
    F: FnMut(&mut Seen, &str, u64) + Send + 'static,
{
    let (probe_tx, probe_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut seen = Seen::default();
        for l in BufReader::new(stdout).lines() {
            let Ok(l) = l else { break };
            let now = now_nanos();
            if l.starts_with(probe) {
                let _ = probe_tx.send(());
                continue;
            }
            seen.frames += 1;
            line(&mut seen, &l, now);
        }
        seen
    });
    (probe_rx, reader)
}

/// Receivers that start at the end of the file (`tail -n0`, supergrep's default) skip
/// what is there when they open it: appends `probe_line` until the receiver shows it,
/// then waits until no more probes arrive.
pub fn sync_probe(out: &mut File, probe_line: &str, probes: &mpsc::Receiver<()>, who: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        writeln!(out, "{probe_line}").unwrap();
        if probes.recv_timeout(Duration::from_millis(200)).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "{who} shows nothing");
    }
    while probes.recv_timeout(Duration::from_millis(300)).is_ok() {}
}

// ---------------------------------------------------------------------------------
// The writer
// ---------------------------------------------------------------------------------

pub struct Written {
    pub lines: u64,
    pub secs: f64,
    /// Largest batch, in lines (a stalled writer catches up with a big one).
    pub biggest_batch: u64,
    /// `write` calls (batches).
    pub writes: u64,
}

impl Written {
    pub fn rate(&self) -> f64 {
        self.lines as f64 / self.secs
    }
}

/// Appends `rate × dur` lines to `out`, a batch every [`TICK`]; `line(buf, k, t)`
/// writes measured line `k` (with its newline) into the batch, `t` being the append
/// time of the batch ([`now_nanos`] just before the `write`).
pub fn write_paced<F>(
    out: &mut File,
    rate: u64,
    dur: Duration,
    mut line: F,
) -> std::io::Result<Written>
where
    F: FnMut(&mut Vec<u8>, u64, u64) -> std::io::Result<()>,
{
    let total = (rate as f64 * dur.as_secs_f64()).round() as u64;
    let mut buf = Vec::with_capacity(1 << 16);
    let (mut k, mut biggest_batch, mut writes) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    let mut next = start;
    while k < total {
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64).clamp(k, total);
        if due > k {
            buf.clear();
            let t = now_nanos();
            for kk in k..due {
                line(&mut buf, kk, t)?;
            }
            out.write_all(&buf)?;
            writes += 1;
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
        writes,
    })
}

/// `(k, sgt nanos, the rest after them)` of a line the writer tagged.
pub fn parse_tag(text: &str) -> Option<(u64, u64, &str)> {
    let at = text.rfind(" sgk=")?;
    let mut parts = text[at + 1..].splitn(3, ' ');
    let k = parts.next()?.strip_prefix("sgk=")?.parse().ok()?;
    let t = parts.next()?.strip_prefix("sgt=")?.parse().ok()?;
    Some((k, t, parts.next().unwrap_or("")))
}

// ---------------------------------------------------------------------------------
// Receivers, checked the same way
// ---------------------------------------------------------------------------------

/// What one receiver saw.
#[derive(Default)]
pub struct Seen {
    pub received: u64,
    /// Lines it should not have got (not its filter, untagged, or not the line
    /// written).
    pub unexpected: u64,
    /// Lines at or before one already received.
    pub out_of_order: u64,
    pub dropped: u64,
    pub frames: u64,
    pub errors: Vec<String>,
    pub ended_early: bool,
    pub last_k: Option<u64>,
    /// Append→receive, microseconds.
    pub latency_us: Vec<u32>,
    /// Append→read by the hub's tailer (its `ts`, in whole milliseconds), microseconds.
    pub read_us: Vec<u32>,
}

impl Seen {
    /// Records measured line `k`, appended at `t` and received at `now`; `wanted`:
    /// whether the receiver's filter selects it. `read` is the hub's `ts` on the
    /// bench's clock.
    pub fn record(&mut self, k: u64, t: u64, wanted: bool, read: Option<i64>, now: u64) {
        if self.last_k.is_some_and(|last| k <= last) {
            self.out_of_order += 1;
            return;
        }
        self.last_k = Some(k);
        if !wanted {
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
pub struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(default, borrow)]
    pub lines: Vec<FrameLine<'a>>,
    #[serde(default)]
    pub count: u64,
    #[serde(default, borrow)]
    pub message: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub struct FrameLine<'a> {
    #[serde(borrow)]
    pub text: Cow<'a, str>,
    #[serde(borrow)]
    pub ts: Cow<'a, str>,
}

pub async fn next_text(ws: &mut Ws) -> Result<String, String> {
    use futures_util::StreamExt;
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

/// Connects to the hub's `/ws`, reads `hello`, subscribes to `include` (id `s`), waits
/// for `subscribed`.
pub async fn connect_client(url: String, include: Vec<String>) -> Result<Ws, String> {
    use futures_util::SinkExt;
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
        "include": include,
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

/// Reads `lines` frames until `stop` turns true, handing each line to
/// `line(seen, text, read, now)` (`read`: the hub's `ts` on the bench's clock) and
/// publishing the count of received lines in `counter`.
pub async fn run_client<F>(
    mut ws: Ws,
    counter: std::sync::Arc<AtomicU64>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    mut line: F,
) -> Seen
where
    F: FnMut(&mut Seen, &str, Option<i64>, u64),
{
    use futures_util::StreamExt;
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
                                line(&mut seen, &l.text, parse_ts(&l.ts), now);
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
pub struct Lat {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub samples: usize,
    /// Share of lines later than 20 ms.
    pub over_20ms: f64,
}

pub fn latency(mut us: Vec<u32>) -> Lat {
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

/// Waits until every counter reaches its expected value, or `limit` passes; returns
/// the seconds waited.
pub fn drain(counters: &[std::sync::Arc<AtomicU64>], expected: &[u64], limit: Duration) -> f64 {
    let start = Instant::now();
    while start.elapsed() < limit {
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

/// Delivery check over all receivers of a run.
#[derive(Default)]
pub struct Check {
    pub clients_exact: usize,
    pub expected_min: u64,
    pub expected_max: u64,
    pub missing: u64,
    pub unexpected: u64,
    pub out_of_order: u64,
    pub dropped: u64,
    pub frames: u64,
    pub ended_early: usize,
    pub errors: Vec<String>,
}

impl Check {
    pub fn of(seen: &[Seen], expected: &[u64]) -> Check {
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

    pub fn summary(&self, n: usize) -> String {
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

// ---------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------

/// The CPU a figure came from: its model and the SIMD the product can use on it
/// (memchr and aho-corasick take AVX2; the matcher's wide lanes need AVX-512 F, BW,
/// VBMI and VBMI2, else its scalar lanes run), e.g. `AMD EPYC (AVX2, no AVX-512)`.
pub fn cpu_model() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == "model name").then(|| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    format!("{model} ({})", simd())
}

fn simd() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = is_x86_feature_detected!("avx2");
        let wide = is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vbmi")
            && is_x86_feature_detected!("avx512vbmi2");
        match (avx2, wide) {
            (_, true) => "AVX2, AVX-512 VBMI2: wide lanes",
            (true, false) if is_x86_feature_detected!("avx512f") => {
                "AVX2, AVX-512 without VBMI2: scalar lanes"
            }
            (true, false) => "AVX2, no AVX-512: scalar lanes",
            (false, false) => "no AVX2: scalar lanes",
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        "not x86-64: scalar lanes"
    }
}

/// The median, the mean of the middle two for an even count (0 for none).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Checks a received line (as written, and one the corpus pattern matches) and
/// records it.
pub fn measured_line(seen: &mut Seen, text: &str, read: Option<i64>, corpus: &Corpus, now: u64) {
    let Some((k, t, rest)) = parse_tag(text) else {
        seen.unexpected += 1;
        return;
    };
    let body = &text[..text.rfind(" sgk=").unwrap_or(0)];
    let wanted = rest.is_empty() && corpus.is_match(k) && body == corpus.line(k);
    seen.record(k, t, wanted, read, now);
}

/// Today (UTC) as YYYY-MM-DD.
pub fn today() -> String {
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

/// Milliseconds with three significant digits or so.
pub fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

pub fn lat_cell(l: &Lat) -> String {
    format!("{} / {} / {}", ms(l.p50), ms(l.p99), ms(l.max))
}

/// Replaces the section of `path` that starts with the line `heading` (up to the next
/// `## ` heading) by `section`, or appends it; the rest of the file stays as it is.
pub fn refresh_benchmarks_md(path: &Path, heading: &str, section: &str) -> std::io::Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let start = if old.starts_with(&format!("{heading}\n")) {
        Some(0)
    } else {
        old.find(&format!("\n{heading}\n")).map(|i| i + 1)
    };
    let new = match start {
        Some(start) => {
            let end = old[start + heading.len()..]
                .find("\n## ")
                .map_or(old.len(), |i| start + heading.len() + i + 1);
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
