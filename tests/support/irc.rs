//! IRC for the IRC sink tests: a private `ngircd` per test on a loopback port, and a
//! tiny IRC client that sits in channels and records every line it receives, raw.
//!
//! Nothing here sleeps for a fixed time to let something happen: every wait is for an
//! event (a line from the server) and is bounded by [`PATIENCE`].

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::free_port;
use super::proc::{read_lines_into, Proc};
use super::wait::PATIENCE;

fn ngircd() -> std::path::PathBuf {
    super::tool("ngircd", "ngircd")
}

/// What the IRC sink does to a log line: control characters out, tabs to spaces.
pub fn irc_clean(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            '\t' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
}

// ---------------------------------------------------------------------------------
// ngircd
// ---------------------------------------------------------------------------------

/// How the test server is set up.
#[derive(Debug, Clone)]
pub struct IrcdOptions {
    /// `MaxNickLength`; `None` keeps ngircd's default (9).
    pub max_nick_length: Option<u32>,
    /// `(certificate, key)` PEM files: ngircd also listens with TLS, on
    /// [`Ircd::tls_port`].
    pub tls: Option<(PathBuf, PathBuf)>,
}

impl Default for IrcdOptions {
    fn default() -> Self {
        IrcdOptions {
            max_nick_length: Some(30),
            tls: None,
        }
    }
}

/// A private ngircd in the foreground on a loopback port; killed on drop.
pub struct Ircd {
    dir: tempfile::TempDir,
    pub port: u16,
    /// With [`IrcdOptions::tls`]: the TLS port (0 otherwise).
    pub tls_port: u16,
    conf: PathBuf,
    options: IrcdOptions,
    child: Option<Child>,
    /// Everything ngircd logged, over all its runs.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Ircd {
    pub fn start() -> Ircd {
        Ircd::start_with(IrcdOptions::default())
    }

    pub fn start_with(options: IrcdOptions) -> Ircd {
        let dir = tempfile::tempdir().unwrap();
        // ngircd refuses to stay root and becomes `nobody`: its pid file goes here.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::create_dir(dir.path().join("conf.d")).unwrap();
        std::fs::write(dir.path().join("motd"), "test server\n").unwrap();
        let conf = dir.path().join("ngircd.conf");
        let mut ircd = Ircd {
            dir,
            port: 0,
            tls_port: 0,
            conf,
            options,
            child: None,
            log: Arc::default(),
        };
        // A port found free may be taken before ngircd binds it: then try another.
        let mut why = String::new();
        for _ in 0..5 {
            ircd.port = free_port();
            if ircd.options.tls.is_some() {
                ircd.tls_port = free_port();
            }
            match ircd.spawn(Duration::from_secs(10)) {
                Ok(()) => return ircd,
                Err(e) => why = e,
            }
        }
        panic!("ngircd would not start: {why}");
    }

    fn write_conf(&self) {
        let d = self.dir.path().display();
        let nick_len = match self.options.max_nick_length {
            Some(n) => format!("MaxNickLength = {n}\n"),
            None => String::new(),
        };
        let conf = format!(
            "[Global]\n\
             Name = irc.test.local\n\
             Info = supergrep test server\n\
             AdminInfo1 = test\n\
             AdminInfo2 = test\n\
             AdminEMail = test@test.local\n\
             Listen = 127.0.0.1\n\
             Ports = {port}\n\
             PidFile = {d}/ngircd.pid\n\
             MotdFile = {d}/motd\n\
             [Limits]\n\
             MaxConnections = 100\n\
             MaxConnectionsIP = 0\n\
             {nick_len}\
             [Options]\n\
             PAM = no\n\
             Ident = no\n\
             DNS = no\n\
             IncludeDir = {d}/conf.d\n\
             {ssl}",
            port = self.port,
            ssl = match &self.options.tls {
                Some((cert, key)) => format!(
                    "[SSL]\nCertFile = {}\nKeyFile = {}\nPorts = {}\n",
                    cert.display(),
                    key.display(),
                    self.tls_port
                ),
                None => String::new(),
            },
        );
        std::fs::write(&self.conf, conf).unwrap();
    }

    /// Starts ngircd on `self.port` and waits until it says it is ready.
    fn spawn(&mut self, patience: Duration) -> Result<(), String> {
        self.write_conf();
        let ngircd = ngircd();
        let mut child = Command::new(&ngircd)
            .arg("-n")
            .arg("-f")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", ngircd.display()))?;
        let (tx, rx) = mpsc::channel();
        read_lines_into(child.stdout.take().unwrap(), tx.clone());
        read_lines_into(child.stderr.take().unwrap(), tx);
        let log = self.log.clone();
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in rx {
                if line.contains("ready.") {
                    let _ = ready_tx.send(());
                }
                log.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + patience;
        loop {
            match ready_rx.recv_timeout(Duration::from_millis(50)) {
                Ok(()) => {
                    self.child = Some(child);
                    return Ok(());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {}
            }
            let exited = child.try_wait().unwrap().is_some();
            if exited || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "ngircd on port {} did not get ready; it said:\n{}",
                    self.port,
                    self.log.lock().unwrap().join("\n")
                ));
            }
        }
    }

    /// Kills the server (SIGKILL: no goodbye to the clients).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (retrying while the port is busy).
    pub fn start_again(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.spawn(Duration::from_secs(10)) {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => panic!("{e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    pub fn url(&self, channel: &str) -> String {
        format!("irc://127.0.0.1:{}/{channel}", self.port)
    }
}

impl Drop for Ircd {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------------
// A test IRC client
// ---------------------------------------------------------------------------------

/// One line from the server, raw (CRLF included) and parsed.
#[derive(Debug, Clone)]
pub struct Msg {
    pub raw: Vec<u8>,
    pub prefix: String,
    pub command: String,
    pub params: Vec<String>,
}

impl Msg {
    fn parse(raw: Vec<u8>) -> Msg {
        let text = String::from_utf8_lossy(&raw).into_owned();
        let line = text.trim_end_matches(['\r', '\n']);
        let (prefix, rest) = match line.strip_prefix(':') {
            Some(r) => r.split_once(' ').unwrap_or((r, "")),
            None => ("", line),
        };
        let (head, trailing) = match rest.split_once(" :") {
            Some((h, t)) => (h, Some(t)),
            None => (rest, None),
        };
        let mut words = head.split(' ').filter(|w| !w.is_empty());
        let command = words.next().unwrap_or("").to_owned();
        let mut params: Vec<String> = words.map(str::to_owned).collect();
        params.extend(trailing.map(str::to_owned));
        Msg {
            raw,
            prefix: prefix.to_owned(),
            command,
            params,
        }
    }

    /// The nick of the sender (`nick!user@host`).
    pub fn nick(&self) -> &str {
        self.prefix.split('!').next().unwrap_or("")
    }

    pub fn param(&self, i: usize) -> &str {
        self.params.get(i).map_or("", String::as_str)
    }
}

/// A PRIVMSG to a channel: who sent it and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Said {
    pub from: String,
    pub text: String,
}

#[derive(Default)]
struct Inbox {
    msgs: Vec<Msg>,
    closed: bool,
}

/// A registered IRC client; answers PING by itself and records every line.
pub struct Client {
    pub nick: String,
    writer: Arc<Mutex<TcpStream>>,
    inbox: Arc<(Mutex<Inbox>, Condvar)>,
}

impl Client {
    /// Connects and registers as `nick`; panics if the server will not have it.
    pub fn connect(port: u16, nick: &str) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to ngircd");
        let writer = Arc::new(Mutex::new(stream.try_clone().unwrap()));
        let inbox: Arc<(Mutex<Inbox>, Condvar)> = Arc::default();
        {
            let writer = writer.clone();
            let inbox = inbox.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                loop {
                    let mut raw = Vec::new();
                    match reader.read_until(b'\n', &mut raw) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    let msg = Msg::parse(raw);
                    if msg.command == "PING" {
                        let pong = format!("PONG :{}\r\n", msg.param(0));
                        let _ = writer.lock().unwrap().write_all(pong.as_bytes());
                    }
                    let (lock, cv) = &*inbox;
                    lock.lock().unwrap().msgs.push(msg);
                    cv.notify_all();
                }
                let (lock, cv) = &*inbox;
                lock.lock().unwrap().closed = true;
                cv.notify_all();
            });
        }
        let client = Client {
            nick: nick.to_owned(),
            writer,
            inbox,
        };
        client.send(&format!("NICK {nick}"));
        client.send(&format!("USER {nick} 0 * :supergrep test client"));
        let welcome = client.wait_for("registration (001 or an error)", |m| {
            matches!(m.command.as_str(), "001" | "432" | "433" | "436" | "ERROR")
        });
        assert_eq!(
            welcome.command, "001",
            "{nick} could not register: {welcome:?}"
        );
        client
    }

    /// Sends one command (CRLF added).
    pub fn send(&self, line: &str) {
        self.writer
            .lock()
            .unwrap()
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("write to ngircd");
    }

    /// Joins `channel` and waits until the server has said who is in it.
    pub fn join(&self, channel: &str) {
        let from = self.count();
        self.send(&format!("JOIN {channel}"));
        self.wait_for_after(from, &format!("end of NAMES for {channel}"), |m| {
            m.command == "366" && m.param(1).eq_ignore_ascii_case(channel)
        });
    }

    /// Who is in `channel` now (NAMES; `@`/`+` marks removed).
    pub fn names(&self, channel: &str) -> Vec<String> {
        let from = self.count();
        self.send(&format!("NAMES {channel}"));
        self.wait_for_after(from, "end of NAMES", |m| {
            m.command == "366" && m.param(1).eq_ignore_ascii_case(channel)
        });
        self.msgs()[from..]
            .iter()
            .filter(|m| m.command == "353" && m.param(2).eq_ignore_ascii_case(channel))
            .flat_map(|m| {
                m.param(3)
                    .split(' ')
                    .filter(|n| !n.is_empty())
                    .map(|n| n.trim_start_matches(['@', '+']).to_owned())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Every line received so far.
    pub fn msgs(&self) -> Vec<Msg> {
        self.inbox.0.lock().unwrap().msgs.clone()
    }

    pub fn count(&self) -> usize {
        self.inbox.0.lock().unwrap().msgs.len()
    }

    /// PRIVMSGs to `channel` received so far, in order.
    pub fn said(&self, channel: &str) -> Vec<Said> {
        said_in(&self.msgs(), channel)
    }

    /// Waits until some line received (ever) satisfies `pred`.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&Msg) -> bool) -> Msg {
        self.wait_for_after(0, what, pred)
    }

    /// Waits until a line received after the first `from` satisfies `pred`.
    pub fn wait_for_after(&self, from: usize, what: &str, pred: impl Fn(&Msg) -> bool) -> Msg {
        let mut found = None;
        self.wait_until(what, |msgs| {
            found = msgs.iter().skip(from).find(|m| pred(m)).cloned();
            found.is_some()
        });
        found.unwrap()
    }

    /// Waits until `done` holds for everything received so far.
    pub fn wait_until(&self, what: &str, mut done: impl FnMut(&[Msg]) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        let (lock, cv) = &*self.inbox;
        let mut inbox = lock.lock().unwrap();
        loop {
            if done(&inbox.msgs) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || inbox.closed {
                let seen: Vec<String> = inbox
                    .msgs
                    .iter()
                    .map(|m| format!("{:?}", String::from_utf8_lossy(&m.raw)))
                    .collect();
                panic!(
                    "{}: never got {what}; received:\n{}",
                    self.nick,
                    seen.join("\n")
                );
            }
            inbox = cv.wait_timeout(inbox, left).unwrap().0;
        }
    }

    /// Waits until at least `n` PRIVMSGs went to `channel`; returns all of them.
    pub fn wait_said(&self, channel: &str, n: usize) -> Vec<Said> {
        self.wait_until(&format!("{n} PRIVMSGs to {channel}"), |msgs| {
            said_in(msgs, channel).len() >= n
        });
        self.said(channel)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Ok(w) = self.writer.lock() {
            let _ = w.shutdown(Shutdown::Both);
        }
    }
}

fn said_in(msgs: &[Msg], channel: &str) -> Vec<Said> {
    msgs.iter()
        .filter(|m| m.command == "PRIVMSG" && m.param(0).eq_ignore_ascii_case(channel))
        .map(|m| Said {
            from: m.nick().to_owned(),
            text: m.param(1).to_owned(),
        })
        .collect()
}

// ---------------------------------------------------------------------------------
// supergrep with --irc
// ---------------------------------------------------------------------------------

impl Proc {
    /// Waits for `file` to be open and `channel` joined: appending is safe then.
    pub fn wait_irc_ready(&mut self, file: &Path, channel: &str) {
        self.wait_following(file);
        self.wait_stderr(&["IRC: joined", channel]);
    }
}
