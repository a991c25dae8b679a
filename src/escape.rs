//! Control characters made visible, so that text from logs, agents and syslog cannot
//! drive the terminal that shows it (clear the screen, write the clipboard with OSC 52,
//! plant OSC 8 links, retitle the window).
//!
//! Every C0 control but tab, DEL, and every C1 control (U+0080–U+009F, which some
//! terminals obey as 8-bit CSI, OSC…) is written as `\xHH`, the code point in hex
//! (`\x1b` for ESC, `\x0d` for CR, `\x9b` for U+009B), as `less -U` and journalctl show
//! them. A backslash is left as it is: the escapes are for a reader, not to be parsed.

/// Whether `c` is escaped.
pub fn is_control(c: char) -> bool {
    (c < ' ' && c != '\t') || ('\u{7f}'..='\u{9f}').contains(&c)
}

/// Whether `s` holds something [`push`] would escape. Byte-wise: C1 controls are
/// `C2 80`–`C2 9F` in UTF-8.
pub fn needed(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().enumerate().any(|(i, &x)| {
        (x < b' ' && x != b'\t')
            || x == 0x7f
            || (x == 0xc2 && b.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n)))
    })
}

/// Appends `s` to `buf`, escaped when `escape` is true.
pub fn push(buf: &mut Vec<u8>, s: &str, escape: bool) {
    if !escape || !needed(s) {
        buf.extend_from_slice(s.as_bytes());
        return;
    }
    let mut plain = 0;
    for (i, c) in s.char_indices() {
        if is_control(c) {
            buf.extend_from_slice(&s.as_bytes()[plain..i]);
            let code = c as u32;
            buf.extend_from_slice(b"\\x");
            buf.push(HEX[(code >> 4) as usize & 0xf]);
            buf.push(HEX[code as usize & 0xf]);
            plain = i + c.len_utf8();
        }
    }
    buf.extend_from_slice(&s.as_bytes()[plain..]);
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// JSON already has `\u001b` for C0 controls; DEL and C1 controls, which JSON lets
/// through as they are, become `\u007f` and `\u009b` too (the same string to a JSON
/// reader). `json` is one serialized value.
pub fn json_controls(json: &mut Vec<u8>) {
    let raw = |b: &[u8], i: usize| {
        b[i] == 0x7f || (b[i] == 0xc2 && b.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n)))
    };
    if !(0..json.len()).any(|i| raw(json, i)) {
        return;
    }
    let old = std::mem::take(json);
    let mut i = 0;
    while i < old.len() {
        if raw(&old, i) {
            let code = if old[i] == 0x7f { 0x7f } else { old[i + 1] };
            json.extend_from_slice(b"\\u00");
            json.push(HEX[(code >> 4) as usize]);
            json.push(HEX[(code & 0xf) as usize]);
            i += if code == 0x7f { 1 } else { 2 };
        } else {
            json.push(old[i]);
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str) -> String {
        let mut buf = Vec::new();
        push(&mut buf, s, true);
        String::from_utf8_lossy(&buf).into_owned()
    }

    #[test]
    fn controls_become_visible_the_rest_stays() {
        assert_eq!(escaped("plain\ttab é ü"), "plain\ttab é ü");
        assert_eq!(escaped("\x1b[2Jcleared"), "\\x1b[2Jcleared");
        assert_eq!(
            escaped("\x1b]52;c;aGk=\x07 and \r\x7f\u{9b}31m\u{85}"),
            "\\x1b]52;c;aGk=\\x07 and \\x0d\\x7f\\x9b31m\\x85"
        );
        // U+00A0 and up are text.
        assert_eq!(escaped("\u{a0}\u{c2}"), "\u{a0}\u{c2}");
        let mut buf = Vec::new();
        push(&mut buf, "\x1b", false);
        assert_eq!(buf, b"\x1b");
    }

    #[test]
    fn json_gets_del_and_c1_as_unicode_escapes() -> anyhow::Result<()> {
        let text = "a\u{7f}b\u{9b}c\u{e9}\x1b";
        let mut json = serde_json::to_vec(text)?;
        json_controls(&mut json);
        assert_eq!(
            String::from_utf8(json.clone())?,
            r#""a\u007fb\u009bcé\u001b""#
        );
        let back: String = serde_json::from_slice(&json)?;
        assert_eq!(back, text);
        Ok(())
    }
}
