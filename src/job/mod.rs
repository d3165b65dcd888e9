//! The job at run time: the `[job]` table with its secrets read, turned into each shard's
//! additions (services, limits, secrets where named, artifacts to collect), plus the steps
//! before and after the shards and the artifacts written back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::job::{JobConfig, SecretSource};
use crate::discover::ShardCtx;
use crate::engine::environment::{PlacedFiles, SECRETS_DIR, Secrets, ServiceSpec, ShardExtras};
use crate::shard::{ShardSpec, Upload};

pub mod artifacts;
pub mod steps;

/// The directory (relative to the shard root) holding pre-step artifacts.
pub const ARTIFACTS_DIR: &str = "artifacts";

/// Why a `[job]`'s secrets or files cannot be read before the run starts; each names the file
/// defining them.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A secret's `env` variable is not set here.
    #[error("{source_file}: secret \"{name}\": environment variable {var} is not set")]
    SecretEnvMissing {
        /// The hosts or job file declaring the secret.
        source_file: String,
        /// The secret's name in `[job.secrets]`.
        name: String,
        /// The environment variable it reads.
        var: String,
    },
    /// A secret's `file` cannot be read.
    #[error("{source_file}: secret \"{name}\": cannot read {path}: {error}")]
    SecretFile {
        /// The hosts or job file declaring the secret.
        source_file: String,
        /// The secret's name in `[job.secrets]`.
        name: String,
        /// The file it reads.
        path: String,
        /// Why the read failed, as the OS said it.
        error: std::io::Error,
    },
    /// A secret resolved to an empty value: surely a mistake, and nothing to mask.
    #[error("{source_file}: secret \"{name}\" is empty")]
    SecretEmpty {
        /// The hosts or job file declaring the secret.
        source_file: String,
        /// The secret's name in `[job.secrets]`.
        name: String,
    },
    /// A file the job places in every shard cannot be read.
    #[error("{source_file}: file {path}: {error}")]
    File {
        /// The hosts or job file naming it.
        source_file: String,
        /// The file as named there.
        path: String,
        /// Why the read failed, as the OS said it.
        error: std::io::Error,
    },
}

/// A run's job, secrets resolved. The default is no job at all.
#[derive(Default)]
pub struct RunJob {
    /// The `[job]` table as configured, whichever file it came from.
    pub config: JobConfig,
    /// name → value.
    values: BTreeMap<String, String>,
    /// Every secret value, to mask wherever output is captured.
    pub secrets: Secrets,
    /// `--artifacts` and `[job] artifacts`: paths copied out of every shard.
    pub artifacts: Vec<String>,
    /// Pre-steps declared artifacts: shards learn where they are.
    pub has_step_artifacts: bool,
}

impl std::fmt::Debug for RunJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunJob")
            .field("config", &self.config.source)
            .field("secrets", &self.values.keys().collect::<Vec<_>>())
            .field("artifacts", &self.artifacts)
            .finish()
    }
}

impl RunJob {
    /// Reads every declared secret (from the environment or a file on this machine).
    pub fn prepare(config: JobConfig, cli_artifacts: &[String]) -> Result<Self, JobError> {
        let mut values = BTreeMap::new();
        for s in &config.secret_defs {
            let value = match &s.from {
                SecretSource::Env(var) => std::env::var(var).map_err(|_| JobError::SecretEnvMissing {
                    source_file: config.source.clone(),
                    name: s.name.clone(),
                    var: var.clone(),
                })?,
                SecretSource::File(path) => {
                    let text = std::fs::read_to_string(path).map_err(|error| JobError::SecretFile {
                        source_file: config.source.clone(),
                        name: s.name.clone(),
                        path: path.display().to_string(),
                        error,
                    })?;
                    // A file's trailing newline is the editor's, not the secret's.
                    text.trim_end_matches(['\n', '\r']).to_string()
                }
            };
            if value.is_empty() {
                return Err(JobError::SecretEmpty {
                    source_file: config.source.clone(),
                    name: s.name.clone(),
                });
            }
            values.insert(s.name.clone(), value);
        }
        let mut artifacts = config.artifacts.clone();
        artifacts.extend(cli_artifacts.iter().cloned());
        artifacts.dedup();
        Ok(Self {
            secrets: Secrets::new(values.values().cloned()),
            has_step_artifacts: config.pre_step.iter().any(|s| !s.artifacts.is_empty()),
            config,
            values,
            artifacts,
        })
    }

    /// Delivers the named secrets: variables into `env`, the rest as files under `dir`.
    pub fn deliver(&self, names: &[String], dir: &str, env: &mut Vec<(String, String)>) -> PlacedFiles {
        let mut files = Vec::new();
        for name in names {
            let (Some(spec), Some(value)) = (
                self.config.secret_defs.iter().find(|s| &s.name == name),
                self.values.get(name),
            ) else {
                continue;
            };
            match &spec.as_env {
                Some(var) => env.push((var.clone(), value.clone())),
                None => files.push((
                    format!("{}/{name}", dir.trim_end_matches('/')),
                    value.clone().into_bytes(),
                )),
            }
        }
        if !files.is_empty() {
            env.push(("CARGO_SHARD_SECRETS".to_string(), dir.to_string()));
        }
        PlacedFiles(files)
    }

    /// The job's additions to one shard attempt, and the absolute paths of its artifacts.
    /// `spec.env` already holds the shard's identity (`CARGO_SHARD_*`), which services share.
    pub fn shard(
        &self,
        ctx: &ShardCtx,
        spec: &mut ShardSpec,
        docker: bool,
        image: &str,
    ) -> (ShardExtras, Vec<String>) {
        let root = ctx.root.trim_end_matches('/');
        if let Some(w) = &self.config.workdir {
            spec.workdir = under(root, w);
        }
        let artifacts: Vec<String> = self.artifacts.iter().map(|a| under(&spec.workdir, a)).collect();
        for a in &artifacts {
            if !spec.collect.contains(a) {
                spec.collect.push(a.clone());
            }
        }
        if self.has_step_artifacts {
            spec.env.push((
                "CARGO_SHARD_ARTIFACTS".to_string(),
                format!("{root}/{ARTIFACTS_DIR}"),
            ));
        }
        // The local engine places absolute paths under the shard root.
        let secrets_dir = if docker {
            SECRETS_DIR.to_string()
        } else {
            format!("{root}{SECRETS_DIR}")
        };
        let files = self.deliver(&self.config.shard_secrets, SECRETS_DIR, &mut spec.env);
        if !docker && !files.0.is_empty() {
            for (k, v) in spec.env.iter_mut() {
                if k == "CARGO_SHARD_SECRETS" {
                    *v = secrets_dir.clone();
                }
            }
        }
        let identity: Vec<(String, String)> = spec
            .env
            .iter()
            .filter(|(k, _)| k.starts_with("CARGO_SHARD_") && k != "CARGO_SHARD_SECRETS")
            .cloned()
            .collect();
        let services = self
            .config
            .service
            .iter()
            .map(|s| {
                let mut env = identity.clone();
                env.extend(s.env.iter().map(|(k, v)| (k.clone(), v.clone())));
                let files = self.deliver(&s.secrets, SECRETS_DIR, &mut env);
                ServiceSpec {
                    name: s.name.clone(),
                    image: s.image.clone().unwrap_or_else(|| image.to_string()),
                    env,
                    command: s.command.clone(),
                    ready: s.ready.clone(),
                    ready_timeout: s.ready_timeout,
                    files,
                }
            })
            .collect();
        let extras = ShardExtras {
            services,
            nano_cpus: self.limits().0,
            memory: self.limits().1,
            files,
            secrets: self.secrets.clone(),
            on_line: Default::default(),
            mounts: Vec::new(),
            collect_check: Default::default(),
        };
        (extras, artifacts)
    }

    /// The job's CPU limit (billionths of a CPU) and memory limit (bytes) per container.
    pub fn limits(&self) -> (Option<i64>, Option<i64>) {
        (
            self.config.cpus.map(|c| (c * 1e9).round() as i64),
            self.config.memory.map(|m| m as i64),
        )
    }

    /// The job's `files`, as uploads for every shard.
    pub fn uploads(&self) -> Result<Vec<Upload>, JobError> {
        self.config
            .files
            .iter()
            .map(|f| {
                upload(&f.src, &f.dest).map_err(|error| JobError::File {
                    source_file: self.config.source.clone(),
                    path: f.src.display().to_string(),
                    error,
                })
            })
            .collect()
    }
}

/// An absolute path, or one relative to `dir`.
fn under(dir: &str, path: &str) -> String {
    if path.starts_with('/') {
        path.trim_end_matches('/').to_string()
    } else {
        let rel = path.trim_start_matches("./").trim_end_matches('/');
        format!("{}/{rel}", dir.trim_end_matches('/'))
    }
}

/// A local file or directory placed at `dest` (relative to the shard root).
pub fn upload(src: &Path, dest: &str) -> std::io::Result<Upload> {
    let meta = std::fs::metadata(src)?;
    if meta.is_dir() {
        let mut files = Vec::new();
        walk(src, Path::new(""), &mut files)?;
        files.sort();
        Ok(Upload::Tree {
            src: src.to_path_buf(),
            files,
            dest: dest.to_string(),
        })
    } else {
        use std::os::unix::fs::PermissionsExt;
        Ok(Upload::File {
            src: src.to_path_buf(),
            dest: dest.to_string(),
            mode: meta.permissions().mode() & 0o7777,
        })
    }
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(root.join(rel))? {
        let entry = entry?;
        let path = rel.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            walk(root, &path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::job::JobConfig;

    fn job(text: &str) -> RunJob {
        let config = JobConfig::parse(text, "shard.toml", Path::new("/base")).unwrap();
        RunJob::prepare(config, &["logs".to_string()]).unwrap()
    }

    fn ctx() -> ShardCtx {
        ShardCtx {
            root: "/cargo-shard".into(),
            index: 3,
            count: 4,
            run_id: "r1".into(),
            host: "e1".into(),
            attempt: 1,
            test_threads: 1,
            test_timeout: None,
            tools: Default::default(),
            places: Default::default(),
            in_container: true,
        }
    }

    #[test]
    fn secrets_go_only_where_named() {
        // SAFETY: tests in this binary do not read this variable concurrently.
        unsafe { std::env::set_var("CARGO_SHARD_TEST_SECRET_A", "alpha-secret") };
        let j = job(r#"
[job]
workdir = "src"
secrets = ["a"]
cpus = 0.5
[[job.secret]]
name = "a"
from_env = "CARGO_SHARD_TEST_SECRET_A"
[[job.secret]]
name = "b"
from_env = "CARGO_SHARD_TEST_SECRET_A"
as_env = "B_TOKEN"
[[job.service]]
name = "kv"
secrets = ["b"]
[[job.service]]
name = "plain"
"#);
        let mut spec = ShardSpec {
            env: vec![("CARGO_SHARD_INDEX".into(), "3".into())],
            workdir: "/cargo-shard".into(),
            ..Default::default()
        };
        let (extras, artifacts) = j.shard(&ctx(), &mut spec, true, "img");
        assert_eq!(spec.workdir, "/cargo-shard/src");
        assert_eq!(artifacts, ["/cargo-shard/src/logs"]);
        assert!(spec.collect.contains(&"/cargo-shard/src/logs".to_string()));
        assert_eq!(
            extras.files.0,
            [("/run/secrets/a".to_string(), b"alpha-secret".to_vec())]
        );
        assert!(!spec.env.iter().any(|(k, _)| k == "B_TOKEN"));
        assert_eq!(extras.nano_cpus, Some(500_000_000));
        let kv = &extras.services[0];
        assert_eq!(kv.image, "img");
        assert!(kv.env.contains(&("B_TOKEN".into(), "alpha-secret".into())));
        assert!(kv.env.contains(&("CARGO_SHARD_INDEX".into(), "3".into())));
        assert!(kv.files.0.is_empty());
        let plain = &extras.services[1];
        assert!(!plain.env.iter().any(|(_, v)| v.contains("alpha")));
        assert!(plain.files.0.is_empty());
        assert!(!format!("{extras:?}{j:?}").contains("alpha-secret"));
    }

    #[test]
    fn missing_secret_variable_is_named() {
        let config = JobConfig::parse(
            "[job]\n[[job.secret]]\nname = \"x\"\nfrom_env = \"CARGO_SHARD_TEST_UNSET_VAR\"\n",
            "shard.toml",
            Path::new("/"),
        )
        .unwrap();
        let e = RunJob::prepare(config, &[]).unwrap_err().to_string();
        assert_eq!(
            e,
            "shard.toml: secret \"x\": environment variable CARGO_SHARD_TEST_UNSET_VAR is not set"
        );
    }
}
