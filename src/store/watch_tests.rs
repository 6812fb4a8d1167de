//! Model-based property test of watchers through the `Store`: random puts, deletes and
//! compactions interleaved with watchers started at random revisions and drained at random
//! times (tiny buffers, so they keep falling back to history). Every watcher must deliver
//! exactly the model's events from its start revision, whole revisions per response, or end
//! with `Compacted` once the history it needs is gone.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;

use crate::store::mvcc::KeyRange;
use crate::store::testing::FakeReplicator;
use crate::store::*;

#[derive(Clone, Debug)]
enum Op {
    Put(u8, u8),
    Delete(u8, Option<u8>),
    /// Compact at a point between the compact and current revisions, in percent.
    Compact(u8),
    /// Start a watcher `back` revisions before the current one, on a key range.
    Watch {
        back: i64,
        key: u8,
        end: Option<u8>,
        filter_deletes: bool,
    },
    /// Drain watcher `i % n` up to the current revision.
    Drain(usize),
}

fn key(k: u8) -> Vec<u8> {
    vec![b'k', k]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u8..6, any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
        2 => (0u8..6, prop::option::of(0u8..7)).prop_map(|(k, e)| Op::Delete(k, e)),
        1 => (0u8..=100).prop_map(Op::Compact),
        2 => (0i64..12, 0u8..6, prop::option::of(0u8..7), prop::bool::weighted(0.2)).prop_map(
            |(back, key, end, filter_deletes)| Op::Watch { back, key, end, filter_deletes }
        ),
        2 => any::<usize>().prop_map(Op::Drain),
    ]
}

/// `(revision, kind, key, value, version, create_revision)`: what a watcher must see.
type Ev = (Revision, EventType, Vec<u8>, Vec<u8>, i64, Revision);

struct W {
    watcher: Watcher,
    range: KeyRange,
    start: Revision,
    filter_deletes: bool,
    got: Vec<Ev>,
    last_response_rev: Revision,
    compacted: Option<Revision>,
}

fn end_of(e: Option<u8>) -> Vec<u8> {
    e.map(key).unwrap_or_default()
}

async fn drain(w: &mut W, current: Revision) -> Result<(), TestCaseError> {
    while w.compacted.is_none() {
        w.watcher.request_progress();
        let next = tokio::time::timeout(Duration::from_secs(5), w.watcher.recv()).await;
        let Ok(next) = next else {
            prop_assert!(false, "watcher stalled");
            return Ok(());
        };
        match next {
            Some(Ok(resp)) => {
                if let Some(first) = resp.events.first() {
                    prop_assert!(
                        first.kv.mod_revision > w.last_response_rev,
                        "a revision split across responses or repeated"
                    );
                }
                for e in &resp.events {
                    w.got.push((
                        e.kv.mod_revision,
                        e.kind,
                        e.kv.key.clone(),
                        e.kv.value.clone(),
                        e.kv.version,
                        e.kv.create_revision,
                    ));
                }
                if let Some(last) = resp.events.last() {
                    w.last_response_rev = last.kv.mod_revision;
                }
                if resp.header.revision >= current {
                    return Ok(());
                }
            }
            Some(Err(StoreError::Compacted { compact_revision })) => {
                w.compacted = Some(compact_revision);
            }
            other => prop_assert!(
                false,
                "unexpected watch result {:?}",
                other.map(|r| r.err())
            ),
        }
    }
    Ok(())
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        cache_bytes: 1 << 20,
        watch_buffer: 2,
        history_chunk: 3,
        ..StoreOptions::default()
    };
    let (sm, core) = open_state(dir.path(), &opts).unwrap();
    let store = core.into_store(FakeReplicator::new(sm, 1));
    // The model: live keys and every event.
    let mut live: BTreeMap<Vec<u8>, (Vec<u8>, i64, Revision)> = BTreeMap::new();
    let mut events: Vec<Ev> = Vec::new();
    let (mut rev, mut compact) = (1i64, 0i64);
    let mut watchers: Vec<W> = Vec::new();
    for op in ops {
        match op {
            Op::Put(k, v) => {
                store
                    .put(PutRequest {
                        key: key(k),
                        value: vec![v],
                        ..PutRequest::default()
                    })
                    .await
                    .unwrap();
                rev += 1;
                let e = live.entry(key(k)).or_insert((vec![], 0, rev));
                *e = (vec![v], e.1 + 1, e.2);
                events.push((rev, EventType::Put, key(k), vec![v], e.1, e.2));
            }
            Op::Delete(k, e) => {
                let range = KeyRange::new(&key(k), &end_of(e));
                let doomed: Vec<Vec<u8>> =
                    live.keys().filter(|x| range.contains(x)).cloned().collect();
                let r = store
                    .delete_range(DeleteRangeRequest {
                        key: key(k),
                        range_end: end_of(e),
                        prev_kv: false,
                    })
                    .await
                    .unwrap();
                prop_assert_eq!(r.deleted as usize, doomed.len());
                if !doomed.is_empty() {
                    rev += 1;
                }
                for d in doomed {
                    live.remove(&d);
                    events.push((rev, EventType::Delete, d, vec![], 0, 0));
                }
            }
            Op::Compact(f) => {
                let lo = compact.max(1);
                let at = lo + (rev - lo) * i64::from(f) / 100;
                if at > compact {
                    store.compact(at).await.unwrap();
                    compact = at;
                }
            }
            Op::Watch {
                back,
                key: k,
                end,
                filter_deletes,
            } => {
                let start = (rev - back).max(1);
                let req = WatchRequest {
                    key: key(k),
                    range_end: end_of(end),
                    start_revision: start,
                    filter_deletes,
                    ..WatchRequest::default()
                };
                match store.watch(req) {
                    Ok(watcher) => watchers.push(W {
                        watcher,
                        range: KeyRange::new(&key(k), &end_of(end)),
                        start,
                        filter_deletes,
                        got: Vec::new(),
                        last_response_rev: 0,
                        compacted: None,
                    }),
                    Err(StoreError::Compacted { compact_revision }) => {
                        prop_assert!(start < compact && compact_revision == compact);
                    }
                    Err(e) => prop_assert!(false, "watch failed: {e}"),
                }
            }
            Op::Drain(i) => {
                if !watchers.is_empty() {
                    let n = watchers.len();
                    drain(&mut watchers[i % n], rev).await?;
                }
            }
        }
    }
    for w in &mut watchers {
        drain(w, rev).await?;
        let want: Vec<Ev> = events
            .iter()
            .filter(|e| e.0 >= w.start && w.range.contains(&e.2))
            .filter(|e| !(w.filter_deletes && e.1 == EventType::Delete))
            .cloned()
            .collect();
        match w.compacted {
            None => prop_assert_eq!(&w.got, &want),
            Some(c) => {
                // A correct prefix, cut where the history it needed was compacted.
                prop_assert!(c <= compact);
                prop_assert_eq!(&w.got[..], &want[..w.got.len()]);
                let next_needed = w.got.last().map_or(w.start, |e| e.0 + 1);
                prop_assert!(next_needed < c, "compacted although nothing was missing");
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn watchers_deliver_exactly_the_model_events(ops in prop::collection::vec(op(), 1..60)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(ops))?;
    }
}
