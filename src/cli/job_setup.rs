//! The job's glue in the pipeline: load `[job]` (hosts file or `--job`), apply the command
//! line's overrides, refuse what the backend cannot do, and run the pre- and post-steps.

use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::RunOpts;
use super::pass_env::PassEnvError;
use crate::config::job::{JobConfig, MemoryError, parse_bytes};
use crate::config::{ConfigError, Endpoint, Host};
use crate::discover::Suite;
use crate::exit;
use crate::job::steps::{self, PreStepOutput, StepRun};
use crate::job::{JobError, RunJob};
use crate::run::LiveHost;

/// Why the job cannot be set up, or its pre-steps failed.
#[derive(Debug, thiserror::Error)]
pub enum JobSetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("--cpus must be positive, got {0}")]
    Cpus(f64),
    #[error("--memory: {0}")]
    Memory(#[source] MemoryError),
    #[error(
        "{file}: the job declares services ({names}) but host {host} runs local processes: services need a Docker engine"
    )]
    ServicesOnLocal {
        file: String,
        names: String,
        host: String,
    },
    #[error(transparent)]
    PassEnv(#[from] PassEnvError),
    /// Secrets or files the job names that cannot be read.
    #[error(transparent)]
    Job(#[from] JobError),
    /// A pre-step that failed: one line naming it, with its output's tail.
    #[error("{0}")]
    PreStep(String),
}

/// The run's job (`--job`, the hosts file's or the project file's `[job]`, with `--cpus`,
/// `--memory`, `--env` and `--artifacts`), read and checked before anything is built or
/// connected; [`give_image`] and [`apply`] give it to the hosts.
pub fn load(o: &RunOpts) -> Result<LoadedJob, JobSetupError> {
    // `--job`, else the hosts file's `[job]`, else the project file's.
    let mut config = match &o.job.job {
        Some(file) => JobConfig::load(file)?,
        None => file_job(&o.hosts)?,
    };
    if let Some(c) = o.job.cpus {
        if !(c.is_finite() && c > 0.0) {
            return Err(JobSetupError::Cpus(c));
        }
        config.cpus = Some(c);
    }
    if let Some(m) = &o.job.memory {
        config.memory = Some(parse_bytes(m).map_err(JobSetupError::Memory)?);
    }
    let passed = super::pass_env::resolve(&config, &o.job.env, |n| std::env::var(n).ok())?;
    let job = RunJob::prepare(config, &o.job.artifacts)?;
    Ok(LoadedJob {
        job: Arc::new(job),
        passed,
    })
}

/// A job read and checked by [`load`], not yet given to any host.
pub struct LoadedJob {
    job: Arc<RunJob>,
    /// The variables `--env` and the job pass to every shard.
    passed: std::collections::BTreeMap<String, String>,
}

impl LoadedJob {
    /// The shards' image the job names, if it names one.
    pub fn image(&self) -> Option<&str> {
        self.job.config.image.as_deref()
    }
}

/// `job_image` on every host, unless `--image` (in `opt`) chose one: `--image` wins over the
/// job, which wins over the hosts file. Given before the hosts connect, since connecting
/// checks (and pulls, as the host's `pull` says) the image the shards will run in.
pub fn give_image(job_image: Option<&str>, opt: &super::HostsOpt, hosts: &mut [crate::config::Host]) {
    if opt.image.is_some() {
        return;
    }
    if let Some(image) = job_image {
        for h in hosts {
            h.image = image.to_string();
        }
    }
}

/// Gives the job's environment and CPU limit to the hosts that answered; services need
/// Docker, so a local host among them is refused.
pub fn apply(loaded: LoadedJob, live: &mut [LiveHost]) -> Result<Arc<RunJob>, JobSetupError> {
    let LoadedJob { job, passed } = loaded;
    let config = &job.config;
    if config.has_services()
        && let Some(local) = live.iter().find(|h| h.engine.is_local())
    {
        let names: Vec<&str> = config.service.iter().map(|s| s.name.as_str()).collect();
        return Err(JobSetupError::ServicesOnLocal {
            file: config.source.clone(),
            names: names.join(", "),
            host: local.host.name.clone(),
        });
    }
    for h in live.iter_mut() {
        h.host.env.extend(config.env.clone());
        if let Some(cpus) = config.cpus {
            h.host.limit_test_threads_to(cpus);
        }
        h.host.env.extend(passed.clone());
    }
    Ok(job)
}

/// The hosts file's `[job]`, else the project file's, else none.
pub fn file_job(hosts: &super::HostsOpt) -> Result<JobConfig, ConfigError> {
    let source = super::backend::source(hosts);
    match source.hosts_file().or(hosts.project.as_deref()) {
        Some(file) => Ok(JobConfig::from_hosts_file(file)?.unwrap_or_default()),
        None => Ok(JobConfig::default()),
    }
}

/// Whether a run gives each Docker host's slots one container: the runner runs tests at once
/// itself (`threaded`: nextest, Go) and nothing in the run belongs to one shard's container
/// alone (`job`, and `--artifacts`). Stealing is what keeps that container fed, so
/// `--no-steal` keeps a container per slot; so does `--shards N`, whose shards are meant to
/// run side by side. The run and `cargo shard plan` both ask here.
pub fn shares_containers(o: &RunOpts, job: &JobConfig, threaded: bool) -> bool {
    threaded
        && o.plan.shards.is_none()
        && !o.keep_containers
        && !o.no_steal
        && o.job.artifacts.is_empty()
        && job.lets_slots_share()
}

/// Gives each Docker host's slots one container; local processes keep one per slot.
pub fn share_containers<'a>(hosts: impl IntoIterator<Item = &'a mut Host>) {
    for h in hosts.into_iter().filter(|h| h.endpoint != Endpoint::Local) {
        h.share_one_container();
    }
}

fn step_run<'a>(
    job: &'a RunJob,
    live: &'a [LiveHost],
    run_id: &'a str,
    out_dir: &'a Path,
    env: Vec<(String, String)>,
    cancel: CancellationToken,
) -> StepRun<'a> {
    StepRun {
        job,
        run_id,
        out_dir,
        host: live.first().map(|h| (&h.host, h.engine.as_ref())),
        env,
        cancel,
    }
}

/// Runs the pre-steps and adds the job's files and the steps' artifacts to every shard's
/// uploads. Keep the result until the run ends.
pub async fn pre_steps(
    job: &RunJob,
    live: &[LiveHost],
    run_id: &str,
    out_dir: &Path,
    shards: usize,
    cancel: CancellationToken,
    suite: &mut Suite,
) -> Result<PreStepOutput, JobSetupError> {
    suite.uploads.extend(job.uploads()?);
    if job.config.pre_step.is_empty() {
        return Ok(PreStepOutput::default());
    }
    let env = vec![
        ("CARGO_SHARD_RUN".to_string(), run_id.to_string()),
        ("CARGO_SHARD_COUNT".to_string(), shards.to_string()),
        ("CARGO_SHARD_OUT".to_string(), out_dir.display().to_string()),
    ];
    let run = step_run(job, live, run_id, out_dir, env, cancel);
    let out = steps::pre_steps(&run).await.map_err(JobSetupError::PreStep)?;
    suite.uploads.extend(out.uploads.iter().cloned());
    Ok(out)
}

/// Runs the post-steps whatever the outcome; a failing one turns a passing run's exit code
/// into an infrastructure failure.
pub async fn post_steps(job: &RunJob, live: &[LiveHost], run_id: &str, out_dir: &Path, code: u8) -> u8 {
    if job.config.post_step.is_empty() {
        return code;
    }
    let env = vec![
        ("CARGO_SHARD_RUN".to_string(), run_id.to_string()),
        ("CARGO_SHARD_OUT".to_string(), out_dir.display().to_string()),
        ("CARGO_SHARD_EXIT".to_string(), code.to_string()),
    ];
    // Post-steps run even after an interrupt: they are the job's own cleanup.
    let run = step_run(job, live, run_id, out_dir, env, CancellationToken::new());
    let failures = steps::post_steps(&run).await;
    for f in &failures {
        eprintln!("error: {f}");
    }
    if failures.is_empty() || code != exit::OK {
        code
    } else {
        exit::INFRA_FAILED
    }
}
