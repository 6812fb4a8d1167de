//! create, update (PUT) and patch, including the status subresource.

use super::{Api, Reply, Req, get_obj, put_if};
use crate::apiserver::admission;
use crate::apiserver::object::{
    check_type_meta, decode_body, generate_name, meta_mut, meta_str, set_resource_version,
    spec_view,
};
use crate::apiserver::patch::{self, ApplyError, KindPath, PatchError, PatchType};
use crate::apiserver::registry::ResourceKind;
use crate::apiserver::status::ApiError;
use serde_json::{Value, json};

/// Unknown-field handling per `?fieldValidation=` (default Warn, like upstream for JSON):
/// unknown fields are always dropped from `obj` (never stored); Strict refuses the request,
/// Warn returns them as warnings, Ignore says nothing.
pub(crate) fn field_validation(req: &Req, obj: &mut Value) -> Result<Vec<String>, ApiError> {
    let k = &req.kind;
    if k.crd.is_none() {
        crate::apiserver::fields::check_typed(&k.group, &k.version, &k.kind, obj).map_err(|e| {
            ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: {e}",
                k.kind, k.version, k.kind
            ))
        })?;
    }
    let mode = req.query.get("fieldValidation").unwrap_or("Warn");
    let unknown = admission::prune_unknown_fields(&req.kind, obj);
    if mode == "Ignore" || unknown.is_empty() {
        return Ok(vec![]);
    }
    let msgs: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field {f:?}"))
        .collect();
    if mode == "Strict" {
        let joined = if msgs.len() == 1 {
            msgs[0].clone()
        } else {
            msgs.join(", ")
        };
        return Err(ApiError::bad_request(format!(
            "strict decoding error: {joined}"
        )));
    }
    Ok(msgs)
}

/// The namespace of a request body against the URL's.
fn reconcile_namespace(
    kind: &ResourceKind,
    req_ns: Option<&str>,
    obj: &mut Value,
) -> Result<(), ApiError> {
    let body_ns = meta_str(obj, "namespace").map(String::from);
    let Some(m) = meta_mut(obj) else {
        return Err(ApiError::bad_request("object has no metadata"));
    };
    if !kind.namespaced {
        m.remove("namespace");
        return Ok(());
    }
    match (req_ns, body_ns.as_deref()) {
        (Some(a), Some(b)) if !b.is_empty() && a != b => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        (Some(a), _) => {
            m.insert("namespace".into(), json!(a));
            Ok(())
        }
        (None, _) => Err(ApiError::bad_request(
            "the namespace of the object must be set for namespaced resources",
        )),
    }
}

fn invalid(
    kind: &ResourceKind,
    name: &str,
    causes: Vec<crate::apiserver::status::Cause>,
) -> Result<(), ApiError> {
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(&kind.group, &kind.kind, name, &causes))
    }
}

async fn ensure_namespace(
    api: &Api,
    kind: &ResourceKind,
    ns: Option<&str>,
    name: &str,
) -> Result<(), ApiError> {
    let (Some(ns), true) = (ns, kind.namespaced) else {
        return Ok(());
    };
    let Some(ns_kind) = api.registry.find("", "v1", "namespaces") else {
        return Ok(());
    };
    match get_obj(api, &ns_kind, None, ns).await {
        Ok((nsobj, _)) => {
            if nsobj
                .pointer("/metadata/deletionTimestamp")
                .is_some_and(|v| !v.is_null())
            {
                return Err(ApiError::forbidden(format!(
                    "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    kind.qualified(),
                    name,
                )));
            }
            Ok(())
        }
        Err(e) if e.code == 404 => Err(ApiError::not_found("", "namespaces", ns)),
        Err(e) => Err(e),
    }
}

/// Store a new object (already decoded and type-checked).
pub(crate) async fn create_object(
    api: &Api,
    req: &Req,
    mut obj: Value,
    mut warnings: Vec<String>,
    applied: bool,
) -> Result<Reply, ApiError> {
    let kind = &req.kind;
    reconcile_namespace(kind, req.namespace.as_deref(), &mut obj)?;
    let name = match meta_str(&obj, "name").filter(|n| !n.is_empty()) {
        Some(n) => n.to_string(),
        None => match meta_str(&obj, "generateName").filter(|n| !n.is_empty()) {
            Some(prefix) => generate_name(prefix),
            None => String::new(),
        },
    };
    invalid(
        kind,
        &name,
        crate::apiserver::object::validate_name(kind, &name),
    )?;
    if let Some(m) = meta_mut(&mut obj) {
        m.insert("name".into(), json!(name));
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        m.insert(
            "creationTimestamp".into(),
            json!(crate::apiserver::object::now_rfc3339()),
        );
        m.remove("resourceVersion");
        m.remove("deletionTimestamp");
        m.remove("deletionGracePeriodSeconds");
        m.remove("selfLink");
        if admission::tracks_generation(kind) {
            m.insert("generation".into(), json!(1));
        } else {
            m.remove("generation");
        }
    }
    // Status belongs to the status subresource: a create cannot set it (upstream's
    // PrepareForCreate), except for Nodes, which kubelets create with their status.
    if kind.has_sub("status") && !(kind.group.is_empty() && kind.plural == "nodes") {
        if let Some(o) = obj.as_object_mut() {
            o.remove("status");
        }
    }
    admission::defaults(kind, &mut obj);
    if !applied {
        patch::update_managed_fields(
            &kind_path(kind),
            None,
            &mut obj,
            &req.field_manager(),
            "Update",
            &crate::apiserver::object::now_rfc3339(),
        );
    }
    invalid(kind, &name, admission::validate(kind, &obj, None))?;
    ensure_namespace(api, kind, req.namespace.as_deref(), &name).await?;
    admission::admit_pod_create(api, kind, &mut obj).await?;
    if req.query.dry_run() {
        admission::charge_quota(api, kind, &obj, true).await?;
        return Ok(Reply::Json {
            code: 201,
            body: obj,
            warnings,
        });
    }
    let key = kind.key(req.namespace.as_deref(), &name);
    if get_obj(api, kind, req.namespace.as_deref(), &name)
        .await
        .is_ok()
    {
        // Report the duplicate before allocation errors (a taken ClusterIP), as upstream does.
        return Err(ApiError::already_exists(&kind.group, &kind.plural, &name));
    }
    let reservations = admission::allocate(api, kind, &mut obj).await?;
    let stored = async {
        admission::charge_quota(api, kind, &obj, false).await?;
        match put_if(api, kind, &key, 0, &obj).await? {
            Some(rev) => Ok(rev),
            None => Err(ApiError::already_exists(&kind.group, &kind.plural, &name)),
        }
    }
    .await;
    let rev = match stored {
        Ok(rev) => rev,
        Err(e) => {
            // Nothing was stored: give the ClusterIP and node ports back.
            reservations.release(api).await;
            return Err(e);
        }
    };
    warnings.extend(admission::warnings(kind, &obj));
    set_resource_version(&mut obj, rev);
    admission::after_write(api, kind).await;
    Ok(Reply::Json {
        code: 201,
        body: obj,
        warnings,
    })
}

/// `POST …/{plural}`.
pub async fn create(api: &Api, req: Req) -> Result<Reply, ApiError> {
    let mut obj = decode_body(&req.body, &req.content_type)?;
    check_type_meta(&req.kind, &mut obj)?;
    let warnings = field_validation(&req, &mut obj)?;
    create_object(api, &req, obj, warnings, false).await
}

/// Build the object an update stores from the current one and the client's.
pub(crate) fn merge_update(
    kind: &ResourceKind,
    sub: Option<&str>,
    cur: &Value,
    new: Value,
) -> Value {
    let mut out = match sub {
        Some("status") => {
            let mut o = cur.clone();
            match new.get("status") {
                Some(s) => o["status"] = s.clone(),
                None => {
                    if let Some(m) = o.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            o
        }
        _ => {
            let mut o = new;
            if kind.has_sub("status") {
                match cur.get("status") {
                    Some(s) => o["status"] = s.clone(),
                    None => {
                        if let Some(m) = o.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            o
        }
    };
    // A namespace's finalizers change only through `namespaces/{name}/finalize` (upstream).
    if sub.is_none() && kind.group.is_empty() && kind.plural == "namespaces" {
        match cur.pointer("/spec/finalizers") {
            Some(f) => {
                if !out.get("spec").is_some_and(Value::is_object) {
                    out["spec"] = json!({});
                }
                out["spec"]["finalizers"] = f.clone();
            }
            None => {
                if let Some(spec) = out.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.remove("finalizers");
                }
            }
        }
    }
    // System-owned metadata is never taken from the client.
    let cur_meta = cur.get("metadata").cloned().unwrap_or(json!({}));
    if let Some(m) = meta_mut(&mut out) {
        for f in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "name",
            "namespace",
        ] {
            match cur_meta.get(f) {
                Some(v) => {
                    m.insert(f.into(), v.clone());
                }
                None => {
                    m.remove(f);
                }
            }
        }
        m.remove("resourceVersion");
        if !m.contains_key("managedFields") {
            if let Some(mf) = cur_meta.get("managedFields") {
                m.insert("managedFields".into(), mf.clone());
            }
        }
    }
    if sub.is_none() && admission::tracks_generation(kind) && spec_view(cur) != spec_view(&out) {
        let g = cur
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if let Some(m) = meta_mut(&mut out) {
            m.insert("generation".into(), json!(g + 1));
        }
    }
    out
}

/// Validate and store an updated object with a compare on `cur_rev`; completes a pending
/// deletion when the last finalizer is gone.
pub(crate) async fn commit_update(
    api: &Api,
    req: &Req,
    cur: &Value,
    cur_rev: i64,
    mut out: Value,
    warnings: Vec<String>,
    applied: bool,
) -> Result<Reply, ApiError> {
    let kind = &req.kind;
    let name = req.name.clone().unwrap_or_default();
    admission::defaults(kind, &mut out);
    if !applied {
        patch::update_managed_fields(
            &kind_path(kind),
            Some(cur),
            &mut out,
            &req.field_manager(),
            "Update",
            &crate::apiserver::object::now_rfc3339(),
        );
    }
    invalid(kind, &name, admission::validate(kind, &out, Some(cur)))?;
    if req.query.dry_run() {
        set_resource_version(&mut out, cur_rev);
        return Ok(Reply::Json {
            code: 200,
            body: out,
            warnings,
        });
    }
    let key = kind.key(req.namespace.as_deref(), &name);
    let deleting = out
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null());
    let no_finalizers = out
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_none_or(|a| a.is_empty())
        && !(kind.group.is_empty()
            && kind.plural == "namespaces"
            && super::delete::has_spec_finalizers(&out));
    if deleting && no_finalizers {
        return match super::delete_if(api, &key, cur_rev).await? {
            Some(_) => {
                admission::after_delete(api, kind, req.namespace.as_deref(), &name).await;
                Ok(Reply::Json {
                    code: 200,
                    body: out,
                    warnings,
                })
            }
            None => Err(ApiError::conflict(&kind.group, &kind.plural, &name)),
        };
    }
    if *cur == out {
        // No-op updates do not write (upstream keeps the resourceVersion).
        let mut same = out;
        set_resource_version(&mut same, cur_rev);
        return Ok(Reply::Json {
            code: 200,
            body: same,
            warnings,
        });
    }
    let Some(rev) = put_if(api, kind, &key, cur_rev, &out).await? else {
        return Err(ApiError::conflict(&kind.group, &kind.plural, &name));
    };
    set_resource_version(&mut out, rev);
    admission::after_write(api, kind).await;
    Ok(Reply::Json {
        code: 200,
        body: out,
        warnings,
    })
}

fn strip_rv(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    v
}

/// `PUT …/{name}[/status]`.
pub async fn update(api: &Api, req: Req, sub: Option<&str>) -> Result<Reply, ApiError> {
    let kind = req.kind.clone();
    let name = req.name.clone().unwrap_or_default();
    let mut new = decode_body(&req.body, &req.content_type)?;
    check_type_meta(&kind, &mut new)?;
    let warnings = field_validation(&req, &mut new)?;
    match meta_str(&new, "name") {
        Some(n) if n != name => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        _ => {}
    }
    reconcile_namespace(&kind, req.namespace.as_deref(), &mut new)?;
    let (cur, cur_rev) = get_obj(api, &kind, req.namespace.as_deref(), &name).await?;
    if let Some(rv) = meta_str(&new, "resourceVersion").filter(|s| !s.is_empty()) {
        if rv != cur_rev.to_string() {
            return Err(ApiError::conflict(&kind.group, &kind.plural, &name));
        }
    }
    let out = merge_update(&kind, sub, &strip_rv(&cur), new);
    commit_update(api, &req, &strip_rv(&cur), cur_rev, out, warnings, false).await
}

pub(crate) fn kind_path(kind: &ResourceKind) -> KindPath {
    KindPath::new(&kind.group, &kind.version, &kind.kind)
}

/// Apply a JSON, merge or strategic-merge patch body to `current`.
pub(crate) fn apply_patch(
    kp: &KindPath,
    pt: PatchType,
    current: &Value,
    body: &[u8],
) -> Result<Value, ApiError> {
    patch::apply(kp, pt, current, body).map_err(|e| match e {
        PatchError::StrategicMergeUnsupported => {
            ApiError::new(415, "UnsupportedMediaType", e.to_string())
        }
        PatchError::JsonPatchFailed(m) => ApiError::new(422, "Invalid", m),
        other => ApiError::bad_request(other.to_string()),
    })
}

fn apply_error(kind: &ResourceKind, name: &str, e: ApplyError) -> ApiError {
    match e {
        ApplyError::Conflicts(cs) => {
            let mut err = ApiError::new(
                409,
                "Conflict",
                ApplyError::Conflicts(cs.clone()).to_string(),
            );
            err.details = Some(json!({
                "name": name,
                "group": kind.group,
                "kind": kind.plural,
                "causes": cs.iter().map(|c| json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with {}", c.manager_display()),
                    "field": c.field,
                })).collect::<Vec<_>>(),
            }));
            err
        }
        ApplyError::BadRequest(m) => ApiError::bad_request(m),
        other => ApiError::new(422, "Invalid", other.to_string()),
    }
}

/// `PATCH …/{name}[/status]`.
pub async fn patch(api: &Api, req: Req, sub: Option<&str>) -> Result<Reply, ApiError> {
    let kind = req.kind.clone();
    let kp = kind_path(&kind);
    let name = req.name.clone().unwrap_or_default();
    let pt = PatchType::from_content_type(&req.content_type)
        .ok_or_else(|| ApiError::unsupported_media_type(&req.content_type))?;
    let (applied, apply_warnings) = if pt == PatchType::Apply {
        let v: Value = serde_yaml::from_slice(&req.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
        if !v.is_object() {
            return Err(ApiError::bad_request("apply patch must be an object"));
        }
        let mut check = v.clone();
        if let Some(m) = meta_mut(&mut check) {
            m.entry("name").or_insert_with(|| json!(name));
        }
        // Unknown fields and wrong types are judged (and pruned) on the applied configuration.
        let warnings = field_validation(&req, &mut check)?;
        (Some(check), warnings)
    } else {
        (None, vec![])
    };
    let manager = req.query.get("fieldManager").unwrap_or("").to_string();
    let force = req.query.flag("force");
    let now = crate::apiserver::object::now_rfc3339();
    for _attempt in 0..8 {
        let (cur, cur_rev) = match get_obj(api, &kind, req.namespace.as_deref(), &name).await {
            Ok(x) => x,
            Err(e) if e.code == 404 && sub.is_none() && applied.is_some() => {
                let cfg = applied.as_ref().cloned().unwrap_or_default();
                let mut obj = patch::server_side_apply(&kp, None, &cfg, &manager, force, &now)
                    .map_err(|e| apply_error(&kind, &name, e))?;
                if let Some(m) = meta_mut(&mut obj) {
                    m.insert("name".into(), json!(name));
                }
                return create_object(api, &req, obj, apply_warnings, true).await;
            }
            Err(e) => return Err(e),
        };
        let base = strip_rv(&cur);
        let mut with_rv = base.clone();
        set_resource_version(&mut with_rv, cur_rev);
        let mut patched = match &applied {
            Some(cfg) => patch::server_side_apply(&kp, Some(&with_rv), cfg, &manager, force, &now)
                .map_err(|e| apply_error(&kind, &name, e))?,
            None => apply_patch(&kp, pt, &with_rv, &req.body)?,
        };
        if !patched.is_object() {
            return Err(ApiError::bad_request("patch result is not an object"));
        }
        check_type_meta(&kind, &mut patched)?;
        let pinned = meta_str(&patched, "resourceVersion").map(String::from);
        if let Some(rv) = pinned.as_deref() {
            if rv != cur_rev.to_string() {
                return Err(ApiError::conflict(&kind.group, &kind.plural, &name));
            }
        }
        if meta_str(&patched, "name") != Some(name.as_str()) {
            return Err(ApiError::bad_request(
                "metadata.name: Invalid value: the name of a patched object cannot change",
            ));
        }
        let warnings = if applied.is_some() {
            apply_warnings.clone()
        } else {
            field_validation(&req, &mut patched)?
        };
        let out = merge_update(&kind, sub, &base, patched);
        match commit_update(api, &req, &base, cur_rev, out, warnings, applied.is_some()).await {
            // A pinned resourceVersion fails the check above on the next attempt.
            Err(e) if e.reason == "Conflict" => continue,
            other => return other,
        }
    }
    Err(ApiError::conflict(&kind.group, &kind.plural, &name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::registry::Registry;

    #[test]
    fn main_resource_updates_keep_status_and_bump_generation_on_spec_change() {
        let reg = Registry::new();
        let d = reg.find("apps", "v1", "deployments").unwrap();
        let cur = json!({"metadata":{"name":"x","uid":"u","generation":1},"spec":{"replicas":1},"status":{"replicas":1}});
        let new = json!({"metadata":{"name":"x","uid":"evil"},"spec":{"replicas":3},"status":{"replicas":9}});
        let out = merge_update(&d, None, &cur, new);
        assert_eq!(out["status"]["replicas"], 1);
        assert_eq!(out["metadata"]["uid"], "u");
        assert_eq!(out["metadata"]["generation"], 2);
    }

    #[test]
    fn status_updates_change_only_status() {
        let reg = Registry::new();
        let d = reg.find("apps", "v1", "deployments").unwrap();
        let cur = json!({"metadata":{"name":"x","generation":1},"spec":{"replicas":1}});
        let new =
            json!({"metadata":{"name":"x"},"spec":{"replicas":5},"status":{"readyReplicas":1}});
        let out = merge_update(&d, Some("status"), &cur, new);
        assert_eq!(out["spec"]["replicas"], 1);
        assert_eq!(out["status"]["readyReplicas"], 1);
        assert_eq!(out["metadata"]["generation"], 1);
    }
}
