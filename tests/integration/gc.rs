//! `cargo shard gc --run ID` on the real test bed: removes what carries that run's label on
//! every engine (e3 through the ssh tunnel) and nothing else.

use crate::common;

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::{CreateContainerOptions, ListContainersOptions, RemoveContainerOptions};
use cargo_shard::config::RUN_LABEL;
use cargo_shard::engine::Engine;
use common::{cargo_shard, host, hosts_file, unique};

async fn docker(name: &str) -> (Engine, Docker) {
    let engine = Engine::connect(&host(name)).await.expect("connect");
    let client = match &engine {
        Engine::Docker(d) => d.client().clone(),
        Engine::Local(_) => panic!("{name} is not a Docker engine"),
    };
    (engine, client)
}

async fn create(docker: &Docker, name: &str, labels: HashMap<String, String>) {
    let body = ContainerCreateBody {
        image: Some(host("e1").image),
        cmd: Some(vec!["true".into()]),
        labels: Some(labels),
        ..Default::default()
    };
    let opts = CreateContainerOptions {
        name: Some(name.to_string()),
        ..Default::default()
    };
    docker
        .create_container(Some(opts), body)
        .await
        .expect("create container");
}

async fn names_with_label(docker: &Docker, label: &str) -> Vec<String> {
    let filters = HashMap::from([("label".to_string(), vec![label.to_string()])]);
    docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_iter()
        .flat_map(|c| c.names.unwrap_or_default())
        .map(|n| n.trim_start_matches('/').to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_run_removes_only_that_runs_objects() {
    let run = unique("gc");
    let other = format!("{run}-other");
    let labelled = HashMap::from([(RUN_LABEL.to_string(), run.clone())]);
    let mut engines = Vec::new();
    for name in ["e1", "e2", "e3"] {
        let (engine, d) = docker(name).await;
        create(&d, &format!("{run}-{name}"), labelled.clone()).await;
        engines.push((name, engine, d));
    }
    let e1 = engines[0].2.clone();
    // Not ours to remove: no run label, and another run's label.
    let bystander = format!("{run}-bystander");
    create(
        &e1,
        &bystander,
        HashMap::from([("dev.cargo-shard.test".to_string(), run.clone())]),
    )
    .await;
    create(
        &e1,
        &other,
        HashMap::from([(RUN_LABEL.to_string(), other.clone())]),
    )
    .await;
    let net = format!("{run}-net");
    e1.create_network(NetworkCreateRequest {
        name: net.clone(),
        labels: Some(labelled.clone()),
        ..Default::default()
    })
    .await
    .expect("create network");
    let vol = format!("{run}-vol");
    e1.create_volume(VolumeCreateRequest {
        name: Some(vol.clone()),
        labels: Some(labelled.clone()),
        ..Default::default()
    })
    .await
    .expect("create volume");

    let path = hosts_file();
    let (code, out, err) = cargo_shard(&["gc", "--hosts", path.to_str().unwrap(), "--run", &run]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    for name in ["e1", "e2", "e3"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{name}: removed ")))
            .unwrap_or_else(|| panic!("no line for {name}:\n{out}"));
        assert!(line.contains(&format!("1 container ({run}-{name})")), "{line}");
    }
    assert!(out.contains(&format!("1 network ({net})")), "{out}");
    assert!(out.contains(&format!("1 volume ({vol})")), "{out}");

    for (name, _, d) in &engines {
        let left = names_with_label(d, &format!("{RUN_LABEL}={run}")).await;
        assert!(left.is_empty(), "{name} still has {left:?}");
    }
    assert_eq!(
        names_with_label(&e1, &format!("dev.cargo-shard.test={run}")).await,
        vec![bystander.clone()]
    );
    assert_eq!(
        names_with_label(&e1, &format!("{RUN_LABEL}={other}")).await,
        vec![other.clone()]
    );
    assert!(e1.inspect_network(&net, None).await.is_err(), "network survived");
    assert!(e1.inspect_volume(&vol).await.is_err(), "volume survived");

    for c in [bystander, other] {
        let opts = RemoveContainerOptions {
            force: true,
            ..Default::default()
        };
        e1.remove_container(&c, Some(opts)).await.unwrap();
    }
}

#[test]
fn unreachable_host_fails_gc_and_is_named() {
    let bad = common::testbed_file("bad-port.toml");
    // A run id nobody uses: the reachable hosts in that file lose nothing.
    let run = unique("gc-none");
    let (code, out, err) = cargo_shard(&["gc", "--hosts", bad.to_str().unwrap(), "--run", &run]);
    assert_eq!(code, 102, "stdout:\n{out}\nstderr:\n{err}");
    let cfg = cargo_shard::config::HostsConfig::load(&bad).unwrap();
    for h in &cfg.hosts {
        let reported = out
            .lines()
            .any(|l| l == format!("{}: removed 0 containers, 0 networks, 0 volumes", h.name))
            || err
                .lines()
                .any(|l| l.starts_with(&format!("host {} ({}): unreachable: ", h.name, h.endpoint)));
        assert!(reported, "{} not reported:\n{out}\n{err}", h.name);
    }
    assert!(err.contains("unreachable: connection refused"), "{err}");
}

/// Cache volumes carry no run label: plain `gc` keeps them, `gc --cache` removes them.
#[tokio::test(flavor = "multi_thread")]
async fn gc_keeps_the_payload_cache_unless_asked() {
    let (engine, client) = docker("e1").await;
    let text = format!("cached {}\n", unique("gc-cache"));
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(text.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "f.txt", text.as_bytes()).unwrap();
    let tar = b.into_inner().unwrap();
    use sha2::Digest;
    let hash: String = sha2::Sha256::digest(&tar)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let volume = cargo_shard::engine::docker::volume_name(&hash);
    let run = unique("gc-cache");
    let part = cargo_shard::engine::docker::CachePart {
        hash,
        tar: std::sync::Arc::new(tar),
    };
    engine
        .stage(&[part], &host("e1").image, &run, u64::MAX)
        .await
        .expect("stage");

    let hosts = hosts_file();
    let hosts = hosts.to_str().unwrap();
    let (code, out, err) = cargo_shard(&["gc", "--hosts", hosts, "--only-host", "e1", "--run", &run]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("cargo-shard-{run}-stage")),
        "the run's helper goes: {out}"
    );
    assert!(
        client.inspect_volume(&volume).await.is_ok(),
        "plain gc removed a cache volume"
    );

    let (code, out, err) = cargo_shard(&["gc", "--hosts", hosts, "--only-host", "e1", "--cache"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&volume), "{out}");
    assert!(
        client.inspect_volume(&volume).await.is_err(),
        "gc --cache left {volume}"
    );
}
