//! Response bodies of list requests written straight from the stored bytes: a plain list
//! splices each stored object (with its `metadata.resourceVersion` set), a Pod Table renders
//! each row from a partial typed decode and splices the row's `metadata`. Selectors read a
//! pruned decode holding only the fields they test.
//!
//! Every object the splice cannot handle (see [`super::raw_json`]) is decoded with
//! [`from_kv`] and written from the `Value`, so the body always says what the decoding path
//! said. Kinds whose served version differs from the stored one (events.k8s.io Events) must
//! not come here: their bytes are not what the client sees.
//!
//! Owns: list/Table body assembly and selector pruning. Calls `object`, `raw_json`, `table`.

use super::object::{from_kv, set_resource_version};
use super::raw_json;
use super::registry::ResourceKind;
use super::status::ApiError;
use super::table::{self, IncludeObject};
use crate::store::KeyValue;
use jiff::Timestamp;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

fn write_json(out: &mut Vec<u8>, v: &Value) -> Result<(), ApiError> {
    serde_json::to_writer(&mut *out, v)
        .map_err(|e| ApiError::internal(format!("cannot encode list: {e}")))
}

/// Writes one stored object as the decoding path presents it.
fn write_object(kind: &ResourceKind, kv: &KeyValue, out: &mut Vec<u8>) -> Result<(), ApiError> {
    match raw_json::scan(&kv.value) {
        Some(stored) => {
            stored.write_object(&kv.value, kv.mod_revision, out);
            Ok(())
        }
        None => write_json(out, &from_kv(kind, kv)?),
    }
}

/// Writes the `metadata` of one stored object as the decoding path presents it.
fn write_metadata(kind: &ResourceKind, kv: &KeyValue, out: &mut Vec<u8>) -> Result<(), ApiError> {
    match raw_json::scan(&kv.value) {
        Some(stored) => {
            stored.write_metadata(&kv.value, kv.mod_revision, out);
            Ok(())
        }
        None => {
            let obj = from_kv(kind, kv)?;
            let meta = obj
                .get("metadata")
                .cloned()
                .unwrap_or_else(|| Value::Object(Map::new()));
            write_json(out, &meta)
        }
    }
}

fn capacity(items: &[&KeyValue]) -> usize {
    items.iter().map(|kv| kv.value.len() + 32).sum::<usize>() + 256
}

/// `{"kind":"<Kind>List","apiVersion":…,"metadata":<meta>,"items":[…]}` of stored objects.
///
/// # Errors
/// 500 when a stored object is corrupt.
pub fn list(kind: &ResourceKind, items: &[&KeyValue], meta: &Value) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::with_capacity(capacity(items));
    out.extend_from_slice(b"{\"kind\":");
    write_json(&mut out, &Value::String(format!("{}List", kind.kind)))?;
    out.extend_from_slice(b",\"apiVersion\":");
    write_json(&mut out, &Value::String(kind.api_version()))?;
    out.extend_from_slice(b",\"metadata\":");
    write_json(&mut out, meta)?;
    out.extend_from_slice(b",\"items\":[");
    for (i, kv) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_object(kind, kv, &mut out)?;
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

/// A Table of stored objects of a built-in kind with a typed row view
/// ([`table::has_stored_view`]), as [`super::tables::table`] renders the decoded objects.
///
/// # Errors
/// 500 when a stored object is corrupt.
pub fn table(
    kind: &ResourceKind,
    items: &[&KeyValue],
    include: IncludeObject,
    meta: &Value,
    now: Timestamp,
) -> Result<Vec<u8>, ApiError> {
    // Rows carry cells and at most the metadata: far smaller than the objects.
    let mut out = Vec::with_capacity(capacity(items) / 2);
    out.extend_from_slice(b"{\"kind\":\"Table\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":");
    write_json(&mut out, meta)?;
    out.extend_from_slice(b",\"columnDefinitions\":");
    write_json(
        &mut out,
        &table::column_definitions(&kind.group, &kind.kind),
    )?;
    out.extend_from_slice(b",\"rows\":[");
    for (i, kv) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let cells = match table::stored_cells(&kind.group, &kind.kind, &kv.value, now) {
            Some(cells) => cells,
            None => table::cells_at(&kind.group, &kind.kind, &from_kv(kind, kv)?, now),
        };
        out.extend_from_slice(b"{\"cells\":");
        write_json(&mut out, &Value::Array(cells))?;
        match include {
            IncludeObject::None => {}
            IncludeObject::Metadata => {
                out.extend_from_slice(
                    b",\"object\":{\"kind\":\"PartialObjectMetadata\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":",
                );
                write_metadata(kind, kv, &mut out)?;
                out.push(b'}');
            }
            IncludeObject::Object => {
                out.extend_from_slice(b",\"object\":");
                write_object(kind, kv, &mut out)?;
            }
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

/// Which fields of an object a selector reads: a tree of member names; a leaf keeps the
/// whole value below it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Fields(Vec<(String, Fields)>);

impl Fields {
    /// Everything (the root is a leaf).
    fn is_leaf(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds one path; an empty path keeps everything.
    fn add(&mut self, path: &[&str]) {
        let Some((first, rest)) = path.split_first() else {
            self.0.clear();
            return;
        };
        match self.0.iter_mut().find(|(k, _)| k == first) {
            // Already kept whole.
            Some((_, sub)) if sub.is_leaf() => {}
            Some((_, sub)) if rest.is_empty() => sub.0.clear(),
            Some((_, sub)) => sub.add(rest),
            None => {
                let mut sub = Fields::default();
                if !rest.is_empty() {
                    sub.add(rest);
                }
                self.0.push(((*first).to_string(), sub));
            }
        }
    }

    /// The fields a label selector plus field selector keys read (`None`: the whole object).
    pub fn for_selectors<'k>(
        labels: bool,
        field_keys: impl Iterator<Item = &'k str>,
    ) -> Option<Self> {
        let mut f = Fields::default();
        let mut any = false;
        if labels {
            f.add(&["metadata", "labels"]);
            any = true;
        }
        for key in field_keys {
            // `~` has JSON-pointer meaning in the selector's lookup; keep it simple.
            if key.contains('~') {
                return None;
            }
            // core/v1 Events select `source` by its component; keep `source` whole.
            let path: Vec<&str> = key.split('.').collect();
            f.add(&path);
            any = true;
        }
        any.then_some(f)
    }
}

/// Decodes `bytes` keeping only `fields` (a `Value` equal to the full decode at every path
/// in `fields`), then sets `metadata.resourceVersion` as [`from_kv`] does.
///
/// # Errors
/// 500 when the object is corrupt.
pub fn pruned(bytes: &[u8], fields: &Fields, rev: i64) -> Result<Value, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let mut v = Prune(fields)
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| ApiError::internal(format!("stored object is corrupt: {e}")))?;
    set_resource_version(&mut v, rev);
    Ok(v)
}

struct Prune<'f>(&'f Fields);

impl<'de> DeserializeSeed<'de> for Prune<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if self.0.is_leaf() {
            return Value::deserialize(d);
        }
        d.deserialize_any(self)
    }
}

use serde::Deserialize as _;

/// Non-objects are kept whole (a selector path may index into an array); objects keep only
/// the members named in the tree.
impl<'de> Visitor<'de> for Prune<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element::<Value>()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            match self.0.0.iter().find(|(k, _)| *k == key) {
                Some((_, sub)) => {
                    let v = map.next_value_seed(Prune(sub))?;
                    out.insert(key, v);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::registry::Registry;
    use crate::apiserver::selectors::{FieldSelector, LabelSelector};
    use serde_json::json;

    fn kv(v: &Value, rev: i64) -> KeyValue {
        KeyValue {
            key: b"/registry/pods/default/x".to_vec(),
            create_revision: 1,
            mod_revision: rev,
            version: 1,
            value: serde_json::to_vec(v).unwrap(),
            lease: 0,
        }
    }

    fn pods() -> Vec<Value> {
        vec![
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "a", "namespace": "default", "labels": {"app": "web"},
                    "creationTimestamp": "2026-11-25T15:57:00Z", "uid": "u1",
                    "managedFields": [{"manager": "kubectl", "operation": "Update",
                        "fieldsV1": {"f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {}}}}}]},
                "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx"}],
                    "initContainers": [{"name": "i", "image": "busybox"}]},
                "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.1"}],
                    "initContainerStatuses": [{"name": "i", "restartCount": 0,
                        "state": {"terminated": {"exitCode": 0}}}],
                    "containerStatuses": [{"name": "c", "ready": true, "restartCount": 2,
                        "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-11-25T15:58:00Z"}},
                        "state": {"running": {}}}]}}),
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "b", "namespace": "default", "resourceVersion": "3",
                    "deletionTimestamp": "2026-11-25T15:59:00Z"},
                "spec": {"containers": [{"name": "c", "image": "nginx"}],
                    "readinessGates": [{"conditionType": "x"}]},
                "status": {"phase": "Pending", "nominatedNodeName": "n2"}}),
            // Not splicable (escaped key) and not viewable (escaped name): the Value path.
            json!({"kind": "Pod", "metadata": {"name": "c\"q", "we\"ird": 1}, "spec": {}}),
            json!({"kind": "Pod", "spec": {}}),
        ]
    }

    #[test]
    fn a_spliced_list_equals_the_decoded_list() {
        let reg = Registry::new();
        let kind = reg.find("", "v1", "pods").unwrap();
        let kvs: Vec<KeyValue> = pods().iter().zip(10..).map(|(p, r)| kv(p, r)).collect();
        let refs: Vec<&KeyValue> = kvs.iter().collect();
        let meta = json!({"resourceVersion": "99"});
        // The API-written pods take the splice path (the odd ones fall back).
        assert!(raw_json::scan(&kvs[0].value).is_some());
        assert!(raw_json::scan(&kvs[1].value).is_some());
        assert!(raw_json::scan(&kvs[2].value).is_none());
        let body: Value = serde_json::from_slice(&list(&kind, &refs, &meta).unwrap()).unwrap();
        let items: Vec<Value> = kvs.iter().map(|kv| from_kv(&kind, kv).unwrap()).collect();
        assert_eq!(
            body,
            json!({"kind": "PodList", "apiVersion": "v1", "metadata": meta, "items": items})
        );
    }

    #[test]
    fn a_table_from_stored_pods_equals_the_table_of_decoded_pods() {
        let reg = Registry::new();
        let kind = reg.find("", "v1", "pods").unwrap();
        let kvs: Vec<KeyValue> = pods().iter().zip(10..).map(|(p, r)| kv(p, r)).collect();
        let refs: Vec<&KeyValue> = kvs.iter().collect();
        let items: Vec<Value> = kvs.iter().map(|kv| from_kv(&kind, kv).unwrap()).collect();
        let now: Timestamp = "2026-11-25T16:00:00Z".parse().unwrap();
        let meta = json!({"resourceVersion": "99", "continue": "x"});
        for include in [
            IncludeObject::None,
            IncludeObject::Metadata,
            IncludeObject::Object,
        ] {
            let body = table(&kind, &refs, include, &meta, now).unwrap();
            let got: Value = serde_json::from_slice(&body).unwrap();
            let mut want = table::table_for_at("", "v1", "Pod", &items, include, now);
            want["metadata"] = meta.clone();
            assert_eq!(got, want, "{include:?}");
        }
    }

    #[test]
    fn pruned_objects_match_selectors_like_decoded_ones() {
        let objs = pods();
        for (labels, fields) in [
            ("app=web", ""),
            ("!app", ""),
            ("", "metadata.name=b"),
            ("", "spec.nodeName=n1,status.phase!=Pending"),
            ("app", "metadata.namespace=default"),
            ("", "metadata.resourceVersion=11"),
            ("", "spec.containers=x"),
            ("", "status=x"),
        ] {
            let l = LabelSelector::parse(labels).unwrap();
            let f = FieldSelector::parse(fields).unwrap();
            let prune = Fields::for_selectors(!l.is_empty(), f.keys()).unwrap();
            for (o, rev) in objs.iter().zip(10..) {
                let full = from_kv(
                    &Registry::new().find("", "v1", "pods").unwrap(),
                    &kv(o, rev),
                )
                .unwrap();
                let p = pruned(&serde_json::to_vec(o).unwrap(), &prune, rev).unwrap();
                assert_eq!(
                    l.matches(&p) && f.matches(&p),
                    l.matches(&full) && f.matches(&full),
                    "{labels} {fields} {o}"
                );
            }
        }
        assert!(pruned(b"{\"a\":", &Fields::default(), 1).is_err());
    }

    #[test]
    fn prune_trees_merge_paths() {
        let mut f = Fields::default();
        f.add(&["metadata", "labels"]);
        f.add(&["metadata", "name"]);
        f.add(&["metadata"]);
        f.add(&["metadata", "uid"]);
        assert_eq!(f.0.len(), 1);
        assert!(f.0[0].1.is_leaf());
        assert_eq!(Fields::for_selectors(false, std::iter::empty()), None);
        assert_eq!(Fields::for_selectors(false, ["a~1b"].into_iter()), None);
    }
}
