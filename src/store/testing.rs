//! A fake [`Replicator`] for tests and benchmarks of the store without raft: every proposal
//! is applied at once to the state machine, under a mutex, as the next log index.
//!
//! It can pretend to follow (no leader, or another leader) so lease expiry and keep-alive
//! paths can be tested, and it can swallow proposals to test timeouts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::error::{Result, StoreError};
use super::state_machine::{BoxFuture, CommittedEntry, RaftStatus, Replicator, StateMachine};
use super::types::Member;

/// Applies proposals directly. Single member, term 1.
pub struct FakeReplicator {
    sm: Mutex<Box<dyn StateMachine>>,
    status: Mutex<RaftStatus>,
    drop_proposals: AtomicBool,
}

impl FakeReplicator {
    /// A leader with member id `id` over `sm`.
    pub fn new(sm: Box<dyn StateMachine>, id: u64) -> Arc<Self> {
        let applied = sm.applied_index();
        Arc::new(FakeReplicator {
            sm: Mutex::new(sm),
            status: Mutex::new(RaftStatus {
                id,
                cluster_id: 0xC1,
                leader_id: id,
                term: 1,
                commit_index: applied,
                applied_index: applied,
                is_learner: false,
            }),
            drop_proposals: AtomicBool::new(false),
        })
    }

    fn status_mut(&self) -> std::sync::MutexGuard<'_, RaftStatus> {
        self.status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Pretends `leader_id` leads (0 = none); a different id makes this member a follower.
    pub fn set_leader(&self, leader_id: u64) {
        let mut st = self.status_mut();
        st.leader_id = leader_id;
        st.term += 1;
    }

    /// Accept proposals but never apply them (to test timeouts).
    pub fn set_drop_proposals(&self, drop: bool) {
        self.drop_proposals.store(drop, Ordering::Relaxed);
    }

    /// Runs `f` on the state machine (e.g. snapshot/restore/sync in tests).
    pub fn with_state_machine<T>(&self, f: impl FnOnce(&mut dyn StateMachine) -> T) -> T {
        let mut sm = self
            .sm
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(sm.as_mut())
    }

    fn apply(&self, data: &[u8]) -> Result<()> {
        let mut sm = self
            .sm
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let index = self.status_mut().commit_index + 1;
        let entry = CommittedEntry {
            index,
            term: 1,
            data,
        };
        sm.apply(&[entry], index)?;
        let mut st = self.status_mut();
        st.commit_index = index;
        st.applied_index = index;
        Ok(())
    }
}

impl Replicator for FakeReplicator {
    fn propose(&self, data: Vec<u8>) -> BoxFuture<'static, Result<()>> {
        let result = if self.drop_proposals.load(Ordering::Relaxed) {
            Ok(())
        } else {
            self.apply(&data)
        };
        Box::pin(async move { result })
    }

    fn read_index(&self) -> BoxFuture<'static, Result<u64>> {
        let st = *self.status_mut();
        let result = if st.leader_id == 0 {
            Err(StoreError::NoLeader)
        } else {
            Ok(st.commit_index)
        };
        Box::pin(async move { result })
    }

    fn status(&self) -> RaftStatus {
        *self.status_mut()
    }

    fn members(&self) -> BoxFuture<'static, Result<Vec<Member>>> {
        let id = self.status_mut().id;
        Box::pin(async move {
            Ok(vec![Member {
                id,
                name: "fake".into(),
                ..Member::default()
            }])
        })
    }

    fn member_add(
        &self,
        _name: String,
        _peer_urls: Vec<String>,
        _is_learner: bool,
    ) -> BoxFuture<'static, Result<Member>> {
        Box::pin(async {
            Err(StoreError::Raft(
                "the fake replicator has one member".into(),
            ))
        })
    }

    fn member_remove(&self, id: u64) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move { Err(StoreError::MemberNotFound { id }) })
    }

    fn member_promote(&self, id: u64) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move { Err(StoreError::MemberNotFound { id }) })
    }

    fn transfer_leader(&self, id: u64) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move { Err(StoreError::MemberNotFound { id }) })
    }
}
