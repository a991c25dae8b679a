//! What one subscription would cost everyone in the shared one-pass matcher, decided
//! once, when it is compiled: a subscription whose patterns would run on most lines
//! with a big automaton, or whose automaton is huge, is evaluated apart (its own
//! matcher, worker and bounded queue: `hub::isolated`), so that when it cannot keep
//! up it is the one that drops lines, not the hub and every other client.
//!
//! Why compiled size and literals, not a measured time: the decision has to be the
//! same on a busy machine as on an idle one (a measurement would move a normal
//! subscription apart, where it may drop, whenever the hub is loaded), and the
//! size of a pattern's automaton is what its time per line follows. Measured at
//! ea03e03 on 443 Loghub lines (`src/demo/samples.tsv`), release build, AMD EPYC:
//!
//! | pattern                                   | compiled bytes | ns per line run |
//! |-------------------------------------------|---------------:|----------------:|
//! | `\d+`, `^\s*$`, `[a-z]{3}\d`              | 6-7 K          | 30-270          |
//! | `^\w+$`, `\w+`                            | 57 K           | 35              |
//! | `(\w+\s+){5}\d`                           | 292 K          | 323             |
//! | `(?i)\w+=\w*a\w*\s+\S*17\S*\s\w{2,8}$`    | 624 K          | 4,800-8,750     |
//!
//! The last one's only literal is `17`, which most lines hold: 200 of them in the
//! shared matcher took 100,000 lines from 0.02 s to 8.4 s for every client.

use std::sync::Arc;

use super::Pattern;

/// A required literal shorter than this is in most lines (`=`, `17`, `id`): the
/// prefilter does not keep its pattern from running.
pub const STRONG_LITERAL_LEN: usize = 3;

/// Compiled bytes of the patterns of one subscription that run on most lines above
/// which it is evaluated apart: one pattern like the last in the table above, two
/// like the one before it, or five `\w+`.
pub const MOST_LINES_BYTES: usize = 256 << 10;

/// Compiled bytes of one subscription above which it is evaluated apart whatever its
/// literals: its lazy DFAs grow with it, and a rebuild of the shared set copies it.
pub const HUGE_BYTES: usize = 4 << 20;

/// Where a subscription is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// In the shared one-pass matcher.
    Shared,
    /// Apart, on a worker of its own.
    Isolated(Why),
}

/// Why a subscription is evaluated apart (shown in the registry's debug output).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Its patterns that run on most lines are this many compiled bytes.
    MostLines { bytes: usize },
    /// Its patterns are this many compiled bytes.
    Huge { bytes: usize },
}

/// Where the subscription of these (include and exclude) patterns belongs.
pub fn placement(patterns: &[Arc<Pattern>]) -> Placement {
    let total: usize = patterns.iter().map(|p| p.memory_usage()).sum();
    if total > HUGE_BYTES {
        return Placement::Isolated(Why::Huge { bytes: total });
    }
    let most_lines: usize = patterns
        .iter()
        .filter(|p| p.runs_on_most_lines())
        .map(|p| p.memory_usage())
        .sum();
    if most_lines > MOST_LINES_BYTES {
        return Placement::Isolated(Why::MostLines { bytes: most_lines });
    }
    Placement::Shared
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::PatternKey;

    fn compiled(patterns: &[&str]) -> anyhow::Result<Vec<Arc<Pattern>>> {
        patterns
            .iter()
            .map(|p| {
                let key = PatternKey {
                    source: (*p).to_owned(),
                    ignore_case: false,
                };
                Ok(Arc::new(Pattern::compile(key, 2 << 20)?))
            })
            .collect()
    }

    #[test]
    fn everyday_patterns_share_and_big_automata_on_most_lines_go_apart() -> anyhow::Result<()> {
        for shared in [
            &["error", "(?i)timeout after \\d+ ms", "\\bERROR\\b"][..],
            &["\\d+", "^\\s*$", "^\\w+$", "[a-z]+=\\d+"],
            // Big, but only on lines holding a long literal.
            &["connection reset (\\w+\\s+){6}\\d"],
        ] {
            assert_eq!(
                placement(&compiled(shared)?),
                Placement::Shared,
                "{shared:?}"
            );
        }
        let hostile = compiled(&["(?i)\\w+=\\w*a\\w*\\s+\\S*17\\S*\\s\\w{2,8}$"])?;
        assert!(
            matches!(
                placement(&hostile),
                Placement::Isolated(Why::MostLines { .. })
            ),
            "{:?}",
            placement(&hostile)
        );
        let word_lists = compiled(&["(\\w+\\s+){5}\\d", "(\\w+\\s+){6}\\d"])?;
        assert!(matches!(placement(&word_lists), Placement::Isolated(_)));
        Ok(())
    }
}
