//! Reading the eviction signals and per-pod usage from the host, behind [`StatsProvider`]
//! so the manager's decisions are tested with made-up numbers.
//!
//! `memory.available` is `MemAvailable` of `/proc/meminfo` (capacity `MemTotal`): the
//! kernel's own estimate of what can be allocated without swapping. Upstream subtracts the
//! root cgroup's working set from capacity instead; both read close, and `MemAvailable`
//! needs no cgroup mode detection. Pod memory is the pod cgroup's working set (usage minus
//! inactive file pages), read from cgroup v2 or v1's memory controller. Pod disk usage is
//! what the pod writes outside its containers' writable layers: its directory (emptyDir
//! volumes, /etc files) and its log directory.
//!
//! `pid.available` is the kernel's task limit (the smaller of `pid_max` and `threads-max`)
//! minus the tasks running, as the kubelet computes it; a pod's processes are its cgroup's
//! `pids.current`.
//!
//! Owns: nothing. May call: the filesystem (procfs, cgroupfs, statvfs).

use super::threshold::Signal;
use k8s_openapi::api::core::v1::Pod;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One observed signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    pub available: u64,
    pub capacity: u64,
}

/// What a pod uses (`None`: unknown).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodUsage {
    /// Working-set bytes of the pod cgroup.
    pub memory: Option<u64>,
    /// Working-set bytes per container name.
    pub container_memory: Vec<(String, u64)>,
    /// Bytes written under the pod's directories.
    pub disk: Option<u64>,
    /// Files under the pod's directories.
    pub inodes: Option<u64>,
    /// Processes (tasks) in the pod's cgroup.
    pub pids: Option<u64>,
}

/// Where the manager reads signals and pod usage.
pub trait StatsProvider: Send + Sync {
    /// The current value of every signal that can be read.
    fn observe(&self) -> HashMap<Signal, Observation>;
    /// What `pod` uses now; `None` when nothing can be read (not running here).
    fn pod_usage(&self, pod: &Pod) -> Option<PodUsage>;
}

/// The real host.
#[derive(Debug, Clone)]
pub struct HostStats {
    /// A path on the node filesystem (the agent's data dir).
    pub nodefs: PathBuf,
    /// A path on the image filesystem (containerd's root).
    pub imagefs: PathBuf,
    /// cgroupfs parent of all pods (`/k3rs`); pod cgroups are `<root>/pod<uid>`.
    pub cgroup_root: String,
    /// `<agent>/pods`: one directory per pod uid.
    pub pods_dir: PathBuf,
    /// CRI log root (`/var/log/pods`).
    pub log_dir: PathBuf,
}

fn meminfo() -> Option<Observation> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()
            .map(|kib| kib * 1024)
    };
    Some(Observation {
        available: field("MemAvailable:")?,
        capacity: field("MemTotal:")?,
    })
}

/// `pid.available` as the kubelet reads it: the smaller of `kernel.pid_max` and
/// `kernel.threads-max` minus the tasks running now (`sysinfo`'s process count, threads
/// included).
fn pids() -> Option<Observation> {
    let limit = |name: &str| -> Option<u64> {
        std::fs::read_to_string(format!("/proc/sys/kernel/{name}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let capacity = match (limit("pid_max"), limit("threads-max")) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    let running = nix::sys::sysinfo::sysinfo().ok()?.process_count() as u64;
    Some(Observation {
        available: capacity.saturating_sub(running),
        capacity,
    })
}

/// Tasks in a cgroup (`pids.current`, v2 or v1's pids controller).
fn cgroup_pids(cgroup: &str) -> Option<u64> {
    let rel = cgroup.trim_start_matches('/');
    ["/sys/fs/cgroup", "/sys/fs/cgroup/pids"]
        .iter()
        .find_map(|root| std::fs::read_to_string(format!("{root}/{rel}/pids.current")).ok())
        .and_then(|s| s.trim().parse().ok())
}

/// (bytes, inodes) observations of the filesystem holding `path`.
fn statvfs(path: &Path) -> Option<(Observation, Observation)> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    let frag = st.fragment_size() as u64;
    let bytes = Observation {
        available: st.blocks_available() as u64 * frag,
        capacity: st.blocks() as u64 * frag,
    };
    let inodes = Observation {
        available: st.files_available() as u64,
        capacity: st.files() as u64,
    };
    Some((bytes, inodes))
}

/// Working set of one cgroup (v2 first, then v1's memory controller).
fn working_set(cgroup: &str) -> Option<u64> {
    let rel = cgroup.trim_start_matches('/');
    let v2 = Path::new("/sys/fs/cgroup").join(rel);
    let v1 = Path::new("/sys/fs/cgroup/memory").join(rel);
    let (usage, stat, inactive_key) = if v2.join("memory.current").exists() {
        (
            std::fs::read_to_string(v2.join("memory.current")).ok()?,
            std::fs::read_to_string(v2.join("memory.stat")).unwrap_or_default(),
            "inactive_file",
        )
    } else {
        (
            std::fs::read_to_string(v1.join("memory.usage_in_bytes")).ok()?,
            std::fs::read_to_string(v1.join("memory.stat")).unwrap_or_default(),
            "total_inactive_file",
        )
    };
    let usage: u64 = usage.trim().parse().ok()?;
    let inactive: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix(inactive_key)?.trim().parse().ok())
        .unwrap_or(0);
    Some(usage.saturating_sub(inactive))
}

/// Bytes and files under `dir` (not following symlinks, not crossing into mounts' targets).
fn du(dir: &Path) -> (u64, u64) {
    let mut bytes = 0;
    let mut files = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            files += 1;
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                bytes += meta.len();
            }
        }
    }
    (bytes, files)
}

impl StatsProvider for HostStats {
    fn observe(&self) -> HashMap<Signal, Observation> {
        let mut out = HashMap::new();
        if let Some(m) = meminfo() {
            out.insert(Signal::MemoryAvailable, m);
        }
        if let Some((b, i)) = statvfs(&self.nodefs) {
            out.insert(Signal::NodeFsAvailable, b);
            out.insert(Signal::NodeFsInodesFree, i);
        }
        if let Some((b, i)) = statvfs(&self.imagefs) {
            out.insert(Signal::ImageFsAvailable, b);
            out.insert(Signal::ImageFsInodesFree, i);
        }
        if let Some(p) = pids() {
            out.insert(Signal::PidAvailable, p);
        }
        out
    }

    fn pod_usage(&self, pod: &Pod) -> Option<PodUsage> {
        let uid = pod.metadata.uid.as_deref()?;
        let pod_cgroup = format!("{}/pod{uid}", self.cgroup_root.trim_end_matches('/'));
        let memory = working_set(&pod_cgroup);
        let container_memory = pod
            .status
            .iter()
            .flat_map(|s| s.container_statuses.iter().flatten())
            .filter_map(|c| {
                let id = c.container_id.as_deref()?.strip_prefix("containerd://")?;
                Some((c.name.clone(), working_set(&format!("{pod_cgroup}/{id}"))?))
            })
            .collect();
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or("");
        let (b1, i1) = du(&self.pods_dir.join(uid));
        let (b2, i2) = du(&self.log_dir.join(format!("{ns}_{name}_{uid}")));
        Some(PodUsage {
            memory,
            container_memory,
            disk: Some(b1 + b2),
            inodes: Some(i1 + i2),
            pids: cgroup_pids(&pod_cgroup),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_signals_read_memory_and_both_filesystems() {
        let dir = std::env::temp_dir();
        let h = HostStats {
            nodefs: dir.clone(),
            imagefs: dir.clone(),
            cgroup_root: "/k3rs".into(),
            pods_dir: dir.clone(),
            log_dir: dir,
        };
        let o = h.observe();
        let m = o[&Signal::MemoryAvailable];
        assert!(m.available > 0 && m.available <= m.capacity);
        let d = o[&Signal::NodeFsAvailable];
        assert!(d.capacity > 0 && d.available <= d.capacity);
        assert!(o.contains_key(&Signal::ImageFsInodesFree));
        let p = o[&Signal::PidAvailable];
        assert!(p.available > 0 && p.available < p.capacity, "{p:?}");
    }

    #[test]
    fn du_counts_bytes_and_files() {
        let dir = std::env::temp_dir().join(format!("k3rs-du-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("a"), [0u8; 100]).unwrap();
        std::fs::write(dir.join("sub/b"), [0u8; 20]).unwrap();
        assert_eq!(du(&dir), (120, 3));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
