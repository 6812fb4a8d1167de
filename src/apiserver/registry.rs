//! The registry of resource kinds the server serves: built-in kinds and, dynamically, the
//! custom resources defined by stored CustomResourceDefinitions.

use serde_json::Value;
use std::sync::{Arc, RwLock};

/// Everything the generic handlers need to know about one resource (group/version/plural).
#[derive(Clone, Debug)]
pub struct ResourceKind {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Subresource names (`status`, `scale`, `log`…).
    pub subresources: Vec<String>,
    /// Key prefix in the store, with a trailing `/` (`/registry/configmaps/`).
    pub storage_prefix: String,
    /// Set for custom resources: the CRD's version entry (schema, printer columns, scale paths).
    pub crd: Option<Arc<CrdVersion>>,
    /// Review-style kinds (`SelfSubjectAccessReview`, `TokenReview`…): `create` only, never
    /// stored.
    pub create_only: bool,
}

/// The parts of a CRD version the server acts on.
#[derive(Clone, Debug, Default)]
pub struct CrdVersion {
    pub schema: Option<Value>,
    pub printer_columns: Vec<Value>,
    pub scale: Option<Value>,
    /// `x-kubernetes-preserve-unknown-fields` at the root: no pruning / strict checks.
    pub preserve_unknown: bool,
}

impl ResourceKind {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `configmaps` or `deployments.apps`, as error messages name resources.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn has_sub(&self, sub: &str) -> bool {
        self.subresources.iter().any(|s| s == sub)
    }

    /// Verbs of the main resource, for discovery.
    pub fn verbs(&self) -> Vec<&'static str> {
        if self.create_only {
            return vec!["create"];
        }
        vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }

    /// Whether objects of this kind are stored in another version's form (only
    /// `events.k8s.io/v1` Events, stored as `core/v1` Events as upstream does).
    pub fn converts(&self) -> bool {
        self.group == "events.k8s.io" && self.plural == "events" && self.crd.is_none()
    }

    /// A stored object as this kind's version presents it.
    pub fn from_storage(&self, obj: Value) -> Value {
        if self.converts() {
            super::event_versions::core_to_events(obj)
        } else {
            obj
        }
    }

    /// An object of this kind's version in its stored form.
    pub fn to_storage(&self, obj: Value) -> Value {
        if self.converts() {
            super::event_versions::events_to_core(obj)
        } else {
            obj
        }
    }

    /// Store key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{}/{}", self.storage_prefix, ns, name),
            _ => format!("{}{}", self.storage_prefix, name),
        }
    }

    /// Store prefix of a list (all namespaces when `namespace` is `None`).
    pub fn list_prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{}/", self.storage_prefix, ns),
            _ => self.storage_prefix.clone(),
        }
    }
}

/// Verbs of a subresource, for discovery.
pub fn sub_verbs(sub: &str) -> Vec<&'static str> {
    match sub {
        "status" | "scale" => vec!["get", "patch", "update"],
        "log" => vec!["get"],
        "exec" | "attach" | "portforward" | "proxy" => vec!["create", "get"],
        _ => vec!["create"],
    }
}

/// (group, version, kind, plural, namespaced, shortNames, in "all", subresources)
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
    bool,
    &'static [&'static str],
);

#[rustfmt::skip]
const BUILTINS: &[Row] = &[
    ("", "v1", "Namespace", "namespaces", false, &["ns"], false, &["status", "finalize"]),
    ("", "v1", "Node", "nodes", false, &["no"], false, &["status", "proxy"]),
    ("", "v1", "Pod", "pods", true, &["po"], true,
     &["status", "binding", "log", "exec", "attach", "eviction", "portforward", "ephemeralcontainers"]),
    ("", "v1", "Service", "services", true, &["svc"], true, &["status", "proxy"]),
    ("", "v1", "Endpoints", "endpoints", true, &["ep"], false, &[]),
    ("", "v1", "ConfigMap", "configmaps", true, &["cm"], false, &[]),
    ("", "v1", "Secret", "secrets", true, &[], false, &[]),
    ("", "v1", "ServiceAccount", "serviceaccounts", true, &["sa"], false, &["token"]),
    ("", "v1", "Event", "events", true, &["ev"], false, &[]),
    ("", "v1", "PersistentVolume", "persistentvolumes", false, &["pv"], false, &["status"]),
    ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true, &["pvc"], false, &["status"]),
    ("", "v1", "ResourceQuota", "resourcequotas", true, &["quota"], false, &["status"]),
    ("", "v1", "LimitRange", "limitranges", true, &["limits"], false, &[]),
    ("", "v1", "ReplicationController", "replicationcontrollers", true, &["rc"], true, &["status", "scale"]),
    ("apps", "v1", "Deployment", "deployments", true, &["deploy"], true, &["status", "scale"]),
    ("apps", "v1", "ReplicaSet", "replicasets", true, &["rs"], true, &["status", "scale"]),
    ("apps", "v1", "StatefulSet", "statefulsets", true, &["sts"], true, &["status", "scale"]),
    ("apps", "v1", "DaemonSet", "daemonsets", true, &["ds"], true, &["status"]),
    ("apps", "v1", "ControllerRevision", "controllerrevisions", true, &[], false, &[]),
    ("batch", "v1", "Job", "jobs", true, &[], true, &["status"]),
    ("batch", "v1", "CronJob", "cronjobs", true, &["cj"], true, &["status"]),
    ("coordination.k8s.io", "v1", "Lease", "leases", true, &[], false, &[]),
    ("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", true, &[], false, &[]),
    ("events.k8s.io", "v1", "Event", "events", true, &["ev"], false, &[]),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles", true, &[], false, &[]),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true, &[], false, &[]),
    ("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false, &[], false, &[]),
    ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", false, &[], false, &[]),
    ("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", false, &["crd", "crds"], false, &["status"]),
    ("storage.k8s.io", "v1", "StorageClass", "storageclasses", false, &["sc"], false, &[]),
    ("networking.k8s.io", "v1", "Ingress", "ingresses", true, &["ing"], false, &["status"]),
    ("networking.k8s.io", "v1", "IngressClass", "ingressclasses", false, &[], false, &[]),
    ("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", true, &["netpol"], false, &[]),
    ("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true, &["pdb"], false, &["status"]),
    ("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", true, &["hpa"], true, &["status"]),
    ("autoscaling", "v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers", true, &["hpa"], true, &["status"]),
    ("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", false, &["pc"], false, &[]),
];

fn builtin_kinds() -> Vec<Arc<ResourceKind>> {
    BUILTINS
        .iter()
        .map(
            |&(group, version, kind, plural, namespaced, short, all, subs)| {
                let storage_prefix = if group.is_empty() {
                    format!("/registry/{plural}/")
                } else if group == "autoscaling" {
                    // Both autoscaling versions are views of one stored object (as upstream).
                    "/registry/horizontalpodautoscalers/".to_string()
                } else if group == "events.k8s.io" {
                    // One store of Events, in core/v1 form (as upstream): see `to_storage`.
                    "/registry/events/".to_string()
                } else {
                    format!("/registry/{group}/{plural}/")
                };
                Arc::new(ResourceKind {
                    group: group.into(),
                    version: version.into(),
                    kind: kind.into(),
                    plural: plural.into(),
                    singular: kind.to_lowercase(),
                    namespaced,
                    short_names: short.iter().map(|s| s.to_string()).collect(),
                    categories: if all { vec!["all".into()] } else { vec![] },
                    subresources: subs.iter().map(|s| s.to_string()).collect(),
                    storage_prefix,
                    crd: None,
                    create_only: false,
                })
            },
        )
        .chain(REVIEWS.iter().map(|&(group, kind, plural, namespaced)| {
            Arc::new(ResourceKind {
                group: group.into(),
                version: "v1".into(),
                kind: kind.into(),
                plural: plural.into(),
                singular: kind.to_lowercase(),
                namespaced,
                short_names: vec![],
                categories: vec![],
                subresources: vec![],
                storage_prefix: String::new(),
                crd: None,
                create_only: true,
            })
        }))
        .collect()
}

/// Create-only review kinds: (group, kind, plural, namespaced).
const REVIEWS: &[(&str, &str, &str, bool)] = &[
    (
        "authorization.k8s.io",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        false,
    ),
    (
        "authorization.k8s.io",
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
        false,
    ),
    (
        "authorization.k8s.io",
        "SubjectAccessReview",
        "subjectaccessreviews",
        false,
    ),
    (
        "authorization.k8s.io",
        "LocalSubjectAccessReview",
        "localsubjectaccessreviews",
        true,
    ),
    (
        "authentication.k8s.io",
        "TokenReview",
        "tokenreviews",
        false,
    ),
    (
        "authentication.k8s.io",
        "SelfSubjectReview",
        "selfsubjectreviews",
        false,
    ),
];

/// All kinds currently served. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    kinds: Arc<RwLock<Vec<Arc<ResourceKind>>>>,
    /// Bumped whenever the served kinds change (caches key on it).
    generation: Arc<std::sync::atomic::AtomicU64>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// The built-in kinds only.
    pub fn new() -> Self {
        Self {
            kinds: Arc::new(RwLock::new(builtin_kinds())),
            generation: Arc::new(std::sync::atomic::AtomicU64::new(1)),
        }
    }

    /// A snapshot of every served kind.
    pub fn all(&self) -> Vec<Arc<ResourceKind>> {
        self.kinds.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The kind served at `group/version/plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceKind>> {
        self.kinds
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|k| k.group == group && k.version == version && k.plural == plural)
            .cloned()
    }

    /// Whether any kind is served in `group` (any version).
    pub fn group_versions(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for k in self.all() {
            match out.iter_mut().find(|(g, _)| *g == k.group) {
                Some((_, vs)) => {
                    if !vs.contains(&k.version) {
                        vs.push(k.version.clone());
                    }
                }
                None => out.push((k.group.clone(), vec![k.version.clone()])),
            }
        }
        for (_, vs) in &mut out {
            vs.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        out
    }

    /// Replace the custom resources by those defined by `crds` (established CRD objects).
    pub fn set_crds(&self, crds: &[Value]) {
        let mut kinds: Vec<Arc<ResourceKind>> = builtin_kinds();
        for crd in crds {
            kinds.extend(kinds_of_crd(crd));
        }
        let mut cur = self.kinds.write().unwrap_or_else(|p| p.into_inner());
        let changed = cur.len() != kinds.len()
            || cur
                .iter()
                .zip(&kinds)
                .any(|(a, b)| format!("{a:?}") != format!("{b:?}"));
        *cur = kinds;
        if changed {
            self.generation
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// Changes whenever the set of served kinds changes.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Kubernetes version ordering: GA > beta > alpha, higher numbers first.
pub fn version_priority(v: &str) -> (u8, u32, u32) {
    let rest = v.trim_start_matches('v');
    let num: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let major = num.parse().unwrap_or(0);
    let tail = &rest[num.len()..];
    let (level, minor) = if let Some(t) = tail.strip_prefix("beta") {
        (1, t.parse().unwrap_or(0))
    } else if let Some(t) = tail.strip_prefix("alpha") {
        (0, t.parse().unwrap_or(0))
    } else if tail.is_empty() {
        (2, 0)
    } else {
        (0, 0)
    };
    (level, major, minor)
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

/// The served kinds of one CRD object (one per served version).
pub fn kinds_of_crd(crd: &Value) -> Vec<Arc<ResourceKind>> {
    let Some(spec) = crd.get("spec") else {
        return vec![];
    };
    if crd
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
    {
        return vec![];
    }
    let (Some(group), Some(plural), Some(kind)) = (
        str_at(spec, &["group"]),
        str_at(spec, &["names", "plural"]),
        str_at(spec, &["names", "kind"]),
    ) else {
        return vec![];
    };
    let singular = str_at(spec, &["names", "singular"])
        .map(String::from)
        .unwrap_or_else(|| kind.to_lowercase());
    let strings = |p: &str| -> Vec<String> {
        spec.pointer(p)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let namespaced = str_at(spec, &["scope"]) != Some("Cluster");
    let mut out = Vec::new();
    for ver in spec
        .get("versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if ver.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let Some(name) = ver.get("name").and_then(Value::as_str) else {
            continue;
        };
        let mut subresources = Vec::new();
        if ver.pointer("/subresources/status").is_some() {
            subresources.push("status".to_string());
        }
        let scale = ver.pointer("/subresources/scale").cloned();
        if scale.is_some() {
            subresources.push("scale".to_string());
        }
        let schema = ver.pointer("/schema/openAPIV3Schema").cloned();
        let preserve_unknown = schema
            .as_ref()
            .and_then(|s| s.get("x-kubernetes-preserve-unknown-fields"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        out.push(Arc::new(ResourceKind {
            group: group.into(),
            version: name.into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: singular.clone(),
            namespaced,
            short_names: strings("/names/shortNames"),
            categories: strings("/names/categories"),
            subresources,
            storage_prefix: format!("/registry/{group}/{plural}/"),
            crd: Some(Arc::new(CrdVersion {
                schema,
                printer_columns: ver
                    .get("additionalPrinterColumns")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
                scale,
                preserve_unknown,
            })),
            create_only: false,
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployments_live_in_apps_v1_with_scale_and_a_group_prefixed_key() {
        let r = Registry::new();
        let d = r.find("apps", "v1", "deployments").unwrap();
        assert!(d.has_sub("scale"));
        assert_eq!(d.qualified(), "deployments.apps");
        assert_eq!(d.key(Some("ns"), "x"), "/registry/apps/deployments/ns/x");
        let cm = r.find("", "v1", "configmaps").unwrap();
        assert_eq!(
            cm.key(Some("default"), "a"),
            "/registry/configmaps/default/a"
        );
    }

    #[test]
    fn crds_add_their_served_versions() {
        let r = Registry::new();
        let crd = serde_json::json!({"metadata":{"name":"widgets.example.com"},"spec":{
            "group":"example.com","scope":"Namespaced",
            "names":{"plural":"widgets","kind":"Widget","shortNames":["wd"]},
            "versions":[{"name":"v1","served":true,"storage":true,"subresources":{"status":{}}},
                        {"name":"v0","served":false,"storage":false}]}});
        r.set_crds(&[crd]);
        let w = r.find("example.com", "v1", "widgets").unwrap();
        assert!(w.has_sub("status"));
        assert!(r.find("example.com", "v0", "widgets").is_none());
    }

    #[test]
    fn versions_sort_ga_before_beta_before_alpha() {
        let mut v = vec!["v1beta1", "v1", "v2alpha1", "v2"];
        v.sort_by_key(|x| std::cmp::Reverse(version_priority(x)));
        assert_eq!(v, vec!["v2", "v1", "v1beta1", "v2alpha1"]);
    }
}
