//! The one support library of the integration tests. Every test file says `mod support;`
//! and uses the parts it needs:
//!
//! - [`wait`]: [`PATIENCE`](wait::PATIENCE) and [`wait_until`](wait::wait_until);
//! - [`proc`]: the real `supergrep` binary (or any program) as a child process whose
//!   stderr, and stdout if asked, are read line by line on threads; signals and exit;
//! - [`files`]: writing logs as a logging program does, empty log files, fixtures;
//! - [`http`]: HTTP/1.1 by hand (the hub's endpoints, Chromium's DevTools endpoints),
//!   and reading `/metrics`;
//! - [`hub`]: `supergrep serve` on a free loopback port, plain or TLS;
//! - [`ws`]: WebSocket clients of the hub's `/ws`, async and thread-driven;
//! - [`agent`]: `supergrep agent`, a proxy that loses the hub's answers, a writer of
//!   numbered lines and the "exactly once" check;
//! - [`irc`]: a private `ngircd` and a small IRC client;
//! - [`nats`]: a real three-node NATS JetStream cluster on loopback;
//! - [`cdp`]: a headless Chromium driven over the DevTools protocol;
//! - [`tool`]: a system program the tests run (ngircd, rsyslogd, logrotate, …);
//! - [`filter`]: the line filter of DESIGN §4 with the `regex` crate, the reference
//!   the tests compare supergrep's output with.
//!
//! Nothing here waits for a fixed time to let something happen: every wait is for
//! something a program says or sends (a stderr line, an HTTP answer, a WebSocket
//! frame, an IRC message, a DOM state), bounded by [`PATIENCE`](wait::PATIENCE) so that
//! a broken build fails instead of hanging. It is never a timing assertion.
//!
//! Each test binary compiles the whole library and uses a part of it, hence
//! `allow(dead_code)`.
#![allow(dead_code)]

pub mod agent;
pub mod cdp;
pub mod files;
pub mod filter;
pub mod hostile;
pub mod http;
pub mod hub;
pub mod irc;
pub mod nats;
pub mod proc;
pub mod wait;
pub mod ws;

/// The system program `name`, found as a shell finds it, and in /usr/sbin and /sbin
/// too (daemons live there, and a user's PATH may not have them). Missing, it panics
/// with the package to install: `scripts/test` installs them all.
pub fn tool(name: &str, package: &str) -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(std::path::PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "this test needs {name}: apt-get install {package} (scripts/test installs \
                 every tool the tests use)"
            )
        })
}

/// A loopback TCP port nobody listened on a moment ago (callers retry if someone
/// takes it before they do).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// This machine's name as supergrep gives it (`{host}`, the `host` of local streams).
pub fn hostname() -> String {
    supergrep::line::local_hostname()
}

/// The host name without its domain (what RFC 3164 senders put in a message).
pub fn short_hostname() -> String {
    hostname().split('.').next().unwrap_or_default().to_owned()
}

/// The stream id of a local file: `host:path`.
pub fn stream_id(path: &std::path::Path) -> String {
    format!("{}:{}", hostname(), path.display())
}

/// A TCP connection to 127.0.0.1:`port` from the local address `ip` (another
/// loopback address than 127.0.0.1, to stand for another sender), blocking, with
/// [`PATIENCE`](wait::PATIENCE) as its read timeout.
pub fn connect_from(ip: &str, port: u16) -> std::net::TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
        socket.connect(([127, 0, 0, 1], port).into()).await.unwrap()
    });
    let stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(wait::PATIENCE)).unwrap();
    stream
}
