//! Services beside a shard: a private bridge network per shard attempt, the services on it
//! under their names, a readiness wait, the shard on the same network, and everything removed
//! afterwards whatever happened (success, failure, cancel, timeout).
//!
//! Every object carries the shard's labels (the run label included) so `gc --run` finds what a
//! killed run left behind.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::errors::Error as BollardError;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkCreateRequest, NetworkingConfig,
};
use bollard::query_parameters::{CreateContainerOptions, LogsOptions};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::{CLEANUP, DockerEngine};
use crate::engine::environment::{ReadyCheck, ServiceSpec};
use crate::engine::{ContainerSpec, EngineError, ShardObjects, ShardRun, tarball};

/// The label naming a service container's service.
pub const SERVICE_LABEL: &str = "dev.cargo-shard.service";
/// Pause between readiness checks.
const POLL: Duration = Duration::from_millis(200);
/// One readiness check may take this long before it counts as a failed check.
const CHECK_LIMIT: Duration = Duration::from_secs(10);

/// The container of service `service` beside the shard container `shard`.
fn service_container(shard: &str, service: &str) -> String {
    format!("{shard}-{service}")
}

/// The private network of the shard container `shard` and its services.
fn service_network(shard: &str) -> String {
    format!("{shard}-net")
}

/// What a shard attempt named `container` makes on a Docker engine: the services, when there
/// are any, sit beside it on a network of their own.
pub(in crate::engine) fn shard_objects(container: &str, services: &[&str]) -> ShardObjects {
    let with = !services.is_empty();
    ShardObjects {
        container: container.to_string(),
        services: services.iter().map(|s| service_container(container, s)).collect(),
        network: with.then(|| service_network(container)),
    }
}

/// What was created for one shard, to remove afterwards.
#[derive(Default)]
struct Created {
    network: Option<String>,
    containers: Vec<String>,
}

impl DockerEngine {
    pub(super) async fn run_with_services(
        &self,
        job: ContainerSpec,
        cancel: CancellationToken,
    ) -> Result<ShardRun, EngineError> {
        let t = Instant::now();
        let network = service_network(&job.name);
        let mut created = Created::default();
        let setup = if cancel.is_cancelled() {
            Err(EngineError::Cancelled)
        } else {
            tokio::select! {
                r = self.start_services(&job, &network, &mut created) => r,
                _ = cancel.cancelled() => Err(EngineError::Cancelled),
            }
        };
        let setup_time = t.elapsed();
        let keep = job.keep;
        let result = match setup {
            Ok(()) => {
                let mut shard = job;
                shard.network = network;
                self.run_container(shard, cancel).await.map(|mut run| {
                    run.phases.create += setup_time;
                    run
                })
            }
            Err(e) => Err(e),
        };
        if !keep {
            // Bounded: a dead engine must not hold the runner; `gc --run` is the fallback.
            let _ = tokio::time::timeout(CLEANUP, self.remove_created(&created)).await;
        }
        result
    }

    async fn start_services(
        &self,
        job: &ContainerSpec,
        network: &str,
        created: &mut Created,
    ) -> Result<(), EngineError> {
        let labels: HashMap<String, String> =
            job.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let request = NetworkCreateRequest {
            name: network.to_string(),
            driver: Some("bridge".to_string()),
            labels: Some(labels.clone()),
            ..Default::default()
        };
        self.docker
            .create_network(request)
            .await
            .map_err(|e| self.failed(&format!("create network {network}"), e))?;
        created.network = Some(network.to_string());
        let mut ids = Vec::new();
        for svc in &job.extras.services {
            let id = self.start_service(job, svc, network, &labels, created).await?;
            ids.push(id);
        }
        let checks = job
            .extras
            .services
            .iter()
            .zip(&ids)
            .map(|(svc, id)| self.wait_ready(svc, id, job));
        for r in futures_util::future::join_all(checks).await {
            r?;
        }
        Ok(())
    }

    async fn start_service(
        &self,
        job: &ContainerSpec,
        svc: &ServiceSpec,
        network: &str,
        labels: &HashMap<String, String>,
        created: &mut Created,
    ) -> Result<String, EngineError> {
        let name = service_container(&job.name, &svc.name);
        let mut labels = labels.clone();
        labels.insert(SERVICE_LABEL.to_string(), svc.name.clone());
        let (entrypoint, cmd) = match svc.command.split_first() {
            Some((entry, args)) => (Some(vec![entry.clone()]), Some(args.to_vec())),
            None => (None, None),
        };
        let body = ContainerCreateBody {
            image: Some(svc.image.clone()),
            entrypoint,
            cmd,
            env: Some(svc.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(labels),
            tty: Some(false),
            host_config: Some(HostConfig {
                network_mode: Some(network.to_string()),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    network.to_string(),
                    EndpointSettings {
                        aliases: Some(vec![svc.name.clone()]),
                        ..Default::default()
                    },
                )])),
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptions {
            name: Some(name.clone()),
            ..Default::default()
        };
        let id = match self.docker.create_container(Some(opts), body).await {
            Ok(r) => r.id,
            Err(BollardError::DockerResponseServerError {
                status_code: 404,
                message,
            }) if message.contains("No such image") => {
                return Err(EngineError::ImageMissing {
                    host: self.name.clone(),
                    image: svc.image.clone(),
                });
            }
            Err(e) => return Err(self.failed(&format!("create service {}", svc.name), e)),
        };
        created.containers.push(id.clone());
        if !svc.files.0.is_empty() {
            let tar = tarball::files_tar(&svc.files.0).map_err(|e| self.shard_error(format!("pack: {e}")))?;
            self.upload(&id, "/", tar.into()).await?;
        }
        self.docker
            .start_container(&id, None)
            .await
            .map_err(|e| self.failed(&format!("start service {}", svc.name), e))?;
        Ok(id)
    }

    /// Polls the service's readiness check until it passes, the service exits, or its
    /// timeout passes.
    async fn wait_ready(&self, svc: &ServiceSpec, id: &str, job: &ContainerSpec) -> Result<(), EngineError> {
        let argv: Vec<String> = match &svc.ready {
            ReadyCheck::None => return Ok(()),
            ReadyCheck::Command(argv) => argv.clone(),
            // busybox nc has no -z: connecting with stdin closed is the probe.
            ReadyCheck::Tcp(port) => ["nc", "-w", "1", "127.0.0.1", &port.to_string()]
                .map(String::from)
                .to_vec(),
        };
        let deadline = Instant::now() + svc.ready_timeout;
        loop {
            let state = self
                .docker
                .inspect_container(id, None)
                .await
                .map_err(|e| self.failed(&format!("inspect service {}", svc.name), e))?
                .state;
            if !state.as_ref().and_then(|s| s.running).unwrap_or(false) {
                let code = state.and_then(|s| s.exit_code).unwrap_or(-1);
                let tail = self.log_tail(id).await;
                return Err(self.shard_error(job.extras.secrets.redact_str(&format!(
                    "service {} exited with code {code} before it was ready{tail}",
                    svc.name
                ))));
            }
            let last = match tokio::time::timeout(CHECK_LIMIT, self.exec(id, &argv)).await {
                Ok(Ok((0, _))) => return Ok(()),
                Ok(Ok((code, output))) => format!("last check exited {code}{}", tail_of(&output)),
                Ok(Err(e)) if is_lost(&e) => return Err(e),
                Ok(Err(e)) => format!("last check failed: {e}"),
                Err(_) => format!("last check took over {}s", CHECK_LIMIT.as_secs()),
            };
            if Instant::now() >= deadline {
                let what = match &svc.ready {
                    ReadyCheck::Tcp(port) => format!("port {port} not accepting connections"),
                    _ => "ready_cmd never exited 0".to_string(),
                };
                return Err(self.shard_error(job.extras.secrets.redact_str(&format!(
                    "service {} not ready after {}: {what} ({last})",
                    svc.name,
                    humantime::format_duration(svc.ready_timeout)
                ))));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Runs `argv` inside container `id`; its exit code and combined output.
    async fn exec(&self, id: &str, argv: &[String]) -> Result<(i64, Vec<u8>), EngineError> {
        let opts = CreateExecOptions {
            cmd: Some(argv.to_vec()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let exec = self
            .docker
            .create_exec(id, opts)
            .await
            .map_err(|e| self.failed("create exec", e))?;
        let mut output = Vec::new();
        match self
            .docker
            .start_exec(&exec.id, None)
            .await
            .map_err(|e| self.failed("start exec", e))?
        {
            StartExecResults::Attached {
                output: mut stream, ..
            } => {
                while let Some(item) = stream.next().await {
                    match item {
                        Ok(chunk) => output.extend_from_slice(&chunk.into_bytes()),
                        Err(e) => return Err(self.failed("read exec output", e)),
                    }
                }
            }
            StartExecResults::Detached => {}
        }
        let inspect = self
            .docker
            .inspect_exec(&exec.id)
            .await
            .map_err(|e| self.failed("inspect exec", e))?;
        Ok((inspect.exit_code.unwrap_or(-1), output))
    }

    /// The last lines a container printed, for a failure message.
    async fn log_tail(&self, id: &str) -> String {
        let opts = LogsOptions {
            stdout: true,
            stderr: true,
            tail: "5".to_string(),
            ..Default::default()
        };
        let mut stream = self.docker.logs(id, Some(opts));
        let mut out = Vec::new();
        while let Some(Ok(chunk)) = stream.next().await {
            out.extend_from_slice(&chunk.into_bytes());
        }
        tail_of(&out)
    }

    async fn remove_created(&self, created: &Created) {
        for id in &created.containers {
            let _ = self.remove(id).await;
        }
        if let Some(net) = &created.network {
            match self.docker.remove_network(net).await {
                Ok(()) | Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => {}
                // Still in use (a kept or half-removed container): `gc --run` removes it later.
                Err(_) => {}
            }
        }
    }

    fn shard_error(&self, reason: String) -> EngineError {
        EngineError::Shard {
            host: self.name.clone(),
            reason,
            cause: None,
        }
    }
}

fn is_lost(e: &EngineError) -> bool {
    matches!(e, EngineError::Lost { .. } | EngineError::Unreachable { .. })
}

/// `: <last non-empty line>` of some output, or nothing.
fn tail_of(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    match text.lines().rev().map(str::trim).find(|l| !l.is_empty()) {
        Some(line) => format!(": {}", line.chars().take(200).collect::<String>()),
        None => String::new(),
    }
}
