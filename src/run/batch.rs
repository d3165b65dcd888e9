//! Cutting guessed shards into batches, so that a slot that runs out of work can take tests
//! another slot has not started yet (test-level stealing). A plan made from history is
//! trusted and left whole. The tests of shards whose time is mostly estimated go into one
//! pool shared by every slot, cut by guided self-scheduling: each batch holds 1/(2·slots) of
//! the predicted time still left, so batches shrink towards the end, where a wrong guess
//! costs the most.

use std::time::Duration;

use super::attempt::QueuedShard;
use crate::plan::{Plan, Shard};
use crate::test_result::TestId;

/// A shard whose estimated tests hold less than this share of its expected time runs whole.
const TRUSTED_SHARE: f64 = 0.2;

/// The queue's first phase for `slots` slots in all: trusted shards whole on their planned
/// host, and the pooled tests of the others as batches any host takes (no planned host),
/// largest first. Pooled batches take the guessed shards' indices first, then indices after
/// the plan's, so every unit of work is told apart in logs, events and reports. With `cut`
/// off, every shard runs whole.
pub(crate) fn queue(plan: &Plan, cut: bool, slots: usize) -> Vec<QueuedShard> {
    let mut jobs = Vec::new();
    let mut pooled: Vec<(TestId, Duration)> = Vec::new();
    let mut indices = Vec::new();
    for shard in plan.shards.iter().filter(|s| !s.tests.is_empty()) {
        if cut && guessed(shard) {
            pooled.extend(predicted_tests(shard));
            indices.push(shard.index);
            continue;
        }
        jobs.push(QueuedShard {
            shard: shard.index,
            tests: shard.tests.clone(),
            predicted: shard.predicted,
            attempt: 1,
            planned: shard.host.clone(),
            avoid: None,
            rerun: false,
            batched: false,
        });
    }
    // A spread the names cannot steer: the plan's order keeps a binary's tests together,
    // and a binary of slow tests in one batch is the long tail this pool exists to avoid.
    pooled.sort_by_key(|(id, _)| (spread(id), id.clone()));
    let mut next = plan.shards.iter().map(|s| s.index + 1).max().unwrap_or(0);
    let mut indices = indices.into_iter();
    for (tests, predicted) in guided(pooled, slots.max(1)) {
        let shard = indices.next().unwrap_or_else(|| {
            next += 1;
            next - 1
        });
        jobs.push(QueuedShard {
            shard,
            tests,
            predicted,
            attempt: 1,
            planned: None,
            avoid: None,
            rerun: false,
            batched: true,
        });
    }
    jobs.sort_by(|a, b| b.predicted.cmp(&a.predicted).then(a.shard.cmp(&b.shard)));
    jobs
}

/// Whether most of `shard`'s predicted time is a guess (and it has more than one test to
/// move around).
fn guessed(shard: &Shard) -> bool {
    if shard.expected.len() != shard.tests.len() || shard.tests.len() < 2 {
        return false;
    }
    let total: Duration = shard.expected.iter().map(|e| e.time).sum();
    let estimated: Duration = shard
        .expected
        .iter()
        .filter(|e| e.estimated)
        .map(|e| e.time)
        .sum();
    !total.is_zero() && estimated.as_secs_f64() >= TRUSTED_SHARE * total.as_secs_f64()
}

/// `shard`'s tests with their predicted wall time on the planned host: expected test time
/// scaled as the shard's prediction scales it (threads, weight, overhead).
fn predicted_tests(shard: &Shard) -> impl Iterator<Item = (TestId, Duration)> + '_ {
    let total: Duration = shard.expected.iter().map(|e| e.time).sum();
    let scale = shard.predicted.as_secs_f64() / total.as_secs_f64();
    shard
        .tests
        .iter()
        .zip(&shard.expected)
        .map(move |(t, e)| (t.clone(), Duration::from_secs_f64(e.time.as_secs_f64() * scale)))
}

/// FNV-1a of a test's binary and name.
fn spread(id: &TestId) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.group.bytes().chain([0]).chain(id.name.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

type Batch = (Vec<TestId>, Duration);

/// Guided self-scheduling over `slots` slots: each batch takes tests until it holds
/// 1/(2·slots) of the predicted time left, and at least 1/(8·slots) of the whole (each
/// batch costs an exec, an upload, a runner start and a collect: about 0.2 s on a busy
/// host). Simulated on 500 random orders of real durations (`scripts/first-run-sim`), the
/// floor keeps a 600-test suite's batch count, and so its overhead, where halving shards
/// had it, while the shrinking batches cut a 73-test suite's long tail.
fn guided(tests: Vec<(TestId, Duration)>, slots: usize) -> Vec<Batch> {
    let mut left: Duration = tests.iter().map(|(_, d)| *d).sum();
    let share = 2 * u32::try_from(slots).unwrap_or(u32::MAX / 8);
    let floor = left / (4 * share);
    let mut out: Vec<Batch> = Vec::new();
    let mut tests = tests.into_iter().peekable();
    while tests.peek().is_some() {
        let want = (left / share).max(floor);
        let (mut batch, mut took) = (Vec::new(), Duration::ZERO);
        while let Some((id, d)) = tests.next_if(|_| batch.is_empty() || took < want) {
            batch.push(id);
            took += d;
        }
        left = left.saturating_sub(took);
        out.push((batch, took));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::plan::{Expected, Plan, Shard};
    use crate::test_result::TestId;

    fn shard(index: usize, times_ms: &[u64], estimated: bool) -> Shard {
        let tests: Vec<TestId> = (0..times_ms.len())
            .map(|i| TestId::new("bin", format!("s{index}t{i}")))
            .collect();
        let expected: Vec<Expected> = times_ms
            .iter()
            .map(|&ms| Expected {
                time: Duration::from_millis(ms),
                estimated,
            })
            .collect();
        Shard {
            index,
            host: Some("e1".into()),
            predicted: expected.iter().map(|e| e.time).sum(),
            tests,
            expected,
        }
    }

    fn plan(shards: Vec<Shard>) -> Plan {
        Plan {
            total: shards.iter().map(|s| s.predicted).sum(),
            makespan: Duration::ZERO,
            lower_bound: Duration::ZERO,
            estimated: 0,
            shards,
        }
    }

    #[test]
    fn a_shard_planned_from_history_runs_whole_on_its_host() {
        let q = super::queue(&plan(vec![shard(0, &[1000; 10], false)]), true, 6);
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].tests.len(), 10);
        assert_eq!(q[0].shard, 0);
        assert_eq!(q[0].planned.as_deref(), Some("e1"));
        assert!(!q[0].batched);
    }

    #[test]
    fn guessed_shards_pool_their_tests_into_shrinking_batches_any_host_takes() {
        // 24 + 24 tests of one estimated second each, 2 hosts × 2 slots: each batch takes an
        // eighth of what is left (ceiling), at least a 32nd of the whole (1.5 s: 2 tests).
        let p = plan(vec![shard(0, &[1000; 24], true), shard(1, &[1000; 24], true)]);
        let q = super::queue(&p, true, 4);
        let sizes: Vec<usize> = q.iter().map(|j| j.tests.len()).collect();
        assert_eq!(sizes, [6, 6, 5, 4, 4, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2]);
        assert!(q.iter().all(|j| j.planned.is_none() && j.batched), "{q:?}");
        let mut all: Vec<String> = q
            .iter()
            .flat_map(|j| j.tests.iter().map(|t| t.name.clone()))
            .collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 48, "every test exactly once");
        let mut indices: Vec<usize> = q.iter().map(|j| j.shard).collect();
        indices.sort();
        assert_eq!(
            indices,
            (0..q.len()).collect::<Vec<_>>(),
            "the shards' indices first, then fresh ones"
        );
        assert!(
            q.windows(2).all(|w| w[0].predicted >= w[1].predicted),
            "largest first"
        );
    }

    #[test]
    fn the_pool_mixes_binaries_rather_than_keep_the_plans_order() {
        let p = plan(vec![shard(0, &[1000; 40], true)]);
        let q = super::queue(&p, true, 2);
        let first: Vec<usize> = q[0]
            .tests
            .iter()
            .map(|t| t.name.trim_start_matches("s0t").parse().unwrap())
            .collect();
        assert_ne!(first, (0..first.len()).collect::<Vec<_>>(), "{first:?}");
    }

    #[test]
    fn a_trusted_shard_stays_whole_beside_a_pool() {
        let p = plan(vec![shard(0, &[1000; 8], false), shard(1, &[1000; 8], true)]);
        let q = super::queue(&p, true, 2);
        let whole: Vec<_> = q.iter().filter(|j| !j.batched).collect();
        assert_eq!(whole.len(), 1);
        assert_eq!((whole[0].shard, whole[0].tests.len()), (0, 8));
        assert_eq!(
            q.iter()
                .filter(|j| j.batched)
                .map(|j| j.tests.len())
                .sum::<usize>(),
            8
        );
        assert_eq!(q.iter().filter(|j| j.batched).map(|j| j.shard).min(), Some(1));
    }

    #[test]
    fn without_cutting_every_shard_is_one_unit_and_empty_shards_are_left_out() {
        let q = super::queue(
            &plan(vec![shard(0, &[1000; 16], true), shard(1, &[], true)]),
            false,
            6,
        );
        assert_eq!(q.len(), 1);
        assert!(!q[0].batched);
    }
}
