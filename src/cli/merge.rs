//! `cargo shard merge DIR|GLOB…`: join the outputs of `--partition` jobs into one JUnit, one
//! history and one HTML report, refusing jobs of different plans and naming every planned test
//! that is missing or was run twice.

use std::path::PathBuf;

use clap::Args;

use super::error::Error;
use crate::exit;
use crate::partition::merge::{self, Job, MergeError};
use crate::report::style::plural;
use crate::test_result::TestStatus;

#[derive(Debug, Args, Clone)]
pub struct MergeArgs {
    /// Job output directories (each holding partition.json), manifest files, or globs of them.
    #[arg(required = true, value_name = "DIR|GLOB")]
    pub inputs: Vec<String>,
    /// Where to write junit.xml, history.json and report.html.
    #[arg(long = "out-dir", value_name = "DIR", default_value = "target/shard")]
    pub out_dir: PathBuf,
    /// Where to write the merged JUnit report instead of <out-dir>/junit.xml.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Where to write the merged history instead of <out-dir>/history.json.
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,
}

/// Merges the jobs' outputs; exit 100 when a test failed, as a run would.
pub fn run(a: MergeArgs) -> Result<u8, Error> {
    let jobs = read_jobs(&a.inputs)?;
    merge::check(&jobs)?;
    let report = merge::junit(&jobs)?;
    let junit = a.junit.clone().unwrap_or_else(|| a.out_dir.join("junit.xml"));
    let history = a
        .history
        .clone()
        .unwrap_or_else(|| a.out_dir.join("history.json"));
    let html = a.out_dir.join("report.html");
    let written = crate::junit::write_atomic(&junit, &report)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            merge::history(&jobs)
                .save_atomic(&history)
                .map_err(|e| e.to_string())
        })
        .and_then(|()| {
            crate::atomic::write(&html, crate::report::jobs::render(&jobs).as_bytes())
                .map_err(|e| format!("{}: {e}", html.display()))
        });
    written.map_err(Error::MergeWrite)?;
    Ok(summarize(&jobs, &[&junit, &history, &html]))
}

/// Prints the counts and where the files are; exits 100 when a test failed, as a run would.
fn summarize(jobs: &[Job], files: &[&PathBuf]) -> u8 {
    let count = |s: TestStatus| -> usize {
        jobs.iter()
            .map(|j| j.manifest.counts().get(&s).copied().unwrap_or(0))
            .sum()
    };
    let counts = Merged {
        jobs: jobs.len(),
        passed: count(TestStatus::Passed),
        failed: count(TestStatus::Failed),
        skipped: count(TestStatus::Skipped),
        errors: count(TestStatus::Error),
    };
    eprintln!("{}", counts.line(&jobs[0].manifest.fingerprint));
    for f in files {
        eprintln!("  wrote {}", f.display());
    }
    if counts.failed + counts.errors > 0 {
        exit::TESTS_FAILED
    } else {
        exit::OK
    }
}

/// What a merge joined: its jobs and their tests by result.
struct Merged {
    jobs: usize,
    passed: usize,
    failed: usize,
    skipped: usize,
    errors: usize,
}

impl Merged {
    /// The one line `merge` ends with, counted words in the singular for one.
    fn line(&self, fingerprint: &str) -> String {
        let Merged {
            jobs,
            passed,
            failed,
            skipped,
            errors,
        } = *self;
        let tests = passed + failed + skipped + errors;
        format!(
            "merged {jobs} {} (plan fingerprint {fingerprint}): {tests} {}: {passed} passed, {failed} failed, {skipped} skipped, {errors} {}",
            plural(jobs, "job"),
            plural(tests, "test"),
            plural(errors, "error"),
        )
    }
}

/// Each input as a directory or manifest, or a glob of them; jobs in partition order.
fn read_jobs(inputs: &[String]) -> Result<Vec<Job>, MergeError> {
    let mut paths: Vec<PathBuf> = Vec::new();
    for input in inputs {
        let p = PathBuf::from(input);
        if p.exists() {
            paths.push(p);
            continue;
        }
        let matched: Vec<PathBuf> = glob::glob(input)
            .map_err(|e| MergeError::Input(format!("{input:?}: bad glob: {e}")))?
            .filter_map(Result::ok)
            .collect();
        if matched.is_empty() {
            return Err(MergeError::Input(format!(
                "{input}: no such directory or file, and no glob match"
            )));
        }
        paths.extend(matched);
    }
    let mut jobs = paths
        .iter()
        .map(|p| Job::read(p))
        .collect::<Result<Vec<_>, _>>()?;
    jobs.sort_by_key(|j| j.manifest.partition.index);
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged(jobs: usize, passed: usize, errors: usize) -> Merged {
        Merged {
            jobs,
            passed,
            failed: 0,
            skipped: 0,
            errors,
        }
    }

    #[test]
    fn the_merge_line_counts_one_in_the_singular() {
        insta::assert_snapshot!(
            merged(1, 0, 1).line("abc123"),
            @"merged 1 job (plan fingerprint abc123): 1 test: 0 passed, 0 failed, 0 skipped, 1 error"
        );
        insta::assert_snapshot!(
            merged(3, 4, 2).line("abc123"),
            @"merged 3 jobs (plan fingerprint abc123): 6 tests: 4 passed, 0 failed, 0 skipped, 2 errors"
        );
        insta::assert_snapshot!(
            merged(2, 0, 0).line("abc123"),
            @"merged 2 jobs (plan fingerprint abc123): 0 tests: 0 passed, 0 failed, 0 skipped, 0 errors"
        );
    }
}
