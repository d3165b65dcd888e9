//! Writing a file so that no reader, and no interrupted run, ever sees half of it: write a
//! temporary file beside it, then rename it into place.

#![warn(missing_docs)]

use std::io::Write;
use std::path::Path;

/// Writes whatever `fill` produces to `path` atomically, creating the directory if needed.
/// The file gets the mode a plain create would (`0666` less the umask), not the temporary
/// file's private `0600`.
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
        .set_permissions(std::fs::Permissions::from_mode(0o666 & !umask()))?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The process's umask, read from `/proc/self/status` (setting it to read it would race with
/// files other threads create); `022` where that is not available.
fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
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
    fn the_mode_follows_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junit.xml");
        // nextest runs each test in its own process: the umask is ours to change.
        let old = unsafe { libc::umask(0o077) };
        super::write(&path, b"private").unwrap();
        let private = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        unsafe { libc::umask(0o002) };
        super::write(&path, b"shared").unwrap();
        let shared = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        unsafe { libc::umask(old) };
        assert_eq!((private, shared), (0o600, 0o664));
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
