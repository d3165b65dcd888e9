//! The shard recipe: run an exact test list from the archive's binaries, extracted once per
//! host (nextest's reuse-build options), with the source remapped, then read nextest's JUnit
//! back into per-test results.

use std::collections::HashMap;
use std::time::Duration;

use super::{SOURCE_DEST, TOOL_CONFIG_DEST, filter, junit};
use crate::discover::{Collected, LiveEnd, ShardCtx, ShardRecipe, ShardSpec, TestId, TestResult, TestStatus};

/// The payload part holding the archive's `target/` directory, extracted.
pub const TARGET_PART: &str = "target";

/// How a shard runs its tests from the archive and how its JUnit becomes results.
#[derive(Debug, Clone)]
pub struct NextestRecipe {
    pub passthrough: Vec<String>,
}

impl ShardRecipe for NextestRecipe {
    fn runner(&self) -> &'static str {
        "nextest"
    }

    fn prepare(&self, tests: &[TestId], ctx: &ShardCtx) -> ShardSpec {
        let root = ctx.root.trim_end_matches('/');
        let (src, target) = (ctx.place(SOURCE_DEST), ctx.place(TARGET_PART));
        let mut argv: Vec<String> = [
            ctx.tool(super::NEXTEST_BIN),
            "nextest",
            "run",
            "--binaries-metadata",
            &format!("{target}/nextest/binaries-metadata.json"),
            "--cargo-metadata",
            &format!("{target}/nextest/cargo-metadata.json"),
            "--target-dir-remap",
            &target,
            "--workspace-remap",
            &src,
            "--tool-config-file",
            &format!("{}:{root}/{TOOL_CONFIG_DEST}", filter::TOOL),
            "--profile",
            filter::PROFILE,
            "--test-threads",
            &ctx.jobs.max(1).to_string(),
            // The exact filter decides; ignored tests in it were selected on purpose.
            "--run-ignored",
            "all",
            "--no-fail-fast",
            "--no-tests",
            "warn",
            "--color",
            "never",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        argv.extend(self.passthrough.iter().cloned());

        let env = [
            ("CARGO_SHARD_INDEX", ctx.index.to_string()),
            ("CARGO_SHARD_COUNT", ctx.count.to_string()),
            ("CARGO_SHARD_RUN", ctx.run_id.clone()),
            ("CARGO_SHARD_HOST", ctx.host.clone()),
            ("CARGO_SHARD_ATTEMPT", ctx.attempt.to_string()),
            ("NO_COLOR", "1".into()),
            ("CARGO_TERM_COLOR", "never".into()),
            ("HOME", root.to_owned()),
            // Tests' temporary files; a minimal image may lack /tmp.
            ("TMPDIR", format!("{root}/tmp")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();

        ShardSpec {
            argv,
            env,
            workdir: src,
            files: vec![
                (
                    TOOL_CONFIG_DEST.to_owned(),
                    filter::tool_config(root, tests, ctx.test_timeout).into_bytes(),
                ),
                ("tmp/.keep".to_owned(), Vec::new()),
            ],
            collect: vec![filter::junit_path(root)],
        }
    }

    /// nextest's final status lines: `        FAIL [   0.141s] (16/35) alpha::integration name`.
    /// A `TRY n …` line is one attempt of a retried test, not its end.
    fn live_end(&self, line: &str) -> Option<LiveEnd> {
        let (status, rest) = line.trim_start().split_once(" [")?;
        // `TRY 2 PASS`: a retried test's pass ends it; its failed tries may not be its last.
        let status = status.trim();
        let status = match status.strip_prefix("TRY ") {
            Some(tried) if tried.ends_with(" PASS") => "PASS",
            Some(_) => return None,
            None => status,
        };
        let status = match status {
            "PASS" | "LEAK" => TestStatus::Passed,
            "FAIL" | "TIMEOUT" | "ABORT" | "LEAK-FAIL" | "SIGSEGV" | "SIGABRT" | "SIGKILL" | "SIGBUS"
            | "SIGILL" => TestStatus::Failed,
            "SKIP" => TestStatus::Skipped,
            _ => return None,
        };
        let (time, after) = rest.split_once("] ")?;
        let secs = time.trim().strip_suffix('s')?.parse::<f64>().ok()?;
        let after = after.trim_start();
        let name = match after.strip_prefix('(') {
            Some(counted) => counted.split_once(") ")?.1,
            None => after,
        };
        let name = name.trim();
        (!name.is_empty()).then(|| LiveEnd {
            name: name.to_string(),
            status,
            duration: Duration::try_from_secs_f64(secs).unwrap_or_default(),
        })
    }

    /// nextest prints a failure's output right after its status line: `  stdout ───` and
    /// `  stderr ───` headers, lines indented by four spaces, blank lines.
    fn live_output(&self, line: &str) -> bool {
        if line.trim().is_empty() {
            return true;
        }
        let header = line.strip_prefix("  ").and_then(|l| l.split_whitespace().next());
        if matches!(header, Some("stdout" | "stderr" | "output")) && !line.starts_with("   ") {
            return true;
        }
        line.starts_with("    ") && !is_status_line(line)
    }

    fn results(&self, tests: &[TestId], collected: &Collected) -> Vec<TestResult> {
        let Some(xml) = collected
            .files
            .iter()
            .find(|(path, _)| path.ends_with(&format!("/{}/junit.xml", filter::PROFILE)))
            .map(|(_, xml)| xml)
        else {
            return Vec::new();
        };
        // A broken file leaves every test without a result; the runner reports them as errors.
        let Ok(parsed) = junit::parse(xml) else {
            return Vec::new();
        };
        let mut by_id: HashMap<TestId, TestResult> = parsed.into_iter().map(|r| (r.id.clone(), r)).collect();
        tests.iter().filter_map(|id| by_id.remove(id)).collect()
    }
}

/// `        SLOW [> 60.000s] …`, `       START             (1/3) …`, `   TRY 1 FAIL [ …`,
/// `     Summary [ …`: any of nextest's right-aligned status lines.
fn is_status_line(line: &str) -> bool {
    static STATUS: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"^\s+[A-Z][A-Za-z-]{2,}(?: \d+(?:/\d+)?)?(?: [A-Z-]+)?\s+[\[(]")
            .expect("static regex")
    });
    STATUS.is_match(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ctx() -> ShardCtx {
        ShardCtx {
            root: "/shard/".into(),
            index: 2,
            count: 5,
            run_id: "run-1".into(),
            host: "e1".into(),
            attempt: 3,
            jobs: 4,
            test_timeout: Some(Duration::from_secs(9)),
            tools: Default::default(),
            places: Default::default(),
        }
    }

    #[test]
    fn prepare_keeps_the_test_list_out_of_argv() {
        let recipe = NextestRecipe {
            passthrough: vec!["--no-capture".into()],
        };
        let tests = [TestId::new("alpha", "tests::unique_name_xyz")];
        let spec = recipe.prepare(&tests, &ctx());
        assert_eq!(&spec.argv[..3], ["cargo-nextest", "nextest", "run"]);
        assert!(spec.argv.iter().all(|a| !a.contains("unique_name_xyz")));
        let joined = spec.argv.join(" ");
        assert!(
            joined.contains(
                "--binaries-metadata /shard/target/nextest/binaries-metadata.json \
                 --cargo-metadata /shard/target/nextest/cargo-metadata.json \
                 --target-dir-remap /shard/target"
            ),
            "{joined}"
        );
        assert!(joined.contains("--workspace-remap /shard/src"), "{joined}");
        assert!(
            joined.contains("--tool-config-file cargo-shard:/shard/shard-nextest.toml"),
            "{joined}"
        );
        assert!(
            joined.contains("--profile cargo-shard --test-threads 4"),
            "{joined}"
        );
        assert_eq!(spec.argv.last().map(String::as_str), Some("--no-capture"));
        assert_eq!(spec.workdir, "/shard/src");
        assert_eq!(spec.collect, ["/shard/store/cargo-shard/junit.xml"]);

        let env: HashMap<_, _> = spec.env.iter().cloned().collect();
        assert_eq!(env["CARGO_SHARD_INDEX"], "2");
        assert_eq!(env["CARGO_SHARD_COUNT"], "5");
        assert_eq!(env["CARGO_SHARD_RUN"], "run-1");
        assert_eq!(env["CARGO_SHARD_HOST"], "e1");
        assert_eq!(env["CARGO_SHARD_ATTEMPT"], "3");
        assert_eq!(env["TMPDIR"], "/shard/tmp");

        let (name, config) = &spec.files[0];
        assert_eq!(name, TOOL_CONFIG_DEST);
        let config = String::from_utf8(config.clone()).unwrap();
        assert!(config.contains("test(=tests::unique_name_xyz)"), "{config}");
        assert!(spec.files.iter().any(|(p, _)| p == "tmp/.keep"));
    }

    #[test]
    fn test_ends_are_read_from_status_lines() {
        let r = NextestRecipe { passthrough: vec![] };
        let live = |l: &str| r.live_end(l).map(|e| (e.name, e.status, e.duration.as_millis()));
        let end = |name: &str, status, ms| Some((name.to_string(), status, ms));
        assert_eq!(
            live("        FAIL [   0.141s] (16/35) alpha::integration fails_with_messy_output"),
            end(
                "alpha::integration fails_with_messy_output",
                TestStatus::Failed,
                141
            )
        );
        assert_eq!(
            live("     TIMEOUT [   2.003s] beta tests::slow"),
            end("beta tests::slow", TestStatus::Failed, 2003)
        );
        assert_eq!(
            live("        PASS [   0.010s] (1/35) alpha tests::quick"),
            end("alpha tests::quick", TestStatus::Passed, 10)
        );
        assert_eq!(
            live("   TRY 2 PASS [   1.500s] (3/35) beta tests::flaky"),
            end("beta tests::flaky", TestStatus::Passed, 1500)
        );
        assert_eq!(live("   TRY 1 FAIL [   0.100s] (3/35) beta tests::flaky"), None);
        assert_eq!(live("        SLOW [> 60.000s] (───────) beta tests::slow"), None);
        assert_eq!(live("       START             (1/35) alpha tests::quick"), None);
        assert_eq!(live("    test fails_with_messy_output ... FAILED"), None);
        assert_eq!(live("FAIL: file.go:12: Suite.TestA"), None);
    }

    #[test]
    fn a_failures_output_is_the_indented_block_after_it() {
        let r = NextestRecipe { passthrough: vec![] };
        for line in [
            "  stdout ───",
            "",
            "    running 1 test",
            "    test assertion_fails ... FAILED",
            "  stderr ───",
            "    thread 'assertion_fails' (14) panicked at beta/tests/failing.rs:10:5:",
            "      left: 3",
        ] {
            assert!(r.live_output(line), "{line:?}");
        }
        for line in [
            "        PASS [   0.004s] (2/3) beta::failing counts_words",
            "        SLOW [> 60.000s] (───────) beta tests::slow",
            "       START             (1/3) alpha tests::quick",
            "   TRY 1 FAIL [   0.100s] (3/35) beta tests::flaky",
            "  RETRY 2/3 [         ] (3/35) beta tests::flaky",
            "────────────",
            "     Summary [   0.010s] 3 tests run: 2 passed, 1 failed, 0 skipped",
        ] {
            assert!(!r.live_output(line), "{line:?}");
        }
    }

    #[test]
    fn results_are_those_of_the_asked_tests_only() {
        let xml = br#"<testsuites><testsuite name="a">
            <testcase name="one" classname="a" time="0.5"/>
            <testcase name="extra" classname="a" time="0.1"/>
        </testsuite></testsuites>"#;
        let collected = Collected {
            exit_code: Some(0),
            output: Vec::new(),
            files: [("/shard/store/cargo-shard/junit.xml".to_owned(), xml.to_vec())].into(),
            ..Default::default()
        };
        let recipe = NextestRecipe { passthrough: vec![] };
        let asked = [TestId::new("a", "one"), TestId::new("a", "missing")];
        let results = recipe.results(&asked, &collected);
        assert_eq!(results.len(), 1);
        assert_eq!(results[0].id, asked[0]);
        assert!(recipe.results(&asked, &Collected::default()).is_empty());
    }
}
