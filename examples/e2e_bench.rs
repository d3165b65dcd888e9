//! End to end against one box: `cargo shard` over the test bed's engines against the plain
//! runner on this machine with the same total slots, on fixtures/rust-sample, a generated
//! suite with skewed durations and fixtures/go-sample; runs 1..N share one history file
//! (`--fresh-history`: each run has its own, so every run is a first run).
//! Prints one Markdown table (BENCHMARKS.md, "End to end"); progress goes to stderr.
//!
//! `cargo run --release --example e2e_bench -- [--testbed DIR] [--runs 3] [--tests 600] [--seed 7] [--variants steal,no-steal,early-slots,per-slot,baseline] [--baseline BIN] [--warm-cache] [--fresh-history]`
//! (`--testbed` defaults to `$CARGO_SHARD_TESTBED`, else `target/testbed`; it needs
//! `hosts.toml` and `hosts-go.toml` there). `--only rust-sample,generated,go` picks suites;
//! `--bin PATH` uses that cargo-shard instead of building the release binary.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

struct Args {
    testbed: PathBuf,
    runs: usize,
    tests: usize,
    seed: u64,
    only: Vec<String>,
    /// A cargo-shard binary to use instead of building the release one.
    bin: Option<PathBuf>,
    /// cargo-shard variants, each with its own history and row: `steal` (the default
    /// behaviour), `no-steal` (`--no-steal`), `early-slots` (the hosts file with
    /// `early_slots = true`), `per-slot` (the hosts file with `share_container = false`: a
    /// container per slot, the default before containers were shared) and `baseline` (the
    /// `--baseline` binary, default behaviour).
    variants: Vec<String>,
    /// An earlier cargo-shard binary, for the `baseline` variant: run interleaved with the
    /// others, so both see the same machine.
    baseline: Option<PathBuf>,
    /// Fill the hosts' caches with one untimed run first, so run 1 measures a plan made
    /// without history, not the first upload as well.
    warm_cache: bool,
    /// Each run plans without history: every run is a first run (how much first runs vary).
    fresh_history: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        testbed: std::env::var_os("CARGO_SHARD_TESTBED")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("target/testbed")),
        runs: 3,
        tests: 600,
        seed: 7,
        only: vec!["rust-sample".into(), "generated".into(), "go".into()],
        bin: None,
        variants: vec!["steal".into()],
        baseline: None,
        warm_cache: false,
        fresh_history: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--warm-cache" {
            a.warm_cache = true;
            continue;
        }
        if flag == "--fresh-history" {
            a.fresh_history = true;
            continue;
        }
        let value = it.next().unwrap_or_else(|| die(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--testbed" => a.testbed = PathBuf::from(value),
            "--runs" => a.runs = value.parse().unwrap_or_else(|_| die("--runs: a number")),
            "--tests" => a.tests = value.parse().unwrap_or_else(|_| die("--tests: a number")),
            "--seed" => a.seed = value.parse().unwrap_or_else(|_| die("--seed: a number")),
            "--bin" => a.bin = Some(PathBuf::from(value)),
            "--baseline" => a.baseline = Some(PathBuf::from(value)),
            "--only" => a.only = value.split(',').map(String::from).collect(),
            "--variants" => a.variants = value.split(',').map(String::from).collect(),
            _ => die(&format!("unknown argument {flag}")),
        }
    }
    a
}

fn die(msg: &str) -> ! {
    eprintln!("e2e_bench: {msg}");
    std::process::exit(2)
}

/// One timed run of either side.
#[derive(Default, Clone)]
struct Sample {
    wall: f64,
    /// Tests that ran to a verdict (passed, failed, flaky, error): skipped ones did not run.
    ran: usize,
    failed: usize,
    /// cargo shard only: start to `run-started` (connect, build, archive, list, plan).
    build: f64,
    /// Per-shard medians of the shard-finished phases.
    phases: BTreeMap<&'static str, f64>,
    shards: usize,
    /// Payload bytes the hosts received (from `run-finished.staged`).
    bytes: u64,
    /// Seconds staging took on all hosts at once (`run-finished.stage`).
    stage: f64,
}

fn main() {
    let args = parse_args();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shard_bin = args.bin.clone().unwrap_or_else(|| build_release(&repo));
    let shard_bin = std::path::absolute(&shard_bin).unwrap_or(shard_bin);
    let hosts = args.testbed.join("hosts.toml");
    let hosts_go = args.testbed.join("hosts-go.toml");
    for f in [&hosts, &hosts_go] {
        if !f.is_file() {
            die(&format!(
                "{} missing: bring the test bed up (scripts/testbed up)",
                f.display()
            ));
        }
    }
    let slots = total_slots(&hosts);
    let work = tempfile::tempdir().expect("temp dir");
    let mut rows = Vec::new();
    let mut load = vec![uptime()];
    for suite in &args.only {
        let (label, kind, dir) = match suite.as_str() {
            "rust-sample" => (
                "fixtures/rust-sample",
                Kind::Nextest,
                repo.join("fixtures/rust-sample"),
            ),
            "generated" => {
                let dir = work.path().join("generated");
                generate_suite(&dir, args.tests, args.seed);
                ("generated", Kind::Nextest, dir)
            }
            "go" => ("fixtures/go-sample", Kind::Go, repo.join("fixtures/go-sample")),
            other => die(&format!("unknown suite {other}")),
        };
        let label = if suite == "generated" {
            format!("generated ({} tests, seed {})", args.tests, args.seed)
        } else {
            label.to_string()
        };
        let hosts_file = if kind == Kind::Go {
            hosts_go.clone()
        } else {
            hosts.clone()
        };
        eprintln!("== {label}: warming the build");
        kind.warm(&dir);
        if args.warm_cache {
            eprintln!("== {label}: filling the hosts' caches (untimed)");
            let scratch = work.path().join(format!("{suite}-warm"));
            let (history, out) = (scratch.join("history.json"), scratch.join("out"));
            cargo_shard(&shard_bin, kind, &dir, (&hosts_file, &history, &out), &[]);
        }
        let mut one_box = Vec::new();
        let mut sharded: Vec<Vec<Sample>> = vec![Vec::new(); args.variants.len()];
        for run in 1..=args.runs {
            eprintln!("== {label}: one box, run {run}");
            one_box.push(kind.one_box(&dir, slots));
            for (variant, samples) in args.variants.iter().zip(&mut sharded) {
                eprintln!("== {label}: cargo shard ({variant}), run {run}");
                let history = match args.fresh_history {
                    true => work.path().join(format!("{suite}-{variant}-history-{run}.json")),
                    false => work.path().join(format!("{suite}-{variant}-history.json")),
                };
                let out = work.path().join(format!("{suite}-{variant}-out-{run}"));
                let (bin, hosts_file, extra): (&Path, PathBuf, &[&str]) = match variant.as_str() {
                    "steal" => (&shard_bin, hosts_file.clone(), &[]),
                    "no-steal" => (&shard_bin, hosts_file.clone(), &["--no-steal"]),
                    "early-slots" => (&shard_bin, early_slots(&hosts_file, work.path()), &[]),
                    "per-slot" => (&shard_bin, per_slot(&hosts_file, work.path()), &[]),
                    "baseline" => (
                        args.baseline
                            .as_deref()
                            .unwrap_or_else(|| die("the baseline variant needs --baseline BIN")),
                        hosts_file.clone(),
                        &[],
                    ),
                    other => die(&format!("unknown variant {other}")),
                };
                samples.push(cargo_shard(bin, kind, &dir, (&hosts_file, &history, &out), extra));
            }
        }
        load.push(uptime());
        for (variant, samples) in args.variants.iter().zip(sharded) {
            let label = if args.variants.len() > 1 {
                format!("{label} ({variant})")
            } else {
                label.clone()
            };
            rows.push((label, kind, one_box.clone(), samples));
        }
    }
    print_report(&args, slots, &rows, &load);
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Nextest,
    Go,
}

impl Kind {
    fn warm(self, dir: &Path) {
        let status = match self {
            Kind::Nextest => Command::new("cargo")
                .args(["nextest", "run", "--workspace", "--no-run"])
                .current_dir(dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status(),
            Kind::Go => Command::new("go")
                .args(["test", "-count=1", "-run", "^$", "./..."])
                .current_dir(dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status(),
        };
        if !status.is_ok_and(|s| s.success()) {
            die(&format!("building {} failed", dir.display()));
        }
    }

    fn one_box(self, dir: &Path, slots: usize) -> Sample {
        let mut cmd = match self {
            Kind::Nextest => {
                let mut c = Command::new("cargo");
                c.args([
                    "nextest",
                    "run",
                    "--workspace",
                    "--no-fail-fast",
                    "--color",
                    "never",
                ])
                .arg("-j")
                .arg(slots.to_string());
                c
            }
            Kind::Go => {
                let mut c = Command::new("go");
                c.args(["test", "-count=1", "-json", "-p"])
                    .arg(slots.to_string())
                    .arg("./...");
                c
            }
        };
        cmd.current_dir(dir).env_remove("NEXTEST_PROFILE");
        let t0 = Instant::now();
        let out = cmd.output().unwrap_or_else(|e| die(&format!("{cmd:?}: {e}")));
        let wall = t0.elapsed().as_secs_f64();
        let (ran, failed) = match self {
            Kind::Nextest => nextest_counts(&String::from_utf8_lossy(&out.stderr)),
            Kind::Go => go_counts(&String::from_utf8_lossy(&out.stdout)),
        };
        Sample {
            wall,
            ran,
            failed,
            ..Default::default()
        }
    }

    fn shard_args(self, dir: &Path) -> Vec<String> {
        match self {
            Kind::Nextest => vec![
                "--manifest-path".into(),
                dir.join("Cargo.toml").display().to_string(),
                "--workspace".into(),
            ],
            Kind::Go => vec!["go".into(), "--dir".into(), dir.display().to_string()],
        }
    }
}

/// `Summary [ 2.5s] 70 tests run: 66 passed, 4 failed, 4 skipped`: (run, failed).
fn nextest_counts(stderr: &str) -> (usize, usize) {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with("Summary"))
        .unwrap_or_else(|| die(&format!("no nextest summary in:\n{stderr}")));
    let number_before = |word: &str| -> usize {
        line.split(',')
            .flat_map(|part| part.split(':'))
            .find_map(|p| {
                let mut w = p.split_whitespace();
                let n = w.next()?.parse().ok()?;
                w.next().filter(|x| x.starts_with(word)).map(|_| n)
            })
            .unwrap_or(0)
    };
    let ran = line
        .split("tests run")
        .next()
        .and_then(|s| s.split_whitespace().last())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    (ran, number_before("failed"))
}

/// Top-level tests with a final `pass`/`fail` in `go test -json` output: (ran, failed).
fn go_counts(stdout: &str) -> (usize, usize) {
    let mut ran = 0;
    let mut failed = 0;
    for line in stdout.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(test), Some(action)) = (v["Test"].as_str(), v["Action"].as_str()) else {
            continue;
        };
        if test.contains('/') {
            continue;
        }
        match action {
            "pass" => ran += 1,
            "fail" => {
                ran += 1;
                failed += 1;
            }
            _ => {}
        }
    }
    (ran, failed)
}

/// A copy of `hosts` (in `dir`) whose hosts open their slot containers while the tests are
/// listed, although the test bed's engines run on this machine.
fn early_slots(hosts: &Path, dir: &Path) -> PathBuf {
    rewritten_hosts(hosts, dir, "early-slots", |text| {
        text.replacen("[defaults]\n", "[defaults]\nearly_slots = true\n", 1)
    })
}

/// A copy of `hosts` (in `dir`) where each slot keeps a container of its own
/// (`share_container = false`): the same total slots, twice the containers.
fn per_slot(hosts: &Path, dir: &Path) -> PathBuf {
    rewritten_hosts(hosts, dir, "per-slot", |text| {
        text.replacen("[defaults]\n", "[defaults]\nshare_container = false\n", 1)
    })
}

/// `hosts` edited by `edit`, written to `dir` as `PREFIX-NAME`; an edit that changes nothing
/// (a hosts file not written by `scripts/testbed`) stops the bench rather than measure the
/// unchanged file under the variant's name.
fn rewritten_hosts(hosts: &Path, dir: &Path, prefix: &str, edit: impl FnOnce(&str) -> String) -> PathBuf {
    let text = std::fs::read_to_string(hosts).unwrap_or_else(|e| die(&format!("{}: {e}", hosts.display())));
    let edited = edit(&text);
    if edited == text {
        die(&format!(
            "{}: the {prefix} variant found nothing to change",
            hosts.display()
        ));
    }
    let name = hosts
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let path = dir.join(format!("{prefix}-{name}"));
    std::fs::write(&path, edited).unwrap_or_else(|e| die(&format!("{}: {e}", path.display())));
    path
}

/// One `cargo shard` run with JSON events (phases are per-shard medians) over `hosts`, its history in `history` and its output in `out`.
fn cargo_shard(
    bin: &Path,
    kind: Kind,
    dir: &Path,
    (hosts, history, out): (&Path, &Path, &Path),
    extra: &[&str],
) -> Sample {
    let mut cmd = Command::new(bin);
    cmd.args(kind.shard_args(dir))
        .args(extra)
        .arg("--hosts")
        .arg(hosts)
        .arg("--history")
        .arg(history)
        .arg("--out-dir")
        .arg(out)
        .args(["--message-format", "json"])
        .current_dir(dir)
        .env_remove("NEXTEST_PROFILE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let t0 = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| die(&format!("{}: {e}", bin.display())));
    let stderr = child.stderr.take().expect("piped");
    let errs = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let mut sample = Sample::default();
    let mut phases: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    let mut finished = None;
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let Ok(line) = line else { break };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        match v["type"].as_str() {
            Some("run-started") => sample.build = t0.elapsed().as_secs_f64(),
            Some("shard-finished") => {
                sample.shards += 1;
                let p = &v["phases"];
                let f = |k: &str| p[k].as_f64().unwrap_or(0.0);
                for (name, value) in [
                    ("create+start", f("create") + f("start")),
                    ("upload", f("upload")),
                    ("run", f("run")),
                    ("collect+remove", f("collect") + f("remove")),
                ] {
                    phases.entry(name).or_default().push(value);
                }
            }
            Some("run-finished") => finished = Some(v),
            _ => {}
        }
    }
    let status = child.wait().expect("wait");
    sample.wall = t0.elapsed().as_secs_f64();
    let errs = errs.join().unwrap_or_default();
    let Some(fin) = finished else {
        die(&format!(
            "cargo shard ended ({status}) without run-finished:\n{errs}"
        ));
    };
    let count = |k: &str| fin[k].as_u64().unwrap_or(0) as usize;
    sample.ran = count("passed") + count("failed") + count("flaky") + count("errors");
    sample.failed = count("failed") + count("errors");
    sample.phases = phases.into_iter().map(|(k, v)| (k, median(v))).collect();
    // What the hosts received, as the run counted it (staging: only parts not yet cached).
    sample.bytes = fin["staged"]
        .as_array()
        .map(|hosts| hosts.iter().filter_map(|h| h["uploaded_bytes"].as_u64()).sum())
        .unwrap_or(0);
    sample.stage = fin["stage"].as_f64().unwrap_or(0.0);
    sample
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A crate of `n` tests in 6 binaries that sleep for seeded, log-normal durations (median
/// 25 ms, σ = 1.1), plus a heavy tail: one test in 100 takes 0.8–2 s.
fn generate_suite(dir: &Path, n: usize, seed: u64) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"generated\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(dir.join("src/lib.rs"), "").unwrap();
    let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let binaries = 6;
    let mut bodies = vec![String::from("use std::{thread::sleep, time::Duration};\n"); binaries];
    for i in 0..n {
        let ms = if i % 100 == 37 {
            800.0 + rng.unit() * 1200.0
        } else {
            (25.0 * (1.1 * rng.normal()).exp()).min(600.0)
        };
        bodies[i % binaries].push_str(&format!(
            "#[test]\nfn t{i:04}() {{ sleep(Duration::from_millis({})); }}\n",
            ms.round() as u64
        ));
    }
    for (b, body) in bodies.iter().enumerate() {
        std::fs::write(dir.join(format!("tests/part{b}.rs")), body).unwrap();
    }
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// In (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

fn total_slots(hosts: &Path) -> usize {
    cargo_shard::config::HostsConfig::load(hosts)
        .unwrap_or_else(|e| die(&e.to_string()))
        .total_slots()
}

/// `cargo build --release --bin cargo-shard` (quick when fresh); the binary's path.
fn build_release(repo: &Path) -> PathBuf {
    let ok = Command::new("cargo")
        .args(["build", "--release", "--bin", "cargo-shard"])
        .current_dir(repo)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        die("cargo build --release failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target"));
    target.join("release/cargo-shard")
}

fn uptime() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

type Row = (String, Kind, Vec<Sample>, Vec<Sample>);

fn print_report(args: &Args, slots: usize, rows: &[Row], load: &[String]) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "Machine: {cpus} CPUs; load average (1/5/15 min) before: {}, after each suite: {}. \
         One box runs with `-j {slots}` / `-p {slots}`, the same total slots as the test bed's \
         three engines. Times in seconds; ratios are cargo shard's wall over the median one-box \
         wall of the same suite (measured interleaved, run for run).\n",
        load[0],
        load[1..].join(" → ")
    );
    println!(
        "| suite | runner | run | wall | ratio | tests ran (failed) | build+list | stage | upload | create+start | run | collect+remove | shards | bytes uploaded |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (label, kind, one_box, sharded) in rows {
        let base = median(one_box.iter().map(|s| s.wall).collect());
        let plain = match kind {
            Kind::Nextest => format!("`cargo nextest run -j {slots}`"),
            Kind::Go => format!("`go test -p {slots}`"),
        };
        let walls: Vec<String> = one_box.iter().map(|s| format!("{:.2}", s.wall)).collect();
        let b = &one_box[0];
        println!(
            "| {label} | {plain} | median of {} ({}) | {base:.2} | 1.00 | {} ({}) | | | | | | | | |",
            one_box.len(),
            walls.join(", "),
            b.ran,
            b.failed
        );
        for (i, s) in sharded.iter().enumerate() {
            let p = |k: &str| s.phases.get(k).map_or("-".into(), |v| format!("{v:.2}"));
            println!(
                "| {label} | `cargo shard` | {} | {:.2} | **{:.2}** | {} ({}) | {:.2} | {:.2} | {} | {} | {} | {} | {} | {} |",
                i + 1,
                s.wall,
                s.wall / base,
                s.ran,
                s.failed,
                s.build,
                s.stage,
                p("upload"),
                p("create+start"),
                p("run"),
                p("collect+remove"),
                s.shards,
                cargo_shard::discover::files::human_bytes(s.bytes)
            );
        }
        let same = one_box.iter().chain(sharded).all(|s| s.ran == b.ran);
        if !same {
            println!(
                "| {label} | **test counts differ between runs** | | | | {} | | | | | | | | |",
                one_box
                    .iter()
                    .chain(sharded)
                    .map(|s| s.ran.to_string())
                    .collect::<Vec<_>>()
                    .join("/")
            );
        }
    }
    let history = match args.fresh_history {
        true => "Every run has a history of its own: each plans from estimates".to_string(),
        false => format!(
            "Runs 1–{} share one history file (run 1 plans from estimates)",
            args.runs
        ),
    };
    println!(
        "\n{history}. Phase columns are \
         medians over the run's shards (from its `shard-finished` events); build+list is the \
         time to the `run-started` event (connect, build, archive, list, plan); stage is the \
         run's staging on all hosts at once (`run-finished.stage`). Bytes uploaded = payload \
         bytes the hosts received, summed over hosts (`run-finished.staged`): parts already in \
         a host's cache cost nothing."
    );
}
