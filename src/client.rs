//! Pieces shared by the programs that connect to a hub (`--connect`, `agent`, `mark`).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_tungstenite::tungstenite;

use crate::tls;

/// A WebSocket to a hub, over TLS or not.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One endpoint of a hub (`/ws`, `/agent`), as given on the command line:
/// `ws://`, `wss://`, or the `http://`/`https://` address of the web UI.
#[derive(Debug, Clone)]
pub struct HubEndpoint {
    /// With the token, if any.
    url: String,
    /// Without the token: for messages.
    display: String,
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// Why a connection to a hub did not open.
#[derive(Debug)]
pub enum ConnectError {
    /// 401: the token is wrong or missing. Retrying will not help.
    Refused,
    /// Down, unreachable, bad certificate…: worth retrying (the message says which).
    Unreachable(String),
}

/// Why a hub's URL cannot be used; `flag` names the option it came from.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("{flag} wants a ws:// or wss:// URL (e.g. ws://loghub:7070), not {url:?}")]
    Scheme { flag: &'static str, url: String },
    #[error("{flag}: no host in {url:?}")]
    NoHost { flag: &'static str, url: String },
    /// `wss://`, and no TLS client could be made (no roots, a bad `--tls-ca`).
    #[error("{flag}: {error}")]
    Tls {
        flag: &'static str,
        error: tls::TlsError,
    },
}

/// For `mark`, whose errors are still the text it prints.
impl HubEndpoint {
    /// `flag` names the option the URL came from, for the error message.
    pub fn new(
        hub: &str,
        endpoint: &str,
        token: Option<&str>,
        tls_ca: Option<&Path>,
        flag: &'static str,
    ) -> Result<HubEndpoint, EndpointError> {
        let (secure, rest) = if let Some(r) = hub.strip_prefix("wss://") {
            (true, r)
        } else if let Some(r) = hub.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = hub.strip_prefix("ws://") {
            (false, r)
        } else if let Some(r) = hub.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(EndpointError::Scheme {
                flag,
                url: hub.to_owned(),
            });
        };
        let rest = rest.split(['?', '#']).next().unwrap_or("");
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.is_empty() {
            return Err(EndpointError::NoHost {
                flag,
                url: hub.to_owned(),
            });
        }
        // A path is kept (a hub behind a proxy at /supergrep, say), the endpoint
        // added unless it is there already.
        let path = path.trim_end_matches('/');
        let path = path.strip_suffix(endpoint).unwrap_or(path);
        let scheme = if secure { "wss" } else { "ws" };
        let display = format!("{scheme}://{authority}{path}{endpoint}");
        let mut url = display.clone();
        if let Some(t) = token {
            url.push_str("?token=");
            url.push_str(&encode_query(t));
        }
        let tls = match secure {
            true => Some(
                tls::client_config(tls_ca).map_err(|error| EndpointError::Tls { flag, error })?,
            ),
            false => None,
        };
        Ok(HubEndpoint { url, display, tls })
    }

    /// `wss://loghub:7070/agent`, without the token.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// `host:port` (port 80/443 when not given).
    pub fn authority(&self) -> (String, u16) {
        let rest = self.display.split("://").nth(1).unwrap_or("");
        let authority = rest.split('/').next().unwrap_or(rest);
        let default = if self.tls.is_some() { 443 } else { 80 };
        match authority.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => (h.to_owned(), p.parse().unwrap_or(default)),
            _ => (authority.to_owned(), default),
        }
    }

    pub fn tls(&self) -> Option<&Arc<rustls::ClientConfig>> {
        self.tls.as_ref()
    }

    /// Opens the WebSocket (no Nagle: matches and acks are small and urgent).
    pub async fn connect(&self) -> Result<Ws, ConnectError> {
        let connector = self
            .tls
            .as_ref()
            .map(|c| tokio_tungstenite::Connector::Rustls(c.clone()));
        match tokio_tungstenite::connect_async_tls_with_config(
            self.url.as_str(),
            None,
            true,
            connector,
        )
        .await
        {
            Ok((ws, _)) => Ok(ws),
            Err(tungstenite::Error::Http(resp)) if resp.status() == 401 => {
                Err(ConnectError::Refused)
            }
            Err(e) => Err(ConnectError::Unreachable(tls::explain(&e))),
        }
    }
}

/// Between half and all of `d`, so clients that lost the same hub do not all come
/// back at the same moment.
pub fn jitter(d: Duration) -> Duration {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(d.as_nanos() as u64);
    d.mul_f64(0.5 + (h.finish() % 1000) as f64 / 2000.0)
}

/// Percent-encodes a query parameter value (a token, say).
pub fn encode_query(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_half_and_all() {
        for _ in 0..100 {
            let j = jitter(Duration::from_secs(2));
            assert!(j >= Duration::from_secs(1) && j <= Duration::from_secs(2));
        }
        assert_eq!(encode_query("a b&c"), "a%20b%26c");
    }

    #[test]
    fn hub_urls_take_every_spelling_and_keep_the_token_out_of_messages() -> anyhow::Result<()> {
        let e = HubEndpoint::new("ws://h:7070/", "/agent", Some("t k"), None, "--hub")?;
        assert_eq!(e.display(), "ws://h:7070/agent");
        assert_eq!(e.url, "ws://h:7070/agent?token=t%20k");
        assert_eq!(e.authority(), ("h".to_owned(), 7070));
        let e = HubEndpoint::new("http://h/sg/ws/", "/ws", None, None, "--connect");
        assert_eq!(
            e.map(|e| e.display).map_err(|e| e.to_string()),
            Ok("ws://h/sg/ws".to_owned())
        );
        let e = HubEndpoint::new("http://h", "/ws", None, None, "--connect")?;
        assert_eq!(e.display(), "ws://h/ws");
        assert_eq!(e.authority(), ("h".to_owned(), 80));
        let e = HubEndpoint::new("ws://[::1]:9/ws", "/ws", None, None, "--connect")?;
        assert_eq!(e.authority(), ("[::1]".to_owned(), 9));
        let err = HubEndpoint::new("loghub:7070", "/ws", None, None, "--connect")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--connect wants a ws:// or wss:// URL"),
            "{err}"
        );
        Ok(())
    }
}
