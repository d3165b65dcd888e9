//! The run's report files from its first second: where they go, checked writable before the
//! build, the previous run's removed, and an early end written as a one-case JUnit — so CI
//! never publishes an earlier run's results as this run's.

use std::path::{Path, PathBuf};

use super::RunOpts;
use super::error::{Error, fail};
use crate::exit;

/// A report file that could not be written where it goes.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{}: is a directory, not a report file", .0.display())]
    IsDirectory(PathBuf),
    #[error("{}: cannot create {}: {source}", .path.display(), .dir.display())]
    CreateDir {
        path: PathBuf,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: cannot write in {}: {source}", .path.display(), .dir.display())]
    NotWritable {
        path: PathBuf,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot remove the previous {}: {source}", .path.display())]
    RemovePrevious {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where the run's JUnit and HTML reports go.
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
    /// from here an early end leaves a JUnit saying why.
    pub fn prepare(&self) -> Result<(), ReportError> {
        for path in [&self.junit, &self.html] {
            check_writable(path)?;
        }
        for path in [&self.junit, &self.html] {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(ReportError::RemovePrevious {
                        path: path.clone(),
                        source,
                    });
                }
            }
        }
        crate::interrupt::set_junit(self.junit.clone());
        Ok(())
    }

    /// Ends the run before any result: the one-case JUnit, then the one-line error.
    pub fn fail(&self, e: impl Into<Error>) -> u8 {
        crate::interrupt::settle();
        let e = e.into();
        let why = match e.exit_code() {
            exit::BAD_INPUT => format!("bad input: {e}"),
            exit::BUILD_FAILED => format!("building or listing the tests failed: {e}"),
            _ => e.to_string(),
        };
        let _ = crate::report::junit::write_early_end(&self.junit, &why);
        crate::interrupt::report_written();
        fail(e)
    }

    /// A run that selected nothing: an empty report, not the previous one.
    pub fn write_empty(&self) {
        let _ = crate::junit::write_atomic(&self.junit, &crate::report::junit::empty());
        crate::interrupt::report_written();
    }
}

/// `path` can be created or replaced: its directory exists (or is created) and takes a new
/// file, and `path` is not a directory.
fn check_writable(path: &Path) -> Result<(), ReportError> {
    if path.is_dir() {
        return Err(ReportError::IsDirectory(path.to_path_buf()));
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|source| ReportError::CreateDir {
        path: path.to_path_buf(),
        dir: dir.to_path_buf(),
        source,
    })?;
    tempfile::NamedTempFile::new_in(dir)
        .map(drop)
        .map_err(|source| ReportError::NotWritable {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unwritable_place_is_named_before_anything_runs() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        let e = check_writable(&file.join("junit.xml")).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}/junit.xml: cannot create", file.display())),
            "{e}"
        );
        let e = check_writable(dir.path()).unwrap_err().to_string();
        assert!(e.ends_with("is a directory, not a report file"), "{e}");
        check_writable(&dir.path().join("new/sub/junit.xml")).unwrap();
    }
}
