//! The merged JUnit report: one `<testsuite>` per test binary (Rust) or package (Go), every
//! planned test exactly once, with the host, shard and container that ran it.
//!
//! Layout, chosen to read well in GitLab, Jenkins and GitHub reporters: `classname` is the
//! group (binary id or import path), `name` the test's own name, the case's `group`
//! attribute names `shard N on HOST`, and the suite's properties map each shard to its host
//! and container. Go subtests follow their parent as cases of their own (`TestX/sub`), as
//! gotestsum and go-junit-report write them.

use std::collections::BTreeMap;
use std::time::Duration;

use super::meta::RunMeta;
use crate::junit::{Case, CaseStatus, Report, Rerun, RerunKind, Suite};
use crate::run::{Outcome, RunReport};
use crate::test_result::{TestResult, TestStatus};

/// The suite name used for tests with no group (keys of `cargo shard exec`).
const UNGROUPED: &str = "cargo-shard";

/// The report of a run that ended before any result existed (build failed, no host, bad
/// input, interrupted): one `<error>` case saying why, so CI shows a failure rather than
/// nothing — or an earlier run's report — as this run's.
pub fn early_end(why: &str) -> Report {
    Report {
        name: "cargo-shard".to_string(),
        time: Some(0.0),
        suites: vec![Suite {
            name: UNGROUPED.to_string(),
            time: Some(0.0),
            cases: vec![Case {
                name: "run".to_string(),
                classname: UNGROUPED.to_string(),
                time: Some(0.0),
                status: CaseStatus::Error {
                    message: Some(why.lines().next().unwrap_or_default().to_string()),
                    kind: Some("cargo-shard".to_string()),
                    text: why.to_string(),
                },
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Writes [`early_end`] to `path`.
pub fn write_early_end(path: &std::path::Path, why: &str) -> Result<(), crate::junit::JunitError> {
    crate::junit::write_atomic(path, &early_end(why))
}

/// The report of a run that selected nothing: valid, with no test.
pub fn empty() -> Report {
    Report {
        name: "cargo-shard".to_string(),
        time: Some(0.0),
        suites: Vec::new(),
    }
}

/// `<testsuites time>` is the run's wall time; each `<testsuite timestamp>` is when the first
/// container that ran one of its tests started (the run's start for never-shipped tests).
pub fn build(report: &RunReport, meta: &RunMeta) -> Report {
    let first_start = first_starts(report);
    let mut group_start: BTreeMap<&str, Duration> = BTreeMap::new();
    let mut suites: BTreeMap<&str, Suite> = BTreeMap::new();
    let mut shard_props: BTreeMap<&str, BTreeMap<usize, (String, String)>> = BTreeMap::new();
    for o in &report.outcomes {
        let group = if o.id().group.is_empty() {
            UNGROUPED
        } else {
            o.id().group.as_str()
        };
        let suite = suites.entry(group).or_insert_with(|| Suite {
            name: group.to_string(),
            ..Default::default()
        });
        if let Some(at) = o.shard.and_then(|s| first_start.get(&s).copied()) {
            let e = group_start.entry(group).or_insert(at);
            *e = (*e).min(at);
        }
        // A parent's time includes its subtests': the suite's time counts parents only.
        suite.time = Some(suite.time.unwrap_or(0.0) + o.result.duration.as_secs_f64());
        let parent = case(o, group);
        let subtests: Vec<Case> = o
            .result
            .subtests
            .iter()
            .map(|s| Case {
                name: s.id.name.clone(),
                classname: parent.classname.clone(),
                time: Some(s.duration.as_secs_f64()),
                group: parent.group.clone(),
                status: status(s),
                flaky: Vec::new(),
                reruns: Vec::new(),
                stdout: non_empty(&s.stdout),
                stderr: non_empty(&s.stderr),
            })
            .collect();
        suite.cases.push(parent);
        suite.cases.extend(subtests);
        if let Some(shard) = o.shard
            && !o.host.is_empty()
        {
            shard_props
                .entry(group)
                .or_default()
                .insert(shard, (o.host.clone(), o.container.clone()));
        }
    }
    let mut out = Report {
        name: format!("cargo-shard run {}", report.run_id),
        time: Some(report.wall.as_secs_f64()),
        suites: Vec::new(),
    };
    for (group, mut suite) in suites {
        let started = group_start.get(group).copied().unwrap_or_default();
        suite.timestamp = Some(meta.at(started));
        suite
            .properties
            .push(("cargo-shard.run".into(), report.run_id.clone()));
        for (shard, (host, container)) in shard_props.remove(group).unwrap_or_default() {
            suite.properties.push((
                format!("cargo-shard.shard.{shard}"),
                format!("host={host} container={container}"),
            ));
        }
        out.suites.push(suite);
    }
    out
}

/// Each shard's earliest container start, as an offset from the run's start.
fn first_starts(report: &RunReport) -> BTreeMap<usize, Duration> {
    let mut first: BTreeMap<usize, Duration> = BTreeMap::new();
    for a in &report.attempts {
        let e = first.entry(a.shard).or_insert(a.started);
        *e = (*e).min(a.started);
    }
    first
}

fn case(o: &Outcome, classname: &str) -> Case {
    let r = &o.result;
    let earlier: Vec<Rerun> = o.earlier.iter().map(rerun).collect();
    let (flaky, reruns) = if r.status == TestStatus::Passed {
        (earlier, Vec::new())
    } else {
        (Vec::new(), earlier)
    };
    Case {
        name: r.id.name.clone(),
        classname: classname.to_string(),
        time: Some(r.duration.as_secs_f64()),
        group: o
            .shard
            .filter(|_| !o.host.is_empty())
            .map(|s| format!("shard {s} on {}", o.host)),
        status: status(r),
        flaky,
        reruns,
        stdout: non_empty(&r.stdout),
        stderr: non_empty(&r.stderr),
    }
}

fn status(r: &TestResult) -> CaseStatus {
    match r.status {
        TestStatus::Passed => CaseStatus::Passed,
        TestStatus::Skipped => CaseStatus::Skipped {
            message: r.message.clone(),
        },
        TestStatus::Failed => CaseStatus::Failure {
            message: r.message.as_deref().map(first_line),
            kind: Some("failure".into()),
            text: bounded(&failure_text(r)),
        },
        TestStatus::Error => CaseStatus::Error {
            message: r.message.as_deref().map(first_line),
            kind: Some("error".into()),
            text: bounded(&failure_text(r)),
        },
    }
}

fn rerun(r: &TestResult) -> Rerun {
    Rerun {
        kind: if r.status == TestStatus::Error {
            RerunKind::Error
        } else {
            RerunKind::Failure
        },
        error_type: Some(
            if r.status == TestStatus::Error {
                "error"
            } else {
                "failure"
            }
            .into(),
        ),
        message: r.message.as_deref().map(first_line),
        text: bounded(&failure_text(r)),
        stdout: non_empty(&r.stdout),
        stderr: non_empty(&r.stderr),
        time: Some(r.duration.as_secs_f64()),
    }
}

/// The element's text: the runner's whole failure when it gave one, so a reader that shows
/// only `<failure>` (GitLab's merge request view) still sees `left`/`right` and the like.
fn failure_text(r: &TestResult) -> String {
    if r.detail.trim().is_empty() {
        r.message.clone().unwrap_or_default()
    } else {
        r.detail.clone()
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| bounded(s))
}

/// The most of one test's output (or failure text) a report holds: plain `xmllint` and many CI
/// parsers refuse text nodes much larger than this; the shard's log keeps all of it.
pub const OUTPUT_LIMIT: usize = 1 << 20;

/// `s` cut to [`OUTPUT_LIMIT`]: its first and last halves, with a line saying how many bytes
/// were cut between them (at character boundaries).
fn bounded(s: &str) -> String {
    if s.len() <= OUTPUT_LIMIT {
        return s.to_string();
    }
    let half = OUTPUT_LIMIT / 2;
    let mut head = half;
    while !s.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = s.len() - half;
    while !s.is_char_boundary(tail) {
        tail += 1;
    }
    format!(
        "{}\n[cargo-shard: {} bytes of this output cut here; the shard's log holds all of it]\n{}",
        &s[..head],
        tail - head,
        &s[tail..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_output_keeps_its_head_and_tail_and_says_how_much_was_cut() {
        let head = "h€".repeat(300_000); // 1.2 MB of 3-byte and 1-byte characters
        let tail = "t€".repeat(300_000);
        let long = format!("{head}middle{tail}");
        let cut = bounded(&long);
        assert!(cut.len() <= OUTPUT_LIMIT + 200, "{}", cut.len());
        assert!(cut.starts_with("h€h€"));
        assert!(cut.ends_with("t€t€"));
        let marker = cut
            .lines()
            .find(|l| l.starts_with("[cargo-shard: "))
            .expect("a marker");
        let n: usize = marker["[cargo-shard: ".len()..]
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(cut.len() - marker.len() - 2 + n, long.len(), "{marker}");
        assert!(
            marker.ends_with("bytes of this output cut here; the shard's log holds all of it]"),
            "{marker}"
        );
        assert_eq!(bounded("short"), "short");
    }

    #[test]
    fn a_huge_failing_output_is_bounded_in_the_report() {
        let mut report = crate::report::sample::sample().0;
        let o = report
            .outcomes
            .iter_mut()
            .find(|o| o.result.status == TestStatus::Failed)
            .unwrap();
        o.result.stdout = "x".repeat(5 << 20);
        o.result.message = Some("y".repeat(5 << 20));
        let doc = build(&report, &crate::report::meta::sample_meta());
        let case = doc
            .suites
            .iter()
            .flat_map(|s| &s.cases)
            .find(|c| c.status.is_failure())
            .unwrap();
        assert!(case.stdout.as_ref().unwrap().len() < OUTPUT_LIMIT + 200);
        let CaseStatus::Failure { text, .. } = &case.status else {
            unreachable!()
        };
        assert!(text.len() < OUTPUT_LIMIT + 200);
    }

    use crate::report::meta::sample_meta;
    use crate::report::sample::sample;

    #[test]
    fn run_time_is_the_wall_time_and_suites_carry_when_they_started() {
        let (report, _, _) = sample();
        let doc = build(&report, &sample_meta());
        assert_eq!(
            doc.time,
            Some(2.4),
            "the wall time, not the 3.2 s the tests add up to"
        );
        let stamps: Vec<_> = doc.suites.iter().map(|s| s.timestamp.as_deref()).collect();
        // Shard 0 (tests a, b) started at 0 s, shard 1 at 0.1 s: the earliest counts.
        assert_eq!(stamps, [Some("2026-12-01T20:14:41Z")]);
        let xml = crate::junit::to_string(&doc);
        assert!(xml.contains(r#"time="2.400">"#), "{xml}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junit.xml");
        std::fs::write(&path, xml).unwrap();
        crate::junit::tests::xmllint_validate(&path).unwrap();
    }

    #[test]
    fn a_suite_starts_with_its_first_container() {
        let (mut report, _, _) = sample();
        for a in &mut report.attempts {
            a.started += std::time::Duration::from_secs(90);
        }
        let doc = build(&report, &sample_meta());
        assert_eq!(doc.suites[0].timestamp.as_deref(), Some("2026-12-01T20:16:11Z"));
    }

    #[test]
    fn a_failure_holds_the_whole_failure_and_its_first_line_as_message() {
        let (mut report, _, _) = sample();
        let failed = report
            .outcomes
            .iter_mut()
            .find(|o| o.result.status == TestStatus::Failed)
            .expect("the sample has a failure");
        failed.result.message =
            Some("thread 'b' panicked at it.rs:3:5: assertion `left == right` failed".into());
        failed.result.detail =
            "thread 'b' panicked at it.rs:3:5:\nassertion `left == right` failed\n  left: 3\n right: 4"
                .into();
        let junit = build(&report, &sample_meta());
        let case = junit
            .suites
            .iter()
            .flat_map(|s| &s.cases)
            .find(|c| c.status.is_failure())
            .unwrap();
        let CaseStatus::Failure { message, text, .. } = &case.status else {
            unreachable!()
        };
        assert_eq!(
            message.as_deref(),
            Some("thread 'b' panicked at it.rs:3:5: assertion `left == right` failed")
        );
        assert!(text.ends_with("  left: 3\n right: 4"), "{text}");
        assert!(
            case.stderr.as_deref().unwrap().contains("panicked"),
            "output stays in system-err"
        );
        // Without a detail the message is the text, as before.
        let error = junit
            .suites
            .iter()
            .flat_map(|s| &s.cases)
            .find(|c| c.status.is_error())
            .unwrap();
        let CaseStatus::Error { text, .. } = &error.status else {
            unreachable!()
        };
        assert_eq!(text, "assertion failed: left == right\nmore");
    }
}
