//! The partitioning schemes nextest offers (`--partition count:/hash:/slice:`) and plain
//! contiguous chunks, scored with the planner's cost model. For the benchmark only: none
//! of them looks at durations, which is the point of comparing against them.

use std::time::Duration;

use super::lpt::{Bin, assemble, lower_bound, serial_groups, shard_slots, slots};
use super::{Capacity, Plan, PlanOptions, Weighted};

/// A duration-blind way to split tests into `m` buckets. `tests` are in listing order
/// (binary id / package, then name, as nextest and `go test -list` give them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// nextest `count:`: round-robin by position, counted within each binary.
    Count,
    /// nextest `hash:`: a hash of binary id and name, modulo m (FNV-1a here, xxHash64 in
    /// nextest: both spread names uniformly, which is all that matters for balance).
    Hash,
    /// nextest `slice:`: round-robin by position across all binaries.
    Slice,
    /// Contiguous chunks of the listing (`split`-style CI scripts).
    Contiguous,
}

impl Baseline {
    /// Every baseline, in the order the benchmark table shows them.
    pub const ALL: [Baseline; 4] = [
        Baseline::Count,
        Baseline::Hash,
        Baseline::Slice,
        Baseline::Contiguous,
    ];

    /// nextest's word for it (`count`, `hash`, `slice`), or `contiguous`.
    pub fn name(self) -> &'static str {
        match self {
            Baseline::Count => "count",
            Baseline::Hash => "hash",
            Baseline::Slice => "slice",
            Baseline::Contiguous => "contiguous",
        }
    }
}

/// Bucket index of every test.
pub fn partition(tests: &[Weighted], m: usize, how: Baseline) -> Vec<usize> {
    let m = m.max(1);
    let n = tests.len();
    match how {
        Baseline::Slice => (0..n).map(|i| i % m).collect(),
        Baseline::Contiguous => (0..n).map(|i| i * m / n.max(1)).collect(),
        Baseline::Hash => tests
            .iter()
            .map(|t| {
                (crate::hash::fnv1a(&[t.id.group.as_bytes(), b"\0", t.id.name.as_bytes()]) % m as u64)
                    as usize
            })
            .collect(),
        Baseline::Count => {
            let mut pos: std::collections::HashMap<&str, usize> = Default::default();
            tests
                .iter()
                .map(|t| {
                    let k = pos.entry(t.id.group.as_str()).or_insert(0);
                    *k += 1;
                    (*k - 1) % m
                })
                .collect()
        }
    }
}

/// Plans with a baseline: buckets as [`partition`] makes them, shard `i` on the slot the
/// planner would give shard `i`, scored with the same cost model as [`super::plan`].
pub fn plan_with(tests: &[Weighted], caps: &[Capacity], opts: &PlanOptions, how: Baseline) -> Plan {
    let slots = slots(caps);
    let m = opts.shards.unwrap_or(slots.len()).clamp(1, tests.len().max(1));
    let owner = shard_slots(&slots, m);
    let groups = serial_groups(tests, opts.serial_groups);
    let mut bins: Vec<Bin> = owner.iter().map(|&s| Bin::new(s)).collect();
    for (t, bucket) in partition(tests, m, how).into_iter().enumerate() {
        bins[bucket].add(t, tests[t].expected.as_secs_f64(), groups[t]);
    }
    let overhead: Duration = opts.per_shard_overhead;
    assemble(
        tests,
        &slots,
        bins,
        overhead.as_secs_f64(),
        lower_bound(tests, caps, overhead),
    )
}
