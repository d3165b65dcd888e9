//! Running a shard's share of a Go suite: one driver job per package (and per kind: plain
//! tests, gocheck suite methods), and reading each job's `-test.v` or `-check.vv` output back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use crate::discover::gocheck;
use crate::discover::{Collected, ShardCtx, ShardRecipe, ShardSpec, TestId, TestResult, TestStatus};

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

/// Runs the tests of a [`Suite`] from [`discover`].
#[derive(Debug)]
pub struct GoRecipe {
    pub(super) packages: BTreeMap<String, PackageRun>,
    pub(super) passthrough: Vec<String>,
}

impl GoRecipe {
    /// Deterministic, so `results` finds the files `prepare` named.
    fn plan_jobs(&self, tests: &[TestId]) -> Vec<JobPlan> {
        let mut by_pkg: BTreeMap<&str, (Vec<String>, Vec<String>)> = BTreeMap::new();
        for t in tests {
            let Some(pkg) = self.packages.get(&t.group) else {
                continue;
            };
            let entry = by_pkg.entry(&t.group).or_default();
            if pkg.check_tests.contains(&t.name) {
                &mut entry.1
            } else {
                &mut entry.0
            }
            .push(t.name.clone());
        }
        let mut jobs = Vec::new();
        for (package, (plain, check)) in by_pkg {
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

    /// `-test.v` and gocheck result lines, streamed by the driver as each binary prints them.
    fn live_end(&self, line: &str) -> Option<crate::discover::LiveEnd> {
        crate::discover::gocheck::live_end(line)
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
                let mut argv = vec![format!("{bin}/{}.test", pkg.stem), "-test.v".to_string()];
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
            argv: driver_argv(&format!("{root}/out"), ctx.jobs, &jobs),
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
                Some(t) if t.status.is_some() => TestResult {
                    status: t.status.unwrap_or(TestStatus::Error),
                    duration: t.duration,
                    message: t.message.clone(),
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
                            stdout: s.output.clone(),
                            stderr: String::new(),
                            subtests: Vec::new(),
                        })
                        .collect(),
                    id,
                },
                Some(t) if t.started => TestResult {
                    id,
                    status: TestStatus::Error,
                    duration: Duration::ZERO,
                    message: Some(format!("{exited}{panic} while this test was running")),
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
                    stdout: String::new(),
                    stderr: String::new(),
                    subtests: Vec::new(),
                },
            }
        })
        .collect()
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
            jobs: 2,
            test_timeout: Some(Duration::from_secs(2)),
            tools: Default::default(),
            places: Default::default(),
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
            "6",
            &format!("/cargo-shard/bin/{a}.test"),
            "-test.v",
            "-test.count=1",
            "-test.run",
            "^(TestFoo|TestFooBar)$",
            "-test.timeout=4000ms",
            &format!("{c}.t0"),
            "/cargo-shard/src",
            "6",
            &format!("/cargo-shard/bin/{c}.test"),
            "-test.v",
            "-test.count=1",
            "-test.run",
            "^(TestPlain)$",
            "-test.timeout=2000ms",
            &format!("{c}.c0"),
            "/cargo-shard/src",
            "9",
            &format!("/cargo-shard/bin/{c}.test"),
            "-test.v",
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
}
