//! A single-member [`EtcdBackend`] over the MVCC core on a local sled tree, without raft:
//! for testing the etcd facade (unit tests, `tests/etcdctl.rs`) before and besides the real
//! store. Writes apply directly; watches replay history then follow a broadcast of commits;
//! lease TTLs are tracked but leases never expire. Not for production.

use super::backend::{EtcdBackend, EventStream, KeepAlive, LeaseList};
use crate::store::mvcc::{KeyRange, Mvcc, RevisionEvents};
use crate::store::state_machine::BoxFuture;
use crate::store::{
    DeleteRangeRequest, DeleteRangeResponse, EventType, LeaseGrantResponse,
    LeaseTimeToLiveResponse, Member, PutRequest, PutResponse, RangeRequest, RangeResponse,
    ResponseHeader, Result, Revision, StoreError, StoreStatus, TxnRequest, TxnResponse,
    WatchRequest, WatchResponse,
};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, broadcast};

const CLUSTER_ID: u64 = 0xc1;
const MEMBER_ID: u64 = 0x8e9e05c52164694d;
const TERM: u64 = 2;

struct Inner {
    mvcc: Mvcc,
    commits: broadcast::Sender<Arc<Vec<RevisionEvents>>>,
    index: AtomicU64,
    leader: AtomicBool,
    next_lease: AtomicI64,
    /// Lease id -> (granted ttl, last renewal).
    lease_clock: Mutex<HashMap<i64, (i64, Instant)>>,
    client_url: Mutex<String>,
    progress_interval: Duration,
}

/// See the module doc. Cheap to clone.
#[derive(Clone)]
pub struct MemoryBackend {
    inner: Arc<Inner>,
}

impl MemoryBackend {
    /// Opens (or creates) the MVCC tree under `dir`.
    ///
    /// # Errors
    /// Storage failures.
    pub fn open(dir: &Path) -> Result<Self> {
        let mvcc = Mvcc::open(dir, 16 << 20)?;
        let (commits, _) = broadcast::channel(1024);
        Ok(MemoryBackend {
            inner: Arc::new(Inner {
                index: AtomicU64::new(mvcc.applied_index()),
                mvcc,
                commits,
                leader: AtomicBool::new(true),
                next_lease: AtomicI64::new(0x694d_7a8c_0000_0001),
                lease_clock: Mutex::new(HashMap::new()),
                client_url: Mutex::new(String::new()),
                progress_interval: Duration::from_millis(200),
            }),
        })
    }

    /// Pretend the member lost (`false`) or found (`true`) its leader.
    pub fn set_leader(&self, leader: bool) {
        self.inner.leader.store(leader, Ordering::SeqCst);
    }

    /// The client URL reported by the member list.
    pub fn set_client_url(&self, url: &str) {
        if let Ok(mut u) = self.inner.client_url.lock() {
            *u = url.to_string();
        }
    }

    fn header(&self) -> ResponseHeader {
        header(self.inner.mvcc.current_revision())
    }

    /// Runs `f` on a write batch, commits, and publishes the new revisions.
    fn write<T>(
        &self,
        f: impl FnOnce(&mut crate::store::mvcc::WriteBatch<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut batch = self.inner.mvcc.begin();
        let out = f(&mut batch)?;
        let index = self.inner.index.fetch_add(1, Ordering::SeqCst) + 1;
        let committed = batch.commit(index)?;
        if !committed.revisions.is_empty() {
            let _ = self.inner.commits.send(Arc::new(committed.revisions));
        }
        Ok(out)
    }
}

fn header(revision: Revision) -> ResponseHeader {
    ResponseHeader {
        cluster_id: CLUSTER_ID,
        member_id: MEMBER_ID,
        revision,
        raft_term: TERM,
    }
}

fn ready<'a, T: Send + 'a>(v: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(v))
}

impl EtcdBackend for MemoryBackend {
    fn range(&self, req: RangeRequest) -> BoxFuture<'_, Result<RangeResponse>> {
        ready(self.inner.mvcc.range(&req).map(|mut r| {
            r.header = header(r.header.revision);
            r
        }))
    }

    fn put(&self, req: PutRequest) -> BoxFuture<'_, Result<PutResponse>> {
        ready(self.write(|b| b.put(&req)))
    }

    fn delete_range(&self, req: DeleteRangeRequest) -> BoxFuture<'_, Result<DeleteRangeResponse>> {
        ready(self.write(|b| b.delete_range(&req)))
    }

    fn txn(&self, req: TxnRequest) -> BoxFuture<'_, Result<TxnResponse>> {
        ready(crate::store::mvcc::check_txn_keys(&req).and_then(|()| self.write(|b| b.txn(&req))))
    }

    fn compact(&self, revision: Revision) -> BoxFuture<'_, Result<ResponseHeader>> {
        ready(self.write(|b| b.compact(revision)))
    }

    fn watch(&self, req: WatchRequest) -> Result<Box<dyn EventStream>> {
        let feed = self.inner.commits.subscribe();
        let current = self.inner.mvcc.current_revision();
        let next = if req.start_revision > 0 {
            req.start_revision
        } else {
            current + 1
        };
        if next <= self.inner.mvcc.compact_revision() {
            return Err(StoreError::Compacted {
                compact_revision: self.inner.mvcc.compact_revision(),
            });
        }
        Ok(Box::new(MemoryWatch {
            inner: self.inner.clone(),
            range: KeyRange::new(&req.key, &req.range_end),
            req,
            next,
            feed,
            progress: Arc::new(Progress::default()),
            dirty: false,
        }))
    }

    fn lease_grant(&self, id: i64, ttl: i64) -> BoxFuture<'_, Result<LeaseGrantResponse>> {
        let id = if id == 0 {
            self.inner.next_lease.fetch_add(1, Ordering::SeqCst)
        } else {
            id
        };
        let r = self.write(|b| b.lease_grant(id, ttl)).inspect(|g| {
            if let Ok(mut c) = self.inner.lease_clock.lock() {
                c.insert(g.id, (g.ttl, Instant::now()));
            }
        });
        ready(r.map(|mut g| {
            g.header = self.header();
            g
        }))
    }

    fn lease_revoke(&self, id: i64) -> BoxFuture<'_, Result<ResponseHeader>> {
        ready(self.write(|b| b.lease_revoke(id)))
    }

    fn lease_keep_alive(&self, id: i64) -> BoxFuture<'_, Result<KeepAlive>> {
        let r = self.write(|b| b.lease_renew(id)).map(|ttl| {
            if let Ok(mut c) = self.inner.lease_clock.lock() {
                c.insert(id, (ttl, Instant::now()));
            }
            KeepAlive {
                header: self.header(),
                id,
                ttl,
            }
        });
        ready(r)
    }

    fn lease_time_to_live(
        &self,
        id: i64,
        keys: bool,
    ) -> BoxFuture<'_, Result<LeaseTimeToLiveResponse>> {
        let r = (|| {
            let Some(granted) = self.inner.mvcc.lease_ttl(id)? else {
                return Ok(LeaseTimeToLiveResponse {
                    header: self.header(),
                    id,
                    ttl: -1,
                    ..Default::default()
                });
            };
            let elapsed = self
                .inner
                .lease_clock
                .lock()
                .ok()
                .and_then(|c| c.get(&id).map(|(_, t)| t.elapsed().as_secs() as i64))
                .unwrap_or(0);
            Ok(LeaseTimeToLiveResponse {
                header: self.header(),
                id,
                ttl: (granted - elapsed).max(0),
                granted_ttl: granted,
                keys: if keys {
                    self.inner.mvcc.lease_keys(id)?
                } else {
                    Vec::new()
                },
            })
        })();
        ready(r)
    }

    fn leases(&self) -> BoxFuture<'_, Result<LeaseList>> {
        ready(self.inner.mvcc.leases().map(|l| LeaseList {
            header: self.header(),
            leases: l.into_iter().map(|(id, _)| id).collect(),
        }))
    }

    fn status(&self) -> StoreStatus {
        let m = &self.inner.mvcc;
        let index = self.inner.index.load(Ordering::SeqCst);
        StoreStatus {
            header: self.header(),
            compact_revision: m.compact_revision(),
            leader_id: if self.inner.leader.load(Ordering::SeqCst) {
                MEMBER_ID
            } else {
                0
            },
            raft_index: index,
            raft_applied_index: index,
            raft_term: TERM,
            is_learner: false,
            db_size: m.size_on_disk() as i64,
        }
    }

    fn members(&self) -> BoxFuture<'_, Result<Vec<Member>>> {
        let url = self
            .inner
            .client_url
            .lock()
            .map(|u| u.clone())
            .unwrap_or_default();
        ready(Ok(vec![Member {
            id: MEMBER_ID,
            name: "default".into(),
            peer_urls: vec!["http://localhost:2380".into()],
            client_urls: vec![url],
            is_learner: false,
        }]))
    }

    fn member_add(
        &self,
        _name: String,
        _peer_urls: Vec<String>,
        _is_learner: bool,
    ) -> BoxFuture<'_, Result<Member>> {
        ready(Err(StoreError::InvalidRequest(
            "the test backend has one member".into(),
        )))
    }

    fn member_remove(&self, id: u64) -> BoxFuture<'_, Result<()>> {
        ready(Err(StoreError::MemberNotFound { id }))
    }

    fn member_promote(&self, id: u64) -> BoxFuture<'_, Result<()>> {
        ready(Err(StoreError::MemberNotFound { id }))
    }

    fn move_leader(&self, id: u64) -> BoxFuture<'_, Result<()>> {
        ready(if id == MEMBER_ID {
            Ok(())
        } else {
            Err(StoreError::MemberNotFound { id })
        })
    }

    fn snapshot(&self) -> BoxFuture<'_, Result<Vec<u8>>> {
        ready(self.inner.mvcc.snapshot())
    }
}

#[derive(Default)]
struct Progress {
    wanted: AtomicBool,
    notify: Notify,
}

struct MemoryWatch {
    inner: Arc<Inner>,
    req: WatchRequest,
    range: KeyRange,
    /// The first revision not yet delivered.
    next: Revision,
    feed: broadcast::Receiver<Arc<Vec<RevisionEvents>>>,
    progress: Arc<Progress>,
    /// Something was sent since the last progress tick.
    dirty: bool,
}

impl MemoryWatch {
    fn take(&mut self, revs: &[RevisionEvents]) -> Vec<crate::store::Event> {
        let mut out = Vec::new();
        for r in revs {
            if r.revision < self.next {
                continue;
            }
            self.next = r.revision + 1;
            for e in &r.events {
                if !self.range.contains(&e.kv.key)
                    || (self.req.filter_puts && e.kind == EventType::Put)
                    || (self.req.filter_deletes && e.kind == EventType::Delete)
                {
                    continue;
                }
                let mut e = e.clone();
                if !self.req.prev_kv {
                    e.prev_kv = None;
                }
                out.push(e);
            }
        }
        out
    }

    fn response(&mut self, events: Vec<crate::store::Event>) -> WatchResponse {
        self.dirty = !events.is_empty();
        WatchResponse {
            header: header(self.next - 1),
            events,
        }
    }

    async fn next_batch(&mut self) -> Option<Result<WatchResponse>> {
        let mut tick = tokio::time::interval(self.inner.progress_interval);
        tick.tick().await;
        loop {
            // Catch up from history first.
            while self.next <= self.inner.mvcc.current_revision() {
                let range = self.range.clone();
                let chunk = match self
                    .inner
                    .mvcc
                    .history(self.next, 1000, &|k| range.contains(k))
                {
                    Ok(c) => c,
                    Err(e) => return Some(Err(e)),
                };
                let events = self.take(&chunk.revisions);
                self.next = self.next.max(chunk.scanned_to + 1);
                if !events.is_empty() {
                    return Some(Ok(self.response(events)));
                }
            }
            if self.progress.wanted.swap(false, Ordering::SeqCst) {
                return Some(Ok(self.response(Vec::new())));
            }
            tokio::select! {
                r = self.feed.recv() => match r {
                    Ok(revs) => {
                        let events = self.take(&revs);
                        if !events.is_empty() {
                            return Some(Ok(self.response(events)));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                () = self.progress.notify.notified() => {}
                _ = tick.tick(), if self.req.progress_notify => {
                    if !self.dirty {
                        return Some(Ok(self.response(Vec::new())));
                    }
                    self.dirty = false;
                }
            }
        }
    }
}

impl EventStream for MemoryWatch {
    fn recv(&mut self) -> BoxFuture<'_, Option<Result<WatchResponse>>> {
        Box::pin(self.next_batch())
    }

    fn progress_requester(&self) -> Box<dyn Fn() + Send + Sync> {
        let p = self.progress.clone();
        Box::new(move || {
            p.wanted.store(true, Ordering::SeqCst);
            p.notify.notify_one();
        })
    }
}
