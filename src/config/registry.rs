//! Images from registries: when to pull (`pull = "missing" | "always" | "never"`) and with
//! which credentials — the hosts file's `[[registry]]` (password from an env var or a file),
//! else the docker CLI's `config.json` `auths` (`DOCKER_CONFIG`, else `~/.docker`).

use std::path::{Path, PathBuf};

/// When a host pulls its image at the start of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Only when the engine lacks it.
    #[default]
    Missing,
    /// Every run, so a moved tag is followed.
    Always,
    /// Never: a missing image leaves the host out.
    Never,
}

impl PullPolicy {
    /// `pull` as written in the hosts file.
    pub fn parse(s: &str) -> Result<Self, super::ChoiceError> {
        match s {
            "missing" => Ok(Self::Missing),
            "always" => Ok(Self::Always),
            "never" => Ok(Self::Never),
            other => Err(super::ChoiceError {
                key: "pull",
                allowed: "\"missing\", \"always\" or \"never\"",
                got: other.to_string(),
            }),
        }
    }
}

/// Where a registry's password is read, on the machine running cargo-shard.
#[derive(Debug, Clone, PartialEq)]
pub enum PasswordSource {
    /// `password_env`: this environment variable.
    Env(String),
    /// `password_file`: this file, absolute.
    File(PathBuf),
}

/// A `[[registry]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryAuth {
    /// `host[:port]`, as the image reference names it.
    pub server: String,
    /// The login.
    pub username: String,
    /// Where the password is read.
    pub password: PasswordSource,
}

/// Credentials for one pull. The password never reaches a message: `Debug` masks it.
#[derive(Clone, PartialEq)]
pub struct Credentials {
    /// `host[:port]` of the registry.
    pub server: String,
    /// The login.
    pub username: String,
    /// The password, read just now; never printed.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}@{}, [redacted])", self.username, self.server)
    }
}

/// The registry an image reference pulls from: its first path component when that names a
/// host (has a `.` or `:`, or is `localhost`), else Docker Hub, as the docker CLI decides.
pub fn registry_of(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first.to_string()
        }
        _ => "docker.io".to_string(),
    }
}

/// The credentials for `image`: a `[[registry]]` entry for its registry, else the docker
/// CLI's config; `None` pulls anonymously. Errors name the unreadable secret.
pub fn credentials(image: &str, registries: &[RegistryAuth]) -> Result<Option<Credentials>, String> {
    let server = registry_of(image);
    if let Some(r) = registries.iter().find(|r| r.server == server) {
        let password = match &r.password {
            PasswordSource::Env(var) => {
                std::env::var(var).map_err(|_| format!("registry {server}: password_env {var} is not set"))?
            }
            PasswordSource::File(p) => std::fs::read_to_string(p)
                .map_err(|e| format!("registry {server}: password_file {}: {e}", p.display()))?
                .trim_end_matches(['\n', '\r'])
                .to_string(),
        };
        return Ok(Some(Credentials {
            server,
            username: r.username.clone(),
            password,
        }));
    }
    Ok(docker_config_auth(&docker_config_dir(), &server))
}

/// `DOCKER_CONFIG`, else `~/.docker`.
fn docker_config_dir() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(d) => PathBuf::from(d),
        None => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default()
            .join(".docker"),
    }
}

/// `auths[server].auth` (base64 of `user:password`) of `DIR/config.json`, as `docker login`
/// writes it; Docker Hub is keyed by its v1 URL there.
pub fn docker_config_auth(dir: &Path, server: &str) -> Option<Credentials> {
    use base64::Engine as _;
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let key = if server == "docker.io" {
        "https://index.docker.io/v1/"
    } else {
        server
    };
    let auths = v.get("auths")?;
    let entry = auths.get(key).or_else(|| auths.get(format!("https://{key}")))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(entry.get("auth")?.as_str()?)
        .ok()?;
    let (user, pass) = String::from_utf8(raw)
        .ok()?
        .split_once(':')
        .map(|(u, p)| (u.to_string(), p.to_string()))?;
    Some(Credentials {
        server: server.to_string(),
        username: user,
        password: pass,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_the_first_component_when_it_names_a_host() {
        assert_eq!(registry_of("127.0.0.6:5000/shard/base:1"), "127.0.0.6:5000");
        assert_eq!(
            registry_of("registry.example.com/ci/shard"),
            "registry.example.com"
        );
        assert_eq!(registry_of("localhost/x"), "localhost");
        assert_eq!(registry_of("rust:1.80"), "docker.io");
        assert_eq!(registry_of("library/rust"), "docker.io");
    }

    #[test]
    fn docker_cli_config_auths_are_read_and_masked() {
        let dir = tempfile::tempdir().unwrap();
        // base64("ci:s3cret")
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"auths": {"127.0.0.6:5000": {"auth": "Y2k6czNjcmV0"}}}"#,
        )
        .unwrap();
        let c = docker_config_auth(dir.path(), "127.0.0.6:5000").unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("ci", "s3cret"));
        assert_eq!(format!("{c:?}"), "Credentials(ci@127.0.0.6:5000, [redacted])");
        assert_eq!(docker_config_auth(dir.path(), "other:5000"), None);
    }

    #[test]
    fn hosts_file_entries_win_and_a_missing_secret_is_named() {
        let r = RegistryAuth {
            server: "r.example.com".into(),
            username: "ci".into(),
            password: PasswordSource::Env("CARGO_SHARD_TEST_UNSET_REGISTRY_PW".into()),
        };
        assert_eq!(
            credentials("r.example.com/a:1", std::slice::from_ref(&r)).unwrap_err(),
            "registry r.example.com: password_env CARGO_SHARD_TEST_UNSET_REGISTRY_PW is not set"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "hunter2\n").unwrap();
        let r = RegistryAuth {
            password: PasswordSource::File(dir.path().join("pw")),
            ..r
        };
        let c = credentials("r.example.com/a:1", &[r]).unwrap().unwrap();
        assert_eq!(c.password, "hunter2");
    }
}
