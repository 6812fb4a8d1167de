//! The official client libraries against a real `k3rs server`: kube-rs (Rust) and the
//! Python `kubernetes` package — CRUD, 409 on conflict, pagination, watch resumed from a
//! resourceVersion, and a CRD round trip with its status subresource.

mod common;

use common::TestServer;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::{Client, ResourceExt};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

async fn client(ts: &TestServer) -> Client {
    let kc = kube::config::Kubeconfig::read_from(ts.kubeconfig()).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    Client::try_from(cfg).unwrap()
}

fn configmap(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}
    }))
    .unwrap()
}

#[tokio::test]
async fn kube_rs_crud_conflict_pagination_watch_and_crds() {
    let ts = TestServer::start();
    let client = client(&ts).await;
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "rs"}})).unwrap(),
    )
    .await
    .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "rs");

    // CRUD and optimistic concurrency.
    let created = cms
        .create(&PostParams::default(), &configmap("one", json!({})))
        .await
        .unwrap();
    let patched = cms
        .patch(
            "one",
            &PatchParams::default(),
            &Patch::Strategic(json!({"data": {"k2": "v2"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data.as_ref().unwrap().len(), 2);
    let mut stale = created.clone();
    stale.data = Some([("lost".to_string(), "x".to_string())].into());
    match cms.replace("one", &PostParams::default(), &stale).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
            assert!(s.message.contains("the object has been modified"), "{s:?}");
        }
        other => panic!("expected a 409, got {other:?}"),
    }
    match cms
        .create(&PostParams::default(), &configmap("one", json!({})))
        .await
    {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists")),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }

    // Pagination: 25 objects, pages of 10, every name exactly once and in order.
    for i in 0..25 {
        cms.create(
            &PostParams::default(),
            &configmap(&format!("page-{i:02}"), json!({"set": "pages"})),
        )
        .await
        .unwrap();
    }
    let mut names = Vec::new();
    let mut lp = ListParams::default().labels("set=pages").limit(10);
    let mut pages = 0;
    loop {
        let page = cms.list(&lp).await.unwrap();
        pages += 1;
        names.extend(page.items.iter().map(|c| c.name_any()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => lp = lp.continue_token(&token),
            None => break,
        }
    }
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!((pages, names.len()), (3, 25));
    assert_eq!(names, sorted);

    // A watch resumed from a list's resourceVersion sees exactly the later changes.
    let rv = cms
        .list(&ListParams::default().labels("set=later"))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    for i in 0..3 {
        cms.create(
            &PostParams::default(),
            &configmap(&format!("later-{i}"), json!({"set": "later"})),
        )
        .await
        .unwrap();
    }
    cms.delete("later-1", &DeleteParams::default())
        .await
        .unwrap();
    let stream = cms
        .watch(&WatchParams::default().labels("set=later").timeout(5), &rv)
        .await
        .unwrap();
    let seen: Vec<String> = stream
        .try_filter_map(|e| async move {
            Ok(match e {
                WatchEvent::Added(c) => Some(format!("ADDED {}", c.name_any())),
                WatchEvent::Deleted(c) => Some(format!("DELETED {}", c.name_any())),
                WatchEvent::Modified(c) => Some(format!("MODIFIED {}", c.name_any())),
                _ => None,
            })
        })
        .take(4)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        seen,
        [
            "ADDED later-0",
            "ADDED later-1",
            "ADDED later-2",
            "DELETED later-1"
        ]
    );

    // CRD round trip through DynamicObject.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = serde_json::from_value(json!({
        "metadata": {"name": "gizmos.rs.example.com"},
        "spec": {"group": "rs.example.com", "scope": "Namespaced",
            "names": {"plural": "gizmos", "singular": "gizmo", "kind": "Gizmo"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
                    "status": {"type": "object", "properties": {"ok": {"type": "boolean"}}}}}}}]}
    }))
    .unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    let gvk = GroupVersionKind::gvk("rs.example.com", "v1", "Gizmo");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "gizmos");
    let gizmos: Api<DynamicObject> = Api::namespaced_with(client.clone(), "rs", &ar);
    let mut ready = false;
    for _ in 0..50 {
        if gizmos.list(&ListParams::default()).await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "custom resource never served");
    let g: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "rs.example.com/v1", "kind": "Gizmo",
        "metadata": {"name": "g1"}, "spec": {"size": 2}, "status": {"ok": true}
    }))
    .unwrap();
    let created = gizmos.create(&PostParams::default(), &g).await.unwrap();
    assert_eq!(created.data["spec"]["size"], 2);
    assert!(created.data.get("status").is_none(), "status set on create");
    gizmos
        .patch_status(
            "g1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ok": true}})),
        )
        .await
        .unwrap();
    let got = gizmos.get("g1").await.unwrap();
    assert_eq!(got.data["status"]["ok"], true);
    let bad: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "rs.example.com/v1", "kind": "Gizmo",
        "metadata": {"name": "bad"}, "spec": {"size": "big"}
    }))
    .unwrap();
    match gizmos.create(&PostParams::default(), &bad).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 422);
            assert!(s.message.contains("spec.size"), "{s:?}");
        }
        other => panic!("expected 422, got {other:?}"),
    }
    gizmos.delete("g1", &DeleteParams::default()).await.unwrap();
    assert!(gizmos.get_opt("g1").await.unwrap().is_none());
}

/// A virtualenv with the `kubernetes` package, created once per target dir.
fn python_with_kubernetes() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pyvenv-kubernetes");
    let python = venv.join("bin/python");
    let ready = venv.join(".installed");
    if ready.exists() {
        return python;
    }
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .unwrap()
        .success();
    assert!(
        ok,
        "python3 -m venv failed (Debian: apt install python3-venv)"
    );
    let out = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "kubernetes==37.0.2"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pip install kubernetes failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&ready, b"").unwrap();
    python
}

#[test]
fn python_kubernetes_client_crud_conflict_pagination_watch_and_crds() {
    let python = python_with_kubernetes();
    let ts = TestServer::start();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/client_roundtrip.py");
    let out = Command::new(python)
        .arg(script)
        .arg(ts.kubeconfig())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python client failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("python client round trip: ok"));
}
