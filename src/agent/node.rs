//! Node registration and heartbeat: the Node object (labels, taints, podCIDR, capacity,
//! nodeInfo, addresses, Ready condition) and its Lease in `kube-node-lease`, renewed every
//! 10 s; the Ready condition is refreshed every 40 s, and at once when the eviction
//! manager's `MemoryPressure`/`DiskPressure` change.
//!
//! Owns: this node's Node and Lease objects. May call: the API server (kube client).

use super::AgentError;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Taint};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// The version string nodes report (`kubectl get nodes` VERSION).
pub const KUBELET_VERSION: &str = "v1.33.0+k3rs1";
const LEASE_NAMESPACE: &str = "kube-node-lease";
const LEASE_SECONDS: i32 = 40;

/// What the node registers as.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub name: String,
    pub ip: IpAddr,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub runtime_version: String,
    /// Port of the agent endpoint (`daemonEndpoints.kubeletEndpoint.Port`).
    pub endpoint_port: u16,
    /// Pressure conditions from the eviction manager (`None`: always False).
    pub pressure: Option<tokio::sync::watch::Receiver<super::eviction::NodePressure>>,
}

/// Parses `key=value:Effect` (or `key:Effect`).
pub fn parse_taint(s: &str) -> Option<Taint> {
    let (kv, effect) = s.rsplit_once(':')?;
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k, Some(v.to_string())),
        None => (kv, None),
    };
    if key.is_empty() || !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
        return None;
    }
    Some(Taint {
        key: key.into(),
        value,
        effect: effect.into(),
        time_added: None,
    })
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn os_image() -> String {
    read_trim("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

fn memory_kib() -> u64 {
    read_trim("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn status(spec: &NodeSpec) -> serde_json::Value {
    let now = Time(jiff::Timestamp::now());
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let resources = json!({
        "cpu": Quantity(cpus.to_string()),
        "memory": Quantity(format!("{}Ki", memory_kib())),
        "pods": Quantity("110".into()),
        "ephemeral-storage": Quantity("10Gi".into()),
    });
    let uname = nix::sys::utsname::uname().ok();
    let kernel = uname
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let cond = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({"type": kind, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    let pressure = spec
        .pressure
        .as_ref()
        .map(|p| p.borrow().clone())
        .unwrap_or_default();
    let since = |t: Option<jiff::Timestamp>| t.map(Time).unwrap_or_else(|| now.clone());
    // One pressure condition: (reason, message) when true and when false, as the kubelet.
    let pressure_cond =
        |kind: &str, on: bool, at: Option<jiff::Timestamp>, yes: (&str, &str), no: (&str, &str)| {
            let (status, (reason, message)) = if on { ("True", yes) } else { ("False", no) };
            let mut c = cond(kind, status, reason, message);
            c["lastTransitionTime"] = json!(since(at));
            c
        };
    let memory = pressure_cond(
        "MemoryPressure",
        pressure.memory,
        pressure.memory_since,
        (
            "KubeletHasInsufficientMemory",
            "kubelet has insufficient memory available",
        ),
        (
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
    );
    let disk = pressure_cond(
        "DiskPressure",
        pressure.disk,
        pressure.disk_since,
        ("KubeletHasDiskPressure", "kubelet has disk pressure"),
        ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    );
    let pid = pressure_cond(
        "PIDPressure",
        pressure.pid,
        pressure.pid_since,
        (
            "KubeletHasInsufficientPID",
            "kubelet has insufficient PID available",
        ),
        (
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
    );
    json!({
        "capacity": resources,
        "allocatable": resources,
        "addresses": [
            {"type": "InternalIP", "address": spec.ip.to_string()},
            {"type": "Hostname", "address": spec.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": spec.endpoint_port}},
        "nodeInfo": {
            "machineID": read_trim("/etc/machine-id"),
            "systemUUID": read_trim("/sys/class/dmi/id/product_uuid"),
            "bootID": read_trim("/proc/sys/kernel/random/boot_id"),
            "kernelVersion": kernel,
            "osImage": os_image(),
            "containerRuntimeVersion": format!("containerd://{}", spec.runtime_version),
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": KUBELET_VERSION,
            "operatingSystem": "linux",
            "architecture": arch(),
        },
        "conditions": [
            memory,
            disk,
            pid,
            cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
    })
}

/// Creates or updates the Node (labels, taints, status). Its podCIDR is not chosen here: the
/// node-lifecycle controller allocates it (one allocator, so two nodes never collide) and
/// [`wait_for_pod_cidr`] reads it back.
pub async fn register(client: &kube::Client, spec: &NodeSpec) -> Result<(), AgentError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut labels = spec.labels.clone();
    labels.insert("kubernetes.io/hostname".into(), spec.name.clone());
    labels.insert("kubernetes.io/os".into(), "linux".into());
    labels.insert("kubernetes.io/arch".into(), arch().into());
    labels.insert("beta.kubernetes.io/os".into(), "linux".into());
    labels.insert("beta.kubernetes.io/arch".into(), arch().into());
    let existing = nodes.get_opt(&spec.name).await?;
    let taints =
        serde_json::to_value(&spec.taints).map_err(|e| AgentError::Config(e.to_string()))?;
    let body = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": spec.name, "labels": labels},
        "spec": {"taints": taints},
    });
    match existing {
        None => {
            let node: Node =
                serde_json::from_value(body).map_err(|e| AgentError::Config(e.to_string()))?;
            nodes.create(&PostParams::default(), &node).await?;
            info!(node = %spec.name, "registered node");
        }
        Some(_) => {
            nodes
                .patch(&spec.name, &PatchParams::default(), &Patch::Merge(&body))
                .await?;
            info!(node = %spec.name, "node already registered; updated");
        }
    }
    nodes
        .patch_status(
            &spec.name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": status(spec)})),
        )
        .await?;
    Ok(())
}

/// Waits until the controllers have allocated `spec.podCIDR` for the node (like a kubelet
/// without `--pod-cidr`); `None` when `shutdown` fires first.
pub async fn wait_for_pod_cidr(
    client: &kube::Client,
    name: &str,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Option<String> {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut delay = std::time::Duration::from_millis(50);
    let mut waited = std::time::Duration::ZERO;
    loop {
        match nodes.get_opt(name).await {
            Ok(Some(node)) => {
                if let Some(cidr) = node.spec.and_then(|s| s.pod_cidr) {
                    info!(node = %name, pod_cidr = %cidr, "pod CIDR allocated");
                    return Some(cidr);
                }
            }
            Ok(None) => debug!(node = %name, "node object not found yet"),
            Err(e) => debug!(error = %e, "cannot read the node"),
        }
        if waited >= std::time::Duration::from_secs(30) {
            warn!(node = %name, "still waiting for the controllers to allocate a pod CIDR");
            waited = std::time::Duration::ZERO;
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => return None,
        }
        waited += delay;
        delay = (delay * 2).min(std::time::Duration::from_secs(1));
    }
}

async fn renew_lease(client: &kube::Client, name: &str) -> Result<(), kube::Error> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let now = MicroTime(jiff::Timestamp::now());
    let spec =
        json!({"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": now});
    match leases.get_opt(name).await? {
        Some(_) => {
            leases
                .patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"spec": spec})),
                )
                .await?;
        }
        None => {
            let lease: Lease = serde_json::from_value(json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
                "spec": spec,
            }))
            .map_err(kube::Error::SerdeError)?;
            leases.create(&PostParams::default(), &lease).await?;
        }
    }
    Ok(())
}

/// Renews the Lease every 10 s and the node status every 40 s until shutdown.
pub async fn heartbeat(client: kube::Client, spec: NodeSpec, shutdown: CancellationToken) {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    let mut n: u64 = 0;
    let mut pressure = spec.pressure.clone();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
            Ok(()) = async {
                match pressure.as_mut() {
                    Some(p) => p.changed().await,
                    None => std::future::pending().await,
                }
            } => {
                // A pressure change is reported now, not at the next status refresh.
                let patch = json!({"status": status(&spec)});
                if let Err(e) = nodes
                    .patch_status(&spec.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    warn!(error = %e, "updating node pressure conditions");
                }
                continue;
            }
        }
        if let Err(e) = renew_lease(&client, &spec.name).await {
            warn!(error = %e, "renewing the node lease");
        } else {
            debug!("node lease renewed");
        }
        n += 1;
        if n % 4 == 0 {
            let patch = json!({"status": status(&spec)});
            if let Err(e) = nodes
                .patch_status(&spec.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                warn!(error = %e, "updating node status");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taints_parse_like_k3s_flags() {
        let t = parse_taint("dedicated=gpu:NoSchedule").unwrap();
        assert_eq!(
            (t.key.as_str(), t.value.as_deref(), t.effect.as_str()),
            ("dedicated", Some("gpu"), "NoSchedule")
        );
        assert!(parse_taint("k:Nope").is_none());
        assert!(parse_taint("novalue").is_none());
    }

    #[test]
    fn node_status_reports_containerd_runtime_version_and_ready() {
        let spec = NodeSpec {
            name: "n1".into(),
            ip: "10.0.0.5".parse().unwrap(),
            labels: BTreeMap::new(),
            taints: vec![],
            runtime_version: "1.6.20~ds1".into(),
            endpoint_port: 10250,
            pressure: None,
        };
        let s = status(&spec);
        assert_eq!(
            s["nodeInfo"]["containerRuntimeVersion"],
            "containerd://1.6.20~ds1"
        );
        assert_eq!(s["addresses"][0]["address"], "10.0.0.5");
        let ready = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "True");
        let _: k8s_openapi::api::core::v1::NodeStatus = serde_json::from_value(s).unwrap();
    }

    #[test]
    fn node_status_reports_pressure_with_upstream_reasons() {
        let (_tx, rx) = tokio::sync::watch::channel(crate::agent::eviction::NodePressure {
            memory: true,
            ..Default::default()
        });
        let spec = NodeSpec {
            name: "n1".into(),
            ip: "10.0.0.5".parse().unwrap(),
            labels: BTreeMap::new(),
            taints: vec![],
            runtime_version: "1".into(),
            endpoint_port: 10250,
            pressure: Some(rx),
        };
        let s = status(&spec);
        let find = |t: &str| {
            s["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == t)
                .unwrap()
                .clone()
        };
        assert_eq!(find("MemoryPressure")["status"], "True");
        assert_eq!(
            find("MemoryPressure")["reason"],
            "KubeletHasInsufficientMemory"
        );
        assert_eq!(find("DiskPressure")["status"], "False");
        assert_eq!(find("DiskPressure")["reason"], "KubeletHasNoDiskPressure");
    }
}
