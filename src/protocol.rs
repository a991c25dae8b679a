//! Serde types of the wire format (DESIGN §4). Shared by everything that speaks it:
//! the hub, the agent, `--connect`, and the terminal's `--format json`, whose objects
//! are exactly a `lines` entry.

use serde::{Deserialize, Serialize};

use crate::line::{format_ts, LogLine};

/// One line as sent to clients: `{"seq","ts","host","path","set","text","spans"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireLine {
    pub seq: u64,
    pub ts: String,
    pub host: String,
    pub path: String,
    pub set: String,
    pub text: String,
    /// `[start, end)` in characters of `text`, one per include-pattern hit.
    pub spans: Vec<[usize; 2]>,
}

/// Borrowing form of [`WireLine`] for encoding without copying the text.
#[derive(Debug, Serialize)]
pub struct WireLineRef<'a> {
    pub seq: u64,
    pub ts: String,
    pub host: &'a str,
    pub path: &'a str,
    pub set: &'a str,
    pub text: &'a str,
    pub spans: &'a [[usize; 2]],
}

impl<'a> WireLineRef<'a> {
    pub fn new(line: &'a LogLine, spans: &'a [[usize; 2]]) -> Self {
        WireLineRef {
            seq: line.seq,
            ts: format_ts(line.ts),
            host: &line.stream.host,
            path: &line.stream.path,
            set: &line.stream.set,
            text: &line.text,
            spans,
        }
    }
}
