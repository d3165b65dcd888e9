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
