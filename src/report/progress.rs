//! Live progress while shards run: on a terminal, one line per host (shards running and
//! done, tests passed and failed) under an overall bar with an ETA from the plan; elsewhere
//! plain timestamped lines and a status line when nothing was said for a while; on GitHub
//! Actions each shard's log folded into a `::group::`. Failures are printed as they arrive.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::stats::{output_tail, strip_control};
use super::style::Paint;
use crate::discover::{TestResult, TestStatus};
use crate::plan::Plan;
use crate::run::{AttemptEnd, Event, Observer, ShardAttempt};

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
    /// Fold each shard's log into `::group::` and annotate failures (GitHub Actions).
    pub github: bool,
    pub paint: Paint,
}

impl ProgressMode {
    pub fn detect(no_progress: bool, quiet: bool, verbose: bool, paint: Paint) -> Self {
        use std::io::IsTerminal;
        let ci = std::env::var_os("CI").is_some();
        Self {
            bars: !no_progress && !quiet && !ci && std::io::stderr().is_terminal(),
            quiet,
            verbose,
            github: std::env::var_os("GITHUB_ACTIONS").is_some_and(|v| v == "true"),
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
    /// The plan's prediction per shard, and the run's slots: the ETA's inputs.
    predicted: BTreeMap<usize, Duration>,
    makespan: Duration,
    slots: usize,
    running: BTreeMap<usize, Instant>,
    finished: BTreeSet<usize>,
    bars: Option<Bars>,
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
    /// longest running shard still has to do; zero once the plan is overdue.
    fn eta(&self, now: Instant) -> Duration {
        let mut remaining = Duration::ZERO;
        let mut longest = Duration::ZERO;
        for (shard, predicted) in &self.predicted {
            if self.finished.contains(shard) {
                continue;
            }
            let left = match self.running.get(shard) {
                Some(started) => {
                    let left = predicted.saturating_sub(now.duration_since(*started));
                    longest = longest.max(left);
                    left
                }
                None => *predicted,
            };
            remaining += left;
        }
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
            "{}/{} tests, {}; {running} shards running, {}/{} done; elapsed {}, {eta} (plan {})",
            self.done_tests,
            self.total_tests,
            p.count(self.failed, "failed", Paint::fail),
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
            let h = self.hosts.get(host).copied().unwrap_or_default();
            bar.set_message(format!(
                "{host:<w$}  {} running, {}/{} shards done, {} passed, {}",
                h.running,
                h.done,
                h.planned,
                h.passed,
                p.count(h.failed, "failed", Paint::fail),
            ));
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
        makespan: plan.makespan,
        slots: hosts.iter().map(|h| h.1).sum(),
        running: BTreeMap::new(),
        finished: BTreeSet::new(),
        bars,
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
        } => {
            s.hosts.entry(host.clone()).or_default().running += 1;
            s.running.insert(*shard, Instant::now());
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
        // Failures show at once, even in quiet mode; details follow with the shard's results.
        Event::TestFailing { name, shard, host } => {
            let text = format!(
                "{} {name} [shard {shard} on {host}] (output when the shard ends)",
                s.mode.paint.fail("FAILING")
            );
            s.line(&text);
        }
        Event::TestFinished {
            result, shard, host, ..
        } => test_finished(s, result, *shard, host),
        Event::HostLost { host, reason } => {
            s.lost.insert(host.clone(), reason.clone());
            let text = format!(
                "{} {host} lost: {reason}; its shards move to the others",
                s.mode.paint.warn("HOST")
            );
            s.line(&text);
        }
        Event::Staged { host, stats } => {
            let text = format!("{} {host}: {}", s.mode.paint.dim("STAGE"), stats.describe());
            s.line(&text);
        }
    }
}

fn shard_finished(s: &mut State, a: &ShardAttempt) {
    let p = s.mode.paint;
    let h = s.hosts.entry(a.host.clone()).or_default();
    h.running = h.running.saturating_sub(1);
    h.done += 1;
    s.running.remove(&a.shard);
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
    if s.mode.github && !s.mode.quiet {
        // Fold the whole log; stop-commands keeps a test's output from issuing workflow
        // commands (a stray `::endgroup::` or `::add-mask::`) of its own.
        let log = std::fs::read(&a.log).unwrap_or_default();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let token = format!("cargo-shard-{}-{}-{nanos:x}", std::process::id(), a.shard);
        eprintln!(
            "::group::shard {} attempt {} on {} ({}, {took:.1}s)",
            a.shard,
            a.attempt,
            a.host,
            strip_control(&how)
        );
        eprintln!("::stop-commands::{token}");
        eprintln!("{}", strip_control(&String::from_utf8_lossy(&log)).trim_end());
        eprintln!("::{token}::");
        eprintln!("::endgroup::");
    }
}

fn test_finished(s: &mut State, result: &TestResult, shard: usize, host: &str) {
    let p = s.mode.paint;
    s.done_tests = (s.done_tests + 1).min(s.total_tests);
    let h = s.hosts.entry(host.to_string()).or_default();
    let bad = matches!(result.status, TestStatus::Failed | TestStatus::Error);
    match result.status {
        TestStatus::Passed => h.passed += 1,
        TestStatus::Failed | TestStatus::Error => h.failed += 1,
        TestStatus::Skipped => {}
    }
    if bad {
        s.failed += 1;
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
        if s.mode.github {
            eprintln!(
                "::error title={}::{}",
                workflow_escape(&format!("{word} {}", result.id), true),
                workflow_escape(&format!("{first} (shard {shard} on {host})"), false)
            );
        }
    } else if s.mode.verbose && !s.mode.quiet {
        let word = match result.status {
            TestStatus::Passed => p.pass("PASS"),
            _ => p.warn("SKIP"),
        };
        s.line(&format!(
            "{word} {:>6.2}s {} [shard {shard} on {host}]",
            result.duration.as_secs_f64(),
            result.id
        ));
    }
}

/// Escapes a workflow command's data (and, for properties, `:` and `,`) as GitHub expects.
fn workflow_escape(s: &str, property: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in strip_control(s).chars() {
        match c {
            '%' => out.push_str("%25"),
            ':' if property => out.push_str("%3A"),
            ',' if property => out.push_str("%2C"),
            c => out.push(c),
        }
    }
    out
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
                github: false,
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
            makespan: Duration::from_secs(predicted.iter().copied().max().unwrap_or(0)),
            slots,
            running: BTreeMap::new(),
            finished: BTreeSet::new(),
            bars: None,
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
        s.finished.extend([0, 1, 2]);
        assert_eq!(s.eta(t), Duration::from_secs(5));
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

    #[test]
    fn workflow_commands_are_escaped() {
        assert_eq!(
            workflow_escape("FAIL a::b, 100%", true),
            "FAIL a%3A%3Ab%2C 100%25"
        );
        assert_eq!(workflow_escape("x: 1\n", false), "x: 1");
    }

    #[test]
    fn host_lines_count_planned_shards() {
        let plan = Plan {
            shards: vec![Shard {
                index: 0,
                host: Some("e1".into()),
                tests: vec![],
                predicted: Duration::from_secs(1),
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
            github: false,
            paint: Paint::PLAIN,
        };
        let p = start(mode, &[("e1".into(), 2)], &plan);
        assert_eq!(p.state.lock().unwrap().hosts["e1"].planned, 1);
        p.finish();
    }
}
