//! Layout versions of the MVCC tree (`m/format`, see `keys.rs`) and the upgrade of stores
//! and snapshots written in an older layout.
//!
//! Version 1 (before `m/format` existed): `h enc(key) rev` → record, `r rev seq` → user key,
//! `c key` → the live record.
//! Version 2: `r rev seq` → user key + record, no `h` (the per-key index is in memory).
//! Upgrading joins the two: every `h` entry's record moves to its `r` entry and the `h`
//! entry goes. Compaction in version 1 dropped the `r` entries below the compact revision
//! but kept each key's newest `h` entry there, so those get a fresh sequence number in their
//! revision (nothing reads the revision log below the compact revision, so their order there
//! does not matter).
//! Version 3: no `c` either (the index names each key's newest change, whose record is in
//! `r`): upgrading removes every `c` entry.

use std::collections::{BTreeMap, HashMap};

use super::keys::{self, Record};
use crate::store::error::{Result, StoreError};
use crate::store::types::Revision;

/// The layout this build writes.
pub(super) const FORMAT: i64 = 3;

/// Version 1's history prefix.
const HISTORY_V1: u8 = b'h';
/// Versions 1 and 2's prefix of live records.
const CURRENT_V2: u8 = b'c';

/// Splits a version-1 `h` key (`h enc(key) rev`) into the user key and the revision.
fn split_history_key_v1(hk: &[u8]) -> Result<(Vec<u8>, Revision)> {
    let bad = || StoreError::Corrupt("bad version-1 history key".into());
    if hk.len() < 11 || hk[0] != HISTORY_V1 {
        return Err(bad());
    }
    let (prefix, rev) = hk.split_at(hk.len() - 8);
    let body = prefix[1..].strip_suffix(&[0x00, 0x01]).ok_or_else(bad)?;
    // `enc` escapes 0x00 as 0x00 0xFF.
    let mut key = Vec::with_capacity(body.len());
    let mut bytes = body.iter();
    while let Some(&b) = bytes.next() {
        key.push(b);
        if b == 0 && bytes.next() != Some(&0xFF) {
            return Err(bad());
        }
    }
    Ok((key, keys::read_rev(rev)?))
}

/// Final writes (`None` removes), keyed and ordered as sled stores them.
type Writes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// What an older layout holds under the prefixes that changed since: `c` keys (versions 1
/// and 2), and for version 1 its `h` and `r` entries.
#[derive(Default)]
struct Outdated {
    current: Vec<Vec<u8>>,
    history: Vec<(Vec<u8>, Vec<u8>)>,
    revlog: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Outdated {
    fn is_empty(&self) -> bool {
        self.current.is_empty() && self.history.is_empty() && self.revlog.is_empty()
    }

    /// The writes that bring these entries to [`FORMAT`], with the marker: every `c` key
    /// removed, version-1 history rewritten.
    fn into_writes(self) -> Result<Writes> {
        let mut writes: Writes = self.current.into_iter().map(|k| (k, None)).collect();
        writes.extend(upgrade_history(self.history, self.revlog)?);
        writes.insert(
            keys::META_FORMAT.to_vec(),
            Some(keys::encode_i64(FORMAT).to_vec()),
        );
        Ok(writes)
    }
}

/// Brings `tree` to [`FORMAT`]: marks an empty tree, upgrades an older one in one atomic
/// batch. Returns whether it rewrote anything (the caller then makes it durable).
///
/// # Errors
/// `Corrupt` for a layout newer than this build reads or undecodable version-1 entries
/// (the tree is then untouched); storage failures.
pub(super) fn upgrade_tree(tree: &sled::Tree) -> Result<bool> {
    // No marker: version 1, or a new empty tree (which the upgrade leaves empty).
    let version = match tree.get(keys::META_FORMAT)? {
        Some(v) => keys::decode_i64(&v)?,
        None => 1,
    };
    if version == FORMAT {
        return Ok(false);
    }
    if !(1..FORMAT).contains(&version) {
        return Err(StoreError::Corrupt(format!(
            "the store's layout version {version} is not one this k3rs reads ({FORMAT}); \
             run the k3rs release that wrote it"
        )));
    }
    let range = |prefix: u8| tree.range(keys::prefix_start(prefix)..keys::prefix_end(prefix));
    let scan = |prefix: u8| -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        range(prefix)
            .map(|item| {
                let (k, v) = item?;
                Ok((k.to_vec(), v.to_vec()))
            })
            .collect()
    };
    let mut outdated = Outdated {
        current: range(CURRENT_V2)
            .keys()
            .map(|k| Ok(k?.to_vec()))
            .collect::<Result<_>>()?,
        ..Outdated::default()
    };
    if version == 1 {
        outdated.history = scan(HISTORY_V1)?;
        outdated.revlog = scan(keys::REVLOG)?;
    }
    let upgraded = !outdated.is_empty();
    if upgraded {
        tracing::info!(
            from = version,
            "store: upgrading the layout to version {FORMAT}"
        );
    }
    let mut batch = sled::Batch::default();
    for (k, v) in outdated.into_writes()? {
        match v {
            Some(v) => batch.insert(k, v),
            None => batch.remove(k),
        }
    }
    tree.apply_batch(batch)?;
    Ok(upgraded)
}

/// The entries of a snapshot of layout `version` in [`FORMAT`].
///
/// # Errors
/// `Corrupt` for undecodable history entries.
pub(super) fn upgrade_entries(
    entries: Vec<(Vec<u8>, Vec<u8>)>,
    version: i64,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let (mut outdated, mut rest) = (Outdated::default(), Writes::new());
    for (k, v) in entries {
        match k.first() {
            Some(&CURRENT_V2) => outdated.current.push(k),
            Some(&HISTORY_V1) if version == 1 => outdated.history.push((k, v)),
            Some(&keys::REVLOG) if version == 1 => outdated.revlog.push((k, v)),
            _ => {
                rest.insert(k, Some(v));
            }
        }
    }
    rest.extend(outdated.into_writes()?);
    Ok(rest
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect())
}

/// Version-1 `h` (record) and `r` (user key) entries → version-2 writes: every `h` key is
/// removed, every old `r` key too unless rewritten.
fn upgrade_history(
    history: Vec<(Vec<u8>, Vec<u8>)>,
    revlog: Vec<(Vec<u8>, Vec<u8>)>,
) -> Result<Writes> {
    let mut writes = Writes::new();
    let mut seq_of: HashMap<(Revision, Vec<u8>), u32> = HashMap::new();
    let mut next_seq: HashMap<Revision, u32> = HashMap::new();
    for (rk, key) in revlog {
        let (rev, seq) = keys::split_revlog_key(&rk)?;
        let next = next_seq.entry(rev).or_default();
        *next = (*next).max(seq.saturating_add(1));
        seq_of.insert((rev, key), seq);
        writes.insert(rk, None);
    }
    for (hk, v) in history {
        let (key, rev) = split_history_key_v1(&hk)?;
        let rec = Record::decode(&v)?;
        let seq = match seq_of.remove(&(rev, key.clone())) {
            Some(seq) => seq,
            None => {
                let next = next_seq.entry(rev).or_default();
                let seq = *next;
                *next += 1;
                seq
            }
        };
        writes.insert(hk, None);
        writes.insert(
            keys::revlog_key(rev, seq),
            Some(keys::revlog_value(&key, &rec)),
        );
    }
    Ok(writes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `h enc(key) rev`, `enc` = 0x00 → 0x00 0xFF, terminated by 0x00 0x01.
    fn history_key_v1(key: &[u8], rev: Revision) -> Vec<u8> {
        let mut k = vec![HISTORY_V1];
        for &b in key {
            k.push(b);
            if b == 0 {
                k.push(0xFF);
            }
        }
        k.extend_from_slice(&[0x00, 0x01]);
        k.extend_from_slice(&keys::rev_bytes(rev));
        k
    }

    fn current_key_v2(key: &[u8]) -> Vec<u8> {
        [&[CURRENT_V2], key].concat()
    }

    fn v1_put(tree: &sled::Tree, key: &[u8], rev: Revision, seq: u32, rec: &Record) {
        tree.insert(history_key_v1(key, rev), rec.encode()).unwrap();
        tree.insert(keys::revlog_key(rev, seq), key.to_vec())
            .unwrap();
    }

    fn rec(rev: Revision, value: &[u8]) -> Record {
        Record {
            tombstone: false,
            create_revision: 2,
            mod_revision: rev,
            version: rev - 1,
            lease: 0,
            value: value.to_vec(),
        }
    }

    /// A version-1 tree compacted at 4: `a` kept its change at 3 (its `r` entry gone),
    /// `b` and `c` changed together at 5, `c` deleted at 6.
    fn v1_tree() -> (tempfile::TempDir, sled::Db, sled::Tree) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let tree = db.open_tree("mvcc").unwrap();
        tree.insert(history_key_v1(b"a\x00b", 3), rec(3, b"a3").encode())
            .unwrap();
        v1_put(&tree, b"b", 5, 0, &rec(5, b"b5"));
        v1_put(&tree, b"c", 5, 1, &rec(5, b"c5"));
        v1_put(&tree, b"c", 6, 0, &Record::tombstone(6));
        tree.insert(current_key_v2(b"a"), rec(3, b"a3").encode())
            .unwrap();
        tree.insert(keys::META_REVISION, &keys::encode_i64(6))
            .unwrap();
        (dir, db, tree)
    }

    fn change(tree: &sled::Tree, rev: Revision, seq: u32) -> (Vec<u8>, Record) {
        let v = tree.get(keys::revlog_key(rev, seq)).unwrap().unwrap();
        let (k, r) = keys::split_revlog_value(&v).unwrap();
        (k.to_vec(), Record::decode(r).unwrap())
    }

    #[test]
    fn a_version_1_tree_is_upgraded_once_and_keeps_every_change() {
        let (_dir, _db, tree) = v1_tree();
        assert!(upgrade_tree(&tree).unwrap());
        assert_eq!(change(&tree, 3, 0), (b"a\x00b".to_vec(), rec(3, b"a3")));
        assert_eq!(change(&tree, 5, 0), (b"b".to_vec(), rec(5, b"b5")));
        assert_eq!(change(&tree, 5, 1), (b"c".to_vec(), rec(5, b"c5")));
        assert_eq!(change(&tree, 6, 0), (b"c".to_vec(), Record::tombstone(6)));
        assert_eq!(tree.scan_prefix([HISTORY_V1]).count(), 0);
        assert_eq!(tree.scan_prefix([keys::REVLOG]).count(), 4);
        assert_eq!(tree.scan_prefix([CURRENT_V2]).count(), 0);
        // Marked: a second open does not upgrade again.
        assert!(!upgrade_tree(&tree).unwrap());
    }

    #[test]
    fn an_empty_tree_is_marked_and_a_newer_layout_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let tree = db.open_tree("mvcc").unwrap();
        assert!(!upgrade_tree(&tree).unwrap());
        assert_eq!(
            keys::decode_i64(&tree.get(keys::META_FORMAT).unwrap().unwrap()).unwrap(),
            FORMAT
        );
        tree.insert(keys::META_FORMAT, &keys::encode_i64(FORMAT + 1))
            .unwrap();
        let err = upgrade_tree(&tree).unwrap_err().to_string();
        let newer = format!("layout version {}", FORMAT + 1);
        assert!(err.contains(&newer), "{err}");
    }

    fn contents(tree: &sled::Tree) -> Vec<(Vec<u8>, Vec<u8>)> {
        tree.iter()
            .map(|i| {
                let (k, v) = i.unwrap();
                (k.to_vec(), v.to_vec())
            })
            .collect()
    }

    #[test]
    fn version_1_snapshot_entries_upgrade_like_a_tree() {
        let (_dir, _db, tree) = v1_tree();
        let upgraded = upgrade_entries(contents(&tree), 1).unwrap();
        upgrade_tree(&tree).unwrap();
        assert_eq!(upgraded, contents(&tree));
    }

    /// A version-2 tree: `a` live at 3 (also under `c`), `b` deleted at 4, a lease.
    fn v2_tree() -> (tempfile::TempDir, sled::Db, sled::Tree) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let tree = db.open_tree("mvcc").unwrap();
        tree.insert(
            keys::revlog_key(3, 0),
            keys::revlog_value(b"a", &rec(3, b"a3")),
        )
        .unwrap();
        tree.insert(
            keys::revlog_key(4, 0),
            keys::revlog_value(b"b", &Record::tombstone(4)),
        )
        .unwrap();
        tree.insert(current_key_v2(b"a"), rec(3, b"a3").encode())
            .unwrap();
        tree.insert(keys::lease_key(7), &keys::encode_i64(60))
            .unwrap();
        tree.insert(keys::META_FORMAT, &keys::encode_i64(2))
            .unwrap();
        (dir, db, tree)
    }

    #[test]
    fn a_version_2_tree_loses_only_its_copies_of_live_records() {
        let (_dir, _db, tree) = v2_tree();
        let before = contents(&tree);
        let snapshot = upgrade_entries(before.clone(), 2).unwrap();
        assert!(upgrade_tree(&tree).unwrap());
        let after = contents(&tree);
        assert_eq!(after, snapshot, "a snapshot upgrades like the tree");
        assert_eq!(tree.scan_prefix([CURRENT_V2]).count(), 0);
        let kept: Vec<_> = before
            .into_iter()
            .filter(|(k, _)| k[0] != CURRENT_V2 && k.as_slice() != keys::META_FORMAT)
            .collect();
        let rest: Vec<_> = after
            .into_iter()
            .filter(|(k, _)| k.as_slice() != keys::META_FORMAT)
            .collect();
        assert_eq!(rest, kept, "history, leases and metadata untouched");
        assert_eq!(
            keys::decode_i64(&tree.get(keys::META_FORMAT).unwrap().unwrap()).unwrap(),
            FORMAT
        );
        assert!(!upgrade_tree(&tree).unwrap());
    }
}
