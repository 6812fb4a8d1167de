//! PodDisruptionBudget controller: counts the healthy pods a budget selects, works out how many
//! must stay (`minAvailable` / `maxUnavailable`, integers or percentages of the owning
//! controllers' scale) and publishes `disruptionsAllowed` for the eviction subresource.
//!
//! Owns: `PodDisruptionBudget.status`, including the expiry of `disruptedPods` entries the
//! eviction subresource records. May call: the API server (pods, scale subresources, budgets).

use super::ControllersConfig;
use super::discovery;
use super::labels;
use super::pods::{controller_of, is_ready};
use super::runtime::{Ctx, Error, describe, run_controller};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// An eviction not followed by the pod's deletion within this long is forgotten (upstream's
/// `DeletionTimeout`).
const DELETION_TIMEOUT: jiff::SignedDuration = jiff::SignedDuration::from_secs(120);
/// Safety net: budgets are recomputed this often even without pod events (scale changes).
const RESYNC: Duration = Duration::from_secs(30);

/// `value` (int or `"N%"`) of `total`, percentages rounded up, as upstream's
/// `GetScaledValueFromIntOrPercent(…, roundUp=true)`.
pub fn scaled(value: &IntOrString, total: i32) -> Result<i32, String> {
    match value {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            let v = (pct * i64::from(total) + 99).div_euclid(100);
            Ok(i32::try_from(v).unwrap_or(i32::MAX))
        }
    }
}

/// What a budget needs, given the selected pods and (when asked for) the controllers' scale.
#[derive(Debug, PartialEq)]
pub struct Need {
    /// `expectedPods`.
    pub expected: i32,
    /// `desiredHealthy`.
    pub desired: i32,
}

/// Whether the budget's arithmetic is relative to the owning controllers' scale.
fn needs_scale(b: &PodDisruptionBudget) -> bool {
    let spec = b.spec.as_ref();
    spec.and_then(|s| s.max_unavailable.as_ref()).is_some()
        || matches!(
            spec.and_then(|s| s.min_available.as_ref()),
            Some(IntOrString::String(_))
        )
}

/// Upstream's `getExpectedPodCount`: `scale` is the summed scale of the pods' controllers.
pub fn need(b: &PodDisruptionBudget, pods: i32, scale: i32) -> Result<Need, String> {
    let spec = b.spec.clone().unwrap_or_default();
    if let Some(mu) = &spec.max_unavailable {
        let mu = scaled(mu, scale)?;
        return Ok(Need {
            expected: scale,
            desired: (scale - mu).max(0),
        });
    }
    match &spec.min_available {
        Some(IntOrString::Int(n)) => Ok(Need {
            expected: pods,
            desired: *n,
        }),
        Some(pct @ IntOrString::String(_)) => Ok(Need {
            expected: scale,
            desired: scaled(pct, scale)?,
        }),
        None => Ok(Need {
            expected: 0,
            desired: 0,
        }),
    }
}

/// The replicas of the controller of `pod` (a Deployment for ReplicaSets it owns), once per
/// controller uid.
async fn controller_scale(
    client: &Client,
    all: &mut Option<Vec<discovery::Resource>>,
    seen: &mut HashSet<String>,
    pod: &Pod,
) -> Result<i32, Error> {
    let ns = pod.namespace().unwrap_or_default();
    let Some(owner) = controller_of(&pod.metadata) else {
        return Err(Error::Invalid {
            object: describe(pod),
            reason: format!("found no controllers for pod {:?}", pod.name_any()),
        });
    };
    let (mut api_version, mut kind, mut name, mut uid) = (
        owner.api_version.clone(),
        owner.kind.clone(),
        owner.name.clone(),
        owner.uid.clone(),
    );
    if kind == "ReplicaSet" && api_version.starts_with("apps/") {
        let rs = Api::<ReplicaSet>::namespaced(client.clone(), &ns)
            .get_opt(&name)
            .await?;
        if let Some(dep) = rs
            .as_ref()
            .filter(|rs| rs.metadata.uid.as_deref() == Some(uid.as_str()))
            .and_then(|rs| controller_of(&rs.metadata))
            .filter(|o| o.kind == "Deployment")
        {
            (api_version, kind, name, uid) = (
                dep.api_version.clone(),
                dep.kind.clone(),
                dep.name.clone(),
                dep.uid.clone(),
            );
        }
    }
    if !seen.insert(uid) {
        return Ok(0);
    }
    if all.is_none() {
        *all = Some(discovery::resources(client).await?);
    }
    let res = all
        .as_deref()
        .and_then(|a| discovery::find(a, &api_version, &kind))
        .ok_or_else(|| Error::Invalid {
            object: describe(pod),
            reason: format!("found no controllers for pod {:?}", pod.name_any()),
        })?;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &res.ar);
    let scale = api.get_scale(&name).await?;
    Ok(scale.spec.and_then(|s| s.replicas).unwrap_or(0))
}

fn condition(allowed: i32, generation: Option<i64>, fail: Option<String>) -> Condition {
    let (status, reason) = match (&fail, allowed > 0) {
        (Some(_), _) => ("False", "SyncFailed"),
        (None, true) => ("True", "SufficientPods"),
        (None, false) => ("False", "InsufficientPods"),
    };
    Condition {
        type_: "DisruptionAllowed".into(),
        status: status.into(),
        reason: reason.into(),
        message: fail.unwrap_or_default(),
        observed_generation: generation,
        last_transition_time: Time(jiff::Timestamp::now()),
    }
}

/// Whether two statuses differ in anything but condition transition times.
fn differs(a: &PodDisruptionBudgetStatus, b: &PodDisruptionBudgetStatus) -> bool {
    let strip = |s: &PodDisruptionBudgetStatus| {
        let mut s = s.clone();
        for c in s.conditions.iter_mut().flatten() {
            c.last_transition_time = Time(jiff::Timestamp::UNIX_EPOCH);
        }
        s
    };
    strip(a) != strip(b)
}

async fn write_status(
    ctx: &Ctx<ControllersConfig>,
    b: &PodDisruptionBudget,
    mut status: PodDisruptionBudgetStatus,
) -> Result<(), Error> {
    let old = b.status.clone().unwrap_or_default();
    // Keep the transition time of an unchanged condition.
    if let (Some(new), Some(prev)) = (
        status.conditions.as_mut().and_then(|c| c.first_mut()),
        old.conditions.as_ref().and_then(|c| c.first()),
    ) {
        if new.status == prev.status {
            new.last_transition_time = prev.last_transition_time.clone();
        }
    }
    if !differs(&old, &status) {
        return Ok(());
    }
    let mut next = b.clone();
    next.status = Some(status);
    // The cached resourceVersion makes this a compare-and-swap against concurrent evictions;
    // a conflict is retried with a fresh copy by the runtime's backoff.
    Api::<PodDisruptionBudget>::namespaced(ctx.client.clone(), &b.namespace().unwrap_or_default())
        .replace_status(&b.name_any(), &PostParams::default(), &next)
        .await?;
    Ok(())
}

async fn reconcile(
    b: Arc<PodDisruptionBudget>,
    ctx: Arc<Ctx<ControllersConfig>>,
) -> Result<Action, Error> {
    if b.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = b.namespace().unwrap_or_default();
    let selector = b.spec.as_ref().and_then(|s| s.selector.as_ref());
    let pods: Vec<Pod> = Api::<Pod>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|p| labels::matches(selector, p.metadata.labels.as_ref()))
        .collect();
    let generation = b.metadata.generation;
    let old = b.status.clone().unwrap_or_default();
    let mut scale = 0;
    if needs_scale(&b) {
        let (mut all, mut seen) = (None, HashSet::new());
        for p in &pods {
            match controller_scale(&ctx.client, &mut all, &mut seen, p).await {
                Ok(n) => scale += n,
                Err(Error::Invalid { reason, .. }) => {
                    // Upstream fails safe: nothing may be disrupted while the count is unknown.
                    let mut s = old.clone();
                    s.disruptions_allowed = 0;
                    s.conditions = Some(vec![condition(0, s.observed_generation, Some(reason))]);
                    write_status(&ctx, &b, s).await?;
                    return Ok(Action::requeue(RESYNC));
                }
                Err(e) => return Err(e),
            }
        }
    }
    let pod_count = i32::try_from(pods.len()).unwrap_or(i32::MAX);
    let need = need(&b, pod_count, scale).map_err(|reason| Error::Invalid {
        object: describe(b.as_ref()),
        reason,
    })?;
    // Evictions recorded by the API server stay counted as disrupted until the pod is being
    // deleted (it then no longer counts as healthy anyway) or the record times out.
    let now = jiff::Timestamp::now();
    let mut disrupted = BTreeMap::new();
    let mut next_expiry: Option<jiff::Timestamp> = None;
    for p in &pods {
        if p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = p.name_any();
        if let Some(t) = old.disrupted_pods.as_ref().and_then(|d| d.get(&name)) {
            let expires = t.0 + DELETION_TIMEOUT;
            if expires > now {
                disrupted.insert(name, t.clone());
                next_expiry = Some(next_expiry.map_or(expires, |e| e.min(expires)));
            }
        }
    }
    let healthy = pods
        .iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && !disrupted.contains_key(&p.name_any())
                && is_ready(p)
        })
        .count();
    let healthy = i32::try_from(healthy).unwrap_or(i32::MAX);
    let allowed = if need.expected <= 0 {
        0
    } else {
        (healthy - need.desired).max(0)
    };
    let status = PodDisruptionBudgetStatus {
        conditions: Some(vec![condition(allowed, generation, None)]),
        current_healthy: healthy,
        desired_healthy: need.desired,
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        disruptions_allowed: allowed,
        expected_pods: need.expected,
        observed_generation: generation,
    };
    write_status(&ctx, &b, status).await?;
    let wait = next_expiry
        .and_then(|e| Duration::try_from(e.duration_since(now)).ok())
        .map_or(RESYNC, |d| d.min(RESYNC) + Duration::from_millis(100));
    Ok(Action::requeue(wait))
}

/// Run the disruption controller until `shutdown`.
pub async fn run(client: Client, config: ControllersConfig, shutdown: CancellationToken) {
    let controller = Controller::new(
        Api::<PodDisruptionBudget>::all(client.clone()),
        watcher::Config::default(),
    );
    let budgets = controller.store();
    let controller = controller.watches(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default(),
        move |pod: Pod| {
            let ns = pod.namespace();
            budgets
                .state()
                .into_iter()
                .filter(|b| b.namespace() == ns)
                .filter(|b| {
                    let sel = b.spec.as_ref().and_then(|s| s.selector.as_ref());
                    labels::matches(sel, pod.metadata.labels.as_ref())
                })
                .map(|b| ObjectRef::from_obj(b.as_ref()))
                .collect::<Vec<_>>()
        },
    );
    let ctx = Ctx::new(client, "disruption-controller", config);
    run_controller(controller, reconcile, ctx, shutdown).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn budget(spec: serde_json::Value) -> PodDisruptionBudget {
        serde_json::from_value(json!({"metadata": {"name": "b"}, "spec": spec})).unwrap()
    }

    #[test]
    fn percentages_round_up_like_upstream() {
        assert_eq!(scaled(&IntOrString::String("50%".into()), 3), Ok(2));
        assert_eq!(scaled(&IntOrString::String("34%".into()), 3), Ok(2));
        assert_eq!(scaled(&IntOrString::String("0%".into()), 3), Ok(0));
        assert_eq!(scaled(&IntOrString::Int(4), 3), Ok(4));
        assert!(scaled(&IntOrString::String("x".into()), 3).is_err());
    }

    #[test]
    fn min_available_counts_pods_and_max_unavailable_counts_the_scale() {
        let b = budget(json!({"minAvailable": 2}));
        assert!(!needs_scale(&b));
        assert_eq!(
            need(&b, 3, 0),
            Ok(Need {
                expected: 3,
                desired: 2
            })
        );
        let b = budget(json!({"minAvailable": "50%"}));
        assert!(needs_scale(&b));
        assert_eq!(
            need(&b, 2, 5),
            Ok(Need {
                expected: 5,
                desired: 3
            })
        );
        let b = budget(json!({"maxUnavailable": "25%"}));
        assert_eq!(
            need(&b, 4, 4),
            Ok(Need {
                expected: 4,
                desired: 3
            })
        );
        let b = budget(json!({"maxUnavailable": 5}));
        assert_eq!(
            need(&b, 4, 4),
            Ok(Need {
                expected: 4,
                desired: 0
            })
        );
    }

    #[test]
    fn the_condition_reason_follows_the_allowed_disruptions() {
        assert_eq!(condition(1, Some(1), None).reason, "SufficientPods");
        assert_eq!(condition(0, Some(1), None).status, "False");
        assert_eq!(condition(0, Some(1), None).reason, "InsufficientPods");
        assert_eq!(condition(3, None, Some("x".into())).reason, "SyncFailed");
    }
}
