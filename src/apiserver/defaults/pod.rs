//! Pod and pod-template defaulting (upstream `SetDefaults_PodSpec`, `_Container`, `_Probe`,
//! volume sources), plus what admission adds to bare pods (service account, default
//! tolerations, priority) so `kubectl get pod -o yaml` reads like a real cluster's.

use super::{set, set_if_absent};
use serde_json::{Map, Value, json};

/// Defaults a pod spec as found in a pod or any pod template.
pub(super) fn pod_spec(spec: &mut Map<String, Value>) {
    set_if_absent(spec, "restartPolicy", json!("Always"));
    set_if_absent(spec, "terminationGracePeriodSeconds", json!(30));
    set_if_absent(spec, "dnsPolicy", json!("ClusterFirst"));
    set_if_absent(spec, "securityContext", json!({}));
    set_if_absent(spec, "schedulerName", json!("default-scheduler"));
    if let Some(sa) = spec.get("serviceAccountName").cloned() {
        set_if_absent(spec, "serviceAccount", sa);
    }
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        if let Some(Value::Array(cs)) = spec.get_mut(list) {
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                container(c, host_network);
            }
        }
    }
    if let Some(Value::Array(vols)) = spec.get_mut("volumes") {
        for v in vols.iter_mut().filter_map(Value::as_object_mut) {
            volume(v);
        }
    }
}

/// What `kubectl get pod -o yaml` shows beyond template defaults: `SetDefaults_Pod` and the
/// ServiceAccount, DefaultTolerationSeconds and Priority admission plugins.
pub(super) fn pod(obj: &mut Map<String, Value>) {
    let spec = obj
        .entry("spec")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(spec) = spec else { return };
    set_if_absent(spec, "enableServiceLinks", json!(true));
    set_if_absent(spec, "serviceAccountName", json!("default"));
    if let Some(sa) = spec.get("serviceAccountName").cloned() {
        set_if_absent(spec, "serviceAccount", sa);
    }
    set_if_absent(spec, "priority", json!(0));
    set_if_absent(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    // Containers with limits but no requests get requests = limits.
    for list in ["initContainers", "containers"] {
        if let Some(Value::Array(cs)) = spec.get_mut(list) {
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                requests_from_limits(c);
            }
        }
    }
    pod_spec(spec);
    let tolerations = spec
        .entry("tolerations")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(ts) = tolerations {
        for key in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ] {
            let present = ts.iter().any(|t| {
                let k = t.get("key").and_then(Value::as_str);
                let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
                (k == Some(key) || k.is_none()) && (effect.is_empty() || effect == "NoExecute")
            });
            if !present {
                ts.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
            }
        }
    }
    let qos = qos_class(spec);
    let status = obj
        .entry("status")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(status) = status {
        set_if_absent(status, "phase", json!("Pending"));
        set(status, "qosClass", json!(qos));
    }
}

fn requests_from_limits(c: &mut Map<String, Value>) {
    let Some(Value::Object(res)) = c.get_mut("resources") else {
        return;
    };
    let Some(Value::Object(limits)) = res.get("limits").cloned() else {
        return;
    };
    let requests = res
        .entry("requests")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(req) = requests {
        for (k, v) in limits {
            req.entry(k).or_insert(v);
        }
    }
}

/// Upstream `GetPodQOS` over the (defaulted) spec.
fn qos_class(spec: &Map<String, Value>) -> &'static str {
    let mut any = false;
    let mut guaranteed = true;
    for list in ["initContainers", "containers"] {
        for c in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let res = c.get("resources");
            let req = res
                .and_then(|r| r.get("requests"))
                .and_then(Value::as_object);
            let lim = res.and_then(|r| r.get("limits")).and_then(Value::as_object);
            let relevant = |m: Option<&Map<String, Value>>| {
                m.map(|m| {
                    m.iter()
                        .filter(|(k, _)| *k == "cpu" || *k == "memory")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect::<Map<String, Value>>()
                })
                .unwrap_or_default()
            };
            let (req, lim) = (relevant(req), relevant(lim));
            if !req.is_empty() || !lim.is_empty() {
                any = true;
            }
            if lim.len() != 2 || req != lim {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// `Always` for `:latest` or untagged images, `IfNotPresent` otherwise (digests too).
pub fn image_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, tag)) if tag != "latest" => "IfNotPresent",
        _ => "Always",
    }
}

fn container(c: &mut Map<String, Value>, host_network: bool) {
    let image = c
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    set_if_absent(c, "imagePullPolicy", json!(image_pull_policy(&image)));
    set_if_absent(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_if_absent(c, "terminationMessagePolicy", json!("File"));
    set_if_absent(c, "resources", json!({}));
    if let Some(Value::Array(ports)) = c.get_mut("ports") {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            set_if_absent(p, "protocol", json!("TCP"));
            if host_network {
                if let Some(cp) = p.get("containerPort").cloned() {
                    set_if_absent(p, "hostPort", cp);
                }
            }
        }
    }
    if let Some(Value::Array(env)) = c.get_mut("env") {
        for e in env.iter_mut() {
            if let Some(Value::Object(f)) = e.pointer_mut("/valueFrom/fieldRef") {
                set_if_absent(f, "apiVersion", json!("v1"));
            }
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(Value::Object(p)) = c.get_mut(probe) {
            set_if_absent(p, "timeoutSeconds", json!(1));
            set_if_absent(p, "periodSeconds", json!(10));
            set_if_absent(p, "successThreshold", json!(1));
            set_if_absent(p, "failureThreshold", json!(3));
            if let Some(Value::Object(h)) = p.get_mut("httpGet") {
                set_if_absent(h, "path", json!("/"));
                set_if_absent(h, "scheme", json!("HTTP"));
            }
        }
    }
    for hook in ["postStart", "preStop"] {
        if let Some(Value::Object(h)) = c.get_mut("lifecycle").and_then(|l| l.get_mut(hook)) {
            if let Some(Value::Object(g)) = h.get_mut("httpGet") {
                set_if_absent(g, "path", json!("/"));
                set_if_absent(g, "scheme", json!("HTTP"));
            }
        }
    }
}

const VOLUME_SOURCES: [&str; 20] = [
    "emptyDir",
    "hostPath",
    "secret",
    "configMap",
    "projected",
    "downwardAPI",
    "persistentVolumeClaim",
    "nfs",
    "csi",
    "ephemeral",
    "image",
    "iscsi",
    "rbd",
    "cephfs",
    "fc",
    "flexVolume",
    "gitRepo",
    "glusterfs",
    "awsElasticBlockStore",
    "gcePersistentDisk",
];

fn volume(v: &mut Map<String, Value>) {
    if !VOLUME_SOURCES.iter().any(|s| v.contains_key(*s)) {
        v.insert("emptyDir".into(), json!({}));
    }
    for src in ["secret", "configMap", "projected", "downwardAPI"] {
        if let Some(Value::Object(s)) = v.get_mut(src) {
            set_if_absent(s, "defaultMode", json!(420));
        }
    }
    if let Some(Value::Object(h)) = v.get_mut("hostPath") {
        set_if_absent(h, "type", json!(""));
    }
}
