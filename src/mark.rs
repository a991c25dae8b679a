//! `supergrep mark --hub ws://HOST:PORT TEXT`: announces an event (a deploy, say) to
//! every viewer of a hub, through its `POST /api/markers`.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cli::MarkArgs;
use crate::client::HubEndpoint;

/// Sends one marker; the error says what went wrong in words a shell user can act on.
pub async fn send(args: &MarkArgs) -> Result<(), String> {
    // The URL given to agents or --connect works here too.
    let url = args.hub.trim_end_matches('/');
    let url = url
        .strip_suffix("/ws")
        .or(url.strip_suffix("/agent"))
        .unwrap_or(url);
    let hub = HubEndpoint::new(url, "", None, args.tls_ca.as_deref(), "--hub")?;
    let (host, port) = hub.authority();
    let authority = format!("{host}:{port}");
    let body = serde_json::json!({ "text": args.text.join(" ") }).to_string();
    let auth = args
        .token
        .as_deref()
        .map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    // The hub's path prefix, if it sits behind a proxy.
    let prefix = hub.display().splitn(4, '/').nth(3).unwrap_or("");
    let prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("/{prefix}")
    };
    let request = format!(
        "POST {prefix}/api/markers HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n{auth}Connection: close\r\n\r\n{body}",
        body.len()
    );
    let exchange = async {
        let mut stream = crate::tls::connect(&host, port, hub.tls()).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.take(64 * 1024).read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&response).into_owned())
    };
    let response = match tokio::time::timeout(Duration::from_secs(10), exchange).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(format!("talking to the hub at {authority}: {e}")),
        Err(_) => return Err(format!("the hub at {authority} did not answer in 10 s")),
    };
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
