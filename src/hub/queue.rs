//! The bounded queue between the hub and one sink.
//!
//! The hub pushes matches without waiting; a sink takes them in batches. When a sink
//! falls behind, [`Overflow::DropOldest`] drops its oldest matches and counts them, so
//! a slow sink never slows the hub or anyone else. Terminal mode, whose one sink
//! reads files that stay on disk, uses [`Overflow::Wait`] instead: the hub waits, the
//! tailer waits, nothing is lost.
//!
//! This queue is the one seam between the hub and every sink: a sink (WebSocket
//! client, terminal printer, IRC, and later NATS or a webhook) makes a queue of the
//! [`SinkKind`] it needs, subscribes with it, and takes from it on its own thread or
//! task; the hub never knows what consumes it. The kind is the one choice a sink
//! makes, and [`Found`] the one place that choice shapes what the hub hands over:
//!
//! - [`Takes::Lines`]: each match a [`Delivery`], a line of its own that outlives its
//!   batch, so a sink that holds matches a while (a client's socket, IRC's flood
//!   control) holds only those. Full, it drops its oldest (and says how many) or
//!   makes the hub wait ([`Overflow`]).
//! - [`Takes::MatchingBatches`], [`Takes::EveryBatch`]: a sink that only prints (the
//!   terminal) takes [`BatchMatches`], the matching lines left in the batch they were
//!   read in, and the hub waits when it is full: nothing lost, in order. A line of its
//!   own per match (allocated by the hub's thread, freed by the printer's) cost more
//!   than finding it when most lines match (`-e e` over 1.4 GB: see the commit that
//!   brought this).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::backlog::Entry;
use crate::line::{LineRef, LogLine};
use crate::matcher::SubKey;

/// Batches a batch-taking sink may hold queued at most, whatever their matches: each
/// keeps its whole batch (up to a read chunk) alive.
const MAX_QUEUED_BATCHES: usize = 16;

/// A consumer to wake once the queue's lock is released (see
/// [`SinkQueue::push_all_unwoken`]).
#[must_use = "the consumer sleeps until woken"]
pub struct Wake<'a> {
    queue: &'a SinkQueue,
    /// A blocking consumer sleeps on the condition variable.
    blocking: bool,
    /// There is something to take.
    waiting: bool,
}

impl Wake<'_> {
    pub fn wake(self) {
        if self.blocking {
            self.queue.ready.notify_one();
        }
        if self.waiting {
            // Cheap when nobody waits: it only leaves a permit.
            self.queue.ready_async.notify_one();
        }
    }
}

/// How a sink takes its matches (see the module's doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    /// Each match as a [`Delivery`] of its own.
    Lines(Overflow),
    /// The matches of each batch as one [`BatchMatches`]; the hub waits when full.
    MatchingBatches,
    /// As `MatchingBatches`, and every batch of the streams its subscription selects,
    /// matches or not (as a [`BatchMatches`] with no lines): context lines (`-A/-B/-C`)
    /// print lines that did not match.
    EveryBatch,
}

/// Whether the hub computes highlight spans for a sink (costly: only when shown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spans {
    Wanted,
    NotWanted,
}

impl Spans {
    /// `Wanted` when `shown` (spans are shown with colour, say).
    pub fn wanted_if(shown: bool) -> Spans {
        if shown {
            Spans::Wanted
        } else {
            Spans::NotWanted
        }
    }
}

/// What a sink asks of the hub: how it takes its matches, and whether with spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkKind {
    pub takes: Takes,
    pub spans: Spans,
}

/// One match for one subscription, as a line of its own: what a [`Takes::Lines`] sink
/// takes. Exists because such a sink keeps matches past their batch (the ring may
/// drop the batch meanwhile), and the line's shared encoding is made once for every
/// client that gets it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub sub: SubKey,
    pub line: LogLine,
    /// Highlight spans in characters (empty when the sink did not ask for spans).
    pub spans: Vec<[usize; 2]>,
}

/// The matches of one subscription in one batch, where the batch holds them: what a
/// batch-taking sink takes. Exists so the terminal prints every line without an
/// allocation per line (the batch is kept alive instead).
#[derive(Debug)]
pub struct BatchMatches {
    pub entry: Arc<Entry>,
    pub lines: Vec<MatchedLine>,
}

/// One matching line of a [`BatchMatches`]: where it is in its batch, so that no line
/// of its own is made.
#[derive(Debug)]
pub struct MatchedLine {
    /// Lines before it in the batch.
    pub index: u64,
    /// Where it is in the batch's text.
    pub start: usize,
    pub end: usize,
    /// Highlight spans in characters (empty when the sink did not ask for spans).
    pub spans: Vec<[usize; 2]>,
}

impl BatchMatches {
    /// The matching lines, in order, with their spans.
    pub fn iter(&self) -> impl Iterator<Item = (LineRef<'_>, &[[usize; 2]])> {
        let batch = &self.entry.batch;
        self.lines.iter().map(move |m| {
            let line = LineRef {
                stream: &batch.stream,
                seq: self.entry.first_seq + m.index,
                ts: batch.ts,
                text: batch.text.get(m.start..m.end).unwrap_or_default(),
            };
            (line, m.spans.as_slice())
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    DropOldest,
    Wait,
}

/// One batch's matches for one sink, gathered by the hub in the form the sink's
/// [`Takes`] asks for: the one place that form is chosen.
#[derive(Debug)]
pub enum Found {
    Lines(Vec<Delivery>),
    Batch(BatchMatches),
}

impl Found {
    /// Adds one matching line: `index` lines into the batch, at `start..end` of its
    /// text. `line` makes the line of its own a [`Takes::Lines`] sink takes (the
    /// caller shares one among every such sink of the line).
    #[inline]
    pub fn add(
        &mut self,
        sub: SubKey,
        index: u64,
        start: usize,
        end: usize,
        spans: Vec<[usize; 2]>,
        line: impl FnOnce() -> LogLine,
    ) {
        match self {
            Found::Lines(deliveries) => deliveries.push(Delivery {
                sub,
                line: line(),
                spans,
            }),
            Found::Batch(matches) => matches.lines.push(MatchedLine {
                index,
                start,
                end,
                spans,
            }),
        }
    }

    /// Matching lines found.
    pub fn len(&self) -> usize {
        match self {
            Found::Lines(deliveries) => deliveries.len(),
            Found::Batch(matches) => matches.lines.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a sink takes out in one go: its matches in the form its kind takes
/// ([`Delivery`] or [`BatchMatches`], named by the consumer: `take::<Delivery>`).
#[derive(Debug)]
pub struct Taken<T> {
    pub matches: Vec<T>,
    /// Matches dropped since the last take because the queue was full, per
    /// subscription.
    pub dropped: Vec<(SubKey, u64)>,
}

impl<T> Default for Taken<T> {
    fn default() -> Self {
        Taken {
            matches: Vec::new(),
            dropped: Vec::new(),
        }
    }
}

/// What comes out of a queue: [`Delivery`] for a [`Takes::Lines`] sink,
/// [`BatchMatches`] for the others (sealed: these two only).
pub trait Taking: sealed::Drain {}

impl Taking for Delivery {}
impl Taking for BatchMatches {}

mod sealed {
    use super::{BatchMatches, Delivery, State};

    pub trait Drain: Sized {
        /// Takes up to `max` lines' worth from `state`.
        fn drain(state: &mut State, max: usize) -> Vec<Self>;
    }

    impl Drain for Delivery {
        fn drain(state: &mut State, max: usize) -> Vec<Delivery> {
            let n = state.items.len().min(max.max(1));
            state.items.drain(..n).collect()
        }
    }

    impl Drain for BatchMatches {
        /// Whole batches, at least one, up to `max` lines.
        fn drain(state: &mut State, max: usize) -> Vec<BatchMatches> {
            let mut batches = Vec::new();
            let mut lines = 0;
            while let Some(b) = state.batches.front() {
                if !batches.is_empty() && lines + b.lines.len() > max {
                    break;
                }
                lines += b.lines.len();
                batches.extend(state.batches.pop_front());
            }
            state.batch_lines -= lines;
            batches
        }
    }
}

/// A queue's contents (behind its lock; opaque outside this module).
#[derive(Debug, Default)]
pub struct State {
    items: VecDeque<Delivery>,
    batches: VecDeque<BatchMatches>,
    /// Lines in `batches`.
    batch_lines: usize,
    dropped: Vec<(SubKey, u64)>,
    closed: bool,
    /// Who sleeps, so that wake-ups (system calls) happen only when needed.
    consumer_waiting: bool,
    producer_waiting: bool,
}

impl State {
    fn is_empty(&self) -> bool {
        self.items.is_empty() && self.batches.is_empty()
    }

    /// Matches queued, in lines.
    fn len(&self) -> usize {
        self.items.len() + self.batch_lines
    }
}

#[derive(Debug)]
pub struct SinkQueue {
    state: Mutex<State>,
    capacity: usize,
    kind: SinkKind,
    /// Wakes an async consumer.
    ready_async: Notify,
    /// Wakes a blocking consumer.
    ready: Condvar,
    /// Wakes a producer waiting for room ([`Overflow::Wait`]).
    room: Condvar,
}

impl SinkQueue {
    /// A queue of up to `capacity` matches (a batch-taking one also holds a few
    /// batches at most: each keeps its whole batch alive).
    pub fn new(capacity: usize, kind: SinkKind) -> SinkQueue {
        SinkQueue {
            state: Mutex::default(),
            capacity: capacity.max(1),
            kind,
            ready_async: Notify::new(),
            ready: Condvar::new(),
            room: Condvar::new(),
        }
    }

    pub fn kind(&self) -> SinkKind {
        self.kind
    }

    fn overflow(&self) -> Overflow {
        match self.kind.takes {
            Takes::Lines(overflow) => overflow,
            Takes::MatchingBatches | Takes::EveryBatch => Overflow::Wait,
        }
    }

    /// Whether this sink takes batches without matches too.
    pub fn wants_every_batch(&self) -> bool {
        self.kind.takes == Takes::EveryBatch
    }

    /// Whether this sink drops its oldest matches when full (rather than make the hub
    /// wait): only such a sink's subscription may be evaluated apart, and skipped.
    pub fn drops_oldest(&self) -> bool {
        self.overflow() == Overflow::DropOldest
    }

    /// An empty [`Found`] of the form this sink takes, for a batch of `entry`.
    pub fn found(&self, entry: &Arc<Entry>) -> Found {
        match self.kind.takes {
            Takes::Lines(_) => Found::Lines(Vec::new()),
            Takes::MatchingBatches | Takes::EveryBatch => Found::Batch(BatchMatches {
                entry: entry.clone(),
                lines: Vec::new(),
            }),
        }
    }

    /// Queues one batch's matches (see [`push_all_unwoken`](Self::push_all_unwoken)
    /// for the wake-up returned; `None` once the sink has gone).
    pub fn push_found_unwoken(&self, found: Found) -> Option<Wake<'_>> {
        match found {
            Found::Lines(deliveries) => self.push_all_unwoken(deliveries),
            Found::Batch(matches) => self.push_batch_unwoken(matches),
        }
    }

    /// Counts `n` matches of `sub` as dropped without queueing anything (lines a
    /// subscription evaluated apart could not search in time), and wakes the
    /// consumer to tell; `false` once the sink has gone.
    pub fn push_dropped(&self, sub: SubKey, n: u64) -> bool {
        let mut state = self.lock();
        if state.closed {
            return false;
        }
        match state.dropped.iter_mut().find(|(k, _)| *k == sub) {
            Some((_, d)) => *d += n,
            None => state.dropped.push((sub, n)),
        }
        drop(state);
        self.ready.notify_one();
        self.ready_async.notify_one();
        true
    }

    /// Queues one match; returns `false` once the sink has gone.
    pub fn push(&self, delivery: Delivery) -> bool {
        self.push_all(std::iter::once(delivery))
    }

    /// Queues matches in order (one wake-up for all of them); returns `false` once
    /// the sink has gone.
    pub fn push_all(&self, deliveries: impl IntoIterator<Item = Delivery>) -> bool {
        match self.push_all_unwoken(deliveries) {
            Some(wake) => {
                wake.wake();
                true
            }
            None => false,
        }
    }

    /// [`push_all`](Self::push_all) without the wake-up, which is returned instead
    /// (`None` once the sink has gone): the hub fills every sink's queue first and
    /// wakes them after, so a woken consumer neither finds the queue's lock held nor
    /// preempts the hub before the other sinks have their matches.
    pub fn push_all_unwoken(
        &self,
        deliveries: impl IntoIterator<Item = Delivery>,
    ) -> Option<Wake<'_>> {
        let mut state = self.lock();
        for delivery in deliveries {
            if self.overflow() == Overflow::Wait {
                state = self.wait_while(state, |s| s.items.len() >= self.capacity);
            }
            if state.closed {
                return None;
            }
            if state.items.len() >= self.capacity {
                if let Some(old) = state.items.pop_front() {
                    match state.dropped.iter_mut().find(|(k, _)| *k == old.sub) {
                        Some((_, n)) => *n += 1,
                        None => state.dropped.push((old.sub, 1)),
                    }
                }
            }
            state.items.push_back(delivery);
        }
        Some(self.wake_of(&mut state))
    }

    /// Queues the matches of one batch, waiting while the queue is full (`None` once
    /// the sink has gone); the wake-up is returned as by
    /// [`push_all_unwoken`](Self::push_all_unwoken).
    pub fn push_batch_unwoken(&self, matches: BatchMatches) -> Option<Wake<'_>> {
        let mut state = self.wait_while(self.lock(), |s| {
            s.len() >= self.capacity || s.batches.len() >= MAX_QUEUED_BATCHES
        });
        if state.closed {
            return None;
        }
        state.batch_lines += matches.lines.len();
        state.batches.push_back(matches);
        Some(self.wake_of(&mut state))
    }

    /// Sleeps while `full` (and the queue open). The consumer is woken under the lock
    /// first: this producer sleeps until it takes some.
    fn wait_while<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        full: impl Fn(&State) -> bool,
    ) -> MutexGuard<'a, State> {
        while full(&state) && !state.closed {
            self.wake_of(&mut state).wake();
            state.producer_waiting = true;
            state = self.room.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        state
    }

    /// The wake-up the consumer needs now (none when there is nothing to take).
    fn wake_of(&self, state: &mut State) -> Wake<'_> {
        let waiting = !state.is_empty();
        Wake {
            queue: self,
            blocking: waiting && std::mem::take(&mut state.consumer_waiting),
            waiting,
        }
    }

    /// No more matches will come (or the sink went away): wakes everyone.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
        self.room.notify_all();
        self.ready_async.notify_one();
    }

    /// Waits for matches; `None` when the queue is closed and empty.
    pub fn take_blocking<T: Taking>(&self, max: usize) -> Option<Taken<T>> {
        let mut state = self.lock();
        loop {
            if let Some(taken) = self.take_locked(&mut state, max) {
                return Some(taken);
            }
            if state.closed {
                return None;
            }
            state.consumer_waiting = true;
            state = self.ready.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Takes what is there without waiting (an empty `Taken` when nothing is).
    #[cfg(test)]
    pub fn try_take<T: Taking>(&self, max: usize) -> Taken<T> {
        let mut state = self.lock();
        self.take_locked(&mut state, max).unwrap_or_default()
    }

    /// Async form of [`take_blocking`](Self::take_blocking).
    pub async fn take<T: Taking>(&self, max: usize) -> Option<Taken<T>> {
        loop {
            let notified = self.ready_async.notified();
            {
                let mut state = self.lock();
                if let Some(taken) = self.take_locked(&mut state, max) {
                    return Some(taken);
                }
                if state.closed {
                    return None;
                }
            }
            notified.await;
        }
    }

    fn take_locked<T: Taking>(&self, state: &mut State, max: usize) -> Option<Taken<T>> {
        if state.is_empty() && state.dropped.is_empty() {
            return None;
        }
        let taken = Taken {
            matches: T::drain(state, max),
            dropped: std::mem::take(&mut state.dropped),
        };
        if std::mem::take(&mut state.producer_waiting) {
            self.room.notify_all();
        }
        Some(taken)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::Stream;
    use anyhow::Context;
    use std::sync::Arc;

    fn lines(overflow: Overflow) -> SinkKind {
        SinkKind {
            takes: Takes::Lines(overflow),
            spans: Spans::NotWanted,
        }
    }

    fn d(seq: u64) -> Delivery {
        Delivery {
            sub: SubKey::from_raw(seq % 2),
            line: LogLine::new(
                Arc::new(Stream::new("h", "/p", "s")),
                seq,
                std::time::SystemTime::now(),
                "x",
            ),
            spans: vec![],
        }
    }

    #[test]
    fn drop_oldest_counts_what_it_drops() {
        let q = SinkQueue::new(3, lines(Overflow::DropOldest));
        for i in 0..10 {
            assert!(q.push(d(i)));
        }
        let t = q.take_blocking::<Delivery>(100).unwrap_or_default();
        assert_eq!(
            t.dropped,
            [(SubKey::from_raw(0), 4), (SubKey::from_raw(1), 3)]
        );
        assert_eq!(
            t.matches.iter().map(|d| d.line.seq).collect::<Vec<_>>(),
            [7, 8, 9]
        );
        q.close();
        assert!(!q.push(d(11)));
        assert!(q.take_blocking::<Delivery>(10).is_none());
    }

    /// A batch of `n` lines numbered from `first`, every line a match.
    fn batch(first: u64, n: u64) -> BatchMatches {
        let text: String = (first..first + n).map(|i| format!("line {i}\n")).collect();
        let mut lines = Vec::new();
        let mut start = 0;
        for (index, l) in text.lines().enumerate() {
            lines.push(MatchedLine {
                index: index as u64,
                start,
                end: start + l.len(),
                spans: vec![],
            });
            start += l.len() + 1;
        }
        let entry = Entry {
            batch: crate::line::LineBatch {
                stream: Arc::new(Stream::new("h", "/p", "s")),
                ts: std::time::SystemTime::now(),
                text: text.into(),
                origin: None,
            },
            first_seq: first,
            lines: n,
        };
        BatchMatches {
            entry: Arc::new(entry),
            lines,
        }
    }

    /// Batches wait for room as single matches do (by lines, and by batches: each
    /// holds its whole batch), and come out whole, in order, with their numbers.
    #[test]
    fn batches_wait_for_room_and_come_out_in_order() -> anyhow::Result<()> {
        let q = Arc::new(SinkQueue::new(
            10,
            SinkKind {
                takes: Takes::MatchingBatches,
                spans: Spans::NotWanted,
            },
        ));
        assert!(!q.drops_oldest());
        let producer = {
            let q = q.clone();
            std::thread::spawn(move || {
                // 40 one-line batches (held back by the batch bound), then bigger ones
                // (by the line bound).
                let mut first = 0;
                for n in std::iter::repeat_n(1, 40).chain([7, 7, 7, 30]) {
                    let Some(wake) = q.push_batch_unwoken(batch(first, n)) else {
                        return false;
                    };
                    wake.wake();
                    first += n;
                }
                true
            })
        };
        let mut seen = Vec::new();
        while seen.len() < 40 + 21 + 30 {
            let t = q
                .take_blocking::<BatchMatches>(5)
                .context("the queue closed before every line came out")?;
            assert!(q.try_take::<Delivery>(5).matches.is_empty());
            assert!(!t.matches.is_empty());
            for b in &t.matches {
                for (line, _) in b.iter() {
                    assert_eq!(line.text, format!("line {}", line.seq));
                    seen.push(line.seq);
                }
            }
            let held = q.lock();
            assert!(held.batches.len() <= MAX_QUEUED_BATCHES);
            assert!(held.len() < 10 + 30, "bounded: {}", held.len());
        }
        let pushed = producer
            .join()
            .map_err(|_| anyhow::anyhow!("the producer thread panicked"))?;
        assert!(pushed);
        assert_eq!(seen, (0..91).collect::<Vec<_>>());
        q.close();
        assert!(q.push_batch_unwoken(batch(0, 1)).is_none());
        Ok(())
    }

    #[test]
    fn wait_blocks_the_producer_instead_of_dropping() -> anyhow::Result<()> {
        let q = Arc::new(SinkQueue::new(2, lines(Overflow::Wait)));
        let producer = {
            let q = q.clone();
            std::thread::spawn(move || (0..100).all(|i| q.push(d(i))))
        };
        let mut seqs = Vec::new();
        while seqs.len() < 100 {
            let t = q
                .take_blocking::<Delivery>(7)
                .context("the queue closed before every line came out")?;
            assert!(t.dropped.is_empty());
            seqs.extend(t.matches.iter().map(|d| d.line.seq));
        }
        let pushed = producer
            .join()
            .map_err(|_| anyhow::anyhow!("the producer thread panicked"))?;
        assert!(pushed);
        assert_eq!(seqs, (0..100).collect::<Vec<_>>());
        Ok(())
    }
}
