//! Terminal mode where a grep user expects grep's conventions (issue 24 §3): the real
//! `supergrep` binary on real files (a FIFO, a directory, a glob that matches nothing
//! among them), under a pseudo-terminal where a terminal is the point (`script` from
//! util-linux gives one).
//!
//! As in tests/terminal.rs nothing waits for a fixed time: waits are for what the
//! program prints or for its exit, bounded by `support::wait::PATIENCE`.

mod support;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use support::proc::{bin, run_to_exit};

/// How a run that ended by itself ended.
#[derive(Debug)]
struct Ended {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` to its end (bounded by PATIENCE), stdin empty, stdout and stderr read.
fn run_cmd(cmd: Command, what: &str) -> Ended {
    let ended = run_to_exit(cmd, what);
    Ended {
        code: ended.code,
        stdout: String::from_utf8_lossy(&ended.stdout).into_owned(),
        stderr: ended.stderr,
    }
}

/// `supergrep ARGS…` in `dir`, to its end.
fn run(args: &[&str], dir: &Path) -> Ended {
    let mut cmd = bin();
    cmd.args(args).current_dir(dir).env("SUPERGREP_LOG", "warn");
    run_cmd(cmd, &format!("supergrep {args:?}"))
}

/// A word for `sh -c`, quoted.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `supergrep ARGS… REDIRECTS` under a pseudo-terminal (`script`), in `dir`: what it
/// writes to the terminal comes out on the returned stdout (with the terminal's `\r\n`).
fn pty_command(args: &[&str], redirects: &str, dir: &Path) -> Command {
    let mut line = quote(env!("CARGO_BIN_EXE_supergrep"));
    for a in args {
        line.push(' ');
        line.push_str(&quote(a));
    }
    line.push(' ');
    line.push_str(redirects);
    let mut cmd = Command::new("script");
    cmd.args(["-qefc", &line, "/dev/null"])
        .current_dir(dir)
        .env("SUPERGREP_LOG", "warn")
        .env("TERM", "xterm")
        .env_remove("NO_COLOR")
        .env_remove("SUPERGREP_TOKEN");
    cmd
}

// ---------------------------------------------------------------------------------
// Control characters
// ---------------------------------------------------------------------------------

/// One line carrying what a hostile log line would: a screen clear, an OSC 52
/// clipboard write, an OSC 8 link, BEL, an 8-bit CSI (U+009B), a CR mid-line, DEL.
const HOSTILE: &str =
    "evil \x1b[2J \x1b]52;c;cm0gLXJmIH4=\x07 \x1b]8;;http://x.example/\x1b\\link\x1b]8;;\x1b\\ \x07 \u{9b}31m \r over \x7f\tend";
/// The same, escaped as supergrep escapes it (tab left as it is).
const HOSTILE_ESCAPED: &str = r"evil \x1b[2J \x1b]52;c;cm0gLXJmIH4=\x07 \x1b]8;;http://x.example/\x1b\link\x1b]8;;\x1b\ \x07 \x9b31m \x0d over \x7f";

#[test]
fn control_characters_are_escaped_on_a_terminal_and_with_escape() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("app.log"), format!("calm\n{HOSTILE}\n")).unwrap();
    let expected = format!("{HOSTILE_ESCAPED}\tend");

    // A pipe gets the bytes as they are…
    let piped = run(&["--no-follow", "-e", "evil", "app.log"], d);
    assert_eq!(piped.code, 0, "{}", piped.stderr);
    assert_eq!(piped.stdout, format!("{HOSTILE}\n"));
    // …unless --escape is given.
    let escaped = run(&["--no-follow", "--escape", "-e", "evil", "app.log"], d);
    assert_eq!(escaped.stdout, format!("{expected}\n"));
    // Templates escape their fields (not their own literal text).
    let tpl = run(
        &[
            "--no-follow",
            "--escape",
            "--format",
            "<{text}>",
            "-e",
            "evil",
            "app.log",
        ],
        d,
    );
    assert_eq!(tpl.stdout, format!("<{expected}>\n"));

    // A terminal always sees them escaped, coloured or not; colour codes still work.
    for (color, want) in [
        ("never", expected.clone()),
        (
            "always",
            expected.replacen("evil", "\x1b[1;31mevil\x1b[0m", 1),
        ),
    ] {
        let ended = run_cmd(
            pty_command(
                &["--no-follow", "--color", color, "-e", "evil", "app.log"],
                "",
                d,
            ),
            "supergrep under script",
        );
        assert_eq!(ended.code, 0, "{}", ended.stderr);
        assert_eq!(ended.stdout, format!("{want}\r\n"), "--color {color}");
    }

    // JSON escapes every one of them, and reads back as the original line.
    let json = run(
        &["--no-follow", "--format", "json", "-e", "evil", "app.log"],
        d,
    );
    let raw = json.stdout.trim_end_matches('\n');
    assert!(
        !raw.chars().any(supergrep::escape::is_control),
        "raw control characters in {raw:?}"
    );
    let v: serde_json::Value = serde_json::from_str(raw).unwrap();
    assert_eq!(v["text"], HOSTILE);
}

/// File names are escaped as the text is (a file can be named with an ESC in it).
#[test]
fn control_characters_in_paths_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let name = "a\x1b]0;owned\x07.log";
    fs::write(d.join(name), "an error\n").unwrap();
    fs::write(d.join("b.log"), "").unwrap();
    let ended = run(
        &["--no-follow", "--escape", "-e", "error", name, "b.log"],
        d,
    );
    assert_eq!(ended.code, 0, "{}", ended.stderr);
    assert_eq!(ended.stdout, "a\\x1b]0;owned\\x07.log:an error\n");
}

// ---------------------------------------------------------------------------------
// -F, -w
// ---------------------------------------------------------------------------------

#[test]
fn fixed_strings_and_word_regexp_as_grep() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lines = [
        "a.b literal",       // 0
        "axb is not a.b",    // 1 (has a.b)
        "axb only",          // 2
        "error: disk",       // 3
        "errors: many",      // 4
        "noerror here",      // 5
        "mail @home today",  // 6
        "mail x@home today", // 7
        "Error twice ERROR", // 8
        "café error",        // 9
        "erroré",            // 10
        "[warn] (x) *",      // 11
    ];
    fs::write(d.join("app.log"), lines.join("\n") + "\n").unwrap();
    fs::write(d.join("pats.txt"), "a.b\n[warn]\n").unwrap();
    let pick = |idx: &[usize]| -> Vec<&str> { idx.iter().map(|&i| lines[i]).collect() };
    let cases: [(&[&str], &[usize]); 9] = [
        (&["-e", "a.b"], &[0, 1, 2]),
        (&["-F", "-e", "a.b"], &[0, 1]),
        (&["-F", "-f", "pats.txt"], &[0, 1, 11]),
        (&["-F", "-e", "(x) *"], &[11]),
        (&["-w", "-e", "error"], &[3, 9]),
        (&["-w", "-i", "-e", "error"], &[3, 8, 9]),
        // A pattern that begins with a non-word character: not preceded by a word one.
        (&["-w", "-e", "@home"], &[6]),
        (&["-w", "-F", "-e", "a.b", "-v", "axb"], &[0]),
        (&["-w", "-e", "error", "-F", "-v", "café"], &[3]),
    ];
    for (a, want) in cases {
        let mut all = vec!["--no-follow"];
        all.extend(a);
        all.push("app.log");
        let ended = run(&all, d);
        assert_eq!(ended.code, 0, "{all:?}: {}", ended.stderr);
        assert_eq!(
            ended.stdout.lines().collect::<Vec<_>>(),
            pick(want),
            "{all:?}"
        );
    }
    // An invalid pattern with -w is named as it was written.
    let bad = run(&["--no-follow", "-w", "-e", "a(", "app.log"], d);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr
            .contains(r#"invalid pattern "a(" at character 2"#),
        "{}",
        bad.stderr
    );
}

/// Standard input is read once, from where it stands: -n N is refused, not ignored.
#[test]
fn lines_option_on_standard_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for a in [
        &["-n", "5", "-e", "x"][..],
        &["--no-follow", "-n", "5", "-e", "x", "-"],
    ] {
        let ended = run(a, dir.path());
        assert_eq!(ended.code, 2, "{a:?}");
        assert!(
            ended
                .stderr
                .contains("-n N does not apply to standard input"),
            "{a:?}: {}",
            ended.stderr
        );
    }
}

/// With --connect the hub gets the patterns as -F and -w made them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_strings_and_word_regexp_apply_to_connect() {
    let dir = tempfile::tempdir().unwrap();
    let f = support::files::empty_files(dir.path(), &["app.log"]);
    let path = f[0].to_str().unwrap();
    let hub = support::hub::Hub::start_following(&[path], &[&f[0]]);
    let url = format!("ws://127.0.0.1:{}", hub.port);
    let mut client = support::proc::supergrep(&["--connect", &url, "-F", "-w", "-e", "a.b"]);
    hub.wait_metric("supergrep_subscriptions", 1);
    support::files::append(&f[0], "axb no\nxa.b no\nthe a.b yes\nend a.b\n");
    let prefix = format!("{}:", support::stream_id(&f[0]));
    assert_eq!(
        client.lines(2),
        [format!("{prefix}the a.b yes"), format!("{prefix}end a.b")]
    );
}

// ---------------------------------------------------------------------------------
// PATHs that cannot be followed
// ---------------------------------------------------------------------------------

/// A directory or a FIFO as the only PATHs: each is said, then the run ends with
/// status 2 (it waited forever), following or not.
#[test]
fn no_followable_path_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::create_dir(d.join("adir")).unwrap();
    let made = Command::new("mkfifo").arg(d.join("pipe")).status().unwrap();
    assert!(made.success());
    for paths in [&["adir"][..], &["pipe"], &["adir", "pipe"]] {
        for mode in [&[][..], &["--no-follow"]] {
            let mut a = mode.to_vec();
            a.extend(["-e", "x"]);
            a.extend(paths);
            let ended = run(&a, d);
            assert_eq!(ended.code, 2, "{a:?}: {}", ended.stderr);
            for p in paths {
                assert!(
                    ended.stderr.contains(&format!("supergrep: {p}: is ")),
                    "{a:?}: {}",
                    ended.stderr
                );
            }
            if mode.is_empty() {
                assert!(ended.stderr.contains("supergrep: no PATH can be followed"));
            }
        }
    }
    // Beside a file that can be followed, a directory is said and the file followed.
    fs::write(d.join("app.log"), "").unwrap();
    let mut p = support::proc::supergrep_in(d, &["-e", "x", "adir", "app.log"]);
    p.wait_stderr(&["supergrep: adir: is a directory"]);
    p.wait_following(Path::new("app.log"));
    support::files::append(&d.join("app.log"), "x marks\n");
    assert_eq!(p.lines(1), ["app.log:x marks"]);
}

/// A glob that matches nothing is said as every other message is; with --no-follow it
/// is status 2 (grep's for a missing file); following, a file created later is read.
#[test]
fn a_glob_that_matches_nothing_is_said_and_exits_2_without_follow() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ended = run(&["--no-follow", "-e", "x", "*.log"], d);
    assert_eq!(ended.code, 2, "{}", ended.stderr);
    assert_eq!(ended.stderr, "supergrep: no file matches *.log\n");

    let mut p = support::proc::supergrep_in(d, &["-e", "x", "*.log"]);
    p.wait_stderr(&["supergrep: no file matches *.log"]);
    support::files::append(&d.join("new.log"), "x later\n");
    assert_eq!(p.lines(1), ["new.log:x later"]);
}

// ---------------------------------------------------------------------------------
// -c, -l
// ---------------------------------------------------------------------------------

#[test]
fn count_and_files_with_matches_as_grep() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("b.log"), "error 1\nfine\nerror 2\nerror 3\n").unwrap();
    fs::write(d.join("a.log"), "fine\n").unwrap();
    fs::write(d.join("c.log"), "an error\n").unwrap();
    let cases: [(&[&str], &str, i32); 9] = [
        (&["-c", "b.log"], "3\n", 0),
        (&["-c", "-H", "b.log"], "b.log:3\n", 0),
        // In the order of the PATHs, files without a match too.
        (
            &["-c", "b.log", "a.log", "c.log"],
            "b.log:3\na.log:0\nc.log:1\n",
            0,
        ),
        (&["-c", "--no-filename", "b.log", "a.log"], "3\n0\n", 0),
        (&["-c", "a.log"], "0\n", 1),
        (&["-l", "b.log", "a.log", "c.log"], "b.log\nc.log\n", 0),
        (&["-l", "a.log"], "", 1),
        (&["-c", "-v", "1", "b.log"], "2\n", 0),
        // A file that cannot be read: 2, the others still counted.
        (&["-c", "b.log", "nope.log"], "b.log:3\n", 2),
    ];
    for (a, want, code) in cases {
        let mut all = vec!["--no-follow", "-e", "error"];
        all.extend(a);
        let ended = run(&all, d);
        assert_eq!(
            (ended.code, ended.stdout.as_str()),
            (code, want),
            "{all:?}: {}",
            ended.stderr
        );
    }
    // Following there is no end to count to: refused.
    let ended = run(&["-c", "-e", "error", "b.log"], d);
    assert_eq!(ended.code, 2);
    assert!(
        ended.stderr.contains("need --no-follow"),
        "{}",
        ended.stderr
    );
}

#[test]
fn count_on_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("in.txt"), "error\nok\nerror\n").unwrap();
    let mut cmd = bin();
    cmd.args(["-c", "-e", "error"])
        .current_dir(dir.path())
        .env("SUPERGREP_LOG", "warn")
        .stdin(fs::File::open(dir.path().join("in.txt")).unwrap())
        .stdout(Stdio::piped());
    let out = cmd.output().unwrap();
    assert_eq!(
        (out.status.code(), out.stdout.as_slice()),
        (Some(0), &b"2\n"[..])
    );
}

// ---------------------------------------------------------------------------------
// The quiet hint
// ---------------------------------------------------------------------------------

/// Following quietly with stderr on a terminal: one dim line says only new lines are
/// shown and how to see earlier ones; a match still prints after it.
#[test]
fn a_quiet_follow_on_a_terminal_says_how_to_see_earlier_lines() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("app.log"), "old error\n").unwrap();
    // stderr is the terminal; stdout goes to a file.
    let cmd = pty_command(&["-e", "error", "app.log"], "> out.txt", d);
    let mut p = support::proc::Proc::spawn_reading_stdout("script", cmd);
    let hint = p.lines(1);
    assert_eq!(
        hint,
        [
            "\x1b[2msupergrep: following; only new lines are shown (-n N: the last N lines \
          first, --from-start: all)\x1b[0m"
        ]
    );
    support::files::append(&d.join("app.log"), "new error\n");
    support::wait::wait_until("the match is written", || {
        fs::read_to_string(d.join("out.txt")).unwrap_or_default() == "new error\n"
    });
}
