//! `exec` and `attach` on the agent endpoint, spoken as the Kubernetes WebSocket streaming
//! protocol (`v5.channel.k8s.io`, `v4.channel.k8s.io`): the API server forwards the client's
//! upgrade here untouched, so this is where the channels are read and written.
//!
//! Exec runs the command with the runtime's interactive exec: channel 0 feeds stdin (v5's
//! close message on channel 255 ends it), channel 4 carries terminal sizes, channels 1/2
//! carry stdout/stderr and channel 3 the closing `Status` (exit code). Attach streams the
//! live output of a container created with `stdin` or `tty` and feeds it stdin and terminal
//! sizes (the runtime's attach, see `runtime::attach` for `stdinOnce`); other containers'
//! output only goes to their log driver, so attach follows their CRI log from its end
//! (stdout on 1, stderr on 2) and ignores stdin, as the CRI ignores it for a container
//! without one.
//!
//! Owns: the session pumps. May call: the runtime, [`super::logs`], [`super::websocket`].

use super::logs;
use super::runtime::{AttachRequest, ContainerRuntime, ExecChunk, ExecInput, ExecRequest};
use super::server::{Body, reply};
use super::websocket as ws;
use http_body_util::{BodyExt, Empty};
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

type Io = TokioIo<hyper::upgrade::Upgraded>;

/// What the session runs.
pub enum Target {
    Exec {
        rt: Arc<dyn ContainerRuntime>,
        container_id: String,
        req: ExecRequest,
    },
    Attach {
        /// The runtime and the container's id, when known (else: the log only).
        live: Option<(Arc<dyn ContainerRuntime>, String)>,
        req: AttachRequest,
        log_dir: PathBuf,
        names: (String, String, String),
    },
}

/// Answers the upgrade and runs the session on the upgraded connection.
pub fn upgrade(mut req: Request<hyper::body::Incoming>, target: Target) -> Response<Body> {
    let hdr = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    if !hdr("upgrade").eq_ignore_ascii_case("websocket") {
        return reply(
            StatusCode::BAD_REQUEST,
            "only WebSocket streaming (v5.channel.k8s.io, v4.channel.k8s.io) is supported; SPDY is not\n",
        );
    }
    let Some(protocol) = ws::pick_protocol(&hdr("sec-websocket-protocol")) else {
        return reply(
            StatusCode::BAD_REQUEST,
            "no supported subprotocol: need v5.channel.k8s.io or v4.channel.k8s.io\n",
        );
    };
    let accept = ws::accept_key(&hdr("sec-websocket-key"));
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(up) => session(TokioIo::new(up), target).await,
            Err(e) => tracing::debug!(error = %e, "exec upgrade failed"),
        }
    });
    let mut resp = Response::new(Empty::new().map_err(|never| match never {}).boxed_unsync());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(
        header::UPGRADE,
        header::HeaderValue::from_static("websocket"),
    );
    h.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("Upgrade"),
    );
    if let Ok(v) = header::HeaderValue::from_str(&accept) {
        h.insert("sec-websocket-accept", v);
    }
    h.insert(
        "sec-websocket-protocol",
        header::HeaderValue::from_static(protocol),
    );
    resp
}

/// Writes encoded frames until the channel closes, then closes the connection.
async fn writer(
    mut w: WriteHalf<Io>,
    mut frames: mpsc::Receiver<Vec<u8>>,
    left: CancellationToken,
) {
    while let Some(f) = frames.recv().await {
        if w.write_all(&f).await.is_err() {
            left.cancel();
            return;
        }
    }
    let _ = w.flush().await;
    // Let the client read the close frame before the connection goes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = w.shutdown().await;
}

/// Reads client messages: stdin, resize, close-stream; answers pings; `left` on close/EOF.
async fn reader(
    r: ReadHalf<Io>,
    mut input: Option<mpsc::Sender<ExecInput>>,
    frames: mpsc::Sender<Vec<u8>>,
    left: CancellationToken,
) {
    let mut r = ws::MessageReader::new(r);
    loop {
        let msg = tokio::select! {
            m = r.next() => m,
            _ = left.cancelled() => return,
        };
        let Ok(Some(m)) = msg else { break };
        match m.opcode {
            ws::OP_CLOSE => break,
            ws::OP_PING => {
                let _ = frames.send(ws::frame(ws::OP_PONG, &m.payload)).await;
            }
            ws::OP_BINARY | ws::OP_TEXT if !m.payload.is_empty() => {
                let Some(tx) = &input else { continue };
                let data = &m.payload[1..];
                let event = match m.payload[0] {
                    0 if !data.is_empty() => ExecInput::Stdin(data.to_vec()),
                    4 => {
                        let v: serde_json::Value = serde_json::from_slice(data).unwrap_or_default();
                        let dim = |k: &str| v.get(k).and_then(serde_json::Value::as_u64);
                        match (dim("Width"), dim("Height")) {
                            (Some(w), Some(h)) => ExecInput::Resize {
                                width: w.min(u64::from(u16::MAX)) as u32,
                                height: h.min(u64::from(u16::MAX)) as u32,
                            },
                            _ => continue,
                        }
                    }
                    255 if data.first() == Some(&0) => ExecInput::CloseStdin,
                    _ => continue,
                };
                // The process is done (it took no more input): keep reading until the
                // client closes, so the closing status still reaches it.
                if tx.send(event).await.is_err() {
                    input = None;
                }
            }
            _ => {}
        }
    }
    left.cancel();
}

async fn session(io: Io, target: Target) {
    let (r, w) = tokio::io::split(io);
    let (frames_tx, frames_rx) = mpsc::channel::<Vec<u8>>(32);
    let left = CancellationToken::new();
    let writer = tokio::spawn(writer(w, frames_rx, left.clone()));
    match target {
        Target::Exec {
            rt,
            container_id,
            req,
        } => {
            let (in_tx, in_rx) = mpsc::channel(32);
            let (out_tx, mut out_rx) = mpsc::channel::<ExecChunk>(16);
            tokio::spawn(reader(
                r,
                req.stdin.then_some(in_tx),
                frames_tx.clone(),
                left.clone(),
            ));
            let run = tokio::spawn(async move {
                rt.exec_interactive(&container_id, &req, in_rx, out_tx)
                    .await
            });
            loop {
                let chunk = tokio::select! {
                    c = out_rx.recv() => c,
                    _ = left.cancelled() => break,
                };
                let Some(chunk) = chunk else { break };
                let f = match chunk {
                    ExecChunk::Stdout(d) => ws::channel(1, &d),
                    ExecChunk::Stderr(d) => ws::channel(2, &d),
                };
                if frames_tx.send(f).await.is_err() {
                    break;
                }
            }
            // Closing the output tells the runtime to kill an exec whose client left.
            drop(out_rx);
            let status = match run.await {
                Ok(Ok(code)) => ws::exit_status(code),
                Ok(Err(e)) => ws::failure_status(&e.to_string()),
                Err(_) => ws::failure_status("the exec task failed"),
            };
            if !left.is_cancelled() {
                let _ = frames_tx
                    .send(ws::channel(3, status.to_string().as_bytes()))
                    .await;
                let _ = frames_tx.send(ws::close()).await;
            }
        }
        Target::Attach {
            live,
            req,
            log_dir,
            names,
        } => {
            let (in_tx, in_rx) = mpsc::channel(32);
            tokio::spawn(reader(r, Some(in_tx), frames_tx.clone(), left.clone()));
            let status = match attach_live(live, req, in_rx, &frames_tx, &left).await {
                Ok(true) => ws::exit_status(0),
                Ok(false) => {
                    attach_logs(&log_dir, &names, &frames_tx, &left).await;
                    ws::exit_status(0)
                }
                Err(e) => ws::failure_status(&format!("error attaching to container: {e}")),
            };
            if !left.is_cancelled() {
                let _ = frames_tx
                    .send(ws::channel(3, status.to_string().as_bytes()))
                    .await;
                let _ = frames_tx.send(ws::close()).await;
            }
        }
    }
    drop(frames_tx);
    left.cancel();
    let _ = writer.await;
}

/// Runs the runtime's attach, forwarding its output until it ends or the client leaves;
/// `false` when the container has no live stdio (nothing was sent).
async fn attach_live(
    live: Option<(Arc<dyn ContainerRuntime>, String)>,
    req: AttachRequest,
    input: mpsc::Receiver<ExecInput>,
    frames: &mpsc::Sender<Vec<u8>>,
    left: &CancellationToken,
) -> Result<bool, super::runtime::RuntimeError> {
    let Some((rt, id)) = live else {
        return Ok(false);
    };
    let (out_tx, mut out_rx) = mpsc::channel::<ExecChunk>(16);
    let run = tokio::spawn(async move { rt.attach(&id, &req, input, out_tx).await });
    loop {
        let chunk = tokio::select! {
            c = out_rx.recv() => c,
            _ = left.cancelled() => break,
        };
        let Some(chunk) = chunk else { break };
        let f = match chunk {
            ExecChunk::Stdout(d) => ws::channel(1, &d),
            ExecChunk::Stderr(d) => ws::channel(2, &d),
        };
        if frames.send(f).await.is_err() {
            break;
        }
    }
    // Closing the output ends the runtime's session (the client left).
    drop(out_rx);
    match run.await {
        Ok(r) => r,
        Err(_) => Err(super::runtime::RuntimeError::Invalid(
            "the attach task failed".into(),
        )),
    }
}

/// Streams new CRI records of the container's current log as raw output until the client
/// leaves or the container's attempt ends (a newer attempt or no log any more).
async fn attach_logs(
    log_dir: &std::path::Path,
    (ns, pod, container): &(String, String, String),
    frames: &mpsc::Sender<Vec<u8>>,
    left: &CancellationToken,
) {
    let Some(path) = logs::log_file(log_dir, ns, pod, container, false) else {
        return;
    };
    let mut pos = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = left.cancelled() => return,
        }
        if let Ok((text, next)) = super::server::read_complete_lines(&path, pos) {
            pos = next;
            for (stream, data) in logs::raw_records(&text) {
                let ch = if stream == "stderr" { 2 } else { 1 };
                if frames.send(ws::channel(ch, &data)).await.is_err() {
                    return;
                }
            }
        }
        if logs::log_file(log_dir, ns, pod, container, false).as_ref() != Some(&path) {
            return;
        }
    }
}
