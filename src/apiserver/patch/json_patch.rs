//! RFC 6902 JSON patch: `add`, `remove`, `replace`, `move`, `copy`, `test` with RFC 6901
//! pointers. Operations apply in order to a copy; any failure aborts the whole patch.

use super::PatchError;
use serde_json::Value;

/// Applies the operation array `ops` to a copy of `doc`.
pub(super) fn apply(doc: &Value, ops: &Value) -> Result<Value, PatchError> {
    let ops = ops
        .as_array()
        .ok_or_else(|| PatchError::Malformed("json patch must be an array of operations".into()))?;
    let mut out = doc.clone();
    for op in ops {
        apply_one(&mut out, op)?;
    }
    Ok(out)
}

fn field<'a>(op: &'a Value, name: &str) -> Result<&'a Value, PatchError> {
    op.get(name)
        .ok_or_else(|| PatchError::JsonPatchFailed(format!("operation missing \"{name}\" field")))
}

fn str_field<'a>(op: &'a Value, name: &str) -> Result<&'a str, PatchError> {
    field(op, name)?.as_str().ok_or_else(|| {
        PatchError::JsonPatchFailed(format!("operation \"{name}\" must be a string"))
    })
}

fn apply_one(doc: &mut Value, op: &Value) -> Result<(), PatchError> {
    let kind = str_field(op, "op")?;
    let path = str_field(op, "path")?;
    match kind {
        "add" => add(doc, path, field(op, "value")?.clone()),
        "remove" => remove(doc, path).map(|_| ()),
        "replace" => {
            let value = field(op, "value")?.clone();
            let target = pointer_mut(doc, path)?;
            *target = value;
            Ok(())
        }
        "move" => {
            let from = str_field(op, "from")?;
            if path.starts_with(from) && path[from.len()..].starts_with('/') {
                return Err(PatchError::JsonPatchFailed(format!(
                    "cannot move \"{from}\" into its own child \"{path}\""
                )));
            }
            let value = remove(doc, from)?;
            add(doc, path, value)
        }
        "copy" => {
            let from = str_field(op, "from")?;
            let value = pointer_mut(doc, from)?.clone();
            add(doc, path, value)
        }
        "test" => {
            let want = field(op, "value")?;
            let got = pointer_mut(doc, path)?;
            if got == want {
                Ok(())
            } else {
                Err(PatchError::JsonPatchFailed(format!(
                    "testing value {path} failed: test failed"
                )))
            }
        }
        other => Err(PatchError::JsonPatchFailed(format!(
            "unexpected kind of operation: {other}"
        ))),
    }
}

/// Splits an RFC 6901 pointer into unescaped tokens.
fn tokens(path: &str) -> Result<Vec<String>, PatchError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    if !path.starts_with('/') {
        return Err(PatchError::JsonPatchFailed(format!(
            "invalid json pointer \"{path}\""
        )));
    }
    Ok(path[1..]
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn missing(path: &str) -> PatchError {
    PatchError::JsonPatchFailed(format!(
        "jsonpatch: the path \"{path}\" does not exist in the document"
    ))
}

fn index(token: &str, len: usize, path: &str, allow_end: bool) -> Result<usize, PatchError> {
    if allow_end && token == "-" {
        return Ok(len);
    }
    let bad = || PatchError::JsonPatchFailed(format!("invalid array index in \"{path}\""));
    if token.len() > 1 && token.starts_with('0') {
        return Err(bad());
    }
    let i: usize = token.parse().map_err(|_| bad())?;
    let limit = if allow_end {
        len
    } else {
        len.saturating_sub(1)
    };
    if i > limit || (!allow_end && len == 0) {
        return Err(PatchError::JsonPatchFailed(format!(
            "index {i} out of bounds in \"{path}\""
        )));
    }
    Ok(i)
}

fn pointer_mut<'a>(doc: &'a mut Value, path: &str) -> Result<&'a mut Value, PatchError> {
    let mut cur = doc;
    for t in tokens(path)? {
        cur = match cur {
            Value::Object(m) => m.get_mut(&t).ok_or_else(|| missing(path))?,
            Value::Array(a) => {
                let i = index(&t, a.len(), path, false)?;
                &mut a[i]
            }
            _ => return Err(missing(path)),
        };
    }
    Ok(cur)
}

fn parent_and_last<'a>(
    doc: &'a mut Value,
    path: &str,
) -> Result<(&'a mut Value, String), PatchError> {
    let mut toks = tokens(path)?;
    let last = toks.pop().ok_or_else(|| missing(path))?;
    let mut cur = doc;
    for t in toks {
        cur = match cur {
            Value::Object(m) => m.get_mut(&t).ok_or_else(|| missing(path))?,
            Value::Array(a) => {
                let i = index(&t, a.len(), path, false)?;
                &mut a[i]
            }
            _ => return Err(missing(path)),
        };
    }
    Ok((cur, last))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), PatchError> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = parent_and_last(doc, path)?;
    match parent {
        Value::Object(m) => {
            m.insert(last, value);
            Ok(())
        }
        Value::Array(a) => {
            let i = index(&last, a.len(), path, true)?;
            a.insert(i, value);
            Ok(())
        }
        _ => Err(missing(path)),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, PatchError> {
    let (parent, last) = parent_and_last(doc, path)?;
    match parent {
        Value::Object(m) => m.remove(&last).ok_or_else(|| missing(path)),
        Value::Array(a) => {
            let i = index(&last, a.len(), path, false)?;
            Ok(a.remove(i))
        }
        _ => Err(missing(path)),
    }
}
