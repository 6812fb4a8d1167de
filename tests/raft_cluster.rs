//! In-process raft clusters over real 127.0.0.1 sockets: election, replication, partitions,
//! restart from the data directory, snapshots for new members, removal, leadership transfer.
//! Every fault is followed by a check that every acknowledged write is on every live member.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k3rs::store::StoreError;
use k3rs::store::raft::testing::{KvHandle, KvStateMachine, NetFaults};
use k3rs::store::raft::{Bootstrap, RaftConfig, RaftNode, start};
use k3rs::store::state_machine::Replicator;

const WAIT: Duration = Duration::from_secs(15);

struct TestNode {
    name: String,
    dir: PathBuf,
    addr: String,
    node: RaftNode,
    kv: KvHandle,
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

fn config(
    dir: &Path,
    name: &str,
    addr: &str,
    bootstrap: Bootstrap,
    faults: &Arc<NetFaults>,
    compact_every: u64,
) -> RaftConfig {
    let mut c = RaftConfig::new(
        dir.join("raft"),
        name,
        addr,
        format!("http://{addr}"),
        bootstrap,
    );
    c.token = "secret".into();
    c.tick_interval = Duration::from_millis(50);
    c.request_timeout = Duration::from_secs(3);
    c.compact_every = compact_every;
    // Small segments: rotation, purge and multi-segment replay happen in every scenario.
    c.segment_size = 1024;
    c.faults = Some(faults.clone());
    c
}

async fn start_node(
    root: &Path,
    name: &str,
    addr: &str,
    bootstrap: Bootstrap,
    faults: &Arc<NetFaults>,
    compact_every: u64,
) -> TestNode {
    init_tracing();
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let sm = KvStateMachine::open(&dir.join("sm")).unwrap();
    let kv = sm.handle();
    let node = start(
        config(&dir, name, addr, bootstrap, faults, compact_every),
        Box::new(sm),
    )
    .await
    .unwrap();
    TestNode {
        name: name.into(),
        dir,
        addr: addr.into(),
        node,
        kv,
    }
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Propose `k=v` through `n` (retrying while there is no leader) and wait until `n` applied
/// it: that is an acknowledged write.
async fn put(n: &TestNode, k: &str, v: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        match n.node.propose(format!("{k}={v}").into_bytes()).await {
            Ok(()) => {
                let applied = async {
                    let until = Instant::now() + Duration::from_secs(3);
                    while Instant::now() < until {
                        if n.kv.get(k).as_deref() == Some(v) {
                            return true;
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    false
                };
                if applied.await {
                    return;
                }
            }
            Err(StoreError::NoLeader | StoreError::Timeout) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("propose on {}: {e}", n.name),
        }
        assert!(
            Instant::now() < deadline,
            "write {k} never applied on {}",
            n.name
        );
    }
}

async fn all_have(nodes: &[&TestNode], acked: &[(String, String)]) {
    for n in nodes {
        let deadline = Instant::now() + WAIT;
        loop {
            let missing: Vec<&String> = acked
                .iter()
                .filter(|(k, v)| n.kv.get(k).as_deref() != Some(v.as_str()))
                .map(|(k, _)| k)
                .collect();
            if missing.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} lacks acknowledged writes {missing:?} (status {:?}, sm applied {})",
                n.name,
                n.node.status(),
                n.kv.applied()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn leader_of(nodes: &[&TestNode]) -> u64 {
    let mut leader = 0;
    wait_for("an agreed leader", || {
        let ids: Vec<u64> = nodes.iter().map(|n| n.node.status().leader_id).collect();
        leader = ids[0];
        leader != 0 && ids.iter().all(|i| *i == leader)
    })
    .await;
    leader
}

/// Membership changes are refused while another is in flight: retry those refusals.
async fn with_retry<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        match f().await {
            Ok(t) => return t,
            Err(e @ (StoreError::NoLeader | StoreError::InvalidRequest(_))) => {
                assert!(Instant::now() < deadline, "gave up: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
}

// The default current-thread runtime: the raft loop runs on its own thread either way.
#[tokio::test]
async fn a_single_member_survives_restart_and_replays_its_log() {
    let root = tempfile::tempdir().unwrap();
    let faults = NetFaults::new();
    let addr = free_addr();
    let n = start_node(
        root.path(),
        "solo",
        &addr,
        Bootstrap::ClusterInit,
        &faults,
        10_000,
    )
    .await;
    let mut acked = Vec::new();
    for i in 0..20 {
        put(&n, &format!("k{i}"), &format!("v{i}")).await;
        acked.push((format!("k{i}"), format!("v{i}")));
    }
    // Garbage on the peer port drops that connection, not the member.
    {
        use tokio::io::AsyncWriteExt;
        let mut junk = tokio::net::TcpStream::connect(&addr).await.unwrap();
        junk.write_all(b"\x00\x00\x00\x09\x01not-protobuf-at-all")
            .await
            .unwrap();
        // The member may already have hung up.
        let _ = junk.write_all(&[0xff; 64]).await;
    }
    // A join with the wrong token is refused and changes nothing.
    let intruder = tempfile::tempdir().unwrap();
    let mut bad = config(
        intruder.path(),
        "intruder",
        &free_addr(),
        Bootstrap::Join {
            peer_addr: addr.clone(),
            token: "wrong".into(),
        },
        &faults,
        10_000,
    );
    bad.request_timeout = Duration::from_secs(1);
    let sm = KvStateMachine::open(&intruder.path().join("sm")).unwrap();
    let err = start(bad, Box::new(sm)).await.err().unwrap();
    assert!(err.to_string().contains("bad token"), "{err}");
    let huge = n.node.propose(vec![b'x'; 17 << 20]).await;
    assert!(
        matches!(huge, Err(StoreError::InvalidRequest(_))),
        "{huge:?}"
    );
    put(&n, "still", "alive").await;
    acked.push(("still".into(), "alive".into()));

    let id = n.node.id();
    let read = n.node.read_index().await.unwrap();
    assert!(read >= 21, "read index {read}");
    let members = n.node.members().await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].name, "solo");
    n.node.shutdown().await;
    drop(n);

    // Restart with the join flags of a stranger: the data directory decides.
    let bogus = Bootstrap::Join {
        peer_addr: "127.0.0.1:1".into(),
        token: "x".into(),
    };
    let n = start_node(root.path(), "solo", &addr, bogus, &faults, 10_000).await;
    assert_eq!(n.node.id(), id);
    all_have(&[&n], &acked).await;
    put(&n, "after", "restart").await;
    n.node.shutdown().await;
    let dir = n.dir.clone();
    drop(n);

    // Lose the state machine entirely: the WAL alone rebuilds it.
    std::fs::remove_dir_all(dir.join("sm")).unwrap();
    let n = start_node(
        root.path(),
        "solo",
        &addr,
        Bootstrap::ClusterInit,
        &faults,
        10_000,
    )
    .await;
    acked.push(("after".into(), "restart".into()));
    all_have(&[&n], &acked).await;
    n.node.shutdown().await;
    drop(n);

    // Damage a frame in the middle of the log: start-up refuses with a clear error rather
    // than silently dropping acknowledged entries.
    let wal_dir = dir.join("raft/wal");
    let mut segs: Vec<_> = std::fs::read_dir(&wal_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    let seg = &segs[0];
    let mut data = std::fs::read(seg).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0x5a;
    std::fs::write(seg, &data).unwrap();
    let sm = KvStateMachine::open(&dir.join("sm")).unwrap();
    let cfg = config(&dir, "solo", &addr, Bootstrap::ClusterInit, &faults, 10_000);
    let err = start(cfg, Box::new(sm)).await.err().unwrap();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    assert!(err.to_string().contains("refusing to start"), "{err}");
}

fn refs(v: &[TestNode]) -> Vec<&TestNode> {
    v.iter().collect()
}

fn by_id(v: &[TestNode], id: u64) -> usize {
    v.iter().position(|n| n.node.id() == id).unwrap()
}

fn join_via(n: &TestNode) -> Bootstrap {
    Bootstrap::Join {
        peer_addr: format!("http://{}", n.addr),
        token: "secret".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_member_group_replicates_and_survives_partition_restart_and_membership_changes() {
    let root = tempfile::tempdir().unwrap();
    let faults = NetFaults::new();
    let compact = 40;
    let r = root.path();
    let mut live: Vec<TestNode> = Vec::new();
    live.push(
        start_node(
            r,
            "a",
            &free_addr(),
            Bootstrap::ClusterInit,
            &faults,
            compact,
        )
        .await,
    );
    let b = start_node(r, "b", &free_addr(), join_via(&live[0]), &faults, compact).await;
    live.push(b);
    // c joins through a follower: the request is forwarded to the leader by raft.
    let c = start_node(r, "c", &free_addr(), join_via(&live[1]), &faults, compact).await;
    live.push(c);
    let mut acked: Vec<(String, String)> = Vec::new();

    // Elect, replicate (through every member, followers forward), agree on membership.
    leader_of(&refs(&live)).await;
    for (i, n) in live.iter().enumerate() {
        put(n, &format!("w{i}"), "1").await;
        acked.push((format!("w{i}"), "1".into()));
    }
    all_have(&refs(&live), &acked).await;
    let m = live[0].node.members().await.unwrap();
    assert_eq!(m.len(), 3);
    assert!(m.iter().all(|m| !m.is_learner));
    for n in &live[1..] {
        wait_for("identical member lists", || {
            futures::executor::block_on(n.node.members()).unwrap() == m
        })
        .await;
    }
    let mut names: Vec<_> = m.iter().map(|m| m.name.clone()).collect();
    names.sort();
    assert_eq!(names, ["a", "b", "c"]);

    // Partition the leader away: a new leader appears, writes continue, and what the old
    // leader accepts while cut off never commits.
    let old = leader_of(&refs(&live)).await;
    let old_i = by_id(&live, old);
    let rest: Vec<&TestNode> = live.iter().filter(|n| n.node.id() != old).collect();
    faults.isolate(old);
    let t0 = Instant::now();
    // While cut off it still leads for an election timeout: a conf change it accepts cannot
    // commit, so a second one is refused as "already in progress" instead of being dropped.
    let add = |name: &str| {
        let node = live[old_i].node.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            node.member_add(name, vec!["http://127.0.0.1:1".into()], false)
                .await
        })
    };
    let first = add("x");
    tokio::time::sleep(Duration::from_millis(30)).await;
    let second = add("y");
    wait_for("a new leader among the majority", || {
        let l = rest[0].node.status().leader_id;
        l != 0 && l != old && rest.iter().all(|n| n.node.status().leader_id == l)
    })
    .await;
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "failover took {:?}",
        t0.elapsed()
    );
    let _ = live[old_i].node.propose(b"stale=1".to_vec()).await;
    put(rest[0], "during", "partition").await;
    acked.push(("during".into(), "partition".into()));
    faults.heal();
    put(rest[1], "healed", "1").await;
    acked.push(("healed".into(), "1".into()));
    all_have(&refs(&live), &acked).await;
    for n in &live {
        assert_eq!(
            n.kv.get("stale"),
            None,
            "uncommitted write of the old leader applied on {}",
            n.name
        );
        assert_eq!(n.node.members().await.unwrap().len(), 3);
    }
    // Whichever was proposed first timed out (never committed); the other was refused.
    let (first, second) = (first.await.unwrap(), second.await.unwrap());
    let in_progress = |r: &Result<_, StoreError>| matches!(r, Err(StoreError::InvalidRequest(m)) if m.contains("in progress"));
    assert!(first.is_err() && second.is_err(), "{first:?} {second:?}");
    assert!(
        in_progress(&first) ^ in_progress(&second),
        "{first:?} {second:?}"
    );
    // ReadIndex on a follower is served through the leader and covers every applied write.
    let f = live
        .iter()
        .find(|n| n.node.status().leader_id != n.node.id())
        .unwrap();
    let floor = live
        .iter()
        .map(|n| n.node.status().applied_index)
        .min()
        .unwrap();
    // Concurrent reads share one raft ReadIndex round; every one gets a safe index.
    let reads = futures::future::join_all((0..20).map(|_| f.node.read_index())).await;
    for r in reads {
        assert!(r.unwrap() >= floor);
    }

    // Stop a follower, write past a compaction, restart it from its data directory.
    let leader = leader_of(&refs(&live)).await;
    let f_i = live.iter().position(|n| n.node.id() != leader).unwrap();
    let stopped = live.remove(f_i);
    stopped.node.shutdown().await;
    let (fname, faddr, fid) = (
        stopped.name.clone(),
        stopped.addr.clone(),
        stopped.node.id(),
    );
    drop(stopped);
    let w = by_id(&live, leader);
    for i in 0..compact + 10 {
        put(&live[w], &format!("s{i}"), "x").await;
        acked.push((format!("s{i}"), "x".into()));
    }
    let back = start_node(r, &fname, &faddr, Bootstrap::ClusterInit, &faults, compact).await;
    assert_eq!(back.node.id(), fid, "a restarted member keeps its identity");
    live.push(back);
    all_have(&refs(&live), &acked).await;

    // A fourth member joins after compaction: it can only be brought up by a snapshot.
    let snap_index = |n: &TestNode| -> u64 {
        std::fs::read_dir(n.dir.join("raft/snap"))
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                u64::from_str_radix(name.strip_suffix(".snap")?, 16).ok()
            })
            .max()
            .unwrap()
    };
    assert!(snap_index(&live[w]) > 1, "the leader compacted its log");
    let wal = live[w].dir.join("raft/wal");
    assert!(
        !wal.join("0000000000000001.wal").exists(),
        "segments below the compaction point are deleted: {:?}",
        std::fs::read_dir(&wal).unwrap().count()
    );
    let d = start_node(r, "d", &free_addr(), join_via(&live[w]), &faults, compact).await;
    live.push(d);
    let d_i = live.len() - 1;
    put(&live[d_i], "from", "d").await;
    acked.push(("from".into(), "d".into()));
    all_have(&refs(&live), &acked).await;
    let snaps: Vec<_> = std::fs::read_dir(live[d_i].dir.join("raft/snap"))
        .unwrap()
        .collect();
    assert_eq!(snaps.len(), 1, "d should hold the snapshot it was sent");
    wait_for("four voters everywhere", || {
        live.iter()
            .all(|n| futures::executor::block_on(n.node.members()).unwrap().len() == 4)
    })
    .await;

    // Transfer leadership to d.
    let d_id = live[d_i].node.id();
    with_retry(|| live[0].node.transfer_leader(d_id)).await;
    assert_eq!(leader_of(&refs(&live)).await, d_id);
    put(&live[0], "after", "transfer").await;
    acked.push(("after".into(), "transfer".into()));

    // Remove a member while it is cut off, so it cannot see its removal in the log: the rest
    // agree, and once it talks to them again they tell it, and it stops itself.
    let victim_id = live[0].node.id();
    faults.isolate(victim_id);
    with_retry(|| live[d_i].node.member_remove(victim_id)).await;
    let victim = live.remove(0);
    wait_for("three members everywhere", || {
        live.iter().all(|n| {
            let m = futures::executor::block_on(n.node.members()).unwrap();
            m.len() == 3 && m.iter().all(|m| m.id != victim_id)
        })
    })
    .await;
    assert!(!victim.node.is_stopped());
    faults.heal();
    wait_for("the removed member stops", || victim.node.is_stopped()).await;
    assert!(victim.node.error().unwrap().contains("removed"));
    // Restarting a removed member is refused with a clear error.
    victim.node.shutdown().await;
    let (vname, vaddr, vdir) = (victim.name.clone(), victim.addr.clone(), victim.dir.clone());
    drop(victim);
    let sm = KvStateMachine::open(&vdir.join("sm")).unwrap();
    let cfg = config(
        &vdir,
        &vname,
        &vaddr,
        Bootstrap::ClusterInit,
        &faults,
        compact,
    );
    let err = start(cfg, Box::new(sm)).await.err().unwrap();
    assert!(err.to_string().contains("was removed"), "{err}");
    put(&live[0], "final", "1").await;
    acked.push(("final".into(), "1".into()));
    all_have(&refs(&live), &acked).await;

    // A learner is listed as such everywhere, can be promoted, and removed again.
    let ghost = with_retry(|| {
        live[0]
            .node
            .member_add("ghost".into(), vec!["http://127.0.0.1:1".into()], true)
    })
    .await;
    assert!(ghost.is_learner);
    let ghost_view = |n: &TestNode| {
        futures::executor::block_on(n.node.members())
            .unwrap()
            .into_iter()
            .find(|m| m.id == ghost.id)
    };
    wait_for("the learner everywhere", || {
        live.iter()
            .all(|n| ghost_view(n).is_some_and(|m| m.is_learner && m.name == "ghost"))
    })
    .await;
    assert!(matches!(
        live[0].node.transfer_leader(ghost.id).await,
        Err(StoreError::InvalidRequest(m)) if m.contains("learner")
    ));
    // Through a follower: the change is handed to the leader over the peer transport.
    let follower = live
        .iter()
        .find(|n| n.node.status().leader_id != n.node.id())
        .unwrap();
    with_retry(|| follower.node.member_promote(ghost.id)).await;
    assert!(matches!(
        follower.node.member_promote(ghost.id).await,
        Err(StoreError::InvalidRequest(m)) if m.contains("not a learner")
    ));
    wait_for("the promoted voter everywhere", || {
        live.iter()
            .all(|n| ghost_view(n).is_some_and(|m| !m.is_learner))
    })
    .await;
    with_retry(|| live[0].node.member_remove(ghost.id)).await;
    wait_for("the ghost gone everywhere", || {
        live.iter().all(|n| ghost_view(n).is_none())
    })
    .await;
    put(&live[1], "post", "ghost").await;
    acked.push(("post".into(), "ghost".into()));
    all_have(&refs(&live), &acked).await;

    // Removing an unknown member is an error, not a hang.
    assert!(matches!(
        live[0].node.member_remove(12345).await,
        Err(StoreError::MemberNotFound { .. })
    ));

    // Stop every member at once and restart them all (with meaningless bootstrap flags):
    // they resume their membership, elect a leader and keep every acknowledged write.
    let mut again = Vec::new();
    for n in live.drain(..) {
        n.node.shutdown().await;
        again.push((n.name.clone(), n.addr.clone(), n.node.id()));
    }
    for (name, addr, id) in &again {
        let n = start_node(r, name, addr, Bootstrap::ClusterInit, &faults, compact).await;
        assert_eq!(n.node.id(), *id);
        live.push(n);
    }
    leader_of(&refs(&live)).await;
    all_have(&refs(&live), &acked).await;
    put(&live[2], "restarted", "all").await;
    acked.push(("restarted".into(), "all".into()));
    all_have(&refs(&live), &acked).await;
    assert_eq!(live[0].node.members().await.unwrap().len(), 3);
    for n in &live {
        n.node.shutdown().await;
    }
}

struct FullDisk {
    inner: std::fs::File,
    budget: usize,
}

impl k3rs::store::raft::wal::WalFile for FullDisk {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if buf.len() > self.budget {
            self.budget = 0;
            return Err(std::io::Error::from_raw_os_error(28));
        }
        self.budget -= buf.len();
        std::io::Write::write_all(&mut self.inner, buf)
    }
    fn sync_data(&mut self) -> std::io::Result<()> {
        self.inner.sync_data()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_member_and_loses_no_acknowledged_write() {
    init_tracing();
    let root = tempfile::tempdir().unwrap();
    let faults = NetFaults::new();
    let addr = free_addr();
    let dir = root.path().join("full");
    std::fs::create_dir_all(&dir).unwrap();
    let sm = KvStateMachine::open(&dir.join("sm")).unwrap();
    let kv = sm.handle();
    let mut cfg = config(&dir, "full", &addr, Bootstrap::ClusterInit, &faults, 10_000);
    // One segment for the whole test: each new segment file would get a fresh budget.
    cfg.segment_size = 64 << 20;
    cfg.wal_file_wrapper = Some(Arc::new(|f| {
        Box::new(FullDisk {
            inner: f,
            budget: 3000,
        })
    }));
    let node = start(cfg, Box::new(sm)).await.unwrap();
    let mut acked = Vec::new();
    for i in 0..1000 {
        let k = format!("k{i}");
        match node.propose(format!("{k}=v").into_bytes()).await {
            Ok(()) => {
                wait_for("apply or stop", || {
                    kv.get(&k).is_some() || node.is_stopped()
                })
                .await;
                if kv.get(&k).is_some() {
                    acked.push(k);
                }
            }
            Err(StoreError::Stopped) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        node.is_stopped(),
        "the member must stop when the disk is full"
    );
    let err = node.error().unwrap();
    assert!(err.contains("os error 28"), "{err}");
    assert!(acked.len() > 5, "some writes fit before the disk filled");
    assert!(matches!(
        node.propose(b"late=1".to_vec()).await,
        Err(StoreError::Stopped)
    ));
    node.shutdown().await;
    drop(kv);

    // Restarted on a disk with room, every acknowledged write is there.
    std::fs::remove_dir_all(dir.join("sm")).unwrap();
    let n = start_node(
        root.path(),
        "full",
        &addr,
        Bootstrap::ClusterInit,
        &faults,
        10_000,
    )
    .await;
    for k in &acked {
        wait_for("acknowledged write after restart", || n.kv.get(k).is_some()).await;
    }
    n.node.shutdown().await;
}

/// Not a correctness test: prints write throughput and latency (run with `--ignored`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn measure_write_throughput_and_latency() {
    let root = tempfile::tempdir().unwrap();
    let faults = NetFaults::new();
    let r = root.path();
    let mut live = vec![
        start_node(
            r,
            "a",
            &free_addr(),
            Bootstrap::ClusterInit,
            &faults,
            10_000,
        )
        .await,
    ];
    for label in ["1 member", "3 members"] {
        if label == "3 members" {
            let b = start_node(r, "b", &free_addr(), join_via(&live[0]), &faults, 10_000).await;
            live.push(b);
            let c = start_node(r, "c", &free_addr(), join_via(&live[0]), &faults, 10_000).await;
            live.push(c);
        }
        let leader = leader_of(&refs(&live)).await;
        let n = &live[by_id(&live, leader)];
        let t = Instant::now();
        let seq = 200;
        for i in 0..seq {
            let k = format!("{label}-seq{i}");
            n.node.propose(format!("{k}=v").into_bytes()).await.unwrap();
            while n.kv.get(&k).is_none() {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
        let lat = t.elapsed() / seq;
        let total = 5000;
        let t = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..50 {
            let node = n.node.clone();
            let label = label.to_string();
            tasks.push(tokio::spawn(async move {
                for i in 0..total / 50 {
                    node.propose(format!("{label}-par{w}-{i}=v").into_bytes())
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        wait_for("the last parallel writes", || {
            (0..50).all(|w| {
                n.kv.get(&format!("{label}-par{w}-{}", total / 50 - 1))
                    .is_some()
            })
        })
        .await;
        let tput = f64::from(total) / t.elapsed().as_secs_f64();
        println!("{label}: sequential put→apply {lat:?}/write; pipelined {tput:.0} writes/s");
        let follower = live.iter().find(|x| x.node.id() != leader).unwrap_or(n);
        for (who, node) in [("leader", n), ("follower", follower)] {
            let t = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..50 {
                let node = node.node.clone();
                tasks.push(tokio::spawn(async move {
                    for _ in 0..100 {
                        node.read_index().await.unwrap();
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            let rps = 5000.0 / t.elapsed().as_secs_f64();
            println!("{label}: read_index on the {who}, 50 concurrent callers: {rps:.0}/s");
        }
    }
    for n in &live {
        n.node.shutdown().await;
    }
}
