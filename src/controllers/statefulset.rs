//! StatefulSet controller: pods with stable names `<set>-<ordinal>` (from `spec.ordinals.start`),
//! stable hostnames under `serviceName`, and per-ordinal PVCs from `volumeClaimTemplates`
//! (created before the pod, kept by default); OrderedReady (one at a time, in order; scale
//! down highest first) or Parallel management; RollingUpdate with partition (highest ordinal
//! first) or OnDelete; ControllerRevision history; status for `kubectl rollout status`.
//!
//! Owns: StatefulSet pods and claims, their ControllerRevisions and `StatefulSet.status`. May
//! call: the API server.

use super::controller_revision::{self as history, NewRevision, POD_HASH_LABEL};
use super::pods::{claim, controller_ref, is_available, is_ready};
use super::runtime::{Ctx, Error, NORMAL, WARNING, deleting, describe, run_controller};
use super::{ControllersConfig, labels};
use k8s_openapi::api::apps::v1::{
    ControllerRevision, StatefulSet, StatefulSetSpec, StatefulSetStatus,
};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Pod label with the pod's own name (lets a Service select one member).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// Pod label with the pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// Name of the member with `ordinal`.
pub fn pod_name(set: &str, ordinal: i32) -> String {
    format!("{set}-{ordinal}")
}

/// Name of the claim from template `tpl` for the member with `ordinal`.
pub fn claim_name(tpl: &str, set: &str, ordinal: i32) -> String {
    format!("{tpl}-{set}-{ordinal}")
}

/// The ordinal of `pod` if it is named `<set>-<non-negative integer>`.
pub fn ordinal_of(set: &str, pod: &str) -> Option<i32> {
    let n = pod.strip_prefix(set)?.strip_prefix('-')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || (n.len() > 1 && n.starts_with('0'))
    {
        return None;
    }
    n.parse().ok()
}

/// A member pod as the ordering logic sees it.
#[derive(Clone, Debug, Default)]
pub struct Member {
    /// Pod name.
    pub name: String,
    /// Its `controller-revision-hash` (a revision name).
    pub revision: String,
    /// Phase Running and Ready.
    pub ready: bool,
    /// Running, Ready for minReadySeconds.
    pub available: bool,
    /// Being deleted.
    pub terminating: bool,
    /// Phase Failed or Succeeded: to be replaced.
    pub finished: bool,
}

/// One step of a reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Act {
    /// Create the member with this ordinal (claims first).
    Create(i32),
    /// Delete this pod (replaced later, or condemned by a scale down).
    Delete(String),
    /// Delete a pod beyond the replica range (its claims may follow the retention policy).
    Condemn(String),
}

/// What the ordering logic needs from the spec.
#[derive(Clone, Debug)]
pub struct Ordering {
    /// First ordinal.
    pub start: i32,
    /// Desired members.
    pub replicas: i32,
    /// OrderedReady (true) or Parallel.
    pub monotonic: bool,
    /// RollingUpdate: members with ordinal >= start + partition are updated.
    pub partition: Option<i32>,
    /// The revision members should reach.
    pub update_revision: String,
}

/// Upstream's `updateStatefulSet` as a pure decision: create missing members in order (one at
/// a time while OrderedReady waits for each to be Ready), delete condemned members highest
/// first, then roll members not at the update revision from the highest ordinal down to the
/// partition, one at a time, each waiting for the previous to become available.
pub fn plan(members: &BTreeMap<i32, Member>, o: &Ordering) -> Vec<Act> {
    let mut acts = Vec::new();
    let end = o.start.saturating_add(o.replicas.max(0));
    let mut healthy_range = true;
    for ord in o.start..end {
        match members.get(&ord) {
            None => {
                acts.push(Act::Create(ord));
                healthy_range = false;
                if o.monotonic {
                    return acts;
                }
            }
            Some(m) if m.finished && !m.terminating => {
                acts.push(Act::Delete(m.name.clone()));
                healthy_range = false;
                if o.monotonic {
                    return acts;
                }
            }
            Some(m) if m.terminating || !m.ready => {
                healthy_range = false;
                if o.monotonic {
                    return acts;
                }
            }
            Some(_) => {}
        }
    }
    for m in members
        .range(..o.start)
        .chain(members.range(end..))
        .rev()
        .map(|(_, m)| m)
    {
        if m.terminating {
            if o.monotonic {
                return acts;
            }
            continue;
        }
        acts.push(Act::Condemn(m.name.clone()));
        if o.monotonic {
            return acts;
        }
    }
    let Some(partition) = o.partition else {
        return acts;
    };
    if !healthy_range && o.monotonic {
        return acts;
    }
    let update_min = o.start.saturating_add(partition.max(0));
    for ord in (update_min.max(o.start)..end).rev() {
        let Some(m) = members.get(&ord) else {
            return acts;
        };
        if m.revision != o.update_revision && !m.terminating {
            acts.push(Act::Delete(m.name.clone()));
            return acts;
        }
        if m.terminating || !m.available {
            return acts;
        }
    }
    acts
}

/// The revision a newly created member gets: members below the partition stay at the current
/// revision during a RollingUpdate.
pub fn revision_for<'a>(ordinal: i32, o: &Ordering, current: &'a str, update: &'a str) -> &'a str {
    match o.partition {
        Some(p) if ordinal < o.start.saturating_add(p) => current,
        _ => update,
    }
}

fn member(p: &Pod, min_ready: i32, recheck: &mut Option<i64>) -> Member {
    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
    let running = phase == Some("Running");
    let available = running && is_available(p, min_ready, recheck);
    Member {
        name: p.name_any(),
        revision: p.labels().get(POD_HASH_LABEL).cloned().unwrap_or_default(),
        ready: running && is_ready(p),
        available,
        terminating: p.metadata.deletion_timestamp.is_some(),
        finished: matches!(phase, Some("Failed" | "Succeeded")),
    }
}

fn new_pod(set: &StatefulSet, tpl: &PodTemplateSpec, ordinal: i32, revision: &str) -> Pod {
    let spec = set.spec.clone().unwrap_or_default();
    let name = pod_name(&set.name_any(), ordinal);
    let meta = tpl.metadata.clone().unwrap_or_default();
    let mut pod_labels = meta.labels.unwrap_or_default();
    pod_labels.insert(POD_NAME_LABEL.into(), name.clone());
    pod_labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    pod_labels.insert(POD_HASH_LABEL.into(), revision.to_string());
    let mut pod_spec = tpl.spec.clone().unwrap_or_default();
    pod_spec.hostname = Some(name.clone());
    if let Some(svc) = spec.service_name.as_ref().filter(|s| !s.is_empty()) {
        pod_spec.subdomain = Some(svc.clone());
    }
    let claims: Vec<String> = spec
        .volume_claim_templates
        .iter()
        .flatten()
        .map(|c| c.name_any())
        .collect();
    let volumes = pod_spec.volumes.get_or_insert_with(Vec::new);
    volumes.retain(|v| !claims.contains(&v.name));
    for c in &claims {
        volumes.push(Volume {
            name: c.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(c, &set.name_any(), ordinal),
                read_only: None,
            }),
            ..Default::default()
        });
    }
    if volumes.is_empty() {
        pod_spec.volumes = None;
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: set.namespace(),
            labels: Some(pod_labels),
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![controller_ref(set)]),
            ..Default::default()
        },
        spec: Some(pod_spec),
        status: None,
    }
}

fn retention(spec: &StatefulSetSpec) -> (bool, bool) {
    let p = spec
        .persistent_volume_claim_retention_policy
        .clone()
        .unwrap_or_default();
    (
        p.when_deleted.as_deref() == Some("Delete"),
        p.when_scaled.as_deref() == Some("Delete"),
    )
}

/// Create the member's missing claims; a claim still being deleted makes us wait (error).
async fn ensure_claims(set: &StatefulSet, ordinal: i32, ctx: &C) -> Result<(), Error> {
    let spec = set.spec.clone().unwrap_or_default();
    let ns = set.namespace().unwrap_or_default();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let (delete_with_set, _) = retention(&spec);
    let name = set.name_any();
    for tpl in spec.volume_claim_templates.iter().flatten() {
        let claim = claim_name(&tpl.name_any(), &name, ordinal);
        if let Some(existing) = api.get_opt(&claim).await? {
            if existing.metadata.deletion_timestamp.is_some() {
                return Err(Error::Invalid {
                    object: describe(set),
                    reason: format!("claim {claim} is being deleted"),
                });
            }
            continue;
        }
        let mut claim_labels = tpl.metadata.labels.clone().unwrap_or_default();
        claim_labels.extend(spec.selector.match_labels.clone().unwrap_or_default());
        let mut owner = controller_ref(set);
        owner.controller = None;
        owner.block_owner_deletion = None;
        let pvc = PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(claim.clone()),
                namespace: Some(ns.clone()),
                labels: Some(claim_labels),
                annotations: tpl.metadata.annotations.clone(),
                owner_references: delete_with_set.then(|| vec![owner]),
                ..Default::default()
            },
            spec: tpl.spec.clone(),
            status: None,
        };
        let pod = pod_name(&name, ordinal);
        match api.create(&PostParams::default(), &pvc).await {
            Ok(_) => {
                ctx.event_related(
                    set,
                    &pvc,
                    NORMAL,
                    "SuccessfulCreate",
                    format!("create Claim {claim} Pod {pod} in StatefulSet {name} success"),
                )
                .await
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => {
                ctx.event(
                    set,
                    WARNING,
                    "FailedCreate",
                    format!(
                        "create Claim {claim} for Pod {pod} in StatefulSet {name} failed error: {e}"
                    ),
                )
                .await;
                return Err(e.into());
            }
        }
    }
    Ok(())
}

/// whenScaled=Delete: hand the condemned member's claims to the pod, so they go with it.
async fn release_claims_to(set: &StatefulSet, pod: &Pod, ctx: &C) -> Result<(), Error> {
    let spec = set.spec.clone().unwrap_or_default();
    if !retention(&spec).1 {
        return Ok(());
    }
    let Some(ordinal) = ordinal_of(&set.name_any(), &pod.name_any()) else {
        return Ok(());
    };
    let api: Api<PersistentVolumeClaim> =
        Api::namespaced(ctx.client.clone(), &set.namespace().unwrap_or_default());
    let mut owner = controller_ref(pod);
    owner.controller = None;
    owner.block_owner_deletion = None;
    for tpl in spec.volume_claim_templates.iter().flatten() {
        let claim = claim_name(&tpl.name_any(), &set.name_any(), ordinal);
        let patch = json!({"metadata": {"ownerReferences": [owner]}});
        match api
            .patch(&claim, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

type C = Ctx<()>;

async fn reconcile(set: Arc<StatefulSet>, ctx: Arc<C>) -> Result<Action, Error> {
    if deleting(set.as_ref()) {
        return Ok(Action::await_change());
    }
    let ns = set.namespace().unwrap_or_default();
    let name = set.name_any();
    let spec = set.spec.clone().unwrap_or_default();
    if labels::is_empty(&spec.selector) {
        return Err(Error::Invalid {
            object: describe(set.as_ref()),
            reason: "empty selector".into(),
        });
    }
    let old_status = set.status.clone().unwrap_or_default();

    // History: update revision = the current template; current = the one in status.
    let revs_api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &ns);
    let mut revs = history::owned(&revs_api, set.as_ref(), &spec.selector).await?;
    let data = history::patch_data(&spec.template)?;
    let (update, collision_count) = history::ensure(
        &revs_api,
        set.as_ref(),
        &mut revs,
        data.clone(),
        NewRevision {
            labels: spec
                .template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default(),
            annotations: set.annotations().clone(),
            hash_input: &data,
            collision_count: old_status.collision_count.unwrap_or(0),
        },
    )
    .await?;
    let update_name = update.name_any();
    let current = old_status
        .current_revision
        .as_ref()
        .and_then(|c| revs.iter().find(|r| &r.name_any() == c))
        .cloned()
        .unwrap_or_else(|| update.clone());
    let current_name = current.name_any();
    let current_tpl = history::template_of(&current).unwrap_or_else(|| spec.template.clone());

    // Members.
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let all = pods_api
        .list(&ListParams::default().labels(&labels::to_query(&spec.selector)))
        .await?
        .items;
    let owned = claim(&pods_api, set.as_ref(), &spec.selector, all).await?;
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let mut recheck = None;
    let mut members = BTreeMap::new();
    for p in &owned {
        if let Some(ord) = ordinal_of(&name, &p.name_any()) {
            members.insert(ord, member(p, min_ready, &mut recheck));
        }
    }
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    let rolling = strategy.type_.as_deref() != Some("OnDelete");
    let ordering = Ordering {
        start: spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0),
        replicas: spec.replicas.unwrap_or(1),
        monotonic: spec.pod_management_policy.as_deref() != Some("Parallel"),
        partition: rolling.then(|| {
            strategy
                .rolling_update
                .as_ref()
                .and_then(|r| r.partition)
                .unwrap_or(0)
        }),
        update_revision: update_name.clone(),
    };

    for act in plan(&members, &ordering) {
        match act {
            Act::Create(ord) => {
                let rev = revision_for(ord, &ordering, &current_name, &update_name);
                let tpl = if rev == update_name {
                    &spec.template
                } else {
                    &current_tpl
                };
                ensure_claims(&set, ord, &ctx).await?;
                let pod = new_pod(&set, tpl, ord, rev);
                let pod_name = pod.name_any();
                match pods_api.create(&PostParams::default(), &pod).await {
                    Ok(_) => {
                        ctx.event_related(
                            set.as_ref(),
                            &pod,
                            NORMAL,
                            "SuccessfulCreate",
                            format!("create Pod {pod_name} in StatefulSet {name} successful"),
                        )
                        .await
                    }
                    Err(kube::Error::Api(s)) if s.code == 409 => {}
                    Err(e) => {
                        ctx.event(
                            set.as_ref(),
                            WARNING,
                            "FailedCreate",
                            format!(
                                "create Pod {pod_name} in StatefulSet {name} failed error: {e}"
                            ),
                        )
                        .await;
                        return Err(e.into());
                    }
                }
            }
            Act::Delete(pod) => delete_pod(&set, &pods_api, &pod, &ctx).await?,
            Act::Condemn(pod) => {
                if let Some(p) = owned.iter().find(|p| p.name_any() == pod) {
                    release_claims_to(&set, p, &ctx).await?;
                }
                delete_pod(&set, &pods_api, &pod, &ctx).await?;
            }
        }
    }

    let mut status = status_counts(&owned, &name, min_ready, &current_name, &update_name);
    status.observed_generation = set.metadata.generation;
    status.collision_count = Some(collision_count);
    status.conditions = old_status.conditions.clone();
    if status.updated_replicas == Some(status.replicas)
        && status.ready_replicas == Some(status.replicas)
        && status.replicas == ordering.replicas
    {
        status.current_replicas = status.updated_replicas;
        status.current_revision = status.update_revision.clone();
    }

    // Old history no member uses any more.
    let mut live: HashSet<String> = owned
        .iter()
        .filter_map(|p| p.labels().get(POD_HASH_LABEL).cloned())
        .collect();
    live.insert(update_name.clone());
    live.extend(status.current_revision.clone());
    history::truncate(
        &revs_api,
        &revs,
        &live,
        spec.revision_history_limit.unwrap_or(10),
    )
    .await?;

    if status != old_status {
        let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await?;
    }
    Ok(match recheck {
        Some(s) => Action::requeue(Duration::from_secs(u64::try_from(s.max(1)).unwrap_or(1))),
        None => Action::requeue(Duration::from_secs(30)),
    })
}

async fn delete_pod(set: &StatefulSet, api: &Api<Pod>, pod: &str, ctx: &C) -> Result<(), Error> {
    match api.delete(pod, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(e) => {
            ctx.event(
                set,
                WARNING,
                "FailedDelete",
                format!(
                    "delete Pod {pod} in StatefulSet {} failed error: {e}",
                    set.name_any()
                ),
            )
            .await;
            return Err(e.into());
        }
    }
    ctx.event_related(
        set,
        &pod_ref(set, pod),
        NORMAL,
        "SuccessfulDelete",
        format!(
            "delete Pod {pod} in StatefulSet {} successful",
            set.name_any()
        ),
    )
    .await;
    Ok(())
}

/// A pod known only by name, for event references.
pub fn pod_ref(owner: &impl ResourceExt, name: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: owner.namespace(),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Upstream's status counts over the member pods.
pub fn status_counts(
    pods: &[Pod],
    set: &str,
    min_ready: i32,
    current: &str,
    update: &str,
) -> StatefulSetStatus {
    let mut s = StatefulSetStatus {
        current_revision: Some(current.to_string()),
        update_revision: Some(update.to_string()),
        ready_replicas: Some(0),
        available_replicas: Some(0),
        current_replicas: Some(0),
        updated_replicas: Some(0),
        ..Default::default()
    };
    let bump = |v: &mut Option<i32>| *v = Some(v.unwrap_or(0) + 1);
    let mut ignore = None;
    for p in pods
        .iter()
        .filter(|p| ordinal_of(set, &p.name_any()).is_some())
    {
        let m = member(p, min_ready, &mut ignore);
        if m.finished {
            continue;
        }
        s.replicas += 1;
        if m.ready {
            bump(&mut s.ready_replicas);
        }
        if m.available {
            bump(&mut s.available_replicas);
        }
        if m.terminating {
            continue;
        }
        if m.revision == current {
            bump(&mut s.current_replicas);
        }
        if m.revision == update {
            bump(&mut s.updated_replicas);
        }
    }
    s
}

/// Run the StatefulSet controller until `shutdown`.
pub async fn run(client: Client, _config: ControllersConfig, shutdown: CancellationToken) {
    let controller = Controller::new(
        Api::<StatefulSet>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<Pod>::all(client.clone()), watcher::Config::default());
    let ctx = Ctx::new(client, "statefulset-controller", ());
    run_controller(controller, reconcile, ctx, shutdown).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_parse_only_canonical_member_names() {
        assert_eq!(ordinal_of("web", "web-0"), Some(0));
        assert_eq!(ordinal_of("web", "web-12"), Some(12));
        assert_eq!(ordinal_of("web", "web-01"), None);
        assert_eq!(ordinal_of("web", "web-x"), None);
        assert_eq!(ordinal_of("web", "web--1"), None);
        assert_eq!(ordinal_of("web", "web-"), None);
        assert_eq!(ordinal_of("web", "webby-1"), None);
        assert_eq!(ordinal_of("web-a", "web-a-3"), Some(3));
        assert_eq!(claim_name("www", "web", 2), "www-web-2");
    }

    fn m(name: &str, rev: &str, ready: bool) -> Member {
        Member {
            name: name.into(),
            revision: rev.into(),
            ready,
            available: ready,
            ..Default::default()
        }
    }

    fn o(replicas: i32, monotonic: bool, partition: Option<i32>) -> Ordering {
        Ordering {
            start: 0,
            replicas,
            monotonic,
            partition,
            update_revision: "r2".into(),
        }
    }

    fn set(ms: &[(i32, Member)]) -> BTreeMap<i32, Member> {
        ms.iter().cloned().collect()
    }

    #[test]
    fn ordered_ready_creates_one_at_a_time_after_the_previous_is_ready() {
        assert_eq!(plan(&set(&[]), &o(3, true, Some(0))), [Act::Create(0)]);
        let starting = set(&[(0, m("web-0", "r2", false))]);
        assert!(plan(&starting, &o(3, true, Some(0))).is_empty());
        let ready = set(&[(0, m("web-0", "r2", true))]);
        assert_eq!(plan(&ready, &o(3, true, Some(0))), [Act::Create(1)]);
        assert_eq!(
            plan(&set(&[]), &o(3, false, Some(0))),
            [Act::Create(0), Act::Create(1), Act::Create(2)]
        );
        let mut start = o(2, true, None);
        start.start = 5;
        assert_eq!(plan(&set(&[]), &start), [Act::Create(5)]);
    }

    #[test]
    fn scale_down_removes_the_highest_ordinal_first_one_at_a_time() {
        let all = set(&[
            (0, m("web-0", "r2", true)),
            (1, m("web-1", "r2", true)),
            (2, m("web-2", "r2", true)),
        ]);
        assert_eq!(
            plan(&all, &o(1, true, Some(0))),
            [Act::Condemn("web-2".into())]
        );
        let mut going = all.clone();
        going.get_mut(&2).unwrap().terminating = true;
        assert!(plan(&going, &o(1, true, Some(0))).is_empty());
        assert_eq!(
            plan(&all, &o(1, false, None)),
            [Act::Condemn("web-2".into()), Act::Condemn("web-1".into())]
        );
    }

    #[test]
    fn rolling_update_goes_from_the_highest_ordinal_down_to_the_partition() {
        let old = set(&[
            (0, m("web-0", "r1", true)),
            (1, m("web-1", "r1", true)),
            (2, m("web-2", "r1", true)),
        ]);
        assert_eq!(
            plan(&old, &o(3, true, Some(0))),
            [Act::Delete("web-2".into())]
        );
        let mut mid = old.clone();
        mid.insert(2, m("web-2", "r2", false));
        assert!(
            plan(&mid, &o(3, true, Some(0))).is_empty(),
            "waits for web-2"
        );
        mid.insert(2, m("web-2", "r2", true));
        assert_eq!(
            plan(&mid, &o(3, true, Some(0))),
            [Act::Delete("web-1".into())]
        );
        // Partition 2: web-0 and web-1 keep the old revision.
        assert!(plan(&mid, &o(3, true, Some(2))).is_empty());
        // OnDelete: nothing is replaced.
        assert!(plan(&old, &o(3, true, None)).is_empty());
        let p = o(3, true, Some(2));
        assert_eq!(revision_for(1, &p, "r1", "r2"), "r1");
        assert_eq!(revision_for(2, &p, "r1", "r2"), "r2");
        assert_eq!(revision_for(0, &o(3, true, None), "r1", "r2"), "r2");
    }

    #[test]
    fn failed_members_are_replaced() {
        let mut failed = m("web-0", "r2", false);
        failed.finished = true;
        assert_eq!(
            plan(&set(&[(0, failed)]), &o(1, true, Some(0))),
            [Act::Delete("web-0".into())]
        );
    }

    #[test]
    fn pods_get_identity_and_claim_volumes() {
        let sts: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u"},
            "spec": {"serviceName": "nginx", "selector": {"matchLabels": {"app": "w"}},
                "template": {"metadata": {"labels": {"app": "w"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {}}]}
        }))
        .unwrap();
        let tpl = sts.spec.clone().unwrap().template;
        let pod = new_pod(&sts, &tpl, 3, "web-abc");
        assert_eq!(pod.name_any(), "web-3");
        assert_eq!(pod.labels()[POD_NAME_LABEL], "web-3");
        assert_eq!(pod.labels()[POD_INDEX_LABEL], "3");
        assert_eq!(pod.labels()[POD_HASH_LABEL], "web-abc");
        let spec = pod.spec.unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("web-3"));
        assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
        let vols = spec.volumes.unwrap();
        assert_eq!(
            vols[0].persistent_volume_claim.as_ref().unwrap().claim_name,
            "www-web-3"
        );
    }
}
