//! Where the configuration comes from when nothing is passed: `--hosts`, `CARGO_SHARD_HOSTS`,
//! `.config/cargo-shard.toml` in the project root, then `DOCKER_HOST`, in that order; and the
//! default command-line options (`[options]`) the project file may hold.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, absolute, from_toml};

/// The project file, relative to the workspace or module root (as nextest's `.config/nextest.toml`).
pub const PROJECT_FILE: &str = ".config/cargo-shard.toml";

/// Where the hosts came from; printed with the backend line so a run says what it used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostsSource {
    /// `--hosts FILE`.
    Flag(PathBuf),
    /// `CARGO_SHARD_HOSTS`.
    Env(PathBuf),
    /// `.config/cargo-shard.toml` with `[[host]]` entries.
    Project(PathBuf),
    /// `DOCKER_HOST`, as the docker CLI reads it.
    DockerHost(String),
    /// Nothing configured: the local socket if it answers, else local processes.
    Default,
}

impl HostsSource {
    /// A hosts file to read, if the source is one.
    pub fn hosts_file(&self) -> Option<&Path> {
        match self {
            HostsSource::Flag(p) | HostsSource::Env(p) | HostsSource::Project(p) => Some(p),
            HostsSource::DockerHost(_) | HostsSource::Default => None,
        }
    }

    /// Whether the user asked for these hosts: then a host that cannot run is an error, never
    /// a reason to fall back to local processes.
    pub fn configured(&self) -> bool {
        !matches!(self, HostsSource::Default)
    }
}

impl std::fmt::Display for HostsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostsSource::Flag(p) => write!(f, "{}", p.display()),
            HostsSource::Env(p) => write!(f, "CARGO_SHARD_HOSTS={}", p.display()),
            HostsSource::Project(p) => write!(f, "{}", p.display()),
            HostsSource::DockerHost(h) => write!(f, "DOCKER_HOST={h}"),
            HostsSource::Default => f.write_str("nothing configured, the local socket"),
        }
    }
}

/// The lookup order applied to what was found: the flag, the environment's hosts file, the
/// project file if it names hosts, `DOCKER_HOST`, else nothing.
pub fn hosts_source(
    flag: Option<&Path>,
    env_hosts: Option<&str>,
    project: Option<&Path>,
    docker_host: Option<&str>,
) -> Result<HostsSource, ConfigError> {
    if let Some(p) = flag {
        return Ok(HostsSource::Flag(p.to_path_buf()));
    }
    if let Some(p) = env_hosts.filter(|p| !p.is_empty()) {
        return Ok(HostsSource::Env(PathBuf::from(p)));
    }
    if let Some(p) = project
        && ProjectFile::load(p)?.has_hosts
    {
        return Ok(HostsSource::Project(p.to_path_buf()));
    }
    match docker_host.filter(|h| !h.is_empty()) {
        Some(h) => Ok(HostsSource::DockerHost(h.to_string())),
        None => Ok(HostsSource::Default),
    }
}

/// [`hosts_source`] with `CARGO_SHARD_HOSTS` and `DOCKER_HOST` from the environment.
pub fn hosts_source_from_env(
    flag: Option<&Path>,
    project: Option<&Path>,
) -> Result<HostsSource, ConfigError> {
    let env_hosts = std::env::var("CARGO_SHARD_HOSTS").ok();
    let docker_host = std::env::var("DOCKER_HOST").ok();
    hosts_source(flag, env_hosts.as_deref(), project, docker_host.as_deref())
}

/// The nearest `.config/cargo-shard.toml` from `start` upwards, stopping at the repository
/// root (a directory holding `.git`), so a checkout never picks up a file from outside it.
pub fn find_project_file(start: &Path) -> Option<PathBuf> {
    let start = std::path::absolute(start).ok()?;
    for dir in start.ancestors() {
        let candidate = dir.join(PROJECT_FILE);
        if candidate.is_file() {
            return Some(candidate);
        }
        if dir.join(".git").exists() {
            return None;
        }
    }
    None
}

/// Default command-line options from `[options]`: a flag given on the command line wins.
/// Durations are kept as text; the command line's own parser reads them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    /// `--shards`.
    pub shards: Option<usize>,
    /// `--retries`.
    pub retries: Option<u32>,
    /// `--shard-retries`.
    pub shard_retries: Option<u32>,
    /// `--flaky-result` (`pass` or `fail`).
    pub flaky_result: Option<String>,
    /// `--shard-timeout`.
    pub shard_timeout: Option<String>,
    /// `--test-timeout`.
    pub test_timeout: Option<String>,
    /// `--default-duration`.
    pub default_duration: Option<String>,
    /// Absolute (relative paths resolve against the project root).
    pub history: Option<PathBuf>,
    /// `--backend` (`auto`, `docker` or `local`).
    pub backend: Option<String>,
}

/// What the project file holds besides the hosts and the job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProjectFile {
    /// The file found.
    pub path: PathBuf,
    /// It has `[[host]]` tables, so it is the hosts file unless another is named.
    pub has_hosts: bool,
    /// Its `[options]`.
    pub options: Options,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProject {
    #[allow(dead_code)]
    defaults: Option<toml::Value>,
    host: Option<toml::Value>,
    #[allow(dead_code)]
    job: Option<toml::Value>,
    #[serde(default)]
    options: RawOptions,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawOptions {
    shards: Option<Spanned<i64>>,
    retries: Option<Spanned<i64>>,
    shard_retries: Option<Spanned<i64>>,
    flaky_result: Option<Spanned<String>>,
    shard_timeout: Option<String>,
    test_timeout: Option<String>,
    default_duration: Option<String>,
    history: Option<PathBuf>,
    backend: Option<Spanned<String>>,
}

impl ProjectFile {
    /// Reads and checks the project file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses the project file; the hosts and the job are checked by their own readers.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let raw: RawProject = from_toml(text, &origin)?;
        let at = |span: std::ops::Range<usize>, msg: String| ConfigError::at(text, &origin, span, msg);
        let count = |v: &Option<Spanned<i64>>, min: i64| -> Result<Option<i64>, ConfigError> {
            match v {
                Some(s) if *s.get_ref() < min => Err(at(
                    s.span(),
                    format!("must be at least {min}, got {}", s.get_ref()),
                )),
                Some(s) => Ok(Some(*s.get_ref())),
                None => Ok(None),
            }
        };
        let one_of = |v: &Option<Spanned<String>>, allowed: &[&str]| -> Result<Option<String>, ConfigError> {
            match v {
                Some(s) if !allowed.contains(&s.get_ref().as_str()) => Err(at(
                    s.span(),
                    format!("must be one of {}, got {:?}", allowed.join(", "), s.get_ref()),
                )),
                Some(s) => Ok(Some(s.get_ref().clone())),
                None => Ok(None),
            }
        };
        let o = &raw.options;
        // `.config/` sits in the root: relative paths are the root's.
        let root = path.parent().and_then(Path::parent).unwrap_or(Path::new("."));
        let options = Options {
            shards: count(&o.shards, 1)?.map(|n| n as usize),
            retries: count(&o.retries, 0)?.map(|n| n as u32),
            shard_retries: count(&o.shard_retries, 0)?.map(|n| n as u32),
            flaky_result: one_of(&o.flaky_result, &["pass", "fail"])?,
            shard_timeout: o.shard_timeout.clone(),
            test_timeout: o.test_timeout.clone(),
            default_duration: o.default_duration.clone(),
            history: o.history.as_ref().map(|p| absolute(root, p)),
            backend: one_of(&o.backend, &["auto", "docker", "local"])?,
        };
        Ok(Self {
            path: path.to_path_buf(),
            has_hosts: raw.host.is_some(),
            options,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(text: &str) -> Result<ProjectFile, String> {
        ProjectFile::parse(text, Path::new("/w/.config/cargo-shard.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn lookup_order_is_flag_env_project_docker_host() {
        let dir = tempfile::tempdir().unwrap();
        let with_hosts = dir.path().join("hosts.toml");
        std::fs::write(
            &with_hosts,
            "[[host]]\nname = \"a\"\ndocker_host = \"local://\"\n",
        )
        .unwrap();
        let no_hosts = dir.path().join("opts.toml");
        std::fs::write(&no_hosts, "[options]\nretries = 2\n").unwrap();
        let flag = Path::new("f.toml");
        let src = |f, e, p, d| hosts_source(f, e, p, d).unwrap();
        assert_eq!(
            src(Some(flag), Some("e.toml"), Some(&with_hosts), Some("unix:///s")),
            HostsSource::Flag(flag.into())
        );
        assert_eq!(
            src(None, Some("e.toml"), Some(&with_hosts), Some("unix:///s")),
            HostsSource::Env("e.toml".into())
        );
        assert_eq!(
            src(None, Some(""), Some(&with_hosts), Some("unix:///s")),
            HostsSource::Project(with_hosts.clone())
        );
        assert_eq!(
            src(None, None, Some(&no_hosts), Some("unix:///s")),
            HostsSource::DockerHost("unix:///s".into()),
            "a project file without [[host]] names no hosts"
        );
        assert_eq!(src(None, None, Some(&no_hosts), Some("")), HostsSource::Default);
        assert!(!HostsSource::Default.configured());
        assert!(HostsSource::DockerHost("unix:///s".into()).configured());
    }

    #[test]
    fn project_file_is_found_upwards_but_not_past_the_repository() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let deep = repo.join("crates/a/src");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::create_dir_all(repo.join(".config")).unwrap();
        std::fs::create_dir_all(repo.join(".git")).unwrap();
        assert_eq!(find_project_file(&deep), None);
        std::fs::write(repo.join(PROJECT_FILE), "").unwrap();
        assert_eq!(find_project_file(&deep), Some(repo.join(PROJECT_FILE)));
        // A file above the repository root belongs to someone else.
        let inner = repo.join("inner");
        std::fs::create_dir_all(inner.join(".git")).unwrap();
        assert_eq!(find_project_file(&inner), None);
    }

    #[test]
    fn options_are_read_and_checked_with_their_location() {
        let p = project("[options]\nretries = 2\nshard_retries = 0\nflaky_result = \"fail\"\nhistory = \"ci/history.json\"\n")
            .unwrap();
        assert!(!p.has_hosts);
        assert_eq!(p.options.retries, Some(2));
        assert_eq!(p.options.shard_retries, Some(0));
        assert_eq!(p.options.flaky_result.as_deref(), Some("fail"));
        assert_eq!(p.options.history, Some(PathBuf::from("/w/ci/history.json")));
        assert_eq!(
            project("[options]\nretries = -1\n").unwrap_err(),
            "/w/.config/cargo-shard.toml:2:11: must be at least 0, got -1"
        );
        assert_eq!(
            project("[options]\nbackend = \"cloud\"\n").unwrap_err(),
            "/w/.config/cargo-shard.toml:2:11: must be one of auto, docker, local, got \"cloud\""
        );
        let e = project("[options]\nretry = 1\n").unwrap_err();
        assert!(
            e.starts_with("/w/.config/cargo-shard.toml:2:1: unknown field `retry`"),
            "{e}"
        );
        assert!(project("[[host]]\nname = \"a\"\n").unwrap().has_hosts);
    }
}
