//! File events straight from Linux's inotify, read on the tailer's own thread.

use std::collections::HashMap;
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ::inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use rustix::event::{PollFd, PollFlags, Timespec};

use super::{Pending, Unwatchable, WATCH_LIMIT};

/// Directories below a watched one are watched this deep at most (a symlink can
/// make a tree endless).
const MAX_DEPTH: usize = 32;

/// Events straight from inotify, read on the caller's thread.
pub struct InotifyWatch {
    inotify: Inotify,
    /// Watched directories (absolute, as events name them) by watch descriptor,
    /// and the other way round. One directory can have several names (a symlink to
    /// it): one descriptor, and each event is told under every name.
    dirs: Named,
    watched: HashMap<PathBuf, Watched>,
    /// Files watched on their own (see [`InotifyWatch::watch_file`]) by their keys,
    /// and the keys by watch descriptor (two paths can name one file).
    files: HashMap<PathBuf, WatchedFile>,
    file_keys: Named,
    unwatchable: Unwatchable,
    pending: Pending,
    buffer: Vec<u8>,
    /// Ends a wait early, polled beside inotify (see [`super::Stop`]).
    pub(super) stop: Option<super::Stop>,
}

/// Whether a file system (by its `statfs` magic number) is local: every write to it
/// goes through this kernel, so inotify sees it. Network file systems (NFS, SMB,
/// Ceph, 9p) and FUSE do not say what other machines or processes wrote; one not
/// listed here is taken for one of those, and its files are polled.
fn is_local(magic: u32) -> bool {
    const LOCAL: [u32; 14] = [
        0xEF53,      // ext2, ext3, ext4
        0x5846_5342, // xfs
        0x9123_683E, // btrfs
        0x0102_1994, // tmpfs
        0x8584_58F6, // ramfs
        0x2FC1_2FC1, // zfs
        0xF2F5_2010, // f2fs
        0xCA45_1A4E, // bcachefs
        0x794C_7630, // overlayfs (containers)
        0x5265_4973, // reiserfs
        0x3153_464A, // jfs
        0x3434,      // nilfs
        0x4D44,      // vfat
        0x2011_BAB0, // exfat
    ];
    LOCAL.contains(&magic)
}

/// Watches by descriptor, each with the names its events are told under.
type Named = HashMap<i32, (WatchDescriptor, Vec<PathBuf>)>;

/// Takes `name` off watch `id`; returns the watch once it has no name left, for the
/// caller to remove.
fn take_name(watches: &mut Named, id: i32, name: &Path) -> Option<WatchDescriptor> {
    let (_, names) = watches.get_mut(&id)?;
    names.retain(|n| n != name);
    if !names.is_empty() {
        return None;
    }
    watches.remove(&id).map(|(wd, _)| wd)
}

/// One file watched on its own: its writes are reported whatever its directory.
struct WatchedFile {
    id: i32,
    /// Which file the watch is on, and whether it is on a local file system.
    dev: u64,
    ino: u64,
    local: bool,
}

/// One watched directory.
struct Watched {
    id: i32,
    /// The inode it was watched as: the name may come to name another directory.
    ino: u64,
    /// Its device, and whether every write there goes through this kernel (a local
    /// file system): see [`InotifyWatch::reports_writes`].
    dev: u64,
    local: bool,
}

impl InotifyWatch {
    pub fn start() -> io::Result<InotifyWatch> {
        Ok(InotifyWatch {
            inotify: Inotify::init()?,
            dirs: HashMap::new(),
            watched: HashMap::new(),
            files: HashMap::new(),
            file_keys: HashMap::new(),
            unwatchable: Unwatchable::default(),
            pending: Pending::first(),
            buffer: vec![0; 64 * 1024],
            stop: None,
        })
    }

    /// Watches `dir` and the directories `depth` levels below it (`None`: all);
    /// says whether events now report every file that appears in that tree: each
    /// directory watched, on a local file system (see [`is_local`]).
    pub fn watch_dir(&mut self, dir: PathBuf, depth: Option<usize>) -> bool {
        // Not there (yet): tried again on the next call.
        let Ok(meta) = std::fs::metadata(&dir) else {
            return false;
        };
        let limit = depth.unwrap_or(usize::MAX);
        self.watch_tree(&dir, meta.ino(), limit.min(MAX_DEPTH), limit > MAX_DEPTH)
    }

    /// Watches `dir` (whose inode is `ino`), and the directories `depth` levels below
    /// it: those are walked every time, for new ones. `capped`: the tree goes deeper
    /// than `depth`, so what is below is not covered. Says whether every directory of
    /// the tree is watched on a local file system.
    fn watch_tree(&mut self, dir: &Path, ino: u64, depth: usize, capped: bool) -> bool {
        match self.watched.get(dir) {
            Some(w) if w.ino == ino => {}
            Some(w) => {
                // Another directory has this name now (the watched one was moved
                // with its parent, which tells it nothing): the name is stale.
                let id = w.id;
                self.drop_name(id, dir);
                if !self.add(dir, ino) {
                    return false;
                }
            }
            None => {
                if !self.add(dir, ino) {
                    return false;
                }
            }
        }
        let mut covered = self.watched.get(dir).is_some_and(|w| w.local);
        if depth == 0 {
            return covered && !capped;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return false;
        };
        for entry in entries.flatten() {
            // The entry's type and inode cost no stat (this runs on every discovery over
            // the tree); symlinks are followed, as the glob walk does.
            let dir_ino = match entry.file_type() {
                Ok(t) if t.is_symlink() => std::fs::metadata(entry.path())
                    .ok()
                    .filter(|m| m.is_dir())
                    .map(|m| m.ino()),
                Ok(t) if t.is_dir() => Some(entry.ino()),
                _ => None,
            };
            if let Some(ino) = dir_ino {
                covered &= self.watch_tree(&entry.path(), ino, depth - 1, capped);
            }
        }
        covered
    }

    /// Watches `dir`, whose inode is `ino` as the caller saw it.
    fn add(&mut self, dir: &Path, ino: u64) -> bool {
        // `ONLYDIR`: a file by that name is not watched (it has no entries).
        let mask = WatchMask::MODIFY
            | WatchMask::ATTRIB
            | WatchMask::CREATE
            | WatchMask::DELETE
            | WatchMask::MOVED_FROM
            | WatchMask::MOVED_TO
            | WatchMask::DELETE_SELF
            | WatchMask::MOVE_SELF
            | WatchMask::ONLYDIR;
        let wd = match self.inotify.watches().add(dir, mask) {
            Ok(wd) => wd,
            // Not there (yet), or not a directory: the tailer says so for its files.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return false;
            }
            Err(e) => {
                let why = if e.kind() == io::ErrorKind::StorageFull {
                    WATCH_LIMIT.to_owned()
                } else {
                    e.to_string()
                };
                self.unwatchable.report(dir, why);
                return false;
            }
        };
        let id = wd.get_watch_descriptor_id();
        // The same directory under another name shares the descriptor.
        let (_, names) = self.dirs.entry(id).or_insert_with(|| (wd, Vec::new()));
        if !names.iter().any(|n| n == dir) {
            names.push(dir.to_path_buf());
        }
        let local = rustix::fs::statfs(dir).is_ok_and(|fs| is_local(fs.f_type as u32));
        let dev = std::fs::metadata(dir).map_or(u64::MAX, |m| m.dev());
        let watched = Watched {
            id,
            dev,
            ino,
            local,
        };
        self.watched.insert(dir.to_path_buf(), watched);
        true
    }

    /// Whether events report every write to the file `key` names, as `meta` (its
    /// stat, through a symlink) describes it; `direct`: `key` is no symlink.
    ///
    /// Its directory's watch reports the writes made through that directory: all of
    /// them when the file is there directly with no second name (a write through
    /// another name is told to the other directory), on a local file system (a
    /// network file system's other clients write unseen), and on the directory's
    /// device (not a mount of its own). Otherwise only a watch of its own
    /// ([`InotifyWatch::watch_file`]) on that very file does.
    pub fn reports_writes(&self, key: &Path, meta: &Metadata, direct: bool) -> bool {
        let by_dir = || {
            direct
                && meta.nlink() == 1
                && key
                    .parent()
                    .and_then(|dir| self.watched.get(dir))
                    .is_some_and(|w| w.local && w.dev == meta.dev())
        };
        let by_own = || {
            self.files
                .get(key)
                .is_some_and(|f| f.local && f.dev == meta.dev() && f.ino == meta.ino())
        };
        by_dir() || by_own()
    }

    /// Watches the file `key` names (through a symlink: the file it points to) on its
    /// own, when its directory's watch cannot report its writes: a symlink's target
    /// elsewhere, a file with a second name. `meta` is its stat just before; the
    /// watch counts only if the path still names that file after it was set.
    pub fn watch_file(&mut self, key: &Path, meta: &Metadata) {
        let on_it = |f: &WatchedFile| f.dev == meta.dev() && f.ino == meta.ino();
        if self.files.get(key).is_some_and(on_it) {
            return;
        }
        let mask =
            WatchMask::MODIFY | WatchMask::ATTRIB | WatchMask::DELETE_SELF | WatchMask::MOVE_SELF;
        let wd = match self.inotify.watches().add(key, mask) {
            Ok(wd) => wd,
            Err(e) => {
                if e.kind() == io::ErrorKind::StorageFull {
                    self.unwatchable.report(key, WATCH_LIMIT.to_owned());
                }
                return;
            }
        };
        let id = wd.get_watch_descriptor_id();
        let same = std::fs::metadata(key)
            .is_ok_and(|now| now.dev() == meta.dev() && now.ino() == meta.ino());
        if !same {
            // Re-pointed meanwhile: looked at again on the next poll. A watch no key
            // is on would only ask for rescans.
            self.unwatch_file(key);
            if !self.file_keys.contains_key(&id) {
                let _ = self.inotify.watches().remove(wd);
            }
            return;
        }
        let local = rustix::fs::statfs(key).is_ok_and(|fs| is_local(fs.f_type as u32));
        let watched = WatchedFile {
            id,
            dev: meta.dev(),
            ino: meta.ino(),
            local,
        };
        if let Some(old) = self.files.insert(key.to_path_buf(), watched) {
            if old.id == id {
                return;
            }
            self.detach(key, old.id);
        }
        self.file_keys
            .entry(id)
            .or_insert_with(|| (wd, Vec::new()))
            .1
            .push(key.to_path_buf());
    }

    /// Stops watching the file `key` names on its own (it is no longer followed).
    pub fn unwatch_file(&mut self, key: &Path) {
        if let Some(old) = self.files.remove(key) {
            self.detach(key, old.id);
        }
    }

    /// Takes `key` off the file watch `id`, and removes the watch once no key is on it.
    fn detach(&mut self, key: &Path, id: i32) {
        if let Some(wd) = take_name(&mut self.file_keys, id, key) {
            // Already gone if the file was deleted: nothing to undo.
            let _ = self.inotify.watches().remove(wd);
        }
    }

    /// Forgets a watch inotify dropped, or whose directory has another name now,
    /// so that the next `watch_dir` watches the path again.
    fn forget(&mut self, id: i32) {
        if let Some((_, names)) = self.dirs.remove(&id) {
            for name in names {
                self.watched.remove(&name);
            }
        }
    }

    /// Takes the stale name `dir` off watch `id`, and removes the watch once it has
    /// no name left.
    fn drop_name(&mut self, id: i32, dir: &Path) {
        self.watched.remove(dir);
        if let Some(wd) = take_name(&mut self.dirs, id, dir) {
            let _ = self.inotify.watches().remove(wd);
        }
    }

    /// Forgets a file watch inotify dropped.
    fn forget_file(&mut self, id: i32) {
        if let Some((_, keys)) = self.file_keys.remove(&id) {
            for key in keys {
                if self.files.get(&key).is_some_and(|f| f.id == id) {
                    self.files.remove(&key);
                }
            }
        }
    }

    pub fn wait(&mut self, timeout: Duration) -> Pending {
        if !self.pending.rescan && self.pending.changed.is_empty() {
            // A timeout too long for a timespec: wait for events only.
            let timeout = Timespec::try_from(timeout).ok();
            let inotify = PollFd::new(&self.inotify, PollFlags::IN);
            // An error (EINTR) is a wake-up like any other: the caller looks.
            let _ = match &self.stop {
                Some(stop) => {
                    let stop = PollFd::from_borrowed_fd(stop.fd(), PollFlags::IN);
                    rustix::event::poll(&mut [inotify, stop], timeout.as_ref())
                }
                None => rustix::event::poll(&mut [inotify], timeout.as_ref()),
            };
        }
        self.read_events();
        std::mem::take(&mut self.pending)
    }

    /// Takes the events queued now. One read takes them all unless there were
    /// very many; any left (or arriving meanwhile) end the next wait at once.
    fn read_events(&mut self) {
        const MANY: usize = 256;
        let mut buffer = std::mem::take(&mut self.buffer);
        let mut read = MANY;
        while read >= MANY {
            read = 0;
            let events = match self.inotify.read_events(&mut buffer) {
                Ok(events) => events,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!(error = %e, "reading file events failed; looking at all");
                    self.pending.rescan = true;
                    break;
                }
            };
            for event in events {
                read += 1;
                let id = event.wd.get_watch_descriptor_id();
                if let Some((_, keys)) = self.file_keys.get(&id) {
                    if event.mask.contains(EventMask::IGNORED) {
                        // The file is gone (deleted and closed).
                        self.forget_file(id);
                        self.pending.rescan = true;
                    } else if event.mask.intersects(EventMask::MODIFY | EventMask::ATTRIB) {
                        for key in keys {
                            self.pending.wrote_key(key.clone());
                        }
                    } else {
                        // Deleted or renamed: its path may name another file now.
                        self.pending.rescan = true;
                    }
                } else if event.mask.contains(EventMask::IGNORED) {
                    // The directory went (or was unmounted).
                    self.forget(id);
                    self.pending.rescan = true;
                } else if event.mask.contains(EventMask::MOVE_SELF) {
                    // Its events would carry the old name.
                    let _ = self.inotify.watches().remove(event.wd.clone());
                    self.forget(id);
                    self.pending.rescan = true;
                } else if event.mask.intersects(EventMask::MODIFY | EventMask::ATTRIB) {
                    match (self.dirs.get(&id), event.name) {
                        // Directories are watched by their keys: so is this.
                        (Some((_, dirs)), Some(name)) => {
                            for dir in dirs {
                                self.pending.wrote_key(dir.join(name));
                            }
                        }
                        _ => self.pending.rescan = true,
                    }
                } else {
                    // Created, deleted, renamed, or the queue overflowed.
                    self.pending.rescan = true;
                }
            }
        }
        self.buffer = buffer;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn writes_are_reported_in_watched_directories_of_local_file_systems() -> anyhow::Result<()> {
        // The temporary directory is on a local disk or tmpfs wherever tests run.
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        let elsewhere = tempfile::tempdir().context("creating a second temporary directory")?;
        let file = dir.path().join("a.log");
        std::fs::write(&file, "").context("creating a.log")?;
        let meta = std::fs::metadata(&file).context("reading a.log's metadata")?;
        let mut watch = InotifyWatch::start().context("starting inotify")?;
        assert!(!watch.reports_writes(&file, &meta, true), "not watched yet");
        watch.watch_dir(dir.path().to_path_buf(), Some(0));
        assert!(watch.reports_writes(&file, &meta, true));
        assert!(!watch.reports_writes(&file, &meta, false), "a symlink");
        let below = dir.path().join("sub/a.log");
        assert!(!watch.reports_writes(&below, &meta, true), "not watched");

        // A second name elsewhere: only a watch of its own reports every write.
        let twin = elsewhere.path().join("a.log");
        std::fs::hard_link(&file, &twin).context("linking a.log elsewhere")?;
        let meta = std::fs::metadata(&file).context("reading the linked a.log's metadata")?;
        assert!(!watch.reports_writes(&file, &meta, true));
        watch.watch_file(&file, &meta);
        assert!(watch.reports_writes(&file, &meta, true));
        // Another file at that path now: not until that one is watched.
        std::fs::remove_file(&file).context("removing a.log")?;
        std::fs::write(&file, "").context("creating a.log again")?;
        let other = std::fs::metadata(&file).context("reading the new a.log's metadata")?;
        assert!(
            watch.reports_writes(&file, &other, true),
            "by its directory"
        );
        assert!(!watch.reports_writes(&file, &other, false));
        watch.unwatch_file(&file);
        assert!(!watch.reports_writes(&file, &meta, false));

        // A file system the kernel does not write through (here /proc) is polled.
        let proc = rustix::fs::statfs("/proc").context("statfs of /proc")?;
        assert!(!is_local(proc.f_type as u32));
        Ok(())
    }

    #[test]
    fn a_directory_watched_under_two_names_reports_writes_under_both() -> anyhow::Result<()> {
        let root = tempfile::tempdir().context("creating a temporary directory")?;
        let (real, alias) = (root.path().join("real"), root.path().join("alias"));
        std::fs::create_dir(&real).context("creating real")?;
        std::os::unix::fs::symlink(&real, &alias).context("linking alias to real")?;
        std::fs::write(real.join("a.log"), "").context("creating real/a.log")?;
        let meta =
            std::fs::metadata(real.join("a.log")).context("reading real/a.log's metadata")?;
        let mut watch = InotifyWatch::start().context("starting inotify")?;
        watch.watch_dir(real.clone(), Some(0));
        watch.watch_dir(alias.clone(), Some(0));
        for name in [&real, &alias] {
            assert!(watch.reports_writes(&name.join("a.log"), &meta, true));
        }
        let _ = watch.wait(Duration::ZERO);
        std::fs::write(real.join("a.log"), "written\n").context("writing real/a.log")?;
        let mut changed = watch.wait(Duration::from_secs(5)).changed;
        changed.sort();
        assert_eq!(changed, [alias.join("a.log"), real.join("a.log")]);
        Ok(())
    }

    #[test]
    fn a_name_that_comes_to_name_another_directory_is_watched_again() -> anyhow::Result<()> {
        let root = tempfile::tempdir().context("creating a temporary directory")?;
        let logs = root.path().join("logs");
        std::fs::create_dir_all(logs.join("a")).context("creating logs/a")?;
        let mut watch = InotifyWatch::start().context("starting inotify")?;
        watch.watch_dir(logs.clone(), Some(1));
        // Moved with its parent, logs/a's watch is told nothing: its name is stale.
        std::fs::rename(&logs, root.path().join("old")).context("moving logs to old")?;
        std::fs::create_dir_all(logs.join("a")).context("creating logs/a again")?;
        let file = logs.join("a/f.log");
        std::fs::write(&file, "").context("creating logs/a/f.log")?;
        let _ = watch.wait(Duration::ZERO);
        watch.watch_dir(logs.clone(), Some(1));
        let meta = std::fs::metadata(&file).context("reading logs/a/f.log's metadata")?;
        assert!(watch.reports_writes(&file, &meta, true));
        // (What the moves and the stale watch's removal asked for.)
        let _ = watch.wait(Duration::ZERO);
        std::fs::write(&file, "written\n").context("writing logs/a/f.log")?;
        let pending = watch.wait(Duration::from_secs(5));
        assert_eq!(pending.changed, [file], "{:?}", pending.rescan);
        Ok(())
    }
}
