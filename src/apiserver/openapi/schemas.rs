//! Schemas of the built-in kinds, generated once from k8s-openapi's `schemars` output
//! (OpenAPI 3.0 form, `$ref: #/components/schemas/<name>`, refs with siblings wrapped in
//! `allOf` as upstream's v3 documents do), with `x-kubernetes-group-version-kind` added.

use k8s_openapi::Resource;
use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

/// A built-in kind and the name of its definition.
#[derive(Debug, Clone)]
pub(crate) struct Builtin {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub definition: String,
}

/// All generated definitions and the kinds they serve.
pub(crate) struct Catalog {
    pub definitions: Map<String, Value>,
    pub kinds: Vec<Builtin>,
}

type Adder = fn(&mut SchemaGenerator) -> Builtin;

fn add<T: Resource + JsonSchema>(g: &mut SchemaGenerator) -> Builtin {
    g.subschema_for::<T>();
    Builtin {
        group: T::GROUP,
        version: T::VERSION,
        kind: T::KIND,
        definition: T::schema_name().into_owned(),
    }
}

macro_rules! builtins {
    ($($t:path),* $(,)?) => { &[$(add::<$t> as Adder),*] };
}

const BUILTINS: &[Adder] = {
    use k8s_openapi::api::{
        admissionregistration::v1 as admission, apps::v1 as apps, authentication::v1 as authn,
        authorization::v1 as authz, autoscaling, batch::v1 as batch, certificates::v1 as certs,
        coordination::v1 as coordination, core::v1 as core, discovery::v1 as discovery,
        events::v1 as events, flowcontrol::v1 as flowcontrol, networking::v1 as networking,
        node::v1 as node, policy::v1 as policy, rbac::v1 as rbac, scheduling::v1 as scheduling,
        storage::v1 as storage,
    };
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
    use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1 as apiregistration;
    builtins!(
        core::Binding,
        core::ComponentStatus,
        core::ConfigMap,
        core::Endpoints,
        core::Event,
        core::LimitRange,
        core::Namespace,
        core::Node,
        core::PersistentVolume,
        core::PersistentVolumeClaim,
        core::Pod,
        core::PodTemplate,
        core::ReplicationController,
        core::ResourceQuota,
        core::Secret,
        core::Service,
        core::ServiceAccount,
        apps::ControllerRevision,
        apps::DaemonSet,
        apps::Deployment,
        apps::ReplicaSet,
        apps::StatefulSet,
        batch::CronJob,
        batch::Job,
        autoscaling::v1::HorizontalPodAutoscaler,
        autoscaling::v1::Scale,
        autoscaling::v2::HorizontalPodAutoscaler,
        policy::Eviction,
        policy::PodDisruptionBudget,
        networking::Ingress,
        networking::IngressClass,
        networking::IPAddress,
        networking::NetworkPolicy,
        networking::ServiceCIDR,
        rbac::ClusterRole,
        rbac::ClusterRoleBinding,
        rbac::Role,
        rbac::RoleBinding,
        storage::CSIDriver,
        storage::CSINode,
        storage::CSIStorageCapacity,
        storage::StorageClass,
        storage::VolumeAttachment,
        coordination::Lease,
        discovery::EndpointSlice,
        events::Event,
        scheduling::PriorityClass,
        node::RuntimeClass,
        admission::MutatingWebhookConfiguration,
        admission::ValidatingAdmissionPolicy,
        admission::ValidatingAdmissionPolicyBinding,
        admission::ValidatingWebhookConfiguration,
        certs::CertificateSigningRequest,
        flowcontrol::FlowSchema,
        flowcontrol::PriorityLevelConfiguration,
        authn::SelfSubjectReview,
        authn::TokenRequest,
        authn::TokenReview,
        authz::LocalSubjectAccessReview,
        authz::SelfSubjectAccessReview,
        authz::SelfSubjectRulesReview,
        authz::SubjectAccessReview,
        apiextensions::CustomResourceDefinition,
        apiregistration::APIService,
    )
};

/// Names of shared definitions every group-version document carries.
pub(crate) const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
pub(crate) const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
pub(crate) const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
pub(crate) const WATCH_EVENT: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent";
pub(crate) const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";

/// The catalog, generated on first use.
pub(crate) fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(build)
}

/// `x-kubernetes-group-version-kind` entry (the same map kubectl compares).
pub(crate) fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "kind": kind, "version": version})
}

pub(crate) fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn build() -> Catalog {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
    let mut g = SchemaSettings::openapi3().into_generator();
    let kinds: Vec<Builtin> = BUILTINS.iter().map(|f| f(&mut g)).collect();
    g.subschema_for::<meta::Status>();
    g.subschema_for::<meta::DeleteOptions>();
    g.subschema_for::<meta::Patch>();
    g.subschema_for::<meta::WatchEvent<serde_json::Value>>();
    g.subschema_for::<meta::ListMeta>();
    let mut definitions = g.take_definitions(true);
    add_patch_extensions(&mut definitions);
    for k in &kinds {
        if let Some(Value::Object(def)) = definitions.get_mut(&k.definition) {
            def.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([gvk(k.group, k.version, k.kind)]),
            );
        }
        // k8s-openapi has no schema for lists; give each kind one like upstream's.
        let list_name = format!("{}List", k.definition);
        definitions.insert(
            list_name,
            json!({
                "description": format!("{}List is a list of {}.", k.kind, k.kind),
                "type": "object",
                "required": ["items"],
                "properties": {
                    "apiVersion": {"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."},
                    "kind": {"type": "string", "description": "Kind is a string value representing the REST resource this object represents."},
                    "items": {"type": "array", "items": schema_ref(&k.definition)},
                    "metadata": {"allOf": [schema_ref(LIST_META)], "description": "Standard list metadata."},
                },
                "x-kubernetes-group-version-kind": [gvk(k.group, k.version, &format!("{}List", k.kind))],
            }),
        );
    }
    Catalog { definitions, kinds }
}

/// Upstream's `patchStrategy`/`patchMergeKey` struct tags for the fields kubectl patches:
/// (definition, property, merge key, strategy). kubectl (1.27+) reads these from the v3
/// document to build client-side apply patches; without them it replaces whole lists and
/// never sends `$patch: delete` or `$setElementOrder`.
const PATCH_META: &[(&str, &str, Option<&str>, &str)] = &[
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "finalizers",
        None,
        "merge",
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "ownerReferences",
        Some("uid"),
        "merge",
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "volumes",
        Some("name"),
        "merge,retainKeys",
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "initContainers",
        Some("name"),
        "merge",
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "containers",
        Some("name"),
        "merge",
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "ephemeralContainers",
        Some("name"),
        "merge",
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "imagePullSecrets",
        Some("name"),
        "merge",
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "hostAliases",
        Some("ip"),
        "merge",
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "topologySpreadConstraints",
        Some("topologyKey"),
        "merge",
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "resourceClaims",
        Some("name"),
        "merge,retainKeys",
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "schedulingGates",
        Some("name"),
        "merge",
    ),
    (
        "io.k8s.api.core.v1.Container",
        "ports",
        Some("containerPort"),
        "merge",
    ),
    ("io.k8s.api.core.v1.Container", "env", Some("name"), "merge"),
    (
        "io.k8s.api.core.v1.Container",
        "volumeMounts",
        Some("mountPath"),
        "merge",
    ),
    (
        "io.k8s.api.core.v1.Container",
        "volumeDevices",
        Some("devicePath"),
        "merge",
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "env",
        Some("name"),
        "merge",
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeMounts",
        Some("mountPath"),
        "merge",
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeDevices",
        Some("devicePath"),
        "merge",
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        "ports",
        Some("port"),
        "merge",
    ),
    ("io.k8s.api.core.v1.NodeSpec", "podCIDRs", None, "merge"),
    (
        "io.k8s.api.core.v1.NodeStatus",
        "conditions",
        Some("type"),
        "merge",
    ),
    (
        "io.k8s.api.core.v1.NodeStatus",
        "addresses",
        Some("type"),
        "merge",
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "conditions",
        Some("type"),
        "merge",
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "podIPs",
        Some("ip"),
        "merge",
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "hostIPs",
        Some("ip"),
        "merge",
    ),
    (
        "io.k8s.api.core.v1.ServiceStatus",
        "conditions",
        Some("type"),
        "merge",
    ),
    (
        "io.k8s.api.core.v1.PersistentVolumeClaimStatus",
        "conditions",
        Some("type"),
        "merge",
    ),
    (
        "io.k8s.api.apps.v1.DeploymentSpec",
        "strategy",
        None,
        "retainKeys",
    ),
    (
        "io.k8s.api.apps.v1.DeploymentStatus",
        "conditions",
        Some("type"),
        "merge",
    ),
    (
        "io.k8s.api.apps.v1.ReplicaSetStatus",
        "conditions",
        Some("type"),
        "merge",
    ),
    (
        "io.k8s.api.apps.v1.StatefulSetStatus",
        "conditions",
        Some("type"),
        "merge",
    ),
    (
        "io.k8s.api.apps.v1.DaemonSetStatus",
        "conditions",
        Some("type"),
        "merge",
    ),
    (
        "io.k8s.api.batch.v1.JobStatus",
        "conditions",
        Some("type"),
        "merge",
    ),
];

fn add_patch_extensions(defs: &mut Map<String, Value>) {
    for (def, prop, key, strategy) in PATCH_META {
        let Some(Value::Object(p)) = defs
            .get_mut(*def)
            .and_then(|d| d.get_mut("properties"))
            .and_then(|ps| ps.get_mut(*prop))
        else {
            continue;
        };
        p.insert("x-kubernetes-patch-strategy".into(), json!(strategy));
        if let Some(k) = key {
            p.insert("x-kubernetes-patch-merge-key".into(), json!(k));
        }
    }
}

impl Catalog {
    /// The built-in kind with this group/version/kind.
    pub(crate) fn find(&self, group: &str, version: &str, kind: &str) -> Option<&Builtin> {
        self.kinds
            .iter()
            .find(|b| b.group == group && b.version == version && b.kind == kind)
    }
}

/// Collects `roots` and every definition they reference, transitively.
pub(crate) fn closure<'a>(
    lookup: impl Fn(&str) -> Option<&'a Value>,
    roots: impl IntoIterator<Item = String>,
) -> BTreeMap<String, Value> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<String> = roots.into_iter().collect();
    let mut out = BTreeMap::new();
    while let Some(name) = stack.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let Some(def) = lookup(&name) else {
            continue;
        };
        collect_refs(def, &mut stack);
        out.insert(name, def.clone());
    }
    out
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                if k == "$ref" {
                    if let Some(name) = child.as_str().and_then(|r| r.rsplit('/').next()) {
                        out.push(name.to_string());
                    }
                } else {
                    collect_refs(child, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|c| collect_refs(c, out)),
        _ => {}
    }
}

/// Rewrites `#/components/schemas/` refs to swagger 2.0's `#/definitions/`.
pub(crate) fn to_v2_refs(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                if k == "$ref" {
                    if let Some(r) = child.as_str() {
                        *child =
                            Value::String(r.replace("#/components/schemas/", "#/definitions/"));
                    }
                } else {
                    to_v2_refs(child);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(to_v2_refs),
        _ => {}
    }
}
