//! Reads the text a Go test binary prints with `-test.v` into per-test outcomes.
//!
//! Go 1.19 binaries have no `-test.v=test2json`, so this reads the plain `=== RUN` /
//! `--- PASS:` framing that `go tool test2json` itself reads (a leading `\x16`, the marker
//! newer binaries put on framing lines, is ignored). Top-level tests are what the planner
//! selects and what gets an outcome; their transcript includes their subtests' lines and a
//! failure names the failed subtests. Each subtest's own result, time and lines are kept
//! under its parent, for the report.

use std::time::Duration;

use crate::test_result::TestStatus;

/// What one top-level test left in the output.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedTest {
    /// The test's name as `go test` printed it (`TestX`, `ExampleY`).
    pub name: String,
    /// `None`: started (or only mentioned) but never reported a result.
    pub status: Option<TestStatus>,
    /// Whether its `=== RUN` line was seen, so a binary that died mid-test can name it.
    pub started: bool,
    /// The time its `--- PASS/FAIL/SKIP` line reported.
    pub duration: Duration,
    /// One line for the report: the failed subtests, a failure's first logged line or a skip's
    /// reason.
    pub message: Option<String>,
    /// Every line attributed to the test, its subtests' lines included.
    pub output: String,
    /// Subtests (`TestX/sub`, `TestX/sub/deeper`) that reported a result, in order.
    pub subtests: Vec<ParsedSubtest>,
}

/// A subtest's own result: its full name, status, time and the lines printed while it ran.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedSubtest {
    /// The full name, `TestX/sub/deeper`.
    pub name: String,
    /// `None`: started but never reported a result.
    pub status: Option<TestStatus>,
    /// The time its own result line reported.
    pub duration: Duration,
    /// A failure's first logged line or a skip's reason.
    pub message: Option<String>,
    /// The lines printed while it ran.
    pub output: String,
}

/// A whole binary's run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedRun {
    /// In order of first appearance.
    pub tests: Vec<ParsedTest>,
    /// The first unindented `panic: …` line: a test panicked or `-test.timeout` fired.
    pub panic: Option<String>,
    /// The top-level test whose `=== RUN` came last: the one running if the binary died.
    pub last_started: Option<String>,
}

impl ParsedRun {
    /// The top-level test called `name`, if the output mentions it.
    pub fn get(&self, name: &str) -> Option<&ParsedTest> {
        self.tests.iter().find(|t| t.name == name)
    }
}

#[derive(Default)]
struct Acc {
    test: ParsedTest,
    failed_subtests: Vec<String>,
}

impl Acc {
    /// The subtest `name` of this test, created on first mention.
    fn subtest(&mut self, name: &str) -> &mut ParsedSubtest {
        let i = match self.test.subtests.iter().position(|s| s.name == name) {
            Some(i) => i,
            None => {
                self.test.subtests.push(ParsedSubtest {
                    name: name.to_string(),
                    ..Default::default()
                });
                self.test.subtests.len() - 1
            }
        };
        &mut self.test.subtests[i]
    }
}

/// Parses `-test.v` output (stdout and stderr combined, as the driver captures it).
pub fn parse_go_v(text: &str) -> ParsedRun {
    let mut p = GoV::default();
    for raw in text.split_inclusive('\n') {
        let line = raw.trim_end_matches(['\n', '\r']);
        let framed = line.strip_prefix('\u{16}').unwrap_or(line);
        if let Some(name) = frame_name(framed) {
            p.frame(framed, name);
        } else if let Some(result) = result_line(framed) {
            p.result(framed, &result);
        } else if framed == "PASS" || framed == "FAIL" {
            p.current = None;
            p.current_sub = None;
        } else {
            p.other(framed);
        }
    }
    p.finish()
}

/// `parse_go_v`'s state: the tests so far and whose output the next line is.
#[derive(Default)]
struct GoV {
    tests: Vec<Acc>,
    current: Option<usize>,
    /// The subtest whose frame came last: the lines that follow are its own too.
    current_sub: Option<String>,
    panic: Option<String>,
    last_started: Option<String>,
}

impl GoV {
    /// The index of top-level test `top`, added on first mention.
    fn index(&mut self, top: &str) -> usize {
        if let Some(i) = self.tests.iter().position(|a| a.test.name == top) {
            return i;
        }
        self.tests.push(Acc {
            test: ParsedTest {
                name: top.to_string(),
                ..Default::default()
            },
            ..Default::default()
        });
        self.tests.len() - 1
    }

    /// `=== RUN`/`=== CONT`/… `name`: the lines that follow are that test's.
    fn frame(&mut self, framed: &str, name: &str) {
        let top = top_level(name);
        let i = self.index(top);
        if framed.starts_with("=== RUN") && top == name {
            self.tests[i].test.started = true;
            self.last_started = Some(top.to_string());
        }
        self.current = Some(i);
        self.current_sub = (name != top).then(|| name.to_string());
        if let Some(sub) = &self.current_sub {
            self.tests[i].subtest(sub);
        }
        self.tests[i].test.output.push_str(framed);
        self.tests[i].test.output.push('\n');
    }

    /// `--- PASS/FAIL/SKIP: name (secs)` of a test or a subtest.
    fn result(&mut self, framed: &str, r: &ResultLine) {
        let top = top_level(r.name);
        let i = self.index(top);
        let acc = &mut self.tests[i];
        // Worst word wins: a test may print a `--- PASS:` line for itself or another, but
        // the framework's own `--- FAIL:` line is printed too when the test fails.
        if r.depth == 0 && r.name == top {
            acc.test.status = Some(worst(acc.test.status, r.status));
            acc.test.duration = r.duration;
        } else {
            if r.status == TestStatus::Failed && !acc.failed_subtests.iter().any(|f| f == r.name) {
                acc.failed_subtests.push(r.name.to_string());
            }
            let sub = acc.subtest(r.name);
            sub.status = Some(worst(sub.status, r.status));
            sub.duration = r.duration;
        }
        acc.test.output.push_str(framed);
        acc.test.output.push('\n');
        self.current = Some(i);
        // Go before 1.20 prints a subtest's buffered lines right after its result line.
        self.current_sub = (r.name != top).then(|| r.name.to_string());
    }

    /// Any other line: the current test's (and subtest's) output; the first panic is kept.
    fn other(&mut self, framed: &str) {
        if self.panic.is_none() && framed.starts_with("panic: ") {
            self.panic = Some(framed.to_string());
        }
        if let Some(i) = self.current {
            self.tests[i].test.output.push_str(framed);
            self.tests[i].test.output.push('\n');
            if let Some(sub) = &self.current_sub {
                let sub = self.tests[i].subtest(sub);
                sub.output.push_str(framed);
                sub.output.push('\n');
            }
        }
    }

    /// Messages from the collected output; subtests without a result line are dropped.
    fn finish(self) -> ParsedRun {
        let tests = self
            .tests
            .into_iter()
            .map(|mut acc| {
                acc.test.message = message(&acc.test, &acc.failed_subtests);
                for sub in &mut acc.test.subtests {
                    sub.message = log_message(sub.status, &sub.output);
                }
                acc.test.subtests.retain(|s| s.status.is_some());
                acc.test
            })
            .collect();
        ParsedRun {
            tests,
            panic: self.panic,
            last_started: self.last_started,
        }
    }
}

/// Failed over skipped over passed.
fn worst(before: Option<TestStatus>, now: TestStatus) -> TestStatus {
    let rank = |s: TestStatus| match s {
        TestStatus::Passed => 0,
        TestStatus::Skipped => 1,
        TestStatus::Failed | TestStatus::Error => 2,
    };
    match before {
        Some(b) if rank(b) > rank(now) => b,
        _ => now,
    }
}

fn top_level(name: &str) -> &str {
    name.split('/').next().unwrap_or(name)
}

/// The test named by a `=== RUN/PAUSE/CONT/NAME` line.
fn frame_name(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("=== ")?;
    for verb in ["RUN", "PAUSE", "CONT", "NAME"] {
        if let Some(name) = rest.strip_prefix(verb) {
            let name = name.trim_start();
            return (!name.is_empty() && name.len() < rest.len()).then_some(name.trim_end());
        }
    }
    None
}

/// A `    --- FAIL: TestX/sub (0.12s)` line: four spaces of indent per subtest level.
pub(crate) struct ResultLine<'a> {
    pub depth: usize,
    pub status: TestStatus,
    pub name: &'a str,
    pub duration: Duration,
}

pub(crate) fn result_line(line: &str) -> Option<ResultLine<'_>> {
    let trimmed = line.trim_start_matches(' ');
    let depth = (line.len() - trimmed.len()) / 4;
    let rest = trimmed.strip_prefix("--- ")?;
    let (status, rest) = if let Some(r) = rest.strip_prefix("PASS: ") {
        (TestStatus::Passed, r)
    } else if let Some(r) = rest.strip_prefix("FAIL: ") {
        (TestStatus::Failed, r)
    } else if let Some(r) = rest.strip_prefix("SKIP: ") {
        (TestStatus::Skipped, r)
    } else {
        return None;
    };
    let open = rest.rfind(" (")?;
    let secs = rest[open + 2..].strip_suffix("s)")?.parse::<f64>().ok()?;
    Some(ResultLine {
        depth,
        status,
        name: &rest[..open],
        duration: Duration::try_from_secs_f64(secs).unwrap_or_default(),
    })
}

/// A failed test's failure as Go and gocheck report it: its transcript without the
/// framing lines a reader of the failure does not need (`=== RUN`, gocheck's `START:` and
/// passing fixtures), so the `--- FAIL` block with its log lines, a panic with its trace and
/// gocheck's `... obtained/expected` lines stay together.
pub fn failure_block(output: &str) -> String {
    let kept: Vec<&str> = output
        .lines()
        .filter(|l| frame_name(l.strip_prefix('\u{16}').unwrap_or(l)).is_none())
        .filter(|l| !(l.starts_with("START: ") || is_fixture_pass(l)))
        .collect();
    kept.join("\n").trim_matches('\n').to_string()
}

/// gocheck's `PASS: file.go:21: Suite.SetUpTest\t0.000s`: a fixture that ran before the test.
fn is_fixture_pass(line: &str) -> bool {
    if !line.starts_with("PASS: ") {
        return false;
    }
    let name = line.split_whitespace().nth(2).unwrap_or("");
    ["SetUpSuite", "TearDownSuite", "SetUpTest", "TearDownTest"]
        .iter()
        .any(|f| name.ends_with(&format!(".{f}")))
}

/// `    file_test.go:12: text` → `file_test.go:12: text`.
fn log_line(line: &str) -> Option<&str> {
    let t = line.trim_start();
    if t.len() == line.len() {
        return None;
    }
    let (loc, _) = t.split_once(": ")?;
    let (file, lineno) = loc.rsplit_once(':')?;
    (file.ends_with(".go") && lineno.bytes().all(|b| b.is_ascii_digit())).then_some(t)
}

fn message(test: &ParsedTest, failed_subtests: &[String]) -> Option<String> {
    match test.status {
        Some(TestStatus::Failed) if !failed_subtests.is_empty() => {
            Some(format!("failed subtests: {}", failed_subtests.join(", ")))
        }
        status => log_message(status, &test.output),
    }
}

/// A failure's first logged line, or a skip's last (its reason).
fn log_message(status: Option<TestStatus>, output: &str) -> Option<String> {
    match status {
        Some(TestStatus::Failed) => output.lines().find_map(log_line).map(str::to_string),
        Some(TestStatus::Skipped) => output.lines().rev().find_map(log_line).map(str::to_string),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "=== RUN   TestFoo
    alpha_test.go:13: TestFoo ran
--- PASS: TestFoo (0.00s)
=== RUN   TestShoutTable
=== RUN   TestShoutTable/empty
=== RUN   TestShoutTable/lower
--- PASS: TestShoutTable (0.01s)
    --- PASS: TestShoutTable/empty (0.00s)
    --- PASS: TestShoutTable/lower (0.00s)
=== RUN   TestFailing
    alpha_test.go:56: about to fail
    alpha_test.go:57: intentional failure: 1 != 2
--- FAIL: TestFailing (0.00s)
=== RUN   TestSkipped
    alpha_test.go:60: skipped on purpose
--- SKIP: TestSkipped (0.00s)
=== RUN   TestParallelA
=== PAUSE TestParallelA
=== RUN   TestParallelB
=== PAUSE TestParallelB
=== RUN   TestSubtestFails
=== RUN   TestSubtestFails/ok
=== RUN   TestSubtestFails/bad
    alpha_test.go:82: subtest bad failed
--- FAIL: TestSubtestFails (0.00s)
    --- PASS: TestSubtestFails/ok (0.00s)
    --- FAIL: TestSubtestFails/bad (0.00s)
=== CONT  TestParallelA
=== CONT  TestParallelB
    alpha_test.go:77: B done
--- PASS: TestParallelB (0.10s)
=== CONT  TestParallelA
    alpha_test.go:71: A done
--- PASS: TestParallelA (1.50s)
=== RUN   ExampleLines
--- FAIL: ExampleLines (0.00s)
got:
hello
want:
bye
FAIL
";

    fn status(run: &ParsedRun, name: &str) -> Option<TestStatus> {
        run.get(name).unwrap_or_else(|| panic!("{name} missing")).status
    }

    #[test]
    fn top_level_results_with_subtests_folded_in() {
        let run = parse_go_v(SAMPLE);
        let names: Vec<&str> = run.tests.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "TestFoo",
                "TestShoutTable",
                "TestFailing",
                "TestSkipped",
                "TestParallelA",
                "TestParallelB",
                "TestSubtestFails",
                "ExampleLines"
            ]
        );
        assert_eq!(status(&run, "TestFoo"), Some(TestStatus::Passed));
        assert_eq!(status(&run, "TestShoutTable"), Some(TestStatus::Passed));
        assert_eq!(
            run.get("TestShoutTable").unwrap().duration,
            Duration::from_millis(10)
        );
        assert!(
            run.get("TestShoutTable")
                .unwrap()
                .output
                .contains("--- PASS: TestShoutTable/lower")
        );
        assert_eq!(status(&run, "TestFailing"), Some(TestStatus::Failed));
        assert_eq!(
            run.get("TestFailing").unwrap().message.as_deref(),
            Some("alpha_test.go:56: about to fail")
        );
        assert_eq!(status(&run, "TestSkipped"), Some(TestStatus::Skipped));
        assert_eq!(
            run.get("TestSkipped").unwrap().message.as_deref(),
            Some("alpha_test.go:60: skipped on purpose")
        );
        let sub = run.get("TestSubtestFails").unwrap();
        assert_eq!(sub.status, Some(TestStatus::Failed));
        assert_eq!(
            sub.message.as_deref(),
            Some("failed subtests: TestSubtestFails/bad")
        );
        assert!(sub.output.contains("subtest bad failed"));
        // Each subtest keeps its own result, time and lines.
        let subs: Vec<(&str, Option<TestStatus>)> =
            sub.subtests.iter().map(|s| (s.name.as_str(), s.status)).collect();
        assert_eq!(
            subs,
            [
                ("TestSubtestFails/ok", Some(TestStatus::Passed)),
                ("TestSubtestFails/bad", Some(TestStatus::Failed))
            ]
        );
        let bad = &sub.subtests[1];
        assert_eq!(
            bad.message.as_deref(),
            Some("alpha_test.go:82: subtest bad failed")
        );
        assert!(bad.output.contains("subtest bad failed") && !sub.subtests[0].output.contains("bad failed"));
        let table = &run.get("TestShoutTable").unwrap().subtests;
        assert_eq!(table.len(), 2);
        assert!(run.get("TestFoo").unwrap().subtests.is_empty());
        assert_eq!(status(&run, "ExampleLines"), Some(TestStatus::Failed));
        assert!(run.get("ExampleLines").unwrap().output.contains("want:\nbye\n"));
        assert!(run.panic.is_none());
    }

    #[test]
    fn a_failure_block_is_the_transcript_without_framing() {
        let run = parse_go_v(SAMPLE);
        assert_eq!(
            failure_block(&run.get("TestSubtestFails").unwrap().output),
            "    alpha_test.go:82: subtest bad failed\n--- FAIL: TestSubtestFails (0.00s)\n    \
             --- PASS: TestSubtestFails/ok (0.00s)\n    --- FAIL: TestSubtestFails/bad (0.00s)"
        );
        assert_eq!(
            failure_block(&run.get("ExampleLines").unwrap().output),
            "--- FAIL: ExampleLines (0.00s)\ngot:\nhello\nwant:\nbye"
        );
        let gocheck = "START: a_test.go:26: S.TestFails\nSTART: a_test.go:21: S.SetUpTest\n\
                       PASS: a_test.go:21: S.SetUpTest\t0.000s\n\nabout to fail\na_test.go:28:\n    \
                       c.Assert(2, Equals, 5)\n... obtained int = 2\n... expected int = 5\n\n\
                       FAIL: a_test.go:26: S.TestFails\n";
        assert_eq!(
            failure_block(gocheck),
            "about to fail\na_test.go:28:\n    c.Assert(2, Equals, 5)\n... obtained int = 2\n\
             ... expected int = 5\n\nFAIL: a_test.go:26: S.TestFails"
        );
    }

    #[test]
    fn parallel_output_goes_to_the_test_that_continued() {
        let run = parse_go_v(SAMPLE);
        let a = run.get("TestParallelA").unwrap();
        let b = run.get("TestParallelB").unwrap();
        assert!(a.output.contains("A done") && !a.output.contains("B done"));
        assert!(b.output.contains("B done") && !b.output.contains("A done"));
        assert_eq!(a.duration, Duration::from_millis(1500));
    }

    #[test]
    fn panic_leaves_later_tests_unreported() {
        let text = "=== RUN   TestBeforeCrash
--- PASS: TestBeforeCrash (0.00s)
=== RUN   TestPanics
--- FAIL: TestPanics (0.00s)
panic: boom [recovered]
\tpanic: boom

goroutine 19 [running]:
";
        let run = parse_go_v(text);
        assert_eq!(run.panic.as_deref(), Some("panic: boom [recovered]"));
        assert_eq!(status(&run, "TestPanics"), Some(TestStatus::Failed));
        assert!(run.get("TestPanics").unwrap().output.contains("goroutine 19"));
        assert!(run.get("TestAfterCrash").is_none());
    }

    #[test]
    fn os_exit_leaves_the_running_test_started_without_result() {
        let run =
            parse_go_v("=== RUN   TestBeforeCrash\n--- PASS: TestBeforeCrash (0.00s)\n=== RUN   TestExits\n");
        let t = run.get("TestExits").unwrap();
        assert!(t.started);
        assert_eq!(t.status, None);
    }

    #[test]
    fn timeout_panic_is_recorded() {
        let run = parse_go_v(
            "=== RUN   TestSleepLong\npanic: test timed out after 300ms\n\ngoroutine 17 [running]:\n",
        );
        assert_eq!(run.panic.as_deref(), Some("panic: test timed out after 300ms"));
        assert!(run.get("TestSleepLong").unwrap().started);
    }

    #[test]
    fn test2json_framing_marker_is_ignored() {
        let run = parse_go_v("\u{16}=== RUN   TestA\n\u{16}--- PASS: TestA (0.25s)\n");
        assert_eq!(status(&run, "TestA"), Some(TestStatus::Passed));
        assert_eq!(run.get("TestA").unwrap().duration, Duration::from_millis(250));
    }

    #[test]
    fn prefixed_names_stay_apart() {
        let run = parse_go_v(
            "=== RUN   TestFoo\n--- PASS: TestFoo (0.00s)\n=== RUN   TestFooBar\n--- FAIL: TestFooBar (0.00s)\n",
        );
        assert_eq!(status(&run, "TestFoo"), Some(TestStatus::Passed));
        assert_eq!(status(&run, "TestFooBar"), Some(TestStatus::Failed));
    }
}
