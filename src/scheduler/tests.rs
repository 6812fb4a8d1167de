//! Table tests for the filters and scores: for each filter, a pod that must fit and one that
//! must not.

use super::filters;
use super::resources::{NodeInfo, build_node_infos};
use super::score;
use super::unschedulable_message;
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};
use std::sync::Arc;

fn node(name: &str, extra: Value) -> Arc<Node> {
    let mut n = json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {
            "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110", "ephemeral-storage": "10Gi"},
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    });
    merge(&mut n, extra);
    Arc::new(serde_json::from_value(n).unwrap())
}

fn pod(name: &str, extra: Value) -> Arc<Pod> {
    let mut p = json!({
        "metadata": {"name": name, "namespace": "default", "labels": {}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    });
    merge(&mut p, extra);
    Arc::new(serde_json::from_value(p).unwrap())
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

fn infos(nodes: &[Arc<Node>], pods: &[Arc<Pod>]) -> Vec<NodeInfo> {
    build_node_infos(nodes, pods, &[])
}

/// Filter `p` against node `target` of the cluster; reasons.
fn check(p: &Pod, nodes: &[Arc<Node>], pods: &[Arc<Pod>], target: &str) -> Vec<String> {
    let all = infos(nodes, pods);
    let n = all.iter().find(|n| n.name() == target).unwrap();
    filters::filter(p, n, &all)
}

fn requests(cpu: &str, mem: &str) -> Value {
    json!({"spec": {"containers": [{"name": "c", "image": "x",
        "resources": {"requests": {"cpu": cpu, "memory": mem}}}]}})
}

#[test]
fn each_filter_admits_a_fitting_pod_and_rejects_a_misfit() {
    let n1 = node(
        "n1",
        json!({"metadata": {"labels": {"disk": "ssd", "zone": "a"}}}),
    );
    let tainted = node(
        "n2",
        json!({"metadata": {"labels": {"zone": "b"}},
               "spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}}),
    );
    let not_ready = node(
        "n3",
        // What the node lifecycle controller makes of `Ready=False` (TaintNodesByCondition).
        json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]},
               "spec": {"taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]}}),
    );
    let cordoned = node("n4", json!({"spec": {"unschedulable": true}}));
    let nodes = vec![
        n1.clone(),
        tainted.clone(),
        not_ready.clone(),
        cordoned.clone(),
    ];
    let busy = pod(
        "busy",
        json!({"metadata": {"labels": {"app": "busy"}},
               "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x",
                 "ports": [{"containerPort": 80, "hostPort": 8080}],
                 "resources": {"requests": {"cpu": "1500m", "memory": "1Gi"}}}]}}),
    );
    let bound = vec![busy];
    let ok: Vec<String> = vec![];
    // (pod, node, expected reasons)
    let table: Vec<(Arc<Pod>, &str, Vec<&str>)> = vec![
        (pod("plain", json!({})), "n1", vec![]),
        (
            pod("big", requests("1", "1Gi")),
            "n1",
            vec!["Insufficient cpu"],
        ),
        (pod("small", requests("500m", "1Gi")), "n1", vec![]),
        (
            pod("mem", requests("100m", "8Gi")),
            "n1",
            vec!["Insufficient memory"],
        ),
        (
            pod(
                "port",
                json!({"spec": {"containers": [{"name": "c", "image": "x",
                "ports": [{"containerPort": 80, "hostPort": 8080}]}]}}),
            ),
            "n1",
            vec!["node(s) didn't have free ports for the requested pod ports"],
        ),
        (
            pod(
                "port2",
                json!({"spec": {"containers": [{"name": "c", "image": "x",
                "ports": [{"containerPort": 80, "hostPort": 8081}]}]}}),
            ),
            "n1",
            vec![],
        ),
        (
            pod("sel", json!({"spec": {"nodeSelector": {"disk": "ssd"}}})),
            "n1",
            vec![],
        ),
        (
            pod(
                "sel-miss",
                json!({"spec": {"nodeSelector": {"disk": "hdd"}}}),
            ),
            "n1",
            vec!["node(s) didn't match Pod's node affinity/selector"],
        ),
        (
            pod(
                "aff",
                json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}]}}}}}),
            ),
            "n1",
            vec!["node(s) didn't match Pod's node affinity/selector"],
        ),
        (
            pod("taint", json!({})),
            "n2",
            vec!["node(s) had untolerated taint {dedicated: db}"],
        ),
        (
            pod(
                "tol",
                json!({"spec": {"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]}}),
            ),
            "n2",
            vec![],
        ),
        (
            pod("nr", json!({})),
            "n3",
            vec!["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"],
        ),
        (
            pod(
                "nr-tol",
                json!({"spec": {"tolerations": [{"operator": "Exists"}]}}),
            ),
            "n3",
            vec![],
        ),
        (
            pod("cordon", json!({})),
            "n4",
            vec!["node(s) were unschedulable"],
        ),
        (
            pod(
                "anti",
                json!({"spec": {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "busy"}}, "topologyKey": "zone"}]}}}}),
            ),
            "n1",
            vec!["node(s) didn't match pod anti-affinity rules"],
        ),
        (
            pod(
                "with",
                json!({"spec": {"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "busy"}}, "topologyKey": "zone"}]}}}}),
            ),
            "n1",
            vec![],
        ),
        (
            pod(
                "with-miss",
                json!({"spec": {"tolerations": [{"operator": "Exists"}], "affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "busy"}}, "topologyKey": "zone"}]}}}}),
            ),
            "n2",
            vec!["node(s) didn't match pod affinity rules"],
        ),
    ];
    for (p, target, want) in table {
        let got = check(&p, &nodes, &bound, target);
        let want: Vec<String> = want.into_iter().map(String::from).collect();
        assert_eq!(
            got,
            want,
            "pod {} on {target}",
            p.metadata.name.as_deref().unwrap()
        );
    }
    assert_eq!(check(&pod("x", json!({})), &nodes, &bound, "n1"), ok);
}

#[test]
fn no_execute_taints_need_a_toleration_too() {
    let n = node(
        "n1",
        json!({"spec": {"taints": [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]}}),
    );
    let nodes = vec![n];
    let plain = pod("p", json!({}));
    assert_eq!(
        check(&plain, &nodes, &[], "n1"),
        vec!["node(s) had untolerated taint {node.kubernetes.io/unreachable: }"]
    );
    let tol = pod(
        "t",
        json!({"spec": {"tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}]}}),
    );
    assert!(check(&tol, &nodes, &[], "n1").is_empty());
}

#[test]
fn too_many_pods_rejects_a_full_node() {
    let n = node("n1", json!({"status": {"allocatable": {"pods": "1"}}}));
    let other = pod("o", json!({"spec": {"nodeName": "n1"}}));
    assert_eq!(
        check(
            &pod("p", json!({})),
            std::slice::from_ref(&n),
            &[other],
            "n1"
        ),
        vec!["Too many pods"]
    );
    assert!(check(&pod("p", json!({})), &[n], &[], "n1").is_empty());
}

#[test]
fn existing_pods_anti_affinity_repels_matching_newcomers() {
    let n1 = node("n1", json!({}));
    let n2 = node("n2", json!({}));
    let guard = pod(
        "guard",
        json!({"spec": {"nodeName": "n1", "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}}}),
    );
    let web = pod("web", json!({"metadata": {"labels": {"app": "web"}}}));
    let nodes = vec![n1, n2];
    assert_eq!(
        check(&web, &nodes, std::slice::from_ref(&guard), "n1"),
        vec!["node(s) didn't satisfy existing pods anti-affinity rules"]
    );
    assert!(check(&web, &nodes, &[guard], "n2").is_empty());
}

#[test]
fn topology_spread_keeps_skew_within_max_skew() {
    let a = node("a", json!({"metadata": {"labels": {"zone": "z1"}}}));
    let b = node("b", json!({"metadata": {"labels": {"zone": "z2"}}}));
    let nolabel = node("c", json!({}));
    let on_a = pod(
        "x",
        json!({"metadata": {"labels": {"app": "s"}}, "spec": {"nodeName": "a"}}),
    );
    let p = pod(
        "p",
        json!({"metadata": {"labels": {"app": "s"}}, "spec": {"topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
             "labelSelector": {"matchLabels": {"app": "s"}}}]}}),
    );
    let nodes = vec![a, b, nolabel];
    assert_eq!(
        check(&p, &nodes, std::slice::from_ref(&on_a), "a"),
        vec!["node(s) didn't match pod topology spread constraints"]
    );
    assert!(check(&p, &nodes, std::slice::from_ref(&on_a), "b").is_empty());
    assert_eq!(check(&p, &nodes, &[on_a], "c").len(), 1);
}

#[test]
fn scoring_prefers_emptier_nodes_preferred_affinity_and_spread() {
    let a = node("a", json!({"metadata": {"labels": {"fast": "yes"}}}));
    let b = node("b", json!({}));
    let heavy = pod(
        "h",
        json!({"spec": {"nodeName": "a", "containers": [{"name": "c", "image": "x",
            "resources": {"requests": {"cpu": "1500m", "memory": "3Gi"}}}]}}),
    );
    let all = infos(&[a.clone(), b.clone()], &[heavy]);
    let refs: Vec<&NodeInfo> = all.iter().collect();
    let p = pod("p", requests("100m", "100Mi"));
    assert_eq!(score::best(&p, &refs), Some(1), "emptier node b wins");

    let all = infos(&[a.clone(), b.clone()], &[]);
    let refs: Vec<&NodeInfo> = all.iter().collect();
    let pref = pod(
        "pref",
        json!({"spec": {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "preference": {"matchExpressions": [{"key": "fast", "operator": "Exists"}]}}]}}}}),
    );
    assert_eq!(score::best(&pref, &refs), Some(0), "preferred node a wins");

    let owner = json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "name": "rs", "uid": "u1", "controller": true}]}});
    let mut sib = owner.clone();
    merge(&mut sib, json!({"spec": {"nodeName": "a"}}));
    let all = infos(&[a, b], &[pod("s1", sib)]);
    let refs: Vec<&NodeInfo> = all.iter().collect();
    assert_eq!(
        score::best(&pod("s2", owner), &refs),
        Some(1),
        "replicas spread"
    );
}

#[test]
fn unschedulable_message_counts_reasons_like_upstream() {
    let reasons = vec![
        vec!["Insufficient cpu".to_string()],
        vec!["node(s) had untolerated taint {a: b}".to_string()],
        vec!["node(s) had untolerated taint {a: b}".to_string()],
    ];
    assert_eq!(
        unschedulable_message(3, &reasons),
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {a: b}. \
         preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    );
}
