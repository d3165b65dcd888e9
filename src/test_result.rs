//! A test's identity and the result a runner reported for it: the plain types every stage
//! from discovery to the reports passes along, defined apart from all of them so none has to
//! import another stage for them.

#![warn(missing_docs)]

use std::time::Duration;

/// A test's identity, stable across runs and across report formats.
///
/// `group` is the Rust binary id (`crate::bin`), the Go import path, or empty for keys of
/// a user's listing command; `name` is the test's name inside that group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct TestId {
    /// The binary id, import path, or empty (see above).
    pub group: String,
    /// The test's name inside its group.
    pub name: String,
}

impl TestId {
    /// The test `name` of `group`.
    pub fn new(group: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for TestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{} {}", self.group, self.name)
        }
    }
}

/// The result a runner reported for one test in one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct TestResult {
    /// Which test.
    pub id: TestId,
    /// Its verdict in this attempt.
    pub status: TestStatus,
    /// How long the runner says it took.
    pub duration: Duration,
    /// Failure or skip message (one line when the runner gives one).
    pub message: Option<String>,
    /// The whole failure as the runner reported it (a panic with its `left`/`right`, Go's
    /// `--- FAIL` block, gocheck's `... obtained/expected`), for the JUnit `<failure>` text;
    /// empty when the runner gave nothing beyond `message`.
    pub detail: String,
    /// What the test wrote to stdout, as the runner captured it.
    pub stdout: String,
    /// What the test wrote to stderr, as the runner captured it.
    pub stderr: String,
    /// Results of the test's subtests (Go's `TestX/sub`), for the report: the planner, the
    /// counts and the history deal in whole tests.
    pub subtests: Vec<TestResult>,
}

/// A test's verdict, as runners and reports name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TestStatus {
    /// It ran and passed.
    Passed,
    /// It ran and failed (an assertion, a panic, a timeout).
    Failed,
    /// It was not run: ignored, skipped by the test itself, or cut by `--max-fail`.
    Skipped,
    /// Infrastructure or harness error: the test did not get to report a result.
    Error,
}
