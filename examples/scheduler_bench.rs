//! Scheduler benchmark: starts `k3rs server --disable-agent`, registers 100 fake nodes, creates
//! one Deployment of 1,000 pods and reports the time until every pod is bound (pods/s).
//!
//! `cargo build && cargo run --example scheduler_bench` (K3RS_BIN overrides the binary path).

mod common;

use common::connect;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NODES: usize = 100;
const PODS: usize = 1000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // BENCH_KUBECONFIG: measure against an already running server instead.
    if let Ok(kc) = std::env::var("BENCH_KUBECONFIG") {
        return bench(std::path::Path::new(&kc)).await;
    }
    let bin = std::env::var("K3RS_BIN").unwrap_or_else(|_| "target/debug/k3rs".into());
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig.yaml");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let raft_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let etcd_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = Command::new(bin)
        .args(["server", "-d"])
        .arg(dir.path())
        .args(["--https-listen-port", &port.to_string(), "-o"])
        .arg(&kubeconfig)
        .arg("--disable-agent")
        // No kubelet renews the fake nodes' leases; keep them Ready for the whole run.
        .args(["--node-monitor-grace-period", "3600"])
        .args(["--raft-listen-port", &raft_port.to_string()])
        .args(["--etcd-listen-address", &format!("127.0.0.1:{etcd_port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let result = bench(&kubeconfig).await;
    let _ = child.kill();
    let _ = child.wait();
    result
}

async fn bench(kubeconfig: &std::path::Path) -> anyhow::Result<()> {
    let client = connect(kubeconfig).await?;
    let nodes: Api<Node> = Api::all(client.clone());
    let status = json!({
        "allocatable": {"cpu": "32", "memory": "64Gi", "pods": "110"},
        "capacity": {"cpu": "32", "memory": "64Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True",
            "lastHeartbeatTime": jiff::Timestamp::now().to_string()}]
    });
    for i in 0..NODES {
        let name = format!("node-{i:03}");
        let n: Node = serde_json::from_value(json!({"metadata": {"name": name}}))?;
        nodes.create(&PostParams::default(), &n).await?;
        nodes
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await?;
    }
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "bench"},
        "spec": {"replicas": PODS, "selector": {"matchLabels": {"app": "bench"}},
            "template": {"metadata": {"labels": {"app": "bench"}},
                "spec": {"containers": [{"name": "c", "image": "x",
                    "resources": {"requests": {"cpu": "10m", "memory": "10Mi"}}}]}}}
    }))?;
    let start = Instant::now();
    Api::<Deployment>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &d)
        .await?;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let (mut created_at, mut bound) = (None, 0);
    while start.elapsed() < Duration::from_secs(600) {
        let list = pods.list(&ListParams::default()).await?.items;
        if created_at.is_none() && list.len() >= PODS {
            created_at = Some(start.elapsed());
        }
        bound = list
            .iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some())
            .count();
        if bound >= PODS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = start.elapsed();
    let per_node = {
        let list = pods.list(&ListParams::default()).await?.items;
        let mut m = std::collections::HashMap::<String, usize>::new();
        for p in &list {
            if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.clone()) {
                *m.entry(n).or_default() += 1;
            }
        }
        let _ = list.first().map(|p| p.name_any());
        (m.values().min().copied(), m.values().max().copied())
    };
    println!(
        "{bound}/{PODS} pods bound on {NODES} nodes in {:.2}s ({:.0} pods/s); all created after {:.2}s; pods per node min/max {:?}",
        took.as_secs_f64(),
        bound as f64 / took.as_secs_f64(),
        created_at.map_or(f64::NAN, |t| t.as_secs_f64()),
        per_node
    );
    Ok(())
}
