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
    /// The merged JUnit report's path, if one was written.
    pub junit: Option<String>,
    /// The directory of per-shard logs.
    pub logs: Option<String>,
    /// The HTML timeline's path.
    pub html: Option<String>,
    /// The history file the run updated.
    pub history: Option<String>,
}

/// Everything the summary shows, computed once from a run. The run writes it as
/// `summary.json`; `cargo shard show` reads it back and renders the same text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// [`SUMMARY_VERSION`] when written, so `show` can refuse a file it cannot read.
    pub format_version: u32,
    /// The run's id, as its containers are labelled.
    pub run_id: String,
    /// Failed and errored tests, each with where it ran and its output's tail.
    pub failures: Vec<Failure>,
    /// Tests that failed and then passed on a retry.
    pub flaky: Vec<Flaky>,
    /// The longest tests that ran, longest first.
    pub slowest: Vec<Slow>,
    /// Each host's share of the run.
    pub hosts: Vec<HostRow>,
    /// Hosts lost or left out, with the reason.
    pub lost_hosts: Vec<(String, String)>,
    /// Predicted against actual seconds per planned shard: (index, host, predicted, actual).
    pub balance: Vec<(usize, String, f64, f64)>,
    /// How the plan's predicted wall time compared with the real one.
    pub makespan: Makespan,
    /// How many tests ended each way, and the run's size and wall time.
    pub counts: Counts,
    /// Where the run's files went.
    pub written: Written,
    /// Containers kept by `--keep-containers`, with how to reach them.
    pub kept: Vec<KeptRow>,
    /// Hosts whose containers could not all be removed, with the reason: leftovers for `gc`.
    pub cleanup_failed: Vec<(String, String)>,
}

/// A failed or errored test as the summary lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// `FAIL` or `ERROR`.
    pub kind: String,
    /// The test's group (binary id or Go package).
    pub group: String,
    /// The test's name inside its group.
    pub name: String,
    /// The planned shard it ran in; `None` for a test that never reached one.
    pub shard: Option<usize>,
    /// The host it ran on.
    pub host: String,
    /// The runner's one-line reason.
    pub message: Option<String>,
    /// The readable tail of its output.
    pub tail: Vec<String>,
}

/// A test that failed and then passed when re-run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flaky {
    /// The test's group (binary id or Go package).
    pub group: String,
    /// The test's name inside its group.
    pub name: String,
    /// How many runs it took to pass.
    pub attempts: usize,
    /// The planned shard it ran in.
    pub shard: Option<usize>,
    /// The host it ran on.
    pub host: String,
}

/// One of the slowest tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slow {
    /// The test's group (binary id or Go package).
    pub group: String,
    /// The test's name inside its group.
    pub name: String,
    /// How long it took, in seconds.
    pub duration: f64,
    /// The host it ran on.
    pub host: String,
}

/// One host's line of the load table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostRow {
    /// The host's name in the hosts file.
    pub host: String,
    /// Slots that ran at least one container.
    pub slots: usize,
    /// Containers started there, retries included.
    pub shards: usize,
    /// Container lifetimes added up, in seconds.
    pub busy: f64,
    /// `busy` over what its slots could have done in the run's wall time, 0 to 1.
    pub utilisation: f64,
}

/// The plan's prediction against what happened, in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Makespan {
    /// The planned longest shard.
    pub predicted: f64,
    /// When the last container was removed, from the start of the run.
    pub actual: f64,
    /// No plan could finish sooner: `max(total / capacity, longest test)`.
    pub lower_bound: f64,
}

/// The count line: how many tests ended each way, and the run's size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Tests that passed (flaky ones not included).
    pub passed: usize,
    /// Tests that failed on every attempt.
    pub failed: usize,
    /// Tests that passed only on a retry.
    pub flaky: usize,
    /// Tests not run: ignored, skipped by the test itself, or cut off by an interrupt.
    pub skipped: usize,
    /// Tests that never reported a result (lost shard, crash, timeout).
    pub errors: usize,
    /// Tests listed in all.
    pub tests: usize,
    /// Shards planned.
    pub shards: usize,
    /// Hosts that ran at least one shard.
    pub hosts_used: usize,
    /// The run's wall time in seconds.
    pub wall: f64,
    /// Ctrl-C or SIGTERM stopped the run; the tests it did not reach are skipped.
    pub interrupted: bool,
}

/// A container kept by `--keep-containers`, and how to reach it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeptRow {
    /// The host it is on.
    pub host: String,
    /// The container's name.
    pub container: String,
    /// The `DOCKER_HOST` value that reaches its engine (`None` for local processes).
    pub docker_host: Option<String>,
    /// The shard's service containers, kept with it.
    pub services: Vec<String>,
    /// Their private network.
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
    /// Computes the summary of a finished run, and where its files went.
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

    /// The summary as printed after a run: failures first, then the counts and facts.
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
