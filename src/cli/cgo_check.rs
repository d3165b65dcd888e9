//! `-race` and `--cgo` build test binaries with cgo here, linked against this machine's C
//! library: they run only where the dynamic loader they name exists. Before any shard
//! starts, each Docker host's image is checked for it, so an image without one (a static
//! busybox or distroless image) is one line naming the host and image, not every test an
//! error saying `no such file or directory`. The C compiler itself is needed only here,
//! where the binaries are built (checked by `go_flags::check_compiler`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::discover::Suite;

use crate::engine::{ContainerSpec, EngineError};
use crate::run::LiveHost;
use crate::shard::{ShardSpec, Upload};

/// The dynamic loader (ELF `PT_INTERP`) the suite's first test binary names; `None` for
/// static binaries or when none can be read.
pub fn loader(suite: &Suite) -> Option<String> {
    suite.uploads.iter().find_map(|u| match u {
        Upload::File { src, .. } => std::fs::read(src).ok().and_then(|b| interpreter(&b)),
        Upload::Tree { .. } => None,
    })
}

/// `PT_INTERP` of a 64-bit little-endian ELF file.
fn interpreter(elf: &[u8]) -> Option<String> {
    const PT_INTERP: u32 = 3;
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let bytes = |o: usize, n: usize| elf.get(o..o.checked_add(n)?);
    let u16_at = |o: usize| Some(u16::from_le_bytes(bytes(o, 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(bytes(o, 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(bytes(o, 8)?.try_into().ok()?) as usize);
    let (phoff, phentsize, phnum) = (u64_at(0x20)?, u16_at(0x36)? as usize, u16_at(0x38)?);
    (0..phnum as usize).find_map(|i| {
        let ph = phoff.checked_add(i.checked_mul(phentsize)?)?;
        if u32_at(ph)? != PT_INTERP {
            return None;
        }
        let (offset, size) = (u64_at(ph + 8)?, u64_at(ph + 32)?);
        let raw = elf.get(offset..offset.checked_add(size)?)?;
        let path = raw.split(|b| *b == 0).next()?;
        Some(String::from_utf8_lossy(path).into_owned())
    })
}

/// `-race`/`--cgo` with hosts whose image lacks the loader the test binaries name (exit 1:
/// the hosts file's image is the input to change).
#[derive(Debug, thiserror::Error)]
#[error(
    "{why} builds test binaries that need the C library's loader {loader}, which the image of {} lacks: use an image with glibc there, or leave out {why}",
    .missing.join(", ")
)]
pub struct CgoError {
    /// The flag that asked for cgo: `-race` or `--cgo`.
    pub why: &'static str,
    /// The loader's path, as the binaries name it.
    pub loader: String,
    /// Each host without it: `NAME (image IMAGE)`.
    pub missing: Vec<String>,
}

/// Every Docker host whose image has no `loader`, as one line; local hosts are this machine.
pub async fn check(
    live: &[LiveHost],
    loader: &str,
    why: &'static str,
    out_dir: &Path,
) -> Result<(), CgoError> {
    // The probes' logs go where the shards' will; a failure to make it shows in the run.
    let _ = std::fs::create_dir_all(out_dir.join("logs"));
    let checks = live
        .iter()
        .filter(|h| !h.engine.is_local())
        .map(|h| async move { (h, image_runs(h, loader, out_dir).await) });
    let missing: Vec<String> = futures_util::future::join_all(checks)
        .await
        .into_iter()
        .filter(|(_, runs)| !runs)
        .map(|(h, _)| format!("{} (image {})", h.host.name, h.host.image))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(CgoError {
        why,
        loader: loader.to_string(),
        missing,
    })
}

/// Runs `LOADER --version` in a throwaway container of the host's image. Only a clear "not
/// there" (the engine cannot start it, or it exits non-zero) counts as missing; an engine
/// failing otherwise is left for the run's own fault handling.
async fn image_runs(host: &LiveHost, loader: &str, out_dir: &Path) -> bool {
    let Ok(root) = host.engine.make_root() else {
        return true;
    };
    let probe = crate::run::new_run_id();
    let job = ContainerSpec {
        name: format!("cargo-shard-{probe}-probe-loader-{}", host.host.name),
        image: host.host.image.clone(),
        network: "none".into(),
        labels: BTreeMap::from([(crate::config::RUN_LABEL.to_string(), probe)]),
        payload: Arc::new(crate::run::payload::pack(&[]).unwrap_or_default()),
        spec: ShardSpec {
            argv: vec![loader.to_string(), "--version".into()],
            workdir: root.clone(),
            ..Default::default()
        },
        log_path: out_dir
            .join("logs")
            .join(format!("probe-loader-{}.log", host.host.name)),
        keep: false,
        root,
        extras: Default::default(),
    };
    match host.engine.run_shard(job, CancellationToken::new()).await {
        Ok(run) => run.collected.exit_code == Some(0),
        Err(EngineError::Shard { .. }) => false,
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loader_is_read_from_a_dynamic_binary_and_static_ones_have_none() {
        // This test binary is linked against the build machine's C library.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let interp = interpreter(&me).expect("a dynamically linked test binary");
        assert!(interp.starts_with('/') && interp.contains("ld-"), "{interp}");
        assert!(Path::new(&interp).exists());
        assert_eq!(interpreter(b"#!/bin/sh\n"), None);
        // An ELF header whose program headers lie beyond the file: no answer, no panic.
        let mut truncated = me[..0x40].to_vec();
        truncated[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(interpreter(&truncated), None);
    }
}
