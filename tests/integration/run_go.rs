//! End to end on the live test bed: `cargo shard go` over fixtures/go-sample (module and
//! gocheck suite) and `cargo shard exec … -- make test-integration`, against `go test` run
//! directly.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture() -> PathBuf {
    common::fixture("go-sample")
}

/// (group, name) → `go test -json`'s action word; validates the file and that every case
/// appears once.
fn statuses(path: &Path) -> BTreeMap<(String, String), String> {
    common::assert_valid_junit(path);
    common::junit_statuses(path)
        .into_iter()
        .map(|(key, status)| {
            let action = match status {
                "passed" => "pass",
                "failed" => "fail",
                "skipped" => "skip",
                other => other,
            };
            (key, action.to_string())
        })
        .collect()
}

/// Runs cargo-shard in `dir`; returns (exit code, run id from the events, the events).
fn cargo_shard(dir: &Path, hosts: &Path, args: &[&str]) -> (i32, String, Vec<serde_json::Value>) {
    // Our options go right after the subcommand: what follows `--` is the user's command.
    let out = Command::new(env!("CARGO_BIN_EXE_cargo-shard"))
        .arg(args[0])
        .arg("--hosts")
        .arg(hosts)
        .args(["--message-format", "json"])
        .args(&args[1..])
        .current_dir(dir)
        .output()
        .expect("run cargo-shard");
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let run_id = events
        .iter()
        .find(|v| v["type"] == "run-started")
        .and_then(|v| v["run_id"].as_str().map(String::from))
        .unwrap_or_else(|| {
            panic!(
                "no run-started event; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    (out.status.code().unwrap_or(-1), run_id, events)
}

#[test]
fn go_module_across_three_engines_matches_go_test() {
    let out = tempfile::tempdir().unwrap();
    let (code, run_id, events) = cargo_shard(
        &fixture(),
        &common::hosts_file(),
        &["go", "--out-dir", out.path().to_str().unwrap(), "./..."],
    );
    assert_eq!(code, 100, "the module has a failing test");
    let ours = statuses(&out.path().join("junit.xml"));
    let direct = common::go_test_json(&fixture(), &[]);
    assert_eq!(
        ours.keys().collect::<BTreeSet<_>>(),
        direct.keys().collect::<BTreeSet<_>>(),
        "the same tests, once each"
    );
    for (key, action) in &direct {
        assert_eq!(&ours[key], action, "{key:?}");
    }
    let names: BTreeSet<&str> = ours.keys().map(|k| k.1.as_str()).collect();
    assert!(names.contains("TestFoo") && names.contains("TestFooBar"));
    // The test binaries' output streams while the shard runs: failures are announced live
    // and every shard's log holds its tests' `-test.v` lines.
    // Whole tests are announced; their subtests show in the report.
    let failing: Vec<&str> = direct
        .iter()
        .filter(|(k, action)| *action == "fail" && !k.1.contains('/'))
        .map(|(k, _)| k.1.as_str())
        .collect();
    assert!(!failing.is_empty());
    for name in &failing {
        assert!(
            events
                .iter()
                .any(|v| v["type"] == "test-failing" && v["name"] == *name),
            "{name} announced live"
        );
    }
    let logs: String = std::fs::read_dir(out.path().join("logs"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
        .collect();
    for (_, name) in direct.keys() {
        assert!(logs.contains(&format!(": {name} (")), "{name} in the shard logs");
    }
    common::assert_nothing_left(&run_id);
}

/// A Go shard cut short by `--shard-timeout` keeps nothing its binaries printed: Go 1.19's
/// `-test.v` lines are text a test can print too (see tests/forge.rs), so every test of the
/// shard is an error, the one that passed included.
#[test]
fn go_shard_cut_short_takes_no_result_from_printed_lines() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("filters.txt");
    std::fs::write(&list, "TestBeta1\nTestSleepWhenAsked\n").unwrap();
    let job = dir.path().join("shard.toml");
    std::fs::write(&job, "[job]\nenv = { SAMPLE_SLEEP_MS = \"300000\" }\n").unwrap();
    let out = dir.path().join("out");
    let (code, run_id, events) = cargo_shard(
        &fixture(),
        &common::hosts_file(),
        &[
            "go",
            "--out-dir",
            out.to_str().unwrap(),
            "--filters-file",
            list.to_str().unwrap(),
            "--job",
            job.to_str().unwrap(),
            "--shard-timeout",
            "15s",
            "--shards",
            "1",
            // One shard cut short is the point: batches would run the passing test apart.
            "--no-steal",
        ],
    );
    assert_eq!(code, 100);
    let beta = "example.com/gosample/beta".to_string();
    let got = statuses(&out.join("junit.xml"));
    assert_eq!(
        got,
        BTreeMap::from([
            ((beta.clone(), "TestBeta1".to_string()), "error".to_string()),
            ((beta, "TestSleepWhenAsked".to_string()), "error".to_string()),
        ])
    );
    assert!(
        events
            .iter()
            .any(|v| v["type"] == "shard-finished" && v["end"]["kind"] == "timed_out")
    );
    common::assert_nothing_left(&run_id);
}

#[test]
fn gocheck_suite_runs_each_test_once() {
    let out = tempfile::tempdir().unwrap();
    let suite_dir = fixture().join("gopath/src/example.com/checksuite");
    let gopath = format!("{}:/usr/share/gocode", fixture().join("gopath").display());
    let (code, run_id, _) = cargo_shard(
        &suite_dir,
        &common::hosts_file(),
        &[
            "go",
            "--gopath",
            &gopath,
            "--out-dir",
            out.path().to_str().unwrap(),
        ],
    );
    assert_eq!(code, 100, "the suite has a failing test");
    let ours = statuses(&out.path().join("junit.xml"));
    let listed = Command::new("go")
        // -v: in package mode go test hides a passing package's output.
        .args([
            "test",
            "-v",
            "-count=1",
            ".",
            "-test.run",
            "^Test$",
            "-check.list",
        ])
        .current_dir(&suite_dir)
        .env("GO111MODULE", "off")
        .env("GOPATH", &gopath)
        .output()
        .unwrap();
    let listed: BTreeSet<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter(|l| {
            let mut parts = l.split('.');
            let ident = |p: Option<&str>| {
                p.is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_'))
            };
            ident(parts.next()) && ident(parts.next()) && parts.next().is_none()
        })
        .map(String::from)
        .collect();
    assert!(listed.len() >= 10, "{listed:?}");
    for name in &listed {
        assert_eq!(
            ours.keys().filter(|k| &k.1 == name).count(),
            1,
            "{name} exactly once"
        );
    }
    assert!(ours.values().any(|s| s == "fail"));
    common::assert_nothing_left(&run_id);
}

#[test]
fn exec_make_test_integration_gives_per_test_gocheck_results() {
    let out = tempfile::tempdir().unwrap();
    let hosts = common::testbed_file("hosts-go.toml");
    let (code, run_id, _) = cargo_shard(
        &fixture(),
        &hosts,
        &[
            "exec",
            "--list",
            "make -s list-integration",
            "--filter-env",
            "TESTFLAGS",
            "--filter-format",
            "-check.f {regex}",
            "--shards",
            "2",
            "--out-dir",
            out.path().to_str().unwrap(),
            "--",
            "make",
            "test-integration",
        ],
    );
    assert_eq!(code, 100, "the gocheck suite has a failing test");
    let ours = statuses(&out.path().join("junit.xml"));
    assert!(ours.len() >= 10, "{ours:?}");
    assert!(
        ours.keys().all(|k| k.1.contains('.')),
        "keys are Suite.TestX: {ours:?}"
    );
    assert_eq!(ours.values().filter(|s| *s == "fail").count(), 1, "{ours:?}");
    assert!(ours.values().filter(|s| *s == "pass").count() >= 8);
    common::assert_nothing_left(&run_id);
}
