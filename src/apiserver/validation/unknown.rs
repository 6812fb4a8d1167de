//! Unknown-field detection for `fieldValidation=Strict`/`Warn`: walks an object against
//! the kind's schema (k8s-openapi's, via [`crate::apiserver::openapi::builtin_schema`], or
//! a CRD's `openAPIV3Schema`) and lists paths the schema does not declare, formatted as
//! upstream's strict decoder does (`spec.containers[0].foo`).

use crate::apiserver::openapi::builtin_schema;
use serde_json::{Map, Value};

/// Paths in `obj` that the built-in kind's schema does not know; empty for unknown kinds.
/// The handler renders each as `unknown field "<path>"`.
pub fn unknown_fields(group: &str, version: &str, kind: &str, obj: &Value) -> Vec<String> {
    let Some((name, defs)) = builtin_schema(group, version, kind) else {
        return Vec::new();
    };
    let Some(schema) = defs.get(&name) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    walk(obj, schema, defs, "", &mut out, 0);
    out
}

/// Paths in `obj` not declared by a self-contained structural schema (a CRD version's
/// `openAPIV3Schema`); `apiVersion`, `kind` and `metadata` are always allowed at the root.
pub fn unknown_fields_with_schema(schema: &Value, obj: &Value) -> Vec<String> {
    let mut root = schema.clone();
    if let Some(Value::Object(props)) = root.get_mut("properties") {
        for k in ["apiVersion", "kind", "metadata"] {
            props.entry(k).or_insert_with(
                || serde_json::json!({"x-kubernetes-preserve-unknown-fields": true}),
            );
        }
    }
    let mut out = Vec::new();
    walk(obj, &root, &Map::new(), "", &mut out, 0);
    out
}

/// Follows `$ref` and single-element `allOf` wrappers.
fn resolve<'a>(mut schema: &'a Value, defs: &'a Map<String, Value>) -> &'a Value {
    for _ in 0..8 {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            match r.rsplit('/').next().and_then(|n| defs.get(n)) {
                Some(s) => schema = s,
                None => return schema,
            }
        } else if schema.get("properties").is_none() {
            match schema.get("allOf").and_then(Value::as_array) {
                Some(all) if all.len() == 1 => schema = &all[0],
                _ => return schema,
            }
        } else {
            return schema;
        }
    }
    schema
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(
    obj: &Value,
    schema: &Value,
    defs: &Map<String, Value>,
    path: &str,
    out: &mut Vec<String>,
    depth: usize,
) {
    // Schemas are finite but objects can nest deeply; stop rather than risk the stack.
    if depth > 64 {
        return;
    }
    let schema = resolve(schema, defs);
    if schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
        && schema.get("properties").is_none()
    {
        return;
    }
    match obj {
        Value::Object(m) => {
            if let Some(Value::Object(props)) = schema.get("properties") {
                let preserve = schema
                    .get("x-kubernetes-preserve-unknown-fields")
                    .and_then(Value::as_bool)
                    == Some(true);
                for (k, v) in m {
                    match props.get(k) {
                        Some(sub) => walk(v, sub, defs, &join(path, k), out, depth + 1),
                        None if preserve => {}
                        None => out.push(join(path, k)),
                    }
                }
            } else if let Some(addl) = schema.get("additionalProperties").filter(|a| a.is_object())
            {
                for (k, v) in m {
                    walk(v, addl, defs, &join(path, k), out, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    walk(
                        item,
                        item_schema,
                        defs,
                        &format!("{path}[{i}]"),
                        out,
                        depth + 1,
                    );
                }
            }
        }
        _ => {}
    }
}
