//! `report.html`: one self-contained page (inline CSS and SVG, no scripts, no network) with a
//! Gantt timeline of every shard attempt per host slot and its phases, predicted against
//! actual shard times, per-host load, failures and the slowest tests.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::time::Duration;

use super::meta::RunMeta;
use super::stats::{self, SLOWEST, strip_control};
use super::style::plural;
use crate::plan::Plan;
use crate::run::{AttemptEnd, RunReport, ShardAttempt};
use crate::test_result::TestStatus;

const ROW_HEIGHT: f64 = 30.0;
const BAR_HEIGHT: f64 = 22.0;
const LABEL_WIDTH: f64 = 110.0;
const CHART_WIDTH: f64 = 960.0;
const AXIS_HEIGHT: f64 = 24.0;
/// Room above the rows for the prediction's label.
const TOP: f64 = 18.0;
/// Lines of a failure's output kept in the page (the logs hold all of it).
const FAILURE_LINES: usize = 200;
/// The page's whole stylesheet: inline, so the page needs nothing else.
const STYLE: &str = r#":root { --fg: #1d2330; --dim: #6b7280; --line: #e5e7eb; --bg: #fff; --code: #f3f4f6;
  --pass: #16a34a; --fail: #dc2626; --infra: #9333ea; --timeout: #ea580c; --cancel: #9ca3af; --flaky: #ca8a04; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px 32px; color: var(--fg); background: var(--bg); }
h1 { font-size: 20px; margin: 0 0 8px; } h2 { font-size: 16px; margin: 28px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, monospace; }
.dim { color: var(--dim); } .facts span { margin-right: 18px; }
.chip { display: inline-block; padding: 0 7px; border-radius: 9px; color: #fff; font-size: 12px; font-weight: 600; margin-right: 6px; }
.chip.pass { background: var(--pass); } .chip.fail { background: var(--fail); } .chip.infra { background: var(--infra); }
.chip.timeout { background: var(--timeout); } .chip.cancel, .chip.zero, .chip.skip { background: var(--cancel); } .chip.flaky { background: var(--flaky); }
.chip.phase { color: #fff; } .chip.create { background: #475569; } .chip.upload { background: #2563eb; } .chip.collect { background: #0891b2; }
svg.timeline { display: block; max-width: 100%; height: auto; }
svg text { font: 12px system-ui, sans-serif; fill: var(--fg); } svg .axis { fill: var(--dim); font-size: 11px; }
.grid { stroke: var(--line); } .row { stroke: var(--line); stroke-dasharray: 2 3; }
.predicted { stroke: var(--fg); stroke-width: 1.5; stroke-dasharray: 6 4; }
.bar .body { fill: var(--pass); } .bar.fail .body { fill: var(--fail); } .bar.infra .body { fill: var(--infra); }
.bar.timeout .body { fill: var(--timeout); } .bar.cancel .body { fill: var(--cancel); }
.bar .num { fill: #fff; font-weight: 600; }
.phase.create, .phase.start, .phase.remove { fill: #475569; } .phase.upload { fill: #2563eb; } .phase.collect { fill: #0891b2; }
.bar:hover .body { opacity: .85; }
table { border-collapse: collapse; margin: 4px 0; } td, th { padding: 3px 12px 3px 0; text-align: left; border-bottom: 1px solid var(--line); }
th { font-weight: 600; color: var(--dim); } table.num td, .r { font-variant-numeric: tabular-nums; }
.meter { display: inline-block; width: 80px; height: 8px; background: var(--line); border-radius: 4px; vertical-align: middle; }
.meter span { display: block; height: 8px; background: var(--pass); border-radius: 4px; }
details.failure { margin: 8px 0; } details summary { cursor: pointer; } .msg { margin: 4px 0 4px 18px; }
pre { background: var(--code); padding: 8px 10px; overflow-x: auto; font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; margin: 4px 0 4px 18px; }
a { color: #2563eb; }
"#;

fn esc(s: &str) -> String {
    let s = strip_control(s);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The CSS class saying how an attempt ended: failed when a test it reported last on
/// failed or its runner exited non-zero, else passed, or why the container broke.
fn result_class(a: &ShardAttempt, failed: &BTreeSet<usize>) -> &'static str {
    match &a.end {
        AttemptEnd::Exited(Some(0)) if !failed.contains(&a.shard) => "pass",
        AttemptEnd::Exited(_) => "fail",
        AttemptEnd::Failed(_) => "infra",
        AttemptEnd::TimedOut => "timeout",
        AttemptEnd::Cancelled => "cancel",
    }
}

/// Shards (each re-run has its own index) whose tests' final results include a failure.
fn failed_shards(report: &RunReport) -> BTreeSet<usize> {
    report
        .outcomes
        .iter()
        .filter(|o| matches!(o.result.status, TestStatus::Failed | TestStatus::Error))
        .filter_map(|o| o.shard)
        .collect()
}

/// A round step for the time axis: about six ticks across.
fn axis_step(end: f64) -> f64 {
    let raw = end / 6.0;
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
        .max(0.001)
}

/// One row of the timeline: a host slot that ran something, or a lost host that ran nothing.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Row {
    host: String,
    slot: Option<usize>,
}

/// The chart's geometry: seconds to pixels and the rows' height.
struct Chart {
    end: f64,
    scale: f64,
    height: f64,
}

fn svg_timeline(report: &RunReport, plan: &Plan) -> String {
    let rows = timeline_rows(report);
    let end = stats::makespan(report)
        .max(report.wall)
        .max(plan.makespan)
        .max(Duration::from_millis(1))
        .as_secs_f64();
    let chart = Chart {
        end,
        scale: CHART_WIDTH / end,
        height: ROW_HEIGHT * rows.len() as f64,
    };
    let failed = failed_shards(report);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="shard timeline">"#,
        w = LABEL_WIDTH + CHART_WIDTH + 20.0,
        h = TOP + chart.height + AXIS_HEIGHT,
    );
    // Grid and axis first so bars draw over them.
    axis(&mut svg, &chart);
    row_labels(&mut svg, &rows);
    for a in &report.attempts {
        let row = rows
            .iter()
            .position(|r| r.host == a.host && r.slot == Some(a.slot))
            .unwrap_or(0);
        svg.push_str(&bar(a, row, chart.scale, result_class(a, &failed)));
    }
    // The prediction goes on top of the bars, labelled in the margin above them.
    if !plan.makespan.is_zero() {
        prediction(&mut svg, plan.makespan, &chart);
    }
    svg.push_str("</svg>");
    svg
}

fn timeline_rows(report: &RunReport) -> Vec<Row> {
    let mut rows: Vec<Row> = report
        .attempts
        .iter()
        .map(|a| Row {
            host: a.host.clone(),
            slot: Some(a.slot),
        })
        .collect();
    rows.sort();
    rows.dedup();
    for (host, _) in &report.lost_hosts {
        if !rows.iter().any(|r| &r.host == host) {
            rows.push(Row {
                host: host.clone(),
                slot: None,
            });
        }
    }
    rows
}

/// Vertical grid lines with their times underneath, at round steps.
fn axis(svg: &mut String, chart: &Chart) {
    let step = axis_step(chart.end);
    let mut t = 0.0;
    while t <= chart.end + 1e-9 {
        let x = LABEL_WIDTH + t * chart.scale;
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{bottom}"/><text class="axis" x="{x:.1}" y="{ay}" text-anchor="middle">{t}s</text>"#,
            bottom = TOP + chart.height,
            ay = TOP + chart.height + 16.0,
            t = trim_float(t),
        );
        t += step;
    }
}

fn row_labels(svg: &mut String, rows: &[Row]) {
    for (i, row) in rows.iter().enumerate() {
        let y = TOP + i as f64 * ROW_HEIGHT;
        let label = match row.slot {
            Some(s) => format!("{} · slot {s}", esc(&row.host)),
            None => format!("{} · lost", esc(&row.host)),
        };
        let _ = write!(
            svg,
            r#"<text class="label" x="4" y="{ty}">{label}</text><line class="row" x1="{LABEL_WIDTH}" x2="{x2}" y1="{ly}" y2="{ly}"/>"#,
            ty = y + ROW_HEIGHT / 2.0 + 4.0,
            x2 = LABEL_WIDTH + CHART_WIDTH,
            ly = y + ROW_HEIGHT,
        );
    }
}

/// The predicted makespan as a dashed line, its label kept inside the chart at the right edge.
fn prediction(svg: &mut String, makespan: Duration, chart: &Chart) {
    let x = LABEL_WIDTH + makespan.as_secs_f64() * chart.scale;
    let _ = write!(
        svg,
        r#"<g class="plan"><title>predicted makespan {p:.2}s</title><line class="predicted" x1="{x:.1}" x2="{x:.1}" y1="{top}" y2="{bottom}"/><text class="axis" x="{x:.1}" y="{ty}" text-anchor="{anchor}">predicted {p:.1}s</text></g>"#,
        anchor = if x > LABEL_WIDTH + CHART_WIDTH * 0.92 {
            "end"
        } else {
            "middle"
        },
        p = makespan.as_secs_f64(),
        top = TOP - 2.0,
        bottom = TOP + chart.height,
        ty = TOP - 5.0,
    );
}

/// One attempt: a body in its result's colour from container create to remove, with the
/// create/upload/start phases before the run and collect/remove after it drawn over it.
fn bar(a: &ShardAttempt, row: usize, scale: f64, class: &str) -> String {
    let y = TOP + row as f64 * ROW_HEIGHT + (ROW_HEIGHT - BAR_HEIGHT) / 2.0;
    let x0 = LABEL_WIDTH + a.started.as_secs_f64() * scale;
    let span = a.finished.saturating_sub(a.started);
    let w = (span.as_secs_f64() * scale).max(2.0);
    let p = &a.phases;
    let title = format!(
        "shard {} attempt {}{} on {} slot {}: {} {} in {:.2}s (predicted {:.2}s); create {:.2}s, upload {:.2}s, start {:.2}s, run {:.2}s, collect {:.2}s, remove {:.2}s; {}",
        a.shard,
        a.attempt,
        if a.rerun { " (re-run of failed tests)" } else { "" },
        a.host,
        a.slot,
        a.tests,
        plural(a.tests, "test"),
        span.as_secs_f64(),
        a.predicted.as_secs_f64(),
        p.create.as_secs_f64(),
        p.upload.as_secs_f64(),
        p.start.as_secs_f64(),
        p.run.as_secs_f64(),
        p.collect.as_secs_f64(),
        p.remove.as_secs_f64(),
        end_text(&a.end),
    );
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<g class="bar {class}" data-shard="{}" data-attempt="{}" data-host="{}"><title>{}</title><rect class="body" x="{x0:.1}" y="{y:.1}" width="{w:.1}" height="{BAR_HEIGHT}" rx="3"/>"#,
        a.shard,
        a.attempt,
        esc(&a.host),
        esc(&title),
    );
    let phases = [
        ("create", p.create),
        ("upload", p.upload),
        ("start", p.start),
        ("run", p.run),
        ("collect", p.collect),
        ("remove", p.remove),
    ];
    let mut x = x0;
    for (name, d) in phases {
        let pw = (d.as_secs_f64() * scale).min(x0 + w - x);
        if name != "run" && pw >= 0.5 {
            let _ = write!(
                out,
                r#"<rect class="phase {name}" x="{x:.1}" y="{y:.1}" width="{pw:.1}" height="{BAR_HEIGHT}"/>"#
            );
        }
        x += pw.max(0.0);
    }
    let label = if a.attempt > 1 {
        format!("#{} try {}", a.shard, a.attempt)
    } else if a.rerun {
        format!("#{} re-run", a.shard)
    } else {
        format!("#{} · {} tests", a.shard, a.tests)
    };
    let fits = label.chars().count() as f64 * 7.0 + 10.0 < w;
    let label = if fits { label } else { format!("{}", a.shard) };
    if w > 16.0 {
        let _ = write!(
            out,
            r#"<text class="num" x="{:.1}" y="{:.1}">{}</text>"#,
            x0 + 12.0,
            y + BAR_HEIGHT / 2.0 + 4.0,
            esc(&label)
        );
    }
    out.push_str("</g>");
    out
}

fn end_text(end: &AttemptEnd) -> String {
    match end {
        AttemptEnd::Exited(code) => format!("exit {}", code.map(|c| c.to_string()).unwrap_or("?".into())),
        AttemptEnd::Failed(r) => format!("failed: {r}"),
        AttemptEnd::TimedOut => "timed out".into(),
        AttemptEnd::Cancelled => "cancelled".into(),
    }
}

/// `2`, `0.5`, `12.5` rather than `2.0000000001`.
fn trim_float(t: f64) -> String {
    let s = format!("{t:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn shards_table(report: &RunReport, failed: &BTreeSet<usize>) -> String {
    let mut attempts: Vec<&ShardAttempt> = report.attempts.iter().collect();
    attempts.sort_by_key(|a| (a.rerun, a.shard, a.attempt));
    let mut t = String::from(
        "<table class=num><tr><th>shard</th><th>try</th><th>host</th><th>tests</th><th>predicted</th><th>actual</th><th>error</th><th>upload</th><th>run</th><th>collect</th><th>result</th><th>log</th></tr>",
    );
    for a in attempts {
        let actual = a.finished.saturating_sub(a.started);
        let error = if a.predicted.is_zero() || a.rerun || a.attempt > 1 {
            "–".to_string()
        } else {
            format!(
                "{:+.0}%",
                (actual.as_secs_f64() / a.predicted.as_secs_f64() - 1.0) * 100.0
            )
        };
        let log = a
            .log
            .file_name()
            .map(|f| {
                let f = esc(&f.to_string_lossy());
                format!("<a href=\"logs/{f}\">{f}</a>")
            })
            .unwrap_or_default();
        let _ = write!(
            t,
            "<tr><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{:.2}s</td><td>{:.2}s</td><td>{error}</td><td>{:.2}s</td><td>{:.2}s</td><td>{:.2}s</td><td><span class=\"chip {}\">{}</span></td><td>{log}</td></tr>",
            a.shard,
            a.attempt,
            if a.rerun { " re-run" } else { "" },
            esc(&a.host),
            a.tests,
            a.predicted.as_secs_f64(),
            actual.as_secs_f64(),
            a.phases.upload.as_secs_f64(),
            a.phases.run.as_secs_f64(),
            a.phases.collect.as_secs_f64(),
            result_class(a, failed),
            esc(&end_text(&a.end)),
        );
    }
    t.push_str("</table>");
    t
}

fn hosts_table(report: &RunReport) -> String {
    let mut t = String::from(
        "<table class=num><tr><th>host</th><th>slots</th><th>shards</th><th>busy</th><th>utilisation</th></tr>",
    );
    for l in stats::host_loads(report) {
        let pct = (l.utilisation * 100.0).clamp(0.0, 100.0);
        let _ = write!(
            t,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.2}s</td><td><span class=meter><span style=\"width:{pct:.0}%\"></span></span> {pct:.0}%</td></tr>",
            esc(&l.host),
            l.slots,
            l.shards,
            l.busy.as_secs_f64(),
        );
    }
    for (host, reason) in &report.lost_hosts {
        let _ = write!(
            t,
            "<tr><td>{}</td><td colspan=4><span class=\"chip infra\">lost</span> {}</td></tr>",
            esc(host),
            esc(reason)
        );
    }
    t.push_str("</table>");
    t
}

fn failures_html(report: &RunReport) -> String {
    let mut out = String::new();
    for o in stats::failures(report) {
        let word = if o.result.status == TestStatus::Failed {
            "FAIL"
        } else {
            "ERROR"
        };
        let lines = stats::output_tail(&o.result.stdout, &o.result.stderr, FAILURE_LINES);
        let _ = write!(
            out,
            "<details class=failure open><summary><span class=\"chip fail\">{word}</span> <b>{}</b> <span class=dim>shard {} on {}</span></summary><p class=msg>{}</p><pre>{}</pre></details>",
            esc(&o.id().to_string()),
            o.shard.map(|s| s.to_string()).unwrap_or("–".into()),
            esc(if o.host.is_empty() { "–" } else { &o.host }),
            esc(o
                .result
                .message
                .as_deref()
                .and_then(|m| m.lines().next())
                .unwrap_or("")),
            lines.iter().map(|l| esc(l)).collect::<Vec<_>>().join("\n"),
        );
    }
    for o in report.outcomes.iter().filter(|o| o.is_flaky()) {
        let _ = write!(
            out,
            "<p><span class=\"chip flaky\">FLAKY</span> <b>{}</b> <span class=dim>passed on attempt {}, shard {} on {}</span></p>",
            esc(&o.id().to_string()),
            o.earlier.len() + 1,
            o.shard.map(|s| s.to_string()).unwrap_or("–".into()),
            esc(&o.host),
        );
    }
    if out.is_empty() {
        out.push_str("<p>None.</p>");
    }
    out
}

fn slowest_table(report: &RunReport) -> String {
    let mut t =
        String::from("<table><tr><th class=r>seconds</th><th>test</th><th>shard</th><th>host</th></tr>");
    for o in stats::slowest(report, SLOWEST) {
        let _ = write!(
            t,
            "<tr><td class=r>{:.2}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            o.result.duration.as_secs_f64(),
            esc(&o.id().to_string()),
            o.shard.map(|s| s.to_string()).unwrap_or("–".into()),
            esc(&o.host)
        );
    }
    t.push_str("</table>");
    t
}

/// The report's header line about the run itself: when, what version, which commit, how.
fn meta_html(meta: &RunMeta) -> String {
    let commit = match &meta.commit {
        Some(c) => format!("<span>commit <code>{}</code></span>", esc(c)),
        None => "<span>no git commit</span>".to_string(),
    };
    format!(
        "<p class=\"meta dim\"><span>started <time datetime=\"{at}\">{at}</time></span><span>cargo-shard {version}</span>{commit}</p>\n<p class=\"cmd dim\">command <code>{cmd}</code></p>",
        at = esc(&meta.at(Duration::ZERO)),
        version = esc(&meta.version),
        cmd = esc(&meta.command),
    )
}

/// `report.html` for a run: the timeline of every shard attempt per host slot, predicted against
/// actual times, load, failures and the slowest tests.
pub fn render(report: &RunReport, plan: &Plan, meta: &RunMeta) -> String {
    let failed = failed_shards(report);
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>cargo-shard run {run}</title>
<style>
{STYLE}</style></head><body>
<h1>cargo-shard run <code>{run}</code></h1>
{meta}
{counts}
{facts}
<h2>Timeline</h2>
<p class="legend"><span class="chip pass">passed</span><span class="chip fail">failed</span><span class="chip infra">infrastructure</span><span class="chip timeout">timed out</span><span class="chip cancel">cancelled</span>
<span class="dim">phases:</span> <span class="chip phase create">create / start / remove</span><span class="chip phase upload">upload</span><span class="chip phase collect">collect</span><span class="dim">run in the result's colour; dashed line: predicted makespan; hover a bar for its times</span></p>
{svg}
<h2>Failures</h2>
{failures}
<h2>Slowest tests</h2>
{slowest}
<h2>Shards: predicted against actual</h2>
{shards_table}
<h2>Hosts</h2>
{hosts_table}
</body></html>
"#,
        run = esc(&report.run_id),
        meta = meta_html(meta),
        counts = counts_html(report),
        facts = facts_html(report, plan),
        svg = svg_timeline(report, plan),
        failures = failures_html(report),
        slowest = slowest_table(report),
        shards_table = shards_table(report, &failed),
        hosts_table = hosts_table(report),
    )
}

/// One chip per result, greyed when none had it.
fn counts_html(report: &RunReport) -> String {
    let count = |n: usize, word: &str, class: &str| {
        let class = if n == 0 { "zero" } else { class };
        format!("<span class=\"chip {class}\">{n} {word}</span>")
    };
    let errors = report.count(TestStatus::Error);
    format!(
        "<p class=\"counts\">{passed}{failed}{flaky}{skipped}{errors}{interrupted}</p>",
        passed = count(report.count(TestStatus::Passed), "passed", "pass"),
        failed = count(report.count(TestStatus::Failed), "failed", "fail"),
        flaky = count(report.flaky(), "flaky", "flaky"),
        skipped = count(report.count(TestStatus::Skipped), "skipped", "skip"),
        errors = count(errors, &plural(errors, "error"), "fail"),
        interrupted = if report.interrupted {
            "<span class=\"chip cancel\">interrupted</span>"
        } else {
            ""
        },
    )
}

/// The run's size and times in one line.
fn facts_html(report: &RunReport, plan: &Plan) -> String {
    let tests = report.outcomes.len();
    let shards = plan.shards.len();
    let hosts = stats::host_loads(report).len();
    format!(
        r#"<p class="facts dim"><span>{tests} {tests_word} in {shards} {shards_word} on {hosts} {hosts_word}</span><span>wall {wall:.2}s</span><span>makespan {actual:.2}s, predicted {pred:.2}s, lower bound {lb:.2}s</span><span>balance (slowest / mean shard) {balance}</span></p>"#,
        tests_word = plural(tests, "test"),
        shards_word = plural(shards, "shard"),
        hosts_word = plural(hosts, "host"),
        wall = report.wall.as_secs_f64(),
        actual = stats::makespan(report).as_secs_f64(),
        pred = plan.makespan.as_secs_f64(),
        lb = plan.lower_bound.as_secs_f64(),
        balance = balance(report),
    )
}

/// The slowest first attempt of a shard over the mean one, or a dash when none ended.
fn balance(report: &RunReport) -> String {
    let rows = stats::balance_rows(report);
    if rows.is_empty() {
        return "–".to_string();
    }
    let actual: Vec<f64> = rows.iter().map(|r| r.3.as_secs_f64()).collect();
    let mean = actual.iter().sum::<f64>() / actual.len() as f64;
    format!(
        "{:.2}",
        actual.iter().copied().fold(0.0, f64::max) / mean.max(1e-9)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::meta::sample_meta;
    use crate::report::sample::sample;

    /// The class lists of every `<g class="bar …">`, in document order.
    fn bar_classes(html: &str) -> Vec<&str> {
        html.match_indices("<g class=\"bar ")
            .map(|(i, m)| {
                let rest = &html[i + m.len()..];
                &rest[..rest.find('"').unwrap()]
            })
            .collect()
    }

    #[test]
    fn one_bar_per_attempt_coloured_by_how_it_ended() {
        let (report, plan, _) = sample();
        let html = render(&report, &plan, &sample_meta());
        // shard 0 ran a failing test; shard 1 passed; shard 2 lost its host, then its retry
        // reported an error; the re-run shard 3 passed.
        assert_eq!(bar_classes(&html), ["fail", "pass", "infra", "fail", "pass"]);
        assert!(html.contains(r#"data-shard="2" data-attempt="2" data-host="e2""#));
        for row in [
            "e1 · slot 0",
            "e1 · slot 1",
            "e2 · slot 0",
            "e2 · slot 1",
            "e3 · slot 0",
        ] {
            assert!(html.contains(&format!(">{row}</text>")), "row {row}");
        }
        assert!(html.contains("predicted 1.8s"), "the plan's makespan is marked");
        assert!(html.contains(r#"<a href="logs/2.log">2.log</a>"#));
    }

    #[test]
    fn phases_are_drawn_in_order_inside_the_bar() {
        let (mut report, plan, _) = sample();
        let a = &mut report.attempts[0];
        a.phases = crate::engine::Phases {
            create: Duration::from_millis(100),
            upload: Duration::from_millis(300),
            start: Duration::from_millis(100),
            run: Duration::from_millis(1300),
            collect: Duration::from_millis(150),
            remove: Duration::from_millis(50),
        };
        let html = render(&report, &plan, &sample_meta());
        let x = |class: &str| -> f64 {
            let pattern = format!(r#"class="phase {class}" x=""#);
            let at = html.find(&pattern).expect(class) + pattern.len();
            html[at..].split('"').next().unwrap().parse().unwrap()
        };
        let order = [x("create"), x("upload"), x("start"), x("collect"), x("remove")];
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
        assert!(
            !html.contains(r#"class="phase run""#),
            "the run is the bar's own colour"
        );
    }

    #[test]
    fn output_is_escaped_and_plain() {
        let (mut report, plan, _) = sample();
        report.outcomes[1].result.id.name = "<script>alert(1)</script>".into();
        let html = render(&report, &plan, &sample_meta());
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains('\x1b'));
        assert!(
            html.contains("line 1\nred &lt;&amp;&gt;\nthread"),
            "lines kept, markup escaped"
        );
        assert!(!html.contains("test result: FAILED"), "harness chatter dropped");
    }

    #[test]
    fn axis_steps_are_round() {
        assert_eq!(axis_step(12.5), 5.0);
        assert_eq!(axis_step(60.0), 10.0);
        assert_eq!(axis_step(0.9), 0.2);
        assert_eq!(trim_float(0.6000000001), "0.6");
        assert_eq!(trim_float(10.0), "10");
    }

    #[test]
    fn escapes_markup_and_control_bytes() {
        assert_eq!(esc("<b>\"&'\x1b[31m"), "&lt;b&gt;&quot;&amp;&#39;");
    }
}
