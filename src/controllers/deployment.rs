//! Deployment controller: rolls ReplicaSets (RollingUpdate with maxSurge/maxUnavailable, or
//! Recreate), names them `<deployment>-<pod-template-hash>`, keeps revisions and history, and
//! reports status and the upstream `Available`/`Progressing` conditions.
//!
//! Owns: a Deployment's ReplicaSets and `Deployment.status`. May call: the API server.

use super::deployment_util::{
    DESIRED, HASH_LABEL, MAX, REVISION, available, new_rs_target, old_rs_targets, revision,
    spec_replicas, surge_unavailable, template_hash, templates_equal,
};
use super::pods::{claim, controller_ref, is_active};
use super::runtime::{Ctx, Error, NORMAL, deleting, describe, run_controller};
use super::{ControllersConfig, labels};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

type C = Ctx<ControllersConfig>;

fn rs_api(ctx: &C, ns: &str) -> Api<ReplicaSet> {
    Api::namespaced(ctx.client.clone(), ns)
}

async fn scale(
    ctx: &C,
    d: &Deployment,
    rs: &ReplicaSet,
    to: i32,
    surge: i32,
) -> Result<ReplicaSet, Error> {
    let from = spec_replicas(rs);
    let d_replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let patch = json!({
        "metadata": {"annotations": {
            DESIRED: d_replicas.to_string(),
            MAX: (d_replicas + surge).to_string(),
        }},
        "spec": {"replicas": to},
    });
    let out = rs_api(ctx, &rs.namespace().unwrap_or_default())
        .patch(
            &rs.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await?;
    if from != to {
        let dir = if to > from { "up" } else { "down" };
        ctx.event(
            d,
            NORMAL,
            "ScalingReplicaSet",
            format!(
                "Scaled {dir} replica set {} from {from} to {to}",
                rs.name_any()
            ),
        )
        .await;
    }
    Ok(out)
}

/// Find or create the ReplicaSet for the current template; stamp the next revision on it.
async fn new_replica_set(
    ctx: &C,
    d: &Deployment,
    existing: Option<ReplicaSet>,
    max_old_revision: i64,
    surge: i32,
) -> Result<(ReplicaSet, bool), Error> {
    let ns = d.namespace().unwrap_or_default();
    let api = rs_api(ctx, &ns);
    let want_rev = (max_old_revision + 1).to_string();
    if let Some(rs) = existing {
        if revision(&rs) <= max_old_revision {
            let rs = api
                .patch(
                    &rs.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"annotations": {REVISION: want_rev}}})),
                )
                .await?;
            return Ok((rs, false));
        }
        return Ok((rs, false));
    }
    let spec = d.spec.clone().unwrap_or_default();
    let collision = d.status.as_ref().and_then(|s| s.collision_count);
    let hash = template_hash(&spec.template, collision);
    let mut template = spec.template.clone();
    template
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(HASH_LABEL.into(), hash.clone());
    let mut selector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(HASH_LABEL.into(), hash.clone());
    let mut annotations = BTreeMap::from([
        (REVISION.to_string(), want_rev),
        (DESIRED.to_string(), spec.replicas.unwrap_or(1).to_string()),
        (
            MAX.to_string(),
            (spec.replicas.unwrap_or(1) + surge).to_string(),
        ),
    ]);
    if let Some(cause) = d
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("kubernetes.io/change-cause"))
    {
        annotations.insert("kubernetes.io/change-cause".into(), cause.clone());
    }
    let rs = ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{}-{hash}", d.name_any())),
            namespace: Some(ns.clone()),
            labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref(d)]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(0),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    };
    match api.create(&PostParams::default(), &rs).await {
        Ok(rs) => Ok((rs, true)),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            // A different template hashed to the same name: bump collisionCount and retry.
            let other = api.get(&rs.name_any()).await?;
            let same_owner = super::pods::controller_of(&other.metadata)
                .is_some_and(|o| Some(&o.uid) == d.metadata.uid.as_ref());
            let same_tpl = other
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| templates_equal(t, &spec.template));
            if same_owner && same_tpl {
                return Ok((other, false));
            }
            let dapi: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
            dapi.patch_status(
                &d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"collisionCount": collision.unwrap_or(0) + 1}})),
            )
            .await?;
            Err(Error::Invalid {
                object: describe(d),
                reason: "replica set name collision; retrying".into(),
            })
        }
        Err(e) => Err(e.into()),
    }
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<C>) -> Result<Action, Error> {
    if deleting(d.as_ref()) {
        return Ok(Action::await_change());
    }
    let ns = d.namespace().unwrap_or_default();
    let spec = d.spec.clone().unwrap_or_default();
    if labels::is_empty(&spec.selector) {
        return Err(Error::Invalid {
            object: describe(d.as_ref()),
            reason: "empty selector".into(),
        });
    }
    let api = rs_api(&ctx, &ns);
    let listed = api
        .list(&ListParams::default().labels(&labels::to_query(&spec.selector)))
        .await?
        .items;
    let mut all = claim(&api, d.as_ref(), &spec.selector, listed).await?;
    all.sort_by_key(|rs| {
        (
            rs.metadata.creation_timestamp.as_ref().map(|t| t.0),
            rs.name_any(),
        )
    });
    let (surge, max_unavailable) = surge_unavailable(&d);
    let replicas = spec.replicas.unwrap_or(1);
    let existing_new = all
        .iter()
        .find(|rs| {
            rs.spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| templates_equal(t, &spec.template))
        })
        .cloned();
    let mut old: Vec<ReplicaSet> = all
        .iter()
        .filter(|rs| Some(rs.name_any()) != existing_new.as_ref().map(|n| n.name_any()))
        .cloned()
        .collect();
    let paused = spec.paused.unwrap_or(false);
    if paused {
        // Paused: no rollout, only keep the current RS at the desired size.
        if let Some(rs) = &existing_new {
            if old.iter().all(|o| spec_replicas(o) == 0) && spec_replicas(rs) != replicas {
                scale(&ctx, &d, rs, replicas, surge).await?;
            }
        }
        let all_now = api
            .list(&ListParams::default().labels(&labels::to_query(&spec.selector)))
            .await?
            .items;
        return write_status(
            &ctx,
            &d,
            existing_new.as_ref(),
            &all_now,
            false,
            max_unavailable,
        )
        .await;
    }
    let max_old_rev = old.iter().map(revision).max().unwrap_or(0);
    let (mut new_rs, created) = new_replica_set(&ctx, &d, existing_new, max_old_rev, surge).await?;
    let d_rev = new_rs
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .cloned()
        .unwrap_or_default();
    if d.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        != Some(&d_rev)
    {
        let dapi: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
        dapi.patch(
            &d.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {REVISION: d_rev}}})),
        )
        .await?;
    }
    let recreate = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
    if recreate {
        for rs in old.iter_mut() {
            if spec_replicas(rs) > 0 {
                *rs = scale(&ctx, &d, rs, 0, surge).await?;
            }
        }
        let old_pods_running = old_pods_exist(&ctx, &ns, &old).await?;
        if !old_pods_running && spec_replicas(&new_rs) != replicas {
            new_rs = scale(&ctx, &d, &new_rs, replicas, surge).await?;
        }
    } else {
        // Pods that still exist count too (an old RS may not have deleted its surplus yet),
        // so maxSurge holds for real pods, not just for specs.
        let present =
            |rs: &ReplicaSet| spec_replicas(rs).max(rs.status.as_ref().map_or(0, |s| s.replicas));
        let all_replicas: i32 = present(&new_rs) + old.iter().map(present).sum::<i32>();
        let target = new_rs_target(replicas, surge, spec_replicas(&new_rs), all_replicas);
        if target != spec_replicas(&new_rs) {
            new_rs = scale(&ctx, &d, &new_rs, target, surge).await?;
        }
        let olds: Vec<(i32, i32)> = old
            .iter()
            .map(|rs| (spec_replicas(rs), available(rs)))
            .collect();
        let targets = old_rs_targets(
            replicas,
            max_unavailable,
            spec_replicas(&new_rs),
            available(&new_rs),
            &olds,
        );
        for (rs, t) in old.iter_mut().zip(targets) {
            if t != spec_replicas(rs) {
                *rs = scale(&ctx, &d, rs, t, surge).await?;
            }
        }
    }
    cleanup(&ctx, &d, &old).await?;
    let mut all_now = old;
    all_now.push(new_rs.clone());
    write_status(&ctx, &d, Some(&new_rs), &all_now, created, max_unavailable).await
}

async fn old_pods_exist(ctx: &C, ns: &str, old: &[ReplicaSet]) -> Result<bool, Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    for rs in old {
        let Some(sel) = rs.spec.as_ref().map(|s| &s.selector) else {
            continue;
        };
        let uid = rs.metadata.uid.clone().unwrap_or_default();
        let list = pods
            .list(&ListParams::default().labels(&labels::to_query(sel)))
            .await?;
        // Terminating pods still count: Recreate waits until they are gone.
        if list.items.iter().any(|p| {
            super::pods::controller_of(&p.metadata).is_some_and(|o| o.uid == uid)
                && (is_active(p) || p.metadata.deletion_timestamp.is_some())
        }) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Delete the oldest fully scaled-down old ReplicaSets beyond `revisionHistoryLimit`.
async fn cleanup(ctx: &C, d: &Deployment, old: &[ReplicaSet]) -> Result<(), Error> {
    let limit = d
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10);
    let mut idle: Vec<&ReplicaSet> = old
        .iter()
        .filter(|rs| {
            spec_replicas(rs) == 0
                && rs.status.as_ref().is_none_or(|s| s.replicas == 0)
                && rs.metadata.deletion_timestamp.is_none()
        })
        .collect();
    let excess = idle
        .len()
        .saturating_sub(usize::try_from(limit).unwrap_or(0));
    idle.sort_by_key(|rs| revision(rs));
    let api = rs_api(ctx, &d.namespace().unwrap_or_default());
    for rs in idle.into_iter().take(excess) {
        match api.delete(&rs.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn condition(type_: &str, status: &str, reason: &str, message: String) -> DeploymentCondition {
    let now = Time(jiff::Timestamp::now());
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

/// Replace the condition of that type, keeping lastTransitionTime when the status is unchanged.
fn set_condition(conds: &mut Vec<DeploymentCondition>, mut c: DeploymentCondition) {
    if let Some(old) = conds.iter().find(|o| o.type_ == c.type_) {
        if old.status == c.status {
            c.last_transition_time = old.last_transition_time.clone();
        }
        // ReplicaSetUpdated always records progress "now" (the progress deadline's clock).
        if old.status == c.status
            && old.reason == c.reason
            && old.message == c.message
            && c.reason.as_deref() != Some("ReplicaSetUpdated")
        {
            c.last_update_time = old.last_update_time.clone();
        }
    }
    conds.retain(|o| o.type_ != c.type_);
    conds.push(c);
}

async fn write_status(
    ctx: &C,
    d: &Deployment,
    new_rs: Option<&ReplicaSet>,
    all: &[ReplicaSet],
    created: bool,
    max_unavailable: i32,
) -> Result<Action, Error> {
    let spec = d.spec.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1);
    let st = |rs: &ReplicaSet| rs.status.clone().unwrap_or_default();
    let total: i32 = all.iter().map(|rs| st(rs).replicas).sum();
    let updated = new_rs.map(|rs| st(rs).replicas).unwrap_or(0);
    let ready: i32 = all
        .iter()
        .map(|rs| st(rs).ready_replicas.unwrap_or(0))
        .sum();
    let avail: i32 = all
        .iter()
        .map(|rs| st(rs).available_replicas.unwrap_or(0))
        .sum();
    let old = d.status.clone().unwrap_or_default();
    let mut conds = old.conditions.clone().unwrap_or_default();
    if avail >= replicas - max_unavailable {
        set_condition(
            &mut conds,
            condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
            ),
        );
    } else {
        set_condition(
            &mut conds,
            condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
            ),
        );
    }
    let rs_name = new_rs.map(|r| r.name_any()).unwrap_or_default();
    let paused = spec.paused.unwrap_or(false);
    let prev = conds.iter().find(|c| c.type_ == "Progressing").cloned();
    let prev_reason = prev
        .as_ref()
        .and_then(|c| c.reason.clone())
        .unwrap_or_default();
    let complete = new_rs.is_some()
        && updated == replicas
        && total == replicas
        && avail == replicas
        && new_rs.is_some_and(|rs| spec_replicas(rs) == replicas);
    let counts_changed = old.replicas != Some(total)
        || old.updated_replicas != Some(updated)
        || old.ready_replicas != Some(ready)
        || old.available_replicas != Some(avail);
    let mut requeue: Option<Duration> = None;
    if paused {
        set_condition(
            &mut conds,
            condition(
                "Progressing",
                "Unknown",
                "DeploymentPaused",
                "Deployment is paused".into(),
            ),
        );
    } else if prev_reason == "DeploymentPaused" {
        set_condition(
            &mut conds,
            condition(
                "Progressing",
                "Unknown",
                "DeploymentResumed",
                "Deployment is resumed".into(),
            ),
        );
    } else if complete {
        set_condition(
            &mut conds,
            condition(
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
            ),
        );
    } else if created {
        set_condition(
            &mut conds,
            condition(
                "Progressing",
                "True",
                "NewReplicaSetCreated",
                format!("Created new replica set \"{rs_name}\""),
            ),
        );
    } else if counts_changed || prev.is_none() || prev_reason == "NewReplicaSetAvailable" {
        set_condition(
            &mut conds,
            condition(
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{rs_name}\" is progressing."),
            ),
        );
    } else if prev_reason != "ProgressDeadlineExceeded" {
        // No progress since the last update: check the deadline.
        let deadline = i64::from(spec.progress_deadline_seconds.unwrap_or(600));
        let since = prev
            .as_ref()
            .and_then(|c| c.last_update_time.as_ref())
            .map(|t| jiff::Timestamp::now().as_second() - t.0.as_second())
            .unwrap_or(0);
        if since >= deadline {
            set_condition(
                &mut conds,
                condition(
                    "Progressing",
                    "False",
                    "ProgressDeadlineExceeded",
                    format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
                ),
            );
        } else {
            requeue = Some(Duration::from_secs(
                u64::try_from(deadline - since).unwrap_or(1).max(1),
            ));
        }
    }
    let status = DeploymentStatus {
        replicas: Some(total),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(avail),
        unavailable_replicas: Some((replicas - avail).max(0)),
        observed_generation: d.metadata.generation,
        conditions: Some(conds),
        collision_count: old.collision_count,
        terminating_replicas: None,
    };
    if status != old {
        let api: Api<Deployment> =
            Api::namespaced(ctx.client.clone(), &d.namespace().unwrap_or_default());
        api.patch_status(
            &d.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await?;
    }
    Ok(requeue.map_or(Action::await_change(), Action::requeue))
}

/// Run the Deployment controller until `shutdown`.
pub async fn run(client: Client, config: ControllersConfig, shutdown: CancellationToken) {
    let controller = Controller::new(
        Api::<Deployment>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(
        Api::<ReplicaSet>::all(client.clone()),
        watcher::Config::default(),
    );
    let ctx = Ctx::new(client, "deployment-controller", config);
    run_controller(controller, reconcile, ctx, shutdown).await;
}
