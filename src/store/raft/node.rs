//! The raft loop: one thread owns the `RawNode` and the state machine.
//!
//! Owns: the `RawNode<WalStorage>`, the `Box<dyn StateMachine>`, the outbound [`Transport`].
//! Input arrives on one bounded channel ([`Input`]): proposals, peer messages, conf changes,
//! ReadIndex requests, transport reports. A deadline drives `tick()`.
//!
//! Each `Ready` is handled in raft-rs's documented order, with one deliberate refinement:
//! committed entries are applied *after* the entries and HardState of the same Ready are
//! fdatasynced (raft-rs allows applying earlier; we trade a little latency for the
//! invariant). Order: send messages → install snapshot → persist entries + HardState (one
//! fdatasync) → send persisted messages → apply committed entries → answer ReadIndex →
//! advance → record the light ready's commit (written with the next WAL frame, no fdatasync
//! of its own: the commit index is volatile in Raft) → send its messages → apply its
//! committed entries → advance_apply.
//!
//! It runs on a plain thread (not a tokio task) because the WAL's fdatasync and the state
//! machine's sled writes block. Large committed batches are handed to an applier thread
//! (`pipeline.rs`), so the next Ready's fdatasync overlaps their sled writes; "apply" above
//! means "hand over in order", and everything needing the applied state waits for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use protobuf::Message as _;
use raft::eraftpb::{
    ConfChange, ConfChangeSingle, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType,
    Message, Snapshot,
};
use raft::{RawNode, SnapshotStatus, StateRole};
use tokio::sync::oneshot;

use crate::store::error::{Result, StoreError};
use crate::store::state_machine::{CommittedEntry, RaftStatus, StateMachine};
use crate::store::types::Member;

use super::membership::{ConfChangeContext, MemberFile, MemberMeta, Members, new_member_id};
use super::snapshot;
use super::storage::WalStorage;
use super::transport::Transport;

/// A membership change request.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum MemberOp {
    Add {
        name: String,
        peer_urls: Vec<String>,
        client_urls: Vec<String>,
        learner: bool,
    },
    Remove(u64),
    Promote(u64),
}

/// Who hears how a proposal fared when the loop takes it.
pub enum ProposeReply {
    /// Accepted or refused.
    Outcome(oneshot::Sender<Result<()>>),
    /// Only a refusal (the proposer waits for the apply result instead).
    Refusal(crate::store::state_machine::Refused),
}

impl ProposeReply {
    fn send(self, res: Result<()>) {
        match (self, res) {
            (ProposeReply::Outcome(tx), res) => {
                let _ = tx.send(res);
            }
            (ProposeReply::Refusal(refused), Err(e)) => refused(e),
            (ProposeReply::Refusal(_), Ok(())) => {}
        }
    }
}

/// Everything the raft loop reacts to.
pub enum Input {
    Propose {
        data: Vec<u8>,
        reply: ProposeReply,
    },
    Step(Box<Message>),
    ReadIndex {
        reply: oneshot::Sender<Result<u64>>,
    },
    ConfChange {
        op: MemberOp,
        reply: oneshot::Sender<Result<Member>>,
    },
    TransferLeader(u64),
    Unreachable(u64),
    SnapshotStatus(u64, bool),
    /// A member told us that we were removed from the group.
    Removed(u64),
    Shutdown,
}

/// Where a ReadIndex answer goes.
pub type ReadReply = oneshot::Sender<Result<u64>>;

/// State the loop publishes for cheap reads from other threads.
#[derive(Default)]
pub struct Shared {
    pub status: RwLock<RaftStatus>,
    pub members: RwLock<Vec<Member>>,
    pub metas: RwLock<Vec<MemberMeta>>,
    pub stopped: AtomicBool,
    pub stop_requested: AtomicBool,
    pub error: Mutex<Option<String>>,
}

/// The loop's state.
pub struct Node {
    pub raw: RawNode<WalStorage>,
    pub sm: Box<dyn StateMachine>,
    pub rx: Receiver<Input>,
    pub transport: Transport,
    pub shared: Arc<Shared>,
    pub members: Members,
    pub conf_state: ConfState,
    pub cluster_id: u64,
    pub tick: Duration,
    pub compact_every: u64,
    pub request_timeout: Duration,
    /// ReadIndex requests in flight, by raft request context; one context serves every
    /// request that arrived in the same loop pass (one heartbeat round for all of them).
    pub pending_reads: HashMap<Vec<u8>, (Vec<ReadReply>, Instant)>,
    /// ReadIndex requests received in this loop pass, not yet handed to raft.
    pub new_reads: Vec<ReadReply>,
    pub pending_cc: HashMap<u64, (oneshot::Sender<Result<Member>>, Instant)>,
    pub removed: bool,
    /// Members whose removal we applied: address and when we last told them.
    pub removed_peers: HashMap<u64, (String, Option<Instant>)>,
    /// Where `member.json` lives (marked on removal).
    pub data_dir: std::path::PathBuf,
}

impl Node {
    /// Run until shutdown, removal or a fatal storage error.
    pub fn run(mut self) {
        // Re-apply what the log holds above the snapshot (conf changes included) first; a
        // member that is then the only voter need not wait an election timeout.
        let replay = self.on_ready();
        if replay.is_ok()
            && self.conf_state.voters == [self.raw.raft.id]
            && self.raw.raft.state != StateRole::Leader
        {
            let _ = self.raw.campaign();
        }
        self.publish();
        let mut next_tick = Instant::now() + self.tick;
        let outcome = loop {
            if let Err(e) = &replay {
                break Err(StoreError::Raft(format!("replaying the log: {e}")));
            }
            if self.shared.stop_requested.load(Ordering::Relaxed) {
                break Ok(());
            }
            let wait = if self.raw.has_ready() {
                Duration::ZERO
            } else {
                next_tick.saturating_duration_since(Instant::now())
            };
            let mut stop = false;
            match self.rx.recv_timeout(wait) {
                Ok(input) => stop = !self.handle(input),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => stop = true,
            }
            // Drain what else is queued so one Ready covers it (group commit).
            for _ in 0..4096 {
                if stop {
                    break;
                }
                match self.rx.try_recv() {
                    Ok(input) => stop = !self.handle(input),
                    Err(_) => break,
                }
            }
            if stop {
                break Ok(());
            }
            if !self.new_reads.is_empty() {
                let ctx = uuid::Uuid::new_v4().as_bytes().to_vec();
                self.raw.read_index(ctx.clone());
                let batch = std::mem::take(&mut self.new_reads);
                self.pending_reads.insert(ctx, (batch, Instant::now()));
            }
            if Instant::now() >= next_tick {
                self.raw.tick();
                next_tick = Instant::now() + self.tick;
                self.expire();
            }
            if let Err(e) = self.on_ready() {
                break Err(e);
            }
            self.publish();
            if self.removed {
                break Err(StoreError::Raft(
                    "this member was removed from the group".into(),
                ));
            }
        };
        // A clean stop leaves the applied state on disk: sled writes back only in the
        // background, and what reads the state before raft replays its log at the next start
        // (the cluster-CA recovery in `peek`) must see every write this member applied.
        if outcome.is_ok()
            && let Err(e) = self.sm.sync()
        {
            tracing::warn!(error = %e, "raft: cannot sync the state at stop");
        }
        if self.removed {
            self.mark_removed();
        }
        if let Err(e) = &outcome {
            tracing::error!(error = %e, "raft: member stopped");
            if let Ok(mut slot) = self.shared.error.lock() {
                *slot = Some(e.to_string());
            }
        }
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.transport.shutdown();
        for reply in self
            .pending_reads
            .drain()
            .flat_map(|(_, (r, _))| r)
            .chain(self.new_reads.drain(..))
        {
            let _ = reply.send(Err(StoreError::Stopped));
        }
        for (_, (reply, _)) in self.pending_cc.drain() {
            let _ = reply.send(Err(StoreError::Stopped));
        }
    }

    /// Record the removal so a restart refuses instead of haunting the group.
    fn mark_removed(&self) {
        let res = MemberFile::load(&self.data_dir).and_then(|f| match f {
            Some(mut f) => {
                f.removed = true;
                f.save(&self.data_dir)
            }
            None => Ok(()),
        });
        if let Err(e) = res {
            tracing::warn!(error = %e, "raft: cannot record this member's removal");
        }
    }

    /// A removed member that still sends us messages never learnt of its removal (the
    /// leader stopped replicating to it): tell it, at most once a second.
    fn tell_if_removed(&mut self, from: u64) {
        let Some((addr, last)) = self.removed_peers.get_mut(&from) else {
            return;
        };
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            return;
        }
        *last = Some(Instant::now());
        self.transport.notify_removed(from, addr.clone());
    }

    fn leader_id(&self) -> u64 {
        self.raw.raft.leader_id
    }

    /// Returns false on shutdown.
    fn handle(&mut self, input: Input) -> bool {
        match input {
            Input::Propose { data, reply } => {
                let res = if self.leader_id() == 0 {
                    Err(StoreError::NoLeader)
                } else {
                    self.raw.propose(vec![], data).map_err(map_propose_err)
                };
                reply.send(res);
            }
            Input::Step(msg) => {
                self.tell_if_removed(msg.from);
                if let Err(e) = self.raw.step(*msg) {
                    tracing::debug!(error = %e, "raft: ignored peer message");
                }
            }
            Input::ReadIndex { reply } => {
                if self.leader_id() == 0 {
                    let _ = reply.send(Err(StoreError::NoLeader));
                } else {
                    self.new_reads.push(reply);
                }
            }
            Input::ConfChange { op, reply } => {
                if let Err(e) = self.propose_member_op(op, reply) {
                    tracing::debug!(error = %e, "raft: membership change refused");
                }
            }
            Input::TransferLeader(id) => self.raw.transfer_leader(id),
            Input::Unreachable(id) => self.raw.report_unreachable(id),
            Input::SnapshotStatus(id, ok) => self.raw.report_snapshot(
                id,
                if ok {
                    SnapshotStatus::Finish
                } else {
                    SnapshotStatus::Failure
                },
            ),
            Input::Removed(id) => {
                if id == self.raw.raft.id {
                    tracing::warn!("raft: a member says this member was removed from the group");
                    self.removed = true;
                }
            }
            Input::Shutdown => return false,
        }
        true
    }

    /// Propose a conf change; the reply is sent when it is applied (or refused now).
    fn propose_member_op(
        &mut self,
        op: MemberOp,
        reply: oneshot::Sender<Result<Member>>,
    ) -> Result<()> {
        let refuse = |reply: oneshot::Sender<Result<Member>>, e: StoreError| {
            let msg = e.to_string();
            let _ = reply.send(Err(e));
            Err(StoreError::InvalidRequest(msg))
        };
        if self.leader_id() == 0 {
            return refuse(reply, StoreError::NoLeader);
        }
        if self.raw.raft.state == StateRole::Leader && self.raw.raft.has_pending_conf() {
            // raft-rs would silently turn this proposal into an empty entry.
            return refuse(
                reply,
                StoreError::InvalidRequest(
                    "a membership change is already in progress; retry once it is applied".into(),
                ),
            );
        }
        let is_voter = |id: u64| self.conf_state.voters.contains(&id);
        let is_learner = |id: u64| self.conf_state.learners.contains(&id);
        let (id, ty, meta) = match op {
            MemberOp::Add {
                name,
                peer_urls,
                client_urls,
                learner,
            } => {
                if let Some(m) = self
                    .members
                    .by_id
                    .values()
                    .find(|m| m.name == name && (is_voter(m.id) || is_learner(m.id)))
                {
                    return refuse(
                        reply,
                        StoreError::InvalidRequest(format!(
                            "a member named {name:?} already exists (id {:x}); remove it first",
                            m.id
                        )),
                    );
                }
                let id = new_member_id(&self.members);
                let ty = if learner {
                    ConfChangeType::AddLearnerNode
                } else {
                    ConfChangeType::AddNode
                };
                let meta = MemberMeta {
                    id,
                    name,
                    peer_urls,
                    client_urls,
                };
                (id, ty, meta)
            }
            MemberOp::Remove(id) => {
                if !is_voter(id) && !is_learner(id) {
                    return refuse(reply, StoreError::MemberNotFound { id });
                }
                let meta = self.members.by_id.get(&id).cloned().unwrap_or(MemberMeta {
                    id,
                    ..Default::default()
                });
                (id, ConfChangeType::RemoveNode, meta)
            }
            MemberOp::Promote(id) => {
                if is_voter(id) {
                    return refuse(
                        reply,
                        StoreError::InvalidRequest(format!("member {id:x} is not a learner")),
                    );
                }
                if !is_learner(id) {
                    return refuse(reply, StoreError::MemberNotFound { id });
                }
                let meta = self.members.by_id.get(&id).cloned().unwrap_or(MemberMeta {
                    id,
                    ..Default::default()
                });
                (id, ConfChangeType::AddNode, meta)
            }
        };
        let req: u64 = rand::random();
        let ctx = serde_json::to_vec(&ConfChangeContext { req, member: meta })
            .map_err(|e| StoreError::Raft(format!("encode conf change: {e}")))?;
        let mut single = ConfChangeSingle::default();
        single.node_id = id;
        single.set_change_type(ty);
        let mut cc = ConfChangeV2::default();
        cc.set_changes(vec![single].into());
        cc.context = ctx.into();
        match self.raw.propose_conf_change(vec![], cc) {
            Ok(()) => {
                self.pending_cc.insert(req, (reply, Instant::now()));
                Ok(())
            }
            Err(e) => refuse(reply, map_propose_err(e)),
        }
    }

    fn expire(&mut self) {
        let now = Instant::now();
        let limit = self.request_timeout;
        // Dropping a read's sender makes the caller retry with a fresh request.
        self.pending_reads
            .retain(|_, (_, at)| now.duration_since(*at) < limit);
        // raft-rs silently drops a ReadIndex that reached a leader before it committed an
        // entry in its term (or no leader at all): re-issue unanswered ones every few ticks.
        if self.leader_id() != 0 {
            let stale: Vec<Vec<u8>> = self
                .pending_reads
                .iter()
                .filter(|(_, (_, at))| now.duration_since(*at) >= self.tick * 3)
                .map(|(k, _)| k.clone())
                .collect();
            for ctx in stale {
                self.raw.read_index(ctx);
            }
        }
        let expired: Vec<u64> = self
            .pending_cc
            .iter()
            .filter(|(_, (_, at))| now.duration_since(*at) >= limit)
            .map(|(k, _)| *k)
            .collect();
        for k in expired {
            if let Some((reply, _)) = self.pending_cc.remove(&k) {
                let _ = reply.send(Err(StoreError::Timeout));
            }
        }
    }

    fn send(&mut self, msgs: Vec<Message>) {
        for m in msgs {
            let to = m.to;
            let snap = m.get_msg_type() == raft::eraftpb::MessageType::MsgSnapshot;
            if !self.transport.send(m) {
                self.raw.report_unreachable(to);
                if snap {
                    self.raw.report_snapshot(to, SnapshotStatus::Failure);
                }
            }
        }
    }

    fn on_ready(&mut self) -> Result<()> {
        if !self.raw.has_ready() {
            return Ok(());
        }
        let mut rd = self.raw.ready();
        // Leadership changes are rare and what an operator (and the multi-process test)
        // needs to know: which member leads, since which term.
        if let Some(ss) = rd.ss() {
            if ss.raft_state == StateRole::Leader {
                tracing::info!(
                    term = self.raw.raft.term,
                    "raft: this member is now the leader"
                );
            } else if ss.leader_id != 0 {
                tracing::debug!(leader = ss.leader_id, "raft: following");
            }
        }
        self.send(rd.take_messages());
        if !rd.snapshot().is_empty() {
            let snap = rd.snapshot().clone();
            self.install_snapshot(&snap)?;
        }
        self.raw.mut_store().persist(rd.entries(), rd.hs())?;
        // A follower's append responses (and votes) wait only for the fdatasync above, not
        // for applying: sending them first takes the apply off every write's replication
        // round trip (etcd does the same).
        self.send(rd.take_persisted_messages());
        let committed = rd.take_committed_entries();
        self.apply_entries(committed)?;
        for rs in rd.take_read_states() {
            if let Some((replies, _)) = self.pending_reads.remove(&rs.request_ctx) {
                for reply in replies {
                    let _ = reply.send(Ok(rs.index));
                }
            }
        }
        let mut light = self.raw.advance(rd);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().set_commit(commit)?;
        }
        self.send(light.take_messages());
        let committed = light.take_committed_entries();
        self.apply_entries(committed)?;
        self.raw.advance_apply();
        self.maybe_compact()
    }

    fn install_snapshot(&mut self, snap: &Snapshot) -> Result<()> {
        let meta = snap.get_metadata();
        let (list, data) = snapshot::decode(&snap.data)?;
        // Storage first: after a crash before the restore, start-up restores the state
        // machine from the snapshot file because its applied index is behind.
        self.raw.mut_store().install(snap)?;
        self.sm.restore(data, meta.index)?;
        self.members = Members::from_list(list);
        self.conf_state = meta.get_conf_state().clone();
        self.transport.set_peers(&self.members);
        tracing::info!(
            index = meta.index,
            term = meta.term,
            "raft: installed snapshot"
        );
        Ok(())
    }

    fn apply_entries(&mut self, entries: Vec<Entry>) -> Result<()> {
        let Some(last) = entries.last().map(|e| e.index) else {
            return Ok(());
        };
        for e in &entries {
            if matches!(
                e.get_entry_type(),
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2
            ) {
                self.apply_conf_change(e)?;
            }
        }
        let sm_applied = self.sm.applied_index();
        if last <= sm_applied {
            // Replay after a restart: the state machine already has these.
            return Ok(());
        }
        let batch: Vec<CommittedEntry<'_>> = entries
            .iter()
            .filter(|e| {
                e.get_entry_type() == EntryType::EntryNormal
                    && e.index > sm_applied
                    && !e.data.is_empty()
            })
            .map(|e| CommittedEntry {
                index: e.index,
                term: e.term,
                data: &e.data,
            })
            .collect();
        self.sm.apply(&batch, last)
    }

    fn apply_conf_change(&mut self, e: &Entry) -> Result<()> {
        let cc = if e.get_entry_type() == EntryType::EntryConfChange {
            let v1 = ConfChange::parse_from_bytes(&e.data)
                .map_err(|err| StoreError::Corrupt(format!("conf change at {}: {err}", e.index)))?;
            let mut single = ConfChangeSingle::default();
            single.node_id = v1.node_id;
            single.set_change_type(v1.get_change_type());
            let mut cc = ConfChangeV2::default();
            cc.set_changes(vec![single].into());
            cc.context = v1.context;
            cc
        } else {
            ConfChangeV2::parse_from_bytes(&e.data)
                .map_err(|err| StoreError::Corrupt(format!("conf change at {}: {err}", e.index)))?
        };
        let ctx: Option<ConfChangeContext> = serde_json::from_slice(&cc.context).ok();
        let waiter = ctx.as_ref().and_then(|c| self.pending_cc.remove(&c.req));
        match self.raw.apply_conf_change(&cc) {
            Ok(cs) => {
                self.conf_state = cs;
                let mut changed = None;
                for ch in cc.get_changes() {
                    match ch.get_change_type() {
                        ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => {
                            self.removed_peers.remove(&ch.node_id);
                            if let Some(c) = &ctx {
                                let mut m = c.member.clone();
                                m.id = ch.node_id;
                                self.members.by_id.insert(ch.node_id, m);
                            }
                        }
                        ConfChangeType::RemoveNode => {
                            if let Some(addr) = self.members.peer_addr(ch.node_id) {
                                self.removed_peers.insert(ch.node_id, (addr, None));
                            }
                            self.members.by_id.remove(&ch.node_id);
                            if ch.node_id == self.raw.raft.id {
                                self.removed = true;
                            }
                        }
                    }
                    changed = Some(ch.node_id);
                }
                self.transport.set_peers(&self.members);
                // Publish before answering: a join reply lists the members as of this change.
                self.publish();
                tracing::info!(index = e.index, voters = ?self.conf_state.voters, learners = ?self.conf_state.learners, "raft: membership changed");
                if let Some((reply, _)) = waiter {
                    let id = changed.unwrap_or_default();
                    let member = self
                        .members
                        .view(&self.conf_state)
                        .into_iter()
                        .find(|m| m.id == id)
                        .unwrap_or_else(|| Member {
                            id,
                            ..Default::default()
                        });
                    let _ = reply.send(Ok(member));
                }
            }
            Err(err) => {
                tracing::warn!(index = e.index, error = %err, "raft: conf change rejected");
                if let Some((reply, _)) = waiter {
                    let _ = reply.send(Err(StoreError::Raft(err.to_string())));
                }
            }
        }
        Ok(())
    }

    /// Every `compact_every` applied entries the log is compacted with a light snapshot
    /// (members only: the state is in sled, synced first); a full snapshot of the state is
    /// encoded only when a peer needs one (raft asked the storage for it).
    fn maybe_compact(&mut self) -> Result<()> {
        let applied = self.raw.raft.raft_log.applied;
        let snap_index = self.raw.store().snapshot_metadata().index;
        let wanted = self.raw.store().take_snapshot_wanted();
        let full = wanted && (applied > snap_index || self.raw.store().snapshot_is_light());
        let due = applied >= snap_index + self.compact_every || full;
        // Only when the state machine is exactly at raft's applied index: a snapshot must
        // describe the state at the index it is labelled with.
        if !due || self.sm.applied_index() != applied {
            return Ok(());
        }
        let started = Instant::now();
        self.sm.sync()?;
        let data = if full {
            snapshot::encode(&self.members.list(), &self.sm.snapshot()?)?
        } else {
            snapshot::encode_light(&self.members.list())?
        };
        self.raw
            .mut_store()
            .compact(applied, self.conf_state.clone(), &data)?;
        tracing::debug!(
            index = applied,
            full,
            bytes = data.len(),
            ms = started.elapsed().as_millis() as u64,
            "raft: snapshot taken"
        );
        Ok(())
    }

    /// Publish status and members for readers on other threads.
    pub fn publish(&self) {
        let r = &self.raw.raft;
        let status = RaftStatus {
            id: r.id,
            cluster_id: self.cluster_id,
            leader_id: r.leader_id,
            term: r.term,
            commit_index: r.raft_log.committed,
            applied_index: r.raft_log.applied,
            is_learner: self.conf_state.learners.contains(&r.id),
        };
        if let Ok(mut s) = self.shared.status.write() {
            *s = status;
        }
        if let Ok(mut m) = self.shared.members.write() {
            *m = self.members.view(&self.conf_state);
        }
        if let Ok(mut m) = self.shared.metas.write() {
            *m = self.members.list();
        }
    }
}

fn map_propose_err(e: raft::Error) -> StoreError {
    match e {
        raft::Error::ProposalDropped => StoreError::NoLeader,
        other => StoreError::Raft(other.to_string()),
    }
}
