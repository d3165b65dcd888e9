//! The end-of-run summary a person reads: counts, failures with the tail of their output and
//! where they ran, the slowest tests, per-host load, how the plan's prediction held up, and
//! where the files went.

use std::fmt::Write;
use std::time::Duration;

use super::stats::{self, SLOWEST};
use super::style::Paint;
use crate::discover::TestStatus;
use crate::plan::Plan;
use crate::run::RunReport;

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

/// The run's first line: the shards and the hosts the plan actually put them on.
pub fn header(plan: &Plan) -> String {
    let hosts: std::collections::BTreeSet<&str> =
        plan.shards.iter().filter_map(|s| s.host.as_deref()).collect();
    format!(
        "{} shard{} on {} host{}",
        plan.shards.len(),
        if plan.shards.len() == 1 { "" } else { "s" },
        hosts.len(),
        if hosts.len() == 1 { "" } else { "s" }
    )
}

pub fn render(report: &RunReport, plan: &Plan, written: &Written, paint: Paint) -> String {
    let mut out = String::new();
    for o in stats::failures(report) {
        let kind = if o.result.status == TestStatus::Failed {
            "FAIL"
        } else {
            "ERROR"
        };
        let place = match o.shard {
            Some(s) if !o.host.is_empty() => format!(" [shard {s} on {}]", o.host),
            _ => String::new(),
        };
        let _ = writeln!(out, "{} {}{place}", paint.fail(kind), o.id());
        if let Some(m) = &o.result.message {
            let _ = writeln!(out, "    {}", one_line(m));
        }
        for line in stats::output_tail(&o.result.stdout, &o.result.stderr, TAIL_LINES) {
            let _ = writeln!(out, "    {}", paint.dim(&format!("| {line}")));
        }
    }
    let flaky: Vec<_> = report.outcomes.iter().filter(|o| o.is_flaky()).collect();
    for o in &flaky {
        let _ = writeln!(
            out,
            "{} {} (passed on attempt {}, shard {} on {})",
            paint.warn("FLAKY"),
            o.id(),
            o.earlier.len() + 1,
            o.shard.map(|s| s.to_string()).unwrap_or("-".into()),
            if o.host.is_empty() { "-" } else { &o.host },
        );
    }
    if !out.is_empty() {
        out.push('\n');
    }

    let slow = stats::slowest(report, SLOWEST);
    if !slow.is_empty() {
        let _ = writeln!(out, "{}", paint.bold(&format!("Slowest {} tests:", slow.len())));
        for o in slow {
            let _ = writeln!(out, "  {:>8}  {}  [{}]", secs(o.result.duration), o.id(), o.host);
        }
        out.push('\n');
    }

    let loads = stats::host_loads(report);
    if !loads.is_empty() || !report.lost_hosts.is_empty() {
        let w = loads
            .iter()
            .map(|l| l.host.len())
            .chain(report.lost_hosts.iter().map(|(h, _)| h.len()))
            .chain(["host".len()])
            .max()
            .unwrap_or(4);
        let _ = writeln!(
            out,
            "{:<w$}  {:>5}  {:>6}  {:>9}  {:>5}",
            "host", "slots", "shards", "busy", "util"
        );
        let lost = |host: &str| {
            report
                .lost_hosts
                .iter()
                .filter(|(h, _)| h == host)
                .map(|(_, reason)| format!("  {}", paint.warn(&format!("lost: {reason}"))))
                .collect::<String>()
        };
        for l in &loads {
            let _ = writeln!(
                out,
                "{:<w$}  {:>5}  {:>6}  {:>9}  {:>4.0}%{}",
                l.host,
                l.slots,
                l.shards,
                secs(l.busy),
                l.utilisation * 100.0,
                lost(&l.host),
            );
        }
        for (host, reason) in &report.lost_hosts {
            if !loads.iter().any(|l| &l.host == host) {
                let _ = writeln!(out, "{host:<w$}  {}", paint.warn(&format!("lost: {reason}")));
            }
        }
        out.push('\n');
    }

    let rows = stats::balance_rows(report);
    if !rows.is_empty() {
        out.push_str(&crate::plan::render::balance(&rows));
        let actual = stats::makespan(report);
        let _ = writeln!(
            out,
            "makespan: predicted {}, actual {} ({}); lower bound {}",
            secs(plan.makespan),
            secs(actual),
            relative(actual, plan.makespan),
            secs(plan.lower_bound),
        );
        out.push('\n');
    }

    let failed = report.count(TestStatus::Failed);
    let errors = report.count(TestStatus::Error);
    let hosts_used = loads.len();
    let _ = writeln!(
        out,
        "{}, {}, {}, {}, {} in {} ({} tests, {} shards on {} host{}{})",
        paint.count(report.count(TestStatus::Passed), "passed", Paint::pass),
        paint.count(failed, "failed", Paint::fail),
        paint.count(report.flaky(), "flaky", Paint::warn),
        report.count(TestStatus::Skipped).to_string() + " skipped",
        paint.count(errors, "errors", Paint::fail),
        secs(report.wall),
        report.outcomes.len(),
        plan.shards.len(),
        hosts_used,
        if hosts_used == 1 { "" } else { "s" },
        if report.interrupted { ", interrupted" } else { "" },
    );
    for (what, path) in [
        ("JUnit", &written.junit),
        ("report", &written.html),
        ("logs", &written.logs),
        ("history", &written.history),
    ] {
        if let Some(p) = path {
            let _ = writeln!(out, "  {what:<8}{p}");
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
        if let Some(net) = &k.network {
            let _ = writeln!(
                out,
                "        with services {} on network {net}",
                k.services.join(", ")
            );
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

/// `actual` against `predicted` as a signed percentage.
fn relative(actual: Duration, predicted: Duration) -> String {
    if predicted.is_zero() {
        return "no prediction".into();
    }
    format!(
        "{:+.0}% against the plan",
        (actual.as_secs_f64() / predicted.as_secs_f64() - 1.0) * 100.0
    )
}

fn one_line(s: &str) -> String {
    let first = stats::strip_control(s.lines().next().unwrap_or("").trim());
    let mut line: String = first.chars().take(200).collect();
    if s.lines().count() > 1 || first.chars().count() > 200 {
        line.push('…');
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample::sample;

    #[test]
    fn summary_layout() {
        let (report, plan, written) = sample();
        insta::assert_snapshot!(render(&report, &plan, &written, Paint::PLAIN));
    }

    #[test]
    fn header_counts_the_hosts_the_plan_uses() {
        let (_, mut plan, _) = sample();
        assert_eq!(header(&plan), "3 shards on 3 hosts");
        plan.shards[2].host = Some("e1".into());
        assert_eq!(header(&plan), "3 shards on 2 hosts");
        plan.shards.truncate(1);
        assert_eq!(header(&plan), "1 shard on 1 host");
    }

    #[test]
    fn colour_marks_status_words_only_when_enabled() {
        let (report, plan, written) = sample();
        let plain = render(&report, &plan, &written, Paint::PLAIN);
        assert!(!plain.contains('\x1b'), "{plain}");
        let coloured = render(&report, &plan, &written, Paint { enabled: true });
        assert!(
            coloured.contains("\x1b[1;31mFAIL\x1b[0m sample::it b"),
            "{coloured}"
        );
        assert!(coloured.contains("\x1b[33mFLAKY\x1b[0m"), "{coloured}");
        assert!(coloured.contains("\x1b[1;31m1 failed\x1b[0m"), "{coloured}");
        let stripped: Vec<String> = coloured.lines().map(super::stats::strip_control).collect();
        assert_eq!(stripped, plain.lines().collect::<Vec<_>>());
    }
}
