//! A small run for the reports' unit tests: three planned shards, a host lost under one of
//! them, a retry, a re-run of a flaky test, failures with harness chatter and escape codes,
//! and a test never shipped.

use std::time::Duration;

use super::summary::Written;
use crate::engine::Phases;
use crate::plan::{Plan, Shard};
use crate::run::{AttemptEnd, Outcome, RunReport, ShardAttempt};
use crate::test_result::{TestId, TestResult, TestStatus};

pub fn outcome(name: &str, status: TestStatus, ms: u64, shard: usize, host: &str) -> Outcome {
    let bad = matches!(status, TestStatus::Failed | TestStatus::Error);
    Outcome {
        result: TestResult {
            id: TestId::new("sample::it", name),
            status,
            duration: Duration::from_millis(ms),
            message: bad.then(|| "assertion failed: left == right\nmore".into()),
            detail: String::new(),
            stdout: if bad {
                "running 1 test\ntest b ... FAILED\n\nfailures:\n\nfailures:\n    b\n\ntest result: FAILED. 0 passed; 1 failed\nline 1\n\x1b[31mred <&>\x1b[0m\n".into()
            } else {
                String::new()
            },
            stderr: if bad {
                "thread 'b' panicked at it.rs:3:5\n".into()
            } else {
                String::new()
            },
            subtests: Vec::new(),
        },
        earlier: Vec::new(),
        shard: Some(shard),
        host: host.into(),
        container: format!("c{shard}"),
    }
}

pub fn attempt(shard: usize, host: &str, slot: usize, start: u64, end: u64, predicted: u64) -> ShardAttempt {
    ShardAttempt {
        shard,
        attempt: 1,
        host: host.into(),
        slot,
        container: format!("c{shard}"),
        tests: 2,
        predicted: Duration::from_millis(predicted),
        started: Duration::from_millis(start),
        finished: Duration::from_millis(end),
        phases: Phases::default(),
        end: AttemptEnd::Exited(Some(0)),
        log: format!("logs/{shard}.log").into(),
        rerun: false,
    }
}

/// Three planned shards, one host lost under shard 2 (retried on e2), one flaky test
/// re-run on e1, one test never shipped.
pub fn sample() -> (RunReport, Plan, Written) {
    let mut flaky = outcome("flaky", TestStatus::Passed, 300, 3, "e1");
    flaky
        .earlier
        .push(outcome("flaky", TestStatus::Failed, 300, 1, "e2").result);
    let mut never_shipped = outcome("ignored", TestStatus::Skipped, 0, 0, "");
    never_shipped.shard = None;
    let mut lost = attempt(2, "e3", 0, 0, 300, 1000);
    lost.end = AttemptEnd::Failed("engine stopped answering".into());
    let mut retried = attempt(2, "e2", 1, 400, 1900, 1000);
    retried.attempt = 2;
    let mut rerun = attempt(3, "e1", 1, 2000, 2300, 300);
    rerun.rerun = true;
    let report = RunReport {
        run_id: "r1".into(),
        outcomes: vec![
            outcome("a", TestStatus::Passed, 1200, 0, "e1"),
            outcome("b", TestStatus::Failed, 800, 0, "e1"),
            outcome("c", TestStatus::Skipped, 0, 1, "e2"),
            outcome("d", TestStatus::Error, 0, 2, "e2"),
            outcome("e", TestStatus::Passed, 900, 1, "e2"),
            flaky,
            never_shipped,
        ],
        attempts: vec![
            attempt(0, "e1", 0, 0, 2000, 1800),
            attempt(1, "e2", 0, 100, 1500, 1600),
            lost,
            retried,
            rerun,
        ],
        wall: Duration::from_millis(2400),
        lost_hosts: vec![("e3".into(), "connection refused".into())],
        interrupted: false,
        kept: Vec::new(),
        cleanup_failed: Vec::new(),
        rejected: None,
        stage: Duration::ZERO,
        staged: Vec::new(),
    };
    let shard = |index, host: &str, ms| Shard {
        index,
        host: Some(host.into()),
        tests: vec![],
        predicted: Duration::from_millis(ms),
        expected: Vec::new(),
    };
    let plan = Plan {
        shards: vec![shard(0, "e1", 1800), shard(1, "e2", 1600), shard(2, "e3", 1000)],
        total: Duration::from_millis(4400),
        makespan: Duration::from_millis(1800),
        lower_bound: Duration::from_millis(1500),
        estimated: 0,
    };
    let written = Written {
        junit: Some("target/shard/junit.xml".into()),
        html: Some("target/shard/report.html".into()),
        logs: Some("target/shard/logs".into()),
        history: None,
    };
    (report, plan, written)
}
