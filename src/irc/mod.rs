//! The IRC sink: posts matches to a channel, without flooding it and without ever
//! letting a log line inject an IRC command.
//!
//! A small IRC client on tokio (registration, nick-in-use fallback, server password,
//! channel key, PING/PONG, reconnect with backoff and re-join) that takes matches
//! from its own bounded queue, like every sink. What may be posted when is decided by
//! [`flood`]: a token bucket, coalescing, and a summary line for the excess.

pub mod flood;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use crate::hub::{Delivery, SinkQueue};
use crate::output::{render_template, Format, FormatError, Markup};
use crate::shutdown::Handle;
use flood::{Flood, TokenBucket};

/// Where to post: `irc[s]://[nick[:password]@]host[:port]/#channel[?key=KEY]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IrcTarget {
    /// `ircs://`: TLS, port 6697 unless given.
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub channel: String,
    pub key: Option<String>,
    pub password: Option<String>,
    pub nick: Option<String>,
}

/// Why an IRC URL cannot be used: the URL and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("invalid IRC URL {url:?}: {problem} (want irc[s]://host[:port]/#channel)")]
pub struct IrcUrlError {
    pub url: String,
    pub problem: UrlProblem,
}

/// What is wrong with an IRC URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlProblem {
    #[error("it must start with irc:// or ircs://")]
    Scheme,
    #[error("no channel")]
    NoChannel,
    #[error("bad %-escape in the {0}")]
    BadEscape(UrlPart),
    #[error("the {0} has a control character")]
    ControlCharacter(UrlPart),
    #[error("bad port")]
    BadPort,
    #[error("no host")]
    NoHost,
    #[error("unknown parameter {0:?} (only key=)")]
    UnknownParameter(String),
    #[error("the channel name has a space, comma or control character")]
    ChannelName,
}

/// A percent-encoded part of an IRC URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlPart {
    Nick,
    Password,
    Key,
    Channel,
}

impl std::fmt::Display for UrlPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UrlPart::Nick => "nick",
            UrlPart::Password => "password",
            UrlPart::Key => "key",
            UrlPart::Channel => "channel",
        })
    }
}

impl IrcTarget {
    pub fn parse(url: &str) -> Result<IrcTarget, IrcUrlError> {
        let bad = |problem| IrcUrlError {
            url: url.to_owned(),
            problem,
        };
        Self::parse_parts(url).map_err(bad)
    }

    fn parse_parts(url: &str) -> Result<IrcTarget, UrlProblem> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("irc://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("ircs://") {
            (true, r)
        } else {
            return Err(UrlProblem::Scheme);
        };
        let (authority, channel) = rest.split_once('/').ok_or(UrlProblem::NoChannel)?;
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        // Percent-encoded as in any URL (`%23` for `#`, `%2F` for `/`, `%40` for `@`);
        // a decoded CR, LF or NUL would end the IRC command it is put in.
        let decode = |part: &str, what: UrlPart| -> Result<String, UrlProblem> {
            let text = percent_decode(part).ok_or(UrlProblem::BadEscape(what))?;
            if text.chars().any(char::is_control) {
                return Err(UrlProblem::ControlCharacter(what));
            }
            Ok(text)
        };
        let (nick, password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((n, p)) => (
                    Some(decode(n, UrlPart::Nick)?),
                    Some(decode(p, UrlPart::Password)?),
                ),
                None => (Some(decode(u, UrlPart::Nick)?), None),
            },
            None => (None, None),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => (
                h.trim_matches(['[', ']']).to_owned(),
                p.parse().map_err(|_| UrlProblem::BadPort)?,
            ),
            _ => (hostport.to_owned(), if tls { 6697 } else { 6667 }),
        };
        if host.is_empty() {
            return Err(UrlProblem::NoHost);
        }
        let (channel, query) = channel.split_once('?').unwrap_or((channel, ""));
        let mut key = None;
        for param in query.split('&').filter(|p| !p.is_empty()) {
            match param.strip_prefix("key=") {
                Some(k) => key = Some(decode(k, UrlPart::Key)?),
                None => return Err(UrlProblem::UnknownParameter(param.to_owned())),
            }
        }
        let channel = decode(channel, UrlPart::Channel)?;
        let channel = match channel.trim() {
            "" => return Err(UrlProblem::NoChannel),
            c if c.starts_with(['#', '&']) => c.to_owned(),
            c => format!("#{c}"),
        };
        if channel.contains([' ', ',', '\x07']) || channel.chars().any(char::is_control) {
            return Err(UrlProblem::ChannelName);
        }
        Ok(IrcTarget {
            tls,
            host,
            port,
            channel,
            key,
            password,
            nick,
        })
    }
}

/// `%XX` escapes decoded; `None` for a broken escape or text that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `text` for a part of an IRC URL: every byte but letters, digits and `-._~` as
/// `%XX`, so that [`IrcTarget::parse`] gives `text` back whatever it holds.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Everything about one IRC sink.
#[derive(Debug, Clone)]
pub struct IrcOptions {
    pub target: IrcTarget,
    pub nick: String,
    /// mIRC bold/colour on the matched spans.
    pub color: bool,
    /// How a match reads in the channel (a `--format` template).
    pub format: Format,
    pub rate_per_sec: f64,
    pub burst: u32,
    /// What the sink posts matches for, in summaries, e.g. `/PHP Fatal/`.
    pub label: String,
    /// For `ircs://`: whom to trust (the system's roots and any `tls_ca`).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// What the user wrote for one IRC sink (the `--irc*` flags or an `[[irc]]` table),
/// checked in one place by [`IrcOptions::new`].
pub struct IrcSettings<'a> {
    pub url: &'a str,
    pub nick: &'a str,
    pub color: bool,
    /// A template; `None`: [`IrcOptions::DEFAULT_FORMAT`].
    pub format: Option<&'a str>,
    pub rate_per_sec: f64,
    pub burst: u32,
    pub tls_ca: Option<&'a std::path::Path>,
    /// The patterns it posts matches of, for its summaries.
    pub include: &'a [String],
}

/// A setting of [`IrcSettings`] that cannot be used; [`IrcSettingsError::setting`]
/// names which.
#[derive(Debug, thiserror::Error)]
pub enum IrcSettingsError {
    #[error(transparent)]
    Url(#[from] IrcUrlError),
    #[error(transparent)]
    Format(#[from] IrcFormatError),
    /// `ircs://`, and no TLS client could be made (no roots, a bad `tls_ca`).
    #[error("{host}: {error}")]
    Tls {
        host: String,
        error: crate::tls::TlsError,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrcSetting {
    Url,
    Format,
}

impl IrcSettingsError {
    /// The setting to name in the message (TLS trust goes with the URL).
    pub fn setting(&self) -> IrcSetting {
        match self {
            IrcSettingsError::Url(_) | IrcSettingsError::Tls { .. } => IrcSetting::Url,
            IrcSettingsError::Format(_) => IrcSetting::Format,
        }
    }
}

impl IrcOptions {
    pub const DEFAULT_FORMAT: &'static str = "{host} {path}: {text}";

    pub fn new(s: IrcSettings<'_>) -> Result<IrcOptions, IrcSettingsError> {
        let target = IrcTarget::parse(s.url)?;
        let format = template(s.format.unwrap_or(Self::DEFAULT_FORMAT))?;
        let tls = match target.tls {
            true => Some(crate::tls::client_config(s.tls_ca).map_err(|error| {
                IrcSettingsError::Tls {
                    host: target.host.clone(),
                    error,
                }
            })?),
            false => None,
        };
        Ok(IrcOptions {
            target,
            tls,
            nick: s.nick.to_owned(),
            color: s.color,
            format,
            rate_per_sec: s.rate_per_sec,
            burst: s.burst,
            label: format!("/{}/", s.include.join("|")),
        })
    }
}

/// Why a format cannot be IRC's.
#[derive(Debug, thiserror::Error)]
pub enum IrcFormatError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("{0:?} is not a template: IRC takes one such as '{{host}}: {{text}}'")]
    NotATemplate(String),
}

/// An IRC message format: a template only (text and JSON are for terminals).
pub fn template(format: &str) -> Result<Format, IrcFormatError> {
    match Format::parse(format)? {
        Format::Template(pieces) => Ok(Format::Template(pieces)),
        _ => Err(IrcFormatError::NotATemplate(format.to_owned())),
    }
}

/// IRC's limit for a whole line, CRLF included.
const IRC_LINE: usize = 512;
const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// After the input ended (`--no-follow`), how long unposted matches may wait.
const GIVE_UP_AFTER: Duration = Duration::from_secs(15);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Posts what arrives in `queue` until it closes, then whatever is still waiting;
/// or, told to stop by `shutdown` (the hub's), says QUIT at once and ends.
pub async fn run(options: IrcOptions, queue: Arc<SinkQueue>, shutdown: Option<Handle>) {
    let mut sink = Sink::new(options, shutdown);
    sink.run(&queue).await;
}

/// One connection's reading half, as a task: lines arrive through a channel (which
/// `select!` can wait on without losing half-read lines).
struct Connection {
    lines: mpsc::Receiver<String>,
    writer: tokio::io::WriteHalf<Box<dyn crate::tls::Stream>>,
    /// The reading task: ended with the connection (see `Drop`), so the socket
    /// closes when the sink lets go of it, lost or at the hub's stop.
    reader: tokio::task::JoinHandle<()>,
    /// The nick we asked for, and how many were refused before it.
    base_nick: String,
    nick: String,
    nick_attempts: u32,
    joined: bool,
    /// When to try JOIN again after the channel refused us.
    rejoin_at: Option<Instant>,
    rejoin_backoff: Duration,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The nick to try after `attempt` refusals: `nick_` first, then short numbered
/// forms that fit the 9 characters some servers allow (`supergre2`, `superg12`).
fn nick_candidate(base: &str, attempt: u32) -> String {
    if attempt == 1 {
        return format!("{base}_");
    }
    let suffix = attempt.to_string();
    let keep: String = base
        .chars()
        .take(9usize.saturating_sub(suffix.len()).max(1))
        .collect();
    format!("{keep}{suffix}")
}

/// Nick refusals after which the connection is dropped and tried again later.
const MAX_NICK_ATTEMPTS: u32 = 20;

struct Sink {
    options: IrcOptions,
    flood: Flood,
    bucket: TokenBucket,
    conn: Option<Connection>,
    backoff: Duration,
    reconnect_at: Instant,
    /// The hub's; held until the sink has said QUIT.
    shutdown: Option<Handle>,
}

impl Sink {
    fn new(options: IrcOptions, shutdown: Option<Handle>) -> Sink {
        Sink {
            shutdown,
            flood: Flood::new(options.burst as usize, options.label.clone()),
            bucket: TokenBucket::new(options.rate_per_sec, options.burst),
            options,
            conn: None,
            backoff: BACKOFF_MIN,
            reconnect_at: Instant::now(),
        }
    }

    async fn run(&mut self, queue: &SinkQueue) {
        let mut open = true;
        // Once no more matches will come, what is waiting gets this long to be posted.
        let mut give_up_at: Option<Instant> = None;
        loop {
            if !open && self.flood.is_empty() {
                break;
            }
            if give_up_at.is_some_and(|t| Instant::now() >= t) {
                tracing::warn!(
                    "IRC: giving up: matches not posted could not reach {}",
                    self.options.target.channel
                );
                break;
            }
            let rejoin_at = self.conn.as_ref().and_then(|c| c.rejoin_at);
            let joined = self.conn.as_ref().is_some_and(|c| c.joined);
            let post_at = if joined && !self.flood.is_empty() {
                Some(self.bucket.ready_at(Instant::now()))
            } else {
                None
            };
            let connect_at = self.conn.is_none().then_some(self.reconnect_at);
            tokio::select! {
                () = stopping(self.shutdown.as_ref()) => break,
                taken = queue.take::<Delivery>(1000), if open => match taken {
                    Some(taken) => {
                        let now = Instant::now();
                        for (_, lost) in &taken.dropped {
                            self.flood.add_lost(*lost, now);
                        }
                        for d in &taken.matches {
                            let message = render(&self.options, &d.line, &d.spans);
                            self.flood.add(&d.line.stream.host, d.line.text(), message, now);
                        }
                    }
                    None => {
                        open = false;
                        give_up_at = Some(Instant::now() + GIVE_UP_AFTER);
                    }
                },
                _ = sleep_until(rejoin_at) => {
                    if let Some(conn) = &mut self.conn {
                        conn.rejoin_at = None;
                        if conn.writer.write_all(join_line(&self.options.target).as_bytes()).await.is_err() {
                            self.lost("write failed");
                        }
                    }
                }
                _ = sleep_until(give_up_at) => {}
                line = recv_line(&mut self.conn) => match line {
                    Some(line) => self.on_server_line(&line).await,
                    None => self.lost("the server closed the connection"),
                },
                _ = sleep_until(connect_at) => self.connect().await,
                _ = sleep_until(post_at) => {
                    if self.bucket.try_take(Instant::now()) {
                        if let Some(text) = self.flood.next(Instant::now()) {
                            self.privmsg(&text).await;
                        }
                    }
                }
            }
        }
        if let Some(conn) = &mut self.conn {
            // A server that stopped reading must not hold the hub's stop.
            let quit = conn.writer.write_all(b"QUIT :supergrep done\r\n");
            let _ = tokio::time::timeout(Duration::from_secs(1), quit).await;
        }
    }

    async fn connect(&mut self) {
        let t = &self.options.target;
        let addr = format!("{}:{}", t.host, t.port);
        let connecting = crate::tls::connect(&t.host, t.port, self.options.tls.as_ref());
        let connecting = tokio::time::timeout(Duration::from_secs(10), connecting);
        // A server that does not answer must not hold the hub's stop (`run` sees it).
        let connected = tokio::select! {
            connected = connecting => connected,
            () = stopping(self.shutdown.as_ref()) => return,
        };
        let stream = match connected {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return self.retry_later(&format!("cannot connect to IRC server {addr}: {e}"))
            }
            Err(_) => {
                return self.retry_later(&format!("cannot connect to IRC server {addr}: timed out"))
            }
        };
        let (read, writer) = tokio::io::split(stream);
        let (tx, rx) = mpsc::channel(64);
        let reader = tokio::spawn(async move {
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if tx.send(line).await.is_err() {
                    break;
                }
            }
        });
        let nick = t.nick.clone().unwrap_or_else(|| self.options.nick.clone());
        let mut conn = Connection {
            lines: rx,
            writer,
            reader,
            base_nick: nick.clone(),
            nick: nick.clone(),
            nick_attempts: 0,
            joined: false,
            rejoin_at: None,
            rejoin_backoff: Duration::from_secs(5),
        };
        let mut hello = String::new();
        if let Some(p) = &t.password {
            hello.push_str(&format!("PASS {}\r\n", clean(p)));
        }
        hello.push_str(&format!("NICK {nick}\r\nUSER {nick} 0 * :supergrep\r\n"));
        if conn.writer.write_all(hello.as_bytes()).await.is_err() {
            return self.retry_later("the IRC server closed the connection");
        }
        self.conn = Some(conn);
    }

    async fn on_server_line(&mut self, line: &str) {
        let Some(conn) = &mut self.conn else { return };
        let (prefix, command, params) = parse(line);
        let reply = match command {
            "PING" => Some(format!(
                "PONG :{}\r\n",
                params.last().copied().unwrap_or("")
            )),
            // Welcome: registered, join the channel.
            "001" => Some(join_line(&self.options.target)),
            // Nick in use (or erroneous): try another.
            "433" | "432" | "436" => {
                conn.nick_attempts += 1;
                if conn.nick_attempts > MAX_NICK_ATTEMPTS {
                    self.lost("the server refused every nick we tried");
                    return;
                }
                conn.nick = nick_candidate(&conn.base_nick, conn.nick_attempts);
                Some(format!("NICK {}\r\n", conn.nick))
            }
            "JOIN" if prefix_nick(prefix) == conn.nick => {
                conn.joined = true;
                self.backoff = BACKOFF_MIN;
                tracing::info!("IRC: joined {}", self.options.target.channel);
                None
            }
            "KICK" if params.get(1) == Some(&conn.nick.as_str()) => {
                conn.joined = false;
                Some(join_line(&self.options.target))
            }
            // Cannot join (full, invite only, banned, bad key): say so, try later.
            "471" | "473" | "474" | "475" => {
                tracing::warn!(
                    "IRC: cannot join {}: {}; trying again in {:?}",
                    self.options.target.channel,
                    params.last().unwrap_or(&""),
                    conn.rejoin_backoff
                );
                conn.rejoin_at = Some(Instant::now() + conn.rejoin_backoff);
                conn.rejoin_backoff = (conn.rejoin_backoff * 2).min(BACKOFF_MAX);
                None
            }
            "ERROR" => {
                let why = params.last().copied().unwrap_or("error").to_owned();
                self.lost(&why);
                return;
            }
            _ => None,
        };
        if let Some(reply) = reply {
            if conn.writer.write_all(reply.as_bytes()).await.is_err() {
                self.lost("write failed");
            }
        }
    }

    async fn privmsg(&mut self, text: &str) {
        let Some(conn) = &mut self.conn else { return };
        let channel = &self.options.target.channel;
        let head = format!("PRIVMSG {channel} :");
        // The server prepends ":nick!user@host " when relaying; leave room for it.
        let relay_prefix = 1 + conn.nick.len() + 1 + 10 + 1 + 63 + 1;
        let budget = IRC_LINE.saturating_sub(2 + head.len() + relay_prefix);
        let body = cut(text, budget);
        let line = format!("{head}{body}\r\n");
        if conn.writer.write_all(line.as_bytes()).await.is_err() {
            self.lost("write failed");
        }
    }

    fn lost(&mut self, why: &str) {
        if self.conn.take().is_some() {
            tracing::warn!("IRC: lost the server: {why}");
        }
        self.retry_later(why);
    }

    fn retry_later(&mut self, why: &str) {
        tracing::warn!("IRC: {why}; retrying in {:?}", self.backoff);
        self.conn = None;
        self.reconnect_at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }
}

async fn recv_line(conn: &mut Option<Connection>) -> Option<String> {
    match conn {
        Some(c) => c.lines.recv().await,
        None => std::future::pending().await,
    }
}

/// Resolves when the hub stops; never without one (terminal mode).
async fn stopping(shutdown: Option<&Handle>) {
    match shutdown {
        Some(h) => h.stopping().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

fn join_line(t: &IrcTarget) -> String {
    match &t.key {
        Some(k) => format!("JOIN {} {}\r\n", t.channel, clean(k)),
        None => format!("JOIN {}\r\n", t.channel),
    }
}

/// `:prefix COMMAND p1 p2 :trailing` → (prefix, command, params).
fn parse(line: &str) -> (&str, &str, Vec<&str>) {
    let line = line.trim_end_matches(['\r', '\n']);
    let (prefix, rest) = match line.strip_prefix(':') {
        Some(r) => r.split_once(' ').unwrap_or((r, "")),
        None => ("", line),
    };
    let (head, trailing) = match rest.split_once(" :") {
        Some((h, t)) => (h, Some(t)),
        None => (rest, None),
    };
    let mut words = head.split(' ').filter(|w| !w.is_empty());
    let command = words.next().unwrap_or("");
    let mut params: Vec<&str> = words.collect();
    params.extend(trailing);
    (prefix, command, params)
}

fn prefix_nick(prefix: &str) -> &str {
    prefix.split('!').next().unwrap_or(prefix)
}

/// Control characters (CR and LF above all) out, so a log line can never end the
/// PRIVMSG and start a command of its own; tabs become spaces.
fn clean(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            '\t' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
}

/// IRC's markup: text [`clean`]ed, matches in bold red.
struct Mirc;

impl Markup for Mirc {
    fn text(&self, buf: &mut Vec<u8>, s: &str) {
        buf.extend_from_slice(clean(s).as_bytes());
    }

    // The user's template is cleaned too: it ends up in the same PRIVMSG.
    fn literal(&self, buf: &mut Vec<u8>, s: &str) {
        self.text(buf, s);
    }

    fn match_codes(&self) -> (&'static str, &'static str) {
        (BOLD_RED, RESET)
    }
}

// Colour before bold: a match starting with ",42" right after "\x0304" would be read
// as a background colour.
const BOLD_RED: &str = "\x0304\x02";
const RESET: &str = "\x0f";

/// A match as it reads in the channel: the template filled in, text cleaned, and the
/// matched spans in bold red with `color`.
pub fn render(options: &IrcOptions, line: &crate::line::LogLine, spans: &[[usize; 2]]) -> String {
    let Format::Template(pieces) = &options.format else {
        return String::new();
    };
    let spans = if options.color { spans } else { &[] };
    let mut buf = Vec::new();
    render_template(&mut buf, pieces, line.as_line_ref(), spans, &Mirc);
    // Only whole characters were written: this is always valid UTF-8.
    String::from_utf8(buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// At most `max` bytes, cut at a character boundary and marked with `…`.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mark = "…";
    let mut end = max.saturating_sub(mark.len() + RESET.len());
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    // Any colour still open is closed, so the cut does not colour the channel.
    format!("{}{RESET}{mark}", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn parses_irc_urls() -> anyhow::Result<()> {
        let t = IrcTarget::parse("irc://irc.internal:6667/#deploys").map_err(anyhow::Error::msg)?;
        assert_eq!(
            (t.host.as_str(), t.port, t.channel.as_str()),
            ("irc.internal", 6667, "#deploys")
        );
        let t = IrcTarget::parse("irc://bot:pw@irc.internal/warroom?key=k")
            .map_err(anyhow::Error::msg)?;
        assert_eq!(t.nick.as_deref(), Some("bot"));
        assert_eq!(t.password.as_deref(), Some("pw"));
        assert_eq!(
            (t.port, t.channel.as_str(), t.key.as_deref()),
            (6667, "#warroom", Some("k"))
        );
        assert!(IrcTarget::parse("http://x/#y").is_err());
        assert!(IrcTarget::parse("irc://x").is_err());
        assert!(IrcTarget::parse("irc://x/#a b").is_err());
        // Percent-escapes, as in any URL: a `#` that is no fragment, `/` and `@` in a
        // password, `&` in a key; CR/LF (an IRC command's end) refused.
        let t = IrcTarget::parse("irc://b%40t:p%2Fw%40x@h/%23ops?key=k%26x")
            .map_err(anyhow::Error::msg)?;
        assert_eq!(
            (
                t.nick.as_deref(),
                t.password.as_deref(),
                t.channel.as_str(),
                t.key.as_deref()
            ),
            (Some("b@t"), Some("p/w@x"), "#ops", Some("k&x"))
        );
        for bad in [
            "irc://bot:pw%0D%0AQUIT@h/#c",
            "irc://h/#c?key=a%0Ab",
            "irc://h/#c?key=k&x=1",
            "irc://h/#c%zz",
        ] {
            assert!(IrcTarget::parse(bad).is_err(), "{bad}");
        }
        let key = "p&s s%/?#";
        let url = format!(
            "irc://h/{}?key={}",
            percent_encode("#c"),
            percent_encode(key)
        );
        let t = IrcTarget::parse(&url)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("parsing {url}"))?;
        assert_eq!(t.key.as_deref(), Some(key));
        let t = IrcTarget::parse("ircs://x/#y").map_err(anyhow::Error::msg)?;
        assert_eq!((t.tls, t.port), (true, 6697));
        assert!(
            !IrcTarget::parse("irc://x/#y")
                .map_err(anyhow::Error::msg)?
                .tls
        );
        Ok(())
    }

    #[test]
    fn log_lines_cannot_inject_commands_and_fit_the_limit() {
        assert_eq!(clean("a\r\nQUIT :x\x01\tb"), "aQUIT :x b");
        let long = "é".repeat(2000);
        let c = cut(&long, 400);
        assert!(c.len() <= 400 && c.ends_with('…'));
        let mut out = Vec::new();
        crate::output::highlight(&mut out, "an error\nhere", &[[3, 8]], &Mirc);
        assert_eq!(out, b"an \x0304\x02error\x0fhere");
        assert_eq!(nick_candidate("supergrep", 1), "supergrep_");
        assert_eq!(nick_candidate("supergrep", 2), "supergre2");
        assert_eq!(nick_candidate("supergrep", 12), "supergr12");
    }

    #[test]
    fn parses_server_lines() {
        assert_eq!(
            parse(":srv 001 me :Welcome"),
            ("srv", "001", vec!["me", "Welcome"])
        );
        assert_eq!(parse("PING :abc"), ("", "PING", vec!["abc"]));
        assert_eq!(parse(":me!u@h JOIN :#x"), ("me!u@h", "JOIN", vec!["#x"]));
        assert_eq!(prefix_nick("me!u@h"), "me");
    }
}
