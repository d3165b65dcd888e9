//! Discovery: build the tests once and list them, producing a [`Suite`] that says what each
//! shard must upload, how to run a subset of tests, and how to read that subset's results.
//!
//! Each runner (nextest, go test, gocheck, a user's command) lives in its own submodule and
//! yields the same plain types, so planning and running never know which runner they serve.

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
    pub group: String,
    pub name: String,
}

impl TestId {
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
    pub id: TestId,
    /// Listed but not selected to run (e.g. `#[ignore]` without `--run-ignored`): reported
    /// as skipped without being shipped to a shard.
    pub ignored: bool,
}

/// Files to place in every shard's container before it starts.
#[derive(Debug, Clone)]
pub enum Upload {
    /// A local file, copied to `dest` (a path relative to the shard root).
    File { src: PathBuf, dest: String, mode: u32 },
    /// A local directory tree limited to `files` (paths relative to `src`), placed under `dest`.
    Tree {
        src: PathBuf,
        files: Vec<PathBuf>,
        dest: String,
    },
}

/// What a shard needs to know about where and as what it runs.
#[derive(Debug, Clone)]
pub struct ShardCtx {
    /// Absolute path of the shard root inside the container (or local temp dir): every
    /// uploaded path is relative to it.
    pub root: String,
    pub index: usize,
    pub count: usize,
    pub run_id: String,
    pub host: String,
    /// 1 for the first attempt; retries count up.
    pub attempt: u32,
    /// Tests to run at once inside the shard (nextest `-j`, parallel go binaries).
    pub test_threads: usize,
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
    pub name: String,
    pub local: PathBuf,
}

/// How to run one shard: an exec array (never a shell string), its environment, files
/// generated for this shard only, and the paths to download once it exits.
#[derive(Debug, Clone, Default)]
pub struct ShardSpec {
    pub argv: Vec<String>,
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
    pub exit_code: Option<i64>,
    pub output: Vec<u8>,
    pub files: BTreeMap<String, Vec<u8>>,
    /// The kernel killed a process of the shard for memory: maybe a test binary (its
    /// runner reports it as a crash), maybe the runner itself (then no report is left).
    pub oom_killed: bool,
}

/// The result a runner reported for one test in one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct TestResult {
    pub id: TestId,
    pub status: TestStatus,
    pub duration: Duration,
    /// Failure or skip message (one line when the runner gives one).
    pub message: Option<String>,
    /// The whole failure as the runner reported it (a panic with its `left`/`right`, Go's
    /// `--- FAIL` block, gocheck's `... obtained/expected`), for the JUnit `<failure>` text;
    /// empty when the runner gave nothing beyond `message`.
    pub detail: String,
    pub stdout: String,
    pub stderr: String,
    /// Results of the test's subtests (Go's `TestX/sub`), for the report: the planner, the
    /// counts and the history deal in whole tests.
    pub subtests: Vec<TestResult>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TestStatus {
    Passed,
    Failed,
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
    Out,
    Err,
}

/// A test's start or end as the runner announced it in its live output.
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    /// As the runner names it: a `TestId`'s display form, or only its name.
    pub name: String,
    pub event: LiveEvent,
    /// Read from the runner's own structured channel, which test output cannot reach: the
    /// result may stand in for the report. Human-readable lines are display only.
    pub trusted: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LiveEvent {
    Started,
    Finished(LiveEnd),
}

/// A test's end as the runner announced it.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveEnd {
    pub status: TestStatus,
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
    pub tests: Vec<TestCase>,
    pub uploads: Vec<Upload>,
    /// Programs the shards run that an image may lack.
    pub tools: Vec<Tool>,
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
