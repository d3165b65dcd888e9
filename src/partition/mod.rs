//! CI-matrix mode: every CI job computes the same plan for N jobs from the listing and the
//! history, runs its own share, and records what it ran in a manifest (`partition.json`) that
//! `cargo shard merge` checks against the other jobs' manifests.

use std::collections::BTreeMap;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::discover::TestCase;

use crate::history::History;
use crate::plan::{Capacity, Plan};
use crate::test_result::{TestId, TestStatus};

pub mod merge;

/// The manifest's file name in a job's output directory.
pub const MANIFEST: &str = "partition.json";
/// The manifest's format; merge refuses others.
pub const MANIFEST_VERSION: u32 = 1;

/// Job `index` (1-based) of `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Partition {
    /// This job, 1-based.
    pub index: usize,
    /// Jobs in the matrix.
    pub total: usize,
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.total)
    }
}

impl Partition {
    /// `K/N` with 1 ≤ K ≤ N.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("partition {s:?}: expected K/N with 1 <= K <= N, or auto");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, total): (usize, usize) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if index == 0 || index > total {
            return Err(bad());
        }
        Ok(Self { index, total })
    }

    /// The CI system's parallel-job variables: GitLab `CI_NODE_INDEX`/`CI_NODE_TOTAL`
    /// (1-based), CircleCI `CIRCLE_NODE_INDEX`/`CIRCLE_NODE_TOTAL` and Buildkite
    /// `BUILDKITE_PARALLEL_JOB`/`BUILDKITE_PARALLEL_JOB_COUNT` (0-based).
    pub fn from_ci(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        const SYSTEMS: [(&str, &str, usize); 3] = [
            ("CI_NODE_INDEX", "CI_NODE_TOTAL", 0),
            ("CIRCLE_NODE_INDEX", "CIRCLE_NODE_TOTAL", 1),
            ("BUILDKITE_PARALLEL_JOB", "BUILDKITE_PARALLEL_JOB_COUNT", 1),
        ];
        for (index_var, total_var, shift) in SYSTEMS {
            let (Some(i), Some(n)) = (var(index_var), var(total_var)) else {
                continue;
            };
            let num = |name: &str, v: &str| {
                v.trim()
                    .parse::<usize>()
                    .map_err(|_| format!("--partition auto: {name}={v:?} is not a number"))
            };
            let (i, n) = (num(index_var, &i)? + shift, num(total_var, &n)?);
            return Self::parse(&format!("{i}/{n}"))
                .map_err(|_| format!("--partition auto: {index_var} gives job {i} of {total_var}={n}"));
        }
        Err("--partition auto: no CI parallel-job variables (CI_NODE_INDEX/CI_NODE_TOTAL, CIRCLE_NODE_INDEX/CIRCLE_NODE_TOTAL, BUILDKITE_PARALLEL_JOB/BUILDKITE_PARALLEL_JOB_COUNT)".to_string())
    }
}

/// What every job plans over: N identical slots, whatever machine the job runs on, so every
/// job gets the same plan.
pub fn job_capacities(total: usize) -> Vec<Capacity> {
    (1..=total)
        .map(|k| Capacity {
            host: format!("job{k}"),
            slots: 1,
            test_threads: 1,
            weight: 1.0,
        })
        .collect()
}

/// Each job's tests: the plan's shard k-1 for job k (fewer tests than jobs leave the last
/// jobs empty).
pub fn shares(plan: &Plan, total: usize) -> Vec<Vec<TestId>> {
    (0..total)
        .map(|k| plan.shards.get(k).map(|s| s.tests.clone()).unwrap_or_default())
        .collect()
}

/// A short hash of what the plan is computed from: the listing (ids and whether each is
/// ignored) and the history. Jobs that print different fingerprints plan differently.
pub fn fingerprint(tests: &[TestCase], history: &History) -> String {
    let mut ids: Vec<(&TestId, bool)> = tests.iter().map(|t| (&t.id, t.ignored)).collect();
    ids.sort();
    let mut h = Sha256::new();
    h.update(b"cargo-shard partition 1\n");
    for (id, ignored) in ids {
        h.update(format!("{}\t{}\t{}\n", id.group, id.name, ignored).as_bytes());
    }
    h.update(b"\0history\n");
    h.update(history.to_json().as_bytes());
    h.finalize().iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// One job's record: the plan it computed, its share, and what became of each test.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_VERSION`] when written.
    pub version: u32,
    /// Of the listing and history the plan came from: every job of one plan has the same.
    pub fingerprint: String,
    /// Which job wrote it.
    pub partition: Partition,
    /// `nextest`, `go` or `exec`.
    pub runner: String,
    /// Every job's tests, as this job planned them.
    pub shares: Vec<Vec<TestId>>,
    /// Listed but not run (`#[ignore]`): job 1 reports them as skipped.
    pub ignored: Vec<TestId>,
    /// Predicted seconds of each share.
    pub predicted: Vec<f64>,
    /// What this job reported per test.
    pub results: Vec<JobResult>,
    /// Wall-clock seconds of the job's run.
    pub elapsed: f64,
    /// The job's JUnit report, relative to the manifest's directory.
    pub junit: Option<String>,
}

/// What a job reported for one of its tests.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JobResult {
    /// The test.
    pub id: TestId,
    /// Its final status.
    pub status: TestStatus,
    /// How long it took.
    pub seconds: f64,
}

impl Manifest {
    /// The manifest a job writes before it runs (no results yet).
    pub fn planned(
        fingerprint: String,
        partition: Partition,
        runner: &str,
        plan: &Plan,
        tests: &[TestCase],
    ) -> Self {
        let mut predicted: Vec<f64> = plan.shards.iter().map(|s| s.predicted.as_secs_f64()).collect();
        predicted.resize(partition.total, 0.0);
        Self {
            version: MANIFEST_VERSION,
            fingerprint,
            partition,
            runner: runner.to_string(),
            shares: shares(plan, partition.total),
            ignored: tests.iter().filter(|t| t.ignored).map(|t| t.id.clone()).collect(),
            predicted,
            results: Vec::new(),
            elapsed: 0.0,
            junit: None,
        }
    }

    /// This job's own tests.
    pub fn mine(&self) -> &[TestId] {
        &self.shares[self.partition.index - 1]
    }

    /// Writes `dir/partition.json` atomically.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let mut text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        text.push('\n');
        crate::atomic::write(&dir.join(MANIFEST), text.as_bytes())
    }

    /// Reads a manifest; the error is one line naming the file.
    pub fn read(path: &Path) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let m: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{}: not a partition manifest: {e}", path.display()))?;
        if m.version != MANIFEST_VERSION {
            return Err(format!(
                "{}: manifest version {} (this cargo-shard reads {MANIFEST_VERSION})",
                path.display(),
                m.version
            ));
        }
        if m.partition.index == 0
            || m.partition.index > m.partition.total
            || m.shares.len() != m.partition.total
        {
            return Err(format!(
                "{}: inconsistent partition {}",
                path.display(),
                m.partition
            ));
        }
        Ok(m)
    }

    /// Status counts of the results, for the report.
    pub fn counts(&self) -> BTreeMap<TestStatus, usize> {
        let mut c = BTreeMap::new();
        for r in &self.results {
            *c.entry(r.status).or_default() += 1;
        }
        c
    }
}

#[cfg(test)]
mod tests;
