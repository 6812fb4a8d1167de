//! The sled keyspace of the MVCC store: prefixes, an order-preserving encoding of user keys,
//! and the fixed binary layout of stored key records.
//!
//! Everything lives in one sled tree so that a whole apply batch (data, leases and the applied
//! index) commits atomically (a redo record or one `apply_batch`, see `WriteBatch::commit`).
//! Prefixes (layout version 3, `m/format`; `format.rs` upgrades versions 1 and 2):
//!
//! | prefix | key                                   | value                                  |
//! |--------|---------------------------------------|----------------------------------------|
//! | `r`    | `r` rev(8 BE) seq(4 BE)               | klen(4 LE) user_key record: a change   |
//! | `l`    | `l` lease_id(8 BE)                    | granted TTL (8 LE)                     |
//! | `a`    | `a` lease_id(8 BE) user_key           | empty: key attached to lease           |
//! | `m`    | `m` name                              | metadata (revisions, applied index)    |
//!
//! `r` holds every change in revision order (until compaction), so a write appends at the
//! tree's right edge, as etcd's bolt bucket keyed by revision, and watchers replay history
//! with one forward scan. Which revisions a key has lives in memory (`index.rs`, etcd's
//! `treeIndex`), rebuilt from `r` at open; a read at any revision, the current one included,
//! looks up each key's change there and reads its record from `r`. A put is therefore one
//! sled insert.
//!
//! Version 1 also kept every change under `h enc(user_key) rev` (the record; `r` held only
//! the key): each put inserted a full record at a random place of a tree that outgrows
//! sled's cache under sustained writes, and cost a third of the applier's sled work.
//! Versions 1 and 2 kept each live key's record a second time under `c user_key` (a range at
//! the current revision was one scan of it): a second insert per put, the value written
//! twice; dropping it made 256-client puts 8 % (one member) to 17 % (three) faster.

use super::super::error::{Result, StoreError};
use super::super::types::{KeyValue, Revision};

pub(crate) const REVLOG: u8 = b'r';
pub(crate) const LEASE: u8 = b'l';
pub(crate) const ATTACH: u8 = b'a';

pub(crate) const META_APPLIED: &[u8] = b"m/applied_index";
pub(crate) const META_REVISION: &[u8] = b"m/revision";
pub(crate) const META_COMPACT: &[u8] = b"m/compact_revision";
/// The layout version of the tree (absent = version 1, written before the marker existed).
pub(crate) const META_FORMAT: &[u8] = b"m/format";
/// The writes of the newest small apply batch (see `WriteBatch::commit`); never part of a
/// snapshot.
pub(crate) const META_REDO: &[u8] = b"m/redo";

/// `applied_index u64 | count u32 | count × (op u8: 1 put / 0 remove, klen u32, key,
/// [vlen u32, value])`, all little-endian: one apply batch's final writes, replayable.
pub(crate) fn encode_redo(index: u64, writes: &[(Vec<u8>, Option<Vec<u8>>)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(redo_len(writes));
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(&(writes.len() as u32).to_le_bytes());
    for (k, v) in writes {
        out.push(u8::from(v.is_some()));
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(k);
        if let Some(v) = v {
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v);
        }
    }
    out
}

/// The length of [`encode_redo`]'s output (at most; a removal has no value length).
pub(crate) fn redo_len(writes: &[(Vec<u8>, Option<Vec<u8>>)]) -> usize {
    12 + writes
        .iter()
        .map(|(k, v)| 9 + k.len() + v.as_ref().map_or(0, Vec::len))
        .sum::<usize>()
}

/// A redo batch's writes of the form [`WriteBatch`] overlays use (value `None` = remove).
pub(crate) type Redo = (u64, Vec<(Vec<u8>, Option<Vec<u8>>)>);

/// Parses [`encode_redo`]'s output.
pub(crate) fn decode_redo(b: &[u8]) -> Result<Redo> {
    let bad = || StoreError::Corrupt("bad redo record".into());
    let mut pos = 0usize;
    let mut take = |n: usize| -> Result<&[u8]> {
        let s = b.get(pos..pos + n).ok_or_else(bad)?;
        pos += n;
        Ok(s)
    };
    let index = u64::from_le_bytes(take(8)?.try_into().map_err(|_| bad())?);
    let count = u32::from_le_bytes(take(4)?.try_into().map_err(|_| bad())?);
    let mut writes = Vec::with_capacity(count.min(4096) as usize);
    for _ in 0..count {
        let op = take(1)?[0];
        let klen = u32::from_le_bytes(take(4)?.try_into().map_err(|_| bad())?) as usize;
        let key = take(klen)?.to_vec();
        let value = if op == 1 {
            let vlen = u32::from_le_bytes(take(4)?.try_into().map_err(|_| bad())?) as usize;
            Some(take(vlen)?.to_vec())
        } else {
            None
        };
        writes.push((key, value));
    }
    Ok((index, writes))
}

/// `[prefix]`, the first key of a prefix's keyspace.
pub(crate) fn prefix_start(prefix: u8) -> Vec<u8> {
    vec![prefix]
}

/// `[prefix + 1]`, one past the last key of a prefix's keyspace.
pub(crate) fn prefix_end(prefix: u8) -> Vec<u8> {
    vec![prefix + 1]
}

pub(crate) fn revlog_key(rev: Revision, seq: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(13);
    k.push(REVLOG);
    k.extend_from_slice(&rev_bytes(rev));
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub(crate) fn revlog_rev(rk: &[u8]) -> Result<Revision> {
    Ok(split_revlog_key(rk)?.0)
}

/// Splits an `r` key into (revision, sequence number within the revision).
pub(crate) fn split_revlog_key(rk: &[u8]) -> Result<(Revision, u32)> {
    if rk.len() != 13 || rk[0] != REVLOG {
        return Err(StoreError::Corrupt("bad revision log key".into()));
    }
    let seq: [u8; 4] = rk[9..13]
        .try_into()
        .map_err(|_| StoreError::Corrupt("bad revision log key".into()))?;
    Ok((read_rev(&rk[1..9])?, u32::from_be_bytes(seq)))
}

/// The value of an `r` entry: `klen u32 LE | user key | encoded record`.
pub(crate) fn revlog_value(key: &[u8], rec: &Record) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + key.len() + RECORD_HEADER + rec.value.len());
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    rec.encode_into(&mut out);
    out
}

/// The user key and the encoded record of an `r` value (the record is decoded only when
/// wanted: watch replay skips most entries on the key alone).
pub(crate) fn split_revlog_value(v: &[u8]) -> Result<(&[u8], &[u8])> {
    let bad = || StoreError::Corrupt("bad revision log entry".into());
    let len: [u8; 4] = v.get(..4).and_then(|b| b.try_into().ok()).ok_or_else(bad)?;
    let end = 4 + u32::from_le_bytes(len) as usize;
    let key = v.get(4..end).ok_or_else(bad)?;
    Ok((key, &v[end..]))
}

/// The record of an `r` value.
pub(crate) fn revlog_record(v: &[u8]) -> Result<Record> {
    Record::decode(split_revlog_value(v)?.1)
}

pub(crate) fn lease_key(id: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(LEASE);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

pub(crate) fn lease_id_of(lk: &[u8]) -> Result<i64> {
    let b: [u8; 8] = lk
        .get(1..9)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| StoreError::Corrupt("bad lease key".into()))?;
    Ok(i64::from_be_bytes(b))
}

pub(crate) fn attach_prefix(id: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(ATTACH);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

pub(crate) fn attach_key(id: i64, key: &[u8]) -> Vec<u8> {
    let mut k = attach_prefix(id);
    k.extend_from_slice(key);
    k
}

/// Revisions are positive, so big-endian bytes sort numerically.
pub(crate) fn rev_bytes(rev: Revision) -> [u8; 8] {
    (rev.max(0) as u64).to_be_bytes()
}

pub(crate) fn read_rev(b: &[u8]) -> Result<Revision> {
    let arr: [u8; 8] = b
        .try_into()
        .map_err(|_| StoreError::Corrupt("bad revision bytes".into()))?;
    Ok(u64::from_be_bytes(arr) as i64)
}

pub(crate) fn encode_i64(v: i64) -> [u8; 8] {
    v.to_le_bytes()
}

pub(crate) fn decode_i64(b: &[u8]) -> Result<i64> {
    let arr: [u8; 8] = b
        .try_into()
        .map_err(|_| StoreError::Corrupt("bad integer".into()))?;
    Ok(i64::from_le_bytes(arr))
}

/// The smallest key strictly greater than every key starting with `prefix`, or `None` when
/// there is none (`prefix` is all `0xFF`).
pub(crate) fn successor_of_prefix(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut p = prefix.to_vec();
    while let Some(last) = p.pop() {
        if last < 0xFF {
            p.push(last + 1);
            return Some(p);
        }
    }
    None
}

/// A stored key record (the tail of `r` entries). Tombstones keep only the revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub tombstone: bool,
    pub create_revision: Revision,
    pub mod_revision: Revision,
    pub version: i64,
    pub lease: i64,
    pub value: Vec<u8>,
}

const RECORD_HEADER: usize = 1 + 8 * 4;

/// Whether an encoded record is a delete, without decoding the rest.
pub(crate) fn record_is_tombstone(b: &[u8]) -> Result<bool> {
    match b.first() {
        Some(&t @ (0 | 1)) if b.len() >= RECORD_HEADER => Ok(t == 1),
        _ => Err(StoreError::Corrupt("bad key record".into())),
    }
}

impl Record {
    pub(crate) fn tombstone(rev: Revision) -> Self {
        Record {
            tombstone: true,
            create_revision: 0,
            mod_revision: rev,
            version: 0,
            lease: 0,
            value: Vec::new(),
        }
    }

    #[cfg(test)]
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(RECORD_HEADER + self.value.len());
        self.encode_into(&mut out);
        out
    }

    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(u8::from(self.tombstone));
        out.extend_from_slice(&self.create_revision.to_le_bytes());
        out.extend_from_slice(&self.mod_revision.to_le_bytes());
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.lease.to_le_bytes());
        out.extend_from_slice(&self.value);
    }

    pub(crate) fn decode(b: &[u8]) -> Result<Self> {
        let tombstone = record_is_tombstone(b)?;
        Ok(Record {
            tombstone,
            create_revision: decode_i64(&b[1..9])?,
            mod_revision: decode_i64(&b[9..17])?,
            version: decode_i64(&b[17..25])?,
            lease: decode_i64(&b[25..33])?,
            value: b[RECORD_HEADER..].to_vec(),
        })
    }

    pub(crate) fn into_kv(self, key: Vec<u8>) -> KeyValue {
        KeyValue {
            key,
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            value: self.value,
            lease: self.lease,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_reject_garbage() {
        let r = Record {
            tombstone: false,
            create_revision: 2,
            mod_revision: 5,
            version: 3,
            lease: 7,
            value: b"v".to_vec(),
        };
        assert_eq!(Record::decode(&r.encode()).unwrap(), r);
        assert!(Record::decode(b"short").is_err());
    }
}
