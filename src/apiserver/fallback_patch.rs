//! Patch engines used until the full `patch` module is available: JSON merge patch (RFC 7386),
//! JSON patch (RFC 6902) and a strategic-merge approximation (lists of named objects merge by
//! `name`, `$patch` directives honoured, other `$` directives dropped).

use super::status::ApiError;
use serde_json::Value;

/// The four patch content types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchKind {
    pub fn from_content_type(ct: &str) -> Option<Self> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/json-patch+json" => Some(Self::Json),
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// RFC 7386.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Default::default());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            m.values_mut().for_each(strip_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

/// Strategic merge patch approximation (see module doc).
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut v = patch.clone();
        strip_directives(&mut v);
        *target = v;
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let Value::Object(t) = target else { return };
    for (k, v) in p {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(cur)), Value::Array(del)) = (t.get_mut(field), v) {
                cur.retain(|x| !del.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        match (t.get_mut(k), v) {
            (Some(Value::Array(cur)), Value::Array(items))
                if items
                    .iter()
                    .all(|i| i.get("name").is_some_and(Value::is_string)) =>
            {
                for item in items {
                    let name = item.get("name").cloned();
                    let pos = cur.iter().position(|c| c.get("name") == name.as_ref());
                    let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                    match (pos, delete) {
                        (Some(i), true) => {
                            cur.remove(i);
                        }
                        (Some(i), false) => strategic_merge(&mut cur[i], item),
                        (None, false) => {
                            let mut n = item.clone();
                            strip_directives(&mut n);
                            cur.push(n);
                        }
                        (None, true) => {}
                    }
                }
            }
            (Some(cur @ Value::Object(_)), Value::Object(_)) => strategic_merge(cur, v),
            _ => {
                let mut n = v.clone();
                strip_directives(&mut n);
                t.insert(k.clone(), n);
            }
        }
    }
}

fn unescape(tok: &str) -> String {
    tok.replace("~1", "/").replace("~0", "~")
}

fn split_ptr(path: &str) -> Result<(String, String), ApiError> {
    let idx = path
        .rfind('/')
        .ok_or_else(|| ApiError::bad_request(format!("invalid JSON pointer {path:?}")))?;
    Ok((path[..idx].to_string(), unescape(&path[idx + 1..])))
}

fn add(doc: &mut Value, path: &str, value: Value, replace: bool) -> Result<(), ApiError> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = split_ptr(path)?;
    let missing = || ApiError::new(422, "Invalid", format!("doc is missing path: {path:?}"));
    let target = doc.pointer_mut(&parent).ok_or_else(missing)?;
    match target {
        Value::Object(m) => {
            if replace && !m.contains_key(&last) {
                return Err(missing());
            }
            m.insert(last, value);
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(value);
            } else {
                let i: usize = last.parse().map_err(|_| missing())?;
                if replace {
                    *a.get_mut(i).ok_or_else(missing)? = value;
                } else if i <= a.len() {
                    a.insert(i, value);
                } else {
                    return Err(missing());
                }
            }
        }
        _ => return Err(missing()),
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, ApiError> {
    let (parent, last) = split_ptr(path)?;
    let missing = || ApiError::new(422, "Invalid", format!("doc is missing path: {path:?}"));
    match doc.pointer_mut(&parent).ok_or_else(missing)? {
        Value::Object(m) => m.remove(&last).ok_or_else(missing),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| missing())?;
            if i < a.len() {
                Ok(a.remove(i))
            } else {
                Err(missing())
            }
        }
        _ => Err(missing()),
    }
}

/// RFC 6902.
///
/// # Errors
/// 400 for a malformed patch, 422 when an operation cannot apply (like upstream).
pub fn json_patch(doc: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let ops = patch
        .as_array()
        .ok_or_else(|| ApiError::bad_request("json patch must be an array of operations"))?;
    for op in ops {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or("");
        let path = op.get("path").and_then(Value::as_str).unwrap_or("");
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| ApiError::bad_request(format!("missing value for {kind} op")))
        };
        match kind {
            "add" => add(doc, path, value()?, false)?,
            "replace" => add(doc, path, value()?, true)?,
            "remove" => {
                remove(doc, path)?;
            }
            "move" | "copy" => {
                let from = op.get("from").and_then(Value::as_str).unwrap_or("");
                let v = if kind == "move" {
                    remove(doc, from)?
                } else {
                    doc.pointer(from).cloned().ok_or_else(|| {
                        ApiError::new(422, "Invalid", format!("doc is missing path: {from:?}"))
                    })?
                };
                add(doc, path, v, false)?;
            }
            "test" => {
                if doc.pointer(path) != Some(&value()?) {
                    return Err(ApiError::new(
                        422,
                        "Invalid",
                        format!("testing value {path:?} failed"),
                    ));
                }
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unexpected kind of operation: {other:?}"
                )));
            }
        }
    }
    Ok(())
}

/// Apply any patch type with the fallback engines.
///
/// # Errors
/// 400 on malformed patches, 422 on inapplicable JSON patches.
pub fn apply(kind: PatchKind, current: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let patch: Value = match kind {
        PatchKind::Apply => serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?,
        _ => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?,
    };
    let mut out = current.clone();
    match kind {
        PatchKind::Json => json_patch(&mut out, &patch)?,
        PatchKind::Merge => merge_patch(&mut out, &patch),
        PatchKind::Strategic | PatchKind::Apply => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("patch must be an object"));
            }
            strategic_merge(&mut out, &patch)
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_sets_and_removes_keys() {
        let cur = json!({"a":1,"b":{"c":2,"d":3}});
        let out = apply(PatchKind::Merge, &cur, br#"{"a":null,"b":{"c":5}}"#).unwrap();
        assert_eq!(out, json!({"b":{"c":5,"d":3}}));
    }

    #[test]
    fn json_patch_adds_replaces_and_fails_on_missing_paths() {
        let cur = json!({"a":[1,2],"m":{"x":1}});
        let p =
            br#"[{"op":"add","path":"/a/-","value":3},{"op":"replace","path":"/m/x","value":2}]"#;
        assert_eq!(
            apply(PatchKind::Json, &cur, p).unwrap(),
            json!({"a":[1,2,3],"m":{"x":2}})
        );
        let bad = br#"[{"op":"replace","path":"/nope/x","value":2}]"#;
        assert_eq!(apply(PatchKind::Json, &cur, bad).unwrap_err().code, 422);
    }

    #[test]
    fn strategic_merge_merges_named_list_items_and_drops_directives() {
        let cur = json!({"spec":{"containers":[{"name":"a","image":"x","command":["sh"]},{"name":"b","image":"y"}]}});
        let p = br#"{"spec":{"$setElementOrder/containers":[{"name":"a"}],"containers":[{"name":"a","image":"z"},{"name":"b","$patch":"delete"}]}}"#;
        let out = apply(PatchKind::Strategic, &cur, p).unwrap();
        assert_eq!(
            out,
            json!({"spec":{"containers":[{"name":"a","image":"z","command":["sh"]}]}})
        );
    }
}
