//! Go discovery and recipes against the real toolchain: lists fixtures/go-sample with
//! `go test -c`/`-test.list`, runs shards as local processes exactly as an engine would
//! (uploads unpacked under a root, the spec's argv/env/workdir, the spec's collect paths
//! read back), and compares the outcome with `go test` run directly.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use cargo_shard::discover::command::{self, ExecOptions, KeyPassing, KeySource};
use cargo_shard::discover::gotest::{self, GoOptions};
use cargo_shard::discover::{Known, ShardCtx, Suite};
use cargo_shard::shard::{Collected, Upload};
use cargo_shard::test_result::{TestId, TestResult, TestStatus};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/go-sample")
}

fn checksuite_dir() -> PathBuf {
    fixture().join("gopath/src/example.com/checksuite")
}

fn gopath() -> String {
    format!("{}:/usr/share/gocode", fixture().join("gopath").display())
}

/// Discovers fixtures/go-sample, checking what it tells before the build: the sources the
/// shards get, as the very part (same hash) a run's head start can stage while Go builds.
fn discover_module(out: &Path) -> Suite {
    let mut told = Vec::new();
    let suite = gotest::discover_telling(&GoOptions::new(fixture(), out), &mut |p, known| {
        told.push((p, known))
    })
    .expect("discovery of fixtures/go-sample");
    let whole = suite.payload();
    let mut sources = whole.clone();
    sources.uploads.retain(|u| matches!(u, Upload::Tree { .. }));
    assert_eq!(told, [(sources.clone(), Known::Sources)]);
    let scratch = tempfile::tempdir().unwrap();
    let src = |p: &cargo_shard::discover::Payload| {
        let (parts, _) = cargo_shard::run::stage::parts_in(&p.uploads, scratch.path(), false, &[]).unwrap();
        parts.into_iter().find(|p| p.name == "src").unwrap().hash
    };
    assert_eq!(src(&sources), src(&whole));
    suite
}

fn discover_checksuite(out: &Path) -> Suite {
    let mut opts = GoOptions::new(checksuite_dir(), out);
    opts.gopath = Some(gopath());
    gotest::discover(&opts).expect("discovery of the gocheck suite")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    text
}

/// `go test -list . ./...`: test names per package, as go prints them (benchmarks dropped:
/// `go test` lists them but does not run them).
fn go_test_list() -> BTreeMap<String, BTreeSet<String>> {
    let text = run(Command::new("go")
        .args(["test", "-list", ".", "./..."])
        .current_dir(fixture()));
    let mut per_pkg = BTreeMap::new();
    let mut pending = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("ok  \t") {
            let pkg = rest.split('\t').next().unwrap().to_string();
            per_pkg.insert(pkg, std::mem::take(&mut pending));
        } else if ["Test", "Example", "Fuzz"].iter().any(|p| line.starts_with(p)) && !line.contains(' ') {
            pending.insert(line.to_string());
        }
    }
    assert!(
        pending.is_empty(),
        "names without a package line: {pending:?}\n{text}"
    );
    per_pkg
}

/// `go test -json ./...` run directly: the final action of every top-level test.
fn go_test_json() -> BTreeMap<TestId, String> {
    let out = Command::new("go")
        .args(["test", "-count=1", "-json", "./..."])
        .current_dir(fixture())
        .env_remove("GOSAMPLE_CRASH")
        .output()
        .unwrap();
    let mut actions = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let (Some(pkg), Some(test), Some(action)) =
            (v["Package"].as_str(), v["Test"].as_str(), v["Action"].as_str())
        else {
            continue;
        };
        if !test.contains('/') && matches!(action, "pass" | "fail" | "skip") {
            actions.insert(TestId::new(pkg, test), action.to_string());
        }
    }
    actions
}

/// Runs one shard the way an engine does, under a fresh root whose path has a space in it.
fn run_shard(suite: &Suite, tests: &[TestId], jobs: usize, extra_env: &[(&str, &str)]) -> Collected {
    let root_dir = tempfile::Builder::new().prefix("shard root ").tempdir().unwrap();
    let root = root_dir.path();
    for upload in &suite.uploads {
        match upload {
            Upload::File { src, dest, mode } => {
                let to = root.join(dest);
                std::fs::create_dir_all(to.parent().unwrap()).unwrap();
                std::fs::copy(src, &to).unwrap();
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&to, std::fs::Permissions::from_mode(*mode)).unwrap();
            }
            Upload::Tree { src, files, dest } => {
                for f in files {
                    let to = root.join(dest).join(f);
                    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
                    std::fs::copy(src.join(f), &to).unwrap();
                }
            }
        }
    }
    let ctx = ShardCtx {
        root: root.display().to_string(),
        index: 0,
        count: 1,
        run_id: "test".into(),
        host: "local".into(),
        attempt: 1,
        test_threads: jobs,
        test_timeout: None,
        tools: Default::default(),
        places: Default::default(),
        in_container: false,
    };
    let spec = suite.recipe.prepare(tests, &ctx);
    for (path, bytes) in &spec.files {
        let to = root.join(path);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, bytes).unwrap();
    }
    let out = Command::new(&spec.argv[0])
        .args(&spec.argv[1..])
        .envs(spec.env.iter().cloned())
        .envs(extra_env.iter().copied())
        .current_dir(&spec.workdir)
        .output()
        .unwrap();
    let mut collected = Collected {
        exit_code: out.status.code().map(i64::from),
        ..Default::default()
    };
    collected.output = out.stdout;
    collected.output.extend(out.stderr);
    for path in &spec.collect {
        collect(Path::new(path), &mut collected);
    }
    collected
}

fn collect(path: &Path, into: &mut Collected) {
    if path.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            collect(&e.unwrap().path(), into);
        }
    } else if path.is_file() {
        into.files
            .insert(path.display().to_string(), std::fs::read(path).unwrap());
    }
}

fn ids(group: &str, names: &[&str]) -> Vec<TestId> {
    names.iter().map(|n| TestId::new(group, *n)).collect()
}

fn by_name(results: &[TestResult]) -> BTreeMap<String, &TestResult> {
    results.iter().map(|r| (r.id.name.clone(), r)).collect()
}

/// Every `.out` file the shard left, concatenated: what the binaries printed.
fn transcripts(c: &Collected) -> String {
    c.files
        .iter()
        .filter(|(p, _)| p.ends_with(".out"))
        .map(|(_, v)| String::from_utf8_lossy(v))
        .collect()
}

const ALPHA: &str = "example.com/gosample/alpha";
const CRASHY: &str = "example.com/gosample/crashy";
const CHECK: &str = "example.com/checksuite";

#[test]
fn discovery_lists_exactly_what_go_test_lists() {
    let out = tempfile::tempdir().unwrap();
    let suite = discover_module(out.path());
    let mut discovered: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for t in &suite.tests {
        assert!(
            discovered
                .entry(t.id.group.clone())
                .or_default()
                .insert(t.id.name.clone()),
            "{} twice",
            t.id
        );
    }
    assert_eq!(discovered, go_test_list());
    assert!(suite.tests.len() >= 40, "{}", suite.tests.len());
    assert!(
        !discovered.contains_key("example.com/gosample/lib"),
        "a package without tests is skipped"
    );
    assert!(discovered["example.com/gosample/beta"].contains("FuzzLines"));
    assert!(!discovered["example.com/gosample/beta"].contains("BenchmarkLines"));

    let binaries: Vec<&Upload> = suite
        .uploads
        .iter()
        .filter(|u| matches!(u, Upload::File { .. }))
        .collect();
    assert_eq!(
        binaries.len(),
        discovered.len(),
        "one test binary per package with tests"
    );
    for b in binaries {
        let Upload::File { src, dest, mode } = b else {
            unreachable!()
        };
        assert!(src.is_file() && dest.starts_with("bin/") && dest.ends_with(".test") && *mode == 0o755);
    }
    let tree = suite.uploads.iter().find_map(|u| match u {
        Upload::Tree { files, dest, .. } if dest == "src" => Some(files),
        _ => None,
    });
    let tree = tree.expect("source tree upload");
    for shipped in [
        "go.mod",
        "beta/testdata/words.txt",
        "testdata/shared.txt",
        "gamma/shared_test.go",
    ] {
        assert!(
            tree.contains(&PathBuf::from(shipped)),
            "{shipped} shipped: {tree:?}"
        );
    }
    // Only what the packages with tests read: not a package without tests, not the
    // GOPATH tree beyond the module boundary, not the Makefile.
    for left in ["lib/lib.go", "Makefile", "gopath/go.mod"] {
        assert!(
            !tree.contains(&PathBuf::from(left)),
            "{left} not shipped: {tree:?}"
        );
    }
    assert!(!tree.iter().any(|f| f.starts_with("gopath")), "{tree:?}");
}

/// One selected package ships its own directory and what its tests name, not its siblings.
#[test]
fn selected_package_ships_its_directory_and_the_files_its_tests_name() {
    let out = tempfile::tempdir().unwrap();
    let mut opts = GoOptions::new(fixture(), out.path());
    opts.packages = vec!["./gamma".into()];
    let suite = gotest::discover(&opts).unwrap();
    let tree: Vec<String> = suite
        .uploads
        .iter()
        .find_map(|u| match u {
            Upload::Tree { files, .. } => Some(files.iter().map(|f| f.display().to_string()).collect()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        tree,
        [
            "beta/testdata/words.txt",
            "gamma/gamma.go",
            "gamma/gamma_test.go",
            "gamma/shared_test.go",
            "go.mod",
            "testdata/shared.txt",
        ]
    );
    let all: Vec<TestId> = suite.tests.iter().map(|t| t.id.clone()).collect();
    let results = suite.recipe.results(&all, &run_shard(&suite, &all, 2, &[]));
    assert_eq!(results.len(), all.len());
    for r in &results {
        assert_eq!(r.status, TestStatus::Passed, "{r:?}");
    }
    assert!(results.iter().any(|r| r.id.name == "TestReadsSiblingFixture"));
}

#[test]
fn shards_give_the_same_statuses_as_go_test() {
    let out = tempfile::tempdir().unwrap();
    let suite = discover_module(out.path());
    let expected = go_test_json();
    let all: Vec<TestId> = suite.tests.iter().map(|t| t.id.clone()).collect();
    let mut got = BTreeMap::new();
    // Three shards, each mixing packages, run with two binaries at once.
    for k in 0..3 {
        let share: Vec<TestId> = all.iter().skip(k).step_by(3).cloned().collect();
        let collected = run_shard(&suite, &share, 2, &[]);
        let results = suite.recipe.results(&share, &collected);
        assert_eq!(results.len(), share.len(), "one result per test");
        for r in results {
            assert!(got.insert(r.id.clone(), r).is_none());
        }
    }
    for (id, action) in &expected {
        let r = got.get(id).unwrap_or_else(|| panic!("{id} has no result"));
        let want = match action.as_str() {
            "pass" => TestStatus::Passed,
            "fail" => TestStatus::Failed,
            _ => TestStatus::Skipped,
        };
        assert_eq!(r.status, want, "{id}: {r:?}");
    }
    assert_eq!(got.len(), expected.len(), "go test ran the same tests");
    let failing = &got[&TestId::new(ALPHA, "TestFailing")];
    assert!(failing.message.as_deref().unwrap().contains("about to fail"));
    assert!(failing.stdout.contains("intentional failure: 1 != 2"));
    let subtests = &got[&TestId::new(ALPHA, "TestSubtestFails")];
    assert_eq!(
        subtests.message.as_deref(),
        Some("failed subtests: TestSubtestFails/bad")
    );
    assert!(got[&TestId::new(ALPHA, "TestSleepLong")].duration.as_millis() >= 700);
    assert!(
        got[&TestId::new("example.com/gosample/beta", "TestSleep1s")]
            .duration
            .as_millis()
            >= 1000
    );
}

#[test]
fn names_that_prefix_others_run_exactly_once() {
    let out = tempfile::tempdir().unwrap();
    let suite = discover_module(out.path());
    let both = ids(ALPHA, &["TestFoo", "TestFooBar"]);
    let c = run_shard(&suite, &both, 1, &[]);
    let text = transcripts(&c);
    assert_eq!(text.matches("=== RUN   TestFoo\n").count(), 1, "{text}");
    assert_eq!(text.matches("=== RUN   TestFooBar\n").count(), 1, "{text}");
    assert!(
        !text.contains("TestFooBarBaz") && !text.contains("TestFoo2"),
        "{text}"
    );
    assert!(
        suite
            .recipe
            .results(&both, &c)
            .iter()
            .all(|r| r.status == TestStatus::Passed)
    );

    let only = ids(ALPHA, &["TestFoo"]);
    let c = run_shard(&suite, &only, 1, &[]);
    let text = transcripts(&c);
    assert_eq!(text.matches("=== RUN   TestFoo\n").count(), 1, "{text}");
    assert!(!text.contains("TestFooBar"), "{text}");
    let results = suite.recipe.results(&only, &c);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].status, TestStatus::Passed);
}

#[test]
fn a_binary_that_dies_turns_unreported_tests_into_errors() {
    let out = tempfile::tempdir().unwrap();
    let suite = discover_module(out.path());
    let tests = ids(
        CRASHY,
        &["TestBeforeCrash", "TestPanics", "TestExits", "TestAfterCrash"],
    );

    let c = run_shard(&suite, &tests, 1, &[("GOSAMPLE_CRASH", "panic")]);
    let results = suite.recipe.results(&tests, &c);
    let r = by_name(&results);
    assert_eq!(r["TestBeforeCrash"].status, TestStatus::Passed);
    assert_eq!(r["TestPanics"].status, TestStatus::Failed);
    assert!(r["TestPanics"].stdout.contains("panic: boom"));
    for name in ["TestExits", "TestAfterCrash"] {
        assert_eq!(r[name].status, TestStatus::Error, "{name}");
        let msg = r[name].message.as_deref().unwrap();
        assert!(
            msg.contains("exited with code 2") && msg.contains("panic: boom"),
            "{msg}"
        );
    }

    let c = run_shard(&suite, &tests, 1, &[("GOSAMPLE_CRASH", "exit")]);
    let results = suite.recipe.results(&tests, &c);
    let r = by_name(&results);
    assert_eq!(r["TestPanics"].status, TestStatus::Passed);
    assert_eq!(r["TestExits"].status, TestStatus::Error);
    assert_eq!(
        r["TestExits"].message.as_deref(),
        Some("the test binary exited with code 3 while this test was running")
    );
    assert_eq!(r["TestAfterCrash"].status, TestStatus::Error);
    assert!(
        r["TestAfterCrash"]
            .message
            .as_deref()
            .unwrap()
            .starts_with("not run:")
    );
}

#[test]
fn gocheck_suites_are_listed_once_and_run_by_filter() {
    let out = tempfile::tempdir().unwrap();
    let suite = discover_checksuite(out.path());
    let listed = run(Command::new("make")
        .args(["-s", "list-integration"])
        .current_dir(fixture()));
    let mut want: Vec<String> = listed.lines().map(str::to_string).collect();
    want.push("TestPlain".into());
    want.sort();
    let mut got: Vec<String> = suite.tests.iter().map(|t| t.id.name.clone()).collect();
    got.sort();
    assert_eq!(
        got, want,
        "every suite method once, the plain test, and not the `Test` hook"
    );
    assert!(suite.tests.iter().all(|t| t.id.group == CHECK));

    let tests = ids(
        CHECK,
        &[
            "MathSuite.TestFails",
            "MathSuite.TestDouble",
            "FileSuite.TestA",
            "FileSuite.TestReadsTestdata",
            "TestPlain",
        ],
    );
    let c = run_shard(&suite, &tests, 2, &[]);
    let results = suite.recipe.results(&tests, &c);
    let r = by_name(&results);
    assert_eq!(results.len(), tests.len());
    assert_eq!(r["MathSuite.TestFails"].status, TestStatus::Failed);
    assert!(r["MathSuite.TestFails"].stdout.contains("obtained int = 4"));
    for name in [
        "MathSuite.TestDouble",
        "FileSuite.TestA",
        "FileSuite.TestReadsTestdata",
        "TestPlain",
    ] {
        assert_eq!(r[name].status, TestStatus::Passed, "{name}: {:?}", r[name]);
    }
    let text = transcripts(&c);
    assert!(
        !text.contains("FileSuite.TestAB"),
        "`FileSuite.TestA` must not select TestAB:\n{text}"
    );
    assert_eq!(text.matches("=== RUN   TestPlain\n").count(), 1, "{text}");
    let starts = text
        .lines()
        .filter(|l| l.starts_with("START: ") && l.ends_with(": MathSuite.TestDouble"));
    assert_eq!(starts.count(), 1, "{text}");

    let skipped = ids(CHECK, &["MathSuite.TestSkipped"]);
    let c = run_shard(&suite, &skipped, 1, &[]);
    let results = suite.recipe.results(&skipped, &c);
    assert_eq!(results[0].status, TestStatus::Skipped);
    assert_eq!(results[0].message.as_deref(), Some("not today"));
    assert!(
        !transcripts(&c).contains("TestPlain"),
        "the hook filter keeps plain tests out"
    );
}

#[test]
fn exec_mode_runs_make_with_a_gocheck_filter() {
    let out = tempfile::tempdir().unwrap();
    let opts = ExecOptions {
        keys: KeySource::List("make -s list-integration".into()),
        list_filter: None,
        passing: KeyPassing::FilterEnv {
            name: "TESTFLAGS".into(),
            format: "-check.f {regex}".into(),
        },
        results: vec![],
        dir: fixture(),
        command: vec!["make".into(), "test-integration".into()],
        exclude: vec![out.path().to_path_buf()],
    };
    let suite = command::discover(&opts).unwrap();
    assert!(!opts.one_key_per_shard());
    assert_eq!(suite.tests.len(), 12);
    let all: Vec<TestId> = suite.tests.iter().map(|t| t.id.clone()).collect();
    let mut got = BTreeMap::new();
    for k in 0..2 {
        let share: Vec<TestId> = all.iter().skip(k).step_by(2).cloned().collect();
        let c = run_shard(&suite, &share, 1, &[]);
        let output = String::from_utf8_lossy(&c.output).into_owned();
        let results = suite.recipe.results(&share, &c);
        assert_eq!(results.len(), share.len());
        for r in results {
            assert!(
                r.message
                    .as_deref()
                    .is_none_or(|m| !m.contains("no per-test results")),
                "{output}"
            );
            got.insert(r.id.name.clone(), r);
        }
    }
    assert_eq!(got.len(), 12);
    for (name, r) in &got {
        let want = match name.as_str() {
            "MathSuite.TestFails" => TestStatus::Failed,
            "MathSuite.TestSkipped" => TestStatus::Skipped,
            _ => TestStatus::Passed,
        };
        assert_eq!(r.status, want, "{name}: {r:?}");
    }
    assert!(got["MathSuite.TestSlow"].duration.as_millis() >= 300);
}

#[test]
fn exec_mode_with_one_key_per_run_applies_each_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keys.txt"), "good\nbad\nwe$ird 'key'\n").unwrap();
    let opts = ExecOptions {
        keys: KeySource::File(dir.path().join("keys.txt")),
        list_filter: None,
        passing: KeyPassing::KeyEnv { name: "KEY".into() },
        results: vec![],
        dir: dir.path().to_path_buf(),
        command: vec![
            "sh".into(),
            "-c".into(),
            r#"echo "key=[$KEY]"; test "$KEY" != bad"#.into(),
        ],
        exclude: vec![],
    };
    assert!(opts.one_key_per_shard());
    let suite = command::discover(&opts).unwrap();
    let all: Vec<TestId> = suite.tests.iter().map(|t| t.id.clone()).collect();
    assert_eq!(all, ids("", &["good", "bad", "we$ird 'key'"]));
    // Several keys in one shard run in turn; a single key runs the command directly.
    for share in [all.clone(), vec![all[1].clone()]] {
        let c = run_shard(&suite, &share, 1, &[]);
        let results = suite.recipe.results(&share, &c);
        for r in &results {
            if r.id.name == "bad" {
                assert_eq!(r.status, TestStatus::Failed);
                assert_eq!(
                    r.message.as_deref(),
                    Some("no per-test results; shard exit code 1 applied")
                );
            } else {
                assert_eq!(r.status, TestStatus::Passed, "{r:?}");
            }
        }
        assert_eq!(results.len(), share.len());
    }
    let c = run_shard(&suite, &all, 1, &[]);
    assert!(transcripts(&c).contains("key=[we$ird 'key']"));
}

#[test]
fn exec_mode_reads_the_junit_files_the_command_writes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("keys.txt"),
        "Suite.TestOk\nSuite.TestBad\nSuite.TestAbsent\n",
    )
    .unwrap();
    // The command writes a JUnit report for the keys it was given; it exits 0 regardless,
    // so a failure can only come from the report.
    let script = r#"mkdir -p reports/junit && {
        echo '<testsuites><testsuite name="s">'
        echo '<testcase classname="Suite" name="TestOk" time="1.25"/>'
        echo '<testcase classname="Suite" name="TestBad" time="0.5"><failure message="bad &amp; sad">trace&#xA;here</failure></testcase>'
        echo '</testsuite></testsuites>'
      } > reports/junit/report.xml
      echo "filter=$FILTER""#;
    let opts = ExecOptions {
        keys: KeySource::File(dir.path().join("keys.txt")),
        list_filter: None,
        passing: KeyPassing::FilterEnv {
            name: "FILTER".into(),
            format: "{regex}".into(),
        },
        results: vec!["reports/junit/*.xml".into()],
        dir: dir.path().to_path_buf(),
        command: vec!["sh".into(), "-c".into(), script.into()],
        exclude: vec![],
    };
    let suite = command::discover(&opts).unwrap();
    let all: Vec<TestId> = suite.tests.iter().map(|t| t.id.clone()).collect();
    let c = run_shard(&suite, &all, 1, &[]);
    assert!(
        String::from_utf8_lossy(&c.output)
            .contains(r"filter=^(Suite\.TestOk|Suite\.TestBad|Suite\.TestAbsent)$"),
        "{}",
        String::from_utf8_lossy(&c.output)
    );
    let results = suite.recipe.results(&all, &c);
    let r = by_name(&results);
    assert_eq!(r["Suite.TestOk"].status, TestStatus::Passed);
    assert_eq!(r["Suite.TestOk"].duration.as_millis(), 1250);
    assert_eq!(r["Suite.TestBad"].status, TestStatus::Failed);
    assert_eq!(r["Suite.TestBad"].message.as_deref(), Some("bad & sad"));
    assert!(r["Suite.TestBad"].stdout.contains("trace\nhere"));
    assert_eq!(r["Suite.TestAbsent"].status, TestStatus::Error);
    assert!(
        r["Suite.TestAbsent"]
            .message
            .as_deref()
            .unwrap()
            .contains("not reported")
    );
}

#[test]
fn build_and_list_failures_are_one_line_errors_naming_the_package() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("go.mod"),
        "module example.com/broken\n\ngo 1.19\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("bad")).unwrap();
    std::fs::write(
        dir.path().join("bad/bad_test.go"),
        "package bad\n\nfunc TestX(t *testing.T) {}\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let err = gotest::discover(&GoOptions::new(dir.path(), &out))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("building the test binary of example.com/broken/bad failed"),
        "{err}"
    );
    assert!(err.contains("undefined: testing") && !err.contains('\n'), "{err}");

    let mut opts = GoOptions::new(dir.path(), &out);
    opts.packages = vec!["./nosuchdir".into()];
    let err = gotest::discover(&opts).unwrap_err().to_string();
    assert!(err.starts_with("`go list ./nosuchdir` failed in "), "{err}");
    assert!(!err.contains('\n'), "{err}");
}

/// `cargo shard plan …` with a host no engine answers for: planning needs none, so a plan
/// printed proves nothing was started. Returns the plan's JSON.
fn plan_json(args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts.toml");
    std::fs::write(
        &hosts,
        "[[host]]\nname = \"nowhere\"\ndocker_host = \"tcp://127.0.0.1:9\"\nslots = 2\njobs = 1\n",
    )
    .unwrap();
    crate::common::plan_json(args, &hosts)
}

fn planned_names(plan: &serde_json::Value) -> BTreeSet<String> {
    plan["shards"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["tests"].as_array().unwrap())
        .map(|t| format!("{} {}", t["group"].as_str().unwrap(), t["name"].as_str().unwrap()))
        .collect()
}

#[test]
fn plan_go_lists_the_module_as_a_run_would_and_runs_nothing() {
    let copy = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .arg("-r")
        .arg(fixture())
        .arg(copy.path())
        .status()
        .unwrap();
    assert!(status.success());
    let dir = copy.path().join("go-sample");
    let plan = plan_json(&["go", "--dir", dir.to_str().unwrap(), "--shards", "2"]);
    assert_eq!(plan["shards"].as_array().unwrap().len(), 2);
    let planned = planned_names(&plan);
    let listed: BTreeSet<String> = go_test_list()
        .into_iter()
        .flat_map(|(pkg, names)| names.into_iter().map(move |n| format!("{pkg} {n}")))
        .collect();
    assert_eq!(
        planned, listed,
        "the plan holds exactly what `go test -list` shows"
    );
}

#[test]
fn plan_exec_plans_the_listed_keys_without_running_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_json(&[
        "exec",
        "--dir",
        dir.path().to_str().unwrap(),
        "--list",
        "printf 'k1\\nk2\\nk3\\n'",
        "--key-env",
        "KEY",
        "--",
        "sh",
        "-c",
        "touch ran",
    ]);
    assert_eq!(
        planned_names(&plan),
        [" k1", " k2", " k3"].map(String::from).into(),
        "{plan}"
    );
    assert!(
        !dir.path().join("ran").exists(),
        "planning never runs the command"
    );
}
