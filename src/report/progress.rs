//! Live progress while shards run: bars on a terminal (one line per host plus an overall bar
//! with an ETA from the plan), plain timestamped lines elsewhere, and `::group::` folds of
//! each shard's log on GitHub Actions. Failures are printed as they happen.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::summary::strip_control;
use crate::discover::TestStatus;
use crate::run::{AttemptEnd, Event, Observer};

/// How chatty to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgressMode {
    /// Draw bars (a terminal and not `--no-progress`).
    pub bars: bool,
    /// Print nothing but failures.
    pub quiet: bool,
    /// One line per test.
    pub verbose: bool,
    /// Fold each shard's log into `::group::` (GitHub Actions).
    pub github: bool,
}

impl ProgressMode {
    pub fn detect(no_progress: bool, quiet: bool, verbose: bool) -> Self {
        use std::io::IsTerminal;
        let ci = std::env::var_os("CI").is_some();
        Self {
            bars: !no_progress && !quiet && !ci && std::io::stderr().is_terminal(),
            quiet,
            verbose,
            github: std::env::var_os("GITHUB_ACTIONS").is_some(),
        }
    }
}

struct State {
    mode: ProgressMode,
    t0: Instant,
    total_tests: usize,
    done_tests: usize,
    failed: usize,
    /// host → (running shards, done shards, passed, failed)
    hosts: BTreeMap<String, (usize, usize, usize, usize)>,
    bars: Option<(MultiProgress, ProgressBar, BTreeMap<String, ProgressBar>)>,
}

impl State {
    fn line(&self, msg: &str) {
        let stamped = format!("[{:>7.1}s] {msg}", self.t0.elapsed().as_secs_f64());
        match &self.bars {
            Some((multi, _, _)) => {
                let _ = multi.println(stamped);
            }
            None => eprintln!("{stamped}"),
        }
    }

    fn redraw(&self) {
        let Some((_, overall, host_bars)) = &self.bars else { return };
        overall.set_position(self.done_tests as u64);
        overall.set_message(format!("{} failed", self.failed));
        for (host, bar) in host_bars {
            let (running, done, passed, failed) = self.hosts.get(host).copied().unwrap_or_default();
            bar.set_message(format!(
                "{host:<10} {running} running, {done} shards done, {passed} passed, {failed} failed"
            ));
        }
    }
}

/// Live progress for one run.
pub struct Progress {
    state: Arc<Mutex<State>>,
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

    /// Clears the bars so the summary prints on a clean screen.
    pub fn finish(&self) {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((multi, overall, hosts)) = &s.bars {
            for bar in hosts.values() {
                bar.finish_and_clear();
            }
            overall.finish_and_clear();
            let _ = multi.clear();
        }
    }
}

/// Starts progress for a run of `total_tests` on `hosts`; `predicted` is the plan's makespan.
pub fn start(mode: ProgressMode, hosts: &[String], total_tests: usize, predicted: Duration) -> Progress {
    let bars = mode.bars.then(|| {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8));
        let host_bars = hosts
            .iter()
            .map(|h| {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
                bar.enable_steady_tick(Duration::from_millis(200));
                (h.clone(), bar)
            })
            .collect();
        let overall = multi.add(ProgressBar::new(total_tests as u64));
        overall.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} tests, {msg}, elapsed {elapsed}, plan {prefix}")
                .expect("valid template"),
        );
        overall.set_prefix(format!("{:.0}s", predicted.as_secs_f64()));
        (multi, overall, host_bars)
    });
    let state = Arc::new(Mutex::new(State {
        mode,
        t0: Instant::now(),
        total_tests,
        done_tests: 0,
        failed: 0,
        hosts: hosts.iter().map(|h| (h.clone(), Default::default())).collect(),
        bars,
    }));
    Progress { state }
}

fn on_event(s: &mut State, event: &Event) {
    let quiet = s.mode.quiet;
    match event {
        Event::ShardStarted { shard, attempt, host, tests } => {
            s.hosts.entry(host.clone()).or_default().0 += 1;
            if !quiet && !s.mode.bars {
                let again = if *attempt > 1 { format!(" (attempt {attempt})") } else { String::new() };
                s.line(&format!("shard {shard} started on {host}: {tests} tests{again}"));
            }
        }
        Event::ShardFinished(a) => {
            let h = s.hosts.entry(a.host.clone()).or_default();
            h.0 = h.0.saturating_sub(1);
            h.1 += 1;
            let how = match &a.end {
                AttemptEnd::Exited(code) => format!("exit {}", code.map(|c| c.to_string()).unwrap_or("?".into())),
                AttemptEnd::Failed(r) => format!("failed: {r}"),
                AttemptEnd::TimedOut => "timed out".to_string(),
                AttemptEnd::Cancelled => "cancelled".to_string(),
            };
            if !quiet {
                s.line(&format!(
                    "shard {} finished on {} in {:.1}s ({how})",
                    a.shard,
                    a.host,
                    a.finished.saturating_sub(a.started).as_secs_f64()
                ));
            }
            if s.mode.github && !quiet {
                // Fold the whole log so the Actions page stays readable.
                let log = std::fs::read(&a.log).unwrap_or_default();
                eprintln!("::group::shard {} on {} ({how})", a.shard, a.host);
                eprintln!("{}", strip_control(&String::from_utf8_lossy(&log)));
                eprintln!("::endgroup::");
            }
        }
        Event::TestFinished { result, shard, host, .. } => {
            s.done_tests = (s.done_tests + 1).min(s.total_tests);
            let h = s.hosts.entry(host.clone()).or_default();
            match result.status {
                TestStatus::Passed => h.2 += 1,
                TestStatus::Failed | TestStatus::Error => {
                    h.3 += 1;
                    s.failed += 1;
                }
                TestStatus::Skipped => {}
            }
            if matches!(result.status, TestStatus::Failed | TestStatus::Error) {
                let mut text = format!("FAIL {} [shard {shard} on {host}]", result.id);
                if let Some(m) = &result.message {
                    text.push_str(&format!("\n    {}", strip_control(m.lines().next().unwrap_or(""))));
                }
                let out: Vec<String> = result.stdout.lines().chain(result.stderr.lines()).map(strip_control).collect();
                for l in &out[out.len().saturating_sub(8)..] {
                    text.push_str(&format!("\n    | {l}"));
                }
                s.line(&text);
            } else if s.mode.verbose {
                let status = format!("{:?}", result.status).to_uppercase();
                s.line(&format!("{status:<7} {:>6.2}s {} [{host}]", result.duration.as_secs_f64(), result.id));
            }
        }
        Event::HostLost { host, reason } => s.line(&format!("host {host} lost: {reason}; its shards move to the others")),
    }
}
