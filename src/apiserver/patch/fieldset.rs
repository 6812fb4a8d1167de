//! Field sets as used by server-side apply: the set of paths a manager owns, with the
//! `fieldsV1` wire form (`f:<field>`, `k:<key json>`, `v:<value json>`, `i:<index>`, `.`).

use super::KindPath;
use super::strategy::{ListKind, is_atomic_object, list_kind};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// An object field.
    Field(String),
    /// A list item identified by its key fields (canonical JSON object, keys sorted).
    Key(String),
    /// A set item identified by its value (canonical JSON).
    Value(String),
    /// A list item identified by position (only when it has no key).
    Index(usize),
}

/// A path from the object root.
pub type FieldPath = Vec<PathElement>;

/// A set of owned paths. A path is a member when the manager owns that field or item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet(pub BTreeSet<FieldPath>);

/// Metadata written by the server, never owned by a manager.
const SERVER_META: [&str; 10] = [
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

impl FieldSet {
    /// The set of leaf fields (and keyed list items) present in `obj`.
    pub fn from_value(kind: &KindPath, obj: &Value) -> FieldSet {
        let mut out = BTreeSet::new();
        if let Value::Object(m) = obj {
            for (k, v) in m {
                if k == "apiVersion" || k == "kind" {
                    continue;
                }
                if k == "metadata" {
                    if let Value::Object(meta) = v {
                        for (mk, mv) in meta {
                            if SERVER_META.contains(&mk.as_str()) {
                                continue;
                            }
                            let mut path = vec![
                                PathElement::Field(k.clone()),
                                PathElement::Field(mk.clone()),
                            ];
                            walk(kind, mv, &mut path, &mut out);
                        }
                    }
                    continue;
                }
                let mut path = vec![PathElement::Field(k.clone())];
                walk(kind, v, &mut path, &mut out);
            }
        }
        FieldSet(out)
    }

    /// Whether `path` is a member.
    pub fn contains(&self, path: &FieldPath) -> bool {
        self.0.contains(path)
    }

    /// Whether a member equals `path` or lies below it.
    pub fn contains_prefix(&self, path: &FieldPath) -> bool {
        self.0
            .range(path.clone()..)
            .next()
            .is_some_and(|p| p.starts_with(path))
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `fieldsV1` JSON form.
    pub fn to_fields_v1(&self) -> Value {
        #[derive(Default)]
        struct Node {
            member: bool,
            children: BTreeMap<String, Node>,
        }
        fn render(node: &Node) -> Value {
            let mut m = Map::new();
            if node.member && !node.children.is_empty() {
                m.insert(".".into(), Value::Object(Map::new()));
            }
            for (k, child) in &node.children {
                m.insert(k.clone(), render(child));
            }
            Value::Object(m)
        }
        let mut root = Node::default();
        for path in &self.0 {
            let mut node = &mut root;
            for el in path {
                node = node.children.entry(encode(el)).or_default();
            }
            node.member = true;
        }
        render(&root)
    }

    /// Parses the `fieldsV1` JSON form; unknown entries are skipped.
    pub fn from_fields_v1(v: &Value) -> FieldSet {
        fn go(v: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
            let Value::Object(m) = v else { return };
            if m.is_empty() && !path.is_empty() {
                out.insert(path.clone());
                return;
            }
            for (k, child) in m {
                if k == "." {
                    if !path.is_empty() {
                        out.insert(path.clone());
                    }
                    continue;
                }
                if let Some(el) = decode(k) {
                    path.push(el);
                    go(child, path, out);
                    path.pop();
                }
            }
        }
        let mut out = BTreeSet::new();
        go(v, &mut Vec::new(), &mut out);
        FieldSet(out)
    }
}

fn encode(el: &PathElement) -> String {
    match el {
        PathElement::Field(f) => format!("f:{f}"),
        PathElement::Key(k) => format!("k:{k}"),
        PathElement::Value(v) => format!("v:{v}"),
        PathElement::Index(i) => format!("i:{i}"),
    }
}

fn decode(s: &str) -> Option<PathElement> {
    let (tag, rest) = s.split_once(':')?;
    match tag {
        "f" => Some(PathElement::Field(rest.to_string())),
        // Re-serialise so key order is canonical whatever the writer used.
        "k" => serde_json::from_str::<Value>(rest)
            .ok()
            .map(|v| PathElement::Key(v.to_string())),
        "v" => serde_json::from_str::<Value>(rest)
            .ok()
            .map(|v| PathElement::Value(v.to_string())),
        "i" => rest.parse().ok().map(PathElement::Index),
        _ => None,
    }
}

/// Field names along `path` (list items skipped), the key into the strategy table.
pub(crate) fn names(path: &FieldPath) -> Vec<String> {
    path.iter()
        .filter_map(|e| match e {
            PathElement::Field(f) => Some(f.clone()),
            _ => None,
        })
        .collect()
}

/// The key object of a list item under the given keys, if it has any of them.
pub(crate) fn item_key(item: &Value, keys: &[&str]) -> Option<String> {
    let m = item.as_object()?;
    let mut key: Map<String, Value> = keys
        .iter()
        .filter_map(|k| m.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect();
    // Upstream keys defaulted objects; an applied port without `protocol` is the TCP one.
    if keys.contains(&"protocol") && !key.contains_key("protocol") {
        key.insert("protocol".into(), Value::String("TCP".into()));
    }
    // The first key is mandatory; others (e.g. protocol) are optional upstream defaults.
    if !key.contains_key(keys[0]) {
        return None;
    }
    Some(Value::Object(key).to_string())
}

fn walk(kind: &KindPath, v: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    match v {
        Value::Object(m) if !m.is_empty() && !is_atomic_object(kind, &names(path)) => {
            for (k, child) in m {
                path.push(PathElement::Field(k.clone()));
                walk(kind, child, path, out);
                path.pop();
            }
        }
        Value::Array(items) => match list_kind(kind, &names(path)) {
            ListKind::Set => {
                for item in items {
                    path.push(PathElement::Value(item.to_string()));
                    out.insert(path.clone());
                    path.pop();
                }
            }
            ListKind::Map(keys) if items.iter().all(|i| item_key(i, keys).is_some()) => {
                for item in items {
                    let Some(key) = item_key(item, keys) else {
                        continue;
                    };
                    path.push(PathElement::Key(key));
                    out.insert(path.clone());
                    if let Value::Object(m) = item {
                        for (k, child) in m {
                            path.push(PathElement::Field(k.clone()));
                            walk(kind, child, path, out);
                            path.pop();
                        }
                    }
                    path.pop();
                }
            }
            _ => {
                out.insert(path.clone());
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

fn key_matches(item: &Value, key_json: &str) -> bool {
    let Ok(Value::Object(key)) = serde_json::from_str::<Value>(key_json) else {
        return false;
    };
    key.iter().all(|(k, v)| {
        item.get(k) == Some(v)
            || (k == "protocol" && item.get(k).is_none() && v.as_str() == Some("TCP"))
    })
}

/// The value at `path` in `obj`.
pub(crate) fn get<'a>(obj: &'a Value, path: &FieldPath) -> Option<&'a Value> {
    let mut cur = obj;
    for el in path {
        cur = match (el, cur) {
            (PathElement::Field(f), Value::Object(m)) => m.get(f)?,
            (PathElement::Key(k), Value::Array(a)) => a.iter().find(|i| key_matches(i, k))?,
            (PathElement::Value(v), Value::Array(a)) => a.iter().find(|i| i.to_string() == *v)?,
            (PathElement::Index(i), Value::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Removes the field or item at `path` from `obj` (no-op when absent).
pub(crate) fn remove(obj: &mut Value, path: &FieldPath) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for el in parent_path {
        let next = match (el, cur) {
            (PathElement::Field(f), Value::Object(m)) => m.get_mut(f),
            (PathElement::Key(k), Value::Array(a)) => a.iter_mut().find(|i| key_matches(i, k)),
            (PathElement::Value(v), Value::Array(a)) => a.iter_mut().find(|i| i.to_string() == *v),
            (PathElement::Index(i), Value::Array(a)) => a.get_mut(*i),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match (last, cur) {
        (PathElement::Field(f), Value::Object(m)) => {
            m.remove(f);
        }
        (PathElement::Key(k), Value::Array(a)) => a.retain(|i| !key_matches(i, k)),
        (PathElement::Value(v), Value::Array(a)) => a.retain(|i| *i.to_string() != **v),
        (PathElement::Index(i), Value::Array(a)) if *i < a.len() => {
            a.remove(*i);
        }
        _ => {}
    }
}

/// Renders a path like upstream's structured-merge-diff: `.spec.containers[name="x"].image`.
pub fn path_string(path: &FieldPath) -> String {
    let mut s = String::new();
    for el in path {
        match el {
            PathElement::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            PathElement::Key(k) => {
                let parts: Vec<String> = serde_json::from_str::<Map<String, Value>>(k)
                    .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                    .unwrap_or_default();
                s.push_str(&format!("[{}]", parts.join(",")));
            }
            PathElement::Value(v) => s.push_str(&format!("[={v}]")),
            PathElement::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}
