//! Interactive exec on containerd (`kubectl exec -i -t`): the process's stdio are FIFOs in
//! the scratch directory that containerd's shim opens; stdin is fed from the client,
//! stdout/stderr are streamed back, a terminal is resizable (`Tasks.ResizePty`).
//!
//! Ordering matters: output FIFOs are opened for reading (in blocking threads, where an open
//! waits for the shim's writer) before `Tasks.Exec`; end of stdin is signalled with
//! `Tasks.CloseIO` because the shim keeps its own writer on the stdin FIFO; after the exit,
//! `DeleteProcess` makes the shim finish copying and close the FIFOs, so readers see EOF.
//!
//! Owns: exec FIFOs and the exec's lifecycle. May call: containerd, the filesystem.

use super::containerd::{Containerd, PROCESS_TYPE};
use super::error::RuntimeError;
use super::{ExecChunk, ExecInput, ExecRequest};
use containerd_client::services::v1::{
    CloseIoRequest, DeleteProcessRequest, ExecProcessRequest, KillRequest, ResizePtyRequest,
    StartRequest,
};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// How long output may keep flowing after the process exited (a background child holding
/// stdout open) before the exec is torn down.
const OUTPUT_GRACE: Duration = Duration::from_secs(2);

fn mkfifo(dir: &Path, name: &str) -> Result<PathBuf, RuntimeError> {
    let p = dir.join(name);
    nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(|e| RuntimeError::io(&p, std::io::Error::from(e)))?;
    Ok(p)
}

/// Copies a FIFO into `tx` in a blocking thread until EOF (or the receiver goes).
fn spawn_reader(
    path: PathBuf,
    stderr: bool,
    tx: mpsc::Sender<ExecChunk>,
) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_blocking(move || {
        // Blocks until the shim opens its end (or `unblock` does).
        let Ok(mut f) = std::fs::File::open(&path) else {
            return;
        };
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match f.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    let data = buf[..n].to_vec();
                    let chunk = if stderr {
                        ExecChunk::Stderr(data)
                    } else {
                        ExecChunk::Stdout(data)
                    };
                    if tx.blocking_send(chunk).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    })
}

/// Releases a reader still waiting in `open` (the shim never opened the FIFO): a writer
/// that comes and goes gives it EOF. Harmless when the reader is already past its open.
fn unblock(path: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path);
}

/// One write of stdin (cancel-safe: nothing is written unless it completes).
async fn write_some(
    w: &mut Option<tokio::net::unix::pipe::Sender>,
    buf: &[u8],
) -> std::io::Result<usize> {
    match w {
        Some(w) => w.write(buf).await,
        None => Err(std::io::ErrorKind::BrokenPipe.into()),
    }
}

impl Containerd {
    /// The container's process spec with `cmd` as arguments: the exec inherits user, env,
    /// cwd and capabilities.
    async fn exec_process(
        &self,
        id: &str,
        cmd: &[String],
        tty: bool,
    ) -> Result<Vec<u8>, RuntimeError> {
        let mut process = self.exec_process_spec(id, cmd, tty).await?;
        if tty {
            // Like the CRI: a terminal needs TERM for line editing to work.
            let env = process["env"].as_array().cloned().unwrap_or_default();
            if !env
                .iter()
                .any(|e| e.as_str().is_some_and(|s| s.starts_with("TERM=")))
            {
                let mut env = env;
                env.push(serde_json::json!("TERM=xterm"));
                process["env"] = serde_json::Value::Array(env);
            }
        }
        serde_json::to_vec(&process).map_err(|source| RuntimeError::Json {
            what: "exec process".into(),
            source,
        })
    }

    async fn kill_exec(&self, id: &str, exec_id: &str) {
        if let Ok(r) = self.req(
            KillRequest {
                container_id: id.into(),
                exec_id: exec_id.into(),
                signal: nix::sys::signal::Signal::SIGKILL as u32,
                all: false,
            },
            None,
        ) {
            let _ = self.tasks().kill(r).await;
        }
    }

    async fn delete_exec(&self, id: &str, exec_id: &str) {
        if let Ok(r) = self.req(
            DeleteProcessRequest {
                container_id: id.into(),
                exec_id: exec_id.into(),
            },
            None,
        ) {
            let _ = self.tasks().delete_process(r).await;
        }
    }

    /// See [`super::ContainerRuntime::exec_interactive`].
    pub(super) async fn do_exec_interactive(
        &self,
        id: &str,
        req: &ExecRequest,
        input: mpsc::Receiver<ExecInput>,
        output: mpsc::Sender<ExecChunk>,
    ) -> Result<u32, RuntimeError> {
        let exec_id = format!("exec-{}", uuid::Uuid::new_v4().simple());
        let dir = self.options.scratch_dir.join(&exec_id);
        std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::io(&dir, e))?;
        let result = self
            .exec_in_dir(id, &exec_id, &dir, req, input, output)
            .await;
        for name in ["stdout", "stderr"] {
            unblock(&dir.join(name));
        }
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    async fn exec_in_dir(
        &self,
        id: &str,
        exec_id: &str,
        dir: &Path,
        req: &ExecRequest,
        mut input: mpsc::Receiver<ExecInput>,
        output: mpsc::Sender<ExecChunk>,
    ) -> Result<u32, RuntimeError> {
        let process = self.exec_process(id, &req.cmd, req.tty).await?;
        let stdout = mkfifo(dir, "stdout")?;
        let stderr = if req.tty {
            None
        } else {
            Some(mkfifo(dir, "stderr")?)
        };
        let stdin = if req.stdin {
            Some(mkfifo(dir, "stdin")?)
        } else {
            None
        };
        let (chunk_tx, mut chunks) = mpsc::channel::<ExecChunk>(16);
        let mut readers = vec![spawn_reader(stdout.clone(), false, chunk_tx.clone())];
        if let Some(p) = &stderr {
            readers.push(spawn_reader(p.clone(), true, chunk_tx.clone()));
        }
        drop(chunk_tx);
        let path_str = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        self.tasks()
            .exec(self.req(
                ExecProcessRequest {
                    container_id: id.into(),
                    stdin: path_str(&stdin),
                    stdout: stdout.display().to_string(),
                    stderr: path_str(&stderr),
                    terminal: req.tty,
                    spec: Some(prost_types::Any {
                        type_url: PROCESS_TYPE.into(),
                        value: process,
                    }),
                    exec_id: exec_id.into(),
                },
                None,
            )?)
            .await
            .map_err(|e| RuntimeError::grpc("task exec", e))?;
        let run = self
            .run_exec(id, exec_id, req, stdin, &mut input, &output, &mut chunks)
            .await;
        if run.is_err() {
            self.kill_exec(id, exec_id).await;
        }
        // Makes the shim finish its copies and close the FIFOs: the readers reach EOF.
        self.delete_exec(id, exec_id).await;
        while let Ok(Some(c)) = tokio::time::timeout(OUTPUT_GRACE, chunks.recv()).await {
            if output.send(c).await.is_err() {
                break;
            }
        }
        drop(chunks);
        for r in readers {
            r.abort();
        }
        run
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_exec(
        &self,
        id: &str,
        exec_id: &str,
        req: &ExecRequest,
        stdin: Option<PathBuf>,
        input: &mut mpsc::Receiver<ExecInput>,
        output: &mpsc::Sender<ExecChunk>,
        chunks: &mut mpsc::Receiver<ExecChunk>,
    ) -> Result<u32, RuntimeError> {
        // Read-write, so the open neither blocks nor fails before the shim's reader exists.
        let mut stdin_w = match &stdin {
            Some(p) => Some(
                tokio::net::unix::pipe::OpenOptions::new()
                    .read_write(true)
                    .open_sender(p)
                    .map_err(|e| RuntimeError::io(p, e))?,
            ),
            None => None,
        };
        self.tasks()
            .start(self.req(
                StartRequest {
                    container_id: id.into(),
                    exec_id: exec_id.into(),
                },
                None,
            )?)
            .await
            .map_err(|e| RuntimeError::grpc("exec start", e))?;
        let wait = self.do_wait(id, exec_id);
        tokio::pin!(wait);
        let mut exit: Option<u32> = None;
        let mut input_open = true;
        let mut output_done = false;
        // Stdin not yet written: written inside the select, so a process that stops reading
        // never blocks the loop (its exit and output are still seen).
        let mut pending: Vec<u8> = Vec::new();
        let mut close_requested = false;
        let grace = tokio::time::sleep(Duration::from_secs(86400 * 365));
        tokio::pin!(grace);
        loop {
            if exit.is_some() {
                if output_done {
                    break;
                }
                // The process takes no more input.
                stdin_w = None;
                pending.clear();
            }
            if close_requested && pending.is_empty() && stdin_w.take().is_some() {
                let r = self.req(
                    CloseIoRequest {
                        container_id: id.into(),
                        exec_id: exec_id.into(),
                        stdin: true,
                    },
                    None,
                )?;
                if let Err(e) = self.tasks().close_io(r).await {
                    tracing::debug!(error = %e, "exec close stdin");
                }
            }
            tokio::select! {
                r = &mut wait, if exit.is_none() => {
                    exit = Some(r?.exit_code);
                    grace.as_mut().reset(tokio::time::Instant::now() + OUTPUT_GRACE);
                }
                c = chunks.recv(), if !output_done => match c {
                    Some(c) => {
                        if output.send(c).await.is_err() {
                            return Err(RuntimeError::Invalid("the exec client went away".into()));
                        }
                    }
                    None => output_done = true,
                },
                n = write_some(&mut stdin_w, &pending), if !pending.is_empty() => match n {
                    Ok(n) if n > 0 => {
                        pending.drain(..n);
                    }
                    _ => {
                        stdin_w = None;
                        pending.clear();
                    }
                },
                i = input.recv(), if input_open && pending.is_empty() => match i {
                    Some(ExecInput::Stdin(data)) => {
                        if stdin_w.is_some() {
                            pending = data;
                        }
                    }
                    Some(ExecInput::Resize { width, height }) => {
                        if req.tty {
                            let r = self.req(
                                ResizePtyRequest {
                                    container_id: id.into(),
                                    exec_id: exec_id.into(),
                                    width,
                                    height,
                                },
                                None,
                            )?;
                            if let Err(e) = self.tasks().resize_pty(r).await {
                                tracing::debug!(error = %e, "exec resize");
                            }
                        }
                    }
                    Some(ExecInput::CloseStdin) | None => {
                        input_open = false;
                        close_requested = true;
                    }
                },
                _ = output.closed() => {
                    return Err(RuntimeError::Invalid("the exec client went away".into()));
                }
                _ = &mut grace => break,
            }
        }
        exit.ok_or_else(|| RuntimeError::Invalid("exec ended without an exit status".into()))
    }
}
