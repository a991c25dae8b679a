//! The hub: the real `supergrep serve` on a free loopback port, plain or with TLS
//! (`--tls-cert`/`--tls-key`: then `https://` and `wss://` only), with its endpoints
//! read over HTTP.
//!
//! [`Hub::start`] returns once the hub is ready: it said it is serving (every socket is
//! bound), answers `/healthz` and, for [`Hub::start_following`], follows and lists each
//! file. So a test can connect and append at once, without waiting for time to pass.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::http::{http, metric_in, percent_encode, try_http};
use super::proc::{bin, Proc};
use super::wait::{wait_until, PATIENCE};
use super::{free_port, stream_id};

/// A running `supergrep serve`, killed when dropped.
pub struct Hub {
    pub proc: Proc,
    pub port: u16,
    /// The token clients must send, if any.
    pub token: Option<String>,
    /// Started with `--tls-cert`: https:// and wss:// only.
    pub tls: bool,
}

impl Hub {
    /// `supergrep serve --listen 127.0.0.1:PORT ARGS…` on a free port; waits until it
    /// serves. A `--token` in `args` is used for the hub's own endpoints.
    pub fn start(args: &[&str]) -> Hub {
        Hub::start_following(args, &[])
    }

    /// [`start`](Self::start), then waits until the hub follows every file of
    /// `follows` and lists its stream, so that `hello` names every stream.
    pub fn start_following(args: &[&str], follows: &[&Path]) -> Hub {
        Hub::start_with_token(args, follows, token_in(args).as_deref())
    }

    /// [`start_following`](Self::start_following) for a hub whose token comes from
    /// elsewhere (its config file).
    pub fn start_with_token(args: &[&str], follows: &[&Path], token: Option<&str>) -> Hub {
        for _ in 0..20 {
            if let Some(hub) = Hub::try_start_with(free_port(), args, follows, token) {
                return hub;
            }
        }
        panic!("could not start the hub on a free port");
    }

    /// [`start_following`](Self::start_following) on a given port (that of a hub just
    /// killed, say), retrying while the port is still taken.
    pub fn start_on(port: u16, args: &[&str], follows: &[&Path]) -> Hub {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(hub) = Hub::try_start_with(port, args, follows, token_in(args).as_deref()) {
                return hub;
            }
            assert!(Instant::now() < deadline, "port {port} stayed taken");
            std::thread::sleep(Duration::from_millis(100));
        }
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

    /// [`start`](Self::start) on `port`, once: `None` when an address it was to
    /// listen on was taken; panics on any other failure to start.
    pub fn try_start(port: u16, args: &[&str]) -> Option<Hub> {
        Hub::try_start_with(port, args, &[], token_in(args).as_deref())
    }

    fn try_start_with(
        port: u16,
        args: &[&str],
        follows: &[&Path],
        token: Option<&str>,
    ) -> Option<Hub> {
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
        if let Err(said) = proc.wait_stderr_unless_ended(&[banner]) {
            if said.contains("cannot listen") || said.contains("in use") {
                return None;
            }
            panic!("the hub did not start; it said:\n{said}");
        }
        let mut hub = Hub {
            proc,
            port,
            token: token.map(str::to_owned),
            tls,
        };
        for path in follows {
            hub.proc.wait_following(path);
        }
        // The helpers below speak plain HTTP only: a TLS hub is taken at its word.
        if tls {
            return Some(hub);
        }
        wait_until(
            "/healthz answers ok",
            || matches!(try_http(port, "GET", "/healthz", &[], ""), Ok((200, b)) if b.trim() == "ok"),
        );
        // The stream is announced just after the tailer's `following` line: wait until
        // the hub lists it.
        for path in follows {
            let id = stream_id(path);
            wait_until(&format!("the hub lists {id}"), || {
                let (status, body) = hub.get("/api/streams");
                assert_eq!(status, 200, "/api/streams: {body}");
                let list: Vec<Value> = serde_json::from_str(&body).unwrap();
                list.iter().any(|s| s["id"] == id.as_str())
            });
        }
        Some(hub)
    }

    /// The URL agents, `--connect` and `mark` are given; a TLS hub by the name in its
    /// certificate.
    pub fn agent_url(&self) -> String {
        match self.tls {
            true => format!("wss://localhost:{}", self.port),
            false => format!("ws://127.0.0.1:{}", self.port),
        }
    }

    /// The WebSocket URL for clients, with the token when there is one.
    pub fn ws_url(&self) -> String {
        self.with_token(&self.bare_ws_url())
    }

    /// The WebSocket URL for clients, without a token.
    pub fn bare_ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    /// The address of a page of the hub (`/`, `/?q=…`), as a browser is given it.
    pub fn http_url(&self, path_and_query: &str) -> String {
        format!("http://127.0.0.1:{}{path_and_query}", self.port)
    }

    /// `path` with `?token=…` when the hub has a token.
    pub fn with_token(&self, path: &str) -> String {
        match &self.token {
            Some(t) => format!("{path}?token={}", percent_encode(t)),
            None => path.to_owned(),
        }
    }

    /// `GET path` (with the token): the status and the body.
    pub fn get(&self, path: &str) -> (u16, String) {
        http(self.port, "GET", &self.with_token(path), &[], "")
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
        let deadline = Instant::now() + PATIENCE;
        loop {
            let got = self.metric(name);
            if got == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} stayed {got:?}, expected {want}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `/api/streams`: `(id, host, path, set)` of each stream, sorted.
    pub fn streams(&self) -> Vec<(String, String, String, String)> {
        let (status, body) = self.get("/api/streams");
        assert_eq!(status, 200, "/api/streams: {body}");
        let list: Vec<Value> = serde_json::from_str(&body).unwrap();
        let field = |s: &Value, k: &str| s[k].as_str().unwrap_or_default().to_owned();
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

    /// `POST /api/markers`.
    pub fn mark(&self, text: &str) {
        let body = serde_json::json!({ "text": text }).to_string();
        let (status, answer) = http(
            self.port,
            "POST",
            &self.with_token("/api/markers"),
            &[("Content-Type", "application/json")],
            &body,
        );
        assert_eq!(status, 202, "marker refused: {answer}");
    }

    /// The hub's resident set size in kB.
    pub fn rss_kb(&self) -> u64 {
        rss_kb(self.proc.pid()).expect("VmRSS in /proc/PID/status")
    }
}

/// The value of `--token` in `args`.
fn token_in(args: &[&str]) -> Option<String> {
    args.windows(2)
        .find(|w| w[0] == "--token")
        .map(|w| w[1].to_owned())
}

/// `VmRSS` of /proc/PID/status in kB (`None` once the process is gone).
pub fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// `supergrep serve ARGS…` limited to `limit` file descriptors (prlimit), once it
/// says it serves: for running a hub out of descriptors.
pub fn serve_with_few_descriptors(limit: u32, args: &[String]) -> Proc {
    let mut cmd = std::process::Command::new("prlimit");
    cmd.arg(format!("--nofile={limit}:{limit}"))
        .arg("--")
        .arg(bin().get_program())
        .arg("serve")
        .args(args);
    for (k, v) in bin().get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let tls = args.iter().any(|a| a == "--tls-cert");
    let mut hub = Proc::spawn("the hub", cmd);
    hub.wait_stderr(&[if tls {
        "serving https://"
    } else {
        "serving http://"
    }]);
    hub
}

/// Descriptors open in process `pid`.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// The descriptors process `pid` holds open on files under `dir`.
pub fn open_fds_under(pid: u32, dir: &std::path::Path) -> usize {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    fds.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}
