//! The hosts file (`hosts.toml`): which Docker engines to use and how to reach them.
//!
//! Every error names the file, line and column (`hosts.toml:7:11: …`) so a typo is found
//! without reading a stack trace. See `hosts.example.toml` for the documented schema.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

mod endpoint;
pub mod job;
pub mod locate;
pub mod registry;
mod resolve;
pub use endpoint::{AddressError, ChoiceError, Endpoint, EndpointError, SshHostKeyPolicy};
pub use registry::{PullPolicy, RegistryAuth};

/// The image every host uses unless told otherwise; made by `scripts/testbed`.
pub const DEFAULT_IMAGE: &str = "cargo-shard/base:latest";
/// Staged payload each host keeps across runs unless `cache_size` says otherwise: 10 GiB.
pub const DEFAULT_CACHE_SIZE: u64 = 10 << 30;

/// A `cache_size` that is not a size.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SizeError {
    /// No number where one was expected.
    #[error("{0:?} is not a size like \"10GiB\" or \"500MB\"")]
    NotASize(String),
    /// A unit this parser does not know.
    #[error("unknown unit {unit:?} in {text:?} (use B, KB, KiB, MB, MiB, GB, GiB, TB, TiB)")]
    Unit {
        /// The unit as written.
        unit: String,
        /// The whole value.
        text: String,
    },
}

/// `"10GiB"`, `"500 MB"`, `"0"` → bytes (binary units with `i`, decimal without).
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| SizeError::NotASize(text.to_string()))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1_000,
        "kib" => 1 << 10,
        "mb" | "m" => 1_000_000,
        "mib" => 1 << 20,
        "gb" | "g" => 1_000_000_000,
        "gib" => 1 << 30,
        "tb" | "t" => 1_000_000_000_000,
        "tib" => 1 << 40,
        other => {
            return Err(SizeError::Unit {
                unit: other.to_string(),
                text: text.to_string(),
            });
        }
    };
    Ok((value * scale as f64) as u64)
}

/// The label every object we create carries, with the run id as value.
pub const RUN_LABEL: &str = "dev.cargo-shard.run";
/// The label carrying a shard's index.
pub const SHARD_LABEL: &str = "dev.cargo-shard.shard";
/// The label of cache volumes (staged payload parts, kept across runs), never carried with
/// [`RUN_LABEL`]: `gc` keeps them unless asked (`--cache`). Its value is the part's hash.
pub const CACHE_LABEL: &str = "dev.cargo-shard.cache";
/// A cache volume's size in bytes (its contents never change: they are content-addressed).
pub const CACHE_SIZE_LABEL: &str = "dev.cargo-shard.cache-size";

#[derive(Debug, thiserror::Error)]
/// Why a hosts, job or project file cannot be used: one line naming where.
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: String,
        /// What the file system said.
        source: std::io::Error,
    },
    /// A value or key that is wrong where it is.
    #[error("{path}:{line}:{col}: {msg}")]
    At {
        /// The file.
        path: String,
        /// 1-based.
        line: usize,
        /// 1-based.
        col: usize,
        /// What is wrong there.
        msg: String,
    },
    /// The file as a whole (no host in it, …).
    #[error("{path}: {msg}")]
    File {
        /// The file.
        path: String,
        /// What is wrong with it.
        msg: String,
    },
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    host: Vec<RawHost>,
    #[serde(default)]
    registry: Vec<RawRegistry>,
    /// Read by [`job::JobConfig::from_hosts_file`].
    #[allow(dead_code)]
    job: Option<toml::Value>,
    /// Read by [`locate::ProjectFile`] (the project file's default command-line options).
    #[allow(dead_code)]
    options: Option<toml::Value>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    image: Option<String>,
    slots: Option<Spanned<i64>>,
    jobs: Option<Spanned<i64>>,
    network: Option<String>,
    pull: Option<Spanned<String>>,
    cache_size: Option<Spanned<String>>,
    early_slots: Option<bool>,
    share_container: Option<bool>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// `[[registry]]`: credentials for one registry, the password from an env var or a file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    server: Spanned<String>,
    username: String,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: Spanned<String>,
    docker_host: Spanned<String>,
    slots: Option<Spanned<i64>>,
    jobs: Option<Spanned<i64>>,
    weight: Option<Spanned<f64>>,
    image: Option<String>,
    network: Option<String>,
    pull: Option<Spanned<String>>,
    cache_size: Option<Spanned<String>>,
    early_slots: Option<bool>,
    share_container: Option<bool>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    insecure: Option<bool>,
    tls_verify: Option<bool>,
    cert_path: Option<PathBuf>,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    identity: Option<PathBuf>,
    known_hosts: Option<PathBuf>,
    host_key_check: Option<Spanned<String>>,
    remote_socket: Option<String>,
}

/// TLS material for a `tcp://` engine, as `DOCKER_TLS_VERIFY` / `DOCKER_CERT_PATH` give it.
#[derive(Debug, Clone, PartialEq)]
pub struct Tls {
    /// Check the engine's certificate against `ca`.
    pub verify: bool,
    /// Needed only to verify the engine's certificate.
    pub ca: Option<PathBuf>,
    /// Our client certificate.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// How to reach an engine over ssh.
#[derive(Debug, Clone, PartialEq)]
pub struct SshOptions {
    /// The private key to log in with (else the usual `~/.ssh` ones).
    pub identity: Option<PathBuf>,
    /// The known_hosts file (else `~/.ssh/known_hosts`).
    pub known_hosts: Option<PathBuf>,
    /// What to do with the server's host key.
    pub host_key_check: SshHostKeyPolicy,
    /// The Docker socket on the remote machine.
    pub remote_socket: String,
}

/// One engine, fully resolved: defaults applied, paths absolute.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    /// Its name in messages, `--only-host` and reports.
    pub name: String,
    /// Where its engine listens.
    pub endpoint: Endpoint,
    /// Containers (shards) at once.
    pub slots: usize,
    /// Tests at once inside one container (nextest `-j`, parallel go binaries): the value
    /// the run uses, so the planner's cost model and the shards agree.
    pub test_threads: usize,
    /// `jobs` was set by neither the host nor `[defaults]`: once connected, it becomes the
    /// engine's CPUs over the host's slots ([`Host::derive_test_threads`]); 1 until then.
    pub test_threads_auto: bool,
    /// Relative speed: a host of weight 2 finishes the same work in half the time.
    pub weight: f64,
    /// The shards' image.
    pub image: String,
    /// Network mode for shard containers: `none` unless configured.
    pub network: String,
    /// Bytes of staged payload parts the host keeps across runs (`cache_size`).
    pub cache_size: u64,
    /// `early_slots`: open the slot containers while the tests are still listed; unset,
    /// only where the engine is not on this machine ([`Host::opens_slots_early`]).
    pub early_slots: Option<bool>,
    /// `share_container`: `false` keeps one container per slot even where the run could
    /// give the host's slots one container ([`Host::share_one_container`]).
    pub share_container: Option<bool>,
    /// Slots whose tests run as threads of this host's one container: 1 unless the run
    /// shares it ([`Host::share_one_container`]).
    pub slots_shared: usize,
    /// Variables set in every shard on this host.
    pub env: BTreeMap<String, String>,
    /// Labels every container gets, besides ours.
    pub labels: BTreeMap<String, String>,
    /// Plain `tcp://` allowed to a non-loopback address.
    pub insecure: bool,
    /// TLS for a `tcp://` engine.
    pub tls: Option<Tls>,
    /// ssh for an `ssh://` engine.
    pub ssh: SshOptions,
    /// When to pull `image` at the start of a run.
    pub pull: PullPolicy,
    /// The file's `[[registry]]` credentials.
    pub registries: Vec<RegistryAuth>,
}

impl Host {
    /// Whether the slot containers open while the tests are listed. By default only where
    /// the engine runs elsewhere: starting containers on this machine takes the same CPUs
    /// the listing needs, and hides nothing.
    pub fn opens_slots_early(&self) -> bool {
        self.early_slots
            .unwrap_or_else(|| !self.endpoint.is_on_this_machine())
    }

    /// Sets `jobs` from the engine's CPU count when the hosts file left it unset.
    pub fn derive_test_threads(&mut self, cpus: u64) {
        if self.test_threads_auto {
            self.test_threads = jobs_from_cpus(cpus, self.slots);
        }
    }

    /// Runs the host's slots as one container whose runner runs `slots × jobs` tests at
    /// once: as many tests at once as before, but one container to create, start and feed
    /// instead of `slots` (measured in BENCHMARKS.md, "One container per host"). Not when
    /// the hosts file says `share_container = false`.
    pub fn share_one_container(&mut self) {
        if self.slots > 1 && self.share_container != Some(false) {
            self.test_threads *= self.slots;
            self.slots_shared *= self.slots;
            self.slots = 1;
        }
    }

    /// A derived `jobs` never exceeds the CPUs each shard container is limited to (`cpus`
    /// of the job, rounded up): more would only queue CPU-bound tests inside it.
    pub fn limit_test_threads_to(&mut self, container_cpus: f64) {
        if self.test_threads_auto && container_cpus.is_finite() && container_cpus > 0.0 {
            self.test_threads = self.test_threads.min((container_cpus.ceil() as usize).max(1));
        }
    }
}

/// Tests at once per container so a host's slots together use its CPUs: `cpus / slots`, at
/// least 1 (also when the engine does not say how many CPUs it has).
pub fn jobs_from_cpus(cpus: u64, slots: usize) -> usize {
    (cpus / slots.max(1) as u64).max(1) as usize
}

/// The parsed hosts file.
#[derive(Debug, Clone, PartialEq)]
pub struct HostsConfig {
    /// Where it came from, for messages (`<default>` when built in).
    pub source: String,
    /// Every host, in file order.
    pub hosts: Vec<Host>,
}

impl HostsConfig {
    /// Reads and checks a hosts file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, &path.display().to_string(), base)
    }

    /// Parses `text`; `origin` names it in errors and relative paths resolve against `base`.
    pub fn parse(text: &str, origin: &str, base: &Path) -> Result<Self, ConfigError> {
        let raw: RawFile = from_toml(text, origin)?;
        if raw.host.is_empty() {
            return Err(ConfigError::File {
                path: origin.to_string(),
                msg: "no [[host]] entries".to_string(),
            });
        }
        let resolver = resolve::Resolver { text, origin, base };
        let defaults = resolver.defaults(&raw)?;
        let mut hosts: Vec<Host> = Vec::new();
        for h in &raw.host {
            let host = resolver.host(h, &defaults, &hosts)?;
            hosts.push(host);
        }
        Ok(Self {
            source: origin.to_string(),
            hosts,
        })
    }

    /// The built-in default: `DOCKER_HOST` (with `DOCKER_TLS_VERIFY`/`DOCKER_CERT_PATH`) or
    /// the local socket, one host named `local` with one slot per CPU.
    pub fn from_env() -> Result<Self, ConfigError> {
        let docker_host =
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string());
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let mut text = format!("[[host]]\nname = \"local\"\ndocker_host = {docker_host:?}\nslots = {cpus}\n");
        if let Ok(dir) = std::env::var("DOCKER_CERT_PATH") {
            text.push_str(&format!("cert_path = {dir:?}\n"));
        }
        if let Ok(v) = std::env::var("DOCKER_TLS_VERIFY") {
            text.push_str(&format!("tls_verify = {}\n", !v.is_empty() && v != "0"));
        }
        Self::parse(&text, "DOCKER_HOST", Path::new("."))
    }

    /// The local-processes fallback: one host running shards as child processes.
    pub fn local_processes() -> Self {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let text = format!("[[host]]\nname = \"local\"\ndocker_host = \"local://\"\nslots = {cpus}\n");
        Self::parse(&text, "<built-in>", Path::new(".")).expect("built-in config parses")
    }

    /// Shards at once across every host.
    pub fn total_slots(&self) -> usize {
        self.hosts.iter().map(|h| h.slots).sum()
    }
}

/// TLS when any certificate setting or `tls_verify = true` asks for it; `tls_verify = false`
/// alone means none, as `DOCKER_TLS_VERIFY=0` does. Verifying needs the CA; presenting a
/// client certificate needs `cert` and `key` either way.
fn resolve_tls(h: &RawHost, base: &Path) -> Result<Option<Tls>, String> {
    let dir = h.cert_path.as_ref().map(|p| absolute(base, p));
    let pick = |explicit: &Option<PathBuf>, file: &str| {
        explicit
            .as_ref()
            .map(|p| absolute(base, p))
            .or_else(|| dir.as_ref().map(|d| d.join(file)))
    };
    let (ca, cert, key) = (
        pick(&h.ca, "ca.pem"),
        pick(&h.cert, "cert.pem"),
        pick(&h.key, "key.pem"),
    );
    let verify = h.tls_verify.unwrap_or(true);
    let asked =
        h.tls_verify == Some(true) || [&h.cert_path, &h.ca, &h.cert, &h.key].iter().any(|p| p.is_some());
    match (ca, cert, key) {
        (ca, Some(cert), Some(key)) if ca.is_some() || !verify => Ok(Some(Tls {
            verify,
            ca,
            cert,
            key,
        })),
        _ if !asked => Ok(None),
        (ca, cert, key) => {
            let missing: Vec<&str> = [
                ("ca", ca.is_none() && verify),
                ("cert", cert.is_none()),
                ("key", key.is_none()),
            ]
            .into_iter()
            .filter_map(|(name, gone)| gone.then_some(name))
            .collect();
            Err(format!(
                "TLS needs {} (or cert_path, a directory holding ca.pem, cert.pem and key.pem)",
                missing.join(", ")
            ))
        }
    }
}

fn absolute(base: &Path, p: &Path) -> PathBuf {
    let expanded = match p.to_str().and_then(|s| s.strip_prefix("~/")) {
        Some(rest) => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default()
            .join(rest),
        None => p.to_path_buf(),
    };
    if expanded.is_absolute() {
        expanded
    } else {
        base.join(expanded)
    }
}

impl ConfigError {
    /// An error at a byte span of `text`, located as file:line:col.
    pub(crate) fn at(text: &str, origin: &str, span: std::ops::Range<usize>, msg: String) -> Self {
        let (line, col) = line_col(text, span.start);
        ConfigError::At {
            path: origin.to_string(),
            line,
            col,
            msg,
        }
    }
}

/// Deserialises a TOML document, with toml's own errors as one located line.
pub(crate) fn from_toml<T: serde::de::DeserializeOwned>(text: &str, origin: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| match e.span() {
        Some(span) => ConfigError::at(text, origin, span, e.message().trim().replace('\n', " ")),
        None => ConfigError::File {
            path: origin.to_string(),
            msg: e.message().trim().to_string(),
        },
    })
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, col)
}

#[cfg(test)]
mod tests;
