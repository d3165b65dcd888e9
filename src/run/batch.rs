//! Cutting planned shards into batches, so that a slot that runs out of work can take tests
//! another slot has not started yet (test-level stealing). A plan made from history is
//! trusted and left whole; a shard whose time is mostly estimated is cut into halves of what
//! is left (the big batch first, the small ones last, where thieves take from).

use std::time::Duration;

use super::attempt::QueuedShard;
use crate::plan::{Plan, Shard};

/// A shard whose estimated tests hold less than this share of its expected time runs whole.
const TRUSTED_SHARE: f64 = 0.2;
/// No batch is cut smaller than this (predicted wall time): each costs a `docker exec` and a
/// runner start.
const SMALLEST: Duration = Duration::from_millis(400);
/// At most this many batches per shard.
const MOST: usize = 6;

/// The queue's first phase: every non-empty shard of `plan`, cut into batches when `cut` says
/// so. A shard's first batch keeps the shard's index; later batches get indices after the
/// plan's, so every unit of work is told apart in logs, events and reports. Largest first: a
/// host's own slots take from the front, thieves from the back.
pub(crate) fn queue(plan: &Plan, cut: bool) -> Vec<QueuedShard> {
    let mut next = plan.shards.iter().map(|s| s.index + 1).max().unwrap_or(0);
    let mut jobs = Vec::new();
    for shard in plan.shards.iter().filter(|s| !s.tests.is_empty()) {
        let batches = if cut { batches(shard) } else { vec![whole(shard)] };
        let split = batches.len() > 1;
        for (i, (tests, predicted)) in batches.into_iter().enumerate() {
            let index = if i == 0 {
                shard.index
            } else {
                next += 1;
                next - 1
            };
            jobs.push(QueuedShard {
                shard: index,
                tests,
                predicted,
                attempt: 1,
                planned: shard.host.clone(),
                avoid: None,
                rerun: false,
                batched: split,
            });
        }
    }
    jobs.sort_by(|a, b| b.predicted.cmp(&a.predicted).then(a.shard.cmp(&b.shard)));
    jobs
}

type Batch = (Vec<crate::test_result::TestId>, Duration);

fn whole(shard: &Shard) -> Batch {
    (shard.tests.clone(), shard.predicted)
}

/// `shard` as batches: whole when its plan is trusted, else halves of what is left, largest
/// first, none predicted below [`SMALLEST`], at most [`MOST`].
fn batches(shard: &Shard) -> Vec<Batch> {
    if shard.expected.len() != shard.tests.len() || shard.tests.len() < 2 {
        return vec![whole(shard)];
    }
    let total: Duration = shard.expected.iter().map(|e| e.time).sum();
    let estimated: Duration = shard
        .expected
        .iter()
        .filter(|e| e.estimated)
        .map(|e| e.time)
        .sum();
    if total.is_zero() || estimated.as_secs_f64() < TRUSTED_SHARE * total.as_secs_f64() {
        return vec![whole(shard)];
    }
    // Expected test time → predicted wall time on the planned host (threads, weight, overhead).
    let scale = shard.predicted.as_secs_f64() / total.as_secs_f64();
    let wall = |d: Duration| Duration::from_secs_f64(d.as_secs_f64() * scale);
    let mut out: Vec<Batch> = Vec::new();
    let mut left = total;
    let mut at = 0;
    while at < shard.tests.len() {
        let last = out.len() + 1 == MOST || wall(left) < SMALLEST * 2;
        let want = if last { left } else { left / 2 };
        let mut took = Duration::ZERO;
        let start = at;
        while at < shard.tests.len() && (at == start || took < want) {
            took += shard.expected[at].time;
            at += 1;
        }
        left = left.saturating_sub(took);
        out.push((shard.tests[start..at].to_vec(), wall(took)));
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
    fn a_shard_planned_from_history_runs_whole() {
        let q = super::queue(&plan(vec![shard(0, &[1000; 10], false)]), true);
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].tests.len(), 10);
        assert_eq!(q[0].shard, 0);
    }

    #[test]
    fn an_estimated_shard_is_cut_into_halves_of_what_is_left_with_fresh_indices() {
        let p = plan(vec![shard(0, &[1000; 16], true), shard(1, &[1000; 4], true)]);
        let q = super::queue(&p, true);
        let sizes = |index: usize| q.iter().find(|j| j.shard == index).map(|j| j.tests.len());
        // Shard 0: 8, 4, 2, 1, 1 tests (the last under twice the smallest batch stays whole).
        assert_eq!(sizes(0), Some(8));
        let mut all: Vec<String> = q
            .iter()
            .flat_map(|j| j.tests.iter().map(|t| t.name.clone()))
            .collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 20, "every test exactly once");
        let mut indices: Vec<usize> = q.iter().map(|j| j.shard).collect();
        indices.sort();
        indices.dedup();
        assert_eq!(indices.len(), q.len(), "every batch its own index");
        let holding = |name: &str| {
            q.iter()
                .find(|j| j.tests.iter().any(|t| t.name == name))
                .unwrap()
                .shard
        };
        assert_eq!(
            (holding("s0t0"), holding("s1t0")),
            (0, 1),
            "first batches keep the shard's index"
        );
        assert!(
            q.windows(2).all(|w| w[0].predicted >= w[1].predicted),
            "largest first"
        );
        assert!(q.len() <= 2 * super::MOST);
    }

    #[test]
    fn no_batch_is_predicted_below_the_smallest_unless_its_shard_is() {
        let q = super::queue(&plan(vec![shard(0, &[100; 40], true)]), true);
        assert!(q.len() > 1);
        let smallest = q.iter().map(|j| j.predicted).min().unwrap();
        assert!(smallest >= super::SMALLEST, "{smallest:?}");
    }

    #[test]
    fn without_cutting_every_shard_is_one_unit_and_empty_shards_are_left_out() {
        let q = super::queue(
            &plan(vec![shard(0, &[1000; 16], true), shard(1, &[], true)]),
            false,
        );
        assert_eq!(q.len(), 1);
        assert!(!q[0].batched);
    }
}
