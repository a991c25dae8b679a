//! FIFOs (and other files that are not regular) where a path was given: opening a
//! FIFO waits for a writer, so every path supergrep opens is opened without waiting
//! and refused through the handle unless it is a regular file. Nothing may hang: not
//! the tailer (every other followed file would stop), not a hub or agent reading its
//! config or state file or TLS certificates and key. Every such path is opened by
//! `supergrep::regular_file`, whose openers are tested here on a FIFO directly (a
//! regression fails, under a watchdog, rather than hangs).

mod support;

use std::io;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rustix::fs::{Mode, OFlags};
use supergrep::regular_file::{self, NOT_REGULAR};
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

/// Runs `open` (an opener given the FIFO `fifo`) on a thread of its own and waits
/// for it, at most [`PATIENCE`]: an opener that waits on the FIFO fails the test
/// instead of hanging it (the FIFO is then opened at both ends, to let it go).
fn returns_at_once<T: Send>(fifo: &Path, what: &str, open: impl FnOnce() -> T + Send) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        scope.spawn(move || tx.send(open()));
        rx.recv_timeout(PATIENCE).unwrap_or_else(|_| {
            let ends = OFlags::NONBLOCK | OFlags::CLOEXEC;
            let reader = rustix::fs::open(fifo, OFlags::RDONLY | ends, Mode::empty());
            let writer = rustix::fs::open(fifo, OFlags::WRONLY | ends, Mode::empty());
            drop((reader, writer));
            panic!("{what} waited on the FIFO {}", fifo.display())
        })
    })
}

/// Every opener of `regular_file`, given a path that is a FIFO, returns at once:
/// with nothing at the FIFO's other end (a plain `open` would wait for a writer or
/// a reader) and with both ends held open (the open does not wait; the handle is
/// judged and refused). This is the step after any look at the path, so a regular
/// file swapped for a FIFO between that look and the open cannot hang us either.
#[test]
fn every_opener_given_a_fifo_returns_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let refused = |e: io::Error| {
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        assert_eq!(e.to_string(), NOT_REGULAR);
    };
    let f = fifo.as_path();
    for held in [false, true] {
        // Both ends at once: `O_RDWR` on a FIFO does not wait (Linux).
        let _ends = held.then(|| {
            std::fs::File::options()
                .read(true)
                .write(true)
                .open(f)
                .unwrap()
        });
        let open = returns_at_once(f, "open", || regular_file::open(f));
        refused(open.expect_err("a FIFO was opened"));
        let read = returns_at_once(f, "read", || regular_file::read(f));
        refused(read.expect_err("a FIFO was read"));
        let text = returns_at_once(f, "read_to_string", || regular_file::read_to_string(f));
        refused(text.expect_err("a FIFO was read"));
        let create = returns_at_once(f, "create", || regular_file::create(f));
        let append = returns_at_once(f, "append", || regular_file::append(f));
        for e in [create.err(), append.err()] {
            let e = e.expect("a FIFO was opened for writing");
            match held {
                // No reader: refused by the open itself (ENXIO).
                false => assert_ne!(e.kind(), io::ErrorKind::WouldBlock, "{e}"),
                true => refused(e),
            }
        }
    }
    // Pipes are read where they may be (`-f <(cmd)`): no writer reads as empty.
    let piped = returns_at_once(f, "read_to_string_or_pipe", || {
        regular_file::read_to_string_or_pipe(f)
    });
    assert_eq!(piped.unwrap(), "");
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
/// and every followed file stopped). End to end, and so at the mercy of a race of
/// microseconds: `every_opener_given_a_fifo_returns_at_once` is the deterministic
/// check of the opener the tailer uses.
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

/// A certificate and key for `localhost`, as PEM files in `dir`.
fn cert_and_key(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.join("hub.pem"), dir.join("hub.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

/// `serve --tls-cert/--tls-key`, `--tls-ca` a FIFO: refused at once (they were read
/// with a plain open, which waited for a writer: the hub hung at start-up).
#[test]
fn tls_files_that_are_fifos_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.pem");
    mkfifo(&fifo);
    let (cert, key) = cert_and_key(dir.path());
    let serve = |cert: &Path, key: &Path| {
        let mut cmd = bin();
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--tls-cert"])
            .arg(cert)
            .arg("--tls-key")
            .arg(key);
        cmd
    };
    let mut connect = bin();
    connect
        .args(["--connect", "wss://localhost:1", "-e", "x", "--tls-ca"])
        .arg(&fifo);
    let runs = [
        ("a hub given a FIFO for a certificate", serve(&fifo, &key)),
        ("a hub given a FIFO for a key", serve(&cert, &fifo)),
        ("a client given a FIFO for a CA", connect),
    ];
    let want = format!("{}: cannot read it: {NOT_REGULAR}", fifo.display());
    for (what, cmd) in runs {
        let mut run = Proc::spawn(what, cmd);
        assert_eq!(
            run.exit_code_within(PATIENCE),
            Some(2),
            "{what}: should refuse"
        );
        let said = run.stderr_text();
        assert!(said.contains(&want), "{what}: want {want:?} in {said}");
    }
}
