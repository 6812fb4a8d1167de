//! API server benchmark: creates/s (ConfigMaps and Pods, 1 and 32 concurrent clients), list
//! latency at 1k and 10k pods (JSON, Table, protobuf) and watch fan-out to 100 watchers.
//!
//! Starts `k3rs server --disable-agent` on free ports itself unless `BENCH_KUBECONFIG` names
//! the kubeconfig of a running server (any Kubernetes API server works).
//!
//! `cargo build && cargo run --example api_bench` (K3RS_BIN overrides the binary path;
//! API_BENCH_SCALE=0.1 shrinks every count for a quick run).

mod common;

use common::connect;
use futures::{StreamExt, TryStreamExt};
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::{Client, Resource};
use serde_json::json;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn scaled(n: usize) -> usize {
    let s: f64 = std::env::var("API_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((n as f64 * s) as usize).max(1)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Ok(kc) = std::env::var("BENCH_KUBECONFIG") {
        return bench(std::path::Path::new(&kc)).await;
    }
    let bin = std::env::var("K3RS_BIN").unwrap_or_else(|_| "target/debug/k3rs".into());
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig.yaml");
    let mut child = Command::new(bin)
        .args(["server", "-d"])
        .arg(dir.path())
        .args(["--https-listen-port", &free_port()?.to_string(), "-o"])
        .arg(&kubeconfig)
        .arg("--disable-agent")
        .args(["--raft-listen-port", &free_port()?.to_string()])
        .args([
            "--etcd-listen-address",
            &format!("127.0.0.1:{}", free_port()?),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let result = bench(&kubeconfig).await;
    let _ = child.kill();
    let _ = child.wait();
    result
}

async fn namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Ok(())
}

fn configmap(i: usize) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(format!("cm-{i:05}"));
    cm.data = Some([("key".to_string(), "x".repeat(256))].into());
    cm
}

fn pod(i: usize) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": format!("pod-{i:05}"), "labels": {"app": "bench"}},
        "spec": {"schedulerName": "api-bench",
            "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9",
            "resources": {"requests": {"cpu": "10m", "memory": "10Mi"}}}]}
    }))?)
}

/// Create `n` objects built by `make` with `clients` concurrent clients; objects per second.
async fn create_many<K>(
    api: Api<K>,
    n: usize,
    clients: usize,
    make: impl Fn(usize) -> anyhow::Result<K> + Send + Sync + 'static,
) -> anyhow::Result<f64>
where
    K: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
    K: Send + Sync + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let make = Arc::new(make);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (api, next, make) = (api.clone(), next.clone(), make.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(());
                }
                api.create(&PostParams::default(), &make(i)?).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// GET `path` with `accept`; (median, min) latency over `runs` and the body size.
async fn list_latency(
    client: &Client,
    path: &str,
    accept: &str,
    runs: usize,
) -> anyhow::Result<(Duration, Duration, usize)> {
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..runs {
        let req = http::Request::get(path)
            .header(http::header::ACCEPT, accept)
            .body(kube::client::Body::empty())?;
        let start = Instant::now();
        let resp = client.send(req).await?;
        anyhow::ensure!(resp.status().is_success(), "{path}: {}", resp.status());
        let body = resp.into_body().collect().await?.to_bytes();
        times.push(start.elapsed());
        size = body.len();
    }
    times.sort();
    Ok((times[times.len() / 2], times[0], size))
}

/// 100 watchers on one namespace, `writes` ConfigMap creates: (seconds until every watcher
/// saw every event, events delivered per second).
async fn fan_out(client: &Client, watchers: usize, writes: usize) -> anyhow::Result<(f64, f64)> {
    namespace(client, "bench-watch").await?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "bench-watch");
    let rv = api
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(watchers);
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let (api, rv, ready) = (api.clone(), rv.clone(), ready_tx.clone());
        tasks.push(tokio::spawn(async move {
            let stream = api.watch(&WatchParams::default().timeout(290), &rv).await?;
            let _ = ready.send(()).await;
            let mut stream = stream.boxed();
            let mut seen = 0;
            while seen < writes {
                match stream.try_next().await? {
                    Some(WatchEvent::Added(_)) => seen += 1,
                    Some(WatchEvent::Error(e)) => anyhow::bail!("watch error: {e:?}"),
                    Some(_) => {}
                    None => anyhow::bail!("watch ended after {seen} events"),
                }
            }
            anyhow::Ok(Instant::now())
        }));
    }
    for _ in 0..watchers {
        ready_rx.recv().await;
    }
    let start = Instant::now();
    create_many(api, writes, 8, |i| Ok(configmap(i))).await?;
    let mut last = start;
    for t in tasks {
        last = last.max(t.await??);
    }
    let secs = (last - start).as_secs_f64();
    Ok((secs, (watchers * writes) as f64 / secs))
}

async fn bench(kubeconfig: &std::path::Path) -> anyhow::Result<()> {
    let client = connect(kubeconfig).await?;
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut row = |k: String, v: String| {
        println!("| {k} | {v} |");
        rows.push((k, v));
    };
    println!("| benchmark | result |\n|---|---:|");

    for (ns, clients) in [("bench-cm-1", 1), ("bench-cm-32", 32)] {
        namespace(&client, ns).await?;
        let n = scaled(if clients == 1 { 500 } else { 3000 });
        let rate = create_many(Api::namespaced(client.clone(), ns), n, clients, |i| {
            Ok(configmap(i))
        })
        .await?;
        row(
            format!("create ConfigMap, {clients} client(s), {n} objects"),
            format!("{rate:.0}/s"),
        );
    }
    namespace(&client, "bench-pod-1").await?;
    let n = scaled(500);
    let rate = create_many(Api::namespaced(client.clone(), "bench-pod-1"), n, 1, pod).await?;
    row(
        format!("create Pod, 1 client(s), {n} objects"),
        format!("{rate:.0}/s"),
    );

    for (ns, total) in [("bench-1k", scaled(1000)), ("bench-10k", scaled(10000))] {
        namespace(&client, ns).await?;
        let rate = create_many(Api::namespaced(client.clone(), ns), total, 32, pod).await?;
        row(
            format!("create Pod, 32 client(s), {total} objects"),
            format!("{rate:.0}/s"),
        );
        let path = format!("/api/v1/namespaces/{ns}/pods");
        for (label, accept) in [
            ("JSON", "application/json"),
            (
                "Table",
                "application/json;as=Table;g=meta.k8s.io;v=v1,application/json",
            ),
            ("protobuf", "application/vnd.kubernetes.protobuf"),
        ] {
            let (median, min, size) = list_latency(&client, &path, accept, 5).await?;
            row(
                format!("list {total} pods as {label} ({} KiB)", size / 1024),
                format!(
                    "{:.1} ms (min {:.1} ms)",
                    median.as_secs_f64() * 1e3,
                    min.as_secs_f64() * 1e3
                ),
            );
        }
    }

    let (watchers, writes) = (100, scaled(500));
    let (secs, rate) = fan_out(&client, watchers, writes).await?;
    row(
        format!("watch fan-out, {watchers} watchers x {writes} creates"),
        format!("all delivered after {secs:.2} s ({rate:.0} events/s)"),
    );
    Ok(())
}
