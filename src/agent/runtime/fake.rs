//! `FakeRuntime`: an in-memory [`ContainerRuntime`] that records calls, for unit tests of
//! pod-worker logic. Tests make containers exit with [`FakeRuntime::exit`].
//!
//! Owns: nothing real. May call: nothing.

use super::error::RuntimeError;
use super::{
    ContainerCreate, ContainerRuntime, ContainerState, ContainerSummary, ExecOutput, ExitInfo,
    ImageInfo, PullPolicy, RuntimeFuture, TaskStatus,
};
use futures::FutureExt;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeCall {
    EnsureImage(String),
    /// A registry pull and the registry hosts it had credentials for.
    PullImage(String, Vec<String>),
    Create(String),
    Start(String),
    Kill(String, i32),
    Remove(String),
    Exec(String, Vec<String>),
}

#[derive(Debug)]
struct FakeContainer {
    state: ContainerState,
    exited: watch::Sender<Option<ExitInfo>>,
}

/// Records calls; containers run until [`FakeRuntime::exit`] or a kill.
#[derive(Debug, Default)]
pub struct FakeRuntime {
    calls: Mutex<Vec<FakeCall>>,
    containers: Mutex<HashMap<String, FakeContainer>>,
    /// Images that `ensure_image` refuses (to test image errors).
    pub missing_images: Mutex<Vec<String>>,
    /// Exit code every exec returns (to test exec probes).
    pub exec_exit_code: Mutex<u32>,
    /// Containers whose next exit is reported as OOM-killed.
    pub oom: Mutex<Vec<String>>,
}

impl FakeRuntime {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<FakeCall> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn record(&self, call: FakeCall) {
        if let Ok(mut c) = self.calls.lock() {
            c.push(call);
        }
    }

    /// Ids of containers that currently exist.
    pub fn container_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .containers
            .lock()
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// Makes a running container exit with `code`.
    pub fn exit(&self, id: &str, code: u32) {
        if let Ok(mut cs) = self.containers.lock()
            && let Some(c) = cs.get_mut(id)
            && c.state.status == TaskStatus::Running
        {
            let info = ExitInfo {
                exit_code: code,
                exited_at: Some(SystemTime::now()),
                oom_killed: self
                    .oom
                    .lock()
                    .map(|o| o.contains(&id.to_string()))
                    .unwrap_or(false),
            };
            c.state.status = TaskStatus::Stopped;
            c.state.exit = Some(info);
            c.state.pid = 0;
            let _ = c.exited.send(Some(info));
        }
    }
}

impl ContainerRuntime for FakeRuntime {
    fn version(&self) -> RuntimeFuture<'_, String> {
        async { Ok("fake://1.0".to_string()) }.boxed()
    }

    fn pull_image<'a>(
        &'a self,
        image: &'a str,
        secrets: &'a super::PullSecrets,
    ) -> RuntimeFuture<'a, super::PulledImage> {
        async move {
            let hosts = secrets.0.iter().map(|(h, _)| h.clone()).collect();
            self.record(FakeCall::PullImage(image.into(), hosts));
            let missing = self
                .missing_images
                .lock()
                .map(|m| m.iter().any(|i| i == image))
                .unwrap_or(false);
            if missing {
                return Err(RuntimeError::Pull {
                    image: image.into(),
                    reason: "fake: not found".into(),
                });
            }
            Ok(super::PulledImage {
                info: ImageInfo {
                    name: image.into(),
                    id: format!("{image}@sha256:fake"),
                    chain_id: "sha256:chain".into(),
                    ..Default::default()
                },
                size: 1234,
            })
        }
        .boxed()
    }

    fn ensure_image<'a>(&'a self, image: &'a str, _: PullPolicy) -> RuntimeFuture<'a, ImageInfo> {
        async move {
            self.record(FakeCall::EnsureImage(image.into()));
            let missing = self
                .missing_images
                .lock()
                .map(|m| m.iter().any(|i| i == image))
                .unwrap_or(false);
            if missing {
                return Err(RuntimeError::ImageNotPresent {
                    image: image.into(),
                    reason: "fake".into(),
                });
            }
            Ok(ImageInfo {
                name: image.into(),
                id: format!("{image}@sha256:fake"),
                chain_id: "sha256:chain".into(),
                ..Default::default()
            })
        }
        .boxed()
    }

    fn create_container<'a>(&'a self, c: &'a ContainerCreate) -> RuntimeFuture<'a, ()> {
        async move {
            self.record(FakeCall::Create(c.id.clone()));
            let mut cs = self
                .containers
                .lock()
                .map_err(|_| RuntimeError::Invalid("poisoned".into()))?;
            if cs.contains_key(&c.id) {
                return Err(RuntimeError::Invalid(format!("{} already exists", c.id)));
            }
            let (tx, _) = watch::channel(None);
            cs.insert(
                c.id.clone(),
                FakeContainer {
                    state: ContainerState {
                        id: c.id.clone(),
                        labels: c.labels.clone(),
                        image: c.image.name.clone(),
                        created_at: Some(SystemTime::now()),
                        status: TaskStatus::Created,
                        pid: 0,
                        exit: None,
                    },
                    exited: tx,
                },
            );
            Ok(())
        }
        .boxed()
    }

    fn start_container<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, u32> {
        async move {
            self.record(FakeCall::Start(id.into()));
            let mut cs = self
                .containers
                .lock()
                .map_err(|_| RuntimeError::Invalid("poisoned".into()))?;
            let c = cs
                .get_mut(id)
                .ok_or_else(|| RuntimeError::NotFound(id.into()))?;
            c.state.status = TaskStatus::Running;
            c.state.pid = 4242;
            Ok(4242)
        }
        .boxed()
    }

    fn wait_container<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ExitInfo> {
        async move {
            let mut rx = {
                let cs = self
                    .containers
                    .lock()
                    .map_err(|_| RuntimeError::Invalid("poisoned".into()))?;
                let c = cs
                    .get(id)
                    .ok_or_else(|| RuntimeError::NotFound(id.into()))?;
                if let Some(exit) = c.state.exit {
                    return Ok(exit);
                }
                c.exited.subscribe()
            };
            loop {
                if let Some(exit) = *rx.borrow_and_update() {
                    return Ok(exit);
                }
                if rx.changed().await.is_err() {
                    return Err(RuntimeError::NotFound(id.into()));
                }
            }
        }
        .boxed()
    }

    fn container_state<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, Option<ContainerState>> {
        async move {
            Ok(self
                .containers
                .lock()
                .ok()
                .and_then(|cs| cs.get(id).map(|c| c.state.clone())))
        }
        .boxed()
    }

    fn kill_container<'a>(&'a self, id: &'a str, signal: i32) -> RuntimeFuture<'a, ()> {
        async move {
            self.record(FakeCall::Kill(id.into(), signal));
            // Every signal is fatal in the fake: exit code 128 + signal.
            self.exit(id, 128 + signal.max(0) as u32);
            Ok(())
        }
        .boxed()
    }

    fn remove_container<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ()> {
        async move {
            self.record(FakeCall::Remove(id.into()));
            self.exit(id, 137);
            if let Ok(mut cs) = self.containers.lock() {
                cs.remove(id);
            }
            Ok(())
        }
        .boxed()
    }

    fn list_containers<'a>(
        &'a self,
        label: &'a str,
        value: &'a str,
    ) -> RuntimeFuture<'a, Vec<ContainerSummary>> {
        async move {
            let cs = self
                .containers
                .lock()
                .map_err(|_| RuntimeError::Invalid("poisoned".into()))?;
            Ok(cs
                .values()
                .filter(|c| match c.state.labels.get(label) {
                    Some(v) => value.is_empty() || v == value,
                    None => false,
                })
                .map(|c| ContainerSummary {
                    id: c.state.id.clone(),
                    labels: c.state.labels.clone(),
                })
                .collect())
        }
        .boxed()
    }

    fn exec<'a>(
        &'a self,
        id: &'a str,
        cmd: &'a [String],
        _: Duration,
    ) -> RuntimeFuture<'a, ExecOutput> {
        async move {
            self.record(FakeCall::Exec(id.into(), cmd.to_vec()));
            Ok(ExecOutput {
                exit_code: self.exec_exit_code.lock().map(|c| *c).unwrap_or(0),
                output: Vec::new(),
            })
        }
        .boxed()
    }
}
