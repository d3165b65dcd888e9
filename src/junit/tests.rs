//! Tests of the JUnit reader and writer: every flavour in `fixtures/junit/`, round trips,
//! and validation of hostile output against the real schema with xmllint.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

fn fixture(name: &str) -> Report {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/junit")
        .join(name);
    read_file(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// (classname, name, time) of every case, in file order.
fn flat(r: &Report) -> Vec<(String, String, Option<f64>)> {
    r.suites
        .iter()
        .flat_map(|s| &s.cases)
        .map(|c| (c.classname.clone(), c.name.clone(), c.time))
        .collect()
}

fn case<'a>(r: &'a Report, name: &str) -> &'a Case {
    r.suites
        .iter()
        .flat_map(|s| &s.cases)
        .find(|c| c.name == name)
        .expect(name)
}

#[test]
fn nextest_fixture_reads_binary_ids_times_failures_and_flaky_attempts() {
    let r = fixture("nextest.xml");
    assert_eq!(r.name, "nextest-run");
    let names: Vec<_> = r.suites.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "rust-sample",
            "rust-sample::integration",
            "rust-sample::bin/sample-cli"
        ]
    );
    let cases = flat(&r);
    assert_eq!(cases.len(), 14);
    assert_eq!(
        cases[2],
        (
            "rust-sample".into(),
            "parse::tests::large_file".into(),
            Some(2.417)
        )
    );
    let odd = case(&r, "names_with <angle> & ampersand");
    assert_eq!(odd.classname, "rust-sample::integration");
    let failed = case(&r, "cache::tests::eviction_order");
    match &failed.status {
        CaseStatus::Failure { kind, text, .. } => {
            assert_eq!(kind.as_deref(), Some("test failure"));
            assert!(
                text.starts_with("thread 'cache::tests::eviction_order' panicked"),
                "{text}"
            );
            assert!(text.contains("\n  left: [3, 1, 2]\n"));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        failed
            .stderr
            .as_deref()
            .unwrap()
            .contains("assertion `left == right` failed")
    );
    let flaky = case(&r, "cache::tests::ttl_expiry");
    assert_eq!(flaky.status, CaseStatus::Passed);
    assert_eq!(flaky.flaky.len(), 1);
    assert_eq!(flaky.flaky[0].kind, RerunKind::Failure);
    assert_eq!(flaky.flaky[0].time, Some(1.498));
    assert!(flaky.flaky[0].text.ends_with("entry still present after ttl"));
    assert!(flaky.flaky[0].stdout.as_deref().unwrap().contains("FAILED"));
}

#[test]
fn gotestsum_fixture_reads_import_paths_and_char_refs() {
    let r = fixture("gotestsum.xml");
    let cases = flat(&r);
    assert_eq!(cases.len(), 6);
    assert_eq!(
        cases[0],
        ("example.com/shop/cart".into(), "TestAdd".into(), Some(0.010))
    );
    assert_eq!(
        cases[5],
        (
            "example.com/shop/pricing".into(),
            "TestTaxTables".into(),
            Some(0.620)
        )
    );
    assert_eq!(
        r.suites[0].properties,
        [("go.version".to_string(), "go1.19.8 linux/amd64".to_string())]
    );
    match &case(&r, "TestRemove").status {
        CaseStatus::Failure { message, text, .. } => {
            assert_eq!(message.as_deref(), Some("Failed"));
            assert_eq!(
                text,
                "=== RUN   TestRemove\n    cart_test.go:20: want 1 item, got 2\n--- FAIL: TestRemove (0.30s)\n"
            );
        }
        other => panic!("{other:?}"),
    }
    match &case(&r, "TestCheckoutNeedsNetwork").status {
        CaseStatus::Skipped { message } => {
            assert!(message.as_deref().unwrap().contains("\n    cart_test.go:31"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn go_junit_report_fixture_reads_escapes_and_control_char_refs() {
    let r = fixture("go-junit-report.xml");
    let suites: Vec<_> = r
        .suites
        .iter()
        .map(|s| (s.name.as_str(), s.cases.len()))
        .collect();
    assert_eq!(
        suites,
        [
            ("example.com/shop/pay", 3),
            ("example.com/shop/pay/internal/ledger", 1)
        ]
    );
    assert_eq!(case(&r, "TestRefund").time, Some(2.01));
    assert_eq!(
        case(&r, "TestRefund").classname,
        "pay",
        "v1 writes the import path's last element"
    );
    assert_eq!(r.suites[0].hostname.as_deref(), Some("ci-runner-3"));
    match &case(&r, "TestRefund").status {
        CaseStatus::Failure { text, .. } => assert_eq!(
            text,
            "pay_test.go:41: refund: got 3, want 2\n\tledger.go:12: called from here\npay_test.go:42: ledger <unbalanced> & locked\n\u{1b}[31mred\u{1b}[0m"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn surefire_fixture_reads_bare_testsuite_root_and_comma_times() {
    let r = fixture("surefire.xml");
    assert_eq!(r.suites.len(), 1);
    let s = &r.suites[0];
    assert_eq!(s.name, "com.example.shop.CartTest");
    assert_eq!(s.time, Some(1201.25));
    assert_eq!(s.properties.len(), 2);
    assert_eq!(case(&r, "bulkImport").time, Some(1200.5));
    assert_eq!(case(&r, "addsItem").classname, "com.example.shop.CartTest");
    match &case(&r, "removesItem").status {
        CaseStatus::Failure { message, kind, text } => {
            assert_eq!(message.as_deref(), Some("expected: <1> but was: <2>"));
            assert_eq!(kind.as_deref(), Some("org.opentest4j.AssertionFailedError"));
            assert!(text.contains("but was: <2>\n\tat com.example"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        case(&r, "removesItem").stdout.as_deref(),
        Some("removing sku 42 & co")
    );
    assert!(case(&r, "connectsToStore").status.is_error());
    let flaky = &case(&r, "pricesRound").flaky;
    assert_eq!(flaky[0].text, "java.lang.AssertionError: rounding off by one");
    assert_eq!(flaky[0].stdout.as_deref(), Some("attempt 1"));
    assert_eq!(
        case(&r, "legacyCoupons").status,
        CaseStatus::Skipped {
            message: Some("@Disabled: coupons removed".into())
        }
    );
}

#[test]
fn missing_times_are_none_and_nested_suites_are_flattened_in_document_order() {
    let r = fixture("missing-time.xml");
    let names: Vec<_> = r.suites.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["outer", "inner"]);
    assert_eq!(
        flat(&r),
        [
            ("suite.outer".into(), "no_time_at_all".into(), None),
            ("suite.outer".into(), "empty_time".into(), None),
            ("suite.outer".into(), "timed \"quoted\"".into(), Some(0.25)),
            ("suite.outer".into(), "after_inner".into(), None),
            ("suite.inner".into(), "inner_case".into(), Some(1.5)),
        ]
    );
    assert_eq!(
        case(&r, "inner_case").stdout.as_deref(),
        Some("line one\nline two \u{1b}[1mbold\u{1b}[0m")
    );
    assert!(case(&r, "after_inner").status.is_skipped());
}

#[test]
fn errors_name_the_file_and_line() {
    let bad = "<testsuites>\n<testsuite name=\"a\">\n<testcase name=\"x\" time=\"soon\"/>\n</testsuite>\n</testsuites>";
    let e = read_str(bad, "r.xml").unwrap_err().to_string();
    assert!(e.starts_with("r.xml:3: invalid time \"soon\""), "{e}");
    let e = read_str("<testsuites>\n<testsuite name=\"a\">\n</testsuites>", "m.xml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("m.xml:3: "), "{e}");
    let e = read_str("<html/>", "h.xml").unwrap_err().to_string();
    assert_eq!(
        e,
        "h.xml:1: root element is <html>, not <testsuites> or <testsuite>"
    );
    let e = read_str("", "e.xml").unwrap_err().to_string();
    assert!(e.starts_with("e.xml:1: no <testsuites>"), "{e}");
    let e = read_file(Path::new("/nonexistent/j.xml"))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("/nonexistent/j.xml: "), "{e}");
}

fn sample() -> Report {
    Report {
        name: "run 1".into(),
        time: None,
        suites: vec![Suite {
            name: "crate::bin".into(),
            time: Some(3.5),
            timestamp: Some("2026-11-20T09:14:02Z".into()),
            hostname: Some("e1".into()),
            properties: vec![("seed".into(), "42".into()), ("multi".into(), "a\nb\tc".into())],
            cases: vec![
                Case {
                    name: "passes".into(),
                    classname: "crate::bin".into(),
                    time: Some(0.125),
                    ..Case::default()
                },
                Case {
                    name: "fails \"quoted\" <x>".into(),
                    classname: "crate::bin".into(),
                    time: Some(1.0),
                    group: Some("g".into()),
                    status: CaseStatus::Failure {
                        message: Some("left != right\nsecond line".into()),
                        kind: Some("test failure".into()),
                        text: "panicked at a.rs:1\r\n  & more".into(),
                    },
                    stdout: Some("out\n".into()),
                    stderr: Some("err".into()),
                    ..Case::default()
                },
                Case {
                    name: "flaky".into(),
                    classname: "crate::bin".into(),
                    time: Some(2.0),
                    flaky: vec![Rerun {
                        kind: RerunKind::Failure,
                        error_type: Some("test failure".into()),
                        message: Some("first try".into()),
                        text: "boom".into(),
                        stdout: Some("o".into()),
                        stderr: Some("e".into()),
                        time: None,
                    }],
                    ..Case::default()
                },
                Case {
                    name: "errored".into(),
                    classname: "crate::bin".into(),
                    time: None,
                    status: CaseStatus::Error {
                        message: Some("shard lost".into()),
                        kind: None,
                        text: String::new(),
                    },
                    reruns: vec![Rerun {
                        kind: RerunKind::Error,
                        ..Rerun::default()
                    }],
                    ..Case::default()
                },
                Case {
                    name: "skipped".into(),
                    classname: "crate::bin".into(),
                    time: Some(0.0),
                    status: CaseStatus::Skipped { message: None },
                    ..Case::default()
                },
            ],
            system_out: Some("suite out".into()),
            system_err: None,
        }],
    }
}

#[test]
fn write_then_read_gives_the_same_report() {
    let report = sample();
    let xml = to_string(&report);
    let mut back = read_str(&xml, "roundtrip").unwrap();
    // The writer fills the schema-required rerun `type`; everything else must survive as is.
    assert_eq!(
        back.suites[0].cases[3].reruns[0].error_type.as_deref(),
        Some("test error")
    );
    back.suites[0].cases[3].reruns[0].error_type = None;
    assert_eq!(back, report);
    assert!(xml.contains(
        r#"<testsuite name="crate::bin" tests="5" failures="1" errors="1" skipped="1" time="3.500""#
    ));
}

fn schema() -> PathBuf {
    match std::env::var_os("CARGO_SHARD_SCHEMA") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/junit/schema/junit-10.xsd"),
    }
}

/// Runs the real xmllint; a missing xmllint or schema fails the test rather than skipping it.
pub(crate) fn xmllint_validate(path: &Path) -> Result<(), String> {
    let schema = schema();
    assert!(
        schema.is_file(),
        "JUnit schema not found at {} (set CARGO_SHARD_SCHEMA)",
        schema.display()
    );
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&schema)
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run xmllint (install libxml2-utils): {e}"));
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn hostile_output_still_validates_against_the_schema() {
    let raw: &[u8] = b"bytes \xff\xfe bad utf8, ctl \x01 and \x08, nul \x00, \x1b[31mred\x1b[0m, ]]> end";
    let every_ascii: String = (0u8..=0x7f).map(char::from).collect();
    let hostile = format!(
        "{} <tag> & ]]> \u{1b}[1;32mok\u{1b}[0m caf\u{e9} \u{65e5}\u{672c} \u{ffff} | {every_ascii} | \u{85}\u{2028}\u{fffe}\u{10ffff}",
        text_from_bytes(raw)
    );
    let mut report = sample();
    report.name = hostile.clone();
    let s = &mut report.suites[0];
    s.name = hostile.clone();
    s.properties.push((hostile.clone(), hostile.clone()));
    s.system_err = Some(hostile.clone());
    for c in &mut s.cases {
        c.name = format!("{} {hostile}", c.name);
        c.stdout = Some(hostile.clone());
        c.stderr = Some(hostile.clone());
        if let CaseStatus::Failure { text, message, .. } = &mut c.status {
            *text = hostile.clone();
            *message = Some(hostile.clone());
        }
        for r in &mut c.flaky {
            r.text = hostile.clone();
        }
    }
    s.time = Some(1e-9);
    report.suites.push(Suite {
        name: "huge".into(),
        time: Some(1.0e21),
        ..Suite::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.xml");
    write_atomic(&path, &report).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers,
        ["report.xml"],
        "the temp file must be renamed, not left behind"
    );
    xmllint_validate(&path).unwrap();

    let back = read_file(&path).unwrap();
    let out = back.suites[0].cases[0].stdout.clone().unwrap();
    assert!(
        out.contains("ctl \\x01 and \\x08, nul \\x00, red, ]]> end"),
        "{out}"
    );
    assert!(
        out.contains("\u{fffd}") && out.contains("<tag> & ]]> ok caf\u{e9} \u{65e5}"),
        "{out}"
    );
    assert!(!out.contains('\u{1b}'));
}

#[test]
fn the_validation_test_catches_invalid_output() {
    // Guards the guard: a file breaking the schema (no `tests` on a testsuite) must be rejected.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.xml");
    std::fs::write(
        &path,
        "<testsuites><testsuite name=\"x\" failures=\"0\" errors=\"0\"/></testsuites>",
    )
    .unwrap();
    assert!(xmllint_validate(&path).is_err());
}

#[test]
fn times_never_use_exponents() {
    assert_eq!(write::format_time(1e-9), "0.000");
    assert_eq!(write::format_time(12.3456), "12.346");
    assert_eq!(write::format_time(f64::NAN), "0.000");
    assert!(!write::format_time(1e21).contains('e'));
}
