//! The end-of-run summary a person reads: counts, failures with the tail of their output,
//! the slowest tests, per-host load, and how the plan's prediction held up.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use crate::discover::TestStatus;
use crate::plan::Plan;
use crate::run::{AttemptEnd, RunReport};

/// Lines of a failure's output shown in the summary.
const TAIL_LINES: usize = 12;

/// Where the run's files went, for the last lines of the summary.
#[derive(Debug, Clone, Default)]
pub struct Written {
    pub junit: Option<String>,
    pub logs: Option<String>,
    pub html: Option<String>,
    pub history: Option<String>,
}

pub fn render(report: &RunReport, plan: &Plan, written: &Written) -> String {
    let mut out = String::new();
    let failed: Vec<_> = report
        .outcomes
        .iter()
        .filter(|o| o.result.status == TestStatus::Failed)
        .collect();
    let errors: Vec<_> = report
        .outcomes
        .iter()
        .filter(|o| o.result.status == TestStatus::Error)
        .collect();
    for o in failed.iter().chain(errors.iter()) {
        let kind = if o.result.status == TestStatus::Failed {
            "FAIL"
        } else {
            "ERROR"
        };
        let place = match o.shard {
            Some(s) if !o.host.is_empty() => format!(" [shard {s} on {}]", o.host),
            _ => String::new(),
        };
        let _ = writeln!(out, "{kind} {}{place}", o.id());
        if let Some(m) = &o.result.message {
            let _ = writeln!(out, "    {}", one_line(m));
        }
        for line in tail(&o.result.stdout, &o.result.stderr) {
            let _ = writeln!(out, "    | {line}");
        }
    }
    let flaky: Vec<_> = report.outcomes.iter().filter(|o| o.is_flaky()).collect();
    for o in &flaky {
        let _ = writeln!(
            out,
            "FLAKY {} (passed on attempt {})",
            o.id(),
            o.earlier.len() + 1
        );
    }
    if !out.is_empty() {
        out.push('\n');
    }

    let mut slow: Vec<_> = report
        .outcomes
        .iter()
        .filter(|o| matches!(o.result.status, TestStatus::Passed | TestStatus::Failed))
        .collect();
    slow.sort_by(|a, b| b.result.duration.cmp(&a.result.duration).then(a.id().cmp(b.id())));
    if !slow.is_empty() {
        let _ = writeln!(out, "Slowest tests:");
        for o in slow.iter().take(10) {
            let _ = writeln!(out, "  {:>8}  {}", secs(o.result.duration), o.id());
        }
        out.push('\n');
    }

    // Per host: shards run, busy time, utilisation of its slots over the wall time.
    let mut hosts: BTreeMap<&str, (usize, Duration, usize)> = BTreeMap::new();
    for a in &report.attempts {
        let e = hosts.entry(a.host.as_str()).or_default();
        e.0 += 1;
        e.1 += a.finished.saturating_sub(a.started);
        e.2 = e.2.max(a.slot + 1);
    }
    if !hosts.is_empty() {
        let _ = writeln!(out, "{:<12} {:>6} {:>10} {:>6}", "host", "shards", "busy", "util");
        for (host, (shards, busy, slots)) in &hosts {
            let util = busy.as_secs_f64() / (report.wall.as_secs_f64() * *slots as f64).max(1e-9);
            let _ = writeln!(
                out,
                "{:<12} {:>6} {:>10} {:>5.0}%",
                host,
                shards,
                secs(*busy),
                util * 100.0
            );
        }
        for (host, reason) in &report.lost_hosts {
            let _ = writeln!(out, "{host:<12} lost: {reason}");
        }
        out.push('\n');
    }

    // Prediction against what happened, for first attempts of planned shards.
    let actual: Vec<(Duration, Duration)> = report
        .attempts
        .iter()
        .filter(|a| !a.rerun && a.attempt == 1 && matches!(a.end, AttemptEnd::Exited(_)))
        .map(|a| (a.predicted, a.finished.saturating_sub(a.started)))
        .collect();
    if !actual.is_empty() {
        let max = actual.iter().map(|a| a.1).max().unwrap_or_default();
        let mean = actual.iter().map(|a| a.1).sum::<Duration>() / actual.len() as u32;
        let _ = writeln!(
            out,
            "Plan: predicted makespan {}, lower bound {}; actual wall {}; shard balance max/mean {:.2}",
            secs(plan.makespan),
            secs(plan.lower_bound),
            secs(report.wall),
            max.as_secs_f64() / mean.as_secs_f64().max(1e-9)
        );
    }

    let _ = writeln!(
        out,
        "{} passed, {} failed, {} flaky, {} skipped, {} errors in {} ({} tests, {} shards{})",
        report.count(TestStatus::Passed),
        failed.len(),
        flaky.len(),
        report.count(TestStatus::Skipped),
        errors.len(),
        secs(report.wall),
        report.outcomes.len(),
        plan.shards.len(),
        if report.interrupted { ", interrupted" } else { "" },
    );
    for (what, path) in [
        ("JUnit", &written.junit),
        ("logs", &written.logs),
        ("report", &written.html),
        ("history", &written.history),
    ] {
        if let Some(p) = path {
            let _ = writeln!(out, "  {what}: {p}");
        }
    }
    for k in &report.kept {
        match &k.docker_host {
            Some(dh) => {
                let _ = writeln!(out, "  kept: {} on {} (DOCKER_HOST={dh})", k.container, k.host);
            }
            None => {
                let _ = writeln!(out, "  kept: {} on {}", k.container, k.host);
            }
        }
    }
    if !report.kept.is_empty() {
        // A kept container has exited, so `docker exec` cannot enter it; its output, its files
        // and a shell in a copy of it can be had.
        let _ = writeln!(
            out,
            "  reach one with that DOCKER_HOST: docker logs NAME; docker cp NAME:/cargo-shard DIR; \
             docker commit NAME dbg && docker run -it --rm --entrypoint sh dbg"
        );
        let _ = writeln!(out, "  remove them with `cargo shard gc --run {}`", report.run_id);
    }
    for (host, reason) in &report.cleanup_failed {
        let _ = writeln!(
            out,
            "  not cleaned up on {host} ({reason}): run `cargo shard gc --run {}` once it is back",
            report.run_id
        );
    }
    out
}

fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

fn one_line(s: &str) -> String {
    let first = s.lines().next().unwrap_or("").trim();
    let mut line: String = first.chars().filter(|c| !c.is_control()).take(200).collect();
    if s.lines().count() > 1 || first.chars().count() > 200 {
        line.push('…');
    }
    line
}

/// The last lines of a test's output, stripped of escape sequences and control bytes.
fn tail(stdout: &str, stderr: &str) -> Vec<String> {
    let all: Vec<String> = stdout
        .lines()
        .chain(stderr.lines())
        .map(strip_control)
        .filter(|l| !l.trim().is_empty())
        .collect();
    all[all.len().saturating_sub(TAIL_LINES)..].to_vec()
}

/// Removes ANSI escape sequences and other control characters so the summary is plain text.
pub fn strip_control(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // CSI: parameters and intermediates, then one final byte in @..~.
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        if c == '\t' || !c.is_control() {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::{TestId, TestResult};
    use crate::engine::Phases;
    use crate::plan::Shard;
    use crate::run::{Outcome, ShardAttempt};

    fn outcome(name: &str, status: TestStatus, ms: u64, shard: usize, host: &str) -> Outcome {
        Outcome {
            result: TestResult {
                id: TestId::new("sample::it", name),
                status,
                duration: Duration::from_millis(ms),
                message: (status == TestStatus::Failed)
                    .then(|| "assertion failed: left == right\nmore".into()),
                stdout: if status == TestStatus::Failed {
                    "line 1\n\x1b[31mred <&>\x1b[0m\n".into()
                } else {
                    String::new()
                },
                stderr: String::new(),
            },
            earlier: Vec::new(),
            shard: Some(shard),
            host: host.into(),
            container: format!("c{shard}"),
        }
    }

    fn attempt(shard: usize, host: &str, slot: usize, start: u64, end: u64) -> ShardAttempt {
        ShardAttempt {
            shard,
            attempt: 1,
            host: host.into(),
            slot,
            container: format!("c{shard}"),
            tests: 2,
            predicted: Duration::from_millis(end - start),
            started: Duration::from_millis(start),
            finished: Duration::from_millis(end),
            phases: Phases::default(),
            end: AttemptEnd::Exited(Some(0)),
            log: format!("logs/{shard}.log").into(),
            rerun: false,
        }
    }

    #[test]
    fn summary_layout() {
        let mut flaky = outcome("flaky", TestStatus::Passed, 300, 1, "e2");
        flaky
            .earlier
            .push(outcome("flaky", TestStatus::Failed, 300, 0, "e1").result);
        let report = RunReport {
            run_id: "r1".into(),
            outcomes: vec![
                outcome("a", TestStatus::Passed, 1200, 0, "e1"),
                outcome("b", TestStatus::Failed, 800, 0, "e1"),
                outcome("c", TestStatus::Skipped, 0, 1, "e2"),
                flaky,
            ],
            attempts: vec![attempt(0, "e1", 0, 0, 2000), attempt(1, "e2", 0, 100, 1500)],
            wall: Duration::from_millis(2100),
            lost_hosts: vec![("e3".into(), "connection refused".into())],
            interrupted: false,
            kept: Vec::new(),
            cleanup_failed: Vec::new(),
        };
        let plan = Plan {
            shards: vec![
                Shard {
                    index: 0,
                    host: Some("e1".into()),
                    tests: vec![],
                    predicted: Duration::from_secs(2),
                },
                Shard {
                    index: 1,
                    host: Some("e2".into()),
                    tests: vec![],
                    predicted: Duration::from_secs(1),
                },
            ],
            total: Duration::from_secs(3),
            makespan: Duration::from_secs(2),
            lower_bound: Duration::from_millis(1500),
            estimated: 0,
        };
        let written = Written {
            junit: Some("target/shard/junit.xml".into()),
            ..Default::default()
        };
        insta::assert_snapshot!(render(&report, &plan, &written));
    }

    #[test]
    fn strips_escapes_and_control_bytes() {
        assert_eq!(strip_control("\x1b[1;31mred\x1b[0m\x01 ok\t!"), "red ok\t!");
    }
}
