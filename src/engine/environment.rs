//! What a shard's container gets besides its tests: services next to it on a private
//! network, resource limits, files outside the shard root (secrets), and the secret values to
//! keep out of its output. Filled by the runner from the job; empty by default.

use std::time::Duration;

pub use super::redact::Secrets;
pub use crate::config::job::ReadyCheck;

/// Where file secrets land inside containers.
pub const SECRETS_DIR: &str = "/run/secrets";

/// Files placed at absolute paths (the local engine puts them under the shard root). Their
/// contents are secrets, so `Debug` shows only the paths.
#[derive(Clone, Default)]
pub struct PlacedFiles(pub Vec<(String, Vec<u8>)>);

impl std::fmt::Debug for PlacedFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(p, _)| p)).finish()
    }
}

/// One service container beside a shard, reachable on the shard's network by `name`.
#[derive(Clone)]
pub struct ServiceSpec {
    /// The name the shard reaches it by on the shard's network.
    pub name: String,
    /// The image it runs.
    pub image: String,
    /// Its environment, secrets given as variables included (so `Debug` shows names only).
    pub env: Vec<(String, String)>,
    /// Exec array; empty keeps the image's own command.
    pub command: Vec<String>,
    /// How to tell the service is ready before the shard starts.
    pub ready: ReadyCheck,
    /// How long to wait for it to be ready before the shard fails.
    pub ready_timeout: Duration,
    /// Files placed in the service container, secrets among them.
    pub files: PlacedFiles,
}

impl std::fmt::Debug for ServiceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The env may hold secrets delivered as variables: names only.
        let env: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("ServiceSpec")
            .field("name", &self.name)
            .field("image", &self.image)
            .field("env", &env)
            .field("command", &self.command)
            .field("ready", &self.ready)
            .field("ready_timeout", &self.ready_timeout)
            .field("files", &self.files)
            .finish()
    }
}

/// The job's additions to one shard.
#[derive(Debug, Clone, Default)]
pub struct ShardExtras {
    /// Service containers started beside the shard on a private network.
    pub services: Vec<ServiceSpec>,
    /// CPUs in units of 10⁻⁹ (Docker's `NanoCpus`).
    pub nano_cpus: Option<i64>,
    /// Bytes.
    pub memory: Option<i64>,
    /// Files placed in the shard's container (file secrets, the job's files).
    pub files: PlacedFiles,
    /// Masked in the log stream and in everything collected.
    pub secrets: Secrets,
    /// Sees every output line as it arrives.
    pub on_line: super::lines::LineSink,
    /// Staged cache volumes mounted read-only: (volume name, absolute path in the container).
    pub mounts: Vec<(String, String)>,
    /// Whether the files to collect are needed once the command exited with a given code.
    pub collect_check: CollectCheck,
}

type CheckFn = std::sync::Arc<dyn Fn(Option<i64>) -> bool + Send + Sync>;

/// Says, once a shard's command exited (with the code given), whether its files must still be
/// downloaded: the runner's trusted live channel may already have said all they would. Unset,
/// they always are.
#[derive(Clone, Default)]
pub struct CollectCheck(Option<CheckFn>);

impl CollectCheck {
    /// A check asking `needed` with the exit code.
    pub fn new(needed: impl Fn(Option<i64>) -> bool + Send + Sync + 'static) -> Self {
        Self(Some(std::sync::Arc::new(needed)))
    }

    /// Whether to download the files after an exit with `exit_code`.
    pub fn needed(&self, exit_code: Option<i64>) -> bool {
        self.0.as_ref().is_none_or(|needed| needed(exit_code))
    }
}

impl std::fmt::Debug for CollectCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "CollectCheck(set)"
        } else {
            "CollectCheck(always)"
        })
    }
}
