//! What the fuzz properties share (`fuzz_parsers.rs`, `fuzz_lines.rs`): the case
//! count, and generators of bytes and text that parsers find hard.

// Each test file uses its own part of this module.
#![allow(dead_code)]

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence};

/// `default` cases, or `SUPERGREP_FUZZ_CASES` when set. (Not `PROPTEST_CASES`: the
/// `proptest!` macro lets that one override every property's count, costly or not.)
pub fn config(default: u32) -> ProptestConfig {
    config_scaled(default, 1)
}

/// For properties whose case is a process or real connections: `default` cases, or
/// a fiftieth of `SUPERGREP_FUZZ_CASES` when set.
pub fn config_costly(default: u32) -> ProptestConfig {
    config_scaled(default, 50)
}

fn config_scaled(default: u32, divisor: u32) -> ProptestConfig {
    let cases = std::env::var("SUPERGREP_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse::<u32>().ok())
        .map_or(default, |c| (c / divisor).max(1));
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

/// JSON numbers that do not fit: past u64, below i64, exponents beyond f64, and
/// negative or fractional where counts are expected.
pub const ODD_NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1.5",
    "-0",
    "1e400",
    "-1e400",
    "1E-400",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "99999999999999999999999999999999",
    "4294967296",
    "1e19",
    "0.0000001",
];

/// Field names of every message either side takes, so objects are near-valid.
pub const KEYS: &[&str] = &[
    "type",
    "id",
    "include",
    "exclude",
    "ignore_case",
    "streams",
    "backlog",
    "stream",
    "seq",
    "before",
    "after",
    "version",
    "name",
    "agent",
    "path",
    "set",
    "batches",
    "batch",
    "dev",
    "ino",
    "start",
    "end",
    "ts",
    "text",
    "x",
];

pub const TYPES: &[&str] = &[
    "subscribe",
    "unsubscribe",
    "context",
    "agent_hello",
    "stream_added",
    "stream_removed",
    "resending",
    "lines",
    "hello",
    "Subscribe",
    "",
];

/// A JSON string: arbitrary text encoded, a long run, or escapes serde must check.
pub fn json_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any_text(24).prop_map(|s| serde_json::to_string(&s).unwrap()),
        1 => prop::sample::select(TYPES).prop_map(|s| format!("\"{s}\"")),
        1 => (1usize..70_000).prop_map(|n| format!("\"{}\"", "a".repeat(n))),
        1 => prop::sample::select(vec![
            r#""\ud800""#, r#""\udc00\ud800""#, r#""\u00""#, r#""\x41""#, r#""\"#, "\"\u{0}\"",
            r#""\uDBFF\uDFFF""#, "\"a\nb\"",
        ])
        .prop_map(str::to_owned),
    ]
}

/// JSON text, valid or nearly: scalars of every type, arrays and objects (with the
/// protocol's keys, duplicates allowed), now and then truncated.
pub fn json_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        prop::sample::select(vec!["null", "true", "false", "[]", "{}"]).prop_map(str::to_owned),
        prop::sample::select(ODD_NUMBERS).prop_map(str::to_owned),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        json_string(),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..8).prop_map(|kv| {
                let fields: Vec<String> = kv.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    })
}

/// A message either side takes, nearly: an object with a `type` and protocol fields
/// of any type; or nesting far deeper than serde's limit; or a valid message cut off.
pub fn near_message() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (
            prop::sample::select(TYPES),
            prop::collection::vec((prop::sample::select(KEYS), json_value()), 0..10),
        )
            .prop_map(|(ty, kv)| {
                let mut fields = vec![format!("\"type\":\"{ty}\"")];
                fields.extend(kv.iter().map(|(k, v)| format!("\"{k}\":{v}")));
                format!("{{{}}}", fields.join(","))
            }),
        2 => json_value(),
        1 => (1usize..20_000, prop::sample::select(vec!["[", "{\"id\":", "{\"type\":\"subscribe\",\"include\":["]))
            .prop_map(|(n, open)| open.repeat(n)),
        1 => (near_valid_subscribe(), any::<prop::sample::Index>())
            .prop_map(|(m, at)| String::from_utf8_lossy(&m.as_bytes()[..at.index(m.len() + 1)]).into_owned()),
    ]
}

/// A valid subscribe message, its patterns from arbitrary text.
pub fn near_valid_subscribe() -> impl Strategy<Value = String> {
    (
        any_text(8),
        prop::collection::vec(any_text(8), 0..4),
        any::<u32>(),
    )
        .prop_map(|(id, include, backlog)| {
            serde_json::json!({"type":"subscribe","id":id,"include":include,"backlog":backlog})
                .to_string()
        })
}

/// What a message may look like on the wire: a priority (valid or not), maybe the
/// 5424 version, timestamps of both kinds, hosts, tags, structured data, text.
pub fn syslog_message() -> impl Strategy<Value = String> {
    let pri = prop_oneof![
        (0u32..200).prop_map(|p| format!("<{p}>")),
        prop::sample::select(vec!["", "<>", "<1234>", "<x>", "<13", "13>", "<-1>"])
            .prop_map(str::to_owned),
    ];
    let version = prop::sample::select(vec!["", "1 ", "1", "2 ", "1  "]);
    let ts = prop::sample::select(vec![
        "",
        "- ",
        "Nov 22 03:00:00 ",
        "Nov  2 03:00:00 ",
        "Nov 22 2026 03:00:00 ",
        "Nov ",
        "Nov 22 ",
        "2026-11-22T03:00:00.123+00:00 ",
        "2026-",
        "2026-11-22T03:00:00Z",
        "Jan",
    ]);
    let word = prop_oneof![
        prop::sample::select(vec![
            "-",
            "web01",
            "sshd[42]:",
            "nginx:",
            "a[:",
            "x[1]",
            ":",
            "[]:"
        ])
        .prop_map(str::to_owned),
        any_text(6),
        (49usize..60).prop_map(|n| format!("{}:", "t".repeat(n))),
    ];
    let sd = prop::sample::select(vec![
        "",
        "- ",
        "[a b=\"c\"] ",
        "[a b=\"]\"] ",
        "[a b=\"\\\"]\"][c] ",
        "[unclosed ",
        "[a\\",
        "[",
        "]",
    ]);
    (
        pri,
        version,
        ts,
        prop::collection::vec(word, 0..5),
        sd,
        any_text(24),
        prop::sample::select(vec!["", "\n", "\r\n", "\0", "\n\n"]),
    )
        .prop_map(|(p, v, t, words, sd, text, end)| {
            format!("{p}{v}{t}{}{sd}{text}{end}", words.join(" "))
        })
}
