//! STRESS (about a minute on the shared test bed): the lost tail of issue 13 item 7. Hundreds
//! of short shards over every endpoint kind (e1 unix, e2 tcp, e3 ssh, e4 TLS), each printing a
//! known sequence on stdout and stderr and exiting at once; every byte printed must come back,
//! in order per stream, in the captured output, the live line tap and the log file. Then
//! nextest shards of `fixtures/rust-sample` over the same four engines: each shard's log must
//! end with nextest's last words on both streams, and every test must have its result.

use crate::common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use cargo_shard::config::{HostsConfig, RUN_LABEL};
use cargo_shard::engine::lines::LineSink;
use cargo_shard::engine::{CONTAINER_ROOT, ContainerSpec, Engine};
use cargo_shard::shard::{ShardSpec, Stream};
use tokio_util::sync::CancellationToken;

/// Shards per engine in the exec part: 4 × 52 = 208.
const PER_ENGINE: usize = 52;
/// Shards each engine runs at once.
const AT_ONCE: usize = 4;

fn hosts() -> Vec<cargo_shard::config::Host> {
    let mut hosts = common::testbed_hosts().hosts;
    let tls = HostsConfig::load(&common::testbed_file("hosts-tls.toml")).expect("hosts-tls.toml");
    hosts.extend(tls.hosts);
    assert_eq!(hosts.len(), 4, "e1, e2, e3 and e4");
    hosts
}

/// Shard `i`'s script and the lines it prints on (stdout, stderr). Sizes vary from one short
/// line to lines wider than an attach frame (below the line tap's 64 KiB cut); the last line
/// has no newline on either stream, and some shards sleep a little so that exits race the
/// output's setup differently.
fn script(i: usize) -> (String, Vec<String>, Vec<String>) {
    let wide = [0, 10, 2000, 40_000][(i / 4) % 4];
    let lines = [1, 3, 40, if wide > 100 { 20 } else { 400 }][i % 4];
    let nap = if i.is_multiple_of(3) { "usleep 2000; " } else { "" };
    let script = format!(
        "{nap}pad=$(head -c {wide} /dev/zero | tr '\\0' x); k=0; \
         while [ $k -lt {lines} ]; do echo \"o-{i}-$k-$pad\"; echo \"e-{i}-$k\" >&2; k=$((k + 1)); done; \
         printf 'o-{i}-end'; printf 'e-{i}-end' >&2"
    );
    let pad = "x".repeat(wide);
    let mut out: Vec<String> = (0..lines).map(|k| format!("o-{i}-{k}-{pad}")).collect();
    out.push(format!("o-{i}-end"));
    let mut err: Vec<String> = (0..lines).map(|k| format!("e-{i}-{k}")).collect();
    err.push(format!("e-{i}-end"));
    (script, out, err)
}

type Seen = Arc<Mutex<Vec<(Stream, String)>>>;

fn job(image: &str, run: &str, i: usize, log: std::path::PathBuf, seen: Seen) -> ContainerSpec {
    let (script, _, _) = script(i);
    let extras = cargo_shard::engine::environment::ShardExtras {
        on_line: LineSink::new(move |stream, line| seen.lock().unwrap().push((stream, line.to_string()))),
        ..Default::default()
    };
    ContainerSpec {
        name: common::unique("tail"),
        image: image.to_string(),
        network: "none".to_string(),
        labels: BTreeMap::from([(RUN_LABEL.to_string(), run.to_string())]),
        payload: Arc::new(Vec::new()),
        root: CONTAINER_ROOT.to_string(),
        spec: ShardSpec {
            argv: vec!["sh".into(), "-c".into(), script],
            workdir: CONTAINER_ROOT.to_string(),
            ..Default::default()
        },
        log_path: log,
        keep: false,
        extras,
    }
}

/// Runs shard `i` on `engine` and returns what went wrong with its output, if anything.
async fn check_one(
    engine: Arc<Engine>,
    image: String,
    run: String,
    i: usize,
    dir: std::path::PathBuf,
) -> Option<String> {
    let host = engine.host().to_string();
    let seen: Seen = Arc::default();
    let log = dir.join(format!("{host}-{i}.log"));
    let shard = job(&image, &run, i, log.clone(), seen.clone());
    let got = match engine.run_shard(shard, CancellationToken::new()).await {
        Ok(r) => r,
        Err(e) => return Some(format!("{host} shard {i}: {e}")),
    };
    let (_, out, err) = script(i);
    let seen = seen.lock().unwrap().clone();
    let lines = |s: Stream| {
        seen.iter()
            .filter(|(w, _)| *w == s)
            .map(|(_, l)| l.clone())
            .collect::<Vec<_>>()
    };
    let captured = String::from_utf8_lossy(&got.collected.output).into_owned();
    let expected_len: usize = out.iter().chain(&err).map(|l| l.len() + 1).sum::<usize>() - 2;
    let logged = std::fs::read(&log).unwrap_or_default();
    let problem = if got.collected.exit_code != Some(0) {
        format!("exit {:?}", got.collected.exit_code)
    } else if lines(Stream::Out) != out {
        format!(
            "stdout lines differ: {} of {} seen, last {:?}",
            lines(Stream::Out).len(),
            out.len(),
            lines(Stream::Out).last().map(|l| &l[..l.len().min(40)])
        )
    } else if lines(Stream::Err) != err {
        format!(
            "stderr lines differ: {:?} against {} expected",
            lines(Stream::Err).last(),
            err.len()
        )
    } else if captured.len() != expected_len {
        format!("captured {} bytes, printed {expected_len}", captured.len())
    } else if logged != got.collected.output {
        format!(
            "log holds {} bytes, captured {}",
            logged.len(),
            got.collected.output.len()
        )
    } else {
        return None;
    };
    Some(format!("{host} shard {i}: {problem}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_byte_of_hundreds_of_short_shards_is_captured_on_every_endpoint() {
    let run = common::unique("tail-run");
    let dir = tempfile::tempdir().unwrap();
    let mut tasks = Vec::new();
    for h in hosts() {
        let engine = Arc::new(Engine::connect(&h).await.unwrap_or_else(|e| panic!("{e}")));
        let (image, run, dir) = (h.image.clone(), run.clone(), dir.path().to_path_buf());
        // One task per engine slot, each taking every AT_ONCE-th shard.
        for slot in 0..AT_ONCE {
            let (engine, image, run, dir) = (engine.clone(), image.clone(), run.clone(), dir.clone());
            tasks.push(tokio::spawn(async move {
                let mut problems = Vec::new();
                for i in (slot..PER_ENGINE).step_by(AT_ONCE) {
                    problems
                        .extend(check_one(engine.clone(), image.clone(), run.clone(), i, dir.clone()).await);
                }
                problems
            }));
        }
    }
    let mut problems = Vec::new();
    for t in tasks {
        problems.extend(t.await.unwrap());
    }
    for h in hosts() {
        let left = common::leftovers_on(&h, &run).await;
        assert!(left.is_empty(), "left behind: {left:?}");
    }
    assert!(
        problems.is_empty(),
        "{} of {} shards lost output:\n{}",
        problems.len(),
        4 * PER_ENGINE,
        problems.join("\n")
    );
}

/// nextest shards over the four engines: every shard's log holds nextest's last words on
/// stdout (a suite's end event) and stderr (its summary), and every test has its result.
#[test]
fn nextest_shards_keep_their_last_words_on_every_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts.toml");
    let tls = std::fs::read_to_string(common::testbed_file("hosts-tls.toml")).unwrap();
    let e4 = &tls[tls.find("[[host]]").expect("a host in hosts-tls.toml")..];
    let all = std::fs::read_to_string(common::hosts_file()).unwrap();
    std::fs::write(&hosts, format!("{all}\n{e4}")).unwrap();
    let out = dir.path().join("out");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cargo-shard"))
        .env_remove("NEXTEST_PROFILE")
        .args(["shard", "--hosts"])
        .arg(&hosts)
        .arg("--manifest-path")
        .arg(common::fixture("rust-sample/Cargo.toml"))
        .arg("--out-dir")
        .arg(&out)
        .args([
            "--message-format",
            "json",
            "--shards",
            "32",
            "-E",
            "not (test(slow) | test(sleep))",
        ])
        .output()
        .expect("run cargo-shard");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(100),
        "the sample fails on purpose:\n{stderr}"
    );
    common::assert_nothing_left(&common::run_id_of(&stdout));
    let finished: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "shard-finished")
        .collect();
    // Many execs on each host: batches quicker than estimated are merged, so fewer than 32.
    assert!(finished.len() >= 16, "{stdout}");
    let hosts_used: std::collections::BTreeSet<&str> =
        finished.iter().filter_map(|v| v["host"].as_str()).collect();
    assert_eq!(hosts_used.len(), 4, "{hosts_used:?}");
    for shard in &finished {
        assert_eq!(shard["end"]["kind"], "exited", "{shard}");
        let log = out.join("logs").join(format!("{}.log", shard["shard"]));
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.contains(r#"{"type":"suite","event":"#),
            "{}: no suite end:\n{text}",
            log.display()
        );
        assert!(
            text.contains("     Summary ["),
            "{}: no summary:\n{text}",
            log.display()
        );
    }
    let statuses = common::junit_statuses(&out.join("junit.xml"));
    assert!(statuses.len() >= 40, "{statuses:?}");
    let errors: Vec<_> = statuses.iter().filter(|(_, s)| **s == "error").collect();
    assert!(errors.is_empty(), "{errors:?}");
}
