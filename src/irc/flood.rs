//! Flood control for the IRC sink: a token bucket decides when a message may go, a
//! short queue holds what goes next, and everything beyond it is only counted and
//! posted as one summary line. Identical lines are coalesced (`×37`). Nothing here
//! grows with the match rate.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// Messages per second on average, with bursts of `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate_per_sec: f64, burst: u32) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate: rate_per_sec.max(0.01),
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
    }

    /// Takes a token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// When the next token will be there.
    pub fn ready_at(&mut self, now: Instant) -> Instant {
        self.refill(now);
        if self.tokens >= 1.0 {
            now
        } else {
            now + Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }
}

#[derive(Debug)]
struct Waiting {
    /// What identical lines share (host and text).
    key: (String, String),
    message: String,
    repeats: u64,
}

/// Matches waiting to be posted.
#[derive(Debug)]
pub struct Flood {
    waiting: VecDeque<Waiting>,
    max_waiting: usize,
    overflow: u64,
    overflow_hosts: BTreeMap<String, u64>,
    overflow_since: Option<Instant>,
    /// What the matches are for, e.g. `/PHP Fatal/`.
    label: String,
}

impl Flood {
    pub fn new(max_waiting: usize, label: String) -> Flood {
        Flood {
            waiting: VecDeque::new(),
            max_waiting: max_waiting.max(1),
            overflow: 0,
            overflow_hosts: BTreeMap::new(),
            overflow_since: None,
            label,
        }
    }

    /// A match to post; `message` is its rendered text.
    pub fn add(&mut self, host: &str, text: &str, message: String, now: Instant) {
        if let Some(w) = self
            .waiting
            .iter_mut()
            .find(|w| w.key.0 == host && w.key.1 == text)
        {
            w.repeats += 1;
            return;
        }
        if self.waiting.len() < self.max_waiting {
            self.waiting.push_back(Waiting {
                key: (host.to_owned(), text.to_owned()),
                message,
                repeats: 1,
            });
        } else {
            self.count_overflow(host, 1, now);
        }
    }

    /// Matches lost before they reached us (the sink's queue was full).
    pub fn add_lost(&mut self, count: u64, now: Instant) {
        self.count_overflow("unknown host", count, now);
    }

    fn count_overflow(&mut self, host: &str, n: u64, now: Instant) {
        self.overflow += n;
        *self.overflow_hosts.entry(host.to_owned()).or_default() += n;
        self.overflow_since.get_or_insert(now);
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty() && self.overflow == 0
    }

    /// The next message to post, if any: waiting lines first, then the summary.
    pub fn next(&mut self, now: Instant) -> Option<String> {
        if let Some(w) = self.waiting.pop_front() {
            return Some(if w.repeats > 1 {
                format!("{} (×{})", w.message, w.repeats)
            } else {
                w.message
            });
        }
        if self.overflow == 0 {
            return None;
        }
        let secs = self
            .overflow_since
            .map_or(0, |t| now.saturating_duration_since(t).as_secs().max(1));
        let mut hosts: Vec<(&String, &u64)> = self.overflow_hosts.iter().collect();
        hosts.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let by_host: Vec<String> = hosts
            .iter()
            .take(5)
            .map(|(h, n)| format!("{h}: {n}"))
            .collect();
        let more_hosts = if hosts.len() > 5 { ", …" } else { "" };
        let summary = format!(
            "+{} more matches for {} in the last {}s ({}{})",
            self.overflow,
            self.label,
            secs,
            by_host.join(", "),
            more_hosts
        );
        self.overflow = 0;
        self.overflow_hosts.clear();
        self.overflow_since = None;
        Some(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1.0, 4);
        assert_eq!((0..10).filter(|_| b.try_take(t0)).count(), 4);
        assert!(!b.try_take(t0));
        let later = t0 + Duration::from_millis(1500);
        assert!(b.ready_at(t0) > t0);
        assert!(b.try_take(later));
        assert!(!b.try_take(later));
    }

    #[test]
    fn floods_become_one_summary_with_the_true_count() {
        let t0 = Instant::now();
        let mut f = Flood::new(4, "/PHP Fatal/".into());
        for i in 0..300 {
            let host = if i % 3 == 0 { "web02" } else { "web01" };
            f.add(
                host,
                &format!("fatal {i}"),
                format!("{host}: fatal {i}"),
                t0,
            );
        }
        f.add_lost(10, t0);
        let mut posts = Vec::new();
        while let Some(m) = f.next(t0 + Duration::from_secs(10)) {
            posts.push(m);
        }
        assert_eq!(posts.len(), 5);
        assert_eq!(posts[0], "web02: fatal 0");
        assert_eq!(
            posts[4],
            "+306 more matches for /PHP Fatal/ in the last 10s (web01: 198, web02: 98, unknown host: 10)"
        );
    }

    #[test]
    fn identical_lines_are_coalesced() {
        let t0 = Instant::now();
        let mut f = Flood::new(4, "x".into());
        for _ in 0..37 {
            f.add("h", "same", "h: same".into(), t0);
        }
        assert_eq!(f.next(t0).as_deref(), Some("h: same (×37)"));
        assert!(f.is_empty());
    }
}
