//! Issue 25 §6: the line splitter, and what writes lines out. The tailer (the real
//! one, over a real file, at every read size from one byte), the standard-input
//! reader (the real binary, reading a pipe written in arbitrary pieces) and the hub's
//! cutter of agents' long lines: line for line what was written, no byte lost or
//! doubled, long lines cut and the cut bytes counted, as the contract says. Terminal escaping and
//! JSON control escaping: nothing left to drive a terminal, nothing else changed. The
//! template header parser: its content is a tail of the line.
//!
//! Quick by default; `SUPERGREP_FUZZ_CASES=100000` raises every property's case count
//! (benches/fuzz.sh runs them so, in release).

mod fuzz_support;
mod support;

use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use fuzz_support::{any_text, config, config_costly};

// ---------------------------------------------------------------------------------------
// Line splitting

/// Checks `got` against `input` as the splitter's contract has it: line for line
/// (a last line without `\n` gets one), each line longer than `max_line` cut to a
/// prefix of at least `max_line - 4` bytes (not splitting a character) and marked
/// with the number of bytes cut, the prefix and that number making up the line.
fn check_split(input: &[u8], got: &[u8], max_line: usize) -> Result<(), String> {
    let mut want: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    if input.ends_with(b"\n") || input.is_empty() {
        want.pop();
    }
    if !got.ends_with(b"\n") && !got.is_empty() {
        return Err(format!("output does not end in a newline: {got:?}"));
    }
    let got: Vec<&[u8]> = got.split(|&b| b == b'\n').collect();
    let got = &got[..got.len() - 1];
    if got.len() != want.len() {
        return Err(format!("{} lines in, {} out", want.len(), got.len()));
    }
    for (k, (w, g)) in want.iter().zip(got).enumerate() {
        if w.len() <= max_line {
            if w != g {
                return Err(format!("line {k}: {w:?} came out as {g:?}"));
            }
            continue;
        }
        let cut = cut_mark(g).ok_or_else(|| format!("line {k}: long, not marked: {g:?}"))?;
        let kept = &g[..g.len() - format!(" [… {cut} bytes cut]").len()];
        let whole = kept.len() as u64 + cut == w.len() as u64;
        if !whole || !w.starts_with(kept) || kept.len() > max_line || kept.len() + 4 < max_line {
            return Err(format!(
                "line {k} ({} bytes, max {max_line}): {g:?}",
                w.len()
            ));
        }
    }
    Ok(())
}

/// `N` of a line ending in ` [… N bytes cut]`.
fn cut_mark(line: &[u8]) -> Option<u64> {
    let line = std::str::from_utf8(line.rsplit(|&b| b == b'[').next()?).ok()?;
    line.strip_prefix("… ")?
        .strip_suffix(" bytes cut]")?
        .parse()
        .ok()
}

/// Lines over an alphabet where newlines are common and characters multi-byte.
fn line_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        6 => prop::sample::select(b"ab \n".to_vec()).prop_map(|b| vec![b]),
        2 => prop::sample::select(vec!["é", "€", "😀", "\r\n", "\r"]).prop_map(|s| s.as_bytes().to_vec()),
        1 => any::<u8>().prop_map(|b| vec![b]),
        1 => (1usize..200).prop_map(|n| vec![b'x'; n]),
    ];
    prop::collection::vec(piece, 0..64).prop_map(|p| p.concat())
}

/// The real tailer, not following, over `input` in a file, reading `read_chunk` bytes
/// at a time: the bytes of its batches, and whether their origins tile the file,
/// one after another to its end.
fn tail_file(input: &[u8], max_line: usize, read_chunk: usize) -> (Vec<u8>, Result<(), String>) {
    use supergrep::source::tail::{self, StartAt, TailConfig};
    use supergrep::source::{events, glob::Target, SourceEvent};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.log");
    std::fs::write(&path, input).unwrap();
    let config = TailConfig {
        start: StartAt::Beginning,
        follow: false,
        max_line,
        read_chunk,
        ..TailConfig::default()
    };
    let (tx, rx) = events::channel(4);
    let tailer = tail::spawn(vec![Target::File(path)], config, tx).unwrap();
    let seen = Arc::new(Mutex::new((Vec::new(), 0u64, Ok(()))));
    let record = seen.clone();
    rx.consume(move |event| {
        let SourceEvent::Lines(batch) = event else {
            return;
        };
        let (bytes, at, tiles) = &mut *record.lock().unwrap();
        bytes.extend_from_slice(&batch.bytes);
        // Each batch starts where the one before ended (where its first line
        // began, in an earlier read or not) and ends where its last line does.
        match batch.origin {
            Some(o) if o.start == *at && o.end > o.start => *at = o.end,
            other => *tiles = Err(format!("batch after {at}: origin {other:?}")),
        }
    });
    assert_eq!(tailer.join().unwrap().errors, 0);
    let (bytes, end, tiles) =
        std::mem::replace(&mut *seen.lock().unwrap(), (Vec::new(), 0, Ok(())));
    let tiles = tiles.and_then(|()| match end == input.len() as u64 {
        true => Ok(()),
        false => Err(format!("origins end at {end}, the file at {}", input.len())),
    });
    (bytes, tiles)
}

proptest! {
    #![proptest_config(config(96))]

    /// Every read size from one byte up, lines short and long: what the tailer hands
    /// over is the file, line for line, long lines cut as the contract says, and its
    /// batches' origins follow one another, the last ending at the file's end.
    #[test]
    fn the_tailer_loses_and_doubles_nothing_whatever_the_reads(
        input in line_bytes(),
        max_line in 1usize..48,
        read_chunk in 1usize..64,
    ) {
        let (got, tiles) = tail_file(&input, max_line, read_chunk);
        prop_assert_eq!(tiles, Ok(()));
        if let Err(e) = check_split(&input, &got, max_line) {
            prop_assert!(false, "{} (input {:?}, got {:?})", e, input, String::from_utf8_lossy(&got));
        }
    }
}

/// Text for the standard-input reader, which prints what it reads: valid UTF-8 (the
/// printer would replace the rest) without `\r` (it strips one before `\n`).
fn printable_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        6 => prop::sample::select(b"ab \n".to_vec()).prop_map(|b| vec![b]),
        2 => prop::sample::select(vec!["é", "€", "😀", "\u{1}"]).prop_map(|s| s.as_bytes().to_vec()),
        1 => (1usize..200).prop_map(|n| vec![b'x'; n]),
    ];
    prop::collection::vec(piece, 0..64).prop_map(|p| p.concat())
}

/// `supergrep --max-line MAX -e ''` reading `pieces` from a pipe, each piece one write
/// (and so, mostly, one read of its own): what it printed.
fn grep_stdin(pieces: &[&[u8]], max_line: usize) -> Vec<u8> {
    let mut child = support::proc::bin()
        .args(["--max-line", &max_line.to_string(), "-e", ""])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        stdout.read_to_end(&mut out).unwrap();
        out
    });
    let mut stdin = child.stdin.take().unwrap();
    for piece in pieces {
        stdin.write_all(piece).unwrap();
        stdin.flush().unwrap();
        // So that the pieces arrive as separate reads (the property holds either way).
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(stdin);
    let deadline = Instant::now() + support::wait::PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "supergrep did not end after its input did"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let out = reader.join().unwrap();
    // grep's status: 1 when nothing matched (no line at all).
    let want = if out.is_empty() { 1 } else { 0 };
    assert_eq!(status.code(), Some(want), "{status}, printed {out:?}");
    out
}

proptest! {
    #![proptest_config(config_costly(32))]

    /// The real binary reading a pipe, the input cut anywhere (inside characters too):
    /// it prints the input line for line, long lines cut as the contract says.
    #[test]
    fn the_stdin_reader_loses_and_doubles_nothing_in_any_pieces(
        input in printable_bytes(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        max_line in 16usize..48,
    ) {
        let mut at: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
        at.extend([0, input.len()]);
        at.sort_unstable();
        at.dedup();
        let pieces: Vec<&[u8]> = at.windows(2).map(|w| &input[w[0]..w[1]]).collect();
        let got = grep_stdin(&pieces, max_line);
        if let Err(e) = check_split(&input, &got, max_line) {
            prop_assert!(false, "{} (pieces {:?}, got {:?})", e, pieces, String::from_utf8_lossy(&got));
        }
    }
}

proptest! {
    #![proptest_config(config(512))]

    /// The hub's cut of an agent's lines: the same contract, on complete lines.
    #[test]
    fn agents_long_lines_are_cut_and_accounted(mut input in line_bytes(), max_line in 1usize..48) {
        if !input.is_empty() && !input.ends_with(b"\n") {
            input.push(b'\n');
        }
        let got = supergrep::line::cap_long_lines(input.clone().into(), max_line);
        if let Err(e) = check_split(&input, &got, max_line) {
            prop_assert!(false, "{} (input {:?}, got {:?})", e, input, String::from_utf8_lossy(&got));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Output escaping and the template header

proptest! {
    #![proptest_config(config(512))]

    /// `--escape`: no control character is left, every one is written as `\xHH`,
    /// and nothing else changes.
    #[test]
    fn escaping_leaves_no_controls_and_accounts_for_each(text in any_text(64)) {
        use supergrep::escape;
        let mut out = Vec::new();
        escape::push(&mut out, &text, true);
        let out = String::from_utf8(out).unwrap();
        prop_assert!(!escape::needed(&out), "{:?}", out);
        prop_assert!(!out.chars().any(escape::is_control));
        let grown: usize = text.chars().filter(|&c| escape::is_control(c)).map(|c| 4 - c.len_utf8()).sum();
        prop_assert_eq!(out.len(), text.len() + grown);
        // Character for character: each control as its `\xHH`, the rest as it was.
        let mut rest = out.as_str();
        for c in text.chars() {
            let want = match escape::is_control(c) {
                true => format!("\\x{:02x}", c as u32),
                false => c.to_string(),
            };
            prop_assert!(rest.starts_with(&want), "{:?} at {:?}", want, rest);
            rest = &rest[want.len()..];
        }
        prop_assert!(rest.is_empty());
    }

    /// JSON output: DEL and C1 controls escaped too, and the value reads back the same.
    #[test]
    fn json_control_escaping_keeps_the_value(text in any_text(64)) {
        let mut json = serde_json::to_vec(&text).unwrap();
        supergrep::escape::json_controls(&mut json);
        prop_assert!(!supergrep::escape::needed(std::str::from_utf8(&json).unwrap()));
        prop_assert_eq!(serde_json::from_slice::<String>(&json).unwrap(), text);
    }

    /// The template miner's header parser: its content is a tail of the line.
    #[test]
    fn template_header_content_is_a_tail_of_the_line(line in any_text(64)) {
        use supergrep::template::header;
        let start = header::content_start(&line);
        prop_assert!(start <= line.len() && line.is_char_boundary(start));
        let content = header::content(&line);
        prop_assert!(line.ends_with(content));
    }
}

// ---------------------------------------------------------------------------------------
// Fixed cases (found by the properties above)

/// Found by `the_tailer_loses_and_doubles_nothing_whatever_the_reads`: a batch whose
/// first line began in an earlier read said it started where that read began, not
/// where the line did (`drain` and `read_stdin` took the held partial line out of
/// the handle before `delivered_offset()` counted it). The hub's trimming of a
/// re-sent batch that overlaps what it has (`Hub::admit_remote`) then did not
/// apply, and the overlap was ingested twice. (Standard input:
/// `stdin::tests::a_batch_starts_where_its_first_line_does`.)
#[test]
fn regression_a_batch_starts_where_its_first_line_does() {
    use supergrep::source::tail::{self, StartAt, TailConfig};
    use supergrep::source::{events, glob::Target, SourceEvent};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.log");
    std::fs::write(&path, "ab\ncd\n").unwrap();
    let config = TailConfig {
        start: StartAt::Beginning,
        follow: false,
        read_chunk: 1,
        ..TailConfig::default()
    };
    let (tx, rx) = events::channel(4);
    let tailer = tail::spawn(vec![Target::File(path)], config, tx).unwrap();
    let origins = Arc::new(Mutex::new(Vec::new()));
    let record = origins.clone();
    rx.consume(move |event| {
        if let SourceEvent::Lines(b) = event {
            let o = b.origin.unwrap();
            record.lock().unwrap().push((o.start, o.end));
        }
    });
    tailer.join().unwrap();
    // Was [(2, 3), (5, 6)].
    assert_eq!(*origins.lock().unwrap(), [(0, 3), (3, 6)]);
}
