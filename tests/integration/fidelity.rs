//! Existing suites run unchanged (issue 12) on the live test bed: the JUnit `<failure>` holds
//! the whole failure, gocheck suites list, nextest's and go's own run options behave as
//! they do under the plain runner.

use crate::common;

use std::path::Path;
use std::process::Command;

use cargo_shard::junit::{Case, CaseStatus};

/// The case `name` of a JUnit report, which must validate against the schema.
fn case(junit: &Path, name: &str) -> Case {
    common::assert_valid_junit(junit);
    let report = cargo_shard::junit::read_file(junit).unwrap_or_else(|e| panic!("{e}"));
    report
        .suites
        .into_iter()
        .flat_map(|s| s.cases)
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case {name} in {}", junit.display()))
}

/// The failure's `message` and text; panics when the case did not fail.
fn failure(c: &Case) -> (String, String) {
    match &c.status {
        CaseStatus::Failure { message, text, .. } => (message.clone().unwrap_or_default(), text.clone()),
        other => panic!("{} did not fail: {other:?}", c.name),
    }
}

/// Runs cargo-shard with `args` in `dir`; returns (exit code, stderr).
fn shard_in(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cargo-shard"))
        .args(args)
        .env_remove("NEXTEST_PROFILE")
        .current_dir(dir)
        .output()
        .expect("run cargo-shard");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_rust_failure_holds_the_whole_panic_with_left_and_right() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    common::run_rust_sample(&out, &["-E", "binary_id(beta::failing)"]);
    let c = case(&out.join("junit.xml"), "assertion_fails");
    let (message, text) = failure(&c);
    assert!(!message.contains('\n'), "one-line message: {message:?}");
    assert!(message.contains("panicked at"), "{message}");
    for part in ["deliberate failure", "left: 3", "right: 4"] {
        assert!(
            text.contains(part),
            "{part:?} missing from the failure text:\n{text}"
        );
    }
    // nextest captures a test's two streams together under libtest-json: the output stays in
    // system-out, beside the failure text.
    let output = format!(
        "{}{}",
        c.stdout.as_deref().unwrap_or_default(),
        c.stderr.as_deref().unwrap_or_default()
    );
    assert!(output.contains("left: 3"), "the output stays in system-out/err");
}

#[test]
fn go_and_gocheck_failures_hold_their_whole_block() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = common::testbed_file("hosts-go.toml");
    let hosts = hosts.to_str().unwrap();

    let out = dir.path().join("go");
    let (code, err) = shard_in(
        &common::fixture("go-sample"),
        &[
            "go",
            "./alpha",
            "--hosts",
            hosts,
            "--out-dir",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 100, "alpha has a failing test: {err}");
    let (message, text) = failure(&case(&out.join("junit.xml"), "TestFailing"));
    assert_eq!(message, "alpha_test.go:56: about to fail");
    assert!(
        text.contains("alpha_test.go:57: intentional failure: 1 != 2")
            && text.contains("--- FAIL: TestFailing ("),
        "{text}"
    );
    assert!(!text.contains("=== RUN"), "{text}");

    let out = dir.path().join("gocheck");
    let gopath = format!(
        "{}:/usr/share/gocode",
        common::fixture("go-sample/gopath").display()
    );
    let (code, err) = shard_in(
        &common::fixture("go-sample/gopath/src/example.com/checksuite"),
        &[
            "go",
            "--gopath",
            &gopath,
            "--hosts",
            hosts,
            "--out-dir",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 100, "the suite has a failing test: {err}");
    let (message, text) = failure(&case(&out.join("junit.xml"), "MathSuite.TestFails"));
    // The assertion's source line is gocheck's to show: it reads it from the build machine's
    // path, which the container may lack (issue 12, item 1).
    assert!(message.contains("check_test.go:28:"), "{message}");
    for part in [
        "... obtained int = 4",
        "... expected int = 5",
        "check_test.go:26: MathSuite.TestFails",
    ] {
        assert!(text.contains(part), "{part:?} missing:\n{text}");
    }
}

/// The tests a cargo-shard dry run planned, from its JSON plan.
fn planned(stdout: &str) -> std::collections::BTreeSet<String> {
    let plan: serde_json::Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .find(|v: &serde_json::Value| v.get("plan").is_some())
        .unwrap_or_else(|| panic!("no plan in {stdout}"));
    plan["plan"]["shards"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["tests"].as_array().unwrap())
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

/// Runs cargo-shard in `dir` with `envs`; returns (exit code, stdout, stderr).
fn shard_with(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cargo-shard"))
        .args(args)
        .envs(envs.iter().copied())
        .env_remove("NEXTEST_PROFILE")
        .current_dir(dir)
        .output()
        .expect("run cargo-shard");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// gopkg.in/check.v1's own `Test` hook exits 1 after `-check.list` without `-check.f`; every
/// one of its suite methods that a plain `go test -check.vv` runs is still planned.
#[test]
fn gocheck_own_suite_lists_every_test_go_test_runs() {
    let src = Path::new("/usr/share/gocode/src/gopkg.in/check.v1");
    assert!(src.is_dir(), "golang-gopkg-check.v1-dev must be installed");
    let out = tempfile::tempdir().unwrap();
    let hosts = common::testbed_file("hosts-go.toml");
    let (code, stdout, stderr) = shard_with(
        out.path(),
        &[
            "go",
            "--dir",
            src.to_str().unwrap(),
            "--gopath",
            "/usr/share/gocode",
            "--hosts",
            hosts.to_str().unwrap(),
            "--out-dir",
            out.path().join("out").to_str().unwrap(),
            "--dry-run",
            "--message-format",
            "json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let ours = planned(&stdout);
    let plain = Command::new("go")
        .args(["test", "-v", "-count=1", ".", "-check.vv"])
        .current_dir(src)
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOCACHE", out.path().join("gocache"))
        .output()
        .expect("go test");
    assert!(
        plain.status.success(),
        "{}",
        String::from_utf8_lossy(&plain.stdout)
    );
    let header = regex::Regex::new(r"^(?:PASS|FAIL|SKIP|PANIC|MISS|FAIL EXPECTED): \S+: (\w+\.\w+)").unwrap();
    let ran: std::collections::BTreeSet<String> = String::from_utf8_lossy(&plain.stdout)
        .lines()
        .filter_map(|l| header.captures(l).map(|c| c[1].to_string()))
        .filter(|n| {
            !["SetUpSuite", "TearDownSuite", "SetUpTest", "TearDownTest"]
                .iter()
                .any(|f| n.ends_with(&format!(".{f}")))
        })
        .collect();
    assert!(ran.len() >= 100, "{ran:?}");
    assert_eq!(ours, ran, "planned = what go test ran");
}

/// A package whose `TestMain` exits non-zero after listing: a warning naming it, and its
/// tests planned.
#[test]
fn a_listing_that_exits_non_zero_after_printing_names_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("go.mod"),
        "module example.com/grumpy\n\ngo 1.19\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("grumpy_test.go"),
        "package grumpy\n\nimport (\n\t\"os\"\n\t\"testing\"\n)\n\n\
         func TestMain(m *testing.M) { m.Run(); os.Exit(3) }\n\n\
         func TestOne(t *testing.T) {}\n\nfunc TestTwo(t *testing.T) {}\n",
    )
    .unwrap();
    let hosts = common::testbed_file("hosts-go.toml");
    let (code, stdout, stderr) = shard_with(
        dir.path(),
        &[
            "go",
            "--hosts",
            hosts.to_str().unwrap(),
            "--dry-run",
            "--message-format",
            "json",
        ],
        &[
            ("GOCACHE", dir.path().join("cache").to_str().unwrap()),
            ("GOFLAGS", "-mod=mod"),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        planned(&stdout).into_iter().collect::<Vec<_>>(),
        ["TestOne", "TestTwo"]
    );
    let warning = stderr
        .lines()
        .find(|l| l.starts_with("warning: "))
        .unwrap_or_else(|| panic!("no warning in {stderr}"));
    assert!(
        warning.contains("example.com/grumpy") && warning.contains("exit status: 3"),
        "{warning}"
    );
}

/// A GOPATH tree built without `--gopath`: go's own error, then a hint naming `--gopath`.
#[test]
fn a_gopath_tree_without_gopath_gets_a_hint() {
    let gp = tempfile::tempdir().unwrap();
    let pkg = gp.path().join("src/example.com/checksuite");
    std::fs::create_dir_all(&pkg).unwrap();
    let fixture = common::fixture("go-sample/gopath/src/example.com/checksuite");
    for f in ["check_test.go", "checksuite.go"] {
        std::fs::copy(fixture.join(f), pkg.join(f)).unwrap();
    }
    let hosts = common::testbed_file("hosts-go.toml");
    let (code, _, stderr) = shard_with(
        &pkg,
        &["go", "--hosts", hosts.to_str().unwrap(), "--dry-run"],
        &[("GOPATH", gp.path().to_str().unwrap()), ("GO111MODULE", "")],
    );
    assert_eq!(code, 101, "{stderr}");
    let line = stderr.lines().find(|l| l.starts_with("error: ")).unwrap();
    assert!(
        line.contains("lies under GOPATH") && line.contains("--gopath") && line.contains("GO111MODULE=off"),
        "{line}"
    );
}

/// (name → status) of every case in a valid JUnit report.
fn by_name(junit: &Path) -> std::collections::BTreeMap<String, &'static str> {
    common::assert_valid_junit(junit);
    common::junit_statuses(junit)
        .into_iter()
        .map(|((_, name), status)| (name, status))
        .collect()
}

/// cargo-shard over fixtures/rust-sample on the test bed; returns (exit code, stdout, stderr).
fn shard_rust_sample(out: &Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec![
        "shard",
        "--hosts",
        common::hosts_file().to_str().unwrap().to_owned().leak(),
    ];
    let manifest = common::fixture("rust-sample/Cargo.toml");
    all.extend(["--manifest-path", manifest.to_str().unwrap().to_owned().leak()]);
    all.extend(["--out-dir", out.to_str().unwrap().to_owned().leak()]);
    all.extend(["--message-format", "json"]);
    all.extend(args);
    shard_with(Path::new("."), &all, &[])
}

/// `cargo shard -- NAME` selects as `cargo nextest run -- NAME` does: at listing time.
#[test]
fn test_name_filters_after_dashes_select_like_nextest() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = shard_rust_sample(
        dir.path(),
        &["--", "counts_words", "--skip", "nothing_matches_this"],
    );
    assert_eq!(code, 0, "{stderr}");
    let ours = by_name(&dir.path().join("junit.xml"));
    let local = Command::new("cargo")
        .args([
            "nextest",
            "list",
            "--message-format",
            "oneline",
            "--manifest-path",
        ])
        .arg(common::fixture("rust-sample/Cargo.toml"))
        .args(["--", "counts_words", "--skip", "nothing_matches_this"])
        .env_remove("NEXTEST_PROFILE")
        .output()
        .unwrap();
    let local: Vec<String> = String::from_utf8_lossy(&local.stdout)
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(_, n)| n.to_string()))
        .collect();
    assert_eq!(ours.keys().cloned().collect::<Vec<_>>(), local);
    assert_eq!(ours.values().copied().collect::<Vec<_>>(), ["passed"]);
    common::assert_nothing_left(&common::run_id_of(&stdout));
}

/// Anything else after `--` stops the run before a build or a container: one line naming it.
#[test]
fn other_arguments_after_dashes_are_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    for (args, named) in [
        (&["--", "--test-threads", "1"][..], "--test-threads"),
        (&["--", "--fail-fast"][..], "--fail-fast"),
        (&["--", "--nocapture"][..], "--no-capture"),
        (&["--no-capture"][..], "--no-capture"),
    ] {
        let (code, stdout, stderr) = shard_rust_sample(dir.path(), args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "nothing started: {stdout}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line: {stderr}");
        assert!(
            lines[0].starts_with("error: ") && lines[0].contains(named),
            "{stderr}"
        );
    }
    assert!(!dir.path().join("junit.xml").exists());
}

/// `--fail-fast`: the run stops at the first failure; what did not run is skipped with the
/// reason, not an error; nothing is left behind.
#[test]
fn fail_fast_stops_the_whole_run_and_skips_what_did_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = shard_rust_sample(
        dir.path(),
        &[
            "--fail-fast",
            "-j",
            "1",
            "--shards",
            "2",
            "-E",
            "binary_id(beta::failing) | binary_id(alpha::integration)",
        ],
    );
    assert_eq!(code, 100, "{stderr}");
    let junit = dir.path().join("junit.xml");
    let statuses = by_name(&junit);
    let failed = statuses.values().filter(|s| **s == "failed").count();
    assert!(
        (1..=2).contains(&failed),
        "at most one failure per shard: {statuses:?}"
    );
    assert!(!statuses.values().any(|s| *s == "error"), "{statuses:?}");
    let report = cargo_shard::junit::read_file(&junit).unwrap();
    let skipped: Vec<String> = report
        .suites
        .iter()
        .flat_map(|s| &s.cases)
        .filter_map(|c| match &c.status {
            CaseStatus::Skipped { message } => message.clone(),
            _ => None,
        })
        .collect();
    assert!(
        skipped.iter().any(|m| m.contains("--max-fail 1")),
        "unrun tests are skipped with the reason: {skipped:?}"
    );
    common::assert_nothing_left(&common::run_id_of(&stdout));
}

/// `--profile NAME`: the user's profile lists with its default-filter and every shard runs
/// under its overrides (a 200 ms timeout on one test), as `cargo nextest run --profile` does.
#[test]
fn a_user_profile_applies_inside_every_shard() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) =
        shard_rust_sample(dir.path(), &["--profile", "fixture-profile", "--shards", "2"]);
    assert_eq!(code, 100, "{stderr}");
    let statuses = by_name(&dir.path().join("junit.xml"));
    let expected: std::collections::BTreeMap<String, &str> = [
        ("assertion_fails", "failed"),
        ("counts_words", "passed"),
        ("slow_half_second", "passed"),
        ("slow_one_second", "failed"),
    ]
    .into_iter()
    .map(|(n, s)| (n.to_string(), s))
    .collect();
    assert_eq!(
        statuses, expected,
        "as `cargo nextest run --profile fixture-profile` judges them"
    );
    common::assert_nothing_left(&common::run_id_of(&stdout));
}

/// A shard sees the caller's RUST_LOG, `--env` variables (by name or with a value) and
/// nothing else of the caller's environment.
#[test]
fn shards_see_rust_log_and_env_flags_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // Exits 0 only when the environment is exactly as promised; a key's status is its exit.
    let check = r#"test "$RUST_LOG" = debug && test "$FROM_FLAG" = set && test "$BY_NAME" = caller && test -z "$NOT_PASSED" && test "$RUST_BACKTRACE" = short"#;
    let (code, stdout, stderr) = shard_with(
        dir.path(),
        &[
            "exec",
            "--hosts",
            common::hosts_file().to_str().unwrap(),
            "--list",
            "echo env-check",
            "--key-env",
            "KEY",
            "--env",
            "FROM_FLAG=set",
            "--env",
            "BY_NAME",
            "--out-dir",
            out.to_str().unwrap(),
            "--message-format",
            "json",
            "--",
            "sh",
            "-c",
            check,
        ],
        &[
            ("RUST_LOG", "debug"),
            ("RUST_BACKTRACE", "short"),
            ("BY_NAME", "caller"),
            ("NOT_PASSED", "leak"),
        ],
    );
    assert_eq!(
        code,
        0,
        "{stderr}\n{}",
        std::fs::read_to_string(out.join("logs/0.log")).unwrap_or_default()
    );
    assert_eq!(
        by_name(&out.join("junit.xml"))
            .values()
            .copied()
            .collect::<Vec<_>>(),
        ["passed"]
    );
    common::assert_nothing_left(&common::run_id_of(&stdout));

    // Asking for a variable that is not set is bad input, before anything starts.
    let (code, _, stderr) = shard_with(
        dir.path(),
        &[
            "exec",
            "--hosts",
            common::hosts_file().to_str().unwrap(),
            "--list",
            "echo k",
            "--key-env",
            "KEY",
            "--env",
            "CARGO_SHARD_SURELY_UNSET",
            "--",
            "true",
        ],
        &[],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("--env CARGO_SHARD_SURELY_UNSET: not set"),
        "{stderr}"
    );
}

/// A printed `PASS`/`SKIP`/`FAIL`/`PANIC` word as the JUnit status it stands for.
fn status_word(word: &str) -> &'static str {
    match word {
        "PASS" => "passed",
        "SKIP" => "skipped",
        _ => "failed",
    }
}

/// gocheck's `PASS:`/`FAIL:` lines of a plain `make test-integration` → name → status.
fn gocheck_lines(text: &str) -> std::collections::BTreeMap<String, &'static str> {
    let re = regex::Regex::new(r"(?m)^(PASS|FAIL|SKIP|PANIC): \S+: (\w+\.\w+)").unwrap();
    re.captures_iter(text)
        .filter(|c| !c[2].ends_with(".SetUpTest") && !c[2].ends_with(".SetUpSuite"))
        .map(|c| (c[2].to_string(), status_word(&c[1])))
        .collect()
}

/// fixtures/go-sample includes `cargo shard makefile`'s fragment: `make test-integration`
/// runs as before without SHARD_HOSTS and sharded on the test bed with it, the same tests
/// with the same results, one valid JUnit.
#[test]
fn make_test_integration_runs_plain_or_sharded() {
    let fixture = common::fixture("go-sample");
    let (code, fragment, _) = common::cargo_shard(&["makefile"]);
    assert_eq!(code, 0);
    assert_eq!(
        fragment,
        std::fs::read_to_string(fixture.join("cargo-shard.mk")).unwrap(),
        "the fixture holds the fragment as printed"
    );
    let make = |envs: &[(&str, &str)]| {
        Command::new("make")
            .args(["-s", "test-integration"])
            .current_dir(&fixture)
            .env_remove("SHARD_HOSTS")
            .env_remove("TESTFLAGS")
            .envs(envs.iter().copied())
            .output()
            .expect("make")
    };
    let plain = make(&[]);
    let plain_text = String::from_utf8_lossy(&plain.stdout).into_owned();
    assert!(
        !plain.status.success(),
        "the suite has a failing test: {plain_text}"
    );
    let plain_results = gocheck_lines(&plain_text);
    assert!(plain_results.len() >= 10, "{plain_text}");
    assert!(!String::from_utf8_lossy(&plain.stderr).contains("cargo shard"));

    let out = tempfile::tempdir().unwrap();
    let hosts = common::testbed_file("hosts-go.toml");
    let args = format!(
        "--shards 2 --out-dir {} --message-format json",
        out.path().display()
    );
    let sharded = make(&[
        ("SHARD_HOSTS", hosts.to_str().unwrap()),
        ("CARGO_SHARD", env!("CARGO_BIN_EXE_cargo-shard")),
        ("SHARD_ARGS", &args),
    ]);
    let stdout = String::from_utf8_lossy(&sharded.stdout);
    assert!(
        !sharded.status.success(),
        "a failing test fails the target: {}",
        String::from_utf8_lossy(&sharded.stderr)
    );
    let ours = by_name(&out.path().join("junit.xml"));
    assert_eq!(ours, plain_results, "the same tests with the same results");
    common::assert_nothing_left(&common::run_id_of(&stdout));
}

/// `cargo shard go -- -tags T -short -count 1` builds with the tag and runs short, as
/// `go test -tags T -short -count 1` does; a flag go test would not pass on is refused.
#[test]
fn go_test_flags_mean_what_they_mean_to_go_test() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("go.mod"), "module example.com/flags\n\ngo 1.19\n").unwrap();
    std::fs::write(
        dir.path().join("tagged_test.go"),
        "//go:build integration\n\npackage flags\n\nimport \"testing\"\n\nfunc TestTagged(t *testing.T) {}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("plain_test.go"),
        "package flags\n\nimport \"testing\"\n\nfunc TestLong(t *testing.T) {\n\tif testing.Short() {\n\t\tt.Skip(\"short\")\n\t}\n}\n",
    )
    .unwrap();
    let hosts = common::testbed_file("hosts-go.toml");
    let out = dir.path().join("out");
    let cache = dir.path().join("cache");
    let envs = [("GOCACHE", cache.to_str().unwrap()), ("GOFLAGS", "-mod=mod")];
    let (code, stdout, stderr) = shard_with(
        dir.path(),
        &[
            "go",
            "--hosts",
            hosts.to_str().unwrap(),
            "--out-dir",
            out.to_str().unwrap(),
            "--message-format",
            "json",
            "--",
            "-tags",
            "integration",
            "-short",
            "-count",
            "1",
        ],
        &envs,
    );
    assert_eq!(code, 0, "{stderr}");
    let ours = by_name(&out.join("junit.xml"));
    let plain = Command::new("go")
        .args([
            "test",
            "-v",
            "-tags",
            "integration",
            "-short",
            "-count",
            "1",
            "./...",
        ])
        .current_dir(dir.path())
        .envs(envs)
        .output()
        .unwrap();
    let plain = gocheck_or_go_results(&String::from_utf8_lossy(&plain.stdout));
    assert_eq!(ours, plain, "as go test judges them");
    assert_eq!(ours.get("TestLong"), Some(&"skipped"));
    assert_eq!(ours.get("TestTagged"), Some(&"passed"));
    common::assert_nothing_left(&common::run_id_of(&stdout));

    let (code, _, stderr) = shard_with(
        dir.path(),
        &["go", "--hosts", hosts.to_str().unwrap(), "--", "-json"],
        &envs,
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.lines().count() == 1 && stderr.contains("`-json`"),
        "{stderr}"
    );
}

/// `--- PASS/FAIL/SKIP: TestX` lines of `go test -v` → name → status.
fn gocheck_or_go_results(text: &str) -> std::collections::BTreeMap<String, &'static str> {
    let re = regex::Regex::new(r"(?m)^--- (PASS|FAIL|SKIP): (\S+) ").unwrap();
    re.captures_iter(text)
        .map(|c| (c[2].to_string(), status_word(&c[1])))
        .collect()
}

/// Doctests are not dropped silently: a run says how many of the selected crates' will not run.
#[test]
fn left_out_doctests_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[package]\nname = \"doccy\"\nversion = \"0.1.0\"\nedition = \"2021\"\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("src/lib.rs"),
        "/// ```\n/// assert_eq!(doccy::two(), 2);\n/// ```\npub fn two() -> u32 { 2 }\n\n\
         /// ```\n/// assert_eq!(doccy::three(), 3);\n/// ```\npub fn three() -> u32 { 3 }\n\n\
         #[test]\nfn unit() { assert_eq!(two() + 1, three()); }\n",
    )
    .unwrap();
    let manifest = dir.path().join("Cargo.toml");
    // Each run writes its reports somewhere new, as CI jobs may: the count is kept beside the build.
    let (outs, runs) = (tempfile::tempdir().unwrap(), std::cell::Cell::new(0));
    let warning = || {
        runs.set(runs.get() + 1);
        let out = outs.path().join(format!("out-{}", runs.get()));
        let (code, _, stderr) = shard_with(
            dir.path(),
            &[
                "--hosts",
                common::hosts_file().to_str().unwrap(),
                "--manifest-path",
                manifest.to_str().unwrap(),
                "--out-dir",
                out.to_str().unwrap(),
                "--dry-run",
            ],
            &[],
        );
        assert_eq!(code, 0, "{stderr}");
        stderr
            .lines()
            .find(|l| l.contains("doctest"))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        warning().contains("warning: 2 doctests of the selected crates will not run"),
        "{}",
        warning()
    );

    // Counting compiles the doctests, so an unchanged tree is not counted again: the kept
    // count is what the next run says (here altered by hand, to tell it from a recount)...
    let kept = dir.path().join("target/shard/doctest-count.json");
    let text = std::fs::read_to_string(&kept).expect("the count is kept");
    std::fs::write(&kept, text.replace("\"count\":2", "\"count\":7")).unwrap();
    assert!(warning().contains("warning: 7 doctests"), "{}", warning());
    // ...until a source changes.
    let lib = dir.path().join("src/lib.rs");
    let mut source = std::fs::read_to_string(&lib).unwrap();
    source.push_str("\n/// ```\n/// assert_eq!(doccy::four(), 4);\n/// ```\npub fn four() -> u32 { 4 }\n");
    std::fs::write(&lib, source).unwrap();
    assert!(warning().contains("warning: 3 doctests"), "{}", warning());
}

/// `--doctests local` runs the sample's doctests on this machine beside the shards: their
/// results join the same JUnit and events, an ignored one is skipped, and a failing one fails
/// the run with its whole panic, although it prints the lines a pass would leave.
#[test]
fn local_doctests_join_the_report_and_fail_the_run() {
    const PASSING: &str = "alpha/src/lib.rs - add (line 6)";
    const FAILING: &str = "alpha/src/lib.rs - add (line 13)";
    const IGNORED: &str = "alpha/src/lib.rs - sleep_ms (line 26)";
    let group = "alpha (doctests)".to_string();
    let run = |out: &Path, envs: &[(&str, &str)]| {
        shard_with(
            Path::new("."),
            &[
                "shard",
                "--hosts",
                common::hosts_file().to_str().unwrap(),
                "--manifest-path",
                common::fixture("rust-sample/Cargo.toml").to_str().unwrap(),
                "--out-dir",
                out.to_str().unwrap(),
                "--message-format",
                "json",
                "--doctests",
                "local",
                "-E",
                "binary_id(alpha::integration) & test(adds_0)",
            ],
            envs,
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run(&dir.path().join("pass"), &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        !stderr.contains("doctests of the selected crates will not run"),
        "{stderr}"
    );
    let statuses = common::junit_statuses(&dir.path().join("pass/junit.xml"));
    assert_eq!(statuses[&(group.clone(), PASSING.to_string())], "passed");
    assert_eq!(statuses[&(group.clone(), FAILING.to_string())], "passed");
    assert_eq!(statuses[&(group.clone(), IGNORED.to_string())], "skipped");
    assert!(statuses.keys().any(|(g, _)| g == "alpha::integration"));
    let finished = stdout
        .lines()
        .filter(|l| l.contains(r#""type":"test-finished""#) && l.contains(r#""group":"alpha (doctests)""#))
        .count();
    assert_eq!(finished, 3, "{stdout}");
    common::assert_nothing_left(&common::run_id_of(&stdout));

    let (code, _, stderr) = run(&dir.path().join("fail"), &[("ALPHA_DOCTEST_FAIL", "1")]);
    assert_eq!(code, 100, "{stderr}");
    let c = case(&dir.path().join("fail/junit.xml"), FAILING);
    let (message, text) = failure(&c);
    assert!(message.contains("deliberate doctest failure"), "{message}");
    assert!(text.contains("left: 2") && text.contains("right: 3"), "{text}");
    let statuses = common::junit_statuses(&dir.path().join("fail/junit.xml"));
    assert_eq!(statuses[&(group, PASSING.to_string())], "passed");
}

/// `--doctests local` lists the doctests before the shards' build: a library that does not
/// compile ends the run there as a failed build (101), in one line naming the listing, and
/// the JUnit report says why.
#[test]
fn local_doctests_of_a_library_that_does_not_build_fail_as_a_build() {
    let dir = tempfile::tempdir().unwrap();
    let krate = dir.path().join("broken");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    std::fs::write(
        krate.join("Cargo.toml"),
        "[package]\nname = \"broken\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(
        krate.join("src/lib.rs"),
        "/// ```\n/// assert_eq!(broken::f(), 1);\n/// ```\npub fn f() -> u32 { \"not a number\" }\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let (code, _, stderr) = shard_with(
        dir.path(),
        &[
            "shard",
            "--backend",
            "local",
            "--no-progress",
            "--manifest-path",
            krate.join("Cargo.toml").to_str().unwrap(),
            "--out-dir",
            out.to_str().unwrap(),
            "--doctests",
            "local",
        ],
        &[],
    );
    assert_eq!(code, 101, "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].starts_with("error: --doctests local: `cargo test --doc -- --list` failed (")
            && errors[0].contains("could not compile `broken`"),
        "{stderr}"
    );
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(
        junit.contains("building or listing the tests failed: --doctests local:"),
        "{junit}"
    );
}

/// A local-process shard sees what a container would (variables passed with `--env`, and
/// `RUST_BACKTRACE`), plus PATH and HOME, but not the rest of the caller's environment.
#[test]
fn local_shards_see_only_passed_variables_of_the_callers_environment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".git")).unwrap();
    let check = "test -z \"$LEAK_CANARY\" && test \"$PASSED_CANARY\" = yes \
                 && test \"$RUST_BACKTRACE\" = 1 && test -n \"$HOME\" && test \"$K\" = a";
    let run = |extra: &[&str]| {
        let mut args = vec![
            "exec",
            "--backend",
            "local",
            "--no-progress",
            "--list",
            "echo a",
            "--key-env",
            "K",
        ];
        args.extend_from_slice(extra);
        args.extend(["--", "sh", "-c", check]);
        shard_with(
            dir.path(),
            &args,
            &[
                ("LEAK_CANARY", "leaked"),
                ("PASSED_CANARY", "yes"),
                ("RUST_BACKTRACE", "1"),
            ],
        )
    };
    let (code, _, stderr) = run(&["--env", "PASSED_CANARY"]);
    assert_eq!(code, 0, "{stderr}");
    // Not passed: the same check fails, so the run above saw the variable because of --env.
    let (code, _, stderr) = run(&[]);
    assert_eq!(code, 100, "{stderr}");
}

/// A Go module whose `TestRace` has a data race that only `-race` reports.
fn racy_module() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("go.mod"), "module example.com/racy\n\ngo 1.19\n").unwrap();
    std::fs::write(
        dir.path().join("racy_test.go"),
        "package racy\n\nimport (\n\t\"sync\"\n\t\"testing\"\n)\n\nfunc TestFine(t *testing.T) {}\n\n\
         func TestRace(t *testing.T) {\n\tx := 0\n\tvar wg sync.WaitGroup\n\twg.Add(2)\n\
         \tfor i := 0; i < 2; i++ {\n\t\tgo func() { x++; wg.Done() }()\n\t}\n\twg.Wait()\n\t_ = x\n}\n",
    )
    .unwrap();
    dir
}

/// `-race` builds with cgo here (gcc is on this machine) and means what it means to `go
/// test`: as local processes and on the Go image (glibc, no compiler) the race is reported
/// as `go test -race` reports it; without it the same test passes.
#[test]
fn race_finds_the_race_locally_and_in_containers() {
    let module = racy_module();
    let plain = Command::new("go")
        .args(["test", "-race", "-v", "."])
        .current_dir(module.path())
        .output()
        .unwrap();
    let plain = gocheck_or_go_results(&String::from_utf8_lossy(&plain.stdout));
    assert_eq!(plain.get("TestRace"), Some(&"failed"), "{plain:?}");
    let hosts = common::testbed_file("hosts-go.toml");
    let dir = module.path().to_str().unwrap();
    for (where_, race) in [
        ("--backend=local", true),
        ("--only-host=e1", true),
        ("--only-host=e1", false),
    ] {
        let out = tempfile::tempdir().unwrap();
        let mut args = vec!["go", "--hosts", hosts.to_str().unwrap(), where_, "--dir", dir];
        args.extend(["--out-dir", out.path().to_str().unwrap(), "--no-progress"]);
        if race {
            args.extend(["--", "-race"]);
        }
        let (code, _, stderr) = shard_with(module.path(), &args, &[]);
        let statuses = common::junit_statuses(&out.path().join("junit.xml"));
        let race_status = statuses[&("example.com/racy".to_string(), "TestRace".to_string())];
        assert_eq!(
            statuses[&("example.com/racy".to_string(), "TestFine".to_string())],
            "passed"
        );
        if race {
            assert_eq!((code, race_status), (100, "failed"), "{where_}: {stderr}");
        } else {
            assert_eq!((code, race_status), (0, "passed"), "{where_}: {stderr}");
        }
    }
}

/// `-race` binaries need the C library's loader in the image: on an image without one
/// (static busybox only) the run stops before any shard with one line naming host and image.
#[test]
fn race_on_an_image_without_a_c_library_is_one_line_naming_host_and_image() {
    let module = racy_module();
    let e1 = common::host("e1");
    let rootfs = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(rootfs.path().join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.path().join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.path().join("bin/sh")).unwrap();
    let tar = rootfs.path().join("rootfs.tar");
    let packed = Command::new("tar")
        .args([
            "-C",
            rootfs.path().to_str().unwrap(),
            "-cf",
            tar.to_str().unwrap(),
            "bin",
        ])
        .status()
        .unwrap();
    assert!(packed.success());
    let image = format!("cargo-shard-test/nolibc:{}", common::unique("t").to_lowercase());
    let docker = |args: &[&str]| {
        Command::new("docker")
            .args(["-H", &e1.endpoint.to_string()])
            .args(args)
            .output()
            .unwrap()
    };
    let imported = docker(&["import", tar.to_str().unwrap(), &image]);
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    // Removed however the test ends.
    struct Remove<F: Fn()>(F);
    impl<F: Fn()> Drop for Remove<F> {
        fn drop(&mut self) {
            (self.0)()
        }
    }
    let _remove = Remove(|| {
        docker(&["rmi", "-f", &image]);
    });
    let hosts = rootfs.path().join("hosts.toml");
    std::fs::write(
        &hosts,
        format!(
            "[[host]]\nname = \"e1\"\ndocker_host = \"{}\"\nimage = \"{image}\"\nnetwork = \"none\"\nslots = 1\n",
            e1.endpoint
        ),
    )
    .unwrap();
    let out = rootfs.path().join("out");
    let (code, _, stderr) = shard_with(
        module.path(),
        &[
            "go",
            "--hosts",
            hosts.to_str().unwrap(),
            "--out-dir",
            out.to_str().unwrap(),
            "--no-progress",
            "--",
            "-race",
        ],
        &[],
    );
    assert_eq!(code, 1, "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("-race") && errors[0].contains(&format!("e1 (image {image})")),
        "{stderr}"
    );
    assert!(!stderr.contains("no such file"), "{stderr}");
}

/// A shard's network is Docker's `none` network as a test sees it, in a slot container
/// shared by batches and in a container of the shard's own (`--no-steal`): `localhost`
/// resolves (cargo-shard places the `/etc/hosts` Docker would write, since its containers
/// start without libnetwork), loopback serves, and nothing but loopback is there.
#[test]
fn a_shard_sees_the_none_network_localhost_and_loopback_only() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = common::testbed_file("hosts-go.toml");
    for extra in [None, Some("--no-steal")] {
        let out = dir.path().join(format!("out-{}", extra.is_some()));
        let mut args = vec![
            "go",
            "./...",
            "--hosts",
            hosts.to_str().unwrap(),
            "--env",
            "WANT_ONLY_LOOPBACK=1",
            "--out-dir",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        let (code, err) = shard_in(&common::fixture("go-network"), &args);
        assert_eq!(code, 0, "{extra:?}: {err}");
        let statuses = common::junit_statuses(&out.join("junit.xml"));
        let names: Vec<(&str, &str)> = statuses.iter().map(|((_, n), s)| (n.as_str(), *s)).collect();
        assert_eq!(
            names,
            [
                ("TestLocalhostResolvesToLoopback", "passed"),
                ("TestLoopbackServesAConnection", "passed"),
                ("TestTheNamespaceHoldsOnlyLoopback", "passed"),
            ],
            "{extra:?}"
        );
    }
}
