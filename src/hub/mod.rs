//! The hub owns ingest: it numbers every line of every stream, keeps the recent ones
//! in the [`backlog`] ring, runs each batch once through the shared matcher, and hands
//! each subscriber only its matches, through that subscriber's own bounded
//! [`SinkQueue`].
//!
//! Ingest runs on a thread of its own (matching is CPU work); subscribers come and go
//! from any thread through [`Hub::subscribe`] and [`Hub::unsubscribe`], which rebuild
//! the matcher off this thread and swap it in.

pub mod backlog;
pub mod queue;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use tokio::sync::{broadcast, oneshot};

use crate::line::{count_lines, LineBatch, LogLine, Stream};
use crate::matcher::registry::{Change, Registry};
use crate::matcher::{CompileError, Limits, Matcher, Scratch, SpanCache, SubKey, Subscription};
use crate::source::{EventReceiver, SourceEvent};
use backlog::{Backlog, Entry};
pub use queue::{BatchMatches, Delivery, MatchedLine, Overflow, SinkQueue, Taken};

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
    registry: Registry,
    /// Read once per batch by ingest, so copy-on-write: writers are rare.
    sinks: ArcSwap<HashMap<SubKey, Arc<SinkQueue>>>,
    streams: Mutex<Streams>,
    backlog: Mutex<Backlog>,
    notices: broadcast::Sender<Notice>,
    /// Per remote stream and file (device, inode): the offset up to which the hub
    /// has its lines.
    remote: Mutex<HashMap<(String, u64, u64), u64>>,
    /// Some sink takes every batch ([`SinkQueue::for_every_batch`]): only then does
    /// ingest look for sinks without matches (a look per subscription per batch).
    every_batch_sinks: std::sync::atomic::AtomicBool,
    /// Connected agents' names, and since when: one agent of a name at a time.
    agent_names: Mutex<HashMap<String, std::time::SystemTime>>,
    /// To the thread that applies subscription changes to the matcher.
    changes: std::sync::mpsc::Sender<Request>,
    pub counters: Counters,
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
    compile_alone: Option<Subscription>,
    done: Option<oneshot::Sender<Result<Applied, CompileError>>>,
}

/// What a subscriber gets back once its subscription is live.
struct Applied {
    /// The ring as it was when the matcher with the subscription went live.
    snapshot: Arc<Vec<Arc<Entry>>>,
    alone: Option<Result<Matcher, CompileError>>,
}

impl Hub {
    pub fn new(limits: Limits, backlog_lines: u64) -> Arc<Hub> {
        let (changes, requests) = std::sync::mpsc::channel();
        let hub = Arc::new(Hub {
            registry: Registry::new(limits),
            sinks: ArcSwap::default(),
            streams: Mutex::default(),
            backlog: Mutex::new(Backlog::new(backlog_lines)),
            notices: broadcast::channel(1024).0,
            remote: Mutex::default(),
            agent_names: Mutex::default(),
            every_batch_sinks: Default::default(),
            changes,
            counters: Counters::default(),
        });
        let weak = Arc::downgrade(&hub);
        let spawned = std::thread::Builder::new()
            .name("matcher".into())
            .spawn(move || apply_changes(weak, requests));
        if let Err(e) = spawned {
            // Then every subscribe says the hub is gone; nothing else breaks.
            tracing::error!("cannot start the matcher thread: {e}");
        }
        hub
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

    /// Starts delivering the matches of `sub` to `sink` (replacing a subscription
    /// with the same key). Returns the up to `backlog` most recent matching lines the
    /// ring holds: exactly those ingested before the subscription took effect, so
    /// together with what `sink` receives next nothing is missing or doubled.
    ///
    /// The matcher thread applies every change waiting at once with one rebuild, so
    /// this waits without blocking the runtime.
    pub async fn subscribe(
        &self,
        key: SubKey,
        sub: Subscription,
        sink: Arc<SinkQueue>,
        backlog: usize,
    ) -> Result<Vec<Delivery>, CompileError> {
        let (done, result) = oneshot::channel();
        let wants_spans = sink.wants_spans();
        let old = self.add_sink(key, sink);
        self.request(key, sub, backlog, done);
        let result = result.await;
        self.finish_subscribe(key, old, result, backlog, wants_spans)
    }

    /// [`subscribe`](Self::subscribe) for a thread outside any runtime.
    pub fn subscribe_blocking(
        &self,
        key: SubKey,
        sub: Subscription,
        sink: Arc<SinkQueue>,
        backlog: usize,
    ) -> Result<Vec<Delivery>, CompileError> {
        let (done, result) = oneshot::channel();
        let wants_spans = sink.wants_spans();
        let old = self.add_sink(key, sink);
        self.request(key, sub, backlog, done);
        let result = result.blocking_recv();
        self.finish_subscribe(key, old, result, backlog, wants_spans)
    }

    /// The sink goes in first: deliveries to it begin once the matcher has `key`.
    fn add_sink(&self, key: SubKey, sink: Arc<SinkQueue>) -> Option<Arc<SinkQueue>> {
        if sink.wants_every_batch() {
            self.every_batch_sinks.store(true, Ordering::Relaxed);
        }
        let old = self.sinks.load().get(&key).cloned();
        self.sinks.rcu(|m| {
            let mut m = HashMap::clone(m);
            m.insert(key, sink.clone());
            m
        });
        old
    }

    fn request(
        &self,
        key: SubKey,
        sub: Subscription,
        backlog: usize,
        done: oneshot::Sender<Result<Applied, CompileError>>,
    ) {
        let request = Request {
            compile_alone: (backlog > 0).then(|| sub.clone()),
            change: Change::Set(key, sub),
            done: Some(done),
        };
        // If the matcher thread is gone, `done` is dropped with the request and the
        // subscriber is told so.
        let _ = self.changes.send(request);
    }

    fn finish_subscribe(
        &self,
        key: SubKey,
        old: Option<Arc<SinkQueue>>,
        result: Result<Result<Applied, CompileError>, oneshot::error::RecvError>,
        backlog: usize,
        wants_spans: bool,
    ) -> Result<Vec<Delivery>, CompileError> {
        let applied = result.unwrap_or(Err(CompileError::Unavailable));
        let applied = match applied {
            Ok(a) => a,
            Err(e) => {
                self.sinks.rcu(|m| {
                    let mut m = HashMap::clone(m);
                    match &old {
                        Some(old) => m.insert(key, old.clone()),
                        None => m.remove(&key),
                    };
                    m
                });
                return Err(e);
            }
        };
        Ok(match applied.alone {
            Some(alone) => recent_matches(&alone?, &applied.snapshot, key, backlog, wants_spans),
            None => Vec::new(),
        })
    }

    pub fn unsubscribe(&self, key: SubKey) {
        self.unsubscribe_where(move |k| k == key);
    }

    /// Removes every subscription whose key `doomed` picks (e.g. all of one client's).
    /// Its sinks get nothing more at once; the matcher forgets them with the next
    /// rebuild.
    pub fn unsubscribe_where(&self, doomed: impl Fn(SubKey) -> bool + Send + Sync + 'static) {
        self.sinks.rcu(|m| {
            let mut m = HashMap::clone(m);
            m.retain(|&k, _| !doomed(k));
            m
        });
        let _ = self.changes.send(Request {
            change: Change::Remove(Arc::new(doomed)),
            compile_alone: None,
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

    /// Whether lines `origin` of a remote stream are new to the hub (and from now on
    /// it has them). A batch re-sent after a reconnect is not; one that overlaps what
    /// the hub has (an agent restarted mid-stream re-reads from its last
    /// acknowledged offset) loses the lines the hub already has.
    pub fn admit_remote(
        &self,
        stream_id: &str,
        origin: crate::line::Origin,
        bytes: &mut bytes::Bytes,
    ) -> bool {
        let mut remote = lock(&self.remote);
        let key = (stream_id.to_owned(), origin.dev, origin.ino);
        match remote.get_mut(&key) {
            Some(have) if origin.end <= *have => return false,
            Some(have) => {
                if origin.start < *have {
                    let skip = (*have - origin.start) as usize;
                    // Bytes map onto the text only when it is the file's bytes as they
                    // were (nothing replaced or cut); the skipped part must end a line.
                    let same_bytes = bytes.len() as u64 == origin.end - origin.start;
                    if same_bytes && skip > 0 && bytes.get(skip - 1) == Some(&b'\n') {
                        let _ = bytes.split_to(skip);
                    }
                }
                *have = origin.end;
            }
            None => {
                // One entry per file ever shipped: forget them all now and then
                // rather than grow without bound (a re-send that old is unlikely).
                if remote.len() >= 100_000 {
                    remote.clear();
                }
                remote.insert(key, origin.end);
            }
        }
        true
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
        self.registry.matcher().subscription_count()
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
        let matcher = {
            let mut ring = lock(&self.backlog);
            ring.push(entry.clone());
            self.registry.matcher()
        };
        if matcher.subscription_count() == 0 {
            return;
        }
        let sinks = self.sinks.load();
        let batch = &entry.batch;
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
            for &sub in hit.subs() {
                let key = matcher.key(sub);
                let Some(slot) = out.get_mut(sub as usize) else {
                    continue;
                };
                let Some(sink) = *slot.sink.get_or_insert_with(|| sinks.get(&key)) else {
                    continue;
                };
                let spans = if sink.wants_spans() {
                    hit.spans_cached(sub, &mut span_cache)
                } else {
                    Vec::new()
                };
                if sink.takes_batches() {
                    let start = hit.line.as_ptr() as usize - batch.text.as_ptr() as usize;
                    slot.in_batch.push(MatchedLine {
                        index: hit.index,
                        start,
                        end: start + hit.line.len(),
                        spans,
                    });
                    continue;
                }
                let line = line.get_or_insert_with(|| {
                    let stream = line_stream
                        .get_or_insert_with(|| Arc::new((*batch.stream).clone()))
                        .clone();
                    LogLine::new(stream, first_seq + hit.index, batch.ts, hit.line)
                });
                slot.deliveries.push(Delivery {
                    sub: key,
                    line: line.clone(),
                    spans,
                });
            }
        });
        if self.every_batch_sinks.load(Ordering::Relaxed) {
            for (sub, slot) in out.iter_mut().enumerate() {
                if slot.sink.is_none() && matcher.selects(sub as u32, &batch.stream) {
                    let sink = sinks.get(&matcher.key(sub as u32));
                    if sink.is_some_and(|s| s.wants_every_batch()) {
                        slot.sink = Some(sink);
                    }
                }
            }
        }
        // Every queue is filled before any consumer is woken.
        let (mut delivered, mut wakes) = (0, Vec::new());
        for slot in out {
            let Some(Some(sink)) = slot.sink else {
                continue;
            };
            let n = (slot.deliveries.len() + slot.in_batch.len()) as u64;
            // `None`: the sink has gone.
            let wake = if !slot.deliveries.is_empty() {
                sink.push_all_unwoken(slot.deliveries)
            } else if !slot.in_batch.is_empty() || sink.wants_every_batch() {
                sink.push_batch_unwoken(BatchMatches {
                    entry: entry.clone(),
                    lines: slot.in_batch,
                })
            } else {
                continue;
            };
            if let Some(wake) = wake {
                delivered += n;
                wakes.push(wake);
            }
        }
        wakes.into_iter().for_each(queue::Wake::wake);
        self.counters
            .matches_delivered
            .fetch_add(delivered, Ordering::Relaxed);
    }
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
    deliveries: Vec<Delivery>,
    /// For a sink that takes its matches where the batch holds them.
    in_batch: Vec<MatchedLine>,
}

/// The last `max` lines in `entries` that subscription `key` (compiled alone in `m`)
/// wants, oldest first.
fn recent_matches(
    m: &Matcher,
    entries: &[Arc<Entry>],
    key: SubKey,
    max: usize,
    spans: bool,
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
                spans: if spans { hit.spans(0) } else { Vec::new() },
            });
        });
    }
    found.into()
}

/// The matcher thread: takes every subscription change waiting, applies them with
/// one rebuild, and swaps the new matcher in together with a snapshot of the ring
/// (under the ring's lock, which ingest holds while it appends and loads the
/// matcher: every batch is either in the snapshot or matched with the change in
/// place). Ends with the hub.
fn apply_changes(hub: std::sync::Weak<Hub>, requests: std::sync::mpsc::Receiver<Request>) {
    while let Ok(first) = requests.recv() {
        let Some(hub) = hub.upgrade() else { return };
        let mut group = vec![first];
        group.extend(requests.try_iter());
        let changes = group.iter().map(|r| r.change.clone()).collect();
        let results = hub.registry.apply(changes, |swap| {
            let ring = lock(&hub.backlog);
            swap();
            Arc::new(ring.snapshot())
        });
        for (request, result) in group.into_iter().zip(results) {
            let Some(done) = request.done else { continue };
            let applied = result.map(|snapshot| Applied {
                snapshot,
                alone: request
                    .compile_alone
                    .map(|sub| hub.registry.compile_one(&sub)),
            });
            let _ = done.send(applied);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the data consistent, so poisoning is harmless.
    m.lock().unwrap_or_else(|p| p.into_inner())
}
