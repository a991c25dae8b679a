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
//! thrashes). Which of these a matcher does is its [`plan`], chosen when it is built;
//! the literals are [`prefilter`]'s, a caller's working memory [`scratch`]'s.
//!
//! A [`Matcher`] is immutable; [`registry::Registry`] builds a new one when
//! subscriptions change and swaps it in, so matching never waits for a rebuild.

pub(crate) mod cost;
mod lanes;
pub(crate) mod literals;
pub(crate) mod pattern;
mod plan;
mod prefilter;
pub(crate) mod registry;
mod scratch;
pub(crate) mod selector;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use thiserror::Error;

use crate::line::{line_start_after, trim_cr, Stream};
pub use pattern::{Pattern, PatternError, PatternKey};
use plan::{Candidate, Decided, Found, Plan};
use prefilter::LiteralIndex;
use scratch::Eligibility;
pub use scratch::Scratch;
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
    /// Refused by the subscriber's own budget, as it compiles (`within`) or once
    /// compiled (`admit`); `code`: the `error` code that names the limit.
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

/// The caller's identity of a subscription (handed out by [`crate::subkey::Keys`]).
pub use crate::subkey::SubKey;

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

/// The distinct patterns of a matcher being built, each compiled once (through the
/// cache), within the limits on their number and compiled size.
#[derive(Default)]
struct Interned {
    index: HashMap<PatternKey, u32>,
    patterns: Vec<Arc<Pattern>>,
    uses: Vec<PatternUse>,
    memory: usize,
}

impl Interned {
    fn intern(
        &mut self,
        source: &str,
        ignore_case: bool,
        cache: &mut PatternCache,
        limits: &Limits,
    ) -> Result<u32, CompileError> {
        let key = PatternKey {
            source: source.to_owned(),
            ignore_case,
        };
        if let Some(&i) = self.index.get(&key) {
            return Ok(i);
        }
        if self.patterns.len() >= limits.max_patterns {
            return Err(CompileError::TooManyPatterns {
                count: self.patterns.len() + 1,
                limit: limits.max_patterns,
            });
        }
        let p = cache.get(key.clone(), limits)?;
        self.memory += p.memory_usage();
        if self.memory > limits.total_size {
            return Err(CompileError::TooLarge {
                size: self.memory,
                limit: limits.total_size,
            });
        }
        let i = self.patterns.len() as u32;
        self.patterns.push(p);
        self.uses.push(PatternUse::default());
        self.index.insert(key, i);
        Ok(i)
    }
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

/// An immutable compiled set of subscriptions.
#[derive(Debug)]
pub struct Matcher {
    patterns: Vec<Arc<Pattern>>,
    uses: Vec<PatternUse>,
    subs: Vec<CompiledSub>,
    literals: LiteralIndex,
    plan: Plan,
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
            literals: LiteralIndex::default(),
            plan: Plan::Shared,
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            memory: 0,
        }
    }

    /// Compiles one subscription on its own (terminal mode).
    pub fn single(sub: &Subscription, limits: &Limits) -> Result<Matcher, CompileError> {
        Matcher::build([(SubKey::ALONE, sub)], &mut PatternCache::default(), limits)
    }

    pub fn build<'a>(
        subs: impl IntoIterator<Item = (SubKey, &'a Subscription)>,
        cache: &mut PatternCache,
        limits: &Limits,
    ) -> Result<Matcher, CompileError> {
        let mut interned = Interned::default();
        let mut compiled_subs = Vec::new();
        for (key, sub) in subs {
            let mut ids = |sources: &[String]| -> Result<Vec<u32>, CompileError> {
                let mut ids = Vec::new();
                for p in sources {
                    let i = interned.intern(p, sub.ignore_case, cache, limits)?;
                    if !ids.contains(&i) {
                        ids.push(i);
                    }
                }
                Ok(ids)
            };
            let (include, exclude) = (ids(&sub.include)?, ids(&sub.exclude)?);
            compiled_subs.push(CompiledSub {
                key,
                include,
                exclude,
                streams: sub.streams.clone(),
                needs_every_line: false,
            });
        }
        let Interned {
            patterns,
            mut uses,
            mut memory,
            ..
        } = interned;
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
        let literals = LiteralIndex::build(&patterns, limits, &mut memory)?;
        let plan = Plan::choose(&compiled_subs, &patterns, limits);
        memory += plan.memory_usage();
        Ok(Matcher {
            patterns,
            uses,
            subs: compiled_subs,
            literals,
            plan,
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
        self.plan.scan(self, text, &elig, scratch, on_hit);
    }

    /// Walks `text` from the start: `next` (the plan's search) names a position that
    /// may lie in a wanted line, the line holding it is decided (by `decided`, what
    /// the search found, where it says enough), and `next` goes on past it.
    fn walk<'t>(
        &self,
        text: &'t str,
        elig: &Eligibility,
        scratch: &mut Scratch,
        mut on_hit: impl FnMut(&LineHit<'t, '_>),
        decided: Option<Decided<'_>>,
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
                // Never before `pos`: the plan's line starts at or after it.
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
            let included = match found {
                Found::Nothing => false,
                Found::MatchEnd(e) => e <= start + line.len(),
                Found::InLine => true,
            };
            let wanted = match decided {
                Some(Decided { exclude }) if included => {
                    scratch.begin_line_unverified(0);
                    exclude.is_none_or(|re| !re.is_match(line.as_bytes()))
                }
                _ => self.evaluate(line, elig, scratch),
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
        if let Some(ac) = &self.literals.present {
            for m in ac.find_overlapping_iter(line.as_bytes()) {
                for &p in &self.literals.patterns_of[m.pattern().as_usize()] {
                    scratch.add_candidate(p);
                }
            }
        }
        for &p in &self.literals.always {
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
            subs.iter()
                .enumerate()
                .map(|(i, s)| (SubKey::from_raw(i as u64), s)),
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
                assert!(
                    matches!(
                        m.literals.next,
                        Some(prefilter::LiteralFinder::Automaton(_))
                    ),
                    "{n}"
                );
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
            subs.iter()
                .enumerate()
                .map(|(i, s)| (SubKey::from_raw(i as u64 * 10), s)),
            &mut PatternCache::default(),
            &Limits::default(),
        )?;
        assert_eq!(m.pattern_count(), 4);
        let got = scan_all(&m, "error\nwarn db\nerror db x\nwarn x\n");
        let k = |ks: &[u64]| -> Vec<SubKey> { ks.iter().map(|&n| SubKey::from_raw(n)).collect() };
        assert_eq!(
            got,
            [
                (0, "error".into(), k(&[0, 10, 20])),
                (2, "error db x".into(), k(&[0])),
                (3, "warn x".into(), k(&[10])),
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
        let mut dfa_memory = vec![m.plan.line_dfa().map(|d| d.create_cache().memory_usage())];
        for _ in 0..4 {
            let mut got = Vec::new();
            m.scan(&stream(), text, &mut scratch, |hit| {
                got.push(hit.line.to_owned())
            });
            assert_eq!(got, ["error 42 here", "err 7"]);
            dfa_memory.push(scratch.lane.cache.as_ref().map(|c| c.memory_usage()));
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
        assert!(scratch.lane.cache.is_none(), "the DFA is given up for good");
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
