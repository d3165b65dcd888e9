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
