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
    /// The `name` of `<testsuites>`.
    pub name: String,
    /// The whole run's wall time in seconds; `None` writes the sum of the suites' times.
    pub time: Option<f64>,
    /// Every `<testsuite>`, nested ones flattened, in document order.
    pub suites: Vec<Suite>,
}

/// One `<testsuite>`. Counts are not stored: the writer derives them from `cases`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Suite {
    /// The suite's `name`.
    pub name: String,
    /// Seconds; `None` when the file had no `time` attribute.
    pub time: Option<f64>,
    /// When the suite started, as the file wrote it (ISO 8601 in valid files).
    pub timestamp: Option<String>,
    /// The machine it ran on.
    pub hostname: Option<String>,
    /// `<properties>`: name and value pairs, in order.
    pub properties: Vec<(String, String)>,
    /// Its `<testcase>`s, in order.
    pub cases: Vec<Case>,
    /// The suite's own `<system-out>`, outside any case.
    pub system_out: Option<String>,
    /// The suite's own `<system-err>`, outside any case.
    pub system_err: Option<String>,
}

/// One `<testcase>`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Case {
    /// The test's `name`.
    pub name: String,
    /// The `classname`: for our runners the binary id, Go import path or empty.
    pub classname: String,
    /// Seconds; `None` when the file had no `time` attribute.
    pub time: Option<f64>,
    /// The `group` attribute some writers add.
    pub group: Option<String>,
    /// The final outcome.
    pub status: CaseStatus,
    /// Earlier attempts that failed before the final, passing one (`flakyFailure`/`flakyError`).
    pub flaky: Vec<Rerun>,
    /// Earlier attempts of a test that failed every time (`rerunFailure`/`rerunError`).
    pub reruns: Vec<Rerun>,
    /// The case's own `<system-out>` (a rerun's stays with the rerun).
    pub stdout: Option<String>,
    /// The case's own `<system-err>`.
    pub stderr: Option<String>,
}

/// The final outcome of a case.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum CaseStatus {
    /// No `<failure>`, `<error>` or `<skipped>`.
    #[default]
    Passed,
    /// An assertion failed (`<failure>`).
    Failure {
        /// The `message` attribute: one line.
        message: Option<String>,
        /// The `type` attribute.
        kind: Option<String>,
        /// The element's text: the whole failure output.
        text: String,
    },
    /// The test could not run to an assertion (`<error>`): panic in setup, timeout, lost shard.
    Error {
        /// The `message` attribute: one line.
        message: Option<String>,
        /// The `type` attribute.
        kind: Option<String>,
        /// The element's text.
        text: String,
    },
    /// Not run (`<skipped>`).
    Skipped {
        /// Why, from the `message` attribute or the element's text.
        message: Option<String>,
    },
}

impl CaseStatus {
    /// `<failure>`.
    pub fn is_failure(&self) -> bool {
        matches!(self, CaseStatus::Failure { .. })
    }
    /// `<error>`.
    pub fn is_error(&self) -> bool {
        matches!(self, CaseStatus::Error { .. })
    }
    /// `<skipped>`.
    pub fn is_skipped(&self) -> bool {
        matches!(self, CaseStatus::Skipped { .. })
    }
}

/// Whether an earlier attempt failed an assertion or errored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RerunKind {
    /// `flakyFailure` / `rerunFailure`.
    #[default]
    Failure,
    /// `flakyError` / `rerunError`.
    Error,
}

/// One earlier attempt of a case (`flakyFailure`, `rerunError`, …).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rerun {
    /// Whether that attempt failed an assertion or errored.
    pub kind: RerunKind,
    /// The `type` attribute (required by the schema; the writer fills a default).
    pub error_type: Option<String>,
    /// The `message` attribute.
    pub message: Option<String>,
    /// The stack trace or failure output (`<stackTrace>` or the element's own text).
    pub text: String,
    /// That attempt's `<system-out>`.
    pub stdout: Option<String>,
    /// That attempt's `<system-err>`.
    pub stderr: Option<String>,
    /// Seconds, when the writer of the file recorded it (nextest does).
    pub time: Option<f64>,
}

/// Why a JUnit file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JunitError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the file system said.
        source: std::io::Error,
    },
    /// Malformed or unexpected content.
    #[error("{path}:{line}: {msg}")]
    At {
        /// The file, or what the text came from.
        path: String,
        /// 1-based.
        line: usize,
        /// What is wrong there.
        msg: String,
    },
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
