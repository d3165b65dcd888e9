//! The end-of-run summary a person reads: counts, failures with the tail of their output and
//! where they ran, the slowest tests, per-host load, how the plan's prediction held up, and
//! where the files went.

use std::fmt::Write;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::stats::{self, SLOWEST};
use super::style::{Paint, plural};
use crate::plan::Plan;
use crate::run::{Kept, Outcome, RunReport};
use crate::test_result::TestStatus;

/// Lines of a failure's output shown in the summary.
const TAIL_LINES: usize = 12;

/// `summary.json`'s version: it changes when a field is removed or changes meaning.
pub const SUMMARY_VERSION: u32 = 1;

/// Where the run's files went, for the last lines of the summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Written {
    pub junit: Option<String>,
    pub logs: Option<String>,
    pub html: Option<String>,
    pub history: Option<String>,
}

/// Everything the summary shows, computed once from a run. The run writes it as
/// `summary.json`; `cargo shard show` reads it back and renders the same text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub format_version: u32,
    pub run_id: String,
    pub failures: Vec<Failure>,
    pub flaky: Vec<Flaky>,
    pub slowest: Vec<Slow>,
    pub hosts: Vec<HostRow>,
    /// Hosts lost or left out, with the reason.
    pub lost_hosts: Vec<(String, String)>,
    /// Predicted against actual seconds per planned shard: (index, host, predicted, actual).
    pub balance: Vec<(usize, String, f64, f64)>,
    pub makespan: Makespan,
    pub counts: Counts,
    pub written: Written,
    pub kept: Vec<KeptRow>,
    pub cleanup_failed: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// `FAIL` or `ERROR`.
    pub kind: String,
    pub group: String,
    pub name: String,
    pub shard: Option<usize>,
    pub host: String,
    pub message: Option<String>,
    /// The readable tail of its output.
    pub tail: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flaky {
    pub group: String,
    pub name: String,
    pub attempts: usize,
    pub shard: Option<usize>,
    pub host: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slow {
    pub group: String,
    pub name: String,
    pub duration: f64,
    pub host: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostRow {
    pub host: String,
    pub slots: usize,
    pub shards: usize,
    pub busy: f64,
    pub utilisation: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Makespan {
    pub predicted: f64,
    pub actual: f64,
    pub lower_bound: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub flaky: usize,
    pub skipped: usize,
    pub errors: usize,
    pub tests: usize,
    pub shards: usize,
    pub hosts_used: usize,
    pub wall: f64,
    pub interrupted: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeptRow {
    pub host: String,
    pub container: String,
    pub docker_host: Option<String>,
    pub services: Vec<String>,
    pub network: Option<String>,
}

impl Failure {
    fn of(o: &Outcome) -> Self {
        Failure {
            kind: if o.result.status == TestStatus::Failed {
                "FAIL"
            } else {
                "ERROR"
            }
            .into(),
            group: o.id().group.clone(),
            name: o.id().name.clone(),
            shard: o.shard,
            host: o.host.clone(),
            message: o.result.message.clone(),
            tail: stats::output_tail(&o.result.stdout, &o.result.stderr, TAIL_LINES),
        }
    }
}

impl Flaky {
    fn of(o: &Outcome) -> Self {
        Flaky {
            group: o.id().group.clone(),
            name: o.id().name.clone(),
            attempts: o.earlier.len() + 1,
            shard: o.shard,
            host: o.host.clone(),
        }
    }
}

impl Slow {
    fn of(o: &Outcome) -> Self {
        Slow {
            group: o.id().group.clone(),
            name: o.id().name.clone(),
            duration: o.result.duration.as_secs_f64(),
            host: o.host.clone(),
        }
    }
}

impl HostRow {
    fn of(l: stats::HostLoad) -> Self {
        HostRow {
            host: l.host,
            slots: l.slots,
            shards: l.shards,
            busy: l.busy.as_secs_f64(),
            utilisation: l.utilisation,
        }
    }
}

impl Counts {
    fn of(report: &RunReport, plan: &Plan, hosts_used: usize) -> Self {
        Counts {
            passed: report.count(TestStatus::Passed),
            failed: report.count(TestStatus::Failed),
            flaky: report.flaky(),
            skipped: report.count(TestStatus::Skipped),
            errors: report.count(TestStatus::Error),
            tests: report.outcomes.len(),
            shards: plan.shards.len(),
            hosts_used,
            wall: report.wall.as_secs_f64(),
            interrupted: report.interrupted,
        }
    }
}

impl KeptRow {
    fn of(k: &Kept) -> Self {
        KeptRow {
            host: k.host.clone(),
            container: k.container.clone(),
            docker_host: k.docker_host.clone(),
            services: k.services.clone(),
            network: k.network.clone(),
        }
    }
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

/// The summary of a finished run, as text.
pub fn render(report: &RunReport, plan: &Plan, written: &Written, paint: Paint) -> String {
    Summary::of(report, plan, written).render(paint)
}

impl Summary {
    pub fn of(report: &RunReport, plan: &Plan, written: &Written) -> Self {
        let hosts: Vec<HostRow> = stats::host_loads(report).into_iter().map(HostRow::of).collect();
        Summary {
            format_version: SUMMARY_VERSION,
            run_id: report.run_id.clone(),
            failures: stats::failures(report).into_iter().map(Failure::of).collect(),
            flaky: report
                .outcomes
                .iter()
                .filter(|o| o.is_flaky())
                .map(Flaky::of)
                .collect(),
            slowest: stats::slowest(report, SLOWEST)
                .into_iter()
                .map(Slow::of)
                .collect(),
            lost_hosts: report.lost_hosts.clone(),
            balance: stats::balance_rows(report)
                .into_iter()
                .map(|(i, h, p, a)| (i, h, p.as_secs_f64(), a.as_secs_f64()))
                .collect(),
            makespan: Makespan {
                predicted: plan.makespan.as_secs_f64(),
                actual: stats::makespan(report).as_secs_f64(),
                lower_bound: plan.lower_bound.as_secs_f64(),
            },
            counts: Counts::of(report, plan, hosts.len()),
            hosts,
            written: written.clone(),
            kept: report.kept.iter().map(KeptRow::of).collect(),
            cleanup_failed: report.cleanup_failed.clone(),
        }
    }

    pub fn render(&self, paint: Paint) -> String {
        let mut out = self.render_failures(paint);
        if !out.is_empty() {
            out.push('\n');
        }
        self.render_slowest(&mut out, paint);
        self.render_hosts(&mut out, paint);
        self.render_balance(&mut out);
        self.render_counts(&mut out, paint);
        self.render_files(&mut out);
        out
    }

    /// Only the failures, flaky tests and the count line (`cargo shard show --failures`).
    pub fn render_failures_only(&self, paint: Paint) -> String {
        let mut out = self.render_failures(paint);
        if !out.is_empty() {
            out.push('\n');
        }
        self.render_counts(&mut out, paint);
        out
    }

    fn render_failures(&self, paint: Paint) -> String {
        let mut out = String::new();
        for f in &self.failures {
            let place = match f.shard {
                Some(s) if !f.host.is_empty() => format!(" [shard {s} on {}]", f.host),
                _ => String::new(),
            };
            let _ = writeln!(out, "{} {}{place}", paint.fail(&f.kind), id(&f.group, &f.name));
            if let Some(m) = &f.message {
                let _ = writeln!(out, "    {}", one_line(m));
            }
            for line in &f.tail {
                let _ = writeln!(out, "    {}", paint.dim(&format!("| {line}")));
            }
        }
        for f in &self.flaky {
            let _ = writeln!(
                out,
                "{} {} (passed on attempt {}, shard {} on {})",
                paint.warn("FLAKY"),
                id(&f.group, &f.name),
                f.attempts,
                f.shard.map(|s| s.to_string()).unwrap_or("-".into()),
                if f.host.is_empty() { "-" } else { &f.host },
            );
        }
        out
    }

    fn render_slowest(&self, out: &mut String, paint: Paint) {
        if self.slowest.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "{}",
            paint.bold(&format!("Slowest {} tests:", self.slowest.len()))
        );
        for o in &self.slowest {
            let _ = writeln!(
                out,
                "  {:>8}  {}  [{}]",
                secs(Duration::from_secs_f64(o.duration)),
                id(&o.group, &o.name),
                o.host
            );
        }
        out.push('\n');
    }

    fn render_hosts(&self, out: &mut String, paint: Paint) {
        if self.hosts.is_empty() && self.lost_hosts.is_empty() {
            return;
        }
        let w = self
            .hosts
            .iter()
            .map(|l| l.host.len())
            .chain(self.lost_hosts.iter().map(|(h, _)| h.len()))
            .chain(["host".len()])
            .max()
            .unwrap_or(4);
        let _ = writeln!(
            out,
            "{:<w$}  {:>5}  {:>6}  {:>9}  {:>5}",
            "host", "slots", "shards", "busy", "util"
        );
        let lost = |host: &str| {
            self.lost_hosts
                .iter()
                .filter(|(h, _)| h == host)
                .map(|(_, reason)| format!("  {}", paint.warn(&format!("lost: {reason}"))))
                .collect::<String>()
        };
        for l in &self.hosts {
            let _ = writeln!(
                out,
                "{:<w$}  {:>5}  {:>6}  {:>9}  {:>4.0}%{}",
                l.host,
                l.slots,
                l.shards,
                secs(Duration::from_secs_f64(l.busy)),
                l.utilisation * 100.0,
                lost(&l.host),
            );
        }
        for (host, reason) in &self.lost_hosts {
            if !self.hosts.iter().any(|l| &l.host == host) {
                let _ = writeln!(out, "{host:<w$}  {}", paint.warn(&format!("lost: {reason}")));
            }
        }
        out.push('\n');
    }

    fn render_balance(&self, out: &mut String) {
        if self.balance.is_empty() {
            return;
        }
        let rows: Vec<crate::plan::render::BalanceRow> = self
            .balance
            .iter()
            .map(|(i, h, p, a)| {
                (
                    *i,
                    h.clone(),
                    Duration::from_secs_f64(*p),
                    Duration::from_secs_f64(*a),
                )
            })
            .collect();
        out.push_str(&crate::plan::render::balance(&rows));
        let m = &self.makespan;
        let (predicted, actual) = (
            Duration::from_secs_f64(m.predicted),
            Duration::from_secs_f64(m.actual),
        );
        let _ = writeln!(
            out,
            "makespan: predicted {}, actual {} ({}); lower bound {}",
            secs(predicted),
            secs(actual),
            relative(actual, predicted),
            secs(Duration::from_secs_f64(m.lower_bound)),
        );
        out.push('\n');
    }

    fn render_counts(&self, out: &mut String, paint: Paint) {
        let c = &self.counts;
        let _ = writeln!(
            out,
            "{}, {}, {}, {}, {} in {} ({} {}, {} {} on {} {}{})",
            paint.count(c.passed, "passed", Paint::pass),
            paint.count(c.failed, "failed", Paint::fail),
            paint.count(c.flaky, "flaky", Paint::warn),
            c.skipped.to_string() + " skipped",
            paint.count(c.errors, &plural(c.errors, "error"), Paint::fail),
            secs(Duration::from_secs_f64(c.wall)),
            c.tests,
            plural(c.tests, "test"),
            c.shards,
            plural(c.shards, "shard"),
            c.hosts_used,
            plural(c.hosts_used, "host"),
            if c.interrupted { ", interrupted" } else { "" },
        );
    }

    fn render_files(&self, out: &mut String) {
        let w = &self.written;
        for (what, path) in [
            ("JUnit", &w.junit),
            ("report", &w.html),
            ("logs", &w.logs),
            ("history", &w.history),
        ] {
            if let Some(p) = path {
                let _ = writeln!(out, "  {what:<8}{p}");
            }
        }
        for k in &self.kept {
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
        if !self.kept.is_empty() {
            // A kept container has exited, so `docker exec` cannot enter it; its output, its
            // files and a shell in a copy of it can be had.
            let _ = writeln!(
                out,
                "  reach one with that DOCKER_HOST: docker logs NAME; docker cp NAME:/cargo-shard DIR; \
                 docker commit NAME dbg && docker run -it --rm --entrypoint sh dbg"
            );
            let _ = writeln!(out, "  remove them with `cargo shard gc --run {}`", self.run_id);
        }
        for (host, reason) in &self.cleanup_failed {
            let _ = writeln!(
                out,
                "  not cleaned up on {host} ({reason}): run `cargo shard gc --run {}` once it is back",
                self.run_id
            );
        }
    }
}

/// A test as the summary names it: `group name`, or the bare name when it has no group.
fn id(group: &str, name: &str) -> String {
    crate::test_result::TestId::new(group, name).to_string()
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
