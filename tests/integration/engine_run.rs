//! One shard end to end on real engines (e1 over unix, e2 over tcp, e3 through the ssh
//! tunnel) and as a local process: payload in, output streamed, exit code, files collected,
//! phases recorded, and nothing left behind — also when cancelled.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bollard::errors::Error as BollardError;
use cargo_shard::config::{HostsConfig, RUN_LABEL};
use cargo_shard::engine::{CONTAINER_ROOT, ContainerSpec, Engine, EngineError};
use cargo_shard::shard::ShardSpec;
use common::{host, unique};
use tokio_util::sync::CancellationToken;

/// A payload tar: `data/in.txt` (entries relative to the shard root, as the runner builds it).
fn payload() -> Arc<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let data = b"payload says hi\n";
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "data/in.txt", &data[..]).unwrap();
    Arc::new(b.into_inner().unwrap())
}

/// A shard that reads the payload and a generated file, writes to both streams, leaves a
/// result file and exits 3. (`sh -c` only here, to make output; cargo-shard never uses a shell.)
fn job(root: &str, image: &str, run: &str, log_dir: &std::path::Path) -> ContainerSpec {
    let script = "cat data/in.txt; cat gen/args.txt; echo to-stderr >&2; mkdir -p out/sub; \
        echo '<ok/>' > out/result.xml; echo deep > out/sub/x; exit 3";
    ContainerSpec {
        name: unique("engine-run"),
        image: image.to_string(),
        network: "none".to_string(),
        labels: BTreeMap::from([(RUN_LABEL.to_string(), run.to_string())]),
        payload: payload(),
        root: root.to_string(),
        spec: ShardSpec {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            env: vec![("SHARD_VAR".into(), "v".into())],
            workdir: root.to_string(),
            files: vec![("gen/args.txt".into(), b"generated file\n".to_vec())],
            collect: vec![format!("{root}/out"), format!("{root}/never-written")],
        },
        log_path: log_dir.join("shard.log"),
        keep: false,
        extras: Default::default(),
    }
}

async fn container_exists(engine: &Engine, name: &str) -> bool {
    let Engine::Docker(d) = engine else {
        panic!("not docker")
    };
    match d.client().inspect_container(name, None).await {
        Ok(_) => true,
        Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => false,
        Err(e) => panic!("inspect {name}: {e}"),
    }
}

async fn runs_a_shard_on(host_name: &str) {
    runs_a_shard_on_host(host(host_name)).await;
}

async fn runs_a_shard_on_host(h: cargo_shard::config::Host) {
    let engine = Engine::connect(&h).await.expect("connect");
    let root = engine.make_root().unwrap();
    assert_eq!(root, CONTAINER_ROOT);
    let logs = tempfile::tempdir().unwrap();
    let job = job(&root, &h.image, &unique("run"), logs.path());
    let name = job.name.clone();
    let run = engine
        .run_shard(job, CancellationToken::new())
        .await
        .expect("run shard");
    let c = &run.collected;
    assert_eq!(c.exit_code, Some(3));
    let out = String::from_utf8_lossy(&c.output);
    for want in ["payload says hi", "generated file", "to-stderr"] {
        assert!(out.contains(want), "output lacks {want:?}: {out}");
    }
    assert_eq!(std::fs::read(logs.path().join("shard.log")).unwrap(), c.output);
    let keys: Vec<&String> = c.files.keys().collect();
    assert_eq!(
        keys,
        ["/cargo-shard/out/result.xml", "/cargo-shard/out/sub/x"],
        "collected {keys:?}"
    );
    assert_eq!(c.files["/cargo-shard/out/result.xml"], b"<ok/>\n");
    assert!(run.phases.run > Duration::ZERO && run.phases.upload > Duration::ZERO);
    assert!(run.phases.create > Duration::ZERO && run.phases.remove > Duration::ZERO);
    assert!(run.finished > run.started);
    assert!(
        !container_exists(&engine, &name).await,
        "container {name} left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_on_unix_engine() {
    runs_a_shard_on("e1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_on_tcp_engine() {
    runs_a_shard_on("e2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_on_ssh_engine() {
    runs_a_shard_on("e3").await;
}

/// e4 from the test bed's `hosts-tls.toml` (mutual TLS, `--tlsverify`), its TLS settings
/// replaced by `tls`.
fn tls_host(tls: &str) -> cargo_shard::config::Host {
    let path = common::testbed_file("hosts-tls.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let (head, _) = text.split_once("cert_path").unwrap();
    let text = format!("{head}{tls}\nslots = 2\n");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hosts.toml");
    std::fs::write(&file, text).unwrap();
    HostsConfig::load(&file).unwrap().hosts.remove(0)
}

fn tls_dir() -> std::path::PathBuf {
    common::testbed_dir().join("tls")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_on_tls_engine() {
    let client = tls_dir().join("client");
    runs_a_shard_on_host(tls_host(&format!("cert_path = {:?}\ntls_verify = true", client))).await;
}

/// `tls_verify = false` (Docker's `--tls` without `--tlsverify`): the engine's certificate is
/// not checked, so a CA that did not sign it does not matter; the client certificate still is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_without_verification_ignores_the_ca() {
    let client = tls_dir().join("client");
    let wrong_ca = tls_dir().join("rogue-ca.pem");
    let files = format!(
        "ca = {:?}\ncert = {:?}\nkey = {:?}",
        wrong_ca,
        client.join("cert.pem"),
        client.join("key.pem")
    );
    let verified = Engine::connect(&tls_host(&format!("{files}\ntls_verify = true"))).await;
    match verified {
        Err(e) => assert!(e.to_string().contains("TLS error"), "{e}"),
        Ok(_) => panic!("a CA that did not sign the engine's certificate was accepted"),
    }
    runs_a_shard_on_host(tls_host(&format!("{files}\ntls_verify = false"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_certificate_the_engine_does_not_trust_is_refused() {
    for verify in [true, false] {
        let rogue = tls_dir().join("rogue");
        let h = tls_host(&format!("cert_path = {rogue:?}\ntls_verify = {verify}"));
        match Engine::connect(&h).await {
            Err(e) => assert!(e.to_string().contains("TLS error"), "verify={verify}: {e}"),
            Ok(_) => panic!("verify={verify}: a rogue client certificate was accepted"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_kills_and_removes_the_container() {
    let h = host("e1");
    let engine = Arc::new(Engine::connect(&h).await.expect("connect"));
    let logs = tempfile::tempdir().unwrap();
    let mut job = job(CONTAINER_ROOT, &h.image, &unique("run"), logs.path());
    job.spec.argv = vec!["sleep".into(), "600".into()];
    let name = job.name.clone();
    let cancel = CancellationToken::new();
    let task = {
        let (engine, cancel) = (engine.clone(), cancel.clone());
        tokio::spawn(async move { engine.run_shard(job, cancel).await })
    };
    // Cancel once it is really running, so the kill path (not just create) is exercised.
    let Engine::Docker(d) = engine.as_ref() else {
        unreachable!()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let running = d
            .client()
            .inspect_container(&name, None)
            .await
            .ok()
            .and_then(|i| i.state)
            .and_then(|s| s.running)
            .unwrap_or(false);
        if running {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "container never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cancel.cancel();
    let result = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(result, Err(EngineError::Cancelled)), "{result:?}");
    assert!(
        !container_exists(&engine, &name).await,
        "container {name} left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_image_is_reported_and_nothing_left() {
    let h = host("e1");
    let engine = Engine::connect(&h).await.expect("connect");
    let logs = tempfile::tempdir().unwrap();
    let job = job(
        CONTAINER_ROOT,
        "cargo-shard/no-such-image:latest",
        &unique("run"),
        logs.path(),
    );
    let name = job.name.clone();
    let result = engine.run_shard(job, CancellationToken::new()).await;
    assert!(
        matches!(&result, Err(EngineError::ImageMissing { host, image }) if host == "e1" && image == "cargo-shard/no-such-image:latest"),
        "{result:?}"
    );
    assert!(!container_exists(&engine, &name).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_reports_versions_and_image() {
    let h = host("e3");
    let engine = Engine::connect(&h).await.expect("connect");
    let info = engine.info(&h.image).await.unwrap();
    assert_eq!(info.api_version, "1.41");
    assert!(info.version.starts_with("20.10"), "{info:?}");
    assert!(info.cpus >= 1 && info.memory_bytes > 0 && info.image_present);
    assert!(
        !engine
            .info("cargo-shard/no-such-image:latest")
            .await
            .unwrap()
            .image_present
    );
}

fn local_engine_host() -> cargo_shard::config::Host {
    HostsConfig::local_processes().hosts.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_as_local_process() {
    let engine = Engine::connect(&local_engine_host()).await.unwrap();
    let root = engine.make_root().unwrap();
    assert!(std::path::Path::new(&root).is_dir());
    let logs = tempfile::tempdir().unwrap();
    let mut job = job(&root, "unused", &unique("run"), logs.path());
    job.spec.argv[2].push_str("; echo never");
    // The environment reaches the process, on top of ours.
    job.spec.argv[2] = format!("echo var=$SHARD_VAR home=${{HOME:+set}}; {}", job.spec.argv[2]);
    let run = engine
        .run_shard(job, CancellationToken::new())
        .await
        .expect("run shard");
    let c = &run.collected;
    assert_eq!(c.exit_code, Some(3));
    let out = String::from_utf8_lossy(&c.output);
    for want in ["var=v home=set", "payload says hi", "generated file", "to-stderr"] {
        assert!(out.contains(want), "output lacks {want:?}: {out}");
    }
    assert!(!out.contains("never"));
    assert_eq!(std::fs::read(logs.path().join("shard.log")).unwrap(), c.output);
    let keys: Vec<String> = c.files.keys().cloned().collect();
    assert_eq!(
        keys,
        [format!("{root}/out/result.xml"), format!("{root}/out/sub/x")]
    );
    assert!(
        !std::path::Path::new(&root).exists(),
        "shard root {root} left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_cancel_kills_the_whole_process_group() {
    let engine = Engine::connect(&local_engine_host()).await.unwrap();
    let root = engine.make_root().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let mut job = job(&root, "unused", &unique("run"), logs.path());
    // A grandchild in the background must die with its parent.
    job.spec.argv[2] = "sleep 600 & echo $! > bg.pid; wait".into();
    job.keep = true;
    let cancel = CancellationToken::new();
    let task = {
        let cancel = cancel.clone();
        tokio::spawn(async move { engine.run_shard(job, cancel).await })
    };
    let pid_file = std::path::Path::new(&root).join("bg.pid");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let pid: i32 = loop {
        if let Some(p) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            break p;
        }
        assert!(std::time::Instant::now() < deadline, "shard never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    cancel.cancel();
    let result = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(result, Err(EngineError::Cancelled)), "{result:?}");
    // Gone, or a zombie waiting for its new parent to reap it: either way not running.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.chars().next().unwrap_or('?')));
        if matches!(state, None | Some('Z') | Some('X')) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "background sleep {pid} survived: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::remove_dir_all(&root).unwrap();
}

/// A real cut: the shard talks to e2 through a TCP relay this test owns, and the relay is
/// stopped while the shard runs. The engine is then lost, not the shard failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_connection_is_engine_lost() {
    use tokio::net::{TcpListener, TcpStream};
    let e2 = host("e2");
    let cargo_shard::config::Endpoint::Tcp {
        host: e2_ip,
        port: e2_port,
    } = e2.endpoint.clone()
    else {
        panic!("e2 is expected to be a tcp:// engine")
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_port = listener.local_addr().unwrap().port();
    let relay = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let (mut inbound, _) = listener.accept().await.unwrap();
            let target = format!("{e2_ip}:{e2_port}");
            conns.spawn(async move {
                let mut outbound = TcpStream::connect(target).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    let text = format!(
        "[[host]]\nname = \"relay\"\ndocker_host = \"tcp://127.0.0.1:{relay_port}\"\nimage = \"{}\"\n",
        e2.image
    );
    let relayed = HostsConfig::parse(&text, "relay.toml", std::path::Path::new("/"))
        .unwrap()
        .hosts
        .remove(0);
    let engine = Arc::new(Engine::connect(&relayed).await.expect("connect through relay"));
    let direct = Engine::connect(&e2).await.expect("connect e2");
    let logs = tempfile::tempdir().unwrap();
    let mut job = job(CONTAINER_ROOT, &e2.image, &unique("run"), logs.path());
    job.spec.argv = vec!["sleep".into(), "600".into()];
    let name = job.name.clone();
    let task = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.run_shard(job, CancellationToken::new()).await })
    };
    let Engine::Docker(d) = &direct else {
        unreachable!()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !d
        .client()
        .inspect_container(&name, None)
        .await
        .ok()
        .and_then(|i| i.state?.running)
        .unwrap_or(false)
    {
        assert!(std::time::Instant::now() < deadline, "container never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    relay.abort(); // drops the listener and every relayed connection
    let result = tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&result, Err(EngineError::Lost { host, .. }) if host == "relay"),
        "{result:?}"
    );
    // The engine itself is fine: clean up what the lost shard could not.
    let opts = bollard::query_parameters::RemoveContainerOptions {
        force: true,
        ..Default::default()
    };
    d.client().remove_container(&name, Some(opts)).await.unwrap();
}

/// A generated script run by a path relative to the workdir, with an argument a shell would
/// split: the exec array reaches the program as is, on Docker and locally alike.
async fn relative_program(engine: &Engine, image: &str) {
    let root = engine.make_root().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let mut job = job(&root, image, &unique("run"), logs.path());
    job.spec.files.push((
        "gen/tool.sh".into(),
        b"#!/bin/sh\necho \"argc=$# first=[$1]\"\n".to_vec(),
    ));
    job.spec.argv = vec!["gen/tool.sh".into(), "a b;$(x)'\"*".into(), "2".into()];
    job.spec.workdir = root.clone();
    let run = engine
        .run_shard(job, CancellationToken::new())
        .await
        .expect("run shard");
    assert_eq!(run.collected.exit_code, Some(0));
    assert_eq!(
        String::from_utf8_lossy(&run.collected.output),
        "argc=2 first=[a b;$(x)'\"*]\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relative_program_on_docker() {
    let h = host("e1");
    relative_program(&Engine::connect(&h).await.unwrap(), &h.image).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relative_program_locally() {
    relative_program(&Engine::connect(&local_engine_host()).await.unwrap(), "unused").await;
}

/// Several shards at once through one ssh tunnel, each with a payload large enough to fill
/// the ssh window many times over: every byte arrives, every container goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_shards_through_ssh() {
    let h = host("e3");
    let engine = Arc::new(Engine::connect(&h).await.expect("connect"));
    let logs = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
    let sum: u64 = big.iter().map(|&b| b as u64).sum();
    let mut tasks = Vec::new();
    for i in 0..4 {
        let mut job = job(
            CONTAINER_ROOT,
            &h.image,
            &unique("run"),
            &logs.path().join(i.to_string()),
        );
        job.spec.files.push(("big.bin".into(), big.clone()));
        // busybox: the byte count proves the whole file crossed the tunnel.
        job.spec.argv = vec!["wc".into(), "-c".into(), "big.bin".into()];
        job.spec.collect = vec!["/cargo-shard/big.bin".into()];
        let (engine, name) = (engine.clone(), job.name.clone());
        tasks.push((
            name,
            tokio::spawn(async move { engine.run_shard(job, CancellationToken::new()).await }),
        ));
    }
    for (name, t) in tasks {
        let run = t.await.unwrap().expect("run shard");
        assert_eq!(run.collected.exit_code, Some(0));
        let out = String::from_utf8_lossy(&run.collected.output);
        assert_eq!(out.trim(), format!("{} big.bin", big.len()));
        let back = &run.collected.files["/cargo-shard/big.bin"];
        assert_eq!(back.iter().map(|&b| b as u64).sum::<u64>(), sum);
        assert!(!container_exists(&engine, &name).await);
    }
}

/// Containers that print and exit at once, many at a time on every transport: the last line
/// must never be lost (following the log file on Docker 20.10 lost it under load).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_of_short_lived_shards_is_complete() {
    for name in ["e1", "e2", "e3"] {
        let h = host(name);
        let engine = Arc::new(Engine::connect(&h).await.expect("connect"));
        let logs = tempfile::tempdir().unwrap();
        let mut tasks = Vec::new();
        for i in 0..12 {
            let mut job = job(
                CONTAINER_ROOT,
                &h.image,
                &unique("run"),
                &logs.path().join(i.to_string()),
            );
            // Varied lifetimes so some exit while their output is being set up.
            let script = format!("echo first; usleep {}; echo last-{i}", (i % 4) * 3000);
            job.spec.argv = vec!["sh".into(), "-c".into(), script];
            job.spec.collect.clear();
            let engine = engine.clone();
            tasks.push((
                i,
                tokio::spawn(async move { engine.run_shard(job, CancellationToken::new()).await }),
            ));
        }
        for (i, t) in tasks {
            let run = t.await.unwrap().expect("run shard");
            let out = String::from_utf8_lossy(&run.collected.output);
            assert_eq!(out, format!("first\nlast-{i}\n"), "{name} shard {i}");
        }
    }
}

/// A container that outgrows its memory limit: the engine reports the OOM kill with what it
/// collected instead of failing the shard, so a runner's report of a killed test survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_memory_is_reported_with_what_was_collected() {
    let h = host("e1");
    let engine = Engine::connect(&h).await.expect("connect");
    let logs = tempfile::tempdir().unwrap();
    let mut outcomes = Vec::new();
    for limit in [Some(16 * 1024 * 1024), None] {
        let mut job = job(CONTAINER_ROOT, &h.image, &unique("run"), logs.path());
        // busybox dd holds one 64 MiB block in memory.
        job.spec.argv = [
            "sh",
            "-c",
            "echo before > out/seen; dd if=/dev/zero of=/dev/null bs=64M count=1",
        ]
        .map(String::from)
        .to_vec();
        job.spec.files.push(("out/.keep".into(), Vec::new()));
        job.extras.memory = limit;
        let run = engine
            .run_shard(job, CancellationToken::new())
            .await
            .expect("run shard");
        assert_eq!(
            run.collected
                .files
                .get("/cargo-shard/out/seen")
                .map(Vec::as_slice),
            Some(&b"before\n"[..]),
            "{limit:?}"
        );
        outcomes.push((run.collected.oom_killed, run.collected.exit_code));
    }
    assert_eq!(outcomes, [(true, Some(137)), (false, Some(0))]);
}

/// A batch for a slot container: `script` (through `sh`, to make output) in `root`, with
/// `gen/args.txt` holding `text`.
fn batch(
    root: &str,
    image: &str,
    run: &str,
    log_dir: &std::path::Path,
    script: &str,
    text: &str,
) -> ContainerSpec {
    ContainerSpec {
        payload: Arc::new(Vec::new()),
        spec: ShardSpec {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            env: Vec::new(),
            workdir: root.to_string(),
            files: vec![("gen/args.txt".into(), text.as_bytes().to_vec())],
            collect: Vec::new(),
        },
        ..job(root, image, run, log_dir)
    }
}

/// Batch files placed when a slot container opens save those batches their upload, but only
/// for the exact files, and once: a batch whose files differ at the same root gets its own,
/// never what was placed before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preloaded_batch_files_stand_in_for_an_upload_only_when_identical_and_once() {
    let h = host("e1");
    let engine = Engine::connect(&h).await.expect("connect");
    let run = unique("preload");
    let logs = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        format!("{CONTAINER_ROOT}/batch/0-1"),
        format!("{CONTAINER_ROOT}/batch/1-1"),
        format!("{CONTAINER_ROOT}/batch/2-1"),
    );
    let show = "cat gen/args.txt";
    let batch = |root: &str, script: &str, text: &str| batch(root, &h.image, &run, logs.path(), script, text);
    let placed = |job: &ContainerSpec| cargo_shard::engine::docker::placed_files(job);
    let spec = cargo_shard::engine::docker::SlotSpec {
        name: unique("cargo-shard-preload-slot"),
        image: h.image.clone(),
        network: "none".into(),
        labels: BTreeMap::from([(RUN_LABEL.to_string(), run.clone())]),
        mounts: Vec::new(),
        nano_cpus: None,
        memory: None,
        preload: vec![
            placed(&batch(&a, show, "A as placed\n")),
            placed(&batch(&b, show, "B as placed\n")),
        ],
    };
    let slot = engine
        .open_slot(&spec)
        .await
        .expect("slot containers on e1")
        .expect("open");
    let output = |job: ContainerSpec| {
        let (engine, slot) = (&engine, &slot);
        async move {
            let ran = engine
                .run_in_slot(slot, job, CancellationToken::new())
                .await
                .expect("batch");
            assert_eq!(ran.collected.exit_code, Some(0));
            String::from_utf8_lossy(&ran.collected.output).into_owned()
        }
    };
    // Another batch changes A's placed file behind the slot's back: only a batch that did not
    // upload its own files would show the change.
    let tamper = format!("echo changed > {a}/gen/args.txt");
    output(batch(&c, &tamper, "")).await;
    assert_eq!(
        output(batch(&a, show, "A as placed\n")).await,
        "changed\n",
        "A used what was placed"
    );
    // B's files differ from what was placed at its root: its own are uploaded.
    assert_eq!(output(batch(&b, show, "B as run\n")).await, "B as run\n");
    // What was placed stands in once: A again uploads its files.
    output(batch(&c, &tamper, "")).await;
    assert_eq!(output(batch(&a, show, "A as placed\n")).await, "A as placed\n");
    let name = spec.name.clone();
    engine.close_slot(slot).await;
    assert!(!container_exists(&engine, &name).await, "{name} left behind");
}
