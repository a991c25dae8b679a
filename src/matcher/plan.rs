//! How [`Matcher::scan`] finds the lines worth deciding: one plan per matcher, chosen
//! when it is built from how many subscriptions and patterns it holds. Every plan
//! names the next position that may lie in a wanted line ([`Candidate`]); the walk
//! (`Matcher::walk`) decides that line and jumps past it. The thresholds between
//! plans are here, each with the measurement that set it.

use regex_automata::{hybrid, meta};

use super::lanes::{GaveUp, LaneCache, LaneSearch};
use super::prefilter::{LiteralFinder, LiteralSkip};
use super::{pattern, CompiledSub, Eligibility, Limits, LineHit, Matcher, Pattern, Scratch};
use std::sync::Arc;

/// Beyond this many patterns the lazy DFA in lanes beats one combined regex.
/// (Measured on Loghub patterns, a fresh matcher scanning 20 MB: 33 patterns 18
/// against 22 ms, 40: 20 against 53 ms, 48: 22 against 50 ms; up to 32 the combined
/// regex, with its literal prefilters, is as fast or faster: 23 patterns 1,460
/// against 1,295 MiB/s warm.)
const BUFFER_REGEX_MAX_PATTERNS: usize = 32;

/// Up to this many patterns the lazy DFA builds its states in less time than the
/// literal prefilter would take over them, so it searches from the first byte and
/// `Limits::line_dfa_after` does not apply. (A fresh matcher scanning 20 MB, DFA
/// from the start against the literal prefilter: 60 patterns 28 against 93 ms, 100:
/// 41 against 99, 200: 88 against 107, 250: 104 against 110, 300: 131 against 123,
/// 460: 254 against 154.)
const LINE_DFA_AT_ONCE_MAX_PATTERNS: usize = 200;

/// Beyond this many patterns the lazy DFA's states cost more to build than it saves
/// on a scan of tens of megabytes (20 MB with 3,000 templates: 1.37 s against 0.32 s
/// with the literal prefilter; 1,000: 0.50 s against 0.17, but 730 MiB/s against 196
/// once warm, which a followed file or a big scan soon is: the states have paid for
/// themselves after about 100 MiB, 33 MiB at 460 patterns; measured at c1430e8).
const LINE_DFA_MAX_PATTERNS: usize = 1000;

/// The matcher's way through a text.
#[derive(Debug)]
pub(super) enum Plan {
    /// Any number of subscriptions (the hub's): the literal prefilter finds the next
    /// line holding a literal some pattern requires, and the line's candidate
    /// patterns decide it; every line, when an eligible subscription needs that.
    Shared,
    /// One subscription of up to [`BUFFER_REGEX_MAX_PATTERNS`] includes (terminal
    /// mode): its includes as one regex over the whole buffer, as ripgrep searches.
    LoneRegex(Lone<meta::Regex>),
    /// One subscription of up to [`LINE_DFA_MAX_PATTERNS`] includes: all of them as
    /// one lazy DFA finding the next line any matches, in interleaved lanes (see
    /// [`super::lanes`]), once `after` bytes were scanned with the prefilter; the
    /// prefilter again if the DFA gives up.
    LoneDfa {
        lone: Lone<Box<hybrid::dfa::DFA>>,
        after: u64,
    },
}

/// A lone subscription's own search, and what it may decide alone.
#[derive(Debug)]
pub(super) struct Lone<S> {
    pub(super) search: S,
    /// A match of `search` within one line means exactly what the line's patterns
    /// would say (false when line anchors could differ, e.g. after a `\r`).
    pub(super) exact: bool,
    /// Its exclude patterns as one regex.
    pub(super) exclude: Option<meta::Regex>,
}

/// What a plan's search already decided of a line: its lone subscription's includes
/// match, so only its excludes remain.
#[derive(Clone, Copy)]
pub(super) struct Decided<'m> {
    pub(super) exclude: Option<&'m meta::Regex>,
}

impl<S> Lone<S> {
    fn decided(&self) -> Option<Decided<'_>> {
        self.exact.then_some(Decided {
            exclude: self.exclude.as_ref(),
        })
    }
}

/// Where a plan says the walk should look next: a position at or after the walk's
/// that may lie in a wanted line.
#[derive(Debug, Clone, Copy)]
pub(super) struct Candidate {
    pub(super) at: usize,
    /// What the plan's search found of the lone subscription's includes.
    pub(super) found: Found,
    /// Where the line holding `at` starts and ends (its `\n`, or the end of the
    /// text), if the plan's search already found them.
    pub(super) line: Option<(usize, usize)>,
}

/// What a plan's search found of the lone subscription's includes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Found {
    /// Nothing: the walk decides the line by itself.
    Nothing,
    /// A match ending here (it may run past the line).
    MatchEnd(usize),
    /// A match within the line.
    InLine,
}

impl Candidate {
    /// Only a position: the walk decides the line by itself.
    #[inline]
    pub(super) fn at(at: usize) -> Candidate {
        Candidate {
            at,
            found: Found::Nothing,
            line: None,
        }
    }
}

impl Plan {
    /// The plan for `subs` (their patterns compiled in `patterns`).
    pub(super) fn choose(subs: &[CompiledSub], patterns: &[Arc<Pattern>], limits: &Limits) -> Plan {
        let [only] = subs else { return Plan::Shared };
        let n = only.include.len();
        if n == 0 || n > LINE_DFA_MAX_PATTERNS {
            return Plan::Shared;
        }
        let keys = |ps: &[u32]| -> Vec<&pattern::PatternKey> {
            ps.iter().map(|&p| &patterns[p as usize].key).collect()
        };
        let combined_limit = limits.pattern_size.saturating_mul(4);
        let exclude = if only.exclude.is_empty() {
            None
        } else {
            match pattern::combined(&keys(&only.exclude), false, combined_limit) {
                Some(re) => Some(re),
                None => return Plan::Shared,
            }
        };
        let exact = only
            .include
            .iter()
            .all(|&p| !patterns[p as usize].has_line_anchors);
        if n <= BUFFER_REGEX_MAX_PATTERNS {
            match pattern::combined(&keys(&only.include), true, combined_limit) {
                Some(search) => Plan::LoneRegex(Lone {
                    search,
                    exact,
                    exclude,
                }),
                None => Plan::Shared,
            }
        } else {
            let dfa_limit = limits.pattern_size.saturating_mul(16);
            match pattern::line_dfa(&keys(&only.include), dfa_limit) {
                Some(search) => Plan::LoneDfa {
                    lone: Lone {
                        search: Box::new(search),
                        exact,
                        exclude,
                    },
                    after: if n <= LINE_DFA_AT_ONCE_MAX_PATTERNS {
                        0
                    } else {
                        limits.line_dfa_after
                    },
                },
                None => Plan::Shared,
            }
        }
    }

    /// Approximate heap bytes of the plan's own searches.
    pub(super) fn memory_usage(&self) -> usize {
        let exclude = |e: &Option<meta::Regex>| e.as_ref().map_or(0, |r| r.memory_usage());
        match self {
            Plan::Shared => 0,
            Plan::LoneRegex(lone) => lone.search.memory_usage() + exclude(&lone.exclude),
            Plan::LoneDfa { lone, .. } => {
                lone.search.get_nfa().memory_usage()
                    + pattern::LINE_DFA_CACHE
                    + exclude(&lone.exclude)
            }
        }
    }

    /// The lazy DFA, if the plan has one.
    pub(super) fn line_dfa(&self) -> Option<&hybrid::dfa::DFA> {
        match self {
            Plan::LoneDfa { lone, .. } => Some(&*lone.search),
            _ => None,
        }
    }

    /// Walks `text` the plan's way (see [`Matcher::scan`]).
    pub(super) fn scan<'t>(
        &self,
        m: &Matcher,
        text: &'t str,
        elig: &Eligibility,
        scratch: &mut Scratch,
        on_hit: impl FnMut(&LineHit<'t, '_>),
    ) {
        let bytes = text.as_bytes();
        let end = bytes.len();
        let literal = m.literals.next.as_ref();
        match self {
            Plan::LoneRegex(lone) => {
                // A match inside one line already satisfies the includes.
                m.walk(text, elig, scratch, on_hit, lone.decided(), |pos| {
                    let input = regex_automata::Input::new(bytes).span(pos..end);
                    lone.search.find(input).map(|found| Candidate {
                        at: found.start(),
                        found: Found::MatchEnd(found.end()),
                        line: None,
                    })
                });
            }
            Plan::LoneDfa { lone, after } => match scratch.lane.warm(*after, end) {
                Some(cache) => {
                    // If the lazy DFA gives up, the walk goes on from there as it
                    // would have without it.
                    let mut lanes = std::mem::take(&mut scratch.lane.lanes);
                    lanes.reset();
                    let mut skip = DfaSkip {
                        dfa: &lone.search,
                        cache,
                        lanes,
                        literal: literal
                            .filter(|_| !elig.every_line)
                            .map(|finder| (finder, LiteralSkip::default())),
                        gave_up: false,
                    };
                    m.walk(text, elig, scratch, on_hit, lone.decided(), |pos| {
                        skip.next(bytes, pos)
                    });
                    scratch.lane.lanes = skip.lanes;
                    // Given up, or cleared because it was too small for these
                    // patterns (each refill costs more than the literal prefilter:
                    // 5,000 templates ran under 1 MB/s): the prefilter from now on.
                    if !skip.gave_up && skip.cache.clear_count() == 0 {
                        scratch.lane.cache = Some(skip.cache);
                    }
                }
                None => Plan::Shared.scan(m, text, elig, scratch, on_hit),
            },
            Plan::Shared if elig.every_line => {
                m.walk(text, elig, scratch, on_hit, None, |pos| {
                    Some(Candidate::at(pos))
                });
            }
            Plan::Shared => {
                if let Some(finder) = literal {
                    let mut skip = LiteralSkip::default();
                    m.walk(text, elig, scratch, on_hit, None, |pos| {
                        skip.next(finder, bytes, pos)
                    });
                }
            }
        }
    }
}

/// One thread's working state for a [`Plan::LoneDfa`].
#[derive(Debug, Default)]
pub(super) struct LaneScratch {
    /// The cache for the plan's lazy DFA; `None` once a search gave up on this
    /// matcher (the literal prefilter takes over).
    pub(super) cache: Option<LaneCache>,
    /// The lanes' hit lists, kept for their allocations.
    lanes: LaneSearch,
    /// Bytes scanned with this matcher so far (see `Limits::line_dfa_after`).
    scanned: u64,
}

impl LaneScratch {
    /// Fresh, for a matcher of `plan` (the lanes' allocations kept).
    pub(super) fn renew(&mut self, plan: &Plan) {
        self.cache = plan
            .line_dfa()
            .map(|d| LaneCache::new(d, pattern::LINE_DFA_CACHE));
        self.scanned = 0;
    }

    /// The DFA's cache once `after` bytes have been scanned (counting `len` more),
    /// unless it was given up on.
    fn warm(&mut self, after: u64, len: usize) -> Option<LaneCache> {
        let before = self.scanned;
        self.scanned = before.saturating_add(len as u64);
        if before < after {
            return None;
        }
        self.cache.take()
    }
}

/// Finds the next line any pattern of a lazy DFA matches (in interleaved lanes, see
/// [`super::lanes`]); once the DFA gives up, goes on with the literal prefilter (or
/// line by line, without one).
struct DfaSkip<'m> {
    dfa: &'m hybrid::dfa::DFA,
    cache: LaneCache,
    lanes: LaneSearch,
    literal: Option<(&'m LiteralFinder, LiteralSkip)>,
    gave_up: bool,
}

impl DfaSkip<'_> {
    #[inline]
    fn next(&mut self, bytes: &[u8], pos: usize) -> Option<Candidate> {
        if !self.gave_up {
            match self.lanes.next(self.dfa, &mut self.cache, bytes, pos) {
                Ok(hit) => {
                    return hit.map(|hit| Candidate {
                        at: hit.line_end,
                        found: if hit.match_takes_cr {
                            Found::MatchEnd(hit.line_end)
                        } else {
                            Found::InLine
                        },
                        line: Some((hit.line_start, hit.line_end)),
                    })
                }
                Err(GaveUp) => {
                    tracing::debug!("lazy DFA gave up; literal prefilter");
                    self.gave_up = true;
                }
            }
        }
        match &mut self.literal {
            Some((finder, literal)) => literal.next(finder, bytes, pos),
            None => Some(Candidate::at(pos)),
        }
    }
}
