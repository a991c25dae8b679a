//! Log files as the tests write them: appended the way a logging program does, created
//! empty so that they can be followed from the start, and the fixtures.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Appends to a file the way a logging program does (O_APPEND, one write per call).
pub fn append(path: &Path, text: &str) {
    append_bytes(path, text.as_bytes());
}

/// [`append`] for bytes that need not be UTF-8.
pub fn append_bytes(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

/// `lines` joined, each ending in `\n`.
pub fn joined<S: AsRef<str>>(lines: &[S]) -> String {
    let mut s = String::new();
    for l in lines {
        s.push_str(l.as_ref());
        s.push('\n');
    }
    s
}

/// Creates (or empties) `path`; returns it.
pub fn empty(path: PathBuf) -> PathBuf {
    std::fs::write(&path, "").unwrap();
    path
}

/// Empty files `names` in `dir`.
pub fn empty_files(dir: &Path, names: &[&str]) -> Vec<PathBuf> {
    names.iter().map(|n| empty(dir.join(n))).collect()
}

/// A log file, created empty, in a temporary directory of its own (removed on drop).
pub struct TempLog {
    tmp: tempfile::TempDir,
    pub path: PathBuf,
}

impl TempLog {
    pub fn new(name: &str) -> TempLog {
        let tmp = tempfile::tempdir().unwrap();
        let path = empty(tmp.path().join(name));
        TempLog { tmp, path }
    }

    /// The path as an argument.
    pub fn s(&self) -> &str {
        self.path.to_str().unwrap()
    }

    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }
}

/// The bytes of `tests/fixtures/NAME` (see the README there).
pub fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Copies a fixture into `dir` under the same name; returns its bytes.
pub fn copy_fixture(dir: &Path, name: &str) -> Vec<u8> {
    let bytes = fixture(name);
    std::fs::write(dir.join(name), &bytes).unwrap();
    bytes
}
