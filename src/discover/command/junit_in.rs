//! A small JUnit XML reader for the files a user's command writes (`--results GLOB`).
//!
//! Kept here rather than in `crate::junit` because that shared reader had not landed when
//! this was written; it takes a bare `<testsuite>` root and numeric character references
//! (`&#xA;`, which Go's JUnit writers emit), both of which quick-junit rejects.

use std::time::Duration;

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};

use crate::discover::TestStatus;

/// One `<testcase>`.
#[derive(Debug, Clone, PartialEq)]
pub struct JunitCase {
    pub classname: String,
    pub name: String,
    pub time: Duration,
    pub status: TestStatus,
    pub message: Option<String>,
    /// The failure/error/skipped element's text, then `<system-out>`.
    pub stdout: String,
    pub stderr: String,
}

#[derive(Clone, Copy, PartialEq)]
enum Target {
    None,
    Out,
    Err,
}

/// Every `<testcase>` in `xml`, wherever it is nested.
pub fn read_junit(xml: &str) -> Result<Vec<JunitCase>, String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut st = State {
        cases: Vec::new(),
        case: None,
        target: Target::None,
    };
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("at byte {}: {e}", reader.buffer_position()))?;
        match event {
            Event::Start(e) => st.open(&e, false),
            Event::Empty(e) => st.open(&e, true),
            Event::End(e) => {
                if e.local_name().as_ref() == "testcase" {
                    st.cases.extend(st.case.take());
                }
                st.target = Target::None;
            }
            Event::Text(t) => st.push(&t.xml10_content()),
            Event::CData(t) => st.push(&t.xml10_content()),
            Event::GeneralRef(r) => {
                let ch = match r.resolve_char_ref() {
                    Ok(Some(ch)) => Some(ch),
                    _ => match r.xml10_content().as_ref() {
                        "lt" => Some('<'),
                        "gt" => Some('>'),
                        "amp" => Some('&'),
                        "quot" => Some('"'),
                        "apos" => Some('\''),
                        _ => None,
                    },
                };
                if let Some(ch) = ch {
                    st.push(ch.encode_utf8(&mut [0; 4]));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    st.cases.extend(st.case);
    Ok(st.cases)
}

struct State {
    cases: Vec<JunitCase>,
    case: Option<JunitCase>,
    target: Target,
}

impl State {
    fn open(&mut self, e: &BytesStart<'_>, empty: bool) {
        if e.local_name().as_ref() == "testcase" {
            self.cases.extend(self.case.take());
            let attr = |k: &str| attribute(e, k);
            let case = JunitCase {
                classname: attr("classname").unwrap_or_default(),
                name: attr("name").unwrap_or_default(),
                time: attr("time")
                    .and_then(|t| t.trim().parse::<f64>().ok())
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .unwrap_or_default(),
                status: TestStatus::Passed,
                message: None,
                stdout: String::new(),
                stderr: String::new(),
            };
            if empty {
                self.cases.push(case)
            } else {
                self.case = Some(case)
            }
            return;
        }
        let Some(c) = self.case.as_mut() else { return };
        let status = match e.local_name().as_ref() {
            "failure" => Some(TestStatus::Failed),
            "error" => Some(TestStatus::Error),
            "skipped" => Some(TestStatus::Skipped),
            "system-out" => {
                self.target = Target::Out;
                None
            }
            "system-err" => {
                self.target = Target::Err;
                None
            }
            _ => None,
        };
        if let Some(status) = status {
            // A failure outranks a skip when a writer emits both.
            if c.status == TestStatus::Passed || status != TestStatus::Skipped {
                c.status = status;
                c.message = attribute(e, "message").or(c.message.take());
            }
            self.target = Target::Out;
        }
        if empty {
            self.target = Target::None;
        }
    }

    fn push(&mut self, text: &str) {
        let Some(c) = self.case.as_mut() else { return };
        match self.target {
            Target::Out => c.stdout.push_str(text),
            Target::Err => c.stderr.push_str(text),
            Target::None => {}
        }
    }
}

fn attribute(e: &BytesStart<'_>, key: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == key)
        .and_then(|a| {
            a.normalized_value(XmlVersion::Implicit1_0)
                .ok()
                .map(|v| v.into_owned())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cases_with_every_status() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="s" tests="4">
  <testcase classname="DockerSuite" name="TestA" time="1.5"/>
  <testcase classname="DockerSuite" name="TestB" time="0.25">
    <failure message="boom &amp; bust" type="x">line1&#xA;line2 &lt;x&gt;</failure>
    <system-out><![CDATA[printed ]]]]><![CDATA[>]]></system-out>
  </testcase>
  <testcase classname="p" name="TestC"><skipped message="later"/></testcase>
  <testcase classname="p" name="TestD"><error message="panic"></error><system-err>e</system-err></testcase>
</testsuite></testsuites>"#;
        let cases = read_junit(xml).unwrap();
        assert_eq!(cases.len(), 4);
        assert_eq!(
            (cases[0].name.as_str(), cases[0].status),
            ("TestA", TestStatus::Passed)
        );
        assert_eq!(cases[0].time, Duration::from_millis(1500));
        assert_eq!(cases[1].status, TestStatus::Failed);
        assert_eq!(cases[1].message.as_deref(), Some("boom & bust"));
        assert_eq!(cases[1].stdout, "line1\nline2 <x>printed ]]>");
        assert_eq!(cases[2].status, TestStatus::Skipped);
        assert_eq!(cases[2].message.as_deref(), Some("later"));
        assert_eq!(cases[3].status, TestStatus::Error);
        assert_eq!(cases[3].stderr, "e");
    }

    #[test]
    fn bare_testsuite_root_and_bad_xml() {
        let cases =
            read_junit(r#"<testsuite><testcase name="T" classname="c"></testcase></testsuite>"#).unwrap();
        assert_eq!(cases.len(), 1);
        assert!(read_junit("<testsuite><testcase name='a'></testsuite>").is_err());
    }
}
