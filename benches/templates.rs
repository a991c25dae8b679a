//! Grouping accuracy (GA, Zhu et al. ICSE-SEIP 2019) of the template miner on
//! the Loghub 2k samples against their ground truth, on the raw lines as the
//! tailer gives them (`\r` stripped), with one configuration for all files;
//! and the same for plain Drain (no header, no masks) in the same run.
//!
//! `SUPERGREP_CORPUS=/work/shared/corpus cargo bench --bench templates`
//! (or the corpus dir as first argument): expects `loghub/NAME_2k.log` and
//! `loghub-truth/NAME_2k.log_structured.csv`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use supergrep::template::{Miner, MinerConfig, TemplateId};

/// The EventId column of each record (the one before last), quotes handled.
fn truth_events(csv: &str) -> Vec<String> {
    let mut rows = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = csv.chars().peekable();
    let end_row = |fields: &mut Vec<String>, rows: &mut Vec<String>| {
        let n = fields.len();
        if n >= 2 {
            rows.push(fields[n - 2].clone());
        }
        fields.clear();
    };
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => cur.push(c),
            (false, '"') => quoted = true,
            (false, ',') => fields.push(std::mem::take(&mut cur)),
            (false, '\n') => {
                fields.push(std::mem::take(&mut cur));
                end_row(&mut fields, &mut rows);
            }
            (false, '\r') => {}
            (false, c) => cur.push(c),
        }
    }
    if !cur.is_empty() || !fields.is_empty() {
        fields.push(cur);
        end_row(&mut fields, &mut rows);
    }
    rows.remove(0); // header row
    rows
}

/// GA: a line counts if the lines sharing its template are exactly the lines
/// sharing its true event.
fn grouping_accuracy(pred: &[TemplateId], truth: &[String]) -> f64 {
    let mut by_truth: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut by_pred: HashMap<TemplateId, Vec<usize>> = HashMap::new();
    for (i, (p, t)) in pred.iter().zip(truth).enumerate() {
        by_truth.entry(t).or_default().push(i);
        by_pred.entry(*p).or_default().push(i);
    }
    let ok = pred
        .iter()
        .zip(truth)
        .filter(|(p, t)| by_truth.get(t.as_str()) == by_pred.get(*p))
        .count();
    ok as f64 / truth.len().max(1) as f64
}

struct Run {
    ga: f64,
    templates: usize,
    ns_per_line: f64,
}

fn run(cfg: &MinerConfig, lines: &[&str], truth: &[String]) -> Run {
    // Best of a few passes for the time, each on a fresh miner.
    let mut best = f64::MAX;
    let mut ids = Vec::new();
    let mut miner = Miner::new(cfg.clone());
    for _ in 0..5 {
        miner = Miner::new(cfg.clone());
        let start = Instant::now();
        ids = lines
            .iter()
            .map(|l| miner.observe(l).id)
            .collect::<Vec<_>>();
        best = best.min(start.elapsed().as_nanos() as f64 / lines.len().max(1) as f64);
    }
    let pred: Vec<TemplateId> = ids.iter().map(|&id| miner.resolve(id)).collect();
    Run {
        ga: grouping_accuracy(&pred, truth),
        templates: miner.len(),
        ns_per_line: best,
    }
}

fn main() -> anyhow::Result<()> {
    let dir: PathBuf = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .or_else(|| std::env::var("SUPERGREP_CORPUS").ok())
        .map(PathBuf::from)
        .ok_or_else(|| {
            anyhow::anyhow!("give the corpus dir: SUPERGREP_CORPUS or first argument")
        })?;
    let mut names: Vec<String> = std::fs::read_dir(dir.join("loghub"))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix("_2k.log").map(str::to_owned))
        .collect();
    names.sort();
    let configs = [
        ("supergrep", MinerConfig::default()),
        ("plain Drain", MinerConfig::plain_drain()),
    ];
    let mut sums = [0.0f64; 2];
    let mut ns = [0.0f64; 2];
    println!(
        "{:<10} {:>6} | {:>6} {:>5} {:>7} | {:>6} {:>5} {:>7}",
        "file", "events", "GA", "tmpl", "ns/line", "GA", "tmpl", "ns/line"
    );
    for name in &names {
        let raw = read(&dir.join("loghub").join(format!("{name}_2k.log")))?;
        // Lines as the tailer gives them: split at \n, a trailing \r dropped.
        let lines: Vec<&str> = raw
            .split_terminator('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .collect();
        let truth = truth_events(&read(
            &dir.join("loghub-truth")
                .join(format!("{name}_2k.log_structured.csv")),
        )?);
        anyhow::ensure!(
            lines.len() == truth.len(),
            "{name}: {} lines but {} truth rows",
            lines.len(),
            truth.len()
        );
        let events = truth.iter().collect::<std::collections::HashSet<_>>().len();
        print!("{name:<10} {events:>6}");
        for (k, (_, cfg)) in configs.iter().enumerate() {
            let r = run(cfg, &lines, &truth);
            sums[k] += r.ga;
            ns[k] += r.ns_per_line;
            print!(" | {:>6.3} {:>5} {:>7.0}", r.ga, r.templates, r.ns_per_line);
        }
        println!();
    }
    let n = names.len().max(1) as f64;
    println!(
        "{:<10} {:>6} | {:>6.3} {:>5} {:>7.0} | {:>6.3} {:>5} {:>7.0}",
        "mean",
        "",
        sums[0] / n,
        "",
        ns[0] / n,
        sums[1] / n,
        "",
        ns[1] / n
    );
    println!(
        "columns: {} | {}; GA gain {:.2}x",
        configs[0].0,
        configs[1].0,
        sums[0] / sums[1].max(f64::MIN_POSITIVE)
    );
    Ok(())
}

fn read(p: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
}
