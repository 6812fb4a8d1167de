//! `meta.k8s.io/v1` Table rendering for `kubectl get`: custom resources by their
//! `additionalPrinterColumns`, built-in kinds with a small set of upstream columns (Name and
//! Age for anything not listed here).

use super::registry::ResourceKind;
use serde_json::{Value, json};

/// What each row's `object` carries (`?includeObject=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => Self::None,
            Some("Object") => Self::Object,
            _ => Self::Metadata,
        }
    }
}

fn col(name: &str, ty: &str, format: &str, priority: i64, desc: &str) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": desc, "priority": priority})
}

/// Upstream-style age: `5s`, `3m`, `2d4h`… of an RFC 3339 timestamp.
pub fn age(ts: Option<&str>) -> String {
    let Some(t) = ts.and_then(|t| t.parse::<jiff::Timestamp>().ok()) else {
        return "<unknown>".into();
    };
    let secs = (jiff::Timestamp::now().as_second() - t.as_second()).max(0);
    human_duration(secs)
}

fn human_duration(secs: i64) -> String {
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        let s = secs % 60;
        if s == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{s}s")
        }
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        let mm = m % 60;
        if mm == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{mm}m")
        }
    } else if h < 48 {
        format!("{h}h")
    } else if d < 8 {
        let hh = h % 24;
        if hh == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{hh}h")
        }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else {
        format!("{}y", d / 365)
    }
}

fn s(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(x)) => x.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn count(v: Option<&Value>) -> i64 {
    v.and_then(Value::as_object).map_or(0, |m| m.len() as i64)
}

/// Evaluate the simple JSONPath subset CRDs use (`.spec.replicas`, `.status.conditions[0].type`,
/// `.status.conditions[?(@.type=="Ready")].status`).
pub fn json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = obj;
    let p = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut segs = Vec::new();
    let (mut depth, mut cur_seg) = (0, String::new());
    for c in p.trim_start_matches('.').chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            '.' if depth == 0 => {
                segs.push(std::mem::take(&mut cur_seg));
                continue;
            }
            _ => {}
        }
        cur_seg.push(c);
    }
    segs.push(cur_seg);
    for seg in &segs {
        if seg.is_empty() {
            continue;
        }
        let (field, index) = match seg.find('[') {
            Some(i) => (&seg[..i], Some(&seg[i + 1..seg.len().saturating_sub(1)])),
            None => (seg.as_str(), None),
        };
        if !field.is_empty() {
            cur = cur.get(field)?;
        }
        if let Some(idx) = index {
            if let Ok(i) = idx.parse::<usize>() {
                cur = cur.get(i)?;
            } else if let Some(filter) = idx.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')'))
            {
                let (k, v) = filter.split_once("==")?;
                let want = v.trim().trim_matches('"').trim_matches('\'');
                cur = cur
                    .as_array()?
                    .iter()
                    .find(|e| e.get(k.trim()).and_then(Value::as_str) == Some(want))?;
            } else {
                return None;
            }
        }
    }
    Some(cur)
}

/// Extra cells of one row, after Name.
type CellsFn = fn(&Value) -> Vec<Value>;

fn columns_and_cells(kind: &ResourceKind, objs: &[Value]) -> (Vec<Value>, Vec<Vec<Value>>) {
    let name_col = col(
        "Name",
        "string",
        "name",
        0,
        "Name must be unique within a namespace.",
    );
    let age_col = col(
        "Age",
        "string",
        "",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    );
    let name = |o: &Value| json!(s(o.pointer("/metadata/name")));
    let agev = |o: &Value| {
        json!(age(o
            .pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)))
    };
    if let Some(crd) = &kind.crd {
        let mut cols = vec![name_col];
        let mut has_age = false;
        for pc in &crd.printer_columns {
            let n = s(pc.get("name"));
            if n.eq_ignore_ascii_case("age") {
                has_age = true;
            }
            cols.push(col(
                &n,
                &s(pc.get("type")),
                &s(pc.get("format")),
                pc.get("priority").and_then(Value::as_i64).unwrap_or(0),
                &s(pc.get("description")),
            ));
        }
        if !has_age {
            cols.push(age_col);
        }
        let rows = objs
            .iter()
            .map(|o| {
                let mut cells = vec![name(o)];
                for pc in &crd.printer_columns {
                    let v = json_path(o, &s(pc.get("jsonPath"))).cloned();
                    let cell = match (s(pc.get("type")).as_str(), v) {
                        ("date", Some(Value::String(t))) => json!(age(Some(&t))),
                        (_, Some(v)) => v,
                        (_, None) => Value::Null,
                    };
                    cells.push(cell);
                }
                if !has_age {
                    cells.push(agev(o));
                }
                cells
            })
            .collect();
        return (cols, rows);
    }
    let (extra_cols, extra): (Vec<Value>, CellsFn) =
        match (kind.group.as_str(), kind.plural.as_str()) {
            ("", "namespaces") => (
                vec![col(
                    "Status",
                    "string",
                    "",
                    0,
                    "The status of the namespace",
                )],
                |o| vec![json!(s(o.pointer("/status/phase")))],
            ),
            ("", "configmaps") => (
                vec![col(
                    "Data",
                    "string",
                    "",
                    0,
                    "Data contains the configuration data.",
                )],
                |o| vec![json!(count(o.get("data")) + count(o.get("binaryData")))],
            ),
            ("", "secrets") => (
                vec![
                    col("Type", "string", "", 0, "The type of the secret"),
                    col("Data", "string", "", 0, "Data contains the secret data."),
                ],
                |o| vec![json!(s(o.get("type"))), json!(count(o.get("data")))],
            ),
            ("", "serviceaccounts") => (vec![], |_| vec![]),
            _ => (vec![], |_| vec![]),
        };
    let mut cols = vec![name_col];
    cols.extend(extra_cols);
    cols.push(age_col);
    let rows = objs
        .iter()
        .map(|o| {
            let mut c = vec![name(o)];
            c.extend(extra(o));
            c.push(agev(o));
            c
        })
        .collect();
    (cols, rows)
}

fn row_object(obj: &Value, include: IncludeObject) -> Value {
    match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Object => obj.clone(),
        IncludeObject::Metadata => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
        }),
    }
}

/// A Table of `objs`. `list_meta` becomes the table's metadata (resourceVersion, continue).
pub fn table(
    kind: &ResourceKind,
    objs: &[Value],
    include: IncludeObject,
    list_meta: Value,
) -> Value {
    let (cols, rows) = columns_and_cells(kind, objs);
    let rows: Vec<Value> = rows
        .into_iter()
        .zip(objs)
        .map(|(cells, o)| json!({"cells": cells, "object": row_object(o, include)}))
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": cols,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_print_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(185), "3m5s");
        assert_eq!(human_duration(3 * 86400 + 3600), "3d1h");
    }

    #[test]
    fn json_path_supports_index_and_filter() {
        let o = json!({"status":{"conditions":[{"type":"A","status":"x"},{"type":"Ready","status":"True"}]}});
        assert_eq!(
            json_path(&o, ".status.conditions[1].type"),
            Some(&json!("Ready"))
        );
        assert_eq!(
            json_path(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
            Some(&json!("True"))
        );
    }

    #[test]
    fn configmap_tables_have_a_data_column() {
        let reg = super::super::registry::Registry::new();
        let cm = reg.find("", "v1", "configmaps").unwrap();
        let t = table(
            &cm,
            &[json!({"metadata":{"name":"a"},"data":{"x":"1","y":"2"}})],
            IncludeObject::Metadata,
            json!({}),
        );
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["Name", "Data", "Age"]);
        assert_eq!(t["rows"][0]["cells"][1], 2);
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }
}
