//! nextest's JUnit for one shard as per-test results. The XML is read by [`crate::junit`],
//! the one tolerant reader; this file maps nextest's layout onto [`TestResult`]: classname =
//! binary id, name = test name, only the final outcome and its own output (a retry's, inside
//! `<flakyFailure>`/`<rerunFailure>`, stays out), one-line messages.

use crate::junit::{Case, CaseStatus, JunitError};
use crate::test_result::{TestId, TestResult, TestStatus};

/// What nextest puts in `<system-err>` when it captured a test's two streams as one.
const COMBINED: &str = "(stdout and stderr are combined)";

/// Every `<testcase>` in `xml`, in document order.
pub fn parse(xml: &[u8]) -> Result<Vec<TestResult>, JunitError> {
    let report = crate::junit::read_bytes(xml, "nextest JUnit")?;
    Ok(report
        .suites
        .into_iter()
        .flat_map(|s| s.cases)
        .map(result)
        .collect())
}

fn result(case: Case) -> TestResult {
    let (status, message, body) = match case.status {
        CaseStatus::Passed => (TestStatus::Passed, None, String::new()),
        CaseStatus::Failure { message, kind, text } => (TestStatus::Failed, message.or(kind), text),
        // nextest uses <error> when the test could not be run at all.
        CaseStatus::Error { message, kind, text } => (TestStatus::Error, message.or(kind), text),
        CaseStatus::Skipped { message } => (TestStatus::Skipped, message, String::new()),
    };
    let mut stderr = case.stderr.unwrap_or_default();
    // nextest captures both streams as one with structured output on: the output is all in
    // <system-out>, and <system-err> only says so.
    if stderr.trim() == COMBINED {
        stderr.clear();
    }
    let mut r = TestResult {
        id: TestId::new(case.classname, case.name),
        status,
        duration: case
            .time
            .and_then(|t| std::time::Duration::try_from_secs_f64(t).ok())
            .unwrap_or_default(),
        message,
        detail: String::new(),
        stdout: case.stdout.unwrap_or_default(),
        stderr,
        subtests: Vec::new(),
    };
    finish_message(&mut r, &body);
    r
}

/// Makes the message one line: nextest's `message` is only the panic location, so the first
/// line of the panic message from the body is added to it.
fn finish_message(case: &mut TestResult, body: &str) {
    case.detail = body.trim_end().to_owned();
    let mut lines = body.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next();
    let detail = match (first, case.message.as_deref()) {
        (Some(f), Some(m)) if f.starts_with(m) => lines.next().filter(|l| !l.starts_with("note: ")),
        _ => None,
    };
    case.message = match (case.message.take(), first, detail) {
        (Some(m), _, Some(d)) => Some(format!("{}: {d}", m.trim_end_matches(':'))),
        (Some(m), _, None) => Some(m),
        (None, Some(f), _) => Some(f.to_owned()),
        (None, None, _) => None,
    }
    .map(|m| m.replace(['\n', '\r'], " "));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SAMPLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="nextest-run" tests="3" failures="1" errors="0">
  <testsuite name="alpha::integration" tests="3">
    <testcase name="edge::r#type" classname="alpha::integration" time="0.007"/>
    <testcase name="fails" classname="alpha::integration" time="1.5">
      <failure message="thread &apos;fails&apos; (1) panicked at a.rs:4:5" type="test failure">thread &apos;fails&apos; (1) panicked at a.rs:4:5:
messy: 1 &lt; 2 &amp;&amp; x&#xA;y
second line
note: run with `RUST_BACKTRACE=1`</failure>
      <system-out>out &lt;tag&gt;</system-out>
      <system-err><![CDATA[err ]] text]]></system-err>
    </testcase>
    <testcase name="gr&#246;&#xDF;e" classname="alpha" time="0"><skipped/></testcase>
  </testsuite>
</testsuites>"#;

    #[test]
    fn reads_outcomes_output_and_one_line_messages() {
        let results = parse(SAMPLE.as_bytes()).unwrap();
        assert_eq!(results.len(), 3);
        assert_eq!(results[0].id, TestId::new("alpha::integration", "edge::r#type"));
        assert_eq!(results[0].status, TestStatus::Passed);
        assert_eq!(results[0].duration, Duration::from_millis(7));
        let failed = &results[1];
        assert_eq!(failed.status, TestStatus::Failed);
        assert_eq!(
            failed.message.as_deref(),
            Some("thread 'fails' (1) panicked at a.rs:4:5: messy: 1 < 2 && x")
        );
        assert_eq!(
            failed.detail,
            "thread 'fails' (1) panicked at a.rs:4:5:\nmessy: 1 < 2 && x\ny\nsecond line\nnote: run with `RUST_BACKTRACE=1`"
        );
        assert_eq!(failed.stdout, "out <tag>");
        assert_eq!(failed.stderr, "err ]] text");
        assert_eq!(results[2].id, TestId::new("alpha", "größe"));
        assert_eq!(results[2].status, TestStatus::Skipped);
    }

    #[test]
    fn a_retried_test_keeps_only_its_final_outcome_and_output() {
        let xml = r#"<testsuites><testsuite name="a">
            <testcase name="flaky" classname="a" time="1">
                <flakyFailure message="first try" type="test failure">
                    <system-out>old out</system-out><system-err>old err</system-err>
                </flakyFailure>
                <system-out>new out</system-out>
            </testcase>
        </testsuite></testsuites>"#;
        let results = parse(xml.as_bytes()).unwrap();
        assert_eq!(results.len(), 1);
        assert_eq!(results[0].status, TestStatus::Passed);
        assert_eq!(results[0].message, None);
        assert_eq!(results[0].stdout, "new out");
        assert_eq!(results[0].stderr, "");
    }

    #[test]
    fn combined_streams_leave_no_placeholder_in_stderr() {
        let combined = br#"<testsuites><testsuite name="a"><testcase name="c" classname="a" time="0">
            <system-out>out and err</system-out><system-err>(stdout and stderr are combined)</system-err>
        </testcase></testsuite></testsuites>"#;
        let parsed = parse(combined).unwrap();
        assert_eq!(
            (parsed[0].stdout.as_str(), parsed[0].stderr.as_str()),
            ("out and err", "")
        );
    }

    #[test]
    fn malformed_xml_is_an_error_not_a_panic() {
        assert!(parse(b"<testsuites><testcase name='a'></testsuite>").is_err());
    }
}
