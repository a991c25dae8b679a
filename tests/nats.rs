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
