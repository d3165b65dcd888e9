//! Human output of real runs over the test bed when standard error is not a terminal (CI):
//! plain lines with no escape codes, GitHub Actions folds and annotations, `-v` per-test
//! lines that agree with the JUnit report, and colour only when `--color always` asks.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture() -> PathBuf {
    common::fixture("rust-sample/Cargo.toml")
}

/// cargo-shard over the fixture with stderr piped, in an environment that would colour a
/// terminal; returns (exit code, stderr).
fn run(out_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cargo-shard"));
    cmd.arg("--hosts")
        .arg(common::hosts_file())
        .arg("--manifest-path")
        .arg(fixture())
        .arg("--out-dir")
        .arg(out_dir)
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("CI")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITLAB_CI")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("CARGO_TERM_COLOR")
        .env("TERM", "xterm-256color");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run cargo-shard");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// (group, name) → PASS / FAIL / SKIP / ERROR, from the run's JUnit.
fn junit_words(path: &Path) -> BTreeMap<(String, String), &'static str> {
    common::junit_statuses(path)
        .into_iter()
        .map(|(key, status)| {
            (
                key,
                match status {
                    "passed" => "PASS",
                    "failed" => "FAIL",
                    "skipped" => "SKIP",
                    _ => "ERROR",
                },
            )
        })
        .collect()
}

#[test]
fn piped_output_is_plain_and_folds_each_shard_on_github_actions() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let step_summary = dir.path().join("step-summary.md");
    let (code, stderr) = run(
        &out_dir,
        &["-v"],
        &[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_STEP_SUMMARY", step_summary.to_str().unwrap()),
        ],
    );
    assert_eq!(
        code,
        Some(100),
        "the fixture has failing tests; stderr:\n{stderr}"
    );
    assert!(
        !stderr.contains('\x1b'),
        "escape codes in piped output:\n{}",
        stderr.escape_debug()
    );

    // One fold per container, each closed, with the shard-finished line before it.
    let finished = stderr
        .lines()
        .filter(|l| l.contains("] shard ") && l.contains(" finished on "))
        .count();
    assert!(finished >= 6, "{stderr}");
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.starts_with("::group::shard "))
            .count(),
        finished
    );
    assert_eq!(stderr.lines().filter(|l| *l == "::endgroup::").count(), finished);
    // A test's own output cannot issue workflow commands inside a fold.
    assert_eq!(stderr.matches("::stop-commands::").count(), finished);

    // `-v`: one line per test that ran, with the JUnit's verdict; failures annotated.
    let words = junit_words(&out_dir.join("junit.xml"));
    for ((group, name), word) in &words {
        if *word == "SKIP" {
            continue; // ignored tests never ship, so they have no live line
        }
        let id = format!("{group} {name} [shard ");
        let line = stderr
            .lines()
            .find(|l| l.contains(&id) && (l.contains("] PASS ") || l.contains("] FAIL ")))
            .unwrap_or_else(|| panic!("no live line for {id}:\n{stderr}"));
        assert!(line.contains(&format!("] {word} ")), "{line} vs JUnit {word}");
    }
    let failed = words.values().filter(|w| **w == "FAIL").count();
    assert!(failed >= 2);
    // Each annotation points at the panic's file and line.
    let annotations: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("::error ") && l.contains(",title=FAIL "))
        .collect();
    assert_eq!(annotations.len(), failed, "{stderr}");
    for a in &annotations {
        assert!(
            a.starts_with("::error file=") && a.contains(".rs,line=") && a.contains(",col="),
            "{a}"
        );
    }
    // Folds keep the log's lines: a shard's log is many lines, not one.
    let first_fold: Vec<&str> = stderr
        .lines()
        .skip_while(|l| !l.starts_with("::group::shard "))
        .take_while(|l| *l != "::endgroup::")
        .collect();
    assert!(
        first_fold.len() > 5,
        "a fold of {} lines:\n{stderr}",
        first_fold.len()
    );
    // The job summary went to the file GitHub names.
    let summary = std::fs::read_to_string(dir.path().join("step-summary.md")).expect("a job summary");
    assert!(summary.contains(&format!("| {failed} |")), "{summary}");
    assert!(summary.contains("#### Failures"), "{summary}");

    // The summary's count line agrees with the JUnit.
    let passed = words.values().filter(|w| **w == "PASS").count();
    let counts = format!("{passed} passed, {failed} failed, 0 flaky, ");
    assert!(stderr.contains(&counts), "want `{counts}` in:\n{stderr}");
    assert!(stderr.contains(&format!("report  {}", out_dir.join("report.html").display())));
}

/// `-v` lines come as each test ends, not in a burst when its shard ends: a test's line is
/// printed before its shard's `finished` line, and the lines of one shard carry different
/// times (the fixture's tests sleep for seconds).
#[test]
fn verbose_lines_come_per_test_as_the_shard_runs() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--only-host", "e1", "--shards", "1", "--no-progress", "-v"];
    let (code, stderr) = run(&dir.path().join("out"), &args, &[]);
    assert_eq!(code, Some(100), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    let end = lines
        .iter()
        .position(|l| l.contains("] shard 0 finished on e1"))
        .unwrap_or_else(|| panic!("no shard-finished line:\n{stderr}"));
    let stamps: std::collections::BTreeSet<&str> = lines[..end]
        .iter()
        .filter(|l| l.contains("] PASS ") && l.contains("[shard 0 on e1]"))
        .filter_map(|l| l.split(']').next())
        .collect();
    assert!(
        stamps.len() >= 3,
        "PASS lines before the shard ended, at {stamps:?}:\n{stderr}"
    );
    // Nothing said twice: one PASS/FAIL line per test, whatever the live word was.
    let mut seen = std::collections::BTreeSet::new();
    for l in lines.iter().filter(|l| l.contains("] PASS ")) {
        let test = l.split_once("s ").map(|(_, t)| t).unwrap_or(l);
        assert!(seen.insert(test.to_string()), "twice: {test}\n{stderr}");
    }
}

#[test]
fn colour_only_when_asked_off_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--only-host", "e1", "--shards", "2", "--no-progress"];
    let run_with =
        |name: &str, extra: &[&str]| run(&dir.path().join(name), &[&args[..], extra].concat(), &[]);
    let (always, auto, never) = std::thread::scope(|s| {
        let always = s.spawn(|| run_with("always", &["--color", "always"]));
        let auto = s.spawn(|| run_with("auto", &[]));
        let never = s.spawn(|| run_with("never", &["--color", "never"]));
        (
            always.join().unwrap(),
            auto.join().unwrap(),
            never.join().unwrap(),
        )
    });
    let (code, always) = always;
    assert_eq!(code, Some(100), "{always}");
    assert!(
        always.contains("\x1b[1;31mFAIL\x1b[0m "),
        "{}",
        always.escape_debug()
    );
    assert!(always.contains(" failed\x1b[0m"), "{}", always.escape_debug());

    // `auto` paints nothing off a terminal, `never` nothing anywhere; the words are there.
    for (what, (code, stderr)) in [("auto", auto), ("never", never)] {
        assert_eq!(code, Some(100), "{what}: {stderr}");
        assert!(!stderr.contains('\x1b'), "{what}: {}", stderr.escape_debug());
        assert!(stderr.contains("FAIL "), "{what}: {stderr}");
    }
}

#[test]
fn gitlab_sections_per_shard_and_quiet_prints_nothing_live() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--only-host", "e1", "--shards", "2", "--no-progress"];
    let (gitlab, quiet) = std::thread::scope(|s| {
        let gitlab = s.spawn(|| run(&dir.path().join("gitlab"), &args, &[("GITLAB_CI", "true")]));
        let quiet = s.spawn(|| run(&dir.path().join("quiet"), &[&args[..], &["-q"]].concat(), &[]));
        (gitlab.join().unwrap(), quiet.join().unwrap())
    });
    let (code, stderr) = gitlab;
    assert_eq!(code, Some(100), "{stderr}");
    let starts = stderr.matches("\x1b[0Ksection_start:").count();
    let ends = stderr.matches("\x1b[0Ksection_end:").count();
    assert!(starts >= 2, "one section per shard:\n{}", stderr.escape_debug());
    assert_eq!(starts, ends, "every section is closed");
    assert!(stderr.contains("[collapsed=true]\r\x1b[0Kshard 0 attempt 1 on e1"));

    // -q: no plan, no header, no live line (not even a failing test); the summary only.
    let (code, stderr) = quiet;
    assert_eq!(code, Some(100), "{stderr}");
    let live: Vec<&str> = stderr.lines().filter(|l| l.starts_with("[ ")).collect();
    assert!(live.is_empty(), "live lines in a quiet run: {live:?}");
    assert!(!stderr.contains("FAILING"), "{stderr}");
    assert!(!stderr.contains("predicted makespan"), "{stderr}");
    assert!(
        stderr.contains(" failed, 0 flaky, "),
        "the summary is still there: {stderr}"
    );
}
