//! The cluster on NATS JetStream (issue 27): agents publish their lines to one stream,
//! hubs read it. This module owns what every NATS user of supergrep shares: the
//! `[nats]` settings and flags ([`config`]), the subject names ([`subject`]), the
//! connection ([`connect`]), a batch and a marker as messages ([`lines`], [`marker`]) and the stream's shape
//! ([`stream`]). The single-hub mode uses none of it.

pub mod config;
pub mod connect;
pub mod lines;
pub mod marker;
pub mod stream;
pub mod subject;

pub use config::{NatsArgs, NatsConfig, NatsConfigError};
