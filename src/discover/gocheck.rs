//! gocheck (`gopkg.in/check.v1`) suites: finding the `Test…` hook that runs them, listing
//! their `Suite.TestX` names, and reading `-check.vv` (or `-check.v`) output into outcomes.
//!
//! gocheck runs inside one ordinary Go test function (the hook, usually `func Test(t)`)
//! that calls `check.TestingT`. The hook is therefore not a test of its own: its suites'
//! methods are, selected with `-check.f` while `-test.run` selects only the hook, because
//! `-check.f` alone would still run every plain `Test…` function of the package.
//! The parser is a pure function so `cargo shard exec` can read gocheck output too.

use std::path::Path;
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;

use crate::discover::gotest::parse::{ParsedRun, ParsedTest};
use crate::discover::{Live, LiveEvent};
use crate::test_result::TestStatus;

/// Import paths of gocheck.
pub const GOCHECK_IMPORTS: [&str; 2] = ["gopkg.in/check.v1", "github.com/go-check/check"];

/// Fixture methods gocheck reports like tests; they are not tests.
const FIXTURES: [&str; 4] = ["SetUpSuite", "TearDownSuite", "SetUpTest", "TearDownTest"];

static HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(START|PASS|FAIL EXPECTED|FAIL|SKIP|PANIC|MISS): (?:.*?:\d+|\S+): ([^\s.]+\.[^\s.]+)(?: \((.*)\))?(?:\t([0-9.]+)s)?\s*$",
    )
    .expect("static regex")
});

static HOOK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"func\s+(Test\w*)\s*\(\s*\w+\s+\*testing\.T\s*\)\s*\{").expect("static regex")
});

/// Names of the `Test…` functions in `sources` (Go files) whose body calls `TestingT(`:
/// candidate hooks, confirmed later by listing through them.
pub fn find_hooks(sources: &[&Path]) -> Vec<String> {
    let mut hooks = Vec::new();
    for path in sources {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        for cap in HOOK.captures_iter(&text) {
            let whole = cap.get(0).expect("match");
            let rest = &text[whole.end()..];
            let first_line = rest.split('\n').next().unwrap_or("");
            // A one-line body ends on its own line; otherwise at the first unindented `}`.
            let body = if first_line.trim_end().ends_with('}') {
                first_line
            } else {
                &rest[..rest.find("\n}").unwrap_or(rest.len())]
            };
            if body.contains("TestingT(") {
                hooks.push(cap[1].to_string());
            }
        }
    }
    hooks.sort();
    hooks.dedup();
    hooks
}

/// `Suite.TestX` lines of a `-check.list` run; everything else (PASS, TestMain chatter) is dropped.
pub fn parse_list(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| {
            let mut parts = l.split('.');
            matches!((parts.next(), parts.next(), parts.next()), (Some(a), Some(b), None)
                if is_ident(a) && is_ident(b))
        })
        .map(str::to_string)
        .collect()
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
}

fn is_fixture(name: &str) -> bool {
    name.rsplit_once('.')
        .is_some_and(|(_, method)| FIXTURES.contains(&method))
}

/// What a live gocheck or `go test -v` line says: a start (`START: file.go:12: Suite.TestA`,
/// `=== RUN   TestX`) or an end (`PASS: file.go:12: Suite.TestA\t0.010s`, `--- FAIL: TestX
/// (0.00s)`; subtests fold into their parent, which reports after them). Go 1.19 has no
/// channel a test's own output cannot write into, so every such line is display only.
pub fn live(line: &str) -> Option<Live> {
    let line = line.trim_end_matches('\r');
    if let Some(cap) = HEADER.captures(line) {
        let label = cap.get(1).map_or("", |m| m.as_str());
        let name = cap.get(2).map_or("", |m| m.as_str());
        if is_fixture(name) {
            return None;
        }
        let status = match label {
            "START" => {
                return Some(Live {
                    name: name.to_string(),
                    event: LiveEvent::Started,
                    trusted: false,
                });
            }
            "PASS" | "FAIL EXPECTED" => TestStatus::Passed,
            "SKIP" => TestStatus::Skipped,
            "FAIL" | "PANIC" | "MISS" => TestStatus::Failed,
            _ => return None,
        };
        let secs = cap
            .get(4)
            .and_then(|m| m.as_str().parse::<f64>().ok())
            .unwrap_or(0.0);
        return Some(Live::printed_end(
            name,
            status,
            Duration::try_from_secs_f64(secs).unwrap_or_default(),
        ));
    }
    if let Some(name) = line.strip_prefix("=== RUN").map(str::trim)
        && !name.is_empty()
        && !name.contains('/')
    {
        return Some(Live {
            name: name.to_string(),
            event: LiveEvent::Started,
            trusted: false,
        });
    }
    let r = crate::discover::gotest::parse::result_line(line)?;
    (r.depth == 0 && !r.name.is_empty()).then(|| Live::printed_end(r.name, r.status, r.duration))
}

/// Parses gocheck `-check.vv` (streamed) or `-check.v` output into per-test outcomes, named
/// `Suite.TestX`. A `MISS` (a fixture failed first) is a failure naming the fixture.
pub fn parse_gocheck(text: &str) -> ParsedRun {
    let mut p = GoCheck::default();
    for raw in text.lines() {
        let line = raw.trim_end_matches('\r');
        match HEADER.captures(line) {
            Some(cap) => p.header(line, &Header::of(&cap)),
            None => p.plain(line),
        }
    }
    p.finish()
}

/// A `LABEL: file.go:12: Suite.TestX (reason)\t0.01s` line's parts.
struct Header<'l> {
    label: &'l str,
    name: &'l str,
    reason: Option<String>,
    secs: Option<f64>,
}

impl<'l> Header<'l> {
    fn of(cap: &regex::Captures<'l>) -> Self {
        Header {
            label: cap.get(1).map_or("", |m| m.as_str()),
            name: cap.get(2).map_or("", |m| m.as_str()),
            reason: cap.get(3).map(|m| m.as_str().to_string()),
            secs: cap.get(4).and_then(|m| m.as_str().parse::<f64>().ok()),
        }
    }
}

/// `parse_gocheck`'s state: the tests so far and whose output the next line is.
#[derive(Default)]
struct GoCheck {
    run: ParsedRun,
    current: Option<usize>,
    /// After a FAIL/PANIC header, `-check.v` prints the test's log; `-check.vv` printed it before.
    trailing: Option<usize>,
    fixture_problem: Option<String>,
}

impl GoCheck {
    /// A line that is no header: the running (or just failed) test's output.
    fn plain(&mut self, line: &str) {
        if line.starts_with("-----------------") || line.starts_with("OOPS:") || line.starts_with("OK:") {
            self.trailing = None;
            return;
        }
        if let Some(i) = self.trailing.or(self.current) {
            self.run.tests[i].output.push_str(line);
            self.run.tests[i].output.push('\n');
        }
    }

    fn header(&mut self, line: &str, h: &Header) {
        if is_fixture(h.name) {
            if matches!(h.label, "FAIL" | "PANIC") {
                self.fixture_problem = Some(format!("{}: {}", h.label, h.name));
                self.trailing = self.current;
            }
            return;
        }
        let i = self.index(h.name);
        let test = &mut self.run.tests[i];
        test.output.push_str(line);
        test.output.push('\n');
        self.trailing = None;
        if h.label == "START" {
            test.started = true;
            self.current = Some(i);
        } else {
            self.ended(i, h);
            self.current = None;
        }
    }

    /// The index of test `name`, added on first mention.
    fn index(&mut self, name: &str) -> usize {
        if let Some(i) = self.run.tests.iter().position(|t| t.name == name) {
            return i;
        }
        self.run.tests.push(ParsedTest {
            name: name.to_string(),
            ..Default::default()
        });
        self.run.tests.len() - 1
    }

    /// A result header for test `i`: its status, time and (for a `MISS`) the fixture to blame.
    fn ended(&mut self, i: usize, h: &Header) {
        let (status, message) = match h.label {
            "PASS" | "FAIL EXPECTED" => (TestStatus::Passed, None),
            "SKIP" => (TestStatus::Skipped, h.reason.clone()),
            "MISS" => (
                TestStatus::Failed,
                Some(format!(
                    "missed: a fixture failed first ({})",
                    self.fixture_problem
                        .as_deref()
                        .unwrap_or("see the suite's output")
                )),
            ),
            _ => {
                self.trailing = Some(i);
                (TestStatus::Failed, None)
            }
        };
        let test = &mut self.run.tests[i];
        test.duration = h
            .secs
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .unwrap_or_default();
        test.status = Some(status);
        test.message = message;
        if h.label == "PANIC" {
            test.message = Some("PANIC".to_string());
        }
    }

    /// A failure's message from its output when the header gave none.
    fn finish(mut self) -> ParsedRun {
        for t in &mut self.run.tests {
            if t.status == Some(TestStatus::Failed) && t.message.as_deref().is_none_or(|m| m == "PANIC") {
                t.message = failure_message(&t.output).or(t.message.take());
            }
        }
        self.run
    }
}

/// `check_test.go:28:` + the next line (the failing assertion), or a `... Panic:` line.
fn failure_message(output: &str) -> Option<String> {
    let lines: Vec<&str> = output.lines().collect();
    if let Some(p) = lines.iter().find(|l| l.trim_start().starts_with("... Panic:")) {
        return Some(p.trim().to_string());
    }
    lines.iter().enumerate().find_map(|(i, l)| {
        let t = l.trim();
        let loc = t.strip_suffix(':')?;
        let (file, n) = loc.rsplit_once(':')?;
        if !file.ends_with(".go") || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(match lines.get(i + 1) {
            Some(next) if !next.trim().is_empty() => format!("{t} {}", next.trim()),
            _ => t.to_string(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VV: &str = "=== RUN   Test
START: check_test.go:23: MathSuite.TestDouble
START: check_test.go:21: MathSuite.SetUpTest
PASS: check_test.go:21: MathSuite.SetUpTest\t0.000s

PASS: check_test.go:23: MathSuite.TestDouble\t0.002s

START: check_test.go:26: MathSuite.TestFails
START: check_test.go:21: MathSuite.SetUpTest
PASS: check_test.go:21: MathSuite.SetUpTest\t0.000s

about to fail
check_test.go:28:
    c.Assert(Double(2), Equals, 5)
... obtained int = 4
... expected int = 5

FAIL: check_test.go:26: MathSuite.TestFails

START: check_test.go:30: MathSuite.TestSkipped
SKIP: check_test.go:30: MathSuite.TestSkipped (not today)

START: check_test.go:31: MathSuite.TestSlow
PASS: check_test.go:31: MathSuite.TestSlow\t0.301s

START: check_test.go:47: FileSuite.TestLogs
a log line 1
PASS: check_test.go:47: FileSuite.TestLogs\t0.000s

START: check_test.go:50: FileSuite.TestBoom
... Panic: kaboom (PC=0x4)
PANIC: check_test.go:50: FileSuite.TestBoom

--- FAIL: Test (0.45s)
FAIL
OOPS: 4 passed, 1 skipped, 2 FAILED
";

    #[test]
    fn test_starts_from_gocheck_and_go_v_lines() {
        let started = |l: &str| live(l).filter(|l| l.event == LiveEvent::Started).map(|l| l.name);
        assert_eq!(
            started("START: math_test.go:20: MathSuite.TestDouble").as_deref(),
            Some("MathSuite.TestDouble")
        );
        assert_eq!(started("=== RUN   TestParse").as_deref(), Some("TestParse"));
        assert_eq!(
            started("=== RUN   TestParse/empty"),
            None,
            "subtests fold into their parent"
        );
        assert_eq!(started("START: x_test.go:9: MathSuite.SetUpTest"), None);
    }

    #[test]
    fn test_ends_from_gocheck_and_go_v_lines() {
        let live = |l: &str| {
            let l = live(l)?;
            assert!(!l.trusted, "printed lines are display only");
            match l.event {
                LiveEvent::Finished(e) => Some((l.name, e.status, e.duration.as_millis())),
                LiveEvent::Started => None,
            }
        };
        let end = |name: &str, status, ms| Some((name.to_string(), status, ms));
        assert_eq!(
            live("FAIL: math_test.go:40: MathSuite.TestFails"),
            end("MathSuite.TestFails", TestStatus::Failed, 0)
        );
        assert_eq!(
            live("PASS: math_test.go:20: MathSuite.TestDouble\t0.012s"),
            end("MathSuite.TestDouble", TestStatus::Passed, 12)
        );
        assert_eq!(
            live("SKIP: math_test.go:50: MathSuite.TestSkipped (not today)"),
            end("MathSuite.TestSkipped", TestStatus::Skipped, 0)
        );
        assert_eq!(
            live("PASS: math_test.go:10: MathSuite.SetUpSuite\t0.000s"),
            None,
            "fixtures are not tests"
        );
        assert_eq!(
            live("--- FAIL: TestFailing (0.25s)"),
            end("TestFailing", TestStatus::Failed, 250)
        );
        assert_eq!(
            live("    --- FAIL: TestSubtestFails/bad (0.00s)"),
            None,
            "subtests fold into their parent"
        );
        assert_eq!(
            live("--- PASS: TestFoo (1.50s)"),
            end("TestFoo", TestStatus::Passed, 1500)
        );
        assert_eq!(live("=== RUN   TestFoo"), None);
    }

    #[test]
    fn vv_output_gives_one_outcome_per_suite_test() {
        let run = parse_gocheck(VV);
        let names: Vec<&str> = run.tests.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "MathSuite.TestDouble",
                "MathSuite.TestFails",
                "MathSuite.TestSkipped",
                "MathSuite.TestSlow",
                "FileSuite.TestLogs",
                "FileSuite.TestBoom"
            ]
        );
        let get = |n: &str| run.get(n).unwrap();
        assert_eq!(get("MathSuite.TestDouble").status, Some(TestStatus::Passed));
        assert_eq!(get("MathSuite.TestDouble").duration, Duration::from_millis(2));
        let fails = get("MathSuite.TestFails");
        assert_eq!(fails.status, Some(TestStatus::Failed));
        assert!(fails.output.contains("about to fail") && fails.output.contains("expected int = 5"));
        assert_eq!(
            fails.message.as_deref(),
            Some("check_test.go:28: c.Assert(Double(2), Equals, 5)")
        );
        assert_eq!(get("MathSuite.TestSkipped").status, Some(TestStatus::Skipped));
        assert_eq!(get("MathSuite.TestSkipped").message.as_deref(), Some("not today"));
        assert_eq!(get("MathSuite.TestSlow").duration, Duration::from_millis(301));
        assert!(get("FileSuite.TestLogs").output.contains("a log line 1"));
        assert!(!get("MathSuite.TestSlow").output.contains("a log line 1"));
        assert_eq!(get("FileSuite.TestBoom").status, Some(TestStatus::Failed));
        assert_eq!(
            get("FileSuite.TestBoom").message.as_deref(),
            Some("... Panic: kaboom (PC=0x4)")
        );
    }

    #[test]
    fn v_output_puts_the_log_after_the_header() {
        let text = "
----------------------------------------------------------------------
FAIL: check_test.go:26: MathSuite.TestFails

check_test.go:28:
    c.Assert(Double(2), Equals, 5)
... obtained int = 4

PASS: check_test.go:23: MathSuite.TestDouble\t0.000s
OOPS: 1 passed, 1 FAILED
";
        let run = parse_gocheck(text);
        let fails = run.get("MathSuite.TestFails").unwrap();
        assert_eq!(fails.status, Some(TestStatus::Failed));
        assert!(fails.output.contains("obtained int = 4"));
        assert_eq!(
            fails.message.as_deref(),
            Some("check_test.go:28: c.Assert(Double(2), Equals, 5)")
        );
        assert_eq!(
            run.get("MathSuite.TestDouble").unwrap().status,
            Some(TestStatus::Passed)
        );
    }

    #[test]
    fn fixture_failure_marks_missed_tests_failed() {
        let text = "START: s_test.go:10: S.SetUpSuite
... Panic: no database (PC=0x1)
PANIC: s_test.go:10: S.SetUpSuite

MISS: s_test.go:20: S.TestA
MISS: s_test.go:21: S.TestB
";
        let run = parse_gocheck(text);
        assert_eq!(run.tests.len(), 2);
        for t in &run.tests {
            assert_eq!(t.status, Some(TestStatus::Failed));
            assert!(
                t.message.as_deref().unwrap().contains("PANIC: S.SetUpSuite"),
                "{t:?}"
            );
        }
    }

    #[test]
    fn started_test_without_result_is_unfinished() {
        let run = parse_gocheck("START: a_test.go:3: S.TestHangs\nsome log\n");
        let t = run.get("S.TestHangs").unwrap();
        assert!(t.started && t.status.is_none());
    }

    #[test]
    fn list_keeps_only_suite_method_lines() {
        let text =
            "=== RUN   Test\nMathSuite.TestDouble\nsetup chatter.\nS.TestA\n--- PASS: Test (0.00s)\nPASS\n";
        assert_eq!(parse_list(text), ["MathSuite.TestDouble", "S.TestA"]);
    }

    #[test]
    fn hooks_are_test_functions_calling_testing_t() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a_test.go");
        std::fs::write(
            &f,
            "package a\nfunc Test(t *testing.T) { TestingT(t) }\nfunc TestOne(t *testing.T) { t.Log(1) }\n\
             func TestPlain(t *testing.T) {\n\tt.Log(1)\n}\n\
             func TestHook2(t *testing.T) {\n\tcheck.TestingT(t)\n}\n",
        )
        .unwrap();
        assert_eq!(find_hooks(&[f.as_path()]), ["Test", "TestHook2"]);
    }
}
