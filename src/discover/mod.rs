//! Discovery: build the tests once and list them, producing a [`Suite`] that says what each
//! shard must upload, how to run a subset of tests, and how to read that subset's results.
//!
//! Each runner (nextest, go test, gocheck, a user's command) lives in its own submodule and
//! yields the same plain types, so planning and running never know which runner they serve.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::shard::{Collected, ShardSpec, Stream, Upload};
use crate::test_result::{TestId, TestResult, TestStatus};

pub mod command;
pub mod files;
pub mod gocheck;
pub mod gotest;
pub mod nextest;

/// One listed test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCase {
    /// Which test this is.
    pub id: TestId,
    /// Listed but not selected to run (e.g. `#[ignore]` without `--run-ignored`): reported
    /// as skipped without being shipped to a shard.
    pub ignored: bool,
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
    pub test_threads: usize,
    /// Per-test timeout to hand to the runner.
    pub test_timeout: Option<Duration>,
    /// How to invoke each of the suite's [`Tool`]s in this shard: absent means by name, from
    /// the image's PATH; present, the path of the copy shipped from this machine.
    pub tools: BTreeMap<String, String>,
    /// Where each staged part of the payload is (`src`, `target`, `bin`…): its build-machine
    /// path when it could be used there; absent means `<root>/<name>`.
    pub places: BTreeMap<String, String>,
    /// The shard runs in a container (`docker exec` or its own): no terminal, no job control,
    /// nobody to press Ctrl-Z. Local processes share the user's terminal.
    pub in_container: bool,
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

/// Runner-specific behaviour a shard needs at run time. Implemented by each discoverer.
pub trait ShardRecipe: Send + Sync {
    /// Short name for messages ("nextest", "go", "gocheck", "exec").
    fn runner(&self) -> &'static str;
    /// The command, environment and generated files for a shard running exactly `tests`.
    fn prepare(&self, tests: &[TestId], ctx: &ShardCtx) -> ShardSpec;
    /// Per-test results from what the shard left behind. Tests of `tests` without a
    /// result are the runner's to explain; the caller turns them into errors.
    fn results(&self, tests: &[TestId], collected: &Collected) -> Vec<TestResult>;
    /// Whether the tests of one group run one after another inside a shard (a Go package's
    /// binary runs its tests in turn), which the planner must count.
    fn serial_groups(&self) -> bool {
        false
    }
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
    /// Whether what the runner's trusted live channel said of `tests` (`ends`) settles a shard
    /// that exited with `exit_code` as fully as its report would: then the report is not
    /// downloaded, and `ends` are the results.
    fn live_settles(
        &self,
        _exit_code: Option<i64>,
        _tests: &[TestId],
        _ends: &BTreeMap<TestId, TestResult>,
    ) -> bool {
        false
    }
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
    /// A JUnit report the runner itself wrote in an earlier run (nextest's, where the
    /// workspace's config asks for one): its timings plan a first run better than estimates.
    pub earlier_report: Option<PathBuf>,
}

impl Suite {
    /// What its shards receive, as [`Payload`].
    pub fn payload(&self) -> Payload {
        Payload {
            uploads: self.uploads.clone(),
            tools: self.tools.clone(),
            writes_source: self.recipe.writes_source(),
            placed_later: Vec::new(),
        }
    }
}

/// What every shard of a suite receives, known as soon as the suite is built, before its
/// tests are listed: a run may start staging it on the hosts while discovery goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// As [`Suite::uploads`].
    pub uploads: Vec<Upload>,
    /// As [`Suite::tools`].
    pub tools: Vec<Tool>,
    /// As [`ShardRecipe::writes_source`].
    pub writes_source: bool,
    /// Build-machine paths where parts this payload does not hold yet will be placed (the
    /// build's target directory, told with the sources): a part around one of them gets its
    /// mount point now, exactly as it will with the whole payload, so its content is the same.
    pub placed_later: Vec<String>,
}

/// How much of the payload discovery knows when it tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// Before the build: the source tree and the tools only (no build output yet). Staging
    /// these parts can hide behind the build; the whole payload is told again later.
    Sources,
    /// The whole payload, before the tests are listed: there is time left to hide behind.
    BeforeListing,
    /// The whole payload, once the tests are listed.
    Listed,
}

/// Told the suite's [`Payload`] as discovery learns it: at most once with [`Known::Sources`],
/// then at most once whole.
pub type OnPayload<'a> = &'a mut dyn FnMut(Payload, Known);

impl std::fmt::Debug for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Suite")
            .field("runner", &self.recipe.runner())
            .field("tests", &self.tests.len())
            .field("uploads", &self.uploads)
            .finish()
    }
}
