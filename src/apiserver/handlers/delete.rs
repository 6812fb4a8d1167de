//! delete and deletecollection: preconditions, finalizers, graceful pod deletion, propagation.

use super::{Api, Reply, Req, delete_if, get_obj, put_if};
use crate::apiserver::admission;
use crate::apiserver::object::{decode_body, meta_mut, set_resource_version};
use crate::apiserver::status::ApiError;
use serde_json::{Value, json};

/// DeleteOptions from the body (if any) and the query.
struct Opts {
    grace: Option<i64>,
    propagation: Option<String>,
    uid: Option<String>,
    rv: Option<String>,
    dry_run: bool,
}

fn opts(req: &Req) -> Result<Opts, ApiError> {
    let body = if req.body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        decode_body(&req.body, &req.content_type)?
    };
    let q = &req.query;
    let dry_body = body
        .get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|x| x == "All"));
    Ok(Opts {
        grace: body
            .get("gracePeriodSeconds")
            .and_then(Value::as_i64)
            .or_else(|| q.get("gracePeriodSeconds").and_then(|g| g.parse().ok())),
        propagation: body
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .map(String::from)
            .or_else(|| q.get("propagationPolicy").map(String::from))
            .or_else(
                || match body.get("orphanDependents").and_then(Value::as_bool) {
                    Some(true) => Some("Orphan".into()),
                    _ => None,
                },
            ),
        uid: body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(String::from),
        rv: body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(String::from),
        dry_run: q.dry_run() || dry_body,
    })
}

async fn delete_one(api: &Api, req: &Req, name: &str, o: &Opts) -> Result<(u16, Value), ApiError> {
    let kind = &req.kind;
    let ns = req.namespace.as_deref();
    for _ in 0..8 {
        let (mut obj, rev) = get_obj(api, kind, ns, name).await?;
        if let Some(uid) = &o.uid {
            if obj.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid.as_str()) {
                return Err(ApiError::conflict_msg(
                    &kind.group,
                    &kind.plural,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        obj.pointer("/metadata/uid")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                    ),
                ));
            }
        }
        if let Some(want) = &o.rv {
            if *want != rev.to_string() {
                return Err(ApiError::conflict_msg(
                    &kind.group,
                    &kind.plural,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {rev}"
                    ),
                ));
            }
        }
        let mut finalizers: Vec<Value> = obj
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let extra = match o.propagation.as_deref() {
            Some("Foreground") => Some("foregroundDeletion"),
            Some("Orphan") => Some("orphan"),
            _ => None,
        };
        if let Some(f) = extra {
            if !finalizers.iter().any(|x| x == f) {
                finalizers.push(json!(f));
            }
        }
        let already = obj
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|v| !v.is_null());
        // Pods bound to a node are deleted by their kubelet after the grace period.
        let graceful_pod = kind.group.is_empty()
            && kind.plural == "pods"
            && obj
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty())
            && o.grace != Some(0)
            && !matches!(
                obj.pointer("/status/phase").and_then(Value::as_str),
                Some("Succeeded" | "Failed")
            );
        if is_namespace(kind) && has_spec_finalizers(&obj) {
            // Upstream: the namespace stays, Terminating, until its controller has emptied it
            // and removed `kubernetes` through `namespaces/{name}/finalize`.
            if already {
                return Ok((200, obj));
            }
            if let Some(m) = meta_mut(&mut obj) {
                m.remove("resourceVersion");
                m.insert(
                    "deletionTimestamp".into(),
                    json!(crate::apiserver::object::now_rfc3339()),
                );
                if finalizers.is_empty() {
                    m.remove("finalizers");
                } else {
                    m.insert("finalizers".into(), Value::Array(finalizers.clone()));
                }
            }
            if !obj.get("status").is_some_and(Value::is_object) {
                obj["status"] = json!({});
            }
            obj["status"]["phase"] = json!("Terminating");
            if o.dry_run {
                return Ok((200, obj));
            }
            match put_if(api, kind, &kind.key(ns, name), rev, &obj).await? {
                Some(new_rev) => {
                    set_resource_version(&mut obj, new_rev);
                    return Ok((200, obj));
                }
                None => continue,
            }
        }
        if !finalizers.is_empty() || graceful_pod {
            if already && !graceful_pod {
                return Ok((200, obj));
            }
            let grace = o.grace.unwrap_or_else(|| {
                obj.pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
                    .unwrap_or(if graceful_pod { 30 } else { 0 })
            });
            if let Some(m) = meta_mut(&mut obj) {
                m.remove("resourceVersion");
                if !already {
                    let ts = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(grace);
                    m.insert(
                        "deletionTimestamp".into(),
                        json!(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
                    );
                }
                m.insert("deletionGracePeriodSeconds".into(), json!(grace));
                m.insert("finalizers".into(), Value::Array(finalizers.clone()));
                if finalizers.is_empty() {
                    m.remove("finalizers");
                }
            }
            if o.dry_run {
                return Ok((200, obj));
            }
            let key = kind.key(ns, name);
            match put_if(api, kind, &key, rev, &obj).await? {
                Some(new_rev) => {
                    set_resource_version(&mut obj, new_rev);
                    let code = if extra == Some("foregroundDeletion") {
                        202
                    } else {
                        200
                    };
                    return Ok((code, obj));
                }
                None => continue,
            }
        }
        if o.dry_run {
            return Ok((200, obj));
        }
        let key = kind.key(ns, name);
        match delete_if(api, &key, rev).await? {
            Some(_) => {
                admission::after_delete(api, kind, ns, name).await;
                return Ok((200, obj));
            }
            None => continue,
        }
    }
    Err(ApiError::conflict(&kind.group, &kind.plural, name))
}

fn is_namespace(kind: &crate::apiserver::registry::ResourceKind) -> bool {
    kind.group.is_empty() && kind.plural == "namespaces"
}

/// Whether a namespace still has `spec.finalizers` (its controller's work is pending).
pub(crate) fn has_spec_finalizers(obj: &Value) -> bool {
    obj.pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

/// `DELETE …/{name}`.
pub async fn delete(api: &Api, req: Req) -> Result<Reply, ApiError> {
    let o = opts(&req)?;
    let name = req.name.clone().unwrap_or_default();
    let (code, obj) = delete_one(api, &req, &name, &o).await?;
    Ok(Reply::code(code, obj))
}

/// `DELETE …/{plural}` with selectors.
pub async fn delete_collection(api: &Api, req: Req) -> Result<Reply, ApiError> {
    let o = opts(&req)?;
    let filter = super::read::Filter::from_req(&req)?;
    let (items, rev) = super::list_all(api, &req.kind, req.namespace.as_deref(), 0).await?;
    let mut deleted = Vec::new();
    for item in items.into_iter().filter(|i| filter.matches(i)) {
        let Some(name) = item.pointer("/metadata/name").and_then(Value::as_str) else {
            continue;
        };
        let ns = item
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(String::from);
        let sub_req = Req {
            kind: req.kind.clone(),
            namespace: ns.or_else(|| req.namespace.clone()),
            name: Some(name.to_string()),
            sub: None,
            query: req.query.clone(),
            accept: req.accept.clone(),
            content_type: req.content_type.clone(),
            body: req.body.clone(),
            user_agent: req.user_agent.clone(),
            user: req.user.clone(),
        };
        match delete_one(api, &sub_req, name, &o).await {
            Ok((_, obj)) => deleted.push(obj),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Reply::ok(json!({
        "kind": format!("{}List", req.kind.kind),
        "apiVersion": req.kind.api_version(),
        "metadata": {"resourceVersion": rev.to_string()},
        "items": deleted,
    })))
}
