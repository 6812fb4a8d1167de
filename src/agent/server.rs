//! The agent's endpoint (the kubelet's :10250 API, the part the API server proxies to):
//! `GET /containerLogs/{namespace}/{pod}/{container}` with `follow`, `tailLines`,
//! `timestamps`, `previous`, `sinceSeconds`, `limitBytes`; `GET|POST /exec/{ns}/{pod}/
//! {container}?command=…&stdin&tty` and `/attach/…` as WebSocket sessions (see
//! [`super::exec_ws`]); and `GET /healthz`.
//!
//! HTTPS with client-certificate authentication (see [`super::endpoint_tls`]): only the
//! API server's `kube-apiserver-kubelet-client` certificate is served. Without TLS material
//! (in-process tests) it is plain HTTP on loopback only. Port-forward is not served.
//!
//! Owns: the listener and its routes. May call: [`super::logs`], the container runtime.

use super::endpoint_tls;
use super::exec_ws;
use super::logs::{self, LogError, LogOptions};
use super::pod;
use super::runtime::{AttachRequest, ContainerRuntime, ExecRequest};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Response body of every route.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

pub(super) fn reply(code: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed_unsync());
    *r.status_mut() = code;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(v) => {
                    out.push(v);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    q.unwrap_or("")
        .split('&')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (!k.is_empty()).then(|| (pct_decode(k), pct_decode(v)))
        })
        .collect()
}

/// Parses the `kubectl logs` query options (`follow` is returned apart).
pub fn log_options(q: Option<&str>) -> (LogOptions, bool) {
    let q: HashMap<String, String> = query_pairs(q).into_iter().collect();
    let flag = |k: &str| q.get(k).is_some_and(|v| v == "true" || v == "1");
    let num = |k: &str| q.get(k).and_then(|v| v.parse::<i64>().ok());
    let opts = LogOptions {
        tail_lines: num("tailLines").map(|n| n.max(0) as usize),
        timestamps: flag("timestamps"),
        previous: flag("previous"),
        since_seconds: num("sinceSeconds"),
        limit_bytes: num("limitBytes").map(|n| n.max(0) as usize),
    };
    (opts, flag("follow"))
}

/// Reads `path` from `pos` up to its last complete line; returns the text and new position.
pub(super) fn read_complete_lines(path: &Path, pos: u64) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    // Truncated (rotated in place): start over.
    let pos = if len < pos { 0 } else { pos };
    f.seek(SeekFrom::Start(pos))?;
    let mut buf = Vec::new();
    f.take(len - pos).read_to_end(&mut buf)?;
    let end = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    buf.truncate(end);
    Ok((String::from_utf8_lossy(&buf).into_owned(), pos + end as u64))
}

/// Follows a container's log: the current file's new lines, then each newer attempt's
/// file (a restart) from its start, until the pod's logs disappear or the client leaves.
async fn follow(
    (log_dir, ns, pod, container): (PathBuf, String, String, String),
    mut path: PathBuf,
    mut pos: u64,
    timestamps: bool,
    tx: tokio::sync::mpsc::Sender<Bytes>,
) {
    let opts = LogOptions {
        timestamps,
        ..LogOptions::default()
    };
    use std::os::unix::fs::MetadataExt;
    let mut inode = std::fs::metadata(&path).map(|m| m.ino()).ok();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = tx.closed() => return,
        }
        // Rotated (renamed away, a new file in its place): read the new file from its start.
        let now = std::fs::metadata(&path).map(|m| m.ino()).ok();
        if now.is_some() && now != inode {
            inode = now;
            pos = 0;
        }
        match read_complete_lines(&path, pos) {
            Ok((text, next)) => {
                pos = next;
                if !text.is_empty() {
                    let out = logs::render(&text, &opts, jiff::Timestamp::now());
                    if tx.send(Bytes::from(out)).await.is_err() {
                        return;
                    }
                }
            }
            Err(_) if logs::log_file(&log_dir, &ns, &pod, &container, false).is_none() => return,
            Err(_) => {}
        }
        if let Some(newest) = logs::log_file(&log_dir, &ns, &pod, &container, false)
            && newest != path
        {
            // Drain the rest of the old attempt before switching.
            if let Ok((text, _)) = read_complete_lines(&path, pos)
                && !text.is_empty()
            {
                let out = logs::render(&text, &opts, jiff::Timestamp::now());
                let _ = tx.send(Bytes::from(out)).await;
            }
            path = newest;
            pos = 0;
            inode = std::fs::metadata(&path).map(|m| m.ino()).ok();
        }
    }
}

fn container_logs(
    log_dir: &Path,
    ns: &str,
    pod: &str,
    container: &str,
    q: Option<&str>,
) -> Response<Body> {
    let (opts, follow_on) = log_options(q);
    let not_found = || LogError::NotFound {
        namespace: ns.into(),
        pod: pod.into(),
        container: container.into(),
        previous: opts.previous,
    };
    let Some(path) = logs::log_file(log_dir, ns, pod, container, opts.previous) else {
        return reply(StatusCode::NOT_FOUND, format!("{}\n", not_found()));
    };
    let (content, pos) = match read_complete_lines(&path, 0) {
        Ok(r) => r,
        Err(source) => {
            let e = LogError::Io { path, source };
            return reply(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"));
        }
    };
    let first = logs::render(&content, &opts, jiff::Timestamp::now());
    // limitBytes ends the stream; previous attempts do not grow.
    if !follow_on || opts.previous || opts.limit_bytes.is_some() {
        return reply(StatusCode::OK, first);
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let handle = tokio::runtime::Handle::current();
    let (dir, ns, pod, container) = (
        log_dir.to_path_buf(),
        ns.to_string(),
        pod.to_string(),
        container.to_string(),
    );
    handle.spawn(async move {
        if !first.is_empty() && tx.send(Bytes::from(first)).await.is_err() {
            return;
        }
        follow((dir, ns, pod, container), path, pos, opts.timestamps, tx).await;
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx)
        .map(|b| Ok::<_, Infallible>(Frame::data(b)));
    let mut r = Response::new(StreamBody::new(stream).boxed_unsync());
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The id of the newest attempt of `container` in pod `ns/pod_name`, or the error reply.
async fn find_container(
    rt: &dyn ContainerRuntime,
    ns: &str,
    pod_name: &str,
    container: &str,
) -> Result<String, Response<Body>> {
    let list = rt
        .list_containers(pod::LABEL_POD_NAME, pod_name)
        .await
        .map_err(|e| reply(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")))?;
    let attempt = |c: &super::runtime::ContainerSummary| {
        c.labels
            .get(pod::LABEL_ATTEMPT)
            .and_then(|a| a.parse::<u32>().ok())
            .unwrap_or(0)
    };
    list.iter()
        .filter(|c| {
            c.labels.get(pod::LABEL_POD_NAMESPACE).map(String::as_str) == Some(ns)
                && c.labels.get(pod::LABEL_CONTAINER_NAME).map(String::as_str) == Some(container)
        })
        .max_by_key(|c| attempt(c))
        .map(|c| c.id.clone())
        .ok_or_else(|| {
            reply(
                StatusCode::NOT_FOUND,
                format!("container {container} of pod {ns}/{pod_name} not found\n"),
            )
        })
}

async fn exec(
    rt: Arc<dyn ContainerRuntime>,
    (ns, pod_name, container): (&str, &str, &str),
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    let pairs = query_pairs(req.uri().query());
    let flag = |k: &str| {
        pairs
            .iter()
            .any(|(n, v)| n == k && (v == "true" || v == "1"))
    };
    let cmd: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    if cmd.is_empty() {
        return reply(
            StatusCode::BAD_REQUEST,
            "you must specify at least one command for the container\n",
        );
    }
    let container_id = match find_container(rt.as_ref(), ns, pod_name, container).await {
        Ok(id) => id,
        Err(r) => return r,
    };
    let exec_req = ExecRequest {
        cmd,
        stdin: flag("stdin"),
        tty: flag("tty"),
    };
    exec_ws::upgrade(
        req,
        exec_ws::Target::Exec {
            rt,
            container_id,
            req: exec_req,
        },
    )
}

/// Answers one request.
pub async fn handle(
    log_dir: Arc<PathBuf>,
    rt: Option<Arc<dyn ContainerRuntime>>,
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    let q = req.uri().query().map(str::to_string);
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (req.method(), parts.as_slice()) {
        (&Method::GET, ["healthz"]) => reply(StatusCode::OK, "ok"),
        (&Method::GET, ["containerLogs", ns, pod, container]) => {
            let (ns, pod, container) = (ns.to_string(), pod.to_string(), container.to_string());
            let h = tokio::runtime::Handle::current();
            // Log files can be large: read them off the async workers.
            tokio::task::spawn_blocking(move || {
                let _g = h.enter();
                container_logs(&log_dir, &ns, &pod, &container, q.as_deref())
            })
            .await
            .unwrap_or_else(|_| reply(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n"))
        }
        (&Method::GET | &Method::POST, ["exec", ns, pod, container]) => match rt {
            Some(rt) => {
                let (ns, pod, container) = (ns.to_string(), pod.to_string(), container.to_string());
                exec(rt, (&ns, &pod, &container), req).await
            }
            None => reply(
                StatusCode::NOT_IMPLEMENTED,
                "exec needs a container runtime\n",
            ),
        },
        (&Method::GET | &Method::POST, ["attach", ns, pod, container]) => {
            let names = (ns.to_string(), pod.to_string(), container.to_string());
            let live = match rt {
                Some(rt) => match find_container(rt.as_ref(), ns, pod, container).await {
                    Ok(id) => Some((rt, id)),
                    Err(r) => return r,
                },
                None => None,
            };
            // Only a running process can be attached to (the CRI's check and words).
            if let Some((rt, id)) = &live {
                use super::runtime::TaskStatus;
                let status = rt
                    .container_state(id)
                    .await
                    .ok()
                    .flatten()
                    .map(|s| s.status);
                let state = match status {
                    Some(TaskStatus::Running) => None,
                    Some(TaskStatus::Created) => Some("CONTAINER_CREATED"),
                    Some(TaskStatus::Stopped) => Some("CONTAINER_EXITED"),
                    _ => Some("CONTAINER_UNKNOWN"),
                };
                if let Some(state) = state {
                    return reply(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("container is in {state} state\n"),
                    );
                }
            }
            if live.is_none()
                && logs::log_file(&log_dir, &names.0, &names.1, &names.2, false).is_none()
            {
                return reply(
                    StatusCode::NOT_FOUND,
                    format!(
                        "container {} of pod {}/{} not found\n",
                        names.2, names.0, names.1
                    ),
                );
            }
            let stdin = query_pairs(q.as_deref())
                .iter()
                .any(|(k, v)| k == "stdin" && (v == "true" || v == "1"));
            exec_ws::upgrade(
                req,
                exec_ws::Target::Attach {
                    live,
                    req: AttachRequest { stdin },
                    log_dir: log_dir.as_ref().clone(),
                    names,
                },
            )
        }
        (_, ["healthz"] | ["containerLogs", ..] | ["exec", ..] | ["attach", ..]) => {
            reply(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        }
        _ => reply(StatusCode::NOT_FOUND, "not found\n"),
    }
}

async fn serve_http<I>(
    io: TokioIo<I>,
    log_dir: Arc<PathBuf>,
    rt: Option<Arc<dyn ContainerRuntime>>,
    refused: Option<String>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| {
        let (dir, rt, refused) = (log_dir.clone(), rt.clone(), refused.clone());
        async move {
            Ok::<_, Infallible>(match refused {
                Some(why) => reply(StatusCode::FORBIDDEN, format!("{why}\n")),
                None => handle(dir, rt, req).await,
            })
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, svc)
        .with_upgrades()
        .await;
}

/// Serves one accepted connection: over TLS when `tls` is set (then every request of a
/// client other than the API server is refused with 403), else plain HTTP.
async fn serve_conn(
    stream: tokio::net::TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    log_dir: Arc<PathBuf>,
    rt: Option<Arc<dyn ContainerRuntime>>,
) {
    match tls {
        Some(acceptor) => {
            let stream = match tokio::time::timeout(
                Duration::from_secs(10),
                acceptor.accept(stream),
            )
            .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "agent endpoint tls handshake refused");
                    return;
                }
                Err(_) => return,
            };
            let refused = endpoint_tls::authorized(stream.get_ref().1.peer_certificates()).err();
            if let Some(why) = &refused {
                tracing::debug!(reason = %why, "agent endpoint client refused");
            }
            serve_http(TokioIo::new(stream), log_dir, rt, refused).await;
        }
        None => {
            serve_http(TokioIo::new(stream), log_dir, rt, None).await;
        }
    }
}

/// Serves until `shutdown`; returns the bound address (port 0 picks one). With `tls` the
/// endpoint is HTTPS and only the API server's client certificate is served; without it
/// (in-process tests) it is plain HTTP and refuses to bind anything but loopback.
pub async fn start(
    addr: SocketAddr,
    log_dir: PathBuf,
    rt: Option<Arc<dyn ContainerRuntime>>,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    if tls.is_none() && !addr.ip().is_loopback() {
        return Err(std::io::Error::other(format!(
            "refusing to serve the agent endpoint on {addr} without tls"
        )));
    }
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let log_dir = Arc::new(log_dir);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
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
            tokio::spawn(serve_conn(
                stream,
                acceptor.clone(),
                log_dir.clone(),
                rt.clone(),
            ));
        }
    });
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(msg: &str) -> String {
        format!("2026-11-25T17:00:00.000000000Z stdout F {msg}\n")
    }

    #[test]
    fn query_options_are_decoded() {
        let (o, follow) = log_options(Some("follow=true&tailLines=5&timestamps=1&limitBytes=9"));
        assert!(follow && o.timestamps);
        assert_eq!((o.tail_lines, o.limit_bytes), (Some(5), Some(9)));
        let cmd: Vec<_> = query_pairs(Some("command=sh&command=-c&command=exit%203"))
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        assert_eq!(cmd, ["sh", "-c", "exit 3"]);
    }

    #[test]
    fn only_complete_lines_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("0.log");
        std::fs::write(&f, format!("{}partial", rec("a"))).unwrap();
        let (text, pos) = read_complete_lines(&f, 0).unwrap();
        assert_eq!(text, rec("a"));
        assert_eq!(read_complete_lines(&f, pos).unwrap().0, "");
    }

    #[tokio::test]
    async fn follow_streams_appended_lines_then_the_next_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let cdir = dir.path().join("ns_p_uid/c");
        std::fs::create_dir_all(&cdir).unwrap();
        let first = cdir.join("0.log");
        std::fs::write(&first, rec("one")).unwrap();
        let pos = std::fs::metadata(&first).unwrap().len();
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let names = (
            dir.path().to_path_buf(),
            "ns".into(),
            "p".into(),
            "c".into(),
        );
        let task = tokio::spawn(follow(names, first.clone(), pos, false, tx));
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&first)
            .unwrap();
        std::io::Write::write_all(&mut f, rec("two").as_bytes()).unwrap();
        assert_eq!(rx.recv().await.unwrap(), "two\n");
        // A restart: the next attempt's file is followed from its start.
        std::fs::write(cdir.join("1.log"), rec("three")).unwrap();
        let mut got = String::new();
        while !got.contains("three") {
            got.push_str(&String::from_utf8_lossy(&rx.recv().await.unwrap()));
        }
        assert_eq!(got, "three\n");
        drop(rx);
        task.await.unwrap();
    }

    #[tokio::test]
    async fn follow_continues_in_the_new_file_after_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let cdir = dir.path().join("ns_p_uid/c");
        std::fs::create_dir_all(&cdir).unwrap();
        let live = cdir.join("0.log");
        // Longer than what the new file will hold: a size check alone would miss the switch.
        std::fs::write(&live, rec("a long line before the rotation")).unwrap();
        let pos = std::fs::metadata(&live).unwrap().len();
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let names = (
            dir.path().to_path_buf(),
            "ns".into(),
            "p".into(),
            "c".into(),
        );
        let task = tokio::spawn(follow(names, live.clone(), pos, false, tx));
        tokio::time::sleep(Duration::from_millis(300)).await;
        std::fs::rename(&live, cdir.join("0.log.20261125-170000")).unwrap();
        std::fs::write(&live, format!("{}{}", rec("x"), rec("after"))).unwrap();
        let mut got = String::new();
        while !got.contains("after") {
            got.push_str(&String::from_utf8_lossy(&rx.recv().await.unwrap()));
        }
        assert_eq!(got, "x\nafter\n");
        drop(rx);
        task.await.unwrap();
    }
}
