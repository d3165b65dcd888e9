//! Joining partition jobs: check that they ran one plan, every planned test exactly once,
//! then merge their JUnit reports and histories.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::{MANIFEST, Manifest};
use crate::history::History;
use crate::test_result::TestId;

/// How many test names an error lists before saying how many more there are.
const NAMED: usize = 10;

/// One job's output directory and its manifest.
#[derive(Debug, Clone)]
pub struct Job {
    /// Where its outputs are.
    pub dir: PathBuf,
    /// Its `partition.json`.
    pub manifest: Manifest,
}

/// Why jobs cannot be merged into one report.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MergeError {
    /// The inputs cannot be merged at all: unreadable, or jobs of different plans.
    #[error("merge: {0}")]
    Input(String),
    /// The jobs were of one plan, but tests are missing or were run twice.
    #[error("merge: {0}")]
    Incomplete(String),
}

impl Job {
    /// Reads `DIR/partition.json` (or the manifest file itself).
    pub fn read(path: &Path) -> Result<Self, MergeError> {
        let file = if path.is_dir() {
            path.join(MANIFEST)
        } else {
            path.to_path_buf()
        };
        let manifest = Manifest::read(&file).map_err(MergeError::Input)?;
        let dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();
        Ok(Self { dir, manifest })
    }

    fn name(&self) -> String {
        format!("job {} ({})", self.manifest.partition, self.dir.display())
    }
}

/// Checks that the jobs ran one plan (same fingerprint and shares, each job once) and that
/// every planned test was reported by exactly one job.
pub fn check(jobs: &[Job]) -> Result<(), MergeError> {
    let first = jobs
        .first()
        .ok_or_else(|| MergeError::Input("no job outputs given".to_string()))?;
    for j in &jobs[1..] {
        let (a, b) = (&first.manifest, &j.manifest);
        if a.fingerprint != b.fingerprint {
            return Err(MergeError::Input(format!(
                "{} planned from fingerprint {}, {} from {}: the jobs saw different test listings or histories",
                first.name(),
                a.fingerprint,
                j.name(),
                b.fingerprint
            )));
        }
        if a.partition.total != b.partition.total || a.shares != b.shares {
            return Err(MergeError::Input(format!(
                "{} and {} planned different shares from the same inputs (different plan options or cargo-shard versions?)",
                first.name(),
                j.name()
            )));
        }
    }
    let mut by_index: BTreeMap<usize, &Job> = BTreeMap::new();
    for j in jobs {
        if let Some(other) = by_index.insert(j.manifest.partition.index, j) {
            return Err(MergeError::Input(format!(
                "{} and {} are the same job",
                other.name(),
                j.name()
            )));
        }
    }
    incomplete(first, jobs, &by_index)
}

fn incomplete(first: &Job, jobs: &[Job], by_index: &BTreeMap<usize, &Job>) -> Result<(), MergeError> {
    let m = &first.manifest;
    let total = m.partition.total;
    let planned: BTreeSet<&TestId> = m.shares.iter().flatten().chain(&m.ignored).collect();
    let mut seen: BTreeMap<&TestId, Vec<usize>> = BTreeMap::new();
    for j in jobs {
        for r in &j.manifest.results {
            seen.entry(&r.id).or_default().push(j.manifest.partition.index);
        }
    }
    let mut problems = Vec::new();
    let absent: Vec<String> = (1..=total)
        .filter(|k| !by_index.contains_key(k))
        .map(|k| format!("{k}/{total}"))
        .collect();
    if !absent.is_empty() {
        problems.push(format!("no output from job {}", absent.join(", ")));
    }
    let missing: Vec<String> = planned
        .iter()
        .filter(|id| !seen.contains_key(*id))
        .map(|id| id.to_string())
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "{} planned test(s) missing: {}",
            missing.len(),
            names(&missing)
        ));
    }
    let twice: Vec<String> = seen
        .iter()
        .filter(|(_, ks)| ks.len() > 1)
        .map(|(id, ks)| {
            let ks: Vec<String> = ks.iter().map(|k| format!("{k}/{total}")).collect();
            format!("{id} (jobs {})", ks.join(", "))
        })
        .collect();
    if !twice.is_empty() {
        problems.push(format!(
            "{} test(s) reported more than once: {}",
            twice.len(),
            names(&twice)
        ));
    }
    let unplanned: Vec<String> = seen
        .keys()
        .filter(|id| !planned.contains(*id))
        .map(|id| id.to_string())
        .collect();
    if !unplanned.is_empty() {
        problems.push(format!(
            "{} test(s) reported but never planned: {}",
            unplanned.len(),
            names(&unplanned)
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(MergeError::Incomplete(problems.join("; ")))
    }
}

fn names(list: &[String]) -> String {
    let mut s = list.iter().take(NAMED).cloned().collect::<Vec<_>>().join(", ");
    if list.len() > NAMED {
        s.push_str(&format!(" and {} more", list.len() - NAMED));
    }
    s
}

/// The jobs' JUnit reports as one, every suite marked with the job that ran it.
pub fn junit(jobs: &[Job]) -> Result<crate::junit::Report, MergeError> {
    let fp = jobs
        .first()
        .map(|j| j.manifest.fingerprint.clone())
        .unwrap_or_default();
    let mut merged = crate::junit::Report {
        name: format!("cargo-shard merge {fp}"),
        // The jobs ran side by side: the slowest one is the wall time.
        time: jobs.iter().map(|j| j.manifest.elapsed).reduce(f64::max),
        suites: Vec::new(),
    };
    for j in jobs {
        let Some(rel) = &j.manifest.junit else {
            if j.manifest.results.is_empty() {
                continue;
            }
            return Err(MergeError::Input(format!(
                "{} has results but no JUnit report",
                j.name()
            )));
        };
        let path = j.dir.join(rel);
        let report = crate::junit::read_file(&path).map_err(|e| MergeError::Input(e.to_string()))?;
        for mut suite in report.suites {
            suite.properties.push((
                "cargo-shard.partition".to_string(),
                j.manifest.partition.to_string(),
            ));
            merged.suites.push(suite);
        }
    }
    Ok(merged)
}

/// One history: the first job's (every job started from the same one), with each test's
/// samples from the job that ran it.
pub fn history(jobs: &[Job]) -> History {
    let mut merged: Option<History> = None;
    for j in jobs {
        let (h, _) = History::load(&j.dir.join("history.json"));
        let base = merged.get_or_insert_with(|| h.clone());
        for r in &j.manifest.results {
            base.adopt(&h, &r.id);
        }
    }
    merged.unwrap_or_default()
}
