//! `POST pods/{name}/eviction`: a pod delete that honours PodDisruptionBudgets like upstream.
//!
//! A matching budget with `disruptionsAllowed > 0` is charged first (decrement, record the pod
//! in `disruptedPods`) with a compare-and-swap on the budget, so two concurrent evictions can
//! never both spend the last allowed disruption; then the pod is deleted. No budget left: 429.
//! More than one matching budget: 500 (upstream does not support it either).

use super::{Api, Reply, Req, get_obj, list_all, put_if};
use crate::apiserver::object::{decode_body, now_rfc3339};
use crate::apiserver::status::ApiError;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde_json::{Value, json};

/// Upstream's 429 message.
pub const VIOLATION: &str = "Cannot evict pod as it would violate the pod's disruption budget.";
/// Upstream caps the disrupted-pods map of a budget.
const MAX_DISRUPTED: usize = 2000;

fn success(code: u16) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code})
}

fn too_many(pdb: &str, desired: i32, current: i32, why: Option<String>) -> ApiError {
    let mut e = ApiError::new(429, "TooManyRequests", VIOLATION);
    e.details = Some(json!({"causes": [{
        "reason": "DisruptionBudget",
        "message": why.unwrap_or_else(|| format!(
            "The disruption budget {pdb} needs {desired} healthy pods and has {current} currently"
        )),
    }]}));
    e
}

fn is_true(v: Option<&Value>) -> bool {
    v.is_some_and(|v| !v.is_null())
}

fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

/// Pods that cannot count as healthy anyway are evicted without consulting budgets.
fn ignores_budgets(pod: &Value) -> bool {
    is_true(pod.pointer("/metadata/deletionTimestamp"))
        || matches!(
            pod.pointer("/status/phase").and_then(Value::as_str),
            Some("Succeeded" | "Failed" | "Pending")
        )
}

/// The budgets whose selector matches the pod. A nil or empty selector matches nothing here
/// (upstream's eviction rule, stricter than the controller's).
fn matching(pdbs: Vec<Value>, pod: &Value) -> Vec<(Value, PodDisruptionBudget)> {
    let labels = pod
        .pointer("/metadata/labels")
        .cloned()
        .and_then(|l| serde_json::from_value(l).ok());
    pdbs.into_iter()
        .filter_map(|raw| {
            let typed: PodDisruptionBudget = serde_json::from_value(raw.clone()).ok()?;
            let sel = typed.spec.as_ref()?.selector.as_ref()?;
            if crate::controllers::labels::is_empty(sel)
                || !crate::controllers::labels::matches(Some(sel), labels.as_ref())
            {
                return None;
            }
            Some((raw, typed))
        })
        .collect()
}

/// Charge one disruption of `pod` to the budget. `Ok(false)`: lost a race, re-read and retry.
async fn charge(api: &Api, ns: &str, pod: &str, raw: Value) -> Result<bool, ApiError> {
    let Some(kind) = api.registry.find("policy", "v1", "poddisruptionbudgets") else {
        return Ok(true);
    };
    let name = raw
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let (mut cur, rev) = get_obj(api, &kind, Some(ns), &name).await?;
    let typed: PodDisruptionBudget = serde_json::from_value(cur.clone())
        .map_err(|e| ApiError::internal(format!("stored budget {name} is malformed: {e}")))?;
    let status = typed.status.clone().unwrap_or_default();
    let generation = typed.metadata.generation.unwrap_or(0);
    if status.observed_generation.unwrap_or(0) < generation {
        return Err(too_many(
            &name,
            0,
            0,
            Some(format!(
                "The disruption budget {name} is still being processed by the server."
            )),
        ));
    }
    if status.disruptions_allowed < 0 {
        return Err(ApiError::forbidden("pdb disruptions allowed is negative"));
    }
    let disrupted = status.disrupted_pods.clone().unwrap_or_default();
    if disrupted.len() > MAX_DISRUPTED {
        return Err(ApiError::forbidden(
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        ));
    }
    if status.disruptions_allowed == 0 {
        return Err(too_many(
            &name,
            status.desired_healthy,
            status.current_healthy,
            None,
        ));
    }
    if let Some(m) = cur.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    if !cur.get("status").is_some_and(Value::is_object) {
        cur["status"] = json!({});
    }
    cur["status"]["disruptionsAllowed"] = json!(status.disruptions_allowed - 1);
    if !cur["status"]
        .get("disruptedPods")
        .is_some_and(Value::is_object)
    {
        cur["status"]["disruptedPods"] = json!({});
    }
    cur["status"]["disruptedPods"][pod] = json!(now_rfc3339());
    let key = kind.key(Some(ns), &name);
    match put_if(api, &kind, &key, rev, &cur).await? {
        Some(_) => Ok(true),
        None => Ok(false),
    }
}

/// Upstream marks an evicted pod with `DisruptionTarget=True` (`EvictionByEvictionAPI`) before
/// deleting it, so its controller and kubelet know why it goes.
async fn mark_disruption_target(
    api: &Api,
    req: &Req,
    ns: &str,
    name: &str,
) -> Result<(), ApiError> {
    for _ in 0..8 {
        let (mut pod, rev) = get_obj(api, &req.kind, Some(ns), name).await?;
        if let Some(m) = pod.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        if !pod.get("status").is_some_and(Value::is_object) {
            pod["status"] = json!({});
        }
        let cond = json!({"type": "DisruptionTarget", "status": "True",
            "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting",
            "lastProbeTime": null, "lastTransitionTime": now_rfc3339()});
        match pod["status"]
            .get_mut("conditions")
            .and_then(Value::as_array_mut)
        {
            Some(cs) => {
                cs.retain(|c| c.get("type").and_then(Value::as_str) != Some("DisruptionTarget"));
                cs.push(cond);
            }
            None => pod["status"]["conditions"] = json!([cond]),
        }
        if put_if(api, &req.kind, &req.kind.key(Some(ns), name), rev, &pod)
            .await?
            .is_some()
        {
            return Ok(());
        }
    }
    Err(ApiError::conflict("", "pods", name))
}

/// Handle an eviction.
pub async fn evict(api: &Api, req: Req) -> Result<Reply, ApiError> {
    let body = if req.body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        decode_body(&req.body, &req.content_type)?
    };
    let name = req.name.clone().unwrap_or_default();
    let ns = req.namespace.clone().unwrap_or_default();
    let opts = body.get("deleteOptions").cloned().unwrap_or(json!({}));
    let dry_run = req.query.dry_run()
        || opts
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|x| x == "All"));
    for _ in 0..8 {
        let (pod, _) = get_obj(api, &req.kind, Some(&ns), &name).await?;
        if !ignores_budgets(&pod) {
            if let Some(kind) = api.registry.find("policy", "v1", "poddisruptionbudgets") {
                let (pdbs, _) = list_all(api, &kind, Some(&ns), 0).await?;
                let mut found = matching(pdbs, &pod);
                if found.len() > 1 {
                    return Err(ApiError::internal(
                        "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                    ));
                }
                if let Some((raw, typed)) = found.pop() {
                    let status = typed.status.unwrap_or_default();
                    // An unready pod does not lower the healthy count: with the budget met
                    // (IfHealthyBudget, the default) or under AlwaysAllow it goes uncharged.
                    let always = typed
                        .spec
                        .as_ref()
                        .and_then(|s| s.unhealthy_pod_eviction_policy.as_deref())
                        == Some("AlwaysAllow");
                    let free = !pod_ready(&pod)
                        && (always
                            || (status.current_healthy >= status.desired_healthy
                                && status.desired_healthy > 0));
                    if !free {
                        if dry_run {
                            if status.disruptions_allowed <= 0 {
                                return Err(too_many(
                                    typed.metadata.name.as_deref().unwrap_or(""),
                                    status.desired_healthy,
                                    status.current_healthy,
                                    None,
                                ));
                            }
                        } else if !charge(api, &ns, &name, raw).await? {
                            continue;
                        }
                    }
                }
            }
        }
        if !dry_run && !is_true(pod.pointer("/metadata/deletionTimestamp")) {
            mark_disruption_target(api, &req, &ns, &name).await?;
        }
        let del = Req {
            kind: req.kind.clone(),
            namespace: req.namespace.clone(),
            name: req.name.clone(),
            sub: None,
            query: req.query.clone(),
            accept: req.accept.clone(),
            content_type: "application/json".into(),
            body: bytes::Bytes::from(opts.to_string()),
            user_agent: req.user_agent.clone(),
            user: req.user.clone(),
        };
        super::delete::delete(api, del).await?;
        return Ok(Reply::code(201, success(201)));
    }
    Err(ApiError::conflict("policy", "poddisruptionbudgets", &name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_budgets_with_a_matching_non_empty_selector_apply() {
        let pod = json!({"metadata": {"labels": {"app": "web"}}, "status": {"phase": "Running"}});
        let pdb = |sel: Value| json!({"metadata": {"name": "b"}, "spec": {"selector": sel}});
        let got = matching(
            vec![
                pdb(json!({"matchLabels": {"app": "web"}})),
                pdb(json!({"matchLabels": {"app": "db"}})),
                pdb(json!({})),
            ],
            &pod,
        );
        assert_eq!(got.len(), 1);
        assert!(!ignores_budgets(&pod));
        assert!(ignores_budgets(
            &json!({"status": {"phase": "Pending"}, "metadata": {}})
        ));
    }

    #[test]
    fn the_violation_error_names_the_budget_in_a_disruption_budget_cause() {
        let e = too_many("web", 2, 2, None);
        assert_eq!(e.code, 429);
        let s = e.to_status();
        assert_eq!(s["message"], VIOLATION);
        assert_eq!(s["details"]["causes"][0]["reason"], "DisruptionBudget");
        assert_eq!(
            s["details"]["causes"][0]["message"],
            "The disruption budget web needs 2 healthy pods and has 2 currently"
        );
    }
}
