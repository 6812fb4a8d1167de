//! Store benchmark: puts with 1/16/256 concurrent writers (throughput, p50/p99 latency),
//! linearizable point reads and prefix lists, and watch delivery throughput.
//!
//! Runs over `testing::FakeReplicator` (proposals applied directly), or with `--raft` over a
//! single-member raft group (`store::open`: WAL with fsync, then apply). Usage:
//! `cargo run --example store_bench -- [puts] [--raft] [--members 3]` (default 3000 puts per
//! writer configuration; `--members 3` = a three-member group on 127.0.0.1, clients on the
//! leader).

use std::sync::Arc;
use std::time::{Duration, Instant};

use k3rs::store::raft::Bootstrap;
use k3rs::store::state_machine::Replicator;
use k3rs::store::testing::FakeReplicator;
use k3rs::store::{
    PutRequest, RangeRequest, Store, StoreConfig, StoreOptions, WatchRequest, open, open_state,
};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(name: &str, n: usize, elapsed: Duration, lat: &mut [Duration]) {
    lat.sort_unstable();
    println!(
        "{name:<28} {n:>7} ops {:>10.0} ops/s  p50 {:>9.1?}  p99 {:>9.1?}",
        n as f64 / elapsed.as_secs_f64(),
        percentile(lat, 0.50),
        percentile(lat, 0.99),
    );
}

async fn bench_puts(store: &Store, writers: usize, total: usize) {
    let per = total.div_ceil(writers);
    let value = vec![b'x'; 256];
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for i in 0..per {
                let t = Instant::now();
                store
                    .put(PutRequest {
                        key: format!("/bench/{writers}/{w}/{i}").into_bytes(),
                        value: value.clone(),
                        ..PutRequest::default()
                    })
                    .await
                    .expect("put");
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("writer task"));
    }
    report(
        &format!("put, {writers} writers"),
        lat.len(),
        started.elapsed(),
        &mut lat,
    );
}

async fn bench_ranges(store: &Store, n: usize) {
    let mut lat = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        let r = store
            .range(RangeRequest {
                key: format!("/bench/1/0/{}", i % 100).into_bytes(),
                ..RangeRequest::default()
            })
            .await
            .expect("range");
        assert_eq!(r.kvs.len(), 1);
        lat.push(t.elapsed());
    }
    report("range 1 key (linearizable)", n, started.elapsed(), &mut lat);

    let lists = (n / 50).max(5);
    let mut lat = Vec::with_capacity(lists);
    let started = Instant::now();
    let mut keys = 0;
    for _ in 0..lists {
        let t = Instant::now();
        let r = store
            .range(RangeRequest {
                key: b"/bench/16/".to_vec(),
                range_end: b"/bench/160".to_vec(),
                ..RangeRequest::default()
            })
            .await
            .expect("list");
        keys = r.kvs.len();
        lat.push(t.elapsed());
    }
    report(
        &format!("list {keys} keys"),
        lists,
        started.elapsed(),
        &mut lat,
    );
}

async fn bench_watch(store: &Store, n: usize) {
    let mut w = store
        .watch(WatchRequest {
            key: b"/watch/".to_vec(),
            range_end: b"/watch0".to_vec(),
            ..WatchRequest::default()
        })
        .expect("watch");
    let started = Instant::now();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..n {
                store
                    .put(PutRequest {
                        key: format!("/watch/{i}").into_bytes(),
                        value: b"v".to_vec(),
                        ..PutRequest::default()
                    })
                    .await
                    .expect("put");
            }
        })
    };
    let mut got = 0;
    while got < n {
        match tokio::time::timeout(Duration::from_secs(30), w.recv()).await {
            Ok(Some(Ok(resp))) => got += resp.events.len(),
            other => panic!(
                "watch ended early: {other:?}",
                other = other.map(|o| o.map(|r| r.map(|_| ())))
            ),
        }
    }
    writer.await.expect("writer");
    let elapsed = started.elapsed();
    println!(
        "{:<28} {got:>7} events {:>7.0} events/s",
        "watch (live, while writing)",
        got as f64 / elapsed.as_secs_f64()
    );

    // Replay of the same history from its first revision.
    let first = store.current_revision() - n as i64 + 1;
    let mut w = store
        .watch(WatchRequest {
            key: b"/watch/".to_vec(),
            range_end: b"/watch0".to_vec(),
            start_revision: first,
            ..WatchRequest::default()
        })
        .expect("watch");
    let started = Instant::now();
    let mut got = 0;
    while got < n {
        if let Some(Ok(resp)) = w.recv().await {
            got += resp.events.len();
        } else {
            panic!("replay ended early");
        }
    }
    println!(
        "{:<28} {got:>7} events {:>7.0} events/s",
        "watch (history replay)",
        got as f64 / started.elapsed().as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let total: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(3000);
    let members: usize = args
        .iter()
        .position(|a| a == "--members")
        .and_then(|i| args.get(i + 1))
        .and_then(|m| m.parse().ok())
        .unwrap_or(1);
    let over_raft = members > 1 || args.iter().any(|a| a == "--raft");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut others = Vec::new();
    let (store, node) = if over_raft {
        let (store, node, first) = member(dir.path(), "bench", Bootstrap::ClusterInit).await;
        for m in 1..members {
            let join = Bootstrap::Join {
                peer_addr: first.clone(),
                token: "bench".into(),
            };
            others.push(member(dir.path(), &format!("bench{m}"), join).await);
        }
        // Wait until every member is a voter and knows the leader (the first member).
        while store
            .members()
            .await
            .map_or(0, |m| m.iter().filter(|m| !m.is_learner).count())
            < members
            || others.iter().any(|(s, _, _)| s.status().leader_id == 0)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (store, Some(node))
    } else {
        let (sm, core) = open_state(dir.path(), &StoreOptions::default()).expect("open");
        let replicator: Arc<dyn Replicator> = FakeReplicator::new(sm, 1);
        (core.into_store(replicator), None)
    };
    let over = if members > 1 {
        format!("a {members}-member raft group")
    } else if over_raft {
        "a one-member raft group".to_string()
    } else {
        "the fake replicator".to_string()
    };
    println!("store_bench over {over}, {total} puts per configuration");
    for writers in [1, 16, 256] {
        bench_puts(&store, writers, total).await;
    }
    bench_ranges(&store, total).await;
    bench_watch(&store, total).await;
    let st = store.status();
    println!(
        "revision {} applied index {} db size {} KiB",
        st.header.revision,
        st.raft_applied_index,
        st.db_size / 1024
    );
    if let Some(node) = node {
        node.shutdown().await;
    }
    for (_, node, _) in others {
        node.shutdown().await;
    }
}

/// Open one raft member under `root/name` on a free port; returns its peer URL too.
async fn member(
    root: &std::path::Path,
    name: &str,
    bootstrap: Bootstrap,
) -> (Store, k3rs::store::raft::RaftNode, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let url = format!("http://127.0.0.1:{port}");
    let mut cfg = StoreConfig::new(
        root.join(name),
        name,
        &format!("127.0.0.1:{port}"),
        &url,
        bootstrap,
    );
    cfg.raft.token = "bench".into();
    let (store, node) = open(cfg).await.expect("open store over raft");
    (store, node, url)
}
