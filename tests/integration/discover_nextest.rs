//! nextest discovery against real cargo-nextest: build and list fixtures/rust-sample, then
//! run shards as local processes from the staged payload, the way the local engine does.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cargo_shard::discover::nextest::{NextestError, NextestOptions, RunIgnored, discover};
use cargo_shard::discover::{Known, ShardCtx, Suite, TestCase};
use cargo_shard::shard::{Collected, Upload};
use cargo_shard::test_result::{TestId, TestResult, TestStatus};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/rust-sample")
}

/// Options for the fixture with the archive in its own temp dir, so concurrent tests never
/// write the same archive.
fn fixture_opts(out: &Path) -> NextestOptions {
    NextestOptions {
        manifest_path: Some(fixture().join("Cargo.toml")),
        workspace: true,
        out_dir: Some(out.to_path_buf()),
        ..Default::default()
    }
}

fn discover_timed(opts: &NextestOptions) -> Suite {
    let start = Instant::now();
    let mut told = Vec::new();
    let suite = discover(opts, &mut |p, known| told.push((p, known)))
        .unwrap_or_else(|e| panic!("discover failed: {e}"));
    eprintln!("discover: {} tests in {:.2?}", suite.tests.len(), start.elapsed());
    // What a run's head start stages during the build is the suite's own source tree (and
    // tools); what it stages while the tests are listed is the suite's whole payload.
    let whole = suite.payload();
    let mut sources = whole.clone();
    sources.uploads.retain(|u| matches!(u, Upload::Tree { .. }));
    assert_eq!(sources.uploads.len(), 1, "{:?}", whole.uploads);
    let mut meta = cargo_metadata::MetadataCommand::new();
    meta.no_deps();
    if let Some(m) = &opts.manifest_path {
        meta.manifest_path(m).current_dir(m.parent().unwrap());
    }
    sources.placed_later = vec![meta.exec().unwrap().target_directory.to_string()];
    assert_eq!(told.len(), 2, "{told:?}");
    assert_eq!(
        told[1],
        (whole.clone(), Known::BeforeListing),
        "the payload once, and the one shipped"
    );
    // The tree before the build: only a lock file the build wrote can be missing from it.
    let files = |p: &cargo_shard::discover::Payload| match &p.uploads[..] {
        [Upload::Tree { files, .. }] => files.clone(),
        other => panic!("{other:?}"),
    };
    let (early, known) = &told[0];
    assert_eq!(*known, Known::Sources);
    let mut missing = files(&sources);
    missing.retain(|f| !files(early).contains(f));
    assert!(
        missing.is_empty() || missing == [PathBuf::from("Cargo.lock")],
        "{missing:?}"
    );
    if missing.is_empty() {
        assert_eq!(*early, sources, "told the sources before the build");
        // Staged during the build, the source part is byte for byte the one shards mount.
        let scratch = tempfile::tempdir().unwrap();
        let src = |p: &cargo_shard::discover::Payload| {
            let (parts, _) =
                cargo_shard::run::stage::parts_in(&p.uploads, scratch.path(), false, &p.placed_later)
                    .unwrap();
            parts.into_iter().find(|p| p.name == "src").unwrap().hash
        };
        assert_eq!(src(early), src(&whole));
    }
    suite
}

/// The suite's payload as the local engine uses it: the archive extracted once (under
/// `root/stage`), the source tree where it is; returns each part's place.
fn stage(suite: &Suite, root: &Path) -> BTreeMap<String, String> {
    let (parts, rest) = cargo_shard::run::stage::parts(&suite.uploads, &root.join("stage")).unwrap();
    assert!(rest.is_empty(), "{rest:?}");
    cargo_shard::run::stage::places(&parts, root.to_str().unwrap(), true)
}

fn ctx(root: &Path, attempt: u32, jobs: usize) -> ShardCtx {
    ShardCtx {
        root: root.to_str().unwrap().to_owned(),
        index: 0,
        count: 1,
        run_id: "test-run".into(),
        host: "local".into(),
        attempt,
        test_threads: jobs,
        test_timeout: Some(Duration::from_secs(60)),
        tools: Default::default(),
        places: Default::default(),
        in_container: false,
    }
}

/// Runs `tests` as one shard in a fresh root; returns its results and its exit code.
fn run_shard(suite: &Suite, tests: &[TestId], attempt: u32, jobs: usize) -> (Vec<TestResult>, Collected) {
    run_shard_with(suite, tests, |root| ctx(root, attempt, jobs))
}

fn run_shard_with(
    suite: &Suite,
    tests: &[TestId],
    make_ctx: impl FnOnce(&Path) -> ShardCtx,
) -> (Vec<TestResult>, Collected) {
    let root = tempfile::tempdir().unwrap();
    let places = stage(suite, root.path());
    let ctx = ShardCtx {
        places,
        ..make_ctx(root.path())
    };
    let spec = suite.recipe.prepare(tests, &ctx);
    let argv_bytes: usize = spec.argv.iter().map(|a| a.len()).sum();
    assert!(
        argv_bytes < 4096,
        "the test list must not be on the command line ({argv_bytes} bytes)"
    );
    for (path, contents) in &spec.files {
        let path = root.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
    let start = Instant::now();
    let output = Command::new(&spec.argv[0])
        .args(&spec.argv[1..])
        .current_dir(&spec.workdir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    eprintln!("shard of {} tests ran in {:.2?}", tests.len(), start.elapsed());
    let mut files = BTreeMap::new();
    for path in &spec.collect {
        if let Ok(bytes) = std::fs::read(path) {
            files.insert(path.clone(), bytes);
        }
    }
    let collected = Collected {
        exit_code: output.status.code().map(i64::from),
        output: [output.stdout, output.stderr].concat(),
        files,
        ..Default::default()
    };
    assert!(
        !collected.files.is_empty(),
        "no JUnit collected; shard output:\n{}",
        String::from_utf8_lossy(&collected.output)
    );
    (suite.recipe.results(tests, &collected), collected)
}

fn runnable(tests: &[TestCase]) -> Vec<TestId> {
    tests
        .iter()
        .filter(|t| !t.ignored)
        .map(|t| t.id.clone())
        .collect()
}

/// `cargo nextest list` run directly on the fixture, independent of cargo-shard's code.
fn direct_listing() -> BTreeMap<(String, String), bool> {
    let out = Command::new("cargo")
        // nextest names its profile to the tests it runs; the fixture does not have it.
        .env_remove("NEXTEST_PROFILE")
        .current_dir(fixture())
        .args(["nextest", "list", "--workspace", "--message-format", "json"])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut tests = BTreeMap::new();
    for (binary, suite) in json["rust-suites"].as_object().unwrap() {
        for (name, case) in suite["testcases"].as_object().unwrap() {
            tests.insert((binary.clone(), name.clone()), case["ignored"].as_bool().unwrap());
        }
    }
    tests
}

#[test]
fn lists_the_fixture_like_nextest_does() {
    let out = tempfile::tempdir().unwrap();
    let suite = discover_timed(&fixture_opts(out.path()));
    let ours: BTreeMap<(String, String), bool> = suite
        .tests
        .iter()
        .map(|t| ((t.id.group.clone(), t.id.name.clone()), t.ignored))
        .collect();
    assert_eq!(ours.len(), suite.tests.len(), "duplicate test ids");
    assert_eq!(ours, direct_listing());
    assert!(suite.tests.len() >= 60);

    let has = |group: &str, name: &str| ours.get(&(group.to_owned(), name.to_owned())).copied();
    assert_eq!(has("alpha", "tests::größe"), Some(false));
    assert_eq!(has("alpha", "tests::r#type"), Some(false));
    assert_eq!(has("alpha", "tests::nested::deeper::works"), Some(false));
    assert_eq!(has("alpha::integration", "edge::r#type"), Some(false));
    assert_eq!(has("beta::files", "reads_input_from_source_tree"), Some(false));
    assert_eq!(has("alpha", "tests::ignored_unit"), Some(true));
    assert_eq!(has("alpha", "tests::flaky_passes_on_second_attempt"), Some(true));
    assert_eq!(has("beta::failing", "ignored_slow"), Some(true));
    assert_eq!(suite.recipe.runner(), "nextest");

    let [
        Upload::File { src, dest, .. },
        Upload::Tree {
            src: tree,
            files,
            dest: tree_dest,
        },
    ] = &suite.uploads[..]
    else {
        panic!("unexpected uploads {:?}", suite.uploads);
    };
    assert_eq!(dest, "archive.tar.zst");
    assert_eq!(src, &out.path().join("archive.tar.zst"));
    assert!(src.metadata().unwrap().len() > 0);
    assert_eq!(tree_dest, "src");
    assert_eq!(tree, &fixture());
    assert!(files.contains(&PathBuf::from("beta/tests/data/input.txt")));
    assert!(files.contains(&PathBuf::from("Cargo.toml")));
    assert!(
        files.iter().all(|f| !f.starts_with("target")),
        "target/ must not be uploaded"
    );
}

#[test]
fn two_shards_run_exactly_their_tests_from_the_archive() {
    let out = tempfile::tempdir().unwrap();
    let suite = discover_timed(&fixture_opts(out.path()));
    let all = runnable(&suite.tests);
    let (a, b): (Vec<_>, Vec<_>) = all.iter().cloned().enumerate().partition(|(i, _)| i % 2 == 0);
    let a: Vec<TestId> = a.into_iter().map(|(_, t)| t).collect();
    let b: Vec<TestId> = b.into_iter().map(|(_, t)| t).collect();

    let (ra, rb) = std::thread::scope(|s| {
        let ha = s.spawn(|| run_shard(&suite, &a, 1, 2));
        let hb = s.spawn(|| run_shard(&suite, &b, 1, 2));
        (ha.join().unwrap(), hb.join().unwrap())
    });
    for ((results, collected), tests) in [(ra, &a), (rb, &b)] {
        let ids: Vec<&TestId> = results.iter().map(|r| &r.id).collect();
        let unique: BTreeSet<&TestId> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len(), "one result per test");
        assert_eq!(
            unique,
            tests.iter().collect(),
            "results for exactly the shard's tests"
        );
        // nextest exits non-zero when a test fails; each half holds one failing test or none.
        let failing = results.iter().filter(|r| r.status != TestStatus::Passed).count();
        assert_eq!(collected.exit_code == Some(0), failing == 0);
    }
}

#[test]
fn one_shard_reports_failures_with_their_messages() {
    let out = tempfile::tempdir().unwrap();
    let suite = discover_timed(&fixture_opts(out.path()));
    let tests = runnable(&suite.tests);
    let (results, collected) = run_shard(&suite, &tests, 1, 4);
    assert_eq!(results.len(), tests.len());
    assert_ne!(collected.exit_code, Some(0));

    let by_id: BTreeMap<&TestId, &TestResult> = results.iter().map(|r| (&r.id, r)).collect();
    let failed: BTreeSet<String> = results
        .iter()
        .filter(|r| r.status != TestStatus::Passed)
        .map(|r| r.id.to_string())
        .collect();
    assert_eq!(
        failed,
        BTreeSet::from([
            "alpha::integration fails_with_messy_output".to_owned(),
            "beta::failing assertion_fails".to_owned(),
        ])
    );

    let messy = by_id[&TestId::new("alpha::integration", "fails_with_messy_output")];
    assert_eq!(messy.status, TestStatus::Failed);
    let message = messy.message.as_deref().unwrap();
    assert!(message.contains("messy failure: 1 < 2 &&"), "{message}");
    assert!(!message.contains('\n'), "{message}");
    assert!(messy.stdout.contains("before <tag> &"), "{}", messy.stdout);
    assert!(messy.stdout.contains("after invalid bytes"), "{}", messy.stdout);
    // nextest captures a test's two streams as one while it writes structured events.
    assert!(messy.stdout.contains("]]> and <b>"), "{}", messy.stdout);

    let assertion = by_id[&TestId::new("beta::failing", "assertion_fails")];
    assert!(
        assertion
            .message
            .as_deref()
            .unwrap()
            .contains("deliberate failure"),
        "{:?}",
        assertion.message
    );

    let remapped = by_id[&TestId::new("beta::files", "reads_input_from_source_tree")];
    assert_eq!(remapped.status, TestStatus::Passed, "{remapped:?}");
    let slow = by_id[&TestId::new("alpha::integration", "slow_three_seconds")];
    assert!(slow.duration >= Duration::from_secs(3), "{slow:?}");
}

#[test]
fn selected_ignored_tests_run_and_see_the_attempt() {
    let out = tempfile::tempdir().unwrap();
    let opts = NextestOptions {
        filtersets: vec!["test(flaky)".into()],
        run_ignored: RunIgnored::All,
        ..fixture_opts(out.path())
    };
    let suite = discover_timed(&opts);
    let flaky = TestId::new("alpha", "tests::flaky_passes_on_second_attempt");
    assert_eq!(
        suite.tests,
        vec![TestCase {
            id: flaky.clone(),
            ignored: false
        }]
    );

    let (first, _) = run_shard(&suite, std::slice::from_ref(&flaky), 1, 1);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].status, TestStatus::Failed);
    assert!(
        first[0].message.as_deref().unwrap().contains("attempt 1 fails"),
        "{:?}",
        first[0]
    );
    let (second, collected) = run_shard(&suite, std::slice::from_ref(&flaky), 2, 1);
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].status, TestStatus::Passed);
    assert_eq!(collected.exit_code, Some(0));
}

#[test]
fn a_test_past_its_timeout_is_stopped_and_failed() {
    let out = tempfile::tempdir().unwrap();
    let opts = NextestOptions {
        filtersets: vec!["test(slow_two_seconds)".into()],
        ..fixture_opts(out.path())
    };
    let suite = discover_timed(&opts);
    let tests = runnable(&suite.tests);
    assert_eq!(tests.len(), 2, "{tests:?}");
    let (results, _) = run_shard_with(&suite, &tests, |root| ShardCtx {
        test_timeout: Some(Duration::from_millis(500)),
        ..ctx(root, 1, 2)
    });
    assert_eq!(results.len(), 2);
    for r in &results {
        assert_eq!(r.status, TestStatus::Failed, "{r:?}");
        assert_eq!(r.message.as_deref(), Some("test timeout"));
        assert!(r.duration < Duration::from_millis(1500), "{r:?}");
    }
}

#[test]
fn run_ignored_only_lists_just_the_ignored_tests_as_runnable() {
    let out = tempfile::tempdir().unwrap();
    let opts = NextestOptions {
        run_ignored: RunIgnored::Only,
        ..fixture_opts(out.path())
    };
    let suite = discover_timed(&opts);
    let ids: BTreeSet<String> = suite.tests.iter().map(|t| t.id.to_string()).collect();
    assert_eq!(
        ids,
        BTreeSet::from([
            "alpha tests::flaky_passes_on_second_attempt".to_owned(),
            "alpha tests::ignored_unit".to_owned(),
            "alpha::integration edge::ignored_integration".to_owned(),
            "beta::failing ignored_slow".to_owned(),
        ])
    );
    assert!(suite.tests.iter().all(|t| !t.ignored));
}

#[test]
fn filtersets_drop_excluded_tests_even_when_ignored() {
    let out = tempfile::tempdir().unwrap();
    let opts = NextestOptions {
        filtersets: vec!["package(beta)".into()],
        ..fixture_opts(out.path())
    };
    let suite = discover_timed(&opts);
    assert!(
        suite.tests.iter().all(|t| t.id.group.starts_with("beta")),
        "{:?}",
        suite.tests
    );
    let ignored: Vec<&TestCase> = suite.tests.iter().filter(|t| t.ignored).collect();
    assert_eq!(ignored.len(), 1, "{ignored:?}");
    assert_eq!(ignored[0].id, TestId::new("beta::failing", "ignored_slow"));
}

#[test]
fn a_bad_filterset_is_one_line_naming_the_problem() {
    let out = tempfile::tempdir().unwrap();
    let opts = NextestOptions {
        filtersets: vec!["test(unclosed".into()],
        ..fixture_opts(out.path())
    };
    let text = discover(&opts, &mut |_, _| {})
        .expect_err("an unclosed filterset")
        .to_string();
    assert!(!text.contains('\n'), "{text}");
    assert!(text.contains("cargo nextest list"), "{text}");
    assert!(text.contains("expected close parenthesis"), "{text}");
}

/// Writes a small crate to `dir`: `tests/many.rs` holds `n` tests made by one macro.
fn write_crate(dir: &Path, body: &str) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"many\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(dir.join("src/lib.rs"), "").unwrap();
    std::fs::write(dir.join("tests/many.rs"), body).unwrap();
}

#[test]
fn build_failure_is_one_line_with_cargos_error() {
    let dir = tempfile::tempdir().unwrap();
    write_crate(
        dir.path(),
        "#[test]\nfn broken() { let x: u32 = \"not a number\"; }\n",
    );
    let err = discover(
        &NextestOptions {
            manifest_path: Some(dir.path().join("Cargo.toml")),
            ..Default::default()
        },
        &mut |_, _| {},
    )
    .expect_err("a crate that does not compile");
    let text = err.to_string();
    eprintln!("{text}");
    assert!(matches!(err, NextestError::Failed { .. }), "{text}");
    assert!(!text.contains('\n'), "{text}");
    assert!(text.contains("cargo nextest archive"), "{text}");
    assert!(text.contains("error"), "{text}");
}

#[test]
fn ten_thousand_tests_run_in_one_shard() {
    const N: usize = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let mut body = String::from("macro_rules! many { ($($m:ident { $($t:ident)* })*) => {\n");
    body.push_str("    $(mod $m { $(#[test] fn $t() {})* })*\n} }\nmany! {\n");
    for m in 0..N / 100 {
        body.push_str(&format!("m{m:03} {{"));
        for t in 0..100 {
            body.push_str(&format!(" t{t:02}"));
        }
        body.push_str(" }\n");
    }
    body.push_str("}\n");
    write_crate(dir.path(), &body);

    let suite = discover_timed(&NextestOptions {
        manifest_path: Some(dir.path().join("Cargo.toml")),
        out_dir: Some(dir.path().join("out")),
        ..Default::default()
    });
    assert_eq!(suite.tests.len(), N);
    let tests = runnable(&suite.tests);
    let (results, collected) = run_shard(&suite, &tests, 1, 2);
    assert_eq!(results.len(), N);
    assert!(results.iter().all(|r| r.status == TestStatus::Passed));
    assert_eq!(collected.exit_code, Some(0));
}

/// Test names no Rust function can have, from a `harness = false` binary speaking libtest's
/// list protocol: the shard's filter must select exactly the chosen ones.
#[test]
fn names_with_special_characters_select_exactly() {
    const NAMES: &[&str] = &[
        "paren (a, b)",
        "pipe | and & amp",
        "back\\slash/slash",
        "  spaced  ",
        "größe ✓",
        "quote \"x\" 'y'",
        "hash #x",
        "=equals",
        "/regexish/",
        "~tilde",
        "glob*?[x]",
        "not(this)",
        "paren (a, b) longer",
    ];
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = NAMES.iter().map(|n| format!("{n:?}")).collect();
    let main = format!(
        r#"const NAMES: &[&str] = &[{}];
fn main() {{
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {{
        if !args.iter().any(|a| a == "--ignored") {{
            for n in NAMES {{ println!("{{n}}: test"); }}
        }}
        return;
    }}
    let name = args.iter().find(|a| !a.starts_with("--")).expect("a test name");
    assert!(args.iter().any(|a| a == "--exact"));
    assert!(NAMES.contains(&name.as_str()), "unknown test {{name:?}}");
    println!("ran {{name}}");
}}
"#,
        names.join(", ")
    );
    write_crate(dir.path(), &main);
    let manifest = dir.path().join("Cargo.toml");
    let mut toml = std::fs::read_to_string(&manifest).unwrap();
    toml.push_str("\n[[test]]\nname = \"many\"\nharness = false\n");
    std::fs::write(&manifest, toml).unwrap();

    let suite = discover_timed(&NextestOptions {
        manifest_path: Some(manifest),
        ..Default::default()
    });
    let listed: BTreeSet<&str> = suite.tests.iter().map(|t| t.id.name.as_str()).collect();
    assert_eq!(listed, NAMES.iter().copied().collect());
    assert!(
        suite.tests.iter().all(|t| t.id.group == "many::many"),
        "{:?}",
        suite.tests
    );

    // Leave out the last name, a prefix-match trap for the first one.
    let chosen: Vec<TestId> = runnable(&suite.tests)
        .into_iter()
        .filter(|t| t.name != "paren (a, b) longer")
        .collect();
    let (results, collected) = run_shard(&suite, &chosen, 1, 2);
    let got: BTreeSet<&TestId> = results.iter().map(|r| &r.id).collect();
    assert_eq!(got, chosen.iter().collect());
    assert!(
        results.iter().all(|r| r.status == TestStatus::Passed),
        "{results:?}"
    );
    let junit = String::from_utf8_lossy(collected.files.values().next().unwrap()).into_owned();
    assert_eq!(
        junit.matches("<testcase ").count(),
        chosen.len(),
        "nothing else ran:\n{junit}"
    );
}

/// Bytes and paths of the suite's source-tree upload.
fn source_payload(suite: &Suite) -> (u64, Vec<PathBuf>) {
    let size = cargo_shard::discover::files::tree_size(&suite.uploads);
    let files = suite
        .uploads
        .iter()
        .filter_map(|u| match u {
            Upload::Tree { files, .. } => Some(files.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    (size.bytes, files)
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() { dir_bytes(&e.path()) } else { m.len() }
        })
        .sum()
}

/// A crate in a git work tree without a `.gitignore` (git lists its whole build as untracked
/// files), with another workspace's build nested in it: the payload holds only sources, and
/// the shard still runs from it.
#[test]
fn a_tree_without_gitignore_does_not_upload_its_target_dir() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_crate(
        root,
        "#[test]\nfn reads_its_tree() {\n    let d = std::env::var(\"CARGO_MANIFEST_DIR\").unwrap();\n    assert!(std::path::Path::new(&d).join(\"src/lib.rs\").exists());\n}\n",
    );
    // Built by another workspace: cargo tagged it; git sees it as untracked too.
    let nested = root.join("fixtures/other/target");
    std::fs::create_dir_all(nested.join("debug")).unwrap();
    std::fs::write(
        nested.join("CACHEDIR.TAG"),
        "Signature: 8a477f597d28d172789f06886806bc55\n# cargo\n",
    )
    .unwrap();
    std::fs::write(nested.join("debug/libother.rlib"), vec![7u8; 1 << 20]).unwrap();
    std::fs::write(root.join("fixtures/other/data.txt"), "kept").unwrap();
    let git = Command::new("git")
        .arg("init")
        .arg("-q")
        .current_dir(root)
        .status()
        .unwrap();
    assert!(git.success());

    let suite = discover_timed(&NextestOptions {
        manifest_path: Some(root.join("Cargo.toml")),
        ..Default::default()
    });
    let target = dir_bytes(&root.join("target"));
    let (bytes, files) = source_payload(&suite);
    eprintln!("target/ holds {target} bytes; the source payload {bytes} bytes in {files:?}");
    assert_eq!(
        files,
        [
            "Cargo.lock",
            "Cargo.toml",
            "fixtures/other/data.txt",
            "src/lib.rs",
            "tests/many.rs"
        ]
        .map(PathBuf::from)
    );
    assert!(bytes < 10_000, "{bytes}");
    assert!(target > 1_000_000, "the build is really there: {target}");
    let tests = runnable(&suite.tests);
    let (results, _) = run_shard(&suite, &tests, 1, 1);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].status, TestStatus::Passed, "{:?}", results[0]);
}

/// `build.target-dir` puts the build inside the tree under another name, outside git: the
/// walk leaves it out all the same.
#[test]
fn a_configured_target_dir_inside_the_tree_is_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_crate(root, "#[test]\nfn one() {}\n");
    std::fs::create_dir_all(root.join(".cargo")).unwrap();
    std::fs::write(
        root.join(".cargo/config.toml"),
        "[build]\ntarget-dir = \"build-out\"\n",
    )
    .unwrap();
    let suite = discover_timed(&NextestOptions {
        manifest_path: Some(root.join("Cargo.toml")),
        ..Default::default()
    });
    assert!(dir_bytes(&root.join("build-out")) > 1_000_000);
    let (_, files) = source_payload(&suite);
    assert!(!files.iter().any(|f| f.starts_with("build-out")), "{files:?}");
    assert!(files.contains(&PathBuf::from(".cargo/config.toml")), "{files:?}");
}
