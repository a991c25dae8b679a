//! Issue 25 §6: the parsers of outside input, fed arbitrary bytes and near-valid
//! structure. Each property asserts no panic and that what a parser keeps or says
//! back is bounded by what it was given (the bound on memory an input can cost).
//!
//! Parsers: WebSocket client messages (`ClientMsg`, as the session parses them, with
//! its fallback that names the request), agent frames (`AgentMsg` in text frames, and
//! binary frames split as the hub splits them), syslog messages (RFC 5424 / 3164 and
//! what is neither), and the config file. JSON inputs: scalars of every type, numbers
//! that fit no field (past u64, 1e400, negative counts), long strings, bad escapes,
//! nesting past serde's limit, the protocol's keys with values of any type, valid
//! messages cut off. The line splitter, escaping and the template header are in
//! `fuzz_lines.rs`; syslog's TCP framing and the hub's frame handling are driven over
//! real sockets in `fuzz_hub.rs`.
//!
//! Quick by default; `SUPERGREP_FUZZ_CASES=100000` raises every property's case count
//! (benches/fuzz.sh runs them so, in release).

mod fuzz_support;

use proptest::prelude::*;
use supergrep::protocol::{AgentMsg, ClientMsg};

use fuzz_support::{any_text, byte_soup, config, near_message, syslog_message};

// ---------------------------------------------------------------------------------------
// Client messages

/// The session's handling of one text frame: the message, or the error naming the
/// request's id when there is one. The error is bounded by the input.
fn client_message(text: &str) {
    match serde_json::from_str::<ClientMsg>(text) {
        Ok(msg) => {
            let again = serde_json::to_string(&msg).unwrap();
            // Defaults fill in absent fields; nothing else grows.
            assert!(again.len() <= 2 * text.len() + 128, "{text:?} -> {again:?}");
            let back: ClientMsg = serde_json::from_str(&again).unwrap();
            assert_eq!(back, msg);
        }
        Err(e) => {
            let id = serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|v| v.get("id")?.as_str().map(str::to_owned));
            assert!(id.is_none_or(|id| id.len() <= text.len()));
            assert!(e.to_string().len() <= text.len() + 256, "{e}");
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn client_messages_from_arbitrary_bytes(bytes in byte_soup(64)) {
        client_message(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn client_messages_near_valid(text in near_message()) {
        client_message(&text);
    }
}

// ---------------------------------------------------------------------------------------
// Agent frames

fn agent_message(json: &[u8]) {
    match serde_json::from_slice::<AgentMsg>(json) {
        Ok(msg) => {
            let again = serde_json::to_vec(&msg).unwrap();
            assert!(again.len() <= 2 * json.len() + 128);
            // The binary frame's header ends at its first newline: serde never
            // writes a raw one.
            assert!(!again.contains(&b'\n'));
            let back: AgentMsg = serde_json::from_slice(&again).unwrap();
            assert_eq!(back, msg);
        }
        Err(e) => assert!(e.to_string().len() <= json.len() + 256, "{e}"),
    }
}

/// A binary frame as the hub splits it (`protocol::lines_frame_parts`).
fn binary_frame(data: &[u8]) -> (&[u8], &[u8]) {
    let (header, lines) = supergrep::protocol::lines_frame_parts(data);
    (&data[header], &data[lines])
}

fn lines_header() -> impl Strategy<Value = AgentMsg> {
    (
        any::<u64>(),
        any_text(16),
        any_text(8),
        any::<[u64; 4]>(),
        any::<Option<u64>>(),
        any_text(12),
    )
        .prop_map(
            |(batch, path, set, [dev, ino, start, end], born, ts)| AgentMsg::Lines {
                batch,
                path,
                set,
                dev,
                ino,
                born,
                start,
                end,
                ts,
                text: String::new(),
            },
        )
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn agent_text_frames_from_arbitrary_bytes(bytes in byte_soup(64)) {
        agent_message(&bytes);
    }

    #[test]
    fn agent_text_frames_near_valid(text in near_message()) {
        agent_message(text.as_bytes());
    }

    #[test]
    fn agent_binary_frames_from_arbitrary_bytes(bytes in byte_soup(96)) {
        let (head, body) = binary_frame(&bytes);
        prop_assert!(head.len() + body.len() <= bytes.len());
        agent_message(head);
    }

    /// A header as the agent writes it, then any bytes (newlines included): the hub
    /// gets the header's fields back, and the lines exactly.
    #[test]
    fn agent_binary_frames_keep_header_and_lines(header in lines_header(), body in byte_soup(96)) {
        let mut frame = serde_json::to_vec(&header).unwrap();
        frame.push(b'\n');
        frame.extend_from_slice(&body);
        let (head, lines) = binary_frame(&frame);
        prop_assert_eq!(serde_json::from_slice::<AgentMsg>(head).unwrap(), header);
        prop_assert_eq!(lines, &body[..]);
    }
}

// ---------------------------------------------------------------------------------------
// Syslog messages

fn syslog_parse(raw: &str) {
    let m = supergrep::source::syslog::parse(raw);
    // Everything kept is a piece of the input: nothing grows.
    assert!(raw.contains(&m.text), "{raw:?} -> {m:?}");
    for field in [&m.host, &m.app].into_iter().flatten() {
        assert!(
            !field.is_empty() && raw.contains(field.as_str()),
            "{raw:?} -> {m:?}"
        );
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn syslog_messages_from_arbitrary_bytes(bytes in byte_soup(64)) {
        syslog_parse(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn syslog_messages_near_valid(raw in syslog_message()) {
        syslog_parse(&raw);
    }
}

// ---------------------------------------------------------------------------------------
// The config file

/// Keys of the config file by table (`""` the top level), so that documents are
/// near-valid: right names, values of any type and size.
const CONFIG_KEYS: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "listen",
            "token",
            "allowed_origins",
            "allowed_hosts",
            "metrics_token",
            "source_url",
            "tls_cert",
            "tls_key",
            "nope",
        ],
    ),
    (
        "[limits]",
        &[
            "backlog_lines",
            "client_queue",
            "max_line",
            "max_subscriptions_per_client",
            "max_patterns_per_client",
            "max_patterns_per_address",
            "max_patterns",
            "max_pattern_bytes",
            "max_compiled_bytes",
            "max_compiled_bytes_per_client",
            "max_compiled_bytes_per_address",
            "max_message_bytes",
            "max_clients",
            "max_backlog_request",
            "max_context_lines",
            "max_connections_per_address",
            "http_header_timeout_secs",
        ],
    ),
    (
        "[syslog]",
        &[
            "udp",
            "tcp",
            "set",
            "max_connections",
            "max_connections_per_address",
            "idle_timeout_secs",
        ],
    ),
    ("[[set]]", &["name", "paths"]),
    (
        "[[irc]]",
        &[
            "server",
            "channel",
            "nick",
            "key",
            "include",
            "exclude",
            "ignore_case",
            "streams",
            "color",
            "format",
            "rate",
            "burst",
            "tls_ca",
        ],
    ),
];

fn toml_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        prop::sample::select(vec![
            "0",
            "-1",
            "1",
            "16",
            "65536",
            "9223372036854775807",
            "9223372036854775808",
            "1e400",
            "nan",
            "-inf",
            "0.5",
            "true",
            "1979-05-27T07:32:00Z",
            "\"127.0.0.1:0\"",
            "\"[::1]:9\"",
            "\"irc://h:6667/#c\"",
            "\"\"",
            "'lit'",
            "\"\"\"\nmulti\"\"\"",
            "\"\\u0000\"",
            "\"\\uD800\"",
        ])
        .prop_map(str::to_owned),
        any_text(16).prop_map(|s| format!("{s:?}")),
        any_text(12),
        (1usize..5000).prop_map(|n| format!("\"{}\"", "p".repeat(n))),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec(inner, 0..4).prop_map(|v| {
                let kv: Vec<String> = v
                    .iter()
                    .enumerate()
                    .map(|(i, v)| format!("k{i} = {v}"))
                    .collect();
                format!("{{ {} }}", kv.join(", "))
            }),
        ]
    })
}

fn config_document() -> impl Strategy<Value = String> {
    let entry = (
        0..CONFIG_KEYS.len(),
        any::<prop::sample::Index>(),
        toml_value(),
    );
    prop::collection::vec(entry, 0..16).prop_map(|entries| {
        let mut doc = String::new();
        let mut table = "";
        for (t, key, value) in entries {
            let (name, keys) = CONFIG_KEYS[t];
            if name != table || name.starts_with("[[") {
                doc.push_str(&format!("\n{name}\n"));
                table = name;
            }
            doc.push_str(&format!("{} = {value}\n", key.get(keys)));
        }
        doc
    })
}

fn config_parse(text: &str) {
    match supergrep::config::Config::parse(text) {
        Ok(config) => {
            assert!(config.limits.max_line >= 16);
            assert!(config.sets.len() <= text.len());
        }
        // toml quotes the offending line, underlines it, and may quote the value again,
        // escaped (`\u{1}` for one byte): linear in the input.
        Err(e) => {
            let e = e.to_string();
            assert!(
                e.len() <= 8 * text.len() + 1024,
                "{} bytes for {} bytes of input",
                e.len(),
                text.len()
            )
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn config_files_from_arbitrary_bytes(bytes in byte_soup(96)) {
        config_parse(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn config_files_near_valid(doc in config_document()) {
        config_parse(&doc);
    }

    #[test]
    fn config_files_deeply_nested(depth in 1usize..5000, open in prop::sample::select(vec!["[", "{ a = "])) {
        config_parse(&format!("listen = {}", open.repeat(depth)));
    }
}
