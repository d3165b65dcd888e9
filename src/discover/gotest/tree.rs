//! The files of a source tree to ship to every shard (tests read `testdata/` and friends at
//! run time): git's view of the tree when it is a work tree, else a plain walk.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Files under `dir`, relative to it, sorted: tracked plus untracked-but-not-ignored files
/// when `dir` is inside a git work tree, otherwise every file except `.git` directories.
/// Anything under an `exclude` path (e.g. the build output directory) is left out.
pub fn source_files(dir: &Path, exclude: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let exclude: Vec<PathBuf> = exclude.iter().filter_map(|p| p.canonicalize().ok()).collect();
    let root = dir.canonicalize()?;
    let mut files = match git_files(&root) {
        Some(files) => files,
        None => {
            let mut files = Vec::new();
            walk(&root, Path::new(""), &mut files)?;
            files
        }
    };
    files.retain(|rel| {
        let abs = root.join(rel);
        abs.symlink_metadata().is_ok() && !exclude.iter().any(|e| abs.starts_with(e))
    });
    files.sort();
    files.dedup();
    Ok(files)
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
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    Some(
        text.split('\0')
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect(),
    )
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(root.join(rel))? {
        let entry = entry?;
        let name = entry.file_name();
        let child = rel.join(&name);
        if entry.file_type()?.is_dir() {
            if name != ".git" {
                walk(root, &child, out)?;
            }
        } else {
            out.push(child);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_skips_git_and_excluded_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        for f in ["a.go", "pkg/testdata/x.txt", ".git/config", "out/bin/a.test"] {
            let p = d.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, "x").unwrap();
        }
        // A fresh temp dir is not a git work tree, so this exercises the walk.
        let files = source_files(d, &[d.join("out")]).unwrap();
        assert_eq!(
            files,
            [PathBuf::from("a.go"), PathBuf::from("pkg/testdata/x.txt")]
        );
    }
}
