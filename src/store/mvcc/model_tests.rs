//! Model-based property tests: random sequences of writes, batches, compactions, reads at
//! revisions, history replays and reopens run against the sled MVCC and against a plain
//! in-memory model (per-key histories in a `BTreeMap`); every result and event must agree.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::{KeyRange, Mvcc, RevisionEvents, check_txn_keys};
use crate::store::error::StoreError;
use crate::store::types::*;

// ----- the model -----

#[derive(Clone, Debug)]
struct MKv {
    create: Revision,
    version: i64,
    value: Vec<u8>,
    lease: i64,
}

#[derive(Default)]
struct Model {
    hist: BTreeMap<Vec<u8>, Vec<(Revision, Option<MKv>)>>,
    rev: Revision,
    compact: Revision,
    /// Every committed revision's events, with live prev_kv.
    events: Vec<RevisionEvents>,
    /// Lease id → granted TTL.
    leases: BTreeMap<i64, i64>,
}

type R<T> = Result<T, String>;

fn err<T>(e: StoreError) -> R<T> {
    Err(format!("{e:?}"))
}

impl Model {
    fn new() -> Self {
        Model {
            rev: 1,
            ..Model::default()
        }
    }

    fn state_at(&self, key: &[u8], rev: Revision) -> Option<KeyValue> {
        let h = self.hist.get(key)?;
        let (r, st) = h.iter().rev().find(|(r, _)| *r <= rev)?;
        st.as_ref().map(|m| KeyValue {
            key: key.to_vec(),
            create_revision: m.create,
            mod_revision: *r,
            version: m.version,
            value: m.value.clone(),
            lease: m.lease,
        })
    }

    fn live_at(&self, range: &KeyRange, rev: Revision) -> Vec<KeyValue> {
        self.hist
            .keys()
            .filter(|k| range.contains(k))
            .filter_map(|k| self.state_at(k, rev))
            .collect()
    }

    fn check_rev(&self, rev: Revision, current: Revision) -> R<Revision> {
        let rev = if rev <= 0 { current } else { rev };
        if rev > current {
            return err(StoreError::FutureRevision { current });
        }
        if rev < self.compact {
            return err(StoreError::Compacted {
                compact_revision: self.compact,
            });
        }
        Ok(rev)
    }

    fn range_at(&self, r: &RangeRequest, view: Revision) -> R<RangeResponse> {
        let rev = if r.revision <= 0 {
            view
        } else {
            self.check_rev(r.revision, self.rev)?
        };
        let all = self.live_at(&KeyRange::new(&r.key, &r.range_end), rev);
        let count = all.len() as i64;
        let mut kvs: Vec<KeyValue> = if r.count_only { Vec::new() } else { all };
        let mut more = false;
        if r.limit > 0 && kvs.len() > r.limit as usize {
            kvs.truncate(r.limit as usize);
            more = true;
        }
        if r.keys_only {
            kvs.iter_mut().for_each(|kv| kv.value.clear());
        }
        Ok(RangeResponse {
            header: ResponseHeader::default(),
            kvs,
            more,
            count,
        })
    }

    fn range(&self, r: &RangeRequest) -> R<RangeResponse> {
        let mut resp = self.range_at(r, self.rev)?;
        resp.header.revision = self.rev;
        Ok(resp)
    }

    fn write(&mut self, key: &[u8], st: Option<MKv>, events: &mut Vec<Event>) {
        let wrev = self.rev + 1;
        let prev = self.state_at(key, wrev);
        let kind = if st.is_some() {
            EventType::Put
        } else {
            EventType::Delete
        };
        self.hist.entry(key.to_vec()).or_default().push((wrev, st));
        let kv = match kind {
            EventType::Put => self.state_at(key, wrev).unwrap_or_default(),
            EventType::Delete => KeyValue {
                key: key.to_vec(),
                mod_revision: wrev,
                ..KeyValue::default()
            },
        };
        events.push(Event {
            kind,
            kv,
            prev_kv: prev,
        });
    }

    fn check_put(&self, p: &PutRequest) -> R<()> {
        if (p.ignore_value || p.ignore_lease) && self.state_at(&p.key, self.rev).is_none() {
            return err(StoreError::KeyNotFound);
        }
        if p.lease != 0 && !self.leases.contains_key(&p.lease) {
            return err(StoreError::LeaseNotFound { id: p.lease });
        }
        Ok(())
    }

    fn exec_put(&mut self, p: &PutRequest, ev: &mut Vec<Event>) -> PutResponse {
        let old = self.state_at(&p.key, self.rev + 1);
        let st = MKv {
            create: old.as_ref().map_or(self.rev + 1, |o| o.create_revision),
            version: old.as_ref().map_or(1, |o| o.version + 1),
            value: match (&old, p.ignore_value) {
                (Some(o), true) => o.value.clone(),
                _ => p.value.clone(),
            },
            lease: match (&old, p.ignore_lease) {
                (Some(o), true) => o.lease,
                _ => p.lease,
            },
        };
        self.write(&p.key, Some(st), ev);
        PutResponse {
            header: ResponseHeader::default(),
            prev_kv: if p.prev_kv { old } else { None },
        }
    }

    fn exec_delete(&mut self, d: &DeleteRangeRequest, ev: &mut Vec<Event>) -> DeleteRangeResponse {
        let live = self.live_at(&KeyRange::new(&d.key, &d.range_end), self.rev + 1);
        for kv in &live {
            self.write(&kv.key, None, ev);
        }
        DeleteRangeResponse {
            header: ResponseHeader::default(),
            deleted: live.len() as i64,
            prev_kvs: if d.prev_kv { live } else { Vec::new() },
        }
    }

    fn compare(&self, c: &Compare) -> bool {
        let kvs = self.live_at(&KeyRange::new(&c.key, &c.range_end), self.rev);
        if kvs.is_empty() {
            if matches!(c.target, CompareTarget::Value(_)) {
                return false;
            }
            return cmp_kv(c, &KeyValue::default());
        }
        kvs.iter().all(|kv| cmp_kv(c, kv))
    }

    fn taken<'a>(&self, t: &'a TxnRequest) -> (bool, &'a [RequestOp]) {
        let ok = t.compare.iter().all(|c| self.compare(c));
        (ok, if ok { &t.success } else { &t.failure })
    }

    fn check_ops(&self, t: &TxnRequest, puts: bool) -> R<()> {
        let (_, ops) = self.taken(t);
        for op in ops {
            match op {
                RequestOp::Put(p) if puts => self.check_put(p)?,
                RequestOp::Range(r) if !puts && r.revision > 0 => {
                    self.check_rev(r.revision, self.rev)?;
                }
                RequestOp::Txn(n) => self.check_ops(n, puts)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// Compares are all evaluated before any write (etcd's compareToPath).
    fn plan(&self, t: &TxnRequest) -> Vec<bool> {
        let mut out = Vec::new();
        let (ok, ops) = self.taken(t);
        out.push(ok);
        for op in ops {
            if let RequestOp::Txn(n) = op {
                out.extend(self.plan(n));
            }
        }
        out
    }

    fn exec_txn(
        &mut self,
        t: &TxnRequest,
        plan: &mut std::vec::IntoIter<bool>,
        ev: &mut Vec<Event>,
    ) -> TxnResponse {
        let ok = plan.next().unwrap_or(false);
        let ops = if ok { &t.success } else { &t.failure };
        let mut responses = Vec::new();
        for op in ops {
            responses.push(match op {
                RequestOp::Range(r) => {
                    ResponseOp::Range(self.range_at(r, self.rev + 1).unwrap_or_default())
                }
                RequestOp::Put(p) => ResponseOp::Put(self.exec_put(p, ev)),
                RequestOp::DeleteRange(d) => ResponseOp::DeleteRange(self.exec_delete(d, ev)),
                RequestOp::Txn(n) => ResponseOp::Txn(self.exec_txn(n, plan, ev)),
            });
        }
        TxnResponse {
            header: ResponseHeader::default(),
            succeeded: ok,
            responses,
        }
    }

    fn finish(&mut self, ev: Vec<Event>) {
        if !ev.is_empty() {
            self.rev += 1;
            self.events.push(RevisionEvents {
                revision: self.rev,
                events: ev,
            });
        }
    }

    fn apply(&mut self, op: &WriteOp) -> R<Out> {
        let mut ev = Vec::new();
        let out = match op {
            WriteOp::Put(p) => {
                self.check_put(p)?;
                Out::Put(self.exec_put(p, &mut ev))
            }
            WriteOp::Delete(d) => Out::Delete(self.exec_delete(d, &mut ev)),
            WriteOp::Txn(t) => {
                check_txn_keys(t).map_err(|e| format!("{e:?}"))?;
                self.check_ops(t, true)?;
                self.check_ops(t, false)?;
                let mut plan = self.plan(t).into_iter();
                Out::Txn(self.exec_txn(t, &mut plan, &mut ev))
            }
            WriteOp::Compact(sel) => {
                let rev = sel.resolve(self.rev, self.compact);
                if rev <= self.compact {
                    return err(StoreError::Compacted {
                        compact_revision: self.compact,
                    });
                }
                if rev > self.rev {
                    return err(StoreError::FutureRevision { current: self.rev });
                }
                self.compact = rev;
                Out::Header(0)
            }
            WriteOp::LeaseGrant(id) => {
                if self.leases.contains_key(id) {
                    return err(StoreError::LeaseExists { id: *id });
                }
                self.leases.insert(*id, 5);
                Out::Header(0)
            }
            WriteOp::LeaseRevoke(id) => {
                if self.leases.remove(id).is_none() {
                    return err(StoreError::LeaseNotFound { id: *id });
                }
                let attached: Vec<Vec<u8>> = self
                    .hist
                    .keys()
                    .filter(|k| self.state_at(k, self.rev).is_some_and(|kv| kv.lease == *id))
                    .cloned()
                    .collect();
                for k in attached {
                    self.write(&k, None, &mut ev);
                }
                Out::Header(0)
            }
        };
        self.finish(ev);
        Ok(stamp(out, self.rev))
    }

    /// History replay from `from`: prev_kv only where history still has it.
    fn history(&self, from: Revision) -> R<Vec<RevisionEvents>> {
        if from < self.compact {
            return err(StoreError::Compacted {
                compact_revision: self.compact,
            });
        }
        Ok(self
            .events
            .iter()
            .filter(|r| r.revision >= from)
            .map(|r| RevisionEvents {
                revision: r.revision,
                events: r
                    .events
                    .iter()
                    .map(|e| Event {
                        prev_kv: if r.revision > self.compact {
                            self.state_at(&e.kv.key, r.revision - 1)
                        } else {
                            None
                        },
                        ..e.clone()
                    })
                    .collect(),
            })
            .collect())
    }
}

fn cmp_kv(c: &Compare, kv: &KeyValue) -> bool {
    let ord = match &c.target {
        CompareTarget::Version(v) => kv.version.cmp(v),
        CompareTarget::CreateRevision(v) => kv.create_revision.cmp(v),
        CompareTarget::ModRevision(v) => kv.mod_revision.cmp(v),
        CompareTarget::Value(v) => kv.value.cmp(v),
        CompareTarget::Lease(v) => kv.lease.cmp(v),
    };
    match c.result {
        CompareResult::Equal => ord.is_eq(),
        CompareResult::Greater => ord.is_gt(),
        CompareResult::Less => ord.is_lt(),
        CompareResult::NotEqual => ord.is_ne(),
    }
}

fn stamp(out: Out, rev: Revision) -> Out {
    fn txn(t: &mut TxnResponse, rev: Revision) {
        t.header.revision = rev;
        for r in &mut t.responses {
            match r {
                ResponseOp::Range(x) => x.header.revision = rev,
                ResponseOp::Put(x) => x.header.revision = rev,
                ResponseOp::DeleteRange(x) => x.header.revision = rev,
                ResponseOp::Txn(x) => txn(x, rev),
            }
        }
    }
    match out {
        Out::Put(mut p) => {
            p.header.revision = rev;
            Out::Put(p)
        }
        Out::Delete(mut d) => {
            d.header.revision = rev;
            Out::Delete(d)
        }
        Out::Txn(mut t) => {
            txn(&mut t, rev);
            Out::Txn(t)
        }
        Out::Header(_) => Out::Header(rev),
    }
}

// ----- operations -----

#[derive(Clone, Debug)]
enum RevSel {
    Abs(Revision),
    /// A point between the compact and the current revision, in percent.
    Frac(u8),
}

impl RevSel {
    fn resolve(&self, current: Revision, compact: Revision) -> Revision {
        match self {
            RevSel::Abs(r) => *r,
            RevSel::Frac(f) => {
                let lo = compact.max(1);
                lo + (current - lo) * i64::from(*f) / 100
            }
        }
    }
}

#[derive(Clone, Debug)]
enum WriteOp {
    Put(PutRequest),
    Delete(DeleteRangeRequest),
    Txn(TxnRequest),
    Compact(RevSel),
    LeaseGrant(i64),
    LeaseRevoke(i64),
}

#[derive(Clone, Debug)]
enum Op {
    Write(WriteOp),
    Batch(Vec<WriteOp>),
    Range(RangeRequest, RevSel),
    History(RevSel, usize),
    Reopen,
}

#[derive(Debug, PartialEq)]
enum Out {
    Put(PutResponse),
    Delete(DeleteRangeResponse),
    Txn(TxnResponse),
    /// Compact and lease ops: the header revision.
    Header(Revision),
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(vec![
        b"a".to_vec(),
        b"a\0".to_vec(),
        b"ab".to_vec(),
        b"b".to_vec(),
        b"b\xff".to_vec(),
        b"c".to_vec(),
        vec![0],
    ])
}

fn range_end() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(vec![
        vec![],
        vec![],
        vec![0],
        b"b".to_vec(),
        b"c".to_vec(),
        b"a\0".to_vec(),
        b"\xff".to_vec(),
    ])
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(vec![b"".to_vec(), b"x".to_vec(), b"y".to_vec()])
}

fn put() -> impl Strategy<Value = PutRequest> {
    (
        key(),
        value(),
        any::<bool>(),
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.15),
        prop::sample::select(vec![0i64, 0, 0, 1, 2]),
    )
        .prop_map(
            |(key, value, prev_kv, ignore_value, ignore_lease, lease)| PutRequest {
                key,
                value: if ignore_value { Vec::new() } else { value },
                lease: if ignore_lease { 0 } else { lease },
                prev_kv,
                ignore_value,
                ignore_lease,
            },
        )
}

fn delete() -> impl Strategy<Value = DeleteRangeRequest> {
    (key(), range_end(), any::<bool>()).prop_map(|(key, range_end, prev_kv)| DeleteRangeRequest {
        key,
        range_end,
        prev_kv,
    })
}

fn range_req() -> impl Strategy<Value = RangeRequest> {
    (
        key(),
        range_end(),
        0i64..3,
        any::<bool>(),
        prop::bool::weighted(0.2),
        -1i64..12,
    )
        .prop_map(
            |(key, range_end, limit, keys_only, count_only, revision)| RangeRequest {
                key,
                range_end,
                limit,
                revision,
                keys_only,
                count_only,
                serializable: true,
            },
        )
}

fn compare() -> impl Strategy<Value = Compare> {
    let target = prop_oneof![
        (0i64..3).prop_map(CompareTarget::Version),
        (0i64..8).prop_map(CompareTarget::CreateRevision),
        (0i64..8).prop_map(CompareTarget::ModRevision),
        value().prop_map(CompareTarget::Value),
        (0i64..3).prop_map(CompareTarget::Lease),
    ];
    let result = prop::sample::select(vec![
        CompareResult::Equal,
        CompareResult::Greater,
        CompareResult::Less,
        CompareResult::NotEqual,
    ]);
    (
        key(),
        prop::sample::select(vec![vec![], vec![], vec![0], b"b".to_vec()]),
        target,
        result,
    )
        .prop_map(|(key, range_end, target, result)| Compare {
            key,
            range_end,
            target,
            result,
        })
}

fn txn() -> impl Strategy<Value = TxnRequest> {
    let leaf = prop_oneof![
        range_req().prop_map(RequestOp::Range),
        put().prop_map(RequestOp::Put),
        delete().prop_map(RequestOp::DeleteRange),
    ];
    let op = leaf.prop_recursive(2, 12, 3, |inner| {
        (
            prop::collection::vec(compare(), 0..2),
            prop::collection::vec(inner.clone(), 0..3),
            prop::collection::vec(inner, 0..3),
        )
            .prop_map(|(compare, success, failure)| {
                RequestOp::Txn(TxnRequest {
                    compare,
                    success,
                    failure,
                })
            })
    });
    (
        prop::collection::vec(compare(), 0..3),
        prop::collection::vec(op.clone(), 0..4),
        prop::collection::vec(op, 0..4),
    )
        .prop_map(|(compare, success, failure)| TxnRequest {
            compare,
            success,
            failure,
        })
}

fn rev_sel() -> impl Strategy<Value = RevSel> {
    prop_oneof![
        (-1i64..20).prop_map(RevSel::Abs),
        (0u8..=100).prop_map(RevSel::Frac),
    ]
}

fn write_op() -> impl Strategy<Value = WriteOp> {
    prop_oneof![
        4 => put().prop_map(WriteOp::Put),
        2 => delete().prop_map(WriteOp::Delete),
        3 => txn().prop_map(WriteOp::Txn),
        1 => rev_sel().prop_map(WriteOp::Compact),
        1 => (1i64..3).prop_map(WriteOp::LeaseGrant),
        1 => (1i64..3).prop_map(WriteOp::LeaseRevoke),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => write_op().prop_map(Op::Write),
        2 => prop::collection::vec(write_op(), 1..5).prop_map(Op::Batch),
        3 => (range_req(), rev_sel()).prop_map(|(r, s)| Op::Range(r, s)),
        2 => (rev_sel(), 1usize..4).prop_map(|(s, n)| Op::History(s, n)),
        1 => Just(Op::Reopen),
    ]
}

// ----- the run -----

fn run_write(batch: &mut super::WriteBatch<'_>, op: &WriteOp) -> R<Out> {
    let s = |e: StoreError| format!("{e:?}");
    match op {
        WriteOp::Put(p) => batch.put(p).map(Out::Put).map_err(s),
        WriteOp::Delete(d) => batch.delete_range(d).map(Out::Delete).map_err(s),
        WriteOp::Txn(t) => batch.txn(t).map(Out::Txn).map_err(s),
        WriteOp::Compact(sel) => {
            let rev = sel.resolve(batch.revision(), batch.compact_revision());
            batch
                .compact(rev)
                .map(|h| Out::Header(h.revision))
                .map_err(s)
        }
        WriteOp::LeaseGrant(id) => batch
            .lease_grant(*id, 5)
            .map(|r| Out::Header(r.header.revision))
            .map_err(s),
        WriteOp::LeaseRevoke(id) => batch
            .lease_revoke(*id)
            .map(|h| Out::Header(h.revision))
            .map_err(s),
    }
}

fn check_sequence(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut mvcc = Mvcc::open(dir.path(), 4 << 20).unwrap();
    let mut model = Model::new();
    let mut index = 0u64;
    for op in ops {
        match op {
            Op::Write(w) => run_batch(&mvcc, &mut model, &[w], &mut index)?,
            Op::Batch(ws) => run_batch(&mvcc, &mut model, &ws, &mut index)?,
            Op::Range(mut r, sel) => {
                if matches!(sel, RevSel::Frac(_)) {
                    r.revision = sel.resolve(model.rev, model.compact);
                }
                let got = mvcc.range(&r).map_err(|e| format!("{e:?}"));
                prop_assert_eq!(got, model.range(&r), "range {:?}", r);
            }
            Op::History(sel, chunk) => {
                let from = sel.resolve(model.rev, model.compact).max(1);
                let want = model.history(from);
                let mut got = Vec::new();
                let mut next = from;
                let res = loop {
                    match mvcc.history(next, chunk, &|_| true) {
                        Err(e) => break Err(format!("{e:?}")),
                        Ok(c) => {
                            got.extend(c.revisions);
                            if c.scanned_to >= mvcc.current_revision() {
                                break Ok(got);
                            }
                            prop_assert!(c.scanned_to >= next, "history made no progress");
                            next = c.scanned_to + 1;
                        }
                    }
                };
                prop_assert_eq!(res, want, "history from {}", from);
            }
            Op::Reopen => {
                let kept = mvcc.read_view().clone();
                drop(mvcc);
                mvcc = Mvcc::open(dir.path(), 4 << 20).unwrap();
                prop_assert_eq!(mvcc.applied_index(), index);
                // The index kept up batch by batch equals the one rebuilt from the log.
                prop_assert_eq!(&*mvcc.read_view(), &kept);
            }
        }
        let leases: Vec<(i64, i64)> = model.leases.iter().map(|(i, t)| (*i, *t)).collect();
        prop_assert_eq!(mvcc.leases().unwrap(), leases);
        for id in model.leases.keys() {
            let attached: Vec<Vec<u8>> = model
                .hist
                .keys()
                .filter(|k| {
                    model
                        .state_at(k, model.rev)
                        .is_some_and(|kv| kv.lease == *id)
                })
                .cloned()
                .collect();
            prop_assert_eq!(mvcc.lease_keys(*id).unwrap(), attached);
        }
        prop_assert_eq!(mvcc.current_revision(), model.rev);
        prop_assert_eq!(mvcc.compact_revision(), model.compact);
    }
    Ok(())
}

fn run_batch(
    mvcc: &Mvcc,
    model: &mut Model,
    ops: &[WriteOp],
    index: &mut u64,
) -> Result<(), TestCaseError> {
    let events_before = model.events.len();
    let mut batch = mvcc.begin();
    for w in ops {
        let got = run_write(&mut batch, w);
        let want = model.apply(w);
        prop_assert_eq!(got, want, "write {:?}", w);
    }
    *index += 1;
    let committed = batch.commit(*index).unwrap();
    prop_assert_eq!(&committed.revisions[..], &model.events[events_before..]);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn sled_mvcc_agrees_with_the_model(ops in prop::collection::vec(op(), 1..60)) {
        check_sequence(ops)?;
    }
}

#[test]
fn duplicate_keys_in_a_txn_are_rejected_like_etcd() {
    let put = |k: &[u8]| {
        RequestOp::Put(PutRequest {
            key: k.to_vec(),
            ..PutRequest::default()
        })
    };
    let del = |k: &[u8], e: &[u8]| {
        RequestOp::DeleteRange(DeleteRangeRequest {
            key: k.to_vec(),
            range_end: e.to_vec(),
            prev_kv: false,
        })
    };
    let txn = |success: Vec<RequestOp>, failure: Vec<RequestOp>| TxnRequest {
        compare: vec![],
        success,
        failure,
    };
    assert!(check_txn_keys(&txn(vec![put(b"a"), put(b"a")], vec![])).is_err());
    assert!(check_txn_keys(&txn(vec![del(b"a", b"c"), put(b"b")], vec![])).is_err());
    assert!(check_txn_keys(&txn(vec![del(b"a", b"c"), del(b"b", b"d")], vec![])).is_ok());
    assert!(check_txn_keys(&txn(vec![put(b"a")], vec![put(b"a")])).is_ok());
    let nested = RequestOp::Txn(txn(vec![put(b"a")], vec![put(b"a")]));
    assert!(check_txn_keys(&txn(vec![nested.clone()], vec![])).is_ok());
    assert!(check_txn_keys(&txn(vec![nested, put(b"a")], vec![])).is_err());
}
