//! `supergrep --connect ws://hub:7070 -e PATTERN`: terminal mode with a hub as the
//! source. Speaks the same protocol module as the hub; reconnects by itself with
//! exponential backoff and jitter, re-subscribes, and prints nothing twice.

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{jitter, ConnectError, EndpointError, HubEndpoint};
use crate::exit::{Outcome, UsageError};
use crate::hub::{Delivery, SinkQueue};
use crate::line::{LogLine, Stream};
use crate::matcher::Subscription;
use crate::output::Printer;
use crate::protocol::{code, ClientMsg, ServerMsg, WireLine, VERSION};

const SUB_ID: &str = "cli";
/// Backlog asked for after a reconnect to the same hub, to fill the gap.
const GAP_BACKLOG: usize = 10_000;
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A hub to take matches from.
#[derive(Debug, Clone)]
pub struct Remote {
    hub: HubEndpoint,
    /// Recent matches to ask for on the first connection (`-n`).
    initial_backlog: usize,
}

impl Remote {
    pub fn new(
        url: &str,
        token: Option<&str>,
        tls_ca: Option<&std::path::Path>,
        initial_backlog: u64,
    ) -> Result<Remote, EndpointError> {
        Ok(Remote {
            hub: HubEndpoint::new(url, "/ws", token, tls_ca, "--connect")?,
            initial_backlog: initial_backlog as usize,
        })
    }

    /// Prints matches until stdout closes or a signal ends the program. Matches also
    /// go to `irc` when given (`--irc`).
    pub async fn run<W: Write>(
        self,
        sub: &Subscription,
        mut printer: Printer<W>,
        irc: Option<Arc<SinkQueue>>,
    ) -> anyhow::Result<Outcome> {
        let started = SystemTime::now();
        let mut seen = Seen::default();
        let mut backoff = BACKOFF_MIN;
        let mut boot: Option<String> = None;
        loop {
            let mut unreachable = None;
            match self
                .session(
                    sub,
                    &mut printer,
                    irc.as_deref(),
                    &mut seen,
                    &mut boot,
                    started,
                )
                .await
            {
                Ok(End::StdoutClosed) => return Ok(Outcome::Matched),
                Ok(End::Disconnected { was_connected }) => {
                    if was_connected {
                        backoff = BACKOFF_MIN;
                        crate::say!(
                            "supergrep: lost the hub at {}; reconnecting",
                            self.display()
                        );
                    }
                }
                Ok(End::Unreachable(why)) => unreachable = Some(why),
                Err(Fatal(e)) => return Err(e),
            }
            let wait = jitter(backoff);
            match unreachable {
                // Said on every attempt, as the agent does: a hub that stays away is
                // something to see, and the backoff keeps it to a line a while.
                Some(why) => crate::say!(
                    "supergrep: cannot reach the hub at {} ({why}); retrying in {:.1}s",
                    self.display(),
                    wait.as_secs_f64()
                ),
                None => tracing::debug!("reconnecting in {wait:?}"),
            }
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    fn display(&self) -> &str {
        self.hub.display()
    }

    async fn session<W: Write>(
        &self,
        sub: &Subscription,
        printer: &mut Printer<W>,
        irc: Option<&SinkQueue>,
        seen: &mut Seen,
        boot: &mut Option<String>,
        started: SystemTime,
    ) -> Result<End, Fatal> {
        let mut ws = match self.hub.connect().await {
            Ok(ws) => ws,
            Err(ConnectError::Refused) => {
                return Err(Fatal(
                    UsageError(format!("the hub at {} refused the token", self.display())).into(),
                ))
            }
            Err(ConnectError::Unreachable(e)) => return Ok(End::Unreachable(e)),
        };
        let mut sent_subscribe = false;
        // The hub said `subscribed` on this connection: an error for our id after it
        // takes the subscription away.
        let mut subscribed = false;
        // On the first connection old lines were asked for (-n); after a reconnect a
        // stream we have printed nothing of may still reach back before we started.
        let mut first_connection = false;
        while let Some(msg) = ws.next().await {
            let text = match msg {
                Ok(Message::Text(t)) => t,
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => continue,
            };
            let msg: ServerMsg = match serde_json::from_str(text.as_str()) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!("unexpected message from the hub: {e}");
                    continue;
                }
            };
            match msg {
                ServerMsg::Hello {
                    version, boot: b, ..
                } => {
                    if version != VERSION {
                        return Err(Fatal(anyhow::anyhow!(
                            "the hub speaks protocol {version}, we speak {VERSION}"
                        )));
                    }
                    first_connection = boot.is_none();
                    let backlog = match boot.as_deref() {
                        None => self.initial_backlog,
                        Some(old) if old == b && !b.is_empty() => GAP_BACKLOG,
                        // A restarted hub numbers lines afresh: what we saw says nothing,
                        // but everything it has read since it started is new to us.
                        Some(_) => {
                            seen.clear();
                            GAP_BACKLOG
                        }
                    };
                    if boot.is_some() {
                        crate::say!("supergrep: connected to {}", self.display());
                    }
                    *boot = Some(b);
                    let subscribe = ClientMsg::Subscribe {
                        id: SUB_ID.into(),
                        include: sub.include.clone(),
                        exclude: sub.exclude.clone(),
                        ignore_case: sub.ignore_case,
                        streams: None,
                        backlog,
                    };
                    let json = serde_json::to_string(&subscribe).map_err(|e| Fatal(e.into()))?;
                    if ws.send(Message::Text(json.into())).await.is_err() {
                        break;
                    }
                    sent_subscribe = true;
                }
                ServerMsg::Lines { lines, .. } => {
                    for line in lines {
                        let before_us = parse_ts(&line.ts).is_some_and(|t| t < started);
                        if !first_connection && before_us && !seen.knows(&line) {
                            continue;
                        }
                        if !seen.first_time(&line) {
                            continue;
                        }
                        let spans = line.spans.clone();
                        let line = to_log_line(line);
                        if let Err(e) = printer.print(line.as_line_ref(), &spans) {
                            return stdout_error(e);
                        }
                        if let Some(q) = irc {
                            q.push(Delivery {
                                sub: crate::subkey::SubKey::ALONE,
                                line,
                                spans,
                            });
                        }
                    }
                    if let Err(e) = printer.flush() {
                        return stdout_error(e);
                    }
                }
                ServerMsg::Dropped { count, .. } => {
                    crate::say!("supergrep: the hub dropped {count} matches: we read too slowly");
                }
                ServerMsg::Marker { ts, text } => {
                    if let Err(e) = printer.marker(&ts, &text).and_then(|()| printer.flush()) {
                        return stdout_error(e);
                    }
                }
                ServerMsg::Error {
                    id,
                    code: c,
                    message,
                    ..
                } => {
                    // Our own patterns are wrong: the message names the pattern
                    // and the position, which is all there is to say.
                    if c == code::INVALID_REGEX || c == code::BAD_REQUEST {
                        return Err(Fatal(UsageError(message).into()));
                    }
                    // The hub too busy compiling others' patterns to take ours: we
                    // would sit there subscribed to nothing. Reconnect (with the
                    // backoff) and ask again.
                    if id.as_deref() == Some(SUB_ID) && c == code::BUSY {
                        crate::say!("supergrep: the hub says: {message}; asking again");
                        return Ok(End::Disconnected {
                            was_connected: false,
                        });
                    }
                    // Our subscription refused by a limit (at start or after a
                    // reconnect), or taken away later (`hub_budget`): we would go on
                    // printing nothing, so say which limit and end (status 2).
                    if id.as_deref() == Some(SUB_ID) {
                        let what = if subscribed { "dropped" } else { "refused" };
                        return Err(Fatal(
                            UsageError(format!(
                                "the hub at {} {what} our subscription ({c}): {message}",
                                self.display()
                            ))
                            .into(),
                        ));
                    }
                    crate::say!("supergrep: the hub says: {message}");
                }
                ServerMsg::Subscribed { id } => subscribed |= id == SUB_ID,
                ServerMsg::Streams { .. } | ServerMsg::Context { .. } => {}
            }
        }
        Ok(End::Disconnected {
            was_connected: sent_subscribe,
        })
    }
}

enum End {
    StdoutClosed,
    Disconnected {
        was_connected: bool,
    },
    /// The connection did not open (why).
    Unreachable(String),
}

/// Ends the run: the error is reported and the exit status is 2.
struct Fatal(anyhow::Error);

fn stdout_error(e: io::Error) -> Result<End, Fatal> {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Ok(End::StdoutClosed)
    } else {
        Err(Fatal(e.into()))
    }
}

/// The highest `seq` printed per stream, so a reconnect prints nothing twice.
#[derive(Default)]
struct Seen(HashMap<String, u64>);

impl Seen {
    fn first_time(&mut self, line: &WireLine) -> bool {
        let id = format!("{}:{}", line.host, line.path);
        match self.0.get_mut(&id) {
            Some(last) if *last >= line.seq => false,
            Some(last) => {
                *last = line.seq;
                true
            }
            None => {
                self.0.insert(id, line.seq);
                true
            }
        }
    }

    fn knows(&self, line: &WireLine) -> bool {
        self.0.contains_key(&format!("{}:{}", line.host, line.path))
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

fn to_log_line(line: WireLine) -> LogLine {
    LogLine::new(
        Arc::new(Stream::new(line.host, line.path, line.set)),
        line.seq,
        parse_ts(&line.ts).unwrap_or_else(SystemTime::now),
        &line.text,
    )
}

fn parse_ts(ts: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(ts).ok()
}
