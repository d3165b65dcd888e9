//! `cargo shard plan`: discover and plan exactly as a run would, print the plan, run nothing.

use super::{NextestRunArgs, PlanArgs, PlanFormat, RunOpts, backend, fail};
use crate::exit;

pub async fn run(a: PlanArgs) -> u8 {
    // Capacities come from the hosts file: planning needs no engine to answer…
    let mut config = match backend::load_hosts(&a.hosts) {
        Ok((config, _)) => config,
        Err((code, msg)) => return fail(code, msg),
    };
    let out_dir = match super::pipeline::nextest_out_dir(None, a.select.manifest_path.as_deref()) {
        Ok(d) => d,
        Err(msg) => return fail(exit::BUILD_FAILED, msg),
    };
    let args = NextestRunArgs {
        runner: super::Runner::Nextest,
        select: a.select.clone(),
        nextest: Default::default(),
        run: RunOpts::for_plan(a.hosts.clone(), a.plan.clone()),
        passthrough: Vec::new(),
    };
    let opts =
        super::discover_opts::nextest(&args, &Default::default(), &out_dir, a.format == PlanFormat::Json);
    let suite = match tokio::task::spawn_blocking(move || crate::discover::nextest::discover(&opts)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return fail(exit::BUILD_FAILED, e),
        Err(e) => return fail(exit::BUILD_FAILED, format!("discovery panicked: {e}")),
    };
    let history = a
        .plan
        .history
        .clone()
        .unwrap_or_else(|| out_dir.join("history.json"));
    // Except for a host without `jobs`: the cost model needs what the run would use.
    for w in backend::derive_jobs(&mut config.hosts).await {
        eprintln!("warning: {w}");
    }
    let caps = crate::plan::capacities(&config.hosts);
    match super::planning::plan(suite, &a.plan, &caps, &history) {
        Ok(p) => {
            for w in &p.warnings {
                eprintln!("warning: {w}");
            }
            match a.format {
                PlanFormat::Human => print!("{}", super::planning::render(&p, &config.hosts)),
                PlanFormat::Json => print!("{}", crate::plan::render::json(&p.plan)),
            }
            exit::OK
        }
        Err((code, msg)) => fail(code, msg),
    }
}
