//! Subresources: `status`, `scale` (autoscaling/v1 Scale), `pods/binding`, `pods/eviction`;
//! core `pods/log`, `pods/exec`, `pods/attach` are routed to [`crate::apiserver::pod_proxy`]
//! before reaching here; `portforward`/`proxy` answer 501 until the agent serves them.

use super::{Api, Reply, Req, get_obj, write};
use crate::apiserver::object::{decode_body, meta_str};
use crate::apiserver::patch::{KindPath, PatchType};
use crate::apiserver::status::ApiError;
use http::Method;
use serde_json::{Value, json};

/// Dispatch `…/{name}/{sub}`.
pub async fn handle(api: &Api, method: &Method, req: Req, sub: &str) -> Result<Reply, ApiError> {
    let kind = req.kind.clone();
    if !kind.has_sub(sub) || req.name.is_none() {
        return Err(ApiError::path_not_found());
    }
    match (sub, method) {
        ("status", &Method::GET) => super::read::get(api, req).await,
        ("status", &Method::PUT) => write::update(api, req, Some("status")).await,
        ("status", &Method::PATCH) => write::patch(api, req, Some("status")).await,
        ("scale", &Method::GET) => {
            let name = req.name.clone().unwrap_or_default();
            let (obj, _) = get_obj(api, &kind, req.namespace.as_deref(), &name).await?;
            Ok(Reply::ok(to_scale(&req, &obj)))
        }
        ("scale", &Method::PUT | &Method::PATCH) => scale_write(api, req, method).await,
        ("binding", &Method::POST) => binding(api, req).await,
        ("eviction", &Method::POST) => super::eviction::evict(api, req).await,
        ("finalize", &Method::PUT) => finalize(api, req).await,
        ("log" | "exec" | "attach" | "portforward" | "proxy", _) => {
            Err(ApiError::not_implemented(format!(
                "{}/{sub} is not implemented yet (needs the agent proxy)",
                kind.plural
            )))
        }
        ("token", &Method::POST) => token(api, req).await,
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({method} {sub})"
        ))),
    }
}

/// JSON pointers of replicas in spec/status and the selector, per kind (CRDs say theirs).
fn scale_paths(req: &Req) -> (String, String, Option<String>) {
    let to_ptr = |p: &str| format!("/{}", p.trim_start_matches('.').replace('.', "/"));
    if let Some(scale) = req.kind.crd.as_ref().and_then(|c| c.scale.as_ref()) {
        let get = |k: &str| scale.get(k).and_then(Value::as_str).map(to_ptr);
        return (
            get("specReplicasPath").unwrap_or_else(|| "/spec/replicas".into()),
            get("statusReplicasPath").unwrap_or_else(|| "/status/replicas".into()),
            get("labelSelectorPath"),
        );
    }
    ("/spec/replicas".into(), "/status/replicas".into(), None)
}

fn selector_string(obj: &Value, selector_ptr: Option<&str>) -> String {
    if let Some(p) = selector_ptr {
        return obj
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
    }
    let mut parts = Vec::new();
    if let Some(m) = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
    {
        for (k, v) in m {
            parts.push(format!("{k}={}", v.as_str().unwrap_or("")));
        }
    } else if let Some(m) = obj.pointer("/spec/selector").and_then(Value::as_object) {
        // ReplicationControllers use a plain map selector.
        for (k, v) in m {
            if let Some(v) = v.as_str() {
                parts.push(format!("{k}={v}"));
            }
        }
    }
    parts.join(",")
}

fn to_scale(req: &Req, obj: &Value) -> Value {
    let (spec_p, status_p, sel_p) = scale_paths(req);
    let meta = obj.get("metadata").cloned().unwrap_or(json!({}));
    let keep = [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ];
    let meta: serde_json::Map<String, Value> = meta
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| keep.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": meta,
        "spec": {"replicas": obj.pointer(&spec_p).and_then(Value::as_i64).unwrap_or(0)},
        "status": {
            "replicas": obj.pointer(&status_p).and_then(Value::as_i64).unwrap_or(0),
            "selector": selector_string(obj, sel_p.as_deref()),
        },
    })
}

async fn scale_write(api: &Api, req: Req, method: &Method) -> Result<Reply, ApiError> {
    let kind = req.kind.clone();
    let name = req.name.clone().unwrap_or_default();
    let (spec_p, _, _) = scale_paths(&req);
    for _ in 0..8 {
        let (cur, cur_rev) = get_obj(api, &kind, req.namespace.as_deref(), &name).await?;
        let scale = to_scale(&req, &cur);
        let new_scale = if method == Method::PATCH {
            let pt = PatchType::from_content_type(&req.content_type)
                .filter(|p| *p != PatchType::Apply)
                .ok_or_else(|| ApiError::unsupported_media_type(&req.content_type))?;
            write::apply_patch(
                &KindPath::new("autoscaling", "v1", "Scale"),
                pt,
                &scale,
                &req.body,
            )?
        } else {
            decode_body(&req.body, &req.content_type)?
        };
        let pinned = meta_str(&new_scale, "resourceVersion").map(String::from);
        if let Some(rv) = &pinned {
            if *rv != cur_rev.to_string() {
                return Err(ApiError::conflict(&kind.group, &kind.plural, &name));
            }
        }
        let Some(replicas) = new_scale.pointer("/spec/replicas").and_then(Value::as_i64) else {
            return Err(ApiError::invalid(
                "autoscaling",
                "Scale",
                &name,
                &[crate::apiserver::status::Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value".into(),
                    field: "spec.replicas".into(),
                }],
            ));
        };
        if replicas < 0 {
            return Err(ApiError::invalid(
                "autoscaling",
                "Scale",
                &name,
                &[crate::apiserver::status::Cause {
                    reason: "FieldValueInvalid".into(),
                    message: format!(
                        "Invalid value: {replicas}: must be greater than or equal to 0"
                    ),
                    field: "spec.replicas".into(),
                }],
            ));
        }
        let mut base = cur.clone();
        if let Some(m) = base.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        let mut new = base.clone();
        let (parent, field) = spec_p.rsplit_once('/').unwrap_or(("", "replicas"));
        match new.pointer_mut(parent) {
            Some(Value::Object(m)) => {
                m.insert(field.to_string(), json!(replicas));
            }
            _ => {
                return Err(ApiError::internal(format!(
                    "object has no {parent} to scale"
                )));
            }
        }
        let out = write::merge_update(&kind, None, &base, new);
        match write::commit_update(api, &req, &base, cur_rev, out, vec![], false).await {
            Ok(Reply::Json { body, .. }) => return Ok(Reply::ok(to_scale(&req, &body))),
            Ok(other) => return Ok(other),
            Err(e) if e.reason == "Conflict" => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::conflict(&kind.group, &kind.plural, &name))
}

fn success(code: u16) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code})
}

async fn binding(api: &Api, req: Req) -> Result<Reply, ApiError> {
    let name = req.name.clone().unwrap_or_default();
    let body = decode_body(&req.body, &req.content_type)?;
    let Some(node) = body
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    else {
        return Err(ApiError::invalid(
            "",
            "Binding",
            &name,
            &[crate::apiserver::status::Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value".into(),
                field: "target.name".into(),
            }],
        ));
    };
    for _ in 0..8 {
        let (cur, cur_rev) = get_obj(api, &req.kind, req.namespace.as_deref(), &name).await?;
        if cur
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|v| !v.is_null())
        {
            return Err(ApiError::conflict_msg(
                "",
                "pods/binding",
                &name,
                &format!("pod {name} is being deleted, cannot be assigned to a host"),
            ));
        }
        if let Some(bound) = cur
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            return Err(ApiError::conflict_msg(
                "",
                "pods/binding",
                &name,
                &format!("pod {name} is already assigned to node \"{bound}\""),
            ));
        }
        let mut new = cur.clone();
        if let Some(m) = new.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        let base = new.clone();
        new["spec"]["nodeName"] = json!(node);
        if !new.get("status").is_some_and(Value::is_object) {
            new["status"] = json!({});
        }
        let cond = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null,
            "lastTransitionTime": crate::apiserver::object::now_rfc3339()});
        match new["status"]
            .get_mut("conditions")
            .and_then(Value::as_array_mut)
        {
            Some(cs) => {
                cs.retain(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"));
                cs.push(cond);
            }
            None => new["status"]["conditions"] = json!([cond]),
        }
        match write::commit_update(api, &req, &base, cur_rev, new, vec![], false).await {
            Ok(_) => return Ok(Reply::code(201, success(201))),
            Err(e) if e.reason == "Conflict" => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::conflict("", "pods", &name))
}

/// `PUT namespaces/{name}/finalize`: only `spec.finalizers` is taken from the body (as
/// upstream); the namespace is removed once it is terminating and no finalizer is left.
async fn finalize(api: &Api, req: Req) -> Result<Reply, ApiError> {
    let name = req.name.clone().unwrap_or_default();
    let body = decode_body(&req.body, &req.content_type)?;
    let wanted = body
        .pointer("/spec/finalizers")
        .cloned()
        .unwrap_or(json!([]));
    if !wanted.is_array() && !wanted.is_null() {
        return Err(ApiError::bad_request("spec.finalizers must be a list"));
    }
    let pinned = meta_str(&body, "resourceVersion")
        .filter(|s| !s.is_empty())
        .map(String::from);
    for _ in 0..8 {
        let (mut cur, cur_rev) = get_obj(api, &req.kind, None, &name).await?;
        if pinned.as_ref().is_some_and(|rv| *rv != cur_rev.to_string()) {
            return Err(ApiError::conflict("", "namespaces", &name));
        }
        if let Some(m) = cur.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        let mut new = cur.clone();
        if !new.get("spec").is_some_and(Value::is_object) {
            new["spec"] = json!({});
        }
        new["spec"]["finalizers"] = if wanted.is_null() {
            json!([])
        } else {
            wanted.clone()
        };
        match write::commit_update(api, &req, &cur, cur_rev, new, vec![], false).await {
            Err(e) if e.reason == "Conflict" => continue,
            other => return other,
        }
    }
    Err(ApiError::conflict("", "namespaces", &name))
}

/// `POST serviceaccounts/{name}/token`: a signed, expiring ES256 token for the account.
async fn token(api: &Api, req: Req) -> Result<Reply, ApiError> {
    let name = req.name.clone().unwrap_or_default();
    let ns = req.namespace.clone().unwrap_or_default();
    let (sa, _) = get_obj(api, &req.kind, Some(&ns), &name).await?;
    let mut tr = if req.body.is_empty() {
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest"})
    } else {
        decode_body(&req.body, &req.content_type)?
    };
    if !tr.get("spec").is_some_and(Value::is_object) {
        tr["spec"] = json!({});
    }
    let ttl = tr
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(3600);
    if ttl < 600 {
        return Err(ApiError::invalid(
            "authentication.k8s.io",
            "TokenRequest",
            &name,
            &[crate::apiserver::status::Cause {
                reason: "FieldValueInvalid".into(),
                message: format!(
                    "Invalid value: {ttl}: may not specify a duration less than 10 minutes"
                ),
                field: "spec.expirationSeconds".into(),
            }],
        ));
    }
    let audiences: Vec<String> = tr
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let bound = tr.pointer("/spec/boundObjectRef").cloned();
    let field = |p: &str| {
        bound
            .as_ref()
            .and_then(|b| b.get(p))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (bk, bn, bu) = (field("kind"), field("name"), field("uid"));
    let sa_uid = sa
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("");
    let signer = api
        .tokens
        .as_ref()
        .ok_or_else(|| ApiError::internal("no service account signing key"))?;
    let subject = crate::apiserver::auth::TokenSubject {
        namespace: &ns,
        service_account: &name,
        service_account_uid: sa_uid,
        bound: bound
            .as_ref()
            .map(|_| (bk.as_str(), bn.as_str(), bu.as_str())),
    };
    let (token, exp) = signer
        .issue(&subject, &audiences, ttl)
        .map_err(ApiError::internal)?;
    let exp_ts = jiff::Timestamp::from_second(exp)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    tr["apiVersion"] = json!("authentication.k8s.io/v1");
    tr["kind"] = json!("TokenRequest");
    tr["metadata"] = json!({"name": name, "namespace": ns,
        "creationTimestamp": crate::apiserver::object::now_rfc3339()});
    tr["spec"]["expirationSeconds"] = json!(ttl);
    tr["spec"]["audiences"] = json!(if audiences.is_empty() {
        vec!["https://kubernetes.default.svc.cluster.local".to_string()]
    } else {
        audiences
    });
    tr["status"] = json!({"token": token, "expirationTimestamp": exp_ts});
    Ok(Reply::code(201, tr))
}
