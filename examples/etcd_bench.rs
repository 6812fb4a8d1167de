//! Benchmarks of an etcd v3 endpoint with the Rust `etcd-client` crate: puts with 1/16/256
//! clients, linearizable and serializable ranges, watch fan-out. Several targets run in one
//! go and print a Markdown table with the ratio of the first target to the second.
//!
//! ```text
//! cargo run --example etcd_bench -- [--secs 3] k3rs=inproc etcd=spawn
//! ```
//! A target is `label=host:port` (a running server), `label=inproc` (the k3rs store behind a
//! one-member raft group, serving the etcd API in this process) or `label=spawn` (start
//! Debian's `etcd` on a scratch directory).

use etcd_client::{Client, GetOptions, WatchOptions};
use k3rs::store::StoreOptions;
use k3rs::store::raft::{self, Bootstrap, RaftConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Target {
    label: String,
    endpoint: String,
    _keep: Keep,
}

enum Keep {
    None,
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Etcd(std::process::Child, #[allow(dead_code)] tempfile::TempDir),
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Keep::Etcd(child, _) = &mut self._keep {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> Res<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn inproc(label: &str) -> Res<Target> {
    let dir = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = listener.local_addr()?.to_string();
    let (sm, core) = k3rs::store::open_state(&dir.path().join("db"), &StoreOptions::default())?;
    let cfg = RaftConfig::new(
        dir.path().join("raft"),
        "bench",
        format!("127.0.0.1:{}", free_port()?),
        "http://localhost:2380",
        Bootstrap::ClusterInit,
    );
    let node = raft::start(cfg, sm).await?;
    let store = core.into_store(Arc::new(node));
    while store.status().leader_id == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::spawn(k3rs::store::etcd::serve_listener(
        Arc::new(store),
        listener,
        tokio_util::sync::CancellationToken::new(),
    ));
    Ok(Target {
        label: label.into(),
        endpoint,
        _keep: Keep::Dir(dir),
    })
}

async fn spawn_etcd(label: &str) -> Res<Target> {
    let dir = tempfile::tempdir()?;
    let endpoint = format!("127.0.0.1:{}", free_port()?);
    let child = std::process::Command::new("etcd")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen-client-urls", &format!("http://{endpoint}")])
        .args(["--advertise-client-urls", &format!("http://{endpoint}")])
        .args([
            "--listen-peer-urls",
            &format!("http://127.0.0.1:{}", free_port()?),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let t = Target {
        label: label.into(),
        endpoint,
        _keep: Keep::Etcd(child, dir),
    };
    for _ in 0..200 {
        if let Ok(mut c) = Client::connect([&t.endpoint], None).await
            && c.put("ready", "1", None).await.is_ok()
        {
            return Ok(t);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("etcd did not start".into())
}

/// Runs `clients` loops of `op` for `secs`; returns operations per second.
async fn closed_loop<F, Fut>(endpoint: &str, clients: usize, secs: f64, op: F) -> Res<f64>
where
    F: Fn(Client, u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Res<()>> + Send,
{
    // One connection per 16 clients, as a connection pool would.
    let mut conns = Vec::new();
    for _ in 0..clients.div_ceil(16) {
        conns.push(Client::connect([endpoint], None).await?);
    }
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..clients {
        let client = conns[i / 16].clone();
        let done = done.clone();
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                op(client.clone(), (i as u64) << 32 | n).await?;
                n += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Res::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}

/// `watchers` watches on one prefix, `events` puts; events delivered per second (all
/// watchers together), from the first put until the last watcher saw the last event.
async fn watch_fanout(endpoint: &str, watchers: usize, events: usize) -> Res<f64> {
    let prefix = format!("fan/{}/", rand::random::<u32>());
    let mut handles = Vec::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(watchers);
    let client = Client::connect([endpoint], None).await?;
    for _ in 0..watchers {
        let mut c = client.clone();
        let prefix = prefix.clone();
        let ready = ready_tx.clone();
        handles.push(tokio::spawn(async move {
            let mut stream = c
                .watch(prefix, Some(WatchOptions::new().with_prefix()))
                .await?;
            let mut seen = 0;
            while seen < events {
                let Some(resp) = stream.message().await? else {
                    return Err("watch ended".into());
                };
                if resp.created() {
                    let _ = ready.send(()).await;
                }
                seen += resp.events().len();
            }
            Res::Ok(Instant::now())
        }));
    }
    for _ in 0..watchers {
        ready_rx.recv().await.ok_or("watcher failed")?;
    }
    let mut writer = client.clone();
    let start = Instant::now();
    for i in 0..events {
        writer
            .put(format!("{prefix}{i}"), "v".repeat(100), None)
            .await?;
    }
    let mut last = start;
    for h in handles {
        last = last.max(h.await??);
    }
    Ok((watchers * events) as f64 / (last - start).as_secs_f64())
}

async fn run(t: &Target, secs: f64) -> Res<Vec<(String, f64)>> {
    let ep = t.endpoint.as_str();
    let mut rows = Vec::new();
    for clients in [1, 16, 256] {
        let v = "x".repeat(256);
        let ops = closed_loop(ep, clients, secs, move |mut c, n| {
            let v = v.clone();
            async move {
                c.put(format!("bench/{:016x}", n % 10_000), v, None).await?;
                Ok(())
            }
        })
        .await?;
        rows.push((format!("put, {clients} clients (256 B values)"), ops));
    }
    for (name, serializable) in [("linearizable", false), ("serializable", true)] {
        let ops = closed_loop(ep, 16, secs, move |mut c, n| async move {
            let mut o = GetOptions::new();
            if serializable {
                o = o.with_serializable();
            }
            c.get(format!("bench/{:016x}", n % 10_000), Some(o)).await?;
            Ok(())
        })
        .await?;
        rows.push((format!("range one key, {name}, 16 clients"), ops));
    }
    let ops = watch_fanout(ep, 100, 500).await?;
    rows.push((
        "watch fan-out, 100 watchers x 500 puts (events/s)".into(),
        ops,
    ));
    println!("# {} done", t.label);
    Ok(rows)
}

#[tokio::main]
async fn main() -> Res<()> {
    let mut secs = 3.0;
    let mut specs = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--secs" {
            secs = args.next().ok_or("--secs needs a value")?.parse()?;
        } else {
            specs.push(a);
        }
    }
    if specs.is_empty() {
        specs = vec!["k3rs=inproc".into(), "etcd=spawn".into()];
    }
    let mut results = Vec::new();
    for spec in &specs {
        let (label, what) = spec.split_once('=').ok_or("targets are label=endpoint")?;
        let target = match what {
            "inproc" => inproc(label).await?,
            "spawn" => spawn_etcd(label).await?,
            ep => Target {
                label: label.into(),
                endpoint: ep.into(),
                _keep: Keep::None,
            },
        };
        let rows = run(&target, secs).await?;
        results.push((target.label.clone(), rows));
    }
    let labels: Vec<&str> = results.iter().map(|(l, _)| l.as_str()).collect();
    print!("| benchmark |");
    for l in &labels {
        print!(" {l} ops/s |");
    }
    if labels.len() >= 2 {
        print!(" {}/{} |", labels[0], labels[1]);
    }
    println!();
    println!(
        "|---|{}{}",
        "---:|".repeat(labels.len()),
        if labels.len() >= 2 { "---:|" } else { "" }
    );
    for (i, (name, _)) in results[0].1.iter().enumerate() {
        print!("| {name} |");
        for (_, rows) in &results {
            print!(" {:.0} |", rows[i].1);
        }
        if results.len() >= 2 {
            print!(" {:.2} |", results[0].1[i].1 / results[1].1[i].1);
        }
        println!();
    }
    Ok(())
}
