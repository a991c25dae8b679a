//! One followed path and the life of the files it names: the states and transitions
//! the module documentation ([`super`]) lays out. Owns the path's open handle, the
//! rotated-away handles it still drains, and what was said about it. Opening a file
//! is the tailer's step ([`super::files`]): the file may be held under another name.

use std::fs::Metadata;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::super::events::Closed;
use super::super::fs_events::Watch;
use super::super::{EventSender, SourceEvent};
use super::handle::{drain, flush_partial, DrainError, Handle};
use super::{TailConfig, TailSummary};
use crate::line::Stream;
use crate::{open_files, regular_file};

/// What every followed path's steps use: the configuration, where events go, the
/// file events, and the tally of problems.
pub(super) struct Env {
    pub(super) config: TailConfig,
    pub(super) out: EventSender,
    pub(super) watch: Option<Watch>,
    pub(super) summary: TailSummary,
    /// The process ran out of file descriptors, and said so.
    said_out_of_descriptors: bool,
}

impl Env {
    pub(super) fn new(config: TailConfig, out: EventSender) -> Env {
        Env {
            config,
            out,
            watch: None,
            summary: TailSummary::default(),
            said_out_of_descriptors: false,
        }
    }

    pub(super) fn send(&self, event: SourceEvent) -> Result<(), Closed> {
        self.out.blocking_send(event)
    }
}

/// Where a followed path is in its life.
pub(super) enum State {
    /// No file open: not found yet, or gone (`missing_since`: since when nothing
    /// was found there; a globbed path missing for `retire_after` is removed), or
    /// it could not be opened (said once, in `reported`). Tried again on every look.
    Closed { missing_since: Option<Instant> },
    /// Reading the file the path names.
    Reading(Handle),
}

/// A rotated-away handle, read on until it has not grown for `retire_after`
/// (writers reopen late).
pub(super) struct Draining {
    pub(super) handle: Handle,
    last_growth: Instant,
}

impl Draining {
    pub(super) fn new(handle: Handle) -> Draining {
        Draining {
            handle,
            last_growth: Instant::now(),
        }
    }
}

/// What a look at a path found, against the handle open on it (if any).
#[derive(Debug)]
pub(super) enum Seen {
    /// The open file, `len` bytes long; `truncated`: it no longer holds what was
    /// read (shorter than our offset, or other bytes just before it).
    Same { len: u64, truncated: bool },
    /// A file, not the one open (or none is open).
    File,
    /// Nothing (`NotFound`).
    Missing,
    /// The path cannot be looked at (a directory on the way became unreadable…).
    Unreachable(io::Error),
}

/// What a look does, decided by [`transition`] from the state and what was seen.
#[derive(Debug)]
pub(super) enum Step {
    /// Nothing open, a file there: open it (the tailer's step), read it.
    Open,
    /// Nothing open, nothing there: note since when, wait for it.
    Wait,
    /// Nothing open and the path cannot be looked at: say so, once.
    Report(io::Error),
    /// Read on, up to the length seen (what was written since comes with the look
    /// that write asks for).
    Read { to: u64 },
    /// Truncated (copytruncate, maybe refilled): what was held back of the old
    /// content is a line; the next epoch is read from the start, up to `to`.
    Restart { to: u64 },
    /// The path names another file (rename+create rotation, delete and re-create,
    /// a re-pointed symlink): read the old one to its end and drain it on; then
    /// [`Step::Open`] the new one.
    Rotated,
    /// The path names nothing now (renamed away, deleted, its directory gone or
    /// unreadable): read the old file to its end, drain it on, wait for a new one.
    Vanished,
}

/// The transitions of a followed path, in one place: from being open or not, and
/// what a look found, to what is done.
pub(super) fn transition(open: bool, seen: Seen) -> Step {
    match (open, seen) {
        (false, Seen::File | Seen::Same { .. }) => Step::Open,
        (false, Seen::Missing) => Step::Wait,
        (false, Seen::Unreachable(e)) => Step::Report(e),
        (true, Seen::Same { len, truncated }) if truncated => Step::Restart { to: len },
        (true, Seen::Same { len, .. }) => Step::Read { to: len },
        (true, Seen::File) => Step::Rotated,
        (true, Seen::Missing | Seen::Unreachable(_)) => Step::Vanished,
    }
}

/// What the tailer does after a look.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    Done,
    /// Open the file at the path now ([`super::files::Files::open`]), then read it.
    Open,
}

/// One followed path.
pub(super) struct Followed {
    pub(super) path: PathBuf,
    /// `path` as file events name it (see [`super::super::fs_events::path_key`]).
    pub(super) key: PathBuf,
    pub(super) stream: Arc<Stream>,
    /// Named on the command line: waited for when missing, never dropped.
    pub(super) explicit: bool,
    pub(super) state: State,
    /// Files this path named before (rotated away, replaced, deleted), still read.
    pub(super) draining: Vec<Draining>,
    pub(super) announced: bool,
    /// File events report its writes (as of its last look): the frequent
    /// periodic pass leaves it out.
    reported_by_events: bool,
    /// The last problem reported, so it is said once, not every poll.
    reported: Option<io::ErrorKind>,
}

impl Followed {
    pub(super) fn new(path: PathBuf, key: PathBuf, stream: Arc<Stream>, explicit: bool) -> Self {
        Followed {
            path,
            key,
            stream,
            explicit,
            state: State::Closed {
                missing_since: None,
            },
            draining: Vec::new(),
            announced: false,
            reported_by_events: false,
            reported: None,
        }
    }

    /// The handle open on the path's file, if any.
    pub(super) fn current(&self) -> Option<&Handle> {
        match &self.state {
            State::Reading(h) => Some(h),
            State::Closed { .. } => None,
        }
    }

    /// Every handle open for this path: the current one and those draining.
    pub(super) fn handles(&self) -> impl Iterator<Item = &Handle> {
        let draining = self.draining.iter().map(|d| &d.handle);
        self.current().into_iter().chain(draining)
    }

    /// Closes the current handle (its unread rest and held-back line are dropped).
    pub(super) fn close(&mut self) -> Option<Handle> {
        let closed = State::Closed {
            missing_since: None,
        };
        match std::mem::replace(&mut self.state, closed) {
            State::Reading(h) => Some(h),
            // Closed already: it stays as it was (missing since when it was).
            was @ State::Closed { .. } => {
                self.state = was;
                None
            }
        }
    }

    /// Looked at every poll interval: events may not report its writes, or its
    /// rotated-away handles are being drained (until `retire_after`).
    pub(super) fn polled(&self) -> bool {
        !self.reported_by_events || !self.draining.is_empty()
    }

    /// A globbed path that names nothing for `retire_after`, its old handles done:
    /// it is removed.
    pub(super) fn is_gone(&self, config: &TailConfig) -> bool {
        let missing = match self.state {
            State::Closed { missing_since } => missing_since,
            State::Reading(_) => None,
        };
        !self.explicit
            && self.draining.is_empty()
            && missing.is_some_and(|t| t.elapsed() >= config.retire_after)
    }

    /// Notes that nothing was found at the path (keeping since when).
    pub(super) fn note_missing(&mut self) {
        if let State::Closed { missing_since } = &mut self.state {
            missing_since.get_or_insert_with(Instant::now);
        }
    }

    /// One look: drains the old handles, looks at the path, and takes the step
    /// [`transition`] says.
    pub(super) fn look(&mut self, env: &mut Env) -> Result<Next, Closed> {
        self.drain(env)?;
        let seen = match (self.stat(env), &mut self.state) {
            (Ok(meta), State::Reading(h)) if h.is(&meta) => Seen::Same {
                len: meta.len(),
                truncated: h.was_truncated(&meta),
            },
            (Ok(_), _) => Seen::File,
            (Err(e), _) if e.kind() == io::ErrorKind::NotFound => Seen::Missing,
            (Err(e), _) => Seen::Unreachable(e),
        };
        let open = matches!(self.state, State::Reading(_));
        match transition(open, seen) {
            Step::Open => return Ok(Next::Open),
            Step::Wait => self.note_missing(),
            Step::Report(e) => self.report(env, e.kind(), &e.to_string()),
            Step::Read { to } => self.read_current(env, Some(to))?,
            Step::Restart { to } => {
                tracing::debug!(path = %self.path.display(), "truncated; reading from the start");
                // (Restart is only ever the step of an open file.)
                let State::Reading(handle) = &mut self.state else {
                    return Ok(Next::Done);
                };
                // What was held back of the old content is still a line.
                let pending = flush_partial(handle, &self.stream);
                handle.epoch = handle.epoch.saturating_add(1);
                let reset = handle.seek(0);
                if let Some(batch) = pending {
                    env.send(SourceEvent::Lines(batch))?;
                }
                if let Err(e) = reset {
                    self.report(env, e.kind(), &e.to_string());
                    self.close();
                    return Ok(Next::Done);
                }
                self.read_current(env, Some(to))?;
            }
            Step::Rotated => {
                // Finish the old one, then switch.
                tracing::debug!(path = %self.path.display(), "replaced; following the new file");
                self.read_current(env, None)?;
                self.retire();
                return Ok(Next::Open);
            }
            Step::Vanished => {
                // The handle we have is read on as a rotated-away one, until it has
                // not grown for `retire_after`, then closed (a deleted file's space
                // is freed only then; its held-back partial line comes out). A new
                // file at this path is picked up when it appears; the same one, if
                // it comes back, goes on from here.
                tracing::debug!(path = %self.path.display(), "gone; reading what is left of it");
                let since = Instant::now();
                self.read_current(env, None)?;
                self.retire();
                self.state = State::Closed {
                    missing_since: Some(since),
                };
            }
        }
        Ok(Next::Done)
    }

    /// The current handle becomes a rotated-away one.
    fn retire(&mut self) {
        if let Some(old) = self.close() {
            self.draining.push(Draining::new(old));
        }
    }

    /// Stats the path (through a symlink), and notes whether file events report its
    /// writes ([`Watch::reports_writes`]). A symlink to another directory or a file
    /// with a second name gets a watch of its own for that.
    fn stat(&mut self, env: &mut Env) -> io::Result<Metadata> {
        // Not while missing: a symlink's target may reappear where nothing watches.
        self.reported_by_events = false;
        // One lstat tells all for a plain file; only a symlink costs a second stat.
        let own = std::fs::symlink_metadata(&self.path)?;
        let direct = !own.file_type().is_symlink();
        let meta = if direct {
            own
        } else {
            std::fs::metadata(&self.path)?
        };
        let Some(watch) = &mut env.watch else {
            return Ok(meta);
        };
        let mut reported = watch.reports_writes(&self.key, &meta, direct);
        if !reported && (!direct || meta.nlink() > 1) {
            // Its directory's watch does not see every write: its own watch will.
            watch.watch_file(&self.key, &meta);
            reported = watch.reports_writes(&self.key, &meta, direct);
        }
        self.reported_by_events = reported;
        Ok(meta)
    }

    /// Reads the current handle to its end, or to `len` (its length as just seen:
    /// what was written since is read on the event that write caused). A read
    /// error is said and closes it (the next look opens the path again).
    pub(super) fn read_current(&mut self, env: &mut Env, len: Option<u64>) -> Result<(), Closed> {
        let State::Reading(handle) = &mut self.state else {
            return Ok(());
        };
        match drain(handle, len, &self.stream, &env.config, &env.out) {
            Ok(()) => Ok(()),
            Err(DrainError::Closed) => Err(Closed),
            Err(DrainError::Io(e)) => {
                self.report(env, e.kind(), &e.to_string());
                self.close();
                Ok(())
            }
        }
    }

    /// Reads the rotated-away handles on; closes those that have not grown for
    /// `retire_after` or fail, their held-back partial line coming out as a line.
    pub(super) fn drain(&mut self, env: &mut Env) -> Result<(), Closed> {
        let mut k = 0;
        while k < self.draining.len() {
            let Draining {
                handle,
                last_growth,
            } = &mut self.draining[k];
            let before = handle.offset;
            // Read errors on an old handle just end it.
            let result = drain(handle, None, &self.stream, &env.config, &env.out);
            if matches!(result, Err(DrainError::Closed)) {
                return Err(Closed);
            }
            if handle.offset != before {
                *last_growth = Instant::now();
            }
            if result.is_err() || last_growth.elapsed() >= env.config.retire_after {
                let mut old = self.draining.swap_remove(k).handle;
                if let Some(batch) = flush_partial(&mut old, &self.stream) {
                    env.send(SourceEvent::Lines(batch))?;
                }
            } else {
                k += 1;
            }
        }
        Ok(())
    }

    /// Not following: delivers the last unterminated line, as grep would.
    pub(super) fn finish(&mut self, env: &mut Env) -> Result<(), Closed> {
        if let State::Reading(handle) = &mut self.state {
            if let Some(batch) = flush_partial(handle, &self.stream) {
                env.send(SourceEvent::Lines(batch))?;
            }
        }
        Ok(())
    }

    /// Opens the path's file, if it is one that can be followed; says what is wrong
    /// otherwise (a directory, a pipe, missing, unreadable, out of descriptors).
    pub(super) fn try_open(&mut self, env: &mut Env) -> Option<(Handle, Metadata)> {
        match Handle::open(&self.path) {
            Ok((_, meta)) if meta.is_dir() => {
                let hint = format!(
                    "is a directory (for the files in it, give a glob: '{}/*')",
                    self.path.display()
                );
                self.report(env, io::ErrorKind::IsADirectory, &hint);
                None
            }
            Ok(opened) => Some(opened),
            // A pipe (`<(zcat old.log.gz)`, a FIFO) or a device has no offsets to
            // follow by: standard input takes a stream.
            Err(e) if regular_file::is_not_regular(&e) => {
                let hint = format!(
                    "is not a regular file (a pipe?): give it on standard input: \
                     supergrep -e PATTERN < {}",
                    self.path.display()
                );
                self.report(env, io::ErrorKind::InvalidInput, &hint);
                None
            }
            Err(e) if open_files::exhausted(&e) => {
                self.out_of_descriptors(env, &e);
                None
            }
            Err(e) => {
                if e.kind() == io::ErrorKind::NotFound {
                    self.note_missing();
                }
                let suffix = if env.config.follow {
                    "; will follow it when it appears"
                } else {
                    ""
                };
                let message = if e.kind() == io::ErrorKind::NotFound {
                    format!("no such file{suffix}")
                } else {
                    e.to_string()
                };
                self.report(env, e.kind(), &message);
                None
            }
        }
    }

    /// Makes `handle` the current one: the path is read from it on. Announces the
    /// stream the first time; says so if the path was missing or unreadable.
    pub(super) fn adopt(&mut self, env: &mut Env, handle: Handle) -> Result<(), Closed> {
        match self.reported.take() {
            Some(io::ErrorKind::NotFound) if self.explicit => {
                crate::say!("supergrep: {}: appeared; following it", self.path.display())
            }
            Some(io::ErrorKind::NotFound) | None => {}
            Some(_) => crate::say!(
                "supergrep: {}: readable now; following it",
                self.path.display()
            ),
        }
        self.state = State::Reading(handle);
        if !self.announced {
            self.announced = true;
            env.send(SourceEvent::StreamAdded(self.stream.clone()))?;
        }
        Ok(())
    }

    /// Says what is wrong with the path, once per kind of problem.
    pub(super) fn report(&mut self, env: &mut Env, kind: io::ErrorKind, message: &str) {
        if self.reported != Some(kind) {
            self.reported = Some(kind);
            env.summary.errors += 1;
            // Not found for a globbed file means it went away: nothing to say.
            if self.explicit || kind != io::ErrorKind::NotFound {
                crate::say!("supergrep: {}: {message}", self.path.display());
            }
        }
    }

    /// No descriptor is left to open the path's file. Said once for all files: a
    /// tree past the limit would print a line per file. Following, it is opened on a
    /// later look if descriptors free up.
    fn out_of_descriptors(&mut self, env: &mut Env, e: &io::Error) {
        if self.reported != Some(e.kind()) {
            self.reported = Some(e.kind());
            env.summary.errors += 1;
        }
        if env.said_out_of_descriptors {
            return;
        }
        env.said_out_of_descriptors = true;
        let limit = open_files::limit().map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
        let then = if env.config.follow {
            "followed once descriptors free up"
        } else {
            "not read"
        };
        crate::say!(
            "supergrep: {}: {e}: the limit on open files ({limit}; see `ulimit -n`) is \
             reached; this file and any other past the limit are {then}",
            self.path.display()
        );
    }
}
