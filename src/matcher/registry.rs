//! The live set of subscriptions behind a hub: changes rebuild a [`Matcher`] off the
//! hot path and swap it in atomically, so matching never waits on a subscriber.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use arc_swap::ArcSwap;

use super::{CompileError, Limits, Matcher, PatternCache, SubKey, Subscription};

/// One change to the set of subscriptions.
#[derive(Clone)]
pub enum Change {
    /// Add or replace.
    Set(SubKey, Subscription),
    /// Remove every subscription whose key this picks (e.g. all of one client's).
    Remove(Arc<dyn Fn(SubKey) -> bool + Send + Sync>),
}

impl std::fmt::Debug for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Set(key, _) => write!(f, "Set({key})"),
            Change::Remove(_) => write!(f, "Remove(..)"),
        }
    }
}

impl Change {
    /// Applies the change, recording in `undo` what it replaced.
    fn apply(
        &self,
        subs: &mut BTreeMap<SubKey, Subscription>,
        undo: &mut Vec<(SubKey, Option<Subscription>)>,
    ) {
        match self {
            Change::Set(key, sub) => undo.push((*key, subs.insert(*key, sub.clone()))),
            Change::Remove(doomed) => {
                let keys: Vec<SubKey> = subs.keys().copied().filter(|&k| doomed(k)).collect();
                for key in keys {
                    undo.push((key, subs.remove(&key)));
                }
            }
        }
    }

    fn revert(
        subs: &mut BTreeMap<SubKey, Subscription>,
        undo: Vec<(SubKey, Option<Subscription>)>,
    ) {
        for (key, old) in undo.into_iter().rev() {
            match old {
                Some(old) => subs.insert(key, old),
                None => subs.remove(&key),
            };
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    subs: BTreeMap<SubKey, Subscription>,
    cache: PatternCache,
}

#[derive(Debug)]
pub struct Registry {
    inner: Mutex<Inner>,
    current: ArcSwap<Matcher>,
    limits: Limits,
    rebuilds: AtomicU64,
    rebuild_micros: AtomicU64,
}

impl Registry {
    pub fn new(limits: Limits) -> Registry {
        Registry {
            inner: Mutex::default(),
            current: ArcSwap::from_pointee(Matcher::empty()),
            limits,
            rebuilds: AtomicU64::new(0),
            rebuild_micros: AtomicU64::new(0),
        }
    }

    /// The matcher to use now; cheap, never blocks on a rebuild.
    pub fn matcher(&self) -> Arc<Matcher> {
        self.current.load_full()
    }

    /// Adds `sub` under `key`, replacing one already there. On error nothing changes.
    pub fn set(&self, key: SubKey, sub: Subscription) -> Result<(), CompileError> {
        let mut results = self.apply(vec![Change::Set(key, sub)], |swap| swap());
        results.pop().unwrap_or(Ok(()))
    }

    pub fn remove(&self, key: SubKey) -> bool {
        let before = self.lock().subs.len();
        let _ = self.apply(vec![Change::Remove(Arc::new(move |k| k == key))], |swap| {
            swap()
        });
        self.lock().subs.len() < before
    }

    /// Applies `changes` with one rebuild, the swap of the new matcher inside
    /// `around_swap` (which must call it, so a caller can make the swap atomic with
    /// something of its own, e.g. a snapshot of what was ingested before it); the slow
    /// rebuild happens before, outside of it. Many subscribers arriving at once (every
    /// tab of a restarted hub reconnecting) cost one rebuild, not one each.
    ///
    /// One result per change, in order. When the changes do not compile together
    /// (one has a bad pattern, or all of them exceed a limit) they are applied one at
    /// a time instead, so each failing change is refused alone and the others stand.
    pub fn apply<R: Clone>(
        &self,
        changes: Vec<Change>,
        around_swap: impl Fn(&dyn Fn()) -> R,
    ) -> Vec<Result<R, CompileError>> {
        let mut inner = self.lock();
        let mut undo = Vec::new();
        for change in &changes {
            change.apply(&mut inner.subs, &mut undo);
        }
        match self.build(&mut inner) {
            Ok(matcher) => {
                let r = around_swap(&|| self.current.store(matcher.clone()));
                return changes.iter().map(|_| Ok(r.clone())).collect();
            }
            Err(e) if changes.len() == 1 => {
                Change::revert(&mut inner.subs, undo);
                return vec![Err(e)];
            }
            Err(_) => Change::revert(&mut inner.subs, undo),
        }
        changes
            .iter()
            .map(|change| {
                let mut undo = Vec::new();
                change.apply(&mut inner.subs, &mut undo);
                match self.build(&mut inner) {
                    Ok(matcher) => Ok(around_swap(&|| self.current.store(matcher.clone()))),
                    Err(e) => {
                        Change::revert(&mut inner.subs, undo);
                        Err(e)
                    }
                }
            })
            .collect()
    }

    /// Compiles `sub` alone (sharing compiled patterns with the live set), e.g. to
    /// search the backlog for a new subscriber.
    pub fn compile_one(&self, sub: &Subscription) -> Result<Matcher, CompileError> {
        let mut inner = self.lock();
        let m = Matcher::build([(0, sub)], &mut inner.cache, &self.limits);
        inner.cache.retain_used();
        m
    }

    /// How many subscriptions there are (applied ones).
    pub fn len(&self) -> usize {
        self.lock().subs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (rebuild count, total rebuild time in microseconds), for /metrics.
    pub fn rebuild_stats(&self) -> (u64, u64) {
        (
            self.rebuilds.load(Ordering::Relaxed),
            self.rebuild_micros.load(Ordering::Relaxed),
        )
    }

    fn build(&self, inner: &mut Inner) -> Result<Arc<Matcher>, CompileError> {
        let started = Instant::now();
        let Inner { subs, cache } = inner;
        let matcher = Matcher::build(subs.iter().map(|(&k, s)| (k, s)), cache, &self.limits)?;
        cache.retain_used();
        self.rebuilds.fetch_add(1, Ordering::Relaxed);
        self.rebuild_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        Ok(Arc::new(matcher))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (we only swap whole
        // values in), so a poisoned lock is safe to keep using.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::Stream;
    use crate::matcher::Scratch;

    fn sub(p: &str) -> Subscription {
        Subscription {
            include: vec![p.to_owned()],
            ..Subscription::default()
        }
    }

    #[test]
    fn set_replace_remove_and_failed_set_keeps_old() -> anyhow::Result<()> {
        let r = Registry::new(Limits::default());
        let s = Stream::new("h", "/p", "default");
        let mut scratch = Scratch::default();
        r.set(1, sub("a"))?;
        r.set(2, sub("b"))?;
        assert_eq!(r.matcher().matching(&s, "ab", &mut scratch), [1, 2]);
        r.set(1, sub("c"))?;
        assert_eq!(r.matcher().matching(&s, "ab", &mut scratch), [2]);
        assert!(r.set(1, sub("(")).is_err());
        assert_eq!(r.matcher().matching(&s, "c", &mut scratch), [1]);
        assert!(r.remove(1));
        assert!(r.matcher().matching(&s, "c", &mut scratch).is_empty());
        assert_eq!(r.rebuild_stats().0, 4);
        Ok(())
    }

    #[test]
    fn many_changes_cost_one_rebuild_and_a_bad_one_is_refused_alone() {
        let r = Registry::new(Limits::default());
        let s = Stream::new("h", "/p", "default");
        let mut scratch = Scratch::default();
        let changes = (1..=100)
            .map(|k| Change::Set(k, sub(&format!("w{k}x"))))
            .collect();
        let results = r.apply(changes, |swap| swap());
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(r.rebuild_stats().0, 1);
        assert_eq!(r.matcher().matching(&s, "w7x w70x", &mut scratch), [7, 70]);

        let changes = vec![
            Change::Set(200, sub("good")),
            Change::Set(201, sub("(bad")),
            Change::Remove(Arc::new(|k| k <= 50)),
        ];
        let results = r.apply(changes, |swap| swap());
        assert!(results[0].is_ok() && results[2].is_ok());
        assert!(results[1]
            .as_ref()
            .is_err_and(|e| e.to_string().contains("(bad")));
        assert_eq!(r.len(), 51);
        assert_eq!(
            r.matcher().matching(&s, "w7x w70x good", &mut scratch),
            [70, 200]
        );
    }
}
