//! Upstream defaulting of built-in kinds (the `SetDefaults_*` functions of
//! `pkg/apis/*/v1`, plus the few admission-time fields every real cluster shows), applied
//! to untyped objects before validation and storage. Fields already set are never changed.
//!
//! Owns: pure mutation of a JSON object. No I/O. Server-assigned values that need state
//! (cluster IPs, node ports, uids, job selectors) are the registry's job.

mod pod;

pub use pod::image_pull_policy;

use serde_json::{Map, Value, json};

/// Inserts `key: value` unless `key` is present and not null.
pub(crate) fn set_if_absent(m: &mut Map<String, Value>, key: &str, value: Value) {
    match m.get(key) {
        Some(v) if !v.is_null() => {}
        _ => {
            m.insert(key.to_string(), value);
        }
    }
}

/// Inserts `key: value`, replacing any previous value.
pub(crate) fn set(m: &mut Map<String, Value>, key: &str, value: Value) {
    m.insert(key.to_string(), value);
}

/// The object at `key`, created empty when absent or null.
fn obj<'a>(m: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_string(), Value::Object(Map::new()));
    }
    m.get_mut(key).and_then(Value::as_object_mut)
}

/// The object at `key` only if it exists.
fn existing<'a>(m: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    m.get_mut(key).and_then(Value::as_object_mut)
}

/// Applies upstream defaults for `group/version, kind` to `obj` in place. Unknown kinds
/// (custom resources) are left alone.
pub fn apply(group: &str, version: &str, kind: &str, object: &mut Value) {
    let Value::Object(o) = object else { return };
    match (group, kind) {
        ("", "Pod") => pod::pod(o),
        ("", "PodTemplate") => template(o, "template"),
        ("", "ReplicationController") => {
            if let Some(spec) = obj_spec(o) {
                set_if_absent(spec, "replicas", json!(1));
                let labels = spec
                    .get("template")
                    .and_then(|t| t.pointer("/metadata/labels"))
                    .cloned();
                if let Some(labels) = labels {
                    set_if_absent(spec, "selector", labels);
                }
                template(spec, "template");
            }
        }
        ("", "Service") => service(o),
        ("", "Namespace") => namespace(o),
        ("", "Secret") => set_if_absent(o, "type", json!("Opaque")),
        ("", "PersistentVolumeClaim") => {
            if let Some(spec) = obj_spec(o) {
                set_if_absent(spec, "volumeMode", json!("Filesystem"));
            }
            if let Some(status) = obj(o, "status") {
                set_if_absent(status, "phase", json!("Pending"));
            }
        }
        ("", "PersistentVolume") => {
            if let Some(spec) = obj_spec(o) {
                set_if_absent(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
                set_if_absent(spec, "volumeMode", json!("Filesystem"));
            }
            if let Some(status) = obj(o, "status") {
                set_if_absent(status, "phase", json!("Pending"));
            }
        }
        ("", "Endpoints") => {
            for subset in array_objects(o, "subsets") {
                for p in array_objects(subset, "ports") {
                    set_if_absent(p, "protocol", json!("TCP"));
                }
            }
        }
        ("discovery.k8s.io", "EndpointSlice") => {
            for p in array_objects(o, "ports") {
                set_if_absent(p, "protocol", json!("TCP"));
                set_if_absent(p, "name", json!(""));
            }
        }
        ("apps", "Deployment") => {
            if let Some(spec) = obj_spec(o) {
                set_if_absent(spec, "replicas", json!(1));
                if let Some(strategy) = obj(spec, "strategy") {
                    set_if_absent(strategy, "type", json!("RollingUpdate"));
                    if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                        if let Some(ru) = obj(strategy, "rollingUpdate") {
                            set_if_absent(ru, "maxUnavailable", json!("25%"));
                            set_if_absent(ru, "maxSurge", json!("25%"));
                        }
                    }
                }
                set_if_absent(spec, "revisionHistoryLimit", json!(10));
                set_if_absent(spec, "progressDeadlineSeconds", json!(600));
                template(spec, "template");
            }
        }
        ("apps", "ReplicaSet") => {
            if let Some(spec) = obj_spec(o) {
                set_if_absent(spec, "replicas", json!(1));
                template(spec, "template");
            }
        }
        ("apps", "StatefulSet") => {
            if let Some(spec) = obj_spec(o) {
                set_if_absent(spec, "replicas", json!(1));
                set_if_absent(spec, "podManagementPolicy", json!("OrderedReady"));
                if let Some(us) = obj(spec, "updateStrategy") {
                    set_if_absent(us, "type", json!("RollingUpdate"));
                    if us.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                        if let Some(ru) = obj(us, "rollingUpdate") {
                            set_if_absent(ru, "partition", json!(0));
                        }
                    }
                }
                set_if_absent(spec, "revisionHistoryLimit", json!(10));
                if let Some(p) = obj(spec, "persistentVolumeClaimRetentionPolicy") {
                    set_if_absent(p, "whenDeleted", json!("Retain"));
                    set_if_absent(p, "whenScaled", json!("Retain"));
                }
                for pvc in array_objects(spec, "volumeClaimTemplates") {
                    if let Some(s) = obj_spec(pvc) {
                        set_if_absent(s, "volumeMode", json!("Filesystem"));
                    }
                    if let Some(status) = obj(pvc, "status") {
                        set_if_absent(status, "phase", json!("Pending"));
                    }
                }
                template(spec, "template");
            }
        }
        ("apps", "DaemonSet") => {
            if let Some(spec) = obj_spec(o) {
                if let Some(us) = obj(spec, "updateStrategy") {
                    set_if_absent(us, "type", json!("RollingUpdate"));
                    if us.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                        if let Some(ru) = obj(us, "rollingUpdate") {
                            set_if_absent(ru, "maxUnavailable", json!(1));
                            set_if_absent(ru, "maxSurge", json!(0));
                        }
                    }
                }
                set_if_absent(spec, "revisionHistoryLimit", json!(10));
                template(spec, "template");
            }
        }
        ("batch", "Job") => {
            generate_job_selector(o);
            if let Some(spec) = obj_spec(o) {
                job_spec(spec);
            }
        }
        ("batch", "CronJob") => {
            if let Some(spec) = obj_spec(o) {
                set_if_absent(spec, "concurrencyPolicy", json!("Allow"));
                set_if_absent(spec, "suspend", json!(false));
                set_if_absent(spec, "successfulJobsHistoryLimit", json!(3));
                set_if_absent(spec, "failedJobsHistoryLimit", json!(1));
                if let Some(jt) = existing(spec, "jobTemplate").and_then(|j| existing(j, "spec")) {
                    template(jt, "template");
                }
            }
        }
        ("autoscaling", "HorizontalPodAutoscaler") => {
            if let Some(spec) = obj_spec(o) {
                set_if_absent(spec, "minReplicas", json!(1));
                if version == "v2" && spec.get("metrics").is_none_or(Value::is_null) {
                    spec.insert(
                        "metrics".into(),
                        json!([{"type": "Resource", "resource": {"name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 80}}}]),
                    );
                }
            }
        }
        ("networking.k8s.io", "NetworkPolicy") => {
            if let Some(spec) = obj_spec(o) {
                for list in ["ingress", "egress"] {
                    for rule in array_objects(spec, list) {
                        for p in array_objects(rule, "ports") {
                            set_if_absent(p, "protocol", json!("TCP"));
                        }
                    }
                }
                if spec.get("policyTypes").is_none_or(Value::is_null) {
                    let mut types = vec![json!("Ingress")];
                    if spec.get("egress").is_some_and(|e| !e.is_null()) {
                        types.push(json!("Egress"));
                    }
                    spec.insert("policyTypes".into(), Value::Array(types));
                }
            }
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            for s in array_objects(o, "subjects") {
                let group = match s.get("kind").and_then(Value::as_str) {
                    Some("User" | "Group") => "rbac.authorization.k8s.io",
                    _ => "",
                };
                set_if_absent(s, "apiGroup", json!(group));
            }
        }
        ("storage.k8s.io", "StorageClass") => {
            set_if_absent(o, "reclaimPolicy", json!("Delete"));
            set_if_absent(o, "volumeBindingMode", json!("Immediate"));
        }
        ("scheduling.k8s.io", "PriorityClass") => {
            set_if_absent(o, "preemptionPolicy", json!("PreemptLowerPriority"));
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            if let Some(spec) = obj_spec(o) {
                if let Some(conv) = obj(spec, "conversion") {
                    set_if_absent(conv, "strategy", json!("None"));
                }
            }
        }
        _ => {}
    }
}

fn obj_spec(o: &mut Map<String, Value>) -> Option<&mut Map<String, Value>> {
    obj(o, "spec")
}

/// Mutable references to the objects of the array at `key`.
fn array_objects<'a>(m: &'a mut Map<String, Value>, key: &str) -> Vec<&'a mut Map<String, Value>> {
    match m.get_mut(key) {
        Some(Value::Array(a)) => a.iter_mut().filter_map(Value::as_object_mut).collect(),
        _ => Vec::new(),
    }
}

/// Defaults `parent[key]` as a `PodTemplateSpec`.
fn template(parent: &mut Map<String, Value>, key: &str) {
    if let Some(t) = existing(parent, key) {
        if let Some(spec) = obj(t, "spec") {
            pod::pod_spec(spec);
        }
    }
}

fn job_spec(spec: &mut Map<String, Value>) {
    let completions = spec.get("completions").filter(|v| !v.is_null()).cloned();
    let parallelism = spec.get("parallelism").filter(|v| !v.is_null()).cloned();
    match (completions, parallelism) {
        (None, None) => {
            spec.insert("completions".into(), json!(1));
            spec.insert("parallelism".into(), json!(1));
        }
        (_, None) => {
            spec.insert("parallelism".into(), json!(1));
        }
        _ => {}
    }
    set_if_absent(spec, "backoffLimit", json!(6));
    set_if_absent(spec, "completionMode", json!("NonIndexed"));
    set_if_absent(spec, "suspend", json!(false));
    let restart_on_failure = spec
        .get("template")
        .and_then(|t| t.pointer("/spec/restartPolicy"))
        .and_then(Value::as_str)
        == Some("OnFailure");
    // Upstream only defaults podReplacementPolicy without a podFailurePolicy.
    if spec.get("podFailurePolicy").is_none_or(Value::is_null) && !restart_on_failure {
        set_if_absent(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
    }
    template(spec, "template");
}

/// Upstream's `generateSelector` (job strategy `PrepareForCreate`): unless
/// `spec.manualSelector` is true, label the template with the job's name and uid (both legacy
/// and `batch.kubernetes.io/` keys) and select on `batch.kubernetes.io/controller-uid`. Labels
/// the user already set are kept; validation rejects conflicts. Needs the uid the server
/// assigned before defaulting.
fn generate_job_selector(o: &mut Map<String, Value>) {
    let meta = o.get("metadata");
    let name = meta.and_then(|m| m.get("name")).and_then(Value::as_str);
    let uid = meta.and_then(|m| m.get("uid")).and_then(Value::as_str);
    let (Some(name), Some(uid)) = (name.map(str::to_string), uid.map(str::to_string)) else {
        return;
    };
    let Some(spec) = obj_spec(o) else { return };
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    if let Some(labels) = obj(spec, "template")
        .and_then(|t| obj(t, "metadata"))
        .and_then(|m| obj(m, "labels"))
    {
        for key in ["job-name", "batch.kubernetes.io/job-name"] {
            set_if_absent(labels, key, json!(name));
        }
        for key in ["controller-uid", "batch.kubernetes.io/controller-uid"] {
            set_if_absent(labels, key, json!(uid));
        }
    }
    if let Some(ml) = obj(spec, "selector").and_then(|s| obj(s, "matchLabels")) {
        set_if_absent(ml, "batch.kubernetes.io/controller-uid", json!(uid));
    }
}

fn service(o: &mut Map<String, Value>) {
    let Some(spec) = obj_spec(o) else { return };
    set_if_absent(spec, "type", json!("ClusterIP"));
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    set_if_absent(spec, "sessionAffinity", json!("None"));
    if spec.get("sessionAffinity").and_then(Value::as_str) == Some("ClientIP") {
        if let Some(cfg) = obj(spec, "sessionAffinityConfig") {
            if let Some(cip) = obj(cfg, "clientIP") {
                set_if_absent(cip, "timeoutSeconds", json!(10800));
            }
        }
    }
    for p in array_objects(spec, "ports") {
        set_if_absent(p, "protocol", json!("TCP"));
        if let Some(port) = p.get("port").cloned() {
            set_if_absent(p, "targetPort", port);
        }
    }
    if ty != "ExternalName" {
        set_if_absent(spec, "internalTrafficPolicy", json!("Cluster"));
        set_if_absent(spec, "ipFamilyPolicy", json!("SingleStack"));
        set_if_absent(spec, "ipFamilies", json!(["IPv4"]));
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        set_if_absent(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        set_if_absent(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    // Upstream shows `status: {loadBalancer: {}}` on every service.
    if let Some(status) = obj(o, "status") {
        set_if_absent(status, "loadBalancer", json!({}));
    }
}

fn namespace(o: &mut Map<String, Value>) {
    let name = o
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    if let (Some(name), Some(meta)) = (name, obj(o, "metadata")) {
        if let Some(labels) = obj(meta, "labels") {
            set(labels, "kubernetes.io/metadata.name", json!(name));
        }
    }
    if let Some(spec) = obj_spec(o) {
        set_if_absent(spec, "finalizers", json!(["kubernetes"]));
    }
    if let Some(status) = obj(o, "status") {
        set_if_absent(status, "phase", json!("Active"));
    }
}

#[cfg(test)]
mod tests;
