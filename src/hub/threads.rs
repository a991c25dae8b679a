//! The hub's own OS threads (the matcher thread, the compile threads, the isolated
//! workers), so that its owner can wait for them and join them when it stops.
//!
//! Each ends by itself once the hub is freed (the matcher's channel closes, the
//! workers' queues close, compiles have nothing left). With a shutdown handle given
//! ([`Hub::new_stopped_by`](super::Hub::new_stopped_by)) the hub holds it, and every
//! thread holds a child of it: the owner's stop then waits for the hub to be freed
//! and for each thread to end, within its one bound, and names those that did not.
//! The join handles are kept in [`Joins`], which outlives the hub: the owner joins
//! them after the stop.

use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::shutdown::{join_thread, Handle, Kind, StillRunning};

/// Starts the hub's threads, each holding a child of the hub's handle (when it has
/// one), and keeps their join handles.
pub struct Threads {
    /// Dropped with the hub: then the stop waits only for the threads themselves.
    running: Option<Handle>,
    joins: Joins,
}

/// The join handles of the hub's threads: those still running, and those ended
/// but not joined yet (joined whenever another starts, so that they stay as few
/// as the threads alive).
#[derive(Clone, Default)]
pub struct Joins(Arc<Mutex<Vec<Thread>>>);

struct Thread {
    name: String,
    join: JoinHandle<()>,
}

impl Threads {
    pub fn new(running: Option<Handle>) -> Threads {
        Threads {
            running,
            joins: Joins::default(),
        }
    }

    /// The join handles, for the owner to join once the hub is freed.
    pub fn joins(&self) -> Joins {
        self.joins.clone()
    }

    /// Starts `f` on a thread named `name`, of `kind` in the stop's log.
    pub fn spawn(
        &self,
        name: String,
        kind: Kind,
        f: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<()> {
        let join = match &self.running {
            Some(running) => crate::shutdown::spawn_thread(&name, running.child(kind), f)?,
            None => std::thread::Builder::new().name(name.clone()).spawn(f)?,
        };
        let mut threads = self.joins.lock();
        // Those ended are joined now: a compile thread starts for each burst of
        // subscribes, and their handles would pile up for as long as the hub runs.
        let (ended, alive): (Vec<_>, Vec<_>) =
            threads.drain(..).partition(|t| t.join.is_finished());
        *threads = alive;
        threads.push(Thread { name, join });
        drop(threads);
        for thread in ended {
            if thread.join.join().is_err() {
                tracing::error!("the {} thread had panicked", thread.name);
            }
        }
        Ok(())
    }
}

impl Joins {
    fn lock(&self) -> MutexGuard<'_, Vec<Thread>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Joins every thread, once the stop is done (see [`join_thread`]).
    pub fn join(&self, given_up: Option<&StillRunning>) {
        let threads = std::mem::take(&mut *self.lock());
        for thread in threads {
            join_thread(&thread.name, thread.join, given_up.is_some());
        }
    }
}
