//! The followed paths, by key, and which file (device, inode) each holds open: one
//! handle per file, whatever its names, or lines would be read twice. Opening a
//! path's file is decided here for that reason, and where reading starts.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::path::Path;

use super::super::events::Closed;
use super::followed::{Draining, Env, Followed, Next};
use super::handle::start_of_last_lines;
use super::resume::{self, Start};
use super::StartAt;

#[derive(Default)]
pub(super) struct Files {
    list: Vec<Followed>,
    /// Files by `Followed::key`, as bytes: keys are normalized, so equal paths are
    /// equal bytes, and hashing bytes is much cheaper than hashing a `Path` (by its
    /// components), which discovery does for every file it finds.
    index: HashMap<OsString, usize>,
    /// Not following: the files (device, inode) read already, each once whatever
    /// its names.
    read_once: HashSet<(u64, u64)>,
    /// The files (device, inode) any handle may be open on: every one opened since
    /// the last full pass, which rebuilds it. A file not in it is held by no other
    /// path, which spares opening it a look at every followed file (30,000 files
    /// took 1.6 s to start, three quarters of it in those looks).
    maybe_held: HashSet<(u64, u64)>,
}

impl Files {
    pub(super) fn len(&self) -> usize {
        self.list.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub(super) fn get(&self, i: usize) -> &Followed {
        &self.list[i]
    }

    pub(super) fn get_mut(&mut self, i: usize) -> &mut Followed {
        &mut self.list[i]
    }

    /// The path of this key, if followed.
    pub(super) fn find(&self, key: &OsStr) -> Option<usize> {
        self.index.get(key).copied()
    }

    /// Follows another path; its index.
    pub(super) fn add(&mut self, f: Followed) -> usize {
        let i = self.list.len();
        self.index.insert(f.key.clone().into_os_string(), i);
        self.list.push(f);
        i
    }

    /// Stops following path `i` (the last one takes its index).
    pub(super) fn remove(&mut self, i: usize) -> Followed {
        let f = self.list.swap_remove(i);
        self.index.remove(f.key.as_os_str());
        if let Some(moved) = self.list.get(i) {
            self.index.insert(moved.key.clone().into_os_string(), i);
        }
        f
    }

    /// After a look at every path: only what is open now may be held.
    pub(super) fn recount_held(&mut self) {
        self.maybe_held.clear();
        let open = self.list.iter().flat_map(Followed::handles);
        self.maybe_held.extend(open.map(|h| h.id()));
    }

    /// One look at path `i`: reads what is new, follows rotation and truncation.
    pub(super) fn check(&mut self, i: usize, env: &mut Env) -> Result<(), Closed> {
        if self.list[i].look(env)? == Next::Open {
            self.open(i, false, env)?;
            self.list[i].read_current(env, None)?;
        }
        Ok(())
    }

    /// Not following: opens path `i`, reads it to its end and closes it, so that any
    /// number of files can be read with few descriptors (as grep does).
    pub(super) fn read_to_end(&mut self, i: usize, env: &mut Env) -> Result<(), Closed> {
        self.open(i, true, env)?;
        let f = &mut self.list[i];
        if f.current().is_none() {
            return Ok(());
        }
        // Just opened: no rotation or truncation to look for (a look would stat it
        // again for that).
        f.read_current(env, None)?;
        f.finish(env)?;
        if let Some(h) = f.close() {
            self.read_once.insert(h.id());
        }
        Ok(())
    }

    /// Opens path `i`'s file if it exists now (nothing is open for it); at startup
    /// existing files start per config.
    pub(super) fn open(&mut self, i: usize, startup: bool, env: &mut Env) -> Result<(), Closed> {
        let Some((mut handle, meta)) = self.list[i].try_open(env) else {
            return Ok(());
        };
        let path = self.list[i].path.clone();
        // The same file under another name (rotated to a name a glob matches, a
        // symlink pointed back, a second link): one handle per file, or lines would
        // be read twice.
        let id = handle.id();
        if self.read_once.contains(&id) {
            tracing::debug!(path = %path.display(), "read already under another name");
            return Ok(());
        }
        // Not following, no other handle is open (`read_once` is the record); a
        // file no handle may be open on needs no look at the others.
        let held = if env.config.follow && !self.maybe_held.insert(id) {
            self.holder(id)
        } else {
            None
        };
        match held {
            Some((j, None)) if j != i => {
                tracing::debug!(path = %path.display(), other = %self.list[j].path.display(), "same file as another path; not reading it twice");
                return Ok(());
            }
            Some((j, Some(k))) => {
                // A handle still being drained: carry on from where it is.
                let held = self.list[j].draining.swap_remove(k).handle;
                tracing::debug!(path = %path.display(), offset = held.offset, "following (file seen before under this or another name)");
                return self.list[i].adopt(env, held);
            }
            _ => {}
        }
        let start = match (startup, env.config.start) {
            (true, _) if env.config.resume.contains_key(&path) => {
                Ok(self.resume_start(i, &path, &mut handle, &meta, env))
            }
            (true, StartAt::LastLines(n)) => {
                // Not following, an unterminated last line is printed at the end, so
                // it counts as one of the n.
                start_of_last_lines(&handle.file, meta.len(), n, !env.config.follow)
            }
            _ => Ok(0),
        };
        if let Err(e) = start.and_then(|at| handle.seek(at)) {
            self.list[i].report(env, e.kind(), &e.to_string());
            return Ok(());
        }
        tracing::debug!(path = %path.display(), offset = handle.offset, "following");
        self.list[i].adopt(env, handle)
    }

    /// Where path `i`'s file starts, at start-up, when an earlier run noted the path
    /// (see [`resume`]); sets the handle's epoch. A file rotated away meanwhile is
    /// drained from where it was left, before the new one.
    fn resume_start(
        &mut self,
        i: usize,
        path: &Path,
        handle: &mut super::handle::Handle,
        meta: &std::fs::Metadata,
        env: &Env,
    ) -> u64 {
        let Some(noted) = env.config.resume.get(path) else {
            return 0;
        };
        match noted.start(&handle.file, meta) {
            Start::Continue { offset, epoch } => {
                handle.epoch = epoch;
                offset
            }
            Start::Over { epoch } => {
                handle.epoch = epoch;
                0
            }
            Start::OtherFile => {
                if let Some(old) = resume::rotated_away(path, noted) {
                    self.maybe_held.insert(old.id());
                    self.list[i].draining.push(Draining::new(old));
                }
                0
            }
        }
    }

    /// Which followed path holds a handle on the file `id`: its index, and `Some(k)`
    /// when it is its k-th draining handle rather than its current one.
    fn holder(&self, id: (u64, u64)) -> Option<(usize, Option<usize>)> {
        self.list.iter().enumerate().find_map(|(j, f)| {
            if f.current().is_some_and(|h| h.id() == id) {
                return Some((j, None));
            }
            f.draining
                .iter()
                .position(|d| d.handle.id() == id)
                .map(|k| (j, Some(k)))
        })
    }
}
