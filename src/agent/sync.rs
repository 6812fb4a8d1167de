//! The pod sync loop: watches the pods bound to this node (`spec.nodeName=<node>`), runs
//! one [`pod_worker`](super::pod_worker) per pod (so actions on one pod never interleave),
//! writes each worker's status to `pods/<name>/status`, finishes graceful deletions with a
//! final `gracePeriodSeconds=0` delete, and cleans up containers of pods that no longer
//! exist (after the first full list). Pods the eviction manager evicts are stopped with
//! grace period 0 and left `Failed` (reason `Evicted`) instead of deleted; pods the
//! admission check rejects are never started.
//!
//! Owns: the pod-uid -> worker map. May call: the API server (kube client), pod workers,
//! the runtime and network (orphan cleanup only).

use super::AgentError;
use super::pod;
use super::pod_worker::{self, Deps, PodWorkerHandle};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

struct Entry {
    handle: PodWorkerHandle,
    writer: tokio::task::JoinHandle<()>,
}

fn uid_of(p: &Pod) -> String {
    p.metadata.uid.clone().unwrap_or_default()
}

/// A pod the eviction manager stops for node pressure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eviction {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    /// Status reason (`Evicted`).
    pub reason: String,
    /// Status message (what was low, who used it).
    pub message: String,
}

/// Admission check for pods new to this node: `Some(message)` rejects the pod (status
/// `Failed`, reason `Evicted`, never started).
pub type Admit = Arc<dyn Fn(&Pod) -> Option<String> + Send + Sync>;

/// Optional inputs of the sync loop (node-pressure eviction).
#[derive(Default)]
pub struct Hooks {
    /// Pods to evict.
    pub evictions: Option<mpsc::UnboundedReceiver<Eviction>>,
    pub admit: Option<Admit>,
}

fn is_terminal(p: &Pod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Runs until `shutdown`; pods keep running afterwards (the next agent adopts them).
pub async fn run(
    client: kube::Client,
    node: String,
    deps: Deps,
    shutdown: CancellationToken,
) -> Result<(), AgentError> {
    run_with(client, node, deps, Hooks::default(), shutdown).await
}

async fn next_eviction(rx: &mut Option<mpsc::UnboundedReceiver<Eviction>>) -> Option<Eviction> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

/// [`run`] with eviction hooks.
pub async fn run_with(
    client: kube::Client,
    node: String,
    deps: Deps,
    hooks: Hooks,
    shutdown: CancellationToken,
) -> Result<(), AgentError> {
    let Hooks {
        mut evictions,
        admit,
    } = hooks;
    // Evictions in progress, and pods finished here that must not be started again.
    let mut evicting: HashMap<String, Eviction> = HashMap::new();
    let mut finished: HashSet<String> = HashSet::new();
    let api: Api<Pod> = Api::all(client.clone());
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let stream = watcher::watcher(api, cfg).default_backoff();
    futures::pin_mut!(stream);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(String, String, String)>();
    let mut workers: HashMap<String, Entry> = HashMap::new();
    let mut listed: HashSet<String> = HashSet::new();
    // Pods whose worker finished terminating, until the watch reports them deleted: late
    // events of such a pod (its last status write) must not start a new worker. Entries
    // expire (a pod deleted with grace 0 was reported deleted before its worker finished).
    let mut terminated: HashMap<String, std::time::Instant> = HashMap::new();
    let mut cleaned_orphans = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some((uid, ns, name)) = done_rx.recv() => {
                let mut last = None;
                if let Some(e) = workers.remove(&uid) {
                    e.writer.abort();
                    last = Some(e.handle.status.borrow().clone());
                }
                match evicting.remove(&uid) {
                    Some(ev) => {
                        finished.insert(uid);
                        write_evicted(&client, &ev, last, true).await;
                    }
                    None => {
                        terminated.retain(|_, at| at.elapsed() < Duration::from_secs(300));
                        terminated.insert(uid.clone(), std::time::Instant::now());
                        // Not awaited here: a burst of deletions must not hold up the watch.
                        let client = client.clone();
                        tokio::spawn(async move { finalize_delete(&client, &ns, &name, &uid).await });
                    }
                }
            }
            Some(ev) = next_eviction(&mut evictions) => match workers.get(&ev.uid) {
                Some(e) => {
                    e.handle.terminate(Some(Duration::ZERO));
                    evicting.insert(ev.uid.clone(), ev);
                }
                None => {
                    finished.insert(ev.uid.clone());
                    let client = client.clone();
                    tokio::spawn(async move { write_evicted(&client, &ev, None, true).await });
                }
            },
            ev = stream.next() => match ev {
                None => break,
                Some(Err(e)) => warn!(error = %e, "pod watch"),
                Some(Ok(Event::Init)) => listed.clear(),
                Some(Ok(Event::InitApply(p))) => {
                    listed.insert(uid_of(&p));
                    if !terminated.contains_key(&uid_of(&p)) {
                        apply(&client, &deps, &mut workers, &done_tx, &mut finished, admit.as_ref(), p);
                    }
                }
                Some(Ok(Event::InitDone)) => {
                    terminated.retain(|uid, _| listed.contains(uid));
                    finished.retain(|uid| listed.contains(uid));
                    // Pods that vanished while we were not watching.
                    for (uid, e) in &workers {
                        if !listed.contains(uid) {
                            e.handle.terminate(None);
                        }
                    }
                    if !cleaned_orphans {
                        cleaned_orphans = true;
                        let known: HashSet<String> = workers.keys().cloned().collect();
                        tokio::spawn(cleanup_orphans(deps.clone(), known));
                    }
                }
                Some(Ok(Event::Apply(p))) => {
                    if !terminated.contains_key(&uid_of(&p)) {
                        apply(&client, &deps, &mut workers, &done_tx, &mut finished, admit.as_ref(), p);
                    }
                }
                Some(Ok(Event::Delete(p))) => {
                    terminated.remove(&uid_of(&p));
                    finished.remove(&uid_of(&p));
                    if let Some(e) = workers.get(&uid_of(&p)) {
                        e.handle.terminate(Some(Duration::ZERO));
                    }
                }
            }
        }
    }
    for (_, e) in workers {
        e.writer.abort();
        e.handle.detach().await;
    }
    Ok(())
}

fn apply(
    client: &kube::Client,
    deps: &Deps,
    workers: &mut HashMap<String, Entry>,
    done_tx: &mpsc::UnboundedSender<(String, String, String)>,
    finished: &mut HashSet<String>,
    admit: Option<&Admit>,
    p: Pod,
) {
    let uid = uid_of(&p);
    if uid.is_empty() {
        return;
    }
    // Evicted or rejected here: stale events must not start it again (deletion still runs).
    if finished.contains(&uid) && p.metadata.deletion_timestamp.is_none() {
        return;
    }
    if let Some(e) = workers.get(&uid) {
        e.handle.update(Arc::new(p));
        return;
    }
    // A finished pod is not run again after an agent restart.
    if is_terminal(&p) && p.metadata.deletion_timestamp.is_none() {
        return;
    }
    let ns = p.metadata.namespace.clone().unwrap_or_default();
    let name = p.metadata.name.clone().unwrap_or_default();
    if p.metadata.deletion_timestamp.is_none()
        && let Some(message) = admit.and_then(|a| a(&p))
    {
        info!(pod = %format!("{ns}/{name}"), %message, "pod rejected at admission");
        finished.insert(uid.clone());
        let ev = Eviction {
            uid,
            namespace: ns,
            name,
            reason: crate::agent::eviction::REASON.into(),
            message,
        };
        let client = client.clone();
        tokio::spawn(async move { write_evicted(&client, &ev, None, false).await });
        return;
    }
    info!(pod = %format!("{ns}/{name}"), "starting pod worker");
    let handle = pod_worker::spawn(Arc::new(p), deps.clone());
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let writer = tokio::spawn(write_status(
        api,
        name,
        uid.clone(),
        handle.status.clone(),
        handle.done.clone(),
        done_tx.clone(),
        ns,
    ));
    workers.insert(uid, Entry { handle, writer });
}

/// Patches `pods/<name>/status` whenever the worker's status changes; reports the pod as
/// done once its worker finished terminating.
async fn write_status(
    api: Api<Pod>,
    name: String,
    uid: String,
    mut status: watch::Receiver<PodStatus>,
    mut done: watch::Receiver<bool>,
    done_tx: mpsc::UnboundedSender<(String, String, String)>,
    ns: String,
) {
    let mut last: Option<PodStatus> = None;
    loop {
        let st = status.borrow_and_update().clone();
        if st != PodStatus::default() && last.as_ref() != Some(&st) {
            let patch = json!({"status": st});
            let begun = std::time::Instant::now();
            let r = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await;
            debug!(pod = %name, phase = ?st.phase, took_ms = begun.elapsed().as_millis() as u64, "status written");
            match r {
                Ok(_) => last = Some(st),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    debug!(pod = %name, error = %e, "status write failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
        }
        if *done.borrow() {
            let _ = done_tx.send((uid, ns, name));
            return;
        }
        tokio::select! {
            r = status.changed() => if r.is_err() && !*done.borrow() { return },
            _ = done.changed() => {}
        }
    }
}

/// Writes the final status of an evicted (or rejected) pod: phase `Failed` with the
/// eviction's reason and message, on top of the worker's `last` status; `disruption` adds
/// the `DisruptionTarget` condition upstream sets when the kubelet terminates a pod.
async fn write_evicted(
    client: &kube::Client,
    ev: &Eviction,
    last: Option<PodStatus>,
    disruption: bool,
) {
    let api: Api<Pod> = Api::namespaced(client.clone(), &ev.namespace);
    let mut patch = json!({"status": {
        "phase": "Failed", "reason": ev.reason, "message": ev.message,
    }});
    if let Some(mut st) = last.filter(|s| *s != PodStatus::default()) {
        st.phase = Some("Failed".into());
        st.reason = Some(ev.reason.clone());
        st.message = Some(ev.message.clone());
        if disruption {
            let mut conds = st.conditions.take().unwrap_or_default();
            conds.retain(|c| c.type_ != "DisruptionTarget");
            conds.push(PodCondition {
                type_: "DisruptionTarget".into(),
                status: "True".into(),
                reason: Some("TerminationByKubelet".into()),
                message: Some(ev.message.clone()),
                last_transition_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    jiff::Timestamp::now(),
                )),
                ..Default::default()
            });
            st.conditions = Some(conds);
        }
        patch = json!({ "status": st });
    }
    for attempt in 0..5 {
        match api
            .patch_status(&ev.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return,
            Err(kube::Error::Api(e)) if e.code == 404 => return,
            Err(e) => {
                debug!(pod = %ev.name, attempt, error = %e, "evicted status write failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    warn!(pod = %format!("{}/{}", ev.namespace, ev.name), "cannot write the evicted status");
}

/// Completes a graceful deletion (the API waits for the kubelet), like the kubelet does.
async fn finalize_delete(client: &kube::Client, ns: &str, name: &str, uid: &str) {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => info!(pod = %format!("{ns}/{name}"), "pod deleted"),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(e) => warn!(pod = %format!("{ns}/{name}"), error = %e, "final pod delete"),
    }
}

/// Removes containers, networks and pod dirs of pods this node no longer runs.
async fn cleanup_orphans(deps: Deps, known: HashSet<String>) {
    let found = match deps.runtime.list_containers(pod::LABEL_POD_UID, "").await {
        Ok(f) => f,
        Err(e) => {
            warn!(error = %e, "listing containers for orphan cleanup");
            return;
        }
    };
    let mut pods: HashMap<String, crate::agent::network::PodRef> = HashMap::new();
    for c in found {
        let Some(uid) = c.labels.get(pod::LABEL_POD_UID).cloned() else {
            continue;
        };
        if known.contains(&uid) {
            continue;
        }
        info!(id = %c.id, pod_uid = %uid, "removing orphaned container");
        if let Err(e) = deps.runtime.remove_container(&c.id).await {
            warn!(id = %c.id, error = %e, "removing orphaned container");
        }
        pods.entry(uid.clone())
            .or_insert_with(|| crate::agent::network::PodRef {
                uid,
                namespace: c
                    .labels
                    .get(pod::LABEL_POD_NAMESPACE)
                    .cloned()
                    .unwrap_or_default(),
                name: c
                    .labels
                    .get(pod::LABEL_POD_NAME)
                    .cloned()
                    .unwrap_or_default(),
                ..Default::default()
            });
    }
    for (uid, r) in pods {
        if let Err(e) = deps.network.teardown(&r).await {
            warn!(pod_uid = %uid, error = %e, "orphan network teardown");
        }
        let _ = pod::remove_pod_dir(&deps.config, &uid);
    }
}
