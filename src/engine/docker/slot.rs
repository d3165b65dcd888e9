//! Slot containers: one long-lived container per runner slot that runs batches of tests one
//! after another with `docker exec`. A batch then costs an exec instead of a container's
//! create and start, which is what makes test-level stealing cheap enough to use.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::KillContainerOptions;
use tokio_util::sync::CancellationToken;

use super::{CLEANUP, DockerEngine};
use crate::engine::{ContainerSpec, EngineError, Phases, ShardRun, tarball};
use crate::shard::Collected;

/// Where the idle process lives in a slot container: outside the shard root, so no batch's
/// files can land on it.
const IDLE_PATH: &str = "/.cargo-shard-idle";

/// How long an exec's exit code may take to show once its output has ended.
const EXIT_WAIT: Duration = Duration::from_secs(5);

/// What a slot container is made of: the parts of a [`ContainerSpec`] that do not change from
/// one batch to the next.
#[derive(Debug, Clone)]
pub struct SlotSpec {
    /// Container name, unique per run, host and slot.
    pub name: String,
    /// The host's image.
    pub image: String,
    /// The host's network mode.
    pub network: String,
    /// Labels, with the run label so `gc` and the run's cleanup find it.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Staged cache volumes and where they are mounted (read-only).
    pub mounts: Vec<(String, String)>,
    /// CPU limit of the job, in billionths of a CPU.
    pub nano_cpus: Option<i64>,
    /// Memory limit of the job, in bytes.
    pub memory: Option<i64>,
    /// The files of batches this container may run ([`super::placed_files`] of each), placed
    /// with its idle program in one request: such a batch then needs no upload of its own.
    pub preload: Vec<Vec<(String, Vec<u8>)>>,
}

/// More than this many bytes of preloaded files are not worth a slot's opening: batches
/// upload their own.
const PRELOAD_LIMIT: usize = 4 << 20;

/// A running slot container. Marked broken when a batch ended in a way that may have left it
/// unusable (an engine error, a kill, a timeout, the container gone): the runner then replaces
/// it rather than exec into a container it cannot trust.
#[derive(Debug)]
pub struct Slot {
    id: String,
    name: String,
    broken: AtomicBool,
    /// Digests of the preloaded batches' files not yet used.
    placed: std::sync::Mutex<std::collections::BTreeSet<[u8; 32]>>,
}

impl Slot {
    /// The container's name, as reports show it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True once the container must not run another batch.
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Relaxed)
    }

    fn break_it(&self) {
        self.broken.store(true, Ordering::Relaxed);
    }

    /// True, once, when exactly `files` were preloaded (same paths, same bytes).
    fn take_placed(&self, files: &[(String, Vec<u8>)]) -> bool {
        !files.is_empty()
            && self
                .placed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&digest(files))
    }
}

/// A batch's files, paths and bytes, as one sha256.
fn digest(files: &[(String, Vec<u8>)]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for (path, data) in files {
        for field in [path.as_bytes(), data.as_slice()] {
            h.update((field.len() as u64).to_le_bytes());
            h.update(field);
        }
    }
    h.finalize().into()
}

/// A static x86-64 Linux program that only sleeps: `pause()` in a loop. Images need not have a
/// shell or `sleep` (the test bed's have neither), so the slot container brings its own idle
/// process; 129 bytes, assembled here rather than shipped as an opaque blob.
pub fn idle_program() -> Vec<u8> {
    const BASE: u64 = 0x40_0000;
    const HEADERS: u64 = 64 + 56;
    // mov eax, 34 (pause); syscall; jmp back to the mov.
    const CODE: [u8; 9] = [0xb8, 0x22, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7];
    let size = HEADERS + CODE.len() as u64;
    let mut elf = Vec::with_capacity(size as usize);
    // ELF header: 64-bit, little-endian, executable, x86-64, one program header.
    elf.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    elf.extend_from_slice(&2u16.to_le_bytes());
    elf.extend_from_slice(&0x3eu16.to_le_bytes());
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&(BASE + HEADERS).to_le_bytes());
    elf.extend_from_slice(&64u64.to_le_bytes());
    elf.extend_from_slice(&0u64.to_le_bytes());
    elf.extend_from_slice(&0u32.to_le_bytes());
    for half in [64u16, 56, 1, 0, 0, 0] {
        elf.extend_from_slice(&half.to_le_bytes());
    }
    // One loadable, readable and executable segment: the whole file.
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&5u32.to_le_bytes());
    for word in [0, BASE, BASE, size, size, 0x1000] {
        elf.extend_from_slice(&word.to_le_bytes());
    }
    elf.extend_from_slice(&CODE);
    elf
}

impl DockerEngine {
    /// Whether this engine can hold slot containers: the idle program is x86-64 only. Asked of
    /// the engine once; every slot opened after the first reuses the answer.
    pub async fn slots_supported(&self) -> bool {
        match self.slots.load(Ordering::Relaxed) {
            1 => true,
            2 => false,
            // An engine that does not answer now is asked again next time.
            _ => match self.docker.version().await {
                Ok(v) => {
                    let amd64 = v.arch.as_deref() == Some("amd64");
                    self.slots.store(if amd64 { 1 } else { 2 }, Ordering::Relaxed);
                    amd64
                }
                Err(_) => false,
            },
        }
    }

    /// Creates and starts a slot container. Nothing is left behind when it fails.
    pub async fn open_slot(&self, spec: &SlotSpec) -> Result<Slot, EngineError> {
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: Some(vec![IDLE_PATH.to_string()]),
            cmd: Some(Vec::new()),
            labels: Some(spec.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            network_disabled: super::without_libnetwork(&spec.network),
            host_config: Some(super::host_config(
                &spec.network,
                &spec.mounts,
                spec.nano_cpus,
                spec.memory,
            )),
            ..Default::default()
        };
        let id = self
            .create_named(&spec.name, body, &spec.image, "create slot container")
            .await?;
        let preload: Vec<&Vec<(String, Vec<u8>)>> = spec.preload.iter().filter(|f| !f.is_empty()).collect();
        let size: usize = preload
            .iter()
            .flat_map(|f| f.iter())
            .map(|(p, d)| p.len() + d.len())
            .sum();
        let preload = if size <= PRELOAD_LIMIT {
            preload
        } else {
            Vec::new()
        };
        let started = async {
            let mut files = vec![(IDLE_PATH.to_string(), idle_program())];
            files.extend(super::etc_hosts(&spec.network));
            files.extend(preload.iter().flat_map(|f| f.iter().cloned()));
            let tar = tarball::files_tar(&files).map_err(|e| self.local_failure("pack", e))?;
            self.upload(&id, "/", tar.into()).await?;
            self.docker
                .start_container(&id, None)
                .await
                .map_err(|e| self.failed("start slot container", e))
        };
        match started.await {
            Ok(()) => Ok(Slot {
                id,
                name: spec.name.clone(),
                broken: AtomicBool::new(false),
                placed: std::sync::Mutex::new(preload.iter().map(|f| digest(f)).collect()),
            }),
            Err(e) => {
                let _ = tokio::time::timeout(CLEANUP, self.remove(&id)).await;
                Err(e)
            }
        }
    }

    /// Runs one batch in `slot`: places its files under its own root, execs its command,
    /// streams the output, collects its files. A batch that does not end on its own (an
    /// error, `cancel`) kills the slot container and marks it broken.
    pub async fn run_in_slot(
        &self,
        slot: &Slot,
        job: ContainerSpec,
        cancel: CancellationToken,
    ) -> Result<ShardRun, EngineError> {
        let started = Instant::now();
        let mut phases = Phases::default();
        let result = if cancel.is_cancelled() {
            Err(EngineError::Cancelled)
        } else {
            tokio::select! {
                r = self.exec_batch(slot, &job, &mut phases) => r,
                _ = cancel.cancelled() => Err(EngineError::Cancelled),
            }
        };
        if result.is_err() {
            slot.break_it();
            let kill = self.docker.kill_container(&slot.id, None::<KillContainerOptions>);
            let _ = tokio::time::timeout(CLEANUP, kill).await;
        }
        Ok(ShardRun {
            container: slot.name.clone(),
            collected: result?,
            phases,
            started,
            finished: Instant::now(),
        })
    }

    /// Removes a slot container (bounded: a lost engine's leftovers are for the run's cleanup).
    pub async fn close_slot(&self, slot: Slot) {
        let _ = tokio::time::timeout(CLEANUP, self.remove(&slot.id)).await;
    }

    async fn exec_batch(
        &self,
        slot: &Slot,
        job: &ContainerSpec,
        phases: &mut Phases,
    ) -> Result<Collected, EngineError> {
        let t = Instant::now();
        let files = super::placed_files(job);
        if !slot.take_placed(&files) {
            let tar = self.root_with(job, &files)?;
            self.upload(&slot.id, "/", tar.into()).await?;
        }
        phases.upload = t.elapsed();

        let (exec, output) = self.start_batch(slot, job, phases).await?;

        let t = Instant::now();
        let output = self.stream_to_log(output, job).await?;
        let exit_code = self.exec_exit(&exec).await?;
        let state = self
            .settled_state(&slot.id, exit_code, job.extras.memory.is_some())
            .await?;
        let oom_killed = state.as_ref().and_then(|s| s.oom_killed).unwrap_or(false);
        // The batch may still have written its report before its container died; it is read,
        // but nothing more runs there.
        if !state.and_then(|s| s.running).unwrap_or(false) || exit_code.is_none() {
            slot.break_it();
        }
        phases.run = t.elapsed();

        let t = Instant::now();
        let files = self.collect_files(&slot.id, job, exit_code).await?;
        phases.collect = t.elapsed();
        Ok(Collected {
            exit_code,
            output,
            files,
            oom_killed,
        })
    }

    /// Creates and starts the batch's exec, attached; returns its id and output.
    async fn start_batch(
        &self,
        slot: &Slot,
        job: &ContainerSpec,
        phases: &mut Phases,
    ) -> Result<(String, super::OutputStream), EngineError> {
        let t = Instant::now();
        let exec = CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            env: Some(job.spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            cmd: Some(job.spec.argv.clone()),
            working_dir: Some(job.spec.workdir.clone()),
            ..Default::default()
        };
        let exec = self
            .docker
            .create_exec(&slot.id, exec)
            .await
            .map_err(|e| self.failed("create exec", e))?
            .id;
        phases.create = t.elapsed();
        let t = Instant::now();
        let start = StartExecOptions {
            detach: false,
            tty: false,
            output_capacity: None,
        };
        let started = self
            .docker
            .start_exec(&exec, Some(start))
            .await
            .map_err(|e| self.failed("start exec", e))?;
        phases.start = t.elapsed();
        match started {
            StartExecResults::Attached { output, .. } => Ok((exec, output)),
            StartExecResults::Detached => Err(EngineError::Shard {
                host: self.name.clone(),
                reason: "start exec: not attached".to_string(),
                cause: None,
            }),
        }
    }

    /// The exec's exit code once Docker has it; `None` when it never says (the container died
    /// under it).
    async fn exec_exit(&self, exec: &str) -> Result<Option<i64>, EngineError> {
        let deadline = Instant::now() + EXIT_WAIT;
        loop {
            let inspect = self
                .docker
                .inspect_exec(exec)
                .await
                .map_err(|e| self.failed("inspect exec", e))?;
            if inspect.running != Some(true) || Instant::now() >= deadline {
                return Ok(inspect.exit_code.filter(|_| inspect.running != Some(true)));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_idle_program_is_one_loadable_segment_whose_entry_is_its_code() {
        let elf = super::idle_program();
        assert_eq!(elf.len(), 129);
        assert_eq!(&elf[..4], b"\x7fELF");
        let entry = u64::from_le_bytes(elf[24..32].try_into().unwrap());
        assert_eq!(entry, 0x40_0000 + 120);
        let filesz = u64::from_le_bytes(elf[96..104].try_into().unwrap());
        assert_eq!(filesz, elf.len() as u64);
        assert_eq!(&elf[120..], &[0xb8, 0x22, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7]);
    }
}
