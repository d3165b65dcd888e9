//! `cargo shard plan`: discover and plan exactly as a run would (the same discovery entry,
//! for nextest, Go and exec suites), print the plan, run nothing.

use std::path::PathBuf;

use super::discovery::{self, Discovery};
use super::error::Error;
use super::{NextestRunArgs, PlanArgs, PlanCommon, PlanFormat, PlanRunner, RunOpts, backend};
use crate::exit;

/// What planning one suite needs, whichever runner lists it.
struct PlanJob {
    common: PlanCommon,
    out_dir: PathBuf,
    discovery: Discovery,
}

/// Prints the plan a run would follow.
pub async fn run(a: PlanArgs) -> Result<u8, Error> {
    let PlanJob {
        common: PlanCommon {
            hosts,
            mut plan,
            format,
        },
        out_dir,
        discovery,
    } = plan_job(a)?;
    // Capacities come from the hosts file: planning needs no engine to answer… but with
    // nothing configured, the run's choice between the local engine and local processes.
    let mut config = backend::plan_hosts(&hosts).await?;
    // The user's command runs one test at a time; nextest and Go run several.
    let threaded = !matches!(discovery, Discovery::Exec(_));
    let suite = discovery.suite(&mut plan, None).await?;
    let history = plan
        .history
        .clone()
        .unwrap_or_else(|| out_dir.join("history.json"));
    // Except for a host without `jobs`: the cost model needs what the run would use.
    for w in backend::derive_test_threads(&mut config.hosts).await {
        eprintln!("warning: {w}");
    }
    // And the containers the run would give each host (nextest and Go share one per host).
    let as_run = RunOpts::for_plan(hosts.clone(), plan.clone());
    if super::job_setup::shares_containers(&as_run, &super::job_setup::file_job(&hosts)?, threaded) {
        super::job_setup::share_containers(&mut config.hosts);
    }
    let caps = crate::plan::capacities(&config.hosts);
    let p = super::planning::plan(suite, &plan, &caps, &history)?;
    for w in &p.warnings {
        eprintln!("warning: {w}");
    }
    match format {
        PlanFormat::Human => print!("{}", super::planning::render(&p, &config.hosts)),
        PlanFormat::Json => print!("{}", crate::plan::render::json(&p.plan)),
    }
    Ok(exit::OK)
}

/// The runner's discovery, with the output directory its run would use (where the history
/// is found by default).
fn plan_job(a: PlanArgs) -> Result<PlanJob, Error> {
    match a.runner {
        None => {
            let out_dir = super::pipeline::nextest_out_dir(None, a.select.manifest_path.as_deref())?;
            let args = NextestRunArgs {
                runner: super::Runner::Nextest,
                select: a.select.clone(),
                nextest: Default::default(),
                run: RunOpts::for_plan(a.common.hosts.clone(), a.common.plan.clone()),
                passthrough: Vec::new(),
            };
            let quiet = a.common.format == PlanFormat::Json;
            let opts = discovery::nextest(&args, &Default::default(), &out_dir, quiet);
            Ok(PlanJob {
                common: a.common,
                out_dir,
                discovery: Discovery::Nextest(opts),
            })
        }
        Some(PlanRunner::Go(g)) => {
            let flags = discovery::go_flags(&g.passthrough)?;
            let out_dir = discovery::source_dir(g.select.dir.as_deref()).join("target/shard");
            std::fs::create_dir_all(&out_dir).map_err(|source| Error::OutDir {
                path: out_dir.clone(),
                source,
            })?;
            Ok(PlanJob {
                discovery: Discovery::Go(discovery::go(&g.select, flags, &out_dir)),
                common: g.common,
                out_dir,
            })
        }
        Some(PlanRunner::Exec(e)) => {
            let out_dir = discovery::source_dir(e.select.dir.as_deref()).join("target/shard");
            let filters = e.common.plan.filters_file.as_deref();
            let opts = discovery::exec(&e.select, &e.command, filters, &out_dir)?;
            Ok(PlanJob {
                discovery: Discovery::Exec(opts),
                common: e.common,
                out_dir,
            })
        }
    }
}
