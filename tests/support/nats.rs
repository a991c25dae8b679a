//! A real three-node NATS JetStream cluster on loopback (the Debian `nats-server`):
//! each node with its own client, route and monitor port and its own store directory
//! under one temporary directory. Nodes can be killed (`kill -9`) and started again
//! on the same ports and store; the cluster is stopped when dropped.
//!
//! "Ready" is what the server itself says: every running node's `/healthz` answers 200
//! and its `/jsz` names a meta leader. No fixed sleep.

use std::path::PathBuf;
use std::process::Command;

use super::http::try_http;
use super::proc::Proc;
use super::wait::wait_until;

/// One node: its ports, its config file, and its process while it runs.
pub struct Node {
    pub name: String,
    pub client_port: u16,
    pub route_port: u16,
    pub monitor_port: u16,
    config: PathBuf,
    proc: Option<Proc>,
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    /// Holds the config files and the store directories.
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Three nodes, no authentication.
    pub fn start() -> Cluster {
        Cluster::start_with("")
    }

    /// Three nodes with `extra` added to every node's config (an `authorization { … }`
    /// block, say).
    pub fn start_with(extra: &str) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("supergrep-nats-test")
            .tempdir()
            .unwrap();
        let ports: Vec<(u16, u16, u16)> = (0..3)
            .map(|_| (super::free_port(), super::free_port(), super::free_port()))
            .collect();
        let nodes = (0..3)
            .map(|i| {
                let name = format!("n{}", i + 1);
                let (client_port, route_port, monitor_port) = ports[i];
                let store = dir.path().join(format!("{name}-store"));
                let routes: Vec<String> = ports
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, (_, r, _))| format!("\"nats-route://127.0.0.1:{r}\""))
                    .collect();
                let config = dir.path().join(format!("{name}.conf"));
                std::fs::write(
                    &config,
                    format!(
                        "server_name: {name}\n\
                         listen: 127.0.0.1:{client_port}\n\
                         http: 127.0.0.1:{monitor_port}\n\
                         jetstream {{ store_dir: \"{}\" }}\n\
                         cluster {{\n  name: supergrep-test\n  listen: 127.0.0.1:{route_port}\n  \
                         routes: [{}]\n}}\n{extra}\n",
                        store.display(),
                        routes.join(", ")
                    ),
                )
                .unwrap();
                Node {
                    name,
                    client_port,
                    route_port,
                    monitor_port,
                    config,
                    proc: None,
                }
            })
            .collect();
        let mut cluster = Cluster { nodes, _dir: dir };
        for i in 0..3 {
            cluster.start_node(i);
        }
        cluster.wait_ready();
        cluster
    }

    /// `nats://127.0.0.1:P1,nats://127.0.0.1:P2,…`: every node, as `--nats` takes it.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts node `i` (again), on its ports and its store.
    pub fn start_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let mut cmd = Command::new(super::tool("nats-server", "nats-server"));
        cmd.arg("-c").arg(&node.config);
        let mut proc = Proc::spawn(&format!("nats-server {}", node.name), cmd);
        proc.wait_stderr(&["Server is ready"]);
        node.proc = Some(proc);
    }

    /// `kill -9` node `i`.
    pub fn kill_node(&mut self, i: usize) {
        if let Some(mut p) = self.nodes[i].proc.take() {
            p.kill();
        }
    }

    /// Stops every node (`kill -9`).
    pub fn stop_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill_node(i);
        }
    }

    /// Waits until every running node is healthy and knows a JetStream meta leader.
    pub fn wait_ready(&self) {
        wait_until("the NATS cluster to elect a JetStream meta leader", || {
            self.nodes
                .iter()
                .filter(|n| n.proc.is_some())
                .all(|n| n.healthy() && n.meta_leader().is_some())
        });
    }
}

impl Node {
    fn healthy(&self) -> bool {
        matches!(
            try_http(self.monitor_port, "GET", "/healthz", &[], ""),
            Ok((200, _))
        )
    }

    /// The meta leader this node knows of, from its `/jsz`.
    pub fn meta_leader(&self) -> Option<String> {
        let (status, body) = try_http(self.monitor_port, "GET", "/jsz", &[], "").ok()?;
        if status != 200 {
            return None;
        }
        let jsz: serde_json::Value = serde_json::from_str(&body).ok()?;
        let leader = jsz.pointer("/meta_cluster/leader")?.as_str()?;
        (!leader.is_empty()).then(|| leader.to_owned())
    }

    pub fn running(&self) -> bool {
        self.proc.is_some()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}
