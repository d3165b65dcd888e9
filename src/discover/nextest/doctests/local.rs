//! `--doctests local`: the selected crates' doctests run with `cargo test --doc` on the build
//! machine while the shards run, one crate at a time (`-p PKG`, the same features and
//! profile), their results merged into the run's report.
//!
//! A doctest's status comes from libtest's `--logfile`, which the harness writes one line per
//! finished test (`ok NAME`, `failed NAME`, `ignored NAME`) and which a doctest's output never
//! reaches: its stdout and stderr are captured by the harness. libtest's JSON output would
//! need `-Z unstable-options`, i.e. `RUSTC_BOOTSTRAP=1` on stable, which also reaches every
//! build script and rustc of the build and changes what is built (crates probe for nightly
//! features), so it is not used. The log is a FIFO we read from: rustdoc runs the merged
//! (edition 2024) doctests and the standalone ones as two harnesses that both open the path
//! with truncation, and a regular file would keep only the second's lines. The human output
//! (a log file) gives only the failure text.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::super::NextestOptions;
use crate::test_result::{TestId, TestResult, TestStatus};

/// The host name doctest results carry in the reports.
pub const HOST: &str = "build machine";

/// Why the doctests cannot be listed for a local run.
#[derive(Debug, thiserror::Error)]
pub enum DoctestError {
    /// `cargo metadata` failed; cargo's message on one line.
    #[error("--doctests local: cargo metadata failed: {0}")]
    Metadata(String),
    /// `cargo test --doc -- --list` failed; why, on one line.
    #[error("--doctests local: `cargo test --doc -- --list` failed ({0})")]
    List(String),
}

/// The doctests to run, by package, and how to build them.
#[derive(Debug, Clone)]
pub struct LocalDoctests {
    workspace_root: PathBuf,
    opts: NextestOptions,
    /// (package name, crate name, doctest names), in listing order.
    crates: Vec<(String, String, Vec<String>)>,
}

impl LocalDoctests {
    /// Lists the selection's doctests (building its libraries as `cargo test --doc` does).
    pub fn list(opts: &NextestOptions) -> Result<Self, DoctestError> {
        let meta = crate::discover::nextest::workspace_metadata(opts.manifest_path.as_deref())
            .map_err(DoctestError::Metadata)?;
        let workspace_root = meta.workspace_root.clone().into_std_path_buf();
        // cargo names a crate's doctests by its library's crate name: back to the package.
        let package_of: BTreeMap<String, String> = meta
            .workspace_packages()
            .iter()
            .flat_map(|p| {
                p.targets
                    .iter()
                    .filter(|t| t.doctest)
                    .map(|t| (t.name.replace('-', "_"), p.name.to_string()))
            })
            .collect();
        let text = super::listing(&workspace_root, opts).map_err(DoctestError::List)?;
        let crates = super::crates_listed(&text)
            .into_iter()
            .map(|(krate, names)| {
                let package = package_of.get(&krate).cloned().unwrap_or_else(|| krate.clone());
                (package, krate, names)
            })
            .collect();
        Ok(Self {
            workspace_root,
            opts: opts.clone(),
            crates,
        })
    }

    /// How many doctests were listed, for the summary and the plan line.
    pub fn count(&self) -> usize {
        self.crates.iter().map(|(_, _, n)| n.len()).sum()
    }

    /// Runs every crate's doctests in turn; each listed doctest gets one result. Output goes
    /// to `logs/doctests-CRATE.log`; `cancel` stops the run (what did not run is skipped).
    pub fn run(&self, logs: &Path, cancel: &CancellationToken) -> Vec<TestResult> {
        let mut results = Vec::new();
        for (package, krate, names) in &self.crates {
            let log = logs.join(format!("doctests-{krate}.log"));
            let group = group(package);
            let ran = if cancel.is_cancelled() {
                Err(RunError::Cancelled)
            } else {
                self.run_crate(package, &log, cancel)
            };
            results.extend(judge(&group, names, ran, &log));
        }
        results
    }

    fn run_crate(&self, package: &str, log: &Path, cancel: &CancellationToken) -> Result<Ran, RunError> {
        let fifo = LogFifo::open().map_err(|e| RunError::Setup(format!("results pipe: {e}")))?;
        let out =
            std::fs::File::create(log).map_err(|e| RunError::Setup(format!("{}: {e}", log.display())))?;
        let err = out.try_clone().map_err(|e| RunError::Setup(e.to_string()))?;
        let mut cmd = self.command(package);
        cmd.arg("--logfile")
            .arg(&fifo.path)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = crate::interrupt::spawn(&mut cmd).map_err(|e| RunError::Setup(format!("cargo: {e}")));
        let status = child.and_then(|mut child| {
            let status = wait(&mut child, cancel);
            // Whatever the doctests left running in the group goes with it.
            kill_group(child.id() as i32);
            crate::interrupt::release(&child);
            status
        });
        let results = fifo.finish();
        let exit = status?;
        Ok(Ran {
            exit,
            results: String::from_utf8_lossy(&results).into_owned(),
        })
    }

    /// `cargo test --doc -p PACKAGE` with the run's features and profile; libtest's options
    /// follow.
    fn command(&self, package: &str) -> Command {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(&self.workspace_root).args([
            "test",
            "--doc",
            "--color",
            "never",
            "--package",
            package,
        ]);
        let one = NextestOptions {
            packages: Vec::new(),
            workspace: false,
            ..self.opts.clone()
        };
        super::super::selection_args(&mut cmd, &one, "--profile");
        cmd.arg("--");
        cmd
    }
}

/// The JUnit suite (and `TestId` group) of a package's doctests; parentheses cannot appear
/// in a nextest binary id, so it never names a test binary.
pub fn group(package: &str) -> String {
    format!("{package} (doctests)")
}

/// What one crate's `cargo test --doc` left: its exit code and libtest's result lines.
struct Ran {
    exit: Option<i32>,
    results: String,
}

enum RunError {
    Setup(String),
    Cancelled,
}

/// Waits for `child`, polling so that a cancelled run stops it.
fn wait(child: &mut std::process::Child, cancel: &CancellationToken) -> Result<Option<i32>, RunError> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status.code()),
            Ok(None) if cancel.is_cancelled() => {
                kill_group(child.id() as i32);
                let _ = child.wait();
                return Err(RunError::Cancelled);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(RunError::Setup(format!("wait for cargo: {e}"))),
        }
    }
}

fn kill_group(pgid: i32) {
    // SAFETY: kill(2) with a negative pid signals that process group; no memory is involved.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// One result per listed doctest of a crate from what its run left.
fn judge(group: &str, names: &[String], ran: Result<Ran, RunError>, log: &Path) -> Vec<TestResult> {
    let output = std::fs::read_to_string(log).unwrap_or_default();
    let ran = match ran {
        Ok(r) => r,
        Err(e) => {
            let (status, message) = match e {
                RunError::Cancelled => (
                    TestStatus::Skipped,
                    "not run: the run was interrupted".to_string(),
                ),
                RunError::Setup(why) => (TestStatus::Error, format!("cargo test --doc did not run: {why}")),
            };
            return names
                .iter()
                .map(|n| result(group, n, status, Some(message.clone()), String::new()))
                .collect();
        }
    };
    let statuses = parse_log(&ran.results, names);
    let failures = failure_sections(&output);
    let exit = ran.exit.map_or("a signal".to_string(), |c| format!("exit {c}"));
    names
        .iter()
        .map(|n| match statuses.get(n.as_str()) {
            Some(TestStatus::Failed) => {
                let detail = failures.get(n.as_str()).cloned().unwrap_or_default();
                let message = failure_message(&detail);
                result(group, n, TestStatus::Failed, Some(message), detail)
            }
            Some(&status) => result(group, n, status, None, String::new()),
            None => result(
                group,
                n,
                TestStatus::Error,
                Some(format!(
                    "cargo test --doc ({exit}) gave no result for it: {}",
                    super::last_lines(&output, 3)
                )),
                String::new(),
            ),
        })
        .collect()
}

fn result(
    group: &str,
    name: &str,
    status: TestStatus,
    message: Option<String>,
    detail: String,
) -> TestResult {
    TestResult {
        id: TestId::new(group, name),
        status,
        // libtest's log gives no time per test on stable.
        duration: Duration::ZERO,
        message,
        detail,
        stdout: String::new(),
        stderr: String::new(),
        subtests: Vec::new(),
    }
}

/// libtest's log lines (`ok NAME`, `failed NAME`, `failed: MSG NAME`, `ignored NAME`,
/// `ignored: MSG NAME`) → listed name → status. A failure outweighs any other line for the
/// same name, so no line can turn a failure into a pass.
fn parse_log<'a>(text: &str, names: &'a [String]) -> BTreeMap<&'a str, TestStatus> {
    let mut out: BTreeMap<&str, TestStatus> = BTreeMap::new();
    for line in text.lines() {
        let status = if line.starts_with("ok ") {
            TestStatus::Passed
        } else if line.starts_with("failed") {
            TestStatus::Failed
        } else if line.starts_with("ignored") {
            TestStatus::Skipped
        } else {
            continue;
        };
        // The longest listed name the line ends with (names may end alike).
        let Some(name) = names
            .iter()
            .filter(|n| {
                line.strip_suffix(n.as_str())
                    .is_some_and(|head| head.ends_with(' '))
            })
            .max_by_key(|n| n.len())
        else {
            continue;
        };
        let slot = out.entry(name.as_str()).or_insert(status);
        if status == TestStatus::Failed {
            *slot = status;
        }
    }
    out
}

/// The `---- NAME stdout ----` blocks of libtest's failure report, by name: what the failed
/// doctest printed, its panic with `left`/`right` included.
fn failure_sections(output: &str) -> BTreeMap<&str, String> {
    let mut out: BTreeMap<&str, String> = BTreeMap::new();
    let mut current: Option<&str> = None;
    for line in output.lines() {
        if let Some(name) = line
            .strip_prefix("---- ")
            .and_then(|l| l.strip_suffix(" stdout ----"))
        {
            current = Some(name);
            out.insert(name, String::new());
        } else if line == "failures:" {
            current = None;
        } else if let Some(name) = current
            && let Some(text) = out.get_mut(name)
        {
            text.push_str(line);
            text.push('\n');
        }
    }
    for text in out.values_mut() {
        *text = text.trim().to_string();
    }
    out
}

/// A failure's one line: the panic's message (a doctest panics at a line of a temporary
/// file, so the location says little), else the section's first line.
fn failure_message(detail: &str) -> String {
    let lines: Vec<&str> = detail.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let panicked = lines
        .iter()
        .position(|l| l.starts_with("thread '") && l.contains("panicked"));
    match panicked {
        Some(i) => lines
            .get(i + 1)
            .filter(|l| !l.starts_with("stack backtrace:") && !l.starts_with("note: "))
            .unwrap_or(&lines[i])
            .to_string(),
        None => lines.first().unwrap_or(&"failed").to_string(),
    }
}

/// A FIFO for libtest's `--logfile`, read by a thread until every writer has closed it; we
/// hold a write end ourselves until the run is over, so the gap between rustdoc's two
/// harnesses is not an end of file.
struct LogFifo {
    path: PathBuf,
    _dir: tempfile::TempDir,
    keeper: std::fs::File,
    reader: std::thread::JoinHandle<Vec<u8>>,
}

impl LogFifo {
    fn open() -> std::io::Result<Self> {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::OpenOptionsExt;
        use std::os::unix::io::AsRawFd;
        let dir = tempfile::Builder::new()
            .prefix("cargo-shard-doctests-")
            .tempdir()?;
        let path = dir.path().join("results");
        let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())?;
        // SAFETY: a valid NUL-terminated path; mkfifo(3) touches no memory of ours.
        if unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // Non-blocking, so opening does not wait for a writer; then blocking reads again.
        let mut read = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)?;
        let keeper = std::fs::OpenOptions::new().write(true).open(&path)?;
        let fd = read.as_raw_fd();
        // SAFETY: fcntl(2) on a descriptor we own, flags only.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
        let reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = read.read_to_end(&mut buf);
            buf
        });
        Ok(Self {
            path,
            _dir: dir,
            keeper,
            reader,
        })
    }

    /// Everything written into the FIFO; call once every harness has exited.
    fn finish(self) -> Vec<u8> {
        drop(self.keeper);
        self.reader.join().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn log_lines_give_each_listed_doctest_its_status_and_a_failure_wins() {
        let listed = names(&[
            "src/lib.rs - two (line 1)",
            "src/lib.rs - three (line 7)",
            "src/lib.rs - four (line 13)",
            "src/lib.rs - (line 1)",
        ]);
        let log = "ignored src/lib.rs - four (line 13)\nok src/lib.rs - two (line 1)\n\
                   failed src/lib.rs - three (line 7)\nok src/lib.rs - three (line 7)\n\
                   ok src/lib.rs - (line 1)\nok nothing listed\n";
        let got = parse_log(log, &listed);
        assert_eq!(got["src/lib.rs - two (line 1)"], TestStatus::Passed);
        assert_eq!(got["src/lib.rs - three (line 7)"], TestStatus::Failed);
        assert_eq!(got["src/lib.rs - four (line 13)"], TestStatus::Skipped);
        assert_eq!(got["src/lib.rs - (line 1)"], TestStatus::Passed);
        assert_eq!(got.len(), 4);
    }

    #[test]
    fn a_missing_result_is_an_error_and_a_failure_keeps_its_text() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("doctests.log");
        std::fs::write(
            &log,
            "running 2 tests\ntest src/lib.rs - a (line 1) ... FAILED\n\nfailures:\n\n\
             ---- src/lib.rs - a (line 1) stdout ----\nTest executable failed (exit status: 101).\n\n\
             stderr:\nthread 'main' panicked at src/lib.rs:4:1:\nassertion `left == right` failed\n  left: 3\n right: 4\n\n\
             failures:\n    src/lib.rs - a (line 1)\n",
        )
        .unwrap();
        let listed = names(&["src/lib.rs - a (line 1)", "src/lib.rs - b (line 9)"]);
        let ran = Ok(Ran {
            exit: Some(101),
            results: "failed src/lib.rs - a (line 1)\n".into(),
        });
        let r = judge("alpha (doctests)", &listed, ran, &log);
        assert_eq!(r[0].status, TestStatus::Failed);
        assert_eq!(r[0].id.group, "alpha (doctests)");
        assert_eq!(r[0].message.as_deref(), Some("assertion `left == right` failed"));
        assert_eq!(
            failure_message("Test executable failed (exit status: 101)."),
            "Test executable failed (exit status: 101)."
        );
        assert!(
            r[0].detail.contains("left: 3") && r[0].detail.contains("right: 4"),
            "{}",
            r[0].detail
        );
        assert_eq!(r[1].status, TestStatus::Error);
        assert!(r[1].message.as_deref().unwrap().contains("exit 101"));
    }

    #[test]
    fn an_interrupted_run_starts_nothing_and_reports_its_doctests_skipped() {
        let logs = tempfile::tempdir().unwrap();
        let d = LocalDoctests {
            workspace_root: "/nonexistent".into(),
            opts: NextestOptions::default(),
            crates: vec![(
                "alpha".into(),
                "alpha".into(),
                names(&["src/lib.rs - a (line 1)"]),
            )],
        };
        let cancel = CancellationToken::new();
        cancel.cancel();
        let r = d.run(logs.path(), &cancel);
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].status, r[0].id.group.as_str()),
            (TestStatus::Skipped, "alpha (doctests)")
        );
        assert!(r[0].message.as_deref().unwrap().contains("interrupted"));
    }

    #[test]
    fn the_fifo_keeps_lines_of_writers_that_open_it_one_after_another() {
        let fifo = LogFifo::open().unwrap();
        for line in ["ok first\n", "ok second\n"] {
            // Each harness opens the path with truncation, as libtest's File::create does.
            std::fs::write(&fifo.path, line).unwrap();
        }
        assert_eq!(String::from_utf8(fifo.finish()).unwrap(), "ok first\nok second\n");
    }
}
