//! The phase's queue: each host's slots take their planned shards first, then orphans (shards
//! of lost hosts, retries), then steal from the host with the most work left.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use super::attempt::QueuedShard;
use super::outcome::ShardAttempt;
use super::settle::Recorded;
use crate::test_result::TestId;

#[derive(Default)]
pub(super) struct Queue {
    pub(super) planned: BTreeMap<String, VecDeque<QueuedShard>>,
    pub(super) orphans: VecDeque<QueuedShard>,
    pub(super) dead: BTreeSet<String>,
    pub(super) running: usize,
    /// Results of this phase, by test.
    pub(super) results: BTreeMap<TestId, Recorded>,
    pub(super) attempts: Vec<ShardAttempt>,
    pub(super) lost: Vec<(String, String)>,
    /// Jobs that can no longer run (no host left, out of retries): tests become errors.
    pub(super) abandoned: Vec<(QueuedShard, String)>,
    /// The first refusal of a container's configuration: nothing more is started.
    pub(super) rejected: Option<String>,
    /// Shards running per host.
    pub(super) busy: BTreeMap<String, usize>,
    /// Batches that ended with their report: wall time taken against wall time predicted,
    /// summed. Their ratio says how far off the estimates are in this run.
    pub(super) observed: (Duration, Duration),
}

/// A batch is worth its `docker exec` and runner start only with about this much work in it,
/// as predicted and corrected by what this run has seen (see [`Queue::scale`]). Each batch
/// also ends at a barrier: the host's threads wait for its slowest test before the next
/// starts. Simulated over shuffled first runs (`scripts/first-run-sim`, its `shared` policy
/// with `--worth`) and measured
/// (BENCHMARKS.md, "Fewer, larger batches"), 3 s beats 1 s on both Rust suites.
const WORTH_A_BATCH: Duration = Duration::from_secs(3);

impl Queue {
    /// Whether a live host other than `host` has a slot free right now.
    pub(super) fn other_host_free(&self, host: &str, slots: &BTreeMap<String, usize>) -> bool {
        slots.iter().any(|(name, &n)| {
            name != host && !self.dead.contains(name) && self.busy.get(name).copied().unwrap_or(0) < n
        })
    }

    /// The next job for a free slot of `host` (`slots`: every host's slot count). A retry
    /// prefers a host other than the one that failed it, but only one idle now: it never waits
    /// for another host while this one has a free slot.
    pub(super) fn pick(&mut self, host: &str, slots: &BTreeMap<String, usize>) -> Option<QueuedShard> {
        if let Some(job) = self.planned.get_mut(host).and_then(|q| q.pop_front()) {
            return Some(self.fill(job, host, true));
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
        let job = self.planned.get_mut(&victim).and_then(|q| q.pop_back())?;
        Some(self.fill(job, &victim, false))
    }

    /// How much longer batches take than predicted in this run so far (1 until one ended):
    /// estimates made without history can be off by a factor of ten either way.
    pub(super) fn scale(&self) -> f64 {
        let (took, predicted) = self.observed;
        if predicted.is_zero() {
            return 1.0;
        }
        (took.as_secs_f64() / predicted.as_secs_f64()).clamp(0.01, 100.0)
    }

    /// A batch with too little work for its cost takes more batches of the same host's queue
    /// along (from the same end it came from), until it holds [`WORTH_A_BATCH`] as corrected
    /// by [`Queue::scale`]: tests far quicker than estimated run in a few execs, not many.
    fn fill(&mut self, mut job: QueuedShard, host: &str, front: bool) -> QueuedShard {
        let scale = self.scale();
        let worth = |d: Duration| d.as_secs_f64() * scale >= WORTH_A_BATCH.as_secs_f64();
        let Some(queue) = self.planned.get_mut(host) else {
            return job;
        };
        while job.batched && !worth(job.predicted) {
            let next = if front { queue.front() } else { queue.back() };
            if !next.is_some_and(|n| n.batched && n.attempt == 1) {
                break;
            }
            let Some(more) = (if front {
                queue.pop_front()
            } else {
                queue.pop_back()
            }) else {
                break;
            };
            job.tests.extend(more.tests);
            job.predicted += more.predicted;
        }
        job
    }

    pub(super) fn idle(&self) -> bool {
        self.running == 0 && self.orphans.is_empty() && self.planned.values().all(|q| q.is_empty())
    }

    /// Marks `host` lost and hands its queued shards to the others; true the first time.
    pub(super) fn kill_host(&mut self, host: &str, reason: &str) -> bool {
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A second attempt of shard `shard`, no tests, avoiding host `avoid`.
    pub(in crate::run) fn job(shard: usize, avoid: &str) -> QueuedShard {
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

    fn batch(shard: usize, ms: u64) -> QueuedShard {
        QueuedShard {
            tests: vec![TestId::new("g", format!("t{shard}"))],
            predicted: Duration::from_millis(ms),
            avoid: None,
            attempt: 1,
            batched: true,
            ..job(shard, "")
        }
    }

    #[test]
    fn batches_too_small_for_what_this_run_has_seen_take_more_along() {
        let slots = BTreeMap::from([("e1".to_string(), 1), ("e2".to_string(), 1)]);
        let mut q = Queue::default();
        let queued = [batch(0, 4000), batch(2, 2000), batch(3, 1000), batch(4, 500)];
        q.planned.insert("e1".into(), VecDeque::from(queued.clone()));
        // Nothing seen yet: estimates stand, the first batch is worth its exec alone.
        assert_eq!(q.pick("e1", &slots).map(|j| j.tests.len()), Some(1));
        // Batches took a tenth of their prediction: e2 steals from the back until a batch
        // holds three seconds of corrected work (0.5 + 1 + 2 s predicted = 0.35 s: all three).
        q.observed = (Duration::from_millis(400), Duration::from_millis(4000));
        let stolen = q.pick("e2", &slots).unwrap();
        assert_eq!(stolen.tests.len(), 3);
        assert_eq!(stolen.shard, 4, "named after the batch it started from");
        assert_eq!(stolen.predicted, Duration::from_millis(3500));
        assert!(q.planned["e1"].is_empty());
        // Whole shards (not cut) are never merged.
        q.planned
            .insert("e1".into(), VecDeque::from([job(7, ""), job(8, "")]));
        assert_eq!(q.pick("e1", &slots).map(|j| j.shard), Some(7));
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
}
