//! Pre-steps and post-steps: commands run once before the shards (their artifacts go into
//! every shard under `artifacts/`) and once after all of them, whatever the outcome. A step
//! runs locally, or in a container on the first host when it names an image. Its output,
//! secrets masked, goes to `<out>/logs/<pre|post>-<name>.log`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{ARTIFACTS_DIR, RunJob};
use crate::config::job::StepConfig;
use crate::config::{Host, RUN_LABEL};
use crate::engine::environment::{SECRETS_DIR, ShardExtras};
use crate::engine::{ContainerSpec, Engine};
use crate::shard::{ShardSpec, Upload};

/// The label naming a step's container.
pub const STEP_LABEL: &str = "dev.cargo-shard.step";

/// Where and for which run steps execute.
pub struct StepRun<'a> {
    /// The job whose steps run, secrets resolved.
    pub job: &'a RunJob,
    /// The run's id, labelling step containers so `gc` finds them.
    pub run_id: &'a str,
    /// The run's output directory, where step logs and artifacts go.
    pub out_dir: &'a Path,
    /// The first host: container steps run there.
    pub host: Option<(&'a Host, &'a Engine)>,
    /// Identity and outcome variables every step sees.
    pub env: Vec<(String, String)>,
    /// Cancelled by an interrupt: a running step is stopped.
    pub cancel: CancellationToken,
}

/// What the pre-steps left for the shards. Keep it until the run ends: container steps'
/// artifacts live in its temp dir.
#[derive(Default)]
pub struct PreStepOutput {
    /// The artifacts the pre-steps produced, placed in every shard.
    pub uploads: Vec<Upload>,
    /// Holds the temp dir the artifacts live in; dropped, it deletes them.
    pub _dir: Option<tempfile::TempDir>,
}

/// Runs every pre-step in order; the first failure stops the run.
pub async fn pre_steps(run: &StepRun<'_>) -> Result<PreStepOutput, String> {
    let mut out = PreStepOutput::default();
    for step in &run.job.config.pre_step {
        let artifacts = run_step(run, step, "pre", &mut out).await?;
        out.uploads.extend(artifacts);
    }
    Ok(out)
}

/// Runs every post-step, each whatever the others did; returns the failures.
pub async fn post_steps(run: &StepRun<'_>) -> Vec<String> {
    let mut failures = Vec::new();
    let mut unused = PreStepOutput::default();
    for step in &run.job.config.post_step {
        if let Err(e) = run_step(run, step, "post", &mut unused).await {
            failures.push(e);
        }
    }
    failures
}

async fn run_step(
    run: &StepRun<'_>,
    step: &StepConfig,
    kind: &str,
    out: &mut PreStepOutput,
) -> Result<Vec<Upload>, String> {
    let what = format!("{kind}-step {}", step.name);
    let log_path = run.out_dir.join("logs").join(format!("{kind}-{}.log", step.name));
    if let Some(dir) = log_path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{what}: cannot create {}: {e}", dir.display()))?;
    }
    let secrets = &run.job.secrets;
    let result = match &step.image {
        None => run_local(run, step, &what, &log_path).await,
        Some(image) => run_container(run, step, image, kind, &what, &log_path, out).await,
    };
    result.map_err(|e| secrets.redact_str(&e))
}

async fn run_local(
    run: &StepRun<'_>,
    step: &StepConfig,
    what: &str,
    log_path: &Path,
) -> Result<Vec<Upload>, String> {
    let dir = match &step.workdir {
        Some(w) => run.job.config.base.join(w),
        None => std::env::current_dir().map_err(|e| format!("{what}: current directory: {e}"))?,
    };
    let mut env = run.env.clone();
    env.extend(step.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let secrets_dir = tempfile::Builder::new()
        .prefix("cargo-shard-secrets-")
        .tempdir()
        .map_err(|e| format!("{what}: temp dir: {e}"))?;
    let secrets_path = secrets_dir.path().display().to_string();
    let files = run.job.deliver(&step.secrets, &secrets_path, &mut env);
    for (path, data) in &files.0 {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| format!("{what}: cannot write a secret file: {e}"))?;
        std::io::Write::write_all(&mut f, data)
            .map_err(|e| format!("{what}: cannot write a secret file: {e}"))?;
    }
    let mut cmd = tokio::process::Command::new(&step.command[0]);
    cmd.args(&step.command[1..])
        .current_dir(&dir)
        .envs(env)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::select! {
        o = cmd.output() => o.map_err(|e| format!("{what}: cannot run {}: {e}", step.command[0]))?,
        _ = run.cancel.cancelled() => return Err(format!("{what}: cancelled")),
    };
    let mut text = output.stdout;
    text.extend_from_slice(&output.stderr);
    let text = run.job.secrets.redact(&text);
    let _ = std::fs::write(log_path, &text);
    if !output.status.success() {
        return Err(format!(
            "{what} failed ({}){}; log: {}",
            output.status,
            last_line(&text),
            log_path.display()
        ));
    }
    let mut uploads = Vec::new();
    for a in &step.artifacts {
        let src = dir.join(a);
        let up = super::upload(&src, &artifact_dest(a))
            .map_err(|e| format!("{what}: artifact {a} ({}): {e}", src.display()))?;
        uploads.push(up);
    }
    Ok(uploads)
}

async fn run_container(
    run: &StepRun<'_>,
    step: &StepConfig,
    image: &str,
    kind: &str,
    what: &str,
    log_path: &Path,
    out: &mut PreStepOutput,
) -> Result<Vec<Upload>, String> {
    let Some((host, engine)) = run.host else {
        return Err(format!("{what}: no host to run its container on"));
    };
    let root = engine.make_root().map_err(|e| format!("{what}: {e}"))?;
    let job = step_job(run, step, host, image, kind, root, log_path);
    let requested = job.spec.collect.clone();
    let done = engine
        .run_shard(job, run.cancel.clone())
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    let code = done.collected.exit_code.unwrap_or(-1);
    if code != 0 {
        return Err(format!(
            "{what} exited with code {code}{} (on {}); log: {}",
            last_line(&done.collected.output),
            host.name,
            log_path.display()
        ));
    }
    if requested.is_empty() {
        return Ok(Vec::new());
    }
    let dir = artifacts_dir(out, what)?.join(&step.name);
    save_artifacts(step, &requested, &done.collected.files, &dir, what)
}

/// The step's container: its command, variables and secrets, collecting its artifacts.
fn step_job(
    run: &StepRun<'_>,
    step: &StepConfig,
    host: &Host,
    image: &str,
    kind: &str,
    root: String,
    log_path: &Path,
) -> ContainerSpec {
    let workdir = step.workdir.clone().unwrap_or_else(|| root.clone());
    let mut env = run.env.clone();
    env.extend(step.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let files = run.job.deliver(&step.secrets, SECRETS_DIR, &mut env);
    let requested: Vec<String> = step.artifacts.iter().map(|a| super::under(&workdir, a)).collect();
    let mut labels = host.labels.clone();
    labels.insert(RUN_LABEL.to_string(), run.run_id.to_string());
    labels.insert(STEP_LABEL.to_string(), step.name.clone());
    ContainerSpec {
        name: format!("cargo-shard-{}-{kind}-{}", run.run_id, step.name),
        image: image.to_string(),
        network: host.network.clone(),
        labels,
        payload: Arc::new(Vec::new()),
        root,
        spec: ShardSpec {
            argv: step.command.clone(),
            env,
            workdir,
            files: Vec::new(),
            collect: requested,
        },
        log_path: log_path.to_path_buf(),
        keep: false,
        extras: ShardExtras {
            files,
            secrets: run.job.secrets.clone(),
            ..Default::default()
        },
    }
}

/// The temp dir container steps' artifacts go to, made on first use and kept in `out`.
fn artifacts_dir(out: &mut PreStepOutput, what: &str) -> Result<PathBuf, String> {
    if let Some(d) = &out._dir {
        return Ok(d.path().to_path_buf());
    }
    let d = tempfile::Builder::new()
        .prefix("cargo-shard-artifacts-")
        .tempdir()
        .map_err(|e| format!("{what}: temp dir: {e}"))?;
    let p = d.path().to_path_buf();
    out._dir = Some(d);
    Ok(p)
}

/// Saves each requested artifact (a file or a directory) from what the container left into
/// `dir`, as an upload for the shards; one not produced is the step's failure.
fn save_artifacts(
    step: &StepConfig,
    requested: &[String],
    collected: &BTreeMap<String, Vec<u8>>,
    dir: &Path,
    what: &str,
) -> Result<Vec<Upload>, String> {
    let mut uploads = Vec::new();
    for (a, req) in step.artifacts.iter().zip(requested) {
        let one = std::slice::from_ref(req);
        let found: BTreeMap<String, Vec<u8>> = collected
            .iter()
            .filter(|(p, _)| *p == req || p.starts_with(&format!("{req}/")))
            .map(|(p, d)| (p.clone(), d.clone()))
            .collect();
        if found.is_empty() {
            return Err(format!("{what}: artifact {a} ({req}) was not produced"));
        }
        super::artifacts::save(dir, one, &found).map_err(|e| format!("{what}: artifact {a}: {e}"))?;
        let name = req.rsplit('/').next().unwrap_or(req);
        let up = super::upload(&dir.join(name), &artifact_dest(a))
            .map_err(|e| format!("{what}: artifact {a}: {e}"))?;
        uploads.push(up);
    }
    Ok(uploads)
}

/// `artifacts/<file name>`, relative to the shard root.
fn artifact_dest(path: &str) -> String {
    let name = PathBuf::from(path.trim_end_matches('/'))
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_string());
    format!("{ARTIFACTS_DIR}/{name}")
}

/// `: <last non-empty line>` of some output, or nothing.
fn last_line(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    match text.lines().rev().map(str::trim).find(|l| !l.is_empty()) {
        Some(line) => format!(": {}", line.chars().take(200).collect::<String>()),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_land_under_their_file_name() {
        assert_eq!(artifact_dest("out/tool.txt"), "artifacts/tool.txt");
        assert_eq!(artifact_dest("./gen/"), "artifacts/gen");
    }
}
