//! Conversions between the store's plain types and etcd's protobuf messages, and the mapping
//! of store errors to the gRPC statuses etcd clients recognise (they match on the message).

use crate::store::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, DeleteRangeResponse, Event,
    EventType, KeyValue, Member, PutRequest, PutResponse, ResponseHeader, StoreError,
};
use etcd_client::proto::{
    PbCompare, PbDeleteRequest, PbDeleteResponse, PbEvent, PbKeyValue, PbMember, PbPutRequest,
    PbPutResponse, PbResponseHeader, PbTargetUnion, PbTxnOpRequest, PbTxnRequest, PbTxnRequestOp,
};
use tonic::{Code, Status};

/// etcd's default `--max-txn-ops`.
pub const MAX_TXN_OPS: usize = 128;

pub fn header(h: &ResponseHeader) -> Option<PbResponseHeader> {
    Some(PbResponseHeader {
        cluster_id: h.cluster_id,
        member_id: h.member_id,
        revision: h.revision,
        raft_term: h.raft_term,
    })
}

pub fn kv(kv: KeyValue) -> PbKeyValue {
    PbKeyValue {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value,
        lease: kv.lease,
    }
}

pub fn event(e: Event) -> PbEvent {
    PbEvent {
        // mvccpb.Event.EventType: PUT = 0, DELETE = 1.
        r#type: match e.kind {
            EventType::Put => 0,
            EventType::Delete => 1,
        },
        kv: Some(kv(e.kv)),
        prev_kv: e.prev_kv.map(kv),
    }
}

pub fn member(m: Member) -> PbMember {
    PbMember {
        id: m.id,
        name: m.name,
        peer_ur_ls: m.peer_urls,
        client_ur_ls: m.client_urls,
        is_learner: m.is_learner,
    }
}

pub fn put_request(p: PbPutRequest) -> PutRequest {
    PutRequest {
        key: p.key,
        value: p.value,
        lease: p.lease,
        prev_kv: p.prev_kv,
        ignore_value: p.ignore_value,
        ignore_lease: p.ignore_lease,
    }
}

pub fn put_response(p: PutResponse) -> PbPutResponse {
    PbPutResponse {
        header: header(&p.header),
        prev_kv: p.prev_kv.map(kv),
    }
}

pub fn delete_request(d: PbDeleteRequest) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: d.key,
        range_end: d.range_end,
        prev_kv: d.prev_kv,
    }
}

pub fn delete_response(d: DeleteRangeResponse) -> PbDeleteResponse {
    PbDeleteResponse {
        header: header(&d.header),
        deleted: d.deleted,
        prev_kvs: d.prev_kvs.into_iter().map(kv).collect(),
    }
}

/// A txn compare; `Err` on unknown enum values or a target/union mismatch, as etcd rejects.
pub fn compare(c: PbCompare) -> Result<Compare, Status> {
    let result = match c.result {
        0 => CompareResult::Equal,
        1 => CompareResult::Greater,
        2 => CompareResult::Less,
        3 => CompareResult::NotEqual,
        _ => {
            return Err(Status::invalid_argument(
                "etcdserver: unknown compare result",
            ));
        }
    };
    // etcd picks the operand by `target`, reading the union's value (zero when another
    // member of the union is set).
    let u = c.target_union;
    let int = |want: fn(&PbTargetUnion) -> Option<i64>| u.as_ref().and_then(want).unwrap_or(0);
    let target = match c.target {
        0 => CompareTarget::Version(int(|t| match t {
            PbTargetUnion::Version(v) => Some(*v),
            _ => None,
        })),
        1 => CompareTarget::CreateRevision(int(|t| match t {
            PbTargetUnion::CreateRevision(v) => Some(*v),
            _ => None,
        })),
        2 => CompareTarget::ModRevision(int(|t| match t {
            PbTargetUnion::ModRevision(v) => Some(*v),
            _ => None,
        })),
        3 => CompareTarget::Value(match &u {
            Some(PbTargetUnion::Value(v)) => v.clone(),
            _ => Vec::new(),
        }),
        4 => CompareTarget::Lease(int(|t| match t {
            PbTargetUnion::Lease(v) => Some(*v),
            _ => None,
        })),
        _ => {
            return Err(Status::invalid_argument(
                "etcdserver: unknown compare target",
            ));
        }
    };
    Ok(Compare {
        key: c.key,
        range_end: c.range_end,
        target,
        result,
    })
}

/// The shape check etcd does before a txn reaches raft: op count and empty keys.
pub fn check_txn(t: &PbTxnRequest) -> Result<(), Status> {
    if t.success.len() > MAX_TXN_OPS
        || t.failure.len() > MAX_TXN_OPS
        || t.compare.len() > MAX_TXN_OPS
    {
        return Err(store_status(StoreError::TooManyOps));
    }
    for c in &t.compare {
        if c.key.is_empty() {
            return Err(empty_key());
        }
    }
    for op in t.success.iter().chain(&t.failure) {
        check_op(op)?;
    }
    Ok(())
}

fn check_op(op: &PbTxnRequestOp) -> Result<(), Status> {
    match &op.request {
        Some(PbTxnOpRequest::RequestRange(r)) if r.key.is_empty() => Err(empty_key()),
        Some(PbTxnOpRequest::RequestPut(r)) => check_put(r),
        Some(PbTxnOpRequest::RequestDeleteRange(r)) if r.key.is_empty() => Err(empty_key()),
        Some(PbTxnOpRequest::RequestTxn(t)) => check_txn(t),
        _ => Ok(()),
    }
}

pub fn empty_key() -> Status {
    Status::invalid_argument("etcdserver: key is not provided")
}

/// etcd's checks of a put before it reaches raft.
pub fn check_put(p: &PbPutRequest) -> Result<(), Status> {
    if p.key.is_empty() {
        return Err(empty_key());
    }
    if p.ignore_value && !p.value.is_empty() {
        return Err(Status::invalid_argument("etcdserver: value is provided"));
    }
    if p.ignore_lease && p.lease != 0 {
        return Err(Status::invalid_argument("etcdserver: lease is provided"));
    }
    Ok(())
}

/// The gRPC status etcd's server returns for `e` (code and exact message; clients such as
/// clientv3 map errors back by message).
pub fn store_status(e: StoreError) -> Status {
    let (code, msg): (Code, String) = match &e {
        StoreError::Compacted { .. } => (
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted".into(),
        ),
        StoreError::FutureRevision { .. } => (
            Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision".into(),
        ),
        StoreError::LeaseNotFound { .. } => (
            Code::NotFound,
            "etcdserver: requested lease not found".into(),
        ),
        StoreError::LeaseExists { .. } => (
            Code::FailedPrecondition,
            "etcdserver: lease already exists".into(),
        ),
        StoreError::KeyNotFound => (Code::InvalidArgument, "etcdserver: key not found".into()),
        StoreError::EmptyKey => (
            Code::InvalidArgument,
            "etcdserver: key is not provided".into(),
        ),
        StoreError::ValueProvided => (
            Code::InvalidArgument,
            "etcdserver: value is provided".into(),
        ),
        StoreError::LeaseProvided => (
            Code::InvalidArgument,
            "etcdserver: lease is provided".into(),
        ),
        StoreError::DuplicateKey => (
            Code::InvalidArgument,
            "etcdserver: duplicate key given in txn request".into(),
        ),
        StoreError::TooManyOps => (
            Code::InvalidArgument,
            "etcdserver: too many operations in txn request".into(),
        ),
        StoreError::NoLeader => (Code::Unavailable, "etcdserver: no leader".into()),
        StoreError::Timeout => (Code::Unavailable, "etcdserver: request timed out".into()),
        StoreError::Stopped => (Code::Unavailable, "etcdserver: server stopped".into()),
        StoreError::MemberNotFound { .. } => {
            (Code::NotFound, "etcdserver: member not found".into())
        }
        StoreError::InvalidRequest(m) => (Code::InvalidArgument, format!("etcdserver: {m}")),
        // Storage and raft failures, and variants added to the store later.
        _ => (Code::Internal, format!("etcdserver: {e}")),
    };
    Status::new(code, msg)
}
