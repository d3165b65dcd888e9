//! Per-shard fixed overhead on real engines: a no-op shard with a ~30 MB payload, timed by
//! phase (create / upload / start / run / collect / remove), median of several runs.
//!
//! `cargo run --release --example shard_overhead -- [HOSTS_FILE] [RUNS] [staged|copied]`
//! (default `$CARGO_SHARD_TESTBED/hosts.toml`, or `target/testbed/hosts.toml`; 7 runs;
//! `staged`: the payload is staged once per host into its cache volume and every shard
//! mounts it, as whole shards run; `slot`: staged, and each run a batch `docker exec`'d into
//! one long-lived slot container, as first-run and stolen batches run; `copied`: uploaded
//! into every container, as before staging).

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cargo_shard::config::{HostsConfig, RUN_LABEL};
use cargo_shard::engine::{ContainerSpec, Engine, Phases};
use cargo_shard::shard::{ShardSpec, Upload};
use tokio_util::sync::CancellationToken;

const PAYLOAD_BYTES: usize = 30 * 1024 * 1024;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let hosts_file = args.get(1).cloned().unwrap_or_else(|| {
        let dir = std::env::var("CARGO_SHARD_TESTBED").unwrap_or_else(|_| "target/testbed".into());
        format!("{dir}/hosts.toml")
    });
    let runs: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(7);
    let mode = args.get(3).map(String::as_str).unwrap_or("staged");
    let staged = mode != "copied";
    // `slot`: staged, and every run a batch exec'd into one long-lived slot container (as
    // stolen and first-run batches run), the container's opening timed apart.
    let slotted = mode == "slot";
    let config = HostsConfig::load(std::path::Path::new(&hosts_file)).unwrap_or_else(|e| panic!("{e}"));

    // Incompressible bytes, like a test archive: a compressing transport must not flatter us.
    let dir = tempfile::tempdir().unwrap();
    let blob = dir.path().join("archive.bin");
    let mut f = std::fs::File::create(&blob).unwrap();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut buf = vec![0u8; PAYLOAD_BYTES];
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    f.write_all(&buf).unwrap();
    drop(f);
    let payload = Arc::new(
        cargo_shard::run::payload::pack(&[Upload::File {
            src: blob,
            dest: "archive.bin".into(),
            mode: 0o644,
        }])
        .unwrap(),
    );

    // Staged: the payload as one content-addressed part (a unique byte per process, so a
    // previous run's cache does not answer the first stage).
    let mut unique = payload.as_ref().clone();
    unique.extend_from_slice(&std::process::id().to_le_bytes());
    let part = cargo_shard::engine::docker::CachePart {
        hash: {
            use sha2::Digest;
            sha2::Sha256::digest(&unique)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        },
        tar: payload.clone(),
    };
    println!(
        "| host | endpoint | first stage: uploaded | second stage: uploaded | slot container opened | create | upload | start | run | collect | remove | total (median of {runs}) | `docker run --rm` no-op, no upload | ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for host in &config.hosts {
        let engine = match Engine::connect(host).await {
            Ok(e) => e,
            Err(e) => {
                println!("| {} | {} | unreachable: {e} |", host.name, host.endpoint);
                continue;
            }
        };
        let mut phases: Vec<Phases> = Vec::new();
        let mut totals = Vec::new();
        let run_id = format!("bench{}", std::process::id());
        let (mut first, mut second) = (String::from("-"), String::from("-"));
        if staged && !engine.is_local() {
            let stage = |run: String| {
                let (engine, part, image) = (&engine, part.clone(), host.image.clone());
                async move {
                    let t = Instant::now();
                    let s = engine
                        .stage(&[part], &image, &run, u64::MAX)
                        .await
                        .unwrap_or_else(|e| panic!("{e}"));
                    format!("{} B in {:.2} s", s.uploaded_bytes, t.elapsed().as_secs_f64())
                }
            };
            first = stage(format!("{run_id}-warm")).await;
            let _ = engine.remove_labelled(Some(&format!("{run_id}-warm"))).await;
            second = stage(run_id.clone()).await;
        }
        let mounts = if staged && !engine.is_local() {
            vec![(
                cargo_shard::engine::docker::volume_name(&part.hash),
                "/cargo-shard-staged".to_string(),
            )]
        } else {
            Vec::new()
        };
        // In a slot container each batch has a root of its own, and the container opens with
        // every batch's files in place, as a run's pooled batches do.
        let job = |i: usize| {
            let root = match engine.make_root().unwrap() {
                r if slotted => format!("{r}/batch/{i}-1"),
                r => r,
            };
            ContainerSpec {
                name: format!("cargo-shard-{run_id}-{i}"),
                image: host.image.clone(),
                network: host.network.clone(),
                labels: [(RUN_LABEL.to_string(), run_id.clone())].into(),
                payload: if staged && !engine.is_local() {
                    Arc::new(Vec::new())
                } else {
                    payload.clone()
                },
                spec: ShardSpec {
                    argv: vec!["true".into()],
                    env: vec![],
                    workdir: root.clone(),
                    files: vec![("result.txt".into(), b"ok\n".to_vec())],
                    collect: vec![format!("{root}/result.txt")],
                },
                log_path: dir.path().join(format!("{}-{i}.log", host.name)),
                keep: false,
                extras: cargo_shard::engine::environment::ShardExtras {
                    mounts: mounts.clone(),
                    ..Default::default()
                },
                root,
            }
        };
        let mut slot = None;
        let mut opened = String::from("-");
        if slotted {
            let spec = cargo_shard::engine::docker::SlotSpec {
                name: format!("cargo-shard-{run_id}-slot"),
                image: host.image.clone(),
                network: host.network.clone(),
                labels: [(RUN_LABEL.to_string(), run_id.clone())].into(),
                mounts: mounts.clone(),
                nano_cpus: None,
                memory: None,
                preload: (0..runs)
                    .map(|i| cargo_shard::engine::docker::placed_files(&job(i)))
                    .collect(),
            };
            let t = Instant::now();
            match engine.open_slot(&spec).await {
                Some(Ok(s)) => {
                    opened = format!("{:.3}", t.elapsed().as_secs_f64());
                    slot = Some(s);
                }
                Some(Err(e)) => panic!("{e}"),
                None => println!("| {} | {} | no slot containers here |", host.name, host.endpoint),
            }
        }
        for i in 0..runs {
            let job = job(i);
            let t0 = Instant::now();
            let run = match &slot {
                Some(slot) => engine.run_in_slot(slot, job, CancellationToken::new()).await,
                None => engine.run_shard(job, CancellationToken::new()).await,
            }
            .unwrap_or_else(|e| panic!("{e}"));
            totals.push(t0.elapsed().as_secs_f64());
            assert_eq!(run.collected.exit_code, Some(0));
            phases.push(run.phases);
        }
        if let Some(slot) = slot {
            engine.close_slot(slot).await;
        }
        let _ = engine.remove_labelled(Some(&run_id)).await;
        if let cargo_shard::engine::Engine::Docker(d) = &engine {
            let volume = cargo_shard::engine::docker::volume_name(&part.hash);
            let _ = d
                .client()
                .remove_volume(&volume, None::<bollard::query_parameters::RemoveVolumeOptions>)
                .await;
        }
        // The floor: the docker CLI's own create+start+wait+remove of a no-op, same engine.
        let baseline = match &host.endpoint {
            cargo_shard::config::Endpoint::Unix { .. } | cargo_shard::config::Endpoint::Tcp { .. } => {
                let mut t = Vec::new();
                for _ in 0..runs {
                    let t0 = Instant::now();
                    let ok = std::process::Command::new("docker")
                        .args([
                            "-H",
                            &host.endpoint.to_string(),
                            "run",
                            "--rm",
                            "--network",
                            "none",
                            &host.image,
                            "true",
                        ])
                        .output()
                        .map(|o| o.status.success())
                        .unwrap_or(false);
                    assert!(ok, "docker run on {}", host.name);
                    t.push(t0.elapsed().as_secs_f64());
                }
                Some(median(t))
            }
            _ => None,
        };
        let m = |f: fn(&Phases) -> Duration| median(phases.iter().map(|p| f(p).as_secs_f64()).collect());
        println!(
            "| {} | {} | {first} | {second} | {opened} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | **{:.3} s** | {} | {} |",
            host.name,
            host.endpoint,
            m(|p| p.create),
            m(|p| p.upload),
            m(|p| p.start),
            m(|p| p.run),
            m(|p| p.collect),
            m(|p| p.remove),
            median(totals.clone()),
            baseline
                .map(|b| format!("{b:.3} s"))
                .unwrap_or_else(|| "n/a (ssh)".into()),
            baseline
                .map(|b| format!("{:.2}", median(totals) / b))
                .unwrap_or_else(|| "-".into()),
        );
    }
}
