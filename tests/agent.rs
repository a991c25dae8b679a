//! `supergrep agent` shipping files to a hub (`supergrep serve`): the real binary on
//! loopback, real files in temporary directories, and a WebSocket client on the hub's
//! `/ws` that checks what arrives, with which host, path and set, and how often.
//!
//! Lines are numbered (`web01 line 000042`), so "exactly once" is checked line by line
//! against what the test wrote. No assertion is about time: waits are for something
//! the programs say or send, bounded by a generous limit.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use supergrep::protocol::{AgentMsg, HubMsg, ServerMsg, WireLine, WireStream};
use support::agent::{assert_exactly_once, numbers, write_numbered, Agent, Proxy, Writer};
use support::files::{append, empty};
use support::http::metric_in;
use support::hub::Hub;
use support::wait::{wait_until, PATIENCE};
use support::ws::{SyncClient, Ws};
use tokio_tungstenite::tungstenite::Message;

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("supergrep-agent-test")
        .tempdir()
        .unwrap()
}

/// Creates `DIR/NAME.log` (empty) for each name.
fn log_files(dir: &Path, names: &[&str]) -> Vec<PathBuf> {
    names
        .iter()
        .map(|n| empty(dir.join(format!("{n}.log"))))
        .collect()
}

/// A hub started with `hub_args`, and a client subscribed to `include` (as `all`),
/// connected before any agent.
fn hub_and_client(hub_args: &[&str], include: &[&str]) -> (Hub, SyncClient) {
    let hub = Hub::start(hub_args);
    let mut client = SyncClient::connect(&hub.ws_url());
    client.subscribe("all", include, 0);
    (hub, client)
}

/// Waits until `app`'s line `last` arrived, lets a late duplicate come, then checks
/// that `app`'s lines `1..=last` arrived in order, each once.
fn assert_app_lines_once(client: &mut SyncClient, what: &str, last: u64) {
    client.wait_lines(&format!("app line {last}"), |ls| {
        numbers(ls, "app").last() == Some(&last)
    });
    client.settle(Duration::from_millis(500));
    assert_exactly_once(what, &numbers(&client.lines, "app"), 1, last);
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

// ---------------------------------------------------------------------------------
// 1. Several agents, one hub
// ---------------------------------------------------------------------------------

#[test]
fn three_agents_each_ship_their_file_under_their_own_name() {
    let dir = tempdir();
    let hub = Hub::start(&[]);
    // Connected before any agent, so it hears each stream being announced.
    let mut client = SyncClient::connect(&hub.ws_url());
    client.subscribe("errors", &["ERROR"], 0);

    let names = ["web01", "web02", "web03"];
    let files = log_files(dir.path(), &names);
    let _agents: Vec<Agent> = names
        .iter()
        .zip(&files)
        .map(|(n, f)| Agent::start(&hub.agent_url(), n, &[f], &[]))
        .collect();
    hub.wait_metric("supergrep_agents", 3);

    // Each stream is announced to clients as `host:path` in the set `default`.
    for (name, file) in names.iter().zip(&files) {
        let want = WireStream {
            id: format!("{name}:{}", path_str(file)),
            host: name.to_string(),
            path: path_str(file),
            set: "default".into(),
        };
        client
            .recv_other(|m| matches!(m, ServerMsg::Streams { added, .. } if added.contains(&want)));
    }

    // 30 lines per file, written in a few appends; every third one is an ERROR
    // naming its host. Expected: per host, its ERROR lines with seq = line number.
    const LINES: u64 = 30;
    let text = |name: &str, i: u64| {
        if i.is_multiple_of(3) {
            format!("{name} ERROR request {i} failed")
        } else {
            format!("{name} INFO request {i} ok")
        }
    };
    for chunk in (1..=LINES).collect::<Vec<_>>().chunks(7) {
        for (name, file) in names.iter().zip(&files) {
            let mut s = String::new();
            for &i in chunk {
                s.push_str(&text(name, i));
                s.push('\n');
            }
            append(file, &s);
        }
    }
    let per_host = LINES / 3;
    client.wait_lines("every agent's ERROR lines", |ls| {
        ls.len() as u64 >= per_host * names.len() as u64
    });
    client.settle(Duration::from_millis(300));

    for (name, file) in names.iter().zip(&files) {
        let got: Vec<(u64, String, String, String)> = client
            .lines
            .iter()
            .filter(|l| l.host == *name)
            .map(|l| (l.seq, l.text.clone(), l.path.clone(), l.set.clone()))
            .collect();
        let want: Vec<(u64, String, String, String)> = (1..=LINES)
            .filter(|i| i % 3 == 0)
            .map(|i| (i, text(name, i), path_str(file), "default".to_owned()))
            .collect();
        assert_eq!(got, want, "the lines of {name}");
    }
    assert_eq!(
        client.lines.len() as u64,
        per_host * names.len() as u64,
        "only ERROR lines, each once: {:#?}",
        client.lines
    );
    // The text carries the host name it was written for: no line under another host.
    for l in &client.lines {
        assert!(
            l.text.starts_with(&l.host),
            "line under the wrong host: {l:?}"
        );
    }

    // /api/streams lists the three, /metrics counts them and their lines.
    let want_streams: Vec<_> = names
        .iter()
        .zip(&files)
        .map(|(n, f)| {
            (
                format!("{n}:{}", path_str(f)),
                n.to_string(),
                path_str(f),
                "default".to_owned(),
            )
        })
        .collect();
    assert_eq!(hub.streams(), want_streams);
    let page = hub.metrics();
    assert_eq!(metric_in(&page, "supergrep_agents"), Some(3), "{page}");
    for (n, f) in names.iter().zip(&files) {
        let sample = format!(
            "supergrep_stream_lines_total{{stream=\"{n}:{}\"}}",
            path_str(f)
        );
        assert_eq!(
            metric_in(&page, &sample),
            Some(LINES),
            "{sample} in\n{page}"
        );
        let per_host = format!("supergrep_host_lines_total{{host=\"{n}\"}}");
        assert_eq!(
            metric_in(&page, &per_host),
            Some(LINES),
            "{per_host} in\n{page}"
        );
    }
    assert_eq!(
        metric_in(&page, "supergrep_lines_ingested_total"),
        Some(LINES * 3),
        "{page}"
    );

    // A client that comes later finds the three in `hello`.
    let late = SyncClient::connect(&hub.ws_url());
    let ServerMsg::Hello { streams, .. } = &late.hello else {
        unreachable!()
    };
    let mut ids: Vec<&str> = streams.iter().map(|s| s.id.as_str()).collect();
    ids.sort();
    let want_ids: Vec<&str> = want_streams.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(ids, want_ids);
}

/// The hub's own tailer hands small batches to ingest on its own thread when ingest
/// is idle, and big ones (and everything while ingest is busy) through the channel
/// the agents' lines take too. Mixed, every stream's lines must still arrive once, in
/// order, numbered without gaps.
#[test]
fn local_lines_and_an_agents_lines_ingested_together_keep_each_streams_order() {
    let dir = tempdir();
    let local = empty(dir.path().join("local.log"));
    let remote = empty(dir.path().join("remote.log"));
    // Room for every line in the client's queue: a drop would look like a loss.
    let config = dir.path().join("hub.toml");
    std::fs::write(&config, "[limits]\nclient_queue = 200000\n").unwrap();
    let (config_arg, local_arg) = (path_str(&config), path_str(&local));
    let hub = Hub::start_following(&["--config", &config_arg, &local_arg], &[&local]);
    let mut client = SyncClient::connect(&hub.ws_url());
    client.subscribe("all", &[], 0);
    let _agent = Agent::start(&hub.agent_url(), "web01", &[&remote], &[]);
    hub.wait_metric("supergrep_agents", 1);

    // A line at a time to both files, and every 50 ms a burst of 16,000 lines (272 KB)
    // to the local one: the tailer reads it as a 256 KiB batch (through the channel)
    // and a small rest, which must wait for it.
    let writer = Writer::start(
        vec![
            ("local".into(), local.clone()),
            ("remote".into(), remote.clone()),
        ],
        Duration::from_millis(1),
    );
    const BURST: u64 = 16_000;
    const BURSTS: u64 = 5;
    for burst in 0..BURSTS {
        std::thread::sleep(Duration::from_millis(50));
        let lines: Vec<String> = (1..=BURST)
            .map(|n| support::agent::numbered("bulk", burst * BURST + n))
            .collect();
        append(&local, &(lines.join("\n") + "\n"));
    }
    std::thread::sleep(Duration::from_millis(150));
    let last = writer.stop();
    client.wait_lines("the last lines of both files", |ls| {
        numbers(ls, "local").last() == Some(&last) && numbers(ls, "remote").last() == Some(&last)
    });
    client.settle(Duration::from_millis(300));

    assert_exactly_once("local", &numbers(&client.lines, "local"), 1, last);
    assert_exactly_once("remote", &numbers(&client.lines, "remote"), 1, last);
    assert_exactly_once("bulk", &numbers(&client.lines, "bulk"), 1, BURSTS * BURST);
    // Per stream, the hub numbered the lines 1, 2, 3… in the order they arrived.
    for (host, path, total) in [
        (None, path_str(&local), last + BURSTS * BURST),
        (Some("web01"), path_str(&remote), last),
    ] {
        let seqs: Vec<u64> = client
            .lines
            .iter()
            .filter(|l| l.path == path && host.is_none_or(|h| l.host == h))
            .map(|l| l.seq)
            .collect();
        assert_eq!(seqs, (1..=total).collect::<Vec<_>>(), "seq of {path}");
    }
}

// ---------------------------------------------------------------------------------
// 2. The hub dies and comes back
// ---------------------------------------------------------------------------------

#[test]
fn hub_killed_and_restarted_gets_everything_it_had_not_acknowledged_exactly_once() {
    let dir = tempdir();
    let names = ["web01", "web02", "web03"];
    let files = log_files(dir.path(), &names);
    let hub_args = ["--backlog", "100000"];
    let mut hub = Hub::start(&hub_args);
    let port = hub.port;
    let mut before = SyncClient::connect(&hub.ws_url());
    before.subscribe("all", &[" line "], 0);
    let mut agents: Vec<Agent> = names
        .iter()
        .zip(&files)
        .map(|(n, f)| Agent::start(&hub.agent_url(), n, &[f], &[]))
        .collect();
    hub.wait_metric("supergrep_agents", 3);

    // The files grow all along: one line per file every 10 ms.
    let writer = Writer::start(
        names
            .iter()
            .zip(&files)
            .map(|(n, f)| (n.to_string(), f.clone()))
            .collect(),
        Duration::from_millis(10),
    );
    before.wait_lines("50 lines of each agent on the first hub", |ls| {
        names.iter().all(|n| numbers(ls, n).len() >= 50)
    });

    hub.proc.kill();
    // Lines after this number were written once the old hub was gone: it cannot have
    // acknowledged them.
    let written_at_kill = writer.written();
    std::thread::sleep(Duration::from_secs(3));
    let hub2 = Hub::start_on(port, &hub_args, &[]);
    // A subscription with a backlog: whatever the new hub took in before it (agents
    // may reconnect first) comes as backlog, the rest live, none twice.
    let mut after = SyncClient::connect(&hub2.ws_url());
    after.subscribe("all", &[" line "], 10_000);
    for a in &mut agents {
        a.wait_connected(2);
    }
    hub2.wait_metric("supergrep_agents", 3);
    let resumed_at = writer.written();
    wait_until("50 more lines written", || {
        writer.written() >= resumed_at + 50
    });
    let last = writer.stop();
    after.wait_lines("the last line of every agent on the new hub", |ls| {
        names.iter().all(|n| numbers(ls, n).last() == Some(&last))
    });
    after.settle(Duration::from_millis(500));

    for name in names {
        // The old hub got lines 1..=a in order, each once.
        let old = numbers(&before.lines, name);
        assert_exactly_once(
            &format!("{name} on the old hub"),
            &old,
            1,
            *old.last().unwrap(),
        );
        // Asserted on the new hub, per agent: its lines are exactly k..=last, in
        // order, each once, with no gap, for some k <= written_at_kill + 1. So every
        // line written after the kill arrives exactly once (the old hub cannot have
        // acknowledged any of them), and so does every line from k on, including the
        // batches the old hub had taken in but not acknowledged, which the agent sends
        // again (then k <= the old client's last line: those lines reach both hubs).
        // Not asserted: k <= the old client's last line + 1 (that the two clients
        // together saw every line). The hub acknowledges a batch once it is queued for
        // ingest, so SIGKILL can take acknowledged lines away before the old hub's
        // client receives them; they went down with that hub.
        let new = numbers(&after.lines, name);
        let k = *new.first().expect("no line at all on the new hub");
        assert!(
            k <= written_at_kill + 1,
            "{name}: the new hub starts at line {k}, but lines from {} on were written after the kill",
            written_at_kill + 1
        );
        assert_exactly_once(&format!("{name} on the new hub"), &new, k, last);
        // The new hub numbers the stream afresh, one by one.
        let seqs: Vec<u64> = after
            .lines
            .iter()
            .filter(|l| l.host == name)
            .map(|l| l.seq)
            .collect();
        assert_eq!(
            seqs,
            (1..=new.len() as u64).collect::<Vec<_>>(),
            "{name}: seq on the new hub"
        );
        for l in after.lines.iter().filter(|l| l.host == name) {
            assert_eq!(l.path, path_str(&dir.path().join(format!("{name}.log"))));
            assert_eq!(l.set, "default");
        }
    }
    assert_eq!(
        hub2.metric("supergrep_agent_duplicates_dropped_total"),
        Some(0)
    );
}

// ---------------------------------------------------------------------------------
// 3. The agent restarts with a state file
// ---------------------------------------------------------------------------------

/// Stopped mid-stream: the batches sent last may be with the hub but not yet
/// acknowledged, so the state file says less than the hub has and the restarted agent
/// reads those lines again, in one batch with the lines written since. The hub must
/// recognise the part it has (minimal form: `hub_takes_only_the_new_part_of_an_overlapping_batch`).
#[test]
fn agent_restarted_with_state_file_ships_every_line_exactly_once() {
    let dir = tempdir();
    let files = log_files(dir.path(), &["app"]);
    let file = &files[0];
    let state = dir.path().join("agent-state.json");
    let (hub, mut client) = hub_and_client(&[], &[" line "]);
    let state_arg = state.to_str().unwrap();
    let args = ["--state-file", state_arg];
    let mut agent = Agent::start(&hub.agent_url(), "app01", &[file], &args);

    let writer = Writer::start(vec![("app".into(), file.clone())], Duration::from_millis(5));
    client.wait_lines("100 lines through the first run", |ls| {
        numbers(ls, "app").len() >= 100
    });
    // Stopped mid-stream: the file keeps growing while it stops and while it is away.
    agent.proc.signal("TERM");
    let status = agent.proc.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", agent.proc.stderr_text());
    let at_stop = writer.written();
    wait_until("100 more lines while the agent is away", || {
        writer.written() >= at_stop + 100
    });
    let state_text = std::fs::read_to_string(&state).expect("the agent wrote its state file");
    let state_json: serde_json::Value = serde_json::from_str(&state_text).unwrap();
    let resume = &state_json[path_str(file)];
    let len = std::fs::metadata(file).unwrap().len();
    let offset = resume["offset"].as_u64().expect("an offset for the file");
    assert!(offset > 0 && offset <= len, "state: {state_text}");

    let mut agent2 = Agent::spawn(&hub.agent_url(), "app01", &[file], &args);
    agent2.wait_connected(1);
    let resumed = writer.written();
    wait_until("50 more lines after the restart", || {
        writer.written() >= resumed + 50
    });
    let last = writer.stop();
    // Across both runs: every line 1..=last, in order, each once.
    assert_app_lines_once(&mut client, "lines across the agent's restart", last);
}

/// The state file's offset for `file` (`None` before the agent wrote one).
fn saved_offset(state: &Path, file: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(state).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json[path_str(file)]["offset"].as_u64()
}

/// The restart once every batch is acknowledged (the state file says so): SIGTERM
/// stops the agent's tailer and joins it, the agent exits 0 with the state file at
/// the acknowledged offset, and it resumes exactly where it stopped.
#[test]
fn agent_restarted_with_state_file_resumes_where_the_hub_acknowledged() {
    let dir = tempdir();
    let files = log_files(dir.path(), &["app"]);
    let file = &files[0];
    let state = dir.path().join("agent-state.json");
    let (hub, mut client) = hub_and_client(&[], &[" line "]);
    let args = ["--state-file", state.to_str().unwrap()];
    let mut agent = Agent::start(&hub.agent_url(), "app01", &[file], &args);
    let write = |range| write_numbered(file, "app", range);

    write(1..=50);
    client.wait_lines("line 50", |ls| numbers(ls, "app").last() == Some(&50));
    let len = std::fs::metadata(file).unwrap().len();
    // Saved once a second: wait until it has the last acknowledgement.
    wait_until("the state file at the end of the file", || {
        saved_offset(&state, file) == Some(len)
    });
    agent.proc.signal("TERM");
    assert_eq!(agent.proc.wait_exit().code(), Some(0));
    assert_eq!(saved_offset(&state, file), Some(len));
    // Its tailer was stopped and joined, not cut off by the exit.
    let said = agent.proc.stderr_text();
    assert!(
        said.contains("stopping: joined the tailer thread") && !said.contains("gave up"),
        "the agent said:\n{said}"
    );
    // Its stream goes with it.
    hub.wait_metric("supergrep_agents", 0);
    wait_until("the stream gone from /api/streams", || {
        hub.streams().is_empty()
    });
    let id = format!("app01:{}", path_str(file));
    client.recv_other(|m| matches!(m, ServerMsg::Streams { removed, .. } if removed.contains(&id)));

    write(51..=100);
    let mut agent2 = Agent::spawn(&hub.agent_url(), "app01", &[file], &args);
    let following = agent2.wait_following(file);
    assert!(
        following.contains(&format!("offset={len}")),
        "resumes at {len}: {following}"
    );
    agent2.wait_connected(1);
    write(101..=120);
    assert_app_lines_once(&mut client, "lines across the agent's restart", 120);
    // The hub numbers the stream on across the agent's two connections.
    let seqs: Vec<u64> = client.lines.iter().map(|l| l.seq).collect();
    assert_eq!(seqs, (1..=120).collect::<Vec<_>>());
}

/// copytruncate while the agent runs: the file is truncated and written again (less
/// than before, then more); every line of the new content reaches the hub.
#[test]
fn copytruncate_while_the_agent_runs_ships_the_new_content() {
    let dir = tempdir();
    let files = log_files(dir.path(), &["app"]);
    let file = &files[0];
    let (hub, mut client) = hub_and_client(&[], &[" line "]);
    let _agent = Agent::start(&hub.agent_url(), "app01", &[file], &[]);
    let write = |range| write_numbered(file, "app", range);

    write(1..=50);
    client.wait_lines("line 50", |ls| numbers(ls, "app").last() == Some(&50));
    std::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .unwrap()
        .set_len(0)
        .unwrap();
    write(51..=60);
    client.wait_lines("line 60", |ls| numbers(ls, "app").last() == Some(&60));
    write(61..=120);
    assert_app_lines_once(&mut client, "lines across a copytruncate", 120);
}

/// Truncated and written again past the saved offset while the agent was stopped
/// (copytruncate): the restarted agent sees other bytes before the offset than it
/// saved, and reads the file from its start. (It resumed inside the new content: the
/// lines before the offset were lost, and a line fragment was shipped.)
#[test]
fn agent_restarted_after_a_copytruncate_reads_the_new_content_whole() {
    let dir = tempdir();
    let files = log_files(dir.path(), &["app"]);
    let file = &files[0];
    let state = dir.path().join("agent-state.json");
    let (hub, mut client) = hub_and_client(&[], &[" line "]);
    let args = ["--state-file", state.to_str().unwrap()];
    let mut agent = Agent::start(&hub.agent_url(), "app01", &[file], &args);
    let write = |range| write_numbered(file, "app", range);

    write(1..=50);
    client.wait_lines("line 50", |ls| numbers(ls, "app").last() == Some(&50));
    let len = std::fs::metadata(file).unwrap().len();
    wait_until("the state file at the end of the file", || {
        saved_offset(&state, file) == Some(len)
    });
    agent.proc.signal("TERM");
    assert_eq!(agent.proc.wait_exit().code(), Some(0));

    std::fs::copy(file, dir.path().join("app.log.1")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .unwrap()
        .set_len(0)
        .unwrap();
    write(51..=150);
    assert!(std::fs::metadata(file).unwrap().len() > len);
    let mut agent2 = Agent::spawn(&hub.agent_url(), "app01", &[file], &args);
    agent2.wait_connected(1);
    write(151..=160);
    assert_app_lines_once(&mut client, "lines across a copytruncate while away", 160);
}

/// Rotated (renamed) while the agent was stopped, after more lines were written: the
/// restarted agent finds the old file by its inode next to the path, ships the lines
/// it had not, then the new file's. (Those lines were lost: it started the new file
/// from its start and never looked at the old one.)
#[test]
fn agent_restarted_after_a_rotation_ships_the_rest_of_the_rotated_file() {
    restarted_after_a_rotation(false);
}

/// The same when the agent's glob also names the rotated file (`app.log*`): its rest
/// is shipped once (under its new name), nothing twice.
#[test]
fn agent_restarted_after_a_rotation_its_glob_covers_ships_each_line_once() {
    restarted_after_a_rotation(true);
}

fn restarted_after_a_rotation(glob: bool) {
    let dir = tempdir();
    let files = log_files(dir.path(), &["app"]);
    let file = &files[0];
    let state = dir.path().join("agent-state.json");
    let (hub, mut client) = hub_and_client(&[], &[" line "]);
    let args = ["--state-file", state.to_str().unwrap()];
    let mut agent = Agent::start(&hub.agent_url(), "app01", &[file], &args);
    let write = |range| write_numbered(file, "app", range);

    write(1..=50);
    client.wait_lines("line 50", |ls| numbers(ls, "app").last() == Some(&50));
    let len = std::fs::metadata(file).unwrap().len();
    wait_until("the state file at the end of the file", || {
        saved_offset(&state, file) == Some(len)
    });
    agent.proc.signal("TERM");
    assert_eq!(agent.proc.wait_exit().code(), Some(0));

    // While it is away: more lines, then rotation by rename, then the new file.
    write(51..=60);
    std::fs::rename(file, dir.path().join("app.log.1")).unwrap();
    write(61..=70);
    let pattern = dir.path().join("app.log*");
    let follow = if glob {
        pattern.as_path()
    } else {
        file.as_path()
    };
    let mut agent2 = Agent::spawn(&hub.agent_url(), "app01", &[follow], &args);
    agent2.wait_connected(1);
    write(71..=80);
    let what = "lines across a rotation while away";
    if !glob {
        assert_app_lines_once(&mut client, what, 80);
        return;
    }
    // Two streams now (app.log.1 has the rest of the old file): each in order, every
    // line once in all.
    client.wait_lines("80 lines", |ls| numbers(ls, "app").len() >= 80);
    client.settle(Duration::from_millis(500));
    for path in [file.clone(), dir.path().join("app.log.1")] {
        let of: Vec<WireLine> = client
            .lines
            .iter()
            .filter(|l| l.path == path_str(&path))
            .cloned()
            .collect();
        let n = numbers(&of, "app");
        assert!(n.windows(2).all(|w| w[0] < w[1]), "{what}: {path:?} {n:?}");
    }
    let mut all = numbers(&client.lines, "app");
    all.sort_unstable();
    assert_exactly_once(what, &all, 1, 80);
}

// ---------------------------------------------------------------------------------
// 4. Tokens
// ---------------------------------------------------------------------------------

#[test]
fn agent_with_a_wrong_token_exits_2_and_the_hub_takes_nothing() {
    let dir = tempdir();
    let files = log_files(dir.path(), &["a", "b", "c"]);
    let hub = Hub::start(&["--token", "right-token"]);

    // Wrong token: status 2, a message that says so, nothing shipped.
    let mut wrong = Agent::spawn(
        &hub.agent_url(),
        "web01",
        &[&files[0]],
        &["--token", "wrong-token"],
    );
    append(&files[0], "written while refused\n");
    let status = wrong.proc.wait_exit();
    let said = wrong.proc.stderr_text();
    assert_eq!(status.code(), Some(2), "{said}");
    assert!(said.contains("refused the token"), "{said}");
    assert!(
        !said.contains("wrong-token"),
        "the token is not printed: {said}"
    );

    // No token at all: the same.
    let mut none = Agent::spawn(&hub.agent_url(), "web02", &[&files[1]], &[]);
    let status = none.proc.wait_exit();
    let said = none.proc.stderr_text();
    assert_eq!(status.code(), Some(2), "{said}");
    assert!(said.contains("refused the token"), "{said}");

    // --retry-auth: it keeps trying (says so twice, is still running).
    let mut retrying = Agent::spawn(
        &hub.agent_url(),
        "web03",
        &[&files[2]],
        &["--token", "wrong-token", "--retry-auth"],
    );
    retrying.wait_following(&files[2]);
    append(&files[2], "written while retrying\n");
    retrying
        .proc
        .wait_stderr_n(&["refused the token", "retrying (--retry-auth)"], 2);
    assert!(retrying.proc.running(), "{}", retrying.proc.stderr_text());
    assert_eq!(retrying.connections(), 0);

    // The hub took in nothing and knows no stream.
    let page = hub.metrics();
    assert_eq!(
        metric_in(&page, "supergrep_lines_ingested_total"),
        Some(0),
        "{page}"
    );
    assert_eq!(metric_in(&page, "supergrep_agents"), Some(0), "{page}");
    assert!(
        metric_in(&page, "supergrep_requests_refused_total").unwrap_or(0) >= 3,
        "{page}"
    );
    assert_eq!(hub.streams(), vec![]);

    // The right token: connected, and its lines arrive.
    let mut client = SyncClient::connect(&hub.ws_url());
    client.subscribe("all", &[], 0);
    let _right = Agent::start(
        &hub.agent_url(),
        "web04",
        &[&files[0]],
        &["--token", "right-token"],
    );
    append(&files[0], "written with the right token\n");
    let line = client.wait_text("written with the right token");
    assert_eq!(line.host, "web04");
    assert_eq!(line.path, path_str(&files[0]));
    client.settle(Duration::from_millis(300));
    assert_eq!(client.lines.len(), 1, "{:#?}", client.lines);
    assert!(retrying.proc.running());
}

#[test]
fn agent_token_with_special_characters_is_accepted() {
    let dir = tempdir();
    let files = log_files(dir.path(), &["a"]);
    let token = "s3cr&t =x/?#%+é";
    let (hub, mut client) = hub_and_client(&["--token", token], &[]);
    let _agent = Agent::start(&hub.agent_url(), "web01", &[&files[0]], &["--token", token]);
    append(&files[0], "shipped with an odd token\n");
    let l = client.wait_text("shipped with an odd token");
    assert_eq!(l.host, "web01");
}

/// SIGTERM while the hub cannot be reached (the agent waits to retry): its tailer
/// is stopped and joined all the same, and it exits 0.
#[test]
fn sigterm_while_the_hub_is_unreachable_joins_the_tailer_and_exits_0() {
    let dir = tempdir();
    let files = log_files(dir.path(), &["a"]);
    let url = format!("ws://127.0.0.1:{}", support::free_port());
    let mut agent = Agent::spawn(&url, "web01", &[&files[0]], &[]);
    agent.wait_following(&files[0]);
    agent.proc.wait_stderr(&["cannot reach the hub"]);
    agent.proc.signal("TERM");
    let status = agent.proc.wait_exit();
    let said = agent.proc.stderr_text();
    assert_eq!(status.code(), Some(0), "{status:?}; it said:\n{said}");
    assert!(
        said.contains("stopping: joined the tailer thread") && !said.contains("gave up"),
        "the agent said:\n{said}"
    );
}

#[test]
fn agent_with_a_name_the_hub_refuses_exits_2() {
    let dir = tempdir();
    let files = log_files(dir.path(), &["a"]);
    let hub = Hub::start(&[]);
    let mut agent = Agent::spawn(&hub.agent_url(), "web:01", &[&files[0]], &[]);
    let status = agent.proc.wait_exit();
    let said = agent.proc.stderr_text();
    assert_eq!(status.code(), Some(2), "{said}");
    assert!(said.contains("the hub refused the agent"), "{said}");
    assert!(said.contains("':'"), "says why: {said}");
    assert_eq!(hub.streams(), vec![]);
}

/// `--set` names the log set of the agent's files, which subscriptions select by.
#[test]
fn agent_set_is_the_streams_set() {
    let dir = tempdir();
    let files = log_files(dir.path(), &["web", "db"]);
    let hub = Hub::start(&[]);
    let mut client = SyncClient::connect(&hub.ws_url());
    client.send_json(serde_json::json!({
        "type": "subscribe", "id": "web-only", "include": [], "streams": ["web"],
    }));
    client.recv_other(|m| matches!(m, ServerMsg::Subscribed { .. }));
    let _web = Agent::start(&hub.agent_url(), "web01", &[&files[0]], &["--set", "web"]);
    let _db = Agent::start(&hub.agent_url(), "db01", &[&files[1]], &["--set", "db"]);
    append(&files[1], "db line 1\n");
    append(&files[0], "web line 1\n");
    append(&files[1], "db line 2\n");
    append(&files[0], "web line 2\n");
    client.wait_text("web line 2");
    // db's lines were written before web's last one; give a late one a chance anyway.
    client.settle(Duration::from_millis(300));
    let got: Vec<(&str, &str, &str)> = client
        .lines
        .iter()
        .map(|l| (l.host.as_str(), l.set.as_str(), l.text.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("web01", "web", "web line 1"),
            ("web01", "web", "web line 2")
        ]
    );
    let sets: Vec<(String, String)> = hub.streams().into_iter().map(|s| (s.1, s.3)).collect();
    assert_eq!(
        sets,
        [
            ("db01".to_owned(), "db".to_owned()),
            ("web01".to_owned(), "web".to_owned())
        ]
    );
}

// ---------------------------------------------------------------------------------
// 5. The hub's dedupe of re-sent batches
// ---------------------------------------------------------------------------------

#[test]
fn hub_drops_batches_an_agent_resends_after_a_lost_connection() {
    let dir = tempdir();
    let files = log_files(dir.path(), &["app"]);
    let file = &files[0];
    let hub = Hub::start(&[]);
    assert_eq!(
        hub.metric("supergrep_agent_duplicates_dropped_total"),
        Some(0),
        "the counter is there from the start"
    );
    assert_eq!(hub.metric("supergrep_agent_batches_resent_total"), Some(0));
    let proxy = Proxy::start(hub.port);
    let mut client = SyncClient::connect(&hub.ws_url());
    client.subscribe("all", &[" line "], 0);
    let mut agent = Agent::start(&proxy.url(), "app01", &[file], &[]);
    let write = |range| write_numbered(file, "app", range);
    write(1..=10);
    client.wait_lines("lines 1..=10", |ls| numbers(ls, "app").last() == Some(&10));

    // The hub takes lines 11..=30 in, but its acknowledgements never reach the agent;
    // then the connection breaks. The agent reconnects and sends them again.
    proxy.hold_answers();
    for chunk in [11..=15, 16..=22, 23..=30] {
        write(chunk);
        std::thread::sleep(Duration::from_millis(50));
    }
    client.wait_lines("lines 11..=30", |ls| numbers(ls, "app").last() == Some(&30));
    assert!(proxy.held_bytes.load(std::sync::atomic::Ordering::SeqCst) > 0);
    proxy.cut();
    agent.wait_connected(2);
    // The batches of lines 11..=30 were all unacknowledged: each comes again and is
    // dropped (how the tailer cut them into batches is not known here).
    wait_until("re-sent batches dropped", || {
        hub.metric("supergrep_agent_duplicates_dropped_total") > Some(0)
    });

    // Life goes on after the reconnect (and these come after every re-sent batch).
    write(31..=40);
    assert_app_lines_once(&mut client, "lines across the reconnect", 40);
    let page = hub.metrics();
    assert_eq!(
        metric_in(&page, "supergrep_lines_ingested_total"),
        Some(40),
        "{page}"
    );
    let dropped = metric_in(&page, "supergrep_agent_duplicates_dropped_total").unwrap();
    assert!(
        (1..=20).contains(&dropped),
        "between 1 and 20 re-sent batches (of lines 11..=30) dropped: {page}"
    );
    // Every batch the agent sent again was one the hub had.
    assert_eq!(
        metric_in(&page, "supergrep_agent_batches_resent_total"),
        Some(dropped),
        "{page}"
    );
}

/// Speaks the agent protocol by hand on `/agent`.
struct FakeAgent {
    rt: tokio::runtime::Runtime,
    ws: Ws,
}

impl FakeAgent {
    fn connect(hub: &Hub, name: &str) -> FakeAgent {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let url = format!("{}/agent", hub.agent_url());
        let (ws, _) = rt
            .block_on(tokio_tungstenite::connect_async(url.as_str()))
            .unwrap();
        let mut agent = FakeAgent { rt, ws };
        agent.send(&AgentMsg::AgentHello {
            version: 1,
            name: name.into(),
            agent: "test".into(),
        });
        // Which tells agents to send their batches unmasked (the real agent does, in
        // every test above).
        assert!(matches!(
            agent.recv(),
            HubMsg::Welcome {
                unmasked_lines: true,
                ..
            }
        ));
        agent
    }

    fn send(&mut self, msg: &AgentMsg) {
        let text = serde_json::to_string(msg).unwrap();
        self.rt.block_on(self.ws.send(Message::text(text))).unwrap();
    }

    fn recv(&mut self) -> HubMsg {
        loop {
            let ws = &mut self.ws;
            let next = self
                .rt
                .block_on(async { tokio::time::timeout(PATIENCE, ws.next()).await })
                .expect("the hub said nothing");
            match next {
                Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
                Some(Ok(_)) => continue,
                other => panic!("the hub closed the agent connection: {other:?}"),
            }
        }
    }

    /// Sends bytes `start..start+text.len()` of file (1, 2) at `path` as `batch`,
    /// and waits for its acknowledgement.
    fn lines(&mut self, batch: u64, path: &str, start: u64, text: &str) {
        self.lines_of(batch, path, (2, None), start, text);
    }

    /// The same of file (1, `ino`) born at `born`.
    fn lines_of(
        &mut self,
        batch: u64,
        path: &str,
        (ino, born): (u64, Option<u64>),
        start: u64,
        text: &str,
    ) {
        self.send(&AgentMsg::Lines {
            batch,
            path: path.into(),
            set: "default".into(),
            dev: 1,
            ino,
            born,
            start,
            end: start + text.len() as u64,
            ts: "2026-11-22T01:02:03.000Z".into(),
            text: text.into(),
        });
        assert_eq!(self.recv(), HubMsg::Ack { batch });
    }

    fn close(mut self) {
        let _ = self.rt.block_on(self.ws.close(None));
    }
}

#[test]
fn hub_drops_a_batch_it_already_has_and_counts_it() {
    let (hub, mut client) = hub_and_client(&[], &[]);
    let path = "/var/log/fake.log";

    let mut agent = FakeAgent::connect(&hub, "fake01");
    agent.send(&AgentMsg::StreamAdded {
        path: path.into(),
        set: "default".into(),
    });
    let one = "fake line 1\nfake line 2\n";
    agent.lines(1, path, 0, one);
    agent.close();
    // Reconnected: the same batch again (its acknowledgement was lost), then more.
    let mut agent = FakeAgent::connect(&hub, "fake01");
    agent.lines(1, path, 0, one);
    let two = "fake line 3\n";
    agent.lines(2, path, one.len() as u64, two);

    client.wait_text("fake line 3");
    client.settle(Duration::from_millis(300));
    let got: Vec<(&str, u64, &str)> = client
        .lines
        .iter()
        .map(|l| (l.text.as_str(), l.seq, l.host.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("fake line 1", 1, "fake01"),
            ("fake line 2", 2, "fake01"),
            ("fake line 3", 3, "fake01")
        ]
    );
    hub.wait_metric("supergrep_agent_duplicates_dropped_total", 1);
    assert_eq!(hub.metric("supergrep_lines_ingested_total"), Some(3));
}

/// Minimal form of the restart bug above: the hub has bytes 0..24 of a file; an agent
/// (restarted from a state file that says 12) sends 12..36. Only the last line is new.
#[test]
fn hub_takes_only_the_new_part_of_an_overlapping_batch() {
    let (hub, mut client) = hub_and_client(&[], &[]);
    let path = "/var/log/fake.log";
    let mut agent = FakeAgent::connect(&hub, "fake01");
    agent.lines(1, path, 0, "fake line 1\n");
    agent.lines(2, path, 12, "fake line 2\n");
    agent.close();
    let mut agent = FakeAgent::connect(&hub, "fake01");
    agent.lines(1, path, 12, "fake line 2\nfake line 3\n");
    client.wait_text("fake line 3");
    client.settle(Duration::from_millis(300));
    let texts: Vec<&str> = client.lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, ["fake line 1", "fake line 2", "fake line 3"]);
}

/// A file that replaces a rotated one may get the inode of the one rotated before it
/// (ext4 hands a freed inode out again at once). Its lines are new: the birth time
/// tells the files apart, and without one (an older agent, a filesystem that keeps
/// none) a file that starts at 0 after another file of the stream is new too. The
/// hub used to drop them all as lines it had, until the new file outgrew the old.
#[test]
fn hub_takes_a_new_file_that_got_a_rotated_files_inode() {
    let (hub, mut client) = hub_and_client(&[], &[]);
    let mut agent = FakeAgent::connect(&hub, "fake01");
    let (born, unborn) = ("/var/log/born.log", "/var/log/unborn.log");
    let line = |n: u32| format!("fake line {n}\n");
    // Born files: inode 2, then 3, then 2 again with another birth time.
    agent.lines_of(1, born, (2, Some(10)), 0, &(line(1) + &line(2)));
    agent.lines_of(2, born, (3, Some(20)), 0, &line(3));
    agent.lines_of(3, born, (2, Some(30)), 0, &line(4));
    // Without birth times, the same rotations.
    agent.lines_of(4, unborn, (2, None), 0, &(line(5) + &line(6)));
    agent.lines_of(5, unborn, (3, None), 0, &line(7));
    agent.lines_of(6, unborn, (2, None), 0, &line(8));
    // And a batch sent again is still one the hub has, in both.
    agent.lines_of(7, born, (2, Some(30)), 0, &line(4));
    agent.lines_of(8, unborn, (2, None), 0, &line(8));
    agent.lines_of(9, unborn, (2, None), 12, "fake line 9\n");
    client.wait_text("fake line 9");
    client.settle(Duration::from_millis(300));
    let texts: Vec<&str> = client.lines.iter().map(|l| l.text.as_str()).collect();
    let want: Vec<String> = (1..=9).map(|n| format!("fake line {n}")).collect();
    assert_eq!(texts, want);
    assert_eq!(
        hub.metric("supergrep_agent_duplicates_dropped_total"),
        Some(2)
    );
}

/// The real agent, and rotations as logrotate's `create` with `rotate 1` does them:
/// the copy before is deleted, the log renamed to `app.log.1`, a new log made. ext4
/// gives the new log the inode just freed. Every line arrives, once. (The hub used to
/// drop a reused inode's lines as ones it had: the soak lost 38,964 of 60,071 lines
/// of one agent's file so.) By hand, not by logrotate itself: logrotate writes its
/// state file after rotating, and that new file takes the freed inode.
#[test]
fn agent_ships_every_line_across_rotations_that_reuse_inodes() {
    // On the target's disk: /tmp may be a tmpfs, which never gives an inode back.
    let dir = tempfile::Builder::new()
        .prefix("supergrep-agent-test")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let files = log_files(dir.path(), &["app"]);
    let file = &files[0];
    let rotated = dir.path().join("app.log.1");
    let (hub, mut client) = hub_and_client(&[], &[" line "]);
    let agent = Agent::start(&hub.agent_url(), "app01", &[file], &[]);
    // A rotated file's inode is freed only once the agent has closed it too (it
    // drains a rotated file until it has not grown for a while).
    let files_open = || support::hub::open_fds_under(agent.proc.pid(), dir.path());
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let mut inodes = vec![inode(file)];
    let (mut reused, mut last) = (0, 0);
    const PER_FILE: u64 = 20;
    // Until a new log had an earlier one's inode twice.
    for _ in 0..6 {
        write_numbered(file, "app", last + 1..=last + PER_FILE);
        last += PER_FILE;
        client.wait_lines(&format!("line {last}"), |ls| {
            numbers(ls, "app").last() == Some(&last)
        });
        wait_until("the agent holding only the log it reads", || {
            files_open() == 1
        });
        let _ = std::fs::remove_file(&rotated);
        std::fs::rename(file, &rotated).unwrap();
        empty(file.clone());
        let now = inode(file);
        reused += usize::from(inodes.contains(&now));
        inodes.push(now);
        if reused == 2 {
            break;
        }
    }
    write_numbered(file, "app", last + 1..=last + 1);
    let what = format!("lines across rotations, inodes {inodes:?}");
    assert_app_lines_once(&mut client, &what, last + 1);
    if reused == 0 {
        eprintln!("NOT TESTED: inode reuse (the filesystem gave no inode back: {inodes:?})");
    }
}

// ---------------------------------------------------------------------------------
// 6. The wire
// ---------------------------------------------------------------------------------

/// Against a hub whose welcome does not offer `unmasked_lines` (an older one), the
/// agent masks its batches as RFC 6455 asks. The "hub" here is tungstenite's server
/// with its default settings, which closes the connection on an unmasked frame.
#[test]
fn agent_masks_its_batches_for_a_hub_that_did_not_offer_unmasked_frames() {
    let dir = tempdir();
    let files = log_files(dir.path(), &["app"]);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hub = std::thread::spawn(move || {
        let mut ws = accept_ws(&listener);
        let mut batches: Vec<(serde_json::Value, String)> = Vec::new();
        let mut lines = 0;
        while lines < 3 {
            match ws.read().expect("a frame the server accepts (masked)") {
                Message::Text(t) => {
                    let msg: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                    if msg["type"] == "agent_hello" {
                        let welcome = r#"{"type":"welcome","version":1,"server":"older"}"#;
                        ws.send(Message::text(welcome)).unwrap();
                    }
                }
                Message::Binary(b) => {
                    let (head, text) = acknowledge_lines(&mut ws, &b);
                    lines += text.lines().count();
                    batches.push((head, text));
                }
                _ => {}
            }
        }
        batches
    });
    let mut agent = Agent::start(
        &format!("ws://127.0.0.1:{port}"),
        "app01",
        &[&files[0]],
        &[],
    );
    write_numbered(&files[0], "app", 1..=3);
    let batches = hub.join().unwrap();
    let text: String = batches.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        numbers_in(&text, "app"),
        [1, 2, 3],
        "the lines, each once: {batches:?}"
    );
    let (head, _) = &batches[0];
    assert_eq!(head["type"], "lines");
    assert_eq!(head["start"], 0);
    assert_eq!(head["path"], path_str(&files[0]));
    agent.proc.kill();
}

/// Something between agent and hub that refuses unmasked frames (a proxy that reads
/// WebSocket frames), in front of a hub that offers to take them: the first connection
/// breaks before any batch is acknowledged; the agent says so and masks from then on,
/// and the lines arrive. Played by tungstenite's server with its default settings,
/// welcoming as a hub of this version does.
#[test]
fn agent_masks_its_batches_after_unmasked_ones_broke_the_connection() {
    let dir = tempdir();
    let files = log_files(dir.path(), &["app"]);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hub = std::thread::spawn(move || {
        let mut refused = 0;
        let mut text = String::new();
        while text.lines().count() < 3 {
            let mut ws = accept_ws(&listener);
            loop {
                match ws.read() {
                    Ok(Message::Text(t)) if t.as_str().contains("agent_hello") => {
                        let welcome = r#"{"type":"welcome","version":1,"server":"proxied","unmasked_lines":true}"#;
                        ws.send(Message::text(welcome)).unwrap();
                    }
                    Ok(Message::Binary(b)) => {
                        text.push_str(&acknowledge_lines(&mut ws, &b).1);
                        if text.lines().count() >= 3 {
                            break;
                        }
                    }
                    Ok(_) => {}
                    // What such a proxy does with an unmasked frame: drops the connection.
                    Err(tokio_tungstenite::tungstenite::Error::Protocol(_)) => {
                        refused += 1;
                        assert!(refused < 3, "the agent keeps sending unmasked batches");
                        break;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }
        (refused, text)
    });
    let mut agent = Agent::start(
        &format!("ws://127.0.0.1:{port}"),
        "app01",
        &[&files[0]],
        &[],
    );
    write_numbered(&files[0], "app", 1..=3);
    let (refused, text) = hub.join().unwrap();
    assert_eq!(refused, 1, "one connection broke on an unmasked frame");
    assert_eq!(numbers_in(&text, "app"), [1, 2, 3], "{text}");
    agent.proc.wait_stderr(&[
        "supergrep agent: no batch sent unmasked",
        "masking them from now on",
    ]);
    agent.proc.kill();
}

/// The agent ships a file's bytes as they are; the hub replaces invalid UTF-8 as it
/// does for its own files, and the lines around it are untouched.
#[test]
fn invalid_utf8_in_a_shipped_file_arrives_replaced() {
    let dir = tempdir();
    let files = log_files(dir.path(), &["app"]);
    let (hub, mut client) = hub_and_client(&[], &[]);
    let mut agent = Agent::start(&hub.agent_url(), "app01", &[&files[0]], &[]);
    support::files::append_bytes(&files[0], b"before\nbad \xff\xfe bytes\nfine line\n");
    client.wait_text("fine line");
    client.settle(Duration::from_millis(300));
    let texts: Vec<&str> = client.lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, ["before", "bad \u{fffd}\u{fffd} bytes", "fine line"]);
    agent.proc.kill();
}

/// The next WebSocket connection to `listener`, for the hubs played by a test.
fn accept_ws(
    listener: &std::net::TcpListener,
) -> tokio_tungstenite::tungstenite::WebSocket<std::net::TcpStream> {
    let (tcp, _) = listener.accept().unwrap();
    tcp.set_read_timeout(Some(PATIENCE)).unwrap();
    tokio_tungstenite::tungstenite::accept(tcp).unwrap()
}

/// What a hub does with a binary `lines` frame, for the hubs played by a test: splits
/// it into its JSON header and its lines, and acknowledges the batch.
fn acknowledge_lines<S: std::io::Read + std::io::Write>(
    ws: &mut tokio_tungstenite::tungstenite::WebSocket<S>,
    frame: &[u8],
) -> (serde_json::Value, String) {
    let nl = frame.iter().position(|&c| c == b'\n').unwrap();
    let head: serde_json::Value = serde_json::from_slice(&frame[..nl]).unwrap();
    let text = String::from_utf8(frame[nl + 1..].to_vec()).unwrap();
    let ack = format!(r#"{{"type":"ack","batch":{}}}"#, head["batch"]);
    ws.send(Message::text(ack)).unwrap();
    (head, text)
}

fn numbers_in(text: &str, prefix: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| support::agent::number_of(prefix, l))
        .collect()
}
