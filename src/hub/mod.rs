//! The hub owns ingest: it numbers every line of every stream, keeps the recent ones
//! in the [`backlog`] ring, runs each batch once through the shared matcher, and hands
//! each subscriber only its matches, through that subscriber's own bounded
//! [`SinkQueue`].
//!
//! Ingest runs on a thread of its own (matching is CPU work); subscribers come and go
//! from any thread, each through its [`Subscriber`] (its keys, its sink, its
//! subscriptions), which has the matcher rebuilt off this thread and swapped in. A subscription is compiled first, on
//! the [`compile`] threads, and only then joins the rebuild: a slow compile delays
//! nobody else's subscribe. One whose cost would slow every line for everyone is
//! evaluated apart ([`isolated`]): when it cannot keep up, it alone drops lines.

pub mod backlog;
pub mod compile;
pub mod isolated;
pub mod memory;
pub mod queue;
mod subscriber;
pub mod threads;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use tokio::sync::{broadcast, oneshot};

use crate::line::{count_lines, LineBatch, LogLine, Stream};
use crate::matcher::registry::{Change, Compiled, Registry};
use crate::matcher::{CompileError, Limits, Matcher, Scratch, SpanCache, SubKey, Subscription};
use crate::source::{EventReceiver, SourceEvent};
use crate::subkey::{Keys, Owner, OwnerId};
use backlog::{Backlog, Entry};
pub use queue::{
    BatchMatches, Delivery, Found, Overflow, SinkKind, SinkQueue, Spans, Taken, Takes,
};
pub use subscriber::Subscriber;

/// Asked the compiled size of a subscription's patterns so far, after each one
/// compiled: an error stops the compile (see [`Hub::subscribe_admitting`]).
pub type Within = Arc<dyn Fn(usize) -> Result<(), CompileError> + Send + Sync>;

/// What the hub tells every client besides matches.
#[derive(Debug, Clone)]
pub enum Notice {
    StreamAdded(Arc<Stream>),
    StreamRemoved(Arc<Stream>),
    Marker {
        ts: std::time::SystemTime,
        text: String,
    },
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    pub lines_ingested: AtomicU64,
    pub batches_ingested: AtomicU64,
    pub matches_delivered: AtomicU64,
    pub matches_dropped: AtomicU64,
    /// Agent batches the hub already had (re-sent after a reconnect).
    pub duplicates_dropped: AtomicU64,
    /// Agent batches sent again after a reconnect (as the agents announce them).
    pub batches_resent: AtomicU64,
    /// Agent batches dropped because their stream was refused (`stream_refused`).
    pub agent_batches_refused: AtomicU64,
    /// Lines not searched for a subscription evaluated apart, its queue being full
    /// (told to its client as `dropped`).
    pub isolated_lines_dropped: AtomicU64,
    /// Subscriptions being compiled now.
    pub compiles_running: AtomicU64,
}

/// One sample of `/metrics`.
pub struct Metric {
    pub name: &'static str,
    pub kind: &'static str,
    pub help: &'static str,
    pub value: u64,
}

#[derive(Debug, Default)]
struct Streams {
    live: BTreeMap<String, Arc<Stream>>,
    /// Next sequence number and lines seen, per stream id (kept when a stream goes,
    /// so a stream that comes back continues its numbering).
    next_seq: HashMap<String, u64>,
    /// Lines seen per host (an agent's name, a syslog sender, this machine).
    host_lines: HashMap<String, u64>,
}

pub struct Hub {
    /// Hands out every subscription's key (see [`Hub::owner`]).
    keys: Keys,
    registry: Arc<Registry>,
    compile: compile::Pool,
    /// The workers of the subscriptions evaluated apart; swapped together with the
    /// matcher (under the ring's lock).
    workers: ArcSwap<Vec<Arc<isolated::Worker>>>,
    /// The CPU share those workers have together.
    isolated_budget: Arc<isolated::Budget>,
    /// Read once per batch by ingest, so copy-on-write: writers are rare.
    sinks: ArcSwap<HashMap<SubKey, Arc<SinkQueue>>>,
    streams: Mutex<Streams>,
    backlog: Mutex<Backlog>,
    notices: broadcast::Sender<Notice>,
    /// Some sink takes every batch ([`Takes::EveryBatch`]): only then does
    /// ingest look for sinks without matches (a look per subscription per batch).
    every_batch_sinks: std::sync::atomic::AtomicBool,
    /// Connected agents' names, and since when: one agent of a name at a time.
    agent_names: Mutex<HashMap<String, std::time::SystemTime>>,
    /// To the thread that applies subscription changes to the matcher.
    changes: std::sync::mpsc::Sender<Request>,
    /// Shared with the isolated workers.
    pub counters: Arc<Counters>,
    /// Starts the matcher, compile and isolated threads, and keeps them to join.
    threads: threads::Threads,
}

/// An agent's hold on its name (see [`Hub::claim_agent_name`]).
pub struct AgentNameClaim {
    hub: Arc<Hub>,
    name: String,
}

impl Drop for AgentNameClaim {
    fn drop(&mut self) {
        lock(&self.hub.agent_names).remove(&self.name);
    }
}

/// A subscription change for the matcher thread, and where its result goes.
struct Request {
    change: Change,
    /// For a new subscriber that wants backlog: its own matcher, to search the ring.
    alone: Option<Arc<Matcher>>,
    done: Option<oneshot::Sender<Result<Applied, CompileError>>>,
}

/// What a subscriber gets back once its subscription is live.
struct Applied {
    /// The ring as it was when the matcher with the subscription went live.
    snapshot: Arc<Vec<Arc<Entry>>>,
    alone: Option<Arc<Matcher>>,
}

/// A subscriber's state between asking and being answered: its sink is in the
/// hub's map (deliveries begin once the matcher has its key) and is taken out again
/// when this is dropped unconfirmed: a failed, refused or abandoned subscribe leaves
/// nothing behind.
struct Pending<'h> {
    hub: &'h Hub,
    key: SubKey,
    backlog: usize,
    spans: Spans,
    confirmed: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.confirmed {
            let key = self.key;
            self.hub.sinks.rcu(|m| {
                let mut m = HashMap::clone(m);
                m.remove(&key);
                m
            });
        }
    }
}

impl Hub {
    pub fn new(limits: Limits, backlog_lines: u64) -> Arc<Hub> {
        Hub::new_stopped_by(limits, backlog_lines, None)
    }

    /// A hub whose threads its owner's stop waits for: it holds `running` until it
    /// is freed, each of its threads a child of it until it ends (see
    /// [`threads`]); [`Hub::joins`] joins them after the stop.
    pub fn new_stopped_by(
        limits: Limits,
        backlog_lines: u64,
        running: Option<crate::shutdown::Handle>,
    ) -> Arc<Hub> {
        let (changes, requests) = std::sync::mpsc::channel();
        let hub = Arc::new(Hub {
            keys: Keys::default(),
            registry: Arc::new(Registry::new(limits)),
            compile: compile::Pool::new(),
            workers: ArcSwap::default(),
            isolated_budget: Arc::default(),
            sinks: ArcSwap::default(),
            streams: Mutex::default(),
            backlog: Mutex::new(Backlog::new(backlog_lines)),
            notices: broadcast::channel(1024).0,
            agent_names: Mutex::default(),
            every_batch_sinks: Default::default(),
            changes,
            counters: Arc::default(),
            threads: threads::Threads::new(running),
        });
        let weak = Arc::downgrade(&hub);
        let spawned = hub.threads.spawn(
            "matcher".into(),
            crate::shutdown::Kind::Matcher,
            move || apply_changes(weak, requests),
        );
        if let Err(e) = spawned {
            // Then every subscribe says the hub is gone; nothing else breaks.
            tracing::error!("cannot start the matcher thread: {e}");
        }
        hub
    }

    /// The hub's threads, to join once it is freed and its owner's stop is done.
    pub fn joins(&self) -> threads::Joins {
        self.threads.joins()
    }

    /// Takes `name` for a connected agent until the returned claim is dropped; when
    /// another agent has it, says since when. (Two agents of one name would write
    /// into each other's streams, and the first to leave would remove them.)
    pub fn claim_agent_name(
        self: &Arc<Self>,
        name: &str,
    ) -> Result<AgentNameClaim, std::time::SystemTime> {
        let mut names = lock(&self.agent_names);
        if let Some(&since) = names.get(name) {
            return Err(since);
        }
        names.insert(name.to_owned(), std::time::SystemTime::now());
        Ok(AgentNameClaim {
            hub: self.clone(),
            name: name.to_owned(),
        })
    }

    /// A new holder's keys (see [`Subscriber`], the only holder): the keys it hands
    /// out are its own, and [`unsubscribe_owner`](Self::unsubscribe_owner) ends them all.
    fn owner(&self) -> Owner {
        self.keys.owner()
    }

    /// Starts delivering the matches of `sub` to `sink` under `key` (from an
    /// [`owner`](Self::owner); each key is subscribed once). Returns the up to `backlog` most recent matching lines the
    /// ring holds: exactly those ingested before the subscription took effect, so
    /// together with what `sink` receives next nothing is missing or doubled.
    /// Subscribers call it through their [`Subscriber`].
    ///
    /// The subscription is compiled first on a compile thread, then the matcher thread
    /// applies every change waiting at once with one rebuild; this waits without
    /// blocking the runtime.
    async fn subscribe(
        &self,
        key: SubKey,
        sub: Subscription,
        sink: Arc<SinkQueue>,
        backlog: usize,
    ) -> Result<Vec<Delivery>, CompileError> {
        let within: Within = Arc::new(|_| Ok(()));
        self.subscribe_admitting(key, sub, sink, backlog, within, |_| Ok(()))
            .await
    }

    /// [`subscribe`](Self::subscribe) within a budget of compiled bytes: `within`
    /// is asked after each pattern compiled (see [`Registry::compile`]), `admit`
    /// once it is all compiled and before it joins the matcher; either's error
    /// refuses the subscribe.
    async fn subscribe_admitting(
        &self,
        key: SubKey,
        sub: Subscription,
        sink: Arc<SinkQueue>,
        backlog: usize,
        within: Within,
        admit: impl FnOnce(&Compiled) -> Result<(), CompileError>,
    ) -> Result<Vec<Delivery>, CompileError> {
        let (compiled, compiling) = oneshot::channel();
        let pending = self.begin_subscribe(key, sub, sink, backlog, within, compiled);
        let compiled = compiling.await.unwrap_or(Err(CompileError::Unavailable));
        let result = match compiled.and_then(|c| admit(&c).map(|()| c)) {
            Ok(compiled) => {
                let (done, applied) = oneshot::channel();
                self.request(key, compiled, backlog, done);
                applied.await.unwrap_or(Err(CompileError::Unavailable))
            }
            Err(e) => Err(e),
        };
        self.finish_subscribe(pending, result)
    }

    /// [`subscribe`](Self::subscribe) for a thread outside any runtime (the terminal's):
    /// the same steps, awaited on a runtime of this thread's own (it only waits on
    /// the compile and matcher threads' answers: no I/O, no timers).
    fn subscribe_blocking(
        &self,
        key: SubKey,
        sub: Subscription,
        sink: Arc<SinkQueue>,
        backlog: usize,
    ) -> Result<Vec<Delivery>, CompileError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| {
                tracing::error!("cannot start a runtime to subscribe on: {e}");
                CompileError::Unavailable
            })?;
        runtime.block_on(self.subscribe(key, sub, sink, backlog))
    }

    /// Puts the sink in (deliveries to it begin once the matcher has `key`) and has
    /// `sub` compiled, the result sent to `compiled`. Only a sink that drops what it
    /// cannot take may be evaluated apart (one that waits, the terminal's printer,
    /// has the hub to itself and loses nothing).
    fn begin_subscribe(
        &self,
        key: SubKey,
        sub: Subscription,
        sink: Arc<SinkQueue>,
        backlog: usize,
        within: Within,
        compiled: oneshot::Sender<Result<Compiled, CompileError>>,
    ) -> Pending<'_> {
        let spans = sink.kind().spans;
        let may_isolate = sink.drops_oldest();
        self.add_sink(key, sink);
        let pending = Pending {
            hub: self,
            key,
            backlog,
            spans,
            confirmed: false,
        };
        let (registry, counters) = (self.registry.clone(), self.counters.clone());
        let job = move || {
            counters.compiles_running.fetch_add(1, Ordering::Relaxed);
            let result = registry.compile(key, sub, may_isolate, backlog > 0, &*within);
            counters.compiles_running.fetch_sub(1, Ordering::Relaxed);
            let _ = compiled.send(result);
        };
        // Refused (`busy`): the job and its sender are dropped, which says so.
        if let Err(e) = self.compile.run(&self.threads, job) {
            tracing::debug!("subscribe {key}: {e}");
        }
        pending
    }

    fn add_sink(&self, key: SubKey, sink: Arc<SinkQueue>) {
        if sink.wants_every_batch() {
            self.every_batch_sinks.store(true, Ordering::Relaxed);
        }
        self.sinks.rcu(|m| {
            let mut m = HashMap::clone(m);
            m.insert(key, sink.clone());
            m
        });
    }

    fn request(
        &self,
        key: SubKey,
        compiled: Compiled,
        backlog: usize,
        done: oneshot::Sender<Result<Applied, CompileError>>,
    ) {
        let request = Request {
            alone: compiled.alone.clone().filter(|_| backlog > 0),
            change: Change::SetCompiled(key, Arc::new(compiled)),
            done: Some(done),
        };
        // If the matcher thread is gone, `done` is dropped with the request and the
        // subscriber is told so.
        let _ = self.changes.send(request);
    }

    fn finish_subscribe(
        &self,
        mut pending: Pending<'_>,
        applied: Result<Applied, CompileError>,
    ) -> Result<Vec<Delivery>, CompileError> {
        // An error drops `pending` unconfirmed, which takes the sink out.
        let applied = applied?;
        pending.confirmed = true;
        let (key, backlog, spans) = (pending.key, pending.backlog, pending.spans);
        Ok(match applied.alone {
            Some(alone) => recent_matches(&alone, &applied.snapshot, key, backlog, spans),
            None => Vec::new(),
        })
    }

    /// Ends subscription `key`: for its [`Subscriber`], and for one given up to the
    /// budgets (its holder learns so from them, and forgets its id then).
    pub fn unsubscribe(&self, key: SubKey) {
        self.unsubscribe_where(move |k| k == key);
    }

    /// Removes every subscription of `owner` (a [`Subscriber`] that went).
    fn unsubscribe_owner(&self, owner: OwnerId) {
        self.unsubscribe_where(move |k| k.owner() == owner);
    }

    /// Removes every subscription whose key `doomed` picks. Its sinks get nothing
    /// more at once; the matcher forgets them with the next rebuild.
    fn unsubscribe_where(&self, doomed: impl Fn(SubKey) -> bool + Send + Sync + 'static) {
        self.sinks.rcu(|m| {
            let mut m = HashMap::clone(m);
            m.retain(|&k, _| !doomed(k));
            m
        });
        let _ = self.changes.send(Request {
            change: Change::Remove(Arc::new(doomed)),
            alone: None,
            done: None,
        });
    }

    /// The streams seen so far and not gone.
    pub fn streams(&self) -> Vec<Arc<Stream>> {
        lock(&self.streams).live.values().cloned().collect()
    }

    /// Lines around `seq` of one stream, from the ring.
    pub fn context(&self, stream_id: &str, seq: u64, before: u64, after: u64) -> Vec<LogLine> {
        let snapshot = lock(&self.backlog).snapshot();
        backlog::context(&snapshot, stream_id, seq, before, after)
    }

    /// The streams there are now, and their changes from then on (with markers), as
    /// one: every stream change is either in the list or among the notices, never in
    /// both or neither (ingest announces changes while holding the same lock).
    pub fn streams_and_notices(&self) -> (Vec<Arc<Stream>>, broadcast::Receiver<Notice>) {
        let streams = lock(&self.streams);
        let live = streams.live.values().cloned().collect();
        (live, self.notices.subscribe())
    }

    /// Announces a marker (a deploy, say) to every client.
    pub fn mark(&self, text: String) {
        let _ = self.notices.send(Notice::Marker {
            ts: std::time::SystemTime::now(),
            text,
        });
    }

    pub fn subscription_count(&self) -> usize {
        self.registry.matcher().subscription_count() + self.registry.isolated().len()
    }

    /// The `/metrics` samples of subscriptions' cost: those evaluated apart, what
    /// they dropped, compiles, compiled patterns held.
    pub fn cost_metrics(&self) -> Vec<Metric> {
        let c = &self.counters;
        let workers = self.workers.load();
        vec![
            Metric {
                name: "supergrep_isolated_subscriptions",
                kind: "gauge",
                help: "Subscriptions evaluated apart from the shared matcher (costly ones), each on a worker of its own.",
                value: workers.len() as u64,
            },
            Metric {
                name: "supergrep_isolated_lines_queued",
                kind: "gauge",
                help: "Lines waiting for the workers of subscriptions evaluated apart.",
                value: workers.iter().map(|w| w.queued_lines()).sum(),
            },
            Metric {
                name: "supergrep_isolated_lines_dropped_total",
                kind: "counter",
                help: "Lines not searched for a subscription evaluated apart because its worker was behind (told to its client as dropped).",
                value: c.isolated_lines_dropped.load(Ordering::Relaxed),
            },
            Metric {
                name: "supergrep_compiles_running",
                kind: "gauge",
                help: "Subscriptions being compiled now.",
                value: c.compiles_running.load(Ordering::Relaxed),
            },
            Metric {
                name: "supergrep_compiled_patterns",
                kind: "gauge",
                help: "Compiled patterns held (those of live subscriptions and of compiles under way).",
                value: self.registry.cached_patterns() as u64,
            },
        ]
    }

    pub fn pattern_count(&self) -> usize {
        self.registry.matcher().pattern_count()
    }

    /// (rebuilds, total rebuild microseconds).
    pub fn rebuild_stats(&self) -> (u64, u64) {
        self.registry.rebuild_stats()
    }

    pub fn backlog_lines(&self) -> u64 {
        lock(&self.backlog).len_lines()
    }

    /// Lines ingested per stream id so far.
    /// Lines ingested so far per live stream: a stream that went (an agent's, once it
    /// disconnected; a deleted file) leaves `/metrics`, which otherwise grew with every
    /// stream ever seen. Its numbering is kept, for when it comes back.
    pub fn lines_per_stream(&self) -> Vec<(String, u64)> {
        let streams = lock(&self.streams);
        streams
            .next_seq
            .iter()
            .filter(|(id, _)| streams.live.contains_key(*id))
            .map(|(id, next)| (id.clone(), next - 1))
            .collect()
    }

    /// Lines ingested per host so far.
    pub fn lines_per_host(&self) -> Vec<(String, u64)> {
        lock(&self.streams)
            .host_lines
            .iter()
            .map(|(host, n)| (host.clone(), *n))
            .collect()
    }

    /// Takes events from the sources until they all end, then closes every sink.
    /// Blocking: run it on a thread of its own (small events sent while ingest is
    /// idle are taken on the sender's thread: see [`EventReceiver::consume`]).
    pub fn run_ingest(self: Arc<Self>, events: EventReceiver) {
        let hub = self.clone();
        let mut scratch = Scratch::default();
        events.consume(move |event| hub.take(event, &mut scratch));
        for sink in self.sinks.load().values() {
            sink.close();
        }
    }

    fn take(&self, event: SourceEvent, scratch: &mut Scratch) {
        match event {
            SourceEvent::Lines(read) => self.ingest(LineBatch::from_read(read), scratch),
            // Announced under the lock: see `streams_and_notices`.
            SourceEvent::StreamAdded(stream) => {
                let mut streams = lock(&self.streams);
                streams.live.insert(stream.id.clone(), stream.clone());
                let _ = self.notices.send(Notice::StreamAdded(stream));
            }
            SourceEvent::StreamRemoved(stream) => {
                let mut streams = lock(&self.streams);
                streams.live.remove(&stream.id);
                let _ = self.notices.send(Notice::StreamRemoved(stream));
            }
            SourceEvent::Receipt { upto, to } => {
                to.send_replace(upto);
            }
        }
    }

    fn ingest(&self, batch: LineBatch, scratch: &mut Scratch) {
        let lines = count_lines(&batch.text);
        let first_seq = {
            let mut streams = lock(&self.streams);
            add_to(&mut streams.host_lines, &batch.stream.host, 0, lines);
            add_to(&mut streams.next_seq, &batch.stream.id, 1, lines)
        };
        self.counters
            .lines_ingested
            .fetch_add(lines, Ordering::Relaxed);
        self.counters
            .batches_ingested
            .fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(Entry {
            batch,
            first_seq,
            lines,
        });
        let (matcher, workers) = {
            let mut ring = lock(&self.backlog);
            ring.push(entry.clone());
            (self.registry.matcher(), self.workers.load_full())
        };
        let sinks = self.sinks.load();
        if !workers.is_empty() {
            self.offer_to_workers(&entry, &workers, &sinks);
        }
        if matcher.subscription_count() == 0 {
            return;
        }
        let every_batch = self.every_batch_sinks.load(Ordering::Relaxed);
        let delivered = deliver(&matcher, &entry, |k| sinks.get(&k), every_batch, scratch);
        self.counters
            .matches_delivered
            .fetch_add(delivered, Ordering::Relaxed);
    }

    /// Hands the batch to each isolated subscription's worker; one that is behind
    /// skips it, and its client is told the lines as `dropped` (by the worker).
    fn offer_to_workers(
        &self,
        entry: &Arc<Entry>,
        workers: &[Arc<isolated::Worker>],
        sinks: &HashMap<SubKey, Arc<SinkQueue>>,
    ) {
        for worker in workers {
            // Gone already (unsubscribed; the next rebuild ends its worker).
            if !sinks.contains_key(&worker.key) {
                continue;
            }
            if worker.offer(entry) == isolated::Offer::Full {
                self.counters
                    .isolated_lines_dropped
                    .fetch_add(entry.lines, Ordering::Relaxed);
            }
        }
    }
}

/// Scans one batch with `matcher` and queues each subscription's matches in its sink
/// (`sink_of` its key; `None`: gone), each sink filled before any is woken; returns
/// the matches queued. Ingest does this with the shared matcher, each isolated
/// worker with its own. `every_batch`: some sink takes batches without matches too.
fn deliver<'s>(
    matcher: &Matcher,
    entry: &Arc<Entry>,
    sink_of: impl Fn(SubKey) -> Option<&'s Arc<SinkQueue>>,
    every_batch: bool,
    scratch: &mut Scratch,
) -> u64 {
    let batch = &entry.batch;
    let first_seq = entry.first_seq;
    // Per subscription (by the matcher's dense index): its sink and its matches,
    // handed over once per batch (one wake-up each).
    let mut out: Vec<SinkSlot> = (0..matcher.subscription_count())
        .map(|_| SinkSlot::default())
        .collect();
    let mut span_cache = SpanCache::default();
    // The lines' own copy of the stream: their reference counts, touched per line
    // by this thread and the sinks', are then not the one every batch of the
    // stream touches (measured with `-e e`, every line printed: 8% less time).
    let mut line_stream: Option<Arc<Stream>> = None;
    matcher.scan(&batch.stream, &batch.text, scratch, |hit| {
        // Made for the first sink that takes lines of their own, shared by the rest.
        let mut line: Option<LogLine> = None;
        let start = hit.line.as_ptr() as usize - batch.text.as_ptr() as usize;
        for &sub in hit.subs() {
            let Some(slot) = out.get_mut(sub as usize) else {
                continue;
            };
            let key = matcher.key(sub);
            let Some(sink) = *slot.sink.get_or_insert_with(|| sink_of(key)) else {
                continue;
            };
            let spans = match sink.kind().spans {
                Spans::Wanted => hit.spans_cached(sub, &mut span_cache),
                Spans::NotWanted => Vec::new(),
            };
            let found = slot.found.get_or_insert_with(|| sink.found(entry));
            found.add(key, hit.index, start, start + hit.line.len(), spans, || {
                line.get_or_insert_with(|| {
                    let stream = line_stream
                        .get_or_insert_with(|| Arc::new((*batch.stream).clone()))
                        .clone();
                    LogLine::new(stream, first_seq + hit.index, batch.ts, hit.line)
                })
                .clone()
            });
        }
    });
    if every_batch {
        for (sub, slot) in out.iter_mut().enumerate() {
            if slot.sink.is_none() && matcher.selects(sub as u32, &batch.stream) {
                let sink = sink_of(matcher.key(sub as u32));
                if let Some(sink) = sink.filter(|s| s.wants_every_batch()) {
                    slot.sink = Some(Some(sink));
                    slot.found = Some(sink.found(entry));
                }
            }
        }
    }
    // Every queue is filled before any consumer is woken.
    let (mut delivered, mut wakes) = (0, Vec::new());
    for slot in out {
        let (Some(Some(sink)), Some(found)) = (slot.sink, slot.found) else {
            continue;
        };
        if found.is_empty() && !sink.wants_every_batch() {
            continue;
        }
        let n = found.len() as u64;
        // `None`: the sink has gone.
        if let Some(wake) = sink.push_found_unwoken(found) {
            delivered += n;
            wakes.push(wake);
        }
    }
    wakes.into_iter().for_each(queue::Wake::wake);
    delivered
}

/// Adds `n` to `map[key]` (`start` when absent) and returns the value before; the key
/// is copied only the first time (this runs once per batch).
fn add_to(map: &mut HashMap<String, u64>, key: &str, start: u64, n: u64) -> u64 {
    let value = match map.get_mut(key) {
        Some(value) => value,
        None => map.entry(key.to_owned()).or_insert(start),
    };
    std::mem::replace(value, *value + n)
}

/// What one batch brings one subscription.
#[derive(Default)]
struct SinkSlot<'a> {
    /// Its sink, looked up the first time it is needed (`Some(None)`: gone).
    sink: Option<Option<&'a Arc<SinkQueue>>>,
    /// Its matches, in the form its sink takes.
    found: Option<Found>,
}

/// The last `max` lines in `entries` that subscription `key` (compiled alone in `m`)
/// wants, oldest first.
fn recent_matches(
    m: &Matcher,
    entries: &[Arc<Entry>],
    key: SubKey,
    max: usize,
    spans: Spans,
) -> Vec<Delivery> {
    let mut scratch = Scratch::default();
    let mut found = std::collections::VecDeque::with_capacity(max.min(4096));
    for e in entries {
        let batch = &e.batch;
        m.scan(&batch.stream, &batch.text, &mut scratch, |hit| {
            if found.len() == max {
                found.pop_front();
            }
            found.push_back(Delivery {
                sub: key,
                line: LogLine::new(
                    batch.stream.clone(),
                    e.first_seq + hit.index,
                    batch.ts,
                    hit.line,
                ),
                spans: match spans {
                    Spans::Wanted => hit.spans(0),
                    Spans::NotWanted => Vec::new(),
                },
            });
        });
    }
    found.into()
}

/// The matcher thread: takes every subscription change waiting, applies them with
/// one rebuild, and swaps the new matcher and isolated workers in together with a
/// snapshot of the ring (under the ring's lock, which ingest holds while it appends
/// and loads the matcher: every batch is either in the snapshot or matched with the
/// change in place). Ends with the hub.
fn apply_changes(hub: std::sync::Weak<Hub>, requests: std::sync::mpsc::Receiver<Request>) {
    while let Ok(first) = requests.recv() {
        let Some(hub) = hub.upgrade() else { return };
        let mut group = vec![first];
        group.extend(requests.try_iter());
        let changes = group.iter().map(|r| r.change.clone()).collect();
        let removes = group.iter().any(|r| matches!(r.change, Change::Remove(_)));
        let results = hub.registry.apply(changes, |swap| {
            let ring = lock(&hub.backlog);
            swap();
            hub.workers.store(Arc::new(hub.reconcile_workers()));
            Arc::new(ring.snapshot())
        });
        for (request, result) in group.into_iter().zip(results) {
            let Some(done) = request.done else { continue };
            let applied = result.map(|snapshot| Applied {
                snapshot,
                alone: request.alone,
            });
            let _ = done.send(applied);
        }
        // What the subscriptions that went held is free now (old matchers still in
        // use by ingest go with its next batch, and are collected the next time).
        if removes {
            memory::give_back();
        }
    }
}

impl Hub {
    /// A worker per isolated subscription now: those there already are kept, new
    /// ones start, those of subscriptions gone are dropped (which ends them).
    fn reconcile_workers(&self) -> Vec<Arc<isolated::Worker>> {
        let old = self.workers.load();
        let sinks = self.sinks.load();
        let mut workers = Vec::new();
        for (key, matcher) in self.registry.isolated().iter() {
            if let Some(w) = old.iter().find(|w| w.key == *key) {
                workers.push(w.clone());
                continue;
            }
            let Some(sink) = sinks.get(key) else { continue };
            let spawned = isolated::Worker::spawn(
                *key,
                matcher.clone(),
                sink.clone(),
                self.counters.clone(),
                self.isolated_budget.clone(),
                &self.threads,
            );
            match spawned {
                Ok(w) => workers.push(Arc::new(w)),
                Err(e) => {
                    // Rare (out of threads): its client gets no matches, said in the log.
                    tracing::error!("cannot start the worker of subscription {key}: {e}");
                }
            }
        }
        workers
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the data consistent, so poisoning is harmless.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(pattern: &str) -> Subscription {
        Subscription {
            include: vec![pattern.to_owned()],
            ..Subscription::default()
        }
    }

    /// A refused subscribe leaves nothing behind (its sink goes with the guard); one
    /// that succeeds keeps its sink under its own key.
    #[test]
    fn a_refused_subscribe_leaves_no_sink() -> anyhow::Result<()> {
        let hub = Hub::new(Limits::default(), 0);
        let mut owner = hub.owner();
        let kind = SinkKind {
            takes: Takes::Lines(Overflow::DropOldest),
            spans: Spans::NotWanted,
        };
        let sink = Arc::new(SinkQueue::new(10, kind));
        let refused = owner.key();
        assert!(hub
            .subscribe_blocking(refused, sub("("), sink.clone(), 0)
            .is_err());
        assert!(!hub.sinks.load().contains_key(&refused));
        let taken = owner.key();
        hub.subscribe_blocking(taken, sub("a"), sink, 0)?;
        assert!(hub.sinks.load().contains_key(&taken));
        hub.unsubscribe_owner(owner.id());
        assert!(hub.sinks.load().is_empty());
        Ok(())
    }
}
