//! Helpers for `tests/hub.rs`: run the real `supergrep serve` on a free loopback port,
//! talk to it over plain HTTP and WebSocket, and compute what it should send with the
//! `regex` crate.
//!
//! Nothing here waits for a fixed time to pass: every wait is for something the hub
//! says (a stderr line, an HTTP answer, a WebSocket frame), bounded by [`PATIENCE`]
//! so that a broken build fails instead of hanging.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use regex::{Regex, RegexBuilder};
use supergrep::protocol::{ServerMsg, WireLine};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Generous: CI machines are slow and busy. Tests never assert on timing; this only
/// bounds how long a broken build can hang.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_supergrep"));
    cmd.env("SUPERGREP_LOG", "debug")
        .env_remove("SUPERGREP_TOKEN")
        .env_remove("NO_COLOR");
    cmd
}

/// The `host` of local streams, as the hub names it.
pub fn host() -> String {
    supergrep::line::local_hostname()
}

/// The stream id of a local file: `host:path`.
pub fn stream_id(path: &Path) -> String {
    format!("{}:{}", host(), path.display())
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

/// A port nobody listened on a moment ago (the caller retries if someone takes it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `supergrep serve`.
pub struct Hub {
    pub child: Child,
    pub port: u16,
    /// The token clients must send, if any.
    pub token: Option<String>,
    stderr: Receiver<String>,
    pub stderr_seen: Vec<String>,
}

impl Hub {
    /// Starts `supergrep serve --listen 127.0.0.1:PORT ARGS…` on a free port and waits
    /// until it answers `/healthz` and follows every file of `follows`. A `--token` in
    /// `args` is used for the hub's own endpoints.
    pub fn start(args: &[&str], follows: &[&Path]) -> Hub {
        let token = args
            .windows(2)
            .find(|w| w[0] == "--token")
            .map(|w| w[1].to_owned());
        Hub::start_with_token(args, follows, token.as_deref())
    }

    /// [`start`](Self::start) for a hub whose token comes from elsewhere (its config).
    pub fn start_with_token(args: &[&str], follows: &[&Path], token: Option<&str>) -> Hub {
        for _ in 0..10 {
            if let Some(hub) = Hub::try_start(free_port(), args, follows, token) {
                return hub;
            }
        }
        panic!("could not start the hub on a free port");
    }

    /// Like [`start`](Self::start) on a given port (e.g. the port of a hub that was
    /// just killed), retrying while the port is still taken.
    pub fn start_on(port: u16, args: &[&str], follows: &[&Path]) -> Hub {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(hub) = Hub::try_start(port, args, follows, None) {
                return hub;
            }
            assert!(Instant::now() < deadline, "port {port} stayed taken");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `None` when the port was taken; panics on any other failure to start.
    fn try_start(port: u16, args: &[&str], follows: &[&Path], token: Option<&str>) -> Option<Hub> {
        let listen = format!("127.0.0.1:{port}");
        let mut child = bin()
            .arg("serve")
            .arg("--listen")
            .arg(&listen)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start supergrep serve");
        let stderr = line_reader(child.stderr.take().unwrap());
        let mut hub = Hub {
            child,
            port,
            token: token.map(str::to_owned),
            stderr,
            stderr_seen: Vec::new(),
        };
        // `serving http://…` is printed once the port is bound.
        let deadline = Instant::now() + PATIENCE;
        loop {
            if hub
                .stderr_seen
                .iter()
                .any(|l| l.contains("serving http://"))
            {
                break;
            }
            match hub.stderr.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => hub.stderr_seen.push(line),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = hub.child.wait();
                    let said = hub.stderr_seen.join("\n");
                    if said.contains("cannot listen") {
                        return None;
                    }
                    panic!("the hub did not start; it said:\n{said}");
                }
            }
            assert!(
                Instant::now() < deadline,
                "the hub never said it was serving; it said:\n{}",
                hub.stderr_seen.join("\n")
            );
        }
        hub.wait_healthy();
        for path in follows {
            // The tailer's debug line: `following path=/…/a.log offset=0`.
            let needle = format!("path={} ", path.display());
            hub.wait_stderr(&["following", &needle]);
        }
        // The stream is announced just after that line: wait until the hub lists it, so
        // that `hello` names every stream.
        let deadline = Instant::now() + PATIENCE;
        for path in follows {
            let id = serde_json::Value::String(stream_id(path));
            loop {
                let (status, body) = http(port, "GET", &hub.with_token("/api/streams"), &[], "");
                assert_eq!(status, 200, "/api/streams: {body}");
                let list: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
                if list.iter().any(|s| s["id"] == id) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the hub never listed {id}: {body}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Some(hub)
    }

    /// The WebSocket URL, with the token when there is one.
    pub fn url(&self) -> String {
        self.with_token(&format!("ws://127.0.0.1:{}/ws", self.port))
    }

    /// The WebSocket URL without a token.
    pub fn bare_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    /// `path` with `?token=…` when the hub has a token.
    pub fn with_token(&self, path: &str) -> String {
        match &self.token {
            Some(t) => format!("{path}?token={t}"),
            None => path.to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok((200, body)) = try_http(self.port, "GET", "/healthz", &[], "") {
                assert_eq!(body.trim(), "ok");
                return;
            }
            assert!(Instant::now() < deadline, "/healthz never answered");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until stderr has a line containing all of `needles`.
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

    /// The hub's resident set size in kB.
    pub fn rss_kb(&self) -> u64 {
        rss_kb(self.pid()).expect("VmRSS in /proc/PID/status")
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the hub to exit by itself.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the hub did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One value of `/metrics` (a metric without labels).
    pub fn metric(&self, name: &str) -> u64 {
        let (status, body) = http(self.port, "GET", "/metrics", &[], "");
        assert_eq!(status, 200);
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in /metrics:\n{body}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// Polls `/metrics` until `name` has value `want` (a bounded wait, not a timing
    /// assertion).
    pub fn wait_metric(&self, name: &str, want: u64) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let got = self.metric(name);
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} stayed {got}, expected {want}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `VmRSS` of /proc/PID/status in kB (`None` once the process is gone).
pub fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// One HTTP/1.1 request by hand; returns the status and the body.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    try_http(port, method, path, headers, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

pub fn try_http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(PATIENCE))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
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
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
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

/// Appends to a file the way a logging program does (O_APPEND, one write per call).
pub fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// `lines` joined, each ending in `\n`.
pub fn joined<S: AsRef<str>>(lines: &[S]) -> String {
    let mut s = String::new();
    for l in lines {
        s.push_str(l.as_ref());
        s.push('\n');
    }
    s
}

// ---------------------------------------------------------------------------------
// Reference filter
// ---------------------------------------------------------------------------------

/// The line filter of DESIGN §4, with the `regex` crate: any include matches (no
/// include = every line) and no exclude does.
pub struct Filter {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
}

impl Filter {
    pub fn new(include: &[&str], exclude: &[&str], ignore_case: bool) -> Filter {
        let build = |p: &&str| {
            RegexBuilder::new(p)
                .case_insensitive(ignore_case)
                .build()
                .unwrap()
        };
        Filter {
            include: include.iter().map(build).collect(),
            exclude: exclude.iter().map(build).collect(),
        }
    }

    pub fn matches(&self, line: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|r| r.is_match(line)))
            && !self.exclude.iter().any(|r| r.is_match(line))
    }

    /// Highlight spans: every non-empty hit of every include pattern, `[start, end)`
    /// in characters, sorted, without repeats.
    pub fn spans(&self, line: &str) -> Vec<[usize; 2]> {
        let chars = |byte: usize| line[..byte].chars().count();
        let mut spans: Vec<[usize; 2]> = self
            .include
            .iter()
            .flat_map(|r| r.find_iter(line))
            .filter(|m| !m.is_empty())
            .map(|m| [chars(m.start()), chars(m.end())])
            .collect();
        spans.sort_unstable();
        spans.dedup();
        spans
    }

    /// The lines of `written` this filter keeps, with their index in `written`.
    pub fn select<'a, S: AsRef<str>>(&self, written: &'a [S]) -> Vec<(usize, &'a str)> {
        written
            .iter()
            .map(AsRef::as_ref)
            .enumerate()
            .filter(|(_, l)| self.matches(l))
            .collect()
    }
}

// ---------------------------------------------------------------------------------
// WebSocket client
// ---------------------------------------------------------------------------------

pub type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects; the error is the HTTP status when the hub refused the upgrade.
pub async fn try_connect(url: &str, headers: &[(&str, &str)]) -> Result<Ws, u16> {
    let mut request = url.into_client_request().unwrap();
    for (k, v) in headers {
        request.headers_mut().insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    match tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(request)).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => Err(resp.status().as_u16()),
        Ok(Err(e)) => panic!("connect {url}: {e}"),
        Err(_) => panic!("connect {url}: no answer"),
    }
}

/// A WebSocket client of the hub. Messages read while looking for something else are
/// kept, in order, for the next read.
pub struct Client {
    pub ws: Ws,
    pub hello: ServerMsg,
    stash: VecDeque<ServerMsg>,
}

impl Client {
    pub async fn connect(hub: &Hub) -> Client {
        Client::connect_url(&hub.url(), &[]).await
    }

    /// Connects and reads the first message, which must be `hello`.
    pub async fn connect_url(url: &str, headers: &[(&str, &str)]) -> Client {
        let ws = try_connect(url, headers)
            .await
            .unwrap_or_else(|status| panic!("{url} refused the upgrade: HTTP {status}"));
        Client::from_ws(ws).await
    }

    pub async fn from_ws(ws: Ws) -> Client {
        let mut client = Client {
            ws,
            hello: ServerMsg::Subscribed { id: String::new() },
            stash: VecDeque::new(),
        };
        let first = client.recv().await;
        assert!(
            matches!(first, ServerMsg::Hello { .. }),
            "first message: {first:?}"
        );
        client.hello = first;
        client
    }

    pub async fn send_text(&mut self, text: String) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    pub async fn send(&mut self, msg: serde_json::Value) {
        self.send_text(msg.to_string()).await;
    }

    /// The next frame of any kind (pings and pongs skipped), `None` when the
    /// connection ended.
    pub async fn frame(&mut self) -> Option<Message> {
        loop {
            let next = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("no frame from the hub");
            match next {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(m)) => return Some(m),
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// The next message (from the stash first).
    pub async fn recv(&mut self) -> ServerMsg {
        if let Some(m) = self.stash.pop_front() {
            return m;
        }
        match self.frame().await {
            Some(Message::Text(t)) => serde_json::from_str(t.as_str())
                .unwrap_or_else(|e| panic!("not a server message ({e}): {t}")),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// Reads until a message `want` picks; the others are kept for later.
    pub async fn recv_where(&mut self, want: impl Fn(&ServerMsg) -> bool) -> ServerMsg {
        let mut skipped = Vec::new();
        loop {
            let m = self.recv().await;
            if want(&m) {
                // Put back what came before, in order.
                for s in skipped.into_iter().rev() {
                    self.stash.push_front(s);
                }
                return m;
            }
            skipped.push(m);
        }
    }

    /// Sends a subscribe and waits for its `subscribed` (panics on an error reply).
    pub async fn subscribe(&mut self, msg: serde_json::Value) {
        let id = msg["id"].as_str().unwrap().to_owned();
        self.send(msg).await;
        let reply = self
            .recv_where(|m| match m {
                ServerMsg::Subscribed { id: i } => *i == id,
                ServerMsg::Error { .. } => true,
                _ => false,
            })
            .await;
        assert_eq!(reply, ServerMsg::Subscribed { id }, "subscribe failed");
    }

    /// Reads until every id of `ids` received a line with text `end`. Returns the
    /// lines per id and every other message, in order of arrival.
    pub async fn lines_until(
        &mut self,
        ids: &[&str],
        end: &str,
    ) -> (HashMap<String, Vec<WireLine>>, Vec<ServerMsg>) {
        let mut lines: HashMap<String, Vec<WireLine>> =
            ids.iter().map(|i| (i.to_string(), Vec::new())).collect();
        let mut others = Vec::new();
        let done = |lines: &HashMap<String, Vec<WireLine>>| {
            ids.iter().all(|i| lines[*i].iter().any(|l| l.text == end))
        };
        while !done(&lines) {
            match self.recv().await {
                ServerMsg::Lines { id, lines: batch } => {
                    lines.entry(id).or_default().extend(batch);
                }
                other => others.push(other),
            }
        }
        (lines, others)
    }
}

/// A `subscribe` request.
pub fn subscribe(id: &str, include: &[&str]) -> serde_json::Value {
    serde_json::json!({"type": "subscribe", "id": id, "include": include})
}
