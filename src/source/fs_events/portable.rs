//! File events through the `notify` crate, whose own thread hands them over: every
//! platform notify supports.

use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};

use super::{Pending, Unwatchable, WATCH_LIMIT};

/// Events through `notify`, whose own thread hands them over.
pub struct NotifyWatch {
    watcher: notify::RecommendedWatcher,
    watched: Vec<PathBuf>,
    unwatchable: Unwatchable,
    wake: std_mpsc::Receiver<()>,
    /// `wake`'s sender, for a stop to wake the wait (see [`super::Stop`]).
    waker: std_mpsc::SyncSender<()>,
    pending: Arc<Mutex<Pending>>,
}

impl NotifyWatch {
    pub fn start() -> notify::Result<NotifyWatch> {
        let pending = Arc::new(Mutex::new(Pending::first()));
        let (tx, wake) = std_mpsc::sync_channel(1);
        let waker = tx.clone();
        let shared = pending.clone();
        let handler = move |event: notify::Result<notify::Event>| {
            // Our own opens and reads show up as access events: not a change.
            if matches!(&event, Ok(e) if matches!(e.kind, EventKind::Access(_))) {
                return;
            }
            let mut pending = shared.lock().unwrap_or_else(PoisonError::into_inner);
            record(&mut pending, event);
            drop(pending);
            let _ = tx.try_send(());
        };
        Ok(NotifyWatch {
            watcher: notify::recommended_watcher(handler)?,
            watched: Vec::new(),
            unwatchable: Unwatchable::default(),
            wake,
            waker,
            pending,
        })
    }

    pub fn waker(&self) -> std_mpsc::SyncSender<()> {
        self.waker.clone()
    }

    pub fn watch_dir(&mut self, dir: PathBuf, depth: Option<usize>) {
        if self.watched.contains(&dir) {
            return;
        }
        // notify watches one level or all of them.
        let mode = if depth == Some(0) {
            RecursiveMode::NonRecursive
        } else {
            RecursiveMode::Recursive
        };
        match self.watcher.watch(&dir, mode) {
            Ok(()) => self.watched.push(dir),
            // Not there (yet): tried again on the next call.
            Err(e) if matches!(e.kind, notify::ErrorKind::PathNotFound) => {}
            Err(e) if matches!(&e.kind, notify::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::NotFound) =>
                {}
            Err(e) => {
                let why = match e.kind {
                    notify::ErrorKind::MaxFilesWatch => WATCH_LIMIT.to_owned(),
                    _ => e.to_string(),
                };
                self.unwatchable.report(&dir, why);
            }
        }
    }

    pub fn wait(&mut self, timeout: Duration) -> Pending {
        if let Ok(()) = self.wake.recv_timeout(timeout) {
            // Several events usually come together: one wake-up takes them all.
            while self.wake.try_recv().is_ok() {}
        }
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Records one event in `pending`.
pub(super) fn record(pending: &mut Pending, event: notify::Result<notify::Event>) {
    let event = match event {
        Ok(event) => event,
        // An overflowed queue lost events.
        Err(_) => {
            pending.rescan = true;
            return;
        }
    };
    match event.kind {
        EventKind::Create(_)
        | EventKind::Remove(_)
        | EventKind::Modify(notify::event::ModifyKind::Name(_)) => pending.rescan = true,
        // notify names paths by the absolute form of the watched directory.
        EventKind::Modify(_) => event.paths.iter().for_each(|p| pending.wrote(p)),
        // Anything else (`Any`, `Other`): no telling what changed.
        _ => pending.rescan = true,
    }
}
