//! The unit of data that flows from sources to sinks.
//!
//! A source reads bytes and hands the hub [`ReadBatch`]es: runs of complete lines from
//! one stream, as read. The hub makes each a [`LineBatch`], checked to be UTF-8 (once,
//! on the ingest side: the reading thread is the one a scan waits for, and an agent
//! ships bytes the hub must check anyway). Batches (not single lines) are what move
//! through the pipeline because per-line hand-offs would cost more than matching does;
//! the matcher searches a whole batch at once and only the lines that match become
//! individual [`LogLine`]s.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use bytestring::ByteString;

/// Where lines come from: one file (or syslog tag) on one host, in one log set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Stream {
    /// `host:path`, unique per hub.
    pub id: String,
    pub host: String,
    pub path: String,
    /// The configured log set name (`default` when none was configured).
    pub set: String,
}

impl Stream {
    pub fn new(host: impl Into<String>, path: impl Into<String>, set: impl Into<String>) -> Self {
        let (host, path) = (host.into(), path.into());
        Stream {
            id: format!("{host}:{path}"),
            host,
            path,
            set: set.into(),
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

/// The name of the local machine, used as `host` for local sources.
pub fn local_hostname() -> String {
    let name = gethostname::gethostname().to_string_lossy().into_owned();
    if name.is_empty() {
        "localhost".to_owned()
    } else {
        name
    }
}

/// Complete lines read from one stream in one go, as a source hands them over: the
/// bytes as read, which may not be UTF-8 ([`LineBatch::from_read`] settles that).
///
/// `bytes` holds whole lines, each ending in `\n` (a final line without one is allowed
/// only when the source knows the file will not grow, e.g. `--no-follow`). They must
/// not keep a bigger buffer alive ([`fit_read_buffer`], [`owned_slice`]): the backlog
/// keeps them.
#[derive(Debug, Clone)]
pub struct ReadBatch {
    pub stream: Arc<Stream>,
    /// When the source read these lines.
    pub ts: SystemTime,
    pub bytes: Bytes,
    /// Where in which file the lines were read, for sources that read files (lets an
    /// agent resume, and the hub recognise lines it already has).
    pub origin: Option<Origin>,
}

/// A [`ReadBatch`] as the hub keeps it: the same lines, valid UTF-8. A `\r` before the
/// `\n` is part of the raw text; [`lines`] strips it.
#[derive(Debug, Clone)]
pub struct LineBatch {
    pub stream: Arc<Stream>,
    /// When the source read these lines.
    pub ts: SystemTime,
    /// Shared, not copied, from where it was read (a file's read buffer, an agent's
    /// frame) to the backlog.
    pub text: ByteString,
    /// Where in which file the lines were read, for sources that read files (lets an
    /// agent resume, and the hub recognise lines it already has).
    pub origin: Option<Origin>,
}

impl LineBatch {
    /// Invalid UTF-8 is replaced (U+FFFD), never refused; valid text is not copied.
    pub fn from_read(read: ReadBatch) -> LineBatch {
        LineBatch {
            stream: read.stream,
            ts: read.ts,
            text: text_from_bytes(read.bytes),
            origin: read.origin,
        }
    }
}

/// A byte range of one file (identified by device, inode and birth time, so a rotated
/// file with the same name is another file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub dev: u64,
    pub ino: u64,
    /// See [`born`]; `None` where the filesystem keeps no birth time.
    pub born: Option<u64>,
    /// How many times the reader saw the file truncated and written again
    /// (copytruncate): offsets start over, so `(epoch, offset)` orders its content.
    pub epoch: u32,
    pub start: u64,
    pub end: u64,
}

impl Origin {
    /// `(epoch, offset)` as one number that orders alike, as agents send positions:
    /// the epoch in the high 16 bits, the offset in the low 48 (256 TiB). A hub that
    /// knows nothing of epochs still sees refilled content as new (a position past
    /// all before), not as lines it has.
    pub fn position(&self, offset: u64) -> u64 {
        (u64::from(self.epoch.min(0xFFFF)) << 48) | (offset & ((1 << 48) - 1))
    }
}

/// When the file was made, in nanoseconds since the Unix epoch, where the filesystem
/// keeps a birth time (statx: ext4, xfs, btrfs, tmpfs). Device and inode name a file
/// only while it exists: ext4 hands a freed inode to the next file made, so the file
/// that replaces a rotated one often has the inode of the one rotated before it.
/// With its birth time a file is named for good.
pub fn born(meta: &std::fs::Metadata) -> Option<u64> {
    let since = meta
        .created()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    u64::try_from(since.as_nanos()).ok()
}

/// Whether two birth times can be one file's: equal, or one of them unknown (a
/// filesystem without birth times, a state file or an agent from before they were
/// noted), where device and inode decide alone.
pub fn same_birth(a: Option<u64>, b: Option<u64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// One line, once the hub has numbered it: one allocation holds the line and all
/// about it, and clones share it (one reference count), including the line's
/// encoding for the wire, made once however many clients get the line. (A line used
/// to be two allocations, freed on another thread than the one that made them:
/// scanning with every line matching, that freeing was 12% of ingest's time.)
#[derive(Clone)]
pub struct LogLine(triomphe::Arc<triomphe::HeaderSlice<LineHead, str>>);

/// Everything about a [`LogLine`] but its text.
#[derive(Debug)]
pub struct LineHead {
    pub stream: Arc<Stream>,
    /// Rises by one per line of `stream`.
    pub seq: u64,
    pub ts: SystemTime,
    /// See [`LogLine::encoding_cache`].
    encoded: std::sync::OnceLock<String>,
}

impl std::ops::Deref for LogLine {
    type Target = LineHead;

    fn deref(&self) -> &LineHead {
        &self.0.header
    }
}

impl fmt::Debug for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogLine")
            .field("stream", &self.stream.id)
            .field("seq", &self.seq)
            .field("ts", &self.ts)
            .field("text", &self.text())
            .finish()
    }
}

/// One line and what is known of it, wherever it is kept: in a [`LogLine`] of its own,
/// or still in the batch it was read in (see `hub::queue::BatchMatches`).
#[derive(Debug, Clone, Copy)]
pub struct LineRef<'a> {
    pub stream: &'a Stream,
    pub seq: u64,
    pub ts: SystemTime,
    pub text: &'a str,
}

impl LogLine {
    pub fn new(stream: Arc<Stream>, seq: u64, ts: SystemTime, text: &str) -> LogLine {
        let head = LineHead {
            stream,
            seq,
            ts,
            encoded: std::sync::OnceLock::new(),
        };
        LogLine(triomphe::Arc::from_header_and_str(head, text))
    }

    pub fn text(&self) -> &str {
        &self.0.slice
    }

    pub fn as_line_ref(&self) -> LineRef<'_> {
        LineRef {
            stream: &self.stream,
            seq: self.seq,
            ts: self.ts,
            text: self.text(),
        }
    }

    /// Room for the line's encoding on the wire, made by its encoder
    /// (`protocol::line_head`) once however many clients get the line.
    pub fn encoding_cache(&self) -> &std::sync::OnceLock<String> {
        &self.encoded
    }
}

/// Splits batch text into lines, without their `\n` or `\r\n` terminators.
pub fn lines(text: &str) -> impl Iterator<Item = &str> {
    // An empty text has no lines; "\n" has one empty line.
    let mut rest = (!text.is_empty()).then(|| text.strip_suffix('\n').unwrap_or(text));
    std::iter::from_fn(move || {
        let cur = rest?;
        match memchr::memchr(b'\n', cur.as_bytes()) {
            Some(i) => {
                rest = Some(&cur[i + 1..]);
                Some(trim_cr(&cur[..i]))
            }
            None => {
                rest = None;
                Some(trim_cr(cur))
            }
        }
    })
}

/// Where the line holding `at` starts in `bytes`, searching back no further than
/// `from` (a line start, or where a search began within a line).
pub fn line_start_after(bytes: &[u8], from: usize, at: usize) -> usize {
    let at = at.max(from);
    memchr::memrchr(b'\n', &bytes[from..at]).map_or(from, |i| from + i + 1)
}

/// A line without a trailing `\r` (CRLF logs), so `$` anchors behave.
#[inline]
pub fn trim_cr(line: &str) -> &str {
    line.strip_suffix('\r').unwrap_or(line)
}

/// Counts the lines in batch text (a final line without `\n` counts too).
pub fn count_lines(text: &str) -> u64 {
    let newlines = memchr::memchr_iter(b'\n', text.as_bytes()).count() as u64;
    if text.is_empty() || text.ends_with('\n') {
        newlines
    } else {
        newlines + 1
    }
}

/// RFC 3339 UTC with milliseconds, the `ts` format of the protocol.
///
/// RFC 3339 here spans 1970 to 9999 (humantime panics outside): a clock set before
/// 1970 prints as 1970, one past 9999 as the end of 9999, rather than ending the hub.
pub fn format_ts(ts: SystemTime) -> String {
    // 9999-12-31T23:59:59.999Z.
    const LAST: Duration = Duration::from_millis(253_402_300_799_999);
    let since_epoch = ts.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    humantime::format_rfc3339_millis(UNIX_EPOCH + since_epoch.min(LAST)).to_string()
}

// ---------------------------------------------------------------------------------
// Long lines
// ---------------------------------------------------------------------------------

/// True when some line in `text` could be longer than `max` (false means none is):
/// any run of `max` bytes without a newline covers a whole aligned half-window.
pub fn may_have_long_line(text: &[u8], max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let w = (max / 2).max(1);
    text.chunks(w)
        .filter(|c| c.len() == w)
        .any(|c| memchr::memchr(b'\n', c).is_none())
}

/// Rebuilds `text` (complete lines) with every line longer than `max` cut and marked.
/// If `first_cut > 0`, the first line's head is `text[..held]` and the bytes after it
/// up to the first newline continue an already cut line.
pub fn cut_lines(text: Vec<u8>, held: usize, first_cut: u64, max: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len().min(text.len() / 2 + max));
    let mut start = 0;
    let mut first = true;
    for nl in memchr::memchr_iter(b'\n', &text) {
        let line = &text[start..nl];
        if first && first_cut > 0 {
            out.extend_from_slice(&text[..held]);
            push_cut_mark(&mut out, first_cut + (nl - held) as u64);
        } else if line.len() > max {
            let keep = char_boundary(line, max);
            out.extend_from_slice(&line[..keep]);
            push_cut_mark(&mut out, (line.len() - keep) as u64);
        } else {
            out.extend_from_slice(line);
        }
        out.push(b'\n');
        first = false;
        start = nl + 1;
    }
    out
}

pub fn push_cut_mark(out: &mut Vec<u8>, cut: u64) {
    out.extend_from_slice(format!(" [… {cut} bytes cut]").as_bytes());
}

/// The largest length ≤ `max` that does not split a UTF-8 character.
pub fn char_boundary(bytes: &[u8], max: usize) -> usize {
    let mut keep = max.min(bytes.len());
    while keep > 0 && keep < bytes.len() && keep + 3 >= max && (bytes[keep] & 0xC0) == 0x80 {
        keep -= 1;
    }
    keep
}

/// Below this size, batch text is copied out of the buffer it was read into.
const COPY_BELOW: usize = 64 << 10;

/// A read buffer's lines, ready to be kept.
///
/// Batch text lives on in the backlog ring, so it must not keep a read buffer's
/// spare capacity alive with it: a few lines read into a 256 KiB buffer, ten
/// thousand times over, were 2.5 GiB of address space behind a 100,000-line ring.
/// Shrinking in place is not enough either: glibc serves a 256 KiB buffer with its
/// own mmap, and shrinks it to a page of its own (one memory map each: a ring of
/// 100,000 one-line batches was 283 MiB and 65,000 maps, the kernel's limit). So a
/// small text is copied into an allocation of its size and the buffer is freed.
pub fn fit_read_buffer(mut bytes: Vec<u8>) -> Bytes {
    let spare = bytes.capacity() - bytes.len();
    if spare > bytes.len() / 4 + 4096 {
        if bytes.len() < COPY_BELOW {
            bytes = bytes.as_slice().to_vec();
        } else {
            bytes.shrink_to_fit();
        }
    }
    bytes.into()
}

/// As [`fit_read_buffer`], for bytes that are a slice of something bigger (a WebSocket
/// frame in a read buffer): kept as a slice only when big, so a small batch cannot keep
/// a whole buffer alive.
pub fn owned_slice(bytes: Bytes) -> Bytes {
    if bytes.len() < COPY_BELOW {
        return Bytes::copy_from_slice(&bytes);
    }
    bytes
}

/// Text from bytes read somewhere: checked, not copied, when they are UTF-8; invalid
/// sequences are replaced (U+FFFD), never refused.
pub fn text_from_bytes(bytes: Bytes) -> ByteString {
    // A clone of `Bytes` is a reference count: the error leaves the bytes behind.
    match ByteString::try_from(bytes.clone()) {
        Ok(text) => text,
        Err(_) => String::from_utf8_lossy(&bytes).into_owned().into(),
    }
}

/// The hub's line limit on lines from elsewhere (an agent's): each line longer than
/// `max` bytes cut and marked, as the tailer does. Shared, not copied, when no line is.
pub fn cap_long_lines(bytes: Bytes, max: usize) -> Bytes {
    if !may_have_long_line(&bytes, max) {
        return bytes;
    }
    cut_lines(bytes.to_vec(), 0, 0, max).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_strips_crlf() {
        let got: Vec<&str> = lines("a\r\nb\n\nc").collect();
        assert_eq!(got, ["a", "b", "", "c"]);
        assert_eq!(lines("").count(), 0);
        assert_eq!(lines("\n").collect::<Vec<_>>(), [""]);
        assert_eq!(count_lines("a\r\nb\n\nc"), 4);
        assert_eq!(count_lines("a\n"), 1);
        assert_eq!(count_lines(""), 0);
    }

    #[test]
    fn long_lines_from_elsewhere_are_cut_and_short_ones_shared() {
        let text = Bytes::from(format!("short\n{}\né{}\n", "x".repeat(100), "y".repeat(20)));
        let capped = cap_long_lines(text, 10);
        assert_eq!(
            &capped[..],
            "short\nxxxxxxxxxx [… 90 bytes cut]\néyyyyyyyy [… 12 bytes cut]\n".as_bytes()
        );
        let text = Bytes::from("a\nb\n".repeat(100));
        let ptr = text.as_ptr();
        assert_eq!(cap_long_lines(text, 10).as_ptr(), ptr, "not copied");
    }

    #[test]
    fn text_is_checked_not_copied_and_invalid_bytes_replaced() {
        let bytes = Bytes::from("é ok\n".repeat(10));
        let ptr = bytes.as_ptr();
        assert_eq!(text_from_bytes(bytes).as_ptr(), ptr, "not copied");
        assert_eq!(
            &*text_from_bytes(Bytes::from_static(b"ok \xff\n")),
            "ok \u{fffd}\n"
        );
    }

    #[test]
    fn small_texts_do_not_keep_their_read_buffer() {
        let mut buf = Vec::with_capacity(256 << 10);
        buf.extend_from_slice(b"one line\n");
        let kept = fit_read_buffer(buf);
        assert_eq!(&kept[..], b"one line\n");
        // A slice of a big frame: copied out when small, shared when big.
        let frame = Bytes::from(vec![b'x'; 1 << 20]);
        let small = owned_slice(frame.slice(10..20));
        assert!(!std::ptr::eq(small.as_ptr(), frame[10..].as_ptr()));
        let big = owned_slice(frame.slice(0..COPY_BELOW));
        assert_eq!(big.as_ptr(), frame.as_ptr());
    }

    #[test]
    fn timestamps_outside_rfc3339s_years_are_clamped_not_a_panic() {
        let day = Duration::from_secs(86_400);
        assert_eq!(format_ts(UNIX_EPOCH - day), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_ts(UNIX_EPOCH + day * 365 * 9000),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(format_ts(UNIX_EPOCH + day), "1970-01-02T00:00:00.000Z");
    }
}
