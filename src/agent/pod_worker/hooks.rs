//! Container lifecycle hooks: `postStart` right after a container starts (a failure kills
//! the container, event `FailedPostStartHook`) and `preStop` before SIGTERM on deletion,
//! counted inside the grace period (event `FailedPreStopHook`). exec and httpGet reuse the
//! probe code; `sleep` just waits.
//!
//! Owns: running hooks. May call: [`crate::agent::probe`], the container runtime.

use super::Worker;
use crate::agent::events::Kind;
use crate::agent::pod;
use crate::agent::probe;
use crate::agent::runtime::ContainerRuntime;
use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Probe};
use std::net::IpAddr;
use std::time::Duration;
use tracing::{info, warn};

/// Runs one hook handler in container `id`, giving up after `limit`.
pub(super) async fn run_handler(
    rt: &dyn ContainerRuntime,
    c: &Container,
    id: &str,
    ip: IpAddr,
    h: &LifecycleHandler,
    limit: Duration,
) -> Result<(), String> {
    if let Some(s) = &h.sleep {
        tokio::time::sleep(Duration::from_secs(s.seconds.max(0) as u64).min(limit)).await;
        return Ok(());
    }
    if h.exec.is_none() && h.http_get.is_none() {
        return Err("hook handler has no exec, httpGet or sleep action".into());
    }
    // A probe with the hook's action; its timeout bounds the hook (upstream bounds hooks
    // by the grace period only).
    let as_probe = Probe {
        exec: h.exec.clone(),
        http_get: h.http_get.clone(),
        timeout_seconds: Some(limit.as_secs().clamp(1, i32::MAX as u64) as i32),
        ..Default::default()
    };
    let run = probe::run(rt, c, id, ip, &as_probe);
    // Exec timeouts are enforced by the runtime; this guards httpGet and slow runtimes.
    match tokio::time::timeout(limit + Duration::from_secs(1), run).await {
        Ok(r) => r,
        Err(_) => Err("hook timed out".into()),
    }
}

impl Worker {
    /// Runs container `i`'s postStart hook (if any) right after it started; on failure
    /// emits `FailedPostStartHook` and kills the container (its exit then follows
    /// restartPolicy). Returns false when the hook failed.
    pub(super) async fn post_start(&mut self, i: usize, id: &str) -> bool {
        let Some(h) = self.ctrs[i]
            .spec
            .lifecycle
            .as_ref()
            .and_then(|l| l.post_start.clone())
        else {
            return true;
        };
        let Some(ip) = self.sandbox.as_ref().map(|s| s.ip) else {
            return true;
        };
        // A hook may run for the whole grace period: other pods may start meanwhile.
        self.slot = None;
        let rt = self.deps.runtime.clone();
        let res = run_handler(rt.as_ref(), &self.ctrs[i].spec, id, ip, &h, self.grace()).await;
        let Err(e) = res else {
            return true;
        };
        let name = self.ctrs[i].view.name.clone();
        warn!(pod = %pod::pod_key(&self.pod), container = %name, error = %e, "postStart hook failed");
        self.event(
            i,
            Kind::Warning,
            "FailedPostStartHook",
            format!("PostStartHook failed: {e}"),
        );
        if let Err(e) = rt
            .kill_container(id, nix::sys::signal::Signal::SIGKILL as i32)
            .await
        {
            warn!(id = %id, error = %e, "killing container after failed postStart hook");
        }
        false
    }

    /// Runs the preStop hooks of the running containers concurrently, within `limit`;
    /// failures emit `FailedPreStopHook` (the stop goes on regardless).
    pub(super) async fn pre_stop(&self, limit: Duration) {
        let Some(ip) = self.sandbox.as_ref().map(|s| s.ip) else {
            return;
        };
        let rt = self.deps.runtime.clone();
        let mut hooks = Vec::new();
        for (i, c) in self.ctrs.iter().enumerate() {
            let (Some(id), super::CState::Running { .. }) = (c.id.clone(), &c.view.state) else {
                continue;
            };
            let Some(h) = c.spec.lifecycle.as_ref().and_then(|l| l.pre_stop.clone()) else {
                continue;
            };
            let rt = rt.clone();
            let spec = c.spec.clone();
            hooks.push(async move {
                let r = run_handler(rt.as_ref(), &spec, &id, ip, &h, limit).await;
                (i, r)
            });
        }
        if hooks.is_empty() {
            return;
        }
        info!(pod = %pod::pod_key(&self.pod), hooks = hooks.len(), "running preStop hooks");
        for (i, r) in futures::future::join_all(hooks).await {
            if let Err(e) = r {
                warn!(pod = %pod::pod_key(&self.pod), container = %self.ctrs[i].view.name, error = %e, "preStop hook failed");
                self.event(
                    i,
                    Kind::Warning,
                    "FailedPreStopHook",
                    format!("PreStopHook failed: {e}"),
                );
            }
        }
    }
}
