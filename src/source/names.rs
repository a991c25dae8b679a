//! Stream names that come from the network (a syslog message's hostname and tag, an
//! agent's file paths) are escaped: a stream id is `host:path`, so a host with `:`
//! (`vm:fake`, an IPv6 sender) made ids ambiguous, and control characters (ESC)
//! reach terminals. The scheme is percent-escaping of each byte (UTF-8) as `%XX`:
//! in hosts `:`, `%`, whitespace and control characters; in paths and tags, control
//! characters only (`:` after the host is unambiguous, and `%` is left as a file's
//! own name has it).

/// `raw` as a stream's host: no `:`, `%`, whitespace or control character.
pub fn host(raw: &str) -> String {
    escape(raw, |c| {
        c == ':' || c == '%' || c.is_whitespace() || c.is_control()
    })
}

/// `raw` as (part of) a stream's path: no control character.
pub fn path(raw: &str) -> String {
    escape(raw, char::is_control)
}

fn escape(raw: &str, escaped: impl Fn(char) -> bool) -> String {
    if !raw.chars().any(&escaped) {
        return raw.to_owned();
    }
    let mut out = String::with_capacity(raw.len() + 8);
    for c in raw.chars() {
        if escaped(c) {
            let mut utf8 = [0u8; 4];
            for b in c.encode_utf8(&mut utf8).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lose_colons_percent_signs_and_controls_paths_only_controls() {
        assert_eq!(host("web01.example.com"), "web01.example.com");
        assert_eq!(host("vm:fake"), "vm%3Afake");
        assert_eq!(host("::1"), "%3A%3A1");
        assert_eq!(host("a%3Ab"), "a%253Ab");
        assert_eq!(host("ho\u{1b}[31mst"), "ho%1B[31mst");
        assert_eq!(host("a\u{85}b"), "a%C2%85b");
        assert_eq!(path("/var/log/a:b.log"), "/var/log/a:b.log");
        assert_eq!(path("/var/log/100%.log"), "/var/log/100%.log");
        assert_eq!(path("/x/\u{1b}]0;pwn\u{7}.log"), "/x/%1B]0;pwn%07.log");
    }
}
