//! The probe half of the pod worker: arming probes for a container run and acting on
//! their verdicts (readiness gates `ready`; failed liveness/startup kill the container).
//!
//! Owns: nothing beyond [`Worker`]'s probe fields. May call: [`crate::agent::probe`].

use super::{Ctr, Worker};
use crate::agent::events::Kind;
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
                    // As the kubelet's prober (repeats are aggregated into a count).
                    self.event(
                        i,
                        Kind::Warning,
                        "Unhealthy",
                        format!("{kind:?} probe failed: {e}"),
                    );
                }
                let c = &mut self.ctrs[i];
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
                let name = self.ctrs[i].view.name.clone();
                info!(pod = %key, container = %name, ?kind, reason = %why, "probe failed; restarting container");
                let probe_name = format!("{kind:?}").to_lowercase();
                self.event(
                    i,
                    Kind::Normal,
                    "Killing",
                    format!("Container {name} failed {probe_name} probe, will be restarted"),
                );
                self.ctrs[i].probes.clear();
                let probe_grace = match kind {
                    probe::Kind::Startup => self.ctrs[i].spec.startup_probe.as_ref(),
                    _ => self.ctrs[i].spec.liveness_probe.as_ref(),
                }
                .and_then(|p| p.termination_grace_period_seconds);
                let grace = Duration::from_secs(
                    probe_grace.unwrap_or(self.grace().as_secs() as i64).max(0) as u64,
                );
                let pre_stop = self.ctrs[i]
                    .spec
                    .lifecycle
                    .as_ref()
                    .and_then(|l| l.pre_stop.clone());
                let spec = self.ctrs[i].spec.clone();
                let events = self.deps.events.clone();
                let (pod, field) = (self.pod.clone(), self.field_path(i));
                // As the kubelet's killContainer: preStop inside the grace period, then
                // SIGTERM, then SIGKILL when the grace period is over (PID 1 without a
                // handler ignores SIGTERM). In the background: probes of the other
                // containers and the pod's status must not wait for it.
                let rt = rt.clone();
                tokio::spawn(async move {
                    let start = Instant::now();
                    if let Some(h) = pre_stop.filter(|_| !grace.is_zero()) {
                        if let Err(e) =
                            super::hooks::run_handler(rt.as_ref(), &spec, &id, ip, &h, grace).await
                        {
                            warn!(id = %id, error = %e, "preStop hook failed");
                            let msg = format!("PreStopHook failed: {e}");
                            events.emit(&pod, field, Kind::Warning, "FailedPreStopHook", msg);
                        }
                    }
                    let left = grace.saturating_sub(start.elapsed());
                    let sig = if left.is_zero() {
                        nix::sys::signal::Signal::SIGKILL
                    } else {
                        nix::sys::signal::Signal::SIGTERM
                    };
                    if let Err(e) = rt.kill_container(&id, sig as i32).await {
                        warn!(id = %id, error = %e, "killing container after failed probe");
                    }
                    if !left.is_zero() {
                        tokio::time::sleep(left).await;
                        let _ = rt
                            .kill_container(&id, nix::sys::signal::Signal::SIGKILL as i32)
                            .await;
                    }
                });
            }
        }
    }
}
