//! The agent's HTTP endpoint (the kubelet's :10250 API, the part the API server proxies
//! to): `GET /containerLogs/{namespace}/{pod}/{container}` with `tailLines`, `timestamps`,
//! `previous`, `sinceSeconds`, `limitBytes`, and `GET /healthz`.
//!
//! Plain HTTP, so it binds to loopback by default (the built-in agent's API server proxies
//! locally); TLS with client-certificate auth is needed before binding it elsewhere.
//! `follow` and exec/attach/port-forward streaming are not served yet.
//!
//! Owns: the listener and its routes. May call: [`super::logs`].

use super::logs::{self, LogError, LogOptions};
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

fn reply(code: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = code;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn query(req: &Request<hyper::body::Incoming>) -> HashMap<String, String> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (!k.is_empty()).then(|| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// Answers one request (pure routing over the log directory).
pub fn handle(
    log_dir: &std::path::Path,
    req: &Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    let path = req.uri().path();
    if path == "/healthz" {
        return reply(StatusCode::OK, "ok");
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let ["containerLogs", ns, pod, container] = parts.as_slice() else {
        return reply(StatusCode::NOT_FOUND, "not found\n");
    };
    let q = query(req);
    let flag = |k: &str| q.get(k).is_some_and(|v| v == "true" || v == "1");
    let num = |k: &str| q.get(k).and_then(|v| v.parse::<i64>().ok());
    let opts = LogOptions {
        tail_lines: num("tailLines").map(|n| n.max(0) as usize),
        timestamps: flag("timestamps"),
        previous: flag("previous"),
        since_seconds: num("sinceSeconds"),
        limit_bytes: num("limitBytes").map(|n| n.max(0) as usize),
    };
    match logs::read(log_dir, ns, pod, container, &opts) {
        Ok(text) => reply(StatusCode::OK, text),
        Err(e @ LogError::NotFound { .. }) => reply(StatusCode::NOT_FOUND, format!("{e}\n")),
        Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

/// Serves until `shutdown`; returns the bound address (port 0 picks one).
pub async fn start(
    addr: SocketAddr,
    log_dir: PathBuf,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let log_dir = Arc::new(log_dir);
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "agent endpoint accept");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = shutdown.cancelled() => return,
            };
            let dir = log_dir.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let dir = dir.clone();
                    async move {
                        // Log files can be large: read them off the async workers.
                        let r = tokio::task::spawn_blocking(move || handle(&dir, &req)).await;
                        Ok::<_, std::convert::Infallible>(r.unwrap_or_else(|_| {
                            reply(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
                        }))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(local)
}
