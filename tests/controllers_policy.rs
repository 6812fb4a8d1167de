//! Policy controllers and admission against a real `k3rs server --disable-agent`: namespace
//! termination (custom resources included), PodDisruptionBudgets and the eviction subresource
//! (kubectl drain too), ResourceQuota admission, and events expiry. Pods are never run: the
//! tests set their status like a kubelet would.

mod common;

use common::{KUBECTL, TestServer};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, ResourceQuota};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{
    Api, ApiResource, DynamicObject, EvictParams, ListParams, Patch, PatchParams, PostParams,
};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::{Instant, sleep};

fn step(t0: Instant, what: &str) {
    eprintln!("[{:>6.1}s] {what}", t0.elapsed().as_secs_f64());
}

async fn client(ts: &TestServer) -> Client {
    let kc = kube::config::Kubeconfig::read_from(ts.kubeconfig()).unwrap();
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    // kube retries 429s for minutes by default; the tests want to see them.
    cfg.default_retry = false;
    Client::try_from(cfg).unwrap()
}

async fn wait_for<F, Fut>(what: &str, secs: u64, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(200)).await;
    }
}

fn api_error(e: kube::Error) -> Box<kube::core::Status> {
    match e {
        kube::Error::Api(s) => s,
        other => panic!("expected an API error, got {other}"),
    }
}

async fn create_ns(c: &Client, name: &str) {
    Api::<Namespace>::all(c.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
        )
        .await
        .unwrap();
}

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

fn condition<'a>(
    ns: &'a Namespace,
    t: &str,
) -> Option<&'a k8s_openapi::api::core::v1::NamespaceCondition> {
    ns.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminating_namespace_refuses_content_and_goes_once_its_custom_resources_are_gone() {
    let ts = TestServer::start();
    let c = client(&ts).await;
    ts.ok(
        KUBECTL,
        &["apply", "-f", &ts.file("crd.yaml", CRD.as_bytes())],
    );
    create_ns(&c, "doomed").await;
    let ar = ApiResource {
        group: "example.com".into(),
        version: "v1".into(),
        api_version: "example.com/v1".into(),
        kind: "Widget".into(),
        plural: "widgets".into(),
    };
    let widgets: Api<DynamicObject> = Api::namespaced_with(c.clone(), "doomed", &ar);
    let w: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w", "finalizers": ["example.com/hold"]},
    }))
    .unwrap();
    wait_for("widgets served", 10, || async {
        widgets.create(&PostParams::default(), &w).await.is_ok()
    })
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "doomed");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "a"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();

    ts.ok(KUBECTL, &["delete", "ns", "doomed", "--wait=false"]);
    let listed = ts.ok(KUBECTL, &["get", "ns", "doomed", "--no-headers"]);
    assert!(listed.contains("Terminating"), "{listed}");

    let other: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "b"}})).unwrap();
    let e = api_error(
        cms.create(&PostParams::default(), &other)
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 403);
    assert_eq!(e.reason, "Forbidden");
    assert_eq!(
        e.message,
        "configmaps \"b\" is forbidden: unable to create new content in namespace doomed because it is being terminated"
    );

    // The widget's finalizer holds the namespace; the controller says so.
    let nss: Api<Namespace> = Api::all(c.clone());
    wait_for("finalizers reported", 30, || async {
        let ns = nss.get("doomed").await.unwrap();
        condition(&ns, "NamespaceFinalizersRemaining").is_some_and(|c| {
            c.status == "True"
                && c.reason.as_deref() == Some("SomeFinalizersRemain")
                && c.message.as_deref()
                    == Some("Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances")
        }) && condition(&ns, "NamespaceContentRemaining").is_some_and(|c| {
            c.status == "True"
                && c.message.as_deref()
                    == Some("Some resources are remaining: widgets.example.com has 1 resource instances")
        })
    })
    .await;
    assert!(
        cms.get_opt("a").await.unwrap().is_none(),
        "config map deleted"
    );
    let ns = nss.get("doomed").await.unwrap();
    assert_eq!(
        ns.spec.unwrap().finalizers.unwrap(),
        vec!["kubernetes".to_string()]
    );
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Terminating"));

    widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    wait_for("namespace gone", 30, || async {
        nss.get_opt("doomed").await.unwrap().is_none()
    })
    .await;
    let err = ts.fails(KUBECTL, &["get", "ns", "doomed"]);
    assert!(
        err.contains("NotFound") || err.contains("not found"),
        "{err}"
    );
}

async fn ready_pod(c: &Client, name: &str, node: &str) {
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &p).await.unwrap();
    let now = jiff::Timestamp::now().to_string();
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now}]}})),
    )
    .await
    .unwrap();
}

async fn budget_status(pdbs: &Api<PodDisruptionBudget>) -> Value {
    serde_json::to_value(pdbs.get("web").await.unwrap().status).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disruption_budget_blocks_evictions_and_drain_until_it_allows_one() {
    let t0 = Instant::now();
    let ts = TestServer::start();
    let c = client(&ts).await;
    step(t0, "server up");
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}});
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(c.clone());
    nodes
        .create(
            &PostParams::default(),
            &serde_json::from_value(node).unwrap(),
        )
        .await
        .unwrap();
    // A Ready node, or the node lifecycle controller would mark its pods not ready.
    let now = jiff::Timestamp::now().to_string();
    nodes
        .patch_status(
            "n1",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"conditions": [{"type": "Ready", "status": "True",
                "lastHeartbeatTime": now, "lastTransitionTime": now}]}}),
            ),
        )
        .await
        .unwrap();
    ready_pod(&c, "web-0", "n1").await;
    ready_pod(&c, "web-1", "n1").await;
    step(t0, "pods ready");
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(c.clone(), "default");
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
    }))
    .unwrap();
    pdbs.create(&PostParams::default(), &pdb).await.unwrap();
    wait_for("budget status", 30, || async {
        let s = budget_status(&pdbs).await;
        s["observedGeneration"] == 1 && s["currentHealthy"] == 2
    })
    .await;
    step(t0, "budget status");
    let s = budget_status(&pdbs).await;
    assert_eq!(s["desiredHealthy"], 2);
    assert_eq!(s["expectedPods"], 2);
    assert_eq!(s["disruptionsAllowed"], 0);
    assert_eq!(s["conditions"][0]["type"], "DisruptionAllowed");
    assert_eq!(s["conditions"][0]["status"], "False");
    assert_eq!(s["conditions"][0]["reason"], "InsufficientPods");

    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let e = api_error(
        pods.evict("web-0", &EvictParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 429);
    assert_eq!(e.reason, "TooManyRequests");
    assert_eq!(
        e.message,
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    let cause = &e.details.as_ref().unwrap().causes[0];
    assert_eq!(cause.reason, "DisruptionBudget");
    assert_eq!(
        cause.message,
        "The disruption budget web needs 2 healthy pods and has 2 currently"
    );

    step(t0, "refused");
    let out = ts.run(
        KUBECTL,
        &[
            "drain",
            "n1",
            "--ignore-daemonsets",
            "--force",
            "--timeout=3s",
        ],
    );
    step(t0, "drained");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Cannot evict pod as it would violate the pod's disruption budget"),
        "{err}"
    );
    for p in ["web-0", "web-1"] {
        let pod = pods.get(p).await.unwrap();
        assert!(pod.metadata.deletion_timestamp.is_none(), "{p} kept");
    }

    pdbs.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"minAvailable": 1}})),
    )
    .await
    .unwrap();
    wait_for("one disruption allowed", 30, || async {
        let s = budget_status(&pdbs).await;
        s["observedGeneration"] == 2 && s["disruptionsAllowed"] == 1
    })
    .await;
    step(t0, "allowed");
    pods.evict("web-0", &EvictParams::default()).await.unwrap();
    // Charged at once: the second eviction is refused even before the controller runs.
    let e = api_error(
        pods.evict("web-1", &EvictParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 429);
    // Bound to a node without a kubelet: terminating, marked as evicted.
    let evicted = pods.get("web-0").await.unwrap();
    assert!(evicted.metadata.deletion_timestamp.is_some());
    let marked = evicted
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .any(|c| {
            c.type_ == "DisruptionTarget"
                && c.status == "True"
                && c.reason.as_deref() == Some("EvictionByEvictionAPI")
        });
    assert!(marked, "DisruptionTarget condition");
    assert!(
        pods.get("web-1")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none()
    );

    // Percentages are of the owning controller's scale (pod → ReplicaSet → Deployment).
    let deploy = ts.file(
        "api.yaml",
        b"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  replicas: 4\n  selector:\n    matchLabels: {app: api}\n  template:\n    metadata:\n      labels: {app: api}\n    spec:\n      containers:\n      - {name: c, image: x}\n",
    );
    ts.ok(KUBECTL, &["apply", "-f", &deploy]);
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "api"},
        "spec": {"maxUnavailable": "25%", "selector": {"matchLabels": {"app": "api"}}},
    }))
    .unwrap();
    pdbs.create(&PostParams::default(), &pdb).await.unwrap();
    wait_for("scale-based budget", 30, || async {
        let s = serde_json::to_value(pdbs.get("api").await.unwrap().status).unwrap();
        s["expectedPods"] == 4 && s["desiredHealthy"] == 3 && s["disruptionsAllowed"] == 0
    })
    .await;
}

fn pod_json(name: &str, resources: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "x", "resources": resources}]},
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_refuse_creates_beyond_their_limits_and_store_nothing() {
    let ts = TestServer::start();
    let c = client(&ts).await;
    create_ns(&c, "q").await;
    let quotas: Api<ResourceQuota> = Api::namespaced(c.clone(), "q");
    let q: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "small"},
        "spec": {"hard": {"pods": "2", "requests.cpu": "1"}},
    }))
    .unwrap();
    quotas.create(&PostParams::default(), &q).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(c.clone(), "q");
    // At once, before the controller has written any status: admission counts itself.
    let cpu = json!({"requests": {"cpu": "250m"}});
    pods.create(&PostParams::default(), &pod_json("p1", cpu.clone()))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod_json("p2", cpu.clone()))
        .await
        .unwrap();
    let e = api_error(
        pods.create(&PostParams::default(), &pod_json("p3", cpu.clone()))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 403);
    assert_eq!(e.reason, "Forbidden");
    assert_eq!(
        e.message,
        "pods \"p3\" is forbidden: exceeded quota: small, requested: pods=1, used: pods=2, limited: pods=2"
    );
    assert!(
        pods.get_opt("p3").await.unwrap().is_none(),
        "nothing stored"
    );
    wait_for("quota status", 30, || async {
        let s = quotas
            .get("small")
            .await
            .unwrap()
            .status
            .unwrap_or_default();
        let used = s.used.unwrap_or_default();
        used.get("pods").map(|q| q.0.as_str()) == Some("2")
            && used.get("requests.cpu").map(|q| q.0.as_str()) == Some("500m")
            && s.hard
                .is_some_and(|h| h.get("pods").map(|q| q.0.as_str()) == Some("2"))
    })
    .await;
    // Deleting releases the quota once the controller has recounted.
    pods.delete("p1", &Default::default()).await.unwrap();
    wait_for("released", 30, || async {
        pods.create(&PostParams::default(), &pod_json("p4", cpu.clone()))
            .await
            .is_ok()
    })
    .await;

    // Concurrent creates against the last free units: exactly the quota's worth succeed.
    create_ns(&c, "race").await;
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "race");
    // The root CA config map takes one unit; let it land first.
    wait_for("kube-root-ca.crt", 30, || async {
        cms.get_opt("kube-root-ca.crt").await.unwrap().is_some()
    })
    .await;
    let rq: Api<ResourceQuota> = Api::namespaced(c.clone(), "race");
    let q: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "four"}, "spec": {"hard": {"count/configmaps": "4"}},
    }))
    .unwrap();
    rq.create(&PostParams::default(), &q).await.unwrap();
    let attempts = (0..8).map(|i| {
        let cms = cms.clone();
        async move {
            let cm: ConfigMap =
                serde_json::from_value(json!({"metadata": {"name": format!("cm{i}")}})).unwrap();
            cms.create(&PostParams::default(), &cm).await.is_ok()
        }
    });
    let ok = futures::future::join_all(attempts)
        .await
        .into_iter()
        .filter(|ok| *ok)
        .count();
    assert_eq!(ok, 3);
    let stored = cms.list(&ListParams::default()).await.unwrap().items;
    let mine = stored
        .iter()
        .filter(|c| c.name_any().starts_with("cm"))
        .count();
    assert_eq!(mine, 3);

    // A quota on limits needs every container to declare them.
    create_ns(&c, "lim").await;
    let lq: Api<ResourceQuota> = Api::namespaced(c.clone(), "lim");
    let q: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "limits"}, "spec": {"hard": {"limits.cpu": "2"}},
    }))
    .unwrap();
    lq.create(&PostParams::default(), &q).await.unwrap();
    let lp: Api<Pod> = Api::namespaced(c.clone(), "lim");
    let e = api_error(
        lp.create(&PostParams::default(), &pod_json("nolimits", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 403);
    assert_eq!(
        e.message,
        "pods \"nolimits\" is forbidden: failed quota: limits: must specify limits.cpu for: c"
    );
    lp.create(
        &PostParams::default(),
        &pod_json("limited", json!({"limits": {"cpu": "1"}})),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_deleted_once_older_than_the_ttl() {
    let ts = TestServer::start_with(&["--event-ttl-seconds", "2"]);
    let c = client(&ts).await;
    let now = jiff::Timestamp::now().to_string();
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(c.clone(), "default");
    core.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": {"name": "old.1"},
            "involvedObject": {"kind": "Pod", "name": "x", "namespace": "default"},
            "reason": "Test", "message": "m", "type": "Normal",
            "firstTimestamp": now, "lastTimestamp": now,
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    let new: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(c.clone(), "default");
    new.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": {"name": "new.1"},
            "eventTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
            "reportingController": "test", "reportingInstance": "t",
            "action": "Test", "reason": "Test", "type": "Normal",
            "regarding": {"kind": "Pod", "name": "x", "namespace": "default"},
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    assert!(core.get_opt("old.1").await.unwrap().is_some());
    wait_for("both events expired", 30, || async {
        core.get_opt("old.1").await.unwrap().is_none()
            && new.get_opt("new.1").await.unwrap().is_none()
    })
    .await;
}
