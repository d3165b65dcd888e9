//! CI-native output: GitHub Actions (`GITHUB_ACTIONS=true`) gets each shard's log folded in a
//! `::group::` with workflow commands neutralised, one `::error file=…,line=…` annotation per
//! failure and a Markdown job summary in `$GITHUB_STEP_SUMMARY`; GitLab (`GITLAB_CI`) gets a
//! collapsible section per shard. Everything here returns text; the callers print it.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use regex::Regex;

use super::stats::{self, SLOWEST, strip_control};
use crate::run::RunReport;
use crate::test_result::{TestResult, TestStatus};

/// The CI system whose log conventions the live output follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ci {
    /// No CI detected: plain lines, no folding or annotations.
    #[default]
    None,
    /// GitHub Actions: `::group::` folds and `::error` annotations.
    GitHub,
    /// GitLab CI: collapsible sections.
    GitLab,
}

impl Ci {
    /// From the variables each system sets in every job.
    pub fn detect() -> Self {
        Self::from_env(|k| std::env::var(k).ok())
    }

    /// As [`Ci::detect`], reading variables through `var` so tests need not touch the environment.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Self {
        if var("GITHUB_ACTIONS").as_deref() == Some("true") {
            Ci::GitHub
        } else if var("GITLAB_CI").is_some_and(|v| !v.is_empty()) {
            Ci::GitLab
        } else {
            Ci::None
        }
    }
}

/// A shard attempt's whole log folded under `title`, its lines kept as lines: escape codes
/// and other control bytes go, newlines stay. `nonce` makes GitHub's stop token and
/// GitLab's section name unique.
pub fn fold_log(ci: Ci, title: &str, log: &[u8], nonce: &str) -> String {
    let text = String::from_utf8_lossy(log);
    let lines: Vec<String> = text
        .lines()
        .map(|l| strip_control(l).trim_end().to_string())
        .collect();
    let title = strip_control(title);
    let mut out = String::new();
    match ci {
        Ci::None => {}
        Ci::GitHub => {
            // stop-commands keeps a test's output from issuing workflow commands of its own
            // (a stray `::endgroup::`, `::add-mask::` or `::error`) until the token ends it.
            let token = format!("cargo-shard-{nonce}");
            let _ = writeln!(out, "::group::{title}");
            let _ = writeln!(out, "::stop-commands::{token}");
            for l in &lines {
                let _ = writeln!(out, "{l}");
            }
            let _ = writeln!(out, "::{token}::");
            let _ = writeln!(out, "::endgroup::");
        }
        Ci::GitLab => {
            // GitLab's markers: `\e[0Ksection_start:UNIX:NAME[collapsed=true]\r\e[0KHEADER`.
            let name = format!("cargo_shard_{nonce}");
            let now = unix_now();
            let _ = writeln!(
                out,
                "\x1b[0Ksection_start:{now}:{name}[collapsed=true]\r\x1b[0K{title}"
            );
            for l in &lines {
                let _ = writeln!(out, "{l}");
            }
            let _ = writeln!(out, "\x1b[0Ksection_end:{now}:{name}\r\x1b[0K");
        }
    }
    out
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Where a failure happened, as the runner printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The source file, as the runner printed it.
    pub file: String,
    /// The line in `file`, where the annotation points.
    pub line: u32,
    /// The column, when the runner gave one.
    pub col: Option<u32>,
}

static RUST_PANIC: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"panicked at ([^\s:][^:\n]*\.rs):(\d+):(\d+)").expect("valid regex"));
/// `    x_test.go:9: want 1, got 2` (go test) and `FAIL: x_test.go:25: S.TestX` / `x_test.go:27:`
/// (gocheck).
static GO_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^(?:\s*|.*FAIL: )([\w./-]+_test\.go):(\d+):").expect("valid regex"));

/// The first source location a failure names: the Rust panic's `file:line:col`, else the
/// first `_test.go:NN` line.
pub fn location(r: &TestResult) -> Option<Location> {
    let texts = [r.message.as_deref().unwrap_or(""), &r.stderr, &r.stdout];
    for t in texts {
        if let Some(c) = RUST_PANIC.captures(t) {
            return Some(Location {
                file: c[1].to_string(),
                line: c[2].parse().ok()?,
                col: c[3].parse().ok(),
            });
        }
    }
    for t in texts {
        if let Some(c) = GO_LINE.captures(t) {
            return Some(Location {
                file: c[1].to_string(),
                line: c[2].parse().ok()?,
                col: None,
            });
        }
    }
    None
}

/// One `::error` workflow command for a failed or errored test.
pub fn error_annotation(r: &TestResult, shard: usize, host: &str) -> String {
    let word = if r.status == TestStatus::Failed {
        "FAIL"
    } else {
        "ERROR"
    };
    let mut props = Vec::new();
    if let Some(loc) = location(r) {
        props.push(format!("file={}", escape_property(&loc.file)));
        props.push(format!("line={}", loc.line));
        if let Some(c) = loc.col {
            props.push(format!("col={c}"));
        }
    }
    props.push(format!("title={}", escape_property(&format!("{word} {}", r.id))));
    let first = r.message.as_deref().and_then(|m| m.lines().next()).unwrap_or("");
    let mut body = String::new();
    if !first.is_empty() {
        body.push_str(first);
        body.push('\n');
    }
    // The panic line is usually both the message and part of the output: say it once.
    for l in stats::output_tail(&r.stdout, &r.stderr, 8)
        .into_iter()
        .filter(|l| l != first)
    {
        body.push_str(&l);
        body.push('\n');
    }
    body.push_str(&format!("(shard {shard} on {host})"));
    format!("::error {}::{}", props.join(","), escape_data(&body))
}

/// A workflow command's message: `%`, CR and LF encoded (so a multi-line message stays one
/// command), other control bytes and escape codes removed.
pub fn escape_data(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            out.push_str("%0A");
        }
        out.push_str(&strip_control(line).replace('%', "%25"));
    }
    out
}

/// A workflow command's property value: as data, plus `:` and `,`.
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// The job summary: counts, failures with where they happened, flaky tests and the slowest.
pub fn step_summary(report: &RunReport) -> String {
    let mut out = String::new();
    let failed = report.count(TestStatus::Failed);
    let errors = report.count(TestStatus::Error);
    let icon = if failed + errors > 0 || report.interrupted {
        "❌"
    } else {
        "✅"
    };
    let _ = writeln!(out, "### {icon} cargo-shard run `{}`\n", report.run_id);
    let _ = writeln!(out, "| passed | failed | flaky | skipped | errors | wall |");
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        out,
        "| {} | {failed} | {} | {} | {errors} | {} |",
        report.count(TestStatus::Passed),
        report.flaky(),
        report.count(TestStatus::Skipped),
        secs(report.wall),
    );
    if report.interrupted {
        out.push_str("\nThe run was interrupted: what did not run is reported as skipped.\n");
    }
    let failures = stats::failures(report);
    if !failures.is_empty() {
        let _ = writeln!(out, "\n#### Failures\n");
        let _ = writeln!(out, "| test | where | message |");
        let _ = writeln!(out, "|---|---|---|");
        for o in failures {
            let place = location(&o.result)
                .map(|l| format!("`{}:{}`", cell(&l.file), l.line))
                .unwrap_or_default();
            let ran = match o.shard {
                Some(s) if !o.host.is_empty() => format!(" shard {s} on {}", cell(&o.host)),
                _ => String::new(),
            };
            let msg = o
                .result
                .message
                .as_deref()
                .and_then(|m| m.lines().next())
                .unwrap_or("");
            let _ = writeln!(
                out,
                "| `{}` | {place}{ran} | {} |",
                cell(&o.id().to_string()),
                cell(msg)
            );
        }
    }
    let flaky: Vec<_> = report.outcomes.iter().filter(|o| o.is_flaky()).collect();
    if !flaky.is_empty() {
        let _ = writeln!(out, "\n#### Flaky\n");
        for o in flaky {
            let _ = writeln!(
                out,
                "- `{}` passed on attempt {}",
                cell(&o.id().to_string()),
                o.earlier.len() + 1
            );
        }
    }
    let slow = stats::slowest(report, SLOWEST);
    if !slow.is_empty() {
        let _ = writeln!(out, "\n#### Slowest {} tests\n", slow.len());
        let _ = writeln!(out, "| time | test | host |");
        let _ = writeln!(out, "|---:|---|---|");
        for o in slow {
            let _ = writeln!(
                out,
                "| {} | `{}` | {} |",
                secs(o.result.duration),
                cell(&o.id().to_string()),
                cell(&o.host)
            );
        }
    }
    out
}

/// Appends the job summary to the file GitHub names; a run outside Actions has none.
pub fn write_step_summary(path: &Path, report: &RunReport) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    f.write_all(step_summary(report).as_bytes())
}

/// Text safe inside a Markdown table cell and its backticks.
fn cell(s: &str) -> String {
    strip_control(s)
        .replace('|', "\\|")
        .replace('`', "'")
        .replace('<', "&lt;")
}

fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample::sample;
    use crate::test_result::TestId;

    fn failed(message: &str, stdout: &str, stderr: &str) -> TestResult {
        TestResult {
            id: TestId::new("beta::failing", "fails_on_purpose"),
            status: TestStatus::Failed,
            duration: Duration::from_millis(3),
            message: Some(message.into()),
            stdout: stdout.into(),
            stderr: stderr.into(),
            detail: String::new(),
            subtests: Vec::new(),
        }
    }

    #[test]
    fn detects_the_ci_from_its_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert_eq!(Ci::from_env(env(&[("GITHUB_ACTIONS", "true")])), Ci::GitHub);
        assert_eq!(Ci::from_env(env(&[("GITHUB_ACTIONS", "false")])), Ci::None);
        assert_eq!(
            Ci::from_env(env(&[("GITLAB_CI", "true"), ("CI", "true")])),
            Ci::GitLab
        );
        assert_eq!(Ci::from_env(env(&[("CI", "true")])), Ci::None);
    }

    #[test]
    fn locations_from_rust_panics_and_go_lines() {
        let rust = failed(
            "thread 'fails_on_purpose' (32) panicked at beta/tests/failing.rs:10:5:\nboom",
            "",
            "",
        );
        assert_eq!(
            location(&rust),
            Some(Location {
                file: "beta/tests/failing.rs".into(),
                line: 10,
                col: Some(5)
            })
        );
        let go = failed(
            "--- FAIL: TestX (0.00s)",
            "=== RUN   TestX\n    calc_test.go:42: want 1, got 2\n--- FAIL: TestX (0.00s)\n",
            "",
        );
        assert_eq!(
            location(&go).map(|l| (l.file, l.line, l.col)),
            Some(("calc_test.go".into(), 42, None))
        );
        let gocheck = failed(
            "",
            "----\nFAIL: suite_test.go:25: MySuite.TestFails\n\nsuite_test.go:27:\n",
            "",
        );
        assert_eq!(
            location(&gocheck).map(|l| (l.file, l.line)),
            Some(("suite_test.go".into(), 25))
        );
        assert_eq!(location(&failed("no place named", "plain output\n", "")), None);
    }

    #[test]
    fn github_output_is_pinned() {
        let log = b"running 2 tests\n\x1b[32mok\x1b[0m line\r\n::endgroup::\n::error::injected\n\x01tail";
        let r = failed(
            "thread 'fails_on_purpose' (32) panicked at beta/tests/failing.rs:10:5:\nmessy: 1 < 2, 100%",
            "line one\n",
            "thread 'fails_on_purpose' (32) panicked at beta/tests/failing.rs:10:5:\nmessy: 1 < 2, 100%\n",
        );
        let out = format!(
            "{}{}\n",
            fold_log(
                Ci::GitHub,
                "shard 3 attempt 1 on e2 (exit 100, 1.2s)",
                log,
                "42-3-1"
            ),
            error_annotation(&r, 3, "e2")
        );
        insta::assert_snapshot!(out);
    }

    #[test]
    fn gitlab_sections_wrap_each_shard() {
        let out = fold_log(
            Ci::GitLab,
            "shard 0 attempt 1 on e1 (exit 0, 0.5s)",
            b"a\n\x1b[1mb\x1b[0m\n",
            "7-0-1",
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out:?}");
        let start = lines[0]
            .strip_prefix("\x1b[0Ksection_start:")
            .expect("a section start");
        let (time, rest) = start.split_once(':').unwrap();
        assert!(time.parse::<u64>().is_ok_and(|t| t > 1_700_000_000), "{time}");
        assert_eq!(
            rest,
            "cargo_shard_7-0-1[collapsed=true]\r\x1b[0Kshard 0 attempt 1 on e1 (exit 0, 0.5s)"
        );
        assert_eq!(&lines[1..3], ["a", "b"]);
        assert_eq!(
            lines[3],
            format!("\x1b[0Ksection_end:{time}:cargo_shard_7-0-1\r\x1b[0K")
        );
        assert_eq!(fold_log(Ci::None, "x", b"a\n", "1"), "");
    }

    #[test]
    fn job_summary_is_pinned() {
        let (report, _, _) = sample();
        insta::assert_snapshot!(step_summary(&report));
    }

    #[test]
    fn job_summary_is_appended_to_the_named_file() {
        let (report, _, _) = sample();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.md");
        std::fs::write(&path, "earlier step\n").unwrap();
        write_step_summary(&path, &report).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("earlier step\n### ❌ cargo-shard run `r1`"),
            "{text}"
        );
    }
}
