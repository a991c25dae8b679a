//! The lane search with AVX-512: 16 lanes to a vector, [`VECTORS`] vectors stepped
//! together, every transition of a vector one gather.
//!
//! Why: the scalar lanes spend about ten instructions a byte (load the byte, its
//! class, the transition, test it, for each lane, with registers spilled for six),
//! bound by how many instructions the core issues and how many loads it keeps in
//! flight. Here a gather makes 16 transitions, a few vector instructions the rest,
//! and 64 lanes keep as many loads in flight (at 1,000 patterns 1.4x the scalar lanes'
//! bytes a second; BENCHMARKS.md, "Matcher").
//!
//! The lazy DFA's own table is private to regex-automata, so the lanes step through
//! [`Table`]: a copy of the transitions they have used, in a flat `u32` table indexed
//! by state and byte class, each filled from the lazy DFA the first time a lane needs
//! it. Two things the scalar lanes do on their own are rows of the table here:
//! - A match ends the lane's line: instead of stepping out to find the line's end,
//!   the transition into a match state goes to the *rest of line* state, which stays
//!   put until a `\n`. Only that `\n`'s transition is flagged, so a lane records one
//!   event a matched line, where the line ends; the line's start is found after the
//!   window, from the previous event.
//! - The `\r` of a CRLF has a class of its own, and a match that takes it in (the
//!   line's patterns, which do not see it, need not match) is a slow entry: the lane
//!   notes the line and goes on in the rest of line. The rare case costs a stop; the
//!   common one costs no second log of whether each match reached its line's end.
//! - The bytes are translated to classes a window at a time (`vpermi2b`, 64 bytes an
//!   instruction pair), then transposed lane by lane, so the 16 lanes of a vector
//!   load their next four classes at once instead of gathering them.
//!
//! Same results as the scalar lanes: an unanchored earliest-match search from each
//! line start, a dead state ending the lane, a quit state or a cache clear giving up.

use std::arch::x86_64::*;
use std::collections::HashMap;

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::hybrid::LazyStateID;
use regex_automata::util::start;

use super::{GaveUp, Hit};

/// Vectors of 16 lanes stepped together, so that several gathers are in flight.
/// Measured at 1,000 patterns: 2 vectors 1,170 MiB/s, 3: 1,220, 4: 1,270; more would
/// not fit the 32 vector registers.
const VECTORS: usize = 4;

/// Windows shorter than this are searched by the scalar lanes: a window's fixed
/// costs (64 lanes set up, gathers for vectors with few lanes left) outweigh the
/// wide steps. Measured at 1,000 patterns, `Matcher::scan` over batches of this
/// many bytes, wide against scalar MiB/s: 300 bytes 57 / 247, 4,000: 551 / 655,
/// 8,000: 769 / 772, 16,000: 1,036 / 826, 65,536: 1,397 / 889.
pub const MIN_WINDOW: usize = 8 << 10;

/// Lanes of a window.
const LANES_WIDE: usize = 16 * VECTORS;

/// A table entry is the premultiplied index of the next state's row, or one of these.
/// The transition has not been copied from the lazy DFA yet.
const UNKNOWN: u32 = 1 << 31;
/// The next state is dead: the lane is done.
const DEAD: u32 = UNKNOWN | 1;
/// The next state quits (a byte the DFA cannot search): give up.
const QUIT: u32 = UNKNOWN | 2;
/// On the `\r` of a CRLF: the match shows on the `\n` after it, so it takes in the
/// `\r` ([`Hit::match_takes_cr`]).
const TAKES_CR: u32 = UNKNOWN | 3;
/// Entries the vector loop does not take: the lane steps out.
const SLOW: u32 = UNKNOWN;
/// A matched line ends on this byte (its `\n`); the entry's index says where to go on.
const MATCH: u32 = 1 << 30;
/// The row index bits of an entry.
const INDEX: u32 = MATCH - 1;

/// The row of the rest of a line that already matched.
const REST_OF_LINE: u32 = 0;

/// Whether this CPU runs the wide lanes.
fn available() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vbmi")
        && is_x86_feature_detected!("avx512vbmi2")
}

/// The transitions the lanes have used, copied from one lazy DFA cache (and valid
/// only as long as it is not cleared: a clear gives the DFA up).
#[derive(Debug, Clone)]
struct Table {
    /// Our class of each byte: the lazy DFA's, but with `\n` in a class of its own
    /// (the rest of a line ends on it).
    classes: [u8; 256],
    /// A byte of each class, to ask the lazy DFA for its transition.
    representative: Vec<u8>,
    newline: u32,
    /// The class of a `\r` just before a `\n` (`translate` gives it; a `\r`
    /// elsewhere is in its class of `classes`).
    crlf: u32,
    /// Entries a row: one per class.
    stride: usize,
    trans: Vec<u32>,
    /// The lazy DFA's state of each row (the rest of line row has none).
    states: Vec<Option<LazyStateID>>,
    rows: HashMap<LazyStateID, u32>,
    /// The row of the line start state; `None` until the first window.
    line_start: Option<u32>,
    /// Entries at most (the lazy DFA's cache capacity, in `u32`s).
    max_entries: usize,
}

impl Table {
    fn new(dfa: &DFA, max_bytes: usize) -> Table {
        let hybrid = dfa.byte_classes();
        let newline = hybrid.alphabet_len() as u32;
        let crlf = newline + 1;
        let mut classes = [0u8; 256];
        let stride = crlf as usize + 1;
        let mut representative = vec![0u8; stride];
        for b in 0..=255u8 {
            let class = if b == b'\n' {
                newline as u8
            } else {
                hybrid.get(b)
            };
            classes[b as usize] = class;
            representative[class as usize] = b;
        }
        representative[crlf as usize] = b'\r';
        Table {
            classes,
            representative,
            newline,
            crlf,
            stride,
            trans: Vec::new(),
            states: Vec::new(),
            rows: HashMap::new(),
            line_start: None,
            max_entries: max_bytes / 4,
        }
    }

    #[cfg(test)]
    fn memory_usage(&self) -> usize {
        self.trans.capacity() * 4
            + self.states.capacity() * std::mem::size_of::<Option<LazyStateID>>()
            + self.rows.capacity() * (std::mem::size_of::<(LazyStateID, u32)>() + 1)
    }

    /// The row of the lazy DFA's state `sid` (untagged or a match), added if new.
    fn row(&mut self, sid: LazyStateID) -> Result<u32, GaveUp> {
        if let Some(&row) = self.rows.get(&sid) {
            return Ok(row);
        }
        let row = self.trans.len();
        if row + self.stride > self.max_entries.min(INDEX as usize) {
            return Err(GaveUp);
        }
        self.trans.resize(row + self.stride, UNKNOWN);
        self.states.push(Some(sid));
        let row = row as u32;
        self.rows.insert(sid, row);
        Ok(row)
    }

    /// The rest of line row and the line start's, at the first window.
    fn prepare(&mut self, dfa: &DFA, cache: &mut Cache) -> Result<u32, GaveUp> {
        if let Some(row) = self.line_start {
            return Ok(row);
        }
        self.trans.resize(self.stride, REST_OF_LINE);
        self.states.push(None);
        let line_start = start_row(self, dfa, cache, Some(b'\n'))?;
        self.trans[self.newline as usize] = MATCH | line_start;
        self.line_start = Some(line_start);
        Ok(line_start)
    }

    /// Copies the transition at `entry` from the lazy DFA.
    fn fill(&mut self, dfa: &DFA, cache: &mut Cache, entry: usize) -> Result<(), GaveUp> {
        let (row, class) = (entry / self.stride, entry % self.stride);
        let Some(sid) = self.states[row] else {
            return Err(GaveUp);
        };
        let next = dfa
            .next_state(cache, sid, self.representative[class])
            .map_err(|_| GaveUp)?;
        // A match that shows on the `\n` after this `\r` takes the `\r` in.
        let takes_cr = class as u32 == self.crlf
            && !next.is_match()
            && !next.is_dead()
            && !next.is_quit()
            && !next.is_tagged()
            && dfa
                .next_state(cache, next, b'\n')
                .map_err(|_| GaveUp)?
                .is_match();
        let value = if takes_cr {
            TAKES_CR
        } else if next.is_dead() {
            DEAD
        } else if next.is_quit() {
            QUIT
        } else if next.is_match() {
            // The line matched: recorded at its `\n` (here, or where the rest of
            // line row meets it).
            if class as u32 == self.newline {
                MATCH | self.line_start.ok_or(GaveUp)?
            } else {
                REST_OF_LINE
            }
        } else if next.is_tagged() {
            return Err(GaveUp);
        } else {
            self.row(next)?
        };
        self.trans[entry] = value;
        Ok(())
    }
}

/// The row of the start state after `look_behind`.
fn start_row(
    table: &mut Table,
    dfa: &DFA,
    cache: &mut Cache,
    look_behind: Option<u8>,
) -> Result<u32, GaveUp> {
    let sid = dfa
        .start_state(cache, &start::Config::new().look_behind(look_behind))
        .map_err(|_| GaveUp)?;
    if sid.is_tagged() {
        return Err(GaveUp);
    }
    table.row(sid)
}

/// Buffers of one window, kept for their allocations.
#[derive(Debug, Default, Clone)]
struct Work {
    /// The window's bytes as classes, and [`PADDING`] bytes after them.
    classes: Vec<u8>,
    /// The classes lane by lane ([`transpose`]): the `u32` at `b * LANES_WIDE + l`
    /// holds lane `l`'s classes at steps `4b..4b + 4`, one a byte.
    by_lane: Vec<u32>,
    /// Where each lane recorded the lines it matched: lane `l` from its segment's
    /// start on (it has at most a line a byte): where each line ends (its `\n`), as
    /// an offset in the window.
    found: Vec<u32>,
    /// Step `t` of the lanes (all lanes step together, lane `l` at its segment's
    /// start plus `t`): bit `l` says lane `l`'s line ended there matched.
    hit_log: Vec<u64>,
    /// The line ends (offsets in the window) of the lines whose match took in the
    /// `\r` of their CRLF, in the order the lanes noted them.
    takes_cr: Vec<u32>,
    /// The log's set bits in step order ([`log_events`]): the lane, and the step.
    event_lanes: Vec<u8>,
    event_steps: Vec<u32>,
    /// Bit `i % 64` of word `i / 64`: byte `i` of the window is a `\n` (made with
    /// the classes; where the lines start is read from here).
    newlines: Vec<u64>,
}

/// The wide lanes of one lazy DFA cache: the table, and buffers.
#[derive(Debug, Clone)]
pub struct Wide {
    table: Table,
    work: Work,
}

impl Wide {
    /// `None` unless the CPU runs the wide lanes ([`available`]).
    pub fn new(dfa: &DFA, max_table: usize) -> Option<Wide> {
        available().then(|| Wide {
            table: Table::new(dfa, max_table),
            work: Work::default(),
        })
    }

    #[cfg(test)]
    pub fn memory_usage(&self) -> usize {
        self.table.memory_usage()
            + self.work.classes.capacity()
            + self.work.by_lane.capacity() * 4
            + self.work.found.capacity() * 4
            + self.work.takes_cr.capacity() * 4
            + self.work.event_lanes.capacity()
            + self.work.event_steps.capacity() * 4
            + (self.work.hit_log.capacity() + self.work.newlines.capacity()) * 8
    }

    /// Appends to `hits`, in order, every line of `bytes[from..to]` (whole lines) a
    /// pattern matches.
    pub fn search_window(
        &mut self,
        dfa: &DFA,
        cache: &mut Cache,
        bytes: &[u8],
        from: usize,
        to: usize,
        hits: &mut Vec<Hit>,
    ) -> Result<(), GaveUp> {
        // Offsets in a window are `u32`s (windows are 64 KiB and a line).
        if to - from >= (i32::MAX as usize) {
            return Err(GaveUp);
        }
        // SAFETY: `Wide` exists only where `available` said the CPU has the
        // features `search` is compiled for.
        unsafe {
            search(
                dfa,
                cache,
                &mut self.table,
                &mut self.work,
                bytes,
                from,
                to,
                hits,
            )
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vbmi,avx512vbmi2")]
#[allow(clippy::too_many_arguments)]
fn search(
    dfa: &DFA,
    cache: &mut Cache,
    table: &mut Table,
    work: &mut Work,
    bytes: &[u8],
    from: usize,
    to: usize,
    hits: &mut Vec<Hit>,
) -> Result<(), GaveUp> {
    let clears = cache.clear_count();
    let first_hit = hits.len();
    work.takes_cr.clear();
    let window = &bytes[from..to];
    let len = window.len();
    let line_start = table.prepare(dfa, cache)?;

    translate(
        &table.classes,
        table.crlf as u8,
        window,
        &mut work.classes,
        &mut work.newlines,
    );

    // The lanes' segments, cut at line ends; a lane starts in the start state its
    // segment's look-behind byte gives.
    let (seg_start, seg_end) = balanced_segments(&work.newlines, window);
    let mut row = [REST_OF_LINE; LANES_WIDE];
    for l in 0..LANES_WIDE {
        let start = seg_start[l] as usize;
        if start < seg_end[l] as usize {
            let look_behind = (from + start).checked_sub(1).map(|i| bytes[i]);
            row[l] = match look_behind {
                Some(b'\n') => line_start,
                _ => start_row(table, dfa, cache, look_behind)?,
            };
        }
    }
    if cache.clear_count() != clears {
        return Err(GaveUp);
    }

    // Read only where written (no need to clear it).
    if work.found.len() < len {
        work.found.resize(len, 0);
    }
    let longest = (0..LANES_WIDE)
        .map(|l| seg_end[l] - seg_start[l])
        .max()
        .unwrap_or(0) as usize;
    if work.hit_log.len() < longest {
        work.hit_log.resize(longest, 0);
    }
    transpose(&work.classes, len, &seg_start, longest, &mut work.by_lane);

    let mut pos = [_mm512_setzero_si512(); VECTORS];
    let mut end = [_mm512_setzero_si512(); VECTORS];
    let mut sid = [_mm512_setzero_si512(); VECTORS];
    let mut active: [__mmask16; VECTORS] = [0; VECTORS];
    for v in 0..VECTORS {
        pos[v] = load16(&seg_start[16 * v..]);
        end[v] = load16(&seg_end[16 * v..]);
        sid[v] = load16(&row[16 * v..]);
        active[v] = _mm512_cmplt_epu32_mask(pos[v], end[v]);
    }
    let mut dead: [__mmask16; VECTORS] = [0; VECTORS];

    let low_byte = _mm512_set1_epi32(0xff);
    let slow = _mm512_set1_epi32(SLOW as i32);
    let matched = _mm512_set1_epi32(MATCH as i32);
    let index = _mm512_set1_epi32(INDEX as i32);
    let by_lane = work.by_lane.as_ptr();
    let hit_log = work.hit_log.as_mut_ptr();
    // Steps taken by every lane.
    let mut t = 0usize;

    // One step of every lane over the byte whose class is at `$shift` in `four`; on
    // a slow entry, moves the lanes `$k` bytes on and leaves `$stop`.
    macro_rules! step {
        ($trans:expr, $four:expr, $shift:literal, $k:literal, $stop:lifetime) => {{
            let mut next = [_mm512_setzero_si512(); VECTORS];
            let mut any_slow = 0;
            for v in 0..VECTORS {
                let class = _mm512_and_si512(_mm512_srli_epi32::<$shift>($four[v]), low_byte);
                let entry = _mm512_add_epi32(sid[v], class);
                // SAFETY: an active lane's `sid` is a row of the table (entries are
                // rows or flagged rows, masked by `INDEX`, and rows are whole), and
                // `class` is below the stride: the entry is within `trans`, taken
                // after the last time the table grew. Inactive lanes load nothing.
                // (Unmasked, with inactive lanes held on a row, this gather made
                // 1,000 patterns slower: 920 against 1,300-1,400 MiB/s.)
                next[v] = unsafe {
                    _mm512_mask_i32gather_epi32::<4>(sid[v], active[v], entry, $trans)
                };
                any_slow |= _mm512_mask_test_epi32_mask(active[v], next[v], slow);
            }
            if any_slow != 0 {
                for p in pos.iter_mut() {
                    *p = _mm512_add_epi32(*p, _mm512_set1_epi32($k));
                }
                t += $k;
                break $stop true;
            }
            // Logged every step, hit or not: a branch on hits costs more (a line
            // every 140 bytes in 64 lanes makes it a coin toss).
            let mut hit = 0u64;
            for v in 0..VECTORS {
                let h = _mm512_mask_test_epi32_mask(active[v], next[v], matched);
                hit |= (h as u64) << (16 * v);
                sid[v] = _mm512_mask_and_epi32(sid[v], active[v], next[v], index);
            }
            // SAFETY: an active lane's `pos = seg_start + t` and `pos + k < seg_end`:
            // `t + k` is below the longest segment, the log's length.
            unsafe {
                *hit_log.add(t + $k) = hit;
            }
        }};
    }

    loop {
        // Steps every active lane can take before its segment ends.
        let mut steps = u32::MAX;
        for v in 0..VECTORS {
            active[v] &= _mm512_cmplt_epu32_mask(pos[v], end[v]);
            if active[v] != 0 {
                let left = _mm512_mask_sub_epi32(_mm512_set1_epi32(-1), active[v], end[v], pos[v]);
                steps = steps.min(_mm512_reduce_min_epu32(left));
            }
        }
        if steps == u32::MAX {
            break;
        }
        let trans: *const i32 = table.trans.as_ptr().cast();
        // Four bytes a step while every lane has them, then one; a lane's slow entry
        // stops all of them before that byte.
        let mut taken = 0u32;
        let stopped = 'steps: {
            while taken < steps {
                // Steps `t..t + 4`: from the blocks of steps `4b..` and `4b + 4..`.
                let (b, shift) = (t / 4, 8 * (t % 4) as i32);
                let (right, left) = (_mm_cvtsi32_si128(shift), _mm_cvtsi32_si128(32 - shift));
                let mut four = [_mm512_setzero_si512(); VECTORS];
                for (v, four) in four.iter_mut().enumerate() {
                    // SAFETY: `t` is below the longest segment, and `transpose` made
                    // blocks for all of its steps and one more.
                    let (lo, hi) = unsafe {
                        let at = by_lane.add(b * LANES_WIDE + 16 * v);
                        (
                            _mm512_loadu_si512(at.cast()),
                            _mm512_loadu_si512(at.add(LANES_WIDE).cast()),
                        )
                    };
                    *four =
                        _mm512_or_si512(_mm512_srl_epi32(lo, right), _mm512_sll_epi32(hi, left));
                }
                let block = if steps - taken >= 4 {
                    step!(trans, four, 0, 0, 'steps);
                    step!(trans, four, 8, 1, 'steps);
                    step!(trans, four, 16, 2, 'steps);
                    step!(trans, four, 24, 3, 'steps);
                    4
                } else {
                    step!(trans, four, 0, 0, 'steps);
                    1
                };
                for p in pos.iter_mut() {
                    *p = _mm512_add_epi32(*p, _mm512_set1_epi32(block as i32));
                }
                t += block as usize;
                taken += block;
            }
            false
        };
        if stopped {
            // The lanes whose next entry is slow: copy it, end the lane, note a match
            // that takes a `\r` in (the lane goes on in the rest of line), or give up.
            let mut moved = false;
            let mut at = [0u32; LANES_WIDE];
            let mut rows = [0u32; LANES_WIDE];
            for v in 0..VECTORS {
                store16(&mut at[16 * v..], pos[v]);
                store16(&mut rows[16 * v..], sid[v]);
            }
            for l in 0..LANES_WIDE {
                let (v, bit) = (l / 16, 1u16 << (l % 16));
                if active[v] & bit == 0 {
                    continue;
                }
                let class = work.classes[at[l] as usize];
                let entry = rows[l] as usize + class as usize;
                match table.trans[entry] {
                    UNKNOWN => table.fill(dfa, cache, entry)?,
                    DEAD => {
                        active[v] &= !bit;
                        dead[v] |= bit;
                    }
                    QUIT => return Err(GaveUp),
                    TAKES_CR => {
                        // The `\n` is the next byte (that is what made it this class).
                        work.takes_cr.push(at[l] + 1);
                        rows[l] = REST_OF_LINE;
                        moved = true;
                    }
                    _ => {}
                }
            }
            if moved {
                for v in 0..VECTORS {
                    sid[v] = load16(&rows[16 * v..]);
                }
            }
            if cache.clear_count() != clears {
                return Err(GaveUp);
            }
        }
    }

    // The log, lane by lane, into `found`: where each lane's lines ended.
    let events = log_events(
        &work.hit_log[..t],
        len,
        &mut work.event_lanes,
        &mut work.event_steps,
    );
    let mut recorded = seg_start;
    for (&l, &step) in work.event_lanes[..events]
        .iter()
        .zip(&work.event_steps[..events])
    {
        let l = l as usize;
        work.found[recorded[l] as usize] = seg_start[l] + step;
        recorded[l] += 1;
    }
    // The hits, lane by lane (segments are in order).
    let mut rows = [0u32; LANES_WIDE];
    for v in 0..VECTORS {
        store16(&mut rows[16 * v..], sid[v]);
    }
    let mut last = 0;
    let mut last_line_from = 0;
    for l in 0..LANES_WIDE {
        let (start, end) = (seg_start[l] as usize, seg_end[l] as usize);
        if start < end {
            last = l;
        }
        // Each line starts after the one before it, or after a `\n` in between
        // (offsets in the window).
        let mut line_from = start;
        for &found in &work.found[start..recorded[l] as usize] {
            let line_end = found as usize;
            hits.push(Hit {
                line_start: from + after_last_newline(&work.newlines, line_from, line_end),
                line_end: from + line_end,
                match_takes_cr: false,
            });
            line_from = line_end + 1;
        }
        // A matched line without a `\n` (the buffer's last) is still in its rest.
        let (v, bit) = (l / 16, 1u16 << (l % 16));
        if start < end && rows[l] == REST_OF_LINE && dead[v] & bit == 0 {
            hits.push(Hit {
                line_start: from + after_last_newline(&work.newlines, line_from, end),
                line_end: from + end,
                match_takes_cr: false,
            });
        }
        if start < end {
            last_line_from = line_from;
        }
    }
    // Matches show one byte late, so one that ends the buffer shows only with the
    // end-of-input transition (a line that ends in `\n` showed it on the `\n`).
    let last_dead = dead[last / 16] & (1 << (last % 16)) != 0;
    if to == bytes.len()
        && bytes.last().is_some_and(|&b| b != b'\n')
        && !last_dead
        && rows[last] != REST_OF_LINE
    {
        if let Some(sid) = table.states[rows[last] as usize / table.stride] {
            let eoi = dfa.next_eoi_state(cache, sid).map_err(|_| GaveUp)?;
            if cache.clear_count() != clears {
                return Err(GaveUp);
            }
            if eoi.is_match() {
                hits.push(Hit {
                    line_start: from + after_last_newline(&work.newlines, last_line_from, len),
                    line_end: to,
                    match_takes_cr: bytes.last() == Some(&b'\r'),
                });
            }
        }
    }
    // The few lines whose match took in their `\r`, among the window's hits (in
    // order of where their lines end).
    let window_hits = &mut hits[first_hit..];
    for &end in &work.takes_cr {
        if let Ok(i) = window_hits.binary_search_by_key(&(from + end as usize), |h| h.line_end) {
            window_hits[i].match_takes_cr = true;
        }
    }
    Ok(())
}

/// The set bits of `hit_log` (a word a step, a bit a lane) into `lanes` and `steps`,
/// in step order and lane order within a step; returns how many. A window of `len`
/// bytes has at most a hit a `\n`.
///
/// Why: a loop over each step's bits mispredicts where it ends, about once a step
/// (9% of the time at 1,000 patterns). Here a step is a compress of the lane numbers
/// and two stores, whatever its number of bits: 1,000 patterns +6-9%.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi2")]
fn log_events(hit_log: &[u64], len: usize, lanes: &mut Vec<u8>, steps: &mut Vec<u32>) -> usize {
    // Each step writes 64 lane numbers and 16 (or 64) steps past what it keeps.
    if lanes.len() < len + 64 {
        lanes.resize(len + 64, 0);
        steps.resize(len + 64, 0);
    }
    let mut numbers = [0u8; 64];
    for (i, b) in numbers.iter_mut().enumerate() {
        *b = i as u8;
    }
    // SAFETY: 64 bytes.
    let numbers = unsafe { _mm512_loadu_si512(numbers.as_ptr().cast()) };
    let mut n = 0;
    for (step, &hit) in hit_log.iter().enumerate() {
        // Each hit is on its own `\n` (checked: the stores below rely on it).
        assert!(n <= len, "more hits than bytes in a window");
        let count = hit.count_ones() as usize;
        let at = _mm512_set1_epi32(step as i32);
        // SAFETY: `n` plus this step's hits are at most the window's hits, at most
        // `len`, so `n + 64` is within both buffers (`len + 64` long).
        unsafe {
            let (lanes, steps) = (lanes.as_mut_ptr().add(n), steps.as_mut_ptr().add(n));
            _mm512_storeu_si512(lanes.cast(), _mm512_maskz_compress_epi8(hit, numbers));
            _mm512_storeu_si512(steps.cast(), at);
            if count > 16 {
                for k in 1..4 {
                    _mm512_storeu_si512(steps.add(16 * k).cast(), at);
                }
            }
        }
        n += count;
    }
    n
}

/// Bytes after a window's classes: a row of [`transpose`] reads 64.
const PADDING: usize = 64;

/// `window` as classes into `out`, with [`PADDING`] bytes after them.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
fn translate(
    classes: &[u8; 256],
    crlf: u8,
    window: &[u8],
    out: &mut Vec<u8>,
    newlines: &mut Vec<u64>,
) {
    // Each byte and word is written below (no need to clear them), and the padding.
    if out.len() < window.len() + PADDING {
        out.resize(window.len() + PADDING, 0);
    }
    if newlines.len() < window.len().div_ceil(64) {
        newlines.resize(window.len().div_ceil(64), 0);
    }
    let newline = _mm512_set1_epi8(b'\n' as i8);
    let cr = _mm512_set1_epi8(b'\r' as i8);
    let crlf_class = _mm512_set1_epi8(crlf as i8);
    out[window.len()..window.len() + PADDING].fill(0);
    let mut table = [_mm512_setzero_si512(); 4];
    for (i, t) in table.iter_mut().enumerate() {
        // SAFETY: 64 bytes from `64 * i`, within `classes` (256 long).
        *t = unsafe { _mm512_loadu_si512(classes[64 * i..].as_ptr().cast()) };
    }
    let mut chunks = window.chunks_exact(64);
    let mut at = 0;
    for chunk in &mut chunks {
        // SAFETY: `chunk` is 64 bytes, and so is `out[at..at + 64]` (`out` is as long
        // as `window` and more).
        unsafe {
            let b = _mm512_loadu_si512(chunk.as_ptr().cast());
            let low = _mm512_permutex2var_epi8(table[0], b, table[1]);
            let high = _mm512_permutex2var_epi8(table[2], b, table[3]);
            let c = _mm512_mask_blend_epi8(_mm512_movepi8_mask(b), low, high);
            let lf = _mm512_cmpeq_epi8_mask(b, newline);
            // A `\r` whose next byte, here or in the next chunk, is a `\n`.
            let lf_after = (lf >> 1) | (u64::from(window.get(at + 64) == Some(&b'\n')) << 63);
            let c = _mm512_mask_mov_epi8(c, _mm512_cmpeq_epi8_mask(b, cr) & lf_after, crlf_class);
            _mm512_storeu_si512(out[at..].as_mut_ptr().cast(), c);
            newlines[at / 64] = lf;
        }
        at += 64;
    }
    let mut last = 0u64;
    for (i, (o, &b)) in out[at..window.len()]
        .iter_mut()
        .zip(chunks.remainder())
        .enumerate()
    {
        *o = if b == b'\r' && window.get(at + i + 1) == Some(&b'\n') {
            crlf
        } else {
            classes[b as usize]
        };
        last |= u64::from(b == b'\n') << i;
    }
    if at < window.len() {
        newlines[at / 64] = last;
    }
}

/// The classes of each lane's segment into `by_lane`, four steps to a `u32`, for
/// `steps` steps and a block more.
///
/// Why: a lane's next four classes are then one load for all 16 lanes of a vector
/// (and a funnel shift), where they were a gather; an extra gather a vector every
/// four steps made 1,000 patterns 12% slower. Done 16 lanes by 64 steps at a time:
/// 16 loads, a 16 by 16 transpose of `u32`s (64 shuffles) and 16 stores.
#[target_feature(enable = "avx512f")]
fn transpose(
    classes: &[u8],
    len: usize,
    seg_start: &[u32; LANES_WIDE],
    steps: usize,
    by_lane: &mut Vec<u32>,
) {
    let groups = steps / 64 + 1;
    if by_lane.len() < groups * 16 * LANES_WIDE {
        by_lane.resize(groups * 16 * LANES_WIDE, 0);
    }
    for v in 0..VECTORS {
        for g in 0..groups {
            let mut r = [_mm512_setzero_si512(); 16];
            for (i, row) in r.iter_mut().enumerate() {
                // A lane with no steps in this group reads whatever is at the end.
                let from = (seg_start[16 * v + i] as usize + 64 * g).min(len);
                // SAFETY: `classes` has `PADDING` (64) bytes after `len`.
                *row = unsafe { _mm512_loadu_si512(classes[from..from + 64].as_ptr().cast()) };
            }
            let out = transpose16(r);
            for (j, o) in out.iter().enumerate() {
                let at = (16 * g + j) * LANES_WIDE + 16 * v;
                // SAFETY: `by_lane` holds `groups * 16` blocks of `LANES_WIDE`.
                unsafe { _mm512_storeu_si512(by_lane[at..at + 16].as_mut_ptr().cast(), *o) };
            }
        }
    }
}

/// `u32` `j` of `r[i]` into `u32` `i` of the result's `j`.
#[target_feature(enable = "avx512f")]
fn transpose16(r: [__m512i; 16]) -> [__m512i; 16] {
    // Within 128-bit lanes: pairs of rows, then fours; then across them.
    let mut a = [_mm512_setzero_si512(); 16];
    for p in 0..8 {
        a[2 * p] = _mm512_unpacklo_epi32(r[2 * p], r[2 * p + 1]);
        a[2 * p + 1] = _mm512_unpackhi_epi32(r[2 * p], r[2 * p + 1]);
    }
    // `c[4 * g + w]`: rows `4g..4g + 4` at column `4q + w`, in 128-bit lane `q`.
    let mut c = [_mm512_setzero_si512(); 16];
    for g in 0..4 {
        let (lo, hi) = (4 * g, 4 * g + 2);
        c[4 * g] = _mm512_unpacklo_epi64(a[lo], a[hi]);
        c[4 * g + 1] = _mm512_unpackhi_epi64(a[lo], a[hi]);
        c[4 * g + 2] = _mm512_unpacklo_epi64(a[lo + 1], a[hi + 1]);
        c[4 * g + 3] = _mm512_unpackhi_epi64(a[lo + 1], a[hi + 1]);
    }
    let mut out = [_mm512_setzero_si512(); 16];
    for w in 0..4 {
        let (c0, c1, c2, c3) = (c[w], c[4 + w], c[8 + w], c[12 + w]);
        let d0 = _mm512_shuffle_i32x4::<0x44>(c0, c1);
        let d1 = _mm512_shuffle_i32x4::<0xEE>(c0, c1);
        let d2 = _mm512_shuffle_i32x4::<0x44>(c2, c3);
        let d3 = _mm512_shuffle_i32x4::<0xEE>(c2, c3);
        out[w] = _mm512_shuffle_i32x4::<0x88>(d0, d2);
        out[4 + w] = _mm512_shuffle_i32x4::<0xDD>(d0, d2);
        out[8 + w] = _mm512_shuffle_i32x4::<0x88>(d1, d3);
        out[12 + w] = _mm512_shuffle_i32x4::<0xDD>(d1, d3);
    }
    out
}

/// Just after the last `\n` in `from..to` of the window whose `\n`s are the bits
/// of `newlines`, or `from` if there is none: where the line that holds `to`
/// starts, looking back no further than `from`.
fn after_last_newline(newlines: &[u64], from: usize, to: usize) -> usize {
    let mut end = to;
    while end > from {
        let word = (end - 1) / 64;
        let low = (word * 64).max(from);
        // The bits of `low..end`, within this word.
        let below_end = u64::MAX >> (64 - (end - word * 64));
        let from_low = u64::MAX << (low - word * 64);
        let bits = newlines[word] & below_end & from_low;
        if bits != 0 {
            return word * 64 + (63 - bits.leading_zeros() as usize) + 1;
        }
        end = low;
    }
    from
}

/// The lanes' segments of `window`, whose `\n`s are the bits of `newlines`: cut at
/// line ends, in order, each at the line end nearest to an even share of what the
/// lanes before it left.
///
/// Why: every lane steps until the longest segment is done, so the window takes as
/// many steps as its longest segment has bytes. Cut just after each 64th of the
/// window, a segment is its share and up to a line more; over Loghub lines the
/// lanes did useful work in 78% of their steps with 64 KiB windows, 90% with 128
/// KiB. Cut as here: 85% and 93% (the best cut, found by bisection, makes 88% and
/// 95%, but costs more than it saves).
fn balanced_segments(newlines: &[u64], window: &[u8]) -> ([u32; LANES_WIDE], [u32; LANES_WIDE]) {
    let len = window.len();
    let (mut starts, mut ends) = ([len as u32; LANES_WIDE], [len as u32; LANES_WIDE]);
    let mut start = 0;
    for l in 0..LANES_WIDE {
        if start == len {
            break;
        }
        let end = if l + 1 == LANES_WIDE {
            len
        } else {
            let ideal = start + (len - start).div_ceil(LANES_WIDE - l);
            let after = super::line_end_after(window, ideal);
            let before = after_last_newline(newlines, start, ideal);
            if before > start && ideal - before < after - ideal {
                before
            } else {
                after
            }
        };
        (starts[l], ends[l]) = (start as u32, end as u32);
        start = end;
    }
    (starts, ends)
}

/// The first 16 `u32`s of `a` as a vector.
#[target_feature(enable = "avx512f")]
fn load16(a: &[u32]) -> __m512i {
    assert!(a.len() >= 16);
    // SAFETY: `a` has 16 `u32`s.
    unsafe { _mm512_loadu_epi32(a.as_ptr().cast()) }
}

/// `v` into the first 16 `u32`s of `a`.
#[target_feature(enable = "avx512f")]
fn store16(a: &mut [u32], v: __m512i) {
    assert!(a.len() >= 16);
    // SAFETY: `a` has room for 16 `u32`s.
    unsafe { _mm512_storeu_epi32(a.as_mut_ptr().cast(), v) }
}

/// Said by a test that finds no AVX-512 here and so does not test the wide lanes:
/// once per test (libtest names each test's thread after it), in a form that
/// `scripts/test` counts and prints, so a run on such a CPU says what went untested.
#[cfg(test)]
pub(super) fn say_untested() {
    static SAID: std::sync::Mutex<std::collections::BTreeSet<String>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let test = std::thread::current().name().unwrap_or("?").to_owned();
    let first = SAID
        .lock()
        .map_or(true, |mut said| said.insert(test.clone()));
    if first {
        eprintln!("NOT TESTED on this CPU (no AVX-512 F, BW, VBMI, VBMI2): {test}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `window`'s `\n` bitmap as `translate` makes it, or `None` without AVX-512.
    fn newline_bits(window: &[u8]) -> Option<Vec<u64>> {
        if !available() {
            say_untested();
            return None;
        }
        let (mut classes, mut newlines) = (Vec::new(), Vec::new());
        // SAFETY: `available` said the CPU has the features `translate` needs.
        unsafe { translate(&[0; 256], 1, window, &mut classes, &mut newlines) };
        Some(newlines)
    }

    #[test]
    fn each_lane_reads_its_own_classes_from_the_transposed_blocks() {
        if !available() {
            say_untested();
            return;
        }
        // Segments of every length from 0 to a few blocks, starting anywhere; each
        // byte a function of where it is, then the padding.
        let len = 9_000;
        let mut classes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        classes.resize(len + PADDING, 0);
        let mut seg_start = [0u32; LANES_WIDE];
        let mut seg_end = [0u32; LANES_WIDE];
        let mut at = 0;
        for l in 0..LANES_WIDE {
            let seg = (l * 37) % 150;
            seg_start[l] = at.min(len) as u32;
            seg_end[l] = (at + seg).min(len) as u32;
            at += seg;
        }
        let longest = (0..LANES_WIDE)
            .map(|l| (seg_end[l] - seg_start[l]) as usize)
            .max();
        let longest = longest.unwrap_or(0);
        let mut by_lane = Vec::new();
        // SAFETY: `available` said the CPU has the features `transpose` needs.
        unsafe { transpose(&classes, len, &seg_start, longest, &mut by_lane) };
        for l in 0..LANES_WIDE {
            for step in 0..(seg_end[l] - seg_start[l]) as usize {
                let word = by_lane[step / 4 * LANES_WIDE + l];
                let class = (word >> (8 * (step % 4))) as u8;
                assert_eq!(
                    class,
                    classes[seg_start[l] as usize + step],
                    "lane {l} step {step}"
                );
            }
        }
    }

    #[test]
    fn segments_are_whole_lines_in_order_and_even() {
        // Lines of 1 to 300 bytes in a pseudo-random mix, then windows cut from it
        // at every kind of length (fewer lines than lanes, one long line, no `\n`
        // at the end).
        let mut text = Vec::new();
        let mut seed = 7u32;
        while text.len() < 40_000 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            text.extend(std::iter::repeat_n(b'x', (seed >> 16) as usize % 300));
            text.push(b'\n');
        }
        for len in [0, 1, 50, 299, 1_000, 5_000, 20_000, 39_999, text.len()] {
            let window = &text[..len];
            let Some(newlines) = newline_bits(window) else {
                return;
            };
            let (starts, ends) = balanced_segments(&newlines, window);
            let mut at = 0;
            for l in 0..LANES_WIDE {
                assert_eq!(starts[l] as usize, at, "segment {l} of {len} starts late");
                let end = ends[l] as usize;
                assert!(end >= at && end <= len, "segment {l} of {len}");
                assert!(end == len || window[end - 1] == b'\n' || end == at);
                at = end;
            }
            assert_eq!(at, len, "the segments of {len} leave bytes out");
        }
        // Lines of one length: every lane gets its share of them, or one more.
        let even = b"0123456789abcde\n".repeat(64 * 10 + 5);
        let Some(newlines) = newline_bits(&even) else {
            return;
        };
        let (starts, ends) = balanced_segments(&newlines, &even);
        let longest = (0..LANES_WIDE).map(|l| ends[l] - starts[l]).max();
        assert_eq!(longest, Some(16 * 11));
    }

    #[test]
    fn newline_bitmap_gives_the_line_starts_memrchr_gives() {
        // `\n`s at word edges (0, 63, 64, 127, 128), runs of them, and a tail that
        // is not a whole word (200 bytes).
        let mut text = vec![b'x'; 200];
        for i in [0, 5, 63, 64, 100, 101, 102, 127, 128, 190, 199] {
            text[i] = b'\n';
        }
        let Some(newlines) = newline_bits(&text) else {
            return;
        };
        for to in 0..=text.len() {
            for from in 0..=to {
                let want = crate::line::line_start_after(&text, from, to);
                assert_eq!(
                    after_last_newline(&newlines, from, to),
                    want,
                    "{from}..{to}"
                );
            }
        }
    }
}
