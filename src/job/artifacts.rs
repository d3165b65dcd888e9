//! `--artifacts`: files copied out of every shard before its container goes, written to
//! `<out>/artifacts/<shard>/<name>` (a directory keeps its tree under its own name).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The collected files under each requested path, as (path relative to the artifacts dir,
/// contents). `collected` is keyed by absolute path, as engines return it.
pub fn select<'a>(
    requested: &[String],
    collected: &'a BTreeMap<String, Vec<u8>>,
) -> Vec<(PathBuf, &'a [u8])> {
    let mut out = Vec::new();
    for req in requested {
        let req = req.trim_end_matches('/');
        let name = req.rsplit('/').next().unwrap_or(req);
        for (path, data) in collected {
            let rel = if path == req {
                Some(PathBuf::from(name))
            } else {
                path.strip_prefix(req)
                    .and_then(|rest| rest.strip_prefix('/'))
                    .map(|rest| Path::new(name).join(rest))
            };
            if let Some(rel) = rel
                && rel
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)))
            {
                out.push((rel, data.as_slice()));
            }
        }
    }
    out
}

/// Writes one shard's artifacts under `dir`; returns how many files were written.
pub fn save(
    dir: &Path,
    requested: &[String],
    collected: &BTreeMap<String, Vec<u8>>,
) -> std::io::Result<usize> {
    let files = select(requested, collected);
    for (rel, data) in &files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, data)?;
    }
    Ok(files.len())
}

/// `<out>/artifacts/<shard>`.
pub fn shard_dir(out_dir: &Path, shard: usize) -> PathBuf {
    out_dir.join("artifacts").join(shard.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_trees_keep_their_names() {
        let collected = BTreeMap::from([
            ("/r/src/report.txt".to_string(), b"R".to_vec()),
            ("/r/src/cov/a/b.json".to_string(), b"B".to_vec()),
            ("/r/src/covered.txt".to_string(), b"no".to_vec()),
            ("/r/src/junit.xml".to_string(), b"J".to_vec()),
        ]);
        let req = vec!["/r/src/report.txt".to_string(), "/r/src/cov/".to_string()];
        let got: Vec<(PathBuf, &[u8])> = select(&req, &collected);
        assert_eq!(
            got,
            vec![
                (PathBuf::from("report.txt"), b"R".as_slice()),
                (PathBuf::from("cov/a/b.json"), b"B".as_slice())
            ]
        );
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(save(dir.path(), &req, &collected).unwrap(), 2);
        assert_eq!(std::fs::read(dir.path().join("cov/a/b.json")).unwrap(), b"B");
    }
}
