//! Which of the caller's variables the shards see, as nextest passes them to tests: the
//! caller's `RUST_BACKTRACE` and `RUST_LOG`, the names in `[job] pass_env`, and `--env
//! NAME[=VALUE]`; nothing else leaks into a container. A secret's source variable is
//! refused: secrets reach only what names them.

use std::collections::BTreeMap;

use crate::config::job::{JobConfig, SecretSource};

/// Passed whenever the caller has them set, as nextest does.
const DEFAULT_PASSED: [&str; 2] = ["RUST_BACKTRACE", "RUST_LOG"];

/// A variable the shards cannot be given.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PassEnvError {
    #[error("{what} {name:?}: not an environment variable name")]
    NotAName { what: String, name: String },
    #[error(
        "{what} {name}: it is the source of secret \"{secret}\", which reaches only what names it in `secrets`"
    )]
    SecretSource {
        what: String,
        name: String,
        secret: String,
    },
    #[error("--env {0}: not set in this environment (give --env {0}=VALUE)")]
    Unset(String),
}

/// The variables to add to every shard's environment, in order of precedence (later wins):
/// the defaults, `[job] pass_env`, `--env`. `lookup` reads the caller's environment.
pub fn resolve(
    config: &JobConfig,
    cli: &[String],
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, PassEnvError> {
    let mut out = BTreeMap::new();
    for name in DEFAULT_PASSED {
        if let Some(v) = lookup(name) {
            out.insert(name.to_string(), v);
        }
    }
    for name in &config.pass_env {
        check_name(config, name, &format!("{}: pass_env", config.source))?;
        if let Some(v) = lookup(name) {
            out.insert(name.clone(), v);
        }
    }
    for arg in cli {
        let (name, value) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        check_name(config, name, "--env")?;
        let value = match value.or_else(|| lookup(name)) {
            Some(v) => v,
            None => return Err(PassEnvError::Unset(name.to_string())),
        };
        out.insert(name.to_string(), value);
    }
    Ok(out)
}

fn check_name(config: &JobConfig, name: &str, what: &str) -> Result<(), PassEnvError> {
    let valid = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(PassEnvError::NotAName {
            what: what.to_string(),
            name: name.to_string(),
        });
    }
    let secret = config
        .secret_defs
        .iter()
        .find(|s| matches!(&s.from, SecretSource::Env(var) if var == name));
    match secret {
        Some(s) => Err(PassEnvError::SecretSource {
            what: what.to_string(),
            name: name.to_string(),
            secret: s.name.clone(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::job::SecretSpec;

    fn caller(name: &str) -> Option<String> {
        match name {
            "RUST_LOG" => Some("debug".into()),
            "FROM_LIST" => Some("listed".into()),
            "FROM_CLI" => Some("cli".into()),
            "API_TOKEN" => Some("hunter2".into()),
            _ => None,
        }
    }

    fn config() -> JobConfig {
        JobConfig {
            source: "hosts.toml".into(),
            pass_env: vec!["FROM_LIST".into(), "UNSET_IN_LIST".into()],
            secret_defs: vec![SecretSpec {
                name: "token".into(),
                from: SecretSource::Env("API_TOKEN".into()),
                as_env: None,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn defaults_list_and_command_line_pass_and_nothing_else() {
        let env = resolve(&config(), &["FROM_CLI".into(), "SET=1=2".into()], caller).unwrap();
        let expected: BTreeMap<String, String> = [
            ("FROM_CLI", "cli"),
            ("FROM_LIST", "listed"),
            ("RUST_LOG", "debug"),
            ("SET", "1=2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(env, expected);
    }

    #[test]
    fn secrets_unset_and_malformed_names_are_refused() {
        let refused = |c: &JobConfig, args: &[&str]| {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            resolve(c, &args, caller).unwrap_err().to_string()
        };
        let err = refused(&config(), &["API_TOKEN"]);
        assert!(err.contains("secret \"token\""), "{err}");
        let err = refused(&config(), &["NOPE"]);
        assert!(err.contains("--env NOPE: not set"), "{err}");
        let err = refused(&config(), &["A-B=1"]);
        assert!(err.contains("not an environment variable name"), "{err}");
        let mut listed = config();
        listed.pass_env.push("API_TOKEN".into());
        let err = refused(&listed, &[]);
        assert!(err.starts_with("hosts.toml: pass_env API_TOKEN"), "{err}");
    }
}
