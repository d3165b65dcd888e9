//! The HTML report `cargo shard merge` writes: one row per partition job (its share, what it
//! predicted and took, its counts) and the failures. Self-contained: inline CSS, no script.

use std::fmt::Write;

use crate::junit::escape_attr;
use crate::partition::merge::Job;
use crate::test_result::TestStatus;

/// Renders the merged jobs' report.
pub fn render(jobs: &[Job]) -> String {
    let fp = jobs
        .first()
        .map(|j| j.manifest.fingerprint.as_str())
        .unwrap_or("");
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>cargo-shard merge {}</title>\n<style>\
         body{{font:14px sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child{{text-align:left}}\
         .fail{{color:#b00}}</style></head><body>\n<h1>cargo-shard merge</h1>\n<p>plan fingerprint <code>{}</code>, {} jobs</p>\n",
        escape_attr(fp),
        escape_attr(fp),
        jobs.len()
    );
    out.push_str(
        "<table class=\"jobs\"><tr><th>job</th><th>planned tests</th><th>passed</th><th>failed</th>\
         <th>skipped</th><th>errors</th><th>predicted s</th><th>took s</th></tr>\n",
    );
    for j in jobs {
        let m = &j.manifest;
        let c = m.counts();
        let n = |s| c.get(&s).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "<tr class=\"job\"><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td></tr>",
            escape_attr(&m.partition.to_string()),
            m.mine().len(),
            n(TestStatus::Passed),
            if n(TestStatus::Failed) > 0 { "fail" } else { "" },
            n(TestStatus::Failed),
            n(TestStatus::Skipped),
            n(TestStatus::Error),
            m.predicted.get(m.partition.index - 1).copied().unwrap_or(0.0),
            m.elapsed
        );
    }
    out.push_str("</table>\n");
    failures(&mut out, jobs);
    out.push_str("</body></html>\n");
    out
}

fn failures(out: &mut String, jobs: &[Job]) {
    let failed: Vec<(String, &crate::partition::JobResult)> = jobs
        .iter()
        .flat_map(|j| {
            j.manifest
                .results
                .iter()
                .filter(|r| matches!(r.status, TestStatus::Failed | TestStatus::Error))
                .map(move |r| (j.manifest.partition.to_string(), r))
        })
        .collect();
    if failed.is_empty() {
        return;
    }
    out.push_str("<h2>Failures</h2>\n<ul>\n");
    for (job, r) in failed {
        let _ = writeln!(
            out,
            "<li class=\"fail\">{} ({:?}, job {})</li>",
            escape_attr(&r.id.to_string()),
            r.status,
            escape_attr(&job)
        );
    }
    out.push_str("</ul>\n");
}
