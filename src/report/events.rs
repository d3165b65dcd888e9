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
    emit(json!({
        "type": "run-started",
        "format_version": FORMAT_VERSION,
        "run_id": run_id,
        "runner": runner,
        "plan": plan,
    }));
}

pub fn observer() -> Observer {
    Arc::new(|event: &Event| emit(to_json(event)))
}

pub fn to_json(event: &Event) -> Value {
    match event {
        Event::ShardStarted { shard, attempt, host, tests } => json!({
            "type": "shard-started", "shard": shard, "attempt": attempt, "host": host, "tests": tests,
        }),
        Event::ShardFinished(a) => json!({
            "type": "shard-finished",
            "shard": a.shard,
            "attempt": a.attempt,
            "host": a.host,
            "container": a.container,
            "tests": a.tests,
            "predicted": secs(a.predicted),
            "duration": secs(a.finished.saturating_sub(a.started)),
            "end": a.end,
            "rerun": a.rerun,
        }),
        Event::TestFinished { result, shard, host, attempt } => json!({
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
    }
}

pub fn run_finished(report: &RunReport, exit_code: u8) {
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
    emit(json!({
        "type": "run-finished",
        "run_id": report.run_id,
        "passed": report.count(TestStatus::Passed),
        "failed": report.count(TestStatus::Failed),
        "flaky": report.flaky(),
        "skipped": report.count(TestStatus::Skipped),
        "errors": report.count(TestStatus::Error),
        "wall": secs(report.wall),
        "interrupted": report.interrupted,
        "exit_code": exit_code,
        "tests": tests,
    }));
}

fn status_name(s: TestStatus) -> String {
    serde_json::to_value(s).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}
