//! The payload split into content-addressed parts (source tree, extracted nextest target dir,
//! Go test binaries, shipped tools), each staged once per host into a cache volume that every
//! shard container on that host mounts read-only, at the part's build-machine path when it
//! has one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::shard::Upload;

/// The part every runner calls its source tree.
const SOURCE: &str = "src";

/// Trees holding what a container needs to run (programs, libraries, configuration) or what
/// the kernel provides: no part is mounted at or inside them.
const RESERVED: &[&str] = &[
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/usr/bin",
    "/usr/sbin",
    "/usr/lib",
    "/usr/lib32",
    "/usr/lib64",
    "/usr/libx32",
    "/usr/libexec",
    "/usr/local/bin",
    "/usr/local/sbin",
    "/usr/local/lib",
    "/etc",
    "/proc",
    "/dev",
    "/sys",
    "/run",
    "/var/run",
    "/var/lock",
    "/tmp",
    "/boot",
];
/// Directories whose other contents an image needs: a part may sit below them (Debian's Go
/// sources in `/usr/share/gocode/src/PKG`, a CI workspace in `/var/lib/jenkins/workspace/X`),
/// where it hides only its own directory, but never at one of them or above (`/usr`).
const SHARED: &[&str] = &[
    "/usr/share",
    "/usr/local",
    "/usr/include",
    "/usr/src",
    "/var",
    "/var/lib",
    "/opt",
    "/home",
    "/root",
    "/srv",
    "/mnt",
    "/media",
];

/// Why the payload could not be split into parts before any host was staged.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// A file could not be packed.
    #[error(transparent)]
    Pack(#[from] super::payload::PayloadError),
    /// The nextest archive could not be extracted on this machine.
    #[error("cannot extract the nextest archive {path}: {source}")]
    Extract {
        /// The archive.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The nextest archive's metadata is missing or broken.
    #[error("the nextest archive {path} has no readable binaries-metadata: {reason}")]
    Metadata {
        /// The archive.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// One content-addressed part of the payload.
#[derive(Debug, Clone)]
pub struct Part {
    /// What recipes call it (`src`, `target`, `bin`, `tools`): [`crate::discover::ShardCtx::place`].
    pub name: String,
    /// sha256 of `tar`, hex.
    pub hash: String,
    /// The part's files, relative to where it is placed.
    pub tar: Arc<Vec<u8>>,
    /// Absolute build-machine path to place it at; `None` places it under the shard root.
    pub build_path: Option<String>,
    /// Where these very files already are on this machine (the local engine uses them there).
    pub local: Option<PathBuf>,
}

impl Part {
    /// Where the part sits inside a container rooted at `root`.
    pub fn place(&self, root: &str) -> String {
        match &self.build_path {
            Some(p) => p.clone(),
            None => format!("{}/{}", root.trim_end_matches('/'), self.name),
        }
    }
}

/// Splits `uploads` into parts: the source tree (`src`, placed at its build-machine path),
/// the nextest archive (extracted into `scratch`), and files under `bin/` or `tools/`.
/// Anything else (a job's `files`) is returned as is, to be copied into each container.
pub fn parts(uploads: &[Upload], scratch: &Path) -> Result<(Vec<Part>, Vec<Upload>), StageError> {
    parts_in(uploads, scratch, true, &[])
}

/// [`parts`], unpacking the nextest archive's files on this machine only with `extract` (a
/// local host runs them from there; Docker hosts only need the part's tar). `later`: where
/// parts not among `uploads` will be placed ([`crate::discover::Payload::placed_later`]).
pub fn parts_in(
    uploads: &[Upload],
    scratch: &Path,
    extract: bool,
    later: &[String],
) -> Result<(Vec<Part>, Vec<Upload>), StageError> {
    let mut parts = Vec::new();
    let mut rest = Vec::new();
    let mut grouped: BTreeMap<String, Vec<Upload>> = BTreeMap::new();
    for upload in uploads {
        match upload {
            Upload::File { src, dest, .. } if dest == crate::discover::nextest::ARCHIVE_DEST => {
                parts.push(nextest_target(src, scratch, extract)?);
            }
            Upload::File { dest, .. } => match dest.split_once('/') {
                Some((dir @ ("bin" | "tools"), _)) => {
                    grouped.entry(dir.to_string()).or_default().push(upload.clone())
                }
                _ => rest.push(upload.clone()),
            },
            Upload::Tree { src, dest, .. }
                if dest == SOURCE && !parts.iter().any(|p: &Part| p.name == SOURCE) =>
            {
                let tar = super::payload::pack(&[relative(upload, "")])?;
                parts.push(part(
                    dest,
                    tar,
                    Some(src.display().to_string()),
                    Some(src.clone()),
                ));
            }
            Upload::Tree { .. } => rest.push(upload.clone()),
        }
    }
    for (dir, files) in grouped {
        let local = common_dir(&files);
        let inner: Vec<Upload> = files.iter().map(|u| relative(u, &dir)).collect();
        let tar = super::payload::pack(&inner)?;
        parts.push(part(&dir, tar, None, local));
    }
    add_mountpoints(&mut parts, later)?;
    Ok((parts, rest))
}

fn part(name: &str, tar: Vec<u8>, build_path: Option<String>, local: Option<PathBuf>) -> Part {
    Part {
        name: name.to_string(),
        hash: Sha256::digest(&tar).iter().map(|b| format!("{b:02x}")).collect(),
        tar: Arc::new(tar),
        build_path,
        local,
    }
}

/// `upload` with `dir/` taken off its destination.
fn relative(upload: &Upload, dir: &str) -> Upload {
    let strip = |d: &str| {
        d.strip_prefix(dir)
            .unwrap_or(d)
            .trim_start_matches('/')
            .to_string()
    };
    match upload.clone() {
        Upload::File { src, dest, mode } => Upload::File {
            src,
            dest: strip(&dest),
            mode,
        },
        Upload::Tree { src, files, .. } => Upload::Tree {
            src,
            files,
            dest: String::new(),
        },
    }
}

/// The directory holding all of `files` under their destination names, if there is one.
fn common_dir(files: &[Upload]) -> Option<PathBuf> {
    let mut dir = None;
    for f in files {
        let Upload::File { src, dest, .. } = f else {
            return None;
        };
        let parent = src.parent()?.to_path_buf();
        if src.file_name()? != Path::new(dest).file_name()? || dir.get_or_insert(parent.clone()) != &parent {
            return None;
        }
    }
    dir
}

/// Parts whose build-machine path cannot be used inside a container go under the shard root;
/// one line each says so.
pub fn fall_back_reserved(parts: &mut [Part]) -> Vec<String> {
    let mut lines = Vec::new();
    for p in parts.iter_mut() {
        let Some(path) = &p.build_path else { continue };
        if let Some(why) = unusable(path) {
            lines.push(format!(
                "note: {} ({path}) {why}: placed under the shard root instead; compile-time paths into it (env!) will not resolve in shards",
                p.name
            ));
            p.build_path = None;
        }
    }
    lines
}

fn unusable(path: &str) -> Option<&'static str> {
    if !path.starts_with('/') || path == "/" {
        return Some("is not an absolute directory");
    }
    if path.starts_with(crate::engine::CONTAINER_ROOT) {
        return Some("is where shards keep their own files");
    }
    let path = path.trim_end_matches('/');
    let inside = |r: &str| path == r || path.starts_with(&format!("{r}/"));
    let above = |r: &str| r.starts_with(&format!("{path}/"));
    if RESERVED.iter().any(|r| inside(r) || above(r)) || SHARED.iter().any(|r| path == *r || above(r)) {
        return Some("is under a directory the image or the kernel owns");
    }
    None
}

/// A part placed inside another's tree (or where `later` says one will be) needs its mount
/// point there already: a read-only volume cannot get a new directory when the container
/// starts. Added in path order, so the same places give the same bytes.
fn add_mountpoints(parts: &mut [Part], later: &[String]) -> Result<(), StageError> {
    let mut places: Vec<String> = parts.iter().filter_map(|p| p.build_path.clone()).collect();
    places.extend(later.iter().cloned());
    for p in parts.iter_mut() {
        let Some(outer) = p.build_path.clone() else {
            continue;
        };
        let mut inner: Vec<&str> = places
            .iter()
            .filter_map(|q| q.strip_prefix(&format!("{}/", outer.trim_end_matches('/'))))
            .map(|q| q.trim_end_matches('/'))
            .filter(|q| !q.is_empty())
            .collect();
        inner.sort_unstable();
        inner.dedup();
        if inner.is_empty() {
            continue;
        }
        let mut bytes = std::mem::take(Arc::make_mut(&mut p.tar));
        // Appended entries go before the end-of-archive marker (two zero blocks).
        bytes.truncate(bytes.len().saturating_sub(1024));
        let mut tar = tar::Builder::new(bytes);
        for dir in inner {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            tar.append_data(&mut header, format!("{dir}/"), std::io::empty())
                .map_err(|source| super::payload::PayloadError {
                    path: "<tar>".into(),
                    source,
                })?;
        }
        let bytes = tar.into_inner().map_err(|source| super::payload::PayloadError {
            path: "<tar>".into(),
            source,
        })?;
        *p = part(&p.name, bytes, p.build_path.clone(), p.local.clone());
    }
    Ok(())
}

/// The nextest archive's `target/` as a part (its `target/` prefix taken off): shards run
/// these binaries with nextest's reuse-build options, never unpacking the archive themselves.
/// The part's tar is written from the archive's own entries (mtimes zeroed, so an identical
/// rebuild hashes the same); the part is placed at the build machine's target directory.
/// With `extract`, its files are also unpacked under `scratch` for local hosts, once per
/// content: an unchanged rebuild finds them there and writes nothing.
fn nextest_target(archive: &Path, scratch: &Path, extract: bool) -> Result<Part, StageError> {
    let extract_err = |source| StageError::Extract {
        path: archive.display().to_string(),
        source,
    };
    let (tar, meta) = target_tar(archive).map_err(extract_err)?;
    let target_dir = build_target_dir(archive, meta.as_deref())?;
    let mut p = part("target", tar, Some(target_dir), None);
    if extract {
        p.local = Some(extract_once(&p, scratch).map_err(extract_err)?);
    }
    Ok(p)
}

/// The archive's files under `target/` as a tar of regular files with zeroed mtimes, and the
/// bytes of its `nextest/binaries-metadata.json`.
///
/// On the way from the build to the hosts' first tests, so files stream from the decoder
/// straight into an output sized ahead (no copy per file, no regrowth of tens of megabytes).
fn target_tar(archive: &Path) -> std::io::Result<(Vec<u8>, Option<Vec<u8>>)> {
    use std::io::Read;
    let file = std::fs::File::open(archive)?;
    // The fastest zstd level packs a build to about a third: four times the archive holds
    // it, and the pages beyond what is written are never touched.
    let room = file.metadata()?.len().saturating_mul(4).min(1 << 34) as usize;
    let mut input = tar::Archive::new(zstd::Decoder::new(file)?);
    let mut output = tar::Builder::new(Vec::with_capacity(room));
    let mut meta = None;
    for entry in input.entries()? {
        let mut entry = entry?;
        let Some(rel) = inside_target(&entry.path()?) else {
            continue;
        };
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_gnu_sparse()) {
            continue;
        }
        let mode = entry.header().mode()? & 0o7777;
        let mut header = tar::Header::new_gnu();
        header.set_mode(mode);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        // nextest writes mostly-zero binaries as GNU sparse entries: the size the reader
        // gives is the whole file's, and reading expands them.
        header.set_size(entry.size());
        if rel == Path::new(METADATA) {
            let mut data = Vec::with_capacity(entry.size() as usize);
            entry.read_to_end(&mut data)?;
            output.append_data(&mut header, &rel, data.as_slice())?;
            meta = Some(data);
        } else {
            output.append_data(&mut header, &rel, &mut entry)?;
        }
    }
    let mut tar = output.into_inner()?;
    tar.shrink_to_fit();
    Ok((tar, meta))
}

/// Where nextest's archive keeps the build's metadata, inside `target/`.
const METADATA: &str = "nextest/binaries-metadata.json";

/// `scratch/target-<hash>` holding the part's files, unpacked only when it is not there yet
/// (into a temporary directory renamed into place, so a directory with that name is always
/// complete). Older `target-*` directories go: they held other builds.
fn extract_once(p: &Part, scratch: &Path) -> std::io::Result<PathBuf> {
    let name = format!("target-{}", &p.hash[..16]);
    let dir = scratch.join(&name);
    std::fs::create_dir_all(scratch)?;
    if !dir.is_dir() {
        let tmp = scratch.join(format!("{name}.tmp-{}", std::process::id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        let mut archive = tar::Archive::new(p.tar.as_slice());
        archive.set_preserve_mtime(false);
        archive.unpack(&tmp)?;
        if std::fs::rename(&tmp, &dir).is_err() {
            // Another run put the same files there first.
            std::fs::remove_dir_all(&tmp)?;
        }
    }
    for old in std::fs::read_dir(scratch)?.flatten() {
        let n = old.file_name().to_string_lossy().into_owned();
        // Another run may still be unpacking into its temporary directory: only an old one
        // (left by a run that died) goes.
        let unpacking = n.contains(".tmp-") && !older_than(&old.path(), 3600);
        if n.starts_with("target-") && n != name && !unpacking {
            let _ = std::fs::remove_dir_all(old.path());
        }
    }
    Ok(dir)
}

fn older_than(path: &Path, secs: u64) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age.as_secs() > secs)
}

/// `target/a/b` → `a/b`; nothing for paths outside `target/` or that climb out of it.
fn inside_target(path: &Path) -> Option<PathBuf> {
    let rel = path.strip_prefix("target").ok()?;
    let plain = rel
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    (plain && !rel.as_os_str().is_empty()).then(|| rel.to_path_buf())
}

/// The target directory the archive was built in, as its binaries-metadata records it.
fn build_target_dir(archive: &Path, meta: Option<&[u8]>) -> Result<String, StageError> {
    let err = |reason: String| StageError::Metadata {
        path: archive.display().to_string(),
        reason,
    };
    let text = meta.ok_or_else(|| err(format!("no target/{METADATA} in it")))?;
    let meta: serde_json::Value = serde_json::from_slice(text).map_err(|e| err(e.to_string()))?;
    meta["rust-build-meta"]["target-directory"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| err("no rust-build-meta.target-directory".into()))
}

/// Each part's place for shards rooted at `root` (what [`crate::discover::ShardCtx::places`]
/// holds); `local` uses the files where they already are on this machine when it can.
pub fn places(parts: &[Part], root: &str, local: bool) -> BTreeMap<String, String> {
    parts
        .iter()
        .map(|p| {
            let place = match (&p.local, local) {
                (Some(dir), true) => dir.display().to_string(),
                _ => p.place(root),
            };
            (p.name.clone(), place)
        })
        .collect()
}

/// One tar of `parts`, each under `<name>/`: for shards that get them copied into their root.
pub fn under_root(parts: &[&Part]) -> Result<Vec<u8>, StageError> {
    let err = |source| super::payload::PayloadError {
        path: "<tar>".into(),
        source,
    };
    let mut out = tar::Builder::new(Vec::new());
    for p in parts {
        let mut archive = tar::Archive::new(p.tar.as_slice());
        for entry in archive.entries().map_err(err)? {
            let mut entry = entry.map_err(err)?;
            let mut header = entry.header().clone();
            let path = format!("{}/{}", p.name, entry.path().map_err(err)?.display());
            out.append_data(&mut header, path, &mut entry).map_err(err)?;
        }
    }
    Ok(out.into_inner().map_err(err)?)
}

pub use crate::units::human_bytes;

#[cfg(test)]
mod tests {
    use super::*;

    fn names(tar: &[u8]) -> Vec<String> {
        let mut archive = tar::Archive::new(tar);
        archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn uploads_split_into_parts_by_place_with_stable_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("ws");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("sub/a.rs"), "A").unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/x.test"), "X").unwrap();
        let uploads = vec![
            Upload::File {
                src: dir.path().join("bin/x.test"),
                dest: "bin/x.test".into(),
                mode: 0o755,
            },
            Upload::Tree {
                src: src.clone(),
                files: vec!["sub/a.rs".into()],
                dest: "src".into(),
            },
        ];
        let (parts, rest) = parts(&uploads, dir.path()).unwrap();
        assert!(rest.is_empty());
        let by_name: BTreeMap<_, _> = parts.iter().map(|p| (p.name.as_str(), p)).collect();
        assert_eq!(names(&by_name["src"].tar), ["sub/a.rs"]);
        assert_eq!(by_name["src"].build_path.as_deref(), Some(src.to_str().unwrap()));
        assert_eq!(names(&by_name["bin"].tar), ["x.test"]);
        assert_eq!(
            by_name["bin"].local.as_deref(),
            Some(dir.path().join("bin").as_path())
        );
        assert_eq!(by_name["bin"].place("/r/"), "/r/bin");

        let (again, _) = super::parts(&uploads, dir.path()).unwrap();
        assert_eq!(again[0].hash, parts[0].hash);
        std::fs::write(src.join("sub/a.rs"), "B").unwrap();
        let (edited, _) = super::parts(&uploads, dir.path()).unwrap();
        let hash = |ps: &[Part], n: &str| ps.iter().find(|p| p.name == n).unwrap().hash.clone();
        assert_ne!(hash(&edited, "src"), hash(&parts, "src"));
        assert_eq!(hash(&edited, "bin"), hash(&parts, "bin"));
    }

    #[test]
    fn parts_copied_into_a_root_sit_under_their_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t"), "T").unwrap();
        let uploads = [Upload::File {
            src: dir.path().join("t"),
            dest: "tools/t".into(),
            mode: 0o755,
        }];
        let (parts, _) = parts(&uploads, dir.path()).unwrap();
        assert_eq!(
            names(&under_root(&parts.iter().collect::<Vec<_>>()).unwrap()),
            ["tools/t"]
        );
    }

    /// A nextest-like archive whose test binary holds `bin`, and the upload naming it.
    fn archive(dir: &Path, bin: &[u8], mtime: u64) -> Upload {
        let meta = br#"{"rust-build-meta":{"target-directory":"/w/ws/target"}}"#;
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in [
            ("target/nextest/binaries-metadata.json", &meta[..]),
            ("target/debug/deps/t-1", bin),
            ("other/outside", b"X"),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o755);
            h.set_mtime(mtime);
            h.set_cksum();
            b.append_data(&mut h, path, data).unwrap();
        }
        let archive = dir.join("archive.tar.zst");
        let packed = zstd::encode_all(b.into_inner().unwrap().as_slice(), 0).unwrap();
        std::fs::write(&archive, packed).unwrap();
        Upload::File {
            src: archive,
            dest: crate::discover::nextest::ARCHIVE_DEST.into(),
            mode: 0o644,
        }
    }

    #[test]
    fn the_nextest_archive_becomes_the_target_part_at_the_build_target_dir() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = [archive(dir.path(), b"BIN", 9)];
        let (parts, _) = parts(&uploads, &dir.path().join("stage")).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].name, "target");
        assert_eq!(parts[0].build_path.as_deref(), Some("/w/ws/target"));
        assert_eq!(
            names(&parts[0].tar),
            ["nextest/binaries-metadata.json", "debug/deps/t-1"]
        );
        let local = parts[0].local.clone().unwrap();
        assert_eq!(std::fs::read(local.join("debug/deps/t-1")).unwrap(), b"BIN");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(local.join("debug/deps/t-1"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
    }

    #[test]
    fn a_sparse_binary_in_the_archive_becomes_its_whole_file_in_the_target_part() {
        fn octal(field: &mut [u8; 12], n: u64) {
            field.copy_from_slice(format!("{n:011o}\0").as_bytes());
        }
        // As nextest writes a mostly-zero binary: 4 bytes of data at offset 8 of 16.
        let mut h = tar::Header::new_gnu();
        h.set_path("target/debug/deps/sparse-1").unwrap();
        h.set_entry_type(tar::EntryType::GNUSparse);
        h.set_mode(0o755);
        h.set_size(4);
        let gnu = h.as_gnu_mut().unwrap();
        octal(&mut gnu.sparse[0].offset, 8);
        octal(&mut gnu.sparse[0].numbytes, 4);
        // The map ends at the file's end.
        octal(&mut gnu.sparse[1].offset, 16);
        octal(&mut gnu.sparse[1].numbytes, 0);
        octal(&mut gnu.realsize, 16);
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&h, &b"DATA"[..]).unwrap();
        let meta = br#"{"rust-build-meta":{"target-directory":"/w/ws/target"}}"#;
        let mut m = tar::Header::new_gnu();
        m.set_size(meta.len() as u64);
        m.set_mode(0o644);
        m.set_cksum();
        b.append_data(&mut m, "target/nextest/binaries-metadata.json", &meta[..])
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("archive.tar.zst");
        std::fs::write(
            &archive,
            zstd::encode_all(b.into_inner().unwrap().as_slice(), 0).unwrap(),
        )
        .unwrap();
        let (tar, meta_read) = super::target_tar(&archive).unwrap();
        assert_eq!(meta_read.as_deref(), Some(&meta[..]));
        let mut read = tar::Archive::new(tar.as_slice());
        let mut files = std::collections::BTreeMap::new();
        for entry in read.entries().unwrap() {
            let mut entry = entry.unwrap();
            assert_eq!(entry.header().entry_type(), tar::EntryType::Regular);
            let path = entry.path().unwrap().display().to_string();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            files.insert(path, data);
        }
        assert_eq!(
            files.get("debug/deps/sparse-1").map(Vec::as_slice),
            Some(&b"\0\0\0\0\0\0\0\0DATA\0\0\0\0"[..])
        );
        assert_eq!(files.len(), 2);
    }

    #[test]
    fn an_unchanged_archive_is_unpacked_once_and_a_changed_one_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let stage = dir.path().join("stage");
        let first = parts(&[archive(dir.path(), b"BIN", 9)], &stage).unwrap().0;
        let local = first[0].local.clone().unwrap();
        // Marks the unpacked file: only a second unpacking would undo this.
        std::fs::write(local.join("debug/deps/t-1"), "MARK").unwrap();
        // Rebuilt with the same bytes at another time: same part, nothing written.
        let again = parts(&[archive(dir.path(), b"BIN", 99)], &stage).unwrap().0;
        assert_eq!(again[0].hash, first[0].hash);
        assert_eq!(again[0].local.as_deref(), Some(local.as_path()));
        assert_eq!(std::fs::read(local.join("debug/deps/t-1")).unwrap(), b"MARK");

        let changed = parts(&[archive(dir.path(), b"NEW", 99)], &stage).unwrap().0;
        assert_ne!(changed[0].hash, first[0].hash);
        let new_local = changed[0].local.clone().unwrap();
        assert_eq!(std::fs::read(new_local.join("debug/deps/t-1")).unwrap(), b"NEW");
        assert!(!local.exists(), "the other build's files are removed");
    }

    #[test]
    fn without_a_local_host_the_archive_is_not_unpacked() {
        let dir = tempfile::tempdir().unwrap();
        let stage = dir.path().join("stage");
        let (parts, _) = parts_in(&[archive(dir.path(), b"BIN", 9)], &stage, false, &[]).unwrap();
        assert!(parts[0].local.is_none());
        assert!(!stage.exists());
        assert_eq!(names(&parts[0].tar)[1], "debug/deps/t-1");
    }

    #[test]
    fn an_archive_without_build_metadata_is_one_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        b.append_data(&mut h, "target/debug/x", &b"X"[..]).unwrap();
        let path = dir.path().join("a.tar.zst");
        std::fs::write(
            &path,
            zstd::encode_all(b.into_inner().unwrap().as_slice(), 0).unwrap(),
        )
        .unwrap();
        let uploads = [Upload::File {
            src: path,
            dest: crate::discover::nextest::ARCHIVE_DEST.into(),
            mode: 0o644,
        }];
        let err = parts_in(&uploads, dir.path(), false, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no target/nextest/binaries-metadata.json"), "{err}");
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(6_600_000), "6.6 MB");
        assert_eq!(human_bytes(3_200_000_000), "3.2 GB");
    }

    #[test]
    fn nested_places_get_their_mountpoint_in_the_outer_tree() {
        let mut parts = vec![
            part(
                "src",
                super::super::payload::pack(&[]).unwrap(),
                Some("/w/ws".into()),
                None,
            ),
            part("target", Vec::new(), Some("/w/ws/target".into()), None),
        ];
        add_mountpoints(&mut parts, &[]).unwrap();
        assert_eq!(names(&parts[0].tar), ["target/"]);
        // The sources told before the build, with the target's place still to come: the
        // same bytes, so what was staged during the build is the part the shards mount.
        let mut early = vec![part(
            "src",
            super::super::payload::pack(&[]).unwrap(),
            Some("/w/ws".into()),
            None,
        )];
        add_mountpoints(&mut early, &["/w/ws/target/".into(), "/w/ws/target".into()]).unwrap();
        assert_eq!(early[0].hash, parts[0].hash);
        let mut elsewhere = vec![part(
            "src",
            super::super::payload::pack(&[]).unwrap(),
            Some("/w/ws".into()),
            None,
        )];
        add_mountpoints(&mut elsewhere, &["/w/other/target".into()]).unwrap();
        assert!(names(&elsewhere[0].tar).is_empty());
    }

    #[test]
    fn reserved_paths_fall_back_to_the_shard_root() {
        let mut parts = vec![
            part("src", Vec::new(), Some("/usr/lib/app".into()), None),
            part("target", Vec::new(), Some("/work/ws/target".into()), None),
            part("x", Vec::new(), Some("/cargo-shard/x".into()), None),
        ];
        let lines = fall_back_reserved(&mut parts);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].starts_with("note: src (/usr/lib/app) is under a directory"),
            "{}",
            lines[0]
        );
        assert_eq!(parts[0].place("/cargo-shard"), "/cargo-shard/src");
        assert_eq!(parts[1].place("/cargo-shard"), "/work/ws/target");
    }

    #[test]
    fn below_shared_directories_a_part_keeps_its_path_but_never_at_or_above_them() {
        for usable in [
            "/usr/share/gocode/src/gopkg.in/check.v1",
            "/usr/src/app",
            "/var/lib/jenkins/workspace/proj",
            "/home/ci/proj",
            "/work/ws",
        ] {
            assert_eq!(unusable(usable), None, "{usable}");
        }
        for refused in [
            "/usr",
            "/usr/share",
            "/usr/local",
            "/var",
            "/var/lib",
            "/home/",
            "/usr/bin/x",
            "/usr/local/lib/x",
            "/etc/app",
            "/tmp/ws",
            "/var/run/x",
            "/lib64",
        ] {
            assert!(unusable(refused).is_some(), "{refused}");
        }
    }
}
