//! The per-host payload cache: one Docker volume per content-addressed part, filled once
//! through a created-but-never-started helper container (which then holds the run's parts
//! until the run's cleanup removes it), verified by a completion marker written last, and
//! evicted least-recently-used beyond the host's `cache_size`.
//!
//! Everything a warm run asks is a stat (`HEAD` on the archive API): Docker answers it
//! without the process it spawns to pack an archive, which under load cost more than the
//! rest of staging. So the marker is a symlink whose target is the part's hash, and last use
//! is one empty stamp file per volume (`used/<volume>` in an index volume; volume labels
//! cannot change after creation), its mtime the last use, rewritten only when more than
//! [`USE_GRANULARITY`] old. The stamps are read as a whole only to evict. They serve every
//! build machine that uses the host; concurrent runs may race on them, and the worst case is
//! an entry evicted early and uploaded again, never a wrong one used.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use bollard::errors::Error as BollardError;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType, MountVolumeOptions};
use bollard::query_parameters::{
    ContainerArchiveInfoOptions, CreateContainerOptions, ListVolumesOptions, RemoveVolumeOptions,
};

use super::{CLEANUP, DockerEngine};
use crate::config::{CACHE_LABEL, CACHE_SIZE_LABEL, RUN_LABEL};
use crate::engine::EngineError;

/// Written into a part's volume after all its files, holding the part's hash.
pub const MARKER: &str = ".cargo-shard-complete";
/// The volume holding the last-use stamps.
pub const INDEX_VOLUME: &str = "cargo-shard-cache-index";
/// The index volume's directory of stamps: one empty file per cache volume, its mtime the
/// volume's last use.
const USED_DIR: &str = "used";
/// How stale a part's recorded last use may get before a run rewrites the index: eviction
/// order only needs coarse times, and an unchanged run then writes nothing.
const USE_GRANULARITY: u64 = 600;

/// A part to stage: its hash names the volume.
#[derive(Debug, Clone)]
pub struct CachePart {
    /// The part's sha256 in hex: it names the volume and is what the marker holds.
    pub hash: String,
    /// The part as a tar archive, shared between the hosts it is staged on.
    pub tar: Arc<Vec<u8>>,
}

/// What staging cost on one host.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StageStats {
    /// Part bytes sent to the host.
    pub uploaded_bytes: u64,
    /// Part bytes already there, verified by their marker.
    pub cached_bytes: u64,
    /// Cache volumes removed to stay within the size limit.
    pub evicted: Vec<String>,
    /// How long staging took on this host.
    #[serde(serialize_with = "crate::units::serialize_secs")]
    pub time: std::time::Duration,
    /// The parts sent (hash → bytes), so that a later stage of the same run can tell which
    /// of the parts it finds in the cache this run sent there itself.
    #[serde(skip)]
    pub sent: BTreeMap<String, u64>,
}

impl StageStats {
    /// `73.2 MB uploaded, 0 B from cache in 1.23s` (plus what was evicted, if anything).
    pub fn describe(&self) -> String {
        let bytes = crate::units::human_bytes;
        let mut line = format!(
            "{} uploaded, {} from cache in {:.2}s",
            bytes(self.uploaded_bytes),
            bytes(self.cached_bytes),
            self.time.as_secs_f64()
        );
        if !self.evicted.is_empty() {
            line.push_str(&format!("; evicted {} old part(s)", self.evicted.len()));
        }
        line
    }
}

/// The volume that holds part `hash` on every host.
pub fn volume_name(hash: &str) -> String {
    format!("cargo-shard-cache-{}", &hash[..hash.len().min(40)])
}

impl DockerEngine {
    /// Makes every part present and verified on this host, uploading only those without a
    /// valid marker, then records their use and evicts beyond `limit` bytes.
    pub async fn stage(
        &self,
        parts: &[CachePart],
        image: &str,
        run_id: &str,
        limit: u64,
    ) -> Result<StageStats, EngineError> {
        let t = Instant::now();
        let (sizes, id) = tokio::join!(self.cache_volumes(), self.helper(parts, image, run_id));
        let id = id?;
        let sizes = match sizes {
            Ok(s) => s,
            Err(e) => {
                let _ = tokio::time::timeout(CLEANUP, self.remove(&id)).await;
                return Err(e);
            }
        };
        // The helper stays until the run's cleanup removes it (it carries the run label): while
        // it exists, Docker refuses to remove the volumes it mounts, so another run's eviction
        // cannot take a part from under this run's shards.
        let mut filling = Vec::new();
        let result = self.fill(&id, parts, sizes, limit, &mut filling).await;
        if result.is_err() {
            let _ = tokio::time::timeout(CLEANUP, self.remove(&id)).await;
            let _ = tokio::time::timeout(CLEANUP, self.drop_unfinished(&filling)).await;
        }
        let mut stats = result?;
        stats.time = t.elapsed();
        Ok(stats)
    }

    /// Fills the parts whose marker is not theirs; on an error `filling` names the volumes
    /// whose fill did not complete.
    async fn fill(
        &self,
        id: &str,
        parts: &[CachePart],
        mut sizes: BTreeMap<String, u64>,
        limit: u64,
        filling: &mut Vec<String>,
    ) -> Result<StageStats, EngineError> {
        let mut stats = StageStats::default();
        for p in parts {
            sizes.insert(volume_name(&p.hash), p.tar.len() as u64);
        }
        let names: Vec<String> = parts.iter().map(|p| volume_name(&p.hash)).collect();
        // Every marker and every last-use stamp at once, as stats: no archive is read (Docker
        // spawns a process for each archive it packs), so a warm cache costs a few requests.
        let markers = parts
            .iter()
            .enumerate()
            .map(|(i, _)| self.marker(id, format!("/p/{i}")));
        let stamps = names.iter().map(|n| self.stamp(id, n));
        let (markers, stamps) = tokio::join!(
            futures_util::future::try_join_all(markers),
            futures_util::future::try_join_all(stamps)
        );
        let (markers, stamps) = (markers?, stamps?);
        let mut fills = Vec::new();
        for ((i, p), marker) in parts.iter().enumerate().zip(markers) {
            let size = p.tar.len() as u64;
            if marker.as_deref() == Some(p.hash.as_str()) {
                stats.cached_bytes += size;
            } else {
                stats.uploaded_bytes += size;
                stats.sent.insert(p.hash.clone(), size);
                filling.push(volume_name(&p.hash));
                fills.push(self.fill_one(id, format!("/p/{i}"), p));
            }
        }
        // Every fill runs to its end, so that `filling` keeps only those that failed.
        let mut failed = None;
        for (name, r) in filling
            .clone()
            .iter()
            .zip(futures_util::future::join_all(fills).await)
        {
            match r {
                Ok(()) => filling.retain(|n| n != name),
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        let now = now_secs();
        let stale = stale(&names, &stamps, now);
        stats.evicted = self.record_use(id, &names, &stale, &sizes, limit, now).await?;
        Ok(stats)
    }

    /// Uploads one part into its volume (mounted at `dir`), then its marker: a symlink whose
    /// target is the part's hash, so that a stat reads it. The marker goes last: a fill cut
    /// short leaves a volume without one, refilled (every file of the part overwritten) by
    /// the next run that needs it.
    async fn fill_one(&self, id: &str, dir: String, p: &CachePart) -> Result<(), EngineError> {
        self.upload(
            id,
            &dir,
            bytes::Bytes::from_owner(super::SharedPayload(p.tar.clone())),
        )
        .await?;
        let marker = marker_tar(&p.hash).map_err(|e| self.local(e))?;
        self.upload(id, &dir, marker.into()).await
    }

    /// Removes the volumes of fills that failed: a half-filled volume is never used, but it
    /// keeps its bytes, and on a host whose disk filled up it would keep the disk full for
    /// every later run and container. One another run still holds (409) is that run's.
    async fn drop_unfinished(&self, volumes: &[String]) {
        for name in volumes {
            let _ = self
                .docker
                .remove_volume(name, Some(RemoveVolumeOptions { force: false }))
                .await;
        }
    }

    /// The hash a part's volume (mounted at `dir` in the helper) says it completely holds.
    async fn marker(&self, id: &str, dir: String) -> Result<Option<String>, EngineError> {
        let stat = self.stat(id, &format!("{dir}/{MARKER}")).await?;
        Ok(stat.and_then(|s| marker_hash(&s.link_target)))
    }

    /// When volume `name` was last used, from its stamp's mtime in the index volume.
    async fn stamp(&self, id: &str, name: &str) -> Result<Option<u64>, EngineError> {
        let stat = self.stat(id, &format!("/index/{USED_DIR}/{name}")).await?;
        Ok(stat
            .and_then(|s| s.modification_time)
            .and_then(|t| rfc3339_secs(&t)))
    }

    /// What Docker says of `path` in container `id` (a HEAD request), `None` if it is absent.
    async fn stat(
        &self,
        id: &str,
        path: &str,
    ) -> Result<Option<bollard::container::PathStatResponse>, EngineError> {
        let opts = ContainerArchiveInfoOptions {
            path: path.to_string(),
        };
        match self.docker.get_container_archive_info(id, Some(opts)).await {
            Ok(s) => Ok(Some(s)),
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(e) => Err(self.failed(&format!("stat {path}"), e)),
        }
    }

    /// Every stamp in the index volume: volume name → last use (read only to evict).
    async fn all_stamps(&self, id: &str) -> Result<BTreeMap<String, u64>, EngineError> {
        let Some(tar) = self.download(id, &format!("/index/{USED_DIR}")).await? else {
            return Ok(BTreeMap::new());
        };
        Ok(stamps_in(&tar))
    }

    /// Stamps `stale` (this run's volumes whose last use is older than [`USE_GRANULARITY`]),
    /// and evicts the least recently used other volumes while the cache is over `limit`. A
    /// volume in use by a running shard of another run cannot be removed: it is left for
    /// later.
    async fn record_use(
        &self,
        id: &str,
        names: &[String],
        stale: &[String],
        sizes: &BTreeMap<String, u64>,
        limit: u64,
        now: u64,
    ) -> Result<Vec<String>, EngineError> {
        if !stale.is_empty() {
            let tar = stamps_tar(stale, now).map_err(|e| self.local(e))?;
            self.upload(id, "/index", tar.into()).await?;
        }
        if sizes.values().sum::<u64>() <= limit {
            return Ok(Vec::new());
        }
        let mut used = self.all_stamps(id).await?;
        for name in names {
            used.insert(name.clone(), now);
        }
        let mut evicted = Vec::new();
        for name in eviction_order(sizes, &used, names, limit) {
            match self
                .docker
                .remove_volume(&name, Some(RemoveVolumeOptions { force: false }))
                .await
            {
                Ok(()) | Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => {
                    evicted.push(name);
                }
                Err(BollardError::DockerResponseServerError { status_code: 409, .. }) => {}
                Err(e) => return Err(self.failed(&format!("remove cache volume {name}"), e)),
            }
        }
        Ok(evicted)
    }

    /// Cache volume name → size in bytes (from its label).
    async fn cache_volumes(&self) -> Result<BTreeMap<String, u64>, EngineError> {
        let filters = HashMap::from([("label".to_string(), vec![CACHE_LABEL.to_string()])]);
        let list = self
            .docker
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(|e| self.failed("list cache volumes", e))?;
        Ok(list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| {
                let size = v
                    .labels
                    .get(CACHE_SIZE_LABEL)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                (v.name, size)
            })
            .collect())
    }

    /// A container that is never started: uploads and downloads through it reach the
    /// volumes it mounts. It carries the run label, so the run's cleanup and `gc` find it.
    /// Docker creates a missing volume with the mount's labels as it creates the container,
    /// so no other run can remove it in between.
    async fn helper(&self, parts: &[CachePart], image: &str, run_id: &str) -> Result<String, EngineError> {
        let mount = |volume: String, target: String, hash: &str, size: u64| Mount {
            target: Some(target),
            source: Some(volume),
            typ: Some(MountType::VOLUME),
            volume_options: Some(MountVolumeOptions {
                labels: Some(HashMap::from([
                    (CACHE_LABEL.to_string(), hash.to_string()),
                    (CACHE_SIZE_LABEL.to_string(), size.to_string()),
                ])),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut mounts: Vec<Mount> = parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                mount(
                    volume_name(&p.hash),
                    format!("/p/{i}"),
                    &p.hash,
                    p.tar.len() as u64,
                )
            })
            .collect();
        mounts.push(mount(INDEX_VOLUME.to_string(), "/index".to_string(), "index", 0));
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            entrypoint: Some(vec!["true".to_string()]),
            labels: Some(HashMap::from([(RUN_LABEL.to_string(), run_id.to_string())])),
            host_config: Some(HostConfig {
                network_mode: Some("none".to_string()),
                mounts: Some(mounts),
                ..Default::default()
            }),
            ..Default::default()
        };
        // Named by its parts: a run stages twice (its sources during the build, then the rest).
        let hashes: Vec<&[u8]> = parts.iter().map(|p| p.hash.as_bytes()).collect();
        let which = format!("{:08x}", crate::hash::fnv1a(&hashes) as u32);
        let opts = CreateContainerOptions {
            name: Some(format!("cargo-shard-{run_id}-stage-{which}")),
            ..Default::default()
        };
        self.docker
            .create_container(Some(opts), body)
            .await
            .map(|r| r.id)
            .map_err(|e| self.create_failed(e, image, "create the staging container"))
    }

    /// Removes every cache volume (`gc --cache`) except those a running run still holds
    /// (Docker answers 409): they are that run's, and go with a later `gc --cache`.
    pub async fn remove_cache(&self) -> Result<Vec<String>, EngineError> {
        let mut removed = Vec::new();
        for name in self.cache_volumes().await?.into_keys() {
            match self
                .docker
                .remove_volume(&name, Some(RemoveVolumeOptions { force: true }))
                .await
            {
                Ok(()) | Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => {
                    removed.push(name)
                }
                Err(BollardError::DockerResponseServerError { status_code: 409, .. }) => {}
                Err(e) => return Err(self.failed(&format!("remove cache volume {name}"), e)),
            }
        }
        Ok(removed)
    }

    fn local(&self, e: std::io::Error) -> EngineError {
        EngineError::Shard {
            host: self.name.clone(),
            reason: format!("pack: {e}"),
            cause: None,
        }
    }
}

/// Whether the cache volume `name` holds a payload part: the index of last uses and the probe
/// answers carry the cache label too (so `gc --cache` removes them) but hold none.
pub fn holds_a_part(name: &str) -> bool {
    name != INDEX_VOLUME && !name.starts_with(super::PROBE_PREFIX)
}

/// Volumes to remove, least recently used first, until the total is within `limit`. Those in
/// `keep` (this run's) are never chosen; a volume missing from `used` counts as oldest.
pub fn eviction_order(
    sizes: &BTreeMap<String, u64>,
    used: &BTreeMap<String, u64>,
    keep: &[String],
    limit: u64,
) -> Vec<String> {
    let mut total: u64 = sizes.values().sum();
    let mut candidates: Vec<(&String, u64, u64)> = sizes
        .iter()
        .filter(|(name, _)| !keep.contains(name) && holds_a_part(name))
        .map(|(name, size)| (name, *size, used.get(name).copied().unwrap_or(0)))
        .collect();
    candidates.sort_by_key(|(name, _, last)| (*last, (*name).clone()));
    let mut out = Vec::new();
    for (name, size, _) in candidates {
        if total <= limit {
            break;
        }
        total = total.saturating_sub(size);
        out.push(name.clone());
    }
    out
}

/// Those of `names` whose last use (`stamps`, in the same order) is unknown or at least
/// [`USE_GRANULARITY`] old.
fn stale(names: &[String], stamps: &[Option<u64>], now: u64) -> Vec<String> {
    names
        .iter()
        .zip(stamps)
        .filter(|(_, t)| t.is_none_or(|t| now.saturating_sub(t) >= USE_GRANULARITY))
        .map(|(n, _)| n.clone())
        .collect()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Seconds since the epoch of Docker's `2026-12-01T23:15:02.123456789Z`; `None` for anything
/// else (a stamp that cannot be read counts as stale and is rewritten).
fn rfc3339_secs(text: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339_weak(text).ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs())
}

/// The marker: a symlink `MARKER -> <hash>`.
fn marker_tar(hash: &str) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    b.append_link(&mut h, MARKER, hash)?;
    b.into_inner()
}

/// The hash a marker's target names: Docker reports it resolved inside the container
/// (`/p/0/<hash>`).
fn marker_hash(link_target: &str) -> Option<String> {
    let last = link_target.rsplit('/').next()?;
    (!last.is_empty()).then(|| last.to_string())
}

/// Empty files `used/<name>` dated `now`, for the index volume.
fn stamps_tar(names: &[String], now: u64) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for name in names {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(0);
        h.set_mode(0o644);
        h.set_mtime(now);
        b.append_data(&mut h, format!("{USED_DIR}/{name}"), std::io::empty())?;
    }
    b.into_inner()
}

/// Volume name → mtime of each stamp in a tar of the `used` directory.
fn stamps_in(tar: &[u8]) -> BTreeMap<String, u64> {
    let mut archive = tar::Archive::new(tar);
    let Ok(entries) = archive.entries() else {
        return BTreeMap::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.header().entry_type().is_file())
        .filter_map(|e| {
            let path = e.path().ok()?;
            let name = path.file_name()?.to_string_lossy().into_owned();
            Some((name, e.header().mtime().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_until_within_limit_never_this_runs() {
        let sizes = BTreeMap::from([
            ("a".to_string(), 40),
            ("b".to_string(), 30),
            ("c".to_string(), 20),
            ("mine".to_string(), 50),
            (INDEX_VOLUME.to_string(), 0),
            (format!("{}0123", super::super::PROBE_PREFIX), 0),
        ]);
        let used = BTreeMap::from([("a".to_string(), 300), ("b".to_string(), 100)]);
        let keep = ["mine".to_string()];
        // 140 in all: c (never recorded) goes first, then b (older than a); the index and
        // a probe answer hold nothing and stay.
        assert_eq!(eviction_order(&sizes, &used, &keep, 100), ["c", "b"]);
        assert!(eviction_order(&sizes, &used, &keep, 140).is_empty());
        assert_eq!(eviction_order(&sizes, &used, &keep, 0), ["c", "b", "a"]);
    }

    #[test]
    fn last_use_is_rewritten_only_past_the_granularity() {
        let names = ["fresh", "recent", "stale"].map(String::from);
        let now = 10_000;
        let stamps = [
            None,
            Some(now - USE_GRANULARITY + 10),
            Some(now - USE_GRANULARITY),
        ];
        assert_eq!(stale(&names, &stamps, now), ["fresh", "stale"]);
        let stamped = [Some(now), Some(now - USE_GRANULARITY + 10), Some(now)];
        assert!(
            stale(&names, &stamped, now + 5).is_empty(),
            "a repeated run within the granularity writes nothing"
        );
    }

    #[test]
    fn stamps_read_back_as_last_use() {
        let names = ["cargo-shard-cache-aa", "cargo-shard-cache-bb"].map(String::from);
        let tar = stamps_tar(&names, 1_700_000_000).unwrap();
        let used = stamps_in(&tar);
        assert_eq!(used.len(), 2);
        assert_eq!(used["cargo-shard-cache-bb"], 1_700_000_000);
        assert_eq!(
            rfc3339_secs("2023-11-14T22:13:20.123456789Z"),
            Some(1_700_000_000)
        );
        assert_eq!(rfc3339_secs("not a time"), None);
    }

    #[test]
    fn the_marker_is_a_link_to_the_hash() {
        let tar = marker_tar("abc123").unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let entry = archive.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(entry.path().unwrap().to_str(), Some(MARKER));
        assert_eq!(entry.link_name().unwrap().unwrap().to_str(), Some("abc123"));
        assert_eq!(marker_hash("/p/0/abc123").as_deref(), Some("abc123"));
        assert_eq!(marker_hash("abc123").as_deref(), Some("abc123"));
        assert_eq!(marker_hash(""), None);
    }

    #[test]
    fn stage_line() {
        let stats = StageStats {
            uploaded_bytes: 73_216_512,
            cached_bytes: 0,
            evicted: vec!["cargo-shard-cache-ab".into()],
            time: std::time::Duration::from_millis(1234),
            ..Default::default()
        };
        insta::assert_snapshot!(stats.describe(), @"73.2 MB uploaded, 0 B from cache in 1.23s; evicted 1 old part(s)");
    }

    #[test]
    fn volume_names_come_from_the_hash() {
        let h = "ab".repeat(32);
        assert_eq!(volume_name(&h), format!("cargo-shard-cache-{}", &h[..40]));
    }
}
