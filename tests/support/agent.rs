//! `supergrep agent` and what the agent tests need around it: a TCP proxy between an
//! agent and its hub that can hold back the hub's answers or cut the connection, a
//! writer of numbered lines (`web01 line 000042`), and the check that each line arrived
//! exactly once, in order.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use supergrep::protocol::WireLine;

use super::files::append;
use super::proc::{bin, Proc};

/// A running `supergrep agent`.
pub struct Agent {
    pub proc: Proc,
    pub name: String,
}

impl Agent {
    /// `supergrep agent --hub URL --name NAME ARGS… PATHS…` (not waited for).
    pub fn spawn(hub_url: &str, name: &str, paths: &[&Path], args: &[&str]) -> Agent {
        let mut cmd = bin();
        cmd.arg("agent")
            .arg("--hub")
            .arg(hub_url)
            .arg("--name")
            .arg(name)
            .args(args)
            .args(paths);
        Agent {
            proc: Proc::spawn(&format!("agent {name}"), cmd),
            name: name.to_owned(),
        }
    }

    /// [`spawn`](Self::spawn), then waits until it follows every path and is
    /// connected to the hub.
    pub fn start(hub_url: &str, name: &str, paths: &[&Path], args: &[&str]) -> Agent {
        let mut agent = Agent::spawn(hub_url, name, paths, args);
        for p in paths {
            agent.wait_following(p);
        }
        agent.wait_connected(1);
        agent
    }

    /// Waits for the tailer's `following path=PATH offset=…` debug line.
    pub fn wait_following(&mut self, path: &Path) -> String {
        self.proc.wait_following(path)
    }

    /// Waits until the agent said `connected to … as NAME` `n` times in all.
    pub fn wait_connected(&mut self, n: usize) {
        let as_name = format!("as {}", self.name);
        self.proc
            .wait_stderr_n(&["supergrep agent: connected to", &as_name], n);
    }

    pub fn connections(&mut self) -> usize {
        let as_name = format!("as {}", self.name);
        self.proc
            .stderr_count(&["supergrep agent: connected to", &as_name])
    }
}

// ---------------------------------------------------------------------------------
// A TCP proxy between an agent and its hub
// ---------------------------------------------------------------------------------

/// Forwards loopback TCP connections to `127.0.0.1:target`. It can hold back what the
/// hub sends (the agent then never hears the acknowledgements, as when they are lost
/// in the network) and cut every connection.
pub struct Proxy {
    pub port: u16,
    hold: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    /// Bytes from the hub swallowed while holding.
    pub held_bytes: Arc<AtomicU64>,
}

impl Proxy {
    pub fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hold = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let held_bytes = Arc::new(AtomicU64::new(0));
        {
            let (hold, conns, held_bytes) = (hold.clone(), conns.clone(), held_bytes.clone());
            std::thread::spawn(move || {
                for down in listener.incoming() {
                    let Ok(down) = down else { continue };
                    let Ok(up) = TcpStream::connect(("127.0.0.1", target)) else {
                        // No hub: the agent sees a closed connection, as with no proxy.
                        continue;
                    };
                    let _ = down.set_nodelay(true);
                    let _ = up.set_nodelay(true);
                    {
                        let mut c = conns.lock().unwrap();
                        c.push(down.try_clone().unwrap());
                        c.push(up.try_clone().unwrap());
                    }
                    // Agent → hub: always forwarded.
                    let (mut from, mut to) = (down.try_clone().unwrap(), up.try_clone().unwrap());
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Write);
                    });
                    // Hub → agent: swallowed while holding.
                    let (mut from, mut to) = (up, down);
                    let (hold, held_bytes) = (hold.clone(), held_bytes.clone());
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        loop {
                            let n = match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            if hold.load(Ordering::SeqCst) {
                                held_bytes.fetch_add(n as u64, Ordering::SeqCst);
                                continue;
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Write);
                    });
                }
            });
        }
        Proxy {
            port,
            hold,
            conns,
            held_bytes,
        }
    }

    /// The URL to give an agent instead of the hub's.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// From now on, what the hub sends is swallowed (until [`cut`](Self::cut)).
    pub fn hold_answers(&self) {
        self.hold.store(true, Ordering::SeqCst);
    }

    /// Cuts every connection so far (both ends see it end); new connections are
    /// forwarded both ways again.
    pub fn cut(&self) {
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
        self.hold.store(false, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------------
// Lines written and received
// ---------------------------------------------------------------------------------

/// Writes numbered lines `"{prefix} line {n:06}"` to files on a thread of its own,
/// one line per file per round, a short pause between rounds, until stopped.
pub struct Writer {
    stop: Arc<AtomicBool>,
    /// Rounds completed: lines 1..=written are in every file.
    written: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    pub fn start(files: Vec<(String, PathBuf)>, pause: Duration) -> Writer {
        Writer::start_from(files, pause, 1)
    }

    /// Starts numbering at `first`.
    pub fn start_from(files: Vec<(String, PathBuf)>, pause: Duration, first: u64) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(first - 1));
        let thread = {
            let (stop, written) = (stop.clone(), written.clone());
            std::thread::spawn(move || {
                let mut n = first;
                while !stop.load(Ordering::SeqCst) {
                    for (prefix, path) in &files {
                        append(path, &format!("{}\n", numbered(prefix, n)));
                    }
                    written.store(n, Ordering::SeqCst);
                    n += 1;
                    std::thread::sleep(pause);
                }
            })
        };
        Writer {
            stop,
            written,
            thread: Some(thread),
        }
    }

    /// The last line number written to every file so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }

    /// Stops; returns the last line number written.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.written()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The text of line `n` written for `prefix`.
pub fn numbered(prefix: &str, n: u64) -> String {
    format!("{prefix} line {n:06}")
}

/// Appends lines `range` made by [`numbered`] for `prefix` to `file`, one write each.
pub fn write_numbered(file: &Path, prefix: &str, range: std::ops::RangeInclusive<u64>) {
    for n in range {
        append(file, &format!("{}\n", numbered(prefix, n)));
    }
}

/// The line number of a text made by [`numbered`] for `prefix`.
pub fn number_of(prefix: &str, text: &str) -> Option<u64> {
    text.strip_prefix(prefix)?
        .strip_prefix(" line ")?
        .parse()
        .ok()
}

/// The numbers of `prefix`'s lines among `lines`, in order of arrival.
pub fn numbers(lines: &[WireLine], prefix: &str) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|l| number_of(prefix, &l.text))
        .collect()
}

/// Panics unless `got` is exactly `from..=to`, in order, each once; says what is
/// missing or doubled.
pub fn assert_exactly_once(what: &str, got: &[u64], from: u64, to: u64) {
    let want: Vec<u64> = (from..=to).collect();
    if got == want.as_slice() {
        return;
    }
    let mut counts = std::collections::BTreeMap::new();
    for n in got {
        *counts.entry(*n).or_insert(0u32) += 1;
    }
    let doubled: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).collect();
    let missing: Vec<_> = want.iter().filter(|n| !counts.contains_key(n)).collect();
    let extra: Vec<_> = counts.keys().filter(|n| **n < from || **n > to).collect();
    panic!(
        "{what}: expected each of {from}..={to} once, in order; got {} lines; \
         doubled (line: times): {doubled:?}; missing: {missing:?}; outside the range: {extra:?}",
        got.len()
    );
}
