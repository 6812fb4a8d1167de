//! Unit tests of the MVCC store's durability, snapshots and edge cases.

use super::Mvcc;
use crate::store::error::StoreError;
use crate::store::types::*;

fn put(key: &[u8], value: &[u8]) -> PutRequest {
    PutRequest {
        key: key.to_vec(),
        value: value.to_vec(),
        ..PutRequest::default()
    }
}

fn get(m: &Mvcc, key: &[u8]) -> Option<KeyValue> {
    m.range(&RangeRequest {
        key: key.to_vec(),
        ..RangeRequest::default()
    })
    .unwrap()
    .kvs
    .pop()
}

#[test]
fn applied_batch_and_index_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let m = Mvcc::open(dir.path(), 1 << 20).unwrap();
        let mut b = m.begin();
        b.put(&put(b"a", b"1")).unwrap();
        b.put(&put(b"b", b"2")).unwrap();
        b.commit(7).unwrap();
        // A batch that is never committed leaves no trace.
        let mut b = m.begin();
        b.put(&put(b"c", b"3")).unwrap();
        drop(b);
        m.sync().unwrap();
    }
    let m = Mvcc::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(m.applied_index(), 7);
    assert_eq!(m.current_revision(), 3);
    assert_eq!(get(&m, b"b").unwrap().value, b"2");
    assert_eq!(get(&m, b"b").unwrap().mod_revision, 3);
    assert!(get(&m, b"c").is_none());
}

#[test]
fn a_small_batch_cut_short_by_a_crash_is_finished_from_its_redo_record() {
    for kept in [0, 1, 3] {
        let dir = tempfile::tempdir().unwrap();
        {
            let m = Mvcc::open(dir.path(), 1 << 20).unwrap();
            let mut b = m.begin();
            b.put(&put(b"a", b"1")).unwrap();
            b.commit(7).unwrap();
            let mut b = m.begin();
            b.put(&put(b"a", b"2")).unwrap();
            b.put(&put(b"b", b"3")).unwrap();
            b.commit_cut_short(8, kept).unwrap();
            m.sync().unwrap();
        }
        let m = Mvcc::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(m.applied_index(), 8, "kept {kept}");
        assert_eq!(m.current_revision(), 4);
        let a = get(&m, b"a").unwrap();
        assert_eq!(
            (a.value.as_slice(), a.version, a.mod_revision),
            (&b"2"[..], 2, 3)
        );
        assert_eq!(get(&m, b"b").unwrap().value, b"3");
    }
}

#[test]
fn a_large_batch_is_not_undone_by_an_older_redo_record() {
    let dir = tempfile::tempdir().unwrap();
    {
        let m = Mvcc::open(dir.path(), 1 << 20).unwrap();
        let mut b = m.begin();
        b.put(&put(b"a", b"small")).unwrap();
        b.commit(1).unwrap();
        // Larger than the redo limit: committed with sled's atomic batch instead.
        let big = vec![b'x'; 40 * 1024];
        let mut b = m.begin();
        b.put(&put(b"a", &big)).unwrap();
        b.commit(2).unwrap();
        m.sync().unwrap();
    }
    let m = Mvcc::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(m.applied_index(), 2);
    assert_eq!(get(&m, b"a").unwrap().value.len(), 40 * 1024);
}

#[test]
fn corrupt_snapshot_is_refused_and_state_kept() {
    let dir = tempfile::tempdir().unwrap();
    let m = Mvcc::open(dir.path(), 1 << 20).unwrap();
    let mut b = m.begin();
    b.put(&put(b"a", b"1")).unwrap();
    b.commit(1).unwrap();
    let snap = m.snapshot().unwrap();
    let mut b = m.begin();
    b.put(&put(b"a", b"2")).unwrap();
    b.put(&put(b"z", b"9")).unwrap();
    b.commit(2).unwrap();

    let mut bad = snap.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x40;
    assert!(matches!(m.restore(&bad, 5), Err(StoreError::Corrupt(_))));
    assert!(matches!(
        m.restore(&snap[..10], 5),
        Err(StoreError::Corrupt(_))
    ));
    assert_eq!(get(&m, b"a").unwrap().value, b"2");
    assert_eq!(m.applied_index(), 2);

    m.restore(&snap, 5).unwrap();
    assert_eq!(m.applied_index(), 5);
    assert_eq!(m.current_revision(), 2);
    assert_eq!(get(&m, b"a").unwrap().value, b"1");
    assert!(get(&m, b"z").is_none());
}

#[test]
fn restored_snapshot_persists_and_continues_revisions() {
    let src_dir = tempfile::tempdir().unwrap();
    let src = Mvcc::open(src_dir.path(), 1 << 20).unwrap();
    let mut b = src.begin();
    b.put(&put(b"k", b"v")).unwrap();
    b.lease_grant(42, 30).unwrap();
    b.compact(2).unwrap();
    b.commit(9).unwrap();
    let snap = src.snapshot().unwrap();

    let dir = tempfile::tempdir().unwrap();
    {
        let m = Mvcc::open(dir.path(), 1 << 20).unwrap();
        m.restore(&snap, 9).unwrap();
        m.sync().unwrap();
    }
    let m = Mvcc::open(dir.path(), 1 << 20).unwrap();
    assert_eq!((m.current_revision(), m.compact_revision()), (2, 2));
    assert_eq!(m.leases().unwrap(), vec![(42, 30)]);
    let mut b = m.begin();
    let r = b.put(&put(b"k", b"w")).unwrap();
    assert_eq!(r.header.revision, 3);
    b.commit(10).unwrap();
    assert_eq!(get(&m, b"k").unwrap().version, 2);
}

#[test]
fn reads_below_compaction_and_above_current_fail_distinctly() {
    let dir = tempfile::tempdir().unwrap();
    let m = Mvcc::open(dir.path(), 1 << 20).unwrap();
    let mut b = m.begin();
    for i in 0..5u8 {
        b.put(&put(b"k", &[i])).unwrap();
    }
    b.compact(4).unwrap();
    assert!(matches!(
        b.compact(3),
        Err(StoreError::Compacted {
            compact_revision: 4
        })
    ));
    assert!(matches!(
        b.compact(9),
        Err(StoreError::FutureRevision { current: 6 })
    ));
    b.commit(1).unwrap();
    let at = |rev| {
        m.range(&RangeRequest {
            key: b"k".to_vec(),
            revision: rev,
            ..RangeRequest::default()
        })
    };
    assert!(matches!(
        at(3),
        Err(StoreError::Compacted {
            compact_revision: 4
        })
    ));
    assert!(matches!(
        at(7),
        Err(StoreError::FutureRevision { current: 6 })
    ));
    assert_eq!(at(4).unwrap().kvs[0].value, vec![2]);
    assert_eq!(at(4).unwrap().header.revision, 6);
}

#[test]
fn lease_revoke_deletes_attached_keys_in_one_revision() {
    let dir = tempfile::tempdir().unwrap();
    let m = Mvcc::open(dir.path(), 1 << 20).unwrap();
    let mut b = m.begin();
    b.lease_grant(7, 10).unwrap();
    assert!(matches!(
        b.lease_grant(7, 10),
        Err(StoreError::LeaseExists { id: 7 })
    ));
    for k in [b"a", b"b"] {
        b.put(&PutRequest {
            lease: 7,
            ..put(k, b"v")
        })
        .unwrap();
    }
    assert!(matches!(
        b.put(&PutRequest {
            lease: 8,
            ..put(b"c", b"v")
        }),
        Err(StoreError::LeaseNotFound { id: 8 })
    ));
    // Re-attaching `b` to no lease detaches it.
    b.put(&put(b"b", b"w")).unwrap();
    let c = b.commit(1).unwrap();
    assert_eq!(c.revision, 4);
    assert_eq!(m.lease_keys(7).unwrap(), vec![b"a".to_vec()]);

    let mut b = m.begin();
    b.lease_revoke(7).unwrap();
    let c = b.commit(2).unwrap();
    assert_eq!(c.revisions.len(), 1);
    assert_eq!(c.revisions[0].revision, 5);
    assert_eq!(c.revisions[0].events[0].kind, EventType::Delete);
    assert!(get(&m, b"a").is_none());
    assert!(get(&m, b"b").is_some());
    assert!(m.leases().unwrap().is_empty());
    assert!(m.lease_keys(7).unwrap().is_empty());
}

#[test]
fn readers_never_see_half_of_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let m = std::sync::Arc::new(Mvcc::open(dir.path(), 1 << 20).unwrap());
    let writer = {
        let m = m.clone();
        std::thread::spawn(move || {
            for i in 1..=300u32 {
                let mut b = m.begin();
                let v = i.to_be_bytes();
                b.put(&put(b"x", &v)).unwrap();
                b.put(&put(b"y", &v)).unwrap();
                b.commit(u64::from(i)).unwrap();
            }
        })
    };
    let mut seen = 0;
    while !writer.is_finished() || seen == 0 {
        let r = m
            .range(&RangeRequest {
                key: b"x".to_vec(),
                range_end: b"z".to_vec(),
                ..RangeRequest::default()
            })
            .unwrap();
        if r.kvs.len() == 2 {
            assert_eq!(r.kvs[0].value, r.kvs[1].value, "a batch is visible whole");
            assert_eq!(r.kvs[1].mod_revision, r.header.revision);
            seen += 1;
        }
    }
    writer.join().unwrap();
    assert!(seen > 0);
}
