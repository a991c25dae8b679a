//! Stopping the hub: one signal to every long-lived task, then a wait until each
//! has finished, within one bound.
//!
//! The model is tokio's mini-redis: every task holds a [`Handle`], which carries
//! the signal and a completion sender; [`Shutdown::stop`] sends the signal, lets go
//! of its own sender and waits for the channel to close, which it does when the
//! last handle is dropped, that is when the last task has ended. No polling, so an
//! idle hub stops at once. Two differences: the signal is a flag with a `Notify`
//! (a task that looks after it was sent still sees it, where a broadcast receiver
//! made late would wait forever; and waiting on it clones nothing), and each
//! handle counts under its [`Kind`], so a stop that hits the bound says which tasks
//! were still running. The hub's OS threads (the tailer, ingest, the demo's
//! writer, and the hub's own: matcher, compile, isolated workers, see
//! [`hub::threads`](crate::hub::threads)) hold handles too ([`spawn_thread`]): the
//! stop waits for them alike, and their owner joins them after it.
//!
//! A task's handle comes from the handle of the task that started it
//! ([`Handle::child`]): while a task runs, it holds the stop open, so no task can
//! start unseen after the wait began (an accepted connection hands its handle to
//! its WebSocket session before the connection's own ends).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Notify};

/// What a task is, as the log names it when the stop's bound is hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The HTTP accept loop (plain or TLS).
    HttpAccept,
    /// One HTTP connection, until it ends or is upgraded.
    HttpConnection,
    /// One request on it, while it is handled.
    HttpRequest,
    /// A WebSocket client's session (`/ws`).
    Client,
    /// An agent's session (`/agent`), its hello included.
    Agent,
    /// The TLS listener's accept loop.
    TlsAccept,
    /// One TLS handshake in progress.
    TlsHandshake,
    /// The syslog UDP socket or TCP accept loop.
    SyslogListener,
    /// One syslog TCP sender.
    SyslogConnection,
    /// An `[[irc]]` sink, and its connection's reader.
    Irc,
    /// The tailer's thread (the hub's files).
    Tailer,
    /// The ingest thread: every source's events into the hub.
    Ingest,
    /// `--demo`'s writer thread.
    DemoWriter,
    /// The hub itself, until it is freed (its own threads end after it).
    Hub,
    /// The hub's matcher thread (it applies subscription changes).
    Matcher,
    /// A thread compiling subscriptions.
    Compile,
    /// The worker of a subscription evaluated apart.
    Isolated,
}

impl Kind {
    const ALL: [Kind; 17] = [
        Kind::HttpAccept,
        Kind::HttpConnection,
        Kind::HttpRequest,
        Kind::Client,
        Kind::Agent,
        Kind::TlsAccept,
        Kind::TlsHandshake,
        Kind::SyslogListener,
        Kind::SyslogConnection,
        Kind::Irc,
        Kind::Tailer,
        Kind::Ingest,
        Kind::DemoWriter,
        Kind::Hub,
        Kind::Matcher,
        Kind::Compile,
        Kind::Isolated,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::HttpAccept => "http accept loop",
            Kind::HttpConnection => "http connection",
            Kind::HttpRequest => "http request",
            Kind::Client => "websocket client",
            Kind::Agent => "agent session",
            Kind::TlsAccept => "tls accept loop",
            Kind::TlsHandshake => "tls handshake",
            Kind::SyslogListener => "syslog listener",
            Kind::SyslogConnection => "syslog connection",
            Kind::Irc => "irc sink",
            Kind::Tailer => "tailer thread",
            Kind::Ingest => "ingest thread",
            Kind::DemoWriter => "demo writer thread",
            Kind::Hub => "hub (not freed)",
            Kind::Matcher => "matcher thread",
            Kind::Compile => "compile thread",
            Kind::Isolated => "isolated worker thread",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Handles alive, per kind.
#[derive(Default)]
struct Running([AtomicUsize; Kind::ALL.len()]);

/// The owner's side: makes the first handles, and stops.
pub struct Shutdown {
    signal: Arc<Flag>,
    /// Ours, dropped by `stop`: then the channel closes with the last handle.
    complete: Option<mpsc::Sender<()>>,
    done: mpsc::Receiver<()>,
    running: Arc<Running>,
}

/// A task's part in the stop: tells it when to stop, and while it is held the stop
/// waits for it. Drop it when the task is done.
pub struct Handle {
    kind: Kind,
    signal: Arc<Flag>,
    /// Never sent on: its drop is the message (see [`Shutdown::stop`]).
    _complete: mpsc::Sender<()>,
    running: Arc<Running>,
}

/// How many tasks of a kind were still running when the stop gave up on them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StillRunning(pub Vec<(Kind, usize)>);

impl std::fmt::Display for StillRunning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (kind, n)) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{n} {}", kind.name())?;
        }
        Ok(())
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Shutdown {
    pub fn new() -> Shutdown {
        let (complete, done) = mpsc::channel(1);
        Shutdown {
            signal: Arc::default(),
            complete: Some(complete),
            done,
            running: Arc::default(),
        }
    }

    /// A handle for a task started by the owner.
    pub fn handle(&self, kind: Kind) -> Handle {
        // `complete` is taken only by `stop`, which consumes the owner.
        let complete = self.complete.clone().unwrap_or_else(|| mpsc::channel(1).0);
        Handle::new(kind, self.signal.clone(), complete, &self.running)
    }

    /// Tells every task to stop and waits until each has dropped its handle, or
    /// `within` has passed: then says which were still running (they are given up
    /// on, and end with the runtime).
    pub async fn stop(mut self, within: Duration) -> Result<(), StillRunning> {
        self.signal.raise();
        drop(self.complete.take());
        // Nothing is ever sent: `None` is every sender gone.
        match tokio::time::timeout(within, self.done.recv()).await {
            Ok(_) => Ok(()),
            Err(_) => Err(StillRunning(
                Kind::ALL
                    .into_iter()
                    .map(|k| (k, self.running.0[k.index()].load(Ordering::SeqCst)))
                    .filter(|&(_, n)| n > 0)
                    .collect(),
            )),
        }
    }
}

impl Handle {
    fn new(
        kind: Kind,
        signal: Arc<Flag>,
        complete: mpsc::Sender<()>,
        running: &Arc<Running>,
    ) -> Handle {
        running.0[kind.index()].fetch_add(1, Ordering::SeqCst);
        Handle {
            kind,
            signal,
            _complete: complete,
            running: running.clone(),
        }
    }

    /// A handle for a task this one starts.
    pub fn child(&self, kind: Kind) -> Handle {
        Handle::new(
            kind,
            self.signal.clone(),
            self._complete.clone(),
            &self.running,
        )
    }

    /// Resolves once the hub is stopping (at once if it is already). Cancel-safe:
    /// made for a `select!` arm. Cheap: a flag's load, and a waiter registered
    /// while pending (a loop that selects on it every turn can still hold one).
    pub async fn stopping(&self) {
        self.signal.raised().await;
    }

    /// The signal alone, for a task whose handle is held by something it owns (a
    /// connection's, by the service that hands it to each request).
    pub fn signal(&self) -> Signal {
        Signal(self.signal.clone())
    }

    /// Whether the hub is stopping.
    pub fn is_stopping(&self) -> bool {
        self.signal.is_raised()
    }
}

/// Tells when the hub stops; counts for nothing (see [`Handle::signal`]).
#[derive(Clone)]
pub struct Signal(Arc<Flag>);

impl Signal {
    /// As [`Handle::stopping`].
    pub async fn stopping(&self) {
        self.0.raised().await;
    }
}

/// The stop signal: raised once, by `stop` or by the owner's drop (the hub is
/// ending all the same).
#[derive(Default)]
struct Flag {
    raised: AtomicBool,
    notify: Notify,
}

impl Flag {
    fn raise(&self) {
        self.raised.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    fn is_raised(&self) -> bool {
        self.raised.load(Ordering::SeqCst)
    }

    async fn raised(&self) {
        if self.is_raised() {
            return;
        }
        let mut notified = std::pin::pin!(self.notify.notified());
        // Registered before the second look: a raise after it wakes this one.
        notified.as_mut().enable();
        if self.is_raised() {
            return;
        }
        notified.await;
    }
}

impl Drop for Shutdown {
    fn drop(&mut self) {
        self.signal.raise();
    }
}

/// Starts `f` on an OS thread named `name` that holds `handle` until `f` returns:
/// the stop waits for it as for a task, and names its kind when it does not end.
/// The owner joins the returned thread once the stop is done.
pub fn spawn_thread<T: Send + 'static>(
    name: &str,
    handle: Handle,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<T>> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let done = f();
            drop(handle);
            done
        })
}

/// Joins a thread of [`spawn_thread`] once the stop is done: at once, as it dropped
/// its handle on its way out. When the stop gave up on something (`gave_up`), a
/// thread not ended is left to end with the process: it may be waiting for what the
/// stop gave up on (a thread started after the stop looked, whose kind it could not
/// name, among them), and joining it could wait for ever.
pub fn join_thread<T>(name: &str, thread: std::thread::JoinHandle<T>, gave_up: bool) {
    if gave_up && !thread.is_finished() {
        tracing::debug!("stopping: left the {name} thread running");
        return;
    }
    match thread.join() {
        Ok(_) => tracing::debug!("stopping: joined the {name} thread"),
        Err(_) => tracing::error!("stopping: the {name} thread had panicked"),
    }
}

impl Clone for Handle {
    /// Another handle of the same kind (axum's extractors clone what they hand out).
    fn clone(&self) -> Handle {
        self.child(self.kind)
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.running.0[self.kind.index()].fetch_sub(1, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").field("kind", &self.kind).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::{bail, Context};

    /// Longer than any of these tests takes: a stop that returns `Ok` within it did
    /// not wait for its bound (that one is `Err`).
    const LONG: Duration = Duration::from_secs(60);

    fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .context("a runtime")
    }

    fn ok(stopped: Result<(), StillRunning>) -> anyhow::Result<()> {
        stopped.map_err(|s| anyhow::anyhow!("still running: {s}"))
    }

    #[test]
    fn every_kind_has_its_own_count() -> anyhow::Result<()> {
        for (i, kind) in Kind::ALL.into_iter().enumerate() {
            if kind.index() != i {
                bail!("{kind:?} counts at {}, listed at {i}", kind.index());
            }
        }
        Ok(())
    }

    #[test]
    fn with_no_task_the_stop_ends_before_its_bound() -> anyhow::Result<()> {
        runtime()?.block_on(async { ok(Shutdown::new().stop(LONG).await) })
    }

    #[test]
    fn the_stop_waits_for_every_task_and_its_children() -> anyhow::Result<()> {
        runtime()?.block_on(async {
            let shutdown = Shutdown::new();
            let (ended, mut ends) = mpsc::unbounded_channel();
            for i in 0..3u64 {
                let handle = shutdown.handle(Kind::HttpAccept);
                let ended = ended.clone();
                tokio::spawn(async move {
                    handle.stopping().await;
                    // Started after the signal: it sees it, and is waited for.
                    let child = handle.child(Kind::Client);
                    drop(handle);
                    tokio::time::sleep(Duration::from_millis(20 * i)).await;
                    let _ = ended.send((i, child.is_stopping()));
                    drop(child);
                });
            }
            drop(ended);
            ok(shutdown.stop(LONG).await)?;
            let mut seen = Vec::new();
            while let Ok(end) = ends.try_recv() {
                seen.push(end);
            }
            seen.sort();
            if seen != [(0, true), (1, true), (2, true)] {
                bail!("ended before the stop returned (and saw it): {seen:?}");
            }
            Ok(())
        })
    }

    #[test]
    fn a_task_that_does_not_stop_is_named_at_the_bound() -> anyhow::Result<()> {
        runtime()?.block_on(async {
            let shutdown = Shutdown::new();
            let stuck = shutdown.handle(Kind::Agent);
            let stopped = shutdown.handle(Kind::Client);
            tokio::spawn(async move {
                stopped.stopping().await;
            });
            let Err(still) = shutdown.stop(Duration::from_millis(50)).await else {
                bail!("the stop did not wait for the stuck task");
            };
            if still.0 != [(Kind::Agent, 1)] || still.to_string() != "1 agent session" {
                bail!("still running: {still:?}");
            }
            drop(stuck);
            Ok(())
        })
    }
}
