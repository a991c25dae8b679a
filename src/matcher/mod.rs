//! The one matcher every mode uses: all subscriptions' patterns in one structure, so
//! one pass over a line answers "which subscribers want it", however many there are.
//!
//! How: every pattern contributes the literals its matches must contain
//! ([`literals`]) to one shared Aho-Corasick automaton, the prefilter. A search for
//! any of those literals skips over the lines nobody can want, a whole buffer at a
//! time; on a line it lands on, the literals present name the few patterns to verify
//! with their own regex. Patterns with no usable literal sit on a short list that is
//! checked on every line. Verification uses leftmost-first regexes, which also give
//! the highlight spans. (A `RegexSet` or one multi-pattern DFA answers the same
//! question but collapses past a few hundred patterns.)
//!
//! One subscription alone (terminal mode) is searched a buffer at a time, as ripgrep
//! does: its patterns as one regex up to 32 patterns, as one lazy DFA up to 1,000,
//! run in interleaved lanes ([`lanes`]; given up for the literal walk if it
//! thrashes).
//!
//! A [`Matcher`] is immutable; [`registry::Registry`] builds a new one when
//! subscriptions change and swaps it in, so matching never waits for a rebuild.

pub mod cost;
mod lanes;
pub mod literals;
pub mod pattern;
pub mod registry;
pub mod selector;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aho_corasick::{packed, AhoCorasick, Input, MatchKind, Span};
use regex_automata::{hybrid, meta};
use thiserror::Error;

use crate::line::{line_start_after, trim_cr, Stream};
use lanes::{GaveUp, LaneCache, LaneSearch};
pub use pattern::{Pattern, PatternError, PatternKey};
pub use selector::{SelectorError, StreamSelector};

/// What one subscriber wants to see.
#[derive(Debug, Clone, Default)]
pub struct Subscription {
    /// A line matches when any of these matches (no include: every line does)…
    pub include: Vec<String>,
    /// …and none of these does.
    pub exclude: Vec<String>,
    pub ignore_case: bool,
    pub streams: StreamSelector,
}

/// Bounds on what one matcher may hold, so no client can exhaust the hub.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Distinct patterns across all subscriptions.
    pub max_patterns: usize,
    /// Compiled size of one pattern, in bytes.
    pub pattern_size: usize,
    /// Compiled size of all patterns and the prefilter together, in bytes.
    pub total_size: usize,
    /// Bytes one thread scans with the literal prefilter before a lazy DFA (one
    /// subscription of more than 200 patterns) takes over: building its states costs
    /// about what the prefilter takes for this much text, so a small scan never pays
    /// it and a big one or a followed file soon earns it back. (With fewer patterns
    /// the states cost little: the DFA searches from the first byte.)
    pub line_dfa_after: u64,
    /// Bytes of one pattern's source, checked before it is parsed.
    pub max_pattern_len: usize,
    /// Subscriptions evaluated apart at once (each a thread: see [`cost`]).
    pub max_isolated: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_patterns: 20_000,
            pattern_size: 2 << 20,
            total_size: 512 << 20,
            line_dfa_after: 64 << 20,
            max_pattern_len: 64 << 10,
            max_isolated: 64,
        }
    }
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum CompileError {
    #[error(transparent)]
    Pattern(#[from] PatternError),
    #[error("too many patterns: {count} (limit {limit})")]
    TooManyPatterns { count: usize, limit: usize },
    #[error("the compiled patterns would take {size} bytes (limit {limit})")]
    TooLarge { size: usize, limit: usize },
    /// Refused by the subscriber's own budget once compiled (`code`: the `error`
    /// code that names the limit).
    #[error("{message}")]
    OverBudget { code: &'static str, message: String },
    #[error("could not build the literal prefilter: {0}")]
    Prefilter(String),
    #[error(
        "this subscription's patterns are costly (evaluated apart from the others, on a \
         worker of their own) and the hub already runs {limit} such"
    )]
    TooManyIsolated { limit: usize },
    #[error("the hub has too many subscriptions waiting to be compiled; try again")]
    Busy,
    #[error("the hub is shutting down")]
    Unavailable,
}

impl CompileError {
    /// The `error` code a client is told (`protocol::code`), naming the limit hit.
    pub fn code(&self) -> &'static str {
        use crate::protocol::code;
        match self {
            CompileError::Pattern(e) => e.code(),
            CompileError::TooManyPatterns { .. }
            | CompileError::TooLarge { .. }
            | CompileError::Prefilter(_) => code::HUB_BUDGET,
            CompileError::TooManyIsolated { .. } => code::TOO_MANY_COSTLY,
            CompileError::OverBudget { code, .. } => code,
            CompileError::Busy => code::BUSY,
            CompileError::Unavailable => code::BAD_REQUEST,
        }
    }
}

/// Where a strategy of [`Matcher::scan`] says the walk should look next: a position
/// at or after the walk's that may lie in a wanted line.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    at: usize,
    /// What the strategy's search found of the lone subscription's includes (see
    /// `Matcher::buffer_regex_exact`).
    found: Found,
    /// Where the line holding `at` starts and ends (its `\n`, or the end of the
    /// text), if the strategy's search already found them.
    line: Option<(usize, usize)>,
}

/// What a strategy's search found of the lone subscription's includes.
#[derive(Debug, Clone, Copy)]
enum Found {
    /// Nothing: the walk decides the line by itself.
    Nothing,
    /// A match ending here (it may run past the line).
    MatchEnd(usize),
    /// A match within the line.
    InLine,
}

impl Candidate {
    /// Only a position: the walk decides the line by itself.
    fn at(at: usize) -> Candidate {
        Candidate {
            at,
            found: Found::Nothing,
            line: None,
        }
    }
}

/// Finds where the next occurrence of any prefilter literal starts (leftmost-first:
/// the walk needs no more than a position in the first line holding one).
#[derive(Debug)]
enum LiteralFinder {
    /// Up to 64 literals: Teddy, aho-corasick's SIMD search for a few dozen literals,
    /// which its automaton uses only up to 16 (beyond, it looks for the literals'
    /// first bytes: the 32 case variants of `[Ee][Rr][Rr][Oo][Rr]` stop it at every
    /// `e`).
    Packed(packed::Searcher),
    Automaton(AhoCorasick),
}

impl LiteralFinder {
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
struct LiteralSkip {
    streak: u32,
    dense: u32,
}

impl LiteralSkip {
    fn next(&mut self, finder: &LiteralFinder, bytes: &[u8], pos: usize) -> Option<Candidate> {
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

/// Finds the next line any pattern of a lazy DFA matches (in interleaved lanes, see
/// [`lanes`]); once the DFA gives up, goes on with the literal prefilter (or line by
/// line, without one).
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

/// Caller-chosen identity of a subscription (the hub packs client and request ids).
pub type SubKey = u64;

/// Compiled patterns shared across rebuilds, so a pattern used by many subscriptions,
/// or by one that is replaced, is compiled once. Held weakly: a pattern's memory goes
/// back as soon as the last matcher (or compile) using it goes, not at the next
/// rebuild.
#[derive(Debug, Default)]
pub struct PatternCache {
    compiled: HashMap<PatternKey, std::sync::Weak<Pattern>>,
}

impl PatternCache {
    pub fn get(&mut self, key: PatternKey, limits: &Limits) -> Result<Arc<Pattern>, PatternError> {
        if let Some(p) = self.cached(&key) {
            return Ok(p);
        }
        let p = Arc::new(Pattern::compile_within(
            key.clone(),
            limits.max_pattern_len,
            limits.pattern_size,
        )?);
        self.compiled.insert(key, Arc::downgrade(&p));
        Ok(p)
    }

    /// Forgets the patterns nothing uses any more.
    pub fn retain_used(&mut self) {
        self.compiled.retain(|_, p| p.strong_count() > 0);
    }

    /// Patterns in use.
    pub fn len(&self) -> usize {
        self.compiled
            .values()
            .filter(|p| p.strong_count() > 0)
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The compiled pattern of `key`, if something still uses it.
    pub fn cached(&self, key: &PatternKey) -> Option<Arc<Pattern>> {
        self.compiled.get(key).and_then(std::sync::Weak::upgrade)
    }

    /// Keeps `p` (compiled elsewhere); one still in use for its key wins.
    pub fn insert(&mut self, p: Arc<Pattern>) -> Arc<Pattern> {
        if let Some(have) = self.cached(&p.key) {
            return have;
        }
        self.compiled.insert(p.key.clone(), Arc::downgrade(&p));
        p
    }
}

#[derive(Debug)]
struct CompiledSub {
    key: SubKey,
    include: Vec<u32>,
    exclude: Vec<u32>,
    streams: StreamSelector,
    /// No include patterns, or one without literals: every line must be looked at.
    needs_every_line: bool,
}

#[derive(Debug, Default)]
struct PatternUse {
    included_by: Vec<u32>,
    excluded_by: Vec<u32>,
}

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

static GENERATION: AtomicU64 = AtomicU64::new(1);

/// An immutable compiled set of subscriptions.
#[derive(Debug)]
pub struct Matcher {
    patterns: Vec<Arc<Pattern>>,
    uses: Vec<PatternUse>,
    subs: Vec<CompiledSub>,
    prefilter: Option<AhoCorasick>,
    /// The same literals, to find the next line holding any of them.
    skip: Option<LiteralFinder>,
    /// Prefilter literal id → the patterns that require it.
    literal_patterns: Vec<Vec<u32>>,
    /// Patterns without a usable literal, checked on every candidate line.
    always: Vec<u32>,
    /// With a single subscription: its include patterns as one regex, to find
    /// candidate lines a whole buffer at a time (see [`Matcher::scan`]).
    buffer_regex: Option<meta::Regex>,
    /// With a single subscription of more patterns than `buffer_regex` takes: all of
    /// them as one lazy DFA that finds the next line any of them matches.
    line_dfa: Option<hybrid::dfa::DFA>,
    line_dfa_after: u64,
    /// A `buffer_regex` or `line_dfa` match within one line means exactly what the
    /// per-line patterns would say (false when line anchors could differ, e.g. after
    /// a `\r`).
    buffer_regex_exact: bool,
    /// With a single subscription: its exclude patterns as one regex.
    exclude_regex: Option<meta::Regex>,
    generation: u64,
    memory: usize,
}

impl Matcher {
    /// A matcher with no subscriptions: it matches nothing.
    pub fn empty() -> Matcher {
        Matcher {
            patterns: Vec::new(),
            uses: Vec::new(),
            subs: Vec::new(),
            prefilter: None,
            skip: None,
            literal_patterns: Vec::new(),
            always: Vec::new(),
            buffer_regex: None,
            line_dfa: None,
            line_dfa_after: 0,
            buffer_regex_exact: false,
            exclude_regex: None,
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            memory: 0,
        }
    }

    /// Compiles one subscription on its own (terminal mode).
    pub fn single(sub: &Subscription, limits: &Limits) -> Result<Matcher, CompileError> {
        Matcher::build([(0, sub)], &mut PatternCache::default(), limits)
    }

    pub fn build<'a>(
        subs: impl IntoIterator<Item = (SubKey, &'a Subscription)>,
        cache: &mut PatternCache,
        limits: &Limits,
    ) -> Result<Matcher, CompileError> {
        let mut index: HashMap<PatternKey, u32> = HashMap::new();
        let mut patterns: Vec<Arc<Pattern>> = Vec::new();
        let mut uses: Vec<PatternUse> = Vec::new();
        let mut compiled_subs = Vec::new();
        let mut memory = 0usize;

        let mut intern = |source: &str,
                          ignore_case: bool,
                          cache: &mut PatternCache|
         -> Result<u32, CompileError> {
            let key = PatternKey {
                source: source.to_owned(),
                ignore_case,
            };
            if let Some(&i) = index.get(&key) {
                return Ok(i);
            }
            if patterns.len() >= limits.max_patterns {
                return Err(CompileError::TooManyPatterns {
                    count: patterns.len() + 1,
                    limit: limits.max_patterns,
                });
            }
            let p = cache.get(key.clone(), limits)?;
            memory += p.memory_usage();
            if memory > limits.total_size {
                return Err(CompileError::TooLarge {
                    size: memory,
                    limit: limits.total_size,
                });
            }
            let i = patterns.len() as u32;
            patterns.push(p);
            uses.push(PatternUse::default());
            index.insert(key, i);
            Ok(i)
        };

        for (key, sub) in subs {
            let mut include = Vec::new();
            for p in &sub.include {
                let i = intern(p, sub.ignore_case, cache)?;
                if !include.contains(&i) {
                    include.push(i);
                }
            }
            let mut exclude = Vec::new();
            for p in &sub.exclude {
                let i = intern(p, sub.ignore_case, cache)?;
                if !exclude.contains(&i) {
                    exclude.push(i);
                }
            }
            compiled_subs.push(CompiledSub {
                key,
                include,
                exclude,
                streams: sub.streams.clone(),
                needs_every_line: false,
            });
        }

        for (s, sub) in compiled_subs.iter_mut().enumerate() {
            for &p in &sub.include {
                uses[p as usize].included_by.push(s as u32);
            }
            for &p in &sub.exclude {
                uses[p as usize].excluded_by.push(s as u32);
            }
            sub.needs_every_line = sub.include.is_empty()
                || sub
                    .include
                    .iter()
                    .any(|&p| patterns[p as usize].required.is_none());
        }

        let mut literal_ids: HashMap<&[u8], u32> = HashMap::new();
        let mut literals: Vec<&[u8]> = Vec::new();
        let mut literal_patterns: Vec<Vec<u32>> = Vec::new();
        let mut always = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            match &p.required {
                None => always.push(i as u32),
                Some(lits) => {
                    for lit in lits {
                        let id = *literal_ids.entry(lit.as_slice()).or_insert_with(|| {
                            literals.push(lit.as_slice());
                            literal_patterns.push(Vec::new());
                            (literals.len() - 1) as u32
                        });
                        literal_patterns[id as usize].push(i as u32);
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
            memory += ac.memory_usage();
            if memory > limits.total_size {
                return Err(CompileError::TooLarge {
                    size: memory,
                    limit: limits.total_size,
                });
            }
            Ok(Some(ac))
        };
        let prefilter = automaton(MatchKind::Standard)?;
        let packed = packed::Config::new()
            .match_kind(packed::MatchKind::LeftmostFirst)
            .builder()
            .extend(&literals)
            .build();
        let skip = match packed {
            Some(searcher) => {
                memory += searcher.memory_usage();
                Some(LiteralFinder::Packed(searcher))
            }
            None => automaton(MatchKind::LeftmostFirst)?.map(LiteralFinder::Automaton),
        };

        let keys = |ps: &[u32]| -> Vec<&PatternKey> {
            ps.iter().map(|&p| &patterns[p as usize].key).collect()
        };
        let combined_limit = limits.pattern_size.saturating_mul(4);
        let exclude_regex = |only: &CompiledSub| -> Option<Option<meta::Regex>> {
            if only.exclude.is_empty() {
                return Some(None);
            }
            pattern::combined(&keys(&only.exclude), false, combined_limit).map(Some)
        };
        let (buffer_regex, line_dfa, exclude_regex) = match compiled_subs.as_slice() {
            [only]
                if !only.include.is_empty() && only.include.len() <= BUFFER_REGEX_MAX_PATTERNS =>
            {
                match (
                    pattern::combined(&keys(&only.include), true, combined_limit),
                    exclude_regex(only),
                ) {
                    (Some(re), Some(ex)) => (Some(re), None, ex),
                    _ => (None, None, None),
                }
            }
            [only] if !only.include.is_empty() && only.include.len() <= LINE_DFA_MAX_PATTERNS => {
                let dfa_limit = limits.pattern_size.saturating_mul(16);
                match (
                    pattern::line_dfa(&keys(&only.include), dfa_limit),
                    exclude_regex(only),
                ) {
                    (Some(dfa), Some(ex)) => (None, Some(dfa), ex),
                    _ => (None, None, None),
                }
            }
            _ => (None, None, None),
        };
        let buffer_regex_exact = (buffer_regex.is_some() || line_dfa.is_some())
            && compiled_subs[0]
                .include
                .iter()
                .all(|&p| !patterns[p as usize].has_line_anchors);
        memory += buffer_regex.as_ref().map_or(0, |r| r.memory_usage());
        memory += exclude_regex.as_ref().map_or(0, |r| r.memory_usage());
        memory += line_dfa
            .as_ref()
            .map_or(0, |d| d.get_nfa().memory_usage() + pattern::LINE_DFA_CACHE);

        // Only a lone subscription has a `line_dfa`.
        let line_dfa_after = match compiled_subs.as_slice() {
            [only] if only.include.len() <= LINE_DFA_AT_ONCE_MAX_PATTERNS => 0,
            _ => limits.line_dfa_after,
        };
        Ok(Matcher {
            patterns,
            uses,
            subs: compiled_subs,
            prefilter,
            skip,
            literal_patterns,
            always,
            buffer_regex,
            line_dfa,
            line_dfa_after,
            buffer_regex_exact,
            exclude_regex,
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            memory,
        })
    }

    pub fn subscription_count(&self) -> usize {
        self.subs.len()
    }

    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }

    /// Approximate heap bytes of the compiled patterns and prefilter.
    pub fn memory_usage(&self) -> usize {
        self.memory
    }

    /// The caller's key of the subscription at dense index `sub`.
    pub fn key(&self, sub: u32) -> SubKey {
        self.subs[sub as usize].key
    }

    /// Whether subscription `sub` listens to `stream` (its `streams` selector).
    pub fn selects(&self, sub: u32, stream: &Stream) -> bool {
        self.subs
            .get(sub as usize)
            .is_some_and(|s| s.streams.matches(stream))
    }

    /// Finds the lines of `text` (lines separated by `\n`, a `\r` before it ignored)
    /// that any subscription selecting `stream` wants, calling `on_hit` for each in
    /// order.
    pub fn scan<'t>(
        &self,
        stream: &Stream,
        text: &'t str,
        scratch: &mut Scratch,
        on_hit: impl FnMut(&LineHit<'t, '_>),
    ) {
        let elig = scratch.eligibility(self, stream);
        if !elig.any {
            return;
        }
        let bytes = text.as_bytes();
        let end = bytes.len();
        // Each strategy names the next position (at or after `pos`) that may lie in a
        // wanted line; the walk decides that line and jumps past it.
        if let Some(re) = &self.buffer_regex {
            // One subscription: its patterns as one regex over the whole buffer, as
            // ripgrep searches. A match inside one line already satisfies the includes.
            self.walk(text, &elig, scratch, on_hit, |pos| {
                re.find(regex_automata::Input::new(bytes).span(pos..end))
                    .map(|m| Candidate {
                        at: m.start(),
                        found: Found::MatchEnd(m.end()),
                        line: None,
                    })
            });
        } else if let Some((dfa, cache)) = self.warm_line_dfa(scratch, end) {
            // One subscription of many patterns: the first line any of them matches, a
            // buffer at a time. If the lazy DFA gives up, the walk goes on from there
            // as it would have without it.
            let literal = self.skip.as_ref().filter(|_| !elig.every_line);
            let mut lanes = std::mem::take(&mut scratch.lanes);
            lanes.reset();
            let mut skip = DfaSkip {
                dfa,
                cache,
                lanes,
                literal: literal.map(|finder| (finder, LiteralSkip::default())),
                gave_up: false,
            };
            self.walk(text, &elig, scratch, on_hit, |pos| skip.next(bytes, pos));
            scratch.lanes = skip.lanes;
            // Given up, or cleared because it was too small for these patterns (each
            // refill costs more than the literal prefilter: 5,000 templates ran under
            // 1 MB/s): the literal prefilter from now on.
            if !skip.gave_up && skip.cache.clear_count() == 0 {
                scratch.dfa_cache = Some(skip.cache);
            }
        } else if elig.every_line {
            self.walk(text, &elig, scratch, on_hit, |pos| Some(Candidate::at(pos)));
        } else if let Some(finder) = &self.skip {
            let mut literal = LiteralSkip::default();
            self.walk(text, &elig, scratch, on_hit, |pos| {
                literal.next(finder, bytes, pos)
            });
        }
    }

    /// The lazy DFA and this thread's cache for it, once `line_dfa_after` bytes have
    /// been scanned (counting `len` more), unless it was given up on.
    fn warm_line_dfa(
        &self,
        scratch: &mut Scratch,
        len: usize,
    ) -> Option<(&hybrid::dfa::DFA, LaneCache)> {
        let dfa = self.line_dfa.as_ref()?;
        let before = scratch.scanned;
        scratch.scanned = before.saturating_add(len as u64);
        if before < self.line_dfa_after {
            return None;
        }
        Some((dfa, scratch.dfa_cache.take()?))
    }

    fn walk<'t>(
        &self,
        text: &'t str,
        elig: &Eligibility,
        scratch: &mut Scratch,
        mut on_hit: impl FnMut(&LineHit<'t, '_>),
        mut next: impl FnMut(usize) -> Option<Candidate>,
    ) {
        let bytes = text.as_bytes();
        let (mut pos, mut index, mut counted) = (0usize, 0u64, 0usize);
        while pos < bytes.len() {
            let Some(Candidate { at, found, line }) = next(pos) else {
                break;
            };
            // An empty match at the very end is no line when the text ends in `\n`.
            if at == bytes.len() && bytes.last().is_none_or(|&b| b == b'\n') {
                break;
            }
            let (start, end) = match line {
                // Never before `pos`: the strategy's line starts at or after it.
                Some((start, end)) => (start.max(pos), end),
                None => (
                    line_start_after(bytes, pos, at),
                    memchr::memchr(b'\n', &bytes[at..]).map_or(bytes.len(), |i| at + i),
                ),
            };
            // Lines skipped since the last one looked at (none when most lines match:
            // no counting call per line then).
            if counted < start {
                index += memchr::memchr_iter(b'\n', &bytes[counted..start]).count() as u64;
            }
            let line = trim_cr(&text[start..end]);
            let included = self.buffer_regex_exact
                && match found {
                    Found::Nothing => false,
                    Found::MatchEnd(e) => e <= start + line.len(),
                    Found::InLine => true,
                };
            let wanted = if included {
                scratch.begin_line_unverified(0);
                self.exclude_regex
                    .as_ref()
                    .is_none_or(|re| !re.is_match(line.as_bytes()))
            } else {
                self.evaluate(line, elig, scratch)
            };
            if wanted {
                on_hit(&LineHit {
                    index,
                    line,
                    matcher: self,
                    scratch,
                });
            }
            // Past this line and its newline.
            index += 1;
            counted = end + 1;
            pos = end + 1;
        }
    }

    /// The keys of the subscriptions that want one line of `stream`.
    pub fn matching(&self, stream: &Stream, line: &str, scratch: &mut Scratch) -> Vec<SubKey> {
        let elig = scratch.eligibility(self, stream);
        if !elig.any || !self.evaluate(line, &elig, scratch) {
            return Vec::new();
        }
        scratch.hits.iter().map(|&s| self.key(s)).collect()
    }

    /// Decides one line; on `true`, `scratch.hits` holds the subscriptions that want it.
    fn evaluate(&self, line: &str, elig: &Eligibility, scratch: &mut Scratch) -> bool {
        scratch.begin_line();
        let stamp = scratch.stamp;
        if let Some(ac) = &self.prefilter {
            for m in ac.find_overlapping_iter(line.as_bytes()) {
                for &p in &self.literal_patterns[m.pattern().as_usize()] {
                    scratch.add_candidate(p);
                }
            }
        }
        for &p in &self.always {
            scratch.add_candidate(p);
        }

        for c in 0..scratch.candidates.len() {
            let p = scratch.candidates[c];
            let included_by = &self.uses[p as usize].included_by;
            // Run only a pattern that can still add a subscription: once the only
            // subscription has a match, the other candidates need not run (if its
            // spans are asked for, `span_patterns` runs them).
            if !included_by
                .iter()
                .any(|&s| elig.subs[s as usize] && scratch.sub_hit[s as usize] != stamp)
            {
                continue;
            }
            if scratch.test(p, &self.patterns[p as usize], line) {
                for &s in included_by {
                    if elig.subs[s as usize] && scratch.sub_hit[s as usize] != stamp {
                        scratch.sub_hit[s as usize] = stamp;
                        scratch.hits.push(s);
                    }
                }
            }
        }
        for &s in &elig.match_all {
            if scratch.sub_hit[s as usize] != stamp {
                scratch.sub_hit[s as usize] = stamp;
                scratch.hits.push(s);
            }
        }
        if scratch.hits.is_empty() {
            return false;
        }

        let mut any_excluded = false;
        for c in 0..scratch.candidates.len() {
            let p = scratch.candidates[c];
            for &s in &self.uses[p as usize].excluded_by {
                let s = s as usize;
                if scratch.sub_hit[s] == stamp
                    && scratch.sub_excluded[s] != stamp
                    && scratch.test(p, &self.patterns[p as usize], line)
                {
                    scratch.sub_excluded[s] = stamp;
                    any_excluded = true;
                }
            }
        }
        if any_excluded {
            let excluded = &scratch.sub_excluded;
            scratch.hits.retain(|&s| excluded[s as usize] != stamp);
        }
        !scratch.hits.is_empty()
    }
}

/// A line that at least one subscription wants.
pub struct LineHit<'t, 's> {
    /// 0-based line number within the scanned text.
    pub index: u64,
    /// The line, without its terminator.
    pub line: &'t str,
    matcher: &'s Matcher,
    scratch: &'s Scratch,
}

impl LineHit<'_, '_> {
    /// Dense indices of the subscriptions that want this line (see [`Matcher::key`]).
    pub fn subs(&self) -> &[u32] {
        &self.scratch.hits
    }

    /// Highlight spans of subscription `sub` in this line: `[start, end)` in characters,
    /// one per include-pattern hit, sorted.
    pub fn spans(&self, sub: u32) -> Vec<[usize; 2]> {
        let patterns = self.span_patterns(sub);
        self.spans_of(patterns)
    }

    /// As [`spans`](Self::spans), but computed once per line for all subscriptions
    /// whose include patterns that matched are the same (a pattern shared by a
    /// thousand clients is searched for its spans once, not a thousand times).
    pub fn spans_cached(&self, sub: u32, cache: &mut SpanCache) -> Vec<[usize; 2]> {
        // No include patterns (every line wanted): nothing to highlight, nothing to
        // look up (perf: the lookup was 3% of a hub sending every line to 10 clients).
        if self.matcher.subs[sub as usize].include.is_empty() {
            return Vec::new();
        }
        let line = (self.index, self.line.as_ptr() as usize);
        if cache.line != line {
            cache.line = line;
            cache.entries.clear();
        }
        cache.key.clear();
        cache.key.extend(self.span_patterns(sub));
        if let Some((_, spans)) = cache.entries.iter().find(|(k, _)| *k == cache.key) {
            return spans.clone();
        }
        let spans = self.spans_of(cache.key.iter().copied());
        cache.entries.push((cache.key.clone(), spans.clone()));
        spans
    }

    /// The include patterns of `sub` that can have hits in this line: when the
    /// matcher verified patterns one by one, those that matched and the candidates
    /// it did not need to run.
    fn span_patterns(&self, sub: u32) -> impl Iterator<Item = u32> + '_ {
        self.matcher.subs[sub as usize]
            .include
            .iter()
            .copied()
            .filter(|&p| !self.scratch.verified || self.scratch.may_match(p))
    }

    fn spans_of(&self, patterns: impl Iterator<Item = u32>) -> Vec<[usize; 2]> {
        let mut spans = Vec::new();
        for p in patterns {
            let regex = &self.matcher.patterns[p as usize].regex;
            spans.extend(
                regex
                    .find_iter(self.line.as_bytes())
                    .filter(|m| !m.is_empty())
                    .map(|m| [m.start(), m.end()]),
            );
        }
        spans.sort_unstable();
        spans.dedup();
        to_char_offsets(self.line, &mut spans);
        spans
    }
}

/// Spans already computed for the current line, by the include patterns they are of.
#[derive(Debug, Default)]
pub struct SpanCache {
    line: (u64, usize),
    key: Vec<u32>,
    entries: Vec<(Vec<u32>, Vec<[usize; 2]>)>,
}

/// Turns byte offsets into character offsets (the protocol counts characters).
fn to_char_offsets(line: &str, spans: &mut [[usize; 2]]) {
    if line.is_ascii() {
        return;
    }
    for span in spans.iter_mut() {
        for off in span.iter_mut() {
            *off = line[..*off].chars().count();
        }
    }
}

/// Which subscriptions apply to one stream, computed once per (matcher, stream).
#[derive(Debug)]
struct Eligibility {
    subs: Vec<bool>,
    any: bool,
    every_line: bool,
    /// Eligible subscriptions without include patterns.
    match_all: Vec<u32>,
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
    stamp: u32,
    candidate_seen: Vec<u32>,
    tested: Vec<u32>,
    matched: Vec<u32>,
    sub_hit: Vec<u32>,
    sub_excluded: Vec<u32>,
    candidates: Vec<u32>,
    hits: Vec<u32>,
    /// Whether `matched` tells, for this line, which patterns matched.
    verified: bool,
    /// This thread's cache for the matcher's `line_dfa`; `None` once a search gave
    /// up on this matcher (the literal prefilter takes over).
    dfa_cache: Option<LaneCache>,
    /// The lanes' hit lists for `line_dfa`, kept for their allocations.
    lanes: LaneSearch,
    /// Bytes scanned with this matcher so far (see `Limits::line_dfa_after`).
    scanned: u64,
}

impl Scratch {
    fn eligibility(&mut self, m: &Matcher, stream: &Stream) -> Arc<Eligibility> {
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
            self.dfa_cache = m
                .line_dfa
                .as_ref()
                .map(|d| LaneCache::new(d, pattern::LINE_DFA_CACHE));
            self.scanned = 0;
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

    fn begin_line(&mut self) {
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
    fn begin_line_unverified(&mut self, sub: u32) {
        self.begin_line();
        self.verified = false;
        self.hits.push(sub);
    }

    fn add_candidate(&mut self, p: u32) {
        if self.candidate_seen[p as usize] != self.stamp {
            self.candidate_seen[p as usize] = self.stamp;
            self.candidates.push(p);
        }
    }

    /// Runs pattern `p` on the line once per line, remembering the answer.
    fn test(&mut self, p: u32, pattern: &Pattern, line: &str) -> bool {
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
    fn may_match(&self, p: u32) -> bool {
        let i = p as usize;
        self.matched[i] == self.stamp
            || (self.candidate_seen[i] == self.stamp && self.tested[i] != self.stamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(include: &[&str], exclude: &[&str], ignore_case: bool) -> Subscription {
        Subscription {
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            ignore_case,
            streams: StreamSelector::all(),
        }
    }

    fn stream() -> Stream {
        Stream::new("h", "/log", "default")
    }

    /// A matcher of several subscriptions, keyed by their index.
    fn build(subs: &[Subscription]) -> anyhow::Result<Matcher> {
        Ok(Matcher::build(
            subs.iter().enumerate().map(|(i, s)| (i as u64, s)),
            &mut PatternCache::default(),
            &Limits::default(),
        )?)
    }

    /// What `matching` says of each line on its own: what `scan` must find.
    fn line_by_line(m: &Matcher, text: &str) -> Vec<(u64, String, Vec<SubKey>)> {
        let mut scratch = Scratch::default();
        text.lines()
            .enumerate()
            .filter_map(|(i, l)| {
                let keys = m.matching(&stream(), l, &mut scratch);
                (!keys.is_empty()).then(|| (i as u64, l.to_owned(), keys))
            })
            .collect()
    }

    fn scan_all(m: &Matcher, text: &str) -> Vec<(u64, String, Vec<SubKey>)> {
        let mut out = Vec::new();
        m.scan(&stream(), text, &mut Scratch::default(), |hit| {
            let keys = hit.subs().iter().map(|&s| m.key(s)).collect();
            out.push((hit.index, hit.line.to_owned(), keys));
        });
        out
    }

    #[test]
    fn dense_and_sparse_stretches_find_the_same_lines_as_line_by_line() -> anyhow::Result<()> {
        let subs = [
            sub(&[r"foo\d"], &[], false),
            sub(&["bar"], &["skip"], false),
        ];
        let m = build(&subs)?;
        // Dense stretches (a literal on every line, some lines not matching), then
        // sparse ones, so the walk switches mode several times.
        let mut text = String::new();
        for i in 0..2000 {
            let line = match (i / 300 % 2, i % 7) {
                (0, 0) => "foo without digit".to_owned(),
                (0, 1) => format!("bar {i} skip"),
                (0, 2) => format!("bar {i}"),
                (0, _) => format!("x foo{} {i}", i % 10),
                (_, 0) => format!("bar {i}"),
                (_, _) => format!("nothing {i}"),
            };
            text.push_str(&line);
            text.push('\n');
        }
        let expected = line_by_line(&m, &text);
        assert!(expected.len() > 900, "{}", expected.len());
        assert_eq!(scan_all(&m, &text), expected);
        Ok(())
    }

    #[test]
    fn the_next_line_with_a_literal_is_found_with_few_literals_and_with_many() -> anyhow::Result<()>
    {
        // Up to 64 literals the walk skips with Teddy, beyond with the automaton.
        for n in [3, 64, 65, 300] {
            let words: Vec<String> = (0..n).map(|k| format!("w{k}x")).collect();
            let half = n / 2;
            let subs = [
                sub(
                    &words[..half].iter().map(String::as_str).collect::<Vec<_>>(),
                    &[],
                    false,
                ),
                sub(
                    &words[half..].iter().map(String::as_str).collect::<Vec<_>>(),
                    &[],
                    false,
                ),
            ];
            let m = build(&subs)?;
            if n > 64 {
                assert!(matches!(m.skip, Some(LiteralFinder::Automaton(_))), "{n}");
            }
            // A word at the very start, others far apart, near misses (`w1` without
            // its `x`), and the last line without a newline holding one.
            let mut text = format!("{} first\n", words[n - 1]);
            for i in 0..3000usize {
                let line = match i % 37 {
                    0 => format!("{i} and {} here", words[i % n]),
                    5 => format!("{i} w{}", i % n),
                    _ => format!("nothing on line {i}"),
                };
                text.push_str(&line);
                text.push('\n');
            }
            text.push_str(&format!("last {}", words[0]));
            let expected = line_by_line(&m, &text);
            assert_eq!(expected.len(), 2 + 3000usize.div_ceil(37), "{n}");
            assert_eq!(scan_all(&m, &text), expected, "{n}");
        }
        Ok(())
    }

    #[test]
    fn include_exclude_and_case() -> anyhow::Result<()> {
        let m = Matcher::single(
            &sub(&["error", "fatal"], &["healthcheck"], false),
            &Limits::default(),
        )?;
        let text = "ok\nan error here\r\nFATAL no\nfatal healthcheck error\nfatal yes";
        let got = scan_all(&m, text);
        assert_eq!(
            got.iter()
                .map(|(i, l, _)| (*i, l.as_str()))
                .collect::<Vec<_>>(),
            [(1, "an error here"), (4, "fatal yes")]
        );
        let m = Matcher::single(&sub(&["error", "fatal"], &[], true), &Limits::default())?;
        assert_eq!(scan_all(&m, text).len(), 4);
        Ok(())
    }

    #[test]
    fn no_include_matches_everything_but_excludes() -> anyhow::Result<()> {
        let m = Matcher::single(&sub(&[], &["^#"], false), &Limits::default())?;
        let got = scan_all(&m, "a\n#b\nc\n");
        assert_eq!(got.iter().map(|(i, _, _)| *i).collect::<Vec<_>>(), [0, 2]);
        Ok(())
    }

    #[test]
    fn many_subscriptions_share_patterns() -> anyhow::Result<()> {
        let subs = [
            sub(&["error"], &[], false),
            sub(&["error", "warn"], &["db"], false),
            sub(&[r"^\w+$"], &[], false),
        ];
        let m = Matcher::build(
            subs.iter().enumerate().map(|(i, s)| (i as u64 * 10, s)),
            &mut PatternCache::default(),
            &Limits::default(),
        )?;
        assert_eq!(m.pattern_count(), 4);
        let got = scan_all(&m, "error\nwarn db\nerror db x\nwarn x\n");
        assert_eq!(
            got,
            [
                (0, "error".into(), vec![0, 10, 20]),
                (2, "error db x".into(), vec![0]),
                (3, "warn x".into(), vec![10]),
            ]
        );
        Ok(())
    }

    #[test]
    fn spans_are_in_characters() -> anyhow::Result<()> {
        let m = Matcher::single(&sub(&["é+", "x"], &[], false), &Limits::default())?;
        let mut spans = Vec::new();
        m.scan(&stream(), "aéé x é\n", &mut Scratch::default(), |hit| {
            spans = hit.spans(0)
        });
        assert_eq!(spans, [[1, 3], [4, 5], [6, 7]]);
        Ok(())
    }

    #[test]
    fn spans_include_the_patterns_a_decided_line_did_not_need_to_run() -> anyhow::Result<()> {
        // Once "error" decides the line for subscription 0, "disk" and "on" are not
        // run; the spans must still show them. "never" is no candidate here.
        let subs = [
            sub(&["error", "disk", "never", "on"], &[], false),
            sub(&["zzz"], &[], false),
        ];
        let m = build(&subs)?;
        let mut got = Vec::new();
        m.scan(
            &stream(),
            "error on disk\nnothing\n",
            &mut Scratch::default(),
            |hit| got.push((hit.index, hit.subs().to_vec(), hit.spans(0))),
        );
        assert_eq!(got, [(0, vec![0], vec![[0, 5], [6, 8], [9, 13]])]);
        Ok(())
    }

    /// The DFA's cache memory as created, then after each of four scans of the same
    /// text, by one matcher of `n - 1` patterns that never match and one that does.
    fn dfa_memory_over_four_scans(n: usize, limits: &Limits) -> anyhow::Result<Vec<Option<usize>>> {
        let mut include: Vec<String> = (0..n - 1).map(|i| format!("never{i}x")).collect();
        include.push(r"err(or)? \d+".to_owned());
        let include: Vec<&str> = include.iter().map(String::as_str).collect();
        let m = Matcher::single(&sub(&include, &[], false), limits)?;
        let text = "ok 1\nerror 42 here\nerr\nerr 7\nnothing at all here, really\n";
        let mut scratch = Scratch::default();
        let mut dfa_memory = vec![m.line_dfa.as_ref().map(|d| d.create_cache().memory_usage())];
        for _ in 0..4 {
            let mut got = Vec::new();
            m.scan(&stream(), text, &mut scratch, |hit| {
                got.push(hit.line.to_owned())
            });
            assert_eq!(got, ["error 42 here", "err 7"]);
            dfa_memory.push(scratch.dfa_cache.as_ref().map(|c| c.memory_usage()));
        }
        assert!(dfa_memory[0].is_some(), "a lazy DFA for {n} patterns");
        Ok(dfa_memory)
    }

    #[test]
    fn many_patterns_switch_to_the_lazy_dfa_after_line_dfa_after_bytes() -> anyhow::Result<()> {
        // 260 patterns: past the DFA that starts at once, within its range.
        let limits = Limits {
            line_dfa_after: 100,
            ..Limits::default()
        };
        let dfa_memory = dfa_memory_over_four_scans(260, &limits)?;
        // 57 bytes a scan: the first two (0 and 57 bytes before) use the literal
        // prefilter, leaving the DFA's cache as created; from the third on it grows.
        assert_eq!(dfa_memory[0], dfa_memory[1]);
        assert_eq!(dfa_memory[1], dfa_memory[2]);
        assert!(dfa_memory[3] > dfa_memory[2], "{dfa_memory:?}");
        Ok(())
    }

    #[test]
    fn some_dozens_of_patterns_use_the_lazy_dfa_from_the_first_byte() -> anyhow::Result<()> {
        // 60 patterns: past the combined regex; the DFA does not wait.
        let limits = Limits {
            line_dfa_after: 1 << 30,
            ..Limits::default()
        };
        let dfa_memory = dfa_memory_over_four_scans(60, &limits)?;
        // The first scan built states; the same text needs no more after it.
        assert!(dfa_memory[1] > dfa_memory[0], "{dfa_memory:?}");
        assert_eq!(dfa_memory[1], dfa_memory[4]);
        Ok(())
    }

    /// One subscription of 60 patterns, the lazy DFA's range, searched with it from
    /// the first byte: `patterns` and patterns no line has.
    fn lazy_dfa_matcher(patterns: &[&str]) -> anyhow::Result<Matcher> {
        let mut include: Vec<String> = (patterns.len()..60).map(|i| format!("never{i}x")).collect();
        include.extend(patterns.iter().map(|p| (*p).to_owned()));
        let include: Vec<&str> = include.iter().map(String::as_str).collect();
        let limits = Limits {
            line_dfa_after: 0,
            ..Limits::default()
        };
        Ok(Matcher::single(&sub(&include, &[], false), &limits)?)
    }

    #[test]
    fn crlf_lines_match_as_the_lines_without_their_cr() -> anyhow::Result<()> {
        // 60 patterns (the lazy DFA's range, from the first byte) over CRLF lines,
        // more than a window of them: `closed\s` matches a line only by taking in
        // its `\r`, which the line's patterns do not see, so only the lines with
        // more after `closed` are wanted; `timeout$` matches before the `\r`.
        let m = lazy_dfa_matcher(&[r"closed\s", "timeout$"])?;
        let mut text = String::new();
        for i in 0..5_000 {
            match i % 4 {
                0 => text.push_str(&format!("{i} closed\r\n")),
                1 => text.push_str(&format!("{i} closed now\r\n")),
                2 => text.push_str(&format!("{i} read timeout\r\n")),
                _ => text.push_str(&format!("{i} nothing\r\n")),
            }
        }
        let want = line_by_line(&m, &text);
        assert_eq!(want.len(), 2_500);
        assert!(want.iter().all(|(i, _, _)| i % 4 == 1 || i % 4 == 2));
        assert_eq!(scan_all(&m, &text), want);
        Ok(())
    }

    #[test]
    fn a_lazy_dfa_that_gives_up_midway_leaves_the_rest_to_the_literal_walk() -> anyhow::Result<()> {
        // 60 patterns (the lazy DFA's range), one with a Unicode `\b`: the DFA
        // quits on the first non-ASCII byte, which comes after more than one
        // window of lines (hits already handed out), then the literal walk finds
        // the rest, and the lines after it are still found.
        let m = lazy_dfa_matcher(&[r"\bhit\b"])?;
        let mut text = String::new();
        let mut want = Vec::new();
        for i in 0..20_000 {
            let line = match i {
                15_000 => "ünïcode, then a hit here".to_owned(),
                _ if i % 1000 == 0 => format!("{i} a hit here"),
                _ => format!("{i} nothing, white noise"),
            };
            if line.contains("hit ") {
                want.push(line.clone());
            }
            text.push_str(&line);
            text.push('\n');
        }
        let mut got = Vec::new();
        let mut scratch = Scratch::default();
        m.scan(&stream(), &text, &mut scratch, |hit| {
            got.push(hit.line.to_owned())
        });
        assert_eq!(got, want);
        assert!(scratch.dfa_cache.is_none(), "the DFA is given up for good");
        Ok(())
    }

    #[test]
    fn limits_are_enforced() {
        let limits = Limits {
            max_patterns: 2,
            ..Limits::default()
        };
        let err = Matcher::single(&sub(&["a", "b", "c"], &[], false), &limits).unwrap_err();
        assert_eq!(err, CompileError::TooManyPatterns { count: 3, limit: 2 });
    }
}
