//! Terminal mode where a grep user expects grep's conventions (issue 24 §3): the real
//! `supergrep` binary on real files (a FIFO, a directory, a glob that matches nothing
//! among them), under a pseudo-terminal where a terminal is the point (`script` from
//! util-linux gives one).
//!
//! As in tests/terminal.rs nothing waits for a fixed time: waits are for what the
//! program prints or for its exit, bounded by `support::wait::PATIENCE`.

mod support;

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::proc::bin;
use support::wait::PATIENCE;

/// How a run that ended by itself ended.
#[derive(Debug)]
struct Ended {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` to its end (bounded by PATIENCE), stdin empty, stdout and stderr read.
fn run_cmd(mut cmd: Command, what: &str) -> Ended {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    let slurp = |mut s: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf);
            buf
        })
    };
    let out = slurp(Box::new(child.stdout.take().unwrap()));
    let err = slurp(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ended {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err.join().unwrap()).into_owned(),
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
