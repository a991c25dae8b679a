//! supergrep on NATS JetStream (issue 27): a real three-node `nats-server` cluster on
//! loopback, the real `supergrep` binary, and an `async-nats` client in the test that
//! reads back what landed in the stream.

mod support;

use support::nats::Cluster;

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
