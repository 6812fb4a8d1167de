//! Applying one manifest file through the API server and pruning what it no longer names.
//!
//! Owns: the per-file record `kube-system/ConfigMap k3rs-addon-<name>` (see the module doc
//! of [`super`]). May call: the API server (discovery, server-side apply, delete).

use super::DeployError;
use super::manifest::{self, ObjectRef};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// Field manager of every write the deployer makes.
pub const FIELD_MANAGER: &str = "k3rs-deploy";
/// Namespace of the per-file records.
pub const RECORD_NAMESPACE: &str = "kube-system";
const RECORD_PREFIX: &str = "k3rs-addon-";
const OBJECTS_KEY: &str = "objects";
const SOURCE_ANNOTATION: &str = "k3rs.io/addon-source";
const CHECKSUM_ANNOTATION: &str = "k3rs.io/addon-checksum";

/// What applying a file did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub applied: Vec<ObjectRef>,
    pub deleted: Vec<ObjectRef>,
    /// Documents that failed: `(document index, error)`.
    pub errors: Vec<(usize, String)>,
}

/// Name of the record ConfigMap of add-on `addon` (a DNS label: lowercase, `-` for the rest).
pub fn record_name(addon: &str) -> String {
    let mut s: String = addon
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    s = s.trim_matches('-').to_string();
    let mut name = format!("{RECORD_PREFIX}{s}");
    name.truncate(63);
    name.trim_end_matches('-').to_string()
}

/// API resources looked up once per pass (a CRD applied earlier in the pass may add kinds,
/// so misses are not cached).
#[derive(Default)]
pub struct Resolver {
    cache: HashMap<String, (ApiResource, ApiCapabilities)>,
}

impl Resolver {
    async fn resolve(
        &mut self,
        client: &kube::Client,
        api_version: &str,
        kind: &str,
    ) -> Result<(ApiResource, ApiCapabilities), kube::Error> {
        let key = format!("{api_version}/{kind}");
        if let Some(hit) = self.cache.get(&key) {
            return Ok(hit.clone());
        }
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let found = kube::discovery::pinned_kind(client, &gvk).await?;
        self.cache.insert(key, found.clone());
        Ok(found)
    }

    /// The dynamic API of `r`, with the namespace defaulted to `default` for namespaced
    /// kinds and dropped for cluster-scoped ones; returns the resolved reference too.
    async fn api_for(
        &mut self,
        client: &kube::Client,
        r: &ObjectRef,
    ) -> Result<(Api<DynamicObject>, ObjectRef), kube::Error> {
        let (ar, caps) = self.resolve(client, &r.api_version, &r.kind).await?;
        let mut r = r.clone();
        let api = match caps.scope {
            Scope::Namespaced => {
                let ns = r.namespace.get_or_insert_with(|| "default".into()).clone();
                Api::namespaced_with(client.clone(), &ns, &ar)
            }
            Scope::Cluster => {
                r.namespace = None;
                Api::all_with(client.clone(), &ar)
            }
        };
        Ok((api, r))
    }
}

/// The objects the record of `addon` lists (empty when there is no record).
///
/// # Errors
/// When the API server cannot be asked.
pub async fn recorded(client: &kube::Client, addon: &str) -> Result<Vec<ObjectRef>, DeployError> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), RECORD_NAMESPACE);
    let name = record_name(addon);
    let cm = cms
        .get_opt(&name)
        .await
        .map_err(|source| DeployError::Api {
            what: format!("read record {RECORD_NAMESPACE}/{name}"),
            source,
        })?;
    let objects = cm
        .and_then(|c| c.data)
        .and_then(|d| d.get(OBJECTS_KEY).cloned())
        .unwrap_or_default();
    if objects.is_empty() {
        return Ok(Vec::new());
    }
    // A hand-edited, unreadable record is treated as empty: nothing is pruned by mistake.
    Ok(serde_json::from_str(&objects).unwrap_or_else(|e| {
        tracing::warn!(record = %name, error = %e, "unreadable add-on record; ignoring it");
        Vec::new()
    }))
}

async fn write_record(
    client: &kube::Client,
    addon: &str,
    source: &Path,
    checksum: &str,
    objects: &BTreeSet<ObjectRef>,
) -> Result<(), DeployError> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), RECORD_NAMESPACE);
    let name = record_name(addon);
    let list: Vec<&ObjectRef> = objects.iter().collect();
    let objects = serde_json::to_string(&list).map_err(|e| DeployError::Invalid(e.to_string()))?;
    let body = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": RECORD_NAMESPACE,
            "labels": {"app.kubernetes.io/managed-by": FIELD_MANAGER},
            "annotations": {
                SOURCE_ANNOTATION: source.display().to_string(),
                CHECKSUM_ANNOTATION: checksum,
            },
        },
        "data": {OBJECTS_KEY: objects},
    });
    cms.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|source| DeployError::Api {
        what: format!("write record {RECORD_NAMESPACE}/{name}"),
        source,
    })?;
    Ok(())
}

async fn delete_object(
    client: &kube::Client,
    resolver: &mut Resolver,
    r: &ObjectRef,
) -> Result<bool, kube::Error> {
    let (api, r) = match resolver.api_for(client, r).await {
        Ok(x) => x,
        // The kind is gone (its CRD deleted): so are its objects.
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(false),
        Err(e) => return Err(e),
    };
    match api.delete(&r.name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Apply every document of `text` (the content of `path`), delete what the previous
/// version of the file applied and this one does not name, and record the new list.
/// Documents that fail are reported in the outcome; the others are still applied.
///
/// # Errors
/// Only when the record cannot be read or written.
pub async fn apply_file(
    client: &kube::Client,
    path: &Path,
    text: &str,
    checksum: &str,
) -> Result<Outcome, DeployError> {
    let addon = manifest::addon_name(path);
    let previous = recorded(client, &addon).await?;
    let mut out = Outcome::default();
    let mut resolver = Resolver::default();
    let mut docs: Vec<(usize, Value, ObjectRef)> = Vec::new();
    let mut unparsed = false;
    for doc in manifest::parse(text) {
        match doc
            .object
            .and_then(|o| manifest::object_ref(&o).map(|r| (o, r)))
        {
            Ok((o, r)) => docs.push((doc.index, o, r)),
            Err(e) => {
                unparsed = true;
                out.errors.push((doc.index, e));
            }
        }
    }
    docs.sort_by_key(|(i, _, r)| (manifest::apply_rank(&r.kind), *i));
    let mut now: BTreeSet<ObjectRef> = BTreeSet::new();
    for (index, obj, r) in docs {
        match resolver.api_for(client, &r).await {
            Ok((api, r)) => {
                let mut obj = obj;
                if let (Some(ns), Some(meta)) = (&r.namespace, obj.get_mut("metadata"))
                    && let Some(m) = meta.as_object_mut()
                {
                    m.insert("namespace".into(), Value::String(ns.clone()));
                }
                let pp = PatchParams::apply(FIELD_MANAGER).force();
                match api.patch(&r.name, &pp, &Patch::Apply(&obj)).await {
                    Ok(_) => out.applied.push(r.clone()),
                    Err(e) => out.errors.push((index, format!("{r}: {e}"))),
                }
                now.insert(r);
            }
            Err(e) => {
                out.errors.push((index, format!("{r}: {e}")));
                now.insert(r);
            }
        }
    }
    // With a document unreadable we cannot tell what the file still names: keep everything.
    if unparsed {
        now.extend(previous.iter().cloned());
    } else {
        let gone: Vec<ObjectRef> = previous
            .iter()
            .filter(|o| !contains_resolved(&now, o))
            .cloned()
            .collect();
        for old in &gone {
            match delete_object(client, &mut resolver, old).await {
                Ok(true) => out.deleted.push(old.clone()),
                Ok(false) => {}
                Err(e) => {
                    out.errors.push((0, format!("delete {old}: {e}")));
                    now.insert(old.clone());
                }
            }
        }
    }
    write_record(client, &addon, path, checksum, &now).await?;
    Ok(out)
}

/// Whether `set` names `r`, also when `r` was recorded without the defaulted namespace.
fn contains_resolved(set: &BTreeSet<ObjectRef>, r: &ObjectRef) -> bool {
    set.contains(r)
        || (r.namespace.is_none() && {
            let mut d = r.clone();
            d.namespace = Some("default".into());
            set.contains(&d)
        })
}

/// Delete every object add-on `addon` applied, then its record (`--disable`).
///
/// # Errors
/// When the record cannot be read or an object cannot be deleted (the record then stays,
/// so the next start tries again).
pub async fn remove_addon(client: &kube::Client, addon: &str) -> Result<usize, DeployError> {
    let mut resolver = Resolver::default();
    let mut deleted = 0;
    for r in recorded(client, addon).await? {
        if delete_object(client, &mut resolver, &r)
            .await
            .map_err(|source| DeployError::Api {
                what: format!("delete {r}"),
                source,
            })?
        {
            deleted += 1;
        }
    }
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), RECORD_NAMESPACE);
    let name = record_name(addon);
    match cms.delete(&name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(source) => {
            return Err(DeployError::Api {
                what: format!("delete record {RECORD_NAMESPACE}/{name}"),
                source,
            });
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_names_are_dns_labels() {
        assert_eq!(record_name("rolebindings"), "k3rs-addon-rolebindings");
        assert_eq!(record_name("My_App.v2"), "k3rs-addon-my-app-v2");
        assert!(record_name(&"x".repeat(100)).len() <= 63);
    }

    #[test]
    fn a_record_without_namespace_matches_the_defaulted_one() {
        let mut set = BTreeSet::new();
        let r = ObjectRef {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some("default".into()),
            name: "a".into(),
        };
        set.insert(r.clone());
        let mut bare = r.clone();
        bare.namespace = None;
        assert!(contains_resolved(&set, &bare));
        bare.name = "b".into();
        assert!(!contains_resolved(&set, &bare));
    }
}
