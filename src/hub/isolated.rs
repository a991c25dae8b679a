//! Subscriptions evaluated apart from the shared one-pass matcher: those whose cost
//! ([`matcher::cost`](crate::matcher::cost)) would slow every line for everyone.
//!
//! Each has a worker thread of its own, with its own matcher (of just that
//! subscription), fed the ingested batches through a bounded queue. Ingest never
//! waits for it: when the queue is full the batch is skipped for that subscription,
//! its lines are told to the client as `dropped` and counted in `/metrics`. So when
//! it cannot keep up, it is the one that loses lines; the hub and every other client
//! go on at full speed. Its matches enter its client's [`SinkQueue`] as any other's.
//!
//! A thread each, so that one that cannot keep up holds up no other; but a worker
//! that cannot keep up is busy all the time, and on a machine of few cores it would
//! take a core from ingest and the other clients' sessions (niced, it still did: on
//! 2 vCPUs, which are hyperthreads of one core, the hub's lines/s fell to 0.29 of
//! what they were without it). So the workers share one CPU [`Budget`]: together, at
//! most one at a time and an eighth of one core's time. The number of them is bounded
//! too (`Limits::max_isolated`); beyond, a costly subscription is refused.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::backlog::Entry;
use super::{Counters, SinkQueue};
use crate::matcher::{Matcher, Scratch, SubKey};

/// Lines one worker may have waiting. A batch is taken whole when the queue is empty,
/// however long. (The worst subscription measured, 200 patterns like
/// `(?i)\w+=\w*a\w*\s+\S*17\S*\s\w{2,8}$`, takes about 80 µs a line: this is at most
/// a second or two behind, and a few MB of batches held.)
pub const QUEUE_LINES: u64 = 16_384;

/// The workers' nice value: below ingest and the sessions (0), above nothing else.
const NICE: i32 = 10;

/// The isolated workers together scan at most 1/`SHARE` of the time (wall time, so a
/// worker preempted by ingest pays for that too).
pub const SHARE: u32 = 8;

/// The CPU time all isolated workers share: one scans at a time, and after a scan
/// that took `t` the next waits `t × (SHARE − 1)`.
#[derive(Debug)]
pub struct Budget {
    /// When the next scan may start; held while one runs.
    next: Mutex<Instant>,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            next: Mutex::new(Instant::now()),
        }
    }
}

impl Budget {
    /// Runs `scan` within the budget (waiting for its turn and share).
    fn spend<R>(&self, scan: impl FnOnce() -> R) -> R {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let wait = next.saturating_duration_since(Instant::now());
        if wait > Duration::ZERO {
            std::thread::sleep(wait);
        }
        let started = Instant::now();
        let r = scan();
        let busy = started.elapsed();
        *next = Instant::now() + busy * (SHARE - 1);
        r
    }
}

/// What became of a batch offered to a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    Queued,
    /// The queue was full: skipped (the caller tells the client).
    Full,
    /// The subscription does not listen to the batch's stream.
    NotSelected,
}

#[derive(Debug, Default)]
struct State {
    entries: VecDeque<Arc<Entry>>,
    lines: u64,
    closed: bool,
}

#[derive(Debug, Default)]
struct Queue {
    state: Mutex<State>,
    ready: Condvar,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next batch; `None` once closed.
    fn take(&self) -> Option<Arc<Entry>> {
        let mut state = self.lock();
        loop {
            if state.closed {
                return None;
            }
            if let Some(entry) = state.entries.pop_front() {
                state.lines -= entry.lines;
                return Some(entry);
            }
            state = self.ready.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// One isolated subscription's worker; dropping it ends the thread (after the batch
/// in hand) and frees its queue and matcher.
#[derive(Debug)]
pub struct Worker {
    pub key: SubKey,
    matcher: Arc<Matcher>,
    queue: Arc<Queue>,
}

impl Worker {
    /// Starts evaluating subscription `key` (the only one `matcher` has) into `sink`.
    pub fn spawn(
        key: SubKey,
        matcher: Arc<Matcher>,
        sink: Arc<SinkQueue>,
        counters: Arc<Counters>,
        budget: Arc<Budget>,
    ) -> std::io::Result<Worker> {
        let queue = Arc::new(Queue::default());
        let (q, m) = (queue.clone(), matcher.clone());
        std::thread::Builder::new()
            .name(format!("isolated-{key:x}"))
            .spawn(move || run(m, q, sink, counters, &budget))?;
        Ok(Worker {
            key,
            matcher,
            queue,
        })
    }

    /// Hands `entry` over unless the queue is full; never waits.
    pub fn offer(&self, entry: &Arc<Entry>) -> Offer {
        if !self.matcher.selects(0, &entry.batch.stream) {
            return Offer::NotSelected;
        }
        let mut state = self.queue.lock();
        if !state.entries.is_empty() && state.lines + entry.lines > QUEUE_LINES {
            return Offer::Full;
        }
        state.lines += entry.lines;
        state.entries.push_back(entry.clone());
        drop(state);
        self.queue.ready.notify_one();
        Offer::Queued
    }

    /// Lines waiting for the worker.
    pub fn queued_lines(&self) -> u64 {
        self.queue.lock().lines
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let mut state = self.queue.lock();
        state.closed = true;
        state.entries.clear();
        drop(state);
        self.queue.ready.notify_one();
    }
}

fn run(
    matcher: Arc<Matcher>,
    queue: Arc<Queue>,
    sink: Arc<SinkQueue>,
    counters: Arc<Counters>,
    budget: &Budget,
) {
    // `None` is this thread: Linux keeps a nice value per thread.
    if let Err(e) = rustix::process::setpriority_process(None, NICE) {
        tracing::debug!("isolated worker keeps its priority: {e}");
    }
    let key = matcher.key(0);
    let mut scratch = Scratch::default();
    while let Some(entry) = queue.take() {
        let delivered = budget.spend(|| {
            super::deliver(
                &matcher,
                &entry,
                |k| (k == key).then_some(&sink),
                sink.wants_every_batch(),
                &mut scratch,
            )
        });
        counters
            .matches_delivered
            .fetch_add(delivered, Ordering::Relaxed);
    }
    // Most likely the last holder of the subscription's matcher: its memory goes back.
    drop((matcher, scratch));
    super::memory::give_back();
}
