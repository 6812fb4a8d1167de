//! The embedded datastore that replaces etcd: etcd's MVCC data model on sled, replicated by
//! raft-rs, with watch and leases.
//!
//! Owns: everything under `<data-dir>/server/db`. Only the API server (and the etcd facade in
//! [`etcd`]) may call it. The rest of k3rs sees one small async API on [`Store`]:
//!
//! ```text
//! Store::open(StoreConfig) -> Result<Store>            // starts the raft node, replays the log
//! store.range(RangeRequest)            -> RangeResponse        (linearizable unless serializable)
//! store.put(PutRequest)                -> PutResponse
//! store.delete_range(DeleteRangeRequest) -> DeleteRangeResponse
//! store.txn(TxnRequest)                -> TxnResponse          (one revision for the whole txn)
//! store.compact(rev)                   -> ResponseHeader
//! store.watch(WatchRequest)            -> Watcher              (Watcher::recv().await -> Option<Result<WatchResponse>>)
//! store.lease_grant(id, ttl) / lease_revoke(id) / lease_keep_alive(id) / lease_time_to_live(id, keys) / leases()
//! store.status() / members() / member_add / member_remove / member_promote / move_leader
//! store.snapshot()                                             (consistent point-in-time copy)
//! ```
//!
//! Layers (each its own file or folder): `mvcc` (synchronous, sled only: revisions, tombstones,
//! compaction, the state machine raft applies), `watch` (fan-out of applied events and replay
//! from history), `lease` (TTL tracking on the leader, expiry proposed through raft), `raft/`
//! (RawNode loop, write-ahead log, peer transport, snapshots, membership), `etcd/` (the etcd v3
//! gRPC facade).

pub mod error;
pub mod mvcc;
pub mod raft;
pub mod state_machine;
pub mod types;

pub use error::{Result, StoreError};
pub use types::*;
