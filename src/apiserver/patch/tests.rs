//! Behaviour checks against upstream examples (Kubernetes docs on strategic merge patch,
//! RFC 6902/7386 examples, server-side apply conflict semantics).

use super::*;
use serde_json::json;

fn pod_kind() -> KindPath {
    KindPath::new("", "v1", "Pod")
}

fn deploy_kind() -> KindPath {
    KindPath::new("apps", "v1", "Deployment")
}

fn smp(kind: &KindPath, cur: Value, patch: Value) -> Value {
    apply(
        kind,
        PatchType::StrategicMerge,
        &cur,
        patch.to_string().as_bytes(),
    )
    .unwrap()
}

#[test]
fn content_types_map_to_patch_types_and_cbor_is_rejected() {
    assert_eq!(
        PatchType::from_content_type("application/strategic-merge-patch+json; charset=utf-8"),
        Some(PatchType::StrategicMerge)
    );
    assert_eq!(
        PatchType::from_content_type("application/json-patch+json"),
        Some(PatchType::Json)
    );
    assert_eq!(
        PatchType::from_content_type("application/merge-patch+json"),
        Some(PatchType::Merge)
    );
    assert_eq!(
        PatchType::from_content_type("application/apply-patch+yaml"),
        Some(PatchType::Apply)
    );
    assert_eq!(
        PatchType::from_content_type("application/apply-patch+cbor"),
        None
    );
    assert_eq!(PatchType::from_content_type("application/json"), None);
}

#[test]
fn json_patch_supports_all_six_operations() {
    let doc = json!({"a": {"b": [1, 2]}, "c": "x"});
    let ops = json!([
        {"op": "test", "path": "/c", "value": "x"},
        {"op": "add", "path": "/a/b/-", "value": 3},
        {"op": "add", "path": "/a/b/0", "value": 0},
        {"op": "replace", "path": "/c", "value": "y"},
        {"op": "copy", "from": "/c", "path": "/d"},
        {"op": "move", "from": "/d", "path": "/e~1f"},
        {"op": "remove", "path": "/a/b/1"}
    ]);
    let out = apply(
        &pod_kind(),
        PatchType::Json,
        &doc,
        ops.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(out, json!({"a": {"b": [0, 2, 3]}, "c": "y", "e/f": "y"}));
}

#[test]
fn failed_json_patch_test_is_an_error_and_changes_nothing() {
    let doc = json!({"c": "x"});
    let ops = json!([{"op": "test", "path": "/c", "value": "nope"}]);
    let err = apply(
        &pod_kind(),
        PatchType::Json,
        &doc,
        ops.to_string().as_bytes(),
    )
    .unwrap_err();
    assert!(matches!(err, PatchError::JsonPatchFailed(_)));
    let ops = json!([{"op": "remove", "path": "/missing"}]);
    let err = apply(
        &pod_kind(),
        PatchType::Json,
        &doc,
        ops.to_string().as_bytes(),
    )
    .unwrap_err();
    assert!(matches!(err, PatchError::JsonPatchFailed(_)));
    let err = apply(&pod_kind(), PatchType::Json, &doc, b"{not json").unwrap_err();
    assert!(matches!(err, PatchError::Malformed(_)));
}

#[test]
fn merge_patch_follows_rfc_7386_example() {
    let target = json!({"a": "b", "c": {"d": "e", "f": "g"}});
    let patch = json!({"a": "z", "c": {"f": null}});
    let out = apply(
        &pod_kind(),
        PatchType::Merge,
        &target,
        patch.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(out, json!({"a": "z", "c": {"d": "e"}}));
    let out = apply(
        &pod_kind(),
        PatchType::Merge,
        &json!({"l": [1, 2]}),
        br#"{"l":[3]}"#,
    )
    .unwrap();
    assert_eq!(out, json!({"l": [3]}));
}

#[test]
fn strategic_merge_merges_containers_by_name() {
    let cur = json!({"spec": {"containers": [
        {"name": "nginx", "image": "nginx:1.14"},
        {"name": "side", "image": "busybox"}
    ]}});
    let out = smp(
        &pod_kind(),
        cur,
        json!({"spec": {"containers": [{"name": "nginx", "image": "nginx:1.16"}, {"name": "new", "image": "redis"}]}}),
    );
    assert_eq!(
        out["spec"]["containers"],
        json!([
            {"name": "nginx", "image": "nginx:1.16"},
            {"name": "side", "image": "busybox"},
            {"name": "new", "image": "redis"}
        ])
    );
}

#[test]
fn strategic_merge_replaces_tolerations_and_unions_finalizers() {
    let cur = json!({
        "metadata": {"finalizers": ["a"]},
        "spec": {"tolerations": [{"key": "x", "operator": "Exists"}]}
    });
    let out = smp(
        &pod_kind(),
        cur,
        json!({"metadata": {"finalizers": ["b", "a"]}, "spec": {"tolerations": [{"key": "y", "operator": "Exists"}]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["a", "b"]));
    assert_eq!(
        out["spec"]["tolerations"],
        json!([{"key": "y", "operator": "Exists"}])
    );
}

#[test]
fn strategic_merge_patch_delete_removes_list_item_and_null_removes_field() {
    let cur = json!({"spec": {"containers": [
        {"name": "a", "image": "x", "args": ["1"]},
        {"name": "b", "image": "y"}
    ]}});
    let out = smp(
        &pod_kind(),
        cur,
        json!({"spec": {"containers": [{"name": "a", "args": null}, {"name": "b", "$patch": "delete"}]}}),
    );
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "a", "image": "x"}])
    );
}

#[test]
fn strategic_merge_patch_replace_on_list_and_map() {
    let cur = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}],
        "nodeSelector": {"k": "v", "k2": "v2"}}});
    let out = smp(
        &pod_kind(),
        cur,
        json!({"spec": {
            "containers": [{"name": "c", "image": "z"}, {"$patch": "replace"}],
            "nodeSelector": {"only": "this", "$patch": "replace"}
        }}),
    );
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "c", "image": "z"}])
    );
    assert_eq!(out["spec"]["nodeSelector"], json!({"only": "this"}));
}

#[test]
fn strategic_merge_set_element_order_reorders_merged_list() {
    let cur = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "a", "image": "1"}, {"name": "b", "image": "2"}
    ]}}}});
    let out = smp(
        &deploy_kind(),
        cur,
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
            "containers": [{"name": "a", "image": "3"}]
        }}}}),
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "b", "image": "2"}, {"name": "a", "image": "3"}])
    );
}

#[test]
fn strategic_merge_retain_keys_clears_other_strategy_fields() {
    // The Kubernetes docs example: switching a Deployment to Recreate.
    let cur = json!({"spec": {"strategy": {"type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}}});
    let out = smp(
        &deploy_kind(),
        cur,
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
    );
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn strategic_merge_delete_from_primitive_list() {
    let cur = json!({"metadata": {"finalizers": ["a", "b", "c"]}});
    let out = smp(
        &pod_kind(),
        cur,
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["a", "c"]));
}

#[test]
fn strategic_merge_ports_merge_by_container_port_and_service_port() {
    let cur = json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "name": "http"}]}]}});
    let out = smp(
        &pod_kind(),
        cur,
        json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 443}]}]}}),
    );
    assert_eq!(
        out["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 80, "name": "http"}, {"containerPort": 443}])
    );
    let svc = KindPath::new("", "v1", "Service");
    let cur = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}]}});
    let out = smp(
        &svc,
        cur,
        json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
    );
    assert_eq!(
        out["spec"]["ports"],
        json!([{"port": 80, "targetPort": 9090}])
    );
}

#[test]
fn strategic_merge_is_rejected_for_custom_resources() {
    let kind = KindPath::new("example.com", "v1", "Widget");
    let err = apply(&kind, PatchType::StrategicMerge, &json!({}), b"{}").unwrap_err();
    assert_eq!(err, PatchError::StrategicMergeUnsupported);
}

#[test]
fn strategic_merge_list_item_without_merge_key_is_invalid() {
    let err = apply(
        &pod_kind(),
        PatchType::StrategicMerge,
        &json!({}),
        br#"{"spec":{"containers":[{"image":"x"}]}}"#,
    )
    .unwrap_err();
    assert!(matches!(err, PatchError::InvalidStrategicPatch(_)));
}

fn applied_deploy(replicas: i64, image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [
            {"name": "nginx", "image": image}]}}}})
}

const T: &str = "2026-11-25T16:00:00Z";

#[test]
fn apply_creates_object_with_managed_fields() {
    let out = server_side_apply(
        &deploy_kind(),
        None,
        &applied_deploy(2, "nginx"),
        "kubectl",
        false,
        T,
    )
    .unwrap();
    assert_eq!(out["spec"]["replicas"], 2);
    let mf = &out["metadata"]["managedFields"][0];
    assert_eq!(mf["manager"], "kubectl");
    assert_eq!(mf["operation"], "Apply");
    assert_eq!(mf["apiVersion"], "apps/v1");
    assert_eq!(mf["fieldsType"], "FieldsV1");
    assert_eq!(mf["time"], T);
    let f = &mf["fieldsV1"];
    assert_eq!(f["f:spec"]["f:replicas"], json!({}));
    assert_eq!(f["f:metadata"]["f:labels"]["f:app"], json!({}));
    assert_eq!(
        f["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"nginx\"}"],
        json!({".": {}, "f:image": {}, "f:name": {}})
    );
}

#[test]
fn apply_conflicts_with_another_manager_unless_forced() {
    let created = server_side_apply(
        &deploy_kind(),
        None,
        &applied_deploy(2, "nginx"),
        "alice",
        false,
        T,
    )
    .unwrap();
    let err = server_side_apply(
        &deploy_kind(),
        Some(&created),
        &applied_deploy(5, "nginx"),
        "bob",
        false,
        T,
    )
    .unwrap_err();
    let ApplyError::Conflicts(c) = &err else {
        panic!("expected conflicts, got {err:?}")
    };
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].field, ".spec.replicas");
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"alice\": .spec.replicas"
    );
    // Same value: shared ownership, no conflict.
    let shared = server_side_apply(
        &deploy_kind(),
        Some(&created),
        &applied_deploy(2, "nginx"),
        "bob",
        false,
        T,
    )
    .unwrap();
    assert_eq!(
        shared["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Force: bob takes replicas away from alice.
    let forced = server_side_apply(
        &deploy_kind(),
        Some(&created),
        &applied_deploy(5, "nginx"),
        "bob",
        true,
        T,
    )
    .unwrap();
    assert_eq!(forced["spec"]["replicas"], 5);
    let alice = forced["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["manager"] == "alice")
        .unwrap();
    assert!(alice["fieldsV1"]["f:spec"].get("f:replicas").is_none());
}

#[test]
fn update_manager_conflict_names_the_api_version() {
    let mut obj = applied_deploy(2, "nginx");
    update_managed_fields(&deploy_kind(), None, &mut obj, "kubectl-edit", "Update", T);
    let err = server_side_apply(
        &deploy_kind(),
        Some(&obj),
        &applied_deploy(3, "nginx:2"),
        "kubectl",
        false,
        T,
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "Apply failed with 2 conflicts: conflicts with \"kubectl-edit\" using apps/v1:"
        ),
        "{msg}"
    );
    assert!(msg.contains("\n- .spec.replicas"), "{msg}");
    assert!(
        msg.contains("\n- .spec.template.spec.containers[name=\"nginx\"].image"),
        "{msg}"
    );
}

#[test]
fn fields_dropped_from_applied_config_are_removed_when_unowned() {
    let mut first = applied_deploy(2, "nginx");
    first["metadata"]["labels"]["tier"] = json!("front");
    let created = server_side_apply(&deploy_kind(), None, &first, "kubectl", false, T).unwrap();
    assert_eq!(created["metadata"]["labels"]["tier"], "front");
    let second = server_side_apply(
        &deploy_kind(),
        Some(&created),
        &applied_deploy(2, "nginx"),
        "kubectl",
        false,
        T,
    )
    .unwrap();
    assert!(second["metadata"]["labels"].get("tier").is_none());
    assert_eq!(second["metadata"]["labels"]["app"], "web");
}

#[test]
fn dropped_field_owned_by_another_manager_is_kept() {
    let created = server_side_apply(
        &deploy_kind(),
        None,
        &applied_deploy(2, "nginx"),
        "a",
        false,
        T,
    )
    .unwrap();
    let both = server_side_apply(
        &deploy_kind(),
        Some(&created),
        &applied_deploy(2, "nginx"),
        "b",
        false,
        T,
    )
    .unwrap();
    let mut without_replicas = applied_deploy(2, "nginx");
    without_replicas["spec"]
        .as_object_mut()
        .unwrap()
        .remove("replicas");
    let out = server_side_apply(
        &deploy_kind(),
        Some(&both),
        &without_replicas,
        "a",
        false,
        T,
    )
    .unwrap();
    assert_eq!(out["spec"]["replicas"], 2);
}

#[test]
fn apply_requires_matching_kind_and_a_manager() {
    let err = server_side_apply(
        &deploy_kind(),
        None,
        &json!({"apiVersion": "v1", "kind": "Deployment"}),
        "m",
        false,
        T,
    )
    .unwrap_err();
    assert!(matches!(err, ApplyError::BadRequest(_)));
    let err =
        server_side_apply(&deploy_kind(), None, &applied_deploy(1, "x"), "", false, T).unwrap_err();
    assert_eq!(err, ApplyError::FieldManagerRequired);
}

#[test]
fn update_transfers_changed_fields_to_the_writer() {
    let created = server_side_apply(
        &deploy_kind(),
        None,
        &applied_deploy(2, "nginx"),
        "kubectl",
        false,
        T,
    )
    .unwrap();
    let mut scaled = created.clone();
    scaled["spec"]["replicas"] = json!(7);
    update_managed_fields(
        &deploy_kind(),
        Some(&created),
        &mut scaled,
        "hpa",
        "Update",
        T,
    );
    let mf = scaled["metadata"]["managedFields"].as_array().unwrap();
    let hpa = mf.iter().find(|m| m["manager"] == "hpa").unwrap();
    assert_eq!(hpa["operation"], "Update");
    assert_eq!(hpa["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
    let kubectl = mf.iter().find(|m| m["manager"] == "kubectl").unwrap();
    assert!(kubectl["fieldsV1"]["f:spec"].get("f:replicas").is_none());
    // kubectl re-applying replicas 2 now conflicts with the hpa's update.
    let err = server_side_apply(
        &deploy_kind(),
        Some(&scaled),
        &applied_deploy(2, "nginx"),
        "kubectl",
        false,
        T,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("conflict with \"hpa\" using apps/v1: .spec.replicas")
    );
}

#[test]
fn fields_v1_round_trips() {
    let kind = pod_kind();
    let obj = json!({"metadata": {"labels": {"a": "b"}, "finalizers": ["x"]},
        "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}});
    let set = FieldSet::from_value(&kind, &obj);
    let v1 = set.to_fields_v1();
    assert_eq!(v1["f:metadata"]["f:finalizers"], json!({"v:\"x\"": {}}));
    assert!(
        v1["f:spec"]["f:containers"]["k:{\"name\":\"c\"}"]["f:ports"]
            .get("k:{\"containerPort\":80,\"protocol\":\"TCP\"}")
            .is_some()
    );
    assert_eq!(FieldSet::from_fields_v1(&v1), set);
}

#[test]
fn kubectl_client_side_apply_patch_applies_like_upstream() {
    // Captured from kubectl 1.32 applying a second manifest (one container dropped, one
    // env var dropped, a port added, containers reordered, strategy switched to Recreate,
    // a label removed) against this server's OpenAPI v3 document.
    let current: Value = serde_json::from_str(include_str!(
        "../../../tests/fixtures/smp/kubectl-apply-current.json"
    ))
    .unwrap();
    let patch = include_str!("../../../tests/fixtures/smp/kubectl-apply-patch.json");
    let out = apply(
        &deploy_kind(),
        PatchType::StrategicMerge,
        &current,
        patch.as_bytes(),
    )
    .unwrap();
    assert_eq!(out["metadata"]["labels"], json!({"app": "shop"}));
    assert_eq!(out["spec"]["replicas"], 3);
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([
            {"name": "logger", "image": "fluentbit:2"},
            {"name": "web", "image": "nginx:1.27", "env": [{"name": "B", "value": "2"}],
                "ports": [{"containerPort": 80}, {"containerPort": 443}]}
        ])
    );
    let last = out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
        .as_str()
        .unwrap();
    assert!(last.contains("fluentbit:2"));
}

#[test]
fn apply_matches_ports_whose_protocol_was_defaulted() {
    let live = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}]}});
    let svc = KindPath::new("", "v1", "Service");
    let applied = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"ports": [{"port": 80, "targetPort": 8080}]}});
    let out = server_side_apply(&svc, Some(&live), &applied, "kubectl", false, T).unwrap();
    assert_eq!(
        out["spec"]["ports"],
        json!([{"port": 80, "protocol": "TCP", "targetPort": 8080}])
    );
    let mf = &out["metadata"]["managedFields"][0]["fieldsV1"];
    assert!(
        mf["f:spec"]["f:ports"]
            .get("k:{\"port\":80,\"protocol\":\"TCP\"}")
            .is_some()
    );
}

#[test]
fn apply_without_protocol_shares_a_port_field_instead_of_conflicting() {
    let svc = KindPath::new("", "v1", "Service");
    let mut live = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}]}});
    update_managed_fields(&svc, None, &mut live, "kubectl-create", "Update", T);
    let applied = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"ports": [{"port": 80, "targetPort": 8080}]}});
    assert!(server_side_apply(&svc, Some(&live), &applied, "kubectl", false, T).is_ok());
}

#[test]
fn apply_bodies_decode_from_yaml_or_json() {
    let y =
        b"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n";
    assert_eq!(parse_apply_body(y).unwrap()["spec"]["replicas"], 2);
    let j = br#"{"apiVersion":"v1","kind":"Pod"}"#;
    assert_eq!(parse_apply_body(j).unwrap()["kind"], "Pod");
    assert!(matches!(
        parse_apply_body(b"- a\n- b\n"),
        Err(ApplyError::BadRequest(_))
    ));
    assert!(matches!(
        parse_apply_body(b"a: [\n"),
        Err(ApplyError::BadRequest(_))
    ));
}

#[test]
fn container_dropped_from_applied_config_is_removed_whole() {
    let two = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [
            {"name": "nginx", "image": "nginx"}, {"name": "side", "image": "busybox"}]}}}});
    let mut created = server_side_apply(&deploy_kind(), None, &two, "kubectl", false, T).unwrap();
    // Defaults added by the server belong to nobody.
    created["spec"]["template"]["spec"]["containers"][1]["imagePullPolicy"] = json!("Always");
    let one = applied_deploy(1, "nginx");
    let out = server_side_apply(&deploy_kind(), Some(&created), &one, "kubectl", false, T).unwrap();
    let names: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["nginx"]);
}

#[test]
fn item_held_by_another_manager_keeps_its_key_and_their_fields() {
    let two = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [
            {"name": "nginx", "image": "nginx"}, {"name": "side", "image": "busybox"}]}}}});
    let created = server_side_apply(&deploy_kind(), None, &two, "kubectl", false, T).unwrap();
    let mut tuned = created.clone();
    tuned["spec"]["template"]["spec"]["containers"][1]["resources"] =
        json!({"limits": {"cpu": "1"}});
    update_managed_fields(
        &deploy_kind(),
        Some(&created),
        &mut tuned,
        "vpa",
        "Update",
        T,
    );
    let one = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}}});
    let out = server_side_apply(&deploy_kind(), Some(&tuned), &one, "kubectl", false, T).unwrap();
    let side = &out["spec"]["template"]["spec"]["containers"][1];
    assert_eq!(side["name"], "side");
    assert_eq!(side["resources"], json!({"limits": {"cpu": "1"}}));
    assert!(side.get("image").is_none());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-5i64..5).prop_map(Value::from),
            "[a-c]{0,2}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("name".to_string()),
                        Just("containers".to_string()),
                        Just("spec".to_string()),
                        Just("$patch".to_string()),
                        "[a-c]{1,2}"
                    ],
                    inner,
                    0..4
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn patches_never_panic_and_merge_patch_is_idempotent(cur in json_value(), p in json_value()) {
            let bytes = p.to_string();
            let once = apply(&pod_kind(), PatchType::Merge, &cur, bytes.as_bytes()).unwrap();
            let twice = apply(&pod_kind(), PatchType::Merge, &once, bytes.as_bytes()).unwrap();
            prop_assert_eq!(once, twice);
            let _ = apply(&pod_kind(), PatchType::StrategicMerge, &cur, bytes.as_bytes());
            let _ = apply(&pod_kind(), PatchType::Json, &cur, bytes.as_bytes());
            let mut obj = json!({"apiVersion": "v1", "kind": "Pod"});
            if let (Value::Object(o), Value::Object(extra)) = (&mut obj, &p) {
                for (k, v) in extra {
                    if k != "apiVersion" && k != "kind" {
                        o.insert(k.clone(), v.clone());
                    }
                }
            }
            let cur_obj = cur.is_object().then_some(&cur);
            if let Ok(out) = server_side_apply(&pod_kind(), cur_obj, &obj, "m", true, T) {
                // Re-applying the same configuration changes nothing but the timestamp.
                let again = server_side_apply(&pod_kind(), Some(&out), &obj, "m", false, T).unwrap();
                prop_assert_eq!(out, again);
            }
        }
    }
}

#[test]
fn errors_map_to_upstream_status_codes_and_causes() {
    assert_eq!(PatchError::StrategicMergeUnsupported.code(), 415);
    assert_eq!(
        PatchError::StrategicMergeUnsupported.reason(),
        "UnsupportedMediaType"
    );
    assert_eq!(PatchError::JsonPatchFailed("x".into()).code(), 422);
    assert_eq!(PatchError::Malformed("x".into()).reason(), "BadRequest");
    let created = server_side_apply(
        &deploy_kind(),
        None,
        &applied_deploy(2, "nginx"),
        "alice",
        false,
        T,
    )
    .unwrap();
    let err = server_side_apply(
        &deploy_kind(),
        Some(&created),
        &applied_deploy(5, "nginx"),
        "bob",
        false,
        T,
    )
    .unwrap_err();
    assert_eq!(err.code(), 409);
    assert_eq!(err.reason(), "Conflict");
    let causes = err.causes();
    assert_eq!(causes[0].reason, "FieldManagerConflict");
    assert_eq!(causes[0].message, "conflict with \"alice\"");
    assert_eq!(causes[0].field, ".spec.replicas");
}
