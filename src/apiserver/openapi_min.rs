//! A minimal OpenAPI v3 document used until the full `openapi` module is available: one PATCH
//! operation per kind, tagged with its group/version/kind and listing the `fieldValidation`
//! query parameter, which is what kubectl needs to hand validation to the server.

use super::registry::{Registry, ResourceKind};
use serde_json::{Value, json};

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: the index of group-version documents.
pub fn v3_index(reg: &Registry) -> Value {
    let mut paths = serde_json::Map::new();
    for (group, versions) in reg.group_versions() {
        for v in versions {
            let p = gv_path(&group, &v);
            let url = format!("/openapi/v3/{p}?hash={}", hash_of(reg, &group, &v));
            paths.insert(p, json!({ "serverRelativeURL": url }));
        }
    }
    json!({ "paths": paths })
}

fn hash_of(reg: &Registry, group: &str, version: &str) -> String {
    use sha2::{Digest, Sha256};
    let doc = v3_group_version(reg, group, version).unwrap_or(Value::Null);
    let digest = Sha256::digest(doc.to_string().as_bytes());
    hex::encode(&digest[..16]).to_uppercase()
}

fn patch_op(k: &ResourceKind) -> Value {
    json!({
        "operationId": format!("patch{}", k.kind),
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": {"group": k.group, "version": k.version, "kind": k.kind},
        "parameters": [
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}}
        ],
        "responses": {"200": {"description": "OK"}}
    })
}

/// `/openapi/v3/{api/v1 | apis/g/v}`.
pub fn v3_group_version(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let kinds: Vec<_> = reg
        .all()
        .into_iter()
        .filter(|k| k.group == group && k.version == version)
        .collect();
    if kinds.is_empty() {
        return None;
    }
    let mut paths = serde_json::Map::new();
    for k in &kinds {
        let base = format!("/{}", gv_path(group, version));
        let p = if k.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", k.plural)
        } else {
            format!("{base}/{}/{{name}}", k.plural)
        };
        paths.insert(p, json!({ "patch": patch_op(k) }));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": {}}
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_operations_advertise_field_validation_per_kind() {
        let reg = Registry::new();
        let doc = v3_group_version(&reg, "apps", "v1").unwrap();
        let op = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert!(
            op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        let idx = v3_index(&reg);
        assert!(
            idx["paths"]["api/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with("/openapi/v3/api/v1?hash=")
        );
    }
}
