use std::process::ExitCode;

use clap::Parser;
use supergrep::cli::Cli;
use supergrep::terminal::{Outcome, Plan, UsageError};

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let plan = match Plan::new(&cli.grep) {
        Ok(plan) => plan,
        Err(e) => return usage_error(&e),
    };
    watch_signals();
    match plan.run() {
        Ok(Outcome::Matched) => ExitCode::SUCCESS,
        Ok(Outcome::NoMatch) => ExitCode::from(1),
        Ok(Outcome::FileErrors) => ExitCode::from(2),
        Err(e) => match e.downcast_ref::<UsageError>() {
            Some(u) => usage_error(u),
            None => {
                eprintln!("supergrep: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}

fn usage_error(e: &UsageError) -> ExitCode {
    eprintln!("supergrep: {e}");
    ExitCode::from(2)
}

/// Ctrl-C and SIGTERM end the program normally (status 0): output is flushed as it
/// is written, so there is nothing to save.
fn watch_signals() {
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
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            runtime.block_on(async {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    Some(_) = async { term.as_mut()?.recv().await } => {}
                }
            });
            std::process::exit(0);
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot watch for signals: {e}");
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
