//! End to end on the live test bed: `cargo shard` over `fixtures/rust-sample` across three
//! engines (one through the ssh tunnel) against a local `cargo nextest run` of the same suite.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture() -> PathBuf {
    common::fixture("rust-sample/Cargo.toml")
}

/// What a plain local nextest run says, through a JUnit profile of our own.
fn local_nextest(dir: &Path) -> BTreeMap<(String, String), &'static str> {
    let config = dir.join("local.toml");
    std::fs::write(
        &config,
        format!("[store]\ndir = {:?}\n[profile.local]\nfail-fast = false\n[profile.local.junit]\npath = \"junit.xml\"\n", dir.join("store")),
    )
    .unwrap();
    let status = Command::new("cargo")
        .args([
            "nextest",
            "run",
            "--no-fail-fast",
            "--profile",
            "local",
            "--manifest-path",
        ])
        .arg(fixture())
        .arg("--tool-config-file")
        .arg(format!("local:{}", config.display()))
        .output()
        .expect("cargo nextest run");
    assert_eq!(
        status.status.code(),
        Some(100),
        "the fixture has failing tests: {status:?}"
    );
    common::junit_statuses(&dir.join("store/local/junit.xml"))
}

#[test]
fn shards_the_rust_sample_across_three_engines() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let output = common::run_rust_sample(&out_dir, &["--shards", "6"]);

    // The merged report is valid and holds every listed test once, as a local run judges it.
    let junit_path = out_dir.join("junit.xml");
    common::assert_valid_junit(&junit_path);
    let ours = common::junit_statuses(&junit_path);
    let listed = common::rust_sample_listed();
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        listed.keys().collect::<Vec<_>>(),
        "every listed test exactly once"
    );
    let local = local_nextest(dir.path());
    for (key, ignored) in &listed {
        let expected = if *ignored {
            "skipped"
        } else {
            local.get(key).copied().unwrap_or("missing locally")
        };
        assert_eq!(ours[key], expected, "{key:?}");
    }
    assert!(ours.values().filter(|s| **s == "failed").count() >= 2);

    // Every engine was staged and took part, and the JSON events agree with the JUnit.
    let mut run_id = String::new();
    let mut hosts_used = std::collections::BTreeSet::new();
    let mut staged = std::collections::BTreeSet::new();
    // Failing tests are announced live, before their shard ends.
    let mut failing_live = std::collections::BTreeSet::new();
    let mut finished_shards = std::collections::BTreeSet::new();
    let mut finished = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        match v["type"].as_str().unwrap() {
            "run-started" => run_id = v["run_id"].as_str().unwrap().to_string(),
            "host-staged" => {
                staged.insert(v["host"].as_str().unwrap().to_string());
            }
            "shard-finished" => {
                hosts_used.insert(v["host"].as_str().unwrap().to_string());
                finished_shards.insert(v["shard"].as_u64().unwrap());
            }
            "test-failing" => {
                let shard = v["shard"].as_u64().unwrap();
                assert!(
                    !finished_shards.contains(&shard),
                    "announced after its shard ended: {line}"
                );
                failing_live.insert(format!(
                    "{} {}",
                    v["group"].as_str().unwrap(),
                    v["name"].as_str().unwrap()
                ));
            }
            "run-finished" => {
                for t in v["tests"].as_array().unwrap() {
                    let key = (
                        t["group"].as_str().unwrap().to_string(),
                        t["name"].as_str().unwrap().to_string(),
                    );
                    finished.insert(key, t["status"].as_str().unwrap().to_string());
                }
                assert_eq!(v["exit_code"], 100);
            }
            _ => {}
        }
    }
    // Each host starts once its own staging ends: a host still uploading its first payload
    // (e3, through ssh) can see the others take its planned shards, so not every host need
    // run one; every host must have been staged, and shards must have spread.
    assert_eq!(staged.iter().collect::<Vec<_>>(), ["e1", "e2", "e3"]);
    assert!(hosts_used.len() >= 2, "shards ran on {hosts_used:?}");
    let failed: std::collections::BTreeSet<String> = ours
        .iter()
        .filter(|(_, s)| **s == "failed")
        .map(|((g, n), _)| format!("{g} {n}"))
        .collect();
    assert_eq!(failing_live, failed, "every failure announced live, once");
    assert_eq!(finished.len(), ours.len());
    for (key, status) in &ours {
        assert_eq!(finished[key], *status, "{key:?}: events and JUnit agree");
    }

    // Nothing of this run is left on any engine.
    assert!(!run_id.is_empty());
    common::assert_nothing_left(&run_id);
    // The logs of every shard are there.
    assert!(std::fs::read_dir(out_dir.join("logs")).unwrap().count() >= 6);
}

/// Seconds since the epoch, as `docker events --since` takes them.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `docker events` of run `run_id` on `host` since `since` until now, with `filters` (each
/// `key=value`), one line per event in `format`.
fn run_events(
    host: &cargo_shard::config::Host,
    since: u64,
    run_id: &str,
    filters: &[&str],
    format: &str,
) -> Vec<String> {
    let mut cmd = Command::new("docker");
    cmd.arg("-H")
        .arg(host.endpoint.to_string())
        .args(["events", "--since", &since.to_string()])
        .args(["--until", &(unix_now() + 1).to_string()]);
    for f in filters {
        cmd.args(["--filter", f]);
    }
    let out = cmd
        .arg("--filter")
        .arg(format!("label={}={run_id}", cargo_shard::config::RUN_LABEL))
        .args(["--format", format])
        .output()
        .expect("docker events");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

/// A `--retries` re-run is a phase of its own: its batch runs in the slot container the first
/// phase left open, which the run's cleanup then removes with everything else.
#[test]
fn a_retry_runs_in_the_slot_container_the_first_phase_left_open() {
    let e1 = common::host("e1");
    let dir = tempfile::tempdir().unwrap();
    let since = unix_now();
    let (code, stdout, stderr) = common::cargo_shard(&[
        "--hosts",
        common::hosts_file().to_str().unwrap(),
        "--only-host",
        "e1",
        "--manifest-path",
        fixture().to_str().unwrap(),
        "--workspace",
        "--out-dir",
        dir.path().join("out").to_str().unwrap(),
        "--history",
        dir.path().join("history.json").to_str().unwrap(),
        "--message-format",
        "json",
        "--retries",
        "1",
        "-E",
        "test(=assertion_fails) | test(/quick_0/)",
    ]);
    assert_eq!(code, 100, "{stderr}");
    let run_id = common::run_id_of(&stdout);
    let reruns = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "shard-started" && v["attempt"].as_u64() == Some(2))
        .count();
    assert_eq!(reruns, 1, "the failing test is run again: {stdout}");
    // Every container of the run e1 created or removed, by name and action.
    let slot_events: Vec<String> = run_events(
        &e1,
        since,
        &run_id,
        &["type=container", "event=create", "event=destroy"],
        "{{.Action}} {{.Actor.Attributes.name}}",
    )
    .into_iter()
    .filter(|l| l.contains("-slot-"))
    .collect();
    let created = slot_events.iter().filter(|l| l.starts_with("create ")).count();
    let destroyed = slot_events.iter().filter(|l| l.starts_with("destroy ")).count();
    assert_eq!((created, destroyed), (1, 1), "{slot_events:?}");
}

/// A batch whose tests all passed on nextest's libtest-json channel (exit 0) is settled from
/// that channel: its JUnit, which would only repeat it, is not downloaded. One with a failure
/// still is, and the failure's message comes from it.
#[test]
fn a_shard_whose_tests_all_passed_live_is_settled_without_downloading_its_report() {
    let e1 = common::host("e1");
    // Report downloads (`GET archive`) from run `run_id`'s shard containers on e1 since `since`.
    let downloads = |since: u64, run_id: &str| {
        run_events(
            &e1,
            since,
            run_id,
            &["event=archive-path"],
            "{{.Actor.Attributes.name}}",
        )
        .into_iter()
        .filter(|name| !name.contains("-stage-") && !name.contains("-probe"))
        .collect::<Vec<_>>()
    };
    let dir = tempfile::tempdir().unwrap();
    let manifest = fixture();
    let hosts = common::hosts_file();
    // (downloads, exit code, stderr, merged JUnit) of a run of the tests `filter` selects.
    let run = |name: &str, filter: &str| {
        let out_dir = dir.path().join(name);
        let history = dir.path().join(format!("{name}.json"));
        let since = unix_now();
        let (code, stdout, stderr) = common::cargo_shard(&[
            "--hosts",
            hosts.to_str().unwrap(),
            "--only-host",
            "e1",
            "--manifest-path",
            manifest.to_str().unwrap(),
            "--workspace",
            "--out-dir",
            out_dir.to_str().unwrap(),
            "--history",
            history.to_str().unwrap(),
            "--message-format",
            "json",
            "-E",
            filter,
        ]);
        let fetched = downloads(since, &common::run_id_of(&stdout));
        (fetched, code, stderr, out_dir.join("junit.xml"))
    };

    let (fetched, code, stderr, junit) = run("passing", "test(/quick_0/)");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        fetched,
        Vec::<String>::new(),
        "reports downloaded for an all-passing run"
    );
    common::assert_valid_junit(&junit);
    let statuses = common::junit_statuses(&junit);
    assert_eq!(statuses.len(), 9, "{statuses:?}");
    assert!(statuses.values().all(|s| *s == "passed"), "{statuses:?}");
    // Durations still come with every result (the history plans the next run from them).
    let report = cargo_shard::junit::read_file(&junit).unwrap();
    assert!(
        report
            .suites
            .iter()
            .flat_map(|s| &s.cases)
            .all(|c| c.time.is_some())
    );

    let (fetched, code, stderr, junit) = run("failing", "test(/quick_01$|assertion_fails/)");
    assert_eq!(code, 100, "{stderr}");
    assert!(
        !fetched.is_empty(),
        "a shard with a failure must download its report"
    );
    let report = cargo_shard::junit::read_file(&junit).unwrap();
    let failed = report
        .suites
        .iter()
        .flat_map(|s| &s.cases)
        .find(|c| c.name == "assertion_fails")
        .expect("assertion_fails in the report");
    match &failed.status {
        cargo_shard::junit::CaseStatus::Failure { text, .. } => {
            assert!(text.contains("assertion"), "{text}")
        }
        other => panic!("assertion_fails: {other:?}"),
    }
}
