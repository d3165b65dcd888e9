//! Local processes: the embedded default when no engine is reachable. A shard runs as a child
//! process in its own temp dir (the shard root) and its own process group, so cancelling it
//! kills everything it started.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{ContainerSpec, EngineError, EngineInfo, Phases, ShardRun, tarball};
use crate::shard::Collected;

/// Runs shards as child processes on this machine, each in its own temp dir: the `local://` host
/// and `--backend local`.
pub struct LocalEngine {
    name: String,
}

/// What `hosts` shows for the local engine: no daemon, so no versions or round trip.
pub fn info() -> EngineInfo {
    EngineInfo {
        version: "local".to_string(),
        api_version: "-".to_string(),
        cpus: std::thread::available_parallelism()
            .map(|n| n.get() as u64)
            .unwrap_or(1),
        memory_bytes: std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| mem_total(&m))
            .unwrap_or(0),
        image_present: true,
        round_trip: Duration::ZERO,
    }
}

/// `MemTotal:  16318004 kB` → bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl LocalEngine {
    /// An engine reported under the host name `name`.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
        }
    }

    /// The host name its shards and results carry.
    pub fn host(&self) -> &str {
        &self.name
    }

    fn err(&self, reason: String) -> EngineError {
        EngineError::Shard {
            host: self.name.clone(),
            reason,
            cause: None,
        }
    }

    /// A fresh temp dir to be one shard attempt's root; `run_shard` removes it unless kept.
    pub fn make_root(&self) -> Result<String, EngineError> {
        let dir = tempfile::Builder::new()
            .prefix("cargo-shard-")
            .tempdir()
            .map_err(|e| self.err(format!("cannot make a shard dir: {e}")))?;
        Ok(dir.keep().display().to_string())
    }

    /// Runs one shard attempt to its end: places the payload, runs the argv, collects the files,
    /// and removes its root unless the job keeps it.
    pub async fn run_shard(
        &self,
        job: ContainerSpec,
        cancel: CancellationToken,
    ) -> Result<ShardRun, EngineError> {
        let started = Instant::now();
        let root = job.root.clone();
        let result = self.run_in(&job, cancel, started).await;
        if !job.keep {
            let _ = tokio::fs::remove_dir_all(&root).await;
        }
        result
    }

    async fn run_in(
        &self,
        job: &ContainerSpec,
        cancel: CancellationToken,
        started: Instant,
    ) -> Result<ShardRun, EngineError> {
        let mut phases = Phases::default();
        let argv = self.check(job)?;

        let t = Instant::now();
        self.place_files(job).await?;
        phases.upload = t.elapsed();

        let t = Instant::now();
        let running = self.spawn(job, &argv)?;
        phases.start = t.elapsed();

        let t = Instant::now();
        let ended = self.wait(running, cancel, argv.program).await?;
        phases.run = t.elapsed();

        let t = Instant::now();
        let mut files = BTreeMap::new();
        for path in &job.spec.collect {
            collect(Path::new(path.trim_end_matches('/')), &mut files)
                .map_err(|e| self.err(format!("collect {path}: {e}")))?;
        }
        phases.collect = t.elapsed();
        Ok(ShardRun {
            container: job.root.clone(),
            collected: Collected {
                exit_code: ended.exit_code,
                output: ended.output,
                files,
                oom_killed: false,
            },
            phases,
            started,
            finished: Instant::now(),
        })
    }

    /// What a local shard cannot be: one with services, a relative root or no command.
    fn check<'j>(&self, job: &'j ContainerSpec) -> Result<Argv<'j>, EngineError> {
        if !job.extras.services.is_empty() {
            return Err(
                self.err("services need a Docker engine: the local engine cannot run them".to_string())
            );
        }
        if job.root.is_empty() || !Path::new(&job.root).is_absolute() {
            return Err(self.err(format!("shard root {:?} is not an absolute path", job.root)));
        }
        let (program, args) = job
            .spec
            .argv
            .split_first()
            .ok_or_else(|| self.err("shard has an empty command".to_string()))?;
        Ok(Argv { program, args })
    }

    /// The payload and the shard's files under its root, off the runtime.
    async fn place_files(&self, job: &ContainerSpec) -> Result<(), EngineError> {
        let mut files = job.spec.files.clone();
        // Absolute container paths (secrets) land under the shard root here.
        files.extend(job.extras.files.0.iter().cloned());
        let (payload, dir) = (job.payload.clone(), Path::new(&job.root).to_path_buf());
        tokio::task::spawn_blocking(move || unpack(&payload, &files, &dir))
            .await
            .map_err(|e| self.err(format!("unpack: {e}")))?
            .map_err(|e| self.err(format!("unpack into {}: {e}", job.root)))
    }

    /// Starts the command in its own process group, its output teed into the shard log.
    fn spawn(&self, job: &ContainerSpec, argv: &Argv) -> Result<Running, EngineError> {
        if let Some(dir) = job.log_path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let log = std::fs::File::create(&job.log_path)
            .map_err(|e| self.err(format!("cannot write {}: {e}", job.log_path.display())))?;
        // A pipe per stream, as a container's attach keeps them apart; the log interleaves
        // them as they arrive.
        let (reader, writer) = std::io::pipe().map_err(|e| self.err(format!("pipe: {e}")))?;
        let (reader2, writer2) = std::io::pipe().map_err(|e| self.err(format!("pipe: {e}")))?;
        let _ = std::fs::create_dir_all(&job.spec.workdir); // as Docker does for WorkingDir
        let mut cmd = command(job, argv);
        cmd.stdout(writer).stderr(writer2);
        let spawned = cmd.spawn();
        // Our copies of the write end must go, or the reader never sees EOF.
        drop(cmd);
        let child = spawned.map_err(|e| self.err(format!("cannot run {}: {e}", argv.program)))?;
        let secrets = job.extras.secrets.clone();
        let on_line = job.extras.on_line.clone();
        let tee = tokio::task::spawn_blocking(move || tee([reader, reader2], log, &secrets, &on_line));
        Ok(Running {
            pgid: child.id().map(|p| p as i32),
            child,
            tee,
        })
    }

    /// Waits for the command (or the cancel), then ends whatever it left in its group.
    async fn wait(
        &self,
        mut running: Running,
        cancel: CancellationToken,
        program: &str,
    ) -> Result<Ended, EngineError> {
        let status = tokio::select! {
            s = running.child.wait() => Some(s),
            _ = cancel.cancelled() => None,
        };
        // Whatever the child left running in its group goes with it.
        if let Some(pgid) = running.pgid {
            kill_group(pgid);
        }
        let status = match status {
            Some(s) => s.map_err(|e| self.err(format!("wait for {program}: {e}")))?,
            None => {
                let _ = running.child.wait().await;
                let _ = running.tee.await;
                return Err(EngineError::Cancelled);
            }
        };
        let output = running
            .tee
            .await
            .map_err(|e| self.err(format!("read output: {e}")))?;
        use std::os::unix::process::ExitStatusExt;
        let exit_code = status.code().or_else(|| status.signal().map(|s| 128 + s));
        Ok(Ended {
            exit_code: exit_code.map(i64::from),
            output,
        })
    }
}

/// A checked shard command: the program and its arguments.
struct Argv<'j> {
    program: &'j str,
    args: &'j [String],
}

/// A started shard: the child, its process group and the thread teeing its output.
struct Running {
    child: tokio::process::Child,
    pgid: Option<i32>,
    tee: tokio::task::JoinHandle<Vec<u8>>,
}

/// How the command ended: its exit code (128 + signal when killed) and its output.
struct Ended {
    exit_code: Option<i64>,
    output: Vec<u8>,
}

/// The shard's command as a container would run it, output not yet wired.
fn command(job: &ContainerSpec, argv: &Argv) -> tokio::process::Command {
    // A relative program path means one under the workdir, as inside a container.
    let program = if argv.program.contains('/') && !argv.program.starts_with('/') {
        Path::new(&job.spec.workdir).join(argv.program)
    } else {
        Path::new(argv.program).to_path_buf()
    };
    let mut cmd = tokio::process::Command::new(program);
    // What a container gets (the spec's variables: RUST_BACKTRACE, RUST_LOG, pass_env,
    // --env, CARGO_SHARD_*) on top of what a process needs here; nothing else of the
    // caller's, e.g. an outer nextest's NEXTEST_PROFILE or a token in the CI job.
    cmd.env_clear()
        .envs(baseline_env(|k| std::env::var_os(k)))
        .args(argv.args)
        .current_dir(&job.spec.workdir)
        .envs(job.spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    cmd
}

/// The caller's variables a local shard keeps, as an image's own environment would give them:
/// where programs are (`PATH`), whose home and temp dir, and which cargo and toolchain (a
/// test that runs `cargo` uses the caller's, as under `cargo nextest run`).
const BASELINE: [&str; 9] = [
    "PATH",
    "HOME",
    "TMPDIR",
    "USER",
    "LOGNAME",
    "CARGO",
    "CARGO_HOME",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
];

fn baseline_env(
    lookup: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Vec<(&'static str, std::ffi::OsString)> {
    BASELINE
        .iter()
        .filter_map(|k| lookup(k).map(|v| (*k, v)))
        .collect()
}

fn unpack(payload: &[u8], files: &[(String, Vec<u8>)], root: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(root)?;
    if !payload.is_empty() {
        let mut a = tar::Archive::new(payload);
        a.set_preserve_permissions(true);
        a.unpack(root)?;
    }
    let extra = tarball::files_tar(files)?;
    tar::Archive::new(extra.as_slice()).unpack(root)
}

/// Copies the shard's stdout and stderr, secrets masked, to its log file as they arrive and
/// returns them combined.
fn tee(
    readers: [std::io::PipeReader; 2],
    mut log: std::fs::File,
    secrets: &super::redact::Secrets,
    on_line: &super::lines::LineSink,
) -> Vec<u8> {
    use crate::shard::Stream;
    use std::io::Write;
    let (tx, chunks) = std::sync::mpsc::channel::<(Stream, Vec<u8>)>();
    let [out, err] = readers;
    for (stream, mut reader) in [(Stream::Out, out), (Stream::Err, err)] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                if tx.send((stream, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        });
    }
    // Ours must go, or the loop below never sees both readers end.
    drop(tx);
    let mut tap = super::lines::OutputTap::new(secrets, on_line);
    let mut output = Vec::new();
    for (stream, chunk) in chunks {
        let bytes = tap.push(stream, &chunk);
        output.extend_from_slice(&bytes);
        let _ = log.write_all(&bytes);
    }
    let rest = tap.finish();
    output.extend_from_slice(&rest);
    let _ = log.write_all(&rest);
    output
}

fn kill_group(pgid: i32) {
    // SAFETY: kill(2) with a negative pid signals that process group; no memory is involved.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// Adds a file, or every file under a directory, keyed by absolute path; missing is absent.
fn collect(path: &Path, into: &mut BTreeMap<String, Vec<u8>>) -> std::io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            collect(&entry?.path(), into)?;
        }
    } else if meta.is_file() {
        into.insert(path.display().to_string(), std::fs::read(path)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_baseline_of_the_callers_environment_is_kept() {
        let caller = |k: &str| match k {
            "PATH" | "HOME" | "CARGO_HOME" => Some(format!("/{k}").into()),
            _ => None,
        };
        let kept: Vec<&str> = baseline_env(caller).into_iter().map(|(k, _)| k).collect();
        assert_eq!(kept, ["PATH", "HOME", "CARGO_HOME"]);
        assert!(
            !BASELINE
                .iter()
                .any(|k| k.starts_with("NEXTEST_") || k.starts_with("RUST_"))
        );
    }

    #[test]
    fn mem_total_reads_kib() {
        let m = "MemFree:  10 kB\nMemTotal:       2048 kB\n";
        assert_eq!(mem_total(m), Some(2048 * 1024));
        assert_eq!(mem_total("nothing"), None);
    }

    #[test]
    fn collect_flattens_dirs_and_skips_missing() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("out/sub")).unwrap();
        std::fs::write(d.path().join("out/a"), "A").unwrap();
        std::fs::write(d.path().join("out/sub/b"), "B").unwrap();
        let mut m = BTreeMap::new();
        collect(&d.path().join("out"), &mut m).unwrap();
        collect(&d.path().join("missing"), &mut m).unwrap();
        let root = d.path().display();
        let keys: Vec<String> = m.keys().cloned().collect();
        assert_eq!(keys, [format!("{root}/out/a"), format!("{root}/out/sub/b")]);
    }
}
