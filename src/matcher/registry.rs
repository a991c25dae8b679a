//! The live set of subscriptions behind a hub: changes rebuild a [`Matcher`] off the
//! hot path and swap it in atomically, so matching never waits on a subscriber.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use arc_swap::ArcSwap;

use super::{CompileError, Limits, Matcher, PatternCache, SubKey, Subscription};

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
        self.set_and(key, sub, |swap| swap())
    }

    /// As [`set`](Self::set), but the swap of the new matcher happens inside
    /// `around_swap` (which must call it), so a caller can make it atomic with
    /// something of its own; the slow rebuild happens before, outside of it.
    pub fn set_and<R>(
        &self,
        key: SubKey,
        sub: Subscription,
        around_swap: impl FnOnce(&dyn Fn()) -> R,
    ) -> Result<R, CompileError> {
        let mut inner = self.lock();
        let old = inner.subs.insert(key, sub);
        match self.build(&mut inner) {
            Ok(matcher) => Ok(around_swap(&|| self.current.store(matcher.clone()))),
            Err(e) => {
                match old {
                    Some(old) => inner.subs.insert(key, old),
                    None => inner.subs.remove(&key),
                };
                Err(e)
            }
        }
    }

    /// Compiles `sub` alone (sharing compiled patterns with the live set), e.g. to
    /// search the backlog for a new subscriber.
    pub fn compile_one(&self, sub: &Subscription) -> Result<Matcher, CompileError> {
        let mut inner = self.lock();
        let m = Matcher::build([(0, sub)], &mut inner.cache, &self.limits);
        inner.cache.retain_used();
        m
    }

    /// Removes every subscription whose key `doomed` picks; says how many went.
    pub fn remove_where(&self, doomed: impl Fn(SubKey) -> bool) -> usize {
        let mut inner = self.lock();
        let before = inner.subs.len();
        inner.subs.retain(|&k, _| !doomed(k));
        let removed = before - inner.subs.len();
        if removed > 0 {
            // Fewer subscriptions than a matcher that already compiled cannot fail.
            if let Err(e) = self.rebuild(&mut inner) {
                tracing::error!("matcher rebuild after removal failed: {e}");
            }
        }
        removed
    }

    pub fn remove(&self, key: SubKey) -> bool {
        self.remove_where(|k| k == key) > 0
    }

    /// (rebuild count, total rebuild time in microseconds), for /metrics.
    pub fn rebuild_stats(&self) -> (u64, u64) {
        (
            self.rebuilds.load(Ordering::Relaxed),
            self.rebuild_micros.load(Ordering::Relaxed),
        )
    }

    fn rebuild(&self, inner: &mut Inner) -> Result<(), CompileError> {
        let matcher = self.build(inner)?;
        self.current.store(matcher);
        Ok(())
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
    fn set_replace_remove_and_failed_set_keeps_old() {
        let r = Registry::new(Limits::default());
        let s = Stream::new("h", "/p", "default");
        let mut scratch = Scratch::default();
        r.set(1, sub("a")).unwrap();
        r.set(2, sub("b")).unwrap();
        assert_eq!(r.matcher().matching(&s, "ab", &mut scratch), [1, 2]);
        r.set(1, sub("c")).unwrap();
        assert_eq!(r.matcher().matching(&s, "ab", &mut scratch), [2]);
        assert!(r.set(1, sub("(")).is_err());
        assert_eq!(r.matcher().matching(&s, "c", &mut scratch), [1]);
        assert!(r.remove(1));
        assert!(r.matcher().matching(&s, "c", &mut scratch).is_empty());
        assert_eq!(r.rebuild_stats().0, 4);
    }
}
