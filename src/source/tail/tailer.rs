//! The tailer's thread: when to look at what. Waits for file events or the next
//! periodic look, then has discovery find new paths and the followed paths take
//! their steps; removes the paths that are gone.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::events::Closed;
use super::super::fs_events::{Pending, Watch};
use super::super::glob::Target;
use super::super::{EventSender, SourceEvent};
use super::discovery::Discovery;
use super::files::Files;
use super::followed::{Env, Followed};
use super::{TailConfig, TailSummary};
use crate::line::Stream;

/// Stats a second the recheck of files whose writes events report costs at most:
/// 5,000 files every 2 s, 50,000 every 20 s. It is a net for writes no event tells
/// of; on a big tree its cost would otherwise dwarf everything else the tailer does
/// while idle.
const RECHECK_STATS: f64 = 2500.0;

/// Which files a periodic pass looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Look {
    Every,
    /// Those whose writes events may not report, and those with rotated-away
    /// handles still being drained.
    Unreported,
}

pub(super) struct Tailer {
    pub(super) discovery: Discovery,
    pub(super) files: Files,
    pub(super) env: Env,
    /// Some file is looked at every poll interval: its writes events may not
    /// report, or it has rotated-away handles being drained. Recomputed by every
    /// pass over the files; set by any look between them that finds such a file.
    some_polled: bool,
}

impl Tailer {
    pub(super) fn new(
        targets: Vec<Target>,
        target_sets: Vec<String>,
        config: TailConfig,
        out: EventSender,
    ) -> Self {
        Tailer {
            discovery: Discovery::new(targets, target_sets),
            files: Files::default(),
            env: Env::new(config, out),
            some_polled: true,
        }
    }

    pub(super) fn run(mut self) -> TailSummary {
        if self.env.config.follow {
            self.start_watcher();
        }
        let _ = self.pass(true, Look::Every);
        if !self.env.config.follow {
            return self.env.summary;
        }
        let now = Instant::now();
        let (mut last_discovery, mut last_poll, mut last_every) = (now, now, now);
        let poll_interval = self.env.config.poll_interval;
        loop {
            // The next periodic look due; the frequent one only while some file
            // needs it (an idle process then wakes every few seconds, not 4 times
            // a second).
            let due = [
                last_discovery.checked_add(self.discovery_interval()),
                last_every.checked_add(self.recheck_interval()),
                last_poll
                    .checked_add(poll_interval)
                    .filter(|_| self.some_polled),
            ];
            let next = due.into_iter().flatten().min();
            let pending = self.wait(next.map(|t| t.saturating_duration_since(Instant::now())));
            if self
                .env
                .config
                .stop
                .as_ref()
                .is_some_and(|s| s.is_stopped())
            {
                tracing::debug!("tailer: stopped");
                break;
            }
            if pending.rescan || last_discovery.elapsed() >= self.discovery_interval() {
                last_discovery = Instant::now();
                self.discovery.watch_dirs(self.env.watch.as_mut());
                if self.discover(false).is_err() {
                    break;
                }
            }
            let every = pending.rescan
                || self.env.watch.is_none()
                || !self.discovery.knows_cwd()
                || last_every.elapsed() >= self.recheck_interval();
            let looked = if every {
                (last_every, last_poll) = (Instant::now(), Instant::now());
                self.pass(false, Look::Every)
            } else if self.some_polled && last_poll.elapsed() >= poll_interval {
                last_poll = Instant::now();
                self.pass_changed(&pending.changed)
                    .and_then(|()| self.pass(false, Look::Unreported))
            } else {
                self.pass_changed(&pending.changed)
            };
            if looked.is_err() {
                break;
            }
        }
        self.env.summary
    }

    /// How often every file is looked at: the configured interval, longer when there
    /// are so many files that the net would cost more than `RECHECK_STATS` stats a
    /// second.
    fn recheck_interval(&self) -> Duration {
        let by_count = Duration::from_secs_f64(self.files.len() as f64 / RECHECK_STATS);
        self.env.config.recheck_interval.max(by_count)
    }

    fn discovery_interval(&self) -> Duration {
        self.discovery.interval(self.recheck_interval())
    }

    /// Sleeps until a file event or for `timeout` (the next periodic look; `None`:
    /// none is due, the intervals being too long to count); says what the events
    /// asked for.
    fn wait(&mut self, timeout: Option<Duration>) -> Pending {
        let timeout = timeout.unwrap_or(Duration::from_secs(3600));
        match &mut self.env.watch {
            Some(watch) => watch.wait(timeout),
            None => {
                match &self.env.config.stop {
                    Some(stop) => stop.sleep(timeout),
                    None => std::thread::sleep(timeout),
                }
                Pending::default()
            }
        }
    }

    fn start_watcher(&mut self) {
        match Watch::start(self.env.config.file_events, self.env.config.stop.as_ref()) {
            Ok(w) => {
                self.env.watch = Some(w);
                self.discovery.watch_dirs(self.env.watch.as_mut());
            }
            Err(e) => tracing::warn!("file events unavailable ({e}); polling instead"),
        }
    }

    /// Adds the files the targets name now.
    fn discover(&mut self, startup: bool) -> Result<(), Closed> {
        let files = &self.files;
        let found = self
            .discovery
            .find(|key| files.find(key.as_os_str()).is_some());
        for found in found {
            // Two targets can name one path: the first one's set has it.
            if self.files.find(found.key.as_os_str()).is_some() {
                continue;
            }
            let stream = Arc::new(Stream::new(
                self.env.config.host.clone(),
                found.path.to_string_lossy(),
                found.set,
            ));
            let i = self
                .files
                .add(Followed::new(found.path, found.key, stream, found.explicit));
            // Not following, each file is opened when its turn comes (see `pass`).
            if self.env.config.follow {
                self.files.open(i, startup, &mut self.env)?;
                // Found by the periodic look, not by an event (which asks for a full
                // pass): what it holds is read now, not on the next pass.
                if !startup {
                    self.files.check(i, &mut self.env)?;
                    self.some_polled |= self.files.get(i).polled();
                }
            }
        }
        Ok(())
    }

    /// One look at the files `look` names: discover on the first pass, then read
    /// what is new.
    pub(super) fn pass(&mut self, first: bool, look: Look) -> Result<(), Closed> {
        if first {
            self.discover(true)?;
            if self.discovery.only_globs() && self.files.is_empty() {
                crate::say!("supergrep: no file matches {}", self.discovery.patterns());
                // As grep does for a missing file; following, later files may match.
                if !self.env.config.follow {
                    self.env.summary.errors += 1;
                }
            }
        }
        let mut gone = Vec::new();
        let mut some_polled = false;
        for i in 0..self.files.len() {
            if look == Look::Unreported && !self.files.get(i).polled() {
                continue;
            }
            if !self.env.config.follow {
                self.files.read_to_end(i, &mut self.env)?;
                continue;
            }
            self.files.check(i, &mut self.env)?;
            let f = self.files.get(i);
            some_polled |= f.polled();
            if f.is_gone(&self.env.config) {
                gone.push(i);
            }
        }
        self.some_polled = some_polled;
        if look == Look::Every {
            self.files.recount_held();
        }
        for i in gone.into_iter().rev() {
            let f = self.files.remove(i);
            if let Some(watch) = &mut self.env.watch {
                watch.unwatch_file(&f.key);
            }
            if f.announced {
                self.env.send(SourceEvent::StreamRemoved(f.stream))?;
            }
        }
        Ok(())
    }

    /// Looks only at the files events said were written to. A written path that names
    /// no followed file can be a rotated-away one still being drained: then those are
    /// read too.
    pub(super) fn pass_changed(&mut self, changed: &[PathBuf]) -> Result<(), Closed> {
        let mut unknown = false;
        for key in changed {
            match self.files.find(key.as_os_str()) {
                Some(i) => {
                    self.files.check(i, &mut self.env)?;
                    self.some_polled |= self.files.get(i).polled();
                }
                None => unknown = true,
            }
        }
        if unknown {
            for i in 0..self.files.len() {
                let f = self.files.get_mut(i);
                if !f.draining.is_empty() {
                    f.drain(&mut self.env)?;
                }
            }
        }
        Ok(())
    }
}
