//! Serde types of the wire format (DESIGN §4). Shared by everything that speaks it:
//! the hub, the agent, `--connect`, and the terminal's `--format json`, whose objects
//! are exactly a `lines` entry.

use serde::{Deserialize, Serialize};

use crate::line::{format_ts, LineRef, LogLine};

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
    pub fn new(line: LineRef<'a>, spans: &'a [[usize; 2]]) -> Self {
        WireLineRef {
            seq: line.seq,
            ts: format_ts(line.ts),
            host: &line.stream.host,
            path: &line.stream.path,
            set: &line.stream.set,
            text: line.text,
            spans,
        }
    }
}

/// Version of the WebSocket protocol spoken here.
pub const VERSION: u32 = 1;

/// A stream as announced to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireStream {
    pub id: String,
    pub host: String,
    pub path: String,
    pub set: String,
}

impl From<&crate::line::Stream> for WireStream {
    fn from(s: &crate::line::Stream) -> Self {
        WireStream {
            id: s.id.clone(),
            host: s.host.clone(),
            path: s.path.clone(),
            set: s.set.clone(),
        }
    }
}

/// Error codes of `error` messages.
pub mod code {
    pub const INVALID_REGEX: &str = "invalid_regex";
    pub const BAD_REQUEST: &str = "bad_request";
    pub const TOO_MANY_SUBSCRIPTIONS: &str = "too_many_subscriptions";
    /// Over `max_patterns_per_client`, over all of the client's subscriptions.
    pub const TOO_MANY_PATTERNS: &str = "too_many_patterns";
    /// Over `max_patterns_per_address`, over all connections from the client's address.
    pub const ADDRESS_BUDGET: &str = "address_budget";
    /// The hub's total is reached and the client's address holds more than its share
    /// (also sent, unasked, for a subscription dropped to make room for another
    /// address within its share), or the matcher's own bounds are.
    pub const HUB_BUDGET: &str = "hub_budget";
    /// Over `max_compiled_bytes_per_client` or `max_compiled_bytes_per_address`: the
    /// compiled size of the client's (or its address's) patterns.
    pub const COMPILED_BUDGET: &str = "compiled_budget";
    pub const UNAUTHORIZED: &str = "unauthorized";
    pub const UNKNOWN_STREAM: &str = "unknown_stream";
    /// An agent's stream that is not its to write (another source's name space), or
    /// over the per-agent limits.
    pub const STREAM_REFUSED: &str = "stream_refused";
    /// An agent of that name is connected already (the agent retries).
    pub const NAME_IN_USE: &str = "name_in_use";
    /// A pattern longer than the hub takes (refused before it is parsed).
    pub const PATTERN_TOO_LONG: &str = "pattern_too_long";
    /// A costly subscription (evaluated apart from the shared matcher, on a worker
    /// of its own) when the hub runs as many of those as it allows.
    pub const TOO_MANY_COSTLY: &str = "too_many_costly_subscriptions";
    /// The hub has too many subscriptions waiting to be compiled; try again.
    pub const BUSY: &str = "busy";
}

/// Server → client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    Hello {
        version: u32,
        server: String,
        streams: Vec<WireStream>,
        /// Differs each time the hub starts: a client that reconnects to the same
        /// hub can trust `seq` to continue; after a restart `seq` starts again.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        boot: String,
    },
    Subscribed {
        id: String,
    },
    Lines {
        id: String,
        lines: Vec<WireLine>,
    },
    Dropped {
        id: String,
        count: u64,
    },
    Streams {
        added: Vec<WireStream>,
        removed: Vec<String>,
    },
    Marker {
        ts: String,
        text: String,
    },
    Context {
        id: String,
        stream: String,
        lines: Vec<WireLine>,
    },
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        code: String,
        message: String,
        /// With `invalid_regex`: the pattern that failed, as the client sent it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pattern: Option<String>,
    },
}

/// Client → server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    Subscribe {
        id: String,
        #[serde(default)]
        include: Vec<String>,
        #[serde(default)]
        exclude: Vec<String>,
        #[serde(default)]
        ignore_case: bool,
        /// Set names or `host:path` globs; absent = every stream.
        #[serde(default)]
        streams: Option<Vec<String>>,
        /// Up to this many recent matching lines first.
        #[serde(default)]
        backlog: usize,
    },
    Unsubscribe {
        id: String,
    },
    Context {
        id: String,
        stream: String,
        seq: u64,
        #[serde(default)]
        before: usize,
        #[serde(default)]
        after: usize,
    },
}

impl ServerMsg {
    pub fn error(id: Option<&str>, code: &str, message: impl Into<String>) -> ServerMsg {
        ServerMsg::Error {
            id: id.map(str::to_owned),
            code: code.to_owned(),
            message: message.into(),
            pattern: None,
        }
    }

    /// JSON text of the message (serializing these types cannot fail).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!(r#"{{"type":"error","code":"internal","message":"{e}"}}"#))
    }
}

impl WireLine {
    pub fn from_line(line: &LogLine, spans: Vec<[usize; 2]>) -> WireLine {
        WireLine {
            seq: line.seq,
            ts: format_ts(line.ts),
            host: line.stream.host.clone(),
            path: line.stream.path.clone(),
            set: line.stream.set.clone(),
            text: line.text().to_string(),
            spans,
        }
    }
}

/// What a serialized [`WireLineRef`] without spans ends in (`spans` is its last
/// field); [`line_head`] cuts it off.
const NO_SPANS_END: &str = "[]}";

/// `line`'s `LINE` object up to its spans:
/// `{"seq":…,"ts":…,"host":…,"path":…,"set":…,"text":…,"spans":` — what every
/// client's copy of the line shares; [`lines_frame`] appends each one's spans and
/// `}`. Encoded once per line (and kept in it), however many clients get it.
pub fn line_head(line: &LogLine) -> Result<&str, serde_json::Error> {
    let cache = line.encoding_cache();
    if let Some(head) = cache.get() {
        return Ok(head);
    }
    let mut head = serde_json::to_string(&WireLineRef::new(line.as_line_ref(), &[]))?;
    let keep = head.strip_suffix(NO_SPANS_END).map_or(head.len(), str::len);
    head.truncate(keep);
    Ok(cache.get_or_init(|| head))
}

/// A `lines` message of matches of subscription `id`, each a line and its spans:
/// the text serde makes of [`ServerMsg::Lines`] (a test holds it to that), built
/// from each line's shared [`line_head`], so a line's text is escaped once for all
/// clients rather than once for each.
pub fn lines_frame<'a, I>(id: &str, lines: I) -> Result<String, serde_json::Error>
where
    I: Iterator<Item = (&'a LogLine, &'a [[usize; 2]])> + Clone,
{
    use std::fmt::Write as _;
    let id_json = serde_json::to_string(id)?;
    let mut size = id_json.len() + 32;
    for (line, spans) in lines.clone() {
        size += line_head(line)?.len() + 16 * spans.len() + 4;
    }
    let mut json = String::with_capacity(size);
    json.push_str(r#"{"type":"lines","id":"#);
    json.push_str(&id_json);
    json.push_str(r#","lines":["#);
    for (i, (line, spans)) in lines.enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push_str(line_head(line)?);
        json.push('[');
        for (k, [start, end]) in spans.iter().enumerate() {
            if k > 0 {
                json.push(',');
            }
            // Writing to a String cannot fail.
            let _ = write!(json, "[{start},{end}]");
        }
        json.push_str("]}");
    }
    json.push_str("]}");
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;
    use proptest::prelude::*;

    #[test]
    fn client_messages_parse_as_documented() -> anyhow::Result<()> {
        let m: ClientMsg = serde_json::from_str(
            r#"{"type":"subscribe","id":"a","include":["error","fatal"],"exclude":["healthcheck"],
                "ignore_case":true,"streams":["web","db01:*"],"backlog":200}"#,
        )
        .context("parsing the subscribe message")?;
        assert!(matches!(
            m,
            ClientMsg::Subscribe {
                backlog: 200,
                ignore_case: true,
                ..
            }
        ));
        let m: ClientMsg = serde_json::from_str(
            r#"{"type":"context","id":"c1","stream":"web01:/var/log/app.log","seq":1042,"before":20,"after":20}"#,
        )
        .context("parsing the context message")?;
        assert!(matches!(
            m,
            ClientMsg::Context {
                seq: 1042,
                before: 20,
                ..
            }
        ));
        assert!(serde_json::from_str::<ClientMsg>(r#"{"type":"subscribe"}"#).is_err());
        assert!(serde_json::from_str::<ClientMsg>(r#"{"type":"nope","id":"a"}"#).is_err());
        Ok(())
    }

    #[test]
    fn server_messages_serialize_as_documented() {
        let m = ServerMsg::Dropped {
            id: "a".into(),
            count: 523,
        };
        assert_eq!(m.to_json(), r#"{"type":"dropped","id":"a","count":523}"#);
        let m = ServerMsg::error(None, code::BAD_REQUEST, "x");
        assert_eq!(
            m.to_json(),
            r#"{"type":"error","code":"bad_request","message":"x"}"#
        );
    }

    #[test]
    fn the_shared_wire_head_plus_spans_is_the_protocol_line() -> anyhow::Result<()> {
        use std::sync::Arc;
        let line = LogLine::new(
            Arc::new(crate::line::Stream::new(
                "web01",
                "/var/log/a \"b\".log",
                "web",
            )),
            42,
            std::time::UNIX_EPOCH,
            "an \"error\" é\t\u{1}",
        );
        let spans = [[4usize, 9usize], [10, 11]];
        let built = format!("{}[[4,9],[10,11]]}}", line_head(&line)?);
        let reference = serde_json::to_string(&WireLine::from_line(&line, spans.to_vec()))
            .context("serializing the wire line")?;
        assert_eq!(built, reference);
        Ok(())
    }

    /// Text with what JSON must escape (quotes, backslashes, control characters) and
    /// what it need not but a careless encoder might (U+2028/9, DEL, `/`, `<`).
    fn wire_text() -> impl Strategy<Value = String> {
        let tricky = prop::sample::select(vec![
            '"',
            '\\',
            '/',
            '<',
            '\n',
            '\r',
            '\t',
            '\0',
            '\u{1}',
            '\u{1f}',
            '\u{7f}',
            '\u{80}',
            '\u{9b}',
            '\u{2028}',
            '\u{2029}',
            '\u{fffd}',
            '\u{feff}',
            '\u{10ffff}',
            'é',
            ' ',
        ]);
        prop::collection::vec(prop_oneof![any::<char>(), tricky], 0..40)
            .prop_map(|chars| chars.into_iter().collect())
    }

    fn wire_line() -> impl Strategy<Value = (LogLine, Vec<[usize; 2]>)> {
        use std::sync::Arc;
        let ts = (0u64..253_402_300_800, 0u32..1_000_000_000).prop_map(|(secs, nanos)| {
            std::time::UNIX_EPOCH + std::time::Duration::new(secs, nanos)
        });
        let spans = prop::collection::vec(any::<[usize; 2]>(), 0..5);
        (
            wire_text(),
            wire_text(),
            wire_text(),
            any::<u64>(),
            ts,
            wire_text(),
            spans,
        )
            .prop_map(|(host, path, set, seq, ts, text, spans)| {
                let stream = Arc::new(crate::line::Stream::new(host, path, set));
                (LogLine::new(stream, seq, ts, &text), spans)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// A `lines` frame built from the shared heads is, byte for byte, what serde
        /// makes of the same message, for any lines: whatever their text, host, path
        /// and set hold, any seq, ts and spans, and a line met twice (its head from
        /// the cache) with other spans.
        #[test]
        fn a_lines_frame_is_what_serde_makes_of_it(
            id in wire_text(),
            lines in prop::collection::vec(wire_line(), 0..6),
            again in prop::collection::vec(any::<[usize; 2]>(), 0..3),
        ) {
                let mut lines = lines;
            if let Some((first, _)) = lines.first() {
                lines.push((first.clone(), again));
            }
            let frame = lines_frame(&id, lines.iter().map(|(l, s)| (l, s.as_slice())));
            let wanted = serde_json::to_string(&ServerMsg::Lines {
                id: id.clone(),
                lines: lines.iter().map(|(l, s)| WireLine::from_line(l, s.clone())).collect(),
            });
            let (frame, wanted) = match (frame, wanted) {
                (Ok(f), Ok(w)) => (f, w),
                (f, w) => return Err(TestCaseError::fail(format!("encoding failed: {f:?} {w:?}"))),
            };
            prop_assert_eq!(frame, wanted);
            for (line, spans) in &lines {
                let head = line_head(line).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let one = serde_json::to_string(&WireLine::from_line(line, spans.clone()))
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert!(one.starts_with(head), "{} is not the head of {}", head, one);
            }
        }
    }
}

/// Where a binary `lines` frame splits: its JSON header is up to the first newline
/// (serde never writes a raw one), its lines follow it as they are, so they can stay
/// in the frame's buffer all the way to the backlog. `(header, lines)`, as ranges of
/// `frame`.
pub fn lines_frame_parts(frame: &[u8]) -> (std::ops::Range<usize>, std::ops::RangeFrom<usize>) {
    let split = memchr::memchr(b'\n', frame).unwrap_or(frame.len());
    (0..split, (split + 1).min(frame.len())..)
}

/// Agent → hub, on `/agent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AgentMsg {
    /// First message: who is shipping.
    AgentHello {
        version: u32,
        name: String,
        agent: String,
    },
    /// A file the agent follows appeared.
    StreamAdded { path: String, set: String },
    /// After a reconnect: the next `batches` batches are sent again (the hub had not
    /// acknowledged them; it drops those it already has).
    Resending { batches: u64 },
    /// A file the agent followed is gone for good.
    StreamRemoved { path: String, set: String },
    /// Complete lines of one file: bytes `start..end` of the file (device, inode,
    /// birth time), as [`crate::line::Origin::position`]s (offsets, plus the times the
    /// file was truncated and written again in the high bits).
    /// `batch` numbers the agent's batches; the hub acknowledges by number.
    Lines {
        batch: u64,
        path: String,
        set: String,
        dev: u64,
        ino: u64,
        /// The file's birth time ([`crate::line::born`]): a new file that was given a
        /// freed inode is another file. Absent from older agents and where the
        /// filesystem keeps none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        born: Option<u64>,
        start: u64,
        end: u64,
        ts: String,
        /// In a binary frame the lines follow the header instead.
        #[serde(default)]
        text: String,
    },
}

/// Hub → agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HubMsg {
    Welcome {
        version: u32,
        server: String,
        /// The hub takes binary `lines` frames unmasked (see `agent::frame`). Absent
        /// from older hubs: false.
        #[serde(default)]
        unmasked_lines: bool,
    },
    /// Every batch up to and including `batch` is ingested: numbered, in the backlog,
    /// and matched for every client.
    Ack {
        batch: u64,
    },
    Error {
        code: String,
        message: String,
    },
}
