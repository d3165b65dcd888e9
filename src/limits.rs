//! Bounds on every number a user, a hosts file, a history or a JUnit file hands us, so a typo
//! or a hostile file gets one clear line instead of a panic, an overflow or gigabytes of memory.

#![warn(missing_docs)]

use std::time::Duration;

/// Slots (containers at once) per host: memory and threads grow with slots, never with tests.
pub const MAX_SLOTS: usize = 1024;
/// Tests one container runs at once (nextest `-j`, Go `-test.parallel`).
pub const MAX_JOBS: usize = 1024;
/// Shards in one plan (`--shards`); the planner holds one bin per shard.
pub const MAX_SHARDS: usize = 100_000;
/// The longest duration a test, a history sample or a JUnit `time` may claim: a week.
pub const MAX_SECS: f64 = 7.0 * 24.0 * 3600.0;
/// The largest memory limit Docker takes (its field is a signed 64-bit byte count).
pub const MAX_MEMORY: u64 = i64::MAX as u64;

/// `secs` when it is a duration we can plan with: finite, not negative, at most [`MAX_SECS`].
pub fn sane_secs(secs: f64) -> Option<f64> {
    (secs.is_finite() && (0.0..=MAX_SECS).contains(&secs)).then_some(secs)
}

/// A duration from seconds that were checked (or clamped) first: never panics.
pub fn duration(secs: f64) -> Duration {
    Duration::from_secs_f64(sane_secs(secs).unwrap_or(if secs > 0.0 { MAX_SECS } else { 0.0 }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_finite_non_negative_durations_up_to_a_week_are_sane() {
        assert_eq!(sane_secs(1.5), Some(1.5));
        assert_eq!(sane_secs(0.0), Some(0.0));
        assert_eq!(sane_secs(MAX_SECS), Some(MAX_SECS));
        for bad in [-1.0, 1e19, 1e20, f64::INFINITY, f64::NAN, MAX_SECS + 1.0] {
            assert_eq!(sane_secs(bad), None, "{bad}");
        }
        assert_eq!(duration(1e300), Duration::from_secs_f64(MAX_SECS));
        assert_eq!(duration(f64::NAN), Duration::ZERO);
        assert_eq!(duration(-3.0), Duration::ZERO);
    }
}
