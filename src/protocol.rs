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

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

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
