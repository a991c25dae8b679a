//! Helpers shared by the integration tests: run the real `supergrep` binary and read
//! what it prints while it runs.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Generous: CI machines are slow and busy. Tests never assert on timing; this only
/// bounds how long a broken build can hang.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_supergrep"));
    cmd.env("SUPERGREP_LOG", "debug").env_remove("NO_COLOR");
    cmd
}

/// A running supergrep whose stdout and stderr are read line by line on threads.
pub struct Running {
    pub child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    pub stderr_seen: Vec<String>,
}

fn reader(stream: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Running {
    pub fn start(args: &[&str], dir: &Path) -> Running {
        let mut child = bin()
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start supergrep");
        let stdout = reader(child.stdout.take().unwrap());
        let stderr = reader(child.stderr.take().unwrap());
        Running {
            child,
            stdout,
            stderr,
            stderr_seen: Vec::new(),
        }
    }

    /// Waits until stderr has a line containing all of `needles` (e.g. the debug log
    /// `following path=… offset=…` that says a file is open).
    pub fn wait_stderr(&mut self, needles: &[&str]) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(l) = self
                .stderr_seen
                .iter()
                .find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => self.stderr_seen.push(line),
                Err(_) => panic!(
                    "stderr never said {needles:?}; it said:\n{}",
                    self.stderr_seen.join("\n")
                ),
            }
        }
    }

    /// Waits for `n` more stdout lines.
    pub fn lines(&mut self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => got.push(line),
                Err(_) => panic!("expected {n} lines, got {}: {got:#?}", got.len()),
            }
        }
        got
    }

    /// Stdout lines that arrive within `quiet` of each other, until none do.
    pub fn drain(&mut self, quiet: Duration) -> Vec<String> {
        let mut got = Vec::new();
        loop {
            match self.stdout.recv_timeout(quiet) {
                Ok(line) => got.push(line),
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => return got,
            }
        }
    }

    /// Waits for the process to exit by itself; returns its status code and the rest
    /// of stdout.
    pub fn finish(mut self) -> (i32, Vec<String>) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let rest: Vec<String> = self.stdout.iter().collect();
                return (status.code().unwrap_or(-1), rest);
            }
            assert!(Instant::now() < deadline, "supergrep did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Appends to a file the way a logging program does (O_APPEND, one write per call).
pub fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}
