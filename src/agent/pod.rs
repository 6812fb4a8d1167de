//! Pod-level facts and files: names and paths (container ids, CRI log paths), the pod's
//! `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`, and volumes (emptyDir, hostPath).
//!
//! Owns: everything under `<data-dir>/agent/pods/<uid>/` and the pod log directory name.
//! May call: the filesystem only.

use crate::agent::network::{PodRef, PortMapping};
use k8s_openapi::api::core::v1::Pod;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Labels k3rs puts on every container (the same keys the CRI uses, so tools recognise them).
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";
pub const LABEL_ATTEMPT: &str = "io.k3rs.attempt";
pub const LABEL_RESTARTS: &str = "io.k3rs.restart-count";
pub const LABEL_STARTED_AT: &str = "io.k3rs.started-at";

/// Settings of the pod workers of one node.
#[derive(Debug, Clone)]
pub struct PodConfig {
    pub node_name: String,
    pub host_ip: IpAddr,
    /// `<data-dir>/agent/pods`.
    pub pods_dir: PathBuf,
    /// `/var/log/pods`.
    pub log_dir: PathBuf,
    /// cgroupfs parent of all pods, e.g. `/k3rs`.
    pub cgroup_root: String,
    pub cluster_dns: Option<IpAddr>,
    pub cluster_domain: String,
    /// CrashLoopBackOff bounds (10 s and 5 min in production).
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

fn meta(pod: &Pod) -> (&str, &str, &str) {
    (
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or(""),
        pod.metadata.uid.as_deref().unwrap_or(""),
    )
}

/// `<namespace>/<name>` for logs.
pub fn pod_key(pod: &Pod) -> String {
    let (ns, name, _) = meta(pod);
    format!("{ns}/{name}")
}

/// The pod's hostname: `spec.hostname` or its name (at most 63 characters).
pub fn hostname(pod: &Pod) -> String {
    let name = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .unwrap_or_else(|| meta(pod).1.to_string());
    name.chars().take(63).collect()
}

pub fn is_host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

/// What the network layer needs to know about `pod` (hostPorts become port mappings).
pub fn pod_ref(pod: &Pod) -> PodRef {
    let (ns, name, uid) = meta(pod);
    let ports = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            Some(PortMapping {
                host_port: p.host_port.filter(|h| *h > 0)?,
                container_port: p.container_port,
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                host_ip: p.host_ip.clone().unwrap_or_default(),
            })
        })
        .collect();
    PodRef {
        uid: uid.into(),
        namespace: ns.into(),
        name: name.into(),
        hostname: hostname(pod),
        ports,
    }
}

/// containerd ids are at most 76 characters: `<name≤40>-<uid16>-<attempt>`.
pub fn container_id(uid: &str, name: &str, attempt: u32) -> String {
    let uid: String = uid.chars().filter(|c| *c != '-').take(16).collect();
    let name: String = name.chars().take(40).collect();
    format!("{name}-{uid}-{attempt}")
}

/// `/var/log/pods/<ns>_<name>_<uid>`.
pub fn pod_log_dir(cfg: &PodConfig, pod: &Pod) -> PathBuf {
    let (ns, name, uid) = meta(pod);
    cfg.log_dir.join(format!("{ns}_{name}_{uid}"))
}

/// `/var/log/pods/<ns>_<name>_<uid>/<container>/<attempt>.log`.
pub fn container_log_path(cfg: &PodConfig, pod: &Pod, container: &str, attempt: u32) -> PathBuf {
    pod_log_dir(cfg, pod)
        .join(container)
        .join(format!("{attempt}.log"))
}

pub fn pod_dir(cfg: &PodConfig, uid: &str) -> PathBuf {
    cfg.pods_dir.join(uid)
}

/// Paths of the per-pod `/etc` files.
#[derive(Debug, Clone)]
pub struct EtcFiles {
    pub hosts: PathBuf,
    pub hostname: PathBuf,
    pub resolv_conf: PathBuf,
}

fn resolv_conf(cfg: &PodConfig, pod: &Pod) -> String {
    let spec = pod.spec.as_ref();
    let policy = spec
        .and_then(|s| s.dns_policy.as_deref())
        .unwrap_or("ClusterFirst");
    let host_network = is_host_network(pod);
    let cluster = match (policy, cfg.cluster_dns) {
        ("ClusterFirst", Some(dns)) if !host_network => Some(dns),
        ("ClusterFirstWithHostNet", Some(dns)) => Some(dns),
        _ => None,
    };
    let mut out = String::new();
    match cluster {
        Some(dns) => {
            let ns = meta(pod).0;
            let d = &cfg.cluster_domain;
            out.push_str(&format!(
                "search {ns}.svc.{d} svc.{d} {d}\nnameserver {dns}\noptions ndots:5\n"
            ));
        }
        None if policy == "None" => {}
        None => out.push_str(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()),
    }
    if let Some(c) = spec.and_then(|s| s.dns_config.as_ref()) {
        for ns in c.nameservers.iter().flatten() {
            out.push_str(&format!("nameserver {ns}\n"));
        }
        if let Some(search) = c.searches.as_ref().filter(|s| !s.is_empty()) {
            out.push_str(&format!("search {}\n", search.join(" ")));
        }
    }
    out
}

/// Writes the pod's `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`.
pub fn write_etc_files(cfg: &PodConfig, pod: &Pod, ip: IpAddr) -> std::io::Result<EtcFiles> {
    let dir = pod_dir(cfg, meta(pod).2).join("etc");
    std::fs::create_dir_all(&dir)?;
    let host = hostname(pod);
    let mut hosts = format!(
        "# managed by k3rs\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{ip}\t{host}\n"
    );
    for alias in pod
        .spec
        .iter()
        .flat_map(|s| s.host_aliases.iter().flatten())
    {
        hosts.push_str(&format!(
            "{}\t{}\n",
            alias.ip,
            alias.hostnames.clone().unwrap_or_default().join("\t")
        ));
    }
    let files = EtcFiles {
        hosts: dir.join("hosts"),
        hostname: dir.join("hostname"),
        resolv_conf: dir.join("resolv.conf"),
    };
    std::fs::write(&files.hosts, hosts)?;
    std::fs::write(&files.hostname, format!("{host}\n"))?;
    std::fs::write(&files.resolv_conf, resolv_conf(cfg, pod))?;
    Ok(files)
}

/// Creates the host directories of emptyDir and hostPath volumes. API-backed kinds are
/// left to [`crate::agent::sources`]; anything else (PVCs, …) is an error naming the volume.
pub fn prepare_volumes(cfg: &PodConfig, pod: &Pod) -> Result<HashMap<String, PathBuf>, String> {
    let uid = meta(pod).2;
    let mut out = HashMap::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        if crate::agent::sources::handles(v) {
            // Written from the API by `sources::materialize_volumes`.
            continue;
        }
        let path = if v.empty_dir.is_some() {
            pod_dir(cfg, uid).join("volumes/empty-dir").join(&v.name)
        } else if let Some(h) = &v.host_path {
            let p = crate::agent::volumes_hostpath::check(&h.path, h.type_.as_deref())?;
            out.insert(v.name.clone(), p);
            continue;
        } else {
            return Err(format!(
                "volume {}: only emptyDir, hostPath, configMap, secret, downwardAPI and projected are supported yet",
                v.name
            ));
        };
        std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        out.insert(v.name.clone(), path);
    }
    Ok(out)
}

/// Removes `<pods_dir>/<uid>` (emptyDirs, etc files).
pub fn remove_pod_dir(cfg: &PodConfig, uid: &str) -> std::io::Result<()> {
    match std::fs::remove_dir_all(pod_dir(cfg, uid)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cfg(dir: &Path) -> PodConfig {
        PodConfig {
            node_name: "n1".into(),
            host_ip: "192.168.1.2".parse().unwrap(),
            pods_dir: dir.join("pods"),
            log_dir: dir.join("logs"),
            cgroup_root: "/k3rs".into(),
            cluster_dns: Some("10.43.0.10".parse().unwrap()),
            cluster_domain: "cluster.local".into(),
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
        }
    }

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "1234-5678-9abc-def0-1111"},
            "spec": {
                "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 80, "hostPort": 8080}]}],
                "volumes": [{"name": "scratch", "emptyDir": {}}]
            }
        }))
        .unwrap()
    }

    #[test]
    fn ids_and_log_paths_follow_kubelet_conventions() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path());
        assert_eq!(
            container_id("1234-5678-9abc-def0-1111", "web", 3),
            "web-123456789abcdef0-3"
        );
        assert!(container_id("u", &"n".repeat(100), 99999).len() <= 76);
        assert_eq!(
            container_log_path(&c, &pod(), "c", 2),
            dir.path()
                .join("logs/shop_web_1234-5678-9abc-def0-1111/c/2.log")
        );
        let r = pod_ref(&pod());
        assert_eq!(r.ports[0].host_port, 8080);
        assert_eq!(r.hostname, "web");
    }

    #[test]
    fn etc_files_and_empty_dirs_are_written_under_the_pod_dir() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path());
        let files = write_etc_files(&c, &pod(), "10.42.0.9".parse().unwrap()).unwrap();
        let hosts = std::fs::read_to_string(files.hosts).unwrap();
        assert!(hosts.contains("10.42.0.9\tweb"));
        let resolv = std::fs::read_to_string(files.resolv_conf).unwrap();
        assert!(resolv.contains("nameserver 10.43.0.10"));
        assert!(resolv.contains("search shop.svc.cluster.local"));
        let vols = prepare_volumes(&c, &pod()).unwrap();
        assert!(vols["scratch"].is_dir());
        remove_pod_dir(&c, "1234-5678-9abc-def0-1111").unwrap();
        assert!(!vols["scratch"].exists());
    }
}
