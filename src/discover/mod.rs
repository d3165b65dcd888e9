//! Discovery: build the tests once and list them, producing a [`Suite`] that says what each
//! shard must upload, how to run a subset of tests, and how to read that subset's results.
//!
//! Each runner (nextest, go test, gocheck, a user's command) lives in its own submodule and
//! yields the same plain types, so planning and running never know which runner they serve.

#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub mod command;
pub mod files;
pub mod gocheck;
pub mod gotest;
pub mod nextest;

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

/// One listed test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCase {
    /// Which test this is.
    pub id: TestId,
    /// Listed but not selected to run (e.g. `#[ignore]` without `--run-ignored`): reported
    /// as skipped without being shipped to a shard.
    pub ignored: bool,
}

/// Files to place in every shard's container before it starts.
#[derive(Debug, Clone)]
pub enum Upload {
    /// A local file, copied to `dest` (a path relative to the shard root).
    File {
        /// The file on this machine.
        src: PathBuf,
        /// Where it lands, relative to the shard root.
        dest: String,
        /// Its Unix permission bits (0o755 for a binary).
        mode: u32,
    },
    /// A local directory tree limited to `files` (paths relative to `src`), placed under `dest`.
    Tree {
        /// The directory on this machine the paths in `files` are relative to.
        src: PathBuf,
        /// The files to ship: never everything under `src`, only what the suite needs.
        files: Vec<PathBuf>,
        /// Where the tree lands, relative to the shard root.
        dest: String,
    },
}

/// What a shard needs to know about where and as what it runs.
#[derive(Debug, Clone)]
pub struct ShardCtx {
    /// Absolute path of the shard root inside the container (or local temp dir): every
    /// uploaded path is relative to it.
    pub root: String,
    /// This shard's number, 0-based, among `count`.
    pub index: usize,
    /// How many shards the run has.
    pub count: usize,
    /// The run's id, which labels its containers so `gc` can find them.
    pub run_id: String,
    /// The name of the host this shard runs on, as the hosts file spells it.
    pub host: String,
    /// 1 for the first attempt; retries count up.
    pub attempt: u32,
    /// Tests to run at once inside the shard (nextest `-j`, parallel go binaries).
    pub jobs: usize,
    /// Per-test timeout to hand to the runner.
    pub test_timeout: Option<Duration>,
    /// How to invoke each of the suite's [`Tool`]s in this shard: absent means by name, from
    /// the image's PATH; present, the path of the copy shipped from this machine.
    pub tools: BTreeMap<String, String>,
    /// Where each staged part of the payload is (`src`, `target`, `bin`…): its build-machine
    /// path when it could be used there; absent means `<root>/<name>`.
    pub places: BTreeMap<String, String>,
}

impl ShardCtx {
    /// The absolute directory holding payload part `name` in this shard.
    pub fn place(&self, name: &str) -> String {
        self.places
            .get(name)
            .cloned()
            .unwrap_or_else(|| format!("{}/{name}", self.root.trim_end_matches('/')))
    }

    /// The command that runs tool `name` in this shard.
    pub fn tool<'a>(&'a self, name: &'a str) -> &'a str {
        self.tools.get(name).map(String::as_str).unwrap_or(name)
    }
}

/// A program a shard runs that the image may lack (e.g. `cargo-nextest`): the runner checks
/// each host's image once and ships `local` into the shard where the image has no `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    /// The name the shard calls it by, looked up on the image's PATH.
    pub name: String,
    /// The copy on this machine shipped where the image lacks it.
    pub local: PathBuf,
}

/// How to run one shard: an exec array (never a shell string), its environment, files
/// generated for this shard only, and the paths to download once it exits.
#[derive(Debug, Clone, Default)]
pub struct ShardSpec {
    /// The command, program first.
    pub argv: Vec<String>,
    /// The command's environment; the job adds its variables and secrets here.
    pub env: Vec<(String, String)>,
    /// Working directory, absolute (under the shard root).
    pub workdir: String,
    /// Generated files: path relative to the shard root → contents.
    pub files: Vec<(String, Vec<u8>)>,
    /// Absolute paths (files or directories) to bring back after the shard exits.
    pub collect: Vec<String>,
}

/// What came back from a shard: its exit code, its combined output (secrets masked) and the
/// collected files (absolute container path → contents; directories are flattened into their
/// files), as the shard wrote them: masking raw bytes before a JUnit or JSON file is decoded
/// can cut an escaped value in half, so results are masked once decoded and artifacts when
/// they are saved.
#[derive(Debug, Clone, Default)]
pub struct Collected {
    /// The exit code of the shard's command; `None` if it never exited (killed, lost).
    pub exit_code: Option<i64>,
    /// Its stdout and stderr as one log, secrets masked.
    pub output: Vec<u8>,
    /// The files the [`ShardSpec`] asked to collect, by absolute path.
    pub files: BTreeMap<String, Vec<u8>>,
    /// The kernel killed a process of the shard for memory: maybe a test binary (its
    /// runner reports it as a crash), maybe the runner itself (then no report is left).
    pub oom_killed: bool,
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

/// Runner-specific behaviour a shard needs at run time. Implemented by each discoverer.
pub trait ShardRecipe: Send + Sync {
    /// Short name for messages ("nextest", "go", "gocheck", "exec").
    fn runner(&self) -> &'static str;
    /// The command, environment and generated files for a shard running exactly `tests`.
    fn prepare(&self, tests: &[TestId], ctx: &ShardCtx) -> ShardSpec;
    /// Per-test results from what the shard left behind. Tests of `tests` without a
    /// result are the runner's to explain; the caller turns them into errors.
    fn results(&self, tests: &[TestId], collected: &Collected) -> Vec<TestResult>;
    /// Whether shards write into the uploaded source tree (a user's command may): then the
    /// payload is copied into each container instead of mounted read-only from the cache.
    fn writes_source(&self) -> bool {
        false
    }
    /// What a line of the shard's live output says about a test, if anything: started or
    /// finished, and whether the line came from a channel the tests' own output cannot write
    /// into (only such lines may stand in for the report when the shard ends without one).
    fn live(&self, _stream: Stream, _line: &str) -> Option<Live> {
        None
    }
}

/// Which of a shard's output streams a line came from (a container's stdout and stderr are
/// kept apart; the log file interleaves them for humans).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// The shard's stdout.
    Out,
    /// The shard's stderr.
    Err,
}

/// A test's start or end as the runner announced it in its live output.
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    /// As the runner names it: a `TestId`'s display form, or only its name.
    pub name: String,
    /// Whether the test started or finished.
    pub event: LiveEvent,
    /// Read from the runner's own structured channel, which test output cannot reach: the
    /// result may stand in for the report. Human-readable lines are display only.
    pub trusted: bool,
}

/// What a live output line says about a test.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveEvent {
    /// The test began running: the progress shows it as in flight.
    Started,
    /// The test ended, with its verdict.
    Finished(LiveEnd),
}

/// A test's end as the runner announced it.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveEnd {
    /// The verdict the runner announced.
    pub status: TestStatus,
    /// How long the runner says the test took.
    pub duration: Duration,
    /// A failure's reason, when the runner gives one apart from the output.
    pub message: Option<String>,
    /// A failure's output, when the runner gives it with the end.
    pub output: String,
}

impl Live {
    /// A display-only end read from human-readable output.
    pub fn printed_end(name: &str, status: TestStatus, duration: Duration) -> Self {
        Live {
            name: name.to_string(),
            event: LiveEvent::Finished(LiveEnd {
                status,
                duration,
                message: None,
                output: String::new(),
            }),
            trusted: false,
        }
    }
}

/// The output of discovery: the tests, what every shard uploads, and how shards run.
#[derive(Clone)]
pub struct Suite {
    /// Every listed test, ignored ones included.
    pub tests: Vec<TestCase>,
    /// What every shard's container gets before it starts: the binaries and the source tree.
    pub uploads: Vec<Upload>,
    /// Programs the shards run that an image may lack.
    pub tools: Vec<Tool>,
    /// How a shard runs a subset of these tests and reads their results back.
    pub recipe: Arc<dyn ShardRecipe>,
    /// Warnings about the suite itself (doctests left out), printed once the run is planned,
    /// so a run that stops on bad input prints its one error line and nothing else.
    pub notices: Vec<String>,
}

impl std::fmt::Debug for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Suite")
            .field("runner", &self.recipe.runner())
            .field("tests", &self.tests.len())
            .field("uploads", &self.uploads)
            .finish()
    }
}
