//! The life of a followed path, step by step: the transition table, and the tricky
//! paths through it on real files, each look taken by hand (no thread, no file
//! events: what a look does, not when it comes).

use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::Context;

use super::super::events::{channel, EventReceiver};
use super::super::glob::Target;
use super::super::SourceEvent;
use super::followed::{transition, Seen, State};
use super::tailer::{Look, Tailer};
use super::tests::{append, target};
use super::{StartAt, TailConfig};

#[test]
fn the_transition_table() {
    let denied = || std::io::Error::from(std::io::ErrorKind::PermissionDenied);
    let same = |truncated| Seen::Same { len: 9, truncated };
    let step = |open, seen| format!("{:?}", transition(open, seen));
    assert_eq!(step(false, Seen::File), "Open");
    assert_eq!(step(false, Seen::Missing), "Wait");
    assert_eq!(
        step(false, Seen::Unreachable(denied())),
        "Report(Kind(PermissionDenied))"
    );
    assert_eq!(step(true, same(false)), "Read { to: 9 }");
    assert_eq!(step(true, same(true)), "Restart { to: 9 }");
    assert_eq!(step(true, Seen::File), "Rotated");
    assert_eq!(step(true, Seen::Missing), "Vanished");
    assert_eq!(step(true, Seen::Unreachable(denied())), "Vanished");
    // Only an open file can be the same one: nothing open, a file there.
    assert_eq!(step(false, same(false)), "Open");
}

/// A tailer whose looks a test takes ([`Steps::look`]), its events collected.
struct Steps {
    tailer: Tailer,
    events: EventReceiver,
    runtime: tokio::runtime::Runtime,
}

impl Steps {
    /// Following `targets` from their beginning; the first pass taken.
    fn start(targets: Vec<Target>, retire_after: Duration) -> anyhow::Result<Steps> {
        let (out, events) = channel(1024);
        let config = TailConfig {
            start: StartAt::Beginning,
            retire_after,
            ..TailConfig::default()
        };
        let sets = vec![config.set.clone(); targets.len()];
        let mut steps = Steps {
            tailer: Tailer::new(targets, sets, config, out),
            events,
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .context("building the test runtime")?,
        };
        steps
            .tailer
            .pass(true, Look::Every)
            .map_err(|_| anyhow::anyhow!("the events' receiver is gone"))?;
        Ok(steps)
    }

    /// A look at every path.
    fn look(&mut self) -> anyhow::Result<()> {
        self.tailer
            .pass(false, Look::Every)
            .map_err(|_| anyhow::anyhow!("the events' receiver is gone"))
    }

    /// The events sent so far (each is in the channel once its send returned).
    fn events(&mut self) -> Vec<SourceEvent> {
        let events = &mut self.events;
        self.runtime.block_on(async {
            let mut got = Vec::new();
            while let Ok(Some(event)) = tokio::time::timeout(Duration::ZERO, events.recv()).await {
                got.push(event);
            }
            got
        })
    }

    /// The lines sent so far, each with the epoch of its batch, and what else came
    /// (`+path`: stream added, `-path`: removed).
    fn said(&mut self) -> Vec<String> {
        let mut said = Vec::new();
        for event in self.events() {
            match event {
                SourceEvent::Lines(b) => {
                    let epoch = b.origin.map_or(0, |o| o.epoch);
                    let text = String::from_utf8_lossy(&b.bytes);
                    said.extend(text.lines().map(|l| format!("{l} @{epoch}")));
                }
                SourceEvent::StreamAdded(s) => said.push(format!("+{}", s.path)),
                SourceEvent::StreamRemoved(s) => said.push(format!("-{}", s.path)),
                SourceEvent::Receipt { .. } => said.push("receipt".to_owned()),
            }
        }
        said
    }

    /// How many old handles path `i` drains, and whether it reads a file now.
    fn shape(&self, i: usize) -> (usize, bool) {
        let f = self.tailer.files.get(i);
        (f.draining.len(), matches!(f.state, State::Reading(_)))
    }
}

fn rename(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::rename(from, to).with_context(|| format!("renaming {}", from.display()))
}

const LONG: Duration = Duration::from_secs(3600);

#[test]
fn truncated_and_refilled_to_the_same_length_is_a_new_epoch() -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let path = dir.path().join("app.log");
    std::fs::write(&path, "aaaa\nbb").context("writing the test file")?;
    let mut steps = Steps::start(vec![Target::File(path.clone())], LONG)?;
    let added = format!("+{}", path.display());
    assert_eq!(steps.said(), [added.as_str(), "aaaa @0"]);
    // copytruncate, then as much written again: only the content tells.
    std::fs::write(&path, "cccc\ndd").context("refilling the test file")?;
    // Its modification time told apart from the first write's (timestamps can be
    // coarser than the two writes are apart).
    let file = std::fs::File::options()
        .write(true)
        .open(&path)
        .context("opening the test file")?;
    let later = SystemTime::now() + Duration::from_secs(10);
    file.set_modified(later)
        .context("setting the modification time")?;
    steps.look()?;
    // The held-back line of the old content comes out, then the new from its start.
    assert_eq!(steps.said(), ["bb @0", "cccc @1"]);
    append(&path, "\n")?;
    steps.look()?;
    assert_eq!(steps.said(), ["dd @1"]);
    // Shorter than what was read: from the start again.
    std::fs::write(&path, "e\n").context("truncating the test file")?;
    steps.look()?;
    assert_eq!(steps.said(), ["e @2"]);
    Ok(())
}

#[test]
fn rotated_twice_while_the_first_is_draining_reads_all_three() -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let (path, one, two) = (
        dir.path().join("app.log"),
        dir.path().join("app.log.1"),
        dir.path().join("app.log.2"),
    );
    std::fs::write(&path, "first 1\n").context("writing the test file")?;
    let mut steps = Steps::start(vec![Target::File(path.clone())], LONG)?;
    assert_eq!(steps.said().len(), 2);
    // logrotate's rename+create, twice; the writers reopen late.
    rename(&path, &one)?;
    std::fs::write(&path, "second 1\n").context("writing the second file")?;
    steps.look()?;
    assert_eq!(steps.said(), ["second 1 @0"]);
    assert_eq!(steps.shape(0), (1, true));
    rename(&one, &two)?;
    rename(&path, &one)?;
    std::fs::write(&path, "third 1\n").context("writing the third file")?;
    append(&two, "first 2\n")?;
    steps.look()?;
    assert_eq!(steps.said(), ["first 2 @0", "third 1 @0"]);
    assert_eq!(steps.shape(0), (2, true));
    append(&one, "second 2\n")?;
    append(&two, "first 3\n")?;
    append(&path, "third 2\n")?;
    steps.look()?;
    // The old ones in the order they were rotated away, then the current one.
    assert_eq!(steps.said(), ["first 3 @0", "second 2 @0", "third 2 @0"]);
    Ok(())
}

#[test]
fn the_same_file_back_at_its_path_goes_on_from_its_draining_handle() -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let (path, away) = (dir.path().join("app.log"), dir.path().join("app.log.1"));
    std::fs::write(&path, "one\npar").context("writing the test file")?;
    let mut steps = Steps::start(vec![Target::File(path.clone())], LONG)?;
    assert_eq!(steps.said()[1..], ["one @0"]);
    rename(&path, &away)?;
    steps.look()?;
    assert_eq!(steps.said(), Vec::<String>::new());
    assert_eq!(steps.shape(0), (1, false));
    // Written to under the other name, then renamed back: the same inode.
    append(&away, "tial\n")?;
    rename(&away, &path)?;
    steps.look()?;
    assert_eq!(steps.said(), ["partial @0"]);
    assert_eq!(steps.shape(0), (0, true));
    append(&path, "two\n")?;
    steps.look()?;
    assert_eq!(steps.said(), ["two @0"]);
    Ok(())
}

#[test]
fn a_globbed_path_gone_is_removed_once_drained_and_a_named_one_waits() -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let (globbed, named) = (dir.path().join("g.log"), dir.path().join("named.txt"));
    std::fs::write(&globbed, "g\nunfinished").context("writing the test file")?;
    std::fs::write(&named, "n\n").context("writing the test file")?;
    let glob = target(&format!("{}/*.log", dir.path().display()))?;
    // Old handles are closed on the first look that finds them idle.
    let mut steps = Steps::start(vec![glob, Target::File(named.clone())], Duration::ZERO)?;
    assert_eq!(steps.said().len(), 4);
    std::fs::remove_file(&globbed).context("deleting the globbed file")?;
    std::fs::remove_file(&named).context("deleting the named file")?;
    steps.look()?;
    assert_eq!(steps.said(), Vec::<String>::new());
    assert_eq!((steps.shape(0), steps.shape(1)), ((1, false), (1, false)));
    steps.look()?;
    // The held-back line comes out when its handle is closed; then the globbed
    // path is gone, the named one waits for its file.
    let removed = format!("-{}", globbed.display());
    assert_eq!(steps.said(), ["unfinished @0", removed.as_str()]);
    assert_eq!(steps.tailer.files.len(), 1);
    assert_eq!(steps.shape(0), (0, false));
    std::fs::write(&named, "back\n").context("writing the named file again")?;
    steps.look()?;
    assert_eq!(steps.said(), ["back @0"]);
    Ok(())
}
