//! History: what each test took in earlier runs, kept in `target/shard/history.json` and
//! seeded from JUnit files, and the estimates for tests never seen.
//!
//! Each test keeps its last [`SAMPLES`] durations and is expected to take their median.
//! The median, not an EMA, because shard timings are noisy in one direction: a test that
//! once ran on an overloaded host or hit a cold cache must not skew the plan, and a median
//! of five ignores up to two such runs entirely, where an EMA carries part of every outlier
//! for several runs. It still follows a real change after three runs.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::junit;
use crate::test_result::TestId;

mod estimate;
pub use estimate::{Estimate, estimate};

/// Durations kept per test.
pub const SAMPLES: usize = 5;
/// The on-disk format; a file with another version is ignored with a warning.
pub const FORMAT_VERSION: u32 = 1;

/// Something the user should know, that does not stop the run (one line, naming the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning(pub String);

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why the history could not be saved, or seeded from JUnit files.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The history file could not be written.
    #[error("{path}: cannot write history: {source}")]
    Write {
        /// The history file.
        path: String,
        /// What the file system said.
        source: std::io::Error,
    },
    /// A `--timings-from` pattern that is not a glob.
    #[error("--timings-from {pattern:?}: bad glob: {msg}")]
    Glob {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        msg: String,
    },
}

/// Durations of earlier runs, per test.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// Seconds, oldest first, at most [`SAMPLES`].
    tests: BTreeMap<TestId, Vec<f64>>,
    /// A shard's fixed cost beyond its tests (container create, upload, start, unpacking,
    /// collect, remove), seconds, one median per run, oldest first, at most [`SAMPLES`].
    overhead: Vec<f64>,
    /// Loaded from a file of an unknown version: never written back.
    foreign: bool,
}

/// The JSON file: `{"version": 1, "tests": {"<group>": {"<name>": [secs…]}}}`; maps are
/// sorted, so the same history always gives the same bytes.
#[derive(serde::Serialize, serde::Deserialize)]
struct FileFormat {
    version: u32,
    tests: BTreeMap<String, BTreeMap<String, Vec<f64>>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    shard_overhead: Vec<f64>,
}

/// What seeding from JUnit files found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeedSummary {
    /// JUnit files read.
    pub files: usize,
    /// Test cases whose times were recorded.
    pub cases: usize,
    /// Files that could not be read, one line each.
    pub warnings: Vec<Warning>,
}

impl History {
    /// An empty history: every test's duration is estimated.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads the history at `path`. Missing → empty; unreadable, corrupt or of another
    /// version → empty plus a warning naming the file: a history only speeds things up, so
    /// it never stops a run.
    pub fn load(path: &Path) -> (History, Option<Warning>) {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (History::new(), None),
            Err(e) => return (History::new(), Some(fresh(path, &format!("cannot read: {e}")))),
        };
        let file: FileFormat = match serde_json::from_slice(&bytes) {
            Ok(f) => f,
            Err(e) => {
                return (
                    History::new(),
                    Some(fresh(path, &format!("not a history file: {e}"))),
                );
            }
        };
        if file.version != FORMAT_VERSION {
            let foreign = History {
                foreign: true,
                ..History::new()
            };
            return (
                foreign,
                Some(Warning(format!(
                    "{}: format version {} (this cargo-shard reads {FORMAT_VERSION}); planning without it and leaving the file untouched",
                    path.display(),
                    file.version
                ))),
            );
        }
        let mut h = History::new();
        let mut dropped = 0;
        let mut sane = |samples: Vec<f64>| -> Vec<f64> {
            let n = samples.len();
            let kept: Vec<f64> = samples.into_iter().filter_map(crate::limits::sane_secs).collect();
            dropped += n - kept.len();
            kept
        };
        h.overhead = sane(file.shard_overhead);
        if h.overhead.len() > SAMPLES {
            h.overhead.drain(..h.overhead.len() - SAMPLES);
        }
        for (group, names) in file.tests {
            for (name, samples) in names {
                let mut samples = sane(samples);
                if samples.len() > SAMPLES {
                    samples.drain(..samples.len() - SAMPLES);
                }
                if !samples.is_empty() {
                    h.tests.insert(TestId::new(group.clone(), name), samples);
                }
            }
        }
        let warning = (dropped > 0).then(|| {
            Warning(format!(
                "{}: {dropped} duration(s) outside 0..={}s ignored",
                path.display(),
                crate::limits::MAX_SECS
            ))
        });
        (h, warning)
    }

    /// Writes the history through a temporary file in the same directory, creating the
    /// directory if needed.
    pub fn save_atomic(&self, path: &Path) -> Result<(), HistoryError> {
        crate::atomic::write(path, self.to_json().as_bytes()).map_err(|source| HistoryError::Write {
            path: path.display().to_string(),
            source,
        })
    }

    /// The file's contents: pretty JSON with sorted keys and a final newline.
    pub fn to_json(&self) -> String {
        let mut tests: BTreeMap<String, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
        for (id, samples) in &self.tests {
            let rounded = samples.iter().map(|s| (s * 1e6).round() / 1e6).collect();
            tests
                .entry(id.group.clone())
                .or_default()
                .insert(id.name.clone(), rounded);
        }
        let file = FileFormat {
            version: FORMAT_VERSION,
            tests,
            shard_overhead: self.overhead.iter().map(|s| (s * 1e6).round() / 1e6).collect(),
        };
        let mut s = serde_json::to_string_pretty(&file).expect("a map of numbers serialises");
        s.push('\n');
        s
    }

    /// Adds one run's typical per-shard overhead, forgetting the oldest beyond [`SAMPLES`].
    pub fn record_overhead(&mut self, overhead: Duration) {
        self.overhead
            .push(overhead.as_secs_f64().min(crate::limits::MAX_SECS));
        if self.overhead.len() > SAMPLES {
            self.overhead.remove(0);
        }
    }

    /// The median per-shard overhead of recent runs, if any run was recorded.
    pub fn overhead(&self) -> Option<Duration> {
        if self.overhead.is_empty() {
            return None;
        }
        let mut v = self.overhead.clone();
        v.sort_by(f64::total_cmp);
        Some(Duration::from_secs_f64(v[v.len() / 2]))
    }

    /// Takes `id`'s samples from `other` (a partition job that ran it), replacing ours.
    pub fn adopt(&mut self, other: &History, id: &TestId) {
        if let Some(samples) = other.tests.get(id) {
            self.tests.insert(id.clone(), samples.clone());
        }
    }

    /// Adds one measured duration, forgetting the oldest beyond [`SAMPLES`].
    pub fn record(&mut self, id: &TestId, duration: Duration) {
        let samples = self.tests.entry(id.clone()).or_default();
        samples.push(duration.as_secs_f64().min(crate::limits::MAX_SECS));
        if samples.len() > SAMPLES {
            samples.remove(0);
        }
    }

    /// The history for a run: the file at `path` (if any), then every JUnit file matched
    /// by `timings_from` on top. Warnings are for the user; only a bad glob is an error.
    pub fn prepare(
        path: Option<&Path>,
        timings_from: &[String],
    ) -> Result<(History, Vec<Warning>), HistoryError> {
        let (mut h, warning) = match path {
            Some(p) => History::load(p),
            None => (History::new(), None),
        };
        let mut warnings: Vec<Warning> = warning.into_iter().collect();
        if !timings_from.is_empty() {
            warnings.extend(h.seed_from_junit(timings_from)?.warnings);
        }
        Ok((h, warnings))
    }

    /// The expected duration: the median of the kept samples.
    pub fn expected(&self, id: &TestId) -> Option<Duration> {
        self.tests.get(id).map(|s| Duration::from_secs_f64(median(s)))
    }

    /// False for a file of a version this cargo-shard does not know: it belongs to another
    /// (newer) cargo-shard, so the run plans without it and leaves it as it is.
    pub fn writable(&self) -> bool {
        !self.foreign
    }

    /// How many tests have a recorded duration.
    pub fn len(&self) -> usize {
        self.tests.len()
    }

    /// No test has a recorded duration.
    pub fn is_empty(&self) -> bool {
        self.tests.is_empty()
    }

    /// Every known test with its expected duration, in [`TestId`] order.
    pub fn iter(&self) -> impl Iterator<Item = (&TestId, Duration)> {
        self.tests
            .iter()
            .map(|(id, s)| (id, Duration::from_secs_f64(median(s))))
    }

    /// Records every timed, non-skipped case of a JUnit report; see [`junit_test_id`].
    pub fn seed_from_report(&mut self, report: &junit::Report) -> usize {
        let mut n = 0;
        for suite in &report.suites {
            let names: std::collections::HashSet<&str> =
                suite.cases.iter().map(|c| c.name.as_str()).collect();
            for case in &suite.cases {
                let Some(secs) = case.time.and_then(crate::limits::sane_secs) else {
                    continue;
                };
                if case.status.is_skipped() {
                    continue;
                }
                // A Go subtest (`TestX/sub` beside `TestX`, as gotestsum and our own report
                // write them) is part of its parent's time, never planned on its own; as a
                // sample it would only drag its package's estimate for new tests down.
                if case
                    .name
                    .split_once('/')
                    .is_some_and(|(parent, _)| names.contains(parent))
                {
                    continue;
                }
                self.record(&junit_test_id(suite, case), Duration::from_secs_f64(secs));
                n += 1;
            }
        }
        n
    }

    /// Seeds from every JUnit file matching the globs (`--timings-from`). Unreadable or
    /// malformed files and globs matching nothing become warnings; only a malformed glob
    /// pattern is an error. Files are read in sorted order so the result is deterministic.
    pub fn seed_from_junit(&mut self, globs: &[String]) -> Result<SeedSummary, HistoryError> {
        let mut summary = SeedSummary::default();
        for pattern in globs {
            let paths = glob::glob(pattern).map_err(|e| HistoryError::Glob {
                pattern: pattern.clone(),
                msg: e.to_string(),
            })?;
            let mut files = Vec::new();
            for p in paths {
                match p {
                    Ok(p) if p.is_file() => files.push(p),
                    Ok(_) => {}
                    Err(e) => summary.warnings.push(Warning(format!(
                        "{}: skipped: {}",
                        e.path().display(),
                        e.error()
                    ))),
                }
            }
            if files.is_empty() {
                summary
                    .warnings
                    .push(Warning(format!("--timings-from {pattern:?}: no files match")));
            }
            files.sort();
            for f in files {
                match junit::read_file(&f) {
                    Ok(report) => {
                        summary.files += 1;
                        summary.cases += self.seed_from_report(&report);
                    }
                    Err(e) => summary.warnings.push(Warning(format!("{e} (file skipped)"))),
                }
            }
        }
        Ok(summary)
    }
}

/// The [`TestId`] a JUnit case stands for: group = the case's classname (nextest: binary
/// id; gotestsum and go-junit-report v2: import path; Surefire: Java class), name = its
/// name. Two writers need the suite name instead: those leaving classname empty, and
/// go-junit-report v1, whose classname is only the import path's last element (`pay` in
/// suite `example.com/shop/pay`), which would not match what `go test -list` discovers.
pub fn junit_test_id(suite: &junit::Suite, case: &junit::Case) -> TestId {
    let short_form = !suite.name.is_empty()
        && (case.classname.is_empty()
            || suite
                .name
                .strip_suffix(case.classname.as_str())
                .is_some_and(|head| head.ends_with('/')));
    let group = if short_form { &suite.name } else { &case.classname };
    TestId::new(group.clone(), case.name.clone())
}

fn fresh(path: &Path, why: &str) -> Warning {
    Warning(format!(
        "{}: {why}; starting with an empty history",
        path.display()
    ))
}

/// Median of a non-empty slice (mean of the middle two for an even count).
pub(crate) fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests;
