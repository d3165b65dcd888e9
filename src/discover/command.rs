//! `cargo shard exec`: shard a user's own command (moby's `make test-integration`,
//! kubetest) by keys. The keys come from a file or a listing command; each shard runs the
//! command once with its keys joined into one regex in an environment variable (or, with
//! `--key-env`, once per key), and results are read from the JUnit files the command wrote
//! (read with the shared `crate::junit` reader), else from gocheck or `go test -v` output,
//! else from the exit code.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::discover::files::source_files;
use crate::discover::gocheck::parse_gocheck;
use crate::discover::gotest::driver::{DriverJob, anchored_alternation, driver_argv};
use crate::discover::gotest::outcomes_to_results;
use crate::discover::gotest::parse::{ParsedRun, ParsedTest, parse_go_v};
use crate::discover::{ShardCtx, ShardRecipe, Suite, TestCase};
use crate::junit::CaseStatus;
use crate::shard::Upload;
use crate::shard::{Collected, ShardSpec};
use crate::test_result::TestStatus;
use crate::test_result::{TestId, TestResult};

/// The placeholder in `--filter-format` replaced by the shard's anchored key regex.
pub const REGEX_PLACEHOLDER: &str = "{regex}";

/// Where the keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// `--filters-file FILE`: one key per line.
    File(PathBuf),
    /// `--list COMMAND`: run locally through `sh -c` in the source directory; one key per line.
    List(String),
}

/// How a shard's command learns its keys.
#[derive(Debug, Clone)]
pub enum KeyPassing {
    /// `--filter-env NAME --filter-format FMT`: all keys at once, `{regex}` in FMT becoming
    /// `^(k1|k2)$` (keys escaped for Go's RE2), e.g. `TESTFLAGS='-check.f ^(A\.B|C\.D)$'`.
    FilterEnv {
        /// The environment variable that receives the filter.
        name: String,
        /// The filter's template, with `{regex}` where the anchored key regex goes.
        format: String,
    },
    /// `--key-env NAME`: one key per run, as is. Plan one key per shard (see
    /// [`ExecOptions::one_key_per_shard`]); a shard given several runs them in turn.
    KeyEnv {
        /// The environment variable that receives the key.
        name: String,
    },
}

/// What `cargo shard exec` was asked to do. The CLI fills it from `ExecArgs`.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// Where the keys come from.
    pub keys: KeySource,
    /// `--list-filter`: keep only keys matching this regex.
    pub list_filter: Option<String>,
    /// How each shard's command receives its keys.
    pub passing: KeyPassing,
    /// `--results`: JUnit globs relative to the working directory (the uploaded tree).
    pub results: Vec<String>,
    /// The source tree uploaded as every shard's `src/`, its working directory.
    pub dir: PathBuf,
    /// The command after `--`, an exec array.
    pub command: Vec<String>,
    /// Paths under `dir` not to upload (the run's own output directory).
    pub exclude: Vec<PathBuf>,
}

impl ExecOptions {
    /// With `--key-env` each key needs its own container: the planner should make one
    /// shard per key.
    pub fn one_key_per_shard(&self) -> bool {
        matches!(self.passing, KeyPassing::KeyEnv { .. })
    }
}

/// Why an exec suite cannot be listed or planned; each names the flag or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The `--filters-file` could not be read.
    #[error("{path}: cannot read the filters file: {source}")]
    FiltersFile {
        /// The file as given.
        path: String,
        /// Why it failed, as the OS said it.
        source: std::io::Error,
    },
    /// The `--list` command could not run or exited non-zero.
    #[error("listing command `{command}` failed ({status}): {stderr}")]
    List {
        /// The command as given.
        command: String,
        /// Its exit status, or why it did not start.
        status: String,
        /// The tail of what it wrote to stderr.
        stderr: String,
    },
    /// `--list-filter` is not a regex the `regex` crate accepts.
    #[error("--list-filter {regex:?} is not a valid regex: {reason}")]
    ListFilter {
        /// The pattern as given.
        regex: String,
        /// The regex crate's complaint.
        reason: String,
    },
    /// `--filter-format` lacks `{regex}`, so every shard would run every key.
    #[error("--filter-format {0:?} has no {{regex}} placeholder, so no shard would learn its keys")]
    FilterFormat(String),
    /// Nothing follows `--`.
    #[error("no command to run: give it after `--`, e.g. `cargo shard exec … -- make test-integration`")]
    EmptyCommand,
    /// A `--results` pattern is not a valid glob.
    #[error("--results {glob:?} is not a valid glob: {reason}")]
    ResultsGlob {
        /// The pattern as given.
        glob: String,
        /// The glob crate's complaint.
        reason: String,
    },
    /// The source directory could not be read while listing what to upload.
    #[error("{path}: {source}")]
    Io {
        /// The path that failed.
        path: String,
        /// Why it failed, as the OS said it.
        source: std::io::Error,
    },
}

/// Reads the keys and returns a [`Suite`] of `TestId { group: "", name: key }`.
pub fn discover(opts: &ExecOptions) -> Result<Suite, ExecError> {
    if opts.command.is_empty() {
        return Err(ExecError::EmptyCommand);
    }
    if let KeyPassing::FilterEnv { format, .. } = &opts.passing
        && !format.contains(REGEX_PLACEHOLDER)
    {
        return Err(ExecError::FilterFormat(format.clone()));
    }
    let mut results = Vec::new();
    for g in &opts.results {
        let pattern = glob::Pattern::new(g.trim_start_matches("./")).map_err(|e| ExecError::ResultsGlob {
            glob: g.clone(),
            reason: e.to_string(),
        })?;
        results.push(pattern);
    }
    let keys = read_keys(opts)?;
    let dir = opts.dir.canonicalize().map_err(|source| io(&opts.dir, source))?;
    let files = source_files(&dir, &opts.exclude).map_err(|source| io(&dir, source))?;
    let tests = keys
        .into_iter()
        .map(|k| TestCase {
            id: TestId::new("", k),
            ignored: false,
        })
        .collect();
    let recipe = ExecRecipe {
        command: opts.command.clone(),
        passing: opts.passing.clone(),
        results,
    };
    Ok(Suite {
        notices: Vec::new(),
        earlier_report: None,
        tools: Vec::new(),
        tests,
        uploads: vec![Upload::Tree {
            src: dir,
            files,
            dest: "src".into(),
        }],
        recipe: Arc::new(recipe),
    })
}

fn io(path: &Path, source: std::io::Error) -> ExecError {
    ExecError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The keys: one per line, trimmed, blank lines dropped, duplicates dropped (first kept),
/// then narrowed by `--list-filter`.
pub fn read_keys(opts: &ExecOptions) -> Result<Vec<String>, ExecError> {
    let text = match &opts.keys {
        KeySource::File(path) => std::fs::read_to_string(path).map_err(|source| ExecError::FiltersFile {
            path: path.display().to_string(),
            source,
        })?,
        KeySource::List(command) => {
            let out =
                crate::interrupt::output(Command::new("sh").arg("-c").arg(command).current_dir(&opts.dir))
                    .map_err(|e| ExecError::List {
                        command: command.clone(),
                        status: "did not start".into(),
                        stderr: e.to_string(),
                    })?;
            if !out.status.success() {
                let stderr = String::from_utf8_lossy(&out.stderr);
                let last = stderr
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("no output");
                return Err(ExecError::List {
                    command: command.clone(),
                    status: out.status.to_string(),
                    stderr: last.trim().to_string(),
                });
            }
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    let filter = match &opts.list_filter {
        Some(re) => Some(regex::Regex::new(re).map_err(|e| ExecError::ListFilter {
            regex: re.clone(),
            reason: one_line(&e.to_string()),
        })?),
        None => None,
    };
    let mut seen = std::collections::HashSet::new();
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .filter(|k| filter.as_ref().is_none_or(|f| f.is_match(k)))
        .filter(|k| seen.insert(k.to_string()))
        .map(str::to_string)
        .collect())
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs a user's command for a shard's keys.
#[derive(Debug)]
pub struct ExecRecipe {
    command: Vec<String>,
    passing: KeyPassing,
    results: Vec<glob::Pattern>,
}

impl ExecRecipe {
    /// Absolute paths to bring back for the `--results` globs: the deepest directory
    /// without glob characters (or the file itself when the glob is a plain path).
    fn collect_paths(&self, src: &str) -> Vec<String> {
        let mut paths: Vec<String> = self
            .results
            .iter()
            .map(|p| {
                let parts: Vec<&str> = p.as_str().split('/').collect();
                let literal = parts
                    .iter()
                    .take_while(|c| !c.contains(['*', '?', '[', '{']))
                    .count();
                let keep = if literal == parts.len() {
                    literal
                } else {
                    literal.min(parts.len() - 1)
                };
                let rel = parts[..keep].join("/");
                if rel.is_empty() {
                    src.to_string()
                } else {
                    format!("{src}/{rel}")
                }
            })
            .collect();
        paths.sort();
        paths.dedup();
        paths
    }

    /// Outcomes from the collected JUnit files matching `--results`.
    fn junit_outcomes(&self, collected: &Collected) -> Vec<ParsedTest> {
        let mut out = Vec::new();
        for (path, bytes) in &collected.files {
            // Collected paths are absolute; the globs are relative to `<root>/src`.
            let matches = path
                .match_indices("/src/")
                .any(|(i, _)| self.results.iter().any(|g| g.matches(&path[i + 5..])));
            if !matches {
                continue;
            }
            let Ok(report) = crate::junit::read_bytes(bytes, path) else {
                continue;
            };
            for c in report.suites.iter().flat_map(|s| &s.cases) {
                let (status, message, text) = match &c.status {
                    CaseStatus::Passed => (TestStatus::Passed, None, ""),
                    CaseStatus::Failure { message, text, .. } => {
                        (TestStatus::Failed, message.clone(), text.as_str())
                    }
                    CaseStatus::Error { message, text, .. } => {
                        (TestStatus::Error, message.clone(), text.as_str())
                    }
                    CaseStatus::Skipped { message } => (TestStatus::Skipped, message.clone(), ""),
                };
                let test = ParsedTest {
                    name: c.name.clone(),
                    status: Some(status),
                    started: true,
                    duration: c
                        .time
                        .and_then(|t| Duration::try_from_secs_f64(t).ok())
                        .unwrap_or_default(),
                    message,
                    output: format!(
                        "{text}{}{}",
                        c.stdout.as_deref().unwrap_or_default(),
                        c.stderr.as_deref().unwrap_or_default()
                    ),
                    subtests: Vec::new(),
                };
                if !c.classname.is_empty() {
                    out.push(ParsedTest {
                        name: format!("{}.{}", c.classname, c.name),
                        ..test.clone()
                    });
                }
                out.push(test);
            }
        }
        out
    }

    /// Per-key results from one run of the command (`output`, `exit_code`) plus JUnit.
    fn results_for(
        &self,
        keys: &[String],
        junit: &[ParsedTest],
        output: &[u8],
        exit_code: Option<i64>,
    ) -> Vec<TestResult> {
        let text = String::from_utf8_lossy(output);
        let sources = [
            junit.to_vec(),
            parse_gocheck(&text).tests,
            parse_go_v(&text).tests,
        ];
        let mut merged: HashMap<&str, &ParsedTest> = HashMap::new();
        for source in &sources {
            for t in source {
                let better = merged
                    .get(t.name.as_str())
                    .is_none_or(|old| old.status.is_none() && t.status.is_some());
                if better && keys.contains(&t.name) {
                    merged.insert(&t.name, t);
                }
            }
        }
        if merged.is_empty() {
            return exit_code_results(keys, exit_code);
        }
        let run = ParsedRun {
            tests: merged.into_values().cloned().collect(),
            panic: None,
            last_started: None,
        };
        outcomes_to_results("", keys, &run, exit_code, "command")
    }
}

/// No per-test result anywhere: every key gets the command's exit status.
fn exit_code_results(keys: &[String], exit_code: Option<i64>) -> Vec<TestResult> {
    let (status, message) = match exit_code {
        Some(0) => (TestStatus::Passed, None),
        Some(code) => (
            TestStatus::Failed,
            Some(format!("no per-test results; shard exit code {code} applied")),
        ),
        None => (
            TestStatus::Error,
            Some("no per-test results and the command did not exit".to_string()),
        ),
    };
    keys.iter()
        .map(|k| TestResult {
            id: TestId::new("", k),
            status,
            duration: Duration::ZERO,
            message: message.clone(),
            detail: String::new(),
            stdout: String::new(),
            stderr: String::new(),
            subtests: Vec::new(),
        })
        .collect()
}

impl ShardRecipe for ExecRecipe {
    fn runner(&self) -> &'static str {
        "exec"
    }

    fn live(&self, _stream: crate::shard::Stream, line: &str) -> Option<super::Live> {
        super::gocheck::live(line)
    }

    /// A user's command may write anywhere in its tree (its JUnit output, build files).
    fn writes_source(&self) -> bool {
        true
    }

    fn prepare(&self, tests: &[TestId], ctx: &ShardCtx) -> ShardSpec {
        let root = ctx.root.trim_end_matches('/');
        let src = format!("{root}/src");
        let keys: Vec<&str> = tests.iter().map(|t| t.name.as_str()).collect();
        let mut collect = self.collect_paths(&src);
        let (argv, env) = match &self.passing {
            KeyPassing::FilterEnv { name, format } => {
                let value = format.replace(REGEX_PLACEHOLDER, &anchored_alternation(&keys));
                (self.command.clone(), vec![(name.clone(), value)])
            }
            KeyPassing::KeyEnv { name } if keys.len() == 1 => {
                (self.command.clone(), vec![(name.clone(), keys[0].to_string())])
            }
            KeyPassing::KeyEnv { name } => {
                // Several keys in one shard: the driver runs the command once per key, in
                // turn (they share the working directory), each with its own output file.
                let jobs: Vec<DriverJob> = keys
                    .iter()
                    .enumerate()
                    .map(|(i, key)| {
                        let mut argv = vec!["env".to_string(), format!("{name}={key}")];
                        argv.extend(self.command.iter().cloned());
                        DriverJob {
                            name: format!("k{i}"),
                            dir: src.clone(),
                            argv,
                        }
                    })
                    .collect();
                collect.push(format!("{root}/out"));
                (driver_argv(&format!("{root}/out"), 1, &jobs), Vec::new())
            }
        };
        ShardSpec {
            argv,
            env,
            workdir: src,
            files: Vec::new(),
            collect,
        }
    }

    fn results(&self, tests: &[TestId], collected: &Collected) -> Vec<TestResult> {
        let keys: Vec<String> = tests.iter().map(|t| t.name.clone()).collect();
        let junit = self.junit_outcomes(collected);
        match &self.passing {
            KeyPassing::KeyEnv { .. } if keys.len() > 1 => {
                let mut results = Vec::new();
                for (i, key) in keys.iter().enumerate() {
                    let file = |ext: &str| {
                        let suffix = format!("/out/k{i}.{ext}");
                        collected
                            .files
                            .iter()
                            .find(|(p, _)| p.ends_with(&suffix))
                            .map(|(_, v)| v)
                    };
                    let Some(output) = file("out") else { continue };
                    let code = file("code").and_then(|c| String::from_utf8_lossy(c).trim().parse().ok());
                    results.extend(self.results_for(std::slice::from_ref(key), &junit, output, code));
                }
                results
            }
            _ => self.results_for(&keys, &junit, &collected.output, collected.exit_code),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(passing: KeyPassing, results: &[&str]) -> ExecRecipe {
        ExecRecipe {
            command: vec!["make".into(), "test-integration".into()],
            passing,
            results: results.iter().map(|g| glob::Pattern::new(g).unwrap()).collect(),
        }
    }

    fn ctx() -> ShardCtx {
        ShardCtx {
            root: "/cargo-shard".into(),
            index: 0,
            count: 1,
            run_id: "r".into(),
            host: "h".into(),
            attempt: 1,
            test_threads: 1,
            test_timeout: None,
            tools: Default::default(),
            places: Default::default(),
            in_container: true,
        }
    }

    fn ids(keys: &[&str]) -> Vec<TestId> {
        keys.iter().map(|k| TestId::new("", *k)).collect()
    }

    #[test]
    fn filter_env_carries_the_escaped_anchored_regex() {
        let r = recipe(
            KeyPassing::FilterEnv {
                name: "TESTFLAGS".into(),
                format: "-check.f {regex}".into(),
            },
            &["bundles/junit-*.xml", "report.xml"],
        );
        let spec = r.prepare(&ids(&["DockerSuite.TestA", "S.Test$x"]), &ctx());
        assert_eq!(spec.argv, ["make", "test-integration"]);
        assert_eq!(spec.workdir, "/cargo-shard/src");
        assert_eq!(
            spec.env,
            [(
                "TESTFLAGS".to_string(),
                r"-check.f ^(DockerSuite\.TestA|S\.Test\$x)$".to_string()
            )]
        );
        assert_eq!(
            spec.collect,
            ["/cargo-shard/src/bundles", "/cargo-shard/src/report.xml"]
        );
    }

    #[test]
    fn key_env_with_one_key_runs_the_command_directly() {
        let r = recipe(KeyPassing::KeyEnv { name: "KEY".into() }, &[]);
        let spec = r.prepare(&ids(&["a b"]), &ctx());
        assert_eq!(spec.argv, ["make", "test-integration"]);
        assert_eq!(spec.env, [("KEY".to_string(), "a b".to_string())]);
        let spec = r.prepare(&ids(&["k1", "k2"]), &ctx());
        assert_eq!(spec.argv[0], crate::discover::gotest::driver::SHELL);
        assert!(spec.argv.contains(&"KEY=k2".to_string()));
        assert!(spec.collect.contains(&"/cargo-shard/out".to_string()));
    }

    #[test]
    fn results_prefer_junit_then_gocheck_then_exit_code() {
        let r = recipe(
            KeyPassing::FilterEnv {
                name: "F".into(),
                format: "{regex}".into(),
            },
            &["bundles/*.xml"],
        );
        let mut collected = Collected {
            exit_code: Some(1),
            ..Default::default()
        };
        collected.files.insert(
            "/cargo-shard/src/bundles/a.xml".into(),
            br#"<testsuite><testcase classname="S" name="TestJ" time="2"><failure message="bad"/></testcase></testsuite>"#
                .to_vec(),
        );
        collected.output = b"PASS: x_test.go:3: S.TestG\t0.500s\n".to_vec();
        let res = r.results(&ids(&["S.TestJ", "S.TestG", "S.TestMissing"]), &collected);
        assert_eq!(res[0].status, TestStatus::Failed);
        assert_eq!(res[0].message.as_deref(), Some("bad"));
        assert_eq!(res[0].duration, Duration::from_secs(2));
        assert_eq!(res[1].status, TestStatus::Passed);
        assert_eq!(res[1].duration, Duration::from_millis(500));
        assert_eq!(res[2].status, TestStatus::Error);
        assert!(
            res[2]
                .message
                .as_deref()
                .unwrap()
                .contains("command exited with code 1")
        );
    }

    #[test]
    fn without_any_per_test_result_the_exit_code_applies() {
        let r = recipe(
            KeyPassing::FilterEnv {
                name: "F".into(),
                format: "{regex}".into(),
            },
            &[],
        );
        let collected = Collected {
            exit_code: Some(2),
            output: b"make: *** Error 2\n".to_vec(),
            ..Default::default()
        };
        let res = r.results(&ids(&["a", "b"]), &collected);
        assert!(res.iter().all(|t| t.status == TestStatus::Failed));
        assert_eq!(
            res[0].message.as_deref(),
            Some("no per-test results; shard exit code 2 applied")
        );
        let ok = Collected {
            exit_code: Some(0),
            ..Default::default()
        };
        assert!(
            r.results(&ids(&["a"]), &ok)
                .iter()
                .all(|t| t.status == TestStatus::Passed)
        );
    }

    #[test]
    fn keys_are_trimmed_deduplicated_and_filtered() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys");
        std::fs::write(&file, "  A.TestOne \n\nB.TestTwo\nA.TestOne\nC.Other\n").unwrap();
        let mut opts = ExecOptions {
            keys: KeySource::File(file),
            list_filter: Some(r"^[AB]\.".into()),
            passing: KeyPassing::KeyEnv { name: "K".into() },
            results: vec![],
            dir: dir.path().to_path_buf(),
            command: vec!["true".into()],
            exclude: vec![],
        };
        assert_eq!(read_keys(&opts).unwrap(), ["A.TestOne", "B.TestTwo"]);
        opts.keys = KeySource::List("printf 'x\\ny\\n'; echo z".into());
        opts.list_filter = None;
        assert_eq!(read_keys(&opts).unwrap(), ["x", "y", "z"]);
        opts.keys = KeySource::List("echo oops >&2; exit 3".into());
        let err = read_keys(&opts).unwrap_err().to_string();
        assert!(err.contains("exit status: 3") && err.contains("oops"), "{err}");
        opts.keys = KeySource::File(dir.path().join("missing"));
        assert!(
            read_keys(&opts)
                .unwrap_err()
                .to_string()
                .contains("cannot read the filters file")
        );
        opts.keys = KeySource::List("echo a".into());
        opts.list_filter = Some("(".into());
        assert!(
            read_keys(&opts)
                .unwrap_err()
                .to_string()
                .starts_with("--list-filter \"(\" is not a valid regex")
        );
    }
}
