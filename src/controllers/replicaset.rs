//! ReplicaSet controller: keeps `spec.replicas` active pods matching the selector, adopting
//! orphans and releasing strays, deleting the least valuable pods first; reports status.
//!
//! Owns: ReplicaSet pods and `ReplicaSet.status`. May call: the API server.

use super::pod_control;
use super::pods::{claim, controller_ref, is_active, is_available, is_ready};
use super::runtime::{Ctx, Error, deleting, describe, run_controller};
use super::{ControllersConfig, labels};
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Rank for deletion: smaller = less valuable = deleted first.
fn deletion_rank(p: &Pod) -> (u8, u8, u8, i64, i64, i64) {
    let assigned = p
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    let phase = match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") | None => 0,
        Some("Unknown") => 1,
        _ => 2,
    };
    let ready_since = p
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready" && c.status == "True"))
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0.as_second())
        .unwrap_or(0);
    let restarts: i64 = p
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|c| c.iter().map(|c| i64::from(c.restart_count)).sum())
        .unwrap_or(0);
    let created = p
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .unwrap_or(0);
    (
        u8::from(assigned),
        phase,
        u8::from(is_ready(p)),
        // Recently ready, more restarts, newer: less valuable.
        -ready_since,
        -restarts,
        -created,
    )
}

/// Pick `n` pods to delete, least valuable first.
pub fn pods_to_delete(mut pods: Vec<Pod>, n: usize) -> Vec<Pod> {
    pods.sort_by_key(deletion_rank);
    pods.truncate(n);
    pods
}

fn new_pod(rs: &ReplicaSet) -> Result<Pod, Error> {
    let tpl = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .ok_or_else(|| Error::MissingField {
            object: describe(rs),
            field: "spec.template",
        })?;
    let meta = tpl.metadata.unwrap_or_default();
    Ok(Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.name_any())),
            namespace: rs.namespace(),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![controller_ref(rs)]),
            ..Default::default()
        },
        spec: tpl.spec,
        status: None,
    })
}

/// Controller state: configuration plus the pod cache.
pub struct State {
    pods: Store<Pod>,
}

type C = Ctx<State>;

/// From the cache: the pods this RS owns, if nothing needs doing (no adoption, release,
/// creation or deletion). Anything else goes through a fresh API list.
fn settled(rs: &ReplicaSet, store: &Store<Pod>) -> Option<Vec<Pod>> {
    let spec = rs.spec.as_ref()?;
    let ns = rs.namespace();
    let uid = rs.metadata.uid.as_deref()?;
    let mut owned = Vec::new();
    for p in store.state() {
        if p.namespace() != ns {
            continue;
        }
        let mine = super::pods::controller_of(&p.metadata).is_some_and(|o| o.uid == uid);
        let matches = labels::matches(Some(&spec.selector), p.metadata.labels.as_ref());
        match (mine, matches) {
            (true, true) if is_active(&p) => owned.push(p.as_ref().clone()),
            (true, true) => {}
            (true, false) => return None,
            (false, true) if super::pods::controller_of(&p.metadata).is_none() && is_active(&p) => {
                return None;
            }
            _ => {}
        }
    }
    let want = usize::try_from(spec.replicas.unwrap_or(1)).unwrap_or(0);
    (owned.len() == want).then_some(owned)
}

async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<C>) -> Result<Action, Error> {
    if deleting(rs.as_ref()) {
        return Ok(Action::await_change());
    }
    let ns = rs.namespace().unwrap_or_default();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let spec = rs.spec.clone().unwrap_or_default();
    let selector = spec.selector.clone();
    if labels::is_empty(&selector) {
        return Err(Error::Invalid {
            object: describe(rs.as_ref()),
            reason: "empty selector".into(),
        });
    }
    // Fast path: the cache shows nothing to do; only the status may change. The cache can
    // lag, but acting (create/delete) always re-reads from the API server first.
    if let Some(owned) = settled(&rs, &ctx.data.pods) {
        return update_status(&rs, &owned, &ctx).await;
    }
    let all = pods_api
        .list(&ListParams::default().labels(&labels::to_query(&selector)))
        .await?
        .items;
    let all: Vec<Pod> = all.into_iter().filter(is_active).collect();
    let owned = claim(&pods_api, rs.as_ref(), &selector, all).await?;
    let want = usize::try_from(spec.replicas.unwrap_or(1)).unwrap_or(0);
    let have = owned.len();
    if have < want {
        let pod = new_pod(&rs)?;
        let pods = vec![pod; want - have];
        pod_control::create_pods(&ctx, rs.as_ref(), &pods_api, pods).await?;
    } else if have > want {
        let victims = pods_to_delete(owned.clone(), have - want);
        pod_control::delete_pods(&ctx, rs.as_ref(), &pods_api, victims).await?;
    }
    update_status(&rs, &owned, &ctx).await
}

async fn update_status(rs: &ReplicaSet, pods: &[Pod], ctx: &C) -> Result<Action, Error> {
    let spec = rs.spec.clone().unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let tpl_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let mut ready = 0;
    let mut available = 0;
    let mut fully = 0;
    let mut recheck: Option<i64> = None;
    for p in pods {
        let l = p.metadata.labels.clone().unwrap_or_default();
        if tpl_labels.iter().all(|(k, v)| l.get(k) == Some(v)) {
            fully += 1;
        }
        if is_ready(p) {
            ready += 1;
        }
        if is_available(p, min_ready, &mut recheck) {
            available += 1;
        }
    }
    let old = rs.status.clone().unwrap_or_default();
    let status = ReplicaSetStatus {
        replicas: pods.len() as i32,
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        fully_labeled_replicas: Some(fully),
        observed_generation: rs.metadata.generation,
        conditions: old.conditions.clone(),
        terminating_replicas: None,
    };
    if status != old {
        let api: Api<ReplicaSet> =
            Api::namespaced(ctx.client.clone(), &rs.namespace().unwrap_or_default());
        api.patch_status(
            &rs.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await?;
    }
    Ok(match recheck {
        Some(s) => Action::requeue(Duration::from_secs(u64::try_from(s.max(1)).unwrap_or(1))),
        None => Action::await_change(),
    })
}

/// Run the ReplicaSet controller until `shutdown`.
pub async fn run(client: Client, _config: ControllersConfig, shutdown: CancellationToken) {
    // One pod watch both fills the fast-path cache and triggers owners. The reflector applies
    // each event to the store before yielding it, so a reconcile triggered by a pod change
    // always sees that change in the cache. (Two separate watches raced: the trigger could
    // arrive first, the status was computed from the stale cache and never recomputed.)
    let (pods, writer) = reflector::store();
    let cache = reflector::reflector(
        writer,
        watcher(Api::<Pod>::all(client.clone()), watcher::Config::default()).default_backoff(),
    )
    .touched_objects();
    let controller = Controller::new(
        Api::<ReplicaSet>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns_stream(cache);
    let ctx = Ctx::new(client, "replicaset-controller", State { pods });
    run_controller(controller, reconcile, ctx, shutdown).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, node: Option<&str>, phase: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"containers": [], "nodeName": node},
            "status": {"phase": phase, "conditions": [
                {"type": "Ready", "status": if ready {"True"} else {"False"}}]}
        }))
        .unwrap()
    }

    #[test]
    fn least_valuable_pods_are_deleted_first() {
        let pods = vec![
            pod("running-ready", Some("n"), "Running", true),
            pod("unassigned", None, "Pending", false),
            pod("running-notready", Some("n"), "Running", false),
            pod("pending", Some("n"), "Pending", false),
        ];
        let names: Vec<String> = pods_to_delete(pods, 3)
            .iter()
            .map(|p| p.name_any())
            .collect();
        assert_eq!(names, ["unassigned", "pending", "running-notready"]);
    }
}
