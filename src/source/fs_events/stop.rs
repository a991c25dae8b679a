//! Ends a tailer's waits from another thread, for good (the hub's stop). A pipe:
//! [`Stop::stop`] closes its write end, which makes the read end readable (end of
//! file) from then on, so the tailer polls it beside inotify, or alone in place of
//! a sleep. The `notify` watch waits on a channel instead: it is woken through it.

use std::io::{PipeReader, PipeWriter};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};

/// A tailer's stop: clones share it; the owner keeps one to call [`Stop::stop`].
#[derive(Clone)]
pub struct Stop(Arc<Inner>);

struct Inner {
    stopped: AtomicBool,
    reader: PipeReader,
    /// Dropped by `stop`: that is the wake-up.
    writer: Mutex<Option<PipeWriter>>,
    /// The `notify` watch's wake-up channel, once it waits on one.
    notify: Mutex<Option<SyncSender<()>>>,
}

impl Stop {
    pub fn new() -> std::io::Result<Stop> {
        let (reader, writer) = std::io::pipe()?;
        Ok(Stop(Arc::new(Inner {
            stopped: AtomicBool::new(false),
            reader,
            writer: Mutex::new(Some(writer)),
            notify: Mutex::new(None),
        })))
    }

    /// Tells the tailer to stop; its wait ends at once, and every later one.
    pub fn stop(&self) {
        self.0.stopped.store(true, Ordering::SeqCst);
        drop(lock(&self.0.writer).take());
        if let Some(wake) = &*lock(&self.0.notify) {
            // Full: a wake-up is pending already.
            let _ = wake.try_send(());
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::SeqCst)
    }

    /// What to poll beside other file descriptors: readable once stopped.
    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.0.reader.as_fd()
    }

    /// Has `stop` wake a watch that waits on `wake` (set before its first wait,
    /// whose caller looks at [`Stop::is_stopped`] first).
    pub(super) fn wake_through(&self, wake: SyncSender<()>) {
        let mut slot = lock(&self.0.notify);
        // Stopped before: `stop` found no channel to wake.
        if self.is_stopped() {
            let _ = wake.try_send(());
        }
        *slot = Some(wake);
    }

    /// Sleeps for `timeout`, or until stopped.
    pub fn sleep(&self, timeout: Duration) {
        let timeout = Timespec::try_from(timeout).ok();
        let mut fds = [PollFd::new(&self.0.reader, PollFlags::IN)];
        // An error (EINTR) ends the sleep early: the caller looks, and waits again.
        let _ = rustix::event::poll(&mut fds, timeout.as_ref());
    }
}

impl std::fmt::Debug for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stop")
            .field("stopped", &self.is_stopped())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sleep longer than any test: it ends only because of the stop.
    #[test]
    fn a_stop_ends_a_sleep_under_way_and_every_later_one() -> anyhow::Result<()> {
        let stop = Stop::new()?;
        let sleeper = stop.clone();
        let slept = std::thread::spawn(move || {
            sleeper.sleep(Duration::from_secs(3600));
            sleeper.sleep(Duration::from_secs(3600));
            sleeper.is_stopped()
        });
        stop.stop();
        let stopped = slept
            .join()
            .map_err(|_| anyhow::anyhow!("the sleeper panicked"))?;
        anyhow::ensure!(stopped, "woke up without the stop");
        Ok(())
    }
}
