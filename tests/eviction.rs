//! Node-pressure eviction and image GC end to end, on a real `k3rs server` with its
//! built-in agent and containerd (needs root). The memory threshold is set 1 GiB above
//! the host's total memory, so the pressure is real: the node reports
//! `MemoryPressure=True`, the node lifecycle controller taints it, a BestEffort pod is
//! evicted (`Failed`/`Evicted`, an `Evicted` event) and a system-node-critical pod keeps
//! running. Then the server restarts with image GC thresholds that make it run at once:
//! an imported image no container uses is deleted, the one the running pod uses is kept.

mod common;

use common::agent_server::{AgentServer as Server, data_dir_with_busybox};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// An OCI-layout archive of a one-file image named `name` (a digest of its own, so it is
/// not another tag of the busybox image).
fn build_data_image(dir: &Path, file: &str, name: &str) {
    use sha2::{Digest, Sha256};
    let work = dir.join(format!("build-{file}"));
    let layout = work.join("layout");
    let rootfs = work.join("rootfs");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    std::fs::create_dir_all(&rootfs).unwrap();
    std::fs::write(rootfs.join("unused.txt"), format!("{name}\n")).unwrap();
    let tar = |from: &Path, out: &Path| {
        let ok = Command::new("tar")
            .args([
                "--numeric-owner",
                "--owner=0",
                "--group=0",
                "--mtime=@0",
                "-C",
            ])
            .arg(from)
            .arg("-cf")
            .arg(out)
            .arg(".")
            .status()
            .unwrap()
            .success();
        assert!(ok, "tar failed");
    };
    let blob = |bytes: &[u8]| {
        let hex = hex::encode(Sha256::digest(bytes));
        std::fs::write(layout.join("blobs/sha256").join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let layer_tar = work.join("layer.tar");
    tar(&rootfs, &layer_tar);
    let (layer, layer_size) = blob(&std::fs::read(&layer_tar).unwrap());
    let arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    };
    let config = serde_json::json!({"architecture": arch, "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer]}});
    let (config_digest, config_size) = blob(&serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": layer_size}]});
    let (m, m_size) = blob(&serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m, "size": m_size,
        "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name}}]});
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    tar(&layout, &dir.join(file));
    std::fs::remove_dir_all(&work).unwrap();
}

fn mem_total_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

fn condition(node: &Value, kind: &str) -> Value {
    node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == kind)
        .cloned()
        .unwrap_or(Value::Null)
}

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  terminationGracePeriodSeconds: 30
  tolerations:
  - {key: node.kubernetes.io/memory-pressure, operator: Exists, effect: NoSchedule}
  containers:
  - name: hog
    image: k3rs.test/busybox:1
    imagePullPolicy: Never
    command: ["/bin/sh", "-c", "sleep 3600"]
---
apiVersion: v1
kind: Pod
metadata: {name: critical}
spec:
  priorityClassName: system-node-critical
  priority: 2000001000
  terminationGracePeriodSeconds: 1
  tolerations:
  - {key: node.kubernetes.io/memory-pressure, operator: Exists, effect: NoSchedule}
  containers:
  - name: app
    image: k3rs.test/busybox:1
    imagePullPolicy: Never
    command: ["/bin/sh", "-c", "sleep 3600"]
"#;

#[test]
fn memory_pressure_evicts_best_effort_pods_but_not_critical_ones_and_image_gc_removes_unused_images()
 {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let started = Instant::now();
    let (tmp, images) = data_dir_with_busybox("k3rs.test/busybox:1");
    build_data_image(&images, "unused.tar", "k3rs.test/unused:1");

    // Real pressure: the threshold is 1 GiB above the host's total memory, so what is
    // available stays below it whatever other processes allocate or free meanwhile.
    let threshold = format!("memory.available<{}Ki", mem_total_kib() + 1024 * 1024);
    let flags = vec![
        "--eviction-hard".to_string(),
        threshold.clone(),
        "--eviction-monitoring-interval".into(),
        "1s".into(),
    ];
    let mut server = Server::start_with(tmp.path(), &flags);
    let node_name = || -> String {
        let nodes = server.json(&["get", "nodes"]);
        nodes["items"][0]["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    server.wait_for("the node", 30, |_| !node_name().is_empty());
    let node = node_name();

    // The condition, with upstream's reason, then the taint from the node lifecycle controller.
    server.wait_for("MemoryPressure=True", 20, |_| {
        condition(&server.json(&["get", "node", &node]), "MemoryPressure")["status"] == "True"
    });
    let n = server.json(&["get", "node", &node]);
    let c = condition(&n, "MemoryPressure");
    assert_eq!(c["reason"], "KubeletHasInsufficientMemory", "{c}");
    assert_eq!(
        c["message"], "kubelet has insufficient memory available",
        "{c}"
    );
    assert_eq!(condition(&n, "DiskPressure")["status"], "False");
    server.wait_for("the memory-pressure taint", 20, |_| {
        server.json(&["get", "node", &node])["spec"]["taints"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| {
                t["key"] == "node.kubernetes.io/memory-pressure" && t["effect"] == "NoSchedule"
            })
    });

    // The BestEffort pod is evicted; the critical one is not.
    server.apply(PODS);
    server.wait_for("the hog pod to be evicted", 30, |_| {
        server.json(&["get", "pod", "hog"])["status"]["phase"] == "Failed"
    });
    let hog = server.json(&["get", "pod", "hog"]);
    assert_eq!(hog["status"]["reason"], "Evicted", "{hog}");
    let message = hog["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("The node was low on resource: memory. Threshold quantity: "),
        "{message}"
    );
    server.wait_for("the Evicted event", 15, |_| {
        let ev = server.json(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=hog,reason=Evicted",
        ]);
        ev["items"].as_array().is_some_and(|i| !i.is_empty())
    });
    // Its container is gone: no task of the hog pod in containerd.
    let uid = hog["metadata"]["uid"].as_str().unwrap().to_string();
    server.wait_for("the hog pod's directory to be removed", 15, |_| {
        !tmp.path().join("data/agent/pods").join(&uid).exists()
    });
    // Once only the critical pod is left, the manager has nothing it may evict.
    server.wait_for(
        "the manager to find no candidate after the eviction",
        15,
        |_| {
            let log = server.log();
            log.find("evicting pod pod=default/hog")
                .is_some_and(|at| log[at..].contains("unable to evict any pods from the node"))
        },
    );
    assert!(
        !server.log().contains("evicting pod pod=default/critical"),
        "{}",
        server.tail()
    );
    server.wait_for("the critical pod to run", 20, |_| {
        server.json(&["get", "pod", "critical"])["status"]["phase"] == "Running"
    });
    let critical = server.json(&["get", "pod", "critical"]);
    assert!(critical["status"]["reason"].is_null(), "{critical}");
    // The pod cgroup the manager reads usage from exists (cgroup v2 or v1's memory).
    let cuid = critical["metadata"]["uid"].as_str().unwrap();
    let v2 = PathBuf::from(format!("/sys/fs/cgroup/k3rs/pod{cuid}/memory.current"));
    let v1 = PathBuf::from(format!(
        "/sys/fs/cgroup/memory/k3rs/pod{cuid}/memory.usage_in_bytes"
    ));
    assert!(
        v2.exists() || v1.exists(),
        "no memory cgroup for pod {cuid}"
    );
    // The node event of the transition, as the kubelet words it.
    let ev = server.json(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=Node,reason=NodeHasInsufficientMemory",
    ]);
    assert_eq!(
        ev["items"][0]["message"],
        format!("Node {node} status is now: NodeHasInsufficientMemory"),
        "{ev}"
    );

    // Image GC: restart with thresholds that make it run now (high 1%, low 0%, no minimum
    // age). The running pod's containers keep busybox in use.
    let listed = server.images();
    assert!(listed.contains("k3rs.test/unused:1"), "{listed}");
    server.kill9();
    // Not re-imported at start: GC must remove what containerd already holds.
    std::fs::remove_file(images.join("unused.tar")).unwrap();
    let mut gc_flags = flags.clone();
    gc_flags.extend(
        [
            "--image-gc-high-threshold",
            "1",
            "--image-gc-low-threshold",
            "0",
            "--minimum-image-ttl-duration",
            "0s",
            "--image-gc-period",
            "1s",
        ]
        .map(String::from),
    );
    server.spawn_with(&gc_flags);
    server.wait_for("the unused image to be removed", 30, |_| {
        !server.images().contains("k3rs.test/unused:1")
    });
    let listed = server.images();
    assert!(listed.contains("k3rs.test/busybox:1"), "{listed}");
    assert_eq!(
        server.json(&["get", "pod", "critical"])["status"]["phase"],
        "Running"
    );
    eprintln!("eviction test took {:?}", started.elapsed());
}
