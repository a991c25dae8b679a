use super::*;
use proptest::prelude::*;

/// Real lines of each header shape (Loghub; see tests/fixtures/templates/README.md).
const FIXTURE: &str = include_str!("../../tests/fixtures/templates/headers.tsv");

/// The message of each fixture line, as Loghub's ground truth cuts it.
const MESSAGES: &[&str] = &[
    "printFreezingDisplayLogsopening app wtoken",
    "acquire lock=233570404, flags=0x1",
    "workerEnv.init() ok /etc/httpd/conf/workers2.properties",
    "mod_jk child workerEnv in error state 6",
    "PacketResponder 1 for block blk_38865049064139660 terminating",
    "PacketResponder 0 for block blk_-6952295868487656571 terminating",
    "authentication failure; logname= uid=0",
    "check pass; user unknown",
    "reverse mapping checking getaddrinfo for ns.marryaldkfaczcz.com",
    "Invalid user webmaster from 173.234.31.186",
    "10.11.10.1 \"GET /v2/54fadb412c4e40cdbaed9335e4c35a9e/servers/detail HTTP/1.1\"",
    "10.11.10.1 \"GET /v2/54fadb412c4e40cdbaed9335e4c35a9e/servers/detail HTTP/1.1\"",
    "Registered signal handlers for [TERM, HUP, INT]",
    "Changing view acls to: yarn,curi",
    "Notification time out: 3200",
    "Received connection request /10.10.34.11:45307",
];

fn fixture_lines() -> anyhow::Result<Vec<(&'static str, &'static str)>> {
    FIXTURE
        .lines()
        .map(|l| {
            l.split_once('\t')
                .ok_or_else(|| anyhow::anyhow!("no tab in {l:?}"))
        })
        .collect()
}

#[test]
fn header_of_each_corpus_shape_is_cut_off() -> anyhow::Result<()> {
    let lines = fixture_lines()?;
    anyhow::ensure!(
        lines.len() == MESSAGES.len(),
        "fixture has {} lines",
        lines.len()
    );
    for ((dataset, line), want) in lines.iter().zip(MESSAGES) {
        let got = header::content(line);
        anyhow::ensure!(
            got.starts_with(want),
            "{dataset}: got {got:?}, want {want:?}…"
        );
    }
    Ok(())
}

#[test]
fn a_line_without_header_is_all_message() {
    for line in ["connection refused", "Failed password for root", "", "   "] {
        assert_eq!(header::content(line), line.trim_start());
    }
}

#[test]
fn values_are_masked() {
    assert_eq!(tokens::mask("blk_-6952295868487656571"), "<*>");
    assert_eq!(tokens::mask("uid=0"), "uid=<*>");
    assert_eq!(tokens::mask("[173.234.31.186]"), "[<*>]");
    assert_eq!(tokens::mask("ready=true,policy=3"), "ready=true,policy=<*>");
    assert_eq!(tokens::mask("3200."), "<*>.");
    assert_eq!(tokens::mask("/var/log/messages"), "<*>");
    assert_eq!(tokens::mask("deadbeefcafe"), "<*>");
    assert_eq!(tokens::mask("terminating"), "terminating");
    assert_eq!(tokens::mask("10.0.0.1,10.0.0.2,10.0.0.3"), "<*>");
    assert_eq!(tokens::mask("(1;2)"), "(<*>)");
}

fn run(lines: &[&str]) -> Vec<TemplateId> {
    let mut m = Miner::new(MinerConfig::default());
    let ids: Vec<TemplateId> = lines.iter().map(|l| m.observe(l).id).collect();
    ids.into_iter().map(|id| m.resolve(id)).collect()
}

#[test]
fn same_input_same_ids_in_a_fresh_miner() -> anyhow::Result<()> {
    let lines: Vec<&str> = fixture_lines()?.into_iter().map(|(_, l)| l).collect();
    let a = run(&lines);
    let b = run(&lines);
    assert_eq!(a, b);
    // The two HDFS lines are one event; the two OpenStack lines too.
    assert_eq!(a[4], a[5]);
    assert_eq!(a[10], a[11]);
    assert_ne!(a[4], a[10]);
    Ok(())
}

#[test]
fn ids_are_derived_from_the_template_so_they_survive_a_restart() {
    // Fixed value: the id is a function of the template alone, the same in
    // every process and build (no randomly seeded hasher, no saved state).
    let mut m = Miner::new(MinerConfig::default());
    let id = m
        .observe("081109 203615 148 INFO dfs.DataNode: Served block blk_1 to /10.0.0.1")
        .id;
    let t = m.template(id).map(|t| t.text);
    assert_eq!(t.as_deref(), Some("Served block <*> to <*>"));
    assert_eq!(
        id,
        drain::template_id(&["Served", "block", "<*>", "to", "<*>"])
    );
    assert_eq!(id.to_string().len(), 16);
    let mut after_restart = Miner::new(MinerConfig::default());
    assert_eq!(
        after_restart
            .observe("Dec 10 06:55:46 host x: Served block blk_9 to /10.0.0.2")
            .id,
        id
    );
}

#[test]
fn a_generalising_template_aliases_its_old_id() {
    let mut m = Miner::new(MinerConfig::default());
    let first = m.observe("INFO app: session opened for alice from web").id;
    let second = m.observe("INFO app: session opened for bob from web");
    assert_eq!(second.replaced, Some(first));
    assert_ne!(second.id, first);
    assert_eq!(m.resolve(first), second.id);
    let t = m.template(first).map(|t| (t.text, t.count));
    assert_eq!(t, Some(("session opened for <*> from web".to_owned(), 2)));
    // Another line of it changes nothing.
    let third = m.observe("INFO app: session opened for carol from web");
    assert_eq!((third.id, third.replaced), (second.id, None));
    assert_eq!(m.len(), 1);
}

#[test]
fn templates_are_capped_and_the_least_recently_seen_evicted() {
    let cfg = MinerConfig {
        max_templates: 3,
        ..MinerConfig::default()
    };
    let mut m = Miner::new(cfg);
    let words = ["alpha", "beta", "gamma", "delta", "epsilon"];
    let a = m.observe("alpha").id;
    m.observe("beta");
    m.observe("gamma");
    m.observe("alpha"); // alpha now seen more recently than beta
    for w in &words[3..] {
        m.observe(w);
    }
    assert_eq!(m.len(), 3);
    assert_eq!(m.evicted(), 2);
    let held: std::collections::BTreeSet<String> = m.templates().map(|t| t.text).collect();
    let want: std::collections::BTreeSet<String> =
        ["alpha", "delta", "epsilon"].map(String::from).into();
    assert_eq!(held, want);
    assert!(m.template(a).is_some());
}

#[test]
fn aliases_are_capped() {
    let cfg = MinerConfig {
        max_aliases: 2,
        ..MinerConfig::default()
    };
    let mut m = Miner::new(cfg);
    for w in ["a", "b", "c", "d"] {
        // Each pair generalises one new template: one alias each.
        m.observe(&format!("{w} start x"));
        m.observe(&format!("{w} start y"));
    }
    assert_eq!(m.aliases_dropped(), 2);
}

#[test]
fn huge_and_odd_lines_are_fine() {
    let mut m = Miner::new(MinerConfig::default());
    let huge = "é".repeat(100_000);
    m.observe(&huge);
    m.observe("");
    m.observe("\u{0}\u{fffd}[[[[ ]]]] :: -");
    let many = "word ".repeat(10_000);
    let id = m.observe(&many).id;
    let t = m.template(id).map(|t| t.text.split(' ').count());
    assert_eq!(t, Some(MinerConfig::default().max_tokens));
}

proptest! {
    #[test]
    fn arbitrary_lines_never_panic_and_ids_are_deterministic(
        lines in proptest::collection::vec(any::<String>(), 0..40),
    ) {
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        prop_assert_eq!(run(&lines), run(&lines));
    }

    #[test]
    fn arbitrary_bytes_as_lossy_text_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let text = String::from_utf8_lossy(&bytes);
        let mut m = Miner::new(MinerConfig { max_templates: 4, ..MinerConfig::default() });
        for line in text.split('\n') {
            let o = m.observe(line);
            prop_assert!(m.len() <= 4);
            prop_assert_eq!(m.resolve(o.id), o.id);
        }
    }
}
