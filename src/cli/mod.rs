//! Command line: argument definitions and dispatch. Each subcommand's glue lives in its own
//! file here; the stages themselves live in their own modules.

// The field docs here are clap's --help text, where `<DIR>`-style placeholders are literal.
#![allow(rustdoc::invalid_html_tags)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::exit;

mod backend;
mod cgo_check;
mod defaults;
mod discovery;
mod doctests;
pub mod error;
mod gc;
mod go_flags;
mod hosts;
mod job_setup;
mod merge;
pub mod nextest_flags;
mod partition;
mod pass_env;
mod pipeline;
mod plan_cmd;
mod planning;
mod reports;
mod self_doc;
mod show;

/// The whole command line: a subcommand, or the options of a plain `cargo shard` (a nextest run).
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
    /// The subcommand given; `None` runs nextest with [`Cli::run`]'s options.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Without a subcommand: run a cargo workspace's tests with nextest.
    #[command(flatten)]
    pub run: NextestRunArgs,
}

/// One subcommand per thing `cargo shard` does; its doc line is the command's `--help` summary.
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
    /// Reprint the last run's summary (or only its failures) from what it wrote; runs nothing.
    Show(ShowArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions(CompletionsArgs),
    /// Print the man page (roff) to stdout, or write one page per command into a directory.
    Man(ManArgs),
    /// Join the outputs of `--partition` jobs into one JUnit, history and HTML report.
    Merge(merge::MergeArgs),
    /// Print a Makefile fragment that runs `make test-integration` through cargo shard when
    /// SHARD_HOSTS is set, and as before otherwise.
    Makefile,
}

/// Options of `cargo shard show`, which reprints a finished run from its output directory.
#[derive(Debug, Args, Clone)]
pub struct ShowArgs {
    /// The run's output directory (default: <cargo target dir>/shard, else target/shard).
    #[arg(long = "out-dir", value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Only the failures, flaky tests and the count line.
    #[arg(long)]
    pub failures: bool,
    /// Colour the status words: auto (a terminal without NO_COLOR), always or never.
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = Color::Auto)]
    pub color: Color,
}

/// Options of `cargo shard completions`.
#[derive(Debug, Args, Clone)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Options of `cargo shard man`.
#[derive(Debug, Args, Clone)]
pub struct ManArgs {
    /// Write `cargo-shard.1` and one `cargo-shard-COMMAND.1` per subcommand into DIR instead.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Help headings, grouped as nextest groups its own: which tests, where, how they are split,
/// how they run, what is reported.
pub mod heading {
    /// Test selection: which tests are listed, built and filtered.
    pub const SELECTION: &str = "Test selection";
    /// Hosts: which engines the shards run on.
    pub const HOSTS: &str = "Hosts";
    /// Planning: how many shards and how they are balanced.
    pub const PLANNING: &str = "Planning";
    /// Running: retries, timeouts, limits and the `[job]`.
    pub const RUNNING: &str = "Running";
    /// Reporting: where results go and what the terminal shows.
    pub const REPORTING: &str = "Reporting";
}

/// The fragment `cargo shard makefile` prints.
pub const MAKEFILE_FRAGMENT: &str = include_str!("makefile.mk");

/// Where shards run: the hosts file, the backend and host filters, shared by every command that
/// connects.
#[derive(Debug, Args, Clone, Default)]
pub struct HostsOpt {
    /// Hosts file (hosts.toml). Default: CARGO_SHARD_HOSTS, .config/cargo-shard.toml,
    /// DOCKER_HOST, the local socket; local processes only when none is configured or answers.
    #[arg(help_heading = heading::HOSTS, long, value_name = "FILE", global = false)]
    pub hosts: Option<PathBuf>,
    /// Where shards run: docker (the configured hosts, never local processes), local
    /// (child processes here), or auto.
    #[arg(help_heading = heading::HOSTS, long, value_name = "BACKEND", value_enum, default_value_t = Backend::Auto)]
    pub backend: Backend,
    /// Where the hosts come from, once the lookup order has been applied.
    #[arg(skip)]
    pub source: Option<crate::config::locate::HostsSource>,
    /// The project file found (`.config/cargo-shard.toml`), whose `[job]` applies when no
    /// other file gives one.
    #[arg(skip)]
    pub project: Option<PathBuf>,
    /// Use only these hosts (repeatable, by name).
    #[arg(help_heading = heading::HOSTS, long = "only-host", value_name = "NAME")]
    pub only_host: Vec<String>,
    /// Image for every shard container, instead of the hosts file's.
    #[arg(help_heading = heading::HOSTS, long, value_name = "IMAGE")]
    pub image: Option<String>,
}

/// Options of `cargo shard hosts`, which checks every host without running tests.
#[derive(Debug, Args, Clone)]
pub struct HostsArgs {
    /// Which hosts to check.
    #[command(flatten)]
    pub hosts: HostsOpt,
    /// Per-host check timeout.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// Options of `cargo shard gc`, which removes what runs left behind on the hosts.
#[derive(Debug, Args, Clone)]
pub struct GcArgs {
    /// Which hosts to clean.
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
    #[arg(help_heading = heading::PLANNING, long, visible_alias = "chunks", value_name = "N")]
    pub shards: Option<usize>,
    /// History file: read before planning, updated after the run.
    #[arg(help_heading = heading::PLANNING, long, value_name = "FILE")]
    pub history: Option<PathBuf>,
    /// Seed the history from JUnit files (glob, repeatable).
    #[arg(help_heading = heading::PLANNING, long = "timings-from", value_name = "GLOB")]
    pub timings_from: Vec<String>,
    /// Duration assumed for a test with no history and no known neighbours.
    #[arg(help_heading = heading::PLANNING, long = "default-duration", value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub default_duration: Duration,
    /// Shuffle the tests before binning (reproducible with --seed).
    #[arg(help_heading = heading::PLANNING, long)]
    pub shuffle: bool,
    /// Seed for --shuffle: the same seed and inputs give the same plan.
    #[arg(help_heading = heading::PLANNING, long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// Run exactly the tests (or `-check.f` keys) listed in this file, one per line.
    #[arg(help_heading = heading::SELECTION, long = "filters-file", value_name = "FILE")]
    pub filters_file: Option<PathBuf>,
}

/// How to run: shared by every runner.
#[derive(Debug, Args, Clone)]
pub struct RunOpts {
    /// Where the shards run.
    #[command(flatten)]
    pub hosts: HostsOpt,
    /// How the tests are split into shards.
    #[command(flatten)]
    pub plan: PlanOpts,
    /// Print the plan and stop.
    #[arg(help_heading = heading::PLANNING, long = "dry-run")]
    pub dry_run: bool,
    /// Retry a shard that failed without results (lost host, killed container) this many times.
    #[arg(help_heading = heading::RUNNING, long = "shard-retries", value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(..=100))]
    pub shard_retries: u32,
    /// Re-run failed tests up to N times; a test that then passes is flaky.
    #[arg(help_heading = heading::RUNNING, long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u32).range(..=100))]
    pub retries: u32,
    /// Whether a flaky test fails the run.
    #[arg(help_heading = heading::RUNNING, long = "flaky-result", value_name = "RESULT", value_enum, default_value_t = FlakyResult::Pass)]
    pub flaky_result: FlakyResult,
    /// Kill a shard's container after this long; its unfinished tests become errors.
    #[arg(help_heading = heading::RUNNING, long = "shard-timeout", value_name = "DURATION", value_parser = parse_timeout)]
    pub shard_timeout: Option<Duration>,
    /// Per-test timeout handed to the runner.
    #[arg(help_heading = heading::RUNNING, long = "test-timeout", value_name = "DURATION", value_parser = parse_timeout)]
    pub test_timeout: Option<Duration>,
    /// Keep containers afterwards for debugging, and print how to reach them.
    #[arg(help_heading = heading::RUNNING, long = "keep-containers")]
    pub keep_containers: bool,
    /// Run every planned shard whole, in a container of its own: no batches, so no slot takes
    /// tests from another (by default a shard whose time is mostly estimated is cut into
    /// batches that idle slots take over).
    #[arg(help_heading = heading::RUNNING, long = "no-steal")]
    pub no_steal: bool,
    /// Where to write the merged JUnit report.
    #[arg(help_heading = heading::REPORTING, long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Directory for logs, reports and history (default: <target dir>/shard).
    #[arg(help_heading = heading::REPORTING, long = "out-dir", value_name = "DIR", value_parser = absolute_path)]
    pub out_dir: Option<PathBuf>,
    /// Output format on stdout: human, or one JSON event per line.
    #[arg(help_heading = heading::REPORTING, long = "message-format", value_name = "FORMAT", value_enum, default_value_t = MessageFormat::Human)]
    pub message_format: MessageFormat,
    /// Plain timestamped lines instead of progress bars, even on a terminal.
    #[arg(help_heading = heading::REPORTING, long = "no-progress")]
    pub no_progress: bool,
    /// Print nothing live but lost hosts; only the summary at the end.
    #[arg(help_heading = heading::REPORTING, long, short)]
    pub quiet: bool,
    /// One PASS/SKIP line per test as well as the failures.
    #[arg(help_heading = heading::REPORTING, long, short, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Colour status words: auto (a terminal, TERM not dumb, NO_COLOR unset), always, never.
    #[arg(help_heading = heading::REPORTING, long, value_name = "WHEN", value_enum, default_value_t = Color::Auto)]
    pub color: Color,
    /// The `[job]` overrides from the command line.
    #[command(flatten)]
    pub job: JobOpts,
    /// CI-matrix mode: run only job K's share of a plan for N jobs (`K/N`, 1-based), or
    /// `auto` (GitLab, CircleCI, Buildkite parallelism variables). Local unless --hosts.
    #[arg(help_heading = heading::PLANNING, long, value_name = "K/N|auto", value_parser = partition::parse_arg)]
    pub partition: Option<partition::PartitionArg>,
    /// Failures after which the whole run stops (nextest's `--fail-fast`/`--max-fail`).
    #[arg(skip)]
    pub max_fail: Option<usize>,
    /// Tests at once per shard, instead of each host's `jobs` (nextest's `-j`).
    #[arg(skip)]
    pub test_threads: Option<usize>,
}

/// The job: services, steps, secrets, limits, artifacts (see `[job]` in hosts.example.toml).
#[derive(Debug, Args, Clone, Default)]
pub struct JobOpts {
    /// Job file with a `[job]` table (instead of the hosts file's `[job]`).
    #[arg(help_heading = heading::RUNNING, long = "job", value_name = "FILE")]
    pub job: Option<PathBuf>,
    /// Copy PATH (absolute, or relative to the shard's working directory) out of every shard
    /// into <out>/artifacts/<shard>/ (repeatable).
    #[arg(help_heading = heading::RUNNING, long = "artifacts", value_name = "PATH")]
    pub artifacts: Vec<String>,
    /// CPUs per shard container, overriding the job's `cpus`.
    #[arg(help_heading = heading::RUNNING, long, value_name = "N")]
    pub cpus: Option<f64>,
    /// Memory limit per shard container (e.g. 512m, 2g), overriding the job's `memory`.
    #[arg(help_heading = heading::RUNNING, long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// A variable every shard sees: NAME takes this environment's value, NAME=VALUE sets it
    /// (repeatable; RUST_BACKTRACE and RUST_LOG pass by default, nothing else does).
    #[arg(help_heading = heading::RUNNING, long = "env", value_name = "NAME[=VALUE]")]
    pub env: Vec<String>,
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
            no_steal: false,
            message_format: MessageFormat::Human,
            no_progress: true,
            quiet: true,
            verbose: 0,
            color: Color::Never,
            job: JobOpts::default(),
            partition: None,
            max_fail: None,
            test_threads: None,
        }
    }
}

// Every ValueEnum variant in this file carries its doc through `concat!`: clap turns a plain
// `///` into per-value help and would change every `--help` (the flag's help names the values).
/// Where shards run (`--backend`): Docker hosts, local processes, or whichever answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Backend {
    #[doc = concat!("The configured Docker hosts if any answers, else local processes.")]
    #[default]
    Auto,
    #[doc = concat!("Only the configured Docker hosts; never falls back to local processes.")]
    Docker,
    #[doc = concat!("Child processes on this machine, one per shard.")]
    Local,
}

/// Whether a test that failed and then passed on a retry fails the run (`--flaky-result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum FlakyResult {
    #[doc = concat!("A flaky test counts as passed; the run can still succeed.")]
    #[default]
    Pass,
    #[doc = concat!("A flaky test fails the run.")]
    Fail,
}

/// What stdout carries during a run (`--message-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum MessageFormat {
    #[doc = concat!("Progress and a summary for a person.")]
    #[default]
    Human,
    #[doc = concat!("One JSON event per line for a tool.")]
    Json,
}

/// When status words are coloured (`--color`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Color {
    #[doc = concat!("Colour on a terminal whose TERM is not dumb and NO_COLOR is unset.")]
    #[default]
    Auto,
    #[doc = concat!("Colour even when writing to a file or pipe.")]
    Always,
    #[doc = concat!("Plain text always.")]
    Never,
}

/// Which tests nextest builds and lists, shaped like nextest's own flags.
#[derive(Debug, Args, Clone, Default)]
pub struct NextestSelect {
    /// Path to the workspace's Cargo.toml (default: found from the current directory).
    #[arg(help_heading = heading::SELECTION, long = "manifest-path", value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// Test only this package (repeatable), like `cargo test -p`.
    #[arg(help_heading = heading::SELECTION, long, short = 'p', value_name = "SPEC")]
    pub package: Vec<String>,
    /// Test every package in the workspace.
    #[arg(help_heading = heading::SELECTION, long)]
    pub workspace: bool,
    /// Features to enable (space or comma separated, repeatable).
    #[arg(help_heading = heading::SELECTION, long, short = 'F', value_name = "FEATURES")]
    pub features: Vec<String>,
    /// Enable every feature of the selected packages.
    #[arg(help_heading = heading::SELECTION, long = "all-features")]
    pub all_features: bool,
    /// Do not enable the `default` feature.
    #[arg(help_heading = heading::SELECTION, long = "no-default-features")]
    pub no_default_features: bool,
    /// Build the tests in release mode.
    #[arg(help_heading = heading::SELECTION, long, short = 'r')]
    pub release: bool,
    /// Build the tests with this cargo profile.
    #[arg(help_heading = heading::SELECTION, long = "cargo-profile", value_name = "NAME")]
    pub cargo_profile: Option<String>,
    /// Filterset expression (nextest's `-E`), repeatable.
    #[arg(help_heading = heading::SELECTION, long = "filterset", short = 'E', value_name = "EXPR")]
    pub filterset: Vec<String>,
    /// Which ignored tests run: default (none), only (only them) or all, as in nextest.
    #[arg(help_heading = heading::SELECTION, long = "run-ignored", value_name = "WHICH", value_enum, default_value_t = RunIgnored::Default)]
    pub run_ignored: RunIgnored,
}

/// Which ignored tests run, as nextest's `--run-ignored`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum RunIgnored {
    #[doc = concat!("Only the tests not marked ignored.")]
    #[default]
    Default,
    #[doc = concat!("Only the tests marked ignored.")]
    Only,
    #[doc = concat!("Every test, ignored or not.")]
    All,
}

/// Options of `cargo shard run` (and of a plain `cargo shard`): a cargo workspace's tests through
/// nextest.
#[derive(Debug, Args, Clone)]
pub struct NextestRunArgs {
    /// Which runner: nextest, go, or auto (go when the directory has `go.mod` and no
    /// `Cargo.toml`, else nextest).
    #[arg(help_heading = heading::SELECTION, long, value_enum, default_value_t = Runner::Auto)]
    pub runner: Runner,
    /// Which packages, features and tests nextest builds and lists.
    #[command(flatten)]
    pub select: NextestSelect,
    /// Hosts, planning, running and reporting options every runner shares.
    #[command(flatten)]
    pub run: RunOpts,
    /// nextest's own run flags (`--profile`, `--no-capture`, `--max-fail`, `-j`), checked before
    /// anything starts.
    #[command(flatten)]
    pub nextest: nextest_flags::NextestRunFlags,
    /// As after `cargo nextest run --`: test-name filters, `--exact`, `--skip NAME`,
    /// `--ignored`, `--include-ignored` (for `--runner go`: flags for every test binary).
    #[arg(last = true)]
    pub passthrough: Vec<String>,
}

/// Which test runner `cargo shard run` uses (`--runner`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Runner {
    #[doc = concat!("Go when the directory has `go.mod` and no `Cargo.toml`, else nextest.")]
    #[default]
    Auto,
    #[doc = concat!("A cargo workspace's tests through cargo-nextest.")]
    Nextest,
    #[doc = concat!("A Go module's tests, as `cargo shard go` runs them.")]
    Go,
}

/// Options of `cargo shard plan`, which prints the plan a run would follow and runs nothing.
#[derive(Debug, Args, Clone)]
#[command(args_conflicts_with_subcommands = true)]
pub struct PlanArgs {
    /// Without one: a cargo workspace's tests, as `cargo shard run` finds them.
    #[command(subcommand)]
    pub runner: Option<PlanRunner>,
    /// Which nextest tests are planned when no runner subcommand is given.
    #[command(flatten)]
    pub select: NextestSelect,
    /// Hosts, planning options and output format, whichever runner lists the suite.
    #[command(flatten)]
    pub common: PlanCommon,
}

/// What every `plan` takes, whichever runner lists the suite.
#[derive(Debug, Args, Clone)]
pub struct PlanCommon {
    /// The hosts whose slots set the default number of shards.
    #[command(flatten)]
    pub hosts: HostsOpt,
    /// How the tests are split into shards.
    #[command(flatten)]
    pub plan: PlanOpts,
    /// Output: a human table (with per-shard overhead) or stable JSON.
    #[arg(help_heading = heading::REPORTING, long, value_enum, default_value_t = PlanFormat::Human)]
    pub format: PlanFormat,
}

/// The suites `cargo shard plan` can plan besides nextest's.
#[derive(Debug, Subcommand, Clone)]
pub enum PlanRunner {
    /// Plan a Go module's tests: build and list them as `cargo shard go` would, run none.
    Go(PlanGoArgs),
    /// Plan a command's keys: list them as `cargo shard exec` would, run nothing else.
    Exec(PlanExecArgs),
}

/// Options of `cargo shard plan go`.
#[derive(Debug, Args, Clone)]
pub struct PlanGoArgs {
    /// Which Go packages are built and listed.
    #[command(flatten)]
    pub select: GoSelect,
    /// Hosts, planning options and output format.
    #[command(flatten)]
    pub common: PlanCommon,
    /// `go test` flags, as for `cargo shard go` (build flags change what is listed).
    #[arg(last = true)]
    pub passthrough: Vec<String>,
}

/// Options of `cargo shard plan exec`.
#[derive(Debug, Args, Clone)]
pub struct PlanExecArgs {
    /// Where the keys come from.
    #[command(flatten)]
    pub select: ExecSelect,
    /// Hosts, planning options and output format.
    #[command(flatten)]
    pub common: PlanCommon,
    /// The command each shard would run (checked as `exec` checks it, never run).
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// How `cargo shard plan` prints the plan (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum PlanFormat {
    #[doc = concat!("A table for a person, with each shard's predicted time and overhead.")]
    #[default]
    Human,
    #[doc = concat!("Stable JSON for a tool.")]
    Json,
}

/// Which Go tests to build and list: shared by `go` and `plan go`.
#[derive(Debug, Args, Clone, Default)]
pub struct GoSelect {
    /// Packages (default ./...).
    pub packages: Vec<String>,
    /// Module directory (default: the current directory).
    #[arg(help_heading = heading::SELECTION, long = "dir", value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Build with cgo (test binaries then need the image's libc).
    #[arg(help_heading = heading::SELECTION, long)]
    pub cgo: bool,
    /// Build in GOPATH mode with this GOPATH (for gocheck suites outside modules).
    #[arg(help_heading = heading::SELECTION, long, value_name = "PATH")]
    pub gopath: Option<String>,
}

/// Options of `cargo shard go`: a Go module's `go test` and gocheck suites.
#[derive(Debug, Args, Clone)]
pub struct GoArgs {
    /// Which Go packages are built and listed.
    #[command(flatten)]
    pub select: GoSelect,
    /// Hosts, planning, running and reporting options every runner shares.
    #[command(flatten)]
    pub run: RunOpts,
    /// `go test` flags: -tags, -race (build), -short, -count, -timeout, -cpu, -failfast (run),
    /// and the binaries' own -test.* / -check.* flags.
    #[arg(last = true)]
    pub passthrough: Vec<String>,
}

/// Where `exec`'s keys come from and how a shard receives them: shared by `exec` and
/// `plan exec`.
#[derive(Debug, Args, Clone)]
pub struct ExecSelect {
    /// Command that lists the keys, one per line (run through `sh -c` locally).
    #[arg(help_heading = heading::SELECTION, long, value_name = "COMMAND")]
    pub list: Option<String>,
    /// Keep only listed keys matching this regex.
    #[arg(help_heading = heading::SELECTION, long = "list-filter", value_name = "REGEX")]
    pub list_filter: Option<String>,
    /// Pass a shard's keys joined into one filter in this environment variable.
    #[arg(help_heading = heading::SELECTION, long = "filter-env", value_name = "NAME")]
    pub filter_env: Option<String>,
    /// How to write the filter: `{regex}` becomes `^(k1|k2)$` with keys regex-escaped.
    #[arg(
        help_heading = heading::SELECTION,
        long = "filter-format",
        value_name = "FMT",
        default_value = "{regex}",
        allow_hyphen_values = true
    )]
    pub filter_format: String,
    /// One container per key, the key in this environment variable.
    #[arg(help_heading = heading::SELECTION, long = "key-env", value_name = "NAME")]
    pub key_env: Option<String>,
    /// JUnit files the command writes, relative to the working directory.
    #[arg(help_heading = heading::SELECTION, long, value_name = "GLOB")]
    pub results: Vec<String>,
    /// Source tree to upload as the working directory (default: the current directory).
    #[arg(help_heading = heading::SELECTION, long = "dir", value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Options of `cargo shard exec`: a user's command run once per shard with its share of keys.
#[derive(Debug, Args, Clone)]
pub struct ExecArgs {
    /// Where the keys come from and how each shard receives them.
    #[command(flatten)]
    pub select: ExecSelect,
    /// Hosts, planning, running and reporting options every runner shares.
    #[command(flatten)]
    pub run: RunOpts,
    /// The command each shard runs, e.g. `make test-integration`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// A duration or timeout on the command line or in the project file that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DurationError {
    /// The text is neither plain seconds nor a humantime duration.
    #[error("invalid duration {given:?}: {reason}")]
    Invalid {
        /// The text as given.
        given: String,
        /// The parser's own complaint.
        reason: String,
    },
    /// A timeout of zero, which would end every shard before it starts.
    #[error("a timeout must be above 0, got {0:?}")]
    Zero(String),
    /// The number exceeds the one-week bound in [`crate::limits`].
    #[error("a timeout must be at most {max}s (a week), got {0:?}", max = crate::limits::MAX_SECS)]
    TooLong(String),
}

/// A path as given, made absolute against the current directory: the build and the runners
/// run in the workspace or module directory, where a relative path would name another place.
pub fn absolute_path(s: &str) -> Result<PathBuf, String> {
    std::path::absolute(s).map_err(|e| format!("{s:?}: {e}"))
}

/// Parses `2s`, `1m30s`, `500ms`, or plain seconds (`2.5`).
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let invalid = |reason: String| DurationError::Invalid {
        given: s.to_string(),
        reason,
    };
    if let Ok(secs) = s.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Duration::try_from_secs_f64(secs).map_err(|e| invalid(e.to_string()));
    }
    humantime::parse_duration(s).map_err(|e| invalid(e.to_string()))
}

/// A timeout: a duration above zero and at most a week (`0s` would end every shard at once).
pub fn parse_timeout(s: &str) -> Result<Duration, DurationError> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(DurationError::Zero(s.to_string()));
    }
    if d.as_secs_f64() > crate::limits::MAX_SECS {
        return Err(DurationError::TooLong(s.to_string()));
    }
    Ok(d)
}

/// Entry point: strips the `shard` argument cargo inserts, parses, dispatches.
pub fn main() -> ExitCode {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).map(|a| a == "shard").unwrap_or(false) {
        args.remove(1);
    }
    let mut cli = match parse_with_project_defaults(args) {
        Ok(c) => c,
        Err(Ok(e)) => {
            let _ = e.print();
            return exit::code(if e.use_stderr() { exit::USAGE } else { exit::OK });
        }
        Err(Err(e)) => return exit::code(fail(e)),
    };
    if let Err(e) = partition::resolve_auto(&mut cli) {
        return exit::code(fail(e));
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return exit::code(fail(error::Error::Runtime(e))),
    };
    let code = rt.block_on(async move {
        crate::interrupt::install();
        dispatch(cli).await.unwrap_or_else(fail)
    });
    // Shards may leave blocking tasks (ssh tunnels) behind; do not wait for them.
    rt.shutdown_timeout(Duration::from_secs(1));
    exit::code(code)
}

/// Runs the subcommand: its exit code, or the error that ended it.
async fn dispatch(cli: Cli) -> Result<u8, error::Error> {
    match cli.command {
        None => Ok(pipeline::nextest(cli.run).await),
        Some(Command::Run(a)) => Ok(pipeline::nextest(a).await),
        Some(Command::Plan(a)) => plan_cmd::run(a).await,
        Some(Command::Hosts(a)) => hosts::run(a).await,
        Some(Command::Gc(a)) => gc::run(a).await,
        Some(Command::Go(a)) => Ok(pipeline::go(a).await),
        Some(Command::Exec(a)) => Ok(pipeline::exec(a).await),
        Some(Command::Show(a)) => show::run(a),
        Some(Command::Completions(a)) => Ok(self_doc::completions(a)),
        Some(Command::Man(a)) => self_doc::man(a),
        Some(Command::Merge(a)) => merge::run(a),
        Some(Command::Makefile) => {
            print!("{MAKEFILE_FRAGMENT}");
            Ok(exit::OK)
        }
    }
}

/// Parses the command line, then fills what it left at its defaults from the project file
/// and resolves where the hosts come from.
fn parse_with_project_defaults(
    args: Vec<std::ffi::OsString>,
) -> Result<Cli, Result<clap::Error, error::Error>> {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().try_get_matches_from(args).map_err(Ok)?;
    let mut cli = Cli::from_arg_matches(&matches).map_err(Ok)?;
    defaults::apply(&mut cli, &matches).map_err(Err)?;
    Ok(cli)
}

pub use error::fail;

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
        assert_eq!(a.select.filter_format, "-check.f {regex}");
        assert_eq!(a.command, ["make", "test-integration"]);
    }

    #[test]
    fn durations_take_plain_seconds_and_units() {
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .to_string()
                .contains("invalid duration")
        );
    }

    #[test]
    fn timeouts_must_be_above_zero_and_sane() {
        assert_eq!(parse_timeout("20s").unwrap(), Duration::from_secs(20));
        assert_eq!(
            parse_timeout("0s").unwrap_err().to_string(),
            "a timeout must be above 0, got \"0s\""
        );
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("1e300").is_err());
        assert!(
            parse_timeout("1000000000s")
                .unwrap_err()
                .to_string()
                .contains("at most")
        );
        let cli = Cli::try_parse_from(["cargo-shard", "--shard-timeout", "0s"]);
        assert!(cli.is_err(), "--shard-timeout 0s must be refused");
        assert!(Cli::try_parse_from(["cargo-shard", "--test-timeout", "0"]).is_err());
        // 1 + u32::MAX attempts would overflow.
        assert!(Cli::try_parse_from(["cargo-shard", "--shard-retries", "4294967295"]).is_err());
        assert!(Cli::try_parse_from(["cargo-shard", "--retries", "101"]).is_err());
    }

    #[test]
    fn a_relative_out_dir_is_taken_from_where_cargo_shard_was_started() {
        let cli = parse(&["cargo-shard", "--out-dir", "reports/shard"]);
        let here = std::env::current_dir().unwrap();
        assert_eq!(cli.run.run.out_dir, Some(here.join("reports/shard")));
        assert!(Cli::try_parse_from(["cargo-shard", "--out-dir", ""]).is_err());
    }
}
