//! The queue: each host's slots take their planned shards first, then orphans (shards of
//! lost hosts, retries), then steal from the host with the most work left. Failed tests are
//! re-run at the end for `--retries`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::attempt::{QueuedShard, Shared};
use super::head_start::HeadStart;
use super::outcome::{Kept, Outcome, RunReport};
use super::phase::run_phase;
use super::{LiveHost, Observer, RunOptions};
use crate::discover::Suite;
use crate::engine::ShardObjects;
use crate::plan::Plan;
use crate::test_result::{TestId, TestResult, TestStatus};

/// Runs the plan on `hosts` and returns every test's outcome. `head` is the run's head start
/// if the pipeline began one (staging while the tests were listed); one that prepared
/// anything else than this suite's payload is abandoned and a fresh one begun.
///
/// Whatever happens inside — success, failures, cancellation, or a panic in our own code
/// (a worker, an observer) — everything labelled with the run id is removed from every host
/// before this returns or the panic goes on unwinding (unless `--keep-containers`).
pub async fn execute(
    plan: &Plan,
    suite: &Suite,
    hosts: Vec<LiveHost>,
    opts: &RunOptions,
    observer: Observer,
    cancel: CancellationToken,
    head: Option<HeadStart>,
) -> RunReport {
    use futures_util::FutureExt;
    let guard_hosts = hosts.clone();
    let run = std::panic::AssertUnwindSafe(execute_inner(
        plan,
        suite,
        hosts,
        opts,
        observer,
        cancel.clone(),
        head,
    ));
    match run.catch_unwind().await {
        Ok(report) => report,
        Err(panic) => {
            // In-flight shard futures were dropped mid-way: their containers are still there.
            if !opts.keep_containers {
                cleanup(&guard_hosts, &opts.run_id, |_| CLEANUP_ON_CANCEL).await;
            }
            std::panic::resume_unwind(panic)
        }
    }
}

/// How long the final cleanup may take per host; shorter after an interrupt, so that a
/// Ctrl-C is answered within seconds even when a host has stopped answering.
const CLEANUP_LIMIT: Duration = Duration::from_secs(15);
const CLEANUP_ON_CANCEL: Duration = Duration::from_secs(5);

async fn execute_inner(
    plan: &Plan,
    suite: &Suite,
    hosts: Vec<LiveHost>,
    opts: &RunOptions,
    observer: Observer,
    cancel: CancellationToken,
    head: Option<HeadStart>,
) -> RunReport {
    let t0 = Instant::now();
    let mut report = RunReport {
        run_id: opts.run_id.clone(),
        ..Default::default()
    };
    let payload = suite.payload();
    let mut head = match head {
        Some(h) if h.serves(&payload, &opts.run_id) => h,
        _ => HeadStart::begin(payload, &hosts, opts, false),
    };
    head.attach(observer.clone());
    head.stop_with(&cancel);
    // Each payload part staged once per host (tools for hosts whose image lacks them).
    let payloads = match head.payloads().await {
        Ok(p) => p,
        Err(reason) => {
            head.finish().await;
            report.outcomes = suite
                .tests
                .iter()
                .map(|t| error_outcome(t.id.clone(), &reason, None))
                .collect();
            report.wall = t0.elapsed();
            return report;
        }
    };
    let cut = super::slots::job_pools(opts) && !suite.recipe.writes_source();
    let jobs = super::batch::queue(plan, cut);
    let shared = Shared {
        suite,
        opts,
        payloads,
        observer,
        shard_count: jobs
            .iter()
            .map(|j| j.shard + 1)
            .max()
            .unwrap_or(0)
            .max(plan.shards.len()),
        // Cancelled by an interrupt (the caller's token) or when --max-fail is reached (only
        // this).
        cancel: cancel.child_token(),
        pre_opened: head.slot_pool(),
        pooled: jobs.iter().filter(|j| j.batched).cloned().collect(),
    };
    let mut dead = BTreeSet::new();
    let mut outcomes = first_phase(&shared, &hosts, jobs, &mut dead, &mut report, t0, head).await;
    rerun_failed(&shared, &hosts, &mut outcomes, &mut dead, &mut report, t0).await;
    report.interrupted = cancel.is_cancelled();
    account_for_the_rest(&shared, report.interrupted, &mut outcomes);
    keep_or_remove(&shared, &hosts, &dead, &mut report).await;
    report.outcomes = outcomes.into_values().collect();
    report.wall = t0.elapsed();
    report
}

/// The plan's shards (or their batches), each host starting as soon as its own staging (the
/// head start's) ends.
async fn first_phase(
    shared: &Shared<'_>,
    hosts: &[LiveHost],
    jobs: Vec<QueuedShard>,
    dead: &mut BTreeSet<String>,
    report: &mut RunReport,
    t0: Instant,
    head: HeadStart,
) -> BTreeMap<TestId, Outcome> {
    let phase = run_phase(shared, hosts, jobs, dead, t0, &head.gates()).await;
    // Once every slot is done (a host that hangs while staging is lost by its heartbeat and
    // its shards run elsewhere), its staging has no one left to serve: it is given up.
    let staging = head.finish().await;
    report.stage = staging.time;
    report.staged = staging.staged;
    let mut outcomes: BTreeMap<TestId, Outcome> = phase
        .results
        .into_iter()
        .map(|(id, r)| (id, r.into_outcome()))
        .collect();
    report.attempts.extend(phase.attempts);
    report.lost_hosts.extend(phase.lost);
    report.rejected = phase.rejected;
    for (job, reason) in phase.abandoned {
        for id in job.tests {
            outcomes
                .entry(id.clone())
                .or_insert_with(|| error_outcome(id, &reason, Some(job.shard)));
        }
    }
    outcomes
}

/// Re-runs failed tests for `--retries`; a pass on a later attempt makes the test flaky.
async fn rerun_failed(
    shared: &Shared<'_>,
    hosts: &[LiveHost],
    outcomes: &mut BTreeMap<TestId, Outcome>,
    dead: &mut BTreeSet<String>,
    report: &mut RunReport,
    t0: Instant,
) {
    let mut next_index = shared.shard_count;
    for round in 1..=shared.opts.retries {
        if shared.cancel.is_cancelled() || report.rejected.is_some() {
            break;
        }
        let failed: Vec<&Outcome> = outcomes
            .values()
            .filter(|o| o.result.status == TestStatus::Failed)
            .collect();
        let slots: usize = hosts
            .iter()
            .filter(|h| !dead.contains(&h.host.name))
            .map(|h| h.host.slots)
            .sum();
        if failed.is_empty() || slots == 0 {
            break;
        }
        let jobs = rerun_jobs(failed, slots, next_index, round + 1);
        next_index += jobs.len();
        let phase = run_phase(shared, hosts, jobs, dead, t0, &BTreeMap::new()).await;
        for (id, recorded) in phase.results {
            if let Some(o) = outcomes.get_mut(&id) {
                let previous = std::mem::replace(&mut o.result, recorded.result);
                o.earlier.push(previous);
                o.shard = Some(recorded.shard);
                o.host = recorded.host;
                o.container = recorded.container;
            }
        }
        report.attempts.extend(phase.attempts);
        report.lost_hosts.extend(phase.lost);
    }
}

/// The failed tests in at most `slots` bins of about equal time (longest first), numbered
/// from `first`, as attempt `attempt`.
fn rerun_jobs(mut failed: Vec<&Outcome>, slots: usize, first: usize, attempt: u32) -> Vec<QueuedShard> {
    let bins = failed.len().min(slots).max(1);
    let mut jobs: Vec<QueuedShard> = (0..bins)
        .map(|i| QueuedShard {
            shard: first + i,
            tests: Vec::new(),
            predicted: Duration::ZERO,
            attempt,
            planned: None,
            avoid: None,
            rerun: true,
            batched: false,
        })
        .collect();
    failed.sort_by(|a, b| b.result.duration.cmp(&a.result.duration).then(a.id().cmp(b.id())));
    for o in failed {
        let bin = jobs
            .iter_mut()
            .min_by_key(|j| (j.predicted, j.shard))
            .expect("bins > 0");
        bin.tests.push(o.id().clone());
        bin.predicted += o.result.duration;
    }
    jobs
}

/// Tests never shipped (ignored) and tests that nothing reported on.
fn account_for_the_rest(shared: &Shared<'_>, interrupted: bool, outcomes: &mut BTreeMap<TestId, Outcome>) {
    for case in &shared.suite.tests {
        if outcomes.contains_key(&case.id) {
            continue;
        }
        let (status, message) = if case.ignored {
            (TestStatus::Skipped, "ignored".to_string())
        } else if interrupted {
            (
                TestStatus::Skipped,
                "not run: the run was interrupted".to_string(),
            )
        } else if let Some(max) = shared.opts.max_fail.filter(|_| shared.cancel.is_cancelled()) {
            (
                TestStatus::Skipped,
                format!(
                    "not run: the run stopped after {max} failing test{} (--max-fail {max})",
                    plural(max)
                ),
            )
        } else {
            (
                TestStatus::Error,
                "no result: the test was planned but never reported".to_string(),
            )
        };
        outcomes.insert(
            case.id.clone(),
            plain_outcome(case.id.clone(), status, message, None),
        );
    }
}

/// `--keep-containers`: lists what was kept and how to reach it. Otherwise removes everything
/// the run created on every host, bounded (shorter after an interrupt or for a lost host).
async fn keep_or_remove(
    shared: &Shared<'_>,
    hosts: &[LiveHost],
    dead: &BTreeSet<String>,
    report: &mut RunReport,
) {
    let opts = shared.opts;
    if !opts.keep_containers {
        let interrupted = report.interrupted;
        // A lost host gets the short limit too: it may still not answer.
        let limit = |h: &LiveHost| {
            if interrupted || dead.contains(&h.host.name) {
                CLEANUP_ON_CANCEL
            } else {
                CLEANUP_LIMIT
            }
        };
        report.cleanup_failed = cleanup(hosts, &opts.run_id, limit).await;
        return;
    }
    let services: Vec<&str> = opts.job.config.service.iter().map(|s| s.name.as_str()).collect();
    report.kept = report
        .attempts
        .iter()
        .filter(|a| !a.container.is_empty() && !dead.contains(&a.host))
        .map(|a| {
            let live = hosts.iter().find(|h| h.host.name == a.host);
            let made = live.map_or_else(
                || ShardObjects::only(&a.container),
                |h| h.engine.shard_objects(&a.container, &services),
            );
            Kept {
                host: a.host.clone(),
                container: made.container,
                services: made.services,
                network: made.network,
                docker_host: live
                    .filter(|h| !h.engine.is_local())
                    .map(|h| h.host.endpoint.to_string()),
            }
        })
        .collect();
}

/// Removes everything labelled with the run id from every host we reached: the safety net
/// behind each shard's own removal. Bounded so a dead host cannot hold the exit; returns the
/// hosts where it failed, with the reason.
pub(crate) async fn cleanup(
    hosts: &[LiveHost],
    run_id: &str,
    limit: impl Fn(&LiveHost) -> Duration,
) -> Vec<(String, String)> {
    let tasks = hosts.iter().map(|h| {
        let limit = limit(h);
        async move {
            let reason = match tokio::time::timeout(limit, h.engine.remove_labelled(Some(run_id))).await {
                Ok(Ok(_)) => return None,
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {}s", limit.as_secs()),
            };
            Some((h.host.name.clone(), reason))
        }
    });
    futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

pub(super) fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

pub(super) fn error_result(id: TestId, message: &str) -> TestResult {
    TestResult {
        id,
        status: TestStatus::Error,
        duration: Duration::ZERO,
        message: Some(message.to_string()),
        detail: String::new(),
        stdout: String::new(),
        stderr: String::new(),
        subtests: Vec::new(),
    }
}

fn plain_outcome(id: TestId, status: TestStatus, message: String, shard: Option<usize>) -> Outcome {
    Outcome {
        result: TestResult {
            id,
            status,
            duration: Duration::ZERO,
            message: Some(message),
            detail: String::new(),
            stdout: String::new(),
            stderr: String::new(),
            subtests: Vec::new(),
        },
        earlier: Vec::new(),
        shard,
        host: String::new(),
        container: String::new(),
    }
}

fn error_outcome(id: TestId, reason: &str, shard: Option<usize>) -> Outcome {
    plain_outcome(id, TestStatus::Error, reason.to_string(), shard)
}
