//! Engines: where a shard's container runs. Docker over `unix://`, `tcp://` (TLS) and
//! `ssh://` (an ssh2 tunnel to the remote socket), or local processes when no engine is
//! reachable. Every object created carries [`crate::config::RUN_LABEL`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::discover::{Collected, ShardSpec};

pub mod docker;
pub mod local;
pub mod ssh;
mod stub_lead;

/// Where the payload lands inside a container; local shards use a temp dir instead.
pub const CONTAINER_ROOT: &str = "/cargo-shard";

/// Why an engine call failed, in words a user can act on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// Could not reach the engine at all (refused, timeout, auth failed, TLS, socket missing).
    #[error("{host}: {reason}")]
    Unreachable { host: String, reason: String },
    /// The engine went away while a shard ran on it: re-queue its work elsewhere.
    #[error("{host}: engine lost: {reason}")]
    Lost { host: String, reason: String },
    #[error("{host}: image {image} is not present (no registry is used: load or import it)")]
    ImageMissing { host: String, image: String },
    /// The shard's container failed before it could report results (upload, start, OOM).
    #[error("{host}: {reason}")]
    Shard { host: String, reason: String },
    #[error("cancelled")]
    Cancelled,
}

/// What `cargo shard hosts` shows for one engine.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct EngineInfo {
    pub version: String,
    pub api_version: String,
    pub cpus: u64,
    pub memory_bytes: u64,
    pub image_present: bool,
    pub round_trip: Duration,
}

/// One shard's container, fully described.
#[derive(Debug, Clone)]
pub struct ShardJob {
    /// Container name, unique per run, shard and attempt.
    pub name: String,
    pub image: String,
    pub network: String,
    pub labels: BTreeMap<String, String>,
    /// The shared payload (a tar whose entries are relative to the shard root), built once.
    pub payload: Arc<Vec<u8>>,
    /// The shard root: [`CONTAINER_ROOT`] for Docker; the local engine picks its own.
    pub spec: ShardSpec,
    /// Where the shard's combined output is streamed.
    pub log_path: PathBuf,
    /// Leave the container in place afterwards (`--keep-containers`).
    pub keep: bool,
    /// The shard root chosen by [`Engine::make_root`].
    pub root: String,
}

/// Time spent in each phase of a shard's life.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Phases {
    pub create: Duration,
    pub upload: Duration,
    pub start: Duration,
    pub run: Duration,
    pub collect: Duration,
    pub remove: Duration,
}

/// What a finished shard gives back.
#[derive(Debug, Clone)]
pub struct ShardRun {
    pub container: String,
    pub collected: Collected,
    pub phases: Phases,
    pub started: Instant,
    pub finished: Instant,
}

/// What `gc` removed from one engine.
#[derive(Debug, Clone, Default)]
pub struct Removed {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
}

/// A connected engine.
pub enum Engine {
    Docker(docker::DockerEngine),
    Local(local::LocalEngine),
}
