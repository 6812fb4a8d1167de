//! The store's request and response types: etcd's v3 data model in plain Rust.
//!
//! These mirror `etcdserverpb`/`mvccpb` closely so the etcd facade is a thin conversion, but
//! they carry no gRPC or serde baggage. Keys and values are raw bytes.

/// A store revision. Starts at 1 (empty store); every write transaction adds one.
pub type Revision = i64;

/// A key as stored, with etcd's MVCC metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyValue {
    pub key: Vec<u8>,
    /// Revision of the last creation of this key (after a delete, a new put re-creates it).
    pub create_revision: Revision,
    /// Revision of the last modification.
    pub mod_revision: Revision,
    /// Number of modifications since creation (1 after create). 0 only in delete events.
    pub version: i64,
    pub value: Vec<u8>,
    /// Lease id the key is attached to, 0 for none.
    pub lease: i64,
}

/// Header of every response: the store revision the answer reflects and raft facts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseHeader {
    pub cluster_id: u64,
    pub member_id: u64,
    pub revision: Revision,
    pub raft_term: u64,
}

/// `range_end` conventions are etcd's: empty = only `key`; `[0]` = every key `>= key`;
/// otherwise the half-open interval `[key, range_end)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeRequest {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    /// Maximum number of keys returned; 0 = no limit.
    pub limit: i64,
    /// Read at this revision; 0 = current.
    pub revision: Revision,
    pub keys_only: bool,
    pub count_only: bool,
    /// `false` (the default) = linearizable (ReadIndex); `true` = local, possibly stale.
    pub serializable: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeResponse {
    pub header: ResponseHeader,
    pub kvs: Vec<KeyValue>,
    /// More keys exist in the range past `limit`.
    pub more: bool,
    /// Total number of keys in the range (ignores `limit`).
    pub count: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PutRequest {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub lease: i64,
    pub prev_kv: bool,
    /// Keep the current value (the key must exist).
    pub ignore_value: bool,
    /// Keep the current lease (the key must exist).
    pub ignore_lease: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PutResponse {
    pub header: ResponseHeader,
    pub prev_kv: Option<KeyValue>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteRangeRequest {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    pub prev_kv: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteRangeResponse {
    pub header: ResponseHeader,
    pub deleted: i64,
    pub prev_kvs: Vec<KeyValue>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareResult {
    Equal,
    Greater,
    Less,
    NotEqual,
}

/// What a [`Compare`] looks at, with the operand. A missing key has version,
/// create_revision, mod_revision and lease 0 and an empty value... except that etcd treats a
/// `Value` compare on a missing key as false; the MVCC layer follows etcd exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompareTarget {
    Version(i64),
    CreateRevision(Revision),
    ModRevision(Revision),
    Value(Vec<u8>),
    Lease(i64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compare {
    pub key: Vec<u8>,
    /// Compare every key in `[key, range_end)`; empty = only `key`.
    pub range_end: Vec<u8>,
    pub target: CompareTarget,
    pub result: CompareResult,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestOp {
    Range(RangeRequest),
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
    Txn(TxnRequest),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponseOp {
    Range(RangeResponse),
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
}

/// All compares true → `success` ops, else `failure` ops; atomically, at one revision
/// (the revision grows by one iff some op writes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnRequest {
    pub compare: Vec<Compare>,
    pub success: Vec<RequestOp>,
    pub failure: Vec<RequestOp>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnResponse {
    pub header: ResponseHeader,
    pub succeeded: bool,
    pub responses: Vec<ResponseOp>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Put,
    Delete,
}

/// One change. For deletes `kv` holds the key, `mod_revision` = the delete's revision and
/// version 0, as etcd sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventType,
    pub kv: KeyValue,
    pub prev_kv: Option<KeyValue>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchRequest {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    /// First revision to deliver; 0 = only changes after the current revision.
    pub start_revision: Revision,
    pub prev_kv: bool,
    /// Send a progress notification (empty batch with the current revision) when idle.
    pub progress_notify: bool,
    pub filter_puts: bool,
    pub filter_deletes: bool,
}

/// What a watcher yields: events of one or more whole revisions, in revision order, or a
/// progress notification (no events; `revision` = every change up to it was delivered).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchResponse {
    pub header: ResponseHeader,
    pub events: Vec<Event>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseGrantResponse {
    pub header: ResponseHeader,
    pub id: i64,
    pub ttl: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseKeepAliveResponse {
    pub header: ResponseHeader,
    pub id: i64,
    /// The renewed TTL (the granted TTL), in seconds.
    pub ttl: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseLeasesResponse {
    pub header: ResponseHeader,
    /// Ids of every existing lease, ascending.
    pub leases: Vec<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseTimeToLiveResponse {
    pub header: ResponseHeader,
    pub id: i64,
    /// Remaining seconds; -1 when the lease does not exist (expired or revoked).
    pub ttl: i64,
    pub granted_ttl: i64,
    pub keys: Vec<Vec<u8>>,
}

/// A raft group member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

/// A point-in-time view of the store and its raft member, for status endpoints.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreStatus {
    pub header: ResponseHeader,
    pub compact_revision: Revision,
    pub leader_id: u64,
    pub raft_index: u64,
    pub raft_applied_index: u64,
    pub raft_term: u64,
    pub is_learner: bool,
    /// Bytes on disk (sled + raft log).
    pub db_size: i64,
}
