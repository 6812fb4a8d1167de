//! Tests of the `Store` handle over the fake replicator: writes, reads, watch, leases.

use std::sync::Arc;
use std::time::Duration;

use crate::store::testing::FakeReplicator;
use crate::store::*;

struct Fixture {
    store: Store,
    fake: Arc<FakeReplicator>,
    _dir: tempfile::TempDir,
}

fn opts() -> StoreOptions {
    StoreOptions {
        cache_bytes: 1 << 20,
        request_timeout: Duration::from_millis(300),
        lease_tick: Duration::from_millis(20),
        ..StoreOptions::default()
    }
}

fn fixture(opts: StoreOptions) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (sm, core) = open_state(dir.path(), &opts).unwrap();
    let fake = FakeReplicator::new(sm, 7);
    let store = core.into_store(fake.clone());
    Fixture {
        store,
        fake,
        _dir: dir,
    }
}

fn put(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
        ..PutRequest::default()
    }
}

fn prefix(p: &str) -> (Vec<u8>, Vec<u8>) {
    let mut end = p.as_bytes().to_vec();
    *end.last_mut().unwrap() += 1;
    (p.as_bytes().to_vec(), end)
}

async fn next(w: &mut Watcher) -> WatchResponse {
    tokio::time::timeout(Duration::from_secs(5), w.recv())
        .await
        .expect("watch response in time")
        .expect("watch still open")
        .expect("no watch error")
}

#[tokio::test]
async fn writes_and_reads_fill_headers_and_follow_etcd_rules() {
    let f = fixture(opts());
    let r = f.store.put(put("/a", "1")).await.unwrap();
    assert_eq!(r.header.revision, 2);
    assert_eq!((r.header.member_id, r.header.cluster_id), (7, 0xC1));
    assert_eq!(r.header.raft_term, 1);
    let got = f
        .store
        .range(RangeRequest {
            key: b"/a".to_vec(),
            ..RangeRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(got.kvs[0].value, b"1");
    assert_eq!(got.header.member_id, 7);

    assert!(matches!(
        f.store.put(put("", "x")).await,
        Err(StoreError::EmptyKey)
    ));
    assert!(matches!(
        f.store
            .put(PutRequest {
                ignore_value: true,
                ..put("/a", "x")
            })
            .await,
        Err(StoreError::ValueProvided)
    ));
    assert!(matches!(
        f.store
            .put(PutRequest {
                ignore_value: true,
                ..put("/missing", "")
            })
            .await,
        Err(StoreError::KeyNotFound)
    ));

    // Compare-and-swap on mod_revision, as the API server does.
    let cas = |rev| TxnRequest {
        compare: vec![Compare {
            key: b"/a".to_vec(),
            range_end: vec![],
            target: CompareTarget::ModRevision(rev),
            result: CompareResult::Equal,
        }],
        success: vec![RequestOp::Put(put("/a", "2"))],
        failure: vec![RequestOp::Range(RangeRequest {
            key: b"/a".to_vec(),
            ..RangeRequest::default()
        })],
    };
    let t = f.store.txn(cas(2)).await.unwrap();
    assert!(t.succeeded);
    assert_eq!(t.header.revision, 3);
    let t = f.store.txn(cas(2)).await.unwrap();
    assert!(!t.succeeded);
    assert_eq!(
        t.header.revision, 3,
        "a failed read-only branch bumps nothing"
    );
    let dup = TxnRequest {
        success: vec![
            RequestOp::Put(put("/a", "1")),
            RequestOp::Put(put("/a", "2")),
        ],
        ..TxnRequest::default()
    };
    assert!(matches!(
        f.store.txn(dup).await,
        Err(StoreError::DuplicateKey)
    ));
    let del = f
        .store
        .delete_range(DeleteRangeRequest {
            key: b"/zzz".to_vec(),
            ..DeleteRangeRequest::default()
        })
        .await
        .unwrap();
    assert_eq!((del.deleted, del.header.revision), (0, 3));
    assert_eq!(f.store.status().raft_applied_index, 5);
}

#[tokio::test]
async fn a_write_whose_entry_never_applies_times_out() {
    let f = fixture(opts());
    f.fake.set_drop_proposals(true);
    let started = std::time::Instant::now();
    assert!(matches!(
        f.store.put(put("/a", "1")).await,
        Err(StoreError::Timeout)
    ));
    assert!(started.elapsed() >= Duration::from_millis(300));
    f.fake.set_drop_proposals(false);
    assert_eq!(
        f.store.put(put("/a", "1")).await.unwrap().header.revision,
        2
    );
}

#[tokio::test]
async fn linearizable_reads_need_a_leader_but_serializable_ones_do_not() {
    let f = fixture(opts());
    f.store.put(put("/a", "1")).await.unwrap();
    f.fake.set_leader(0);
    let req = RangeRequest {
        key: b"/a".to_vec(),
        ..RangeRequest::default()
    };
    assert!(matches!(
        f.store.range(req.clone()).await,
        Err(StoreError::NoLeader)
    ));
    let r = f
        .store
        .range(RangeRequest {
            serializable: true,
            ..req
        })
        .await
        .unwrap();
    assert_eq!(r.count, 1);
}

#[tokio::test]
async fn watch_replays_history_then_goes_live_without_gap_or_duplicate() {
    let f = fixture(opts());
    for i in 0..10 {
        f.store.put(put(&format!("/w/{i}"), "v")).await.unwrap();
        f.store.put(put("/other", "x")).await.unwrap();
    }
    let (key, range_end) = prefix("/w/");
    let mut w = f
        .store
        .watch(WatchRequest {
            key,
            range_end,
            start_revision: 4,
            ..WatchRequest::default()
        })
        .unwrap();
    let writer = {
        let store = f.store.clone();
        tokio::spawn(async move {
            for i in 10..40 {
                store.put(put(&format!("/w/{i}"), "v")).await.unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    let mut revs = Vec::new();
    while revs.last().is_none_or(|r| *r < 51) {
        let resp = next(&mut w).await;
        for e in resp.events {
            assert!(e.kv.key.starts_with(b"/w/"));
            revs.push(e.kv.mod_revision);
        }
    }
    writer.await.unwrap();
    // /w/1 was written at revision 4, then every other revision up to 21, then 22..=51.
    let want: Vec<i64> = (4..=20).step_by(2).chain(22..=51).collect();
    assert_eq!(revs, want);
}

#[tokio::test]
async fn a_slow_watcher_gets_every_event_in_order() {
    let f = fixture(StoreOptions {
        watch_buffer: 2,
        history_chunk: 7,
        ..opts()
    });
    let mut w = f
        .store
        .watch(WatchRequest {
            key: b"/s".to_vec(),
            range_end: vec![0],
            prev_kv: true,
            ..WatchRequest::default()
        })
        .unwrap();
    for i in 0..300 {
        f.store.put(put("/s", &i.to_string())).await.unwrap();
    }
    let mut values = Vec::new();
    while values.len() < 300 {
        for e in next(&mut w).await.events {
            let prev = e.prev_kv.map(|p| p.value);
            if let Some(last) = values.last() {
                assert_eq!(prev.as_ref(), Some(last), "prev_kv is the previous value");
            }
            values.push(e.kv.value);
        }
    }
    let want: Vec<Vec<u8>> = (0..300).map(|i: i32| i.to_string().into_bytes()).collect();
    assert_eq!(values, want);
}

#[tokio::test]
async fn a_watcher_that_falls_behind_compacted_history_ends_with_the_compact_revision() {
    let f = fixture(StoreOptions {
        watch_buffer: 1,
        ..opts()
    });
    let mut w = f
        .store
        .watch(WatchRequest {
            key: b"/k".to_vec(),
            ..WatchRequest::default()
        })
        .unwrap();
    for i in 0..20 {
        f.store.put(put("/k", &i.to_string())).await.unwrap();
    }
    f.store.compact(15).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), w.recv())
        .await
        .unwrap();
    assert!(matches!(
        got,
        Some(Err(StoreError::Compacted {
            compact_revision: 15
        }))
    ));
    assert!(w.recv().await.is_none());
    // Starting below the compact revision is refused up front; at it, allowed.
    let at = |start_revision| WatchRequest {
        key: b"/k".to_vec(),
        start_revision,
        ..WatchRequest::default()
    };
    assert!(matches!(
        f.store.watch(at(14)),
        Err(StoreError::Compacted {
            compact_revision: 15
        })
    ));
    let mut w = f.store.watch(at(15)).unwrap();
    assert_eq!(next(&mut w).await.events[0].kv.mod_revision, 15);
}

#[tokio::test]
async fn watch_filters_and_progress_notifications() {
    let f = fixture(StoreOptions {
        progress_interval: Duration::from_millis(100),
        ..opts()
    });
    let mut w = f
        .store
        .watch(WatchRequest {
            key: b"/f".to_vec(),
            range_end: vec![0],
            filter_puts: true,
            progress_notify: true,
            ..WatchRequest::default()
        })
        .unwrap();
    f.store.put(put("/f1", "a")).await.unwrap();
    f.store
        .delete_range(DeleteRangeRequest {
            key: b"/f1".to_vec(),
            ..DeleteRangeRequest::default()
        })
        .await
        .unwrap();
    let r = next(&mut w).await;
    assert_eq!(r.events.len(), 1);
    assert_eq!(r.events[0].kind, EventType::Delete);
    assert_eq!(r.events[0].kv.mod_revision, 3);
    assert!(r.events[0].prev_kv.is_none(), "prev_kv only on request");
    assert_eq!(r.header.revision, 3);

    w.request_progress();
    let p = next(&mut w).await;
    assert!(p.events.is_empty());
    assert_eq!(p.header.revision, 3);
    // Idle: the periodic notification arrives on its own.
    let p = next(&mut w).await;
    assert!(p.events.is_empty());
    assert_eq!(p.header.revision, 3);
}

#[tokio::test]
async fn an_expired_lease_deletes_its_keys_with_delete_events() {
    let f = fixture(opts());
    // Two seconds: time enough to attach keys and inspect the lease before it expires.
    let lease = f.store.lease_grant(0, 2).await.unwrap();
    assert!(lease.id > 0);
    let mut last = 0;
    for k in ["/l/a", "/l/b"] {
        last = f
            .store
            .put(PutRequest {
                lease: lease.id,
                ..put(k, "v")
            })
            .await
            .unwrap()
            .header
            .revision;
    }
    let ttl = f.store.lease_time_to_live(lease.id, true).await.unwrap();
    assert_eq!((ttl.granted_ttl, ttl.keys.len()), (2, 2));
    assert!((1..=2).contains(&ttl.ttl));
    let mut w = f
        .store
        .watch(WatchRequest {
            key: b"/l/".to_vec(),
            range_end: vec![0],
            // From right after the puts: the lease may expire before the watch starts.
            start_revision: last + 1,
            ..WatchRequest::default()
        })
        .unwrap();
    let r = next(&mut w).await;
    assert_eq!(r.events.len(), 2);
    assert!(r.events.iter().all(|e| e.kind == EventType::Delete));
    assert!(r.events.iter().all(|e| e.kv.mod_revision == 4));
    let ttl = f.store.lease_time_to_live(lease.id, true).await.unwrap();
    assert_eq!(ttl.ttl, -1);
    assert!(f.store.leases().await.unwrap().leases.is_empty());
}

#[tokio::test]
async fn leases_expire_only_on_the_leader_and_keep_alive_works_on_a_follower() {
    let f = fixture(opts());
    let id = f.store.lease_grant(42, 1).await.unwrap().id;
    f.store
        .put(PutRequest {
            lease: id,
            ..put("/k", "v")
        })
        .await
        .unwrap();
    f.fake.set_leader(9); // another member leads
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(f.store.leases().await.unwrap().leases, vec![42]);
    let ka = f.store.lease_keep_alive(id).await.unwrap();
    assert_eq!(ka.ttl, 1);
    assert!(matches!(
        f.store.lease_keep_alive(5).await,
        Err(StoreError::LeaseNotFound { id: 5 })
    ));
    // Becoming leader restarts the full TTL, then it expires.
    let mut w = f
        .store
        .watch(WatchRequest {
            key: b"/k".to_vec(),
            ..WatchRequest::default()
        })
        .unwrap();
    f.fake.set_leader(7);
    let r = next(&mut w).await;
    assert_eq!(r.events[0].kind, EventType::Delete);
    assert!(matches!(
        f.store.lease_revoke(id).await,
        Err(StoreError::LeaseNotFound { id: 42 })
    ));
}

#[tokio::test]
async fn synced_state_survives_reopen_and_corrupt_restore_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (sm, core) = open_state(dir.path(), &opts()).unwrap();
        let fake = FakeReplicator::new(sm, 1);
        let store = core.into_store(fake.clone());
        store.put(put("/d", "1")).await.unwrap();
        store.lease_grant(3, 60).await.unwrap();
        fake.with_state_machine(|sm| sm.sync()).unwrap();
        let snap = store.snapshot().await.unwrap();
        let mut bad = snap.clone();
        bad[20] ^= 1;
        fake.with_state_machine(|sm| sm.restore(&bad, 99))
            .unwrap_err();
        assert_eq!(fake.with_state_machine(|sm| sm.applied_index()), 2);
    }
    // Give the dropped store's background task a moment to release the database.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (sm, core) = open_state(dir.path(), &opts()).unwrap();
    assert_eq!(sm.applied_index(), 2);
    let store = core.into_store(FakeReplicator::new(sm, 1));
    let r = store
        .range(RangeRequest {
            key: b"/d".to_vec(),
            ..RangeRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(r.kvs[0].value, b"1");
    assert_eq!(store.leases().await.unwrap().leases, vec![3]);
}

#[tokio::test]
async fn a_raft_snapshot_restore_sends_live_watchers_back_to_history() {
    let a = fixture(opts());
    for i in 0..5 {
        a.store.put(put("/r", &i.to_string())).await.unwrap();
    }
    let snap = a.store.snapshot().await.unwrap();

    let b = fixture(opts());
    let mut w = b
        .store
        .watch(WatchRequest {
            key: b"/r".to_vec(),
            ..WatchRequest::default()
        })
        .unwrap();
    b.fake
        .with_state_machine(|sm| sm.restore(&snap, 40))
        .unwrap();
    let mut values = Vec::new();
    while values.len() < 5 {
        values.extend(next(&mut w).await.events.into_iter().map(|e| e.kv.value));
    }
    assert_eq!(values, vec![b"0", b"1", b"2", b"3", b"4"]);
    assert_eq!(b.store.status().raft_applied_index, 40);
    assert_eq!(b.store.current_revision(), 6);
}

#[tokio::test]
async fn store_futures_and_watchers_are_send_for_grpc_handlers() {
    fn is_send<T: Send>(t: T) -> T {
        t
    }
    let f = fixture(opts());
    drop(is_send(f.store.range(RangeRequest::default())));
    drop(is_send(f.store.put(put("/a", "1"))));
    drop(is_send(f.store.txn(TxnRequest::default())));
    drop(is_send(f.store.lease_keep_alive(1)));
    drop(is_send(f.store.snapshot()));
    let mut w = is_send(f.store.watch(WatchRequest::default()).unwrap());
    drop(is_send(w.recv()));
}

#[tokio::test]
async fn watchers_end_when_the_state_machine_stops() {
    let dir = tempfile::tempdir().unwrap();
    let (sm, core) = open_state(dir.path(), &opts()).unwrap();
    let fake = FakeReplicator::new(sm, 1);
    let store = core.into_store(fake.clone());
    let mut w = store.watch(WatchRequest::default()).unwrap();
    let waiting = tokio::spawn(async move { w.recv().await.is_none() });
    tokio::task::yield_now().await;
    // Dropping the replicator drops the state machine it owns.
    drop(store);
    drop(fake);
    let ended = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap();
    assert!(ended);
}

#[tokio::test]
async fn replayed_entries_are_not_applied_twice() {
    use crate::store::state_machine::CommittedEntry;
    let dir = tempfile::tempdir().unwrap();
    let (mut sm, core) = open_state(dir.path(), &opts()).unwrap();
    let data = crate::store::command::Envelope {
        origin: 1,
        request_id: 1,
        command: crate::store::command::Command::Put(put("/a", "1")),
    }
    .encode();
    let entry = |index| CommittedEntry {
        index,
        term: 1,
        data: &data,
    };
    sm.apply(&[entry(1), entry(2)], 2).unwrap();
    sm.apply(&[entry(2), entry(3)], 3).unwrap();
    sm.apply(&[entry(3)], 3).unwrap();
    let store = core.into_store(FakeReplicator::new(sm, 1));
    assert_eq!(store.current_revision(), 4, "entries 1, 2, 3 once each");
    assert_eq!(store.status().raft_applied_index, 3);
}

#[tokio::test]
async fn a_watch_from_a_future_revision_waits_for_it() {
    let f = fixture(opts());
    let mut w = f
        .store
        .watch(WatchRequest {
            key: b"/fut".to_vec(),
            start_revision: 4,
            ..WatchRequest::default()
        })
        .unwrap();
    w.request_progress();
    assert_eq!(
        next(&mut w).await.header.revision,
        1,
        "progress never claims the future"
    );
    for v in ["a", "b", "c"] {
        f.store.put(put("/fut", v)).await.unwrap();
    }
    let r = next(&mut w).await;
    assert_eq!(r.events.len(), 1);
    assert_eq!((r.events[0].kv.mod_revision, r.header.revision), (4, 4));
}
