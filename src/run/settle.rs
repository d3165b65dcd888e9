//! How one attempt ends for the queue: its results recorded, its tests re-queued, retried
//! elsewhere or abandoned, and the record of the attempt.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Instant;

use super::attempt::{self, AttemptRun, Ended, QueuedShard, Shared};
use super::outcome::{AttemptEnd, Event, Outcome, ShardAttempt};
use super::queue::Queue;
use super::{LiveHost, Observer};
use crate::test_result::{TestId, TestResult, TestStatus};

/// A test's result as a phase recorded it: which shard, host and container gave it.
pub(super) struct Recorded {
    pub result: TestResult,
    pub shard: usize,
    pub host: String,
    pub container: String,
}

impl Recorded {
    pub fn into_outcome(self) -> Outcome {
        Outcome {
            result: self.result,
            earlier: Vec::new(),
            shard: Some(self.shard),
            host: self.host,
            container: self.container,
        }
    }
}

/// Where an attempt ran, for [`settle`].
pub(super) struct Ran<'a> {
    pub host: &'a str,
    pub slot: usize,
    /// When the run began: attempts are recorded as offsets from it.
    pub t0: Instant,
}

/// Records an attempt's results, or re-queues / abandons its tests, and returns the record of
/// the attempt. `hosts` bounds how often a lost host's work moves on.
pub(super) fn settle(
    shared: &Shared<'_>,
    hosts: &[LiveHost],
    queue: &Mutex<Queue>,
    ran: Ran<'_>,
    job: QueuedShard,
    run: AttemptRun,
) -> ShardAttempt {
    let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
    q.running -= 1;
    if let Some(n) = q.busy.get_mut(ran.host) {
        *n = n.saturating_sub(1);
    }
    let mut announced = run.announced;
    announced.retain(|id, _| job.tests.contains(id));
    let mut s = Settling {
        observer: &shared.observer,
        host: ran.host,
        log: attempt::log_path(shared.opts, &job),
        container: run.container,
        announced,
        job,
    };
    if s.job.batched && matches!(run.ended, Ended::Results { .. }) {
        // What batches really take, for the queue's sizing of the ones still to come.
        q.observed.0 += run.finished.saturating_duration_since(run.started);
        q.observed.1 += s.job.predicted;
    }
    let max_attempts = 1 + shared.opts.shard_retries;
    let end = match run.ended {
        Ended::Results { results, exit_code } => {
            let seen = s.reported(&mut q, results);
            // Before the missing ones are judged: a run this report stops (`--max-fail`) turns
            // what its runner did not reach into "not run", not errors.
            stop_at_max_fail(shared, &q);
            s.missing(&mut q, &seen, exit_code, shared.cancel.is_cancelled());
            AttemptEnd::Exited(exit_code)
        }
        Ended::NoResults(reason) => {
            let rest = s.keep_announced(&mut q, "the shard failed");
            let given_up = format!("{reason} (after {} attempts)", s.job.attempt);
            retry_or_abandon(&mut q, rest, given_up, s.job.attempt < max_attempts, ran.host);
            AttemptEnd::Failed(reason)
        }
        Ended::HostLost(reason) => {
            // A lost host is not the shard's fault: re-queue without spending a retry, but
            // never more often than there are hosts to try.
            let again = (s.job.attempt as usize) < max_attempts as usize + hosts.len();
            s.host_lost(&mut q, &reason, again);
            AttemptEnd::Failed(reason)
        }
        Ended::TimedOut(limit) => {
            let reason = format!(
                "shard timed out after {} (--shard-timeout)",
                humantime::format_duration(limit)
            );
            let rest = s.keep_announced(&mut q, "the shard timed out");
            if !rest.tests.is_empty() {
                q.abandoned.push((rest, reason));
            }
            AttemptEnd::TimedOut
        }
        Ended::Cancelled => {
            s.keep_announced(&mut q, "the run was stopped");
            AttemptEnd::Cancelled
        }
        Ended::Rejected(reason) => {
            let rest = s.keep_announced(&mut q, "the engine refused the container");
            reject_everything(&mut q, rest, &reason);
            AttemptEnd::Failed(reason)
        }
    };
    s.into_attempt(&ran, (run.started, run.finished), run.phases, end)
}

/// One attempt being settled: where its results go and what its runner announced.
struct Settling<'a> {
    observer: &'a Observer,
    host: &'a str,
    log: std::path::PathBuf,
    container: String,
    announced: std::collections::BTreeMap<TestId, TestResult>,
    job: QueuedShard,
}

impl Settling<'_> {
    /// The record of the attempt, for the reports.
    fn into_attempt(
        self,
        ran: &Ran<'_>,
        (started, finished): (Instant, Instant),
        phases: crate::engine::Phases,
        end: AttemptEnd,
    ) -> ShardAttempt {
        ShardAttempt {
            shard: self.job.shard,
            attempt: self.job.attempt,
            host: ran.host.to_string(),
            slot: ran.slot,
            container: self.container,
            tests: self.job.tests.len(),
            predicted: self.job.predicted,
            started: started.saturating_duration_since(ran.t0),
            finished: finished.saturating_duration_since(ran.t0),
            phases,
            end,
            log: self.log,
            rerun: self.job.rerun,
        }
    }

    /// A result the runner gave (in its report or its live output): into the JSON stream as
    /// it is recorded, so the stream and the report hold the same tests.
    fn record(&self, q: &mut Queue, r: TestResult) {
        (self.observer)(&Event::TestFinished {
            result: r.clone(),
            shard: self.job.shard,
            host: self.host.to_string(),
            attempt: self.job.attempt,
        });
        self.keep(q, r);
    }

    /// Into the results only: not the runner's word, so not in the stream as a result.
    fn keep(&self, q: &mut Queue, r: TestResult) {
        q.results.insert(
            r.id.clone(),
            Recorded {
                result: r,
                shard: self.job.shard,
                host: self.host.to_string(),
                container: self.container.clone(),
            },
        );
    }

    /// The report's results for this attempt's own tests, each once; returns which it had.
    fn reported(&self, q: &mut Queue, results: Vec<TestResult>) -> BTreeSet<TestId> {
        let mut seen = BTreeSet::new();
        for r in results {
            if !self.job.tests.contains(&r.id) || !seen.insert(r.id.clone()) {
                continue;
            }
            self.record(q, r);
        }
        seen
    }

    /// The attempt's tests its report lacks: as announced live, else errors. A stopped run
    /// (`--max-fail`) leaves the unreached ones to be reported as not run.
    fn missing(&mut self, q: &mut Queue, seen: &BTreeSet<TestId>, exit_code: Option<i64>, stopped: bool) {
        let code = exit_code.map(|c| c.to_string()).unwrap_or_else(|| "?".into());
        let missing: Vec<TestId> = self
            .job
            .tests
            .iter()
            .filter(|id| !seen.contains(*id))
            .cloned()
            .collect();
        for id in missing {
            if stopped && !self.announced.contains_key(&id) {
                continue;
            }
            match self.announced.remove(&id) {
                // Announced live but missing from the report (it was cut short).
                Some(mut r) => {
                    r.message = Some(format!(
                        "{} (as announced in the shard's output; its report lacks it)",
                        r.message.as_deref().unwrap_or("finished")
                    ));
                    self.record(q, r);
                }
                None => {
                    let message = format!("no result reported: shard exited with code {code}");
                    self.keep(q, super::schedule::error_result(id, &message));
                }
            }
        }
    }

    /// The attempt's host is lost: marked so (once), the announced results stand, the rest goes
    /// to another host when `again`.
    fn host_lost(&mut self, q: &mut Queue, reason: &str, again: bool) {
        if q.kill_host(self.host, reason) {
            (self.observer)(&Event::HostLost {
                host: self.host.to_string(),
                reason: reason.to_string(),
            });
        }
        let rest = self.keep_announced(q, "its host was lost");
        retry_or_abandon(q, rest, reason.to_string(), again, self.host);
    }

    /// Ended without a report: what the runner announced stands; returns the rest of the job,
    /// to go on.
    fn keep_announced(&mut self, q: &mut Queue, why: &str) -> QueuedShard {
        for (_, mut r) in std::mem::take(&mut self.announced) {
            if r.status == TestStatus::Failed {
                r.message = Some(format!(
                    "failed (as announced in the shard's output; {why} before its report was read: see {})",
                    self.log.display()
                ));
            }
            self.record(q, r);
        }
        let job = &self.job;
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
    }
}

/// `rest` goes back to the queue for another host when `again`, else its tests become errors
/// saying `given_up`.
fn retry_or_abandon(q: &mut Queue, rest: QueuedShard, given_up: String, again: bool, host: &str) {
    if rest.tests.is_empty() {
        // Every test was announced before the attempt broke: nothing to run again.
    } else if again {
        q.orphans.push_back(QueuedShard {
            attempt: rest.attempt + 1,
            avoid: Some(host.to_string()),
            ..rest
        });
    } else {
        q.abandoned.push((rest, given_up));
    }
}

/// The engine refused a container's configuration: the same goes to every shard, so nothing
/// more starts and everything queued is reported as not run.
fn reject_everything(q: &mut Queue, rest: QueuedShard, reason: &str) {
    q.abandoned.push((rest, reason.to_string()));
    let not_run = format!("not run: {reason}");
    let leftovers: Vec<QueuedShard> = q
        .orphans
        .drain(..)
        .chain(q.planned.values_mut().flat_map(|v| v.drain(..)))
        .collect();
    q.abandoned
        .extend(leftovers.into_iter().map(|j| (j, not_run.clone())));
    q.rejected.get_or_insert(reason.to_string());
}

/// Stops the run once as many tests failed as `--max-fail` allows: running shards are
/// cancelled, queued ones never start.
pub(super) fn stop_at_max_fail(shared: &Shared<'_>, q: &Queue) {
    let Some(max) = shared.opts.max_fail else { return };
    let failed = q
        .results
        .values()
        .filter(|r| r.result.status == TestStatus::Failed)
        .count();
    if failed >= max {
        shared.cancel.cancel();
    }
}
