//! Which files of a source tree ship to every shard, and how big they are: git's view of the
//! tree (or a walk outside git), never a build's output — cargo's target directory wherever
//! it is, and any directory tagged as a cache — whatever git says about it.
//!
//! A tree without a `.gitignore` (a crate unpacked from crates.io, a fresh `cargo new`
//! outside git) lists its whole `target/` as untracked files: shipping it to every shard
//! cost hundreds of megabytes per shard (issue 11), so build output is recognised by what it
//! is, not by what git ignores.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use crate::shard::Upload;

/// The first bytes of a `CACHEDIR.TAG` (<https://bford.info/cachedir/>), which cargo writes
/// into every target directory it creates (and other tools into their caches).
const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

/// Files under `dir`, relative to it, sorted: tracked plus untracked-but-not-ignored files
/// when `dir` is inside a git work tree, otherwise every file except `.git` directories.
/// Left out: anything under an `exclude` path (cargo's target directory, our output
/// directory), wherever it is, and anything inside a build output directory
/// ([`is_build_dir`]), e.g. another workspace's `fixtures/x/target`.
pub fn source_files(dir: &Path, exclude: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let root = dir.canonicalize()?;
    let exclude: Vec<PathBuf> = exclude.iter().filter_map(|p| relative_inside(&root, p)).collect();
    let files = match git_files(&root) {
        Some(files) => files,
        None => {
            let mut files = Vec::new();
            walk(&root, Path::new(""), &mut files)?;
            files
        }
    };
    let mut build_dirs = HashMap::new();
    let mut files = prune(files, &exclude, |rel| {
        *build_dirs
            .entry(rel.to_path_buf())
            .or_insert_with(|| is_build_dir(&root.join(rel)))
    });
    // Deleted but still tracked files and submodule directories cannot be uploaded.
    files.retain(|rel| root.join(rel).symlink_metadata().is_ok_and(|m| !m.is_dir()));
    Ok(files)
}

/// `path` relative to `root` when it lies inside it (resolving symlinks where it exists, so a
/// `CARGO_TARGET_DIR` spelled through a link still matches); `None` when it is outside.
fn relative_inside(root: &Path, path: &Path) -> Option<PathBuf> {
    let abs = path.canonicalize().or_else(|_| std::path::absolute(path)).ok()?;
    abs.strip_prefix(root).ok().map(Path::to_path_buf)
}

/// Keeps the files (relative paths) that lie under no `exclude` directory and under no
/// directory `is_build` accepts; sorted and without duplicates.
pub fn prune(
    files: Vec<PathBuf>,
    exclude: &[PathBuf],
    mut is_build: impl FnMut(&Path) -> bool,
) -> Vec<PathBuf> {
    let mut kept: Vec<PathBuf> = files
        .into_iter()
        .filter(|f| !exclude.iter().any(|e| f.starts_with(e)))
        .filter(|f| {
            !f.ancestors()
                .skip(1)
                .any(|d| !d.as_os_str().is_empty() && is_build(d))
        })
        .collect();
    kept.sort();
    kept.dedup();
    kept
}

/// A build output directory: tagged with a `CACHEDIR.TAG` (cargo tags every target
/// directory it creates), or a cargo target directory too old to carry one.
pub fn is_build_dir(dir: &Path) -> bool {
    let tagged = std::fs::read(dir.join("CACHEDIR.TAG")).is_ok_and(|t| t.starts_with(CACHEDIR_SIGNATURE));
    tagged || dir.join(".rustc_info.json").is_file()
}

fn git_files(root: &Path) -> Option<Vec<PathBuf>> {
    let out = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
            "--",
            ".",
        ])
        .current_dir(root)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(
        out.stdout
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
            .collect(),
    )
}

/// Every file below `root/rel`, not descending into `.git` or build output directories
/// (the latter would only be pruned afterwards, after reading thousands of entries).
fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(root.join(rel))? {
        let entry = entry?;
        let name = entry.file_name();
        let child = rel.join(&name);
        if entry.file_type()?.is_dir() {
            if name != ".git" && !is_build_dir(&entry.path()) {
                walk(root, &child, out)?;
            }
        } else {
            out.push(child);
        }
    }
    Ok(())
}

/// `path` with `.` and `..` resolved by text alone; `None` when it climbs above its start.
pub fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// How big the source trees of a suite's uploads are, and where the bytes are.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TreeSize {
    /// How many files the trees hold in all.
    pub files: usize,
    /// Their total size in bytes, what the first upload to a host costs.
    pub bytes: u64,
    /// Top-level directories (`.` for files at a tree's root), largest first.
    pub largest: Vec<(String, u64)>,
}

/// Sums `(relative path, bytes)` per top-level directory.
pub fn tally<'a>(sizes: impl IntoIterator<Item = (&'a Path, u64)>) -> TreeSize {
    let mut per_dir: HashMap<String, u64> = HashMap::new();
    let mut size = TreeSize::default();
    for (rel, bytes) in sizes {
        let mut parts = rel.components();
        let first = parts.next();
        let top = match (first, parts.next()) {
            (Some(dir), Some(_)) => format!("{}/", dir.as_os_str().to_string_lossy()),
            _ => "./".to_string(),
        };
        *per_dir.entry(top).or_default() += bytes;
        size.files += 1;
        size.bytes += bytes;
    }
    let mut largest: Vec<(String, u64)> = per_dir.into_iter().collect();
    largest.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    size.largest = largest;
    size
}

/// The size of the source trees among `uploads` (the archive and binaries are not source).
pub fn tree_size(uploads: &[Upload]) -> TreeSize {
    let mut sizes: Vec<(PathBuf, u64)> = Vec::new();
    for u in uploads {
        if let Upload::Tree { src, files, .. } = u {
            for f in files {
                let bytes = src.join(f).symlink_metadata().map_or(0, |m| m.len());
                sizes.push((f.clone(), bytes));
            }
        }
    }
    tally(sizes.iter().map(|(p, b)| (p.as_path(), *b)))
}

/// Warn above this many bytes of source per shard, unless `CARGO_SHARD_WARN_SOURCE_MB` says
/// otherwise.
pub const WARN_SOURCE_BYTES: u64 = 50 * 1000 * 1000;

/// The threshold in force: `CARGO_SHARD_WARN_SOURCE_MB` (megabytes) or [`WARN_SOURCE_BYTES`].
pub fn warn_threshold() -> u64 {
    std::env::var("CARGO_SHARD_WARN_SOURCE_MB")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(WARN_SOURCE_BYTES, |mb| mb * 1000 * 1000)
}

/// One warning line when the source part of a payload exceeds `threshold` bytes.
pub fn big_payload_warning(size: &TreeSize, threshold: u64) -> Option<String> {
    if size.bytes <= threshold {
        return None;
    }
    let top: Vec<String> = size
        .largest
        .iter()
        .take(3)
        .map(|(dir, bytes)| format!("{dir} {}", human_bytes(*bytes)))
        .collect();
    Some(format!(
        "the source tree sent to every shard is {} in {} files (over {}); largest: {}",
        human_bytes(size.bytes),
        size.files,
        human_bytes(threshold),
        top.join(", ")
    ))
}

pub use crate::units::human_bytes;

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(list: &[&str]) -> Vec<PathBuf> {
        list.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn prune_drops_excluded_and_build_dirs_at_any_depth() {
        let files = paths(&[
            "src/lib.rs",
            "target/debug/deps/x.rlib",
            "build-out/debug/y",
            "fixtures/other/target/debug/z",
            "fixtures/other/src/lib.rs",
            "src/target/mod.rs",
            "Cargo.toml",
        ]);
        let kept = prune(files, &paths(&["build-out"]), |d| {
            d == Path::new("target") || d == Path::new("fixtures/other/target")
        });
        assert_eq!(
            kept,
            paths(&[
                "Cargo.toml",
                "fixtures/other/src/lib.rs",
                "src/lib.rs",
                "src/target/mod.rs"
            ])
        );
    }

    #[test]
    fn prune_sorts_and_dedups() {
        let kept = prune(paths(&["b", "a", "b"]), &[], |_| false);
        assert_eq!(kept, paths(&["a", "b"]));
    }

    #[test]
    fn normalize_resolves_dots_and_refuses_to_climb_out() {
        assert_eq!(normalize(Path::new("a/b/../c/./d")), Some(PathBuf::from("a/c/d")));
        assert_eq!(normalize(Path::new("a/../../x")), None);
        assert_eq!(normalize(Path::new("/abs")), None);
    }

    #[test]
    fn tally_groups_by_top_level_directory() {
        let size = tally([
            (Path::new("Cargo.toml"), 10),
            (Path::new("fixtures/a/big.bin"), 700),
            (Path::new("fixtures/b/c.bin"), 300),
            (Path::new("src/lib.rs"), 50),
            (Path::new("docs/x.md"), 50),
        ]);
        assert_eq!(size.files, 5);
        assert_eq!(size.bytes, 1110);
        assert_eq!(
            size.largest,
            vec![
                ("fixtures/".to_string(), 1000),
                ("docs/".to_string(), 50),
                ("src/".to_string(), 50),
                ("./".to_string(), 10),
            ]
        );
    }

    #[test]
    fn warning_names_size_and_three_largest_directories_only_above_threshold() {
        let size = TreeSize {
            files: 4,
            bytes: 60_000_000,
            largest: vec![
                ("vendor/".into(), 40_000_000),
                ("fixtures/".into(), 15_000_000),
                ("src/".into(), 4_000_000),
                ("./".into(), 1_000_000),
            ],
        };
        assert_eq!(big_payload_warning(&size, 60_000_000), None);
        assert_eq!(
            big_payload_warning(&size, WARN_SOURCE_BYTES).as_deref(),
            Some(
                "the source tree sent to every shard is 60.0 MB in 4 files (over 50.0 MB); \
                 largest: vendor/ 40.0 MB, fixtures/ 15.0 MB, src/ 4.0 MB"
            )
        );
    }

    fn touch(root: &Path, rel: &str, body: &[u8]) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }

    #[test]
    fn walk_skips_git_excluded_and_tagged_dirs_but_not_a_source_dir_named_target() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        for f in [
            "a.rs",
            "sub/b.txt",
            ".git/HEAD",
            "out/t",
            "src/target/mod.rs",
            "old/.rustc_info.json",
        ] {
            touch(d, f, b"x");
        }
        touch(d, "nested/target/CACHEDIR.TAG", CACHEDIR_SIGNATURE);
        touch(d, "nested/target/debug/big", b"x");
        touch(d, "fake/CACHEDIR.TAG", b"not the signature");
        // A fresh temp dir is not a git work tree, so this exercises the walk.
        let files = source_files(d, &[d.join("out")]).unwrap();
        assert_eq!(
            files,
            paths(&["a.rs", "fake/CACHEDIR.TAG", "src/target/mod.rs", "sub/b.txt"])
        );
    }
}
