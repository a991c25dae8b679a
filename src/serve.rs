//! `supergrep serve`: tailers for every log set → hub → WebSocket clients.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use futures_util::FutureExt as _;

use crate::cli::ServeArgs;
use crate::config::{Config, LogSet};
use crate::exit::UsageError;
use crate::hub::{Hub, Overflow, SinkKind, SinkQueue, Spans, Takes};
use crate::irc::{IrcOptions, IrcSetting, IrcSettings};
use crate::matcher::{Limits, StreamSelector, Subscription};
use crate::server::{self, ServerState};
use crate::shutdown::{join_thread as join, Kind, Shutdown};
use crate::source::agent_ingest::AgentIngest;
use crate::source::glob::Target;
use crate::source::tail::{self, StartAt, Stop, TailConfig, TailSummary};
use crate::source::EventSender;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";

/// How long a stop waits for the hub's tasks (a peer that reads nothing can hold
/// its session's close frame): then it gives up on them.
const STOP_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => Config::load(path).map_err(UsageError::of)?,
        None => Config::default(),
    };
    if config.nats.is_some() {
        // Said, not ignored: a hub that silently served only its own sources would
        // look like a cluster that lost every agent's lines.
        return Err(UsageError(
            "[nats]: a hub does not read NATS yet (agents and `mark` publish to it; the \
             hub's side of the cluster is still being built): remove the section to run \
             this hub on its own sources"
                .into(),
        )
        .into());
    }
    if let Some(lines) = args.backlog {
        config.limits.backlog_lines = lines;
    }
    let listen: SocketAddr = match args.listen.or(config.listen) {
        Some(a) => a,
        None => DEFAULT_LISTEN.parse().context("default listen address")?,
    };
    let token = args
        .token
        .clone()
        .or(config.token.clone())
        .filter(|t| !t.is_empty());
    // Every async task below holds a handle of it, and so do the demo's writer,
    // the tailer and ingest threads.
    let shutdown = Shutdown::new();
    // Its directory is removed however this ends (a start that fails, the port
    // taken, left them).
    let demo = start_demo(args.demo, &shutdown)?;
    let sets = log_sets(&args, &config, demo.as_ref().map(|d| d.glob.as_str()));

    let limits = config.limits;
    // The stop waits for the hub to be freed, and for its own threads (matcher,
    // compile, isolated workers) to end with it.
    let hub = Hub::new_stopped_by(
        Limits {
            max_patterns: limits.max_patterns,
            pattern_size: limits.max_pattern_bytes,
            total_size: limits.max_compiled_bytes,
            ..Limits::default()
        },
        limits.backlog_lines,
        Some(shutdown.handle(Kind::Hub)),
    );
    let hub_alive = Arc::downgrade(&hub);
    let hub_threads = hub.joins();
    let (tx, rx) = crate::source::events::channel(64);
    let tailer = follow_sets(&sets, limits.max_line, tx.clone(), &shutdown)?;
    // Failed accepts of every accept loop, for /metrics.
    let accept_errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    start_syslog(&args, &config, tx.clone(), &accept_errors, &shutdown).await?;
    // Agents' lines come in through the server, which hands each connection to
    // this source.
    let agents = Arc::new(AgentIngest::new(
        hub.clone(),
        tx,
        config.trust_agent_time,
        limits.max_line,
    ));
    // It ends once every source's sender is gone: the tailer's, syslog's and the
    // agents' (with the server's state).
    let ingest = {
        let hub = hub.clone();
        let running = shutdown.handle(Kind::Ingest);
        crate::shutdown::spawn_thread("ingest", running, move || hub.run_ingest(rx))
            .context("starting ingest")?
    };
    start_irc_sinks(&hub, &config, &shutdown).await?;

    let tls = tls_config(&args, &config)?;
    let tcp = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = tcp.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = match tls {
        Some(tls) => server::HubListener::Tls(crate::tls::TlsListener::new(
            tcp,
            tls,
            accept_errors.clone(),
            shutdown.handle(Kind::TlsAccept),
        )?),
        None => server::HubListener::Plain(tcp),
    };
    let state = ServerState::new(
        hub,
        limits,
        token,
        server::Access {
            allowed_origins: config.allowed_origins.clone(),
            allowed_hosts: config.allowed_hosts.clone(),
            metrics_token: config.metrics_token.clone(),
            accept_errors,
        },
        config.source_url.clone(),
        agents,
    );
    state.set_log_sets(sets.iter().map(|s| (s.name.clone(), s.paths.clone())));
    // Listened for before the hub says it serves (the first poll sets the signal
    // handlers up): a SIGTERM right after that line would kill it (status 143).
    let mut terminated = std::pin::pin!(crate::signals::terminated());
    let terminated_early = terminated.as_mut().now_or_never().is_some();
    crate::say!(
        "supergrep: serving {scheme}://{addr}/ ({} log set(s): {})",
        sets.len(),
        set_names(&sets)
    );
    tokio::spawn(server::serve(
        listener,
        state,
        shutdown.handle(Kind::HttpAccept),
    ));
    if !terminated_early {
        terminated.await;
    }
    // Every session says goodbye (a close frame), every listener closes, the
    // tailer is woken to stop, and ingest ends once every source has; the stop
    // waits for all of them, and for the hub's own threads (matcher, compile,
    // isolated workers), which end once ingest and the server let go of the hub;
    // then the threads are joined. None holds anything to save: the hub keeps no
    // state on disk, and what they hold in memory goes with the process.
    if let Some((stop, _)) = &tailer {
        stop.stop();
    }
    if let Some(demo) = &demo {
        demo.writer.stop.stop();
    }
    let still = shutdown.stop(STOP_WITHIN).await.err();
    if let Some(still) = &still {
        tracing::warn!("stopping: gave up after {STOP_WITHIN:?} on: {still}");
    }
    let gave_up = still.is_some();
    if let Some((_, thread)) = tailer {
        join("tailer", thread, gave_up);
    }
    join("ingest", ingest, gave_up);
    // Before its directory goes: it would write there still.
    if let Some(demo) = demo {
        join("demo writer", demo.writer.thread, gave_up);
    }
    if hub_alive.strong_count() == 0 {
        tracing::debug!("stopping: the hub is freed");
    }
    hub_threads.join(still.as_ref());
    Ok(())
}

/// `--demo`'s logs, their glob and the thread that writes them.
struct Demo {
    glob: String,
    writer: crate::demo::Writer,
    /// Declared last, dropped last: removed once the writer is done.
    _dir: tempfile::TempDir,
}

/// `--demo`: its logs go in a directory made new (a random name, mode 0700), so
/// that one planted in the shared temporary directory, or a symlink there, gets
/// nothing; the demo's writer starts on it.
fn start_demo(demo: bool, shutdown: &Shutdown) -> anyhow::Result<Option<Demo>> {
    if !demo {
        return Ok(None);
    }
    let dir = tempfile::Builder::new()
        .prefix("supergrep-demo-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()
        .context("making the demo's directory")?;
    let (glob, writer) = crate::demo::start(dir.path(), shutdown.handle(Kind::DemoWriter))
        .context("starting the demo writer")?;
    Ok(Some(Demo {
        glob,
        writer,
        _dir: dir,
    }))
}

/// The log sets to follow: the config's, then the command line's PATHs (set
/// `default`), then the demo's (set `demo`, its files named by `demo_glob`).
fn log_sets(args: &ServeArgs, config: &Config, demo_glob: Option<&str>) -> Vec<LogSet> {
    let mut sets = config.sets.clone();
    if !args.paths.is_empty() {
        sets.push(LogSet {
            name: "default".into(),
            paths: args.paths.clone(),
        });
    }
    if let Some(glob) = demo_glob {
        sets.push(LogSet {
            name: "demo".into(),
            paths: vec![glob.to_owned()],
        });
    }
    let has_syslog = args.syslog_udp.is_some()
        || args.syslog_tcp.is_some()
        || config.syslog.udp.is_some()
        || config.syslog.tcp.is_some();
    if sets.is_empty() && !has_syslog {
        // A hub fed only by agents is fine; say so, in case it was not meant.
        crate::say!("supergrep: no local files to follow (PATHs, [[set]] in --config, or --demo); waiting for agents");
    }
    sets
}

/// The certificate and key to serve TLS with, when both are given.
fn tls_config(
    args: &ServeArgs,
    config: &Config,
) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    match (
        args.tls_cert.as_ref().or(config.tls_cert.as_ref()),
        args.tls_key.as_ref().or(config.tls_key.as_ref()),
    ) {
        (Some(cert), Some(key)) => Ok(Some(
            crate::tls::server_config(cert, key).map_err(|e| UsageError(e.to_string()))?,
        )),
        (None, None) => Ok(None),
        _ => Err(
            UsageError("TLS needs both a certificate and its key (tls_cert, tls_key)".into())
                .into(),
        ),
    }
}

/// One tailer for every set (none without sets): a file two sets name is read once.
/// Returns what stops it, and its thread (which holds a handle of `shutdown`).
fn follow_sets(
    sets: &[LogSet],
    max_line: usize,
    out: EventSender,
    shutdown: &Shutdown,
) -> anyhow::Result<Option<(Stop, std::thread::JoinHandle<TailSummary>)>> {
    let mut followed = Vec::new();
    for set in sets {
        let targets = set
            .paths
            .iter()
            .map(|p| Target::parse(p).map_err(UsageError::of))
            .collect::<Result<Vec<_>, _>>()?;
        followed.push((set.name.clone(), targets));
    }
    if followed.is_empty() {
        return Ok(None);
    }
    let stop = Stop::new().context("starting the tailer")?;
    let tail_config = TailConfig {
        start: StartAt::LastLines(0),
        max_line,
        stop: Some(stop.clone()),
        ..TailConfig::default()
    };
    let running = shutdown.handle(Kind::Tailer);
    let thread = tail::spawn_sets(followed, tail_config, out, Some(running))
        .context("starting the tailer")?;
    Ok(Some((stop, thread)))
}

/// Syslog input on UDP and/or TCP, when either is given. `shutdown`'s handle is
/// only the parent of the listeners' own (each a child): it is held while they
/// start, and dropped when this returns.
async fn start_syslog(
    args: &ServeArgs,
    config: &Config,
    out: EventSender,
    accept_errors: &Arc<std::sync::atomic::AtomicU64>,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let syslog = &config.syslog;
    let (udp, tcp) = (
        args.syslog_udp.or(syslog.udp),
        args.syslog_tcp.or(syslog.tcp),
    );
    if udp.is_none() && tcp.is_none() {
        return Ok(());
    }
    let tcp_limits = crate::source::syslog::TcpLimits {
        max_connections: syslog.max_connections,
        max_connections_per_address: syslog.max_connections_per_address,
        idle_timeout: std::time::Duration::from_secs(syslog.idle_timeout_secs),
    };
    crate::source::syslog::start(
        udp,
        tcp,
        syslog.set.clone(),
        config.limits.max_line,
        tcp_limits,
        out,
        accept_errors.clone(),
        &shutdown.handle(Kind::SyslogListener),
    )
    .await
    .context("starting syslog input")
}

/// Each `[[irc]]` of the config: an ordinary subscription whose sink posts to IRC.
/// A dead IRC server only fills that sink's bounded queue.
async fn start_irc_sinks(
    hub: &Arc<Hub>,
    config: &Config,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    for (i, sink) in config.irc.iter().enumerate() {
        let options = IrcOptions::new(IrcSettings {
            url: &sink.url(),
            nick: sink.nick.as_deref().unwrap_or("supergrep"),
            color: sink.color,
            format: sink.format.as_deref(),
            rate_per_sec: sink.rate.unwrap_or(1.0),
            burst: sink.burst.unwrap_or(4),
            tls_ca: sink.tls_ca.as_deref(),
            include: &sink.include,
        })
        .map_err(|e| match e.setting() {
            IrcSetting::Url => UsageError(format!("irc[{i}]: {e}")),
            IrcSetting::Format => UsageError(format!("irc[{i}].format: {e}")),
        })?;
        let subscription = Subscription {
            include: sink.include.clone(),
            exclude: sink.exclude.clone(),
            ignore_case: sink.ignore_case,
            streams: StreamSelector::new(&sink.streams)
                .map_err(|e| UsageError(format!("irc[{i}]: {e}")))?,
        };
        let kind = SinkKind {
            takes: Takes::Lines(Overflow::DropOldest),
            spans: Spans::wanted_if(sink.color),
        };
        let queue = Arc::new(SinkQueue::new(1000, kind));
        let mut subscriber = hub.subscriber(queue.clone());
        subscriber
            .subscribe(subscription, 0)
            .await
            .map_err(|e| UsageError(format!("irc[{i}]: {e}")))?;
        let handle = shutdown.handle(Kind::Irc);
        // The subscription lives as long as its sink does, and goes before the stop
        // is told the sink ended (it holds the hub).
        let held = handle.clone();
        tokio::spawn(async move {
            crate::irc::run(options, queue, Some(handle)).await;
            drop(subscriber);
            drop(held);
        });
    }
    Ok(())
}

fn set_names(sets: &[LogSet]) -> String {
    sets.iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
