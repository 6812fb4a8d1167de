//! Pod helpers shared by the workload controllers: activity, readiness, availability,
//! controller ownerReferences, and claiming (adopt orphans / release non-matching pods).
//!
//! Owns: upstream's `controller_utils` semantics. May call: the API server (patches only).

use super::labels;
use super::runtime::Error;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

/// Not terminating and not finished.
pub fn is_active(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && !matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
}

fn ready_since(pod: &Pod) -> Option<jiff::Timestamp> {
    let c = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    if c.status != "True" {
        return None;
    }
    Some(
        c.last_transition_time
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
    )
}

/// `Ready=True`.
pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Ready for at least `min_ready_seconds`; else the seconds left (for a requeue).
pub fn availability(pod: &Pod, min_ready_seconds: i32) -> Result<(), Option<i64>> {
    let Some(since) = ready_since(pod) else {
        return Err(None);
    };
    if min_ready_seconds <= 0 {
        return Ok(());
    }
    let age = jiff::Timestamp::now().as_second() - since.as_second();
    let need = i64::from(min_ready_seconds);
    if age >= need {
        Ok(())
    } else {
        Err(Some(need - age))
    }
}

/// Whether `pod` is available now; when it is Ready but not yet for `min_ready_seconds`,
/// `recheck` keeps the earliest number of seconds after which to look again.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, recheck: &mut Option<i64>) -> bool {
    match availability(pod, min_ready_seconds) {
        Ok(()) => true,
        Err(Some(left)) => {
            *recheck = Some(recheck.map_or(left, |r| r.min(left)));
            false
        }
        Err(None) => false,
    }
}

/// A controller ownerReference pointing at `owner`.
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).to_string(),
        kind: K::kind(&()).to_string(),
        name: owner.name_any(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The controller ownerReference of an object, if any.
pub fn controller_of(meta: &kube::api::ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))
}

/// Claim objects for `owner`: keep owned ones that still match, adopt matching orphans, release
/// owned ones that no longer match. Returns the objects now owned.
pub async fn claim<K, O>(
    api: &Api<K>,
    owner: &O,
    selector: &LabelSelector,
    objects: Vec<K>,
) -> Result<Vec<K>, Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    O: Resource<DynamicType = ()>,
{
    let uid = owner.meta().uid.clone().unwrap_or_default();
    let owner_deleting = owner.meta().deletion_timestamp.is_some();
    let mut out = Vec::new();
    for obj in objects {
        let matches = labels::matches(Some(selector), obj.meta().labels.as_ref());
        match controller_of(obj.meta()) {
            Some(r) if r.uid == uid => {
                if matches {
                    out.push(obj);
                } else {
                    // Release: drop our ownerReference (guarded by our uid).
                    let refs: Vec<OwnerReference> = obj
                        .meta()
                        .owner_references
                        .iter()
                        .flatten()
                        .filter(|o| o.uid != uid)
                        .cloned()
                        .collect();
                    let patch = json!({"metadata": {
                        "ownerReferences": refs,
                        "uid": obj.meta().uid,
                    }});
                    match api
                        .patch(
                            &obj.name_any(),
                            &PatchParams::default(),
                            &Patch::Merge(patch),
                        )
                        .await
                    {
                        Ok(_) => {}
                        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            Some(_) => {}
            None => {
                if !matches || owner_deleting || obj.meta().deletion_timestamp.is_some() {
                    continue;
                }
                let mut refs = obj.meta().owner_references.clone().unwrap_or_default();
                refs.push(controller_ref(owner));
                let patch = json!({"metadata": {
                    "ownerReferences": refs,
                    "uid": obj.meta().uid,
                    "resourceVersion": obj.meta().resource_version,
                }});
                match api
                    .patch(
                        &obj.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(patch),
                    )
                    .await
                {
                    Ok(adopted) => out.push(adopted),
                    Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Ok(out)
}
