//! Per-caller working memory of matching, and which subscriptions apply to a
//! stream: reused across lines and batches so the hot path does not allocate.

use std::collections::HashMap;
use std::sync::Arc;

use super::plan::LaneScratch;
use super::{Matcher, Pattern};
use crate::line::Stream;

/// Which subscriptions apply to one stream, computed once per (matcher, stream).
#[derive(Debug)]
pub(super) struct Eligibility {
    pub(super) subs: Vec<bool>,
    pub(super) any: bool,
    pub(super) every_line: bool,
    /// Eligible subscriptions without include patterns.
    pub(super) match_all: Vec<u32>,
}

/// Per-caller working memory for matching, reused across lines so the hot path does
/// not allocate. One caller at a time (ingest's moves between threads: see
/// `source::events`).
#[derive(Debug, Default)]
pub struct Scratch {
    generation: u64,
    /// Per stream id, then set (a file may be in two log sets): looked up per batch
    /// without building a key.
    eligibility: HashMap<String, HashMap<String, Arc<Eligibility>>>,
    pub(super) stamp: u32,
    pub(super) candidate_seen: Vec<u32>,
    pub(super) tested: Vec<u32>,
    pub(super) matched: Vec<u32>,
    pub(super) sub_hit: Vec<u32>,
    pub(super) sub_excluded: Vec<u32>,
    pub(super) candidates: Vec<u32>,
    pub(super) hits: Vec<u32>,
    /// Whether `matched` tells, for this line, which patterns matched.
    pub(super) verified: bool,
    /// The matcher's plan's own state (its lazy DFA's).
    pub(super) lane: LaneScratch,
}

impl Scratch {
    #[inline]
    pub(super) fn eligibility(&mut self, m: &Matcher, stream: &Stream) -> Arc<Eligibility> {
        if self.generation != m.generation {
            self.generation = m.generation;
            self.eligibility.clear();
            let (np, ns) = (m.patterns.len(), m.subs.len());
            for v in [
                &mut self.candidate_seen,
                &mut self.tested,
                &mut self.matched,
            ] {
                v.clear();
                v.resize(np, 0);
            }
            for v in [&mut self.sub_hit, &mut self.sub_excluded] {
                v.clear();
                v.resize(ns, 0);
            }
            self.stamp = 0;
            self.lane.renew(&m.plan);
        }
        if let Some(e) = self
            .eligibility
            .get(stream.id.as_str())
            .and_then(|by_set| by_set.get(stream.set.as_str()))
        {
            return e.clone();
        }
        let subs: Vec<bool> = m.subs.iter().map(|s| s.streams.matches(stream)).collect();
        let e = Arc::new(Eligibility {
            any: subs.iter().any(|&b| b),
            every_line: m
                .subs
                .iter()
                .zip(&subs)
                .any(|(s, &e)| e && s.needs_every_line),
            match_all: (0..m.subs.len() as u32)
                .filter(|&i| subs[i as usize] && m.subs[i as usize].include.is_empty())
                .collect(),
            subs,
        });
        self.eligibility
            .entry(stream.id.clone())
            .or_default()
            .insert(stream.set.clone(), e.clone());
        e
    }

    #[inline]
    pub(super) fn begin_line(&mut self) {
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            // Wrapped: old stamps could collide, so start clean.
            for v in [
                &mut self.candidate_seen,
                &mut self.tested,
                &mut self.matched,
                &mut self.sub_hit,
                &mut self.sub_excluded,
            ] {
                v.iter_mut().for_each(|x| *x = 0);
            }
            self.stamp = 1;
        }
        self.candidates.clear();
        self.hits.clear();
        self.verified = true;
    }

    /// A line decided without running the patterns one by one: `sub` wants it.
    #[inline]
    pub(super) fn begin_line_unverified(&mut self, sub: u32) {
        self.begin_line();
        self.verified = false;
        self.hits.push(sub);
    }

    #[inline]
    pub(super) fn add_candidate(&mut self, p: u32) {
        if self.candidate_seen[p as usize] != self.stamp {
            self.candidate_seen[p as usize] = self.stamp;
            self.candidates.push(p);
        }
    }

    /// Runs pattern `p` on the line once per line, remembering the answer.
    #[inline]
    pub(super) fn test(&mut self, p: u32, pattern: &Pattern, line: &str) -> bool {
        let i = p as usize;
        if self.tested[i] != self.stamp {
            self.tested[i] = self.stamp;
            if pattern.is_match(line) {
                self.matched[i] = self.stamp;
            }
        }
        self.matched[i] == self.stamp
    }

    /// Pattern `p` matched this line, or is a candidate that was not run.
    #[inline]
    pub(super) fn may_match(&self, p: u32) -> bool {
        let i = p as usize;
        self.matched[i] == self.stamp
            || (self.candidate_seen[i] == self.stamp && self.tested[i] != self.stamp)
    }
}
