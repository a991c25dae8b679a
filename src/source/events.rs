//! The hand-off from sources to their one consumer (the hub's ingest, or an agent's
//! shipping loop): a bounded channel, whose consumer may also run on a sender's
//! thread.
//!
//! Why: following a file written a few lines at a time, every batch used to cross
//! from the tailer's thread to the ingest thread, a wake-up and two context switches
//! for a few microseconds of matching. When nothing is queued and the consumer is
//! idle, a small event is now consumed right away on the sender's thread (under the
//! consumer's lock), and only big batches (catching up, scanning) and events arriving
//! while the consumer is busy take the channel, so reading and matching still overlap
//! where that pays.
//!
//! Order: every event sent through the channel is counted until it is consumed, and
//! a sender consumes directly only when, holding the consumer's lock, it sees that
//! count at zero. So everything a sender sent before has been consumed: each sender's
//! events are consumed in the order it sent them, whichever way they went.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use tokio::sync::mpsc;

use super::SourceEvent;

/// Batches up to this many bytes of text may be consumed on the sender's thread:
/// what a live file grows by between two looks, not a catch-up read (those come in
/// `read_chunk`s of 256 KiB and more).
const DIRECT_MAX_BYTES: usize = 32 * 1024;

/// The consumer went away: a source stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

type Consume = Box<dyn FnMut(SourceEvent) + Send>;

struct Shared {
    /// Events in the channel or being consumed from it.
    queued: AtomicUsize,
    /// Set once the receiver consumes on a thread of its own
    /// ([`EventReceiver::consume`]); senders then may run it too.
    consumer: OnceLock<Mutex<Consume>>,
}

/// A bounded channel of `capacity` events.
pub fn channel(capacity: usize) -> (EventSender, EventReceiver) {
    let (tx, rx) = mpsc::channel(capacity);
    let shared = Arc::new(Shared {
        queued: AtomicUsize::new(0),
        consumer: OnceLock::new(),
    });
    (
        EventSender {
            tx,
            shared: shared.clone(),
        },
        EventReceiver { rx, shared },
    )
}

#[derive(Clone)]
pub struct EventSender {
    tx: mpsc::Sender<SourceEvent>,
    shared: Arc<Shared>,
}

impl EventSender {
    /// Hands `event` over, waiting for room. For threads outside any runtime.
    pub fn blocking_send(&self, event: SourceEvent) -> Result<(), Closed> {
        let event = match self.consume_here(event) {
            Ok(()) => return Ok(()),
            Err(event) => event,
        };
        self.shared.queued.fetch_add(1, Ordering::SeqCst);
        self.tx.blocking_send(event).map_err(|_| self.unqueue())
    }

    /// Hands `event` over, waiting for room. Always through the channel: the
    /// consumer's work does not belong on the async runtime.
    pub async fn send(&self, event: SourceEvent) -> Result<(), Closed> {
        self.shared.queued.fetch_add(1, Ordering::SeqCst);
        self.tx.send(event).await.map_err(|_| self.unqueue())
    }

    /// Consumes `event` on this thread if it is small and the consumer idle with
    /// nothing queued; otherwise gives it back.
    fn consume_here(&self, event: SourceEvent) -> Result<(), SourceEvent> {
        let small = match &event {
            SourceEvent::Lines(batch) => batch.bytes.len() <= DIRECT_MAX_BYTES,
            _ => true,
        };
        let Some(consumer) = self.shared.consumer.get() else {
            return Err(event);
        };
        if !small || self.shared.queued.load(Ordering::SeqCst) > 0 {
            return Err(event);
        }
        let Ok(mut consume) = consumer.try_lock() else {
            return Err(event);
        };
        // Checked again under the lock: the consumer counts an event down only
        // after consuming it, while holding the lock.
        if self.shared.queued.load(Ordering::SeqCst) > 0 {
            return Err(event);
        }
        consume(event);
        Ok(())
    }

    fn unqueue(&self) -> Closed {
        self.shared.queued.fetch_sub(1, Ordering::SeqCst);
        Closed
    }
}

pub struct EventReceiver {
    rx: mpsc::Receiver<SourceEvent>,
    shared: Arc<Shared>,
}

impl EventReceiver {
    /// The next event; `None` once every sender is gone. Cancel-safe. Senders never
    /// consume for a receiver used this way.
    pub async fn recv(&mut self) -> Option<SourceEvent> {
        let event = self.rx.recv().await?;
        self.shared.queued.fetch_sub(1, Ordering::SeqCst);
        Some(event)
    }

    /// Runs `consume` on every event until every sender is gone: here for what
    /// comes through the channel, on the sender's thread for what may be consumed
    /// at once (see the module's docs). Blocking: run it on a thread of its own.
    pub fn consume(mut self, consume: impl FnMut(SourceEvent) + Send + 'static) {
        let consumer = self
            .shared
            .consumer
            .get_or_init(|| Mutex::new(Box::new(consume)));
        while let Some(event) = self.rx.blocking_recv() {
            let mut consume = lock(consumer);
            consume(event);
            self.shared.queued.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn lock(m: &Mutex<Consume>) -> MutexGuard<'_, Consume> {
    // A consumer that panicked is still the one consumer there is.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::{ReadBatch, Stream};
    use anyhow::{anyhow, Context};
    use std::time::SystemTime;

    fn batch(stream: &Arc<Stream>, text: String) -> SourceEvent {
        SourceEvent::Lines(ReadBatch {
            stream: stream.clone(),
            ts: SystemTime::now(),
            bytes: text.into(),
            origin: None,
        })
    }

    /// Records in `seen` the number a test batch starts with, under its sender's index
    /// (its stream's path).
    fn record(seen: &Mutex<Vec<Vec<usize>>>, event: SourceEvent) -> anyhow::Result<()> {
        let SourceEvent::Lines(b) = event else {
            return Ok(());
        };
        let sender: usize = b
            .stream
            .path
            .parse()
            .context("parsing the sender's index")?;
        let text = std::str::from_utf8(&b.bytes).context("reading a batch as text")?;
        let n: usize = text
            .split(' ')
            .next()
            .context("a batch without a number")?
            .parse()
            .context("parsing a batch's number")?;
        if n.is_multiple_of(7) {
            std::thread::yield_now();
        }
        let mut seen = seen
            .lock()
            .map_err(|_| anyhow!("a consumer panicked holding `seen`"))?;
        seen.get_mut(sender)
            .with_context(|| format!("no sender {sender}"))?
            .push(n);
        Ok(())
    }

    /// Senders mixing small batches (often consumed on their own thread) with big
    /// ones (always through the channel) and a slow consumer: every sender's lines
    /// arrive complete and in order.
    #[test]
    fn each_senders_events_are_consumed_in_order_whichever_way_they_go() -> anyhow::Result<()> {
        const SENDERS: usize = 4;
        const EVENTS: usize = 2_000;
        let (tx, rx) = channel(2);
        let seen = Arc::new(Mutex::new(vec![Vec::new(); SENDERS]));
        // The first event the consumer could not make sense of, wherever it ran.
        let failed = Arc::new(Mutex::new(None::<anyhow::Error>));
        let consumer = {
            let (seen, failed) = (seen.clone(), failed.clone());
            std::thread::Builder::new()
                .spawn(move || {
                    rx.consume(move |event| {
                        if let Err(e) = record(&seen, event) {
                            let mut failed = failed.lock().unwrap_or_else(|p| p.into_inner());
                            failed.get_or_insert(e);
                        }
                    })
                })
                .context("spawning the consumer")?
        };
        // The receiver sets its consumer up when its thread runs.
        while tx.shared.consumer.get().is_none() {
            std::thread::yield_now();
        }
        let senders = (0..SENDERS)
            .map(|s| {
                let tx = tx.clone();
                std::thread::Builder::new()
                    .spawn(move || -> anyhow::Result<()> {
                        let stream = Arc::new(Stream::new("h", s.to_string(), "set"));
                        for n in 0..EVENTS {
                            let pad = if n % 10 == 0 { DIRECT_MAX_BYTES + 1 } else { 1 };
                            let text = format!("{n} {}\n", "x".repeat(pad));
                            tx.blocking_send(batch(&stream, text))
                                .map_err(|Closed| anyhow!("sender {s}: the receiver is gone"))?;
                        }
                        Ok(())
                    })
                    .with_context(|| format!("spawning sender {s}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        drop(tx);
        // A thread that panicked fails the test with its own panic.
        for s in senders {
            s.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
        }
        consumer
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        let failed = failed.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(e) = failed {
            return Err(e.context("consuming an event"));
        }
        let seen = seen
            .lock()
            .map_err(|_| anyhow!("a consumer panicked holding `seen`"))?;
        for got in seen.iter() {
            assert_eq!(*got, (0..EVENTS).collect::<Vec<_>>());
        }
        Ok(())
    }

    #[test]
    fn sending_to_a_gone_receiver_is_closed() {
        let (tx, rx) = channel(1);
        drop(rx);
        let stream = Arc::new(Stream::new("h", "p", "s"));
        assert_eq!(tx.blocking_send(batch(&stream, "a\n".into())), Err(Closed));
        assert_eq!(tx.shared.queued.load(Ordering::SeqCst), 0);
    }
}
