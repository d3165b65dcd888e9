//! Command line: argument definitions and dispatch. Each subcommand's glue lives in its own
//! file here; the stages themselves live in their own modules.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::exit;

mod backend;
mod discover_opts;
mod gc;
mod hosts;
mod job_setup;
mod pipeline;
mod plan_cmd;
mod planning;

#[derive(Debug, Parser)]
#[command(
    name = "cargo-shard",
    bin_name = "cargo shard",
    version,
    about = "Spread a slow test suite over many Docker hosts: list, build once, plan balanced shards, run, merge one JUnit.",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Without a subcommand: run a cargo workspace's tests with nextest.
    #[command(flatten)]
    pub run: NextestRunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a cargo workspace's tests with nextest (the default).
    Run(NextestRunArgs),
    /// Print the plan for a run without running it.
    Plan(PlanArgs),
    /// Check every host: reachable, versions, CPUs, memory, slots, image, round trip.
    Hosts(HostsArgs),
    /// Remove every container, network and volume carrying our label.
    Gc(GcArgs),
    /// Run a Go module's tests (`go test` and gocheck suites).
    Go(GoArgs),
    /// Run a user's command per shard with its share of keys (the `make test-integration` wrapper).
    Exec(ExecArgs),
}

#[derive(Debug, Args, Clone, Default)]
pub struct HostsOpt {
    /// Hosts file (hosts.toml). Default: DOCKER_HOST or the local socket, else local processes.
    #[arg(long, value_name = "FILE", global = false)]
    pub hosts: Option<PathBuf>,
    /// Use only these hosts (repeatable, by name).
    #[arg(long = "only-host", value_name = "NAME")]
    pub only_host: Vec<String>,
    /// Image for every shard container, instead of the hosts file's.
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
}

#[derive(Debug, Args, Clone)]
pub struct HostsArgs {
    #[command(flatten)]
    pub hosts: HostsOpt,
    /// Per-host check timeout.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Args, Clone)]
pub struct GcArgs {
    #[command(flatten)]
    pub hosts: HostsOpt,
    /// Remove only what this run created.
    #[arg(long, value_name = "ID")]
    pub run: Option<String>,
    /// Empty the hosts' payload caches (staged parts kept across runs) instead; parts a run
    /// in progress holds are left to it.
    #[arg(long, conflicts_with = "run")]
    pub cache: bool,
}

/// How to plan: shared by every runner.
#[derive(Debug, Args, Clone, Default)]
pub struct PlanOpts {
    /// Number of shards (default: total slots across hosts).
    #[arg(long, visible_alias = "chunks", value_name = "N")]
    pub shards: Option<usize>,
    /// History file: read before planning, updated after the run.
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,
    /// Seed the history from JUnit files (glob, repeatable).
    #[arg(long = "timings-from", value_name = "GLOB")]
    pub timings_from: Vec<String>,
    /// Duration assumed for a test with no history and no known neighbours.
    #[arg(long = "default-duration", default_value = "1s", value_parser = parse_duration)]
    pub default_duration: Duration,
    /// Shuffle the tests before binning (reproducible with --seed).
    #[arg(long)]
    pub shuffle: bool,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Run exactly the tests (or `-check.f` keys) listed in this file, one per line.
    #[arg(long = "filters-file", value_name = "FILE")]
    pub filters_file: Option<PathBuf>,
}

/// How to run: shared by every runner.
#[derive(Debug, Args, Clone)]
pub struct RunOpts {
    #[command(flatten)]
    pub hosts: HostsOpt,
    #[command(flatten)]
    pub plan: PlanOpts,
    /// Print the plan and stop.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Where to write the merged JUnit report.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Directory for logs, reports and history (default: <target dir>/shard).
    #[arg(long = "out-dir", value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Retry a shard that failed without results (lost host, killed container) this many times.
    #[arg(long = "shard-retries", default_value_t = 1)]
    pub shard_retries: u32,
    /// Re-run failed tests up to N times; a test that then passes is flaky.
    #[arg(long, default_value_t = 0)]
    pub retries: u32,
    /// Whether a flaky test fails the run.
    #[arg(long = "flaky-result", value_enum, default_value_t = FlakyResult::Pass)]
    pub flaky_result: FlakyResult,
    /// Kill a shard's container after this long; its unfinished tests become errors.
    #[arg(long = "shard-timeout", value_parser = parse_duration)]
    pub shard_timeout: Option<Duration>,
    /// Per-test timeout handed to the runner.
    #[arg(long = "test-timeout", value_parser = parse_duration)]
    pub test_timeout: Option<Duration>,
    /// Keep containers afterwards for debugging, and print how to reach them.
    #[arg(long = "keep-containers")]
    pub keep_containers: bool,
    /// Output format on stdout: human, or one JSON event per line.
    #[arg(long = "message-format", value_enum, default_value_t = MessageFormat::Human)]
    pub message_format: MessageFormat,
    #[arg(long = "no-progress")]
    pub no_progress: bool,
    #[arg(long, short)]
    pub quiet: bool,
    #[arg(long, short, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
    #[command(flatten)]
    pub job: JobOpts,
}

/// The job: services, steps, secrets, limits, artifacts (see `[job]` in hosts.example.toml).
#[derive(Debug, Args, Clone, Default)]
pub struct JobOpts {
    /// Job file with a `[job]` table (instead of the hosts file's `[job]`).
    #[arg(long = "job", value_name = "FILE")]
    pub job: Option<PathBuf>,
    /// Copy PATH (absolute, or relative to the shard's working directory) out of every shard
    /// into <out>/artifacts/<shard>/ (repeatable).
    #[arg(long = "artifacts", value_name = "PATH")]
    pub artifacts: Vec<String>,
    /// CPUs per shard container, overriding the job's `cpus`.
    #[arg(long, value_name = "N")]
    pub cpus: Option<f64>,
    /// Memory limit per shard container (e.g. 512m, 2g), overriding the job's `memory`.
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
}

impl RunOpts {
    /// The options a plan-only invocation implies.
    pub fn for_plan(hosts: HostsOpt, plan: PlanOpts) -> Self {
        Self {
            hosts,
            plan,
            dry_run: true,
            junit: None,
            out_dir: None,
            shard_retries: 1,
            retries: 0,
            flaky_result: FlakyResult::Pass,
            shard_timeout: None,
            test_timeout: None,
            keep_containers: false,
            message_format: MessageFormat::Human,
            no_progress: true,
            quiet: true,
            verbose: 0,
            color: Color::Never,
            job: JobOpts::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum FlakyResult {
    #[default]
    Pass,
    Fail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum MessageFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Color {
    #[default]
    Auto,
    Always,
    Never,
}

/// Which tests nextest builds and lists, shaped like nextest's own flags.
#[derive(Debug, Args, Clone, Default)]
pub struct NextestSelect {
    #[arg(long = "manifest-path", value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    #[arg(long, short = 'p', value_name = "SPEC")]
    pub package: Vec<String>,
    #[arg(long)]
    pub workspace: bool,
    #[arg(long, short = 'F', value_name = "FEATURES")]
    pub features: Vec<String>,
    #[arg(long = "all-features")]
    pub all_features: bool,
    #[arg(long = "no-default-features")]
    pub no_default_features: bool,
    #[arg(long, short = 'r')]
    pub release: bool,
    #[arg(long = "cargo-profile", value_name = "NAME")]
    pub cargo_profile: Option<String>,
    /// Filterset expression (nextest's `-E`), repeatable.
    #[arg(long = "filterset", short = 'E', value_name = "EXPR")]
    pub filterset: Vec<String>,
    /// default, only, all (like nextest).
    #[arg(long = "run-ignored", value_enum, default_value_t = RunIgnored::Default)]
    pub run_ignored: RunIgnored,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum RunIgnored {
    #[default]
    Default,
    Only,
    All,
}

#[derive(Debug, Args, Clone)]
pub struct NextestRunArgs {
    /// Which runner: nextest, go, or auto (go when the directory has `go.mod` and no
    /// `Cargo.toml`, else nextest).
    #[arg(long, value_enum, default_value_t = Runner::Auto)]
    pub runner: Runner,
    #[command(flatten)]
    pub select: NextestSelect,
    #[command(flatten)]
    pub run: RunOpts,
    /// Passed through to `cargo nextest run` inside each shard.
    #[arg(last = true)]
    pub passthrough: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Runner {
    #[default]
    Auto,
    Nextest,
    Go,
}

#[derive(Debug, Args, Clone)]
pub struct PlanArgs {
    #[command(flatten)]
    pub select: NextestSelect,
    #[command(flatten)]
    pub hosts: HostsOpt,
    #[command(flatten)]
    pub plan: PlanOpts,
    #[arg(long, value_enum, default_value_t = PlanFormat::Human)]
    pub format: PlanFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum PlanFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Args, Clone)]
pub struct GoArgs {
    /// Packages (default ./...).
    pub packages: Vec<String>,
    /// Module directory (default: the current directory).
    #[arg(long = "dir", value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Build with cgo (test binaries then need the image's libc).
    #[arg(long)]
    pub cgo: bool,
    /// Build in GOPATH mode with this GOPATH (for gocheck suites outside modules).
    #[arg(long, value_name = "PATH")]
    pub gopath: Option<String>,
    #[command(flatten)]
    pub run: RunOpts,
    /// Passed to every test binary.
    #[arg(last = true)]
    pub passthrough: Vec<String>,
}

#[derive(Debug, Args, Clone)]
pub struct ExecArgs {
    /// Command that lists the keys, one per line (run through `sh -c` locally).
    #[arg(long, value_name = "COMMAND")]
    pub list: Option<String>,
    /// Keep only listed keys matching this regex.
    #[arg(long = "list-filter", value_name = "REGEX")]
    pub list_filter: Option<String>,
    /// Pass a shard's keys joined into one filter in this environment variable.
    #[arg(long = "filter-env", value_name = "NAME")]
    pub filter_env: Option<String>,
    /// How to write the filter: `{regex}` becomes `^(k1|k2)$` with keys regex-escaped.
    #[arg(
        long = "filter-format",
        value_name = "FMT",
        default_value = "{regex}",
        allow_hyphen_values = true
    )]
    pub filter_format: String,
    /// One container per key, the key in this environment variable.
    #[arg(long = "key-env", value_name = "NAME")]
    pub key_env: Option<String>,
    /// JUnit files the command writes, relative to the working directory.
    #[arg(long, value_name = "GLOB")]
    pub results: Vec<String>,
    /// Source tree to upload as the working directory (default: the current directory).
    #[arg(long = "dir", value_name = "DIR")]
    pub dir: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunOpts,
    /// The command each shard runs, e.g. `make test-integration`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// Parses `2s`, `1m30s`, `500ms`, or plain seconds (`2.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Ok(Duration::from_secs_f64(secs));
    }
    humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

/// Entry point: strips the `shard` argument cargo inserts, parses, dispatches.
pub fn main() -> ExitCode {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).map(|a| a == "shard").unwrap_or(false) {
        args.remove(1);
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return exit::code(if e.use_stderr() { exit::USAGE } else { exit::OK });
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::code(exit::INFRA_FAILED);
        }
    };
    let code = rt.block_on(async move {
        match cli.command {
            None => pipeline::nextest(cli.run).await,
            Some(Command::Run(a)) => pipeline::nextest(a).await,
            Some(Command::Plan(a)) => plan_cmd::run(a).await,
            Some(Command::Hosts(a)) => hosts::run(a).await,
            Some(Command::Gc(a)) => gc::run(a).await,
            Some(Command::Go(a)) => pipeline::go(a).await,
            Some(Command::Exec(a)) => pipeline::exec(a).await,
        }
    });
    // Shards may leave blocking tasks (ssh tunnels) behind; do not wait for them.
    rt.shutdown_timeout(Duration::from_secs(1));
    exit::code(code)
}

/// Prints a one-line error and returns its exit code.
pub fn fail(code: u8, msg: impl std::fmt::Display) -> u8 {
    eprintln!("error: {msg}");
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn cargo_passes_shard_first_and_the_default_command_is_a_nextest_run() {
        let cli = parse(&[
            "cargo-shard",
            "--runner",
            "go",
            "--shards",
            "3",
            "--",
            "--no-capture",
        ]);
        assert!(cli.command.is_none());
        assert_eq!(cli.run.runner, Runner::Go);
        assert_eq!(cli.run.run.plan.shards, Some(3));
        assert_eq!(cli.run.passthrough, ["--no-capture"]);
        let cli = parse(&["cargo-shard", "--chunks", "5"]);
        assert_eq!(cli.run.runner, Runner::Auto);
        assert_eq!(
            cli.run.run.plan.shards,
            Some(5),
            "--chunks is --shards, as in moby's runner"
        );
    }

    #[test]
    fn exec_takes_a_filter_format_that_starts_with_a_dash() {
        let cli = parse(&[
            "cargo-shard",
            "exec",
            "--list",
            "make -s list-integration",
            "--filter-env",
            "TESTFLAGS",
            "--filter-format",
            "-check.f {regex}",
            "--",
            "make",
            "test-integration",
        ]);
        let Some(Command::Exec(a)) = cli.command else {
            panic!("exec")
        };
        assert_eq!(a.filter_format, "-check.f {regex}");
        assert_eq!(a.command, ["make", "test-integration"]);
    }

    #[test]
    fn durations_take_plain_seconds_and_units() {
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("soon").unwrap_err().contains("invalid duration"));
    }
}
