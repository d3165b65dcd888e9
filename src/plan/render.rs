//! How a plan and a run's balance look to a person (a table and summary lines) and to a
//! program (stable JSON).

use std::fmt::Write as _;
use std::time::Duration;

use super::Plan;

/// The plan as a table plus summary lines. `overhead` is what each shard costs beyond its
/// tests (container create, upload, start, collect), shown apart so a plan of a few seconds
/// of work in many shards does not look like a slow suite.
pub fn human(plan: &Plan, overhead: Duration) -> String {
    let mut out = String::new();
    let host_w = plan
        .shards
        .iter()
        .map(|s| s.host.as_deref().unwrap_or("-").len())
        .chain(["host".len()])
        .max()
        .unwrap_or(4);
    let _ = writeln!(
        out,
        "{:>5}  {:<host_w$}  {:>6}  {:>8}  {:>8}  {:>9}",
        "shard", "host", "tests", "work", "overhead", "predicted"
    );
    for s in &plan.shards {
        let host = s.host.as_deref().unwrap_or("-");
        let _ = writeln!(
            out,
            "{:>5}  {host:<host_w$}  {:>6}  {:>7.1}s  {:>7.1}s  {:>8.1}s",
            s.index,
            s.tests.len(),
            secs(s.predicted.saturating_sub(overhead)),
            secs(overhead.min(s.predicted)),
            secs(s.predicted)
        );
    }
    let _ = writeln!(
        out,
        "{} test{} in {} shard{}, {:.1}s of work, {:.1}s overhead per shard",
        plan.test_count(),
        if plan.test_count() == 1 { "" } else { "s" },
        plan.shards.len(),
        if plan.shards.len() == 1 { "" } else { "s" },
        secs(plan.total),
        secs(overhead)
    );
    let _ = writeln!(out, "predicted makespan: {:.1}s", secs(plan.makespan));
    let ratio = if plan.lower_bound.is_zero() {
        1.0
    } else {
        secs(plan.makespan) / secs(plan.lower_bound)
    };
    let _ = writeln!(
        out,
        "lower bound:        {:.1}s (makespan / lower bound = {ratio:.2})",
        secs(plan.lower_bound)
    );
    if plan.estimated > 0 {
        let noun = if plan.estimated == 1 { "test" } else { "tests" };
        let _ = writeln!(out, "{} {noun} estimated (no history)", plan.estimated);
    }
    out
}

/// The plan as pretty JSON with a fixed field order and millisecond-rounded seconds, so
/// the same plan always gives the same bytes.
pub fn json(plan: &Plan) -> String {
    let mut s = serde_json::to_string_pretty(plan).expect("a plan serialises");
    s.push('\n');
    s
}

/// One shard after a run: (index, host, predicted, actual).
pub type BalanceRow = (usize, String, Duration, Duration);

/// Predicted against actual seconds per shard, and the balance achieved: the slowest
/// shard over the mean shard (1.00 is perfect).
pub fn balance(rows: &[BalanceRow]) -> String {
    let mut out = String::new();
    let host_w = rows
        .iter()
        .map(|r| r.1.len())
        .chain(["host".len()])
        .max()
        .unwrap_or(4);
    let _ = writeln!(
        out,
        "{:>5}  {:<host_w$}  {:>10}  {:>10}  {:>7}",
        "shard", "host", "predicted", "actual", "error"
    );
    for (i, host, p, a) in rows {
        let err = if p.is_zero() {
            "-".to_string()
        } else {
            format!("{:+.0}%", (secs(*a) / secs(*p) - 1.0) * 100.0)
        };
        let _ = writeln!(
            out,
            "{i:>5}  {host:<host_w$}  {:>9.1}s  {:>9.1}s  {err:>7}",
            secs(*p),
            secs(*a)
        );
    }
    if !rows.is_empty() {
        let actual: Vec<f64> = rows.iter().map(|r| secs(r.3)).collect();
        let max = actual.iter().copied().fold(0.0, f64::max);
        let mean = actual.iter().sum::<f64>() / actual.len() as f64;
        let ratio = if mean > 0.0 { max / mean } else { 1.0 };
        let _ = writeln!(out, "balance (slowest / mean shard): {ratio:.2}");
    }
    out
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}
