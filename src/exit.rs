//! How a run ends, as grep says it: status 0 when lines matched (or following ended
//! normally), 1 when `--no-follow` found none, 2 for a usage error or a file that
//! could not be read. Every mode reports through these two types, so the statuses
//! are decided in one place ([`Outcome::code`], and [`UsageError`] is always 2).

use std::process::ExitCode;

use thiserror::Error;

/// Something wrong with what the user asked for: exit status 2, said without the
/// chain of causes an internal failure prints.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl UsageError {
    /// A typed error from parsing what the user gave, said as its message alone.
    pub fn of(e: impl std::fmt::Display) -> UsageError {
        UsageError(e.to_string())
    }
}

/// How a terminal run ended, for the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Lines matched (or following ended normally).
    Matched,
    /// `--no-follow` and nothing matched.
    NoMatch,
    /// `--no-follow` and some file could not be read.
    FileErrors,
}

impl Outcome {
    pub fn code(self) -> ExitCode {
        match self {
            Outcome::Matched => ExitCode::SUCCESS,
            Outcome::NoMatch => ExitCode::from(1),
            Outcome::FileErrors => ExitCode::from(2),
        }
    }
}
