//! WebSocket clients of the hub's `/ws`, in two styles for two kinds of test:
//!
//! - [`Client`], async, for the `#[tokio::test]`s of `tests/hub.rs`, which drive many
//!   clients at once and also send raw frames;
//! - [`SyncClient`], for synchronous tests (agents, syslog) that wait on processes and
//!   files: it runs on a thread of its own and hands the hub's messages over a channel,
//!   keeping every `lines` entry received, in order.
//!
//! Both read `hello` first and fail on anything that is not a server message. Every
//! wait is bounded by [`PATIENCE`].

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use supergrep::protocol::{ServerMsg, WireLine};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::hub::Hub;
use super::wait::PATIENCE;

pub type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Why a connection was not made.
enum Failed {
    /// The hub answered the upgrade with this HTTP status.
    Refused(u16),
    Other(String),
}

/// Connects with extra request headers, bounded by [`PATIENCE`].
async fn open(url: &str, headers: &[(&str, &str)]) -> Result<Ws, Failed> {
    let mut request = url.into_client_request().unwrap();
    for (k, v) in headers {
        request.headers_mut().insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    match tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(request)).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => {
            Err(Failed::Refused(resp.status().as_u16()))
        }
        Ok(Err(e)) => Err(Failed::Other(format!("connect {url}: {e}"))),
        Err(_) => Err(Failed::Other(format!("connect {url}: no answer"))),
    }
}

/// Connects; the error is the HTTP status when the hub refused the upgrade.
pub async fn try_connect(url: &str, headers: &[(&str, &str)]) -> Result<Ws, u16> {
    match open(url, headers).await {
        Ok(ws) => Ok(ws),
        Err(Failed::Refused(status)) => Err(status),
        Err(Failed::Other(e)) => panic!("{e}"),
    }
}

/// A `subscribe` request.
pub fn subscribe(id: &str, include: &[&str]) -> serde_json::Value {
    serde_json::json!({"type": "subscribe", "id": id, "include": include})
}

fn server_msg(text: &str) -> ServerMsg {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not a server message ({e}): {text}"))
}

/// The hub's answer to the subscription `id`: `subscribed`, or an error.
fn answers(id: &str) -> impl Fn(&ServerMsg) -> bool + '_ {
    move |m| match m {
        ServerMsg::Subscribed { id: i } => i == id,
        ServerMsg::Error { .. } => true,
        _ => false,
    }
}

fn assert_hello(first: &ServerMsg) {
    assert!(
        matches!(first, ServerMsg::Hello { .. }),
        "first message: {first:?}"
    );
}

// ---------------------------------------------------------------------------------
// async
// ---------------------------------------------------------------------------------

/// An async WebSocket client of the hub. Messages read while looking for something
/// else are kept, in order, for the next read.
pub struct Client {
    pub ws: Ws,
    pub hello: ServerMsg,
    stash: VecDeque<ServerMsg>,
}

impl Client {
    pub async fn connect(hub: &Hub) -> Client {
        Client::connect_url(&hub.ws_url(), &[]).await
    }

    /// Connects and reads the first message, which must be `hello`.
    pub async fn connect_url(url: &str, headers: &[(&str, &str)]) -> Client {
        let ws = try_connect(url, headers)
            .await
            .unwrap_or_else(|status| panic!("{url} refused the upgrade: HTTP {status}"));
        Client::with_hello(ws).await
    }

    /// [`connect_url`](Self::connect_url) to a hub on 127.0.0.1 from the local address
    /// `ip`: another loopback address (127.0.0.2, …) stands for another machine.
    pub async fn connect_from(url: &str, ip: &str) -> Client {
        let uri: tokio_tungstenite::tungstenite::http::Uri = url.parse().unwrap();
        let port = uri.port_u16().expect("a port in the URL");
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
        let tcp = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
        let upgrade = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp));
        let (ws, _) = tokio::time::timeout(PATIENCE, upgrade)
            .await
            .unwrap_or_else(|_| panic!("connect {url} from {ip}: no answer"))
            .unwrap_or_else(|e| panic!("connect {url} from {ip}: {e}"));
        Client::with_hello(ws).await
    }

    /// Reads the first message, which must be `hello`.
    async fn with_hello(ws: Ws) -> Client {
        let mut client = Client {
            ws,
            hello: ServerMsg::Subscribed { id: String::new() },
            stash: VecDeque::new(),
        };
        let first = client.recv().await;
        assert_hello(&first);
        client.hello = first;
        client
    }

    pub async fn send_text(&mut self, text: String) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    pub async fn send(&mut self, msg: serde_json::Value) {
        self.send_text(msg.to_string()).await;
    }

    /// The next frame of any kind (pings and pongs skipped), `None` when the
    /// connection ended.
    pub async fn frame(&mut self) -> Option<Message> {
        // One deadline for the whole wait: the hub's pings must not extend it.
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("no frame from the hub");
            match next {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(m)) => return Some(m),
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// The next message (from the stash first).
    pub async fn recv(&mut self) -> ServerMsg {
        if let Some(m) = self.stash.pop_front() {
            return m;
        }
        match self.frame().await {
            Some(Message::Text(t)) => server_msg(t.as_str()),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// Reads until a message `want` picks; the others are kept for later.
    pub async fn recv_where(&mut self, want: impl Fn(&ServerMsg) -> bool) -> ServerMsg {
        let mut skipped = Vec::new();
        loop {
            let m = self.recv().await;
            if want(&m) {
                // Put back what came before, in order.
                for s in skipped.into_iter().rev() {
                    self.stash.push_front(s);
                }
                return m;
            }
            skipped.push(m);
        }
    }

    /// Sends a subscribe and waits for its `subscribed` (panics on an error reply).
    pub async fn subscribe(&mut self, msg: serde_json::Value) {
        let id = msg["id"].as_str().unwrap().to_owned();
        self.send(msg).await;
        let reply = self.recv_where(answers(&id)).await;
        assert_eq!(reply, ServerMsg::Subscribed { id }, "subscribe failed");
    }

    /// Reads until every id of `ids` received a line with text `end`. Returns the
    /// lines per id and every other message, in order of arrival.
    pub async fn lines_until(
        &mut self,
        ids: &[&str],
        end: &str,
    ) -> (HashMap<String, Vec<WireLine>>, Vec<ServerMsg>) {
        let mut lines: HashMap<String, Vec<WireLine>> =
            ids.iter().map(|i| (i.to_string(), Vec::new())).collect();
        let mut others = Vec::new();
        let done = |lines: &HashMap<String, Vec<WireLine>>| {
            ids.iter().all(|i| lines[*i].iter().any(|l| l.text == end))
        };
        while !done(&lines) {
            match self.recv().await {
                ServerMsg::Lines { id, lines: batch } => {
                    lines.entry(id).or_default().extend(batch);
                }
                other => others.push(other),
            }
        }
        (lines, others)
    }
}

// ---------------------------------------------------------------------------------
// thread-driven
// ---------------------------------------------------------------------------------

enum Event {
    Msg(ServerMsg),
    Closed(String),
}

/// A WebSocket client of the hub's `/ws`, driven from synchronous test code. Every
/// `lines` entry received is kept in [`lines`](Self::lines), in order of arrival.
pub struct SyncClient {
    send: tokio::sync::mpsc::UnboundedSender<String>,
    events: Receiver<Event>,
    pub hello: ServerMsg,
    /// Messages other than `lines`, in order (read by [`recv_other`](Self::recv_other)).
    pub others: VecDeque<ServerMsg>,
    pub lines: Vec<WireLine>,
    pub closed: Option<String>,
}

impl SyncClient {
    /// Connects and reads `hello`.
    pub fn connect(url: &str) -> SyncClient {
        let (send, outgoing) = tokio::sync::mpsc::unbounded_channel::<String>();
        let (tx, events) = mpsc::channel();
        let (ready_tx, ready) = mpsc::channel::<Result<(), String>>();
        let url = url.to_owned();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let ws = match open(&url, &[]).await {
                    Ok(ws) => ws,
                    Err(Failed::Refused(status)) => {
                        let _ = ready_tx.send(Err(format!("{url} refused: HTTP {status}")));
                        return;
                    }
                    Err(Failed::Other(e)) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                pump(ws, outgoing, tx).await;
            });
        });
        match ready.recv_timeout(PATIENCE) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => panic!("no WebSocket connection"),
        }
        let mut client = SyncClient {
            send,
            events,
            hello: ServerMsg::Subscribed { id: String::new() },
            others: VecDeque::new(),
            lines: Vec::new(),
            closed: None,
        };
        let first = client.next_event(PATIENCE).expect("no hello from the hub");
        assert_hello(&first);
        client.hello = first;
        client
    }

    /// The next message as it comes (a `lines` one is also added to `lines`).
    fn next_event(&mut self, within: Duration) -> Option<ServerMsg> {
        match self.events.recv_timeout(within) {
            Ok(Event::Msg(m)) => {
                if let ServerMsg::Lines { lines, .. } = &m {
                    self.lines.extend(lines.iter().cloned());
                }
                Some(m)
            }
            Ok(Event::Closed(why)) => {
                self.closed = Some(why);
                None
            }
            Err(_) => None,
        }
    }

    /// Reads what has arrived within `within`; keeps non-`lines` messages in `others`.
    fn pump(&mut self, within: Duration) -> bool {
        match self.next_event(within) {
            Some(ServerMsg::Lines { .. }) => true,
            Some(other) => {
                self.others.push_back(other);
                true
            }
            None => false,
        }
    }

    pub fn send_json(&mut self, msg: serde_json::Value) {
        self.send.send(msg.to_string()).expect("client thread gone");
    }

    /// Subscribes (`include` patterns, `backlog` recent matches first) and waits for
    /// `subscribed`.
    pub fn subscribe(&mut self, id: &str, include: &[&str], backlog: usize) {
        let mut msg = subscribe(id, include);
        msg["backlog"] = backlog.into();
        self.send_json(msg);
        let reply = self.recv_other(answers(id));
        assert_eq!(
            reply,
            ServerMsg::Subscribed { id: id.into() },
            "subscribe failed"
        );
    }

    /// Waits for a message other than `lines` that `want` picks (taking it out of
    /// `others`).
    pub fn recv_other(&mut self, want: impl Fn(&ServerMsg) -> bool) -> ServerMsg {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(i) = self.others.iter().position(&want) {
                return self.others.remove(i).unwrap();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if !self.pump(left) {
                panic!(
                    "the hub never sent the message awaited (closed: {:?}); others: {:#?}",
                    self.closed, self.others
                );
            }
        }
    }

    /// Reads until `done(lines so far)` holds, asking it again at least every 100 ms
    /// (a `done` that also acts, sending a datagram again, say, gets its turns).
    pub fn wait_lines(&mut self, what: &str, done: impl Fn(&[WireLine]) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done(&self.lines) {
            let left = deadline.saturating_duration_since(Instant::now());
            let turn = left.min(Duration::from_millis(100));
            if left.is_zero() || (!self.pump(turn) && self.closed.is_some()) {
                let tail: Vec<&str> = self
                    .lines
                    .iter()
                    .rev()
                    .take(10)
                    .map(|l| l.text.as_str())
                    .collect();
                panic!(
                    "gave up waiting for {what}: {} lines so far (last ones, newest first: {tail:#?}); closed: {:?}",
                    self.lines.len(),
                    self.closed
                );
            }
        }
    }

    /// Reads until a line with exactly `text` arrived.
    pub fn wait_text(&mut self, text: &str) -> WireLine {
        self.wait_lines(&format!("the line {text:?}"), |ls| {
            ls.iter().any(|l| l.text == text)
        });
        self.lines.iter().find(|l| l.text == text).unwrap().clone()
    }

    /// Reads whatever else arrives until the hub has been silent for `quiet` (to catch
    /// a duplicate that would come late; not a timing assertion).
    pub fn settle(&mut self, quiet: Duration) {
        while self.pump(quiet) {}
    }
}

/// The client thread: sends what the test hands over, hands over what the hub sends,
/// until either side ends.
async fn pump(
    ws: Ws,
    mut outgoing: tokio::sync::mpsc::UnboundedReceiver<String>,
    tx: mpsc::Sender<Event>,
) {
    let (mut sink, mut stream) = ws.split();
    loop {
        tokio::select! {
            out = outgoing.recv() => match out {
                Some(text) => {
                    if let Err(e) = sink.send(Message::text(text)).await {
                        let _ = tx.send(Event::Closed(e.to_string()));
                        return;
                    }
                }
                // The test dropped the client.
                None => {
                    let _ = sink.close().await;
                    return;
                }
            },
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    if tx.send(Event::Msg(server_msg(t.as_str()))).is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Close(c))) => {
                    let _ = tx.send(Event::Closed(format!("close frame {c:?}")));
                    return;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let _ = tx.send(Event::Closed(e.to_string()));
                    return;
                }
                None => {
                    let _ = tx.send(Event::Closed("end of stream".into()));
                    return;
                }
            },
        }
    }
}
