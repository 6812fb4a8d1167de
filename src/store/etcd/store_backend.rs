//! [`EtcdBackend`] for the real [`Store`]: a direct mapping, plus the one conversion of the
//! store's watcher into an [`EventStream`].

use super::backend::{EtcdBackend, EventStream, KeepAlive, LeaseList};
use crate::store::state_machine::BoxFuture;
use crate::store::{
    DeleteRangeRequest, DeleteRangeResponse, LeaseGrantResponse, LeaseTimeToLiveResponse, Member,
    PutRequest, PutResponse, RangeRequest, RangeResponse, ResponseHeader, Result, Revision, Store,
    StoreStatus, TxnRequest, TxnResponse, WatchRequest, WatchResponse, Watcher,
};

impl EventStream for Watcher {
    fn recv(&mut self) -> BoxFuture<'_, Option<Result<WatchResponse>>> {
        Box::pin(Watcher::recv(self))
    }

    fn progress_requester(&self) -> Box<dyn Fn() + Send + Sync> {
        let p = Watcher::progress_requester(self);
        Box::new(move || p.request())
    }
}

impl EtcdBackend for Store {
    fn range(&self, req: RangeRequest) -> BoxFuture<'_, Result<RangeResponse>> {
        Box::pin(Store::range(self, req))
    }

    fn put(&self, req: PutRequest) -> BoxFuture<'_, Result<PutResponse>> {
        Box::pin(Store::put(self, req))
    }

    fn delete_range(&self, req: DeleteRangeRequest) -> BoxFuture<'_, Result<DeleteRangeResponse>> {
        Box::pin(Store::delete_range(self, req))
    }

    fn txn(&self, req: TxnRequest) -> BoxFuture<'_, Result<TxnResponse>> {
        Box::pin(Store::txn(self, req))
    }

    fn compact(&self, revision: Revision) -> BoxFuture<'_, Result<ResponseHeader>> {
        Box::pin(Store::compact(self, revision))
    }

    fn watch(&self, req: WatchRequest) -> Result<Box<dyn EventStream>> {
        Ok(Box::new(Store::watch(self, req)?))
    }

    fn lease_grant(&self, id: i64, ttl: i64) -> BoxFuture<'_, Result<LeaseGrantResponse>> {
        Box::pin(Store::lease_grant(self, id, ttl))
    }

    fn lease_revoke(&self, id: i64) -> BoxFuture<'_, Result<ResponseHeader>> {
        Box::pin(Store::lease_revoke(self, id))
    }

    fn lease_keep_alive(&self, id: i64) -> BoxFuture<'_, Result<KeepAlive>> {
        Box::pin(async move {
            let r = Store::lease_keep_alive(self, id).await?;
            Ok(KeepAlive {
                header: r.header,
                id: r.id,
                ttl: r.ttl,
            })
        })
    }

    fn lease_time_to_live(
        &self,
        id: i64,
        keys: bool,
    ) -> BoxFuture<'_, Result<LeaseTimeToLiveResponse>> {
        Box::pin(Store::lease_time_to_live(self, id, keys))
    }

    fn leases(&self) -> BoxFuture<'_, Result<LeaseList>> {
        Box::pin(async move {
            let r = Store::leases(self).await?;
            Ok(LeaseList {
                header: r.header,
                leases: r.leases,
            })
        })
    }

    fn status(&self) -> StoreStatus {
        Store::status(self)
    }

    fn members(&self) -> BoxFuture<'_, Result<Vec<Member>>> {
        Box::pin(Store::members(self))
    }

    fn member_add(
        &self,
        name: String,
        peer_urls: Vec<String>,
        is_learner: bool,
    ) -> BoxFuture<'_, Result<Member>> {
        Box::pin(Store::member_add(self, name, peer_urls, is_learner))
    }

    fn member_remove(&self, id: u64) -> BoxFuture<'_, Result<()>> {
        Box::pin(Store::member_remove(self, id))
    }

    fn member_promote(&self, id: u64) -> BoxFuture<'_, Result<()>> {
        Box::pin(Store::member_promote(self, id))
    }

    fn move_leader(&self, id: u64) -> BoxFuture<'_, Result<()>> {
        Box::pin(Store::move_leader(self, id))
    }

    fn snapshot(&self) -> BoxFuture<'_, Result<Vec<u8>>> {
        Box::pin(Store::snapshot(self))
    }
}
