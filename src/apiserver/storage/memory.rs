//! An in-memory [`Backend`] with etcd semantics (revisions, history, watch, compaction).
//!
//! Used by unit tests and, until the replicated store lands, by `k3rs server` (not persisted).

use super::{Backend, WatchStream};
use crate::store::StoreError;
use crate::store::state_machine::BoxFuture;
use crate::store::types::*;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

#[derive(Default)]
struct State {
    /// Every version of every key, oldest first; a `None` value marks a delete (tombstone).
    history: BTreeMap<Vec<u8>, Vec<(KeyValue, bool)>>,
    /// Every event, in revision order (for watch replay).
    events: Vec<(Revision, Event)>,
    revision: Revision,
    compacted: Revision,
}

/// The in-memory store. Cheap to clone.
#[derive(Clone)]
pub struct MemoryBackend {
    state: Arc<Mutex<State>>,
    tx: broadcast::Sender<(Revision, Vec<Event>)>,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self::new()
    }
}

fn in_range(key: &[u8], start: &[u8], end: &[u8]) -> bool {
    if end.is_empty() {
        key == start
    } else if end == [0] {
        key >= start
    } else {
        key >= start && key < end
    }
}

impl State {
    fn header(&self) -> ResponseHeader {
        ResponseHeader {
            cluster_id: 1,
            member_id: 1,
            revision: self.revision,
            raft_term: 1,
        }
    }

    fn current(&self, key: &[u8]) -> Option<&KeyValue> {
        self.history
            .get(key)
            .and_then(|v| v.last())
            .and_then(|(kv, live)| live.then_some(kv))
    }

    fn range(&self, req: &RangeRequest) -> Result<RangeResponse, StoreError> {
        let at = if req.revision == 0 {
            self.revision
        } else {
            req.revision
        };
        if req.revision != 0 && req.revision < self.compacted {
            return Err(StoreError::Compacted {
                compact_revision: self.compacted,
            });
        }
        if at > self.revision {
            return Err(StoreError::FutureRevision {
                current: self.revision,
            });
        }
        let mut kvs = Vec::new();
        let mut count = 0;
        let lo = std::ops::Bound::Included(req.key.clone());
        for (key, versions) in self.history.range((lo, std::ops::Bound::Unbounded)) {
            if !in_range(key, &req.key, &req.range_end) {
                if req.range_end.is_empty() || (req.range_end != [0] && key >= &req.range_end) {
                    break;
                }
                continue;
            }
            let Some((kv, live)) = versions.iter().rev().find(|(kv, _)| kv.mod_revision <= at)
            else {
                continue;
            };
            if !live {
                continue;
            }
            count += 1;
            if req.count_only || (req.limit > 0 && kvs.len() as i64 >= req.limit) {
                continue;
            }
            let mut kv = kv.clone();
            if req.keys_only {
                kv.value.clear();
            }
            kvs.push(kv);
        }
        let more = req.limit > 0 && count > req.limit;
        Ok(RangeResponse {
            header: self.header(),
            kvs,
            more,
            count,
        })
    }

    fn compare(&self, c: &Compare) -> bool {
        let kv = self.current(&c.key);
        let ord = match &c.target {
            CompareTarget::Version(v) => kv.map_or(0, |k| k.version).cmp(v),
            CompareTarget::CreateRevision(v) => kv.map_or(0, |k| k.create_revision).cmp(v),
            CompareTarget::ModRevision(v) => kv.map_or(0, |k| k.mod_revision).cmp(v),
            CompareTarget::Lease(v) => kv.map_or(0, |k| k.lease).cmp(v),
            CompareTarget::Value(v) => match kv {
                Some(k) => k.value.cmp(v),
                None => return false,
            },
        };
        match c.result {
            CompareResult::Equal => ord.is_eq(),
            CompareResult::NotEqual => ord.is_ne(),
            CompareResult::Greater => ord.is_gt(),
            CompareResult::Less => ord.is_lt(),
        }
    }

    fn apply_ops(
        &mut self,
        ops: &[RequestOp],
        rev: Revision,
        events: &mut Vec<Event>,
    ) -> Result<Vec<ResponseOp>, StoreError> {
        let mut out = Vec::new();
        for op in ops {
            match op {
                RequestOp::Range(r) => out.push(ResponseOp::Range(self.range(r)?)),
                RequestOp::Put(p) => {
                    let prev = self.current(&p.key).cloned();
                    let kv = KeyValue {
                        key: p.key.clone(),
                        create_revision: prev.as_ref().map_or(rev, |k| k.create_revision),
                        mod_revision: rev,
                        version: prev.as_ref().map_or(1, |k| k.version + 1),
                        value: p.value.clone(),
                        lease: p.lease,
                    };
                    self.history
                        .entry(p.key.clone())
                        .or_default()
                        .push((kv.clone(), true));
                    events.push(Event {
                        kind: EventType::Put,
                        kv,
                        prev_kv: prev.clone(),
                    });
                    out.push(ResponseOp::Put(PutResponse {
                        header: ResponseHeader::default(),
                        prev_kv: if p.prev_kv { prev } else { None },
                    }));
                }
                RequestOp::DeleteRange(d) => {
                    let keys: Vec<Vec<u8>> = self
                        .history
                        .iter()
                        .filter(|(k, v)| {
                            in_range(k, &d.key, &d.range_end)
                                && v.last().is_some_and(|(_, live)| *live)
                        })
                        .map(|(k, _)| k.clone())
                        .collect();
                    let mut prev_kvs = Vec::new();
                    for key in &keys {
                        let Some(prev) = self.current(key).cloned() else {
                            continue;
                        };
                        let tomb = KeyValue {
                            key: key.clone(),
                            mod_revision: rev,
                            ..Default::default()
                        };
                        self.history
                            .entry(key.clone())
                            .or_default()
                            .push((tomb.clone(), false));
                        events.push(Event {
                            kind: EventType::Delete,
                            kv: tomb,
                            prev_kv: Some(prev.clone()),
                        });
                        prev_kvs.push(prev);
                    }
                    out.push(ResponseOp::DeleteRange(DeleteRangeResponse {
                        header: ResponseHeader::default(),
                        deleted: keys.len() as i64,
                        prev_kvs: if d.prev_kv { prev_kvs } else { Vec::new() },
                    }));
                }
                RequestOp::Txn(_) => {
                    return Err(StoreError::InvalidRequest("nested txn".into()));
                }
            }
        }
        Ok(out)
    }
}

impl MemoryBackend {
    /// An empty store at revision 1.
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(4096);
        let state = State {
            revision: 1,
            ..Default::default()
        };
        Self {
            state: Arc::new(Mutex::new(state)),
            tx,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the data is still consistent because
        // every mutation is completed before the guard drops.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn do_txn(&self, req: TxnRequest) -> Result<TxnResponse, StoreError> {
        let mut st = self.lock();
        let succeeded = req.compare.iter().all(|c| st.compare(c));
        let ops = if succeeded {
            &req.success
        } else {
            &req.failure
        };
        let writes = ops
            .iter()
            .any(|o| matches!(o, RequestOp::Put(_) | RequestOp::DeleteRange(_)));
        let rev = if writes { st.revision + 1 } else { st.revision };
        let mut events = Vec::new();
        let responses = st.apply_ops(ops, rev, &mut events)?;
        if !events.is_empty() {
            st.revision = rev;
            for e in &events {
                st.events.push((rev, e.clone()));
            }
            let _ = self.tx.send((rev, events));
        }
        let mut responses = responses;
        let header = st.header();
        for r in &mut responses {
            match r {
                ResponseOp::Range(x) => x.header = header.clone(),
                ResponseOp::Put(x) => x.header = header.clone(),
                ResponseOp::DeleteRange(x) => x.header = header.clone(),
                ResponseOp::Txn(x) => x.header = header.clone(),
            }
        }
        Ok(TxnResponse {
            header,
            succeeded,
            responses,
        })
    }
}

impl Backend for MemoryBackend {
    fn range(&self, req: RangeRequest) -> BoxFuture<'static, Result<RangeResponse, StoreError>> {
        let res = self.lock().range(&req);
        Box::pin(async move { res })
    }

    fn txn(&self, req: TxnRequest) -> BoxFuture<'static, Result<TxnResponse, StoreError>> {
        let res = self.do_txn(req);
        Box::pin(async move { res })
    }

    fn watch(&self, req: WatchRequest) -> BoxFuture<'static, Result<WatchStream, StoreError>> {
        let st = self.lock();
        let start = if req.start_revision == 0 {
            st.revision + 1
        } else {
            req.start_revision
        };
        if start < st.compacted {
            let c = st.compacted;
            return Box::pin(async move {
                Err(StoreError::Compacted {
                    compact_revision: c,
                })
            });
        }
        let matches = {
            let req = req.clone();
            move |e: &Event| {
                in_range(&e.kv.key, &req.key, &req.range_end)
                    && !(req.filter_puts && e.kind == EventType::Put)
                    && !(req.filter_deletes && e.kind == EventType::Delete)
            }
        };
        // Replay under the lock and subscribe before releasing it, so no event is missed.
        let mut backlog: Vec<WatchResponse> = Vec::new();
        for (rev, e) in st.events.iter().filter(|(r, _)| *r >= start) {
            if !matches(e) {
                continue;
            }
            match backlog.last_mut() {
                Some(last) if last.header.revision == *rev => last.events.push(e.clone()),
                _ => backlog.push(WatchResponse {
                    header: ResponseHeader {
                        revision: *rev,
                        ..st.header()
                    },
                    events: vec![e.clone()],
                }),
            }
        }
        let header = st.header();
        let mut rx = self.tx.subscribe();
        drop(st);
        let live = async_stream(move |yield_tx: tokio::sync::mpsc::Sender<_>| async move {
            for b in backlog {
                if yield_tx.send(Ok(b)).await.is_err() {
                    return;
                }
            }
            loop {
                match rx.recv().await {
                    Ok((rev, events)) => {
                        let events: Vec<Event> =
                            events.into_iter().filter(|e| matches(e)).collect();
                        if events.is_empty() {
                            continue;
                        }
                        let resp = WatchResponse {
                            header: ResponseHeader {
                                revision: rev,
                                ..header.clone()
                            },
                            events,
                        };
                        if yield_tx.send(Ok(resp)).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = yield_tx
                            .send(Err(StoreError::Compacted {
                                compact_revision: 0,
                            }))
                            .await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Box::pin(async move { Ok(live) })
    }

    fn compact(&self, revision: Revision) -> BoxFuture<'static, Result<(), StoreError>> {
        let mut st = self.lock();
        if revision > st.revision {
            let current = st.revision;
            return Box::pin(async move { Err(StoreError::FutureRevision { current }) });
        }
        st.compacted = st.compacted.max(revision);
        st.events.retain(|(r, _)| *r >= revision);
        for versions in st.history.values_mut() {
            // Keep the newest version at or below the compact revision, and everything after.
            let keep_from = versions
                .iter()
                .rposition(|(kv, _)| kv.mod_revision <= revision)
                .unwrap_or(0);
            versions.drain(..keep_from);
        }
        st.history
            .retain(|_, v| !(v.len() == 1 && !v[0].1 && v[0].0.mod_revision <= revision));
        Box::pin(async move { Ok(()) })
    }
}

/// Turn a producer task into a stream through a small channel.
fn async_stream<F, Fut>(f: F) -> WatchStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<WatchResponse, StoreError>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn put(key: &str, val: &str) -> TxnRequest {
        TxnRequest {
            compare: vec![],
            success: vec![RequestOp::Put(PutRequest {
                key: key.into(),
                value: val.into(),
                ..Default::default()
            })],
            failure: vec![],
        }
    }

    #[tokio::test]
    async fn revisions_grow_per_txn_and_history_is_readable() {
        let b = MemoryBackend::new();
        let r1 = b.txn(put("/a", "1")).await.unwrap().header.revision;
        let r2 = b.txn(put("/a", "2")).await.unwrap().header.revision;
        assert_eq!(r2, r1 + 1);
        let old = b
            .range(RangeRequest {
                key: "/a".into(),
                revision: r1,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(old.kvs[0].value, b"1");
        b.compact(r2).await.unwrap();
        let err = b
            .range(RangeRequest {
                key: "/a".into(),
                revision: r1,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Compacted { .. }));
    }

    #[tokio::test]
    async fn create_compare_fails_when_key_exists() {
        let b = MemoryBackend::new();
        let mut t = put("/k", "x");
        t.compare.push(Compare {
            key: "/k".into(),
            range_end: vec![],
            target: CompareTarget::ModRevision(0),
            result: CompareResult::Equal,
        });
        assert!(b.txn(t.clone()).await.unwrap().succeeded);
        assert!(!b.txn(t).await.unwrap().succeeded);
    }

    #[tokio::test]
    async fn watch_replays_from_a_revision_then_follows() {
        let b = MemoryBackend::new();
        let r1 = b.txn(put("/p/a", "1")).await.unwrap().header.revision;
        let mut w = b
            .watch(WatchRequest {
                key: "/p/".into(),
                range_end: super::super::prefix_end(b"/p/"),
                start_revision: r1,
                ..Default::default()
            })
            .await
            .unwrap();
        b.txn(put("/p/b", "2")).await.unwrap();
        b.txn(put("/q/c", "3")).await.unwrap();
        let first = w.next().await.unwrap().unwrap();
        assert_eq!(first.events[0].kv.key, b"/p/a");
        let second = w.next().await.unwrap().unwrap();
        assert_eq!(second.events[0].kv.key, b"/p/b");
    }
}
