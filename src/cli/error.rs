//! The one error a command ends with: each stage's own error kept whole (its `#[source]` chain
//! intact), and one match from it to the exit code in the README's table, so two similar
//! failures can never end with two different codes.

use std::path::PathBuf;

use super::backend::HostsError;
use super::cgo_check::CgoError;
use super::discovery::ExecArgsError;
use super::doctests::DoctestsError;
use super::go_flags::GoFlagError;
use super::job_setup::JobSetupError;
use super::nextest_flags::FlagError;
use super::partition::PartitionError;
use super::planning::PlanError;
use super::reports::ReportError;
use super::show::ShowError;
use crate::config::ConfigError;
use crate::discover::command::ExecError;
use crate::discover::gotest::GoError;
use crate::discover::nextest::NextestError;
use crate::exit;
use crate::partition::merge::MergeError;

/// Everything that ends a command before (or instead of) a verdict on the tests.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A runner's flag after `--` that cargo shard cannot pass on.
    #[error(transparent)]
    NextestFlags(#[from] FlagError),
    /// A `go test` flag after `--` that cargo shard cannot pass on.
    #[error(transparent)]
    GoFlags(#[from] GoFlagError),
    /// The hosts file, the project file or `DOCKER_HOST`.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A project file's `[options]` value that does not parse.
    #[error("{origin}: [options] {key}: {reason}")]
    ProjectOption {
        /// The project file.
        origin: String,
        /// The option's key.
        key: String,
        /// Why its value does not parse.
        reason: String,
    },
    /// No hosts to work with: a bad hosts file, an unknown `--only-host`, none reachable.
    #[error(transparent)]
    Hosts(#[from] HostsError),
    /// The `[job]` and its command-line overrides, or a pre-step.
    #[error(transparent)]
    JobSetup(#[from] JobSetupError),
    /// A report file that cannot be written where it goes.
    #[error(transparent)]
    Reports(#[from] ReportError),
    /// The plan's inputs: shard count, filters file, history.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// `--partition`: its value, the CI's variables, or the job's manifest.
    #[error(transparent)]
    Partition(#[from] PartitionError),
    /// `cargo shard exec` options that contradict each other or are missing.
    #[error(transparent)]
    ExecArgs(#[from] ExecArgsError),
    /// The output directory cannot be created.
    #[error("cannot create {path}: {source}")]
    OutDir {
        /// The directory.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    /// `cargo shard show` found no summary it can read.
    #[error(transparent)]
    Show(#[from] ShowError),
    /// `cargo shard man --dir` could not write its pages.
    #[error("cannot write man pages to {path}: {source}")]
    Man {
        /// The directory given.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    /// `cargo shard merge`: jobs that cannot be merged, or tests missing.
    #[error(transparent)]
    Merge(#[from] MergeError),
    /// `cargo shard merge` could not write its outputs.
    #[error("merge: cannot write: {0}")]
    MergeWrite(String),
    /// Finding the cargo target directory.
    #[error("cargo metadata: {0}")]
    Metadata(String),
    /// Building or listing a cargo workspace's tests.
    #[error(transparent)]
    Nextest(#[from] NextestError),
    /// Building or listing a Go module's tests.
    #[error(transparent)]
    Go(#[from] GoError),
    /// Listing exec's keys, or its options.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// `--doctests local` could not list the doctests (their build failed).
    #[error(transparent)]
    Doctests(#[from] DoctestsError),
    /// `-race`/`--cgo` on an image without the C library loader the test binaries need.
    #[error(transparent)]
    Cgo(#[from] CgoError),
    /// A discovery thread that panicked (a bug, but the run still ends with one line).
    #[error("{what} panicked: {message}")]
    Panicked {
        /// `discovery` or `listing`.
        what: &'static str,
        /// The panic's message.
        message: String,
    },
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// A panic inside the run; its containers were removed before it unwound.
    #[error(
        "internal error (a bug in cargo-shard, please report it): {message}; run {run_id} was cleaned up"
    )]
    Internal {
        /// The panic's message.
        message: String,
        /// The run it ended.
        run_id: String,
    },
}

/// A row of the README's exit-code table: what kind of failure ended the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row {
    /// 2: the command line.
    Usage,
    /// 1: a file, a value or an option.
    BadInput,
    /// 101: the tests could not be built or listed.
    Listing,
    /// 101: a pre-step failed.
    PreStep,
    /// 102: no host to run on.
    NoHost,
    /// 102: a bug in cargo-shard.
    Internal,
    /// 102: the run or its outputs could not be completed.
    Incomplete,
}

impl Row {
    /// The code the README gives this row.
    pub fn code(self) -> u8 {
        match self {
            Row::Usage => exit::USAGE,
            Row::BadInput => exit::BAD_INPUT,
            Row::Listing | Row::PreStep => exit::BUILD_FAILED,
            Row::NoHost | Row::Internal | Row::Incomplete => exit::INFRA_FAILED,
        }
    }

    /// Words of the README's row that say this kind of failure belongs there.
    pub fn words(self) -> &'static str {
        match self {
            Row::Usage => "usage error",
            Row::BadInput => "bad input",
            Row::Listing => "building or listing the tests failed",
            Row::PreStep => "a pre-step failed",
            Row::NoHost => "no host usable",
            Row::Internal => "an internal error",
            Row::Incomplete => "the run could not complete",
        }
    }
}

impl Error {
    /// Which row of the README's exit-code table this error falls in: the one match.
    pub fn row(&self) -> Row {
        use JobSetupError as J;
        match self {
            Error::NextestFlags(_) | Error::GoFlags(_) => Row::Usage,
            Error::Config(_)
            | Error::ProjectOption { .. }
            | Error::Hosts(HostsError::Config(_) | HostsError::UnknownHost { .. })
            | Error::JobSetup(
                J::Config(_)
                | J::Cpus(_)
                | J::Memory(_)
                | J::ServicesOnLocal { .. }
                | J::PassEnv(_)
                | J::Job(_),
            )
            | Error::Reports(_)
            | Error::Plan(_)
            | Error::Partition(PartitionError::Arg(_) | PartitionError::Auto(_) | PartitionError::Plan(_))
            | Error::ExecArgs(_)
            | Error::OutDir { .. }
            | Error::Show(_)
            | Error::Man { .. }
            | Error::Merge(MergeError::Input(_))
            | Error::Cgo(_) => Row::BadInput,
            // The user's listing command failed; a bad option or file around it is bad input.
            Error::Exec(ExecError::List { .. }) => Row::Listing,
            Error::Exec(_) => Row::BadInput,
            Error::Metadata(_)
            | Error::Nextest(_)
            | Error::Go(_)
            | Error::Panicked { .. }
            | Error::Doctests(_) => Row::Listing,
            Error::JobSetup(J::PreStep(_)) => Row::PreStep,
            Error::Hosts(HostsError::NoneUsable { .. } | HostsError::Local(_)) => Row::NoHost,
            Error::Internal { .. } => Row::Internal,
            Error::Partition(PartitionError::Write { .. })
            | Error::Merge(MergeError::Incomplete(_))
            | Error::MergeWrite(_)
            | Error::Runtime(_) => Row::Incomplete,
        }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        self.row().code()
    }
}

/// Prints the one-line error and returns its exit code.
pub fn fail(e: impl Into<Error>) -> u8 {
    let e = e.into();
    eprintln!("error: {e}");
    e.exit_code()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::job::MemoryError;
    use crate::discover::command::ExecError;
    use crate::discover::nextest::doctests::local::DoctestError;
    use crate::engine::EngineError;
    use crate::history::HistoryError;
    use crate::job::JobError;
    use crate::plan::FilterError;

    fn io() -> std::io::Error {
        std::io::Error::other("disk full")
    }

    /// One of every variant (and of every sub-variant whose code differs).
    // Long on purpose: one list entry per variant, so a new variant is one added line here.
    fn every_error() -> Vec<Error> {
        let s = || "x".to_string();
        vec![
            FlagError::NoCapture.into(),
            GoFlagError::Unknown(s()).into(),
            ConfigError::File { path: s(), msg: s() }.into(),
            Error::ProjectOption {
                origin: s(),
                key: s(),
                reason: s(),
            },
            HostsError::Config(ConfigError::File { path: s(), msg: s() }).into(),
            HostsError::UnknownHost {
                name: s(),
                file: s(),
                known: s(),
            }
            .into(),
            HostsError::NoneUsable {
                origin: s(),
                why: s(),
            }
            .into(),
            HostsError::Local(EngineError::Cancelled).into(),
            JobSetupError::Config(ConfigError::File { path: s(), msg: s() }).into(),
            JobSetupError::Cpus(0.0).into(),
            JobSetupError::Memory(MemoryError::Unit(s())).into(),
            JobSetupError::ServicesOnLocal {
                file: s(),
                names: s(),
                host: s(),
            }
            .into(),
            JobSetupError::PassEnv(super::super::pass_env::PassEnvError::Unset(s())).into(),
            JobSetupError::Job(JobError::SecretEmpty {
                source_file: s(),
                name: s(),
            })
            .into(),
            JobSetupError::PreStep(s()).into(),
            ReportError::IsDirectory("d".into()).into(),
            PlanError::Shards(0).into(),
            PlanError::Filters(FilterError::Read {
                path: s(),
                source: io(),
            })
            .into(),
            PlanError::History(HistoryError::Glob {
                pattern: s(),
                msg: s(),
            })
            .into(),
            PartitionError::Arg(s()).into(),
            PartitionError::Auto(s()).into(),
            PartitionError::Plan(PlanError::Shards(0)).into(),
            PartitionError::Write {
                path: "p".into(),
                source: io(),
            }
            .into(),
            ExecArgsError::NoKeys.into(),
            DoctestsError::List(DoctestError::List(s())).into(),
            CgoError {
                why: "-race",
                loader: s(),
                missing: vec![s()],
            }
            .into(),
            Error::OutDir {
                path: "d".into(),
                source: io(),
            },
            ShowError::Missing(s()).into(),
            Error::Man {
                path: "d".into(),
                source: io(),
            },
            MergeError::Input(s()).into(),
            MergeError::Incomplete(s()).into(),
            Error::MergeWrite(s()),
            Error::Metadata(s()),
            NextestError::Metadata(s()).into(),
            GoError::NoGo(s()).into(),
            ExecError::List {
                command: s(),
                status: s(),
                stderr: s(),
            }
            .into(),
            ExecError::EmptyCommand.into(),
            Error::Panicked {
                what: "discovery",
                message: s(),
            },
            Error::Runtime(io()),
            Error::Internal {
                message: s(),
                run_id: s(),
            },
        ]
    }

    /// `| code | meaning |` rows of the README's exit-code table.
    fn readme_table() -> Vec<(u8, String)> {
        let readme = include_str!("../../README.md");
        let table = readme
            .split("### Exit codes")
            .nth(1)
            .expect("README has an exit-code table");
        table
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .filter_map(|l| {
                let mut cells = l.split('|').map(str::trim).filter(|c| !c.is_empty());
                let code = cells.next()?.parse().ok()?;
                Some((code, cells.next()?.to_string()))
            })
            .collect()
    }

    #[test]
    fn every_error_ends_with_the_code_the_readme_gives_its_kind() {
        let table = readme_table();
        assert_eq!(
            table.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
            [
                exit::OK,
                exit::BAD_INPUT,
                exit::USAGE,
                exit::TESTS_FAILED,
                exit::BUILD_FAILED,
                exit::INFRA_FAILED,
                exit::INTERRUPTED
            ],
            "the README's table and src/exit.rs list the same codes"
        );
        for e in every_error() {
            let code = e.exit_code();
            let (_, meaning) = table
                .iter()
                .find(|(c, _)| *c == code)
                .unwrap_or_else(|| panic!("{e:?}: exit {code} is not in the README's table"));
            let words = e.row().words();
            assert!(
                meaning.contains(words),
                "{e:?} ends with {code} ({meaning}), but it is a case of \"{words}\""
            );
        }
    }

    #[tokio::test]
    async fn doctest_and_cgo_errors_keep_their_words_codes_and_causes() {
        use std::error::Error as _;
        let listing = Error::from(DoctestsError::List(DoctestError::List("exit status: 101".into())));
        assert_eq!(
            listing.to_string(),
            "--doctests local: `cargo test --doc -- --list` failed (exit status: 101)"
        );
        assert_eq!(listing.exit_code(), exit::BUILD_FAILED);
        let died = tokio::task::spawn_blocking(|| panic!("boom")).await.unwrap_err();
        let panicked = Error::from(DoctestsError::Panicked(died));
        let cause = panicked
            .source()
            .expect("the join error is kept as the cause")
            .to_string();
        assert!(cause.contains("boom"), "{cause}");
        assert_eq!(
            panicked.to_string(),
            format!("--doctests local: listing panicked: {cause}")
        );
        let cgo = Error::from(CgoError {
            why: "-race",
            loader: "/lib64/ld-linux-x86-64.so.2".into(),
            missing: vec!["e1 (image busybox)".into(), "e2 (image scratch)".into()],
        });
        assert_eq!(
            cgo.to_string(),
            "-race builds test binaries that need the C library's loader /lib64/ld-linux-x86-64.so.2, which the image of e1 (image busybox), e2 (image scratch) lacks: use an image with glibc there, or leave out -race"
        );
        assert_eq!(cgo.exit_code(), exit::BAD_INPUT);
    }

    #[test]
    fn a_stage_error_keeps_its_cause() {
        use std::error::Error as _;
        let e = Error::from(ReportError::NotWritable {
            path: "r/junit.xml".into(),
            dir: "r".into(),
            source: io(),
        });
        assert_eq!(e.to_string(), "r/junit.xml: cannot write in r: disk full");
        assert_eq!(e.source().map(|s| s.to_string()).as_deref(), Some("disk full"));
    }
}
