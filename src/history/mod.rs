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

use crate::discover::TestId;
use crate::junit;

mod estimate;
pub use estimate::estimate;

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

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{path}: cannot write history: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("--timings-from {pattern:?}: bad glob: {msg}")]
    Glob { pattern: String, msg: String },
}

/// Durations of earlier runs, per test.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// Seconds, oldest first, at most [`SAMPLES`].
    tests: BTreeMap<TestId, Vec<f64>>,
}

/// The JSON file: `{"version": 1, "tests": {"<group>": {"<name>": [secs…]}}}`; maps are
/// sorted, so the same history always gives the same bytes.
#[derive(serde::Serialize, serde::Deserialize)]
struct FileFormat {
    version: u32,
    tests: BTreeMap<String, BTreeMap<String, Vec<f64>>>,
}

/// What seeding from JUnit files found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeedSummary {
    pub files: usize,
    pub cases: usize,
    pub warnings: Vec<Warning>,
}

impl History {
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
            Err(e) => return (History::new(), Some(fresh(path, &format!("not a history file: {e}")))),
        };
        if file.version != FORMAT_VERSION {
            let why = format!("format version {} (this cargo-shard reads {FORMAT_VERSION})", file.version);
            return (History::new(), Some(fresh(path, &why)));
        }
        let mut h = History::new();
        for (group, names) in file.tests {
            for (name, samples) in names {
                let mut samples: Vec<f64> = samples.into_iter().filter(|s| s.is_finite() && *s >= 0.0).collect();
                if samples.len() > SAMPLES {
                    samples.drain(..samples.len() - SAMPLES);
                }
                if !samples.is_empty() {
                    h.tests.insert(TestId::new(group.clone(), name), samples);
                }
            }
        }
        (h, None)
    }

    /// Writes the history through a temporary file in the same directory, creating the
    /// directory if needed.
    pub fn save_atomic(&self, path: &Path) -> Result<(), HistoryError> {
        let err = |source| HistoryError::Write {
            path: path.display().to_string(),
            source,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        let tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
        std::fs::write(tmp.path(), self.to_json()).map_err(err)?;
        tmp.persist(path).map_err(|e| err(e.error))?;
        Ok(())
    }

    /// The file's contents: pretty JSON with sorted keys and a final newline.
    pub fn to_json(&self) -> String {
        let mut tests: BTreeMap<String, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
        for (id, samples) in &self.tests {
            let rounded = samples.iter().map(|s| (s * 1e6).round() / 1e6).collect();
            tests.entry(id.group.clone()).or_default().insert(id.name.clone(), rounded);
        }
        let file = FileFormat {
            version: FORMAT_VERSION,
            tests,
        };
        let mut s = serde_json::to_string_pretty(&file).expect("a map of numbers serialises");
        s.push('\n');
        s
    }

    /// Adds one measured duration, forgetting the oldest beyond [`SAMPLES`].
    pub fn record(&mut self, id: &TestId, duration: Duration) {
        let samples = self.tests.entry(id.clone()).or_default();
        samples.push(duration.as_secs_f64());
        if samples.len() > SAMPLES {
            samples.remove(0);
        }
    }

    /// The expected duration: the median of the kept samples.
    pub fn expected(&self, id: &TestId) -> Option<Duration> {
        self.tests.get(id).map(|s| Duration::from_secs_f64(median(s)))
    }

    pub fn len(&self) -> usize {
        self.tests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tests.is_empty()
    }

    /// Every known test with its expected duration, in [`TestId`] order.
    pub fn iter(&self) -> impl Iterator<Item = (&TestId, Duration)> {
        self.tests.iter().map(|(id, s)| (id, Duration::from_secs_f64(median(s))))
    }

    /// Records every timed, non-skipped case of a JUnit report. Identity: group = the
    /// case's classname (nextest: binary id; Go: import path; Surefire: Java class),
    /// falling back to the suite name when a writer leaves classname empty.
    pub fn seed_from_report(&mut self, report: &junit::Report) -> usize {
        let mut n = 0;
        for suite in &report.suites {
            for case in &suite.cases {
                let Some(secs) = case.time else { continue };
                if case.status.is_skipped() {
                    continue;
                }
                let group = if case.classname.is_empty() { &suite.name } else { &case.classname };
                self.record(&TestId::new(group.clone(), case.name.clone()), Duration::from_secs_f64(secs));
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
                    Err(e) => summary.warnings.push(Warning(format!("{}: skipped: {}", e.path().display(), e.error()))),
                }
            }
            if files.is_empty() {
                summary.warnings.push(Warning(format!("--timings-from {pattern:?}: no files match")));
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

fn fresh(path: &Path, why: &str) -> Warning {
    Warning(format!("{}: {why}; starting with an empty history", path.display()))
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
