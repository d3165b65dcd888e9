//! cargo-nextest discovery: build the workspace's tests once into a nextest archive, list
//! the tests of that build, and run a shard's exact subset from it with the source remapped.

pub mod doctests;
mod filter;
mod junit;
mod process;
mod recipe;
mod reports;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use nextest_metadata::{FilterMatch, TestListSummary};

use super::{Suite, TestCase, Tool};

use crate::shard::Upload;

use crate::test_result::TestId;
use process::{one_line, run};

pub use filter::{exact_filterset, quote_matcher};
pub use recipe::{NextestRecipe, TARGET_PART, UserProfile};

/// The archive's name in the shard root, and the source tree's.
pub const ARCHIVE_DEST: &str = "archive.tar.zst";
/// The source tree's directory in the shard root, handed to nextest as `--workspace-remap`.
pub const SOURCE_DEST: &str = "src";
/// The generated tool-config file, relative to the shard root.
pub const TOOL_CONFIG_DEST: &str = "shard-nextest.toml";
/// The runner binary every shard invokes.
pub const NEXTEST_BIN: &str = "cargo-nextest";

/// Which ignored tests run, as nextest's `--run-ignored`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunIgnored {
    /// Only the tests not marked `#[ignore]`.
    #[default]
    Default,
    /// Only the tests marked `#[ignore]`.
    Only,
    /// Every test, ignored or not.
    All,
}

/// What to build and list, shaped like nextest's own flags.
#[derive(Debug, Clone, Default)]
pub struct NextestOptions {
    /// `--manifest-path`: the workspace to build; `None` finds it from the current directory.
    pub manifest_path: Option<PathBuf>,
    /// `-p`: packages to test; empty means cargo's default selection.
    pub packages: Vec<String>,
    /// `--workspace`: test every package.
    pub workspace: bool,
    /// `-F`: features to enable.
    pub features: Vec<String>,
    /// `--all-features`: every feature of the selected packages.
    pub all_features: bool,
    /// `--no-default-features`: leave the `default` feature off.
    pub no_default_features: bool,
    /// `--release`: build the tests in release mode.
    pub release: bool,
    /// `--cargo-profile`: build with this cargo profile instead.
    pub cargo_profile: Option<String>,
    /// Filtersets (`-E`), applied when listing; a shard runs only listed tests.
    pub filtersets: Vec<String>,
    /// Which ignored tests are selected to run; the rest are reported as skipped.
    pub run_ignored: RunIgnored,
    /// Passed to `cargo nextest run` in every shard, after cargo-shard's own flags.
    pub passthrough: Vec<String>,
    /// Test-name filters and libtest arguments (`NAME`, `--exact`, `--skip NAME`), applied
    /// when listing as `cargo nextest list -- …` applies them.
    pub list_filters: Vec<String>,
    /// The workspace's nextest profile to list with and run every shard under.
    pub profile: Option<String>,
    /// Where the archive goes; default `<target dir>/shard`.
    pub out_dir: Option<PathBuf>,
    /// Build jobs (`cargo nextest archive --build-jobs`).
    pub build_jobs: Option<usize>,
    /// Copy cargo's build output to our stderr as it arrives (it is always kept for errors).
    pub echo_build_output: bool,
    /// Doctests: counted and left out (the default), or run on this machine by the caller.
    pub doctests: doctests::DoctestMode,
}

/// Why a cargo workspace's tests cannot be built or listed.
#[derive(Debug, thiserror::Error)]
pub enum NextestError {
    /// `cargo metadata` failed; cargo's message on one line.
    #[error("cargo metadata failed: {0}")]
    Metadata(String),
    /// The output directory could not be created.
    #[error("cannot create {path}: {source}")]
    OutDir {
        /// The directory that could not be created.
        path: PathBuf,
        /// Why it failed, as the OS said it.
        source: std::io::Error,
    },
    /// cargo or cargo-nextest could not be started.
    #[error("cannot start `{program}` ({source}); is cargo-nextest installed?")]
    Spawn {
        /// The program that would not start.
        program: String,
        /// Why it failed, as the OS said it.
        source: std::io::Error,
    },
    /// `cargo nextest archive` or `list` exited non-zero.
    #[error("`{command}` failed ({status}): {tail}")]
    Failed {
        /// The command line that failed.
        command: String,
        /// Its exit status.
        status: String,
        /// The end of what it printed, where cargo puts the error.
        tail: String,
    },
    /// `cargo nextest list`'s JSON could not be parsed.
    #[error("cannot read `cargo nextest list` output: {0}")]
    ListOutput(String),
    /// `--profile` names no usable profile in the workspace's nextest config.
    #[error("--profile {name}: {why}")]
    Profile {
        /// The profile as given.
        name: String,
        /// Why it cannot be used.
        why: String,
    },
    /// The workspace's source tree could not be listed for upload.
    #[error("cannot list the source tree of {root}: {message}")]
    Source {
        /// The workspace root.
        root: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// The workspace's `cargo metadata` (no dependencies) as cargo sees it from the workspace
/// root, where the build runs: the target directory a `.cargo/config.toml` there sets is the
/// one the build fills. An error is cargo's message on one line.
pub(crate) fn workspace_metadata(manifest: Option<&Path>) -> Result<cargo_metadata::Metadata, String> {
    // Asked for by the pipeline (where the reports go) and by discovery: one `cargo metadata`
    // is enough for both (each costs 0.05-0.4 s), per manifest and directory.
    type Memo = Vec<((Option<PathBuf>, Option<PathBuf>), cargo_metadata::Metadata)>;
    static MEMO: std::sync::Mutex<Memo> = std::sync::Mutex::new(Vec::new());
    let key = (manifest.map(Path::to_path_buf), std::env::current_dir().ok());
    let memo = || MEMO.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, meta)) = memo().iter().find(|(k, _)| *k == key) {
        return Ok(meta.clone());
    }
    let meta = metadata_from_root(manifest)?;
    memo().push((key, meta.clone()));
    Ok(meta)
}

fn metadata_from_root(manifest: Option<&Path>) -> Result<cargo_metadata::Metadata, String> {
    let exec = |dir: Option<&Path>| {
        let mut meta = cargo_metadata::MetadataCommand::new();
        meta.no_deps();
        if let Some(path) = manifest {
            meta.manifest_path(path);
        }
        if let Some(dir) = dir {
            meta.current_dir(dir);
        }
        meta.exec().map_err(|e| one_line(&e.to_string()))
    };
    let meta = exec(None)?;
    let root = meta.workspace_root.as_std_path();
    let here = std::env::current_dir().and_then(|d| d.canonicalize()).ok();
    if here.as_deref() == root.canonicalize().ok().as_deref() {
        return Ok(meta);
    }
    exec(Some(root))
}

/// Builds the archive, lists its tests and returns the suite with its uploads and recipe.
/// `on_payload` hears the source tree before the build, then what the shards receive as soon
/// as the archive is built, before the tests are listed.
pub fn discover(opts: &NextestOptions, on_payload: super::OnPayload<'_>) -> Result<Suite, NextestError> {
    let meta = workspace_metadata(opts.manifest_path.as_deref()).map_err(NextestError::Metadata)?;
    let workspace_root = meta.workspace_root.clone().into_std_path_buf();
    let target_dir = meta.target_directory.clone().into_std_path_buf();

    let out_dir = opts.out_dir.clone().unwrap_or_else(|| target_dir.join("shard"));
    std::fs::create_dir_all(&out_dir).map_err(|source| NextestError::OutDir {
        path: out_dir.clone(),
        source,
    })?;
    let archive = out_dir.join(ARCHIVE_DEST);
    // Never the build: cargo's target directory wherever cargo metadata puts it (also under
    // CARGO_TARGET_DIR or `build.target-dir`), nor our output directory.
    let excluded = [target_dir, out_dir];
    let source_tree = || -> Result<Upload, NextestError> {
        let files =
            super::files::source_files(&workspace_root, &excluded).map_err(|e| NextestError::Source {
                root: workspace_root.clone(),
                message: e.to_string(),
            })?;
        Ok(Upload::Tree {
            src: workspace_root.clone(),
            files,
            dest: SOURCE_DEST.into(),
        })
    };
    // The workspace's nextest config, read once; with a profile it is read (and fails, if
    // broken) before anything is built, without one a broken file is nextest's to report.
    let repo_config = repo_config(&workspace_root);
    let own_priorities = repo_config.as_ref().is_ok_and(filter::sets_priorities);
    let earlier_report = repo_config
        .as_ref()
        .ok()
        .and_then(|c| reports::newest(c, &workspace_root, &excluded[0]));
    let profile = match &opts.profile {
        Some(name) => Some(UserProfile {
            name: name.to_owned(),
            repo_config: repo_config.map_err(|why| NextestError::Profile {
                name: name.to_owned(),
                why,
            })?,
        }),
        None => None,
    };
    let recipe: Arc<dyn super::ShardRecipe> = Arc::new(NextestRecipe {
        passthrough: opts.passthrough.clone(),
        own_priorities,
        profile,
    });
    let tools = shipped_nextest();
    let payload = |uploads: Vec<Upload>, placed_later: Vec<String>| super::Payload {
        uploads,
        tools: tools.clone(),
        writes_source: recipe.writes_source(),
        placed_later,
    };
    let target = excluded[0].display().to_string();
    // The doctest count is kept beside the build, not in the run's output directory, which
    // may be new each run.
    let kept = excluded[0].join("shard");
    // Counting the doctests compiles them (rustdoc merges an edition-2024 crate's doctests
    // into one binary even to list them), so it runs beside the build and listing instead of
    // after them: on rust-sample that hides 0.45 s of the 1.3 s before planning.
    let (notices, listed) = std::thread::scope(|scope| {
        let notices = scope.spawn(|| doctest_notices(&workspace_root, opts, &excluded, &kept));
        let listed = build_and_list(
            &workspace_root,
            &archive,
            opts,
            &payload,
            source_tree,
            &target,
            on_payload,
        );
        (notices.join().unwrap_or_default(), listed)
    });
    let (tests, uploads) = listed?;
    Ok(Suite {
        notices,
        tests,
        tools,
        uploads,
        recipe,
        earlier_report,
    })
}

/// The archive built and its tests listed, with what the shards receive; `on_payload` hears
/// the sources before the build and the whole payload before the listing.
fn build_and_list(
    workspace_root: &Path,
    archive: &Path,
    opts: &NextestOptions,
    payload: &dyn Fn(Vec<Upload>, Vec<String>) -> super::Payload,
    source_tree: impl Fn() -> Result<Upload, NextestError>,
    target: &str,
    on_payload: super::OnPayload<'_>,
) -> Result<(Vec<TestCase>, Vec<Upload>), NextestError> {
    // The sources as they are before the build, so that hosts can stage them while it runs;
    // the build's files will be placed at the target directory.
    on_payload(
        payload(vec![source_tree()?], vec![target.to_owned()]),
        super::Known::Sources,
    );
    // The listing runs while nextest packs the archive (0.2 s saved on rust-sample), but only
    // once cargo is done building: two cargo builds at once would wait on each other's lock,
    // and the build's output is the archive's to show. nextest says "Archiving" when it starts
    // packing; one that never says so is listed after the archive, as before.
    let (built, packing) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        let archived = scope.spawn(move || {
            build_archive(workspace_root, archive, opts, |line| {
                if line.trim_start().starts_with("Archiving") {
                    let _ = built.send(());
                }
            })
        });
        let early = packing.recv().is_ok();
        let listed = early.then(|| scope.spawn(|| list_built(workspace_root, opts)));
        archived.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
        // Listed again: what the shards get is the tree as the build left it.
        let uploads = vec![
            Upload::File {
                src: archive.to_path_buf(),
                dest: ARCHIVE_DEST.into(),
                mode: 0o644,
            },
            source_tree()?,
        ];
        on_payload(payload(uploads.clone(), Vec::new()), super::Known::BeforeListing);
        let summary = match listed {
            Some(listing) => listing.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?,
            None => list_built(workspace_root, opts)?,
        };
        Ok((test_cases(&summary, opts.run_ignored), uploads))
    })
}

/// `cargo nextest archive`: the one build of the selected tests; `on_line` hears nextest's
/// stderr as it comes.
fn build_archive(
    workspace_root: &Path,
    archive: &Path,
    opts: &NextestOptions,
    on_line: impl FnMut(&str) + Send,
) -> Result<(), NextestError> {
    let mut build = cargo_nextest(workspace_root, "archive");
    build.arg("--archive-file").arg(archive);
    // The archive never leaves this machine (staging unpacks it here, and the hosts' shards
    // start only after): compressing it only costs time. zstd's fastest level packs and
    // unpacks rust-sample's 73 MB in 0.14 s and 0.05 s, against 0.23 s and 0.07 s at level 1
    // (BENCHMARKS.md, "The archive packed fastest").
    build.arg("--zstd-level=-7");
    build_args(&mut build, opts);
    process::run_watching(build, opts.echo_build_output, on_line)?;
    Ok(())
}

/// `cargo nextest list` of what the archive was just built from, narrowed as `cargo nextest
/// run` would narrow it. The same selection finds the same binaries in the target directory
/// (cargo has nothing left to build); listing the archive instead would unpack all of it
/// once more, while the head start reads it to stage.
fn list_built(workspace_root: &Path, opts: &NextestOptions) -> Result<TestListSummary, NextestError> {
    let mut list = cargo_nextest(workspace_root, "list");
    // nextest starts each binary it lists through a copy of itself, which only matters for
    // a test at a terminal (Ctrl-Z); listing without it takes about half the time, on the
    // CPUs the archive is packed and staged with.
    list.env("NEXTEST_DOUBLE_SPAWN", "0");
    build_args(&mut list, opts);
    list.args(["--message-format", "json", "--run-ignored", "all"]);
    for expr in &opts.filtersets {
        list.arg("-E").arg(expr);
    }
    // The profile's default-filter narrows the listing as it narrows `cargo nextest run`.
    if let Some(profile) = &opts.profile {
        list.arg("--profile").arg(profile);
    }
    if !opts.list_filters.is_empty() {
        list.arg("--").args(&opts.list_filters);
    }
    let listing = run(list, false)?;
    serde_json::from_slice(&listing).map_err(|e| NextestError::ListOutput(e.to_string()))
}

/// The "doctests are left out" notice, unless `--doctests` chose what to do with them; the
/// count is kept in `kept` for the next run of the same sources (`excluded` from them).
fn doctest_notices(
    workspace_root: &Path,
    opts: &NextestOptions,
    excluded: &[PathBuf],
    kept: &Path,
) -> Vec<String> {
    match opts.doctests {
        doctests::DoctestMode::Warn => {
            let sources = || super::files::source_files(workspace_root, excluded).ok();
            doctests::count_cached(workspace_root, opts, sources, &kept.join(DOCTEST_COUNT))
                .and_then(doctests::notice)
                .into_iter()
                .collect()
        }
        doctests::DoctestMode::Skip | doctests::DoctestMode::Local => Vec::new(),
    }
}

/// The last doctest count and what it was made of, under the cargo target directory.
const DOCTEST_COUNT: &str = "doctest-count.json";

/// The binary `cargo nextest` just ran here: shipped to images that have none.
fn shipped_nextest() -> Vec<Tool> {
    on_path(NEXTEST_BIN)
        .map(|local| Tool {
            name: NEXTEST_BIN.into(),
            local,
        })
        .into_iter()
        .collect()
}

/// The listed tests (from a listing with `--run-ignored all`) as `run_ignored` selects them.
///
/// Listing everything tells apart tests that are only ignored from those the filtersets
/// exclude (nextest reports an ignored test as "ignored" even when `-E` excludes it too).
/// With the default, `#[ignore]` tests are kept as ignored (reported as skipped); with
/// `only`, tests that are not `#[ignore]` are dropped, as nextest leaves them out.
pub fn test_cases(summary: &TestListSummary, run_ignored: RunIgnored) -> Vec<TestCase> {
    let mut tests = Vec::new();
    for (binary_id, suite) in &summary.rust_suites {
        for (name, case) in &suite.test_cases {
            if !matches!(case.filter_match, FilterMatch::Matches) {
                continue;
            }
            let ignored = match (run_ignored, case.ignored) {
                (RunIgnored::Default, ignored) => ignored,
                (RunIgnored::Only, false) => continue,
                (RunIgnored::Only, true) | (RunIgnored::All, _) => false,
            };
            tests.push(TestCase {
                id: TestId::new(binary_id.as_str(), name.as_str()),
                ignored,
            });
        }
    }
    tests
}

/// The workspace's nextest config, parsed (empty when there is none: the listing with
/// `--profile` has already checked that nextest knows the profile, and a built-in profile
/// may have no table of its own); the error names the file.
fn repo_config(workspace_root: &Path) -> Result<toml::Table, String> {
    let path = workspace_root.join(".config/nextest.toml");
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .parse::<toml::Table>()
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(toml::Table::new()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// The executable named `name` on this machine's PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn cargo_nextest(workspace_root: &Path, subcommand: &str) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root)
        .args(["nextest", subcommand, "--color", "never"]);
    // Settings of an outer nextest (cargo-shard run from a nextest-run test or CI job, e.g.
    // NEXTEST_PROFILE=ci) belong to that run, not to the workspace we build.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("NEXTEST_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// What a `cargo nextest` command that builds is given: the selection and the build jobs.
/// The archive and the listing take the same, so that the listing finds the archive's build.
fn build_args(cmd: &mut Command, opts: &NextestOptions) {
    selection_args(cmd, opts, "--cargo-profile");
    if let Some(jobs) = opts.build_jobs {
        cmd.arg("--build-jobs").arg(jobs.to_string());
    }
}

/// The package and feature selection, as cargo takes it; `profile_flag` is cargo's
/// `--profile` or nextest's `--cargo-profile`.
fn selection_args(cmd: &mut Command, opts: &NextestOptions, profile_flag: &str) {
    if let Some(path) = &opts.manifest_path {
        cmd.arg("--manifest-path").arg(path);
    }
    for p in &opts.packages {
        cmd.arg("--package").arg(p);
    }
    if opts.workspace {
        cmd.arg("--workspace");
    }
    for f in &opts.features {
        cmd.arg("--features").arg(f);
    }
    if opts.all_features {
        cmd.arg("--all-features");
    }
    if opts.no_default_features {
        cmd.arg("--no-default-features");
    }
    if opts.release {
        cmd.arg("--release");
    }
    if let Some(profile) = &opts.cargo_profile {
        cmd.arg(profile_flag).arg(profile);
    }
}
