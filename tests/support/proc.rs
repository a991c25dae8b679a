//! Child processes (the real `supergrep` binary above all) whose stderr, and stdout
//! when asked, are read line by line on threads while they run: wait for what they
//! say, send them signals, wait for them to exit. A [`Proc`] is killed (SIGKILL) when
//! dropped, so a failing test leaves nothing running.
//!
//! Every wait here is bounded by [`PATIENCE`] (or a limit the caller gives) and is for
//! something the program says or does; none is a timing assertion.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use super::wait::PATIENCE;

/// `supergrep` with debug logging (the tailer says `following path=… offset=…`),
/// without a token or colour setting inherited from the environment.
pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_supergrep"));
    cmd.env("SUPERGREP_LOG", "debug")
        .env_remove("SUPERGREP_TOKEN")
        .env_remove("NO_COLOR");
    cmd
}

/// `supergrep ARGS…` with stdout and stderr read line by line.
pub fn supergrep(args: &[&str]) -> Proc {
    let mut cmd = bin();
    cmd.args(args);
    Proc::spawn_reading_stdout("supergrep", cmd)
}

/// [`supergrep`] run in `dir` (relative paths in `args` are relative to it).
pub fn supergrep_in(dir: &Path, args: &[&str]) -> Proc {
    let mut cmd = bin();
    cmd.args(args).current_dir(dir);
    Proc::spawn_reading_stdout("supergrep", cmd)
}

/// How a program that was run to its end ended: exit code (-1 for a signal) and
/// everything it wrote.
pub struct Exited {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// Runs `cmd` with stdin empty until it exits by itself, reading stdout and stderr
/// meanwhile; kills it and panics (naming `what`) if it has not ended within
/// [`PATIENCE`].
pub fn run_to_exit(mut cmd: Command, what: &str) -> Exited {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let slurp = |mut s: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf);
            buf
        })
    };
    let out = slurp(Box::new(child.stdout.take().unwrap()));
    let err = slurp(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Exited {
        code: status.code().unwrap_or(-1),
        stdout: out.join().unwrap(),
        stderr: String::from_utf8_lossy(&err.join().unwrap()).into_owned(),
    }
}

/// Sends the lines of `stream` to `tx` from a thread of its own, until either ends.
/// Reading stops at invalid UTF-8: a test that reads supergrep's output line by line
/// also checks that it is UTF-8.
pub fn read_lines_into(stream: impl Read + Send + 'static, tx: Sender<String>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
}

/// Reads `stream` line by line on a thread of its own.
pub fn line_reader(stream: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    read_lines_into(stream, tx);
    rx
}

/// What becomes of a child's stdout.
enum Stdout {
    Discarded,
    /// Read line by line: [`Proc::lines`] and friends.
    Lines,
    /// Piped and left in `child.stdout` for the caller.
    Raw,
}

/// A running child process whose stderr is read line by line; killed when dropped.
pub struct Proc {
    pub child: Child,
    /// Names the process in failure messages.
    pub label: String,
    stdout: Option<Receiver<String>>,
    stderr: Receiver<String>,
    /// Every stderr line read so far, in order.
    pub stderr_seen: Vec<String>,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Starts `cmd` with stdin closed, stdout discarded and stderr read on a thread.
    pub fn spawn(label: &str, cmd: Command) -> Proc {
        Proc::spawn_with(label, cmd, Stdout::Discarded, Stdio::null())
    }

    /// [`spawn`](Self::spawn), with stdout read line by line too.
    pub fn spawn_reading_stdout(label: &str, cmd: Command) -> Proc {
        Proc::spawn_with(label, cmd, Stdout::Lines, Stdio::null())
    }

    /// [`spawn_reading_stdout`](Self::spawn_reading_stdout), with stdin a pipe left in
    /// `child.stdin` for the caller to write (and close).
    pub fn spawn_writing_stdin(label: &str, cmd: Command) -> Proc {
        Proc::spawn_with(label, cmd, Stdout::Lines, Stdio::piped())
    }

    /// [`spawn`](Self::spawn), with stdout a pipe left in `child.stdout` for the
    /// caller to read (or close) itself.
    pub fn spawn_raw_stdout(label: &str, cmd: Command) -> Proc {
        Proc::spawn_with(label, cmd, Stdout::Raw, Stdio::null())
    }

    fn spawn_with(label: &str, mut cmd: Command, stdout: Stdout, stdin: Stdio) -> Proc {
        let mut child = cmd
            .stdin(stdin)
            .stdout(match stdout {
                Stdout::Discarded => Stdio::null(),
                Stdout::Lines | Stdout::Raw => Stdio::piped(),
            })
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {label}: {e}"));
        let stdout = match stdout {
            Stdout::Lines => Some(line_reader(child.stdout.take().unwrap())),
            Stdout::Discarded | Stdout::Raw => None,
        };
        let stderr = line_reader(child.stderr.take().unwrap());
        Proc {
            child,
            label: label.to_owned(),
            stdout,
            stderr,
            stderr_seen: Vec::new(),
            status: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    // -- stderr ---------------------------------------------------------------------

    /// Takes what stderr said so far without waiting.
    pub fn poll_stderr(&mut self) {
        while let Ok(line) = self.stderr.try_recv() {
            self.stderr_seen.push(line);
        }
    }

    /// Everything stderr said so far, one string.
    pub fn stderr_text(&mut self) -> String {
        self.poll_stderr();
        self.stderr_seen.join("\n")
    }

    /// How many stderr lines so far contain every one of `needles`.
    pub fn stderr_count(&mut self, needles: &[&str]) -> usize {
        self.poll_stderr();
        self.stderr_seen
            .iter()
            .filter(|l| has_all(l, needles))
            .count()
    }

    /// Waits until `n` stderr lines (in all, those read before included) contain every
    /// one of `needles`; returns the last of them. `Err(everything said)` when stderr
    /// ended (the process is gone) first.
    fn wait_stderr_or_end(&mut self, needles: &[&str], n: usize) -> Result<String, String> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let found: Vec<&String> = self
                .stderr_seen
                .iter()
                .filter(|l| has_all(l, needles))
                .collect();
            if found.len() >= n {
                return Ok(found[n - 1].clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => self.stderr_seen.push(line),
                Err(RecvTimeoutError::Disconnected) => return Err(self.stderr_seen.join("\n")),
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{} never said {needles:?} ({n} times); it said:\n{}",
                    self.label,
                    self.stderr_seen.join("\n")
                ),
            }
        }
    }

    /// Waits until `n` stderr lines (in all) contain every one of `needles`; returns
    /// the last of them.
    pub fn wait_stderr_n(&mut self, needles: &[&str], n: usize) -> String {
        self.wait_stderr_or_end(needles, n).unwrap_or_else(|said| {
            panic!(
                "{} ended without saying {needles:?} ({n} times); it said:\n{said}",
                self.label
            )
        })
    }

    /// Waits until a stderr line (one read before included) contains every one of
    /// `needles`; returns it.
    pub fn wait_stderr(&mut self, needles: &[&str]) -> String {
        self.wait_stderr_n(needles, 1)
    }

    /// Waits until stderr says `needles`, or the process ends first: then
    /// `Err(everything it said)`.
    pub fn wait_stderr_unless_ended(&mut self, needles: &[&str]) -> Result<String, String> {
        self.wait_stderr_or_end(needles, 1)
    }

    /// Waits for supergrep's debug line `following path=PATH offset=…` (PATH as given
    /// on its command line): the file is open, what is appended now will be read.
    pub fn wait_following(&mut self, path: &Path) -> String {
        let needle = format!("path={} ", path.display());
        self.wait_stderr(&["following", &needle])
    }

    // -- signals and exit -----------------------------------------------------------

    /// Sends a signal by name (`TERM`, `KILL`, …) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {} failed", self.label);
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        if self.status.is_some() {
            return false;
        }
        match self.child.try_wait().unwrap() {
            Some(s) => {
                self.status = Some(s);
                false
            }
            None => true,
        }
    }

    /// Waits up to `patience` for the process to exit by itself; then reads the rest
    /// of stderr (its pipe closes with the process).
    fn wait_exit_within(&mut self, patience: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + patience;
        while self.running() {
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let rest_until = Instant::now() + Duration::from_secs(5);
        while let Ok(line) = self
            .stderr
            .recv_timeout(rest_until.saturating_duration_since(Instant::now()))
        {
            self.stderr_seen.push(line);
        }
        self.status
    }

    /// Waits for the process to exit by itself (bounded by [`PATIENCE`]).
    pub fn wait_exit(&mut self) -> ExitStatus {
        match self.wait_exit_within(PATIENCE) {
            Some(status) => status,
            None => {
                let said = self.stderr_text();
                panic!("{} did not exit; it said:\n{said}", self.label);
            }
        }
    }

    /// Its exit code if it exits by itself within `patience` (-1 for a signal),
    /// `None` if it is still running then.
    pub fn exit_code_within(&mut self, patience: Duration) -> Option<i32> {
        self.wait_exit_within(patience)
            .map(|s| s.code().unwrap_or(-1))
    }

    /// SIGKILL, and wait until the process is gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        if let Ok(s) = self.child.wait() {
            self.status = Some(s);
        }
    }

    // -- stdout (started with `spawn_reading_stdout`) --------------------------------

    fn stdout(&self) -> &Receiver<String> {
        self.stdout
            .as_ref()
            .unwrap_or_else(|| panic!("{}: stdout is not read", self.label))
    }

    /// Waits for `n` more stdout lines.
    pub fn lines(&mut self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout().recv_timeout(left) {
                Ok(line) => got.push(line),
                Err(_) => panic!(
                    "expected {n} stdout lines, got {}: {got:#?}\nstderr:\n{}",
                    got.len(),
                    self.stderr_text()
                ),
            }
        }
        got
    }

    /// Stdout lines up to and including the first one that ends with `end`.
    pub fn lines_until(&mut self, end: &str) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout().recv_timeout(left) {
                Ok(line) => {
                    let last = line.ends_with(end);
                    got.push(line);
                    if last {
                        return got;
                    }
                }
                Err(_) => panic!("stdout never said {end:?}; got {got:#?}"),
            }
        }
    }

    /// Stdout lines that arrive within `quiet` of each other, until none do (with
    /// `Duration::ZERO`: what has arrived, without waiting).
    pub fn drain(&mut self, quiet: Duration) -> Vec<String> {
        let mut got = Vec::new();
        while let Ok(line) = self.stdout().recv_timeout(quiet) {
            got.push(line);
        }
        got
    }

    /// Waits for the process to exit by itself; returns its status code and the rest
    /// of stdout.
    pub fn finish(mut self) -> (i32, Vec<String>) {
        let status = self.wait_exit();
        let rest: Vec<String> = self.stdout().iter().collect();
        (status.code().unwrap_or(-1), rest)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn has_all(line: &str, needles: &[&str]) -> bool {
    needles.iter().all(|n| line.contains(n))
}
