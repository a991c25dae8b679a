//! Which paths to follow: the targets (files and globs) expanded into paths not
//! followed yet, the directories watched for new ones, and how often the targets
//! are walked. Reads no file: the tailer opens what this finds.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::super::fs_events::{path_key, Watch};
use super::super::glob::Target;

/// How often targets are looked at for new files that events may not tell of.
pub(super) const DISCOVERY_INTERVAL: Duration = Duration::from_secs(1);

/// A path found that is not followed yet.
pub(super) struct Found {
    pub(super) key: PathBuf,
    pub(super) path: PathBuf,
    /// Named on the command line (not by a glob).
    pub(super) explicit: bool,
    pub(super) set: String,
}

pub(super) struct Discovery {
    targets: Vec<Target>,
    /// The set each target is in (its files' streams say it), in target order.
    target_sets: Vec<String>,
    /// Where relative paths start; `None` (unknown) turns every look into a full pass.
    cwd: Option<PathBuf>,
    /// Events tell of every file that appears where the targets look, as of the last
    /// [`Discovery::watch_dirs`]: see [`Discovery::interval`].
    events_cover_targets: bool,
}

impl Discovery {
    pub(super) fn new(targets: Vec<Target>, target_sets: Vec<String>) -> Discovery {
        Discovery {
            targets,
            target_sets,
            cwd: std::env::current_dir().ok(),
            events_cover_targets: false,
        }
    }

    /// The working directory is known (else events cannot name paths, and every
    /// look is a full pass).
    pub(super) fn knows_cwd(&self) -> bool {
        self.cwd.is_some()
    }

    /// `path` as file events name it (the path itself if the working directory is
    /// unknown; then every look is a full pass anyway).
    pub(super) fn key(&self, path: &Path) -> PathBuf {
        match &self.cwd {
            Some(cwd) => path_key(cwd, path),
            None => path.to_path_buf(),
        }
    }

    /// Watches the directories of every target; ones that do not exist yet are tried
    /// again on later discoveries.
    pub(super) fn watch_dirs(&mut self, watch: Option<&mut Watch>) {
        let mut covered = watch.is_some() && self.cwd.is_some();
        if let Some(watch) = watch {
            for t in &self.targets {
                covered &= watch.watch_dir(self.key(&t.watch_dir()), t.watch_depth());
            }
        }
        self.events_cover_targets = covered;
    }

    /// How often the targets are looked at for new files: every `DISCOVERY_INTERVAL`,
    /// or as seldom as every file is (`recheck`) when events tell of every file that
    /// appears (then the walk is only the safety net; it was a third of following
    /// 5,000 idle files).
    pub(super) fn interval(&self, recheck: Duration) -> Duration {
        if self.events_cover_targets {
            recheck
        } else {
            DISCOVERY_INTERVAL
        }
    }

    /// The paths the targets name now that `followed` does not know, each target's
    /// in name order, targets in order (a path two targets name comes twice: the
    /// first one's set has it).
    pub(super) fn find(&self, followed: impl Fn(&Path) -> bool) -> Vec<Found> {
        let mut found = Vec::new();
        for (target, set) in self.targets.iter().zip(&self.target_sets) {
            let explicit = matches!(target, Target::File(_));
            // Only new files are sorted (they are announced in name order): sorting
            // every path each second was a fifth of following 15,000 idle files.
            let mut new: Vec<(PathBuf, PathBuf)> = target
                .expand()
                .into_iter()
                .map(|path| (self.key(&path), path))
                .filter(|(key, _)| !followed(key))
                .collect();
            new.sort_unstable_by(|a, b| a.1.cmp(&b.1));
            found.extend(new.into_iter().map(|(key, path)| Found {
                key,
                path,
                explicit,
                set: set.clone(),
            }));
        }
        found
    }

    /// Every target is a glob (none names a file of its own).
    pub(super) fn only_globs(&self) -> bool {
        self.targets
            .iter()
            .all(|t| matches!(t, Target::Glob { .. }))
    }

    /// The targets as given, for messages.
    pub(super) fn patterns(&self) -> String {
        self.targets
            .iter()
            .map(|t| match t {
                Target::File(p) => p.display().to_string(),
                Target::Glob { pattern, .. } => pattern.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}
