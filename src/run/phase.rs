//! One phase of the run: a worker per host slot taking from the queue, each host's staging
//! gate and heartbeat, and what the phase leaves behind.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::attempt::{self, QueuedShard, Shared};
use super::outcome::{Event, ShardAttempt};
use super::queue::Queue;
use super::settle::{Ran, Recorded, settle};
use super::{LiveHost, Observer};
use crate::test_result::TestId;

/// What a phase leaves: its results, attempts, lost hosts, work that could not run.
pub(super) struct PhaseResult {
    pub(super) results: BTreeMap<TestId, Recorded>,
    pub(super) attempts: Vec<ShardAttempt>,
    pub(super) lost: Vec<(String, String)>,
    pub(super) abandoned: Vec<(QueuedShard, String)>,
    pub(super) rejected: Option<String>,
}

/// Runs `jobs` on the live `hosts` until nothing is left that a live host can take; `dead`
/// gains the hosts lost meanwhile. `gates` hold back each host that is still staging.
pub(super) async fn run_phase(
    shared: &Shared<'_>,
    hosts: &[LiveHost],
    jobs: Vec<QueuedShard>,
    dead: &mut BTreeSet<String>,
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
    let phase = Phase {
        shared,
        hosts,
        slots: hosts
            .iter()
            .map(|h| (h.host.name.clone(), h.host.slots))
            .collect(),
        queue: Mutex::new(queue),
        wake: tokio::sync::Notify::new(),
        t0,
    };
    let live: Vec<&LiveHost> = hosts.iter().filter(|h| !dead.contains(&h.host.name)).collect();
    // Cancelled with the run, or by the host's heartbeat when it stops answering.
    let gone: Vec<CancellationToken> = live.iter().map(|_| shared.cancel.child_token()).collect();
    let mut workers = Vec::new();
    for (host, gone) in live.iter().zip(&gone) {
        let gate = gates.get(&host.host.name);
        for slot in 0..host.host.slots {
            let phase = &phase;
            workers.push(async move {
                if let Some(gate) = gate
                    && !passed(
                        gate.clone(),
                        &host.host.name,
                        gone,
                        &phase.queue,
                        &phase.wake,
                        &shared.observer,
                    )
                    .await
                {
                    return;
                }
                worker(phase, host, slot, gone).await
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
        .map(|(host, gone)| heartbeat(host, gone, &finished, &phase.queue, &phase.wake, &shared.observer));
    tokio::join!(work, futures_util::future::join_all(beats));
    let q = phase.queue.into_inner().unwrap_or_else(|p| p.into_inner());
    leftovers(shared, q, dead)
}

/// What every slot of one phase shares.
struct Phase<'a, 's> {
    shared: &'a Shared<'s>,
    hosts: &'a [LiveHost],
    /// Every host's slot count, for the queue's choices.
    slots: BTreeMap<String, usize>,
    queue: Mutex<Queue>,
    wake: tokio::sync::Notify,
    /// When the run began.
    t0: Instant,
}

/// The phase's end: whatever is still queued has no host left to run on (unless the run
/// was stopped); `dead` gains the hosts lost.
fn leftovers(shared: &Shared<'_>, mut q: Queue, dead: &mut BTreeSet<String>) -> PhaseResult {
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
pub(super) type Gates = BTreeMap<String, tokio::sync::watch::Receiver<Option<Result<(), String>>>>;
pub(super) type Opened = BTreeMap<String, tokio::sync::watch::Sender<Option<Result<(), String>>>>;

/// Waits for `host`'s staging; a failure marks the host lost (its queued shards go to the
/// others). False when the slot has nothing more to do.
pub(super) async fn passed(
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
pub(super) async fn heartbeat(
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

/// One slot of `host`: takes work until the phase has none left for it, then leaves its slot
/// container to the next phase or the run's cleanup.
async fn worker(phase: &Phase<'_, '_>, host: &LiveHost, slot: usize, gone: &CancellationToken) {
    let pre_opened = super::slots::take(&phase.shared.pre_opened, &host.host.name, slot);
    let mut holder = super::slots::SlotHolder::new(slot, pre_opened);
    while let Some(job) = next_job(phase, host, gone).await {
        let shared = phase.shared;
        let name = host.host.name.as_str();
        (shared.observer)(&Event::ShardStarted {
            shard: job.shard,
            attempt: job.attempt,
            host: name.to_string(),
            tests: job.tests.len(),
            predicted: job.predicted,
        });
        let run = attempt::scrubbed(
            attempt::run(shared, host, &job, gone, &mut holder).await,
            &shared.opts.job.secrets,
        );
        let ran = Ran {
            host: name,
            slot,
            t0: phase.t0,
        };
        let record = settle(shared, phase.hosts, &phase.queue, ran, job, run);
        phase
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .attempts
            .push(record.clone());
        (shared.observer)(&Event::ShardFinished(record));
        phase.wake.notify_waiters();
    }
    if !gone.is_cancelled() {
        holder.release(host, &phase.shared.pre_opened).await;
    }
}

/// The next job for a slot of `host`, waiting while others run what may still come back
/// (retries, a lost host's work); `None` once the slot has nothing more to do.
async fn next_job(phase: &Phase<'_, '_>, host: &LiveHost, gone: &CancellationToken) -> Option<QueuedShard> {
    let name = host.host.name.as_str();
    loop {
        let notified = phase.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut q = phase.queue.lock().unwrap_or_else(|p| p.into_inner());
            if q.dead.contains(name) || gone.is_cancelled() {
                drop(q);
                phase.wake.notify_waiters();
                return None;
            }
            match q.pick(name, &phase.slots) {
                Some(job) => {
                    q.running += 1;
                    *q.busy.entry(name.to_string()).or_default() += 1;
                    return Some(job);
                }
                None if q.idle() => {
                    drop(q);
                    phase.wake.notify_waiters();
                    return None;
                }
                None => {}
            }
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = gone.cancelled() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    use crate::run::queue::tests::job;

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
