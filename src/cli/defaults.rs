//! The configuration found by itself: the project file's `[options]` fill every flag the
//! command line left at its default, and the hosts' source is settled once, before any stage
//! reads it, so the run and its messages agree on it.

use std::path::{Path, PathBuf};

use clap::ArgMatches;
use clap::parser::ValueSource;

use super::error::Error;
use super::{
    Backend, Cli, Command, FlakyResult, HostsOpt, PlanArgs, PlanOpts, PlanRunner, RunOpts, parse_duration,
};
use crate::config::locate::{self, Options, ProjectFile};

/// Finds the project file for the command's root, applies its options and resolves the hosts.
pub fn apply(cli: &mut Cli, matches: &ArgMatches) -> Result<(), Error> {
    let (m, start) = match (&cli.command, matches.subcommand()) {
        (None, _) => (matches, manifest_dir(cli.run.select.manifest_path.as_deref())),
        (Some(Command::Run(a)), Some((_, m))) => (m, manifest_dir(a.select.manifest_path.as_deref())),
        (Some(Command::Plan(a)), Some((_, m))) => plan_root(a, m),
        (Some(Command::Go(a)), Some((_, m))) => (m, dir_or_here(a.select.dir.as_ref())),
        (Some(Command::Exec(a)), Some((_, m))) => (m, dir_or_here(a.select.dir.as_ref())),
        (Some(Command::Merge(_)), _) => return Ok(()),
        (Some(_), Some((_, m))) => (m, PathBuf::from(".")),
        (Some(_), None) => return Ok(()),
    };
    let project = match locate::find_project_file(&start) {
        Some(p) => Some(ProjectFile::load(&p)?),
        None => None,
    };
    let options = project.as_ref().map(|p| p.options.clone()).unwrap_or_default();
    let origin = project
        .as_ref()
        .map(|p| p.path.display().to_string())
        .unwrap_or_default();
    let set = Setter {
        m,
        options: &options,
        origin: &origin,
    };
    let project_path = project.as_ref().map(|p| p.path.clone());
    let hosts = match &mut cli.command {
        None => &mut cli.run.run.hosts,
        Some(Command::Run(a)) => &mut a.run.hosts,
        Some(Command::Go(a)) => &mut a.run.hosts,
        Some(Command::Exec(a)) => &mut a.run.hosts,
        Some(Command::Plan(a)) => plan_parts(a).0,
        Some(Command::Hosts(a)) => &mut a.hosts,
        Some(Command::Gc(a)) => &mut a.hosts,
        Some(
            Command::Merge(_)
            | Command::Show(_)
            | Command::Completions(_)
            | Command::Man(_)
            | Command::Makefile,
        ) => {
            return Ok(());
        }
    };
    set.hosts(hosts)?;
    hosts.source = Some(locate::hosts_source_from_env(
        hosts.hosts.as_deref(),
        project_path.as_deref(),
    )?);
    hosts.project = project_path;
    match &mut cli.command {
        None => set.run(&mut cli.run.run)?,
        Some(Command::Run(a)) => set.run(&mut a.run)?,
        Some(Command::Go(a)) => set.run(&mut a.run)?,
        Some(Command::Exec(a)) => set.run(&mut a.run)?,
        Some(Command::Plan(a)) => set.plan(plan_parts(a).1)?,
        Some(_) => {}
    }
    Ok(())
}

/// `cargo shard plan`'s own matches and root, or its runner's (`plan go`, `plan exec`).
fn plan_root<'m>(a: &PlanArgs, m: &'m ArgMatches) -> (&'m ArgMatches, PathBuf) {
    match (&a.runner, m.subcommand()) {
        (Some(PlanRunner::Go(g)), Some((_, sub))) => (sub, dir_or_here(g.select.dir.as_ref())),
        (Some(PlanRunner::Exec(e)), Some((_, sub))) => (sub, dir_or_here(e.select.dir.as_ref())),
        _ => (m, manifest_dir(a.select.manifest_path.as_deref())),
    }
}

/// The hosts and plan options of `cargo shard plan`, or of its runner's.
fn plan_parts(a: &mut PlanArgs) -> (&mut HostsOpt, &mut PlanOpts) {
    let common = match &mut a.runner {
        None => &mut a.common,
        Some(PlanRunner::Go(g)) => &mut g.common,
        Some(PlanRunner::Exec(e)) => &mut e.common,
    };
    (&mut common.hosts, &mut common.plan)
}

fn dir_or_here(dir: Option<&PathBuf>) -> PathBuf {
    dir.cloned().unwrap_or_else(|| PathBuf::from("."))
}

/// The directory the lookup starts from: the manifest's, else the current one.
fn manifest_dir(manifest: Option<&Path>) -> PathBuf {
    manifest
        .and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Applies one command's options where its command line left the default.
struct Setter<'a> {
    m: &'a ArgMatches,
    options: &'a Options,
    origin: &'a str,
}

impl Setter<'_> {
    fn unset(&self, id: &str) -> bool {
        matches!(self.m.value_source(id), None | Some(ValueSource::DefaultValue))
    }

    fn duration(&self, key: &str, v: &Option<String>) -> Result<Option<std::time::Duration>, Error> {
        v.as_deref()
            .map(|s| {
                parse_duration(s).map_err(|e| Error::ProjectOption {
                    origin: self.origin.to_string(),
                    key: key.to_string(),
                    reason: e.to_string(),
                })
            })
            .transpose()
    }

    fn hosts(&self, h: &mut HostsOpt) -> Result<(), Error> {
        if self.unset("backend")
            && let Some(b) = &self.options.backend
        {
            h.backend = match b.as_str() {
                "docker" => Backend::Docker,
                "local" => Backend::Local,
                _ => Backend::Auto,
            };
        }
        Ok(())
    }

    fn plan(&self, p: &mut PlanOpts) -> Result<(), Error> {
        let o = self.options;
        if self.unset("shards") && o.shards.is_some() {
            p.shards = o.shards;
        }
        if self.unset("history") && o.history.is_some() {
            p.history = o.history.clone();
        }
        if self.unset("default_duration")
            && let Some(d) = self.duration("default_duration", &o.default_duration)?
        {
            p.default_duration = d;
        }
        Ok(())
    }

    fn run(&self, r: &mut RunOpts) -> Result<(), Error> {
        self.plan(&mut r.plan)?;
        let o = self.options;
        if self.unset("retries")
            && let Some(n) = o.retries
        {
            r.retries = n;
        }
        if self.unset("shard_retries")
            && let Some(n) = o.shard_retries
        {
            r.shard_retries = n;
        }
        if self.unset("flaky_result")
            && let Some(f) = &o.flaky_result
        {
            r.flaky_result = if f == "fail" {
                FlakyResult::Fail
            } else {
                FlakyResult::Pass
            };
        }
        if self.unset("shard_timeout") {
            r.shard_timeout = self
                .duration("shard_timeout", &o.shard_timeout)?
                .or(r.shard_timeout);
        }
        if self.unset("test_timeout") {
            r.test_timeout = self.duration("test_timeout", &o.test_timeout)?.or(r.test_timeout);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};

    /// Parses `args` with the current directory at `dir` (so the project file there is found).
    fn parse_in(dir: &Path, args: &[&str]) -> Result<Cli, Error> {
        let manifest = dir.join("Cargo.toml");
        let mut full: Vec<String> = vec!["cargo-shard".into()];
        full.extend(args.iter().map(|s| s.to_string()));
        full.extend(["--manifest-path".to_string(), manifest.display().to_string()]);
        let m = Cli::command().try_get_matches_from(&full).unwrap();
        let mut cli = Cli::from_arg_matches(&m).unwrap();
        apply(&mut cli, &m).map(|()| cli)
    }

    #[test]
    fn project_options_fill_defaults_and_the_command_line_wins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".config")).unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        std::fs::write(
            dir.path().join(locate::PROJECT_FILE),
            "[options]\nretries = 2\nshard_timeout = \"5m\"\nshards = 4\nbackend = \"local\"\n",
        )
        .unwrap();
        let cli = parse_in(dir.path(), &[]).unwrap();
        assert_eq!(cli.run.run.retries, 2);
        assert_eq!(cli.run.run.plan.shards, Some(4));
        assert_eq!(
            cli.run.run.shard_timeout,
            Some(std::time::Duration::from_secs(300))
        );
        assert_eq!(cli.run.run.hosts.backend, Backend::Local);
        let cli = parse_in(dir.path(), &["--retries", "0", "--backend", "auto"]).unwrap();
        assert_eq!(
            cli.run.run.retries, 0,
            "an explicit --retries 0 wins over the file"
        );
        assert_eq!(cli.run.run.hosts.backend, Backend::Auto);
        assert_eq!(cli.run.run.plan.shards, Some(4));
    }

    #[test]
    fn a_bad_duration_in_the_project_file_names_the_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".config")).unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        let file = dir.path().join(locate::PROJECT_FILE);
        std::fs::write(&file, "[options]\ntest_timeout = \"soon\"\n").unwrap();
        let e = parse_in(dir.path(), &[]).unwrap_err();
        assert_eq!(e.exit_code(), crate::exit::BAD_INPUT);
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!(
                "{}: [options] test_timeout: invalid duration \"soon\"",
                file.display()
            )),
            "{msg}"
        );
    }
}
