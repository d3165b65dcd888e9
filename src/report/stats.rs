//! Figures the terminal summary and the HTML report both show, computed once from a run:
//! failures, slowest tests, per-host load, predicted against actual shard times, and the
//! readable tail of a test's output.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::plan::render::BalanceRow;
use crate::run::{AttemptEnd, Outcome, RunReport};
use crate::test_result::TestStatus;

/// How many of the slowest tests the reports list.
pub const SLOWEST: usize = 10;

/// Failed tests first, then errors, each in report order.
pub fn failures(report: &RunReport) -> Vec<&Outcome> {
    let of = |status| report.outcomes.iter().filter(move |o| o.result.status == status);
    of(TestStatus::Failed).chain(of(TestStatus::Error)).collect()
}

/// The `n` longest tests that ran (passed or failed), longest first, ties by id.
pub fn slowest(report: &RunReport, n: usize) -> Vec<&Outcome> {
    let mut slow: Vec<_> = report
        .outcomes
        .iter()
        .filter(|o| matches!(o.result.status, TestStatus::Passed | TestStatus::Failed))
        .collect();
    slow.sort_by(|a, b| b.result.duration.cmp(&a.result.duration).then(a.id().cmp(b.id())));
    slow.truncate(n);
    slow
}

/// One host's share of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct HostLoad {
    /// The host's name in the hosts file.
    pub host: String,
    /// Slots that ran at least one container.
    pub slots: usize,
    /// Containers started (retries and re-runs included).
    pub shards: usize,
    /// Container lifetimes added up, create to remove.
    pub busy: Duration,
    /// `busy` over what `slots` could have done in the run's wall time.
    pub utilisation: f64,
}

/// Each host's slots, containers and busy time from the run's attempts, by host name.
pub fn host_loads(report: &RunReport) -> Vec<HostLoad> {
    // Slots that ran something, by index: which of a host's slots took a lone shard is
    // a race between them, and must not change the count.
    let mut hosts: BTreeMap<&str, (usize, Duration, std::collections::BTreeSet<usize>)> = BTreeMap::new();
    for a in &report.attempts {
        let e = hosts.entry(a.host.as_str()).or_default();
        e.0 += 1;
        e.1 += a.finished.saturating_sub(a.started);
        e.2.insert(a.slot);
    }
    hosts
        .into_iter()
        .map(|(host, (shards, busy, used))| HostLoad {
            host: host.to_string(),
            slots: used.len(),
            shards,
            busy,
            utilisation: busy.as_secs_f64() / (report.wall.as_secs_f64() * used.len() as f64).max(1e-9),
        })
        .collect()
}

/// Predicted against actual time for the first attempt of every planned shard that ran to
/// the end: retries and re-runs were never in the plan, and a broken attempt says nothing
/// about the prediction.
pub fn balance_rows(report: &RunReport) -> Vec<BalanceRow> {
    let mut rows: Vec<BalanceRow> = report
        .attempts
        .iter()
        .filter(|a| !a.rerun && a.attempt == 1 && matches!(a.end, AttemptEnd::Exited(_)))
        .map(|a| {
            (
                a.shard,
                a.host.clone(),
                a.predicted,
                a.finished.saturating_sub(a.started),
            )
        })
        .collect();
    rows.sort_by_key(|r| r.0);
    rows
}

/// When the last container was removed, from the start of the run.
pub fn makespan(report: &RunReport) -> Duration {
    report
        .attempts
        .iter()
        .map(|a| a.finished)
        .max()
        .unwrap_or_default()
}

/// The last `n` meaningful lines of a test's output: escape sequences and control bytes
/// removed, blank lines and the Rust test harness's own bookkeeping (`running 1 test`,
/// `test result: …`, the `failures:` name list) dropped, since they repeat what the report
/// already says.
pub fn output_tail(stdout: &str, stderr: &str, n: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut in_names = false;
    for raw in stdout.lines().chain(stderr.lines()) {
        let line = strip_control(raw);
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if in_names && line.starts_with("    ") && !trimmed.contains(' ') {
            continue;
        }
        in_names = trimmed == "failures:";
        if is_harness_chatter(trimmed) {
            continue;
        }
        lines.push(line.trim_end().to_string());
    }
    lines.split_off(lines.len().saturating_sub(n))
}

fn is_harness_chatter(line: &str) -> bool {
    let running = line
        .strip_prefix("running ")
        .and_then(|r| r.strip_suffix(" tests").or_else(|| r.strip_suffix(" test")))
        .is_some_and(|n| n.parse::<u64>().is_ok());
    let verdict = line.starts_with("test ")
        && [" ... ok", " ... FAILED", " ... ignored"]
            .iter()
            .any(|v| line.contains(v));
    let stdout_header = line.starts_with("---- ") && line.ends_with(" ----");
    running
        || verdict
        || stdout_header
        || line == "failures:"
        || line == "successes:"
        || line.starts_with("test result: ")
}

/// Removes ANSI escape sequences and other control characters so the text is plain.
pub fn strip_control(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            crate::junit::skip_escape_sequence(&mut chars);
        } else if c == '\t' || !c.is_control() {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_escapes_and_control_bytes() {
        assert_eq!(strip_control("\x1b[1;31mred\x1b[0m\x01 ok\t!"), "red ok\t!");
        assert_eq!(
            strip_control("\x1b]8;;http://x\x07link\x1b]8;;\x1b\\ end"),
            "link end"
        );
        assert_eq!(strip_control("\x1b(Bcharset\x1b7 saved\x1b"), "charset saved");
    }

    #[test]
    fn tail_drops_harness_chatter_and_keeps_the_story() {
        let stdout = "\nrunning 1 test\ntest it::fails ... FAILED\n\nfailures:\n\n---- it::fails stdout ----\nmy own line\n\nfailures:\n    it::fails\n\ntest result: FAILED. 0 passed; 1 failed\n";
        let stderr = "thread 'x' panicked at a.rs:1:1:\n\x1b[31mboom\x1b[0m\n    indented detail\n";
        assert_eq!(
            output_tail(stdout, stderr, 12),
            [
                "my own line",
                "thread 'x' panicked at a.rs:1:1:",
                "boom",
                "    indented detail"
            ]
        );
        assert_eq!(output_tail(stdout, stderr, 2), ["boom", "    indented detail"]);
    }

    #[test]
    fn tail_keeps_go_output() {
        let out = "=== RUN   TestX\n    x_test.go:9: want 1, got 2\n--- FAIL: TestX (0.00s)\n";
        assert_eq!(
            output_tail(out, "", 12),
            [
                "=== RUN   TestX",
                "    x_test.go:9: want 1, got 2",
                "--- FAIL: TestX (0.00s)"
            ]
        );
    }
}
