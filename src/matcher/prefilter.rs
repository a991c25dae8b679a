//! The literal prefilter every plan shares: the literals patterns require, which
//! patterns each one names, and the searches over them (every literal present in a
//! line, to know which patterns to run; the next line holding any, to skip the
//! lines nobody can want).

use aho_corasick::{packed, AhoCorasick, Input, MatchKind, Span};
use std::collections::HashMap;
use std::sync::Arc;

use super::plan::Candidate;
use super::{CompileError, Limits, Pattern};

/// The literals of a matcher's patterns, and what they point to.
#[derive(Debug, Default)]
pub(super) struct LiteralIndex {
    /// Every literal present in a line (overlapping): the patterns to verify.
    pub(super) present: Option<AhoCorasick>,
    /// The same literals, to find the next line holding any of them.
    pub(super) next: Option<LiteralFinder>,
    /// Literal id → the patterns that require it.
    pub(super) patterns_of: Vec<Vec<u32>>,
    /// Patterns without a usable literal, checked on every candidate line.
    pub(super) always: Vec<u32>,
}

impl LiteralIndex {
    /// The index of `patterns`; what it takes is added to `memory`, which may not
    /// pass `limits.total_size`.
    pub(super) fn build(
        patterns: &[Arc<Pattern>],
        limits: &Limits,
        memory: &mut usize,
    ) -> Result<LiteralIndex, CompileError> {
        let mut ids: HashMap<&[u8], u32> = HashMap::new();
        let mut literals: Vec<&[u8]> = Vec::new();
        let mut patterns_of: Vec<Vec<u32>> = Vec::new();
        let mut always = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            match &p.required {
                None => always.push(i as u32),
                Some(lits) => {
                    for lit in lits {
                        let id = *ids.entry(lit.as_slice()).or_insert_with(|| {
                            literals.push(lit.as_slice());
                            patterns_of.push(Vec::new());
                            (literals.len() - 1) as u32
                        });
                        patterns_of[id as usize].push(i as u32);
                    }
                }
            }
        }
        let mut automaton = |kind: MatchKind| -> Result<Option<AhoCorasick>, CompileError> {
            if literals.is_empty() {
                return Ok(None);
            }
            let ac = AhoCorasick::builder()
                .match_kind(kind)
                .build(&literals)
                .map_err(|e| CompileError::Prefilter(e.to_string()))?;
            *memory += ac.memory_usage();
            if *memory > limits.total_size {
                return Err(CompileError::TooLarge {
                    size: *memory,
                    limit: limits.total_size,
                });
            }
            Ok(Some(ac))
        };
        let present = automaton(MatchKind::Standard)?;
        let packed = packed::Config::new()
            .match_kind(packed::MatchKind::LeftmostFirst)
            .builder()
            .extend(&literals)
            .build();
        let next = match packed {
            Some(searcher) => {
                *memory += searcher.memory_usage();
                Some(LiteralFinder::Packed(searcher))
            }
            None => automaton(MatchKind::LeftmostFirst)?.map(LiteralFinder::Automaton),
        };
        Ok(LiteralIndex {
            present,
            next,
            patterns_of,
            always,
        })
    }
}

/// Finds where the next occurrence of any prefilter literal starts (leftmost-first:
/// the walk needs no more than a position in the first line holding one).
#[derive(Debug)]
pub(super) enum LiteralFinder {
    /// Up to 64 literals: Teddy, aho-corasick's SIMD search for a few dozen literals,
    /// which its automaton uses only up to 16 (beyond, it looks for the literals'
    /// first bytes: the 32 case variants of `[Ee][Rr][Rr][Oo][Rr]` stop it at every
    /// `e`).
    Packed(packed::Searcher),
    Automaton(AhoCorasick),
}

impl LiteralFinder {
    #[inline]
    fn find(&self, bytes: &[u8], pos: usize) -> Option<usize> {
        let span = pos..bytes.len();
        match self {
            LiteralFinder::Packed(s) => s.find_in(bytes, Span::from(span)).map(|m| m.start()),
            LiteralFinder::Automaton(ac) => {
                ac.find(Input::new(bytes).span(span)).map(|m| m.start())
            }
        }
    }
}

/// Consecutive lines with a literal in them after which the prefilter walk stops
/// looking for the next literal first, and for how many lines.
const DENSE_STREAK: u32 = 16;
const DENSE_RUN: u32 = 256;

/// Finds the next line that holds a required literal: only those can match. Where
/// nearly every line holds one (a list of templates, say), finding it first only reads
/// each line twice: after a streak of such lines, the next ones go straight to
/// `evaluate` (whose own literal pass over the line decides), then it probes again.
#[derive(Default)]
pub(super) struct LiteralSkip {
    streak: u32,
    dense: u32,
}

impl LiteralSkip {
    #[inline]
    pub(super) fn next(
        &mut self,
        finder: &LiteralFinder,
        bytes: &[u8],
        pos: usize,
    ) -> Option<Candidate> {
        if self.dense > 0 {
            self.dense -= 1;
            return Some(Candidate::at(pos));
        }
        let at = finder.find(bytes, pos)?;
        if memchr::memchr(b'\n', &bytes[pos..at]).is_none() {
            self.streak += 1;
            if self.streak == DENSE_STREAK {
                (self.streak, self.dense) = (0, DENSE_RUN);
            }
        } else {
            self.streak = 0;
        }
        Some(Candidate::at(at))
    }
}
