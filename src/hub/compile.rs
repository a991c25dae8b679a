//! Where subscriptions are compiled: a few threads of their own, before the matcher
//! thread's rebuild, so that one slow compile (a 1 MiB pattern took 1.35 s) holds up
//! no other client's subscribe; the rebuild then only puts compiled patterns
//! together. Bounded twice: [`THREADS`] threads, [`WAITING`] jobs queued (each is a
//! client awaiting its `subscribed`; beyond, `busy`).

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use crate::matcher::CompileError;

/// Compiles at once: a slow one leaves the others to the rest.
pub const THREADS: usize = 4;
/// Compiles waiting for a thread.
pub const WAITING: usize = 1024;

type Job = Box<dyn FnOnce() + Send>;

pub struct Pool {
    jobs: SyncSender<Job>,
    /// None could start: jobs run on the caller's thread.
    inline: bool,
}

impl Pool {
    pub fn new() -> Pool {
        let (jobs, waiting) = mpsc::sync_channel::<Job>(WAITING);
        let waiting = Arc::new(Mutex::new(waiting));
        let mut started = 0;
        for i in 0..THREADS {
            let waiting = waiting.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("compile-{i}"))
                .spawn(move || work(&waiting));
            match spawned {
                Ok(_) => started += 1,
                Err(e) => tracing::error!("cannot start a compile thread: {e}"),
            }
        }
        Pool {
            jobs,
            inline: started == 0,
        }
    }

    /// Runs `job` on a compile thread; `Busy` when too many wait.
    pub fn run(&self, job: impl FnOnce() + Send + 'static) -> Result<(), CompileError> {
        if self.inline {
            job();
            return Ok(());
        }
        match self.jobs.try_send(Box::new(job)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(CompileError::Busy),
            Err(TrySendError::Disconnected(_)) => Err(CompileError::Unavailable),
        }
    }
}

impl Default for Pool {
    fn default() -> Self {
        Pool::new()
    }
}

/// Takes jobs until the pool (its sender) is gone.
fn work(waiting: &Mutex<Receiver<Job>>) {
    loop {
        let job = {
            let waiting = waiting.lock().unwrap_or_else(|p| p.into_inner());
            waiting.recv()
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}
