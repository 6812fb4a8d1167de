//! Per-kind spec checks: workload selectors and templates, jobs, cron jobs, services,
//! config maps and secrets.

use super::pod::pod_spec;
use super::{Errs, FieldCause, labels, names};
use serde_json::{Map, Value};
use std::collections::HashSet;

pub(crate) fn validate_kind(group: &str, kind: &str, obj: &Value, errs: &mut Errs) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    match (group, kind) {
        ("", "Pod") => pod_spec(spec, "spec", true, errs),
        ("", "PodTemplate") => {
            if let Some(t) = obj.get("template") {
                labels(
                    t.pointer("/metadata/labels"),
                    "template.metadata.labels",
                    errs,
                );
                pod_spec(
                    t.get("spec").unwrap_or(&Value::Null),
                    "template.spec",
                    false,
                    errs,
                );
            }
        }
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") => {
            let what = kind.to_lowercase();
            workload(spec, &what, errs);
            errs.one_of(
                spec.pointer("/template/spec").unwrap_or(&Value::Null),
                "restartPolicy",
                "spec.template.spec.restartPolicy",
                &["Always"],
            );
            if kind == "Deployment" {
                errs.one_of(
                    spec.get("strategy").unwrap_or(&Value::Null),
                    "type",
                    "spec.strategy.type",
                    &["Recreate", "RollingUpdate"],
                );
                if spec.pointer("/strategy/type").and_then(Value::as_str) == Some("Recreate")
                    && spec
                        .pointer("/strategy/rollingUpdate")
                        .is_some_and(|v| !v.is_null())
                {
                    errs.push(FieldCause::forbidden(
                        "spec.strategy.rollingUpdate",
                        "may not be specified when strategy `type` is 'Recreate'",
                    ));
                }
                errs.non_negative(spec, "revisionHistoryLimit", "spec.revisionHistoryLimit");
            }
            if kind == "StatefulSet" {
                errs.one_of(
                    spec,
                    "podManagementPolicy",
                    "spec.podManagementPolicy",
                    &["OrderedReady", "Parallel"],
                );
            }
        }
        ("batch", "Job") => {
            job_spec(spec, "spec", errs);
            generated_selector(obj, spec, errs);
        }
        ("batch", "CronJob") => {
            match spec.get("schedule").and_then(Value::as_str) {
                None | Some("") => errs.push(FieldCause::required("spec.schedule", "")),
                // The controller's own parser decides, so what validates also runs.
                Some(s) => {
                    if let Err(e) = crate::cron::Schedule::parse(s) {
                        errs.push(FieldCause::invalid(
                            "spec.schedule",
                            &Value::String(s.into()),
                            &e.to_string(),
                        ));
                    }
                }
            }
            errs.one_of(
                spec,
                "concurrencyPolicy",
                "spec.concurrencyPolicy",
                &["Allow", "Forbid", "Replace"],
            );
            if let Some(js) = spec.pointer("/jobTemplate/spec") {
                job_spec(js, "spec.jobTemplate.spec", errs);
            }
        }
        ("", "Service") => service(spec, errs),
        ("", "ConfigMap") => data_keys(obj, &["data", "binaryData"], errs),
        ("", "PersistentVolumeClaim") => pvc_spec(spec, "spec", errs),
        ("networking.k8s.io", "Ingress") => ingress(spec, errs),
        ("", "Secret") => {
            data_keys(obj, &["data", "stringData"], errs);
            let has = |k: &str| {
                ["data", "stringData"]
                    .iter()
                    .any(|d| obj.get(*d).and_then(|m| m.get(k)).is_some())
            };
            let required: &[&str] = match obj.get("type").and_then(Value::as_str) {
                Some("kubernetes.io/tls") => &["tls.crt", "tls.key"],
                Some("kubernetes.io/dockerconfigjson") => &[".dockerconfigjson"],
                Some("kubernetes.io/dockercfg") => &[".dockercfg"],
                Some("kubernetes.io/basic-auth") => &[],
                Some("kubernetes.io/ssh-auth") => &["ssh-privatekey"],
                _ => &[],
            };
            for k in required {
                if !has(k) {
                    errs.push(FieldCause::required(&format!("data[{k}]"), ""));
                }
            }
        }
        _ => {}
    }
}

fn selector_matches(sel: &Value, labels: &Map<String, Value>) -> bool {
    let ml_ok = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v)));
    let me_ok = sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .is_none_or(|exprs| {
            exprs.iter().all(|e| {
                let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
                let values: Vec<&Value> = e
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().collect())
                    .unwrap_or_default();
                let got = labels.get(key);
                match e.get("operator").and_then(Value::as_str) {
                    Some("In") => got.is_some_and(|g| values.contains(&g)),
                    Some("NotIn") => got.is_none_or(|g| !values.contains(&g)),
                    Some("Exists") => got.is_some(),
                    Some("DoesNotExist") => got.is_none(),
                    _ => false,
                }
            })
        });
    ml_ok && me_ok
}

fn selector_empty(sel: &Value) -> bool {
    let empty = |k: &str| {
        sel.get(k).is_none_or(|v| {
            v.is_null()
                || v.as_object().is_some_and(Map::is_empty)
                || v.as_array().is_some_and(Vec::is_empty)
        })
    };
    empty("matchLabels") && empty("matchExpressions")
}

/// Selector present, non-empty, matching the template labels; template spec valid.
fn workload(spec: &Value, what: &str, errs: &mut Errs) {
    errs.non_negative(spec, "replicas", "spec.replicas");
    let template_labels = spec
        .pointer("/template/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    match spec.get("selector").filter(|s| !s.is_null()) {
        None => errs.push(FieldCause::required("spec.selector", "")),
        Some(sel) if selector_empty(sel) => errs.push(FieldCause::invalid(
            "spec.selector",
            sel,
            &format!("empty selector is invalid for {what}"),
        )),
        Some(sel) => {
            if !selector_matches(sel, &template_labels) {
                errs.push(FieldCause::invalid(
                    "spec.template.metadata.labels",
                    &Value::Object(template_labels.clone()),
                    "`selector` does not match template `labels`",
                ));
            }
        }
    }
    labels(
        spec.pointer("/template/metadata/labels"),
        "spec.template.metadata.labels",
        errs,
    );
    let template = spec.pointer("/template/spec").unwrap_or(&Value::Null);
    pod_spec(
        &with_claim_volumes(spec, template),
        "spec.template.spec",
        false,
        errs,
    );
}

/// A StatefulSet's containers may mount its volumeClaimTemplates (the controller adds those
/// volumes to each pod), so validate the template as if they were volumes.
fn with_claim_volumes(spec: &Value, template: &Value) -> Value {
    let mut t = template.clone();
    let claims: Vec<String> = spec
        .get("volumeClaimTemplates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.pointer("/metadata/name").and_then(Value::as_str))
        .map(str::to_string)
        .collect();
    if claims.is_empty() {
        return t;
    }
    if let Some(o) = t.as_object_mut() {
        let vols = o
            .entry("volumes")
            .or_insert_with(|| Value::Array(Vec::new()));
        if !vols.is_array() {
            *vols = Value::Array(Vec::new());
        }
        if let Some(a) = vols.as_array_mut() {
            a.retain(|v| {
                !v.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| claims.iter().any(|c| c == n))
            });
            for c in claims {
                a.push(serde_json::json!({"name": c, "persistentVolumeClaim": {"claimName": c}}));
            }
        }
    }
    t
}

fn job_spec(spec: &Value, path: &str, errs: &mut Errs) {
    for k in [
        "parallelism",
        "completions",
        "backoffLimit",
        "activeDeadlineSeconds",
        "ttlSecondsAfterFinished",
    ] {
        errs.non_negative(spec, k, &format!("{path}.{k}"));
    }
    let tspec = spec.pointer("/template/spec").unwrap_or(&Value::Null);
    let rp = tspec.get("restartPolicy").and_then(Value::as_str);
    if !matches!(rp, Some("OnFailure" | "Never")) {
        errs.push(FieldCause::required(
            &format!("{path}.template.spec.restartPolicy"),
            "valid values: \"OnFailure\", \"Never\"",
        ));
    }
    errs.one_of(
        spec,
        "completionMode",
        &format!("{path}.completionMode"),
        &["NonIndexed", "Indexed"],
    );
    if let Some(sel) = spec.get("selector").filter(|s| !s.is_null()) {
        let template_labels = spec
            .pointer("/template/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if !selector_matches(sel, &template_labels) {
            errs.push(FieldCause::invalid(
                &format!("{path}.template.metadata.labels"),
                &Value::Object(template_labels),
                "`selector` does not match template `labels`",
            ));
        }
    }
    pod_spec(tspec, &format!("{path}.template.spec"), false, errs);
}

/// Upstream's `validateGeneratedSelector`: without `manualSelector: true` the template must
/// carry the job's own name/uid labels and the selector must select its uid.
fn generated_selector(obj: &Value, spec: &Value, errs: &mut Errs) {
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    let uid = obj.pointer("/metadata/uid").and_then(Value::as_str);
    let name = obj.pointer("/metadata/name").and_then(Value::as_str);
    let (Some(uid), Some(name)) = (uid, name) else {
        return;
    };
    let Some(labels) = spec.pointer("/template/metadata/labels") else {
        return;
    };
    for (key, want) in [
        ("controller-uid", uid),
        ("job-name", name),
        ("batch.kubernetes.io/controller-uid", uid),
        ("batch.kubernetes.io/job-name", name),
    ] {
        match labels.get(key).and_then(Value::as_str) {
            Some(v) if v == want => {}
            None => errs.push(FieldCause::required(
                &format!("spec.template.metadata.labels[{key}]"),
                &format!("must be '{want}'"),
            )),
            Some(_) => errs.push(FieldCause::invalid(
                &format!("spec.template.metadata.labels[{key}]"),
                labels,
                &format!("must be '{want}'"),
            )),
        }
    }
    let mut expected = Map::new();
    expected.insert(
        "batch.kubernetes.io/controller-uid".into(),
        Value::String(uid.into()),
    );
    let sel = spec.get("selector").unwrap_or(&Value::Null);
    if sel.is_null() || !selector_matches(sel, &expected) {
        errs.push(FieldCause::invalid(
            "spec.selector",
            sel,
            "`selector` not auto-generated",
        ));
    }
}

fn service(spec: &Value, errs: &mut Errs) {
    const TYPES: [&str; 4] = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
    errs.one_of(spec, "type", "spec.type", &TYPES);
    errs.one_of(
        spec,
        "sessionAffinity",
        "spec.sessionAffinity",
        &["ClientIP", "None"],
    );
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    let ports = spec
        .get("ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if ty == "ExternalName" {
        match spec.get("externalName").and_then(Value::as_str) {
            None | Some("") => errs.push(FieldCause::required("spec.externalName", "")),
            Some(n) => errs.syntax(
                "spec.externalName",
                n,
                names::dns1123_subdomain(n.trim_end_matches('.')),
            ),
        }
    } else if ports.is_empty() && !headless {
        errs.push(FieldCause::required("spec.ports", ""));
    }
    let mut port_names = HashSet::new();
    let mut port_keys = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let pp = format!("spec.ports[{i}]");
        let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
        if ports.len() > 1 && name.is_empty() {
            errs.push(FieldCause::required(&format!("{pp}.name"), ""));
        }
        if !name.is_empty() {
            errs.syntax(&format!("{pp}.name"), name, names::dns1123_label(name));
            if !port_names.insert(name.to_string()) {
                errs.push(FieldCause::duplicate(
                    &format!("{pp}.name"),
                    &Value::String(name.into()),
                ));
            }
        }
        let port = p.get("port").and_then(Value::as_i64);
        match port {
            Some(n) if (1..=65535).contains(&n) => {}
            Some(n) => errs.push(FieldCause::invalid(
                &format!("{pp}.port"),
                &Value::from(n),
                "must be between 1 and 65535, inclusive",
            )),
            None => errs.push(FieldCause::required(&format!("{pp}.port"), "")),
        }
        errs.one_of(
            p,
            "protocol",
            &format!("{pp}.protocol"),
            &["SCTP", "TCP", "UDP"],
        );
        let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
        if let Some(n) = port {
            if !port_keys.insert((n, proto.to_string())) {
                errs.push(FieldCause::duplicate(&pp, p));
            }
        }
        match p.get("targetPort") {
            Some(Value::Number(n)) => {
                let n = n.as_i64().unwrap_or(0);
                if !(1..=65535).contains(&n) {
                    errs.push(FieldCause::invalid(
                        &format!("{pp}.targetPort"),
                        &Value::from(n),
                        "must be between 1 and 65535, inclusive",
                    ));
                }
            }
            Some(Value::String(s)) => {
                errs.syntax(&format!("{pp}.targetPort"), s, names::port_name(s));
            }
            _ => {}
        }
        if let Some(np) = p.get("nodePort").and_then(Value::as_i64) {
            if np != 0 && ty != "NodePort" && ty != "LoadBalancer" {
                errs.push(FieldCause::forbidden(
                    &format!("{pp}.nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }
}

fn data_keys(obj: &Value, fields: &[&str], errs: &mut Errs) {
    let mut seen = HashSet::new();
    for f in fields {
        if let Some(Value::Object(m)) = obj.get(*f) {
            for k in m.keys() {
                let field = format!("{f}[{k}]");
                errs.syntax(&field, k, names::config_key(k));
                if !seen.insert(k.clone()) && *f != "stringData" {
                    errs.push(FieldCause::invalid(
                        &field,
                        &Value::String(k.clone()),
                        "duplicate of key present in data",
                    ));
                }
            }
        }
    }
}

const ACCESS_MODES: [&str; 4] = [
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

fn pvc_spec(spec: &Value, path: &str, errs: &mut Errs) {
    let modes = spec
        .get("accessModes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if modes.is_empty() {
        errs.push(FieldCause::required(
            &format!("{path}.accessModes"),
            "at least 1 access mode is required",
        ));
    }
    for m in &modes {
        if !m.as_str().is_some_and(|s| ACCESS_MODES.contains(&s)) {
            errs.push(FieldCause::not_supported(
                &format!("{path}.accessModes"),
                m,
                &ACCESS_MODES,
            ));
        }
    }
    if spec.pointer("/resources/requests/storage").is_none() && spec.get("dataSourceRef").is_none()
    {
        errs.push(FieldCause::required(
            &format!("{path}.resources[storage]"),
            "",
        ));
    }
    errs.one_of(
        spec,
        "volumeMode",
        &format!("{path}.volumeMode"),
        &["Block", "Filesystem"],
    );
}

fn ingress(spec: &Value, errs: &mut Errs) {
    let rules = spec
        .get("rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if rules.is_empty() && spec.get("defaultBackend").is_none_or(Value::is_null) {
        errs.push(FieldCause::invalid(
            "spec",
            &Value::String("[]".into()),
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    for (i, r) in rules.iter().enumerate() {
        if let Some(host) = r.get("host").and_then(Value::as_str) {
            let bare = host.strip_prefix("*.").unwrap_or(host);
            errs.syntax(
                &format!("spec.rules[{i}].host"),
                host,
                names::dns1123_subdomain(bare),
            );
        }
        let paths = r
            .pointer("/http/paths")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (j, p) in paths.iter().enumerate() {
            let pp = format!("spec.rules[{i}].http.paths[{j}]");
            match p.get("pathType").and_then(Value::as_str) {
                None => errs.push(FieldCause::required(
                    &format!("{pp}.pathType"),
                    "pathType must be specified",
                )),
                Some(t) => {
                    errs.one_of(
                        p,
                        "pathType",
                        &format!("{pp}.pathType"),
                        &["Exact", "ImplementationSpecific", "Prefix"],
                    );
                    let path = p.get("path").and_then(Value::as_str).unwrap_or_default();
                    if (t == "Exact" || t == "Prefix") && !path.starts_with('/') {
                        errs.push(FieldCause::invalid(
                            &format!("{pp}.path"),
                            &Value::String(path.into()),
                            "must be an absolute path",
                        ));
                    }
                }
            }
            if p.get("backend").is_none_or(Value::is_null) {
                errs.push(FieldCause::required(&format!("{pp}.backend"), ""));
            }
        }
    }
}
