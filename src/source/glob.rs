//! The paths a tailer follows: plain files, and globs that also pick up files
//! created later.

use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};

/// One PATH argument.
#[derive(Debug, Clone)]
pub enum Target {
    /// A single file, followed even before it exists.
    File(PathBuf),
    /// Every file matching `matcher` below `base`.
    Glob {
        pattern: String,
        base: PathBuf,
        matcher: GlobMatcher,
        /// How deep below `base` matches can be (`None` for `**`).
        max_depth: Option<usize>,
    },
}

/// A PATH argument taken for a glob that is not one (`[` unclosed, say).
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid glob {pattern:?}: {kind}")]
pub struct InvalidGlob {
    pub pattern: String,
    pub kind: globset::ErrorKind,
}

impl Target {
    /// A path containing glob characters (and naming no existing file) is a glob.
    pub fn parse(arg: &str) -> Result<Target, InvalidGlob> {
        let is_glob = arg.contains(['*', '?', '[', '{']) && !Path::new(arg).exists();
        if !is_glob {
            return Ok(Target::File(PathBuf::from(arg)));
        }
        let matcher = GlobBuilder::new(arg)
            .literal_separator(true)
            .build()
            .map_err(|e| InvalidGlob {
                pattern: arg.to_owned(),
                kind: e.kind().clone(),
            })?
            .compile_matcher();
        let mut base = PathBuf::new();
        let mut rest = 0usize;
        let mut recursive = false;
        let mut in_base = true;
        for comp in Path::new(arg).components() {
            let text = comp.as_os_str().to_string_lossy();
            if in_base && !text.contains(['*', '?', '[', '{']) {
                base.push(comp);
                continue;
            }
            in_base = false;
            if let Component::Normal(_) = comp {
                rest += 1;
                recursive |= text.contains("**");
            }
        }
        if base.as_os_str().is_empty() {
            base.push(".");
        }
        Ok(Target::Glob {
            pattern: arg.to_owned(),
            base,
            matcher,
            max_depth: (!recursive).then_some(rest),
        })
    }

    /// The directory whose changes can add or remove files of this target.
    pub fn watch_dir(&self) -> PathBuf {
        match self {
            Target::File(p) => match p.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            },
            Target::Glob { base, .. } => base.clone(),
        }
    }

    /// How many directory levels below `watch_dir` can hold its files (`None`: any,
    /// for `**`).
    pub fn watch_depth(&self) -> Option<usize> {
        match self {
            Target::File(_) => Some(0),
            Target::Glob { max_depth, .. } => max_depth.map(|d| d.saturating_sub(1)),
        }
    }

    /// The files that match now, in no particular order (a plain file: itself,
    /// whether or not it exists).
    pub fn expand(&self) -> Vec<PathBuf> {
        match self {
            Target::File(p) => vec![p.clone()],
            Target::Glob {
                base,
                matcher,
                max_depth,
                ..
            } => {
                let mut found = Vec::new();
                walk(base, matcher, max_depth.unwrap_or(usize::MAX), &mut found);
                found
            }
        }
    }
}

fn walk(dir: &Path, matcher: &GlobMatcher, depth: usize, found: &mut Vec<PathBuf>) {
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = dir.join(entry.file_name());
        // Follows symlinks, as a shell glob would. The entry's own type costs no stat
        // (this walk runs on every discovery): only symlinks are looked through.
        let is_dir = match entry.file_type() {
            Ok(t) if t.is_symlink() => match std::fs::metadata(&path) {
                Ok(meta) => meta.is_dir(),
                Err(_) => continue,
            },
            Ok(t) => t.is_dir(),
            Err(_) => continue,
        };
        if is_dir {
            walk(&path, matcher, depth - 1, found);
        } else if matcher.is_match(normalize(&path)) {
            found.push(normalize(&path).to_path_buf());
        }
    }
}

/// `./x.log` from a relative base must still match the glob `x*.log`.
fn normalize(path: &Path) -> &Path {
    path.strip_prefix(".").unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn splits_base_and_finds_files() -> anyhow::Result<()> {
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        let d = dir.path();
        std::fs::create_dir(d.join("sub")).context("creating sub")?;
        for f in ["a.log", "b.txt", "sub/c.log"] {
            std::fs::write(d.join(f), "x\n").with_context(|| format!("writing {f}"))?;
        }
        let sorted = |t: &Target| {
            let mut found = t.expand();
            found.sort();
            found
        };
        let t = parse(&format!("{}/*.log", d.display()))?;
        assert_eq!(t.watch_dir(), d);
        assert_eq!(sorted(&t), [d.join("a.log")]);
        let t = parse(&format!("{}/**/*.log", d.display()))?;
        assert_eq!(t.watch_depth(), None);
        assert_eq!(sorted(&t), [d.join("a.log"), d.join("sub/c.log")]);
        let t = parse(&format!("{}/s*/*.log", d.display()))?;
        assert_eq!(sorted(&t), [d.join("sub/c.log")]);
        assert_eq!(t.watch_depth(), Some(1));
        assert!(matches!(parse("/var/log/syslog")?, Target::File(_)));
        Ok(())
    }

    /// [`Target::parse`], its message made an error naming the argument.
    fn parse(arg: &str) -> anyhow::Result<Target> {
        Target::parse(arg).with_context(|| format!("parsing {arg:?}"))
    }
}
