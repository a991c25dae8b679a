//! Every command-line flag, in one place (DESIGN §3 is the contract).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "supergrep",
    version,
    about = "Follow log files and print the lines that match, as they are written.",
    long_about = "Follow log files (tail -F style: rotation, truncation and re-creation are \
                  handled) and print the lines that match any of the patterns, as they are \
                  written. Patterns use the syntax of the Rust regex crate.",
    after_help = "Examples:\n  \
        supergrep -e 'Failed password' -e 'Invalid user' /var/log/auth.log\n  \
        supergrep -i -e error -v healthcheck '/var/log/app/*.log'\n  \
        supergrep -e 'HTTP/1.1\" 5\\d\\d' --format json access.log | my-bot\n  \
        supergrep --no-follow -e timeout big.log\n\n\
        Exit status: 0 on a normal end (Ctrl-C, closed pipe; with --no-follow: a line matched),\n\
        1 with --no-follow when no line matched, 2 on a usage error, an invalid pattern,\n\
        when no PATH can be followed (only directories or FIFOs), or (with --no-follow)\n\
        a file that could not be read or a glob that matched nothing."
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub grep: GrepArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub: web UI and WebSocket API over the followed files.
    #[command(after_help = crate::config::KEYS_HELP)]
    Serve(ServeArgs),
    /// Follow files here and ship their lines to a hub, without loss or duplicates.
    Agent(AgentArgs),
    /// Announce an event (a deploy, say) to every viewer of a hub.
    Mark(MarkArgs),
    /// Print the shell completion script for SHELL (e.g. `supergrep completions bash >
    /// /etc/bash_completion.d/supergrep`).
    Completions(CompletionsArgs),
    /// Print the man page (`supergrep man | man -l -`), or write one page per command
    /// into a directory (`--dir`).
    Man(ManArgs),
}

#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Clone, Args)]
pub struct ManArgs {
    /// Write supergrep.1, supergrep-serve.1, … into DIR instead of printing supergrep.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    /// The hub, e.g. ws://loghub:7070 (wss:// for TLS); or --nats.
    #[arg(
        long,
        value_name = "URL",
        required_unless_present = "nats",
        conflicts_with = "nats"
    )]
    pub hub: Option<String>,

    #[command(flatten)]
    pub cluster: crate::cluster::NatsArgs,

    /// This host's name on the hub [default: the machine's hostname].
    #[arg(long, value_name = "HOST")]
    pub name: Option<String>,

    /// Log set name of these files on the hub.
    #[arg(long, value_name = "SET", default_value = "default")]
    pub set: String,

    /// Token, when the hub has one.
    #[arg(long, value_name = "TOKEN", env = "SUPERGREP_TOKEN")]
    pub token: Option<String>,

    /// Keep the offsets the hub (or JetStream) acknowledged in FILE, so a restarted
    /// agent resumes where it stopped (nothing sent twice, nothing skipped).
    #[arg(long, value_name = "FILE")]
    pub state_file: Option<PathBuf>,

    /// Keep retrying when the hub refuses the token (default: exit with status 2).
    #[arg(long)]
    pub retry_auth: bool,

    /// Also trust the CA certificate(s) in FILE (PEM) for wss:// and ircs://, beside
    /// the system's (a self-signed hub, an internal CA).
    #[arg(long, value_name = "FILE", env = "SUPERGREP_TLS_CA")]
    pub tls_ca: Option<PathBuf>,

    /// Files or globs to ship.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct MarkArgs {
    /// The hub, e.g. ws://loghub:7070 (wss:// for TLS); or --nats.
    #[arg(
        long,
        value_name = "URL",
        required_unless_present = "nats",
        conflicts_with = "nats"
    )]
    pub hub: Option<String>,

    #[command(flatten)]
    pub cluster: crate::cluster::NatsArgs,

    /// Token, when the hub has one.
    #[arg(long, value_name = "TOKEN", env = "SUPERGREP_TOKEN")]
    pub token: Option<String>,

    /// Also trust the CA certificate(s) in FILE (PEM) for wss:// and ircs://, beside
    /// the system's (a self-signed hub, an internal CA).
    #[arg(long, value_name = "FILE", env = "SUPERGREP_TLS_CA")]
    pub tls_ca: Option<PathBuf>,

    /// What happened, e.g. "deploy 4521 by dog".
    #[arg(value_name = "TEXT", required = true, num_args = 1..)]
    pub text: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:7070, or `listen` in the config].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// TOML config file (see the keys below).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Require this token from clients (`/ws?token=…`); overrides the config's.
    #[arg(long, value_name = "TOKEN", env = "SUPERGREP_TOKEN")]
    pub token: Option<String>,

    /// Serve HTTPS and wss:// with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Also follow built-in sample logs that grow steadily (set `demo`), to try it out.
    #[arg(long)]
    pub demo: bool,

    /// Accept syslog messages over UDP on this address (e.g. 127.0.0.1:5514).
    #[arg(long, value_name = "ADDR")]
    pub syslog_udp: Option<SocketAddr>,

    /// Accept syslog messages over TCP (octet-counted or newline-framed) on this address.
    #[arg(long, value_name = "ADDR")]
    pub syslog_tcp: Option<SocketAddr>,

    /// Lines kept for backlog and context requests [default: 100000, or the config's].
    #[arg(long, value_name = "LINES")]
    pub backlog: Option<u64>,

    /// Files or globs to follow, as the log set `default` (besides the config's sets).
    #[arg(value_name = "PATH")]
    pub paths: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct GrepArgs {
    /// A pattern to look for (repeatable: a line matches when any matches).
    #[arg(short = 'e', long = "pattern", value_name = "PATTERN")]
    pub patterns: Vec<String>,

    /// Read patterns from FILE, one per line (as grep -f; an empty line matches every line).
    #[arg(short = 'f', long = "patterns-file", value_name = "FILE")]
    pub pattern_files: Vec<PathBuf>,

    /// Leave out lines that match this pattern (repeatable).
    #[arg(short = 'v', long = "exclude", value_name = "PATTERN")]
    pub exclude: Vec<String>,

    /// Match without regard to case.
    #[arg(short = 'i', long)]
    pub ignore_case: bool,

    /// Patterns (-e, -f and -v) are literal text, not regular expressions.
    #[arg(short = 'F', long)]
    pub fixed_strings: bool,

    /// A match must be a whole word: not preceded or followed by a letter, digit or _
    /// (as grep -w; applies to -e, -f and -v).
    #[arg(short = 'w', long)]
    pub word_regexp: bool,

    /// Output format: text, json (one object per line, the fields of a WebSocket `lines`
    /// entry), or a template such as '{host} {path}: {text}' (fields: seq, ts, host, path,
    /// set, stream, text; {{ and }} for braces).
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    pub format: String,

    /// Prefix each line with its file name (the default with more than one file or a glob).
    #[arg(short = 'H', long = "with-filename", overrides_with = "no_filename")]
    pub with_filename: bool,

    /// Never prefix lines with their file name.
    #[arg(long = "no-filename", overrides_with = "with_filename")]
    pub no_filename: bool,

    /// Print only a count of matching lines per file (`path:count`; needs --no-follow
    /// unless reading standard input).
    #[arg(short = 'c', long, conflicts_with = "files_with_matches")]
    pub count: bool,

    /// Print only the name of each file with a matching line (needs --no-follow unless
    /// reading standard input).
    #[arg(short = 'l', long)]
    pub files_with_matches: bool,

    /// Print NUM lines after each match too (as they arrive, when following); `--`
    /// between groups that are not adjacent.
    #[arg(short = 'A', long, value_name = "NUM", conflicts_with = "connect", value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub after_context: Option<u64>,

    /// Print NUM lines before each match too.
    #[arg(short = 'B', long, value_name = "NUM", conflicts_with = "connect", value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub before_context: Option<u64>,

    /// Print NUM lines before and after each match (-A and -B override it).
    #[arg(short = 'C', long, value_name = "NUM", conflicts_with = "connect", value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub context: Option<u64>,

    /// Read files from their beginning, then follow them.
    #[arg(long)]
    pub from_start: bool,

    /// Read to the end and exit, as grep does (from the beginning unless -n is given).
    #[arg(long)]
    pub no_follow: bool,

    /// Start with the last N lines of each file (default: only new lines).
    #[arg(
        short = 'n',
        long = "lines",
        value_name = "N",
        conflicts_with = "from_start"
    )]
    pub lines: Option<u64>,

    /// Colour file names and matches.
    #[arg(long, value_enum, value_name = "WHEN", default_value = "auto")]
    pub color: ColorWhen,

    /// Write control characters from the logs visibly (ESC as \x1b) even when stdout
    /// is not a terminal (on a terminal they always are; tab is left as it is).
    #[arg(long)]
    pub escape: bool,

    /// Cut lines longer than this many bytes (and mark them).
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024, value_parser = clap::value_parser!(u64).range(16..=(64 << 20)))]
    pub max_line: u64,

    /// Take matches from a hub (`supergrep serve`) instead of local files, e.g.
    /// ws://loghub:7070 or wss://loghub:7443. Reconnects by itself; -n N asks for N recent matches first.
    #[arg(long, value_name = "URL", conflicts_with_all = ["paths", "from_start", "no_follow"])]
    pub connect: Option<String>,

    /// Token for the hub (with --connect).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "SUPERGREP_TOKEN",
        requires = "connect"
    )]
    pub token: Option<String>,

    /// Also trust the CA certificate(s) in FILE (PEM) for wss:// and ircs://, beside
    /// the system's (a self-signed hub, an internal CA).
    #[arg(long, value_name = "FILE", env = "SUPERGREP_TLS_CA")]
    pub tls_ca: Option<PathBuf>,

    /// Also post matches to an IRC channel:
    /// irc[s]://[nick[:password]@]host[:port]/#channel[?key=KEY] (ircs: TLS, port
    /// 6697 by default). Flood-controlled: the excess becomes one summary line.
    #[arg(long, value_name = "URL")]
    pub irc: Option<String>,

    /// Nick for --irc (`_` is appended while it is taken).
    #[arg(
        long,
        value_name = "NICK",
        default_value = "supergrep",
        requires = "irc"
    )]
    pub irc_nick: String,

    /// Matched text in bold red on IRC (mIRC colours).
    #[arg(long, requires = "irc")]
    pub irc_color: bool,

    /// How a match reads on IRC (template fields as for --format).
    #[arg(
        long,
        value_name = "TEMPLATE",
        default_value = "{host} {path}: {text}",
        requires = "irc"
    )]
    pub irc_format: String,

    /// IRC messages per second at most, on average.
    #[arg(long, value_name = "N", default_value_t = 1.0, requires = "irc", value_parser = positive_rate)]
    pub irc_rate: f64,

    /// IRC messages that may go at once before the rate applies.
    #[arg(long, value_name = "N", default_value_t = 4, requires = "irc")]
    pub irc_burst: u32,

    /// Files to follow; globs such as '/var/log/*.log' (quoted) also pick up files
    /// created later.
    #[arg(value_name = "PATH")]
    pub paths: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

/// An `--irc-rate` that is not a number above 0.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a rate above 0 (messages a second, e.g. 0.5)")]
pub struct NotARate(String);

/// `--irc-rate`: a number of messages a second above 0 (0, or NaN, posted nothing
/// after the first burst, not even the summary of what was held back).
fn positive_rate(s: &str) -> Result<f64, NotARate> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(NotARate(s.to_owned())),
    }
}
