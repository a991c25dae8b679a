//! What the fuzz properties share (`fuzz_parsers.rs`, `fuzz_lines.rs`): the case
//! count, and generators of bytes and text that parsers find hard.

// Each test file uses its own part of this module.
#![allow(dead_code)]

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence};

/// `default` cases, or `PROPTEST_CASES` when set.
pub fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        // A failure is kept as a named `regression_` test, not in a regressions file.
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        max_shrink_time: 60_000,
        ..ProptestConfig::default()
    }
}

/// Bytes biased towards what parsers split on: newlines, `\r`, NUL, digits, `<`, `>`,
/// spaces, brackets and quotes, multi-byte UTF-8 (whole and broken), and any byte.
pub fn byte_soup(max: usize) -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => any::<u8>().prop_map(|b| vec![b]),
        2 => prop::sample::select(b"\n\r\0 <>[]\"\\:-{}0123456789".to_vec()).prop_map(|b| vec![b]),
        1 => prop::sample::select(vec![
            "é", "€", "😀", "\u{feff}", "\u{1b}", "\u{9b}", "\u{7f}", "\r\n", "<13>", "<34>1 ",
            "Nov 22 03:00:00 ", "2026-11-22T03:00:00Z ", "sshd[42]: ", "- ", "[id k=\"v\\]\"] ",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        // A broken multi-byte character: its head without its tail, or a lone tail.
        1 => prop::sample::select(vec![vec![0xC3], vec![0xE2, 0x82], vec![0xF0, 0x9F, 0x98], vec![0x80], vec![0xBF]]),
    ];
    prop::collection::vec(piece, 0..max).prop_map(|p| p.concat())
}

/// [`byte_soup`] as text (broken UTF-8 replaced, as the hub replaces it).
pub fn any_text(max: usize) -> impl Strategy<Value = String> {
    byte_soup(max).prop_map(|b| String::from_utf8_lossy(&b).into_owned())
}
