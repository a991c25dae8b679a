//! Helpers for `tests/agent.rs` and `tests/syslog.rs`: run the real `supergrep`
//! binary (hub and agents) on loopback ports, watch what they say on stderr, talk to
//! the hub over HTTP and WebSocket, and stand between an agent and its hub with a TCP
//! proxy that can hold back the hub's answers or cut the connection.
//!
//! The tests are written synchronously: the WebSocket client runs on a thread of its
//! own and hands the hub's messages over a channel. Every wait is for something the
//! programs say or send, bounded by [`PATIENCE`] so that a broken build fails instead of
//! hanging; nothing asserts on how long anything took.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use supergrep::protocol::{ServerMsg, WireLine};
use tokio_tungstenite::tungstenite::Message;

/// Generous: CI machines are slow and busy. Only bounds how long a broken build can
/// hang; never a timing assertion.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// `supergrep` with debug logging (the tailer says `following … path=…`), without a
/// token or colour settings inherited from the environment.
pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_supergrep"));
    cmd.env("SUPERGREP_LOG", "debug")
        .env_remove("SUPERGREP_TOKEN")
        .env_remove("NO_COLOR");
    cmd
}

/// This machine's host name, as `gethostname(2)` gives it.
pub fn hostname() -> String {
    supergrep::line::local_hostname()
}

/// The host name without its domain (what RFC 3164 senders put in a message).
pub fn short_hostname() -> String {
    hostname().split('.').next().unwrap_or_default().to_owned()
}

/// A TCP port nobody listened on a moment ago (callers retry if someone takes it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Reads `stream` line by line on a thread of its own.
pub fn line_reader(stream: impl Read + Send + 'static) -> Receiver<String> {
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

/// Appends to a file the way a logging program does (O_APPEND, one write per call).
pub fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Polls `done` every 20 ms until it holds; panics with `what` after [`PATIENCE`].
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------

/// A child process whose stderr is read line by line; killed (SIGKILL) when dropped.
pub struct Proc {
    pub child: Child,
    pub label: String,
    stderr: Receiver<String>,
    pub stderr_seen: Vec<String>,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Starts `cmd` with stdin and stdout closed and stderr read on a thread.
    pub fn spawn(label: &str, mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {label}: {e}"));
        let stderr = line_reader(child.stderr.take().unwrap());
        Proc {
            child,
            label: label.to_owned(),
            stderr,
            stderr_seen: Vec::new(),
            status: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

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
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .count()
    }

    /// Waits until `n` stderr lines (in all) contain every one of `needles`; returns
    /// the last of them.
    pub fn wait_stderr_n(&mut self, needles: &[&str], n: usize) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let found: Vec<&String> = self
                .stderr_seen
                .iter()
                .filter(|l| needles.iter().all(|x| l.contains(x)))
                .collect();
            if found.len() >= n {
                return found[n - 1].clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => self.stderr_seen.push(line),
                Err(_) => panic!(
                    "{} never said {needles:?} ({n} times); it said:\n{}",
                    self.label,
                    self.stderr_seen.join("\n")
                ),
            }
        }
    }

    /// Waits until a stderr line contains every one of `needles`.
    pub fn wait_stderr(&mut self, needles: &[&str]) -> String {
        self.wait_stderr_n(needles, 1)
    }

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

    /// Waits for the process to exit by itself (bounded by [`PATIENCE`]).
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        while self.running() {
            if Instant::now() >= deadline {
                let said = self.stderr_text();
                panic!("{} did not exit; it said:\n{said}", self.label);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let status = self.status.unwrap();
        // The rest of stderr: the pipe is closed once the process is gone.
        let rest_until = Instant::now() + Duration::from_secs(5);
        while let Ok(line) = self
            .stderr
            .recv_timeout(rest_until.saturating_duration_since(Instant::now()))
        {
            self.stderr_seen.push(line);
        }
        status
    }

    /// SIGKILL, and wait until the process is gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        if let Ok(s) = self.child.wait() {
            self.status = Some(s);
        }
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

// ---------------------------------------------------------------------------------
// The hub
// ---------------------------------------------------------------------------------

/// A running `supergrep serve`.
pub struct Hub {
    pub proc: Proc,
    pub port: u16,
    pub token: Option<String>,
    /// Started with `--tls-cert`: https:// and wss:// only.
    pub tls: bool,
}

impl Hub {
    /// `supergrep serve --listen 127.0.0.1:PORT ARGS…` on a free port; waits until it
    /// serves and answers `/healthz`.
    pub fn start(args: &[&str]) -> Hub {
        for _ in 0..20 {
            let port = free_port();
            if let Some(hub) = Hub::try_start(port, args) {
                return hub;
            }
        }
        panic!("could not start the hub on a free port");
    }

    /// A hub with syslog input on free ports: `(hub, udp port, tcp port)`.
    pub fn start_syslog(extra: &[&str]) -> (Hub, u16, u16) {
        for _ in 0..20 {
            // One number for both: UDP and TCP ports are separate spaces.
            let syslog = free_port();
            let addr = format!("127.0.0.1:{syslog}");
            let mut args = vec!["--syslog-udp", &addr, "--syslog-tcp", &addr];
            args.extend_from_slice(extra);
            if let Some(hub) = Hub::try_start(free_port(), &args) {
                return (hub, syslog, syslog);
            }
        }
        panic!("could not start the hub with syslog input on free ports");
    }

    /// Like [`start`](Self::start) on a given port (that of a hub just killed, say),
    /// retrying while the port is still taken.
    pub fn start_on(port: u16, args: &[&str]) -> Hub {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(hub) = Hub::try_start(port, args) {
                return hub;
            }
            assert!(Instant::now() < deadline, "port {port} stayed taken");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `None` when an address was taken; panics on any other failure to start.
    pub fn try_start(port: u16, args: &[&str]) -> Option<Hub> {
        let token = args
            .windows(2)
            .find(|w| w[0] == "--token")
            .map(|w| w[1].to_owned());
        let tls = args.contains(&"--tls-cert");
        let mut cmd = bin();
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(args);
        let mut proc = Proc::spawn("the hub", cmd);
        // `serving http(s)://…` is printed once every socket is bound.
        let banner = if tls {
            "serving https://"
        } else {
            "serving http://"
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            if proc.stderr_seen.iter().any(|l| l.contains(banner)) {
                break;
            }
            match proc.stderr.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => proc.stderr_seen.push(line),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = proc.wait_exit();
                    let said = proc.stderr_text();
                    if said.contains("cannot listen") || said.contains("in use") {
                        return None;
                    }
                    panic!("the hub did not start; it said:\n{said}");
                }
            }
            assert!(
                Instant::now() < deadline,
                "the hub never said it was serving; it said:\n{}",
                proc.stderr_text()
            );
        }
        let hub = Hub {
            proc,
            port,
            token,
            tls,
        };
        if tls {
            return Some(hub);
        }
        wait_until(
            "/healthz answers ok",
            || matches!(try_http(port, "GET", "/healthz"), Ok((200, b)) if b.trim() == "ok"),
        );
        Some(hub)
    }

    /// The URL agents are given (`--hub`); a TLS hub by the name in its certificate.
    pub fn agent_url(&self) -> String {
        match self.tls {
            true => format!("wss://localhost:{}", self.port),
            false => format!("ws://127.0.0.1:{}", self.port),
        }
    }

    /// The WebSocket URL for clients, with the token when there is one.
    pub fn ws_url(&self) -> String {
        self.with_token(&format!("ws://127.0.0.1:{}/ws", self.port))
    }

    pub fn with_token(&self, path: &str) -> String {
        match &self.token {
            Some(t) => format!("{path}?token={}", percent_encode(t)),
            None => path.to_owned(),
        }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        try_http(self.port, "GET", &self.with_token(path))
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// `/metrics` as text.
    pub fn metrics(&self) -> String {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200, "/metrics: {body}");
        body
    }

    /// One sample of `/metrics`, by its full name (labels included, if any).
    pub fn metric(&self, name: &str) -> Option<u64> {
        metric_in(&self.metrics(), name)
    }

    /// Polls `/metrics` until `name` is `want`.
    pub fn wait_metric(&self, name: &str, want: u64) {
        let mut last = None;
        wait_until(&format!("{name} = {want} (last: {last:?})"), || {
            last = self.metric(name);
            last == Some(want)
        });
    }

    /// `/api/streams`: `(id, host, path, set)` of each stream, sorted.
    pub fn streams(&self) -> Vec<(String, String, String, String)> {
        let (status, body) = self.get("/api/streams");
        assert_eq!(status, 200, "/api/streams: {body}");
        let list: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        let field = |s: &serde_json::Value, k: &str| s[k].as_str().unwrap_or_default().to_owned();
        let mut out: Vec<_> = list
            .iter()
            .map(|s| {
                (
                    field(s, "id"),
                    field(s, "host"),
                    field(s, "path"),
                    field(s, "set"),
                )
            })
            .collect();
        out.sort();
        out
    }
}

/// Every byte but ASCII letters and digits as `%XX`.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The value of the sample `name` (e.g. `supergrep_agents` or
/// `supergrep_stream_lines_total{stream="a:b"}`) in a Prometheus text page.
pub fn metric_in(page: &str, name: &str) -> Option<u64> {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// One HTTP/1.1 GET by hand; returns the status and the body.
pub fn try_http(port: u16, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(PATIENCE))?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no HTTP head in {raw:?}")))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {head:?}")))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

// ---------------------------------------------------------------------------------
// Agents
// ---------------------------------------------------------------------------------

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

    /// Waits for the tailer's `following … path=PATH offset=…` debug line.
    pub fn wait_following(&mut self, path: &Path) -> String {
        let needle = format!("path={} ", path.display());
        self.proc.wait_stderr(&["following", &needle])
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
// WebSocket client
// ---------------------------------------------------------------------------------

enum Event {
    Msg(ServerMsg),
    Closed(String),
}

/// A WebSocket client of the hub's `/ws`, driven from synchronous test code. Every
/// `lines` entry received is kept in [`lines`](Self::lines), in order of arrival.
pub struct Client {
    send: tokio::sync::mpsc::UnboundedSender<String>,
    events: Receiver<Event>,
    pub hello: ServerMsg,
    /// Messages other than `lines`, in order (read by [`recv_other`](Self::recv_other)).
    pub others: VecDeque<ServerMsg>,
    pub lines: Vec<WireLine>,
    pub closed: Option<String>,
}

impl Client {
    /// Connects and reads `hello`.
    pub fn connect(url: &str) -> Client {
        let (send, mut outgoing) = tokio::sync::mpsc::unbounded_channel::<String>();
        let (tx, events) = mpsc::channel();
        let (ready_tx, ready) = mpsc::channel::<Result<(), String>>();
        let url = url.to_owned();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let ws = match tokio_tungstenite::connect_async(url.as_str()).await {
                    Ok((ws, _)) => ws,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("connect {url}: {e}")));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let (mut sink, mut stream) = ws.split();
                loop {
                    tokio::select! {
                        out = outgoing.recv() => match out {
                            Some(text) => {
                                if let Err(e) = sink.send(Message::text(text)).await {
                                    let _ = tx.send(Event::Closed(e.to_string()));
                                    return;
                                }
                            }
                            // The test dropped the client.
                            None => {
                                let _ = sink.close().await;
                                return;
                            }
                        },
                        msg = stream.next() => match msg {
                            Some(Ok(Message::Text(t))) => {
                                let msg = serde_json::from_str(t.as_str())
                                    .unwrap_or_else(|e| panic!("not a server message ({e}): {t}"));
                                if tx.send(Event::Msg(msg)).is_err() {
                                    return;
                                }
                            }
                            Some(Ok(Message::Close(c))) => {
                                let _ = tx.send(Event::Closed(format!("close frame {c:?}")));
                                return;
                            }
                            Some(Ok(_)) => {}
                            Some(Err(e)) => {
                                let _ = tx.send(Event::Closed(e.to_string()));
                                return;
                            }
                            None => {
                                let _ = tx.send(Event::Closed("end of stream".into()));
                                return;
                            }
                        },
                    }
                }
            });
        });
        match ready.recv_timeout(PATIENCE) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => panic!("no WebSocket connection"),
        }
        let mut client = Client {
            send,
            events,
            hello: ServerMsg::Subscribed { id: String::new() },
            others: VecDeque::new(),
            lines: Vec::new(),
            closed: None,
        };
        let first = client.next_event(PATIENCE).expect("no hello from the hub");
        assert!(
            matches!(first, ServerMsg::Hello { .. }),
            "first message: {first:?}"
        );
        client.hello = first;
        client
    }

    /// The next message as it comes (a `lines` one is also added to `lines`).
    fn next_event(&mut self, within: Duration) -> Option<ServerMsg> {
        match self.events.recv_timeout(within) {
            Ok(Event::Msg(m)) => {
                if let ServerMsg::Lines { lines, .. } = &m {
                    self.lines.extend(lines.iter().cloned());
                }
                Some(m)
            }
            Ok(Event::Closed(why)) => {
                self.closed = Some(why);
                None
            }
            Err(_) => None,
        }
    }

    /// Reads what has arrived within `within`; keeps non-`lines` messages in `others`.
    fn pump(&mut self, within: Duration) -> bool {
        match self.next_event(within) {
            Some(ServerMsg::Lines { .. }) => true,
            Some(other) => {
                self.others.push_back(other);
                true
            }
            None => false,
        }
    }

    pub fn send_json(&mut self, msg: serde_json::Value) {
        self.send.send(msg.to_string()).expect("client thread gone");
    }

    /// Subscribes (`include` patterns, `backlog` recent matches first) and waits for
    /// `subscribed`.
    pub fn subscribe(&mut self, id: &str, include: &[&str], backlog: usize) {
        self.send_json(serde_json::json!({
            "type": "subscribe", "id": id, "include": include, "backlog": backlog,
        }));
        let reply = self.recv_other(|m| match m {
            ServerMsg::Subscribed { id: i } => i == id,
            ServerMsg::Error { .. } => true,
            _ => false,
        });
        assert_eq!(
            reply,
            ServerMsg::Subscribed { id: id.into() },
            "subscribe failed"
        );
    }

    /// Waits for a message other than `lines` that `want` picks (taking it out of
    /// `others`).
    pub fn recv_other(&mut self, want: impl Fn(&ServerMsg) -> bool) -> ServerMsg {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(i) = self.others.iter().position(&want) {
                return self.others.remove(i).unwrap();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if !self.pump(left) {
                panic!(
                    "the hub never sent the message awaited (closed: {:?}); others: {:#?}",
                    self.closed, self.others
                );
            }
        }
    }

    /// Reads until `done(lines so far)` holds.
    pub fn wait_lines(&mut self, what: &str, done: impl Fn(&[WireLine]) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done(&self.lines) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || (!self.pump(left) && self.closed.is_some()) {
                let tail: Vec<&str> = self
                    .lines
                    .iter()
                    .rev()
                    .take(10)
                    .map(|l| l.text.as_str())
                    .collect();
                panic!(
                    "gave up waiting for {what}: {} lines so far (last ones, newest first: {tail:#?}); closed: {:?}",
                    self.lines.len(),
                    self.closed
                );
            }
        }
    }

    /// Reads until a line with exactly `text` arrived.
    pub fn wait_text(&mut self, text: &str) -> WireLine {
        self.wait_lines(&format!("the line {text:?}"), |ls| {
            ls.iter().any(|l| l.text == text)
        });
        self.lines.iter().find(|l| l.text == text).unwrap().clone()
    }

    /// Reads whatever else arrives until the hub has been silent for `quiet` (to catch
    /// a duplicate that would come late; not a timing assertion).
    pub fn settle(&mut self, quiet: Duration) {
        while self.pump(quiet) {}
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
    pub fn start(files: Vec<(String, std::path::PathBuf)>, pause: Duration) -> Writer {
        Writer::start_from(files, pause, 1)
    }

    /// Starts numbering at `first`.
    pub fn start_from(
        files: Vec<(String, std::path::PathBuf)>,
        pause: Duration,
        first: u64,
    ) -> Writer {
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
