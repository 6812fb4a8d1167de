//! OpenAPI documents served at `/openapi/v2` (swagger 2.0, JSON) and `/openapi/v3`
//! (index + one OpenAPI 3.0 document per group-version), generated from k8s-openapi's
//! `schemars` schemas; no upstream spec files are vendored. CRD kinds contribute their
//! `openAPIV3Schema` through [`crd_kind_schema`].
//!
//! Owns: pure document construction. The handler serves them (and should cache them per
//! set of kinds); kubectl reads v3 first, so v2 matters only to old clients.

mod paths;
mod schemas;
mod v2pb;

pub use v2pb::{V2_PROTOBUF_CONTENT_TYPE, v2_protobuf};

use paths::{Flavor, add_kind_paths};
use schemas::{DELETE_OPTIONS, PATCH, STATUS, WATCH_EVENT, catalog, closure, gvk, to_v2_refs};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// A served kind, as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindRef {
    /// API group, `""` for core.
    pub group: String,
    /// Version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Resource name, e.g. `deployments`.
    pub plural: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Subresources served, e.g. `status`, `scale`, `log`.
    pub subresources: Vec<String>,
}

/// A custom kind's schema, from a CRD version's `schema.openAPIV3Schema`.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomSchema {
    /// The kind.
    pub kind: KindRef,
    /// Definition name, upstream style (`com.example.stable.v1.CronTab`).
    pub name: String,
    /// The schema with `x-kubernetes-group-version-kind` and standard fields added.
    pub schema: Value,
}

/// Builds the definition of a CRD version's kind from its `openAPIV3Schema` (or a schema
/// that preserves unknown fields when the CRD has none).
pub fn crd_kind_schema(kind: &KindRef, open_api_v3_schema: Option<&Value>) -> CustomSchema {
    let reversed: Vec<&str> = kind.group.split('.').rev().collect();
    let name = format!("{}.{}.{}", reversed.join("."), kind.version, kind.kind);
    let mut schema = match open_api_v3_schema {
        Some(Value::Object(m)) => Value::Object(m.clone()),
        _ => json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
    };
    if let Value::Object(m) = &mut schema {
        m.entry("type").or_insert_with(|| json!("object"));
        let props = m
            .entry("properties")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(p) = props {
            p.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}));
            p.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}));
            p.insert("metadata".into(), json!({"allOf": [schemas::schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")], "description": "Standard object's metadata."}));
        }
        m.insert(
            "x-kubernetes-group-version-kind".into(),
            json!([gvk(&kind.group, &kind.version, &kind.kind)]),
        );
    }
    CustomSchema {
        kind: kind.clone(),
        name,
        schema,
    }
}

/// Definitions (name → schema) and paths for `kinds`, in v3 form.
fn build(
    kinds: &[KindRef],
    custom: &[CustomSchema],
    flavor: Flavor,
) -> (Map<String, Value>, Map<String, Value>) {
    let cat = catalog();
    let mut extra: Map<String, Value> = Map::new();
    let mut roots: Vec<String> = vec![
        STATUS.into(),
        DELETE_OPTIONS.into(),
        PATCH.into(),
        WATCH_EVENT.into(),
    ];
    let mut paths = Map::new();
    for k in kinds {
        let (name, builtin) = if let Some(b) = cat.find(&k.group, &k.version, &k.kind) {
            (b.definition.clone(), true)
        } else {
            let cs = custom
                .iter()
                .find(|c| {
                    c.kind.group == k.group && c.kind.version == k.version && c.kind.kind == k.kind
                })
                .cloned()
                .unwrap_or_else(|| crd_kind_schema(k, None));
            extra.insert(cs.name.clone(), cs.schema);
            extra.insert(
                format!("{}List", cs.name),
                json!({
                    "type": "object",
                    "required": ["items"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "items": {"type": "array", "items": schemas::schema_ref(&cs.name)},
                        "metadata": {"allOf": [schemas::schema_ref(schemas::LIST_META)]},
                    },
                    "x-kubernetes-group-version-kind": [gvk(&k.group, &k.version, &format!("{}List", k.kind))],
                }),
            );
            (cs.name, false)
        };
        roots.push(format!("{name}List"));
        roots.push(name.clone());
        if k.subresources.iter().any(|s| s == "scale") {
            roots.push("io.k8s.api.autoscaling.v1.Scale".into());
        }
        add_kind_paths(&mut paths, k, &name, builtin, flavor);
    }
    let defs: Map<String, Value> = closure(
        |name| extra.get(name).or_else(|| cat.definitions.get(name)),
        roots,
    )
    .into_iter()
    .collect();
    (defs, paths)
}

const INFO_VERSION: &str = "v1.33.0";

/// The swagger 2.0 document for `kinds` (served as JSON; kubectl asks for protobuf here and
/// falls back to nothing, see the module report).
pub fn v2_document(kinds: &[KindRef]) -> Value {
    v2_document_with_custom(kinds, &[])
}

/// [`v2_document`] including CRD schemas.
pub fn v2_document_with_custom(kinds: &[KindRef], custom: &[CustomSchema]) -> Value {
    let (defs, paths) = build(kinds, custom, Flavor::V2);
    let mut doc = json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": INFO_VERSION},
        "paths": paths,
        "definitions": defs,
        "securityDefinitions": {"BearerToken": {"description": "Bearer Token authentication", "type": "apiKey", "name": "authorization", "in": "header"}},
        "security": [{"BearerToken": []}],
    });
    to_v2_refs(&mut doc);
    doc
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The `/openapi/v3` index: one entry per group-version with a content hash in the URL
/// (clients cache documents by URL).
pub fn v3_index(kinds: &[KindRef]) -> Value {
    v3_index_with_custom(kinds, &[])
}

/// [`v3_index`] including CRD schemas (their content changes the hash).
pub fn v3_index_with_custom(kinds: &[KindRef], custom: &[CustomSchema]) -> Value {
    let mut gvs: Vec<(&str, &str)> = kinds
        .iter()
        .map(|k| (k.group.as_str(), k.version.as_str()))
        .collect();
    gvs.sort_unstable();
    gvs.dedup();
    let mut paths = Map::new();
    for (g, v) in gvs {
        // The built-in schemas are fixed per binary, so hashing the kinds and custom
        // schemas of the group-version identifies the document without rendering it.
        let mut h = Sha256::new();
        h.update(INFO_VERSION.as_bytes());
        for k in kinds.iter().filter(|k| k.group == g && k.version == v) {
            h.update(format!("{k:?}").as_bytes());
        }
        for c in custom
            .iter()
            .filter(|c| c.kind.group == g && c.kind.version == v)
        {
            h.update(c.schema.to_string().as_bytes());
        }
        let hash = hex::encode_upper(h.finalize());
        let path = gv_path(g, v);
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}")}),
        );
    }
    json!({"paths": paths})
}

/// The OpenAPI 3.0 document of one group-version, `None` when no kind is served there.
pub fn v3_group_version(kinds: &[KindRef], group: &str, version: &str) -> Option<Value> {
    v3_group_version_with_custom(kinds, &[], group, version)
}

/// [`v3_group_version`] including CRD schemas.
pub fn v3_group_version_with_custom(
    kinds: &[KindRef],
    custom: &[CustomSchema],
    group: &str,
    version: &str,
) -> Option<Value> {
    let selected: Vec<KindRef> = kinds
        .iter()
        .filter(|k| k.group == group && k.version == version)
        .cloned()
        .collect();
    if selected.is_empty() {
        return None;
    }
    let (defs, paths) = build(&selected, custom, Flavor::V3);
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": INFO_VERSION},
        "paths": paths,
        "components": {
            "schemas": defs,
            "securitySchemes": {"BearerToken": {"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header"}},
        },
    }))
}

/// The generated definition name of a built-in kind and the catalog of all definitions (v3 form, refs to `#/components/schemas/`),
/// with every definition it references; used by strict field validation.
pub fn builtin_schema(
    group: &str,
    version: &str,
    kind: &str,
) -> Option<(String, &'static Map<String, Value>)> {
    let cat = catalog();
    cat.find(group, version, kind)
        .map(|b| (b.definition.clone(), &cat.definitions))
}

#[cfg(test)]
mod tests;
