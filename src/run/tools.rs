//! What each host's shards receive: the payload's parts staged once per host (see
//! [`super::stage`]), and programs a shard runs that an image may lack (`cargo-nextest`):
//! each Docker host's image is checked once at the start of a run, and hosts whose image
//! lacks a tool also get this machine's copy, under `tools/` in the shard root.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{LiveHost, RunOptions};
use crate::config::RUN_LABEL;
use crate::discover::{Payload, Tool};
use crate::engine::docker::CachePart;
use crate::engine::{ContainerSpec, EngineError};
use crate::shard::{ShardSpec, Upload};

/// Where shipped tools land, relative to the shard root.
pub const TOOLS_DIR: &str = "tools";

/// What each host's shards receive: a per-container payload, the staged parts they mount,
/// and the tools shipped to them.
pub(crate) struct HostPayloads {
    pub(crate) hosts: BTreeMap<String, HostStage>,
    /// For hosts not in `hosts` (never staged): the whole payload per container.
    default: Arc<Vec<u8>>,
}

/// One host's share.
#[derive(Default)]
pub(crate) struct HostStage {
    /// Uploaded into each container under the shard root.
    pub payload: Arc<Vec<u8>>,
    /// Staged parts, placed per shard by [`super::stage::places`].
    pub parts: Vec<super::stage::Part>,
    pub local: bool,
    pub tools: Vec<String>,
    /// Whether its parts go into the host's cache ([`stage_host`]) before its shards start.
    pub staged: bool,
}

impl HostPayloads {
    pub fn payload(&self, host: &str) -> Arc<Vec<u8>> {
        self.hosts
            .get(host)
            .map(|h| h.payload.clone())
            .unwrap_or_else(|| self.default.clone())
    }

    /// Tool name → how to invoke it in a shard rooted at `root` on `host`.
    pub fn tools(&self, host: &str, root: &str) -> BTreeMap<String, String> {
        let Some(h) = self.hosts.get(host) else {
            return BTreeMap::new();
        };
        h.tools
            .iter()
            .map(|n| {
                (
                    n.clone(),
                    format!("{}/{TOOLS_DIR}/{n}", root.trim_end_matches('/')),
                )
            })
            .collect()
    }

    /// Part name → its directory in a shard rooted at `root` on `host`.
    pub fn places(&self, host: &str, root: &str) -> BTreeMap<String, String> {
        self.hosts
            .get(host)
            .map(|h| super::stage::places(&h.parts, root, h.local))
            .unwrap_or_default()
    }

    /// (cache volume, container path) pairs each container on `host` mounts read-only.
    pub fn mounts(&self, host: &str) -> Vec<(String, String)> {
        let Some(h) = self.hosts.get(host).filter(|h| !h.local) else {
            return Vec::new();
        };
        h.parts
            .iter()
            .map(|p| {
                (
                    crate::engine::docker::volume_name(&p.hash),
                    p.place(crate::engine::CONTAINER_ROOT),
                )
            })
            .collect()
    }
}

/// Tools each Docker host's image lacks (all hosts checked at once), by host. An image's
/// content never changes under its id, so each (image id, tool) is probed once and the answer
/// kept in `probes` for later runs here, and on the host for runs from anywhere (a CI job
/// starts without the last run's files).
async fn missing_tools(
    payload: &Payload,
    hosts: &[LiveHost],
    opts: &RunOptions,
    probes: &std::path::Path,
    observer: &super::Observer,
) -> BTreeMap<String, Vec<Tool>> {
    if payload.tools.is_empty() {
        return BTreeMap::new();
    }
    let known = ProbeCache::load(probes);
    let checks = hosts.iter().filter(|h| !h.engine.is_local()).map(|h| {
        let known = &known;
        async move {
            let id = h.engine.image_id(&h.host.image).await.ok().flatten();
            let mut missing = Vec::new();
            let mut learned = Vec::new();
            for tool in &payload.tools {
                let (has, new) = has_tool(h, id.as_deref(), &tool.name, known, opts).await;
                learned.extend(new);
                if !has {
                    missing.push(tool.clone());
                }
            }
            (h.host.name.clone(), missing, learned)
        }
    });
    let mut out = BTreeMap::new();
    let mut learned = Vec::new();
    for (host, missing, new) in futures_util::future::join_all(checks).await {
        learned.extend(new);
        if missing.is_empty() {
            continue;
        }
        let names: Vec<&str> = missing.iter().map(|t| t.name.as_str()).collect();
        observer(&super::Event::Warning(format!(
            "{host}: image has no {}: shipping this machine's copy",
            names.join(", ")
        )));
        out.insert(host, missing);
    }
    known.save(probes, learned);
    out
}

/// Whether `h`'s image (its id, when known) has `tool`: the answer kept here, else the one the
/// host keeps, else a probe's (then kept on the host). With it, an answer for this machine's
/// file when it was not there yet. No clear answer counts as "there", asked again next run.
async fn has_tool(
    h: &LiveHost,
    id: Option<&str>,
    tool: &str,
    known: &ProbeCache,
    opts: &RunOptions,
) -> (bool, Option<(String, bool)>) {
    if let Some(id) = id {
        if let Some(has) = known.get(id, tool) {
            return (has, None);
        }
        if let Some(has) = h.engine.kept_probe(id, tool).await {
            return (has, Some((ProbeCache::key(id, tool), has)));
        }
    }
    let Some(has) = image_has(h, tool, opts).await else {
        return (true, None);
    };
    if let Some(id) = id {
        h.engine.keep_probe(id, tool, has).await;
    }
    (has, id.map(|id| (ProbeCache::key(id, tool), has)))
}

/// Probe answers by `<image id> <tool>`, kept on this machine between runs.
#[derive(Default)]
struct ProbeCache(BTreeMap<String, bool>);

impl ProbeCache {
    fn key(image_id: &str, tool: &str) -> String {
        format!("{image_id} {tool}")
    }

    /// An unreadable or corrupt file is an empty cache: every image is probed again.
    fn load(path: &std::path::Path) -> Self {
        let known = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Self(known)
    }

    fn get(&self, image_id: &str, tool: &str) -> Option<bool> {
        self.0.get(&Self::key(image_id, tool)).copied()
    }

    /// Adds `learned` and writes the file when that changed it; a failed write only costs
    /// a probe next time.
    fn save(mut self, path: &std::path::Path, learned: Vec<(String, bool)>) {
        if learned.is_empty() {
            return;
        }
        self.0.extend(learned);
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = crate::atomic::write(path, &serde_json::to_vec(&self.0).unwrap_or_default());
    }
}

fn tool_uploads(tools: &[Tool]) -> Vec<Upload> {
    tools
        .iter()
        .map(|t| Upload::File {
            src: t.local.clone(),
            dest: format!("{TOOLS_DIR}/{}", t.name),
            mode: 0o755,
        })
        .collect()
}

/// Where the probe answers are kept, under the run's scratch directory.
const PROBES: &str = "probes.json";

/// Splits the payload into parts (while the hosts' images are checked for tools) and decides
/// each host's share; [`stage_host`] then stages a Docker host's parts. Local hosts use this
/// machine's files where they are. A runner that writes into its source tree gets the whole
/// payload copied into each container instead, as before staging existed.
pub(crate) async fn prepare(
    payload: &Payload,
    hosts: &[LiveHost],
    opts: &RunOptions,
    observer: &super::Observer,
) -> Result<HostPayloads, super::stage::StageError> {
    let scratch = opts.out_dir.join("stage");
    let probes = scratch.join(PROBES);
    if payload.writes_source {
        let missing = missing_tools(payload, hosts, opts, &probes, observer).await;
        return copied(payload, hosts, &missing);
    }
    // Only a local host runs the nextest archive's files from this machine's disk.
    let extract = hosts.iter().any(|h| h.engine.is_local());
    let (uploads, dir, later) = (
        payload.uploads.clone(),
        scratch.clone(),
        payload.placed_later.clone(),
    );
    let split = tokio::task::spawn_blocking(move || super::stage::parts_in(&uploads, &dir, extract, &later));
    let (missing, split) = tokio::join!(missing_tools(payload, hosts, opts, &probes, observer), split);
    let (mut parts, rest) = split.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
    // Job files (no secrets: those travel in each shard's extras) are copied per container.
    let rest = if rest.is_empty() {
        Vec::new()
    } else {
        tokio::task::block_in_place(|| super::payload::pack(&rest))?
    };
    for line in super::stage::fall_back_reserved(&mut parts) {
        observer(&super::Event::Warning(line));
    }
    let mut stages = BTreeMap::new();
    for h in hosts {
        let tools = missing.get(&h.host.name).cloned().unwrap_or_default();
        let stage = host_stage(h, &parts, &rest, tools, &scratch)?;
        stages.insert(h.host.name.clone(), stage);
    }
    Ok(HostPayloads {
        hosts: stages,
        default: Arc::new(Vec::new()),
    })
}

/// One host's parts (plus the tools its image lacks) and what each of its containers gets
/// copied: job files, and on a local host the parts that have no files on this machine.
fn host_stage(
    h: &LiveHost,
    parts: &[super::stage::Part],
    rest: &[u8],
    tools: Vec<Tool>,
    scratch: &std::path::Path,
) -> Result<HostStage, super::stage::StageError> {
    let mut host_parts = parts.to_vec();
    if !tools.is_empty() {
        let uploads = tool_uploads(&tools);
        host_parts
            .extend(tokio::task::block_in_place(|| super::stage::parts_in(&uploads, scratch, false, &[]))?.0);
    }
    let local = h.engine.is_local();
    let mut payload = rest.to_vec();
    if local {
        let unplaced: Vec<&super::stage::Part> = host_parts.iter().filter(|p| p.local.is_none()).collect();
        let copied = tokio::task::block_in_place(|| super::stage::under_root(&unplaced))?;
        payload = concat_tars(&payload, &copied);
    }
    Ok(HostStage {
        payload: Arc::new(payload),
        parts: host_parts,
        local,
        tools: tools.iter().map(|t| t.name.clone()).collect(),
        staged: !local,
    })
}

/// Makes `h`'s parts present in its cache; `None` for a host that stages nothing (local, or
/// a runner whose payload is copied into each container).
pub(crate) async fn stage_host(
    payloads: &HostPayloads,
    h: &LiveHost,
    opts: &RunOptions,
) -> Option<Result<crate::engine::docker::StageStats, EngineError>> {
    let stage = payloads.hosts.get(&h.host.name).filter(|s| s.staged)?;
    let cache: Vec<CachePart> = stage
        .parts
        .iter()
        .map(|p| CachePart {
            hash: p.hash.clone(),
            tar: p.tar.clone(),
        })
        .collect();
    Some(
        h.engine
            .stage(&cache, &h.host.image, &opts.run_id, h.host.cache_size)
            .await,
    )
}

/// One tar holding the entries of both (a tar ends with two zero blocks: drop the first's).
fn concat_tars(a: &[u8], b: &[u8]) -> Vec<u8> {
    if a.is_empty() {
        return b.to_vec();
    }
    let mut out = a[..a.len().saturating_sub(1024)].to_vec();
    out.extend_from_slice(b);
    out
}

/// The whole payload (and the missing tools) uploaded into every container.
fn copied(
    payload: &Payload,
    hosts: &[LiveHost],
    missing: &BTreeMap<String, Vec<Tool>>,
) -> Result<HostPayloads, super::stage::StageError> {
    let default = Arc::new(tokio::task::block_in_place(|| {
        super::payload::pack(&payload.uploads)
    })?);
    let mut stages = BTreeMap::new();
    for h in hosts {
        let tools = missing.get(&h.host.name).cloned().unwrap_or_default();
        let payload = if tools.is_empty() {
            default.clone()
        } else {
            let mut uploads = payload.uploads.clone();
            uploads.extend(tool_uploads(&tools));
            Arc::new(tokio::task::block_in_place(|| super::payload::pack(&uploads))?)
        };
        stages.insert(
            h.host.name.clone(),
            HostStage {
                payload,
                tools: tools.iter().map(|t| t.name.clone()).collect(),
                ..Default::default()
            },
        );
    }
    Ok(HostPayloads {
        hosts: stages,
        default,
    })
}

/// Runs `TOOL --version` in a throwaway container of the host's image. Only a clear "not
/// there" (non-zero exit, or the engine refusing to start it) counts as missing; `None` when
/// the engine failed otherwise (left for the run's own fault handling).
async fn image_has(host: &LiveHost, tool: &str, opts: &RunOptions) -> Option<bool> {
    let root = host.engine.make_root().ok()?;
    let job = ContainerSpec {
        name: format!("cargo-shard-{}-probe-{}-{tool}", opts.run_id, host.host.name),
        image: host.host.image.clone(),
        network: "none".into(),
        labels: BTreeMap::from([(RUN_LABEL.to_string(), opts.run_id.clone())]),
        // Nothing to upload past the root's own request.
        payload: Arc::new(Vec::new()),
        spec: ShardSpec {
            argv: vec![tool.to_string(), "--version".into()],
            workdir: root.clone(),
            ..Default::default()
        },
        log_path: opts
            .out_dir
            .join("logs")
            .join(format!("probe-{}-{tool}.log", host.host.name)),
        keep: false,
        root,
        extras: Default::default(),
    };
    match host.engine.run_shard(job, CancellationToken::new()).await {
        Ok(run) => Some(run.collected.exit_code == Some(0)),
        Err(EngineError::Shard { .. }) => Some(false),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_answers_are_kept_by_image_id_and_a_corrupt_file_forgets_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stage").join(PROBES);
        let empty = ProbeCache::load(&path);
        assert_eq!(empty.get("sha256:a", "cargo-nextest"), None);
        empty.save(
            &path,
            vec![
                (ProbeCache::key("sha256:a", "cargo-nextest"), false),
                (ProbeCache::key("sha256:b", "cargo-nextest"), true),
            ],
        );
        let known = ProbeCache::load(&path);
        assert_eq!(known.get("sha256:a", "cargo-nextest"), Some(false));
        assert_eq!(known.get("sha256:b", "cargo-nextest"), Some(true));
        assert_eq!(known.get("sha256:c", "cargo-nextest"), None);
        std::fs::write(&path, "{not json").unwrap();
        assert_eq!(ProbeCache::load(&path).get("sha256:a", "cargo-nextest"), None);
    }
}
