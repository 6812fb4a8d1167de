//! Table cells compared with what `kubectl get` prints against a real cluster.

use super::*;
use serde_json::json;

fn now() -> Timestamp {
    "2026-11-25T16:00:00Z".parse().unwrap()
}

fn cells(t: &Value, row: usize) -> Vec<Value> {
    t["rows"][row]["cells"].as_array().unwrap().clone()
}

fn headers(t: &Value) -> Vec<String> {
    t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

fn pod(status: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2026-11-25T15:57:00Z"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx"}]},
        "status": status,
    })
}

#[test]
fn human_duration_matches_upstream_examples() {
    assert_eq!(human_duration(5), "5s");
    assert_eq!(human_duration(119), "119s");
    assert_eq!(human_duration(182), "3m2s");
    assert_eq!(human_duration(600), "10m");
    assert_eq!(human_duration(4 * 3600), "4h");
    assert_eq!(human_duration(4 * 3600 + 120), "4h2m");
    assert_eq!(human_duration(20 * 3600), "20h");
    assert_eq!(human_duration(51 * 3600), "2d3h");
    assert_eq!(human_duration(45 * 86400), "45d");
    assert_eq!(human_duration(800 * 86400), "2y70d");
    assert_eq!(human_duration(-1), "0s");
    assert_eq!(human_duration(-5), "<invalid>");
}

#[test]
fn running_pod_row_has_upstream_columns_and_cells() {
    let p = pod(
        json!({"phase": "Running", "podIP": "10.42.0.5", "podIPs": [{"ip": "10.42.0.5"}],
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0,
            "state": {"running": {"startedAt": "2026-11-25T15:57:10Z"}}}]}),
    );
    let t = table_for_at("", "v1", "Pod", &[p], IncludeObject::Metadata, now());
    assert_eq!(
        headers(&t),
        [
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
            "IP",
            "Node",
            "Nominated Node",
            "Readiness Gates"
        ]
    );
    assert_eq!(t["columnDefinitions"][5]["priority"], 1);
    assert_eq!(t["columnDefinitions"][0]["format"], "name");
    assert_eq!(
        cells(&t, 0),
        vec![
            json!("web"),
            json!("1/1"),
            json!("Running"),
            json!("0"),
            json!("3m"),
            json!("10.42.0.5"),
            json!("n1"),
            json!("<none>"),
            json!("<none>")
        ]
    );
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(t["rows"][0]["object"]["metadata"]["name"], "web");
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
}

#[test]
fn crash_looping_pod_shows_reason_and_last_restart_age() {
    let p = pod(json!({"phase": "Running",
        "containerStatuses": [{"name": "c", "ready": false, "restartCount": 5,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "2026-11-25T15:55:00Z"}}}]}));
    let t = table_for_at("", "v1", "Pod", &[p], IncludeObject::None, now());
    let c = cells(&t, 0);
    assert_eq!(c[1], "0/1");
    assert_eq!(c[2], "CrashLoopBackOff");
    assert_eq!(c[3], "5 (5m ago)");
    assert!(t["rows"][0].get("object").is_none());
}

#[test]
fn completed_terminating_creating_and_init_pods() {
    let completed = pod(
        json!({"phase": "Succeeded", "containerStatuses": [{"name": "c", "ready": false,
        "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
    );
    let mut terminating = pod(
        json!({"phase": "Running", "containerStatuses": [{"name": "c", "ready": true,
        "restartCount": 0, "state": {"running": {}}}]}),
    );
    terminating["metadata"]["deletionTimestamp"] = json!("2026-11-25T15:59:00Z");
    let creating = pod(
        json!({"phase": "Pending", "containerStatuses": [{"name": "c", "ready": false,
        "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
    );
    let mut init = pod(
        json!({"phase": "Pending", "initContainerStatuses": [{"name": "i", "ready": false,
        "restartCount": 0, "state": {"running": {}}}]}),
    );
    init["spec"]["initContainers"] = json!([{"name": "i", "image": "busybox"}]);
    let pending = pod(json!({"phase": "Pending"}));
    let t = table_for_at(
        "",
        "v1",
        "Pod",
        &[completed, terminating, creating, init, pending],
        IncludeObject::None,
        now(),
    );
    let status: Vec<Value> = (0..5).map(|r| cells(&t, r)[2].clone()).collect();
    assert_eq!(
        status,
        [
            "Completed",
            "Terminating",
            "ContainerCreating",
            "Init:0/1",
            "Pending"
        ]
    );
}

#[test]
fn node_row_shows_status_roles_and_version() {
    let n = json!({"metadata": {"name": "n1", "creationTimestamp": "2026-11-23T13:00:00Z",
            "labels": {"node-role.kubernetes.io/control-plane": "true", "node-role.kubernetes.io/master": "true"}},
        "spec": {"unschedulable": true},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
            "nodeInfo": {"kubeletVersion": "v1.33.0+k3rs", "osImage": "Debian", "kernelVersion": "6.1",
                "containerRuntimeVersion": "containerd://1.6.20"}}});
    let t = table_for_at("", "v1", "Node", &[n], IncludeObject::None, now());
    assert_eq!(
        cells(&t, 0),
        vec![
            json!("n1"),
            json!("Ready,SchedulingDisabled"),
            json!("control-plane,master"),
            json!("2d3h"),
            json!("v1.33.0+k3rs"),
            json!("10.0.0.1"),
            json!("<none>"),
            json!("Debian"),
            json!("6.1"),
            json!("containerd://1.6.20")
        ]
    );
}

#[test]
fn service_and_deployment_rows() {
    let svc = json!({"metadata": {"name": "web", "creationTimestamp": "2026-11-25T15:59:55Z"},
        "spec": {"type": "NodePort", "clusterIP": "10.43.0.10", "selector": {"app": "web"},
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}, {"port": 53, "protocol": "UDP"}]}});
    let t = table_for_at("", "v1", "Service", &[svc], IncludeObject::None, now());
    assert_eq!(
        cells(&t, 0),
        vec![
            json!("web"),
            json!("NodePort"),
            json!("10.43.0.10"),
            json!("<none>"),
            json!("80:30080/TCP,53/UDP"),
            json!("5s"),
            json!("app=web")
        ]
    );
    let d = json!({"metadata": {"name": "web", "creationTimestamp": "2026-11-25T15:00:00Z"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}},
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
    let t = table_for_at("apps", "v1", "Deployment", &[d], IncludeObject::None, now());
    assert_eq!(
        headers(&t),
        [
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    assert_eq!(
        cells(&t, 0),
        vec![
            json!("web"),
            json!("2/3"),
            json!(3),
            json!(2),
            json!("60m"),
            json!("nginx"),
            json!("nginx:1.27"),
            json!("app=web")
        ]
    );
}

#[test]
fn job_configmap_and_fallback_rows() {
    let job = json!({"metadata": {"name": "pi", "creationTimestamp": "2026-11-25T15:59:00Z"},
        "spec": {"completions": 1, "template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}}},
        "status": {"succeeded": 1, "startTime": "2026-11-25T15:59:00Z", "completionTime": "2026-11-25T15:59:12Z",
            "conditions": [{"type": "Complete", "status": "True"}]}});
    let t = table_for_at("batch", "v1", "Job", &[job], IncludeObject::None, now());
    assert_eq!(
        &cells(&t, 0)[..5],
        &[
            json!("pi"),
            json!("Complete"),
            json!("1/1"),
            json!("12s"),
            json!("60s")
        ]
    );
    let cm = json!({"metadata": {"name": "cfg"}, "data": {"a": "1", "b": "2"}});
    let t = table_for_at("", "v1", "ConfigMap", &[cm], IncludeObject::None, now());
    assert_eq!(
        cells(&t, 0),
        vec![json!("cfg"), json!(2), json!("<unknown>")]
    );
    let w = json!({"metadata": {"name": "w", "creationTimestamp": "2026-11-25T14:00:00Z"}});
    let t = table_for_at(
        "example.com",
        "v1",
        "Widget",
        &[w],
        IncludeObject::Object,
        now(),
    );
    assert_eq!(headers(&t), ["Name", "Age"]);
    assert_eq!(cells(&t, 0), vec![json!("w"), json!("120m")]);
    assert_eq!(t["rows"][0]["object"]["metadata"]["name"], "w");
}

#[test]
fn custom_printer_columns_render_jsonpath_cells() {
    let cols: Vec<PrinterColumn> = serde_json::from_value(json!([
        {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
        {"name": "Size", "type": "integer", "jsonPath": ".spec.size", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    ]))
    .unwrap();
    let obj = json!({"metadata": {"name": "w", "creationTimestamp": "2026-11-25T15:59:00Z"},
        "spec": {"size": 3}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    let t = table_for_custom_at(&cols, &[obj], IncludeObject::None, now());
    assert_eq!(headers(&t), ["Name", "Ready", "Size", "Age"]);
    assert_eq!(t["columnDefinitions"][2]["priority"], 1);
    assert_eq!(
        cells(&t, 0),
        vec![json!("w"), json!("True"), json!(3), json!("60s")]
    );
}
