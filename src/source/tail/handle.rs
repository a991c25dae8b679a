//! An open file and how far it was read: reading it on, splitting what is read into
//! lines (a partial last line held back, long lines cut), and noticing that it was
//! truncated under us. Owns no policy: when to read and what a rotation means is the
//! followed path's business ([`super::followed`]).

use std::fs::{File, Metadata};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use super::super::events::Closed;
use super::super::{EventSender, SourceEvent};
use super::TailConfig;
use crate::line::{
    char_boundary, cut_lines, fit_read_buffer, may_have_long_line, push_cut_mark, Origin,
    ReadBatch, Stream,
};
use crate::regular_file;

/// The open handle of one file and how far it was read.
pub(super) struct Handle {
    pub(super) file: File,
    pub(super) dev: u64,
    pub(super) ino: u64,
    /// See [`crate::line::born`].
    pub(super) born: Option<u64>,
    /// Bytes read so far (the read position).
    pub(super) offset: u64,
    /// Head of the current unterminated line (at most `max_line` bytes).
    pub(super) partial: Vec<u8>,
    /// Bytes of the current line dropped beyond `max_line`.
    pub(super) cut: u64,
    /// The last bytes before `offset`, to notice a truncate-and-refill.
    fingerprint: Vec<u8>,
    /// Modification time at the last look, to skip re-reading the fingerprint of a
    /// file that did not change.
    modified: Option<(i64, i64)>,
    /// Times it was found truncated and written again (see [`Origin::epoch`]).
    pub(super) epoch: u32,
}

const FINGERPRINT: usize = 64;

impl Handle {
    /// Opens `path` without waiting on it: a FIFO or device is refused through
    /// its handle (see [`regular_file`]); a directory is left to the caller.
    pub(super) fn open(path: &Path) -> io::Result<(Handle, Metadata)> {
        let (file, meta) = regular_file::open(path)?;
        Ok(Handle::with_meta(file, meta))
    }

    /// A handle on `file`, at its start.
    pub(super) fn new(file: File) -> io::Result<(Handle, Metadata)> {
        let meta = file.metadata()?;
        Ok(Handle::with_meta(file, meta))
    }

    fn with_meta(file: File, meta: Metadata) -> (Handle, Metadata) {
        (
            Handle {
                file,
                dev: meta.dev(),
                ino: meta.ino(),
                born: crate::line::born(&meta),
                offset: 0,
                partial: Vec::new(),
                cut: 0,
                fingerprint: Vec::new(),
                modified: None,
                epoch: 0,
            },
            meta,
        )
    }

    /// The file (device, inode) this is open on.
    pub(super) fn id(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }

    pub(super) fn is(&self, meta: &Metadata) -> bool {
        self.dev == meta.dev()
            && self.ino == meta.ino()
            && crate::line::same_birth(self.born, crate::line::born(meta))
    }

    pub(super) fn seek(&mut self, offset: u64) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(offset))?;
        self.offset = offset;
        self.partial.clear();
        self.cut = 0;
        self.fingerprint.clear();
        if offset > 0 {
            let len = offset.min(FINGERPRINT as u64);
            let mut fp = vec![0; len as usize];
            self.file.read_exact_at(&mut fp, offset - len)?;
            self.fingerprint = fp;
        }
        Ok(())
    }

    /// The file no longer holds what we read: it was truncated (and maybe refilled,
    /// even to the very same length).
    pub(super) fn was_truncated(&mut self, meta: &Metadata) -> bool {
        let len = meta.len();
        if len < self.offset {
            return true;
        }
        let modified = (meta.mtime(), meta.mtime_nsec());
        let unchanged = len == self.offset && self.modified == Some(modified);
        self.modified = Some(modified);
        if self.fingerprint.is_empty() || unchanged {
            return false;
        }
        let mut now = vec![0; self.fingerprint.len()];
        match self
            .file
            .read_exact_at(&mut now, self.offset - self.fingerprint.len() as u64)
        {
            Ok(()) => now != self.fingerprint,
            Err(_) => true,
        }
    }

    fn origin(&self, start: u64, end: u64) -> Origin {
        Origin {
            dev: self.dev,
            ino: self.ino,
            born: self.born,
            epoch: self.epoch,
            start,
            end,
        }
    }

    /// Start of the data not yet delivered as complete lines.
    pub(super) fn delivered_offset(&self) -> u64 {
        self.offset - self.partial.len() as u64 - self.cut
    }

    fn remember_tail(&mut self, read: &[u8]) {
        if read.len() >= FINGERPRINT {
            self.fingerprint.clear();
            self.fingerprint
                .extend_from_slice(&read[read.len() - FINGERPRINT..]);
        } else {
            self.fingerprint.extend_from_slice(read);
            let extra = self.fingerprint.len().saturating_sub(FINGERPRINT);
            self.fingerprint.drain(..extra);
        }
    }
}

pub(super) enum DrainError {
    Closed,
    Io(io::Error),
}

/// Reads `handle` to its current end (or to `len`, which saves the read that
/// finds the end), sending complete lines as batches.
pub(super) fn drain(
    handle: &mut Handle,
    len: Option<u64>,
    stream: &Arc<Stream>,
    config: &TailConfig,
    out: &EventSender,
) -> Result<(), DrainError> {
    loop {
        let want = len.map_or(config.read_chunk as u64, |len| {
            len.saturating_sub(handle.offset)
                .min(config.read_chunk as u64)
        });
        if want == 0 {
            return Ok(());
        }
        let mut buf = std::mem::take(&mut handle.partial);
        let held = buf.len();
        buf.reserve(want as usize);
        let n = match (&mut handle.file).take(want).read_to_end(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                handle.partial = buf;
                return Err(DrainError::Io(e));
            }
        };
        handle.offset += n as u64;
        if n == 0 {
            handle.partial = buf;
            return Ok(());
        }
        handle.remember_tail(&buf[held..]);
        send_lines(handle, buf, held, stream, config, out).map_err(|Closed| DrainError::Closed)?;
        if (n as u64) < want {
            // A short read: we are at the end for now.
            return Ok(());
        }
    }
}

/// Sends the complete lines of `buf` (just read, `handle.offset` counting it, after
/// the `held` bytes kept from before) as one batch, and keeps the rest.
pub(super) fn send_lines(
    handle: &mut Handle,
    buf: Vec<u8>,
    held: usize,
    stream: &Arc<Stream>,
    config: &TailConfig,
    out: &EventSender,
) -> Result<(), Closed> {
    // Where the first line began, maybe in an earlier read: `buf` starts with its
    // held head, `cut` counts what was cut from it (`delivered_offset` would miss
    // the head, taken out of the handle). The hub trims a re-sent overlap by it.
    let start = handle.offset - buf.len() as u64 - handle.cut;
    let Some(bytes) = split_lines(handle, buf, held, config.max_line) else {
        return Ok(());
    };
    let batch = ReadBatch {
        stream: stream.clone(),
        ts: SystemTime::now(),
        bytes,
        origin: Some(handle.origin(start, handle.delivered_offset())),
    };
    out.blocking_send(SourceEvent::Lines(batch))?;
    // What a test waits for before it stops a tailer: these lines are in the
    // pipeline, and whatever stops it must let them through.
    tracing::trace!(path = %stream.path, offset = handle.delivered_offset(), "lines sent");
    Ok(())
}

/// Takes the complete lines out of `buf` (which starts with the `held` bytes kept
/// from before), leaving the unterminated rest in `handle.partial`.
fn split_lines(
    handle: &mut Handle,
    mut buf: Vec<u8>,
    held: usize,
    max_line: usize,
) -> Option<bytes::Bytes> {
    let Some(last_nl) = memchr::memrchr(b'\n', &buf[held..]).map(|i| held + i) else {
        // Still no end of line.
        if handle.cut > 0 {
            handle.cut += (buf.len() - held) as u64;
            buf.truncate(held);
        } else if buf.len() > max_line {
            let keep = char_boundary(&buf, max_line);
            handle.cut = (buf.len() - keep) as u64;
            buf.truncate(keep);
        }
        handle.partial = buf;
        return None;
    };
    let mut rest = buf.split_off(last_nl + 1);
    if rest.len() > max_line {
        let keep = char_boundary(&rest, max_line);
        let cut = (rest.len() - keep) as u64;
        rest.truncate(keep);
        // The line before may be cut too; `cut_lines` below settles it first.
        let text = fit_read_buffer(cut_lines(buf, held, handle.cut, max_line));
        handle.partial = rest;
        handle.cut = cut;
        return Some(text);
    }
    let text = if handle.cut == 0 && !may_have_long_line(&buf, max_line) {
        buf
    } else {
        cut_lines(buf, held, handle.cut, max_line)
    };
    handle.partial = rest;
    handle.cut = 0;
    Some(fit_read_buffer(text))
}

/// Hands out the held-back unterminated line as a line of its own (at end of input,
/// or when the file it came from is done).
pub(super) fn flush_partial(handle: &mut Handle, stream: &Arc<Stream>) -> Option<ReadBatch> {
    if handle.partial.is_empty() && handle.cut == 0 {
        return None;
    }
    let start = handle.delivered_offset();
    let mut bytes = std::mem::take(&mut handle.partial);
    if handle.cut > 0 {
        push_cut_mark(&mut bytes, handle.cut);
        handle.cut = 0;
    }
    bytes.push(b'\n');
    Some(ReadBatch {
        stream: stream.clone(),
        ts: SystemTime::now(),
        bytes: fit_read_buffer(bytes),
        origin: Some(handle.origin(start, handle.offset)),
    })
}

/// The offset at which the last `n` lines of a file of `len` bytes start. An
/// unterminated last line counts as a line only when `partial_counts` (when
/// following, it is read once it is finished instead).
pub(super) fn start_of_last_lines(
    file: &File,
    len: u64,
    n: u64,
    partial_counts: bool,
) -> io::Result<u64> {
    const BLOCK: u64 = 64 * 1024;
    if len == 0 || (n == 0 && partial_counts) {
        return Ok(len);
    }
    let mut last = [0u8];
    file.read_exact_at(&mut last, len - 1)?;
    let mut newlines_wanted = if partial_counts && last[0] != b'\n' {
        n
    } else {
        n + 1
    };
    let mut end = len;
    let mut buf = vec![0; BLOCK as usize];
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        let block = &mut buf[..(end - start) as usize];
        file.read_exact_at(block, start)?;
        for i in memchr::memrchr_iter(b'\n', block) {
            newlines_wanted -= 1;
            if newlines_wanted == 0 {
                return Ok(start + i as u64 + 1);
            }
        }
        end = start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    /// A temporary file holding `bytes`, and it opened for reading.
    fn file_with(bytes: &[u8]) -> anyhow::Result<(tempfile::NamedTempFile, File)> {
        let mut f = tempfile::NamedTempFile::new().context("creating a temporary file")?;
        std::io::Write::write_all(&mut f, bytes).context("writing the temporary file")?;
        let file = File::open(f.path()).context("opening the temporary file")?;
        Ok((f, file))
    }

    fn handle_for(bytes: &[u8]) -> anyhow::Result<(tempfile::NamedTempFile, Handle)> {
        let (f, _) = file_with(bytes)?;
        let (h, _) = Handle::open(f.path()).context("opening the temporary file")?;
        Ok((f, h))
    }

    #[test]
    fn last_lines_start() -> anyhow::Result<()> {
        let (_f, file) = file_with(b"a\nb\nc\n")?;
        assert_eq!(start_of_last_lines(&file, 6, 0, false)?, 6);
        assert_eq!(start_of_last_lines(&file, 6, 1, false)?, 4);
        assert_eq!(start_of_last_lines(&file, 6, 5, false)?, 0);
        assert_eq!(start_of_last_lines(&file, 6, 1, true)?, 4);
        assert_eq!(start_of_last_lines(&file, 6, 0, true)?, 6);
        let (_f, file) = file_with(b"a\nb\nc")?;
        assert_eq!(start_of_last_lines(&file, 5, 0, false)?, 4);
        assert_eq!(start_of_last_lines(&file, 5, 1, false)?, 2);
        assert_eq!(start_of_last_lines(&file, 5, 0, true)?, 5);
        assert_eq!(start_of_last_lines(&file, 5, 1, true)?, 4);
        assert_eq!(start_of_last_lines(&file, 5, 2, true)?, 2);
        Ok(())
    }

    #[test]
    fn splits_holds_partial_and_cuts_long_lines() -> anyhow::Result<()> {
        let (_f, mut h) = handle_for(b"")?;
        assert_eq!(
            split_lines(&mut h, b"ab\ncd".to_vec(), 0, 8).as_deref(),
            Some(&b"ab\n"[..])
        );
        assert_eq!(h.partial, b"cd");
        let buf = [h.partial.clone(), b"ef\n".to_vec()].concat();
        assert_eq!(
            split_lines(&mut h, buf, 2, 8).as_deref(),
            Some(&b"cdef\n"[..])
        );
        // A long line arriving in pieces: head kept, the rest counted, then marked.
        assert_eq!(split_lines(&mut h, b"0123456789".to_vec(), 0, 8), None);
        assert_eq!((h.partial.as_slice(), h.cut), (&b"01234567"[..], 2));
        let buf = [h.partial.clone(), b"abc\nok\n".to_vec()].concat();
        assert_eq!(
            split_lines(&mut h, buf, 8, 8).as_deref(),
            Some("01234567 [… 5 bytes cut]\nok\n".as_bytes())
        );
        assert_eq!(
            split_lines(&mut h, b"short\n0123456789ab\nx\n".to_vec(), 0, 8).as_deref(),
            Some("short\n01234567 [… 4 bytes cut]\nx\n".as_bytes())
        );
        assert_eq!(h.cut, 0);
        // Bytes as read: the hub checks them for UTF-8 (`LineBatch::from_read`).
        assert_eq!(
            split_lines(&mut h, b"a\xffb\n".to_vec(), 0, 8).as_deref(),
            Some(&b"a\xffb\n"[..])
        );
        Ok(())
    }

    #[test]
    fn long_line_check_never_misses() {
        for max in [1usize, 2, 3, 8, 9] {
            for len in 0..40usize {
                let line = vec![b'x'; len];
                let text = [b"ab\n".as_slice(), &line, b"\ncd\n"].concat();
                assert!(
                    may_have_long_line(&text, max) || len <= max,
                    "max {max} len {len}"
                );
            }
        }
    }
}
