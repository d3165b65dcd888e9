//! A run's head start: each host's payload staged and its slot containers opened while the
//! suite is still being built, listed and planned, so that a host's first shards start the
//! moment the plan exists and that host is ready. Begun by the pipeline as soon as discovery
//! knows the sources (staged during the build) and again once it knows the whole payload, or
//! by the run itself when nothing began it earlier.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::outcome::Event;
use super::phase::{Gates, Opened};
use super::slots::SlotPool;
use super::tools::HostPayloads;
use super::{LiveHost, Observer, RunOptions};
use crate::discover::Payload;
use crate::engine::docker::StageStats;

/// How long abandoning a head start may take to remove what it created, per host.
const ABANDON_LIMIT: Duration = Duration::from_secs(5);

/// Staging and slot opening under way (or done) for one run.
pub struct HeadStart {
    payload: Payload,
    hosts: Vec<LiveHost>,
    run_id: String,
    /// Stops what is still under way (the run ended, was interrupted, or never came).
    stop: CancellationToken,
    relay: Arc<Relay>,
    prepared: Option<oneshot::Receiver<Result<Arc<HostPayloads>, String>>>,
    gates: Gates,
    slots: SlotPool,
    /// What each host has staged so far, shared with the head start that follows this one.
    staged: StagedSoFar,
    /// True once the hosts' images are checked for the tools (and the answers kept).
    checked: watch::Receiver<bool>,
    /// `None` once finished, abandoned, or handed to the head start that follows.
    task: Option<tokio::task::JoinHandle<Staging>>,
}

/// Per host, what this run's head starts have staged there so far.
type StagedSoFar = Arc<Mutex<BTreeMap<String, StageStats>>>;

/// The head start a later one follows (the sources staged during the build): the later one
/// checks the images only once the earlier one has (its answers are kept, and two probes of
/// one run would share a container name), and each host's stage waits for that host's
/// earlier one, so that no part is uploaded twice at once.
struct Prior {
    checked: watch::Receiver<bool>,
    gates: Gates,
    task: tokio::task::JoinHandle<Staging>,
}

/// What staging did: what each staged host received, and how long it took from the head
/// start's beginning until the last host was done.
#[derive(Default)]
pub(crate) struct Staging {
    pub staged: Vec<(String, StageStats)>,
    pub time: Duration,
}

impl HeadStart {
    /// Starts preparing `payload` for `hosts`: split into parts, staged into each Docker
    /// host's cache, and with `open_slots` (where work will share containers) one slot
    /// container opened per slot. Events wait until [`HeadStart::attach`] gives them an
    /// observer.
    pub fn begin(payload: Payload, hosts: &[LiveHost], opts: &RunOptions, open_slots: bool) -> Self {
        Self::start(
            payload,
            hosts,
            opts,
            open_slots,
            None,
            CancellationToken::new(),
            StagedSoFar::default(),
        )
    }

    /// [`HeadStart::begin`] for the whole payload once `prior` (begun with its sources, if
    /// any) has them under way: each host stages the rest after its share of `prior`, whose
    /// uploads count as this head start's.
    pub fn begin_after(
        prior: Option<HeadStart>,
        payload: Payload,
        hosts: &[LiveHost],
        opts: &RunOptions,
        open_slots: bool,
    ) -> Self {
        let Some(mut prior) = prior else {
            return Self::begin(payload, hosts, opts, open_slots);
        };
        // Taking the task leaves nothing for the prior's Drop to stop or remove.
        let Some(task) = prior.task.take() else {
            return Self::begin(payload, hosts, opts, open_slots);
        };
        let before = Prior {
            checked: prior.checked.clone(),
            gates: prior.gates.clone(),
            task,
        };
        let (stop, staged) = (prior.stop.clone(), prior.staged.clone());
        Self::start(payload, hosts, opts, open_slots, Some(before), stop, staged)
    }

    fn start(
        payload: Payload,
        hosts: &[LiveHost],
        opts: &RunOptions,
        open_slots: bool,
        prior: Option<Prior>,
        stop: CancellationToken,
        staged: StagedSoFar,
    ) -> Self {
        let relay = Arc::new(Relay::default());
        let slots = SlotPool::default();
        let mut gates = BTreeMap::new();
        let mut opened = BTreeMap::new();
        for h in hosts.iter().filter(|h| !h.engine.is_local()) {
            let (tx, rx) = watch::channel(None);
            gates.insert(h.host.name.clone(), rx);
            opened.insert(h.host.name.clone(), tx);
        }
        let (tx, rx) = oneshot::channel();
        let (checked_tx, checked) = watch::channel(false);
        let work = Work {
            payload: payload.clone(),
            hosts: hosts.to_vec(),
            opts: opts.clone(),
            observer: relay.observer(),
            stop: stop.clone(),
            slots: slots.clone(),
            open_slots,
            staged: staged.clone(),
            checked: checked_tx,
        };
        let task = tokio::spawn(work.run(opened, tx, prior));
        HeadStart {
            payload,
            hosts: hosts.to_vec(),
            run_id: opts.run_id.clone(),
            stop,
            relay,
            prepared: Some(rx),
            gates,
            slots,
            staged,
            checked,
            task: Some(task),
        }
    }

    /// Whether this head start prepared exactly what `payload` asks for, for this run.
    pub fn serves(&self, payload: &Payload, run_id: &str) -> bool {
        self.payload == *payload && self.run_id == run_id
    }

    /// What an interrupt before the run starts must do: stop, and remove what was created.
    pub fn cleanup_on_exit(&self) -> crate::interrupt::EarlyCleanup {
        let (stop, hosts, run_id) = (self.stop.clone(), self.hosts.clone(), self.run_id.clone());
        Box::new(move || {
            stop.cancel();
            Box::pin(remove_all(None, hosts, run_id))
        })
    }

    /// Events from now on go to `observer`, after the ones held until now.
    pub fn attach(&self, observer: Observer) {
        self.relay.attach(observer);
    }

    /// Stops what is under way when `cancel` is cancelled (an interrupt, `--max-fail`).
    pub(crate) fn stop_with(&self, cancel: &CancellationToken) {
        let (cancel, stop) = (cancel.clone(), self.stop.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => stop.cancel(),
                _ = stop.cancelled() => {}
            }
        });
    }

    /// Each host's share of the payload, once split; the error's text when it could not be.
    pub(crate) async fn payloads(&mut self) -> Result<Arc<HostPayloads>, String> {
        let Some(rx) = self.prepared.take() else {
            return Err("the payload was already taken".into());
        };
        rx.await
            .unwrap_or_else(|_| Err("staging was stopped before the payload was split".into()))
    }

    /// One gate per Docker host: closed while it stages, then `Ok` or why it failed.
    pub(crate) fn gates(&self) -> Gates {
        self.gates.clone()
    }

    /// The slot containers opened so far, for the workers to take.
    pub(crate) fn slot_pool(&self) -> SlotPool {
        self.slots.clone()
    }

    /// Stops what is still under way (a host still staging once every slot is done has no
    /// one left to serve) and returns what staging did. Slot containers no worker took stay
    /// for the run's cleanup, which removes everything labelled with the run.
    pub(crate) async fn finish(mut self) -> Staging {
        self.stop.cancel();
        let Some(task) = self.task.take() else {
            return Staging::default();
        };
        task.await.unwrap_or_default()
    }
}

impl Drop for HeadStart {
    /// A head start the run never used (the plan failed, nothing to run, a bad flag after
    /// discovery): whatever it created on the hosts is removed before the process goes on.
    fn drop(&mut self) {
        let Some(task) = self.task.take() else {
            return;
        };
        self.stop.cancel();
        let removal = remove_all(Some(task), std::mem::take(&mut self.hosts), self.run_id.clone());
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        // Only a multi-threaded runtime can wait here; elsewhere (a test's own runtime) the
        // cleanup runs on its own.
        if rt.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            rt.spawn(removal);
            return;
        }
        tokio::task::block_in_place(|| rt.block_on(removal));
    }
}

/// Waits for the head start's `task` to stop (when it is still held), then removes
/// everything labelled with the run from every host, bounded per host.
async fn remove_all(task: Option<tokio::task::JoinHandle<Staging>>, hosts: Vec<LiveHost>, run_id: String) {
    if let Some(task) = task {
        let _ = task.await;
    }
    super::schedule::cleanup(&hosts, &run_id, |_| ABANDON_LIMIT).await;
}

/// The head start's own task.
struct Work {
    payload: Payload,
    hosts: Vec<LiveHost>,
    opts: RunOptions,
    observer: Observer,
    stop: CancellationToken,
    slots: SlotPool,
    open_slots: bool,
    staged: StagedSoFar,
    checked: watch::Sender<bool>,
}

impl Work {
    async fn run(
        self,
        opened: Opened,
        prepared: oneshot::Sender<Result<Arc<HostPayloads>, String>>,
        prior: Option<Prior>,
    ) -> Staging {
        let (checked, gates, task) = match prior {
            Some(p) => (Some(p.checked), p.gates, Some(p.task)),
            None => (None, Gates::new(), None),
        };
        let staging = self.stage(opened, prepared, checked, gates, task.is_some()).await;
        // Whoever waits for this task (the run, or the removal of what it created) waits
        // for the earlier stage too: it has ended or been stopped by now, or soon will.
        if let Some(task) = task {
            let _ = task.await;
        }
        staging
    }

    async fn stage(
        &self,
        mut opened: Opened,
        prepared: oneshot::Sender<Result<Arc<HostPayloads>, String>>,
        prior_checked: Option<watch::Receiver<bool>>,
        prior_gates: Gates,
        follows: bool,
    ) -> Staging {
        let since = Instant::now();
        let prepare = async {
            // An earlier head start that stopped before checking leaves the check to this one.
            if let Some(mut checked) = prior_checked {
                let _ = checked.wait_for(|done| *done).await;
            }
            super::tools::prepare(&self.payload, &self.hosts, &self.opts, &self.observer).await
        };
        let split = tokio::select! {
            p = prepare => p,
            _ = self.stop.cancelled() => return Staging::default(),
        };
        let _ = self.checked.send(true);
        let payloads = match split {
            Ok(p) => Arc::new(p),
            Err(e) => {
                let _ = prepared.send(Err(e.to_string()));
                // Nothing will use what an earlier stage is still sending. (The earlier one
                // itself leaves the token alone: its failure is for the next one to meet.)
                if follows {
                    self.stop.cancel();
                }
                return Staging::default();
            }
        };
        let _ = prepared.send(Ok(payloads.clone()));
        let tasks = self.hosts.iter().filter_map(|h| {
            let gate = opened.remove(&h.host.name)?;
            let before = prior_gates.get(&h.host.name).cloned();
            Some(self.host(h, &payloads, gate, before, since))
        });
        let done = futures_util::future::join_all(tasks).await;
        Staging {
            time: done.iter().map(|(_, t)| *t).max().unwrap_or_default(),
            staged: done.into_iter().filter_map(|(s, _)| s).collect(),
        }
    }

    /// Stages `h`, opens its slot containers, then opens its gate.
    async fn host(
        &self,
        h: &LiveHost,
        payloads: &HostPayloads,
        gate: watch::Sender<Option<Result<(), String>>>,
        before: Option<watch::Receiver<Option<Result<(), String>>>>,
        since: Instant,
    ) -> (Option<(String, StageStats)>, Duration) {
        let name = h.host.name.clone();
        let stage = async {
            // An earlier stage that failed or stopped leaves its parts to this one.
            if let Some(mut before) = before {
                let _ = before.wait_for(Option::is_some).await;
            }
            super::tools::stage_host(payloads, h, &self.opts).await
        };
        let staged = tokio::select! {
            r = stage => r,
            // Stopped: the gate closes unopened and the slots stop, no host lost.
            _ = self.stop.cancelled() => return (None, since.elapsed()),
        };
        let stats = match staged {
            None => None,
            Some(Ok(stats)) => {
                let holds = payloads
                    .hosts
                    .get(&name)
                    .map(|s| s.parts.as_slice())
                    .unwrap_or_default();
                let stats = self.so_far(&name, stats, holds);
                (self.observer)(&Event::Staged {
                    host: name.clone(),
                    stats: stats.clone(),
                });
                Some((name, stats))
            }
            Some(Err(e)) => {
                let _ = gate.send(Some(Err(format!("staging failed: {e}"))));
                return (None, since.elapsed());
            }
        };
        let took = since.elapsed();
        if self.open_slots && h.host.opens_slots_early() && super::slots::pools(&self.opts, payloads, h) {
            tokio::select! {
                _ = self.open_slots(h, payloads) => {}
                _ = self.stop.cancelled() => return (stats, took),
            }
        }
        let _ = gate.send(Some(Ok(())));
        (stats, took)
    }

    /// `stats` of this stage on `host` (staging `holds`) added to what earlier stages of the
    /// run did there ([`merged`]), and kept for a stage that follows.
    fn so_far(&self, host: &str, stats: StageStats, holds: &[super::stage::Part]) -> StageStats {
        let mut staged = lock(&self.staged);
        let total = match staged.get(host) {
            Some(early) => merged(early, stats, holds),
            None => stats,
        };
        staged.insert(host.to_string(), total.clone());
        total
    }

    /// One slot container per slot of `h`, all at once. One that fails to open is left to
    /// the slot's first batch, which opens its own and meets the failure where the run's
    /// fault handling sees it.
    async fn open_slots(&self, h: &LiveHost, payloads: &HostPayloads) {
        let opens = (0..h.host.slots).map(|index| async move {
            let spec = super::slots::slot_spec(&self.opts, payloads, h, index, 1);
            if let Some(Ok(slot)) = h.engine.open_slot(&spec).await {
                lock(&self.slots).insert((h.host.name.clone(), index), (slot, 1));
            }
        });
        futures_util::future::join_all(opens).await;
    }
}

/// An earlier stage's stats and a later one's (which staged `holds`) on one host: a part the
/// earlier stage sent, the later one found in the cache, and it counts as sent, not cached.
/// What the earlier one sent that the later one does not hold (sources the build changed)
/// was sent all the same.
fn merged(early: &StageStats, later: StageStats, holds: &[super::stage::Part]) -> StageStats {
    let sent_before: u64 = holds.iter().filter_map(|p| early.sent.get(&p.hash)).sum();
    StageStats {
        uploaded_bytes: early.uploaded_bytes + later.uploaded_bytes,
        cached_bytes: later.cached_bytes.saturating_sub(sent_before),
        evicted: early.evicted.iter().chain(&later.evicted).cloned().collect(),
        time: early.time + later.time,
        sent: early
            .sent
            .iter()
            .chain(&later.sent)
            .map(|(h, b)| (h.clone(), *b))
            .collect(),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Holds events until the run has an observer, then passes them on in order.
#[derive(Default)]
struct Relay {
    state: Mutex<RelayState>,
}

#[derive(Default)]
struct RelayState {
    held: Vec<Event>,
    to: Option<Observer>,
}

impl Relay {
    fn observer(self: &Arc<Self>) -> Observer {
        let relay = self.clone();
        Arc::new(move |e: &Event| relay.send(e))
    }

    /// Delivered under the lock, so that nothing overtakes the events held before.
    fn send(&self, e: &Event) {
        let mut s = lock(&self.state);
        match &s.to {
            Some(to) => to(e),
            None => s.held.push(e.clone()),
        }
    }

    fn attach(&self, observer: Observer) {
        let mut s = lock(&self.state);
        for e in std::mem::take(&mut s.held) {
            observer(&e);
        }
        s.to = Some(observer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(hash: &str, bytes: usize) -> super::super::stage::Part {
        super::super::stage::Part {
            name: hash.into(),
            hash: hash.into(),
            tar: Arc::new(vec![0; bytes]),
            build_path: None,
            local: None,
        }
    }

    fn stats(uploaded: &[(&str, u64)], cached: u64) -> StageStats {
        StageStats {
            uploaded_bytes: uploaded.iter().map(|(_, b)| b).sum(),
            cached_bytes: cached,
            sent: uploaded.iter().map(|(h, b)| (h.to_string(), *b)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn what_an_earlier_stage_sent_counts_as_sent_only_for_the_parts_it_shares() {
        // The sources went up during the build; the whole payload's stage found them cached
        // beside the build's part (also cached, from an earlier run).
        let early = stats(&[("src", 100)], 0);
        let same = merged(
            &early,
            stats(&[], 1100),
            &[part("src", 100), part("target", 1000)],
        );
        assert_eq!((same.uploaded_bytes, same.cached_bytes), (100, 1000));
        // The build changed the sources: the early part is not the shipped one, which went up
        // again; the build's part was really in the cache.
        let changed = merged(
            &early,
            stats(&[("src2", 100)], 1000),
            &[part("src2", 100), part("target", 1000)],
        );
        assert_eq!((changed.uploaded_bytes, changed.cached_bytes), (200, 1000));
        assert_eq!(changed.sent.len(), 2);
    }

    #[test]
    fn events_wait_for_the_observer_then_pass_in_order() {
        let relay = Arc::new(Relay::default());
        let send = relay.observer();
        send(&Event::Warning("one".into()));
        send(&Event::Warning("two".into()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        relay.attach(Arc::new(move |e: &Event| {
            if let Event::Warning(w) = e {
                sink.lock().unwrap().push(w.clone());
            }
        }));
        send(&Event::Warning("three".into()));
        assert_eq!(*seen.lock().unwrap(), ["one", "two", "three"]);
    }
}
