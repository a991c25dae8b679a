//! supergrep: a streaming log grep. Data flows one way:
//! sources ([`source`]) → [`hub`] (numbering, [`matcher`]) → sinks ([`output`], …).

pub mod agent;
pub mod cli;
pub mod client;
pub mod config;
pub mod connect;
pub mod demo;
pub mod hub;
pub mod irc;
pub mod line;
pub mod mark;
pub mod matcher;
pub mod open_files;
pub mod output;
pub mod protocol;
pub mod serve;
pub mod server;
pub mod signals;
pub mod source;
pub mod terminal;
pub mod tls;
