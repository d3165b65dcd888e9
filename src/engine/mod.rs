//! Engines: where a shard's container runs. Docker over `unix://`, `tcp://` (TLS) and
//! `ssh://` (an ssh2 tunnel to the remote socket), or local processes when no engine is
//! reachable. Every object created carries [`crate::config::RUN_LABEL`].
//!
//! The contract with the runner, per shard attempt:
//! 1. `let root = engine.make_root()?` — the shard root: [`CONTAINER_ROOT`] on Docker, a fresh
//!    temp dir for the local engine (so shards running side by side never share files);
//! 2. `recipe.prepare(tests, &ShardCtx { root: root.clone(), .. })` — every path in the spec is
//!    under that root;
//! 3. `engine.run_shard(ContainerSpec { root, spec, .. }, cancel)` — places the payload and the
//!    spec's files under the root, runs `spec.argv` (an exec array, never a shell), streams the
//!    combined output to `log_path`, downloads `spec.collect`, and removes the container (or the
//!    local root) unless `keep`. It cleans up on every error path, and on `cancel` too.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::{Endpoint, Host};
use crate::shard::{Collected, ShardSpec};

pub mod docker;
pub mod environment;
pub mod known_hosts;
pub mod lines;
pub mod local;
pub mod redact;
pub mod ssh;
mod tarball;

/// Where the payload lands inside a container; local shards use a temp dir instead.
pub const CONTAINER_ROOT: &str = "/cargo-shard";

/// Why an engine call failed, in words a user can act on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// Could not reach the engine at all (refused, timeout, auth failed, TLS, socket missing).
    #[error("{host}: {reason}")]
    Unreachable {
        /// The host's name in the hosts file.
        host: String,
        /// What failed, as the connection or the engine said it.
        reason: String,
        /// The engine client's own error, when there was one: the chain behind `reason`.
        #[source]
        cause: Option<Cause>,
    },
    /// The engine went away while a shard ran on it: re-queue its work elsewhere.
    #[error("{host}: engine lost: {reason}")]
    Lost {
        /// The host's name in the hosts file.
        host: String,
        /// How the engine was lost.
        reason: String,
        /// The engine client's own error, when there was one: the chain behind `reason`.
        #[source]
        cause: Option<Cause>,
    },
    /// The host's image is absent and `pull = "never"` forbids fetching it.
    #[error("{host}: image {image} is not present (pull = \"never\": load it, or let it be pulled)")]
    ImageMissing {
        /// The host's name in the hosts file.
        host: String,
        /// The image reference the host was to run.
        image: String,
    },
    /// The shard's container failed before it could report results (upload, start, OOM).
    #[error("{host}: {reason}")]
    Shard {
        /// The host's name in the hosts file.
        host: String,
        /// What failed for this shard.
        reason: String,
        /// The engine client's own error, when there was one: the chain behind `reason`.
        #[source]
        cause: Option<Cause>,
    },
    /// The engine refused the container's configuration (HTTP 400: `--cpus` beyond the
    /// host's, a memory limit it cannot take): bad input, never retried.
    #[error("{host}: the engine refused the shard's container: {reason}")]
    Rejected {
        /// The host's name in the hosts file.
        host: String,
        /// The engine's own message.
        reason: String,
        /// The engine client's own error, when there was one: the chain behind `reason`.
        #[source]
        cause: Option<Cause>,
    },
    /// The attempt's cancel token fired; it stopped and cleaned up.
    #[error("cancelled")]
    Cancelled,
}

/// The error an engine call failed with, kept behind an [`EngineError`] as its `source()`: the
/// message says what to do, the chain says what happened (bollard, hyper, the socket).
#[derive(Debug, Clone)]
pub struct Cause(Arc<dyn std::error::Error + Send + Sync>);

impl Cause {
    /// Keeps `e` (shared, so the error stays `Clone` for the scheduler).
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(e))
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// What `cargo shard hosts` shows for one engine.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct EngineInfo {
    /// The engine's version (`20.10.24`), or `local`.
    pub version: String,
    /// The API version negotiated with it.
    pub api_version: String,
    /// CPUs the engine reports: a host without `jobs` splits them among its slots.
    pub cpus: u64,
    /// Memory the engine reports, in bytes.
    pub memory_bytes: u64,
    /// Whether the host's image is already there, so the first run need not pull it.
    pub image_present: bool,
    /// One request's round trip, what every Docker call costs on this host.
    pub round_trip: Duration,
}

/// One shard's container, fully described.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    /// Container name, unique per run, shard and attempt.
    pub name: String,
    /// The image the container runs.
    pub image: String,
    /// The Docker network it joins, from the host's `network` setting.
    pub network: String,
    /// Labels for the container; include [`crate::config::RUN_LABEL`] so `gc` finds it.
    pub labels: BTreeMap<String, String>,
    /// The shared payload (a tar whose entries are relative to the shard root), built once.
    pub payload: Arc<Vec<u8>>,
    /// The shard root from [`Engine::make_root`]: [`CONTAINER_ROOT`] for Docker, a fresh
    /// temp dir for the local engine.
    pub root: String,
    /// What to run, prepared for `root`.
    pub spec: ShardSpec,
    /// Where the shard's combined output is streamed.
    pub log_path: PathBuf,
    /// Leave the container in place afterwards (`--keep-containers`).
    pub keep: bool,
    /// Services, limits, secrets: the job's additions (empty by default).
    pub extras: environment::ShardExtras,
}

/// Time spent in each phase of a shard's life.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Phases {
    /// Creating the container.
    pub create: Duration,
    /// Placing the shard's files in it.
    pub upload: Duration,
    /// Starting it.
    pub start: Duration,
    /// From start to exit: the tests themselves.
    pub run: Duration,
    /// Downloading the files to collect.
    pub collect: Duration,
    /// Removing the container and what came with it.
    pub remove: Duration,
}

/// What a finished shard gives back.
#[derive(Debug, Clone)]
pub struct ShardRun {
    /// The container's name (the local engine: the shard root).
    pub container: String,
    /// The exit code, output and files the shard left.
    pub collected: Collected,
    /// Time per phase, for the timeline.
    pub phases: Phases,
    /// When the attempt began, for the timeline's offsets.
    pub started: Instant,
    /// When the container was gone.
    pub finished: Instant,
}

/// What the engine made for one shard attempt: its container and, on Docker when the job has
/// services, the services' containers and their private network. `--keep-containers` leaves
/// them all, so the engine names them rather than its callers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardObjects {
    /// The shard's own container.
    pub container: String,
    /// Its service containers.
    pub services: Vec<String>,
    /// The services' private network.
    pub network: Option<String>,
}

impl ShardObjects {
    /// A container with nothing beside it.
    pub fn only(container: &str) -> Self {
        Self {
            container: container.to_string(),
            ..Self::default()
        }
    }
}

/// What `gc` removed from one engine.
#[derive(Debug, Clone, Default)]
pub struct Removed {
    /// Containers removed, by name.
    pub containers: Vec<String>,
    /// Networks removed, by name.
    pub networks: Vec<String>,
    /// Volumes removed, by name (never the payload caches, which carry their own label).
    pub volumes: Vec<String>,
}

/// A connected engine.
pub enum Engine {
    /// A Docker engine, over unix, tcp (TLS) or ssh.
    Docker(docker::DockerEngine),
    /// Child processes on this machine.
    Local(local::LocalEngine),
}

/// How long connecting (and the first answer) may take unless told otherwise.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Engine {
    /// Connects to `host` and negotiates the API version, failing fast with a short reason.
    pub async fn connect(host: &Host) -> Result<Engine, EngineError> {
        Self::connect_with_timeout(host, CONNECT_TIMEOUT).await
    }

    /// [`Engine::connect`] with its own limit on connecting and the first answer.
    pub async fn connect_with_timeout(host: &Host, timeout: Duration) -> Result<Engine, EngineError> {
        match host.endpoint {
            Endpoint::Local => Ok(Engine::Local(local::LocalEngine::new(&host.name))),
            _ => Ok(Engine::Docker(
                docker::DockerEngine::connect(host, timeout).await?,
            )),
        }
    }

    /// The host's name, as the hosts file spells it.
    pub fn host(&self) -> &str {
        match self {
            Engine::Docker(d) => d.host(),
            Engine::Local(l) => l.host(),
        }
    }

    /// Whether shards run as local processes, which share this machine's files and tools.
    pub fn is_local(&self) -> bool {
        matches!(self, Engine::Local(_))
    }

    /// One cheap round trip: is the engine still answering?
    pub async fn ping(&self) -> Result<(), EngineError> {
        match self {
            Engine::Docker(d) => d.ping().await,
            Engine::Local(_) => Ok(()),
        }
    }

    /// Versions, capacity, whether `image` is present, and one round trip.
    pub async fn info(&self, image: &str) -> Result<EngineInfo, EngineError> {
        match self {
            Engine::Docker(d) => d.info(image).await,
            Engine::Local(_) => Ok(local::info()),
        }
    }

    /// The id of `image` on this engine (its content hash), if it is there; `None` for the
    /// local engine, which has no images.
    pub async fn image_id(&self, image: &str) -> Result<Option<String>, EngineError> {
        match self {
            Engine::Docker(d) => d.image_id(image).await,
            Engine::Local(_) => Ok(None),
        }
    }

    /// The answer this engine keeps to "has image `image_id` got `tool`?" (see
    /// `docker::probe`); `None` when it keeps none, or cannot be asked.
    pub async fn kept_probe(&self, image_id: &str, tool: &str) -> Option<bool> {
        match self {
            Engine::Docker(d) => d.kept_probe(image_id, tool).await.ok().flatten(),
            Engine::Local(_) => None,
        }
    }

    /// Keeps a probe's answer on this engine for later runs; failing only costs a probe then.
    pub async fn keep_probe(&self, image_id: &str, tool: &str, has: bool) {
        if let Engine::Docker(d) = self {
            let _ = d.keep_probe(image_id, tool, has).await;
        }
    }

    /// What a shard attempt whose container is `container` makes here when its job has
    /// `services` (names as the job gives them). Local processes get no services.
    pub fn shard_objects(&self, container: &str, services: &[&str]) -> ShardObjects {
        match self {
            Engine::Docker(_) => docker::shard_objects(container, services),
            Engine::Local(_) => ShardObjects::only(container),
        }
    }

    /// A shard root for one attempt (see the module docs).
    pub fn make_root(&self) -> Result<String, EngineError> {
        match self {
            Engine::Docker(_) => Ok(CONTAINER_ROOT.to_string()),
            Engine::Local(l) => l.make_root(),
        }
    }

    /// Runs one shard to completion (see the module docs). A non-zero exit is not an error:
    /// it is in `collected.exit_code` for the runner to judge.
    pub async fn run_shard(
        &self,
        job: ContainerSpec,
        cancel: CancellationToken,
    ) -> Result<ShardRun, EngineError> {
        match self {
            Engine::Docker(d) => d.run_shard(job, cancel).await,
            Engine::Local(l) => l.run_shard(job, cancel).await,
        }
    }

    /// Starts a slot container that runs batches one after another (`None`: this engine runs
    /// every batch in a container of its own — local processes, or an engine that is not
    /// x86-64). The first failure is the engine's own error.
    pub async fn open_slot(&self, spec: &docker::SlotSpec) -> Option<Result<docker::Slot, EngineError>> {
        match self {
            Engine::Docker(d) if d.slots_supported().await => Some(d.open_slot(spec).await),
            _ => None,
        }
    }

    /// Runs one batch in a slot container from [`Engine::open_slot`]; like
    /// [`Engine::run_shard`] otherwise.
    pub async fn run_in_slot(
        &self,
        slot: &docker::Slot,
        job: ContainerSpec,
        cancel: CancellationToken,
    ) -> Result<ShardRun, EngineError> {
        match self {
            Engine::Docker(d) => d.run_in_slot(slot, job, cancel).await,
            Engine::Local(l) => l.run_shard(job, cancel).await,
        }
    }

    /// Removes a slot container.
    pub async fn close_slot(&self, slot: docker::Slot) {
        if let Engine::Docker(d) = self {
            d.close_slot(slot).await;
        }
    }

    /// Makes `parts` present and verified in this host's cache (see `docker::cache`); the
    /// local engine runs from this machine's files and stages nothing.
    pub async fn stage(
        &self,
        parts: &[docker::CachePart],
        image: &str,
        run_id: &str,
        limit: u64,
    ) -> Result<docker::StageStats, EngineError> {
        match self {
            Engine::Docker(d) => d.stage(parts, image, run_id, limit).await,
            Engine::Local(_) => Ok(docker::StageStats::default()),
        }
    }

    /// Removes the host's cache volumes (`gc --cache`).
    pub async fn remove_cache(&self) -> Result<Vec<String>, EngineError> {
        match self {
            Engine::Docker(d) => d.remove_cache().await,
            Engine::Local(_) => Ok(Vec::new()),
        }
    }

    /// Removes containers, networks and volumes labelled [`crate::config::RUN_LABEL`] (any
    /// run, or only `run`).
    pub async fn remove_labelled(&self, run: Option<&str>) -> Result<Removed, EngineError> {
        match self {
            Engine::Docker(d) => d.remove_labelled(run).await,
            Engine::Local(_) => Ok(Removed::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    /// The message is ours and unchanged; the client's own error stays behind it as `source()`.
    #[test]
    fn an_engine_error_keeps_the_clients_error_as_its_source() {
        use std::error::Error as _;
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let e = super::EngineError::Lost {
            host: "e2".into(),
            reason: "upload to /p: connection lost".into(),
            cause: Some(super::Cause::new(io)),
        };
        assert_eq!(e.to_string(), "e2: engine lost: upload to /p: connection lost");
        assert_eq!(
            e.source().map(|s| s.to_string()).as_deref(),
            Some("reset by peer")
        );
        let plain = super::EngineError::Shard {
            host: "e1".into(),
            reason: "shard has an empty command".into(),
            cause: None,
        };
        assert!(plain.source().is_none());
    }

    /// The runner shares one engine between the tasks of all its slots.
    #[test]
    fn engine_is_shareable_across_tasks() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<super::Engine>();
        shareable::<super::EngineError>();
    }
}
