//! Construction of the store and the raft-facing state machine, and the state both share.
//!
//! ```text
//! let (state_machine, core) = store::open_state(path, &StoreOptions::default())?;
//! let replicator: Arc<dyn Replicator> = raft::start(.., state_machine, ..);   // raft owns the SM
//! let store: Store = core.into_store(replicator);                              // in a tokio runtime
//! ```
//!
//! The state machine ([`Applier`]) is the only writer: it decodes each committed entry
//! (`command.rs`), executes it in one MVCC write batch per `apply` call, commits the batch
//! with the applied index, and only then publishes: lease clock, watch feed, applied index,
//! and finally the answer to the proposer waiting on this member (matched by origin and
//! request id). The [`super::Store`] reads sled directly through the same [`Mvcc`].

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, oneshot, watch};

use super::command::{Command, Envelope};
use super::error::{Result, StoreError};
use super::lease::LeaseClock;
use super::mvcc::{Mvcc, RevisionEvents, WriteBatch};
use super::state_machine::{CommittedEntry, Replicator, StateMachine};
use super::types::{
    DeleteRangeResponse, LeaseGrantResponse, PutResponse, ResponseHeader, TxnResponse,
};

/// Tunables of the store. `Default` gives production values.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// sled page cache, bytes (sled's own default is 1 GiB; keep it small).
    pub cache_bytes: u64,
    /// How long a write waits for its entry to apply before `Timeout`.
    pub request_timeout: Duration,
    /// Idle interval between progress notifications of `progress_notify` watchers.
    pub progress_interval: Duration,
    /// Applied batches buffered for live watchers; a watcher further behind re-reads history.
    pub watch_buffer: usize,
    /// Max events per watch response while replaying history (whole revisions are kept).
    pub history_chunk: usize,
    /// How often the leader checks lease deadlines.
    pub lease_tick: Duration,
    /// etcd's `--max-txn-ops`.
    pub max_txn_ops: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: 32 << 20,
            request_timeout: Duration::from_secs(10),
            progress_interval: Duration::from_secs(10),
            watch_buffer: 1024,
            history_chunk: 1000,
            lease_tick: Duration::from_millis(500),
            max_txn_ops: 128,
        }
    }
}

/// What a watcher receives from the applier after each committed batch.
#[derive(Debug)]
pub(crate) enum Feed {
    Revisions(Vec<RevisionEvents>),
    /// The state was replaced (snapshot restore): live watchers re-read history.
    Reset,
    /// The state machine was dropped (raft stopped): watchers end.
    Closed,
}

/// The result of applying one command, for the proposer.
#[derive(Debug)]
pub(crate) enum Output {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Header(ResponseHeader),
    LeaseGrant(LeaseGrantResponse),
    KeepAlive(i64),
}

pub(crate) type Reply = oneshot::Sender<Result<Output>>;

/// State shared by the applier (raft side) and the store handle.
pub(crate) struct Shared {
    pub mvcc: Mvcc,
    pub opts: StoreOptions,
    /// This process's proposal origin (see `command.rs`).
    pub origin: u64,
    pub waiters: Mutex<HashMap<u64, Reply>>,
    pub applied: watch::Sender<u64>,
    pub feed: broadcast::Sender<Arc<Feed>>,
    pub leases: LeaseClock,
    /// Set when the state machine is dropped: nothing will be applied any more.
    pub stopped: std::sync::atomic::AtomicBool,
}

impl Shared {
    pub(crate) fn take_waiter(&self, request_id: u64) -> Option<Reply> {
        self.waiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&request_id)
    }
}

/// The half of the store that becomes a [`super::Store`] once raft runs.
pub struct StoreCore {
    pub(crate) shared: Arc<Shared>,
}

impl StoreCore {
    /// Binds the store to its replicator and starts the lease expiry task. Must be called
    /// inside a tokio runtime.
    pub fn into_store(self, replicator: Arc<dyn Replicator>) -> super::Store {
        super::Store::new(self.shared, replicator)
    }
}

/// Opens the MVCC state at `path` and returns the state machine for raft plus the core to
/// build the [`super::Store`] from. Raft should replay its log from
/// `state_machine.applied_index() + 1`.
///
/// # Errors
/// Storage failures.
pub fn open_state(path: &Path, opts: &StoreOptions) -> Result<(Box<dyn StateMachine>, StoreCore)> {
    let mvcc = Mvcc::open(path, opts.cache_bytes)?;
    let leases = LeaseClock::default();
    leases.load(&mvcc.leases()?);
    let (applied, _) = watch::channel(mvcc.applied_index());
    let (feed, _) = broadcast::channel(opts.watch_buffer.max(1));
    let shared = Arc::new(Shared {
        mvcc,
        opts: opts.clone(),
        origin: rand::random::<u64>() | 1,
        waiters: Mutex::new(HashMap::new()),
        applied,
        feed,
        leases,
        stopped: std::sync::atomic::AtomicBool::new(false),
    });
    Ok((
        Box::new(Applier {
            shared: shared.clone(),
        }),
        StoreCore { shared },
    ))
}

/// The [`StateMachine`] raft applies committed entries to.
pub struct Applier {
    shared: Arc<Shared>,
}

fn is_storage_error(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Sled(_) | StoreError::Io { .. } | StoreError::Corrupt(_)
    )
}

fn execute(batch: &mut WriteBatch<'_>, command: &Command) -> Result<Output> {
    Ok(match command {
        Command::Put(p) => Output::Put(batch.put(p)?),
        Command::DeleteRange(d) => Output::DeleteRange(batch.delete_range(d)?),
        Command::Txn(t) => Output::Txn(batch.txn(t)?),
        Command::Compact(rev) => Output::Header(batch.compact(*rev)?),
        Command::LeaseGrant { id, ttl } => Output::LeaseGrant(batch.lease_grant(*id, *ttl)?),
        Command::LeaseRevoke { id } => Output::Header(batch.lease_revoke(*id)?),
        Command::LeaseKeepAlive { id } => Output::KeepAlive(batch.lease_renew(*id)?),
    })
}

impl Drop for Applier {
    fn drop(&mut self) {
        self.shared
            .stopped
            .store(true, std::sync::atomic::Ordering::Release);
        let _ = self.shared.feed.send(Arc::new(Feed::Closed));
    }
}

impl StateMachine for Applier {
    fn apply(&mut self, entries: &[CommittedEntry<'_>], up_to: u64) -> Result<()> {
        let shared = &*self.shared;
        let already = shared.mvcc.applied_index();
        if up_to <= already {
            // A replay of entries this state already contains: applying twice would write
            // them at new revisions.
            return Ok(());
        }
        let mut batch = shared.mvcc.begin();
        let mut replies = Vec::new();
        for entry in entries.iter().filter(|e| e.index > already) {
            let env = match Envelope::decode(entry.data) {
                Ok(env) => env,
                Err(e) => {
                    // Deterministic on every member, so skipping keeps them identical.
                    tracing::warn!(index = entry.index, error = %e, "skipping undecodable raft entry");
                    continue;
                }
            };
            let out = execute(&mut batch, &env.command);
            if let Err(e) = &out
                && is_storage_error(e)
            {
                return Err(StoreError::Corrupt(format!(
                    "applying entry {}: {e}",
                    entry.index
                )));
            }
            if env.origin == shared.origin {
                replies.push((env.request_id, out));
            }
        }
        let committed = batch.commit(up_to)?;
        shared.leases.on_changes(&committed.leases);
        shared.applied.send_replace(up_to);
        // Writers first: publishing wakes every live watcher (a hundred wake-ups on this
        // thread for a hundred watchers), and the writer's response need not wait for that.
        // Watchers cannot miss anything by it: the batch is committed to sled already and
        // a watcher created meanwhile reads what it needs from there (watch.rs).
        for (request_id, out) in replies {
            if let Some(reply) = shared.take_waiter(request_id) {
                // The caller may have timed out and gone.
                let _ = reply.send(out);
            }
        }
        if !committed.revisions.is_empty() {
            // No receivers is fine: nobody watches.
            let _ = shared
                .feed
                .send(Arc::new(Feed::Revisions(committed.revisions)));
        }
        Ok(())
    }

    fn applied_index(&self) -> u64 {
        self.shared.mvcc.applied_index()
    }

    fn snapshot(&self) -> Result<Vec<u8>> {
        self.shared.mvcc.snapshot()
    }

    fn restore(&mut self, snapshot: &[u8], index: u64) -> Result<()> {
        let shared = &*self.shared;
        shared.mvcc.restore(snapshot, index)?;
        shared.leases.load(&shared.mvcc.leases()?);
        let _ = shared.feed.send(Arc::new(Feed::Reset));
        shared.applied.send_replace(index);
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        self.shared.mvcc.sync()
    }
}
