//! The API server's view of the datastore: a small async trait over etcd-style calls.
//!
//! Handlers are written against [`Backend`] only, so they can be tested with the in-memory
//! implementation in [`memory`] and run in production on [`crate::store`].

pub mod memory;
mod store;

use crate::store::StoreError;
use crate::store::state_machine::BoxFuture;
use crate::store::types::{
    RangeRequest, RangeResponse, Revision, TxnRequest, TxnResponse, WatchRequest, WatchResponse,
};
use futures::stream::BoxStream;

/// A stream of watch responses; ends when the backend stops. An `Err(Compacted)` item means the
/// start revision is gone.
pub type WatchStream = BoxStream<'static, Result<WatchResponse, StoreError>>;

/// What the API server needs from a store (etcd semantics: see `crate::store::types`).
pub trait Backend: Send + Sync + 'static {
    /// Read keys (current revision when `revision == 0`).
    fn range(&self, req: RangeRequest) -> BoxFuture<'static, Result<RangeResponse, StoreError>>;
    /// Atomic compare-and-swap transaction; one revision for all its writes.
    fn txn(&self, req: TxnRequest) -> BoxFuture<'static, Result<TxnResponse, StoreError>>;
    /// Watch a key range from `start_revision` (0 = from now on).
    fn watch(&self, req: WatchRequest) -> BoxFuture<'static, Result<WatchStream, StoreError>>;
    /// Forget history before `revision`.
    fn compact(&self, revision: Revision) -> BoxFuture<'static, Result<(), StoreError>>;
}

/// etcd's "prefix end": the smallest key greater than every key starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}
