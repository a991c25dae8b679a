//! One user pattern, compiled once: its regex (for verification and highlight spans)
//! and the literals any of its matches must contain (for the shared prefilter).

use regex_automata::{hybrid, meta, nfa::thompson};
use regex_syntax::hir::{
    Capture, Class, ClassBytes, ClassBytesRange, ClassUnicode, ClassUnicodeRange, Hir, HirKind,
    Look, Repetition,
};
use thiserror::Error;

use super::literals;

/// Why a pattern was refused. Messages name the pattern, and the position where there
/// is one, because users type these into a terminal or a browser field.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum PatternError {
    #[error("invalid pattern {pattern:?} at character {column}: {message}")]
    Syntax {
        pattern: String,
        /// 1-based character position of the error in the pattern.
        column: usize,
        message: String,
    },
    #[error("pattern {pattern:?} is too large once compiled (limit {limit} bytes)")]
    TooLarge { pattern: String, limit: usize },
    #[error("pattern {pattern:?}… is {len} bytes long (limit {limit} bytes)")]
    TooLong {
        /// The pattern's first characters only: it is too long to echo.
        pattern: String,
        len: usize,
        limit: usize,
    },
    #[error("pattern {pattern:?} could not be compiled: {message}")]
    Other { pattern: String, message: String },
}

impl PatternError {
    pub fn pattern(&self) -> &str {
        match self {
            PatternError::Syntax { pattern, .. }
            | PatternError::TooLarge { pattern, .. }
            | PatternError::TooLong { pattern, .. }
            | PatternError::Other { pattern, .. } => pattern,
        }
    }

    /// The `error` code a client is told (`protocol::code`).
    pub fn code(&self) -> &'static str {
        match self {
            PatternError::TooLong { .. } => crate::protocol::code::PATTERN_TOO_LONG,
            _ => crate::protocol::code::INVALID_REGEX,
        }
    }
}

/// Characters of a refused pattern that its error repeats.
const PREVIEW_CHARS: usize = 64;

/// A pattern as written, with its case flag: the key under which it is compiled once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PatternKey {
    pub source: String,
    pub ignore_case: bool,
}

/// A compiled pattern.
#[derive(Debug)]
pub struct Pattern {
    pub key: PatternKey,
    /// Leftmost-first regex over one line: decides matches and yields spans.
    pub regex: meta::Regex,
    /// Every match contains one of these; `None` means the pattern must be tried on
    /// every line (e.g. `^\w+$`).
    pub required: Option<Vec<Vec<u8>>>,
    /// Uses `^` or `$`, whose meaning differs between one line and a buffer of lines.
    pub has_line_anchors: bool,
}

impl Pattern {
    /// Compiles `key`, refusing patterns whose automaton would exceed `size_limit` bytes.
    pub fn compile(key: PatternKey, size_limit: usize) -> Result<Pattern, PatternError> {
        Pattern::compile_within(key, usize::MAX, size_limit)
    }

    /// [`compile`](Self::compile), refusing first, before any parsing, a pattern longer
    /// than `max_len` bytes: the parser's syntax tree and the case-folded HIR take
    /// hundreds of bytes per character before the automaton's size limit can say no
    /// (a 1 MiB `(?i)` pattern peaked at 310 MB and 1.35 s, measured at ea03e03).
    pub fn compile_within(
        key: PatternKey,
        max_len: usize,
        size_limit: usize,
    ) -> Result<Pattern, PatternError> {
        if key.source.len() > max_len {
            return Err(PatternError::TooLong {
                pattern: key.source.chars().take(PREVIEW_CHARS).collect(),
                len: key.source.len(),
                limit: max_len,
            });
        }
        let hir = parse(&key)?;
        let regex = meta::Regex::builder()
            .configure(
                meta::Regex::config()
                    .nfa_size_limit(Some(size_limit))
                    .onepass_size_limit(Some(size_limit))
                    .dfa_size_limit(Some(size_limit))
                    // Lines are short; a small lazy-DFA cache per pattern keeps thousands
                    // of patterns affordable.
                    .hybrid_cache_capacity(256 * 1024),
            )
            .build_from_hir(&hir)
            .map_err(|e| match e.size_limit() {
                Some(limit) => PatternError::TooLarge {
                    pattern: key.source.clone(),
                    limit,
                },
                None => PatternError::Other {
                    pattern: key.source.clone(),
                    message: e.to_string(),
                },
            })?;
        let required = literals::required(&hir);
        Ok(Pattern {
            key,
            regex,
            required,
            has_line_anchors: hir.properties().look_set().contains_anchor(),
        })
    }

    /// Heap bytes held by the compiled regex (caches excluded).
    pub fn memory_usage(&self) -> usize {
        self.regex.memory_usage() + self.required.iter().flatten().map(Vec::len).sum::<usize>()
    }

    pub fn is_match(&self, line: &str) -> bool {
        self.regex.is_match(line.as_bytes())
    }

    /// Whether the shared prefilter lets this pattern run on most lines: it has no
    /// required literal, or only short ones (`=`, `17`), which most log lines hold.
    pub fn runs_on_most_lines(&self) -> bool {
        self.required.as_ref().is_none_or(|lits| {
            lits.iter()
                .any(|l| l.len() < super::cost::STRONG_LITERAL_LEN)
        })
    }
}

/// Several patterns as one regex. With `multi_line` it can search a whole buffer of
/// lines at once (as ripgrep does): `^` and `$` match at line ends, CRLF included.
/// `None` when a pattern cannot be searched that way (`\A`, `\z`) or the result
/// would be too large.
pub fn combined(keys: &[&PatternKey], multi_line: bool, size_limit: usize) -> Option<meta::Regex> {
    let hirs = if multi_line {
        buffer_hirs(keys)?
    } else {
        keys.iter()
            .map(|key| parse(key).ok())
            .collect::<Option<Vec<_>>>()?
    };
    meta::Regex::builder()
        .configure(
            meta::Regex::config()
                .nfa_size_limit(Some(size_limit))
                .dfa_size_limit(Some(size_limit)),
        )
        .build_many_from_hir(&hirs)
        .ok()
}

/// How much memory one scanning thread's lazy DFA may take for [`line_dfa`]: it grows
/// only as far as the patterns and the text need (460 Loghub templates: about 24
/// MiB; 1,000 patterns: about 40 MiB; 3,000: 88 MiB). With too small a cache it
/// thrashes (2 MiB for 460 templates ran at 11 MB/s instead of 400), so the first time
/// it has to be cleared the matcher gives the DFA up (5,000 templates need more).
pub const LINE_DFA_CACHE: usize = 96 << 20;

/// Many patterns as one lazy DFA that finds, a buffer at a time, the first line in
/// which any of them matches (earliest match end), as ripgrep does with a pattern
/// list. No pattern can match a `\n` in it, so every match lies within one line.
/// `None` when a pattern cannot be searched that way (`\A`, `\z`) or it would be too
/// large. A search may still give up (a cache thrashing, non-ASCII text under a
/// Unicode `\b`): the caller then falls back to the literal prefilter.
pub fn line_dfa(keys: &[&PatternKey], size_limit: usize) -> Option<hybrid::dfa::DFA> {
    let hirs: Vec<Hir> = buffer_hirs(keys)?
        .into_iter()
        .map(|hir| rewrite_leaves(hir, &without_newline))
        .collect();
    let nfa = thompson::Compiler::new()
        .configure(thompson::Config::new().nfa_size_limit(Some(size_limit)))
        .build_many_from_hir(&hirs)
        .ok()?;
    hybrid::dfa::DFA::builder()
        .configure(
            hybrid::dfa::DFA::config()
                .cache_capacity(LINE_DFA_CACHE)
                // Give up at the first clear unless the states pay for themselves.
                .minimum_cache_clear_count(Some(1))
                .minimum_bytes_per_state(Some(4096))
                .unicode_word_boundary(true),
        )
        .build_from_nfa(nfa)
        .ok()
}

/// The patterns parsed for searching a whole buffer of lines: multi-line, `$` also
/// before a CRLF. `None` if one cannot be searched that way (`\A`, `\z`).
fn buffer_hirs(keys: &[&PatternKey]) -> Option<Vec<Hir>> {
    keys.iter()
        .map(|key| {
            let hir = parse_with(key, true).ok()?;
            if hir.properties().look_set().contains_anchor_haystack() {
                return None;
            }
            Some(rewrite_leaves(hir, &crlf_tolerant))
        })
        .collect()
}

/// `hir` with each leaf (empty, literal, class, look-around) replaced by `leaf(it)`.
fn rewrite_leaves(hir: Hir, leaf: &impl Fn(HirKind) -> Hir) -> Hir {
    match hir.into_kind() {
        HirKind::Concat(subs) => {
            Hir::concat(subs.into_iter().map(|h| rewrite_leaves(h, leaf)).collect())
        }
        HirKind::Alternation(subs) => {
            Hir::alternation(subs.into_iter().map(|h| rewrite_leaves(h, leaf)).collect())
        }
        HirKind::Repetition(rep) => Hir::repetition(Repetition {
            sub: Box::new(rewrite_leaves(*rep.sub, leaf)),
            ..rep
        }),
        HirKind::Capture(cap) => Hir::capture(Capture {
            sub: Box::new(rewrite_leaves(*cap.sub, leaf)),
            ..cap
        }),
        other => leaf(other),
    }
}

/// An HIR back from its kind, unchanged (regex-syntax hands the kind out by value).
fn hir_of(kind: HirKind) -> Hir {
    match kind {
        HirKind::Empty => Hir::empty(),
        HirKind::Literal(lit) => Hir::literal(lit.0),
        HirKind::Class(class) => Hir::class(class),
        HirKind::Look(look) => Hir::look(look),
        HirKind::Repetition(rep) => Hir::repetition(rep),
        HirKind::Capture(cap) => Hir::capture(cap),
        HirKind::Concat(subs) => Hir::concat(subs),
        HirKind::Alternation(subs) => Hir::alternation(subs),
    }
}

/// In a buffer of lines, `$` must also match before the `\r` of a CRLF line (lines
/// are matched without it): `$` becomes the CRLF-aware end of line, which matches
/// before a `\r` or a `\n` (never between the two), and leaves the `\r` unread, so a
/// `^` after it still sees the line start of an empty CRLF line (`$^` on `\r\n`).
/// Not CRLF mode: that would keep `.` from matching a `\r` inside a line, which the
/// per-line patterns do match. It also matches before a `\r` inside a line, where the
/// per-line `$` does not: patterns with anchors are verified line by line.
fn crlf_tolerant(leaf: HirKind) -> Hir {
    match leaf {
        HirKind::Look(Look::EndLF) => Hir::look(Look::EndCRLF),
        other => hir_of(other),
    }
}

/// A leaf unable to match a `\n`: lines are matched without one, so this changes no
/// match within a line, and a buffer match can no longer span two lines.
fn without_newline(leaf: HirKind) -> Hir {
    match leaf {
        HirKind::Literal(lit) if lit.0.contains(&b'\n') => Hir::fail(),
        HirKind::Class(Class::Unicode(mut class)) => {
            class.difference(&ClassUnicode::new([ClassUnicodeRange::new('\n', '\n')]));
            Hir::class(Class::Unicode(class))
        }
        HirKind::Class(Class::Bytes(mut class)) => {
            class.difference(&ClassBytes::new([ClassBytesRange::new(b'\n', b'\n')]));
            Hir::class(Class::Bytes(class))
        }
        other => hir_of(other),
    }
}

fn parse(key: &PatternKey) -> Result<Hir, PatternError> {
    parse_with(key, false)
}

fn parse_with(key: &PatternKey, multi_line: bool) -> Result<Hir, PatternError> {
    regex_syntax::ParserBuilder::new()
        .case_insensitive(key.ignore_case)
        .multi_line(multi_line)
        .build()
        .parse(&key.source)
        .map_err(|e| {
            let (column, message) = match &e {
                regex_syntax::Error::Parse(e) => (e.span().start.column, e.kind().to_string()),
                regex_syntax::Error::Translate(e) => (e.span().start.column, e.kind().to_string()),
                other => (1, other.to_string()),
            };
            PatternError::Syntax {
                pattern: key.source.clone(),
                column,
                message,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> PatternKey {
        PatternKey {
            source: s.to_owned(),
            ignore_case: false,
        }
    }

    #[test]
    fn syntax_error_names_pattern_and_position() {
        let err = Pattern::compile(key("ab(c"), 1 << 20).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid pattern \"ab(c\" at character 3: unclosed group"
        );
        let err = Pattern::compile(key(r"x\p{Nope}"), 1 << 20).unwrap_err();
        assert!(
            matches!(err, PatternError::Syntax { column: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_pattern_over_the_length_limit_is_refused_before_parsing() {
        // Unparsable too: the length is what is said.
        let long = format!("({}", "a".repeat(100));
        let err = Pattern::compile_within(key(&long), 100, 1 << 20).unwrap_err();
        assert!(
            matches!(&err, PatternError::TooLong { len: 101, limit: 100, pattern } if pattern.len() == PREVIEW_CHARS),
            "{err}"
        );
        assert_eq!(err.code(), "pattern_too_long");
        assert!(Pattern::compile_within(key(&"a".repeat(100)), 100, 1 << 20).is_ok());
    }

    #[test]
    fn huge_pattern_is_refused_by_size() {
        let err = Pattern::compile(key(r"\w{1000}\w{1000}"), 1 << 20).unwrap_err();
        assert!(matches!(err, PatternError::TooLarge { .. }), "{err}");
    }
}
