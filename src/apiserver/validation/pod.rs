//! Pod spec checks (upstream `ValidatePodSpec` subset): containers, names, images, ports,
//! env, volumes and mounts, enums.

use super::{Errs, FieldCause, names};
use crate::quantity::{QUANTITY_MSG, parse_quantity};
use serde_json::Value;
use std::collections::HashSet;

const PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"];

fn arr(v: &Value, key: &str) -> Vec<Value> {
    v.get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// Validates a pod spec at `path`; `is_pod` adds the checks upstream applies to pods only
/// (images required).
pub(crate) fn pod_spec(spec: &Value, path: &str, is_pod: bool, errs: &mut Errs) {
    let containers = arr(spec, "containers");
    if containers.is_empty() {
        errs.push(FieldCause::required(&format!("{path}.containers"), ""));
    }
    let mut volumes = HashSet::new();
    for (i, v) in arr(spec, "volumes").iter().enumerate() {
        let field = format!("{path}.volumes[{i}].name");
        match v
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            None => errs.push(FieldCause::required(&field, "")),
            Some(n) => {
                errs.syntax(&field, n, names::dns1123_label(n));
                if !volumes.insert(n.to_string()) {
                    errs.push(FieldCause::duplicate(&field, &Value::String(n.into())));
                }
            }
        }
    }
    let mut seen = HashSet::new();
    for list in ["initContainers", "containers"] {
        for (i, c) in arr(spec, list).iter().enumerate() {
            container(
                c,
                &format!("{path}.{list}[{i}]"),
                is_pod,
                &volumes,
                &mut seen,
                errs,
            );
        }
    }
    errs.one_of(
        spec,
        "restartPolicy",
        &format!("{path}.restartPolicy"),
        &["Always", "OnFailure", "Never"],
    );
    errs.one_of(
        spec,
        "dnsPolicy",
        &format!("{path}.dnsPolicy"),
        &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
    );
    errs.non_negative(
        spec,
        "terminationGracePeriodSeconds",
        &format!("{path}.terminationGracePeriodSeconds"),
    );
    if let Some(n) = spec.get("activeDeadlineSeconds").and_then(Value::as_i64) {
        if n <= 0 {
            errs.push(FieldCause::invalid(
                &format!("{path}.activeDeadlineSeconds"),
                &Value::from(n),
                "must be between 1 and 2147483647, inclusive",
            ));
        }
    }
    for (i, t) in arr(spec, "tolerations").iter().enumerate() {
        errs.one_of(
            t,
            "operator",
            &format!("{path}.tolerations[{i}].operator"),
            &["Equal", "Exists"],
        );
        errs.one_of(
            t,
            "effect",
            &format!("{path}.tolerations[{i}].effect"),
            &["NoExecute", "NoSchedule", "PreferNoSchedule"],
        );
    }
}

fn container(
    c: &Value,
    path: &str,
    is_pod: bool,
    volumes: &HashSet<String>,
    seen: &mut HashSet<String>,
    errs: &mut Errs,
) {
    let name_field = format!("{path}.name");
    match c
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        None => errs.push(FieldCause::required(&name_field, "")),
        Some(n) => {
            errs.syntax(&name_field, n, names::dns1123_label(n));
            if !seen.insert(n.to_string()) {
                errs.push(FieldCause::duplicate(&name_field, &Value::String(n.into())));
            }
        }
    }
    let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
    if is_pod && image.trim().is_empty() {
        errs.push(FieldCause::required(&format!("{path}.image"), ""));
    }
    errs.one_of(
        c,
        "imagePullPolicy",
        &format!("{path}.imagePullPolicy"),
        &["Always", "IfNotPresent", "Never"],
    );
    let mut port_names = HashSet::new();
    for (i, p) in arr(c, "ports").iter().enumerate() {
        let pp = format!("{path}.ports[{i}]");
        match p.get("containerPort").and_then(Value::as_i64) {
            Some(n) if (1..=65535).contains(&n) => {}
            Some(n) => errs.push(FieldCause::invalid(
                &format!("{pp}.containerPort"),
                &Value::from(n),
                "must be between 1 and 65535, inclusive",
            )),
            None => errs.push(FieldCause::required(&format!("{pp}.containerPort"), "")),
        }
        if let Some(n) = p.get("hostPort").and_then(Value::as_i64) {
            if n != 0 && !(1..=65535).contains(&n) {
                errs.push(FieldCause::invalid(
                    &format!("{pp}.hostPort"),
                    &Value::from(n),
                    "must be between 1 and 65535, inclusive",
                ));
            }
        }
        errs.one_of(p, "protocol", &format!("{pp}.protocol"), &PROTOCOLS);
        if let Some(n) = p
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            errs.syntax(&format!("{pp}.name"), n, names::port_name(n));
            if !port_names.insert(n.to_string()) {
                errs.push(FieldCause::duplicate(
                    &format!("{pp}.name"),
                    &Value::String(n.into()),
                ));
            }
        }
    }
    for (i, e) in arr(c, "env").iter().enumerate() {
        let field = format!("{path}.env[{i}].name");
        match e.get("name").and_then(Value::as_str) {
            None | Some("") => errs.push(FieldCause::required(&field, "")),
            Some(n) if n.contains('=') || !n.bytes().all(|b| (32..127).contains(&b)) => {
                errs.push(FieldCause::invalid(
                    &field,
                    &Value::String(n.into()),
                    "a valid environment variable name must consist only of printable ASCII characters other than '='",
                ));
            }
            Some(_) => {}
        }
    }
    resources(c.get("resources"), &format!("{path}.resources"), errs);
    let mut mount_paths = HashSet::new();
    for (i, m) in arr(c, "volumeMounts").iter().enumerate() {
        let mp = format!("{path}.volumeMounts[{i}]");
        match m
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            None => errs.push(FieldCause::required(&format!("{mp}.name"), "")),
            Some(n) if !volumes.contains(n) => {
                errs.push(FieldCause::not_found(
                    &format!("{mp}.name"),
                    &Value::String(n.into()),
                ));
            }
            Some(_) => {}
        }
        match m
            .get("mountPath")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
        {
            None => errs.push(FieldCause::required(&format!("{mp}.mountPath"), "")),
            Some(p) => {
                if !mount_paths.insert(p.to_string()) {
                    errs.push(FieldCause::invalid(
                        &format!("{mp}.mountPath"),
                        &Value::String(p.into()),
                        "must be unique",
                    ));
                }
            }
        }
    }
}

/// Quantity syntax, and requests not above limits (upstream `ValidateResourceRequirements`).
fn resources(res: Option<&Value>, path: &str, errs: &mut Errs) {
    let Some(res) = res else { return };
    let mut parsed = |kind: &str| -> Vec<(String, String, f64)> {
        let mut out = Vec::new();
        for (name, q) in res
            .get(kind)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let text = match q {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            match parse_quantity(&text) {
                Some(v) if v >= 0.0 => out.push((name.clone(), text, v)),
                Some(_) => errs.push(FieldCause::invalid(
                    &format!("{path}.{kind}[{name}]"),
                    &Value::String(text),
                    "must be greater than or equal to 0",
                )),
                None => errs.push(FieldCause::invalid(
                    &format!("{path}.{kind}[{name}]"),
                    &Value::String(text),
                    QUANTITY_MSG,
                )),
            }
        }
        out
    };
    let limits = parsed("limits");
    let requests = parsed("requests");
    for (name, text, req) in &requests {
        if let Some((_, ltext, lim)) = limits.iter().find(|(n, _, _)| n == name) {
            if req > lim {
                errs.push(FieldCause::invalid(
                    &format!("{path}.requests"),
                    &Value::String(text.clone()),
                    &format!("must be less than or equal to {name} limit of {ltext}"),
                ));
            }
        }
    }
}
