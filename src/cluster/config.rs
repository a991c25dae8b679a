//! The `[nats]` config section and the flags that say the same on the command line
//! (`agent`, `mark`): which servers, which stream, its shape, and the credentials.
//!
//! ```toml
//! [nats]
//! servers = ["nats://n1:4222", "nats://n2:4222"]
//! stream = "SUPERGREP"
//! replicas = 3
//! max_age = "7d"
//! max_bytes = 10737418240
//! token = "…"            # or user/password, or creds = "supergrep.creds"
//! tls_ca = "ca.crt"       # tls:// servers: also trust this CA (the --tls-ca rules)
//! ```
//! A `nats://TOKEN@host` or `nats://USER:PASSWORD@host` URL carries its credentials.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub const DEFAULT_STREAM: &str = "SUPERGREP";
/// JetStream allows at most 5 replicas of a stream.
const MAX_REPLICAS: usize = 5;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NatsConfigError {
    #[error("no NATS server given (--nats URL[,URL] or `servers` in [nats])")]
    NoServers,
    #[error("NATS server {url:?}: {why}")]
    BadUrl { url: String, why: String },
    #[error("[nats] replicas = {0}: JetStream keeps 1 to 5 replicas of a stream")]
    Replicas(usize),
    #[error("[nats] max_age = {value:?}: {why} (e.g. \"7d\", \"12h\")")]
    MaxAge { value: String, why: String },
    #[error("[nats] max_bytes = {0}: must be positive")]
    MaxBytes(i64),
    #[error("[nats] stream = {0:?}: a stream name has no spaces, `.`, `*`, `>`, `/` or `\\`")]
    StreamName(String),
    #[error(
        "a NATS user needs its password and a password its user (--nats-user/--nats-password)"
    )]
    UserWithoutPassword,
    #[error("give one kind of NATS credentials: a token, a user and password, or a creds file")]
    TwoCredentials,
}

/// The `[nats]` section, as written.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct NatsConfig {
    pub servers: Vec<String>,
    pub stream: String,
    pub replicas: usize,
    /// A humantime duration ("7d"); none: JetStream keeps messages for ever.
    pub max_age: Option<String>,
    pub max_bytes: Option<i64>,
    pub token: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    /// A `.creds` file (JWT and NKey seed).
    pub creds: Option<PathBuf>,
    pub tls_ca: Option<PathBuf>,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            servers: Vec::new(),
            stream: DEFAULT_STREAM.into(),
            replicas: 1,
            max_age: None,
            max_bytes: None,
            token: None,
            user: None,
            password: None,
            creds: None,
            tls_ca: None,
        }
    }
}

/// How to authenticate, once URLs and settings are taken together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    None,
    Token(String),
    UserPassword(String, String),
    Creds(PathBuf),
}

impl NatsConfig {
    /// Checks every setting; returns the settings with credentials taken out of the
    /// URLs (so that no URL printed in a message carries a secret).
    pub fn validated(&self) -> Result<Validated, NatsConfigError> {
        if self.servers.is_empty() {
            return Err(NatsConfigError::NoServers);
        }
        if !(1..=MAX_REPLICAS).contains(&self.replicas) {
            return Err(NatsConfigError::Replicas(self.replicas));
        }
        if self.stream.is_empty()
            || self
                .stream
                .chars()
                .any(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\'))
        {
            return Err(NatsConfigError::StreamName(self.stream.clone()));
        }
        let max_age = match &self.max_age {
            None => None,
            Some(v) => Some(
                humantime::parse_duration(v).map_err(|e| NatsConfigError::MaxAge {
                    value: v.clone(),
                    why: e.to_string(),
                })?,
            ),
        };
        if let Some(b) = self.max_bytes.filter(|b| *b <= 0) {
            return Err(NatsConfigError::MaxBytes(b));
        }
        let mut servers = Vec::new();
        let mut from_urls = Credentials::None;
        for url in &self.servers {
            let (clean, creds) = split_url(url)?;
            servers.push(clean);
            if creds != Credentials::None {
                from_urls = creds;
            }
        }
        let mut given = Vec::new();
        if let Some(t) = &self.token {
            given.push(Credentials::Token(t.clone()));
        }
        match (&self.user, &self.password) {
            (Some(u), Some(p)) => given.push(Credentials::UserPassword(u.clone(), p.clone())),
            (None, None) => {}
            _ => return Err(NatsConfigError::UserWithoutPassword),
        }
        if let Some(c) = &self.creds {
            given.push(Credentials::Creds(c.clone()));
        }
        let credentials = match given.len() {
            0 => from_urls,
            1 => given.remove(0),
            _ => return Err(NatsConfigError::TwoCredentials),
        };
        Ok(Validated {
            servers,
            stream: self.stream.clone(),
            replicas: self.replicas,
            max_age,
            max_bytes: self.max_bytes,
            credentials,
            tls_ca: self.tls_ca.clone(),
        })
    }
}

/// [`NatsConfig`] checked: what [`connect`](super::connect) and
/// [`stream`](super::stream) take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    /// `nats://host:port` (or `tls://…`), without credentials.
    pub servers: Vec<String>,
    pub stream: String,
    pub replicas: usize,
    pub max_age: Option<Duration>,
    pub max_bytes: Option<i64>,
    pub credentials: Credentials,
    pub tls_ca: Option<PathBuf>,
}

impl Validated {
    /// The servers as one string for messages: `nats://n1:4222, nats://n2:4222`.
    pub fn display(&self) -> String {
        self.servers.join(", ")
    }
}

/// `nats://TOKEN@host:port` → (`nats://host:port`, a token); `USER:PASS@` → user and
/// password. A bare `host:port` gets `nats://`.
fn split_url(url: &str) -> Result<(String, Credentials), NatsConfigError> {
    let bad = |why: &str| NatsConfigError::BadUrl {
        url: redact(url),
        why: why.into(),
    };
    let url = url.trim();
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s, r),
        None => ("nats", url),
    };
    if !matches!(scheme, "nats" | "tls") {
        return Err(bad("the scheme must be nats:// or tls://"));
    }
    let (userinfo, hostport) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let hostport = hostport.trim_end_matches('/');
    if hostport.is_empty() || hostport.contains('/') {
        return Err(bad("expected nats://HOST[:PORT]"));
    }
    if let Some((_, port)) = hostport.rsplit_once(':').filter(|(h, _)| !h.ends_with(']')) {
        if port.parse::<u16>().is_err() && !hostport.starts_with('[') {
            return Err(bad("the port is not a number from 0 to 65535"));
        }
    }
    let creds = match userinfo {
        None => Credentials::None,
        Some(u) => match u.split_once(':') {
            Some((user, pass)) => Credentials::UserPassword(user.into(), pass.into()),
            None if u.is_empty() => return Err(bad("empty credentials before @")),
            None => Credentials::Token(u.into()),
        },
    };
    Ok((format!("{scheme}://{hostport}"), creds))
}

/// A URL as it may be printed: credentials replaced by `***`.
fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://***@{host}"),
        _ => url.to_owned(),
    }
}

/// The NATS flags of `agent` and `mark`: the same keys as `[nats]`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NatsArgs {
    /// Publish to NATS JetStream instead of a hub: the cluster's servers, e.g.
    /// nats://n1:4222,nats://n2:4222 (nats://TOKEN@host works; tls:// for TLS).
    #[arg(long, value_name = "URL[,URL]", value_delimiter = ',')]
    pub nats: Vec<String>,

    /// Token for the NATS servers.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "SUPERGREP_NATS_TOKEN",
        hide_env_values = true
    )]
    pub nats_token: Option<String>,

    /// NATS credentials file (.creds: JWT and NKey seed).
    #[arg(long, value_name = "FILE")]
    pub nats_creds: Option<PathBuf>,

    /// NATS user (with --nats-password).
    #[arg(long, value_name = "USER", requires = "nats_password")]
    pub nats_user: Option<String>,

    /// NATS password (with --nats-user).
    #[arg(long, value_name = "PASSWORD", requires = "nats_user")]
    pub nats_password: Option<String>,
}

impl NatsArgs {
    pub fn given(&self) -> bool {
        !self.nats.is_empty()
    }

    /// The flags as a `[nats]` section (the stream settings at their defaults: the
    /// hubs create the stream; agents and `mark` only publish to it).
    pub fn to_config(&self, tls_ca: Option<PathBuf>) -> NatsConfig {
        NatsConfig {
            servers: self.nats.clone(),
            token: self.nats_token.clone(),
            user: self.nats_user.clone(),
            password: self.nats_password.clone(),
            creds: self.nats_creds.clone(),
            tls_ca,
            ..NatsConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_servers(servers: &[&str]) -> NatsConfig {
        NatsConfig {
            servers: servers.iter().map(|s| s.to_string()).collect(),
            ..NatsConfig::default()
        }
    }

    #[test]
    fn the_section_parses_with_its_defaults() -> anyhow::Result<()> {
        let c: NatsConfig = toml::from_str("servers = [\"nats://a:4222\"]")?;
        assert_eq!(c.stream, "SUPERGREP");
        assert_eq!(c.replicas, 1);
        let v = c.validated()?;
        assert_eq!(v.servers, ["nats://a:4222"]);
        assert_eq!(v.credentials, Credentials::None);
        assert!(toml::from_str::<NatsConfig>("server = []").is_err());
        Ok(())
    }

    #[test]
    fn credentials_come_from_urls_or_settings_but_one_kind() -> anyhow::Result<()> {
        let v = with_servers(&["nats://s3cret@a:4222", "b:4223"]).validated()?;
        assert_eq!(v.servers, ["nats://a:4222", "nats://b:4223"]);
        assert_eq!(v.credentials, Credentials::Token("s3cret".into()));
        let v = with_servers(&["nats://u:p@a"]).validated()?;
        assert_eq!(
            v.credentials,
            Credentials::UserPassword("u".into(), "p".into())
        );
        let mut c = with_servers(&["a"]);
        c.token = Some("t".into());
        c.creds = Some("x.creds".into());
        assert_eq!(c.validated(), Err(NatsConfigError::TwoCredentials));
        c.creds = None;
        c.user = Some("u".into());
        assert_eq!(c.validated(), Err(NatsConfigError::UserWithoutPassword));
        Ok(())
    }

    #[test]
    fn bad_values_name_what_is_wrong_without_the_secret() {
        assert_eq!(
            with_servers(&[]).validated(),
            Err(NatsConfigError::NoServers)
        );
        let e = with_servers(&["http://tok@a:1"]).validated();
        assert!(matches!(&e, Err(NatsConfigError::BadUrl { url, .. }) if url == "http://***@a:1"));
        let e = with_servers(&["nats://a:port"]).validated();
        assert!(matches!(e, Err(NatsConfigError::BadUrl { .. })));
        let mut c = with_servers(&["a"]);
        c.replicas = 7;
        assert_eq!(c.validated(), Err(NatsConfigError::Replicas(7)));
        c.replicas = 3;
        c.max_age = Some("a week".into());
        assert!(matches!(c.validated(), Err(NatsConfigError::MaxAge { .. })));
        c.max_age = Some("7d".into());
        assert_eq!(
            c.validated().map(|v| v.max_age),
            Ok(Some(Duration::from_secs(7 * 86400)))
        );
        c.stream = "a.b".into();
        assert!(matches!(c.validated(), Err(NatsConfigError::StreamName(_))));
    }
}
