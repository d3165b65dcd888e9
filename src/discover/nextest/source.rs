//! The workspace's source files that shards need beside the archive (nextest runs tests
//! with the workspace remapped, so tests can read fixtures from their crate's directory).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Files under `root` relative to it: git's tracked and untracked-but-not-ignored files,
/// or, outside a git checkout, every file except the target directory and `.git`.
pub fn files(root: &Path, target_dir: &Path) -> Result<Vec<PathBuf>, String> {
    match git_files(root) {
        Some(files) => Ok(files),
        None => {
            let mut out = Vec::new();
            walk(root, root, target_dir, &mut out).map_err(|e| e.to_string())?;
            out.sort();
            Ok(out)
        }
    }
}

fn git_files(root: &Path) -> Option<Vec<PathBuf>> {
    let output = Command::new("git")
        .current_dir(root)
        .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let mut files: Vec<PathBuf> = output
        .stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
        // Deleted but still tracked files and submodule directories cannot be uploaded.
        .filter(|p| root.join(p).symlink_metadata().is_ok_and(|m| !m.is_dir()))
        .collect();
    files.sort();
    files.dedup();
    Some(files)
}

fn walk(root: &Path, dir: &Path, target_dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if path == target_dir || entry.file_name() == ".git" || entry.file_name() == "target" {
                continue;
            }
            walk(root, &path, target_dir, out)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.to_path_buf());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_skips_target_and_git() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["a.rs", "sub/b.txt", "target/debug/x", ".git/HEAD", "out/t"] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "x").unwrap();
        }
        let mut out = Vec::new();
        walk(dir.path(), dir.path(), &dir.path().join("out"), &mut out).unwrap();
        out.sort();
        assert_eq!(out, vec![PathBuf::from("a.rs"), PathBuf::from("sub/b.txt")]);
    }
}
