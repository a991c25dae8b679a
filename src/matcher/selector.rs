//! Which streams a subscription listens to: log set names, or `host:path` globs.

use globset::{Glob, GlobSet, GlobSetBuilder};
use thiserror::Error;

use crate::line::Stream;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("invalid stream selector {selector:?}: {message}")]
pub struct SelectorError {
    pub selector: String,
    pub message: String,
}

/// `web` selects the log set `web`; anything with a `:` is a glob over stream ids
/// (`db01:*`, `*:/var/log/nginx/*`). No entries at all selects every stream.
#[derive(Debug, Clone, Default)]
pub struct StreamSelector {
    sets: Vec<String>,
    globs: Option<GlobSet>,
}

impl StreamSelector {
    pub fn all() -> Self {
        StreamSelector::default()
    }

    pub fn new<S: AsRef<str>>(entries: &[S]) -> Result<Self, SelectorError> {
        let mut sets = Vec::new();
        let mut globs = GlobSetBuilder::new();
        let mut any_glob = false;
        for entry in entries {
            let entry = entry.as_ref();
            if entry.contains(':') {
                let glob = Glob::new(entry).map_err(|e| SelectorError {
                    selector: entry.to_owned(),
                    message: e.kind().to_string(),
                })?;
                globs.add(glob);
                any_glob = true;
            } else {
                sets.push(entry.to_owned());
            }
        }
        let globs = if any_glob {
            Some(globs.build().map_err(|e| {
                SelectorError {
                    selector: entries
                        .iter()
                        .map(|e| e.as_ref())
                        .collect::<Vec<_>>()
                        .join(","),
                    message: e.to_string(),
                }
            })?)
        } else {
            None
        };
        Ok(StreamSelector { sets, globs })
    }

    pub fn selects_all(&self) -> bool {
        self.sets.is_empty() && self.globs.is_none()
    }

    pub fn matches(&self, stream: &Stream) -> bool {
        self.selects_all()
            || self.sets.contains(&stream.set)
            || self.globs.as_ref().is_some_and(|g| g.is_match(&stream.id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_by_set_and_glob() -> anyhow::Result<()> {
        let web = Stream::new("web01", "/var/log/app.log", "web");
        let db = Stream::new("db01", "/var/log/pg.log", "db");
        let sel = StreamSelector::new(&["web"])?;
        assert!(sel.matches(&web) && !sel.matches(&db));
        let sel = StreamSelector::new(&["db01:*"])?;
        assert!(!sel.matches(&web) && sel.matches(&db));
        let sel = StreamSelector::new(&["*:/var/log/app.log", "db"])?;
        assert!(sel.matches(&web) && sel.matches(&db));
        assert!(StreamSelector::new::<&str>(&[])?.matches(&db));
        assert!(StreamSelector::new(&["x:[z"]).is_err());
        Ok(())
    }
}
