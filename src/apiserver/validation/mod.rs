//! Validation of built-in kinds with upstream's causes and messages: object names per
//! kind, labels and annotations, required fields, enums and immutability on update
//! (unknown fields are pruned in `crate::apiserver::fields`).
//!
//! Owns: pure checks returning `FieldCause`s. The handler renders them as a 422 `Invalid`
//! `Status` (see [`invalid_message`]) with `details.causes`.

mod names;
mod pod;
mod update;
mod workloads;

pub use crate::quantity::parse_quantity;
pub use names::{
    DNS1035_LABEL_MSG, DNS1123_LABEL_MSG, DNS1123_SUBDOMAIN_MSG, dns1035_label, dns1123_label,
    dns1123_subdomain, label_value, qualified_name,
};

use serde_json::Value;
use std::fmt;

/// One `details.causes[]` entry of an `Invalid` status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldCause {
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`,
    /// `FieldValueDuplicate`, `FieldValueForbidden`, `FieldValueNotFound`,
    /// `FieldValueTooLong`.
    pub reason: String,
    /// The error body without the field, e.g. `Invalid value: "Foo": a lowercase …`.
    pub message: String,
    /// The field path, e.g. `metadata.name` or `spec.containers[0].image`.
    pub field: String,
}

impl fmt::Display for FieldCause {
    /// Upstream's `field.Error.Error()`: `metadata.name: Invalid value: "Foo": …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Renders a value like upstream's `%#v`/`%q` for the common cases.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Object(m) if m.values().all(Value::is_string) => {
            let pairs: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k:?}:{:?}", v.as_str().unwrap_or_default()))
                .collect();
            format!("map[string]string{{{}}}", pairs.join(", "))
        }
        other => other.to_string(),
    }
}

impl FieldCause {
    fn new(reason: &str, field: &str, message: String) -> FieldCause {
        FieldCause {
            reason: reason.to_string(),
            message,
            field: field.to_string(),
        }
    }

    /// `Required value[: detail]`.
    pub fn required(field: &str, detail: &str) -> FieldCause {
        let msg = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        FieldCause::new("FieldValueRequired", field, msg)
    }

    /// `Invalid value: <value>: detail`.
    pub fn invalid(field: &str, value: &Value, detail: &str) -> FieldCause {
        FieldCause::new(
            "FieldValueInvalid",
            field,
            format!("Invalid value: {}: {detail}", show(value)),
        )
    }

    /// `Unsupported value: "x": supported values: "a", "b"`.
    pub fn not_supported(field: &str, value: &Value, supported: &[&str]) -> FieldCause {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        FieldCause::new(
            "FieldValueNotSupported",
            field,
            format!(
                "Unsupported value: {}: supported values: {}",
                show(value),
                list.join(", ")
            ),
        )
    }

    /// `Duplicate value: <value>`.
    pub fn duplicate(field: &str, value: &Value) -> FieldCause {
        FieldCause::new(
            "FieldValueDuplicate",
            field,
            format!("Duplicate value: {}", show(value)),
        )
    }

    /// `Forbidden: detail`.
    pub fn forbidden(field: &str, detail: &str) -> FieldCause {
        FieldCause::new("FieldValueForbidden", field, format!("Forbidden: {detail}"))
    }

    /// `Not found: <value>`.
    pub fn not_found(field: &str, value: &Value) -> FieldCause {
        FieldCause::new(
            "FieldValueNotFound",
            field,
            format!("Not found: {}", show(value)),
        )
    }

    /// `Too long: may not be more than N bytes`.
    pub fn too_long(field: &str, max: usize) -> FieldCause {
        FieldCause::new(
            "FieldValueTooLong",
            field,
            format!("Too long: may not be more than {max} bytes"),
        )
    }
}

/// The `Status.message` of a 422: `Deployment.apps "x" is invalid: <cause>` or
/// `… is invalid: [<cause>, <cause>]` as upstream's `NewInvalid`.
pub fn invalid_message(group: &str, kind: &str, name: &str, causes: &[FieldCause]) -> String {
    let qualified = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    let body = match causes {
        [one] => one.to_string(),
        many => format!(
            "[{}]",
            many.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!("{qualified} {name:?} is invalid: {body}")
}

/// Collected causes with the helpers the per-kind checks use.
#[derive(Default)]
pub(crate) struct Errs(pub Vec<FieldCause>);

impl Errs {
    fn push(&mut self, c: FieldCause) {
        self.0.push(c);
    }

    /// Adds one `Invalid` cause per message of a syntax check.
    fn syntax(&mut self, field: &str, value: &str, messages: Vec<String>) {
        for m in messages {
            self.push(FieldCause::invalid(field, &Value::String(value.into()), &m));
        }
    }

    /// Checks an optional enum field.
    fn one_of(&mut self, obj: &Value, key: &str, field: &str, allowed: &[&str]) {
        if let Some(v) = obj.get(key).filter(|v| !v.is_null()) {
            if !v.as_str().is_some_and(|s| allowed.contains(&s)) {
                self.push(FieldCause::not_supported(field, v, allowed));
            }
        }
    }

    /// Checks an optional integer is `>= 0`.
    fn non_negative(&mut self, obj: &Value, key: &str, field: &str) {
        if let Some(n) = obj.get(key).and_then(Value::as_i64) {
            if n < 0 {
                self.push(FieldCause::invalid(
                    field,
                    &Value::from(n),
                    "must be greater than or equal to 0",
                ));
            }
        }
    }
}

/// How a kind's `metadata.name` is checked.
fn name_rule(group: &str, kind: &str) -> fn(&str) -> Vec<String> {
    match (group, kind) {
        ("", "Namespace") => names::dns1123_label,
        ("", "Service") => names::dns1035_label,
        ("rbac.authorization.k8s.io", _) => names::path_segment,
        _ => names::dns1123_subdomain,
    }
}

fn validate_meta(group: &str, kind: &str, obj: &Value, errs: &mut Errs) {
    let meta = obj.get("metadata").unwrap_or(&Value::Null);
    let name = meta.get("name").and_then(Value::as_str).unwrap_or_default();
    let generate = meta
        .get("generateName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name.is_empty() {
        if generate.is_empty() {
            errs.push(FieldCause::required(
                "metadata.name",
                "name or generateName is required",
            ));
        }
    } else if (group, kind) == ("apiextensions.k8s.io", "CustomResourceDefinition") {
        let plural = obj
            .pointer("/spec/names/plural")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let g = obj
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if name != format!("{plural}.{g}") {
            errs.push(FieldCause::invalid(
                "metadata.name",
                &Value::String(name.into()),
                "must be spec.names.plural+\".\"+spec.group",
            ));
        }
    } else {
        errs.syntax("metadata.name", name, name_rule(group, kind)(name));
        if (group, kind) == ("batch", "CronJob") && name.len() > 52 {
            errs.push(FieldCause::invalid(
                "metadata.name",
                &Value::String(name.into()),
                "must be no more than 52 characters",
            ));
        }
    }
    if let Some(ns) = meta.get("namespace").and_then(Value::as_str) {
        if !ns.is_empty() {
            errs.syntax("metadata.namespace", ns, names::dns1123_label(ns));
        }
    }
    labels(meta.get("labels"), "metadata.labels", errs);
    if let Some(Value::Object(ann)) = meta.get("annotations") {
        let mut total = 0usize;
        for (k, v) in ann {
            for m in names::qualified_name(&k.to_lowercase()) {
                errs.push(FieldCause::invalid(
                    "metadata.annotations",
                    &Value::String(k.clone()),
                    &m,
                ));
            }
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > 256 * 1024 {
            errs.push(FieldCause::too_long("metadata.annotations", 256 * 1024));
        }
    }
}

/// Checks a label map (keys and values).
pub(crate) fn labels(labels: Option<&Value>, field: &str, errs: &mut Errs) {
    let Some(Value::Object(m)) = labels else {
        return;
    };
    for (k, v) in m {
        for msg in names::qualified_name(k) {
            errs.push(FieldCause::invalid(field, &Value::String(k.clone()), &msg));
        }
        let value = v.as_str().unwrap_or_default();
        for msg in names::label_value(value) {
            errs.push(FieldCause::invalid(
                field,
                &Value::String(value.into()),
                &msg,
            ));
        }
    }
}

/// Validates `new` (and, on update, the transition from `old`) for a built-in kind.
/// Custom resources only get metadata checks.
pub fn validate(
    group: &str,
    version: &str,
    kind: &str,
    new: &Value,
    old: Option<&Value>,
) -> Vec<FieldCause> {
    let _ = version;
    let mut errs = Errs::default();
    validate_meta(group, kind, new, &mut errs);
    workloads::validate_kind(group, kind, new, &mut errs);
    if let Some(old) = old {
        update::validate_update(group, kind, new, old, &mut errs);
    }
    errs.0
}

#[cfg(test)]
mod tests;
