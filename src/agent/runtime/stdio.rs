//! The live stdio of interactive containers (`stdin: true` or `tty: true`), which
//! `kubectl attach -i` and `kubectl run -i` need.
//!
//! containerd's logging-binary stdio has no stdin (the shim connects only stdout and stderr
//! to the log driver), so such containers get FIFOs instead, as the CRI plugin does: a
//! directory `<scratch>/stdio/<container id>/` holds `stdin`, `stdout` (and `stderr`
//! without a terminal) and `state.json` (the stdio settings and the CRI log file). The shim
//! opens the FIFOs at task create and keeps its own writer on `stdin`, so the container's
//! stdin stays open while the agent is down; `Tasks.CloseIO` ends it.
//!
//! The agent is the reader: per container, one thread per output FIFO writes the CRI log
//! (with [`super::logger`]) and fans each chunk out to the attached sessions; a task feeds
//! `stdin`. After an agent restart the directory is found again (see
//! [`StdioHub::ensure`]) and the FIFOs are reopened: output written meanwhile waited in the
//! pipe (the shim holds both ends), and stdin is still open unless `stdinOnce` closed it.
//! When the container's output ends (the process exited) the directory is removed.
//!
//! Owns: the stdio directories and their readers/writers. May call: the filesystem.
//! Attach sessions on top of this are in [`super::attach`].

use super::ExecChunk;
use super::error::RuntimeError;
use super::logger::{RotatingWriter, copy_stream};
use k8s_openapi::api::core::v1::Container;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// OCI annotation marking a container whose stdin is kept open (`stdin: true`).
pub const ANNOTATION_STDIN: &str = "io.k3rs.container.stdin";
/// OCI annotation marking `stdinOnce: true`.
pub const ANNOTATION_STDIN_ONCE: &str = "io.k3rs.container.stdin-once";

/// Chunks of output buffered per session before a slow one starts losing output.
const FANOUT: usize = 1024;

/// How a container's stdio is wired.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StdioConfig {
    /// Keep a stdin open for attach sessions (`stdin: true`).
    pub stdin: bool,
    /// Close stdin when the first attach session's stdin ends (`stdinOnce: true`).
    pub stdin_once: bool,
    /// Run on a terminal: one output stream, resizable (`tty: true`).
    pub tty: bool,
}

impl StdioConfig {
    /// The settings recorded in an OCI spec by [`mark_spec`].
    pub fn from_spec(spec: &Value) -> Self {
        let note = |k: &str| {
            spec.pointer("/annotations").and_then(|a| a.get(k)) == Some(&Value::from("true"))
        };
        StdioConfig {
            stdin: note(ANNOTATION_STDIN),
            stdin_once: note(ANNOTATION_STDIN_ONCE),
            tty: spec.pointer("/process/terminal") == Some(&Value::Bool(true)),
        }
    }

    /// Needs FIFOs (and the agent as its reader) rather than the log driver.
    pub fn interactive(&self) -> bool {
        self.stdin || self.tty
    }
}

/// Records `c`'s `stdin`, `stdinOnce` and `tty` in its OCI spec: a terminal for `tty` (with
/// `TERM=xterm`, as the CRI sets it), annotations for the stdin settings, which the runtime
/// reads back when it creates the task.
pub fn mark_spec(spec: &mut Value, c: &Container) {
    let tty = c.tty == Some(true);
    let stdin = c.stdin == Some(true);
    if tty {
        spec["process"]["terminal"] = Value::Bool(true);
        let env = spec["process"]["env"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !env
            .iter()
            .any(|e| e.as_str().is_some_and(|s| s.starts_with("TERM=")))
        {
            let mut env = env;
            env.push(Value::from("TERM=xterm"));
            spec["process"]["env"] = Value::Array(env);
        }
    }
    if stdin {
        let mut notes = spec["annotations"].as_object().cloned().unwrap_or_default();
        notes.insert(ANNOTATION_STDIN.into(), Value::from("true"));
        if c.stdin_once == Some(true) {
            notes.insert(ANNOTATION_STDIN_ONCE.into(), Value::from("true"));
        }
        spec["annotations"] = Value::Object(notes);
    }
}

/// What a restarted agent needs to take a container's stdio over again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    config: StdioConfig,
    log_path: PathBuf,
    max_size: u64,
    max_files: u32,
}

/// The FIFO paths handed to `Tasks.Create` (empty = not connected).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StdioPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
}

/// Input of a container's stdin writer.
pub(super) enum StdinMsg {
    Data(Vec<u8>),
    /// Drop our writer (end of stdin); answered once done.
    Close(oneshot::Sender<()>),
}

/// A container whose output the agent is reading.
pub(super) struct Live {
    pub config: StdioConfig,
    /// Every output chunk, for attach sessions (subscribe to receive).
    pub out: broadcast::Sender<ExecChunk>,
    /// Cancelled once the output ended (every chunk was sent before).
    pub done: CancellationToken,
    /// Feeds the stdin FIFO.
    pub stdin: mpsc::Sender<StdinMsg>,
    /// Stdin was closed (`stdinOnce`): later input is dropped.
    pub stdin_closed: AtomicBool,
}

/// The stdio directories under one root and the containers being read.
#[derive(Debug, Clone)]
pub(super) struct StdioHub {
    root: PathBuf,
    live: Arc<Mutex<HashMap<String, Arc<Live>>>>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("config", &self.config)
            .finish()
    }
}

fn mkfifo(p: &Path) -> Result<(), RuntimeError> {
    match nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => Ok(()),
        Err(e) => Err(RuntimeError::io(p, std::io::Error::from(e))),
    }
}

/// Releases a reader blocked in `open` (no writer ever came): a writer that comes and goes
/// gives it EOF. Harmless when nothing waits.
fn unblock(path: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path);
}

/// Copies what it reads to the attached sessions too.
struct Tee {
    inner: std::fs::File,
    out: broadcast::Sender<ExecChunk>,
    stderr: bool,
}

impl Read for Tee {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            let data = buf[..n].to_vec();
            // No session attached is fine: the log still gets everything.
            let _ = self.out.send(if self.stderr {
                ExecChunk::Stderr(data)
            } else {
                ExecChunk::Stdout(data)
            });
        }
        Ok(n)
    }
}

/// Reads one output FIFO to its end into the CRI log (and the sessions).
fn copy_output(
    fifo: &Path,
    stream: &'static str,
    out: broadcast::Sender<ExecChunk>,
    sink: Option<&Mutex<RotatingWriter>>,
) {
    // Blocks until the shim holds its writer (at once for a running container).
    let inner = match std::fs::File::open(fifo) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(fifo = %fifo.display(), error = %e, "cannot open container output");
            return;
        }
    };
    let mut tee = Tee {
        inner,
        out,
        stderr: stream == "stderr",
    };
    let r = match sink {
        Some(sink) => copy_stream(tee, stream, sink),
        // No log file: the sessions still get the output.
        None => std::io::copy(&mut tee, &mut std::io::sink()).map(|_| ()),
    };
    if let Err(e) = r {
        tracing::warn!(fifo = %fifo.display(), error = %e, "container output copy ended");
    }
}

/// Writes the stdin FIFO until told to close (or every sender is gone).
async fn stdin_writer(path: PathBuf, mut rx: mpsc::Receiver<StdinMsg>) {
    let mut w: Option<tokio::net::unix::pipe::Sender> = None;
    let mut closed = false;
    while let Some(msg) = rx.recv().await {
        match msg {
            StdinMsg::Data(data) if !closed => {
                if w.is_none() {
                    // Write-only and non-blocking: fails (ENXIO) when the shim no longer
                    // reads stdin, and then the input has nowhere to go.
                    w = tokio::net::unix::pipe::OpenOptions::new()
                        .open_sender(&path)
                        .map_err(|e| tracing::debug!(error = %e, "stdin fifo not writable"))
                        .ok();
                }
                if let Some(s) = &mut w
                    && s.write_all(&data).await.is_err()
                {
                    w = None;
                }
            }
            StdinMsg::Data(_) => {}
            StdinMsg::Close(ack) => {
                w = None;
                closed = true;
                let _ = ack.send(());
            }
        }
    }
}

impl StdioHub {
    /// Directories live under `root` (`<scratch>/stdio`).
    pub fn new(root: PathBuf) -> Self {
        StdioHub {
            root,
            live: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// True when `id` was created with FIFOs that are still there.
    pub fn has(&self, id: &str) -> bool {
        self.dir(id).join("state.json").exists()
    }

    /// True when the agent is reading `id`'s output.
    pub fn is_live(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    /// `id`'s live stdio, if the agent is reading it.
    pub fn get(&self, id: &str) -> Option<Arc<Live>> {
        self.live.lock().ok().and_then(|m| m.get(id).cloned())
    }

    /// Creates `id`'s FIFOs and state before its task is created.
    pub fn prepare(
        &self,
        id: &str,
        config: StdioConfig,
        log_path: &Path,
        (max_size, max_files): (u64, u32),
    ) -> Result<StdioPaths, RuntimeError> {
        let dir = self.dir(id);
        std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::io(&dir, e))?;
        let mut paths = StdioPaths::default();
        let fifo = |name: &str| -> Result<String, RuntimeError> {
            let p = dir.join(name);
            mkfifo(&p)?;
            Ok(p.display().to_string())
        };
        if config.stdin {
            paths.stdin = fifo("stdin")?;
        }
        paths.stdout = fifo("stdout")?;
        if !config.tty {
            paths.stderr = fifo("stderr")?;
        }
        let state = State {
            config,
            log_path: log_path.to_path_buf(),
            max_size,
            max_files,
        };
        let json = serde_json::to_vec(&state).map_err(|source| RuntimeError::Json {
            what: format!("stdio state of {id}"),
            source,
        })?;
        let file = dir.join("state.json");
        std::fs::write(&file, json).map_err(|e| RuntimeError::io(&file, e))?;
        Ok(paths)
    }

    /// The live stdio of `id`, starting its readers when the agent is not reading it yet
    /// (just created, or after an agent restart); `None` when `id` has no FIFOs. Only for
    /// a task that holds its FIFOs: a reader waits until the shim opens them.
    pub fn ensure(&self, id: &str) -> Result<Option<Arc<Live>>, RuntimeError> {
        let mut map = self
            .live
            .lock()
            .map_err(|_| RuntimeError::Invalid("stdio map poisoned".into()))?;
        if let Some(l) = map.get(id) {
            return Ok(Some(l.clone()));
        }
        let dir = self.dir(id);
        let file = dir.join("state.json");
        let Ok(bytes) = std::fs::read(&file) else {
            return Ok(None);
        };
        let state: State = serde_json::from_slice(&bytes).map_err(|source| RuntimeError::Json {
            what: file.display().to_string(),
            source,
        })?;
        let (out, _) = broadcast::channel(FANOUT);
        let (stdin_tx, stdin_rx) = mpsc::channel(16);
        let live = Arc::new(Live {
            config: state.config,
            out: out.clone(),
            done: CancellationToken::new(),
            stdin: stdin_tx,
            stdin_closed: AtomicBool::new(false),
        });
        if state.config.stdin {
            tokio::spawn(stdin_writer(dir.join("stdin"), stdin_rx));
        }
        self.spawn_readers(id, &dir, &state, out, live.done.clone())?;
        map.insert(id.to_string(), live.clone());
        Ok(Some(live))
    }

    fn spawn_readers(
        &self,
        id: &str,
        dir: &Path,
        state: &State,
        out: broadcast::Sender<ExecChunk>,
        done: CancellationToken,
    ) -> Result<(), RuntimeError> {
        let sink = match RotatingWriter::open(&state.log_path, state.max_size, state.max_files) {
            Ok(w) => Some(Arc::new(Mutex::new(w))),
            Err(e) => {
                tracing::warn!(log = %state.log_path.display(), error = %e, "container log not writable");
                None
            }
        };
        let mut streams = vec![("stdout", dir.join("stdout"))];
        if !state.config.tty {
            streams.push(("stderr", dir.join("stderr")));
        }
        let mut readers = Vec::new();
        for (stream, fifo) in streams {
            let (out, sink) = (out.clone(), sink.clone());
            let t = std::thread::Builder::new()
                .name(format!("stdio-{stream}"))
                .spawn(move || copy_output(&fifo, stream, out, sink.as_deref()))
                .map_err(|e| RuntimeError::io(dir, e))?;
            readers.push(t);
        }
        let hub = self.clone();
        let id = id.to_string();
        std::thread::Builder::new()
            .name("stdio-end".into())
            .spawn(move || {
                for r in readers {
                    let _ = r.join();
                }
                hub.finish(&id);
                done.cancel();
            })
            .map_err(|e| RuntimeError::io(dir, e))?;
        Ok(())
    }

    /// The output ended (the process exited and the shim closed its FIFOs): nothing will
    /// use the directory again.
    fn finish(&self, id: &str) {
        // Under the lock, so `ensure` never starts readers on a half-removed directory.
        if let Ok(mut map) = self.live.lock() {
            let _ = std::fs::remove_dir_all(self.dir(id));
            map.remove(id);
        }
    }

    /// The container is being removed: release readers still waiting for a writer and
    /// remove its directory. Idempotent.
    pub fn forget(&self, id: &str) {
        let dir = self.dir(id);
        if !dir.exists() {
            return;
        }
        let Some(live) = self.get(id) else {
            if let Ok(_map) = self.live.lock() {
                let _ = std::fs::remove_dir_all(&dir);
            }
            return;
        };
        // A reader thread may not have reached its `open` yet (a writer that comes too
        // early finds no reader): retry until the readers are done; they remove the
        // directory then. The task is deleted, so its shim's writers go away too.
        let spawned = std::thread::Builder::new()
            .name("stdio-forget".into())
            .spawn(move || {
                for _ in 0..100 {
                    for name in ["stdout", "stderr"] {
                        unblock(&dir.join(name));
                    }
                    if live.done.is_cancelled() {
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                tracing::warn!(dir = %dir.display(), "container output readers did not end");
            });
        if let Err(e) = spawned {
            tracing::warn!(container = id, error = %e, "cannot release container output readers");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    fn container(v: Value) -> Container {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn stdio_settings_round_trip_through_the_oci_spec() {
        let mut spec = serde_json::json!({"process": {"terminal": false, "env": ["PATH=/bin"]}});
        let c = container(
            serde_json::json!({"name": "c", "stdin": true, "stdinOnce": true, "tty": true}),
        );
        mark_spec(&mut spec, &c);
        let cfg = StdioConfig::from_spec(&spec);
        assert_eq!(
            cfg,
            StdioConfig {
                stdin: true,
                stdin_once: true,
                tty: true
            }
        );
        assert_eq!(spec["process"]["env"][1], "TERM=xterm");
        // A plain container keeps the log driver.
        let mut plain = serde_json::json!({"process": {"terminal": false}});
        mark_spec(&mut plain, &container(serde_json::json!({"name": "c"})));
        assert!(!StdioConfig::from_spec(&plain).interactive());
        assert!(plain.get("annotations").is_none());
    }

    #[tokio::test]
    async fn output_is_logged_in_cri_format_and_fanned_out_until_the_writer_closes() {
        let tmp = tempfile::tempdir().unwrap();
        let hub = StdioHub::new(tmp.path().join("stdio"));
        let log = tmp.path().join("logs/0.log");
        std::fs::create_dir_all(log.parent().unwrap()).unwrap();
        let cfg = StdioConfig {
            stdin: true,
            stdin_once: false,
            tty: true,
        };
        let paths = hub.prepare("c1", cfg, &log, (0, 5)).unwrap();
        assert!(paths.stderr.is_empty() && !paths.stdin.is_empty());
        assert!(hub.has("c1"));
        let live = hub.ensure("c1").unwrap().unwrap();
        let mut rx = live.out.subscribe();
        // The shim's side: a writer on stdout.
        let stdout = PathBuf::from(&paths.stdout);
        let writer = tokio::task::spawn_blocking(move || {
            let mut w = std::fs::OpenOptions::new()
                .write(true)
                .open(stdout)
                .unwrap();
            w.write_all(b"hello\nprompt> ").unwrap();
        });
        let mut got = Vec::new();
        while !got.ends_with(b"prompt> ") {
            match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
                Ok(Ok(ExecChunk::Stdout(d))) => got.extend(d),
                other => panic!("unexpected {other:?}"),
            }
        }
        writer.await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), live.done.cancelled())
            .await
            .unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].ends_with(" stdout F hello"), "{text}");
        assert!(lines[1].ends_with(" stdout F prompt> "), "{text}");
        // The output ended: the directory is gone and nothing is live.
        assert!(!hub.has("c1") && !hub.is_live("c1"));
        assert!(hub.ensure("c1").unwrap().is_none());
    }

    #[tokio::test]
    async fn forgetting_a_container_whose_task_never_opened_its_fifos_ends_the_readers() {
        let tmp = tempfile::tempdir().unwrap();
        let hub = StdioHub::new(tmp.path().join("stdio"));
        let cfg = StdioConfig {
            stdin: true,
            stdin_once: true,
            tty: false,
        };
        hub.prepare("c2", cfg, &tmp.path().join("0.log"), (0, 5))
            .unwrap();
        let live = hub.ensure("c2").unwrap().unwrap();
        hub.forget("c2");
        tokio::time::timeout(Duration::from_secs(5), live.done.cancelled())
            .await
            .unwrap();
        assert!(!tmp.path().join("stdio/c2").exists());
    }
}
