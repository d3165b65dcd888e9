//! Facts about a run that are not results: when it started (wall clock), the command line that
//! started it, the git commit it tested and cargo-shard's version. The JUnit timestamps, the
//! HTML report's header, the JSON events and `summary.json` all take them from here.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

/// The run's identity beyond its id.
#[derive(Debug, Clone, PartialEq)]
pub struct RunMeta {
    /// Wall-clock time the shards' clock starts from (attempt offsets count from here).
    pub started: SystemTime,
    /// The command line, each argument shell-quoted when it needs it.
    pub command: String,
    /// `git rev-parse HEAD` of the directory the run was started in, when it is a checkout.
    pub commit: Option<String>,
    /// cargo-shard's own version, so a report says which build wrote it.
    pub version: String,
}

impl RunMeta {
    /// Captures the facts at the start of a run, `dir` being where git is asked.
    pub fn capture(dir: &Path) -> Self {
        Self {
            started: SystemTime::now(),
            command: command_line(std::env::args()),
            commit: git_commit(dir),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// `started + offset` as RFC 3339 in UTC, to the second (`2026-12-01T20:14:41Z`).
    pub fn at(&self, offset: Duration) -> String {
        timestamp(self.started + offset)
    }
}

/// RFC 3339 in UTC, to the second.
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// RFC 3339 in UTC, to the millisecond, for events a tool orders.
pub fn timestamp_millis(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Arguments joined with spaces; one holding anything but plain word characters is quoted
/// in single quotes, so the line can be pasted back into a shell.
pub fn command_line(args: impl IntoIterator<Item = String>) -> String {
    args.into_iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
            if plain {
                a
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The checked-out commit, `None` outside a git checkout or without git.
fn git_commit(dir: &Path) -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let commit = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !commit.is_empty()).then_some(commit)
}

#[cfg(test)]
pub(crate) fn sample_meta() -> RunMeta {
    RunMeta {
        started: SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_156_081),
        command: "cargo-shard --hosts hosts.toml -E 'test(a b)'".into(),
        commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
        version: "0.1.0".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_quote_what_a_shell_would_split() {
        let args = ["cargo-shard", "-E", "test(a b)", "it's", "", "--out-dir=x/y"];
        assert_eq!(
            command_line(args.map(String::from)),
            r"cargo-shard -E 'test(a b)' 'it'\''s' '' --out-dir=x/y"
        );
    }

    #[test]
    fn timestamps_are_utc_rfc3339() {
        let m = sample_meta();
        assert_eq!(m.at(Duration::ZERO), "2026-12-01T20:14:41Z");
        assert_eq!(m.at(Duration::from_millis(61_500)), "2026-12-01T20:15:42Z");
        assert_eq!(
            timestamp_millis(m.started + Duration::from_millis(5)),
            "2026-12-01T20:14:41.005Z"
        );
    }

    #[test]
    fn a_commit_only_inside_a_checkout() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(git_commit(dir.path()), None);
        let here = git_commit(Path::new(env!("CARGO_MANIFEST_DIR")));
        assert!(
            here.as_deref()
                .is_some_and(|c| c.len() == 40 && c.chars().all(|c| c.is_ascii_hexdigit())),
            "{here:?}"
        );
    }
}
