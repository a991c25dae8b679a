//! How far the hub has each file an agent ships, so that a batch sent again is not
//! ingested twice. An agent re-sends what the hub had not acknowledged when a
//! connection broke, and after a restart it reads on from its last acknowledged
//! offset: both may carry lines the hub has. This outlives agent sessions (a re-send
//! comes on the next connection), so the server holds it, not a session.
//!
//! A file is named by device, inode and birth time ([`crate::line::born`]). Without
//! the birth time (older agents, filesystems that keep none) a freed inode given to
//! the file that replaces a rotated one would make that file's lines look like ones
//! the hub has: ext4 does this at once, and a soak run lost 38,964 of one agent's
//! 60,071 lines that way. There a file that starts at offset 0 after another file of
//! the same stream is taken as new.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;

use crate::line::Origin;

/// Entries kept before all are forgotten: one per file ever shipped, and a re-send
/// older than that many files is unlikely.
const MAX_FILES: usize = 100_000;

#[derive(Default)]
pub struct ReceivedFiles {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Per stream and file: the position up to which the hub has its lines.
    upto: HashMap<(String, u64, u64, Option<u64>), u64>,
    /// Per stream: the file (device, inode) its last batch came from.
    last: HashMap<String, (u64, u64)>,
}

impl ReceivedFiles {
    /// Whether lines `origin` of stream `stream_id` are new to the hub (and from now
    /// on it has them). A batch sent again is not; one that overlaps what the hub has
    /// loses, from `bytes`, the lines the hub has.
    pub fn admit(&self, stream_id: &str, origin: Origin, bytes: &mut Bytes) -> bool {
        let mut inner = match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if inner.upto.len() >= MAX_FILES {
            inner.upto.clear();
            inner.last.clear();
        }
        let file = (origin.dev, origin.ino);
        let key = (stream_id.to_owned(), origin.dev, origin.ino, origin.born);
        let after_another = match inner.last.get_mut(stream_id) {
            Some(last) => std::mem::replace(last, file) != file,
            None => {
                inner.last.insert(stream_id.to_owned(), file);
                false
            }
        };
        if origin.born.is_none() && origin.start == 0 && after_another {
            inner.upto.remove(&key);
        }
        match inner.upto.get_mut(&key) {
            Some(have) if origin.end <= *have => false,
            Some(have) => {
                if origin.start < *have {
                    let skip = (*have - origin.start) as usize;
                    // Bytes map onto the text only when it is the file's bytes as they
                    // were (nothing replaced or cut); the skipped part must end a line.
                    let same_bytes = bytes.len() as u64 == origin.end - origin.start;
                    if same_bytes && skip > 0 && bytes.get(skip - 1) == Some(&b'\n') {
                        let _ = bytes.split_to(skip);
                    }
                }
                *have = origin.end;
                true
            }
            None => {
                inner.upto.insert(key, origin.end);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(ino: u64, born: Option<u64>, start: u64, end: u64) -> Origin {
        Origin {
            dev: 1,
            ino,
            born,
            epoch: 0,
            start,
            end,
        }
    }

    fn admit(files: &ReceivedFiles, o: Origin, text: &'static str) -> Option<Bytes> {
        let mut bytes = Bytes::from_static(text.as_bytes());
        files.admit("h:/a.log", o, &mut bytes).then_some(bytes)
    }

    #[test]
    fn a_batch_sent_again_is_not_admitted_and_an_overlap_is_trimmed() {
        let files = ReceivedFiles::default();
        assert!(admit(&files, origin(7, Some(5), 0, 4), "one\n").is_some());
        assert_eq!(admit(&files, origin(7, Some(5), 0, 4), "one\n"), None);
        let rest = admit(&files, origin(7, Some(5), 0, 8), "one\ntwo\n");
        assert_eq!(rest.as_deref(), Some(&b"two\n"[..]));
    }

    /// The file that replaced a rotated one got the inode of the one before: another
    /// birth time, so all of it is new.
    #[test]
    fn a_new_file_with_a_reused_inode_is_new() {
        let files = ReceivedFiles::default();
        assert!(admit(&files, origin(7, Some(5), 0, 8), "one\ntwo\n").is_some());
        assert!(admit(&files, origin(8, Some(6), 0, 4), "new\n").is_some());
        assert!(admit(&files, origin(7, Some(9), 0, 4), "ino\n").is_some());
        // Without birth times: starting at 0 after another file of the stream.
        let files = ReceivedFiles::default();
        assert!(admit(&files, origin(7, None, 0, 8), "one\ntwo\n").is_some());
        assert!(admit(&files, origin(8, None, 0, 4), "new\n").is_some());
        assert!(admit(&files, origin(7, None, 0, 4), "ino\n").is_some());
        // ... but a re-send of the same file, from 0, is still one.
        assert_eq!(admit(&files, origin(7, None, 0, 4), "ino\n"), None);
    }
}
