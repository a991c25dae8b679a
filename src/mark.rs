//! `supergrep mark --hub ws://HOST:PORT TEXT`: announces an event (a deploy, say) to
//! every viewer of a hub, through its `POST /api/markers`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Sends one marker; the error says what went wrong in words a shell user can act on.
pub fn send(hub: &str, token: Option<&str>, text: &str) -> Result<(), String> {
    let authority = hub
        .strip_prefix("ws://")
        .or_else(|| hub.strip_prefix("http://"))
        .ok_or_else(|| {
            format!(
                "--hub wants ws://HOST:PORT or http://HOST:PORT, not {hub:?} (TLS hubs: not yet)"
            )
        })?;
    let authority = authority.split('/').next().unwrap_or(authority);
    let body = serde_json::json!({ "text": text }).to_string();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "POST /api/markers HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n{auth}Connection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(authority)
        .map_err(|e| format!("cannot reach the hub at {authority}: {e}"))?;
    let io = |e: std::io::Error| format!("talking to the hub at {authority}: {e}");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io)?;
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut response = String::new();
    stream
        .take(64 * 1024)
        .read_to_string(&mut response)
        .map_err(io)?;
    let status_line = response.lines().next().unwrap_or("");
    let status = status_line.split(' ').nth(1).unwrap_or("");
    if status.starts_with('2') {
        return Ok(());
    }
    let reason = response.split("\r\n\r\n").nth(1).unwrap_or("").trim();
    Err(format!(
        "the hub refused the marker: {status_line}: {reason}"
    ))
}
