//! Tests of the planner, baselines, filters and rendering.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use super::baseline::{Baseline, partition, plan_with};
use super::*;

fn w(group: &str, name: &str, secs: f64) -> Weighted {
    Weighted {
        id: TestId::new(group, name),
        expected: Duration::from_secs_f64(secs),
        estimated: false,
    }
}

fn cap(host: &str, slots: usize, jobs: usize, weight: f64) -> Capacity {
    Capacity {
        host: host.into(),
        slots,
        test_threads: jobs,
        weight,
    }
}

fn no_overhead() -> PlanOptions {
    PlanOptions {
        per_shard_overhead: Duration::ZERO,
        ..PlanOptions::default()
    }
}

/// Deterministic pseudo-random durations (log-uniform 0.01 s … 10 s).
fn suite(n: usize, seed: u64) -> Vec<Weighted> {
    let mut rng = rng::SplitMix64::new(seed);
    (0..n)
        .map(|i| {
            let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            w(
                &format!("bin{}", i % 7),
                &format!("t{i:05}"),
                0.01 * 1000f64.powf(u),
            )
        })
        .collect()
}

fn all_ids(plan: &Plan) -> BTreeSet<TestId> {
    plan.shards.iter().flat_map(|s| s.tests.iter().cloned()).collect()
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[test]
fn every_test_lands_in_exactly_one_shard_and_shards_are_longest_first() {
    let tests = suite(500, 1);
    let plan = plan(
        &tests,
        &[cap("a", 3, 1, 1.0), cap("b", 2, 2, 1.5)],
        &PlanOptions::default(),
    );
    assert_eq!(plan.test_count(), 500);
    assert_eq!(all_ids(&plan).len(), 500);
    assert_eq!(plan.shards.len(), 5, "default shard count = total slots");
    for (i, pair) in plan.shards.windows(2).enumerate() {
        assert!(pair[0].predicted >= pair[1].predicted);
        assert_eq!(pair[0].index, i);
    }
}

#[test]
fn same_inputs_give_byte_identical_json() {
    let tests = suite(2000, 7);
    let caps = [cap("e1", 4, 2, 1.0), cap("e2", 2, 1, 2.0)];
    let opts = PlanOptions {
        shards: Some(9),
        ..PlanOptions::default()
    };
    let a = render::json(&plan(&tests, &caps, &opts));
    let mut reversed = tests.clone();
    reversed.reverse();
    let b = render::json(&plan(&reversed, &caps, &opts));
    assert_eq!(a, b, "input order must not matter without --shuffle");
}

#[test]
fn the_seed_decides_the_shuffle() {
    // No history yet: every test has the same estimate, so only the shuffle tells them apart.
    let tests: Vec<_> = (0..40).map(|i| w("g", &format!("t{i:02}"), 1.0)).collect();
    let caps = [cap("h", 4, 1, 1.0)];
    let opts = |seed, shuffle| PlanOptions {
        shuffle,
        seed,
        ..PlanOptions::default()
    };
    let one = plan(&tests, &caps, &opts(1, true));
    assert_eq!(
        render::json(&one),
        render::json(&plan(&tests, &caps, &opts(1, true)))
    );
    let two = plan(&tests, &caps, &opts(2, true));
    assert_ne!(one.shards, two.shards);
    let plain = plan(&tests, &caps, &opts(1, false));
    assert_ne!(one.shards, plain.shards);
    // Shuffling never costs balance here: 10 tests per shard either way.
    assert!(one.shards.iter().all(|s| s.tests.len() == 10));
    assert_eq!(one.makespan, plain.makespan);
}

#[test]
fn a_weight_two_host_gets_twice_the_work() {
    let tests: Vec<_> = (0..300).map(|i| w("g", &format!("t{i:03}"), 1.0)).collect();
    let plan = plan(
        &tests,
        &[cap("slow", 1, 1, 1.0), cap("fast", 1, 1, 2.0)],
        &no_overhead(),
    );
    let count = |h: &str| {
        plan.shards
            .iter()
            .find(|s| s.host.as_deref() == Some(h))
            .unwrap()
            .tests
            .len()
    };
    assert_eq!((count("fast"), count("slow")), (200, 100));
    assert!((secs(plan.makespan) - 100.0).abs() < 1e-9, "{:?}", plan.makespan);
    assert_eq!(plan.makespan, plan.lower_bound);
}

#[test]
fn jobs_run_tests_at_once_but_never_faster_than_the_longest() {
    let tests = [
        w("g", "long", 8.0),
        w("g", "a", 1.0),
        w("g", "b", 1.0),
        w("g", "c", 1.0),
    ];
    let plan = plan(&tests, &[cap("h", 1, 4, 1.0)], &no_overhead());
    assert_eq!(plan.shards.len(), 1);
    assert_eq!(secs(plan.shards[0].predicted), 8.0);
    let tests: Vec<_> = (0..16).map(|i| w("g", &format!("t{i}"), 1.0)).collect();
    let plan = super::plan(&tests, &[cap("h", 1, 4, 2.0)], &no_overhead());
    assert_eq!(secs(plan.makespan), 2.0, "16 s of work, 4 at once, twice as fast");
}

#[test]
fn extra_shards_queue_behind_the_slots() {
    let tests: Vec<_> = (0..12).map(|i| w("g", &format!("t{i:02}"), 1.0)).collect();
    let opts = PlanOptions {
        shards: Some(6),
        per_shard_overhead: Duration::from_secs(1),
        ..PlanOptions::default()
    };
    let plan = plan(&tests, &[cap("h", 2, 1, 1.0)], &opts);
    assert_eq!(plan.shards.len(), 6);
    assert!(
        plan.shards
            .iter()
            .all(|s| s.tests.len() == 2 && secs(s.predicted) == 3.0)
    );
    // Two slots, three shards each, one after another: 3 × (1 s overhead + 2 s).
    assert_eq!(secs(plan.makespan), 9.0);
    // Bound: one overhead + 12 s over two slots.
    assert_eq!(secs(plan.lower_bound), 7.0);
}

#[test]
fn faster_slots_take_more_of_the_queued_shards() {
    let tests: Vec<_> = (0..90).map(|i| w("g", &format!("t{i:02}"), 1.0)).collect();
    let opts = PlanOptions {
        shards: Some(6),
        ..no_overhead()
    };
    let plan = plan(&tests, &[cap("slow", 1, 1, 1.0), cap("fast", 1, 1, 2.0)], &opts);
    let on = |h: &str| {
        plan.shards
            .iter()
            .filter(|s| s.host.as_deref() == Some(h))
            .count()
    };
    assert_eq!((on("fast"), on("slow")), (4, 2));
    assert!((secs(plan.makespan) - 30.0).abs() < 1e-9, "{:?}", plan.makespan);
}

#[test]
fn makespan_never_beats_the_lower_bound_and_stays_close_to_it() {
    for seed in 0..20 {
        let tests = suite(300, seed);
        let caps = [cap("a", 2, 1, 1.0), cap("b", 3, 2, 0.5), cap("c", 1, 1, 3.0)];
        let opts = PlanOptions {
            shards: Some(3 + seed as usize % 9),
            ..PlanOptions::default()
        };
        let plan = plan(&tests, &caps, &opts);
        assert!(plan.makespan >= plan.lower_bound, "seed {seed}: {plan:?}");
        let ratio = secs(plan.makespan) / secs(plan.lower_bound);
        if opts.shards == Some(6) {
            assert!(ratio < 1.1, "seed {seed}: ratio {ratio}");
        }
    }
}

#[test]
fn lower_bound_is_work_over_capacity_or_the_longest_test() {
    let caps = [cap("a", 2, 2, 1.0), cap("b", 1, 1, 2.0)];
    let spread: Vec<_> = (0..60).map(|i| w("g", &format!("{i}"), 1.0)).collect();
    // 60 s over a capacity of 2·2·1 + 1·1·2 = 6 work-seconds per second.
    assert_eq!(secs(lower_bound(&spread, &caps, Duration::ZERO)), 10.0);
    let tall = [w("g", "huge", 30.0), w("g", "tiny", 0.5)];
    // The longest test, on the fastest host, plus one overhead.
    assert_eq!(secs(lower_bound(&tall, &caps, Duration::from_millis(500))), 15.5);
}

#[test]
fn lpt_isolates_a_dominant_test_where_round_robin_does_not() {
    let mut tests: Vec<_> = (0..40).map(|i| w("g", &format!("t{i:02}"), 1.0)).collect();
    tests.push(w("g", "t00_slow", 40.0));
    tests.sort_by(|a, b| a.id.cmp(&b.id));
    let caps = [cap("h", 4, 1, 1.0)];
    let ours = plan(&tests, &caps, &no_overhead());
    let slow = ours
        .shards
        .iter()
        .find(|s| s.tests.iter().any(|t| t.name == "t00_slow"))
        .unwrap();
    assert_eq!(slow.tests.len(), 1);
    assert_eq!(secs(ours.makespan), 40.0);
    let slice = plan_with(&tests, &caps, &no_overhead(), Baseline::Slice);
    assert!(slice.makespan > ours.makespan);
}

#[test]
fn more_shards_than_tests_and_no_tests_are_fine() {
    let tests = [w("g", "a", 1.0), w("g", "b", 2.0)];
    let p = plan(&tests, &[cap("h", 8, 1, 1.0)], &PlanOptions::default());
    assert_eq!(p.shards.len(), 2);
    let p = plan(&[], &[cap("h", 8, 1, 1.0)], &PlanOptions::default());
    assert!(p.shards.is_empty());
    assert_eq!(p.makespan, Duration::ZERO);
    // No usable host: one local slot, no host name.
    let p = plan(&tests, &[cap("h", 0, 1, 1.0)], &no_overhead());
    assert_eq!(p.shards.len(), 1);
    assert_eq!(p.shards[0].host, None);
}

#[test]
fn estimated_tests_are_counted() {
    let mut tests = suite(10, 3);
    tests[2].estimated = true;
    tests[5].estimated = true;
    assert_eq!(plan(&tests, &[cap("h", 2, 1, 1.0)], &no_overhead()).estimated, 2);
}

#[test]
fn baselines_partition_like_nextest() {
    let tests = [
        w("a", "1", 1.0),
        w("a", "2", 1.0),
        w("a", "3", 1.0),
        w("b", "1", 1.0),
        w("b", "2", 1.0),
    ];
    assert_eq!(partition(&tests, 2, Baseline::Count), [0, 1, 0, 0, 1]);
    assert_eq!(partition(&tests, 2, Baseline::Slice), [0, 1, 0, 1, 0]);
    assert_eq!(partition(&tests, 2, Baseline::Contiguous), [0, 0, 0, 1, 1]);
    let hashed = partition(&tests, 3, Baseline::Hash);
    assert!(hashed.iter().all(|&b| b < 3));
    assert_eq!(hashed, partition(&tests, 3, Baseline::Hash));
    for how in Baseline::ALL {
        let p = plan_with(
            &suite(100, 9),
            &[cap("h", 4, 1, 1.0)],
            &PlanOptions::default(),
            how,
        );
        assert_eq!(p.test_count(), 100, "{}", how.name());
        assert!(p.makespan >= p.lower_bound);
    }
}

#[test]
fn filters_file_selects_by_name_or_full_id_and_reports_unknown_names() {
    let f = Filters::parse("# smoke tests\n\nTestAdd\n  example.com/pay TestRefund  \nTestTypo\n# end\n");
    assert_eq!(f.names.len(), 3);
    let tests = [
        TestId::new("example.com/cart", "TestAdd"),
        TestId::new("example.com/pay", "TestRefund"),
        TestId::new("example.com/pay", "TestCharge"),
        TestId::new("example.com/other", "TestRefund"),
    ];
    let sel = f.select(&tests);
    assert_eq!(sel.indices, [0, 1]);
    assert_eq!(sel.unmatched, ["TestTypo"]);
    let e = sel.check(Path::new("keys.txt")).unwrap_err().to_string();
    assert_eq!(e, "keys.txt: 1 name(s) match no test: \"TestTypo\"");
    let all = Filters::parse("TestAdd\nTestRefund\n").select(&tests);
    assert_eq!(all.indices, [0, 1, 3]);
    assert!(all.check(Path::new("k")).is_ok());
    let e = Filters::read(Path::new("/nonexistent/keys"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("/nonexistent/keys: cannot read filters file"),
        "{e}"
    );
}

fn small_plan() -> Plan {
    let mut tests = vec![
        w("rust-sample", "parse::tests::large_file", 2.417),
        w("rust-sample", "cache::tests::ttl_expiry", 1.502),
        w("rust-sample::integration", "end_to_end_large", 3.954),
        w("rust-sample::integration", "concurrent_writers", 1.206),
        w("rust-sample::integration", "end_to_end_small", 0.731),
        w("rust-sample::bin/sample-cli", "tests::help_text", 0.015),
    ];
    tests[5].estimated = true;
    plan(
        &tests,
        &[cap("e1", 2, 1, 1.0), cap("e2-remote", 1, 2, 2.0)],
        &PlanOptions::default(),
    )
}

#[test]
fn human_rendering_is_pinned() {
    insta::assert_snapshot!(render::human(
        &small_plan(),
        PlanOptions::default().per_shard_overhead
    ));
}

#[test]
fn json_rendering_is_pinned() {
    insta::assert_snapshot!(render::json(&small_plan()));
}

#[test]
fn balance_rendering_is_pinned() {
    let d = Duration::from_secs_f64;
    let rows = vec![
        (0, "e1".to_string(), d(4.45), d(5.1)),
        (1, "e2-remote".to_string(), d(3.2), d(2.9)),
        (2, "e1".to_string(), d(2.4), d(2.6)),
    ];
    insta::assert_snapshot!(render::balance(&rows));
}

#[test]
fn fewer_shards_than_slots_bound_over_the_slots_that_work() {
    let tests: Vec<Weighted> = (0..12).map(|i| w("g", &format!("t{i:02}"), 1.0)).collect();
    let opts = PlanOptions {
        shards: Some(4),
        ..no_overhead()
    };
    let plan = plan(&tests, &[cap("h", 6, 1, 1.0)], &opts);
    assert_eq!(plan.shards.len(), 4);
    // 12 s of work over the 4 slots that get a shard, not over all 6.
    assert_eq!(plan.lower_bound, Duration::from_secs(3));
    assert_eq!(plan.makespan, Duration::from_secs(3));
}

#[test]
fn history_estimates_become_weights_with_the_guessed_ones_flagged() {
    let mut h = crate::history::History::new();
    h.record(&TestId::new("g", "seen"), Duration::from_secs(3));
    let ids = [TestId::new("g", "seen"), TestId::new("g", "new")];
    let weights: Vec<Weighted> = crate::history::estimate(&ids, &h, Duration::from_secs(1))
        .into_iter()
        .map(Weighted::from)
        .collect();
    let got: Vec<_> = weights
        .iter()
        .map(|w| (w.id.name.as_str(), w.expected, w.estimated))
        .collect();
    let three = Duration::from_secs(3);
    assert_eq!(got, [("seen", three, false), ("new", three, true)]);
}

/// The largest sum of one group's tests in any shard of `plan`, in seconds.
fn largest_group(plan: &Plan) -> f64 {
    plan.shards
        .iter()
        .flat_map(|s| {
            let mut by_group: std::collections::HashMap<&str, f64> = Default::default();
            for (t, e) in s.tests.iter().zip(&s.expected) {
                *by_group.entry(t.group.as_str()).or_default() += secs(e.time);
            }
            by_group.into_values()
        })
        .fold(0.0, f64::max)
}

#[test]
fn serial_groups_are_spread_so_no_shard_waits_on_one_package() {
    // Two slots running two tests at once. Package `a` is four 1 s tests, `x` one 2 s test.
    let tests = [
        w("a", "t1", 1.0),
        w("a", "t2", 1.0),
        w("a", "t3", 1.0),
        w("a", "t4", 1.0),
        w("x", "long", 2.0),
    ];
    let caps = [cap("h", 2, 2, 1.0)];
    // Counted as running side by side, three of `a`'s tests share a shard: 1.5 s of work
    // for two threads, but 3 s for a package whose tests run in turn.
    let side_by_side = plan(&tests, &caps, &no_overhead());
    assert_eq!(largest_group(&side_by_side), 3.0);
    assert_eq!(secs(side_by_side.makespan), 2.0, "the model that missed it");

    let serial = PlanOptions {
        serial_groups: true,
        ..no_overhead()
    };
    let p = plan(&tests, &caps, &serial);
    assert_eq!(largest_group(&p), 2.0);
    assert_eq!(secs(p.makespan), 2.0);
    assert_eq!(p.test_count(), 5);
}

#[test]
fn a_serial_group_alone_is_predicted_at_its_sum_not_split_over_threads() {
    let tests: Vec<Weighted> = (0..4).map(|i| w("pkg", &format!("t{i}"), 1.0)).collect();
    let one_slot = [cap("h", 1, 4, 1.0)];
    assert_eq!(secs(plan(&tests, &one_slot, &no_overhead()).makespan), 1.0);
    let serial = PlanOptions {
        serial_groups: true,
        ..no_overhead()
    };
    let p = plan(&tests, &one_slot, &serial);
    assert_eq!(secs(p.makespan), 4.0);
    // The bound stays: over two slots the package splits, and runs in two halves at once.
    assert_eq!(secs(p.lower_bound), 1.0);
    let two_slots = [cap("h", 2, 4, 1.0)];
    assert_eq!(secs(plan(&tests, &two_slots, &serial).makespan), 2.0);
}
