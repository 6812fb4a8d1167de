//! The documents carry what kubectl looks for: GVK extensions on definitions and
//! operations, `fieldValidation` on PATCH, resolvable `$ref`s, descriptions for explain.

use super::*;

fn deploy() -> KindRef {
    KindRef {
        group: "apps".into(),
        version: "v1".into(),
        kind: "Deployment".into(),
        plural: "deployments".into(),
        namespaced: true,
        subresources: vec!["status".into(), "scale".into()],
    }
}

fn pod() -> KindRef {
    KindRef {
        group: "".into(),
        version: "v1".into(),
        kind: "Pod".into(),
        plural: "pods".into(),
        namespaced: true,
        subresources: vec!["status".into(), "log".into()],
    }
}

fn widget() -> KindRef {
    KindRef {
        group: "stable.example.com".into(),
        version: "v1".into(),
        kind: "Widget".into(),
        plural: "widgets".into(),
        namespaced: true,
        subresources: vec![],
    }
}

/// Every `$ref` in `doc` names an entry of `defs` under `prefix`.
fn assert_refs_resolve(doc: &Value, defs: &Map<String, Value>, prefix: &str) {
    match doc {
        Value::Object(m) => {
            for (k, v) in m {
                if k == "$ref" {
                    let r = v.as_str().unwrap();
                    let name = r
                        .strip_prefix(prefix)
                        .unwrap_or_else(|| panic!("bad ref {r}"));
                    assert!(defs.contains_key(name), "unresolved ref {r}");
                } else {
                    assert_refs_resolve(v, defs, prefix);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| assert_refs_resolve(v, defs, prefix)),
        _ => {}
    }
}

#[test]
fn v3_apps_document_has_deployment_with_gvk_and_patch_field_validation() {
    let doc = v3_group_version(&[deploy(), pod()], "apps", "v1").unwrap();
    assert_eq!(doc["openapi"], "3.0.0");
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let d = &schemas["io.k8s.api.apps.v1.Deployment"];
    assert_eq!(
        d["x-kubernetes-group-version-kind"],
        json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
    );
    assert!(d["description"].as_str().unwrap().contains("Deployment"));
    // kubectl explain deployment.spec.strategy walks these.
    assert!(schemas.contains_key("io.k8s.api.apps.v1.DeploymentStrategy"));
    assert!(schemas.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
    let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(
        patch["x-kubernetes-group-version-kind"],
        json!({"group": "apps", "kind": "Deployment", "version": "v1"})
    );
    let params: Vec<&str> = patch["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["in"] == "query")
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(params.contains(&"fieldValidation"), "{params:?}");
    assert!(
        patch["requestBody"]["content"]
            .get("application/strategic-merge-patch+json")
            .is_some()
    );
    assert!(
        doc["paths"]
            .get("/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale")
            .is_some()
    );
    assert!(doc["paths"].get("/apis/apps/v1/deployments").is_some());
    // Pods are core, not in the apps document.
    assert!(!schemas.contains_key("io.k8s.api.core.v1.Pod"));
    assert_refs_resolve(&doc, schemas, "#/components/schemas/");
}

#[test]
fn v3_field_description_wraps_refs_in_all_of() {
    let doc = v3_group_version(&[deploy()], "apps", "v1").unwrap();
    let strategy = &doc["components"]["schemas"]["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]
        ["strategy"];
    assert!(
        strategy["description"]
            .as_str()
            .unwrap()
            .contains("deployment strategy")
    );
    assert_eq!(
        strategy["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.api.apps.v1.DeploymentStrategy"
    );
}

#[test]
fn v3_index_lists_group_versions_with_hashes() {
    let idx = v3_index(&[deploy(), pod()]);
    let url = idx["paths"]["api/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap();
    assert!(url.starts_with("/openapi/v3/api/v1?hash="), "{url}");
    assert!(idx["paths"]["apis/apps/v1"]["serverRelativeURL"].is_string());
    assert!(v3_group_version(&[deploy()], "batch", "v1").is_none());
    let other = v3_index(&[deploy(), pod(), widget()]);
    assert_eq!(other["paths"]["api/v1"], idx["paths"]["api/v1"]);
}

#[test]
fn v2_document_uses_definitions_refs_and_upstream_names() {
    let doc = v2_document(&[deploy(), pod()]);
    assert_eq!(doc["swagger"], "2.0");
    let defs = doc["definitions"].as_object().unwrap();
    assert_eq!(
        defs["io.k8s.api.core.v1.Pod"]["x-kubernetes-group-version-kind"][0]["kind"],
        "Pod"
    );
    let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
    assert!(
        patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
    );
    assert_eq!(patch["parameters"][0]["in"], "body");
    assert_refs_resolve(&doc, defs, "#/definitions/");
}

#[test]
fn crd_schema_joins_its_group_version_document() {
    let open_api = json!({"type": "object", "properties": {"spec": {"type": "object",
        "description": "desired size", "properties": {"size": {"type": "integer"}}}}});
    let cs = crd_kind_schema(&widget(), Some(&open_api));
    assert_eq!(cs.name, "com.example.stable.v1.Widget");
    let doc = v3_group_version_with_custom(&[widget()], &[cs], "stable.example.com", "v1").unwrap();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let w = &schemas["com.example.stable.v1.Widget"];
    assert_eq!(
        w["properties"]["spec"]["properties"]["size"]["type"],
        "integer"
    );
    assert_eq!(
        w["x-kubernetes-group-version-kind"][0]["group"],
        "stable.example.com"
    );
    let patch =
        &doc["paths"]["/apis/stable.example.com/v1/namespaces/{namespace}/widgets/{name}"]["patch"];
    assert!(
        patch["requestBody"]["content"]
            .get("application/strategic-merge-patch+json")
            .is_none()
    );
    assert!(
        patch["requestBody"]["content"]
            .get("application/merge-patch+json")
            .is_some()
    );
    assert_refs_resolve(&doc, schemas, "#/components/schemas/");
}

#[test]
fn v3_schemas_carry_patch_metadata_for_client_side_apply() {
    let doc = v3_group_version(&[deploy()], "apps", "v1").unwrap();
    let s = &doc["components"]["schemas"];
    let containers = &s["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(
        s["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"]["x-kubernetes-patch-strategy"],
        "retainKeys"
    );
    assert_eq!(
        s["io.k8s.api.core.v1.Container"]["properties"]["ports"]["x-kubernetes-patch-merge-key"],
        "containerPort"
    );
}

#[test]
fn v2_protobuf_carries_patch_gvk_and_field_validation() {
    use prost::Message;
    let bytes = v2_protobuf(&[deploy(), widget()]);
    let doc = v2pb::Document::decode(bytes.as_slice()).unwrap();
    assert_eq!(doc.swagger, "2.0");
    let paths = doc.paths.unwrap().path;
    let item = paths
        .iter()
        .find(|p| p.name == "/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
        .unwrap();
    let patch = item.value.as_ref().unwrap().patch.as_ref().unwrap();
    let gvk = patch
        .vendor_extension
        .iter()
        .find(|e| e.name == "x-kubernetes-group-version-kind")
        .unwrap();
    let yaml: Value = serde_yaml::from_str(&gvk.value.as_ref().unwrap().yaml).unwrap();
    assert_eq!(
        yaml,
        json!({"group": "apps", "kind": "Deployment", "version": "v1"})
    );
    assert!(patch.parameters.iter().any(|p| {
        p.parameter
            .as_ref()
            .and_then(|p| p.non_body_parameter.as_ref())
            .and_then(|n| n.query_parameter_sub_schema.as_ref())
            .is_some_and(|q| q.name == "fieldValidation")
    }));
    assert!(paths.iter().any(|p| p.name.contains("/widgets/{name}")));
}
