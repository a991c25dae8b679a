//! The live set of subscriptions behind a hub: changes rebuild a [`Matcher`] off the
//! hot path and swap it in atomically, so matching never waits on a subscriber.
//!
//! A subscription can be compiled beforehand, off the thread that rebuilds
//! ([`Registry::compile`]), so that one slow compile does not hold up the others'
//! subscribes: the rebuild then only puts already compiled patterns together. That is
//! also where its cost is judged ([`cost`](super::cost)): a costly subscription is left
//! out of the shared matcher and gets a matcher of its own ([`Registry::isolated`]),
//! which the hub runs apart.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use arc_swap::ArcSwap;

use super::cost::{self, Placement};
use super::{
    CompileError, Limits, Matcher, Pattern, PatternCache, PatternKey, SubKey, Subscription,
};

/// One change to the set of subscriptions.
#[derive(Clone)]
pub enum Change {
    /// Add or replace (compiled by the rebuild, always into the shared matcher).
    /// The hub compiles first ([`Change::SetCompiled`]); tests use this.
    #[cfg(test)]
    Set(SubKey, Subscription),
    /// Add or replace with what [`Registry::compile`] made of it.
    SetCompiled(SubKey, Arc<Compiled>),
    /// Remove every subscription whose key this picks (e.g. all of one client's).
    Remove(Arc<dyn Fn(SubKey) -> bool + Send + Sync>),
}

impl std::fmt::Debug for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            #[cfg(test)]
            Change::Set(key, _) => write!(f, "Set({key})"),
            Change::SetCompiled(key, c) => write!(f, "SetCompiled({key}, {:?})", c.placement),
            Change::Remove(_) => write!(f, "Remove(..)"),
        }
    }
}

/// A subscription compiled ahead of its rebuild.
#[derive(Debug)]
pub struct Compiled {
    pub sub: Subscription,
    /// Its patterns, held so that no rebuild in between forgets them (and read for
    /// their size only).
    _patterns: Vec<Arc<Pattern>>,
    pub placement: Placement,
    /// The subscription alone, under its key: it evaluates an isolated subscription,
    /// and searches the backlog for a new subscriber.
    pub alone: Option<Arc<Matcher>>,
}

impl Compiled {
    /// The compiled size of its patterns (each once), in bytes.
    pub fn compiled_bytes(&self) -> usize {
        self._patterns.iter().map(|p| p.memory_usage()).sum()
    }

    /// Its matcher when it is evaluated apart.
    fn isolated(&self) -> Option<&Arc<Matcher>> {
        match self.placement {
            Placement::Isolated(_) => self.alone.as_ref(),
            Placement::Shared => None,
        }
    }
}

/// A subscription as the registry holds it.
#[derive(Debug, Clone)]
struct Live {
    sub: Subscription,
    compiled: Option<Arc<Compiled>>,
}

impl Live {
    fn isolated(&self) -> Option<&Arc<Matcher>> {
        self.compiled.as_ref().and_then(|c| c.isolated())
    }
}

type Subs = BTreeMap<SubKey, Live>;

impl Change {
    /// Applies the change, recording in `undo` what it replaced.
    fn apply(&self, subs: &mut Subs, undo: &mut Vec<(SubKey, Option<Live>)>) {
        match self {
            #[cfg(test)]
            Change::Set(key, sub) => {
                let live = Live {
                    sub: sub.clone(),
                    compiled: None,
                };
                undo.push((*key, subs.insert(*key, live)));
            }
            Change::SetCompiled(key, compiled) => {
                let live = Live {
                    sub: compiled.sub.clone(),
                    compiled: Some(compiled.clone()),
                };
                undo.push((*key, subs.insert(*key, live)));
            }
            Change::Remove(doomed) => {
                let keys: Vec<SubKey> = subs.keys().copied().filter(|&k| doomed(k)).collect();
                for key in keys {
                    undo.push((key, subs.remove(&key)));
                }
            }
        }
    }

    fn revert(subs: &mut Subs, undo: Vec<(SubKey, Option<Live>)>) {
        for (key, old) in undo.into_iter().rev() {
            match old {
                Some(old) => subs.insert(key, old),
                None => subs.remove(&key),
            };
        }
    }
}

/// The subscriptions evaluated apart: key and matcher, in key order.
pub type Isolated = Vec<(SubKey, Arc<Matcher>)>;

#[derive(Debug)]
pub struct Registry {
    subs: Mutex<Subs>,
    /// Its own lock: compiles ahead of a rebuild take it only to look up and add.
    cache: Mutex<PatternCache>,
    current: ArcSwap<Matcher>,
    isolated: ArcSwap<Isolated>,
    limits: Limits,
    rebuilds: AtomicU64,
    rebuild_micros: AtomicU64,
}

impl Registry {
    pub fn new(limits: Limits) -> Registry {
        Registry {
            subs: Mutex::default(),
            cache: Mutex::default(),
            current: ArcSwap::from_pointee(Matcher::empty()),
            isolated: ArcSwap::default(),
            limits,
            rebuilds: AtomicU64::new(0),
            rebuild_micros: AtomicU64::new(0),
        }
    }

    /// The shared matcher to use now; cheap, never blocks on a rebuild.
    pub fn matcher(&self) -> Arc<Matcher> {
        self.current.load_full()
    }

    /// The subscriptions evaluated apart now (swapped in with [`matcher`](Self::matcher)).
    pub fn isolated(&self) -> Arc<Isolated> {
        self.isolated.load_full()
    }

    /// Adds `sub` under `key`, replacing one already there. On error nothing changes.
    #[cfg(test)]
    pub fn set(&self, key: SubKey, sub: Subscription) -> Result<(), CompileError> {
        let mut results = self.apply(vec![Change::Set(key, sub)], |swap| swap());
        results.pop().unwrap_or(Ok(()))
    }

    #[cfg(test)]
    pub fn remove(&self, key: SubKey) -> bool {
        let before = self.lock().len();
        let _ = self.apply(vec![Change::Remove(Arc::new(move |k| k == key))], |swap| {
            swap()
        });
        self.lock().len() < before
    }

    /// Compiles `sub` for [`Change::SetCompiled`] without holding up rebuilds or
    /// other compiles (patterns compiled already are shared). With `may_isolate` its
    /// cost decides where it is evaluated; `alone` asks for its own matcher (to
    /// search the backlog), which an isolated one gets anyway. `within` is asked
    /// the compiled size of its patterns so far after each (a subscriber's budget):
    /// its error stops the compile, so one subscribe cannot compile gigabytes
    /// before it is refused.
    pub fn compile(
        &self,
        key: SubKey,
        sub: Subscription,
        may_isolate: bool,
        alone: bool,
        within: &dyn Fn(usize) -> Result<(), CompileError>,
    ) -> Result<Compiled, CompileError> {
        let mut patterns: Vec<Arc<Pattern>> = Vec::new();
        let mut bytes = 0usize;
        for source in sub.include.iter().chain(&sub.exclude) {
            let pk = PatternKey {
                source: source.clone(),
                ignore_case: sub.ignore_case,
            };
            if patterns.iter().any(|p| p.key == pk) {
                continue;
            }
            if patterns.len() >= self.limits.max_patterns {
                return Err(CompileError::TooManyPatterns {
                    count: patterns.len() + 1,
                    limit: self.limits.max_patterns,
                });
            }
            let cached = self.lock_cache().cached(&pk);
            let p = match cached {
                Some(p) => p,
                None => {
                    let limits = &self.limits;
                    let p =
                        Pattern::compile_within(pk, limits.max_pattern_len, limits.pattern_size)?;
                    self.lock_cache().insert(Arc::new(p))
                }
            };
            bytes = bytes.saturating_add(p.memory_usage());
            patterns.push(p);
            within(bytes)?;
        }
        let placement = if may_isolate {
            cost::placement(&patterns)
        } else {
            Placement::Shared
        };
        let alone = if alone || placement != Placement::Shared {
            let mut own = PatternCache::default();
            for p in &patterns {
                own.insert(p.clone());
            }
            Some(Arc::new(Matcher::build(
                [(key, &sub)],
                &mut own,
                &self.limits,
            )?))
        } else {
            None
        };
        Ok(Compiled {
            sub,
            _patterns: patterns,
            placement,
            alone,
        })
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
        let mut subs = self.lock();
        let mut undo = Vec::new();
        for change in &changes {
            change.apply(&mut subs, &mut undo);
        }
        let swap_in = |(matcher, isolated): &(Arc<Matcher>, Arc<Isolated>)| {
            around_swap(&|| {
                self.current.store(matcher.clone());
                self.isolated.store(isolated.clone());
            })
        };
        match self.build(&subs) {
            Ok(built) => {
                let r = swap_in(&built);
                return changes.iter().map(|_| Ok(r.clone())).collect();
            }
            Err(e) if changes.len() == 1 => {
                Change::revert(&mut subs, undo);
                return vec![Err(e)];
            }
            Err(_) => Change::revert(&mut subs, undo),
        }
        changes
            .iter()
            .map(|change| {
                let mut undo = Vec::new();
                change.apply(&mut subs, &mut undo);
                match self.build(&subs) {
                    Ok(built) => Ok(swap_in(&built)),
                    Err(e) => {
                        Change::revert(&mut subs, undo);
                        Err(e)
                    }
                }
            })
            .collect()
    }

    /// How many subscriptions there are (applied ones).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Distinct compiled patterns held (the live subscriptions' and those being
    /// compiled): what a rebuild after subscriptions went has given back.
    pub fn cached_patterns(&self) -> usize {
        self.lock_cache().len()
    }

    /// (rebuild count, total rebuild time in microseconds), for /metrics.
    pub fn rebuild_stats(&self) -> (u64, u64) {
        (
            self.rebuilds.load(Ordering::Relaxed),
            self.rebuild_micros.load(Ordering::Relaxed),
        )
    }

    /// The shared matcher of the subscriptions not isolated, and the isolated ones.
    fn build(&self, subs: &Subs) -> Result<(Arc<Matcher>, Arc<Isolated>), CompileError> {
        let started = Instant::now();
        let isolated: Isolated = subs
            .iter()
            .filter_map(|(&k, live)| Some((k, live.isolated()?.clone())))
            .collect();
        if isolated.len() > self.limits.max_isolated {
            return Err(CompileError::TooManyIsolated {
                limit: self.limits.max_isolated,
            });
        }
        let shared = subs
            .iter()
            .filter(|(_, live)| live.isolated().is_none())
            .map(|(&k, live)| (k, &live.sub));
        let mut cache = self.lock_cache();
        let matcher = Matcher::build(shared, &mut cache, &self.limits)?;
        cache.retain_used();
        drop(cache);
        let size = matcher.memory_usage()
            + isolated
                .iter()
                .map(|(_, m)| m.memory_usage())
                .sum::<usize>();
        if size > self.limits.total_size {
            return Err(CompileError::TooLarge {
                size,
                limit: self.limits.total_size,
            });
        }
        self.rebuilds.fetch_add(1, Ordering::Relaxed);
        self.rebuild_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        Ok((Arc::new(matcher), Arc::new(isolated)))
    }

    fn lock(&self) -> MutexGuard<'_, Subs> {
        // A panic while holding the lock leaves consistent data (we only swap whole
        // values in), so a poisoned lock is safe to keep using.
        self.subs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_cache(&self) -> MutexGuard<'_, PatternCache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
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
    fn a_compile_stops_at_the_first_pattern_its_budget_refuses() {
        let r = Registry::new(Limits::default());
        let asked = std::cell::Cell::new(0);
        let within = |bytes: usize| {
            asked.set(asked.get() + 1);
            match bytes {
                0 => Ok(()),
                _ => Err(CompileError::OverBudget {
                    code: crate::protocol::code::COMPILED_BUDGET,
                    message: "over".into(),
                }),
            }
        };
        let three = Subscription {
            include: vec!["one".into(), "two".into(), "three".into()],
            ..Subscription::default()
        };
        let refused = r
            .compile(SubKey::from_raw(1), three, true, false, &within)
            .err();
        assert_eq!(refused.map(|e| e.code()), Some("compiled_budget"));
        // Asked once: the others were not compiled (and the first is not held).
        assert_eq!((asked.get(), r.cached_patterns()), (1, 0));
    }

    #[test]
    fn set_replace_remove_and_failed_set_keeps_old() -> anyhow::Result<()> {
        let r = Registry::new(Limits::default());
        let s = Stream::new("h", "/p", "default");
        let mut scratch = Scratch::default();
        r.set(SubKey::from_raw(1), sub("a"))?;
        r.set(SubKey::from_raw(2), sub("b"))?;
        assert_eq!(
            r.matcher().matching(&s, "ab", &mut scratch),
            [SubKey::from_raw(1), SubKey::from_raw(2)]
        );
        r.set(SubKey::from_raw(1), sub("c"))?;
        assert_eq!(
            r.matcher().matching(&s, "ab", &mut scratch),
            [SubKey::from_raw(2)]
        );
        assert!(r.set(SubKey::from_raw(1), sub("(")).is_err());
        assert_eq!(
            r.matcher().matching(&s, "c", &mut scratch),
            [SubKey::from_raw(1)]
        );
        assert!(r.remove(SubKey::from_raw(1)));
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
            .map(|k| Change::Set(SubKey::from_raw(k), sub(&format!("w{k}x"))))
            .collect();
        let results = r.apply(changes, |swap| swap());
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(r.rebuild_stats().0, 1);
        assert_eq!(
            r.matcher().matching(&s, "w7x w70x", &mut scratch),
            [SubKey::from_raw(7), SubKey::from_raw(70)]
        );

        let changes = vec![
            Change::Set(SubKey::from_raw(200), sub("good")),
            Change::Set(SubKey::from_raw(201), sub("(bad")),
            Change::Remove(Arc::new(|k| k <= SubKey::from_raw(50))),
        ];
        let results = r.apply(changes, |swap| swap());
        assert!(results[0].is_ok() && results[2].is_ok());
        assert!(results[1]
            .as_ref()
            .is_err_and(|e| e.to_string().contains("(bad")));
        assert_eq!(r.len(), 51);
        assert_eq!(
            r.matcher().matching(&s, "w7x w70x good", &mut scratch),
            [SubKey::from_raw(70), SubKey::from_raw(200)]
        );
    }

    fn hostile(n: usize) -> Subscription {
        Subscription {
            include: (0..n)
                .map(|i| {
                    let letter = (b'a' + (i % 26) as u8) as char;
                    format!(r"(?i)\w+=\w*{letter}\w*\s+\S*{}\S*\s\w{{2,8}}$", 17 + i)
                })
                .collect(),
            ..Subscription::default()
        }
    }

    #[test]
    fn a_costly_subscription_is_evaluated_apart_and_forgotten_with_its_patterns(
    ) -> anyhow::Result<()> {
        let r = Registry::new(Limits::default());
        let s = Stream::new("h", "/p", "default");
        let mut scratch = Scratch::default();
        let costly =
            Arc::new(r.compile(SubKey::from_raw(7), hostile(3), true, false, &|_| Ok(()))?);
        assert!(matches!(costly.placement, Placement::Isolated(_)));
        // Not where a sink waits for every match (the terminal): shared, however costly.
        let waits = r.compile(SubKey::from_raw(8), hostile(3), false, false, &|_| Ok(()))?;
        assert_eq!(waits.placement, Placement::Shared);
        assert!(waits.alone.is_none());
        let cheap =
            Arc::new(r.compile(SubKey::from_raw(9), sub("error"), true, true, &|_| Ok(()))?);
        assert_eq!(cheap.placement, Placement::Shared);
        assert!(cheap.alone.is_some(), "asked for, for the backlog");

        let results = r.apply(
            vec![
                Change::SetCompiled(SubKey::from_raw(7), costly.clone()),
                Change::SetCompiled(SubKey::from_raw(9), cheap),
            ],
            |swap| swap(),
        );
        assert!(results.iter().all(Result::is_ok));
        let line = "error k=bar x17y ok";
        assert_eq!(
            r.matcher().matching(&s, line, &mut scratch),
            [SubKey::from_raw(9)]
        );
        let isolated = r.isolated();
        assert_eq!(isolated.len(), 1);
        assert_eq!(isolated[0].0, SubKey::from_raw(7));
        assert_eq!(
            isolated[0].1.matching(&s, line, &mut scratch),
            [SubKey::from_raw(7)]
        );
        assert_eq!(r.len(), 2);

        drop((costly, waits, isolated));
        assert!(r.remove(SubKey::from_raw(7)));
        assert!(r.isolated().is_empty());
        assert_eq!(r.cached_patterns(), 1, "only `error` is still used");
        Ok(())
    }

    #[test]
    fn costly_subscriptions_beyond_the_cap_are_refused_by_name() -> anyhow::Result<()> {
        let r = Registry::new(Limits {
            max_isolated: 1,
            ..Limits::default()
        });
        let first = Arc::new(r.compile(SubKey::from_raw(1), hostile(1), true, false, &|_| Ok(()))?);
        let second =
            Arc::new(r.compile(SubKey::from_raw(2), hostile(2), true, false, &|_| Ok(()))?);
        let results = r.apply(
            vec![
                Change::SetCompiled(SubKey::from_raw(1), first),
                Change::SetCompiled(SubKey::from_raw(2), second),
            ],
            |swap| swap(),
        );
        assert!(results[0].is_ok());
        let err = results[1].clone().unwrap_err();
        assert_eq!(err, CompileError::TooManyIsolated { limit: 1 });
        assert_eq!(err.code(), "too_many_costly_subscriptions");
        assert_eq!(r.isolated().len(), 1);
        Ok(())
    }
}
