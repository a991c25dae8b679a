//! `supergrep agent --hub ws://loghub:7070 PATH…`: the same tailer as every mode, its
//! lines shipped to a hub's `/agent` endpoint without loss or duplicates.
//!
//! Every batch stays in a bounded buffer until the hub acknowledges it; after a
//! reconnect everything unacknowledged is sent again (the hub drops what it already
//! has). When the buffer is full the agent stops reading: the tailer waits with the
//! rest of the data still in the files (open handles keep even rotated-away files),
//! and reads on once there is room. `--state-file` keeps the acknowledged offsets
//! across restarts of the agent.

mod frame;
mod publish;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::cli::AgentArgs;
use crate::client::{jitter, ConnectError, HubEndpoint, Ws};
use crate::exit::UsageError;
use crate::line::{format_ts, local_hostname};
use crate::protocol::{AgentMsg, HubMsg, VERSION};
use crate::shutdown::{join_thread, Kind, Shutdown};
use crate::source::glob::Target;
use crate::source::tail::{self, Resume, StartAt, Stop, TailConfig};
use crate::source::{EventReceiver, SourceEvent};
use frame::LinesFrame;

/// Unacknowledged bytes held at most before the agent stops reading.
const MAX_PENDING_BYTES: usize = 64 << 20;
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
const PING_EVERY: Duration = Duration::from_secs(15);
/// A hub silent this long (not even a pong) is taken for dead.
const DEAD_AFTER: Duration = Duration::from_secs(45);
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// How long a stop waits for the tailer to end (it is woken at once; a read of a
/// hung network file system could hold it): then it is given up on.
const STOP_WITHIN: Duration = Duration::from_secs(5);

struct Pending {
    batch: u64,
    /// The frame as sent (and sent again after a reconnect).
    frame: LinesFrame,
    /// What acknowledging it means for the state file.
    resume: Option<(PathBuf, Resume)>,
}

struct Agent {
    hub: HubEndpoint,
    name: String,
    set: String,
    retry_auth: bool,
    pending: VecDeque<Pending>,
    pending_bytes: usize,
    next_batch: u64,
    /// Files currently followed (re-announced after a reconnect).
    streams: Vec<String>,
    acked: HashMap<PathBuf, Resume>,
    state_file: Option<PathBuf>,
    dirty: bool,
    /// Why the last connection attempt failed, for the retry message.
    last_error: Option<String>,
    /// Mask batches even where the hub offers to take them unmasked: set once a
    /// connection that carried unmasked batches broke before the hub acknowledged any
    /// (something on the way, a proxy that reads WebSocket frames, refuses them).
    mask_always: bool,
    /// On the current connection: batches sent, acknowledgements received.
    sent_here: u64,
    acked_here: u64,
}

pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let name = args.name.clone().unwrap_or_else(local_hostname);
    let resume = match &args.state_file {
        Some(p) => load_state(p)?,
        None => HashMap::new(),
    };
    let targets = args
        .paths
        .iter()
        .map(|p| Target::parse(p).map_err(UsageError::of))
        .collect::<Result<Vec<_>, _>>()?;
    if targets.is_empty() {
        return Err(UsageError("no file given: name one or more PATHs to ship".into()).into());
    }
    if args.cluster.given() {
        return publish::run(&args, name, resume, targets).await;
    }
    let Some(hub) = args.hub.as_deref() else {
        return Err(UsageError("give the hub (--hub URL) or NATS (--nats URL)".into()).into());
    };
    let mut agent = Agent {
        hub: HubEndpoint::new(
            hub,
            "/agent",
            args.token.as_deref(),
            args.tls_ca.as_deref(),
            "--hub",
        )
        .map_err(UsageError::of)?,
        name: name.clone(),
        set: args.set.clone(),
        retry_auth: args.retry_auth,
        pending: VecDeque::new(),
        pending_bytes: 0,
        next_batch: 1,
        streams: Vec::new(),
        acked: resume.clone(),
        state_file: args.state_file.clone(),
        dirty: false,
        last_error: None,
        mask_always: false,
        sent_here: 0,
        acked_here: 0,
    };
    // Catching up, bigger batches cost the agent and the hub less per line
    // (measured: 256 KiB 0.42-0.58 s, 1 MiB 0.30-0.35 s, 4 MiB 0.35-0.49 s for
    // 279 MB); following, a batch is whatever was appended, as before.
    let (mut rx, tailing) = start_tailer(targets, name, &args.set, resume, 1 << 20)?;
    let result = agent.ship(&mut rx).await;
    // First, so that a tailer slow to end cannot cost what the hub acknowledged.
    agent.save();
    tailing.end(rx).await;
    result
}

/// The tailer of every agent: new lines only (or from the saved offsets), batches of
/// at most `read_chunk` bytes while catching up.
fn start_tailer(
    targets: Vec<Target>,
    host: String,
    set: &str,
    resume: HashMap<PathBuf, Resume>,
    read_chunk: usize,
) -> anyhow::Result<(EventReceiver, Tailing)> {
    let stop = Stop::new().context("starting the tailer")?;
    let config = TailConfig {
        start: StartAt::LastLines(0),
        host,
        set: set.to_owned(),
        resume,
        read_chunk,
        stop: Some(stop.clone()),
        ..TailConfig::default()
    };
    let shutdown = Shutdown::new();
    let (tx, rx) = crate::source::events::channel(4);
    let thread = tail::spawn_sets(
        vec![(set.to_owned(), targets)],
        config,
        tx,
        Some(shutdown.handle(Kind::Tailer)),
    )
    .context("starting the tailer")?;
    Ok((
        rx,
        Tailing {
            stop,
            shutdown,
            thread,
        },
    ))
}

/// The agent's tailer thread, running: ended and joined by [`Tailing::end`].
struct Tailing {
    stop: Stop,
    shutdown: Shutdown,
    thread: std::thread::JoinHandle<tail::TailSummary>,
}

impl Tailing {
    /// Stops the tailer and joins it (within [`STOP_WITHIN`]). What it read and was
    /// not acknowledged is read again next time, from the state file's offsets; `rx`
    /// is dropped, which also ends a send the tailer waits in.
    async fn end(self, rx: EventReceiver) {
        self.stop.stop();
        drop(rx);
        let given_up = match self.shutdown.stop(STOP_WITHIN).await {
            Ok(()) => false,
            Err(still) => {
                tracing::warn!("stopping: gave up after {STOP_WITHIN:?} on: {still}");
                true
            }
        };
        join_thread("tailer", self.thread, given_up);
    }
}

impl Agent {
    async fn ship(&mut self, rx: &mut EventReceiver) -> anyhow::Result<()> {
        let mut backoff = BACKOFF_MIN;
        let mut stop = std::pin::pin!(crate::signals::terminated());
        loop {
            // A hub that never answers must not hold up a SIGTERM.
            let attempt = tokio::select! {
                c = self.connect() => c?,
                _ = stop.as_mut() => return Ok(()),
            };
            match attempt {
                Some((mut ws, offered)) => {
                    crate::say!(
                        "supergrep agent: connected to {} as {}",
                        self.display(),
                        self.name
                    );
                    backoff = BACKOFF_MIN;
                    let unmasked = offered && !self.mask_always;
                    let ended = self.connected(&mut ws, unmasked, rx, stop.as_mut()).await;
                    match ended {
                        Ended::Stopped => {
                            let _ = ws.close(None).await;
                            return Ok(());
                        }
                        Ended::Lost(why) => {
                            crate::say!("supergrep agent: lost the hub ({why}); reconnecting");
                            if unmasked && self.sent_here > 0 && self.acked_here == 0 {
                                self.mask_always = true;
                                crate::say!(
                                    "supergrep agent: no batch sent unmasked was acknowledged \
                                     before the connection broke; masking them from now on"
                                );
                            }
                        }
                    }
                }
                None => {
                    let why = self
                        .last_error
                        .take()
                        .map_or(String::new(), |e| format!(" ({e})"));
                    crate::say!(
                        "supergrep agent: cannot reach the hub at {}{why}; retrying in {:.1}s",
                        self.display(),
                        backoff.as_secs_f64()
                    );
                }
            }
            // Keep following (into the buffer) while waiting to retry.
            let until = tokio::time::Instant::now() + jitter(backoff);
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => break,
                    _ = stop.as_mut() => return Ok(()),
                    event = rx.recv(), if self.has_room() => match event {
                        // Sent (again) once connected.
                        Some(e) => drop(self.take(e)),
                        None => return Ok(()),
                    },
                }
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Connects and says hello; `None` when the hub cannot be reached now. With the
    /// connection: whether the hub takes `lines` frames unmasked.
    async fn connect(&mut self) -> anyhow::Result<Option<(Ws, bool)>> {
        let mut ws = match self.hub.connect().await {
            Ok(ws) => ws,
            Err(ConnectError::Refused) => {
                let why = format!("the hub at {} refused the token", self.display());
                if self.retry_auth {
                    crate::say!("supergrep agent: {why}; retrying (--retry-auth)");
                    return Ok(None);
                }
                return Err(UsageError(why).into());
            }
            Err(ConnectError::Unreachable(e)) => {
                tracing::debug!("connect: {e}");
                self.last_error = Some(e);
                return Ok(None);
            }
        };
        let hello = AgentMsg::AgentHello {
            version: VERSION,
            name: self.name.clone(),
            agent: format!("supergrep {}", env!("CARGO_PKG_VERSION")),
        };
        if ws.send(message(&hello)).await.is_err() {
            return Ok(None);
        }
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => match serde_json::from_str::<HubMsg>(t.as_str()) {
                Ok(HubMsg::Welcome { unmasked_lines, .. }) => Ok(Some((ws, unmasked_lines))),
                // The hub still has a connection of this name: ours, from before
                // a network failure it has not noticed yet (it gives up on a
                // silent one in 90 s), or another agent's. Said, and tried again.
                Ok(HubMsg::Error { code, message })
                    if code == crate::protocol::code::NAME_IN_USE =>
                {
                    crate::say!("supergrep agent: {message} (retrying)");
                    Ok(None)
                }
                Ok(HubMsg::Error { message, .. }) => {
                    Err(UsageError(format!("the hub refused the agent: {message}")).into())
                }
                _ => Ok(None),
            },
            _ => Ok(None),
        }
    }

    async fn connected(
        &mut self,
        ws: &mut Ws,
        unmasked: bool,
        rx: &mut EventReceiver,
        mut stop: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Ended {
        (self.sent_here, self.acked_here) = (0, 0);
        // What the hub may not have: announce the files, re-send the unacknowledged.
        for path in self.streams.clone() {
            let added = AgentMsg::StreamAdded {
                path,
                set: self.set.clone(),
            };
            if ws.send(message(&added)).await.is_err() {
                return Ended::Lost("send failed".into());
            }
        }
        if !self.pending.is_empty() {
            let resending = AgentMsg::Resending {
                batches: self.pending.len() as u64,
            };
            if ws.send(message(&resending)).await.is_err() {
                return Ended::Lost("send failed".into());
            }
        }
        for p in &self.pending {
            self.sent_here += 1;
            if p.frame.send(ws, unmasked).await.is_err() {
                return Ended::Lost("send failed".into());
            }
        }
        let mut ping = tokio::time::interval(PING_EVERY);
        let mut save = tokio::time::interval(SAVE_EVERY);
        let mut last_heard = Instant::now();
        loop {
            tokio::select! {
                _ = stop.as_mut() => return Ended::Stopped,
                msg = ws.next() => {
                    last_heard = Instant::now();
                    match msg {
                        Some(Ok(Message::Text(t))) => match serde_json::from_str::<HubMsg>(t.as_str()) {
                            Ok(HubMsg::Ack { batch }) => {
                                self.acked_here += 1;
                                self.acknowledged(batch);
                            }
                            Ok(HubMsg::Error { message, .. }) => crate::say!("supergrep agent: the hub says: {message}"),
                            _ => {}
                        },
                        Some(Ok(Message::Close(_))) | None => return Ended::Lost("the hub closed the connection".into()),
                        Some(Err(e)) => return Ended::Lost(e.to_string()),
                        Some(Ok(_)) => {}
                    }
                }
                event = rx.recv(), if self.has_room() => match event {
                    Some(e) => {
                        let sent = match self.take(e) {
                            Some(Outgoing::Message(m)) => ws.send(m).await,
                            Some(Outgoing::Lines(frame)) => {
                                self.sent_here += 1;
                                frame.send(ws, unmasked).await
                            }
                            None => Ok(()),
                        };
                        if sent.is_err() {
                            return Ended::Lost("send failed".into());
                        }
                    }
                    // The tailer ended (it only does when nothing is left to follow).
                    None => return Ended::Stopped,
                },
                _ = ping.tick() => {
                    if last_heard.elapsed() > DEAD_AFTER {
                        return Ended::Lost("no answer to pings".into());
                    }
                    if ws.send(Message::Ping(Default::default())).await.is_err() {
                        return Ended::Lost("send failed".into());
                    }
                }
                _ = save.tick() => self.save(),
            }
        }
    }

    fn has_room(&self) -> bool {
        self.pending_bytes < MAX_PENDING_BYTES
    }

    /// Takes one tailer event into the agent's state; returns what to send.
    fn take(&mut self, event: SourceEvent) -> Option<Outgoing> {
        match event {
            SourceEvent::StreamAdded(s) => {
                if !self.streams.contains(&s.path) {
                    self.streams.push(s.path.clone());
                }
                Some(Outgoing::Message(message(&AgentMsg::StreamAdded {
                    path: s.path.clone(),
                    set: s.set.clone(),
                })))
            }
            SourceEvent::StreamRemoved(s) => {
                self.streams.retain(|p| *p != s.path);
                Some(Outgoing::Message(message(&AgentMsg::StreamRemoved {
                    path: s.path.clone(),
                    set: s.set.clone(),
                })))
            }
            // The hub's business, never a tailer's.
            SourceEvent::Receipt { .. } => None,
            SourceEvent::Lines(b) => {
                let origin = b.origin?;
                let batch = self.next_batch;
                self.next_batch += 1;
                let msg = AgentMsg::Lines {
                    batch,
                    path: b.stream.path.clone(),
                    set: b.stream.set.clone(),
                    dev: origin.dev,
                    ino: origin.ino,
                    born: origin.born,
                    start: origin.position(origin.start),
                    end: origin.position(origin.end),
                    ts: format_ts(b.ts),
                    text: String::new(),
                };
                // A binary frame: the JSON header, a newline, then the lines as they
                // are (escaping them as JSON cost more than everything else).
                let frame = LinesFrame::new(&msg, b.bytes);
                self.pending_bytes += frame.len();
                self.pending.push_back(Pending {
                    batch,
                    frame: frame.clone(),
                    resume: Some((PathBuf::from(&b.stream.path), Resume::delivered(&origin))),
                });
                Some(Outgoing::Lines(frame))
            }
        }
    }

    fn acknowledged(&mut self, batch: u64) {
        while self.pending.front().is_some_and(|p| p.batch <= batch) {
            if let Some(p) = self.pending.pop_front() {
                self.pending_bytes -= p.frame.len();
                if let Some((path, resume)) = p.resume {
                    self.acked.insert(path, resume);
                    self.dirty = true;
                }
            }
        }
    }

    fn save(&mut self) {
        let Some(path) = &self.state_file else { return };
        if self.dirty && save_state(path, &mut self.acked) {
            self.dirty = false;
        }
    }

    fn display(&self) -> &str {
        self.hub.display()
    }
}

/// Writes the acknowledged offsets (atomically: a crash leaves the old file); false
/// when it could not (said in the log).
fn save_state(path: &Path, acked: &mut HashMap<PathBuf, Resume>) -> bool {
    {
        // The bytes before each new offset, read from the file itself while it is
        // still the one acknowledged (not rotated away: then none are noted).
        for (file, resume) in acked.iter_mut() {
            if resume.before.is_none() {
                let opened =
                    crate::regular_file::open(file).map(|(f, meta)| resume.is(&meta).then_some(f));
                if let Ok(Some(f)) = opened {
                    let _ = resume.note_before(&f);
                }
            }
        }
        let tmp = path.with_extension("tmp");
        let json = match serde_json::to_string_pretty(&*acked) {
            Ok(j) => j,
            Err(_) => return false,
        };
        let written = crate::regular_file::create(&tmp)
            .and_then(|mut f| std::io::Write::write_all(&mut f, json.as_bytes()));
        match written.and_then(|()| std::fs::rename(&tmp, path)) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("cannot write the state file {}: {e}", path.display());
                false
            }
        }
    }
}

/// What the agent sends: its own messages, and the batches it keeps until acknowledged.
enum Outgoing {
    Message(Message),
    Lines(LinesFrame),
}

enum Ended {
    Stopped,
    Lost(String),
}

fn load_state(path: &Path) -> anyhow::Result<HashMap<PathBuf, Resume>> {
    match crate::regular_file::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            UsageError(format!(
                "state file {} is not one of ours: {e}",
                path.display()
            ))
            .into()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HashMap::new()),
        Err(e) => Err(UsageError(format!("cannot read state file {}: {e}", path.display())).into()),
    }
}

fn message(msg: &AgentMsg) -> Message {
    Message::Text(serde_json::to_string(msg).unwrap_or_default().into())
}
