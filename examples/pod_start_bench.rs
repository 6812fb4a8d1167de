//! Agent benchmark (issue 5): pod start latency (create → Running, local image) for 1 and
//! for 30 pods at once, cleanup time, and the resident memory of a joined `k3rs agent`
//! with 0 and 30 pods (and of the server).
//!
//! Starts `k3rs server --disable-agent` on 10.97.0.1 and a `k3rs agent` in a network
//! namespace of its own (its CNI bridge and pod IPs stay out of the host's way), joined with
//! the server's token; the agent imports the busybox test image (built from Debian's
//! busybox-static, no registry) at start. Needs root, containerd and the CNI plugins.
//!
//! `cargo build --release --bin k3rs --example pod_start_bench &&
//!  K3RS_BIN=target/release/k3rs target/release/examples/pod_start_bench`
//! (K3RS_BIN defaults to target/debug/k3rs; BENCH_AGENT_LOG=debug runs the agent with that
//! RUST_LOG and keeps its log in BENCH_KEEP_DIR, if set, for a breakdown.)

mod common;
#[path = "../tests/common/images.rs"]
mod images;

use common::connect;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NETNS: &str = "k3rspodbench";
const HOST_IP: &str = "10.97.0.1";
const AGENT_IP: &str = "10.97.0.2";
const NODE: &str = "podbench";
const IMAGE: &str = "k3rs.test/busybox:1";

fn sh(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", cmd])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The agent's network namespace, joined to the host by a veth pair; removed on drop.
struct NetNs;

impl NetNs {
    fn create() -> anyhow::Result<NetNs> {
        NetNs::remove();
        let ok = sh(&format!(
            "ip netns add {NETNS} && ip link add {NETNS}h type veth peer name {NETNS}n && \
             ip link set {NETNS}n netns {NETNS} && ip addr add {HOST_IP}/24 dev {NETNS}h && \
             ip link set {NETNS}h up && ip -n {NETNS} addr add {AGENT_IP}/24 dev {NETNS}n && \
             ip -n {NETNS} link set {NETNS}n up && ip -n {NETNS} link set lo up && \
             ip -n {NETNS} route add default via {HOST_IP}"
        ));
        anyhow::ensure!(ok, "cannot create network namespace {NETNS} (root needed)");
        Ok(NetNs)
    }

    fn remove() {
        sh(&format!(
            "ip link del {NETNS}h 2>/dev/null; ip netns del {NETNS} 2>/dev/null; true"
        ));
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        NetNs::remove();
    }
}

/// A child process killed (SIGTERM, then SIGKILL after 20 s) on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port(ip: &str) -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind(format!("{ip}:0"))?
        .local_addr()?
        .port())
}

/// VmRSS of `pid` in MiB.
fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(label: &str, mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    format!(
        "{label}: p50 {:.3}s p99 {:.3}s max {:.3}s",
        pct(&v, 0.5),
        pct(&v, 0.99),
        v.last().copied().unwrap_or(f64::NAN)
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    anyhow::ensure!(
        nix::unistd::geteuid().is_root(),
        "needs root (network namespace, containerd)"
    );
    let bin =
        PathBuf::from(std::env::var("K3RS_BIN").unwrap_or_else(|_| "target/debug/k3rs".into()));
    let bin = std::fs::canonicalize(&bin)?;
    let tmp = tempfile::tempdir()?;
    let dir = match std::env::var("BENCH_KEEP_DIR") {
        Ok(d) => {
            let d = PathBuf::from(d);
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d)?;
            d
        }
        Err(_) => tmp.path().to_path_buf(),
    };
    let _netns = NetNs::create()?;
    let server_dir = dir.join("server");
    std::fs::create_dir_all(&server_dir)?;
    let port = free_port(HOST_IP)?;
    let kubeconfig = server_dir.join("kubeconfig.yaml");
    let server = Proc(
        Command::new(&bin)
            .args(["server", "--disable-agent", "--bind-address", HOST_IP])
            .args(["--node-name", "podbench-server"])
            .arg("--data-dir")
            .arg(server_dir.join("data"))
            .args(["--https-listen-port", &port.to_string()])
            .args(["--raft-listen-port", &free_port(HOST_IP)?.to_string()])
            .args([
                "--etcd-listen-address",
                &format!("{HOST_IP}:{}", free_port(HOST_IP)?),
            ])
            .arg("--write-kubeconfig")
            .arg(&kubeconfig)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("server.log"))?)
            .spawn()?,
    );
    let client = connect(&kubeconfig).await?;
    let token = std::fs::read_to_string(server_dir.join("data/server/token"))?;

    let agent_dir = dir.join("agent");
    let images = agent_dir.join("agent/images");
    std::fs::create_dir_all(&images)?;
    images::build_busybox_image(&images, "busybox.tar", IMAGE);
    let mut agent_cmd = Command::new("nsenter");
    // Only the network namespace: `ip netns exec` would remount /sys and hide the cgroups.
    agent_cmd
        .arg(format!("--net=/run/netns/{NETNS}"))
        .arg(&bin)
        .args(["agent", "--server", &format!("https://{HOST_IP}:{port}")])
        .args(["--token", token.trim()])
        .arg("--data-dir")
        .arg(&agent_dir)
        .args(["--node-name", NODE, "--node-ip", AGENT_IP])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("agent.log"))?);
    if let Ok(level) = std::env::var("BENCH_AGENT_LOG") {
        agent_cmd.env("RUST_LOG", level);
    }
    let agent = Proc(agent_cmd.spawn()?);
    // nsenter execs the agent: same pid.
    let agent_pid = agent.0.id();
    let server_pid = server.0.id();
    wait_node_ready(&client).await?;
    // Let start-up work (image import, first list) settle before the idle reading.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_rss = rss_mib(agent_pid);
    println!(
        "agent RSS with 0 pods: {idle_rss:.1} MiB; server RSS: {:.1} MiB",
        rss_mib(server_pid)
    );

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for n in [1usize, 30] {
        let round = format!("r{n}");
        let started = start_round(&pods, &round, n).await?;
        println!("{n} pod(s), create → Running:");
        println!("  {}", summary("client-observed", started.client));
        println!("  {}", summary("  of which create → bound", started.bound));
        println!("  {}", summary("  of which bound → Running", started.agent));
        println!(
            "  {}",
            summary(
                "server timestamps (1 s resolution: creationTimestamp → startedAt)",
                started.server
            )
        );
        if n == 30 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            println!(
                "agent RSS with 30 pods: {:.1} MiB; server RSS: {:.1} MiB",
                rss_mib(agent_pid),
                rss_mib(server_pid)
            );
        }
        let took = delete_round(&pods, &round).await?;
        println!(
            "  cleanup (delete → gone, incl. the 1 s grace period of sleep as PID 1): {took:.3}s"
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "agent RSS with 0 pods after the runs: {:.1} MiB",
        rss_mib(agent_pid)
    );
    drop(agent);
    drop(server);
    Ok(())
}

async fn wait_node_ready(client: &Client) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        anyhow::ensure!(Instant::now() < deadline, "agent node never became Ready");
        let ready = nodes.get_opt(NODE).await.ok().flatten().is_some_and(|n| {
            let has_cidr = n.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()).is_some();
            let ready = n
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            has_cidr && ready
        });
        if ready {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

struct Started {
    /// Seconds from sending the create to seeing phase Running in the watch.
    client: Vec<f64>,
    /// Seconds from sending the create to seeing spec.nodeName set (scheduler).
    bound: Vec<f64>,
    /// Seconds from seeing the binding to seeing phase Running (agent).
    agent: Vec<f64>,
    /// Seconds from creationTimestamp to the container's startedAt (server clock, 1 s steps).
    server: Vec<f64>,
}

fn bench_pod(round: &str, i: usize) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": format!("bench-{round}-{i}"), "labels": {"bench": round}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": IMAGE, "command": ["/bin/busybox", "sleep", "3600"]}]
        }
    }))?)
}

fn is_running(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

/// Creates `n` pods at once and waits (120 s) until all are Running.
async fn start_round(pods: &Api<Pod>, round: &str, n: usize) -> anyhow::Result<Started> {
    let cfg = watcher::Config::default().labels(&format!("bench={round}"));
    let mut stream = watcher::watcher(pods.clone(), cfg).boxed();
    // The watch is established (empty initial list) before the first create.
    loop {
        match stream.next().await {
            Some(Ok(Event::InitDone)) => break,
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => anyhow::bail!("pod watch ended"),
        }
    }
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let creates = (0..n).map(|i| {
        let pods = pods.clone();
        let pod = bench_pod(round, i);
        async move {
            let pod = pod?;
            let at = Instant::now();
            pods.create(&PostParams::default(), &pod).await?;
            anyhow::Ok((pod.name_any(), at))
        }
    });
    for r in futures::future::join_all(creates).await {
        let (name, at) = r?;
        sent.insert(name, at);
    }
    let mut bound: HashMap<String, Instant> = HashMap::new();
    let mut running: HashMap<String, (Instant, Pod)> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while running.len() < n {
        let ev = tokio::time::timeout_at(deadline, stream.next())
            .await
            .map_err(|_| anyhow::anyhow!("only {}/{n} pods Running after 120 s", running.len()))?;
        match ev {
            Some(Ok(Event::Apply(p) | Event::InitApply(p))) => {
                let now = Instant::now();
                if p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some() {
                    bound.entry(p.name_any()).or_insert(now);
                }
                if is_running(&p) {
                    running.entry(p.name_any()).or_insert((now, p));
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => eprintln!("watch: {e}"),
            None => anyhow::bail!("pod watch ended"),
        }
    }
    let mut out = Started {
        client: Vec::new(),
        bound: Vec::new(),
        agent: Vec::new(),
        server: Vec::new(),
    };
    for (name, (at, p)) in running {
        if let Some(t0) = sent.get(&name) {
            out.client.push(at.duration_since(*t0).as_secs_f64());
            let b = bound.get(&name).copied().unwrap_or(at);
            out.bound.push(b.duration_since(*t0).as_secs_f64());
            out.agent.push(at.duration_since(b).as_secs_f64());
        }
        let created = p.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let started = p
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first())
            .and_then(|c| c.state.as_ref())
            .and_then(|s| s.running.as_ref())
            .and_then(|r| r.started_at.as_ref())
            .map(|t| t.0);
        if let (Some(c), Some(s)) = (created, started) {
            out.server.push(s.duration_since(c).as_secs_f64());
        }
    }
    Ok(out)
}

/// Deletes the round's pods and waits (120 s) until they are gone from the API (the agent
/// finishes each deletion once its containers and network are cleaned up).
async fn delete_round(pods: &Api<Pod>, round: &str) -> anyhow::Result<f64> {
    let t0 = Instant::now();
    let lp = ListParams::default().labels(&format!("bench={round}"));
    let names: Vec<String> = pods
        .list(&lp)
        .await?
        .items
        .iter()
        .map(|p| p.name_any())
        .collect();
    let dp = DeleteParams::default();
    let deletes = names.iter().map(|n| pods.delete(n, &dp));
    for r in futures::future::join_all(deletes).await {
        r?;
    }
    loop {
        anyhow::ensure!(
            t0.elapsed() < Duration::from_secs(120),
            "pods not gone after 120 s"
        );
        if pods.list(&lp).await?.items.is_empty() {
            return Ok(t0.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
