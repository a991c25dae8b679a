//! Recognising a log line's header (timestamp, level, host, `component[pid]:`,
//! bracketed fields) without per-format configuration, so that templates are
//! learnt on the message alone. Every rule is a common log convention
//! (syslog, log4j/logback, Apache error log, logcat, Python logging), none
//! is tied to one file.

/// Most tokens a header spans; beyond this the line is all message.
const WINDOW: usize = 16;

/// Severity words that log frameworks write (syslog, log4j, Python, Go).
const LEVELS: &[&str] = &[
    "TRACE", "DEBUG", "INFO", "NOTICE", "WARN", "WARNING", "ERROR", "ERR", "CRIT", "CRITICAL",
    "FATAL", "ALERT", "EMERG", "SEVERE", "FINE", "FINER", "FINEST", "CONFIG",
];
const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: &[&str] = &["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A whitespace-separated token: its byte range in the line.
#[derive(Clone, Copy)]
struct Tok {
    start: usize,
    end: usize,
}

fn first_tokens(line: &str, max: usize) -> Vec<Tok> {
    let mut out = Vec::with_capacity(max);
    let mut start = None;
    for (i, c) in line.char_indices() {
        if c.is_whitespace() {
            if let Some(s) = start.take() {
                out.push(Tok { start: s, end: i });
                if out.len() == max {
                    return out;
                }
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push(Tok {
            start: s,
            end: line.len(),
        });
    }
    out
}

/// Digits with date/time/number separators: `081109`, `17/06/09`,
/// `16:13:38.811`, `2015-07-29`, `17:41:44,747`, `2017-05-16T00:00:00Z`, a pid.
fn is_timeish(t: &str) -> bool {
    t.bytes().any(|b| b.is_ascii_digit())
        && t.bytes()
            .all(|b| b.is_ascii_digit() || b"-/:.,+TZ".contains(&b))
}

/// A timestamp proper (has a date or time separator), not a bare number.
fn is_dateish(t: &str) -> bool {
    is_timeish(t) && t.bytes().any(|b| b"-/:".contains(&b))
}

fn is_month_or_day(t: &str) -> bool {
    let t = t.trim_end_matches(',');
    t.len() >= 3
        && t.is_char_boundary(3)
        && t.chars().all(|c| c.is_ascii_alphabetic())
        && t.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && {
            let p = t[..3].to_ascii_lowercase();
            MONTHS.contains(&p.as_str()) || DAYS.contains(&p.as_str())
        }
}

fn is_level(t: &str) -> bool {
    let t = t.trim_end_matches(':');
    LEVELS.iter().any(|l| l.eq_ignore_ascii_case(t))
}

/// logcat's one-letter levels (`V D I W E F`): only next to a numeric field.
fn is_letter_level(t: &str) -> bool {
    t.len() == 1 && t.bytes().all(|b| b"VDIWEF".contains(&b))
}

/// `sshd[24200]:`, `sshd(pam_unix)[19939]:`, `dfs.DataNode$PacketResponder:`,
/// `kernel:` — the program or logger name that ends a header.
fn is_component_colon(t: &str) -> bool {
    t.len() > 1
        && t.ends_with(':')
        && t.chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_')
        && !t[..t.len() - 1].contains(':')
}

/// A logger name written without a colon (log4j `%c`): `nova.osapi.server`.
fn is_dotted_name(t: &str) -> bool {
    t.contains('.')
        && t.chars().next().is_some_and(|c| c.is_alphabetic())
        && t.chars().all(|c| c.is_alphanumeric() || "._$-".contains(c))
}

/// Where the bracket group opening at token `i` ends (token index past it),
/// brackets balanced across tokens: `[Sun Dec 04 04:47:44 2005]`, `[a[b]/c]`.
fn bracket_group(line: &str, toks: &[Tok], i: usize) -> Option<usize> {
    let mut depth = 0i32;
    for (j, t) in toks.iter().enumerate().skip(i) {
        for b in line[t.start..t.end].bytes() {
            match b {
                b'[' => depth += 1,
                b']' => depth -= 1,
                _ => {}
            }
        }
        if depth <= 0 {
            return line[t.start..t.end].ends_with(']').then_some(j + 1);
        }
    }
    None
}

/// Byte offset where the message starts (0 when no header is recognised).
pub fn content_start(line: &str) -> usize {
    let toks = first_tokens(line, WINDOW);
    let text = |i: usize| &line[toks[i].start..toks[i].end];
    let mut i = 0;
    let mut seen = false; // any header field so far
    let mut after_level = false; // the previous field was a bare level word
    let mut component = false; // the logger/program name was seen
    let mut end = 0;
    // An aggregator's source prefix (file or host name) before the timestamp.
    if toks.len() > 2 && !is_timeish(text(0)) && !text(0).starts_with('[') && is_dateish(text(1)) {
        i = 1;
        end = toks[0].end;
    }
    while i < toks.len() {
        let t = text(i);
        if t.starts_with('[') && (seen || i == 0) {
            if let Some(next) = bracket_group(line, &toks, i) {
                i = next;
                end = toks[next - 1].end;
                seen = true;
                after_level = false;
                continue;
            }
            break;
        }
        if component {
            // After the logger name only bracketed fields (thread, request
            // context) still belong to the header.
            break;
        }
        let next_is_value = i + 1 < toks.len() && is_timeish(text(i + 1));
        let ok_field = is_timeish(t)
            || (is_month_or_day(t) && (seen || next_is_value))
            || is_level(t)
            || (seen && is_letter_level(t) && next_is_value_or_name(line, &toks, i))
            || (seen && (t == "-" || t == "|"));
        if ok_field {
            after_level = is_level(t) || is_letter_level(t);
            seen = true;
            i += 1;
            end = toks[i - 1].end;
            if t.ends_with(':') && is_level(t) {
                break;
            }
            continue;
        }
        if !seen {
            break;
        }
        if is_component_colon(t) {
            end = toks[i].end;
            break;
        }
        // A host name before `program[pid]:` (syslog).
        if i + 1 < toks.len() && is_component_colon(text(i + 1)) && !t.ends_with(':') {
            end = toks[i + 1].end;
            break;
        }
        // A logger name without a colon, right after the level (log4j `%c`).
        if after_level && is_dotted_name(t) {
            component = true;
            i += 1;
            end = toks[i - 1].end;
            continue;
        }
        break;
    }
    end
}

/// logcat: `1702  2395 D WindowManager: ...` — the letter follows numbers and
/// precedes a name; anything else reads `D` as a word of the message.
fn next_is_value_or_name(line: &str, toks: &[Tok], i: usize) -> bool {
    i > 0 && is_timeish(&line[toks[i - 1].start..toks[i - 1].end]) && i + 1 < toks.len()
}

/// The message part of a line, its header cut off.
pub fn content(line: &str) -> &str {
    line[content_start(line)..].trim_start()
}
