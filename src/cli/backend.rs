//! Choosing where shards run: the hosts as [`HostsSource`] found them, or local processes when
//! asked (`--backend local`) or when nothing was configured and no engine answers; connecting
//! to every host at once and leaving out those that fail.

use std::sync::Arc;
use std::time::Duration;

use super::{Backend, HostsOpt};
use crate::config::locate::HostsSource;
use crate::config::registry::credentials;
use crate::config::{ConfigError, Host, HostsConfig, PullPolicy};
use crate::engine::Engine;
use crate::exit;
use crate::run::LiveHost;

/// How long one host may take to answer at start.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the hosts come from: as settled at start, else from `--hosts` alone.
pub fn source(opt: &HostsOpt) -> HostsSource {
    opt.source.clone().unwrap_or_else(|| match &opt.hosts {
        Some(p) => HostsSource::Flag(p.clone()),
        None => HostsSource::Default,
    })
}

/// Loads the configured hosts (without connecting), applying `--only-host`; the flag says
/// whether they were configured (so a failure is an error, not a reason to fall back).
pub fn load_hosts(opt: &HostsOpt) -> Result<(HostsConfig, bool), (u8, String)> {
    let source = source(opt);
    let mut config = if opt.backend == Backend::Local {
        HostsConfig::local_processes()
    } else {
        match source.hosts_file() {
            Some(path) => HostsConfig::load(path).map_err(bad)?,
            None => HostsConfig::from_env().map_err(bad)?,
        }
    };
    let explicit = source.configured() || opt.backend != Backend::Auto;
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
/// out. Falls back to local processes only when nothing was configured and no engine answers,
/// and says so even with `-q`.
pub async fn connect(opt: &HostsOpt, quiet: bool) -> Result<Vec<LiveHost>, (u8, String)> {
    let (config, explicit) = load_hosts(opt)?;
    if opt.backend == Backend::Local {
        if !quiet {
            eprintln!(
                "backend: local processes, {} slots (--backend local)",
                config.hosts[0].slots
            );
        }
        return local(config.hosts[0].clone()).await;
    }
    let source = source(opt);
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
        let host: Host = HostsConfig::local_processes().hosts[0].clone();
        let why = failures.first().map(|(_, r)| r.clone()).unwrap_or_default();
        // Printed even with -q: a run that silently left Docker would mislead.
        eprintln!(
            "backend: local processes, {} slots (nothing configured: no --hosts, CARGO_SHARD_HOSTS, {} or DOCKER_HOST; the local socket: {why})",
            host.slots,
            crate::config::locate::PROJECT_FILE
        );
        return local(host).await;
    }
    if live.is_empty() {
        // One line saying why each host failed: nothing else will be printed.
        let why: Vec<String> = failures.iter().map(|(_, r)| r.clone()).collect();
        let why = if why.is_empty() {
            "it names no host".to_string()
        } else {
            why.join("; ")
        };
        return Err((exit::INFRA_FAILED, format!("no usable host in {source}: {why}")));
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
        eprintln!("backend: docker on {} (hosts from {source})", names.join(", "));
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

/// The one local-processes host.
async fn local(mut host: Host) -> Result<Vec<LiveHost>, (u8, String)> {
    host.derive_jobs(crate::engine::local::info().cpus);
    let engine = Engine::connect(&host)
        .await
        .map_err(|e| (exit::INFRA_FAILED, e.to_string()))?;
    Ok(vec![LiveHost {
        host,
        engine: Arc::new(engine),
    }])
}

/// Connects to `host` and makes sure its image is there, pulling it as its `pull` policy
/// says: a host without it would fail every shard sent to it, so it is left out at start with
/// the reason (the image missing, or the registry's answer). A host without `jobs` gets it
/// from the engine's CPUs.
async fn usable(host: &mut Host) -> Result<Engine, String> {
    let engine = Engine::connect(host).await.map_err(|e| e.to_string())?;
    let info = engine.info(&host.image).await.map_err(|e| e.to_string())?;
    host.derive_jobs(info.cpus);
    let Engine::Docker(docker) = &engine else {
        return Ok(engine);
    };
    let pull = match host.pull {
        PullPolicy::Always => true,
        PullPolicy::Missing => !info.image_present,
        PullPolicy::Never => false,
    };
    if pull {
        let creds = credentials(&host.image, &host.registries).map_err(|e| format!("{}: {e}", host.name))?;
        let started = std::time::Instant::now();
        let progress = |line: &str| eprintln!("pull: {} on {}: {line}", host.image, host.name);
        docker
            .pull(&host.image, creds.as_ref(), &progress)
            .await
            .map_err(|reason| match info.image_present {
                true => format!("{}: pulling {} failed: {reason}", host.name, host.image),
                false => format!(
                    "{}: image {} is not present and pulling it failed: {reason}",
                    host.name, host.image
                ),
            })?;
        eprintln!(
            "pull: {} on {} done in {:.1}s",
            host.image,
            host.name,
            started.elapsed().as_secs_f64()
        );
    } else if !info.image_present {
        return Err(crate::engine::EngineError::ImageMissing {
            host: host.name.clone(),
            image: host.image.clone(),
        }
        .to_string());
    }
    Ok(engine)
}
