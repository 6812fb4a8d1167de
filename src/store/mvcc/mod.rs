//! etcd's MVCC data model on sled: global revisions, per-key create/mod revision and
//! version, tombstones, history until compaction, leases' persistent state.
//!
//! Synchronous and sled-only (no tokio): reads go straight to sled through [`Mvcc`]; writes
//! happen only through a [`WriteBatch`] (one per raft apply call), committed atomically with
//! the applied index (a redo record for small batches, sled's `apply_batch` for large ones;
//! see `WriteBatch::commit`). The key layout is documented in `keys.rs`.
//!
//! Concurrency: one writer at a time (the batch holds `writer`); a batch buffers its writes in
//! an overlay and commits them (tree and in-memory key index) under the `view` write lock, so
//! readers (which hold the `view` read lock for a whole scan) always see whole revisions.

mod batch;
mod format;
mod index;
pub(crate) mod keys;
mod snapshot;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock, RwLockReadGuard};

pub use batch::{LeaseChange, RevisionEvents, WriteBatch, check_txn_keys};
pub use snapshot::{SnapshotSummary, verify_snapshot};

use super::error::{Result, StoreError};
use super::types::{Event, EventType, KeyValue, RangeRequest, RangeResponse, Revision};
use index::KeyIndex;
use keys::Record;

/// The sled-backed MVCC store. Share it behind an `Arc`.
pub struct Mvcc {
    db: sled::Db,
    tree: sled::Tree,
    path: PathBuf,
    /// The per-key revision index. Held (write) while a batch commits and (read) by every
    /// multi-step read.
    view: RwLock<KeyIndex>,
    /// Serialises write batches.
    writer: Mutex<()>,
    revision: AtomicI64,
    compact_revision: AtomicI64,
    applied_index: AtomicU64,
}

/// A page of watch history: whole revisions from the requested start.
#[derive(Debug, Default)]
pub struct HistoryChunk {
    /// Matching events grouped by revision, ascending; events carry `prev_kv` when known.
    pub revisions: Vec<RevisionEvents>,
    /// Every revision up to and including this one was scanned.
    pub scanned_to: Revision,
}

/// The user-key interval of a request, with etcd's `range_end` conventions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KeyRange {
    /// `range_end` empty: exactly `key`.
    Single(Vec<u8>),
    /// `[start, end)`; `end == None` means unbounded (`range_end == [0]`).
    Span {
        start: Vec<u8>,
        end: Option<Vec<u8>>,
    },
}

impl KeyRange {
    pub(crate) fn new(key: &[u8], range_end: &[u8]) -> Self {
        match range_end {
            [] => KeyRange::Single(key.to_vec()),
            [0] => KeyRange::Span {
                start: key.to_vec(),
                end: None,
            },
            end => KeyRange::Span {
                start: key.to_vec(),
                end: Some(end.to_vec()),
            },
        }
    }

    pub(crate) fn contains(&self, k: &[u8]) -> bool {
        match self {
            KeyRange::Single(key) => key.as_slice() == k,
            KeyRange::Span { start, end } => {
                k >= start.as_slice() && end.as_deref().is_none_or(|e| k < e)
            }
        }
    }

    /// The keys of the interval with their changes, from the index, in key order.
    pub(crate) fn indexed<'a>(
        &'a self,
        index: &'a KeyIndex,
    ) -> Box<dyn Iterator<Item = (&'a [u8], &'a [index::Change])> + 'a> {
        match self {
            KeyRange::Single(key) => {
                let changes = index.changes(key);
                Box::new(
                    (!changes.is_empty())
                        .then_some((key.as_slice(), changes))
                        .into_iter(),
                )
            }
            KeyRange::Span { start, end } => {
                if end.as_deref().is_some_and(|e| e <= start.as_slice()) {
                    return Box::new(std::iter::empty());
                }
                Box::new(
                    index
                        .range(start, end.as_deref())
                        .map(|(k, c)| (k.as_slice(), c.as_slice())),
                )
            }
        }
    }
}

/// Opens sled, retrying for a while when the directory lock is still held: a dropped `Db`
/// releases its lock only once sled's background flusher has let go of it.
fn open_db(path: &Path, cache_bytes: u64) -> Result<sled::Db> {
    let mut attempts = 0;
    loop {
        match sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .open()
        {
            Err(sled::Error::Io(e))
                if attempts < 150 && e.to_string().contains("could not acquire lock") =>
            {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

/// Replays the redo record of a small batch whose key-by-key commit a crash cut short
/// (`WriteBatch::commit`). Its applied index is written last, so an applied index below
/// the record's means the batch is incomplete; the record holds final values, so writing
/// them again is harmless whatever part had reached the disk.
fn finish_interrupted_commit(tree: &sled::Tree) -> Result<()> {
    let Some(record) = tree.get(keys::META_REDO)? else {
        return Ok(());
    };
    let (index, writes) = keys::decode_redo(&record)?;
    let applied = read_meta_i64(tree, keys::META_APPLIED, 0)? as u64;
    if index <= applied {
        return Ok(());
    }
    tracing::info!(
        index,
        applied,
        "store: finishing an apply batch a crash interrupted"
    );
    batch::apply_writes(tree, writes)
}

fn read_meta_i64(tree: &sled::Tree, name: &[u8], default: i64) -> Result<i64> {
    match tree.get(name)? {
        Some(v) => keys::decode_i64(&v),
        None => Ok(default),
    }
}

impl Mvcc {
    /// Opens (or creates) the store at `path` with a sled page cache of `cache_bytes`.
    ///
    /// # Errors
    /// Storage failures and corrupt metadata.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Self> {
        let db = open_db(path, cache_bytes)?;
        let tree = db.open_tree("mvcc")?;
        finish_interrupted_commit(&tree)?;
        if format::upgrade_tree(&tree)? {
            // The upgrade rewrote history in one batch: make it durable before serving.
            db.flush()?;
            snapshot::fsync_tree(path)?;
        }
        let revision = read_meta_i64(&tree, keys::META_REVISION, 1)?;
        let compact = read_meta_i64(&tree, keys::META_COMPACT, 0)?;
        let applied = read_meta_i64(&tree, keys::META_APPLIED, 0)?;
        let index = KeyIndex::load(&tree)?;
        Ok(Mvcc {
            db,
            tree,
            path: path.to_path_buf(),
            view: RwLock::new(index),
            writer: Mutex::new(()),
            revision: AtomicI64::new(revision),
            compact_revision: AtomicI64::new(compact),
            applied_index: AtomicU64::new(applied as u64),
        })
    }

    /// The newest revision (1 for an empty store).
    pub fn current_revision(&self) -> Revision {
        self.revision.load(Ordering::Acquire)
    }

    /// Reads below this revision fail with `Compacted` (0 = never compacted).
    pub fn compact_revision(&self) -> Revision {
        self.compact_revision.load(Ordering::Acquire)
    }

    /// The raft index of the last applied entry, as committed.
    pub fn applied_index(&self) -> u64 {
        self.applied_index.load(Ordering::Acquire)
    }

    /// Bytes sled uses on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    fn read_view(&self) -> RwLockReadGuard<'_, KeyIndex> {
        self.view
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts the (only) write batch; blocks while another one is open.
    pub fn begin(&self) -> WriteBatch<'_> {
        let guard = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        WriteBatch::new(self, guard)
    }

    /// `range` over committed state. The header's revision is the current revision (as in
    /// etcd, even for reads at a past revision); member/raft fields are left to the caller.
    ///
    /// # Errors
    /// `FutureRevision`, `Compacted`, storage failures.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        let view = self.read_view();
        let current = self.current_revision();
        let rev = resolve_read_revision(req.revision, current, self.compact_revision())?;
        let range = KeyRange::new(&req.key, &req.range_end);
        let mut acc = RangeAcc::new(req);
        for (key, changes) in range.indexed(&view) {
            if let Some(at) = index::newest_at(changes, rev).filter(|c| !c.tombstone) {
                acc.push(key, || self.record_at(at.rev, at.seq));
            }
        }
        let mut resp = acc.finish_checked()?;
        resp.header.revision = current;
        Ok(resp)
    }

    /// Watch history: the events of whole revisions from `from` on, for keys `matches`
    /// accepts, stopping after the revision where `max_events` events matched or
    /// `8 * max_events` were scanned (so one call stays short however sparse the matches).
    ///
    /// # Errors
    /// `Compacted` when `from` is below the compact revision; storage failures.
    pub fn history(
        &self,
        from: Revision,
        max_events: usize,
        matches: &dyn Fn(&[u8]) -> bool,
    ) -> Result<HistoryChunk> {
        let view = self.read_view();
        let compact = self.compact_revision();
        if from < compact {
            return Err(StoreError::Compacted {
                compact_revision: compact,
            });
        }
        let current = self.current_revision();
        let mut chunk = HistoryChunk {
            revisions: Vec::new(),
            scanned_to: current,
        };
        let max_events = max_events.max(1);
        let mut events = 0usize;
        let mut scanned_rev: Option<Revision> = None;
        let lo = keys::revlog_key(from.max(1), 0);
        for (scanned, item) in self
            .tree
            .range(lo..keys::prefix_end(keys::REVLOG))
            .enumerate()
        {
            let (rk, v) = item?;
            let rev = keys::revlog_rev(&rk)?;
            if scanned_rev != Some(rev)
                && (events >= max_events || scanned >= max_events.saturating_mul(8))
            {
                chunk.scanned_to = rev - 1;
                break;
            }
            scanned_rev = Some(rev);
            let (key, rec) = keys::split_revlog_value(&v)?;
            if !matches(key) {
                continue;
            }
            let event = self.history_event(&view, key, Record::decode(rec)?, rev)?;
            events += 1;
            match chunk.revisions.last_mut() {
                Some(r) if r.revision == rev => r.events.push(event),
                _ => chunk.revisions.push(RevisionEvents {
                    revision: rev,
                    events: vec![event],
                }),
            }
        }
        Ok(chunk)
    }

    /// The event of the change `rec` to `key` at `rev`, with the previous version as
    /// `prev_kv` when it is still in history.
    fn history_event(
        &self,
        index: &KeyIndex,
        key: &[u8],
        rec: Record,
        rev: Revision,
    ) -> Result<Event> {
        let prev_kv = match index::newest_at(index.changes(key), rev - 1) {
            Some(prev) if !prev.tombstone => {
                Some(self.record_at(prev.rev, prev.seq)?.into_kv(key.to_vec()))
            }
            _ => None,
        };
        Ok(if rec.tombstone {
            Event {
                kind: EventType::Delete,
                kv: KeyValue {
                    key: key.to_vec(),
                    mod_revision: rev,
                    ..KeyValue::default()
                },
                prev_kv,
            }
        } else {
            Event {
                kind: EventType::Put,
                kv: rec.into_kv(key.to_vec()),
                prev_kv,
            }
        })
    }

    /// The committed record of the change `(rev, seq)` in the revision log.
    fn record_at(&self, rev: Revision, seq: u32) -> Result<Record> {
        let v = self
            .tree
            .get(keys::revlog_key(rev, seq))?
            .ok_or_else(missing_change)?;
        keys::revlog_record(&v)
    }

    /// The granted TTL of lease `id`, if it exists.
    ///
    /// # Errors
    /// Storage failures.
    pub fn lease_ttl(&self, id: i64) -> Result<Option<i64>> {
        match self.tree.get(keys::lease_key(id))? {
            Some(v) => Ok(Some(keys::decode_i64(&v)?)),
            None => Ok(None),
        }
    }

    /// Every lease as `(id, granted ttl)`.
    ///
    /// # Errors
    /// Storage failures.
    pub fn leases(&self) -> Result<Vec<(i64, i64)>> {
        let _view = self.read_view();
        let mut out = Vec::new();
        for item in self
            .tree
            .range(keys::prefix_start(keys::LEASE)..keys::prefix_end(keys::LEASE))
        {
            let (k, v) = item?;
            out.push((keys::lease_id_of(&k)?, keys::decode_i64(&v)?));
        }
        Ok(out)
    }

    /// The keys attached to lease `id`, in key order.
    ///
    /// # Errors
    /// Storage failures.
    pub fn lease_keys(&self, id: i64) -> Result<Vec<Vec<u8>>> {
        let _view = self.read_view();
        let prefix = keys::attach_prefix(id);
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(&prefix) {
            let (k, _) = item?;
            out.push(k[prefix.len()..].to_vec());
        }
        Ok(out)
    }
}

/// An index entry whose change is missing from the revision log.
pub(crate) fn missing_change() -> StoreError {
    StoreError::Corrupt("history index entry without its revision log entry".into())
}

/// Checks a read revision (0 = current) against the current and compact revisions.
pub(crate) fn resolve_read_revision(
    requested: Revision,
    current: Revision,
    compact: Revision,
) -> Result<Revision> {
    let rev = if requested <= 0 { current } else { requested };
    if rev > current {
        return Err(StoreError::FutureRevision { current });
    }
    if rev < compact {
        return Err(StoreError::Compacted {
            compact_revision: compact,
        });
    }
    Ok(rev)
}

/// Builds a range response with etcd's limit/count/more semantics.
pub(crate) struct RangeAcc {
    limit: usize,
    keys_only: bool,
    count_only: bool,
    kvs: Vec<KeyValue>,
    count: i64,
    error: Option<StoreError>,
}

impl RangeAcc {
    pub(crate) fn new(req: &RangeRequest) -> Self {
        RangeAcc {
            limit: usize::try_from(req.limit).unwrap_or(0),
            keys_only: req.keys_only,
            count_only: req.count_only,
            kvs: Vec::new(),
            count: 0,
            error: None,
        }
    }

    fn wants_kv(&self) -> bool {
        !self.count_only && (self.limit == 0 || self.kvs.len() < self.limit)
    }

    /// Counts a key; decodes its record only when it will be returned.
    pub(crate) fn push(&mut self, key: &[u8], rec: impl FnOnce() -> Result<Record>) {
        self.count += 1;
        if self.wants_kv() {
            match rec() {
                Ok(r) => self.push_record_inner(key.to_vec(), r),
                Err(e) => self.error = Some(e),
            }
        }
    }

    pub(crate) fn push_record(&mut self, key: Vec<u8>, rec: Record) {
        self.count += 1;
        if self.wants_kv() {
            self.push_record_inner(key, rec);
        }
    }

    fn push_record_inner(&mut self, key: Vec<u8>, mut rec: Record) {
        if self.keys_only {
            rec.value.clear();
        }
        self.kvs.push(rec.into_kv(key));
    }

    pub(crate) fn finish(self) -> RangeResponse {
        let more = !self.count_only && self.limit > 0 && self.count > self.limit as i64;
        RangeResponse {
            header: Default::default(),
            kvs: self.kvs,
            more,
            count: self.count,
        }
    }

    pub(crate) fn finish_checked(self) -> Result<RangeResponse> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.finish()),
        }
    }
}
