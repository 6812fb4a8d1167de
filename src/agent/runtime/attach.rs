//! Attach sessions on containerd (`kubectl attach`, `kubectl run -i`): a session receives
//! the container's live output from [`super::stdio`], feeds its input to the container's
//! stdin and resizes its terminal (`Tasks.ResizePty`).
//!
//! Semantics follow the CRI plugin: any number of sessions receive the output; a session's
//! input reaches the container only when it asked for stdin and the container has one.
//! When that input ends (the client closed stdin, or left): with `stdinOnce` and no
//! terminal the container's stdin is closed (`Tasks.CloseIO`) and the session keeps
//! receiving output until the process exits; otherwise the session ends and stdin stays
//! open for the next one.
//!
//! Owns: the session loop. May call: containerd (ResizePty, CloseIO), the stdio hub.

use super::containerd::Containerd;
use super::error::RuntimeError;
use super::stdio::{Live, StdinMsg};
use super::{AttachRequest, ExecChunk, ExecInput};
use containerd_client::services::v1::{CloseIoRequest, GetRequest, ResizePtyRequest};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::{broadcast, mpsc, oneshot};

/// How a session ended.
enum End {
    /// The container's output ended.
    Output,
    /// The session's input ended and the session detaches.
    Detach,
    /// The client left.
    Left,
}

impl Containerd {
    /// See [`super::ContainerRuntime::attach`].
    pub(super) async fn do_attach(
        &self,
        id: &str,
        req: &AttachRequest,
        mut input: mpsc::Receiver<ExecInput>,
        output: mpsc::Sender<ExecChunk>,
    ) -> Result<bool, RuntimeError> {
        // Read again first if this agent has not yet (only while the task runs).
        self.adopt_stdio(id).await;
        let Some(live) = self.stdio.get(id) else {
            return Ok(false);
        };
        let mut out = live.out.subscribe();
        let cfg = live.config;
        // The client's stdin is this session's input only if both sides have one.
        let with_stdin = req.stdin && cfg.stdin;
        let mut pending: Option<Vec<u8>> = None;
        let mut input_open = true;
        let end = loop {
            tokio::select! {
                c = out.recv() => match c {
                    Ok(chunk) => {
                        if output.send(chunk).await.is_err() {
                            break End::Left;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::debug!(container = id, chunks = n, "slow attach session lost output");
                    }
                    Err(broadcast::error::RecvError::Closed) => break End::Output,
                },
                _ = live.done.cancelled() => {
                    // Every chunk was sent before `done`: hand over what is still queued.
                    while let Ok(chunk) = out.try_recv() {
                        if output.send(chunk).await.is_err() {
                            break;
                        }
                    }
                    break End::Output;
                }
                permit = live.stdin.reserve(), if pending.is_some() => match permit {
                    Ok(p) => p.send(StdinMsg::Data(pending.take().unwrap_or_default())),
                    Err(_) => pending = None,
                },
                i = input.recv(), if input_open && pending.is_none() => match i {
                    Some(ExecInput::Stdin(data)) => {
                        if with_stdin && !live.stdin_closed.load(Ordering::SeqCst) {
                            pending = Some(data);
                        }
                    }
                    Some(ExecInput::Resize { width, height }) => {
                        if cfg.tty {
                            self.resize(id, width, height).await;
                        }
                    }
                    Some(ExecInput::CloseStdin) => {
                        input_open = false;
                        if with_stdin {
                            if cfg.stdin_once && !cfg.tty {
                                self.close_stdin(id, &live).await;
                            } else {
                                break End::Detach;
                            }
                        }
                    }
                    None => break End::Left,
                },
                _ = output.closed() => break End::Left,
            }
        };
        // A client that left ended its stdin too.
        if matches!(end, End::Left) && with_stdin && input_open && cfg.stdin_once && !cfg.tty {
            self.close_stdin(id, &live).await;
        }
        Ok(true)
    }

    async fn resize(&self, id: &str, width: u32, height: u32) {
        let Ok(r) = self.req(
            ResizePtyRequest {
                container_id: id.into(),
                exec_id: String::new(),
                width,
                height,
            },
            None,
        ) else {
            return;
        };
        if let Err(e) = self.tasks().resize_pty(r).await {
            tracing::debug!(container = id, error = %e, "attach resize");
        }
    }

    /// Closes the container's stdin for good (`stdinOnce`): our writer first, then the
    /// shim's, so the process reads EOF after the input already sent.
    async fn close_stdin(&self, id: &str, live: &Arc<Live>) {
        if live.stdin_closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let (ack, done) = oneshot::channel();
        if live.stdin.send(StdinMsg::Close(ack)).await.is_ok() {
            let _ = done.await;
        }
        let Ok(r) = self.req(
            CloseIoRequest {
                container_id: id.into(),
                exec_id: String::new(),
                stdin: true,
            },
            None,
        ) else {
            return;
        };
        if let Err(e) = self.tasks().close_io(r).await {
            tracing::debug!(container = id, error = %e, "attach close stdin");
        }
    }

    /// After an agent restart: reads the output of a running container created with FIFOs
    /// again (called before waiting for its exit, which adoption does).
    pub(super) async fn adopt_stdio(&self, id: &str) {
        if !self.stdio.has(id) || self.stdio.is_live(id) {
            return;
        }
        let running = match self.req(
            GetRequest {
                container_id: id.into(),
                exec_id: String::new(),
            },
            None,
        ) {
            Ok(r) => self
                .tasks()
                .get(r)
                .await
                .ok()
                .and_then(|r| r.into_inner().process)
                .is_some_and(|p| p.status == containerd_client::types::v1::Status::Running as i32),
            Err(_) => false,
        };
        // A stopped task's shim closed its FIFOs: a reader would wait forever.
        if !running {
            return;
        }
        match self.stdio.ensure(id) {
            Ok(_) => tracing::info!(container = id, "reading container stdio again"),
            Err(e) => {
                tracing::warn!(container = id, error = %e, "cannot take container stdio over")
            }
        }
    }
}
