//! Compact table of list semantics for built-in kinds: which lists merge by key, which are
//! sets, which are atomic. k8s-openapi's schemars output does not carry
//! `x-kubernetes-patch-merge-key`/`x-kubernetes-list-map-keys`, so the table restates the
//! upstream struct tags for the fields kubectl actually patches.

use super::KindPath;

/// How a list field merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListKind {
    /// Replaced as a whole (no patch strategy).
    Atomic,
    /// List of scalars merged as a set (`patchStrategy:merge` on primitives).
    Set,
    /// List of objects merged by these keys; the first is the strategic-merge key.
    Map(&'static [&'static str]),
}

/// API groups served from k8s-openapi types (strategic merge allowed, tables known).
pub fn is_builtin_group(group: &str) -> bool {
    matches!(
        group,
        "" | "apps"
            | "batch"
            | "autoscaling"
            | "policy"
            | "networking.k8s.io"
            | "rbac.authorization.k8s.io"
            | "storage.k8s.io"
            | "coordination.k8s.io"
            | "discovery.k8s.io"
            | "events.k8s.io"
            | "scheduling.k8s.io"
            | "node.k8s.io"
            | "apiextensions.k8s.io"
            | "apiregistration.k8s.io"
            | "admissionregistration.k8s.io"
            | "certificates.k8s.io"
            | "flowcontrol.apiserver.k8s.io"
            | "resource.k8s.io"
            | "authentication.k8s.io"
            | "authorization.k8s.io"
    )
}

const CONTAINERS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// List semantics of the field at `path` (field names only, list indices skipped).
pub(crate) fn list_kind(kind: &KindPath, path: &[String]) -> ListKind {
    let Some(last) = path.last().map(String::as_str) else {
        return ListKind::Atomic;
    };
    let parent = path
        .len()
        .checked_sub(2)
        .and_then(|i| path.get(i))
        .map(String::as_str);
    let in_metadata = path.first().map(String::as_str) == Some("metadata");
    if in_metadata && path.len() == 2 {
        return match last {
            "finalizers" => ListKind::Set,
            "ownerReferences" => ListKind::Map(&["uid"]),
            _ => ListKind::Atomic,
        };
    }
    if !is_builtin_group(&kind.group) {
        return ListKind::Atomic;
    }
    let in_status = path.first().map(String::as_str) == Some("status");
    match last {
        "containers" | "initContainers" | "ephemeralContainers" if !in_status => {
            ListKind::Map(&["name"])
        }
        "ports" if parent.is_some_and(|p| CONTAINERS.contains(&p)) => {
            ListKind::Map(&["containerPort", "protocol"])
        }
        "ports" if kind.kind == "Service" && path.len() == 2 => {
            ListKind::Map(&["port", "protocol"])
        }
        "env" if parent.is_some_and(|p| CONTAINERS.contains(&p)) => ListKind::Map(&["name"]),
        "volumeMounts" => ListKind::Map(&["mountPath"]),
        "volumeDevices" => ListKind::Map(&["devicePath"]),
        "resizePolicy" => ListKind::Atomic,
        "volumes" if parent == Some("spec") => ListKind::Map(&["name"]),
        "imagePullSecrets" => ListKind::Map(&["name"]),
        "hostAliases" => ListKind::Map(&["ip"]),
        "topologySpreadConstraints" => ListKind::Map(&["topologyKey", "whenUnsatisfiable"]),
        "resourceClaims" if parent == Some("spec") => ListKind::Map(&["name"]),
        "schedulingGates" => ListKind::Map(&["name"]),
        "podIPs" | "hostIPs" => ListKind::Map(&["ip"]),
        "conditions" if in_status => ListKind::Map(&["type"]),
        "addresses" if kind.kind == "Node" => ListKind::Map(&["type"]),
        "podCIDRs" => ListKind::Set,
        _ => ListKind::Atomic,
    }
}

/// Struct-typed fields upstream marks `structType=atomic` (owned and replaced as one).
pub(crate) fn is_atomic_object(kind: &KindPath, path: &[String]) -> bool {
    if !is_builtin_group(&kind.group) {
        return false;
    }
    let last = path.last().map(String::as_str);
    // LabelSelector is atomic wherever it is used as `selector` in apps/batch/policy.
    last == Some("selector") && kind.kind != "Service" && path.len() == 2
}
