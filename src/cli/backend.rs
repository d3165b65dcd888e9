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
    let attempts = config.hosts.iter().cloned().map(|host| async move {
        let r = match tokio::time::timeout(CONNECT_TIMEOUT, Engine::connect(&host)).await {
            Ok(r) => r.map_err(|e| e.to_string()),
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
        let host: Host = local.hosts[0].clone();
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
    for (host, reason) in &failures {
        eprintln!(
            "warning: host {} ({}) left out: {reason}",
            host.name, host.endpoint
        );
    }
    if live.is_empty() {
        return Err((
            exit::INFRA_FAILED,
            format!("no host reachable in {}", config.source),
        ));
    }
    if !quiet {
        let names: Vec<String> = live
            .iter()
            .map(|h| format!("{} ({}, {} slots)", h.host.name, h.host.endpoint, h.host.slots))
            .collect();
        eprintln!("backend: docker on {}", names.join(", "));
    }
    Ok(live)
}
