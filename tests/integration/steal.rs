//! Test-level stealing on the live test bed: a first run (no history) whose plan is wrong
//! because one host is slow; the idle slot takes the batches planned for the slow one, and
//! every test still runs and is reported exactly once.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// Tests per package; each sleeps `SLOW_MS` on e1 and nothing elsewhere.
const TESTS: usize = 16;
const SLOW_MS: u64 = 1500;

/// A Go module whose tests are slow only on host e1 (they read `CARGO_SHARD_HOST`, which every
/// shard gets), so a plan made without history is wrong in a known direction.
fn slow_on_e1(dir: &Path) {
    std::fs::write(dir.join("go.mod"), "module example.com/steal\n\ngo 1.19\n").unwrap();
    let mut code = format!(
        "package steal\n\nimport (\n\t\"os\"\n\t\"testing\"\n\t\"time\"\n)\n\n\
         func pause() {{\n\tif os.Getenv(\"CARGO_SHARD_HOST\") == \"e1\" {{\n\t\t\
         time.Sleep({SLOW_MS} * time.Millisecond)\n\t}}\n}}\n"
    );
    for i in 0..TESTS {
        code.push_str(&format!("\nfunc TestStep{i:02}(t *testing.T) {{ pause() }}\n"));
    }
    std::fs::write(dir.join("steal_test.go"), code).unwrap();
}

/// The test bed's e1 and e2 with one slot each.
fn two_single_slot_hosts(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(common::hosts_file()).unwrap();
    let parts: Vec<&str> = text.split("[[host]]").take(3).collect();
    let text = parts.join("[[host]]").replace("slots = 2", "slots = 1");
    let path = dir.join("hosts.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `cargo shard go ./...` in a fresh copy of the module, on e1 and e2 with one slot each, JSON
/// events on stdout, with `extra` arguments; the scratch directory goes with the result.
fn run_slow_on_e1(extra: &[&str]) -> (std::process::Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("module");
    std::fs::create_dir(&module).unwrap();
    slow_on_e1(&module);
    let hosts = two_single_slot_hosts(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_cargo-shard"))
        .args(["go", "--hosts"])
        .arg(&hosts)
        .args(["--message-format", "json", "--out-dir"])
        .arg(dir.path().join("out"))
        .args(extra)
        .arg("./...")
        .current_dir(&module)
        .output()
        .unwrap();
    (out, dir)
}

#[test]
fn an_idle_slot_takes_the_batches_planned_for_a_slow_host_and_each_test_runs_once() {
    let (run, dir) = run_slow_on_e1(&[]);
    let out = dir.path().join("out");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&run.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let run_id = common::run_id_of(&String::from_utf8_lossy(&run.stdout));

    // The plan put half the tests on e1, none of them with a known duration.
    let started = events.iter().find(|e| e["type"] == "run-started").unwrap();
    let planned_on_e1: BTreeSet<String> = started["plan"]["shards"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["host"] == "e1")
        .flat_map(|s| s["tests"].as_array().unwrap().clone())
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(planned_on_e1.len(), TESTS / 2, "{started}");

    // Each test finished once, passed, and some planned for e1 ran on e2.
    let mut ran_on: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in events.iter().filter(|e| e["type"] == "test-finished") {
        assert_eq!(e["status"], "passed", "{e}");
        ran_on
            .entry(e["name"].as_str().unwrap().to_string())
            .or_default()
            .push(e["host"].as_str().unwrap().to_string());
    }
    assert_eq!(ran_on.len(), TESTS);
    assert!(ran_on.values().all(|hosts| hosts.len() == 1), "{ran_on:?}");
    let stolen: Vec<&String> = planned_on_e1
        .iter()
        .filter(|name| ran_on[*name] == ["e2"])
        .collect();
    assert!(!stolen.is_empty(), "nothing planned for e1 ran on e2: {ran_on:?}");

    // Batches: more units of work than shards, the later ones in each slot's one container.
    let finished: Vec<&serde_json::Value> = events.iter().filter(|e| e["type"] == "shard-finished").collect();
    assert!(finished.len() > 2, "{finished:?}");
    let containers: BTreeSet<&str> = finished
        .iter()
        .map(|e| e["container"].as_str().unwrap())
        .collect();
    // At most one per slot: e2 may take everything before e1's slot is even open.
    assert!(
        containers.len() <= 2 && containers.iter().all(|c| c.contains("-slot-")),
        "one container per slot: {containers:?}"
    );

    let junit = common::junit_statuses(&out.join("junit.xml"));
    common::assert_valid_junit(&out.join("junit.xml"));
    assert_eq!(junit.len(), TESTS);
    assert!(junit.values().all(|s| *s == "passed"));
    common::assert_nothing_left(&run_id);
}

#[test]
fn with_no_steal_every_planned_shard_runs_whole() {
    let (run, _dir) = run_slow_on_e1(&["--no-steal"]);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let finished: Vec<&serde_json::Value> = events.iter().filter(|e| e["type"] == "shard-finished").collect();
    assert_eq!(finished.len(), 2, "{finished:?}");
    for e in events.iter().filter(|e| e["type"] == "test-finished") {
        let on_e1 = e["host"] == "e1";
        let shard_on_e1 = finished
            .iter()
            .any(|f| f["shard"] == e["shard"] && f["host"] == "e1");
        assert_eq!(on_e1, shard_on_e1, "{e}");
    }
    common::assert_nothing_left(&common::run_id_of(&stdout));
}
