//! The etcd v3 gRPC API of k3rs through the Rust `etcd-client` crate: watch streams with
//! several watches, progress, compaction, filters; range sorting and limits; txn; error codes
//! and messages; `hasleader`. The server runs in-process over the real store with a fake
//! replicator (so a test can take the leader away).

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, SortOrder, SortTarget, Txn,
    TxnOp, TxnOpResponse, WatchFilterType, WatchOptions, WatchResponse, WatchStream,
};
use k3rs::store::StoreOptions;
use k3rs::store::testing::FakeReplicator;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

struct Server {
    endpoint: String,
    replicator: Arc<FakeReplicator>,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

const ME: u64 = 0x51;

async fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let (sm, core) =
        k3rs::store::open_state(&dir.path().join("db"), &StoreOptions::default()).unwrap();
    let replicator = FakeReplicator::new(sm, ME);
    let store = core.into_store(replicator.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = listener.local_addr().unwrap().to_string();
    let shutdown = CancellationToken::new();
    tokio::spawn(k3rs::store::etcd::serve_listener(
        Arc::new(store),
        listener,
        shutdown.clone(),
    ));
    Server {
        endpoint,
        replicator,
        shutdown,
        _dir: dir,
    }
}

async fn client(s: &Server) -> Client {
    Client::connect([&s.endpoint], None).await.unwrap()
}

/// The next response, failing the test after 5 s instead of hanging.
async fn next(w: &mut WatchStream) -> WatchResponse {
    tokio::time::timeout(Duration::from_secs(5), w.message())
        .await
        .expect("watch response in time")
        .unwrap()
        .expect("stream open")
}

fn status_of(e: etcd_client::Error) -> tonic::Status {
    match e {
        etcd_client::Error::GRpcStatus(s) => s,
        other => panic!("not a grpc status: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stream_carries_several_watches_with_their_own_ids() {
    let s = server().await;
    let mut c = client(&s).await;
    let mut w = c
        .watch("a/", Some(WatchOptions::new().with_prefix()))
        .await
        .unwrap();
    let created = next(&mut w).await;
    assert!(created.created());
    assert_eq!(created.watch_id(), 0, "etcd assigns ids from 0");
    w.watch("b", Some(WatchOptions::new().with_watch_id(7)))
        .await
        .unwrap();
    let created = next(&mut w).await;
    assert!(created.created());
    assert_eq!(created.watch_id(), 7);

    c.put("a/1", "x", None).await.unwrap();
    c.put("b", "y", None).await.unwrap();
    let r = next(&mut w).await;
    assert_eq!(
        (r.watch_id(), r.events()[0].kv().unwrap().key()),
        (0, &b"a/1"[..])
    );
    let r = next(&mut w).await;
    assert_eq!(
        (r.watch_id(), r.events()[0].kv().unwrap().key()),
        (7, &b"b"[..])
    );

    // A second watch with a taken id is refused; auto ids skip taken ones.
    w.watch("c", Some(WatchOptions::new().with_watch_id(7)))
        .await
        .unwrap();
    let r = next(&mut w).await;
    assert!(r.created() && r.canceled());
    assert_eq!(r.watch_id(), -1);

    w.cancel(0).await.unwrap();
    let r = next(&mut w).await;
    assert!(r.canceled());
    assert_eq!(r.watch_id(), 0);
    c.put("a/2", "x", None).await.unwrap();
    c.put("b", "z", None).await.unwrap();
    let r = next(&mut w).await;
    assert_eq!(r.watch_id(), 7, "the canceled watch stays silent");
    assert_eq!(r.events()[0].kv().unwrap().value(), b"z");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_prev_kv_filters_and_progress() {
    let s = server().await;
    let mut c = client(&s).await;
    c.put("k", "1", None).await.unwrap(); // rev 2
    c.put("k", "2", None).await.unwrap(); // rev 3
    c.delete("k", None).await.unwrap(); // rev 4
    let mut w = c
        .watch(
            "k",
            Some(
                WatchOptions::new()
                    .with_start_revision(2)
                    .with_prev_key()
                    .with_filters([WatchFilterType::NoPut]),
            ),
        )
        .await
        .unwrap();
    assert!(next(&mut w).await.created());
    let r = next(&mut w).await;
    assert_eq!(r.events().len(), 1, "puts are filtered");
    let e = &r.events()[0];
    assert_eq!(e.event_type(), EventType::Delete);
    assert_eq!(e.kv().unwrap().mod_revision(), 4);
    assert_eq!(e.prev_kv().unwrap().value(), b"2");

    w.request_progress().await.unwrap();
    let r = next(&mut w).await;
    assert!(r.events().is_empty() && !r.created() && !r.canceled());
    assert_eq!(r.header().unwrap().revision(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_a_compacted_revision_is_created_then_canceled() {
    let s = server().await;
    let mut c = client(&s).await;
    for i in 0..5 {
        c.put("k", format!("{i}"), None).await.unwrap();
    }
    c.compact(4, None).await.unwrap();
    let mut w = c
        .watch("k", Some(WatchOptions::new().with_start_revision(2)))
        .await
        .unwrap();
    assert!(next(&mut w).await.created());
    let r = next(&mut w).await;
    assert!(r.canceled());
    assert_eq!(r.compact_revision(), 4);

    let err = c
        .get("k", Some(GetOptions::new().with_revision(2)))
        .await
        .unwrap_err();
    let st = status_of(err);
    assert_eq!(st.code(), tonic::Code::OutOfRange);
    assert_eq!(
        st.message(),
        "etcdserver: mvcc: required revision has been compacted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_sorts_and_filters_before_the_limit_like_etcd() {
    let s = server().await;
    let mut c = client(&s).await;
    for (k, times) in [("a", 3), ("b", 1), ("c", 2)] {
        for i in 0..times {
            c.put(k, format!("{k}{i}"), None).await.unwrap();
        }
    }
    let r = c
        .get(
            "",
            Some(
                GetOptions::new()
                    .with_all_keys()
                    .with_sort(SortTarget::Version, SortOrder::Descend)
                    .with_limit(2),
            ),
        )
        .await
        .unwrap();
    let keys: Vec<&[u8]> = r.kvs().iter().map(|kv| kv.key()).collect();
    assert_eq!(keys, [&b"a"[..], b"c"]);
    assert!(r.more());
    assert_eq!(r.count(), 3);

    // a was last modified at rev 4, b at 5, c at 7.
    let r = c
        .get(
            "",
            Some(
                GetOptions::new()
                    .with_all_keys()
                    .with_min_mod_revision(5)
                    .with_keys_only(),
            ),
        )
        .await
        .unwrap();
    let keys: Vec<&[u8]> = r.kvs().iter().map(|kv| kv.key()).collect();
    assert_eq!(keys, [&b"b"[..], b"c"]);
    assert!(r.kvs().iter().all(|kv| kv.value().is_empty()));

    let r = c
        .get("a", Some(GetOptions::new().with_prefix().with_count_only()))
        .await
        .unwrap();
    assert!(r.kvs().is_empty());
    assert_eq!(r.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txn_takes_a_branch_and_nests() {
    let s = server().await;
    let mut c = client(&s).await;
    c.put("k", "v", None).await.unwrap();
    let inner = Txn::new()
        .when([Compare::version("k", CompareOp::Greater, 0)])
        .and_then([TxnOp::get("k", None)]);
    let t = Txn::new()
        .when([Compare::value("k", CompareOp::Equal, "v")])
        .and_then([TxnOp::put("k", "w", None), TxnOp::txn(inner)])
        .or_else([TxnOp::get("k", None)]);
    let r = c.txn(t).await.unwrap();
    assert!(r.succeeded());
    let TxnOpResponse::Txn(nested) = &r.op_responses()[1] else {
        panic!("nested txn response expected");
    };
    let TxnOpResponse::Get(g) = &nested.op_responses()[0] else {
        panic!("get expected");
    };
    assert_eq!(
        g.kvs()[0].value(),
        b"w",
        "the nested read sees the txn's write"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_etcds_codes_and_messages() {
    let s = server().await;
    let mut c = client(&s).await;
    let dup = Txn::new().and_then([TxnOp::put("x", "1", None), TxnOp::put("x", "2", None)]);
    let st = status_of(c.txn(dup).await.unwrap_err());
    assert_eq!(st.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        st.message(),
        "etcdserver: duplicate key given in txn request"
    );

    let many: Vec<TxnOp> = (0..129)
        .map(|i| TxnOp::put(format!("k{i}"), "v", None))
        .collect();
    let st = status_of(c.txn(Txn::new().and_then(many)).await.unwrap_err());
    assert_eq!(st.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        st.message(),
        "etcdserver: too many operations in txn request"
    );

    let st = status_of(c.lease_revoke(12345).await.unwrap_err());
    assert_eq!(st.code(), tonic::Code::NotFound);
    assert_eq!(st.message(), "etcdserver: requested lease not found");

    let st = status_of(c.put("", "v", None).await.unwrap_err());
    assert_eq!(st.message(), "etcdserver: key is not provided");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_require_a_leader_fail_without_one() {
    let s = server().await;
    let mut plain = client(&s).await;
    let mut strict = Client::connect(
        [&s.endpoint],
        Some(ConnectOptions::new().with_require_leader(true)),
    )
    .await
    .unwrap();
    strict.put("k", "v", None).await.unwrap();
    s.replicator.set_leader(0);
    let st = status_of(strict.get("k", None).await.unwrap_err());
    assert_eq!(st.code(), tonic::Code::Unavailable);
    assert_eq!(st.message(), "etcdserver: no leader");
    let st = status_of(strict.watch("k", None).await.unwrap_err());
    assert_eq!(st.message(), "etcdserver: no leader");
    // Without the metadata a serializable read is still served locally.
    let r = plain
        .get("k", Some(GetOptions::new().with_serializable()))
        .await
        .unwrap();
    assert_eq!(r.kvs()[0].value(), b"v");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_members_and_snapshot() {
    let s = server().await;
    let mut c = client(&s).await;
    c.put("k", "v", None).await.unwrap();
    let st = c.status().await.unwrap();
    assert_eq!(st.leader(), ME);
    assert!(st.version().starts_with("3.4"));
    assert_eq!(st.header().unwrap().revision(), 2);
    let m = c.member_list().await.unwrap();
    assert_eq!(m.members()[0].id(), ME);

    let mut snap = c.snapshot().await.unwrap();
    let mut file = Vec::new();
    while let Some(chunk) = snap.message().await.unwrap() {
        file.extend_from_slice(chunk.blob());
    }
    let inner = k3rs::store::etcd::open_snapshot(&file).expect("a sealed k3rs snapshot");
    assert!(!inner.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_that_requires_a_leader_ends_when_the_leader_is_lost() {
    let s = server().await;
    let mut strict = Client::connect(
        [&s.endpoint],
        Some(ConnectOptions::new().with_require_leader(true)),
    )
    .await
    .unwrap();
    let mut w = strict.watch("k", None).await.unwrap();
    assert!(next(&mut w).await.created());
    s.replicator.set_leader(0);
    let end = tokio::time::timeout(Duration::from_secs(5), w.message())
        .await
        .expect("the stream ends in time");
    let st = status_of(end.unwrap_err());
    assert_eq!(st.code(), tonic::Code::Unavailable);
    assert_eq!(st.message(), "etcdserver: no leader");
}
