//! Unit tests for partition mode: the job spec, CI variables, the fingerprint and merge's checks.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::merge::{Job, MergeError, check};
use super::*;
use crate::plan::{PlanOptions, Weighted};

#[test]
fn partition_is_k_of_n_one_based() {
    assert_eq!(Partition::parse("2/3"), Ok(Partition { index: 2, total: 3 }));
    for bad in ["0/3", "4/3", "3", "a/b", "1/0"] {
        assert_eq!(
            Partition::parse(bad).unwrap_err(),
            format!("partition {bad:?}: expected K/N with 1 <= K <= N, or auto")
        );
    }
}

#[test]
fn ci_variables_of_each_system_give_a_one_based_job() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        let map: BTreeMap<&str, &str> = pairs.iter().copied().collect();
        move |k: &str| map.get(k).map(|v| v.to_string())
    };
    let p = |index, total| Ok(Partition { index, total });
    assert_eq!(
        Partition::from_ci(env(&[("CI_NODE_INDEX", "3"), ("CI_NODE_TOTAL", "3")])),
        p(3, 3)
    );
    assert_eq!(
        Partition::from_ci(env(&[("CIRCLE_NODE_INDEX", "0"), ("CIRCLE_NODE_TOTAL", "4")])),
        p(1, 4)
    );
    assert_eq!(
        Partition::from_ci(env(&[
            ("BUILDKITE_PARALLEL_JOB", "1"),
            ("BUILDKITE_PARALLEL_JOB_COUNT", "2")
        ])),
        p(2, 2)
    );
    assert!(
        Partition::from_ci(env(&[]))
            .unwrap_err()
            .contains("no CI parallel-job variables")
    );
    assert_eq!(
        Partition::from_ci(env(&[("CI_NODE_INDEX", "x"), ("CI_NODE_TOTAL", "2")])).unwrap_err(),
        "--partition auto: CI_NODE_INDEX=\"x\" is not a number"
    );
    assert_eq!(
        Partition::from_ci(env(&[("CIRCLE_NODE_INDEX", "2"), ("CIRCLE_NODE_TOTAL", "2")])).unwrap_err(),
        "--partition auto: CIRCLE_NODE_INDEX gives job 3 of CIRCLE_NODE_TOTAL=2"
    );
}

fn case(name: &str, ignored: bool) -> TestCase {
    TestCase {
        id: TestId::new("g", name),
        ignored,
    }
}

#[test]
fn fingerprint_follows_the_listing_and_the_history_not_their_order() {
    let tests = vec![case("a", false), case("b", true)];
    let reversed = vec![case("b", true), case("a", false)];
    let empty = History::new();
    let fp = fingerprint(&tests, &empty);
    assert_eq!(fp.len(), 12);
    assert_eq!(fp, fingerprint(&reversed, &empty));
    assert_ne!(fp, fingerprint(&[case("a", false), case("b", false)], &empty));
    let mut h = History::new();
    h.record(&TestId::new("g", "a"), Duration::from_secs(2));
    assert_ne!(fp, fingerprint(&tests, &h));
}

/// Plans `n` tests of 1..=n seconds for `total` jobs and returns every job's manifest, each
/// reporting its own share as passed.
fn jobs(n: usize, total: usize) -> Vec<Job> {
    let tests: Vec<TestCase> = (1..=n).map(|i| case(&format!("t{i}"), false)).collect();
    let weighted: Vec<Weighted> = tests
        .iter()
        .enumerate()
        .map(|(i, t)| Weighted {
            id: t.id.clone(),
            expected: Duration::from_secs(i as u64 + 1),
            estimated: false,
        })
        .collect();
    let opts = PlanOptions {
        shards: Some(total),
        ..PlanOptions::default()
    };
    let plan = crate::plan::plan(&weighted, &job_capacities(total), &opts);
    (1..=total)
        .map(|index| {
            let mut m = Manifest::planned("fp".into(), Partition { index, total }, "nextest", &plan, &tests);
            m.results = m
                .mine()
                .iter()
                .map(|id| JobResult {
                    id: id.clone(),
                    status: TestStatus::Passed,
                    seconds: 1.0,
                })
                .collect();
            Job {
                dir: PathBuf::from(format!("job{index}")),
                manifest: m,
            }
        })
        .collect()
}

#[test]
fn shares_cover_every_test_once_and_balance_by_duration() {
    let js = jobs(9, 3);
    let mut all: Vec<&TestId> = js.iter().flat_map(|j| j.manifest.mine()).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 9);
    // 45 s of tests over 3 jobs: 15 s each at best; the slowest within 10 % of the mean.
    let p = &js[0].manifest.predicted;
    let mean = p.iter().sum::<f64>() / p.len() as f64;
    let slowest = p.iter().copied().fold(0.0, f64::max);
    assert!(slowest / mean <= 1.1, "{p:?}");
    assert_eq!(check(&js), Ok(()));
}

#[test]
fn merge_refuses_jobs_of_another_plan_and_the_same_job_twice() {
    let mut js = jobs(6, 2);
    js[1].manifest.fingerprint = "other".into();
    assert_eq!(
        check(&js),
        Err(MergeError::Input(
            "job 1/2 (job1) planned from fingerprint fp, job 2/2 (job2) from other: the jobs saw different test listings or histories"
                .into()
        ))
    );
    let mut js = jobs(6, 2);
    let first = js[0].clone();
    js[1] = Job {
        dir: PathBuf::from("again"),
        ..first
    };
    assert_eq!(
        check(&js),
        Err(MergeError::Input(
            "job 1/2 (job1) and job 1/2 (again) are the same job".into()
        ))
    );
}

#[test]
fn merge_names_missing_and_twice_reported_tests() {
    let mut js = jobs(4, 2);
    let stolen = js[1].manifest.results[0].clone();
    js[0].manifest.results.push(stolen.clone());
    let Err(MergeError::Incomplete(msg)) = check(&js) else {
        panic!("duplicate not found")
    };
    assert_eq!(
        msg,
        format!("1 test(s) reported more than once: {} (jobs 1/2, 2/2)", stolen.id)
    );
    let js: Vec<Job> = jobs(4, 2).into_iter().take(1).collect();
    let Err(MergeError::Incomplete(msg)) = check(&js) else {
        panic!("missing job not found")
    };
    assert!(
        msg.starts_with("no output from job 2/2; 2 planned test(s) missing: g t"),
        "{msg}"
    );
}
