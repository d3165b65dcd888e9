//! CI-matrix mode end to end: three `--partition K/3` jobs run at once as separate processes
//! (local processes, as in CI jobs without Docker) on fixtures/rust-sample and
//! fixtures/go-sample, then `cargo shard merge` must give every planned test exactly once with
//! the status the runner gave it; a job planned from another history is refused.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::{fixture, junit_statuses};

fn cargo_shard(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cargo-shard"));
    cmd.current_dir(dir)
        .env_remove("NEXTEST_PROFILE")
        .env_remove("DOCKER_HOST")
        .env_remove("CARGO_SHARD_HOSTS");
    cmd
}

/// Starts job `k` of 3 with `args`, its outputs in `out/j<k>`.
fn start_job(dir: &Path, args: &[&str], k: usize, out: &Path) -> Child {
    cargo_shard(dir)
        .args(args)
        .arg("--partition")
        .arg(format!("{k}/3"))
        .arg("--out-dir")
        .arg(out)
        .args(["--no-progress", "--color", "never"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start a partition job")
}

/// Runs the three jobs at once; returns each job's (exit code, stderr) and fingerprint line.
fn run_jobs(dir: &Path, args: &[&str], out: &Path) -> Vec<(i32, String)> {
    let children: Vec<Child> = (1..=3)
        .map(|k| start_job(dir, args, k, &out.join(format!("j{k}"))))
        .collect();
    children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().unwrap();
            (
                o.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        })
        .collect()
}

/// The fingerprint a job printed.
fn fingerprint(stderr: &str) -> String {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("partition "))
        .unwrap_or_else(|| panic!("no partition line in:\n{stderr}"));
    line.rsplit("plan fingerprint ")
        .next()
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string()
}

fn merge(inputs: &[PathBuf], out: &Path) -> (i32, String) {
    let o = cargo_shard(Path::new("/"))
        .arg("merge")
        .args(inputs)
        .arg("--out-dir")
        .arg(out)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Checks the jobs agreed on one plan and merge gave each planned test once; returns the
/// merged (classname, name) → status.
fn merged(jobs: &[(i32, String)], out: &Path) -> BTreeMap<(String, String), &'static str> {
    let prints: BTreeSet<String> = jobs.iter().map(|(_, e)| fingerprint(e)).collect();
    assert_eq!(
        prints.len(),
        1,
        "every job planned from the same inputs: {jobs:?}"
    );
    let dirs: Vec<PathBuf> = (1..=3).map(|k| out.join(format!("j{k}"))).collect();
    let (code, err) = merge(
        &[out.join("j*").to_string_lossy().into_owned().into()],
        &out.join("merged"),
    );
    assert_eq!(code, 100, "the fixtures fail some tests on purpose:\n{err}");
    assert!(err.starts_with("merged 3 jobs (plan fingerprint "), "{err}");
    for d in &dirs {
        assert!(d.join("partition.json").is_file());
    }
    let junit = out.join("merged/junit.xml");
    common::assert_valid_junit(&junit);
    let html = std::fs::read_to_string(out.join("merged/report.html")).unwrap();
    assert_eq!(html.matches("<tr class=\"job\">").count(), 3, "a row per job");
    junit_statuses(&junit)
}

#[test]
fn rust_sample_three_jobs_merge_to_every_test_once_and_a_foreign_history_is_refused() {
    let out = tempfile::tempdir().unwrap();
    let manifest = fixture("rust-sample/Cargo.toml");
    let timings = fixture("junit/rust-sample-run.xml");
    let args = [
        "--manifest-path",
        manifest.to_str().unwrap(),
        "--timings-from",
        timings.to_str().unwrap(),
    ];
    let jobs = run_jobs(Path::new("/"), &args, out.path());
    for (code, err) in &jobs {
        assert!(matches!(code, 0 | 100), "{err}");
        assert!(
            !err.contains("backend: docker"),
            "partition jobs run here:\n{err}"
        );
    }
    let ours = merged(&jobs, out.path());
    let listed = common::rust_sample_listed();
    assert_eq!(
        ours.keys().collect::<BTreeSet<_>>(),
        listed.keys().collect::<BTreeSet<_>>(),
        "every listed test once"
    );
    // The fixture's contract: these two fail, ignored tests are skipped, the rest pass.
    let failing = ["fails_with_messy_output", "assertion_fails"];
    for (key, ignored) in &listed {
        let want = match () {
            _ if *ignored => "skipped",
            _ if failing.contains(&key.1.as_str()) => "failed",
            _ => "passed",
        };
        assert_eq!(ours[key], want, "{key:?}");
    }

    // Job 2 again, from a history the others never saw: merge must refuse the mix.
    let other = out.path().join("other-history.json");
    std::fs::write(
        &other,
        "{\"version\": 1, \"tests\": {\"alpha\": {\"tests::quick_01\": [9.0]}}}\n",
    )
    .unwrap();
    let mut foreign_args = args.to_vec();
    foreign_args.extend(["--history", other.to_str().unwrap()]);
    let foreign = out.path().join("foreign/j2");
    let o = start_job(Path::new("/"), &foreign_args, 2, &foreign)
        .wait_with_output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_ne!(
        fingerprint(&err),
        fingerprint(&jobs[1].1),
        "another history, another fingerprint"
    );
    let (code, err) = merge(
        &[out.path().join("j1"), foreign, out.path().join("j3")],
        &out.path().join("mixed"),
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.starts_with("error: merge: job 1/3 (")
            && err
                .trim_end()
                .ends_with("the jobs saw different test listings or histories"),
        "{err}"
    );
    assert!(
        !out.path().join("mixed/junit.xml").exists(),
        "nothing merged from a refused mix"
    );

    // A job whose output is missing: its planned tests are named.
    let (code, err) = merge(
        &[out.path().join("j1"), out.path().join("j3")],
        &out.path().join("partial"),
    );
    assert_eq!(code, 102, "{err}");
    assert!(err.starts_with("error: merge: no output from job 2/3; "), "{err}");
    assert!(err.contains("planned test(s) missing: "), "{err}");
}

#[test]
fn go_sample_three_jobs_merge_to_what_go_test_reports() {
    let out = tempfile::tempdir().unwrap();
    let dir = fixture("go-sample");
    let jobs = run_jobs(&dir, &["go", "./..."], out.path());
    for (code, err) in &jobs {
        assert!(matches!(code, 0 | 100), "{err}");
    }
    let ours: BTreeMap<(String, String), String> = merged(&jobs, out.path())
        .into_iter()
        .map(|(k, s)| {
            let action = match s {
                "passed" => "pass",
                "failed" => "fail",
                "skipped" => "skip",
                other => other,
            };
            (k, action.to_string())
        })
        .collect();
    let direct = common::go_test_json(&dir, &[]);
    assert_eq!(
        ours.keys().collect::<BTreeSet<_>>(),
        direct.keys().collect::<BTreeSet<_>>(),
        "the same tests (and subtests), once each"
    );
    for (key, action) in &direct {
        assert_eq!(&ours[key], action, "{key:?}");
    }
}
