//! Opening a path we were given without waiting on it. `open()` of a FIFO waits
//! for a writer (a regular file swapped for a FIFO by `rename` between a `stat` and
//! the `open` hung the tailer, and with it every followed file), and a terminal
//! opened without `O_NOCTTY` can become the controlling one. So paths are opened
//! with `O_NONBLOCK | O_NOCTTY`, and what was opened is judged by its handle
//! (`fstat`), not by an earlier look at the path.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use rustix::fs::{Mode, OFlags};

/// What a path that names neither a regular file nor a directory is refused with.
pub const NOT_REGULAR: &str = "is not a regular file (a pipe, socket or device?)";

/// Opens `path` for reading without waiting, and returns the handle with its own
/// metadata, whatever the file is (the caller decides; a FIFO opened so does not
/// block reads until `O_NONBLOCK` is cleared).
fn open_nonblocking(path: &Path) -> io::Result<(File, Metadata)> {
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let file = File::from(rustix::fs::open(path, flags, Mode::empty())?);
    let meta = file.metadata()?;
    Ok((file, meta))
}

/// [`open`]'s refusal of a path that is neither a regular file nor a directory,
/// carried in an `InvalidInput` [`io::Error`] so that it is recognised by type.
#[derive(Debug, thiserror::Error)]
#[error("{NOT_REGULAR}")]
struct NotRegular;

/// Opens `path` for reading if it is a regular file or a directory (as the handle
/// says); anything else is refused with `InvalidInput` ([`NOT_REGULAR`]). The handle
/// blocks as usual (`O_NONBLOCK` is cleared).
pub fn open(path: &Path) -> io::Result<(File, Metadata)> {
    let (file, meta) = open_nonblocking(path)?;
    if !meta.is_file() && !meta.is_dir() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, NotRegular));
    }
    let flags = rustix::fs::fcntl_getfl(&file)?;
    rustix::fs::fcntl_setfl(&file, flags - OFlags::NONBLOCK)?;
    Ok((file, meta))
}

/// Whether `e` is [`open`]'s refusal of a file that is not regular.
pub fn is_not_regular(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<NotRegular>())
}

/// The regular file `path`, opened for reading (a directory or anything else is
/// refused).
fn open_regular(path: &Path) -> io::Result<File> {
    let (file, meta) = open(path)?;
    if meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "is a directory",
        ));
    }
    Ok(file)
}

/// The whole of the regular file `path`, as UTF-8 (a directory or anything else is
/// refused).
pub fn read_to_string(path: &Path) -> io::Result<String> {
    let mut text = String::new();
    open_regular(path)?.read_to_string(&mut text)?;
    Ok(text)
}

/// The whole of the regular file `path`, as bytes (a directory or anything else
/// is refused).
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    open_regular(path)?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Like [`read_to_string`], and a pipe is read too (`-f <(cmd)`, `-f /dev/stdin`
/// from a pipe): opened without waiting, a FIFO that no one writes reads as empty
/// instead of hanging.
pub fn read_to_string_or_pipe(path: &Path) -> io::Result<String> {
    let (mut file, meta) = open_nonblocking(path)?;
    if !meta.is_file() && !meta.file_type().is_fifo() {
        let why = if meta.is_dir() {
            io::Error::new(io::ErrorKind::IsADirectory, "is a directory")
        } else {
            io::Error::new(io::ErrorKind::InvalidInput, NOT_REGULAR)
        };
        return Err(why);
    }
    let flags = rustix::fs::fcntl_getfl(&file)?;
    rustix::fs::fcntl_setfl(&file, flags - OFlags::NONBLOCK)?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok(text)
}

/// Creates (or truncates) `path` for writing, without waiting on a FIFO put there
/// (opening one for writing fails at once instead); anything but a regular file is
/// refused.
pub fn create(path: &Path) -> io::Result<File> {
    open_for_writing(path, std::fs::OpenOptions::new().write(true).truncate(true))
}

/// Opens `path` for appending, creating it if need be; like [`create`], a FIFO or
/// anything but a regular file is refused without waiting.
pub fn append(path: &Path) -> io::Result<File> {
    open_for_writing(path, std::fs::OpenOptions::new().append(true))
}

fn open_for_writing(path: &Path, options: &mut std::fs::OpenOptions) -> io::Result<File> {
    let file = options
        .create(true)
        .custom_flags((OFlags::NONBLOCK | OFlags::NOCTTY).bits() as i32)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, NOT_REGULAR));
    }
    let flags = rustix::fs::fcntl_getfl(&file)?;
    rustix::fs::fcntl_setfl(&file, flags - OFlags::NONBLOCK)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    // On a FIFO: tests/fifo.rs, `every_opener_given_a_fifo_returns_at_once`
    // (under a watchdog, so that a regression fails rather than hangs).

    #[test]
    fn a_regular_file_is_read_and_a_directory_refused() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("f");
        std::fs::write(&file, "text\n")?;
        assert_eq!(read_to_string(&file)?, "text\n");
        let err = read_to_string(dir.path())
            .err()
            .context("a directory was read")?;
        assert_eq!(err.kind(), io::ErrorKind::IsADirectory);
        Ok(())
    }
}
