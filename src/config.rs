//! The hub's TOML config file, merged with the command line (flags win).
//!
//! ```toml
//! listen = "127.0.0.1:7070"
//! token = "s3cret"
//! allowed_origins = ["https://logs.example.com"]
//!
//! [[set]]
//! name = "web"
//! paths = ["/var/log/nginx/*.log", "/var/log/app/*.log"]
//!
//! [limits]
//! backlog_lines = 100000
//! ```
//! Unknown keys and bad values are errors that name the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// `supergrep serve --help` lists the same keys; keep them in step.
pub const KEYS_HELP: &str = "\
Config file keys (TOML):
  listen = \"127.0.0.1:7070\"        address to listen on
  token = \"…\"                      clients must send ?token=… on /ws (and /agent, markers)
  allowed_origins = [\"https://…\"]  browser origins allowed besides the hub's own
  allowed_hosts = [\"logs.example.com\"]  names the hub may be reached by (HTTP Host), besides
                                    localhost, this machine's hostname and any IP address
  metrics_token = \"…\"              also accepted on /metrics (Bearer or ?token=), e.g. for Prometheus
  trust_agent_time = false          take agents' line times as they say (else the hub's receive time)
  tls_cert = \"hub.crt\"  tls_key = \"hub.key\"   serve https:// and wss:// (PEM files)
  source_url = \"https://src/{path}#L{line}\"  web UI: link path/file.ext:123 in lines
  [[set]] name = \"web\"             a named log set…
          paths = [\"/var/log/*.log\"]  …and the files or globs it follows
  [limits]
  backlog_lines = 100000            recent lines kept for backlog and context
  client_queue = 10000              matches queued per client before the oldest are dropped
  max_line = 65536                  longer lines are cut (bytes)
  max_subscriptions_per_client = 32
  max_patterns_per_client = 1000    include + exclude patterns over all of a client's subscriptions
  max_patterns_per_address = 4000   the same over all connections from one IP address (IPv6: a /64)
  max_patterns = 20000              patterns of all clients and [[irc]] sinks together; past it, an
                                    address over its share (this / addresses holding patterns) gives way
  max_pattern_bytes = 2097152       compiled size of one pattern
  max_compiled_bytes = 536870912    compiled size of all patterns of all clients
  max_compiled_bytes_per_client = 134217728   compiled size of one client's patterns
  max_compiled_bytes_per_address = 268435456  the same over all connections from one IP address
  max_message_bytes = 1048576       largest WebSocket message accepted from a client
  max_clients = 10000               WebSocket clients at once
  max_backlog_request = 10000       largest `backlog` a subscribe may ask for
  max_context_lines = 1000          largest `before`/`after` of a context request
  max_connections_per_address = 1024  HTTP/WebSocket connections at once from one IP address
  http_header_timeout_secs = 10     a request's head must arrive within this (else closed)
  [syslog]
  udp = \"127.0.0.1:5514\"  tcp = \"127.0.0.1:5514\"  set = \"syslog\"   syslog input (RFC 5424/3164)
  max_connections = 1000            TCP senders at once (when full, the longest idle one goes)
  max_connections_per_address = 100  TCP senders at once from one IP address
  idle_timeout_secs = 600           a TCP sender silent this long is disconnected
  [[irc]]                           a standing IRC sink (repeatable):
  server = \"irc://irc.internal:6667\"  channel = \"#deploys\"  nick = \"supergrep\"  key = \"...\"
  include = [\"PHP Fatal\"]  exclude = [...]  ignore_case = false  streams = [\"web\"]
  color = false  format = \"{host} {path}: {text}\"  rate = 1.0  burst = 4
  tls_ca = \"ca.crt\"                 ircs://: also trust this CA (PEM)
  [nats]                            the cluster on NATS JetStream (see README):
  servers = [\"nats://n1:4222\"]  stream = \"SUPERGREP\"  replicas = 1  max_age = \"7d\"
  max_bytes = …  token = \"…\"  user = \"…\"  password = \"…\"  creds = \"x.creds\"  tls_ca = \"ca.crt\"";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: Option<SocketAddr>,
    pub token: Option<String>,
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Names (HTTP `Host`) the hub answers to besides localhost, its hostname and IP
    /// addresses: a DNS-rebinding page reaches it by a name of its own.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// A second token, for `/metrics` only (Prometheus).
    pub metrics_token: Option<String>,
    /// Take the time an agent gives its lines. Off, a line's time is when the hub
    /// received it: an agent (or whoever has the token) cannot date lines at will.
    #[serde(default)]
    pub trust_agent_time: bool,
    /// Web UI: turn `path/file.ext:123` in log lines into links, e.g.
    /// `https://src.example.com/repo/blob/main/{path}#L{line}`.
    pub source_url: Option<String>,
    /// Serve HTTPS/wss:// with this certificate chain and key (PEM).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    #[serde(default, rename = "set")]
    pub sets: Vec<LogSet>,
    #[serde(default)]
    pub limits: HubLimits,
    /// Standing IRC sinks: post matches as long as the hub runs.
    #[serde(default)]
    pub irc: Vec<IrcSink>,
    #[serde(default)]
    pub syslog: SyslogInput,
    /// The cluster on NATS JetStream (issue 27); none: the single hub of today.
    pub nats: Option<crate::cluster::NatsConfig>,
}

/// Syslog input (rsyslog, syslog-ng, Vector, Fluent Bit…).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyslogInput {
    pub udp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    /// Log set of the syslog streams.
    pub set: String,
    /// TCP connections at once; a new one past it closes the longest idle one.
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub idle_timeout_secs: u64,
}

impl Default for SyslogInput {
    fn default() -> Self {
        SyslogInput {
            udp: None,
            tcp: None,
            set: "syslog".into(),
            max_connections: 1000,
            max_connections_per_address: 100,
            idle_timeout_secs: 600,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IrcSink {
    /// `irc://host[:port]` (nick, password and `/#channel` may be in it too).
    pub server: String,
    pub channel: Option<String>,
    pub nick: Option<String>,
    pub key: Option<String>,
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub ignore_case: bool,
    /// Set names or `host:path` globs; empty: every stream.
    #[serde(default)]
    pub streams: Vec<String>,
    #[serde(default)]
    pub color: bool,
    /// Template, as `--irc-format`.
    pub format: Option<String>,
    /// Messages per second (default 1) and burst (default 4).
    pub rate: Option<f64>,
    pub burst: Option<u32>,
    /// `ircs://`: a CA to trust beside the system's (PEM).
    pub tls_ca: Option<PathBuf>,
}

impl IrcSink {
    /// The sink's target, from `server` plus `channel` and `key`.
    pub fn url(&self) -> String {
        let mut url = self.server.trim_end_matches('/').to_owned();
        // Values as they are, so escaped for the URL.
        if let Some(c) = &self.channel {
            url = format!("{url}/{}", crate::irc::percent_encode(c));
        }
        if let Some(k) = &self.key {
            url = format!("{url}?key={}", crate::irc::percent_encode(k));
        }
        url
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSet {
    pub name: String,
    pub paths: Vec<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HubLimits {
    pub backlog_lines: u64,
    pub client_queue: usize,
    pub max_line: usize,
    pub max_subscriptions_per_client: usize,
    pub max_patterns_per_client: usize,
    /// Over all connections from one address: a fifth of `max_patterns` by default,
    /// so that one address (four full clients) never holds the hub.
    pub max_patterns_per_address: usize,
    /// The matcher's bound on patterns (of clients and `[[irc]]` sinks together).
    pub max_patterns: usize,
    pub max_pattern_bytes: usize,
    pub max_compiled_bytes: usize,
    /// Compiled size of one connection's patterns: by default a quarter of the
    /// default `max_compiled_bytes`, so that one client (say 256 patterns at the
    /// 2 MiB each may take) never fills the hub.
    pub max_compiled_bytes_per_client: usize,
    /// The same over all connections from one address: by default half the total.
    pub max_compiled_bytes_per_address: usize,
    pub max_message_bytes: usize,
    pub max_clients: usize,
    pub max_backlog_request: usize,
    pub max_context_lines: usize,
    pub max_connections_per_address: usize,
    pub http_header_timeout_secs: u64,
}

impl Default for HubLimits {
    fn default() -> Self {
        HubLimits {
            backlog_lines: 100_000,
            client_queue: 10_000,
            max_line: 64 * 1024,
            max_subscriptions_per_client: 32,
            max_patterns_per_client: 1000,
            max_patterns_per_address: 4000,
            max_patterns: 20_000,
            max_pattern_bytes: 2 << 20,
            max_compiled_bytes: 512 << 20,
            max_compiled_bytes_per_client: 128 << 20,
            max_compiled_bytes_per_address: 256 << 20,
            max_message_bytes: 1 << 20,
            max_clients: 10_000,
            max_backlog_request: 10_000,
            max_context_lines: 1000,
            max_connections_per_address: 1024,
            http_header_timeout_secs: 10,
        }
    }
}

/// Why a config file cannot be used: it cannot be read, or what it says is wrong.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read config {path}: {error}")]
    Unreadable {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("config {path}: {error}")]
    Invalid { path: PathBuf, error: ConfigError },
}

/// What is wrong in a config text; each message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not TOML, an unknown key, or a value of the wrong type (toml names the key).
    #[error(transparent)]
    Toml(#[from] toml::de::Error),
    #[error("{0} must be greater than 0")]
    Zero(&'static str),
    #[error("limits.max_line must be at least 16")]
    MaxLineBelow16,
    #[error("set name {0:?} must be non-empty and without ':'")]
    SetName(String),
    #[error("set {0:?} is defined twice")]
    SetTwice(String),
    #[error("set {0:?} has no paths")]
    SetWithoutPaths(String),
    #[error("irc[{index}]: {error}")]
    IrcUrl {
        index: usize,
        error: crate::irc::IrcUrlError,
    },
    #[error("irc[{0}].rate must be above 0 (messages a second, e.g. 0.5)")]
    IrcRate(usize),
    #[error("irc[{index}].format: {error}")]
    IrcFormat {
        index: usize,
        error: crate::irc::IrcFormatError,
    },
    #[error("token must not be empty")]
    EmptyToken,
    #[error("metrics_token must not be empty")]
    EmptyMetricsToken,
    #[error("allowed_hosts: {0:?} must be a host name alone (no port, scheme or path)")]
    AllowedHost(String),
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, LoadError> {
        let text =
            crate::regular_file::read_to_string(path).map_err(|error| LoadError::Unreadable {
                path: path.to_owned(),
                error,
            })?;
        Config::parse(&text).map_err(|error| LoadError::Invalid {
            path: path.to_owned(),
            error,
        })
    }

    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        for (key, value) in [
            ("limits.client_queue", l.client_queue),
            ("limits.max_line", l.max_line),
            (
                "limits.max_subscriptions_per_client",
                l.max_subscriptions_per_client,
            ),
            ("limits.max_patterns_per_client", l.max_patterns_per_client),
            (
                "limits.max_patterns_per_address",
                l.max_patterns_per_address,
            ),
            ("limits.max_patterns", l.max_patterns),
            ("limits.max_pattern_bytes", l.max_pattern_bytes),
            ("limits.max_compiled_bytes", l.max_compiled_bytes),
            (
                "limits.max_compiled_bytes_per_client",
                l.max_compiled_bytes_per_client,
            ),
            (
                "limits.max_compiled_bytes_per_address",
                l.max_compiled_bytes_per_address,
            ),
            ("limits.max_message_bytes", l.max_message_bytes),
            ("limits.max_clients", l.max_clients),
            (
                "limits.max_connections_per_address",
                l.max_connections_per_address,
            ),
            (
                "limits.http_header_timeout_secs",
                l.http_header_timeout_secs as usize,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(key));
            }
        }
        let sl = &self.syslog;
        for (key, value) in [
            ("syslog.max_connections", sl.max_connections as u64),
            (
                "syslog.max_connections_per_address",
                sl.max_connections_per_address as u64,
            ),
            ("syslog.idle_timeout_secs", sl.idle_timeout_secs),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(key));
            }
        }
        if l.max_line < 16 {
            return Err(ConfigError::MaxLineBelow16);
        }
        let mut names = std::collections::HashSet::new();
        for set in &self.sets {
            if set.name.is_empty() || set.name.contains(':') {
                return Err(ConfigError::SetName(set.name.clone()));
            }
            if !names.insert(&set.name) {
                return Err(ConfigError::SetTwice(set.name.clone()));
            }
            if set.paths.is_empty() {
                return Err(ConfigError::SetWithoutPaths(set.name.clone()));
            }
        }
        for (index, sink) in self.irc.iter().enumerate() {
            crate::irc::IrcTarget::parse(&sink.url())
                .map_err(|error| ConfigError::IrcUrl { index, error })?;
            if sink.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
                return Err(ConfigError::IrcRate(index));
            }
            if let Some(f) = &sink.format {
                crate::irc::template(f).map_err(|error| ConfigError::IrcFormat { index, error })?;
            }
        }
        if self.token.as_deref() == Some("") {
            return Err(ConfigError::EmptyToken);
        }
        if self.metrics_token.as_deref() == Some("") {
            return Err(ConfigError::EmptyMetricsToken);
        }
        if let Some(h) = self.allowed_hosts.iter().find(|h| {
            h.is_empty() || h.contains(|c: char| c == ':' || c == '/' || c.is_whitespace())
        }) {
            return Err(ConfigError::AllowedHost(h.clone()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_with_the_key_named() -> anyhow::Result<()> {
        let c = Config::parse(
            "listen = \"127.0.0.1:9000\"\n[[set]]\nname = \"web\"\npaths = [\"/x/*.log\"]\n[limits]\nbacklog_lines = 5\n",
        )
        ?;
        assert_eq!(c.sets[0].name, "web");
        assert_eq!(c.limits.backlog_lines, 5);
        assert_eq!(c.limits.client_queue, 10_000);
        let e = Config::parse("lisen = \"x\"").unwrap_err().to_string();
        assert!(e.contains("lisen"), "{e}");
        let e = Config::parse("[limits]\nclient_queue = -1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("client_queue"), "{e}");
        let e = Config::parse("[limits]\nclient_queue = 0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("limits.client_queue"), "{e}");
        let e = Config::parse("listen = \"nope\"").unwrap_err().to_string();
        assert!(e.contains("listen"), "{e}");
        Ok(())
    }
}

#[cfg(test)]
mod example {
    #[test]
    fn the_shipped_example_parses() -> anyhow::Result<()> {
        use anyhow::Context;
        let example = include_str!("../supergrep.example.toml");
        super::Config::parse(example).context("parsing supergrep.example.toml")?;
        // The keys shown commented out are valid too.
        let uncommented: String = example
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(k)
                    if k.starts_with('[')
                        || (k.contains(" = ")
                            && k.starts_with(|c: char| c.is_ascii_lowercase())) =>
                {
                    k
                }
                _ => l,
            })
            .flat_map(|l| [l, "\n"])
            .collect();
        let config = super::Config::parse(&uncommented)
            .context("parsing the example with its keys uncommented")?;
        assert!(config.tls_cert.is_some() && config.irc[0].tls_ca.is_some());
        Ok(())
    }
}
