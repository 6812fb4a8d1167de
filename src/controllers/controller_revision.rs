//! ControllerRevision history shared by the DaemonSet and StatefulSet controllers: the
//! revision data (`{"spec":{"template":{…,"$patch":"replace"}}}` like upstream, so `kubectl
//! rollout history/undo` can apply it as a strategic merge patch), hashing, finding or creating
//! the revision of the current template (with collision handling and rollback renumbering),
//! and trimming old history.
//!
//! Owns: upstream's `controller/history` semantics. May call: the API server.

use super::labels;
use super::pods::{claim, controller_ref};
use super::runtime::Error;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};

/// Pod label naming the revision a pod was created from.
pub const POD_HASH_LABEL: &str = "controller-revision-hash";
/// Label on a ControllerRevision carrying its hash.
pub const REVISION_HASH_LABEL: &str = "controller.kubernetes.io/hash";

const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-1a 32 over the canonical JSON of `v` (+ collision count), encoded with upstream's
/// "safe" alphabet. serde_json maps are sorted, so equal values hash equally.
pub fn hash_value(v: &Value, collision_count: Option<i32>) -> String {
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |b: &[u8]| {
        for x in b {
            h ^= u32::from(*x);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    feed(v.to_string().as_bytes());
    if let Some(c) = collision_count.filter(|c| *c != 0) {
        feed(&c.to_le_bytes());
    }
    h.to_string()
        .bytes()
        .map(|c| char::from(SAFE[usize::from(c) % SAFE.len()]))
        .collect()
}

/// The revision data for a template: a patch replacing `spec.template`.
pub fn patch_data(tpl: &PodTemplateSpec) -> Result<Value, Error> {
    let mut t = serde_json::to_value(tpl)?;
    if let Value::Object(m) = &mut t {
        m.insert("$patch".into(), json!("replace"));
    }
    Ok(json!({"spec": {"template": t}}))
}

/// The template recorded in a revision.
pub fn template_of(rev: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = rev.data.as_ref()?.0.get("spec")?.get("template")?.clone();
    if let Some(m) = t.as_object_mut() {
        m.remove("$patch");
    }
    serde_json::from_value(t).ok()
}

/// Upstream truncates the parent's name so the revision name stays a valid name.
pub fn revision_name(parent: &str, hash: &str) -> String {
    let prefix: String = parent.chars().take(223).collect();
    format!("{prefix}-{hash}")
}

/// The revisions `owner` controls (adopting matching orphans), oldest first.
pub async fn owned<O>(
    api: &Api<ControllerRevision>,
    owner: &O,
    selector: &LabelSelector,
) -> Result<Vec<ControllerRevision>, Error>
where
    O: Resource<DynamicType = ()>,
{
    let all = api
        .list(&ListParams::default().labels(&labels::to_query(selector)))
        .await?
        .items;
    let mut revs = claim(api, owner, selector, all).await?;
    revs.sort_by_key(|r| r.revision);
    Ok(revs)
}

fn data_of(r: &ControllerRevision) -> Option<&Value> {
    r.data.as_ref().map(|d| &d.0)
}

/// What a new revision looks like (besides its data).
pub struct NewRevision<'a> {
    /// Labels (the template's).
    pub labels: BTreeMap<String, String>,
    /// Annotations (upstream copies the owner's, e.g. `kubernetes.io/change-cause`).
    pub annotations: BTreeMap<String, String>,
    /// The data to hash for the name: the template (DaemonSet) or the patch (StatefulSet).
    pub hash_input: &'a Value,
    /// The owner's `status.collisionCount`.
    pub collision_count: i32,
}

/// Find the revision holding `data` among `revs` (renumbering it as the newest if it is an old
/// one, i.e. a rollback) or create it. Returns the revision and the possibly bumped collision
/// count; `revs` is updated in place.
pub async fn ensure<O>(
    api: &Api<ControllerRevision>,
    owner: &O,
    revs: &mut Vec<ControllerRevision>,
    data: Value,
    new: NewRevision<'_>,
) -> Result<(ControllerRevision, i32), Error>
where
    O: Resource<DynamicType = ()>,
{
    let max = revs.iter().map(|r| r.revision).max().unwrap_or(0);
    if let Some(i) = revs.iter().rposition(|r| data_of(r) == Some(&data)) {
        if revs[i].revision != max {
            let patched = api
                .patch(
                    &revs[i].name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(json!({"revision": max + 1})),
                )
                .await?;
            revs[i] = patched;
            revs.sort_by_key(|r| r.revision);
        }
        let r = revs.iter().find(|r| data_of(r) == Some(&data)).cloned();
        if let Some(r) = r {
            return Ok((r, new.collision_count));
        }
    }
    let mut collisions = new.collision_count;
    // A name taken by a revision with other data is a hash collision: bump and retry.
    for _ in 0..5 {
        let hash = hash_value(new.hash_input, Some(collisions));
        let mut labels = new.labels.clone();
        labels.insert(REVISION_HASH_LABEL.into(), hash.clone());
        let rev = ControllerRevision {
            metadata: ObjectMeta {
                name: Some(revision_name(&owner.name_any(), &hash)),
                namespace: owner.meta().namespace.clone(),
                labels: Some(labels),
                annotations: (!new.annotations.is_empty()).then(|| new.annotations.clone()),
                owner_references: Some(vec![controller_ref(owner)]),
                ..Default::default()
            },
            data: Some(RawExtension(data.clone())),
            revision: max + 1,
        };
        match api.create(&PostParams::default(), &rev).await {
            Ok(created) => {
                revs.push(created.clone());
                return Ok((created, collisions));
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let existing = api.get(&rev.name_any()).await?;
                let ours = super::pods::controller_of(&existing.metadata)
                    .is_some_and(|o| Some(&o.uid) == owner.meta().uid.as_ref());
                if ours && data_of(&existing) == Some(&data) {
                    revs.push(existing.clone());
                    return Ok((existing, collisions));
                }
                collisions = collisions.saturating_add(1);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Invalid {
        object: super::runtime::describe(owner),
        reason: "too many controller revision hash collisions".into(),
    })
}

/// Delete the oldest revisions beyond `limit`, never one named in `live`.
pub async fn truncate(
    api: &Api<ControllerRevision>,
    revs: &[ControllerRevision],
    live: &HashSet<String>,
    limit: i32,
) -> Result<(), Error> {
    let old: Vec<&ControllerRevision> = revs
        .iter()
        .filter(|r| !live.contains(&r.name_any()))
        .collect();
    let limit = usize::try_from(limit.max(0)).unwrap_or(0);
    if old.len() <= limit {
        return Ok(());
    }
    for r in &old[..old.len() - limit] {
        match api.delete(&r.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_data_round_trips_the_template_and_replaces_it_on_patch() {
        let tpl: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "a"}},
            "spec": {"containers": [{"name": "c", "image": "x"}]}
        }))
        .unwrap();
        let data = patch_data(&tpl).unwrap();
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        let rev = ControllerRevision {
            data: Some(RawExtension(data)),
            ..Default::default()
        };
        assert_eq!(template_of(&rev), Some(tpl));
    }

    #[test]
    fn hashes_are_stable_differ_by_content_and_collision_count() {
        let a = json!({"b": 1, "a": [1, 2]});
        let b = json!({"a": [1, 2], "b": 1});
        assert_eq!(hash_value(&a, None), hash_value(&b, None));
        assert_eq!(hash_value(&a, None), hash_value(&a, Some(0)));
        assert_ne!(hash_value(&a, None), hash_value(&a, Some(1)));
        assert_ne!(hash_value(&a, None), hash_value(&json!({"b": 2}), None));
        assert!(hash_value(&a, None).bytes().all(|c| SAFE.contains(&c)));
    }

    #[test]
    fn long_parent_names_are_truncated_in_revision_names() {
        let long = "x".repeat(300);
        assert_eq!(revision_name(&long, "abc").len(), 223 + 4);
        assert_eq!(revision_name("web", "abc"), "web-abc");
    }
}
