//! The built-in agent (our kubelet): registers the node, runs pods in containerd.
//!
//! Owns: node registration and heartbeat, pod workers, the containerd runtime, CNI, volumes,
//! probes, logs/exec. May call: the API server (as a client) and containerd; never the store.
//!
//! Layers, bottom up: [`runtime`] (containerd: supervision, images, containers, OCI spec),
//! [`network`] (namespaces + CNI), [`pod`]/[`pod_worker`]/[`status`]/[`backoff`] (one
//! worker per pod), [`node`] and [`sync`] (the API side), [`eviction`] and [`image_gc`]
//! (node-pressure eviction, image garbage collection). [`run`] wires them together.

pub mod backoff;
pub mod endpoint_tls;
pub mod events;
pub mod eviction;
pub mod exec_ws;
pub mod image_gc;
pub mod logs;
pub mod network;
pub mod node;
pub mod pod;
pub mod pod_worker;
pub mod probe;
pub mod registry;
pub mod runtime;
pub mod server;
pub mod sources;
pub mod status;
pub mod sync;
pub mod volumes_claim;
pub mod volumes_hostpath;
pub mod volumes_token;
pub mod websocket;

use network::{Cni, CniConfig, CniNetwork, NetworkError};
use runtime::{ContainerRuntime, Containerd, ContainerdOptions, ContainerdPaths, RuntimeError};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Errors that stop the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error("kubernetes api: {0}")]
    Kube(#[from] kube::Error),
    #[error("kubeconfig {path}: {reason}")]
    Kubeconfig { path: PathBuf, reason: String },
    #[error("agent config: {0}")]
    Config(String),
}

/// Everything the agent needs; `cli` builds it from flags.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// `<data-dir>`; the agent uses `<data-dir>/agent/…`.
    pub data_dir: PathBuf,
    pub node_name: String,
    pub node_ip: IpAddr,
    /// Extra node labels.
    pub node_labels: BTreeMap<String, String>,
    /// `key=value:Effect` strings.
    pub node_taints: Vec<String>,
    /// Kubeconfig the agent talks to the API server with.
    pub kubeconfig: PathBuf,
    /// Use this containerd socket instead of supervising our own.
    pub container_runtime_endpoint: Option<PathBuf>,
    pub cluster_dns: Option<IpAddr>,
    pub cluster_domain: String,
    /// CRI log root (`/var/log/pods`).
    pub log_dir: PathBuf,
    /// Namespace mounts (`/run/k3rs/agent`).
    pub run_dir: PathBuf,
    /// CNI bridge name (`cni0`).
    pub cni_bridge: String,
    /// Binary the shim runs as log driver (`k3rs container-logger`); default: this binary.
    pub logger_binary: Option<PathBuf>,
    /// The agent's endpoint (logs, exec, attach; `:10250`), see [`server`].
    pub endpoint: Option<std::net::SocketAddr>,
    /// k3s-style `registries.yaml` (mirrors, registry auth and TLS); a missing file is fine.
    pub private_registry: PathBuf,
    /// The endpoint's serving certificate and client CA; without it the endpoint is plain
    /// HTTP and loopback only (in-process tests).
    pub endpoint_tls: Option<endpoint_tls::EndpointTls>,
    /// CRI log rotation: rotate a container's log file past this size (bytes).
    pub container_log_max_size: u64,
    /// CRI log rotation: files kept per container, the live one included.
    pub container_log_max_files: u32,
    /// Node-pressure eviction and image GC (kubelet defaults).
    pub eviction: eviction::EvictionConfig,
}

impl AgentConfig {
    /// k3s-like defaults for everything but identity and the kubeconfig.
    pub fn new(data_dir: PathBuf, node_name: String, node_ip: IpAddr, kubeconfig: PathBuf) -> Self {
        AgentConfig {
            data_dir,
            node_name,
            node_ip,
            node_labels: BTreeMap::new(),
            node_taints: Vec::new(),
            kubeconfig,
            container_runtime_endpoint: None,
            cluster_dns: Some(IpAddr::from([10, 43, 0, 10])),
            cluster_domain: "cluster.local".into(),
            log_dir: "/var/log/pods".into(),
            run_dir: "/run/k3rs/agent".into(),
            cni_bridge: "cni0".into(),
            logger_binary: None,
            endpoint: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 10250))),
            private_registry: registry::DEFAULT_REGISTRIES_FILE.into(),
            endpoint_tls: None,
            container_log_max_size: 10 * 1024 * 1024,
            container_log_max_files: 5,
            eviction: eviction::EvictionConfig::default(),
        }
    }
}

/// The address other hosts reach us at: the source address of the default route, else
/// loopback. (Connecting a UDP socket sends no packet.)
pub fn detect_node_ip() -> IpAddr {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("10.255.255.255:53")?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

async fn kube_client(path: &std::path::Path) -> Result<kube::Client, AgentError> {
    let err = |reason: String| AgentError::Kubeconfig {
        path: path.to_path_buf(),
        reason,
    };
    let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| err(e.to_string()))?;
    kube::Client::try_from(cfg).map_err(AgentError::Kube)
}

/// Imports new or changed tarballs from `<data-dir>/agent/images` every 15 s.
async fn watch_images(rt: Arc<Containerd>, dir: PathBuf, shutdown: CancellationToken) {
    let signature = |e: &std::fs::DirEntry| {
        let meta = e.metadata().ok()?;
        Some((e.path(), (meta.len(), meta.modified().ok())))
    };
    // What is there now was imported at start.
    let mut seen: HashMap<PathBuf, (u64, Option<SystemTime>)> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().filter_map(|e| signature(&e)).collect())
        .unwrap_or_default();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(15)) => {}
            _ = shutdown.cancelled() => return,
        }
        let mut fresh = false;
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for (path, sig) in entries.flatten().filter_map(|e| signature(&e)) {
                if seen.get(&path) != Some(&sig) {
                    seen.insert(path, sig);
                    fresh = true;
                }
            }
        }
        if fresh {
            // import_dir is idempotent: present blobs and snapshots are skipped.
            for (path, r) in rt.import_dir(&dir).await {
                if let Err(e) = r {
                    warn!(file = %path.display(), error = %e, "image import");
                }
            }
        }
    }
}

/// Runs the agent until `shutdown`. Pods keep running when it returns (a restarted agent
/// adopts them); the supervised containerd is stopped.
pub async fn run(config: AgentConfig, shutdown: CancellationToken) -> Result<(), AgentError> {
    let agent_dir = config.data_dir.join("agent");
    // Not a child token: containerd must outlive the pod workers' last calls on shutdown.
    let child_shutdown = CancellationToken::new();
    // Any early return (error) still stops containerd and the background tasks.
    let _stop_on_exit = child_shutdown.clone().drop_guard();
    let (socket, supervised) = match &config.container_runtime_endpoint {
        Some(s) => (s.clone(), None),
        None => {
            let sup = runtime::start_containerd(
                ContainerdPaths {
                    dir: agent_dir.join("containerd"),
                },
                child_shutdown.clone(),
            )
            .await?;
            (sup.socket.clone(), Some(sup))
        }
    };
    let logger = config
        .logger_binary
        .clone()
        .or_else(|| std::env::current_exe().ok());
    let registries = registry::RegistriesConfig::load(&config.private_registry)
        .map_err(|e| AgentError::Config(e.to_string()))?;
    let mut containerd = Containerd::connect(
        &socket,
        ContainerdOptions {
            logger_binary: logger,
            scratch_dir: agent_dir.join("scratch"),
        },
    )
    .await?
    .with_registries(registries);
    containerd.set_log_rotation(
        config.container_log_max_size,
        config.container_log_max_files,
    );
    let rt = Arc::new(containerd);
    let version = rt.version().await?;
    info!(containerd = %version, socket = %socket.display(), "container runtime ready");
    let images = agent_dir.join("images");
    for (path, r) in rt.import_dir(&images).await {
        if let Err(e) = r {
            warn!(file = %path.display(), error = %e, "image import");
        }
    }
    tokio::spawn(watch_images(rt.clone(), images, child_shutdown.clone()));

    let mut endpoint_port = None;
    if let Some(addr) = config.endpoint {
        endpoint_port = Some(addr.port());
        let tls = match &config.endpoint_tls {
            Some(t) => Some(
                endpoint_tls::server_config(t).map_err(|e| AgentError::Config(e.to_string()))?,
            ),
            None => None,
        };
        match server::start(
            addr,
            config.log_dir.clone(),
            Some(rt.clone() as Arc<dyn runtime::ContainerRuntime>),
            tls,
            child_shutdown.clone(),
        )
        .await
        {
            Ok(a) => info!(addr = %a, "agent endpoint listening"),
            // Another agent on this host may own the port: logs over HTTP are then missing.
            Err(e) => warn!(addr = %addr, error = %e, "agent endpoint not started"),
        }
    }
    let client = kube_client(&config.kubeconfig).await?;
    let taints = config
        .node_taints
        .iter()
        .map(|t| node::parse_taint(t).ok_or_else(|| AgentError::Config(format!("bad taint {t:?}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let (pressure_tx, pressure_rx) = tokio::sync::watch::channel(eviction::NodePressure::default());
    let spec = node::NodeSpec {
        name: config.node_name.clone(),
        ip: config.node_ip,
        labels: config.node_labels.clone(),
        taints,
        runtime_version: version,
        endpoint_port: endpoint_port.unwrap_or(10250),
        pressure: Some(pressure_rx.clone()),
    };
    // The API server may still be starting (built-in agent): retry registration.
    loop {
        match node::register(&client, &spec).await {
            Ok(()) => break,
            Err(e) => {
                warn!(error = %e, "node registration failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = shutdown.cancelled() => {
                        child_shutdown.cancel();
                        if let Some(s) = supervised {
                            s.stopped().await;
                        }
                        return Ok(());
                    }
                }
            }
        }
    }
    tokio::spawn(node::heartbeat(
        client.clone(),
        spec,
        child_shutdown.clone(),
    ));
    let Some(pod_cidr) = node::wait_for_pod_cidr(&client, &config.node_name, &shutdown).await
    else {
        child_shutdown.cancel();
        if let Some(s) = supervised {
            s.stopped().await;
        }
        return Ok(());
    };

    let mut cni = CniConfig::new(agent_dir.join("cni"), &pod_cidr);
    cni.bridge = config.cni_bridge.clone();
    let network = Arc::new(CniNetwork::new(Cni::new(cni)?, &config.run_dir));
    let pod_events: Arc<dyn events::EventSink> =
        Arc::new(events::ApiEvents::new(client.clone(), &config.node_name));
    let hooks = start_eviction(
        &config,
        rt.clone(),
        &client,
        pod_events.clone(),
        pressure_tx,
        pressure_rx,
        &child_shutdown,
    );
    let deps = pod_worker::Deps {
        events: pod_events,
        sources: Some(Arc::new(sources::ApiSources::new(client.clone()))),
        runtime: rt.clone(),
        network,
        config: Arc::new(pod::PodConfig {
            node_name: config.node_name.clone(),
            host_ip: config.node_ip,
            pods_dir: agent_dir.join("pods"),
            log_dir: config.log_dir.clone(),
            cgroup_root: "/k3rs".into(),
            cluster_dns: config.cluster_dns,
            cluster_domain: config.cluster_domain.clone(),
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
        }),
    };
    let result = sync::run_with(
        client,
        config.node_name.clone(),
        deps,
        hooks,
        shutdown.clone(),
    )
    .await;
    child_shutdown.cancel();
    if let Some(s) = supervised {
        s.stopped().await;
    }
    result
}

/// Starts image GC and the eviction manager; the sync loop's hooks (eviction inbox and
/// admission check).
fn start_eviction(
    config: &AgentConfig,
    rt: Arc<Containerd>,
    client: &kube::Client,
    events: Arc<dyn events::EventSink>,
    pressure_tx: tokio::sync::watch::Sender<eviction::NodePressure>,
    pressure_rx: tokio::sync::watch::Receiver<eviction::NodePressure>,
    shutdown: &CancellationToken,
) -> sync::Hooks {
    let agent_dir = config.data_dir.join("agent");
    // containerd's root: ours when supervised, the packaged default otherwise.
    let imagefs = match &config.container_runtime_endpoint {
        None => ContainerdPaths {
            dir: agent_dir.join("containerd"),
        }
        .root(),
        Some(_) => PathBuf::from("/var/lib/containerd"),
    };
    let imagefs = if imagefs.exists() {
        imagefs
    } else {
        config.data_dir.clone()
    };
    let stats = Arc::new(eviction::HostStats {
        nodefs: config.data_dir.clone(),
        imagefs,
        cgroup_root: "/k3rs".into(),
        pods_dir: agent_dir.join("pods"),
        log_dir: config.log_dir.clone(),
    });
    let gc = Arc::new(image_gc::ImageGc::new(rt, config.eviction.image_gc));
    let fs_stats = stats.clone();
    let imagefs_reader: Arc<dyn Fn() -> Option<(u64, u64)> + Send + Sync> = Arc::new(move || {
        use eviction::StatsProvider;
        let o = fs_stats.observe();
        let fs = o.get(&eviction::Signal::ImageFsAvailable)?;
        Some((fs.available, fs.capacity))
    });
    tokio::spawn(image_gc::run(
        gc.clone(),
        imagefs_reader,
        client.clone(),
        config.node_name.clone(),
        shutdown.clone(),
    ));
    let (evict_tx, evict_rx) = tokio::sync::mpsc::unbounded_channel();
    let manager = eviction::Manager {
        config: config.eviction.clone(),
        stats,
        client: client.clone(),
        node: config.node_name.clone(),
        events,
        evict: evict_tx,
        pressure: pressure_tx,
        image_gc: Some(gc),
    };
    tokio::spawn(manager.run(shutdown.clone()));
    let admit: sync::Admit = Arc::new(move |pod| eviction::admit(&pressure_rx.borrow(), pod));
    sync::Hooks {
        evictions: Some(evict_rx),
        admit: Some(admit),
    }
}
