//! `report.html`: one self-contained page (inline CSS and SVG, no scripts, no network) with
//! a Gantt timeline of every shard attempt per host slot, its phases, failures and the
//! slowest tests.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use super::summary::strip_control;
use crate::discover::TestStatus;
use crate::plan::Plan;
use crate::run::{AttemptEnd, RunReport, ShardAttempt};

const ROW_HEIGHT: f64 = 26.0;
const LABEL_WIDTH: f64 = 120.0;
const CHART_WIDTH: f64 = 900.0;

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

fn color(a: &ShardAttempt, failed_shards: &BTreeMap<(usize, u32), bool>) -> &'static str {
    match &a.end {
        AttemptEnd::Exited(_) if failed_shards.get(&(a.shard, a.attempt)).copied().unwrap_or(false) => "fail",
        AttemptEnd::Exited(_) => "pass",
        AttemptEnd::Failed(_) => "infra",
        AttemptEnd::TimedOut => "timeout",
        AttemptEnd::Cancelled => "cancel",
    }
}

pub fn render(report: &RunReport, plan: &Plan) -> String {
    // Rows: one per (host, slot) that ran something.
    let mut rows: Vec<(String, usize)> = report.attempts.iter().map(|a| (a.host.clone(), a.slot)).collect();
    rows.sort();
    rows.dedup();
    let end = report
        .attempts
        .iter()
        .map(|a| a.finished)
        .max()
        .unwrap_or_default()
        .max(report.wall)
        .max(Duration::from_millis(1));
    let scale = CHART_WIDTH / end.as_secs_f64();
    let failed_shards: BTreeMap<(usize, u32), bool> = report
        .outcomes
        .iter()
        .filter_map(|o| o.shard.map(|s| ((s, 1 + o.earlier.len() as u32), o.result.status)))
        .fold(BTreeMap::new(), |mut m, (k, status)| {
            let bad = matches!(status, TestStatus::Failed | TestStatus::Error);
            *m.entry(k).or_insert(false) |= bad;
            m
        });

    let height = ROW_HEIGHT * rows.len() as f64 + 30.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" role="img" aria-label="shard timeline">"#,
        w = LABEL_WIDTH + CHART_WIDTH + 10.0
    );
    for (i, (host, slot)) in rows.iter().enumerate() {
        let y = i as f64 * ROW_HEIGHT;
        let _ = write!(
            svg,
            r#"<text class="label" x="4" y="{ty}">{} #{slot}</text><line class="grid" x1="{LABEL_WIDTH}" x2="{x2}" y1="{ly}" y2="{ly}"/>"#,
            esc(host),
            ty = y + 17.0,
            x2 = LABEL_WIDTH + CHART_WIDTH,
            ly = y + ROW_HEIGHT,
        );
    }
    for a in &report.attempts {
        let row = rows.iter().position(|r| r.0 == a.host && r.1 == a.slot).unwrap_or(0);
        let y = row as f64 * ROW_HEIGHT + 3.0;
        let x = LABEL_WIDTH + a.started.as_secs_f64() * scale;
        let w = (a.finished.saturating_sub(a.started).as_secs_f64() * scale).max(2.0);
        let p = &a.phases;
        let setup = (p.create + p.upload + p.start).as_secs_f64() * scale;
        let teardown = (p.collect + p.remove).as_secs_f64() * scale;
        let class = color(a, &failed_shards);
        let title = format!(
            "shard {} attempt {} on {} slot {}: {} tests, {:.2}s (predicted {:.2}s); create {:.2}s, upload {:.2}s, start {:.2}s, run {:.2}s, collect {:.2}s, remove {:.2}s; {:?}",
            a.shard,
            a.attempt,
            a.host,
            a.slot,
            a.tests,
            a.finished.saturating_sub(a.started).as_secs_f64(),
            a.predicted.as_secs_f64(),
            p.create.as_secs_f64(),
            p.upload.as_secs_f64(),
            p.start.as_secs_f64(),
            p.run.as_secs_f64(),
            p.collect.as_secs_f64(),
            p.remove.as_secs_f64(),
            a.end,
        );
        let _ = write!(
            svg,
            r#"<g class="bar {class}" data-shard="{shard}" data-attempt="{attempt}"><title>{title}</title><rect class="body" x="{x:.1}" y="{y:.1}" width="{w:.1}" height="20" rx="3"/>"#,
            shard = a.shard,
            attempt = a.attempt,
            title = esc(&title),
        );
        if setup > 0.5 {
            let _ = write!(svg, r#"<rect class="setup" x="{x:.1}" y="{y:.1}" width="{:.1}" height="20"/>"#, setup.min(w));
        }
        if teardown > 0.5 {
            let tw = teardown.min(w);
            let _ = write!(svg, r#"<rect class="teardown" x="{:.1}" y="{y:.1}" width="{tw:.1}" height="20"/>"#, x + w - tw);
        }
        if w > 24.0 {
            let _ = write!(svg, r#"<text class="num" x="{:.1}" y="{:.1}">{}</text>"#, x + 4.0, y + 14.0, a.shard);
        }
        svg.push_str("</g>");
    }
    let axis_y = ROW_HEIGHT * rows.len() as f64 + 16.0;
    for i in 0..=5 {
        let t = end.as_secs_f64() * i as f64 / 5.0;
        let _ = write!(
            svg,
            r#"<text class="axis" x="{:.1}" y="{axis_y}">{t:.1}s</text>"#,
            LABEL_WIDTH + t * scale - 8.0
        );
    }
    svg.push_str("</svg>");

    let mut failures = String::new();
    for o in report.outcomes.iter().filter(|o| matches!(o.result.status, TestStatus::Failed | TestStatus::Error)) {
        let _ = write!(
            failures,
            "<details><summary><b>{}</b> {} <span class=dim>shard {} on {}</span></summary><pre>{}\n{}{}</pre></details>",
            if o.result.status == TestStatus::Failed { "FAIL" } else { "ERROR" },
            esc(&o.id().to_string()),
            o.shard.map(|s| s.to_string()).unwrap_or("-".into()),
            esc(&o.host),
            esc(o.result.message.as_deref().unwrap_or("")),
            esc(&o.result.stdout),
            esc(&o.result.stderr),
        );
    }
    if failures.is_empty() {
        failures.push_str("<p>None.</p>");
    }
    let mut slow: Vec<_> = report.outcomes.iter().filter(|o| o.result.status != TestStatus::Skipped).collect();
    slow.sort_by(|a, b| b.result.duration.cmp(&a.result.duration).then(a.id().cmp(b.id())));
    let mut slowest = String::from("<table><tr><th>seconds</th><th>test</th><th>host</th></tr>");
    for o in slow.iter().take(10) {
        let _ = write!(
            slowest,
            "<tr><td>{:.2}</td><td>{}</td><td>{}</td></tr>",
            o.result.duration.as_secs_f64(),
            esc(&o.id().to_string()),
            esc(&o.host)
        );
    }
    slowest.push_str("</table>");

    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>cargo-shard run {run}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 24px; color: #1d2330; }}
h1 {{ font-size: 20px; }} .dim {{ color: #6b7280; }}
.counts span {{ margin-right: 16px; }}
svg text {{ font: 12px system-ui, sans-serif; fill: #1d2330; }} svg .axis {{ fill: #6b7280; }}
.grid {{ stroke: #e5e7eb; }} .num {{ fill: #fff; }}
.bar .body {{ fill: #16a34a; }} .bar.fail .body {{ fill: #dc2626; }} .bar.infra .body {{ fill: #9333ea; }}
.bar.timeout .body {{ fill: #ea580c; }} .bar.cancel .body {{ fill: #9ca3af; }}
.setup {{ fill: #000; opacity: .25; }} .teardown {{ fill: #000; opacity: .4; }}
pre {{ background: #f3f4f6; padding: 8px; overflow-x: auto; }}
table {{ border-collapse: collapse; }} td, th {{ padding: 2px 10px; text-align: left; }}
.legend span {{ display: inline-block; padding: 0 6px; margin-right: 8px; color: #fff; border-radius: 3px; }}
</style></head><body>
<h1>cargo-shard run <code>{run}</code></h1>
<p class="counts"><span>{passed} passed</span><span>{failed} failed</span><span>{flaky} flaky</span><span>{skipped} skipped</span><span>{errors} errors</span><span>wall {wall:.2}s</span><span>predicted {pred:.2}s</span><span>lower bound {lb:.2}s</span></p>
<h2>Timeline</h2>
<p class="legend"><span style="background:#16a34a">passed</span><span style="background:#dc2626">failed</span><span style="background:#9333ea">infrastructure</span><span style="background:#ea580c">timed out</span><span style="background:#9ca3af">cancelled</span> darker ends: create/upload/start and collect/remove</p>
{svg}
<h2>Failures</h2>
{failures}
<h2>Slowest tests</h2>
{slowest}
</body></html>
"#,
        run = esc(&report.run_id),
        passed = report.count(TestStatus::Passed),
        failed = report.count(TestStatus::Failed),
        flaky = report.flaky(),
        skipped = report.count(TestStatus::Skipped),
        errors = report.count(TestStatus::Error),
        wall = report.wall.as_secs_f64(),
        pred = plan.makespan.as_secs_f64(),
        lb = plan.lower_bound.as_secs_f64(),
    )
}
