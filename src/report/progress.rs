//! Live progress while shards run: on a terminal, one line per host (shards running and
//! done, tests passed and failed, the test it has been running longest) under an overall bar
//! with an ETA from the plan; elsewhere plain timestamped lines and a status line when nothing
//! was said for a while; on GitHub Actions and GitLab each shard's log folded (see `ci`).
//! Failures are printed as they arrive.
//!
//! Counts move per test, with the runner's live word (`TestEnded`); when the shard's report
//! arrives (`TestFinished`) it replaces that word, so a test counts once, as the report says.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::ci::{self, Ci};
use super::stats::{output_tail, strip_control};
use super::style::Paint;
use crate::plan::Plan;
use crate::run::{AttemptEnd, Event, Observer, ShardAttempt};
use crate::test_result::{TestId, TestResult, TestStatus};

/// How often the bars' ETA is recomputed.
const TICK: Duration = Duration::from_millis(500);
/// Without a terminal, a status line after this long without any other line.
const HEARTBEAT: Duration = Duration::from_secs(30);
/// Lines of a failing test's output printed as it fails (the summary shows more).
const LIVE_TAIL: usize = 8;

/// How chatty to be, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgressMode {
    /// Draw bars (a terminal and not `--no-progress`).
    pub bars: bool,
    /// Print nothing live but lost hosts (failures wait for the summary).
    pub quiet: bool,
    /// One line per test.
    pub verbose: bool,
    /// Fold each shard's log and annotate failures as this CI shows them.
    pub ci: Ci,
    /// Whether status words are coloured.
    pub paint: Paint,
}

impl ProgressMode {
    /// Picks the mode from the flags, the terminal and the CI environment.
    pub fn detect(no_progress: bool, quiet: bool, verbose: bool, paint: Paint) -> Self {
        use std::io::IsTerminal;
        let ci = std::env::var_os("CI").is_some();
        Self {
            bars: !no_progress && !quiet && !ci && std::io::stderr().is_terminal(),
            quiet,
            verbose,
            ci: Ci::detect(),
            paint,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct HostCounts {
    planned: usize,
    running: usize,
    done: usize,
    passed: usize,
    failed: usize,
}

struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    hosts: BTreeMap<String, ProgressBar>,
}

struct State {
    mode: ProgressMode,
    t0: Instant,
    /// When the last line was printed, for the heartbeat.
    last_line: Instant,
    total_tests: usize,
    done_tests: usize,
    failed: usize,
    hosts: BTreeMap<String, HostCounts>,
    host_width: usize,
    lost: BTreeMap<String, String>,
    /// The prediction per unit of work (a planned shard, or a batch once started), the
    /// plan's whole, the predicted work of units ended, and the run's slots: the ETA's inputs.
    predicted: BTreeMap<usize, Duration>,
    planned_work: Duration,
    done_work: Duration,
    makespan: Duration,
    slots: usize,
    running: BTreeMap<usize, Instant>,
    finished: BTreeSet<usize>,
    bars: Option<Bars>,
    /// Tests counted from the live stream, until their shard's report replaces the count.
    live: HashMap<TestId, LiveMark>,
    /// Per running shard: its tests, and how many of them ended live.
    shard_tests: BTreeMap<usize, (usize, usize)>,
    /// Per host, the tests it is running now: since when, in which shard.
    now: BTreeMap<String, BTreeMap<TestId, (usize, Instant)>>,
}

/// A live end counted for a test.
#[derive(Debug, Clone)]
struct LiveMark {
    shard: usize,
    host: String,
    status: TestStatus,
    /// Its `-v` line was printed already.
    printed: bool,
}

impl State {
    fn line(&mut self, msg: &str) {
        self.last_line = Instant::now();
        let stamped = format!("[{:>7.1}s] {msg}", self.t0.elapsed().as_secs_f64());
        match &self.bars {
            Some(b) => {
                let _ = b.multi.println(stamped);
            }
            None => eprintln!("{stamped}"),
        }
    }

    /// Time left if the remaining work spreads over every slot, never less than what the
    /// longest running shard still has to do; zero once the plan is overdue. The remaining
    /// work is the plan's less what ended and what the running units did, so batches not
    /// started yet (cut from shards, see `run::batch`) count too.
    fn eta(&self, now: Instant) -> Duration {
        let mut done = self.done_work;
        let mut longest = Duration::ZERO;
        for (shard, started) in &self.running {
            let Some(predicted) = self.predicted.get(shard) else {
                continue;
            };
            let mut left = predicted.saturating_sub(now.duration_since(*started));
            // Tests ended so far say how much of the shard is left, whatever the clock.
            if let Some(&(tests, ended)) = self.shard_tests.get(shard)
                && ended > 0
            {
                let share = predicted.mul_f64(1.0 - ended.min(tests) as f64 / tests.max(1) as f64);
                left = left.min(share);
            }
            longest = longest.max(left);
            done += predicted.saturating_sub(left);
        }
        let remaining = self.planned_work.saturating_sub(done);
        (remaining / self.slots.max(1) as u32).max(longest)
    }

    fn status(&self) -> String {
        let p = self.mode.paint;
        let running: usize = self.hosts.values().map(|h| h.running).sum();
        let eta = self.eta(Instant::now());
        let eta = if self.finished.len() >= self.predicted.len() || !eta.is_zero() {
            format!("ETA {}", clock(eta))
        } else {
            "over the plan".into()
        };
        format!(
            "{}/{} tests, {}; {running} {} running, {}/{} done; elapsed {}, {eta} (plan {})",
            self.done_tests,
            self.total_tests,
            p.count(self.failed, "failed", Paint::fail),
            super::style::plural(running, "shard"),
            self.finished.len(),
            self.predicted.len(),
            clock(self.t0.elapsed()),
            clock(self.makespan),
        )
    }

    fn redraw(&self) {
        let Some(b) = &self.bars else {
            return;
        };
        let p = self.mode.paint;
        b.overall.set_position(self.done_tests as u64);
        b.overall.set_message(self.status());
        for (host, bar) in &b.hosts {
            let w = self.host_width;
            if let Some(reason) = self.lost.get(host) {
                bar.set_message(format!("{host:<w$}  {}", p.warn(&format!("lost: {reason}"))));
                continue;
            }
            bar.set_message(self.host_line(host, Instant::now()));
        }
    }

    /// A host's line under the bar: its shards, its tests so far, what it runs now.
    fn host_line(&self, host: &str, now: Instant) -> String {
        let w = self.host_width;
        let h = self.hosts.get(host).copied().unwrap_or_default();
        format!(
            "{host:<w$}  {} running, {}/{} shards done, {} passed, {}{}",
            h.running,
            h.done,
            h.planned,
            h.passed,
            self.mode.paint.count(h.failed, "failed", Paint::fail),
            self.running_now(host, now),
        )
    }

    /// `; now: alpha tests::slow (12s) +2`: the test the host has been running longest.
    fn running_now(&self, host: &str, now: Instant) -> String {
        let Some(tests) = self.now.get(host).filter(|t| !t.is_empty()) else {
            return String::new();
        };
        let (id, (_, since)) = tests
            .iter()
            .min_by_key(|(id, (_, since))| (*since, *id))
            .expect("not empty");
        let more = match tests.len() {
            1 => String::new(),
            n => format!(" +{}", n - 1),
        };
        format!("; now: {id} ({}){more}", clock(now.duration_since(*since)))
    }

    /// Counts (`add`) or uncounts a test's status for the bar and its host's line.
    fn count(&mut self, host: &str, status: TestStatus, add: bool) {
        let step = |n: &mut usize| *n = if add { *n + 1 } else { n.saturating_sub(1) };
        step(&mut self.done_tests);
        self.done_tests = self.done_tests.min(self.total_tests);
        let h = self.hosts.entry(host.to_string()).or_default();
        match status {
            TestStatus::Passed => step(&mut h.passed),
            TestStatus::Failed | TestStatus::Error => {
                step(&mut h.failed);
                step(&mut self.failed);
            }
            TestStatus::Skipped => {}
        }
    }

    /// Off a terminal, whether it is time for a status line: nothing said for a while.
    fn heartbeat_due(&self, now: Instant) -> bool {
        self.bars.is_none() && !self.mode.quiet && now.duration_since(self.last_line) >= HEARTBEAT
    }

    fn tick(&mut self) {
        if self.bars.is_some() {
            self.redraw();
        } else if self.heartbeat_due(Instant::now()) {
            let status = self.status();
            self.line(&status);
        }
    }
}

/// Live progress for one run.
pub struct Progress {
    state: Arc<Mutex<State>>,
    ticker: Mutex<Option<(mpsc::Sender<()>, JoinHandle<()>)>>,
}

impl Progress {
    /// The observer the runner calls.
    pub fn observer(&self) -> Observer {
        let state = self.state.clone();
        Arc::new(move |event: &Event| {
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            on_event(&mut s, event);
            s.redraw();
        })
    }

    /// Stops the ticker and clears the bars so the summary prints on a clean screen.
    pub fn finish(&self) {
        let ticker = self.ticker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((stop, handle)) = ticker {
            drop(stop);
            let _ = handle.join();
        }
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = &s.bars {
            for bar in b.hosts.values() {
                bar.finish_and_clear();
            }
            b.overall.finish_and_clear();
            let _ = b.multi.clear();
        }
    }
}

/// Starts progress for `plan` on `hosts` (name, slots).
pub fn start(mode: ProgressMode, hosts: &[(String, usize)], plan: &Plan) -> Progress {
    let host_width = hosts.iter().map(|h| h.0.len()).max().unwrap_or(4);
    let bars = mode.bars.then(|| {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8));
        let spinner = ProgressStyle::with_template("{spinner} {msg}").expect("valid template");
        let host_bars = hosts
            .iter()
            .map(|(h, _)| {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(spinner.clone());
                bar.enable_steady_tick(Duration::from_millis(120));
                (h.clone(), bar)
            })
            .collect();
        let overall = multi.add(ProgressBar::new(plan.test_count() as u64));
        let bar = if mode.paint.enabled {
            "{bar:40.green/white}"
        } else {
            "{bar:40}"
        };
        overall.set_style(
            ProgressStyle::with_template(&format!("{bar} {{msg}}"))
                .expect("valid template")
                .progress_chars("█▉▊▋▌▍▎▏░"),
        );
        Bars {
            multi,
            overall,
            hosts: host_bars,
        }
    });
    let mut counts: BTreeMap<String, HostCounts> = hosts
        .iter()
        .map(|(h, _)| (h.clone(), HostCounts::default()))
        .collect();
    for s in &plan.shards {
        if let Some(h) = s.host.as_ref().and_then(|h| counts.get_mut(h)) {
            h.planned += 1;
        }
    }
    let now = Instant::now();
    let state = Arc::new(Mutex::new(State {
        mode,
        t0: now,
        last_line: now,
        total_tests: plan.test_count(),
        done_tests: 0,
        failed: 0,
        hosts: counts,
        host_width,
        lost: BTreeMap::new(),
        predicted: plan.shards.iter().map(|s| (s.index, s.predicted)).collect(),
        planned_work: plan.shards.iter().map(|s| s.predicted).sum(),
        done_work: Duration::ZERO,
        makespan: plan.makespan,
        slots: hosts.iter().map(|h| h.1).sum(),
        running: BTreeMap::new(),
        finished: BTreeSet::new(),
        bars,
        live: HashMap::new(),
        shard_tests: BTreeMap::new(),
        now: BTreeMap::new(),
    }));
    state.lock().unwrap_or_else(|p| p.into_inner()).redraw();
    let (stop, ticks) = mpsc::channel::<()>();
    let ticking = state.clone();
    let handle = std::thread::spawn(move || {
        while let Err(mpsc::RecvTimeoutError::Timeout) = ticks.recv_timeout(TICK) {
            ticking.lock().unwrap_or_else(|p| p.into_inner()).tick();
        }
    });
    Progress {
        state,
        ticker: Mutex::new(Some((stop, handle))),
    }
}

fn on_event(s: &mut State, event: &Event) {
    match event {
        Event::ShardStarted {
            shard,
            attempt,
            host,
            tests,
            predicted,
        } => {
            s.hosts.entry(host.clone()).or_default().running += 1;
            s.running.insert(*shard, Instant::now());
            s.predicted.insert(*shard, *predicted);
            s.shard_tests.insert(*shard, (*tests, 0));
            s.finished.remove(shard);
            if !s.mode.quiet && s.bars.is_none() {
                let again = if *attempt > 1 {
                    format!(" (attempt {attempt})")
                } else {
                    String::new()
                };
                s.line(&format!("shard {shard} started on {host}: {tests} tests{again}"));
            }
        }
        Event::ShardFinished(a) => shard_finished(s, a),
        // Failures show at once; details follow with the shard's results. Quiet runs show
        // them once, in the summary.
        Event::TestFailing { .. } if s.mode.quiet => {}
        Event::TestFailing { id, shard, host } => {
            let text = format!(
                "{} {id} [shard {shard} on {host}] (output when the shard ends)",
                s.mode.paint.fail("FAILING")
            );
            s.line(&text);
        }
        Event::TestStarted { id, shard, host, .. } => {
            s.now
                .entry(host.clone())
                .or_default()
                .insert(id.clone(), (*shard, Instant::now()));
        }
        Event::TestEnded {
            result, shard, host, ..
        } => test_ended(s, result, *shard, host),
        Event::TestFinished {
            result, shard, host, ..
        } => {
            if let Some(h) = s.now.get_mut(host) {
                h.remove(&result.id);
            }
            // The report replaces the live word: uncount it, then count what the report says.
            let live = s.live.remove(&result.id);
            if let Some(mark) = &live {
                s.count(&mark.host, mark.status, false);
            }
            let printed = live.is_some_and(|m| m.printed && m.status == result.status);
            test_finished(s, result, *shard, host, printed)
        }
        Event::HostLost { host, reason } => {
            s.lost.insert(host.clone(), reason.clone());
            let text = format!(
                "{} {host} lost: {reason}; its shards move to the others",
                s.mode.paint.warn("HOST")
            );
            s.line(&text);
        }
        // `-q` prints nothing live but lost hosts; the bytes stay in the events and summary.
        Event::Staged { host, stats } if !s.mode.quiet => {
            let text = format!("{} {host}: {}", s.mode.paint.dim("STAGE"), stats.describe());
            s.line(&text);
        }
        Event::Staged { .. } => {}
        Event::Warning(text) => s.line(text),
    }
}

/// A test's end as the runner announced it live: counted now, replaced by the report later.
fn test_ended(s: &mut State, result: &TestResult, shard: usize, host: &str) {
    if let Some(h) = s.now.get_mut(host) {
        h.remove(&result.id);
    }
    if s.live.contains_key(&result.id) {
        return;
    }
    s.count(host, result.status, true);
    if let Some(t) = s.shard_tests.get_mut(&shard) {
        t.1 += 1;
    }
    let printed =
        s.mode.verbose && !s.mode.quiet && matches!(result.status, TestStatus::Passed | TestStatus::Skipped);
    if printed {
        let line = verbose_line(s.mode.paint, result, shard, host);
        s.line(&line);
    }
    s.live.insert(
        result.id.clone(),
        LiveMark {
            shard,
            host: host.to_string(),
            status: result.status,
            printed,
        },
    );
}

/// `PASS   0.01s alpha tests::quick [shard 0 on e1]`.
fn verbose_line(p: Paint, result: &TestResult, shard: usize, host: &str) -> String {
    let word = match result.status {
        TestStatus::Passed => p.pass("PASS"),
        _ => p.warn("SKIP"),
    };
    format!(
        "{word} {:>6.2}s {} [shard {shard} on {host}]",
        result.duration.as_secs_f64(),
        result.id
    )
}

fn shard_finished(s: &mut State, a: &ShardAttempt) {
    // Live words the shard's report did not confirm (it never came): uncounted; what
    // happens to those tests comes as their own `TestFinished` or with a later attempt.
    let unconfirmed: Vec<TestId> = s
        .live
        .iter()
        .filter(|(_, m)| m.shard == a.shard)
        .map(|(id, _)| id.clone())
        .collect();
    for id in unconfirmed {
        if let Some(mark) = s.live.remove(&id) {
            s.count(&mark.host, mark.status, false);
        }
    }
    if let Some(h) = s.now.get_mut(&a.host) {
        h.retain(|_, (shard, _)| *shard != a.shard);
    }
    s.shard_tests.remove(&a.shard);
    let p = s.mode.paint;
    let h = s.hosts.entry(a.host.clone()).or_default();
    h.running = h.running.saturating_sub(1);
    h.done += 1;
    if s.running.remove(&a.shard).is_some() {
        s.done_work += s.predicted.get(&a.shard).copied().unwrap_or(a.predicted);
    }
    s.finished.insert(a.shard);
    let how = match &a.end {
        AttemptEnd::Exited(Some(0)) => p.pass("exit 0"),
        AttemptEnd::Exited(code) => p.fail(&format!(
            "exit {}",
            code.map(|c| c.to_string()).unwrap_or("?".into())
        )),
        AttemptEnd::Failed(r) => p.fail(&format!("failed: {r}")),
        AttemptEnd::TimedOut => p.fail("timed out"),
        AttemptEnd::Cancelled => p.warn("cancelled"),
    };
    let took = a.finished.saturating_sub(a.started).as_secs_f64();
    if !s.mode.quiet {
        s.line(&format!(
            "shard {} finished on {} in {took:.1}s, predicted {:.1}s ({how})",
            a.shard,
            a.host,
            a.predicted.as_secs_f64()
        ));
    }
    if s.mode.ci != Ci::None && !s.mode.quiet {
        let log = std::fs::read(&a.log).unwrap_or_default();
        let title = format!(
            "shard {} attempt {} on {} ({}, {took:.1}s)",
            a.shard,
            a.attempt,
            a.host,
            strip_control(&how)
        );
        let nonce = format!("{}-{}-{}", std::process::id(), a.shard, a.attempt);
        eprint!("{}", ci::fold_log(s.mode.ci, &title, &log, &nonce));
    }
}

/// A test's result as its shard reported it; `printed`: its `-v` line was shown live.
fn test_finished(s: &mut State, result: &TestResult, shard: usize, host: &str, printed: bool) {
    let p = s.mode.paint;
    s.count(host, result.status, true);
    let bad = matches!(result.status, TestStatus::Failed | TestStatus::Error);
    if bad {
        let word = if result.status == TestStatus::Failed {
            "FAIL"
        } else {
            "ERROR"
        };
        let mut text = format!("{} {} [shard {shard} on {host}]", p.fail(word), result.id);
        let first = result
            .message
            .as_deref()
            .map(|m| strip_control(m.lines().next().unwrap_or("")))
            .unwrap_or_default();
        if !first.is_empty() {
            text.push_str(&format!("\n    {first}"));
        }
        for l in output_tail(&result.stdout, &result.stderr, LIVE_TAIL) {
            text.push_str(&format!("\n    {}", p.dim(&format!("| {l}"))));
        }
        // Quiet runs show failures once, in the summary.
        if !s.mode.quiet {
            s.line(&text);
        }
        if s.mode.ci == Ci::GitHub {
            eprintln!("{}", ci::error_annotation(result, shard, host));
        }
    } else if s.mode.verbose && !s.mode.quiet && !printed {
        let line = verbose_line(p, result, shard, host);
        s.line(&line);
    }
}

/// `1m05s` / `42s`.
fn clock(d: Duration) -> String {
    let s = d.as_secs_f64().round() as u64;
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Shard;

    fn state(predicted: &[u64], slots: usize) -> State {
        let now = Instant::now();
        State {
            mode: ProgressMode {
                bars: false,
                quiet: true,
                verbose: false,
                ci: Ci::None,
                paint: Paint::PLAIN,
            },
            t0: now,
            last_line: now,
            total_tests: 10,
            done_tests: 0,
            failed: 0,
            hosts: BTreeMap::new(),
            host_width: 4,
            lost: BTreeMap::new(),
            predicted: predicted
                .iter()
                .enumerate()
                .map(|(i, s)| (i, Duration::from_secs(*s)))
                .collect(),
            planned_work: Duration::from_secs(predicted.iter().sum()),
            done_work: Duration::ZERO,
            makespan: Duration::from_secs(predicted.iter().copied().max().unwrap_or(0)),
            slots,
            running: BTreeMap::new(),
            finished: BTreeSet::new(),
            bars: None,
            live: HashMap::new(),
            shard_tests: BTreeMap::new(),
            now: BTreeMap::new(),
        }
    }

    #[test]
    fn eta_spreads_remaining_work_over_the_slots() {
        let mut s = state(&[10, 10, 10, 10], 2);
        let t = Instant::now();
        assert_eq!(s.eta(t), Duration::from_secs(20));
        s.running.insert(0, t);
        s.running.insert(1, t);
        assert_eq!(s.eta(t + Duration::from_secs(4)), Duration::from_secs(16));
        s.running.clear();
        s.done_work = Duration::from_secs(30);
        assert_eq!(s.eta(t), Duration::from_secs(5));
    }

    #[test]
    fn eta_counts_the_batches_of_a_shard_that_have_not_started() {
        let mut s = state(&[10, 2], 2);
        let started = |shard, secs| Event::ShardStarted {
            shard,
            attempt: 1,
            host: "e1".into(),
            tests: 2,
            predicted: Duration::from_secs(secs),
        };
        on_event(&mut s, &started(0, 5));
        on_event(&mut s, &started(1, 2));
        // Shard 0's first batch ends; its second (5 s) has not started yet: 5 s of the
        // plan's 12 are done, 7 are left over two slots.
        let mut first = attempt(0, "e1");
        first.predicted = Duration::from_secs(5);
        on_event(&mut s, &Event::ShardFinished(first));
        let left = s.eta(Instant::now());
        assert!(
            left > Duration::from_millis(3300) && left <= Duration::from_millis(3500),
            "{left:?}"
        );
    }

    #[test]
    fn eta_waits_for_the_longest_running_shard() {
        let mut s = state(&[30, 1, 1], 3);
        let t = Instant::now();
        s.running.insert(0, t);
        assert_eq!(s.eta(t + Duration::from_secs(10)), Duration::from_secs(20));
        assert_eq!(s.eta(t + Duration::from_secs(40)), Duration::from_secs(2) / 3);
    }

    #[test]
    fn status_line_counts_and_says_when_the_plan_is_overdue() {
        let mut s = state(&[1], 1);
        s.done_tests = 3;
        s.failed = 1;
        s.running.insert(0, Instant::now() - Duration::from_secs(5));
        assert!(
            s.status()
                .starts_with("3/10 tests, 1 failed; 0 shards running, 0/1 done")
        );
        assert!(s.status().contains("over the plan"), "{}", s.status());
    }

    #[test]
    fn heartbeat_only_after_silence_and_never_when_quiet() {
        let mut s = state(&[10], 1);
        s.mode.quiet = false;
        let t = s.last_line;
        assert!(!s.heartbeat_due(t + HEARTBEAT / 2));
        assert!(s.heartbeat_due(t + HEARTBEAT));
        s.mode.quiet = true;
        assert!(!s.heartbeat_due(t + HEARTBEAT * 2));
    }

    fn result(name: &str, status: TestStatus) -> TestResult {
        TestResult {
            id: TestId::new("g", name),
            status,
            duration: Duration::from_millis(10),
            message: None,
            detail: String::new(),
            stdout: String::new(),
            stderr: String::new(),
            subtests: Vec::new(),
        }
    }

    fn attempt(shard: usize, host: &str) -> ShardAttempt {
        ShardAttempt {
            shard,
            attempt: 1,
            host: host.into(),
            slot: 0,
            container: "c".into(),
            tests: 3,
            predicted: Duration::from_secs(10),
            started: Duration::ZERO,
            finished: Duration::from_secs(1),
            phases: Default::default(),
            end: AttemptEnd::TimedOut,
            log: "x.log".into(),
            rerun: false,
        }
    }

    fn counts(s: &State) -> (usize, usize, usize, usize) {
        let h = s.hosts.get("e1").copied().unwrap_or_default();
        (s.done_tests, s.failed, h.passed, h.failed)
    }

    #[test]
    fn live_ends_count_at_once_and_the_report_corrects_them_without_counting_twice() {
        let mut s = state(&[10], 1);
        let ev = |s: &mut State, e: Event| on_event(s, &e);
        ev(
            &mut s,
            Event::ShardStarted {
                shard: 0,
                attempt: 1,
                host: "e1".into(),
                tests: 3,
                predicted: Duration::from_secs(10),
            },
        );
        let (a, b, c) = (
            result("a", TestStatus::Passed),
            result("b", TestStatus::Failed),
            result("c", TestStatus::Passed),
        );
        ev(
            &mut s,
            Event::TestStarted {
                id: a.id.clone(),
                shard: 0,
                host: "e1".into(),
                attempt: 1,
            },
        );
        let now = s.running_now("e1", Instant::now());
        assert!(now.starts_with("; now: g a ("), "{now}");
        for r in [&a, &b, &b] {
            ev(&mut s, ended_on_e1(r.clone()));
        }
        assert_eq!(s.running_now("e1", Instant::now()), "");
        assert_eq!(counts(&s), (2, 1, 1, 1), "counted once each, as they ended");
        let t0 = Instant::now();
        for (i, name) in ["slow", "slower"].iter().enumerate() {
            let id = TestId::new("g", *name);
            s.now
                .entry("e1".into())
                .or_default()
                .insert(id, (0, t0 + Duration::from_secs(i as u64)));
        }
        s.hosts.get_mut("e1").unwrap().running = 1;
        insta::assert_snapshot!(
            s.host_line("e1", t0 + Duration::from_secs(12)),
            @"e1    1 running, 0/0 shards done, 1 passed, 1 failed; now: g slow (12s) +1"
        );
        s.now.clear();
        // The report says b passed after all: b moves from failed to passed, nothing doubles.
        let mut b_passed = b.clone();
        b_passed.status = TestStatus::Passed;
        for r in [a.clone(), b_passed] {
            ev(&mut s, finished_on_e1(r));
        }
        assert_eq!(counts(&s), (2, 0, 2, 0));
        // c ended live but the shard ended without confirming it: uncounted with the shard.
        ev(&mut s, ended_on_e1(c));
        assert_eq!(counts(&s).0, 3);
        ev(&mut s, Event::ShardFinished(attempt(0, "e1")));
        assert_eq!(counts(&s), (2, 0, 2, 0));
    }

    /// A live end on shard 0's first attempt on e1.
    fn ended_on_e1(result: TestResult) -> Event {
        Event::TestEnded {
            result,
            shard: 0,
            host: "e1".into(),
            attempt: 1,
        }
    }

    /// The shard's report confirming a result, on shard 0's first attempt on e1.
    fn finished_on_e1(result: TestResult) -> Event {
        Event::TestFinished {
            result,
            shard: 0,
            host: "e1".into(),
            attempt: 1,
        }
    }

    #[test]
    fn eta_moves_with_the_tests_a_running_shard_ended() {
        let mut s = state(&[10], 1);
        let t = Instant::now();
        s.running.insert(0, t);
        s.shard_tests.insert(0, (4, 0));
        assert_eq!(s.eta(t + Duration::from_secs(2)), Duration::from_secs(8));
        s.shard_tests.insert(0, (4, 3));
        assert_eq!(s.eta(t + Duration::from_secs(2)), Duration::from_millis(2500));
    }

    #[test]
    fn host_lines_count_planned_shards() {
        let plan = Plan {
            shards: vec![Shard {
                index: 0,
                host: Some("e1".into()),
                tests: vec![],
                predicted: Duration::from_secs(1),
                expected: Vec::new(),
            }],
            total: Duration::from_secs(1),
            makespan: Duration::from_secs(1),
            lower_bound: Duration::from_secs(1),
            estimated: 0,
        };
        let mode = ProgressMode {
            bars: false,
            quiet: true,
            verbose: false,
            ci: Ci::None,
            paint: Paint::PLAIN,
        };
        let p = start(mode, &[("e1".into(), 2)], &plan);
        assert_eq!(p.state.lock().unwrap().hosts["e1"].planned, 1);
        p.finish();
    }
}
