//! Property tests: the multi-pattern [`Matcher`] (one Aho-Corasick prefilter over the
//! literals of every pattern, then per-pattern verification) must answer exactly what
//! evaluating each subscription's regexes on their own, line by line, answers.
//!
//! Patterns come from a small grammar that produces realistic regexes (literals,
//! alternations, classes, `\b`, anchors, repetitions, `.*?` between literals, groups)
//! over a small alphabet with case-folding traps (é/É, ß/ẞ, k/K/KELVIN SIGN, s/S/LONG S);
//! texts are lines over the same alphabet and the patterns' own literal runs (so that
//! patterns hit often), ended by `\n` or `\r\n`. Subscriptions (1–4 at once, distinct
//! keys) draw their include and exclude lists from one pattern pool, so patterns are
//! shared; a single subscription, which the matcher searches differently, is common.
//!
//! The `regression_*` tests at the end are bugs these properties found, shrunk.
//!
//! The reference, per subscription and per line (split on `\n`, one trailing `\r`
//! removed): wanted = (no include || some include matches) && no exclude matches;
//! spans = the non-empty `find_iter` matches of every include pattern, in characters,
//! sorted and deduplicated.

mod support;

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence};
use regex::RegexBuilder;
use supergrep::line::Stream;
use supergrep::matcher::{
    Limits, Matcher, Pattern, PatternCache, PatternKey, Scratch, SpanCache, StreamSelector, SubKey,
    Subscription,
};
use support::filter::Filter;

// ---------------------------------------------------------------------------------------
// Generators

/// Pieces of both literals and text, so that patterns often hit. Includes characters
/// whose simple case folding is not ASCII: É/é, ẞ/ß, K (U+212A) ~ k/K, ſ (U+017F) ~ s/S.
const TOKENS: &[&str] = &[
    "a", "b", "c", "k", "s", "A", "K", "S", "é", "É", "ß", "ẞ", "\u{212A}", "\u{17F}", " ", "-",
    "1", "_", ".", "ab", "abc", "sk", "Ks", "éß", "err", "ERR",
];

fn token() -> impl Strategy<Value = &'static str> {
    prop::sample::select(TOKENS)
}

/// A literal of 1–3 tokens, escaped for the regex syntax.
fn literal() -> impl Strategy<Value = String> {
    prop::collection::vec(token(), 1..=3).prop_map(|t| regex::escape(&t.concat()))
}

fn class() -> impl Strategy<Value = String> {
    prop::sample::select(
        &[
            "[abk]",
            "[^a ]",
            "[a-c]",
            "[ké]",
            "[sſ]",
            "[éß]",
            r"\w",
            r"\d",
            r"\s",
            r"\W",
            ".",
            "[[:alpha:]]",
            r"\pL",
            r"[^\s]",
            "[K-]",
        ][..],
    )
    .prop_map(str::to_owned)
}

fn leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => literal(),
        2 => class(),
        1 => prop::sample::select(&[r"\b", r"\B", "^", "$"][..]).prop_map(str::to_owned),
        1 => Just(".*?".to_owned()),
    ]
}

/// A regex: leaves combined by concatenation, alternation, groups and repetition.
fn expr() -> impl Strategy<Value = String> {
    leaf().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            4 => prop::collection::vec(inner.clone(), 2..=4).prop_map(|v| v.concat()),
            2 => (prop::collection::vec(inner.clone(), 2..=3), any::<bool>()).prop_map(
                |(v, capture)| {
                    let open = if capture { "(" } else { "(?:" };
                    format!("{open}{})", v.join("|"))
                }
            ),
            2 => (
                inner.clone(),
                prop::sample::select(&["*", "+", "?", "{1,3}", "{2}", "*?", "+?", "??"][..])
            )
                .prop_map(|(e, op)| format!("(?:{e}){op}")),
            1 => inner.prop_map(|e| format!("({e})")),
        ]
    })
}

/// What people type: mostly a literal, a few alternatives, or a log template
/// (`lit.*?lit`), sometimes anything the grammar makes.
fn pattern() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => literal(),
        2 => prop::collection::vec(literal(), 2..=3).prop_map(|v| v.join("|")),
        2 => prop::collection::vec(literal(), 2..=3).prop_map(|v| v.join(".*?")),
        2 => (literal(), class(), literal()).prop_map(|(a, c, b)| format!(r"\b{a}{c}+{b}")),
        1 => literal().prop_map(|l| format!("^{l}")),
        1 => literal().prop_map(|l| format!("{l}$")),
        // Long literals: with ignore_case their case variants overflow the extractor's
        // limits, so the prefilter gets truncated or inner literals.
        1 => prop::collection::vec(token(), 4..=8).prop_map(|t| regex::escape(&t.concat())),
        // No literal at all, and patterns that match empty lines.
        1 => prop::sample::select(
            &["", "a*", r"^\w+$", "(?:ERR|err)?", "^$", r"^\s*$", r"\B", "x*$", r"^\W*$"][..]
        )
        .prop_map(str::to_owned),
        6 => expr(),
    ]
}

/// Raw text: lines over the alphabet and over `words` (so that patterns hit often;
/// with `stray_cr`, sometimes a `\r` inside a line), ended by `\n` or sometimes
/// `\r\n`; the last line may lack a terminator.
fn text_with(words: Vec<String>, stray_cr: bool) -> impl Strategy<Value = String> {
    let word = if words.is_empty() {
        token().prop_map(str::to_owned).boxed()
    } else {
        prop_oneof![2 => token().prop_map(str::to_owned), 1 => prop::sample::select(words)].boxed()
    };
    let piece = if stray_cr {
        prop_oneof![10 => word.clone(), 1 => Just("\r".to_owned())].boxed()
    } else {
        word.clone()
    };
    let line = prop::collection::vec(piece, 0..8).prop_map(|v| v.concat());
    let term = prop_oneof![4 => Just("\n"), 1 => Just("\r\n")];
    (
        prop::collection::vec((line, term), 0..10),
        prop::option::of(prop::collection::vec(word, 1..5)),
    )
        .prop_map(|(lines, last)| {
            let mut s: String = lines.into_iter().map(|(l, t)| l + t).collect();
            if let Some(last) = last {
                s.push_str(&last.concat());
            }
            s
        })
}

/// The literal-looking runs of the patterns (roughly: escapes and operators dropped).
fn words_of(specs: &[SubSpec]) -> Vec<String> {
    let mut words: Vec<String> = specs
        .iter()
        .flat_map(|s| s.include.iter().chain(&s.exclude))
        .flat_map(|p| {
            p.split(|c: char| r"\()[]{}|*+?^$.".contains(c))
                .filter(|w| !w.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    words.sort();
    words.dedup();
    words
}

/// Subscriptions and a text made of their literals.
fn subs_and_text(stray_cr: bool) -> impl Strategy<Value = (Vec<SubSpec>, String)> {
    subs(false).prop_flat_map(move |specs| {
        let words = words_of(&specs);
        (Just(specs), text_with(words, stray_cr))
    })
}

#[derive(Debug, Clone)]
struct SubSpec {
    include: Vec<String>,
    exclude: Vec<String>,
    ignore_case: bool,
    /// Stream selector entries (empty: all streams).
    streams: Vec<&'static str>,
}

/// 1–4 subscriptions whose patterns are drawn from one shared pool, so patterns are
/// shared between subscriptions (and between include and exclude lists).
fn subs(with_selectors: bool) -> impl Strategy<Value = Vec<SubSpec>> {
    prop::collection::vec(pattern(), 1..=6).prop_flat_map(move |pool| {
        let pick = prop::sample::select(pool);
        let selector = if with_selectors {
            prop::collection::vec(prop::sample::select(SELECTOR_ENTRIES), 0..=2).boxed()
        } else {
            Just(Vec::new()).boxed()
        };
        let sub = (
            prop::collection::vec(pick.clone(), 0..=3),
            prop::collection::vec(pick, 0..=2),
            any::<bool>(),
            selector,
        )
            .prop_map(|(include, exclude, ignore_case, streams)| SubSpec {
                include,
                exclude,
                ignore_case,
                streams,
            });
        // A single subscription takes a path of its own (one combined regex over the
        // whole buffer), so it gets a good share of the cases.
        prop_oneof![2 => prop::collection::vec(sub.clone(), 1), 3 => prop::collection::vec(sub, 2..=4)]
    })
}

// ---------------------------------------------------------------------------------------
// Reference

fn split_lines(text: &str) -> Vec<&str> {
    if text.is_empty() {
        return Vec::new();
    }
    let body = text.strip_suffix('\n').unwrap_or(text);
    body.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect()
}

/// A subscription of the reference: its key and its filter.
struct RefSub {
    key: SubKey,
    filter: Filter,
}

impl RefSub {
    fn new(key: SubKey, spec: &SubSpec) -> RefSub {
        RefSub {
            key,
            filter: Filter::new(&spec.include, &spec.exclude, spec.ignore_case),
        }
    }
}

/// Per wanted line: (line index, line text, key → spans).
type Hits = Vec<(u64, String, BTreeMap<SubKey, Vec<[usize; 2]>>)>;

fn reference(refs: &[&RefSub], text: &str) -> Hits {
    let mut out = Vec::new();
    for (i, line) in split_lines(text).into_iter().enumerate() {
        let wanted: BTreeMap<_, _> = refs
            .iter()
            .filter(|r| r.filter.matches(line))
            .map(|r| (r.key, r.filter.spans(line)))
            .collect();
        if !wanted.is_empty() {
            out.push((i as u64, line.to_owned(), wanted));
        }
    }
    out
}

fn scan(m: &Matcher, stream: &Stream, text: &str, scratch: &mut Scratch) -> Hits {
    let mut out = Vec::new();
    let mut cache = SpanCache::default();
    m.scan(stream, text, scratch, |hit| {
        let mut subs = BTreeMap::new();
        for &s in hit.subs() {
            let spans = hit.spans(s);
            // The hub's cached spans (shared between subscriptions) are the same.
            assert_eq!(hit.spans_cached(s, &mut cache), spans);
            let old = subs.insert(m.key(s), spans);
            assert!(old.is_none(), "subscription {} reported twice", m.key(s));
        }
        out.push((hit.index, hit.line.to_owned(), subs));
    });
    out
}

fn key_of(i: usize) -> SubKey {
    // Distinct, sparse, not in order of index.
    SubKey::from_raw((i as u64 * 7919 + 13) ^ 0x5a5a)
}

fn subscription(spec: &SubSpec) -> Subscription {
    Subscription {
        include: spec.include.clone(),
        exclude: spec.exclude.clone(),
        ignore_case: spec.ignore_case,
        streams: StreamSelector::new(&spec.streams).unwrap(),
    }
}

fn build(specs: &[SubSpec]) -> Matcher {
    let subs: Vec<Subscription> = specs.iter().map(subscription).collect();
    Matcher::build(
        subs.iter().enumerate().map(|(i, s)| (key_of(i), s)),
        &mut PatternCache::default(),
        // Many patterns use a lazy DFA once enough text has been seen: at once here.
        &Limits {
            line_dfa_after: 0,
            ..Limits::default()
        },
    )
    .unwrap_or_else(|e| panic!("matcher refused {specs:?}: {e}"))
}

/// The whole check for subscriptions that select every stream.
fn check_all_streams(specs: &[SubSpec], text: &str) -> Result<(), TestCaseError> {
    let refs: Vec<RefSub> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| RefSub::new(key_of(i), s))
        .collect();
    let m = build(specs);
    let stream = Stream::new("h", "/var/log/x.log", "default");
    let want = reference(&refs.iter().collect::<Vec<_>>(), text);

    let mut scratch = Scratch::default();
    let got = scan(&m, &stream, text, &mut scratch);
    prop_assert_eq!(&got, &want, "scan differs from the per-regex reference");

    // One line at a time, with the same (now warm) scratch.
    for (i, line) in split_lines(text).into_iter().enumerate() {
        let mut keys = m.matching(&stream, line, &mut scratch);
        keys.sort_unstable();
        let expected: Vec<SubKey> = want
            .iter()
            .find(|(j, _, _)| *j == i as u64)
            .map(|(_, _, subs)| subs.keys().copied().collect())
            .unwrap_or_default();
        prop_assert_eq!(
            keys,
            expected,
            "matching() differs on line {} {:?}",
            i,
            line
        );
    }

    // A reused scratch gives the same answer again.
    let again = scan(&m, &stream, text, &mut scratch);
    prop_assert_eq!(&again, &want, "second scan with a reused scratch differs");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Stream selectors

const SELECTOR_ENTRIES: &[&str] = &[
    "web",
    "db",
    "default",
    "nope",
    "h1:*",
    "*:/a.log",
    "*:/b/*",
    "h2:/b/c.log",
    "*:*.log",
    "h?:/a.*",
];

/// What each entry means, spelled out by hand.
fn entry_selects(entry: &str, s: &Stream) -> bool {
    match entry {
        "web" | "db" | "default" | "nope" => s.set == entry,
        "h1:*" => s.host == "h1",
        "*:/a.log" => s.path == "/a.log",
        "*:/b/*" => s.path.starts_with("/b/"),
        "h2:/b/c.log" => s.host == "h2" && s.path == "/b/c.log",
        "*:*.log" => s.path.ends_with(".log"),
        "h?:/a.*" => s.host.len() == 2 && s.host.starts_with('h') && s.path.starts_with("/a."),
        other => panic!("no meaning for {other}"),
    }
}

fn selects(entries: &[&str], s: &Stream) -> bool {
    entries.is_empty() || entries.iter().any(|e| entry_selects(e, s))
}

/// Streams with distinct ids.
fn streams() -> Vec<Stream> {
    vec![
        Stream::new("h1", "/a.log", "web"),
        Stream::new("h2", "/a.log", "db"),
        Stream::new("h1", "/b/c.log", "default"),
        Stream::new("h2", "/b/c.log", "web"),
        Stream::new("h10", "/a.txt", "other"),
    ]
}

/// Plus one file that is in two log sets: same id as the first stream, another set.
fn streams_sharing_an_id() -> Vec<Stream> {
    let mut s = streams();
    s.push(Stream::new("h1", "/a.log", "db"));
    s
}

fn check_streams(
    specs: &[SubSpec],
    streams: &[Stream],
    texts: &[(usize, String)],
) -> Result<(), TestCaseError> {
    let refs: Vec<RefSub> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| RefSub::new(key_of(i), s))
        .collect();
    let m = build(specs);
    let mut scratch = Scratch::default();
    // Streams interleave through one scratch, as batches do in the hub.
    for (si, text) in texts {
        let stream = &streams[*si];
        let eligible: Vec<&RefSub> = refs
            .iter()
            .zip(specs)
            .filter(|(_, spec)| selects(&spec.streams, stream))
            .map(|(r, _)| r)
            .collect();
        let want = reference(&eligible, text);
        let got = scan(&m, stream, text, &mut scratch);
        prop_assert_eq!(got, want, "scan of stream {} differs", stream.id);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Properties

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // A failure is kept as a named test below, not in a regressions file.
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        // Shrinking recompiles the matcher at every step; bound it.
        max_shrink_time: 60_000,
        ..ProptestConfig::default()
    }
}

/// Texts hold a `\r` inside a line now and then (not only before the `\n`).
const STRAY_CR: bool = true;

proptest! {
    #![proptest_config(config(800))]

    #[test]
    fn scan_equals_each_regex_on_its_own((specs, text) in subs_and_text(STRAY_CR)) {
        check_all_streams(&specs, &text)?;
    }
}

proptest! {
    #![proptest_config(config(300))]

    /// Past 32 include patterns, a single subscription is searched with one lazy DFA
    /// over the whole buffer instead of the literal prefilter: the drawn patterns of
    /// every subscription, plus fillers that never match, as one subscription.
    #[test]
    fn scan_of_many_patterns_equals_each_regex_on_its_own((specs, text) in subs_and_text(STRAY_CR)) {
        let mut spec = specs[0].clone();
        spec.include.extend(specs.iter().skip(1).flat_map(|s| s.include.clone()));
        if !spec.include.is_empty() {
            spec.include.extend((0..60).map(|i| format!("zq{i}qz")));
        }
        check_all_streams(&[spec], &text)?;
    }
}

proptest! {
    #![proptest_config(config(300))]

    /// The literals a pattern declares as required are in every line it matches.
    #[test]
    fn required_literals_are_in_every_match(
        p in pattern(),
        ignore_case in any::<bool>(),
        text in text_with(Vec::new(), true),
    ) {
        let key = PatternKey { source: p.clone(), ignore_case };
        let compiled = Pattern::compile(key, 2 << 20).unwrap();
        let reference = RegexBuilder::new(&p).case_insensitive(ignore_case).build().unwrap();
        for line in split_lines(&text) {
            let matches = reference.is_match(line);
            prop_assert_eq!(compiled.is_match(line), matches, "{:?} on {:?}", p, line);
            if let (true, Some(lits)) = (matches, &compiled.required) {
                prop_assert!(
                    lits.iter().any(|l| line.as_bytes().windows(l.len()).any(|w| w == &l[..])),
                    "{:?} matches {:?} but holds none of its literals {:?}",
                    p, line, lits.iter().map(|l| String::from_utf8_lossy(l)).collect::<Vec<_>>()
                );
            }
        }
    }

    #[test]
    fn stream_selector_matches_its_entries(
        entries in prop::collection::vec(prop::sample::select(SELECTOR_ENTRIES), 0..=3),
    ) {
        let sel = StreamSelector::new(&entries).unwrap();
        prop_assert_eq!(sel.selects_all(), entries.is_empty());
        for s in streams() {
            prop_assert_eq!(sel.matches(&s), selects(&entries, &s), "{:?} on {}", entries, s.id);
        }
    }
}

proptest! {
    #![proptest_config(config(200))]

    #[test]
    fn scan_respects_stream_selectors(
        (specs, texts) in subs(true).prop_flat_map(|specs| {
            let words = words_of(&specs);
            (Just(specs), prop::collection::vec((0..5usize, text_with(words, STRAY_CR)), 1..=6))
        }),
    ) {
        check_streams(&specs, &streams(), &texts)?;
    }

    /// The same with a file in two log sets (see `bug_same_path_in_two_log_sets`).
    #[test]

    fn scan_respects_stream_selectors_when_ids_repeat(
        (specs, texts) in subs(true).prop_flat_map(|specs| {
            let words = words_of(&specs);
            (Just(specs), prop::collection::vec((0..6usize, text_with(words, STRAY_CR)), 1..=6))
        }),
    ) {
        check_streams(&specs, &streams_sharing_an_id(), &texts)?;
    }
}

// ---------------------------------------------------------------------------------------
// Fixed cases (found by, or written alongside, the properties above)

fn spec(include: &[&str], exclude: &[&str], ignore_case: bool) -> SubSpec {
    SubSpec {
        include: include.iter().map(|s| s.to_string()).collect(),
        exclude: exclude.iter().map(|s| s.to_string()).collect(),
        ignore_case,
        streams: Vec::new(),
    }
}

fn check_exactly(specs: &[SubSpec], text: &str) {
    let refs: Vec<RefSub> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| RefSub::new(key_of(i), s))
        .collect();
    let m = build(specs);
    let got = scan(
        &m,
        &Stream::new("h", "/p", "default"),
        text,
        &mut Scratch::default(),
    );
    assert_eq!(got, reference(&refs.iter().collect::<Vec<_>>(), text));
}

#[test]
fn fixed_case_folding_and_crlf() {
    let specs = [
        spec(&["k"], &[], true),
        spec(&["s$", "ß"], &["^a"], true),
        spec(&[], &[r"\bé"], false),
    ];
    let text = "\u{212A}x\r\nabc s\r\n\u{17F}\nẞ\n\né here\nab\r";
    check_exactly(&specs, text);
    check_exactly(&specs[..1], text);
    check_exactly(&specs[1..2], text);
}

/// Found by `scan_equals_each_regex_on_its_own` (shrunk), fixed in 6019144: with
/// one subscription (one regex over the whole buffer), a pattern that matches an
/// empty line reported a line after the final newline: `^$` on "a\n" gave
/// `[(1, "", …)]`, and `supergrep --no-follow -e '^$'` on "a\nb\n" printed an empty
/// line (seq 3) and exited 0.
#[test]
fn regression_no_line_after_the_final_newline() {
    check_exactly(&[spec(&["^$"], &[], false)], "a\n");
    check_exactly(&[spec(&[r"^\s*$"], &[], false)], "a\nb\n");
}

/// Found by `scan_equals_each_regex_on_its_own` with `\r` inside lines, fixed in
/// 6019144: with one subscription the buffer regex was in CRLF mode, where `.` (and
/// so `.*?`) does not match `\r`; per line it does (and in grep and ripgrep), so
/// `a.b` on "a\rb\n" found no line.
#[test]
fn regression_dot_matches_a_cr_inside_a_line() {
    check_exactly(&[spec(&["a.b"], &[], false)], "a\rb\n");
    check_exactly(&[spec(&["a.*?b"], &[], false)], "a\r\rb\n");
    check_exactly(&[spec(&["b$", "c.$"], &[], false)], "ab\r\nc\r\r\nab\r");
}

/// Two streams with the same id (`host:path`) in different log sets: the hub makes
/// these when two `[[set]]`s of the config list the same file (one tailer per set),
/// and an agent's streams are keyed by (path, set). `Scratch` caches which
/// subscriptions apply by stream id alone, so the second stream gets the first one's
/// answer: the `db` subscriber below gets no line of the `db` stream.
#[test]

fn regression_same_path_in_two_log_sets() {
    let sub = Subscription {
        include: vec!["x".into()],
        streams: StreamSelector::new(&["db"]).unwrap(),
        ..Subscription::default()
    };
    let m = Matcher::single(&sub, &Limits::default()).unwrap();
    let web = Stream::new("h", "/var/log/app.log", "web");
    let db = Stream::new("h", "/var/log/app.log", "db");
    let mut scratch = Scratch::default();
    assert!(scan(&m, &web, "x\n", &mut scratch).is_empty());
    assert_eq!(scan(&m, &db, "x\n", &mut scratch).len(), 1, "db line lost");
}

#[test]
fn regression_an_empty_crlf_line_matches_end_then_start() {
    // `$` as `\r?$` in the buffer regex read the `\r`, and the `^` after it failed.
    check_exactly(&[spec(&["(?:\\.)*?.*?$^"], &[], false)], "\r\n");
    check_exactly(&[spec(&["$^"], &[], false)], "a\r\n\r\nb\r\n");
    check_exactly(&[spec(&["x$", "^$"], &[], false)], "x\r\n\r\nx\rx\r\n");
}
