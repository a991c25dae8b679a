//! The hub owns ingest: it numbers every line of every stream, runs each batch once
//! through the shared matcher, and hands each subscriber only its matches, through
//! that subscriber's own bounded [`SinkQueue`].
//!
//! Ingest runs on a thread of its own (matching is CPU work); subscribers come and go
//! from any thread through [`Hub::subscribe`] and [`Hub::unsubscribe`], which rebuild
//! the matcher off this thread and swap it in.

pub mod queue;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

use crate::line::{count_lines, LineBatch, LogLine, Stream};
use crate::matcher::registry::Registry;
use crate::matcher::{CompileError, Limits, Scratch, SubKey, Subscription};
use crate::source::SourceEvent;
pub use queue::{Delivery, Overflow, SinkQueue, Taken};

#[derive(Debug, Default)]
struct Streams {
    live: BTreeMap<String, Arc<Stream>>,
    next_seq: HashMap<String, u64>,
}

pub struct Hub {
    registry: Registry,
    sinks: Mutex<HashMap<SubKey, Arc<SinkQueue>>>,
    streams: Mutex<Streams>,
}

impl Hub {
    pub fn new(limits: Limits) -> Arc<Hub> {
        Arc::new(Hub {
            registry: Registry::new(limits),
            sinks: Mutex::default(),
            streams: Mutex::default(),
        })
    }

    /// Starts delivering the matches of `sub` to `sink` (replacing a subscription
    /// with the same key). On error nothing changes.
    pub fn subscribe(
        &self,
        key: SubKey,
        sub: Subscription,
        sink: Arc<SinkQueue>,
    ) -> Result<(), CompileError> {
        let old = lock(&self.sinks).insert(key, sink);
        if let Err(e) = self.registry.set(key, sub) {
            let mut sinks = lock(&self.sinks);
            match old {
                Some(old) => sinks.insert(key, old),
                None => sinks.remove(&key),
            };
            return Err(e);
        }
        Ok(())
    }

    pub fn unsubscribe(&self, key: SubKey) {
        self.registry.remove(key);
        lock(&self.sinks).remove(&key);
    }

    /// The streams seen so far and not gone.
    pub fn streams(&self) -> Vec<Arc<Stream>> {
        lock(&self.streams).live.values().cloned().collect()
    }

    /// Takes events from the sources until they all end, then closes every sink.
    /// Blocking: run it on a thread of its own.
    pub fn run_ingest(&self, mut events: mpsc::Receiver<SourceEvent>) {
        let mut scratch = Scratch::default();
        while let Some(event) = events.blocking_recv() {
            match event {
                SourceEvent::Lines(batch) => self.ingest(&batch, &mut scratch),
                SourceEvent::StreamAdded(stream) => {
                    lock(&self.streams).live.insert(stream.id.clone(), stream);
                }
                SourceEvent::StreamRemoved(stream) => {
                    lock(&self.streams).live.remove(&stream.id);
                }
            }
        }
        for sink in lock(&self.sinks).values() {
            sink.close();
        }
    }

    fn ingest(&self, batch: &LineBatch, scratch: &mut Scratch) {
        let first_seq = {
            let mut streams = lock(&self.streams);
            let next = streams.next_seq.entry(batch.stream.id.clone()).or_insert(1);
            let first = *next;
            *next += count_lines(&batch.text);
            first
        };
        let matcher = self.registry.matcher();
        if matcher.subscription_count() == 0 {
            return;
        }
        let sinks = lock(&self.sinks).clone();
        // Gathered per sink and handed over once per batch: one wake-up per sink.
        let mut out: HashMap<SubKey, Vec<Delivery>> = HashMap::new();
        matcher.scan(&batch.stream, &batch.text, scratch, |hit| {
            let line = LogLine {
                stream: batch.stream.clone(),
                seq: first_seq + hit.index,
                ts: batch.ts,
                text: Arc::from(hit.line),
            };
            for &sub in hit.subs() {
                let key = matcher.key(sub);
                let Some(sink) = sinks.get(&key) else {
                    continue;
                };
                let spans = if sink.wants_spans() {
                    hit.spans(sub)
                } else {
                    Vec::new()
                };
                out.entry(key).or_default().push(Delivery {
                    line: line.clone(),
                    spans,
                });
            }
        });
        for (key, deliveries) in out {
            if let Some(sink) = sinks.get(&key) {
                sink.push_all(deliveries);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the data consistent, so poisoning is harmless.
    m.lock().unwrap_or_else(|p| p.into_inner())
}
