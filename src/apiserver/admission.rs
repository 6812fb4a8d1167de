//! What happens to an object between decoding and storage: defaulting, validation, unknown
//! field detection, allocation (Service ClusterIPs), and side effects after writes (CRDs
//! change the served kinds; deleting a namespace deletes its content).
//!
//! The full defaulting/validation rules live in the `defaults`/`validation` modules when
//! present; this file keeps the rules the server itself depends on.

use super::fields;
use super::handlers::{Api, list_all};
use super::registry::ResourceKind;
use super::status::{ApiError, Cause};
use base64::Engine;
use serde_json::{Value, json};

/// Whether `metadata.generation` is maintained for a kind (objects with a spec).
pub fn tracks_generation(kind: &ResourceKind) -> bool {
    if kind.crd.is_some() {
        return true;
    }
    !matches!(
        kind.plural.as_str(),
        "configmaps"
            | "secrets"
            | "events"
            | "endpoints"
            | "serviceaccounts"
            | "namespaces"
            | "nodes"
            | "leases"
            | "endpointslices"
            | "roles"
            | "rolebindings"
            | "clusterroles"
            | "clusterrolebindings"
            | "controllerrevisions"
            | "storageclasses"
            | "priorityclasses"
            | "limitranges"
            | "resourcequotas"
            | "services"
            | "persistentvolumes"
            | "persistentvolumeclaims"
    )
}

fn set_default(obj: &mut Value, ptr: &str, v: Value) {
    if obj
        .pointer(ptr)
        .is_some_and(|x| !x.is_null() && x.as_object().is_none_or(|m| !m.is_empty()))
    {
        return;
    }
    let mut cur = obj;
    let parts: Vec<&str> = ptr.trim_start_matches('/').split('/').collect();
    for (i, p) in parts.iter().enumerate() {
        if !cur.is_object() {
            return;
        }
        if i == parts.len() - 1 {
            cur[*p] = v;
            return;
        }
        if cur.get(*p).is_none_or(Value::is_null) {
            cur[*p] = json!({});
        }
        cur = &mut cur[*p];
    }
}

fn pod_spec_defaults(spec: &mut Value) {
    set_default(spec, "/restartPolicy", json!("Always"));
    set_default(spec, "/dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "/schedulerName", json!("default-scheduler"));
    set_default(spec, "/terminationGracePeriodSeconds", json!(30));
    set_default(spec, "/securityContext", json!({}));
    if let Some(cs) = spec.get_mut("containers").and_then(Value::as_array_mut) {
        for c in cs {
            if c.get("imagePullPolicy").is_none() {
                let image = c.get("image").and_then(Value::as_str).unwrap_or("");
                let last = image.rsplit('/').next().unwrap_or("");
                let policy = if !last.contains(':') || image.ends_with(":latest") {
                    "Always"
                } else {
                    "IfNotPresent"
                };
                c["imagePullPolicy"] = json!(policy);
            }
            set_default(c, "/terminationMessagePath", json!("/dev/termination-log"));
            set_default(c, "/terminationMessagePolicy", json!("File"));
            set_default(c, "/resources", json!({}));
            if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports {
                    set_default(p, "/protocol", json!("TCP"));
                }
            }
        }
    }
}

/// Server-side defaults: upstream's per-kind defaulting, then the rules the server itself
/// relies on.
pub fn defaults(kind: &ResourceKind, obj: &mut Value) {
    if kind.crd.is_none() {
        super::defaults::apply(&kind.group, &kind.version, &kind.kind, obj);
    }
    match (kind.group.as_str(), kind.plural.as_str()) {
        ("", "namespaces") => {
            set_default(obj, "/spec/finalizers", json!(["kubernetes"]));
            set_default(obj, "/status/phase", json!("Active"));
            if let Some(name) = obj.pointer("/metadata/name").cloned() {
                set_default(obj, "/metadata/labels", json!({}));
                if let Some(l) = obj
                    .pointer_mut("/metadata/labels")
                    .and_then(Value::as_object_mut)
                {
                    l.insert("kubernetes.io/metadata.name".into(), name);
                }
            }
        }
        ("", "secrets") => {
            set_default(obj, "/type", json!("Opaque"));
            if let Some(Value::Object(sd)) =
                obj.as_object_mut().and_then(|m| m.remove("stringData"))
            {
                for (k, v) in sd {
                    let s = v.as_str().unwrap_or_default().to_string();
                    set_default(obj, "/data", json!({}));
                    obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(s));
                }
            }
        }
        ("", "services") => {
            set_default(obj, "/spec/type", json!("ClusterIP"));
            set_default(obj, "/spec/sessionAffinity", json!("None"));
            if let Some(ports) = obj.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
                for p in ports {
                    set_default(p, "/protocol", json!("TCP"));
                    if let Some(port) = p.get("port").cloned() {
                        set_default(p, "/targetPort", port);
                    }
                }
            }
        }
        ("", "pods") => {
            if let Some(spec) = obj.get_mut("spec") {
                pod_spec_defaults(spec);
            }
            set_default(obj, "/status/phase", json!("Pending"));
        }
        ("apps", "deployments" | "replicasets" | "statefulsets" | "daemonsets") => {
            if kind.plural != "daemonsets" {
                set_default(obj, "/spec/replicas", json!(1));
            }
            set_default(obj, "/spec/revisionHistoryLimit", json!(10));
            if kind.plural == "deployments" {
                set_default(obj, "/spec/progressDeadlineSeconds", json!(600));
                set_default(
                    obj,
                    "/spec/strategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
                );
            }
            if let Some(spec) = obj.pointer_mut("/spec/template/spec") {
                pod_spec_defaults(spec);
            }
        }
        ("batch", "jobs") => {
            if let Some(spec) = obj.pointer_mut("/spec/template/spec") {
                pod_spec_defaults(spec);
            }
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            let names = obj.pointer("/spec/names").cloned().unwrap_or(json!({}));
            let stored: Vec<Value> = obj
                .pointer("/spec/versions")
                .and_then(Value::as_array)
                .map(|vs| {
                    vs.iter()
                        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                        .filter_map(|v| v.get("name").cloned())
                        .collect()
                })
                .unwrap_or_default();
            if obj
                .get("status")
                .is_none_or(|s| s.get("conditions").is_none())
            {
                let now = super::object::now_rfc3339();
                obj["status"] = json!({
                    "acceptedNames": names,
                    "storedVersions": stored,
                    "conditions": [
                        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
                        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
                    ],
                });
            }
        }
        _ => {}
    }
}

/// Validation: upstream's per-kind rules (metadata, workloads, update transitions) and, for
/// custom resources, the CRD's structural schema.
pub fn validate(kind: &ResourceKind, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes: Vec<Cause> =
        super::validation::validate(&kind.group, &kind.version, &kind.kind, obj, old)
            .into_iter()
            .map(|c| Cause {
                reason: c.reason,
                message: c.message,
                field: c.field,
            })
            .collect();
    if let Some(crd) = &kind.crd {
        if let Some(schema) = &crd.schema {
            causes.extend(fields::validate_schema(schema, obj));
        }
    }
    causes
}

/// Drops the fields of `obj` its kind's schema does not know; returns their dotted paths.
pub fn prune_unknown_fields(kind: &ResourceKind, obj: &mut Value) -> Vec<String> {
    match &kind.crd {
        Some(crd) if crd.preserve_unknown => vec![],
        Some(crd) => crd
            .schema
            .as_ref()
            .map(|s| fields::prune_crd(s, obj))
            .unwrap_or_default(),
        None => fields::prune_builtin(&kind.group, &kind.version, &kind.kind, obj),
    }
}

/// Warnings to return with a successful write.
pub fn warnings(_kind: &ResourceKind, _obj: &Value) -> Vec<String> {
    vec![]
}

fn ip_to_u32(s: &str) -> Option<u32> {
    s.parse::<std::net::Ipv4Addr>().ok().map(u32::from)
}

/// Allocate what the API server owns: a Service's ClusterIP and node ports (see
/// [`super::allocator`]). The reservations are released again if the object is not stored.
pub async fn allocate(
    api: &Api,
    kind: &ResourceKind,
    obj: &mut Value,
) -> Result<super::allocator::Reservations, ApiError> {
    if !(kind.group.is_empty() && kind.plural == "services") {
        return Ok(Default::default());
    }
    let (services, _) = list_all(api, kind, None, 0).await?;
    let taken_ips: std::collections::HashSet<u32> = services
        .iter()
        .filter_map(|s| s.pointer("/spec/clusterIP").and_then(Value::as_str))
        .filter_map(ip_to_u32)
        .collect();
    let taken_ports: std::collections::HashSet<u32> = services
        .iter()
        .filter_map(|s| s.pointer("/spec/ports").and_then(Value::as_array))
        .flatten()
        .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
        .map(|p| p as u32)
        .collect();
    let held = super::allocator::allocate_service(api, obj, &taken_ips, &taken_ports).await?;
    let headless = obj.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None");
    if headless {
        set_default(obj, "/spec/clusterIPs", json!(["None"]));
    }
    if obj.pointer("/spec/type").and_then(Value::as_str) != Some("ExternalName") {
        set_default(obj, "/spec/ipFamilies", json!(["IPv4"]));
        set_default(obj, "/spec/ipFamilyPolicy", json!("SingleStack"));
        set_default(obj, "/spec/internalTrafficPolicy", json!("Cluster"));
    }
    Ok(held)
}

/// Side effects of a successful create/update.
pub async fn after_write(api: &Api, kind: &ResourceKind) {
    if kind.group == "apiextensions.k8s.io" {
        if let Err(e) = super::handlers::refresh_crds(api).await {
            tracing::warn!(error = %e, "cannot refresh custom resource definitions");
        }
    }
}

/// Side effects of a completed delete: a namespace takes its content with it; a CRD takes its
/// custom resources.
pub async fn after_delete(api: &Api, kind: &ResourceKind, ns: Option<&str>, name: &str) {
    let result = match (kind.group.as_str(), kind.plural.as_str()) {
        ("", "services") => {
            super::allocator::release_service(api, ns.unwrap_or_default(), name).await
        }
        ("", "namespaces") => delete_namespace_content(api, name).await,
        ("apiextensions.k8s.io", _) => delete_crd_content(api, name).await,
        _ => Ok(()),
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, kind = %kind.plural, name, "cleanup after delete failed");
    }
}

async fn delete_prefix(api: &Api, prefix: &str) -> Result<(), ApiError> {
    use crate::store::types::{DeleteRangeRequest, RequestOp, TxnRequest};
    api.backend
        .txn(TxnRequest {
            compare: vec![],
            success: vec![RequestOp::DeleteRange(DeleteRangeRequest {
                key: prefix.as_bytes().to_vec(),
                range_end: super::storage::prefix_end(prefix.as_bytes()),
                prev_kv: false,
            })],
            failure: vec![],
        })
        .await?;
    Ok(())
}

async fn delete_namespace_content(api: &Api, ns: &str) -> Result<(), ApiError> {
    let mut seen = std::collections::HashSet::new();
    for k in api.registry.all() {
        if k.namespaced && seen.insert(k.storage_prefix.clone()) {
            delete_prefix(api, &k.list_prefix(Some(ns))).await?;
        }
    }
    Ok(())
}

async fn delete_crd_content(api: &Api, crd_name: &str) -> Result<(), ApiError> {
    // CRD names are `<plural>.<group>`.
    if let Some((plural, group)) = crd_name.split_once('.') {
        delete_prefix(api, &format!("/registry/{group}/{plural}/")).await?;
    }
    super::handlers::refresh_crds(api).await
}

fn quota_forbidden(kind: &ResourceKind, name: &str, why: String) -> ApiError {
    let mut e = ApiError::forbidden(format!(
        "{} \"{name}\" is forbidden: {why}",
        kind.qualified()
    ));
    let mut d = json!({"name": name, "kind": kind.plural});
    if !kind.group.is_empty() {
        d["group"] = json!(kind.group);
    }
    e.details = Some(d);
    e
}

/// What the namespace uses of `resource`, counted from the stored objects (for a quota whose
/// status the controller has not filled yet).
async fn live_used(api: &Api, ns: &str, resource: &str) -> Result<f64, ApiError> {
    let Some((group, plural)) = crate::quota::source_of(resource) else {
        return Ok(0.0);
    };
    let Some(kind) = api
        .registry
        .all()
        .into_iter()
        .find(|k| k.group == group && k.plural == plural)
    else {
        return Ok(0.0);
    };
    let (items, _) = list_all(api, &kind, Some(ns), 0).await?;
    Ok(items
        .iter()
        .filter_map(|o| {
            crate::quota::usage(&group, &plural, o)
                .get(resource)
                .copied()
        })
        .sum())
}

/// ResourceQuota admission of a create: refuse what would exceed a quota of the namespace
/// (`exceeded quota: …`) or lacks the requests/limits a compute quota requires
/// (`failed quota: …`), and charge the rest to each quota's `status.used` with a
/// compare-and-swap, so two concurrent creates cannot both take the last unit.
pub async fn charge_quota(
    api: &Api,
    kind: &ResourceKind,
    obj: &Value,
    dry_run: bool,
) -> Result<(), ApiError> {
    use crate::quota::{Verdict, check, format, parse_list, pod_constraints, usage};
    let Some(ns) = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|_| kind.namespaced)
    else {
        return Ok(());
    };
    let delta = usage(&kind.group, &kind.plural, obj);
    if delta.is_empty() {
        return Ok(());
    }
    let Some(qkind) = api.registry.find("", "v1", "resourcequotas") else {
        return Ok(());
    };
    let (quotas, _) = list_all(api, &qkind, Some(ns), 0).await?;
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let is_pod = kind.group.is_empty() && kind.plural == "pods";
    for q in quotas {
        let qname = q
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let mut charged = false;
        for _ in 0..16 {
            let (mut cur, rev) = super::handlers::get_obj(api, &qkind, Some(ns), &qname).await?;
            let hard = parse_list(cur.pointer("/spec/hard"));
            if is_pod {
                if let Some(why) = pod_constraints(hard.keys().map(String::as_str), obj) {
                    return Err(quota_forbidden(
                        kind,
                        name,
                        format!("failed quota: {qname}: {why}"),
                    ));
                }
            }
            let mut used = parse_list(cur.pointer("/status/used"));
            for r in hard.keys().filter(|r| delta.contains_key(*r)) {
                if !used.contains_key(r) {
                    used.insert(r.clone(), live_used(api, ns, r).await?);
                }
            }
            let next = match check(&qname, &hard, &used, &delta) {
                Verdict::Untouched => {
                    charged = true;
                    break;
                }
                Verdict::Refuse(why) => return Err(quota_forbidden(kind, name, why)),
                Verdict::Charge(next) => next,
            };
            if dry_run {
                charged = true;
                break;
            }
            if let Some(m) = cur.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            if !cur.get("status").is_some_and(Value::is_object) {
                cur["status"] = json!({});
            }
            if !cur["status"].get("hard").is_some_and(Value::is_object) {
                cur["status"]["hard"] = cur.pointer("/spec/hard").cloned().unwrap_or(json!({}));
            }
            if !cur["status"].get("used").is_some_and(Value::is_object) {
                cur["status"]["used"] = json!({});
            }
            for (k, v) in &used {
                if hard.contains_key(k) && cur["status"]["used"].get(k).is_none() {
                    cur["status"]["used"][k] = json!(format(k, *v));
                }
            }
            for (k, v) in &next {
                cur["status"]["used"][k] = json!(format(k, *v));
            }
            let key = qkind.key(Some(ns), &qname);
            if super::handlers::put_if(api, &qkind, &key, rev, &cur)
                .await?
                .is_some()
            {
                charged = true;
                break;
            }
        }
        if !charged {
            return Err(ApiError::conflict("", "resourcequotas", &qname));
        }
    }
    Ok(())
}

/// Where the ServiceAccount admission mounts the API credentials in every container.
pub const SERVICE_ACCOUNT_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The ServiceAccount admission plugin on pod create, as upstream's: default
/// `spec.serviceAccountName` to `default`, refuse a pod whose ServiceAccount does not exist,
/// and (unless the pod or its ServiceAccount says `automountServiceAccountToken: false`) add
/// the projected `kube-api-access-xxxxx` volume (bound token, cluster CA, namespace) mounted
/// read-only at [`SERVICE_ACCOUNT_MOUNT_PATH`] in every container and init container that
/// does not mount something there already. Pods carrying the mirror-pod annotation are left
/// alone (they may not reference service accounts). Also copies the ServiceAccount's
/// `imagePullSecrets` into a pod that has none.
pub async fn admit_pod_create(
    api: &Api,
    kind: &ResourceKind,
    obj: &mut Value,
) -> Result<(), ApiError> {
    if !(kind.group.is_empty() && kind.plural == "pods") {
        return Ok(());
    }
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_string();
    let forbidden = |why: String| quota_forbidden(kind, &name, why);
    if obj
        .pointer("/metadata/annotations/kubernetes.io~1config.mirror")
        .is_some()
    {
        if obj
            .pointer("/spec/serviceAccountName")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
        {
            return Err(forbidden(
                "a mirror pod may not reference service accounts".into(),
            ));
        }
        return Ok(());
    }
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else {
        return Ok(());
    };
    let sa_name = match spec.get("serviceAccountName").and_then(Value::as_str) {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => {
            spec["serviceAccountName"] = json!("default");
            "default".to_string()
        }
    };
    let sa = match lookup_service_account(api, &ns, &sa_name).await {
        Ok(sa) => sa,
        Err(e) => {
            return Err(forbidden(format!(
                "error looking up service account {ns}/{sa_name}: {}",
                e.message
            )));
        }
    };
    let automount = spec
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| {
            sa.get("automountServiceAccountToken")
                .and_then(Value::as_bool)
        })
        .unwrap_or(true);
    if automount {
        mount_service_account_token(spec);
    }
    let no_pull_secrets = spec
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if no_pull_secrets {
        let from_sa: Vec<Value> = sa
            .get("imagePullSecrets")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.get("name").cloned())
                    .map(|n| json!({"name": n}))
                    .collect()
            })
            .unwrap_or_default();
        if !from_sa.is_empty() {
            spec["imagePullSecrets"] = json!(from_sa);
        }
    }
    Ok(())
}

/// The ServiceAccount `ns/name`. `default` is retried for a few seconds, as upstream does:
/// the ServiceAccount controller creates it shortly after its namespace.
async fn lookup_service_account(api: &Api, ns: &str, name: &str) -> Result<Value, ApiError> {
    let Some(sa_kind) = api.registry.find("", "v1", "serviceaccounts") else {
        return Err(ApiError::internal("serviceaccounts are not served"));
    };
    let attempts = if name == "default" { 20 } else { 1 };
    for i in 0..attempts {
        if i > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        match super::handlers::get_obj(api, &sa_kind, Some(ns), name).await {
            Ok((sa, _)) => return Ok(sa),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    // Upstream names the resource in the singular here.
    Err(ApiError::not_found("", "serviceaccount", name))
}

/// The projected volume upstream's admission adds (after defaulting: mode 0644 = 420).
fn token_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
            ]
        }
    })
}

fn mount_service_account_token(spec: &mut Value) {
    const PREFIX: &str = "kube-api-access-";
    let existing = spec
        .get("volumes")
        .and_then(Value::as_array)
        .and_then(|vs| {
            vs.iter()
                .filter_map(|v| v.get("name").and_then(Value::as_str))
                .find(|n| n.starts_with(PREFIX))
                .map(String::from)
        });
    let volume_name = existing
        .clone()
        .unwrap_or_else(|| super::object::generate_name(PREFIX));
    let mut needed = false;
    for list in ["initContainers", "containers"] {
        let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in cs.iter_mut().filter(|c| c.is_object()) {
            let mounted = c
                .get("volumeMounts")
                .and_then(Value::as_array)
                .is_some_and(|ms| {
                    ms.iter().any(|m| {
                        m.get("mountPath").and_then(Value::as_str)
                            == Some(SERVICE_ACCOUNT_MOUNT_PATH)
                    })
                });
            if mounted {
                continue;
            }
            if !c.get("volumeMounts").is_some_and(Value::is_array) {
                c["volumeMounts"] = json!([]);
            }
            if let Some(ms) = c["volumeMounts"].as_array_mut() {
                ms.push(json!({
                    "name": volume_name,
                    "readOnly": true,
                    "mountPath": SERVICE_ACCOUNT_MOUNT_PATH,
                }));
                needed = true;
            }
        }
    }
    if needed && existing.is_none() {
        if !spec.get("volumes").is_some_and(Value::is_array) {
            spec["volumes"] = json!([]);
        }
        if let Some(vs) = spec["volumes"].as_array_mut() {
            vs.push(token_volume(&volume_name));
        }
    }
}

#[cfg(test)]
mod service_account_tests {
    use super::*;

    #[test]
    fn every_container_gets_the_token_mount_unless_it_mounts_that_path_already() {
        let mut spec = json!({
            "initContainers": [{"name": "init", "image": "x"}],
            "containers": [
                {"name": "a", "image": "x"},
                {"name": "b", "image": "x", "volumeMounts": [{"name": "own", "mountPath": SERVICE_ACCOUNT_MOUNT_PATH}]}
            ],
            "volumes": [{"name": "own", "emptyDir": {}}]
        });
        mount_service_account_token(&mut spec);
        let vols = spec["volumes"].as_array().unwrap();
        assert_eq!(vols.len(), 2);
        let name = vols[1]["name"].as_str().unwrap();
        assert!(
            name.starts_with("kube-api-access-") && name.len() == 21,
            "{name}"
        );
        assert_eq!(vols[1]["projected"]["defaultMode"], 420);
        assert_eq!(
            vols[1]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
            3607
        );
        for c in [&spec["initContainers"][0], &spec["containers"][0]] {
            assert_eq!(
                c["volumeMounts"][0],
                json!({"name": name, "readOnly": true, "mountPath": SERVICE_ACCOUNT_MOUNT_PATH})
            );
        }
        assert_eq!(
            spec["containers"][1]["volumeMounts"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn no_volume_is_added_when_no_container_needs_it() {
        let mut spec = json!({
            "containers": [{"name": "b", "image": "x", "volumeMounts": [{"name": "own", "mountPath": SERVICE_ACCOUNT_MOUNT_PATH}]}],
            "volumes": [{"name": "own", "emptyDir": {}}]
        });
        mount_service_account_token(&mut spec);
        assert_eq!(spec["volumes"].as_array().unwrap().len(), 1);
    }
}
