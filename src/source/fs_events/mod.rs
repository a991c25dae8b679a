//! File events for the tailer: which files were written to since it last looked, or
//! that it must look at everything.
//!
//! Why not just "something happened, look at every file": one busy file among many
//! idle ones (a glob over /var/log, say) then costs a stat of every file per write;
//! with 200 idle files and 1,000 writes a second that was 3.9 times the CPU of
//! following the busy file alone (`benches/files.sh`). Events only ever narrow what
//! is looked at between full passes, which still run on every appearance,
//! disappearance or rename, on lost events, and every recheck interval (2 s, longer
//! past 5,000 files: writes no event tells of). A file whose directory's watch does
//! not see every write to it (a symlink to elsewhere, a second hard link) gets a
//! watch of its own; files whose writes events still may not report
//! ([`Watch::reports_writes`]: network file systems, directories no watch covers)
//! are polled every poll interval (250 ms).
//! Polling every file that often cost 5% of a core for 5,000 idle files, a stat each,
//! and a symlinked file's lines came 126 ms late on average (p50; 0.5 ms with its
//! own watch).
//!
//! On Linux the tailer's thread reads inotify itself. Through `notify`, every write
//! woke two threads (notify's, which reads inotify, then the tailer), and notify's
//! watches also report the tailer's own opens and reads; following one file written
//! 1,000 times a second took about twice the CPU. `notify` stays for every other
//! platform (`portable`), and the tailer's tests run against both.

#[cfg(target_os = "linux")]
mod inotify;
mod portable;
mod stop;

use std::fs::Metadata;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

pub use stop::Stop;

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
    /// What a watch starts with: a rescan, as files may have appeared before the
    /// first watch.
    fn first() -> Pending {
        Pending {
            rescan: true,
            changed: Vec::new(),
        }
    }

    /// `path` (absolute, as events name it) was written to.
    pub(super) fn wrote(&mut self, path: &Path) {
        self.wrote_key(path_key(Path::new("/"), path));
    }

    /// A file was written to, named by its [`path_key`].
    pub(super) fn wrote_key(&mut self, key: PathBuf) {
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
}

/// Says why a directory cannot be watched, once per reason: past the watch limit
/// every further directory fails alike, and a line each would flood stderr.
#[derive(Debug, Default)]
struct Unwatchable {
    said: Vec<String>,
}

impl Unwatchable {
    /// `path`: a directory, or a file that needed a watch of its own.
    fn report(&mut self, path: &Path, why: String) {
        if self.said.contains(&why) {
            return;
        }
        crate::say!(
            "supergrep: {}: cannot watch for changes ({why}); what is there, and \
             whatever else cannot be watched, is read on the periodic check",
            path.display()
        );
        self.said.push(why);
    }
}

/// What to say when the system's limit of watches is reached.
const WATCH_LIMIT: &str =
    "the inotify watch limit is reached: see sysctl fs.inotify.max_user_watches";

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
    Inotify(inotify::InotifyWatch),
    Notify(portable::NotifyWatch),
}

impl Watch {
    /// Watches whose waits also end on `stop`, when given.
    pub fn start(from: FileEvents, stop: Option<&Stop>) -> std::io::Result<Watch> {
        Ok(match from {
            #[cfg(target_os = "linux")]
            FileEvents::Inotify => {
                let mut watch = inotify::InotifyWatch::start()?;
                watch.stop = stop.cloned();
                Watch::Inotify(watch)
            }
            FileEvents::Notify => {
                let watch = portable::NotifyWatch::start().map_err(std::io::Error::other)?;
                if let Some(stop) = stop {
                    stop.wake_through(watch.waker());
                }
                Watch::Notify(watch)
            }
        })
    }

    /// Watches `dir` (a [`path_key`]: events name files by it) and the directories
    /// `depth` levels below it (`None`: all), unless already watched; a directory that
    /// does not exist (yet) is tried again on the next call. Says whether events
    /// now tell of every file that appears in that tree, so that looking for new
    /// files is only a safety net. Through `notify`, never: it does not say which
    /// watches it could set up, nor on what.
    pub fn watch_dir(&mut self, dir: PathBuf, depth: Option<usize>) -> bool {
        match self {
            #[cfg(target_os = "linux")]
            Watch::Inotify(w) => w.watch_dir(dir, depth),
            Watch::Notify(w) => {
                w.watch_dir(dir, depth);
                false
            }
        }
    }

    /// Whether events report every write to the file `key` (a [`path_key`]) names,
    /// as `meta` (its stat, through a symlink) describes it; `direct`: `key` is no
    /// symlink. Such a file need not be polled often. Through `notify`, never: it
    /// does not say which watches it could set up, nor on what.
    pub fn reports_writes(&self, key: &Path, meta: &Metadata, direct: bool) -> bool {
        match self {
            #[cfg(target_os = "linux")]
            Watch::Inotify(w) => w.reports_writes(key, meta, direct),
            Watch::Notify(_) => {
                let _ = (key, meta, direct);
                false
            }
        }
    }

    /// Watches the file `key` names on its own, for a file whose directory's watch
    /// cannot report its writes (a symlink to elsewhere, a second hard link).
    pub fn watch_file(&mut self, key: &Path, meta: &Metadata) {
        match self {
            #[cfg(target_os = "linux")]
            Watch::Inotify(w) => w.watch_file(key, meta),
            Watch::Notify(_) => {
                let _ = (key, meta);
            }
        }
    }

    /// Stops watching the file `key` names on its own (no longer followed).
    pub fn unwatch_file(&mut self, key: &Path) {
        match self {
            #[cfg(target_os = "linux")]
            Watch::Inotify(w) => w.unwatch_file(key),
            Watch::Notify(_) => {
                let _ = key;
            }
        }
    }

    /// Sleeps until an event, `timeout` or the stop given at start, then takes
    /// what the events asked for.
    pub fn wait(&mut self, timeout: Duration) -> Pending {
        match self {
            #[cfg(target_os = "linux")]
            Watch::Inotify(w) => w.wait(timeout),
            Watch::Notify(w) => w.wait(timeout),
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
        use notify::EventKind;
        let write = |p: &str| {
            Ok(
                notify::Event::new(EventKind::Modify(ModifyKind::Data(DataChange::Any)))
                    .add_path(PathBuf::from(p)),
            )
        };
        let mut pending = Pending::default();
        portable::record(&mut pending, write("/l/a.log"));
        portable::record(&mut pending, write("/l/./a.log"));
        portable::record(&mut pending, write("/l/b.log"));
        assert_eq!(
            pending.changed,
            [Path::new("/l/a.log"), Path::new("/l/b.log")]
        );
        assert!(!pending.rescan);
        portable::record(
            &mut pending,
            Ok(notify::Event::new(EventKind::Create(CreateKind::File))),
        );
        assert!(pending.rescan);

        let mut pending = Pending::default();
        portable::record(&mut pending, Err(notify::Error::generic("queue overflow")));
        assert!(pending.rescan);

        let mut pending = Pending::default();
        for i in 0..=MAX_CHANGED {
            portable::record(&mut pending, write(&format!("/l/{i}.log")));
        }
        assert!(pending.rescan && pending.changed.is_empty());
    }
}
