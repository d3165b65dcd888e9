//! Replays the JSON events of a real run of `fixtures/rust-sample` over the test bed (with a
//! re-run round, so failing tests are reported twice) and rebuilds the run's counts from `test-finished` alone:
//! they must equal `run-finished`'s and the JUnit report's verdicts. Every event carries its
//! wall-clock time, in order, and names tests by `group` and `name`.

use crate::common;

use std::collections::BTreeMap;

use serde_json::Value;

#[derive(Debug, Default, PartialEq)]
struct Counts {
    passed: u64,
    failed: u64,
    flaky: u64,
    skipped: u64,
    errors: u64,
}

/// What a consumer of the stream would do: the last `test-finished` of a test is its verdict;
/// a pass after a failure is flaky.
fn replay(events: &[Value]) -> (Counts, BTreeMap<(String, String), String>) {
    let mut history: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for v in events.iter().filter(|v| v["type"] == "test-finished") {
        let key = (
            v["group"].as_str().expect("group").to_string(),
            v["name"].as_str().expect("name").to_string(),
        );
        history
            .entry(key)
            .or_default()
            .push(v["status"].as_str().expect("status").to_string());
    }
    let mut counts = Counts::default();
    let mut verdicts = BTreeMap::new();
    for (key, statuses) in history {
        let last = statuses.last().unwrap().as_str();
        let flaky = last == "passed" && statuses.iter().any(|s| s == "failed" || s == "error");
        let verdict = if flaky { "flaky" } else { last };
        match verdict {
            "passed" => counts.passed += 1,
            "failed" => counts.failed += 1,
            "flaky" => counts.flaky += 1,
            "skipped" => counts.skipped += 1,
            "error" => counts.errors += 1,
            other => panic!("unknown status {other}"),
        }
        verdicts.insert(key, verdict.to_string());
    }
    (counts, verdicts)
}

#[test]
fn replayed_events_rebuild_the_runs_counts() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let output = common::run_rust_sample(&out_dir, &["--retries", "1"]);
    let events: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(events[0]["type"], "run-started");
    assert_eq!(events[0]["format_version"], 2);
    let last = events.last().unwrap();
    assert_eq!(last["type"], "run-finished");

    // Wall-clock times on every event, never going backwards (RFC 3339 sorts as text).
    let times: Vec<&str> = events
        .iter()
        .map(|v| v["time"].as_str().unwrap_or_else(|| panic!("no time: {v}")))
        .collect();
    assert!(
        times.iter().all(|t| t.len() == 24 && t.ends_with('Z')),
        "{times:?}"
    );
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");

    let (counts, verdicts) = replay(&events);
    let field = |k: &str| last[k].as_u64().unwrap();
    assert_eq!(
        counts,
        Counts {
            passed: field("passed"),
            failed: field("failed"),
            flaky: field("flaky"),
            skipped: field("skipped"),
            errors: field("errors"),
        }
    );
    // Ignored tests are never shipped: their test-finished comes just before run-finished.
    assert!(counts.failed >= 2 && counts.skipped >= 1, "{counts:?}");
    let reruns = events
        .iter()
        .filter(|v| v["type"] == "test-finished" && v["attempt"].as_u64() > Some(1))
        .count();
    assert!(reruns >= 2, "the failing tests' re-runs are in the stream too");

    // The same verdicts as the JUnit report (where flaky is a pass with <flakyFailure>).
    let junit: BTreeMap<(String, String), String> = common::junit_statuses(&out_dir.join("junit.xml"))
        .into_iter()
        .map(|(k, s)| (k, s.to_string()))
        .collect();
    let unflaked: BTreeMap<_, _> = verdicts
        .iter()
        .map(|(k, v)| (k.clone(), if v == "flaky" { "passed".into() } else { v.clone() }))
        .collect();
    assert_eq!(unflaked, junit);

    // Failures come with their message and output; a failing test is named the same way.
    let failed: Vec<&Value> = events
        .iter()
        .filter(|v| v["type"] == "test-finished" && v["status"] == "failed")
        .collect();
    assert!(
        failed
            .iter()
            .all(|v| v["message"].is_string() && v["output"].is_string()),
        "{failed:?}"
    );
    for v in events.iter().filter(|v| v["type"] == "test-failing") {
        let key = (
            v["group"].as_str().unwrap().to_string(),
            v["name"].as_str().unwrap().to_string(),
        );
        assert!(
            verdicts.contains_key(&key),
            "test-failing names a known test: {v}"
        );
    }
    common::assert_nothing_left(&common::run_id_of(&String::from_utf8_lossy(&output.stdout)));
}
