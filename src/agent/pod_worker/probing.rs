//! The probe half of the pod worker: arming probes for a container run and acting on
//! their verdicts (readiness gates `ready`; failed liveness/startup kill the container).
//!
//! Owns: nothing beyond [`Worker`]'s probe fields. May call: [`crate::agent::probe`].

use super::{Ctr, Worker};
use crate::agent::pod;
use crate::agent::probe;
use crate::agent::status::CState;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

impl Worker {
    /// Fresh probe state for a new run of `c`.
    pub(super) fn arm_probes(c: &mut Ctr) {
        c.probes = if c.view.init && !c.view.sidecar {
            Vec::new()
        } else {
            probe::probes_of(&c.spec, Instant::now())
        };
        c.view.probe_ready = c.spec.readiness_probe.as_ref().map(|_| false);
        c.view.startup_done = c.spec.startup_probe.is_none();
    }

    /// Runs the due probes of running containers; a failed liveness or startup probe
    /// kills the container (its exit then follows restartPolicy).
    pub(super) async fn run_probes(&mut self) {
        let Some(ip) = self.sandbox.as_ref().map(|s| s.ip) else {
            return;
        };
        let rt = self.deps.runtime.clone();
        let key = pod::pod_key(&self.pod);
        for i in 0..self.ctrs.len() {
            let (Some(id), CState::Running { .. }) =
                (self.ctrs[i].id.clone(), &self.ctrs[i].view.state)
            else {
                continue;
            };
            let mut kill = None;
            for j in 0..self.ctrs[i].probes.len() {
                let now = Instant::now();
                let c = &self.ctrs[i];
                let p = &c.probes[j];
                if !p.due(now) {
                    continue;
                }
                if p.kind != probe::Kind::Startup && !c.view.startup_done {
                    // Not before the startup probe passed; look again next period.
                    self.ctrs[i].probes[j].defer(now);
                    continue;
                }
                let result = probe::run(rt.as_ref(), &c.spec, &id, ip, &p.probe).await;
                let c = &mut self.ctrs[i];
                let kind = c.probes[j].kind;
                let verdict = c.probes[j].record(result.is_ok(), Instant::now());
                if let Err(e) = &result {
                    debug!(pod = %key, container = %c.view.name, ?kind, error = %e, "probe failed");
                }
                match (kind, verdict) {
                    (probe::Kind::Startup, Some(true)) => c.view.startup_done = true,
                    (probe::Kind::Readiness, v) => c.view.probe_ready = Some(v == Some(true)),
                    (probe::Kind::Startup | probe::Kind::Liveness, Some(false)) => {
                        kill = Some((kind, result.err().unwrap_or_default()));
                        break;
                    }
                    _ => {}
                }
            }
            if let Some((kind, why)) = kill {
                info!(pod = %key, container = %self.ctrs[i].view.name, ?kind, reason = %why, "probe failed; restarting container");
                self.ctrs[i].probes.clear();
                let grace = self.ctrs[i]
                    .spec
                    .liveness_probe
                    .as_ref()
                    .and_then(|p| p.termination_grace_period_seconds);
                let sig = if grace == Some(0) {
                    nix::sys::signal::Signal::SIGKILL
                } else {
                    nix::sys::signal::Signal::SIGTERM
                };
                if let Err(e) = rt.kill_container(&id, sig as i32).await {
                    warn!(id = %id, error = %e, "killing container after failed probe");
                }
                // Escalate if it ignores SIGTERM (PID 1 without a handler does).
                let rt2 = rt.clone();
                let grace = Duration::from_secs(
                    grace.unwrap_or(self.grace().as_secs() as i64).max(0) as u64,
                );
                tokio::spawn(async move {
                    tokio::time::sleep(grace).await;
                    let _ = rt2
                        .kill_container(&id, nix::sys::signal::Signal::SIGKILL as i32)
                        .await;
                });
            }
        }
    }
}
