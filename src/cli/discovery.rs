//! The one discovery entry `run` and `plan` share: command-line arguments turned into a
//! runner's options, then the suite built and listed off the async threads, with what the
//! listing implies for the plan (exec's keys).

use std::path::{Path, PathBuf};

use super::error::Error;
use super::nextest_flags::NextestRun;
use super::{ExecSelect, GoSelect, NextestRunArgs, PlanOpts, RunIgnored};
use crate::discover::command::{ExecOptions, KeyPassing, KeySource};
use crate::discover::gotest::GoOptions;
use crate::discover::nextest::{NextestOptions, RunIgnored as NxIgnored};
use crate::discover::{Known, Payload, Suite};

/// `cargo shard exec` options that contradict each other or are missing.
#[derive(Debug, thiserror::Error)]
pub enum ExecArgsError {
    #[error("exec: give either --list or --filters-file, not both")]
    ListAndFiltersFile,
    #[error("exec: keys come from --list 'COMMAND' or --filters-file FILE")]
    NoKeys,
    #[error("exec: give either --filter-env or --key-env, not both")]
    FilterEnvAndKeyEnv,
    #[error("exec: say how a shard gets its keys: --filter-env NAME or --key-env NAME")]
    NoKeyPassing,
}

/// Whether `name` is an executable on this machine's PATH (or a path to one).
fn on_path(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let exec = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        return exec(Path::new(name));
    }
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|d| exec(&d.join(name))))
}

/// `go test` flags after `--`, checked before anything is built (`-race` needs a C compiler).
pub fn go_flags(passthrough: &[String]) -> Result<super::go_flags::GoFlags, super::go_flags::GoFlagError> {
    let flags = super::go_flags::parse(passthrough)?;
    super::go_flags::check_compiler(&flags, on_path)?;
    Ok(flags)
}

/// One runner's options, ready to build and list its suite.
pub enum Discovery {
    Nextest(NextestOptions),
    Go(GoOptions),
    Exec(ExecOptions),
}

impl Discovery {
    /// Builds and lists the suite. Exec's keys settle two plan options: a filters file that
    /// gave the keys has done its work, and `--key-env` means one shard per key. `payload`
    /// receives what the shards will be sent as soon as it is known (for nextest: the sources
    /// before the build, the whole once the archive is built, before the tests are listed).
    pub async fn suite(self, plan: &mut PlanOpts, payload: Option<PayloadSender>) -> Result<Suite, Error> {
        let (what, one_key_per_shard) = match &self {
            Discovery::Exec(o) => ("listing", Some(o.one_key_per_shard())),
            _ => ("discovery", None),
        };
        let suite = tokio::task::spawn_blocking(move || self.blocking(payload))
            .await
            .map_err(|e| Error::Panicked {
                what,
                message: e.to_string(),
            })??;
        if let Some(one_each) = one_key_per_shard {
            plan.filters_file = None;
            if one_each {
                plan.shards = Some(suite.tests.len().max(1));
            }
        }
        Ok(suite)
    }

    fn blocking(self, payload: Option<PayloadSender>) -> Result<Suite, Error> {
        let mut whole_told = false;
        let mut tell = |p: Payload, known: Known| {
            if whole_told {
                return;
            }
            whole_told = known != Known::Sources;
            if let Some(tx) = &payload {
                let _ = tx.send(Told { payload: p, known });
            }
        };
        let suite = match self {
            Discovery::Nextest(o) => crate::discover::nextest::discover(&o, &mut tell)?,
            Discovery::Go(o) => crate::discover::gotest::discover_telling(&o, &mut tell)?,
            Discovery::Exec(o) => crate::discover::command::discover(&o)?,
        };
        tell(suite.payload(), Known::Listed);
        Ok(suite)
    }
}

/// The suite's payload as discovery tells it: the sources before the build, then the whole.
pub struct Told {
    /// What the shards will receive (only the sources, with [`Known::Sources`]).
    pub payload: Payload,
    /// How much of it, and whether there is still time to hide work behind the listing.
    pub known: Known,
}

/// Where discovery sends the suite's payload as it learns it.
pub type PayloadSender = tokio::sync::mpsc::UnboundedSender<Told>;

/// `--dir`, absolute (default: the current directory).
pub fn source_dir(dir: Option<&Path>) -> PathBuf {
    let dir = dir.map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    std::path::absolute(&dir).unwrap_or(dir)
}

/// A Go module's options; `flags` are the checked `go test` flags after `--`.
pub fn go(select: &GoSelect, flags: super::go_flags::GoFlags, out_dir: &Path) -> GoOptions {
    let mut opts = GoOptions::new(source_dir(select.dir.as_deref()), out_dir);
    opts.packages = select.packages.clone();
    opts.cgo = select.cgo || flags.race;
    opts.gopath = select.gopath.clone();
    opts.passthrough = flags.run;
    opts.build_flags = flags.build;
    opts
}

/// Exec's options: keys from `--list` or the filters file, passed by `--filter-env` or
/// `--key-env`, exactly one of each.
pub fn exec(
    select: &ExecSelect,
    command: &[String],
    filters_file: Option<&Path>,
    out_dir: &Path,
) -> Result<ExecOptions, ExecArgsError> {
    let keys = match (&select.list, filters_file) {
        (Some(cmd), None) => KeySource::List(cmd.clone()),
        (None, Some(file)) => KeySource::File(file.to_path_buf()),
        (Some(_), Some(_)) => return Err(ExecArgsError::ListAndFiltersFile),
        (None, None) => return Err(ExecArgsError::NoKeys),
    };
    let passing = match (&select.filter_env, &select.key_env) {
        (Some(name), None) => KeyPassing::FilterEnv {
            name: name.clone(),
            format: select.filter_format.clone(),
        },
        (None, Some(name)) => KeyPassing::KeyEnv { name: name.clone() },
        (Some(_), Some(_)) => return Err(ExecArgsError::FilterEnvAndKeyEnv),
        (None, None) => return Err(ExecArgsError::NoKeyPassing),
    };
    Ok(ExecOptions {
        keys,
        list_filter: select.list_filter.clone(),
        passing,
        results: select.results.clone(),
        dir: source_dir(select.dir.as_deref()),
        command: command.to_vec(),
        exclude: vec![out_dir.to_path_buf()],
    })
}

/// Nextest's options from `run`'s arguments (or `plan`'s, with no flags after `--`).
pub fn nextest(a: &NextestRunArgs, checked: &NextestRun, out_dir: &Path, quiet: bool) -> NextestOptions {
    let s = &a.select;
    NextestOptions {
        // cargo-nextest runs from the workspace root: a relative path would not resolve there.
        manifest_path: s
            .manifest_path
            .as_ref()
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())),
        packages: s.package.clone(),
        workspace: s.workspace,
        features: s.features.clone(),
        all_features: s.all_features,
        no_default_features: s.no_default_features,
        release: s.release,
        cargo_profile: s.cargo_profile.clone(),
        filtersets: s.filterset.clone(),
        run_ignored: match (checked.ignored, s.run_ignored) {
            // libtest's `-- --ignored` / `-- --include-ignored`, as nextest reads them.
            (Some(false), _) => NxIgnored::Only,
            (Some(true), _) => NxIgnored::All,
            (None, RunIgnored::Default) => NxIgnored::Default,
            (None, RunIgnored::Only) => NxIgnored::Only,
            (None, RunIgnored::All) => NxIgnored::All,
        },
        // The run's fail-fast also stops each shard's nextest at the same count.
        passthrough: checked
            .max_fail
            .map(|n| vec!["--max-fail".to_string(), n.to_string()])
            .unwrap_or_default(),
        list_filters: checked.list_filters.clone(),
        profile: checked.profile.clone(),
        out_dir: Some(out_dir.to_path_buf()),
        build_jobs: None,
        echo_build_output: !quiet,
        doctests: a.nextest.doctests.unwrap_or_default(),
    }
}
