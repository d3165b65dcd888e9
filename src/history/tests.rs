//! Tests of history keeping, loading, seeding and estimates.

use std::path::Path;
use std::time::Duration;

use super::*;

fn id(g: &str, n: &str) -> TestId {
    TestId::new(g, n)
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[test]
fn median_of_recent_runs_ignores_one_noisy_run() {
    let mut h = History::new();
    let t = id("crate::bin", "t");
    for s in [2.0, 2.1, 60.0, 1.9, 2.0] {
        h.record(&t, secs(s));
    }
    assert_eq!(h.expected(&t), Some(secs(2.0)));
}

#[test]
fn only_the_last_samples_count() {
    let mut h = History::new();
    let t = id("g", "t");
    for _ in 0..SAMPLES {
        h.record(&t, secs(10.0));
    }
    // The test got faster: after a majority of new runs, the estimate follows.
    for _ in 0..SAMPLES / 2 + 1 {
        h.record(&t, secs(1.0));
    }
    assert_eq!(h.expected(&t), Some(secs(1.0)));
    assert_eq!(h.tests[&t].len(), SAMPLES);
}

#[test]
fn save_and_load_round_trip_with_sorted_versioned_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shard/history.json");
    let mut h = History::new();
    h.record(&id("b", "z"), secs(0.5));
    h.record(&id("a", "y"), secs(1.25));
    h.record(&id("a", "x"), secs(3.0));
    h.save_atomic(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        text,
        "{\n  \"version\": 1,\n  \"tests\": {\n    \"a\": {\n      \"x\": [\n        3.0\n      ],\n      \"y\": [\n        1.25\n      ]\n    },\n    \"b\": {\n      \"z\": [\n        0.5\n      ]\n    }\n  }\n}\n"
    );
    let (back, warning) = History::load(&path);
    assert_eq!(warning, None);
    assert_eq!(back, h);
}

#[test]
fn missing_history_is_empty_without_warning() {
    let (h, w) = History::load(Path::new("/nonexistent/history.json"));
    assert!(h.is_empty());
    assert_eq!(w, None);
}

#[test]
fn corrupt_history_warns_naming_the_file_and_starts_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.json");
    std::fs::write(&path, "{\"version\": 1, \"tests\": {\"a\": ").unwrap();
    let (h, w) = History::load(&path);
    assert!(h.is_empty());
    let w = w.expect("a warning").0;
    assert!(
        w.starts_with(&format!("{}: not a history file:", path.display())),
        "{w}"
    );
    assert!(w.ends_with("starting with an empty history"), "{w}");

    std::fs::write(&path, "{\"version\": 7, \"tests\": {}}").unwrap();
    let (h, w) = History::load(&path);
    assert!(h.is_empty());
    assert!(w.unwrap().0.contains("format version 7"));

    // A directory where the file should be: unreadable, still only a warning.
    let (h, w) = History::load(dir.path());
    assert!(h.is_empty());
    assert!(w.unwrap().0.contains("cannot read"));
}

#[test]
fn seeding_from_junit_maps_classname_and_name_and_warns_on_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.xml"),
        "<testsuites><testsuite name=\"x\">",
    )
    .unwrap();
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/junit");
    let globs = vec![
        format!("{fixtures}/*.xml"),
        format!("{}/*.xml", dir.path().display()),
        format!("{}/none-*.xml", dir.path().display()),
    ];
    let mut h = History::new();
    let summary = h.seed_from_junit(&globs).unwrap();
    // nextest, gotestsum, go-junit-report, Surefire, missing-time and our own merged report.
    assert_eq!(summary.files, 6);
    assert_eq!(summary.warnings.len(), 2, "{:?}", summary.warnings);
    assert!(
        summary.warnings[0].0.contains("broken.xml:1: "),
        "{:?}",
        summary.warnings
    );
    assert!(summary.warnings[1].0.contains("no files match"));
    // cargo-shard's own merged report: group = classname = binary id.
    assert_eq!(
        h.expected(&id("alpha::integration", "slow_three_seconds")),
        Some(secs(3.008))
    );
    // nextest: group = binary id.
    assert_eq!(
        h.expected(&id("rust-sample::integration", "end_to_end_large")),
        Some(secs(3.954))
    );
    // gotestsum: group = import path.
    assert_eq!(
        h.expected(&id("example.com/shop/pricing", "TestTaxTables")),
        Some(secs(0.62))
    );
    // A subtest beside its parent is part of the parent's time, not a test of its own.
    assert_eq!(
        h.expected(&id("example.com/shop/cart", "TestAdd")),
        Some(secs(0.01))
    );
    assert_eq!(
        h.expected(&id("example.com/shop/cart", "TestAdd/duplicate_sku")),
        None
    );
    // go-junit-report v1 writes the package's last element as classname: the suite has the path.
    assert_eq!(
        h.expected(&id("example.com/shop/pay", "TestRefund")),
        Some(secs(2.01))
    );
    assert_eq!(
        h.expected(&id("example.com/shop/pay/internal/ledger", "TestBalance")),
        Some(secs(0.03))
    );
    assert_eq!(h.expected(&id("pay", "TestRefund")), None);
    // Surefire: group = Java class; `1,200.5` is 1200.5 s.
    assert_eq!(
        h.expected(&id("com.example.shop.CartTest", "bulkImport")),
        Some(secs(1200.5))
    );
    // Skipped and untimed cases teach nothing.
    assert_eq!(
        h.expected(&id("com.example.shop.CartTest", "legacyCoupons")),
        None
    );
    assert_eq!(h.expected(&id("suite.outer", "no_time_at_all")), None);
    assert_eq!(h.expected(&id("suite.inner", "inner_case")), Some(secs(1.5)));
    assert_eq!(summary.cases, h.len());
}

#[test]
fn bad_glob_is_an_error() {
    let e = History::new().seed_from_junit(&["[".to_string()]).unwrap_err();
    assert!(e.to_string().starts_with("--timings-from \"[\": bad glob"), "{e}");
}

#[test]
fn estimates_use_group_mean_then_global_mean_then_default() {
    let mut h = History::new();
    h.record(&id("a", "1"), secs(1.0));
    h.record(&id("a", "2"), secs(2.0));
    h.record(&id("a", "3"), secs(9.0));
    h.record(&id("b", "1"), secs(20.0));
    h.record(&id("b", "2"), secs(30.0));
    let tests = [id("a", "2"), id("a", "new"), id("b", "new"), id("c", "new")];
    let w = estimate(&tests, &h, secs(1.0));
    let got: Vec<_> = w.iter().map(|w| (w.expected, w.known)).collect();
    assert_eq!(
        got,
        [
            (secs(2.0), true),
            (secs(4.0), false),  // mean of a: 1, 2, 9
            (secs(25.0), false), // mean of b: 20, 30
            (secs(12.4), false), // mean of all: 1, 2, 9, 20, 30
        ]
    );
    let w = estimate(&tests, &History::new(), secs(1.5));
    assert!(w.iter().all(|w| !w.known && w.expected == secs(1.5)));
}

#[test]
fn prepare_loads_then_seeds_and_collects_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.json");
    std::fs::write(&path, "not json").unwrap();
    let glob = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/junit/nextest.xml").to_string();
    let (h, warnings) = History::prepare(Some(&path), &[glob]).unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].0.contains("history.json"));
    assert_eq!(h.len(), 14);
    let (h, warnings) = History::prepare(None, &[]).unwrap();
    assert!(h.is_empty() && warnings.is_empty());
}

#[test]
fn shard_overhead_is_the_median_of_recent_runs_and_survives_a_round_trip() {
    let mut h = History::new();
    assert_eq!(h.overhead(), None);
    for s in [1.0, 9.0, 2.0, 1.5, 1.8, 2.2] {
        h.record_overhead(Duration::from_secs_f64(s));
    }
    // The oldest (1.0) is forgotten; the outlier (9.0) does not move the median.
    assert_eq!(h.overhead(), Some(Duration::from_secs_f64(2.0)));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.json");
    h.save_atomic(&path).unwrap();
    let (back, warning) = History::load(&path);
    assert!(warning.is_none());
    assert_eq!(back.overhead(), h.overhead());
}

#[test]
fn durations_out_of_range_in_a_history_file_are_dropped_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.json");
    std::fs::write(
        &path,
        r#"{"version": 1, "tests": {"g": {"huge": [1e19], "fine": [2.0, 1e300], "neg": [-1]}}, "shard_overhead": [1e19]}"#,
    )
    .unwrap();
    let (h, warning) = History::load(&path);
    assert_eq!(h.expected(&id("g", "huge")), None);
    assert_eq!(h.expected(&id("g", "fine")), Some(secs(2.0)));
    assert_eq!(h.overhead(), None);
    let w = warning.expect("a warning").0;
    assert!(w.contains("4 duration(s) outside 0..=604800s ignored"), "{w}");
    // Whatever the file said, every estimate is one the planner can add up.
    let ids = [id("g", "huge"), id("g", "fine"), id("g", "new")];
    let total: Duration = estimate(&ids, &h, secs(1.0)).iter().map(|w| w.expected).sum();
    assert!(total < secs(crate::limits::MAX_SECS * 3.0));
}

#[test]
fn a_junit_time_beyond_a_week_seeds_nothing_and_never_panics() {
    let report = junit::read_str(
        r#"<testsuite name="s"><testcase classname="c" name="huge" time="1e20"/><testcase classname="c" name="ok" time="3"/></testsuite>"#,
        "t.xml",
    )
    .unwrap();
    let mut h = History::new();
    assert_eq!(h.seed_from_report(&report), 1);
    assert_eq!(h.expected(&id("c", "huge")), None);
    assert_eq!(h.expected(&id("c", "ok")), Some(secs(3.0)));
}

#[test]
fn a_history_of_an_unknown_version_is_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.json");
    let newer = r#"{"version": 9, "tests": {"g": {"t": [1.0]}}}"#;
    std::fs::write(&path, newer).unwrap();
    let (h, warning) = History::load(&path);
    assert!(!h.writable());
    let w = warning.unwrap().0;
    assert!(
        w.ends_with(
            "format version 9 (this cargo-shard reads 1); planning without it and leaving the file untouched"
        ),
        "{w}"
    );
    let (h, _) = History::load(&dir.path().join("missing.json"));
    assert!(h.writable());
}
