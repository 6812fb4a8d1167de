//! [`Backend`] over the replicated store ([`crate::store::Store`]).

use super::{Backend, WatchStream};
use crate::store::state_machine::BoxFuture;
use crate::store::types::*;
use crate::store::{Store, StoreError};

impl Backend for Store {
    fn range(&self, req: RangeRequest) -> BoxFuture<'static, Result<RangeResponse, StoreError>> {
        let s = self.clone();
        Box::pin(async move { s.range(req).await })
    }

    fn txn(&self, req: TxnRequest) -> BoxFuture<'static, Result<TxnResponse, StoreError>> {
        let s = self.clone();
        Box::pin(async move { s.txn(req).await })
    }

    fn watch(&self, req: WatchRequest) -> BoxFuture<'static, Result<WatchStream, StoreError>> {
        let watcher = Store::watch(self, req);
        Box::pin(async move {
            let w = watcher?;
            let stream =
                futures::stream::unfold(
                    w,
                    |mut w| async move { w.recv().await.map(|item| (item, w)) },
                );
            Ok(Box::pin(stream) as WatchStream)
        })
    }

    fn compact(&self, revision: Revision) -> BoxFuture<'static, Result<(), StoreError>> {
        let s = self.clone();
        Box::pin(async move { s.compact(revision).await.map(|_| ()) })
    }
}
