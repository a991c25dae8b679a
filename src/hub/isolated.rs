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
//!
//! Ingest hands a worker a batch with no more than a try-lock and counts a batch
//! skipped in an atomic; the worker tells its client (`dropped`) a few times a second
//! at most, not once per batch (a frame and a wake-up of the hub's runtime each).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::backlog::Entry;
use super::threads::Threads;
use super::{Counters, SinkQueue};
use crate::matcher::{Matcher, Scratch, SubKey};
use crate::shutdown::Kind;

/// Lines one worker may have waiting. A batch is taken whole when the queue is empty,
/// however long. (The worst subscription measured, 200 patterns like
/// `(?i)\w+=\w*a\w*\s+\S*17\S*\s\w{2,8}$`, takes about 80 µs a line: this is at most
/// a second or two behind, and a few MB of batches held.)
pub const QUEUE_LINES: u64 = 16_384;

/// The workers' nice value: below ingest and the sessions (0), above nothing else.
const NICE: i32 = 10;

/// How often a worker that is behind tells its client the lines it skipped
/// (`dropped`), while it waits for its CPU share; and whenever it has caught up.
/// Told per skipped batch, it was a frame per batch read (a thousand a second at
/// 10,000 lines/s), each a wake-up of the hub's runtime.
const TELL_DROPPED_EVERY: Duration = Duration::from_millis(250);

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
    /// Runs `scan` within the budget, waiting for its turn and share: `meanwhile`
    /// every [`TELL_DROPPED_EVERY`] of the wait, which ends without a scan when it
    /// says `false`.
    fn spend<R>(&self, mut meanwhile: impl FnMut() -> bool, scan: impl FnOnce() -> R) -> Option<R> {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let wait = next.saturating_duration_since(Instant::now());
            if wait == Duration::ZERO {
                break;
            }
            std::thread::sleep(wait.min(TELL_DROPPED_EVERY));
            if !meanwhile() {
                return None;
            }
        }
        let started = Instant::now();
        let r = scan();
        let busy = started.elapsed();
        *next = Instant::now() + busy * (SHARE - 1);
        Some(r)
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
    /// Lines skipped and not told yet (outside the lock: see [`Worker::offer`]).
    dropped: AtomicU64,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells `tell` the lines skipped since the last time, if any.
    fn tell_dropped(&self, tell: &impl Fn(u64)) {
        let n = self.dropped.swap(0, Ordering::Relaxed);
        if n > 0 {
            tell(n);
        }
    }

    /// The next batch; `None` once closed. Lines skipped meanwhile are told to
    /// `tell` when there is no batch to take, and at the end.
    fn take(&self, tell: &impl Fn(u64)) -> Option<Arc<Entry>> {
        let mut state = self.lock();
        loop {
            if (state.closed || state.entries.is_empty())
                && self.dropped.load(Ordering::Relaxed) > 0
            {
                drop(state);
                self.tell_dropped(tell);
                state = self.lock();
                continue;
            }
            if state.closed {
                return None;
            }
            if let Some(entry) = state.entries.pop_front() {
                state.lines -= entry.lines;
                return Some(entry);
            }
            // Timed: a skip counted while this thread held the lock (see `offer`)
            // wakes nobody; it is told by the next round at the latest.
            state = self
                .ready
                .wait_timeout(state, TELL_DROPPED_EVERY)
                .map_or_else(|p| p.into_inner().0, |(s, _)| s);
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
        threads: &Threads,
    ) -> std::io::Result<Worker> {
        let queue = Arc::new(Queue::default());
        let (q, m) = (queue.clone(), matcher.clone());
        threads.spawn(format!("isolated-{key}"), Kind::Isolated, move || {
            run(m, q, sink, counters, &budget)
        })?;
        Ok(Worker {
            key,
            matcher,
            queue,
        })
    }

    /// Hands `entry` over unless the queue is full; never waits. A batch skipped is
    /// counted, and told to the client by the worker (while it waits for its share,
    /// and once it has caught up).
    ///
    /// Not even for the lock: the worker holds it only a moment, but it is niced, and
    /// one preempted there (on a busy machine) would stop ingest. Then the batch is
    /// skipped.
    pub fn offer(&self, entry: &Arc<Entry>) -> Offer {
        if !self.matcher.selects(0, &entry.batch.stream) {
            return Offer::NotSelected;
        }
        let skip = || {
            self.queue.dropped.fetch_add(entry.lines, Ordering::Relaxed);
            Offer::Full
        };
        let mut state = match self.queue.state.try_lock() {
            Ok(state) => state,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return skip(),
        };
        if !state.entries.is_empty() && state.lines + entry.lines > QUEUE_LINES {
            drop(state);
            return skip();
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
    lower_priority();
    let key = matcher.key(0);
    let mut scratch = Scratch::default();
    let tell = |n| {
        sink.push_dropped(key, n);
    };
    // Bytes scanned in about one `SLICE` (learnt from each slice).
    let mut slice_bytes = FIRST_SLICE_BYTES;
    'batches: while let Some(entry) = queue.take(&tell) {
        // Gone meanwhile: its matcher's memory goes back now, not after the wait.
        let go_on = || {
            queue.tell_dropped(&tell);
            !queue.lock().closed
        };
        let mut part = Part::start(&entry);
        while let Some(piece) = part.next(slice_bytes) {
            let scanned = budget.spend(go_on, || {
                let started = Instant::now();
                let delivered = super::deliver(
                    &matcher,
                    &piece,
                    |k| (k == key).then_some(&sink),
                    sink.wants_every_batch(),
                    &mut scratch,
                );
                (delivered, started.elapsed())
            });
            let Some((delivered, took)) = scanned else {
                break 'batches;
            };
            slice_bytes = next_slice_bytes(piece.batch.text.len(), took);
            counters
                .matches_delivered
                .fetch_add(delivered, Ordering::Relaxed);
        }
    }
    // Most likely the last holder of the subscription's matcher: its memory goes back.
    drop((matcher, scratch));
    super::memory::give_back();
}

/// How long a worker scans before it gives way to its budget again. A batch is up
/// to a read chunk (256 KiB), which the worst subscription measured (200 patterns
/// like `(?i)\w+=\w*a\w*\s+\S*17\S*\s\w{2,8}$`, ~80 µs a line) scanned for about
/// a second in one go: the share held on average, but within that second the worker
/// had a core and the caches, and the hub's lines/s measured over a short burst fell
/// to a third. Scanned in slices of about this long, an eighth holds at every time
/// scale a client can feel.
const SLICE: Duration = Duration::from_millis(1);

/// The first slice of a worker, before it knows its rate: ~50 of the worst lines.
const FIRST_SLICE_BYTES: usize = 2 << 10;

/// The bytes a slice should hold, from the last one (`bytes` scanned in `took`).
fn next_slice_bytes(bytes: usize, took: Duration) -> usize {
    let per_slice = bytes as u128 * SLICE.as_nanos() / took.as_nanos().max(1);
    usize::try_from(per_slice).map_or(usize::MAX, |b| b.max(256))
}

/// A batch taken a slice at a time: each slice whole lines, an [`Entry`] of its own
/// (its text shared with the batch's), numbered as in the batch.
struct Part<'e> {
    entry: &'e Arc<Entry>,
    /// Where the next slice starts, and its first line's sequence number.
    at: usize,
    seq: u64,
}

impl<'e> Part<'e> {
    fn start(entry: &'e Arc<Entry>) -> Part<'e> {
        Part {
            entry,
            at: 0,
            seq: entry.first_seq,
        }
    }

    /// The next slice: at least `bytes` (up to the end of a line), or what is left.
    fn next(&mut self, bytes: usize) -> Option<Arc<Entry>> {
        let text = &self.entry.batch.text;
        let rest = &text[self.at..];
        if rest.is_empty() {
            return None;
        }
        if self.at == 0 && bytes >= rest.len() {
            self.at = text.len();
            return Some(self.entry.clone());
        }
        let end = match rest.as_bytes().get(bytes..) {
            None => rest.len(),
            Some(after) => memchr::memchr(b'\n', after).map_or(rest.len(), |i| bytes + i + 1),
        };
        let slice = &rest[..end];
        let lines = crate::line::lines(slice).count() as u64;
        let piece = Entry {
            batch: crate::line::LineBatch {
                text: text.slice_ref(slice),
                ..self.entry.batch.clone()
            },
            first_seq: self.seq,
            lines,
        };
        self.at += end;
        self.seq += lines;
        Some(Arc::new(piece))
    }
}

/// Niced, below ingest and the sessions. Not `SCHED_IDLE`: tried, on 2 vCPUs shared
/// with other builds it got no CPU at all (the kernel weighs this thread's group on
/// its CPU by its own tiny load), and a costly subscription was never served.
fn lower_priority() {
    // `None` is this thread: Linux keeps a nice value per thread.
    if let Err(e) = rustix::process::setpriority_process(None, NICE) {
        tracing::debug!("isolated worker keeps its priority: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::{LineBatch, Stream};

    fn entry(text: &str, first_seq: u64) -> Arc<Entry> {
        Arc::new(Entry {
            batch: LineBatch {
                stream: Arc::new(Stream::new("h", "/a.log", "default")),
                ts: std::time::SystemTime::UNIX_EPOCH,
                text: text.into(),
                origin: None,
            },
            first_seq,
            lines: crate::line::lines(text).count() as u64,
        })
    }

    /// Slices are whole lines, in order, numbered as in the batch, together the batch.
    #[test]
    fn a_batch_is_sliced_into_whole_lines_numbered_as_in_it() {
        let text: String = (0..100)
            .map(|i| format!("line {i} {}\n", "x".repeat(i % 13)))
            .collect();
        let whole = entry(&text, 1000);
        for bytes in [1, 7, 64, 300, text.len() - 1] {
            let mut part = Part::start(&whole);
            let (mut joined, mut numbered) = (String::new(), Vec::new());
            while let Some(piece) = part.next(bytes) {
                assert!(
                    piece.batch.text.ends_with('\n'),
                    "{bytes}: {:?}",
                    piece.batch.text
                );
                assert!(piece.batch.text.len() >= bytes.min(piece.batch.text.len()));
                numbered.extend(piece.log_lines().map(|(seq, l)| (seq, l.to_owned())));
                joined.push_str(&piece.batch.text);
            }
            assert_eq!(joined, text, "{bytes}");
            let want: Vec<(u64, String)> = whole
                .log_lines()
                .map(|(seq, l)| (seq, l.to_owned()))
                .collect();
            assert_eq!(numbered, want, "{bytes}");
        }
        // A batch within one slice is handed on as it is.
        let mut part = Part::start(&whole);
        let piece = part.next(text.len());
        assert!(piece.is_some_and(|p| Arc::ptr_eq(&p, &whole)));
        assert!(part.next(text.len()).is_none());
    }

    #[test]
    fn a_slice_lasts_about_one_slice_of_time() {
        // 10 KiB in 5 ms: 2 KiB a millisecond.
        assert_eq!(
            next_slice_bytes(10 << 10, Duration::from_millis(5)),
            2 << 10
        );
        // Never below a few lines, whatever the rate.
        assert_eq!(next_slice_bytes(100, Duration::from_secs(1)), 256);
        assert!(next_slice_bytes(1 << 20, Duration::ZERO) > 1 << 20);
    }
}
