//! Tokenising a message and masking its variable parts (numbers, hex, ids,
//! IPs, paths, UUIDs, `key=value` values) into the wildcard before clustering.

use std::borrow::Cow;

/// The wildcard a variable part becomes, in templates and masked tokens.
pub const WILD: &str = "<*>";

/// Characters that make up one value inside a token; the others (`=,;()[]{}<>"'`)
/// separate values, so `uid=0`, `ready=true,mode=3`, `(uid=0)` mask only the values.
fn is_run_char(c: char) -> bool {
    c.is_alphanumeric() || "_.-+:/@#$%*~&?!|\\".contains(c)
}

/// A value that varies between lines of one event, by general convention:
/// anything with a digit (counts, ids, IPs, times, versions, hex), an absolute
/// path, a long hex string.
fn is_variable(run: &str) -> bool {
    run.bytes().any(|b| b.is_ascii_digit())
        || (run.starts_with('/') && run.bytes().filter(|&b| b == b'/').count() >= 2)
        || (run.len() >= 8 && run.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// One token with its variable values replaced by [`WILD`].
pub fn mask(token: &str) -> Cow<'_, str> {
    let mut out: Option<String> = None;
    let mut copied = 0; // bytes of `token` already in `out`
    let mut run_start: Option<usize> = None;
    let flush = |start: usize, end: usize, out: &mut Option<String>, copied: &mut usize| {
        let run = &token[start..end];
        // A sentence's trailing `.`/`:` is punctuation, not part of the value.
        let core = run.trim_end_matches(['.', ':']);
        if !core.is_empty() && is_variable(core) {
            let o = out.get_or_insert_with(|| String::with_capacity(token.len()));
            o.push_str(&token[*copied..start]);
            o.push_str(WILD);
            *copied = start + core.len();
        }
    };
    for (i, c) in token.char_indices() {
        if is_run_char(c) {
            run_start.get_or_insert(i);
        } else if let Some(s) = run_start.take() {
            flush(s, i, &mut out, &mut copied);
        }
    }
    if let Some(s) = run_start {
        flush(s, token.len(), &mut out, &mut copied);
    }
    match out {
        Some(mut o) => {
            o.push_str(&token[copied..]);
            Cow::Owned(collapse_lists(o))
        }
        None => Cow::Borrowed(token),
    }
}

/// A list of values (`10.0.0.1,10.0.0.2`, `1;2;3`) is one value, however long:
/// `<*>,<*>` becomes `<*>`, so lists of varying length share a template.
fn collapse_lists(mut s: String) -> String {
    for sep in [",", ";"] {
        let pair = format!("{WILD}{sep}{WILD}");
        while s.contains(&pair) {
            s = s.replace(&pair, WILD);
        }
    }
    s
}

/// Split `content` on whitespace into at most `max` tokens, masked if `masking`.
pub fn tokenize<'a>(content: &'a str, masking: bool, max: usize, out: &mut Vec<Cow<'a, str>>) {
    out.clear();
    for t in content.split_whitespace().take(max) {
        out.push(if masking { mask(t) } else { Cow::Borrowed(t) });
    }
}

/// Drain's routing rule: a token with a digit is likely a value, so it does not
/// pick a branch of the prefix tree.
pub fn route_token(t: &str) -> &str {
    if t.bytes().any(|b| b.is_ascii_digit()) {
        WILD
    } else {
        t
    }
}
