//! Programs a shard runs that an image may lack (`cargo-nextest`): each Docker host's image
//! is checked once at the start of a run, and hosts whose image lacks a tool get a payload
//! that also carries this machine's copy, under `tools/` in the shard root.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{LiveHost, RunOptions};
use crate::config::RUN_LABEL;
use crate::discover::{ShardSpec, Suite, Upload};
use crate::engine::{EngineError, ShardJob};

/// Where shipped tools land, relative to the shard root.
pub const TOOLS_DIR: &str = "tools";

/// What each host's shards receive: the payload, and the tools shipped in it.
pub(crate) struct HostPayloads {
    default: Arc<Vec<u8>>,
    /// Hosts whose image lacks some tool: their payload and the shipped tools' names.
    shipped: BTreeMap<String, (Arc<Vec<u8>>, Vec<String>)>,
}

impl HostPayloads {
    pub fn payload(&self, host: &str) -> Arc<Vec<u8>> {
        self.shipped
            .get(host)
            .map(|(p, _)| p.clone())
            .unwrap_or_else(|| self.default.clone())
    }

    /// Tool name → how to invoke it in a shard rooted at `root` on `host`.
    pub fn tools(&self, host: &str, root: &str) -> BTreeMap<String, String> {
        let Some((_, names)) = self.shipped.get(host) else {
            return BTreeMap::new();
        };
        names
            .iter()
            .map(|n| {
                (
                    n.clone(),
                    format!("{}/{TOOLS_DIR}/{n}", root.trim_end_matches('/')),
                )
            })
            .collect()
    }
}

/// Checks every Docker host's image for the suite's tools (all hosts at once) and packs a
/// payload with the missing ones for the hosts that need it.
pub(crate) async fn prepare(
    suite: &Suite,
    hosts: &[LiveHost],
    opts: &RunOptions,
    default: Arc<Vec<u8>>,
) -> Result<HostPayloads, super::payload::PayloadError> {
    let mut shipped = BTreeMap::new();
    if suite.tools.is_empty() {
        return Ok(HostPayloads { default, shipped });
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
    let mut packed: BTreeMap<Vec<String>, Arc<Vec<u8>>> = BTreeMap::new();
    for (host, missing) in futures_util::future::join_all(checks).await {
        if missing.is_empty() {
            continue;
        }
        let names: Vec<String> = missing.iter().map(|t| t.name.clone()).collect();
        let payload = match packed.get(&names) {
            Some(p) => p.clone(),
            None => {
                let mut uploads = suite.uploads.clone();
                uploads.extend(missing.iter().map(|t| Upload::File {
                    src: t.local.clone(),
                    dest: format!("{TOOLS_DIR}/{}", t.name),
                    mode: 0o755,
                }));
                let p = Arc::new(tokio::task::block_in_place(|| super::payload::pack(&uploads))?);
                packed.insert(names.clone(), p.clone());
                p
            }
        };
        eprintln!(
            "{host}: image has no {}: shipping this machine's copy with every shard",
            names.join(", ")
        );
        shipped.insert(host, (payload, names));
    }
    Ok(HostPayloads { default, shipped })
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
