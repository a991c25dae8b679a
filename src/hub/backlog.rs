//! The ring of recent lines: what `backlog` and `context` requests are answered from.
//!
//! It keeps whole batches as the sources delivered them (no per-line allocation) and
//! evicts the oldest batches once it holds more than its capacity in lines.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::line::{lines, LineBatch, LogLine};

/// One batch, numbered.
#[derive(Debug)]
pub struct Entry {
    pub batch: LineBatch,
    pub first_seq: u64,
    pub lines: u64,
}

impl Entry {
    /// The lines of this entry with their sequence numbers.
    pub fn log_lines(&self) -> impl Iterator<Item = (u64, &str)> {
        (self.first_seq..).zip(lines(&self.batch.text))
    }

    fn last_seq(&self) -> u64 {
        self.first_seq + self.lines.saturating_sub(1)
    }
}

#[derive(Debug)]
pub struct Backlog {
    entries: VecDeque<Arc<Entry>>,
    lines: u64,
    capacity: u64,
}

impl Backlog {
    pub fn new(capacity_lines: u64) -> Backlog {
        Backlog {
            entries: VecDeque::new(),
            lines: 0,
            capacity: capacity_lines,
        }
    }

    pub fn push(&mut self, entry: Arc<Entry>) {
        if self.capacity == 0 {
            return;
        }
        self.lines += entry.lines;
        self.entries.push_back(entry);
        while self.lines > self.capacity {
            match self.entries.pop_front() {
                Some(old) => self.lines -= old.lines,
                None => break,
            }
        }
    }

    /// A cheap copy of what the ring holds now, oldest first, to search outside the
    /// hub's lock.
    pub fn snapshot(&self) -> Vec<Arc<Entry>> {
        self.entries.iter().cloned().collect()
    }

    pub fn len_lines(&self) -> u64 {
        self.lines
    }
}

/// Lines `seq - before ..= seq + after` of stream `stream_id`, as far as `entries`
/// still hold them.
pub fn context(
    entries: &[Arc<Entry>],
    stream_id: &str,
    seq: u64,
    before: u64,
    after: u64,
) -> Vec<LogLine> {
    let (lo, hi) = (seq.saturating_sub(before), seq.saturating_add(after));
    let mut out = Vec::new();
    for e in entries {
        if e.batch.stream.id != stream_id || e.last_seq() < lo || e.first_seq > hi {
            continue;
        }
        for (s, text) in e.log_lines() {
            if s > hi {
                break;
            }
            if s >= lo {
                out.push(LogLine::new(e.batch.stream.clone(), s, e.batch.ts, text));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::Stream;

    fn entry(stream: &Arc<Stream>, first_seq: u64, n: u64) -> Arc<Entry> {
        let text: String = (first_seq..first_seq + n)
            .map(|i| format!("line {i}\n"))
            .collect();
        Arc::new(Entry {
            batch: LineBatch {
                stream: stream.clone(),
                ts: std::time::SystemTime::now(),
                text: text.into(),
                origin: None,
            },
            first_seq,
            lines: n,
        })
    }

    #[test]
    fn evicts_whole_batches_and_answers_context() {
        let a = Arc::new(Stream::new("h", "/a", "s"));
        let b = Arc::new(Stream::new("h", "/b", "s"));
        let mut ring = Backlog::new(10);
        ring.push(entry(&a, 1, 4));
        ring.push(entry(&b, 1, 3));
        ring.push(entry(&a, 5, 4));
        // 11 lines > 10: the oldest batch (4 lines) went.
        assert_eq!(ring.len_lines(), 7);
        let snap = ring.snapshot();
        let got: Vec<String> = context(&snap, &a.id, 6, 2, 1)
            .iter()
            .map(|l| l.text().to_string())
            .collect();
        assert_eq!(got, ["line 5", "line 6", "line 7"]);
        assert_eq!(context(&snap, &a.id, 2, 1, 1).len(), 0);
        assert_eq!(context(&snap, &b.id, 3, 5, 5).len(), 3);
    }
}
