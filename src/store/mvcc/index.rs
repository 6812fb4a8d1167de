//! The per-key revision index: for every key with history, its changes in revision order and
//! where each one lives in the revision log (`r rev seq`). Kept in memory, as etcd keeps its
//! `treeIndex`, and rebuilt from the revision log when the store opens: the log is the only
//! copy of history on disk, so a put appends there and nowhere else at a random place.
//!
//! Owned by [`super::Mvcc`] behind its `view` lock: batches change it only while committing
//! (under the write lock), readers use it under the read lock, so both always agree with the
//! committed tree.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::keys;
use crate::store::error::Result;
use crate::store::types::Revision;

/// One change of a key: its revision, its place in that revision's log, and whether it was a
/// delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Change {
    pub rev: Revision,
    pub seq: u32,
    pub tombstone: bool,
}

/// Key → its changes, ascending by revision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct KeyIndex {
    keys: BTreeMap<Vec<u8>, Vec<Change>>,
}

/// The newest change `<= rev` in `changes` (ascending).
pub(crate) fn newest_at(changes: &[Change], rev: Revision) -> Option<Change> {
    let n = changes.partition_point(|c| c.rev <= rev);
    n.checked_sub(1).map(|i| changes[i])
}

/// How many leading changes a compaction at `rev` drops: every change `<= rev` but the
/// newest, and that one too when it is a delete older than `rev` (etcd keeps the newest
/// version at the compact revision; a key deleted before it is gone for good).
pub(crate) fn compaction_drops(changes: &[Change], rev: Revision) -> usize {
    let n = changes.partition_point(|c| c.rev <= rev);
    match n.checked_sub(1).map(|i| changes[i]) {
        Some(last) if last.tombstone && last.rev < rev => n,
        Some(_) => n - 1,
        None => 0,
    }
}

impl KeyIndex {
    /// Builds the index from the revision log of `tree`.
    ///
    /// # Errors
    /// Undecodable log entries, storage failures.
    pub(crate) fn load(tree: &sled::Tree) -> Result<Self> {
        let mut index = KeyIndex::default();
        for item in tree.range(keys::prefix_start(keys::REVLOG)..keys::prefix_end(keys::REVLOG)) {
            let (rk, v) = item?;
            let (rev, seq) = keys::split_revlog_key(&rk)?;
            let (key, rec) = keys::split_revlog_value(&v)?;
            let tombstone = keys::record_is_tombstone(rec)?;
            index.push(
                key,
                Change {
                    rev,
                    seq,
                    tombstone,
                },
            );
        }
        Ok(index)
    }

    /// The changes of `key`, ascending (empty when it has no history).
    pub(crate) fn changes(&self, key: &[u8]) -> &[Change] {
        self.keys.get(key).map_or(&[], Vec::as_slice)
    }

    /// Keys in `[lo, hi)` (`hi == None`: unbounded) with their changes, in key order.
    pub(crate) fn range<'a>(
        &'a self,
        lo: &[u8],
        hi: Option<&[u8]>,
    ) -> impl Iterator<Item = (&'a Vec<u8>, &'a Vec<Change>)> + 'a {
        let hi = hi.map_or(Bound::Unbounded, Bound::Excluded);
        self.keys.range::<[u8], _>((Bound::Included(lo), hi))
    }

    /// Appends a change (newer than every change of `key` so far).
    pub(crate) fn push(&mut self, key: &[u8], change: Change) {
        match self.keys.get_mut(key) {
            Some(changes) => changes.push(change),
            None => {
                self.keys.insert(key.to_vec(), vec![change]);
            }
        }
    }

    /// Appends every change of `newer` (all newer than this index's).
    pub(crate) fn absorb(&mut self, newer: KeyIndex) {
        for (key, changes) in newer.keys {
            match self.keys.get_mut(&key) {
                Some(mine) => mine.extend(changes),
                None => {
                    self.keys.insert(key, changes);
                }
            }
        }
    }

    /// Applies a compaction at `rev` to `key` (see [`compaction_drops`]).
    pub(crate) fn compact_key(&mut self, key: &[u8], rev: Revision) {
        if let Some(changes) = self.keys.get_mut(key) {
            let drop = compaction_drops(changes, rev);
            changes.drain(..drop);
            if changes.is_empty() {
                self.keys.remove(key);
            }
        }
    }

    /// The number of changes held (tests and diagnostics).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.keys.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(rev: Revision, tombstone: bool) -> Change {
        Change {
            rev,
            seq: 0,
            tombstone,
        }
    }

    #[test]
    fn newest_at_picks_the_last_change_not_after_the_revision() {
        let c = [ch(3, false), ch(5, true), ch(8, false)];
        assert_eq!(newest_at(&c, 2), None);
        assert_eq!(newest_at(&c, 3), Some(ch(3, false)));
        assert_eq!(newest_at(&c, 7), Some(ch(5, true)));
        assert_eq!(newest_at(&c, 100), Some(ch(8, false)));
    }

    #[test]
    fn compaction_keeps_the_newest_version_unless_deleted_before() {
        let c = [ch(3, false), ch(5, true), ch(8, false)];
        assert_eq!(compaction_drops(&c, 2), 0);
        assert_eq!(compaction_drops(&c, 4), 0);
        // Deleted at 5 < 6: both go.
        assert_eq!(compaction_drops(&c, 6), 2);
        // Deleted exactly at the compact revision: the delete stays visible to watchers.
        assert_eq!(compaction_drops(&c, 5), 1);
        assert_eq!(compaction_drops(&c, 9), 2);
        let mut index = KeyIndex::default();
        for c in c {
            index.push(b"k", c);
        }
        index.compact_key(b"k", 6);
        assert_eq!(index.changes(b"k"), &[ch(8, false)]);
        index.push(b"d", ch(9, false));
        index.push(b"d", ch(10, true));
        index.compact_key(b"d", 11);
        assert!(index.changes(b"d").is_empty());
        assert_eq!(index.len(), 1);
    }
}
