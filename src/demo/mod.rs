//! `supergrep serve --demo`: real sample log lines (Loghub, see README.md here)
//! appended at a steady rate to log files in a temporary directory, which the hub
//! then follows with its ordinary tailer. Files are rotated (rename + create) as
//! they grow, so the demo also shows rotation being followed.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::shutdown::Handle;
use crate::source::tail::Stop;

const SAMPLES: &str = include_str!("samples.tsv");
/// Lines per second, over all files.
const RATE: u64 = 20;
const ROTATE_AT: u64 = 4 << 20;

/// The demo's writer: it ends when stopped, and the hub's stop waits for it.
pub struct Writer {
    pub stop: Stop,
    pub thread: std::thread::JoinHandle<()>,
}

/// Starts writing demo logs into `dir` (which exists, and is the demo's alone) on
/// a thread that holds `running` until it is stopped; returns the glob that names
/// them, and the writer.
pub fn start(dir: &Path, running: Handle) -> std::io::Result<(String, Writer)> {
    let mut by_file: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for row in SAMPLES.lines() {
        if let Some((file, line)) = row.split_once('\t') {
            by_file.entry(file).or_default().push(line);
        }
    }
    let files: Vec<(PathBuf, Vec<String>)> = by_file
        .into_iter()
        .map(|(f, lines)| (dir.join(f), lines.into_iter().map(str::to_owned).collect()))
        .collect();
    let stop = Stop::new()?;
    let until = stop.clone();
    let thread =
        crate::shutdown::spawn_thread("demo-writer", running, move || write_until(files, &until))?;
    let glob = dir.join("*.log").to_string_lossy().into_owned();
    Ok((glob, Writer { stop, thread }))
}

fn write_until(files: Vec<(PathBuf, Vec<String>)>, stop: &Stop) {
    let mut next = vec![0usize; files.len()];
    let mut written = vec![0u64; files.len()];
    let mut tick = 0usize;
    while !stop.is_stopped() {
        // Busier files get more lines, roughly as in real life.
        let total: usize = files.iter().map(|(_, l)| l.len()).sum();
        let mut pick = tick % total.max(1);
        let i = files
            .iter()
            .position(|(_, l)| {
                if pick < l.len() {
                    true
                } else {
                    pick -= l.len();
                    false
                }
            })
            .unwrap_or(0);
        tick += 7919; // a prime stride spreads the picks
        let (path, lines) = &files[i];
        if lines.is_empty() {
            continue;
        }
        let line = &lines[next[i] % lines.len()];
        next[i] += 1;
        if written[i] > ROTATE_AT {
            let _ = std::fs::rename(path, path.with_extension("log.1"));
            written[i] = 0;
        }
        // Not waiting on a FIFO put there: the directory may be someone else's.
        let result = crate::regular_file::append(path)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = result {
            tracing::warn!("demo writer: {}: {e}", path.display());
            stop.sleep(Duration::from_secs(1));
        }
        written[i] += line.len() as u64 + 1;
        stop.sleep(Duration::from_millis(1000 / RATE));
    }
}
