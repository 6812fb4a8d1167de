//! Node-pressure eviction, like the kubelet's eviction manager: every monitoring interval
//! (10 s) read the signals (`memory.available`, `nodefs.*`, `imagefs.*`, `pid.available`),
//! compare them with the hard thresholds (`--eviction-hard`), publish the node's
//! `MemoryPressure` / `DiskPressure` / `PIDPressure` (kept true for
//! `--eviction-pressure-transition-period` after the last time a threshold was met), and
//! while a threshold is met: for disk, first reclaim node-level resources (delete unused
//! images), then evict at most one pod, ranked as upstream ([`rank`]), with grace period 0,
//! status `Failed`/`Evicted` and an `Evicted` event. Critical pods are never evicted.
//! [`admit`] is the matching admission check (no BestEffort pods under memory pressure,
//! nothing non-critical under disk or PID pressure).
//!
//! Owns: the pressure state of the node. May call: a [`StatsProvider`], the API (listing
//! this node's pods), the pod sync loop (to stop a pod), image GC, the event sink.

mod rank;
mod signals;
mod threshold;

pub use rank::{Candidate, SYSTEM_CRITICAL_PRIORITY, eviction_message, is_critical, rank};
pub use signals::{HostStats, Observation, PodUsage, StatsProvider};
pub use threshold::{
    Condition, Signal, Threshold, Value, default_hard, format_quantity, parse_eviction_hard,
    parse_go_duration,
};

use crate::agent::events::{EventSink, Kind};
use crate::agent::image_gc::{ImageGc, ImageGcPolicy};
use crate::agent::sync::Eviction;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// The status reason of evicted pods and the event reason.
pub const REASON: &str = "Evicted";

/// Configuration errors.
#[derive(Debug, thiserror::Error)]
pub enum EvictionError {
    #[error("{0}")]
    Threshold(String),
}

/// Eviction and image GC settings (`cli` builds them from kubelet-style flags).
#[derive(Debug, Clone, PartialEq)]
pub struct EvictionConfig {
    /// Hard thresholds (`--eviction-hard`; the kubelet's defaults otherwise).
    pub hard: Vec<Threshold>,
    /// How often signals are read (the kubelet: 10 s).
    pub monitoring_interval: Duration,
    /// How long a pressure condition stays after its threshold was last met.
    pub pressure_transition_period: Duration,
    pub image_gc: ImageGcPolicy,
}

impl Default for EvictionConfig {
    fn default() -> Self {
        EvictionConfig {
            hard: default_hard(),
            monitoring_interval: Duration::from_secs(10),
            pressure_transition_period: Duration::from_secs(300),
            image_gc: ImageGcPolicy::default(),
        }
    }
}

/// The node's pressure conditions (what `node` reports), with their transition times.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodePressure {
    pub memory: bool,
    pub disk: bool,
    pub pid: bool,
    pub memory_since: Option<jiff::Timestamp>,
    pub disk_since: Option<jiff::Timestamp>,
    pub pid_since: Option<jiff::Timestamp>,
}

impl NodePressure {
    /// Condition names in force, as upstream lists them.
    pub fn conditions(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.memory {
            v.push("MemoryPressure");
        }
        if self.disk {
            v.push("DiskPressure");
        }
        if self.pid {
            v.push("PIDPressure");
        }
        v
    }
}

/// Thresholds against observations, with the transition-period memory of conditions.
#[derive(Debug)]
pub struct Monitor {
    thresholds: Vec<Threshold>,
    transition: Duration,
    last_met: HashMap<Condition, Instant>,
    pressure: NodePressure,
}

impl Monitor {
    pub fn new(thresholds: Vec<Threshold>, transition: Duration) -> Self {
        Monitor {
            thresholds,
            transition,
            last_met: HashMap::new(),
            pressure: NodePressure::default(),
        }
    }

    /// The thresholds met by `obs` (memory first, then the disk signals) and the updated
    /// pressure conditions.
    pub fn update(
        &mut self,
        obs: &HashMap<Signal, Observation>,
        now: Instant,
    ) -> Vec<(Threshold, Observation)> {
        let mut met: Vec<(Threshold, Observation)> = self
            .thresholds
            .iter()
            .filter_map(|t| {
                let o = obs.get(&t.signal)?;
                t.met(o.available, o.capacity).then_some((*t, *o))
            })
            .collect();
        met.sort_by_key(|(t, _)| t.signal);
        for (t, _) in &met {
            self.last_met.insert(t.signal.condition(), now);
        }
        let active = |c: Condition| {
            self.last_met
                .get(&c)
                .is_some_and(|at| now.saturating_duration_since(*at) <= self.transition)
        };
        let stamp = jiff::Timestamp::now();
        let p = &mut self.pressure;
        for (cond, flag, since) in [
            (
                Condition::MemoryPressure,
                &mut p.memory,
                &mut p.memory_since,
            ),
            (Condition::DiskPressure, &mut p.disk, &mut p.disk_since),
            (Condition::PidPressure, &mut p.pid, &mut p.pid_since),
        ] {
            let now_active = active(cond);
            if now_active != *flag || since.is_none() {
                *flag = now_active;
                *since = Some(stamp);
            }
        }
        met
    }

    /// The current conditions.
    pub fn pressure(&self) -> &NodePressure {
        &self.pressure
    }
}

fn is_best_effort(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .all(|c| {
            c.resources.as_ref().is_none_or(|r| {
                let empty = |m: &Option<std::collections::BTreeMap<String, _>>| {
                    m.as_ref()
                        .is_none_or(|m| !m.contains_key("cpu") && !m.contains_key("memory"))
                };
                empty(&r.requests) && empty(&r.limits)
            })
        })
}

fn tolerates_memory_pressure(pod: &Pod) -> bool {
    let taint = k8s_openapi::api::core::v1::Taint {
        key: "node.kubernetes.io/memory-pressure".into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    };
    pod.spec
        .iter()
        .flat_map(|s| s.tolerations.iter().flatten())
        .any(|t| crate::scheduler::filters::toleration_matches(t, &taint))
}

/// Admission under pressure, as the kubelet's eviction manager admits pods: `Some(message)`
/// when `pod` must be rejected (status `Failed`, reason `Evicted`).
pub fn admit(pressure: &NodePressure, pod: &Pod) -> Option<String> {
    let conds = pressure.conditions();
    if conds.is_empty() || is_critical(pod) {
        return None;
    }
    // As the kubelet: only memory pressure admits some pods; disk or PID pressure none.
    if pressure.memory
        && !pressure.disk
        && !pressure.pid
        && (!is_best_effort(pod) || tolerates_memory_pressure(pod))
    {
        return None;
    }
    Some(format!("The node had condition: [{}]. ", conds.join(" ")))
}

/// What the manager runs with.
pub struct Manager {
    pub config: EvictionConfig,
    pub stats: Arc<dyn StatsProvider>,
    pub client: kube::Client,
    pub node: String,
    pub events: Arc<dyn EventSink>,
    /// The pod sync loop's eviction inbox.
    pub evict: mpsc::UnboundedSender<Eviction>,
    pub pressure: watch::Sender<NodePressure>,
    /// Disk reclaim before evicting (None: no image GC).
    pub image_gc: Option<Arc<ImageGc>>,
}

fn is_active(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && !matches!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
}

impl Manager {
    /// Monitors until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut monitor = Monitor::new(
            self.config.hard.clone(),
            self.config.pressure_transition_period,
        );
        let mut evicted: HashSet<String> = HashSet::new();
        let mut tick = tokio::time::interval(self.config.monitoring_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            self.synchronize(&mut monitor, &mut evicted).await;
        }
    }

    /// One monitoring pass: conditions, then reclaim or evict at most one pod.
    async fn synchronize(&self, monitor: &mut Monitor, evicted: &mut HashSet<String>) {
        let obs = self.stats.observe();
        let met = monitor.update(&obs, Instant::now());
        let now_pressure = monitor.pressure().clone();
        let before = self.pressure.borrow().clone();
        if before != now_pressure {
            info!(conditions = ?now_pressure.conditions(), "node pressure changed");
            self.pressure.send_replace(now_pressure.clone());
            // The kubelet's node events ("Node n status is now: NodeHasInsufficientMemory").
            for (was, is, on, off) in [
                (
                    before.memory,
                    now_pressure.memory,
                    "NodeHasInsufficientMemory",
                    "NodeHasSufficientMemory",
                ),
                (
                    before.disk,
                    now_pressure.disk,
                    "NodeHasDiskPressure",
                    "NodeHasNoDiskPressure",
                ),
                (
                    before.pid,
                    now_pressure.pid,
                    "NodeHasInsufficientPID",
                    "NodeHasSufficientPID",
                ),
            ] {
                if was != is {
                    let reason = if is { on } else { off };
                    let message = format!("Node {} status is now: {reason}", self.node);
                    crate::agent::image_gc::node_event(
                        &self.client,
                        &self.node,
                        false,
                        reason,
                        message,
                    )
                    .await;
                }
            }
        }
        let Some((threshold, mut observed)) = met.first().copied() else {
            return;
        };
        let signal = threshold.signal;
        debug!(
            signal = signal.name(),
            available = observed.available,
            "eviction threshold met"
        );
        if signal.condition() == Condition::DiskPressure
            && let Some(gc) = &self.image_gc
        {
            match gc.delete_unused().await {
                Ok(freed) => info!(freed, "reclaimed disk by deleting unused images"),
                Err(e) => warn!(error = %e, "image garbage collection for disk pressure"),
            }
            match self.stats.observe().get(&signal) {
                Some(o) if !threshold.met(o.available, o.capacity) => {
                    info!(
                        signal = signal.name(),
                        "node-level reclaim relieved the pressure"
                    );
                    return;
                }
                Some(o) => observed = *o,
                None => {}
            }
        }
        let pods = match Api::<Pod>::all(self.client.clone())
            .list(&ListParams::default().fields(&format!("spec.nodeName={}", self.node)))
            .await
        {
            Ok(l) => l.items,
            Err(e) => {
                warn!(error = %e, "eviction manager: cannot list pods");
                return;
            }
        };
        // Forget evictions of pods that are gone (or that the API shows finished).
        evicted.retain(|uid| {
            pods.iter()
                .any(|p| p.metadata.uid.as_deref() == Some(uid.as_str()) && is_active(p))
        });
        let candidates: Vec<Candidate> = pods
            .into_iter()
            .filter(is_active)
            .filter(|p| !evicted.contains(p.metadata.uid.as_deref().unwrap_or("")))
            .map(|pod| Candidate {
                usage: self.stats.pod_usage(&pod),
                pod,
            })
            .collect();
        let Some(victim) = rank(candidates, signal).into_iter().next() else {
            warn!(
                signal = signal.name(),
                "eviction manager: unable to evict any pods from the node"
            );
            return;
        };
        let message = eviction_message(
            signal,
            threshold.quantity(observed.capacity),
            observed.available,
            &victim,
        );
        let uid = victim.pod.metadata.uid.clone().unwrap_or_default();
        info!(pod = %crate::agent::pod::pod_key(&victim.pod), %message, "evicting pod");
        self.events
            .emit(&victim.pod, None, Kind::Warning, REASON, message.clone());
        if self
            .evict
            .send(Eviction {
                uid: uid.clone(),
                namespace: victim.pod.metadata.namespace.clone().unwrap_or_default(),
                name: victim.pod.metadata.name.clone().unwrap_or_default(),
                reason: REASON.into(),
                message,
            })
            .is_ok()
        {
            evicted.insert(uid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MI: u64 = 1024 * 1024;

    fn obs(mem_avail: u64, disk_avail: u64) -> HashMap<Signal, Observation> {
        HashMap::from([
            (
                Signal::MemoryAvailable,
                Observation {
                    available: mem_avail,
                    capacity: 4096 * MI,
                },
            ),
            (
                Signal::NodeFsAvailable,
                Observation {
                    available: disk_avail,
                    capacity: 1000,
                },
            ),
        ])
    }

    #[test]
    fn pressure_follows_thresholds_and_lingers_for_the_transition_period() {
        let mut m = Monitor::new(default_hard(), Duration::from_secs(300));
        let t0 = Instant::now();
        assert!(m.update(&obs(2048 * MI, 500), t0).is_empty());
        assert!(!m.pressure().memory && !m.pressure().disk);
        let met = m.update(&obs(50 * MI, 50), t0 + Duration::from_secs(10));
        let signals: Vec<Signal> = met.iter().map(|(t, _)| t.signal).collect();
        assert_eq!(signals, [Signal::MemoryAvailable, Signal::NodeFsAvailable]);
        assert!(m.pressure().memory && m.pressure().disk);
        // Relieved, but within the transition period: still under pressure.
        assert!(
            m.update(&obs(2048 * MI, 500), t0 + Duration::from_secs(20))
                .is_empty()
        );
        assert!(m.pressure().memory);
        m.update(&obs(2048 * MI, 500), t0 + Duration::from_secs(400));
        assert!(!m.pressure().memory && !m.pressure().disk);
    }

    #[test]
    fn missing_signals_never_meet_a_threshold() {
        let mut m = Monitor::new(default_hard(), Duration::ZERO);
        assert!(m.update(&HashMap::new(), Instant::now()).is_empty());
    }

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn admission_rejects_best_effort_pods_under_memory_pressure_unless_tolerated() {
        let p = NodePressure {
            memory: true,
            ..Default::default()
        };
        let be = pod(json!({"spec": {"containers": [{"name": "c"}]}}));
        assert_eq!(
            admit(&p, &be).as_deref(),
            Some("The node had condition: [MemoryPressure]. ")
        );
        let burstable = pod(json!({"spec": {"containers": [
            {"name": "c", "resources": {"requests": {"memory": "10Mi"}}}]}}));
        assert_eq!(admit(&p, &burstable), None);
        let tolerating = pod(
            json!({"spec": {"containers": [{"name": "c"}], "tolerations": [
            {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"}]}}),
        );
        assert_eq!(admit(&p, &tolerating), None);
        let critical =
            pod(json!({"spec": {"priority": 2000001000, "containers": [{"name": "c"}]}}));
        assert_eq!(admit(&p, &critical), None);
        assert_eq!(admit(&NodePressure::default(), &be), None);
    }

    #[test]
    fn pid_pressure_follows_its_threshold_and_rejects_every_non_critical_pod() {
        let mut m = Monitor::new(
            parse_eviction_hard("pid.available<10%").unwrap(),
            Duration::ZERO,
        );
        let pids = |available| {
            HashMap::from([(
                Signal::PidAvailable,
                Observation {
                    available,
                    capacity: 1000,
                },
            )])
        };
        let t0 = Instant::now();
        assert!(m.update(&pids(500), t0).is_empty());
        assert!(!m.pressure().pid);
        let met = m.update(&pids(50), t0);
        assert_eq!(met[0].0.signal, Signal::PidAvailable);
        assert!(m.pressure().pid && !m.pressure().memory && !m.pressure().disk);
        let burstable = pod(json!({"spec": {"containers": [
            {"name": "c", "resources": {"requests": {"memory": "10Mi"}}}]}}));
        assert_eq!(
            admit(m.pressure(), &burstable).as_deref(),
            Some("The node had condition: [PIDPressure]. ")
        );
        m.update(&pids(500), t0 + Duration::from_secs(1));
        assert!(!m.pressure().pid);
    }

    #[test]
    fn admission_rejects_non_critical_pods_under_disk_pressure() {
        let p = NodePressure {
            disk: true,
            ..Default::default()
        };
        let burstable = pod(json!({"spec": {"containers": [
            {"name": "c", "resources": {"requests": {"memory": "10Mi"}}}]}}));
        assert_eq!(
            admit(&p, &burstable).as_deref(),
            Some("The node had condition: [DiskPressure]. ")
        );
    }
}
