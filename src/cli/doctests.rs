//! `--doctests local` in the run pipeline: the doctests run on this machine while the shards
//! run, and their results join the shards' before any report is written.

use std::path::Path;

use tokio_util::sync::CancellationToken;

use crate::discover::nextest::doctests::local::{DoctestError, HOST, LocalDoctests};
use crate::discover::nextest::{NextestOptions, doctests::DoctestMode};
use crate::run::{Outcome, RunReport};

/// Why `--doctests local` could not list the doctests before the run (exit 101, as a failed
/// build).
#[derive(Debug, thiserror::Error)]
pub enum DoctestsError {
    /// cargo metadata or `cargo test --doc -- --list` failed.
    #[error(transparent)]
    List(#[from] DoctestError),
    /// The listing thread panicked.
    #[error("--doctests local: listing panicked: {0}")]
    Panicked(#[source] tokio::task::JoinError),
}

/// The doctests to run, listed before the run when the options ask for them.
pub async fn list(opts: &NextestOptions, quiet: bool) -> Result<Option<LocalDoctests>, DoctestsError> {
    if opts.doctests != DoctestMode::Local {
        return Ok(None);
    }
    let opts = opts.clone();
    match tokio::task::spawn_blocking(move || LocalDoctests::list(&opts)).await {
        Ok(Ok(d)) if d.count() == 0 => Ok(None),
        Ok(Ok(d)) => {
            if !quiet {
                eprintln!(
                    "doctests: {} will run on this machine beside the shards (--doctests local)",
                    d.count()
                );
            }
            Ok(Some(d))
        }
        Ok(Err(e)) => Err(e.into()),
        Err(e) => Err(DoctestsError::Panicked(e)),
    }
}

/// A running doctest job, and when it started.
pub struct Running(
    tokio::task::JoinHandle<Vec<crate::test_result::TestResult>>,
    std::time::Instant,
);

/// What becomes of doctests when no test is left for the shards (the run then ends before
/// anything starts): said, never dropped silently.
pub fn not_run(doctests: &Option<LocalDoctests>) -> Option<String> {
    doctests.as_ref().map(|d| {
        format!(
            "{} doctests did not run: no test was left for the shards (run `cargo test --doc`)",
            d.count()
        )
    })
}

/// Starts the doctests beside the shards; `cancel` (the run's) stops them too.
pub fn start(doctests: Option<LocalDoctests>, out_dir: &Path, cancel: &CancellationToken) -> Option<Running> {
    let d = doctests?;
    let logs = out_dir.join("logs");
    let cancel = cancel.clone();
    let task = tokio::task::spawn_blocking(move || d.run(&logs, &cancel));
    Some(Running(task, std::time::Instant::now()))
}

/// Waits for the doctests and adds their results to the run's.
pub async fn merge(running: Option<Running>, report: &mut RunReport) {
    let Some(Running(task, started)) = running else {
        return;
    };
    // Never a silent pass: a doctest job that died is an error in the report.
    let results = task.await.unwrap_or_else(|e| {
        vec![crate::test_result::TestResult {
            id: crate::test_result::TestId::new("doctests", "cargo test --doc"),
            status: crate::test_result::TestStatus::Error,
            duration: std::time::Duration::ZERO,
            message: Some(format!("the doctest run panicked: {e}")),
            detail: String::new(),
            stdout: String::new(),
            stderr: String::new(),
            subtests: Vec::new(),
        }]
    });
    // The run lasted until its doctests were done too.
    report.wall = report.wall.max(started.elapsed());
    report.outcomes.extend(results.into_iter().map(|result| Outcome {
        result,
        earlier: Vec::new(),
        shard: None,
        host: HOST.to_string(),
        container: String::new(),
    }));
}
