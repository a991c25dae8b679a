//! Matcher cost per line on real log lines, as the hub pays it: `Matcher::scan` over
//! whole batches of lines (up to 256 KiB, the tailer's read size), at 1 to 5,000
//! patterns and 1 to 100 subscriptions, with a `regex::RegexSet` baseline where it
//! finishes in reasonable time.
//!
//! Needs the benchmark corpus (Loghub samples and pattern lists):
//!
//!     SUPERGREP_CORPUS=/work/shared/corpus cargo bench --bench matcher
//!
//! Without `SUPERGREP_CORPUS` it says so and exits successfully without benchmarking.
//! Measurement times are kept short (whole run: a few minutes); pass criterion's own
//! flags after `--` for more (e.g. `-- --measurement-time 10`).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use regex::RegexSet;
use supergrep::line::Stream;
use supergrep::matcher::{
    Limits, Matcher, PatternCache, Scratch, StreamSelector, SubKey, Subscription,
};

/// The tailer's `read_chunk`: the largest batch the hub scans in one call.
const BATCH: usize = 256 * 1024;

/// The RegexSet baseline is skipped above this many patterns: with the Loghub
/// templates (`.*?` between literals) its lazy DFA thrashes; one pass over the
/// corpus took 1.3 s at 483 patterns and 14.5 s at 1,000 (so minutes per benchmark).
const REGEX_SET_MAX: usize = 100;

/// Up to this many patterns a single subscription is also measured on the path the
/// matcher takes for several subscriptions (literal prefilter, then per-pattern
/// verification), forced by adding a second subscription that never matches; a
/// single subscription of at most `BUFFER_REGEX_MAX_PATTERNS` (32) patterns is
/// otherwise searched as one combined regex. Shows where that threshold should be.
const MULTI_PATH_MAX: usize = 100;

/// A pattern no Loghub line contains.
const NEVER: &str = "zq9zq9zq";

struct Corpus {
    /// The Loghub samples, `\r` stripped, cut into batches of whole lines.
    batches: Vec<String>,
    lines: Vec<String>,
    bytes: u64,
    errors: Vec<String>,
    templates: Vec<String>,
}

impl Corpus {
    fn load(dir: &Path) -> Corpus {
        let read = |p: PathBuf| {
            std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        };
        let mut logs: Vec<PathBuf> = std::fs::read_dir(dir.join("loghub"))
            .unwrap_or_else(|e| panic!("{}/loghub: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        logs.sort();
        assert!(!logs.is_empty(), "no *.log in {}/loghub", dir.display());
        let mut text = String::new();
        for p in logs {
            // CRLF as stored in Loghub; real Linux logs end lines in LF.
            let t = read(p).replace('\r', "");
            text.push_str(&t);
            if !t.ends_with('\n') {
                text.push('\n');
            }
        }
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let mut batches = vec![String::new()];
        for line in &lines {
            if batches.last().unwrap().len() + line.len() + 1 > BATCH {
                batches.push(String::new());
            }
            let b = batches.last_mut().unwrap();
            b.push_str(line);
            b.push('\n');
        }
        let list = |name: &str| -> Vec<String> {
            read(dir.join("patterns").join(name))
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect()
        };
        Corpus {
            bytes: text.len() as u64,
            batches,
            lines,
            errors: list("errors.txt"),
            templates: list("loghub-templates.txt"),
        }
    }

    /// The real patterns, in an order that mixes the datasets: errors.txt first, then
    /// the templates (grouped by dataset in their file) in a fixed permutation.
    fn real_patterns(&self) -> Vec<String> {
        let n = self.templates.len();
        // 97 is prime and does not divide 460, so i·97 mod n visits every template.
        let stride = (97..).find(|s| gcd(*s, n) == 1).unwrap();
        self.errors
            .iter()
            .cloned()
            .chain((0..n).map(|i| self.templates[i * stride % n].clone()))
            .collect()
    }

    /// `n` patterns: the real ones first (483 of them), then variants derived from
    /// the templates. Variant `j` of template `t` is `w{j}x t` (even `j`) or
    /// `t w{j}x` (odd `j`): distinct patterns with the shape and literals of real
    /// ones, but the added word never occurs in the corpus, so variants never match.
    /// Prefixed variants bring their own long literal to the prefilter; suffixed
    /// ones usually share the template's literal, so every line the template matches
    /// also makes them candidates to verify (about n/460 extra regexes per line).
    /// `benches/compare.sh` derives its long list the same way.
    fn patterns(&self, n: usize) -> Vec<String> {
        let mut out = self.real_patterns();
        out.truncate(n);
        let mut j = 0;
        while out.len() < n {
            let t = &self.templates[j % self.templates.len()];
            out.push(if j % 2 == 0 {
                format!("w{j}x {t}")
            } else {
                format!("{t} w{j}x")
            });
            j += 1;
        }
        out
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn stream() -> Stream {
    Stream::new("bench", "/var/log/loghub.log", "default")
}

fn subscription(include: Vec<String>, exclude: Vec<String>, ignore_case: bool) -> Subscription {
    Subscription {
        include,
        exclude,
        ignore_case,
        streams: StreamSelector::all(),
    }
}

fn build(subs: &[Subscription]) -> Matcher {
    let started = Instant::now();
    let m = Matcher::build(
        subs.iter()
            .enumerate()
            .map(|(i, s)| (SubKey::from_raw(i as u64), s)),
        &mut PatternCache::default(),
        &Limits::default(),
    )
    .expect("build matcher");
    eprintln!(
        "  built {} subscription(s), {} distinct patterns in {:.0?}, ~{:.1} MiB",
        m.subscription_count(),
        m.pattern_count(),
        started.elapsed(),
        m.memory_usage() as f64 / (1 << 20) as f64
    );
    m
}

/// One pass over the corpus the way the hub does it; returns (lines hit, deliveries).
fn scan_all(m: &Matcher, stream: &Stream, batches: &[String], scratch: &mut Scratch) -> (u64, u64) {
    let (mut lines, mut deliveries) = (0u64, 0u64);
    for batch in batches {
        m.scan(stream, batch, scratch, |hit| {
            lines += 1;
            deliveries += hit.subs().len() as u64;
        });
    }
    (lines, deliveries)
}

fn configure(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
}

fn bench_patterns(c: &mut Criterion, corpus: &Corpus) {
    let stream = stream();
    let mut group = c.benchmark_group("patterns");
    configure(&mut group);
    group.throughput(Throughput::ElementsAndBytes {
        elements: corpus.lines.len() as u64,
        bytes: corpus.bytes,
    });
    for n in [1, 10, 100, 1_000, 5_000] {
        let patterns = corpus.patterns(n);
        eprintln!("patterns/{n}:");
        let m = build(&[subscription(patterns.clone(), Vec::new(), false)]);
        let mut scratch = Scratch::default();
        let (hit, _) = scan_all(&m, &stream, &corpus.batches, &mut scratch);
        eprintln!("  matcher: {hit} of {} lines match", corpus.lines.len());
        group.bench_with_input(BenchmarkId::new("matcher_scan", n), &m, |b, m| {
            b.iter(|| black_box(scan_all(m, &stream, &corpus.batches, &mut scratch)))
        });
        if n <= MULTI_PATH_MAX {
            let m = build(&[
                subscription(patterns.clone(), Vec::new(), false),
                subscription(vec![NEVER.to_owned()], Vec::new(), false),
            ]);
            assert_eq!(scan_all(&m, &stream, &corpus.batches, &mut scratch).0, hit);
            group.bench_with_input(
                BenchmarkId::new("matcher_scan_multi_path", n),
                &m,
                |b, m| b.iter(|| black_box(scan_all(m, &stream, &corpus.batches, &mut scratch))),
            );
        }
        if n > REGEX_SET_MAX {
            continue;
        }
        let set = RegexSet::new(&patterns).expect("RegexSet");
        let count = |set: &RegexSet| corpus.lines.iter().filter(|l| set.is_match(l)).count();
        let hit_set = count(&set);
        // The same answer, or the comparison means nothing.
        assert_eq!(hit_set as u64, hit, "RegexSet and matcher disagree at {n}");
        group.bench_with_input(BenchmarkId::new("regex_set_per_line", n), &set, |b, set| {
            b.iter(|| black_box(count(set)))
        });
    }
    group.finish();
}

/// `n` subscriptions of 20 patterns each, drawn (with a fixed seed) from the 483
/// real patterns, so subscriptions share most patterns; every 5th also excludes
/// something, every 10th (not the first) ignores case.
fn subscriptions(corpus: &Corpus, n: usize) -> Vec<Subscription> {
    let pool = corpus.real_patterns();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        // xorshift64
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    (0..n)
        .map(|i| {
            let include = (0..20)
                .map(|_| pool[next() as usize % pool.len()].clone())
                .collect();
            let exclude = if i % 5 == 4 {
                vec!["DEBUG|healthcheck".to_owned()]
            } else {
                Vec::new()
            };
            subscription(include, exclude, i % 10 == 9)
        })
        .collect()
}

fn bench_subscriptions(c: &mut Criterion, corpus: &Corpus) {
    let stream = stream();
    let mut group = c.benchmark_group("subscriptions");
    configure(&mut group);
    group.throughput(Throughput::ElementsAndBytes {
        elements: corpus.lines.len() as u64,
        bytes: corpus.bytes,
    });
    for n in [1, 10, 100] {
        eprintln!("subscriptions/{n}:");
        let m = build(&subscriptions(corpus, n));
        let mut scratch = Scratch::default();
        let (hit, deliveries) = scan_all(&m, &stream, &corpus.batches, &mut scratch);
        eprintln!(
            "  {hit} of {} lines wanted, {deliveries} deliveries",
            corpus.lines.len()
        );
        group.bench_with_input(BenchmarkId::new("matcher_scan", n), &m, |b, m| {
            b.iter(|| black_box(scan_all(m, &stream, &corpus.batches, &mut scratch)))
        });
    }
    group.finish();
}

fn main() {
    let Some(dir) = std::env::var_os("SUPERGREP_CORPUS") else {
        println!(
            "benches/matcher: SUPERGREP_CORPUS is not set, so nothing was measured.\n\
             Point it at the benchmark corpus (the directory holding loghub/ and patterns/):\n\
             \n    SUPERGREP_CORPUS=/work/shared/corpus cargo bench --bench matcher"
        );
        return;
    };
    let corpus = Corpus::load(Path::new(&dir));
    eprintln!(
        "corpus: {} lines, {} bytes in {} batches; {} + {} real patterns",
        corpus.lines.len(),
        corpus.bytes,
        corpus.batches.len(),
        corpus.errors.len(),
        corpus.templates.len()
    );
    let mut c = Criterion::default().configure_from_args();
    bench_patterns(&mut c, &corpus);
    bench_subscriptions(&mut c, &corpus);
    c.final_summary();
}
