//! Results that cannot be forged: tests of `fixtures/forge/` print the status lines of a test
//! that never finishes (nextest's human `PASS` line and its libtest-json line, Go's
//! `--- PASS:`); the shard is cut short (`--shard-timeout`, `--test-timeout`) and the hung
//! test must still come out as an error, never as passed.

use crate::common;

use std::path::Path;
use std::process::Command;

/// Runs cargo-shard in `dir` with JSON events and reports in `out`, `after` following a `--`;
/// returns (exit code, stderr, the run's events).
fn run(
    dir: &Path,
    out: &Path,
    args: &[&str],
    after: &[&str],
) -> (Option<i32>, String, Vec<serde_json::Value>) {
    let output = Command::new(env!("CARGO_BIN_EXE_cargo-shard"))
        .env_remove("NEXTEST_PROFILE")
        .current_dir(dir)
        .args(args)
        .arg("--out-dir")
        .arg(out)
        .args(["--message-format", "json", "--shards", "1"])
        .args(if after.is_empty() { &[][..] } else { &["--"][..] })
        .args(after)
        .output()
        .expect("run cargo-shard");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let run_id = events
        .iter()
        .find(|v| v["type"] == "run-started")
        .and_then(|v| v["run_id"].as_str())
        .unwrap_or_else(|| panic!("no run-started event; stderr:\n{stderr}"));
    common::assert_nothing_left(run_id);
    (output.status.code(), stderr, events)
}

/// The names of the tests whose start the run announced.
fn started(events: &[serde_json::Value]) -> std::collections::BTreeSet<String> {
    events
        .iter()
        .filter(|v| v["type"] == "test-started")
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .collect()
}

/// The statuses of a valid report, by test name.
fn statuses(out: &Path) -> std::collections::BTreeMap<String, &'static str> {
    let junit = out.join("junit.xml");
    common::assert_valid_junit(&junit);
    common::junit_statuses(&junit)
        .into_iter()
        .map(|((_, name), status)| (name, status))
        .collect()
}

fn nextest_forged(after: &[&str]) -> std::collections::BTreeMap<String, &'static str> {
    let out = tempfile::tempdir().unwrap();
    let hosts = common::hosts_file();
    let manifest = common::fixture("forge/rust/Cargo.toml");
    let args = vec![
        "shard",
        "--hosts",
        hosts.to_str().unwrap(),
        "--manifest-path",
        manifest.to_str().unwrap(),
        "--shard-timeout",
        "15s",
        // Both tests at once, in one batch: the forger prints its forged line while the hung
        // test runs beside it in the same nextest.
        "-j",
        "2",
    ];
    let (code, stderr, events) = run(out.path(), out.path(), &args, after);
    assert_eq!(code, Some(100), "stderr:\n{stderr}");
    // The hung test was seen starting, live, though its shard never reported.
    assert!(started(&events).contains("zz_never_finishes"), "{events:#?}");
    statuses(out.path())
}

/// nextest prints the forger's output (the forged `PASS` line, indented) when it fails; the
/// hung test's shard then times out before its report is written.
#[test]
fn nextest_a_printed_pass_line_does_not_pass_a_hung_test() {
    let got = nextest_forged(&[]);
    assert_eq!(got.get("zz_never_finishes"), Some(&"error"), "{got:?}");
    assert_eq!(got.get("aa_forger_fails"), Some(&"failed"), "{got:?}");
}

/// With `--no-capture` a test would write straight into nextest's own streams, where its
/// lines could pass for nextest's: the flag is refused before anything is built or started.
#[test]
fn nextest_no_capture_is_refused_before_anything_runs() {
    let out = tempfile::tempdir().unwrap();
    let hosts = common::hosts_file();
    let manifest = common::fixture("forge/rust/Cargo.toml");
    let (code, stdout, stderr) = common::cargo_shard(&[
        "--hosts",
        hosts.to_str().unwrap(),
        "--manifest-path",
        manifest.to_str().unwrap(),
        "--out-dir",
        out.path().to_str().unwrap(),
        "--",
        "--no-capture",
    ]);
    assert_eq!(code, 2, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stderr.contains("--no-capture"), "{stderr}");
    assert!(
        !out.path().join("junit.xml").exists(),
        "nothing ran, nothing was written"
    );
}

fn go_forged(extra: &[&str]) -> (Option<i32>, std::collections::BTreeMap<String, &'static str>) {
    let out = tempfile::tempdir().unwrap();
    let hosts = common::testbed_file("hosts-go.toml");
    let mut args = vec!["go", "--hosts", hosts.to_str().unwrap()];
    args.extend_from_slice(extra);
    let (code, stderr, _) = run(&common::fixture("forge/go"), out.path(), &args, &[]);
    let got = statuses(out.path());
    assert_ne!(code, Some(0), "stderr:\n{stderr}");
    (code, got)
}

/// Go's `--- PASS: TestZHang` printed by TestZHang itself, then the shard times out.
#[test]
fn go_a_printed_pass_line_does_not_pass_a_hung_test() {
    let (code, got) = go_forged(&["--shard-timeout", "15s"]);
    assert_eq!(code, Some(100), "{got:?}");
    assert_eq!(got.get("TestZHang"), Some(&"error"), "{got:?}");
    assert_ne!(got.get("TestAForger"), Some(&"passed"), "{got:?}");
}

/// The same line, then `-test.timeout` ends the binary with a panic: the report read after
/// the binary died must not take the hung test's own line for its result.
#[test]
fn go_a_printed_pass_line_does_not_pass_a_test_the_binary_died_in() {
    let (code, got) = go_forged(&["--test-timeout", "3s"]);
    assert_eq!(code, Some(100), "{got:?}");
    assert_ne!(got.get("TestZHang"), Some(&"passed"), "{got:?}");
    assert_eq!(got.get("TestAForger"), Some(&"failed"), "{got:?}");
}
