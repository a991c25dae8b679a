//! One batch of lines as a JetStream message: the subject of its set and host, the
//! lines as they were read (whole lines, `\n`-ended) as the payload, and where they
//! come from in headers. The `Nats-Msg-Id` is made from the file's identity and the
//! byte range, so the same batch sent again (after a lost ack, a reconnect) has the
//! same id and JetStream drops it within the stream's duplicate window.
//!
//! Header values are the text with `%`, and every control character (`\r`, `\n`…),
//! written `%XX`: a NATS header value cannot hold a line break, and a path may.

use async_nats::HeaderMap;
use bytes::Bytes;

use crate::line::Origin;

pub const HOST: &str = "Supergrep-Host";
pub const SET: &str = "Supergrep-Set";
pub const PATH: &str = "Supergrep-Path";
/// `DEV:INO:BORN` (`BORN` is `-` where the filesystem keeps no birth time).
pub const FILE: &str = "Supergrep-File";
/// How many times the file was seen truncated and written again (offsets start over).
pub const EPOCH: &str = "Supergrep-Epoch";
/// Byte offset in the file of the batch's first byte, and of the byte past its last.
pub const OFFSET: &str = "Supergrep-Offset";
pub const END: &str = "Supergrep-End";
/// When the agent read the lines (RFC 3339).
pub const TS: &str = "Supergrep-Ts";

/// A batch ready to publish (and to publish again, unchanged).
#[derive(Debug, Clone)]
pub struct LinesMessage {
    pub subject: String,
    pub headers: HeaderMap,
    pub payload: Bytes,
    /// The headers' size, names and values (a long path is in them twice).
    header_bytes: usize,
}

impl LinesMessage {
    pub fn new(
        host_name: &str,
        set_name: &str,
        path: &str,
        origin: &Origin,
        ts: &str,
        payload: Bytes,
    ) -> LinesMessage {
        let born = origin.born.map_or("-".to_owned(), |b| b.to_string());
        let file = format!("{}:{}:{born}", origin.dev, origin.ino);
        let id = format!(
            "{}:{}:{file}:{}:{}-{}",
            header_value(host_name),
            header_value(path),
            origin.epoch,
            origin.start,
            origin.end
        );
        let (host, set, path) = (
            header_value(host_name),
            header_value(set_name),
            header_value(path),
        );
        // Names, separators and the three numbers: under 200 bytes.
        let header_bytes = 200 + id.len() + host.len() + set.len() + path.len() + file.len();
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id);
        headers.insert(HOST, host);
        headers.insert(SET, set);
        headers.insert(PATH, path);
        headers.insert(FILE, file);
        headers.insert(EPOCH, origin.epoch.to_string());
        headers.insert(OFFSET, origin.start.to_string());
        headers.insert(END, origin.end.to_string());
        headers.insert(TS, ts);
        LinesMessage {
            subject: super::subject::lines(set_name, host_name),
            headers,
            header_bytes: header_bytes + ts.len(),
            payload,
        }
    }

    /// What it costs the agent's buffer.
    pub fn len(&self) -> usize {
        self.payload.len() + self.subject.len() + self.header_bytes
    }

    pub fn is_empty(&self) -> bool {
        self.payload.is_empty()
    }
}

/// `text` with `%` and control characters as `%XX` (see the module doc).
pub fn header_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '%' || c.is_control() && c.is_ascii() {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// The text [`header_value`] was made from; `None` for a value it cannot make.
pub fn from_header_value(value: &str) -> Option<String> {
    let mut out = Vec::with_capacity(value.len());
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(value.get(i + 1..i + 3)?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn header_values_round_trip_without_line_breaks(text in any::<String>()) {
            let v = header_value(&text);
            prop_assert!(!v.contains(['\r', '\n']));
            prop_assert_eq!(from_header_value(&v), Some(text));
        }
    }

    /// The agent's buffer bound counts what a batch really holds: a long path is in
    /// the headers twice (its own and the message id), not within a flat allowance.
    #[test]
    fn a_long_path_is_counted_in_the_buffer_twice() {
        let origin = Origin {
            dev: 1,
            ino: 2,
            born: None,
            epoch: 0,
            start: 0,
            end: 10,
        };
        let path = format!("/{}", "p".repeat(4096));
        let m = LinesMessage::new("web01", "web", &path, &origin, "t", Bytes::from("x\n"));
        assert!(m.len() >= 2 * path.len() + 2, "{} bytes", m.len());
    }

    #[test]
    fn the_same_batch_has_the_same_id_and_another_range_another() {
        let origin = Origin {
            dev: 1,
            ino: 2,
            born: None,
            epoch: 0,
            start: 0,
            end: 10,
        };
        let a = LinesMessage::new("web01", "web", "/a.log", &origin, "t", Bytes::new());
        let b = LinesMessage::new("web01", "web", "/a.log", &origin, "t2", Bytes::new());
        let id = |m: &LinesMessage| {
            m.headers
                .get(async_nats::header::NATS_MESSAGE_ID)
                .map(|v| v.to_string())
        };
        assert_eq!(id(&a), id(&b));
        let later = Origin {
            start: 10,
            end: 20,
            ..origin
        };
        let c = LinesMessage::new("web01", "web", "/a.log", &later, "t", Bytes::new());
        assert_ne!(id(&a), id(&c));
        assert_eq!(a.subject, "supergrep.lines.web.web01");
    }
}
