//! supergrep: a streaming log grep. Data flows one way:
//! sources ([`source`]) → [`hub`] (numbering, [`matcher`]) → sinks ([`output`], …).

pub mod cli;
pub mod hub;
pub mod line;
pub mod matcher;
pub mod output;
pub mod protocol;
pub mod source;
pub mod terminal;
