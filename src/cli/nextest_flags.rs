//! nextest's own run options at the top level (`--fail-fast`, `--max-fail`, `-j`,
//! `--profile`, `--no-capture`) and what follows `--`, read the way `cargo nextest run`
//! reads them, so a suite's usual command line means the same under `cargo shard`.
//!
//! After `--` nextest takes only libtest's emulated arguments: test-name filters, `--exact`,
//! `--skip NAME`, `--ignored`, `--include-ignored` (and `--nocapture`). Those select tests,
//! so they are applied when listing; everything else is refused before any build or
//! container starts, with one line naming the argument (exit 2).

use clap::Args;

/// nextest's run options, with nextest's names and meaning.
#[derive(Debug, Args, Clone, Default)]
pub struct NextestRunFlags {
    /// Stop the whole run after the first failing test: other shards are cancelled and their
    /// unrun tests reported as skipped.
    #[arg(help_heading = super::heading::RUNNING, long = "fail-fast", visible_alias = "ff", conflicts_with_all = ["no_fail_fast", "max_fail"])]
    pub fail_fast: bool,
    /// Run every test whatever fails (the default).
    #[arg(help_heading = super::heading::RUNNING, long = "no-fail-fast", visible_alias = "nff", conflicts_with = "max_fail")]
    pub no_fail_fast: bool,
    /// Stop the whole run after N failing tests (`all`: never).
    #[arg(help_heading = super::heading::RUNNING, long = "max-fail", value_name = "N")]
    pub max_fail: Option<String>,
    /// Tests to run at once inside each shard (integer, or `num-cpus` for each host's own
    /// `jobs`).
    #[arg(help_heading = super::heading::RUNNING, long = "test-threads", short = 'j', value_name = "N")]
    pub test_threads: Option<String>,
    /// The nextest profile (from the workspace's `.config/nextest.toml`) every shard runs
    /// under: its timeouts, retries, test groups, overrides and default filter apply.
    #[arg(help_heading = super::heading::RUNNING, long = "profile", short = 'P', value_name = "NAME")]
    pub profile: Option<String>,
    /// Refused: output is captured per test so that each shard's report holds it.
    #[arg(help_heading = super::heading::RUNNING, long = "no-capture", visible_alias = "nocapture")]
    pub no_capture: bool,
    /// Doctests, which nextest does not run: unset, they are counted and a warning says how
    /// many will not run; `skip` leaves them out silently; `local` runs `cargo test --doc` on
    /// this machine beside the shards, its results in the same reports.
    #[arg(help_heading = super::heading::RUNNING, long = "doctests", value_enum, value_name = "WHERE")]
    pub doctests: Option<crate::discover::nextest::doctests::DoctestMode>,
}

/// What the command line asks of nextest, checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NextestRun {
    /// Failures after which the whole run stops; `None` runs everything.
    pub max_fail: Option<usize>,
    /// `-j`: tests at once per shard; `None` keeps each host's `jobs`.
    pub test_threads: Option<usize>,
    /// `-P`: the nextest profile every shard runs with; `None` uses cargo shard's own.
    pub profile: Option<String>,
    /// Arguments for `cargo nextest list -- …`: names, `--exact`, `--skip NAME`.
    pub list_filters: Vec<String>,
    /// `--ignored` (`Some(false)`: only ignored) or `--include-ignored` (`Some(true)`).
    pub ignored: Option<bool>,
}

/// Why a command line cannot run; exit 2 (usage).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FlagError {
    /// `--no-capture` was given; shards must capture output for their reports.
    #[error(
        "--no-capture is not supported: each shard captures every test's output for its report; use `cargo nextest run --no-capture` locally"
    )]
    NoCapture,
    /// Something after `--` that nextest's test filter does not accept.
    #[error(
        "`{0}` after `--` is not a nextest test filter: nextest accepts names, --exact, --skip NAME, --ignored and --include-ignored there; cargo shard's own options go before `--`"
    )]
    AfterDashes(String),
    /// `--skip` after `--` was the last argument.
    #[error("`--skip` after `--` needs a test name")]
    SkipWithoutName,
    /// `--max-fail` was neither a positive number nor `all`.
    #[error("--max-fail {0}: expected a number of failures (at least 1) or `all`")]
    MaxFail(String),
    /// `--test-threads` was neither a positive number nor `num-cpus`.
    #[error("--test-threads {0}: expected a number of tests (at least 1) or `num-cpus`")]
    TestThreads(String),
}

impl NextestRunFlags {
    /// Checks the flags and what followed `--`.
    pub fn check(&self, after_dashes: &[String]) -> Result<NextestRun, FlagError> {
        if self.no_capture {
            return Err(FlagError::NoCapture);
        }
        let max_fail = match (self.fail_fast, self.max_fail.as_deref()) {
            (true, _) => Some(1),
            (false, None | Some("all")) => None,
            (false, Some(n)) => Some(
                n.split(':')
                    .next()
                    .and_then(|n| n.parse::<usize>().ok())
                    .filter(|n| *n > 0)
                    .ok_or_else(|| FlagError::MaxFail(n.to_string()))?,
            ),
        };
        let test_threads = match self.test_threads.as_deref() {
            None | Some("num-cpus") => None,
            Some(n) => Some(
                n.parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| FlagError::TestThreads(n.to_string()))?,
            ),
        };
        let mut run = NextestRun {
            max_fail,
            test_threads,
            profile: self.profile.clone(),
            ..Default::default()
        };
        read_after_dashes(after_dashes, &mut run)?;
        Ok(run)
    }
}

fn read_after_dashes(args: &[String], run: &mut NextestRun) -> Result<(), FlagError> {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--nocapture" | "--no-capture" => return Err(FlagError::NoCapture),
            "--ignored" => run.ignored = Some(false),
            "--include-ignored" => run.ignored = Some(true),
            "--exact" => run.list_filters.push(arg.clone()),
            "--skip" => {
                let name = args.next().ok_or(FlagError::SkipWithoutName)?;
                run.list_filters.extend(["--skip".to_string(), name.clone()]);
            }
            flag if flag.starts_with('-') => return Err(FlagError::AfterDashes(flag.to_string())),
            _ => run.list_filters.push(arg.clone()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_and_libtest_arguments_select_tests_at_listing() {
        let run = NextestRunFlags::default()
            .check(&args(&[
                "counts_words",
                "--exact",
                "--skip",
                "slow",
                "--include-ignored",
            ]))
            .unwrap();
        assert_eq!(run.list_filters, ["counts_words", "--exact", "--skip", "slow"]);
        assert_eq!(run.ignored, Some(true));
        assert_eq!(run.max_fail, None);
    }

    #[test]
    fn other_arguments_after_dashes_are_refused_by_name() {
        let flags = NextestRunFlags::default();
        assert_eq!(
            flags.check(&args(&["--test-threads", "1"])),
            Err(FlagError::AfterDashes("--test-threads".into()))
        );
        assert_eq!(flags.check(&args(&["--nocapture"])), Err(FlagError::NoCapture));
        assert_eq!(flags.check(&args(&["--skip"])), Err(FlagError::SkipWithoutName));
        let err = flags.check(&args(&["--fail-fast"])).unwrap_err().to_string();
        assert!(err.starts_with("`--fail-fast` after `--`"), "{err}");
    }

    #[test]
    fn fail_fast_max_fail_and_threads_are_read_as_nextest_reads_them() {
        let flags = |f: NextestRunFlags| f.check(&[]);
        let ff = NextestRunFlags {
            fail_fast: true,
            ..Default::default()
        };
        assert_eq!(flags(ff).unwrap().max_fail, Some(1));
        for (given, expected) in [("3", Some(3)), ("2:immediate", Some(2)), ("all", None)] {
            let f = NextestRunFlags {
                max_fail: Some(given.into()),
                ..Default::default()
            };
            assert_eq!(flags(f).unwrap().max_fail, expected, "{given}");
        }
        let f = NextestRunFlags {
            max_fail: Some("0".into()),
            ..Default::default()
        };
        assert_eq!(flags(f), Err(FlagError::MaxFail("0".into())));
        let f = NextestRunFlags {
            test_threads: Some("4".into()),
            ..Default::default()
        };
        assert_eq!(flags(f).unwrap().test_threads, Some(4));
        let f = NextestRunFlags {
            test_threads: Some("many".into()),
            ..Default::default()
        };
        assert!(flags(f).is_err());
        let f = NextestRunFlags {
            no_capture: true,
            ..Default::default()
        };
        assert_eq!(flags(f), Err(FlagError::NoCapture));
    }
}
