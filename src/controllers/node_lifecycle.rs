//! Node lifecycle: a node whose Lease (kube-node-lease) and Ready heartbeat are older than the
//! grace period becomes `Ready=Unknown` with the `node.kubernetes.io/unreachable` NoExecute
//! taint (`not-ready` for `Ready=False`); pods on NoExecute-tainted nodes are evicted once their
//! toleration runs out (default seconds when they declare none); each node gets a /24 podCIDR.
//! Like upstream's TaintNodesByCondition, `MemoryPressure`/`DiskPressure`/`PIDPressure=True`
//! become the `node.kubernetes.io/{memory,disk,pid}-pressure:NoSchedule` taints.
//!
//! Owns: node health conditions set on the kubelet's behalf, NoExecute taints, condition
//! NoSchedule taints, podCIDRs, taint-based eviction. May call: the API server.

use super::ControllersConfig;
use super::pods::is_active;
use super::runtime::{Ctx, Error, WARNING, run_controller};
use crate::scheduler::filters::toleration_matches;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Taint for nodes that stopped reporting.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// Taint for nodes reporting `Ready=False`.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// NoSchedule taints for node conditions that are `True` (TaintNodesByCondition).
pub const CONDITION_TAINTS: [(&str, &str); 3] = [
    ("MemoryPressure", "node.kubernetes.io/memory-pressure"),
    ("DiskPressure", "node.kubernetes.io/disk-pressure"),
    ("PIDPressure", "node.kubernetes.io/pid-pressure"),
];

/// The condition NoSchedule taint keys `node` should carry, as upstream's
/// TaintNodesByCondition: `not-ready` for `Ready=False`, `unreachable` for a node whose
/// status is unknown (the kubelet stopped reporting: no pressure taints then, its pressure
/// conditions are unknown too), and one per pressure condition that is `True`. The scheduler
/// has no readiness filter of its own: a pod tolerating these taints (a DaemonSet's network
/// plugin, say) may go to a node that is not ready, as upstream.
fn condition_taints(node: &Node, silent: bool) -> Vec<&'static str> {
    let conds = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let ready = conds
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str());
    if silent || !matches!(ready, Some("True") | Some("False")) {
        return vec![UNREACHABLE];
    }
    let mut out: Vec<&'static str> = CONDITION_TAINTS
        .iter()
        .filter(|(kind, _)| conds.iter().any(|c| c.type_ == *kind && c.status == "True"))
        .map(|(_, key)| *key)
        .collect();
    if ready == Some("False") {
        out.insert(0, NOT_READY);
    }
    out
}

/// Whether the NoSchedule taint `key` is one [`condition_taints`] manages.
fn condition_managed(key: &str) -> bool {
    key == NOT_READY || key == UNREACHABLE || CONDITION_TAINTS.iter().any(|(_, k)| *k == key)
}

/// Controller state: configuration plus a lock so two nodes never get the same CIDR.
pub struct State {
    config: ControllersConfig,
    cidr_lock: tokio::sync::Mutex<()>,
}

type C = Ctx<State>;

/// The `index`-th /24 of `cidr` (`10.42.0.0/16`, 3 → `10.42.3.0/24`), if it fits.
pub fn nth_subnet(cidr: &str, index: u32) -> Option<String> {
    let (ip, len) = cidr.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let len: u32 = len.parse().ok()?;
    if len > 24 || index >= 1u32 << (24 - len) {
        return None;
    }
    let base = u32::from(ip) & (u32::MAX.checked_shl(32 - len).unwrap_or(0));
    Some(format!("{}/24", Ipv4Addr::from(base + (index << 8))))
}

async fn allocate_cidr(node: &Node, ctx: &C) -> Result<(), Error> {
    if node
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_ref())
        .is_some()
    {
        return Ok(());
    }
    let _guard = ctx.data.cidr_lock.lock().await;
    let api: Api<Node> = Api::all(ctx.client.clone());
    // The cache may lag our own earlier allocation: re-read under the lock.
    let fresh = api.get(&node.name_any()).await?;
    if fresh
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_ref())
        .is_some()
    {
        return Ok(());
    }
    let used: Vec<String> = api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|n| n.spec.and_then(|s| s.pod_cidr))
        .collect();
    let mut i = 0;
    let cidr = loop {
        let Some(c) = nth_subnet(&ctx.data.config.cluster_cidr, i) else {
            tracing::warn!(node = %node.name_any(), "cluster CIDR exhausted");
            return Ok(());
        };
        if !used.contains(&c) {
            break c;
        }
        i += 1;
    };
    api.patch(
        &node.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}})),
    )
    .await?;
    Ok(())
}

fn ready_condition(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

async fn last_heartbeat(node: &Node, ctx: &C) -> Result<jiff::Timestamp, Error> {
    let leases: Api<Lease> = Api::namespaced(ctx.client.clone(), "kube-node-lease");
    let lease = leases
        .get_opt(&node.name_any())
        .await?
        .and_then(|l| l.spec)
        .and_then(|s| s.renew_time)
        .map(|t| t.0);
    let ready = ready_condition(node)
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0);
    let created = node.metadata.creation_timestamp.as_ref().map(|t| t.0);
    Ok([lease, ready, created]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or_else(jiff::Timestamp::now))
}

async fn reconcile(node: Arc<Node>, ctx: Arc<C>) -> Result<Action, Error> {
    allocate_cidr(&node, &ctx).await?;
    let cfg = &ctx.data.config;
    let api: Api<Node> = Api::all(ctx.client.clone());
    let name = node.name_any();
    let now = jiff::Timestamp::now();
    let last = last_heartbeat(&node, &ctx).await?;
    let silent = now.duration_since(last).as_secs_f64() > cfg.node_monitor_grace.as_secs_f64();
    let mut status = ready_condition(&node)
        .map(|c| c.status.clone())
        .unwrap_or_else(|| "Unknown".into());
    if silent && status != "Unknown" {
        let conds: Vec<NodeCondition> = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|mut c| {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = Some(Time(now));
                c
            })
            .collect();
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": conds}})),
        )
        .await?;
        status = "Unknown".into();
    }
    // The NoExecute taint that matches the Ready state.
    let want = match status.as_str() {
        "True" => None,
        "False" => Some(NOT_READY),
        _ => Some(UNREACHABLE),
    };
    let mut taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let before = taints.clone();
    taints.retain(|t| {
        !((t.key == UNREACHABLE || t.key == NOT_READY) && Some(t.key.as_str()) != want)
    });
    if let Some(k) = want {
        if !taints.iter().any(|t| t.key == k && t.effect == "NoExecute") {
            taints.push(Taint {
                key: k.into(),
                effect: "NoExecute".into(),
                time_added: Some(Time(now)),
                value: None,
            });
        }
    }
    let by_condition = condition_taints(&node, silent);
    taints.retain(|t| {
        t.effect != "NoSchedule"
            || !condition_managed(&t.key)
            || by_condition.contains(&t.key.as_str())
    });
    for k in by_condition {
        if !taints
            .iter()
            .any(|t| t.key == k && t.effect == "NoSchedule")
        {
            taints.push(Taint {
                key: k.into(),
                effect: "NoSchedule".into(),
                time_added: Some(Time(now)),
                value: None,
            });
        }
    }
    if taints != before {
        api.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taints": taints}})),
        )
        .await?;
    }
    let next_eviction = evict(&name, &taints, &ctx).await?;
    let period =
        (cfg.node_monitor_grace / 4).clamp(Duration::from_millis(500), Duration::from_secs(5));
    Ok(Action::requeue(
        next_eviction.map_or(period, |e| e.min(period)),
    ))
}

/// Evict pods that do not (or no longer) tolerate the node's NoExecute taints; the time until
/// the next pending eviction.
async fn evict(node: &str, taints: &[Taint], ctx: &C) -> Result<Option<Duration>, Error> {
    let no_exec: Vec<&Taint> = taints.iter().filter(|t| t.effect == "NoExecute").collect();
    if no_exec.is_empty() {
        return Ok(None);
    }
    let pods = Api::<Pod>::all(ctx.client.clone())
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await?
        .items;
    let now = jiff::Timestamp::now();
    let mut next: Option<Duration> = None;
    for pod in pods.iter().filter(|p| is_active(p)) {
        let tols = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.clone())
            .unwrap_or_default();
        // The earliest deadline over all taints; None = tolerated forever.
        let mut deadline: Option<jiff::Timestamp> = None;
        for t in &no_exec {
            let added = t.time_added.as_ref().map(|x| x.0).unwrap_or(now);
            let secs = match tols.iter().find(|tol| toleration_matches(tol, t)) {
                Some(tol) => match tol.toleration_seconds {
                    None => continue,
                    Some(s) => s.max(0),
                },
                // Upstream's DefaultTolerationSeconds admission gives these two a default.
                None if t.key == UNREACHABLE || t.key == NOT_READY => {
                    i64::try_from(ctx.data.config.default_eviction.as_secs()).unwrap_or(300)
                }
                None => 0,
            };
            let d = added + jiff::SignedDuration::from_secs(secs);
            deadline = Some(deadline.map_or(d, |x: jiff::Timestamp| x.min(d)));
        }
        let Some(d) = deadline else { continue };
        if d <= now {
            let ns = pod.namespace().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
            match api.delete(&pod.name_any(), &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
            ctx.event(
                pod,
                WARNING,
                "TaintManagerEviction",
                format!("Marking for deletion Pod {ns}/{}", pod.name_any()),
            )
            .await;
        } else {
            let left = Duration::from_secs_f64(d.duration_since(now).as_secs_f64().max(0.1));
            next = Some(next.map_or(left, |n| n.min(left)));
        }
    }
    Ok(next)
}

/// Run the node lifecycle controller until `shutdown`.
pub async fn run(client: Client, config: ControllersConfig, shutdown: CancellationToken) {
    let controller = Controller::new(Api::<Node>::all(client.clone()), watcher::Config::default())
        .watches(
            Api::<Lease>::namespaced(client.clone(), "kube-node-lease"),
            watcher::Config::default(),
            |l| Some(ObjectRef::<Node>::new(&l.name_any())),
        );
    let ctx = Ctx::new(
        client,
        "node-controller",
        State {
            config,
            cidr_lock: tokio::sync::Mutex::new(()),
        },
    );
    run_controller(controller, reconcile, ctx, shutdown).await;
}

#[cfg(test)]
mod tests {
    use super::{condition_taints, nth_subnet};

    #[test]
    fn pressure_conditions_that_are_true_become_no_schedule_taints() {
        let node: k8s_openapi::api::core::v1::Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n"},
            "status": {"conditions": [
                {"type": "MemoryPressure", "status": "True"},
                {"type": "DiskPressure", "status": "False"},
                {"type": "Ready", "status": "True"},
            ]},
        }))
        .unwrap();
        assert_eq!(
            condition_taints(&node, false),
            ["node.kubernetes.io/memory-pressure"]
        );
        assert_eq!(
            condition_taints(&node, true),
            ["node.kubernetes.io/unreachable"]
        );
        let not_ready: k8s_openapi::api::core::v1::Node =
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "n"},
                "status": {"conditions": [{"type": "Ready", "status": "False"}]},
            }))
            .unwrap();
        assert_eq!(
            condition_taints(&not_ready, false),
            ["node.kubernetes.io/not-ready"]
        );
    }

    #[test]
    fn pod_cidrs_are_consecutive_slash_24s_of_the_cluster_cidr() {
        assert_eq!(
            nth_subnet("10.42.0.0/16", 0).as_deref(),
            Some("10.42.0.0/24")
        );
        assert_eq!(
            nth_subnet("10.42.0.0/16", 3).as_deref(),
            Some("10.42.3.0/24")
        );
        assert_eq!(nth_subnet("10.42.0.0/16", 256), None);
        assert_eq!(nth_subnet("10.42.0.0/24", 1), None);
    }
}
