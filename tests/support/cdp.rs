//! A small Chrome DevTools Protocol client that drives a real headless Chromium (no
//! WebDriver), for `tests/web.rs`.
//!
//! Nothing here waits for a fixed time: every wait polls for something (a file, a DOM
//! state, an answer or event of the protocol), bounded by [`PATIENCE`] so that a broken
//! build fails instead of hanging.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::http::{http, try_http};
use super::wait::PATIENCE;
use super::ws::Ws;

/// The names Chromium goes by, looked for on `PATH` and in `/usr/bin` (unless
/// `CHROMIUM` names the browser).
const CHROMIUM_NAMES: [&str; 2] = ["chromium", "chromium-browser"];

/// The browser: `$CHROMIUM`, else `chromium` or `chromium-browser` on `PATH` or in
/// `/usr/bin`. Panics with how to get one when there is none.
pub fn chromium() -> PathBuf {
    if let Some(program) = std::env::var_os("CHROMIUM") {
        let path = PathBuf::from(program);
        assert!(
            path.is_file(),
            "CHROMIUM={} is not a file (the web UI tests need Chromium)",
            path.display()
        );
        return path;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .collect();
    for name in CHROMIUM_NAMES {
        for dir in &dirs {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "the web UI tests need Chromium: none of {CHROMIUM_NAMES:?} on PATH or in /usr/bin \
         (apt-get install chromium, or set CHROMIUM=path)"
    );
}

// ── Chromium ─────────────────────────────────────────────────────────────────

/// A headless Chromium of our own, killed on drop.
pub struct Browser {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Browser {
    pub fn start() -> Browser {
        let dir = tempfile::tempdir().expect("tempdir for the browser profile");
        let log = std::fs::File::create(dir.path().join("chromium.log")).unwrap();
        let profile = dir.path().join("profile");
        let program = chromium();
        let child = Command::new(&program)
            // Chromium leaves singleton sockets in $TMPDIR: keep them in our tempdir.
            .env("TMPDIR", dir.path())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--disable-default-apps",
                "--disable-features=Translate,MediaRouter,OptimizationHints",
                // A test page must not be slowed down as a background page would be.
                "--disable-background-timer-throttling",
                "--disable-renderer-backgrounding",
                "--disable-backgrounding-occluded-windows",
                "--window-size=1280,860",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start chromium");
        let mut browser = Browser {
            child,
            port: 0,
            dir,
        };
        let port_file = profile.join("DevToolsActivePort");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                if let Some(port) = text.lines().next().and_then(|l| l.trim().parse().ok()) {
                    browser.port = port;
                    break;
                }
            }
            if let Ok(Some(status)) = browser.child.try_wait() {
                panic!("chromium exited ({status}): {}", browser.log());
            }
            assert!(
                Instant::now() < deadline,
                "chromium never wrote DevToolsActivePort: {}",
                browser.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        browser
    }

    /// What Chromium printed (for failure messages).
    pub fn log(&self) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join("chromium.log")).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.contains("dbus") && !l.trim().is_empty())
            .collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// A new tab (with its own session storage) showing `url`.
    pub async fn new_page(&self, url: &str) -> Page {
        let (status, body) = http(self.port, "PUT", &format!("/json/new?{url}"), &[], "");
        assert_eq!(status, 200, "/json/new: {body}");
        let target: Value = serde_json::from_str(&body).unwrap();
        let ws_url = target["webSocketDebuggerUrl"].as_str().unwrap();
        Page::connect(ws_url).await
    }

    /// The first page target (Chromium opens one with `about:blank`).
    pub async fn page(&self) -> Page {
        let deadline = Instant::now() + PATIENCE;
        let ws_url = loop {
            if let Ok((200, body)) = try_http(self.port, "GET", "/json/list", &[], "") {
                let list: Vec<Value> = serde_json::from_str(&body).unwrap_or_default();
                if let Some(url) = list
                    .iter()
                    .find(|t| t["type"] == "page")
                    .and_then(|t| t["webSocketDebuggerUrl"].as_str())
                {
                    break url.to_owned();
                }
            }
            assert!(Instant::now() < deadline, "no page target in Chromium");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        Page::connect(&ws_url).await
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One page, over its own DevTools WebSocket.
pub struct Page {
    ws: Ws,
    next_id: u64,
    /// Events received while waiting for answers (the most recent ones).
    events: VecDeque<Value>,
    /// Uncaught exceptions and console / log errors of the page.
    pub problems: Vec<String>,
    /// When set, the UI's scripts and `/style.css` are answered from this directory
    /// instead of the copies embedded in the hub (see [`Page::serve_web_from`]).
    web_dir: Option<PathBuf>,
}

impl Page {
    async fn connect(ws_url: &str) -> Page {
        let (ws, _) = tokio_tungstenite::connect_async(ws_url)
            .await
            .expect("connect to the page's DevTools WebSocket");
        let mut page = Page {
            ws,
            next_id: 1,
            events: VecDeque::new(),
            problems: Vec::new(),
            web_dir: None,
        };
        page.call("Page.enable", json!({})).await;
        page.call("Runtime.enable", json!({})).await;
        page.call("Log.enable", json!({})).await;
        page
    }

    /// Sends a command and waits for its answer; panics on a protocol error.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        match self.try_call(method, params).await {
            Ok(v) => v,
            Err(e) => panic!("{method}: {e}"),
        }
    }

    pub async fn try_call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({"id": id, "method": method, "params": params});
        self.ws
            .send(Message::Text(msg.to_string().into()))
            .await
            .map_err(|e| format!("send: {e}"))?;
        let deadline = tokio::time::Instant::now() + PATIENCE * 3;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .map_err(|_| format!("no answer to {method} in time"))?;
            let frame = match next {
                Some(Ok(frame)) => frame,
                Some(Err(e)) => return Err(format!("DevTools socket: {e}")),
                None => return Err("DevTools socket closed".into()),
            };
            let Message::Text(text) = frame else { continue };
            let v: Value = serde_json::from_str(text.as_str()).map_err(|e| e.to_string())?;
            if v["id"].as_u64() == Some(id) {
                if let Some(err) = v.get("error") {
                    return Err(err.to_string());
                }
                return Ok(v["result"].clone());
            }
            if v.get("method").is_some() {
                self.note_event(v).await;
            }
        }
    }

    /// Answers the page's requests for the UI's script and styles from `dir` (e.g.
    /// `web/`), so that changes to them can be tried without rebuilding the hub. (Not
    /// the document itself: one that does not come from the network may not open a
    /// WebSocket to 127.0.0.1, under Chromium's local network access checks.)
    pub async fn serve_web_from(&mut self, dir: &Path) {
        self.web_dir = Some(dir.to_owned());
        self.call(
            "Fetch.enable",
            json!({"patterns": [
                {"urlPattern": "*.js*", "requestStage": "Request"},
                {"urlPattern": "*/style.css*", "requestStage": "Request"},
            ]}),
        )
        .await;
    }

    async fn fulfil(&mut self, v: &Value) {
        let id = v["params"]["requestId"].clone();
        let url = v["params"]["request"]["url"].as_str().unwrap_or("");
        let path = url
            .split_once("://")
            .and_then(|(_, rest)| rest.split_once('/'))
            .map(|(_, p)| p.split(['?', '#']).next().unwrap_or(""))
            .unwrap_or("");
        // The UI's files are flat in `web/`: a name without `/`.
        let file = match path {
            "style.css" => Some((path, "text/css; charset=utf-8")),
            _ if path.ends_with(".js") && !path.contains('/') => {
                Some((path, "text/javascript; charset=utf-8"))
            }
            _ => None,
        };
        let dir = self.web_dir.clone();
        let body = match (file, dir) {
            (Some((name, kind)), Some(dir)) => {
                std::fs::read(dir.join(name)).ok().map(|b| (b, kind))
            }
            _ => None,
        };
        let msg = match body {
            Some((bytes, kind)) => json!({
                "id": self.next_id, "method": "Fetch.fulfillRequest",
                "params": {"requestId": id, "responseCode": 200,
                    "responseHeaders": [{"name": "Content-Type", "value": kind}, {"name": "Cache-Control", "value": "no-cache"}],
                    "body": base64_encode(&bytes)}
            }),
            None => {
                json!({"id": self.next_id, "method": "Fetch.continueRequest", "params": {"requestId": id}})
            }
        };
        // The answer to this command is not waited for (and is ignored when it comes).
        self.next_id += 1;
        let _ = self.ws.send(Message::Text(msg.to_string().into())).await;
    }

    async fn note_event(&mut self, v: Value) {
        match v["method"].as_str() {
            Some("Fetch.requestPaused") => {
                self.fulfil(&v).await;
                return;
            }
            Some("Runtime.exceptionThrown") => {
                let d = &v["params"]["exceptionDetails"];
                let text = d["exception"]["description"]
                    .as_str()
                    .or(d["text"].as_str())
                    .unwrap_or("exception");
                self.problems.push(format!("exception: {text}"));
            }
            Some("Runtime.consoleAPICalled") if v["params"]["type"] == "error" => {
                self.problems
                    .push(format!("console.error: {}", v["params"]["args"]));
            }
            Some("Log.entryAdded") if v["params"]["entry"]["level"] == "error" => {
                let e = &v["params"]["entry"];
                self.problems.push(format!(
                    "log: {} {}",
                    e["text"],
                    e["url"].as_str().unwrap_or("")
                ));
            }
            _ => {}
        }
        self.events.push_back(v);
        if self.events.len() > 200 {
            self.events.pop_front();
        }
    }

    /// Waits for an event named `method` (one seen earlier counts) and returns it.
    pub async fn wait_event(&mut self, method: &str) -> Value {
        if let Some(i) = self.events.iter().position(|e| e["method"] == method) {
            return self.events.remove(i).unwrap();
        }
        let deadline = tokio::time::Instant::now() + PATIENCE * 3;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no {method} event in time"));
            let Some(Ok(Message::Text(text))) = next else {
                panic!("DevTools socket ended while waiting for {method}");
            };
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            if v["method"] == method {
                return v;
            }
            if v.get("method").is_some() {
                self.note_event(v).await;
            }
        }
    }

    /// Evaluates `expr` in the page (promises awaited) and returns its value.
    pub async fn eval(&mut self, expr: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        if let Some(ex) = r.get("exceptionDetails") {
            panic!(
                "evaluating {expr:?} threw: {}",
                ex["exception"]["description"]
                    .as_str()
                    .unwrap_or(&ex.to_string())
            );
        }
        r["result"]["value"].clone()
    }

    /// Polls `expr` until it is truthy; returns its value. `what` names the wait in
    /// the failure message, together with the value of `show` at that time.
    pub async fn wait_for(&mut self, what: &str, expr: &str, show: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let v = self.eval(expr).await;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return v;
            }
            if Instant::now() > deadline {
                let shown = self.eval(show).await;
                panic!(
                    "timed out waiting for {what} ({expr}); page shows: {shown}\nproblems: {:?}",
                    self.problems
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Navigates and waits until the document has loaded.
    pub async fn goto(&mut self, url: &str) {
        let r = self.call("Page.navigate", json!({"url": url})).await;
        if let Some(e) = r.get("errorText") {
            panic!("navigating to {url}: {e}");
        }
        self.wait_for(
            "the page to load",
            &format!(
                "document.readyState === 'complete' && location.href.startsWith({})",
                serde_json::to_string(url.split('?').next().unwrap()).unwrap()
            ),
            "document.readyState",
        )
        .await;
    }

    pub async fn reload(&mut self) {
        let before = self.eval("performance.timeOrigin").await;
        self.call("Page.reload", json!({"ignoreCache": true})).await;
        self.wait_for(
            "the page to reload",
            &format!("performance.timeOrigin !== {before} && document.readyState === 'complete'"),
            "document.readyState",
        )
        .await;
    }

    /// Focuses `selector`, selects what it holds and types `text` in its place as a
    /// user would (the page gets `input` events).
    pub async fn type_into(&mut self, selector: &str, text: &str) {
        let sel = serde_json::to_string(selector).unwrap();
        let found = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({sel}); if (!e) return false; e.focus(); e.select(); return true; }})()"
            ))
            .await;
        assert_eq!(found, Value::Bool(true), "no element {selector}");
        if text.is_empty() {
            self.key("Backspace").await;
        } else {
            self.call("Input.insertText", json!({"text": text})).await;
        }
    }

    /// Presses and releases one key (`" "`, `"/"`, `"c"`, `"Backspace"`, `"Escape"`).
    pub async fn key(&mut self, key: &str) {
        let (code, vk, text) = match key {
            " " => ("Space", 32, " "),
            "/" => ("Slash", 191, "/"),
            "Backspace" => ("Backspace", 8, ""),
            "Escape" => ("Escape", 27, ""),
            "Enter" => ("Enter", 13, "\r"),
            k if k.len() == 1 => {
                let c = k.chars().next().unwrap().to_ascii_uppercase();
                return self.key_with("Key", k, c as i64, k).await;
            }
            other => panic!("no key code for {other:?}"),
        };
        let mut down =
            json!({"type": "keyDown", "key": key, "code": code, "windowsVirtualKeyCode": vk});
        if !text.is_empty() {
            down["text"] = json!(text);
        }
        self.call("Input.dispatchKeyEvent", down).await;
        self.call(
            "Input.dispatchKeyEvent",
            json!({"type": "keyUp", "key": key, "code": code, "windowsVirtualKeyCode": vk}),
        )
        .await;
    }

    async fn key_with(&mut self, prefix: &str, key: &str, vk: i64, text: &str) {
        let code = format!("{prefix}{}", key.to_ascii_uppercase());
        self.call(
            "Input.dispatchKeyEvent",
            json!({"type": "keyDown", "key": key, "code": code, "windowsVirtualKeyCode": vk, "text": text}),
        )
        .await;
        self.call(
            "Input.dispatchKeyEvent",
            json!({"type": "keyUp", "key": key, "code": code, "windowsVirtualKeyCode": vk}),
        )
        .await;
    }

    /// A real mouse click in the middle of the first element matching `selector`
    /// (scrolled into view first).
    pub async fn click(&mut self, selector: &str) {
        let sel = serde_json::to_string(selector).unwrap();
        let rect = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({sel}); if (!e) return null; \
                 e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); \
                 return [r.left + Math.min(r.width / 2, 40), r.top + r.height / 2]; }})()"
            ))
            .await;
        let (x, y) = match rect.as_array() {
            Some(a) => (a[0].as_f64().unwrap(), a[1].as_f64().unwrap()),
            None => panic!("no element {selector} to click"),
        };
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            )
            .await;
        }
    }

    /// Saves a PNG of the page to `target/web-screenshots/NAME.png`; returns its path.
    pub async fn screenshot(&mut self, name: &str) -> PathBuf {
        let r = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let png = base64_decode(r["data"].as_str().expect("screenshot data"));
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/web-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// `prefers-color-scheme` as the page sees it.
    pub async fn color_scheme(&mut self, scheme: &str) {
        self.call(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": scheme}]}),
        )
        .await;
    }

    /// Makes the page `width` x `height` CSS pixels wide (as a window that size).
    pub async fn viewport(&mut self, width: u32, height: u32) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await;
    }

    /// A touch screen (`pointer: coarse`) or not.
    pub async fn touch(&mut self, enabled: bool) {
        self.call(
            "Emulation.setTouchEmulationEnabled",
            json!({"enabled": enabled, "maxTouchPoints": 5}),
        )
        .await;
    }

    /// Panics if the page threw or logged an error.
    pub fn assert_no_problems(&self) {
        assert!(
            self.problems.is_empty(),
            "the page had problems: {:#?}",
            self.problems
        );
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(s: &str) -> Vec<u8> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let Some(v) = val(c) else { continue };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
