//! The one etcd client call k3rs makes itself: streaming `Maintenance.Snapshot` from a running
//! server (`k3rs etcd-snapshot save`), over plain gRPC on loopback or over mutual TLS.
//!
//! May call: tonic's client transport, [`super::tls::ClientTls`].

use super::tls::ClientTls;
use etcd_client::proto::{PbSnapshotRequest, PbSnapshotResponse};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// Why the snapshot could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum EtcdClientError {
    #[error("cannot connect to the etcd api at {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("snapshot from {addr} failed: {status}")]
    Rpc {
        addr: SocketAddr,
        status: Box<tonic::Status>,
    },
    #[error("snapshot stream from {addr} ended early ({got} bytes received)")]
    Incomplete { addr: SocketAddr, got: usize },
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Dials the fixed address (the URI only satisfies tonic), with or without TLS.
#[derive(Clone)]
struct Dialer {
    addr: SocketAddr,
    tls: Option<ClientTls>,
}

type DialFuture = Pin<Box<dyn Future<Output = std::io::Result<TokioIo<Box<dyn Io>>>> + Send>>;

impl tower_service::Service<http::Uri> for Dialer {
    type Response = TokioIo<Box<dyn Io>>;
    type Error = std::io::Error;
    type Future = DialFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: http::Uri) -> Self::Future {
        let (addr, tls) = (self.addr, self.tls.clone());
        Box::pin(async move {
            let io: Box<dyn Io> = match tls {
                Some(tls) => Box::new(tls.connect(addr).await?),
                None => {
                    let tcp = tokio::net::TcpStream::connect(addr).await?;
                    tcp.set_nodelay(true)?;
                    Box::new(tcp)
                }
            };
            Ok(TokioIo::new(io))
        })
    }
}

/// Streams a snapshot from the etcd API at `addr` and returns the file bytes exactly as
/// `etcdctl snapshot save` would write them (the sealed k3rs snapshot).
///
/// # Errors
/// Connection failures, an RPC error, or a stream that stops before `remaining_bytes` is 0.
pub async fn fetch_snapshot(
    addr: SocketAddr,
    tls: Option<ClientTls>,
    timeout: Duration,
) -> Result<Vec<u8>, EtcdClientError> {
    let channel = tonic::transport::Endpoint::from_static("http://etcd.k3rs.invalid")
        .connect_timeout(timeout)
        .connect_with_connector(Dialer { addr, tls })
        .await
        .map_err(|source| EtcdClientError::Connect { addr, source })?;
    let rpc = |status| EtcdClientError::Rpc {
        addr,
        status: Box::new(status),
    };
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| {
        rpc(tonic::Status::unavailable(format!(
            "channel not ready: {e}"
        )))
    })?;
    let codec = tonic_prost::ProstCodec::<PbSnapshotRequest, PbSnapshotResponse>::default();
    let mut stream = grpc
        .server_streaming(
            tonic::Request::new(PbSnapshotRequest {}),
            http::uri::PathAndQuery::from_static("/etcdserverpb.Maintenance/Snapshot"),
            codec,
        )
        .await
        .map_err(rpc)?
        .into_inner();
    let mut out = Vec::new();
    let mut done = false;
    while let Some(msg) = stream.message().await.map_err(rpc)? {
        out.extend_from_slice(&msg.blob);
        done = msg.remaining_bytes == 0;
    }
    if !done {
        return Err(EtcdClientError::Incomplete {
            addr,
            got: out.len(),
        });
    }
    Ok(out)
}
