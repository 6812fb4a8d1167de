//! Whether a stopped container was killed by its cgroup's OOM killer: the `oom_kill`
//! counter of its memory cgroup (cgroup v2 `memory.events`, or v1 `memory.oom_control`
//! on hybrid hosts), read before the task is deleted (runc removes the cgroup then).
//!
//! Owns: reading those counters. May call: the filesystem under /sys/fs/cgroup.

use std::path::{Path, PathBuf};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// `oom_kill` from a `memory.events` or `memory.oom_control` file.
fn oom_kill_count(text: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next() == Some("oom_kill"))
            .then(|| it.next()?.parse().ok())
            .flatten()
    })
}

/// The counter files that may describe cgroup `path` under `root`, v2 first.
fn candidates(root: &Path, path: &str) -> Vec<PathBuf> {
    let rel = path.trim_start_matches('/');
    vec![
        root.join(rel).join("memory.events"),
        root.join("memory").join(rel).join("memory.oom_control"),
    ]
}

/// True when the cgroup at `path` (a cgroupfs `cgroupsPath`) saw an OOM kill.
pub(super) fn cgroup_oom_killed(root: &Path, path: &str) -> bool {
    candidates(root, path).iter().any(|f| {
        std::fs::read_to_string(f)
            .ok()
            .and_then(|t| oom_kill_count(&t))
            .is_some_and(|n| n > 0)
    })
}

/// True when the container whose OCI spec is `spec` (containerd's `Any`) was OOM-killed.
pub(super) fn oom_killed(spec: Option<&prost_types::Any>) -> bool {
    let Some(spec) = spec else {
        return false;
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&spec.value) else {
        return false;
    };
    match v["linux"]["cgroupsPath"].as_str() {
        // Only cgroupfs paths (`/parent/id`); systemd-style `slice:prefix:name` is not ours.
        Some(p) if p.starts_with('/') => cgroup_oom_killed(Path::new(CGROUP_ROOT), p),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_kill_counters_are_read_from_v2_and_v1_files() {
        let root = tempfile::tempdir().unwrap();
        let v2 = root.path().join("k3rs/pod1/a");
        std::fs::create_dir_all(&v2).unwrap();
        std::fs::write(
            v2.join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n",
        )
        .unwrap();
        assert!(cgroup_oom_killed(root.path(), "/k3rs/pod1/a"));
        let v1 = root.path().join("memory/k3rs/pod1/b");
        std::fs::create_dir_all(&v1).unwrap();
        std::fs::write(
            v1.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
        )
        .unwrap();
        assert!(!cgroup_oom_killed(root.path(), "/k3rs/pod1/b"));
        std::fs::write(
            v1.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        assert!(cgroup_oom_killed(root.path(), "/k3rs/pod1/b"));
        assert!(!cgroup_oom_killed(root.path(), "/k3rs/pod1/missing"));
    }

    #[test]
    fn specs_without_a_cgroupfs_path_are_not_oom_killed() {
        let any = |v: serde_json::Value| prost_types::Any {
            type_url: String::new(),
            value: serde_json::to_vec(&v).unwrap(),
        };
        assert!(!oom_killed(None));
        assert!(!oom_killed(Some(&any(serde_json::json!({"linux": {}})))));
        assert!(!oom_killed(Some(&any(
            serde_json::json!({"linux": {"cgroupsPath": "system.slice:k3rs:x"}})
        ))));
    }
}
