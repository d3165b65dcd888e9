//! Existing suites run unchanged (issue 12) on the live test bed: the JUnit `<failure>` holds
//! the whole failure, gocheck suites list, nextest's and go's own run options behave as
//! they do under the plain runner.

mod common;

use std::path::Path;
use std::process::Command;

use cargo_shard::junit::{Case, CaseStatus};

/// The case `name` of a JUnit report, which must validate against the schema.
fn case(junit: &Path, name: &str) -> Case {
    common::assert_valid_junit(junit);
    let report = cargo_shard::junit::read_file(junit).unwrap_or_else(|e| panic!("{e}"));
    report
        .suites
        .into_iter()
        .flat_map(|s| s.cases)
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case {name} in {}", junit.display()))
}

/// The failure's `message` and text; panics when the case did not fail.
fn failure(c: &Case) -> (String, String) {
    match &c.status {
        CaseStatus::Failure { message, text, .. } => (message.clone().unwrap_or_default(), text.clone()),
        other => panic!("{} did not fail: {other:?}", c.name),
    }
}

/// Runs cargo-shard with `args` in `dir`; returns (exit code, stderr).
fn shard_in(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cargo-shard"))
        .args(args)
        .env_remove("NEXTEST_PROFILE")
        .current_dir(dir)
        .output()
        .expect("run cargo-shard");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_rust_failure_holds_the_whole_panic_with_left_and_right() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    common::run_rust_sample(&out, &["-E", "binary_id(beta::failing)"]);
    let c = case(&out.join("junit.xml"), "assertion_fails");
    let (message, text) = failure(&c);
    assert!(!message.contains('\n'), "one-line message: {message:?}");
    assert!(message.contains("panicked at"), "{message}");
    for part in ["deliberate failure", "left: 3", "right: 4"] {
        assert!(
            text.contains(part),
            "{part:?} missing from the failure text:\n{text}"
        );
    }
    assert!(
        c.stderr.as_deref().unwrap_or_default().contains("left: 3"),
        "the output stays in system-err"
    );
}

#[test]
fn go_and_gocheck_failures_hold_their_whole_block() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = common::testbed_file("hosts-go.toml");
    let hosts = hosts.to_str().unwrap();

    let out = dir.path().join("go");
    let (code, err) = shard_in(
        &common::fixture("go-sample"),
        &[
            "go",
            "./alpha",
            "--hosts",
            hosts,
            "--out-dir",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 100, "alpha has a failing test: {err}");
    let (message, text) = failure(&case(&out.join("junit.xml"), "TestFailing"));
    assert_eq!(message, "alpha_test.go:56: about to fail");
    assert!(
        text.contains("alpha_test.go:57: intentional failure: 1 != 2")
            && text.contains("--- FAIL: TestFailing ("),
        "{text}"
    );
    assert!(!text.contains("=== RUN"), "{text}");

    let out = dir.path().join("gocheck");
    let gopath = format!(
        "{}:/usr/share/gocode",
        common::fixture("go-sample/gopath").display()
    );
    let (code, err) = shard_in(
        &common::fixture("go-sample/gopath/src/example.com/checksuite"),
        &[
            "go",
            "--gopath",
            &gopath,
            "--hosts",
            hosts,
            "--out-dir",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 100, "the suite has a failing test: {err}");
    let (message, text) = failure(&case(&out.join("junit.xml"), "MathSuite.TestFails"));
    // The assertion's source line is gocheck's to show: it reads it from the build machine's
    // path, which the container may lack (issue 12, item 1).
    assert!(message.contains("check_test.go:28:"), "{message}");
    for part in [
        "... obtained int = 4",
        "... expected int = 5",
        "check_test.go:26: MathSuite.TestFails",
    ] {
        assert!(text.contains(part), "{part:?} missing:\n{text}");
    }
}
