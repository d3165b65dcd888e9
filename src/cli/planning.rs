//! Glue from a discovered suite to a plan: filters file, history (and seeding), estimates,
//! host capacities; and back from a finished run to the history file.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::PlanOpts;
use crate::config::Host;
use crate::discover::Suite;
use crate::history::{self, History, HistoryError};
use crate::plan::{self, Capacity, FilterError, Filters, Plan, PlanOptions};
use crate::run::{AttemptEnd, RunReport};
use crate::test_result::TestStatus;

/// Why a suite cannot be planned: its inputs (shard count, filters file, history).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("--shards {0}: must be between 1 and {max}", max = crate::limits::MAX_SHARDS)]
    Shards(usize),
    #[error(transparent)]
    Filters(#[from] FilterError),
    #[error(transparent)]
    History(#[from] HistoryError),
}

/// A plan and what it was made from.
pub struct Planned {
    pub plan: Plan,
    /// The suite, narrowed to what the filters file selected.
    pub suite: Suite,
    pub history: History,
    pub warnings: Vec<String>,
    /// What each shard was planned to cost beyond its tests.
    pub overhead: Duration,
    /// The runner's own report of an earlier run that gave timings to a history that knew
    /// none of these tests, and how many it gave.
    pub seeded_from: Option<(std::path::PathBuf, usize)>,
}

pub fn plan(
    mut suite: Suite,
    p: &PlanOpts,
    caps: &[Capacity],
    history_path: &Path,
) -> Result<Planned, PlanError> {
    check_shards(p.shards)?;
    if let Some(path) = &p.filters_file {
        let filters = Filters::read(path)?;
        let ids: Vec<_> = suite.tests.iter().map(|t| t.id.clone()).collect();
        let selected = filters.select(&ids);
        selected.check(path)?;
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
    let (mut history, warnings) = History::prepare(Some(history_path), &p.timings_from)?;
    let mut warnings: Vec<String> = warnings.into_iter().map(|w| w.0).collect();
    let runnable: Vec<_> = suite
        .tests
        .iter()
        .filter(|t| !t.ignored)
        .map(|t| t.id.clone())
        .collect();
    // A first run in a workspace that already runs nextest: its own report's timings beat
    // estimates. Only when nothing else knows these tests; `--timings-from` says otherwise.
    let mut seeded_from = None;
    if let Some(report) = &suite.earlier_report
        && p.timings_from.is_empty()
        && !runnable.iter().any(|id| history.expected(id).is_some())
    {
        match crate::junit::read_file(report) {
            Ok(r) => {
                let mut seeded = history.clone();
                let n = seeded.seed_from_report(&r);
                let covered = runnable.iter().filter(|id| seeded.expected(id).is_some()).count();
                // A run that stopped early (nextest fails fast by default) reports the tests
                // that ended first, the quick ones: the rest would be estimated from them.
                if covered * 10 >= runnable.len() * 9 {
                    history = seeded;
                    seeded_from = Some((report.clone(), n));
                } else {
                    warnings.push(format!(
                        "{}: times only {covered} of the {} tests (a run that stopped early?); planning from estimates",
                        report.display(),
                        runnable.len()
                    ));
                }
            }
            Err(e) => warnings.push(format!("{e} (not used for timings)")),
        }
    }
    let weighted: Vec<plan::Weighted> = history::estimate(&runnable, &history, p.default_duration)
        .into_iter()
        .map(plan::Weighted::from)
        .collect();
    let mut opts = PlanOptions {
        shards: p.shards,
        shuffle: p.shuffle,
        seed: p.seed,
        serial_groups: suite.recipe.serial_groups(),
        ..PlanOptions::default()
    };
    // What a shard costs beyond its tests was measured by earlier runs: trust it over a guess.
    if let Some(overhead) = history.overhead() {
        opts.per_shard_overhead = overhead;
    }
    let plan = plan::plan(&weighted, caps, &opts);
    warnings.extend(queued_shards_warning(&plan, &weighted, caps, &opts));
    Ok(Planned {
        plan,
        suite,
        history,
        warnings,
        overhead: opts.per_shard_overhead,
        seeded_from,
    })
}

/// More shards than slots queue behind each other, each paying the per-shard overhead again:
/// say so when the plan with one shard per slot would finish sooner.
fn queued_shards_warning(
    plan: &Plan,
    weighted: &[plan::Weighted],
    caps: &[Capacity],
    opts: &PlanOptions,
) -> Option<String> {
    let slots: usize = caps.iter().map(|c| c.slots).sum();
    if slots == 0 || plan.shards.len() <= slots {
        return None;
    }
    let per_slot = PlanOptions {
        shards: None,
        ..opts.clone()
    };
    let fewer = plan::plan(weighted, caps, &per_slot);
    (fewer.makespan < plan.makespan).then(|| {
        format!(
            "{} shards on {slots} {} queue behind each other, each paying {:.1}s overhead: predicted makespan {:.1}s, against {:.1}s with --shards {}",
            plan.shards.len(),
            crate::report::style::plural(slots, "slot"),
            opts.per_shard_overhead.as_secs_f64(),
            plan.makespan.as_secs_f64(),
            fewer.makespan.as_secs_f64(),
            fewer.shards.len(),
        )
    })
}

/// The plan's table and summary, then the capacity it was planned for.
pub fn render<'a>(planned: &Planned, hosts: impl IntoIterator<Item = &'a Host>) -> String {
    let seeded = planned
        .seeded_from
        .as_ref()
        .map_or_else(String::new, |(report, n)| {
            format!(
                "timings: {n} {} from {} (nextest's report of an earlier run; no history yet)\n",
                crate::report::style::plural(*n, "test"),
                report.display()
            )
        });
    plan::render::human(&planned.plan, planned.overhead) + &seeded + &hosts_line(hosts)
}

/// `hosts: NAME N slots × M tests at once; …`
fn hosts_line<'a>(hosts: impl IntoIterator<Item = &'a Host>) -> String {
    let hosts: Vec<String> = hosts
        .into_iter()
        .map(|h| format!("{} {}", h.name, capacity(h)))
        .collect();
    format!("hosts: {}\n", hosts.join("; "))
}

/// A host's slots and tests at once per container, saying when the slots share one container
/// and when the tests at once came from its CPUs.
pub fn capacity(h: &Host) -> String {
    let plural = |n: usize, one: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {one}s")
        }
    };
    let slots = if h.slots_shared > 1 {
        format!("{} in 1 container", plural(h.slots_shared, "slot"))
    } else {
        plural(h.slots, "slot")
    };
    format!(
        "{slots} × {} at once{}",
        plural(h.test_threads, "test"),
        if h.test_threads_auto { " (from CPUs)" } else { "" }
    )
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
fn check_shards(shards: Option<usize>) -> Result<(), PlanError> {
    match shards {
        Some(n) if n == 0 || n > crate::limits::MAX_SHARDS => Err(PlanError::Shards(n)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_result::TestId;

    fn setup() -> (Vec<plan::Weighted>, Vec<Capacity>, PlanOptions) {
        let tests = (0..4)
            .map(|i| plan::Weighted {
                id: TestId::new("g", format!("t{i}")),
                expected: Duration::from_secs(1),
                estimated: false,
            })
            .collect();
        let caps = vec![Capacity {
            host: "e1".into(),
            slots: 2,
            test_threads: 1,
            weight: 1.0,
        }];
        let opts = PlanOptions {
            per_shard_overhead: Duration::from_secs(1),
            ..PlanOptions::default()
        };
        (tests, caps, opts)
    }

    #[test]
    fn more_shards_than_slots_warn_with_the_makespan_they_cost() {
        let (tests, caps, mut opts) = setup();
        opts.shards = Some(4);
        let p = plan::plan(&tests, &caps, &opts);
        let w = queued_shards_warning(&p, &tests, &caps, &opts).expect("a warning");
        assert_eq!(
            w,
            "4 shards on 2 slots queue behind each other, each paying 1.0s overhead: \
             predicted makespan 4.0s, against 3.0s with --shards 2"
        );
        opts.shards = Some(2);
        let p = plan::plan(&tests, &caps, &opts);
        assert_eq!(queued_shards_warning(&p, &tests, &caps, &opts), None);
    }

    #[test]
    fn the_table_shows_each_shards_overhead_apart_from_its_work() {
        let (tests, caps, opts) = setup();
        let p = plan::plan(&tests, &caps, &opts);
        let text = plan::render::human(&p, opts.per_shard_overhead);
        assert!(
            text.contains("    0  e1         2      2.0s      1.0s       3.0s"),
            "{text}"
        );
        assert!(
            text.contains("2 shards, 4.0s of work, 1.0s overhead per shard"),
            "{text}"
        );
    }

    #[test]
    fn capacity_line_says_where_jobs_came_from() {
        let text = "[[host]]\nname = \"e1\"\ndocker_host = \"unix:///s\"\nslots = 2\n\
            [[host]]\nname = \"big\"\ndocker_host = \"unix:///t\"\nslots = 1\njobs = 4\n";
        let mut c = crate::config::HostsConfig::parse(text, "hosts.toml", Path::new("/")).unwrap();
        c.hosts[0].derive_test_threads(8);
        let plan = plan::plan(&[], &plan::capacities(&c.hosts), &PlanOptions::default());
        insta::assert_snapshot!(plan::render::human(&plan, Duration::ZERO) + &hosts_line(&c.hosts));
    }

    #[test]
    fn capacity_line_says_when_slots_share_a_container() {
        let text = "[[host]]\nname = \"e1\"\ndocker_host = \"unix:///s\"\nslots = 2\njobs = 3\n";
        let mut c = crate::config::HostsConfig::parse(text, "hosts.toml", Path::new("/")).unwrap();
        c.hosts[0].share_one_container();
        assert_eq!(
            hosts_line(&c.hosts),
            "hosts: e1 2 slots in 1 container × 6 tests at once\n"
        );
    }

    #[test]
    fn shard_counts_the_planner_cannot_hold_are_refused() {
        assert_eq!(
            super::check_shards(Some(99_999_999_999)).unwrap_err().to_string(),
            "--shards 99999999999: must be between 1 and 100000"
        );
        assert!(super::check_shards(Some(0)).is_err());
        assert!(super::check_shards(Some(3)).is_ok());
        assert!(super::check_shards(None).is_ok());
    }
}
