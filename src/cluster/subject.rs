//! The subjects of the stream, and the escaping of a set or host name into exactly one
//! subject token.
//!
//! Lines: `supergrep.lines.<set>.<host>`; markers: `supergrep.markers`.
//!
//! Escaping: the bytes `A-Z a-z 0-9 _ -` stand for themselves; every other byte of the
//! name's UTF-8 (`.`, `*`, `>`, whitespace, `~`, `$`, non-ASCII, …) is written `~XX`,
//! its two upper-case hex digits; the empty name is the token `~`. So a token never
//! holds `.`, `*`, `>` or whitespace and is never empty, the same name always gives the
//! same token (consumers may filter on it: `supergrep.lines.web.>`), and the name is
//! recovered exactly ([`unescape`]). `web01.example.com` → `web01~2Eexample~2Ecom`.

pub const LINES_PREFIX: &str = "supergrep.lines";
/// Every line subject, as the stream takes them.
pub const LINES_ALL: &str = "supergrep.lines.>";
pub const MARKERS: &str = "supergrep.markers";

/// The subject of the lines of `host` in `set`.
pub fn lines(set: &str, host: &str) -> String {
    format!("{LINES_PREFIX}.{}.{}", escape(set), escape(host))
}

/// `name` as one subject token (see the module doc).
pub fn escape(name: &str) -> String {
    if name.is_empty() {
        return "~".into();
    }
    let mut out = String::with_capacity(name.len());
    for &b in name.as_bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("~{b:02X}"));
        }
    }
    out
}

/// The name a token made by [`escape`] stands for; `None` for a token it cannot make.
pub fn unescape(token: &str) -> Option<String> {
    if token == "~" {
        return Some(String::new());
    }
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'~' => {
                let hex = token.get(i + 1..i + 3)?;
                if hex.bytes().any(|h| h.is_ascii_lowercase()) {
                    return None;
                }
                let b = u8::from_str_radix(hex, 16).ok()?;
                if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
                    return None;
                }
                out.push(b);
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    if out.is_empty() {
        return None;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn valid_token(t: &str) -> bool {
        !t.is_empty()
            && !t
                .chars()
                .any(|c| c == '.' || c == '*' || c == '>' || c.is_whitespace())
    }

    proptest! {
        #[test]
        fn escaping_round_trips_into_one_valid_token(name in any::<String>()) {
            let t = escape(&name);
            prop_assert!(valid_token(&t), "{t:?}");
            prop_assert_eq!(unescape(&t), Some(name.clone()));
            prop_assert_eq!(escape(&name), t);
        }

        #[test]
        fn names_made_of_subject_syntax_stay_one_token(name in "[.*> \t~a-z]{0,12}") {
            let t = escape(&name);
            prop_assert!(valid_token(&t));
            prop_assert_eq!(unescape(&t), Some(name));
        }
    }

    #[test]
    fn examples() {
        assert_eq!(escape("web01.example.com"), "web01~2Eexample~2Ecom");
        assert_eq!(lines("web", "a b"), "supergrep.lines.web.a~20b");
        assert_eq!(escape(""), "~");
        assert_eq!(unescape("~2e"), None, "one spelling per name");
        assert_eq!(unescape("~41"), None, "`A` is never escaped");
        assert_eq!(unescape("a.b"), None);
    }
}
