//! Expected durations for a run's tests: measured where history has them, estimated
//! from the nearest neighbours where it does not.

use std::collections::BTreeMap;
use std::time::Duration;

use super::History;
use crate::test_result::TestId;

/// A test's expected duration, as history measured it or guessed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// The test.
    pub id: TestId,
    /// How long it is expected to take.
    pub expected: Duration,
    /// Measured by earlier runs; false when guessed from other tests or the default.
    pub known: bool,
}

/// Weighs `tests` by history. A test never seen is assumed to take the mean of the known
/// tests of its group (tests of one binary or package tend to be alike), else the mean of
/// all known tests, else `default`; such tests carry `known: false`. The mean, not the
/// median: the planner adds these up, and in a suite of many quick tests and a few slow
/// ones (rust-sample: median 0.01 s, mean 0.3 s) the median would pack the unknown tests as
/// if they cost nothing, slow ones and all.
pub fn estimate(tests: &[TestId], history: &History, default: Duration) -> Vec<Estimate> {
    let mut by_group: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut all = Vec::with_capacity(history.len());
    for (id, d) in history.iter() {
        by_group
            .entry(id.group.as_str())
            .or_default()
            .push(d.as_secs_f64());
        all.push(d.as_secs_f64());
    }
    let mean = |v: &[f64]| Duration::from_secs_f64(v.iter().sum::<f64>() / v.len() as f64);
    let group_mean: BTreeMap<&str, Duration> = by_group.into_iter().map(|(g, v)| (g, mean(&v))).collect();
    let global = if all.is_empty() { default } else { mean(&all) };
    tests
        .iter()
        .map(|id| match history.expected(id) {
            Some(expected) => Estimate {
                id: id.clone(),
                expected,
                known: true,
            },
            None => Estimate {
                id: id.clone(),
                expected: group_mean.get(id.group.as_str()).copied().unwrap_or(global),
                known: false,
            },
        })
        .collect()
}
