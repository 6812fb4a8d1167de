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
    let spec =
        k3rs::agent::runtime::spec::build(&pod, c, &image, &sandbox, &Default::default(), id)
            .unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_network_assigns_a_reachable_ip_and_teardown_releases_it() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    use k3rs::agent::network::{Cni, CniConfig, CniNetwork, PodNetwork, PodRef};
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = CniConfig::new(tmp.path().join("cni"), "10.88.41.0/24");
    cfg.bridge = "k3rst41".into();
    cfg.network_name = "k3rs-test41".into();
    let net = CniNetwork::new(Cni::new(cfg).unwrap(), &tmp.path().join("run"));
    let pod = PodRef {
        uid: format!("net-{}", uuid::Uuid::new_v4().simple()),
        namespace: "default".into(),
        name: "n".into(),
        hostname: "n".into(),
        ports: vec![],
    };
    let sb = net.setup(&pod).await.unwrap();
    assert!(sb.ip.to_string().starts_with("10.88.41."), "{}", sb.ip);
    assert!(sb.namespaces.net.exists());
    let ipam = tmp.path().join("cni/ipam/k3rs-test41");
    assert!(ipam.join(sb.ip.to_string()).exists());
    // Setting up again (agent restart) keeps the same IP.
    assert_eq!(net.setup(&pod).await.unwrap().ip, sb.ip);
    let ping = std::process::Command::new("busybox")
        .args(["ping", "-c1", "-W2", &sb.ip.to_string()])
        .output()
        .unwrap();
    assert!(ping.status.success(), "{ping:?}");
    net.teardown(&pod).await.unwrap();
    assert!(!sb.namespaces.net.exists());
    assert!(!ipam.join(sb.ip.to_string()).exists());
    net.teardown(&pod).await.unwrap();
    // CNI never deletes the bridge; the test does, to leave the host as it found it.
    let _ = std::process::Command::new("ip")
        .args(["link", "del", "k3rst41"])
        .status();
}

fn http_get(ip: std::net::IpAddr, port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::new(ip, port);
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn ctr_cli(sock: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("ctr")
        .arg("--address")
        .arg(sock)
        .args(["-n", "k8s.io"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_serves_http_logs_execs_restarts_crashes_with_back_off_and_stops_without_leftovers() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    use k3rs::agent::network::{Cni, CniConfig, CniNetwork};
    use k3rs::agent::pod::PodConfig;
    use k3rs::agent::pod_worker::{self, Deps};
    use std::sync::Arc;

    let tmp = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let supervised = start_containerd(
        ContainerdPaths {
            dir: tmp.path().join("agent/containerd"),
        },
        shutdown.clone(),
    )
    .await
    .unwrap();
    let socket = supervised.socket.clone();
    let rt = Arc::new(
        Containerd::connect(
            &socket,
            ContainerdOptions {
                logger_binary: Some(env!("CARGO_BIN_EXE_k3rs").into()),
                scratch_dir: tmp.path().join("scratch"),
            },
        )
        .await
        .unwrap(),
    );
    let images = tmp.path().join("agent/images");
    std::fs::create_dir_all(&images).unwrap();
    build_busybox_image(&images, "busybox.tar", "k3rs.test/busybox:1");
    rt.import_dir(&images).await[0].1.as_ref().unwrap();

    let mut cni = CniConfig::new(tmp.path().join("agent/cni"), "10.88.42.0/24");
    cni.bridge = "k3rst42".into();
    cni.network_name = "k3rs-test42".into();
    let net = Arc::new(CniNetwork::new(
        Cni::new(cni).unwrap(),
        &tmp.path().join("run"),
    ));
    let config = Arc::new(PodConfig {
        node_name: "n1".into(),
        host_ip: "127.0.0.1".parse().unwrap(),
        pods_dir: tmp.path().join("agent/pods"),
        log_dir: tmp.path().join("pods-logs"),
        cgroup_root: "/k3rs-test".into(),
        cluster_dns: None,
        cluster_domain: "cluster.local".into(),
        backoff_initial: Duration::from_millis(400),
        backoff_max: Duration::from_millis(1600),
    });
    let deps = Deps {
        sources: None,
        runtime: rt.clone(),
        network: net.clone(),
        config: config.clone(),
        events: Arc::new(k3rs::agent::events::MemoryEvents::default()),
    };
    let uid = uuid::Uuid::new_v4().to_string();
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "default", "uid": uid},
        "spec": {
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 2,
            "volumes": [{"name": "data", "emptyDir": {}}],
            "initContainers": [{"name": "init", "image": "k3rs.test/busybox:1", "imagePullPolicy": "Never",
                "command": ["/bin/sh", "-c", "echo from-init > /data/index.html"],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "containers": [
                {"name": "web", "image": "k3rs.test/busybox:1", "imagePullPolicy": "Never",
                 "command": ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/data"],
                 "readinessProbe": {"httpGet": {"path": "/index.html", "port": 8080}, "periodSeconds": 1},
                 "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                {"name": "crash", "image": "k3rs.test/busybox:1", "imagePullPolicy": "Never",
                 "command": ["/bin/sh", "-c", "echo crashing; exit 1"]}
            ]
        }
    }))
    .unwrap();

    let created = std::time::Instant::now();
    let mut h = pod_worker::spawn(Arc::new(pod), deps);
    let mut status = h.status.clone();
    let web_running = |s: &k8s_openapi::api::core::v1::PodStatus| {
        s.container_statuses
            .iter()
            .flatten()
            .any(|c| c.name == "web" && c.state.as_ref().is_some_and(|st| st.running.is_some()))
    };
    let st = tokio::time::timeout(Duration::from_secs(20), status.wait_for(|s| web_running(s)))
        .await
        .expect("web container running")
        .unwrap()
        .clone();
    let start_latency = created.elapsed();
    let ip: std::net::IpAddr = st.pod_ip.as_deref().unwrap().parse().unwrap();
    assert!(ip.to_string().starts_with("10.88.42."));

    let mut body = None;
    for _ in 0..50 {
        body = http_get(ip, 8080, "/index.html");
        if body.as_deref().is_some_and(|b| b.contains("from-init")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        body.unwrap_or_default().contains("from-init"),
        "pod IP answers HTTP from the host"
    );

    tokio::time::timeout(
        Duration::from_secs(10),
        status.wait_for(|s| {
            s.container_statuses
                .iter()
                .flatten()
                .any(|c| c.name == "web" && c.ready)
        }),
    )
    .await
    .expect("readiness probe (httpGet on the pod IP) passes")
    .unwrap();
    let ids = h.container_ids();
    let out = rt
        .exec(
            &ids["web"],
            &["/bin/sh".into(), "-c".into(), "hostname; exit 7".into()],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, 7);
    assert_eq!(String::from_utf8_lossy(&out.output), "web\n");

    // The crashing container restarts with growing back-off: 400 ms, then 800 ms.
    let mut starts = Vec::new();
    for n in 1..=2 {
        tokio::time::timeout(
            Duration::from_secs(20),
            status.wait_for(|s| {
                s.container_statuses
                    .iter()
                    .flatten()
                    .any(|c| c.name == "crash" && c.restart_count >= n)
            }),
        )
        .await
        .expect("crash container restarted")
        .unwrap();
        starts.push(std::time::Instant::now());
    }
    let gap = starts[1] - starts[0];
    assert!(
        gap >= Duration::from_millis(800),
        "second back-off is doubled: {gap:?}"
    );
    let log_dir = tmp
        .path()
        .join(format!("pods-logs/default_web_{uid}/crash"));
    let log0 = std::fs::read_to_string(log_dir.join("0.log")).unwrap();
    assert!(log0.contains(" stdout F crashing\n"), "{log0}");
    assert!(log_dir.join("1.log").exists());

    let rss = rss_kib();
    h.terminate(Some(Duration::from_secs(2)));
    tokio::time::timeout(Duration::from_secs(20), h.terminated())
        .await
        .expect("pod stopped");

    assert!(
        rt.list_containers("io.kubernetes.pod.uid", &uid)
            .await
            .unwrap()
            .is_empty()
    );
    let tasks = ctr_cli(&socket, &["tasks", "ls", "-q"]);
    assert!(tasks.trim().is_empty(), "tasks left: {tasks}");
    let snapshots = ctr_cli(&socket, &["snapshots", "ls"]);
    assert!(
        !snapshots.contains("Active"),
        "active snapshots left: {snapshots}"
    );
    assert!(!std::path::Path::new(&format!("/run/netns/k3rs-{uid}")).exists());
    let ipam = tmp.path().join("agent/cni/ipam/k3rs-test42");
    let leftover: Vec<String> = std::fs::read_dir(&ipam)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        !leftover.iter().any(|f| f.starts_with("10.88.42.")),
        "ip allocations left: {leftover:?}"
    );
    assert!(!config.pods_dir.join(&uid).exists());

    eprintln!(
        "MEASURE pod start latency (create -> web running, local image, init container first): {start_latency:?}; test process RSS {rss} KiB"
    );
    let _ = std::process::Command::new("ip")
        .args(["link", "del", "k3rst42"])
        .status();
    shutdown.cancel();
    supervised.stopped().await;
}
