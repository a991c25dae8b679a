//! The lazy DFA of one subscription's many patterns, run over a buffer of lines in
//! several interleaved lanes.
//!
//! Why: with hundreds of patterns (a list of log templates, say) the lazy DFA's
//! transition table grows to tens of MiB, and a search is a chain of loads in which
//! each byte's transition waits for the one before it: one search spends most of its
//! time waiting on memory. Cut the buffer at line ends into [`LANES`] segments and
//! step each segment's search in turn, and the loads of different lanes are in
//! flight together. Measured over Loghub lines, against one search: 2.1x the bytes a
//! second with 100 patterns, 1.7x with 1,000 (BENCHMARKS.md, "Matcher").
//!
//! Each lane is an unanchored, earliest-match search of its segment, as
//! `try_search_fwd` would make it. A match decides its line (no pattern of the DFA can
//! match a `\n`), so the lane records the match and starts again after that line's
//! end. Lanes are independent: a line is always wholly in one segment, and a search
//! started afresh at a line start finds what one continued from the line before
//! would. The hits of a window are kept in lane order, which is buffer order.

#[cfg(target_arch = "x86_64")]
mod wide;

use crate::line::line_start_after;
use memchr::memchr;
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::hybrid::LazyStateID;
use regex_automata::util::start;

/// Searches stepped together. More lanes keep more loads in flight, until their
/// state no longer fits in registers: 6 was the best measured (bytes a second
/// against 6, at 1,000 and 100 patterns: 4 lanes 0.92 / 0.97, 5: 0.93 / 0.99,
/// 8: 0.99 / 0.92; 16 slower still).
pub const LANES: usize = 6;

/// Bytes searched per window (at least; it ends with a line): the hits of a window
/// are all recorded before the first is handed out, so this bounds their list (16
/// bytes per line that matches) and the work done past a give-up. Longer windows
/// spread the wide lanes' set-up over more bytes, and even out their segments:
/// against 64 KiB, at 1,000 and 100 patterns, 128 KiB made 1.11x and 1.13x the bytes
/// a second, 192 and 256 KiB no more (the scalar lanes the same at each).
const WINDOW: usize = 128 << 10;

/// The search cannot go on with this DFA: its cache had to be cleared (every lane's
/// state would be lost with it), or a byte made it quit (non-ASCII text under a
/// Unicode `\b`). Nothing at or after the `pos` of that call was handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GaveUp;

/// A line that a pattern matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// Where the line starts (or its segment, if that starts within the line).
    pub line_start: usize,
    /// Where the line ends: its `\n`, or the end of the buffer. The lane had to find
    /// it to start again after the line, so the walk need not look for it again.
    pub line_end: usize,
    /// The first match found ends there too, taking in the `\r` that ends the line
    /// (CRLF, or the buffer's last byte): the line's patterns, which do not see it,
    /// may not match. Any other match lies within the line the patterns see.
    pub match_takes_cr: bool,
}

/// One scanning thread's state for a lazy DFA: its cache and, where the CPU runs
/// the wide lanes, the table of transitions they step through.
#[derive(Debug, Clone)]
pub struct LaneCache {
    cache: Cache,
    #[cfg(target_arch = "x86_64")]
    wide: Option<Box<wide::Wide>>,
    /// Windows shorter than this go to the scalar lanes ([`wide::MIN_WINDOW`]; the
    /// tests lower it to run the wide lanes on short texts).
    #[cfg(target_arch = "x86_64")]
    wide_from: usize,
}

impl LaneCache {
    /// The wide lanes where the CPU has them, else the scalar ones; the table may
    /// take up to `max_table` bytes.
    pub fn new(dfa: &DFA, max_table: usize) -> LaneCache {
        #[cfg(target_arch = "x86_64")]
        if std::env::var_os("SUPERGREP_SCALAR_LANES").is_none() {
            if let Some(wide) = wide::Wide::new(dfa, max_table) {
                return LaneCache {
                    cache: dfa.create_cache(),
                    wide: Some(Box::new(wide)),
                    wide_from: wide::MIN_WINDOW,
                };
            }
        }
        let _ = max_table;
        LaneCache::scalar(dfa)
    }

    /// The scalar lanes, whatever the CPU.
    pub fn scalar(dfa: &DFA) -> LaneCache {
        LaneCache {
            cache: dfa.create_cache(),
            #[cfg(target_arch = "x86_64")]
            wide: None,
            #[cfg(target_arch = "x86_64")]
            wide_from: 0,
        }
    }

    /// How often the lazy DFA's cache was cleared (each clear gives the DFA up).
    pub fn clear_count(&self) -> usize {
        self.cache.clear_count()
    }

    #[cfg(test)]
    pub fn memory_usage(&self) -> usize {
        #[cfg(target_arch = "x86_64")]
        if let Some(wide) = &self.wide {
            return self.cache.memory_usage() + wide.memory_usage();
        }
        self.cache.memory_usage()
    }

    /// Appends to `hits`, in order, every line of `bytes[from..to]` (whole lines) a
    /// pattern matches.
    fn search_window(
        &mut self,
        dfa: &DFA,
        bytes: &[u8],
        from: usize,
        to: usize,
        hits: &mut Vec<Hit>,
        lane_hits: &mut [Vec<Hit>; LANES],
    ) -> Result<(), GaveUp> {
        #[cfg(target_arch = "x86_64")]
        if let Some(wide) = &mut self.wide {
            if to - from >= self.wide_from {
                return wide.search_window(dfa, &mut self.cache, bytes, from, to, hits);
            }
        }
        search_window(dfa, &mut self.cache, bytes, from, to, lane_hits)?;
        for lane in lane_hits.iter_mut() {
            hits.append(lane);
        }
        Ok(())
    }
}

/// Finds, a window at a time, the lines any pattern of the DFA matches.
#[derive(Debug)]
pub struct LaneSearch {
    /// The hits of the current window, in order.
    hits: Vec<Hit>,
    /// The next hit to hand out.
    cursor: usize,
    /// The scalar lanes' hits of a window, lane by lane.
    lane_hits: [Vec<Hit>; LANES],
    /// Where the current window ends (where the next one starts).
    searched_to: usize,
    window: usize,
}

impl Default for LaneSearch {
    fn default() -> Self {
        LaneSearch {
            hits: Vec::new(),
            cursor: 0,
            lane_hits: Default::default(),
            searched_to: 0,
            window: WINDOW,
        }
    }
}

impl LaneSearch {
    /// Ready for a new buffer (keeping the allocations).
    pub fn reset(&mut self) {
        self.hits.clear();
        self.cursor = 0;
        self.searched_to = 0;
    }

    /// The first hit at or after `pos`: a position in the first line from `pos` on
    /// that a pattern matches, and that match's end. `bytes` must be the same
    /// buffer for every call since the last [`reset`](Self::reset), and `pos` never
    /// smaller than in the call before.
    #[inline]
    pub fn next(
        &mut self,
        dfa: &DFA,
        cache: &mut LaneCache,
        bytes: &[u8],
        pos: usize,
    ) -> Result<Option<Hit>, GaveUp> {
        // Inlined: at 1,000 patterns nearly every line is a hit.
        match self.buffered(pos) {
            Some(hit) => Ok(Some(hit)),
            None => self.next_window(dfa, cache, bytes, pos),
        }
    }

    /// The first hit of the window searched last that is at or after `pos`.
    #[inline]
    fn buffered(&mut self, pos: usize) -> Option<Hit> {
        while let Some(&hit) = self.hits.get(self.cursor) {
            if hit.line_end >= pos {
                return Some(hit);
            }
            self.cursor += 1;
        }
        None
    }

    /// [`next`](Self::next) once the window's hits are all handed out.
    #[inline(never)]
    fn next_window(
        &mut self,
        dfa: &DFA,
        cache: &mut LaneCache,
        bytes: &[u8],
        pos: usize,
    ) -> Result<Option<Hit>, GaveUp> {
        loop {
            let from = self.searched_to.max(pos);
            if from >= bytes.len() {
                return Ok(None);
            }
            let to = line_end_after(bytes, from.saturating_add(self.window));
            self.searched_to = to;
            self.hits.clear();
            self.cursor = 0;
            cache.search_window(dfa, bytes, from, to, &mut self.hits, &mut self.lane_hits)?;
            if let Some(hit) = self.buffered(pos) {
                return Ok(Some(hit));
            }
        }
    }
}

/// Just past the first `\n` at or after `at`, or the end of `bytes`.
fn line_end_after(bytes: &[u8], at: usize) -> usize {
    if at >= bytes.len() {
        return bytes.len();
    }
    memchr(b'\n', &bytes[at..]).map_or(bytes.len(), |i| at + i + 1)
}

/// One lane: where its search is, where its segment ends, the DFA state it is in.
#[derive(Clone, Copy)]
struct Lane {
    at: usize,
    end: usize,
    /// Where the line being searched starts (or the segment, if it starts within
    /// the line).
    line_from: usize,
    sid: LazyStateID,
    /// Nothing more to find in the segment (its last line matched, or the DFA died).
    done: bool,
}

/// Records in `hits` every line of `bytes[from..to]` (whole lines) a pattern matches.
fn search_window(
    dfa: &DFA,
    cache: &mut Cache,
    bytes: &[u8],
    from: usize,
    to: usize,
    hits: &mut [Vec<Hit>; LANES],
) -> Result<(), GaveUp> {
    let clears = cache.clear_count();
    let mut start_state = |look_behind: Option<u8>| {
        dfa.start_state(cache, &start::Config::new().look_behind(look_behind))
            .map_err(|_| GaveUp)
    };
    let line_start = start_state(Some(b'\n'))?;
    let mut lanes = [Lane {
        at: from,
        end: from,
        line_from: from,
        sid: line_start,
        done: false,
    }; LANES];
    let mut start = from;
    // The lane whose segment holds the window's last byte.
    let mut last = 0;
    for (i, lane) in lanes.iter_mut().enumerate() {
        let end = if i + 1 == LANES {
            to
        } else {
            line_end_after(bytes, from + (to - from) * (i + 1) / LANES)
                .max(start)
                .min(to)
        };
        let sid = start_state(start.checked_sub(1).map(|i| bytes[i]))?;
        *lane = Lane {
            at: start,
            end,
            line_from: start,
            sid,
            done: false,
        };
        if start < end {
            last = i;
        }
        start = end;
    }
    if cache.clear_count() != clears {
        return Err(GaveUp);
    }
    let search = Search {
        dfa,
        bytes,
        line_start,
        clears,
    };
    for (lane, hits) in lanes.iter_mut().zip(hits.iter_mut()) {
        hits.clear();
        search.settle(lane, lane.sid, hits)?;
    }

    // All lanes together while each has bytes left; a lane whose transition leads
    // to a special state (not computed yet, match, dead, quit) is dealt with on its
    // own, then all go on.
    loop {
        let steps = lanes.iter().map(|l| l.end - l.at).min().unwrap_or(0);
        if steps == 0 {
            break;
        }
        let mut sids = lanes.map(|l| l.sid);
        let mut next = sids;
        let mut n = 0;
        while n < steps {
            let mut special = false;
            for i in 0..LANES {
                // SAFETY: `lanes[i].at + n < lanes[i].end <= bytes.len()`, as
                // `n < steps`. `sids[i]` is untagged (no lane with bytes left is
                // in a special state: `settle` sees to it, and `sids` takes only
                // untagged states) and comes from this cache, not cleared since
                // (a clear ends the window). Bounds checks here cost a quarter of
                // the speed (1,000 patterns: 611 against 812 MiB/s).
                next[i] = unsafe {
                    let byte = *bytes.get_unchecked(lanes[i].at + n);
                    dfa.next_state_untagged_unchecked(cache, sids[i], byte)
                };
                special |= next[i].is_tagged();
            }
            if special {
                break;
            }
            sids = next;
            n += 1;
        }
        for (lane, sid) in lanes.iter_mut().zip(sids) {
            lane.at += n;
            lane.sid = sid;
        }
        if n < steps {
            for (i, lane) in lanes.iter_mut().enumerate() {
                if next[i].is_tagged() {
                    search.step(cache, lane, next[i], &mut hits[i])?;
                } else {
                    lane.at += 1;
                    lane.sid = next[i];
                }
            }
        }
    }
    // The lanes with bytes left, one at a time.
    for (lane, hits) in lanes.iter_mut().zip(hits.iter_mut()) {
        while lane.at < lane.end {
            let next = dfa.next_state_untagged(cache, lane.sid, bytes[lane.at]);
            search.step(cache, lane, next, hits)?;
        }
    }
    // Matches show one byte late, so one that ends the buffer shows only with the
    // end-of-input transition (a line that ends in `\n` showed it on the `\n`).
    if to == bytes.len() && bytes.last().is_some_and(|&b| b != b'\n') && !lanes[last].done {
        let eoi = dfa
            .next_eoi_state(cache, lanes[last].sid)
            .map_err(|_| GaveUp)?;
        if cache.clear_count() != clears {
            return Err(GaveUp);
        }
        if eoi.is_match() {
            hits[last].push(Hit {
                line_start: line_start_after(bytes, lanes[last].line_from, to),
                line_end: to,
                match_takes_cr: takes_cr(bytes, to, to),
            });
        }
    }
    Ok(())
}

/// What a lane's step away from the common loop needs.
struct Search<'a> {
    dfa: &'a DFA,
    bytes: &'a [u8],
    /// The start state after a `\n`, where a lane starts again after a hit.
    line_start: LazyStateID,
    /// The cache's clear count when the window began: a clear invalidates states.
    clears: usize,
}

impl Search<'_> {
    /// Moves `lane` over the byte at `lane.at`, which leads to `next` (perhaps not
    /// computed yet).
    #[cold]
    #[inline(never)]
    fn step(
        &self,
        cache: &mut Cache,
        lane: &mut Lane,
        next: LazyStateID,
        hits: &mut Vec<Hit>,
    ) -> Result<(), GaveUp> {
        let next = if next.is_unknown() {
            let computed = self
                .dfa
                .next_state(cache, lane.sid, self.bytes[lane.at])
                .map_err(|_| GaveUp)?;
            if cache.clear_count() != self.clears {
                return Err(GaveUp);
            }
            computed
        } else {
            next
        };
        lane.at += 1;
        self.settle(lane, next, hits)
    }

    /// Puts `lane` in state `sid` at `lane.at`. On a match the line is recorded and
    /// the lane starts again after it; a dead state ends the lane; a quit state (or
    /// one not computed, which cannot come from `step`) gives up.
    fn settle(&self, lane: &mut Lane, sid: LazyStateID, hits: &mut Vec<Hit>) -> Result<(), GaveUp> {
        lane.sid = sid;
        if !sid.is_tagged() {
            return Ok(());
        }
        if sid.is_match() {
            // Matches are delayed by one byte: the state reached on the byte at
            // `end` says that a match ended just before it. That match lies within
            // one line (no pattern matches a `\n`): the line of `end - 1`, or, for
            // an empty match right after a `\n`, the line that starts at `end`.
            let end = lane.at - 1;
            let at = if end > 0 && self.bytes[end - 1] != b'\n' {
                end - 1
            } else {
                end
            };
            let line_start = line_start_after(self.bytes, lane.line_from, at);
            // Segments end just past a `\n` or at the end of the buffer.
            match memchr(b'\n', &self.bytes[at..lane.end]) {
                Some(i) => {
                    hits.push(Hit {
                        line_start,
                        line_end: at + i,
                        match_takes_cr: takes_cr(self.bytes, end, at + i),
                    });
                    lane.at = at + i + 1;
                    lane.line_from = lane.at;
                    return self.settle(lane, self.line_start, hits);
                }
                None => {
                    hits.push(Hit {
                        line_start,
                        line_end: lane.end,
                        match_takes_cr: takes_cr(self.bytes, end, lane.end),
                    });
                    lane.at = lane.end;
                    lane.done = true;
                }
            }
        } else if sid.is_dead() {
            lane.at = lane.end;
            lane.done = true;
        } else {
            return Err(GaveUp);
        }
        Ok(())
    }
}

/// Whether a match ending at `match_end` takes in the `\r` that ends the line ending
/// at `line_end` ([`Hit::match_takes_cr`]).
fn takes_cr(bytes: &[u8], match_end: usize, line_end: usize) -> bool {
    match_end == line_end && match_end > 0 && bytes[match_end - 1] == b'\r'
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::pattern::{line_dfa, PatternKey};
    use anyhow::Context;
    use proptest::test_runner::TestCaseError;
    use regex_automata::Input;

    fn dfa(patterns: &[&str]) -> anyhow::Result<DFA> {
        let keys: Vec<PatternKey> = patterns
            .iter()
            .map(|p| PatternKey {
                source: (*p).to_owned(),
                ignore_case: false,
            })
            .collect();
        line_dfa(&keys.iter().collect::<Vec<_>>(), 64 << 20)
            .with_context(|| format!("no lazy DFA for {patterns:?}"))
    }

    /// What one earliest search after another finds, each started after the line
    /// of the hit before (the walk before there were lanes).
    fn one_search_at_a_time(dfa: &DFA, bytes: &[u8]) -> anyhow::Result<Vec<Hit>> {
        let mut cache = dfa.create_cache();
        let (mut pos, mut hits) = (0, Vec::new());
        while pos < bytes.len() {
            let input = Input::new(bytes).span(pos..bytes.len()).earliest(true);
            let Some(m) = dfa.try_search_fwd(&mut cache, &input)? else {
                break;
            };
            let end = m.offset();
            let at = if end > pos && bytes[end - 1] != b'\n' {
                end - 1
            } else {
                end
            };
            // After a final `\n` there is no line (the walk drops this hit, lanes
            // never make it).
            if at == bytes.len() && bytes.last() == Some(&b'\n') {
                break;
            }
            let line_end = memchr(b'\n', &bytes[at..]).map_or(bytes.len(), |i| at + i);
            hits.push(Hit {
                line_start: line_start_after(bytes, pos, at),
                line_end,
                match_takes_cr: takes_cr(bytes, end, line_end),
            });
            pos = line_end + 1;
        }
        Ok(hits)
    }

    /// A cache of each kind of lanes this CPU runs: scalar, wide (for every window)
    /// where it can, and the default.
    fn caches(dfa: &DFA) -> Vec<(&'static str, LaneCache)> {
        let mut caches = vec![("scalar", LaneCache::scalar(dfa))];
        #[cfg(target_arch = "x86_64")]
        match wide::Wide::new(dfa, 64 << 20) {
            Some(wide) => caches.push((
                "wide",
                LaneCache {
                    cache: dfa.create_cache(),
                    wide: Some(Box::new(wide)),
                    wide_from: 0,
                },
            )),
            None => wide::say_untested(),
        }
        // As the matcher makes it: wide lanes for long windows only, the scalar ones
        // for the rest, the two over one cache.
        caches.push(("default", LaneCache::new(dfa, 64 << 20)));
        caches
    }

    /// What each kind of lanes finds, with a fresh cache.
    fn in_lanes(
        dfa: &DFA,
        bytes: &[u8],
        window: usize,
    ) -> Vec<(&'static str, Result<Vec<Hit>, GaveUp>)> {
        caches(dfa)
            .into_iter()
            .map(|(kind, mut cache)| (kind, in_lanes_with(dfa, &mut cache, bytes, window)))
            .collect()
    }

    fn in_lanes_with(
        dfa: &DFA,
        cache: &mut LaneCache,
        bytes: &[u8],
        window: usize,
    ) -> Result<Vec<Hit>, GaveUp> {
        let mut search = LaneSearch {
            window,
            ..LaneSearch::default()
        };
        let (mut pos, mut hits) = (0, Vec::new());
        while let Some(hit) = search.next(dfa, cache, bytes, pos)? {
            hits.push(hit);
            pos = hit.line_end + 1;
        }
        Ok(hits)
    }

    /// Asserts that every kind of lanes finds `want`.
    fn assert_lanes_find(dfa: &DFA, bytes: &[u8], window: usize, want: Result<Vec<Hit>, GaveUp>) {
        for (kind, got) in in_lanes(dfa, bytes, window) {
            assert_eq!(
                got,
                want,
                "{kind} lanes, window {window}, text {:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn lanes_find_what_one_search_at_a_time_finds() -> anyhow::Result<()> {
        let dfa = dfa(&[
            r"Receiving block .*? src: .*? dest:",
            r"error \d+",
            r"^(?:ab)*$",
            r"^start",
            r"end$",
            r"\bword\b",
        ])?;
        let lines = [
            "Receiving block blk_1 src: /10.0.0.1 dest: /10.0.0.2",
            "nothing here",
            "",
            "error 42 at start",
            "start of something",
            "something at the end",
            "a word alone",
            "swordfish",
            "Receiving block blk_2 src: /10.0.0.3",
            "crlf line end\r",
            "error  no digits",
            "abab",
            "aba",
        ];
        // Every order of lines an index permutation gives, with and without a final
        // newline, windows from a byte to the whole text: lanes get empty segments,
        // segments of one line, hits at their first and last byte.
        for shift in 0..lines.len() {
            let mut text = String::new();
            for i in 0..lines.len() * 3 {
                text.push_str(lines[(i * 7 + shift) % lines.len()]);
                text.push('\n');
            }
            for text in [text.as_str(), text.trim_end_matches('\n')] {
                let want = one_search_at_a_time(&dfa, text.as_bytes())?;
                // Some lines match, some do not.
                assert!(want.len() > 10 && want.len() < lines.len() * 2, "{want:?}");
                for window in [1, 7, 64, 300, WINDOW] {
                    assert_lanes_find(&dfa, text.as_bytes(), window, Ok(want.clone()));
                }
            }
        }
        Ok(())
    }

    #[test]
    fn a_match_that_ends_the_text_is_found_in_whichever_lane_holds_it() -> anyhow::Result<()> {
        // One line, no newline: the first lane holds all of it, the others nothing.
        let dfa = dfa(&["abc", "zzz"])?;
        let hit = Hit {
            line_start: 0,
            line_end: 5,
            match_takes_cr: false,
        };
        assert_lanes_find(&dfa, b"xxabc", WINDOW, Ok(vec![hit]));
        assert_lanes_find(&dfa, b"xxab", WINDOW, Ok(vec![]));
        assert_lanes_find(&dfa, b"", WINDOW, Ok(vec![]));
        Ok(())
    }

    #[test]
    fn non_ascii_under_a_unicode_word_boundary_gives_up() -> anyhow::Result<()> {
        let dfa = dfa(&[r"\bword\b", "other"])?;
        let hit = Hit {
            line_start: 0,
            line_end: 6,
            match_takes_cr: false,
        };
        assert_lanes_find(&dfa, "a word\n".as_bytes(), WINDOW, Ok(vec![hit]));
        assert_lanes_find(&dfa, "a wörd\n".as_bytes(), WINDOW, Err(GaveUp));
        Ok(())
    }

    #[test]
    fn every_kind_of_lanes_finds_the_lines_of_a_long_mixed_text() -> anyhow::Result<()> {
        // Lines that match early, late, at their `\n`, at their first byte, not at
        // all; long lines (longer than a window); empty and CRLF lines, matched before
        // their `\r` and by taking it in; bytes above 0x7f (no Unicode `\b` here, so
        // the DFA goes on). Several windows, a cache reused across them (states
        // copied in one window are used in the next).
        let dfa = dfa(&[
            r"^GET /\S+ 5\d\d",
            r"Failed password for .*? from [0-9.]+",
            r"timeout$",
            r"^x",
            "ünï",
            r"closed\s",
        ])?;
        let mut text = String::new();
        for i in 0..6_000 {
            match i % 11 {
                0 => text.push_str(&format!("GET /a/{i} 503 12ms")),
                1 => text.push_str(&format!(
                    "sshd[{i}]: Failed password for root from 10.0.{}.1 port 22",
                    i % 250
                )),
                2 => text.push_str(&format!("{i} read timeout")),
                3 => text.push('x'),
                4 => text.push_str(&format!("{i} ok ünïcode")),
                5 => text.push_str(&"a".repeat(70_000 + i)),
                6 => {}
                7 => text.push_str(&format!("{i} timeout\r")),
                10 => text.push_str(&format!("{i} closed\r")),
                _ => text.push_str(&format!("{i} GET /b 200 Failed password for")),
            }
            text.push('\n');
        }
        let want = one_search_at_a_time(&dfa, text.as_bytes())?;
        assert!(want.len() > 2_000 && want.len() < 4_000, "{}", want.len());
        let takes_cr = want.iter().filter(|hit| hit.match_takes_cr).count();
        assert_eq!(takes_cr, 6_000 / 11, "the `closed\\r` lines");
        for (kind, mut cache) in caches(&dfa) {
            for window in [100, 4096, WINDOW] {
                let got = in_lanes_with(&dfa, &mut cache, text.as_bytes(), window);
                assert_eq!(
                    got.as_ref().map(Vec::len),
                    Ok(want.len()),
                    "{kind} lanes, window {window}"
                );
                assert_eq!(got, Ok(want.clone()), "{kind} lanes, window {window}");
            }
        }
        Ok(())
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn wide_lanes_give_up_when_their_table_is_full() -> anyhow::Result<()> {
        let dfa = dfa(&["Failed password for .*? from", "timeout"])?;
        let text = "sshd: Failed password for root from 10.0.0.1\nread timeout\nok\n".repeat(100);
        let Some(wide) = wide::Wide::new(&dfa, 4096) else {
            wide::say_untested();
            return Ok(());
        };
        let mut cache = LaneCache {
            cache: dfa.create_cache(),
            wide: Some(Box::new(wide)),
            wide_from: 0,
        };
        // 4 KiB hold a few rows of the table; the search needs dozens.
        assert_eq!(
            in_lanes_with(&dfa, &mut cache, text.as_bytes(), WINDOW),
            Err(GaveUp)
        );
        let (_, mut roomy) = caches(&dfa)
            .into_iter()
            .find(|(kind, _)| *kind == "wide")
            .context("no wide lanes where Wide::new gave some")?;
        assert_eq!(
            in_lanes_with(&dfa, &mut roomy, text.as_bytes(), WINDOW).map(|h| h.len()),
            Ok(200)
        );
        Ok(())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Random patterns over a small alphabet and random texts of it, with windows
        /// from a byte to a few hundred: lanes of every kind agree with one search at
        /// a time (segments of every length, empty ones, hits at window and segment
        /// edges, CRLF, anchors, `\b`, empty matches).
        #[test]
        fn every_kind_of_lanes_agrees_with_one_search_at_a_time(
            patterns in proptest::collection::vec(
                proptest::sample::select(vec![
                    "a", "b", "ab", "ba", "a+b", "b?a", r"\r", r"\ba", r"b\b", "^a", "b$", "^$",
                    "a.b", "[ab]{2}", "a.*?b", "x?", r"a\r?$", "^b+$",
                ]),
                1..6,
            ),
            text in "[ab \r\nx]{0,3000}",
            window in 1usize..400,
        ) {
            let failed = |e: anyhow::Error| TestCaseError::fail(format!("{e:#}"));
            let dfa = dfa(&patterns).map_err(failed)?;
            let want = one_search_at_a_time(&dfa, text.as_bytes()).map_err(failed)?;
            for (kind, got) in in_lanes(&dfa, text.as_bytes(), window) {
                proptest::prop_assert_eq!(got, Ok(want.clone()), "{} lanes", kind);
            }
        }
    }
}
