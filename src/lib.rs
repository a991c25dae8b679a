//! supergrep: a streaming log grep. Data flows one way:
//! sources ([`source`]) → [`hub`] (numbering, [`matcher`]) → sinks ([`output`], …).

/// `eprintln!` for messages to the user, without its panic when stderr cannot be
/// written (closed, `2>/dev/full`): the message is lost, the program goes on and
/// ends with its own status (a panic made it 101).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod agent;
pub mod cli;
pub(crate) mod client;
pub mod cluster;
pub mod config;
pub(crate) mod connect;
pub(crate) mod context;
pub(crate) mod demo;
pub mod escape;
pub mod exit;
pub mod generate;
pub(crate) mod hub;
pub(crate) mod irc;
pub mod line;
pub mod mark;
pub mod matcher;
pub mod open_files;
pub(crate) mod output;
pub mod protocol;
pub mod regular_file;
pub mod serve;
pub(crate) mod server;
pub(crate) mod shutdown;
pub mod signals;
pub mod source;
pub mod subkey;
pub mod template;
pub mod terminal;
pub mod tls;
