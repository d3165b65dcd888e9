//! `--message-format json`: one JSON object per line on stdout, for tools. The schema is
//! documented in `docs/events.md`; `format_version` changes on any incompatible change.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde_json::{Value, json};

use super::meta::timestamp_millis;
use super::stats::strip_control;
use crate::plan::Plan;
use crate::run::{Event, Observer, RunReport};
use crate::test_result::{TestId, TestResult, TestStatus};

/// 2: wall-clock `time` on every event, `test-failing` names a test by `group` and `name`
/// like every other event, `test-finished` carries `message` and `output`.
pub const FORMAT_VERSION: u32 = 2;

/// A failed test's message in `test-finished` keeps at most this many bytes (its head); the
/// JUnit report keeps all of it.
pub const MESSAGE_LIMIT: usize = 4 * 1024;
/// A failed test's output in `test-finished` keeps at most this many bytes: its tail, where
/// the failure is. The JUnit report keeps all of it.
pub const OUTPUT_LIMIT: usize = 16 * 1024;

fn emit(v: Value) {
    // Events that are not part of the stream (see `to_json`).
    if v.is_null() {
        return;
    }
    let v = stamped(v, SystemTime::now());
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

/// The event with its wall-clock `time` (RFC 3339 UTC, milliseconds).
pub fn stamped(mut v: Value, now: SystemTime) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.insert("time".into(), Value::String(timestamp_millis(now)));
    }
    v
}

/// The event stream of one run: remembers the last status each test was reported with, so
/// `run-finished` can first report the tests no container did (never shipped, or left unrun).
#[derive(Clone, Default)]
pub struct Stream {
    reported: Arc<Mutex<BTreeMap<TestId, TestStatus>>>,
}

impl Stream {
    /// The observer to hand the scheduler: it prints each event as one JSON line and remembers what
    /// it reported.
    pub fn observer(&self) -> Observer {
        let reported = self.reported.clone();
        Arc::new(move |event: &Event| {
            match event {
                Event::TestFinished { result, .. } => {
                    let mut seen = reported.lock().unwrap_or_else(|p| p.into_inner());
                    seen.insert(result.id.clone(), result.status);
                }
                // Stdout is for machines; a person watching reads stderr, as without JSON.
                Event::Warning(text) => eprintln!("{text}"),
                _ => {}
            }
            emit(to_json(event));
        })
    }

    /// `test-finished` for every test whose final word the stream has not said yet, then
    /// `run-finished`.
    pub fn run_finished(&self, report: &RunReport, exit_code: u8) {
        for v in self.closing_events(report) {
            emit(v);
        }
        emit(run_finished_json(report, exit_code));
    }

    /// The closing `test-finished` events [`Stream::run_finished`] prints, built without printing
    /// them.
    pub fn closing_events(&self, report: &RunReport) -> Vec<Value> {
        let seen = self.reported.lock().unwrap_or_else(|p| p.into_inner());
        report
            .outcomes
            .iter()
            .filter(|o| seen.get(o.id()) != Some(&o.result.status))
            .map(|o| {
                let mut v = test_finished_json(&o.result);
                v["host"] = json!(o.host);
                v["shard"] = json!(o.shard);
                // No container reported it: no attempt to name (the shard is where it was sent).
                v["attempt"] = Value::Null;
                v
            })
            .collect()
    }
}

use crate::units::secs;

/// Prints `run-started`: the run's id, runner and whole plan, before any shard starts.
pub fn run_started(run_id: &str, runner: &str, plan: &Plan) {
    emit(run_started_json(run_id, runner, plan));
}

/// The `run-started` event, unstamped.
pub fn run_started_json(run_id: &str, runner: &str, plan: &Plan) -> Value {
    json!({
        "type": "run-started",
        "format_version": FORMAT_VERSION,
        "run_id": run_id,
        "runner": runner,
        "plan": plan,
    })
}

/// One run event as its JSON line; `Null` for events that are not part of the stream.
pub fn to_json(event: &Event) -> Value {
    match event {
        Event::ShardStarted {
            shard,
            attempt,
            host,
            tests,
            predicted,
        } => json!({
            "type": "shard-started", "shard": shard, "attempt": attempt, "host": host, "tests": tests,
            "predicted": secs(*predicted),
        }),
        Event::TestStarted {
            id,
            shard,
            host,
            attempt,
        } => json!({
            "type": "test-started", "group": id.group, "name": id.name, "shard": shard, "host": host,
            "attempt": attempt,
        }),
        // A live end is the runner's first word, for the progress display; the stream carries
        // each result once, as `test-finished`, from what the shard reported.
        Event::TestEnded { .. } => Value::Null,
        Event::TestFailing { id, shard, host } => json!({
            "type": "test-failing", "group": id.group, "name": id.name, "shard": shard, "host": host,
        }),
        Event::ShardFinished(a) => json!({
            "type": "shard-finished",
            "shard": a.shard,
            "attempt": a.attempt,
            "host": a.host,
            "slot": a.slot,
            "container": a.container,
            "tests": a.tests,
            "predicted": secs(a.predicted),
            "started": secs(a.started),
            "finished": secs(a.finished),
            "duration": secs(a.finished.saturating_sub(a.started)),
            "end": a.end,
            "rerun": a.rerun,
            "phases": {
                "create": secs(a.phases.create),
                "upload": secs(a.phases.upload),
                "start": secs(a.phases.start),
                "run": secs(a.phases.run),
                "collect": secs(a.phases.collect),
                "remove": secs(a.phases.remove),
            },
        }),
        Event::TestFinished {
            result,
            shard,
            host,
            attempt,
        } => {
            let mut v = test_finished_json(result);
            v["host"] = json!(host);
            v["shard"] = json!(shard);
            v["attempt"] = json!(attempt);
            v
        }
        Event::HostLost { host, reason } => json!({"type": "host-lost", "host": host, "reason": reason}),
        Event::Warning(message) => json!({"type": "warning", "message": message}),
        Event::Staged { host, stats } => json!({
            "type": "host-staged",
            "host": host,
            "uploaded_bytes": stats.uploaded_bytes,
            "cached_bytes": stats.cached_bytes,
            "evicted": stats.evicted,
            "seconds": secs(stats.time),
        }),
    }
}

/// A test's result; `message` and `output` (stdout then stderr, escape codes removed) only
/// when it has them, each bounded.
fn test_finished_json(r: &TestResult) -> Value {
    let mut v = json!({
        "type": "test-finished",
        "group": r.id.group,
        "name": r.id.name,
        "status": r.status,
        "duration": secs(r.duration),
    });
    if let Some(m) = r.message.as_deref().filter(|m| !m.is_empty()) {
        v["message"] = json!(bounded_head(&strip_escapes(m), MESSAGE_LIMIT));
    }
    let output = format!("{}{}", r.stdout, r.stderr);
    if !output.is_empty() {
        v["output"] = json!(bounded_tail(&strip_escapes(&output), OUTPUT_LIMIT));
    }
    v
}

/// Escape codes and control bytes out, line breaks and tabs kept.
fn strip_escapes(s: &str) -> String {
    s.split('\n').map(strip_control).collect::<Vec<_>>().join("\n")
}

/// At most `limit` bytes from the start, cut at a character boundary, `…` marking the cut.
fn bounded_head(s: &str, limit: usize) -> String {
    if s.len() <= limit {
        return s.to_string();
    }
    let cut = (0..=limit).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
    format!("{}…", &s[..cut])
}

/// At most `limit` bytes from the end, cut at a character boundary, `…` marking the cut.
fn bounded_tail(s: &str, limit: usize) -> String {
    if s.len() <= limit {
        return s.to_string();
    }
    let cut = (s.len() - limit..=s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    format!("…{}", &s[cut..])
}

/// The `run-finished` event: every test's final status, the counts, staging and the exit code.
pub fn run_finished_json(report: &RunReport, exit_code: u8) -> Value {
    let tests: Vec<Value> = report
        .outcomes
        .iter()
        .map(|o| {
            json!({
                "group": o.id().group,
                "name": o.id().name,
                "status": if o.is_flaky() { "flaky".to_string() } else { status_name(o.result.status) },
                "duration": secs(o.result.duration),
                "host": o.host,
                "shard": o.shard,
            })
        })
        .collect();
    json!({
        "type": "run-finished",
        "run_id": report.run_id,
        "passed": report.count(TestStatus::Passed),
        "failed": report.count(TestStatus::Failed),
        "flaky": report.flaky(),
        "skipped": report.count(TestStatus::Skipped),
        "errors": report.count(TestStatus::Error),
        "wall": secs(report.wall),
        "stage": secs(report.stage),
        "staged": report.staged.iter().map(|(host, s)| json!({
            "host": host,
            "uploaded_bytes": s.uploaded_bytes,
            "cached_bytes": s.cached_bytes,
        })).collect::<Vec<_>>(),
        "interrupted": report.interrupted,
        "exit_code": exit_code,
        "tests": tests,
    })
}

fn status_name(s: TestStatus) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::engine::Phases;
    use crate::plan::Shard;
    use crate::run::{AttemptEnd, Outcome, ShardAttempt};
    use crate::test_result::{TestId, TestResult};

    fn result(name: &str, status: TestStatus, ms: u64) -> TestResult {
        TestResult {
            id: TestId::new("alpha::it", name),
            status,
            duration: Duration::from_millis(ms),
            message: None,
            detail: String::new(),
            stdout: String::new(),
            stderr: String::new(),
            subtests: Vec::new(),
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn run_started_carries_the_version_and_the_plan() {
        let plan = Plan {
            shards: vec![Shard {
                index: 0,
                host: Some("e1".into()),
                tests: vec![TestId::new("alpha::it", "a")],
                predicted: ms(1500),
                expected: Vec::new(),
            }],
            total: ms(1500),
            makespan: ms(1500),
            lower_bound: ms(1500),
            estimated: 1,
        };
        let v = run_started_json("r1", "nextest", &plan);
        assert_eq!(v["type"], "run-started");
        assert_eq!(v["format_version"], FORMAT_VERSION);
        assert_eq!(v["run_id"], "r1");
        assert_eq!(v["runner"], "nextest");
        assert_eq!(v["plan"]["shards"][0]["host"], "e1");
        assert_eq!(
            v["plan"]["shards"][0]["tests"][0],
            json!({"group": "alpha::it", "name": "a"})
        );
        assert_eq!(v["plan"]["makespan"], 1.5);
    }

    #[test]
    fn shard_events() {
        let started = Event::ShardStarted {
            shard: 3,
            attempt: 2,
            host: "e2".into(),
            tests: 12,
            predicted: Duration::from_millis(2500),
        };
        assert_eq!(
            to_json(&started),
            json!({"type": "shard-started", "shard": 3, "attempt": 2, "host": "e2", "tests": 12, "predicted": 2.5})
        );
        let finished = Event::ShardFinished(ShardAttempt {
            shard: 3,
            attempt: 2,
            host: "e2".into(),
            slot: 1,
            container: "cs-r1-3-2".into(),
            tests: 12,
            predicted: ms(4000),
            started: ms(250),
            finished: ms(4750),
            phases: Phases {
                create: ms(100),
                upload: ms(200),
                start: ms(50),
                run: ms(4000),
                collect: ms(100),
                remove: ms(50),
            },
            end: AttemptEnd::Exited(Some(100)),
            log: "out/logs/3-2.log".into(),
            rerun: false,
        });
        assert_eq!(
            to_json(&finished),
            json!({
                "type": "shard-finished", "shard": 3, "attempt": 2, "host": "e2", "slot": 1,
                "container": "cs-r1-3-2", "tests": 12, "predicted": 4.0, "started": 0.25,
                "finished": 4.75, "duration": 4.5, "end": {"kind": "exited", "detail": 100},
                "rerun": false,
                "phases": {"create": 0.1, "upload": 0.2, "start": 0.05, "run": 4.0, "collect": 0.1, "remove": 0.05},
            })
        );
        let mut broken = match finished {
            Event::ShardFinished(a) => a,
            _ => unreachable!(),
        };
        broken.end = AttemptEnd::Failed("engine gone".into());
        assert_eq!(
            to_json(&Event::ShardFinished(broken.clone()))["end"],
            json!({"kind": "failed", "detail": "engine gone"})
        );
        broken.end = AttemptEnd::TimedOut;
        assert_eq!(
            to_json(&Event::ShardFinished(broken))["end"],
            json!({"kind": "timed_out"})
        );
    }

    #[test]
    fn test_and_host_events() {
        let t = Event::TestFinished {
            result: result("slow \"quoted\" name", TestStatus::Failed, 1234),
            shard: 1,
            host: "e3".into(),
            attempt: 1,
        };
        let line = to_json(&t).to_string();
        assert!(!line.contains('\n'), "one line per event");
        assert_eq!(
            serde_json::from_str::<Value>(&line).unwrap(),
            json!({
                "type": "test-finished", "group": "alpha::it", "name": "slow \"quoted\" name",
                "status": "failed", "duration": 1.234, "host": "e3", "shard": 1, "attempt": 1,
            })
        );
        let started = Event::TestStarted {
            id: crate::test_result::TestId::new("alpha::it", "x"),
            shard: 2,
            host: "e1".into(),
            attempt: 1,
        };
        assert_eq!(
            to_json(&started),
            json!({"type": "test-started", "group": "alpha::it", "name": "x", "shard": 2, "host": "e1", "attempt": 1})
        );
        let live = Event::TestEnded {
            result: result("x", TestStatus::Passed, 5),
            shard: 2,
            host: "e1".into(),
            attempt: 1,
        };
        assert!(to_json(&live).is_null(), "live ends stay out of the stream");
        let lost = Event::HostLost {
            host: "e2".into(),
            reason: "connection refused".into(),
        };
        assert_eq!(
            to_json(&lost),
            json!({"type": "host-lost", "host": "e2", "reason": "connection refused"})
        );
    }

    #[test]
    fn run_finished_lists_every_test_once_with_flaky_named() {
        let outcome = |r: TestResult| Outcome {
            result: r,
            earlier: Vec::new(),
            shard: Some(0),
            host: "e1".into(),
            container: "c0".into(),
        };
        let mut flaky = outcome(result("flaky", TestStatus::Passed, 10));
        flaky.earlier.push(result("flaky", TestStatus::Failed, 10));
        let mut ignored = outcome(result("ignored", TestStatus::Skipped, 0));
        ignored.shard = None;
        ignored.host = String::new();
        let report = RunReport {
            run_id: "r1".into(),
            outcomes: vec![
                outcome(result("a", TestStatus::Passed, 500)),
                outcome(result("b", TestStatus::Failed, 20)),
                outcome(result("c", TestStatus::Error, 0)),
                flaky,
                ignored,
            ],
            wall: ms(2500),
            ..Default::default()
        };
        let v = run_finished_json(&report, 100);
        assert_eq!(v["type"], "run-finished");
        for (k, n) in [
            ("passed", 1),
            ("failed", 1),
            ("flaky", 1),
            ("skipped", 1),
            ("errors", 1),
        ] {
            assert_eq!(v[k], n, "{k}");
        }
        assert_eq!(v["wall"], 2.5);
        assert_eq!(v["exit_code"], 100);
        assert_eq!(v["interrupted"], false);
        let statuses: Vec<&str> = v["tests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses, ["passed", "failed", "error", "flaky", "skipped"]);
        assert_eq!(v["tests"][4]["shard"], Value::Null);
        assert_eq!(v["tests"][0]["host"], "e1");
    }

    #[test]
    fn every_event_gets_its_wall_clock_time() {
        let at = std::time::UNIX_EPOCH + Duration::from_millis(1_796_156_081_250);
        let v = stamped(json!({"type": "host-lost", "host": "e2"}), at);
        assert_eq!(v["time"], "2026-12-01T20:14:41.250Z");
        assert_eq!(v["host"], "e2");
    }

    #[test]
    fn a_failing_test_is_named_like_a_finished_one() {
        let failing = to_json(&Event::TestFailing {
            id: TestId::new("beta::failing", "fails_on_purpose"),
            shard: 2,
            host: "e1".into(),
        });
        let finished = to_json(&Event::TestFinished {
            result: result("x", TestStatus::Failed, 1),
            shard: 2,
            host: "e1".into(),
            attempt: 1,
        });
        assert_eq!(
            failing,
            json!({"type": "test-failing", "group": "beta::failing", "name": "fails_on_purpose", "shard": 2, "host": "e1"})
        );
        for v in [&failing, &finished] {
            assert!(v["group"].is_string() && v["name"].is_string(), "{v}");
        }
    }

    #[test]
    fn a_failure_carries_its_message_and_the_tail_of_its_output_bounded() {
        let mut r = result("fails", TestStatus::Failed, 5);
        r.message = Some("thread 'fails' panicked at a.rs:1:1:\n\x1b[31mboom\x1b[0m".into());
        r.stdout = "out line\n".into();
        r.stderr = "err line\n".into();
        let v = test_finished_json(&r);
        assert_eq!(v["message"], "thread 'fails' panicked at a.rs:1:1:\nboom");
        assert_eq!(v["output"], "out line\nerr line\n");
        r.stdout = format!("{}é{}", "x".repeat(OUTPUT_LIMIT), "last line\n");
        r.message = Some("m".repeat(MESSAGE_LIMIT + 10));
        let v = test_finished_json(&r);
        let output = v["output"].as_str().unwrap();
        assert!(output.len() <= OUTPUT_LIMIT + "…".len(), "{}", output.len());
        assert!(output.starts_with('…') && output.ends_with("last line\nerr line\n"));
        let message = v["message"].as_str().unwrap();
        assert_eq!(message.len(), MESSAGE_LIMIT + "…".len());
        let quiet = test_finished_json(&result("ok", TestStatus::Passed, 1));
        assert!(
            quiet.get("message").is_none() && quiet.get("output").is_none(),
            "{quiet}"
        );
    }

    #[test]
    fn closing_events_report_what_no_container_did() {
        let stream = Stream::default();
        let observer = stream.observer();
        let shipped = result("a", TestStatus::Passed, 5);
        // Emitting writes to stdout; the test harness captures it.
        observer(&Event::TestFinished {
            result: shipped.clone(),
            shard: 0,
            host: "e1".into(),
            attempt: 1,
        });
        let outcome = |r: TestResult, shard: Option<usize>, host: &str| Outcome {
            result: r,
            earlier: Vec::new(),
            shard,
            host: host.into(),
            container: String::new(),
        };
        let report = RunReport {
            run_id: "r1".into(),
            outcomes: vec![
                outcome(shipped, Some(0), "e1"),
                outcome(result("lost", TestStatus::Error, 0), Some(1), "e2"),
                outcome(result("ignored", TestStatus::Skipped, 0), None, ""),
            ],
            ..Default::default()
        };
        let closing = stream.closing_events(&report);
        let names: Vec<(&str, &str)> = closing
            .iter()
            .map(|v| (v["name"].as_str().unwrap(), v["status"].as_str().unwrap()))
            .collect();
        assert_eq!(names, [("lost", "error"), ("ignored", "skipped")]);
        assert_eq!(closing[1]["shard"], Value::Null);
        assert_eq!(closing[0]["shard"], 1);
        assert_eq!(closing[0]["attempt"], Value::Null);
    }
}
