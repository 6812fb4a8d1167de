//! The seam between the etcd v3 gRPC facade and the store: `EtcdBackend`.
//!
//! Owns nothing; it only names what the facade needs from the store, over the plain types of
//! `crate::store::types`. Implemented by `crate::store::Store` (`store_backend.rs`); tests
//! run it over a fake replicator or a one-member raft group.

use crate::store::state_machine::BoxFuture;
use crate::store::{
    DeleteRangeRequest, DeleteRangeResponse, LeaseGrantResponse, LeaseTimeToLiveResponse, Member,
    PutRequest, PutResponse, RangeRequest, RangeResponse, ResponseHeader, Result, Revision,
    StoreStatus, TxnRequest, TxnResponse, WatchRequest, WatchResponse,
};

/// The answer to one lease keep-alive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeepAlive {
    pub header: ResponseHeader,
    pub id: i64,
    /// The renewed TTL in seconds.
    pub ttl: i64,
}

/// Every existing lease.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseList {
    pub header: ResponseHeader,
    /// Lease ids, ascending.
    pub leases: Vec<i64>,
}

/// One running watch. Dropping it cancels the watch.
pub trait EventStream: Send + 'static {
    /// The next batch (whole revisions, ascending) or a progress notification (no events;
    /// header revision = everything up to it was delivered); `Some(Err(Compacted))` once when
    /// the history the watch needs is gone; `None` when the store stopped. Must be cancel-safe.
    fn recv(&mut self) -> BoxFuture<'_, Option<Result<WatchResponse>>>;

    /// A handle asking this watch for a progress notification, usable from another task while
    /// `recv` is pending.
    fn progress_requester(&self) -> Box<dyn Fn() + Send + Sync>;
}

/// What the etcd facade needs from the store. Semantics are etcd's (see `crate::store`).
pub trait EtcdBackend: Send + Sync + 'static {
    fn range(&self, req: RangeRequest) -> BoxFuture<'_, Result<RangeResponse>>;
    fn put(&self, req: PutRequest) -> BoxFuture<'_, Result<PutResponse>>;
    fn delete_range(&self, req: DeleteRangeRequest) -> BoxFuture<'_, Result<DeleteRangeResponse>>;
    fn txn(&self, req: TxnRequest) -> BoxFuture<'_, Result<TxnResponse>>;
    fn compact(&self, revision: Revision) -> BoxFuture<'_, Result<ResponseHeader>>;
    /// Starts a watch; a compacted `start_revision` may fail here or on the first `recv`.
    fn watch(&self, req: WatchRequest) -> Result<Box<dyn EventStream>>;
    /// Grants lease `id` (0 = let the store choose) for `ttl` seconds.
    fn lease_grant(&self, id: i64, ttl: i64) -> BoxFuture<'_, Result<LeaseGrantResponse>>;
    fn lease_revoke(&self, id: i64) -> BoxFuture<'_, Result<ResponseHeader>>;
    fn lease_keep_alive(&self, id: i64) -> BoxFuture<'_, Result<KeepAlive>>;
    /// `ttl == -1` when the lease does not exist.
    fn lease_time_to_live(
        &self,
        id: i64,
        keys: bool,
    ) -> BoxFuture<'_, Result<LeaseTimeToLiveResponse>>;
    fn leases(&self) -> BoxFuture<'_, Result<LeaseList>>;
    /// Cheap, non-blocking; `leader_id == 0` means no leader is known.
    fn status(&self) -> StoreStatus;
    fn members(&self) -> BoxFuture<'_, Result<Vec<Member>>>;
    fn member_add(
        &self,
        name: String,
        peer_urls: Vec<String>,
        is_learner: bool,
    ) -> BoxFuture<'_, Result<Member>>;
    fn member_remove(&self, id: u64) -> BoxFuture<'_, Result<()>>;
    fn member_promote(&self, id: u64) -> BoxFuture<'_, Result<()>>;
    fn move_leader(&self, id: u64) -> BoxFuture<'_, Result<()>>;
    /// A consistent point-in-time copy of the whole store (k3rs snapshot format).
    fn snapshot(&self) -> BoxFuture<'_, Result<Vec<u8>>>;
}
