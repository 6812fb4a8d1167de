//! The two API versions of an Event: `core/v1` (the stored form, as upstream keeps every
//! Event under `/registry/events/`) and `events.k8s.io/v1` (a view converted on the way in
//! and out, field for field as upstream's `pkg/apis/events/v1` conversion).
//!
//! Owns: the field mapping. Calls nothing; the registry applies it per kind.

use serde_json::{Map, Value, json};

/// Fields with another name in each version: (core/v1, events.k8s.io/v1).
const RENAMED: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

/// Fields with the same name and meaning in both versions.
const SHARED: &[&str] = &[
    "metadata",
    "related",
    "series",
    "action",
    "reason",
    "type",
    "eventTime",
    "reportingInstance",
];

/// Move the known fields of `obj` to their names in the other version; fields neither
/// version knows are dropped, as decoding into the typed object drops them upstream.
fn convert(obj: Value, to_events: bool, api_version: &str) -> Value {
    let Value::Object(mut src) = obj else {
        return obj;
    };
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!(api_version));
    out.insert("kind".into(), json!("Event"));
    for f in SHARED {
        if let Some(v) = src.remove(*f) {
            out.insert((*f).into(), v);
        }
    }
    for (core, events) in RENAMED {
        let (from, to) = if to_events {
            (core, events)
        } else {
            (events, core)
        };
        if let Some(v) = src.remove(*from) {
            out.insert((*to).into(), v);
        }
    }
    // `involvedObject` is a required (non-pointer) field of core/v1: typed clients reject
    // an Event without it.
    if !to_events && !out.contains_key("involvedObject") {
        out.insert("involvedObject".into(), json!({}));
    }
    Value::Object(out)
}

/// A stored (`core/v1`) Event as `events.k8s.io/v1`.
pub fn core_to_events(obj: Value) -> Value {
    convert(obj, true, "events.k8s.io/v1")
}

/// An `events.k8s.io/v1` Event in its stored (`core/v1`) form.
pub fn events_to_core(obj: Value) -> Value {
    convert(obj, false, "v1")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn core_event() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "web.1", "namespace": "default", "uid": "u1"},
            "involvedObject": {"kind": "Deployment", "name": "web", "namespace": "default",
                               "uid": "d1", "apiVersion": "apps/v1"},
            "related": {"kind": "ReplicaSet", "name": "web-abc"},
            "reason": "ScalingReplicaSet",
            "message": "Scaled up replica set web-abc from 0 to 2",
            "source": {"component": "deployment-controller", "host": "n1"},
            "firstTimestamp": "2026-01-01T00:00:00Z",
            "lastTimestamp": "2026-01-01T00:01:00Z",
            "count": 3,
            "type": "Normal",
            "eventTime": "2026-01-01T00:00:00.123456Z",
            "series": {"count": 2, "lastObservedTime": "2026-01-01T00:01:00.000000Z"},
            "action": "Scale",
            "reportingComponent": "deployment-controller",
            "reportingInstance": "k3rs-1",
        })
    }

    #[test]
    fn a_core_event_survives_the_round_trip_through_events_k8s_io() {
        let ev = core_event();
        assert_eq!(events_to_core(core_to_events(ev.clone())), ev);
    }

    #[test]
    fn every_field_lands_under_its_events_k8s_io_name() {
        let e = core_to_events(core_event());
        assert_eq!(e["apiVersion"], "events.k8s.io/v1");
        assert_eq!(e["kind"], "Event");
        assert_eq!(e["regarding"]["name"], "web");
        assert_eq!(e["note"], "Scaled up replica set web-abc from 0 to 2");
        assert_eq!(e["reportingController"], "deployment-controller");
        assert_eq!(e["reportingInstance"], "k3rs-1");
        assert_eq!(e["deprecatedSource"]["host"], "n1");
        assert_eq!(e["deprecatedFirstTimestamp"], "2026-01-01T00:00:00Z");
        assert_eq!(e["deprecatedLastTimestamp"], "2026-01-01T00:01:00Z");
        assert_eq!(e["deprecatedCount"], 3);
        assert_eq!(e["related"]["name"], "web-abc");
        assert_eq!(e["series"]["count"], 2);
        assert_eq!(e["action"], "Scale");
        assert_eq!(e["reason"], "ScalingReplicaSet");
        assert_eq!(e["type"], "Normal");
        assert_eq!(e["eventTime"], "2026-01-01T00:00:00.123456Z");
        for core_only in [
            "involvedObject",
            "message",
            "source",
            "count",
            "lastTimestamp",
        ] {
            assert!(e.get(core_only).is_none(), "{core_only} left in {e}");
        }
    }

    #[test]
    fn an_events_k8s_io_event_maps_back_to_involved_object_and_message() {
        let c = events_to_core(json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "x", "namespace": "default"},
            "regarding": {"kind": "Pod", "name": "p"},
            "note": "hello", "reportingController": "example.com/op",
            "unknownField": 1,
        }));
        assert_eq!(c["apiVersion"], "v1");
        assert_eq!(c["involvedObject"]["name"], "p");
        assert_eq!(c["message"], "hello");
        assert_eq!(c["reportingComponent"], "example.com/op");
        assert!(c.get("unknownField").is_none());
        assert!(c.get("regarding").is_none());
    }

    #[test]
    fn an_event_without_regarding_still_has_an_involved_object() {
        let c = events_to_core(json!({"metadata": {"name": "x"}}));
        assert_eq!(c["involvedObject"], json!({}));
    }
}
