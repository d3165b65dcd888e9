//! JUnit XML as a format: a reader that takes every flavour we meet (nextest, gotestsum,
//! go-junit-report, Surefire) and a writer that always produces schema-valid output.
//!
//! The model is deliberately flat: nested `<testsuite>`s are read as siblings, because no
//! consumer of ours cares about nesting and every writer we target emits one level.

use std::path::PathBuf;

mod read;
mod sanitize;
pub(crate) mod write;

pub use read::{read_bytes, read_file, read_str};
pub(crate) use sanitize::{escape_attr, skip_escape_sequence};
pub use sanitize::{sanitize_text, text_from_bytes};
pub use write::{to_string, write, write_atomic};

/// A whole report: `<testsuites>` (or a bare `<testsuite>` root, read as one suite).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub name: String,
    /// The whole run's wall time in seconds; `None` writes the sum of the suites' times.
    pub time: Option<f64>,
    pub suites: Vec<Suite>,
}

/// One `<testsuite>`. Counts are not stored: the writer derives them from `cases`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Suite {
    pub name: String,
    /// Seconds; `None` when the file had no `time` attribute.
    pub time: Option<f64>,
    pub timestamp: Option<String>,
    pub hostname: Option<String>,
    pub properties: Vec<(String, String)>,
    pub cases: Vec<Case>,
    pub system_out: Option<String>,
    pub system_err: Option<String>,
}

/// One `<testcase>`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Case {
    pub name: String,
    pub classname: String,
    /// Seconds; `None` when the file had no `time` attribute.
    pub time: Option<f64>,
    pub group: Option<String>,
    pub status: CaseStatus,
    /// Earlier attempts that failed before the final, passing one (`flakyFailure`/`flakyError`).
    pub flaky: Vec<Rerun>,
    /// Earlier attempts of a test that failed every time (`rerunFailure`/`rerunError`).
    pub reruns: Vec<Rerun>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
}

/// The final outcome of a case.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum CaseStatus {
    #[default]
    Passed,
    /// An assertion failed (`<failure>`); `kind` is the `type` attribute.
    Failure {
        message: Option<String>,
        kind: Option<String>,
        text: String,
    },
    /// The test could not run to an assertion (`<error>`): panic in setup, timeout, lost shard.
    Error {
        message: Option<String>,
        kind: Option<String>,
        text: String,
    },
    Skipped {
        message: Option<String>,
    },
}

impl CaseStatus {
    pub fn is_failure(&self) -> bool {
        matches!(self, CaseStatus::Failure { .. })
    }
    pub fn is_error(&self) -> bool {
        matches!(self, CaseStatus::Error { .. })
    }
    pub fn is_skipped(&self) -> bool {
        matches!(self, CaseStatus::Skipped { .. })
    }
}

/// Whether an earlier attempt failed an assertion or errored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RerunKind {
    #[default]
    Failure,
    Error,
}

/// One earlier attempt of a case (`flakyFailure`, `rerunError`, …).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rerun {
    pub kind: RerunKind,
    /// The `type` attribute (required by the schema; the writer fills a default).
    pub error_type: Option<String>,
    pub message: Option<String>,
    /// The stack trace or failure output (`<stackTrace>` or the element's own text).
    pub text: String,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    /// Seconds, when the writer of the file recorded it (nextest does).
    pub time: Option<f64>,
}

/// Why a JUnit file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JunitError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// Malformed or unexpected content; `line` is 1-based.
    #[error("{path}:{line}: {msg}")]
    At { path: String, line: usize, msg: String },
}

impl JunitError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        JunitError::Io {
            path: path.into().display().to_string(),
            source,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
