//! supergrep on NATS JetStream (issue 27): a real three-node `nats-server` cluster on
//! loopback, the real `supergrep` binary, and an `async-nats` client in the test that
//! reads back what landed in the stream.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::agent::{assert_exactly_once, number_of, Writer};
use support::files::empty;
use support::nats::Cluster;
use support::proc::{bin, Proc};
use support::wait::PATIENCE;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// `--nats`'s comma list as async-nats takes it.
fn servers(urls: &str) -> Vec<async_nats::ServerAddr> {
    urls.split(',').map(|u| u.parse().unwrap()).collect()
}

#[test]
fn the_harness_cluster_keeps_an_r3_stream_across_a_kill() {
    let mut cluster = Cluster::start();
    let rt = runtime();
    let urls = cluster.urls();
    let js = rt.block_on(async {
        let client = async_nats::connect(servers(&urls)).await.unwrap();
        let js = async_nats::jetstream::new(client);
        js.create_stream(async_nats::jetstream::stream::Config {
            name: "HARNESS".into(),
            subjects: vec!["harness.>".into()],
            num_replicas: 3,
            ..Default::default()
        })
        .await
        .unwrap();
        js.publish("harness.a", "one".into())
            .await
            .unwrap()
            .await
            .unwrap();
        js
    });
    cluster.kill_node(0);
    cluster.start_node(0);
    cluster.wait_ready();
    let messages = rt.block_on(async {
        js.publish("harness.a", "two".into())
            .await
            .unwrap()
            .await
            .unwrap();
        let mut stream = js.get_stream("HARNESS").await.unwrap();
        stream.info().await.unwrap().state.messages
    });
    assert_eq!(
        messages, 2,
        "both messages in the stream after node 1 came back"
    );
}

/// `[nats]` with these servers and `replicas`, checked.
fn settings(urls: &str, replicas: usize) -> supergrep::cluster::config::Validated {
    supergrep::cluster::NatsConfig {
        servers: urls.split(',').map(String::from).collect(),
        replicas,
        ..Default::default()
    }
    .validated()
    .unwrap()
}

#[test]
fn the_stream_is_created_when_missing_and_another_shape_is_refused_by_name() {
    let cluster = Cluster::start();
    let rt = runtime();
    let r3 = settings(&cluster.urls(), 3);
    rt.block_on(async {
        let client = supergrep::cluster::connect::connect(&r3, "test")
            .await
            .unwrap();
        let js = async_nats::jetstream::new(client);
        let mut stream = supergrep::cluster::stream::ensure(&js, &r3).await.unwrap();
        let info = stream.info().await.unwrap();
        assert_eq!(info.config.num_replicas, 3);
        let mut subjects = info.config.subjects.clone();
        subjects.sort();
        assert_eq!(subjects, ["supergrep.lines.>", "supergrep.markers"]);
        // The same shape again: taken as it is.
        supergrep::cluster::stream::ensure(&js, &r3).await.unwrap();
        let r1 = settings(&r3.servers.join(","), 1);
        let refused = match supergrep::cluster::stream::ensure(&js, &r1).await {
            Ok(_) => panic!("an R3 stream is not what replicas = 1 asks for"),
            Err(e) => e.to_string(),
        };
        assert!(
            refused.contains("SUPERGREP") && refused.contains("3 replicas, not 1"),
            "{refused}"
        );
    });
}

/// `supergrep agent --nats URLS --name NAME --set web PATH` plus `args`.
fn nats_agent(urls: &str, name: &str, path: &Path, args: &[&str]) -> Proc {
    let mut cmd = bin();
    cmd.env_remove("SUPERGREP_NATS_TOKEN")
        .args(["agent", "--nats", urls, "--name", name, "--set", "web"])
        .args(args)
        .arg(path);
    let mut agent = Proc::spawn(&format!("agent {name}"), cmd);
    agent.wait_stderr(&["publishing to NATS at"]);
    agent.wait_following(path);
    agent
}

/// What the stream holds, read back message by message (by sequence, from the
/// first not read yet): each agent's line numbers in stream order, and the headers
/// of the messages.
struct StreamReader {
    stream: async_nats::jetstream::stream::Stream,
    next: u64,
    /// host (from the headers) → line numbers in stream order.
    numbers: HashMap<String, Vec<u64>>,
    subjects: Vec<String>,
    paths: Vec<String>,
}

impl StreamReader {
    async fn new(js: &async_nats::jetstream::Context) -> StreamReader {
        StreamReader {
            stream: js.get_stream("SUPERGREP").await.unwrap(),
            next: 1,
            numbers: HashMap::new(),
            subjects: Vec::new(),
            paths: Vec::new(),
        }
    }

    /// Reads what was stored since the last call (a call fails while the stream has
    /// no leader: then it reads nothing this time).
    async fn read_new(&mut self) {
        let Ok(info) = self.stream.info().await else {
            return;
        };
        let last = info.state.last_sequence;
        while self.next <= last {
            let Ok(m) = self.stream.get_raw_message(self.next).await else {
                return;
            };
            self.take(&m.subject, &m.headers, &m.payload);
            self.next += 1;
        }
    }

    /// Reads everything stored since the last call through a pull consumer (fast:
    /// batches of 1,000), until the stream's last message is read. A consumer that
    /// cannot be made or read now (a busy machine, a leader just elected) is made
    /// again from the first message not read, bounded by [`PATIENCE`].
    async fn read_rest(&mut self) {
        use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
        let deadline = std::time::Instant::now() + PATIENCE;
        let last = loop {
            match self.stream.info().await {
                Ok(info) => break info.state.last_sequence,
                Err(e) => assert!(std::time::Instant::now() < deadline, "stream info: {e}"),
            }
        };
        while self.next <= last {
            assert!(
                std::time::Instant::now() < deadline,
                "gave up reading the stream at {} of {last}",
                self.next
            );
            let consumer = self
                .stream
                .create_consumer(pull::Config {
                    deliver_policy: DeliverPolicy::ByStartSequence {
                        start_sequence: self.next,
                    },
                    ack_policy: AckPolicy::None,
                    ..Default::default()
                })
                .await;
            let Ok(consumer) = consumer else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            while self.next <= last {
                let batch = consumer
                    .fetch()
                    .max_messages(1000)
                    .expires(Duration::from_secs(1))
                    .messages()
                    .await;
                let Ok(mut batch) = batch else { break };
                while let Some(Ok(m)) = futures_util::StreamExt::next(&mut batch).await {
                    let Ok(info) = m.info() else { break };
                    let seq = info.stream_sequence;
                    let headers = m.headers.clone().unwrap_or_default();
                    self.take(&m.subject, &headers, &m.payload);
                    self.next = seq + 1;
                }
            }
        }
    }

    fn take(&mut self, subject: &str, headers: &async_nats::HeaderMap, payload: &[u8]) {
        let host = headers
            .get("Supergrep-Host")
            .map(|v| v.to_string())
            .expect("every message names its host");
        self.paths.push(
            headers
                .get("Supergrep-Path")
                .map(|v| v.to_string())
                .unwrap_or_default(),
        );
        self.subjects.push(subject.to_owned());
        let text = std::str::from_utf8(payload).unwrap();
        assert!(text.ends_with('\n'), "a batch is whole lines: {text:?}");
        for line in text.lines() {
            let n = number_of(&host, line).unwrap_or_else(|| panic!("not ours: {line:?}"));
            self.numbers.entry(host.clone()).or_default().push(n);
        }
    }

    /// The number of the last line stored for `host` (on `subject`), without reading
    /// the rest; 0 while the stream has no leader to ask.
    async fn last_stored(&self, subject: &str, host: &str) -> u64 {
        match self.stream.get_last_raw_message_by_subject(subject).await {
            Ok(m) => std::str::from_utf8(&m.payload)
                .ok()
                .and_then(|t| t.lines().last())
                .and_then(|l| number_of(host, l))
                .unwrap_or(0),
            Err(_) => 0,
        }
    }

    fn last_of(&self, host: &str) -> u64 {
        self.numbers
            .get(host)
            .and_then(|n| n.last().copied())
            .unwrap_or(0)
    }
}

fn log_files(dir: &Path, names: &[&str]) -> Vec<PathBuf> {
    names
        .iter()
        .map(|n| empty(dir.join(format!("{n}.log"))))
        .collect()
}

/// Waits until the stream has line `last` of every host (the last message of each
/// host's subject), bounded by [`PATIENCE`].
fn wait_stored(rt: &tokio::runtime::Runtime, reader: &StreamReader, hosts: &[&str], last: u64) {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let got: Vec<u64> = hosts
            .iter()
            .map(|h| {
                let subject = supergrep::cluster::subject::lines("web", h);
                rt.block_on(reader.last_stored(&subject, h))
            })
            .collect();
        if got.iter().all(|n| *n >= last) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "gave up waiting for line {last} of {hosts:?} in the stream: got {got:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn three_agents_land_every_line_once_in_order_while_a_node_is_killed() {
    let mut cluster = Cluster::start();
    let rt = runtime();
    let urls = cluster.urls();
    let r3 = settings(&urls, 3);
    let js = rt.block_on(async {
        let client = supergrep::cluster::connect::connect(&r3, "test")
            .await
            .unwrap();
        let js = async_nats::jetstream::new(client);
        supergrep::cluster::stream::ensure(&js, &r3).await.unwrap();
        js
    });
    let dir = tempfile::Builder::new()
        .prefix("supergrep-nats-test")
        .tempdir()
        .unwrap();
    let hosts = ["web01", "web02.example.com", "web 03"];
    let files = log_files(dir.path(), &["a", "b", "c"]);
    let _agents: Vec<Proc> = hosts
        .iter()
        .zip(&files)
        .map(|(h, f)| nats_agent(&urls, h, f, &[]))
        .collect();
    let writer = Writer::start(
        hosts
            .iter()
            .zip(&files)
            .map(|(h, f)| (h.to_string(), f.clone()))
            .collect(),
        Duration::from_millis(2),
    );
    let mut reader = rt.block_on(StreamReader::new(&js));
    wait_stored(&rt, &reader, &hosts, 100);
    // Kill the stream's leader: the agents' batches in flight to it are lost and
    // must be sent again, to the new leader, without a gap or a double.
    let leader = rt
        .block_on(reader.stream.info())
        .unwrap()
        .cluster
        .as_ref()
        .and_then(|c| c.leader.clone())
        .expect("an R3 stream has a leader");
    let i = cluster.nodes.iter().position(|n| n.name == leader).unwrap();
    cluster.kill_node(i);
    let at_kill = writer.written();
    wait_stored(&rt, &reader, &hosts, at_kill + 200);
    let last = writer.stop();
    wait_stored(&rt, &reader, &hosts, last);
    // A late double would come within the agents' retry; give it the time of one
    // more round of reading after their acks (not a timing assertion: more time
    // could only find more doubles).
    std::thread::sleep(Duration::from_millis(500));
    rt.block_on(reader.read_rest());
    for h in hosts {
        assert_exactly_once(h, &reader.numbers[h], 1, last);
    }
    assert!(
        reader.subjects.iter().all(|s| [
            "supergrep.lines.web.web01",
            "supergrep.lines.web.web02~2Eexample~2Ecom",
            "supergrep.lines.web.web~2003"
        ]
        .contains(&s.as_str())),
        "{:?}",
        reader
            .subjects
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
    );
    let paths: std::collections::BTreeSet<_> = reader.paths.iter().cloned().collect();
    let want: std::collections::BTreeSet<_> =
        files.iter().map(|f| f.display().to_string()).collect();
    assert_eq!(paths, want);
}

#[test]
fn wrong_nats_credentials_end_the_agent_with_an_error_naming_the_server() {
    let cluster = Cluster::start_with("authorization { token: \"right\" }");
    let port = cluster.nodes[0].client_port;
    let dir = tempfile::Builder::new()
        .prefix("supergrep-nats-test")
        .tempdir()
        .unwrap();
    let file = empty(dir.path().join("a.log"));
    let mut cmd = bin();
    cmd.env_remove("SUPERGREP_NATS_TOKEN").args([
        "agent",
        "--nats",
        &format!("nats://wrong@127.0.0.1:{port}"),
        "--name",
        "web01",
    ]);
    cmd.arg(&file);
    let exited = support::proc::run_to_exit(cmd, "agent with a wrong token");
    assert_eq!(exited.code, 2, "{}", exited.stderr);
    assert!(
        exited.stderr.contains(&format!("nats://127.0.0.1:{port}"))
            && exited.stderr.contains("refused the credentials")
            && !exited.stderr.contains("wrong"),
        "{}",
        exited.stderr
    );

    // The right token, from the environment: the agent publishes (and says the stream
    // is missing, which no hub created here, until the test creates it).
    let mut cmd = bin();
    cmd.env("SUPERGREP_NATS_TOKEN", "right").args([
        "agent",
        "--nats",
        &format!("nats://127.0.0.1:{port}"),
        "--name",
        "web01",
    ]);
    cmd.arg(&file);
    let mut agent = Proc::spawn("agent with the right token", cmd);
    agent.wait_stderr(&["publishing to NATS at"]);
    agent.wait_following(&file);
    support::files::append(&file, "web01 line 000001\n");
    agent.wait_stderr(&["no JetStream stream on NATS at"]);
    let rt = runtime();
    let cfg = supergrep::cluster::NatsConfig {
        servers: vec![format!("nats://127.0.0.1:{port}")],
        token: Some("right".into()),
        ..Default::default()
    };
    let r1 = cfg.validated().unwrap();
    rt.block_on(async {
        let client = supergrep::cluster::connect::connect(&r1, "test")
            .await
            .unwrap();
        let js = async_nats::jetstream::new(client);
        supergrep::cluster::stream::ensure(&js, &r1).await.unwrap();
        let mut reader = StreamReader::new(&js).await;
        let deadline = std::time::Instant::now() + PATIENCE;
        while reader.last_of("web01") < 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "the line never landed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
            reader.read_new().await;
        }
        assert_eq!(reader.numbers["web01"], [1]);
    });
}

#[test]
fn mark_publishes_the_marker_to_the_stream() {
    let cluster = Cluster::start();
    let urls = cluster.urls();
    let mark = |text: &str| {
        let mut cmd = bin();
        cmd.env_remove("SUPERGREP_NATS_TOKEN")
            .args(["mark", "--nats", &urls, text]);
        support::proc::run_to_exit(cmd, "supergrep mark --nats")
    };
    // No stream yet: JetStream cannot take it, and says so.
    let refused = mark("too early");
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("did not take the marker") && refused.stderr.contains("127.0.0.1"),
        "{}",
        refused.stderr
    );
    let rt = runtime();
    let r3 = settings(&urls, 3);
    rt.block_on(async {
        let client = supergrep::cluster::connect::connect(&r3, "test")
            .await
            .unwrap();
        let js = async_nats::jetstream::new(client);
        supergrep::cluster::stream::ensure(&js, &r3).await.unwrap();
    });
    let sent = mark("deploy 4521 by dog");
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    rt.block_on(async {
        let client = supergrep::cluster::connect::connect(&r3, "test")
            .await
            .unwrap();
        let js = async_nats::jetstream::new(client);
        let stream = js.get_stream("SUPERGREP").await.unwrap();
        let m = stream
            .get_last_raw_message_by_subject("supergrep.markers")
            .await
            .unwrap();
        let marker: supergrep::cluster::marker::MarkerMessage =
            serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(marker.text, "deploy 4521 by dog");
        assert!(
            humantime::parse_rfc3339_weak(&marker.ts).is_ok(),
            "{}",
            marker.ts
        );
        assert_eq!(
            m.sequence, 1,
            "the marker refused before the stream is not in it"
        );
    });
}
