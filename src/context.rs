//! `-A/-B/-C`: the lines around each match, printed as grep prints them (`path:` for a
//! match, `path-` for context, `--` between groups that are not adjacent).
//!
//! The terminal's sink then takes every batch, with its matches marked
//! ([`Takes::EveryBatch`](crate::hub::Takes::EveryBatch)); this walks
//! each batch's lines, holds the last `before` lines of each stream for a match to
//! come, and prints `after` lines past a match as they arrive (from the next batch,
//! when following). Only with context asked for: the plain scan's printer never looks
//! at a line that did not match.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Write};
use std::sync::Arc;

use crate::hub::backlog::Entry;
use crate::hub::BatchMatches;
use crate::line::{LineRef, Stream};
use crate::output::Printer;

/// The context state of a terminal run: per stream, what is held and what is owed.
pub struct Context {
    before: usize,
    after: u64,
    streams: HashMap<String, StreamContext>,
    /// The last line printed (its stream, seq), to know when a group is adjacent.
    last: Option<(Arc<Stream>, u64)>,
}

#[derive(Default)]
struct StreamContext {
    /// Up to `before` lines since the last one printed, oldest first.
    held: VecDeque<Held>,
    /// Lines still to print after the last match.
    after_left: u64,
}

/// A line held for a match to come: where it is in its batch (shared, not copied).
struct Held {
    entry: Arc<Entry>,
    start: usize,
    end: usize,
    seq: u64,
}

impl Held {
    fn line(&self) -> LineRef<'_> {
        let batch = &self.entry.batch;
        LineRef {
            stream: &batch.stream,
            seq: self.seq,
            ts: batch.ts,
            text: batch.text.get(self.start..self.end).unwrap_or_default(),
        }
    }
}

impl Context {
    pub fn new(before: u64, after: u64) -> Context {
        Context {
            before: usize::try_from(before).unwrap_or(usize::MAX),
            after,
            streams: HashMap::new(),
            last: None,
        }
    }

    /// Prints the matches of `batch` and their context; returns how many matches.
    pub fn print<W: Write>(
        &mut self,
        printer: &mut Printer<W>,
        batch: &BatchMatches,
    ) -> io::Result<u64> {
        let entry = &batch.entry;
        let (stream, text) = (&entry.batch.stream, entry.batch.text.as_ref());
        // Looked up by reference: the key is allocated once per stream, not per batch.
        if !self.streams.contains_key(&stream.id) {
            self.streams
                .insert(stream.id.clone(), StreamContext::default());
        }
        let Some(state) = self.streams.get_mut(&stream.id) else {
            return Ok(0);
        };
        // Matches come in the order of their lines (one forward scan).
        let mut matches = batch.iter().zip(&batch.lines).peekable();
        let mut printed = 0;
        for (index, line) in crate::line::lines(text).enumerate() {
            let seq = entry.first_seq + index as u64;
            if let Some(((matched, spans), _)) = matches.next_if(|(_, m)| m.index == index as u64) {
                let first = state.held.front().map_or(seq, |h| h.seq);
                separate(printer, &self.last, &stream.id, first)?;
                for held in state.held.drain(..) {
                    printer.print_context(held.line())?;
                }
                printer.print(matched, spans)?;
                self.last = Some((stream.clone(), seq));
                state.after_left = self.after;
                printed += 1;
            } else if state.after_left > 0 {
                state.after_left -= 1;
                let line = LineRef {
                    stream,
                    seq,
                    ts: entry.batch.ts,
                    text: line,
                };
                printer.print_context(line)?;
                self.last = Some((stream.clone(), seq));
            } else if self.before > 0 {
                if state.held.len() == self.before {
                    state.held.pop_front();
                }
                let start = line.as_ptr() as usize - text.as_ptr() as usize;
                state.held.push_back(Held {
                    entry: entry.clone(),
                    start,
                    end: start + line.len(),
                    seq,
                });
            }
        }
        Ok(printed)
    }
}

/// `--` before a group whose first line does not follow the last line printed.
fn separate<W: Write>(
    printer: &mut Printer<W>,
    last: &Option<(Arc<Stream>, u64)>,
    stream: &str,
    first: u64,
) -> io::Result<()> {
    match last {
        Some((s, seq)) if s.id != stream || seq + 1 != first => printer.group_separator(),
        _ => Ok(()),
    }
}
