//! The reference the tests compare supergrep with: the line filter of DESIGN §4 and its
//! highlight spans, computed with the `regex` crate.

use regex::{Regex, RegexBuilder};

/// A subscription's filter: any include matches (no include = every line) and no
/// exclude does.
pub struct Filter {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
}

impl Filter {
    pub fn new<S: AsRef<str>>(include: &[S], exclude: &[S], ignore_case: bool) -> Filter {
        let build = |p: &S| {
            let p = p.as_ref();
            RegexBuilder::new(p)
                .case_insensitive(ignore_case)
                .build()
                .unwrap_or_else(|e| panic!("the reference cannot compile {p:?}: {e}"))
        };
        Filter {
            include: include.iter().map(build).collect(),
            exclude: exclude.iter().map(build).collect(),
        }
    }

    /// The include patterns, compiled.
    pub fn include(&self) -> &[Regex] {
        &self.include
    }

    pub fn matches(&self, line: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|r| r.is_match(line)))
            && !self.exclude.iter().any(|r| r.is_match(line))
    }

    /// Highlight spans as the protocol has them: every non-empty hit of every include
    /// pattern, `[start, end)` in characters, sorted, without repeats.
    pub fn spans(&self, line: &str) -> Vec<[usize; 2]> {
        let chars = |byte: usize| line[..byte].chars().count();
        let mut spans: Vec<[usize; 2]> = self
            .include
            .iter()
            .flat_map(|r| r.find_iter(line))
            .filter(|m| !m.is_empty())
            .map(|m| [chars(m.start()), chars(m.end())])
            .collect();
        spans.sort_unstable();
        spans.dedup();
        spans
    }

    /// The lines of `written` this filter keeps, with their index in `written`.
    pub fn select<'a, S: AsRef<str>>(&self, written: &'a [S]) -> Vec<(usize, &'a str)> {
        written
            .iter()
            .map(AsRef::as_ref)
            .enumerate()
            .filter(|(_, l)| self.matches(l))
            .collect()
    }

    /// The lines of `written` this filter keeps.
    pub fn kept<S: AsRef<str>>(&self, written: &[S]) -> Vec<String> {
        self.select(written)
            .into_iter()
            .map(|(_, l)| l.to_owned())
            .collect()
    }
}
