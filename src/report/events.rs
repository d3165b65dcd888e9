//! `--message-format json`: one JSON object per line on stdout, for tools. The schema is
//! documented in `docs/events.md`; `format_version` changes on any incompatible change.

use std::io::Write;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::discover::TestStatus;
use crate::plan::Plan;
use crate::run::{Event, Observer, RunReport};

pub const FORMAT_VERSION: u32 = 1;

fn emit(v: Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

fn secs(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

pub fn run_started(run_id: &str, runner: &str, plan: &Plan) {
    emit(run_started_json(run_id, runner, plan));
}

pub fn run_started_json(run_id: &str, runner: &str, plan: &Plan) -> Value {
    json!({
        "type": "run-started",
        "format_version": FORMAT_VERSION,
        "run_id": run_id,
        "runner": runner,
        "plan": plan,
    })
}

pub fn observer() -> Observer {
    Arc::new(|event: &Event| emit(to_json(event)))
}

pub fn to_json(event: &Event) -> Value {
    match event {
        Event::ShardStarted {
            shard,
            attempt,
            host,
            tests,
        } => json!({
            "type": "shard-started", "shard": shard, "attempt": attempt, "host": host, "tests": tests,
        }),
        Event::TestFailing { name, shard, host } => json!({
            "type": "test-failing", "name": name, "shard": shard, "host": host,
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
        } => json!({
            "type": "test-finished",
            "group": result.id.group,
            "name": result.id.name,
            "status": result.status,
            "duration": secs(result.duration),
            "host": host,
            "shard": shard,
            "attempt": attempt,
        }),
        Event::HostLost { host, reason } => json!({"type": "host-lost", "host": host, "reason": reason}),
        Event::Staged { host, stats } => json!({
            "type": "host-staged",
            "host": host,
            "uploaded_bytes": stats.uploaded_bytes,
            "cached_bytes": stats.cached_bytes,
            "evicted": stats.evicted,
            "time": secs(stats.time),
        }),
    }
}

pub fn run_finished(report: &RunReport, exit_code: u8) {
    emit(run_finished_json(report, exit_code));
}

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
    use crate::discover::{TestId, TestResult};
    use crate::engine::Phases;
    use crate::plan::Shard;
    use crate::run::{AttemptEnd, Outcome, ShardAttempt};

    fn result(name: &str, status: TestStatus, ms: u64) -> TestResult {
        TestResult {
            id: TestId::new("alpha::it", name),
            status,
            duration: Duration::from_millis(ms),
            message: None,
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
        };
        assert_eq!(
            to_json(&started),
            json!({"type": "shard-started", "shard": 3, "attempt": 2, "host": "e2", "tests": 12})
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
}
