//! The store's typed errors.

use super::types::Revision;

/// Everything a store call can fail with. Messages are lowercase, etcd-like.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The requested revision was compacted away.
    #[error("mvcc: required revision has been compacted (compact revision {compact_revision})")]
    Compacted { compact_revision: Revision },
    /// The requested revision is newer than the store's.
    #[error("mvcc: required revision is a future revision (current {current})")]
    FutureRevision { current: Revision },
    #[error("lease not found: {id}")]
    LeaseNotFound { id: i64 },
    #[error("lease already exists: {id}")]
    LeaseExists { id: i64 },
    /// `ignore_value`/`ignore_lease` on a key that does not exist.
    #[error("key not found")]
    KeyNotFound,
    /// A put, delete or compare without a key.
    #[error("key is not provided")]
    EmptyKey,
    /// `ignore_value` together with a value.
    #[error("value is provided")]
    ValueProvided,
    /// `ignore_lease` together with a lease.
    #[error("lease is provided")]
    LeaseProvided,
    /// A txn writes the same key twice.
    #[error("duplicate key given in txn request")]
    DuplicateKey,
    #[error("too many operations in txn request")]
    TooManyOps,
    /// No leader is known (election in progress, partition): retry later.
    #[error("no leader")]
    NoLeader,
    /// The call did not complete in time; it may or may not have been applied.
    #[error("request timed out")]
    Timeout,
    /// The store is shutting down.
    #[error("store stopped")]
    Stopped,
    #[error("member not found: {id:x}")]
    MemberNotFound { id: u64 },
    /// Invalid request (e.g. an unparsable raft entry from a peer).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("raft: {0}")]
    Raft(String),
    #[error("io error at {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// On-disk data failed a checksum or could not be decoded.
    #[error("corrupt data: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
