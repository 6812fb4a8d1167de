//! clap definitions of every command and flag. Flag names follow k3s (renamed to k3rs).

use clap::{Args, Parser, Subcommand};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// k3rs: a lightweight Kubernetes distribution in one binary.
#[derive(Debug, Parser)]
#[command(name = "k3rs", version, about, propagate_version = true)]
pub struct Cli {
    /// Verbose logs (same as RUST_LOG=debug).
    #[arg(long, global = true, env = "K3RS_DEBUG")]
    pub debug: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control plane (API server, store, scheduler, controllers) and a built-in agent.
    Server(Box<ServerArgs>),
    /// Run only the agent, joining an existing server.
    Agent(AgentArgs),
    /// Run the system kubectl against this node's admin kubeconfig.
    #[command(disable_help_flag = true)]
    Kubectl(super::kubectl::KubectlArgs),
    /// Check that this host can run k3rs (kernel, cgroups, runtime, CNI, ports).
    CheckConfig,
    /// Print a shell completion script.
    Completion(super::completion::CompletionArgs),
    /// Manage join tokens.
    Token(super::token::TokenArgs),
    /// Save, list, delete and prune datastore snapshots.
    EtcdSnapshot(super::etcd_snapshot::EtcdSnapshotArgs),
    /// Import and list images in the agent's containerd.
    Images(super::images::ImagesArgs),
    /// Container log driver run by containerd's shim (internal).
    #[command(hide = true)]
    ContainerLogger {
        /// CRI log file to append to.
        path: PathBuf,
    },
}

/// Flags of `k3rs server`.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Directory for all state.
    #[arg(
        short = 'd',
        long,
        env = "K3RS_DATA_DIR",
        default_value = "/var/lib/k3rs"
    )]
    pub data_dir: PathBuf,
    /// Config file (keys are flag names).
    #[arg(
        short = 'c',
        long,
        env = "K3RS_CONFIG_FILE",
        default_value = "/etc/k3rs/config.yaml"
    )]
    pub config: PathBuf,
    /// Address every listener but the etcd API binds to.
    #[arg(long, env = "K3RS_BIND_ADDRESS", default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    /// Address other servers and agents use to reach this one (default: node IP).
    #[arg(long, env = "K3RS_ADVERTISE_ADDRESS")]
    pub advertise_address: Option<IpAddr>,
    /// Port of the Kubernetes API (HTTPS).
    #[arg(long, env = "K3RS_HTTPS_LISTEN_PORT", default_value_t = 6443)]
    pub https_listen_port: u16,
    /// Address of the etcd v3 gRPC API.
    #[arg(
        long,
        env = "K3RS_ETCD_LISTEN_ADDRESS",
        default_value = "127.0.0.1:2379"
    )]
    pub etcd_listen_address: SocketAddr,
    /// Port of the raft peer transport.
    #[arg(long, env = "K3RS_RAFT_LISTEN_PORT", default_value_t = 2380)]
    pub raft_listen_port: u16,
    /// Node name (default: hostname).
    #[arg(long, env = "K3RS_NODE_NAME")]
    pub node_name: Option<String>,
    /// IP address to advertise for the node.
    #[arg(long, env = "K3RS_NODE_IP")]
    pub node_ip: Option<IpAddr>,
    /// Extra node labels (key=value), repeatable.
    #[arg(long = "node-label")]
    pub node_labels: Vec<String>,
    /// Node taints (key=value:Effect), repeatable.
    #[arg(long = "node-taint")]
    pub node_taints: Vec<String>,
    /// Shared secret used to join servers and agents.
    #[arg(short = 't', long, env = "K3RS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Start a new cluster (raft group) with this server as its first member.
    #[arg(long, env = "K3RS_CLUSTER_INIT")]
    pub cluster_init: bool,
    /// Join the cluster of this server (https://host:6443).
    #[arg(short = 's', long, env = "K3RS_URL")]
    pub server: Option<String>,
    /// Do not run the built-in agent.
    #[arg(long, env = "K3RS_DISABLE_AGENT")]
    pub disable_agent: bool,
    /// Do not deploy a packaged component (repeatable).
    #[arg(long = "disable")]
    pub disable: Vec<String>,
    /// Where to write the admin kubeconfig.
    #[arg(
        short = 'o',
        long,
        env = "K3RS_KUBECONFIG_OUTPUT",
        default_value = "/etc/k3rs/k3rs.yaml"
    )]
    pub write_kubeconfig: PathBuf,
    /// File mode of the admin kubeconfig (octal).
    #[arg(long, env = "K3RS_KUBECONFIG_MODE", default_value = "0600")]
    pub write_kubeconfig_mode: String,
    /// Extra subject alternative names for the serving certificate (repeatable).
    #[arg(long = "tls-san")]
    pub tls_san: Vec<String>,
    /// Re-issue leaf certificates (serving, admin client) at start when they expire within
    /// this many days (CA certificates are never re-issued).
    #[arg(long, env = "K3RS_CERT_RENEW_BEFORE_DAYS", default_value_t = 90)]
    pub cert_renew_before_days: u64,
    /// Pod network (a /24 per node is carved from it).
    #[arg(long, env = "K3RS_CLUSTER_CIDR", default_value = "10.42.0.0/16")]
    pub cluster_cidr: String,
    /// Seconds without a node heartbeat before the node is marked `Ready=Unknown`.
    #[arg(long, env = "K3RS_NODE_MONITOR_GRACE_PERIOD", default_value_t = 40)]
    pub node_monitor_grace_period: u64,
    /// Default toleration seconds for unreachable/not-ready nodes before pods are evicted.
    #[arg(long, env = "K3RS_DEFAULT_EVICTION_SECONDS", default_value_t = 300)]
    pub default_eviction_seconds: u64,
    /// Seconds an event is kept after its last write (upstream's `--event-ttl`, 1 h).
    #[arg(long, env = "K3RS_EVENT_TTL_SECONDS", default_value_t = 3600)]
    pub event_ttl_seconds: u64,
    /// Base of the Job pod-recreation backoff in milliseconds (upstream: 10 s).
    #[arg(
        long,
        env = "K3RS_JOB_BACKOFF_BASE_MS",
        default_value_t = 10_000,
        hide = true
    )]
    pub job_backoff_base_ms: u64,
    /// Service ClusterIP range.
    #[arg(long, env = "K3RS_SERVICE_CIDR", default_value = "10.43.0.0/16")]
    pub service_cidr: String,
    /// Cluster DNS service IP.
    #[arg(long, env = "K3RS_CLUSTER_DNS", default_value = "10.43.0.10")]
    pub cluster_dns: IpAddr,
    /// Use an existing containerd socket instead of starting one.
    #[arg(long, env = "K3RS_CONTAINER_RUNTIME_ENDPOINT")]
    pub container_runtime_endpoint: Option<PathBuf>,
    /// Address of the built-in agent's endpoint (logs, exec; HTTPS) the API server proxies to.
    #[arg(long, env = "K3RS_AGENT_ENDPOINT", default_value = "0.0.0.0:10250")]
    pub agent_endpoint: std::net::SocketAddr,
    /// Do not take scheduled datastore snapshots.
    #[arg(long, env = "K3RS_ETCD_DISABLE_SNAPSHOTS")]
    pub etcd_disable_snapshots: bool,
    /// When to take scheduled snapshots (cron: minute hour day-of-month month day-of-week).
    #[arg(
        long,
        env = "K3RS_ETCD_SNAPSHOT_SCHEDULE_CRON",
        default_value = "0 */12 * * *"
    )]
    pub etcd_snapshot_schedule_cron: String,
    /// Number of scheduled snapshots to keep.
    #[arg(long, env = "K3RS_ETCD_SNAPSHOT_RETENTION", default_value_t = 5)]
    pub etcd_snapshot_retention: usize,
    /// Directory of snapshots (default: <data-dir>/server/db/snapshots).
    #[arg(long, env = "K3RS_ETCD_SNAPSHOT_DIR")]
    pub etcd_snapshot_dir: Option<PathBuf>,
    /// Name prefix of scheduled snapshots (<name>-<node>-<unix-seconds>).
    #[arg(long, env = "K3RS_ETCD_SNAPSHOT_NAME", default_value = "etcd-snapshot")]
    pub etcd_snapshot_name: String,
    /// Reset the datastore to a one-member group of this server (keeping its data), then exit.
    #[arg(long, env = "K3RS_CLUSTER_RESET")]
    pub cluster_reset: bool,
    /// With --cluster-reset: replace the data by this snapshot file first.
    #[arg(
        long,
        env = "K3RS_CLUSTER_RESET_RESTORE_PATH",
        requires = "cluster_reset"
    )]
    pub cluster_reset_restore_path: Option<PathBuf>,
    /// k3s-style registries.yaml: registry mirrors, auth and TLS for image pulls.
    #[arg(
        long,
        env = "K3RS_PRIVATE_REGISTRY",
        default_value = "/etc/k3rs/registries.yaml"
    )]
    pub private_registry: PathBuf,
    /// Rotate a container's log file past this size (a quantity: 10Mi).
    #[arg(long, env = "K3RS_CONTAINER_LOG_MAX_SIZE", default_value = "10Mi")]
    pub container_log_max_size: String,
    /// Log files kept per container, the live one included.
    #[arg(long, env = "K3RS_CONTAINER_LOG_MAX_FILES", default_value_t = 5)]
    pub container_log_max_files: u32,
    /// Node-pressure eviction and image GC (kubelet flags).
    #[command(flatten)]
    pub kubelet: Box<super::kubelet_args::KubeletArgs>,
}

/// Flags of `k3rs agent`.
#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    /// Server to join (https://host:6443).
    #[arg(short = 's', long, env = "K3RS_URL")]
    pub server: String,
    /// Join token.
    #[arg(short = 't', long, env = "K3RS_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Directory for all state.
    #[arg(
        short = 'd',
        long,
        env = "K3RS_DATA_DIR",
        default_value = "/var/lib/k3rs"
    )]
    pub data_dir: PathBuf,
    /// Node name (default: hostname).
    #[arg(long, env = "K3RS_NODE_NAME")]
    pub node_name: Option<String>,
    /// IP address to advertise for the node.
    #[arg(long, env = "K3RS_NODE_IP")]
    pub node_ip: Option<IpAddr>,
    /// Extra node labels (key=value), repeatable.
    #[arg(long = "node-label")]
    pub node_labels: Vec<String>,
    /// Node taints (key=value:Effect), repeatable.
    #[arg(long = "node-taint")]
    pub node_taints: Vec<String>,
    /// Use an existing containerd socket instead of starting one.
    #[arg(long, env = "K3RS_CONTAINER_RUNTIME_ENDPOINT")]
    pub container_runtime_endpoint: Option<PathBuf>,
    /// k3s-style registries.yaml: registry mirrors, auth and TLS for image pulls.
    #[arg(
        long,
        env = "K3RS_PRIVATE_REGISTRY",
        default_value = "/etc/k3rs/registries.yaml"
    )]
    pub private_registry: PathBuf,
    /// Address of the agent's endpoint (logs, exec; HTTPS, only the API server may use it).
    #[arg(long, env = "K3RS_AGENT_ENDPOINT", default_value = "0.0.0.0:10250")]
    pub agent_endpoint: std::net::SocketAddr,
    /// Rotate a container's log file past this size (a quantity: 10Mi).
    #[arg(long, env = "K3RS_CONTAINER_LOG_MAX_SIZE", default_value = "10Mi")]
    pub container_log_max_size: String,
    /// Log files kept per container, the live one included.
    #[arg(long, env = "K3RS_CONTAINER_LOG_MAX_FILES", default_value_t = 5)]
    pub container_log_max_files: u32,
    /// Node-pressure eviction and image GC (kubelet flags).
    #[command(flatten)]
    pub kubelet: Box<super::kubelet_args::KubeletArgs>,
    /// Config file (keys are flag names).
    #[arg(
        short = 'c',
        long,
        env = "K3RS_CONFIG_FILE",
        default_value = "/etc/k3rs/config.yaml"
    )]
    pub config: PathBuf,
}
