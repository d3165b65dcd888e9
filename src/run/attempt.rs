//! One container's life for one shard: prepare the spec, run it under the timeout, and
//! classify how it ended so the scheduler can record, retry or re-queue.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{LiveHost, RunOptions, shard_env};
use crate::config::{RUN_LABEL, SHARD_LABEL};
use crate::discover::{LiveEvent, ShardCtx, Suite};
use crate::engine::{ContainerSpec, EngineError, Phases};
use crate::shard::Collected;
use crate::test_result::{TestId, TestResult, TestStatus};

/// A unit of work in the queue.
#[derive(Debug, Clone)]
pub(crate) struct QueuedShard {
    pub shard: usize,
    pub tests: Vec<TestId>,
    pub predicted: Duration,
    pub attempt: u32,
    /// The host the planner meant it for.
    pub planned: Option<String>,
    /// The host that last failed this job: prefer another.
    pub avoid: Option<String>,
    pub rerun: bool,
    /// Cut from a planned shard (see [`super::batch`]): more of its kind follow, so it opens
    /// its slot's container if none is open, and may take the next batches along.
    pub batched: bool,
}

/// How an attempt ended.
pub(crate) enum Ended {
    /// Results were read (possibly fewer than the tests shipped).
    Results {
        results: Vec<TestResult>,
        exit_code: Option<i64>,
    },
    /// The shard failed without any result: retry elsewhere.
    NoResults(String),
    /// The host is gone: re-queue everything it had.
    HostLost(String),
    /// The engine refused the container's configuration: bad input, the run stops.
    Rejected(String),
    TimedOut(Duration),
    Cancelled,
}

pub(crate) struct AttemptRun {
    pub ended: Ended,
    /// Tests the runner announced finished on its trusted live channel: they stand in for the
    /// report when the attempt ends without one.
    pub announced: BTreeMap<TestId, TestResult>,
    pub container: String,
    pub phases: Phases,
    pub started: Instant,
    pub finished: Instant,
}

pub(crate) struct Shared<'a> {
    pub suite: &'a Suite,
    pub opts: &'a RunOptions,
    pub payloads: Arc<super::tools::HostPayloads>,
    pub observer: super::Observer,
    pub shard_count: usize,
    pub cancel: CancellationToken,
    /// Slot containers no worker holds: opened by the head start for the first phase's
    /// workers, or left by a phase's workers for the next phase's.
    pub pre_opened: super::slots::SlotPool,
    /// The batches cut from the plan (see [`super::batch`]): a slot may run any of them
    /// (its host's, or stolen), so a slot container opened in the first phase gets all their
    /// files at once.
    pub pooled: Vec<QueuedShard>,
}

/// How long an interrupted shard may take to kill and remove its container.
const CANCEL_GRACE: Duration = Duration::from_secs(3);
/// How long a timed-out shard may take to kill and remove its container.
const TIMEOUT_GRACE: Duration = Duration::from_secs(30);

/// Runs `job` on `host`. `host_gone` is cancelled with the run (interrupt) or when the host
/// stops answering its heartbeat: either way the shard is abandoned there. Work runs in
/// `holder`'s slot container where the host pools (see [`super::slots::pools`]), else in a
/// container of its own.
pub(crate) async fn run(
    shared: &Shared<'_>,
    host: &LiveHost,
    job: &QueuedShard,
    host_gone: &CancellationToken,
    holder: &mut super::slots::SlotHolder,
) -> AttemptRun {
    let started = Instant::now();
    let announced = Announced::default();
    let done = |ended, container: String, phases| AttemptRun {
        ended,
        announced: take(&announced),
        container,
        phases,
        started,
        finished: Instant::now(),
    };
    let name = container_name(shared, job);
    // A whole shard uses its slot's container only when one is open already: opening one
    // just for it costs what a container of its own does, plus a slower upload into a
    // running container. Batches open one, since more batches follow.
    let pooled = super::slots::pools(shared.opts, &shared.payloads, host)
        && (job.batched || holder.slot().is_some_and(|s| !s.is_broken()));
    let root = match host.engine.make_root() {
        Ok(r) if pooled && !holder.unsupported() => batch_root(&r, job),
        Ok(r) => r,
        Err(e) => return done(classify(e), name, Phases::default()),
    };
    let (container_spec, artifacts) = container_spec(shared, host, job, root, name.clone(), &announced);
    let preload = || preloaded_files(shared, host);
    if pooled && let Err(e) = holder.open(shared.opts, &shared.payloads, host, preload).await {
        return done(classify(e), name, Phases::default());
    }
    // The container the attempt ran in, for the record whatever way it ends.
    let name = match holder.slot() {
        Some(slot) if pooled => slot.name().to_string(),
        _ => name,
    };
    let token = host_gone.child_token();
    let fut = async {
        match holder.slot() {
            Some(slot) if pooled => host.engine.run_in_slot(slot, container_spec, token.clone()).await,
            _ => host.engine.run_shard(container_spec, token.clone()).await,
        }
    };
    let bounded = bounded(shared, fut, &token, host_gone).await;
    // A batch that did not end on its own may still be running in its slot's container (the
    // engine gets a grace period, not a promise): the container goes, the next batch gets a
    // fresh one. A lost host's engine may not answer: that one is for the run's cleanup.
    let clean_end = matches!(bounded, Bounded::Ended(Ok(_)));
    if !matches!(bounded, Bounded::HostLost) && (!clean_end || holder.slot().is_some_and(|s| s.is_broken())) {
        holder.close(host).await;
    }
    let outcome = match bounded {
        Bounded::Ended(r) => r,
        Bounded::TimedOut(limit) => return done(Ended::TimedOut(limit), name, Phases::default()),
        Bounded::HostLost => {
            return done(
                Ended::HostLost(super::UNRESPONSIVE.to_string()),
                name,
                Phases::default(),
            );
        }
    };
    match outcome {
        Err(e) => done(classify(e), name, Phases::default()),
        Ok(run) => {
            save_artifacts(shared, job, &artifacts, &run.collected);
            let announced = take(&announced);
            AttemptRun {
                ended: ended(shared, job, &run.collected, &announced),
                announced,
                container: run.container,
                phases: run.phases,
                started,
                finished: Instant::now(),
            }
        }
    }
}

/// A batch's directory in its slot container, under the container root `root`.
fn batch_root(root: &str, job: &QueuedShard) -> String {
    format!("{root}/batch/{}-{}", job.shard, job.attempt)
}

/// The files of every batch cut from the plan as it would run on `host`: a slot container
/// opened with them saves each of those batches an upload, which on a busy engine costs about
/// as much as the runner's start. A batch merged with others has other files, and uploads.
fn preloaded_files(shared: &Shared<'_>, host: &LiveHost) -> Vec<Vec<(String, Vec<u8>)>> {
    let Ok(root) = host.engine.make_root() else {
        return Vec::new();
    };
    shared
        .pooled
        .iter()
        .map(|job| {
            let root = batch_root(&root, job);
            let name = container_name(shared, job);
            let (spec, _) = container_spec(shared, host, job, root, name, &Announced::default());
            crate::engine::docker::placed_files(&spec)
        })
        .collect()
}

/// `cargo-shard-<run>-<shard>-<attempt>`: unique per run, shard and attempt.
fn container_name(shared: &Shared<'_>, job: &QueuedShard) -> String {
    format!("cargo-shard-{}-{}-{}", shared.opts.run_id, job.shard, job.attempt)
}

/// The container for `job` on `host`, its files under `root`, and the artifacts to save.
fn container_spec(
    shared: &Shared<'_>,
    host: &LiveHost,
    job: &QueuedShard,
    root: String,
    name: String,
    announced: &Announced,
) -> (ContainerSpec, Vec<String>) {
    // Staged parts are mounted where the container root says, whatever the batch's root.
    let staged_root = if host.engine.is_local() {
        root.clone()
    } else {
        crate::engine::CONTAINER_ROOT.to_string()
    };
    let ctx = ShardCtx {
        root: root.clone(),
        index: job.shard,
        count: shared.shard_count,
        run_id: shared.opts.run_id.clone(),
        host: host.host.name.clone(),
        attempt: job.attempt,
        test_threads: host.host.test_threads,
        test_timeout: shared.opts.test_timeout,
        tools: shared.payloads.tools(&host.host.name, &staged_root),
        places: shared.payloads.places(&host.host.name, &staged_root),
        in_container: !host.engine.is_local(),
    };
    let mut spec = shared.suite.recipe.prepare(&job.tests, &ctx);
    let mut env: BTreeMap<String, String> = host.host.env.clone();
    env.extend(spec.env.drain(..));
    env.extend(shard_env(
        &ctx.run_id,
        ctx.index,
        ctx.count,
        &ctx.host,
        ctx.attempt,
    ));
    spec.env = env.into_iter().collect();
    let docker = !host.engine.is_local();
    let (mut extras, artifacts) = shared.opts.job.shard(&ctx, &mut spec, docker, &host.host.image);
    extras.on_line = live_tap(shared, job, &host.host.name, announced.clone());
    if artifacts.is_empty() {
        // A report that would only repeat what the runner said live is not downloaded.
        let (recipe, tests, announced) = (shared.suite.recipe.clone(), job.tests.clone(), announced.clone());
        extras.collect_check = crate::engine::environment::CollectCheck::new(move |exit_code| {
            let ends = announced.lock().unwrap_or_else(|p| p.into_inner());
            !recipe.live_settles(exit_code, &tests, &ends)
        });
    }
    extras.mounts = shared.payloads.mounts(&host.host.name);
    let mut labels = host.host.labels.clone();
    labels.insert(RUN_LABEL.to_string(), shared.opts.run_id.clone());
    labels.insert(SHARD_LABEL.to_string(), job.shard.to_string());
    let spec = ContainerSpec {
        name,
        image: host.host.image.clone(),
        network: host.host.network.clone(),
        labels,
        payload: shared.payloads.payload(&host.host.name),
        spec,
        log_path: log_path(shared.opts, job),
        keep: shared.opts.keep_containers,
        root,
        extras,
    };
    (spec, artifacts)
}

/// How waiting for an engine's shard ended.
enum Bounded<T> {
    Ended(T),
    TimedOut(Duration),
    HostLost,
}

/// Waits for `fut` under the shard timeout, giving it up when the host goes.
async fn bounded<T>(
    shared: &Shared<'_>,
    fut: impl std::future::Future<Output = Result<T, EngineError>>,
    token: &CancellationToken,
    host_gone: &CancellationToken,
) -> Bounded<Result<T, EngineError>> {
    tokio::pin!(fut);
    // `None` waits forever: a pending sleep stands in for "no --shard-timeout".
    let limit = shared.opts.shard_timeout;
    let sleep = tokio::time::sleep(limit.unwrap_or(Duration::from_secs(u32::MAX as u64)));
    tokio::select! {
        r = &mut fut => Bounded::Ended(r),
        _ = sleep, if limit.is_some() => {
            token.cancel();
            // Let the engine kill and remove the container before going on, within reason:
            // a hung engine's leftovers are for the run's final cleanup.
            let _ = tokio::time::timeout(TIMEOUT_GRACE, &mut fut).await;
            Bounded::TimedOut(limit.unwrap_or_default())
        }
        _ = host_gone.cancelled() => {
            // Interrupted, or the host stopped answering: the engine sees the same cancellation
            // and kills the container. An engine that does not answer must not hold us up.
            let r = tokio::time::timeout(CANCEL_GRACE, &mut fut).await;
            if !shared.cancel.is_cancelled() {
                return Bounded::HostLost;
            }
            match r {
                Ok(r) => Bounded::Ended(r),
                Err(_) => Bounded::Ended(Err(EngineError::Cancelled)),
            }
        }
    }
}

/// Writes the files the job asked to keep, secrets masked; a failure is a warning only.
fn save_artifacts(shared: &Shared<'_>, job: &QueuedShard, artifacts: &[String], collected: &Collected) {
    if artifacts.is_empty() {
        return;
    }
    let dir = crate::job::artifacts::shard_dir(&shared.opts.out_dir, job.shard);
    let masked = collected
        .files
        .iter()
        .map(|(p, data)| (p.clone(), shared.opts.job.secrets.redact(data)))
        .collect();
    if let Err(e) = crate::job::artifacts::save(&dir, artifacts, &masked) {
        (shared.observer)(&super::Event::Warning(format!(
            "shard {}: cannot write artifacts to {}: {e}",
            job.shard,
            dir.display()
        )));
    }
}

/// How a shard that ran to its end ended: its results (from its report, or from what the
/// runner's trusted channel said when that settles it: see
/// [`crate::discover::ShardRecipe::live_settles`]), or why there are none.
fn ended(
    shared: &Shared<'_>,
    job: &QueuedShard,
    collected: &Collected,
    announced: &BTreeMap<TestId, TestResult>,
) -> Ended {
    let exit_code = collected.exit_code;
    let results = shared.suite.recipe.results(&job.tests, collected);
    if !results.is_empty() || job.tests.is_empty() {
        return Ended::Results { results, exit_code };
    }
    if shared.suite.recipe.live_settles(exit_code, &job.tests, announced) {
        let results = job
            .tests
            .iter()
            .filter_map(|t| announced.get(t).cloned())
            .collect();
        return Ended::Results { results, exit_code };
    }
    let code = exit_code.map(|c| c.to_string()).unwrap_or_else(|| "?".into());
    Ended::NoResults(if collected.oom_killed {
        format!("container ran out of memory (OOM-killed, exit code {code}) before reporting any result")
    } else {
        format!("shard exited with code {code} before reporting any result")
    })
}

/// `run` with every secret masked in its decoded results and reasons: raw masking cannot see
/// a value a JUnit or JSON file held escaped.
pub(crate) fn scrubbed(mut run: AttemptRun, secrets: &crate::engine::redact::Secrets) -> AttemptRun {
    match &mut run.ended {
        Ended::Results { results, .. } => results.iter_mut().for_each(|r| secrets.scrub_result(r)),
        Ended::NoResults(why) | Ended::HostLost(why) | Ended::Rejected(why) => secrets.scrub(why),
        Ended::TimedOut(_) | Ended::Cancelled => {}
    }
    run.announced.values_mut().for_each(|r| secrets.scrub_result(r));
    run
}

type Announced = Arc<Mutex<BTreeMap<TestId, TestResult>>>;

/// What was announced so far, each failure's printed output without its surrounding blank
/// lines.
fn take(announced: &Announced) -> BTreeMap<TestId, TestResult> {
    let mut taken = std::mem::take(&mut *announced.lock().unwrap_or_else(|p| p.into_inner()));
    for r in taken.values_mut() {
        let printed = r.stdout.trim_matches('\n');
        r.stdout = if printed.is_empty() {
            String::new()
        } else {
            format!("{printed}\n")
        };
    }
    taken
}

/// Reads the shard's output as it comes: tells the observer each test that starts and ends
/// (display, once per test), announces each failing test once, and keeps every end read from
/// the runner's trusted channel in `announced`, where it may stand in for the report.
fn live_tap(
    shared: &Shared<'_>,
    job: &QueuedShard,
    host: &str,
    announced: Announced,
) -> crate::engine::lines::LineSink {
    let recipe = shared.suite.recipe.clone();
    let observer = shared.observer.clone();
    let host = host.to_string();
    let (shard, attempt) = (job.shard, job.attempt);
    let ours = live_names(&job.tests);
    // Ends already shown: a runner may print a test's end more than once (or a test may
    // print one); the first is shown, a trusted one is kept.
    let shown = Mutex::new(HashMap::<TestId, TestStatus>::new());
    crate::engine::lines::LineSink::new(move |stream, line| {
        let Some(live) = recipe.live(stream, line) else {
            return;
        };
        let Some(id) = ours.get(&live.name) else {
            return;
        };
        let end = match live.event {
            LiveEvent::Started => {
                observer(&super::Event::TestStarted {
                    id: id.clone(),
                    shard,
                    host: host.clone(),
                    attempt,
                });
                return;
            }
            LiveEvent::Finished(end) => end,
        };
        let result = TestResult {
            id: id.clone(),
            status: end.status,
            duration: end.duration,
            message: end.message,
            detail: String::new(),
            stdout: end.output,
            stderr: String::new(),
            subtests: Vec::new(),
        };
        let first = shown
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), end.status)
            .is_none();
        if live.trusted {
            announced
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.clone(), result.clone());
        }
        if !first {
            return;
        }
        if end.status == TestStatus::Failed {
            observer(&super::Event::TestFailing {
                id: id.clone(),
                shard,
                host: host.clone(),
            });
        }
        observer(&super::Event::TestEnded {
            result,
            shard,
            host: host.clone(),
            attempt,
        });
    })
}

/// Runners print either the full id or the bare name; a bare name shared by two of the
/// shard's tests identifies neither. Only this shard's tests: a harness line (gocheck's
/// `--- FAIL: Test` hook) is not a test of ours.
fn live_names(tests: &[TestId]) -> HashMap<String, TestId> {
    let mut ours: HashMap<String, TestId> = tests.iter().map(|t| (t.to_string(), t.clone())).collect();
    let mut names: HashMap<&str, usize> = HashMap::new();
    for t in tests {
        *names.entry(t.name.as_str()).or_default() += 1;
    }
    for t in tests {
        if names[t.name.as_str()] == 1 {
            ours.entry(t.name.clone()).or_insert_with(|| t.clone());
        }
    }
    ours
}

/// `<out>/logs/<shard>.log`, or `<shard>.attempt<N>.log` for later attempts.
pub(crate) fn log_path(opts: &RunOptions, job: &QueuedShard) -> std::path::PathBuf {
    let name = if job.attempt == 1 {
        format!("{}.log", job.shard)
    } else {
        format!("{}.attempt{}.log", job.shard, job.attempt)
    };
    opts.out_dir.join("logs").join(name)
}

fn classify(e: EngineError) -> Ended {
    match e {
        EngineError::Cancelled => Ended::Cancelled,
        EngineError::Unreachable { .. } | EngineError::Lost { .. } | EngineError::ImageMissing { .. } => {
            Ended::HostLost(e.to_string())
        }
        EngineError::Shard { .. } => Ended::NoResults(e.to_string()),
        EngineError::Rejected { .. } => Ended::Rejected(e.to_string()),
    }
}
