//! `--partition K/N|auto` glue: settle `auto` from the CI's variables, plan for N jobs and
//! narrow the suite to this job's share, and record the job's manifest before and after it runs.

use std::path::{Path, PathBuf};

use super::planning::PlanError;
use super::{Backend, Cli, Command, HostsOpt, PlanOpts, RunOpts};
use crate::discover::Suite;
use crate::partition::{self, Manifest, Partition};
use crate::run::RunReport;

/// A partition that cannot be settled, planned or recorded.
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    /// `--partition` as given.
    #[error("{0}")]
    Arg(String),
    /// `--partition auto` without the CI's variables.
    #[error("{0}")]
    Auto(String),
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The job's manifest or history beside it.
    #[error("{}: cannot write: {source}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// As given on the command line; `auto` is settled before anything runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionArg {
    Job(Partition),
    Auto,
}

/// `--partition`'s value parser.
pub fn parse_arg(s: &str) -> Result<PartitionArg, PartitionError> {
    if s == "auto" {
        return Ok(PartitionArg::Auto);
    }
    Partition::parse(s)
        .map(PartitionArg::Job)
        .map_err(PartitionError::Arg)
}

/// Replaces `--partition auto` with the job the CI's variables name.
pub fn resolve_auto(cli: &mut Cli) -> Result<(), PartitionError> {
    let run = match &mut cli.command {
        None => &mut cli.run.run,
        Some(Command::Run(a)) => &mut a.run,
        Some(Command::Go(a)) => &mut a.run,
        Some(Command::Exec(a)) => &mut a.run,
        Some(_) => return Ok(()),
    };
    if run.partition == Some(PartitionArg::Auto) {
        let p = Partition::from_ci(|v| std::env::var(v).ok()).map_err(PartitionError::Auto)?;
        run.partition = Some(PartitionArg::Job(p));
    }
    Ok(())
}

/// This job's partition, if the run is one.
pub fn of(o: &RunOpts) -> Option<Partition> {
    match o.partition {
        Some(PartitionArg::Job(p)) => Some(p),
        _ => None,
    }
}

/// A partition job runs its share here, as local processes, unless `--hosts` (or
/// `--backend docker`) says where: a CI job has no Docker engine to find.
pub fn hosts(o: &RunOpts) -> HostsOpt {
    let mut h = o.hosts.clone();
    if of(o).is_some() && h.hosts.is_none() && h.backend == Backend::Auto {
        h.backend = Backend::Local;
    }
    h
}

/// Plans the whole suite for N jobs (the same in every job), keeps this job's share (and,
/// in job 1, the ignored tests, reported as skipped), prints the fingerprint and writes the
/// manifest without results, so a job that dies is seen by `merge`.
pub fn narrow(
    mut suite: Suite,
    plan_opts: &PlanOpts,
    p: Partition,
    history_path: &Path,
    out_dir: &Path,
    runner: &str,
) -> Result<(Suite, Manifest), PartitionError> {
    let caps = partition::job_capacities(p.total);
    let mut opts = plan_opts.clone();
    opts.shards = Some(p.total);
    // Every job must plan alike: a report nextest left in one job's target directory and
    // not in another's would split the suite two ways.
    let whole = Suite {
        earlier_report: None,
        ..suite.clone()
    };
    let planned = super::planning::plan(whole, &opts, &caps, history_path)?;
    let fingerprint = partition::fingerprint(&planned.suite.tests, &planned.history);
    let manifest = Manifest::planned(fingerprint, p, runner, &planned.plan, &planned.suite.tests);
    let mine: std::collections::BTreeSet<_> = manifest.mine().iter().cloned().collect();
    suite.tests = planned.suite.tests;
    suite
        .tests
        .retain(|t| mine.contains(&t.id) || (t.ignored && p.index == 1));
    eprintln!(
        "partition {p}: {} of {} tests, predicted {:.1}s; plan fingerprint {} (listing + history)",
        mine.len(),
        planned.plan.test_count(),
        manifest.predicted[p.index - 1],
        manifest.fingerprint
    );
    std::fs::create_dir_all(out_dir)
        .and_then(|()| manifest.write(out_dir))
        .map_err(|source| PartitionError::Write {
            path: out_dir.join(partition::MANIFEST),
            source,
        })?;
    Ok((suite, manifest))
}

/// Records what the job reported: every test's status, its JUnit (relative to `out_dir`) and
/// its history next to the manifest, where `merge` looks for them.
pub fn finish(
    mut manifest: Manifest,
    report: &RunReport,
    elapsed: std::time::Duration,
    junit: Option<&Path>,
    history_path: &Path,
    out_dir: &Path,
) -> Result<(), PartitionError> {
    manifest.results = report
        .outcomes
        .iter()
        .map(|o| partition::JobResult {
            id: o.id().clone(),
            status: o.result.status,
            seconds: o.result.duration.as_secs_f64(),
        })
        .collect();
    manifest.elapsed = elapsed.as_secs_f64();
    manifest.junit = junit.map(|j| {
        j.strip_prefix(out_dir)
            .map(|r| r.display().to_string())
            .unwrap_or_else(|_| j.display().to_string())
    });
    let here = out_dir.join("history.json");
    if history_path != here && history_path.exists() {
        std::fs::copy(history_path, &here).map_err(|source| PartitionError::Write { path: here, source })?;
    }
    manifest.write(out_dir).map_err(|source| PartitionError::Write {
        path: out_dir.join(partition::MANIFEST),
        source,
    })
}
