//! Helpers shared by the integration tests: where the test bed is, and unique names so tests
//! running at once on the same engines never touch each other's objects.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use cargo_shard::config::{Host, HostsConfig};

pub mod tap;

/// The test bed's state dir: `CARGO_SHARD_TESTBED`, else `<repo>/target/testbed`.
pub fn testbed_dir() -> PathBuf {
    match std::env::var_os("CARGO_SHARD_TESTBED") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/testbed"),
    }
}

/// A file the test bed wrote (`hosts.toml`, `bad-key.toml`, …); fails the test if absent.
pub fn testbed_file(name: &str) -> PathBuf {
    let p = testbed_dir().join(name);
    if !p.exists() {
        panic!(
            "{} is missing: run `scripts/testbed up` (and set CARGO_SHARD_TESTBED if it lives elsewhere)",
            p.display()
        );
    }
    p
}

pub fn hosts_file() -> PathBuf {
    testbed_file("hosts.toml")
}

pub fn testbed_hosts() -> HostsConfig {
    HostsConfig::load(&hosts_file()).unwrap_or_else(|e| panic!("test bed hosts file: {e}"))
}

pub fn host(name: &str) -> Host {
    testbed_hosts()
        .hosts
        .into_iter()
        .find(|h| h.name == name)
        .unwrap_or_else(|| panic!("the test bed has no host {name}"))
}

/// A name no other test (or earlier run) uses: prefix, pid, time, counter.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs the built binary; returns (exit code, stdout, stderr).
pub fn cargo_shard(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cargo-shard"))
        .args(args)
        // nextest names its profile to the tests it runs; the fixtures do not have it.
        .env_remove("NEXTEST_PROFILE")
        .output()
        .expect("run cargo-shard");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `cargo shard plan RUNNER --hosts HOSTS --format json ARGS…` (`args` = runner then its
/// arguments: anything after the runner's `--` is its command), parsed; asserts exit 0.
pub fn plan_json(args: &[&str], hosts: &std::path::Path) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cargo-shard"))
        .args(["plan", args[0], "--hosts"])
        .arg(hosts)
        .args(["--format", "json"])
        .args(&args[1..])
        .env_remove("CARGO_SHARD_HOSTS")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"))
}

/// A path under `fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

/// The JUnit schema: `CARGO_SHARD_SCHEMA`, else the copy vendored under `fixtures/junit/schema/`.
pub fn schema() -> PathBuf {
    std::env::var_os("CARGO_SHARD_SCHEMA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/junit/schema/junit-10.xsd")
        })
}

/// Validates a JUnit file with `xmllint --schema` (a missing xmllint fails the test).
pub fn assert_valid_junit(path: &std::path::Path) {
    let lint = std::process::Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(schema())
        .arg(path)
        .output()
        .expect("xmllint (libxml2-utils) must be installed");
    assert!(
        lint.status.success(),
        "schema validation: {}",
        String::from_utf8_lossy(&lint.stderr)
    );
}

/// (classname, name) → `passed`/`failed`/`error`/`skipped`, from a JUnit report in which
/// every case must appear once.
pub fn junit_statuses(path: &std::path::Path) -> std::collections::BTreeMap<(String, String), &'static str> {
    use cargo_shard::junit::CaseStatus;
    let report = cargo_shard::junit::read_file(path).unwrap_or_else(|e| panic!("{e}"));
    let mut out = std::collections::BTreeMap::new();
    for suite in report.suites {
        for case in suite.cases {
            let status = match case.status {
                CaseStatus::Passed => "passed",
                CaseStatus::Failure { .. } => "failed",
                CaseStatus::Error { .. } => "error",
                CaseStatus::Skipped { .. } => "skipped",
            };
            let key = (case.classname.clone(), case.name.clone());
            assert!(
                out.insert(key, status).is_none(),
                "{}/{} reported twice",
                case.classname,
                case.name
            );
        }
    }
    out
}

/// The run id from a `--message-format json` stream's `run-started` event.
pub fn run_id_of(stdout: &str) -> String {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["type"] == "run-started")
        .and_then(|v| v["run_id"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no run-started event in:\n{stdout}"))
}

/// Fails the test if any container labelled with `run_id` is left on any test-bed engine.
pub fn assert_nothing_left(run_id: &str) {
    assert_nothing_left_except(run_id, &[]);
}

/// As [`assert_nothing_left`], skipping the named hosts (one a test took down). Whatever is
/// found is removed, so a failing check leaves the engines clean too.
pub fn assert_nothing_left_except(run_id: &str, except: &[&str]) {
    let leaked = leftovers(run_id, except);
    assert!(leaked.is_empty(), "run {run_id} leaked {leaked:?}");
}

/// [`leftovers_on`] every test-bed engine but the named ones (removed as they are found).
fn leftovers(run_id: &str, except: &[&str]) -> Vec<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    testbed_hosts()
        .hosts
        .iter()
        .filter(|host| !except.contains(&host.name.as_str()))
        .flat_map(|host| rt.block_on(leftovers_on(host, run_id)))
        .collect()
}

/// The containers, networks and volumes labelled with `run_id` on `host`, removed as they
/// are found, each named with its host and kind.
pub async fn leftovers_on(host: &Host, run_id: &str) -> Vec<String> {
    let engine = cargo_shard::engine::Engine::connect(host)
        .await
        .unwrap_or_else(|e| panic!("connect {}: {e}", host.name));
    let removed = engine
        .remove_labelled(Some(run_id))
        .await
        .unwrap_or_else(|e| panic!("list labelled on {}: {e}", host.name));
    let name = &host.name;
    let kinds = [
        ("container", removed.containers),
        ("network", removed.networks),
        ("volume", removed.volumes),
    ];
    kinds
        .into_iter()
        .flat_map(|(kind, names)| names.into_iter().map(move |n| format!("{name} {kind} {n}")))
        .collect()
}

/// `fixtures/rust-sample`'s tests as nextest lists them: (binary id, name) → ignored.
pub fn rust_sample_listed() -> std::collections::BTreeMap<(String, String), bool> {
    let out = std::process::Command::new("cargo")
        // nextest names its profile to the tests it runs; the fixture does not have it.
        .env_remove("NEXTEST_PROFILE")
        .args([
            "nextest",
            "list",
            "--message-format",
            "json",
            "--run-ignored",
            "all",
            "--manifest-path",
        ])
        .arg(fixture("rust-sample/Cargo.toml"))
        .output()
        .expect("cargo nextest list");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut tests = std::collections::BTreeMap::new();
    for (binary_id, suite) in v["rust-suites"].as_object().unwrap() {
        for (name, case) in suite["testcases"].as_object().unwrap() {
            tests.insert(
                (binary_id.clone(), name.clone()),
                case["ignored"].as_bool().unwrap(),
            );
        }
    }
    tests
}

/// cargo-shard over `fixtures/rust-sample` on the test bed with JSON events, its reports in
/// `out_dir`, plus `extra` arguments; asserts it ran to the end reporting the sample's
/// deliberate failures (exit 100).
pub fn run_rust_sample(out_dir: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cargo-shard"))
        .env_remove("NEXTEST_PROFILE")
        // As cargo invokes a subcommand: `cargo-shard shard …`.
        .args(["shard", "--hosts"])
        .arg(hosts_file())
        .arg("--manifest-path")
        .arg(fixture("rust-sample/Cargo.toml"))
        .arg("--out-dir")
        .arg(out_dir)
        .args(["--message-format", "json"])
        .args(extra)
        .output()
        .expect("run cargo-shard");
    assert_eq!(
        output.status.code(),
        Some(100),
        "the fixture has failing tests; stderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `gc --run ID` until no engine holds anything of the run, for an engine that was frozen: on
/// resuming it still carries out the requests that were buffered in its socket while it was
/// stopped (a create sent just before the freeze lands after the first gc). Fails after 30 s.
pub fn gc_until_clean(run_id: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        gc_run(run_id);
        let left = leftovers(run_id, &[]);
        if left.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "run {run_id} still leaves {left:?} after gc for 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// `cargo shard gc --run RUN_ID` over the test bed; asserts it succeeded.
pub fn gc_run(run_id: &str) -> (i32, String, String) {
    let gc = cargo_shard(&["gc", "--hosts", hosts_file().to_str().unwrap(), "--run", run_id]);
    assert_eq!(gc.0, 0, "gc --run {run_id}: {gc:?}");
    gc
}

/// `go test -json`'s final action for every test of the module, subtests (`TestX/sub`) included.
pub fn go_test_json(
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> std::collections::BTreeMap<(String, String), String> {
    let out = std::process::Command::new("go")
        .args(["test", "-count=1", "-json", "./..."])
        .current_dir(dir)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let mut actions = std::collections::BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if let (Some(pkg), Some(test), Some(action)) =
            (v["Package"].as_str(), v["Test"].as_str(), v["Action"].as_str())
            && matches!(action, "pass" | "fail" | "skip")
        {
            actions.insert((pkg.to_string(), test.to_string()), action.to_string());
        }
    }
    actions
}

/// Every file below `dir`, recursively.
pub fn files_under(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}
