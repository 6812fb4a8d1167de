//! The agent against a real `k3rs server` (needs root, containerd, CNI plugins): node
//! registration and lease, a pod bound to the node runs and reports status, graceful
//! deletion is finished by the agent.

mod common;

use common::images::build_busybox_image;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

struct Server(std::process::Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_for<T>(what: &str, secs: u64, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_registers_the_node_runs_a_bound_pod_and_finishes_its_deletion() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let port = 20000 + (std::process::id() % 20000) as u16;
    let kubeconfig = tmp.path().join("kubeconfig.yaml");
    let server = Server(
        std::process::Command::new(env!("CARGO_BIN_EXE_k3rs"))
            .args(["server", "--disable-agent", "--bind-address", "127.0.0.1"])
            // The node-lifecycle controller allocates the node's podCIDR from this.
            .args(["--cluster-cidr", "10.88.43.0/24"])
            .arg("--https-listen-port")
            .arg(port.to_string())
            .arg("--etcd-listen-address")
            .arg(format!("127.0.0.1:{}", port + 1))
            .arg("--raft-listen-port")
            .arg((port + 2).to_string())
            .arg("-d")
            .arg(tmp.path().join("data"))
            .arg("-o")
            .arg(&kubeconfig)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(tmp.path().join("server.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_for("kubeconfig", 30, async || kubeconfig.exists().then_some(())).await;

    let data = tmp.path().join("data");
    let images = data.join("agent/images");
    std::fs::create_dir_all(&images).unwrap();
    build_busybox_image(&images, "busybox.tar", "k3rs.test/busybox:1");
    let node_name = format!("agent-test-{}", std::process::id());
    let mut cfg = k3rs::agent::AgentConfig::new(
        data.clone(),
        node_name.clone(),
        "127.0.0.1".parse().unwrap(),
        kubeconfig.clone(),
    );
    cfg.cni_bridge = "k3rst43".into();
    cfg.log_dir = tmp.path().join("pod-logs");
    cfg.run_dir = tmp.path().join("run");
    cfg.cluster_dns = None;
    cfg.logger_binary = Some(env!("CARGO_BIN_EXE_k3rs").into());
    let endpoint = std::net::SocketAddr::from(([127, 0, 0, 1], port + 3));
    cfg.endpoint = Some(endpoint);
    // Independent of how full the host's disk is (no disk pressure, no image GC).
    cfg.eviction.hard =
        k3rs::agent::eviction::parse_eviction_hard("memory.available<100Mi").unwrap();
    cfg.eviction.image_gc.high_threshold_percent = 100;
    let shutdown = CancellationToken::new();
    let agent = tokio::spawn(k3rs::agent::run(cfg, shutdown.clone()));

    let kc = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap(),
    )
    .unwrap();
    let nodes: Api<Node> = Api::all(client.clone());
    // Ready, and the podCIDR the node-lifecycle controller allocates.
    let node = wait_for("node ready", 30, async || {
        let n = nodes.get_opt(&node_name).await.ok()??;
        n.spec.as_ref()?.pod_cidr.as_ref()?;
        let ready = n
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        ready.then_some(n)
    })
    .await;
    let info = node.status.as_ref().unwrap().node_info.as_ref().unwrap();
    assert!(
        info.container_runtime_version
            .starts_with("containerd://1.6"),
        "{info:?}"
    );
    assert_eq!(
        node.spec.as_ref().unwrap().pod_cidr.as_deref(),
        Some("10.88.43.0/24")
    );
    assert_eq!(
        node.metadata.labels.as_ref().unwrap()["kubernetes.io/hostname"],
        node_name
    );
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    wait_for("lease", 20, async || {
        leases.get_opt(&node_name).await.ok()?
    })
    .await;

    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), "default");
    let cm = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "web-content", "namespace": "default"},
        "data": {"index.html": "from-configmap\n"}
    }))
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "nodeName": node_name,
            "terminationGracePeriodSeconds": 1,
            "volumes": [{"name": "content", "configMap": {"name": "web-content"}}],
            "containers": [{"name": "web", "image": "k3rs.test/busybox:1",
                "command": ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"],
                "volumeMounts": [{"name": "content", "mountPath": "/www"}]},
                {"name": "talker", "image": "k3rs.test/busybox:1",
                "command": ["/bin/sh", "-c", "echo hello-logs; exec sleep 3600"]}]
        }
    }))
    .unwrap();
    let created = Instant::now();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let running = wait_for("pod running", 30, async || {
        let p = pods.get_opt("web").await.ok()??;
        let st = p.status?;
        (st.phase.as_deref() == Some("Running") && st.pod_ip.is_some()).then_some(st)
    })
    .await;
    let latency = created.elapsed();
    let c = &running.container_statuses.as_ref().unwrap()[0];
    assert!(c.ready);
    assert!(
        c.container_id
            .as_ref()
            .unwrap()
            .starts_with("containerd://")
    );
    assert!(c.image_id.starts_with("k3rs.test/busybox@sha256:"));
    let ip = running.pod_ip.clone().unwrap();
    assert!(ip.starts_with("10.88.43."), "{ip}");
    let uid = pods.get("web").await.unwrap().metadata.uid.unwrap();
    let body = wait_for("http from the pod", 10, async || {
        let out = std::process::Command::new("curl")
            .args(["-s", "-m", "1", &format!("http://{ip}:8080/index.html")])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    })
    .await;
    assert_eq!(body, "from-configmap\n", "the ConfigMap volume is served");
    let logs = wait_for("logs from the agent endpoint", 10, async || {
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "-f",
                &format!("http://{endpoint}/containerLogs/default/web/talker?tailLines=5"),
            ])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && !text.is_empty()).then_some(text)
    })
    .await;
    assert_eq!(logs, "hello-logs\n");
    assert!(std::path::Path::new(&format!("/run/netns/k3rs-{uid}")).exists());

    pods.delete("web", &DeleteParams::default()).await.unwrap();
    wait_for("pod gone", 30, async || match pods.get_opt("web").await {
        Ok(None) => Some(()),
        _ => None,
    })
    .await;
    // The API object goes only after the agent stopped and cleaned up the pod.
    assert!(!std::path::Path::new(&format!("/run/netns/k3rs-{uid}")).exists());
    let ctr = std::process::Command::new("ctr")
        .arg("--address")
        .arg(data.join("agent/containerd/containerd.sock"))
        .args(["-n", "k8s.io", "containers", "ls", "-q"])
        .output()
        .unwrap();
    assert!(ctr.status.success());
    assert!(
        String::from_utf8_lossy(&ctr.stdout).trim().is_empty(),
        "containers left"
    );

    eprintln!("MEASURE api pod start latency (create via API -> Running in API): {latency:?}");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), agent)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let _ = std::process::Command::new("ip")
        .args(["link", "del", "k3rst43"])
        .status();
    drop(server);
}
