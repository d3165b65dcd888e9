//! Docker engines through bollard: connecting over every transport, and one shard's container
//! from create to remove.
//!
//! Engines here are Docker 20.10 (API 1.41) while bollard's models are newer, so only fields
//! that 1.41 knows are set.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use bollard::container::AttachContainerResults;
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, DownloadFromContainerOptions, KillContainerOptions,
    ListContainersOptions, ListNetworksOptions, ListVolumesOptions, RemoveContainerOptions,
    RemoveVolumeOptions, UploadToContainerOptions, WaitContainerOptions,
};
use bollard::{API_DEFAULT_VERSION, Docker, body_full};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use super::ssh::{SshTarget, Tunnel};
use super::{Cause, ContainerSpec, EngineError, EngineInfo, Phases, Removed, ShardRun, tarball};
use crate::config::{Endpoint, Host, RUN_LABEL};
use crate::shard::Collected;

mod cache;
mod probe;
mod pull;
mod services;
mod slot;
pub use cache::{CachePart, INDEX_VOLUME, MARKER, StageStats, holds_a_part, volume_name};
pub use probe::{PROBE_PREFIX, probe_volume};
pub(super) use services::shard_objects;
pub use slot::{Slot, SlotSpec, idle_program};
mod tls;

/// Bollard's per-request limit (until response headers). Generous: it also bounds uploads of
/// large payloads; reachability has its own, shorter limit.
const REQUEST_SECS: u64 = 600;
/// How long cleanup may take once a shard is over, so a dead engine cannot hang the runner.
const CLEANUP: Duration = Duration::from_secs(30);
/// Containers removed at once by a cleanup: a run's few together, `gc`'s many in bounded
/// waves, so an engine with hundreds of leftovers is not sent hundreds of requests at once.
const REMOVE_AT_ONCE: usize = 8;

/// A connected Docker engine (unix, tcp with or without TLS, or ssh through its own tunnel), named
/// as in the hosts file.
pub struct DockerEngine {
    name: String,
    docker: Docker,
    /// Declared after `docker` so the client goes before the proxy it talks through.
    tunnel: Option<Tunnel>,
    /// Whether the engine can hold slot containers, once asked (see `slot.rs`): 0 not asked
    /// yet, 1 yes, 2 no.
    slots: std::sync::atomic::AtomicU8,
}

/// The files a job places in its container, at their paths from `/`: the spec's under its
/// root, then the job's own (secrets and the like).
pub fn placed_files(job: &ContainerSpec) -> Vec<(String, Vec<u8>)> {
    let root = job.root.trim_matches('/');
    let mut files: Vec<(String, Vec<u8>)> = job
        .spec
        .files
        .iter()
        .map(|(path, data)| (format!("{root}/{}", path.trim_start_matches('/')), data.clone()))
        .collect();
    files.extend(job.extras.files.0.iter().cloned());
    files
}

impl DockerEngine {
    /// Connects to `host`'s endpoint and negotiates the API version, all within `timeout`; any
    /// failure is [`EngineError::Unreachable`] with a short reason.
    pub async fn connect(host: &Host, timeout: Duration) -> Result<Self, EngineError> {
        let unreachable = |reason: String| EngineError::Unreachable {
            host: host.name.clone(),
            reason,
            cause: None,
        };
        let Transport { docker, tunnel } = open(host, timeout).await.map_err(unreachable)?;
        let docker = negotiate(docker, host, timeout).await.map_err(unreachable)?;
        Ok(Self {
            name: host.name.clone(),
            docker,
            tunnel,
            slots: std::sync::atomic::AtomicU8::new(0),
        })
    }

    /// The host's name, as the hosts file spells it.
    pub fn host(&self) -> &str {
        &self.name
    }

    /// The local end of the ssh tunnel, for `ssh://` engines.
    pub fn proxy_socket(&self) -> Option<&Path> {
        self.tunnel.as_ref().map(|t| t.socket())
    }

    /// The bollard client, for tests and tools that need a call this layer does not wrap.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// One cheap request: is the engine still answering?
    pub async fn ping(&self) -> Result<(), EngineError> {
        self.docker
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| self.unreachable(e))
    }

    /// Versions, CPUs, memory, whether `image` is present and one round trip: what
    /// `cargo shard hosts` shows.
    pub async fn info(&self, image: &str) -> Result<EngineInfo, EngineError> {
        let t = Instant::now();
        self.docker.ping().await.map_err(|e| self.unreachable(e))?;
        let round_trip = t.elapsed();
        let version = self.docker.version().await.map_err(|e| self.unreachable(e))?;
        let info = self.docker.info().await.map_err(|e| self.unreachable(e))?;
        let image_present = match self.docker.inspect_image(image).await {
            Ok(_) => true,
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => false,
            Err(e) => return Err(self.unreachable(e)),
        };
        Ok(EngineInfo {
            version: version.version.unwrap_or_default(),
            api_version: version.api_version.unwrap_or_default(),
            cpus: info.ncpu.unwrap_or(0).max(0) as u64,
            memory_bytes: info.mem_total.unwrap_or(0).max(0) as u64,
            image_present,
            round_trip,
        })
    }

    /// The id (content hash) of `image`, or `None` when the engine does not have it.
    pub async fn image_id(&self, image: &str) -> Result<Option<String>, EngineError> {
        match self.docker.inspect_image(image).await {
            Ok(i) => Ok(i.id),
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(e) => Err(self.failed("inspect image", e)),
        }
    }

    fn unreachable(&self, e: BollardError) -> EngineError {
        EngineError::Unreachable {
            host: self.name.clone(),
            reason: reason(&e),
            cause: Some(Cause::new(e)),
        }
    }

    /// A failure during a shard: the engine is gone (transport) or refused the request.
    fn failed(&self, what: &str, e: BollardError) -> EngineError {
        if is_transport(&e) {
            EngineError::Lost {
                host: self.name.clone(),
                reason: format!("{what}: {}", reason(&e)),
                cause: Some(Cause::new(e)),
            }
        } else {
            EngineError::Shard {
                host: self.name.clone(),
                reason: format!("{what}: {}", short(&e)),
                cause: Some(Cause::new(e)),
            }
        }
    }

    /// Runs one shard attempt, with its services when the job has any, and removes everything it
    /// created on every path unless the job keeps it.
    pub async fn run_shard(
        &self,
        job: ContainerSpec,
        cancel: CancellationToken,
    ) -> Result<ShardRun, EngineError> {
        if !job.extras.services.is_empty() {
            return self.run_with_services(job, cancel).await;
        }
        self.run_container(job, cancel).await
    }

    /// One shard's container from create to remove, on the network `job.network`.
    async fn run_container(
        &self,
        job: ContainerSpec,
        cancel: CancellationToken,
    ) -> Result<ShardRun, EngineError> {
        let started = Instant::now();
        let mut phases = Phases::default();
        let t = Instant::now();
        let id = self.create(&job).await?;
        phases.create = t.elapsed();
        let result = if cancel.is_cancelled() {
            Err(EngineError::Cancelled)
        } else {
            tokio::select! {
                r = self.drive(&id, &job, &mut phases) => r,
                _ = cancel.cancelled() => Err(EngineError::Cancelled),
            }
        };
        if matches!(result, Err(EngineError::Cancelled)) {
            let kill = self.docker.kill_container(&id, None::<KillContainerOptions>);
            let _ = tokio::time::timeout(CLEANUP, kill).await;
        }
        let t = Instant::now();
        if !job.keep {
            // A container left behind (engine gone meanwhile) is for `gc`; the result stands.
            let _ = tokio::time::timeout(CLEANUP, self.remove(&id)).await;
        }
        phases.remove = t.elapsed();
        let collected = result?;
        Ok(ShardRun {
            container: job.name,
            collected,
            phases,
            started,
            finished: Instant::now(),
        })
    }

    async fn create(&self, job: &ContainerSpec) -> Result<String, EngineError> {
        let (entry, args) = job.spec.argv.split_first().ok_or_else(|| EngineError::Shard {
            host: self.name.clone(),
            reason: "shard has an empty command".to_string(),
            cause: None,
        })?;
        let body = ContainerCreateBody {
            image: Some(job.image.clone()),
            // The whole argv as entrypoint + cmd so an image's own entrypoint never wraps it.
            entrypoint: Some(vec![entry.clone()]),
            cmd: Some(args.to_vec()),
            env: Some(job.spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            working_dir: Some(job.spec.workdir.clone()),
            labels: Some(job.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            network_disabled: without_libnetwork(&job.network),
            host_config: Some(host_config(
                &job.network,
                &job.extras.mounts,
                job.extras.nano_cpus,
                job.extras.memory,
            )),
            ..Default::default()
        };
        self.create_named(&job.name, body, &job.image, "create container")
            .await
    }

    /// Creates container `name` from `body`. A configuration the engine refuses (HTTP 400) is
    /// bad input, never retried; a missing image is its own error.
    pub(super) async fn create_named(
        &self,
        name: &str,
        body: ContainerCreateBody,
        image: &str,
        what: &str,
    ) -> Result<String, EngineError> {
        let opts = CreateContainerOptions {
            name: Some(name.to_string()),
            ..Default::default()
        };
        match self.docker.create_container(Some(opts), body).await {
            Ok(r) => Ok(r.id),
            Err(BollardError::DockerResponseServerError {
                status_code: 400,
                message,
            }) => Err(EngineError::Rejected {
                host: self.name.clone(),
                reason: message,
                cause: None,
            }),
            Err(e) => Err(self.create_failed(e, image, what)),
        }
    }

    /// Why creating a container failed: a missing image is its own error (the host is left
    /// out, nothing retried), anything else is the engine's own words.
    pub(super) fn create_failed(&self, e: BollardError, image: &str, what: &str) -> EngineError {
        match &e {
            BollardError::DockerResponseServerError {
                status_code: 404,
                message,
            } if message.contains("No such image") => EngineError::ImageMissing {
                host: self.name.clone(),
                image: image.to_string(),
            },
            _ => self.failed(what, e),
        }
    }

    /// Upload, start, stream output until exit, collect. Cleanup is the caller's.
    async fn drive(
        &self,
        id: &str,
        job: &ContainerSpec,
        phases: &mut Phases,
    ) -> Result<Collected, EngineError> {
        let t = Instant::now();
        let attached = self.upload_and_attach(id, job).await?;
        phases.upload = t.elapsed();

        let t = Instant::now();
        self.docker
            .start_container(id, None)
            .await
            .map_err(|e| self.failed("start container", e))?;
        phases.start = t.elapsed();

        let t = Instant::now();
        let exited = self.run_to_exit(id, job, attached).await?;
        phases.run = t.elapsed();

        let t = Instant::now();
        let files = self.collect_files(id, job, Some(exited.exit_code)).await?;
        phases.collect = t.elapsed();
        Ok(Collected {
            exit_code: Some(exited.exit_code),
            output: exited.output,
            files,
            oom_killed: exited.oom_killed,
        })
    }

    /// Uploads the shard's files and payload while attaching to its output.
    async fn upload_and_attach(
        &self,
        id: &str,
        job: &ContainerSpec,
    ) -> Result<AttachContainerResults, EngineError> {
        // One request for the shard root, the generated files and the placed ones (secrets):
        // with the payload staged, that is all a shard uploads.
        let first = self.root_and_files(job)?;
        let uploads = async {
            self.upload(id, "/", first.into()).await?;
            // Shared, not copied: every shard of the run uploads the same payload (staged
            // parts are mounted instead, so it is often empty).
            if !job.payload.is_empty() {
                let payload = bytes::Bytes::from_owner(SharedPayload(job.payload.clone()));
                self.upload(id, &job.root, payload).await?;
            }
            Ok::<(), EngineError>(())
        };
        // Attached before start, as `docker run` does. Following the log file instead loses
        // the last lines now and then: Docker 20.10's json-file follower can see "container
        // gone" before it drains the final write, which under load left a shard's output
        // empty. Attaching needs nothing uploaded: the two go at once.
        let attach = AttachContainerOptions {
            stdout: true,
            stderr: true,
            stream: true,
            ..Default::default()
        };
        let attach = async {
            self.docker
                .attach_container(id, Some(attach))
                .await
                .map_err(|e| self.failed("attach to container", e))
        };
        let (uploaded, attached) = tokio::join!(uploads, attach);
        uploaded?;
        attached
    }

    /// The container's state once it has caught up with an OOM kill. Docker learns of one
    /// from an event that can come after the exit itself, so when the work ended with SIGKILL
    /// (137) under a memory limit and no OOM kill shows yet, the container is asked again for
    /// up to about a second before the kill counts as anything else.
    pub(super) async fn settled_state(
        &self,
        id: &str,
        exit_code: Option<i64>,
        limited: bool,
    ) -> Result<Option<bollard::models::ContainerState>, EngineError> {
        const WAITS_MS: [u64; 6] = [0, 50, 100, 150, 300, 400];
        let mut state = None;
        for wait in WAITS_MS {
            tokio::time::sleep(Duration::from_millis(wait)).await;
            state = self
                .docker
                .inspect_container(id, None)
                .await
                .map_err(|e| self.failed("inspect container", e))?
                .state;
            let killed = state.as_ref().and_then(|s| s.oom_killed).unwrap_or(false);
            if killed || !(limited && exit_code == Some(137)) {
                break;
            }
        }
        Ok(state)
    }

    /// Streams the started container's output into its log until it exits.
    async fn run_to_exit(
        &self,
        id: &str,
        job: &ContainerSpec,
        attached: AttachContainerResults,
    ) -> Result<Exited, EngineError> {
        let (output, exit_code) = tokio::join!(self.stream_to_log(attached.output, job), self.wait_exit(id));
        let output = output?;
        let exit_code = exit_code?;
        // Not an error by itself: when only a test binary was killed, the runner's report
        // says so and is still collected; the caller decides when nothing was left.
        let oom_killed = self
            .settled_state(id, Some(exit_code), job.extras.memory.is_some())
            .await?
            .and_then(|s| s.oom_killed)
            .unwrap_or(false);
        Ok(Exited {
            output,
            exit_code,
            oom_killed,
        })
    }

    /// Reads a shard's output into its log until the stream ends, keeping a copy. A log that
    /// cannot be written (full disk) must not fail the shard: the output is kept in memory for
    /// the results regardless.
    async fn stream_to_log(&self, output: OutputStream, job: &ContainerSpec) -> Result<Vec<u8>, EngineError> {
        if let Some(dir) = job.log_path.parent() {
            let _ = tokio::fs::create_dir_all(dir).await;
        }
        let mut log = tokio::fs::File::create(&job.log_path).await.ok();
        let output = self
            .stream_output(output, log.as_mut(), &job.extras.secrets, &job.extras.on_line)
            .await?;
        if let Some(log) = log.as_mut() {
            let _ = log.flush().await;
        }
        Ok(output)
    }

    /// Downloads and unpacks every path the shard's runner reads its results from, once its
    /// command exited with `exit_code`; none when the job's [`CollectCheck`] says the runner
    /// already said all they would.
    ///
    /// [`CollectCheck`]: crate::engine::environment::CollectCheck
    async fn collect_files(
        &self,
        id: &str,
        job: &ContainerSpec,
        exit_code: Option<i64>,
    ) -> Result<BTreeMap<String, Vec<u8>>, EngineError> {
        let mut files = BTreeMap::new();
        if !job.extras.collect_check.needed(exit_code) {
            return Ok(files);
        }
        for path in &job.spec.collect {
            if let Some(tar) = self.download(id, path).await? {
                tarball::unpack_collected(&tar, path, &mut files)
                    .map_err(|e| self.local_failure(&format!("unpack {path}"), e))?;
            }
        }
        Ok(files)
    }

    /// A failure on our side of a shard (packing, unpacking), not the engine's.
    fn local_failure(&self, what: &str, e: std::io::Error) -> EngineError {
        EngineError::Shard {
            host: self.name.clone(),
            reason: format!("{what}: {e}"),
            cause: Some(Cause::new(e)),
        }
    }

    /// A tar of the shard root with the spec's generated files under it and the job's placed
    /// files (secrets) where they go, to extract at `/`.
    fn root_and_files(&self, job: &ContainerSpec) -> Result<Vec<u8>, EngineError> {
        let mut files = placed_files(job);
        files.extend(etc_hosts(&job.network));
        self.root_with(job, &files)
    }

    /// [`Self::root_and_files`] for `files`, the job's [`placed_files`] already made.
    fn root_with(&self, job: &ContainerSpec, files: &[(String, Vec<u8>)]) -> Result<Vec<u8>, EngineError> {
        tarball::dir_and_files_tar(job.root.trim_matches('/'), files)
            .map_err(|e| self.local_failure("pack", e))
    }

    async fn upload(&self, id: &str, path: &str, tar: bytes::Bytes) -> Result<(), EngineError> {
        let opts = UploadToContainerOptions {
            path: path.to_string(),
            ..Default::default()
        };
        self.docker
            .upload_to_container(id, Some(opts), body_full(tar))
            .await
            .map_err(|e| self.failed(&format!("upload to {path}"), e))
    }

    /// The tar Docker gives for `path`, or `None` when the path does not exist.
    async fn download(&self, id: &str, path: &str) -> Result<Option<Vec<u8>>, EngineError> {
        let opts = DownloadFromContainerOptions {
            path: path.trim_end_matches('/').to_string(),
        };
        let mut stream = self.docker.download_from_container(id, Some(opts));
        let mut tar = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(b) => tar.extend_from_slice(&b),
                Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => return Ok(None),
                Err(e) => return Err(self.failed(&format!("download {path}"), e)),
            }
        }
        Ok(Some(tar))
    }

    /// Reads the attached container's output into `log` (when it could be created) until it
    /// exits, keeping a copy; stdout and stderr stay apart for `on_line` (frames of a non-tty
    /// attach say which is which) and secret values are masked before anything sees them.
    async fn stream_output(
        &self,
        mut stream: OutputStream,
        mut log: Option<&mut tokio::fs::File>,
        secrets: &super::redact::Secrets,
        on_line: &super::lines::LineSink,
    ) -> Result<Vec<u8>, EngineError> {
        use crate::shard::Stream;
        use bollard::container::LogOutput;
        let mut tap = super::lines::OutputTap::new(secrets, on_line);
        let mut output = Vec::new();
        while let Some(item) = stream.next().await {
            let (which, message) = match item.map_err(|e| self.failed("read output", e))? {
                LogOutput::StdErr { message } => (Stream::Err, message),
                LogOutput::StdOut { message }
                | LogOutput::Console { message }
                | LogOutput::StdIn { message } => (Stream::Out, message),
            };
            let bytes = tap.push(which, &message);
            output.extend_from_slice(&bytes);
            // A full disk must not kill the shard: the output is kept in memory regardless.
            if let Some(log) = log.as_mut() {
                let _ = log.write_all(&bytes).await;
            }
        }
        let rest = tap.finish();
        output.extend_from_slice(&rest);
        if let Some(log) = log.as_mut() {
            let _ = log.write_all(&rest).await;
        }
        Ok(output)
    }

    async fn wait_exit(&self, id: &str) -> Result<i64, EngineError> {
        let opts = WaitContainerOptions {
            condition: "not-running".to_string(),
        };
        let mut stream = self.docker.wait_container(id, Some(opts));
        match stream.next().await {
            Some(Ok(r)) => Ok(r.status_code),
            // Bollard reports a non-zero exit as an error; for us it is an ordinary exit.
            Some(Err(BollardError::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(self.failed("wait for exit", e)),
            None => Err(EngineError::Lost {
                host: self.name.clone(),
                reason: "wait for exit: no answer".to_string(),
                cause: None,
            }),
        }
    }

    async fn remove(&self, id: &str) -> Result<(), BollardError> {
        let opts = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match self.docker.remove_container(id, Some(opts)).await {
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            r => r,
        }
    }

    /// Removes every container, network and volume carrying the run label, only run `run`'s when
    /// given; the payload caches carry another label and stay.
    pub async fn remove_labelled(&self, run: Option<&str>) -> Result<Removed, EngineError> {
        let label = match run {
            Some(r) => format!("{RUN_LABEL}={r}"),
            None => RUN_LABEL.to_string(),
        };
        let filters = HashMap::from([("label".to_string(), vec![label])]);
        let mut removed = Removed::default();
        let containers = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters.clone()),
                ..Default::default()
            }))
            .await
            .map_err(|e| self.failed("list containers", e))?;
        // At a run's end these are its slot containers (still running) and its stage holders:
        // removed together, the run's last wait is one container's kill and removal, not the sum.
        let removals = containers.into_iter().filter_map(|c| {
            let id = c.id?;
            let name = c
                .names
                .and_then(|n| n.first().map(|s| s.trim_start_matches('/').to_string()))
                .unwrap_or_else(|| id.clone());
            Some(async move {
                let result = self.remove(&id).await;
                (name, result)
            })
        });
        let removals: Vec<_> = futures_util::stream::iter(removals)
            .buffered(REMOVE_AT_ONCE)
            .collect()
            .await;
        for (name, result) in removals {
            result.map_err(|e| self.failed(&format!("remove container {name}"), e))?;
            removed.containers.push(name);
        }
        let networks = self
            .docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(filters.clone()),
            }))
            .await
            .map_err(|e| self.failed("list networks", e))?;
        for n in networks {
            let Some(id) = n.id else { continue };
            let name = n.name.unwrap_or_else(|| id.clone());
            match self.docker.remove_network(&id).await {
                Ok(()) | Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => {}
                Err(e) => return Err(self.failed(&format!("remove network {name}"), e)),
            }
            removed.networks.push(name);
        }
        let volumes = self
            .docker
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(|e| self.failed("list volumes", e))?;
        for v in volumes.volumes.unwrap_or_default() {
            match self
                .docker
                .remove_volume(&v.name, Some(RemoveVolumeOptions { force: true }))
                .await
            {
                Ok(()) | Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => {}
                Err(e) => return Err(self.failed(&format!("remove volume {}", v.name), e)),
            }
            removed.volumes.push(v.name);
        }
        Ok(removed)
    }
}

/// How a shard's container ended: its output, exit code and whether the kernel killed it.
struct Exited {
    output: Vec<u8>,
    exit_code: i64,
    oom_killed: bool,
}

/// A client and, for `ssh://`, the tunnel it talks through (kept alive as long as the client).
struct Transport {
    docker: Docker,
    tunnel: Option<Tunnel>,
}

/// Opens the client for `host`'s endpoint; nothing is sent yet. Errors are the reason line.
async fn open(host: &Host, timeout: Duration) -> Result<Transport, String> {
    let docker = match &host.endpoint {
        Endpoint::Unix { path } => {
            check_socket(Path::new(path))?;
            Docker::connect_with_unix(path, REQUEST_SECS, API_DEFAULT_VERSION)
        }
        Endpoint::Tcp { host: h, port } => match &host.tls {
            Some(tls) => return open_tls(&format!("{h}:{port}"), tls),
            None => {
                Docker::connect_with_http(&format!("http://{h}:{port}"), REQUEST_SECS, API_DEFAULT_VERSION)
            }
        },
        Endpoint::Ssh { user, host: h, port } => {
            let target = ssh_target(host, user, h, *port, timeout);
            return open_ssh(target).await;
        }
        Endpoint::Local => unreachable!("local engines are not Docker engines"),
    }
    .map_err(|e| reason(&e))?;
    Ok(Transport { docker, tunnel: None })
}

/// A `tcp://` client over TLS: checked against the CA when `verify` is on, else unverified.
fn open_tls(addr: &str, tls: &crate::config::Tls) -> Result<Transport, String> {
    let ca = tls.ca.as_ref().filter(|_| tls.verify);
    for f in ca.into_iter().chain([&tls.cert, &tls.key]) {
        if !f.exists() {
            return Err(format!("TLS error: {} missing", f.display()));
        }
    }
    let docker = match ca {
        Some(ca) => {
            Docker::connect_with_ssl(addr, &tls.key, &tls.cert, ca, REQUEST_SECS, API_DEFAULT_VERSION)
                .map_err(|e| reason(&e))?
        }
        None => tls::unverified(addr, &tls.cert, &tls.key, REQUEST_SECS)?,
    };
    Ok(Transport { docker, tunnel: None })
}

/// Where the ssh tunnel goes, with the hosts file's options or the usual `~/.ssh` defaults.
fn ssh_target(host: &Host, user: &str, h: &str, port: u16, timeout: Duration) -> SshTarget {
    SshTarget {
        user: user.to_string(),
        host: h.to_string(),
        port,
        identity: host
            .ssh
            .identity
            .clone()
            .unwrap_or_else(super::ssh::default_identity),
        known_hosts: host
            .ssh
            .known_hosts
            .clone()
            .unwrap_or_else(super::ssh::default_known_hosts),
        policy: host.ssh.host_key_check,
        remote_socket: host.ssh.remote_socket.clone(),
        timeout,
    }
}

/// Starts the tunnel (blocking ssh2 work, off the runtime) and a client on its local socket.
async fn open_ssh(target: SshTarget) -> Result<Transport, String> {
    let t = tokio::task::spawn_blocking(move || Tunnel::start(target))
        .await
        .map_err(|e| format!("ssh tunnel: {e}"))??;
    let socket = t.socket().display().to_string();
    let docker =
        Docker::connect_with_unix(&socket, REQUEST_SECS, API_DEFAULT_VERSION).map_err(|e| reason(&e))?;
    Ok(Transport {
        docker,
        tunnel: Some(t),
    })
}

/// The first request: agrees on the API version within `timeout`.
async fn negotiate(docker: Docker, host: &Host, timeout: Duration) -> Result<Docker, String> {
    match tokio::time::timeout(timeout, docker.negotiate_version()).await {
        Err(_) => Err(format!("timeout after {}s", timeout.as_secs_f64())),
        Ok(Err(e)) => {
            let tls = matches!(host.endpoint, Endpoint::Tcp { .. }) && host.tls.is_some();
            Err(tls_worded(reason(&e), tls))
        }
        Ok(Ok(d)) => Ok(d),
    }
}

/// Past connecting, a TLS client's failures are TLS failures (rustls words them as "received
/// corrupt message …", which alone does not say so).
fn tls_worded(r: String, tls: bool) -> String {
    let plain = ["connection refused", "timeout", "permission denied", "TLS error"];
    if tls && !plain.iter().any(|p| r.starts_with(p)) {
        format!("TLS error: {r}")
    } else {
        r
    }
}

/// Docker's `none` network, asked for without libnetwork: the container still gets a private
/// network namespace holding only loopback, but its start skips the two re-executions of
/// dockerd that libnetwork adds (the `libnetwork-setkey` hook and `set-ipv6`), about half of
/// a container start on the test bed (0.23 s against 0.11 s). Docker then writes no
/// `/etc/hosts`: [`etc_hosts`] places the one it would have written.
pub(super) fn without_libnetwork(network: &str) -> Option<bool> {
    (network == "none").then_some(true)
}

/// `/etc/hosts` as Docker writes it on the `none` network, for a container started
/// [`without_libnetwork`] (tests that resolve `localhost` need it).
pub(super) fn etc_hosts(network: &str) -> Option<(String, Vec<u8>)> {
    const HOSTS: &str = "127.0.0.1\tlocalhost\n\
                         ::1\tlocalhost ip6-localhost ip6-loopback\n\
                         fe00::0\tip6-localnet\n\
                         ff00::0\tip6-mcastprefix\n\
                         ff02::1\tip6-allnodes\n\
                         ff02::2\tip6-allrouters\n";
    without_libnetwork(network).map(|_| ("/etc/hosts".to_string(), HOSTS.as_bytes().to_vec()))
}

/// The host settings every container of a run gets: its network, the staged payload parts
/// (shared by every shard on the host, so never writable), and the job's CPU and memory limits.
fn host_config(
    network: &str,
    mounts: &[(String, String)],
    nano_cpus: Option<i64>,
    memory: Option<i64>,
) -> HostConfig {
    HostConfig {
        network_mode: Some(network.to_string()),
        binds: (!mounts.is_empty()).then(|| {
            mounts
                .iter()
                .map(|(volume, target)| format!("{volume}:{target}:ro"))
                .collect()
        }),
        nano_cpus,
        memory,
        ..Default::default()
    }
}

/// A container's or an exec's attached output, frame by frame.
type OutputStream = std::pin::Pin<
    Box<dyn futures_util::Stream<Item = Result<bollard::container::LogOutput, BollardError>> + Send>,
>;

/// The run's payload as bytes without a copy.
struct SharedPayload(std::sync::Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedPayload {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

fn check_socket(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("socket {} missing", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err("permission denied".to_string()),
        Err(e) => Err(format!("socket {}: {e}", path.display())),
    }
}

/// Errors that mean the connection itself failed, not that the engine said no.
fn is_transport(e: &BollardError) -> bool {
    !matches!(
        e,
        BollardError::DockerResponseServerError { .. }
            | BollardError::JsonDataError { .. }
            | BollardError::JsonSerdeError { .. }
            | BollardError::DockerContainerWaitError { .. }
            | BollardError::APIVersionParseError { .. }
    )
}

/// A short reason for a connection-level failure: the innermost cause that says something.
pub fn reason(e: &BollardError) -> String {
    match e {
        BollardError::SocketNotFoundError(p) => return format!("socket {p} missing"),
        BollardError::RequestTimeoutError => return "timeout".to_string(),
        BollardError::DockerResponseServerError { .. } => return short(e),
        _ => {}
    }
    let mut chain: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return "connection refused".to_string(),
                std::io::ErrorKind::PermissionDenied => return "permission denied".to_string(),
                std::io::ErrorKind::NotFound => return "socket missing".to_string(),
                std::io::ErrorKind::TimedOut => return "timeout".to_string(),
                _ => {}
            }
        }
        chain.push(err.to_string());
        cur = err.source();
    }
    let text = chain.join(": ");
    let lower = text.to_lowercase();
    let innermost = chain.last().cloned().unwrap_or_default();
    if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
        format!("TLS error: {innermost}")
    } else if lower.contains("connection closed") || lower.contains("connection reset") {
        format!("connection lost ({innermost})")
    } else {
        innermost
    }
}

fn short(e: &BollardError) -> String {
    match e {
        BollardError::DockerResponseServerError { status_code, message } => {
            format!("engine said {status_code}: {}", message.trim())
        }
        other => other.to_string(),
    }
}
