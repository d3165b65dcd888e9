//! What a run produces: one [`Outcome`] per planned test and one [`ShardAttempt`] per
//! container started, handed as plain values to the reports.

use std::time::Duration;

use crate::engine::Phases;
use crate::test_result::{TestId, TestResult, TestStatus};

/// The final word on one test.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The last attempt's result.
    pub result: TestResult,
    /// Earlier failed attempts, oldest first: non-empty with a passing `result` means flaky.
    pub earlier: Vec<TestResult>,
    /// Shard, host and container of the last attempt; `None` for tests never shipped (ignored).
    pub shard: Option<usize>,
    /// The host of the last attempt (empty when never shipped).
    pub host: String,
    /// The container of the last attempt (empty when never shipped).
    pub container: String,
}

impl Outcome {
    /// The test.
    pub fn id(&self) -> &TestId {
        &self.result.id
    }
    /// Passed on a later attempt after failing: reported as flaky, not as passed.
    pub fn is_flaky(&self) -> bool {
        self.result.status == TestStatus::Passed && !self.earlier.is_empty()
    }
}

/// How one container's life ended.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum AttemptEnd {
    /// The runner exited (with this code) and its results were read.
    Exited(Option<i64>),
    /// Infrastructure failed (engine lost, upload failed, no results): retried or errored.
    Failed(String),
    /// Killed by `--shard-timeout`.
    TimedOut,
    /// Interrupted by the user.
    Cancelled,
}

/// One container started for a shard (a shard has several when retried).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShardAttempt {
    /// The shard's (or batch's) index: its log, events and report rows carry it.
    pub shard: usize,
    /// 1 for the first attempt, then counting retries and moves off lost hosts.
    pub attempt: u32,
    /// The host that ran it.
    pub host: String,
    /// Which of the host's slots ran it (for the timeline's rows).
    pub slot: usize,
    /// The container it ran in (a slot's long-lived one for batches).
    pub container: String,
    /// Tests it was given.
    pub tests: usize,
    /// The planner's prediction of its wall time.
    #[serde(serialize_with = "crate::units::serialize_secs")]
    pub predicted: Duration,
    /// When it started, from the start of the run.
    #[serde(serialize_with = "crate::units::serialize_secs")]
    pub started: Duration,
    /// When it ended, from the start of the run.
    #[serde(serialize_with = "crate::units::serialize_secs")]
    pub finished: Duration,
    /// Time in each phase of the container's life.
    pub phases: Phases,
    /// How it ended.
    pub end: AttemptEnd,
    /// The file holding this attempt's output.
    pub log: std::path::PathBuf,
    /// True for the re-run of failed tests (`--retries`).
    pub rerun: bool,
}

/// Everything the reports need.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// The run's id, as its containers' labels carry it.
    pub run_id: String,
    /// One per planned test.
    pub outcomes: Vec<Outcome>,
    /// One per container attempt, in the order they ended.
    pub attempts: Vec<ShardAttempt>,
    /// From the start of staging to the end of cleanup.
    pub wall: Duration,
    /// Hosts left out or lost, with the reason.
    pub lost_hosts: Vec<(String, String)>,
    /// The user interrupted the run: what did not run is reported as skipped.
    pub interrupted: bool,
    /// Containers left in place by `--keep-containers`.
    pub kept: Vec<Kept>,
    /// Hosts the final cleanup could not reach (lost, or timing out), with the reason: their
    /// leftovers are for `cargo shard gc --run <id>`.
    pub cleanup_failed: Vec<(String, String)>,
    /// An engine refused a shard's container configuration (`HOST: the engine refused …`):
    /// bad input, the run stopped starting shards.
    pub rejected: Option<String>,
    /// Per Docker host: what staging the payload uploaded and found cached.
    pub staged: Vec<(String, crate::engine::docker::StageStats)>,
    /// How long staging took on all hosts at once (the `stage` phase).
    pub stage: Duration,
}

/// A container left in place by `--keep-containers`, and how to reach it.
#[derive(Debug, Clone, PartialEq)]
pub struct Kept {
    /// The host holding it.
    pub host: String,
    /// The shard's container.
    pub container: String,
    /// The `DOCKER_HOST` value that reaches its engine (`None` for local processes).
    pub docker_host: Option<String>,
    /// The shard's service containers and their private network, kept with it.
    pub services: Vec<String>,
    /// The services' private network, if the shard had services.
    pub network: Option<String>,
}

impl RunReport {
    /// Tests whose final status is `status`, flaky ones not counted as passed.
    pub fn count(&self, status: TestStatus) -> usize {
        self.outcomes
            .iter()
            .filter(|o| o.result.status == status && !o.is_flaky())
            .count()
    }
    /// Tests that passed only on a later attempt.
    pub fn flaky(&self) -> usize {
        self.outcomes.iter().filter(|o| o.is_flaky()).count()
    }
}

/// Progress events, in the order they happen; the reports render them.
#[derive(Debug, Clone)]
pub enum Event {
    /// A shard (or batch) started on a host's slot.
    ShardStarted {
        /// Its index.
        shard: usize,
        /// Which attempt.
        attempt: u32,
        /// Where.
        host: String,
        /// How many tests it runs.
        tests: usize,
        /// Its predicted wall time.
        predicted: Duration,
    },
    /// A shard (or batch) attempt ended, however it ended.
    ShardFinished(ShardAttempt),
    /// The runner's live output says this test started.
    TestStarted {
        /// The test.
        id: TestId,
        /// The shard running it.
        shard: usize,
        /// Where.
        host: String,
        /// Which attempt of the shard.
        attempt: u32,
    },
    /// The runner's live output says this test ended, first word only: display, which the
    /// shard's [`Event::TestFinished`] (the report's word) corrects; never in the JSON stream.
    TestEnded {
        /// What the live output said.
        result: TestResult,
        /// The shard running it.
        shard: usize,
        /// Where.
        host: String,
        /// Which attempt of the shard.
        attempt: u32,
    },
    /// The runner's live output says this test failed (its result comes with the shard's).
    TestFailing {
        /// The test.
        id: TestId,
        /// The shard running it.
        shard: usize,
        /// Where.
        host: String,
    },
    /// A test's result as recorded for the report (its runner's report, or a trusted live
    /// end standing in for it): once per test and attempt.
    TestFinished {
        /// The result.
        result: TestResult,
        /// The shard that gave it.
        shard: usize,
        /// Where.
        host: String,
        /// Which attempt of the shard.
        attempt: u32,
    },
    /// A host stopped answering or failed to stage: its work moves to the others.
    HostLost {
        /// The host.
        host: String,
        /// Why, in the engine's words.
        reason: String,
    },
    /// Something the user should know that fails nothing (an artifact not written, a tool
    /// shipped because an image lacks it): one line, printed even by `-q`.
    Warning(String),
    /// A host's payload parts are staged: bytes uploaded and served from its cache.
    Staged {
        /// The host.
        host: String,
        /// Bytes uploaded, served from cache, evicted.
        stats: crate::engine::docker::StageStats,
    },
}
