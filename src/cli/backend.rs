//! Choosing where shards run: the hosts as [`HostsSource`] found them, or local processes when
//! asked (`--backend local`) or when nothing was configured and no engine answers; connecting
//! to every host at once and leaving out those that fail.

use std::sync::Arc;
use std::time::Duration;

use super::{Backend, HostsOpt};
use crate::config::locate::HostsSource;
use crate::config::registry::credentials;
use crate::config::{ConfigError, Host, HostsConfig, PullPolicy};
use crate::engine::{Engine, EngineError};
use crate::run::LiveHost;

/// Why the run has no hosts to work with.
#[derive(Debug, thiserror::Error)]
pub enum HostsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("--only-host {name}: no such host in {file} (known: {known})")]
    UnknownHost {
        name: String,
        file: String,
        known: String,
    },
    /// Every configured host failed; `why` says how each did.
    #[error("no usable host in {origin}: {why}")]
    NoneUsable { origin: String, why: String },
    /// The local-processes backend itself could not start.
    #[error(transparent)]
    Local(EngineError),
}

/// Why one host was left out at start.
#[derive(Debug, thiserror::Error)]
enum Unusable {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{host}: timeout after {secs}s")]
    Timeout { host: String, secs: u64 },
    #[error("{host}: {reason}")]
    Credentials { host: String, reason: String },
    #[error("{host}: pulling {image} failed: {reason}")]
    Pull {
        host: String,
        image: String,
        reason: String,
    },
    #[error("{host}: image {image} is not present and pulling it failed: {reason}")]
    PullMissing {
        host: String,
        image: String,
        reason: String,
    },
}

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
pub fn load_hosts(opt: &HostsOpt) -> Result<(HostsConfig, bool), HostsError> {
    let source = source(opt);
    let mut config = if opt.backend == Backend::Local {
        HostsConfig::local_processes()
    } else {
        match source.hosts_file() {
            Some(path) => HostsConfig::load(path)?,
            None => HostsConfig::from_env()?,
        }
    };
    let explicit = source.configured() || opt.backend != Backend::Auto;
    if !opt.only_host.is_empty() {
        for name in &opt.only_host {
            if !config.hosts.iter().any(|h| &h.name == name) {
                let known: Vec<&str> = config.hosts.iter().map(|h| h.name.as_str()).collect();
                return Err(HostsError::UnknownHost {
                    name: name.clone(),
                    file: config.source.clone(),
                    known: known.join(", "),
                });
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

/// Connects to every host of `loaded` ([`load_hosts`]) concurrently, with the lines to print
/// once the caller's own output allows (the backend used, hosts left out and why). Falls back
/// to local processes only when nothing was configured and no engine answers, and says so
/// even with `-q`.
pub async fn connect(
    opt: &HostsOpt,
    loaded: (HostsConfig, bool),
    quiet: bool,
) -> Result<(Vec<LiveHost>, Vec<String>), HostsError> {
    let (config, explicit) = loaded;
    let mut notes = Vec::new();
    if opt.backend == Backend::Local {
        if !quiet {
            notes.push(format!(
                "backend: local processes, {} slots (--backend local)",
                config.hosts[0].slots
            ));
        }
        return Ok((local(config.hosts[0].clone()).await?, notes));
    }
    let source = source(opt);
    let attempts = config.hosts.iter().cloned().map(|mut host| async move {
        let r = match tokio::time::timeout(CONNECT_TIMEOUT, usable(&mut host)).await {
            Ok(r) => r,
            Err(_) => Err(Unusable::Timeout {
                host: host.name.clone(),
                secs: CONNECT_TIMEOUT.as_secs(),
            }),
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
        let why = failures.first().map(|(_, r)| r.to_string()).unwrap_or_default();
        // Printed even with -q: a run that silently left Docker would mislead.
        notes.push(local_fallback(host.slots, &why));
        return Ok((local(host).await?, notes));
    }
    if live.is_empty() {
        // One line saying why each host failed: nothing else will be printed.
        let why: Vec<String> = failures.iter().map(|(_, r)| r.to_string()).collect();
        let why = if why.is_empty() {
            "it names no host".to_string()
        } else {
            why.join("; ")
        };
        return Err(HostsError::NoneUsable {
            origin: source.to_string(),
            why,
        });
    }
    for (host, reason) in &failures {
        notes.push(format!(
            "warning: host {} ({}) left out: {reason}",
            host.name, host.endpoint
        ));
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
        notes.push(format!(
            "backend: docker on {} (hosts from {source})",
            names.join(", ")
        ));
    }
    Ok((live, notes))
}

/// The hosts `cargo shard plan` plans for, as a run would find them: the configured ones, or
/// local processes where nothing was configured and no engine answers (said on stderr, as a
/// run says it).
pub async fn plan_hosts(opt: &HostsOpt) -> Result<HostsConfig, HostsError> {
    let (config, explicit) = load_hosts(opt)?;
    if explicit {
        return Ok(config);
    }
    let asks = config.hosts.iter().map(|host| async move {
        let ping = async { Engine::connect(host).await?.ping().await };
        match tokio::time::timeout(Duration::from_secs(5), ping).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(format!("{}: no answer within 5s", host.name)),
        }
    });
    let answers = futures_util::future::join_all(asks).await;
    if answers.iter().any(Result::is_ok) {
        return Ok(config);
    }
    let why = answers.into_iter().find_map(Result::err).unwrap_or_default();
    let local = HostsConfig::local_processes();
    eprintln!(
        "{}",
        local_fallback(local.hosts[0].slots, &format!("does not answer ({why})"))
    );
    Ok(local)
}

/// The line a run (or its plan) prints when it falls back to local processes, with why.
fn local_fallback(slots: usize, why: &str) -> String {
    format!(
        "backend: local processes, {slots} slots (nothing configured: no --hosts, CARGO_SHARD_HOSTS, {} or DOCKER_HOST; the local socket: {why})",
        crate::config::locate::PROJECT_FILE
    )
}

/// For `cargo shard plan`, which runs nothing: asks the engines of hosts without `jobs` for
/// their CPUs (at once, briefly). A host that does not answer keeps `jobs` = 1, with a warning.
pub async fn derive_test_threads(hosts: &mut [Host]) -> Vec<String> {
    let asks = hosts
        .iter_mut()
        .filter(|h| h.test_threads_auto)
        .map(|host| async move {
            let info = async {
                let engine = Engine::connect(host).await.map_err(|e| e.to_string())?;
                engine.info(&host.image).await.map_err(|e| e.to_string())
            };
            match tokio::time::timeout(Duration::from_secs(5), info).await {
                Ok(Ok(info)) => {
                    host.derive_test_threads(info.cpus);
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
async fn local(mut host: Host) -> Result<Vec<LiveHost>, HostsError> {
    host.derive_test_threads(crate::engine::local::info().cpus);
    let engine = Engine::connect(&host).await.map_err(HostsError::Local)?;
    Ok(vec![LiveHost {
        host,
        engine: Arc::new(engine),
    }])
}

/// Connects to `host` and makes sure its image is there, pulling it as its `pull` policy
/// says: a host without it would fail every shard sent to it, so it is left out at start with
/// the reason (the image missing, or the registry's answer). A host without `jobs` gets it
/// from the engine's CPUs.
async fn usable(host: &mut Host) -> Result<Engine, Unusable> {
    let engine = Engine::connect(host).await?;
    let info = engine.info(&host.image).await?;
    host.derive_test_threads(info.cpus);
    let Engine::Docker(docker) = &engine else {
        return Ok(engine);
    };
    let pull = match host.pull {
        PullPolicy::Always => true,
        PullPolicy::Missing => !info.image_present,
        PullPolicy::Never => false,
    };
    if pull {
        let creds = credentials(&host.image, &host.registries).map_err(|reason| Unusable::Credentials {
            host: host.name.clone(),
            reason,
        })?;
        let started = std::time::Instant::now();
        let progress = |line: &str| eprintln!("pull: {} on {}: {line}", host.image, host.name);
        docker
            .pull(&host.image, creds.as_ref(), &progress)
            .await
            .map_err(|reason| {
                let (host, image) = (host.name.clone(), host.image.clone());
                match info.image_present {
                    true => Unusable::Pull { host, image, reason },
                    false => Unusable::PullMissing { host, image, reason },
                }
            })?;
        eprintln!(
            "pull: {} on {} done in {:.1}s",
            host.image,
            host.name,
            started.elapsed().as_secs_f64()
        );
    } else if !info.image_present {
        return Err(EngineError::ImageMissing {
            host: host.name.clone(),
            image: host.image.clone(),
        }
        .into());
    }
    Ok(engine)
}
