//! Linearizability of the replicated store: concurrent clients run put / get / CAS (a txn on
//! `mod_revision`) against an in-process 3-member group (real sockets, `store::open`) while the
//! leader is partitioned away and healed; the recorded history is checked per key with a
//! Wing–Gong (WGL) search against a single-register model.
//!
//! Every written value is unique, so a key's `mod_revision` identifies the write that produced
//! its value: "CAS expecting revision r (observed with value v)" is "CAS expecting value v".
//! Operations that fail or time out are "maybe applied": their return is at +∞ and their
//! outcome unknown (reads that fail are dropped: they cannot change the state).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k3rs::store::raft::{Bootstrap, NetFaults, RaftNode};
use k3rs::store::{
    Compare, CompareResult, CompareTarget, PutRequest, RangeRequest, RequestOp, Store, StoreConfig,
    TxnRequest,
};
use rand::Rng;

// ---------------------------------------------------------------- the checker (WGL)

/// An operation on one register (values are unique u64s; `None` = the key is absent).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    Put(u64),
    /// The value observed.
    Get(Option<u64>),
    /// Set `new` if the current value is `expect`; `ok` = the reported outcome (None = unknown).
    Cas {
        expect: Option<u64>,
        new: u64,
        ok: Option<bool>,
    },
}

/// One operation in real time: `ret == u128::MAX` for "maybe applied" (timed out).
#[derive(Clone, Debug)]
struct Entry {
    call: u128,
    ret: u128,
    op: Op,
}

/// The register model: the next state if `op` can take effect in `state`, else `None`.
fn step(state: Option<u64>, op: &Op) -> Option<Option<u64>> {
    match op {
        Op::Put(v) => Some(Some(*v)),
        Op::Get(seen) => (state == *seen).then_some(state),
        Op::Cas { expect, new, ok } => {
            let matches = state == *expect;
            match ok {
                Some(true) if matches => Some(Some(*new)),
                Some(false) if !matches => Some(state),
                Some(_) => None,
                // Unknown outcome: it did whatever the state dictated.
                None => Some(if matches { Some(*new) } else { state }),
            }
        }
    }
}

/// Wing & Gong's search with Lowe's memoisation: is there a total order of `history`,
/// consistent with real time, that the register model accepts from an absent key?
fn linearizable(history: &[Entry]) -> bool {
    let n = history.len();
    if n == 0 {
        return true;
    }
    // Events: (time, is_return, op index); calls sort before returns at equal times so that
    // touching operations count as concurrent.
    let mut events: Vec<(u128, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, e) in history.iter().enumerate() {
        events.push((e.call, false, i));
        events.push((e.ret, true, i));
    }
    events.sort();
    // A doubly linked list over the events, with a head sentinel at index `len`.
    let len = events.len();
    let head = len;
    let mut next: Vec<usize> = (1..=len + 1).collect();
    let mut prev: Vec<usize> = (0..=len).map(|i| i.wrapping_sub(1)).collect();
    next[head] = 0;
    next[len - 1] = usize::MAX;
    prev[0] = head;
    let mut ret_pos = vec![0usize; n];
    for (pos, ev) in events.iter().enumerate() {
        if ev.1 {
            ret_pos[ev.2] = pos;
        }
    }
    let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, p: usize| {
        let (a, b) = (prev[p], next[p]);
        next[a] = b;
        if b != usize::MAX {
            prev[b] = a;
        }
    };
    let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, p: usize| {
        let (a, b) = (prev[p], next[p]);
        next[a] = p;
        if b != usize::MAX {
            prev[b] = p;
        }
    };

    let mut state: Option<u64> = None;
    let mut linearized = vec![0u64; n.div_ceil(64)];
    let mut seen: HashSet<(Vec<u64>, Option<u64>)> = HashSet::new();
    // Stack of (call position, state before).
    let mut stack: Vec<(usize, Option<u64>)> = Vec::new();
    let mut cur = next[head];
    while next[head] != usize::MAX {
        if cur == usize::MAX {
            return false;
        }
        let (_, is_ret, i) = events[cur];
        if !is_ret {
            let mut advanced = false;
            if let Some(new_state) = step(state, &history[i].op) {
                linearized[i / 64] |= 1 << (i % 64);
                if seen.insert((linearized.clone(), new_state)) {
                    stack.push((cur, state));
                    state = new_state;
                    unlink(&mut next, &mut prev, cur);
                    unlink(&mut next, &mut prev, ret_pos[i]);
                    cur = next[head];
                    advanced = true;
                } else {
                    linearized[i / 64] &= !(1 << (i % 64));
                }
            }
            if !advanced {
                cur = next[cur];
            }
        } else {
            // An operation returned before being linearized: undo the last choice.
            let Some((call, old)) = stack.pop() else {
                return false;
            };
            let j = events[call].2;
            state = old;
            linearized[j / 64] &= !(1 << (j % 64));
            relink(&mut next, &mut prev, ret_pos[j]);
            relink(&mut next, &mut prev, call);
            cur = next[call];
        }
    }
    true
}

/// Check every key on its own; returns the keys whose history is not linearizable.
fn check(history: &[(String, Entry)]) -> Vec<String> {
    let mut by_key: BTreeMap<&str, Vec<Entry>> = BTreeMap::new();
    for (k, e) in history {
        by_key.entry(k).or_default().push(e.clone());
    }
    by_key
        .into_iter()
        .filter(|(_, h)| !linearizable(h))
        .map(|(k, _)| k.to_string())
        .collect()
}

fn e(call: u128, ret: u128, op: Op) -> Entry {
    Entry { call, ret, op }
}

#[test]
fn the_checker_accepts_concurrent_overlaps_and_rejects_stale_reads() {
    // put(1) overlaps a read of 1 and a read of None: both orders exist.
    let ok = [
        e(0, 10, Op::Put(1)),
        e(1, 5, Op::Get(None)),
        e(2, 12, Op::Get(Some(1))),
    ];
    assert!(linearizable(&ok));
    // A stale read after the write completed: not linearizable.
    let stale = [e(0, 10, Op::Put(1)), e(11, 12, Op::Get(None))];
    assert!(!linearizable(&stale));
    // Two reads in sequence see 2 then 1 while 1 was written strictly before 2.
    let reordered = [
        e(0, 1, Op::Put(1)),
        e(2, 20, Op::Put(2)),
        e(3, 4, Op::Get(Some(2))),
        e(5, 6, Op::Get(Some(1))),
    ];
    assert!(!linearizable(&reordered));
    // Two successful CAS from the same expected value: impossible.
    let double_cas = [
        e(0, 1, Op::Put(1)),
        e(
            2,
            10,
            Op::Cas {
                expect: Some(1),
                new: 2,
                ok: Some(true),
            },
        ),
        e(
            3,
            11,
            Op::Cas {
                expect: Some(1),
                new: 3,
                ok: Some(true),
            },
        ),
    ];
    assert!(!linearizable(&double_cas));
}

#[test]
fn the_checker_treats_timed_out_operations_as_maybe_applied() {
    // A timed-out put may take effect at any point after its call...
    let maybe = [
        e(0, u128::MAX, Op::Put(7)),
        e(5, 6, Op::Get(None)),
        e(7, 8, Op::Get(Some(7))),
    ];
    assert!(linearizable(&maybe));
    // ...or never.
    let never = [e(0, u128::MAX, Op::Put(7)), e(5, 6, Op::Get(None))];
    assert!(linearizable(&never));
    // But not before its call.
    let early = [e(0, 1, Op::Get(Some(7))), e(5, u128::MAX, Op::Put(7))];
    assert!(!linearizable(&early));
    // And once seen, it cannot un-happen.
    let flicker = [
        e(0, u128::MAX, Op::Put(7)),
        e(5, 6, Op::Get(Some(7))),
        e(7, 8, Op::Get(None)),
    ];
    assert!(!linearizable(&flicker));
    // Per-key partitioning: a violation on one key is reported for that key only.
    let h = vec![
        ("a".to_string(), e(0, 1, Op::Put(1))),
        ("b".to_string(), e(0, 1, Op::Put(2))),
        ("a".to_string(), e(2, 3, Op::Get(Some(1)))),
        ("b".to_string(), e(2, 3, Op::Get(None))),
    ];
    assert_eq!(check(&h), ["b"]);
}

// ---------------------------------------------------------------- the cluster run

const KEYS: usize = 3;
const CLIENTS: usize = 6;
const OP_TIMEOUT: Duration = Duration::from_secs(3);

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

async fn member(
    root: &std::path::Path,
    name: &str,
    bootstrap: Bootstrap,
    faults: &Arc<NetFaults>,
) -> (Store, RaftNode, String) {
    let addr = free_addr();
    let mut cfg = StoreConfig::new(
        root.join(name),
        name,
        &addr,
        &format!("http://{addr}"),
        bootstrap,
    );
    cfg.raft.token = "secret".into();
    cfg.raft.tick_interval = Duration::from_millis(50);
    cfg.raft.request_timeout = Duration::from_secs(2);
    cfg.raft.faults = Some(faults.clone());
    let (store, node) = k3rs::store::open(cfg).await.unwrap();
    (store, node, addr)
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn value_of(kv: Option<&k3rs::store::KeyValue>) -> Option<u64> {
    kv.map(|kv| String::from_utf8_lossy(&kv.value).parse().unwrap())
}

/// Get `key`: the value and its mod_revision (0 when absent).
async fn get(store: &Store, key: &str) -> Option<(Option<u64>, i64)> {
    let r = tokio::time::timeout(
        OP_TIMEOUT,
        store.range(RangeRequest {
            key: key.as_bytes().to_vec(),
            ..Default::default()
        }),
    )
    .await
    .ok()?
    .ok()?;
    let kv = r.kvs.first();
    Some((value_of(kv), kv.map_or(0, |kv| kv.mod_revision)))
}

/// After a failure, wait a little: a member without a leader fails fast, and thousands of
/// maybe-applied operations would only slow the search down.
async fn backoff() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

struct Run {
    start: Instant,
    history: Mutex<Vec<(String, Entry)>>,
    stop: AtomicBool,
}

impl Run {
    fn now(&self) -> u128 {
        self.start.elapsed().as_nanos()
    }
    fn record(&self, key: &str, call: u128, ret: Option<u128>, op: Op) {
        let entry = Entry {
            call,
            ret: ret.unwrap_or(u128::MAX),
            op,
        };
        self.history.lock().unwrap().push((key.to_string(), entry));
    }
}

async fn client(run: Arc<Run>, store: Store, id: u64) -> usize {
    let mut seq = 0u64;
    let mut acked = 0;
    while !run.stop.load(Ordering::SeqCst) {
        seq += 1;
        let value = id * 1_000_000 + seq;
        let key = format!("/lin/{}", rand::rng().random_range(0..KEYS));
        let choice = rand::rng().random_range(0..3);
        let call = run.now();
        match choice {
            0 => {
                let res = tokio::time::timeout(
                    OP_TIMEOUT,
                    store.put(PutRequest {
                        key: key.as_bytes().to_vec(),
                        value: value.to_string().into_bytes(),
                        ..Default::default()
                    }),
                )
                .await;
                let ok = matches!(res, Ok(Ok(_)));
                acked += usize::from(ok);
                run.record(&key, call, ok.then(|| run.now()), Op::Put(value));
                if !ok {
                    backoff().await;
                }
            }
            1 => match get(&store, &key).await {
                Some((v, _)) => run.record(&key, call, Some(run.now()), Op::Get(v)),
                None => backoff().await,
            },
            _ => {
                // Read, then CAS on the revision read (the read is an operation too).
                let Some((v, rev)) = get(&store, &key).await else {
                    backoff().await;
                    continue;
                };
                run.record(&key, call, Some(run.now()), Op::Get(v));
                let call = run.now();
                let res = tokio::time::timeout(
                    OP_TIMEOUT,
                    store.txn(TxnRequest {
                        compare: vec![Compare {
                            key: key.as_bytes().to_vec(),
                            range_end: Vec::new(),
                            target: CompareTarget::ModRevision(rev),
                            result: CompareResult::Equal,
                        }],
                        success: vec![RequestOp::Put(PutRequest {
                            key: key.as_bytes().to_vec(),
                            value: value.to_string().into_bytes(),
                            ..Default::default()
                        })],
                        failure: Vec::new(),
                    }),
                )
                .await;
                let ok = match res {
                    Ok(Ok(r)) => Some(r.succeeded),
                    _ => None,
                };
                acked += usize::from(ok.is_some());
                if ok.is_none() {
                    backoff().await;
                }
                run.record(
                    &key,
                    call,
                    ok.map(|_| run.now()),
                    Op::Cas {
                        expect: v,
                        new: value,
                        ok,
                    },
                );
            }
        }
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_see_a_linearizable_store_while_the_leader_is_partitioned() {
    let root = tempfile::tempdir().unwrap();
    let faults = NetFaults::new();
    let (s1, n1, a1) = member(root.path(), "a", Bootstrap::ClusterInit, &faults).await;
    let join = Bootstrap::Join {
        peer_addr: format!("http://{a1}"),
        token: "secret".into(),
    };
    let (s2, n2, _) = member(root.path(), "b", join.clone(), &faults).await;
    let (s3, n3, _) = member(root.path(), "c", join, &faults).await;
    let stores = [s1, s2, s3];
    let nodes = [n1, n2, n3];
    wait_for("three voters with one leader", || {
        let l = stores[0].status().leader_id;
        l != 0
            && stores.iter().all(|s| s.status().leader_id == l)
            && futures::executor::block_on(stores[0].members())
                .is_ok_and(|m| m.len() == 3 && m.iter().all(|m| !m.is_learner))
    })
    .await;

    let run = Arc::new(Run {
        start: Instant::now(),
        history: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
    });
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            tokio::spawn(client(
                run.clone(),
                stores[c % stores.len()].clone(),
                c as u64 + 1,
            ))
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let old = stores[0].status().leader_id;
    faults.isolate(old);
    let cut_at = run.now();
    let others: Vec<&Store> = stores
        .iter()
        .filter(|s| s.status().header.member_id != old)
        .collect();
    wait_for("a new leader on the majority side", || {
        let l = others[0].status().leader_id;
        l != 0 && l != old && others.iter().all(|s| s.status().leader_id == l)
    })
    .await;
    // Let the majority make progress before healing.
    let progress_from = run.history.lock().unwrap().len();
    wait_for("writes on the majority after the partition", || {
        run.history.lock().unwrap()[progress_from..]
            .iter()
            .any(|(_, e)| e.call > cut_at && e.ret != u128::MAX && !matches!(e.op, Op::Get(_)))
    })
    .await;
    faults.heal();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    run.stop.store(true, Ordering::SeqCst);
    let mut acked = 0;
    for t in tasks {
        acked += t.await.unwrap();
    }
    let history = run.history.lock().unwrap().clone();
    let maybe = history.iter().filter(|(_, e)| e.ret == u128::MAX).count();
    eprintln!(
        "{} operations ({acked} acknowledged writes, {maybe} maybe-applied) over {KEYS} keys",
        history.len()
    );
    assert!(acked > 20, "too few writes to mean anything: {acked}");
    let bad = check(&history);
    assert!(bad.is_empty(), "not linearizable on keys {bad:?}");
    for n in nodes {
        n.shutdown().await;
    }
}
