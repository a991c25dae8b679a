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
        let start = handle.delivered_offset();
        handle.offset += n as u64;
        if send_lines(handle, buf, held, start, stream, config, out).is_err() {
            return summary;
        }
    }
    if let Some(batch) = flush_partial(handle, stream) {
        let _ = out.blocking_send(SourceEvent::Lines(batch));
    }
    summary
}
