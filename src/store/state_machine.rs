//! The contract between the raft layer (`raft/`) and the MVCC state machine (`mvcc`).
//!
//! The raft loop owns a `Box<dyn StateMachine>` and is the only caller. Entry payloads are
//! opaque to raft: the store encodes commands (with the proposing member's id and a request
//! id) and decodes them here. Every member applies every entry and computes the same result,
//! so the member that proposed an entry answers its waiting client from its own apply; only
//! the payload ever crosses the network (followers forward proposals to the leader).

use super::error::{Result, StoreError};

/// One committed raft entry with a non-empty payload.
#[derive(Debug, Clone, Copy)]
pub struct CommittedEntry<'a> {
    pub index: u64,
    pub term: u64,
    pub data: &'a [u8],
}

/// What raft applies committed entries to.
pub trait StateMachine: Send + 'static {
    /// Apply `entries` (consecutive, in log order) and persist their effects together with
    /// `applied_index = up_to`, atomically: after a crash either all of the batch is visible
    /// with the new applied index, or none of it. `up_to` may be larger than the last entry's
    /// index (empty and conf-change entries are skipped by raft but still count as applied).
    ///
    /// The effects need not be fsynced: raft replays from the durable log after a crash.
    ///
    /// # Errors
    /// Only on storage failure; raft then stops (it must not apply past a failed entry).
    fn apply(&mut self, entries: &[CommittedEntry<'_>], up_to: u64) -> Result<()>;

    /// The last applied index as persisted (0 for a new store). Raft replays from here.
    fn applied_index(&self) -> u64;

    /// A consistent, self-describing copy of the whole state (for raft snapshots sent to
    /// lagging or new members, and for log compaction).
    ///
    /// # Errors
    /// On storage failure.
    fn snapshot(&self) -> Result<Vec<u8>>;

    /// Replace the whole state by a snapshot produced by [`StateMachine::snapshot`] taken at
    /// raft index `index`; afterwards `applied_index() == index`.
    ///
    /// # Errors
    /// On a corrupt snapshot (the old state is kept) or storage failure.
    fn restore(&mut self, snapshot: &[u8], index: u64) -> Result<()>;

    /// Make everything applied so far durable (fsync). Raft calls this before it compacts its
    /// log past the applied index, because replay is no longer possible afterwards.
    ///
    /// # Errors
    /// On storage failure.
    fn sync(&mut self) -> Result<()>;
}

/// Raft facts the store needs (for response headers, lease expiry on the leader, status).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RaftStatus {
    pub id: u64,
    pub cluster_id: u64,
    /// 0 when no leader is known.
    pub leader_id: u64,
    pub term: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub is_learner: bool,
}

/// Told why a detached proposal was refused (see [`Replicator::propose_detached`]).
pub type Refused = Box<dyn FnOnce(StoreError) + Send>;

/// The replication seam between the store and raft. Production: the raft node in `raft/`.
/// Unit tests of the store may use a fake that applies proposals directly.
pub trait Replicator: Send + Sync + 'static {
    /// Hand `data` to the leader's log (forwarding to the leader when this member follows).
    /// `Ok` means accepted, not committed: the proposer learns the outcome when its own state
    /// machine applies the entry. Errors: `NoLeader`, `Timeout`, `Stopped`.
    fn propose(&self, data: Vec<u8>) -> BoxFuture<'static, Result<()>>;

    /// [`Replicator::propose`] without waiting for the acceptance: `Err` only when the
    /// proposal cannot even be handed over; a later refusal (no leader, …) is passed to
    /// `refused`, acceptance to nobody. A writer then waits on one thing (its apply result)
    /// instead of two, which saves a thread wake-up per write.
    ///
    /// # Errors
    /// As `propose`, for what can be told at once.
    fn propose_detached(&self, data: Vec<u8>, refused: Refused) -> Result<()> {
        let accepted = self.propose(data);
        tokio::spawn(async move {
            if let Err(e) = accepted.await {
                refused(e);
            }
        });
        Ok(())
    }

    /// ReadIndex: a raft index such that once this member has applied it, a local read is
    /// linearizable. Retries internally until a leader answers or the timeout passes.
    fn read_index(&self) -> BoxFuture<'static, Result<u64>>;

    /// Current raft facts (cheap, non-blocking).
    fn status(&self) -> RaftStatus;

    /// Members of the group as the applied configuration says.
    fn members(&self) -> BoxFuture<'static, Result<Vec<super::types::Member>>>;

    /// Add a member (voter or learner) by name and peer URLs; returns the new member.
    fn member_add(
        &self,
        name: String,
        peer_urls: Vec<String>,
        is_learner: bool,
    ) -> BoxFuture<'static, Result<super::types::Member>>;

    /// Remove a member.
    fn member_remove(&self, id: u64) -> BoxFuture<'static, Result<()>>;

    /// Promote a learner to voter.
    fn member_promote(&self, id: u64) -> BoxFuture<'static, Result<()>>;

    /// Transfer leadership to `id` and wait until it leads (or time out).
    fn transfer_leader(&self, id: u64) -> BoxFuture<'static, Result<()>>;
}

/// A boxed future, as trait objects need.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
