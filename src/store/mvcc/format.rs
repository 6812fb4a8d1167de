//! Layout versions of the MVCC tree (`m/format`, see `keys.rs`) and the upgrade of stores
//! and snapshots written in an older layout.
//!
//! Version 1 (before `m/format` existed): `h enc(key) rev` → record, `r rev seq` → user key.
//! Version 2: `r rev seq` → user key + record, no `h` (the per-key index is in memory).
//! Upgrading joins the two: every `h` entry's record moves to its `r` entry and the `h`
//! entry goes. Compaction in version 1 dropped the `r` entries below the compact revision
//! but kept each key's newest `h` entry there, so those get a fresh sequence number in their
//! revision (nothing reads the revision log below the compact revision, so their order there
//! does not matter).

use std::collections::{BTreeMap, HashMap};

use super::keys::{self, Record};
use crate::store::error::{Result, StoreError};
use crate::store::types::Revision;

/// The layout this build writes.
pub(super) const FORMAT: i64 = 2;

/// Version 1's history prefix.
const HISTORY_V1: u8 = b'h';

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

/// Brings `tree` to [`FORMAT`]: marks an empty tree, upgrades a version-1 tree in one atomic
/// batch. Returns whether it rewrote anything (the caller then makes it durable).
///
/// # Errors
/// `Corrupt` for a layout newer than this build reads or undecodable version-1 entries
/// (the tree is then untouched); storage failures.
pub(super) fn upgrade_tree(tree: &sled::Tree) -> Result<bool> {
    if let Some(v) = tree.get(keys::META_FORMAT)? {
        return match keys::decode_i64(&v)? {
            FORMAT => Ok(false),
            other => Err(StoreError::Corrupt(format!(
                "the store's layout version {other} is not one this k3rs reads ({FORMAT}); \
                 run the k3rs release that wrote it"
            ))),
        };
    }
    let scan = |prefix: u8| -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        tree.range(keys::prefix_start(prefix)..keys::prefix_end(prefix))
            .map(|item| {
                let (k, v) = item?;
                Ok((k.to_vec(), v.to_vec()))
            })
            .collect()
    };
    let history = scan(HISTORY_V1)?;
    let revlog = scan(keys::REVLOG)?;
    let upgraded = !history.is_empty() || !revlog.is_empty();
    let mut writes = if upgraded {
        tracing::info!(
            history = history.len(),
            "store: upgrading the history layout to version {FORMAT}"
        );
        upgrade_history(history, revlog)?
    } else {
        Writes::new()
    };
    writes.insert(
        keys::META_FORMAT.to_vec(),
        Some(keys::encode_i64(FORMAT).to_vec()),
    );
    let mut batch = sled::Batch::default();
    for (k, v) in writes {
        match v {
            Some(v) => batch.insert(k, v),
            None => batch.remove(k),
        }
    }
    tree.apply_batch(batch)?;
    Ok(upgraded)
}

/// The entries of a version-1 snapshot in [`FORMAT`].
///
/// # Errors
/// `Corrupt` for undecodable history entries.
pub(super) fn upgrade_entries(entries: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let (mut history, mut revlog, mut rest) = (Vec::new(), Vec::new(), Writes::new());
    for (k, v) in entries {
        match k.first() {
            Some(&HISTORY_V1) => history.push((k, v)),
            Some(&keys::REVLOG) => revlog.push((k, v)),
            _ => {
                rest.insert(k, Some(v));
            }
        }
    }
    rest.extend(upgrade_history(history, revlog)?);
    rest.insert(
        keys::META_FORMAT.to_vec(),
        Some(keys::encode_i64(FORMAT).to_vec()),
    );
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
        tree.insert(keys::current_key(b"a"), rec(3, b"a3").encode())
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
        assert_eq!(
            tree.get(keys::current_key(b"a")).unwrap().unwrap(),
            rec(3, b"a3").encode()
        );
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
        assert!(err.contains("layout version 3"), "{err}");
    }

    #[test]
    fn version_1_snapshot_entries_upgrade_like_a_tree() {
        let (_dir, _db, tree) = v1_tree();
        let contents = |tree: &sled::Tree| -> Vec<(Vec<u8>, Vec<u8>)> {
            tree.iter()
                .map(|i| {
                    let (k, v) = i.unwrap();
                    (k.to_vec(), v.to_vec())
                })
                .collect()
        };
        let upgraded = upgrade_entries(contents(&tree)).unwrap();
        upgrade_tree(&tree).unwrap();
        assert_eq!(upgraded, contents(&tree));
    }
}
