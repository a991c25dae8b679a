//! Which literal strings must appear in a line for a pattern to match it.
//!
//! The matcher puts these literals of every pattern into one Aho-Corasick automaton,
//! so one pass over a line (or a whole buffer) finds the few patterns worth running.
//! regex-syntax only extracts prefixes and suffixes; a pattern such as
//! `\d+ ms timeout` has neither a useful prefix nor a suffix, so we also look inside
//! concatenations: whatever a required piece must start with, the whole line contains.

use regex_syntax::hir::literal::{ExtractKind, Extractor, Seq};
use regex_syntax::hir::{Hir, HirKind};

/// The most literals one pattern may contribute before it counts as "no literal".
const MAX_LITERALS: usize = 256;

/// A set of literals such that every match of `hir` contains at least one of them;
/// `None` when no such set is worth having (it would match almost every line).
pub fn required(hir: &Hir) -> Option<Vec<Vec<u8>>> {
    let mut set = best(hir)?;
    set.sort();
    set.dedup();
    Some(set)
}

fn best(hir: &Hir) -> Option<Vec<Vec<u8>>> {
    let mut best = pick(
        extract(hir, ExtractKind::Prefix),
        extract(hir, ExtractKind::Suffix),
    );
    match hir.kind() {
        HirKind::Concat(parts) => {
            for part in parts {
                best = pick(best, self::best(part));
            }
        }
        HirKind::Capture(cap) => best = pick(best, self::best(&cap.sub)),
        HirKind::Repetition(rep) if rep.min >= 1 => best = pick(best, self::best(&rep.sub)),
        HirKind::Alternation(alts) => {
            // Each branch needs its own required set; the union covers the whole.
            let mut union = Vec::new();
            for alt in alts {
                union.extend(self::best(alt)?);
                if union.len() > MAX_LITERALS {
                    return best;
                }
            }
            best = pick(best, Some(union));
        }
        _ => {}
    }
    best
}

fn extract(hir: &Hir, kind: ExtractKind) -> Option<Vec<Vec<u8>>> {
    let seq: Seq = Extractor::new().kind(kind).extract(hir);
    let lits = seq.literals()?;
    if lits.len() > MAX_LITERALS || lits.iter().any(|l| l.is_empty()) {
        return None;
    }
    Some(lits.iter().map(|l| l.as_bytes().to_vec()).collect())
}

/// The better of two literal sets: longer shortest literal first (fewer false
/// candidates), then fewer literals.
fn pick(a: Option<Vec<Vec<u8>>>, b: Option<Vec<Vec<u8>>>) -> Option<Vec<Vec<u8>>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if score(&b) > score(&a) { b } else { a }),
        (a, b) => a.or(b),
    }
}

fn score(set: &[Vec<u8>]) -> (usize, std::cmp::Reverse<usize>) {
    let shortest = set.iter().map(Vec::len).min().unwrap_or(usize::MAX);
    (shortest.min(16), std::cmp::Reverse(set.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    fn req(pattern: &str, ignore_case: bool) -> anyhow::Result<Option<Vec<String>>> {
        let hir = regex_syntax::ParserBuilder::new()
            .case_insensitive(ignore_case)
            .build()
            .parse(pattern)?;
        let Some(literals) = required(&hir) else {
            return Ok(None);
        };
        let literals = literals.into_iter().map(String::from_utf8);
        Ok(Some(literals.collect::<Result<_, _>>()?))
    }

    /// The required literals of `pattern`, which must have some.
    fn some_req(pattern: &str, ignore_case: bool) -> anyhow::Result<Vec<String>> {
        req(pattern, ignore_case)?.with_context(|| format!("no literal found in {pattern:?}"))
    }

    #[test]
    fn finds_prefix_suffix_and_inner_literals() -> anyhow::Result<()> {
        assert_eq!(some_req("Failed password", false)?, ["Failed password"]);
        assert_eq!(some_req("error|fatal", false)?, ["error", "fatal"]);
        assert_eq!(some_req(r"\d+ ms timeout", false)?, [" ms timeout"]);
        assert_eq!(some_req(r"^\w+ was (killed|stopped)$", false)?.len(), 2);
        assert_eq!(
            some_req(r"blk_.*?\d+ terminating", false)?,
            [" terminating"]
        );
        Ok(())
    }

    #[test]
    fn no_literal_means_check_every_line() -> anyhow::Result<()> {
        assert_eq!(req(r"^\w+$", false)?, None);
        assert_eq!(req(r"a?", false)?, None);
        assert_eq!(req(r"", false)?, None);
        Ok(())
    }

    #[test]
    fn case_insensitive_literals_cover_case_variants() -> anyhow::Result<()> {
        let lits = some_req("err", true)?;
        assert!(lits.contains(&"ERR".to_owned()) && lits.contains(&"eRr".to_owned()));
        Ok(())
    }
}
