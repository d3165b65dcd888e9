//! A second run plans from the first run's measured durations, for Rust and Go alike.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs cargo-shard with JSON events; returns the `run-started` plan's `estimated` count
/// and the number of planned tests.
fn run(args: &[&str], dir: &Path) -> (u64, usize) {
    let (estimated, tests, _) = run_events(args, dir);
    (estimated, tests)
}

/// [`run`], with every event of the run.
fn run_events(args: &[&str], dir: &Path) -> (u64, usize, Vec<serde_json::Value>) {
    let out = Command::new(env!("CARGO_BIN_EXE_cargo-shard"))
        .args(args)
        .arg("--hosts")
        .arg(common::hosts_file())
        .args(["--message-format", "json"])
        .current_dir(dir)
        .output()
        .expect("run cargo-shard");
    assert_eq!(
        out.status.code(),
        Some(100),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .collect();
    let started = events
        .iter()
        .find(|v| v["type"] == "run-started")
        .expect("a run-started event");
    let plan = &started["plan"];
    let tests = plan["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["tests"].as_array().unwrap().len())
        .sum();
    (plan["estimated"].as_u64().unwrap(), tests, events)
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

#[test]
fn rust_second_run_plans_from_history() {
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().to_str().unwrap();
    let manifest = fixture("rust-sample/Cargo.toml");
    let args = [
        "--manifest-path",
        manifest.to_str().unwrap(),
        "--out-dir",
        out_dir,
    ];
    let (estimated, tests) = run(&args, &fixture("rust-sample"));
    assert_eq!(estimated as usize, tests, "a first run knows nothing");
    let history = std::fs::read_to_string(out.path().join("history.json")).unwrap();
    assert!(
        history.contains("\"alpha::integration\"") && history.contains("shard_overhead"),
        "{history}"
    );
    let (estimated, _, events) = run_events(&args, &fixture("rust-sample"));
    assert_eq!(estimated, 0, "every test has a measured duration now");

    // Each shard's container (the bed's two slots per host share one, two tests at once)
    // starts the planner's two longest tests first, not the two nextest sorts first by name.
    let name =
        |t: &serde_json::Value| format!("{} {}", t["group"].as_str().unwrap(), t["name"].as_str().unwrap());
    let started = events.iter().find(|v| v["type"] == "run-started").unwrap();
    for shard in started["plan"]["shards"].as_array().unwrap() {
        let planned: Vec<String> = shard["tests"].as_array().unwrap().iter().map(name).collect();
        let began: Vec<String> = events
            .iter()
            .filter(|e| e["type"] == "test-started" && e["shard"] == shard["index"] && e["attempt"] == 1)
            .map(name)
            .collect();
        let first = |v: &[String]| {
            v.iter()
                .take(2)
                .cloned()
                .collect::<std::collections::BTreeSet<_>>()
        };
        assert_eq!(
            first(&began),
            first(&planned),
            "shard {}: {began:?}",
            shard["index"]
        );
    }
}

#[test]
fn go_second_run_plans_from_history() {
    let out = tempfile::tempdir().unwrap();
    let args = ["go", "--out-dir", out.path().to_str().unwrap(), "./..."];
    let (estimated, tests) = run(&args, &fixture("go-sample"));
    assert_eq!(estimated as usize, tests);
    let history = std::fs::read_to_string(out.path().join("history.json")).unwrap();
    // Go tests are known by import path + name.
    assert!(history.contains("\"example.com/gosample/alpha\""), "{history}");
    let (estimated, _) = run(&args, &fixture("go-sample"));
    assert_eq!(estimated, 0);
}

/// A crate of one slow test and five quick ones whose nextest config writes a JUnit report.
fn crate_with_junit(dir: &Path) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::create_dir_all(dir.join(".config")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"seeded\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    )
    .unwrap();
    let mut lib = String::from("#[cfg(test)]\nmod tests {\n");
    lib.push_str(
        "    #[test]\n    fn slow() { std::thread::sleep(std::time::Duration::from_millis(700)); }\n",
    );
    for i in 0..5 {
        lib.push_str(&format!("    #[test]\n    fn quick_{i}() {{}}\n"));
    }
    lib.push_str("}\n");
    std::fs::write(dir.join("src/lib.rs"), lib).unwrap();
    std::fs::write(
        dir.join(".config/nextest.toml"),
        "[profile.default.junit]\npath = \"junit.xml\"\n",
    )
    .unwrap();
}

/// `cargo-shard ARGS --hosts BED --manifest-path MANIFEST --history HISTORY`, asserting it
/// exits with `code`; its stdout and stderr.
fn on_crate(args: &[&str], manifest: &Path, history: &Path, code: i32) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cargo-shard"))
        .args(args)
        .arg("--hosts")
        .arg(common::hosts_file())
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--history")
        .arg(history)
        .env_remove("NEXTEST_PROFILE")
        .output()
        .expect("run cargo-shard");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

#[test]
fn a_first_run_plans_from_the_report_nextest_left() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    crate_with_junit(&ws);
    let manifest = ws.join("Cargo.toml");
    let none = dir.path().join("none.json");
    // No report yet: every test estimated.
    let (before, _) = on_crate(&["plan"], &manifest, &none, 0);
    assert!(before.contains("6 tests estimated (no history)"), "{before}");
    assert!(!before.contains("timings:"), "{before}");
    // A report of a run that stopped early times too few of the tests to plan from.
    let report = ws.join("target/nextest/default/junit.xml");
    std::fs::create_dir_all(report.parent().unwrap()).unwrap();
    std::fs::write(
        &report,
        "<testsuites><testsuite name=\"seeded\" tests=\"1\">\
         <testcase classname=\"seeded\" name=\"tests::quick_0\" time=\"0.001\"/>\
         </testsuite></testsuites>",
    )
    .unwrap();
    let (partial, stderr) = on_crate(&["plan"], &manifest, &none, 0);
    assert!(partial.contains("6 tests estimated (no history)"), "{partial}");
    assert!(
        stderr.contains(&format!(
            "warning: {}: times only 1 of the 6 tests (a run that stopped early?); planning from estimates",
            report.display()
        )),
        "{stderr}"
    );

    let ran = Command::new("cargo")
        .args(["nextest", "run", "--manifest-path"])
        .arg(&manifest)
        .env_remove("NEXTEST_PROFILE")
        .output()
        .expect("cargo nextest run");
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
    assert!(
        std::fs::read_to_string(&report).unwrap().contains("tests::slow"),
        "nextest wrote its report"
    );

    let (after, _) = on_crate(&["plan"], &manifest, &none, 0);
    assert!(!after.contains("estimated"), "{after}");
    let line = after
        .lines()
        .find(|l| l.starts_with("timings: "))
        .unwrap_or_else(|| panic!("{after}"));
    assert_eq!(
        line,
        format!(
            "timings: 6 tests from {} (nextest's report of an earlier run; no history yet)",
            report.display()
        )
    );
    // The plan counts the slow test's 0.7 s and the quick ones' nothing, not six estimates.
    let (json, _) = on_crate(&["plan", "--format", "json"], &manifest, &none, 0);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["estimated"], 0, "{v}");
    let total = v["total"].as_f64().unwrap();
    assert!((0.7..2.0).contains(&total), "{v}");

    // Once a run has recorded these tests, its history plans them: the report is left alone.
    let history = dir.path().join("history.json");
    let out = dir.path().join("out");
    let (_, stderr) = on_crate(
        &["shard", "--out-dir", out.to_str().unwrap()],
        &manifest,
        &history,
        0,
    );
    assert!(
        stderr.contains("timings: 6 tests from "),
        "the run says it too:\n{stderr}"
    );
    let (text, _) = on_crate(&["plan"], &manifest, &history, 0);
    assert!(
        !text.contains("timings:") && !text.contains("estimated"),
        "{text}"
    );
}
