//! The queue: each host's slots take their planned shards first, then orphans (shards of
//! lost hosts, retries), then steal from the host with the most work left. Failed tests are
//! re-run at the end for `--retries`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::attempt::{self, AttemptRun, Ended, QueuedShard, Shared};
use super::outcome::{AttemptEnd, Event, Kept, Outcome, RunReport, ShardAttempt};
use super::{LiveHost, Observer, RunOptions};
use crate::discover::Suite;
use crate::engine::ShardObjects;
use crate::plan::Plan;
use crate::test_result::{TestId, TestResult, TestStatus};

#[derive(Default)]
struct Queue {
    planned: BTreeMap<String, VecDeque<QueuedShard>>,
    orphans: VecDeque<QueuedShard>,
    dead: BTreeSet<String>,
    running: usize,
    /// Results of this phase, by test.
    results: BTreeMap<TestId, (TestResult, usize, String, String)>,
    attempts: Vec<ShardAttempt>,
    lost: Vec<(String, String)>,
    /// Jobs that can no longer run (no host left, out of retries): tests become errors.
    abandoned: Vec<(QueuedShard, String)>,
    /// The first refusal of a container's configuration: nothing more is started.
    rejected: Option<String>,
    /// Shards running per host.
    busy: BTreeMap<String, usize>,
}

impl Queue {
    /// Whether a live host other than `host` has a slot free right now.
    fn other_host_free(&self, host: &str, slots: &BTreeMap<String, usize>) -> bool {
        slots.iter().any(|(name, &n)| {
            name != host && !self.dead.contains(name) && self.busy.get(name).copied().unwrap_or(0) < n
        })
    }

    /// The next job for a free slot of `host` (`slots`: every host's slot count). A retry
    /// prefers a host other than the one that failed it, but only one idle now: it never waits
    /// for another host while this one has a free slot.
    fn pick(&mut self, host: &str, slots: &BTreeMap<String, usize>) -> Option<QueuedShard> {
        if let Some(job) = self.planned.get_mut(host).and_then(|q| q.pop_front()) {
            return Some(job);
        }
        let others_free = self.other_host_free(host, slots);
        if let Some(pos) = self
            .orphans
            .iter()
            .position(|j| !others_free || j.avoid.as_deref() != Some(host))
        {
            return self.orphans.remove(pos);
        }
        // Steal the smallest shard of the host with the most predicted work still queued.
        let victim = self
            .planned
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .max_by_key(|(name, q)| {
                (
                    q.iter().map(|j| j.predicted).sum::<Duration>(),
                    std::cmp::Reverse(*name),
                )
            })
            .map(|(name, _)| name.clone())?;
        self.planned.get_mut(&victim).and_then(|q| q.pop_back())
    }

    fn idle(&self) -> bool {
        self.running == 0 && self.orphans.is_empty() && self.planned.values().all(|q| q.is_empty())
    }

    /// Marks `host` lost and hands its queued shards to the others; true the first time.
    fn kill_host(&mut self, host: &str, reason: &str) -> bool {
        if !self.dead.insert(host.to_string()) {
            return false;
        }
        self.lost.push((host.to_string(), reason.to_string()));
        if let Some(q) = self.planned.remove(host) {
            self.orphans.extend(q);
        }
        true
    }
}

/// Runs the plan on `hosts` and returns every test's outcome.
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
) -> RunReport {
    use futures_util::FutureExt;
    let guard_hosts = hosts.clone();
    let run = std::panic::AssertUnwindSafe(execute_inner(plan, suite, hosts, opts, observer, cancel.clone()));
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
) -> RunReport {
    let t0 = Instant::now();
    let mut report = RunReport {
        run_id: opts.run_id.clone(),
        ..Default::default()
    };
    // Each payload part staged once per host (tools for hosts whose image lacks them).
    let staged = Instant::now();
    let payloads = match super::tools::prepare(suite, &hosts, opts, &observer).await {
        Ok(p) => p,
        Err(e) => {
            let reason = e.to_string();
            report.outcomes = suite
                .tests
                .iter()
                .map(|t| error_outcome(t.id.clone(), &reason, None))
                .collect();
            report.wall = t0.elapsed();
            return report;
        }
    };
    let mut dead = BTreeSet::new();
    // Cancelled by an interrupt (the caller's token) or when --max-fail is reached (only this).
    let stop = cancel.child_token();
    // Batches share their slot's container only where nothing else lives in a container's
    // life: services, artifacts and kept containers belong to one shard each.
    let job = &opts.job;
    let pooling = !opts.keep_containers
        && job.config.service.is_empty()
        && job.artifacts.is_empty()
        && !job.has_step_artifacts
        && !suite.recipe.writes_source();
    let jobs = super::batch::queue(plan, pooling && opts.steal);
    let shard_count = jobs
        .iter()
        .map(|j| j.shard + 1)
        .max()
        .unwrap_or(0)
        .max(plan.shards.len());
    let shared = Shared {
        suite,
        opts,
        payloads,
        observer: observer.clone(),
        shard_count,
        cancel: stop.clone(),
        pooling,
    };
    let mut outcomes: BTreeMap<TestId, Outcome> = BTreeMap::new();
    // Each host's shards start as soon as that host is staged, not when all hosts are.
    let (gates, opened) = gates(&shared, &hosts);
    // Once every slot is done (a host that hangs while staging is lost by its heartbeat and
    // its shards run elsewhere), its staging has no one left to serve: it is given up.
    let phase_done = CancellationToken::new();
    let staging = stage_hosts(&shared, &hosts, opened, staged, &phase_done);
    let phase = async {
        let r = run_phase(&shared, &hosts, jobs, &mut dead, &observer, t0, &gates).await;
        phase_done.cancel();
        r
    };
    let (phase, (staged, stage_time)) = tokio::join!(phase, staging);
    report.stage = stage_time;
    report.staged = staged;
    merge_phase(&mut outcomes, phase.results);
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

    // Re-run failed tests; a pass on a later attempt makes the test flaky.
    let mut next_index = shard_count;
    for round in 1..=opts.retries {
        if stop.is_cancelled() || report.rejected.is_some() {
            break;
        }
        let failed: Vec<&Outcome> = outcomes
            .values()
            .filter(|o| o.result.status == TestStatus::Failed)
            .collect();
        let live: Vec<&LiveHost> = hosts.iter().filter(|h| !dead.contains(&h.host.name)).collect();
        if failed.is_empty() || live.is_empty() {
            break;
        }
        let slots: usize = live.iter().map(|h| h.host.slots).sum();
        let bins = failed.len().min(slots).max(1);
        let mut rerun_jobs: Vec<QueuedShard> = (0..bins)
            .map(|i| QueuedShard {
                shard: next_index + i,
                tests: Vec::new(),
                predicted: Duration::ZERO,
                attempt: round + 1,
                planned: None,
                avoid: None,
                rerun: true,
                batched: false,
            })
            .collect();
        let mut sorted = failed;
        sorted.sort_by(|a, b| b.result.duration.cmp(&a.result.duration).then(a.id().cmp(b.id())));
        for o in sorted {
            let bin = rerun_jobs
                .iter_mut()
                .min_by_key(|j| (j.predicted, j.shard))
                .expect("bins > 0");
            bin.tests.push(o.id().clone());
            bin.predicted += o.result.duration;
        }
        next_index += bins;
        let phase = run_phase(
            &shared,
            &hosts,
            rerun_jobs,
            &mut dead,
            &observer,
            t0,
            &BTreeMap::new(),
        )
        .await;
        for (id, (result, shard, host, container)) in phase.results {
            if let Some(o) = outcomes.get_mut(&id) {
                let previous = std::mem::replace(&mut o.result, result);
                o.earlier.push(previous);
                o.shard = Some(shard);
                o.host = host;
                o.container = container;
            }
        }
        report.attempts.extend(phase.attempts);
        report.lost_hosts.extend(phase.lost);
    }

    // Tests never shipped (ignored) and tests that nothing reported on.
    let interrupted = cancel.is_cancelled();
    for case in &suite.tests {
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
        } else if let Some(max) = opts.max_fail.filter(|_| stop.is_cancelled()) {
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
    report.interrupted = interrupted;
    if opts.keep_containers {
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
    } else {
        // A lost host gets the short limit too: it may still not answer.
        let limit = |h: &LiveHost| {
            if interrupted || dead.contains(&h.host.name) {
                CLEANUP_ON_CANCEL
            } else {
                CLEANUP_LIMIT
            }
        };
        report.cleanup_failed = cleanup(&hosts, &opts.run_id, limit).await;
    }
    report.outcomes = outcomes.into_values().collect();
    report.wall = t0.elapsed();
    report
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

struct PhaseResult {
    results: BTreeMap<TestId, (TestResult, usize, String, String)>,
    attempts: Vec<ShardAttempt>,
    lost: Vec<(String, String)>,
    abandoned: Vec<(QueuedShard, String)>,
    rejected: Option<String>,
}

fn merge_phase(
    outcomes: &mut BTreeMap<TestId, Outcome>,
    results: BTreeMap<TestId, (TestResult, usize, String, String)>,
) {
    for (id, (result, shard, host, container)) in results {
        outcomes.insert(
            id,
            Outcome {
                result,
                earlier: Vec::new(),
                shard: Some(shard),
                host,
                container,
            },
        );
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_phase(
    shared: &Shared<'_>,
    hosts: &[LiveHost],
    jobs: Vec<QueuedShard>,
    dead: &mut BTreeSet<String>,
    observer: &Observer,
    t0: Instant,
    gates: &Gates,
) -> PhaseResult {
    let mut queue = Queue {
        dead: dead.clone(),
        ..Default::default()
    };
    for job in jobs {
        let live = |h: &String| !queue.dead.contains(h) && hosts.iter().any(|l| &l.host.name == h);
        match job.planned.clone().filter(live) {
            Some(h) => queue.planned.entry(h).or_default().push_back(job),
            None => queue.orphans.push_back(job),
        }
    }
    let queue = Mutex::new(queue);
    let wake = tokio::sync::Notify::new();
    let live: Vec<&LiveHost> = hosts.iter().filter(|h| !dead.contains(&h.host.name)).collect();
    // Cancelled with the run, or by the host's heartbeat when it stops answering.
    let gone: Vec<CancellationToken> = live.iter().map(|_| shared.cancel.child_token()).collect();
    let mut workers = Vec::new();
    for (host, gone) in live.iter().zip(&gone) {
        let gate = gates.get(&host.host.name);
        for slot in 0..host.host.slots {
            let queue = &queue;
            let wake = &wake;
            workers.push(async move {
                if let Some(gate) = gate
                    && !passed(gate.clone(), &host.host.name, gone, queue, wake, observer).await
                {
                    return;
                }
                worker(shared, hosts, host, slot, gone, queue, wake, observer, t0).await
            });
        }
    }
    let finished = CancellationToken::new();
    let work = async {
        futures_util::future::join_all(workers).await;
        finished.cancel();
    };
    let beats = live
        .iter()
        .zip(&gone)
        .map(|(host, gone)| heartbeat(host, gone, &finished, &queue, &wake, observer));
    tokio::join!(work, futures_util::future::join_all(beats));
    let mut q = queue.into_inner().unwrap_or_else(|p| p.into_inner());
    // Whatever is still queued has no host left to run on.
    let reason = if shared.cancel.is_cancelled() {
        None
    } else {
        let lost: Vec<String> = q.lost.iter().map(|(h, r)| format!("{h}: {r}")).collect();
        Some(format!("no host left to run this shard ({})", lost.join("; ")))
    };
    let leftovers: Vec<QueuedShard> = q
        .orphans
        .drain(..)
        .chain(q.planned.values_mut().flat_map(|v| v.drain(..)))
        .collect();
    if let Some(reason) = reason {
        q.abandoned
            .extend(leftovers.into_iter().map(|j| (j, reason.clone())));
    }
    dead.extend(q.dead.iter().cloned());
    PhaseResult {
        results: q.results,
        attempts: q.attempts,
        lost: q.lost,
        abandoned: q.abandoned,
        rejected: q.rejected,
    }
}

/// Per host that stages: `None` while staging, then `Ok` or why it failed.
type Gates = BTreeMap<String, tokio::sync::watch::Receiver<Option<Result<(), String>>>>;
type Opened = BTreeMap<String, tokio::sync::watch::Sender<Option<Result<(), String>>>>;

/// A closed gate for every host whose parts are staged before its shards run.
fn gates(shared: &Shared<'_>, hosts: &[LiveHost]) -> (Gates, Opened) {
    let mut gates = BTreeMap::new();
    let mut opened = BTreeMap::new();
    for h in hosts {
        if shared.payloads.hosts.get(&h.host.name).is_some_and(|s| s.staged) {
            let (tx, rx) = tokio::sync::watch::channel(None);
            gates.insert(h.host.name.clone(), rx);
            opened.insert(h.host.name.clone(), tx);
        }
    }
    (gates, opened)
}

/// Stages every host at once, opening each host's gate as soon as its own staging ends.
/// Returns what each staged host received and how long staging took from `since` until the
/// last host was done. Cancelling the run, or the phase ending first, abandons staging (the
/// helper containers carry the run label: the final cleanup removes them).
async fn stage_hosts(
    shared: &Shared<'_>,
    hosts: &[LiveHost],
    opened: Opened,
    since: Instant,
    phase_done: &CancellationToken,
) -> (Vec<(String, crate::engine::docker::StageStats)>, Duration) {
    let tasks = hosts.iter().filter_map(|h| {
        let tx = opened.get(&h.host.name)?;
        Some(async move {
            let r = tokio::select! {
                r = super::tools::stage_host(&shared.payloads, h, shared.opts) => r,
                _ = shared.cancel.cancelled() => None,
                _ = phase_done.cancelled() => None,
            };
            let stats = match r {
                Some(Ok(stats)) => {
                    (shared.observer)(&Event::Staged {
                        host: h.host.name.clone(),
                        stats: stats.clone(),
                    });
                    let _ = tx.send(Some(Ok(())));
                    Some((h.host.name.clone(), stats))
                }
                Some(Err(e)) => {
                    let _ = tx.send(Some(Err(format!("staging failed: {e}"))));
                    None
                }
                // Interrupted: the gate closes unopened and the slots stop, no host lost.
                None => None,
            };
            (stats, since.elapsed())
        })
    });
    let done = futures_util::future::join_all(tasks).await;
    let time = done
        .iter()
        .map(|(_, t)| *t)
        .max()
        .unwrap_or_else(|| since.elapsed());
    (done.into_iter().filter_map(|(s, _)| s).collect(), time)
}

/// Waits for `host`'s staging; a failure marks the host lost (its queued shards go to the
/// others). False when the slot has nothing more to do.
async fn passed(
    mut gate: tokio::sync::watch::Receiver<Option<Result<(), String>>>,
    host: &str,
    gone: &CancellationToken,
    queue: &Mutex<Queue>,
    wake: &tokio::sync::Notify,
    observer: &Observer,
) -> bool {
    let result = tokio::select! {
        r = gate.wait_for(Option::is_some) => r.ok().and_then(|v| v.clone()),
        _ = gone.cancelled() => return false,
    };
    let Some(Err(reason)) = result else {
        return result.is_some();
    };
    let newly = queue
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .kill_host(host, &reason);
    if newly {
        observer(&Event::HostLost {
            host: host.to_string(),
            reason,
        });
    }
    wake.notify_waiters();
    false
}

/// Pings `host` while the phase runs; when it stops answering, marks it lost (its queued
/// shards go to the others) and cancels `gone` so its running shards are given up and re-queued.
async fn heartbeat(
    host: &LiveHost,
    gone: &CancellationToken,
    finished: &CancellationToken,
    queue: &Mutex<Queue>,
    wake: &tokio::sync::Notify,
    observer: &Observer,
) {
    if host.engine.is_local() {
        return;
    }
    let mut misses = 0;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(super::PING_EVERY) => {}
            _ = finished.cancelled() => return,
            _ = gone.cancelled() => return,
        }
        let answered = tokio::select! {
            r = tokio::time::timeout(super::PING_LIMIT, host.engine.ping()) => matches!(r, Ok(Ok(()))),
            _ = finished.cancelled() => return,
            _ = gone.cancelled() => return,
        };
        misses = if answered { 0 } else { misses + 1 };
        if misses < super::PING_MISSES {
            continue;
        }
        let name = host.host.name.as_str();
        let newly = queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .kill_host(name, super::UNRESPONSIVE);
        if newly {
            observer(&Event::HostLost {
                host: name.to_string(),
                reason: super::UNRESPONSIVE.to_string(),
            });
        }
        gone.cancel();
        wake.notify_waiters();
        return;
    }
}

#[allow(clippy::too_many_arguments)]
async fn worker(
    shared: &Shared<'_>,
    hosts: &[LiveHost],
    host: &LiveHost,
    slot: usize,
    gone: &CancellationToken,
    queue: &Mutex<Queue>,
    wake: &tokio::sync::Notify,
    observer: &Observer,
    t0: Instant,
) {
    let mut holder = attempt::SlotHolder::new(slot);
    let slot_ctx = SlotCtx {
        slot,
        gone,
        queue,
        wake,
    };
    work(shared, hosts, host, &slot_ctx, &mut holder, observer, t0).await;
    // A lost host's engine may not answer: its containers are for the run's final cleanup.
    if !gone.is_cancelled() {
        holder.close(host).await;
    }
}

/// What one slot's loop shares with the rest of the phase.
struct SlotCtx<'a> {
    slot: usize,
    gone: &'a CancellationToken,
    queue: &'a Mutex<Queue>,
    wake: &'a tokio::sync::Notify,
}

/// Takes work for one slot until the phase has none left for it.
async fn work(
    shared: &Shared<'_>,
    hosts: &[LiveHost],
    host: &LiveHost,
    ctx: &SlotCtx<'_>,
    holder: &mut attempt::SlotHolder,
    observer: &Observer,
    t0: Instant,
) {
    let SlotCtx {
        slot,
        gone,
        queue,
        wake,
    } = *ctx;
    let name = host.host.name.as_str();
    let slots: BTreeMap<String, usize> = hosts
        .iter()
        .map(|h| (h.host.name.clone(), h.host.slots))
        .collect();
    loop {
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let job = {
            let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
            if q.dead.contains(name) || gone.is_cancelled() {
                drop(q);
                wake.notify_waiters();
                return;
            }
            match q.pick(name, &slots) {
                Some(job) => {
                    q.running += 1;
                    *q.busy.entry(name.to_string()).or_default() += 1;
                    Some(job)
                }
                None if q.idle() => {
                    drop(q);
                    wake.notify_waiters();
                    return;
                }
                None => None,
            }
        };
        let Some(job) = job else {
            tokio::select! {
                _ = &mut notified => {}
                _ = gone.cancelled() => {}
            }
            continue;
        };
        observer(&Event::ShardStarted {
            shard: job.shard,
            attempt: job.attempt,
            host: name.to_string(),
            tests: job.tests.len(),
        });
        let run = attempt::scrubbed(
            attempt::run(shared, host, &job, gone, holder).await,
            &shared.opts.job.secrets,
        );
        let record = settle(shared, hosts, name, slot, job, run, queue, observer, t0);
        queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .attempts
            .push(record.clone());
        observer(&Event::ShardFinished(record));
        wake.notify_waiters();
    }
}

/// Records an attempt's results, or re-queues / abandons its job.
#[allow(clippy::too_many_arguments)]
fn settle(
    shared: &Shared<'_>,
    hosts: &[LiveHost],
    host: &str,
    slot: usize,
    job: QueuedShard,
    run: AttemptRun,
    queue: &Mutex<Queue>,
    observer: &Observer,
    t0: Instant,
) -> ShardAttempt {
    let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
    q.running -= 1;
    if let Some(n) = q.busy.get_mut(host) {
        *n = n.saturating_sub(1);
    }
    let max_attempts = 1 + shared.opts.shard_retries;
    let log = attempt::log_path(shared.opts, &job);
    let mut announced = run.announced;
    announced.retain(|id, _| job.tests.contains(id));
    // A result the runner gave (in its report or its live output): into the JSON stream as it
    // is recorded, so the stream and the report hold the same tests.
    let record = |q: &mut Queue, r: TestResult| {
        observer(&Event::TestFinished {
            result: r.clone(),
            shard: job.shard,
            host: host.to_string(),
            attempt: job.attempt,
        });
        q.results.insert(
            r.id.clone(),
            (r, job.shard, host.to_string(), run.container.clone()),
        );
    };
    // Ended without a report: what the runner announced stands; only the rest goes on.
    let mut keep_announced = |q: &mut Queue, why: &str| -> QueuedShard {
        for (_, mut r) in std::mem::take(&mut announced) {
            if r.status == TestStatus::Failed {
                r.message = Some(format!(
                    "failed (as announced in the shard's output; {why} before its report was read: see {})",
                    log.display()
                ));
            }
            record(q, r);
        }
        let rest: Vec<TestId> = job
            .tests
            .iter()
            .filter(|id| !q.results.contains_key(*id))
            .cloned()
            .collect();
        let share = rest.len() as u32;
        QueuedShard {
            predicted: job.predicted * share / (job.tests.len().max(1) as u32),
            tests: rest,
            ..job.clone()
        }
    };
    let end = match run.ended {
        Ended::Results { results, exit_code } => {
            let mut seen = BTreeSet::new();
            for r in results {
                if !job.tests.contains(&r.id) || !seen.insert(r.id.clone()) {
                    continue;
                }
                record(&mut q, r);
            }
            stop_at_max_fail(shared, &q);
            let code = exit_code.map(|c| c.to_string()).unwrap_or_else(|| "?".into());
            for id in job.tests.iter().filter(|id| !seen.contains(*id)) {
                // A shard stopped with the run (its nextest's own --max-fail): what it did not
                // reach is reported as not run, at the end.
                if shared.cancel.is_cancelled() && !announced.contains_key(id) {
                    continue;
                }
                match announced.remove(id) {
                    // Announced live but missing from the report (it was cut short).
                    Some(mut r) => {
                        r.message = Some(format!(
                            "{} (as announced in the shard's output; its report lacks it)",
                            r.message.as_deref().unwrap_or("finished")
                        ));
                        record(&mut q, r);
                    }
                    None => {
                        let r = error_result(
                            id.clone(),
                            &format!("no result reported: shard exited with code {code}"),
                        );
                        q.results.insert(
                            id.clone(),
                            (r, job.shard, host.to_string(), run.container.clone()),
                        );
                    }
                }
            }
            AttemptEnd::Exited(exit_code)
        }
        Ended::NoResults(reason) => {
            let rest = keep_announced(&mut q, "the shard failed");
            if rest.tests.is_empty() {
                // Every test was announced before the shard broke: nothing to run again.
            } else if job.attempt < max_attempts {
                q.orphans.push_back(QueuedShard {
                    attempt: job.attempt + 1,
                    avoid: Some(host.to_string()),
                    ..rest
                });
            } else {
                q.abandoned
                    .push((rest, format!("{reason} (after {} attempts)", job.attempt)));
            }
            AttemptEnd::Failed(reason)
        }
        Ended::HostLost(reason) => {
            if q.kill_host(host, &reason) {
                observer(&Event::HostLost {
                    host: host.to_string(),
                    reason: reason.clone(),
                });
            }
            let rest = keep_announced(&mut q, "its host was lost");
            // A lost host is not the shard's fault: re-queue without spending a retry, but
            // never more often than there are hosts to try.
            if rest.tests.is_empty() {
                // Every test was announced before the host went: nothing to run again.
            } else if (job.attempt as usize) < max_attempts as usize + hosts.len() {
                q.orphans.push_back(QueuedShard {
                    attempt: job.attempt + 1,
                    avoid: Some(host.to_string()),
                    ..rest
                });
            } else {
                q.abandoned.push((rest, reason.clone()));
            }
            AttemptEnd::Failed(reason)
        }
        Ended::TimedOut(limit) => {
            let reason = format!(
                "shard timed out after {} (--shard-timeout)",
                humantime::format_duration(limit)
            );
            let rest = keep_announced(&mut q, "the shard timed out");
            if !rest.tests.is_empty() {
                q.abandoned.push((rest, reason));
            }
            AttemptEnd::TimedOut
        }
        Ended::Cancelled => {
            keep_announced(&mut q, "the run was stopped");
            AttemptEnd::Cancelled
        }
        Ended::Rejected(reason) => {
            let rest = keep_announced(&mut q, "the engine refused the container");
            q.abandoned.push((rest, reason.clone()));
            // The same configuration goes to every shard: start nothing more.
            let not_run = format!("not run: {reason}");
            let queue: &mut Queue = &mut q;
            let leftovers: Vec<QueuedShard> = queue
                .orphans
                .drain(..)
                .chain(queue.planned.values_mut().flat_map(|v| v.drain(..)))
                .collect();
            q.abandoned
                .extend(leftovers.into_iter().map(|j| (j, not_run.clone())));
            q.rejected.get_or_insert(reason.clone());
            AttemptEnd::Failed(reason)
        }
    };
    ShardAttempt {
        shard: job.shard,
        attempt: job.attempt,
        host: host.to_string(),
        slot,
        container: run.container,
        tests: job.tests.len(),
        predicted: job.predicted,
        started: run.started.saturating_duration_since(t0),
        finished: run.finished.saturating_duration_since(t0),
        phases: run.phases,
        end,
        log,
        rerun: job.rerun,
    }
}

/// Stops the run once as many tests failed as `--max-fail` allows: running shards are
/// cancelled, queued ones never start.
fn stop_at_max_fail(shared: &Shared<'_>, q: &Queue) {
    let Some(max) = shared.opts.max_fail else { return };
    let failed = q
        .results
        .values()
        .filter(|(r, ..)| r.status == TestStatus::Failed)
        .count();
    if failed >= max {
        shared.cancel.cancel();
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn error_result(id: TestId, message: &str) -> TestResult {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn job(shard: usize, avoid: &str) -> QueuedShard {
        QueuedShard {
            shard,
            tests: Vec::new(),
            predicted: Duration::ZERO,
            attempt: 2,
            planned: None,
            avoid: Some(avoid.to_string()),
            rerun: false,
            batched: false,
        }
    }

    #[test]
    fn a_retry_prefers_an_idle_other_host_but_never_waits_for_one() {
        let slots = BTreeMap::from([("e1".to_string(), 2), ("e2".to_string(), 1)]);
        let mut q = Queue::default();
        q.orphans.push_back(job(7, "e1"));
        // e2 has its slot free: e1 leaves the retry to it.
        assert!(q.pick("e1", &slots).is_none());
        q.busy.insert("e2".to_string(), 1);
        // e2 is busy: e1 takes it now rather than make it wait.
        assert_eq!(q.pick("e1", &slots).map(|j| j.shard), Some(7));
        // A lost e2 counts as busy for ever.
        q.orphans.push_back(job(8, "e1"));
        q.busy.clear();
        q.dead.insert("e2".to_string());
        assert_eq!(q.pick("e1", &slots).map(|j| j.shard), Some(8));
        // Any other host takes it whenever it has a slot.
        q.orphans.push_back(job(9, "e1"));
        assert_eq!(q.pick("e2", &slots).map(|j| j.shard), Some(9));
    }

    #[test]
    fn an_idle_slot_takes_the_smallest_batch_of_the_host_with_the_most_work_left() {
        let slots = BTreeMap::from([
            ("e1".to_string(), 1),
            ("e2".to_string(), 1),
            ("e3".to_string(), 1),
        ]);
        let batch = |shard: usize, ms: u64| QueuedShard {
            predicted: Duration::from_millis(ms),
            avoid: None,
            attempt: 1,
            ..job(shard, "")
        };
        let mut q = Queue::default();
        q.planned.insert(
            "e1".into(),
            VecDeque::from([batch(0, 4000), batch(3, 2000), batch(4, 1000)]),
        );
        q.planned.insert("e2".into(), VecDeque::from([batch(1, 3000)]));
        // e3 has nothing of its own: e1 has the most left (7 s), its smallest batch goes.
        assert_eq!(q.pick("e3", &slots).map(|j| j.shard), Some(4));
        // e1 6 s, e2 3 s: e1's tail again.
        assert_eq!(q.pick("e3", &slots).map(|j| j.shard), Some(3));
        // A host's own slot takes from the front: its largest.
        assert_eq!(q.pick("e1", &slots).map(|j| j.shard), Some(0));
        // e1 has nothing queued now: e2's only batch is next for anyone idle.
        assert_eq!(q.pick("e1", &slots).map(|j| j.shard), Some(1));
        assert!(q.pick("e3", &slots).is_none());
        assert!(q.planned.values().all(|b| b.is_empty()));
    }

    fn events() -> (Observer, std::sync::Arc<Mutex<Vec<String>>>) {
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let observer: Observer = std::sync::Arc::new(move |e: &Event| {
            if let Event::HostLost { host, reason } = e {
                sink.lock().unwrap().push(format!("{host}: {reason}"));
            }
        });
        (observer, seen)
    }

    #[tokio::test]
    async fn a_host_whose_staging_fails_is_lost_once_and_its_shards_go_to_the_others() {
        let mut queue = Queue::default();
        queue
            .planned
            .insert("e3".into(), VecDeque::from([job(4, "x"), job(5, "x")]));
        let queue = Mutex::new(queue);
        let wake = tokio::sync::Notify::new();
        let (observer, seen) = events();
        let (tx, rx) = tokio::sync::watch::channel(None);
        let gone = CancellationToken::new();
        tx.send(Some(Err("staging failed: disk full".to_string())))
            .unwrap();
        // Both of the host's slots see the failure; the host is lost once.
        for _ in 0..2 {
            assert!(!passed(rx.clone(), "e3", &gone, &queue, &wake, &observer).await);
        }
        assert_eq!(*seen.lock().unwrap(), ["e3: staging failed: disk full"]);
        let q = queue.into_inner().unwrap();
        assert!(q.dead.contains("e3"));
        assert_eq!(q.orphans.iter().map(|j| j.shard).collect::<Vec<_>>(), [4, 5]);
    }

    #[tokio::test]
    async fn a_slot_waits_for_its_hosts_staging_and_stops_when_the_host_is_gone() {
        let queue = Mutex::new(Queue::default());
        let wake = tokio::sync::Notify::new();
        let (observer, seen) = events();
        let (tx, rx) = tokio::sync::watch::channel(None);
        let gone = CancellationToken::new();
        let waiting = passed(rx.clone(), "e1", &gone, &queue, &wake, &observer);
        tokio::pin!(waiting);
        assert!(
            futures_util::poll!(waiting.as_mut()).is_pending(),
            "no shard starts before its host is staged"
        );
        tx.send(Some(Ok(()))).unwrap();
        assert!(waiting.await);

        let (_tx, rx) = tokio::sync::watch::channel(None);
        gone.cancel();
        assert!(!passed(rx, "e2", &gone, &queue, &wake, &observer).await);
        assert!(seen.lock().unwrap().is_empty(), "an interrupt loses no host");
        assert!(queue.lock().unwrap().dead.is_empty());
    }
}
