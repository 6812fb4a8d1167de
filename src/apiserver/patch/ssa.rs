//! Server-side apply and `metadata.managedFields` bookkeeping.
//!
//! Each `managedFields` entry is (manager, operation, apiVersion) → [`FieldSet`]. Apply
//! merges the applied configuration into the live object (lists by their keys, see
//! [`super::strategy`]), reports conflicts with other managers owning a field with a
//! different value (unless `force`), and removes fields the manager applied before but no
//! longer applies when nobody else owns them. Ordinary writes record what they changed.

use super::KindPath;
use super::fieldset::{self, FieldPath, FieldSet, item_key, names, path_string};
use super::strategy::{ListKind, is_atomic_object, list_kind};
use serde_json::{Map, Value, json};

/// A field another manager owns with a different value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager's name, e.g. `kubectl-client-side-apply`.
    pub manager: String,
    /// The path as upstream prints it, e.g. `.spec.replicas`.
    pub field: String,
    /// The other manager's operation, `Apply` or `Update`.
    pub operation: String,
    /// The apiVersion the other manager wrote with.
    pub api_version: String,
}

impl Conflict {
    /// `"mgr"` for appliers, `"mgr" using apps/v1` for updaters, as upstream prints managers.
    pub fn manager_display(&self) -> String {
        if self.operation == "Update" && !self.api_version.is_empty() {
            format!("{:?} using {}", self.manager, self.api_version)
        } else {
            format!("{:?}", self.manager)
        }
    }
}

/// Why an apply request failed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ApplyError {
    /// Other managers own fields with different values. HTTP 409 `Conflict`; each conflict
    /// becomes a `details.causes[]` entry of type `FieldManagerConflict`.
    #[error("{}", conflict_message(.0))]
    Conflicts(Vec<Conflict>),
    /// The applied configuration is not an object or its apiVersion/kind do not match the
    /// URL. HTTP 400 `BadRequest`.
    #[error("{0}")]
    BadRequest(String),
    /// `fieldManager` is empty. HTTP 422 `Invalid`.
    #[error(
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    )]
    FieldManagerRequired,
}

impl ApplyError {
    /// The HTTP status code of the `Status` this error becomes.
    pub fn code(&self) -> u16 {
        match self {
            ApplyError::Conflicts(_) => 409,
            ApplyError::BadRequest(_) => 400,
            ApplyError::FieldManagerRequired => 422,
        }
    }

    /// The `Status.reason` matching [`ApplyError::code`].
    pub fn reason(&self) -> &'static str {
        match self {
            ApplyError::Conflicts(_) => "Conflict",
            ApplyError::BadRequest(_) => "BadRequest",
            ApplyError::FieldManagerRequired => "Invalid",
        }
    }

    /// `details.causes` as upstream sends them for apply conflicts
    /// (`{"reason":"FieldManagerConflict","message":"conflict with \"mgr\"","field":".spec.replicas"}`).
    pub fn causes(&self) -> Vec<crate::apiserver::validation::FieldCause> {
        match self {
            ApplyError::Conflicts(cs) => cs
                .iter()
                .map(|c| crate::apiserver::validation::FieldCause {
                    reason: "FieldManagerConflict".into(),
                    message: format!("conflict with {}", c.manager_display()),
                    field: c.field.clone(),
                })
                .collect(),
            ApplyError::FieldManagerRequired => {
                vec![crate::apiserver::validation::FieldCause::required(
                    "fieldManager",
                    "is required for apply patch",
                )]
            }
            ApplyError::BadRequest(_) => Vec::new(),
        }
    }
}

fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [c] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            c.manager_display(),
            c.field
        );
    }
    let mut by_manager: Vec<(String, Vec<&str>)> = Vec::new();
    for c in conflicts {
        let m = c.manager_display();
        match by_manager.iter_mut().find(|(name, _)| *name == m) {
            Some((_, fields)) => fields.push(&c.field),
            None => by_manager.push((m, vec![&c.field])),
        }
    }
    let mut msg = format!("Apply failed with {} conflicts: ", conflicts.len());
    for (m, fields) in by_manager {
        msg.push_str(&format!("conflicts with {m}:"));
        for f in fields {
            msg.push_str(&format!("\n- {f}"));
        }
        msg.push('\n');
    }
    msg.trim_end().to_string()
}

/// One `managedFields` entry.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: Option<String>,
    set: FieldSet,
}

fn read_entries(obj: Option<&Value>) -> Vec<Entry> {
    let Some(list) = obj
        .and_then(|o| o.pointer("/metadata/managedFields"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .map(|e| {
            let s = |k: &str| {
                e.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            Entry {
                manager: s("manager"),
                operation: s("operation"),
                api_version: s("apiVersion"),
                time: s("time"),
                subresource: e
                    .get("subresource")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                set: FieldSet::from_fields_v1(e.get("fieldsV1").unwrap_or(&Value::Null)),
            }
        })
        .collect()
}

fn write_entries(obj: &mut Value, entries: Vec<Entry>) {
    let list: Vec<Value> = entries
        .into_iter()
        .filter(|e| !e.set.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": e.set.to_fields_v1(),
            });
            if let (Some(sub), Value::Object(m)) = (e.subresource, &mut v) {
                m.insert("subresource".into(), Value::String(sub));
            }
            v
        })
        .collect();
    let Value::Object(root) = obj else { return };
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(meta) = meta {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

/// Decodes an `application/apply-patch+yaml` body (YAML or JSON) into an object.
pub fn parse_apply_body(body: &[u8]) -> Result<Value, ApplyError> {
    let v: Value = serde_yaml::from_slice(body)
        .map_err(|e| ApplyError::BadRequest(format!("error decoding YAML: {e}")))?;
    if v.is_object() {
        Ok(v)
    } else {
        Err(ApplyError::BadRequest(
            "apply patch must be a YAML or JSON object".into(),
        ))
    }
}

/// Applies `applied` (decoded with [`parse_apply_body`]) for `field_manager`.
/// `current` is `None` when the object does not exist yet (apply creates it).
pub fn server_side_apply(
    kind: &KindPath,
    current: Option<&Value>,
    applied: &Value,
    field_manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, ApplyError> {
    if field_manager.is_empty() {
        return Err(ApplyError::FieldManagerRequired);
    }
    let Value::Object(_) = applied else {
        return Err(ApplyError::BadRequest(
            "apply patch must be an object".into(),
        ));
    };
    let api_version = kind.api_version();
    for (field, want) in [("apiVersion", api_version.as_str()), ("kind", &kind.kind)] {
        match applied.get(field).and_then(Value::as_str) {
            Some(got) if got == want => {}
            Some(got) => {
                return Err(ApplyError::BadRequest(format!(
                    "{field} {got:?} does not match the expected {want:?}"
                )));
            }
            None => {
                return Err(ApplyError::BadRequest(format!(
                    "{field} must be set in an apply patch"
                )));
            }
        }
    }
    let mut applied = strip_nulls(applied);
    if let Value::Object(m) = &mut applied {
        // Apply to the main resource resets status (it has its own subresource).
        m.remove("status");
        if let Some(Value::Object(meta)) = m.get_mut("metadata") {
            meta.remove("managedFields");
        }
    }
    let applied_set = FieldSet::from_value(kind, &applied);
    let mut entries = read_entries(current);
    let base = current.cloned().unwrap_or_else(|| json!({}));

    let mut conflicts = Vec::new();
    let mut conflicting: Vec<(usize, FieldPath)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if e.manager == field_manager && e.operation == "Apply" {
            continue;
        }
        for p in applied_set.0.intersection(&e.set.0) {
            if !is_item(p) && fieldset::get(&base, p) != fieldset::get(&applied, p) {
                conflicts.push(Conflict {
                    manager: e.manager.clone(),
                    field: path_string(p),
                    operation: e.operation.clone(),
                    api_version: e.api_version.clone(),
                });
                conflicting.push((i, p.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(ApplyError::Conflicts(conflicts));
    }
    for (i, p) in conflicting {
        entries[i].set.0.remove(&p);
    }

    let mut obj = merge_apply(kind, &mut Vec::new(), &base, &applied);
    let mine = entries
        .iter()
        .position(|e| e.manager == field_manager && e.operation == "Apply");
    if let Some(idx) = mine {
        let prev = entries[idx].set.clone();
        let mut dropped: Vec<&FieldPath> = prev.0.difference(&applied_set.0).collect();
        // Shallowest first: a dropped list item goes as a whole (its fields with it),
        // while the fields of an item someone else still holds go one by one.
        dropped.sort_by_key(|p| p.len());
        for p in dropped {
            let owned_elsewhere = entries
                .iter()
                .enumerate()
                .any(|(j, e)| j != idx && e.set.contains_prefix(p));
            if !owned_elsewhere && !applied_set.contains_prefix(p) && !is_item_key_field(p) {
                fieldset::remove(&mut obj, p);
            }
        }
        entries.remove(idx);
    }
    entries.push(Entry {
        manager: field_manager.to_string(),
        operation: "Apply".into(),
        api_version,
        time: now.to_string(),
        subresource: None,
        set: applied_set,
    });
    write_entries(&mut obj, entries);
    Ok(obj)
}

/// Whether `p` is a key field of a keyed list item (`…[name="x"].name`), which stays as
/// long as the item does.
fn is_item_key_field(p: &FieldPath) -> bool {
    let [
        ..,
        fieldset::PathElement::Key(key),
        fieldset::PathElement::Field(f),
    ] = p.as_slice()
    else {
        return false;
    };
    serde_json::from_str::<Map<String, Value>>(key).is_ok_and(|k| k.contains_key(f))
}

/// Whether `p` names a list item (its membership, not a value that can differ).
fn is_item(p: &FieldPath) -> bool {
    matches!(
        p.last(),
        Some(fieldset::PathElement::Key(_) | fieldset::PathElement::Value(_))
    )
}

/// Structured merge of an applied configuration into the live object.
fn merge_apply(kind: &KindPath, path: &mut FieldPath, live: &Value, applied: &Value) -> Value {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) if !is_atomic_object(kind, &names(path)) => {
            let mut out = l.clone();
            for (k, v) in a {
                path.push(fieldset::PathElement::Field(k.clone()));
                let merged = match l.get(k) {
                    Some(lv) => merge_apply(kind, path, lv, v),
                    None => v.clone(),
                };
                path.pop();
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(a)) => match list_kind(kind, &names(path)) {
            ListKind::Set => {
                let mut out = l.clone();
                for v in a {
                    if !out.contains(v) {
                        out.push(v.clone());
                    }
                }
                Value::Array(out)
            }
            // Items without their key cannot be merged; such a list is owned whole (the
            // field set treats it the same way).
            ListKind::Map(keys)
                if a.iter()
                    .chain(l.iter())
                    .any(|i| item_key(i, keys).is_none()) =>
            {
                applied.clone()
            }
            ListKind::Map(keys) => {
                let mut out = l.clone();
                for item in a {
                    let key = item_key(item, keys);
                    let pos = key.as_ref().and_then(|k| {
                        out.iter()
                            .position(|o| item_key(o, keys).as_ref() == Some(k))
                    });
                    match (pos, key) {
                        (Some(i), Some(k)) => {
                            path.push(fieldset::PathElement::Key(k));
                            out[i] = merge_apply(kind, path, &out[i], item);
                            path.pop();
                        }
                        _ => out.push(item.clone()),
                    }
                }
                Value::Array(out)
            }
            ListKind::Atomic => applied.clone(),
        },
        _ => applied.clone(),
    }
}

/// Records an ordinary write (`operation` is normally `"Update"`) by `manager`: fields that
/// `new` adds or changes compared with `old` move to this manager; removed fields leave
/// every set. `new`'s `metadata.managedFields` is rewritten (an explicit empty list from the
/// client resets the history, as upstream).
pub fn update_managed_fields(
    kind: &KindPath,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    operation: &str,
    now: &str,
) {
    let client_fields = new.pointer("/metadata/managedFields").cloned();
    let old_fields = old
        .and_then(|o| o.pointer("/metadata/managedFields"))
        .cloned();
    let mut entries = match &client_fields {
        Some(Value::Array(a)) if a.is_empty() => Vec::new(),
        Some(f) if Some(f) != old_fields.as_ref() => read_entries(Some(new)),
        _ => read_entries(old),
    };
    let empty = json!({});
    let old_obj = old.unwrap_or(&empty);
    let old_set = FieldSet::from_value(kind, old_obj);
    let new_set = FieldSet::from_value(kind, new);
    let changed: Vec<FieldPath> = new_set
        .0
        .iter()
        .filter(|p| {
            !old_set.contains(p)
                || (!is_item(p) && fieldset::get(old_obj, p) != fieldset::get(new, p))
        })
        .cloned()
        .collect();
    for e in &mut entries {
        e.set.0.retain(|p| new_set.contains(p));
        for p in &changed {
            e.set.0.remove(p);
        }
    }
    let api_version = kind.api_version();
    let idx = entries.iter().position(|e| {
        e.manager == manager
            && e.operation == operation
            && e.api_version == api_version
            && e.subresource.is_none()
    });
    if !changed.is_empty() {
        let i = match idx {
            Some(i) => i,
            None => {
                entries.push(Entry {
                    manager: manager.to_string(),
                    operation: operation.to_string(),
                    api_version,
                    time: String::new(),
                    subresource: None,
                    set: FieldSet::default(),
                });
                entries.len() - 1
            }
        };
        entries[i].set.0.extend(changed);
        entries[i].time = now.to_string();
    }
    write_entries(new, entries);
}
