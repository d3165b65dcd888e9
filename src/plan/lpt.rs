//! The planner: longest-processing-time-first over the hosts' slots, aware of host
//! speed (`weight`), of tests run at once inside a container (`jobs`), and of shards
//! queued behind each other when there are more shards than slots.
//!
//! Cost model (the same one the benchmark scores every strategy with):
//! - a shard of tests with sum `S` and longest `L` on a host of `jobs` j and `weight` w
//!   takes `overhead + max(L, S / j) / w`: j tests run at once, but never faster than its
//!   longest test, and a host of weight 2 does the same work in half the time. This is the
//!   lower edge of what a greedy in-container scheduler achieves; it is exact for j = 1.
//! - where a group's tests run one after another inside a shard (`serial_groups`: a Go
//!   package is one process, running its tests in turn), the shard also takes at least its
//!   largest group's sum `G`: `overhead + max(L, G, S / j) / w`. The planner then spreads a
//!   big package over shards rather than give one shard a package its threads cannot share.
//!   The lower bound stays as it is: a group split over shards runs in parallel.
//! - each slot runs its shards one after another, so a slot finishes at the sum of its
//!   shards' costs, and the run at the latest slot's finish (the makespan).

use std::time::Duration;

use super::rng::SplitMix64;
use super::{Capacity, Plan, Shard, Weighted};

/// How to plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanOptions {
    /// Shard count; default: the total number of slots.
    pub shards: Option<usize>,
    /// Randomise which of equally long tests go together, and each shard's test order.
    pub shuffle: bool,
    /// The shuffle's seed: the same seed and inputs give the same plan.
    pub seed: u64,
    /// Fixed cost of a shard (container create, upload, start, collect).
    pub per_shard_overhead: Duration,
    /// Tests of one group (`TestId::group`) run one after another inside a shard.
    pub serial_groups: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            shards: None,
            shuffle: false,
            seed: 0,
            per_shard_overhead: Duration::from_millis(500),
            serial_groups: false,
        }
    }
}

/// One container slot of one host.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub host: Option<String>,
    pub jobs: f64,
    pub weight: f64,
}

impl Slot {
    /// Work per second: what the proportional shares are based on.
    fn rate(&self) -> f64 {
        self.jobs * self.weight
    }
    /// A shard of work `sum` that takes no less than `floor` (its longest test, or its
    /// largest serial group) on its own.
    #[inline]
    pub(crate) fn cost(&self, sum: f64, floor: f64, overhead: f64) -> f64 {
        overhead + floor.max(sum / self.jobs) / self.weight
    }
}

/// The slots of all hosts, fastest first (ties in host order). Hosts without slots are
/// ignored, nonsense jobs/weights are read as 1; no usable host means one local slot.
pub(crate) fn slots(caps: &[Capacity]) -> Vec<Slot> {
    let mut out = Vec::new();
    for c in caps {
        let weight = if c.weight.is_finite() && c.weight > 0.0 {
            c.weight
        } else {
            1.0
        };
        for _ in 0..c.slots {
            out.push(Slot {
                host: Some(c.host.clone()),
                jobs: c.test_threads.max(1) as f64,
                weight,
            });
        }
    }
    if out.is_empty() {
        out.push(Slot {
            host: None,
            jobs: 1.0,
            weight: 1.0,
        });
    }
    // Stable: equal rates keep host order.
    out.sort_by(|a, b| b.rate().total_cmp(&a.rate()));
    out
}

/// Which slot each of `m` shards belongs to: one shard per slot on the fastest slots
/// when `m` ≤ slots; otherwise every slot gets one and the rest are dealt in proportion
/// to speed (D'Hondt: next shard to the slot with the most rate per shard it would have).
pub(crate) fn shard_slots(slots: &[Slot], m: usize) -> Vec<usize> {
    if m <= slots.len() {
        return (0..m).collect();
    }
    let mut count = vec![1usize; slots.len()];
    for _ in slots.len()..m {
        let mut best = 0;
        for k in 1..slots.len() {
            let a = slots[k].rate() / (count[k] + 1) as f64;
            let b = slots[best].rate() / (count[best] + 1) as f64;
            if a > b {
                best = k;
            }
        }
        count[best] += 1;
    }
    count
        .iter()
        .enumerate()
        .flat_map(|(k, &n)| std::iter::repeat_n(k, n))
        .collect()
}

/// `overhead + max(total / Σ(slots·jobs·weight), longest / fastest weight)`: every slot
/// that works pays at least one overhead, no slot works faster than its rate, and no
/// test runs faster than on the fastest host. No plan beats it.
pub fn lower_bound(tests: &[Weighted], caps: &[Capacity], overhead: Duration) -> Duration {
    bound_over(tests, &slots(caps), overhead)
}

/// The bound over the given slots only.
fn bound_over(tests: &[Weighted], slots: &[Slot], overhead: Duration) -> Duration {
    if tests.is_empty() || slots.is_empty() {
        return Duration::ZERO;
    }
    let capacity: f64 = slots.iter().map(Slot::rate).sum();
    let fastest = slots.iter().map(|s| s.weight).fold(0.0, f64::max);
    let total: f64 = tests.iter().map(|t| t.expected.as_secs_f64()).sum();
    let longest = tests.iter().map(|t| t.expected.as_secs_f64()).fold(0.0, f64::max);
    secs(overhead.as_secs_f64() + (total / capacity).max(longest / fastest))
}

/// Bins `tests` into shards (see the module doc for the model). Deterministic: the same
/// inputs give the same plan, ties broken by [`crate::test_result::TestId`] and shard index;
/// with `shuffle` the order comes from a PRNG seeded by `seed` alone.
pub fn plan(tests: &[Weighted], caps: &[Capacity], opts: &PlanOptions) -> Plan {
    let slots = slots(caps);
    let m = opts.shards.unwrap_or(slots.len()).clamp(1, tests.len().max(1));
    let overhead = opts.per_shard_overhead.as_secs_f64();
    let owner = shard_slots(&slots, m);

    let mut order: Vec<usize> = (0..tests.len()).collect();
    let mut rng = SplitMix64::new(opts.seed);
    if opts.shuffle {
        rng.shuffle(&mut order);
        order.sort_by(|&a, &b| tests[b].expected.cmp(&tests[a].expected));
    } else {
        order.sort_by(|&a, &b| {
            tests[b]
                .expected
                .cmp(&tests[a].expected)
                .then_with(|| tests[a].id.cmp(&tests[b].id))
        });
    }

    let groups = serial_groups(tests, opts.serial_groups);
    let mut bins: Vec<Bin> = owner.iter().map(|&slot| Bin::new(slot)).collect();
    let mut finish: Vec<f64> = vec![0.0; slots.len()];
    for &k in &owner {
        finish[k] += overhead;
    }
    // Each bin's current cost, so the hot loop evaluates the model once per candidate.
    let mut cost: Vec<f64> = bins
        .iter()
        .map(|b| slots[b.slot].cost(0.0, 0.0, overhead))
        .collect();
    for &t in &order {
        let d = tests[t].expected.as_secs_f64();
        let mut best = (f64::INFINITY, f64::INFINITY, usize::MAX);
        for (i, b) in bins.iter().enumerate() {
            let new = slots[b.slot].cost(b.sum + d, b.floor_with(d, groups[t]), overhead);
            let end = finish[b.slot] - cost[i] + new;
            // Same finish: spread over the shards of a slot, lowest index first.
            if end < best.0 || (end == best.0 && b.sum < best.1) {
                best = (end, b.sum, i);
            }
        }
        let i = best.2;
        let b = &mut bins[i];
        b.add(t, d, groups[t]);
        let new = slots[b.slot].cost(b.sum, b.floor(), overhead);
        finish[b.slot] += new - cost[i];
        cost[i] = new;
    }
    if opts.shuffle {
        for b in &mut bins {
            rng.shuffle(&mut b.tests);
        }
    }
    assemble(
        tests,
        &slots,
        bins,
        overhead,
        // Fewer shards than slots leave the slowest slots idle: the bound is over the ones
        // that can work (slots are sorted fastest first).
        bound_over(tests, &slots[..m.min(slots.len())], opts.per_shard_overhead),
    )
}

/// Each test's serial group as a small number, or all `None` when groups run beside each
/// other.
pub(crate) fn serial_groups(tests: &[Weighted], serial: bool) -> Vec<Option<usize>> {
    if !serial {
        return vec![None; tests.len()];
    }
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    tests
        .iter()
        .map(|t| {
            let next = index.len();
            Some(*index.entry(t.id.group.as_str()).or_insert(next))
        })
        .collect()
}

/// A shard being filled: its slot, its load and its tests (indexes into the input).
#[derive(Debug, Clone)]
pub(crate) struct Bin {
    pub slot: usize,
    pub sum: f64,
    pub longest: f64,
    /// The largest sum of one serial group's tests.
    pub serial: f64,
    /// Each serial group's sum so far.
    groups: std::collections::HashMap<usize, f64>,
    pub tests: Vec<usize>,
}

impl Bin {
    pub(crate) fn new(slot: usize) -> Self {
        Self {
            slot,
            sum: 0.0,
            longest: 0.0,
            serial: 0.0,
            groups: std::collections::HashMap::new(),
            tests: Vec::new(),
        }
    }

    /// Adds test `t`, expected to take `d`, of serial group `group` (`None`: it runs beside
    /// the others).
    pub(crate) fn add(&mut self, t: usize, d: f64, group: Option<usize>) {
        if let Some(g) = group {
            let sum = self.groups.entry(g).or_insert(0.0);
            *sum += d;
            self.serial = self.serial.max(*sum);
        }
        self.sum += d;
        self.longest = self.longest.max(d);
        self.tests.push(t);
    }

    /// No faster than this on its own: its longest test or its largest serial group.
    pub(crate) fn floor(&self) -> f64 {
        self.longest.max(self.serial)
    }

    /// [`Self::floor`] once a test of `d` in `group` is added.
    fn floor_with(&self, d: f64, group: Option<usize>) -> f64 {
        let serial = group.map_or(0.0, |g| self.groups.get(&g).copied().unwrap_or(0.0) + d);
        self.floor().max(d).max(serial)
    }
}

/// Turns filled bins into a [`Plan`]: empty bins dropped (they would start a container
/// for nothing), predicted times from the model, shards longest first.
pub(crate) fn assemble(
    tests: &[Weighted],
    slots: &[Slot],
    bins: Vec<Bin>,
    overhead: f64,
    lb: Duration,
) -> Plan {
    let mut finish = vec![0.0f64; slots.len()];
    let mut shards: Vec<(f64, usize, Shard)> = Vec::new();
    for (i, b) in bins.into_iter().enumerate() {
        if b.tests.is_empty() {
            continue;
        }
        let slot = &slots[b.slot];
        let cost = slot.cost(b.sum, b.floor(), overhead);
        finish[b.slot] += cost;
        let shard = Shard {
            index: 0,
            host: slot.host.clone(),
            tests: b.tests.iter().map(|&t| tests[t].id.clone()).collect(),
            predicted: secs(cost),
            expected: b
                .tests
                .iter()
                .map(|&t| super::Expected {
                    time: tests[t].expected,
                    estimated: tests[t].estimated,
                })
                .collect(),
        };
        shards.push((cost, i, shard));
    }
    shards.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let shards: Vec<Shard> = shards
        .into_iter()
        .enumerate()
        .map(|(index, (_, _, s))| Shard { index, ..s })
        .collect();
    Plan {
        shards,
        total: secs(tests.iter().map(|t| t.expected.as_secs_f64()).sum()),
        makespan: secs(finish.iter().copied().fold(0.0, f64::max)),
        lower_bound: lb,
        estimated: tests.iter().filter(|t| t.estimated).count(),
    }
}

pub(crate) fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(if s.is_finite() && s > 0.0 { s } else { 0.0 })
}
