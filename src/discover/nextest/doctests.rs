//! The doctests of the selected crates, which nextest (and so every shard) does not run:
//! counted so a run can say how many are left out, or listed per crate so that
//! `--doctests local` can run them on the build machine beside the shards (see [`local`]).

pub mod local;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::NextestOptions;

/// What to do with the selected crates' doctests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DoctestMode {
    /// Not asked: count them and warn that they will not run (nextest runs no doctests).
    #[default]
    #[value(skip)]
    Warn,
    /// Leave them out, neither counted nor warned about.
    Skip,
    /// Run `cargo test --doc` on this machine beside the shards, results merged.
    Local,
}

/// How many doctests `cargo test --doc` would run for the selection; `None` when they cannot
/// be listed (no library target, a build error): the count is advice, never a failure.
pub fn count(workspace_root: &Path, opts: &NextestOptions) -> Option<usize> {
    let out = listing(workspace_root, opts).ok()?;
    Some(crates_listed(&out).iter().map(|(_, names)| names.len()).sum())
}

/// [`count`], kept in the file `cache` under a key of what decides it: the selection, the
/// toolchain asked for, and each source's (`sources()`, relative to `workspace_root`) path,
/// size and modification time. Counting compiles the doctests (0.45 s for rust-sample, far
/// more for a crate with many), so an unchanged tree is counted once. A cache that cannot be
/// read or written only means counting again.
pub fn count_cached(
    workspace_root: &Path,
    opts: &NextestOptions,
    sources: impl Fn() -> Option<Vec<PathBuf>>,
    cache: &Path,
) -> Option<usize> {
    let key = |files: &[PathBuf]| count_key(workspace_root, opts, files);
    let before = key(&sources()?);
    let kept = std::fs::read(cache)
        .ok()
        .and_then(|b| serde_json::from_slice::<KeptCount>(&b).ok())
        .filter(|k| k.key == before);
    if let Some(kept) = kept {
        return Some(kept.count);
    }
    let count = count(workspace_root, opts)?;
    // Kept under the tree as the build left it (a first build writes `Cargo.lock`), which is
    // what the next run finds.
    let key = key(&sources()?);
    let _ = crate::atomic::write_with(cache, |w| {
        serde_json::to_writer(w, &KeptCount { key, count }).map_err(std::io::Error::other)
    });
    Some(count)
}

/// A count with the key it was made under.
#[derive(serde::Serialize, serde::Deserialize)]
struct KeptCount {
    key: String,
    count: usize,
}

fn count_key(workspace_root: &Path, opts: &NextestOptions, sources: &[PathBuf]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    let mut args = Command::new("cargo");
    super::selection_args(&mut args, opts, "--profile");
    for arg in args.get_args() {
        field(arg.as_encoded_bytes());
    }
    for var in ["RUSTUP_TOOLCHAIN", "CARGO", "RUSTDOC", "RUSTDOCFLAGS"] {
        field(std::env::var_os(var).unwrap_or_default().as_encoded_bytes());
    }
    for path in sources {
        field(path.as_os_str().as_encoded_bytes());
        let meta = std::fs::metadata(workspace_root.join(path)).ok();
        let len = meta.as_ref().map_or(u64::MAX, std::fs::Metadata::len);
        let modified = meta
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(u128::MAX, |d| d.as_nanos());
        field(&len.to_le_bytes());
        field(&modified.to_le_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// `cargo test --doc -- --list` for the selection: cargo's `Doc-tests CRATE` lines (stderr)
/// and rustdoc's names (stdout) through one pipe, so each name follows its crate's line.
/// Listing runs no test, so nothing but cargo and rustdoc writes into it.
fn listing(workspace_root: &Path, opts: &NextestOptions) -> Result<String, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root)
        .args(["test", "--doc", "--color", "never"]);
    super::selection_args(&mut cmd, opts, "--profile");
    let (mut reader, writer) = std::io::pipe().map_err(|e| e.to_string())?;
    let writer2 = writer.try_clone().map_err(|e| e.to_string())?;
    cmd.args(["--", "--list", "--format", "terse"])
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer2);
    let mut child = crate::interrupt::spawn(&mut cmd).map_err(|e| e.to_string())?;
    // Our copies of the write end must go, or the read below never ends.
    drop(cmd);
    let mut text = String::new();
    let read = std::io::Read::read_to_string(&mut reader, &mut text);
    let status = child.wait();
    crate::interrupt::release(&child);
    match (read, status) {
        (Ok(_), Ok(s)) if s.success() => Ok(text),
        (Ok(_), Ok(s)) => Err(format!("{s}: {}", last_lines(&text, 5))),
        (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
    }
}

/// The last `n` non-empty lines of `text`, joined by ` | `, for one-line errors.
pub(crate) fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// The listing's doctests by crate (`Doc-tests alpha` starts a crate; libtest's terse
/// listing names each doctest as `src/lib.rs - add (line 3): test`), crates with none left
/// out.
fn crates_listed(text: &str) -> Vec<(String, Vec<String>)> {
    let mut crates: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.trim_start().strip_prefix("Doc-tests ") {
            crates.push((name.trim().to_string(), Vec::new()));
        } else if let Some(test) = line.strip_suffix(": test")
            && let Some((_, names)) = crates.last_mut()
        {
            names.push(test.to_string());
        }
    }
    crates.retain(|(_, names)| !names.is_empty());
    crates
}

/// The line to print when doctests are left out.
pub fn notice(count: usize) -> Option<String> {
    (count > 0).then(|| {
        format!(
            "{count} doctest{} of the selected crates will not run: nextest, and so every shard, runs no doctests (run them beside the shards with `--doctests local`, or leave them out silently with `--doctests skip`)",
            if count == 1 { "" } else { "s" }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_lines_are_grouped_by_crate() {
        let text = "   Compiling alpha v0.1.0\n    Finished `test` profile\n   Doc-tests alpha\n\
                    src/lib.rs - (line 19): test\nsrc/lib.rs - Version::new (line 376): test\n\
                    src/lib.rs - bench (line 3): bench\n   Doc-tests beta\n   Doc-tests gamma\n\
                    src/lib.rs - (line 19): test\n";
        let crates = crates_listed(text);
        assert_eq!(
            crates,
            [
                (
                    "alpha".to_string(),
                    vec![
                        "src/lib.rs - (line 19)".to_string(),
                        "src/lib.rs - Version::new (line 376)".to_string()
                    ]
                ),
                ("gamma".to_string(), vec!["src/lib.rs - (line 19)".to_string()]),
            ]
        );
        assert_eq!(notice(0), None);
        assert!(
            notice(4)
                .unwrap()
                .starts_with("4 doctests of the selected crates will not run")
        );
        assert_eq!(last_lines("a\n\nb\nc\n", 2), "b | c");
    }
}
