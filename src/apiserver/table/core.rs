//! Printers for core/v1 kinds: pods (with upstream's status-reason logic), nodes, services,
//! endpoints, config maps, secrets, service accounts, namespaces, events, volumes, claims.

use super::format::{arr, i, map_string, opt, or_none, parse_time, s, since};
use super::{AGE, CREATED_AT, NAME, Printer, age, col, name, wide};
use jiff::Timestamp;
use serde_json::{Value, json};

pub(super) fn printer(group: &str, kind: &str) -> Option<Printer> {
    if group == "events.k8s.io" && kind == "Event" {
        // Upstream prints both versions of an Event from the one internal (core) form.
        let mut p = printer("", "Event")?;
        p.cells = |e, now| {
            event_cells(
                &crate::apiserver::event_versions::events_to_core(e.clone()),
                now,
            )
        };
        return Some(p);
    }
    if !group.is_empty() {
        return None;
    }
    let p = match kind {
        "Pod" => Printer {
            columns: vec![
                NAME,
                col(
                    "Ready",
                    "string",
                    "The aggregate readiness state of this pod for accepting traffic.",
                ),
                col(
                    "Status",
                    "string",
                    "The aggregate status of the containers in this pod.",
                ),
                col(
                    "Restarts",
                    "string",
                    "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
                ),
                AGE,
                wide(
                    "IP",
                    "string",
                    "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
                ),
                wide(
                    "Node",
                    "string",
                    "NodeName is a request to schedule this pod onto a specific node.",
                ),
                wide(
                    "Nominated Node",
                    "string",
                    "nominatedNodeName is set only when this pod preempts other pods on the node.",
                ),
                wide(
                    "Readiness Gates",
                    "string",
                    "If specified, all readiness gates will be evaluated for pod readiness.",
                ),
            ],
            cells: pod_cells,
        },
        "Node" => Printer {
            columns: vec![
                NAME,
                col("Status", "string", "The status of the node"),
                col("Roles", "string", "The roles of the node"),
                AGE,
                col("Version", "string", "Kubelet Version reported by the node."),
                wide(
                    "Internal-IP",
                    "string",
                    "List of addresses reachable to the node. Queried from cloud provider, if available.",
                ),
                wide(
                    "External-IP",
                    "string",
                    "List of addresses reachable to the node. Queried from cloud provider, if available.",
                ),
                wide(
                    "OS-Image",
                    "string",
                    "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
                ),
                wide(
                    "Kernel-Version",
                    "string",
                    "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
                ),
                wide(
                    "Container-Runtime",
                    "string",
                    "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
                ),
            ],
            cells: node_cells,
        },
        "Service" => Printer {
            columns: vec![
                NAME,
                col(
                    "Type",
                    "string",
                    "type determines how the Service is exposed.",
                ),
                col(
                    "Cluster-IP",
                    "string",
                    "clusterIP is the IP address of the service and is usually assigned randomly.",
                ),
                col(
                    "External-IP",
                    "string",
                    "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
                ),
                col(
                    "Port(s)",
                    "string",
                    "The list of ports that are exposed by this service.",
                ),
                AGE,
                wide(
                    "Selector",
                    "string",
                    "Route service traffic to pods with label keys and values matching this selector.",
                ),
            ],
            cells: service_cells,
        },
        "Endpoints" => Printer {
            columns: vec![
                NAME,
                col("Endpoints", "string", "Endpoints of the resource."),
                AGE,
            ],
            cells: |o, now| vec![name(o), json!(endpoints_string(o)), age(o, now)],
        },
        "ConfigMap" => Printer {
            columns: vec![
                NAME,
                col("Data", "integer", "Data contains the configuration data."),
                AGE,
            ],
            cells: |o, now| {
                let n = count(o, "/data") + count(o, "/binaryData");
                vec![name(o), json!(n), age(o, now)]
            },
        },
        "Secret" => Printer {
            columns: vec![
                NAME,
                col("Type", "string", "The type of the secret"),
                col("Data", "integer", "The number of data items in the secret"),
                AGE,
            ],
            cells: |o, now| {
                let n = count(o, "/data") + count(o, "/stringData");
                vec![name(o), json!(s(o, "/type")), json!(n), age(o, now)]
            },
        },
        "ServiceAccount" => Printer {
            columns: vec![
                NAME,
                col(
                    "Secrets",
                    "string",
                    "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
                ),
                AGE,
            ],
            cells: |o, now| vec![name(o), json!(arr(o, "/secrets").len()), age(o, now)],
        },
        "Namespace" => Printer {
            columns: vec![
                NAME,
                col("Status", "string", "The status of the namespace"),
                AGE,
            ],
            cells: |o, now| vec![name(o), json!(s(o, "/status/phase")), age(o, now)],
        },
        "Event" => Printer {
            columns: vec![
                col("Last Seen", "string", "Time when last Event occurred"),
                col("Type", "string", "Type of event"),
                col("Reason", "string", "Reason of event"),
                col("Object", "string", "Object this event is about"),
                wide("Subobject", "string", "Subobject this event is about"),
                wide("Source", "string", "Source of event"),
                col("Message", "string", "Message of event"),
                wide("First Seen", "string", "Time when first Event occurred"),
                wide("Count", "string", "Number of Event occurrences"),
                wide("Name", "string", "Name of event"),
            ],
            cells: event_cells,
        },
        "PersistentVolume" => Printer {
            columns: vec![
                NAME,
                col(
                    "Capacity",
                    "string",
                    "capacity is the description of the persistent volume's resources and capacity.",
                ),
                col(
                    "Access Modes",
                    "string",
                    "accessModes contains all ways the volume can be mounted.",
                ),
                col(
                    "Reclaim Policy",
                    "string",
                    "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim.",
                ),
                col(
                    "Status",
                    "string",
                    "phase indicates if a volume is available, bound to a claim, or released by a claim.",
                ),
                col(
                    "Claim",
                    "string",
                    "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim.",
                ),
                col(
                    "StorageClass",
                    "string",
                    "storageClassName is the name of StorageClass to which this persistent volume belongs.",
                ),
                col(
                    "VolumeAttributesClass",
                    "string",
                    "Name of VolumeAttributesClass to which this persistent volume belongs.",
                ),
                col(
                    "Reason",
                    "string",
                    "reason is a brief CamelCase string that describes any failure.",
                ),
                AGE,
                wide(
                    "VolumeMode",
                    "string",
                    "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state.",
                ),
            ],
            cells: |o, now| {
                let claim = match (
                    opt(o, "/spec/claimRef/namespace"),
                    opt(o, "/spec/claimRef/name"),
                ) {
                    (Some(ns), Some(n)) => format!("{ns}/{n}"),
                    _ => String::new(),
                };
                vec![
                    name(o),
                    json!(s(o, "/spec/capacity/storage")),
                    json!(access_modes(arr(o, "/spec/accessModes"))),
                    json!(s(o, "/spec/persistentVolumeReclaimPolicy")),
                    json!(s(o, "/status/phase")),
                    json!(claim),
                    json!(s(o, "/spec/storageClassName")),
                    json!(opt(o, "/spec/volumeAttributesClassName").unwrap_or("<unset>")),
                    json!(s(o, "/status/reason")),
                    age(o, now),
                    json!(opt(o, "/spec/volumeMode").unwrap_or("<unset>")),
                ]
            },
        },
        "PersistentVolumeClaim" => Printer {
            columns: vec![
                NAME,
                col(
                    "Status",
                    "string",
                    "phase represents the current phase of PersistentVolumeClaim.",
                ),
                col(
                    "Volume",
                    "string",
                    "volumeName is the binding reference to the PersistentVolume backing this claim.",
                ),
                col(
                    "Capacity",
                    "string",
                    "capacity represents the actual resources of the underlying volume.",
                ),
                col(
                    "Access Modes",
                    "string",
                    "accessModes contains the actual access modes the volume backing the PVC has.",
                ),
                col(
                    "StorageClass",
                    "string",
                    "storageClassName is the name of the StorageClass required by the claim.",
                ),
                col(
                    "VolumeAttributesClass",
                    "string",
                    "volumeAttributesClassName may be used to set the VolumeAttributesClass used by this claim.",
                ),
                AGE,
                wide(
                    "VolumeMode",
                    "string",
                    "volumeMode defines what type of volume is required by the claim.",
                ),
            ],
            cells: |o, now| {
                let bound = s(o, "/status/phase") == "Bound";
                let (cap, modes) = if bound {
                    (
                        s(o, "/status/capacity/storage").to_string(),
                        access_modes(arr(o, "/status/accessModes")),
                    )
                } else {
                    (String::new(), String::new())
                };
                vec![
                    name(o),
                    json!(s(o, "/status/phase")),
                    json!(s(o, "/spec/volumeName")),
                    json!(cap),
                    json!(modes),
                    json!(s(o, "/spec/storageClassName")),
                    json!(opt(o, "/spec/volumeAttributesClassName").unwrap_or("<unset>")),
                    age(o, now),
                    json!(opt(o, "/spec/volumeMode").unwrap_or("<unset>")),
                ]
            },
        },
        "ResourceQuota" => Printer {
            columns: vec![
                NAME,
                AGE,
                col(
                    "Request",
                    "string",
                    "Request represents a minimum amount of cpu/memory that a container may consume.",
                ),
                col(
                    "Limit",
                    "string",
                    "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
                ),
            ],
            cells: |o, now| {
                let (req, lim) = quota_strings(o);
                vec![name(o), age(o, now), json!(req), json!(lim)]
            },
        },
        "LimitRange" => Printer {
            columns: vec![NAME, CREATED_AT],
            cells: created_at_cells,
        },
        "PodTemplate" => Printer {
            columns: vec![
                col("Template", "string", "Name of the template"),
                col(
                    "Containers",
                    "string",
                    "Names of each container in the template.",
                ),
                col(
                    "Images",
                    "string",
                    "Images referenced by each container in the template.",
                ),
                col("Pod Labels", "string", "The labels for the pod template."),
            ],
            cells: |o, _| {
                let (c, im) = super::format::containers_images(
                    o.pointer("/template/spec").unwrap_or(&Value::Null),
                );
                vec![
                    name(o),
                    json!(c),
                    json!(im),
                    json!(map_string(o, "/template/metadata/labels")),
                ]
            },
        },
        "ReplicationController" => Printer {
            columns: vec![
                NAME,
                col(
                    "Desired",
                    "integer",
                    "Replicas is the number of desired replicas.",
                ),
                col(
                    "Current",
                    "integer",
                    "Replicas is the most recently observed number of replicas.",
                ),
                col(
                    "Ready",
                    "integer",
                    "The number of ready replicas for this replication controller.",
                ),
                AGE,
                wide(
                    "Containers",
                    "string",
                    "Names of each container in the template.",
                ),
                wide(
                    "Images",
                    "string",
                    "Images referenced by each container in the template.",
                ),
                wide(
                    "Selector",
                    "string",
                    "Selector is a label query over pods that should match the Replicas count.",
                ),
            ],
            cells: |o, now| {
                let (c, im) = super::format::containers_images(
                    o.pointer("/spec/template/spec").unwrap_or(&Value::Null),
                );
                vec![
                    name(o),
                    json!(i(o, "/spec/replicas")),
                    json!(i(o, "/status/replicas")),
                    json!(i(o, "/status/readyReplicas")),
                    age(o, now),
                    json!(c),
                    json!(im),
                    json!(map_string(o, "/spec/selector")),
                ]
            },
        },
        _ => return None,
    };
    Some(p)
}

pub(super) fn created_at_cells(o: &Value, _: Timestamp) -> Vec<Value> {
    let ts = opt(o, "/metadata/creationTimestamp")
        .and_then(parse_time)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    vec![name(o), json!(ts)]
}

fn count(o: &Value, pointer: &str) -> usize {
    o.pointer(pointer)
        .and_then(Value::as_object)
        .map_or(0, |m| m.len())
}

fn access_modes(modes: &[Value]) -> String {
    let mut out: Vec<&str> = Vec::new();
    for (full, short) in [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ] {
        if modes.iter().any(|m| m.as_str() == Some(full)) {
            out.push(short);
        }
    }
    out.join(",")
}

fn quota_strings(o: &Value) -> (String, String) {
    let mut req = Vec::new();
    let mut lim = Vec::new();
    if let Some(hard) = o.pointer("/spec/hard").and_then(Value::as_object) {
        for (k, v) in hard {
            let used = o
                .pointer(&format!("/status/used/{}", k.replace('/', "~1")))
                .and_then(Value::as_str)
                .unwrap_or("0");
            let entry = format!("{k}: {used}/{}", v.as_str().unwrap_or_default());
            if k.starts_with("limits.") {
                lim.push(entry);
            } else {
                req.push(entry);
            }
        }
    }
    (req.join(", "), lim.join(", "))
}

fn cond_true(o: &Value, pointer: &str, ty: &str) -> bool {
    arr(o, pointer)
        .iter()
        .any(|c| s(c, "/type") == ty && s(c, "/status") == "True")
}

fn later(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

/// Upstream `printPod`: readiness count, status reason, restarts with last restart age.
pub(crate) fn pod_cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    let init_specs = arr(pod, "/spec/initContainers");
    let restartable = |n: &str| {
        init_specs
            .iter()
            .any(|c| s(c, "/name") == n && s(c, "/restartPolicy") == "Always")
    };
    let total = arr(pod, "/spec/containers").len()
        + init_specs
            .iter()
            .filter(|c| s(c, "/restartPolicy") == "Always")
            .count();
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart: Option<Timestamp> = None;
    let mut sidecar_last_restart: Option<Timestamp> = None;
    let phase = s(pod, "/status/phase");
    let mut reason = opt(pod, "/status/reason").unwrap_or(phase).to_string();
    if arr(pod, "/status/conditions")
        .iter()
        .any(|c| s(c, "/type") == "PodScheduled" && s(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".into();
    }
    let finished = |c: &Value| opt(c, "/lastState/terminated/finishedAt").and_then(parse_time);
    let mut initializing = false;
    for (idx, c) in arr(pod, "/status/initContainerStatuses").iter().enumerate() {
        restarts += i(c, "/restartCount");
        last_restart = later(last_restart, finished(c));
        let is_sidecar = restartable(s(c, "/name"));
        if is_sidecar {
            sidecar_restarts += i(c, "/restartCount");
            sidecar_last_restart = later(sidecar_last_restart, finished(c));
        }
        let terminated = c.pointer("/state/terminated");
        if terminated.is_some_and(|t| i(t, "/exitCode") == 0) {
            continue;
        }
        if is_sidecar && c.get("started").and_then(Value::as_bool) == Some(true) {
            if c.get("ready").and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = terminated {
            reason = match opt(t, "/reason") {
                Some(r) => format!("Init:{r}"),
                None if i(t, "/signal") != 0 => format!("Init:Signal:{}", i(t, "/signal")),
                None => format!("Init:ExitCode:{}", i(t, "/exitCode")),
            };
        } else if let Some(w) = opt(c, "/state/waiting/reason").filter(|r| *r != "PodInitializing")
        {
            reason = format!("Init:{w}");
        } else {
            reason = format!("Init:{idx}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }
    if !initializing || cond_true(pod, "/status/conditions", "Initialized") {
        restarts = sidecar_restarts;
        last_restart = sidecar_last_restart;
        let mut has_running = false;
        for c in arr(pod, "/status/containerStatuses").iter().rev() {
            restarts += i(c, "/restartCount");
            last_restart = later(last_restart, finished(c));
            if let Some(w) = opt(c, "/state/waiting/reason") {
                reason = w.to_string();
            } else if let Some(t) = c.pointer("/state/terminated") {
                reason = match opt(t, "/reason") {
                    Some(r) => r.to_string(),
                    None if i(t, "/signal") != 0 => format!("Signal:{}", i(t, "/signal")),
                    None => format!("ExitCode:{}", i(t, "/exitCode")),
                };
            } else if c.get("ready").and_then(Value::as_bool) == Some(true)
                && c.pointer("/state/running").is_some()
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if cond_true(pod, "/status/conditions", "Ready") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }
    if pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|d| !d.is_null())
    {
        if s(pod, "/status/reason") == "NodeLost" {
            reason = "Unknown".into();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".into();
        }
    }
    let restarts_str = match last_restart {
        Some(t) if restarts != 0 => format!(
            "{restarts} ({} ago)",
            super::format::human_duration(now.duration_since(t).as_secs())
        ),
        _ => restarts.to_string(),
    };
    let ip = arr(pod, "/status/podIPs")
        .first()
        .map(|p| s(p, "/ip").to_string())
        .filter(|ip| !ip.is_empty())
        .or_else(|| opt(pod, "/status/podIP").map(str::to_string))
        .unwrap_or_else(|| "<none>".into());
    let gates = arr(pod, "/spec/readinessGates");
    let gates_str = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let ok = gates
            .iter()
            .filter(|g| {
                let ty = s(g, "/conditionType");
                arr(pod, "/status/conditions")
                    .iter()
                    .find(|c| s(c, "/type") == ty)
                    .is_some_and(|c| s(c, "/status") == "True")
            })
            .count();
        format!("{ok}/{}", gates.len())
    };
    vec![
        name(pod),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_str),
        age(pod, now),
        json!(ip),
        json!(or_none(s(pod, "/spec/nodeName").to_string())),
        json!(or_none(s(pod, "/status/nominatedNodeName").to_string())),
        json!(gates_str),
    ]
}

fn node_cells(node: &Value, now: Timestamp) -> Vec<Value> {
    let mut status: Vec<&str> = Vec::new();
    match arr(node, "/status/conditions")
        .iter()
        .find(|c| s(c, "/type") == "Ready")
    {
        Some(c) if s(c, "/status") == "True" => status.push("Ready"),
        Some(_) => status.push("NotReady"),
        None => status.push("Unknown"),
    }
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled");
    }
    let mut roles: Vec<String> = Vec::new();
    if let Some(labels) = node.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.push(role.to_string());
                }
            } else if k == "kubernetes.io/role" {
                if let Some(v) = v.as_str().filter(|v| !v.is_empty()) {
                    roles.push(v.to_string());
                }
            }
        }
    }
    roles.sort();
    roles.dedup();
    let addr = |ty: &str| {
        arr(node, "/status/addresses")
            .iter()
            .find(|a| s(a, "/type") == ty)
            .map(|a| s(a, "/address").to_string())
            .unwrap_or_else(|| "<none>".into())
    };
    let unknown = |p: &str| opt(node, p).unwrap_or("<unknown>").to_string();
    vec![
        name(node),
        json!(status.join(",")),
        json!(or_none(roles.join(","))),
        age(node, now),
        json!(s(node, "/status/nodeInfo/kubeletVersion")),
        json!(addr("InternalIP")),
        json!(addr("ExternalIP")),
        json!(unknown("/status/nodeInfo/osImage")),
        json!(unknown("/status/nodeInfo/kernelVersion")),
        json!(unknown("/status/nodeInfo/containerRuntimeVersion")),
    ]
}

fn service_cells(svc: &Value, now: Timestamp) -> Vec<Value> {
    let ty = opt(svc, "/spec/type").unwrap_or("ClusterIP");
    let external_ips: Vec<&str> = arr(svc, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let external = match ty {
        "ClusterIP" | "NodePort" => or_none(external_ips.join(",")),
        "LoadBalancer" => {
            let mut ips: Vec<String> = arr(svc, "/status/loadBalancer/ingress")
                .iter()
                .filter_map(|i| opt(i, "/ip").or_else(|| opt(i, "/hostname")))
                .map(str::to_string)
                .collect();
            ips.extend(external_ips.iter().map(|s| s.to_string()));
            if ips.is_empty() {
                "<pending>".into()
            } else {
                ips.join(",")
            }
        }
        "ExternalName" => s(svc, "/spec/externalName").to_string(),
        _ => "<unknown>".into(),
    };
    let ports: Vec<String> = arr(svc, "/spec/ports")
        .iter()
        .map(|p| {
            let proto = opt(p, "/protocol").unwrap_or("TCP");
            let port = i(p, "/port");
            match i(p, "/nodePort") {
                0 => format!("{port}/{proto}"),
                np => format!("{port}:{np}/{proto}"),
            }
        })
        .collect();
    vec![
        name(svc),
        json!(ty),
        json!(or_none(s(svc, "/spec/clusterIP").to_string())),
        json!(external),
        json!(or_none(ports.join(","))),
        age(svc, now),
        json!(map_string(svc, "/spec/selector")),
    ]
}

/// Upstream `formatEndpoints`: `ip:port` pairs, at most three, then `+ N more...`.
fn endpoints_string(ep: &Value) -> String {
    let mut list = Vec::new();
    let mut total = 0usize;
    for subset in arr(ep, "/subsets") {
        let ports = arr(subset, "/ports");
        for addr in arr(subset, "/addresses") {
            let ip = s(addr, "/ip");
            if ports.is_empty() {
                total += 1;
                if list.len() < 3 {
                    list.push(ip.to_string());
                }
            }
            for p in ports {
                total += 1;
                if list.len() < 3 {
                    list.push(format!("{ip}:{}", i(p, "/port")));
                }
            }
        }
    }
    let mut out = list.join(",");
    if total > list.len() {
        out.push_str(&format!(" + {} more...", total - list.len()));
    }
    or_none(out)
}

fn event_cells(e: &Value, now: Timestamp) -> Vec<Value> {
    let last = opt(e, "/lastTimestamp")
        .or_else(|| opt(e, "/eventTime"))
        .or_else(|| opt(e, "/metadata/creationTimestamp"));
    let first = opt(e, "/firstTimestamp")
        .or_else(|| opt(e, "/eventTime"))
        .or_else(|| opt(e, "/metadata/creationTimestamp"));
    let mut source = s(e, "/source/component").to_string();
    if source.is_empty() {
        source = s(e, "/reportingComponent").to_string();
    }
    if let Some(host) = opt(e, "/source/host") {
        source = format!("{source}, {host}");
    }
    let count = match i(e, "/count") {
        0 => 1,
        n => n,
    };
    vec![
        json!(since(last, now)),
        json!(s(e, "/type")),
        json!(s(e, "/reason")),
        json!(format!(
            "{}/{}",
            s(e, "/involvedObject/kind").to_lowercase(),
            s(e, "/involvedObject/name")
        )),
        json!(s(e, "/involvedObject/fieldPath")),
        json!(source),
        json!(s(e, "/message").trim()),
        json!(since(first, now)),
        json!(count),
        name(e),
    ]
}
