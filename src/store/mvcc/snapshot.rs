//! Whole-state snapshots (raft snapshots, `etcdctl snapshot save`) and durability (`sync`).
//!
//! Format (self-describing, little-endian):
//! `"K3RSSNAP" | version u32 | applied_index u64 | count u64 | count × (klen u32, key,
//! vlen u32, value) | sha256 of everything before`. `restore` verifies the checksum and
//! parses everything before touching the tree, then swaps the state with one atomic batch,
//! so a corrupt snapshot leaves the old state intact.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::Ordering;

use sha2::{Digest, Sha256};

use super::Mvcc;
use super::keys;
use crate::store::error::{Result, StoreError};

const MAGIC: &[u8; 8] = b"K3RSSNAP";
/// The snapshot format follows the tree's layout (`format.rs`): a version-n snapshot holds a
/// layout-n tree, and older ones are upgraded on restore.
const VERSION: u32 = super::format::FORMAT as u32;

impl Mvcc {
    /// A consistent copy of the whole state (taken under the view lock, so between batches).
    ///
    /// # Errors
    /// Storage failures.
    pub fn snapshot(&self) -> Result<Vec<u8>> {
        let _view = self.read_view();
        let mut body = Vec::new();
        let mut count = 0u64;
        for item in self.tree.iter() {
            let (k, v) = item?;
            if &k[..] == keys::META_REDO {
                continue;
            }
            put_bytes(&mut body, &k)?;
            put_bytes(&mut body, &v)?;
            count += 1;
        }
        let mut out = Vec::with_capacity(body.len() + 64);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&self.applied_index().to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&body);
        let digest = Sha256::digest(&out);
        out.extend_from_slice(&digest);
        Ok(out)
    }

    /// Replaces the whole state by `snapshot`; afterwards the applied index is `index`, and
    /// the new state is durable.
    ///
    /// # Errors
    /// `Corrupt` (state untouched) or storage failures.
    pub fn restore(&self, snapshot: &[u8], index: u64) -> Result<()> {
        let (version, entries) = parse(snapshot)?;
        let entries = if version < VERSION {
            super::format::upgrade_entries(entries, i64::from(version))?
        } else {
            entries
        };
        let _writer = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut batch = sled::Batch::default();
        let new_keys: std::collections::HashSet<&[u8]> =
            entries.iter().map(|(k, _)| k.as_slice()).collect();
        for item in self.tree.iter() {
            let (k, _) = item?;
            if !new_keys.contains(&k[..]) {
                batch.remove(k);
            }
        }
        let mut revision = 1;
        let mut compact = 0;
        for (k, v) in &entries {
            if k.as_slice() == keys::META_REVISION {
                revision = keys::decode_i64(v)?;
            } else if k.as_slice() == keys::META_COMPACT {
                compact = keys::decode_i64(v)?;
            }
            batch.insert(k.as_slice(), v.as_slice());
        }
        batch.insert(keys::META_APPLIED, &keys::encode_i64(index as i64));
        // A redo record belongs to the replaced state (and a snapshot never carries one).
        batch.remove(keys::META_REDO);
        let mut view = self
            .view
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.tree.apply_batch(batch)?;
        *view = super::index::KeyIndex::load(&self.tree)?;
        self.revision.store(revision, Ordering::Release);
        self.compact_revision.store(compact, Ordering::Release);
        self.applied_index.store(index, Ordering::Release);
        drop(view);
        // Raft drops its log up to `index` once a snapshot is installed, so the restored
        // state must not be lost to a crash: make it durable now.
        self.sync()
    }

    /// Makes everything committed so far durable: sled's `flush` writes its log but does not
    /// fsync (0.34 uses `sync_file_range`), so every file under the database directory and
    /// the directories themselves are fsynced afterwards.
    ///
    /// # Errors
    /// Storage or I/O failures.
    pub fn sync(&self) -> Result<()> {
        self.db.flush()?;
        fsync_tree(&self.path)
    }
}

fn io_err(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

pub(super) fn fsync_tree(dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| io_err(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        let path = entry.path();
        let ty = entry.file_type().map_err(|e| io_err(&path, e))?;
        if ty.is_dir() {
            fsync_tree(&path)?;
        } else if ty.is_file() {
            File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| io_err(&path, e))?;
        }
    }
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err(dir, e))
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) -> Result<()> {
    let len = u32::try_from(b.len())
        .map_err(|_| StoreError::InvalidRequest("snapshot entry too large".into()))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(b);
    Ok(())
}

/// What a verified snapshot holds (for `k3rs etcd-snapshot` and restores).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotSummary {
    /// sled records (current keys, history, leases, metadata).
    pub records: u64,
    /// The store revision at the time of the snapshot.
    pub revision: i64,
}

/// Verifies a snapshot completely (checksum, every record decodes, nothing trails) without
/// touching any state.
///
/// # Errors
/// `Corrupt` naming what is wrong.
pub fn verify_snapshot(snap: &[u8]) -> Result<SnapshotSummary> {
    let (_, entries) = parse(snap)?;
    let mut revision = 1;
    for (k, v) in &entries {
        if k.as_slice() == keys::META_REVISION {
            revision = keys::decode_i64(v)?;
        }
    }
    Ok(SnapshotSummary {
        records: entries.len() as u64,
        revision,
    })
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("snapshot: {what}"))
}

/// A snapshot's format version and its `(key, value)` entries.
type Parsed = (u32, Vec<(Vec<u8>, Vec<u8>)>);

/// Verifies and decodes a snapshot.
fn parse(snap: &[u8]) -> Result<Parsed> {
    if snap.len() < 8 + 4 + 8 + 8 + 32 {
        return Err(corrupt("too short"));
    }
    let (data, digest) = snap.split_at(snap.len() - 32);
    if Sha256::digest(data).as_slice() != digest {
        return Err(corrupt("checksum mismatch"));
    }
    if &data[..8] != MAGIC {
        return Err(corrupt("bad magic"));
    }
    let mut r = Reader { buf: &data[8..] };
    let version = r.u32()?;
    if !(1..=VERSION).contains(&version) {
        return Err(corrupt(&format!(
            "format version {version} is newer than this k3rs reads ({VERSION})"
        )));
    }
    let _applied = r.u64()?;
    let count = r.u64()?;
    let mut entries = Vec::new();
    for _ in 0..count {
        let k = r.bytes()?;
        let v = r.bytes()?;
        entries.push((k, v));
    }
    if !r.buf.is_empty() {
        return Err(corrupt("trailing bytes"));
    }
    Ok((version, entries))
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.buf.len() < n {
            return Err(corrupt("truncated"));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn bytes(&mut self) -> Result<Vec<u8>> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
}
