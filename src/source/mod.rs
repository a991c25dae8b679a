//! Sources turn bytes from somewhere into [`LineBatch`]es for the hub. They never know
//! who is listening.

pub mod agent_ingest;
pub mod events;
mod fs_events;
pub mod glob;
pub(crate) mod names;
pub(crate) mod received;
pub mod syslog;
pub mod tail;

use std::sync::Arc;

use tokio::sync::watch;

use crate::line::{ReadBatch, Stream};
pub use events::{EventReceiver, EventSender};

/// What a source tells the hub.
#[derive(Debug)]
pub enum SourceEvent {
    /// A stream started (a file was opened for the first time).
    StreamAdded(Arc<Stream>),
    /// New complete lines of one stream.
    Lines(ReadBatch),
    /// A stream is gone for good (a globbed file was deleted and not re-created).
    StreamRemoved(Arc<Stream>),
    /// Not lines but a receipt request: once ingest reaches it, every event sent
    /// before it by the same sender is ingested, and `to` is set to `upto`. How the
    /// hub acknowledges an agent's batch only when it has it.
    Receipt {
        upto: u64,
        to: Arc<watch::Sender<u64>>,
    },
}
