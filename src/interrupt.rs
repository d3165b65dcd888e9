//! Ctrl-C and SIGTERM from the first second of a run. Before the shards start (building,
//! listing, planning) an interrupt stops every build or listing process we started — each runs
//! in its own process group, so the terminal's Ctrl-C reaches us and not `cargo` (which would
//! report "could not compile" and exit 101) — writes a JUnit saying the run was interrupted
//! and exits 130. Once the shards run, the first interrupt cancels the run (the scheduler
//! removes the containers and the reports are written) and a second exits at once.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Output};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::exit;

#[derive(Default)]
struct State {
    /// Process groups of build and listing processes still running.
    groups: BTreeSet<i32>,
    /// The running phase: its cancellation and run id.
    run: Option<(CancellationToken, String)>,
    /// Where an early end writes its one-case JUnit; `None` once the real report is written.
    junit: Option<PathBuf>,
    /// Removes what was created on the hosts before the shards started (a run's head start).
    before_exit: Option<EarlyCleanup>,
    /// The run is ending before its shards: no build or listing process may start any more.
    closed: bool,
}

/// Work an early end must finish before the process exits.
pub type EarlyCleanup = Box<dyn FnOnce() -> futures_util::future::BoxFuture<'static, ()> + Send>;

static STATE: Mutex<Option<State>> = Mutex::new(None);
/// Set the moment an interrupt arrives before the shards start: a build that fails because we
/// stopped it must not be reported as a failed build.
static STOPPING: AtomicBool = AtomicBool::new(false);

fn with<T>(f: impl FnOnce(&mut State) -> T) -> T {
    let mut guard = STATE.lock().unwrap_or_else(|p| p.into_inner());
    f(guard.get_or_insert_with(State::default))
}

/// How long build processes get to stop after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Starts watching SIGINT and SIGTERM; call once, inside the runtime, before anything else.
pub fn install() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        return;
    };
    tokio::spawn(async move {
        tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
        let Some((cancel, run_id)) = with(|s| s.run.clone()) else {
            STOPPING.store(true, Ordering::SeqCst);
            if let Some(cleanup) = with(|s| s.before_exit.take()) {
                tokio::task::spawn_blocking(stop_groups).await.ok();
                cleanup().await;
            }
            tokio::task::spawn_blocking(|| early_exit("the run was interrupted before any test ran"))
                .await
                .ok();
            return;
        };
        eprintln!("\ninterrupted: stopping shards and removing containers (interrupt again to exit at once)");
        cancel.cancel();
        tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
        eprintln!("exiting now; remove what is left with `cargo shard gc --run {run_id}`");
        early_exit(&format!(
            "the run was interrupted twice and left before its results were collected; run `cargo shard gc --run {run_id}`"
        ));
    });
}

/// When an interrupt is stopping the run, waits for it to exit the process (a build that
/// failed because it was stopped is not a failed build); otherwise returns at once.
pub fn settle() {
    if STOPPING.load(Ordering::SeqCst) {
        std::thread::sleep(STOP_GRACE + Duration::from_secs(5));
    }
}

/// Stops the build processes, writes the early-end JUnit and exits 130.
fn early_exit(why: &str) -> ! {
    stop_groups();
    if let Some(path) = with(|s| s.junit.take()) {
        let _ = crate::report::junit::write_early_end(&path, why);
    }
    eprintln!("interrupted: {why}");
    std::process::exit(exit::INTERRUPTED as i32);
}

/// Stops the build and listing processes still running (a run that cannot go on without
/// them finishing), as an interrupt would, but without exiting.
pub async fn stop_builds() {
    // Closed first: a build step between two processes must not start its next one.
    with(|s| s.closed = true);
    let _ = tokio::task::spawn_blocking(stop_groups).await;
}

/// SIGTERM to every recorded process group, then SIGKILL to what is left after a grace.
fn stop_groups() {
    let groups: Vec<i32> = with(|s| s.groups.iter().copied().collect());
    let alive = |g: i32| unsafe { libc::kill(-g, 0) } == 0;
    for &g in &groups {
        unsafe { libc::kill(-g, libc::SIGTERM) };
    }
    let deadline = Instant::now() + STOP_GRACE;
    while groups.iter().any(|&g| alive(g)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for &g in &groups {
        unsafe { libc::kill(-g, libc::SIGKILL) };
    }
}

/// Where an early end (interrupt, failed build, no host) writes its JUnit.
pub fn set_junit(path: PathBuf) {
    with(|s| s.junit = Some(path));
}

/// The real report is written: nothing may replace it any more.
pub fn report_written() {
    with(|s| s.junit = None);
}

/// The shards start: from now an interrupt cancels `cancel` first (and the run removes
/// what it created).
pub fn running(cancel: CancellationToken, run_id: String) {
    with(|s| {
        s.run = Some((cancel, run_id));
        s.before_exit = None;
    });
}

/// Before the shards start, an interrupt runs `cleanup` before the process exits.
pub fn before_exit(cleanup: EarlyCleanup) {
    with(|s| s.before_exit = Some(cleanup));
}

/// Spawns `cmd` in its own process group, recorded until [`release`] so an interrupt stops
/// it and everything it started.
pub fn spawn(cmd: &mut Command) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    // Checked, spawned and recorded under one lock, so [`stop_builds`] misses none.
    with(|s| {
        if s.closed {
            return Err(std::io::Error::other(
                "the run is ending: nothing more is started",
            ));
        }
        let child = cmd.spawn()?;
        s.groups.insert(child.id() as i32);
        Ok(child)
    })
}

/// Forgets `child`'s process group once it has exited, so an interrupt no longer signals it.
pub fn release(child: &Child) {
    with(|s| s.groups.remove(&(child.id() as i32)));
}

/// `cmd.output()`, in its own recorded process group; stdin is closed.
pub fn output(cmd: &mut Command) -> std::io::Result<Output> {
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = spawn(cmd)?;
    let id = child.id() as i32;
    let out = child.wait_with_output();
    with(|s| s.groups.remove(&id));
    out
}
