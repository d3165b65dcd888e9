//! The per-host payload cache: one Docker volume per content-addressed part, filled once
//! through a created-but-never-started helper container (which then holds the run's parts
//! until the run's cleanup removes it), verified by a completion marker written last, and
//! evicted least-recently-used beyond the host's `cache_size`.
//!
//! Volume labels cannot change after creation, so last use is kept in one small file
//! (`lru.json`, hash → seconds since the epoch) in an index volume on the host: read once per
//! run with the helper already there (beside the markers, in one round of requests), and
//! written only when a time in it is more than [`USE_GRANULARITY`] old or something was
//! evicted, it needs no container per volume and serves every build machine that uses the
//! host. Concurrent runs may race on it; the worst
//! case is an entry evicted early and uploaded again, never a wrong one used.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use bollard::errors::Error as BollardError;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType, MountVolumeOptions};
use bollard::query_parameters::{CreateContainerOptions, ListVolumesOptions, RemoveVolumeOptions};

use super::{CLEANUP, DockerEngine, tarball};
use crate::config::{CACHE_LABEL, CACHE_SIZE_LABEL, RUN_LABEL};
use crate::engine::EngineError;

/// Written into a part's volume after all its files, holding the part's hash.
pub const MARKER: &str = ".cargo-shard-complete";
/// The volume holding `lru.json`.
pub const INDEX_VOLUME: &str = "cargo-shard-cache-index";
const INDEX_FILE: &str = "lru.json";
/// How stale a part's recorded last use may get before a run rewrites the index: eviction
/// order only needs coarse times, and an unchanged run then writes nothing.
const USE_GRANULARITY: u64 = 600;

/// A part to stage: its hash names the volume.
#[derive(Debug, Clone)]
pub struct CachePart {
    pub hash: String,
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
    #[serde(serialize_with = "crate::run::outcome::secs")]
    pub time: std::time::Duration,
}

impl StageStats {
    /// `73.2 MB uploaded, 0 B from cache in 1.23s` (plus what was evicted, if anything).
    pub fn describe(&self) -> String {
        let bytes = crate::run::stage::human_bytes;
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
        let result = self.fill(&id, parts, sizes, limit).await;
        if result.is_err() {
            let _ = tokio::time::timeout(CLEANUP, self.remove(&id)).await;
        }
        let mut stats = result?;
        stats.time = t.elapsed();
        Ok(stats)
    }

    async fn fill(
        &self,
        id: &str,
        parts: &[CachePart],
        mut sizes: BTreeMap<String, u64>,
        limit: u64,
    ) -> Result<StageStats, EngineError> {
        let mut stats = StageStats::default();
        for p in parts {
            sizes.insert(volume_name(&p.hash), p.tar.len() as u64);
        }
        // Every marker and the index at once: on a warm cache that is all staging reads.
        let markers = parts
            .iter()
            .enumerate()
            .map(|(i, _)| self.marker(id, format!("/p/{i}")));
        let (markers, used) = tokio::join!(futures_util::future::try_join_all(markers), self.last_use(id));
        let (markers, used) = (markers?, used?);
        let mut fills = Vec::new();
        for ((i, p), marker) in parts.iter().enumerate().zip(markers) {
            let size = p.tar.len() as u64;
            if marker.as_deref() == Some(p.hash.as_str()) {
                stats.cached_bytes += size;
            } else {
                stats.uploaded_bytes += size;
                fills.push(self.fill_one(id, format!("/p/{i}"), p));
            }
        }
        futures_util::future::try_join_all(fills).await?;
        stats.evicted = self.record_use(id, parts, &sizes, used, limit).await?;
        Ok(stats)
    }

    /// Uploads one part into its volume (mounted at `dir`), then its marker. The marker goes
    /// last: a fill cut short leaves a volume without one, refilled (every file of the part
    /// overwritten) by the next run that needs it.
    async fn fill_one(&self, id: &str, dir: String, p: &CachePart) -> Result<(), EngineError> {
        self.upload(
            id,
            &dir,
            bytes::Bytes::from_owner(super::SharedPayload(p.tar.clone())),
        )
        .await?;
        let marker = tarball::files_tar(&[(MARKER.to_string(), p.hash.clone().into_bytes())])
            .map_err(|e| self.local(e))?;
        self.upload(id, &dir, marker.into()).await
    }

    /// The hash a part's volume (mounted at `dir` in the helper) says it completely holds.
    async fn marker(&self, id: &str, dir: String) -> Result<Option<String>, EngineError> {
        let Some(tar) = self.download(id, &format!("{dir}/{MARKER}")).await? else {
            return Ok(None);
        };
        Ok(first_file(&tar).map(|b| String::from_utf8_lossy(&b).trim().to_string()))
    }

    /// The index: volume name → last use, in seconds since the epoch.
    async fn last_use(&self, id: &str) -> Result<BTreeMap<String, u64>, EngineError> {
        let path = format!("/index/{INDEX_FILE}");
        Ok(match self.download(id, &path).await? {
            Some(tar) => first_file(&tar)
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default(),
            None => BTreeMap::new(),
        })
    }

    /// Updates last use of `parts` in the index and evicts the least recently used other
    /// volumes while the cache is over `limit`. A volume in use by a running shard of
    /// another run cannot be removed: it is left for later. The index is written only when
    /// that changes it by more than [`USE_GRANULARITY`].
    async fn record_use(
        &self,
        id: &str,
        parts: &[CachePart],
        sizes: &BTreeMap<String, u64>,
        mut used: BTreeMap<String, u64>,
        limit: u64,
    ) -> Result<Vec<String>, EngineError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let before = used.clone();
        let keep: Vec<String> = parts.iter().map(|p| volume_name(&p.hash)).collect();
        touch(&mut used, &keep, now);
        let mut evicted = Vec::new();
        for name in eviction_order(sizes, &used, &keep, limit) {
            match self
                .docker
                .remove_volume(&name, Some(RemoveVolumeOptions { force: false }))
                .await
            {
                Ok(()) | Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => {
                    used.remove(&name);
                    evicted.push(name);
                }
                Err(BollardError::DockerResponseServerError { status_code: 409, .. }) => {}
                Err(e) => return Err(self.failed(&format!("remove cache volume {name}"), e)),
            }
        }
        used.retain(|name, _| sizes.contains_key(name));
        if used == before {
            return Ok(evicted);
        }
        let json = serde_json::to_vec(&used).unwrap_or_default();
        let tar = tarball::files_tar(&[(INDEX_FILE.to_string(), json)]).map_err(|e| self.local(e))?;
        self.upload(id, "/index", tar.into()).await?;
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
        let opts = CreateContainerOptions {
            name: Some(format!("cargo-shard-{run_id}-stage")),
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
        }
    }
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
        .filter(|(name, _)| !keep.contains(name) && name.as_str() != INDEX_VOLUME)
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

/// Records `now` as the last use of `names`, except where the recorded time is less than
/// [`USE_GRANULARITY`] old.
fn touch(used: &mut BTreeMap<String, u64>, names: &[String], now: u64) {
    for name in names {
        if used
            .get(name)
            .is_none_or(|&t| now.saturating_sub(t) >= USE_GRANULARITY)
        {
            used.insert(name.clone(), now);
        }
    }
}

/// The contents of the first regular file in a tar Docker sent.
fn first_file(tar: &[u8]) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut archive = tar::Archive::new(tar);
    let mut entry = archive
        .entries()
        .ok()?
        .filter_map(Result::ok)
        .find(|e| e.header().entry_type().is_file())?;
    let mut data = Vec::new();
    entry.read_to_end(&mut data).ok()?;
    Some(data)
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
        ]);
        let used = BTreeMap::from([("a".to_string(), 300), ("b".to_string(), 100)]);
        let keep = ["mine".to_string()];
        // 140 in all: c (never recorded) goes first, then b (older than a).
        assert_eq!(eviction_order(&sizes, &used, &keep, 100), ["c", "b"]);
        assert!(eviction_order(&sizes, &used, &keep, 140).is_empty());
        assert_eq!(eviction_order(&sizes, &used, &keep, 0), ["c", "b", "a"]);
    }

    #[test]
    fn last_use_moves_only_past_the_granularity() {
        let names = ["fresh".to_string(), "recent".to_string(), "stale".to_string()];
        let now = 10_000;
        let mut used = BTreeMap::from([
            ("recent".to_string(), now - USE_GRANULARITY + 10),
            ("stale".to_string(), now - USE_GRANULARITY),
            ("other".to_string(), 5),
        ]);
        touch(&mut used, &names, now);
        assert_eq!(
            used,
            BTreeMap::from([
                ("fresh".to_string(), now),
                ("recent".to_string(), now - USE_GRANULARITY + 10),
                ("stale".to_string(), now),
                ("other".to_string(), 5),
            ])
        );
        let before = used.clone();
        touch(&mut used, &names, now + 5);
        assert_eq!(
            used, before,
            "a repeated run within the granularity changes nothing"
        );
    }

    #[test]
    fn stage_line() {
        let stats = StageStats {
            uploaded_bytes: 73_216_512,
            cached_bytes: 0,
            evicted: vec!["cargo-shard-cache-ab".into()],
            time: std::time::Duration::from_millis(1234),
        };
        insta::assert_snapshot!(stats.describe(), @"73.2 MB uploaded, 0 B from cache in 1.23s; evicted 1 old part(s)");
    }

    #[test]
    fn volume_names_come_from_the_hash() {
        let h = "ab".repeat(32);
        assert_eq!(volume_name(&h), format!("cargo-shard-cache-{}", &h[..40]));
    }
}
