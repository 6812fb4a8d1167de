//! The scheduling loop: a serial controller over pods that filters, scores and binds each
//! pending pod, and reports unschedulable ones (`PodScheduled=False`, `FailedScheduling`).
//!
//! Owns: the decision loop and the watch feeding the scheduler [`Cache`] (node views and
//! bindings the watch has not shown yet). May call: the API server (`pods/binding`,
//! `pods/status`, events).

use super::cache::{Cache, pod_key};
use super::resources::is_terminal;
use super::volumes::PodVolumes;
use super::{SCHEDULER_NAME, filters, score};
use crate::controllers::runtime::{Ctx, Error, NORMAL, WARNING, run_controller, serial_config};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long a binding we made is trusted before the informer must confirm it.
const ASSUME_TTL: Duration = Duration::from_secs(30);

/// Bindings in flight at once: enough to hide API round trips behind the serial decision
/// loop, bounded so a burst of thousands of pods cannot flood the API server.
const BIND_POOL: usize = 32;

pub(super) struct State {
    /// Node views kept from the node and pod watches, plus our assumed bindings.
    cache: Arc<Mutex<Cache>>,
    /// Pods that did not fit last time; node/pod changes retry everything only if any.
    unschedulable: Arc<Mutex<HashSet<String>>>,
    /// Permits for in-flight bindings (see `BIND_POOL`).
    binds: Arc<tokio::sync::Semaphore>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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

/// The outcome of one decision, computed under the cache lock.
enum Decision {
    /// Already counted on a node (bound, or our binding is in flight).
    Placed,
    /// No node fits: the upstream-worded message.
    Unschedulable(String),
    /// Bind to this node (already assumed in the cache).
    Bind(String),
}

fn decide(cache: &Mutex<Cache>, pod: &Arc<Pod>, k: &str, vols: &PodVolumes) -> Decision {
    let mut cache = lock(cache);
    // Forget bindings never confirmed (a binding that failed silently).
    cache.expire(ASSUME_TTL);
    if cache.is_placed(k) {
        return Decision::Placed;
    }
    let infos = cache.infos();
    let mut feasible = Vec::new();
    let mut reasons = Vec::new();
    for n in infos {
        let mut r = filters::filter(pod, n, infos);
        r.extend(vols.conflict(n));
        if r.is_empty() {
            feasible.push(n);
        } else {
            reasons.push(r);
        }
    }
    let Some(i) = score::best(pod, &feasible) else {
        return Decision::Unschedulable(unschedulable_message(infos.len(), &reasons));
    };
    let node = feasible[i].name().to_string();
    // Assume first, bind in the background (as upstream does): the next decision already
    // counts this pod on its node, and the serial loop does not wait for the API round trip.
    cache.assume(pod.clone(), &node);
    Decision::Bind(node)
}

async fn reconcile(pod: Arc<Pod>, ctx: Arc<Ctx<State>>) -> Result<Action, Error> {
    let k = pod_key(&pod);
    if !needs_scheduling(&pod) {
        lock(&ctx.data.unschedulable).remove(&k);
        return Ok(Action::await_change());
    }
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let vols = match super::volumes::check(&ctx.client, &pod).await? {
        Ok(v) => v,
        Err(why) => {
            let total = lock(&ctx.data.cache).infos().len();
            lock(&ctx.data.unschedulable).insert(k.clone());
            let msg = super::volumes::unresolvable_message(total, &why);
            report_unschedulable(&api, &pod, &msg, &ctx).await?;
            return Ok(Action::requeue(Duration::from_secs(5)));
        }
    };
    let node = match decide(&ctx.data.cache, &pod, &k, &vols) {
        Decision::Placed => return Ok(Action::requeue(ASSUME_TTL)),
        Decision::Unschedulable(msg) => {
            lock(&ctx.data.unschedulable).insert(k.clone());
            report_unschedulable(&api, &pod, &msg, &ctx).await?;
            // Node and pod changes also trigger a retry; this is the safety net.
            return Ok(Action::requeue(Duration::from_secs(15)));
        }
        Decision::Bind(node) => node,
    };
    lock(&ctx.data.unschedulable).remove(&k);
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
                lock(&ctx2.data.cache).forget(&k);
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

/// Feed node and pod watch events into the cache; retry unschedulable pods (through `retry`)
/// when a node changes or a pod goes away. Adds a permit to `ready` after each watch's first
/// complete list.
async fn feed_cache(
    client: kube::Client,
    cache: Arc<Mutex<Cache>>,
    unschedulable: Arc<Mutex<HashSet<String>>>,
    retry: futures::channel::mpsc::Sender<()>,
    ready: Arc<tokio::sync::Semaphore>,
) {
    let kick = |retry: &mut futures::channel::mpsc::Sender<()>| {
        if !lock(&unschedulable).is_empty() {
            let _ = retry.try_send(());
        }
    };
    let nodes = {
        let (cache, ready, mut retry) = (cache.clone(), ready.clone(), retry.clone());
        let mut listing: Vec<Arc<Node>> = Vec::new();
        let mut first = true;
        watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .for_each(move |e| {
                match e {
                    Ok(watcher::Event::Apply(n)) => lock(&cache).apply_node(Arc::new(n)),
                    Ok(watcher::Event::Delete(n)) => {
                        lock(&cache).delete_node(n.metadata.name.as_deref().unwrap_or(""))
                    }
                    Ok(watcher::Event::Init) => listing.clear(),
                    Ok(watcher::Event::InitApply(n)) => listing.push(Arc::new(n)),
                    Ok(watcher::Event::InitDone) => {
                        lock(&cache).reset_nodes(std::mem::take(&mut listing));
                        if std::mem::take(&mut first) {
                            ready.add_permits(1);
                        }
                    }
                    Err(_) => return futures::future::ready(()),
                }
                kick(&mut retry);
                futures::future::ready(())
            })
    };
    let pods = {
        let mut retry = retry;
        let mut listing: Vec<Arc<Pod>> = Vec::new();
        let mut first = true;
        watcher(Api::<Pod>::all(client), watcher::Config::default())
            .default_backoff()
            .for_each(move |e| {
                match e {
                    Ok(watcher::Event::Apply(p)) => lock(&cache).apply_pod(Arc::new(p)),
                    Ok(watcher::Event::Delete(p)) => {
                        lock(&cache).delete_pod(&p);
                        // Pod deletions free room: retry everything then.
                        kick(&mut retry);
                    }
                    Ok(watcher::Event::Init) => listing.clear(),
                    Ok(watcher::Event::InitApply(p)) => listing.push(Arc::new(p)),
                    Ok(watcher::Event::InitDone) => {
                        lock(&cache).reset_pods(std::mem::take(&mut listing));
                        if std::mem::take(&mut first) {
                            ready.add_permits(1);
                        }
                    }
                    Err(_) => {}
                }
                futures::future::ready(())
            })
    };
    futures::future::join(nodes, pods).await;
}

/// Run the scheduling loop until `shutdown`.
pub(super) async fn run(client: kube::Client, shutdown: CancellationToken) {
    let (tx, rx) = futures::channel::mpsc::channel::<()>(16);
    let unschedulable: Arc<Mutex<HashSet<String>>> = Arc::default();
    let cache: Arc<Mutex<Cache>> = Arc::default();
    let ready = Arc::new(tokio::sync::Semaphore::new(0));
    let feed = {
        let claims = super::volumes::retry_on_bound_claims(
            client.clone(),
            tx.clone(),
            unschedulable.clone(),
        );
        let feed = feed_cache(
            client.clone(),
            cache.clone(),
            unschedulable.clone(),
            tx,
            ready.clone(),
        );
        let feed = futures::future::join(feed, claims);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = feed => {}
            }
        })
    };
    let controller = Controller::new(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .with_config(serial_config())
        .reconcile_all_on(rx);
    // Decide only on complete node and pod lists.
    tokio::select! {
        _ = shutdown.cancelled() => {
            feed.abort();
            return;
        }
        r = ready.acquire_many(2) => if r.is_err() {
            feed.abort();
            return;
        }
    }
    let ctx = Ctx::new(
        client,
        SCHEDULER_NAME,
        State {
            cache,
            unschedulable,
            binds: Arc::new(tokio::sync::Semaphore::new(BIND_POOL)),
        },
    );
    run_controller(controller, reconcile, ctx, shutdown).await;
    feed.abort();
}
