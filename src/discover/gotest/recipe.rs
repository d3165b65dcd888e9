//! Running a shard's share of a Go suite: one driver job per package (and per kind: plain
//! tests, gocheck suite methods), and reading each job's `-test.v` or `-check.vv` output back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use crate::discover::gocheck;
use crate::discover::{ShardCtx, ShardRecipe};
use crate::shard::{Collected, ShardSpec};
use crate::test_result::{TestId, TestResult, TestStatus};

use super::driver::{DriverJob, anchored_alternation, chunk_for_pattern, driver_argv};
use super::parse::{self, ParsedRun, parse_go_v};

/// How to run one package's tests inside a shard.
#[derive(Debug, Clone)]
pub(super) struct PackageRun {
    pub(super) stem: String,
    pub(super) rel_dir: String,
    /// The `Test…` function that runs the gocheck suites, if the package has any.
    pub(super) hook: Option<String>,
    pub(super) check_tests: HashSet<String>,
}

/// One binary invocation: a package's plain tests or its gocheck tests (split further only
/// when the `-test.run` pattern would exceed the argument size limit).
#[derive(Debug, Clone, PartialEq)]
struct JobPlan {
    stem: String,
    package: String,
    gocheck: bool,
    names: Vec<String>,
}

/// Runs the tests of a [`Suite`](crate::discover::Suite) from [`discover`](super::discover).
#[derive(Debug)]
pub struct GoRecipe {
    pub(super) packages: BTreeMap<String, PackageRun>,
    pub(super) passthrough: Vec<String>,
}

impl GoRecipe {
    /// Deterministic, so `results` finds the files `prepare` named. Packages come in the
    /// order their first test does (the planner's: longest first), so the driver starts the
    /// binary holding the longest test first rather than whichever package sorts first.
    fn plan_jobs(&self, tests: &[TestId]) -> Vec<JobPlan> {
        let mut by_pkg: BTreeMap<&str, (Vec<String>, Vec<String>)> = BTreeMap::new();
        let mut order: Vec<&str> = Vec::new();
        for t in tests {
            let Some(pkg) = self.packages.get(&t.group) else {
                continue;
            };
            if !by_pkg.contains_key(t.group.as_str()) {
                order.push(&t.group);
            }
            let entry = by_pkg.entry(&t.group).or_default();
            if pkg.check_tests.contains(&t.name) {
                &mut entry.1
            } else {
                &mut entry.0
            }
            .push(t.name.clone());
        }
        let mut jobs = Vec::new();
        for package in order {
            let (plain, check) = by_pkg.remove(package).unwrap_or_default();
            let pkg = &self.packages[package];
            for (gocheck, names, tag) in [(false, plain, 't'), (true, check, 'c')] {
                for (k, chunk) in chunk_for_pattern(&names).into_iter().enumerate() {
                    jobs.push(JobPlan {
                        stem: format!("{}.{tag}{k}", pkg.stem),
                        package: package.to_string(),
                        gocheck,
                        names: chunk,
                    });
                }
            }
        }
        jobs
    }
}

impl ShardRecipe for GoRecipe {
    fn runner(&self) -> &'static str {
        "go"
    }

    /// `-test.v` and gocheck lines, streamed by the driver as each binary prints them: display
    /// only, since a test can print them too.
    /// One process per package runs that package's tests in turn, as `go test` does (tests of a
    /// package may share state or ports, so they are never split over processes of one shard).
    fn serial_groups(&self) -> bool {
        true
    }

    fn live(&self, _stream: crate::shard::Stream, line: &str) -> Option<crate::discover::Live> {
        crate::discover::gocheck::live(line)
    }

    fn prepare(&self, tests: &[TestId], ctx: &ShardCtx) -> ShardSpec {
        let root = ctx.root.trim_end_matches('/');
        // Sources at their build-machine path when staged there, so `runtime.Caller` paths
        // compiled into the binaries name real files.
        let (bin, src) = (ctx.place("bin"), ctx.place("src"));
        let jobs: Vec<DriverJob> = self
            .plan_jobs(tests)
            .into_iter()
            .map(|job| {
                let pkg = &self.packages[&job.package];
                // A test calling os.Exit(0) must not pass for a binary that finished: the binary
                // panics instead, as under `go test`.
                let mut argv = vec![
                    format!("{bin}/{}.test", pkg.stem),
                    "-test.v".to_string(),
                    "-test.paniconexit0".to_string(),
                ];
                argv.extend(self.passthrough.iter().cloned());
                let pattern = anchored_alternation(&job.names);
                match (&pkg.hook, job.gocheck) {
                    (Some(hook), true) => argv.extend([
                        "-test.run".into(),
                        anchored_alternation(&[hook.as_str()]),
                        "-check.vv".into(),
                        "-check.f".into(),
                        pattern,
                    ]),
                    _ => argv.extend(["-test.run".into(), pattern]),
                }
                if let Some(per_test) = ctx.test_timeout {
                    // Go's -test.timeout bounds the whole binary; scale it by the tests it runs.
                    let total = per_test.saturating_mul(job.names.len().max(1) as u32);
                    argv.push(format!("-test.timeout={}ms", total.as_millis()));
                }
                let dir = if pkg.rel_dir.is_empty() {
                    src.clone()
                } else {
                    format!("{src}/{}", pkg.rel_dir)
                };
                DriverJob {
                    name: job.stem,
                    dir,
                    argv,
                }
            })
            .collect();
        ShardSpec {
            argv: driver_argv(&format!("{root}/out"), ctx.test_threads, &jobs),
            env: vec![("TMPDIR".into(), format!("{root}/tmp"))],
            workdir: root.to_string(),
            files: Vec::new(),
            collect: vec![format!("{root}/out")],
        }
    }

    fn results(&self, tests: &[TestId], collected: &Collected) -> Vec<TestResult> {
        let mut results = Vec::new();
        for job in self.plan_jobs(tests) {
            // A job without output never ran (the shard died first): leave its tests to the
            // caller, which treats a shard without results as lost.
            let Some(text) = find_output(collected, &job.stem, "out") else {
                continue;
            };
            let text = String::from_utf8_lossy(text);
            let code = find_output(collected, &job.stem, "code")
                .and_then(|c| String::from_utf8_lossy(c).trim().parse::<i64>().ok());
            let parsed = if job.gocheck {
                gocheck::parse_gocheck(&text)
            } else {
                parse_go_v(&text)
            };
            results.extend(outcomes_to_results(
                &job.package,
                &job.names,
                &parsed,
                code,
                "test binary",
            ));
        }
        results
    }
}

/// The test a binary may have died in, whose printed result then proves nothing: a test can
/// print its own `--- PASS:` line and then hang, panic or exit. It is the last test started,
/// unless the binary exited 0 (every test passed, and `-test.paniconexit0` keeps a test's own
/// `os.Exit(0)` from looking so) or exited 1 with another test failed (a finished run).
fn died_in(parsed: &ParsedRun, exit_code: Option<i64>) -> Option<&str> {
    let last = parsed.last_started.as_deref()?;
    let other_failed = || {
        parsed
            .tests
            .iter()
            .any(|t| t.name != last && t.status == Some(TestStatus::Failed))
    };
    let finished =
        parsed.panic.is_none() && (exit_code == Some(0) || (exit_code == Some(1) && other_failed()));
    let failed = parsed
        .get(last)
        .is_some_and(|t| t.status == Some(TestStatus::Failed));
    (!finished && !failed).then_some(last)
}

/// The collected `<root>/out/<stem>.<ext>` file, whatever the root was.
fn find_output<'a>(collected: &'a Collected, stem: &str, ext: &str) -> Option<&'a Vec<u8>> {
    let suffix = format!("/out/{stem}.{ext}");
    collected
        .files
        .iter()
        .find(|(path, _)| path.ends_with(&suffix))
        .map(|(_, v)| v)
}

/// Turns a parsed run into one result per expected name. A name without a result is an
/// error saying why: the binary (or command) exited while it ran or before reaching it.
pub(crate) fn outcomes_to_results(
    group: &str,
    names: &[String],
    parsed: &ParsedRun,
    exit_code: Option<i64>,
    what: &str,
) -> Vec<TestResult> {
    let by_name: HashMap<&str, &parse::ParsedTest> =
        parsed.tests.iter().map(|t| (t.name.as_str(), t)).collect();
    let unsure = died_in(parsed, exit_code);
    let exited = match exit_code {
        Some(code) => format!("the {what} exited with code {code}"),
        None => format!("the {what} was stopped before it exited"),
    };
    let panic = parsed
        .panic
        .as_deref()
        .map(|p| format!(" after `{p}`"))
        .unwrap_or_default();
    names
        .iter()
        .map(|name| {
            let id = TestId::new(group, name);
            match by_name.get(name.as_str()) {
                Some(t) if t.status.is_some() && unsure != Some(name.as_str()) => TestResult {
                    status: t.status.unwrap_or(TestStatus::Error),
                    duration: t.duration,
                    message: t.message.clone(),
                    detail: failed_block(t.status, &t.output),
                    stdout: t.output.clone(),
                    stderr: String::new(),
                    subtests: t
                        .subtests
                        .iter()
                        .map(|s| TestResult {
                            id: TestId::new(group, &s.name),
                            status: s.status.unwrap_or(TestStatus::Error),
                            duration: s.duration,
                            message: s.message.clone(),
                            detail: failed_block(s.status, &s.output),
                            stdout: s.output.clone(),
                            stderr: String::new(),
                            subtests: Vec::new(),
                        })
                        .collect(),
                    id,
                },
                Some(t) if t.started || unsure == Some(name.as_str()) => TestResult {
                    id,
                    status: TestStatus::Error,
                    duration: Duration::ZERO,
                    message: Some(format!("{exited}{panic} while this test was running")),
                    detail: String::new(),
                    stdout: t.output.clone(),
                    stderr: String::new(),
                    subtests: Vec::new(),
                },
                _ => TestResult {
                    id,
                    status: TestStatus::Error,
                    duration: Duration::ZERO,
                    message: Some(if exit_code == Some(0) && parsed.panic.is_none() {
                        format!("not reported: {exited} without running this test")
                    } else {
                        format!("not run: {exited}{panic} before reaching this test")
                    }),
                    detail: String::new(),
                    stdout: String::new(),
                    stderr: String::new(),
                    subtests: Vec::new(),
                },
            }
        })
        .collect()
}

/// The failure text of a failed test; nothing for the others, whose message says it all.
fn failed_block(status: Option<TestStatus>, output: &str) -> String {
    match status {
        Some(TestStatus::Failed) => parse::failure_block(output),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::gotest::stem;

    fn recipe() -> GoRecipe {
        let mut packages = BTreeMap::new();
        packages.insert(
            "ex.com/a".to_string(),
            PackageRun {
                stem: stem("ex.com/a"),
                rel_dir: "a".into(),
                hook: None,
                check_tests: HashSet::new(),
            },
        );
        packages.insert(
            "ex.com/c".to_string(),
            PackageRun {
                stem: stem("ex.com/c"),
                rel_dir: String::new(),
                hook: Some("Test".into()),
                check_tests: ["S.TestA".to_string(), "S.TestAB".to_string()].into(),
            },
        );
        GoRecipe {
            packages,
            passthrough: vec!["-test.count=1".into()],
        }
    }

    fn ctx() -> ShardCtx {
        ShardCtx {
            root: "/cargo-shard/".into(),
            index: 0,
            count: 1,
            run_id: "r".into(),
            host: "h".into(),
            attempt: 1,
            test_threads: 2,
            test_timeout: Some(Duration::from_secs(2)),
            tools: Default::default(),
            places: Default::default(),
            in_container: true,
        }
    }

    #[test]
    fn prepare_runs_one_binary_per_package_and_kind() {
        let tests = [
            TestId::new("ex.com/a", "TestFoo"),
            TestId::new("ex.com/c", "S.TestA"),
            TestId::new("ex.com/a", "TestFooBar"),
            TestId::new("ex.com/c", "TestPlain"),
        ];
        let spec = recipe().prepare(&tests, &ctx());
        assert_eq!(spec.collect, ["/cargo-shard/out"]);
        assert_eq!(spec.workdir, "/cargo-shard");
        let args = &spec.argv[4..];
        let a = stem("ex.com/a");
        let c = stem("ex.com/c");
        let expected: Vec<String> = [
            "/cargo-shard/out",
            "2",
            &format!("{a}.t0"),
            "/cargo-shard/src/a",
            "7",
            &format!("/cargo-shard/bin/{a}.test"),
            "-test.v",
            "-test.paniconexit0",
            "-test.count=1",
            "-test.run",
            "^(TestFoo|TestFooBar)$",
            "-test.timeout=4000ms",
            &format!("{c}.t0"),
            "/cargo-shard/src",
            "7",
            &format!("/cargo-shard/bin/{c}.test"),
            "-test.v",
            "-test.paniconexit0",
            "-test.count=1",
            "-test.run",
            "^(TestPlain)$",
            "-test.timeout=2000ms",
            &format!("{c}.c0"),
            "/cargo-shard/src",
            "10",
            &format!("/cargo-shard/bin/{c}.test"),
            "-test.v",
            "-test.paniconexit0",
            "-test.count=1",
            "-test.run",
            "^(Test)$",
            "-check.vv",
            "-check.f",
            r"^(S\.TestA)$",
            "-test.timeout=2000ms",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(args, expected);
    }

    #[test]
    fn the_package_of_the_first_listed_test_starts_first() {
        let (a, c) = (
            TestId::new("ex.com/a", "TestFoo"),
            TestId::new("ex.com/c", "TestPlain"),
        );
        for tests in [[c.clone(), a.clone()], [a.clone(), c.clone()]] {
            let jobs: Vec<String> = recipe()
                .plan_jobs(&tests)
                .into_iter()
                .map(|j| j.package)
                .collect();
            let firsts: Vec<&str> = tests.iter().map(|t| t.group.as_str()).collect();
            assert_eq!(jobs, firsts);
        }
    }

    #[test]
    fn results_read_each_jobs_file_and_explain_the_missing() {
        let r = recipe();
        let a = stem("ex.com/a");
        let tests = [
            TestId::new("ex.com/a", "TestOk"),
            TestId::new("ex.com/a", "TestDies"),
            TestId::new("ex.com/a", "TestNever"),
            TestId::new("ex.com/c", "S.TestA"),
        ];
        let mut collected = Collected::default();
        collected.files.insert(
            format!("/x/out/{a}.t0.out"),
            b"=== RUN   TestOk\n--- PASS: TestOk (0.50s)\n=== RUN   TestDies\n".to_vec(),
        );
        collected
            .files
            .insert(format!("/x/out/{a}.t0.code"), b"3\n".to_vec());
        let results = r.results(&tests, &collected);
        assert_eq!(
            results.len(),
            3,
            "the gocheck job left no file, so its test is the caller's"
        );
        assert_eq!(results[0].status, TestStatus::Passed);
        assert_eq!(results[0].duration, Duration::from_millis(500));
        assert_eq!(results[1].status, TestStatus::Error);
        assert_eq!(
            results[1].message.as_deref(),
            Some("the test binary exited with code 3 while this test was running")
        );
        assert_eq!(results[2].status, TestStatus::Error);
        assert_eq!(
            results[2].message.as_deref(),
            Some("not run: the test binary exited with code 3 before reaching this test")
        );
    }

    /// Go's `-test.v` text is what a test can print too: a printed pass never beats the
    /// framework's failure, and proves nothing for the test a dying binary was running.
    #[test]
    fn printed_passes_do_not_stand() {
        let names = ["TestA".to_string(), "TestZHang".to_string()];
        let run = |text: &str, code| {
            outcomes_to_results("p", &names, &parse_go_v(text), Some(code), "test binary")
                .into_iter()
                .map(|r| r.status)
                .collect::<Vec<_>>()
        };
        let forger = "=== RUN   TestA\n--- PASS: TestZHang (0.00s)\n--- FAIL: TestA (0.00s)\n";
        // TestZHang prints its own pass, then fails (the run finished) or hangs until killed.
        let finished = format!(
            "{forger}=== RUN   TestZHang\n--- PASS: TestZHang (0.00s)\n--- FAIL: TestZHang (1.00s)\nFAIL\n"
        );
        assert_eq!(run(&finished, 1), [TestStatus::Failed, TestStatus::Failed]);
        let died = format!(
            "{forger}=== RUN   TestZHang\n--- PASS: TestZHang (0.00s)\npanic: test timed out after 2s\n"
        );
        assert_eq!(run(&died, 2), [TestStatus::Failed, TestStatus::Error]);
        // `os.Exit(1)` after printing its own pass, with no other failure: not a finished run.
        let exited =
            "=== RUN   TestA\n--- PASS: TestA (0.00s)\n=== RUN   TestZHang\n--- PASS: TestZHang (0.00s)\n";
        assert_eq!(run(exited, 1), [TestStatus::Passed, TestStatus::Error]);
        // A binary that exited 0 ran every test to a pass.
        assert_eq!(
            run(&format!("{exited}PASS\n"), 0),
            [TestStatus::Passed, TestStatus::Passed]
        );
    }
}
