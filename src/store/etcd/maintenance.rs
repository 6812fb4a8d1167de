//! The etcd `Maintenance` service: Status, Snapshot, Alarm, Defragment, Hash/HashKV,
//! MoveLeader.
//!
//! Snapshot streams the k3rs snapshot (not a bbolt file) in an envelope etcdctl 3.4 accepts:
//! `K3RSSNAP`, the length (u64 LE), the store's snapshot, zero padding to a multiple of 512
//! bytes (etcdctl checks `size % 512 == 32` as for a bolt file), then the sha256 of all that,
//! the trailer etcd appends. `etcdctl snapshot status/restore` cannot read it (they parse
//! bbolt); [`open_snapshot`] can, for `k3rs etcd-snapshot` / `--cluster-reset-restore-path`.

use super::backend::EtcdBackend;
use super::convert::{header, store_status};
use super::require_leader;
use crate::store::RangeRequest;
use etcd_client::proto::{
    PbAlarmRequest, PbAlarmResponse, PbDefragmentRequest, PbDefragmentResponse, PbDowngradeRequest,
    PbDowngradeResponse, PbHashKvRequest, PbHashKvResponse, PbHashRequest, PbHashResponse,
    PbMaintenanceService, PbMoveLeaderRequest, PbMoveLeaderResponse, PbSnapshotRequest,
    PbSnapshotResponse, PbStatusRequest, PbStatusResponse,
};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// The version reported by Status: etcd clients only compare the 3.x prefix.
pub const VERSION: &str = "3.4.0-k3rs";
/// Snapshot chunk size (etcd uses 32 KiB).
const CHUNK: usize = 32 * 1024;

const MAGIC: &[u8; 8] = b"K3RSSNAP";

/// Wraps a store snapshot in the envelope described in the module doc.
pub fn seal_snapshot(snapshot: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(snapshot.len() + 600);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(snapshot.len() as u64).to_le_bytes());
    out.extend_from_slice(snapshot);
    out.resize(out.len().div_ceil(512) * 512, 0);
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

/// The store snapshot inside a file written by `etcdctl snapshot save` from k3rs; `None` when
/// the file is not one (wrong magic, length or checksum).
pub fn open_snapshot(file: &[u8]) -> Option<&[u8]> {
    unseal(file).ok()
}

/// Why a file is not an intact sealed snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Not written by k3rs (a real etcd's bbolt file, or anything else).
    #[error("not a k3rs snapshot (bad magic; etcd's own bbolt snapshots cannot be restored)")]
    BadMagic,
    /// Shorter than its header says: an interrupted copy or download.
    #[error("snapshot is truncated: {actual} bytes, expected {expected}")]
    Truncated { actual: u64, expected: u64 },
    /// Longer than its header says.
    #[error("snapshot has {extra} unexpected trailing bytes")]
    Trailing { extra: u64 },
    /// The sha256 trailer does not match the content.
    #[error("snapshot checksum mismatch: the file is corrupt")]
    Checksum,
}

/// The store snapshot inside a sealed file, after checking magic, length and checksum.
///
/// # Errors
/// [`SealError`] saying which check failed.
pub fn unseal(file: &[u8]) -> Result<&[u8], SealError> {
    if file.len() < 8 || &file[..8] != MAGIC {
        return Err(SealError::BadMagic);
    }
    let actual = file.len() as u64;
    let Some(len) = file
        .get(8..16)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
    else {
        return Err(SealError::Truncated {
            actual,
            expected: 16,
        });
    };
    let expected = 16u64
        .checked_add(len)
        .map(|n| n.div_ceil(512).saturating_mul(512).saturating_add(32))
        .unwrap_or(u64::MAX);
    if actual < expected {
        return Err(SealError::Truncated { actual, expected });
    }
    if actual > expected {
        return Err(SealError::Trailing {
            extra: actual - expected,
        });
    }
    let (body, sum) = file.split_at(file.len() - 32);
    if Sha256::digest(body).as_slice() != sum {
        return Err(SealError::Checksum);
    }
    // `expected` fits the file, so `16 + len` is in range.
    body.get(16..16 + len as usize)
        .ok_or(SealError::Truncated { actual, expected })
}

pub struct MaintenanceService {
    pub backend: Arc<dyn EtcdBackend>,
}

impl MaintenanceService {
    /// CRC-32 of every key, value and modification revision at `revision` (0 = current).
    /// Equal across members at one revision; not comparable with etcd's own hash.
    async fn hash_at(&self, revision: i64) -> Result<(u32, i64), Status> {
        let resp = self
            .backend
            .range(RangeRequest {
                key: vec![0],
                range_end: vec![0],
                revision,
                serializable: true,
                ..Default::default()
            })
            .await
            .map_err(store_status)?;
        let mut h = crc32fast::Hasher::new();
        for kv in &resp.kvs {
            h.update(&(kv.key.len() as u64).to_be_bytes());
            h.update(&kv.key);
            h.update(&kv.mod_revision.to_be_bytes());
            h.update(&kv.create_revision.to_be_bytes());
            h.update(&kv.version.to_be_bytes());
            h.update(&kv.lease.to_be_bytes());
            h.update(&(kv.value.len() as u64).to_be_bytes());
            h.update(&kv.value);
        }
        Ok((h.finalize(), resp.header.revision))
    }
}

#[tonic::async_trait]
impl PbMaintenanceService for MaintenanceService {
    async fn alarm(
        &self,
        request: Request<PbAlarmRequest>,
    ) -> Result<Response<PbAlarmResponse>, Status> {
        require_leader(&request, self.backend.as_ref())?;
        // k3rs raises no alarms (no space quota, corruption stops the member instead).
        Ok(Response::new(PbAlarmResponse {
            header: header(&self.backend.status().header),
            alarms: Vec::new(),
        }))
    }

    async fn status(
        &self,
        _request: Request<PbStatusRequest>,
    ) -> Result<Response<PbStatusResponse>, Status> {
        let s = self.backend.status();
        Ok(Response::new(PbStatusResponse {
            header: header(&s.header),
            version: VERSION.into(),
            db_size: s.db_size,
            leader: s.leader_id,
            raft_index: s.raft_index,
            raft_term: s.raft_term,
            raft_applied_index: s.raft_applied_index,
            errors: Vec::new(),
            db_size_in_use: s.db_size,
            is_learner: s.is_learner,
            ..Default::default()
        }))
    }

    async fn defragment(
        &self,
        _request: Request<PbDefragmentRequest>,
    ) -> Result<Response<PbDefragmentResponse>, Status> {
        // sled reclaims space by itself; there is nothing to rewrite.
        Ok(Response::new(PbDefragmentResponse {
            header: header(&self.backend.status().header),
        }))
    }

    async fn hash(
        &self,
        request: Request<PbHashRequest>,
    ) -> Result<Response<PbHashResponse>, Status> {
        require_leader(&request, self.backend.as_ref())?;
        let (hash, _) = self.hash_at(0).await?;
        Ok(Response::new(PbHashResponse {
            header: header(&self.backend.status().header),
            hash,
        }))
    }

    async fn hash_kv(
        &self,
        request: Request<PbHashKvRequest>,
    ) -> Result<Response<PbHashKvResponse>, Status> {
        require_leader(&request, self.backend.as_ref())?;
        let (hash, rev) = self.hash_at(request.into_inner().revision).await?;
        let s = self.backend.status();
        Ok(Response::new(PbHashKvResponse {
            header: header(&s.header),
            hash,
            compact_revision: s.compact_revision,
            hash_revision: rev,
        }))
    }

    type SnapshotStream = ReceiverStream<Result<PbSnapshotResponse, Status>>;

    async fn snapshot(
        &self,
        request: Request<PbSnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        require_leader(&request, self.backend.as_ref())?;
        let data = seal_snapshot(&self.backend.snapshot().await.map_err(store_status)?);
        let hdr = header(&self.backend.status().header);
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let total = data.len();
            let mut sent = 0;
            for chunk in data.chunks(CHUNK) {
                sent += chunk.len();
                let resp = PbSnapshotResponse {
                    header: hdr,
                    remaining_bytes: (total - sent) as u64,
                    blob: chunk.to_vec(),
                    version: VERSION.into(),
                };
                if tx.send(Ok(resp)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn move_leader(
        &self,
        request: Request<PbMoveLeaderRequest>,
    ) -> Result<Response<PbMoveLeaderResponse>, Status> {
        require_leader(&request, self.backend.as_ref())?;
        self.backend
            .move_leader(request.into_inner().target_id)
            .await
            .map_err(store_status)?;
        Ok(Response::new(PbMoveLeaderResponse {
            header: header(&self.backend.status().header),
        }))
    }

    async fn downgrade(
        &self,
        _request: Request<PbDowngradeRequest>,
    ) -> Result<Response<PbDowngradeResponse>, Status> {
        Err(Status::unimplemented(
            "etcdserver: downgrade is not supported",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_snapshots_look_like_bolt_files_to_etcdctl_and_open_again() {
        for n in [0, 1, 495, 496, 497, 5000] {
            let snap: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let file = seal_snapshot(&snap);
            assert_eq!(file.len() % 512, 32);
            assert_eq!(open_snapshot(&file), Some(snap.as_slice()));
        }
        let mut bad = seal_snapshot(b"data");
        bad[20] ^= 1;
        assert_eq!(open_snapshot(&bad), None);
        assert_eq!(open_snapshot(b"short"), None);
    }

    #[test]
    fn unsealing_names_what_is_wrong_with_a_damaged_file() {
        let file = seal_snapshot(&[7u8; 3000]);
        assert_eq!(unseal(&file).unwrap(), &[7u8; 3000][..]);
        assert!(matches!(
            unseal(&file[..file.len() - 100]),
            Err(SealError::Truncated { .. })
        ));
        assert!(matches!(
            unseal(&file[..12]),
            Err(SealError::Truncated { .. })
        ));
        let mut longer = file.clone();
        longer.push(0);
        assert_eq!(unseal(&longer), Err(SealError::Trailing { extra: 1 }));
        let mut flipped = file.clone();
        flipped[1000] ^= 0x10;
        assert_eq!(unseal(&flipped), Err(SealError::Checksum));
        assert_eq!(
            unseal(b"\x00\x00\x00\x00\x10\x00\x00\x00bolt"),
            Err(SealError::BadMagic)
        );
    }
}
