//! The DaemonSet and StatefulSet controllers against a real `k3rs server --disable-agent`.
//! Nodes are created by the tests; a fake kubelet (in this file) marks bound pods Running and
//! Ready and finishes graceful deletions, so pods are scheduled but never run.

mod common;

use common::TestServer;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::{Instant, sleep};

async fn client(ts: &TestServer) -> Client {
    let kc = kube::config::Kubeconfig::read_from(ts.kubeconfig()).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = Client::try_from(cfg).unwrap();
    let ns: Api<Namespace> = Api::all(client.clone());
    wait_for("the default namespace", 20, || async {
        ns.get_opt("default").await.ok().flatten().is_some()
    })
    .await;
    client
}

async fn wait_for<F, Fut>(what: &str, secs: u64, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(100)).await;
    }
}

async fn add_node(client: &Client, name: &str, taints: Value) {
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {"taints": taints},
        "status": {
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True",
                "lastHeartbeatTime": jiff::Timestamp::now().to_string()}]
        }
    }))
    .unwrap();
    let api: Api<Node> = Api::all(client.clone());
    api.create(&PostParams::default(), &node).await.unwrap();
    // Status is ignored on create: write it like a kubelet would.
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": node.status})),
    )
    .await
    .unwrap();
}

/// Mark one pod Running + Ready, as a kubelet would.
async fn make_ready(api: &Api<Pod>, name: &str) {
    let now = jiff::Timestamp::now().to_string();
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {
        "phase": "Running",
        "podIP": "10.42.0.9",
        "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now}
        ]}})),
    )
    .await
    .unwrap();
}

/// A fake kubelet: while `on`, bound pods become Running + Ready; terminating pods go away.
fn kubelet(client: Client, on: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let pods = Api::<Pod>::all(client.clone())
                .list(&ListParams::default())
                .await
                .map(|l| l.items)
                .unwrap_or_default();
            for p in pods {
                let api: Api<Pod> = Api::namespaced(client.clone(), &p.namespace().unwrap());
                if p.metadata.deletion_timestamp.is_some() {
                    let _ = api
                        .delete(&p.name_any(), &DeleteParams::default().grace_period(0))
                        .await;
                    continue;
                }
                let bound = p.spec.as_ref().and_then(|s| s.node_name.clone()).is_some();
                let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
                if on.load(Ordering::SeqCst) && bound && !running {
                    make_ready(&api, &p.name_any()).await;
                }
            }
            sleep(Duration::from_millis(100)).await;
        }
    })
}

/// `kubectl rollout status`, dumping the object and its pods when it fails.
fn rollout_status(ts: &TestServer, what: &str, timeout: &str) -> String {
    let out = ts.kubectl(&["rollout", "status", what, &format!("--timeout={timeout}")]);
    if !out.status.success() {
        let obj = ts.kubectl(&["get", what, "-o", "yaml"]);
        let pods = ts.kubectl(&["get", "pods", "-o", "wide", "--show-labels"]);
        panic!(
            "rollout status {what}: {}\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&obj.stdout),
            String::from_utf8_lossy(&pods.stdout)
        );
    }
    String::from_utf8(out.stdout).unwrap()
}

fn node_of(p: &Pod) -> Option<String> {
    p.spec.as_ref().and_then(|s| s.node_name.clone())
}

fn image_of(p: &Pod) -> String {
    p.spec.as_ref().unwrap().containers[0]
        .image
        .clone()
        .unwrap_or_default()
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Live (not terminating) pods with label `app`, by name.
async fn live_pods(api: &Api<Pod>, app: &str) -> BTreeMap<String, Pod> {
    api.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| (p.name_any(), p))
        .collect()
}

/// Node name → image of the ready live pods with label `app`.
async fn ready_by_node(api: &Api<Pod>, app: &str) -> BTreeMap<String, String> {
    live_pods(api, app)
        .await
        .values()
        .filter(|p| is_ready(p))
        .filter_map(|p| Some((node_of(p)?, image_of(p))))
        .collect()
}

fn daemonset(name: &str, image: &str, tolerations: Value) -> DaemonSet {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}],
                    "tolerations": tolerations}
            }
        }
    }))
    .unwrap()
}

/// Watch pods of `app` until `done` holds for the live set; return every moment when fewer
/// than `min_ready` live pods were ready.
fn watch_rollout(
    api: Api<Pod>,
    app: &str,
    min_ready: usize,
    done: impl Fn(&[&Pod]) -> bool + Send + 'static,
) -> tokio::task::JoinHandle<Vec<usize>> {
    let cfg = watcher::Config::default().labels(&format!("app={app}"));
    tokio::spawn(async move {
        let mut seen: HashMap<String, Pod> = HashMap::new();
        let mut violations = Vec::new();
        let mut stream = std::pin::pin!(watcher(api, cfg).default_backoff());
        let mut initialised = false;
        while let Some(Ok(ev)) = stream.next().await {
            match ev {
                watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                    seen.insert(p.name_any(), p);
                }
                watcher::Event::Delete(p) => {
                    seen.remove(&p.name_any());
                }
                watcher::Event::InitDone => initialised = true,
                watcher::Event::Init => {}
            }
            if !initialised {
                continue;
            }
            let live: Vec<&Pod> = seen
                .values()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            let ready = live.iter().filter(|p| is_ready(p)).count();
            if ready < min_ready {
                violations.push(ready);
            }
            if done(&live) {
                return violations;
            }
        }
        violations
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemonset_follows_eligible_nodes_and_rolls_within_max_unavailable() {
    let ts = TestServer::start();
    let c = client(&ts).await;
    add_node(&c, "n1", json!([])).await;
    add_node(&c, "n2", json!([])).await;
    add_node(
        &c,
        "n3",
        json!([{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]),
    )
    .await;
    let _kubelet = kubelet(c.clone(), Arc::new(AtomicBool::new(true)));
    let sets: Api<DaemonSet> = Api::namespaced(c.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    sets.create(
        &PostParams::default(),
        &daemonset("agent", "busybox:1", json!([])),
    )
    .await
    .unwrap();
    // A DaemonSet tolerating the taint also runs on n3.
    sets.create(
        &PostParams::default(),
        &daemonset(
            "tolerant",
            "busybox:1",
            json!([{"key": "dedicated", "operator": "Exists"}]),
        ),
    )
    .await
    .unwrap();
    wait_for("agent pods on n1 and n2", 20, || async {
        ready_by_node(&pods, "agent")
            .await
            .keys()
            .collect::<Vec<_>>()
            == ["n1", "n2"]
    })
    .await;
    wait_for("tolerant pods on all three nodes", 20, || async {
        ready_by_node(&pods, "tolerant").await.len() == 3
    })
    .await;
    let agent = live_pods(&pods, "agent").await;
    assert_eq!(agent.len(), 2, "no pod for the tainted node: {agent:?}");
    let p = agent.values().next().unwrap();
    assert!(p.labels().contains_key("controller-revision-hash"));
    assert_eq!(
        p.labels()
            .get("pod-template-generation")
            .map(String::as_str),
        Some("1")
    );
    let spec = p.spec.as_ref().unwrap();
    let tolerations = spec.tolerations.as_ref().unwrap();
    assert!(
        tolerations
            .iter()
            .any(|t| t.key.as_deref() == Some("node.kubernetes.io/unreachable"))
    );
    let terms = &spec
        .affinity
        .as_ref()
        .unwrap()
        .node_affinity
        .as_ref()
        .unwrap()
        .required_during_scheduling_ignored_during_execution
        .as_ref()
        .unwrap()
        .node_selector_terms;
    let field = &terms[0].match_fields.as_ref().unwrap()[0];
    assert_eq!(field.key, "metadata.name");
    assert_eq!(field.values.as_ref().unwrap(), &[node_of(p).unwrap()]);
    let out = rollout_status(&ts, "daemonset/agent", "20s");
    assert!(out.contains("successfully rolled out"), "{out}");

    // A new node gets a pod.
    add_node(&c, "n4", json!([])).await;
    wait_for("an agent pod on the new node", 20, || async {
        ready_by_node(&pods, "agent").await.len() == 3
    })
    .await;
    wait_for("the status to count three ready nodes", 20, || async {
        let st = sets.get("agent").await.unwrap().status.unwrap();
        (
            st.desired_number_scheduled,
            st.current_number_scheduled,
            st.number_ready,
            st.number_misscheduled,
        ) == (3, 3, 3, 0)
    })
    .await;

    // Rolling update: at most one of the three nodes without a ready pod at any moment.
    let watch = watch_rollout(pods.clone(), "agent", 2, |live| {
        live.len() == 3
            && live
                .iter()
                .all(|p| is_ready(p) && image_of(p) == "busybox:2")
    });
    sleep(Duration::from_millis(300)).await;
    sets.patch(
        "agent",
        &PatchParams::default(),
        &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "busybox:2"}]}}}})),
    )
    .await
    .unwrap();
    let violations = tokio::time::timeout(Duration::from_secs(30), watch)
        .await
        .expect("rollout finished")
        .unwrap();
    assert!(
        violations.is_empty(),
        "maxUnavailable violated: {violations:?}"
    );
    let out = rollout_status(&ts, "daemonset/agent", "20s");
    assert!(out.contains("successfully rolled out"), "{out}");
    let history = ts.ok("kubectl", &["rollout", "history", "daemonset/agent"]);
    assert!(
        history
            .lines()
            .filter(|l| l.starts_with(['1', '2']))
            .count()
            == 2,
        "{history}"
    );
    ts.ok("kubectl", &["rollout", "undo", "daemonset/agent"]);
    wait_for("the undo to roll busybox:1 back out", 30, || async {
        let r = ready_by_node(&pods, "agent").await;
        r.len() == 3 && r.values().all(|i| i == "busybox:1")
    })
    .await;

    // A node that goes away loses its pod.
    Api::<Node>::all(c.clone())
        .delete("n4", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("the pod of the deleted node to go", 20, || async {
        let live = live_pods(&pods, "agent").await;
        live.len() == 2 && live.values().all(|p| node_of(p).as_deref() != Some("n4"))
    })
    .await;
    let events: Api<Event> = Api::namespaced(c.clone(), "default");
    let notes: Vec<String> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("agent"))
        .filter_map(|e| Some(format!("{} {}", e.reason?, e.note?)))
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("SuccessfulCreate Created pod: agent-")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("SuccessfulDelete Deleted pod: agent-")),
        "{notes:?}"
    );
}

fn statefulset(name: &str, image: &str) -> StatefulSet {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": 3,
            "serviceName": "nginx",
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image,
                    "volumeMounts": [{"name": "www", "mountPath": "/data"}]}]}
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "www"},
                "spec": {"accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}}}
            }]
        }
    }))
    .unwrap()
}

fn ready_since(p: &Pod) -> jiff::Timestamp {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .and_then(|c| c.last_transition_time.as_ref())
        .unwrap()
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_orders_members_keeps_claims_and_rolls_by_partition() {
    let ts = TestServer::start();
    let c = client(&ts).await;
    add_node(&c, "n1", json!([])).await;
    add_node(&c, "n2", json!([])).await;
    // One volume per claim the sets create (www-web-0..2, www-db-0..2): pods with unbound
    // claims are not scheduled.
    let volumes: Api<PersistentVolume> = Api::all(c.clone());
    for i in 0..6 {
        let pv = json!({"metadata": {"name": format!("pv-{i}")},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                "hostPath": {"path": format!("/tmp/k3rs-sets-pv-{i}")}}});
        volumes
            .create(&PostParams::default(), &serde_json::from_value(pv).unwrap())
            .await
            .unwrap();
    }
    let on = Arc::new(AtomicBool::new(false));
    let _kubelet = kubelet(c.clone(), on.clone());
    let sets: Api<StatefulSet> = Api::namespaced(c.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(c.clone(), "default");
    sets.create(&PostParams::default(), &statefulset("web", "nginx:1"))
        .await
        .unwrap();

    // OrderedReady: web-0 is created (with its claim first) and scheduled; web-1 waits for it.
    wait_for("web-0 to be scheduled", 20, || async {
        pods.get_opt("web-0")
            .await
            .unwrap()
            .is_some_and(|p| node_of(&p).is_some())
    })
    .await;
    assert!(claims.get_opt("www-web-0").await.unwrap().is_some());
    sleep(Duration::from_millis(1500)).await;
    assert!(
        pods.get_opt("web-1").await.unwrap().is_none(),
        "web-1 created before web-0 was ready"
    );
    make_ready(&pods, "web-0").await;
    on.store(true, Ordering::SeqCst);
    wait_for("three ready members", 20, || async {
        live_pods(&pods, "web")
            .await
            .values()
            .filter(|p| is_ready(p))
            .count()
            == 3
    })
    .await;
    let web0 = pods.get("web-0").await.unwrap();
    let web1 = pods.get("web-1").await.unwrap();
    let web2 = pods.get("web-2").await.unwrap();
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().unwrap().0;
    assert!(created(&web1).as_second() >= ready_since(&web0).as_second());
    assert!(created(&web2).as_second() >= ready_since(&web1).as_second());
    assert_eq!(web1.labels()["statefulset.kubernetes.io/pod-name"], "web-1");
    assert_eq!(web1.labels()["apps.kubernetes.io/pod-index"], "1");
    assert!(web1.labels()["controller-revision-hash"].starts_with("web-"));
    let spec = web1.spec.as_ref().unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("web-1"));
    assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
    let vol = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "www")
        .unwrap();
    assert_eq!(
        vol.persistent_volume_claim.as_ref().unwrap().claim_name,
        "www-web-1"
    );
    for i in 0..3 {
        assert!(
            claims
                .get_opt(&format!("www-web-{i}"))
                .await
                .unwrap()
                .is_some()
        );
    }
    let out = rollout_status(&ts, "sts/web", "20s");
    assert!(out.contains("roll out complete"), "{out}");

    // Scale down through the scale subresource: highest ordinal first, claims kept.
    let deletions = {
        let pods = pods.clone();
        tokio::spawn(async move {
            let mut order = Vec::new();
            let cfg = watcher::Config::default().labels("app=web");
            let mut stream = std::pin::pin!(watcher(pods, cfg).default_backoff());
            while let Some(Ok(ev)) = stream.next().await {
                if let watcher::Event::Apply(p) | watcher::Event::Delete(p) = ev {
                    let name = p.name_any();
                    if p.metadata.deletion_timestamp.is_some() && !order.contains(&name) {
                        order.push(name);
                    }
                }
                if order.len() == 2 {
                    return order;
                }
            }
            order
        })
    };
    sleep(Duration::from_millis(300)).await;
    ts.ok("kubectl", &["scale", "sts/web", "--replicas=1"]);
    let order = tokio::time::timeout(Duration::from_secs(20), deletions)
        .await
        .expect("two members deleted")
        .unwrap();
    assert_eq!(order, ["web-2", "web-1"]);
    wait_for("one member", 20, || async {
        live_pods(&pods, "web").await.keys().collect::<Vec<_>>() == ["web-0"]
    })
    .await;
    assert_eq!(
        claims
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    ts.ok("kubectl", &["scale", "sts/web", "--replicas=3"]);
    wait_for("three ready members again", 20, || async {
        live_pods(&pods, "web")
            .await
            .values()
            .filter(|p| is_ready(p))
            .count()
            == 3
    })
    .await;

    // Partitioned rolling update: only ordinals >= 2 move to the new template.
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}},
            "template": {"spec": {"containers": [{"name": "c", "image": "nginx:2",
                "volumeMounts": [{"name": "www", "mountPath": "/data"}]}]}}}})),
    )
    .await
    .unwrap();
    let out = rollout_status(&ts, "sts/web", "20s");
    assert!(out.contains("partitioned roll out complete"), "{out}");
    let images: Vec<(String, String, bool)> = live_pods(&pods, "web")
        .await
        .values()
        .map(|p| (p.name_any(), image_of(p), is_ready(p)))
        .collect();
    assert_eq!(
        images,
        [
            ("web-0".to_string(), "nginx:1".to_string(), true),
            ("web-1".to_string(), "nginx:1".to_string(), true),
            ("web-2".to_string(), "nginx:2".to_string(), true)
        ]
    );
    let st = sets.get("web").await.unwrap().status.unwrap();
    assert_eq!(st.updated_replicas, Some(1));
    assert_ne!(st.current_revision, st.update_revision);

    // Lowering the partition finishes the rollout, highest ordinal first.
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}})),
    )
    .await
    .unwrap();
    let out = rollout_status(&ts, "sts/web", "30s");
    assert!(out.contains("roll out complete"), "{out}");
    let live = live_pods(&pods, "web").await;
    assert!(live.values().all(|p| image_of(p) == "nginx:2"), "{live:?}");
    // The current revision catches up once no old member is left, even a terminating one.
    wait_for(
        "the current revision to become the update revision",
        20,
        || async {
            let st = sets.get("web").await.unwrap().status.unwrap();
            st.current_revision == st.update_revision
                && (st.replicas, st.ready_replicas, st.updated_replicas) == (3, Some(3), Some(3))
        },
    )
    .await;

    let history = ts.ok("kubectl", &["rollout", "history", "sts/web"]);
    assert!(
        history
            .lines()
            .filter(|l| l.starts_with(['1', '2']))
            .count()
            == 2,
        "{history}"
    );

    // Parallel management with claims deleted on scale-down and with the set.
    let mut db = statefulset("db", "postgres:1");
    let spec = db.spec.as_mut().unwrap();
    spec.pod_management_policy = Some("Parallel".into());
    spec.persistent_volume_claim_retention_policy = Some(
        serde_json::from_value(json!({"whenDeleted": "Delete", "whenScaled": "Delete"})).unwrap(),
    );
    sets.create(&PostParams::default(), &db).await.unwrap();
    wait_for("three ready db members", 20, || async {
        live_pods(&pods, "db")
            .await
            .values()
            .filter(|p| is_ready(p))
            .count()
            == 3
    })
    .await;
    let claim_names = || async {
        let mut n: Vec<String> = claims
            .list(&ListParams::default().labels("app=db"))
            .await
            .unwrap()
            .items
            .iter()
            .filter(|c| c.metadata.deletion_timestamp.is_none())
            .map(|c| c.name_any())
            .collect();
        n.sort();
        n
    };
    assert_eq!(claim_names().await, ["www-db-0", "www-db-1", "www-db-2"]);
    ts.ok("kubectl", &["scale", "sts/db", "--replicas=1"]);
    wait_for("the claims of removed members to go", 20, || async {
        claim_names().await == ["www-db-0"]
    })
    .await;
    sets.delete("db", &DeleteParams::default()).await.unwrap();
    wait_for("the claims of a deleted set to go", 20, || async {
        claim_names().await.is_empty()
    })
    .await;
    // The retained claims of `web` are still there.
    assert_eq!(
        claims
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items
            .len(),
        3
    );

    let events: Api<Event> = Api::namespaced(c.clone(), "default");
    let notes: Vec<String> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.note)
        .collect();
    for want in [
        "create Pod web-0 in StatefulSet web successful",
        "create Claim www-web-0 Pod web-0 in StatefulSet web success",
        "delete Pod web-2 in StatefulSet web successful",
    ] {
        assert!(notes.iter().any(|n| n == want), "{want}: {notes:?}");
    }
}
