//! FIFOs (and other files that are not regular) where a path was given: opening a
//! FIFO waits for a writer, so every path supergrep opens is opened without waiting
//! and refused through the handle unless it is a regular file. Nothing may hang: not
//! the tailer (every other followed file would stop), not a hub or agent reading its
//! config or state file.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::files::append;
use support::proc::{bin, supergrep_in, Proc};
use support::wait::PATIENCE;

fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(made.success(), "mkfifo {}", path.display());
}

/// Waits until `run` printed `text` on stdout.
fn wait_line(run: &mut Proc, text: &str) {
    let got = run.lines_until(text);
    assert_eq!(got.last().map(String::as_str), Some(text), "{got:?}");
}

/// A FIFO that appears in a followed glob is skipped, said once, and the other
/// files go on being followed.
#[test]
fn fifo_in_a_followed_glob_is_skipped_once_and_the_others_followed() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("b.log");
    std::fs::write(&other, "").unwrap();
    let mut run = supergrep_in(
        dir.path(),
        &["--no-filename", "--color", "never", "-e", "", "*.log"],
    );
    run.wait_following(Path::new("b.log"));
    mkfifo(&dir.path().join("a.log"));
    run.wait_stderr(&["a.log: is not a regular file"]);
    // Past several discoveries and full passes (1 s and 2 s), each of which looks
    // at the FIFO again.
    std::thread::sleep(Duration::from_secs(5));
    append(&other, "still followed\n");
    wait_line(&mut run, "still followed");
    assert_eq!(run.stderr_count(&["a.log: is not a regular file"]), 1);
}

/// A regular file swapped for a FIFO by `rename`, over and over: a look that stats
/// the regular file and then opens the FIFO must not block (it did, 1 run in 7,
/// and every followed file stopped).
#[test]
fn fifo_renamed_over_a_followed_file_does_not_stop_the_tailer() {
    let dir = tempfile::tempdir().unwrap();
    let (log, other) = (dir.path().join("a.log"), dir.path().join("b.log"));
    std::fs::write(&log, "").unwrap();
    std::fs::write(&other, "").unwrap();
    let mut run = supergrep_in(
        dir.path(),
        &["--no-filename", "--color", "never", "-e", "", "*.log"],
    );
    run.wait_following(Path::new("a.log"));
    run.wait_following(Path::new("b.log"));
    let (fifo, plain) = (dir.path().join("fifo.tmp"), dir.path().join("plain.tmp"));
    for n in 0..300 {
        mkfifo(&fifo);
        std::fs::rename(&fifo, &log).unwrap();
        std::fs::write(&plain, format!("swap {n}\n")).unwrap();
        std::fs::rename(&plain, &log).unwrap();
    }
    mkfifo(&fifo);
    std::fs::rename(&fifo, &log).unwrap();
    append(&other, "after the swaps\n");
    wait_line(&mut run, "after the swaps");
}

/// `--config FIFO`: refused at once, not waited on.
#[test]
fn config_that_is_a_fifo_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("hub.toml");
    mkfifo(&fifo);
    let mut cmd = bin();
    cmd.arg("serve")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--config")
        .arg(&fifo);
    let mut hub = Proc::spawn("the hub", cmd);
    assert_eq!(hub.exit_code_within(PATIENCE), Some(2), "it should refuse");
    assert!(
        hub.stderr_text().contains("is not a regular file"),
        "{}",
        hub.stderr_text()
    );
}

/// `agent --state-file FIFO`: refused at once, not waited on.
#[test]
fn agent_state_file_that_is_a_fifo_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (fifo, log) = (dir.path().join("state"), dir.path().join("a.log"));
    mkfifo(&fifo);
    std::fs::write(&log, "").unwrap();
    let mut cmd = bin();
    cmd.arg("agent")
        .arg("--hub")
        .arg("ws://127.0.0.1:9/agent")
        .arg("--state-file")
        .arg(&fifo)
        .arg(&log);
    let mut agent = Proc::spawn("agent", cmd);
    assert_eq!(
        agent.exit_code_within(PATIENCE),
        Some(2),
        "it should refuse"
    );
    assert!(
        agent.stderr_text().contains("is not a regular file"),
        "{}",
        agent.stderr_text()
    );
}
