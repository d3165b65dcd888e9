//! `cargo shard show`: reprint a finished run's summary from the `summary.json` it wrote,
//! without connecting to any host or running anything.

use std::path::{Path, PathBuf};

use super::ShowArgs;
use super::error::Error;
use crate::exit;
use crate::report::style::Paint;
use crate::report::summary::{SUMMARY_VERSION, Summary};

/// The file a run writes beside its JUnit report.
pub const SUMMARY_FILE: &str = "summary.json";

/// Why a run's summary could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ShowError {
    #[error("{0}: no run recorded here (run `cargo shard` first, or give --out-dir DIR)")]
    Missing(String),
    #[error("{0}: {1}")]
    Unreadable(String, std::io::Error),
    #[error("{path}:{line}:{column}: not a cargo-shard summary: {msg}")]
    Malformed {
        path: String,
        line: usize,
        column: usize,
        msg: String,
    },
    #[error("{0}: written by another cargo-shard (summary format {1}, this one reads {SUMMARY_VERSION})")]
    Version(String, u32),
}

/// Reprints the last run's summary.
pub fn run(a: ShowArgs) -> Result<u8, Error> {
    let dir = a.out_dir.clone().unwrap_or_else(default_out_dir);
    let summary = read(&dir.join(SUMMARY_FILE))?;
    let paint = Paint::detect(super::pipeline::color_when(a.color));
    let text = if a.failures {
        summary.render_failures_only(paint)
    } else {
        summary.render(paint)
    };
    print!("{text}");
    Ok(exit::OK)
}

/// Where a run with no `--out-dir` writes: the cargo target dir's `shard`, else `target/shard`
/// (Go and exec runs outside a cargo workspace).
fn default_out_dir() -> PathBuf {
    super::pipeline::nextest_out_dir(None, None).unwrap_or_else(|_| PathBuf::from("target/shard"))
}

pub fn read(path: &Path) -> Result<Summary, ShowError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ShowError::Missing(shown.clone()),
        _ => ShowError::Unreadable(shown.clone(), e),
    })?;
    // The version first, so a newer file says so instead of failing on a field.
    let version = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["format_version"].as_u64());
    if let Some(v) = version
        && v != u64::from(SUMMARY_VERSION)
    {
        return Err(ShowError::Version(shown, v as u32));
    }
    serde_json::from_str(&text).map_err(|e| ShowError::Malformed {
        path: shown,
        line: e.line(),
        column: e.column(),
        msg: e.to_string().split(" at line ").next().unwrap_or("").to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample::sample;
    use crate::report::summary;

    #[test]
    fn a_written_summary_reads_back_to_the_same_text() {
        let (report, plan, written) = sample();
        let s = Summary::of(&report, &plan, &written);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SUMMARY_FILE);
        std::fs::write(&path, serde_json::to_string_pretty(&s).unwrap()).unwrap();
        let back = read(&path).unwrap();
        assert_eq!(
            back.render(Paint::PLAIN),
            summary::render(&report, &plan, &written, Paint::PLAIN)
        );
        let failures = back.render_failures_only(Paint::PLAIN);
        insta::assert_snapshot!(failures);
    }

    #[test]
    fn bad_files_say_what_is_wrong_with_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SUMMARY_FILE);
        let missing = read(&path).unwrap_err().to_string();
        assert!(
            missing.ends_with(
                "summary.json: no run recorded here (run `cargo shard` first, or give --out-dir DIR)"
            ),
            "{missing}"
        );
        std::fs::write(&path, "{\n  \"format_version\": 1,\n  \"run_id\": 7\n}").unwrap();
        let malformed = read(&path).unwrap_err().to_string();
        assert!(malformed.contains("summary.json:3:"), "{malformed}");
        assert!(
            malformed.contains("not a cargo-shard summary: invalid type"),
            "{malformed}"
        );
        std::fs::write(&path, "{\"format_version\": 9}").unwrap();
        let newer = read(&path).unwrap_err().to_string();
        assert!(
            newer.ends_with("written by another cargo-shard (summary format 9, this one reads 1)"),
            "{newer}"
        );
    }
}
