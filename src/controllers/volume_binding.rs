//! PersistentVolume binder (upstream's persistent-volume controller, static binding only):
//! pending claims are bound to the smallest available volume that fits (same storage class,
//! `""` included; access modes a superset; capacity at least the request; same volume mode;
//! the claim's selector), honouring pre-binding from either side (`pvc.spec.volumeName`,
//! `pv.spec.claimRef`). A volume whose claim is gone becomes `Released`; reclaim policy
//! `Delete` then deletes the PV object (only the object: no plugin deleter runs, so a
//! hostPath's directory stays on disk), `Retain` keeps it `Released`, `Recycle` (deprecated
//! upstream) marks it `Failed`. Dynamic provisioning is not done: a claim with a class
//! waits for someone else to provision.
//!
//! Owns: `pv.spec.claimRef`, PV/PVC phases, `pvc.spec.volumeName` and the bind annotations.
//! May call: the API server.

use super::ControllersConfig;
use super::runtime::{Ctx, Error, NORMAL, WARNING, run_controller, serial_config};
use futures::channel::mpsc;
use k8s_openapi::api::core::v1::{
    ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimStatus,
};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Upstream's resync period of the binder.
const RESYNC: Duration = Duration::from_secs(15);
const BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
const BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
const BETA_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

/// State of the claim side: nothing but the shared context.
struct Claims;

/// State of the volume side: pokes the claim side when a volume becomes available.
struct Volumes {
    kick: Mutex<mpsc::Sender<()>>,
}

fn claim_class(pvc: &PersistentVolumeClaim) -> String {
    pvc.annotations()
        .get(BETA_CLASS)
        .cloned()
        .or_else(|| pvc.spec.as_ref().and_then(|s| s.storage_class_name.clone()))
        .unwrap_or_default()
}

fn volume_class(pv: &PersistentVolume) -> String {
    pv.annotations()
        .get(BETA_CLASS)
        .cloned()
        .or_else(|| pv.spec.as_ref().and_then(|s| s.storage_class_name.clone()))
        .unwrap_or_default()
}

fn storage(
    m: Option<
        &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
    >,
) -> f64 {
    m.and_then(|m| m.get("storage"))
        .and_then(|q| crate::quantity::parse_quantity(&q.0))
        .unwrap_or(0.0)
}

fn claim_request(pvc: &PersistentVolumeClaim) -> f64 {
    storage(
        pvc.spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref()),
    )
}

fn volume_capacity(pv: &PersistentVolume) -> f64 {
    storage(pv.spec.as_ref().and_then(|s| s.capacity.as_ref()))
}

fn phase_of(pv: &PersistentVolume) -> &str {
    pv.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Whether `pv.spec.claimRef` names this claim (and, when it carries a uid, this very one).
fn bound_to(pv: &PersistentVolume, pvc: &PersistentVolumeClaim) -> bool {
    let Some(r) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return false;
    };
    r.name.as_deref() == pvc.metadata.name.as_deref()
        && r.namespace.as_deref() == pvc.metadata.namespace.as_deref()
        && r.uid
            .as_deref()
            .is_none_or(|u| u.is_empty() || Some(u) == pvc.metadata.uid.as_deref())
}

/// Why `pv` cannot serve `pvc` (capacity, class, modes, volume mode), if it cannot.
fn mismatch(pv: &PersistentVolume, pvc: &PersistentVolumeClaim) -> Option<String> {
    if volume_capacity(pv) < claim_request(pvc) {
        return Some("requested PV is too small".into());
    }
    if volume_class(pv) != claim_class(pvc) {
        return Some("storageClassName does not match".into());
    }
    let want = pvc
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.clone())
        .unwrap_or_default();
    let have = pv
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.clone())
        .unwrap_or_default();
    if !want.iter().all(|m| have.contains(m)) {
        return Some("incompatible accessMode".into());
    }
    let mode = |m: Option<&String>| m.cloned().unwrap_or_else(|| "Filesystem".into());
    if mode(pvc.spec.as_ref().and_then(|s| s.volume_mode.as_ref()))
        != mode(pv.spec.as_ref().and_then(|s| s.volume_mode.as_ref()))
    {
        return Some("incompatible volumeMode".into());
    }
    None
}

/// The volume `pvc` should bind to: one pre-bound to it if any fits, else the smallest
/// available one that fits (upstream's `findMatchingVolume`).
fn find_match<'a>(
    pvc: &PersistentVolumeClaim,
    pvs: &'a [PersistentVolume],
) -> Option<&'a PersistentVolume> {
    let selector = pvc.spec.as_ref().and_then(|s| s.selector.as_ref());
    let mut best: Option<&PersistentVolume> = None;
    for pv in pvs {
        if pv.metadata.deletion_timestamp.is_some() || mismatch(pv, pvc).is_some() {
            continue;
        }
        if bound_to(pv, pvc) {
            return Some(pv);
        }
        if phase_of(pv) != "Available" || pv.spec.as_ref().is_some_and(|s| s.claim_ref.is_some()) {
            continue;
        }
        if selector.is_some_and(|s| !super::labels::matches(Some(s), pv.metadata.labels.as_ref())) {
            continue;
        }
        if best.is_none_or(|b| volume_capacity(b) > volume_capacity(pv)) {
            best = Some(pv);
        }
    }
    best
}

async fn set_claim_status(
    api: &Api<PersistentVolumeClaim>,
    pvc: &PersistentVolumeClaim,
    status: PersistentVolumeClaimStatus,
) -> Result<(), Error> {
    if pvc.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let patch = json!({"status": {
        "phase": status.phase,
        "capacity": status.capacity,
        "accessModes": status.access_modes,
    }});
    api.patch_status(
        &pvc.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await?;
    Ok(())
}

async fn set_volume_phase(
    api: &Api<PersistentVolume>,
    pv: &PersistentVolume,
    phase: &str,
    message: Option<&str>,
) -> Result<bool, Error> {
    if phase_of(pv) == phase {
        return Ok(false);
    }
    // Upstream (1.29+) stamps every phase change of a volume.
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now());
    let patch =
        json!({"status": {"phase": phase, "message": message, "lastPhaseTransitionTime": now}});
    api.patch_status(
        &pv.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await?;
    Ok(true)
}

/// Bind both sides: the volume's claimRef and phase first, then the claim (as upstream, so a
/// crash in between leaves a volume the claim side finishes binding).
async fn bind(
    client: &Client,
    pv: &PersistentVolume,
    pvc: &PersistentVolumeClaim,
) -> Result<(), Error> {
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let ns = pvc.namespace().unwrap_or_default();
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let pv_name = pv.name_any();
    let want_ref = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("PersistentVolumeClaim".into()),
        namespace: Some(ns.clone()),
        name: pvc.metadata.name.clone(),
        uid: pvc.metadata.uid.clone(),
        resource_version: pvc.metadata.resource_version.clone(),
        ..Default::default()
    };
    let current = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
    let mut pv_now = pv.clone();
    if current
        .and_then(|r| r.uid.as_deref())
        .filter(|u| !u.is_empty())
        != pvc.metadata.uid.as_deref()
    {
        let mut next = pv.clone();
        if current.is_none() {
            next.annotations_mut()
                .insert(BOUND_BY_CONTROLLER.into(), "yes".into());
        }
        if let Some(s) = next.spec.as_mut() {
            s.claim_ref = Some(want_ref);
        }
        pv_now = pvs.replace(&pv_name, &PostParams::default(), &next).await?;
    }
    set_volume_phase(&pvs, &pv_now, "Bound", None).await?;

    let mut claim = pvc.clone();
    let needs_spec = claim.spec.as_ref().and_then(|s| s.volume_name.as_deref())
        != Some(pv_name.as_str())
        || !claim.annotations().contains_key(BIND_COMPLETED);
    if needs_spec {
        let by_controller = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.as_deref())
            .is_none_or(str::is_empty);
        if let Some(s) = claim.spec.as_mut() {
            s.volume_name = Some(pv_name.clone());
        }
        claim
            .annotations_mut()
            .insert(BIND_COMPLETED.into(), "yes".into());
        if by_controller {
            claim
                .annotations_mut()
                .insert(BOUND_BY_CONTROLLER.into(), "yes".into());
        }
        claim = pvcs
            .replace(&claim.name_any(), &PostParams::default(), &claim)
            .await?;
    }
    let spec = pv_now.spec.clone().unwrap_or_default();
    set_claim_status(
        &pvcs,
        &claim,
        PersistentVolumeClaimStatus {
            phase: Some("Bound".into()),
            capacity: spec.capacity,
            access_modes: spec.access_modes,
            ..claim.status.clone().unwrap_or_default()
        },
    )
    .await?;
    tracing::debug!(claim = %format!("{ns}/{}", claim.name_any()), volume = %pv_name, "bound");
    Ok(())
}

/// Why nothing was bound, as upstream reports it on the claim.
async fn report_unbound(ctx: &Ctx<Claims>, pvc: &PersistentVolumeClaim) -> Result<(), Error> {
    let class = claim_class(pvc);
    if class.is_empty() {
        ctx.event(
            pvc,
            NORMAL,
            "FailedBinding",
            "no persistent volumes available for this claim and no storage class is set".into(),
        )
        .await;
        return Ok(());
    }
    let classes: Api<StorageClass> = Api::all(ctx.client.clone());
    match classes.get_opt(&class).await? {
        None => {
            ctx.event(
                pvc,
                WARNING,
                "ProvisioningFailed",
                format!("storageclass.storage.k8s.io \"{class}\" not found"),
            )
            .await
        }
        Some(sc) if sc.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer") => {
            ctx.event(
                pvc,
                NORMAL,
                "WaitForFirstConsumer",
                "waiting for first consumer to be created before binding".into(),
            )
            .await
        }
        Some(sc) if sc.provisioner == "kubernetes.io/no-provisioner" => {
            ctx.event(
                pvc,
                NORMAL,
                "FailedBinding",
                "no persistent volumes available for this claim and no storage class is set"
                    .into(),
            )
            .await
        }
        Some(sc) => {
            ctx.event(
                pvc,
                NORMAL,
                "ExternalProvisioning",
                format!(
                    "Waiting for a volume to be created either by the external provisioner '{}' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered.",
                    sc.provisioner
                ),
            )
            .await
        }
    }
    Ok(())
}

/// A bound claim whose volume is gone or bound elsewhere: phase `Lost` (the rest of its
/// status kept) and a warning event saying which.
async fn mark_lost(
    ctx: &Ctx<Claims>,
    pvcs: &Api<PersistentVolumeClaim>,
    pvc: &PersistentVolumeClaim,
    reason: &str,
    message: &str,
) -> Result<Action, Error> {
    let status = PersistentVolumeClaimStatus {
        phase: Some("Lost".into()),
        ..pvc.status.clone().unwrap_or_default()
    };
    set_claim_status(pvcs, pvc, status).await?;
    ctx.event(pvc, WARNING, reason, message.into()).await;
    Ok(Action::await_change())
}

fn pending() -> PersistentVolumeClaimStatus {
    PersistentVolumeClaimStatus {
        phase: Some("Pending".into()),
        ..Default::default()
    }
}

async fn reconcile_claim(
    pvc: Arc<PersistentVolumeClaim>,
    ctx: Arc<Ctx<Claims>>,
) -> Result<Action, Error> {
    if pvc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = pvc.namespace().unwrap_or_default();
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let pvs: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let wanted = pvc
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|v| !v.is_empty());
    let Some(volume) = wanted else {
        let all = pvs.list(&Default::default()).await?.items;
        if let Some(pv) = find_match(&pvc, &all) {
            bind(&ctx.client, pv, &pvc).await?;
            return Ok(Action::await_change());
        }
        set_claim_status(&pvcs, &pvc, pending()).await?;
        report_unbound(&ctx, &pvc).await?;
        return Ok(Action::requeue(RESYNC));
    };
    let was_bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    let Some(pv) = pvs.get_opt(&volume).await? else {
        if was_bound {
            let why = "Bound claim has lost its PersistentVolume. Data on the volume is lost!";
            return mark_lost(&ctx, &pvcs, &pvc, "ClaimLost", why).await;
        }
        set_claim_status(&pvcs, &pvc, pending()).await?;
        return Ok(Action::requeue(RESYNC));
    };
    let claimed = pv
        .spec
        .as_ref()
        .and_then(|s| s.claim_ref.as_ref())
        .is_some();
    if claimed && !bound_to(&pv, &pvc) {
        if was_bound {
            let why = "Two claims are bound to the same volume, this one is bound incorrectly";
            return mark_lost(&ctx, &pvcs, &pvc, "ClaimMisbound", why).await;
        }
        set_claim_status(&pvcs, &pvc, pending()).await?;
        ctx.event(
            pvc.as_ref(),
            WARNING,
            "FailedBinding",
            format!("volume \"{volume}\" already bound to a different claim."),
        )
        .await;
        return Ok(Action::requeue(RESYNC));
    }
    if let Some(why) = mismatch(&pv, &pvc) {
        set_claim_status(&pvcs, &pvc, pending()).await?;
        ctx.event(
            pvc.as_ref(),
            WARNING,
            "VolumeMismatch",
            format!("Cannot bind to requested volume \"{volume}\": {why}"),
        )
        .await;
        return Ok(Action::requeue(RESYNC));
    }
    bind(&ctx.client, &pv, &pvc).await?;
    Ok(Action::await_change())
}

async fn reconcile_volume(
    pv: Arc<PersistentVolume>,
    ctx: Arc<Ctx<Volumes>>,
) -> Result<Action, Error> {
    if pv.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let pvs: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let kick = || {
        let _ = ctx
            .data
            .kick
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .try_send(());
    };
    let Some(r) = pv.spec.as_ref().and_then(|s| s.claim_ref.clone()) else {
        if set_volume_phase(&pvs, &pv, "Available", None).await? {
            kick();
        }
        return Ok(Action::await_change());
    };
    let Some(ref_uid) = r.uid.clone().filter(|u| !u.is_empty()) else {
        // Reserved for a claim that has not taken it yet: the claim side binds it.
        if set_volume_phase(&pvs, &pv, "Available", None).await? {
            kick();
        }
        return Ok(Action::await_change());
    };
    let ns = r.namespace.clone().unwrap_or_default();
    let name = r.name.clone().unwrap_or_default();
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let claim = pvcs
        .get_opt(&name)
        .await?
        .filter(|c| c.metadata.uid.as_deref() == Some(ref_uid.as_str()));
    let Some(claim) = claim else {
        return release(&ctx, &pvs, &pv).await;
    };
    let claimed = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .unwrap_or("");
    if claimed == pv.name_any() {
        set_volume_phase(&pvs, &pv, "Bound", None).await?;
    } else if claimed.is_empty() {
        // Binding in progress (or undone by a user): the claim side completes it.
        kick();
    } else if pv.annotations().contains_key(BOUND_BY_CONTROLLER) {
        // The claim took another volume: give this one back, as upstream's unbindVolume.
        let mut next = (*pv).clone();
        next.annotations_mut().remove(BOUND_BY_CONTROLLER);
        if let Some(s) = next.spec.as_mut() {
            s.claim_ref = None;
        }
        let next = pvs
            .replace(&pv.name_any(), &PostParams::default(), &next)
            .await?;
        if set_volume_phase(&pvs, &next, "Available", None).await? {
            kick();
        }
    }
    Ok(Action::await_change())
}

/// The claim of a bound volume is gone: `Released`, then the reclaim policy.
async fn release(
    ctx: &Ctx<Volumes>,
    pvs: &Api<PersistentVolume>,
    pv: &PersistentVolume,
) -> Result<Action, Error> {
    if phase_of(pv) == "Failed" {
        return Ok(Action::await_change());
    }
    set_volume_phase(pvs, pv, "Released", None).await?;
    let policy = pv
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
        .unwrap_or("Retain");
    match policy {
        "Delete" => {
            // Only the object: no volume plugin deletes the data (upstream's hostPath
            // deleter would remove the directory, and only under /tmp).
            match pvs.delete(&pv.name_any(), &Default::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        "Recycle" => {
            let msg = "recycling is not supported; delete and recreate the volume";
            set_volume_phase(pvs, pv, "Failed", Some(msg)).await?;
            ctx.event(pv, WARNING, "VolumeFailedRecycle", msg.into())
                .await;
        }
        _ => {}
    }
    Ok(Action::await_change())
}

fn claim_of(pv: PersistentVolume) -> Option<ObjectRef<PersistentVolumeClaim>> {
    let r = pv.spec?.claim_ref?;
    Some(ObjectRef::new(&r.name?).within(&r.namespace?))
}

fn volume_of(pvc: PersistentVolumeClaim) -> Option<ObjectRef<PersistentVolume>> {
    pvc.spec?
        .volume_name
        .filter(|v| !v.is_empty())
        .map(|v| ObjectRef::new(&v))
}

/// Run the binder (claim side and volume side) until `shutdown`.
pub async fn run(client: Client, config: ControllersConfig, shutdown: CancellationToken) {
    let _ = config;
    let (tx, rx) = mpsc::channel::<()>(16);
    let claims = Controller::new(
        Api::<PersistentVolumeClaim>::all(client.clone()),
        watcher::Config::default(),
    )
    // One claim at a time: two claims must not race for the same volume.
    .with_config(serial_config())
    .watches(
        Api::<PersistentVolume>::all(client.clone()),
        watcher::Config::default(),
        claim_of,
    )
    .reconcile_all_on(rx);
    let volumes = Controller::new(
        Api::<PersistentVolume>::all(client.clone()),
        watcher::Config::default(),
    )
    .watches(
        Api::<PersistentVolumeClaim>::all(client.clone()),
        watcher::Config::default(),
        volume_of,
    );
    let claims_ctx = Ctx::new(client.clone(), "persistentvolume-binder-controller", Claims);
    let volumes_ctx = Ctx::new(
        client,
        "persistentvolume-binder-controller",
        Volumes {
            kick: Mutex::new(tx),
        },
    );
    futures::join!(
        run_controller(claims, reconcile_claim, claims_ctx, shutdown.clone()),
        run_controller(volumes, reconcile_volume, volumes_ctx, shutdown),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pv(name: &str, size: &str, modes: &[&str], class: Option<&str>) -> PersistentVolume {
        let mut v = json!({
            "metadata": {"name": name},
            "spec": {"capacity": {"storage": size}, "accessModes": modes,
                     "hostPath": {"path": format!("/tmp/{name}")}},
            "status": {"phase": "Available"}
        });
        if let Some(c) = class {
            v["spec"]["storageClassName"] = json!(c);
        }
        serde_json::from_value(v).unwrap()
    }

    fn pvc(size: &str, modes: &[&str], class: Option<&str>) -> PersistentVolumeClaim {
        let mut v = json!({
            "metadata": {"name": "data", "namespace": "ns", "uid": "c1"},
            "spec": {"accessModes": modes, "resources": {"requests": {"storage": size}}}
        });
        if let Some(c) = class {
            v["spec"]["storageClassName"] = json!(c);
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_smallest_fitting_volume_of_the_same_class_wins() {
        let pvs = vec![
            pv("big", "10Gi", &["ReadWriteOnce"], None),
            pv("small", "1Gi", &["ReadWriteOnce", "ReadOnlyMany"], None),
            pv("tiny", "100Mi", &["ReadWriteOnce"], None),
            pv("other-class", "1Gi", &["ReadWriteOnce"], Some("fast")),
            pv("rox", "1Gi", &["ReadOnlyMany"], None),
        ];
        let got = find_match(&pvc("500Mi", &["ReadWriteOnce"], None), &pvs).unwrap();
        assert_eq!(got.name_any(), "small");
        // "" and an unset class are the same (no class).
        let got = find_match(&pvc("500Mi", &["ReadWriteOnce"], Some("")), &pvs).unwrap();
        assert_eq!(got.name_any(), "small");
        let got = find_match(&pvc("500Mi", &["ReadWriteOnce"], Some("fast")), &pvs).unwrap();
        assert_eq!(got.name_any(), "other-class");
        assert!(find_match(&pvc("20Gi", &["ReadWriteOnce"], None), &pvs).is_none());
        assert!(find_match(&pvc("1Gi", &["ReadWriteMany"], None), &pvs).is_none());
    }

    #[test]
    fn a_volume_pre_bound_to_the_claim_wins_and_one_bound_elsewhere_is_skipped() {
        let mut pre = pv("pre", "5Gi", &["ReadWriteOnce"], None);
        pre.spec.as_mut().unwrap().claim_ref = Some(ObjectReference {
            namespace: Some("ns".into()),
            name: Some("data".into()),
            ..Default::default()
        });
        pre.status.as_mut().unwrap().phase = Some("Pending".into());
        let mut taken = pv("taken", "1Gi", &["ReadWriteOnce"], None);
        taken.spec.as_mut().unwrap().claim_ref = Some(ObjectReference {
            namespace: Some("ns".into()),
            name: Some("else".into()),
            ..Default::default()
        });
        let pvs = vec![taken, pv("free", "2Gi", &["ReadWriteOnce"], None), pre];
        let got = find_match(&pvc("1Gi", &["ReadWriteOnce"], None), &pvs).unwrap();
        assert_eq!(got.name_any(), "pre");
        let pvs = &pvs[..2];
        let got = find_match(&pvc("1Gi", &["ReadWriteOnce"], None), pvs).unwrap();
        assert_eq!(got.name_any(), "free");
    }

    #[test]
    fn a_selector_restricts_the_candidates() {
        let mut labelled = pv("labelled", "5Gi", &["ReadWriteOnce"], None);
        labelled.metadata.labels = Some([("tier".to_string(), "db".to_string())].into());
        let pvs = vec![pv("plain", "1Gi", &["ReadWriteOnce"], None), labelled];
        let mut claim = pvc("1Gi", &["ReadWriteOnce"], None);
        claim.spec.as_mut().unwrap().selector =
            serde_json::from_value(json!({"matchLabels": {"tier": "db"}})).unwrap();
        assert_eq!(find_match(&claim, &pvs).unwrap().name_any(), "labelled");
    }
}
