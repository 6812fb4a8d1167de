//! Serving the OpenAPI documents: builds them with [`super::openapi`] from the registry's
//! kinds (custom resources with their CRD schemas) and caches each per registry generation,
//! because generating them is expensive.

use super::openapi::{self, CustomSchema, KindRef};
use super::registry::Registry;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;

/// A serialized document shared between requests.
type Doc = std::sync::Arc<Vec<u8>>;

/// Cached documents, keyed by (registry generation, document name).
#[derive(Default)]
pub struct OpenApiCache {
    docs: Mutex<HashMap<(u64, String), Option<Doc>>>,
}

fn kinds(reg: &Registry) -> (Vec<KindRef>, Vec<CustomSchema>) {
    let mut refs = Vec::new();
    let mut custom = Vec::new();
    for k in reg.all() {
        if k.create_only {
            continue;
        }
        let r = KindRef {
            group: k.group.clone(),
            version: k.version.clone(),
            kind: k.kind.clone(),
            plural: k.plural.clone(),
            namespaced: k.namespaced,
            subresources: k.subresources.clone(),
        };
        if let Some(crd) = &k.crd {
            custom.push(openapi::crd_kind_schema(&r, crd.schema.as_ref()));
        }
        refs.push(r);
    }
    (refs, custom)
}

impl OpenApiCache {
    /// The serialized document `name` (`v2`, `v2pb`, `v3`, `v3/<gv path>`), or `None` when no
    /// such group-version is served.
    pub fn get(&self, reg: &Registry, name: &str) -> Option<std::sync::Arc<Vec<u8>>> {
        let key = (reg.generation(), name.to_string());
        if let Some(hit) = self
            .docs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return hit.clone();
        }
        let (refs, custom) = kinds(reg);
        let doc: Option<Vec<u8>> = match name {
            "v2" => Some(
                openapi::v2_document_with_custom(&refs, &custom)
                    .to_string()
                    .into_bytes(),
            ),
            "v2pb" => Some(openapi::v2_protobuf(&refs)),
            "v3" => Some(
                openapi::v3_index_with_custom(&refs, &custom)
                    .to_string()
                    .into_bytes(),
            ),
            other => {
                let gv = other.strip_prefix("v3/").unwrap_or(other);
                let (group, version) = match gv.split('/').collect::<Vec<_>>().as_slice() {
                    ["api", v] => (String::new(), v.to_string()),
                    ["apis", g, v] => (g.to_string(), v.to_string()),
                    _ => return None,
                };
                openapi::v3_group_version_with_custom(&refs, &custom, &group, &version)
                    .map(|d: Value| d.to_string().into_bytes())
            }
        };
        let doc = doc.map(std::sync::Arc::new);
        let mut docs = self.docs.lock().unwrap_or_else(|p| p.into_inner());
        docs.retain(|(g, _), _| *g == key.0);
        docs.insert(key, doc.clone());
        doc
    }
}
