//! The raft entry payload: `(origin, request id, command)` in a compact hand-written binary
//! encoding (LEB128 varints, zigzag for signed values, length-prefixed bytes).
//!
//! `origin` identifies the proposing store instance: a random 64-bit id drawn when the state
//! machine is opened (not the raft member id), so that entries replayed after a restart can
//! never resolve a waiter of the new process that happens to reuse a request id.
//!
//! Layout: `version(1) | origin varint | request_id varint | tag u8 | body`. Decoding checks
//! every length and bounds txn nesting, so a malformed entry from a peer is an error, never a
//! panic.

use super::error::{Result, StoreError};
use super::types::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp,
    Revision, TxnRequest,
};

const VERSION: u8 = 1;
/// Deeper txn nesting than this is refused when decoding (etcd has no limit, but a peer must
/// not be able to overflow our stack).
const MAX_DEPTH: usize = 32;

/// What a proposal asks the state machine to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
    Txn(TxnRequest),
    Compact(Revision),
    /// `id` is chosen (non-zero) by the proposer so that every member applies the same id.
    LeaseGrant {
        id: i64,
        ttl: i64,
    },
    LeaseRevoke {
        id: i64,
    },
    /// A keep-alive; see `lease.rs` for why it goes through raft.
    LeaseKeepAlive {
        id: i64,
    },
}

/// One proposal as it travels through the raft log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub origin: u64,
    pub request_id: u64,
    pub command: Command,
}

impl Envelope {
    /// Encodes for [`super::state_machine::Replicator::propose`].
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Vec::with_capacity(64);
        w.push(VERSION);
        put_u64(&mut w, self.origin);
        put_u64(&mut w, self.request_id);
        match &self.command {
            Command::Put(p) => {
                w.push(1);
                put_put(&mut w, p);
            }
            Command::DeleteRange(d) => {
                w.push(2);
                put_delete(&mut w, d);
            }
            Command::Txn(t) => {
                w.push(3);
                put_txn(&mut w, t);
            }
            Command::Compact(rev) => {
                w.push(4);
                put_i64(&mut w, *rev);
            }
            Command::LeaseGrant { id, ttl } => {
                w.push(5);
                put_i64(&mut w, *id);
                put_i64(&mut w, *ttl);
            }
            Command::LeaseRevoke { id } => {
                w.push(6);
                put_i64(&mut w, *id);
            }
            Command::LeaseKeepAlive { id } => {
                w.push(7);
                put_i64(&mut w, *id);
            }
        }
        w
    }

    /// Decodes a committed entry's payload.
    ///
    /// # Errors
    /// `InvalidRequest` on any malformed input.
    pub fn decode(data: &[u8]) -> Result<Self> {
        let mut r = Reader { buf: data };
        if r.u8()? != VERSION {
            return Err(bad("unknown payload version"));
        }
        let origin = r.u64()?;
        let request_id = r.u64()?;
        let command = match r.u8()? {
            1 => Command::Put(r.put()?),
            2 => Command::DeleteRange(r.delete()?),
            3 => Command::Txn(r.txn(0)?),
            4 => Command::Compact(r.i64()?),
            5 => Command::LeaseGrant {
                id: r.i64()?,
                ttl: r.i64()?,
            },
            6 => Command::LeaseRevoke { id: r.i64()? },
            7 => Command::LeaseKeepAlive { id: r.i64()? },
            _ => return Err(bad("unknown command")),
        };
        if !r.buf.is_empty() {
            return Err(bad("trailing bytes"));
        }
        Ok(Envelope {
            origin,
            request_id,
            command,
        })
    }
}

fn bad(what: &str) -> StoreError {
    StoreError::InvalidRequest(format!("raft entry: {what}"))
}

fn put_u64(w: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        w.push((v as u8) | 0x80);
        v >>= 7;
    }
    w.push(v as u8);
}

fn put_i64(w: &mut Vec<u8>, v: i64) {
    put_u64(w, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_bytes(w: &mut Vec<u8>, b: &[u8]) {
    put_u64(w, b.len() as u64);
    w.extend_from_slice(b);
}

fn flags(bits: &[bool]) -> u8 {
    bits.iter()
        .enumerate()
        .fold(0, |acc, (i, b)| acc | (u8::from(*b) << i))
}

fn put_range(w: &mut Vec<u8>, r: &RangeRequest) {
    put_bytes(w, &r.key);
    put_bytes(w, &r.range_end);
    put_i64(w, r.limit);
    put_i64(w, r.revision);
    w.push(flags(&[r.keys_only, r.count_only, r.serializable]));
}

fn put_put(w: &mut Vec<u8>, p: &PutRequest) {
    put_bytes(w, &p.key);
    put_bytes(w, &p.value);
    put_i64(w, p.lease);
    w.push(flags(&[p.prev_kv, p.ignore_value, p.ignore_lease]));
}

fn put_delete(w: &mut Vec<u8>, d: &DeleteRangeRequest) {
    put_bytes(w, &d.key);
    put_bytes(w, &d.range_end);
    w.push(flags(&[d.prev_kv]));
}

fn put_compare(w: &mut Vec<u8>, c: &Compare) {
    put_bytes(w, &c.key);
    put_bytes(w, &c.range_end);
    match &c.target {
        CompareTarget::Version(v) => {
            w.push(0);
            put_i64(w, *v);
        }
        CompareTarget::CreateRevision(v) => {
            w.push(1);
            put_i64(w, *v);
        }
        CompareTarget::ModRevision(v) => {
            w.push(2);
            put_i64(w, *v);
        }
        CompareTarget::Value(v) => {
            w.push(3);
            put_bytes(w, v);
        }
        CompareTarget::Lease(v) => {
            w.push(4);
            put_i64(w, *v);
        }
    }
    w.push(match c.result {
        CompareResult::Equal => 0,
        CompareResult::Greater => 1,
        CompareResult::Less => 2,
        CompareResult::NotEqual => 3,
    });
}

fn put_ops(w: &mut Vec<u8>, ops: &[RequestOp]) {
    put_u64(w, ops.len() as u64);
    for op in ops {
        match op {
            RequestOp::Range(r) => {
                w.push(0);
                put_range(w, r);
            }
            RequestOp::Put(p) => {
                w.push(1);
                put_put(w, p);
            }
            RequestOp::DeleteRange(d) => {
                w.push(2);
                put_delete(w, d);
            }
            RequestOp::Txn(t) => {
                w.push(3);
                put_txn(w, t);
            }
        }
    }
}

fn put_txn(w: &mut Vec<u8>, t: &TxnRequest) {
    put_u64(w, t.compare.len() as u64);
    for c in &t.compare {
        put_compare(w, c);
    }
    put_ops(w, &t.success);
    put_ops(w, &t.failure);
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl Reader<'_> {
    fn u8(&mut self) -> Result<u8> {
        let (&b, rest) = self.buf.split_first().ok_or_else(|| bad("truncated"))?;
        self.buf = rest;
        Ok(b)
    }

    fn u64(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad("varint too long"))
    }

    fn i64(&mut self) -> Result<i64> {
        let v = self.u64()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    fn len(&mut self) -> Result<usize> {
        let n = usize::try_from(self.u64()?).map_err(|_| bad("length overflow"))?;
        if n > self.buf.len() {
            return Err(bad("length past end"));
        }
        Ok(n)
    }

    fn bytes(&mut self) -> Result<Vec<u8>> {
        let n = self.len()?;
        let (a, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(a.to_vec())
    }

    fn flags(&mut self, n: usize) -> Result<Vec<bool>> {
        let f = self.u8()?;
        if f >> n != 0 {
            return Err(bad("unknown flags"));
        }
        Ok((0..n).map(|i| f & (1 << i) != 0).collect())
    }

    fn range(&mut self) -> Result<RangeRequest> {
        let key = self.bytes()?;
        let range_end = self.bytes()?;
        let limit = self.i64()?;
        let revision = self.i64()?;
        let f = self.flags(3)?;
        Ok(RangeRequest {
            key,
            range_end,
            limit,
            revision,
            keys_only: f[0],
            count_only: f[1],
            serializable: f[2],
        })
    }

    fn put(&mut self) -> Result<PutRequest> {
        let key = self.bytes()?;
        let value = self.bytes()?;
        let lease = self.i64()?;
        let f = self.flags(3)?;
        Ok(PutRequest {
            key,
            value,
            lease,
            prev_kv: f[0],
            ignore_value: f[1],
            ignore_lease: f[2],
        })
    }

    fn delete(&mut self) -> Result<DeleteRangeRequest> {
        let key = self.bytes()?;
        let range_end = self.bytes()?;
        let f = self.flags(1)?;
        Ok(DeleteRangeRequest {
            key,
            range_end,
            prev_kv: f[0],
        })
    }

    fn compare(&mut self) -> Result<Compare> {
        let key = self.bytes()?;
        let range_end = self.bytes()?;
        let target = match self.u8()? {
            0 => CompareTarget::Version(self.i64()?),
            1 => CompareTarget::CreateRevision(self.i64()?),
            2 => CompareTarget::ModRevision(self.i64()?),
            3 => CompareTarget::Value(self.bytes()?),
            4 => CompareTarget::Lease(self.i64()?),
            _ => return Err(bad("unknown compare target")),
        };
        let result = match self.u8()? {
            0 => CompareResult::Equal,
            1 => CompareResult::Greater,
            2 => CompareResult::Less,
            3 => CompareResult::NotEqual,
            _ => return Err(bad("unknown compare result")),
        };
        Ok(Compare {
            key,
            range_end,
            target,
            result,
        })
    }

    fn count(&mut self) -> Result<usize> {
        // Every element takes at least one byte, which bounds allocations by the input.
        self.len()
    }

    fn ops(&mut self, depth: usize) -> Result<Vec<RequestOp>> {
        let n = self.count()?;
        let mut ops = Vec::with_capacity(n);
        for _ in 0..n {
            ops.push(match self.u8()? {
                0 => RequestOp::Range(self.range()?),
                1 => RequestOp::Put(self.put()?),
                2 => RequestOp::DeleteRange(self.delete()?),
                3 => RequestOp::Txn(self.txn(depth + 1)?),
                _ => return Err(bad("unknown txn op")),
            });
        }
        Ok(ops)
    }

    fn txn(&mut self, depth: usize) -> Result<TxnRequest> {
        if depth > MAX_DEPTH {
            return Err(bad("txn nested too deeply"));
        }
        let n = self.count()?;
        let mut compare = Vec::with_capacity(n);
        for _ in 0..n {
            compare.push(self.compare()?);
        }
        Ok(TxnRequest {
            compare,
            success: self.ops(depth)?,
            failure: self.ops(depth)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(any::<u8>(), 0..6)
    }

    fn op() -> impl Strategy<Value = RequestOp> {
        let leaf = prop_oneof![
            (
                bytes(),
                bytes(),
                any::<i64>(),
                any::<i64>(),
                any::<[bool; 3]>()
            )
                .prop_map(|(key, range_end, limit, revision, f)| RequestOp::Range(
                    RangeRequest {
                        key,
                        range_end,
                        limit,
                        revision,
                        keys_only: f[0],
                        count_only: f[1],
                        serializable: f[2],
                    }
                )),
            (bytes(), bytes(), any::<i64>(), any::<[bool; 3]>()).prop_map(
                |(key, value, lease, f)| RequestOp::Put(PutRequest {
                    key,
                    value,
                    lease,
                    prev_kv: f[0],
                    ignore_value: f[1],
                    ignore_lease: f[2],
                })
            ),
            (bytes(), bytes(), any::<bool>()).prop_map(|(key, range_end, prev_kv)| {
                RequestOp::DeleteRange(DeleteRangeRequest {
                    key,
                    range_end,
                    prev_kv,
                })
            }),
        ];
        leaf.prop_recursive(3, 16, 3, |inner| {
            let cmp = (bytes(), bytes(), any::<i64>(), 0u8..5, 0u8..4, bytes()).prop_map(
                |(key, range_end, n, t, r, v)| Compare {
                    key,
                    range_end,
                    target: match t {
                        0 => CompareTarget::Version(n),
                        1 => CompareTarget::CreateRevision(n),
                        2 => CompareTarget::ModRevision(n),
                        3 => CompareTarget::Value(v),
                        _ => CompareTarget::Lease(n),
                    },
                    result: [
                        CompareResult::Equal,
                        CompareResult::Greater,
                        CompareResult::Less,
                        CompareResult::NotEqual,
                    ][r as usize],
                },
            );
            (
                prop::collection::vec(cmp, 0..3),
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
        })
    }

    proptest! {
        #[test]
        fn every_command_round_trips(origin in any::<u64>(), request_id in any::<u64>(), op in op(), id in any::<i64>(), ttl in any::<i64>(), which in 0u8..5) {
            let command = match (which, op) {
                (0, RequestOp::Txn(t)) => Command::Txn(t),
                (0, RequestOp::Put(p)) => Command::Put(p),
                (0, RequestOp::DeleteRange(d)) => Command::DeleteRange(d),
                (1, _) => Command::Compact(id),
                (2, _) => Command::LeaseGrant { id, ttl },
                (3, _) => Command::LeaseRevoke { id },
                _ => Command::LeaseKeepAlive { id },
            };
            let e = Envelope { origin, request_id, command };
            let bytes = e.encode();
            prop_assert_eq!(Envelope::decode(&bytes).unwrap(), e);
            // Every strict prefix is refused, never a panic.
            for n in 0..bytes.len() {
                prop_assert!(Envelope::decode(&bytes[..n]).is_err());
            }
        }

        #[test]
        fn garbage_never_panics(data in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = Envelope::decode(&data);
        }
    }
}
