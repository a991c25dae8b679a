//! The file tailer: `tail -F` semantics, without losing or corrupting lines.
//!
//! Why our own: linemux (the obvious crate) drops the unread end of a file renamed
//! away, misses a truncation followed by a quick refill and then emits a corrupted
//! line, splits a partially written line in two, and fails on invalid UTF-8.
//!
//! How it works: one thread follows every file. File events (`fs_events`: inotify on
//! Linux, `notify` elsewhere) only wake it up and say which files to look at; what
//! happens is decided by looking at the files themselves (stat and read), with a poll
//! of every file as a safety net for missed events, overflowing event queues and
//! network file systems. Per file we keep the open handle with its device, inode and
//! offset:
//! - new bytes are read from the handle and split on `\n`; a partial last line is held
//!   back until its end arrives;
//! - the path now names another inode (rename+create rotation, delete and re-create,
//!   a re-pointed symlink): the old handle is drained to its end and kept draining for
//!   a while (writers reopen late), and the new file is read from its start;
//! - the file is shorter than our offset, or the bytes just before our offset changed
//!   (truncated and quickly refilled): copytruncate, read again from the start;
//! - the file does not exist (yet): say so once, follow it when it appears.
//!
//! Lines longer than the limit are cut and marked, so no input can stop the tailer or
//! grow its memory. Bytes are handed over as read: the hub checks them for UTF-8
//! (invalid sequences turn into U+FFFD), off this thread, which a scan waits for.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs::{File, Metadata};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::AsFd;
use std::os::unix::fs::{DirEntryExt, FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::events::Closed;
use super::fs_events::{path_key, FileEvents, Pending, Watch};
use super::glob::Target;
use super::{EventSender, SourceEvent};
use crate::line::{
    char_boundary, cut_lines, fit_read_buffer, may_have_long_line, push_cut_mark, Origin,
    ReadBatch, Stream,
};
use crate::{open_files, regular_file};

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
}

/// A file and how far it was delivered.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Resume {
    pub dev: u64,
    pub ino: u64,
    pub offset: u64,
    /// The file's bytes just before `offset` (up to `RESUME_CHECK_BYTES`), in hex.
    /// Other bytes there later mean the file was truncated and written again
    /// meanwhile (copytruncate while an agent was stopped): then it is read from its
    /// start, as the live tailer does. Absent (older state files): not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// The file's [`Origin::epoch`] at `offset`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub epoch: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// How many bytes before a resume offset are kept to recognise the file's content.
const RESUME_CHECK_BYTES: u64 = 32;

impl Resume {
    /// Notes the bytes before `offset` as `file` (the file this is about) holds them.
    pub fn note_before(&mut self, file: &File) -> io::Result<()> {
        self.before = Some(hex(&bytes_before(file, self.offset)?));
        Ok(())
    }

    /// Whether `file` still holds, before `offset`, the bytes noted then.
    fn same_before(&self, file: &File) -> bool {
        match &self.before {
            None => true,
            Some(noted) => bytes_before(file, self.offset).is_ok_and(|b| hex(&b) == *noted),
        }
    }
}

/// The up to `RESUME_CHECK_BYTES` bytes of `file` before `offset`.
fn bytes_before(file: &File, offset: u64) -> io::Result<Vec<u8>> {
    let n = offset.min(RESUME_CHECK_BYTES);
    let mut buf = vec![0; n as usize];
    file.read_exact_at(&mut buf, offset - n)?;
    Ok(buf)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
    spawn_sets(vec![(set, targets)], config, out)
}

/// Like [`spawn`], for targets in several named sets (the hub's `[[set]]`s), all
/// followed by one tailer, so that a file two sets name is read once: it belongs to
/// the first set that names it (by path, or by file under another name).
pub fn spawn_sets(
    sets: Vec<(String, Vec<Target>)>,
    config: TailConfig,
    out: EventSender,
) -> io::Result<std::thread::JoinHandle<TailSummary>> {
    let (mut targets, mut names) = (Vec::new(), Vec::new());
    for (set, set_targets) in sets {
        names.extend(std::iter::repeat_n(set, set_targets.len()));
        targets.extend(set_targets);
    }
    std::thread::Builder::new()
        .name("tailer".into())
        .spawn(move || Tailer::new(targets, names, config, out).run())
}

/// Standard input's name as a stream (grep's).
pub const STDIN_NAME: &str = "(standard input)";

/// Reads standard input on a thread of its own to its end (`cmd | supergrep -e P`),
/// sending complete lines as they come (one `read` at a time, so a slow writer's
/// lines are not held back to fill a buffer), then what is left of a last line.
/// Nothing to follow after: a pipe that ends has ended.
pub fn spawn_stdin(
    config: TailConfig,
    out: EventSender,
) -> io::Result<std::thread::JoinHandle<TailSummary>> {
    let (mut handle, _) = Handle::new(File::from(io::stdin().as_fd().try_clone_to_owned()?))?;
    let stream = Arc::new(Stream::new(
        config.host.clone(),
        STDIN_NAME,
        config.set.clone(),
    ));
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || read_stdin(&mut handle, &stream, &config, &out))
}

fn read_stdin(
    handle: &mut Handle,
    stream: &Arc<Stream>,
    config: &TailConfig,
    out: &EventSender,
) -> TailSummary {
    let mut summary = TailSummary::default();
    if out
        .blocking_send(SourceEvent::StreamAdded(stream.clone()))
        .is_err()
    {
        return summary;
    }
    loop {
        let mut buf = std::mem::take(&mut handle.partial);
        let held = buf.len();
        buf.resize(held + config.read_chunk, 0);
        let n = match handle.file.read(&mut buf[held..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                buf.truncate(held);
                handle.partial = buf;
                continue;
            }
            Err(e) => {
                buf.truncate(held);
                handle.partial = buf;
                crate::say!("supergrep: {STDIN_NAME}: {e}");
                summary.errors += 1;
                break;
            }
        };
        buf.truncate(held + n);
        if n == 0 {
            handle.partial = buf;
            break;
        }
        let start = handle.delivered_offset();
        handle.offset += n as u64;
        if send_lines(handle, buf, held, start, stream, config, out).is_err() {
            return summary;
        }
    }
    if let Some(batch) = flush_partial(handle, stream) {
        let _ = out.blocking_send(SourceEvent::Lines(batch));
    }
    summary
}

/// The open handle of one file and how far it was read.
struct Handle {
    file: File,
    dev: u64,
    ino: u64,
    /// Bytes read so far (the read position).
    offset: u64,
    /// Head of the current unterminated line (at most `max_line` bytes).
    partial: Vec<u8>,
    /// Bytes of the current line dropped beyond `max_line`.
    cut: u64,
    /// The last bytes before `offset`, to notice a truncate-and-refill.
    fingerprint: Vec<u8>,
    /// Modification time at the last look, to skip re-reading the fingerprint of a
    /// file that did not change.
    modified: Option<(i64, i64)>,
    /// Times it was found truncated and written again (see [`Origin::epoch`]).
    epoch: u32,
}

const FINGERPRINT: usize = 64;

impl Handle {
    /// Opens `path` without waiting on it: a FIFO or device is refused through
    /// its handle (see [`regular_file`]); a directory is left to the caller.
    fn open(path: &Path) -> io::Result<(Handle, Metadata)> {
        let (file, meta) = regular_file::open(path)?;
        Ok(Handle::with_meta(file, meta))
    }

    /// A handle on `file`, at its start.
    fn new(file: File) -> io::Result<(Handle, Metadata)> {
        let meta = file.metadata()?;
        Ok(Handle::with_meta(file, meta))
    }

    fn with_meta(file: File, meta: Metadata) -> (Handle, Metadata) {
        (
            Handle {
                file,
                dev: meta.dev(),
                ino: meta.ino(),
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

    fn is(&self, meta: &Metadata) -> bool {
        self.dev == meta.dev() && self.ino == meta.ino()
    }

    fn seek(&mut self, offset: u64) -> io::Result<()> {
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
    fn was_truncated(&mut self, meta: &Metadata) -> bool {
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
            epoch: self.epoch,
            start,
            end,
        }
    }

    /// Start of the data not yet delivered as complete lines.
    fn delivered_offset(&self) -> u64 {
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

/// One followed path.
struct Followed {
    path: PathBuf,
    /// `path` as file events name it (see [`path_key`]).
    key: PathBuf,
    stream: Arc<Stream>,
    /// Named on the command line: waited for when missing, never dropped.
    explicit: bool,
    current: Option<Handle>,
    /// Rotated-away handles still drained, with when they last grew.
    retired: Vec<(Handle, Instant)>,
    announced: bool,
    /// File events report its writes (as of its last look): the frequent
    /// periodic pass leaves it out.
    reported_by_events: bool,
    /// The last problem reported, so it is said once, not every poll.
    reported: Option<io::ErrorKind>,
    missing_since: Option<Instant>,
}

impl Followed {
    /// Looked at every poll interval: events may not report its writes, or its
    /// rotated-away handles are being drained (until `retire_after`).
    fn polled(&self) -> bool {
        !self.reported_by_events || !self.retired.is_empty()
    }
}

/// Stats a second the recheck of files whose writes events report costs at most:
/// 5,000 files every 2 s, 50,000 every 20 s. It is a net for writes no event tells
/// of; on a big tree its cost would otherwise dwarf everything else the tailer does
/// while idle.
const RECHECK_STATS: f64 = 2500.0;

/// How often targets are looked at for new files that events may not tell of.
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(1);

/// Which files a periodic pass looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Look {
    Every,
    /// Those whose writes events may not report, and those with rotated-away
    /// handles still being drained.
    Unreported,
}

struct Tailer {
    targets: Vec<Target>,
    /// The set each target is in (its files' streams say it), in target order.
    target_sets: Vec<String>,
    config: TailConfig,
    out: EventSender,
    files: Vec<Followed>,
    /// Files by `Followed::key`, as bytes: keys are normalized, so equal paths are
    /// equal bytes, and hashing bytes is much cheaper than hashing a `Path` (by its
    /// components), which discovery does for every file it finds.
    index: HashMap<OsString, usize>,
    /// Where relative paths start; `None` (unknown) turns every look into a full pass.
    cwd: Option<PathBuf>,
    watch: Option<Watch>,
    summary: TailSummary,
    /// The process ran out of file descriptors, and said so.
    said_out_of_descriptors: bool,
    /// Some file is looked at every poll interval: its writes events may not
    /// report, or it has rotated-away handles being drained. Recomputed by every
    /// pass over the files; set by any look between them that finds such a file.
    some_polled: bool,
    /// Events tell of every file that appears where the targets look, as of the last
    /// [`Tailer::watch_dirs`]: see [`Tailer::discovery_interval`].
    events_cover_targets: bool,
    /// Not following: the files (device, inode) read already, each once whatever
    /// its names.
    read_once: HashSet<(u64, u64)>,
    /// The files (device, inode) any handle may be open on: every one opened since
    /// the last full pass, which rebuilds it. A file not in it is held by no other
    /// path, which spares opening it a look at every followed file (30,000 files
    /// took 1.6 s to start, three quarters of it in those looks).
    maybe_held: HashSet<(u64, u64)>,
}

impl Tailer {
    fn new(
        targets: Vec<Target>,
        target_sets: Vec<String>,
        config: TailConfig,
        out: EventSender,
    ) -> Self {
        Tailer {
            targets,
            target_sets,
            config,
            out,
            files: Vec::new(),
            index: HashMap::new(),
            cwd: std::env::current_dir().ok(),
            watch: None,
            summary: TailSummary::default(),
            said_out_of_descriptors: false,
            some_polled: true,
            events_cover_targets: false,
            read_once: HashSet::new(),
            maybe_held: HashSet::new(),
        }
    }

    fn run(mut self) -> TailSummary {
        if self.config.follow {
            self.start_watcher();
        }
        let _ = self.pass(true, Look::Every);
        if !self.config.follow {
            return self.summary;
        }
        let now = Instant::now();
        let (mut last_discovery, mut last_poll, mut last_every) = (now, now, now);
        loop {
            // The next periodic look due; the frequent one only while some file
            // needs it (an idle process then wakes every few seconds, not 4 times
            // a second).
            let due = [
                last_discovery.checked_add(self.discovery_interval()),
                last_every.checked_add(self.recheck_interval()),
                last_poll
                    .checked_add(self.config.poll_interval)
                    .filter(|_| self.some_polled),
            ];
            let next = due.into_iter().flatten().min();
            let pending = self.wait(next.map(|t| t.saturating_duration_since(Instant::now())));
            if pending.rescan || last_discovery.elapsed() >= self.discovery_interval() {
                last_discovery = Instant::now();
                self.watch_dirs();
                if self.discover(false).is_err() {
                    break;
                }
            }
            let every = pending.rescan
                || self.watch.is_none()
                || self.cwd.is_none()
                || last_every.elapsed() >= self.recheck_interval();
            let looked = if every {
                (last_every, last_poll) = (Instant::now(), Instant::now());
                self.pass(false, Look::Every)
            } else if self.some_polled && last_poll.elapsed() >= self.config.poll_interval {
                last_poll = Instant::now();
                self.pass_changed(&pending.changed)
                    .and_then(|()| self.pass(false, Look::Unreported))
            } else {
                self.pass_changed(&pending.changed)
            };
            if looked.is_err() {
                break;
            }
        }
        self.summary
    }

    /// How often every file is looked at: the configured interval, longer when there
    /// are so many files that the net would cost more than `RECHECK_STATS` stats a
    /// second.
    fn recheck_interval(&self) -> Duration {
        let by_count = Duration::from_secs_f64(self.files.len() as f64 / RECHECK_STATS);
        self.config.recheck_interval.max(by_count)
    }

    /// How often the targets are looked at for new files: every `DISCOVERY_INTERVAL`,
    /// or as seldom as every file is when events tell of every file that appears
    /// (then the walk is only the safety net; it was a third of following 5,000 idle
    /// files).
    fn discovery_interval(&self) -> Duration {
        if self.events_cover_targets {
            self.recheck_interval()
        } else {
            DISCOVERY_INTERVAL
        }
    }

    /// Sleeps until a file event or for `timeout` (the next periodic look; `None`:
    /// none is due, the intervals being too long to count); says what the events
    /// asked for.
    fn wait(&mut self, timeout: Option<Duration>) -> Pending {
        let timeout = timeout.unwrap_or(Duration::from_secs(3600));
        match &mut self.watch {
            Some(watch) => watch.wait(timeout),
            None => {
                std::thread::sleep(timeout);
                Pending::default()
            }
        }
    }

    fn start_watcher(&mut self) {
        match Watch::start(self.config.file_events) {
            Ok(w) => {
                self.watch = Some(w);
                self.watch_dirs();
            }
            Err(e) => tracing::warn!("file events unavailable ({e}); polling instead"),
        }
    }

    /// Watches the directories of every target; ones that do not exist yet are tried
    /// again on later discoveries.
    fn watch_dirs(&mut self) {
        let dirs: Vec<_> = self
            .targets
            .iter()
            .map(|t| (self.key(&t.watch_dir()), t.watch_depth()))
            .collect();
        let mut covered = self.watch.is_some() && self.cwd.is_some();
        if let Some(watch) = &mut self.watch {
            for (dir, depth) in dirs {
                covered &= watch.watch_dir(dir, depth);
            }
        }
        self.events_cover_targets = covered;
    }

    /// Adds the files the targets name now.
    fn discover(&mut self, startup: bool) -> Result<(), Closed> {
        let mut found = Vec::new();
        for (target, set) in self.targets.iter().zip(&self.target_sets) {
            let explicit = matches!(target, Target::File(_));
            // Only new files are sorted (they are announced in name order): sorting
            // every path each second was a fifth of following 15,000 idle files.
            let mut new: Vec<(PathBuf, PathBuf)> = target
                .expand()
                .into_iter()
                .map(|path| (self.key(&path), path))
                .filter(|(key, _)| !self.index.contains_key(key.as_os_str()))
                .collect();
            new.sort_unstable_by(|a, b| a.1.cmp(&b.1));
            found.extend(
                new.into_iter()
                    .map(|(key, path)| (key, path, explicit, set.clone())),
            );
        }
        for (key, path, explicit, set) in found {
            // Two targets can name one path: the first one's set has it.
            if self.index.contains_key(key.as_os_str()) {
                continue;
            }
            let stream = Arc::new(Stream::new(
                self.config.host.clone(),
                path.to_string_lossy(),
                set,
            ));
            self.index
                .insert(key.clone().into_os_string(), self.files.len());
            self.files.push(Followed {
                path,
                key,
                stream,
                explicit,
                current: None,
                retired: Vec::new(),
                announced: false,
                reported_by_events: false,
                reported: None,
                missing_since: None,
            });
            // Not following, each file is opened when its turn comes (see `pass`).
            if self.config.follow {
                let i = self.files.len() - 1;
                self.open(i, startup)?;
                // Found by the periodic look, not by an event (which asks for a full
                // pass): what it holds is read now, not on the next pass.
                if !startup {
                    self.check(i)?;
                    self.some_polled |= self.files[i].polled();
                }
            }
        }
        Ok(())
    }

    /// One look at the files `look` names: discover on the first pass, then read
    /// what is new.
    fn pass(&mut self, first: bool, look: Look) -> Result<(), Closed> {
        if first {
            self.discover(true)?;
            if self
                .targets
                .iter()
                .all(|t| matches!(t, Target::Glob { .. }))
                && self.files.is_empty()
            {
                crate::say!("supergrep: no file matches {}", self.patterns());
                // As grep does for a missing file; following, later files may match.
                if !self.config.follow {
                    self.summary.errors += 1;
                }
            }
        }
        let mut gone = Vec::new();
        let mut some_polled = false;
        for i in 0..self.files.len() {
            let f = &self.files[i];
            if look == Look::Unreported && !f.polled() {
                continue;
            }
            if !self.config.follow {
                self.read_to_end(i)?;
                continue;
            }
            self.check(i)?;
            some_polled |= self.files[i].polled();
            if self.is_gone(i) {
                gone.push(i);
            }
        }
        self.some_polled = some_polled;
        if look == Look::Every {
            self.maybe_held.clear();
            let open = self.files.iter().flat_map(|f| {
                let retired = f.retired.iter().map(|(h, _)| h);
                f.current.iter().chain(retired)
            });
            self.maybe_held.extend(open.map(|h| (h.dev, h.ino)));
        }
        for i in gone.into_iter().rev() {
            let f = self.files.swap_remove(i);
            self.index.remove(f.key.as_os_str());
            if let Some(watch) = &mut self.watch {
                watch.unwatch_file(&f.key);
            }
            if let Some(moved) = self.files.get(i) {
                self.index.insert(moved.key.clone().into_os_string(), i);
            }
            if f.announced {
                self.send(SourceEvent::StreamRemoved(f.stream))?;
            }
        }
        Ok(())
    }

    /// Looks only at the files events said were written to. A written path that names
    /// no followed file can be a rotated-away one still being drained: then those are
    /// read too.
    fn pass_changed(&mut self, changed: &[PathBuf]) -> Result<(), Closed> {
        let mut unknown = false;
        for key in changed {
            match self.index.get(key.as_os_str()) {
                Some(&i) => {
                    self.check(i)?;
                    self.some_polled |= self.files[i].polled();
                }
                None => unknown = true,
            }
        }
        if unknown {
            for i in 0..self.files.len() {
                if !self.files[i].retired.is_empty() {
                    self.drain_retired(i)?;
                }
            }
        }
        Ok(())
    }

    /// `path` as file events name it (the path itself if the working directory is
    /// unknown; then every look is a full pass anyway).
    fn key(&self, path: &Path) -> PathBuf {
        match &self.cwd {
            Some(cwd) => path_key(cwd, path),
            None => path.to_path_buf(),
        }
    }

    fn patterns(&self) -> String {
        self.targets
            .iter()
            .map(|t| match t {
                Target::File(p) => p.display().to_string(),
                Target::Glob { pattern, .. } => pattern.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A globbed file that was deleted and whose old handles are done.
    fn is_gone(&self, i: usize) -> bool {
        let f = &self.files[i];
        !f.explicit
            && f.current.is_none()
            && f.retired.is_empty()
            && f.missing_since
                .is_some_and(|t| t.elapsed() >= self.config.retire_after)
    }

    /// Opens file `i` if it exists now; at startup existing files start per config.
    fn open(&mut self, i: usize, startup: bool) -> Result<(), Closed> {
        let path = self.files[i].path.clone();
        match Handle::open(&path) {
            Ok((mut handle, meta)) => {
                if meta.is_dir() {
                    let hint = format!(
                        "is a directory (for the files in it, give a glob: '{}/*')",
                        path.display()
                    );
                    self.report(i, io::ErrorKind::IsADirectory, &hint);
                    return Ok(());
                }

                // The same file under another name (rotated to a name a glob matches, a
                // symlink pointed back, a second link): one handle per file, or lines
                // would be read twice.
                let id = (meta.dev(), meta.ino());
                if self.read_once.contains(&id) {
                    tracing::debug!(path = %path.display(), "read already under another name");
                    return Ok(());
                }
                // Not following, no other handle is open (`read_once` is the record);
                // a file no handle may be open on needs no look at the others.
                let held = if self.config.follow && !self.maybe_held.insert(id) {
                    self.holder(id.0, id.1)
                } else {
                    None
                };
                match held {
                    Some((j, None)) if j != i => {
                        tracing::debug!(path = %path.display(), other = %self.files[j].path.display(), "same file as another path; not reading it twice");
                        return Ok(());
                    }
                    Some((j, Some(k))) => {
                        // A handle still being drained: carry on from where it is.
                        let (held, _) = self.files[j].retired.swap_remove(k);
                        tracing::debug!(path = %path.display(), offset = held.offset, "following (file seen before under this or another name)");
                        handle = held;
                        return self.adopt(i, handle);
                    }
                    _ => {}
                }
                let resume = self.config.resume.get(&path).cloned();
                let start = match (startup, self.config.start) {
                    (true, _) if resume.is_some() => Ok(match resume {
                        // The same file: on from where it was left (unless it shrank,
                        // or was truncated and refilled meanwhile).
                        Some(r)
                            if r.dev == meta.dev()
                                && r.ino == meta.ino()
                                && r.offset <= meta.len()
                                && r.same_before(&handle.file) =>
                        {
                            handle.epoch = r.epoch;
                            r.offset
                        }
                        // The same file, truncated (and maybe written again): its
                        // content starts over, past all that was shipped of it.
                        Some(r) if r.dev == meta.dev() && r.ino == meta.ino() => {
                            handle.epoch = r.epoch.saturating_add(1);
                            0
                        }
                        // Another file by now (or other content): all of it is new.
                        // The one left was likely rotated while we were down: its
                        // rest comes first.
                        Some(r) => {
                            self.resume_rotated(i, &path, r);
                            0
                        }
                        None => 0,
                    }),
                    (true, StartAt::LastLines(n)) => {
                        // Not following, an unterminated last line is printed at the
                        // end, so it counts as one of the n.
                        start_of_last_lines(&handle.file, meta.len(), n, !self.config.follow)
                    }
                    _ => Ok(0),
                };
                if let Err(e) = start.and_then(|at| handle.seek(at)) {
                    self.report(i, e.kind(), &e.to_string());
                    return Ok(());
                }
                tracing::debug!(path = %path.display(), offset = handle.offset, "following");
                self.adopt(i, handle)
            }
            // A pipe (`<(zcat old.log.gz)`, a FIFO) or a device has no offsets to
            // follow by: standard input takes a stream.
            Err(e) if regular_file::is_not_regular(&e) => {
                let hint = format!(
                    "is not a regular file (a pipe?): give it on standard input: \
                     supergrep -e PATTERN < {}",
                    path.display()
                );
                self.report(i, io::ErrorKind::InvalidInput, &hint);
                Ok(())
            }
            Err(e) if open_files::exhausted(&e) => {
                self.out_of_descriptors(i, &e);
                Ok(())
            }
            Err(e) => {
                let f = &mut self.files[i];
                if e.kind() == io::ErrorKind::NotFound {
                    f.missing_since.get_or_insert_with(Instant::now);
                }
                let suffix = if self.config.follow {
                    "; will follow it when it appears"
                } else {
                    ""
                };
                let message = if e.kind() == io::ErrorKind::NotFound {
                    format!("no such file{suffix}")
                } else {
                    e.to_string()
                };
                self.report(i, e.kind(), &message);
                Ok(())
            }
        }
    }

    /// Which followed file holds a handle on (dev, ino): its index, and `Some(k)`
    /// when it is its k-th retired handle rather than its current one.
    fn holder(&self, dev: u64, ino: u64) -> Option<(usize, Option<usize>)> {
        self.files.iter().enumerate().find_map(|(j, f)| {
            if f.current
                .as_ref()
                .is_some_and(|h| h.dev == dev && h.ino == ino)
            {
                return Some((j, None));
            }
            f.retired
                .iter()
                .position(|(h, _)| h.dev == dev && h.ino == ino)
                .map(|k| (j, Some(k)))
        })
    }

    /// Makes `handle` the current one of file `i`.
    /// The file `resume` was about is no longer at `path` (rotated while we were not
    /// running, by rename): looks for it by inode next to `path` (`app.log.1`), and if
    /// it grew past where we were, reads on from there as a rotated-away handle of file
    /// `i`, before the new file. (Gone, or moved elsewhere: nothing to find.)
    fn resume_rotated(&mut self, i: usize, path: &Path, resume: Resume) {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let Some(found) = entries
            .flatten()
            .find(|e| e.ino() == resume.ino && e.path() != path)
        else {
            return;
        };
        let Ok((mut handle, meta)) = Handle::open(&found.path()) else {
            return;
        };
        let same = meta.dev() == resume.dev && meta.ino() == resume.ino;
        if !same || meta.len() <= resume.offset || handle.seek(resume.offset).is_err() {
            return;
        }
        tracing::debug!(path = %path.display(), rotated = %found.path().display(), offset = resume.offset, "resuming in the file rotated away meanwhile");
        self.maybe_held.insert((meta.dev(), meta.ino()));
        self.files[i].retired.push((handle, Instant::now()));
    }

    fn adopt(&mut self, i: usize, handle: Handle) -> Result<(), Closed> {
        let f = &mut self.files[i];
        match f.reported.take() {
            Some(io::ErrorKind::NotFound) if f.explicit => {
                crate::say!("supergrep: {}: appeared; following it", f.path.display())
            }
            Some(io::ErrorKind::NotFound) | None => {}
            Some(_) => crate::say!(
                "supergrep: {}: readable now; following it",
                f.path.display()
            ),
        }
        f.current = Some(handle);
        f.missing_since = None;
        if !f.announced {
            f.announced = true;
            let stream = f.stream.clone();
            self.send(SourceEvent::StreamAdded(stream))?;
        }
        Ok(())
    }

    /// Says what is wrong with file `i`, once per kind of problem.
    fn report(&mut self, i: usize, kind: io::ErrorKind, message: &str) {
        let f = &mut self.files[i];
        if f.reported != Some(kind) {
            f.reported = Some(kind);
            self.summary.errors += 1;
            // Not found for a globbed file means it went away: nothing to say.
            if f.explicit || kind != io::ErrorKind::NotFound {
                crate::say!("supergrep: {}: {message}", f.path.display());
            }
        }
    }

    /// No descriptor is left to open file `i`. Said once for all files: a tree past
    /// the limit would print a line per file. Following, it is opened on a later
    /// look if descriptors free up.
    fn out_of_descriptors(&mut self, i: usize, e: &io::Error) {
        let f = &mut self.files[i];
        if f.reported != Some(e.kind()) {
            f.reported = Some(e.kind());
            self.summary.errors += 1;
        }
        if self.said_out_of_descriptors {
            return;
        }
        self.said_out_of_descriptors = true;
        let limit = open_files::limit().map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
        let then = if self.config.follow {
            "followed once descriptors free up"
        } else {
            "not read"
        };
        crate::say!(
            "supergrep: {}: {e}: the limit on open files ({limit}; see `ulimit -n`) is \
             reached; this file and any other past the limit are {then}",
            f.path.display()
        );
    }

    /// Reads what is new in file `i`, handling rotation and truncation.
    fn check(&mut self, i: usize) -> Result<(), Closed> {
        self.drain_retired(i)?;
        let stat = self.stat(i);
        let f = &mut self.files[i];
        let Some(handle) = &mut f.current else {
            return match stat {
                Ok(_) => self
                    .open(i, false)
                    .and_then(|()| self.read_current(i, None)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    f.missing_since.get_or_insert_with(Instant::now);
                    Ok(())
                }
                Err(e) => {
                    self.report(i, e.kind(), &e.to_string());
                    Ok(())
                }
            };
        };
        match stat {
            Ok(meta) if handle.is(&meta) => {
                let len = meta.len();
                if handle.was_truncated(&meta) {
                    tracing::debug!(path = %f.path.display(), "truncated; reading from the start");
                    // What was held back of the old content is still a line.
                    let stream = f.stream.clone();
                    let pending = flush_partial(handle, &stream);
                    handle.epoch = handle.epoch.saturating_add(1);
                    let reset = handle.seek(0);
                    if let Some(batch) = pending {
                        self.send(SourceEvent::Lines(batch))?;
                    }
                    if let Err(e) = reset {
                        self.report(i, e.kind(), &e.to_string());
                        self.files[i].current = None;
                        return Ok(());
                    }
                }
                self.read_current(i, Some(len))
            }
            Ok(_) => {
                // Another file now has this name: finish the old one, then switch.
                tracing::debug!(path = %f.path.display(), "replaced; following the new file");
                self.read_current(i, None)?;
                let f = &mut self.files[i];
                if let Some(old) = f.current.take() {
                    f.retired.push((old, Instant::now()));
                }
                self.open(i, false)?;
                self.read_current(i, None)
            }
            Err(_) => {
                // Renamed away or deleted: the handle we have is read on as a
                // rotated-away one, until it has not grown for `retire_after`, then
                // closed (a deleted file's space is freed only then; its held-back
                // partial line comes out). A new file at this path is picked up when
                // it appears; the same one, if it comes back, goes on from here.
                tracing::debug!(path = %f.path.display(), "gone; reading what is left of it");
                f.missing_since.get_or_insert_with(Instant::now);
                self.read_current(i, None)?;
                let f = &mut self.files[i];
                if let Some(old) = f.current.take() {
                    f.retired.push((old, Instant::now()));
                }
                Ok(())
            }
        }
    }

    /// Stats file `i`'s path (through a symlink), and notes whether file events
    /// report its writes ([`Watch::reports_writes`]). A symlink to another directory
    /// or a file with a second name gets a watch of its own for that.
    fn stat(&mut self, i: usize) -> io::Result<Metadata> {
        let f = &mut self.files[i];
        // Not while missing: a symlink's target may reappear where nothing watches.
        f.reported_by_events = false;
        // One lstat tells all for a plain file; only a symlink costs a second stat.
        let own = std::fs::symlink_metadata(&f.path)?;
        let direct = !own.file_type().is_symlink();
        let meta = if direct {
            own
        } else {
            std::fs::metadata(&f.path)?
        };
        let Some(watch) = &mut self.watch else {
            return Ok(meta);
        };
        let mut reported = watch.reports_writes(&f.key, &meta, direct);
        if !reported && (!direct || meta.nlink() > 1) {
            // Its directory's watch does not see every write: its own watch will.
            watch.watch_file(&f.key, &meta);
            reported = watch.reports_writes(&f.key, &meta, direct);
        }
        f.reported_by_events = reported;
        Ok(meta)
    }

    /// Reads file `i`'s current handle to its end, or to `len` (its length as just
    /// seen: what was written since is read on the event that write caused).
    fn read_current(&mut self, i: usize, len: Option<u64>) -> Result<(), Closed> {
        let f = &mut self.files[i];
        let Some(handle) = &mut f.current else {
            return Ok(());
        };
        let stream = f.stream.clone();
        let result = drain(handle, len, &stream, &self.config, &self.out);
        self.after_read(i, result)
    }

    fn drain_retired(&mut self, i: usize) -> Result<(), Closed> {
        let f = &mut self.files[i];
        let stream = f.stream.clone();
        let mut k = 0;
        while k < f.retired.len() {
            let (handle, last_growth) = &mut f.retired[k];
            let before = handle.offset;
            // Read errors on an old handle just end it.
            let result = drain(handle, None, &stream, &self.config, &self.out);
            if matches!(result, Err(DrainError::Closed)) {
                return Err(Closed);
            }
            if handle.offset != before {
                *last_growth = Instant::now();
            }
            if result.is_err() || last_growth.elapsed() >= self.config.retire_after {
                let (mut old, _) = f.retired.swap_remove(k);
                if let Some(batch) = flush_partial(&mut old, &stream) {
                    self.out.blocking_send(SourceEvent::Lines(batch))?;
                }
            } else {
                k += 1;
            }
        }
        Ok(())
    }

    /// Not following: opens file `i`, reads it to its end and closes it, so that any
    /// number of files can be read with few descriptors (as grep does).
    fn read_to_end(&mut self, i: usize) -> Result<(), Closed> {
        self.open(i, true)?;
        if self.files[i].current.is_none() {
            return Ok(());
        }
        // Just opened: no rotation or truncation to look for (`check` would stat it
        // again for that).
        self.read_current(i, None)?;
        self.finish(i)?;
        if let Some(h) = self.files[i].current.take() {
            self.read_once.insert((h.dev, h.ino));
        }
        Ok(())
    }

    /// Not following: deliver the last unterminated line, as grep would.
    fn finish(&mut self, i: usize) -> Result<(), Closed> {
        let f = &mut self.files[i];
        let stream = f.stream.clone();
        if let Some(handle) = &mut f.current {
            if let Some(batch) = flush_partial(handle, &stream) {
                self.send(SourceEvent::Lines(batch))?;
            }
        }
        Ok(())
    }

    fn after_read(&mut self, i: usize, result: Result<(), DrainError>) -> Result<(), Closed> {
        match result {
            Ok(()) => Ok(()),
            Err(DrainError::Closed) => Err(Closed),
            Err(DrainError::Io(e)) => {
                self.report(i, e.kind(), &e.to_string());
                self.files[i].current = None;
                Ok(())
            }
        }
    }

    fn send(&self, event: SourceEvent) -> Result<(), Closed> {
        self.out.blocking_send(event)
    }
}

enum DrainError {
    Closed,
    Io(io::Error),
}

/// Reads `handle` to its current end (or to `len`, which saves the read that
/// finds the end), sending complete lines as batches.
fn drain(
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
        let start = handle.delivered_offset();
        handle.offset += n as u64;
        if n == 0 {
            handle.partial = buf;
            return Ok(());
        }
        handle.remember_tail(&buf[held..]);
        send_lines(handle, buf, held, start, stream, config, out)
            .map_err(|Closed| DrainError::Closed)?;
        if (n as u64) < want {
            // A short read: we are at the end for now.
            return Ok(());
        }
    }
}

/// Sends the complete lines of `buf` (just read, after the `held` bytes kept from
/// before; the lines start at file offset `start`) as one batch, and keeps the rest.
fn send_lines(
    handle: &mut Handle,
    buf: Vec<u8>,
    held: usize,
    start: u64,
    stream: &Arc<Stream>,
    config: &TailConfig,
    out: &EventSender,
) -> Result<(), Closed> {
    let Some(bytes) = split_lines(handle, buf, held, config.max_line) else {
        return Ok(());
    };
    let batch = ReadBatch {
        stream: stream.clone(),
        ts: SystemTime::now(),
        bytes,
        origin: Some(handle.origin(start, handle.delivered_offset())),
    };
    out.blocking_send(SourceEvent::Lines(batch))
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
fn flush_partial(handle: &mut Handle, stream: &Arc<Stream>) -> Option<ReadBatch> {
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
fn start_of_last_lines(file: &File, len: u64, n: u64, partial_counts: bool) -> io::Result<u64> {
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
    use anyhow::{bail, Context};

    fn target(arg: &str) -> anyhow::Result<Target> {
        Target::parse(arg).map_err(|e| anyhow::anyhow!("parsing target {arg}: {e}"))
    }

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

    /// Follows `targets` with periodic passes no test outlives: what arrives came
    /// through file events and the looks they asked for (or through the passes a
    /// test chooses: [`FollowedByEvents::polled`]). Lines come as "path: line".
    struct FollowedByEvents {
        events: super::super::EventReceiver,
        runtime: tokio::runtime::Runtime,
    }

    impl FollowedByEvents {
        fn start(targets: Vec<Target>, from: FileEvents) -> anyhow::Result<FollowedByEvents> {
            let hour = Duration::from_secs(3600);
            FollowedByEvents::polled(targets, from, hour, hour)
        }

        /// With these intervals for the periodic passes (see [`TailConfig`]).
        fn polled(
            targets: Vec<Target>,
            from: FileEvents,
            poll_interval: Duration,
            recheck_interval: Duration,
        ) -> anyhow::Result<FollowedByEvents> {
            let (out, events) = super::super::events::channel(64);
            let config = TailConfig {
                poll_interval,
                recheck_interval,
                file_events: from,
                ..TailConfig::default()
            };
            spawn(targets, config, out).context("spawning the tailer")?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .context("building the test runtime")?;
            Ok(FollowedByEvents { events, runtime })
        }

        fn next(&mut self) -> anyhow::Result<SourceEvent> {
            let next = self.runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), self.events.recv()).await
            });
            match next {
                Ok(Some(event)) => Ok(event),
                Ok(None) => bail!("the tailer stopped"),
                Err(_) => bail!("nothing from the tailer in 10 s"),
            }
        }

        /// Waits until `n` files are followed (and so watched).
        fn following(&mut self, n: usize) -> anyhow::Result<()> {
            for _ in 0..n {
                assert!(matches!(self.next()?, SourceEvent::StreamAdded(_)));
            }
            Ok(())
        }

        /// The next `n` lines.
        fn lines(&mut self, n: usize) -> anyhow::Result<Vec<String>> {
            let mut got = Vec::new();
            while got.len() < n {
                if let SourceEvent::Lines(b) = self.next()? {
                    got.extend(
                        String::from_utf8_lossy(&b.bytes)
                            .lines()
                            .map(|l| format!("{}: {l}", b.stream.path)),
                    );
                }
            }
            Ok(got)
        }
    }

    /// Each source of file events this platform has.
    fn every_source() -> Vec<FileEvents> {
        vec![
            #[cfg(target_os = "linux")]
            FileEvents::Inotify,
            FileEvents::Notify,
        ]
    }

    fn append(path: &Path, text: &str) -> anyhow::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .with_context(|| format!("opening {} to append", path.display()))?;
        std::io::Write::write_all(&mut f, text.as_bytes())
            .with_context(|| format!("appending to {}", path.display()))?;
        Ok(())
    }

    #[test]
    fn a_write_is_read_by_its_event_among_many_files() -> anyhow::Result<()> {
        for from in every_source() {
            let dir = tempfile::tempdir().context("creating a temporary directory")?;
            let glob = format!("{}/*.log", dir.path().display());
            let path = |i: usize| dir.path().join(format!("f{i}.log"));
            for i in 0..50 {
                std::fs::write(path(i), "").context("writing a test file")?;
            }
            let mut tail = FollowedByEvents::start(vec![target(&glob)?], from)?;
            tail.following(50)?;
            // Each write is found by the event naming its file: idle ones included.
            for (n, i) in [7, 7, 0, 49, 7, 23].into_iter().enumerate() {
                append(&path(i), &format!("line {n}\n"))?;
                let want = format!("{}: line {n}", path(i).display());
                assert_eq!(tail.lines(1)?, [want], "{from:?}");
            }
        }
        Ok(())
    }

    #[test]
    fn a_rotated_away_file_is_still_drained_on_its_events() -> anyhow::Result<()> {
        for from in every_source() {
            let dir = tempfile::tempdir().context("creating a temporary directory")?;
            let path = dir.path().join("app.log");
            std::fs::write(&path, "").context("writing a test file")?;
            let mut tail = FollowedByEvents::start(vec![Target::File(path.clone())], from)?;
            tail.following(1)?;
            let mut writer = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .context("opening the followed file to append")?;
            std::io::Write::write_all(&mut writer, b"before\n")
                .context("writing through the open writer")?;
            let shown = path.display();
            assert_eq!(tail.lines(1)?, [format!("{shown}: before")], "{from:?}");
            std::fs::rename(&path, dir.path().join("app.log.1"))
                .context("renaming the followed file")?;
            std::fs::write(&path, "new file\n").context("writing a test file")?;
            assert_eq!(tail.lines(1)?, [format!("{shown}: new file")], "{from:?}");
            // The writer has not reopened yet: its lines go to the renamed file, which
            // no followed path names.
            std::io::Write::write_all(&mut writer, b"late\n")
                .context("writing through the open writer")?;
            assert_eq!(tail.lines(1)?, [format!("{shown}: late")], "{from:?}");
        }
        Ok(())
    }

    #[test]
    fn globs_below_their_base_follow_new_directories_by_their_events() -> anyhow::Result<()> {
        // `**` (any depth) and `*/*/` (two levels below the base).
        for (pattern, sub) in [("**/*.log", "a/b"), ("*/*/*.log", "c/d")] {
            for from in every_source() {
                let dir = tempfile::tempdir().context("creating a temporary directory")?;
                let glob = format!("{}/{pattern}", dir.path().display());
                let mut tail = FollowedByEvents::start(vec![target(&glob)?], from)?;
                // Nothing to follow yet; a directory and a file in it appear.
                std::thread::sleep(Duration::from_millis(200));
                let sub = dir.path().join(sub);
                std::fs::create_dir_all(&sub).context("creating test directories")?;
                std::thread::sleep(Duration::from_millis(200));
                let path = sub.join("new.log");
                std::fs::write(&path, "first\n").context("writing a test file")?;
                tail.following(1)?;
                let shown = path.display();
                let at = format!("{pattern} {from:?}");
                assert_eq!(tail.lines(1)?, [format!("{shown}: first")], "{at}");
                append(&path, "second\n")?;
                assert_eq!(tail.lines(1)?, [format!("{shown}: second")], "{at}");
            }
        }
        Ok(())
    }

    /// Where events cannot tell of new files (the glob's base does not exist yet, so
    /// nothing watches for it; a directory deeper than watches go), the targets are
    /// still looked at for new files every `DISCOVERY_INTERVAL`, though every other
    /// periodic look is an hour away.
    #[test]
    fn files_events_cannot_tell_of_are_discovered_by_the_periodic_look() -> anyhow::Result<()> {
        for from in every_source() {
            let dir = tempfile::tempdir().context("creating a temporary directory")?;
            let base = dir.path().join("later");
            let glob = format!("{}/**/*.log", base.display());
            let mut tail = FollowedByEvents::start(vec![target(&glob)?], from)?;
            std::thread::sleep(Duration::from_millis(200));
            std::fs::create_dir(&base).context("creating the glob base")?;
            let first = base.join("first.log");
            std::fs::write(&first, "first\n").context("writing a test file")?;
            tail.following(1)?;
            let at = format!("{from:?}");
            assert_eq!(
                tail.lines(1)?,
                [format!("{}: first", first.display())],
                "{at}"
            );
            // Deeper than any watch goes (`inotify::MAX_DEPTH`, 32).
            let deep = (0..40).fold(base.clone(), |p, i| p.join(format!("{i}")));
            std::fs::create_dir_all(&deep).context("creating test directories")?;
            // The looks the new directories' events ask for are over before the file
            // appears.
            std::thread::sleep(Duration::from_millis(300));
            let deep = deep.join("deep.log");
            std::fs::write(&deep, "deep\n").context("writing a test file")?;
            tail.following(1)?;
            assert_eq!(
                tail.lines(1)?,
                [format!("{}: deep", deep.display())],
                "{at}"
            );
        }
        Ok(())
    }

    /// Writes through a symlink to a file in an unwatched directory, and through a
    /// second name of a file there, are read. Their directory's watch is not told of
    /// them (writes are told to the directory they were made through).
    fn read_through_other_names(from: FileEvents, poll_interval: Duration) -> anyhow::Result<()> {
        let (dir, elsewhere) = (
            tempfile::tempdir().context("creating a temporary directory")?,
            tempfile::tempdir().context("creating a temporary directory")?,
        );
        let real = elsewhere.path().join("real.log");
        let twin = elsewhere.path().join("twin.log");
        std::fs::write(&real, "").context("writing a test file")?;
        std::fs::write(&twin, "").context("writing a test file")?;
        std::os::unix::fs::symlink(&real, dir.path().join("link.log"))
            .context("making a symlink")?;
        std::fs::hard_link(&twin, dir.path().join("twin.log")).context("making a hard link")?;
        let glob = format!("{}/*.log", dir.path().display());
        let mut tail = FollowedByEvents::polled(
            vec![target(&glob)?],
            from,
            poll_interval,
            Duration::from_secs(3600),
        )?;
        tail.following(2)?;
        let shown = |name: &str| dir.path().join(name).display().to_string();
        for _ in 0..2 {
            append(&real, "through the symlink\n")?;
            let want = format!("{}: through the symlink", shown("link.log"));
            assert_eq!(tail.lines(1)?, [want], "{from:?}");
            append(&twin, "through the other name\n")?;
            let want = format!("{}: through the other name", shown("twin.log"));
            assert_eq!(tail.lines(1)?, [want], "{from:?}");
        }
        Ok(())
    }

    #[test]
    fn without_inotify_files_reached_through_other_names_are_polled() -> anyhow::Result<()> {
        read_through_other_names(FileEvents::Notify, Duration::from_millis(50))
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn files_reached_through_other_names_get_watches_of_their_own() -> anyhow::Result<()> {
        // No periodic pass in the test's time: the file watches deliver.
        read_through_other_names(FileEvents::Inotify, Duration::from_secs(3600))
    }

    #[test]
    fn a_symlinks_target_made_again_where_nothing_watches_is_polled() -> anyhow::Result<()> {
        // Rotated by rename: the target is missing for a while, and its new file
        // appears in a directory no watch covers.
        for from in every_source() {
            let (dir, elsewhere) = (
                tempfile::tempdir().context("creating a temporary directory")?,
                tempfile::tempdir().context("creating a temporary directory")?,
            );
            let real = elsewhere.path().join("0.log");
            std::fs::write(&real, "").context("writing a test file")?;
            let link = dir.path().join("app.log");
            std::os::unix::fs::symlink(&real, &link).context("making a symlink")?;
            let mut tail = FollowedByEvents::polled(
                vec![Target::File(link.clone())],
                from,
                Duration::from_millis(50),
                Duration::from_secs(3600),
            )?;
            tail.following(1)?;
            append(&real, "before\n")?;
            let shown = link.display();
            assert_eq!(tail.lines(1)?, [format!("{shown}: before")], "{from:?}");
            std::fs::rename(&real, elsewhere.path().join("0.log.1"))
                .context("renaming the followed file")?;
            // Long enough for the look the rename asks for to find nothing there.
            std::thread::sleep(Duration::from_millis(300));
            std::fs::write(&real, "after\n").context("writing a test file")?;
            assert_eq!(tail.lines(1)?, [format!("{shown}: after")], "{from:?}");
        }
        Ok(())
    }

    #[test]
    fn every_file_is_rechecked_for_writes_no_event_reports() -> anyhow::Result<()> {
        // A second name given after the last look: the file still seems reported by
        // events, but writes through that name are told to another directory.
        for from in every_source() {
            let (dir, elsewhere) = (
                tempfile::tempdir().context("creating a temporary directory")?,
                tempfile::tempdir().context("creating a temporary directory")?,
            );
            let path = dir.path().join("app.log");
            std::fs::write(&path, "").context("writing a test file")?;
            let mut tail = FollowedByEvents::polled(
                vec![Target::File(path.clone())],
                from,
                Duration::from_secs(3600),
                Duration::from_millis(300),
            )?;
            tail.following(1)?;
            let twin = elsewhere.path().join("app.log");
            std::fs::hard_link(&path, &twin).context("making a hard link")?;
            append(&twin, "unseen by events\n")?;
            let want = format!("{}: unseen by events", path.display());
            assert_eq!(tail.lines(1)?, [want], "{from:?}");
        }
        Ok(())
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
