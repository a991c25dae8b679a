//! How a batch of lines goes on the wire: one binary WebSocket message, the `lines`
//! header (JSON and a newline) and then the lines exactly as the tailer read them.
//!
//! Shipping is the agent's whole job, and its cost is copies. Through tungstenite a
//! batch is copied twice before the socket (into one message, then into tungstenite's
//! write buffer, where it is masked as RFC 6455 asks of clients). A hub that says
//! `unmasked_lines` in its welcome takes the frame unmasked, and then the agent writes
//! the frame header and the batch straight onto the connection in one `writev`, from
//! the tailer's buffer: the only copy left is the kernel's. Measured on 10 M Loghub
//! lines (benches/agent.sh): agent CPU 1.18 -> 0.76 s, ingest rate 0.33 -> 0.43 of
//! the hub tailing the file itself.
//!
//! Masking exists so that script in a browser cannot choose the bytes a proxy sees on
//! the wire; the agent is not a browser, and what it sends is what syslog over TCP
//! sends too: the log's own bytes. Hubs that do not say so get masked frames, and so
//! does every hub once a connection carrying unmasked ones broke before any was
//! acknowledged (a proxy that reads frames may refuse them: see `Agent::mask_always`).

use bytes::{Buf as _, Bytes};
use futures_util::SinkExt as _;
use tokio::io::AsyncWriteExt as _;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::client::Ws;
use crate::protocol::AgentMsg;

/// One `lines` message, kept until the hub acknowledges it (and sent again after a
/// reconnect).
#[derive(Debug, Clone)]
pub struct LinesFrame {
    /// The JSON header and its newline.
    head: Bytes,
    /// The lines, shared with the tailer's read buffer.
    body: Bytes,
}

impl LinesFrame {
    /// `header` is an [`AgentMsg::Lines`] with an empty `text`: the lines are `body`.
    pub fn new(header: &AgentMsg, body: Bytes) -> LinesFrame {
        let mut head = serde_json::to_vec(header).unwrap_or_default();
        head.push(b'\n');
        LinesFrame {
            head: head.into(),
            body,
        }
    }

    /// Bytes held (for the agent's bound on unacknowledged data).
    pub fn len(&self) -> usize {
        self.head.len() + self.body.len()
    }

    /// Sends the frame; `unmasked` if the hub said it takes unmasked frames.
    pub async fn send(&self, ws: &mut Ws, unmasked: bool) -> Result<(), tungstenite::Error> {
        if !unmasked {
            let mut payload = Vec::with_capacity(self.len());
            payload.extend_from_slice(&self.head);
            payload.extend_from_slice(&self.body);
            return ws.send(Message::Binary(payload.into())).await;
        }
        // Whatever tungstenite holds (a pong it queued while reading) goes first: the
        // bytes below go past it.
        ws.flush().await?;
        let header = FrameHeader {
            is_final: true,
            opcode: OpCode::Data(Data::Binary),
            mask: None,
            ..FrameHeader::default()
        };
        let mut start = Vec::with_capacity(header.len(self.len() as u64) + self.head.len());
        header.format(self.len() as u64, &mut start)?;
        start.extend_from_slice(&self.head);
        let mut frame = Bytes::from(start).chain(self.body.clone());
        let stream = ws.get_mut();
        // One writev for both parts (tokio uses the vectored write where it has one).
        stream.write_all_buf(&mut frame).await?;
        stream.flush().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_is_the_json_header_and_a_newline() {
        let header = AgentMsg::Resending { batches: 1 };
        let frame = LinesFrame::new(&header, Bytes::from_static(b"a\nb\n"));
        assert_eq!(&frame.head[..], b"{\"type\":\"resending\",\"batches\":1}\n");
        assert_eq!(frame.len(), frame.head.len() + 4);
    }
}
