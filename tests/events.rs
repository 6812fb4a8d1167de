//! Events are one resource served in two versions: what the controllers publish through
//! `events.k8s.io/v1` shows in `kubectl describe` (core/v1), and the other way round.

mod common;

use common::{KUBECTL, TestServer};
use serde_json::Value;
use std::time::{Duration, Instant};

const DEPLOY_YAML: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: c
        image: nginx:1.25
";

const EVENT_YAML: &str = "apiVersion: events.k8s.io/v1
kind: Event
metadata:
  name: op-event
  namespace: default
eventTime: \"2026-01-01T00:00:00.000000Z\"
reportingController: example.com/operator
reportingInstance: operator-0
action: Reconcile
reason: Reconciled
type: Normal
note: all good
regarding:
  kind: ConfigMap
  name: settings
  namespace: default
";

/// Poll `f` until it returns `Some`, for at most 30 s.
fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn controller_events_show_in_describe_and_both_event_versions_read_the_same_objects() {
    let s = TestServer::start();
    let f = s.file("deploy.yaml", DEPLOY_YAML.as_bytes());
    s.ok(KUBECTL, &["apply", "-f", &f]);

    let described = until("ScalingReplicaSet in describe deployment", || {
        let out = s.ok(KUBECTL, &["describe", "deployment", "web"]);
        out.contains("ScalingReplicaSet").then_some(out)
    });
    assert!(
        described.contains("deployment-controller"),
        "source column missing: {described}"
    );
    let rs_described = until("SuccessfulCreate in describe rs", || {
        let out = s.ok(KUBECTL, &["describe", "rs", "-l", "app=web"]);
        out.contains("SuccessfulCreate").then_some(out)
    });
    assert!(rs_described.contains("Created pod: web-"), "{rs_described}");

    // The same event, through events.k8s.io/v1.
    let list: Value =
        serde_json::from_str(&s.ok(KUBECTL, &["get", "events.v1.events.k8s.io", "-o", "json"]))
            .unwrap();
    let scaling = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["reason"] == "ScalingReplicaSet")
        .unwrap_or_else(|| panic!("no ScalingReplicaSet in {list}"));
    assert_eq!(scaling["apiVersion"], "events.k8s.io/v1");
    assert_eq!(scaling["regarding"]["name"], "web");
    assert_eq!(scaling["regarding"]["kind"], "Deployment");
    assert!(scaling["note"].as_str().unwrap().contains("Scaled up"));
    assert!(scaling.get("involvedObject").is_none());
    // Field selectors of each version name that version's fields.
    let selected = s.ok(
        KUBECTL,
        &[
            "get",
            "events.v1.events.k8s.io",
            "--field-selector",
            "regarding.name=web,reason=ScalingReplicaSet",
            "-o",
            "name",
        ],
    );
    assert_eq!(selected.lines().count(), 1, "{selected}");

    // An event written through events.k8s.io/v1 reads back through core/v1.
    let ef = s.file("event.yaml", EVENT_YAML.as_bytes());
    s.ok(KUBECTL, &["create", "-f", &ef]);
    let core: Value =
        serde_json::from_str(&s.ok(KUBECTL, &["get", "events.v1.", "op-event", "-o", "json"]))
            .unwrap();
    assert_eq!(core["apiVersion"], "v1");
    assert_eq!(core["involvedObject"]["name"], "settings");
    assert_eq!(core["message"], "all good");
    assert_eq!(core["reportingComponent"], "example.com/operator");
    assert!(core.get("note").is_none());
    let by_object = s.ok(
        KUBECTL,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.kind=ConfigMap,involvedObject.name=settings",
            "-o",
            "name",
        ],
    );
    assert_eq!(by_object.trim(), "event/op-event");

    // A patch through core/v1 is visible through events.k8s.io/v1, and a delete through
    // either removes the one object.
    s.ok(
        KUBECTL,
        &[
            "patch",
            "events.v1.",
            "op-event",
            "--type=merge",
            "-p",
            r#"{"message":"patched"}"#,
        ],
    );
    let ev: Value = serde_json::from_str(&s.ok(
        KUBECTL,
        &["get", "events.v1.events.k8s.io", "op-event", "-o", "json"],
    ))
    .unwrap();
    assert_eq!(ev["note"], "patched");
    s.ok(KUBECTL, &["delete", "events.v1.events.k8s.io", "op-event"]);
    s.fails(KUBECTL, &["get", "events.v1.", "op-event"]);
}
