//! `go test` discovery: build every package's test binary once (`go test -c`), list its tests
//! (`-test.list`, plus gocheck's `-check.list` through the suite hook), and run a shard's
//! share through the fixed [`driver`] script, one binary per package.
//!
//! Results come from `-test.v` text (see [`parse`]): Go 1.19 binaries cannot emit
//! `-test.v=test2json`, and `go tool test2json` is not in minimal images.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rayon::prelude::*;

use crate::discover::gocheck;
use crate::discover::{Suite, TestCase};
use crate::shard::Upload;
use crate::test_result::TestId;

pub mod driver;
pub mod parse;
pub mod recipe;
pub mod tree;

use driver::anchored_alternation;
pub use recipe::GoRecipe;
use recipe::PackageRun;
pub(crate) use recipe::outcomes_to_results;

/// What to build and list. The CLI fills it from `cargo shard go` arguments.
#[derive(Debug, Clone)]
pub struct GoOptions {
    /// Module directory (or, in GOPATH mode, the directory to run `go list` in). Its files
    /// are uploaded as each shard's `src/`, where the tests run.
    pub dir: PathBuf,
    /// Package patterns; empty means `./...`.
    pub packages: Vec<String>,
    /// Build with cgo; off by default so test binaries are static and run in any image.
    pub cgo: bool,
    /// GOPATH mode (`GO111MODULE=off`) with this GOPATH, e.g. `dir:/usr/share/gocode`.
    pub gopath: Option<String>,
    /// Flags for every test binary, before ours (`-test.count=1`, `-check.vv`…).
    pub passthrough: Vec<String>,
    /// Build flags for `go list` and `go test -c` (`-tags x`, `-race`).
    pub build_flags: Vec<String>,
    /// Builds and listings at once.
    pub jobs: usize,
    /// Where the test binaries go (`<out_dir>/bin/*.test`); left out of the upload.
    pub out_dir: PathBuf,
}

impl GoOptions {
    /// Options for the module in `dir` with defaults (`./...`, no cgo, one build per CPU); binaries
    /// go under `out_dir`.
    pub fn new(dir: impl Into<PathBuf>, out_dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            packages: Vec::new(),
            cgo: false,
            gopath: None,
            passthrough: Vec::new(),
            build_flags: Vec::new(),
            jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
            out_dir: out_dir.into(),
        }
    }
}

/// Why a Go suite cannot be built or listed; each names the package or directory at fault.
#[derive(Debug, thiserror::Error)]
pub enum GoError {
    /// The `go` command could not be started.
    #[error("cannot run `go` ({0}): install the Go toolchain or put it on PATH")]
    NoGo(String),
    /// `go list` rejected the package patterns.
    #[error("`go list {patterns}` failed in {dir}: {stderr}")]
    List {
        /// The patterns as given.
        patterns: String,
        /// The module directory it ran in.
        dir: String,
        /// What `go list` wrote to stderr.
        stderr: String,
    },
    /// `go test -c` failed for one package.
    #[error("building the test binary of {package} failed: {stderr}")]
    Build {
        /// The package's import path.
        package: String,
        /// The compiler's output.
        stderr: String,
    },
    /// A built test binary could not list its tests (`-test.list`, `-check.list`).
    #[error("listing the tests of {package} with {binary} failed ({status}): {output}")]
    ListTests {
        /// The package's import path.
        package: String,
        /// The test binary that was run.
        binary: String,
        /// Its exit status.
        status: String,
        /// What it printed.
        output: String,
    },
    /// A file could not be read or written while building or listing.
    #[error("{path}: {source}")]
    Io {
        /// The path that failed.
        path: String,
        /// Why it failed, as the OS said it.
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> GoError + '_ {
    move |source| GoError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Lists, builds and lists again: the [`Suite`] of every top-level test, example and fuzz
/// seed corpus `go test` would run (benchmarks are not run by `go test`), and every gocheck
/// suite method as `Suite.TestX` under its package's import path.
pub fn discover(opts: &GoOptions) -> Result<Suite, GoError> {
    discover_telling(opts, &mut |_, _| {})
}

/// [`discover`], telling `on_payload` the listed packages' sources before the test binaries
/// are built (hosts can stage them meanwhile); the whole payload is the suite's, once listed.
pub fn discover_telling(opts: &GoOptions, on_payload: super::OnPayload<'_>) -> Result<Suite, GoError> {
    let dir = opts.dir.canonicalize().map_err(io_err(&opts.dir))?;
    let env = go_env(opts);
    let mut version = Command::new("go");
    version.args(["env", "GOVERSION"]).envs(env.iter().cloned());
    crate::interrupt::output(&mut version).map_err(|e| GoError::NoGo(e.to_string()))?;

    let packages = go_list(opts, &dir, &env)?;
    // Every listed package has test files; one whose tests turn out to be only benchmarks
    // is left out of the shipped tree later, and only then does this early part go unused.
    let early = shipped_files(&dir, &opts.out_dir, packages.iter())?;
    on_payload(
        super::Payload {
            uploads: vec![Upload::Tree {
                src: dir.clone(),
                files: early,
                dest: "src".into(),
            }],
            tools: Vec::new(),
            writes_source: false,
            placed_later: Vec::new(),
        },
        super::Known::Sources,
    );
    let bin_dir = opts.out_dir.join("bin");
    std::fs::create_dir_all(&bin_dir).map_err(io_err(&bin_dir))?;
    // `go test -c -o` resolves a relative path against the module directory, not ours.
    let bin_dir = bin_dir.canonicalize().map_err(io_err(&bin_dir))?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.max(1))
        .build()
        .map_err(|e| GoError::NoGo(format!("cannot start build threads: {e}")))?;
    let listed: Vec<Result<Listed, GoError>> = pool.install(|| {
        packages
            .par_iter()
            .map(|p| build_and_list(p, &dir, &bin_dir, &env, &opts.build_flags))
            .collect()
    });

    let mut tests = Vec::new();
    let mut uploads = Vec::new();
    let mut runs = BTreeMap::new();
    for (pkg, listed) in packages.iter().zip(listed) {
        let listed = listed?;
        for w in &listed.warnings {
            eprintln!("warning: {w}");
        }
        if listed.plain.is_empty() && listed.check.is_empty() {
            // Only benchmarks: nothing `go test` would run, so nothing to ship.
            continue;
        }
        for name in listed.plain.iter().chain(&listed.check) {
            tests.push(TestCase {
                id: TestId::new(&pkg.import_path, name),
                ignored: false,
            });
        }
        uploads.push(Upload::File {
            src: listed.binary,
            dest: format!("bin/{}.test", pkg.stem),
            mode: 0o755,
        });
        runs.insert(
            pkg.import_path.clone(),
            PackageRun {
                stem: pkg.stem.clone(),
                rel_dir: pkg.rel_dir.clone(),
                hook: listed.hook,
                check_tests: listed.check.into_iter().collect(),
            },
        );
    }
    let shipped = packages.iter().filter(|p| runs.contains_key(&p.import_path));
    let files = shipped_files(&dir, &opts.out_dir, shipped)?;
    uploads.push(Upload::Tree {
        src: dir.clone(),
        files,
        dest: "src".into(),
    });
    let recipe = GoRecipe {
        packages: runs,
        passthrough: opts.passthrough.clone(),
    };
    Ok(Suite {
        notices: Vec::new(),
        earlier_report: None,
        tools: Vec::new(),
        tests,
        uploads,
        recipe: Arc::new(recipe),
    })
}

/// The source files `packages` need (see [`tree`]), not the whole tree.
fn shipped_files<'a>(
    dir: &Path,
    out_dir: &Path,
    packages: impl Iterator<Item = &'a GoPackage>,
) -> Result<Vec<PathBuf>, GoError> {
    let all = crate::discover::files::source_files(dir, &[out_dir.to_path_buf()]).map_err(io_err(dir))?;
    let mut selected = Vec::new();
    for pkg in packages {
        let mut test_sources = Vec::new();
        for file in &pkg.test_files {
            test_sources.push(std::fs::read_to_string(file).map_err(io_err(file))?);
        }
        selected.push(tree::Selected {
            rel_dir: Path::new(&pkg.rel_dir),
            test_sources,
        });
    }
    Ok(tree::package_files(all, &selected))
}

fn go_env(opts: &GoOptions) -> Vec<(String, String)> {
    let mut env = vec![(
        "CGO_ENABLED".to_string(),
        if opts.cgo { "1" } else { "0" }.to_string(),
    )];
    if let Some(gopath) = &opts.gopath {
        env.push(("GO111MODULE".into(), "off".into()));
        env.push(("GOPATH".into(), gopath.clone()));
    }
    env
}

/// A package with test files, as `go list` describes it.
#[derive(Debug, Clone)]
struct GoPackage {
    import_path: String,
    dir: PathBuf,
    /// Its directory relative to the uploaded tree ("" for the root).
    rel_dir: String,
    test_files: Vec<PathBuf>,
    uses_gocheck: bool,
    /// File-name-safe and unique: the binary is `bin/<stem>.test`.
    stem: String,
}

fn go_list(opts: &GoOptions, dir: &Path, env: &[(String, String)]) -> Result<Vec<GoPackage>, GoError> {
    let patterns = if opts.packages.is_empty() {
        vec!["./...".to_string()]
    } else {
        opts.packages.clone()
    };
    let format = "{{.ImportPath}}\t{{.Dir}}\t{{join .TestGoFiles \",\"}}\t{{join .XTestGoFiles \",\"}}\t\
                  {{join .TestImports \" \"}} {{join .XTestImports \" \"}}";
    let out = crate::interrupt::output(
        Command::new("go")
            .arg("list")
            .args(&opts.build_flags)
            .arg("-f")
            .arg(format)
            .args(&patterns)
            .current_dir(dir)
            .envs(env.iter().cloned()),
    )
    .map_err(|e| GoError::NoGo(e.to_string()))?;
    let list_err = |stderr: String| GoError::List {
        patterns: patterns.join(" "),
        dir: dir.display().to_string(),
        stderr,
    };
    if !out.status.success() {
        let mut msg = one_line(&String::from_utf8_lossy(&out.stderr));
        if opts.gopath.is_none()
            && let Some(hint) = gopath_hint(dir, std::env::var_os("GOPATH").as_deref())
        {
            msg.push_str(&format!(" (hint: {hint})"));
        }
        return Err(list_err(msg));
    }
    let mut packages = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let [import_path, pkg_dir, tests, xtests, imports] = fields[..] else {
            return Err(list_err(format!("unexpected line {line:?}")));
        };
        let pkg_dir = PathBuf::from(pkg_dir);
        let test_files: Vec<PathBuf> = tests
            .split(',')
            .chain(xtests.split(','))
            .filter(|f| !f.is_empty())
            .map(|f| pkg_dir.join(f))
            .collect();
        if test_files.is_empty() {
            continue;
        }
        let rel_dir = pkg_dir
            .strip_prefix(dir)
            .map_err(|_| {
                list_err(format!(
                    "package {import_path} is in {}, outside {}: run from there or give `--dir {}`",
                    pkg_dir.display(),
                    dir.display(),
                    pkg_dir.display()
                ))
            })?
            .to_string_lossy()
            .into_owned();
        let uses_gocheck = imports.split(' ').any(|i| gocheck::GOCHECK_IMPORTS.contains(&i));
        packages.push(GoPackage {
            stem: stem(import_path),
            import_path: import_path.to_string(),
            dir: pkg_dir,
            rel_dir,
            test_files,
            uses_gocheck,
        });
    }
    Ok(packages)
}

/// Why `go list` may have failed in `dir` in module mode: the tree has no `go.mod` above it,
/// or it lies under a GOPATH's `src` (`gopath` is `$GOPATH`; unset means `~/go`).
fn gopath_hint(dir: &Path, gopath: Option<&std::ffi::OsStr>) -> Option<String> {
    let default = std::env::var_os("HOME").map(|h| PathBuf::from(h).join("go"));
    let roots: Vec<PathBuf> = match gopath {
        Some(g) if !g.is_empty() => std::env::split_paths(g).collect(),
        _ => default.into_iter().collect(),
    };
    let advice = |gopath: &str| {
        format!(
            "give `--gopath {gopath}:/usr/share/gocode` (or set GO111MODULE=off and GOPATH) to build in GOPATH mode"
        )
    };
    if let Some(root) = roots.iter().find(|r| dir.starts_with(r.join("src"))) {
        return Some(format!(
            "{} lies under GOPATH {}: {}",
            dir.display(),
            root.display(),
            advice(&root.display().to_string())
        ));
    }
    if dir.ancestors().any(|d| d.join("go.mod").is_file()) {
        return None;
    }
    // A GOPATH tree is the directory above `src`, if the path has one.
    let guess = dir
        .ancestors()
        .find(|d| d.file_name().is_some_and(|n| n == "src"))
        .and_then(Path::parent)
        .map_or_else(|| "DIR".to_string(), |p| p.display().to_string());
    Some(format!("{} has no go.mod: {}", dir.display(), advice(&guess)))
}

/// A readable, unique file stem for an import path: path characters kept where safe, plus
/// a hash of the whole path so `a/b_c` and `a_b/c` do not collide.
pub(crate) fn stem(import_path: &str) -> String {
    let safe: String = import_path
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let hash = crate::hash::fnv1a(&[import_path.as_bytes()]);
    format!("{safe}-{:08x}", hash as u32)
}

/// One package after building and listing.
struct Listed {
    binary: PathBuf,
    plain: Vec<String>,
    hook: Option<String>,
    check: Vec<String>,
    /// Listings that exited non-zero after printing names, one line each.
    warnings: Vec<String>,
}

fn build_and_list(
    pkg: &GoPackage,
    dir: &Path,
    bin_dir: &Path,
    env: &[(String, String)],
    build: &[String],
) -> Result<Listed, GoError> {
    let binary = bin_dir.join(format!("{}.test", pkg.stem));
    let out = crate::interrupt::output(
        Command::new("go")
            .args(["test", "-c"])
            .args(build)
            .arg("-o")
            .arg(&binary)
            .arg(&pkg.import_path)
            .current_dir(dir)
            .envs(env.iter().cloned()),
    )
    .map_err(|e| GoError::NoGo(e.to_string()))?;
    if !out.status.success() || !binary.exists() {
        return Err(GoError::Build {
            package: pkg.import_path.clone(),
            stderr: one_line(&String::from_utf8_lossy(&out.stderr)),
        });
    }
    let mut warnings = Vec::new();
    let listing = run_listing(pkg, &binary, &["-test.list", "."])?;
    let mut plain: Vec<String> = listing
        .text
        .lines()
        .map(str::trim)
        .filter(|l| is_runnable_test(l))
        .map(String::from)
        .collect();
    warnings.extend(listing.accept(pkg, !plain.is_empty())?);
    let mut hook = None;
    let mut check = Vec::new();
    if pkg.uses_gocheck {
        let sources: Vec<&Path> = pkg.test_files.iter().map(PathBuf::as_path).collect();
        let mut candidates = gocheck::find_hooks(&sources);
        if candidates.is_empty() {
            candidates.push("Test".to_string());
        }
        for candidate in candidates.into_iter().filter(|c| plain.contains(c)) {
            let run = anchored_alternation(&[candidate.as_str()]);
            // A match-all `-check.f`: some hooks (gocheck's own) exit non-zero after listing
            // when no filter was given, because they then expect every suite to have run.
            let listing = run_listing(pkg, &binary, &["-test.run", &run, "-check.list", "-check.f", "."])?;
            let names = gocheck::parse_list(&listing.text);
            warnings.extend(listing.accept(pkg, !names.is_empty())?);
            if !names.is_empty() {
                // Every hook runs every registered suite: the first one that lists them is enough.
                plain.retain(|p| *p != candidate);
                check = names;
                hook = Some(candidate);
                break;
            }
        }
    }
    Ok(Listed {
        binary,
        plain,
        hook,
        check,
        warnings,
    })
}

/// What a listing run printed, and how it failed if it did.
struct Listing {
    text: String,
    failure: Option<GoError>,
}

impl Listing {
    /// A listing that exited non-zero still counts when names were read from it: a warning
    /// naming the package, not a failed run. Without names it is the error.
    fn accept(self, pkg: &GoPackage, parsed_names: bool) -> Result<Option<String>, GoError> {
        match self.failure {
            None => Ok(None),
            Some(e) if parsed_names => Ok(Some(format!(
                "{e}; using the {} names it printed",
                pkg.import_path
            ))),
            Some(e) => Err(e),
        }
    }
}

fn run_listing(pkg: &GoPackage, binary: &Path, args: &[&str]) -> Result<Listing, GoError> {
    let out =
        crate::interrupt::output(Command::new(binary).args(args).current_dir(&pkg.dir)).map_err(|e| {
            GoError::ListTests {
                package: pkg.import_path.clone(),
                binary: binary.display().to_string(),
                status: "did not start".into(),
                output: e.to_string(),
            }
        })?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let failure = (!out.status.success()).then(|| {
        let mut all = text.clone();
        all.push_str(&String::from_utf8_lossy(&out.stderr));
        GoError::ListTests {
            package: pkg.import_path.clone(),
            binary: binary.display().to_string(),
            status: out.status.to_string(),
            output: one_line(&all),
        }
    });
    Ok(Listing { text, failure })
}

/// `Test…`, `Example…` and `Fuzz…` (its seed corpus runs as a test) from `-test.list`;
/// benchmarks do not run under `go test`, and other lines are `TestMain` chatter.
fn is_runnable_test(line: &str) -> bool {
    let ident = !line.is_empty() && line.chars().all(|c| c.is_alphanumeric() || c == '_');
    ident && ["Test", "Example", "Fuzz"].iter().any(|p| line.starts_with(p))
}

/// The last lines of a tool's error output, joined into one line for the error message.
fn one_line(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let tail = &lines[lines.len().saturating_sub(8)..];
    let mut joined = tail.join(" | ");
    if joined.len() > 2000 {
        let cut = (0..=2000)
            .rev()
            .find(|&i| joined.is_char_boundary(i))
            .unwrap_or(0);
        joined.truncate(cut);
        joined.push('…');
    }
    if joined.is_empty() {
        "no output".into()
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gopath_trees_get_a_hint() {
        let tmp = tempfile::tempdir().unwrap();
        let gopath = tmp.path().join("gp");
        let pkg = gopath.join("src/example.com/x");
        std::fs::create_dir_all(&pkg).unwrap();
        let hint = gopath_hint(&pkg, Some(gopath.as_os_str())).unwrap();
        assert!(
            hint.contains("lies under GOPATH") && hint.contains("--gopath"),
            "{hint}"
        );
        let hint = gopath_hint(&pkg, Some(std::ffi::OsStr::new("/nowhere"))).unwrap();
        assert!(
            hint.contains("has no go.mod") && hint.contains(&format!("--gopath {}:", gopath.display())),
            "{hint}"
        );
        let module = tmp.path().join("mod");
        std::fs::create_dir_all(module.join("sub")).unwrap();
        std::fs::write(module.join("go.mod"), "module m\n").unwrap();
        assert_eq!(
            gopath_hint(&module.join("sub"), Some(std::ffi::OsStr::new("/nowhere"))),
            None
        );
    }

    #[test]
    fn stems_are_safe_and_distinct() {
        assert!(stem("ex.com/a/b_c").starts_with("ex.com_a_b_c-"));
        assert_ne!(stem("a/b_c"), stem("a_b/c"));
    }

    #[test]
    fn runnable_listing_lines() {
        assert!(is_runnable_test("TestFoo"));
        assert!(is_runnable_test("ExampleLines_noOutput"));
        assert!(is_runnable_test("FuzzLines"));
        assert!(!is_runnable_test("BenchmarkLines"));
        assert!(!is_runnable_test("alpha: TestMain done"));
        assert!(!is_runnable_test("ok  \texample.com/x\t0.1s"));
    }
}
