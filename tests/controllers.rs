//! The scheduler and controllers against a real `k3rs server --disable-agent`. Node objects are
//! created by the tests; a fake kubelet (in this file) marks bound pods Running/Ready and
//! finishes graceful deletions, so pods are scheduled but never run.

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Namespace, Node, Pod, Service, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::time::{Instant, sleep};

struct Cluster {
    child: Child,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    client: Client,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    // The child is waited for in `Drop` (or right before the panic below).
    #[allow(clippy::zombie_processes)]
    async fn start(extra: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig.yaml");
        let port = free_port().to_string();
        // Each server needs its own raft port (the default 2380 would collide).
        let raft_port = free_port().to_string();
        let etcd = format!("127.0.0.1:{}", free_port());
        let mut child = Command::new(env!("CARGO_BIN_EXE_k3rs"))
            .args(["server", "-d"])
            .arg(dir.path())
            .args(["--https-listen-port", &port, "-o"])
            .arg(&kubeconfig)
            .arg("--disable-agent")
            .args([
                "--raft-listen-port",
                &raft_port,
                "--etcd-listen-address",
                &etcd,
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if kubeconfig.exists() {
                if let Ok(kc) = kube::config::Kubeconfig::read_from(&kubeconfig) {
                    if let Ok(cfg) =
                        kube::Config::from_custom_kubeconfig(kc, &Default::default()).await
                    {
                        let client = Client::try_from(cfg).unwrap();
                        if Api::<Namespace>::all(client.clone())
                            .get_opt("default")
                            .await
                            .ok()
                            .flatten()
                            .is_some()
                        {
                            return Cluster {
                                child,
                                _dir: dir,
                                kubeconfig,
                                client,
                            };
                        }
                    }
                }
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("server did not come up");
            }
            sleep(Duration::from_millis(100)).await;
        }
    }

    fn kubectl(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("kubectl")
            .env("KUBECONFIG", &self.kubeconfig)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    async fn node(&self, name: &str, extra: Value) {
        let mut n = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {},
            "status": {
                "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True",
                    "lastHeartbeatTime": jiff::Timestamp::now().to_string()}]
            }
        });
        merge(&mut n, extra);
        let node: Node = serde_json::from_value(n).unwrap();
        let api: Api<Node> = Api::all(self.client.clone());
        let created = api.create(&PostParams::default(), &node).await.unwrap();
        // Status is ignored on create: write it like a kubelet would.
        api.patch_status(
            &created.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": node.status})),
        )
        .await
        .unwrap();
    }

    /// A fake kubelet: bound pods become Running + Ready with an IP; terminating pods go away.
    fn kubelet(&self) -> tokio::task::JoinHandle<()> {
        let client = self.client.clone();
        tokio::spawn(async move {
            let mut ip = 1u32;
            loop {
                let pods = Api::<Pod>::all(client.clone())
                    .list(&ListParams::default())
                    .await
                    .map(|l| l.items)
                    .unwrap_or_default();
                for p in pods {
                    let api: Api<Pod> = Api::namespaced(client.clone(), &p.namespace().unwrap());
                    let bound = p.spec.as_ref().and_then(|s| s.node_name.clone()).is_some();
                    if p.metadata.deletion_timestamp.is_some() {
                        let _ = api
                            .delete(&p.name_any(), &DeleteParams::default().grace_period(0))
                            .await;
                        continue;
                    }
                    let running =
                        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
                    if bound && !running {
                        ip += 1;
                        let now = jiff::Timestamp::now().to_string();
                        let _ = api
                            .patch_status(
                                &p.name_any(),
                                &PatchParams::default(),
                                &Patch::Merge(json!({"status": {
                                    "phase": "Running",
                                    "podIP": format!("10.42.{}.{}", ip / 250, ip % 250 + 1),
                                    "conditions": [
                                        {"type": "Ready", "status": "True", "lastTransitionTime": now},
                                        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now}
                                    ]}})),
                            )
                            .await;
                    }
                }
                sleep(Duration::from_millis(100)).await;
            }
        })
    }
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

fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]}
            }
        }
    }))
    .unwrap()
}

async fn ready_pods(api: &Api<Pod>, app: &str) -> Vec<Pod> {
    api.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()
                && p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .collect()
}

fn image_of(p: &Pod) -> String {
    p.spec.as_ref().unwrap().containers[0]
        .image
        .clone()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_creates_scales_rolls_within_surge_and_undoes() {
    let c = Cluster::start(&[]).await;
    for n in ["n1", "n2", "n3"] {
        c.node(n, json!({})).await;
    }
    let _kubelet = c.kubelet();
    let deps: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    deps.create(&PostParams::default(), &deployment("web", 4, "nginx:1"))
        .await
        .unwrap();
    wait_for("4 ready pods", 20, || async {
        ready_pods(&pods, "web").await.len() == 4
    })
    .await;
    let rs: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
    let sets = rs.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(sets.len(), 1);
    let hash = sets[0].labels().get("pod-template-hash").unwrap().clone();
    assert_eq!(sets[0].name_any(), format!("web-{hash}"));
    // Pods spread over the three nodes.
    let nodes: std::collections::HashSet<String> = ready_pods(&pods, "web")
        .await
        .iter()
        .map(|p| p.spec.as_ref().unwrap().node_name.clone().unwrap())
        .collect();
    assert_eq!(nodes.len(), 3, "replicas spread over nodes");

    // Scale up and down.
    let scale = |n: i32| {
        let deps = deps.clone();
        async move {
            deps.patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": n}})),
            )
            .await
            .unwrap();
        }
    };
    scale(6).await;
    wait_for("6 ready pods", 20, || async {
        ready_pods(&pods, "web").await.len() == 6
    })
    .await;
    scale(4).await;
    wait_for("4 pods after scale down", 20, || async {
        let all = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap();
        all.items.len() == 4
    })
    .await;
    let (ok, out) = c.kubectl(&["rollout", "status", "deployment/web", "--timeout=20s"]);
    assert!(ok, "rollout status: {out}");

    // Rolling update observed through a watch: never more than 4+1 pods, never fewer than
    // 4-1 ready.
    let watch = {
        let pods = pods.clone();
        tokio::spawn(async move {
            let mut seen: HashMap<String, Pod> = HashMap::new();
            let mut violations = Vec::new();
            let stream =
                watcher(pods, watcher::Config::default().labels("app=web")).default_backoff();
            let mut stream = std::pin::pin!(stream);
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
                let ready = live
                    .iter()
                    .filter(|p| {
                        p.status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|c| {
                                c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                            })
                    })
                    .count();
                if live.len() > 5 || ready < 3 {
                    violations.push((live.len(), ready));
                }
                let done =
                    live.len() == 4 && ready == 4 && live.iter().all(|p| image_of(p) == "nginx:2");
                if done {
                    return violations;
                }
            }
            violations
        })
    };
    sleep(Duration::from_millis(300)).await;
    deps.patch(
        "web",
        &PatchParams::default(),
        &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "nginx:2"}]}}}})),
    )
    .await
    .unwrap();
    let violations = tokio::time::timeout(Duration::from_secs(30), watch)
        .await
        .expect("rollout finished")
        .unwrap();
    assert!(
        violations.is_empty(),
        "surge/unavailable violated: {violations:?}"
    );
    let (ok, out) = c.kubectl(&["rollout", "status", "deployment/web", "--timeout=20s"]);
    assert!(ok && out.contains("successfully rolled out"), "{out}");
    let d = deps.get("web").await.unwrap();
    assert_eq!(
        d.annotations()
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("2")
    );
    let reasons: Vec<String> = d
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .filter_map(|c| c.reason)
        .collect();
    assert!(
        reasons.contains(&"NewReplicaSetAvailable".to_string()),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&"MinimumReplicasAvailable".to_string()),
        "{reasons:?}"
    );

    // Undo goes back to nginx:1 as revision 3.
    let (ok, out) = c.kubectl(&["rollout", "undo", "deployment/web"]);
    assert!(ok, "rollout undo: {out}");
    let (ok, out) = c.kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert!(ok, "rollout status after undo: {out}");
    wait_for("all pods back on nginx:1", 20, || async {
        let r = ready_pods(&pods, "web").await;
        r.len() == 4 && r.iter().all(|p| image_of(p) == "nginx:1")
    })
    .await;
    let d = deps.get("web").await.unwrap();
    assert_eq!(
        d.annotations()
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("3")
    );
    assert_eq!(
        rs.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );
    // ScalingReplicaSet events were recorded.
    let evs: Api<Event> = Api::namespaced(c.client.clone(), "default");
    let evs = evs.list(&ListParams::default()).await.unwrap().items;
    assert!(
        evs.iter()
            .any(|e| e.reason.as_deref() == Some("ScalingReplicaSet"))
    );
    assert!(
        evs.iter()
            .any(|e| e.reason.as_deref() == Some("SuccessfulCreate"))
    );
    assert!(evs.iter().any(|e| e.reason.as_deref() == Some("Scheduled")));
}

fn replicaset(name: &str, replicas: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"rs": name}},
            "template": {
                "metadata": {"labels": {"rs": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}
            }
        }
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascading_deletion_works_in_background_foreground_and_orphan_modes() {
    // No nodes: pods stay pending and delete immediately.
    let c = Cluster::start(&[]).await;
    let rs: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    for n in ["bg", "fg", "orphan"] {
        rs.create(&PostParams::default(), &replicaset(n, 2))
            .await
            .unwrap();
    }
    let count = |sel: &'static str| {
        let pods = pods.clone();
        async move {
            pods.list(&ListParams::default().labels(sel))
                .await
                .unwrap()
                .items
        }
    };
    for sel in ["rs=bg", "rs=fg", "rs=orphan"] {
        wait_for(sel, 15, || async { count(sel).await.len() == 2 }).await;
    }
    rs.delete("bg", &DeleteParams::background()).await.unwrap();
    rs.delete("fg", &DeleteParams::foreground()).await.unwrap();
    rs.delete("orphan", &DeleteParams::orphan()).await.unwrap();
    wait_for("background: pods collected", 15, || async {
        count("rs=bg").await.is_empty()
    })
    .await;
    wait_for("foreground: owner gone after its pods", 15, || async {
        rs.get_opt("fg").await.unwrap().is_none()
    })
    .await;
    assert!(count("rs=fg").await.is_empty());
    wait_for("orphan: owner gone", 15, || async {
        rs.get_opt("orphan").await.unwrap().is_none()
    })
    .await;
    // The orphans lose their owner reference (on a loaded machine a moment after the owner).
    wait_for("orphan: pods released", 15, || async {
        let left = count("rs=orphan").await;
        left.len() == 2 && left.iter().all(|p| p.owner_references().is_empty())
    })
    .await;
    sleep(Duration::from_secs(2)).await;
    let left = count("rs=orphan").await;
    assert_eq!(left.len(), 2, "orphaned pods survive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_namespaces_get_service_account_and_root_ca_and_deletion_empties_them() {
    let c = Cluster::start(&[]).await;
    let nss: Api<Namespace> = Api::all(c.client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "scratch"}})).unwrap(),
    )
    .await
    .unwrap();
    let sas: Api<ServiceAccount> = Api::namespaced(c.client.clone(), "scratch");
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "scratch");
    wait_for("default service account", 10, || async {
        sas.get_opt("default").await.unwrap().is_some()
    })
    .await;
    wait_for("kube-root-ca.crt", 10, || async {
        cms.get_opt("kube-root-ca.crt")
            .await
            .unwrap()
            .and_then(|c| c.data)
            .is_some_and(|d| {
                d.get("ca.crt")
                    .is_some_and(|c| c.contains("BEGIN CERTIFICATE"))
            })
    })
    .await;
    // Deleted: it comes back.
    sas.delete("default", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("default service account recreated", 10, || async {
        sas.get_opt("default").await.unwrap().is_some()
    })
    .await;
    nss.delete("scratch", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("namespace gone", 15, || async {
        nss.get_opt("scratch").await.unwrap().is_none()
    })
    .await;
    assert!(
        cms.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_deletion_goes_through_terminating_and_the_finalizer() {
    let c = Cluster::start(&[]).await;
    let nss: Api<Namespace> = Api::all(c.client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "term"}})).unwrap(),
    )
    .await
    .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "term");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap(),
    )
    .await
    .unwrap();
    nss.delete("term", &DeleteParams::default()).await.unwrap();
    let ns = nss
        .get("term")
        .await
        .expect("namespace still present while terminating");
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Terminating"));
    wait_for("namespace finalized", 15, || async {
        nss.get_opt("term").await.unwrap().is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unschedulable_pods_report_why_and_bind_once_a_node_fits() {
    let c = Cluster::start(&[]).await;
    c.node(
        "small",
        json!({"status": {"allocatable": {"cpu": "1"}, "capacity": {"cpu": "1"}}}),
    )
    .await;
    for n in ["t1", "t2"] {
        c.node(
            n,
            json!({"spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}}),
        )
        .await;
    }
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "big"},
        "spec": {"containers": [{"name": "c", "image": "x",
            "resources": {"requests": {"cpu": "2"}}}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let want = "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {dedicated: db}. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.";
    wait_for("PodScheduled=False", 10, || async {
        pods.get("big")
            .await
            .unwrap()
            .status
            .and_then(|s| s.conditions)
            .is_some_and(|c| {
                c.iter().any(|c| {
                    c.type_ == "PodScheduled"
                        && c.status == "False"
                        && c.reason.as_deref() == Some("Unschedulable")
                        && c.message.as_deref() == Some(want)
                })
            })
    })
    .await;
    let evs: Api<Event> = Api::namespaced(c.client.clone(), "default");
    wait_for("FailedScheduling event", 10, || async {
        evs.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("FailedScheduling") && e.note.as_deref() == Some(want)
            })
    })
    .await;
    // A node that fits appears: the pod is retried and bound there.
    c.node("large", json!({})).await;
    wait_for("bound to large", 10, || async {
        pods.get("big")
            .await
            .unwrap()
            .spec
            .unwrap()
            .node_name
            .as_deref()
            == Some("large")
    })
    .await;
    wait_for("Scheduled event", 10, || async {
        evs.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("Scheduled"))
    })
    .await;
    // The leader lease is held.
    let lease = Api::<Lease>::namespaced(c.client.clone(), "kube-system")
        .get("k3rs-controllers")
        .await
        .unwrap();
    assert!(lease.spec.unwrap().holder_identity.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_node_is_tainted_unreachable_and_its_pods_evicted_after_toleration() {
    let c = Cluster::start(&[
        "--node-monitor-grace-period",
        "2",
        "--default-eviction-seconds",
        "1000",
    ])
    .await;
    c.node("n1", json!({})).await;
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    for (name, tol) in [
        (
            "short",
            json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                   "effect": "NoExecute", "tolerationSeconds": 1}]),
        ),
        ("default", json!([])),
    ] {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"tolerations": tol, "containers": [{"name": "c", "image": "x"}]}
        }))
        .unwrap();
        pods.create(&PostParams::default(), &p).await.unwrap();
    }
    wait_for("both bound", 10, || async {
        pods.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .filter(|p| p.spec.as_ref().unwrap().node_name.is_some())
            .count()
            == 2
    })
    .await;
    let nodes: Api<Node> = Api::all(c.client.clone());
    wait_for("podCIDR assigned", 10, || async {
        nodes
            .get("n1")
            .await
            .unwrap()
            .spec
            .unwrap()
            .pod_cidr
            .as_deref()
            == Some("10.42.0.0/24")
    })
    .await;
    // Nobody renews the node's lease: Ready=Unknown + unreachable taint.
    wait_for("unreachable taint", 15, || async {
        let n = nodes.get("n1").await.unwrap();
        let tainted = n
            .spec
            .as_ref()
            .unwrap()
            .taints
            .iter()
            .flatten()
            .any(|t| t.key == "node.kubernetes.io/unreachable" && t.effect == "NoExecute");
        let unknown = n
            .status
            .unwrap()
            .conditions
            .unwrap()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "Unknown");
        tainted && unknown
    })
    .await;
    wait_for("short-toleration pod evicted", 10, || async {
        pods.get_opt("short")
            .await
            .unwrap()
            .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
    })
    .await;
    let d = pods.get("default").await.unwrap();
    assert!(
        d.metadata.deletion_timestamp.is_none(),
        "default toleration still running"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_and_slices_follow_ready_pods_with_named_ports() {
    let c = Cluster::start(&[]).await;
    c.node("n1", json!({})).await;
    let _kubelet = c.kubelet();
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    for i in 0..2 {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("e{i}"), "labels": {"app": "ep"}},
            "spec": {"containers": [{"name": "c", "image": "x",
                "ports": [{"name": "http", "containerPort": 8080}]}]}
        }))
        .unwrap();
        pods.create(&PostParams::default(), &p).await.unwrap();
    }
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "ep"},
        "spec": {"selector": {"app": "ep"}, "ports": [{"name": "web", "port": 80, "targetPort": "http"}]}
    }))
    .unwrap();
    Api::<Service>::namespaced(c.client.clone(), "default")
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
    let eps: Api<Endpoints> = Api::namespaced(c.client.clone(), "default");
    wait_for("2 ready addresses on 8080", 15, || async {
        eps.get_opt("ep").await.unwrap().is_some_and(|e| {
            e.subsets.unwrap_or_default().iter().any(|s| {
                s.addresses.as_ref().is_some_and(|a| a.len() == 2)
                    && s.ports.as_ref().is_some_and(|p| p[0].port == 8080)
            })
        })
    })
    .await;
    // The slice is written after the Endpoints object: wait for it as well.
    let slices: Api<EndpointSlice> = Api::namespaced(c.client.clone(), "default");
    let lp = ListParams::default().labels("kubernetes.io/service-name=ep");
    wait_for("a slice with 2 endpoints", 15, || async {
        let s = slices.list(&lp).await.unwrap();
        s.items.len() == 1 && s.items[0].endpoints.len() == 2
    })
    .await;
    let s = slices.list(&lp).await.unwrap();
    assert_eq!(s.items.len(), 1, "exactly one slice per service");
    // A pod going away leaves the endpoints.
    pods.delete("e0", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    wait_for("1 address", 15, || async {
        eps.get("ep")
            .await
            .unwrap()
            .subsets
            .unwrap_or_default()
            .iter()
            .map(|s| s.addresses.as_ref().map_or(0, |a| a.len()))
            .sum::<usize>()
            == 1
    })
    .await;
}
