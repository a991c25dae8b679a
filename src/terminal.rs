//! Terminal mode: `supergrep -e PATTERN FILES…`. The same pipeline as the hub, in one
//! process: file tailer → hub → matcher with one subscription → terminal printer.

use std::io::{self, IsTerminal, Write};
use std::sync::Arc;

use crate::cli::{ColorWhen, GrepArgs};
use crate::exit::{Outcome, UsageError};
use crate::hub::{BatchMatches, Hub, Overflow, SinkKind, SinkQueue, Spans, Takes};
use crate::irc::{IrcOptions, IrcSetting, IrcSettings};
use crate::matcher::{Limits, StreamSelector, Subscription};
use crate::output::{Format, Printer, PrinterOptions};
use crate::source::glob::Target;
use crate::source::tail::{self, StartAt, Stop, TailConfig};

/// Everything decided from the arguments, before anything runs.
pub struct Plan {
    /// `--irc`: post matches to a channel too.
    irc: Option<IrcOptions>,
    /// `--connect`: the hub's URL and token, and how many recent matches to ask for.
    connect: Option<crate::connect::Remote>,
    subscription: Subscription,
    targets: Vec<Target>,
    /// Read standard input instead of files.
    stdin: bool,
    tail: TailConfig,
    printer: PrinterOptions,
    report: Report,
    /// `-B`, `-A` (`-C`): lines before and after each match.
    context: Option<(u64, u64)>,
}

/// What is printed: the lines, or (`-c`, `-l`) a summary per file at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Report {
    Lines,
    Count,
    FilesWithMatches,
}

impl Plan {
    pub fn new(args: &GrepArgs) -> Result<Plan, UsageError> {
        let mut include = args.patterns.clone();
        for file in &args.pattern_files {
            let text = crate::regular_file::read_to_string_or_pipe(file).map_err(|e| {
                UsageError(format!("cannot read patterns file {}: {e}", file.display()))
            })?;
            include.extend(crate::line::lines(&text).map(str::to_owned));
        }
        let shape = |patterns: &[String]| -> Vec<String> {
            patterns
                .iter()
                .map(|p| shape_pattern(p, args.fixed_strings, args.word_regexp))
                .collect()
        };
        let include = shape(&include);
        let exclude = shape(&args.exclude);
        if include.is_empty() {
            return Err(UsageError(
                "no pattern given: use -e PATTERN (or -e '' for every line), or -f FILE".into(),
            ));
        }
        // No PATH (or `-`): standard input, as grep reads it; unless it is a terminal,
        // where a forgotten PATH is likelier than typing log lines.
        let stdin = args.connect.is_none()
            && (args.paths.is_empty() || args.paths.iter().all(|p| p == "-"));
        if stdin && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            return Err(UsageError(
                "no file given: name one or more PATHs to follow (or pipe lines in)".into(),
            ));
        }
        if stdin && args.lines.is_some() {
            return Err(UsageError(
                "-n N does not apply to standard input, which is read once from where it \
                 stands: leave -n out (or use tail -n N FILE | supergrep …)"
                    .into(),
            ));
        }
        if !stdin && args.paths.iter().any(|p| p == "-") {
            return Err(UsageError(
                "- (standard input) cannot be read along with files".into(),
            ));
        }
        let targets = args
            .paths
            .iter()
            .filter(|_| !stdin)
            .map(|p| Target::parse(p).map_err(UsageError::of))
            .collect::<Result<Vec<_>, _>>()?;
        let report = match (args.count, args.files_with_matches) {
            (true, _) => Report::Count,
            (_, true) => Report::FilesWithMatches,
            _ => Report::Lines,
        };
        if report != Report::Lines && !(args.no_follow || stdin) {
            return Err(UsageError(
                "-c and -l report on whole files, so they need --no-follow (or standard input)"
                    .into(),
            ));
        }
        let format = Format::parse(&args.format).map_err(UsageError::of)?;
        let with_filename = if args.no_filename {
            false
        } else {
            args.with_filename
                || args.connect.is_some()
                || targets.len() > 1
                || targets.iter().any(|t| matches!(t, Target::Glob { .. }))
        };
        let color = match args.color {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            ColorWhen::Auto => {
                io::stdout().is_terminal()
                    // no-color.org: set and not empty.
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::env::var("TERM").map_or(true, |t| t != "dumb")
            }
        };
        let start = match (args.from_start, args.lines, args.no_follow) {
            (true, _, _) | (false, None, true) => StartAt::Beginning,
            (false, Some(n), _) => StartAt::LastLines(n),
            (false, None, false) => StartAt::LastLines(0),
        };
        let connect = args
            .connect
            .as_ref()
            .map(|url| {
                crate::connect::Remote::new(
                    url,
                    args.token.as_deref(),
                    args.tls_ca.as_deref(),
                    args.lines.unwrap_or(0),
                )
            })
            .transpose()
            .map_err(UsageError::of)?;
        let irc = args
            .irc
            .as_ref()
            .map(|url| {
                IrcOptions::new(IrcSettings {
                    url,
                    nick: &args.irc_nick,
                    color: args.irc_color,
                    format: Some(&args.irc_format),
                    rate_per_sec: args.irc_rate,
                    burst: args.irc_burst,
                    tls_ca: args.tls_ca.as_deref(),
                    include: &include,
                })
            })
            .transpose()
            .map_err(|e| match e.setting() {
                IrcSetting::Url => UsageError(e.to_string()),
                IrcSetting::Format => UsageError(format!("--irc-format: {e}")),
            })?;
        Ok(Plan {
            irc,
            connect,
            subscription: Subscription {
                include,
                exclude,
                ignore_case: args.ignore_case,
                streams: StreamSelector::all(),
            },
            targets,
            stdin,
            tail: TailConfig {
                start,
                // Standard input ends when its writer is done: then so does the
                // program, with grep's status.
                follow: !args.no_follow && !stdin,
                max_line: args.max_line as usize,
                ..TailConfig::default()
            },
            printer: PrinterOptions {
                format,
                with_filename,
                with_host: args.connect.is_some(),
                color,
                // A terminal obeys what a log line may carry (screen clears, OSC 52
                // clipboard writes): it sees them escaped. A pipe gets the bytes.
                escape: args.escape || io::stdout().is_terminal(),
            },
            context: match (
                args.before_context.or(args.context).unwrap_or(0),
                args.after_context.or(args.context).unwrap_or(0),
            ) {
                // -c and -l report on whole files, as grep's ignore context there.
                _ if report != Report::Lines => None,
                (0, 0) => None,
                around => Some(around),
            },
            report,
        })
    }

    /// Has `stop` end the following of files (SIGTERM, Ctrl-C): the tailer stops,
    /// what it read is matched and printed, then [`run`](Self::run) returns. Not
    /// for standard input (its read cannot be woken) nor `--connect`: `false`, and
    /// such a run is ended by exiting.
    pub fn stop_with(&mut self, stop: Stop) -> bool {
        if self.stdin || self.connect.is_some() || !self.tail.follow {
            return false;
        }
        self.tail.stop = Some(stop);
        true
    }

    /// Runs until the files end (`--no-follow`), stdout closes, its stop (see
    /// [`stop_with`](Self::stop_with)), or forever. Blocking.
    pub fn run(self) -> Result<Outcome, anyhow::Error> {
        let irc = self.irc.map(|options| {
            let kind = SinkKind {
                takes: Takes::Lines(Overflow::DropOldest),
                spans: Spans::wanted_if(options.color),
            };
            let queue = Arc::new(SinkQueue::new(1000, kind));
            (options, queue)
        });
        let irc_thread = match &irc {
            Some((options, queue)) => Some(spawn_irc(options.clone(), queue.clone())?),
            None => None,
        };
        if let Some(remote) = self.connect {
            let printer = Printer::new(stdout(), self.printer);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let irc_queue = irc.as_ref().map(|(_, q)| q.clone());
            return runtime.block_on(remote.run(&self.subscription, printer, irc_queue));
        }
        let printer = Printer::new(stdout(), self.printer);
        let kind = SinkKind {
            takes: match self.context {
                Some(_) => Takes::EveryBatch,
                None => Takes::MatchingBatches,
            },
            spans: Spans::wanted_if(printer.needs_spans()),
        };
        let sink = Arc::new(SinkQueue::new(4096, kind));
        let hub = Hub::new(Limits::default(), 0);
        // Held to the end of the run: dropping one would end its subscription.
        let _irc_subscriber = match &irc {
            Some((_, queue)) => {
                let mut subscriber = hub.subscriber(queue.clone());
                subscriber
                    .subscribe_blocking(self.subscription.clone(), 0)
                    .map_err(|e| UsageError(e.to_string()))?;
                Some(subscriber)
            }
            None => None,
        };
        let mut printer_subscriber = hub.subscriber(sink.clone());
        printer_subscriber
            .subscribe_blocking(self.subscription, 0)
            .map_err(|e| UsageError(e.to_string()))?;

        // Small: each batch may hold up to `read_chunk` bytes.
        let (tx, rx) = crate::source::events::channel(16);
        let mut tail_config = self.tail;
        let nothing_to_follow = tail_config.follow && never_followable(&self.targets);
        if nothing_to_follow {
            // One pass says what is wrong with each PATH, then we end (status 2),
            // instead of waiting for a directory to become a file.
            tail_config.follow = false;
        }
        let follow = tail_config.follow;
        let only_new = tail_config.start == StartAt::LastLines(0);
        let tailer = if self.stdin {
            tail::spawn_stdin(tail_config, tx)?
        } else {
            tail::spawn(self.targets.clone(), tail_config, tx)?
        };
        let ingest = {
            let hub = hub.clone();
            std::thread::Builder::new()
                .name("ingest".into())
                .spawn(move || hub.run_ingest(rx))?
        };

        let quiet_since_start = Arc::new(std::sync::atomic::AtomicBool::new(true));
        if follow && !self.stdin && only_new {
            hint_when_quiet(quiet_since_start.clone());
        }
        let printed = match self.report {
            Report::Lines => {
                let context = self
                    .context
                    .map(|(b, a)| crate::context::Context::new(b, a));
                print_all(printer, &sink, context, &quiet_since_start)?
            }
            report => summarize(printer, &sink, report, &self.targets, &hub)?,
        };
        let printed = match printed {
            // Nobody reads any more: we are done, whatever the other threads do.
            Printed::StdoutClosed => return Ok(Outcome::Matched),
            Printed::All(n) => n,
        };
        // Input done: let the other threads wind down.
        sink.close();
        let summary = tailer.join().unwrap_or_default();
        let _ = ingest.join();
        // Not following: let the IRC sink post what it still has.
        if let Some(t) = irc_thread {
            let _ = t.join();
        }
        if nothing_to_follow {
            crate::say!("supergrep: no PATH can be followed");
        }
        Ok(match (follow, printed, summary.errors) {
            (true, _, _) => Outcome::Matched,
            (false, _, e) if e > 0 => Outcome::FileErrors,
            (false, 0, _) => Outcome::NoMatch,
            (false, _, _) => Outcome::Matched,
        })
    }
}

/// A pattern as the matcher gets it (here and on a hub: no protocol change): `-F`
/// makes it literal, `-w` makes it match whole words only. grep's `-w` asks that the
/// match be neither preceded nor followed by a word character (a pattern may begin or
/// end with a non-word one, `-w '@home'`), which is what the half word boundaries say
/// (`\b{start-half}`: no word character before; `\b\b` around `@home` would need one).
fn shape_pattern(pattern: &str, fixed: bool, word: bool) -> String {
    let p = if fixed {
        regex_syntax::escape(pattern)
    } else {
        pattern.to_owned()
    };
    // A pattern that does not compile is left as it is, so the error names it (and
    // its position) as the user wrote it.
    if word && regex_syntax::parse(&p).is_ok() {
        format!(r"\b{{start-half}}(?:{p})\b{{end-half}}")
    } else {
        p
    }
}

/// Whether every PATH names something that exists and will never be a file to follow:
/// a directory, a FIFO, a device. (A missing file may appear; a glob may match later.)
fn never_followable(targets: &[Target]) -> bool {
    !targets.is_empty()
        && targets.iter().all(|t| match t {
            Target::File(path) => std::fs::metadata(path).is_ok_and(|m| !m.is_file()),
            Target::Glob { .. } => false,
        })
}

/// Stdout, block-buffered: the printers flush whenever they have nothing more to
/// print right now, which is line buffering for a reader that waits on us. (Rust's
/// own stdout is line-buffered: one write system call per matching line.)
fn stdout() -> io::BufWriter<io::StdoutLock<'static>> {
    io::BufWriter::with_capacity(64 << 10, io::stdout().lock())
}

/// Following the new lines of a quiet log prints nothing, which looks like a hang to
/// someone at a terminal: after a moment of silence one dim line on stderr says what
/// is going on, once. Never when stderr is not a terminal.
fn hint_when_quiet(quiet: Arc<std::sync::atomic::AtomicBool>) {
    if !io::stderr().is_terminal() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("hint".into())
        .spawn(move || {
            std::thread::sleep(std::time::Duration::from_secs(2));
            if quiet.load(std::sync::atomic::Ordering::Relaxed) {
                crate::say!(
                    "\x1b[2msupergrep: following; only new lines are shown \
                     (-n N: the last N lines first, --from-start: all)\x1b[0m"
                );
            }
        });
    if let Err(e) = spawned {
        tracing::debug!("no quiet hint: {e}");
    }
}

/// Runs an IRC sink on a thread of its own until its queue closes.
fn spawn_irc(
    options: IrcOptions,
    queue: Arc<SinkQueue>,
) -> io::Result<std::thread::JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("irc".into())
        .spawn(move || runtime.block_on(crate::irc::run(options, queue, None)))
}

enum Printed {
    /// Everything, this many lines.
    All(u64),
    StdoutClosed,
}

/// `-c`, `-l`: counts until the queue closes, then prints per file (in the order of
/// the PATHs; `-c` also files with no match, as grep).
fn summarize<W: Write>(
    mut printer: Printer<W>,
    sink: &SinkQueue,
    report: Report,
    targets: &[Target],
    hub: &Hub,
) -> io::Result<Printed> {
    let mut counts: Vec<(Arc<crate::line::Stream>, u64)> = Vec::new();
    let mut total = 0;
    while let Some(taken) = sink.take_blocking::<BatchMatches>(1024) {
        for batch in &taken.matches {
            let n = batch.lines.len() as u64;
            total += n;
            let stream = &batch.entry.batch.stream;
            match counts.iter_mut().find(|(s, _)| s.id == stream.id) {
                Some((_, c)) => *c += n,
                None => counts.push((stream.clone(), n)),
            }
        }
    }
    for stream in hub.streams() {
        if !counts.iter().any(|(s, _)| s.id == stream.id) {
            counts.push((stream, 0));
        }
    }
    // The PATH that named it first (a glob's files in name order).
    let rank = |path: &str| {
        let named = targets
            .iter()
            .position(|t| matches!(t, Target::File(p) if p.as_os_str() == path));
        (named.unwrap_or(usize::MAX), path.to_owned())
    };
    counts.sort_by_cached_key(|(s, _)| rank(&s.path));
    let result = counts.iter().try_for_each(|(stream, n)| match report {
        Report::Count => printer.summary_line(&stream.path, Some(*n)),
        _ if *n > 0 => printer.summary_line(&stream.path, None),
        _ => Ok(()),
    });
    match result.and_then(|()| printer.flush()) {
        Ok(()) => Ok(Printed::All(total)),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(Printed::StdoutClosed),
        Err(e) => Err(e),
    }
}

/// Prints until the queue closes or stdout does.
fn print_all<W: Write>(
    mut printer: Printer<W>,
    sink: &SinkQueue,
    mut context: Option<crate::context::Context>,
    quiet: &std::sync::atomic::AtomicBool,
) -> io::Result<Printed> {
    let mut printed = 0;
    // The sink takes matches where their batches hold them (`Takes::*Batch*`).
    while let Some(taken) = sink.take_blocking::<BatchMatches>(1024) {
        let lines: u64 = taken.matches.iter().map(|b| b.lines.len() as u64).sum();
        let result = match &mut context {
            Some(context) => taken
                .matches
                .iter()
                .try_for_each(|b| context.print(&mut printer, b).map(drop)),
            None => taken
                .matches
                .iter()
                .flat_map(|b| b.iter())
                .try_for_each(|(line, spans)| printer.print(line, spans)),
        }
        // Flushing whenever the queue runs dry is line buffering for a reader that
        // waits on us, and block buffering when we are the ones behind.
        .and_then(|()| printer.flush());
        match result {
            Ok(()) => {
                printed += lines;
                if lines > 0 {
                    quiet.store(false, std::sync::atomic::Ordering::Relaxed);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(Printed::StdoutClosed),
            Err(e) => return Err(e),
        }
    }
    Ok(Printed::All(printed))
}
