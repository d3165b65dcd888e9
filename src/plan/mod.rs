//! Planning: bin the tests into shards by expected duration, and say how good the bins are.
//!
//! The plan is a plain value: the runner only reads [`Plan::shards`], so how the bins are
//! made can change without touching the runner.

use std::time::Duration;

use crate::test_result::TestId;

pub mod baseline;
mod filters;
mod lpt;
pub mod render;
mod rng;

pub use filters::{FilterError, Filters, Selected};
pub use lpt::{PlanOptions, lower_bound, plan};

/// A test as the planner sees it: identity and expected duration.
#[derive(Debug, Clone, PartialEq)]
pub struct Weighted {
    /// The test.
    pub id: TestId,
    /// How long it is expected to take.
    pub expected: Duration,
    /// True when `expected` is an estimate, not a measured history.
    pub estimated: bool,
}

/// History's estimate, as the planner weighs it.
impl From<crate::history::Estimate> for Weighted {
    fn from(e: crate::history::Estimate) -> Self {
        Weighted {
            id: e.id,
            expected: e.expected,
            estimated: !e.known,
        }
    }
}

/// Where shards can run: one entry per host.
#[derive(Debug, Clone, PartialEq)]
pub struct Capacity {
    /// The host's name.
    pub host: String,
    /// Shards it runs at once.
    pub slots: usize,
    /// Tests at once inside one shard.
    pub test_threads: usize,
    /// Relative speed (2 finishes the same work in half the time).
    pub weight: f64,
}

impl From<&crate::config::Host> for Capacity {
    fn from(h: &crate::config::Host) -> Self {
        Self {
            host: h.name.clone(),
            slots: h.slots,
            test_threads: h.test_threads,
            weight: h.weight,
        }
    }
}

/// The planner's view of the configured hosts.
pub fn capacities<'a>(hosts: impl IntoIterator<Item = &'a crate::config::Host>) -> Vec<Capacity> {
    hosts.into_iter().map(Capacity::from).collect()
}

/// One container's worth of tests.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Shard {
    /// 0 for the longest predicted, then in order.
    pub index: usize,
    /// The host the planner meant it for; the runner may move it if that host is lost.
    pub host: Option<String>,
    /// Its tests, in the order they run.
    pub tests: Vec<TestId>,
    /// Predicted wall time on its planned host.
    #[serde(serialize_with = "crate::units::serialize_secs")]
    pub predicted: Duration,
    /// What the planner expected of each test, in the order of `tests` (empty when the shard
    /// was not made by the planner): the runner cuts a shard into batches by it.
    #[serde(skip)]
    pub expected: Vec<Expected>,
}

/// One test's expected duration, as the planner weighed it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expected {
    /// How long it is expected to take.
    pub time: Duration,
    /// True when `time` is an estimate, not a measured history.
    pub estimated: bool,
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Plan {
    /// Shards, longest predicted first, so a queue starts the big ones early.
    pub shards: Vec<Shard>,
    /// Sum of all expected durations.
    #[serde(serialize_with = "crate::units::serialize_secs")]
    pub total: Duration,
    /// Predicted wall time of the whole run.
    #[serde(serialize_with = "crate::units::serialize_secs")]
    pub makespan: Duration,
    /// `max(total / capacity, longest test)`: no plan can beat it.
    #[serde(serialize_with = "crate::units::serialize_secs")]
    pub lower_bound: Duration,
    /// Tests whose duration was estimated (never seen before).
    pub estimated: usize,
}

impl Plan {
    /// Tests across every shard.
    pub fn test_count(&self) -> usize {
        self.shards.iter().map(|s| s.tests.len()).sum()
    }
}

#[cfg(test)]
mod tests;
