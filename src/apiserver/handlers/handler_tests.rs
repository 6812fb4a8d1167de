//! Handler behaviour on the in-memory backend: the etcd-level semantics kubectl and
//! controllers rely on (conflicts, generation, finalizers, watch and list expiry).

use super::*;
use crate::apiserver::storage::memory::MemoryBackend;
use serde_json::json;

async fn api() -> (Arc<Api>, MemoryBackend) {
    let mem = MemoryBackend::new();
    let api = crate::apiserver::new_api(Arc::new(mem.clone()), None, Default::default())
        .await
        .unwrap();
    (api, mem)
}

fn req(
    api: &Api,
    group: &str,
    plural: &str,
    ns: Option<&str>,
    name: Option<&str>,
    query: &str,
    body: Value,
) -> Req {
    Req {
        kind: api.registry.find(group, "v1", plural).unwrap(),
        namespace: ns.map(String::from),
        name: name.map(String::from),
        sub: None,
        query: Query::parse(Some(query)),
        accept: "application/json".into(),
        content_type: "application/json".into(),
        body: Bytes::from(body.to_string()),
        user_agent: "test".into(),
        user: None,
    }
}

fn body(r: Reply) -> (u16, Value) {
    match r {
        Reply::Json { code, body, .. } => (code, body),
        Reply::Raw { body, .. } => (200, serde_json::from_slice(&body).unwrap()),
        Reply::Stream { .. } => panic!("unexpected stream"),
    }
}

fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "1"}})
}

#[tokio::test]
async fn a_stale_resource_version_is_a_conflict_with_the_upstream_message() {
    let (api, _) = api().await;
    let post = http::Method::POST;
    let (_, created) = body(
        handle(
            &api,
            &post,
            req(&api, "", "configmaps", Some("default"), None, "", cm("a")),
        )
        .await
        .unwrap(),
    );
    let mut stale = created.clone();
    stale["data"]["a"] = json!("2");
    let put = http::Method::PUT;
    body(
        handle(
            &api,
            &put,
            req(
                &api,
                "",
                "configmaps",
                Some("default"),
                Some("a"),
                "",
                stale.clone(),
            ),
        )
        .await
        .unwrap(),
    );
    let err = handle(
        &api,
        &put,
        req(
            &api,
            "",
            "configmaps",
            Some("default"),
            Some("a"),
            "",
            stale,
        ),
    )
    .await
    .err()
    .unwrap();
    assert_eq!(err.code, 409);
    assert_eq!(
        err.message,
        "Operation cannot be fulfilled on configmaps \"a\": the object has been modified; please apply your changes to the latest version and try again"
    );
}

#[tokio::test]
async fn finalizers_turn_a_delete_into_a_deletion_timestamp_until_they_are_removed() {
    let (api, _) = api().await;
    let mut obj = cm("f");
    obj["metadata"]["finalizers"] = json!(["example.com/keep"]);
    handle(
        &api,
        &http::Method::POST,
        req(&api, "", "configmaps", Some("default"), None, "", obj),
    )
    .await
    .unwrap();
    let (_, after) = body(
        handle(
            &api,
            &http::Method::DELETE,
            req(
                &api,
                "",
                "configmaps",
                Some("default"),
                Some("f"),
                "",
                json!({}),
            ),
        )
        .await
        .unwrap(),
    );
    assert!(after["metadata"]["deletionTimestamp"].is_string());
    let patch = Req {
        content_type: "application/merge-patch+json".into(),
        ..req(
            &api,
            "",
            "configmaps",
            Some("default"),
            Some("f"),
            "",
            json!({"metadata": {"finalizers": null}}),
        )
    };
    handle(&api, &http::Method::PATCH, patch).await.unwrap();
    let err = handle(
        &api,
        &http::Method::GET,
        req(
            &api,
            "",
            "configmaps",
            Some("default"),
            Some("f"),
            "",
            json!({}),
        ),
    )
    .await
    .err()
    .unwrap();
    assert_eq!(err.code, 404);
}

#[tokio::test]
async fn binding_sets_the_node_once() {
    let (api, _) = api().await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    handle(
        &api,
        &http::Method::POST,
        req(&api, "", "pods", Some("default"), None, "", pod),
    )
    .await
    .unwrap();
    let bind = |node: &str| Req {
        sub: Some("binding".into()),
        ..req(
            &api,
            "",
            "pods",
            Some("default"),
            Some("p"),
            "",
            json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": node}}),
        )
    };
    let (code, _) = body(handle(&api, &http::Method::POST, bind("n1")).await.unwrap());
    assert_eq!(code, 201);
    let err = handle(&api, &http::Method::POST, bind("n2"))
        .await
        .err()
        .unwrap();
    assert_eq!(err.code, 409);
    let (_, p) = body(
        handle(
            &api,
            &http::Method::GET,
            req(&api, "", "pods", Some("default"), Some("p"), "", json!({})),
        )
        .await
        .unwrap(),
    );
    assert_eq!(p["spec"]["nodeName"], "n1");
}

#[tokio::test]
async fn a_watch_from_a_compacted_revision_gets_an_expired_error_event() {
    let (api, mem) = api().await;
    for n in ["a", "b", "c"] {
        handle(
            &api,
            &http::Method::POST,
            req(&api, "", "configmaps", Some("default"), None, "", cm(n)),
        )
        .await
        .unwrap();
    }
    let (_, list) = body(
        handle(
            &api,
            &http::Method::GET,
            req(&api, "", "configmaps", Some("default"), None, "", json!({})),
        )
        .await
        .unwrap(),
    );
    let rev: i64 = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    mem.compact(rev).await.unwrap();
    let r = handle(
        &api,
        &http::Method::GET,
        req(
            &api,
            "",
            "configmaps",
            Some("default"),
            None,
            "watch=true&resourceVersion=2",
            json!({}),
        ),
    )
    .await
    .unwrap();
    let Reply::Stream { mut rx, .. } = r else {
        panic!("not a stream")
    };
    let line: Value = serde_json::from_slice(&rx.recv().await.unwrap()).unwrap();
    assert_eq!(line["type"], "ERROR");
    assert_eq!(line["object"]["code"], 410);
    assert_eq!(line["object"]["reason"], "Expired");
}

#[tokio::test]
async fn pages_continue_until_the_revision_is_compacted() {
    let (api, mem) = api().await;
    for n in ["a", "b", "c"] {
        handle(
            &api,
            &http::Method::POST,
            req(&api, "", "configmaps", Some("default"), None, "", cm(n)),
        )
        .await
        .unwrap();
    }
    let (_, page) = body(
        handle(
            &api,
            &http::Method::GET,
            req(
                &api,
                "",
                "configmaps",
                Some("default"),
                None,
                "limit=2",
                json!({}),
            ),
        )
        .await
        .unwrap(),
    );
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["metadata"]["remainingItemCount"], 1);
    let tok = page["metadata"]["continue"].as_str().unwrap().to_string();
    let (_, rest) = body(
        handle(
            &api,
            &http::Method::GET,
            req(
                &api,
                "",
                "configmaps",
                Some("default"),
                None,
                &format!("limit=2&continue={tok}"),
                json!({}),
            ),
        )
        .await
        .unwrap(),
    );
    assert_eq!(rest["items"][0]["metadata"]["name"], "c");
    handle(
        &api,
        &http::Method::POST,
        req(&api, "", "configmaps", Some("default"), None, "", cm("d")),
    )
    .await
    .unwrap();
    let (_, l) = body(
        handle(
            &api,
            &http::Method::GET,
            req(&api, "", "configmaps", Some("default"), None, "", json!({})),
        )
        .await
        .unwrap(),
    );
    mem.compact(
        l["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap(),
    )
    .await
    .unwrap();
    let err = handle(
        &api,
        &http::Method::GET,
        req(
            &api,
            "",
            "configmaps",
            Some("default"),
            None,
            &format!("limit=2&continue={tok}"),
            json!({}),
        ),
    )
    .await
    .err()
    .unwrap();
    assert_eq!((err.code, err.reason), (410, "Expired"));
}

#[tokio::test]
async fn a_watch_with_a_label_selector_sees_objects_enter_and_leave_it() {
    let (api, _) = api().await;
    let r = handle(
        &api,
        &http::Method::GET,
        req(
            &api,
            "",
            "configmaps",
            Some("default"),
            None,
            "watch=1&labelSelector=app%3Dweb",
            json!({}),
        ),
    )
    .await
    .unwrap();
    let Reply::Stream { mut rx, .. } = r else {
        panic!("not a stream")
    };
    handle(
        &api,
        &http::Method::POST,
        req(&api, "", "configmaps", Some("default"), None, "", cm("x")),
    )
    .await
    .unwrap();
    let label = |v: Value| Req {
        content_type: "application/merge-patch+json".into(),
        ..req(
            &api,
            "",
            "configmaps",
            Some("default"),
            Some("x"),
            "",
            json!({"metadata": {"labels": {"app": v}}}),
        )
    };
    handle(&api, &http::Method::PATCH, label(json!("web")))
        .await
        .unwrap();
    handle(&api, &http::Method::PATCH, label(json!("db")))
        .await
        .unwrap();
    let mut types = Vec::new();
    for _ in 0..2 {
        let line: Value = serde_json::from_slice(&rx.recv().await.unwrap()).unwrap();
        types.push(line["type"].as_str().unwrap().to_string());
    }
    assert_eq!(types, ["ADDED", "DELETED"]);
}

#[tokio::test]
async fn both_event_versions_are_views_of_one_stored_core_event() {
    let (api, mem) = api().await;
    let get = http::Method::GET;
    let watch = |group: &str| {
        req(
            &api,
            group,
            "events",
            Some("default"),
            None,
            "watch=true&resourceVersion=1",
            json!({}),
        )
    };
    let Reply::Stream {
        rx: mut core_rx, ..
    } = handle(&api, &get, watch("")).await.unwrap()
    else {
        panic!("not a stream")
    };
    let Reply::Stream { rx: mut ev_rx, .. } =
        handle(&api, &get, watch("events.k8s.io")).await.unwrap()
    else {
        panic!("not a stream")
    };
    let event = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "e1"}, "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "example.com/op", "reportingInstance": "op-0",
        "action": "Sync", "reason": "Synced", "type": "Normal", "note": "done",
        "regarding": {"kind": "Pod", "name": "p"}});
    let (code, created) = body(
        handle(
            &api,
            &http::Method::POST,
            req(
                &api,
                "events.k8s.io",
                "events",
                Some("default"),
                None,
                "",
                event,
            ),
        )
        .await
        .unwrap(),
    );
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["regarding"]["name"], "p");

    // Stored once, in core/v1 form, under the core prefix.
    let stored = mem
        .range(RangeRequest {
            key: b"/registry/events/default/e1".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
    let raw: Value = serde_json::from_slice(&stored.kvs[0].value).unwrap();
    assert_eq!(raw["apiVersion"], "v1");
    assert_eq!(raw["involvedObject"]["name"], "p");
    assert_eq!(raw["message"], "done");

    let (_, core) = body(
        handle(
            &api,
            &get,
            req(
                &api,
                "",
                "events",
                Some("default"),
                Some("e1"),
                "",
                json!({}),
            ),
        )
        .await
        .unwrap(),
    );
    assert_eq!(core["reportingComponent"], "example.com/op");
    assert_eq!(core["metadata"]["uid"], created["metadata"]["uid"]);

    // Each watcher of the one key sees its own version.
    let line = |b: Bytes| serde_json::from_slice::<Value>(&b).unwrap();
    let c = line(core_rx.recv().await.unwrap());
    let e = line(ev_rx.recv().await.unwrap());
    assert_eq!(
        (c["type"].as_str(), e["type"].as_str()),
        (Some("ADDED"), Some("ADDED"))
    );
    assert_eq!(c["object"]["apiVersion"], "v1");
    assert_eq!(c["object"]["message"], "done");
    assert_eq!(e["object"]["apiVersion"], "events.k8s.io/v1");
    assert_eq!(e["object"]["note"], "done");
}
