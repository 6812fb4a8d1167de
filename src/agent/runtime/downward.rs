//! Downward-API values for container environment variables: `fieldRef` paths
//! (`metadata.labels['k']`, `status.podIP`, …) and `resourceFieldRef` (a container's limits and
//! requests, limits defaulting to the node's capacity as the kubelet does).
//!
//! Owns: turning a selector into the string the variable gets. Pure except for reading the
//! host's CPU count and memory size. May call: `crate::quantity`.

use k8s_openapi::api::core::v1::{Container, Pod, ResourceFieldSelector};

/// What a `fieldRef` resolves against besides the pod object.
pub struct PodRuntimeInfo<'a> {
    pub node_name: &'a str,
    pub pod_ip: &'a str,
    pub host_ip: &'a str,
}

/// The value of `fieldPath`, or an error naming the unsupported path.
pub fn field_ref(pod: &Pod, path: &str, info: &PodRuntimeInfo<'_>) -> Result<String, String> {
    let meta = &pod.metadata;
    if let Some(key) = subscript(path, "metadata.labels") {
        return Ok(meta
            .labels
            .as_ref()
            .and_then(|l| l.get(key).cloned())
            .unwrap_or_default());
    }
    if let Some(key) = subscript(path, "metadata.annotations") {
        return Ok(meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(key).cloned())
            .unwrap_or_default());
    }
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => info.node_name.to_string(),
        "spec.serviceAccountName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.podIPs" => info.pod_ip.to_string(),
        "status.hostIP" | "status.hostIPs" => info.host_ip.to_string(),
        other => return Err(format!("fieldRef {other} is not supported")),
    })
}

/// `metadata.labels['key']` → `key` (single or double quotes, as upstream accepts).
fn subscript<'a>(path: &'a str, field: &str) -> Option<&'a str> {
    let rest = path
        .strip_prefix(field)?
        .strip_prefix('[')?
        .strip_suffix(']')?;
    rest.strip_prefix('\'')
        .and_then(|r| r.strip_suffix('\''))
        .or_else(|| rest.strip_prefix('"').and_then(|r| r.strip_suffix('"')))
}

/// Node capacity used when a container declares no limit (upstream: node allocatable).
pub struct NodeCapacity {
    pub cpu_cores: f64,
    pub memory_bytes: f64,
    pub ephemeral_storage_bytes: f64,
}

impl NodeCapacity {
    /// This host's CPU count and memory; ephemeral storage as the node reports it (10Gi).
    pub fn host() -> Self {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let mem_kib: f64 = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0.0);
        NodeCapacity {
            cpu_cores: cpus as f64,
            memory_bytes: mem_kib * 1024.0,
            ephemeral_storage_bytes: 10.0 * 1024.0 * 1024.0 * 1024.0,
        }
    }
}

/// The value of a `resourceFieldRef` for container `c`: the quantity divided by the divisor
/// (default 1), rounded up, as an integer string — upstream's `ExtractResourceValue`.
pub fn resource_field_ref(
    c: &Container,
    sel: &ResourceFieldSelector,
    node: &NodeCapacity,
) -> Result<String, String> {
    let (kind, resource) = sel
        .resource
        .split_once('.')
        .ok_or_else(|| format!("resourceFieldRef {} is not supported", sel.resource))?;
    let res = c.resources.as_ref();
    let declared = match kind {
        "limits" => res.and_then(|r| r.limits.as_ref()),
        "requests" => res.and_then(|r| r.requests.as_ref()),
        _ => {
            return Err(format!(
                "resourceFieldRef {} is not supported",
                sel.resource
            ));
        }
    }
    .and_then(|m| m.get(resource))
    .map(|q| crate::quantity::parse_quantity(&q.0).ok_or_else(|| format!("bad quantity {:?}", q.0)))
    .transpose()?;
    let value = match (declared, kind) {
        (Some(v), _) => v,
        // Without a limit a container may use the whole node.
        (None, "limits") => match resource {
            "cpu" => node.cpu_cores,
            "memory" => node.memory_bytes,
            "ephemeral-storage" => node.ephemeral_storage_bytes,
            _ => {
                return Err(format!(
                    "resourceFieldRef {} is not supported",
                    sel.resource
                ));
            }
        },
        (None, _) => 0.0,
    };
    if !matches!(resource, "cpu" | "memory" | "ephemeral-storage") {
        return Err(format!(
            "resourceFieldRef {} is not supported",
            sel.resource
        ));
    }
    let divisor = match &sel.divisor {
        Some(d) => crate::quantity::parse_quantity(&d.0)
            .filter(|d| *d > 0.0)
            .ok_or_else(|| format!("bad divisor {:?}", d.0))?,
        None => 1.0,
    };
    // Work in milli-units so `100m / 1m` is exactly 100, as upstream's integer arithmetic.
    let milli = |x: f64| (x * 1000.0).round();
    let out = (milli(value) / milli(divisor)).ceil();
    Ok(format!("{out}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1",
                "labels": {"app": "web"},
                "annotations": {"batch.kubernetes.io/job-completion-index": "3"}},
            "spec": {"serviceAccountName": "sa", "containers": []}
        }))
        .unwrap()
    }

    const INFO: PodRuntimeInfo<'static> = PodRuntimeInfo {
        node_name: "n1",
        pod_ip: "10.42.0.5",
        host_ip: "192.0.2.1",
    };

    #[test]
    fn field_refs_read_labels_annotations_and_runtime_facts() {
        let p = pod();
        let get = |path: &str| field_ref(&p, path, &INFO).unwrap();
        assert_eq!(get("metadata.labels['app']"), "web");
        assert_eq!(
            get("metadata.annotations['batch.kubernetes.io/job-completion-index']"),
            "3"
        );
        assert_eq!(get("metadata.labels[\"missing\"]"), "");
        assert_eq!(get("spec.serviceAccountName"), "sa");
        assert_eq!(get("status.podIP"), "10.42.0.5");
        assert_eq!(get("spec.nodeName"), "n1");
        assert!(field_ref(&p, "metadata.labels", &INFO).is_err());
        assert!(field_ref(&p, "spec.bogus", &INFO).is_err());
    }

    fn container(resources: serde_json::Value) -> Container {
        serde_json::from_value(json!({"name": "c", "resources": resources})).unwrap()
    }

    fn sel(resource: &str, divisor: Option<&str>) -> ResourceFieldSelector {
        ResourceFieldSelector {
            resource: resource.into(),
            divisor: divisor.map(|d| Quantity(d.into())),
            container_name: None,
        }
    }

    #[test]
    fn resource_field_refs_divide_round_up_and_default_limits_to_the_node() {
        let node = NodeCapacity {
            cpu_cores: 4.0,
            memory_bytes: 8.0 * 1024.0 * 1024.0 * 1024.0,
            ephemeral_storage_bytes: 1.0,
        };
        let c = container(json!({"limits": {"cpu": "250m", "memory": "64Mi"},
            "requests": {"cpu": "100m"}}));
        let get = |r: &str, d: Option<&str>| resource_field_ref(&c, &sel(r, d), &node).unwrap();
        assert_eq!(get("limits.cpu", None), "1"); // 0.25 core rounds up
        assert_eq!(get("limits.cpu", Some("1m")), "250");
        assert_eq!(get("requests.cpu", Some("1m")), "100");
        assert_eq!(get("limits.memory", None), "67108864");
        assert_eq!(get("limits.memory", Some("1Mi")), "64");
        assert_eq!(get("requests.memory", None), "0");
        let none = container(json!({}));
        assert_eq!(
            resource_field_ref(&none, &sel("limits.cpu", None), &node).unwrap(),
            "4"
        );
        assert_eq!(
            resource_field_ref(&none, &sel("limits.memory", Some("1Gi")), &node).unwrap(),
            "8"
        );
        assert!(resource_field_ref(&c, &sel("limits.gpu", None), &node).is_err());
        assert!(resource_field_ref(&c, &sel("limits.cpu", Some("0")), &node).is_err());
    }
}
