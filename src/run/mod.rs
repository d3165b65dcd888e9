//! Running a plan: queue shards onto hosts' free slots, retry what infrastructure broke,
//! re-run failed tests for flakiness, enforce timeouts, and always remove what was created.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Host;
use crate::engine::Engine;

mod attempt;
mod batch;
mod head_start;
pub mod outcome;
pub mod payload;
mod phase;
mod queue;
mod schedule;
mod settle;
mod slots;
pub mod stage;
pub mod tools;

pub use head_start::HeadStart;
pub use outcome::{AttemptEnd, Event, Kept, Outcome, RunReport, ShardAttempt};
pub use schedule::execute;

/// A host is lost when this many pings in a row get no answer within [`PING_LIMIT`]: an
/// engine that hangs (stopped, or an ssh tunnel that no longer carries anything) fails no
/// request, it just never answers.
pub(crate) const PING_MISSES: u32 = 2;
pub(crate) const PING_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);
/// How often each host is pinged while a run uses it.
pub(crate) const PING_EVERY: std::time::Duration = std::time::Duration::from_secs(2);
pub(crate) const UNRESPONSIVE: &str = "engine stopped answering (2 pings without a reply within 5s)";

/// How to run, as the user asked.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Labels and names every container of the run.
    pub run_id: String,
    /// `<out>/logs/<shard>.log` receives each shard's output.
    pub out_dir: PathBuf,
    /// Extra attempts for a shard that failed without results.
    pub shard_retries: u32,
    /// Re-runs of failed tests.
    pub retries: u32,
    /// `--shard-timeout`: a shard (or batch) running longer is killed, its unreported tests
    /// become errors.
    pub shard_timeout: Option<Duration>,
    /// `--test-timeout`, handed to the runner.
    pub test_timeout: Option<Duration>,
    /// `--keep-containers`: leave every container in place and say how to reach it.
    pub keep_containers: bool,
    /// The job: services, limits, secrets, artifacts (the default is none).
    pub job: Arc<crate::job::RunJob>,
    /// Failing tests after which the whole run stops (`--fail-fast`, `--max-fail`): running
    /// shards are cancelled and what did not run is reported as skipped.
    pub max_fail: Option<usize>,
    /// Cut shards whose time is mostly estimated into batches that idle slots take over
    /// (test-level stealing), and run a host's work in one long-lived container per slot;
    /// off with `--no-steal`.
    pub steal: bool,
}

/// A host that answered, with its engine.
#[derive(Clone)]
pub struct LiveHost {
    /// The host as configured (with `jobs` derived from its CPUs where unset).
    pub host: Host,
    /// Its connected engine, shared by every slot.
    pub engine: Arc<Engine>,
}

/// Receives progress events as they happen.
pub type Observer = Arc<dyn Fn(&Event) + Send + Sync>;

/// A fresh run id: short, sortable, unique enough for labels and container names.
pub fn new_run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{:x}{:04x}",
        now.as_secs(),
        (now.subsec_nanos() ^ std::process::id()) & 0xffff
    )
}

/// The environment every shard gets, whatever its runner.
pub fn shard_env(
    run_id: &str,
    index: usize,
    count: usize,
    host: &str,
    attempt: u32,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("CARGO_SHARD_RUN".to_string(), run_id.to_string()),
        ("CARGO_SHARD_INDEX".to_string(), index.to_string()),
        ("CARGO_SHARD_COUNT".to_string(), count.to_string()),
        ("CARGO_SHARD_HOST".to_string(), host.to_string()),
        ("CARGO_SHARD_ATTEMPT".to_string(), attempt.to_string()),
    ])
}
