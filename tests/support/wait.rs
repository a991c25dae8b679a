//! How long to wait, and waiting for a condition.

use std::time::{Duration, Instant};

/// Generous: CI machines are slow and busy. It only bounds how long a broken build can
/// hang a test; no test asserts that anything took less than this.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `done` every 20 ms until it holds; panics with `what` after [`PATIENCE`].
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
