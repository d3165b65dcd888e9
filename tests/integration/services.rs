//! Integration-test environments on the real test bed: a key-value service beside every shard
//! on its own network (two shards on one host never share one), a pre-step's artifact in
//! every shard, `--artifacts` brought back, secrets only where named and masked everywhere,
//! and nothing labelled with the run left on any engine — also when a service never gets
//! ready or the shard is cancelled.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cargo_shard::config::RUN_LABEL;
use cargo_shard::config::job::ReadyCheck;
use cargo_shard::engine::environment::{Secrets, ServiceSpec, ShardExtras};
use cargo_shard::engine::{CONTAINER_ROOT, ContainerSpec, Engine, EngineError};
use cargo_shard::shard::ShardSpec;
use common::{cargo_shard, host, hosts_file, unique};
use tokio_util::sync::CancellationToken;

fn fixture() -> PathBuf {
    common::fixture("services")
}

/// Containers, networks and volumes labelled with `run` on engine `name`.
async fn leftovers(name: &str, run: &str) -> Vec<String> {
    common::leftovers_on(&host(name), run).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_steps_artifacts_and_secrets_across_the_three_engines() {
    let secret = unique("s3cr3t-token");
    let out = tempfile::tempdir().unwrap();
    let fx = fixture();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cargo-shard"))
        .env("SERVICES_FIXTURE_TOKEN", &secret)
        .args(["exec", "--hosts"])
        .arg(hosts_file())
        .arg("--job")
        .arg(fx.join("shard.toml"))
        .arg("--dir")
        .arg(&fx)
        .arg("--filters-file")
        .arg(fx.join("keys.txt"))
        .args([
            "--key-env",
            "KEY",
            "--results",
            "junit-*.xml",
            "--artifacts",
            "out/result.txt",
        ])
        .args(["--message-format", "json", "--out-dir"])
        .arg(out.path())
        .args(["--", "sh", "check.sh"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let run = common::run_id_of(&stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );

    // Every key passed, i.e. each shard read back its own index from its own service.
    let junit = std::fs::read_to_string(out.path().join("junit.xml")).unwrap();
    for k in 1..=6 {
        assert!(junit.contains(&format!("name=\"k{k}\"")), "{junit}");
    }
    assert!(!junit.contains("<failure"), "{junit}");

    // --artifacts: one result per shard, from all three engines, two shards on one host.
    let mut hosts: BTreeMap<String, usize> = BTreeMap::new();
    for shard in 0..6 {
        let p = out.path().join(format!("artifacts/{shard}/result.txt"));
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let fields: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(fields[1], shard.to_string(), "{text}");
        *hosts.entry(fields[2].to_string()).or_default() += 1;
    }
    assert_eq!(
        hosts.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from(["e1".into(), "e2".into(), "e3".into()]),
        "{hosts:?}"
    );
    assert!(hosts.values().any(|n| *n >= 2), "{hosts:?}");

    // Pre- and post-steps ran once, with the run's identity.
    let pre = std::fs::read_to_string(out.path().join("pre-ran.txt")).unwrap();
    assert_eq!(pre.trim(), format!("pre {run}"));
    let post = std::fs::read_to_string(out.path().join("post-ran.txt")).unwrap();
    assert_eq!(post.trim(), format!("post {run} exit 0"));

    // The shards printed the secret; every output shows it masked, none shows it.
    let log = std::fs::read_to_string(out.path().join("logs/0.log")).unwrap();
    assert!(log.contains("token is [redacted]"), "{log}");
    assert!(junit.contains("token=[redacted]"), "{junit}");
    let mut files = Vec::new();
    common::files_under(out.path(), &mut files);
    assert!(files.len() > 10, "{files:?}");
    for f in &files {
        let data = std::fs::read(f).unwrap();
        assert!(
            !data.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the secret is in {}",
            f.display()
        );
    }
    assert!(!stdout.contains(&secret), "the secret is in the JSON events");
    assert!(!stderr.contains(&secret), "the secret is on stderr");

    for e in ["e1", "e2", "e3"] {
        assert_eq!(leftovers(e, &run).await, Vec::<String>::new());
    }
}

/// A job file in a temp dir with one service, plus the keys file.
fn one_service_job(dir: &Path, service: &str) -> (PathBuf, PathBuf) {
    let job = dir.join("shard.toml");
    std::fs::write(&job, format!("[job]\n[[job.service]]\n{service}\n")).unwrap();
    let keys = dir.join("keys.txt");
    std::fs::write(&keys, "only\n").unwrap();
    (job, keys)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_never_ready_fails_the_shard_with_its_reason_and_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let (job, keys) = one_service_job(
        dir.path(),
        "name = \"db\"\ncommand = [\"sleep\", \"60\"]\nready_cmd = [\"false\"]\nready_timeout = \"1s\"",
    );
    let out = dir.path().join("out");
    let (code, stdout, stderr) = cargo_shard(&[
        "exec",
        "--hosts",
        hosts_file().to_str().unwrap(),
        "--only-host",
        "e2",
        "--job",
        job.to_str().unwrap(),
        "--dir",
        dir.path().to_str().unwrap(),
        "--filters-file",
        keys.to_str().unwrap(),
        "--key-env",
        "KEY",
        "--shard-retries",
        "1",
        "--message-format",
        "json",
        "--out-dir",
        out.to_str().unwrap(),
        "--",
        "true",
    ]);
    let run = common::run_id_of(&stdout);
    assert_ne!(code, 0, "{stdout}\n{stderr}");
    let attempts: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "shard-finished")
        .collect();
    assert_eq!(attempts.len(), 2, "retried once: {stdout}");
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(
        junit.contains("service db not ready after 1s: ready_cmd never exited 0 (last check exited 1)"),
        "{junit}"
    );
    assert_eq!(leftovers("e2", &run).await, Vec::<String>::new());
}

#[test]
fn services_on_the_local_backend_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let (job, keys) = one_service_job(dir.path(), "name = \"db\"\ncommand = [\"sleep\", \"60\"]");
    let hosts = dir.path().join("hosts.toml");
    std::fs::write(&hosts, "[[host]]\nname = \"here\"\ndocker_host = \"local://\"\n").unwrap();
    let (code, _, stderr) = cargo_shard(&[
        "exec",
        "--hosts",
        hosts.to_str().unwrap(),
        "--job",
        job.to_str().unwrap(),
        "--dir",
        dir.path().to_str().unwrap(),
        "--filters-file",
        keys.to_str().unwrap(),
        "--key-env",
        "KEY",
        "--out-dir",
        dir.path().join("out").to_str().unwrap(),
        "--",
        "true",
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(
            "the job declares services (db) but host here runs local processes: services need a Docker engine"
        ),
        "{stderr}"
    );
}

#[test]
fn a_bad_job_file_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let (job, keys) = one_service_job(dir.path(), "name = \"db\"\nready_tcp = 99999");
    let (code, _, stderr) = cargo_shard(&[
        "exec",
        "--hosts",
        hosts_file().to_str().unwrap(),
        "--job",
        job.to_str().unwrap(),
        "--filters-file",
        keys.to_str().unwrap(),
        "--key-env",
        "KEY",
        "--dir",
        dir.path().to_str().unwrap(),
        "--",
        "true",
    ]);
    assert_eq!(code, 1, "{stderr}");
    let expected = format!("error: {}:4:13: `ready_tcp` 99999 is not a port", job.display());
    assert!(stderr.contains(&expected), "{stderr}");
}

/// A shard job with one kv service, straight on the engine (no runner, so no safety-net gc).
fn engine_job(run: &str, argv: &[&str], ready: ReadyCheck, log_dir: &Path) -> ContainerSpec {
    let image = host("e1").image;
    ContainerSpec {
        name: unique("svc-engine"),
        image: image.clone(),
        network: "none".to_string(),
        labels: BTreeMap::from([(RUN_LABEL.to_string(), run.to_string())]),
        payload: Arc::new(Vec::new()),
        root: CONTAINER_ROOT.to_string(),
        spec: ShardSpec {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: vec![("CARGO_SHARD_INDEX".into(), "7".into())],
            workdir: CONTAINER_ROOT.to_string(),
            files: Vec::new(),
            collect: Vec::new(),
        },
        log_path: log_dir.join(format!("{}.log", unique("svc"))),
        keep: false,
        extras: ShardExtras {
            services: vec![ServiceSpec {
                name: "echo".into(),
                image,
                env: vec![("GREETING".into(), "hello-from-echo".into())],
                command: ["sh", "-c", "exec nc -ll -p 7000 -e sh -c 'echo $GREETING'"]
                    .map(String::from)
                    .to_vec(),
                ready,
                ready_timeout: Duration::from_secs(2),
                files: Default::default(),
            }],
            secrets: Secrets::new(["hello-from".to_string()]),
            ..Default::default()
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_removes_services_and_network_after_every_outcome() {
    let engine = Engine::connect(&host("e3")).await.unwrap();
    let logs = tempfile::tempdir().unwrap();

    // Success: the shard reaches the service by name; its greeting is masked in the output.
    let run = unique("svc-ok");
    // The memory limit shows in the container's cgroup (v1 or v2).
    let script = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; \
        nc echo 7000 </dev/null";
    let mut job = engine_job(&run, &["sh", "-c", script], ReadyCheck::Tcp(7000), logs.path());
    job.extras.memory = Some(64 << 20);
    job.extras.nano_cpus = Some(500_000_000);
    let done = engine.run_shard(job, CancellationToken::new()).await.unwrap();
    assert_eq!(done.collected.exit_code, Some(0));
    assert_eq!(
        String::from_utf8_lossy(&done.collected.output).trim(),
        format!("{}\n[redacted]-echo", 64 << 20)
    );
    assert_eq!(leftovers("e3", &run).await, Vec::<String>::new());

    // Never ready: a clear shard error, and nothing left.
    let run = unique("svc-never");
    let job = engine_job(&run, &["true"], ReadyCheck::Tcp(7999), logs.path());
    match engine.run_shard(job, CancellationToken::new()).await {
        Err(EngineError::Shard { reason, .. }) => assert!(
            reason.starts_with("service echo not ready after 2s: port 7999 not accepting connections"),
            "{reason}"
        ),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a never-ready service must fail the shard"),
    };
    assert_eq!(leftovers("e3", &run).await, Vec::<String>::new());

    // Cancelled while the shard runs: killed, and everything removed.
    let run = unique("svc-cancel");
    let job = engine_job(&run, &["sleep", "60"], ReadyCheck::Tcp(7000), logs.path());
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        c.cancel();
    });
    let r = engine.run_shard(job, cancel).await;
    assert!(matches!(r, Err(EngineError::Cancelled)), "{:?}", r.err());
    assert_eq!(leftovers("e3", &run).await, Vec::<String>::new());
}

/// `--keep-containers` lists what the engine reports it made for a shard: that must be exactly
/// what the run left on the engine, with services and without.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_shard_leaves_exactly_what_the_engine_reports() {
    let engine = Engine::connect(&host("e1")).await.unwrap();
    let logs = tempfile::tempdir().unwrap();
    for with_services in [true, false] {
        let run = unique("svc-keep");
        let mut job = engine_job(&run, &["true"], ReadyCheck::Tcp(7000), logs.path());
        job.keep = true;
        if !with_services {
            job.extras.services.clear();
        }
        let names: Vec<String> = job.extras.services.iter().map(|s| s.name.clone()).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let done = engine.run_shard(job, CancellationToken::new()).await.unwrap();
        assert_eq!(done.collected.exit_code, Some(0));
        let made = engine.shard_objects(&done.container, &names);
        assert_eq!(made.container, done.container);
        assert_eq!(made.services.len(), names.len(), "{made:?}");
        assert_eq!(made.network.is_some(), with_services, "{made:?}");
        let mut reported: Vec<String> = std::iter::once(&made.container)
            .chain(&made.services)
            .map(|c| format!("e1 container {c}"))
            .chain(made.network.iter().map(|n| format!("e1 network {n}")))
            .collect();
        reported.sort();
        // Listing what the run left also removes it.
        let mut left = leftovers("e1", &run).await;
        left.sort();
        assert_eq!(left, reported);
    }
}

/// `cargo shard exec` on a local:// host with a job file; returns (code, stdout, stderr, out dir).
fn run_local_job(
    dir: &Path,
    job: &str,
    command: &[&str],
    env: &[(&str, &str)],
) -> (i32, String, String, PathBuf) {
    let job_file = dir.join("shard.toml");
    std::fs::write(&job_file, job).unwrap();
    std::fs::write(dir.join("keys.txt"), "only\n").unwrap();
    let hosts = dir.join("hosts.toml");
    std::fs::write(&hosts, "[[host]]\nname = \"here\"\ndocker_host = \"local://\"\n").unwrap();
    let out = dir.join("out");
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cargo-shard"))
        .envs(env.iter().copied())
        .arg("exec")
        .arg("--hosts")
        .arg(&hosts)
        .arg("--job")
        .arg(&job_file)
        .arg("--dir")
        .arg(&src)
        .arg("--filters-file")
        .arg(dir.join("keys.txt"))
        .args(["--key-env", "KEY", "--no-progress", "--out-dir"])
        .arg(&out)
        .arg("--")
        .args(command)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        out,
    )
}

#[test]
fn local_shards_get_their_secrets_masked_and_post_steps_see_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let secret = unique("local-secret");
    let job = r#"
[job]
secrets = ["file", "var"]
[[job.secret]]
name = "file"
from_env = "LOCAL_FIXTURE_SECRET"
[[job.secret]]
name = "var"
from_env = "LOCAL_FIXTURE_SECRET"
as_env = "VAR_SECRET"
[[job.post_step]]
name = "after"
command = ["sh", "-c", 'echo "exit $CARGO_SHARD_EXIT" > "$CARGO_SHARD_OUT/post.txt"']
"#;
    let script = "cat \"$CARGO_SHARD_SECRETS/file\"; echo; echo \"var=$VAR_SECRET\"; exit 1";
    let (code, stdout, stderr, out) = run_local_job(
        dir.path(),
        job,
        &["sh", "-c", script],
        &[("LOCAL_FIXTURE_SECRET", &secret)],
    );
    assert_eq!(code, 100, "{stdout}\n{stderr}");
    let log = std::fs::read_to_string(out.join("logs/0.log")).unwrap();
    assert_eq!(log, "[redacted]\nvar=[redacted]\n");
    assert_eq!(
        std::fs::read_to_string(out.join("post.txt")).unwrap(),
        "exit 100\n"
    );
    let mut files = Vec::new();
    common::files_under(&out, &mut files);
    for f in &files {
        let data = std::fs::read(f).unwrap();
        assert!(
            !data.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the secret is in {}",
            f.display()
        );
    }
    assert!(!stdout.contains(&secret) && !stderr.contains(&secret));
}

#[test]
fn a_failing_pre_step_stops_the_run_before_any_shard() {
    let dir = tempfile::tempdir().unwrap();
    let job = r#"
[job]
[[job.secret]]
name = "s"
from_env = "PRE_STEP_SECRET"
as_env = "S"
[[job.pre_step]]
name = "gen"
command = ["sh", "-c", 'echo "cannot use $S"; exit 3']
secrets = ["s"]
"#;
    let (code, _, stderr, out) = run_local_job(
        dir.path(),
        job,
        &["sh", "-c", "echo shard ran > ran.txt"],
        &[("PRE_STEP_SECRET", "pre-step-secret-value")],
    );
    assert_eq!(code, 101, "{stderr}");
    assert!(
        stderr.contains("error: pre-step gen failed (exit status: 3): cannot use [redacted]; log: "),
        "{stderr}"
    );
    assert!(
        !out.join("logs/0.log").exists(),
        "no shard may run after a failed pre-step"
    );
    let log = std::fs::read_to_string(out.join("logs/pre-gen.log")).unwrap();
    assert_eq!(log, "cannot use [redacted]\n");
}
