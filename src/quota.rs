//! ResourceQuota arithmetic shared by the quota controller (which recomputes `status.used`)
//! and the API server's admission (which charges a create before storing it): what an object
//! uses of each quota resource, the pod container constraints, and upstream's messages.
//!
//! Pure: works on JSON objects, calls nothing but [`crate::quantity`].

use crate::quantity::parse_quantity;
use serde_json::Value;
use std::collections::BTreeMap;

/// Resource name → amount.
pub type Usage = BTreeMap<String, f64>;

/// The quota resource that counts objects of `plural` in `group` (`count/pods`,
/// `count/deployments.apps`).
pub fn count_name(group: &str, plural: &str) -> String {
    if group.is_empty() {
        format!("count/{plural}")
    } else {
        format!("count/{plural}.{group}")
    }
}

fn quantity_at(v: Option<&Value>) -> f64 {
    match v {
        Some(Value::String(s)) => parse_quantity(s).unwrap_or(0.0),
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// What one container asks for: `requests.X` (a limit stands in for a missing request, as
/// upstream's defaulting does) and `limits.X`.
fn container_usage(c: &Value) -> Usage {
    let mut u = Usage::new();
    let req = c.pointer("/resources/requests");
    let lim = c.pointer("/resources/limits");
    for r in ["cpu", "memory", "ephemeral-storage"] {
        let request = req
            .and_then(|m| m.get(r))
            .or_else(|| lim.and_then(|m| m.get(r)));
        if request.is_some() {
            u.insert(format!("requests.{r}"), quantity_at(request));
        }
        if let Some(l) = lim.and_then(|m| m.get(r)) {
            u.insert(format!("limits.{r}"), quantity_at(Some(l)));
        }
    }
    u
}

fn add(into: &mut Usage, from: &Usage) {
    for (k, v) in from {
        *into.entry(k.clone()).or_default() += v;
    }
}

/// A pod's compute usage: the containers' sum, or the largest init container when larger.
fn pod_compute(spec: &Value) -> Usage {
    let mut sum = Usage::new();
    for c in spec
        .get("containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        add(&mut sum, &container_usage(c));
    }
    for c in spec
        .get("initContainers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for (k, v) in container_usage(c) {
            let e = sum.entry(k).or_default();
            if v > *e {
                *e = v;
            }
        }
    }
    for r in ["cpu", "memory", "ephemeral-storage"] {
        if let Some(v) = sum.get(&format!("requests.{r}")).copied() {
            sum.insert(r.to_string(), v);
        }
    }
    sum
}

/// Whether a pod still holds quota (terminal pods release it, as upstream).
pub fn pod_counts(pod: &Value) -> bool {
    !matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

/// Everything `obj` (of `group`/`plural`) uses, every quota resource it touches.
pub fn usage(group: &str, plural: &str, obj: &Value) -> Usage {
    let mut u = Usage::new();
    if group.is_empty() && plural == "pods" && !pod_counts(obj) {
        return u;
    }
    u.insert(count_name(group, plural), 1.0);
    if !group.is_empty() {
        return u;
    }
    match plural {
        "pods" => {
            u.insert("pods".into(), 1.0);
            if let Some(spec) = obj.get("spec") {
                add(&mut u, &pod_compute(spec));
            }
        }
        "services" => {
            u.insert("services".into(), 1.0);
            let ports = obj
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map_or(0, Vec::len) as f64;
            match obj.pointer("/spec/type").and_then(Value::as_str) {
                Some("NodePort") => {
                    u.insert("services.nodeports".into(), ports);
                }
                Some("LoadBalancer") => {
                    u.insert("services.loadbalancers".into(), 1.0);
                    let node_ports = obj
                        .pointer("/spec/allocateLoadBalancerNodePorts")
                        .and_then(Value::as_bool)
                        != Some(false);
                    if node_ports {
                        u.insert("services.nodeports".into(), ports);
                    }
                }
                _ => {}
            }
        }
        "configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas" => {
            u.insert(plural.to_string(), 1.0);
        }
        "persistentvolumeclaims" => {
            u.insert(plural.to_string(), 1.0);
            u.insert(
                "requests.storage".into(),
                quantity_at(obj.pointer("/spec/resources/requests/storage")),
            );
        }
        _ => {}
    }
    u
}

/// Which `group`/`plural` a quota resource name is computed from (`None`: not supported).
pub fn source_of(resource: &str) -> Option<(String, String)> {
    if let Some(rest) = resource.strip_prefix("count/") {
        return Some(match rest.split_once('.') {
            Some((plural, group)) => (group.to_string(), plural.to_string()),
            None => (String::new(), rest.to_string()),
        });
    }
    let plural = match resource {
        "pods" | "cpu" | "memory" | "ephemeral-storage" => "pods",
        r if r.starts_with("requests.") && r != "requests.storage" => "pods",
        r if r.starts_with("limits.") => "pods",
        "services" | "services.nodeports" | "services.loadbalancers" => "services",
        "requests.storage" | "persistentvolumeclaims" => "persistentvolumeclaims",
        "configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas" => resource,
        _ => return None,
    };
    Some((String::new(), plural.to_string()))
}

/// Resources that, quota'd, every container of a pod must declare (upstream's backward
/// compatibility rule).
const CONSTRAINED: [&str; 6] = [
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

/// Upstream's pod constraint: `must specify limits.cpu for: a,b; limits.memory for: a`.
pub fn pod_constraints<'a>(hard: impl Iterator<Item = &'a str>, pod: &Value) -> Option<String> {
    let required: Vec<&str> = hard.filter(|r| CONSTRAINED.contains(r)).collect();
    if required.is_empty() {
        return None;
    }
    let mut missing: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for list in ["containers", "initContainers"] {
        for c in pod
            .pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let mut has = container_usage(c);
            for r in ["cpu", "memory"] {
                if let Some(v) = has.get(&format!("requests.{r}")).copied() {
                    has.insert(r.to_string(), v);
                }
            }
            let name = c.get("name").and_then(Value::as_str).unwrap_or("");
            for r in &required {
                if !has.contains_key(*r) {
                    let names = missing.entry(r).or_default();
                    if !names.iter().any(|n| n == name) {
                        names.push(name.to_string());
                    }
                }
            }
        }
    }
    if missing.is_empty() {
        return None;
    }
    let parts: Vec<String> = missing
        .iter()
        .map(|(r, names)| {
            let mut names = names.clone();
            names.sort();
            format!("{r} for: {}", names.join(","))
        })
        .collect();
    Some(format!("must specify {}", parts.join("; ")))
}

/// A quantity as upstream prints it for `resource`: counts as integers, CPU in cores or
/// millicores, bytes with the largest exact binary (then decimal) suffix.
pub fn format(resource: &str, v: f64) -> String {
    let is_cpu = resource == "cpu" || resource.ends_with(".cpu");
    if is_cpu {
        let milli = (v * 1000.0).round() as i64;
        return if milli % 1000 == 0 {
            (milli / 1000).to_string()
        } else {
            format!("{milli}m")
        };
    }
    let n = v.round() as i64;
    let bytes = resource.ends_with("memory")
        || resource.ends_with("storage")
        || resource.ends_with("ephemeral-storage");
    if bytes && n != 0 {
        for (suffix, unit) in [
            ("Ti", 1i64 << 40),
            ("Gi", 1 << 30),
            ("Mi", 1 << 20),
            ("Ki", 1 << 10),
            ("T", 1_000_000_000_000),
            ("G", 1_000_000_000),
            ("M", 1_000_000),
            ("k", 1_000),
        ] {
            if n % unit == 0 {
                return format!("{}{suffix}", n / unit);
            }
        }
    }
    n.to_string()
}

/// `k=v,k=v` sorted by name, as upstream's `prettyPrint`.
pub fn pretty(u: &Usage) -> String {
    u.iter()
        .map(|(k, v)| format!("{k}={}", format(k, *v)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Parse a `ResourceList` (`{"pods": "2", "requests.cpu": "500m"}`).
pub fn parse_list(v: Option<&Value>) -> Usage {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), quantity_at(Some(v))))
                .collect()
        })
        .unwrap_or_default()
}

/// The outcome of checking one request against one quota.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// The quota does not limit anything the object uses.
    Untouched,
    /// Allowed: the quota's new `used` for the resources it limits.
    Charge(Usage),
    /// Refused with upstream's message (after `exceeded quota: `/`failed quota: `).
    Refuse(String),
}

/// Check `delta` (an object's usage) against a quota's `hard` given its `used`.
pub fn check(name: &str, hard: &Usage, used: &Usage, delta: &Usage) -> Verdict {
    let requested: Usage = delta
        .iter()
        .filter(|(k, _)| hard.contains_key(*k))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    if requested.is_empty() {
        return Verdict::Untouched;
    }
    let mut next = Usage::new();
    let mut exceeded = Vec::new();
    for (k, v) in &requested {
        let total = used.get(k).copied().unwrap_or(0.0) + v;
        // Tolerate float noise from decimal quantities (0.1 + 0.2).
        if total > hard.get(k).copied().unwrap_or(0.0) + 1e-9 {
            exceeded.push(k.clone());
        }
        next.insert(k.clone(), total);
    }
    if exceeded.is_empty() {
        return Verdict::Charge(next);
    }
    let mask = |u: &Usage| -> Usage {
        exceeded
            .iter()
            .map(|k| (k.clone(), u.get(k).copied().unwrap_or(0.0)))
            .collect()
    };
    Verdict::Refuse(format!(
        "exceeded quota: {name}, requested: {}, used: {}, limited: {}",
        pretty(&mask(&requested)),
        pretty(&mask(used)),
        pretty(&mask(hard))
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(containers: Value) -> Value {
        json!({"spec": {"containers": containers}, "status": {"phase": "Pending"}})
    }

    #[test]
    fn a_pod_uses_its_count_and_the_sum_of_its_container_requests_and_limits() {
        let p = pod(json!([
            {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "1"}}},
            {"name": "b", "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}}}
        ]));
        let u = usage("", "pods", &p);
        assert_eq!(u["pods"], 1.0);
        assert_eq!(u["count/pods"], 1.0);
        assert_eq!(format("requests.cpu", u["requests.cpu"]), "750m");
        assert_eq!(format("cpu", u["cpu"]), "750m");
        assert_eq!(format("limits.cpu", u["limits.cpu"]), "1500m");
        assert_eq!(format("requests.memory", u["requests.memory"]), "192Mi");
        let done = json!({"spec": {}, "status": {"phase": "Succeeded"}});
        assert!(usage("", "pods", &done).is_empty());
    }

    #[test]
    fn services_count_node_ports_and_load_balancers() {
        let s = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]}});
        let u = usage("", "services", &s);
        assert_eq!(u["services"], 1.0);
        assert_eq!(u["services.loadbalancers"], 1.0);
        assert_eq!(u["services.nodeports"], 2.0);
        let d = usage("apps", "deployments", &json!({}));
        assert_eq!(d["count/deployments.apps"], 1.0);
        assert_eq!(
            source_of("count/deployments.apps"),
            Some(("apps".into(), "deployments".into()))
        );
        assert_eq!(source_of("limits.memory"), Some(("".into(), "pods".into())));
    }

    #[test]
    fn exceeding_a_quota_gives_upstreams_message_naming_only_exceeded_resources() {
        let hard = parse_list(Some(&json!({"pods": "2", "requests.cpu": "2"})));
        let used = parse_list(Some(&json!({"pods": "2", "requests.cpu": "500m"})));
        let delta = usage(
            "",
            "pods",
            &pod(json!([{"name": "a", "resources": {"requests": {"cpu": "100m"}}}])),
        );
        assert_eq!(
            check("q", &hard, &used, &delta),
            Verdict::Refuse(
                "exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2".into()
            )
        );
        let used = parse_list(Some(&json!({"pods": "1"})));
        match check("q", &hard, &used, &delta) {
            Verdict::Charge(n) => {
                assert_eq!(n["pods"], 2.0);
                assert_eq!(format("requests.cpu", n["requests.cpu"]), "100m");
            }
            other => panic!("{other:?}"),
        }
        let cm = usage("", "configmaps", &json!({}));
        assert_eq!(check("q", &hard, &used, &cm), Verdict::Untouched);
    }

    #[test]
    fn quota_on_limits_requires_every_container_to_declare_them() {
        let p = pod(json!([
            {"name": "b", "resources": {}},
            {"name": "a", "resources": {"limits": {"cpu": "1"}}}
        ]));
        let msg = pod_constraints(["limits.cpu", "limits.memory", "pods"].into_iter(), &p);
        assert_eq!(
            msg.as_deref(),
            Some("must specify limits.cpu for: b; limits.memory for: a,b")
        );
        assert_eq!(pod_constraints(["pods"].into_iter(), &p), None);
    }

    #[test]
    fn quantities_print_in_upstream_style() {
        assert_eq!(format("requests.memory", 1024.0 * 1024.0 * 1024.0), "1Gi");
        assert_eq!(format("requests.storage", 1e9), "1G");
        assert_eq!(format("limits.cpu", 2.0), "2");
        assert_eq!(format("pods", 3.0), "3");
    }
}
