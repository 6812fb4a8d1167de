//! The etcd v3 gRPC API (KV, Watch, Lease, Cluster, Maintenance) over the k3rs store, for
//! etcdctl 3.4, kube-apiserver-style clients and the `etcd-client` crate.
//!
//! Owns: the gRPC listener and the mapping between etcd's protobuf messages and the store's
//! types. May call only an [`EtcdBackend`] (the store).
//!
//! Where k3rs answers differently from etcd 3.4, and why:
//! - No `Auth` service (k3rs keeps no etcd users); `etcdctl --user` fails. Access control is
//!   the transport: plain gRPC on loopback, mutual TLS ([`serve_tls_listener`], `tls.rs`)
//!   anywhere else.
//! - `Snapshot` streams the k3rs snapshot in an envelope `etcdctl snapshot save` accepts
//!   (see `maintenance.rs`), not a bbolt file: `etcdctl snapshot status/restore` reject it
//!   ("invalid database"); restore with `k3rs server --cluster-reset
//!   --cluster-reset-restore-path FILE` instead.
//! - `Hash`/`HashKV` are CRC-32s of the key space at a revision (equal across k3rs members,
//!   not comparable with etcd's); `Defragment` is a no-op (sled manages space); the alarm
//!   list is always empty; `MemberUpdate`, `Downgrade` and `RangeStream` are unimplemented.
//! - `Status.version` is [`VERSION`]; member ids come from raft-rs, not etcd's hash of the
//!   member's name and URLs.
//! - `RequestProgress` makes every watch of the stream send its own progress response
//!   (etcd 3.4 sends one with watch id -1; clientv3 handles both); with no watch the answer
//!   has watch id -1 like etcd's.

pub mod backend;
pub mod client;
mod cluster;
mod coalesce;
mod convert;
mod kv;
mod lease;
mod maintenance;
mod store_backend;
pub mod tls;
mod watch;

pub use backend::{EtcdBackend, EventStream, KeepAlive, LeaseList};
pub use maintenance::{SealError, VERSION, open_snapshot, seal_snapshot, unseal};

use etcd_client::proto::{
    PbClusterServer, PbKvServer, PbLeaseServer, PbMaintenanceServer, PbWatchServer,
};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataMap;

/// Errors of the etcd listener.
#[derive(Debug, thiserror::Error)]
pub enum EtcdServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("etcd grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves the etcd API on `addr` until `shutdown` is cancelled.
///
/// # Errors
/// When the address cannot be bound or the gRPC server fails.
pub async fn serve(
    backend: Arc<dyn EtcdBackend>,
    addr: SocketAddr,
    shutdown: CancellationToken,
) -> Result<(), EtcdServerError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| EtcdServerError::Bind { addr, source })?;
    serve_listener(backend, listener, shutdown).await
}

/// Serves the etcd API on an already bound listener (lets callers and tests pick port 0).
///
/// # Errors
/// When the gRPC server fails.
pub async fn serve_listener(
    backend: Arc<dyn EtcdBackend>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), EtcdServerError> {
    if let Ok(a) = listener.local_addr() {
        tracing::info!(addr = %a, "etcd api listening");
    }
    // Without TCP_NODELAY, Nagle's algorithm and delayed ACKs hold small responses ~40 ms.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let incoming = futures::TryStreamExt::map_ok(incoming, coalesce::Coalesced::new);
    router(backend)
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
        .await?;
    Ok(())
}

/// Serves the etcd API over mutual TLS on an already bound listener: every connection must
/// present a client certificate `tls` accepts. Failed handshakes are logged and dropped.
///
/// # Errors
/// When the gRPC server fails.
pub async fn serve_tls_listener(
    backend: Arc<dyn EtcdBackend>,
    listener: TcpListener,
    tls: tls::ServerTls,
    shutdown: CancellationToken,
) -> Result<(), EtcdServerError> {
    if let Ok(a) = listener.local_addr() {
        tracing::info!(addr = %a, "etcd api listening (tls, client certificates required)");
    }
    let (tx, rx) =
        tokio::sync::mpsc::channel::<std::io::Result<coalesce::Coalesced<tls::TlsConn>>>(64);
    let stop = shutdown.clone();
    tokio::spawn(async move {
        loop {
            let tcp = tokio::select! {
                _ = stop.cancelled() => return,
                r = listener.accept() => match r {
                    Ok((tcp, _)) => tcp,
                    Err(e) => {
                        tracing::warn!(error = %e, "etcd api: accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            // Handshakes run apart so a slow or silent client cannot stall the others.
            let (tls, tx) = (tls.clone(), tx.clone());
            tokio::spawn(async move {
                let peer = tcp.peer_addr().ok();
                match tokio::time::timeout(std::time::Duration::from_secs(10), tls.accept(tcp))
                    .await
                {
                    Ok(Ok(conn)) => {
                        let _ = tx.send(Ok(coalesce::Coalesced::new(conn))).await;
                    }
                    Ok(Err(e)) => tracing::info!(?peer, error = %e, "etcd api: tls client refused"),
                    Err(_) => tracing::info!(?peer, "etcd api: tls handshake timed out"),
                }
            });
        }
    });
    router(backend)
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::ReceiverStream::new(rx),
            shutdown.cancelled_owned(),
        )
        .await?;
    Ok(())
}

fn router(backend: Arc<dyn EtcdBackend>) -> tonic::transport::server::Router {
    tonic::transport::Server::builder()
        .add_service(PbKvServer::new(kv::KvService {
            backend: backend.clone(),
        }))
        .add_service(PbWatchServer::new(watch::WatchService {
            backend: backend.clone(),
        }))
        .add_service(PbLeaseServer::new(lease::LeaseService {
            backend: backend.clone(),
        }))
        .add_service(PbClusterServer::new(cluster::ClusterService {
            backend: backend.clone(),
        }))
        .add_service(PbMaintenanceServer::new(maintenance::MaintenanceService {
            backend,
        }))
}

/// Whether the client set etcd's `hasleader` metadata (clientv3 `WithRequireLeader`).
pub(crate) fn wants_leader(md: &MetadataMap) -> bool {
    md.get("hasleader")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "true")
}

pub(crate) fn has_leader(backend: &dyn EtcdBackend) -> bool {
    backend.status().leader_id != 0
}

pub(crate) fn no_leader() -> tonic::Status {
    tonic::Status::unavailable("etcdserver: no leader")
}

/// Fails with etcd's "no leader" error when the request requires a leader and none is known.
pub(crate) fn require_leader<T>(
    req: &tonic::Request<T>,
    backend: &dyn EtcdBackend,
) -> Result<(), tonic::Status> {
    if wants_leader(req.metadata()) && !has_leader(backend) {
        return Err(no_leader());
    }
    Ok(())
}
