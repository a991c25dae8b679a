//! `supergrep completions SHELL` and `supergrep man`: shell completions and man pages
//! generated from the clap definitions in [`crate::cli`], so they can never disagree
//! with the flags the binary takes (a hand-written page drifts with every flag added).

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs, ManArgs};

/// Writes the completion script for `args.shell` to stdout.
pub fn completions(args: &CompletionsArgs) -> std::io::Result<()> {
    let mut cmd = Cli::command();
    // Into a buffer first: `generate` panics when its writer fails (`| head`).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "supergrep", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)?;
    out.flush()
}

/// Writes the man page of `supergrep` to stdout, or with `--dir` one page per
/// command (`supergrep.1`, `supergrep-serve.1`, …) into that directory.
pub fn man(args: &ManArgs) -> std::io::Result<()> {
    let mut cmd = Cli::command();
    // Built, as `generate_to` builds it: the printed page is the same as the written
    // one (unbuilt, it listed a `supergrep-help(1)` that no page is written for).
    cmd.build();
    match &args.dir {
        Some(dir) => pages_into(cmd, dir),
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(cmd).render(&mut out)?;
            out.flush()
        }
    }
}

fn pages_into(cmd: clap::Command, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(cmd, dir)
}
