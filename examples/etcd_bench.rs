//! Benchmarks of etcd v3 endpoints with the Rust `etcd-client` crate: puts with 1/16/256
//! clients, linearizable and serializable ranges, watch fan-out; throughput and p50/p99
//! latency per row. Several targets run one after the other and the table compares them in
//! pairs (1st with 2nd, 3rd with 4th, ...).
//!
//! ```text
//! cargo run --release --example etcd_bench -- [--secs 3] [--rows put,range,watch] \
//!     [--repeat N] k3rs=k3rs etcd=etcd k3rs3=k3rs3 etcd3=etcd3
//! ```
//! `--repeat N` runs every target N times, each round with freshly started servers and every
//! other round in reverse order (so drift of the machine does not favour one side), and
//! reports per row the median of the rounds plus each round's ratio: single 3-second runs
//! on a small VM scatter by ±15 %, for etcd as much as for k3rs.
//! A target is `label=WHAT`:
//! - `host:port` — a running server;
//! - `inproc` — the k3rs store behind a one-member raft group, serving the etcd API in this
//!   process (quick relative checks in debug builds);
//! - `k3rs` / `k3rs3` — one / three `k3rs server --disable-agent` processes on 127.0.0.1
//!   (and .2, .3), the others joining the first with `--server`/`--token`; the binary is
//!   `$K3RS_BIN` or `k3rs` beside this example's directory (`target/<profile>/k3rs`);
//! - `etcd` (or `spawn`) / `etcd3` — Debian's `etcd` with one / three members on 127.0.0.1
//!   (and .2, .3), a static initial cluster.
//!
//! Every client talks to the leader (found with the Maintenance `Status` call), so the
//! three-member rows measure replication, not request forwarding.

use etcd_client::{Client, GetOptions, WatchOptions};
use k3rs::store::StoreOptions;
use k3rs::store::raft::{self, Bootstrap, RaftConfig};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Target {
    label: String,
    /// The leader's client endpoint.
    endpoint: String,
    _dir: Option<tempfile::TempDir>,
    children: Vec<Child>,
}

impl Drop for Target {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port(ip: &str) -> Res<u16> {
    Ok(std::net::TcpListener::bind(format!("{ip}:0"))?
        .local_addr()?
        .port())
}

fn member_ip(i: usize) -> String {
    format!("127.0.0.{}", i + 1)
}

async fn inproc(label: &str) -> Res<Target> {
    let dir = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = listener.local_addr()?.to_string();
    let (sm, core) = k3rs::store::open_state(&dir.path().join("db"), &StoreOptions::default())?;
    let cfg = RaftConfig::new(
        dir.path().join("raft"),
        "bench",
        format!("127.0.0.1:{}", free_port("127.0.0.1")?),
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
        _dir: Some(dir),
        children: Vec::new(),
    })
}

/// Waits until a put through `endpoint` succeeds (3 min: a debug build joining on a loaded
/// machine is slow).
async fn wait_writable(endpoint: &str) -> Res<()> {
    let deadline = Instant::now() + Duration::from_secs(180);
    while Instant::now() < deadline {
        if let Ok(mut c) = Client::connect([endpoint], None).await
            && c.put("bench-ready", "1", None).await.is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("{endpoint} did not accept a write").into())
}

/// The endpoint (of `endpoints`) whose member leads, once all of them agree on one.
async fn leader_of(endpoints: &[String]) -> Res<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let mut leader = None;
        let mut leaders = Vec::new();
        for ep in endpoints {
            let Ok(mut c) = Client::connect([ep.as_str()], None).await else {
                continue;
            };
            let Ok(s) = c.status().await else { continue };
            let me = s.header().map(|h| h.member_id()).unwrap_or_default();
            leaders.push(s.leader());
            if me != 0 && me == s.leader() {
                leader = Some(ep.clone());
            }
        }
        if leaders.len() == endpoints.len()
            && leaders.iter().all(|l| *l != 0 && *l == leaders[0])
            && let Some(ep) = leader
        {
            return Ok(ep);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("no agreed leader".into())
}

async fn spawn_etcd(label: &str, members: usize) -> Res<Target> {
    let dir = tempfile::tempdir()?;
    let mut peers = Vec::new();
    let mut clients = Vec::new();
    for i in 0..members {
        let ip = member_ip(i);
        peers.push(format!("http://{ip}:{}", free_port(&ip)?));
        clients.push(format!("{ip}:{}", free_port(&ip)?));
    }
    let cluster: Vec<String> = peers
        .iter()
        .enumerate()
        .map(|(i, p)| format!("m{i}={p}"))
        .collect();
    let mut children = Vec::new();
    for i in 0..members {
        children.push(
            Command::new("etcd")
                .args(["--name", &format!("m{i}")])
                .arg("--data-dir")
                .arg(dir.path().join(format!("m{i}")))
                .args(["--listen-client-urls", &format!("http://{}", clients[i])])
                .args(["--advertise-client-urls", &format!("http://{}", clients[i])])
                .args(["--listen-peer-urls", &peers[i]])
                .args(["--initial-advertise-peer-urls", &peers[i]])
                .args(["--initial-cluster", &cluster.join(",")])
                .args(["--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", "bench"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        );
    }
    let mut t = Target {
        label: label.into(),
        endpoint: String::new(),
        _dir: Some(dir),
        children,
    };
    for c in &clients {
        wait_writable(c).await?;
    }
    t.endpoint = leader_of(&clients).await?;
    Ok(t)
}

fn k3rs_bin() -> Res<PathBuf> {
    if let Some(p) = std::env::var_os("K3RS_BIN") {
        return Ok(p.into());
    }
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .ok_or("cannot locate the k3rs binary; set K3RS_BIN")?;
    Ok(dir.join("k3rs"))
}

async fn spawn_k3rs(label: &str, members: usize) -> Res<Target> {
    let bin = k3rs_bin()?;
    let dir = tempfile::tempdir()?;
    let mut t = Target {
        label: label.into(),
        endpoint: String::new(),
        _dir: None,
        children: Vec::new(),
    };
    let mut clients = Vec::new();
    let mut join: Vec<String> = Vec::new();
    for i in 0..members {
        let ip = member_ip(i);
        let home = dir.path().join(format!("s{i}"));
        std::fs::create_dir_all(&home)?;
        let https = free_port(&ip)?;
        let client = format!("{ip}:{}", free_port(&ip)?);
        let log = std::fs::File::create(home.join("server.log"))?;
        let child = Command::new(&bin)
            .args(["server", "--disable-agent", "--bind-address", &ip])
            .args(["--node-name", &format!("bench-{i}")])
            .arg("--data-dir")
            .arg(home.join("data"))
            .args(["--https-listen-port", &https.to_string()])
            .args(["--raft-listen-port", &free_port(&ip)?.to_string()])
            .args(["--etcd-listen-address", &client])
            .arg("--write-kubeconfig")
            .arg(home.join("kubeconfig.yaml"))
            .args(&join)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        t.children.push(child);
        if let Err(e) = wait_writable(&client).await {
            let log = std::fs::read_to_string(home.join("server.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            eprintln!("{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
            return Err(e);
        }
        // Joins go one at a time: the next waits until this one is a member.
        let mut c = Client::connect([client.as_str()], None).await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while c.member_list().await?.members().len() < i + 1 {
            if Instant::now() > deadline {
                return Err(format!("member {i} did not join").into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if i == 0 {
            // Joiners dial the API port, which may open after the etcd one.
            let deadline = Instant::now() + Duration::from_secs(120);
            while tokio::net::TcpStream::connect((ip.as_str(), https))
                .await
                .is_err()
            {
                if Instant::now() > deadline {
                    return Err("the first server's API port did not open".into());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let token = std::fs::read_to_string(home.join("data/server/token"))?;
            join = vec![
                "--server".into(),
                format!("https://{ip}:{https}"),
                "--token".into(),
                token.trim().into(),
            ];
        }
        clients.push(client);
    }
    t.endpoint = leader_of(&clients).await?;
    t._dir = Some(dir);
    Ok(t)
}

/// Throughput and latency of one row.
#[derive(Clone, Copy, Default)]
struct Stats {
    ops: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn stats(ops: f64, mut lat: Vec<Duration>) -> Stats {
    lat.sort_unstable();
    let pct = |p: f64| {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i].as_secs_f64() * 1e3
    };
    Stats {
        ops,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    }
}

/// Runs `clients` loops of `op` for `secs`: operations per second and per-op latency.
async fn closed_loop<F, Fut>(endpoint: &str, clients: usize, secs: f64, op: F) -> Res<Stats>
where
    F: Fn(Client, u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Res<()>> + Send,
{
    // One connection per 16 clients, as a connection pool would.
    let mut conns = Vec::new();
    for _ in 0..clients.div_ceil(16) {
        conns.push(Client::connect([endpoint], None).await?);
    }
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..clients {
        let client = conns[i / 16].clone();
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t0 = Instant::now();
                op(client.clone(), (i as u64) << 32 | lat.len() as u64).await?;
                lat.push(t0.elapsed());
            }
            Res::Ok(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let ops = all.len() as f64 / start.elapsed().as_secs_f64();
    Ok(stats(ops, all))
}

/// `watchers` watches on one prefix (each its own gRPC stream on one connection); one writer
/// puts one key after the other for `secs`, then an end marker. Events delivered per second
/// (all watchers together) from the first put until the last watcher saw the last event, and
/// the latency from the start of each put to each watcher's receipt of its event. (A fixed
/// 500 puts lasted ≈ 0.4 s: single runs scattered by ±20 %.)
async fn watch_fanout(endpoint: &str, watchers: usize, secs: f64) -> Res<Stats> {
    let prefix = format!("fan/{}/", rand::random::<u32>());
    let end_key = format!("{prefix}end");
    let mut handles = Vec::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(watchers);
    let client = Client::connect([endpoint], None).await?;
    for _ in 0..watchers {
        let mut c = client.clone();
        let prefix = prefix.clone();
        let end_key = end_key.clone();
        let ready = ready_tx.clone();
        handles.push(tokio::spawn(async move {
            let mut stream = c
                .watch(prefix.as_bytes(), Some(WatchOptions::new().with_prefix()))
                .await?;
            let mut seen = Vec::new();
            loop {
                let Some(resp) = stream.message().await? else {
                    return Err("watch ended".into());
                };
                if resp.created() {
                    let _ = ready.send(()).await;
                }
                let now = Instant::now();
                for e in resp.events() {
                    let key = e.kv().map(|kv| kv.key()).unwrap_or_default();
                    if key == end_key.as_bytes() {
                        return Res::Ok(seen);
                    }
                    let i: usize =
                        std::str::from_utf8(&key[prefix.len().min(key.len())..])?.parse()?;
                    seen.push((i, now));
                }
            }
        }));
    }
    for _ in 0..watchers {
        ready_rx.recv().await.ok_or("watcher failed")?;
    }
    let mut writer = client.clone();
    let mut put_at = Vec::new();
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    while Instant::now() < deadline {
        put_at.push(Instant::now());
        writer
            .put(
                format!("{prefix}{}", put_at.len() - 1),
                "v".repeat(100),
                None,
            )
            .await?;
    }
    writer.put(end_key, "", None).await?;
    let mut last = start;
    let mut lat = Vec::new();
    for h in handles {
        let seen = h.await??;
        if seen.len() != put_at.len() {
            return Err(format!("a watcher saw {} of {} events", seen.len(), put_at.len()).into());
        }
        for (i, at) in seen {
            last = last.max(at);
            lat.push(at - *put_at.get(i).ok_or("event for a key never put")?);
        }
    }
    Ok(stats(lat.len() as f64 / (last - start).as_secs_f64(), lat))
}

async fn run(t: &Target, secs: f64, only: &[String]) -> Res<Vec<(String, Stats)>> {
    let ep = t.endpoint.as_str();
    let mut rows = Vec::new();
    let wanted = |kind: &str| only.is_empty() || only.iter().any(|o| o == kind);
    for clients in [1, 16, 256].into_iter().filter(|_| wanted("put")) {
        let v = "x".repeat(256);
        let s = closed_loop(ep, clients, secs, move |mut c, n| {
            let v = v.clone();
            async move {
                c.put(format!("bench/{:016x}", n % 10_000), v, None).await?;
                Ok(())
            }
        })
        .await?;
        rows.push((format!("put, {clients} clients (256 B values)"), s));
    }
    for (name, serializable) in [("linearizable", false), ("serializable", true)]
        .into_iter()
        .filter(|_| wanted("range"))
    {
        let s = closed_loop(ep, 16, secs, move |mut c, n| async move {
            let mut o = GetOptions::new();
            if serializable {
                o = o.with_serializable();
            }
            c.get(format!("bench/{:016x}", n % 10_000), Some(o)).await?;
            Ok(())
        })
        .await?;
        rows.push((format!("range one key, {name}, 16 clients"), s));
    }
    // Not in the default table: one client's serializable read is the round trip through
    // the gRPC layer alone (no raft, no disk), for telling RPC overhead from store time.
    if only.iter().any(|o| o == "rpc") {
        let s = closed_loop(ep, 1, secs, move |mut c, n| async move {
            let o = GetOptions::new().with_serializable();
            c.get(format!("bench/{:016x}", n % 10_000), Some(o)).await?;
            Ok(())
        })
        .await?;
        rows.push(("range one key, serializable, 1 client".into(), s));
    }
    if wanted("watch") {
        let s = watch_fanout(ep, 100, secs).await?;
        rows.push((
            "watch fan-out, 100 watchers, one writer (events/s)".into(),
            s,
        ));
    }
    eprintln!("# {} done", t.label);
    Ok(rows)
}

/// Per target: its label and, per row, the row's name and one `Stats` per round.
type Results = Vec<(String, Vec<(String, Vec<Stats>)>)>;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The median of each figure over the rounds.
fn summary(rounds: &[Stats]) -> Stats {
    Stats {
        ops: median(rounds.iter().map(|s| s.ops).collect()),
        p50_ms: median(rounds.iter().map(|s| s.p50_ms).collect()),
        p99_ms: median(rounds.iter().map(|s| s.p99_ms).collect()),
    }
}

type Rows = (String, Vec<(String, Vec<Stats>)>);

fn print_pair(a: &Rows, b: Option<&Rows>) {
    let (la, ra) = a;
    let rounds = ra.first().map_or(1, |(_, r)| r.len());
    print!("| benchmark | {la} ops/s | {la} p50 ms | {la} p99 ms |");
    if let Some((lb, _)) = b {
        print!(" {lb} ops/s | {lb} p50 ms | {lb} p99 ms | {la}/{lb} ops | target met |");
        if rounds > 1 {
            print!(" {la}/{lb} per round |");
        }
    }
    println!();
    let cols = match b {
        Some(_) if rounds > 1 => 9,
        Some(_) => 8,
        None => 3,
    };
    println!("|---|{}", "---:|".repeat(cols));
    for (i, (name, runs)) in ra.iter().enumerate() {
        let s = summary(runs);
        print!(
            "| {name} | {:.0} | {:.2} | {:.2} |",
            s.ops, s.p50_ms, s.p99_ms
        );
        if let Some((_, rb)) = b
            && let Some((_, other)) = rb.get(i)
        {
            let o = summary(other);
            let ratio = s.ops / o.ops;
            let met = ratio >= 1.0 && s.p99_ms <= o.p99_ms;
            print!(
                " {:.0} | {:.2} | {:.2} | {ratio:.2} | {} |",
                o.ops,
                o.p50_ms,
                o.p99_ms,
                if met { "yes" } else { "no" }
            );
            if rounds > 1 {
                let per: Vec<String> = runs
                    .iter()
                    .zip(other)
                    .map(|(x, y)| format!("{:.2}", x.ops / y.ops))
                    .collect();
                print!(" {} |", per.join(" "));
            }
        }
        println!();
    }
    println!();
}

#[tokio::main]
async fn main() -> Res<()> {
    let mut secs = 3.0;
    let mut repeat = 1usize;
    let mut specs = Vec::new();
    let mut only = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--secs" {
            secs = args.next().ok_or("--secs needs a value")?.parse()?;
        } else if a == "--repeat" {
            repeat = args.next().ok_or("--repeat needs a value")?.parse()?;
            if repeat == 0 {
                return Err("--repeat must be at least 1".into());
            }
        } else if a == "--rows" {
            let v = args.next().ok_or("--rows needs a value")?;
            only = v.split(',').map(String::from).collect();
        } else {
            specs.push(a);
        }
    }
    if specs.is_empty() {
        specs = vec!["k3rs=inproc".into(), "etcd=etcd".into()];
    }
    // Every spec is checked before the first server starts.
    let targets: Vec<(&str, &str)> = specs
        .iter()
        .map(|spec| spec.split_once('=').ok_or("targets are label=WHAT"))
        .collect::<Result<_, _>>()?;
    let mut results: Results = targets
        .iter()
        .map(|(label, _)| (label.to_string(), Vec::new()))
        .collect();
    for round in 0..repeat {
        let mut order: Vec<usize> = (0..targets.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let (label, what) = targets[i];
            let target = match what {
                "inproc" => inproc(label).await?,
                "etcd" | "spawn" => spawn_etcd(label, 1).await?,
                "etcd3" => spawn_etcd(label, 3).await?,
                "k3rs" => spawn_k3rs(label, 1).await?,
                "k3rs3" => spawn_k3rs(label, 3).await?,
                ep => Target {
                    label: label.into(),
                    endpoint: ep.into(),
                    _dir: None,
                    children: Vec::new(),
                },
            };
            let rows = run(&target, secs, &only).await?;
            drop(target);
            let slot = &mut results[i].1;
            for (n, (name, stats)) in rows.into_iter().enumerate() {
                match slot.get_mut(n) {
                    Some((_, runs)) => runs.push(stats),
                    None => slot.push((name, vec![stats])),
                }
            }
        }
    }
    for pair in results.chunks(2) {
        print_pair(&pair[0], pair.get(1));
    }
    Ok(())
}
