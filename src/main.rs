use std::process::ExitCode;

use clap::Parser;
use supergrep::cli::{Cli, Command};
use supergrep::exit::UsageError;
use supergrep::terminal::Plan;

/// Batches are read on one thread and freed on another, at up to thousands a second;
/// glibc's malloc returned and re-faulted that memory over and over (scanning 1 GiB:
/// 0.32 s with glibc, 0.21 s with mimalloc; BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    init_logging();
    supergrep::open_files::raise_limit();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Serve(args)) => run(true, supergrep::serve::run(args)),
        Some(Command::Agent(args)) => run(false, supergrep::agent::run(args)),
        Some(Command::Mark(args)) => run(false, async move {
            supergrep::mark::send(&args)
                .await
                .map_err(|e| anyhow::Error::from(UsageError(e.to_string())))
        }),
        Some(Command::Completions(args)) => written(supergrep::generate::completions(&args)),
        Some(Command::Man(args)) => written(supergrep::generate::man(&args)),
        None => terminal(&cli),
    }
}

fn terminal(cli: &Cli) -> ExitCode {
    let mut plan = match Plan::new(&cli.grep) {
        Ok(plan) => plan,
        Err(e) => return fail(&e.into()),
    };
    let stop = match supergrep::source::tail::Stop::new() {
        Ok(stop) => plan.stop_with(stop.clone()).then_some(stop),
        Err(e) => {
            tracing::warn!("a signal will end this at once: {e}");
            None
        }
    };
    watch_signals(stop);
    watch_stdout();
    match plan.run() {
        Ok(outcome) => outcome.code(),
        Err(e) => fail(&e),
    }
}

/// The end of a command that only writes (completions, man pages): a closed pipe
/// (`| head`) is a normal end, as everywhere else.
fn written(result: std::io::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => fail(&anyhow::Error::from(e)),
    }
}

/// Runs one of the async modes on a runtime of its own: the hub on every core but
/// one, the small clients on one thread.
fn run(
    multi_thread: bool,
    main: impl std::future::Future<Output = anyhow::Result<()>>,
) -> ExitCode {
    let mut builder = match multi_thread {
        true => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(hub_workers());
            builder
        }
        false => tokio::runtime::Builder::new_current_thread(),
    };
    match builder.enable_all().build() {
        Ok(runtime) => match runtime.block_on(main) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        Err(e) => fail(&anyhow::Error::from(e)),
    }
}

/// The hub's matching runs on a thread of its own (and the tailer on another), so
/// the runtime, which only frames and sends, gets the other cores. On 2 cores one
/// worker beats two: every batch woke both (one woken by the hub, the second by the
/// first to help), and the 10-client frontail bench went 18.4% -> 15.1% CPU, the
/// 1,000-client fan-out 62-65% -> 53-56% with p99 38-40 -> 30-35 ms (BENCHMARKS.md).
/// `TOKIO_WORKER_THREADS` still overrides it.
fn hub_workers() -> usize {
    let from_env = std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|&n| n > 0);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    from_env.unwrap_or(cores.saturating_sub(1).max(1))
}

/// Usage errors and failures both exit with status 2, as grep's do.
fn fail(e: &anyhow::Error) -> ExitCode {
    match e.downcast_ref::<UsageError>() {
        Some(u) => supergrep::say!("supergrep: {u}"),
        None => supergrep::say!("supergrep: {e:#}"),
    }
    ExitCode::from(2)
}

/// How long a signal waits for terminal mode to end by itself (its tailer stopped,
/// what it read printed) before it ends it: an IRC sink's server can hold it.
const STOP_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Terminal mode runs on plain threads; a small runtime waits for Ctrl-C or
/// SIGTERM. Following files (`stop`), it stops the tailer: what was read is still
/// matched and printed, and the threads are joined, then the program ends normally
/// (status 0) from `main`; this thread ends it only if that takes longer than
/// [`STOP_WITHIN`]. Otherwise (standard input, `--connect`, `--no-follow`) it ends
/// the program at once, status 0: output is flushed as it is written.
fn watch_signals(stop: Option<supergrep::source::tail::Stop>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::warn!("cannot watch for signals: {e}");
            return;
        }
    };
    // Listened for now (the first poll sets the handlers up), not once the thread
    // gets to it: a SIGTERM right after the files are followed would kill it.
    let mut terminated = Box::pin(supergrep::signals::terminated());
    let early = {
        let _runtime = runtime.enter();
        futures_util::FutureExt::now_or_never(terminated.as_mut()).is_some()
    };
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if !early {
                runtime.block_on(terminated);
            }
            if let Some(stop) = stop {
                stop.stop();
                // A second signal is an impatient user (stdout stuck, a slow IRC
                // server): then, or after the bound, end at once.
                let second = runtime.block_on(async {
                    tokio::select! {
                        () = supergrep::signals::terminated() => true,
                        () = tokio::time::sleep(STOP_WITHIN) => false,
                    }
                });
                if !second {
                    tracing::warn!("stopping: gave up after {STOP_WITHIN:?}");
                }
            }
            std::process::exit(0);
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot watch for signals: {e}");
    }
}

/// Ends the program normally (status 0) when stdout is a pipe or socket whose reader
/// went away (`supergrep -e error app.log | head -2`). A write would tell, but
/// following a quiet log there may be no next write for hours; `tail -f` polls its
/// output for this too. Polling a pipe for no event still reports POLLERR once
/// its reading end is closed (POLLHUP for a socket).
fn watch_stdout() {
    use rustix::event::{poll, PollFd, PollFlags};
    use rustix::fs::FileType;
    let stdout = std::io::stdout();
    let piped = rustix::fs::fstat(&stdout).is_ok_and(|st| {
        matches!(
            FileType::from_raw_mode(st.st_mode),
            FileType::Fifo | FileType::Socket
        )
    });
    if !piped {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("stdout".into())
        .spawn(move || loop {
            let mut fds = [PollFd::new(&stdout, PollFlags::empty())];
            match poll(&mut fds, None) {
                Ok(_) if fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP) => {
                    std::process::exit(0)
                }
                // EINTR, or nothing that says the reader went: look again.
                _ => continue,
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot watch stdout: {e}");
    }
}

/// Diagnostics go to stderr; `SUPERGREP_LOG=debug` shows what the tailer does.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SUPERGREP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
