//! A connection to the NATS cluster from the checked settings: credentials, TLS (the
//! `--tls-ca` rules of [`crate::tls`]: the system's roots plus the given CA), and an
//! error that names the servers when they refuse us, so that a caller exits with it
//! instead of retrying for ever.

use std::time::Duration;

use async_nats::{ConnectErrorKind, ConnectOptions, Event};

use super::config::{Credentials, NatsConfigError, Validated};
use crate::tls::TlsError;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Config(#[from] NatsConfigError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot read the NATS creds file {path}: {why}")]
    Creds { path: String, why: String },
    /// Wrong credentials: trying again will not help.
    #[error("the NATS server at {servers} refused the credentials ({why})")]
    Refused { servers: String, why: String },
    /// Down or unreachable now: worth trying again.
    #[error("cannot reach the NATS server at {servers}: {why}")]
    Unreachable { servers: String, why: String },
}

impl ConnectError {
    pub fn is_permanent(&self) -> bool {
        !matches!(self, ConnectError::Unreachable { .. })
    }
}

/// Connects as `client_name`. Once connected the client reconnects by itself (to
/// any of the servers, for ever); disconnects and reconnects are logged.
pub async fn connect(
    cfg: &Validated,
    client_name: &str,
) -> Result<async_nats::Client, ConnectError> {
    let options = options(cfg, client_name).await?;
    let servers: Vec<async_nats::ServerAddr> = cfg
        .servers
        .iter()
        .map(|s| {
            s.parse()
                .map_err(|e: std::io::Error| NatsConfigError::BadUrl {
                    url: s.clone(),
                    why: e.to_string(),
                })
        })
        .collect::<Result<_, _>>()?;
    options.connect(servers).await.map_err(|e| {
        let servers = cfg.display();
        let why = e.to_string();
        match e.kind() {
            ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => {
                ConnectError::Refused { servers, why }
            }
            _ => ConnectError::Unreachable { servers, why },
        }
    })
}

async fn options(cfg: &Validated, client_name: &str) -> Result<ConnectOptions, ConnectError> {
    let options =
        match &cfg.credentials {
            Credentials::None => ConnectOptions::new(),
            Credentials::Token(t) => ConnectOptions::with_token(t.clone()),
            Credentials::UserPassword(u, p) => {
                ConnectOptions::with_user_and_password(u.clone(), p.clone())
            }
            Credentials::Creds(path) => ConnectOptions::new()
                .credentials_file(path)
                .await
                .map_err(|e| ConnectError::Creds {
                    path: path.display().to_string(),
                    why: e.to_string(),
                })?,
        };
    let mut options = options
        .name(client_name)
        .connection_timeout(Duration::from_secs(5))
        .event_callback(|event| async move {
            match event {
                Event::Disconnected => crate::say!("supergrep: lost the NATS server; reconnecting"),
                Event::Connected => tracing::info!("connected to NATS"),
                other => tracing::warn!("NATS: {other}"),
            }
        });
    let tls = cfg.servers.iter().any(|s| s.starts_with("tls://"));
    if tls || cfg.tls_ca.is_some() {
        let config = crate::tls::client_config(cfg.tls_ca.as_deref())?;
        options = options
            .tls_client_config((*config).clone())
            .require_tls(tls);
    }
    Ok(options)
}
