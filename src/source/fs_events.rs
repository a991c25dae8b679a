//! File events for the tailer: which files were written to since it last looked, or
//! that it must look at everything.
//!
//! Why not just "something happened, look at every file": one busy file among many
//! idle ones (a glob over /var/log, say) then costs a stat of every file per write;
//! with 200 idle files and 1,000 writes a second that was 3.5 times the CPU of
//! following the busy file alone. Events only ever narrow what is looked at between
//! full passes, which still run on every appearance, disappearance or rename, on
//! lost events, and at least every poll interval (missed events, network file
//! systems, files in directories no watch covers).
//!
//! On Linux the tailer's thread reads inotify itself. Through `notify`, every write
//! woke two threads (notify's, which reads inotify, then the tailer), and notify's
//! watches also report the tailer's own opens and reads; following one file written
//! 1,000 times a second took 2.3 times the CPU. `notify` stays for every other
//! platform (and is tested here as well).

use std::path::{Component, Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};

/// More distinct written paths than this between two looks: look at everything.
const MAX_CHANGED: usize = 256;

/// What the events since the last look ask for.
#[derive(Debug, Default)]
pub struct Pending {
    /// A file appeared, went or was renamed, or events were lost: discover files
    /// and look at every one.
    pub rescan: bool,
    /// Files written to (data or metadata), as [`path_key`]s, each once.
    pub changed: Vec<PathBuf>,
}

impl Pending {
    /// `path` (absolute, as events name it) was written to.
    fn wrote(&mut self, path: &Path) {
        self.wrote_key(path_key(Path::new("/"), path));
    }

    /// A file was written to, named by its [`path_key`].
    fn wrote_key(&mut self, key: PathBuf) {
        if self.rescan {
            return;
        }
        // Keys are normalized: equal paths are equal bytes (cheaper than comparing
        // components).
        if !self
            .changed
            .iter()
            .any(|k| k.as_os_str() == key.as_os_str())
        {
            self.changed.push(key);
        }
        if self.changed.len() > MAX_CHANGED {
            self.changed.clear();
            self.rescan = true;
        }
    }

    /// Records one event of the portable watcher.
    fn record(&mut self, event: notify::Result<notify::Event>) {
        let event = match event {
            Ok(event) => event,
            // An overflowed queue lost events.
            Err(_) => {
                self.rescan = true;
                return;
            }
        };
        match event.kind {
            EventKind::Create(_)
            | EventKind::Remove(_)
            | EventKind::Modify(notify::event::ModifyKind::Name(_)) => self.rescan = true,
            // notify names paths by the absolute form of the watched directory.
            EventKind::Modify(_) => event.paths.iter().for_each(|p| self.wrote(p)),
            // Anything else (`Any`, `Other`): no telling what changed.
            _ => self.rescan = true,
        }
    }
}

/// Where file events come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileEvents {
    /// Linux's inotify, read by the tailer's own thread: one wake-up per batch of
    /// events. (notify reads inotify on a thread of its own and hands each event on,
    /// a second thread wake-up for every write.)
    #[cfg(target_os = "linux")]
    Inotify,
    /// The `notify` crate: every platform it supports.
    Notify,
}

impl Default for FileEvents {
    fn default() -> Self {
        #[cfg(target_os = "linux")]
        return FileEvents::Inotify;
        #[cfg(not(target_os = "linux"))]
        return FileEvents::Notify;
    }
}

/// The watches of one tailer and what their events asked for.
pub enum Watch {
    #[cfg(target_os = "linux")]
    Inotify(inotify_watch::InotifyWatch),
    Notify(NotifyWatch),
}

impl Watch {
    pub fn start(from: FileEvents) -> std::io::Result<Watch> {
        Ok(match from {
            #[cfg(target_os = "linux")]
            FileEvents::Inotify => Watch::Inotify(inotify_watch::InotifyWatch::start()?),
            FileEvents::Notify => {
                Watch::Notify(NotifyWatch::start().map_err(std::io::Error::other)?)
            }
        })
    }

    /// Watches `dir` (a [`path_key`]: events name files by it) and the directories
    /// `depth` levels below it (`None`: all), unless already watched; a directory that
    /// does not exist (yet) is tried again on the next call.
    pub fn watch_dir(&mut self, dir: PathBuf, depth: Option<usize>) {
        match self {
            #[cfg(target_os = "linux")]
            Watch::Inotify(w) => w.watch_dir(dir, depth),
            Watch::Notify(w) => w.watch_dir(dir, depth),
        }
    }

    /// Sleeps until an event or `timeout`, then takes what the events asked for.
    pub fn wait(&mut self, timeout: Duration) -> Pending {
        match self {
            #[cfg(target_os = "linux")]
            Watch::Inotify(w) => w.wait(timeout),
            Watch::Notify(w) => w.wait(timeout),
        }
    }
}

/// Events through `notify`, whose own thread hands them over.
pub struct NotifyWatch {
    watcher: notify::RecommendedWatcher,
    watched: Vec<PathBuf>,
    wake: std_mpsc::Receiver<()>,
    pending: Arc<Mutex<Pending>>,
}

impl NotifyWatch {
    fn start() -> notify::Result<NotifyWatch> {
        // Starts with a rescan: files may have appeared before the first watch.
        let pending = Arc::new(Mutex::new(Pending {
            rescan: true,
            changed: Vec::new(),
        }));
        let (tx, wake) = std_mpsc::sync_channel(1);
        let shared = pending.clone();
        let handler = move |event: notify::Result<notify::Event>| {
            // Our own opens and reads show up as access events: not a change.
            if matches!(&event, Ok(e) if matches!(e.kind, EventKind::Access(_))) {
                return;
            }
            shared
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .record(event);
            let _ = tx.try_send(());
        };
        Ok(NotifyWatch {
            watcher: notify::recommended_watcher(handler)?,
            watched: Vec::new(),
            wake,
            pending,
        })
    }

    fn watch_dir(&mut self, dir: PathBuf, depth: Option<usize>) {
        if self.watched.contains(&dir) {
            return;
        }
        // notify watches one level or all of them.
        let mode = if depth == Some(0) {
            RecursiveMode::NonRecursive
        } else {
            RecursiveMode::Recursive
        };
        if self.watcher.watch(&dir, mode).is_ok() {
            self.watched.push(dir);
        }
    }

    fn wait(&mut self, timeout: Duration) -> Pending {
        if let Ok(()) = self.wake.recv_timeout(timeout) {
            // Several events usually come together: one wake-up takes them all.
            while self.wake.try_recv().is_ok() {}
        }
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

#[cfg(target_os = "linux")]
mod inotify_watch {
    use std::collections::HashMap;
    use std::io;
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use inotify::{EventMask, Inotify, WatchMask};
    use rustix::event::{PollFd, PollFlags, Timespec};

    use super::Pending;

    /// Directories below a watched one are watched this deep at most (a symlink can
    /// make a tree endless).
    const MAX_DEPTH: usize = 32;

    /// Events straight from inotify, read on the caller's thread.
    pub struct InotifyWatch {
        inotify: Inotify,
        /// Watched directories (absolute, as events name them) by watch descriptor,
        /// and the other way round.
        dirs: HashMap<i32, PathBuf>,
        watched: HashMap<PathBuf, i32>,
        pending: Pending,
        buffer: Vec<u8>,
    }

    impl InotifyWatch {
        pub fn start() -> io::Result<InotifyWatch> {
            Ok(InotifyWatch {
                inotify: Inotify::init()?,
                dirs: HashMap::new(),
                watched: HashMap::new(),
                // Files may have appeared before the first watch.
                pending: Pending {
                    rescan: true,
                    changed: Vec::new(),
                },
                buffer: vec![0; 64 * 1024],
            })
        }

        pub fn watch_dir(&mut self, dir: PathBuf, depth: Option<usize>) {
            self.watch_tree(&dir, depth.unwrap_or(MAX_DEPTH).min(MAX_DEPTH));
        }

        /// Watches `dir`, and the directories `depth` levels below it: those are
        /// walked every time, for new ones.
        fn watch_tree(&mut self, dir: &Path, depth: usize) {
            if !self.watched.contains_key(dir) && !self.add(dir) {
                return;
            }
            if depth == 0 {
                return;
            }
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                // Follows symlinks, as the glob walk does.
                if std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
                    self.watch_tree(&path, depth - 1);
                }
            }
        }

        fn add(&mut self, dir: &Path) -> bool {
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
            let Ok(wd) = self.inotify.watches().add(dir, mask) else {
                return false;
            };
            let id = wd.get_watch_descriptor_id();
            // The same directory under another name shares the descriptor: events
            // are named by the last name it was watched under.
            if let Some(old) = self.dirs.insert(id, dir.to_path_buf()) {
                self.watched.remove(&old);
            }
            self.watched.insert(dir.to_path_buf(), id);
            true
        }

        /// Forgets a watch inotify dropped, or whose directory has another name now,
        /// so that the next `watch_dir` watches the path again.
        fn forget(&mut self, id: i32) {
            if let Some(dir) = self.dirs.remove(&id) {
                self.watched.remove(&dir);
            }
        }

        pub fn wait(&mut self, timeout: Duration) -> Pending {
            if !self.pending.rescan && self.pending.changed.is_empty() {
                let timeout = Timespec {
                    tv_sec: timeout.as_secs() as i64,
                    tv_nsec: i64::from(timeout.subsec_nanos()),
                };
                let mut fds = [PollFd::new(&self.inotify, PollFlags::IN)];
                // An error (EINTR) is a wake-up like any other: the caller looks.
                let _ = rustix::event::poll(&mut fds, Some(&timeout));
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
                        tracing::debug!(error = %e, "reading file events failed; looking at every file");
                        self.pending.rescan = true;
                        break;
                    }
                };
                for event in events {
                    read += 1;
                    let id = event.wd.get_watch_descriptor_id();
                    if event.mask.contains(EventMask::IGNORED) {
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
                            (Some(dir), Some(name)) => self.pending.wrote_key(dir.join(name)),
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
}

/// `path` as file events name it: absolute (relative to `cwd`), without `.`
/// components or repeated separators. `..` stays: resolving it is only right
/// without symlinks, and both sides keep it alike.
pub fn path_key(cwd: &Path, path: &Path) -> PathBuf {
    let mut key = if path.is_absolute() {
        PathBuf::new()
    } else {
        cwd.to_path_buf()
    };
    key.extend(path.components().filter(|c| *c != Component::CurDir));
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_keys_match_the_form_events_use() {
        let cwd = Path::new("/home/me");
        // What we follow, and how notify names it (absolute watch dir + file name).
        for (followed, event) in [
            ("app.log", "/home/me/./app.log"),
            ("./app.log", "/home/me/./app.log"),
            ("logs//a.log", "/home/me/logs/a.log"),
            ("../x/a.log", "/home/me/../x/a.log"),
            ("/var/log/syslog", "/var/log/syslog"),
            ("/var/log/./syslog", "/var/log/syslog"),
        ] {
            assert_eq!(
                path_key(cwd, Path::new(followed)),
                path_key(Path::new("/"), Path::new(event)),
                "{followed} vs {event}"
            );
        }
        assert_ne!(
            path_key(cwd, Path::new("a.log")),
            path_key(cwd, Path::new("b/a.log"))
        );
    }

    #[test]
    fn writes_are_listed_once_and_the_rest_asks_for_a_rescan() {
        use notify::event::{CreateKind, DataChange, ModifyKind};
        let write = |p: &str| {
            Ok(
                notify::Event::new(EventKind::Modify(ModifyKind::Data(DataChange::Any)))
                    .add_path(PathBuf::from(p)),
            )
        };
        let mut pending = Pending::default();
        pending.record(write("/l/a.log"));
        pending.record(write("/l/./a.log"));
        pending.record(write("/l/b.log"));
        assert_eq!(
            pending.changed,
            [Path::new("/l/a.log"), Path::new("/l/b.log")]
        );
        assert!(!pending.rescan);
        pending.record(Ok(notify::Event::new(EventKind::Create(CreateKind::File))));
        assert!(pending.rescan);

        let mut pending = Pending::default();
        pending.record(Err(notify::Error::generic("queue overflow")));
        assert!(pending.rescan);

        let mut pending = Pending::default();
        for i in 0..=MAX_CHANGED {
            pending.record(write(&format!("/l/{i}.log")));
        }
        assert!(pending.rescan && pending.changed.is_empty());
    }
}
