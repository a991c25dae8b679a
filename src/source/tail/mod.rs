//! The file tailer: `tail -F` semantics, without losing or corrupting lines.
//!
//! Why our own: linemux (the obvious crate) drops the unread end of a file renamed
//! away, misses a truncation followed by a quick refill and then emits a corrupted
//! line, splits a partially written line in two, and fails on invalid UTF-8.
//!
//! How it works: one thread follows every file (`tailer`). File events
//! (`fs_events`: inotify on Linux, `notify` elsewhere) only wake it up and say which
//! paths to look at (or ask for a full pass); what happens is decided by looking at
//! the files themselves (stat and read), with periodic looks as a safety net for
//! missed events, overflowing event queues and network file systems: the targets are
//! walked for new files every second (`discovery`; as seldom as the recheck when
//! events cover every directory), paths whose writes events may not report and paths
//! still draining old handles every `poll_interval`, every path every
//! `recheck_interval`.
//!
//! # The life of a followed path (`followed`)
//!
//! A path (named, or found by a glob) is `followed::State::Closed` or
//! `followed::State::Reading` a file; besides, it keeps the files it named before
//! as `followed::Draining` handles. Each look first reads the draining handles,
//! then stats the path and takes the step `followed::transition` picks:
//!
//! - Closed, a file there: opened (`files`), without waiting on it. A directory,
//!   a pipe or device, a file that cannot be opened (permission…) is said once per
//!   kind of problem and stays Closed, tried again on every look ("readable now;
//!   following it" once it opens). Out of descriptors: said once for all files.
//!   One handle per file (device, inode), whatever its names: a file another path
//!   is Reading is left to it; a file some path is draining (renamed or linked
//!   back, rotated onto a name a glob matches) becomes this path's handle as it
//!   is, offset and held-back line included. Otherwise it starts per
//!   config at start-up (the end, the last n lines, the beginning; or where an
//!   earlier run left it, `resume`), at 0 later: all of a new file is new. The
//!   stream is announced (`StreamAdded`) on the first open; its lines are read.
//!   A named path with no file when it is first opened is said once ("no such
//!   file; will follow it when it appears"; "appeared; following it" later).
//! - Closed, nothing there: when it went missing is noted, nothing said. Another
//!   stat error (its directory unreadable) is said once.
//! - Reading, the same file, not truncated: read on up to the length seen. New bytes
//!   are split on `\n`; an unterminated last line is held back until its end
//!   arrives; longer lines than `max_line` are cut and marked.
//! - Reading, the same file, truncated (shorter than our offset, or the bytes just
//!   before it changed since the length or modification time did: copytruncate,
//!   even refilled to the same length): the held-back line comes out as a line,
//!   the epoch ([`crate::line::Origin::epoch`]) goes up, and it is read from its
//!   start.
//! - Reading, another file there (rename+create rotation, delete and re-create, a
//!   re-pointed symlink): the old one is read to its end and becomes draining, the
//!   new one is opened (as above) and read from its start.
//! - Reading, nothing there (renamed away, deleted, its directory removed or made
//!   unreadable): the old one is read to its end, becomes draining; the path is
//!   Closed, missing from now. (Permissions changed on an open file change
//!   nothing: the handle reads on.)
//! - A read error on the current handle is said; the handle is closed (Closed, not
//!   missing), the next look opens the path again.
//!
//! A draining handle is read on every look at its path, and whenever an event names
//! a path nobody follows (the rotated name: then every path's are); it is closed,
//! its held-back line coming out, once it has not grown for `retire_after` or fails to read. A globbed path that
//! has been missing for `retire_after`, with nothing left draining, is gone: no
//! longer followed or watched, its stream removed (`StreamRemoved`). A named path
//! is never dropped.
//!
//! Not following (`--no-follow`), each path is opened in its turn, read to its end,
//! its unterminated last line delivered, and closed; a file is read once whatever
//! its names.
//!
//! Lines longer than the limit are cut and marked, so no input can stop the tailer or
//! grow its memory. Bytes are handed over as read: the hub checks them for UTF-8
//! (invalid sequences turn into U+FFFD), off this thread, which a scan waits for.
//! Standard input is read by `spawn_stdin` on a thread of its own.

mod discovery;
mod files;
mod followed;
mod handle;
#[cfg(test)]
mod lifecycle;
mod resume;
mod stdin;
mod tailer;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use super::fs_events::FileEvents;
pub use super::fs_events::Stop;
use super::glob::Target;
use super::EventSender;
use crate::shutdown::Handle;
pub use resume::Resume;
pub use stdin::{spawn_stdin, STDIN_NAME};
use tailer::Tailer;

/// Where to start reading a file that exists when the tailer starts. Files that
/// appear later are always read from their start: all of their content is new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Beginning,
    /// After the last `n` complete lines (0: only what is written from now on).
    LastLines(u64),
}

#[derive(Debug, Clone)]
pub struct TailConfig {
    pub start: StartAt,
    /// Keep following after reaching the end; `false` reads to the end once and stops.
    pub follow: bool,
    /// Longer lines are cut to this many bytes and marked.
    pub max_line: usize,
    /// How often files are checked whose writes file events may not report (on a
    /// network file system, through a symlink or a second hard link, in a directory
    /// that could not be watched; every file without events).
    pub poll_interval: Duration,
    /// How often every file is checked, even those whose writes events report: a
    /// safety net for writes no event tells of (through a memory map, say). Longer
    /// for more than 5,000 files (see `RECHECK_STATS`).
    pub recheck_interval: Duration,
    /// Bytes read per `read` call, and so the largest batch.
    pub read_chunk: usize,
    /// How long a rotated-away file is still read after it last grew.
    pub retire_after: Duration,
    pub host: String,
    /// The set of [`spawn`]'s targets ([`spawn_sets`] names one per set of targets).
    pub set: String,
    /// Where to resume files read before (an agent's `--state-file`): path → the
    /// file's (device, inode) and the offset up to which its lines were delivered.
    /// The same file resumes there; another file at that path is read from its start.
    pub resume: HashMap<PathBuf, Resume>,
    /// Where file events come from (the platform's best by default).
    pub file_events: FileEvents,
    /// Ends the tailer when stopped (the hub's stop); without one it ends when its
    /// events have nowhere to go.
    pub stop: Option<Stop>,
}

impl Default for TailConfig {
    fn default() -> Self {
        TailConfig {
            start: StartAt::LastLines(0),
            follow: true,
            max_line: 64 * 1024,
            poll_interval: Duration::from_millis(250),
            recheck_interval: Duration::from_secs(2),
            read_chunk: 256 * 1024,
            retire_after: Duration::from_secs(5),
            host: crate::line::local_hostname(),
            set: "default".to_owned(),
            resume: HashMap::new(),
            file_events: FileEvents::default(),
            stop: None,
        }
    }
}

/// How a tailer run ended.
#[derive(Debug, Default, Clone, Copy)]
pub struct TailSummary {
    /// Files that could not be read (missing, permission denied…).
    pub errors: usize,
}

/// Starts following `targets` on a thread of its own; events go to `out`. The thread
/// ends when `out` is closed, or after one pass when not following.
pub fn spawn(
    targets: Vec<Target>,
    config: TailConfig,
    out: EventSender,
) -> io::Result<std::thread::JoinHandle<TailSummary>> {
    let set = config.set.clone();
    spawn_sets(vec![(set, targets)], config, out, None)
}

/// Like [`spawn`], for targets in several named sets (the hub's `[[set]]`s), all
/// followed by one tailer, so that a file two sets name is read once: it belongs to
/// the first set that names it (by path, or by file under another name). The
/// thread holds `running`, if given, until it ends (the hub's stop waits for it:
/// see `TailConfig::stop` for telling it to).
pub fn spawn_sets(
    sets: Vec<(String, Vec<Target>)>,
    config: TailConfig,
    out: EventSender,
    running: Option<Handle>,
) -> io::Result<std::thread::JoinHandle<TailSummary>> {
    let (mut targets, mut names) = (Vec::new(), Vec::new());
    for (set, set_targets) in sets {
        names.extend(std::iter::repeat_n(set, set_targets.len()));
        targets.extend(set_targets);
    }
    let tail = move || Tailer::new(targets, names, config, out).run();
    match running {
        Some(running) => crate::shutdown::spawn_thread("tailer", running, tail),
        None => std::thread::Builder::new()
            .name("tailer".into())
            .spawn(tail),
    }
}
