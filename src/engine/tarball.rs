//! Tar archives in and out of shards: Docker's archive API speaks tar both ways, and the local
//! engine unpacks the same payload so both engines see identical trees.

#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::io::Read;

/// A tar of generated files (paths relative to the shard root), with their parent directories.
pub fn files_tar(files: &[(String, Vec<u8>)]) -> std::io::Result<Vec<u8>> {
    dir_and_files_tar("", files)
}

/// [`files_tar`] that also holds the directories of `dir` (relative to where it is extracted),
/// whether or not a file lands there.
pub fn dir_and_files_tar(dir: &str, files: &[(String, Vec<u8>)]) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dirs = std::collections::BTreeSet::new();
    let mut prefix = String::new();
    for part in dir.split('/').filter(|p| !p.is_empty()) {
        prefix.push_str(part);
        prefix.push('/');
        dirs.insert(prefix.clone());
    }
    for (path, _) in files {
        let rel = path.trim_start_matches('/');
        let mut prefix = String::new();
        let parts: Vec<&str> = rel.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            prefix.push_str(part);
            prefix.push('/');
            dirs.insert(prefix.clone());
        }
    }
    for d in &dirs {
        append_dir(&mut b, d)?;
    }
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(if is_script(data) { 0o755 } else { 0o644 });
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mtime(0);
        b.append_data(&mut h, path.trim_start_matches('/'), data.as_slice())?;
    }
    b.into_inner()
}

/// Generated files starting with `#!` are meant to be run.
fn is_script(data: &[u8]) -> bool {
    data.starts_with(b"#!")
}

fn append_dir(b: &mut tar::Builder<Vec<u8>>, path: &str) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    h.set_mtime(0);
    b.append_data(&mut h, path, std::io::empty())
}

/// Adds the regular files of a tar Docker produced for `requested` (an absolute path) to
/// `into`, keyed by absolute path. Docker names entries relative to the requested path's
/// parent (`/a/b` gives `b`, `b/c`, …).
pub fn unpack_collected(
    tar_bytes: &[u8],
    requested: &str,
    into: &mut BTreeMap<String, Vec<u8>>,
) -> std::io::Result<()> {
    let requested = requested.trim_end_matches('/');
    let parent = match requested.rsplit_once('/') {
        Some((p, _)) => p,
        None => "",
    };
    let mut archive = tar::Archive::new(tar_bytes);
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let rel = entry
            .path()?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        let mut data = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut data)?;
        into.insert(format!("{parent}/{rel}"), data);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(tar_bytes: &[u8]) -> Vec<String> {
        let mut a = tar::Archive::new(tar_bytes);
        a.entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn root_dirs_are_listed_with_or_without_files() {
        assert_eq!(names(&dir_and_files_tar("/a/b/", &[]).unwrap()), ["a/", "a/b/"]);
        let with_file = dir_and_files_tar("a", &[("run/x".into(), b"1".to_vec())]).unwrap();
        assert_eq!(names(&with_file), ["a/", "run/", "run/x"]);
    }

    #[test]
    fn files_tar_adds_parents_once() {
        let t = files_tar(&[
            ("x/y/f1".to_string(), b"1".to_vec()),
            ("x/f2".to_string(), b"#!/bin/sh".to_vec()),
        ])
        .unwrap();
        assert_eq!(names(&t), ["x/", "x/y/", "x/y/f1", "x/f2"]);
        let mut a = tar::Archive::new(t.as_slice());
        let modes: Vec<u32> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().header().mode().unwrap())
            .collect();
        assert_eq!(modes, [0o755, 0o755, 0o644, 0o755]);
    }

    #[test]
    fn collected_keys_are_absolute() {
        let t = files_tar(&[
            ("out/junit.xml".to_string(), b"<x/>".to_vec()),
            ("out/sub/log".to_string(), b"l".to_vec()),
        ])
        .unwrap();
        let mut m = BTreeMap::new();
        unpack_collected(&t, "/cargo-shard/out/", &mut m).unwrap();
        let keys: Vec<&String> = m.keys().collect();
        assert_eq!(keys, ["/cargo-shard/out/junit.xml", "/cargo-shard/out/sub/log"]);
        assert_eq!(m["/cargo-shard/out/junit.xml"], b"<x/>");
    }
}
