//! Reads the JUnit XML nextest writes for one shard into per-test results.
//!
//! Private to the nextest runner: nextest's layout is fixed (classname = binary id, name =
//! test name), so this reader needs only testcases, their outcome and their output.

use std::time::Duration;

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use crate::discover::{TestId, TestResult, TestStatus};

#[derive(Debug, thiserror::Error)]
#[error("nextest JUnit: {0}")]
pub struct JunitError(String);

/// What nextest puts in `<system-err>` when it captured a test's two streams as one.
const COMBINED: &str = "(stdout and stderr are combined)";

/// Which text a testcase's child element holds.
#[derive(Clone, Copy, PartialEq)]
enum Slot {
    None,
    Outcome,
    Stdout,
    Stderr,
}

/// Every `<testcase>` in `xml`, in document order.
pub fn parse(xml: &[u8]) -> Result<Vec<TestResult>, JunitError> {
    let text = String::from_utf8_lossy(xml);
    let mut reader = Reader::from_str(&text);
    let mut out = Vec::new();
    let mut current: Option<TestResult> = None;
    let mut outcome_body = String::new();
    let mut slot = Slot::None;
    // Elements open inside the current testcase: only its direct children count, so the
    // output nested in a retry's <rerunFailure>/<flakyFailure> does not mix into the final one.
    let mut depth = 0usize;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| JunitError(format!("at byte {}: {e}", reader.buffer_position())))?;
        match event {
            Event::Start(e) => match (current.as_mut(), e.local_name().as_ref()) {
                (None, "testcase") => current = Some(testcase(&e)?),
                (Some(case), name) => {
                    depth += 1;
                    slot = if depth == 1 {
                        child(case, name, &e)?
                    } else {
                        Slot::None
                    };
                }
                _ => {}
            },
            Event::Empty(e) => match (current.as_mut(), e.local_name().as_ref()) {
                (None, "testcase") => out.push(testcase(&e)?),
                (Some(case), name) if depth == 0 => {
                    child(case, name, &e)?;
                }
                _ => {}
            },
            Event::End(_) if depth > 0 => {
                depth -= 1;
                slot = Slot::None;
            }
            Event::End(e) => {
                if e.local_name().as_ref() == "testcase" {
                    if let Some(mut case) = current.take() {
                        finish_message(&mut case, &outcome_body);
                        // nextest captures both streams as one with structured output on: the
                        // output is all in <system-out>, and <system-err> only says so.
                        if case.stderr.trim() == COMBINED {
                            case.stderr.clear();
                        }
                        out.push(case);
                    }
                    outcome_body.clear();
                }
                slot = Slot::None;
            }
            Event::Text(t) => push_text(&mut current, slot, &mut outcome_body, &t.xml10_content()),
            Event::CData(t) => push_text(&mut current, slot, &mut outcome_body, &t.xml10_content()),
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    _ => quick_xml::escape::resolve_predefined_entity(&r)
                        .unwrap_or_default()
                        .to_owned(),
                };
                push_text(&mut current, slot, &mut outcome_body, &resolved);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}

fn push_text(current: &mut Option<TestResult>, slot: Slot, outcome_body: &mut String, text: &str) {
    let Some(case) = current.as_mut() else { return };
    match slot {
        Slot::Outcome => outcome_body.push_str(text),
        Slot::Stdout => case.stdout.push_str(text),
        Slot::Stderr => case.stderr.push_str(text),
        Slot::None => {}
    }
}

fn attr(e: &BytesStart<'_>, key: &str) -> Result<Option<String>, JunitError> {
    match e.try_get_attribute(key) {
        Ok(Some(a)) => a
            .normalized_value(XmlVersion::Implicit1_0)
            .map(|v| Some(v.into_owned()))
            .map_err(|err| JunitError(format!("attribute {}: {err}", key))),
        Ok(None) => Ok(None),
        Err(err) => Err(JunitError(format!("attribute {}: {err}", key))),
    }
}

fn testcase(e: &BytesStart<'_>) -> Result<TestResult, JunitError> {
    let name = attr(e, "name")?.ok_or_else(|| JunitError("a <testcase> without a name".into()))?;
    let group = attr(e, "classname")?.unwrap_or_default();
    let secs = attr(e, "time")?
        .and_then(|t| t.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    Ok(TestResult {
        id: TestId::new(group, name),
        status: TestStatus::Passed,
        duration: Duration::try_from_secs_f64(secs).unwrap_or_default(),
        message: None,
        detail: String::new(),
        stdout: String::new(),
        stderr: String::new(),
        subtests: Vec::new(),
    })
}

/// Applies a testcase's child element; returns where its text goes.
fn child(case: &mut TestResult, name: &str, e: &BytesStart<'_>) -> Result<Slot, JunitError> {
    let status = match name {
        "failure" => TestStatus::Failed,
        // nextest uses <error> when the test could not be run at all.
        "error" => TestStatus::Error,
        "skipped" => TestStatus::Skipped,
        "system-out" => return Ok(Slot::Stdout),
        "system-err" => return Ok(Slot::Stderr),
        // flakyFailure, rerunFailure and the like: the final outcome is what counts.
        _ => return Ok(Slot::None),
    };
    case.status = status;
    case.message = attr(e, "message")?.or(attr(e, "type")?);
    Ok(Slot::Outcome)
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
