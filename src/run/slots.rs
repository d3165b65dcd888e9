//! Slot containers on the run's side: when a host's work shares one long-lived container per
//! slot, what such a container is made of, and who holds it. The container itself is the
//! Docker engine's (`engine::docker::slot`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::tools::HostPayloads;
use super::{LiveHost, RunOptions};
use crate::config::RUN_LABEL;
use crate::engine::EngineError;
use crate::engine::docker::{Slot, SlotSpec};

/// Open slot containers no worker holds, by host and slot index, with how many that slot has
/// opened (for unique names): opened ahead of the work, or left by an earlier phase for the
/// next one. Whatever is still here at the end goes with the run's cleanup.
pub(crate) type SlotPool = Arc<Mutex<BTreeMap<(String, usize), (Slot, usize)>>>;

/// Whether the job lets work share its slot's container: nothing else may live in a
/// container's life (services, artifacts and kept containers belong to one shard each).
pub(crate) fn job_pools(opts: &RunOptions) -> bool {
    let job = &opts.job;
    opts.steal
        && !opts.keep_containers
        && !job.config.ties_work_to_its_container()
        && job.artifacts.is_empty()
}

/// Whether `host`'s shards and batches run in slot containers: the job pools, the host is a
/// Docker engine, and its containers mount the staged payload read-only rather than get a
/// copy of their own (a runner that writes into its source tree gets a copy).
pub(crate) fn pools(opts: &RunOptions, payloads: &HostPayloads, host: &LiveHost) -> bool {
    job_pools(opts) && !host.engine.is_local() && payloads.payload(&host.host.name).is_empty()
}

/// The slot container for slot `index` of `host`, the `opened`-th one that slot opened.
pub(crate) fn slot_spec(
    opts: &RunOptions,
    payloads: &HostPayloads,
    host: &LiveHost,
    index: usize,
    opened: usize,
) -> SlotSpec {
    let mut labels = host.host.labels.clone();
    labels.insert(RUN_LABEL.to_string(), opts.run_id.clone());
    let (nano_cpus, memory) = opts.job.limits();
    SlotSpec {
        name: format!(
            "cargo-shard-{}-slot-{}-{index}-{opened}",
            opts.run_id,
            sanitize(&host.host.name),
        ),
        image: host.host.image.clone(),
        network: host.host.network.clone(),
        labels,
        mounts: payloads.mounts(&host.host.name),
        nano_cpus,
        memory,
        preload: Vec::new(),
    }
}

/// The long-lived container of one runner slot: taken from the head start or opened on the
/// slot's first work, replaced when work leaves it broken, left to the next phase or the
/// run's cleanup when the slot is done.
pub(crate) struct SlotHolder {
    /// Which of the host's slots holds it, for unique names.
    index: usize,
    slot: Option<Slot>,
    /// Containers opened so far, for unique names.
    opened: usize,
    /// The engine cannot hold slot containers: all work gets containers of its own.
    unsupported: bool,
}

impl SlotHolder {
    /// A holder for slot `index` of its host, with the container opened ahead (and how many
    /// the slot has opened), if any.
    pub fn new(index: usize, pre_opened: Option<(Slot, usize)>) -> Self {
        let (slot, opened) = pre_opened.map_or((None, 0), |(slot, opened)| (Some(slot), opened));
        Self {
            index,
            opened,
            slot,
            unsupported: false,
        }
    }

    /// The open container, if any.
    pub fn slot(&self) -> Option<&Slot> {
        self.slot.as_ref()
    }

    /// True when the engine cannot hold slot containers.
    pub fn unsupported(&self) -> bool {
        self.unsupported
    }

    /// Makes sure a usable container is open for this slot of `host`, a new one holding the
    /// `preload` files (see [`SlotSpec::preload`]); an engine that cannot hold one leaves the
    /// holder empty (the work then gets a container of its own).
    pub async fn open(
        &mut self,
        opts: &RunOptions,
        payloads: &HostPayloads,
        host: &LiveHost,
        preload: impl FnOnce() -> Vec<Vec<(String, Vec<u8>)>>,
    ) -> Result<(), EngineError> {
        if self.slot.as_ref().is_some_and(|s| s.is_broken()) {
            self.close(host).await;
        }
        if self.slot.is_some() || self.unsupported {
            return Ok(());
        }
        self.opened += 1;
        let spec = SlotSpec {
            preload: preload(),
            ..slot_spec(opts, payloads, host, self.index, self.opened)
        };
        match host.engine.open_slot(&spec).await {
            Some(opened) => self.slot = Some(opened?),
            None => self.unsupported = true,
        }
        Ok(())
    }

    /// Removes the slot's container, if one is open.
    pub async fn close(&mut self, host: &LiveHost) {
        if let Some(slot) = self.slot.take() {
            host.engine.close_slot(slot).await;
        }
    }

    /// The slot is done with this phase: a usable container goes back to `pool` for a later
    /// phase (retries) or, after the last one, for the run's cleanup, which removes every
    /// host's containers at once instead of each slot waiting on its own removal first.
    pub async fn release(mut self, host: &LiveHost, pool: &SlotPool) {
        if self.slot.as_ref().is_some_and(|s| s.is_broken()) {
            self.close(host).await;
        }
        if let Some(slot) = self.slot.take() {
            pool.lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert((host.host.name.clone(), self.index), (slot, self.opened));
        }
    }
}

/// Takes the container no worker holds for `host`'s slot `index`, if there is one.
pub(crate) fn take(pool: &SlotPool, host: &str, index: usize) -> Option<(Slot, usize)> {
    pool.lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&(host.to_string(), index))
}

/// A host name as a container name may hold it.
fn sanitize(host: &str) -> String {
    host.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}
