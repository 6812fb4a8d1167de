//! The etcd `Lease` service: Grant, Revoke, KeepAlive (stream), TimeToLive, Leases.

use super::backend::EtcdBackend;
use super::convert::{header, store_status};
use super::require_leader;
use crate::store::StoreError;
use etcd_client::proto::{
    PbLeaseGrantRequest, PbLeaseGrantResponse, PbLeaseKeepAliveRequest, PbLeaseKeepAliveResponse,
    PbLeaseLeasesRequest, PbLeaseLeasesResponse, PbLeaseRevokeRequest, PbLeaseRevokeResponse,
    PbLeaseService, PbLeaseStatus, PbLeaseTimeToLiveRequest, PbLeaseTimeToLiveResponse,
};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// etcd's `MaxLeaseTTL` (seconds).
const MAX_LEASE_TTL: i64 = 9_000_000_000;
/// etcd's minimum lease TTL with its default timing (1.5 election timeouts of 1 s, rounded
/// up); shorter grants are raised to it, so a lease cannot expire during a leader change.
const MIN_LEASE_TTL: i64 = 2;

pub struct LeaseService {
    pub backend: Arc<dyn EtcdBackend>,
}

#[tonic::async_trait]
impl PbLeaseService for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<PbLeaseGrantRequest>,
    ) -> Result<Response<PbLeaseGrantResponse>, Status> {
        require_leader(&request, self.backend.as_ref())?;
        let req = request.into_inner();
        if req.ttl > MAX_LEASE_TTL {
            return Err(Status::out_of_range("etcdserver: too large lease TTL"));
        }
        let resp = self
            .backend
            .lease_grant(req.id, req.ttl.max(MIN_LEASE_TTL))
            .await
            .map_err(store_status)?;
        Ok(Response::new(PbLeaseGrantResponse {
            header: header(&resp.header),
            id: resp.id,
            ttl: resp.ttl,
            error: String::new(),
        }))
    }

    async fn lease_revoke(
        &self,
        request: Request<PbLeaseRevokeRequest>,
    ) -> Result<Response<PbLeaseRevokeResponse>, Status> {
        require_leader(&request, self.backend.as_ref())?;
        let h = self
            .backend
            .lease_revoke(request.into_inner().id)
            .await
            .map_err(store_status)?;
        Ok(Response::new(PbLeaseRevokeResponse { header: header(&h) }))
    }

    type LeaseKeepAliveStream = ReceiverStream<Result<PbLeaseKeepAliveResponse, Status>>;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<PbLeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        require_leader(&request, self.backend.as_ref())?;
        let mut inbound = request.into_inner();
        let backend = self.backend.clone();
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                let req = tokio::select! {
                    m = inbound.message() => match m {
                        Ok(Some(r)) => r,
                        Ok(None) | Err(_) => return,
                    },
                    () = tx.closed() => return,
                };
                let resp = match backend.lease_keep_alive(req.id).await {
                    Ok(k) => Ok(PbLeaseKeepAliveResponse {
                        header: header(&k.header),
                        id: k.id,
                        ttl: k.ttl,
                    }),
                    // etcd answers an unknown lease with TTL 0 rather than an error.
                    Err(StoreError::LeaseNotFound { .. }) => Ok(PbLeaseKeepAliveResponse {
                        header: header(&backend.status().header),
                        id: req.id,
                        ttl: 0,
                    }),
                    Err(e) => Err(store_status(e)),
                };
                let fatal = resp.is_err();
                if tx.send(resp).await.is_err() || fatal {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<PbLeaseTimeToLiveRequest>,
    ) -> Result<Response<PbLeaseTimeToLiveResponse>, Status> {
        require_leader(&request, self.backend.as_ref())?;
        let req = request.into_inner();
        let resp = match self.backend.lease_time_to_live(req.id, req.keys).await {
            Ok(r) => PbLeaseTimeToLiveResponse {
                header: header(&r.header),
                id: r.id,
                ttl: r.ttl,
                granted_ttl: r.granted_ttl,
                keys: r.keys,
            },
            // etcd: an expired or unknown lease is TTL -1, not an error.
            Err(StoreError::LeaseNotFound { .. }) => PbLeaseTimeToLiveResponse {
                header: header(&self.backend.status().header),
                id: req.id,
                ttl: -1,
                ..Default::default()
            },
            Err(e) => return Err(store_status(e)),
        };
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        request: Request<PbLeaseLeasesRequest>,
    ) -> Result<Response<PbLeaseLeasesResponse>, Status> {
        require_leader(&request, self.backend.as_ref())?;
        let l = self.backend.leases().await.map_err(store_status)?;
        Ok(Response::new(PbLeaseLeasesResponse {
            header: header(&l.header),
            leases: l
                .leases
                .into_iter()
                .map(|id| PbLeaseStatus { id })
                .collect(),
        }))
    }
}
