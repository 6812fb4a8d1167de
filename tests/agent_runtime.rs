//! The agent's runtime layer against the real containerd 1.6 + runc (needs root): a private
//! containerd under a temp dir, image import, containers, logs, exec.

mod common;

use common::images::build_busybox_image;
use k3rs::agent::runtime::{
    ContainerCreate, ContainerRuntime, Containerd, ContainerdOptions, ContainerdPaths, PullPolicy,
    TaskStatus, start_containerd,
};
use std::collections::HashMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervised_containerd_imports_an_image_and_runs_a_container_with_cri_logs() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let paths = ContainerdPaths {
        dir: tmp.path().join("agent/containerd"),
    };
    let supervised = start_containerd(paths, shutdown.clone()).await.unwrap();
    let rt = Containerd::connect(
        &supervised.socket,
        ContainerdOptions {
            logger_binary: Some(env!("CARGO_BIN_EXE_k3rs").into()),
            scratch_dir: tmp.path().join("scratch"),
        },
    )
    .await
    .unwrap();
    assert!(rt.version().await.unwrap().starts_with("1.6"));

    let images = tmp.path().join("agent/images");
    std::fs::create_dir_all(&images).unwrap();
    build_busybox_image(&images, "busybox.tar", "k3rs.test/busybox:1");
    let results = rt.import_dir(&images).await;
    assert_eq!(results.len(), 1);
    let imported = results[0].1.as_ref().unwrap();
    assert_eq!(imported[0].name, "k3rs.test/busybox:1");
    // A second import is idempotent.
    rt.import_dir(&images).await[0].1.as_ref().unwrap();

    let image = rt
        .ensure_image("k3rs.test/busybox:1", PullPolicy::IfNotPresent)
        .await
        .unwrap();
    assert_eq!(image.config.cmd, vec!["/bin/sh"]);
    assert!(image.id.starts_with("k3rs.test/busybox@sha256:"));
    let missing = rt
        .ensure_image("k3rs.test/missing:1", PullPolicy::Never)
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("Never"), "{missing}");

    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "p", "namespace": "default", "uid": "rt-1"},
        "spec": {"containers": [{"name": "c", "image": "k3rs.test/busybox:1",
            "command": ["/bin/sh", "-c", "echo out-$IMAGE_VAR; echo err >&2; sleep 30"]}]}
    }))
    .unwrap();
    let c = &pod.spec.as_ref().unwrap().containers[0];
    // runc's state lives under /run/containerd/runc/k8s.io for every containerd: unique ids.
    let id = format!("rt-{}", uuid::Uuid::new_v4().simple());
    let id = id.as_str();
    let sandbox = k3rs::agent::runtime::spec::SandboxInfo {
        hostname: "p".into(),
        cgroup_parent: "/k3rs-test/podrt-1".into(),
        ..Default::default()
    };
    let spec = k3rs::agent::runtime::spec::build(&pod, c, &image, &sandbox, id).unwrap();
    let log_path = tmp.path().join("logs/default_p_rt-1/c/0.log");
    let create = ContainerCreate {
        id: id.to_string(),
        image: image.clone(),
        spec,
        labels: HashMap::from([("io.k3rs.pod-uid".to_string(), "rt-1".to_string())]),
        log_path: log_path.clone(),
    };
    rt.create_container(&create).await.unwrap();
    let pid = rt.start_container(id).await.unwrap();
    assert!(pid > 0);
    let state = rt.container_state(id).await.unwrap().unwrap();
    assert_eq!(state.status, TaskStatus::Running);

    let out = rt
        .exec(
            id,
            &["/bin/sh".into(), "-c".into(), "echo in-exec; exit 3".into()],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, 3);
    assert_eq!(String::from_utf8_lossy(&out.output), "in-exec\n");

    let mut log = String::new();
    for _ in 0..100 {
        log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if log.contains("stdout F out-from-image") && log.contains("stderr F err") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(log.contains(" stdout F out-from-image\n"), "{log}");
    assert!(log.contains(" stderr F err\n"), "{log}");

    let listed = rt.list_containers("io.k3rs.pod-uid", "rt-1").await.unwrap();
    assert_eq!(listed.len(), 1);
    rt.kill_container(id, 9).await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(10), rt.wait_container(id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit.exit_code, 137);
    rt.remove_container(id).await.unwrap();
    assert!(rt.container_state(id).await.unwrap().is_none());
    rt.remove_container(id).await.unwrap();

    shutdown.cancel();
    supervised.stopped().await;
}
