//! Causes and messages compared with what a real API server answers.

use super::*;
use serde_json::json;

fn deployment() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27",
                    "ports": [{"containerPort": 80}]}]}}}})
}

#[test]
fn valid_deployment_has_no_causes() {
    assert_eq!(
        validate("apps", "v1", "Deployment", &deployment(), None),
        vec![]
    );
}

#[test]
fn bad_name_gets_upstream_message() {
    let mut d = deployment();
    d["metadata"]["name"] = json!("Foo");
    let causes = validate("apps", "v1", "Deployment", &d, None);
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].reason, "FieldValueInvalid");
    assert_eq!(causes[0].field, "metadata.name");
    assert_eq!(
        causes[0].to_string(),
        "metadata.name: Invalid value: \"Foo\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    );
    assert!(
        invalid_message("apps", "Deployment", "Foo", &causes)
            .starts_with("Deployment.apps \"Foo\" is invalid: metadata.name: Invalid value: \"Foo\": a lowercase RFC 1123 subdomain")
    );
}

#[test]
fn service_and_namespace_names_use_label_rules() {
    let svc = json!({"metadata": {"name": "1web"}, "spec": {"ports": [{"port": 80}]}});
    let causes = validate("", "v1", "Service", &svc, None);
    assert_eq!(causes.len(), 1);
    assert!(
        causes[0]
            .message
            .contains("a DNS-1035 label must consist of")
    );
    let ns = json!({"metadata": {"name": "a.b"}});
    let causes = validate("", "v1", "Namespace", &ns, None);
    assert!(
        causes[0]
            .message
            .contains("a lowercase RFC 1123 label must consist of")
    );
    let role = json!({"metadata": {"name": "system:controller:x"}});
    assert_eq!(
        validate(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            &role,
            None
        ),
        vec![]
    );
}

#[test]
fn bad_labels_are_reported_on_metadata_labels() {
    let mut d = deployment();
    d["metadata"]["labels"] = json!({"-bad": "ok", "good": "bad value"});
    let causes = validate("apps", "v1", "Deployment", &d, None);
    assert_eq!(causes.len(), 2, "{causes:?}");
    assert!(causes.iter().all(|c| c.field == "metadata.labels"));
    assert!(
        causes[0]
            .message
            .starts_with("Invalid value: \"-bad\": name part must consist of")
    );
    assert!(
        causes[1]
            .message
            .starts_with("Invalid value: \"bad value\": a valid label must be")
    );
}

#[test]
fn pod_requires_containers_images_and_valid_enums() {
    let p = json!({"metadata": {"name": "p"}, "spec": {"containers": []}});
    let causes = validate("", "v1", "Pod", &p, None);
    assert_eq!(causes[0].to_string(), "spec.containers: Required value");
    let p = json!({"metadata": {"name": "p"}, "spec": {"restartPolicy": "Sometimes", "containers": [
        {"name": "c"}, {"name": "c", "image": "x", "imagePullPolicy": "Maybe", "ports": [{"containerPort": 0}]}]}});
    let msgs: Vec<String> = validate("", "v1", "Pod", &p, None)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        msgs.contains(&"spec.containers[0].image: Required value".to_string()),
        "{msgs:?}"
    );
    assert!(msgs.contains(&"spec.containers[1].name: Duplicate value: \"c\"".to_string()));
    assert!(msgs.contains(&"spec.containers[1].imagePullPolicy: Unsupported value: \"Maybe\": supported values: \"Always\", \"IfNotPresent\", \"Never\"".to_string()));
    assert!(msgs.contains(&"spec.containers[1].ports[0].containerPort: Invalid value: 0: must be between 1 and 65535, inclusive".to_string()));
    assert!(msgs.contains(&"spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"".to_string()));
}

#[test]
fn deployment_selector_must_match_template_and_is_immutable() {
    let mut d = deployment();
    d["spec"]["template"]["metadata"]["labels"] = json!({"app": "other"});
    let causes = validate("apps", "v1", "Deployment", &d, None);
    assert_eq!(
        causes[0].to_string(),
        "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`"
    );
    let mut d2 = deployment();
    d2["spec"]["selector"] = json!({"matchLabels": {"app": "web", "tier": "x"}});
    d2["spec"]["template"]["metadata"]["labels"] = json!({"app": "web", "tier": "x"});
    let causes = validate("apps", "v1", "Deployment", &d2, Some(&deployment()));
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].field, "spec.selector");
    assert!(causes[0].message.ends_with("field is immutable"));
    let mut no_sel = deployment();
    no_sel["spec"].as_object_mut().unwrap().remove("selector");
    assert_eq!(
        validate("apps", "v1", "Deployment", &no_sel, None)[0].to_string(),
        "spec.selector: Required value"
    );
}

#[test]
fn pod_spec_is_mostly_immutable() {
    let old = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "a"}],
        "tolerations": [{"key": "k", "operator": "Exists"}]}});
    let mut ok = old.clone();
    ok["spec"]["containers"][0]["image"] = json!("b");
    ok["spec"]["activeDeadlineSeconds"] = json!(30);
    ok["spec"]["tolerations"] =
        json!([{"key": "k", "operator": "Exists"}, {"key": "k2", "operator": "Exists"}]);
    assert_eq!(validate("", "v1", "Pod", &ok, Some(&old)), vec![]);
    let mut bad = old.clone();
    bad["spec"]["containers"][0]["command"] = json!(["sh"]);
    bad["spec"]["tolerations"] = json!([]);
    let causes = validate("", "v1", "Pod", &bad, Some(&old));
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].reason, "FieldValueForbidden");
    assert!(
        causes[0]
            .message
            .starts_with("Forbidden: pod updates may not change fields other than")
    );
    assert!(causes[0].message.contains("spec.containers"));
    assert!(causes[0].message.contains("spec.tolerations"));
}

#[test]
fn job_restart_policy_service_ports_and_cluster_ip() {
    let job = json!({"metadata": {"name": "j"}, "spec": {"template": {"spec": {"restartPolicy": "Always",
        "containers": [{"name": "c", "image": "x"}]}}}});
    assert_eq!(
        validate("batch", "v1", "Job", &job, None)[0].to_string(),
        "spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""
    );
    let svc = json!({"metadata": {"name": "s"}, "spec": {"type": "Bogus", "ports": [{"port": 80}, {"port": 443}]}});
    let msgs: Vec<String> = validate("", "v1", "Service", &svc, None)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(msgs.contains(&"spec.type: Unsupported value: \"Bogus\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"".to_string()), "{msgs:?}");
    assert!(msgs.contains(&"spec.ports[0].name: Required value".to_string()));
    let svc = json!({"metadata": {"name": "s"}, "spec": {}});
    assert_eq!(
        validate("", "v1", "Service", &svc, None)[0].to_string(),
        "spec.ports: Required value"
    );
    let old = json!({"metadata": {"name": "s"}, "spec": {"clusterIP": "10.43.0.5", "ports": [{"port": 80}]}});
    let mut new = old.clone();
    new["spec"]["clusterIP"] = json!("10.43.0.6");
    assert_eq!(
        validate("", "v1", "Service", &new, Some(&old))[0].to_string(),
        "spec.clusterIP: Invalid value: \"10.43.0.6\": field is immutable"
    );
}

#[test]
fn immutable_configmap_rejects_data_changes() {
    let old = json!({"metadata": {"name": "c"}, "immutable": true, "data": {"a": "1"}});
    let mut new = old.clone();
    new["data"]["a"] = json!("2");
    let causes = validate("", "v1", "ConfigMap", &new, Some(&old));
    assert_eq!(
        causes[0].to_string(),
        "data: Forbidden: field is immutable when `immutable` is set"
    );
    let bad_key = json!({"metadata": {"name": "c"}, "data": {"a b": "1"}});
    assert_eq!(
        validate("", "v1", "ConfigMap", &bad_key, None)[0].field,
        "data[a b]"
    );
}

#[test]
fn resources_pvc_and_ingress_checks() {
    let p = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x",
        "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1", "memory": "lots"}}}]}});
    let msgs: Vec<String> = validate("", "v1", "Pod", &p, None)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(msgs.contains(&"spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1".to_string()), "{msgs:?}");
    assert!(msgs.iter().any(|m| m.starts_with("spec.containers[0].resources.limits[memory]: Invalid value: \"lots\": quantities must match")));
    let pvc = json!({"metadata": {"name": "data"}, "spec": {}});
    let msgs: Vec<String> = validate("", "v1", "PersistentVolumeClaim", &pvc, None)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        msgs,
        vec![
            "spec.accessModes: Required value: at least 1 access mode is required".to_string(),
            "spec.resources[storage]: Required value".to_string(),
        ]
    );
    let ing = json!({"metadata": {"name": "i"}, "spec": {"rules": [{"host": "*.example.com", "http": {"paths": [
        {"path": "/", "backend": {"service": {"name": "s", "port": {"number": 80}}}}]}}]}});
    let msgs: Vec<String> = validate("networking.k8s.io", "v1", "Ingress", &ing, None)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        msgs,
        vec![
            "spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified"
                .to_string()
        ]
    );
}
