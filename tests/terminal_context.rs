//! `-A/-B/-C` context lines (issue 24 §3), against grep itself as the reference: the
//! real `supergrep` and the real `grep` on the same files must print the same, and
//! in follow mode the lines after a match (a stack trace) print as they are written.

mod support;

use std::path::Path;
use std::process::Command;

use support::files::{append, empty};
use support::proc::{supergrep, supergrep_in};

/// A Java-style log: exceptions with their traces, close together and far apart.
const LOG: &str = "\
2026-12-07 10:00:01 INFO start
2026-12-07 10:00:02 INFO ready
2026-12-07 10:00:03 ERROR java.lang.IllegalStateException: boom
\tat com.example.Foo.bar(Foo.java:42)
\tat com.example.Main.main(Main.java:7)
2026-12-07 10:00:04 INFO recovered
2026-12-07 10:00:05 INFO tick
2026-12-07 10:00:06 INFO tick
2026-12-07 10:00:07 INFO tick
2026-12-07 10:00:08 ERROR java.io.IOException: disk
Caused by: java.lang.RuntimeException: full
2026-12-07 10:00:09 ERROR java.io.IOException: again
2026-12-07 10:00:10 INFO tick
2026-12-07 10:00:11 INFO tick
";

fn grep(args: &[&str], dir: &Path) -> String {
    let out = Command::new("grep")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("grep");
    String::from_utf8(out.stdout).unwrap()
}

fn ours(args: &[&str], dir: &Path) -> (i32, String) {
    let mut full = vec!["--no-follow", "--color", "never"];
    full.extend_from_slice(args);
    let (code, lines) = supergrep_in(dir, &full).finish();
    (code, lines.iter().map(|l| format!("{l}\n")).collect())
}

#[test]
fn context_lines_are_what_grep_prints() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.log"), LOG).unwrap();
    std::fs::write(dir.path().join("other.log"), LOG.replace("boom", "bang")).unwrap();
    let cases: &[&[&str]] = &[
        &["-A", "2", "-e", "Exception", "app.log"],
        &["-B", "1", "-e", "Exception", "app.log"],
        &["-C", "1", "-e", "Exception", "app.log"],
        &["-C", "3", "-e", "Exception", "app.log"],
        &["-A", "0", "-B", "4", "-e", "ERROR", "app.log"],
        &["-C", "1", "-A", "3", "-e", "IOException", "app.log"],
        &["-A", "1", "-e", "Caused by", "-e", "boom", "app.log"],
        &["-B", "2", "-e", "bang|boom", "app.log", "other.log"],
        &["-C", "1", "-H", "-e", "again", "app.log"],
        &["-C", "2", "-e", "no such line", "app.log"],
    ];
    for args in cases {
        // grep's -e is a basic regex: give it ours as an extended one.
        let mut grep_args = vec!["-E"];
        grep_args.extend_from_slice(args);
        let want = grep(&grep_args, dir.path());
        let (code, got) = ours(args, dir.path());
        assert_eq!(got, want, "supergrep {args:?}");
        assert_eq!(code, if want.is_empty() { 1 } else { 0 }, "{args:?}");
    }
}

/// The everyday `-A`: an exception is logged, its trace follows a moment later, in
/// another write; the trace prints as it arrives, and past `-A` lines nothing does.
#[test]
fn after_context_prints_a_trace_as_it_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let log = empty(dir.path().join("app.log"));
    let mut p = supergrep(&["-A", "3", "-e", "Exception", log.to_str().unwrap()]);
    p.wait_following(&log);
    append(
        &log,
        "INFO quiet\nERROR java.lang.IllegalStateException: boom\n",
    );
    assert_eq!(p.lines(1), ["ERROR java.lang.IllegalStateException: boom"]);
    append(&log, "\tat com.example.Foo.bar(Foo.java:42)\n");
    assert_eq!(p.lines(1), ["\tat com.example.Foo.bar(Foo.java:42)"]);
    append(
        &log,
        "\tat com.example.Main.main(Main.java:7)\nCaused by: x\nINFO later\n",
    );
    assert_eq!(
        p.lines(2),
        ["\tat com.example.Main.main(Main.java:7)", "Caused by: x"]
    );
    // "INFO later" is past -A 3: the next thing printed is the next group.
    append(&log, "INFO more\nERROR java.io.IOException: disk\n");
    assert_eq!(p.lines(2), ["--", "ERROR java.io.IOException: disk"]);
}

#[test]
fn context_over_connect_is_refused() {
    let (code, _) = supergrep(&["--connect", "ws://127.0.0.1:9", "-A", "2", "-e", "x"]).finish();
    assert_eq!(code, 2);
}
