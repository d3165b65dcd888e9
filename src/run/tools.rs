//! What each host's shards receive: the payload's parts staged once per host (see
//! [`super::stage`]), and programs a shard runs that an image may lack (`cargo-nextest`):
//! each Docker host's image is checked once at the start of a run, and hosts whose image
//! lacks a tool also get this machine's copy, under `tools/` in the shard root.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{LiveHost, RunOptions};
use crate::config::RUN_LABEL;
use crate::discover::{ShardSpec, Suite, Tool, Upload};
use crate::engine::docker::CachePart;
use crate::engine::{EngineError, ShardJob};

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
    /// Staging outcome; an error leaves the host out of the run.
    pub stats: Option<Result<crate::engine::docker::StageStats, EngineError>>,
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

/// Tools each Docker host's image lacks (all hosts checked at once), by host.
async fn missing_tools(suite: &Suite, hosts: &[LiveHost], opts: &RunOptions) -> BTreeMap<String, Vec<Tool>> {
    if suite.tools.is_empty() {
        return BTreeMap::new();
    }
    let checks = hosts.iter().filter(|h| !h.engine.is_local()).map(|h| async move {
        let mut missing = Vec::new();
        for tool in &suite.tools {
            if !image_has(h, &tool.name, opts).await {
                missing.push(tool.clone());
            }
        }
        (h.host.name.clone(), missing)
    });
    let mut out = BTreeMap::new();
    for (host, missing) in futures_util::future::join_all(checks).await {
        if missing.is_empty() {
            continue;
        }
        let names: Vec<&str> = missing.iter().map(|t| t.name.as_str()).collect();
        eprintln!(
            "{host}: image has no {}: shipping this machine's copy",
            names.join(", ")
        );
        out.insert(host, missing);
    }
    out
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

/// Splits the payload into parts and stages them on every Docker host at once; local hosts
/// use this machine's files where they are. A runner that writes into its source tree gets
/// the whole payload copied into each container instead, as before staging existed.
pub(crate) async fn prepare(
    suite: &Suite,
    hosts: &[LiveHost],
    opts: &RunOptions,
) -> Result<HostPayloads, super::stage::StageError> {
    let missing = missing_tools(suite, hosts, opts).await;
    if suite.recipe.writes_source() {
        return copied(suite, hosts, &missing);
    }
    let scratch = opts.out_dir.join("stage");
    let (mut parts, rest) = tokio::task::block_in_place(|| super::stage::parts(&suite.uploads, &scratch))?;
    // Job files (no secrets: those travel in each shard's extras) are copied per container.
    let rest = if rest.is_empty() {
        Vec::new()
    } else {
        tokio::task::block_in_place(|| super::payload::pack(&rest))?
    };
    for line in super::stage::fall_back_reserved(&mut parts) {
        eprintln!("{line}");
    }
    let mut stages = BTreeMap::new();
    for h in hosts {
        let mut host_parts = parts.clone();
        let tools = missing.get(&h.host.name).cloned().unwrap_or_default();
        if !tools.is_empty() {
            let uploads = tool_uploads(&tools);
            host_parts.extend(tokio::task::block_in_place(|| super::stage::parts(&uploads, &scratch))?.0);
        }
        let local = h.engine.is_local();
        let mut payload = rest.clone();
        if local {
            let unplaced: Vec<&super::stage::Part> =
                host_parts.iter().filter(|p| p.local.is_none()).collect();
            let copied = tokio::task::block_in_place(|| super::stage::under_root(&unplaced))?;
            payload = concat_tars(&payload, &copied);
        }
        let payload = Arc::new(payload);
        let stage = HostStage {
            payload,
            parts: host_parts,
            local,
            tools: tools.iter().map(|t| t.name.clone()).collect(),
            stats: None,
        };
        stages.insert(h.host.name.clone(), stage);
    }
    let staging = hosts.iter().filter(|h| !h.engine.is_local()).map(|h| {
        let cache: Vec<CachePart> = stages[&h.host.name]
            .parts
            .iter()
            .map(|p| CachePart {
                hash: p.hash.clone(),
                tar: p.tar.clone(),
            })
            .collect();
        async move {
            let r = h
                .engine
                .stage(&cache, &h.host.image, &opts.run_id, h.host.cache_size)
                .await;
            (h.host.name.clone(), r)
        }
    });
    for (host, r) in futures_util::future::join_all(staging).await {
        if let Some(s) = stages.get_mut(&host) {
            s.stats = Some(r);
        }
    }
    Ok(HostPayloads {
        hosts: stages,
        default: Arc::new(Vec::new()),
    })
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
    suite: &Suite,
    hosts: &[LiveHost],
    missing: &BTreeMap<String, Vec<Tool>>,
) -> Result<HostPayloads, super::stage::StageError> {
    let default = Arc::new(tokio::task::block_in_place(|| {
        super::payload::pack(&suite.uploads)
    })?);
    let mut stages = BTreeMap::new();
    for h in hosts {
        let tools = missing.get(&h.host.name).cloned().unwrap_or_default();
        let payload = if tools.is_empty() {
            default.clone()
        } else {
            let mut uploads = suite.uploads.clone();
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
/// there" (non-zero exit, or the engine refusing to start it) counts as missing: an engine
/// that fails otherwise is left for the run's own fault handling.
async fn image_has(host: &LiveHost, tool: &str, opts: &RunOptions) -> bool {
    let Ok(root) = host.engine.make_root() else {
        return true;
    };
    let job = ShardJob {
        name: format!("cargo-shard-{}-probe-{}-{tool}", opts.run_id, host.host.name),
        image: host.host.image.clone(),
        network: "none".into(),
        labels: BTreeMap::from([(RUN_LABEL.to_string(), opts.run_id.clone())]),
        payload: Arc::new(super::payload::pack(&[]).unwrap_or_default()),
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
        Ok(run) => run.collected.exit_code == Some(0),
        Err(EngineError::Shard { .. }) => false,
        Err(_) => true,
    }
}
