//! The payload every shard receives, packed once into one tar (entries relative to the
//! shard root) so that N shards cost one read of the archive and source tree.

use std::path::Path;

use crate::shard::Upload;

/// A file of the payload could not be read into it.
#[derive(Debug, thiserror::Error)]
#[error("cannot pack {path} for upload: {source}")]
pub struct PayloadError {
    /// The file.
    pub path: String,
    /// Why.
    pub source: std::io::Error,
}

/// Packs `uploads` into an in-memory tar.
pub fn pack(uploads: &[Upload]) -> Result<Vec<u8>, PayloadError> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(true);
    for upload in uploads {
        match upload {
            Upload::File { src, dest, mode } => append_file(&mut builder, src, dest, Some(*mode))?,
            Upload::Tree { src, files, dest } => {
                for rel in files {
                    let full = src.join(rel);
                    // git ls-files can name files deleted in the work tree: skip them.
                    if !full.is_file() {
                        continue;
                    }
                    let name = format!("{}/{}", dest.trim_end_matches('/'), rel.display());
                    append_file(&mut builder, &full, &name, None)?;
                }
            }
        }
    }
    builder.into_inner().map_err(|source| PayloadError {
        path: "<tar>".into(),
        source,
    })
}

fn append_file(
    builder: &mut tar::Builder<Vec<u8>>,
    src: &Path,
    dest: &str,
    mode: Option<u32>,
) -> Result<(), PayloadError> {
    let err = |source| PayloadError {
        path: src.display().to_string(),
        source,
    };
    let mut file = std::fs::File::open(src).map_err(err)?;
    let meta = file.metadata().map_err(err)?;
    let mut header = tar::Header::new_gnu();
    header.set_size(meta.len());
    header.set_mode(mode.unwrap_or_else(|| {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o7777
    }));
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder
        .append_data(&mut header, dest.trim_start_matches('/'), &mut file)
        .map_err(err)
}

/// A tar of generated files (path relative to the root → contents).
pub fn pack_files(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        // Writing into a Vec cannot fail.
        let _ = builder.append_data(&mut header, path.trim_start_matches('/'), data.as_slice());
    }
    builder.into_inner().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_files_and_trees_relative_to_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "A").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b.txt"), "BB").unwrap();
        let uploads = vec![
            Upload::File {
                src: dir.path().join("a.txt"),
                dest: "bin/a".into(),
                mode: 0o755,
            },
            Upload::Tree {
                src: dir.path().to_path_buf(),
                files: vec!["sub/b.txt".into(), "gone.txt".into()],
                dest: "src".into(),
            },
        ];
        let tar = pack(&uploads).unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut seen = Vec::new();
        for e in archive.entries().unwrap() {
            let e = e.unwrap();
            seen.push((
                e.path().unwrap().display().to_string(),
                e.header().mode().unwrap(),
                e.size(),
            ));
        }
        assert_eq!(
            seen,
            vec![
                ("bin/a".to_string(), 0o755, 1),
                ("src/sub/b.txt".to_string(), 0o644, 2)
            ]
        );
    }
}
