//! The tailer followed through real file events (inotify, `notify`) and the
//! looks they ask for.

use std::path::Path;
use std::time::Duration;

use super::super::SourceEvent;
use super::*;
use anyhow::{bail, Context};

pub(super) fn target(arg: &str) -> anyhow::Result<Target> {
    Target::parse(arg).map_err(|e| anyhow::anyhow!("parsing target {arg}: {e}"))
}

/// Follows `targets` with periodic passes no test outlives: what arrives came
/// through file events and the looks they asked for (or through the passes a
/// test chooses: [`FollowedByEvents::polled`]). Lines come as "path: line".
struct FollowedByEvents {
    events: super::super::EventReceiver,
    runtime: tokio::runtime::Runtime,
}

impl FollowedByEvents {
    fn start(targets: Vec<Target>, from: FileEvents) -> anyhow::Result<FollowedByEvents> {
        let hour = Duration::from_secs(3600);
        FollowedByEvents::polled(targets, from, hour, hour)
    }

    /// With these intervals for the periodic passes (see [`TailConfig`]).
    fn polled(
        targets: Vec<Target>,
        from: FileEvents,
        poll_interval: Duration,
        recheck_interval: Duration,
    ) -> anyhow::Result<FollowedByEvents> {
        let (out, events) = super::super::events::channel(64);
        let config = TailConfig {
            poll_interval,
            recheck_interval,
            file_events: from,
            ..TailConfig::default()
        };
        spawn(targets, config, out).context("spawning the tailer")?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .context("building the test runtime")?;
        Ok(FollowedByEvents { events, runtime })
    }

    fn next(&mut self) -> anyhow::Result<SourceEvent> {
        let next = self.runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), self.events.recv()).await
        });
        match next {
            Ok(Some(event)) => Ok(event),
            Ok(None) => bail!("the tailer stopped"),
            Err(_) => bail!("nothing from the tailer in 10 s"),
        }
    }

    /// Waits until `n` files are followed (and so watched).
    fn following(&mut self, n: usize) -> anyhow::Result<()> {
        for _ in 0..n {
            assert!(matches!(self.next()?, SourceEvent::StreamAdded(_)));
        }
        Ok(())
    }

    /// The next `n` lines.
    fn lines(&mut self, n: usize) -> anyhow::Result<Vec<String>> {
        let mut got = Vec::new();
        while got.len() < n {
            if let SourceEvent::Lines(b) = self.next()? {
                got.extend(
                    String::from_utf8_lossy(&b.bytes)
                        .lines()
                        .map(|l| format!("{}: {l}", b.stream.path)),
                );
            }
        }
        Ok(got)
    }
}

/// Each source of file events this platform has.
fn every_source() -> Vec<FileEvents> {
    vec![
        #[cfg(target_os = "linux")]
        FileEvents::Inotify,
        FileEvents::Notify,
    ]
}

pub(super) fn append(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .with_context(|| format!("opening {} to append", path.display()))?;
    std::io::Write::write_all(&mut f, text.as_bytes())
        .with_context(|| format!("appending to {}", path.display()))?;
    Ok(())
}

#[test]
fn a_write_is_read_by_its_event_among_many_files() -> anyhow::Result<()> {
    for from in every_source() {
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        let glob = format!("{}/*.log", dir.path().display());
        let path = |i: usize| dir.path().join(format!("f{i}.log"));
        for i in 0..50 {
            std::fs::write(path(i), "").context("writing a test file")?;
        }
        let mut tail = FollowedByEvents::start(vec![target(&glob)?], from)?;
        tail.following(50)?;
        // Each write is found by the event naming its file: idle ones included.
        for (n, i) in [7, 7, 0, 49, 7, 23].into_iter().enumerate() {
            append(&path(i), &format!("line {n}\n"))?;
            let want = format!("{}: line {n}", path(i).display());
            assert_eq!(tail.lines(1)?, [want], "{from:?}");
        }
    }
    Ok(())
}

#[test]
fn a_rotated_away_file_is_still_drained_on_its_events() -> anyhow::Result<()> {
    for from in every_source() {
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        let path = dir.path().join("app.log");
        std::fs::write(&path, "").context("writing a test file")?;
        let mut tail = FollowedByEvents::start(vec![Target::File(path.clone())], from)?;
        tail.following(1)?;
        let mut writer = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .context("opening the followed file to append")?;
        std::io::Write::write_all(&mut writer, b"before\n")
            .context("writing through the open writer")?;
        let shown = path.display();
        assert_eq!(tail.lines(1)?, [format!("{shown}: before")], "{from:?}");
        std::fs::rename(&path, dir.path().join("app.log.1"))
            .context("renaming the followed file")?;
        std::fs::write(&path, "new file\n").context("writing a test file")?;
        assert_eq!(tail.lines(1)?, [format!("{shown}: new file")], "{from:?}");
        // The writer has not reopened yet: its lines go to the renamed file, which
        // no followed path names.
        std::io::Write::write_all(&mut writer, b"late\n")
            .context("writing through the open writer")?;
        assert_eq!(tail.lines(1)?, [format!("{shown}: late")], "{from:?}");
    }
    Ok(())
}

#[test]
fn globs_below_their_base_follow_new_directories_by_their_events() -> anyhow::Result<()> {
    // `**` (any depth) and `*/*/` (two levels below the base).
    for (pattern, sub) in [("**/*.log", "a/b"), ("*/*/*.log", "c/d")] {
        for from in every_source() {
            let dir = tempfile::tempdir().context("creating a temporary directory")?;
            let glob = format!("{}/{pattern}", dir.path().display());
            let mut tail = FollowedByEvents::start(vec![target(&glob)?], from)?;
            // Nothing to follow yet; a directory and a file in it appear.
            std::thread::sleep(Duration::from_millis(200));
            let sub = dir.path().join(sub);
            std::fs::create_dir_all(&sub).context("creating test directories")?;
            std::thread::sleep(Duration::from_millis(200));
            let path = sub.join("new.log");
            std::fs::write(&path, "first\n").context("writing a test file")?;
            tail.following(1)?;
            let shown = path.display();
            let at = format!("{pattern} {from:?}");
            assert_eq!(tail.lines(1)?, [format!("{shown}: first")], "{at}");
            append(&path, "second\n")?;
            assert_eq!(tail.lines(1)?, [format!("{shown}: second")], "{at}");
        }
    }
    Ok(())
}

/// Where events cannot tell of new files (the glob's base does not exist yet, so
/// nothing watches for it; a directory deeper than watches go), the targets are
/// still looked at for new files every `DISCOVERY_INTERVAL`, though every other
/// periodic look is an hour away.
#[test]
fn files_events_cannot_tell_of_are_discovered_by_the_periodic_look() -> anyhow::Result<()> {
    for from in every_source() {
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        let base = dir.path().join("later");
        let glob = format!("{}/**/*.log", base.display());
        let mut tail = FollowedByEvents::start(vec![target(&glob)?], from)?;
        std::thread::sleep(Duration::from_millis(200));
        std::fs::create_dir(&base).context("creating the glob base")?;
        let first = base.join("first.log");
        std::fs::write(&first, "first\n").context("writing a test file")?;
        tail.following(1)?;
        let at = format!("{from:?}");
        assert_eq!(
            tail.lines(1)?,
            [format!("{}: first", first.display())],
            "{at}"
        );
        // Deeper than any watch goes (`inotify::MAX_DEPTH`, 32).
        let deep = (0..40).fold(base.clone(), |p, i| p.join(format!("{i}")));
        std::fs::create_dir_all(&deep).context("creating test directories")?;
        // The looks the new directories' events ask for are over before the file
        // appears.
        std::thread::sleep(Duration::from_millis(300));
        let deep = deep.join("deep.log");
        std::fs::write(&deep, "deep\n").context("writing a test file")?;
        tail.following(1)?;
        assert_eq!(
            tail.lines(1)?,
            [format!("{}: deep", deep.display())],
            "{at}"
        );
    }
    Ok(())
}

/// Writes through a symlink to a file in an unwatched directory, and through a
/// second name of a file there, are read. Their directory's watch is not told of
/// them (writes are told to the directory they were made through).
fn read_through_other_names(from: FileEvents, poll_interval: Duration) -> anyhow::Result<()> {
    let (dir, elsewhere) = (
        tempfile::tempdir().context("creating a temporary directory")?,
        tempfile::tempdir().context("creating a temporary directory")?,
    );
    let real = elsewhere.path().join("real.log");
    let twin = elsewhere.path().join("twin.log");
    std::fs::write(&real, "").context("writing a test file")?;
    std::fs::write(&twin, "").context("writing a test file")?;
    std::os::unix::fs::symlink(&real, dir.path().join("link.log")).context("making a symlink")?;
    std::fs::hard_link(&twin, dir.path().join("twin.log")).context("making a hard link")?;
    let glob = format!("{}/*.log", dir.path().display());
    let mut tail = FollowedByEvents::polled(
        vec![target(&glob)?],
        from,
        poll_interval,
        Duration::from_secs(3600),
    )?;
    tail.following(2)?;
    let shown = |name: &str| dir.path().join(name).display().to_string();
    for _ in 0..2 {
        append(&real, "through the symlink\n")?;
        let want = format!("{}: through the symlink", shown("link.log"));
        assert_eq!(tail.lines(1)?, [want], "{from:?}");
        append(&twin, "through the other name\n")?;
        let want = format!("{}: through the other name", shown("twin.log"));
        assert_eq!(tail.lines(1)?, [want], "{from:?}");
    }
    Ok(())
}

#[test]
fn without_inotify_files_reached_through_other_names_are_polled() -> anyhow::Result<()> {
    read_through_other_names(FileEvents::Notify, Duration::from_millis(50))
}

#[cfg(target_os = "linux")]
#[test]
fn files_reached_through_other_names_get_watches_of_their_own() -> anyhow::Result<()> {
    // No periodic pass in the test's time: the file watches deliver.
    read_through_other_names(FileEvents::Inotify, Duration::from_secs(3600))
}

#[test]
fn a_symlinks_target_made_again_where_nothing_watches_is_polled() -> anyhow::Result<()> {
    // Rotated by rename: the target is missing for a while, and its new file
    // appears in a directory no watch covers.
    for from in every_source() {
        let (dir, elsewhere) = (
            tempfile::tempdir().context("creating a temporary directory")?,
            tempfile::tempdir().context("creating a temporary directory")?,
        );
        let real = elsewhere.path().join("0.log");
        std::fs::write(&real, "").context("writing a test file")?;
        let link = dir.path().join("app.log");
        std::os::unix::fs::symlink(&real, &link).context("making a symlink")?;
        let mut tail = FollowedByEvents::polled(
            vec![Target::File(link.clone())],
            from,
            Duration::from_millis(50),
            Duration::from_secs(3600),
        )?;
        tail.following(1)?;
        append(&real, "before\n")?;
        let shown = link.display();
        assert_eq!(tail.lines(1)?, [format!("{shown}: before")], "{from:?}");
        std::fs::rename(&real, elsewhere.path().join("0.log.1"))
            .context("renaming the followed file")?;
        // Long enough for the look the rename asks for to find nothing there.
        std::thread::sleep(Duration::from_millis(300));
        std::fs::write(&real, "after\n").context("writing a test file")?;
        assert_eq!(tail.lines(1)?, [format!("{shown}: after")], "{from:?}");
    }
    Ok(())
}

#[test]
fn every_file_is_rechecked_for_writes_no_event_reports() -> anyhow::Result<()> {
    // A second name given after the last look: the file still seems reported by
    // events, but writes through that name are told to another directory.
    for from in every_source() {
        let (dir, elsewhere) = (
            tempfile::tempdir().context("creating a temporary directory")?,
            tempfile::tempdir().context("creating a temporary directory")?,
        );
        let path = dir.path().join("app.log");
        std::fs::write(&path, "").context("writing a test file")?;
        let mut tail = FollowedByEvents::polled(
            vec![Target::File(path.clone())],
            from,
            Duration::from_secs(3600),
            Duration::from_millis(300),
        )?;
        tail.following(1)?;
        let twin = elsewhere.path().join("app.log");
        std::fs::hard_link(&path, &twin).context("making a hard link")?;
        append(&twin, "unseen by events\n")?;
        let want = format!("{}: unseen by events", path.display());
        assert_eq!(tail.lines(1)?, [want], "{from:?}");
    }
    Ok(())
}

/// The hub's stop: a tailer waiting on file events (no periodic look due for an
/// hour) ends when told, and its thread with it.
#[test]
fn a_stop_ends_the_tailer_waiting_on_file_events() -> anyhow::Result<()> {
    let hour = Duration::from_secs(3600);
    for from in every_source() {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("a.log");
        std::fs::write(&path, "one\n")?;
        let stop = Stop::new()?;
        let (out, mut events) = super::super::events::channel(64);
        let config = TailConfig {
            poll_interval: hour,
            recheck_interval: hour,
            file_events: from,
            stop: Some(stop.clone()),
            ..TailConfig::default()
        };
        let tailer = spawn(vec![target(&path.to_string_lossy())?], config, out)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?;
        let mut next = || {
            runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), events.recv()).await
            })
        };
        match next() {
            Ok(Some(SourceEvent::StreamAdded(_))) => {}
            other => bail!("{from:?}: not following a.log: {other:?}"),
        }
        stop.stop();
        // Its sender goes with its thread: the channel then says it is closed.
        loop {
            match next() {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(_) => bail!("{from:?}: the tailer did not stop within 10 s"),
            }
        }
        if tailer.join().is_err() {
            bail!("{from:?}: the tailer panicked");
        }
    }
    Ok(())
}
