//! Pod networking: per-pod namespaces ([`netns`]) wired by CNI ([`cni`]), behind the
//! [`PodNetwork`] trait the pod workers use ([`CniNetwork`] for real, [`FakeNetwork`] in
//! unit tests).
//!
//! Owns: pod namespaces, CNI ADD/DEL, pod IPs. May call: the kernel, CNI plugin binaries.

pub mod cni;
pub mod netns;

pub use cni::{Cni, CniConfig, PortMapping};
pub use netns::PodNamespaces;

use futures::FutureExt;
use futures::future::BoxFuture;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Errors of pod networking.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("namespace: {0}")]
    Namespace(String),
    #[error(
        "cni plugin {plugin} not found in {dirs:?}; install the Debian package containernetworking-plugins"
    )]
    PluginMissing { plugin: String, dirs: Vec<PathBuf> },
    #[error("cni {plugin} {command} failed: {message}")]
    Plugin {
        plugin: String,
        command: String,
        message: String,
    },
    #[error("cni json: {0}")]
    Json(#[source] serde_json::Error),
}

impl NetworkError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        NetworkError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Which pod a network call is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodRef {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub hostname: String,
    pub ports: Vec<PortMapping>,
}

/// A pod's network sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSandbox {
    pub namespaces: PodNamespaces,
    pub ip: IpAddr,
}

/// What pod workers need from the network layer.
pub trait PodNetwork: Send + Sync {
    /// Creates (or finds) the pod's namespaces and attaches it to the pod network.
    fn setup<'a>(&'a self, pod: &'a PodRef) -> BoxFuture<'a, Result<PodSandbox, NetworkError>>;
    /// Detaches the pod (releasing its IP) and removes its namespaces; idempotent.
    fn teardown<'a>(&'a self, pod: &'a PodRef) -> BoxFuture<'a, Result<(), NetworkError>>;
}

/// The real pod network: namespaces + CNI.
#[derive(Debug)]
pub struct CniNetwork {
    cni: Cni,
    run_dir: PathBuf,
}

impl CniNetwork {
    /// `run_dir` holds the IPC/UTS namespace mounts (`/run/k3rs/agent` by default). Inside
    /// a tokio runtime the node's masquerade rule is installed right away, in the
    /// background, so the first pod does not wait for it.
    pub fn new(cni: Cni, run_dir: &Path) -> Self {
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let cni = cni.clone();
            rt.spawn(async move { cni.ensure_masquerade().await });
        }
        CniNetwork {
            cni,
            run_dir: run_dir.to_path_buf(),
        }
    }

    pub fn cni(&self) -> &Cni {
        &self.cni
    }

    async fn do_setup(&self, pod: &PodRef) -> Result<PodSandbox, NetworkError> {
        let run_dir = self.run_dir.clone();
        let (uid, host) = (pod.uid.clone(), pod.hostname.clone());
        let begun = std::time::Instant::now();
        let (ns, fresh) = tokio::task::spawn_blocking(move || netns::create(&run_dir, &uid, &host))
            .await
            .map_err(|e| NetworkError::Namespace(format!("namespace task: {e}")))??;
        tracing::debug!(pod = %pod.name, took_ms = begun.elapsed().as_millis() as u64, "pod namespaces created");
        if let Some(ip) = self.cni.cached_ip(&pod.uid) {
            if !fresh {
                // Re-adoption after an agent restart: namespaces and IP survive.
                return Ok(PodSandbox { namespaces: ns, ip });
            }
            // The old namespace is gone (host reboot): release its stale IP first.
            let _ = self
                .cni
                .del(&pod.uid, &ns.net, &pod.namespace, &pod.name)
                .await;
        }
        match self
            .cni
            .add(&pod.uid, &ns.net, &pod.namespace, &pod.name, &pod.ports)
            .await
        {
            Ok(ip) => Ok(PodSandbox { namespaces: ns, ip }),
            Err(e) => {
                // Undo a partial ADD so the IP is not leaked before the next attempt.
                let _ = self
                    .cni
                    .del(&pod.uid, &ns.net, &pod.namespace, &pod.name)
                    .await;
                Err(e)
            }
        }
    }

    async fn do_teardown(&self, pod: &PodRef) -> Result<(), NetworkError> {
        let ns = netns::paths(&self.run_dir, &pod.uid);
        self.cni
            .del(&pod.uid, &ns.net, &pod.namespace, &pod.name)
            .await?;
        let run_dir = self.run_dir.clone();
        let uid = pod.uid.clone();
        tokio::task::spawn_blocking(move || netns::remove(&run_dir, &uid))
            .await
            .map_err(|e| NetworkError::Namespace(format!("namespace task: {e}")))?
    }
}

impl PodNetwork for CniNetwork {
    fn setup<'a>(&'a self, pod: &'a PodRef) -> BoxFuture<'a, Result<PodSandbox, NetworkError>> {
        self.do_setup(pod).boxed()
    }
    fn teardown<'a>(&'a self, pod: &'a PodRef) -> BoxFuture<'a, Result<(), NetworkError>> {
        self.do_teardown(pod).boxed()
    }
}

/// In-memory network for unit tests: hands out 10.0.0.x and records set-up pods.
#[derive(Debug, Default)]
pub struct FakeNetwork {
    pub active: Mutex<Vec<String>>,
}

impl PodNetwork for FakeNetwork {
    fn setup<'a>(&'a self, pod: &'a PodRef) -> BoxFuture<'a, Result<PodSandbox, NetworkError>> {
        async move {
            let mut active = self
                .active
                .lock()
                .map_err(|_| NetworkError::Namespace("poisoned".into()))?;
            if !active.contains(&pod.uid) {
                active.push(pod.uid.clone());
            }
            let n = active.iter().position(|u| *u == pod.uid).unwrap_or(0) as u8;
            Ok(PodSandbox {
                namespaces: netns::paths(Path::new("/run/fake"), &pod.uid),
                ip: IpAddr::from([10, 0, 0, n.wrapping_add(2)]),
            })
        }
        .boxed()
    }
    fn teardown<'a>(&'a self, pod: &'a PodRef) -> BoxFuture<'a, Result<(), NetworkError>> {
        async move {
            if let Ok(mut active) = self.active.lock() {
                active.retain(|u| *u != pod.uid);
            }
            Ok(())
        }
        .boxed()
    }
}
