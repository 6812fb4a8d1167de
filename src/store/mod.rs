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
//! Construction (raft is glued in by the caller; the store never starts raft itself):
//!
//! ```text
//! let (state_machine, core) = store::open_state(&db_dir, &StoreOptions::default())?;
//! //   state_machine: Box<dyn StateMachine>  -> hand to the raft node (replay from
//! //                                            state_machine.applied_index() + 1)
//! let replicator: Arc<dyn Replicator> = /* raft node built with state_machine */;
//! let store: Store = core.into_store(replicator);   // inside a tokio runtime
//! ```
//!
//! Both halves share one sled `Db`: reads go straight to sled, writes only through apply.
//! `testing::FakeReplicator` applies proposals directly (unit tests, `examples/store_bench`).
//!
//! Layers (each its own file or folder): `mvcc` (synchronous, sled only: revisions, tombstones,
//! compaction), `command` (entry payloads), `setup` (`open_state`, the `StateMachine` raft
//! applies, state shared with the handle), `handle` (`Store`), `watch` (fan-out of applied events and replay
//! from history), `lease` (TTL tracking on the leader, expiry proposed through raft), `raft/`
//! (RawNode loop, write-ahead log, peer transport, snapshots, membership), `etcd/` (the etcd v3
//! gRPC facade), `backup` (snapshot files of `k3rs etcd-snapshot`, offline `--cluster-reset`).

pub mod backup;
mod command;
pub mod error;
pub mod etcd;
mod handle;
mod lease;
mod mvcc;
mod open;
pub mod peek;
pub mod raft;
mod setup;
pub mod state_machine;
pub mod testing;
pub mod types;
mod watch;

pub use error::{Result, StoreError};
pub use handle::Store;
pub use open::{StoreConfig, open};
pub use setup::{Applier, StoreCore, StoreOptions, open_state};
pub use types::*;
pub use watch::{ProgressRequester, Watcher};
