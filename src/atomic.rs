//! Writing a file so that no reader, and no interrupted run, ever sees half of it: write a
//! temporary file beside it, then rename it into place.

use std::io::Write;
use std::path::Path;

/// Writes whatever `fill` produces to `path` atomically, creating the directory if needed.
/// The file gets the usual `0644` mode, not the temporary file's private one.
pub fn write_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    {
        let mut out = std::io::BufWriter::new(tmp.as_file());
        fill(&mut out)?;
        out.flush()?;
    }
    tmp.as_file().sync_all()?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Writes `data` to `path` atomically.
pub fn write(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write_with(path, |out| out.write_all(data))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_the_file_whole_with_a_readable_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/report.xml");
        super::write(&path, b"old").unwrap();
        super::write(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        // Nothing but the file itself is left in the directory.
        assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_fill_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.xml");
        super::write(&path, b"old").unwrap();
        let err = super::write_with(&path, |_| Err(std::io::Error::other("disk full"))).unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
