//! Datastore backups: the snapshot files of `k3rs etcd-snapshot` and scheduled snapshots
//! (naming, atomic writing, listing, pruning, verification), and the offline cluster reset
//! behind `k3rs server --cluster-reset [--cluster-reset-restore-path FILE]`.
//!
//! Owns: the files of a snapshot directory (default `<data-dir>/server/db/snapshots`) and the
//! swap of `<db>/state` + `<db>/raft` during a reset. May call: the MVCC snapshot format, the
//! sealed file format of [`super::etcd`] (the same bytes `etcdctl snapshot save` writes from
//! k3rs), and [`super::raft::reset`].
//!
//! A snapshot file is verified twice over before anything trusts it: the sealed envelope's
//! length and sha256 ([`super::etcd::unseal`]), then the store snapshot's own checksum and a
//! full decode of every record ([`verify_file`]).

mod files;
mod reset;

pub use files::{
    SnapshotFile, delete, list, prune, snapshot_name, verify_file, verify_snapshot_bytes,
    write_snapshot,
};
pub use reset::{ResetOutcome, cluster_reset};

use super::etcd::SealError;
use super::mvcc::SnapshotSummary;

/// What the backup operations fail with.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    /// The file failed the envelope checks (truncated, bit-flipped, not ours).
    #[error("{path}: {reason}")]
    Sealed { path: String, reason: SealError },
    /// The envelope is intact but the store snapshot inside is not.
    #[error("{path}: snapshot content is corrupt: {reason}")]
    Content {
        path: String,
        reason: super::StoreError,
    },
    #[error("no snapshot named {0:?}")]
    NotFound(String),
    #[error("invalid snapshot name {0:?}")]
    BadName(String),
    /// Opening, replaying or rebuilding the datastore failed.
    #[error("datastore: {0}")]
    Store(#[from] super::StoreError),
}

/// A verified snapshot file's content summary.
pub type Summary = SnapshotSummary;

fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |error| BackupError::Io {
        path: path.display().to_string(),
        error,
    }
}
