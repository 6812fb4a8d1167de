//! Offline surgery on a raft data directory for `k3rs server --cluster-reset`: read what the
//! local log has committed, and lay out a brand-new one-member group around a state machine
//! snapshot.
//!
//! Owns nothing persistent of its own: it writes the same `member.json`, `wal/` and `snap/`
//! that [`super::start`] would, so the member started afterwards simply resumes. Called only
//! while no raft loop runs on the directory.

use std::path::Path;

use raft::eraftpb::{EntryType, Snapshot};
use raft::{GetEntriesContext, Storage};

use super::membership::{MemberFile, MemberMeta, Members, new_member_id};
use super::snapshot;
use super::storage::WalStorage;
use crate::store::error::{Result, StoreError};
use crate::store::state_machine::{CommittedEntry, StateMachine};

/// WAL segment size used for the new log (the same default as [`super::RaftConfig`]).
const SEGMENT: u64 = 64 << 20;

/// Brings `sm` up to everything the raft log in `dir` holds: restores the log's snapshot if
/// the state machine is behind it, then applies the entries above its applied index. Returns
/// the index reached.
///
/// The whole durable log is replayed, not only up to the commit index on disk: that index is
/// written with the next WAL frame (volatile state in raft), so it may lag writes already
/// acknowledged. This is what restarting as a one-member group would commit anyway; an entry
/// beyond the true commit point was never acknowledged to its client, so keeping it is allowed.
///
/// # Errors
/// On I/O errors or a corrupt log or snapshot.
pub fn catch_up(dir: &Path, sm: &mut dyn StateMachine) -> Result<u64> {
    if MemberFile::load(dir)?.is_none() {
        // Nothing was ever committed here (a store that never started).
        return Ok(sm.applied_index());
    }
    let storage = WalStorage::open(dir, SEGMENT, None)?;
    let snap_index = storage.snapshot_metadata().index;
    if snap_index > 0 && sm.applied_index() < snap_index {
        let data = storage.snapshot_data()?;
        let (_, sm_data) = snapshot::decode(&data)?;
        sm.restore(sm_data, snap_index)?;
    }
    let commit = storage.last();
    let from = sm.applied_index() + 1;
    if commit >= from {
        let entries = storage
            .entries(from, commit + 1, None, GetEntriesContext::empty(false))
            .map_err(|e| StoreError::Corrupt(format!("reading the raft log: {e}")))?;
        let batch: Vec<CommittedEntry<'_>> = entries
            .iter()
            .filter(|e| e.get_entry_type() == EntryType::EntryNormal && !e.data.is_empty())
            .map(|e| CommittedEntry {
                index: e.index,
                term: e.term,
                data: &e.data,
            })
            .collect();
        sm.apply(&batch, commit)?;
        sm.sync()?;
    }
    Ok(commit.max(sm.applied_index()))
}

/// Creates a new one-member group in the empty directory `dir`: a fresh member id and cluster
/// id, and the raft snapshot at index 1 (term 1) holding `sm_snapshot` and the member list of
/// one, exactly as `--cluster-init` starts a group. The state machine that goes with it must
/// have applied index 1 (restore it with index 1). Returns the member file written.
///
/// # Errors
/// If `dir` already holds a log, or on I/O errors.
pub fn bootstrap_single(dir: &Path, mut me: MemberMeta, sm_snapshot: &[u8]) -> Result<MemberFile> {
    std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    if MemberFile::load(dir)?.is_some() {
        return Err(StoreError::InvalidRequest(format!(
            "{} already holds a raft member",
            dir.display()
        )));
    }
    let mut storage = WalStorage::open(dir, SEGMENT, None)?;
    if storage.snapshot_metadata().index > 0 || storage.last() > 0 {
        return Err(StoreError::InvalidRequest(format!(
            "{} already holds a raft log",
            dir.display()
        )));
    }
    me.id = new_member_id(&Members::default());
    let file = MemberFile {
        id: me.id,
        cluster_id: rand::random::<u64>().max(1),
        name: me.name.clone(),
        cluster_init: true,
        initial_members: vec![me.clone()],
        removed: false,
    };
    let mut snap = Snapshot::default();
    snap.data = snapshot::encode(&[me], sm_snapshot)?.into();
    let meta = snap.mut_metadata();
    meta.index = 1;
    meta.term = 1;
    meta.mut_conf_state().voters = vec![file.id];
    storage.install(&snap)?;
    // member.json last: its presence means "resume", so it must not exist without the log.
    file.save(dir)?;
    Ok(file)
}
