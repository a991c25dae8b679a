//! The limit on open files: a tailer holds one descriptor per followed file, and a
//! glob over a large tree can pass the usual soft limit of 1,024 long before the
//! system's hard limit.

use std::io;

use rustix::io::Errno;
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// The most a soft limit is raised to when the hard limit is "unlimited" (Linux's
/// default `fs.nr_open`; setting the soft limit to infinity is refused).
const UNLIMITED_AS: u64 = 1 << 20;

/// Raises this process's soft limit on open files to its hard limit, as Go programs
/// do at start: nothing here uses `select`, which is what the low soft limit guards.
/// A refusal leaves the limit as it was (files past it are then said to be so).
pub fn raise_limit() {
    let limit = getrlimit(Resource::Nofile);
    let target = limit.maximum.unwrap_or(UNLIMITED_AS);
    if limit.current.is_some_and(|soft| soft >= target) {
        return;
    }
    let raised = Rlimit {
        current: Some(target),
        maximum: limit.maximum,
    };
    if let Err(e) = setrlimit(Resource::Nofile, raised) {
        tracing::debug!(error = %e, target, "cannot raise the open-file limit");
    }
}

/// The soft limit on open files now (`None`: unlimited).
pub fn limit() -> Option<u64> {
    getrlimit(Resource::Nofile).current
}

/// Whether `e` says the process (or the whole system) has no file descriptor left.
pub fn exhausted(e: &io::Error) -> bool {
    e.raw_os_error().is_some_and(|code| {
        code == Errno::MFILE.raw_os_error() || code == Errno::NFILE.raw_os_error()
    })
}

/// How long an accept loop waits after a failed accept (out of descriptors, say):
/// 10 ms, doubled on each failure in a row up to 1 s (`None`: the last accept
/// worked). An accept loop that retried at once spun at 100% of a core meanwhile.
pub fn accept_backoff(last: Option<std::time::Duration>) -> std::time::Duration {
    use std::time::Duration;
    last.map_or(Duration::from_millis(10), |d| {
        (d * 2).min(Duration::from_secs(1))
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn accept_backoff_doubles_from_10_ms_up_to_1_s() {
        let mut wait = super::accept_backoff(None);
        assert_eq!(wait, Duration::from_millis(10));
        for _ in 0..20 {
            let next = super::accept_backoff(Some(wait));
            assert!(next >= wait && next <= Duration::from_secs(1));
            wait = next;
        }
        assert_eq!(wait, Duration::from_secs(1));
    }
}
