//! The run's report files from its first second: where they go, checked writable before the
//! build, the previous run's removed, and an early end written as a one-case JUnit — so CI
//! never publishes an earlier run's results as this run's.

use std::path::{Path, PathBuf};

use super::{RunOpts, fail};
use crate::exit;

pub struct Reports {
    pub junit: PathBuf,
    pub html: PathBuf,
}

impl Reports {
    pub fn new(o: &RunOpts, out_dir: &Path) -> Self {
        Self {
            junit: o.junit.clone().unwrap_or_else(|| out_dir.join("junit.xml")),
            html: out_dir.join("report.html"),
        }
    }

    /// Checks that each report can be written where it goes and removes the previous run's;
    /// from here an early end leaves a JUnit saying why. The error is one line for exit 1.
    pub fn prepare(&self) -> Result<(), String> {
        for path in [&self.junit, &self.html] {
            check_writable(path)?;
        }
        for path in [&self.junit, &self.html] {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("cannot remove the previous {}: {e}", path.display())),
            }
        }
        crate::interrupt::set_junit(self.junit.clone());
        Ok(())
    }

    /// Ends the run before any result: the one-case JUnit, then the one-line error.
    pub fn fail(&self, code: u8, msg: impl std::fmt::Display) -> u8 {
        crate::interrupt::settle();
        let msg = msg.to_string();
        let why = match code {
            exit::BAD_INPUT => format!("bad input: {msg}"),
            exit::BUILD_FAILED => format!("building or listing the tests failed: {msg}"),
            _ => msg.clone(),
        };
        let _ = crate::report::junit::write_early_end(&self.junit, &why);
        crate::interrupt::report_written();
        fail(code, msg)
    }

    /// A run that selected nothing: an empty report, not the previous one.
    pub fn write_empty(&self) {
        let _ = crate::junit::write_atomic(&self.junit, &crate::report::junit::empty());
        crate::interrupt::report_written();
    }
}

/// `path` can be created or replaced: its directory exists (or is created) and takes a new
/// file, and `path` is not a directory.
fn check_writable(path: &Path) -> Result<(), String> {
    if path.is_dir() {
        return Err(format!("{}: is a directory, not a report file", path.display()));
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("{}: cannot create {}: {e}", path.display(), dir.display()))?;
    tempfile::NamedTempFile::new_in(dir)
        .map(drop)
        .map_err(|e| format!("{}: cannot write in {}: {e}", path.display(), dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unwritable_place_is_named_before_anything_runs() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        let e = check_writable(&file.join("junit.xml")).unwrap_err();
        assert!(
            e.starts_with(&format!("{}/junit.xml: cannot create", file.display())),
            "{e}"
        );
        let e = check_writable(dir.path()).unwrap_err();
        assert!(e.ends_with("is a directory, not a report file"), "{e}");
        check_writable(&dir.path().join("new/sub/junit.xml")).unwrap();
    }
}
