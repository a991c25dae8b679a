//! Terminal mode end to end: the real `supergrep` binary, real files in a temporary
//! directory, stdout read through a pipe while the program runs (DESIGN §3 and §5).
//!
//! Nothing here waits for a fixed time or asserts on timing: a test waits for what
//! stderr or stdout says (bounded by `support::wait::PATIENCE`), and "nothing else was
//! printed" is shown by appending a sentinel line afterwards and checking that it is
//! the very next line.
//!
//! Expected output is computed in the test wherever it can be: `--no-follow` scans are
//! compared with the same filter applied by the `regex` crate to the same bytes.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdout, Stdio};
use std::time::{Duration, Instant};

use regex::Regex;
use support::files::{append, append_bytes, copy_fixture, fixture};
use support::filter::Filter;
use support::hostname;
use support::proc::{bin, supergrep_in, Proc};
use support::wait::PATIENCE;

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

/// A line no fixture contains; tests add `-e SENTINEL` and append it last.
const SENTINEL: &str = "zz-sentinel-zz";

/// The lines of `bytes` as a reader of logs sees them: split on `\n`, an unterminated
/// last line counts, a trailing `\r` is not part of the line, invalid UTF-8 becomes
/// U+FFFD.
fn reference_lines(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let text = text.strip_suffix('\n').unwrap_or(&text);
    if text.is_empty() && bytes.is_empty() {
        return Vec::new();
    }
    text.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_owned())
        .collect()
}

/// Starts supergrep in `dir` and waits until it follows each of `files`.
fn follow(args: &[&str], dir: &Path, files: &[&str]) -> Proc {
    let mut r = supergrep_in(dir, args);
    for f in files {
        r.wait_following(Path::new(f));
    }
    r
}

/// `app.log` holding `initial` in a new temporary directory, followed by
/// `supergrep ARGS… app.log` (run in that directory).
fn follow_app_log(initial: &str, args: &[&str]) -> (tempfile::TempDir, PathBuf, Proc) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    fs::write(&log, initial).unwrap();
    let mut all = args.to_vec();
    all.push("app.log");
    let r = follow(&all, dir.path(), &["app.log"]);
    (dir, log, r)
}

/// Appends `bytes` in pieces of `piece` bytes, so lines are cut across writes.
fn append_in_pieces(path: &Path, bytes: &[u8], piece: usize) {
    for chunk in bytes.chunks(piece) {
        append_bytes(path, chunk);
    }
}

/// Appends the sentinel line and checks that it is the next thing printed: whatever
/// should not have been printed before it was not.
fn expect_sentinel_next(r: &mut Proc, path: &Path, prefix: &str) {
    append(path, &format!("{SENTINEL}\n"));
    assert_eq!(r.lines(1), [format!("{prefix}{SENTINEL}")]);
}

/// Reproducible junk: every byte value, NUL and invalid UTF-8 included.
fn junk(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = b"\0\xff\xfe\xc3\x28\x80\xed\xa0\x80\r\x00".to_vec();
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.push((seed >> 32) as u8);
    }
    out
}

/// How a run that ends by itself ended.
#[derive(Debug)]
struct Ended {
    code: i32,
    /// Stdout split on `\n` (each line must be terminated), nothing stripped.
    stdout: Vec<String>,
    stderr: String,
}

fn split_stdout(bytes: Vec<u8>) -> Vec<String> {
    let text = String::from_utf8(bytes).expect("stdout is UTF-8");
    if text.is_empty() {
        return Vec::new();
    }
    let body = text
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("stdout does not end with a newline: {text:?}"));
    body.split('\n').map(str::to_owned).collect()
}

/// Runs supergrep in `dir` until it exits by itself (bounded by PATIENCE).
fn run_to_end(args: &[&str], dir: &Path) -> Ended {
    let mut cmd = bin();
    cmd.args(args).current_dir(dir);
    command_to_end(cmd, args)
}

/// Runs `cmd` (supergrep `args`, maybe through a wrapper) to its end.
fn command_to_end(cmd: std::process::Command, args: &[&str]) -> Ended {
    let ended = support::proc::run_to_exit(cmd, &format!("supergrep {args:?}"));
    Ended {
        code: ended.code,
        stdout: split_stdout(ended.stdout),
        stderr: ended.stderr,
    }
}

fn args<'a>(fixed: &[&'a str], patterns: &[&'a str], excludes: &[&'a str]) -> Vec<&'a str> {
    let mut v = fixed.to_vec();
    for p in patterns {
        v.extend(["-e", p]);
    }
    for x in excludes {
        v.extend(["-v", x]);
    }
    v
}

// ---------------------------------------------------------------------------------
// 1. Follow mode
// ---------------------------------------------------------------------------------

#[test]
fn follow_prints_appended_matching_lines_only() {
    let (_dir, log, mut r) = follow_app_log(
        "old error, written before the start\n",
        &["-e", "error", "-e", SENTINEL],
    );

    append(&log, "GET /index 200\nerror: disk full\nok\n");
    append(&log, "all fine\nanother error here\n");
    assert_eq!(r.lines(2), ["error: disk full", "another error here"]);
    expect_sentinel_next(&mut r, &log, "");
}

/// Appends `fixture` (after starting with its first lines already in the file, which
/// must not be printed) in pieces that cut lines, and compares what is printed with
/// the reference filter.
fn follow_fixture_case(name: &str, extra_args: &[&str], reference: &Filter) {
    let dir = tempfile::tempdir().unwrap();
    let bytes = fixture(name);
    let log = dir.path().join("app.log");
    let head: usize = bytes
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .nth(9)
        .map(|(i, _)| i + 1)
        .unwrap();
    fs::write(&log, &bytes[..head]).unwrap();

    let mut a = extra_args.to_vec();
    a.extend(["-e", SENTINEL, "app.log"]);
    let mut r = follow(&a, dir.path(), &["app.log"]);

    let mut body = bytes.clone();
    if !body.ends_with(b"\n") {
        body.extend_from_slice(b"\r\n");
    }
    append_in_pieces(&log, &body, 997);
    let expected = reference.kept(&reference_lines(&body));
    assert!(
        !expected.is_empty(),
        "a test that expects nothing proves little"
    );
    assert_eq!(r.lines(expected.len()), expected);
    expect_sentinel_next(&mut r, &log, "");
}

#[test]
fn follow_or_over_several_patterns() {
    // `$` only matches if the `\r` of the CRLF fixture is stripped.
    let patterns = ["Failed password", "Invalid user", r"preauth\]$"];
    follow_fixture_case(
        "openssh.log",
        &args(&[], &patterns, &[]),
        &Filter::new(&patterns, &[], false),
    );
}

#[test]
fn follow_exclude() {
    let (patterns, excludes) = (["sshd"], ["Failed", "pam_unix"]);
    follow_fixture_case(
        "openssh.log",
        &args(&[], &patterns, &excludes),
        &Filter::new(&patterns, &excludes, false),
    );
}

#[test]
fn follow_ignore_case() {
    let patterns = ["failed PASSWORD", r"\[ERROR\]"];
    follow_fixture_case(
        "openssh.log",
        &args(&["-i"], &patterns, &[]),
        &Filter::new(&patterns, &[], true),
    );
    follow_fixture_case(
        "apache.log",
        &args(&["-i"], &patterns, &[]),
        &Filter::new(&patterns, &[], true),
    );
}

#[test]
fn follow_patterns_file() {
    let dir = tempfile::tempdir().unwrap();
    let pats = dir.path().join("patterns.txt");
    fs::write(&pats, "Received disconnect\nConnection closed by\n").unwrap();
    let pats = pats.to_str().unwrap().to_owned();
    follow_fixture_case(
        "openssh.log",
        &["-f", &pats, "-e", "Did not receive"],
        &Filter::new(
            &[
                "Received disconnect",
                "Connection closed by",
                "Did not receive",
            ],
            &[],
            false,
        ),
    );
}

#[test]
fn follow_starts_with_last_n_lines() {
    let bytes = fixture("openssh.log");
    let lines = reference_lines(&bytes);
    let first30: String = lines[..30].iter().map(|l| format!("{l}\r\n")).collect();
    let reference = Filter::new(&["Failed password", "Invalid user", SENTINEL], &[], false);
    for n in [10usize, 1000] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        fs::write(&log, &first30).unwrap();
        let n_arg = n.to_string();
        let a = [
            "-n",
            &n_arg,
            "-e",
            "Failed password",
            "-e",
            "Invalid user",
            "-e",
            SENTINEL,
            "app.log",
        ];
        let mut r = follow(&a, dir.path(), &["app.log"]);
        let expected = reference.kept(&lines[30usize.saturating_sub(n)..30]);
        assert!(!expected.is_empty());
        assert_eq!(r.lines(expected.len()), expected, "-n {n}");
        // Then it follows, and the start was exactly those lines.
        expect_sentinel_next(&mut r, &log, "");
    }
}

#[test]
fn follow_json_fields_spans_and_seq() {
    let patterns = ["error", r"ü\w+"];
    let reference = Filter::new(&patterns, &[], false);
    let (_dir, log, mut r) = follow_app_log("", &args(&["--format", "json"], &patterns, &[]));

    let texts = [
        "naïve café error — ümlaut überall error ✓",
        "no match on this one",
        "日本語のログ: error",
    ];
    append(&log, &texts.map(|t| format!("{t}\r\n")).concat());
    let more = ["error 1", "error 2", "error 3"];
    append(&log, &more.map(|t| format!("{t}\n")).concat());

    let objects: Vec<serde_json::Value> = r
        .lines(5)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let expected_texts = [texts[0], texts[2], more[0], more[1], more[2]];
    let ts = Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$").unwrap();
    let fields: BTreeSet<&str> = ["seq", "ts", "host", "path", "set", "text", "spans"].into();
    for (o, text) in objects.iter().zip(expected_texts) {
        let o = o.as_object().unwrap();
        assert_eq!(
            o.keys().map(String::as_str).collect::<BTreeSet<_>>(),
            fields
        );
        assert_eq!(o["text"], text);
        assert_eq!(o["path"], "app.log");
        assert_eq!(o["host"], hostname().as_str());
        assert!(!o["set"].as_str().unwrap().is_empty(), "{o:?}");
        assert!(ts.is_match(o["ts"].as_str().unwrap()), "{o:?}");
        let spans: Vec<[usize; 2]> = serde_json::from_value(o["spans"].clone()).unwrap();
        assert_eq!(spans, reference.spans(text), "{text}");
    }
    // The non-ASCII line: character offsets, not byte offsets.
    let bytes_spans: Vec<[usize; 2]> = reference.include()[0]
        .find_iter(texts[0])
        .map(|m| [m.start(), m.end()])
        .collect();
    let spans: Vec<[usize; 2]> = serde_json::from_value(objects[0]["spans"].clone()).unwrap();
    assert_eq!(spans.len(), 4, "{spans:?}"); // error, ümlaut, überall, error
    assert!(!spans.iter().any(|s| bytes_spans.contains(s)), "{spans:?}");

    // seq rises by one per line of the stream, matched or not.
    let seq: Vec<u64> = objects.iter().map(|o| o["seq"].as_u64().unwrap()).collect();
    let first = seq[0];
    assert_eq!(seq, [first, first + 2, first + 3, first + 4, first + 5]);
}

#[test]
fn follow_template_format() {
    let (_dir, log, mut r) =
        follow_app_log("", &["-e", "error", "--format", "{host} {path}: {text}"]);
    append(&log, "fine\nan error happened\n");
    assert_eq!(
        r.lines(1),
        [format!("{} app.log: an error happened", hostname())]
    );
}

#[test]
fn follow_two_files_prefixes_file_names() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    fs::write(&a, "").unwrap();
    fs::write(&b, "").unwrap();
    let mut r = follow(
        &["-e", "error", "-e", SENTINEL, "a.log", "b.log"],
        dir.path(),
        &["a.log", "b.log"],
    );
    append(&a, "error in a\nnothing in a\n");
    assert_eq!(r.lines(1), ["a.log:error in a"]);
    append(&b, "nothing in b\nerror in b\n");
    assert_eq!(r.lines(1), ["b.log:error in b"]);
    expect_sentinel_next(&mut r, &a, "a.log:");
}

#[test]
fn filename_prefix_rules() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("a.log"), "error a\n").unwrap();
    fs::write(d.join("b.log"), "error b\n").unwrap();
    let case = |a: &[&str]| {
        let mut all = vec!["--no-follow", "-e", "error"];
        all.extend(a);
        let ended = run_to_end(&all, d);
        assert_eq!(ended.code, 0, "{a:?}: {}", ended.stderr);
        ended.stdout
    };
    assert_eq!(case(&["a.log"]), ["error a"]);
    assert_eq!(case(&["-H", "a.log"]), ["a.log:error a"]);
    assert_eq!(
        case(&["a.log", "b.log"]),
        ["a.log:error a", "b.log:error b"]
    );
    assert_eq!(
        case(&["--no-filename", "a.log", "b.log"]),
        ["error a", "error b"]
    );
    // A glob gets the prefix even when it matches one file.
    assert_eq!(case(&["a*.log"]), ["a.log:error a"]);
    assert_eq!(case(&["--no-filename", "a*.log"]), ["error a"]);
}

// ---------------------------------------------------------------------------------
// 2. Globs
// ---------------------------------------------------------------------------------

#[test]
fn glob_follows_file_created_after_start() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    fs::create_dir_all(logs.join("sub")).unwrap();
    fs::write(logs.join("a.log"), "old error\n").unwrap();
    let mut r = follow(
        &["-e", "error", "-e", SENTINEL, "logs/*.log"],
        dir.path(),
        &["logs/a.log"],
    );
    // Not matched by the glob: another extension, and a subdirectory.
    append(&logs.join("b.txt"), "error in b.txt\n");
    append(&logs.join("sub/c.log"), "error in sub/c.log\n");
    append(&logs.join("b.log"), "error in b.log\nnothing\n");
    assert_eq!(r.lines(1), ["logs/b.log:error in b.log"]);
    expect_sentinel_next(&mut r, &logs.join("b.log"), "logs/b.log:");
    // The file that was there at the start is still followed.
    expect_sentinel_next(&mut r, &logs.join("a.log"), "logs/a.log:");
}

/// More directories than inotify lets us watch (in a user namespace whose limit is 2
/// watches): stderr says why, once, and the files there are still followed (by the
/// periodic check instead of events).
#[test]
fn past_the_watch_limit_it_says_so_once_and_still_follows() {
    let userns = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "true"])
        .status();
    if !userns.is_ok_and(|s| s.success()) {
        eprintln!("skipped: no user namespaces here (`unshare --user` failed)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let names = [
        "logs/a/1.log",
        "logs/b/2.log",
        "logs/c/3.log",
        "logs/d/4.log",
    ];
    for name in names {
        let path = dir.path().join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, "").unwrap();
    }
    let supergrep = bin();
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--user", "--map-root-user", "sh", "-c"])
        .arg("echo 2 > /proc/sys/user/max_inotify_watches && exec \"$0\" \"$@\"")
        .arg(supergrep.get_program())
        .args(["-e", "hello", "logs/**/*.log"])
        .current_dir(dir.path());
    for (key, value) in supergrep.get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    let mut r = Proc::spawn_reading_stdout("supergrep", cmd);
    for name in names {
        r.wait_following(Path::new(name));
    }
    let said = r.wait_stderr(&["cannot watch for changes", "watch limit"]);
    for name in names {
        append(&dir.path().join(name), &format!("hello from {name}\n"));
        assert_eq!(r.lines(1), [format!("{name}:hello from {name}")]);
    }
    // Directories are tried again every second: still said once.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(r.stderr_count(&["cannot watch"]), 1, "{said}");
}

/// [`bin`] started by `sh` after `ulimit LIMITS` (e.g. `-S -n 40`).
fn with_ulimit(limits: &[&str]) -> std::process::Command {
    let supergrep = bin();
    let mut cmd = std::process::Command::new("sh");
    let set: Vec<String> = limits.iter().map(|l| format!("ulimit {l} && ")).collect();
    cmd.arg("-c")
        .arg(format!("{}exec \"$0\" \"$@\"", set.concat()))
        .arg(supergrep.get_program());
    for (key, value) in supergrep.get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    cmd
}

/// 100 files, each with one line naming it.
fn hundred_files(dir: &Path) -> Vec<String> {
    (0..100)
        .map(|i| {
            let line = format!("hello from {i:03}");
            fs::write(dir.join(format!("{i:03}.log")), format!("{line}\n")).unwrap();
            format!("{i:03}.log:{line}")
        })
        .collect()
}

#[test]
fn a_low_soft_limit_on_open_files_is_raised() {
    // Above 100 files and what the process needs besides.
    let hard = hard_open_file_limit();
    if hard < 1000 {
        eprintln!("skipped: the hard limit on open files here is {hard}");
        return;
    }
    scan_hundred_files_under(&["-S -n 40"]);
}

#[test]
fn past_the_open_file_limit_it_says_so_once_and_follows_what_it_opened() {
    let dir = tempfile::tempdir().unwrap();
    hundred_files(dir.path());
    let mut cmd = with_ulimit(&["-S -n 40", "-H -n 40"]);
    cmd.args(["-e", "hello", "*.log"]).current_dir(dir.path());
    let mut r = Proc::spawn_reading_stdout("supergrep", cmd);
    let said = r.wait_stderr(&["the limit on open files (40;", "followed once"]);
    // The first files got descriptors: they are followed.
    r.wait_following(Path::new("000.log"));
    append(&dir.path().join("000.log"), "hello again\n");
    assert_eq!(r.lines(1), ["000.log:hello again"]);
    // Files are tried again on later looks: still said once.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(r.stderr_count(&["open files"]), 1, "{said}");
}

#[test]
fn no_follow_reads_any_number_of_files_with_few_descriptors() {
    // One file open at a time, as grep does: 100 files under a limit of 40.
    let ended = scan_hundred_files_under(&["-S -n 40", "-H -n 40"]);
    assert!(!ended.stderr.contains("supergrep:"), "{}", ended.stderr);
}

/// `--no-follow` over [`hundred_files`] under `ulimit LIMITS`: every line comes,
/// and the exit status is 0.
fn scan_hundred_files_under(limits: &[&str]) -> Ended {
    let dir = tempfile::tempdir().unwrap();
    let want = hundred_files(dir.path());
    let args = ["--from-start", "--no-follow", "-e", "hello", "*.log"];
    let mut cmd = with_ulimit(limits);
    cmd.args(args).current_dir(dir.path());
    let ended = command_to_end(cmd, &args);
    let mut got = ended.stdout.clone();
    got.sort();
    assert_eq!(got, want, "{}", ended.stderr);
    assert_eq!(ended.code, 0, "{}", ended.stderr);
    ended
}

#[test]
fn no_follow_reads_a_file_with_two_names_once() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.log"), "hello from a\n").unwrap();
    std::os::unix::fs::symlink("a.log", dir.path().join("b.log")).unwrap();
    fs::hard_link(dir.path().join("a.log"), dir.path().join("c.log")).unwrap();
    let ended = run_to_end(
        &["--from-start", "--no-follow", "-e", "hello", "*.log"],
        dir.path(),
    );
    assert_eq!(ended.stdout, ["a.log:hello from a"], "{}", ended.stderr);
    assert_eq!(ended.code, 0, "{}", ended.stderr);
}

/// The hard limit on open files of processes started from here.
fn hard_open_file_limit() -> u64 {
    let out = std::process::Command::new("sh")
        .args(["-c", "ulimit -H -n"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    match text.trim() {
        "unlimited" => u64::MAX,
        n => n.parse().unwrap(),
    }
}

// ---------------------------------------------------------------------------------
// 3. --no-follow against the reference
// ---------------------------------------------------------------------------------

/// `--no-follow` and `--from-start --no-follow` over each fixture equal the reference.
fn no_follow_case(extra_args: &[&str], reference: &Filter) {
    for name in ["openssh.log", "apache.log"] {
        let dir = tempfile::tempdir().unwrap();
        let bytes = copy_fixture(dir.path(), name);
        let expected = reference.kept(&reference_lines(&bytes));
        for start in [&["--no-follow"][..], &["--from-start", "--no-follow"]] {
            let mut a = start.to_vec();
            a.extend(extra_args);
            a.push(name);
            let ended = run_to_end(&a, dir.path());
            assert_eq!(ended.stdout, expected, "{a:?}");
            let code = if expected.is_empty() { 1 } else { 0 };
            assert_eq!(ended.code, code, "{a:?}: {}", ended.stderr);
        }
    }
}

#[test]
fn no_follow_single_pattern_matches_reference() {
    for p in ["Failed password", r"\[error\]", r"port \d+ ssh2$", r"\d+$"] {
        no_follow_case(&args(&[], &[p], &[]), &Filter::new(&[p], &[], false));
    }
}

#[test]
fn no_follow_several_patterns_match_reference() {
    let patterns = [
        "Invalid user",
        r"jk2_init\(\) Found child \d+",
        r"^\[Mon Dec 05 1[0-9]:",
        r"authentication failure; .* user=root$",
    ];
    no_follow_case(
        &args(&[], &patterns, &[]),
        &Filter::new(&patterns, &[], false),
    );
}

#[test]
fn no_follow_ignore_case_with_exclude_matches_reference() {
    let (patterns, excludes) = (["FAILED", "ERROR"], ["ROOT", "mod_JK"]);
    no_follow_case(
        &args(&["-i"], &patterns, &excludes),
        &Filter::new(&patterns, &excludes, true),
    );
    // Without -i the same patterns find nothing: exit status 1.
    let upper = Filter::new(&patterns, &[], false);
    for name in ["openssh.log", "apache.log"] {
        assert!(upper.kept(&reference_lines(&fixture(name))).is_empty());
    }
    no_follow_case(
        &args(&[], &patterns, &excludes),
        &Filter::new(&patterns, &excludes, false),
    );
}

#[test]
fn no_follow_patterns_file_with_empty_line_matches_every_line() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = copy_fixture(dir.path(), "apache.log");
    fs::write(dir.path().join("p.txt"), "nothing matches this\n\n").unwrap();
    let ended = run_to_end(&["--no-follow", "-f", "p.txt", "apache.log"], dir.path());
    assert_eq!(ended.code, 0, "{}", ended.stderr);
    assert_eq!(ended.stdout, reference_lines(&bytes));
}

#[test]
fn no_follow_last_n_lines() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = copy_fixture(dir.path(), "openssh.log");
    let lines = reference_lines(&bytes);
    let reference = Filter::new(&["Failed password"], &[], false);
    let ended = run_to_end(
        &[
            "--no-follow",
            "-n",
            "20",
            "-e",
            "Failed password",
            "openssh.log",
        ],
        dir.path(),
    );
    assert_eq!(ended.code, 0, "{}", ended.stderr);
    assert_eq!(ended.stdout, reference.kept(&lines[lines.len() - 20..]));
}

#[test]

fn no_follow_last_n_lines_of_file_without_final_newline() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = copy_fixture(dir.path(), "apache.log");
    assert!(!bytes.ends_with(b"\n"));
    let lines = reference_lines(&bytes);
    let ended = run_to_end(
        &["--no-follow", "-n", "5", "-e", "", "apache.log"],
        dir.path(),
    );
    assert_eq!(ended.code, 0, "{}", ended.stderr);
    assert_eq!(ended.stdout, &lines[lines.len() - 5..]);
}

#[test]

fn no_follow_last_zero_lines_prints_nothing() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture(dir.path(), "openssh.log");
    let ended = run_to_end(
        &["--no-follow", "-n", "0", "-e", "", "openssh.log"],
        dir.path(),
    );
    assert!(
        ended.stdout.is_empty(),
        "printed {} lines, the first: {:?}",
        ended.stdout.len(),
        ended.stdout.first()
    );
    assert_eq!(ended.code, 1, "{}", ended.stderr);
}

#[test]
fn no_follow_template_seq_and_stream() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = copy_fixture(dir.path(), "openssh.log");
    let ended = run_to_end(
        &[
            "--no-follow",
            "-e",
            "Invalid user",
            "--format",
            "{seq} {stream} {{{text}}}",
            "openssh.log",
        ],
        dir.path(),
    );
    assert_eq!(ended.code, 0, "{}", ended.stderr);
    let reference = Filter::new(&["Invalid user"], &[], false);
    let expected: Vec<(usize, String)> = reference_lines(&bytes)
        .into_iter()
        .enumerate()
        .filter(|(_, l)| reference.matches(l))
        .collect();
    assert_eq!(ended.stdout.len(), expected.len());
    let stream = format!("{}:openssh.log", hostname());
    let mut base = None;
    for (out, (index, text)) in ended.stdout.iter().zip(&expected) {
        let (seq, rest) = out.split_once(' ').unwrap();
        let seq: usize = seq.parse().unwrap();
        // seq rises by one per line of the file: a constant away from the line index.
        assert_eq!(*base.get_or_insert(seq - index), seq - index, "{out}");
        assert_eq!(rest, format!("{stream} {{{text}}}"));
    }
}

#[test]
fn no_follow_exit_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    copy_fixture(d, "openssh.log");
    fs::create_dir(d.join("adir")).unwrap();

    let matched = run_to_end(&["--no-follow", "-e", "sshd", "openssh.log"], d);
    assert_eq!(matched.code, 0, "{}", matched.stderr);
    assert!(!matched.stdout.is_empty());

    let none = run_to_end(&["--no-follow", "-e", "no such text", "openssh.log"], d);
    assert_eq!(none.code, 1, "{}", none.stderr);
    assert!(none.stdout.is_empty());

    // A file that cannot be read: 2, named on stderr, and the other file still scanned.
    let missing = run_to_end(
        &[
            "--no-follow",
            "-e",
            "Invalid user",
            "openssh.log",
            "nope.log",
        ],
        d,
    );
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("nope.log"), "{}", missing.stderr);
    let bytes = fixture("openssh.log");
    let expected: Vec<String> = Filter::new(&["Invalid user"], &[], false)
        .kept(&reference_lines(&bytes))
        .into_iter()
        .map(|l| format!("openssh.log:{l}"))
        .collect();
    assert_eq!(missing.stdout, expected);

    let directory = run_to_end(&["--no-follow", "-e", "x", "adir"], d);
    assert_eq!(directory.code, 2);
    assert!(directory.stderr.contains("adir"), "{}", directory.stderr);
    assert!(
        directory.stderr.contains("give a glob: 'adir/*'"),
        "and how to follow the files in it: {}",
        directory.stderr
    );
}

// ---------------------------------------------------------------------------------
// 4. Bad input
// ---------------------------------------------------------------------------------

#[test]
fn invalid_pattern_exits_2_naming_pattern_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("app.log"), "a( error\n").unwrap();
    fs::write(d.join("bad.txt"), "fine\nx{3\n").unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["-e", "a("],
            r#"invalid pattern "a(" at character 2: unclosed group"#,
        ),
        // The position counts characters, not bytes.
        (
            &["-e", "ok", "-e", "éé(x"],
            r#"invalid pattern "éé(x" at character 3"#,
        ),
        (
            &["-e", "ok", "-v", "[z-a]"],
            r#"invalid pattern "[z-a]" at character 2"#,
        ),
        (
            &["-f", "bad.txt"],
            r#"invalid pattern "x{3" at character 2"#,
        ),
        (
            &["-i", "-e", r"\p{Nope}"],
            r#"invalid pattern "\\p{Nope}" at character 1"#,
        ),
    ];
    for (patterns, message) in cases {
        for mode in [&["--no-follow"][..], &[]] {
            let mut a = mode.to_vec();
            a.extend(patterns);
            a.push("app.log");
            let ended = run_to_end(&a, d);
            assert_eq!(ended.code, 2, "{a:?}: {}", ended.stderr);
            assert!(ended.stderr.contains(message), "{a:?}: {}", ended.stderr);
            assert!(ended.stdout.is_empty(), "{a:?}");
        }
    }
}

/// A stderr that cannot be written (`2>/dev/full`, or closed by `2>&1 | true`) loses
/// the message but not the exit status: 2, not a panic's 101.
#[test]
fn unwritable_stderr_keeps_the_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("app.log"), "error\n").unwrap();
    let full = fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let status = bin()
        .args(["--no-follow", "-e", "a(", "app.log"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(full)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2));
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("app.log"), "error\n").unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["-e", "error", "-", "app.log"],
            "cannot be read along with files",
        ),
        (
            &["--no-follow", "-e", "error", "app.log", "-"],
            "cannot be read along with files",
        ),
        (&["app.log"], "no pattern given"),
        (&["--no-follow", "app.log"], "no pattern given"),
        (
            &["-e", "error", "--format", "yaml", "app.log"],
            "unknown format",
        ),
    ];
    for (a, message) in cases {
        let ended = run_to_end(a, d);
        assert_eq!(ended.code, 2, "{a:?}: {}", ended.stderr);
        assert!(ended.stderr.contains(message), "{a:?}: {}", ended.stderr);
        assert!(ended.stdout.is_empty(), "{a:?}");
    }
    let more: [(&[&str], &str); 3] = [
        (
            &["-e", "x", "--format", "pre {text", "app.log"],
            "unclosed {",
        ),
        (
            &[
                "-e",
                "x",
                "--irc",
                "irc://h/#c",
                "--irc-rate",
                "0",
                "app.log",
            ],
            "not a rate above 0",
        ),
        (
            &[
                "-e",
                "x",
                "--irc",
                "irc://h/#c",
                "--irc-rate",
                "nan",
                "app.log",
            ],
            "not a rate above 0",
        ),
    ];
    for (a, message) in more {
        let ended = run_to_end(a, d);
        assert_eq!(ended.code, 2, "{a:?}: {}", ended.stderr);
        assert!(ended.stderr.contains(message), "{a:?}: {}", ended.stderr);
    }
    let ended = run_to_end(&["-e", "x", "-f", "missing.txt", "app.log"], d);
    assert_eq!(ended.code, 2);
    assert!(ended.stderr.contains("missing.txt"), "{}", ended.stderr);
}

/// No PATH (or `-`): standard input, as grep reads it, line by line as it comes, a
/// last unterminated line included; the status is grep's. (It said "no file given".)
#[test]
fn standard_input_is_read_when_no_path_is_given() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["-e", "error"][..],
        &["-e", "error", "-"],
        &["--no-follow", "-e", "error"],
    ] {
        let mut cmd = bin();
        cmd.args(args).current_dir(dir.path());
        let mut p = Proc::spawn_writing_stdin("supergrep", cmd);
        let mut stdin = p.child.stdin.take().unwrap();
        // Each match is printed while the writer is still there.
        stdin.write_all(b"first error\nnothing\n").unwrap();
        assert_eq!(p.lines(1), ["first error"], "{args:?}");
        stdin.write_all(b"last error, no newline").unwrap();
        drop(stdin);
        let (code, rest) = p.finish();
        assert_eq!(rest, ["last error, no newline"], "{args:?}");
        assert_eq!(code, 0, "{args:?}");
    }
    // Nothing matched: 1; an empty input (here /dev/null) too.
    let ended = run_to_end(&["-e", "error"], dir.path());
    assert_eq!((ended.code, ended.stdout.len()), (1, 0), "{}", ended.stderr);
}

/// A pipe given as a PATH (`<(zcat old.log.gz)`, a FIFO) has no offsets to follow by:
/// a message says to give it on standard input. (It said "Illegal seek".)
#[test]
fn a_pipe_given_as_a_path_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let ended = run_to_end(&["--no-follow", "-e", "error", "pipe"], dir.path());
    assert_eq!(ended.code, 2, "{}", ended.stderr);
    assert!(
        ended.stderr.contains("pipe: is not a regular file")
            && ended.stderr.contains("give it on standard input"),
        "{}",
        ended.stderr
    );
}

/// What a line longer than `max` bytes becomes: its head, cut at a character
/// boundary, and a mark saying how many bytes were cut.
fn cut_line(line: &str, max: usize) -> String {
    if line.len() <= max {
        return line.to_owned();
    }
    let keep = (0..=max).rev().find(|&k| line.is_char_boundary(k)).unwrap();
    format!("{} [… {} bytes cut]", &line[..keep], line.len() - keep)
}

#[test]
fn one_mebibyte_line_is_cut_and_marked_and_the_next_line_appears() {
    let (_dir, log, mut r) = follow_app_log("", &["-e", "error"]);

    let long = format!("error {}", "x".repeat(1 << 20));
    // Written in pieces, as a slow writer would.
    append_in_pieces(&log, long.as_bytes(), 100_000);
    append(&log, "\nafter the long line: error\n");
    let got = r.lines(2);
    assert_eq!(got[0].len(), cut_line(&long, 65536).len());
    assert_eq!(got[0], cut_line(&long, 65536));
    assert!(got[0].ends_with(&format!(" [… {} bytes cut]", long.len() - 65536)));
    assert_eq!(got[1], "after the long line: error");
}

#[test]
fn max_line_cuts_at_character_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\nshort é line\n{} error\n{}",
        "é".repeat(100),
        "ü".repeat(40),
        "€".repeat(60)
    );
    fs::write(dir.path().join("app.log"), &text).unwrap();
    for max in ["16", "101", "102", "103"] {
        let ended = run_to_end(
            &["--no-follow", "--max-line", max, "-e", "", "app.log"],
            dir.path(),
        );
        assert_eq!(ended.code, 0, "{}", ended.stderr);
        let expected: Vec<String> = reference_lines(text.as_bytes())
            .iter()
            .map(|l| cut_line(l, max.parse().unwrap()))
            .collect();
        assert_eq!(ended.stdout, expected, "--max-line {max}");
    }
}

#[test]
fn binary_junk_then_matching_line() {
    let (dir, log, mut r) = follow_app_log("", &["-e", "mixed error", "-e", "^after junk error$"]);
    let junk = junk(64 * 1024, 0x9e37_79b9_7f4a_7c15);
    let mixed = b"\xff\xfe mixed error \x00 \xc3\x28 end\xe2\x82";
    let mut bytes = junk.clone();
    bytes.extend_from_slice(b"\n");
    bytes.extend_from_slice(mixed);
    bytes.extend_from_slice(b"\nafter junk error\r\n");
    append_in_pieces(&log, &bytes, 4093);
    assert_eq!(
        r.lines(2),
        [
            String::from_utf8_lossy(mixed).into_owned(),
            "after junk error".to_owned()
        ]
    );
    assert!(r.running(), "supergrep ended");

    // Read whole, every line comes out as the reference says (NUL kept, invalid UTF-8
    // replaced, a trailing \r dropped).
    let ended = run_to_end(&["--no-follow", "-e", "", "app.log"], dir.path());
    assert_eq!(ended.code, 0, "{}", ended.stderr);
    assert_eq!(ended.stdout, reference_lines(&bytes));
}

#[test]
fn deleted_and_recreated_file_goes_on_being_followed() {
    let (_dir, log, mut r) = follow_app_log("old error\n", &["-e", "error", "-e", SENTINEL]);
    append(&log, "before delete: error\n");
    assert_eq!(r.lines(1), ["before delete: error"]);

    fs::remove_file(&log).unwrap();
    append(&log, "in the new file: error\nnothing\n");
    assert_eq!(r.lines(1), ["in the new file: error"]);
    expect_sentinel_next(&mut r, &log, "");
}

#[test]
fn renamed_away_file_is_drained_and_the_new_one_followed() {
    let (dir, log, mut r) = follow_app_log("", &["-e", "error", "-e", SENTINEL]);
    append(&log, "first: error\n");
    assert_eq!(r.lines(1), ["first: error"]);

    // logrotate's default: rename, the writer finishes into the old file, then a new
    // file is created.
    let mut writer = fs::OpenOptions::new().append(true).open(&log).unwrap();
    fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    writer
        .write_all(b"late, into the old file: error\n")
        .unwrap();
    append(&log, "in the new file: error\n");
    assert_eq!(
        r.lines(2),
        ["late, into the old file: error", "in the new file: error"]
    );
    expect_sentinel_next(&mut r, &log, "");
}

/// A deleted file is read on while its writer goes on, then closed once it has been
/// quiet for 5 s (as a rotated-away file): its space is freed, and a partial last
/// line it ended with comes out. (It was held open for as long as supergrep ran.)
#[test]
fn deleted_file_is_drained_then_closed() {
    let (_dir, log, mut r) = follow_app_log("", &["-e", "error"]);
    append(&log, "complete: error\n");
    assert_eq!(r.lines(1), ["complete: error"]);

    let mut writer = fs::OpenOptions::new().append(true).open(&log).unwrap();
    fs::remove_file(&log).unwrap();
    writer.write_all(b"after the delete: error\n").unwrap();
    assert_eq!(r.lines(1), ["after the delete: error"]);
    writer.write_all(b"partial, no newline: error").unwrap();
    drop(writer);
    assert_eq!(r.lines(1), ["partial, no newline: error"]);

    let fds = format!("/proc/{}/fd", r.pid());
    support::wait::wait_until("the deleted file's descriptor is closed", || {
        fs::read_dir(&fds).unwrap().flatten().all(|fd| {
            fs::read_link(fd.path()).map_or(true, |to| !to.to_string_lossy().contains("app.log"))
        })
    });
    assert!(r.running());
}

#[test]
fn truncated_file_is_read_again_from_the_start() {
    let (_dir, log, mut r) = follow_app_log("", &["-e", "error", "-e", SENTINEL]);
    append(&log, "a rather long first line: error\n");
    assert_eq!(r.lines(1), ["a rather long first line: error"]);

    // copytruncate, then the writer goes on (shorter than what was read).
    fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, "short: error\n");
    assert_eq!(r.lines(1), ["short: error"]);
    expect_sentinel_next(&mut r, &log, "");
}

#[test]
fn missing_file_is_followed_once_created() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = supergrep_in(dir.path(), &["-e", "error", "-e", SENTINEL, "later.log"]);
    r.wait_stderr(&["later.log", "no such file; will follow it when it appears"]);

    let log = dir.path().join("later.log");
    append(&log, "first error\nnothing\nsecond error\n");
    assert_eq!(r.lines(2), ["first error", "second error"]);
    r.wait_stderr(&["later.log", "appeared; following it"]);
    expect_sentinel_next(&mut r, &log, "");
}

// ---------------------------------------------------------------------------------
// 5. Pipes and signals
// ---------------------------------------------------------------------------------

/// A supergrep whose stdout the test reads (and may close) itself.
struct Piped {
    proc: Proc,
    stdout: Option<BufReader<ChildStdout>>,
}

impl Piped {
    fn start(args: &[&str], dir: &Path) -> Piped {
        let mut cmd = bin();
        cmd.args(args).current_dir(dir);
        let mut proc = Proc::spawn_raw_stdout("supergrep", cmd);
        Piped {
            stdout: Some(BufReader::new(proc.child.stdout.take().unwrap())),
            proc,
        }
    }

    fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.as_mut().unwrap().read_line(&mut line).unwrap();
        line
    }

    /// Closes our end of its stdout, as `head -n 1` does when it has its line.
    fn close_stdout(&mut self) {
        self.stdout = None;
    }

    /// Waits for it to exit by itself, calling `poke` meanwhile; its status code.
    fn wait_exit(&mut self, mut poke: impl FnMut()) -> i32 {
        let deadline = Instant::now() + PATIENCE;
        while self.proc.running() {
            assert!(
                Instant::now() < deadline,
                "supergrep did not exit after its stdout was closed"
            );
            poke();
            std::thread::sleep(Duration::from_millis(50));
        }
        self.proc.wait_exit().code().unwrap_or(-1)
    }
}

#[test]

fn closed_stdout_ends_following_with_status_0() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    fs::write(&log, "").unwrap();
    let mut p = Piped::start(&["-e", "error", "app.log"], dir.path());
    p.proc.wait_following(Path::new("app.log"));
    append(&log, "first error\n");
    assert_eq!(p.read_line(), "first error\n");
    p.close_stdout();
    // More matches come: writing them fails, and that must end the program.
    let mut n = 0;
    let code = p.wait_exit(|| {
        n += 1;
        append(&log, &format!("more error {n}\n"));
    });
    assert_eq!(code, 0);
}

/// The same with no further match: following a quiet log, there is no write to fail.
/// (It waited for the next match, maybe for hours; `tail -f | head` ends at once.)
#[test]
fn closed_stdout_ends_following_a_quiet_log_with_status_0() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    fs::write(&log, "").unwrap();
    let mut p = Piped::start(&["-e", "error", "app.log"], dir.path());
    p.proc.wait_following(Path::new("app.log"));
    append(&log, "first error\n");
    assert_eq!(p.read_line(), "first error\n");
    p.close_stdout();
    assert_eq!(p.wait_exit(|| {}), 0);
}

#[test]
fn closed_stdout_ends_no_follow_scan_with_status_0() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("big.log");
    // Far more than a pipe holds.
    let text: String = (0..200_000).map(|i| format!("line {i} error\n")).collect();
    fs::write(&log, text).unwrap();
    let mut p = Piped::start(&["--no-follow", "-e", "error", "big.log"], dir.path());
    assert_eq!(p.read_line(), "line 0 error\n");
    p.close_stdout();
    assert_eq!(p.wait_exit(|| {}), 0);
}

fn signal_ends_with_status_0(name: &str) {
    let (_dir, log, mut r) = follow_app_log("", &["-e", "error"]);
    // A line through the whole pipeline: it is up and running.
    append(&log, "an error\n");
    assert_eq!(r.lines(1), ["an error"]);
    r.signal(name);
    let (code, rest) = r.finish();
    assert_eq!(code, 0, "SIG{name}");
    assert!(rest.is_empty(), "{rest:?}");
}

#[test]
fn sigint_ends_with_status_0() {
    signal_ends_with_status_0("INT");
}

#[test]
fn sigterm_ends_with_status_0() {
    signal_ends_with_status_0("TERM");
}

/// SIGTERM at once, as soon as the file is followed: the signal is listened for
/// from the start (it was set up when the signals thread got to it, and one that
/// came before killed the process, status 143).
#[test]
fn sigterm_right_after_following_ends_with_status_0() {
    let (_dir, _log, mut r) = follow_app_log("", &["-e", "x"]);
    r.signal("TERM");
    let status = r.wait_exit();
    assert_eq!(
        status.code(),
        Some(0),
        "{status:?}; it said:\n{}",
        r.stderr_text()
    );
}

/// SIGTERM right after the tailer has read lines that are yet to be printed: it
/// stops the tailer, and what it read is still matched and printed, every line, then
/// the program ends with status 0 (it used to exit at once, cutting them). Many
/// lines, so that printing them all takes a while after the signal.
#[test]
fn sigterm_right_after_lines_are_read_prints_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    fs::write(&log, "").unwrap();
    let mut cmd = bin();
    // The tailer says `lines sent … offset=N` at trace level.
    cmd.env("SUPERGREP_LOG", "debug,supergrep::source::tail=trace")
        .args(["-e", "error", "app.log"])
        .current_dir(dir.path());
    let mut r = Proc::spawn_reading_stdout("supergrep", cmd);
    r.wait_following(Path::new("app.log"));
    const LINES: usize = 50_000;
    let text: String = (0..LINES).map(|i| format!("{i} an error\n")).collect();
    append(&log, &text);
    r.wait_stderr(&["lines sent", &format!("offset={}", text.len())]);
    r.signal("TERM");
    let status = r.wait_exit();
    let said = r.stderr_text();
    assert_eq!(status.code(), Some(0), "{status:?}; it said:\n{said}");
    // Ended by itself, not by the signal's bound.
    assert!(!said.contains("gave up"), "{said}");
    let printed = r.lines(LINES);
    assert_eq!(printed.last().map(String::as_str), Some("49999 an error"));
    let (_, rest) = r.finish();
    assert!(rest.is_empty(), "printed more than was written: {rest:?}");
}
