//! Staging on real engines: a part is uploaded once per host and then served from its cache
//! volume, a volume whose completion marker is wrong or missing is refilled (never used),
//! shard containers see the part read-only at its place, eviction removes least recently
//! used volumes that no run holds, and cache volumes never carry a run label.

use crate::common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptions, UploadToContainerOptions};
use cargo_shard::config::RUN_LABEL;
use cargo_shard::engine::docker::{CachePart, MARKER, volume_name};
use cargo_shard::engine::{CONTAINER_ROOT, ContainerSpec, Engine};
use cargo_shard::shard::ShardSpec;
use common::{host, leftovers_on, unique};
use tokio_util::sync::CancellationToken;

/// A part whose bytes no other test or run has: `data.txt` holding `text`.
fn part(text: &str) -> CachePart {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(text.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "data.txt", text.as_bytes()).unwrap();
    let tar = b.into_inner().unwrap();
    use sha2::Digest;
    let hash = sha2::Sha256::digest(&tar)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    CachePart {
        hash,
        tar: Arc::new(tar),
    }
}

async fn connect(name: &str) -> Engine {
    Engine::connect(&host(name)).await.expect("connect")
}

fn docker(engine: &Engine) -> &bollard::Docker {
    match engine {
        Engine::Docker(d) => d.client(),
        Engine::Local(_) => panic!("not docker"),
    }
}

/// Overwrites the marker in `volume` with `text`, as a half-written or tampered entry.
async fn spoil_marker(engine: &Engine, volume: &str, text: &str) {
    let body = ContainerCreateBody {
        image: Some(host("e1").image),
        entrypoint: Some(vec!["true".into()]),
        host_config: Some(HostConfig {
            binds: Some(vec![format!("{volume}:/v")]),
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let name = unique("spoil");
    let c = docker(engine)
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name.clone()),
                ..Default::default()
            }),
            body,
        )
        .await
        .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(text.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, MARKER, text.as_bytes()).unwrap();
    let opts = UploadToContainerOptions {
        path: "/v".into(),
        ..Default::default()
    };
    docker(engine)
        .upload_to_container(
            &c.id,
            Some(opts),
            bollard::body_full(b.into_inner().unwrap().into()),
        )
        .await
        .unwrap();
    docker(engine).remove_container(&c.id, None).await.unwrap();
}

async fn volume_labels(engine: &Engine, volume: &str) -> Option<HashMap<String, String>> {
    docker(engine).inspect_volume(volume).await.ok().map(|v| v.labels)
}

/// The shared leak check for e1, from inside this test's runtime.
async fn nothing_left(run: &str) {
    let leaked = leftovers_on(&host("e1"), run).await;
    assert!(leaked.is_empty(), "run {run} leaked {leaked:?}");
}

/// Stages `parts` under a fresh run id and ends that run (its helper container) at once.
async fn stage(engine: &Engine, parts: &[CachePart], limit: u64) -> cargo_shard::engine::docker::StageStats {
    let run = unique("stage");
    let stats = engine
        .stage(parts, &host("e1").image, &run, limit)
        .await
        .unwrap_or_else(|e| panic!("stage: {e}"));
    engine.remove_labelled(Some(&run)).await.unwrap();
    nothing_left(&run).await;
    stats
}

/// One test, so that its limit-0 evictions never race its own cache checks.
#[tokio::test(flavor = "multi_thread")]
async fn parts_are_cached_verified_mounted_and_evicted() {
    let engine = connect("e1").await;
    uploaded_once_then_cached_and_refilled_when_spoiled(&engine).await;
    a_running_runs_parts_are_never_evicted(&engine).await;
}

async fn uploaded_once_then_cached_and_refilled_when_spoiled(engine: &Engine) {
    let p = part(&format!("contents of {}\n", unique("part")));
    let size = p.tar.len() as u64;
    let volume = volume_name(&p.hash);

    let first = stage(engine, std::slice::from_ref(&p), u64::MAX).await;
    assert_eq!((first.uploaded_bytes, first.cached_bytes), (size, 0));
    let labels = volume_labels(engine, &volume).await.expect("volume created");
    assert_eq!(labels.get("dev.cargo-shard.cache"), Some(&p.hash));
    assert!(!labels.contains_key(RUN_LABEL), "{labels:?}");

    let second = stage(engine, std::slice::from_ref(&p), u64::MAX).await;
    assert_eq!((second.uploaded_bytes, second.cached_bytes), (0, size));

    spoil_marker(engine, &volume, "not-the-hash").await;
    let refilled = stage(engine, std::slice::from_ref(&p), u64::MAX).await;
    assert_eq!(
        refilled.uploaded_bytes, size,
        "a wrong marker must not be trusted"
    );

    // A shard sees the part read-only at its place.
    let run = unique("stage-shard");
    let dir = tempfile::tempdir().unwrap();
    let spec = ShardSpec {
        argv: vec![
            "sh".into(),
            "-c".into(),
            "cat /staged/data.txt; touch /staged/x 2>/dev/null && echo WRITABLE || echo READ-ONLY".into(),
        ],
        workdir: CONTAINER_ROOT.into(),
        ..Default::default()
    };
    let extras = cargo_shard::engine::environment::ShardExtras {
        mounts: vec![(volume.clone(), "/staged".into())],
        ..Default::default()
    };
    let job = ContainerSpec {
        name: unique("stage-shard"),
        image: host("e1").image,
        network: "none".into(),
        labels: BTreeMap::from([(RUN_LABEL.to_string(), run.clone())]),
        payload: Arc::new(Vec::new()),
        root: CONTAINER_ROOT.into(),
        spec,
        log_path: dir.path().join("shard.log"),
        keep: false,
        extras,
    };
    let shard = engine.run_shard(job, CancellationToken::new()).await.unwrap();
    let out = String::from_utf8_lossy(&shard.collected.output).to_string();
    assert!(out.starts_with("contents of part-"), "{out}");
    assert!(out.contains("READ-ONLY"), "{out}");
    nothing_left(&run).await;

    // Limit 0: everything no run holds goes, least recently used first; this one included.
    let other = part(&format!("other {}\n", unique("part")));
    let evicting = stage(engine, std::slice::from_ref(&other), 0).await;
    assert!(evicting.evicted.contains(&volume), "{:?}", evicting.evicted);
    assert!(volume_labels(engine, &volume).await.is_none());
    docker(engine)
        .remove_volume(
            &volume_name(&other.hash),
            None::<bollard::query_parameters::RemoveVolumeOptions>,
        )
        .await
        .unwrap();
}

async fn a_running_runs_parts_are_never_evicted(engine: &Engine) {
    let held = part(&format!("held {}\n", unique("part")));
    let run = unique("stage-hold");
    engine
        .stage(std::slice::from_ref(&held), &host("e1").image, &run, u64::MAX)
        .await
        .unwrap();
    // Another run, limit 0, while `run` (its helper) still holds the part.
    let other = part(&format!("other {}\n", unique("part")));
    let stats = stage(engine, std::slice::from_ref(&other), 0).await;
    assert!(
        !stats.evicted.contains(&volume_name(&held.hash)),
        "{:?}",
        stats.evicted
    );
    assert!(volume_labels(engine, &volume_name(&held.hash)).await.is_some());
    engine.remove_labelled(Some(&run)).await.unwrap();
    nothing_left(&run).await;
    for p in [&held, &other] {
        let _ = docker(engine)
            .remove_volume(
                &volume_name(&p.hash),
                None::<bollard::query_parameters::RemoveVolumeOptions>,
            )
            .await;
    }
}
