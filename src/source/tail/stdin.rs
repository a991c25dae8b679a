//! Standard input as a stream (`cmd | supergrep -e P`): read to its end, nothing to
//! follow after (a pipe that ends has ended).

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::sync::Arc;

use super::super::{EventSender, SourceEvent};
use super::handle::{flush_partial, send_lines, Handle};
use super::{TailConfig, TailSummary};
use crate::line::Stream;

/// Standard input's name as a stream (grep's).
pub const STDIN_NAME: &str = "(standard input)";

/// Reads standard input on a thread of its own to its end (`cmd | supergrep -e P`),
/// sending complete lines as they come (one `read` at a time, so a slow writer's
/// lines are not held back to fill a buffer), then what is left of a last line.
/// Nothing to follow after: a pipe that ends has ended.
pub fn spawn_stdin(
    config: TailConfig,
    out: EventSender,
) -> io::Result<std::thread::JoinHandle<TailSummary>> {
    let (mut handle, _) = Handle::new(File::from(io::stdin().as_fd().try_clone_to_owned()?))?;
    let stream = Arc::new(Stream::new(
        config.host.clone(),
        STDIN_NAME,
        config.set.clone(),
    ));
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || read_stdin(&mut handle, &stream, &config, &out))
}

fn read_stdin(
    handle: &mut Handle,
    stream: &Arc<Stream>,
    config: &TailConfig,
    out: &EventSender,
) -> TailSummary {
    let mut summary = TailSummary::default();
    if out
        .blocking_send(SourceEvent::StreamAdded(stream.clone()))
        .is_err()
    {
        return summary;
    }
    loop {
        let mut buf = std::mem::take(&mut handle.partial);
        let held = buf.len();
        buf.resize(held + config.read_chunk, 0);
        let n = match handle.file.read(&mut buf[held..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                buf.truncate(held);
                handle.partial = buf;
                continue;
            }
            Err(e) => {
                buf.truncate(held);
                handle.partial = buf;
                crate::say!("supergrep: {STDIN_NAME}: {e}");
                summary.errors += 1;
                break;
            }
        };
        buf.truncate(held + n);
        if n == 0 {
            handle.partial = buf;
            break;
        }
        handle.offset += n as u64;
        if send_lines(handle, buf, held, stream, config, out).is_err() {
            return summary;
        }
    }
    if let Some(batch) = flush_partial(handle, stream) {
        let _ = out.blocking_send(SourceEvent::Lines(batch));
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;
    use std::sync::Mutex;

    /// The origins of the batches read from `input` (as the standard input), a byte
    /// per read, lines cut beyond `max_line`.
    fn origins(input: &[u8], max_line: usize) -> anyhow::Result<Vec<(u64, u64)>> {
        let mut f = tempfile::NamedTempFile::new().context("creating a temporary file")?;
        std::io::Write::write_all(&mut f, input).context("writing it")?;
        let file = File::open(f.path()).context("opening it")?;
        let (mut handle, _) = Handle::new(file).context("a handle on it")?;
        let config = TailConfig {
            read_chunk: 1,
            max_line,
            ..TailConfig::default()
        };
        let stream = Arc::new(Stream::new("h", STDIN_NAME, "default"));
        let (out, events) = super::super::super::events::channel(4);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let consumer = std::thread::spawn(move || {
            events.consume(move |event| {
                if let SourceEvent::Lines(b) = event {
                    let o = b.origin.map(|o| (o.start, o.end));
                    record.lock().unwrap_or_else(|p| p.into_inner()).push(o);
                }
            })
        });
        let summary = read_stdin(&mut handle, &stream, &config, &out);
        drop(out);
        consumer
            .join()
            .map_err(|_| anyhow::anyhow!("the consumer panicked"))?;
        assert_eq!(summary.errors, 0);
        let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter()
            .map(|o| o.context("a batch without its origin"))
            .collect()
    }

    /// A batch starts where its first line did, in an earlier read too (it said
    /// where the read began: the hub's trim of a re-sent overlap did not apply).
    #[test]
    fn a_batch_starts_where_its_first_line_does() -> anyhow::Result<()> {
        assert_eq!(origins(b"ab\ncd\n", 64)?, [(0, 3), (3, 6)]);
        // A long line's cut bytes are counted before the next one.
        assert_eq!(origins(b"abcd\nef\ngh", 2)?, [(0, 5), (5, 8), (8, 10)]);
        Ok(())
    }
}
