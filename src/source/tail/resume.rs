//! Resuming where an earlier run left off (an agent's `--state-file`): what is noted
//! of a delivered file, and, at start-up, where to read a file found at a path that
//! was noted. Only the first open of a path at start-up asks; everything after is
//! the live tailer's.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{DirEntryExt, FileExt, MetadataExt};
use std::path::Path;

use super::handle::Handle;

/// A file and how far it was delivered.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Resume {
    pub dev: u64,
    pub ino: u64,
    /// The file's birth time ([`crate::line::born`]): with it, a new file given the
    /// inode of the one noted is not taken for it. Absent (older state files, or
    /// none kept by the filesystem): device and inode decide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub born: Option<u64>,
    pub offset: u64,
    /// The file's bytes just before `offset` (up to `RESUME_CHECK_BYTES`), in hex.
    /// Other bytes there later mean the file was truncated and written again
    /// meanwhile (copytruncate while an agent was stopped): then it is read from its
    /// start, as the live tailer does. Absent (older state files): not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// The file's [`crate::line::Origin::epoch`] at `offset`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub epoch: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// How many bytes before a resume offset are kept to recognise the file's content.
const RESUME_CHECK_BYTES: u64 = 32;

impl Resume {
    /// Where a batch read from `origin` leaves its file: delivered up to its end.
    /// (`before` is noted from the file when the state is saved.)
    pub fn delivered(origin: &crate::line::Origin) -> Resume {
        Resume {
            dev: origin.dev,
            ino: origin.ino,
            born: origin.born,
            offset: origin.end,
            before: None,
            epoch: origin.epoch,
        }
    }

    /// Whether `meta` is the file this is about.
    pub fn is(&self, meta: &Metadata) -> bool {
        self.dev == meta.dev()
            && self.ino == meta.ino()
            && crate::line::same_birth(self.born, crate::line::born(meta))
    }

    /// Notes the bytes before `offset` as `file` (the file this is about) holds them.
    pub fn note_before(&mut self, file: &File) -> io::Result<()> {
        self.before = Some(hex(&bytes_before(file, self.offset)?));
        Ok(())
    }

    /// Whether `file` still holds, before `offset`, the bytes noted then.
    fn same_before(&self, file: &File) -> bool {
        match &self.before {
            None => true,
            Some(noted) => bytes_before(file, self.offset).is_ok_and(|b| hex(&b) == *noted),
        }
    }

    /// Where to start reading `file` (`meta` its metadata), found at the path this
    /// was noted for.
    pub(super) fn start(&self, file: &File, meta: &Metadata) -> Start {
        let same_file = self.is(meta);
        if same_file && self.offset <= meta.len() && self.same_before(file) {
            Start::Continue {
                offset: self.offset,
                epoch: self.epoch,
            }
        } else if same_file {
            Start::Over {
                epoch: self.epoch.saturating_add(1),
            }
        } else {
            Start::OtherFile
        }
    }
}

/// Where a file that was read before starts now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Start {
    /// The same file: on from where it was left.
    Continue { offset: u64, epoch: u32 },
    /// The same file, shrunk or truncated and written again meanwhile: its content
    /// starts over (from 0), past all that was shipped of it.
    Over { epoch: u32 },
    /// Another file by now (or other content): all of it is new, from 0. The one
    /// noted was likely rotated while we were down: see [`rotated_away`].
    OtherFile,
}

/// The file `resume` was about is no longer at `path` (rotated while we were not
/// running, by rename): looks for it by inode next to `path` (`app.log.1`), and if
/// it grew past where we were, a handle on it from there, to be read as a
/// rotated-away handle before the new file. (Gone, or moved elsewhere: nothing.)
pub(super) fn rotated_away(path: &Path, resume: &Resume) -> Option<Handle> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let entries = std::fs::read_dir(dir).ok()?;
    let found = entries
        .flatten()
        .find(|e| e.ino() == resume.ino && e.path() != path)?;
    let (mut handle, meta) = Handle::open(&found.path()).ok()?;
    if !resume.is(&meta) || meta.len() <= resume.offset || handle.seek(resume.offset).is_err() {
        return None;
    }
    tracing::debug!(path = %path.display(), rotated = %found.path().display(), offset = resume.offset, "resuming in the file rotated away meanwhile");
    Some(handle)
}

/// The up to `RESUME_CHECK_BYTES` bytes of `file` before `offset`.
fn bytes_before(file: &File, offset: u64) -> io::Result<Vec<u8>> {
    let n = offset.min(RESUME_CHECK_BYTES);
    let mut buf = vec![0; n as usize];
    file.read_exact_at(&mut buf, offset - n)?;
    Ok(buf)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    /// A file holding `bytes`, opened, its metadata, and a note of it at `offset`.
    fn noted(
        dir: &Path,
        name: &str,
        bytes: &[u8],
        offset: u64,
    ) -> anyhow::Result<(File, Metadata, Resume)> {
        let path = dir.join(name);
        std::fs::write(&path, bytes).context("writing a test file")?;
        let file = File::open(&path).context("opening the test file")?;
        let meta = file.metadata().context("the test file's metadata")?;
        let mut resume = Resume {
            dev: meta.dev(),
            ino: meta.ino(),
            born: crate::line::born(&meta),
            offset,
            before: None,
            epoch: 3,
        };
        resume
            .note_before(&file)
            .context("noting the bytes before")?;
        Ok((file, meta, resume))
    }

    #[test]
    fn the_same_file_continues_and_a_changed_one_starts_over() -> anyhow::Result<()> {
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        let (file, meta, resume) = noted(dir.path(), "a.log", b"one\ntwo\n", 4)?;
        let go_on = Start::Continue {
            offset: 4,
            epoch: 3,
        };
        assert_eq!(resume.start(&file, &meta), go_on);
        // An older state file, without the bytes before: not checked.
        let unchecked = Resume {
            before: None,
            ..resume.clone()
        };
        assert_eq!(unchecked.start(&file, &meta), go_on);
        // Truncated and written again to a greater length (copytruncate while down):
        // the bytes before the offset differ.
        std::fs::write(dir.path().join("a.log"), b"ONE\nTWO\nTHREE\n").context("refilling")?;
        let meta = file.metadata().context("metadata")?;
        assert_eq!(resume.start(&file, &meta), Start::Over { epoch: 4 });
        // Shorter than the offset.
        std::fs::write(dir.path().join("a.log"), b"x").context("truncating")?;
        let meta = file.metadata().context("metadata")?;
        assert_eq!(unchecked.start(&file, &meta), Start::Over { epoch: 4 });
        // Another file at the path.
        let (other, other_meta, _) = noted(dir.path(), "b.log", b"one\ntwo\n", 4)?;
        assert_eq!(resume.start(&other, &other_meta), Start::OtherFile);
        // Another file given the inode of the one noted: another birth time.
        if let Some(born) = resume.born {
            let reborn = Resume {
                born: Some(born + 1),
                ..resume.clone()
            };
            assert_eq!(reborn.start(&file, &meta), Start::OtherFile);
        }
        Ok(())
    }

    #[test]
    fn a_file_rotated_away_meanwhile_is_found_next_to_its_path() -> anyhow::Result<()> {
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        let path = dir.path().join("app.log");
        let (_file, _, resume) = noted(dir.path(), "app.log", b"one\ntwo\n", 4)?;
        // Not rotated: the noted file is at the path itself, nothing elsewhere.
        assert!(rotated_away(&path, &resume).is_none());
        std::fs::rename(&path, dir.path().join("app.log.1")).context("rotating")?;
        std::fs::write(&path, b"new\n").context("writing the new file")?;
        let handle = rotated_away(&path, &resume).context("the rotated file not found")?;
        assert_eq!((handle.id(), handle.offset), ((resume.dev, resume.ino), 4));
        // Not grown past the offset: nothing left to read of it.
        let done = Resume {
            offset: 8,
            ..resume.clone()
        };
        assert!(rotated_away(&path, &done).is_none());
        Ok(())
    }
}
