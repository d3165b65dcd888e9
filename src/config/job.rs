//! The job: what every shard's environment holds besides the tests — image, working
//! directory, env, resource limits, extra files, services next to each shard, steps before
//! and after the shards, artifacts to bring back, and secrets delivered only where named.
//!
//! It lives in `[job]` of the hosts file or in its own file (`--job shard.toml`, also a
//! `[job]` table). Errors name file:line:col like the rest of the hosts file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::IgnoredAny;
use toml::Spanned;

use super::{ConfigError, absolute, from_toml};

/// How long a service may take to become ready unless told otherwise.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The parsed `[job]` table, paths resolved against the file's directory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobConfig {
    /// Where it came from, for messages.
    pub source: String,
    /// The directory relative paths in the file are resolved against.
    pub base: PathBuf,
    /// The shards' image, instead of the hosts file's (`--image` wins over both).
    pub image: Option<String>,
    /// The shards' working directory: absolute, or relative to the shard root.
    pub workdir: Option<String>,
    /// Variables set in every shard.
    pub env: BTreeMap<String, String>,
    /// Variables of the caller's environment the shards see (`pass_env = [...]`).
    pub pass_env: Vec<String>,
    /// CPUs per shard container (Docker's `--cpus`).
    pub cpus: Option<f64>,
    /// Memory limit per shard container, bytes.
    pub memory: Option<u64>,
    /// Local files and directories placed in every shard.
    pub files: Vec<FileSpec>,
    /// Paths (absolute, or relative to the shard's working directory) copied out of every
    /// shard into `<out>/artifacts/<shard>/`.
    pub artifacts: Vec<String>,
    /// Names of the secrets the shard container itself receives (`secrets = [...]`).
    pub shard_secrets: Vec<String>,
    /// Every secret the job declares (`[[job.secret]]`), and where its value is read.
    pub secret_defs: Vec<SecretSpec>,
    /// `[[job.service]]`: containers started next to every shard.
    pub service: Vec<ServiceConfig>,
    /// `[[job.pre_step]]`: run once before the shards, in order.
    pub pre_step: Vec<StepConfig>,
    /// `[[job.post_step]]`: run once after the shards, whatever happened.
    pub post_step: Vec<StepConfig>,
}

/// A local file or directory placed in every shard.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSpec {
    /// On this machine, absolute.
    pub src: PathBuf,
    /// Relative to the shard root.
    pub dest: String,
}

/// Where a secret's value is read, on the machine running cargo-shard.
#[derive(Debug, Clone, PartialEq)]
pub enum SecretSource {
    /// `from_env`: this environment variable.
    Env(String),
    /// `from_file`: this file, absolute.
    File(PathBuf),
}

/// A secret read on the machine running cargo-shard.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretSpec {
    /// What `secrets = [...]` lists name it by.
    pub name: String,
    /// Where its value is read.
    pub from: SecretSource,
    /// Delivered as this environment variable instead of the file `/run/secrets/NAME`.
    pub as_env: Option<String>,
}

/// How a service says it is ready.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadyCheck {
    /// Started is ready.
    None,
    /// An exec array run inside the service until it exits 0.
    Command(Vec<String>),
    /// A TCP port inside the service accepting connections (checked with the image's `nc`).
    Tcp(u16),
}

/// A container started next to every shard, reachable by its name.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    /// Its host name, as the shards reach it.
    pub name: String,
    /// Default: the shards' image.
    pub image: Option<String>,
    /// Variables set in the service.
    pub env: BTreeMap<String, String>,
    /// Exec array; empty means the image's own command.
    pub command: Vec<String>,
    /// When it counts as started.
    pub ready: ReadyCheck,
    /// How long it may take to be ready.
    pub ready_timeout: Duration,
    /// Names of the secrets it receives.
    pub secrets: Vec<String>,
}

/// A command run once before (or after) all shards.
#[derive(Debug, Clone, PartialEq)]
pub struct StepConfig {
    /// Its name in messages and logs.
    pub name: String,
    /// Exec array.
    pub command: Vec<String>,
    /// Run in a container of this image on the first host; locally when absent.
    pub image: Option<String>,
    /// Local steps: relative to the job file's directory (default: the current directory).
    /// Container steps: absolute inside the container.
    pub workdir: Option<String>,
    /// Variables set for the step.
    pub env: BTreeMap<String, String>,
    /// Names of the secrets it receives.
    pub secrets: Vec<String>,
    /// Pre-steps only: paths (relative to the step's working directory) uploaded into every
    /// shard under `artifacts/<file name>`.
    pub artifacts: Vec<String>,
}

impl JobConfig {
    /// The job starts containers next to every shard (so it needs a Docker engine).
    pub fn has_services(&self) -> bool {
        !self.service.is_empty()
    }

    /// Whether something in the job lives for one shard's container alone: services, or
    /// artifacts copied out of it (the job's own, or a pre-step's that shards learn about).
    pub fn ties_work_to_its_container(&self) -> bool {
        !self.service.is_empty()
            || !self.artifacts.is_empty()
            || self.pre_step.iter().any(|s| !s.artifacts.is_empty())
    }

    /// Whether nothing in the job belongs to one shard's container alone (the above, or a
    /// CPU or memory limit per container), so a host's slots may share one.
    pub fn lets_slots_share(&self) -> bool {
        !self.ties_work_to_its_container() && self.cpus.is_none() && self.memory.is_none()
    }

    /// `--job FILE`: a file holding a `[job]` table.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = read(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let raw: JobFile = from_toml(&text, &path.display().to_string())?;
        resolve(raw.job, &text, &path.display().to_string(), base)
    }

    /// The `[job]` table of a hosts file, if it has one.
    pub fn from_hosts_file(path: &Path) -> Result<Option<Self>, ConfigError> {
        let text = read(path)?;
        Self::parse_hosts_text(
            &text,
            &path.display().to_string(),
            path.parent().unwrap_or(Path::new(".")),
        )
    }

    /// [`JobConfig::from_hosts_file`] on text.
    pub fn parse_hosts_text(text: &str, origin: &str, base: &Path) -> Result<Option<Self>, ConfigError> {
        let raw: HostsWithJob = from_toml(text, origin)?;
        raw.job.map(|j| resolve(j, text, origin, base)).transpose()
    }

    /// [`JobConfig::load`] on text.
    pub fn parse(text: &str, origin: &str, base: &Path) -> Result<Self, ConfigError> {
        let raw: JobFile = from_toml(text, origin)?;
        resolve(raw.job, text, origin, base)
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobFile {
    job: RawJob,
}

/// A hosts file seen only for its `[job]`; the hosts parser checks the rest.
#[derive(Deserialize)]
struct HostsWithJob {
    job: Option<RawJob>,
    #[allow(dead_code)]
    defaults: Option<IgnoredAny>,
    #[allow(dead_code)]
    host: Option<IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawJob {
    image: Option<String>,
    workdir: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    pass_env: Vec<String>,
    cpus: Option<Spanned<f64>>,
    memory: Option<Spanned<String>>,
    #[serde(default)]
    files: Vec<RawFileSpec>,
    #[serde(default)]
    artifacts: Vec<String>,
    #[serde(default)]
    secrets: Vec<Spanned<String>>,
    #[serde(default)]
    secret: Vec<RawSecret>,
    #[serde(default)]
    service: Vec<RawService>,
    #[serde(default)]
    pre_step: Vec<RawStep>,
    #[serde(default)]
    post_step: Vec<RawStep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFileSpec {
    src: PathBuf,
    dest: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    name: Spanned<String>,
    from_env: Option<String>,
    from_file: Option<PathBuf>,
    as_env: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: Spanned<String>,
    image: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    command: Vec<String>,
    ready_cmd: Option<Spanned<Vec<String>>>,
    ready_tcp: Option<Spanned<i64>>,
    ready_timeout: Option<Spanned<String>>,
    #[serde(default)]
    secrets: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: Spanned<String>,
    command: Spanned<Vec<String>>,
    image: Option<String>,
    workdir: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    secrets: Vec<Spanned<String>>,
    artifacts: Option<Spanned<Vec<String>>>,
}

/// Turns the table's spans into `file:line:col` errors.
struct At<'a> {
    text: &'a str,
    origin: &'a str,
}

impl At<'_> {
    fn err(&self, span: std::ops::Range<usize>, msg: String) -> ConfigError {
        ConfigError::at(self.text, self.origin, span, msg)
    }

    /// A table's `name`: it follows `rule` and no earlier table of its `kind` took it.
    fn unique_name<'n>(
        &self,
        name: &Spanned<String>,
        kind: &str,
        rule: NameRule,
        taken: impl IntoIterator<Item = &'n String>,
    ) -> Result<String, ConfigError> {
        let n = name.get_ref();
        if !(rule.valid)(n) {
            return Err(self.err(name.span(), format!("{kind} name {n:?} must be {}", rule.says)));
        }
        if taken.into_iter().any(|t| t == n) {
            return Err(self.err(name.span(), format!("duplicate {kind} \"{n}\"")));
        }
        Ok(n.clone())
    }
}

/// What a name may hold, and how the error says it.
#[derive(Clone, Copy)]
struct NameRule {
    valid: fn(&str) -> bool,
    says: &'static str,
}

/// Secrets and steps: names that are safe as file names.
const PLAIN: NameRule = NameRule {
    valid: is_plain_name,
    says: "letters, digits, `-`, `_` or `.`",
};

/// Services: reachable by their name, so a DNS label.
const HOST_NAME: NameRule = NameRule {
    valid: is_dns_label,
    says: "a host name: lowercase letters, digits and `-`",
};

/// `[job]` resolved: each part checked where it is written, secrets first because every
/// other part names them.
fn resolve(raw: RawJob, text: &str, origin: &str, base: &Path) -> Result<JobConfig, ConfigError> {
    let at = At { text, origin };
    let secret_defs = secret_defs(&raw.secret, &at, base)?;
    let refs = SecretRefs {
        defs: &secret_defs,
        at: &at,
    };
    Ok(JobConfig {
        source: origin.to_string(),
        base: base.to_path_buf(),
        cpus: cpus(raw.cpus.as_ref(), &at)?,
        memory: match &raw.memory {
            None => None,
            Some(m) => Some(parse_bytes(m.get_ref()).map_err(|e| at.err(m.span(), e.to_string()))?),
        },
        files: files(&raw.files, &at, base)?,
        shard_secrets: refs.names(&raw.secrets)?,
        service: services(&raw.service, &refs)?,
        pre_step: steps(&raw.pre_step, false, &refs)?,
        post_step: steps(&raw.post_step, true, &refs)?,
        image: raw.image,
        workdir: raw.workdir,
        env: raw.env,
        pass_env: raw.pass_env,
        artifacts: raw.artifacts,
        secret_defs,
    })
}

/// `[[job.secret]]`: each name once, one source each.
fn secret_defs(raw: &[RawSecret], at: &At, base: &Path) -> Result<Vec<SecretSpec>, ConfigError> {
    let mut defs: Vec<SecretSpec> = Vec::new();
    for s in raw {
        let name = at.unique_name(&s.name, "secret", PLAIN, defs.iter().map(|d| &d.name))?;
        let from = match (&s.from_env, &s.from_file) {
            (Some(var), None) => SecretSource::Env(var.clone()),
            (None, Some(path)) => SecretSource::File(absolute(base, path)),
            _ => {
                return Err(at.err(
                    s.name.span(),
                    format!("secret \"{name}\" needs exactly one of `from_env` or `from_file`"),
                ));
            }
        };
        if let Some(v) = &s.as_env
            && !is_env_name(v.get_ref())
        {
            return Err(at.err(
                v.span(),
                format!("`as_env` {:?} is not an environment variable name", v.get_ref()),
            ));
        }
        defs.push(SecretSpec {
            name,
            from,
            as_env: s.as_env.as_ref().map(|v| v.get_ref().clone()),
        });
    }
    Ok(defs)
}

/// Checks a `secrets = [...]` list against the declared secrets.
struct SecretRefs<'a> {
    defs: &'a [SecretSpec],
    at: &'a At<'a>,
}

impl SecretRefs<'_> {
    fn names(&self, list: &[Spanned<String>]) -> Result<Vec<String>, ConfigError> {
        list.iter()
            .map(|r| {
                if self.defs.iter().any(|s| &s.name == r.get_ref()) {
                    Ok(r.get_ref().clone())
                } else {
                    Err(self.at.err(
                        r.span(),
                        format!(
                            "unknown secret \"{}\" (declare it in [[job.secret]])",
                            r.get_ref()
                        ),
                    ))
                }
            })
            .collect()
    }
}

/// `[[job.service]]`: host names, once each, and at most one readiness check.
fn services(raw: &[RawService], refs: &SecretRefs) -> Result<Vec<ServiceConfig>, ConfigError> {
    let at = refs.at;
    let mut services: Vec<ServiceConfig> = Vec::new();
    for s in raw {
        let name = at.unique_name(&s.name, "service", HOST_NAME, services.iter().map(|o| &o.name))?;
        services.push(ServiceConfig {
            name,
            image: s.image.clone(),
            env: s.env.clone(),
            command: s.command.clone(),
            ready: ready_check(s, at)?,
            ready_timeout: match &s.ready_timeout {
                None => DEFAULT_READY_TIMEOUT,
                Some(t) => humantime::parse_duration(t.get_ref())
                    .map_err(|e| at.err(t.span(), format!("`ready_timeout` {:?}: {e}", t.get_ref())))?,
            },
            secrets: refs.names(&s.secrets)?,
        });
    }
    Ok(services)
}

fn ready_check(s: &RawService, at: &At) -> Result<ReadyCheck, ConfigError> {
    match (&s.ready_cmd, &s.ready_tcp) {
        (Some(_), Some(p)) => Err(at.err(p.span(), "give `ready_cmd` or `ready_tcp`, not both".to_string())),
        (Some(c), None) if c.get_ref().is_empty() => {
            Err(at.err(c.span(), "`ready_cmd` is an empty command".to_string()))
        }
        (Some(c), None) => Ok(ReadyCheck::Command(c.get_ref().clone())),
        (None, Some(p)) => match u16::try_from(*p.get_ref()) {
            Ok(port) if port > 0 => Ok(ReadyCheck::Tcp(port)),
            _ => Err(at.err(p.span(), format!("`ready_tcp` {} is not a port", p.get_ref()))),
        },
        (None, None) => Ok(ReadyCheck::None),
    }
}

/// `[[job.pre_step]]` or `[[job.post_step]]`: names once each, a command, and artifacts
/// only before the shards (nothing runs after a post-step to receive them).
fn steps(list: &[RawStep], post: bool, refs: &SecretRefs) -> Result<Vec<StepConfig>, ConfigError> {
    let at = refs.at;
    let mut out: Vec<StepConfig> = Vec::new();
    for s in list {
        let name = at.unique_name(&s.name, "step", PLAIN, out.iter().map(|o| &o.name))?;
        if s.command.get_ref().is_empty() {
            return Err(at.err(s.command.span(), "`command` is an empty command".to_string()));
        }
        let artifacts = s
            .artifacts
            .as_ref()
            .map(|a| a.get_ref().clone())
            .unwrap_or_default();
        if let Some(a) = &s.artifacts
            && post
            && !artifacts.is_empty()
        {
            return Err(at.err(
                a.span(),
                "post-steps have no `artifacts` (nothing runs after them)".to_string(),
            ));
        }
        out.push(StepConfig {
            name,
            command: s.command.get_ref().clone(),
            image: s.image.clone(),
            workdir: s.workdir.clone(),
            env: s.env.clone(),
            secrets: refs.names(&s.secrets)?,
            artifacts,
        });
    }
    Ok(out)
}

fn cpus(raw: Option<&Spanned<f64>>, at: &At) -> Result<Option<f64>, ConfigError> {
    match raw {
        None => Ok(None),
        Some(c) if c.get_ref().is_finite() && *c.get_ref() > 0.0 => Ok(Some(*c.get_ref())),
        Some(c) => Err(at.err(c.span(), format!("`cpus` must be positive, got {}", c.get_ref()))),
    }
}

/// `files = [...]`: each `dest` a relative path that stays inside the shard root.
fn files(raw: &[RawFileSpec], at: &At, base: &Path) -> Result<Vec<FileSpec>, ConfigError> {
    let mut files = Vec::new();
    for f in raw {
        let dest = f.dest.get_ref().trim_start_matches("./");
        if dest.is_empty() || dest.starts_with('/') || dest.split('/').any(|c| c == "..") {
            return Err(at.err(
                f.dest.span(),
                format!(
                    "`dest` {:?} must be a relative path inside the shard root",
                    f.dest.get_ref()
                ),
            ));
        }
        files.push(FileSpec {
            src: absolute(base, &f.src),
            dest: dest.to_string(),
        });
    }
    Ok(files)
}

/// A memory limit Docker would not take.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MemoryError {
    /// A unit Docker does not know.
    #[error("`memory` {0:?}: unknown unit (use k, m, g or t)")]
    Unit(String),
    /// No number before the unit.
    #[error("`memory` {0:?} is not a size like \"512m\"")]
    NotASize(String),
    /// More than Docker takes.
    #[error("`memory` {0:?} is too large (Docker takes at most 8191p)")]
    TooLarge(String),
    /// Less than Docker takes.
    #[error("`memory` {0:?} is below Docker's minimum of 6m")]
    TooSmall(String),
}

/// `512m`, `2g`, `1.5GiB`, `1048576` → bytes (binary units, as Docker reads them).
pub fn parse_bytes(s: &str) -> Result<u64, MemoryError> {
    let t = s.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim().trim_end_matches("ib").trim_end_matches('b');
    let mult: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return Err(MemoryError::Unit(s.to_string())),
    };
    let n: f64 = num.parse().map_err(|_| MemoryError::NotASize(s.to_string()))?;
    let bytes = (n * mult as f64).round();
    if !bytes.is_finite() || bytes > crate::limits::MAX_MEMORY as f64 {
        return Err(MemoryError::TooLarge(s.to_string()));
    }
    // Docker refuses limits under 6 MiB; say so here rather than at container start.
    if bytes < (6 << 20) as f64 {
        return Err(MemoryError::TooSmall(s.to_string()));
    }
    Ok(bytes as u64)
}

fn is_plain_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        JobConfig::parse(text, "shard.toml", Path::new("/base"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn memory_sizes_that_overflow_are_refused() {
        assert_eq!(
            parse_bytes("99999999999g").unwrap_err().to_string(),
            "`memory` \"99999999999g\" is too large (Docker takes at most 8191p)"
        );
        assert!(parse_bytes("1e400").is_err());
        assert_eq!(parse_bytes("2g"), Ok(2 << 30));
    }

    #[test]
    fn slots_share_a_container_only_when_nothing_belongs_to_one_shard() {
        let job = |body: &str| {
            JobConfig::parse(&format!("[job]\n{body}"), "shard.toml", Path::new("/base")).unwrap()
        };
        assert!(JobConfig::default().lets_slots_share());
        assert!(job("env = { A = \"1\" }\n").lets_slots_share());
        for body in [
            "cpus = 1\n",
            "memory = \"1g\"\n",
            "artifacts = [\"out\"]\n",
            "[[job.service]]\nname = \"db\"\nimage = \"pg\"\n",
            "[[job.pre_step]]\nname = \"gen\"\ncommand = [\"true\"]\nartifacts = [\"gen\"]\n",
        ] {
            assert!(!job(body).lets_slots_share(), "{body}");
        }
    }

    #[test]
    fn full_job_parses() {
        let text = r#"
[job]
image = "img"
workdir = "src"
env = { A = "1" }
cpus = 1.5
memory = "512m"
files = [{ src = "data", dest = "data" }]
artifacts = ["out"]
secrets = ["tok"]

[[job.secret]]
name = "tok"
from_env = "TOKEN"
as_env = "API_TOKEN"

[[job.secret]]
name = "pw"
from_file = "pw.txt"

[[job.service]]
name = "kv"
command = ["sh", "-c", "nc -ll -p 7000 -e cat"]
ready_tcp = 7000
ready_timeout = "5s"
secrets = ["pw"]

[[job.pre_step]]
name = "gen"
command = ["sh", "-c", "echo hi > x"]
artifacts = ["x"]

[[job.post_step]]
name = "done"
command = ["true"]
image = "img"
"#;
        let j = JobConfig::parse(text, "shard.toml", Path::new("/base")).unwrap();
        assert_eq!(j.memory, Some(512 << 20));
        assert_eq!(j.cpus, Some(1.5));
        assert_eq!(j.files[0].src, PathBuf::from("/base/data"));
        assert_eq!(
            j.secret_defs[1].from,
            SecretSource::File(PathBuf::from("/base/pw.txt"))
        );
        assert_eq!(j.service[0].ready, ReadyCheck::Tcp(7000));
        assert_eq!(j.service[0].ready_timeout, Duration::from_secs(5));
        assert_eq!(j.service[0].secrets, vec!["pw".to_string()]);
        assert_eq!(j.pre_step[0].artifacts, vec!["x".to_string()]);
        assert_eq!(j.post_step[0].image.as_deref(), Some("img"));
    }

    #[test]
    fn unknown_key_points_at_it() {
        let e = err("[job]\nimage = \"x\"\n[[job.service]]\nname = \"kv\"\nport = 1\n");
        assert!(e.starts_with("shard.toml:5:1: unknown field `port`"), "{e}");
    }

    #[test]
    fn unknown_secret_reference_points_at_it() {
        let e = err("[job]\n[[job.service]]\nname = \"kv\"\nsecrets = [\"nope\"]\n");
        assert_eq!(
            e,
            "shard.toml:4:12: unknown secret \"nope\" (declare it in [[job.secret]])"
        );
    }

    #[test]
    fn bad_values_are_refused_where_they_are() {
        assert_eq!(
            err("[job]\nmemory = \"12q\"\n"),
            "shard.toml:2:10: `memory` \"12q\": unknown unit (use k, m, g or t)"
        );
        assert_eq!(
            err("[job]\ncpus = 0.0\n"),
            "shard.toml:2:8: `cpus` must be positive, got 0"
        );
        assert_eq!(
            err("[job]\n[[job.service]]\nname = \"KV\"\n"),
            "shard.toml:3:8: service name \"KV\" must be a host name: lowercase letters, digits and `-`"
        );
        assert_eq!(
            err("[job]\n[[job.service]]\nname = \"kv\"\nready_cmd = [\"true\"]\nready_tcp = 1\n"),
            "shard.toml:5:13: give `ready_cmd` or `ready_tcp`, not both"
        );
        assert_eq!(
            err("[job]\n[[job.secret]]\nname = \"s\"\n"),
            "shard.toml:3:8: secret \"s\" needs exactly one of `from_env` or `from_file`"
        );
        assert_eq!(
            err("[job]\n[[job.post_step]]\nname = \"p\"\ncommand = [\"true\"]\nartifacts = [\"x\"]\n"),
            "shard.toml:5:13: post-steps have no `artifacts` (nothing runs after them)"
        );
        assert_eq!(
            err("[job]\n[[job.pre_step]]\nname = \"p\"\ncommand = []\n"),
            "shard.toml:4:11: `command` is an empty command"
        );
    }

    #[test]
    fn hosts_file_job_is_optional() {
        let hosts = "[[host]]\nname = \"e1\"\ndocker_host = \"local://\"\n";
        assert_eq!(
            JobConfig::parse_hosts_text(hosts, "h.toml", Path::new("/")).unwrap(),
            None
        );
        let with = format!("{hosts}[job]\nimage = \"x\"\n");
        let j = JobConfig::parse_hosts_text(&with, "h.toml", Path::new("/"))
            .unwrap()
            .unwrap();
        assert_eq!(j.image.as_deref(), Some("x"));
    }

    #[test]
    fn the_documented_example_parses() {
        let text = include_str!("../../hosts.example.toml");
        let j = JobConfig::parse_hosts_text(text, "hosts.example.toml", Path::new("/base"))
            .unwrap()
            .unwrap();
        assert_eq!(j.service[0].name, "postgres");
        assert_eq!(j.secret_defs[1].as_env.as_deref(), Some("POSTGRES_PASSWORD"));
        assert_eq!(j.pre_step.len(), 2);
        assert_eq!(j.post_step.len(), 1);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("1g"), Ok(1 << 30));
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("10485760"), Ok(10 << 20));
        assert!(parse_bytes("1k").is_err());
    }
}
