//! The `Host` check, against DNS rebinding: a page on `evil.example` whose name
//! is made to resolve to 127.0.0.1 talks to the hub as its own origin (the Origin
//! check sees nothing foreign), but its requests say `Host: evil.example`. Such a
//! page can only reach the hub by a name, never by an IP address, so the hub
//! answers to any IP address (listening on 0.0.0.0 it works for each of its
//! addresses), to `localhost` and `*.localhost`, to this machine's hostname, and to
//! the names in `allowed_hosts`; any other name is refused with 403.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::{refuse, ServerState};

/// The names to answer to besides IP addresses and localhost: `configured` and the
/// hostname (full and short), lowercase, without a trailing dot.
pub fn allowed(configured: &[String]) -> Vec<String> {
    let mut names: Vec<String> = configured.iter().map(|h| normalize(h)).collect();
    let me = normalize(&crate::line::local_hostname());
    if let Some((short, _)) = me.split_once('.') {
        names.push(short.to_owned());
    }
    names.push(me);
    names.retain(|n| !n.is_empty());
    names
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The name or address of a `Host` value, without its port.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Whether the hub answers to `host` (a `Host` header's value).
pub fn host_ok(allowed: &[String], host: &str) -> bool {
    let name = normalize(host_name(host.trim()));
    name.parse::<IpAddr>().is_ok()
        || name == "localhost"
        || name.ends_with(".localhost")
        || allowed.contains(&name)
}

/// Refuses requests for a name the hub does not answer to. No `Host` at all
/// (HTTP/1.0 tools) is no browser's request: let through.
pub async fn check(
    State(state): State<Arc<ServerState>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request.headers().get(header::HOST).map(|v| v.to_str());
    match host {
        None => next.run(request).await,
        Some(Ok(h)) if host_ok(&state.allowed_hosts, h) => next.run(request).await,
        Some(h) => {
            let h = h.unwrap_or("?").to_owned();
            refuse(
                &state,
                StatusCode::FORBIDDEN,
                &format!(
                    "forbidden: this hub does not answer to the name {h:?} (a DNS-rebinding \
                     page?); reach it by IP address or localhost, or add the name to \
                     allowed_hosts in its config"
                ),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_addresses_localhost_and_configured_names_pass() {
        let allowed = allowed(&["Logs.Example.com.".to_owned()]);
        for ok in [
            "127.0.0.1:7070",
            "10.1.2.3",
            "[::1]:7070",
            "[fe80::1]",
            "localhost:7070",
            "LOCALHOST",
            "app.localhost:80",
            "logs.example.com:443",
            "logs.example.com",
        ] {
            assert!(host_ok(&allowed, ok), "{ok}");
        }
        for bad in [
            "evil.example:7070",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "example.com",
            "",
        ] {
            assert!(!host_ok(&allowed, bad), "{bad}");
        }
    }
}
