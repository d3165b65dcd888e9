//! Faults on the live test bed: an engine dying mid-run or mid-upload, a host's disk filling
//! while staging, a half-written cache entry, a container killed, a flaky test, an interrupt,
//! a shard timeout and a panic in our own code. Each run must account for every planned test
//! exactly once and leave no labelled container on any engine. A test waits for what it
//! needs (an event, bytes on the wire, a container, an answering engine), never a fixed time.
//!
//! These tests stop engines that every other test shares, so `scripts/test` runs this binary
//! alone, after the main phase, one test at a time.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cargo_shard::engine::Engine;
use cargo_shard::junit::{self, Case, CaseStatus};
use serde_json::Value;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/rust-sample/Cargo.toml")
}

/// A `cargo shard` run in the background, its JSON events read as they come.
struct Running {
    child: Child,
    events: mpsc::Receiver<Value>,
    seen: Vec<Value>,
    stderr: std::thread::JoinHandle<String>,
    stderr_lines: mpsc::Receiver<String>,
    started: Instant,
}

struct Finished {
    code: Option<i32>,
    events: Vec<Value>,
    stderr: String,
    /// From the start of the run to its exit.
    took: Duration,
}

impl Running {
    fn start(out_dir: &Path, extra: &[&str]) -> Running {
        Running::start_on(&common::hosts_file(), out_dir, extra)
    }

    /// [`Running::start`] on the hosts of `hosts` instead of the test bed's.
    fn start_on(hosts: &Path, out_dir: &Path, extra: &[&str]) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cargo-shard"))
            .env_remove("NEXTEST_PROFILE")
            .args(["shard", "--hosts"])
            .arg(hosts)
            .arg("--manifest-path")
            .arg(fixture())
            .arg("--out-dir")
            .arg(out_dir)
            .args(["--message-format", "json"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run cargo-shard");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let (err_tx, stderr_lines) = mpsc::channel();
        let stderr = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(&mut stderr).lines().map_while(Result::ok) {
                let _ = err_tx.send(line.clone());
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        Running {
            child,
            events,
            seen: Vec::new(),
            stderr,
            stderr_lines,
            started: Instant::now(),
        }
    }

    /// Waits (up to 3 minutes, which covers building the fixture) for an event that `pred`
    /// accepts, and returns it.
    fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!("no {what} event; events so far: {:#?}", self.seen);
                }
            }
        }
    }

    /// Waits (up to a minute) for a line on stderr containing `text`.
    fn wait_for_stderr(&mut self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr_lines.recv_timeout(left) {
                Ok(line) if line.contains(text) => return,
                Ok(_) => {}
                Err(_) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!("no {text:?} on stderr");
                }
            }
        }
    }

    /// Stops the run and fails the test, saying why and what the run printed.
    fn abort(mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let stderr = self.stderr.join().unwrap_or_default();
        panic!("{why}; events so far: {:#?}\nstderr:\n{stderr}", self.seen);
    }

    fn run_id(&mut self) -> String {
        let v = self.wait_for("run-started", |v| v["type"] == "run-started");
        v["run_id"].as_str().unwrap().to_string()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn finish(mut self) -> Finished {
        let status = self.child.wait().expect("wait for cargo-shard");
        let took = self.started.elapsed();
        let mut events = self.seen;
        events.extend(self.events.iter());
        Finished {
            code: status.code(),
            events,
            stderr: self.stderr.join().unwrap(),
            took,
        }
    }
}

impl Finished {
    fn of_type(&self, t: &str) -> Vec<&Value> {
        self.events.iter().filter(|v| v["type"] == t).collect()
    }
}

/// Every test of the JUnit report, by (classname, name), failing on a test reported twice.
fn junit_cases(path: &Path) -> BTreeMap<(String, String), Case> {
    let report = junit::read_file(path).unwrap_or_else(|e| panic!("{e}"));
    let mut out = BTreeMap::new();
    for suite in report.suites {
        for case in suite.cases {
            let key = (case.classname.clone(), case.name.clone());
            assert!(out.insert(key.clone(), case).is_none(), "{key:?} reported twice");
        }
    }
    out
}

fn assert_every_test_once(cases: &BTreeMap<(String, String), Case>, expected: &[(String, String)]) {
    assert_eq!(
        cases.keys().cloned().collect::<Vec<_>>(),
        expected,
        "every planned test has exactly one result"
    );
}

fn status(case: &Case) -> &'static str {
    match case.status {
        CaseStatus::Passed => "passed",
        CaseStatus::Failure { .. } => "failed",
        CaseStatus::Error { .. } => "error",
        CaseStatus::Skipped { .. } => "skipped",
    }
}

fn message(case: &Case) -> String {
    match &case.status {
        CaseStatus::Error { message, text, .. } | CaseStatus::Failure { message, text, .. } => {
            format!("{} {text}", message.clone().unwrap_or_default())
        }
        CaseStatus::Skipped { message } => message.clone().unwrap_or_default(),
        CaseStatus::Passed => String::new(),
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// A filters file naming `names`.
fn filters(dir: &Path, names: &[&str]) -> PathBuf {
    let path = dir.join("filters.txt");
    std::fs::write(&path, names.join("\n")).unwrap();
    path
}

/// Starts a run of exactly `names` (ignored tests included) with `job` as its job file.
fn start_with_job(dir: &Path, names: &[&str], job: &str, extra: &[&str]) -> (Running, PathBuf) {
    let list = filters(dir, names);
    let job_file = dir.join("shard.toml");
    std::fs::write(&job_file, job).unwrap();
    let out_dir = dir.join("out");
    let mut args = vec![
        "--filters-file",
        list.to_str().unwrap(),
        "--run-ignored",
        "all",
        "--job",
        job_file.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let run = Running::start(&out_dir, &args);
    (run, out_dir)
}

/// The test bed's slot (0 for the shared one): `scripts/testbed` needs it to find an engine's
/// socket and address, and guessing wrong would restart another test bed's engine.
fn testbed_slot() -> String {
    let e1 = common::host("e1").endpoint.to_string();
    e1.split("/run/cargo-shard-s")
        .nth(1)
        .and_then(|rest| rest.split('-').next())
        .unwrap_or("0")
        .to_string()
}

fn testbed(args: &[&str]) {
    let out = Command::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/testbed"))
        .args(args)
        .env("CARGO_SHARD_TESTBED", common::testbed_dir())
        .env("CARGO_SHARD_TESTBED_SLOT", testbed_slot())
        .stdin(Stdio::null())
        .output()
        .expect("scripts/testbed");
    assert!(
        out.status.success(),
        "scripts/testbed {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Brings a test-bed process (`e2`, `sshd`) back whatever happens to the test, so the tests
/// after it have it.
struct Restart(&'static str);

impl Drop for Restart {
    fn drop(&mut self) {
        testbed(&["restart-engine", self.0]);
    }
}

/// The pid the test bed recorded in `NAME.pid`, checked to be the test bed's `program` (a
/// stale pid file must never make a test signal some other process).
fn testbed_pid(name: &str, program: &str) -> u32 {
    let pid_file = common::testbed_file(&format!("{name}.pid"));
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let cmdline = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default())
        .into_owned();
    assert!(
        cmdline.contains(program) && cmdline.contains(&common::testbed_dir().display().to_string()),
        "{} names pid {pid}, which is not the test bed's {program}: {cmdline}",
        pid_file.display()
    );
    pid
}

/// Kills e2's dockerd at once (a crash, not a shutdown).
fn kill_e2() {
    send_signal(testbed_pid("e2", "dockerd"), "-KILL");
}

fn send_signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn engine_killed_mid_run_its_shards_finish_elsewhere() {
    let expected: Vec<(String, String)> = common::rust_sample_listed().into_keys().collect();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let _restart = Restart("e2");
    // Two shards per slot: e2 finishes some, then dies running the next ones.
    let mut run = Running::start(&out_dir, &["--shards", "12"]);
    let run_id = run.run_id();
    run.wait_for("a shard finished on e2", |v| {
        v["type"] == "shard-finished" && v["host"] == "e2" && v["end"]["kind"] == "exited"
    });
    kill_e2();
    let done = run.finish();
    assert_eq!(
        done.code,
        Some(100),
        "the fixture's failing tests fail the run, nothing else does; stderr:\n{}",
        done.stderr
    );

    let cases = junit_cases(&out_dir.join("junit.xml"));
    assert_every_test_once(&cases, &expected);
    let errors: Vec<_> = cases.iter().filter(|(_, c)| status(c) == "error").collect();
    assert!(errors.is_empty(), "lost shards were re-run: {errors:#?}");

    // What e2 reported before it died is kept.
    let from_e2 = cases
        .values()
        .filter(|c| c.group.as_deref().is_some_and(|g| g.ends_with(" on e2")))
        .count();
    assert!(from_e2 > 0, "results collected from e2 are kept");

    // e2's unfinished shards failed there and were run again on e1/e3.
    let finished = done.of_type("shard-finished");
    let lost: Vec<_> = finished
        .iter()
        .filter(|v| v["host"] == "e2" && v["end"]["kind"] == "failed")
        .collect();
    assert!(!lost.is_empty(), "a shard was lost with e2: {finished:#?}");
    for l in &lost {
        let redone = finished
            .iter()
            .any(|v| v["shard"] == l["shard"] && v["host"] != "e2" && v["end"]["kind"] == "exited");
        assert!(redone, "shard {} re-queued elsewhere: {finished:#?}", l["shard"]);
    }

    common::assert_nothing_left_except(&run_id, &["e2"]);
    // e2 could not be cleaned while down: the run said so and how to do it later.
    assert!(
        done.stderr.contains(&format!("cargo shard gc --run {run_id}")),
        "{}",
        done.stderr
    );
    drop(_restart);
    common::gc_run(&run_id);
    common::assert_nothing_left_except(&run_id, &[]);
}

#[test]
fn killed_container_is_retried_on_another_host() {
    let expected: Vec<(String, String)> = common::rust_sample_listed().into_keys().collect();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    // Whole shards, each in a container of its own: the killed one is a shard's.
    let mut run = Running::start(&out_dir, &["--shards", "6", "--no-steal"]);
    let run_id = run.run_id();
    run.wait_for("shard-started on e1", |v| {
        v["type"] == "shard-started" && v["host"] == "e1"
    });

    let killed = kill_a_running_container("e1", &run_id).expect("a shard's container");
    let done = run.finish();
    assert_eq!(done.code, Some(100), "stderr:\n{}", done.stderr);

    let cases = junit_cases(&out_dir.join("junit.xml"));
    assert_every_test_once(&cases, &expected);
    let errors: Vec<_> = cases.iter().filter(|(_, c)| status(c) == "error").collect();
    assert!(errors.is_empty(), "the killed shard was retried: {errors:#?}");

    let finished = done.of_type("shard-finished");
    let shard: u64 = killed.parse().unwrap();
    let first = finished
        .iter()
        .find(|v| v["shard"] == shard && v["attempt"] == 1)
        .unwrap_or_else(|| panic!("shard {shard} attempt 1: {finished:#?}"));
    assert_eq!(first["host"], "e1");
    assert_eq!(first["end"]["kind"], "failed", "{first}");
    let second = finished
        .iter()
        .find(|v| v["shard"] == shard && v["attempt"] == 2)
        .unwrap_or_else(|| panic!("shard {shard} retried: {finished:#?}"));
    // Another host is preferred only when one is idle: with every slot busy, e1's freed slot
    // takes the retry at once rather than make it wait.
    assert_eq!(second["end"]["kind"], "exited", "{second}");
    common::assert_nothing_left_except(&run_id, &[]);
}

/// Kills one of the run's running containers on `host`, as `docker kill` would; returns the
/// shard it ran.
/// Kills a running container of the run on `host`; returns its shard label (a slot container,
/// which runs batch after batch, has none).
fn kill_a_running_container(host: &str, run_id: &str) -> Option<String> {
    let rt = rt();
    rt.block_on(async {
        let engine = Engine::connect(&common::host(host)).await.unwrap();
        let Engine::Docker(docker) = &engine else {
            panic!("{host} is a Docker engine")
        };
        let filters = std::collections::HashMap::from([
            (
                "label".to_string(),
                vec![format!("{}={run_id}", cargo_shard::config::RUN_LABEL)],
            ),
            ("status".to_string(), vec!["running".to_string()]),
        ]);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let opts = bollard::query_parameters::ListContainersOptions {
                filters: Some(filters.clone()),
                ..Default::default()
            };
            let list = docker.client().list_containers(Some(opts)).await.unwrap();
            if let Some(c) = list.into_iter().next() {
                docker
                    .client()
                    .kill_container(
                        &c.id.unwrap(),
                        None::<bollard::query_parameters::KillContainerOptions>,
                    )
                    .await
                    .unwrap();
                break c
                    .labels
                    .unwrap_or_default()
                    .get(cargo_shard::config::SHARD_LABEL)
                    .cloned();
            }
            assert!(
                Instant::now() < deadline,
                "no running container of {run_id} on {host}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

#[test]
fn killed_container_out_of_retries_reports_its_tests_as_errors() {
    let expected: Vec<(String, String)> = common::rust_sample_listed().into_keys().collect();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let mut run = Running::start(&out_dir, &["--shards", "6", "--shard-retries", "0", "--no-steal"]);
    let run_id = run.run_id();
    run.wait_for("shard-started on e1", |v| {
        v["type"] == "shard-started" && v["host"] == "e1"
    });
    let killed: u64 = kill_a_running_container("e1", &run_id)
        .expect("a shard's container")
        .parse()
        .unwrap();
    let done = run.finish();
    assert_eq!(done.code, Some(100), "stderr:\n{}", done.stderr);

    let cases = junit_cases(&out_dir.join("junit.xml"));
    assert_every_test_once(&cases, &expected);
    let shipped = done
        .of_type("run-started")
        .first()
        .and_then(|v| v["plan"]["shards"].as_array().cloned())
        .unwrap()
        .into_iter()
        .find(|s| s["index"] == killed)
        .unwrap()["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["group"].as_str().unwrap().to_string(),
                t["name"].as_str().unwrap().to_string(),
            )
        })
        .collect::<Vec<_>>();
    assert!(!shipped.is_empty());
    // Tests the shard announced finished before the kill keep that result; the kill comes
    // while nextest is still unpacking its archive, so most (usually all) are errors.
    let announced: Vec<(String, String)> = done
        .of_type("test-finished")
        .iter()
        .filter(|v| v["shard"] == killed && v["attempt"] == 1)
        .map(|v| {
            (
                v["group"].as_str().unwrap().to_string(),
                v["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(announced.len() < shipped.len(), "{announced:?}");
    for key in &shipped {
        let case = &cases[key];
        if announced.contains(key) {
            assert_ne!(status(case), "error", "{key:?} was announced finished");
            continue;
        }
        assert_eq!(status(case), "error", "{key:?} of the killed shard");
        let m = message(case);
        assert!(
            m.contains("exited with code 137") && m.contains("after 1 attempts"),
            "{key:?}: {m}"
        );
    }
    let others_errored: Vec<_> = cases
        .iter()
        .filter(|(k, c)| status(c) == "error" && !shipped.contains(k))
        .collect();
    assert!(others_errored.is_empty(), "{others_errored:#?}");
    common::assert_nothing_left_except(&run_id, &[]);
}

const FLAKY: &str = "tests::flaky_passes_on_second_attempt";

#[test]
fn test_failing_once_then_passing_is_flaky() {
    let dir = tempfile::tempdir().unwrap();
    let list = filters(dir.path(), &[FLAKY, "tests::slow_half_second", "slow_fifth"]);
    let list = list.to_str().unwrap();
    let out_dir = dir.path().join("out");

    let mut run = Running::start(&out_dir, &["--filters-file", list, "--retries", "1"]);
    let run_id = run.run_id();
    let done = run.finish();
    assert_eq!(
        done.code,
        Some(0),
        "a flaky test passes the run; stderr:\n{}",
        done.stderr
    );
    let cases = junit_cases(&out_dir.join("junit.xml"));
    let flaky = &cases[&("alpha".to_string(), FLAKY.to_string())];
    assert_eq!(status(flaky), "passed");
    assert_eq!(flaky.flaky.len(), 1, "one <flakyFailure>: {flaky:#?}");
    assert!(
        flaky.flaky[0].text.contains("attempt 1 fails")
            || flaky.flaky[0]
                .message
                .as_deref()
                .unwrap_or("")
                .contains("attempt 1 fails")
            || flaky.flaky[0]
                .stdout
                .as_deref()
                .unwrap_or("")
                .contains("attempt 1 fails")
            || flaky.flaky[0]
                .stderr
                .as_deref()
                .unwrap_or("")
                .contains("attempt 1 fails"),
        "the first failure's output is kept: {:#?}",
        flaky.flaky[0]
    );
    let others: Vec<_> = cases.iter().filter(|(k, _)| k.1 != FLAKY).collect();
    assert!(!others.is_empty());
    for (key, case) in others {
        assert_eq!(status(case), "passed", "{key:?}");
        assert!(case.flaky.is_empty(), "{key:?} ran once");
    }
    let finished = done.of_type("run-finished");
    assert_eq!(finished[0]["flaky"], 1);
    common::assert_nothing_left_except(&run_id, &[]);

    // With --flaky-result fail the same run fails, and the summary names the flaky test.
    let out = common::cargo_shard(&[
        "shard",
        "--hosts",
        common::hosts_file().to_str().unwrap(),
        "--manifest-path",
        fixture().to_str().unwrap(),
        "--out-dir",
        dir.path().join("out2").to_str().unwrap(),
        "--filters-file",
        list,
        "--retries",
        "1",
        "--flaky-result",
        "fail",
        "--no-progress",
    ]);
    assert_eq!(out.0, 100, "{}", out.2);
    assert!(
        out.2.lines().any(|l| l.contains("FLAKY") && l.contains(FLAKY))
            || out
                .2
                .lines()
                .any(|l| l.to_lowercase().contains("flaky") && l.contains(FLAKY)),
        "the summary lists the flaky test:\n{}",
        out.2
    );
}

#[test]
fn interrupt_stops_within_ten_seconds_and_leaves_nothing() {
    stops_within_ten_seconds_and_leaves_nothing("-INT");
}

#[test]
fn terminate_stops_within_ten_seconds_and_leaves_nothing() {
    stops_within_ten_seconds_and_leaves_nothing("-TERM");
}

fn stops_within_ten_seconds_and_leaves_nothing(signal: &str) {
    let expected: Vec<(String, String)> = common::rust_sample_listed().into_keys().collect();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let mut run = Running::start(&out_dir, &["--shards", "6"]);
    let run_id = run.run_id();
    for _ in 0..3 {
        run.wait_for("shard-started", |v| v["type"] == "shard-started");
    }
    // A container runs tests: the signal cuts shards short rather than stopping their start.
    run.wait_for("test-started", |v| v["type"] == "test-started");
    let sent = Instant::now();
    send_signal(run.pid(), signal);
    let done = run.finish();
    let stopped = sent.elapsed();
    assert_eq!(done.code, Some(130), "stderr:\n{}", done.stderr);
    assert!(stopped < Duration::from_secs(10), "took {stopped:?} to stop");

    // The report is written, and holds every test: the unrun ones skipped, saying why.
    let cases = junit_cases(&out_dir.join("junit.xml"));
    assert_every_test_once(&cases, &expected);
    let unrun: Vec<_> = cases
        .values()
        .filter(|c| status(c) == "skipped" && message(c).contains("interrupted"))
        .collect();
    assert!(!unrun.is_empty(), "some tests were cut short");
    assert!(cases.values().all(|c| status(c) != "error"));
    assert_eq!(done.of_type("run-finished")[0]["interrupted"], true);
    common::assert_nothing_left_except(&run_id, &[]);
}

#[test]
fn second_interrupt_exits_at_once_saying_how_to_clean_up() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let mut run = Running::start(&out_dir, &["--shards", "6"]);
    let run_id = run.run_id();
    run.wait_for("shard-started", |v| v["type"] == "shard-started");
    send_signal(run.pid(), "-INT");
    // Signals sent back to back coalesce into one: wait until the first is taken.
    run.wait_for_stderr("interrupt again to exit at once");
    send_signal(run.pid(), "-INT");
    let sent = Instant::now();
    let done = run.finish();
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "took {:?}",
        sent.elapsed()
    );
    assert_eq!(done.code, Some(130), "stderr:\n{}", done.stderr);
    assert!(
        done.stderr.contains(&format!("cargo shard gc --run {run_id}")),
        "{}",
        done.stderr
    );
    // What the message says to run cleans up what the hurried exit left, repeated until the
    // requests the engines had already received (a container being created) are through.
    common::gc_until_clean(&run_id);
}

#[test]
fn shard_timeout_keeps_finished_tests_and_turns_the_rest_into_errors() {
    let dir = tempfile::tempdir().unwrap();
    // nextest runs a binary's tests in name order: both quick ones come before the sleeper,
    // however many threads the host gives it. The sleeper takes five minutes against 20 s.
    let (mut run, out_dir) = start_with_job(
        dir.path(),
        &["assertion_fails", "counts_words", "ignored_slow"],
        "[job]\nenv = { SAMPLE_SLEEP_MS = \"300000\" }\n",
        // One shard whole: what is cut short is the point (batches would report the quick
        // tests on their own).
        &["--shard-timeout", "20s", "--shards", "1", "--no-steal"],
    );
    let run_id = run.run_id();
    let done = run.finish();
    assert_eq!(done.code, Some(100), "stderr:\n{}", done.stderr);
    assert!(done.took < Duration::from_secs(120));
    let cases = junit_cases(&out_dir.join("junit.xml"));
    assert!(cases.len() >= 3, "{cases:#?}");
    for (key, case) in &cases {
        if key.1 == "ignored_slow" {
            assert_eq!(status(case), "error", "{key:?}");
            let m = message(case);
            assert!(
                m.contains("timed out after 20s") && m.contains("--shard-timeout"),
                "{key:?}: {m}"
            );
        } else if key.1 == "assertion_fails" {
            // Finished before the limit: its result and output come from the live output.
            assert_eq!(status(case), "failed", "{key:?}");
            assert!(
                message(case).contains("timed out before its report was read"),
                "{key:?}"
            );
            let out = case.stdout.as_deref().unwrap_or_default();
            assert!(out.contains("deliberate failure"), "{key:?}: {out}");
        } else {
            assert_eq!(key.1, "counts_words");
            assert_eq!(status(case), "passed", "{key:?}: {}", message(case));
        }
    }
    let announced = done
        .of_type("test-finished")
        .iter()
        .filter(|v| v["status"] == "passed" || v["status"] == "failed")
        .count();
    assert_eq!(announced, cases.len() - 1, "{:#?}", done.of_type("test-finished"));
    let finished = done.of_type("shard-finished");
    assert!(
        finished.iter().all(|v| v["end"]["kind"] == "timed_out"),
        "{finished:#?}"
    );
    common::assert_nothing_left_except(&run_id, &[]);
}

/// A test that runs its shard out of memory: the kernel kills the test binary, nextest
/// reports it, and that report stands (no retry, no error for the others).
#[test]
fn test_killed_for_memory_fails_and_the_shard_report_stands() {
    let dir = tempfile::tempdir().unwrap();
    let (mut run, out_dir) = start_with_job(
        dir.path(),
        &["counts_words", "ignored_slow"],
        "[job]\nmemory = \"96m\"\nenv = { SAMPLE_ALLOC_MB = \"512\", SAMPLE_SLEEP_MS = \"0\" }\n",
        &["--shards", "1"],
    );
    let run_id = run.run_id();
    let done = run.finish();
    assert_eq!(done.code, Some(100), "stderr:\n{}", done.stderr);
    let cases = junit_cases(&out_dir.join("junit.xml"));
    let by_name: BTreeMap<&str, &Case> = cases.iter().map(|(k, c)| (k.1.as_str(), c)).collect();
    assert_eq!(status(by_name["counts_words"]), "passed");
    let killed = by_name["ignored_slow"];
    assert_eq!(status(killed), "failed", "{}", message(killed));
    assert!(message(killed).contains("SIGKILL"), "{}", message(killed));
    // Whole shard or batches in a slot container under the same memory limit: each ended
    // with its report, none was retried.
    let finished = done.of_type("shard-finished");
    assert!(
        finished
            .iter()
            .all(|f| f["attempt"] == 1 && f["end"]["kind"] == "exited"),
        "not retried: {finished:#?}"
    );
    common::assert_nothing_left_except(&run_id, &[]);
}

/// A recipe of busybox commands: the test named `sleeper` sleeps, every other test passes at
/// once; an exit code of 0 passes every test shipped.
struct Sleepy;

impl cargo_shard::discover::ShardRecipe for Sleepy {
    fn runner(&self) -> &'static str {
        "sleepy"
    }
    fn prepare(
        &self,
        tests: &[cargo_shard::test_result::TestId],
        ctx: &cargo_shard::discover::ShardCtx,
    ) -> cargo_shard::shard::ShardSpec {
        let sleeps = tests.iter().any(|t| t.name == "sleeper");
        cargo_shard::shard::ShardSpec {
            argv: if sleeps {
                vec!["sleep".into(), "60".into()]
            } else {
                vec!["true".into()]
            },
            workdir: ctx.root.clone(),
            ..Default::default()
        }
    }
    fn results(
        &self,
        tests: &[cargo_shard::test_result::TestId],
        collected: &cargo_shard::shard::Collected,
    ) -> Vec<cargo_shard::test_result::TestResult> {
        if collected.exit_code != Some(0) {
            return Vec::new();
        }
        tests
            .iter()
            .map(|id| cargo_shard::test_result::TestResult {
                id: id.clone(),
                status: cargo_shard::test_result::TestStatus::Passed,
                duration: Duration::ZERO,
                message: None,
                detail: String::new(),
                stdout: String::new(),
                stderr: String::new(),
                subtests: Vec::new(),
            })
            .collect()
    }
}

#[test]
fn panic_in_our_code_still_removes_every_container() {
    use cargo_shard::discover::{Suite, TestCase};
    use cargo_shard::plan::{Plan, Shard};
    use cargo_shard::run::{self, Event, LiveHost, RunOptions};
    use cargo_shard::test_result::TestId;
    use futures_util::FutureExt;
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let run_id = common::unique("panic");
    let ids = [TestId::new("g", "sleeper"), TestId::new("g", "quick")];
    let suite = Suite {
        notices: Vec::new(),
        earlier_report: None,
        tests: ids
            .iter()
            .map(|id| TestCase {
                id: id.clone(),
                ignored: false,
            })
            .collect(),
        tools: Vec::new(),
        uploads: Vec::new(),
        recipe: Arc::new(Sleepy),
    };
    let shard = |index: usize, id: &TestId| Shard {
        index,
        host: Some("e1".into()),
        tests: vec![id.clone()],
        predicted: Duration::from_secs(1),
        expected: Vec::new(),
    };
    let plan = Plan {
        shards: vec![shard(0, &ids[0]), shard(1, &ids[1])],
        total: Duration::from_secs(2),
        makespan: Duration::from_secs(1),
        lower_bound: Duration::from_secs(1),
        estimated: 0,
    };
    let opts = RunOptions {
        run_id: run_id.clone(),
        out_dir: dir.path().to_path_buf(),
        shard_retries: 0,
        retries: 0,
        shard_timeout: None,
        test_timeout: None,
        keep_containers: false,
        job: Default::default(),
        max_fail: None,
        steal: true,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut e1 = common::host("e1");
    e1.slots = 2;
    // The quick shard's end panics in our observer, once the sleeper's container is seen
    // running (asked of the engine through the docker CLI: an observer cannot await).
    let running = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let observer: run::Observer = {
        let running = running.clone();
        let endpoint = e1.endpoint.to_string();
        let label = format!("label={}={run_id}", cargo_shard::config::RUN_LABEL);
        Arc::new(move |e: &Event| {
            if !matches!(e, Event::ShardFinished(_)) {
                return;
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                let out = Command::new("docker")
                    .args(["-H", &endpoint, "ps", "-q", "--filter", &label])
                    .output()
                    .expect("docker CLI");
                if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
                    running.store(true, std::sync::atomic::Ordering::SeqCst);
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            panic!("deliberate panic in an observer");
        })
    };
    let panicked = rt.block_on(async {
        let engine = Arc::new(Engine::connect(&e1).await.expect("connect e1"));
        let hosts = vec![LiveHost {
            host: e1.clone(),
            engine,
        }];
        let cancel = tokio_util::sync::CancellationToken::new();
        std::panic::AssertUnwindSafe(run::execute(&plan, &suite, hosts, &opts, observer, cancel, None))
            .catch_unwind()
            .await
            .is_err()
    });
    assert!(
        running.load(std::sync::atomic::Ordering::SeqCst),
        "the sleeper's container ran when the panic struck"
    );
    assert!(panicked, "the panic reaches the caller");
    // The sleeper's container was running when the panic unwound; it is gone.
    common::assert_nothing_left_except(&run_id, &[]);
}

#[test]
fn kept_containers_are_listed_with_the_engine_that_holds_them() {
    let dir = tempfile::tempdir().unwrap();
    let list = filters(dir.path(), &["tests::slow_half_second", "slow_fifth"]);
    // A service beside each shard: it and its network are kept and named too.
    let job = dir.path().join("shard.toml");
    std::fs::write(
        &job,
        "[[job.service]]\nname = \"kv\"\ncommand = [\"sleep\", \"600\"]\n",
    )
    .unwrap();
    let out = common::cargo_shard(&[
        "shard",
        "--hosts",
        common::hosts_file().to_str().unwrap(),
        "--manifest-path",
        fixture().to_str().unwrap(),
        "--out-dir",
        dir.path().join("out").to_str().unwrap(),
        "--filters-file",
        list.to_str().unwrap(),
        "--job",
        job.to_str().unwrap(),
        "--keep-containers",
        "--no-progress",
    ]);
    assert_eq!(out.0, 0, "{}", out.2);
    let run_id = out
        .2
        .lines()
        .find_map(|l| l.strip_prefix("run ")?.split(':').next())
        .unwrap_or_else(|| panic!("no run id in:\n{}", out.2))
        .to_string();
    let kept: Vec<(String, String, String)> = out
        .2
        .lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("kept: ")?;
            let (name, rest) = rest.split_once(" on ")?;
            let (host, dh) = rest.split_once(" (DOCKER_HOST=")?;
            Some((name.into(), host.into(), dh.trim_end_matches(')').into()))
        })
        .collect();
    assert!(!kept.is_empty(), "{}", out.2);
    assert!(out.2.contains(&format!("cargo shard gc --run {run_id}")));
    for (name, host, dh) in &kept {
        assert_eq!(dh, &common::host(host).endpoint.to_string());
        let with = format!("with services {name}-kv on network {name}-net");
        assert!(out.2.contains(&with), "{with:?} in:\n{}", out.2);
        if dh.starts_with("ssh://") {
            continue; // the docker CLI would need the test bed's key in an ssh config
        }
        for (what, object) in [
            ("container", format!("{name}-kv")),
            ("network", format!("{name}-net")),
        ] {
            let inspect = Command::new("docker")
                .env("DOCKER_HOST", dh)
                .args([what, "inspect", &object])
                .output()
                .expect("docker CLI");
            assert!(inspect.status.success(), "kept {what} {object} on {host}");
        }
        // The printed DOCKER_HOST reaches the container, which still holds the shard's files.
        let cp = Command::new("docker")
            .env("DOCKER_HOST", dh)
            .args(["cp", &format!("{name}:/cargo-shard/shard-nextest.toml"), "-"])
            .output()
            .expect("docker CLI");
        assert!(
            cp.status.success(),
            "{name} on {host}: {}",
            String::from_utf8_lossy(&cp.stderr)
        );
    }
    let gc = common::gc_run(&run_id);
    assert!(
        gc.1.contains(&kept[0].0) || gc.2.contains(&kept[0].0),
        "gc removed them: {gc:?}"
    );
    common::assert_nothing_left_except(&run_id, &[]);
}

#[test]
fn test_timeout_ends_the_test_that_overran() {
    let dir = tempfile::tempdir().unwrap();
    let list = filters(dir.path(), &["slow_three_seconds", "slow_fifth"]);
    let out_dir = dir.path().join("out");
    let mut run = Running::start(
        &out_dir,
        &["--filters-file", list.to_str().unwrap(), "--test-timeout", "1s"],
    );
    let run_id = run.run_id();
    let done = run.finish();
    assert_eq!(done.code, Some(100), "stderr:\n{}", done.stderr);
    let cases = junit_cases(&out_dir.join("junit.xml"));
    assert!(cases.len() >= 3, "{cases:#?}");
    for ((group, name), case) in &cases {
        if name == "slow_three_seconds" {
            assert_eq!(status(case), "failed", "{group} {name}");
            assert!(
                message(case).contains("timeout"),
                "{group} {name}: {}",
                message(case)
            );
            assert!(case.time.unwrap_or(9.0) < 2.5, "ended early: {case:#?}");
        } else {
            assert_eq!(status(case), "passed", "{group} {name}");
        }
    }
    common::assert_nothing_left_except(&run_id, &[]);
}

/// Every descendant of `pid` (children first found through /proc).
fn descendants(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut queue = vec![pid];
    while let Some(parent) = queue.pop() {
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // The parent pid is the second field after the parenthesised command name.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(parent) {
                found.push(child);
                queue.push(child);
            }
        }
    }
    found
}

/// Cuts every ssh connection to e3: the test bed's sshd and its per-connection processes.
fn cut_ssh() {
    let pid = testbed_pid("sshd", "sshd");
    let mut pids = descendants(pid);
    pids.push(pid);
    for p in pids {
        let _ = Command::new("kill").args(["-KILL", &p.to_string()]).status();
    }
}

#[test]
fn ssh_tunnel_cut_mid_run_its_shards_finish_elsewhere() {
    let expected: Vec<(String, String)> = common::rust_sample_listed().into_keys().collect();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let _restart = Restart("sshd");
    let mut run = Running::start(&out_dir, &["--shards", "9"]);
    let run_id = run.run_id();
    // A test runs on e3: its container is up and streams through the tunnel being cut.
    run.wait_for("test-started on e3", |v| {
        v["type"] == "test-started" && v["host"] == "e3"
    });
    cut_ssh();
    let done = run.finish();
    assert_eq!(done.code, Some(100), "stderr:\n{}", done.stderr);

    let cases = junit_cases(&out_dir.join("junit.xml"));
    assert_every_test_once(&cases, &expected);
    let errors: Vec<_> = cases.iter().filter(|(_, c)| status(c) == "error").collect();
    assert!(errors.is_empty(), "e3's shards were re-run: {errors:#?}");
    let finished = done.of_type("shard-finished");
    let lost: Vec<_> = finished
        .iter()
        .filter(|v| v["host"] == "e3" && v["end"]["kind"] == "failed")
        .collect();
    assert!(
        !lost.is_empty(),
        "a shard was lost with the tunnel: {finished:#?}"
    );
    for l in &lost {
        let redone = finished
            .iter()
            .any(|v| v["shard"] == l["shard"] && v["host"] != "e3" && v["end"]["kind"] == "exited");
        assert!(redone, "shard {} re-queued elsewhere: {finished:#?}", l["shard"]);
    }
    assert!(!done.of_type("host-lost").is_empty());
    common::assert_nothing_left_except(&run_id, &["e3"]);
    // e3 itself kept running behind the cut tunnel: once sshd is back, gc reaches it.
    drop(_restart);
    common::gc_run(&run_id);
    common::assert_nothing_left_except(&run_id, &[]);
}

/// Resumes a stopped process whatever happens to the test.
struct Resume(u32);

impl Drop for Resume {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.0.to_string()]).status();
    }
}

#[test]
fn engine_hanging_mid_run_is_given_up_and_its_shards_finish_elsewhere() {
    let expected: Vec<(String, String)> = common::rust_sample_listed().into_keys().collect();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let mut run = Running::start(&out_dir, &["--shards", "12"]);
    let run_id = run.run_id();
    run.wait_for("a shard finished on e2", |v| {
        v["type"] == "shard-finished" && v["host"] == "e2" && v["end"]["kind"] == "exited"
    });
    // Freeze e2's dockerd: connections stay open, nothing fails, nothing answers.
    let pid = testbed_pid("e2", "dockerd");
    let resume = Resume(pid);
    send_signal(pid, "-STOP");
    let done = run.finish();
    drop(resume);
    assert_eq!(done.code, Some(100), "stderr:\n{}", done.stderr);
    assert!(done.took < Duration::from_secs(150), "took {:?}", done.took);

    let cases = junit_cases(&out_dir.join("junit.xml"));
    assert_every_test_once(&cases, &expected);
    let errors: Vec<_> = cases.iter().filter(|(_, c)| status(c) == "error").collect();
    assert!(errors.is_empty(), "e2's shards were re-run: {errors:#?}");
    let lost = done.of_type("host-lost");
    assert_eq!(lost.len(), 1, "{lost:#?}");
    assert_eq!(lost[0]["host"], "e2");
    assert!(
        lost[0]["reason"].as_str().unwrap().contains("stopped answering"),
        "{}",
        lost[0]
    );
    common::assert_nothing_left_except(&run_id, &["e2"]);
    // e2 answers again: what it still holds of the run goes with gc (again, for what it
    // carries out of the requests buffered while it was frozen).
    common::gc_until_clean(&run_id);
}

/// Test-level stealing under a lost host: a first run (no history) cuts its shards into
/// batches that run in one long-lived container per slot; e2 dies after one of its batches
/// ended there. Its running and queued batches finish elsewhere, each test reported once.
#[test]
fn engine_killed_while_batches_run_its_batches_finish_elsewhere() {
    let expected: Vec<(String, String)> = common::rust_sample_listed().into_keys().collect();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let _restart = Restart("e2");
    let mut run = Running::start(&out_dir, &["--doctests", "skip"]);
    let started = run.wait_for("run-started", |v| v["type"] == "run-started");
    let run_id = started["run_id"].as_str().unwrap().to_string();
    let planned_on_e2: Vec<String> = started["plan"]["shards"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["host"] == "e2")
        .flat_map(|s| s["tests"].as_array().unwrap().clone())
        .map(|t| format!("{} {}", t["group"].as_str().unwrap(), t["name"].as_str().unwrap()))
        .collect();
    assert!(!planned_on_e2.is_empty());
    run.wait_for("a batch finished in a slot container on e2", |v| {
        v["type"] == "shard-finished"
            && v["host"] == "e2"
            && v["end"]["kind"] == "exited"
            && v["container"].as_str().unwrap().contains("-slot-e2-")
    });
    kill_e2();
    let done = run.finish();
    assert_eq!(done.code, Some(100), "stderr:\n{}", done.stderr);

    let cases = junit_cases(&out_dir.join("junit.xml"));
    assert_every_test_once(&cases, &expected);
    let errors: Vec<_> = cases.iter().filter(|(_, c)| status(c) == "error").collect();
    assert!(errors.is_empty(), "e2's batches were re-run: {errors:#?}");
    let finished = done.of_type("test-finished");
    let moved = finished
        .iter()
        .filter(|v| v["host"] != "e2")
        .filter(|v| {
            planned_on_e2.contains(&format!(
                "{} {}",
                v["group"].as_str().unwrap(),
                v["name"].as_str().unwrap()
            ))
        })
        .count();
    assert!(moved > 0, "tests planned for e2 ran elsewhere: {finished:#?}");
    let twice: BTreeMap<String, usize> = finished.iter().fold(BTreeMap::new(), |mut m, v| {
        *m.entry(format!("{} {}", v["group"], v["name"])).or_default() += 1;
        m
    });
    assert!(
        twice.values().all(|&n| n == 1),
        "each test finished once in the events: {twice:?}"
    );

    common::assert_nothing_left_except(&run_id, &["e2"]);
    drop(_restart);
    common::gc_until_clean(&run_id);
}

/// How much of the payload must have reached e2 before it is frozen or killed: well into the
/// nextest target part (about 70 MB for the sample), past the source part (a few kB).
const MID_UPLOAD: u64 = 16 << 20;

/// e2's engine address (the test bed reaches it over tcp).
fn e2_addr() -> std::net::SocketAddr {
    let endpoint = common::host("e2").endpoint.to_string();
    let addr = endpoint
        .strip_prefix("tcp://")
        .unwrap_or_else(|| panic!("the test bed reaches e2 over tcp, not {endpoint}"));
    addr.parse().unwrap()
}

/// The test bed's hosts file with e2 reached through `tap`.
fn hosts_through(tap: &common::tap::Tap, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(common::hosts_file()).unwrap();
    let from = format!("docker_host = \"tcp://{}\"", e2_addr());
    assert!(text.contains(&from), "{from:?} in the test bed's hosts file");
    let path = dir.join("hosts-tap.toml");
    std::fs::write(
        &path,
        text.replace(&from, &format!("docker_host = \"tcp://{}\"", tap.addr)),
    )
    .unwrap();
    path
}

/// Empties `host`'s payload cache, so the run uploads every part there.
fn empty_cache(host: &str) {
    rt().block_on(async {
        let engine = Engine::connect(&common::host(host)).await.unwrap();
        let Engine::Docker(docker) = &engine else {
            panic!("{host} is a Docker engine")
        };
        docker.remove_cache().await.unwrap();
    });
}

/// A cache volume as the engine holds it on this machine.
struct CacheVolume {
    name: String,
    hash: String,
    size: u64,
    dir: PathBuf,
}

impl CacheVolume {
    /// The part's hash its marker names, if it has one.
    fn marker(&self) -> Option<String> {
        let link = std::fs::read_link(self.dir.join(cargo_shard::engine::docker::MARKER)).ok()?;
        Some(link.file_name()?.to_string_lossy().into_owned())
    }
}

/// Every payload-cache volume on `host` but the last-use index.
fn cache_volumes(host: &cargo_shard::config::Host) -> Vec<CacheVolume> {
    rt().block_on(async {
        let engine = Engine::connect(host).await.unwrap();
        let Engine::Docker(docker) = &engine else {
            panic!("{} is a Docker engine", host.name)
        };
        let filters = std::collections::HashMap::from([(
            "label".to_string(),
            vec![cargo_shard::config::CACHE_LABEL.to_string()],
        )]);
        let opts = bollard::query_parameters::ListVolumesOptions {
            filters: Some(filters),
        };
        let list = docker.client().list_volumes(Some(opts)).await.unwrap();
        list.volumes
            .unwrap_or_default()
            .into_iter()
            .filter(|v| cargo_shard::engine::docker::holds_a_part(&v.name))
            .map(|v| CacheVolume {
                hash: v.labels[cargo_shard::config::CACHE_LABEL].clone(),
                size: v.labels[cargo_shard::config::CACHE_SIZE_LABEL].parse().unwrap(),
                dir: PathBuf::from(&v.mountpoint),
                name: v.name,
            })
            .collect()
    })
}

/// Runs the sample with e2 behind a tap and, once [`MID_UPLOAD`] bytes of its payload have
/// gone through, sends e2's dockerd `signal`. Checks what every host loss must give (every
/// test once, none an error, a valid report, e2 named, its shards run elsewhere, nothing
/// left) and returns the run's id, its JUnit cases and events. e2 is down or frozen after it.
fn lose_e2_mid_upload(signal: &str, dir: &Path) -> (String, BTreeMap<(String, String), Case>, Finished) {
    let expected: Vec<(String, String)> = common::rust_sample_listed().into_keys().collect();
    empty_cache("e2");
    let tap = common::tap::Tap::start(e2_addr(), MID_UPLOAD);
    let hosts = hosts_through(&tap, dir);
    let out_dir = dir.join("out");
    let pid = testbed_pid("e2", "dockerd");
    let mut run = Running::start_on(&hosts, &out_dir, &["--shards", "9"]);
    let run_id = run.run_id();
    if !tap.wait_held(Duration::from_secs(180)) {
        run.abort(&format!(
            "{MID_UPLOAD} bytes never went to e2 (sent {})",
            tap.sent()
        ));
    }
    send_signal(pid, signal);
    tap.release();
    let done = run.finish();
    assert_eq!(done.code, Some(100), "stderr:\n{}", done.stderr);

    let junit = out_dir.join("junit.xml");
    common::assert_valid_junit(&junit);
    let cases = junit_cases(&junit);
    assert_every_test_once(&cases, &expected);
    let errors: Vec<_> = cases.iter().filter(|(_, c)| status(c) == "error").collect();
    assert!(errors.is_empty(), "e2's shards ran elsewhere: {errors:#?}");
    let lost = done.of_type("host-lost");
    assert_eq!(lost.len(), 1, "{lost:#?}");
    assert_eq!(lost[0]["host"], "e2");
    let on_e2 = |t: &str| done.of_type(t).into_iter().filter(|v| v["host"] == "e2").count();
    assert_eq!(on_e2("host-staged"), 0, "e2 never held the whole payload");
    assert_eq!(on_e2("shard-started"), 0, "nothing ran on e2");
    common::assert_nothing_left_except(&run_id, &["e2"]);
    (run_id, cases, done)
}

/// Statuses by test, to compare two runs of the sample.
fn statuses(cases: &BTreeMap<(String, String), Case>) -> BTreeMap<(String, String), &'static str> {
    cases.iter().map(|(k, c)| (k.clone(), status(c))).collect()
}

#[test]
fn engine_killed_mid_upload_is_left_out_and_its_half_written_entry_is_refilled() {
    let dir = tempfile::tempdir().unwrap();
    let restart = Restart("e2");
    let (run_id, first, done) = lose_e2_mid_upload("-KILL", dir.path());
    let lost = &done.of_type("host-lost")[0];
    assert!(
        lost["reason"]
            .as_str()
            .unwrap()
            .starts_with("staging failed: e2: "),
        "{lost}"
    );
    // Its staging container could not be removed while e2 was down: the run said how to.
    assert!(
        done.stderr.contains(&format!("cargo shard gc --run {run_id}")),
        "{}",
        done.stderr
    );
    drop(restart);
    common::gc_until_clean(&run_id);

    // What e2 received of the target part is there without a marker (and maybe the source
    // part, held on the wire with it). Spoil the large one further: a file the part holds,
    // rewritten with other bytes.
    let half: Vec<CacheVolume> = cache_volumes(&common::host("e2"))
        .into_iter()
        .filter(|v| v.marker().is_none())
        .collect();
    let large = half.iter().find(|v| v.size > MID_UPLOAD).unwrap_or_else(|| {
        panic!(
            "the large part is half-written: {:?}",
            half.iter().map(|v| &v.name).collect::<Vec<_>>()
        )
    });
    let meta = large.dir.join("nextest/binaries-metadata.json");
    std::fs::create_dir_all(meta.parent().unwrap()).unwrap();
    std::fs::write(&meta, "corrupt").unwrap();

    // e2 alone: its part is uploaded again, and the tests give what they gave before.
    let out_dir = dir.path().join("again");
    let mut run = Running::start(&out_dir, &["--only-host", "e2", "--shards", "2"]);
    let again_id = run.run_id();
    let again = run.finish();
    assert_eq!(again.code, Some(100), "stderr:\n{}", again.stderr);
    let staged = again.of_type("host-staged");
    assert_eq!(staged.len(), 1, "{staged:#?}");
    let uploaded = staged[0]["uploaded_bytes"].as_u64().unwrap();
    let unfinished: u64 = half.iter().map(|v| v.size).sum();
    assert_eq!(
        uploaded, unfinished,
        "the half-written parts are uploaded again: {}",
        staged[0]
    );
    for v in &half {
        assert_eq!(
            v.marker().as_deref(),
            Some(v.hash.as_str()),
            "{} refilled and marked",
            v.name
        );
    }
    assert_ne!(std::fs::read(&meta).unwrap(), b"corrupt", "every file rewritten");
    let cases = junit_cases(&out_dir.join("junit.xml"));
    assert_eq!(statuses(&cases), statuses(&first), "the spoiled part never ran");
    common::assert_nothing_left(&again_id);
}

#[test]
fn engine_frozen_mid_upload_is_given_up_and_its_shards_finish_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let resume = Resume(testbed_pid("e2", "dockerd"));
    let (run_id, _, done) = lose_e2_mid_upload("-STOP", dir.path());
    let lost = &done.of_type("host-lost")[0];
    assert!(
        lost["reason"].as_str().unwrap().contains("stopped answering"),
        "{lost}"
    );
    drop(resume);
    // Thawed, e2 carries out what it had received: the upload breaks off where the run left
    // it, and gc removes the staging container.
    common::gc_until_clean(&run_id);
    for v in cache_volumes(&common::host("e2")) {
        let marker = v.marker();
        assert!(
            marker.is_none() || marker.as_deref() == Some(v.hash.as_str()),
            "{}: a marker only on a complete part, naming its hash: {marker:?}",
            v.name
        );
    }
}

/// A Docker engine of the test's own, named `tiny`, whose data root is a tmpfs sized so that
/// the test bed's base image fits and the sample's payload does not. It is stopped and the
/// tmpfs unmounted when it goes.
struct SmallDisk {
    data: PathBuf,
    socket: String,
    dockerd: Child,
}

impl SmallDisk {
    fn start() -> SmallDisk {
        let root = common::testbed_dir().join("small-disk");
        let data = root.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let base = common::testbed_file("cache/base.tar");
        // The image takes about the size of its tar; 32 MiB more holds the source part, not
        // the target part (about 70 MB).
        let size = std::fs::metadata(&base).unwrap().len() + (32 << 20);
        run_ok(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}")])
                .arg("cargo-shard-small-disk")
                .arg(&data),
        );
        let name = format!("cargo-shard-s{}-tiny", testbed_slot());
        let socket = format!("/run/{name}.sock");
        let log = std::fs::File::create(root.join("dockerd.log")).unwrap();
        let dockerd = Command::new("/usr/sbin/dockerd")
            .arg("--data-root")
            .arg(&data)
            .args([
                "--exec-root",
                &format!("/run/{name}"),
                "-H",
                &format!("unix://{socket}"),
            ])
            .arg("--pidfile")
            .arg(root.join("dockerd.pid"))
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip-masq=false",
                "--shutdown-timeout",
                "2",
            ])
            .args([
                "--containerd-namespace",
                &name,
                "--containerd-plugins-namespace",
                &format!("{name}-plugins"),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let mut disk = SmallDisk {
            data,
            socket,
            dockerd,
        };
        disk.wait_answering();
        run_ok(
            disk.docker(&["import", "--change", "ENV PATH=/usr/local/bin:/usr/bin:/bin"])
                .arg(&base)
                .arg("cargo-shard/base:latest"),
        );
        disk
    }

    fn docker(&self, args: &[&str]) -> Command {
        let mut c = Command::new("docker");
        c.args(["-H", &format!("unix://{}", self.socket)]).args(args);
        c
    }

    /// Waits (up to a minute) until the engine answers.
    fn wait_answering(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.docker(&["version"]).output().unwrap().status.success() {
            let exited = self.dockerd.try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "dockerd on the small disk: {exited:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn host(&self) -> cargo_shard::config::Host {
        let mut host = common::host("e1");
        host.name = "tiny".into();
        host.endpoint = cargo_shard::config::Endpoint::parse(&format!("unix://{}", self.socket)).unwrap();
        host
    }

    /// e1 and this engine.
    fn hosts_file(&self, dir: &Path) -> PathBuf {
        let path = dir.join("hosts-tiny.toml");
        let text = format!(
            "[defaults]\nimage = \"cargo-shard/base:latest\"\nslots = 2\njobs = 1\nnetwork = \"none\"\n\n\
             [[host]]\nname = \"e1\"\ndocker_host = \"{}\"\n\n[[host]]\nname = \"tiny\"\ndocker_host = \"unix://{}\"\n",
            common::host("e1").endpoint,
            self.socket
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Bytes free on the small disk.
    fn free(&self) -> u64 {
        let out = Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(&self.data)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.dockerd.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.dockerd.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.dockerd.kill();
        let _ = self.dockerd.wait();
        let unmounted = Command::new("umount").arg(&self.data).status();
        if !unmounted.is_ok_and(|s| s.success()) {
            // A process of the engine still holds it: detach it now, it goes with them.
            let _ = Command::new("umount").arg("-l").arg(&self.data).status();
        }
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_dir_all(self.socket.trim_end_matches(".sock"));
    }
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The sample on e1 and `disk` (only `disk` with `alone`) in `dir/out`: the exit code, stderr
/// and run id. Checks the one line naming the full host, a valid report with every test once,
/// no report file half-written, nothing of the run left on any engine, and the space the
/// failed upload took given back (but for the source part and the last-use index).
fn run_beside_full_disk(
    disk: &SmallDisk,
    dir: &Path,
    alone: bool,
) -> (i32, String, BTreeMap<(String, String), Case>) {
    let expected: Vec<(String, String)> = common::rust_sample_listed().into_keys().collect();
    let out_dir = dir.join(if alone { "alone" } else { "beside" });
    let free_before = disk.free();
    let hosts = disk.hosts_file(dir);
    let manifest = fixture();
    let mut args = vec![
        "shard",
        "--hosts",
        hosts.to_str().unwrap(),
        "--manifest-path",
        manifest.to_str().unwrap(),
        "--out-dir",
        out_dir.to_str().unwrap(),
        "--no-progress",
    ];
    if alone {
        args.extend(["--only-host", "tiny"]);
    }
    let (code, _, stderr) = common::cargo_shard(&args);
    let lost: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("HOST tiny lost: "))
        .collect();
    assert_eq!(lost.len(), 1, "{stderr}");
    assert!(lost[0].contains("no space left on device"), "{}", lost[0]);
    let run_id = stderr
        .lines()
        .find_map(|l| l.strip_prefix("run ")?.split(':').next())
        .unwrap_or_else(|| panic!("no run id in:\n{stderr}"))
        .to_string();

    let junit = out_dir.join("junit.xml");
    common::assert_valid_junit(&junit);
    let cases = junit_cases(&junit);
    assert_every_test_once(&cases, &expected);
    let half_written: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp"))
        .collect();
    assert!(half_written.is_empty(), "{half_written:?}");

    common::assert_nothing_left(&run_id);
    let left = rt().block_on(common::leftovers_on(&disk.host(), &run_id));
    assert!(left.is_empty(), "{left:?}");
    let free_after = disk.free();
    assert!(
        free_after + (1 << 20) >= free_before,
        "{free_before} bytes free before the run, {free_after} after"
    );
    // What did fit stays cached, complete.
    let kept = cache_volumes(&disk.host());
    assert!(!kept.is_empty(), "the source part stays cached");
    for v in &kept {
        assert_eq!(
            v.marker().as_deref(),
            Some(v.hash.as_str()),
            "{} is complete",
            v.name
        );
    }
    (code, stderr, cases)
}

#[test]
fn full_disk_on_a_host_leaves_it_out_with_one_line_and_frees_the_space() {
    let disk = SmallDisk::start();
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr, cases) = run_beside_full_disk(&disk, dir.path(), false);
    assert_eq!(code, 100, "the run goes on on e1:\n{stderr}");
    let errors: Vec<_> = cases.iter().filter(|(_, c)| status(c) == "error").collect();
    assert!(errors.is_empty(), "every test ran on e1: {errors:#?}");

    // With no other host, the run ends with the README's exit code for it, every test that
    // would have run an error saying why.
    let (code, stderr, cases) = run_beside_full_disk(&disk, dir.path(), true);
    assert_eq!(code, 102, "{stderr}");
    for (key, case) in &cases {
        if status(case) == "skipped" {
            continue;
        }
        assert_eq!(status(case), "error", "{key:?}");
        let m = message(case);
        assert!(
            m.contains("no host left") && m.contains("no space left on device"),
            "{key:?}: {m}"
        );
    }
}

/// A slot container killed under a batch (a first run: shards cut into batches): the batch is
/// retried, every test reported once, no error, and nothing left behind.
#[test]
fn killed_slot_container_its_batch_is_retried() {
    let expected: Vec<(String, String)> = common::rust_sample_listed().into_keys().collect();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let mut run = Running::start(&out_dir, &["--doctests", "skip"]);
    let run_id = run.run_id();
    run.wait_for("a test started on e1", |v| {
        v["type"] == "test-started" && v["host"] == "e1"
    });
    assert_eq!(kill_a_running_container("e1", &run_id), None, "a slot container");
    let done = run.finish();
    assert_eq!(done.code, Some(100), "stderr:\n{}", done.stderr);

    let cases = junit_cases(&out_dir.join("junit.xml"));
    assert_every_test_once(&cases, &expected);
    let errors: Vec<_> = cases.iter().filter(|(_, c)| status(c) == "error").collect();
    assert!(errors.is_empty(), "the killed batch was retried: {errors:#?}");
    let finished = done.of_type("shard-finished");
    let broken = finished
        .iter()
        .find(|v| v["host"] == "e1" && v["end"]["kind"] == "failed")
        .unwrap_or_else(|| panic!("a batch failed on e1: {finished:#?}"));
    assert!(
        broken["container"].as_str().unwrap().contains("-slot-e1-"),
        "{broken}"
    );
    let retried = finished
        .iter()
        .any(|v| v["shard"] == broken["shard"] && v["attempt"] == 2 && v["end"]["kind"] == "exited");
    assert!(retried, "batch {} retried: {finished:#?}", broken["shard"]);
    common::assert_nothing_left_except(&run_id, &[]);
}
