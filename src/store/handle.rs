//! [`Store`]: the async API the API server and the etcd facade use.
//!
//! Writes are encoded (`command.rs`) and proposed through the [`Replicator`]; the caller
//! waits (bounded by `request_timeout`) for its own member's state machine to apply the entry
//! and answer through a oneshot. Reads go straight to sled: linearizable ones first obtain a
//! ReadIndex and wait until the local applied index reaches it. Requests are validated here,
//! before proposing, like etcd's gRPC layer does.
//!
//! May call: `mvcc` reads, `watch`, `lease`, the `Replicator`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use tokio::sync::oneshot;

use super::command::{Command, Envelope};
use super::error::{Result, StoreError};
use super::lease::{ExpiryHost, LeaseClock, expiry_loop};
use super::mvcc::check_txn_keys;
use super::setup::{Output, Shared};
use super::state_machine::{BoxFuture, Refused, Replicator};
use super::types::*;
use super::watch::Watcher;

/// The store handle: cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    replicator: Arc<dyn Replicator>,
    next_request: AtomicU64,
    /// For the expiry loop's revokes (which must not keep the store alive).
    me: Weak<Inner>,
}

impl Store {
    pub(crate) fn new(shared: Arc<Shared>, replicator: Arc<dyn Replicator>) -> Self {
        let inner = Arc::new_cyclic(|me| Inner {
            shared,
            replicator,
            next_request: AtomicU64::new(1),
            me: me.clone(),
        });
        let tick = inner.shared.opts.lease_tick;
        tokio::spawn(expiry_loop(Arc::downgrade(&inner), tick));
        Store { inner }
    }

    fn header(&self, revision: Revision) -> ResponseHeader {
        self.inner.header(revision)
    }

    /// Makes this member's applied state durable in its own files now. sled writes back only
    /// in the background (the raft log already holds every acknowledged write); this is for
    /// state read before raft replays its log at the next start (`peek`).
    ///
    /// # Errors
    /// Storage or I/O failures; `Stopped` if the blocking task could not run.
    pub async fn sync_local(&self) -> Result<()> {
        let shared = self.inner.shared.clone();
        tokio::task::spawn_blocking(move || shared.mvcc.sync())
            .await
            .map_err(|_| StoreError::Stopped)?
    }

    /// The newest applied revision on this member.
    pub fn current_revision(&self) -> Revision {
        self.inner.shared.mvcc.current_revision()
    }

    /// Waits until this member has applied everything committed before the call (ReadIndex).
    async fn linearize(&self) -> Result<()> {
        let index = self.inner.replicator.read_index().await?;
        let mut applied = self.inner.shared.applied.subscribe();
        let wait = applied.wait_for(|a| *a >= index);
        match tokio::time::timeout(self.inner.shared.opts.request_timeout, wait).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(StoreError::Stopped),
            Err(_) => Err(StoreError::Timeout),
        }
    }

    /// etcd `Range`.
    ///
    /// # Errors
    /// `EmptyKey`, `FutureRevision`, `Compacted`, `NoLeader`/`Timeout` (linearizable
    /// reads), storage.
    pub async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        if req.key.is_empty() {
            return Err(StoreError::EmptyKey);
        }
        if !req.serializable {
            self.linearize().await?;
        }
        let mut resp = self.inner.shared.mvcc.range(&req)?;
        resp.header = self.header(resp.header.revision);
        Ok(resp)
    }

    /// etcd `Put`.
    ///
    /// # Errors
    /// `EmptyKey`, `ValueProvided`, `LeaseProvided`, `KeyNotFound`, `LeaseNotFound`,
    /// `Timeout`, `NoLeader`, storage.
    pub async fn put(&self, req: PutRequest) -> Result<PutResponse> {
        check_put(&req)?;
        match self.inner.propose(Command::Put(req)).await? {
            Output::Put(mut r) => {
                r.header = self.header(r.header.revision);
                Ok(r)
            }
            other => Err(unexpected(&other)),
        }
    }

    /// etcd `DeleteRange`.
    ///
    /// # Errors
    /// `EmptyKey`, `Timeout`, `NoLeader`, storage.
    pub async fn delete_range(&self, req: DeleteRangeRequest) -> Result<DeleteRangeResponse> {
        if req.key.is_empty() {
            return Err(StoreError::EmptyKey);
        }
        match self.inner.propose(Command::DeleteRange(req)).await? {
            Output::DeleteRange(mut r) => {
                r.header = self.header(r.header.revision);
                Ok(r)
            }
            other => Err(unexpected(&other)),
        }
    }

    /// etcd `Txn`. A txn without writes is answered locally after a ReadIndex (unless all
    /// its ranges are serializable), like etcd; others go through raft.
    ///
    /// # Errors
    /// `TooManyOps`, `DuplicateKey`, `EmptyKey`, the errors of its ops, `Timeout`, storage.
    pub async fn txn(&self, req: TxnRequest) -> Result<TxnResponse> {
        check_txn(&req, self.inner.shared.opts.max_txn_ops)?;
        let mut resp = if txn_is_read_only(&req) {
            if !txn_is_serializable(&req) {
                self.linearize().await?;
            }
            // A read-only txn on a write batch that is dropped, never committed. Blocking:
            // opening the batch waits for an apply in progress.
            let shared = self.inner.shared.clone();
            tokio::task::spawn_blocking(move || shared.mvcc.begin().txn(&req))
                .await
                .map_err(|_| StoreError::Stopped)??
        } else {
            match self.inner.propose(Command::Txn(req)).await? {
                Output::Txn(r) => r,
                other => return Err(unexpected(&other)),
            }
        };
        resp.header = self.header(resp.header.revision);
        Ok(resp)
    }

    /// etcd `Compact`: drops history below `revision`.
    ///
    /// # Errors
    /// `Compacted` (already compacted), `FutureRevision`, `Timeout`, storage.
    pub async fn compact(&self, revision: Revision) -> Result<ResponseHeader> {
        match self.inner.propose(Command::Compact(revision)).await? {
            Output::Header(h) => Ok(self.header(h.revision)),
            other => Err(unexpected(&other)),
        }
    }

    /// Starts a watch; see [`Watcher`].
    ///
    /// # Errors
    /// `Compacted` when `start_revision` is below the compact revision.
    pub fn watch(&self, req: WatchRequest) -> Result<Watcher> {
        Watcher::new(
            self.inner.shared.clone(),
            self.inner.replicator.clone(),
            req,
        )
    }

    /// etcd `LeaseGrant`; `id == 0` picks a fresh id.
    ///
    /// # Errors
    /// `LeaseExists`, `InvalidRequest` (negative id, TTL above etcd's maximum), `Timeout`,
    /// storage.
    pub async fn lease_grant(&self, id: i64, ttl: i64) -> Result<LeaseGrantResponse> {
        if id < 0 {
            return Err(StoreError::InvalidRequest(
                "lease id must not be negative".into(),
            ));
        }
        if ttl > super::lease::MAX_TTL {
            return Err(StoreError::InvalidRequest("lease ttl is too large".into()));
        }
        // Chosen by the proposer so every member applies the same id.
        let id = if id == 0 {
            (rand::random::<u64>() >> 1).max(1) as i64
        } else {
            id
        };
        match self.inner.propose(Command::LeaseGrant { id, ttl }).await? {
            Output::LeaseGrant(mut r) => {
                r.header = self.header(r.header.revision);
                Ok(r)
            }
            other => Err(unexpected(&other)),
        }
    }

    /// etcd `LeaseRevoke`: deletes the lease and its keys (one revision).
    ///
    /// # Errors
    /// `LeaseNotFound`, `Timeout`, storage.
    pub async fn lease_revoke(&self, id: i64) -> Result<ResponseHeader> {
        match self.inner.propose(Command::LeaseRevoke { id }).await? {
            Output::Header(h) => Ok(self.header(h.revision)),
            other => Err(unexpected(&other)),
        }
    }

    /// One keep-alive of lease `id` (works on any member; see `lease.rs`).
    ///
    /// # Errors
    /// `LeaseNotFound`, `Timeout`, storage.
    pub async fn lease_keep_alive(&self, id: i64) -> Result<LeaseKeepAliveResponse> {
        match self.inner.propose(Command::LeaseKeepAlive { id }).await? {
            Output::KeepAlive(ttl) => Ok(LeaseKeepAliveResponse {
                header: self.header(self.current_revision()),
                id,
                ttl,
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// etcd `LeaseTimeToLive`: `ttl == -1` when the lease does not exist.
    ///
    /// # Errors
    /// `NoLeader`/`Timeout` (it is linearizable), storage.
    pub async fn lease_time_to_live(&self, id: i64, keys: bool) -> Result<LeaseTimeToLiveResponse> {
        self.linearize().await?;
        let mvcc = &self.inner.shared.mvcc;
        let header = self.header(mvcc.current_revision());
        let Some(granted) = mvcc.lease_ttl(id)? else {
            return Ok(LeaseTimeToLiveResponse {
                header,
                id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            });
        };
        let ttl = self.inner.shared.leases.remaining(id).unwrap_or(granted);
        Ok(LeaseTimeToLiveResponse {
            header,
            id,
            ttl,
            granted_ttl: granted,
            keys: if keys {
                mvcc.lease_keys(id)?
            } else {
                Vec::new()
            },
        })
    }

    /// etcd `LeaseLeases`.
    ///
    /// # Errors
    /// `NoLeader`/`Timeout` (it is linearizable), storage.
    pub async fn leases(&self) -> Result<LeaseLeasesResponse> {
        self.linearize().await?;
        let mvcc = &self.inner.shared.mvcc;
        Ok(LeaseLeasesResponse {
            header: self.header(mvcc.current_revision()),
            leases: mvcc.leases()?.into_iter().map(|(id, _)| id).collect(),
        })
    }

    /// Status of the store and its raft member.
    pub fn status(&self) -> StoreStatus {
        let st = self.inner.replicator.status();
        let mvcc = &self.inner.shared.mvcc;
        StoreStatus {
            header: self.header(mvcc.current_revision()),
            compact_revision: mvcc.compact_revision(),
            leader_id: st.leader_id,
            raft_index: st.commit_index,
            raft_applied_index: mvcc.applied_index(),
            raft_term: st.term,
            is_learner: st.is_learner,
            db_size: i64::try_from(mvcc.size_on_disk()).unwrap_or(i64::MAX),
        }
    }

    /// A consistent copy of the whole state, restorable by the state machine.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn snapshot(&self) -> Result<Vec<u8>> {
        let shared = self.inner.shared.clone();
        tokio::task::spawn_blocking(move || shared.mvcc.snapshot())
            .await
            .map_err(|_| StoreError::Stopped)?
    }

    /// Members of the raft group.
    ///
    /// # Errors
    /// As the replicator reports.
    pub async fn members(&self) -> Result<Vec<Member>> {
        self.inner.replicator.members().await
    }

    /// Adds a member.
    ///
    /// # Errors
    /// As the replicator reports.
    pub async fn member_add(
        &self,
        name: String,
        peer_urls: Vec<String>,
        is_learner: bool,
    ) -> Result<Member> {
        self.inner
            .replicator
            .member_add(name, peer_urls, is_learner)
            .await
    }

    /// Removes a member.
    ///
    /// # Errors
    /// As the replicator reports.
    pub async fn member_remove(&self, id: u64) -> Result<()> {
        self.inner.replicator.member_remove(id).await
    }

    /// Promotes a learner.
    ///
    /// # Errors
    /// As the replicator reports.
    pub async fn member_promote(&self, id: u64) -> Result<()> {
        self.inner.replicator.member_promote(id).await
    }

    /// Transfers leadership to `id`.
    ///
    /// # Errors
    /// As the replicator reports.
    pub async fn move_leader(&self, id: u64) -> Result<()> {
        self.inner.replicator.transfer_leader(id).await
    }
}

impl Inner {
    fn header(&self, revision: Revision) -> ResponseHeader {
        let st = self.replicator.status();
        ResponseHeader {
            cluster_id: st.cluster_id,
            member_id: st.id,
            revision,
            raft_term: st.term,
        }
    }

    /// Proposes `command` and waits for this member to apply it.
    async fn propose(&self, command: Command) -> Result<Output> {
        let request_id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let data = Envelope {
            origin: self.shared.origin,
            request_id,
            command,
        }
        .encode();
        let (tx, rx) = oneshot::channel();
        self.shared
            .waiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(request_id, tx);
        // Only a refusal comes back from the raft loop (acceptance is not worth a wake-up):
        // it answers this writer through its waiter, like an applied result.
        let shared = self.shared.clone();
        let refused: Refused = Box::new(move |e| {
            if let Some(tx) = shared.take_waiter(request_id) {
                let _ = tx.send(Err(e));
            }
        });
        let wait = async {
            self.replicator.propose_detached(data, refused)?;
            rx.await.map_err(|_| StoreError::Stopped)?
        };
        let out = tokio::time::timeout(self.shared.opts.request_timeout, wait).await;
        match out {
            Ok(result) => {
                if result.is_err() {
                    self.shared.take_waiter(request_id);
                }
                result
            }
            Err(_) => {
                self.shared.take_waiter(request_id);
                Err(StoreError::Timeout)
            }
        }
    }
}

impl ExpiryHost for Inner {
    fn clock(&self) -> &LeaseClock {
        &self.shared.leases
    }

    fn is_leader(&self) -> bool {
        let st = self.replicator.status();
        st.leader_id != 0 && st.leader_id == st.id
    }

    fn revoke(&self, id: i64) -> BoxFuture<'static, ()> {
        let me = self.me.clone();
        Box::pin(async move {
            let Some(inner) = me.upgrade() else { return };
            match inner.propose(Command::LeaseRevoke { id }).await {
                Ok(_) | Err(StoreError::LeaseNotFound { .. }) => {}
                Err(e) => {
                    tracing::debug!(lease = id, error = %e, "lease revoke failed; will retry")
                }
            }
        })
    }
}

fn unexpected(out: &Output) -> StoreError {
    StoreError::InvalidRequest(format!("unexpected apply result {out:?}"))
}

fn check_put(p: &PutRequest) -> Result<()> {
    if p.key.is_empty() {
        return Err(StoreError::EmptyKey);
    }
    if p.ignore_value && !p.value.is_empty() {
        return Err(StoreError::ValueProvided);
    }
    if p.ignore_lease && p.lease != 0 {
        return Err(StoreError::LeaseProvided);
    }
    Ok(())
}

fn check_ops(ops: &[RequestOp], max_ops: usize) -> Result<()> {
    for op in ops {
        match op {
            RequestOp::Range(r) if r.key.is_empty() => return Err(StoreError::EmptyKey),
            RequestOp::Range(_) => {}
            RequestOp::Put(p) => check_put(p)?,
            RequestOp::DeleteRange(d) if d.key.is_empty() => return Err(StoreError::EmptyKey),
            RequestOp::DeleteRange(_) => {}
            RequestOp::Txn(t) => check_txn_shape(t, max_ops)?,
        }
    }
    Ok(())
}

fn check_txn_shape(t: &TxnRequest, max_ops: usize) -> Result<()> {
    if t.compare.len() > max_ops || t.success.len() > max_ops || t.failure.len() > max_ops {
        return Err(StoreError::TooManyOps);
    }
    if t.compare.iter().any(|c| c.key.is_empty()) {
        return Err(StoreError::EmptyKey);
    }
    check_ops(&t.success, max_ops)?;
    check_ops(&t.failure, max_ops)
}

/// etcd's `checkTxnRequest` + `checkIntervals`.
fn check_txn(t: &TxnRequest, max_ops: usize) -> Result<()> {
    check_txn_shape(t, max_ops)?;
    check_txn_keys(t)
}

fn txn_is_read_only(t: &TxnRequest) -> bool {
    t.success.iter().chain(&t.failure).all(|op| match op {
        RequestOp::Range(_) => true,
        RequestOp::Txn(n) => txn_is_read_only(n),
        _ => false,
    })
}

fn txn_is_serializable(t: &TxnRequest) -> bool {
    t.success.iter().chain(&t.failure).all(|op| match op {
        RequestOp::Range(r) => r.serializable,
        RequestOp::Txn(n) => txn_is_serializable(n),
        _ => true,
    })
}

#[cfg(test)]
#[path = "handle_tests.rs"]
mod tests;
