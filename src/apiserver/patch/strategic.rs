//! Kubernetes strategic merge patch, server side: maps merge recursively, `null` deletes,
//! lists follow [`super::strategy::list_kind`] (merge by key, set union, or replace), and
//! the directives `$patch: replace|merge|delete`, `$retainKeys`,
//! `$setElementOrder/<field>` and `$deleteFromPrimitiveList/<field>` are honoured.

use super::strategy::{ListKind, list_kind};
use super::{KindPath, PatchError};
use serde_json::{Map, Value};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_PRIMITIVE: &str = "$deleteFromPrimitiveList/";

/// Applies the strategic merge `patch` (a JSON object) to `current`.
pub(super) fn apply(kind: &KindPath, current: &Value, patch: &Value) -> Result<Value, PatchError> {
    let orig = current.as_object().cloned().unwrap_or_default();
    let empty = Map::new();
    let patch = patch.as_object().unwrap_or(&empty);
    let mut path = Vec::new();
    Ok(Value::Object(
        merge_map(kind, &mut path, orig, patch)?.unwrap_or_default(),
    ))
}

fn is_directive(key: &str) -> bool {
    key == PATCH
        || key == RETAIN_KEYS
        || key.starts_with(SET_ORDER)
        || key.starts_with(DELETE_PRIMITIVE)
}

/// Removes directive keys from a value inserted verbatim (atomic lists, replaced maps).
fn clean(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !is_directive(k))
                .map(|(k, v)| (k.clone(), clean(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(clean).collect()),
        other => other.clone(),
    }
}

fn invalid(msg: String) -> PatchError {
    PatchError::InvalidStrategicPatch(msg)
}

/// Merges `patch` into `orig`; `None` means the map itself is deleted (`$patch: delete`).
fn merge_map(
    kind: &KindPath,
    path: &mut Vec<String>,
    mut orig: Map<String, Value>,
    patch: &Map<String, Value>,
) -> Result<Option<Map<String, Value>>, PatchError> {
    match patch.get(PATCH).map(|d| d.as_str()) {
        None | Some(Some("merge")) => {}
        Some(Some("replace")) => {
            return Ok(clean(&Value::Object(patch.clone())).as_object().cloned());
        }
        Some(Some("delete")) => return Ok(None),
        Some(other) => {
            return Err(invalid(format!(
                "unknown patch type: {} in map: {}",
                other.unwrap_or("<non-string>"),
                Value::Object(patch.clone())
            )));
        }
    }
    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let keys = retain
            .as_array()
            .ok_or_else(|| invalid("$retainKeys must be a list of strings".into()))?;
        let keys: Vec<&str> = keys.iter().filter_map(Value::as_str).collect();
        orig.retain(|k, _| keys.contains(&k.as_str()));
    }
    for (k, v) in patch {
        if let Some(field) = k.strip_prefix(DELETE_PRIMITIVE) {
            let remove = v
                .as_array()
                .ok_or_else(|| invalid(format!("{k} must be a list")))?;
            if let Some(Value::Array(list)) = orig.get_mut(field) {
                list.retain(|item| !remove.contains(item));
            }
        }
    }
    for (k, v) in patch {
        if is_directive(k) {
            continue;
        }
        path.push(k.clone());
        let result = merge_field(kind, path, orig.remove(k), v);
        path.pop();
        if let Some(new) = result? {
            orig.insert(k.clone(), new);
        }
    }
    for (k, v) in patch {
        if let Some(field) = k.strip_prefix(SET_ORDER) {
            let order = v
                .as_array()
                .ok_or_else(|| invalid(format!("{k} must be a list")))?;
            path.push(field.to_string());
            let lk = list_kind(kind, path);
            path.pop();
            if let Some(Value::Array(list)) = orig.get_mut(field) {
                set_element_order(list, order, lk);
            }
        }
    }
    Ok(Some(orig))
}

/// Merges one field; `None` removes it.
fn merge_field(
    kind: &KindPath,
    path: &mut Vec<String>,
    orig: Option<Value>,
    patch: &Value,
) -> Result<Option<Value>, PatchError> {
    match patch {
        Value::Null => Ok(None),
        Value::Object(p) => {
            let base = match orig {
                Some(Value::Object(m)) => m,
                _ => Map::new(),
            };
            Ok(merge_map(kind, path, base, p)?.map(Value::Object))
        }
        Value::Array(p) => match list_kind(kind, path) {
            ListKind::Atomic => Ok(Some(clean(patch))),
            lk => {
                let base = match orig {
                    Some(Value::Array(a)) => a,
                    _ => Vec::new(),
                };
                Ok(Some(Value::Array(merge_list(kind, path, base, p, lk)?)))
            }
        },
        scalar => Ok(Some(scalar.clone())),
    }
}

fn merge_list(
    kind: &KindPath,
    path: &mut Vec<String>,
    mut orig: Vec<Value>,
    patch: &[Value],
    lk: ListKind,
) -> Result<Vec<Value>, PatchError> {
    let is_replace = |v: &Value| v.get(PATCH).and_then(Value::as_str) == Some("replace");
    if patch.iter().any(is_replace) {
        return Ok(patch.iter().filter(|v| !is_replace(v)).map(clean).collect());
    }
    match lk {
        ListKind::Atomic => Ok(patch.iter().map(clean).collect()),
        ListKind::Set => {
            for v in patch {
                if !orig.contains(v) {
                    orig.push(v.clone());
                }
            }
            Ok(orig)
        }
        ListKind::Map(keys) => {
            let key = keys[0];
            for item in patch {
                let Value::Object(p) = item else {
                    return Err(invalid(format!(
                        "expected a map in a list merged by key {key:?}, got {item}"
                    )));
                };
                let kv = p.get(key).ok_or_else(|| {
                    invalid(format!(
                        "map: {item} does not contain declared merge key: {key}"
                    ))
                })?;
                let pos = orig.iter().position(|o| o.get(key) == Some(kv));
                if p.get(PATCH).and_then(Value::as_str) == Some("delete") {
                    orig.retain(|o| o.get(key) != Some(kv));
                    continue;
                }
                match pos {
                    Some(i) => {
                        let base = orig[i].as_object().cloned().unwrap_or_default();
                        match merge_map(kind, path, base, p)? {
                            Some(m) => orig[i] = Value::Object(m),
                            None => {
                                orig.remove(i);
                            }
                        }
                    }
                    None => {
                        if let Some(m) = merge_map(kind, path, Map::new(), p)? {
                            orig.push(Value::Object(m));
                        }
                    }
                }
            }
            Ok(orig)
        }
    }
}

/// Reorders the items named in `order` among the slots they occupy; items the order does
/// not mention (server-only) keep their positions, as upstream's merge of both orders does
/// for the common cases.
fn set_element_order(list: &mut [Value], order: &[Value], lk: ListKind) {
    let rank = |item: &Value| -> Option<usize> {
        match lk {
            ListKind::Map(keys) => {
                let key = keys[0];
                let kv = item.get(key)?;
                order.iter().position(|o| o.get(key) == Some(kv))
            }
            _ => order.iter().position(|o| o == item),
        }
    };
    let slots: Vec<usize> = (0..list.len())
        .filter(|&i| rank(&list[i]).is_some())
        .collect();
    let mut items: Vec<Value> = slots.iter().map(|&i| list[i].clone()).collect();
    items.sort_by_key(|v| rank(v).unwrap_or(usize::MAX));
    for (slot, item) in slots.into_iter().zip(items) {
        list[slot] = item;
    }
}
