//! Schema walks over request objects: unknown fields (for `fieldValidation`), typed decoding
//! of built-in kinds (wrong types are a 400, as upstream's JSON decoder makes them), and the
//! structural checks of a CRD's `openAPIV3Schema` (types, required, enum).
//!
//! Built-in schemas come from `k8s-openapi`'s schemars implementations, generated once per kind.

use super::status::Cause;
use k8s_openapi::api;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

macro_rules! builtin_types {
    ($m:ident, $($g:literal, $v:literal, $k:literal => $t:ty;)*) => {
        fn $m(group: &str, version: &str, kind: &str, obj: Option<&Value>) -> Option<Result<Value, String>> {
            match (group, version, kind) {
                $(($g, $v, $k) => Some(match obj {
                    None => Ok(schemars::SchemaGenerator::default().into_root_schema_for::<$t>().to_value()),
                    // Deserialise from the borrowed value: no copy of the request object.
                    Some(o) => <$t as serde::Deserialize>::deserialize(o).map(|_| Value::Null).map_err(|e| e.to_string()),
                }),)*
                _ => None,
            }
        }
    };
}

builtin_types! {
    builtin,
    "", "v1", "Namespace" => api::core::v1::Namespace;
    "", "v1", "Node" => api::core::v1::Node;
    "", "v1", "Pod" => api::core::v1::Pod;
    "", "v1", "Service" => api::core::v1::Service;
    "", "v1", "Endpoints" => api::core::v1::Endpoints;
    "", "v1", "ConfigMap" => api::core::v1::ConfigMap;
    "", "v1", "Secret" => api::core::v1::Secret;
    "", "v1", "ServiceAccount" => api::core::v1::ServiceAccount;
    "", "v1", "Event" => api::core::v1::Event;
    "", "v1", "PersistentVolume" => api::core::v1::PersistentVolume;
    "", "v1", "PersistentVolumeClaim" => api::core::v1::PersistentVolumeClaim;
    "", "v1", "ResourceQuota" => api::core::v1::ResourceQuota;
    "", "v1", "LimitRange" => api::core::v1::LimitRange;
    "", "v1", "ReplicationController" => api::core::v1::ReplicationController;
    "apps", "v1", "Deployment" => api::apps::v1::Deployment;
    "apps", "v1", "ReplicaSet" => api::apps::v1::ReplicaSet;
    "apps", "v1", "StatefulSet" => api::apps::v1::StatefulSet;
    "apps", "v1", "DaemonSet" => api::apps::v1::DaemonSet;
    "apps", "v1", "ControllerRevision" => api::apps::v1::ControllerRevision;
    "batch", "v1", "Job" => api::batch::v1::Job;
    "batch", "v1", "CronJob" => api::batch::v1::CronJob;
    "coordination.k8s.io", "v1", "Lease" => api::coordination::v1::Lease;
    "discovery.k8s.io", "v1", "EndpointSlice" => api::discovery::v1::EndpointSlice;
    "events.k8s.io", "v1", "Event" => api::events::v1::Event;
    "rbac.authorization.k8s.io", "v1", "Role" => api::rbac::v1::Role;
    "rbac.authorization.k8s.io", "v1", "RoleBinding" => api::rbac::v1::RoleBinding;
    "rbac.authorization.k8s.io", "v1", "ClusterRole" => api::rbac::v1::ClusterRole;
    "rbac.authorization.k8s.io", "v1", "ClusterRoleBinding" => api::rbac::v1::ClusterRoleBinding;
    "apiextensions.k8s.io", "v1", "CustomResourceDefinition" => k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    "storage.k8s.io", "v1", "StorageClass" => api::storage::v1::StorageClass;
    "networking.k8s.io", "v1", "Ingress" => api::networking::v1::Ingress;
    "networking.k8s.io", "v1", "IngressClass" => api::networking::v1::IngressClass;
    "networking.k8s.io", "v1", "NetworkPolicy" => api::networking::v1::NetworkPolicy;
    "policy", "v1", "PodDisruptionBudget" => api::policy::v1::PodDisruptionBudget;
    "autoscaling", "v2", "HorizontalPodAutoscaler" => api::autoscaling::v2::HorizontalPodAutoscaler;
    "autoscaling", "v1", "HorizontalPodAutoscaler" => api::autoscaling::v1::HorizontalPodAutoscaler;
    "autoscaling", "v1", "Scale" => api::autoscaling::v1::Scale;
    "scheduling.k8s.io", "v1", "PriorityClass" => api::scheduling::v1::PriorityClass;
}

type SchemaCache = Mutex<HashMap<(String, String, String), Option<Arc<Value>>>>;

/// A kind's generated schema, shared: the Pod schema with its `$defs` is large, and copying it
/// on every request dominated the cost of a create.
fn cached_schema(group: &str, version: &str, kind: &str) -> Option<Arc<Value>> {
    static CACHE: OnceLock<SchemaCache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (group.to_string(), version.to_string(), kind.to_string());
    if let Some(v) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return v.clone();
    }
    let schema = builtin(group, version, kind, None)
        .and_then(Result::ok)
        .map(Arc::new);
    cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, schema.clone());
    schema
}

/// Decode a built-in object into its typed form; `Err` carries the decoder's message.
pub fn check_typed(group: &str, version: &str, kind: &str, obj: &Value) -> Result<(), String> {
    match builtin(group, version, kind, Some(obj)) {
        Some(Err(e)) => Err(e),
        _ => Ok(()),
    }
}

fn resolve<'a>(schema: &'a Value, defs: &'a Value) -> &'a Value {
    let mut cur = schema;
    for _ in 0..16 {
        match cur.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.rsplit('/').next().unwrap_or("");
                match defs.get(name) {
                    Some(d) => cur = d,
                    None => return cur,
                }
            }
            None => {
                // schemars may wrap a ref in allOf for descriptions.
                match cur.get("allOf").and_then(Value::as_array) {
                    Some(a) if a.len() == 1 => cur = &a[0],
                    _ => return cur,
                }
            }
        }
    }
    cur
}

/// Removes the fields of `v` that `schema` does not declare and records their paths, as
/// upstream's decoder drops unknown fields of built-in kinds and prunes custom resources.
fn prune_unknown(
    schema: &Value,
    defs: &Value,
    v: &mut Value,
    path: &str,
    depth: usize,
    out: &mut Vec<String>,
) {
    if depth > 64 {
        return;
    }
    let schema = resolve(schema, defs);
    if schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return;
    }
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match v {
        Value::Object(m) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            if props.is_none() && additional.is_none() {
                return; // free-form (RawExtension, IntOrString, Quantity…)
            }
            let mut unknown = Vec::new();
            for (k, child) in m.iter_mut() {
                match (props.and_then(|p| p.get(k)), additional) {
                    (Some(s), _) => prune_unknown(s, defs, child, &join(k), depth + 1, out),
                    (None, Some(Value::Bool(true))) => {}
                    (None, Some(a @ Value::Object(_))) => {
                        prune_unknown(a, defs, child, &join(k), depth + 1, out)
                    }
                    _ => unknown.push(k.clone()),
                }
            }
            for k in unknown {
                m.remove(&k);
                out.push(join(&k));
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, child) in items.iter_mut().enumerate() {
                    prune_unknown(
                        item_schema,
                        defs,
                        child,
                        &format!("{path}[{i}]"),
                        depth + 1,
                        out,
                    );
                }
            }
        }
        _ => {}
    }
}

/// Drops the unknown fields of a built-in object; returns their paths.
pub fn prune_builtin(group: &str, version: &str, kind: &str, obj: &mut Value) -> Vec<String> {
    let Some(schema) = cached_schema(group, version, kind) else {
        return vec![];
    };
    let defs = schema.get("$defs").unwrap_or(&Value::Null);
    let mut out = Vec::new();
    prune_unknown(&schema, defs, obj, "", 0, &mut out);
    out
}

/// Prunes a custom resource against its structural schema (`apiVersion`, `kind`, `metadata`
/// are implicit); returns the paths removed.
pub fn prune_crd(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some(m) = obj.as_object_mut() else {
        return out;
    };
    let props = schema.get("properties").and_then(Value::as_object);
    let preserve = schema.get("x-kubernetes-preserve-unknown-fields").is_some();
    let mut unknown = Vec::new();
    for (k, child) in m.iter_mut() {
        if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        match props.and_then(|p| p.get(k)) {
            Some(s) => prune_unknown(s, &Value::Null, child, k, 1, &mut out),
            None if preserve => {}
            None => unknown.push(k.clone()),
        }
    }
    for k in unknown {
        m.remove(&k);
        out.push(k);
    }
    out
}

fn type_ok(ty: &str, v: &Value, schema: &Value) -> bool {
    if schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return v.is_string() || v.is_i64() || v.is_u64();
    }
    match ty {
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        _ => true,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::Bool(_) => "boolean",
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::Null => "null",
    }
}

fn walk_schema(schema: &Value, v: &Value, path: &str, depth: usize, out: &mut Vec<Cause>) {
    if depth > 64 {
        return;
    }
    if v.is_null() && schema.get("nullable").and_then(Value::as_bool) == Some(true) {
        return;
    }
    if let Some(ty) = schema.get("type").and_then(Value::as_str) {
        if !type_ok(ty, v, schema) {
            out.push(Cause {
                reason: "FieldValueTypeInvalid".into(),
                message: format!(
                    "Invalid value: \"{}\": {path} in body must be of type {ty}: \"{}\"",
                    type_name(v),
                    type_name(v)
                ),
                field: path.to_string(),
            });
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(v) {
            let list: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
            out.push(Cause {
                reason: "FieldValueNotSupported".into(),
                message: format!(
                    "Unsupported value: {v}: supported values: {}",
                    list.join(", ")
                ),
                field: path.to_string(),
            });
        }
    }
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    if let Value::Object(m) = v {
        for req in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(r) = req.as_str() {
                if !m.contains_key(r) {
                    out.push(Cause {
                        reason: "FieldValueRequired".into(),
                        message: "Required value".into(),
                        field: join(r),
                    });
                }
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, child) in m {
            if depth == 0 && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            if let Some(s) = props.and_then(|p| p.get(k)) {
                walk_schema(s, child, &join(k), depth + 1, out);
            } else if let Some(a @ Value::Object(_)) = schema.get("additionalProperties") {
                walk_schema(a, child, &join(k), depth + 1, out);
            }
        }
    }
    if let (Value::Array(items), Some(s)) = (v, schema.get("items")) {
        for (i, child) in items.iter().enumerate() {
            walk_schema(s, child, &format!("{path}[{i}]"), depth + 1, out);
        }
    }
}

/// Type, required and enum checks of a custom resource against its `openAPIV3Schema`.
pub fn validate_schema(schema: &Value, obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    walk_schema(schema, obj, "", 0, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_builtin_fields_are_found_at_any_depth() {
        let mut cm = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","bogus":1},"data":{"k":"v"},"extra":true});
        let mut u = prune_builtin("", "v1", "ConfigMap", &mut cm);
        u.sort();
        assert_eq!(u, vec!["extra", "metadata.bogus"]);
        assert_eq!(
            cm,
            json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"data":{"k":"v"}})
        );
        let mut pod = json!({"spec":{"containers":[{"name":"c","image":"i","imagee":"x"}]}});
        assert_eq!(
            prune_builtin("", "v1", "Pod", &mut pod),
            vec!["spec.containers[0].imagee"]
        );
        assert_eq!(
            pod,
            json!({"spec":{"containers":[{"name":"c","image":"i"}]}})
        );
        // Labels are a free-form map; nothing under them is unknown.
        let mut d = json!({"metadata":{"labels":{"any":"ok"}},"spec":{"foo":1}});
        assert_eq!(
            prune_builtin("apps", "v1", "Deployment", &mut d),
            vec!["spec.foo"]
        );
        assert_eq!(d["metadata"]["labels"]["any"], "ok");
    }

    #[test]
    fn typed_decoding_rejects_wrong_types() {
        assert!(
            check_typed(
                "apps",
                "v1",
                "Deployment",
                &json!({"spec":{"replicas":"three"}})
            )
            .is_err()
        );
        assert!(check_typed("", "v1", "ConfigMap", &json!({"data":{"a":"b"}})).is_ok());
    }

    #[test]
    fn crd_schema_checks_types_and_required() {
        let schema = json!({"type":"object","properties":{"spec":{"type":"object","required":["size"],
            "properties":{"size":{"type":"integer"},"color":{"type":"string","enum":["red","blue"]}}}}});
        let causes = validate_schema(&schema, &json!({"spec":{"color":"green"}}));
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert!(fields.contains(&"spec.size"));
        assert!(fields.contains(&"spec.color"));
        assert!(
            validate_schema(&schema, &json!({"spec":{"size":"x"}}))[0]
                .message
                .contains("must be of type integer")
        );
        let mut cr = json!({"metadata":{"name":"w"},"spec":{"size":1,"zzz":1},"top":1});
        assert_eq!(prune_crd(&schema, &mut cr).len(), 2);
        assert_eq!(cr, json!({"metadata":{"name":"w"},"spec":{"size":1}}));
        let preserving = json!({"type":"object","properties":{
            "status":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}});
        let mut cr = json!({"status":{"anything":1}});
        assert!(prune_crd(&preserving, &mut cr).is_empty());
        assert_eq!(cr["status"]["anything"], 1);
    }
}
