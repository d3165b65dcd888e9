//! Choosing where shards run: the hosts file, else `DOCKER_HOST`/the local socket, else
//! local processes; connecting to every host at once and leaving out those that fail.

use std::sync::Arc;
use std::time::Duration;

use super::HostsOpt;
use crate::config::{ConfigError, Host, HostsConfig};
use crate::engine::Engine;
use crate::exit;
use crate::run::LiveHost;

/// How long one host may take to answer at start.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Loads the configured hosts (without connecting), applying `--only-host`.
pub fn load_hosts(opt: &HostsOpt) -> Result<(HostsConfig, bool), (u8, String)> {
    let (mut config, explicit) = match &opt.hosts {
        Some(path) => (HostsConfig::load(path).map_err(bad)?, true),
        None => (HostsConfig::from_env().map_err(bad)?, false),
    };
    if !opt.only_host.is_empty() {
        for name in &opt.only_host {
            if !config.hosts.iter().any(|h| &h.name == name) {
                let known: Vec<&str> = config.hosts.iter().map(|h| h.name.as_str()).collect();
                return Err((
                    exit::BAD_INPUT,
                    format!(
                        "--only-host {name}: no such host in {} (known: {})",
                        config.source,
                        known.join(", ")
                    ),
                ));
            }
        }
        config.hosts.retain(|h| opt.only_host.contains(&h.name));
    }
    if let Some(image) = &opt.image {
        for h in &mut config.hosts {
            h.image = image.clone();
        }
    }
    Ok((config, explicit))
}

fn bad(e: ConfigError) -> (u8, String) {
    (exit::BAD_INPUT, e.to_string())
}

/// Connects to every host concurrently. Unreachable hosts are reported on stderr and left
/// out. With no hosts file and no engine answering, falls back to local processes.
pub async fn connect(opt: &HostsOpt, quiet: bool) -> Result<Vec<LiveHost>, (u8, String)> {
    let (config, explicit) = load_hosts(opt)?;
    let attempts = config.hosts.iter().cloned().map(|mut host| async move {
        let r = match tokio::time::timeout(CONNECT_TIMEOUT, usable(&mut host)).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "{}: timeout after {}s",
                host.name,
                CONNECT_TIMEOUT.as_secs()
            )),
        };
        (host, r)
    });
    let mut live = Vec::new();
    let mut failures = Vec::new();
    for (host, r) in futures_util::future::join_all(attempts).await {
        match r {
            Ok(engine) => live.push(LiveHost {
                host,
                engine: Arc::new(engine),
            }),
            Err(reason) => failures.push((host, reason)),
        }
    }
    if !explicit && live.is_empty() {
        let local = HostsConfig::local_processes();
        let mut host: Host = local.hosts[0].clone();
        host.derive_jobs(crate::engine::local::info().cpus);
        let why = failures.first().map(|(_, r)| r.clone()).unwrap_or_default();
        if !quiet {
            eprintln!(
                "backend: local processes, {} slots (no Docker engine reachable: {why})",
                host.slots
            );
        }
        let engine = Engine::connect(&host)
            .await
            .map_err(|e| (exit::INFRA_FAILED, e.to_string()))?;
        return Ok(vec![LiveHost {
            host,
            engine: Arc::new(engine),
        }]);
    }
    if live.is_empty() {
        // One line saying why each host failed: nothing else will be printed.
        let why: Vec<String> = failures.iter().map(|(_, r)| r.clone()).collect();
        let why = if why.is_empty() {
            "it names no host".to_string()
        } else {
            why.join("; ")
        };
        return Err((
            exit::INFRA_FAILED,
            format!("no usable host in {}: {why}", config.source),
        ));
    }
    for (host, reason) in &failures {
        eprintln!(
            "warning: host {} ({}) left out: {reason}",
            host.name, host.endpoint
        );
    }
    if !quiet {
        let names: Vec<String> = live
            .iter()
            .map(|h| {
                format!(
                    "{} ({}, {})",
                    h.host.name,
                    h.host.endpoint,
                    super::planning::capacity(&h.host)
                )
            })
            .collect();
        eprintln!("backend: docker on {}", names.join(", "));
    }
    Ok(live)
}

/// For `cargo shard plan`, which runs nothing: asks the engines of hosts without `jobs` for
/// their CPUs (at once, briefly). A host that does not answer keeps `jobs` = 1, with a warning.
pub async fn derive_jobs(hosts: &mut [Host]) -> Vec<String> {
    let asks = hosts.iter_mut().filter(|h| h.jobs_auto).map(|host| async move {
        let info = async {
            let engine = Engine::connect(host).await.map_err(|e| e.to_string())?;
            engine.info(&host.image).await.map_err(|e| e.to_string())
        };
        match tokio::time::timeout(Duration::from_secs(5), info).await {
            Ok(Ok(info)) => {
                host.derive_jobs(info.cpus);
                None
            }
            Ok(Err(why)) => Some(format!(
                "{}: planned with jobs = 1 (CPUs unknown: {why})",
                host.name
            )),
            Err(_) => Some(format!(
                "{}: planned with jobs = 1 (CPUs unknown: no answer in 5s)",
                host.name
            )),
        }
    });
    futures_util::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Connects to `host` and checks that its image is there: a host without it would fail every
/// shard sent to it, so it is left out at start, saying which image is missing. A host
/// without `jobs` gets it from the engine's CPUs.
async fn usable(host: &mut Host) -> Result<Engine, String> {
    let engine = Engine::connect(host).await.map_err(|e| e.to_string())?;
    let info = engine.info(&host.image).await.map_err(|e| e.to_string())?;
    host.derive_jobs(info.cpus);
    if !info.image_present {
        return Err(crate::engine::EngineError::ImageMissing {
            host: host.name.clone(),
            image: host.image.clone(),
        }
        .to_string());
    }
    Ok(engine)
}
