//! One apply batch: executes writes (put, delete_range, txn, compact, lease changes) on an
//! in-memory overlay above the committed tree, then commits everything plus the applied index
//! atomically (see [`WriteBatch::commit`]).
//!
//! Semantics follow etcd 3.4's applier: a txn first evaluates every compare on its taken path
//! (including nested txns) against the state before the txn, then checks its puts and ranges,
//! and only then executes; the revision grows by one iff something changed.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::MutexGuard;

use super::index::{self, Change, KeyIndex};
use super::keys::{self, Record};
use super::{KeyRange, Mvcc, RangeAcc, resolve_read_revision};
use crate::store::error::{Result, StoreError};
use crate::store::types::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, DeleteRangeResponse, Event,
    EventType, KeyValue, LeaseGrantResponse, PutRequest, PutResponse, RangeRequest, RangeResponse,
    RequestOp, ResponseHeader, ResponseOp, Revision, TxnRequest, TxnResponse,
};

/// Batches whose redo record is at most this big commit key by key (see
/// [`WriteBatch::commit`]); larger ones (many clients' puts in one Ready, compactions) use
/// sled's atomic `apply_batch`. Well below sled's large-value threshold (128 KiB with its
/// default 512 KiB segments), so the record stays inline in sled's log.
const REDO_MAX_BYTES: usize = 32 * 1024;

/// Writes `writes` in order, one sled operation each (`None` removes).
pub(super) fn apply_writes(
    tree: &sled::Tree,
    writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
) -> Result<()> {
    for (k, v) in writes {
        match v {
            Some(v) => {
                tree.insert(k, v)?;
            }
            None => {
                tree.remove(k)?;
            }
        }
    }
    Ok(())
}

/// The events of one revision, in the order the txn made them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RevisionEvents {
    pub revision: Revision,
    pub events: Vec<Event>,
}

/// A lease state change, for the in-memory expiry clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseChange {
    Granted { id: i64, ttl: i64 },
    Renewed { id: i64, ttl: i64 },
    Revoked { id: i64 },
}

/// What a committed batch changed (to publish to watchers and the lease clock).
#[derive(Debug, Default)]
pub struct Committed {
    pub revisions: Vec<RevisionEvents>,
    pub leases: Vec<LeaseChange>,
    #[cfg_attr(not(test), allow(dead_code))]
    pub revision: Revision,
}

/// The pending writes of one apply call. Reads through it see its own writes.
pub struct WriteBatch<'a> {
    mvcc: &'a Mvcc,
    _writer: MutexGuard<'a, ()>,
    /// `None` = deleted in this batch.
    overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    revision: Revision,
    compact: Revision,
    revisions: Vec<RevisionEvents>,
    leases: Vec<LeaseChange>,
    /// Changes logged by this batch, for the key index at commit.
    logged: KeyIndex,
    /// Compactions of this batch: the revision and the keys it visited.
    compactions: Vec<(Revision, Vec<Vec<u8>>)>,
}

/// The write in progress of one txn (one revision).
struct TxnWrite {
    rev: Revision,
    seq: u32,
    events: Vec<Event>,
}

/// The taken path of a txn, decided before any write.
struct Plan {
    succeeded: bool,
    nested: Vec<Plan>,
}

impl<'a> WriteBatch<'a> {
    pub(super) fn new(mvcc: &'a Mvcc, writer: MutexGuard<'a, ()>) -> Self {
        WriteBatch {
            revision: mvcc.current_revision(),
            compact: mvcc.compact_revision(),
            mvcc,
            _writer: writer,
            overlay: BTreeMap::new(),
            revisions: Vec::new(),
            leases: Vec::new(),
            logged: KeyIndex::default(),
            compactions: Vec::new(),
        }
    }

    /// The revision including this batch's writes so far.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// The compact revision including this batch's compactions.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn compact_revision(&self) -> Revision {
        self.compact
    }

    fn header(&self) -> ResponseHeader {
        ResponseHeader {
            revision: self.revision,
            ..ResponseHeader::default()
        }
    }

    // ----- overlay reads -----

    fn get(&self, k: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.overlay.get(k) {
            Some(v) => Ok(v.clone()),
            None => Ok(self.mvcc.tree.get(k)?.map(|v| v.to_vec())),
        }
    }

    fn set(&mut self, k: Vec<u8>, v: Vec<u8>) {
        self.overlay.insert(k, Some(v));
    }

    fn remove(&mut self, k: Vec<u8>) {
        self.overlay.insert(k, None);
    }

    /// Every `(key, value)` in `[lo, hi)`, overlay merged over the tree.
    fn scan(&self, lo: &[u8], hi: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        if lo >= hi {
            return Ok(out);
        }
        let mut ov = self
            .overlay
            .range::<[u8], _>((std::ops::Bound::Included(lo), std::ops::Bound::Excluded(hi)))
            .peekable();
        for item in self.mvcc.tree.range(lo..hi) {
            let (k, v) = item?;
            while let Some((ok, ovv)) = ov.next_if(|(ok, _)| ok.as_slice() < &k[..]) {
                if let Some(ovv) = ovv {
                    out.push((ok.clone(), ovv.clone()));
                }
            }
            if let Some((_, ovv)) = ov.next_if(|(ok, _)| ok.as_slice() == &k[..]) {
                if let Some(ovv) = ovv {
                    out.push((k.to_vec(), ovv.clone()));
                }
                continue;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        for (ok, ovv) in ov {
            if let Some(ovv) = ovv {
                out.push((ok.clone(), ovv.clone()));
            }
        }
        Ok(out)
    }

    /// The newest change of `key`: this batch's, else the committed index's.
    fn newest_change(&self, key: &[u8]) -> Option<Change> {
        match self.logged.changes(key).last() {
            Some(c) => Some(*c),
            None => self.mvcc.read_view().changes(key).last().copied(),
        }
    }

    /// The live record of `key` (`None`: never written, deleted or compacted away).
    fn get_current(&self, key: &[u8]) -> Result<Option<Record>> {
        match self.newest_change(key) {
            Some(c) if !c.tombstone => Ok(Some(self.record_at(c.rev, c.seq)?)),
            _ => Ok(None),
        }
    }

    /// The live keys of `range` with their records, this batch's (and txn's) writes included.
    fn current_records(&self, range: &KeyRange) -> Result<Vec<(Vec<u8>, Record)>> {
        self.records_at(range, Revision::MAX)
    }

    /// Keys live at `rev` in `range`: the newest change `<= rev` of each key (committed
    /// index, then this batch's changes, which are newer), its record from the revision log.
    fn records_at(&self, range: &KeyRange, rev: Revision) -> Result<Vec<(Vec<u8>, Record)>> {
        let mut newest: BTreeMap<Vec<u8>, Change> = BTreeMap::new();
        {
            let committed = self.mvcc.read_view();
            for index in [&*committed, &self.logged] {
                for (key, changes) in range.indexed(index) {
                    if let Some(c) = index::newest_at(changes, rev) {
                        newest.insert(key.to_vec(), c);
                    }
                }
            }
        }
        newest
            .into_iter()
            .filter(|(_, c)| !c.tombstone)
            .map(|(key, c)| Ok((key, self.record_at(c.rev, c.seq)?)))
            .collect()
    }

    /// The record of the change `(rev, seq)` in the revision log, overlay included.
    fn record_at(&self, rev: Revision, seq: u32) -> Result<Record> {
        let v = self
            .get(&keys::revlog_key(rev, seq))?
            .ok_or_else(super::missing_change)?;
        keys::revlog_record(&v)
    }

    fn lease_exists(&self, id: i64) -> Result<bool> {
        Ok(self.get(&keys::lease_key(id))?.is_some())
    }

    // ----- public writes -----

    /// etcd `Put`.
    ///
    /// # Errors
    /// `KeyNotFound` (ignore_value/ignore_lease on a missing key), `LeaseNotFound`, storage.
    pub fn put(&mut self, req: &PutRequest) -> Result<PutResponse> {
        self.check_put(req)?;
        let mut tx = self.start_txn();
        let mut resp = self.exec_put(req, &mut tx)?;
        self.finish_txn(tx);
        resp.header = self.header();
        Ok(resp)
    }

    /// etcd `DeleteRange`; deleting nothing does not bump the revision.
    ///
    /// # Errors
    /// Storage failures.
    pub fn delete_range(&mut self, req: &DeleteRangeRequest) -> Result<DeleteRangeResponse> {
        let mut tx = self.start_txn();
        let mut resp = self.exec_delete(req, &mut tx)?;
        self.finish_txn(tx);
        resp.header = self.header();
        Ok(resp)
    }

    /// etcd `Txn`: one revision for all its writes (none if it writes nothing).
    ///
    /// # Errors
    /// `DuplicateKey`, the put/range check errors of the taken path, storage failures.
    pub fn txn(&mut self, req: &TxnRequest) -> Result<TxnResponse> {
        check_txn_keys(req)?;
        let plan = self.plan(req)?;
        self.check_path(req, &plan, &|b, op| match op {
            RequestOp::Put(p) => b.check_put(p),
            _ => Ok(()),
        })?;
        self.check_path(req, &plan, &|b, op| match op {
            RequestOp::Range(r) => b.check_range(r),
            _ => Ok(()),
        })?;
        let mut tx = self.start_txn();
        let mut resp = self.exec_txn(req, &plan, &mut tx)?;
        self.finish_txn(tx);
        set_headers(&mut resp, self.revision);
        Ok(resp)
    }

    /// Drops history below `rev`, keeping for each key its newest version `<= rev` (unless
    /// that is a tombstone older than `rev`). Only keys changed since the previous compaction
    /// (up to `rev`) can have droppable history, so only those are visited (through the
    /// revision log). Runs inside the apply batch: proportional to the changes since the
    /// previous compaction.
    ///
    /// # Errors
    /// `Compacted` (`rev` <= compact revision), `FutureRevision`, storage failures.
    pub fn compact(&mut self, rev: Revision) -> Result<ResponseHeader> {
        if rev <= self.compact {
            return Err(StoreError::Compacted {
                compact_revision: self.compact,
            });
        }
        if rev > self.revision {
            return Err(StoreError::FutureRevision {
                current: self.revision,
            });
        }
        let from = self.compact.max(1);
        // Keys changed in [previous compact, rev] (a change at `rev` itself supersedes older
        // versions); each loses the changes `index::compaction_drops` names.
        let mut changed = BTreeSet::new();
        for (_, v) in self.scan(&keys::revlog_key(from, 0), &keys::revlog_key(rev + 1, 0))? {
            changed.insert(keys::split_revlog_value(&v)?.0.to_vec());
        }
        let mut drop = Vec::new();
        {
            let committed = self.mvcc.read_view();
            for key in &changed {
                let mut changes = committed.changes(key).to_vec();
                changes.extend_from_slice(self.logged.changes(key));
                let n = index::compaction_drops(&changes, rev);
                drop.extend(changes[..n].iter().map(|c| keys::revlog_key(c.rev, c.seq)));
            }
        }
        for k in drop {
            self.remove(k);
        }
        self.compactions.push((rev, changed.into_iter().collect()));
        self.compact = rev;
        Ok(self.header())
    }

    /// Creates lease `id` (non-zero, chosen by the proposer) with `ttl` seconds (min 1).
    ///
    /// # Errors
    /// `LeaseExists`, `InvalidRequest` for id 0, storage failures.
    pub fn lease_grant(&mut self, id: i64, ttl: i64) -> Result<LeaseGrantResponse> {
        if id <= 0 {
            return Err(StoreError::InvalidRequest(
                "lease id must be positive".into(),
            ));
        }
        if self.lease_exists(id)? {
            return Err(StoreError::LeaseExists { id });
        }
        let ttl = ttl.max(1);
        self.set(keys::lease_key(id), keys::encode_i64(ttl).to_vec());
        self.leases.push(LeaseChange::Granted { id, ttl });
        Ok(LeaseGrantResponse {
            header: self.header(),
            id,
            ttl,
        })
    }

    /// Deletes lease `id` and, in one revision, every key attached to it.
    ///
    /// # Errors
    /// `LeaseNotFound`, storage failures.
    pub fn lease_revoke(&mut self, id: i64) -> Result<ResponseHeader> {
        if !self.lease_exists(id)? {
            return Err(StoreError::LeaseNotFound { id });
        }
        let prefix = keys::attach_prefix(id);
        let end = keys::successor_of_prefix(&prefix).unwrap_or_else(|| vec![keys::ATTACH + 1]);
        let attached = self.scan(&prefix, &end)?;
        let mut tx = self.start_txn();
        for (ak, _) in attached {
            let key = ak[prefix.len()..].to_vec();
            if let Some(old) = self.get_current(&key)? {
                self.delete_key(key, old, &mut tx);
            }
            self.remove(ak);
        }
        self.finish_txn(tx);
        self.remove(keys::lease_key(id));
        self.leases.push(LeaseChange::Revoked { id });
        Ok(self.header())
    }

    /// Records a keep-alive of lease `id`; returns its granted TTL.
    ///
    /// # Errors
    /// `LeaseNotFound`, storage failures.
    pub fn lease_renew(&mut self, id: i64) -> Result<i64> {
        let ttl = match self.get(&keys::lease_key(id))? {
            Some(v) => keys::decode_i64(&v)?,
            None => return Err(StoreError::LeaseNotFound { id }),
        };
        self.leases.push(LeaseChange::Renewed { id, ttl });
        Ok(ttl)
    }

    /// Commits everything with `applied_index`, atomically, and makes it visible.
    ///
    /// Atomic across crashes in one of two ways. A small batch (one client's put: every
    /// Ready of a lightly loaded store) is first written as one redo record
    /// (`m/redo`: its final writes and index), then key by key with the applied index last.
    /// sled recovers a prefix of its log, so after a crash either nothing of the batch
    /// survived, or the redo record did and [`Mvcc::open`] finishes the batch from it (the
    /// writes are final values, so replaying is idempotent). A large batch uses sled's
    /// `apply_batch`, which is atomic by itself but rolls sled's I/O buffer: a write to
    /// the disk and a wake-up of sled's I/O threads on every call (≈ 30–50 µs measured,
    /// plus the disk write an SD card pays for), fine to amortise over many entries,
    /// too much for every single put.
    ///
    /// # Errors
    /// Storage failures (for a small batch, part of it may then be visible; the raft loop
    /// stops on any apply error and the redo record finishes it at the next start).
    pub fn commit(mut self, applied_index: u64) -> Result<Committed> {
        let writes = self.final_writes(applied_index);
        let mvcc = self.mvcc;
        {
            let mut view = mvcc
                .view
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Sized first: a large batch (a compaction can remove thousands of keys) is not
            // encoded only to be thrown away.
            if keys::redo_len(&writes) <= REDO_MAX_BYTES {
                let redo = keys::encode_redo(applied_index, &writes);
                mvcc.tree.insert(keys::META_REDO, redo)?;
                apply_writes(&mvcc.tree, writes)?;
            } else {
                let mut batch = sled::Batch::default();
                for (k, v) in writes {
                    match v {
                        Some(v) => batch.insert(k, v),
                        None => batch.remove(k),
                    }
                }
                // An older redo record must not be replayed over this batch.
                batch.remove(keys::META_REDO);
                mvcc.tree.apply_batch(batch)?;
            }
            view.absorb(std::mem::take(&mut self.logged));
            for (rev, keys) in std::mem::take(&mut self.compactions) {
                for key in keys {
                    view.compact_key(&key, rev);
                }
            }
            mvcc.revision
                .store(self.revision, std::sync::atomic::Ordering::Release);
            mvcc.compact_revision
                .store(self.compact, std::sync::atomic::Ordering::Release);
            mvcc.applied_index
                .store(applied_index, std::sync::atomic::Ordering::Release);
        }
        Ok(Committed {
            revisions: self.revisions,
            leases: self.leases,
            revision: self.revision,
        })
    }

    /// The overlay, then the metadata, the applied index last: once it is recovered,
    /// everything before it is.
    fn final_writes(&mut self, applied_index: u64) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let mut writes: Vec<(Vec<u8>, Option<Vec<u8>>)> =
            std::mem::take(&mut self.overlay).into_iter().collect();
        let meta = [
            (keys::META_REVISION, self.revision),
            (keys::META_COMPACT, self.compact),
            (keys::META_APPLIED, applied_index as i64),
        ];
        for (k, v) in meta {
            writes.push((k.to_vec(), Some(keys::encode_i64(v).to_vec())));
        }
        writes
    }

    /// A small batch's commit cut short by a crash after its redo record and its first
    /// `kept` writes (the test of [`Mvcc::open`]'s recovery).
    #[cfg(test)]
    pub(crate) fn commit_cut_short(mut self, applied_index: u64, kept: usize) -> Result<()> {
        let writes = self.final_writes(applied_index);
        let redo = keys::encode_redo(applied_index, &writes);
        self.mvcc.tree.insert(keys::META_REDO, redo)?;
        apply_writes(&self.mvcc.tree, writes.into_iter().take(kept).collect())
    }

    // ----- txn machinery -----

    fn start_txn(&self) -> TxnWrite {
        TxnWrite {
            rev: self.revision + 1,
            seq: 0,
            events: Vec::new(),
        }
    }

    fn finish_txn(&mut self, tx: TxnWrite) {
        if !tx.events.is_empty() {
            self.revision = tx.rev;
            self.revisions.push(RevisionEvents {
                revision: tx.rev,
                events: tx.events,
            });
        }
    }

    fn plan(&self, req: &TxnRequest) -> Result<Plan> {
        let mut succeeded = true;
        for c in &req.compare {
            if !self.compare(c)? {
                succeeded = false;
                break;
            }
        }
        let ops = if succeeded {
            &req.success
        } else {
            &req.failure
        };
        let mut nested = Vec::new();
        for op in ops {
            if let RequestOp::Txn(t) = op {
                nested.push(self.plan(t)?);
            }
        }
        Ok(Plan { succeeded, nested })
    }

    fn check_path(
        &self,
        req: &TxnRequest,
        plan: &Plan,
        check: &dyn Fn(&Self, &RequestOp) -> Result<()>,
    ) -> Result<()> {
        let ops = if plan.succeeded {
            &req.success
        } else {
            &req.failure
        };
        let mut nested = plan.nested.iter();
        for op in ops {
            check(self, op)?;
            if let RequestOp::Txn(t) = op {
                let p = nested.next().ok_or_else(corrupt_plan)?;
                self.check_path(t, p, check)?;
            }
        }
        Ok(())
    }

    fn compare(&self, c: &Compare) -> Result<bool> {
        let range = KeyRange::new(&c.key, &c.range_end);
        let recs = self.current_records(&range)?;
        if recs.is_empty() {
            if matches!(c.target, CompareTarget::Value(_)) {
                return Ok(false);
            }
            let missing = Record {
                tombstone: false,
                create_revision: 0,
                mod_revision: 0,
                version: 0,
                lease: 0,
                value: Vec::new(),
            };
            return Ok(compare_record(c, &missing));
        }
        Ok(recs.iter().all(|(_, r)| compare_record(c, r)))
    }

    fn check_put(&self, p: &PutRequest) -> Result<()> {
        if (p.ignore_value || p.ignore_lease) && self.get_current(&p.key)?.is_none() {
            return Err(StoreError::KeyNotFound);
        }
        if p.lease != 0 && !self.lease_exists(p.lease)? {
            return Err(StoreError::LeaseNotFound { id: p.lease });
        }
        Ok(())
    }

    fn check_range(&self, r: &RangeRequest) -> Result<()> {
        if r.revision > 0 {
            resolve_read_revision(r.revision, self.revision, self.compact)?;
        }
        Ok(())
    }

    fn exec_txn(
        &mut self,
        req: &TxnRequest,
        plan: &Plan,
        tx: &mut TxnWrite,
    ) -> Result<TxnResponse> {
        let ops = if plan.succeeded {
            &req.success
        } else {
            &req.failure
        };
        let mut nested = plan.nested.iter();
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            responses.push(match op {
                RequestOp::Range(r) => ResponseOp::Range(self.exec_range(r)?),
                RequestOp::Put(p) => ResponseOp::Put(self.exec_put(p, tx)?),
                RequestOp::DeleteRange(d) => ResponseOp::DeleteRange(self.exec_delete(d, tx)?),
                RequestOp::Txn(t) => {
                    let p = nested.next().ok_or_else(corrupt_plan)?;
                    ResponseOp::Txn(self.exec_txn(t, p, tx)?)
                }
            });
        }
        Ok(TxnResponse {
            header: ResponseHeader::default(),
            succeeded: plan.succeeded,
            responses,
        })
    }

    fn exec_range(&self, r: &RangeRequest) -> Result<RangeResponse> {
        let range = KeyRange::new(&r.key, &r.range_end);
        let recs = if r.revision <= 0 {
            self.current_records(&range)?
        } else {
            let rev = resolve_read_revision(r.revision, self.revision, self.compact)?;
            self.records_at(&range, rev)?
        };
        let mut acc = RangeAcc::new(r);
        for (k, rec) in recs {
            acc.push_record(k, rec);
        }
        acc.finish_checked()
    }

    /// Appends a change to `key` at the txn's revision: the record to the revision log, its
    /// place to the key index (at commit).
    fn log_change(&mut self, key: &[u8], rec: &Record, tx: &mut TxnWrite) {
        self.logged.push(
            key,
            Change {
                rev: tx.rev,
                seq: tx.seq,
                tombstone: rec.tombstone,
            },
        );
        self.set(
            keys::revlog_key(tx.rev, tx.seq),
            keys::revlog_value(key, rec),
        );
        tx.seq += 1;
    }

    fn exec_put(&mut self, p: &PutRequest, tx: &mut TxnWrite) -> Result<PutResponse> {
        let old = self.get_current(&p.key)?;
        let (value, lease) = match &old {
            Some(o) => (
                if p.ignore_value {
                    o.value.clone()
                } else {
                    p.value.clone()
                },
                if p.ignore_lease { o.lease } else { p.lease },
            ),
            None if p.ignore_value || p.ignore_lease => return Err(StoreError::KeyNotFound),
            None => (p.value.clone(), p.lease),
        };
        let rec = Record {
            tombstone: false,
            create_revision: old.as_ref().map_or(tx.rev, |o| o.create_revision),
            mod_revision: tx.rev,
            version: old.as_ref().map_or(1, |o| o.version + 1),
            lease,
            value,
        };
        self.log_change(&p.key, &rec, tx);
        let old_lease = old.as_ref().map_or(0, |o| o.lease);
        if old_lease != lease {
            if old_lease != 0 {
                self.remove(keys::attach_key(old_lease, &p.key));
            }
            if lease != 0 {
                self.set(keys::attach_key(lease, &p.key), Vec::new());
            }
        }
        let prev = old.map(|o| o.into_kv(p.key.clone()));
        tx.events.push(Event {
            kind: EventType::Put,
            kv: rec.into_kv(p.key.clone()),
            prev_kv: prev.clone(),
        });
        Ok(PutResponse {
            header: ResponseHeader::default(),
            prev_kv: if p.prev_kv { prev } else { None },
        })
    }

    fn exec_delete(
        &mut self,
        d: &DeleteRangeRequest,
        tx: &mut TxnWrite,
    ) -> Result<DeleteRangeResponse> {
        let live = self.current_records(&KeyRange::new(&d.key, &d.range_end))?;
        let mut resp = DeleteRangeResponse {
            deleted: live.len() as i64,
            ..DeleteRangeResponse::default()
        };
        for (key, old) in live {
            let prev = self.delete_key(key, old, tx);
            if d.prev_kv {
                resp.prev_kvs.push(prev);
            }
        }
        Ok(resp)
    }

    /// Deletes a live key at the txn's revision; returns its previous kv.
    fn delete_key(&mut self, key: Vec<u8>, old: Record, tx: &mut TxnWrite) -> KeyValue {
        self.log_change(&key, &Record::tombstone(tx.rev), tx);
        if old.lease != 0 {
            self.remove(keys::attach_key(old.lease, &key));
        }
        let prev = old.into_kv(key.clone());
        tx.events.push(Event {
            kind: EventType::Delete,
            kv: KeyValue {
                key,
                mod_revision: tx.rev,
                ..KeyValue::default()
            },
            prev_kv: Some(prev.clone()),
        });
        prev
    }
}

fn corrupt_plan() -> StoreError {
    StoreError::InvalidRequest("txn plan does not match request".into())
}

fn compare_record(c: &Compare, r: &Record) -> bool {
    let ord = match &c.target {
        CompareTarget::Version(v) => r.version.cmp(v),
        CompareTarget::CreateRevision(v) => r.create_revision.cmp(v),
        CompareTarget::ModRevision(v) => r.mod_revision.cmp(v),
        CompareTarget::Value(v) => r.value.as_slice().cmp(v.as_slice()),
        CompareTarget::Lease(v) => r.lease.cmp(v),
    };
    match c.result {
        CompareResult::Equal => ord.is_eq(),
        CompareResult::Greater => ord.is_gt(),
        CompareResult::Less => ord.is_lt(),
        CompareResult::NotEqual => ord.is_ne(),
    }
}

/// Sets the revision of a txn response and all its nested responses.
fn set_headers(resp: &mut TxnResponse, revision: Revision) {
    resp.header.revision = revision;
    for r in &mut resp.responses {
        match r {
            ResponseOp::Range(x) => x.header.revision = revision,
            ResponseOp::Put(x) => x.header.revision = revision,
            ResponseOp::DeleteRange(x) => x.header.revision = revision,
            ResponseOp::Txn(x) => set_headers(x, revision),
        }
    }
}

/// etcd's `checkIntervals`: within one txn, a key may be written at most once across the
/// ops that can run together (puts vs puts, puts vs deletes; overlapping deletes are fine;
/// the two branches of a nested txn may write the same key). One deliberate difference:
/// a nested delete covering a key put by an earlier nested sibling is rejected too.
///
/// # Errors
/// `DuplicateKey`.
pub fn check_txn_keys(req: &TxnRequest) -> Result<()> {
    check_intervals(&req.success)?;
    check_intervals(&req.failure)?;
    Ok(())
}

type Intervals = (HashSet<Vec<u8>>, Vec<KeyRange>);

fn check_intervals(reqs: &[RequestOp]) -> Result<Intervals> {
    let mut dels: Vec<KeyRange> = reqs
        .iter()
        .filter_map(|r| match r {
            RequestOp::DeleteRange(d) => Some(KeyRange::new(&d.key, &d.range_end)),
            _ => None,
        })
        .collect();
    let hit = |dels: &[KeyRange], k: &[u8]| dels.iter().any(|d| d.contains(k));
    let mut puts: HashSet<Vec<u8>> = HashSet::new();
    for r in reqs {
        let RequestOp::Txn(t) = r else { continue };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        // Stricter than etcd: a nested delete may not cover a key an earlier sibling put
        // (etcd would record two sub-revisions; here a key changes at most once per
        // revision, which keeps history one entry per key and revision).
        if dels_then
            .iter()
            .chain(&dels_else)
            .any(|d| puts.iter().any(|k| d.contains(k)))
        {
            return Err(StoreError::DuplicateKey);
        }
        for k in &puts_then {
            if puts.contains(k) || hit(&dels, k) {
                return Err(StoreError::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        for k in puts_else {
            if (puts.contains(&k) && !puts_then.contains(&k)) || hit(&dels, &k) {
                return Err(StoreError::DuplicateKey);
            }
            puts.insert(k);
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for r in reqs {
        let RequestOp::Put(p) = r else { continue };
        if puts.contains(&p.key) || hit(&dels, &p.key) {
            return Err(StoreError::DuplicateKey);
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}
