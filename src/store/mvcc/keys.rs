//! The sled keyspace of the MVCC store: prefixes, an order-preserving encoding of user keys,
//! and the fixed binary layout of stored key records.
//!
//! Everything lives in one sled tree so that a whole apply batch (data, leases and the applied
//! index) commits atomically (a redo record or one `apply_batch`, see `WriteBatch::commit`).
//! Prefixes:
//!
//! | prefix | key                                   | value                               |
//! |--------|---------------------------------------|-------------------------------------|
//! | `c`    | `c` user_key                          | latest record of a live key         |
//! | `h`    | `h` enc(user_key) rev(8 BE)           | record of that key at that revision |
//! | `r`    | `r` rev(8 BE) seq(4 BE)               | user key changed at rev (in order)  |
//! | `l`    | `l` lease_id(8 BE)                    | granted TTL (8 LE)                  |
//! | `a`    | `a` lease_id(8 BE) user_key           | empty: key attached to lease        |
//! | `m`    | `m` name                              | metadata (revisions, applied index) |
//!
//! `c` makes ranges at the current revision one sled scan. `h` needs the order-preserving,
//! prefix-free `enc` so that all revisions of one key are contiguous and keys keep their byte
//! order even when one key is a prefix of another (plain `key || rev` would interleave `a`+rev
//! with `a\x00...`). `r` lets watchers replay history in revision order and lets compaction
//! visit only the keys changed since the previous compaction.

use super::super::error::{Result, StoreError};
use super::super::types::{KeyValue, Revision};

pub(crate) const CURRENT: u8 = b'c';
pub(crate) const HISTORY: u8 = b'h';
pub(crate) const REVLOG: u8 = b'r';
pub(crate) const LEASE: u8 = b'l';
pub(crate) const ATTACH: u8 = b'a';

pub(crate) const META_APPLIED: &[u8] = b"m/applied_index";
pub(crate) const META_REVISION: &[u8] = b"m/revision";
pub(crate) const META_COMPACT: &[u8] = b"m/compact_revision";
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

pub(crate) fn current_key(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(CURRENT);
    k.extend_from_slice(key);
    k
}

/// Order-preserving, prefix-free encoding: `0x00` → `0x00 0xFF`, terminated by `0x00 0x01`.
pub(crate) fn encode_user_key(out: &mut Vec<u8>, key: &[u8]) {
    for &b in key {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0x00, 0x01]);
}

/// `h enc(key)`: the prefix shared by every revision of `key`.
pub(crate) fn history_prefix(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 11);
    k.push(HISTORY);
    encode_user_key(&mut k, key);
    k
}

pub(crate) fn history_key(key: &[u8], rev: Revision) -> Vec<u8> {
    let mut k = history_prefix(key);
    k.extend_from_slice(&rev_bytes(rev));
    k
}

/// Splits an `h` key into (the per-key prefix, the revision).
pub(crate) fn split_history_key(hk: &[u8]) -> Result<(&[u8], Revision)> {
    if hk.len() < 11 || hk[0] != HISTORY {
        return Err(StoreError::Corrupt("bad history key".into()));
    }
    let (prefix, rev) = hk.split_at(hk.len() - 8);
    Ok((prefix, read_rev(rev)?))
}

/// Decodes the user key from a per-key `h` prefix.
pub(crate) fn decode_history_prefix(prefix: &[u8]) -> Result<Vec<u8>> {
    let body = prefix
        .get(1..)
        .and_then(|b| b.strip_suffix(&[0x00, 0x01]))
        .ok_or_else(|| StoreError::Corrupt("bad history key".into()))?;
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        out.push(body[i]);
        if body[i] == 0 {
            if body.get(i + 1) != Some(&0xFF) {
                return Err(StoreError::Corrupt("bad history key escape".into()));
            }
            i += 1;
        }
        i += 1;
    }
    Ok(out)
}

pub(crate) fn revlog_key(rev: Revision, seq: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(13);
    k.push(REVLOG);
    k.extend_from_slice(&rev_bytes(rev));
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub(crate) fn revlog_rev(rk: &[u8]) -> Result<Revision> {
    if rk.len() != 13 || rk[0] != REVLOG {
        return Err(StoreError::Corrupt("bad revision log key".into()));
    }
    read_rev(&rk[1..9])
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

fn read_rev(b: &[u8]) -> Result<Revision> {
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

/// A stored key record (value of `c` and `h` entries). Tombstones keep only the revision.
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

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(RECORD_HEADER + self.value.len());
        out.push(u8::from(self.tombstone));
        out.extend_from_slice(&self.create_revision.to_le_bytes());
        out.extend_from_slice(&self.mod_revision.to_le_bytes());
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.lease.to_le_bytes());
        out.extend_from_slice(&self.value);
        out
    }

    pub(crate) fn decode(b: &[u8]) -> Result<Self> {
        if b.len() < RECORD_HEADER || b[0] > 1 {
            return Err(StoreError::Corrupt("bad key record".into()));
        }
        Ok(Record {
            tombstone: b[0] == 1,
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
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn history_keys_sort_by_user_key_then_revision(
            a in proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(0xFFu8), any::<u8>()], 0..5),
            b in proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(0xFFu8), any::<u8>()], 0..5),
            ra in 1i64..1000, rb in 1i64..1000,
        ) {
            let ka = history_key(&a, ra);
            let kb = history_key(&b, rb);
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b).then(ra.cmp(&rb)));
            let (p, r) = split_history_key(&ka).unwrap();
            prop_assert_eq!(r, ra);
            prop_assert_eq!(decode_history_prefix(p).unwrap(), a);
        }
    }

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
