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
    pub host: String,
    pub container: String,
}

impl Outcome {
    pub fn id(&self) -> &TestId {
        &self.result.id
    }
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
    pub shard: usize,
    pub attempt: u32,
    pub host: String,
    /// Which of the host's slots ran it (for the timeline's rows).
    pub slot: usize,
    pub container: String,
    pub tests: usize,
    #[serde(serialize_with = "crate::units::serialize_secs")]
    pub predicted: Duration,
    /// Offsets from the start of the run.
    #[serde(serialize_with = "crate::units::serialize_secs")]
    pub started: Duration,
    #[serde(serialize_with = "crate::units::serialize_secs")]
    pub finished: Duration,
    pub phases: Phases,
    pub end: AttemptEnd,
    /// The file holding this attempt's output.
    pub log: std::path::PathBuf,
    /// True for the re-run of failed tests (`--retries`).
    pub rerun: bool,
}

/// Everything the reports need.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub run_id: String,
    pub outcomes: Vec<Outcome>,
    pub attempts: Vec<ShardAttempt>,
    pub wall: Duration,
    /// Hosts left out or lost, with the reason.
    pub lost_hosts: Vec<(String, String)>,
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
    pub host: String,
    pub container: String,
    /// The `DOCKER_HOST` value that reaches its engine (`None` for local processes).
    pub docker_host: Option<String>,
    /// The shard's service containers and their private network, kept with it.
    pub services: Vec<String>,
    pub network: Option<String>,
}

impl RunReport {
    pub fn count(&self, status: TestStatus) -> usize {
        self.outcomes
            .iter()
            .filter(|o| o.result.status == status && !o.is_flaky())
            .count()
    }
    pub fn flaky(&self) -> usize {
        self.outcomes.iter().filter(|o| o.is_flaky()).count()
    }
}

/// Progress events, in the order they happen; the reports render them.
#[derive(Debug, Clone)]
pub enum Event {
    ShardStarted {
        shard: usize,
        attempt: u32,
        host: String,
        tests: usize,
    },
    ShardFinished(ShardAttempt),
    /// The runner's live output says this test started.
    TestStarted {
        id: TestId,
        shard: usize,
        host: String,
        attempt: u32,
    },
    /// The runner's live output says this test ended, first word only: display, which the
    /// shard's [`Event::TestFinished`] (the report's word) corrects; never in the JSON stream.
    TestEnded {
        result: TestResult,
        shard: usize,
        host: String,
        attempt: u32,
    },
    /// The runner's live output says this test failed (its result comes with the shard's).
    TestFailing {
        id: TestId,
        shard: usize,
        host: String,
    },
    TestFinished {
        result: TestResult,
        shard: usize,
        host: String,
        attempt: u32,
    },
    HostLost {
        host: String,
        reason: String,
    },
    /// Something the user should know that fails nothing (an artifact not written, a tool
    /// shipped because an image lacks it): one line, printed even by `-q`.
    Warning(String),
    /// A host's payload parts are staged: bytes uploaded and served from its cache.
    Staged {
        host: String,
        stats: crate::engine::docker::StageStats,
    },
}
