//! Where subscriptions are compiled: threads of their own, before the matcher
//! thread's rebuild, so that one slow compile (a 1 MiB pattern took 1.35 s) holds up
//! no other client's subscribe; the rebuild then only puts compiled patterns
//! together. Bounded twice: at most [`THREADS`] threads, [`WAITING`] jobs queued
//! (each is a client awaiting its `subscribed`; beyond, `busy`). A thread ends when
//! there is nothing left to compile, which also lets its heap go back to the system
//! (see [`memory`](super::memory)).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use super::threads::Threads;
use crate::matcher::CompileError;
use crate::shutdown::Kind;

/// Compiles at once: a slow one leaves the others to the rest.
pub const THREADS: usize = 4;
/// Compiles waiting for a thread.
pub const WAITING: usize = 1024;

type Job = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct State {
    waiting: VecDeque<Job>,
    threads: usize,
}

#[derive(Default)]
pub struct Pool {
    state: Arc<Mutex<State>>,
}

impl Pool {
    pub fn new() -> Pool {
        Pool::default()
    }

    /// Runs `job` on a compile thread (a new one while fewer than [`THREADS`] run);
    /// `Busy` when [`WAITING`] wait already.
    pub fn run(
        &self,
        threads: &Threads,
        job: impl FnOnce() + Send + 'static,
    ) -> Result<(), CompileError> {
        let mut state = lock(&self.state);
        if state.waiting.len() >= WAITING {
            return Err(CompileError::Busy);
        }
        state.waiting.push_back(Box::new(job));
        if state.threads >= THREADS {
            return Ok(());
        }
        let shared = self.state.clone();
        let spawned = threads.spawn("compile".into(), Kind::Compile, move || work(&shared));
        match spawned {
            Ok(()) => state.threads += 1,
            Err(e) => {
                // A thread running already takes it; with none, it runs here.
                tracing::warn!("cannot start a compile thread: {e}");
                if state.threads == 0 {
                    let job = state.waiting.pop_back();
                    drop(state);
                    job.into_iter().for_each(|job| job());
                }
            }
        }
        Ok(())
    }
}

/// Takes jobs until none is left, then ends.
fn work(state: &Mutex<State>) {
    loop {
        let job = {
            let mut state = lock(state);
            match state.waiting.pop_front() {
                Some(job) => job,
                None => {
                    state.threads -= 1;
                    return;
                }
            }
        };
        job();
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
