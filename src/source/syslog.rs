//! Syslog input for the hub: what rsyslog, syslog-ng, Vector or Fluent Bit forward.
//!
//! UDP datagrams, and TCP with either octet-counting (`LEN MSG`, RFC 6587) or newline
//! framing, detected per message. RFC 5424 and RFC 3164 messages, tolerant of the
//! real-world variants (no hostname, ISO timestamps, no PID). The message's hostname
//! becomes the stream's host and its app-name or tag the path (`syslog:nginx`).
//! Anything unparsable is kept as raw text from the sender's address: never dropped
//! silently, never fatal.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::{TcpListener, UdpSocket};

use super::{EventSender, SourceEvent};
use crate::line::{ReadBatch, Stream};
use crate::shutdown::{Handle, Kind};

/// One parsed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub host: Option<String>,
    pub app: Option<String>,
    pub text: String,
}

/// Parses one syslog message (without framing); never fails: unparsable input is
/// returned whole as the text.
pub fn parse(raw: &str) -> Message {
    let raw = raw.trim_end_matches(['\n', '\r', '\0']);
    let raw_message = || Message {
        host: None,
        app: None,
        text: raw.to_owned(),
    };
    let Some(rest) = raw.strip_prefix('<') else {
        return raw_message();
    };
    let Some((pri, rest)) = rest.split_once('>') else {
        return raw_message();
    };
    if pri.is_empty() || pri.len() > 3 || !pri.bytes().all(|b| b.is_ascii_digit()) {
        return raw_message();
    }
    if let Some(m) = rest.strip_prefix("1 ").and_then(parse_5424) {
        return m;
    }
    parse_3164(rest).unwrap_or_else(raw_message)
}

/// `TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG` (after `<PRI>1 `).
fn parse_5424(rest: &str) -> Option<Message> {
    let mut parts = rest.splitn(6, ' ');
    let _ts = parts.next()?;
    let host = nil(parts.next()?);
    let app = nil(parts.next()?);
    let _procid = parts.next()?;
    let _msgid = parts.next()?;
    let rest = parts.next().unwrap_or("");
    let msg = skip_structured_data(rest)?;
    // A UTF-8 byte order mark may start the message.
    let msg = msg.strip_prefix('\u{feff}').unwrap_or(msg);
    Some(Message {
        host,
        app,
        text: msg.to_owned(),
    })
}

fn nil(field: &str) -> Option<String> {
    (field != "-" && !field.is_empty()).then(|| field.to_owned())
}

/// The message after the structured data (`-` or `[id k="v"]…`, with `\]` escapes).
fn skip_structured_data(s: &str) -> Option<&str> {
    if let Some(rest) = s.strip_prefix('-') {
        return Some(rest.strip_prefix(' ').unwrap_or(rest));
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() && bytes[i] == b'[' {
        let mut escaped = false;
        let mut in_quotes = false;
        i += 1;
        loop {
            let &b = bytes.get(i)?;
            i += 1;
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_quotes = !in_quotes,
                b']' if !in_quotes => break,
                _ => {}
            }
        }
    }
    if i == 0 {
        return None;
    }
    let rest = &s[i..];
    Some(rest.strip_prefix(' ').unwrap_or(rest))
}

/// `TIMESTAMP [HOSTNAME] TAG[PID]: MSG`, with the variants seen in the wild.
fn parse_3164(rest: &str) -> Option<Message> {
    let rest = skip_timestamp(rest)?;
    // Host and tag: "host tag[pid]: msg", "tag[pid]: msg" (no host, as from logger),
    // or "host msg" with no tag at all.
    let (first, after) = rest.split_once(' ').unwrap_or((rest, ""));
    if let Some((app, msg)) = tag(first, after) {
        return Some(Message {
            host: None,
            app: Some(app),
            text: msg.to_owned(),
        });
    }
    let host = Some(first.to_owned()).filter(|h| !h.is_empty());
    let (second, after2) = after.split_once(' ').unwrap_or((after, ""));
    if let Some((app, msg)) = tag(second, after2) {
        return Some(Message {
            host,
            app: Some(app),
            text: msg.to_owned(),
        });
    }
    Some(Message {
        host,
        app: None,
        text: after.to_owned(),
    })
}

/// `word` as a tag (`nginx:`, `sshd[42]:`), with the message that follows.
fn tag<'a>(word: &str, after: &'a str) -> Option<(String, &'a str)> {
    let name = word.strip_suffix(':')?;
    let name = match name.split_once('[') {
        Some((n, pid)) if pid.ends_with(']') => n,
        Some(_) => return None,
        None => name,
    };
    let ok = !name.is_empty()
        && name.len() <= 48
        && name.chars().all(|c| c.is_ascii_graphic() && c != ':');
    ok.then(|| (name.to_owned(), after))
}

/// Skips `Mmm dd hh:mm:ss ` (BSD), `YYYY-MM-DDThh:mm:ss…Z ` (ISO) or `Mmm dd YYYY hh:mm:ss `.
fn skip_timestamp(s: &str) -> Option<&str> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    if s.len() > 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[..4].iter().all(u8::is_ascii_digit) {
        let (_, rest) = s.split_once(' ')?;
        return Some(rest);
    }
    let month = s.get(..3)?;
    if !MONTHS.contains(&month) {
        return None;
    }
    // "Nov 22 03:00:00 " or "Nov  2 03:00:00 ", maybe with a year.
    let mut rest = s[3..].trim_start();
    for _ in 0..3 {
        let (word, after) = rest.split_once(' ')?;
        rest = after;
        if word.contains(':') {
            return Some(rest);
        }
    }
    None
}

/// Where syslog lines go, and how streams are named.
struct Ingest {
    out: EventSender,
    set: String,
    max_line: usize,
    streams: Mutex<HashMap<(String, String), Arc<Stream>>>,
}

/// Streams at most, so spoofed hostnames cannot grow the hub without bound.
const MAX_STREAMS: usize = 10_000;

impl Ingest {
    /// `dropped`: bytes of the message already left out beyond the size limit.
    async fn deliver(&self, raw: &[u8], from: SocketAddr, dropped: u64) -> bool {
        let text = String::from_utf8_lossy(raw);
        let m = parse(&text);
        // Escaped (see `names`): `vm:fake` or an IPv6 sender made ambiguous ids.
        let host = super::names::host(&m.host.unwrap_or_else(|| from.ip().to_string()));
        let app = super::names::path(m.app.as_deref().unwrap_or("unknown"));
        let path = format!("syslog:{app}");
        let (stream, added) = {
            let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
            let key = if streams.len() >= MAX_STREAMS
                && !streams.contains_key(&(host.clone(), path.clone()))
            {
                ("other".to_owned(), "syslog:other".to_owned())
            } else {
                (host, path)
            };
            match streams.get(&key) {
                Some(s) => (s.clone(), false),
                None => {
                    let s = Arc::new(Stream::new(key.0.clone(), key.1.clone(), self.set.clone()));
                    streams.insert(key, s.clone());
                    (s, true)
                }
            }
        };
        if added
            && self
                .out
                .send(SourceEvent::StreamAdded(stream.clone()))
                .await
                .is_err()
        {
            return false;
        }
        // One message is one line: newlines inside become spaces.
        let mut line: String = m
            .text
            .chars()
            .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
            .collect();
        if line.len() > self.max_line || dropped > 0 {
            let mut end = self.max_line.min(line.len());
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            let cut = (line.len() - end) as u64 + dropped;
            line.truncate(end);
            line.push_str(&format!(" [… {cut} bytes cut]"));
        }
        line.push('\n');
        let batch = ReadBatch {
            stream,
            ts: SystemTime::now(),
            bytes: line.into(),
            origin: None,
        };
        self.out.send(SourceEvent::Lines(batch)).await.is_ok()
    }
}

/// Limits of the TCP input (`[syslog]` in the config).
#[derive(Debug, Clone)]
pub struct TcpLimits {
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub idle_timeout: Duration,
}

/// Listens for syslog on UDP and/or TCP, feeding `out`. Failed accepts are counted
/// in `accept_errors`. Every listener and connection holds a child of `shutdown`
/// and ends when it says stop.
// Each argument is one of the hub's settings or shared pieces: a struct of them
// would only be built here.
#[allow(clippy::too_many_arguments)]
pub async fn start(
    udp: Option<SocketAddr>,
    tcp: Option<SocketAddr>,
    set: String,
    max_line: usize,
    limits: TcpLimits,
    out: EventSender,
    accept_errors: Arc<AtomicU64>,
    shutdown: &Handle,
) -> std::io::Result<()> {
    let ingest = Arc::new(Ingest {
        out,
        set,
        max_line,
        streams: Mutex::default(),
    });
    if let Some(addr) = udp {
        let socket = UdpSocket::bind(addr).await?;
        tracing::info!("syslog: listening on udp {}", socket.local_addr()?);
        let ingest = ingest.clone();
        let shutdown = shutdown.child(Kind::SyslogListener);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            let mut backoff = None;
            loop {
                let received = tokio::select! {
                    r = socket.recv_from(&mut buf) => r,
                    () = shutdown.stopping() => break,
                };
                match received {
                    Ok((n, from)) => {
                        backoff = None;
                        if !ingest.deliver(&buf[..n], from, 0).await {
                            break;
                        }
                    }
                    Err(e) => {
                        // An error that lasts must not spin (nor flood the log).
                        let wait = crate::open_files::accept_backoff(backoff);
                        backoff = Some(wait);
                        tracing::warn!("syslog udp: {e}; waiting {wait:?}");
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        });
    }
    if let Some(addr) = tcp {
        let listener = TcpListener::bind(addr).await?;
        tracing::info!("syslog: listening on tcp {}", listener.local_addr()?);
        let shutdown = shutdown.child(Kind::SyslogListener);
        tokio::spawn(accept_tcp(
            listener,
            ingest,
            limits,
            accept_errors,
            shutdown,
        ));
    }
    Ok(())
}

/// Accepts TCP senders within `limits`: past the cap the longest idle sender is
/// closed to make room (1,000 idle connections shut out real senders for as long as
/// they stayed), and one address is held to its own cap.
async fn accept_tcp(
    listener: TcpListener,
    ingest: Arc<Ingest>,
    limits: TcpLimits,
    accept_errors: Arc<AtomicU64>,
    shutdown: Handle,
) {
    let senders = Arc::new(Senders::default());
    let mut backoff = None;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = shutdown.stopping() => return,
        };
        let (stream, from) = match accepted {
            Ok(a) => {
                backoff = None;
                a
            }
            Err(e) => {
                // Out of file descriptors, say: wait rather than spin.
                let wait = crate::open_files::accept_backoff(backoff);
                backoff = Some(wait);
                accept_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("syslog tcp: accept: {e}; waiting {wait:?}");
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        let Some(sender) = senders.admit(from, &limits) else {
            tracing::warn!(
                "syslog tcp: {} connections from {} already; refusing another",
                limits.max_connections_per_address,
                from.ip()
            );
            continue;
        };
        let (ingest, senders, idle) = (ingest.clone(), senders.clone(), limits.idle_timeout);
        let connection = shutdown.child(Kind::SyslogConnection);
        tokio::spawn(async move {
            tokio::select! {
                // Syslog over TCP has no acknowledgement: a message half read
                // when the hub stops is lost, as it always was.
                () = connection.stopping() => {}
                read = read_tcp(stream, from, &ingest, &sender, idle) => {
                    if let Err(e) = read {
                        tracing::debug!("syslog tcp {from}: {e}");
                    }
                }
                () = sender.evicted.notified() => {
                    tracing::info!("syslog tcp: closed {from}, idle longest, to make room");
                }
            }
            senders.remove(sender.id);
        });
    }
}

/// One connected TCP sender.
struct Sender {
    id: u64,
    ip: IpAddr,
    /// When it last sent a message, in ms since `epoch` (that of [`Senders`]).
    active: AtomicU64,
    epoch: Instant,
    evicted: tokio::sync::Notify,
}

impl Sender {
    fn touch(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.active.store(now, Ordering::Relaxed);
    }
}

/// The connected TCP senders.
struct Senders {
    epoch: Instant,
    open: Mutex<(u64, HashMap<u64, Arc<Sender>>)>,
}

impl Default for Senders {
    fn default() -> Self {
        Senders {
            epoch: Instant::now(),
            open: Mutex::default(),
        }
    }
}

impl Senders {
    /// A place for a sender from `from`: `None` when its address has its cap; when
    /// all places are taken, the sender idle longest is told to go.
    fn admit(&self, from: SocketAddr, limits: &TcpLimits) -> Option<Arc<Sender>> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let (next, senders) = &mut *open;
        let ip = from.ip();
        if senders.values().filter(|s| s.ip == ip).count() >= limits.max_connections_per_address {
            return None;
        }
        if senders.len() >= limits.max_connections {
            let idlest = senders
                .values()
                .min_by_key(|s| s.active.load(Ordering::Relaxed))
                .map(|s| s.id);
            if let Some(gone) = idlest.and_then(|id| senders.remove(&id)) {
                // `notify_one` keeps the permit if the task is not waiting yet.
                gone.evicted.notify_one();
            }
        }
        *next += 1;
        let sender = Arc::new(Sender {
            id: *next,
            ip,
            active: AtomicU64::new(self.epoch.elapsed().as_millis() as u64),
            epoch: self.epoch,
            evicted: tokio::sync::Notify::new(),
        });
        senders.insert(sender.id, sender.clone());
        Some(sender)
    }

    fn remove(&self, id: u64) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.1.remove(&id);
    }
}

/// One TCP sender: octet-counted (`LEN <PRI>…`, RFC 6587) or newline-framed
/// messages, as each one starts. A frame cut short by the sender closing is still
/// delivered; bytes beyond the line limit are counted in the cut mark.
async fn read_tcp(
    stream: tokio::net::TcpStream,
    from: SocketAddr,
    ingest: &Ingest,
    sender: &Sender,
    idle: Duration,
) -> std::io::Result<()> {
    let limit = ingest.max_line + 1024;
    let mut reader = BufReader::new(stream);
    let mut frame = Vec::new();
    loop {
        let Ok(buf) = tokio::time::timeout(idle, reader.fill_buf()).await else {
            tracing::info!("syslog tcp: closed {from}, silent for {idle:?}");
            return Ok(());
        };
        if buf?.is_empty() {
            return Ok(());
        }
        frame.clear();
        // The rest of the frame within the idle timeout too: a sender that stops
        // mid-frame is as idle as one that sends nothing.
        let read_frame = async {
            let mut dropped = 0u64;
            match framing(&mut reader, &mut frame).await? {
                Some(len) => {
                    let keep = len.min(limit);
                    (&mut reader)
                        .take(keep as u64)
                        .read_to_end(&mut frame)
                        .await?;
                    // Beyond our limit: read and count, not keep.
                    dropped = tokio::io::copy(
                        &mut (&mut reader).take((len - keep) as u64),
                        &mut tokio::io::sink(),
                    )
                    .await?;
                }
                None => {
                    (&mut reader)
                        .take(limit.saturating_sub(frame.len()) as u64)
                        .read_until(b'\n', &mut frame)
                        .await?;
                    if !frame.ends_with(b"\n") && frame.len() >= limit {
                        // An over-long line: count its rest up to the newline.
                        let mut skip = Vec::new();
                        loop {
                            skip.clear();
                            let n = (&mut reader)
                                .take(65536)
                                .read_until(b'\n', &mut skip)
                                .await?;
                            dropped +=
                                skip.iter().filter(|&&b| b != b'\n' && b != b'\r').count() as u64;
                            if n == 0 || skip.ends_with(b"\n") {
                                break;
                            }
                        }
                    }
                }
            }
            Ok::<u64, std::io::Error>(dropped)
        };
        let Ok(dropped) = tokio::time::timeout(idle, read_frame).await else {
            tracing::info!("syslog tcp: closed {from}, silent mid-message for {idle:?}");
            return Ok(());
        };
        let dropped = dropped?;
        if frame.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        if !ingest.deliver(&frame, from, dropped).await {
            return Ok(());
        }
        sender.touch();
    }
}

/// The longest octet-count prefix: nine digits, a space and the message's `<`.
const COUNT_PREFIX: usize = 11;

/// How the next message is framed, read just far enough to tell: `Some(LEN)`, its
/// octet count read; `None`, newline framing, the bytes read to tell (at most 10,
/// digits and a space) already in `frame` (empty on entry). A prefix cut by the
/// end of the reader's buffer (a fast sender's 8 KiB boundary) waits for more;
/// the sender closing within it makes it text.
async fn framing<R>(reader: &mut R, frame: &mut Vec<u8>) -> std::io::Result<Option<usize>>
where
    R: AsyncBufRead + Unpin,
{
    loop {
        let buf = reader.fill_buf().await?;
        let mut peek = [0u8; COUNT_PREFIX];
        let had = frame.len();
        let n = buf.len().min(COUNT_PREFIX - had);
        peek[..had].copy_from_slice(frame);
        peek[had..had + n].copy_from_slice(&buf[..n]);
        match octet_count(&peek[..had + n]) {
            Prefix::Count { digits, len } => {
                // The count was read up to `had`; the rest of it and its space now.
                reader.consume(digits + 1 - had);
                frame.clear();
                return Ok(Some(len));
            }
            Prefix::Text => return Ok(None),
            Prefix::Cut if n == 0 => return Ok(None),
            Prefix::Cut => {
                // All of the buffer (it is shorter than a prefix): held, read on.
                frame.extend_from_slice(&buf[..n]);
                reader.consume(n);
            }
        }
    }
}

/// What the start of a message on a TCP connection shows.
#[derive(Debug, PartialEq, Eq)]
enum Prefix {
    /// `LEN ` (its digits, and LEN) before a message that starts with `<`.
    Count { digits: usize, len: usize },
    /// Anything else: text, framed by newlines (text that merely starts with a
    /// number, such as "404 not found", too).
    Text,
    /// Digits, maybe a space, and the end of what is there: more bytes tell.
    Cut,
}

/// Tells an octet count at the start of `buf` (see [`Prefix`]).
fn octet_count(buf: &[u8]) -> Prefix {
    let digits = buf
        .iter()
        .take(10)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 || digits > 9 {
        return Prefix::Text;
    }
    match (buf.get(digits), buf.get(digits + 1)) {
        (None, _) | (Some(b' '), None) => return Prefix::Cut,
        (Some(b' '), Some(b'<')) => {}
        _ => return Prefix::Text,
    }
    match std::str::from_utf8(&buf[..digits]).map(str::parse) {
        Ok(Ok(len)) => Prefix::Count { digits, len },
        _ => Prefix::Text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(host: Option<&str>, app: Option<&str>, text: &str) -> Message {
        Message {
            host: host.map(str::to_owned),
            app: app.map(str::to_owned),
            text: text.to_owned(),
        }
    }

    #[test]
    fn parses_rfc5424() {
        assert_eq!(
            parse("<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - BOM'su root' failed"),
            m(Some("mymachine.example.com"), Some("su"), "BOM'su root' failed")
        );
        assert_eq!(
            parse(
                r#"<165>1 2003-10-11T22:14:15.003Z web01 nginx 42 - [exampleSDID@32473 iut="3" eventSource="App\]x"] GET / 502"#
            ),
            m(Some("web01"), Some("nginx"), "GET / 502")
        );
        assert_eq!(parse("<14>1 - - - - - -"), m(None, None, ""));
    }

    #[test]
    fn parses_rfc3164_and_variants() {
        assert_eq!(
            parse("<13>Nov 22 03:00:00 web01 sshd[4242]: Failed password for root"),
            m(Some("web01"), Some("sshd"), "Failed password for root")
        );
        assert_eq!(
            parse("<13>Nov  2 03:00:00 myapp: no host here"),
            m(None, Some("myapp"), "no host here")
        );
        assert_eq!(
            parse("<30>2026-11-22T03:00:00.123456+00:00 db01 postgres[7]: slow query"),
            m(Some("db01"), Some("postgres"), "slow query")
        );
        assert_eq!(
            parse("<13>Nov 22 03:00:00 web01 just text"),
            m(Some("web01"), None, "just text")
        );
    }

    #[test]
    fn tells_an_octet_count_once_it_shows() {
        let count = |digits, len| Prefix::Count { digits, len };
        assert_eq!(octet_count(b"12 <13>x"), count(2, 12));
        assert_eq!(octet_count(b"999999999 <"), count(9, 999_999_999));
        // Cut within the prefix: more bytes tell.
        for cut in [&b"1"[..], b"12", b"12 ", b"123456789", b"123456789 "] {
            assert_eq!(octet_count(cut), Prefix::Cut, "{cut:?}");
        }
        for text in [
            &b"404 not found"[..],
            b"12<",
            b"12 x",
            b"1234567890",
            b"x1",
            b"",
        ] {
            assert_eq!(octet_count(text), Prefix::Text, "{text:?}");
        }
    }

    /// A count prefix cut anywhere by the reader's buffer is still a count; text
    /// cut there is text, the bytes read to tell kept.
    #[tokio::test]
    async fn a_count_cut_by_the_buffer_waits_for_more() -> std::io::Result<()> {
        let input = b"12 <13>x";
        for cut in 1..input.len() {
            let (head, tail) = input.split_at(cut);
            let mut reader = BufReader::new(head.chain(tail));
            let mut frame = Vec::new();
            assert_eq!(
                framing(&mut reader, &mut frame).await?,
                Some(12),
                "cut at {cut}"
            );
            assert!(frame.is_empty());
            let mut rest = Vec::new();
            reader.read_to_end(&mut rest).await?;
            assert_eq!(rest, b"<13>x");
        }
        for input in [&b"12 x\n"[..], b"12x", b"12"] {
            let (head, tail) = input.split_at(1);
            let mut reader = BufReader::new(head.chain(tail));
            let mut frame = Vec::new();
            assert_eq!(framing(&mut reader, &mut frame).await?, None, "{input:?}");
            // What was read to tell is the frame's start; the rest is still there.
            let mut rest = Vec::new();
            reader.read_to_end(&mut rest).await?;
            assert_eq!([frame, rest].concat(), input);
        }
        Ok(())
    }

    #[test]
    fn keeps_malformed_input_as_raw_text() {
        assert_eq!(parse("hello world"), m(None, None, "hello world"));
        assert_eq!(parse("<999999>x"), m(None, None, "<999999>x"));
        assert_eq!(parse("<13>garbage"), m(None, None, "<13>garbage"));
    }
}
