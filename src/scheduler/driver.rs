//! The scheduling loop: a serial controller over pods that filters, scores and binds each
//! pending pod, and reports unschedulable ones (`PodScheduled=False`, `FailedScheduling`).
//!
//! Owns: the assumed-pod cache (bindings the informer has not seen yet). May call: the API
//! server (`pods/binding`, `pods/status`, events).

use super::resources::{NodeInfo, build_node_infos, is_terminal};
use super::{SCHEDULER_NAME, filters, score};
use crate::controllers::runtime::{Ctx, Error, NORMAL, WARNING, run_controller, serial_config};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How long a binding we made is trusted before the informer must confirm it.
const ASSUME_TTL: Duration = Duration::from_secs(30);

/// Bindings in flight at once: enough to hide API round trips behind the serial decision
/// loop, bounded so a burst of thousands of pods cannot flood the API server.
const BIND_POOL: usize = 32;

/// A binding we made: the pod, its node, and when.
type Assumed = (Arc<Pod>, String, Instant);

pub(super) struct State {
    nodes: Store<Node>,
    pods: Store<Pod>,
    /// pod key → (pod, node, when).
    assumed: Mutex<HashMap<String, Assumed>>,
    /// Pods that did not fit last time; node/pod changes retry everything only if any.
    unschedulable: Arc<Mutex<HashSet<String>>>,
    /// Permits for in-flight bindings (see `BIND_POOL`).
    binds: Arc<tokio::sync::Semaphore>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

fn needs_scheduling(pod: &Pod) -> bool {
    let Some(spec) = &pod.spec else { return false };
    spec.node_name.as_deref().is_none_or(str::is_empty)
        && spec.scheduler_name.as_deref().unwrap_or(SCHEDULER_NAME) == SCHEDULER_NAME
        && pod.metadata.deletion_timestamp.is_none()
        && !is_terminal(pod)
}

/// Upstream-style message: `0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had
/// untolerated taint {k: v}. preemption: 0/3 nodes are available: 3 Preemption is not helpful
/// for scheduling.`
pub fn unschedulable_message(total: usize, reasons: &[Vec<String>]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in reasons {
        for x in r {
            *counts.entry(x.as_str()).or_insert(0) += 1;
        }
    }
    let parts: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
    if total == 0 {
        return "no nodes available to schedule pods".to_string();
    }
    format!(
        "0/{total} nodes are available: {}. preemption: 0/{total} nodes are available: {total} Preemption is not helpful for scheduling.",
        parts.join(", ")
    )
}

fn snapshot(state: &State) -> (Vec<NodeInfo>, Vec<Arc<Pod>>) {
    let nodes = state.nodes.state();
    let pods = state.pods.state();
    let mut assumed = state.assumed.lock().unwrap_or_else(|p| p.into_inner());
    // Look up only the assumed pods in the cache (not a key map of every pod per decision).
    let bound: HashMap<String, bool> = assumed
        .iter()
        .filter_map(|(k, (p, _, _))| {
            let r = reflector::ObjectRef::<Pod>::from(p.as_ref());
            let cached = state.pods.get(&r)?;
            // A pod re-created under the same name (StatefulSet members) is not the one we
            // assumed: forget the old assumption or the new pod would wait for its expiry.
            if cached.metadata.uid != p.metadata.uid {
                return None;
            }
            let b = cached
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| !n.is_empty());
            Some((k.clone(), b))
        })
        .collect();
    // Forget assumptions the informer confirmed (bound or gone) or that expired.
    assumed.retain(|k, (_, _, at)| bound.get(k) == Some(&false) && at.elapsed() < ASSUME_TTL);
    let extra: Vec<(Arc<Pod>, String)> = assumed
        .values()
        .map(|(p, n, _)| (p.clone(), n.clone()))
        .collect();
    (build_node_infos(&nodes, &pods, &extra), pods)
}

async fn reconcile(pod: Arc<Pod>, ctx: Arc<Ctx<State>>) -> Result<Action, Error> {
    let k = key(&pod);
    if !needs_scheduling(&pod) {
        lock(&ctx.data.unschedulable).remove(&k);
        return Ok(Action::await_change());
    }
    // The snapshot also forgets expired assumptions (a binding that failed).
    let (infos, _) = snapshot(&ctx.data);
    if lock(&ctx.data.assumed).contains_key(&k) {
        return Ok(Action::requeue(ASSUME_TTL));
    }
    let mut feasible = Vec::new();
    let mut reasons = Vec::new();
    for n in &infos {
        let r = filters::filter(&pod, n, &infos);
        if r.is_empty() {
            feasible.push(n);
        } else {
            reasons.push(r);
        }
    }
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(i) = score::best(&pod, &feasible) else {
        lock(&ctx.data.unschedulable).insert(k.clone());
        let msg = unschedulable_message(infos.len(), &reasons);
        report_unschedulable(&api, &pod, &msg, &ctx).await?;
        // Node and pod changes also trigger a retry; this is the safety net.
        return Ok(Action::requeue(Duration::from_secs(15)));
    };
    lock(&ctx.data.unschedulable).remove(&k);
    let node = feasible[i].name().to_string();
    // Assume first, bind in the background (as upstream does): the next decision already
    // counts this pod on its node, and the serial loop does not wait for the API round trip.
    lock(&ctx.data.assumed).insert(k.clone(), (pod.clone(), node.clone(), Instant::now()));
    let ctx2 = ctx.clone();
    // Wait for a permit here: when the pool is full the decision loop slows to the API
    // server's pace instead of queueing unbounded work.
    let permit = ctx
        .data
        .binds
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| Error::Invalid {
            object: k.clone(),
            reason: "binding pool closed".into(),
        })?;
    tokio::spawn(async move {
        let _permit = permit;
        let binding = Binding {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            target: ObjectReference {
                kind: Some("Node".into()),
                api_version: Some("v1".into()),
                name: Some(node.clone()),
                ..Default::default()
            },
        };
        match api
            .create_subresource::<_, serde_json::Value>(
                "binding",
                &name,
                &PostParams::default(),
                &binding,
            )
            .await
        {
            Ok(_) => {
                tracing::debug!(pod = %k, %node, "bound");
                ctx2.event(
                    pod.as_ref(),
                    NORMAL,
                    "Scheduled",
                    format!("Successfully assigned {ns}/{name} to {node}"),
                )
                .await;
            }
            // Already bound or deleted meanwhile: nothing to do.
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {}
            Err(e) => {
                tracing::debug!(pod = %k, error = %e, "binding failed; will retry");
                // Forget the assumption; the requeue below retries the pod.
                lock(&ctx2.data.assumed).remove(&k);
            }
        }
    });
    Ok(Action::requeue(Duration::from_secs(5)))
}

async fn report_unschedulable(
    api: &Api<Pod>,
    pod: &Pod,
    msg: &str,
    ctx: &Ctx<State>,
) -> Result<(), Error> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let same = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"))
        .is_some_and(|c| c.status == "False" && c.message.as_deref() == Some(msg));
    if same {
        return Ok(());
    }
    let patch = json!({"status": {"conditions": [{
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": msg,
        "lastTransitionTime": Time(jiff::Timestamp::now()),
    }]}});
    api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
        .await?;
    ctx.event(pod, WARNING, "FailedScheduling", msg.to_string())
        .await;
    Ok(())
}

/// Run the scheduling loop until `shutdown`.
pub(super) async fn run(client: kube::Client, shutdown: CancellationToken) {
    let (nodes, writer) = reflector::store();
    let node_events = reflector::reflector(
        writer,
        watcher(Api::<Node>::all(client.clone()), watcher::Config::default()).default_backoff(),
    );
    // Pod deletions free room: retry everything then, as on any node change.
    let pod_deletions = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .filter_map(|e| async move { matches!(e, Ok(watcher::Event::Delete(_))).then_some(()) });
    let (tx, rx) = futures::channel::mpsc::channel::<()>(16);
    let unschedulable: Arc<Mutex<HashSet<String>>> = Arc::default();
    let trig = {
        let waiting = unschedulable.clone();
        let waiting2 = unschedulable.clone();
        let shutdown = shutdown.clone();
        let mut tx_nodes = tx.clone();
        let mut tx_pods = tx;
        tokio::spawn(async move {
            let nodes_fut = node_events.for_each(|_| {
                if !lock(&waiting).is_empty() {
                    let _ = tx_nodes.try_send(());
                }
                async {}
            });
            let pods_fut = pod_deletions.for_each(|_| {
                if !lock(&waiting2).is_empty() {
                    let _ = tx_pods.try_send(());
                }
                async {}
            });
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = futures::future::join(nodes_fut, pods_fut) => {}
            }
        })
    };
    let controller = Controller::new(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .with_config(serial_config())
        .reconcile_all_on(rx);
    let pods = controller.store();
    if nodes.wait_until_ready().await.is_err() {
        return;
    }
    let ctx = Ctx::new(
        client,
        SCHEDULER_NAME,
        State {
            nodes,
            pods,
            assumed: Mutex::new(HashMap::new()),
            unschedulable,
            binds: Arc::new(tokio::sync::Semaphore::new(BIND_POOL)),
        },
    );
    run_controller(controller, reconcile, ctx, shutdown).await;
    trig.abort();
}
