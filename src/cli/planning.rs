//! Glue from a discovered suite to a plan: filters file, history (and seeding), estimates,
//! host capacities; and back from a finished run to the history file.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::PlanOpts;
use crate::discover::{Suite, TestStatus};
use crate::exit;
use crate::history::{self, History};
use crate::plan::{self, Capacity, Filters, Plan, PlanOptions};
use crate::run::{AttemptEnd, RunReport};

pub struct Planned {
    pub plan: Plan,
    /// The suite, narrowed to what the filters file selected.
    pub suite: Suite,
    pub history: History,
    pub warnings: Vec<String>,
}

pub fn plan(
    mut suite: Suite,
    p: &PlanOpts,
    caps: &[Capacity],
    history_path: &Path,
) -> Result<Planned, (u8, String)> {
    check_shards(p.shards).map_err(|e| (exit::BAD_INPUT, e))?;
    if let Some(path) = &p.filters_file {
        let filters = Filters::read(path).map_err(|e| (exit::BAD_INPUT, e.to_string()))?;
        let ids: Vec<_> = suite.tests.iter().map(|t| t.id.clone()).collect();
        let selected = filters.select(&ids);
        selected
            .check(path)
            .map_err(|e| (exit::BAD_INPUT, e.to_string()))?;
        let keep: std::collections::BTreeSet<usize> = selected.indices.into_iter().collect();
        let mut i = 0;
        suite.tests.retain(|_| {
            i += 1;
            keep.contains(&(i - 1))
        });
        // Named explicitly: run it even if it is #[ignore]d, as nextest does for exact names.
        for t in &mut suite.tests {
            t.ignored = false;
        }
    }
    let (history, warnings) = History::prepare(Some(history_path), &p.timings_from)
        .map_err(|e| (exit::BAD_INPUT, e.to_string()))?;
    let warnings = warnings.into_iter().map(|w| w.0).collect();
    let runnable: Vec<_> = suite
        .tests
        .iter()
        .filter(|t| !t.ignored)
        .map(|t| t.id.clone())
        .collect();
    let weighted = history::estimate(&runnable, &history, p.default_duration);
    let mut opts = PlanOptions {
        shards: p.shards,
        shuffle: p.shuffle,
        seed: p.seed,
        ..PlanOptions::default()
    };
    // What a shard costs beyond its tests was measured by earlier runs: trust it over a guess.
    if let Some(overhead) = history.overhead() {
        opts.per_shard_overhead = overhead;
    }
    let plan = plan::plan(&weighted, caps, &opts);
    Ok(Planned {
        plan,
        suite,
        history,
        warnings,
    })
}

pub fn render(plan: &Plan) -> String {
    plan::render::human(plan)
}

/// Adds this run's measured durations, and its typical per-shard overhead, to the history
/// and saves it. `jobs` maps each host to the tests it runs at once in one container.
pub fn record(
    mut history: History,
    report: &RunReport,
    jobs: &BTreeMap<String, usize>,
    path: &Path,
) -> Result<(), history::HistoryError> {
    for o in &report.outcomes {
        // A test skipped at run time (Go's t.Skip) still costs its shard that much; errors
        // and tests that never ran measured nothing.
        let measured = o.result.status != TestStatus::Error && o.shard.is_some() && !o.host.is_empty();
        if measured {
            history.record(o.id(), o.result.duration);
        }
    }
    if let Some(overhead) = shard_overhead(report, jobs) {
        history.record_overhead(overhead);
    }
    history.save_atomic(path)
}

/// The median, over first attempts that ran to the end, of a shard's wall time minus the
/// time its tests account for.
fn shard_overhead(report: &RunReport, jobs: &BTreeMap<String, usize>) -> Option<Duration> {
    let mut per_shard: BTreeMap<usize, Vec<Duration>> = BTreeMap::new();
    for o in &report.outcomes {
        if let Some(s) = o.shard
            && o.earlier.is_empty()
        {
            per_shard.entry(s).or_default().push(o.result.duration);
        }
    }
    let mut samples: Vec<f64> = report
        .attempts
        .iter()
        .filter(|a| a.attempt == 1 && !a.rerun && matches!(a.end, AttemptEnd::Exited(_)))
        .filter_map(|a| {
            let tests = per_shard.get(&a.shard)?;
            let sum: Duration = tests.iter().sum();
            let longest = tests.iter().max().copied().unwrap_or_default();
            let j = jobs.get(&a.host).copied().unwrap_or(1).max(1) as u32;
            let busy = longest.max(sum / j);
            Some(
                a.finished
                    .saturating_sub(a.started)
                    .saturating_sub(busy)
                    .as_secs_f64(),
            )
        })
        .collect();
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(f64::total_cmp);
    Some(Duration::from_secs_f64(samples[samples.len() / 2]))
}

/// `--shards` within what the planner holds (one bin per shard).
fn check_shards(shards: Option<usize>) -> Result<(), String> {
    match shards {
        Some(n) if n == 0 || n > crate::limits::MAX_SHARDS => Err(format!(
            "--shards {n}: must be between 1 and {}",
            crate::limits::MAX_SHARDS
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn shard_counts_the_planner_cannot_hold_are_refused() {
        assert_eq!(
            super::check_shards(Some(99_999_999_999)).unwrap_err(),
            "--shards 99999999999: must be between 1 and 100000"
        );
        assert!(super::check_shards(Some(0)).is_err());
        assert!(super::check_shards(Some(3)).is_ok());
        assert!(super::check_shards(None).is_ok());
    }
}
