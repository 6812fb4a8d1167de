//! The container runtime layer: a small [`ContainerRuntime`] trait the pod workers drive,
//! implemented by [`Containerd`] (real, over containerd's gRPC API) and [`FakeRuntime`]
//! (records calls, for unit tests of pod logic).
//!
//! Owns: containerd supervision, image import/unpack, OCI spec construction, container and
//! task lifecycle, exec, the CRI log writer. May call: containerd and the filesystem.

mod attach;
mod containerd;
mod content;
mod downward;
mod error;
mod exec_stream;
mod fake;
mod image_remove;
mod images;
mod listing;
pub mod logger;
mod oom;
mod pull;
pub mod spec;
mod stdio;
mod supervisor;
mod tarball;

pub use containerd::{Containerd, ContainerdOptions, NAMESPACE, SNAPSHOTTER};
pub use error::RuntimeError;
pub use fake::{FakeCall, FakeRuntime};
pub use images::{ImportedImage, normalise_image_name};
pub use listing::ListedImage;
pub use supervisor::{ContainerdPaths, Supervised, find_binary, start as start_containerd};

pub use crate::agent::registry::PullSecrets;
use futures::FutureExt;
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// A boxed future of a runtime call.
pub type RuntimeFuture<'a, T> = BoxFuture<'a, Result<T, RuntimeError>>;

/// `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    /// Kubernetes defaulting: `Always` for `:latest` or untagged images, else `IfNotPresent`.
    pub fn from_k8s(policy: Option<&str>, image: &str) -> PullPolicy {
        match policy {
            Some("Always") => PullPolicy::Always,
            Some("Never") => PullPolicy::Never,
            Some("IfNotPresent") => PullPolicy::IfNotPresent,
            _ => {
                let last = image.rsplit('/').next().unwrap_or(image);
                if image.contains('@') || (last.contains(':') && !last.ends_with(":latest")) {
                    PullPolicy::IfNotPresent
                } else {
                    PullPolicy::Always
                }
            }
        }
    }
}

/// The parts of an image config a container spec needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
}

/// A local, unpacked image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageInfo {
    /// Normalised reference, e.g. `docker.io/library/busybox:latest`.
    pub name: String,
    /// `imageID` for pod status: `<repo>@<manifest digest>`.
    pub id: String,
    /// Chain ID of the top layer: the parent snapshot of every container of this image.
    pub chain_id: String,
    pub config: ImageConfig,
}

/// The outcome of a registry pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledImage {
    pub info: ImageInfo,
    /// Bytes of config and layers (compressed, as stored).
    pub size: u64,
}

/// Everything needed to create one container (and its task, not yet started).
#[derive(Debug, Clone)]
pub struct ContainerCreate {
    pub id: String,
    pub image: ImageInfo,
    /// The OCI runtime spec (see [`spec`]).
    pub spec: serde_json::Value,
    pub labels: HashMap<String, String>,
    /// CRI-format log file for stdout/stderr.
    pub log_path: PathBuf,
}

/// State of a container's task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    /// The container exists without a task (never created, or deleted).
    NoTask,
    Created,
    Running,
    Stopped,
    Unknown,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    pub exit_code: u32,
    pub exited_at: Option<SystemTime>,
    /// The cgroup's OOM killer fired (reason `OOMKilled` instead of `Error`).
    pub oom_killed: bool,
}

/// A container as the runtime sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    pub id: String,
    pub labels: HashMap<String, String>,
    pub image: String,
    pub created_at: Option<SystemTime>,
    pub status: TaskStatus,
    pub pid: u32,
    /// Set when `status` is `Stopped`.
    pub exit: Option<ExitInfo>,
}

/// A container found by label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSummary {
    pub id: String,
    pub labels: HashMap<String, String>,
}

/// Result of an exec (stdout and stderr interleaved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: u32,
    pub output: Vec<u8>,
}

/// An interactive exec (`kubectl exec -i -t`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecRequest {
    pub cmd: Vec<String>,
    /// Connect the client's stdin.
    pub stdin: bool,
    /// Run the command on a terminal (stdout only, resizable).
    pub tty: bool,
}

/// An attach to a container's main process (`kubectl attach`, `kubectl run -i`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachRequest {
    /// Connect the client's stdin (`-i`).
    pub stdin: bool,
}

/// Client input to an interactive exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecInput {
    Stdin(Vec<u8>),
    /// End of the client's stdin.
    CloseStdin,
    Resize {
        width: u32,
        height: u32,
    },
}

/// Output of an interactive exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecChunk {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
}

/// What the pod workers need from a container runtime. Small on purpose: pod logic above
/// it is tested against [`FakeRuntime`], and this against real containerd.
pub trait ContainerRuntime: Send + Sync {
    /// The runtime's version string (for `nodeInfo.containerRuntimeVersion`).
    fn version(&self) -> RuntimeFuture<'_, String>;
    /// Makes `image` available locally per `policy` and returns its unpacked form.
    fn ensure_image<'a>(
        &'a self,
        image: &'a str,
        policy: PullPolicy,
    ) -> RuntimeFuture<'a, ImageInfo>;
    /// The local, unpacked image, `None` when absent (never pulls).
    fn local_image<'a>(&'a self, image: &'a str) -> RuntimeFuture<'a, Option<ImageInfo>> {
        async move {
            match self.ensure_image(image, PullPolicy::Never).await {
                Ok(i) => Ok(Some(i)),
                Err(RuntimeError::ImageNotPresent { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        }
        .boxed()
    }
    /// Pulls `image` from its registry (re-resolving its tag), with `secrets` as extra
    /// credentials; concurrent pulls of one image share one download.
    fn pull_image<'a>(
        &'a self,
        image: &'a str,
        _secrets: &'a PullSecrets,
    ) -> RuntimeFuture<'a, PulledImage> {
        async move {
            Err(RuntimeError::ImageNotPresent {
                image: image.into(),
                reason: "this runtime cannot pull from registries".into(),
            })
        }
        .boxed()
    }
    /// Creates the container, its rootfs snapshot and its task (created, not started).
    fn create_container<'a>(&'a self, c: &'a ContainerCreate) -> RuntimeFuture<'a, ()>;
    /// Starts the created task; returns its pid.
    fn start_container<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, u32>;
    /// Resolves when the task exits.
    fn wait_container<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ExitInfo>;
    /// The container's state, `None` when it does not exist.
    fn container_state<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, Option<ContainerState>>;
    /// Signals every process of the container; no error if it is not running.
    fn kill_container<'a>(&'a self, id: &'a str, signal: i32) -> RuntimeFuture<'a, ()>;
    /// Deletes task, container and snapshot (SIGKILL first if still running); idempotent.
    fn remove_container<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ()>;
    /// Containers carrying label `label=value` (any value when `value` is empty).
    fn list_containers<'a>(
        &'a self,
        label: &'a str,
        value: &'a str,
    ) -> RuntimeFuture<'a, Vec<ContainerSummary>>;
    /// Runs `cmd` inside the running container and returns its exit code and output.
    fn exec<'a>(
        &'a self,
        id: &'a str,
        cmd: &'a [String],
        timeout: Duration,
    ) -> RuntimeFuture<'a, ExecOutput>;
    /// Runs `req` inside the running container, feeding it `input` and streaming its
    /// output to `output` until it exits; returns its exit code once all output was sent.
    /// Kills the process when `output` is closed (the client left).
    fn exec_interactive<'a>(
        &'a self,
        id: &'a str,
        req: &'a ExecRequest,
        input: tokio::sync::mpsc::Receiver<ExecInput>,
        output: tokio::sync::mpsc::Sender<ExecChunk>,
    ) -> RuntimeFuture<'a, u32> {
        let _ = (id, req, input, output);
        Box::pin(async {
            Err(RuntimeError::Invalid(
                "interactive exec is not supported by this runtime".into(),
            ))
        })
    }
    /// Attaches to the container's main process: streams its live output to `output` and,
    /// per the container's `stdin`/`stdinOnce`/`tty`, feeds `input` to its stdin and
    /// terminal, until the output ends, the session detaches or `output` is closed.
    /// Returns `false` at once when the container has no live stdio (created without
    /// `stdin` or `tty`: its output goes only to its log).
    fn attach<'a>(
        &'a self,
        id: &'a str,
        req: &'a AttachRequest,
        input: tokio::sync::mpsc::Receiver<ExecInput>,
        output: tokio::sync::mpsc::Sender<ExecChunk>,
    ) -> RuntimeFuture<'a, bool> {
        let _ = (id, req, input, output);
        Box::pin(async { Ok(false) })
    }
}
