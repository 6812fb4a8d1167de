//! The `raft::Storage` implementation over the WAL: an in-memory index of the entries above
//! the last snapshot, the HardState and the snapshot metadata, all made durable through
//! [`Wal`] before they change in memory.
//!
//! Owns: the `wal/` and `snap/` directories (through [`Wal`] and [`super::snapshot`]). Only
//! the raft loop calls the write methods; raft calls the read-only `Storage` methods.
//! Memory stays bounded because the log is compacted every N applied entries.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

use crate::store::error::{Result, StoreError};

use super::snapshot;
use super::wal::{Batch, FileWrapper, Wal};

/// Raft's storage: durable through the WAL, indexed in memory.
pub struct WalStorage {
    wal: Wal,
    snap_dir: PathBuf,
    hard_state: HardState,
    snapshot: SnapshotMetadata,
    /// Entries above `snapshot.index`, consecutive.
    entries: Vec<Entry>,
    /// `hard_state.commit` moved past what the WAL holds (see [`WalStorage::set_commit`]).
    commit_unsaved: bool,
    /// Set when raft asked for a snapshot that the stored one cannot serve (it predates the
    /// requesting member); the loop then compacts at the applied index, and raft retries.
    snapshot_wanted: AtomicBool,
}

impl WalStorage {
    /// Open the storage under `dir` (`dir/wal`, `dir/snap`), replaying the WAL.
    ///
    /// # Errors
    /// On I/O errors or corruption (see [`Wal::open`]).
    pub fn open(dir: &Path, segment_size: u64, wrapper: Option<FileWrapper>) -> Result<Self> {
        let (wal, r) = Wal::open_with(&dir.join("wal"), segment_size, wrapper)?;
        Ok(WalStorage {
            wal,
            snap_dir: dir.join("snap"),
            hard_state: r.hard_state,
            snapshot: r.snapshot,
            entries: r.entries,
            commit_unsaved: false,
            snapshot_wanted: AtomicBool::new(false),
        })
    }

    /// The last snapshot's metadata (index 0 when there is none).
    pub fn snapshot_metadata(&self) -> &SnapshotMetadata {
        &self.snapshot
    }

    /// The HardState (its commit index may be ahead of the WAL's, see
    /// [`WalStorage::set_commit`]).
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The envelope bytes of the current snapshot.
    ///
    /// # Errors
    /// If the file is missing or unreadable.
    pub fn snapshot_data(&self) -> Result<Vec<u8>> {
        snapshot::read(&self.snap_dir, self.snapshot.index)
    }

    fn first(&self) -> u64 {
        self.snapshot.index + 1
    }

    /// Index of the last entry (the snapshot index when the log is empty).
    pub fn last(&self) -> u64 {
        self.entries.last().map_or(self.snapshot.index, |e| e.index)
    }

    /// Durably append `entries` (overwriting a conflicting suffix) and `hs`, one fdatasync.
    ///
    /// A HardState that only moved the commit index needs no fdatasync of its own (etcd's
    /// `MustSync` rule: only entries, term and vote must be durable before messages go
    /// out); it is recorded like [`WalStorage::set_commit`] and rides with the next frame.
    /// On a leader of several members this is the Ready after a quorum acknowledged an
    /// append, so skipping it takes one fdatasync off every write's path.
    ///
    /// # Errors
    /// On write errors; nothing may be acknowledged then.
    pub fn persist(&mut self, entries: &[Entry], hs: Option<&HardState>) -> Result<()> {
        let hs = match hs {
            Some(h)
                if entries.is_empty()
                    && h.term == self.hard_state.term
                    && h.vote == self.hard_state.vote =>
            {
                return self.set_commit(h.commit);
            }
            other => other,
        };
        if entries.is_empty() && hs.is_none() {
            return Ok(());
        }
        if let Some(first) = entries.first()
            && (first.index <= self.snapshot.index || first.index > self.last() + 1)
        {
            return Err(StoreError::Raft(format!(
                "append at {} outside the log (snapshot {}, last {})",
                first.index,
                self.snapshot.index,
                self.last()
            )));
        }
        let mut b = Batch::default();
        b.entries(entries)?;
        match hs {
            Some(hs) => b.hard_state(hs)?,
            // Carry a commit index recorded since the last frame.
            None if self.commit_unsaved => b.hard_state(&self.hard_state)?,
            None => {}
        }
        self.wal.commit(b)?;
        self.commit_unsaved = false;
        if let Some(first) = entries.first() {
            let keep = (first.index - self.snapshot.index - 1) as usize;
            self.entries.truncate(keep);
            self.entries.extend_from_slice(entries);
        }
        if let Some(hs) = hs {
            self.hard_state = hs.clone();
        }
        Ok(())
    }

    /// Record a new commit index. It reaches the WAL with the next frame (entries, a
    /// HardState, a compaction) instead of costing an fdatasync of its own per Ready: the
    /// commit index is volatile state in Raft. Every entry it covers is already durable in
    /// the log, and after a crash the member learns the index again (a single voter commits
    /// its whole log on becoming leader); an applied index above the stored commit is
    /// accepted at start-up and the entries up to it are not applied twice.
    ///
    /// # Errors
    /// None today; kept fallible for the callers.
    pub fn set_commit(&mut self, commit: u64) -> Result<()> {
        if commit > self.hard_state.commit {
            self.hard_state.commit = commit;
            self.commit_unsaved = true;
        }
        Ok(())
    }

    /// Install a snapshot received from the leader: file first, then the WAL record; all
    /// entries are dropped.
    ///
    /// # Errors
    /// On I/O errors.
    pub fn install(&mut self, snap: &Snapshot) -> Result<()> {
        let meta = snap.get_metadata().clone();
        snapshot::write(&self.snap_dir, meta.index, &snap.data)?;
        let mut hs = self.hard_state.clone();
        hs.term = hs.term.max(meta.term);
        hs.commit = hs.commit.max(meta.index);
        let mut b = Batch::default();
        b.install(&meta)?;
        b.hard_state(&hs)?;
        self.wal.commit(b)?;
        self.commit_unsaved = false;
        self.hard_state = hs;
        self.entries.clear();
        self.snapshot = meta;
        snapshot::remove_older(&self.snap_dir, self.snapshot.index);
        self.wal.purge_below(self.snapshot.index)?;
        Ok(())
    }

    /// Compact the log up to `index` (applied, and the state machine synced), keeping
    /// `data` as the snapshot for lagging members.
    ///
    /// # Errors
    /// On I/O errors, or an index outside the log.
    pub fn compact(&mut self, index: u64, conf_state: ConfState, data: &[u8]) -> Result<()> {
        if index == self.snapshot.index && index > 0 && !snapshot::is_light(data) {
            // A full snapshot replacing the light one at the same point (a member needs it).
            return snapshot::write(&self.snap_dir, index, data);
        }
        if index <= self.snapshot.index {
            return Ok(());
        }
        let term = self
            .entry_term(index)
            .ok_or_else(|| StoreError::Raft(format!("compact to {index}: not in the log")))?;
        snapshot::write(&self.snap_dir, index, data)?;
        let mut meta = SnapshotMetadata::default();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(conf_state);
        let mut b = Batch::default();
        b.compact(&meta)?;
        b.hard_state(&self.hard_state)?;
        self.wal.commit(b)?;
        self.commit_unsaved = false;
        let drop = (index - self.snapshot.index) as usize;
        self.entries.drain(..drop.min(self.entries.len()));
        self.snapshot = meta;
        snapshot::remove_older(&self.snap_dir, index);
        let removed = self.wal.purge_below(index)?;
        tracing::debug!(index, removed_segments = removed, "raft: log compacted");
        Ok(())
    }

    fn entry_term(&self, idx: u64) -> Option<u64> {
        if idx == self.snapshot.index {
            return Some(self.snapshot.term);
        }
        if idx < self.first() || idx > self.last() {
            return None;
        }
        self.entries
            .get((idx - self.first()) as usize)
            .map(|e| e.term)
    }

    /// Whether the current snapshot is a light one (members only; see [`snapshot`]): it
    /// cannot be sent to a peer. `false` when there is none.
    pub fn snapshot_is_light(&self) -> bool {
        self.snapshot.index > 0
            && snapshot::file_is_light(&self.snap_dir, self.snapshot.index).unwrap_or(false)
    }

    /// Whether raft asked for a fresher snapshot since the last call (clears the flag).
    pub fn take_snapshot_wanted(&self) -> bool {
        self.snapshot_wanted.swap(false, Ordering::Relaxed)
    }

    /// Number of entries held in memory (for tests).
    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }
}

impl Storage for WalStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        // The conf state of the snapshot: conf changes after it are re-applied on restart,
        // because raft re-emits every committed entry above the snapshot.
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.snapshot.get_conf_state().clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let lo = (low - self.first()) as usize;
        let hi = (high - self.first()) as usize;
        let mut ents = self.entries[lo..hi].to_vec();
        raft::util::limit_size(&mut ents, max_size.into());
        Ok(ents)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx < self.snapshot.index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        self.entry_term(idx)
            .ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        // The snapshot at the compaction point is what a member that needs entries below
        // `first_index` lacks, unless it predates that member (raft-rs refuses a snapshot
        // whose configuration lacks the receiver): then ask the loop for a fresh one.
        let cs = self.snapshot.get_conf_state();
        if self.snapshot.index < request_index
            || !(cs.voters.contains(&to) || cs.learners.contains(&to))
        {
            self.snapshot_wanted.store(true, Ordering::Relaxed);
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        match self.snapshot_data() {
            Ok(data) if snapshot::is_light(&data) => {
                // Compacted without encoding the state: ask the loop for a full one.
                self.snapshot_wanted.store(true, Ordering::Relaxed);
                Err(raft::Error::Store(
                    StorageError::SnapshotTemporarilyUnavailable,
                ))
            }
            Ok(data) => {
                let mut s = Snapshot::default();
                s.data = data.into();
                s.set_metadata(self.snapshot.clone());
                Ok(s)
            }
            Err(e) => {
                tracing::warn!(error = %e, "raft: snapshot unavailable");
                Err(raft::Error::Store(
                    StorageError::SnapshotTemporarilyUnavailable,
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
        let mut e = Entry::default();
        e.index = index;
        e.term = term;
        e
    }

    #[test]
    fn compaction_and_reopen_keep_only_entries_above_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = WalStorage::open(dir.path(), 1 << 20, None).unwrap();
            let ents: Vec<_> = (1..=5).map(|i| entry(i, 1)).collect();
            let mut hs = HardState::default();
            hs.term = 1;
            hs.commit = 5;
            s.persist(&ents, Some(&hs)).unwrap();
            let mut cs = ConfState::default();
            cs.voters = vec![1];
            s.compact(3, cs, b"snap").unwrap();
            assert_eq!(s.first_index().unwrap(), 4);
            assert_eq!(s.term(3).unwrap(), 1);
            assert!(matches!(
                s.entries(2, 4, None, GetEntriesContext::empty(false)),
                Err(raft::Error::Store(StorageError::Compacted))
            ));
        }
        let s = WalStorage::open(dir.path(), 1 << 20, None).unwrap();
        assert_eq!(s.first_index().unwrap(), 4);
        assert_eq!(s.last_index().unwrap(), 5);
        assert_eq!(s.initial_state().unwrap().conf_state.voters, vec![1]);
        // Member 2 is not in the snapshot's configuration: raft-rs would refuse it, so the
        // storage asks the loop for a fresh one instead.
        assert!(matches!(
            s.snapshot(0, 2),
            Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable
            ))
        ));
        assert!(s.take_snapshot_wanted());
        let snap = s.snapshot(0, 1).unwrap();
        assert_eq!(&snap.data[..], b"snap");
        assert_eq!(snap.get_metadata().index, 3);
    }

    #[test]
    fn a_light_compaction_is_never_served_and_a_full_one_replaces_it_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = WalStorage::open(dir.path(), 1 << 20, None).unwrap();
        let ents: Vec<_> = (1..=5).map(|i| entry(i, 1)).collect();
        let mut hs = HardState::default();
        hs.term = 1;
        hs.commit = 5;
        s.persist(&ents, Some(&hs)).unwrap();
        let mut cs = ConfState::default();
        cs.voters = vec![1, 2];
        s.compact(4, cs, &snapshot::encode_light(&[]).unwrap())
            .unwrap();
        assert_eq!(s.first_index().unwrap(), 5);
        assert!(s.snapshot_is_light());
        assert!(matches!(
            s.snapshot(0, 2),
            Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable
            ))
        ));
        assert!(s.take_snapshot_wanted());
        let full = snapshot::encode(&[], b"state").unwrap();
        s.compact(4, ConfState::default(), &full).unwrap();
        assert!(!s.snapshot_is_light());
        let snap = s.snapshot(0, 2).unwrap();
        assert_eq!(&snap.data[..], &full[..]);
        assert_eq!(snap.get_metadata().get_conf_state().voters, vec![1, 2]);
    }

    #[test]
    fn a_commit_index_is_written_with_the_next_frame_not_on_its_own() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = WalStorage::open(dir.path(), 1 << 20, None).unwrap();
            let mut hs = HardState::default();
            hs.term = 1;
            s.persist(&[entry(1, 1), entry(2, 1)], Some(&hs)).unwrap();
            s.set_commit(2).unwrap();
            assert_eq!(s.hard_state().commit, 2);
        }
        // Not written yet: a crash here loses only the (volatile) commit index.
        let mut s = WalStorage::open(dir.path(), 1 << 20, None).unwrap();
        assert_eq!(s.hard_state().commit, 0);
        assert_eq!(s.last_index().unwrap(), 2);
        s.set_commit(2).unwrap();
        s.persist(&[entry(3, 1)], None).unwrap();
        drop(s);
        let s = WalStorage::open(dir.path(), 1 << 20, None).unwrap();
        assert_eq!(s.hard_state().commit, 2);
        assert_eq!(s.last_index().unwrap(), 3);
    }

    #[test]
    fn a_hard_state_moving_only_the_commit_is_not_written_but_term_and_vote_are() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = WalStorage::open(dir.path(), 1 << 20, None).unwrap();
            let mut hs = HardState::default();
            hs.term = 1;
            hs.vote = 1;
            s.persist(&[entry(1, 1)], Some(&hs)).unwrap();
            hs.commit = 1;
            s.persist(&[], Some(&hs)).unwrap();
            assert_eq!(s.hard_state().commit, 1, "recorded in memory");
        }
        let mut s = WalStorage::open(dir.path(), 1 << 20, None).unwrap();
        assert_eq!(s.hard_state().commit, 0, "no frame of its own");
        // A new term (an election) must be durable on its own.
        let mut hs = HardState::default();
        hs.term = 2;
        hs.vote = 3;
        s.persist(&[], Some(&hs)).unwrap();
        drop(s);
        let s = WalStorage::open(dir.path(), 1 << 20, None).unwrap();
        assert_eq!((s.hard_state().term, s.hard_state().vote), (2, 3));
    }
}
