//! The run pipeline shared by every runner: (connect ‖ discover) → history → plan → run →
//! report. Each runner only differs in how it discovers its suite.

use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

use std::sync::Arc;

use super::discovery::{self, Discovery};
use super::error::{Error, fail};
use super::reports::Reports;
use super::{ExecArgs, GoArgs, MessageFormat, NextestRunArgs, RunOpts, backend};
use crate::discover::{Known, Suite};
use crate::exit;
use crate::job::RunJob;
use crate::report::{events, progress, style, summary, timeline};
use crate::run::{self, LiveHost, RunOptions, RunReport};
use crate::test_result::TestStatus;

pub async fn nextest(a: NextestRunArgs) -> u8 {
    // A Go module with no cargo manifest: `cargo shard` means `cargo shard go`.
    let go_module =
        a.select.manifest_path.is_none() && !Path::new("Cargo.toml").exists() && Path::new("go.mod").exists();
    if a.runner == super::Runner::Go || (a.runner == super::Runner::Auto && go_module) {
        let go = GoArgs {
            select: super::GoSelect::default(),
            run: a.run,
            passthrough: a.passthrough,
        };
        return Box::pin(self::go(go)).await;
    }
    // Before anything is built or started: a wrong flag after `--` costs nothing.
    let checked = match a.nextest.check(&a.passthrough) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let mut a = a;
    a.run.max_fail = checked.max_fail;
    a.run.test_threads = checked.test_threads;
    let out_dir = match nextest_out_dir(a.run.out_dir.as_deref(), a.select.manifest_path.as_deref()) {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    let (reports, connecting) = match start(&a.run, &out_dir, true) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let opts = discovery::nextest(&a, &checked, &out_dir, a.run.quiet);
    let quiet = a.run.quiet || a.run.message_format == MessageFormat::Json;
    let doctests = match super::doctests::list(&opts, quiet).await {
        Ok(d) => d,
        Err(e) => return reports.fail(e),
    };
    let (suite, hosts, head) = match discover(
        Discovery::Nextest(opts),
        &mut a.run,
        connecting,
        &out_dir,
        &reports,
    )
    .await
    {
        Ok(d) => d,
        Err(code) => return code,
    };
    let run = Runner {
        name: "nextest",
        doctests,
    };
    run_suite(suite, &a.run, hosts, out_dir, run, &reports, head).await
}

/// The report paths, checked and cleared before anything is built (`--dry-run` writes none).
fn prepare(o: &RunOpts, out_dir: &Path) -> Result<Reports, u8> {
    let reports = Reports::new(o, out_dir);
    if !o.dry_run
        && let Err(e) = reports.prepare()
    {
        return Err(fail(e));
    }
    Ok(reports)
}

/// The hosts that answer and the job (limits, secrets, services) set up for them.
pub(super) struct Connected {
    live: Vec<LiveHost>,
    job: Arc<RunJob>,
    /// Labels and names everything the run creates, from its head start on.
    run_id: String,
}

/// The hosts being connected while the build runs. Dropped before it ends (the build or
/// listing failed), it stops: nothing on a host is made while connecting.
struct Connecting(tokio::task::JoinHandle<Result<(Connected, Vec<String>), Error>>);

impl Drop for Connecting {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Connecting {
    /// The connected hosts, with the lines connecting had to say (printed by the caller).
    async fn wait(&mut self) -> Result<(Connected, Vec<String>), Error> {
        match (&mut self.0).await {
            Ok(r) => r,
            Err(e) => Err(Error::Panicked {
                what: "connecting to the hosts",
                message: e.to_string(),
            }),
        }
    }
}

/// Reports prepared, the hosts file and the job read and checked (bad input stops the run
/// before anything is built), then the hosts connected in the background, so that an ssh
/// handshake and the engines' checks overlap the build instead of preceding it.
/// `threaded`: the runner runs tests at once itself.
fn start(o: &RunOpts, out_dir: &Path, threaded: bool) -> Result<(Reports, Connecting), u8> {
    let reports = prepare(o, out_dir)?;
    let opt = super::partition::hosts(o);
    let mut loaded = backend::load_hosts(&opt).map_err(|e| reports.fail(e))?;
    let job = super::job_setup::load(o).map_err(|e| reports.fail(e))?;
    super::job_setup::give_image(job.image(), &opt, &mut loaded.0.hosts);
    let o = o.clone();
    let connecting = tokio::spawn(async move {
        let (mut live, notes) = backend::connect(&opt, loaded, o.quiet).await?;
        // nextest's `-j`: the user's number, not one derived from CPUs.
        if let Some(threads) = o.test_threads {
            for l in &mut live {
                l.host.test_threads = threads;
                l.host.test_threads_auto = false;
            }
        }
        let job = super::job_setup::apply(job, &mut live)?;
        if super::job_setup::shares_containers(&o, &job.config, threaded) {
            super::job_setup::share_containers(live.iter_mut().map(|l| &mut l.host));
        }
        let connected = Connected {
            live,
            job,
            run_id: run::new_run_id(),
        };
        Ok((connected, notes))
    });
    Ok((reports, Connecting(connecting)))
}

/// Discovery, with the hosts connected meanwhile and the run's head start (staging, slot
/// containers) begun the moment both the hosts and the payload are known: its sources staged
/// while the build runs, the rest while the tests are listed. No head start for `--dry-run`,
/// which creates nothing, nor for a job with pre-steps, whose output joins the payload later.
/// A failed build wins over hosts still connecting; hosts that fail stop the build.
async fn discover(
    discovery: Discovery,
    o: &mut RunOpts,
    mut connecting: Connecting,
    out_dir: &Path,
    reports: &Reports,
) -> Result<(Suite, Connected, Option<run::HeadStart>), u8> {
    let dry_run = o.dry_run;
    let run_opts = o.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let begin = async {
        let (hosts, notes) = connecting.wait().await?;
        let job_uploads = match hosts.job.uploads() {
            Ok(u) if !dry_run && hosts.job.config.pre_step.is_empty() => u,
            // Reported where the uploads are read again, once the plan is made.
            _ => return Ok((hosts, None, notes)),
        };
        let opts = run_options(&run_opts, &hosts.run_id, out_dir, &hosts.job);
        let mut head: Option<run::HeadStart> = None;
        while let Some(super::discovery::Told { mut payload, known }) = rx.recv().await {
            payload.uploads.extend(job_uploads.iter().cloned());
            let next = match known {
                // Sources are worth staging early only where they go into a host's cache.
                Known::Sources if payload.writes_source || hosts.live.iter().all(|h| h.engine.is_local()) => {
                    continue;
                }
                Known::Sources => run::HeadStart::begin(payload, &hosts.live, &opts, false),
                // Slot containers only while the tests are listed: opened after, they would
                // hold the first shards back as long as containers of their own would.
                _ => run::HeadStart::begin_after(
                    head.take(),
                    payload,
                    &hosts.live,
                    &opts,
                    known == Known::BeforeListing,
                ),
            };
            crate::interrupt::before_exit(next.cleanup_on_exit());
            head = Some(next);
        }
        Ok::<_, Error>((hosts, head, notes))
    };
    let suite = discovery.suite(&mut o.plan, Some(tx));
    tokio::pin!(begin, suite);
    let (suite, (hosts, head, notes)) = tokio::select! {
        begun = &mut begin => match begun {
            Ok(begun) => ((&mut suite).await.map_err(|e| reports.fail(e))?, begun),
            Err(e) => {
                // The build is of no use without hosts: stop it rather than wait for it.
                crate::interrupt::stop_builds().await;
                return Err(reports.fail(e));
            }
        },
        // On an error, dropping `begin` drops any head start, which removes what it made.
        suite = &mut suite => {
            let suite = suite.map_err(|e| reports.fail(e))?;
            (suite, (&mut begin).await.map_err(|e| reports.fail(e))?)
        }
    };
    // After the build's and the listing's own lines, which they would otherwise cut into.
    for line in &notes {
        eprintln!("{line}");
    }
    Ok((suite, hosts, head))
}

pub async fn go(a: GoArgs) -> u8 {
    let flags = match discovery::go_flags(&a.passthrough) {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    let dir = discovery::source_dir(a.select.dir.as_deref());
    let out_dir = a.run.out_dir.clone().unwrap_or_else(|| dir.join("target/shard"));
    if let Err(source) = std::fs::create_dir_all(&out_dir) {
        return fail(Error::OutDir {
            path: out_dir,
            source,
        });
    }
    let (reports, connecting) = match start(&a.run, &out_dir, true) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mut run = a.run.clone();
    let race = flags.race;
    let opts = discovery::go(&a.select, flags, &out_dir);
    let (suite, hosts, head) =
        match discover(Discovery::Go(opts), &mut run, connecting, &out_dir, &reports).await {
            Ok(d) => d,
            Err(code) => return code,
        };
    if (a.select.cgo || race)
        && let Some(loader) = super::cgo_check::loader(&suite)
        && let Err(e) = super::cgo_check::check(
            &hosts.live,
            &loader,
            if race { "-race" } else { "--cgo" },
            &out_dir,
        )
        .await
    {
        return reports.fail(e);
    }
    run_suite(suite, &run, hosts, out_dir, "go".into(), &reports, head).await
}

pub async fn exec(a: ExecArgs) -> u8 {
    let dir = discovery::source_dir(a.select.dir.as_deref());
    let out_dir = a.run.out_dir.clone().unwrap_or_else(|| dir.join("target/shard"));
    // The user's command runs one test at a time: each slot keeps its container.
    let (reports, connecting) = match start(&a.run, &out_dir, false) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let filters_file = a.run.plan.filters_file.as_deref();
    let opts = match discovery::exec(&a.select, &a.command, filters_file, &out_dir) {
        Ok(o) => o,
        Err(e) => return reports.fail(e),
    };
    let mut run = a.run.clone();
    let (suite, hosts, head) =
        match discover(Discovery::Exec(opts), &mut run, connecting, &out_dir, &reports).await {
            Ok(d) => d,
            Err(code) => return code,
        };
    run_suite(suite, &run, hosts, out_dir, "exec".into(), &reports, head).await
}

/// `--out-dir`, else `<cargo target dir>/shard`.
pub(super) fn nextest_out_dir(out_dir: Option<&Path>, manifest: Option<&Path>) -> Result<PathBuf, Error> {
    if let Some(d) = out_dir {
        return Ok(d.to_path_buf());
    }
    Ok(nextest_target_dir(manifest)?.join("shard"))
}

fn nextest_target_dir(manifest: Option<&Path>) -> Result<PathBuf, Error> {
    let meta = crate::discover::nextest::workspace_metadata(manifest).map_err(Error::Metadata)?;
    Ok(meta.target_directory.into_std_path_buf())
}

/// Which runner a run serves, and the doctests it runs on this machine (`--doctests local`).
pub(super) struct Runner {
    name: &'static str,
    doctests: Option<crate::discover::nextest::doctests::local::LocalDoctests>,
}

impl From<&'static str> for Runner {
    fn from(name: &'static str) -> Self {
        Runner { name, doctests: None }
    }
}

/// Everything after discovery, the same for every runner: prepare, run, write the reports,
/// finish.
pub(super) async fn run_suite(
    suite: Suite,
    o: &RunOpts,
    Connected { live, job, run_id }: Connected,
    out_dir: PathBuf,
    runner: Runner,
    reports: &Reports,
    head: Option<run::HeadStart>,
) -> u8 {
    let ctx = RunCtx {
        o,
        out_dir: &out_dir,
        runner: runner.name,
        reports,
        json: o.message_format == MessageFormat::Json,
    };
    let prepared = match prepare_run(&ctx, suite, &live, runner.doctests) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let step_hosts = live.clone();
    let mut prepared = prepared;
    let ran = match run_planned(&ctx, &mut prepared, live, &job, run_id, head).await {
        Ok(r) => r,
        Err(code) => return code,
    };
    let written = write_reports(&ctx, prepared, &ran);
    finish(&ctx, &ran, &written, &job, &step_hosts).await
}

/// What every stage of a run reads.
struct RunCtx<'a> {
    o: &'a RunOpts,
    out_dir: &'a Path,
    runner: &'a str,
    reports: &'a Reports,
    json: bool,
}

/// A planned run, ready to start.
struct Prepared {
    plan: crate::plan::Plan,
    suite: Suite,
    history: crate::history::History,
    history_path: PathBuf,
    manifest: Option<crate::partition::Manifest>,
    started: std::time::Instant,
    /// `--doctests local`: run on this machine beside the shards.
    doctests: Option<crate::discover::nextest::doctests::local::LocalDoctests>,
}

/// A finished run and how it was watched.
struct Ran {
    report: RunReport,
    run_id: String,
    /// Tests at once per container, per host: what the history's overhead model divides by.
    host_jobs: std::collections::BTreeMap<String, usize>,
    meta: crate::report::meta::RunMeta,
    mode: progress::ProgressMode,
    paint: style::Paint,
    stream: events::Stream,
}

/// Partition share, plan, warnings and the plan's table; `Err` ends the run with that code
/// (nothing to run, `--dry-run`, or an error already reported).
fn prepare_run(
    ctx: &RunCtx<'_>,
    suite: Suite,
    live: &[LiveHost],
    doctests: Option<crate::discover::nextest::doctests::local::LocalDoctests>,
) -> Result<Prepared, u8> {
    let (o, out_dir) = (ctx.o, ctx.out_dir);
    let history_path = o
        .plan
        .history
        .clone()
        .unwrap_or_else(|| out_dir.join("history.json"));
    let started = std::time::Instant::now();
    let (suite, inner_plan, manifest) =
        partition_share(suite, o, &history_path, out_dir, ctx.runner).map_err(|e| ctx.reports.fail(e))?;
    let caps = crate::plan::capacities(live.iter().map(|l| &l.host));
    let planned =
        super::planning::plan(suite, &inner_plan, &caps, &history_path).map_err(|e| ctx.reports.fail(e))?;
    let plan_text = super::planning::render(&planned, live.iter().map(|l| &l.host));
    let super::planning::Planned {
        plan,
        suite,
        history,
        warnings,
        ..
    } = planned;
    for w in warnings.iter().chain(&big_source_warning(&suite)) {
        eprintln!("warning: {w}");
    }
    if plan.test_count() == 0 {
        if let Some(w) = super::doctests::not_run(&doctests) {
            eprintln!("warning: {w}");
        }
        if !o.dry_run {
            ctx.reports.write_empty();
        }
        eprintln!("no tests to run (nothing left after filtering)");
        return Err(exit::OK);
    }
    // Notices about the suite (doctests left out) only once there is a run to speak of.
    for w in &suite.notices {
        eprintln!("warning: {w}");
    }
    if !ctx.json && !o.quiet {
        eprint!("{plan_text}");
    }
    if o.dry_run {
        if ctx.json {
            events::run_started("dry-run", ctx.runner, &plan);
        }
        return Err(exit::OK);
    }
    if let Err(source) = std::fs::create_dir_all(out_dir.join("logs")) {
        return Err(ctx.reports.fail(Error::OutDir {
            path: out_dir.join("logs"),
            source,
        }));
    }
    Ok(Prepared {
        plan,
        suite,
        history,
        history_path,
        manifest,
        started,
        doctests,
    })
}

/// Pre-steps, then the shards with live progress; a panic inside the run ends it with
/// one line (its containers already removed).
async fn run_planned(
    ctx: &RunCtx<'_>,
    prepared: &mut Prepared,
    live: Vec<LiveHost>,
    job: &Arc<RunJob>,
    run_id: String,
    head: Option<run::HeadStart>,
) -> Result<Ran, u8> {
    let (o, out_dir) = (ctx.o, ctx.out_dir);
    let Prepared {
        plan,
        suite,
        doctests,
        ..
    } = prepared;
    let plan = &*plan;
    let cancel = CancellationToken::new();
    crate::interrupt::running(cancel.clone(), run_id.clone());
    let pre = super::job_setup::pre_steps(
        job,
        &live,
        &run_id,
        out_dir,
        plan.shards.len(),
        cancel.clone(),
        suite,
    );
    // Kept until the run ends: it holds the pre-steps' artifacts.
    let _pre_steps = pre.await.map_err(|e| ctx.reports.fail(e))?;
    let opts = run_options(o, &run_id, out_dir, job);
    let host_slots: Vec<(String, usize)> = live.iter().map(|h| (h.host.name.clone(), h.host.slots)).collect();
    let host_jobs = live
        .iter()
        .map(|h| (h.host.name.clone(), h.host.test_threads))
        .collect();
    let paint = style::Paint::detect(color_when(o.color));
    let json = ctx.json;
    let mode = progress::ProgressMode::detect(o.no_progress || json, o.quiet || json, o.verbose > 0, paint);
    announce(ctx, &run_id, plan);
    // Started after the last direct write to stderr: the bars own the screen from here.
    let progress = progress::start(mode, &host_slots, plan);
    let stream = events::Stream::default();
    let observer = if json {
        stream.observer()
    } else {
        progress.observer()
    };
    let meta = crate::report::meta::RunMeta::capture(Path::new("."));
    let doctests = super::doctests::start(doctests.take(), out_dir, &cancel);
    let run = run::execute(plan, suite, live, &opts, observer, cancel.clone(), head);
    let report = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(run)).await;
    progress.finish();
    let mut report = report.map_err(|panic| {
        // run::execute has already removed the run's containers before unwinding.
        ctx.reports.fail(Error::Internal {
            message: panic_message(&panic),
            run_id: run_id.clone(),
        })
    })?;
    super::doctests::merge(doctests, &mut report).await;
    Ok(Ran {
        report,
        run_id,
        host_jobs,
        meta,
        mode,
        paint,
        stream,
    })
}

/// The scheduler's options from the command line.
fn run_options(o: &RunOpts, run_id: &str, out_dir: &Path, job: &Arc<RunJob>) -> RunOptions {
    RunOptions {
        run_id: run_id.to_string(),
        out_dir: out_dir.to_path_buf(),
        shard_retries: o.shard_retries,
        retries: o.retries,
        shard_timeout: o.shard_timeout,
        test_timeout: o.test_timeout,
        keep_containers: o.keep_containers,
        job: job.clone(),
        max_fail: o.max_fail,
        steal: !o.no_steal,
    }
}

/// `--color` as the painter takes it.
pub(super) fn color_when(color: super::Color) -> style::ColorWhen {
    match color {
        super::Color::Auto => style::ColorWhen::Auto,
        super::Color::Always => style::ColorWhen::Always,
        super::Color::Never => style::ColorWhen::Never,
    }
}

/// The run's first line: a `run-started` event, or the run id and its shards on stderr.
fn announce(ctx: &RunCtx<'_>, run_id: &str, plan: &crate::plan::Plan) {
    if ctx.json {
        events::run_started(run_id, ctx.runner, plan);
    } else if !ctx.o.quiet {
        eprintln!("run {run_id}: {}", summary::header(plan));
    }
}

/// The JUnit report, HTML, history, summary and partition manifest, each written
/// atomically so an interrupted run never leaves half a file. Returns the summary and
/// whether the JUnit report is missing.
fn write_reports(ctx: &RunCtx<'_>, prepared: Prepared, ran: &Ran) -> WrittenReports {
    let (report, plan, out_dir) = (&ran.report, &prepared.plan, ctx.out_dir);
    let junit_path = ctx.reports.junit.clone();
    let html_path = ctx.reports.html.clone();
    let mut written = summary::Written::default();
    let junit_doc = crate::report::junit::build(report, &ran.meta);
    // A full disk fails every write alike: say it once, naming what was not written.
    let mut unwritten: Vec<(String, String)> = Vec::new();
    match crate::junit::write_atomic(&junit_path, &junit_doc) {
        Ok(()) => written.junit = Some(junit_path.display().to_string()),
        Err(e) => unwritten.push((junit_path.display().to_string(), e.to_string())),
    }
    let junit_failed = written.junit.is_none();
    crate::interrupt::report_written();
    match crate::atomic::write(&html_path, timeline::render(report, plan, &ran.meta).as_bytes()) {
        Ok(()) => written.html = Some(html_path.display().to_string()),
        Err(e) => unwritten.push((html_path.display().to_string(), e.to_string())),
    }
    written.logs = Some(out_dir.join("logs").display().to_string());
    let history_path = &prepared.history_path;
    if !report.interrupted && prepared.history.writable() {
        match super::planning::record(prepared.history, report, &ran.host_jobs, history_path) {
            Ok(()) => written.history = Some(history_path.display().to_string()),
            Err(e) => unwritten.push((history_path.display().to_string(), e.to_string())),
        }
    }
    // What `cargo shard show` reprints: the summary's figures, beside the JUnit report.
    let summary_path = out_dir.join(super::show::SUMMARY_FILE);
    let summary_data = summary::Summary::of(report, plan, &written);
    let summary_json = serde_json::to_vec_pretty(&summary_data).unwrap_or_default();
    if let Err(e) = crate::atomic::write(&summary_path, &summary_json) {
        unwritten.push((summary_path.display().to_string(), e.to_string()));
    }
    if let Some(m) = prepared.manifest
        && let Err(e) = super::partition::finish(
            m,
            report,
            prepared.started.elapsed(),
            written.junit.as_ref().map(|_| junit_path.as_path()),
            history_path,
            out_dir,
        )
    {
        unwritten.push((
            out_dir.join(crate::partition::MANIFEST).display().to_string(),
            e.to_string(),
        ));
    }
    say_unwritten(&unwritten, junit_failed);
    WrittenReports {
        summary: summary_data,
        junit_failed,
    }
}

/// What the reports' writing leaves for the end of the run.
struct WrittenReports {
    /// The summary, also written as `summary.json`.
    summary: summary::Summary,
    /// The JUnit report could not be written: the run's verdict is lost.
    junit_failed: bool,
}

/// One line for every report file that could not be written: an error when the JUnit
/// report is among them (the run's verdict is lost), else a warning.
fn say_unwritten(unwritten: &[(String, String)], junit_failed: bool) {
    if let Some((path, first)) = unwritten.first() {
        let first = first.strip_prefix(&format!("{path}: ")).unwrap_or(first);
        let names: Vec<&str> = unwritten.iter().map(|(p, _)| p.as_str()).collect();
        eprintln!(
            "{}: cannot write {}: {first}",
            if junit_failed { "error" } else { "warning" },
            names.join(", ")
        );
    }
}

/// The exit code, the post-steps, the CI's job summary and the summary on screen (or the
/// last JSON event).
async fn finish(
    ctx: &RunCtx<'_>,
    ran: &Ran,
    written: &WrittenReports,
    job: &RunJob,
    step_hosts: &[LiveHost],
) -> u8 {
    let (report, run_id) = (&ran.report, &ran.run_id);
    let mut code = exit_code(report, ctx.o.flaky_result == super::FlakyResult::Fail);
    if written.junit_failed && code != exit::INTERRUPTED {
        // Without its report a run's verdict is lost: never let that pass as success.
        code = exit::INFRA_FAILED;
    }
    if report.rejected.is_some() && code != exit::INTERRUPTED {
        code = exit::BAD_INPUT;
    }
    let code = super::job_setup::post_steps(job, step_hosts, run_id, ctx.out_dir, code).await;
    if ran.mode.ci == crate::report::ci::Ci::GitHub
        && let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY")
        && let Err(e) = crate::report::ci::write_step_summary(Path::new(&path), report)
    {
        eprintln!(
            "warning: cannot write the job summary to {}: {e}",
            Path::new(&path).display()
        );
    }
    if ctx.json {
        for (host, reason) in &report.cleanup_failed {
            eprintln!(
                "warning: not cleaned up on {host} ({reason}): run `cargo shard gc --run {run_id}` once it is back"
            );
        }
        ran.stream.run_finished(report, code);
    } else {
        eprint!("\n{}", written.summary.render(ran.paint));
    }
    if let Some(reason) = &report.rejected {
        eprintln!("error: {reason}");
    }
    code
}

/// Every shard receives the source tree: say so when it is big, and where the bytes are.
fn big_source_warning(suite: &Suite) -> Option<String> {
    use crate::discover::files;
    files::big_payload_warning(&files::tree_size(&suite.uploads), files::warn_threshold())
}

/// In a partition job: this job's share of the N-job plan, the options to plan it over the
/// job's own hosts (the filters file has done its work), and the manifest to complete.
#[allow(clippy::type_complexity)]
fn partition_share(
    suite: Suite,
    o: &RunOpts,
    history_path: &Path,
    out_dir: &Path,
    runner: &str,
) -> Result<(Suite, super::PlanOpts, Option<crate::partition::Manifest>), super::partition::PartitionError> {
    let Some(p) = super::partition::of(o) else {
        return Ok((suite, o.plan.clone(), None));
    };
    let (suite, manifest) = super::partition::narrow(suite, &o.plan, p, history_path, out_dir, runner)?;
    let mut inner = o.plan.clone();
    inner.filters_file = None;
    Ok((suite, inner, Some(manifest)))
}

/// 0 all passed; 130 interrupted; 102 hosts lost and tests left unrun; 100 tests failed.
pub fn exit_code(report: &RunReport, flaky_fails: bool) -> u8 {
    if report.interrupted {
        return exit::INTERRUPTED;
    }
    let errors = report
        .outcomes
        .iter()
        .any(|o| o.result.status == TestStatus::Error);
    let failed = report
        .outcomes
        .iter()
        .any(|o| o.result.status == TestStatus::Failed);
    if errors && !report.lost_hosts.is_empty() && !failed {
        return exit::INFRA_FAILED;
    }
    if errors || failed || (flaky_fails && report.flaky() > 0) {
        return exit::TESTS_FAILED;
    }
    exit::OK
}

/// The text of a caught panic, for the one-line internal error.
fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_string())
}
