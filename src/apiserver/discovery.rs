//! Discovery documents: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/{g}/{v}`, in the legacy
//! format and as aggregated discovery (`apidiscovery.k8s.io/v2`) when the client asks for it.

use super::registry::{Registry, ResourceKind, sub_verbs, version_priority};
use serde_json::{Value, json};

/// The media type of aggregated discovery (v2).
pub const AGGREGATED_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether an `Accept` header asks for aggregated discovery v2.
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let p: Vec<&str> = part.split(';').map(str::trim).collect();
        p.contains(&"g=apidiscovery.k8s.io")
            && p.contains(&"v=v2")
            && p.contains(&"as=APIGroupDiscoveryList")
    })
}

/// `/version`.
pub fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": format!("v1.32.0+k3rs-{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "2026-11-25T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, if cfg!(target_arch = "x86_64") { "amd64" } else { std::env::consts::ARCH }),
    })
}

/// `/api`.
pub fn core_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    })
}

fn group_json(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "name": group,
        "versions": vs,
        "preferredVersion": vs.first().cloned().unwrap_or(Value::Null),
    })
}

/// `/apis`.
pub fn group_list(reg: &Registry) -> Value {
    let groups: Vec<Value> = reg
        .group_versions()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, vs)| group_json(&g, &vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{g}`.
pub fn group(reg: &Registry, name: &str) -> Option<Value> {
    reg.group_versions()
        .into_iter()
        .find(|(g, _)| g == name && !g.is_empty())
        .map(|(g, vs)| {
            let mut v = group_json(&g, &vs);
            v["kind"] = json!("APIGroup");
            v["apiVersion"] = json!("v1");
            v
        })
}

fn resource_entries(k: &ResourceKind) -> Vec<Value> {
    let mut out = vec![json!({
        "name": k.plural,
        "singularName": k.singular,
        "namespaced": k.namespaced,
        "kind": k.kind,
        "verbs": k.verbs(),
        "shortNames": k.short_names,
        "categories": k.categories,
        "storageVersionHash": "",
    })];
    for sub in &k.subresources {
        let kind = match sub.as_str() {
            "scale" => "Scale",
            "binding" => "Binding",
            "eviction" => "Eviction",
            "token" => "TokenRequest",
            "log" | "exec" | "attach" | "portforward" | "proxy" => match k.plural.as_str() {
                "pods" => "PodExecOptions",
                _ => "Status",
            },
            _ => k.kind.as_str(),
        };
        let mut e = json!({
            "name": format!("{}/{}", k.plural, sub),
            "singularName": "",
            "namespaced": k.namespaced,
            "kind": kind,
            "verbs": sub_verbs(sub),
        });
        match sub.as_str() {
            "scale" => {
                e["group"] = json!("autoscaling");
                e["version"] = json!("v1");
            }
            "eviction" => {
                e["group"] = json!("policy");
                e["version"] = json!("v1");
            }
            "token" => {
                e["group"] = json!("authentication.k8s.io");
                e["version"] = json!("v1");
            }
            _ => {}
        }
        out.push(e);
    }
    out
}

/// `/api/v1` or `/apis/{g}/{v}`.
pub fn resource_list(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let kinds: Vec<_> = reg
        .all()
        .into_iter()
        .filter(|k| k.group == group && k.version == version)
        .collect();
    if kinds.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let resources: Vec<Value> = kinds.iter().flat_map(|k| resource_entries(k)).collect();
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

fn aggregated_resource(k: &ResourceKind) -> Value {
    let subs: Vec<Value> = k
        .subresources
        .iter()
        .map(|s| {
            let (g, v, kind) = match s.as_str() {
                "scale" => ("autoscaling", "v1", "Scale"),
                "eviction" => ("policy", "v1", "Eviction"),
                "binding" => ("", "v1", "Binding"),
                "token" => ("authentication.k8s.io", "v1", "TokenRequest"),
                "status" => (k.group.as_str(), k.version.as_str(), k.kind.as_str()),
                _ => ("", "v1", "Status"),
            };
            json!({"subresource": s, "responseKind": {"group": g, "version": v, "kind": kind}, "verbs": sub_verbs(s)})
        })
        .collect();
    json!({
        "resource": k.plural,
        "responseKind": {"group": k.group, "version": k.version, "kind": k.kind},
        "scope": if k.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": k.singular,
        "verbs": k.verbs(),
        "shortNames": k.short_names,
        "categories": k.categories,
        "subresources": subs,
    })
}

/// Aggregated discovery for `/api` (core only) or `/apis` (every named group).
pub fn aggregated(reg: &Registry, core: bool) -> Value {
    let kinds = reg.all();
    let mut items = Vec::new();
    for (g, mut vs) in reg.group_versions() {
        if g.is_empty() != core {
            continue;
        }
        vs.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        let versions: Vec<Value> = vs
            .iter()
            .map(|v| {
                let res: Vec<Value> = kinds
                    .iter()
                    .filter(|k| k.group == g && &k.version == v)
                    .map(|k| aggregated_resource(k))
                    .collect();
                json!({"version": v, "resources": res, "freshness": "Current"})
            })
            .collect();
        items.push(json!({"metadata": {"name": g}, "versions": versions}));
    }
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_resource_list_advertises_subresources_and_short_names() {
        let reg = Registry::new();
        let l = resource_list(&reg, "", "v1").unwrap();
        let res = l["resources"].as_array().unwrap();
        assert!(res.iter().any(|r| r["name"] == "pods/log"));
        let pods = res.iter().find(|r| r["name"] == "pods").unwrap();
        assert_eq!(pods["shortNames"][0], "po");
        assert_eq!(pods["categories"][0], "all");
    }

    #[test]
    fn aggregated_discovery_is_chosen_only_when_asked() {
        assert!(wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
        ));
        assert!(!wants_aggregated("application/json"));
        let a = aggregated(&Registry::new(), false);
        assert!(
            a["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["metadata"]["name"] == "apps")
        );
    }
}
