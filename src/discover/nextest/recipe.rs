//! The shard recipe: run an exact test list from the archive's binaries, extracted once per
//! host (nextest's reuse-build options), with the source remapped, then read nextest's JUnit
//! back into per-test results.
//!
//! Live, nextest writes its libtest-json-plus events on stdout and its human output on
//! stderr. A test's captured output reaches stdout only inside a JSON string (newlines
//! escaped), so a stdout line that parses as an event is nextest's own, and its results may
//! stand in for the report; with `--no-capture` tests write to stdout themselves and nothing
//! live is trusted.

use std::collections::HashMap;
use std::time::Duration;

use super::{SOURCE_DEST, TOOL_CONFIG_DEST, filter, junit};
use crate::discover::{Live, LiveEnd, LiveEvent, ShardCtx, ShardRecipe};
use crate::shard::{Collected, ShardSpec, Stream};
use crate::test_result::{TestId, TestResult, TestStatus};

/// The payload part holding the archive's `target/` directory, extracted.
pub const TARGET_PART: &str = "target";

/// How a shard runs its tests from the archive and how its JUnit becomes results.
#[derive(Debug, Clone, Default)]
pub struct NextestRecipe {
    /// Extra arguments for `cargo nextest run` in every shard, after cargo-shard's own.
    pub passthrough: Vec<String>,
    /// The user's nextest profile the shards run under (`--profile`).
    pub profile: Option<UserProfile>,
    /// The workspace's nextest config orders tests itself (`priority`): shards keep its
    /// order instead of starting the planner's longest first.
    pub own_priorities: bool,
}

/// A profile of the workspace's own `.config/nextest.toml`, with that file parsed.
#[derive(Debug, Clone)]
pub struct UserProfile {
    /// The profile's name in `.config/nextest.toml`.
    pub name: String,
    /// The whole config file, parsed, so the shard's copy carries the profile's settings.
    pub repo_config: toml::Table,
}

/// The shard's copy of the workspace's nextest config, relative to the shard root: beside
/// the source, which is mounted read-only, and handed to nextest with `--config-file`.
const REPO_CONFIG_DEST: &str = "repo-nextest.toml";

impl NextestRecipe {
    /// The profile shards run under: the user's, narrowed to the shard, or our own.
    fn profile_name(&self) -> &str {
        self.profile.as_ref().map_or(filter::PROFILE, |p| p.name.as_str())
    }

    /// The tool-config file and, under a user's profile, the workspace config extended by ours.
    fn config_files(&self, root: &str, tests: &[TestId], ctx: &ShardCtx) -> Vec<(String, Vec<u8>)> {
        let mut files = vec![("tmp/.keep".to_owned(), Vec::new())];
        match &self.profile {
            None => files.push((
                TOOL_CONFIG_DEST.to_owned(),
                filter::tool_config(root, tests, ctx.test_timeout, !self.own_priorities).into_bytes(),
            )),
            Some(p) => {
                let (tool, repo) = filter::with_user_profile(
                    root,
                    tests,
                    ctx.test_timeout,
                    !self.own_priorities,
                    &p.name,
                    &p.repo_config,
                );
                files.push((TOOL_CONFIG_DEST.to_owned(), tool.into_bytes()));
                files.push((REPO_CONFIG_DEST.to_owned(), repo.into_bytes()));
            }
        }
        files
    }
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
            self.profile_name(),
            "--test-threads",
            &ctx.test_threads.max(1).to_string(),
            // The exact filter decides; ignored tests in it were selected on purpose.
            "--run-ignored",
            "all",
            "--no-tests",
            "warn",
            "--color",
            "never",
            // Per-test events on stdout, out of the tests' reach; human output moves to stderr.
            "--message-format",
            "libtest-json-plus",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // `--max-fail` (the run's fail-fast) stops the shard too; nextest refuses it beside
        // `--no-fail-fast`.
        if !self.passthrough.iter().any(|a| a == "--max-fail") {
            argv.push("--no-fail-fast".into());
        }
        if self.profile.is_some() {
            argv.extend(["--config-file".into(), format!("{root}/{REPO_CONFIG_DEST}")]);
        }
        argv.extend(self.passthrough.iter().cloned());

        let mut env: Vec<(String, String)> = [
            ("CARGO_SHARD_INDEX", ctx.index.to_string()),
            ("CARGO_SHARD_COUNT", ctx.count.to_string()),
            ("CARGO_SHARD_RUN", ctx.run_id.clone()),
            ("CARGO_SHARD_HOST", ctx.host.clone()),
            ("CARGO_SHARD_ATTEMPT", ctx.attempt.to_string()),
            ("NO_COLOR", "1".into()),
            ("CARGO_TERM_COLOR", "never".into()),
            ("NEXTEST_EXPERIMENTAL_LIBTEST_JSON", "1".into()),
            ("HOME", root.to_owned()),
            // Tests' temporary files; a minimal image may lack /tmp.
            ("TMPDIR", format!("{root}/tmp")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        // nextest starts every test binary (to list it, then per test) through a copy of
        // itself, which closes a race with Ctrl-Z (SIGTSTP) at a terminal. A container has no
        // terminal; without the copy a batch lists its binaries in about half the time
        // (BENCHMARKS.md, "Test binaries started directly in containers").
        if ctx.in_container {
            env.push(("NEXTEST_DOUBLE_SPAWN".to_owned(), "0".to_owned()));
        }

        ShardSpec {
            argv,
            env,
            workdir: src,
            files: self.config_files(root, tests, ctx),
            collect: vec![filter::junit_path(root, self.profile_name())],
        }
    }

    /// nextest's libtest-json-plus events on stdout: `started`, then `ok`, `failed` (with the
    /// test's output) or `ignored`. Human lines on stderr are for the log only.
    fn live(&self, stream: Stream, line: &str) -> Option<Live> {
        if stream != Stream::Out {
            return None;
        }
        let event: LibtestEvent = serde_json::from_str(line).ok()?;
        if event.kind != "test" {
            return None;
        }
        let name = display_name(event.name.as_deref()?)?;
        let end = |status| {
            LiveEvent::Finished(LiveEnd {
                status,
                duration: Duration::try_from_secs_f64(event.exec_time.unwrap_or(0.0)).unwrap_or_default(),
                message: event.reason.clone(),
                output: event.stdout.clone().unwrap_or_default(),
            })
        };
        let event = match event.event.as_str() {
            "started" => LiveEvent::Started,
            "ok" => end(TestStatus::Passed),
            "failed" => end(TestStatus::Failed),
            "ignored" => end(TestStatus::Skipped),
            _ => return None,
        };
        Some(Live {
            name,
            event,
            trusted: !self.no_capture(),
        })
    }

    /// nextest exited 0 and every test passed on its libtest-json channel: under cargo-shard's
    /// own profile the JUnit keeps no output of passing tests, so it would only repeat that.
    /// Not with `--no-capture` (the tests print into that channel), nor under a user's
    /// profile, whose JUnit may keep more.
    fn live_settles(
        &self,
        exit_code: Option<i64>,
        tests: &[TestId],
        ends: &std::collections::BTreeMap<TestId, TestResult>,
    ) -> bool {
        exit_code == Some(0)
            && !self.no_capture()
            && self.profile.is_none()
            && !tests.is_empty()
            && tests
                .iter()
                .all(|t| ends.get(t).is_some_and(|r| r.status == TestStatus::Passed))
    }

    fn results(&self, tests: &[TestId], collected: &Collected) -> Vec<TestResult> {
        let Some(xml) = collected
            .files
            .iter()
            .find(|(path, _)| path.ends_with(&format!("/{}/junit.xml", self.profile_name())))
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

impl NextestRecipe {
    /// Tests write straight into nextest's stdout (`--no-capture`, or its alias).
    fn no_capture(&self) -> bool {
        self.passthrough
            .iter()
            .any(|a| a == "--no-capture" || a == "--nocapture")
    }
}

/// One line of nextest's libtest-json-plus output.
#[derive(serde::Deserialize)]
struct LibtestEvent {
    #[serde(rename = "type")]
    kind: String,
    event: String,
    name: Option<String>,
    exec_time: Option<f64>,
    stdout: Option<String>,
    reason: Option<String>,
}

/// `crate::binary$test` (`#N` after a retried test, `@stress-N` after the binary) → the
/// display form of its `TestId`: `crate::binary test`, or `crate test` for the library's unit
/// tests (whose binary is the crate's name with `_` for `-`). A binary target's id
/// (`crate::bin/name`) is not rebuilt: the caller falls back to the bare test name.
fn display_name(libtest: &str) -> Option<String> {
    let (binary, test) = libtest.split_once('$')?;
    let test = match test.rsplit_once('#') {
        Some((t, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => t,
        _ => test,
    };
    let binary = binary.split_once("@stress-").map_or(binary, |(b, _)| b);
    let group = match binary.split_once("::") {
        Some((krate, bin)) if bin == krate.replace('-', "_") => krate,
        _ => binary,
    };
    (!test.is_empty()).then(|| format!("{group} {test}"))
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
            test_threads: 4,
            test_timeout: Some(Duration::from_secs(9)),
            tools: Default::default(),
            places: Default::default(),
            in_container: true,
        }
    }

    #[test]
    fn only_a_shard_in_a_container_starts_its_tests_without_nextests_extra_copy() {
        let tests = [TestId::new("alpha", "t")];
        let double_spawn = |in_container| {
            let spec = NextestRecipe::default().prepare(
                &tests,
                &ShardCtx {
                    in_container,
                    ..ctx()
                },
            );
            spec.env
                .iter()
                .find(|(k, _)| k == "NEXTEST_DOUBLE_SPAWN")
                .map(|(_, v)| v.clone())
        };
        assert_eq!(double_spawn(true).as_deref(), Some("0"));
        // Local processes share the user's terminal, where Ctrl-Z needs nextest's default.
        assert_eq!(double_spawn(false), None);
    }

    #[test]
    fn prepare_keeps_the_test_list_out_of_argv() {
        let recipe = NextestRecipe {
            passthrough: vec!["--no-capture".into()],
            ..Default::default()
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

        assert!(joined.contains("--no-fail-fast"), "{joined}");
        let (name, config) = spec.files.iter().find(|(p, _)| p == TOOL_CONFIG_DEST).unwrap();
        assert_eq!(name, TOOL_CONFIG_DEST);
        let config = String::from_utf8(config.clone()).unwrap();
        assert!(config.contains("test(=tests::unique_name_xyz)"), "{config}");
        assert!(spec.files.iter().any(|(p, _)| p == "tmp/.keep"));
    }

    #[test]
    fn max_fail_and_a_user_profile_reach_the_shard() {
        let recipe = NextestRecipe {
            passthrough: vec!["--max-fail".into(), "2".into()],
            profile: Some(UserProfile {
                name: "ci".into(),
                repo_config: "[profile.ci]\nretries = 1\n".parse().unwrap(),
            }),
            ..Default::default()
        };
        let spec = recipe.prepare(&[TestId::new("a", "t")], &ctx());
        assert!(
            !spec.argv.iter().any(|a| a == "--no-fail-fast"),
            "{:?}",
            spec.argv
        );
        assert!(spec.argv.join(" ").ends_with("--max-fail 2"));
        let (_, repo) = spec
            .files
            .iter()
            .find(|(p, _)| p == REPO_CONFIG_DEST)
            .expect("the workspace config is extended");
        let repo: toml::Table = String::from_utf8(repo.clone()).unwrap().parse().unwrap();
        assert_eq!(repo["profile"]["ci"]["retries"].as_integer(), Some(1));
        assert!(
            repo["profile"]["ci"]["default-filter"]
                .as_str()
                .unwrap()
                .contains("test(=t)")
        );
        assert!(spec.argv.join(" ").contains("--profile ci "), "{:?}", spec.argv);
        assert_eq!(spec.collect, ["/shard/store/ci/junit.xml"]);
    }

    fn ended(live: Option<Live>) -> Option<(String, TestStatus, u128, String, bool)> {
        let live = live?;
        match live.event {
            LiveEvent::Finished(e) => Some((
                live.name,
                e.status,
                e.duration.as_millis(),
                e.output,
                live.trusted,
            )),
            LiveEvent::Started => None,
        }
    }

    #[test]
    fn test_events_are_read_from_libtest_json_on_stdout_only() {
        let r = NextestRecipe::default();
        let out = |l: &str| ended(r.live(Stream::Out, l));
        assert_eq!(
            out(
                r#"{"type":"test","event":"failed","name":"beta::failing$assertion_fails","exec_time":0.376,"stdout":"left: 3\n"}"#
            ),
            Some((
                "beta::failing assertion_fails".into(),
                TestStatus::Failed,
                376,
                "left: 3\n".into(),
                true
            ))
        );
        assert_eq!(
            out(r#"{"type":"test","event":"ok","name":"alpha::alpha$tests::quick","exec_time":0.01}"#),
            Some((
                "alpha tests::quick".into(),
                TestStatus::Passed,
                10,
                String::new(),
                true
            ))
        );
        assert_eq!(
            out(r#"{"type":"test","event":"ok","name":"my-crate::my_crate$t#3","exec_time":1.5}"#),
            Some(("my-crate t".into(), TestStatus::Passed, 1500, String::new(), true))
        );
        assert_eq!(
            out(r#"{"type":"test","event":"ignored","name":"beta::failing$ignored_slow"}"#).map(|e| e.1),
            Some(TestStatus::Skipped)
        );
        let started = r.live(
            Stream::Out,
            r#"{"type":"test","event":"started","name":"beta::failing$x"}"#,
        );
        assert_eq!(
            started.map(|l| (l.name, l.event)),
            Some(("beta::failing x".into(), LiveEvent::Started))
        );
        assert_eq!(out(r#"{"type":"suite","event":"ok","passed":1}"#), None);
        // nextest's human lines, and anything on stderr, say nothing about results.
        assert_eq!(out("        PASS [   0.010s] (1/35) alpha tests::quick"), None);
        let json = r#"{"type":"test","event":"ok","name":"alpha::alpha$tests::quick","exec_time":0.01}"#;
        assert_eq!(r.live(Stream::Err, json), None);
    }

    #[test]
    fn no_capture_makes_every_live_line_display_only() {
        let r = NextestRecipe {
            passthrough: vec!["--no-capture".into()],
            ..Default::default()
        };
        let json = r#"{"type":"test","event":"ok","name":"nasty::out$zz_never_finishes","exec_time":0.01}"#;
        assert_eq!(ended(r.live(Stream::Out, json)).map(|e| e.4), Some(false));
    }

    #[test]
    fn prepare_asks_for_structured_events() {
        let spec = NextestRecipe::default().prepare(&[], &ctx());
        assert!(
            spec.argv.join(" ").contains("--message-format libtest-json-plus"),
            "{:?}",
            spec.argv
        );
        assert!(
            spec.env
                .contains(&("NEXTEST_EXPERIMENTAL_LIBTEST_JSON".into(), "1".into()))
        );
    }

    #[test]
    fn only_a_clean_exit_with_every_test_passed_live_settles_without_the_report() {
        let tests = [TestId::new("a", "one"), TestId::new("a", "two")];
        let end = |id: &TestId, status| TestResult {
            id: id.clone(),
            status,
            duration: std::time::Duration::from_millis(5),
            message: None,
            detail: String::new(),
            stdout: String::new(),
            stderr: String::new(),
            subtests: Vec::new(),
        };
        let passed: std::collections::BTreeMap<_, _> = tests
            .iter()
            .map(|t| (t.clone(), end(t, TestStatus::Passed)))
            .collect();
        let ours = NextestRecipe::default();
        assert!(ours.live_settles(Some(0), &tests, &passed));
        // nextest failed (or never said how it ended), or said nothing of one test.
        assert!(!ours.live_settles(Some(100), &tests, &passed));
        assert!(!ours.live_settles(None, &tests, &passed));
        let mut one_missing = passed.clone();
        one_missing.remove(&tests[1]);
        assert!(!ours.live_settles(Some(0), &tests, &one_missing));
        let mut one_failed = passed.clone();
        one_failed.insert(tests[1].clone(), end(&tests[1], TestStatus::Failed));
        assert!(!ours.live_settles(Some(0), &tests, &one_failed));
        // Tests print into the channel, or a user's profile may keep more in its report.
        let no_capture = NextestRecipe {
            passthrough: vec!["--no-capture".into()],
            ..Default::default()
        };
        assert!(!no_capture.live_settles(Some(0), &tests, &passed));
        let theirs = NextestRecipe {
            profile: Some(UserProfile {
                name: "ci".into(),
                repo_config: toml::Table::new(),
            }),
            ..Default::default()
        };
        assert!(!theirs.live_settles(Some(0), &tests, &passed));
        assert!(!ours.live_settles(Some(0), &[], &passed));
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
        let recipe = NextestRecipe::default();
        let asked = [TestId::new("a", "one"), TestId::new("a", "missing")];
        let results = recipe.results(&asked, &collected);
        assert_eq!(results.len(), 1);
        assert_eq!(results[0].id, asked[0]);
        assert!(recipe.results(&asked, &Collected::default()).is_empty());
    }
}
