//! A test's identity and the result a runner reported for it: the plain types every stage
//! from discovery to the reports passes along, defined apart from all of them so none has to
//! import another stage for them.

use std::time::Duration;

/// A test's identity, stable across runs and across report formats.
///
/// `group` is the Rust binary id (`crate::bin`), the Go import path, or empty for keys of
/// a user's listing command; `name` is the test's name inside that group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct TestId {
    /// The binary id, Go import path or empty; tests of different groups may share a name.
    pub group: String,
    /// The test's name inside its group, as the runner selects it.
    pub name: String,
}

impl TestId {
    /// A test id from its group and name.
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
    /// The test this result is for, matched against the tests the shard was given.
    pub id: TestId,
    /// Its verdict in this attempt; retries and flakiness are decided above it.
    pub status: TestStatus,
    /// How long it took, as the runner measured it; the history learns from it.
    pub duration: Duration,
    /// Failure or skip message (one line when the runner gives one).
    pub message: Option<String>,
    /// The whole failure as the runner reported it (a panic with its `left`/`right`, Go's
    /// `--- FAIL` block, gocheck's `... obtained/expected`), for the JUnit `<failure>` text;
    /// empty when the runner gave nothing beyond `message`.
    pub detail: String,
    /// What the test printed on stdout, for the JUnit `<system-out>`.
    pub stdout: String,
    /// What the test printed on stderr, for the JUnit `<system-err>`.
    pub stderr: String,
    /// Results of the test's subtests (Go's `TestX/sub`), for the report: the planner, the
    /// counts and the history deal in whole tests.
    pub subtests: Vec<TestResult>,
}

/// How a test ended: the four verdicts every runner's results and every report share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TestStatus {
    /// It ran and passed.
    Passed,
    /// It ran and failed.
    Failed,
    /// It was not run (ignored, filtered, or skipped by the test itself).
    Skipped,
    /// Infrastructure or harness error: the test did not get to report a result.
    Error,
}
