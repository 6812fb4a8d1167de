//! `Containerd`: the one gRPC channel to containerd, the `k8s.io` namespace injected into
//! every request, and the container/task/exec calls of [`ContainerRuntime`].
//!
//! Owns: request construction for the Containers, Tasks, Snapshots, Leases and Version
//! services. Image import/unpack lives in `images.rs` (same type). May call: containerd only.

use super::error::RuntimeError;
use super::{
    ContainerCreate, ContainerRuntime, ContainerState, ContainerSummary, ExecOutput, ExitInfo,
    ImageInfo, PullPolicy, PullSecrets, PulledImage, RuntimeFuture, TaskStatus,
};
use containerd_client::services::v1::container::Runtime;
use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::leases_client::LeasesClient;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::{
    MountsRequest, PrepareSnapshotRequest, RemoveSnapshotRequest,
};
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::version_client::VersionClient;
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest,
    DeleteProcessRequest, DeleteTaskRequest, ExecProcessRequest, GetContainerRequest, GetRequest,
    KillRequest, ListContainersRequest, StartRequest, WaitRequest,
};
use containerd_client::services::v1::{CreateRequest as LeaseCreate, DeleteRequest as LeaseDelete};
use futures::FutureExt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};
use tonic::Request;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::Channel;

/// The containerd namespace Kubernetes runtimes use; `ctr -n k8s.io` shows our objects.
pub const NAMESPACE: &str = "k8s.io";
/// The snapshotter we unpack into and run from.
pub const SNAPSHOTTER: &str = "overlayfs";
const RUNTIME: &str = "io.containerd.runc.v2";
const SPEC_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
pub(super) const PROCESS_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";

/// Options for [`Containerd::connect`].
#[derive(Debug, Clone)]
pub struct ContainerdOptions {
    /// The binary the shim runs as the log driver (`<bin> container-logger <path>`); when
    /// `None`, containers log raw output to the file (no CRI framing).
    pub logger_binary: Option<PathBuf>,
    /// Scratch directory for exec output files.
    pub scratch_dir: PathBuf,
}

/// A client of one containerd, scoped to the `k8s.io` namespace.
pub struct Containerd {
    pub(super) channel: Channel,
    pub(super) namespace: AsciiMetadataValue,
    pub(super) options: ContainerdOptions,
    /// Resolved images by normalised name (filled by import and lookups).
    pub(super) images: Mutex<HashMap<String, ImageInfo>>,
    /// Registry pulls (client and in-flight pulls), see [`super::pull`].
    pub(super) pulls: super::pull::Pulls,
    /// CRI log rotation handed to the log driver: (max bytes, max files); 0 bytes = never.
    log_rotation: (u64, u32),
    /// FIFO stdio of interactive containers, see [`super::stdio`].
    pub(super) stdio: super::stdio::StdioHub,
}

impl std::fmt::Debug for Containerd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Containerd")
            .field("namespace", &self.namespace)
            .finish()
    }
}

fn not_found_ok<T>(r: Result<T, RuntimeError>) -> Result<Option<T>, RuntimeError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

fn to_system_time(ts: Option<prost_types::Timestamp>) -> Option<SystemTime> {
    let ts = ts?;
    if ts.seconds <= 0 {
        return None;
    }
    Some(SystemTime::UNIX_EPOCH + Duration::new(ts.seconds as u64, ts.nanos.max(0) as u32))
}

/// Escapes what Go's `url.Query` would otherwise split or decode.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Containerd {
    /// Connects to the containerd socket at `socket` (one channel for every service).
    pub async fn connect(socket: &Path, options: ContainerdOptions) -> Result<Self, RuntimeError> {
        let channel =
            containerd_client::connect(socket)
                .await
                .map_err(|source| RuntimeError::Connect {
                    path: socket.to_path_buf(),
                    source,
                })?;
        std::fs::create_dir_all(&options.scratch_dir)
            .map_err(|e| RuntimeError::io(&options.scratch_dir, e))?;
        let stdio = super::stdio::StdioHub::new(options.scratch_dir.join("stdio"));
        Ok(Containerd {
            channel,
            namespace: MetadataValue::from_static(NAMESPACE),
            options,
            images: Mutex::new(HashMap::new()),
            pulls: super::pull::Pulls::default(),
            log_rotation: (0, 5),
            stdio,
        })
    }

    /// Uses `config` (`registries.yaml`) for registry pulls.
    pub fn with_registries(self, config: crate::agent::registry::RegistriesConfig) -> Self {
        self.pulls.set_config(config);
        self
    }

    /// Rotate container logs past `max_size` bytes, keeping `max_files` files (containers
    /// created from now on).
    pub fn set_log_rotation(&mut self, max_size: u64, max_files: u32) {
        self.log_rotation = (max_size, max_files);
    }

    /// Wraps `msg` in a request carrying our namespace (and the lease, if any). Every call
    /// goes through here, so no request can forget the namespace.
    pub(super) fn req<T>(&self, msg: T, lease: Option<&str>) -> Result<Request<T>, RuntimeError> {
        let mut req = Request::new(msg);
        let md = req.metadata_mut();
        md.insert("containerd-namespace", self.namespace.clone());
        if let Some(lease) = lease {
            let value: AsciiMetadataValue = lease
                .parse()
                .map_err(|_| RuntimeError::Invalid(format!("lease id {lease:?}")))?;
            md.insert("containerd-lease", value);
        }
        Ok(req)
    }

    pub(super) fn containers(&self) -> ContainersClient<Channel> {
        ContainersClient::new(self.channel.clone())
    }
    pub(super) fn tasks(&self) -> TasksClient<Channel> {
        TasksClient::new(self.channel.clone())
    }
    pub(super) fn snapshots(&self) -> SnapshotsClient<Channel> {
        SnapshotsClient::new(self.channel.clone())
    }

    /// A lease that keeps everything created under it from GC; expires on its own after
    /// an hour in case we die before deleting it.
    pub(super) async fn create_lease(&self, purpose: &str) -> Result<String, RuntimeError> {
        let id = format!("k3rs-{purpose}-{}", uuid::Uuid::new_v4().simple());
        let expire = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
        let labels = HashMap::from([("containerd.io/gc.expire".to_string(), expire.to_string())]);
        LeasesClient::new(self.channel.clone())
            .create(self.req(
                LeaseCreate {
                    id: id.clone(),
                    labels,
                },
                None,
            )?)
            .await
            .map_err(|e| RuntimeError::grpc("lease create", e))?;
        Ok(id)
    }

    pub(super) async fn delete_lease(&self, id: &str) {
        let req = match self.req(
            LeaseDelete {
                id: id.to_string(),
                sync: false,
            },
            None,
        ) {
            Ok(r) => r,
            Err(_) => return,
        };
        if let Err(e) = LeasesClient::new(self.channel.clone()).delete(req).await {
            tracing::warn!(lease = id, error = %e, "cannot delete lease; it expires on its own");
        }
    }

    /// containerd's version, e.g. `1.6.20~ds1`.
    pub async fn server_version(&self) -> Result<String, RuntimeError> {
        let v = VersionClient::new(self.channel.clone())
            .version(self.req((), None)?)
            .await
            .map_err(|e| RuntimeError::grpc("version", e))?
            .into_inner();
        Ok(v.version)
    }

    fn log_uri(&self, log_path: &Path) -> String {
        match &self.options.logger_binary {
            Some(bin) => format!(
                "binary://{}?container-logger={}&max-size={}&max-files={}",
                bin.display(),
                query_escape(&log_path.display().to_string()),
                self.log_rotation.0,
                self.log_rotation.1
            ),
            None => format!("file://{}", log_path.display()),
        }
    }

    /// Container record first, then its snapshot, then the task. The record names the
    /// snapshot key, and containerd's GC treats every container's snapshot as a root, so the
    /// snapshot is safe from GC the moment it exists: no lease is needed (a lease create and
    /// delete are two more metadata transactions, each an fsync under bolt's single writer
    /// lock, per container — a queue when 30 pods start at once).
    async fn do_create(&self, c: &ContainerCreate) -> Result<(), RuntimeError> {
        let spec = serde_json::to_vec(&c.spec).map_err(|source| RuntimeError::Json {
            what: format!("spec of {}", c.id),
            source,
        })?;
        let container = Container {
            id: c.id.clone(),
            labels: c.labels.clone(),
            image: c.image.name.clone(),
            runtime: Some(Runtime {
                name: RUNTIME.into(),
                options: None,
            }),
            spec: Some(prost_types::Any {
                type_url: SPEC_TYPE.into(),
                value: spec,
            }),
            snapshotter: SNAPSHOTTER.into(),
            snapshot_key: c.id.clone(),
            ..Default::default()
        };
        self.containers()
            .create(self.req(
                CreateContainerRequest {
                    container: Some(container),
                },
                None,
            )?)
            .await
            .map_err(|e| RuntimeError::grpc("container create", e))?;
        let prepare = PrepareSnapshotRequest {
            snapshotter: SNAPSHOTTER.into(),
            key: c.id.clone(),
            parent: c.image.chain_id.clone(),
            labels: HashMap::new(),
        };
        match self.snapshots().prepare(self.req(prepare, None)?).await {
            Ok(_) => {}
            Err(e) if e.code() == tonic::Code::AlreadyExists => {}
            Err(e) => {
                // Leave nothing behind: a record without its snapshot cannot run.
                let delete = DeleteContainerRequest { id: c.id.clone() };
                if let Ok(req) = self.req(delete, None)
                    && let Err(err) = self.containers().delete(req).await
                {
                    tracing::warn!(container = %c.id, error = %err, "cannot delete the record of a container whose snapshot failed");
                }
                return Err(RuntimeError::grpc("snapshot prepare", e));
            }
        }
        self.create_task(c).await
    }

    async fn create_task(&self, c: &ContainerCreate) -> Result<(), RuntimeError> {
        let mounts = self
            .snapshots()
            .mounts(self.req(
                MountsRequest {
                    snapshotter: SNAPSHOTTER.into(),
                    key: c.id.clone(),
                },
                None,
            )?)
            .await
            .map_err(|e| RuntimeError::grpc("snapshot mounts", e))?
            .into_inner()
            .mounts;
        if let Some(dir) = c.log_path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| RuntimeError::io(dir, e))?;
        }
        // Interactive containers get FIFOs the agent reads (the log driver has no stdin).
        let stdio = super::stdio::StdioConfig::from_spec(&c.spec);
        let paths = if stdio.interactive() {
            let paths = self
                .stdio
                .prepare(&c.id, stdio, &c.log_path, self.log_rotation)?;
            // Readers first: the shim's open of an output FIFO waits for one.
            if let Err(e) = self.stdio.ensure(&c.id) {
                self.stdio.forget(&c.id);
                return Err(e);
            }
            paths
        } else {
            let uri = self.log_uri(&c.log_path);
            super::stdio::StdioPaths {
                stdin: String::new(),
                stdout: uri.clone(),
                stderr: uri,
            }
        };
        let created = self
            .tasks()
            .create(self.req(
                CreateTaskRequest {
                    container_id: c.id.clone(),
                    rootfs: mounts,
                    stdin: paths.stdin,
                    stdout: paths.stdout,
                    stderr: paths.stderr,
                    terminal: stdio.tty,
                    ..Default::default()
                },
                None,
            )?)
            .await
            .map_err(|e| RuntimeError::grpc("task create", e));
        if let Err(e) = created {
            self.stdio.forget(&c.id);
            return Err(e);
        }
        Ok(())
    }

    async fn do_state(&self, id: &str) -> Result<Option<ContainerState>, RuntimeError> {
        let container = not_found_ok(
            self.containers()
                .get(self.req(GetContainerRequest { id: id.into() }, None)?)
                .await
                .map_err(|e| RuntimeError::grpc("container get", e)),
        )?;
        let Some(container) = container.and_then(|c| c.into_inner().container) else {
            return Ok(None);
        };
        let task = not_found_ok(
            self.tasks()
                .get(self.req(
                    GetRequest {
                        container_id: id.into(),
                        exec_id: String::new(),
                    },
                    None,
                )?)
                .await
                .map_err(|e| RuntimeError::grpc("task get", e)),
        )?
        .and_then(|r| r.into_inner().process);
        let (status, pid, exit) = match task {
            None => (TaskStatus::NoTask, 0, None),
            Some(p) => {
                use containerd_client::types::v1::Status;
                let status = match Status::try_from(p.status) {
                    Ok(Status::Created) => TaskStatus::Created,
                    Ok(Status::Running) | Ok(Status::Paused) | Ok(Status::Pausing) => {
                        TaskStatus::Running
                    }
                    Ok(Status::Stopped) => TaskStatus::Stopped,
                    _ => TaskStatus::Unknown,
                };
                let exit = (status == TaskStatus::Stopped).then(|| ExitInfo {
                    exit_code: p.exit_status,
                    exited_at: to_system_time(p.exited_at),
                    oom_killed: p.exit_status == 137
                        && super::oom::oom_killed(container.spec.as_ref()),
                });
                (status, p.pid, exit)
            }
        };
        Ok(Some(ContainerState {
            id: id.into(),
            labels: container.labels,
            image: container.image,
            created_at: to_system_time(container.created_at),
            status,
            pid,
            exit,
        }))
    }

    pub(super) async fn do_wait(&self, id: &str, exec_id: &str) -> Result<ExitInfo, RuntimeError> {
        let r = self
            .tasks()
            .wait(self.req(
                WaitRequest {
                    container_id: id.into(),
                    exec_id: exec_id.into(),
                },
                None,
            )?)
            .await
            .map_err(|e| RuntimeError::grpc("task wait", e))?
            .into_inner();
        // SIGKILLed task: ask its cgroup (still there until the task is deleted) whether
        // the OOM killer did it.
        let oom_killed = exec_id.is_empty() && r.exit_status == 137 && {
            let c = self
                .containers()
                .get(self.req(GetContainerRequest { id: id.into() }, None)?)
                .await
                .ok()
                .and_then(|c| c.into_inner().container);
            super::oom::oom_killed(c.as_ref().and_then(|c| c.spec.as_ref()))
        };
        Ok(ExitInfo {
            exit_code: r.exit_status,
            exited_at: to_system_time(r.exited_at),
            oom_killed,
        })
    }

    async fn do_kill(&self, id: &str, signal: u32) -> Result<(), RuntimeError> {
        let r = self
            .tasks()
            .kill(self.req(
                KillRequest {
                    container_id: id.into(),
                    exec_id: String::new(),
                    signal,
                    all: true,
                },
                None,
            )?)
            .await;
        match r {
            Ok(_) => Ok(()),
            // Already gone or already exited: nothing to signal.
            Err(e)
                if matches!(
                    e.code(),
                    tonic::Code::NotFound | tonic::Code::FailedPrecondition
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(RuntimeError::grpc("task kill", e)),
        }
    }

    async fn do_remove(&self, id: &str) -> Result<(), RuntimeError> {
        if let Some(state) = self.do_state(id).await?
            && matches!(state.status, TaskStatus::Running | TaskStatus::Created)
        {
            self.do_kill(id, nix::sys::signal::Signal::SIGKILL as u32)
                .await?;
            let _ = tokio::time::timeout(Duration::from_secs(10), self.do_wait(id, "")).await;
        }
        let r = self
            .tasks()
            .delete(self.req(
                DeleteTaskRequest {
                    container_id: id.into(),
                },
                None,
            )?)
            .await
            .map_err(|e| RuntimeError::grpc("task delete", e));
        not_found_ok(r)?;
        let r = self
            .containers()
            .delete(self.req(DeleteContainerRequest { id: id.into() }, None)?)
            .await
            .map_err(|e| RuntimeError::grpc("container delete", e));
        not_found_ok(r)?;
        let r = self
            .snapshots()
            .remove(self.req(
                RemoveSnapshotRequest {
                    snapshotter: SNAPSHOTTER.into(),
                    key: id.into(),
                },
                None,
            )?)
            .await
            .map_err(|e| RuntimeError::grpc("snapshot remove", e));
        not_found_ok(r)?;
        self.stdio.forget(id);
        Ok(())
    }

    async fn do_list(&self, key: &str, value: &str) -> Result<Vec<ContainerSummary>, RuntimeError> {
        // An empty value lists every container that has the label at all.
        let filters = if value.is_empty() {
            vec![format!("labels.\"{key}\"")]
        } else {
            vec![format!("labels.\"{key}\"=={value}")]
        };
        let list = self
            .containers()
            .list(self.req(ListContainersRequest { filters }, None)?)
            .await
            .map_err(|e| RuntimeError::grpc("container list", e))?
            .into_inner();
        Ok(list
            .containers
            .into_iter()
            .map(|c| ContainerSummary {
                id: c.id,
                labels: c.labels,
            })
            .collect())
    }

    async fn do_exec(
        &self,
        id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, RuntimeError> {
        let process = self.exec_process_spec(id, cmd, false).await?;
        let exec_id = format!("exec-{}", uuid::Uuid::new_v4().simple());
        let out = self.options.scratch_dir.join(format!("{exec_id}.out"));
        let uri = format!("file://{}", out.display());
        let value = serde_json::to_vec(&process).map_err(|source| RuntimeError::Json {
            what: "exec process".into(),
            source,
        })?;
        self.tasks()
            .exec(self.req(
                ExecProcessRequest {
                    container_id: id.into(),
                    stdin: String::new(),
                    stdout: uri.clone(),
                    stderr: uri,
                    terminal: false,
                    spec: Some(prost_types::Any {
                        type_url: PROCESS_TYPE.into(),
                        value,
                    }),
                    exec_id: exec_id.clone(),
                },
                None,
            )?)
            .await
            .map_err(|e| RuntimeError::grpc("task exec", e))?;
        let run = async {
            self.tasks()
                .start(self.req(
                    StartRequest {
                        container_id: id.into(),
                        exec_id: exec_id.clone(),
                    },
                    None,
                )?)
                .await
                .map_err(|e| RuntimeError::grpc("exec start", e))?;
            // The shim keeps the exit status until the process is deleted, so a fast exit
            // before this wait is not lost.
            self.do_wait(id, &exec_id).await
        };
        let result = tokio::time::timeout(timeout, run).await;
        let exit = match result {
            Ok(r) => r,
            Err(_) => Err(RuntimeError::Invalid(format!(
                "exec timed out after {timeout:?}"
            ))),
        };
        let _ = self
            .tasks()
            .delete_process(self.req(
                DeleteProcessRequest {
                    container_id: id.into(),
                    exec_id: exec_id.clone(),
                },
                None,
            )?)
            .await;
        let output = std::fs::read(&out).unwrap_or_default();
        let _ = std::fs::remove_file(&out);
        let exit = exit?;
        Ok(ExecOutput {
            exit_code: exit.exit_code,
            output,
        })
    }
}

impl ContainerRuntime for Containerd {
    fn version(&self) -> RuntimeFuture<'_, String> {
        self.server_version().boxed()
    }

    fn ensure_image<'a>(
        &'a self,
        image: &'a str,
        policy: PullPolicy,
    ) -> RuntimeFuture<'a, ImageInfo> {
        self.resolve_image(image, policy).boxed()
    }

    fn pull_image<'a>(
        &'a self,
        image: &'a str,
        secrets: &'a PullSecrets,
    ) -> RuntimeFuture<'a, PulledImage> {
        self.pull(image, secrets).boxed()
    }

    fn create_container<'a>(&'a self, c: &'a ContainerCreate) -> RuntimeFuture<'a, ()> {
        self.do_create(c).boxed()
    }

    fn start_container<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, u32> {
        async move {
            let r = self
                .tasks()
                .start(self.req(
                    StartRequest {
                        container_id: id.into(),
                        exec_id: String::new(),
                    },
                    None,
                )?)
                .await
                .map_err(|e| RuntimeError::grpc("task start", e))?;
            Ok(r.into_inner().pid)
        }
        .boxed()
    }

    fn wait_container<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ExitInfo> {
        async move {
            // Adoption after an agent restart waits here first: read its FIFOs again.
            self.adopt_stdio(id).await;
            self.do_wait(id, "").await
        }
        .boxed()
    }

    fn container_state<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, Option<ContainerState>> {
        self.do_state(id).boxed()
    }

    fn kill_container<'a>(&'a self, id: &'a str, signal: i32) -> RuntimeFuture<'a, ()> {
        self.do_kill(id, signal.max(0) as u32).boxed()
    }

    fn remove_container<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ()> {
        self.do_remove(id).boxed()
    }

    fn list_containers<'a>(
        &'a self,
        label: &'a str,
        value: &'a str,
    ) -> RuntimeFuture<'a, Vec<ContainerSummary>> {
        self.do_list(label, value).boxed()
    }

    fn exec<'a>(
        &'a self,
        id: &'a str,
        cmd: &'a [String],
        timeout: Duration,
    ) -> RuntimeFuture<'a, ExecOutput> {
        self.do_exec(id, cmd, timeout).boxed()
    }

    fn exec_interactive<'a>(
        &'a self,
        id: &'a str,
        req: &'a super::ExecRequest,
        input: tokio::sync::mpsc::Receiver<super::ExecInput>,
        output: tokio::sync::mpsc::Sender<super::ExecChunk>,
    ) -> RuntimeFuture<'a, u32> {
        self.do_exec_interactive(id, req, input, output).boxed()
    }

    fn attach<'a>(
        &'a self,
        id: &'a str,
        req: &'a super::AttachRequest,
        input: tokio::sync::mpsc::Receiver<super::ExecInput>,
        output: tokio::sync::mpsc::Sender<super::ExecChunk>,
    ) -> RuntimeFuture<'a, bool> {
        self.do_attach(id, req, input, output).boxed()
    }
}

impl Containerd {
    /// The OCI process of an exec in container `id`: the container's own process (user, env,
    /// cwd, capabilities are inherited) with `cmd` as arguments.
    pub(super) async fn exec_process_spec(
        &self,
        id: &str,
        cmd: &[String],
        tty: bool,
    ) -> Result<serde_json::Value, RuntimeError> {
        let container = self
            .containers()
            .get(self.req(GetContainerRequest { id: id.into() }, None)?)
            .await
            .map_err(|e| RuntimeError::grpc("container get", e))?
            .into_inner()
            .container
            .ok_or_else(|| RuntimeError::NotFound(id.into()))?;
        let spec: serde_json::Value = container
            .spec
            .as_ref()
            .map(|a| serde_json::from_slice(&a.value))
            .transpose()
            .map_err(|source| RuntimeError::Json {
                what: format!("spec of {id}"),
                source,
            })?
            .unwrap_or_default();
        let mut process = spec
            .get("process")
            .cloned()
            .unwrap_or_else(|| serde_json::json!({}));
        process["args"] = serde_json::json!(cmd);
        process["terminal"] = serde_json::json!(tty);
        Ok(process)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_paths_are_escaped_for_go_url_query() {
        assert_eq!(
            query_escape("/var/log/pods/a_b-c/x/0.log"),
            "/var/log/pods/a_b-c/x/0.log"
        );
        assert_eq!(query_escape("a b&c=d"), "a%20b%26c%3Dd");
    }
}
