//! gRPC probes: the standard `grpc.health.v1.Health/Check` over plaintext HTTP/2, with
//! hand-written prost messages (two fields, no codegen). `SERVING` is success.
//!
//! Owns: one health check call. May call: the pod's gRPC port.

use std::net::SocketAddr;
use std::time::Duration;

/// `grpc.health.v1.HealthCheckRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    pub service: String,
}

/// `grpc.health.v1.HealthCheckResponse` (`status` is the ServingStatus enum).
#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    pub status: i32,
}

/// `ServingStatus.SERVING`.
pub const SERVING: i32 = 1;

fn status_name(s: i32) -> &'static str {
    match s {
        0 => "UNKNOWN",
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "unrecognised",
    }
}

/// Calls Health/Check on `addr` for `service`; `Ok(())` when SERVING.
pub async fn check(addr: SocketAddr, service: &str, timeout: Duration) -> Result<(), String> {
    let call = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| e.to_string())?
            .connect_timeout(timeout)
            .connect()
            .await
            .map_err(|e| format!("failed to connect service {addr}: {e}"))?;
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready()
            .await
            .map_err(|e| format!("service {addr} not ready: {e}"))?;
        let codec: tonic_prost::ProstCodec<HealthCheckRequest, HealthCheckResponse> =
            tonic_prost::ProstCodec::default();
        let resp = grpc
            .unary(
                tonic::Request::new(HealthCheckRequest {
                    service: service.to_string(),
                }),
                http::uri::PathAndQuery::from_static("/grpc.health.v1.Health/Check"),
                codec,
            )
            .await
            .map_err(|s| format!("health rpc failed: code {:?}: {}", s.code(), s.message()))?;
        let st = resp.into_inner().status;
        if st == SERVING {
            Ok(())
        } else {
            Err(format!(
                "service unhealthy (responded with \"{}\")",
                status_name(st)
            ))
        }
    };
    tokio::time::timeout(timeout, call)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "timeout: health rpc did not complete within {timeout:?}"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::future::BoxFuture;
    use std::task::{Context, Poll};

    /// A Health service: "" is SERVING, "down" NOT_SERVING, anything else NOT_FOUND.
    #[derive(Clone)]
    struct Health;

    struct Check;

    impl tonic::server::UnaryService<HealthCheckRequest> for Check {
        type Response = HealthCheckResponse;
        type Future =
            BoxFuture<'static, Result<tonic::Response<HealthCheckResponse>, tonic::Status>>;
        fn call(&mut self, req: tonic::Request<HealthCheckRequest>) -> Self::Future {
            let service = req.into_inner().service;
            Box::pin(async move {
                let status = match service.as_str() {
                    "" => SERVING,
                    "down" => 2,
                    _ => return Err(tonic::Status::not_found("unknown service")),
                };
                Ok(tonic::Response::new(HealthCheckResponse { status }))
            })
        }
    }

    impl tower_service::Service<http::Request<tonic::body::Body>> for Health {
        type Response = http::Response<tonic::body::Body>;
        type Error = std::convert::Infallible;
        type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
            Box::pin(async move {
                assert_eq!(req.uri().path(), "/grpc.health.v1.Health/Check");
                let codec: tonic_prost::ProstCodec<HealthCheckResponse, HealthCheckRequest> =
                    tonic_prost::ProstCodec::default();
                let mut grpc = tonic::server::Grpc::new(codec);
                Ok(grpc.unary(Check, req).await)
            })
        }
    }

    impl tonic::server::NamedService for Health {
        const NAME: &'static str = "grpc.health.v1.Health";
    }

    #[tokio::test]
    async fn grpc_health_check_succeeds_only_when_serving() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let incoming = futures::stream::unfold(listener, |l| async move {
            let r = l.accept().await.map(|(s, _)| s);
            Some((r, l))
        });
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(Health)
                .serve_with_incoming(incoming),
        );
        let t = Duration::from_secs(5);
        assert_eq!(check(addr, "", t).await, Ok(()));
        let down = check(addr, "down", t).await.unwrap_err();
        assert!(down.contains("NOT_SERVING"), "{down}");
        let unknown = check(addr, "nope", t).await.unwrap_err();
        assert!(unknown.contains("NotFound"), "{unknown}");
        // Nothing listening: a connection error, not a hang.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let gone = closed.local_addr().unwrap();
        drop(closed);
        assert!(check(gone, "", t).await.is_err());
    }
}
