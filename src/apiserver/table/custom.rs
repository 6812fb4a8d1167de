//! Tables for custom resources from a CRD version's `additionalPrinterColumns`, with the
//! JSONPath subset CRDs use: `.a.b`, `['a.b']`, `[0]`, `[*]`, `[?(@.type=="Ready")]`.

use super::format::{human_duration, parse_time};
use super::{IncludeObject, NAME, row};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

/// One `additionalPrinterColumns` entry (deserialises straight from the CRD JSON).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrinterColumn {
    /// Column header.
    pub name: String,
    /// OpenAPI type: `integer`, `number`, `string`, `boolean` or `date`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Simple JSONPath into each object.
    pub json_path: String,
    /// 0 = always shown, >0 = `-o wide`.
    #[serde(default)]
    pub priority: i32,
    /// Human description.
    #[serde(default)]
    pub description: String,
    /// OpenAPI format hint.
    #[serde(default)]
    pub format: String,
}

/// Renders custom resources with their printer columns (Name first; Age when none given,
/// as the CRD defaulting does), ages relative to the current time.
pub fn table_for_custom(
    columns: &[PrinterColumn],
    objects: &[Value],
    include_object: IncludeObject,
) -> Value {
    table_for_custom_at(columns, objects, include_object, Timestamp::now())
}

/// [`table_for_custom`] with an explicit "now".
pub fn table_for_custom_at(
    columns: &[PrinterColumn],
    objects: &[Value],
    include_object: IncludeObject,
    now: Timestamp,
) -> Value {
    let default_age = [PrinterColumn {
        name: "Age".into(),
        type_: "date".into(),
        json_path: ".metadata.creationTimestamp".into(),
        priority: 0,
        description: String::new(),
        format: String::new(),
    }];
    let columns = if columns.is_empty() {
        &default_age[..]
    } else {
        columns
    };
    let mut defs = vec![json!({
        "name": NAME.name, "type": NAME.ty, "format": NAME.format,
        "description": NAME.desc, "priority": 0,
    })];
    defs.extend(columns.iter().map(|c| {
        json!({
            "name": c.name, "type": c.type_, "format": c.format,
            "description": c.description, "priority": c.priority,
        })
    }));
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut cells = vec![o.pointer("/metadata/name").cloned().unwrap_or(Value::Null)];
            cells.extend(columns.iter().map(|c| cell(c, o, now)));
            row(cells, o, include_object)
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": defs,
        "rows": rows,
    })
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn cell(c: &PrinterColumn, obj: &Value, now: Timestamp) -> Value {
    let Some(steps) = parse(&c.json_path) else {
        return Value::Null;
    };
    let results = eval(&steps, obj);
    match results.as_slice() {
        [] => Value::Null,
        [one] => match c.type_.as_str() {
            "date" => match one.as_str().and_then(parse_time) {
                Some(t) => json!(human_duration(now.duration_since(t).as_secs())),
                None => (*one).clone(),
            },
            "string" => json!(text(one)),
            _ => (*one).clone(),
        },
        many => json!(many.iter().map(|v| text(v)).collect::<Vec<_>>().join(" ")),
    }
}

#[derive(Debug, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    All,
    Filter {
        path: Vec<String>,
        negate: bool,
        value: Value,
    },
}

/// Parses the JSONPath subset; `None` for anything else.
fn parse(path: &str) -> Option<Vec<Step>> {
    let p = path.trim();
    let p = p
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(p);
    let p = p.strip_prefix('$').unwrap_or(p);
    let b = p.as_bytes();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'.' => {
                let start = i + 1;
                let mut end = start;
                while end < b.len() && b[end] != b'.' && b[end] != b'[' {
                    end += 1;
                }
                if end > start {
                    steps.push(Step::Field(p[start..end].to_string()));
                }
                i = end;
            }
            b'[' => {
                let close = find_close(p, i)?;
                let inner = p[i + 1..close].trim();
                steps.push(bracket(inner)?);
                i = close + 1;
            }
            _ => return None,
        }
    }
    Some(steps)
}

fn find_close(p: &str, open: usize) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (off, ch) in p[open..].char_indices() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (None, '\'' | '"') => quote = Some(ch),
            (None, ']') => return Some(open + off),
            _ => {}
        }
    }
    None
}

fn unquote(s: &str) -> Option<&str> {
    let s = s.trim();
    s.strip_prefix('\'')
        .and_then(|x| x.strip_suffix('\''))
        .or_else(|| s.strip_prefix('"').and_then(|x| x.strip_suffix('"')))
}

fn bracket(inner: &str) -> Option<Step> {
    if inner == "*" {
        return Some(Step::All);
    }
    if let Ok(n) = inner.parse() {
        return Some(Step::Index(n));
    }
    if let Some(name) = unquote(inner) {
        return Some(Step::Field(name.to_string()));
    }
    let expr = inner.strip_prefix("?(")?.strip_suffix(')')?.trim();
    let (lhs, rhs, negate) = if let Some((l, r)) = expr.split_once("!=") {
        (l, r, true)
    } else {
        let (l, r) = expr.split_once("==")?;
        (l, r, false)
    };
    let path: Vec<String> = lhs
        .trim()
        .strip_prefix("@.")?
        .split('.')
        .map(str::to_string)
        .collect();
    let value = match unquote(rhs) {
        Some(s) => Value::String(s.to_string()),
        None => serde_json::from_str(rhs.trim()).ok()?,
    };
    Some(Step::Filter {
        path,
        negate,
        value,
    })
}

fn eval<'a>(steps: &[Step], root: &'a Value) -> Vec<&'a Value> {
    let mut cur = vec![root];
    for step in steps {
        let mut next = Vec::new();
        for v in cur {
            match step {
                Step::Field(f) => next.extend(v.get(f)),
                Step::Index(n) => next.extend(v.get(*n)),
                Step::All => match v {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
                Step::Filter {
                    path,
                    negate,
                    value,
                } => {
                    if let Value::Array(a) = v {
                        next.extend(a.iter().filter(|item| {
                            let got = path.iter().try_fold(*item, |acc, k| acc.get(k));
                            (got == Some(value)) != *negate
                        }));
                    }
                }
            }
        }
        cur = next;
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonpath_subset_evaluates_fields_indices_and_filters() {
        let obj = json!({"status": {"conditions": [
            {"type": "Synced", "status": "False"},
            {"type": "Ready", "status": "True"}
        ]}, "spec": {"items": [{"n": 1}, {"n": 2}], "a.b": "dotted"}});
        let steps = parse(r#".status.conditions[?(@.type=="Ready")].status"#).unwrap();
        assert_eq!(eval(&steps, &obj), vec![&json!("True")]);
        let steps = parse(".spec.items[1].n").unwrap();
        assert_eq!(eval(&steps, &obj), vec![&json!(2)]);
        let steps = parse("{.spec.items[*].n}").unwrap();
        assert_eq!(eval(&steps, &obj).len(), 2);
        let steps = parse(".spec['a.b']").unwrap();
        assert_eq!(eval(&steps, &obj), vec![&json!("dotted")]);
        assert!(parse("spec").is_none());
    }
}
