//! Update-time checks: fields upstream makes immutable once an object exists.

use super::{Errs, FieldCause};
use serde_json::{Map, Value};

const POD_UPDATE_MSG: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

const STS_UPDATE_MSG: &str = "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden";

fn get<'a>(v: &'a Value, p: &str) -> &'a Value {
    v.pointer(p).unwrap_or(&Value::Null)
}

fn immutable(new: &Value, old: &Value, pointer: &str, field: &str, errs: &mut Errs) {
    let (n, o) = (get(new, pointer), get(old, pointer));
    if n != o {
        errs.push(FieldCause::invalid(field, n, "field is immutable"));
    }
}

pub(crate) fn validate_update(group: &str, kind: &str, new: &Value, old: &Value, errs: &mut Errs) {
    match (group, kind) {
        ("", "Pod") => pod_update(new, old, errs),
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet") => {
            immutable(new, old, "/spec/selector", "spec.selector", errs);
        }
        ("apps", "StatefulSet") => {
            immutable(new, old, "/spec/selector", "spec.selector", errs);
            let strip = |v: &Value| -> Map<String, Value> {
                let mut m = v
                    .get("spec")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                for k in [
                    "replicas",
                    "ordinals",
                    "template",
                    "updateStrategy",
                    "revisionHistoryLimit",
                    "persistentVolumeClaimRetentionPolicy",
                    "minReadySeconds",
                    "selector",
                ] {
                    m.remove(k);
                }
                m
            };
            if strip(new) != strip(old) {
                errs.push(FieldCause::forbidden("spec", STS_UPDATE_MSG));
            }
        }
        ("batch", "Job") => {
            immutable(new, old, "/spec/selector", "spec.selector", errs);
            immutable(
                new,
                old,
                "/spec/completionMode",
                "spec.completionMode",
                errs,
            );
            let (nt, ot) = (get(new, "/spec/template"), get(old, "/spec/template"));
            if nt != ot {
                errs.push(FieldCause::invalid(
                    "spec.template",
                    nt,
                    "field is immutable",
                ));
            }
        }
        ("", "Service") => {
            let (n, o) = (get(new, "/spec/clusterIP"), get(old, "/spec/clusterIP"));
            let old_set = o.as_str().is_some_and(|s| !s.is_empty());
            let to_external = get(new, "/spec/type").as_str() == Some("ExternalName");
            if old_set && n != o && !to_external {
                errs.push(FieldCause::invalid(
                    "spec.clusterIP",
                    n,
                    "field is immutable",
                ));
            }
        }
        ("", "ConfigMap" | "Secret") => {
            if old.get("immutable").and_then(Value::as_bool) == Some(true) {
                if new.get("immutable") != old.get("immutable") {
                    errs.push(FieldCause::forbidden(
                        "immutable",
                        "field is immutable when `immutable` is set",
                    ));
                }
                for f in ["data", "binaryData"] {
                    if new.get(f) != old.get(f) {
                        errs.push(FieldCause::forbidden(
                            f,
                            "field is immutable when `immutable` is set",
                        ));
                    }
                }
            }
            if kind == "Secret" {
                let t = |v: &Value| {
                    v.get("type")
                        .and_then(Value::as_str)
                        .unwrap_or("Opaque")
                        .to_string()
                };
                if t(new) != t(old) {
                    errs.push(FieldCause::invalid(
                        "type",
                        &Value::String(t(new)),
                        "field is immutable",
                    ));
                }
            }
        }
        ("", "PersistentVolumeClaim") => {
            let strip = |v: &Value| -> Map<String, Value> {
                let mut m = v
                    .get("spec")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                m.remove("resources");
                m.remove("volumeAttributesClassName");
                // Binding fills these in once.
                if get(v, "/spec/volumeName")
                    .as_str()
                    .is_some_and(|s| !s.is_empty())
                {
                    m.remove("volumeName");
                }
                m
            };
            if strip(new) != strip(old) {
                errs.push(FieldCause::forbidden(
                    "spec",
                    "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
                ));
            }
        }
        _ => {}
    }
}

/// Upstream `ValidatePodUpdate`: copy the mutable fields of the new spec onto the old and
/// require the rest to be equal.
fn pod_update(new: &Value, old: &Value, errs: &mut Errs) {
    let (Some(ns), Some(os)) = (
        new.get("spec").and_then(Value::as_object),
        old.get("spec").and_then(Value::as_object),
    ) else {
        return;
    };
    let mut patched = os.clone();
    for list in ["containers", "initContainers"] {
        let new_images: Vec<Value> = ns
            .get(list)
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .map(|c| c.get("image").cloned().unwrap_or(Value::Null))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(Value::Array(cs)) = patched.get_mut(list) {
            if cs.len() == new_images.len() {
                for (c, img) in cs.iter_mut().zip(new_images) {
                    if let Value::Object(c) = c {
                        if !img.as_str().unwrap_or_default().is_empty() {
                            c.insert("image".into(), img);
                        }
                    }
                }
            }
        }
    }
    for k in [
        "activeDeadlineSeconds",
        "terminationGracePeriodSeconds",
        "schedulingGates",
    ] {
        match ns.get(k) {
            Some(v) => {
                patched.insert(k.into(), v.clone());
            }
            None => {
                patched.remove(k);
            }
        }
    }
    // Tolerations may only be added.
    let old_tol = os
        .get("tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let new_tol = ns
        .get("tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if old_tol.iter().all(|t| new_tol.contains(t)) {
        match ns.get("tolerations") {
            Some(v) => {
                patched.insert("tolerations".into(), v.clone());
            }
            None => {
                patched.remove("tolerations");
            }
        }
    }
    // Deviation from upstream (which requires pods/binding): allow setting nodeName once,
    // so a scheduler that writes the pod directly still works.
    if os
        .get("nodeName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .is_empty()
    {
        match ns.get("nodeName") {
            Some(v) => {
                patched.insert("nodeName".into(), v.clone());
            }
            None => {
                patched.remove("nodeName");
            }
        }
    }
    if &patched != ns {
        let changed: Vec<&String> = ns
            .keys()
            .chain(patched.keys())
            .filter(|k| ns.get(*k) != patched.get(*k))
            .collect();
        let mut changed: Vec<String> = changed.into_iter().map(|k| format!("spec.{k}")).collect();
        changed.sort();
        changed.dedup();
        errs.push(FieldCause::forbidden(
            "spec",
            &format!("{POD_UPDATE_MSG}\n  changed: {}", changed.join(", ")),
        ));
    }
}
