//! ResourceQuota controller: recomputes `status.hard` / `status.used` of every quota from the
//! objects stored in its namespace (the API server's admission charges creates in between;
//! this pass also gives back what deletions and failed creates released).
//!
//! Owns: `ResourceQuota.status`. May call: the API server. The arithmetic is [`crate::quota`].

use super::ControllersConfig;
use super::discovery;
use super::runtime::{Ctx, Error, run_controller};
use k8s_openapi::api::core::v1::{Pod, ResourceQuota, ResourceQuotaStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Quotas are recomputed this often even without pod events (services, config maps, …).
const RESYNC: Duration = Duration::from_secs(5);
/// How long a discovery result is reused.
const DISCOVERY_TTL: Duration = Duration::from_secs(30);

/// A decrease of `used` is applied only when a second count at least this much later agrees:
/// admission charges a create just before storing it, and a count taken in between must not
/// hand the charge back.
const CONFIRM: Duration = Duration::from_secs(1);

/// Per quota (`ns/name`): since when a lower count has been seen, and that count.
type Pending = HashMap<String, (Instant, BTreeMap<String, Quantity>)>;

/// Controller state: a discovery cache (custom resources may appear at any time) and the
/// decreases waiting for confirmation, per quota.
pub struct State {
    discovered: Mutex<Option<(Instant, Vec<discovery::Resource>)>>,
    pending: Mutex<Pending>,
}

fn amount(q: Option<&Quantity>) -> f64 {
    q.and_then(|q| crate::quantity::parse_quantity(&q.0))
        .unwrap_or(0.0)
}

/// What to write now: `counted`, except that decreases below `current` wait for a confirming
/// count `CONFIRM` later (`None` in the second slot: nothing waits).
fn settle(
    key: &str,
    counted: BTreeMap<String, Quantity>,
    current: Option<&BTreeMap<String, Quantity>>,
    pending: &mut Pending,
    now: Instant,
) -> (BTreeMap<String, Quantity>, bool) {
    let lowered = counted
        .iter()
        .any(|(k, v)| amount(Some(v)) < amount(current.and_then(|c| c.get(k))));
    if !lowered {
        pending.remove(key);
        return (counted, false);
    }
    if let Some((since, seen)) = pending.get(key) {
        if *seen == counted && now.duration_since(*since) >= CONFIRM {
            pending.remove(key);
            return (counted, false);
        }
        if *seen == counted {
            return (hold(&counted, current), true);
        }
    }
    pending.insert(key.to_string(), (now, counted.clone()));
    (hold(&counted, current), true)
}

fn hold(
    counted: &BTreeMap<String, Quantity>,
    current: Option<&BTreeMap<String, Quantity>>,
) -> BTreeMap<String, Quantity> {
    counted
        .iter()
        .map(|(k, v)| match current.and_then(|c| c.get(k)) {
            Some(cur) if amount(Some(cur)) > amount(Some(v)) => (k.clone(), cur.clone()),
            _ => (k.clone(), v.clone()),
        })
        .collect()
}

type C = Ctx<State>;

async fn resources(ctx: &C) -> Result<Vec<discovery::Resource>, Error> {
    {
        let cache = ctx
            .data
            .discovered
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some((at, all)) = cache.as_ref() {
            if at.elapsed() < DISCOVERY_TTL {
                return Ok(all.clone());
            }
        }
    }
    let all = discovery::resources(&ctx.client).await?;
    *ctx.data
        .discovered
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), all.clone()));
    Ok(all)
}

/// What the namespace uses of each resource in `hard`.
async fn used(
    ctx: &C,
    ns: &str,
    hard: &BTreeMap<String, Quantity>,
) -> Result<BTreeMap<String, Quantity>, Error> {
    let mut sources: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for r in hard.keys() {
        if let Some(src) = crate::quota::source_of(r) {
            sources.entry(src).or_default().push(r.clone());
        }
    }
    let all = if sources.is_empty() {
        vec![]
    } else {
        resources(ctx).await?
    };
    let mut out = BTreeMap::new();
    for ((group, plural), names) in sources {
        let mut sums: BTreeMap<String, f64> = names.iter().map(|n| (n.clone(), 0.0)).collect();
        if let Some(res) = all
            .iter()
            .find(|r| r.namespaced && r.ar.group == group && r.ar.plural == plural)
        {
            let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &res.ar);
            for o in api.list(&ListParams::default()).await?.items {
                let v = serde_json::to_value(&o)?;
                let u = crate::quota::usage(&group, &plural, &v);
                for (k, sum) in sums.iter_mut() {
                    *sum += u.get(k).copied().unwrap_or(0.0);
                }
            }
        }
        for (k, v) in sums {
            out.insert(k.clone(), Quantity(crate::quota::format(&k, v)));
        }
    }
    Ok(out)
}

async fn reconcile(q: Arc<ResourceQuota>, ctx: Arc<C>) -> Result<Action, Error> {
    if q.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = q.namespace().unwrap_or_default();
    let hard = q
        .spec
        .as_ref()
        .and_then(|s| s.hard.clone())
        .unwrap_or_default();
    let counted = used(&ctx, &ns, &hard).await?;
    let (used, waiting) = {
        let mut pending = ctx.data.pending.lock().unwrap_or_else(|p| p.into_inner());
        settle(
            &format!("{ns}/{}", q.name_any()),
            counted,
            q.status.as_ref().and_then(|s| s.used.as_ref()),
            &mut pending,
            Instant::now(),
        )
    };
    let status = ResourceQuotaStatus {
        used: Some(used),
        hard: Some(hard),
    };
    if q.status.as_ref() != Some(&status) {
        let mut next = (*q).clone();
        next.status = Some(status);
        // Compare-and-swap on the cached resourceVersion: a charge by admission in between
        // makes this fail and the runtime retries with a fresh copy and a fresh count.
        Api::<ResourceQuota>::namespaced(ctx.client.clone(), &ns)
            .replace_status(&q.name_any(), &PostParams::default(), &next)
            .await?;
    }
    Ok(Action::requeue(if waiting { CONFIRM } else { RESYNC }))
}

/// Run the resource quota controller until `shutdown`.
pub async fn run(client: Client, _config: ControllersConfig, shutdown: CancellationToken) {
    let controller = Controller::new(
        Api::<ResourceQuota>::all(client.clone()),
        watcher::Config::default(),
    );
    let quotas = controller.store();
    // Pods come and go most; other kinds are picked up by the periodic resync.
    let controller = controller.watches(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default(),
        move |pod: Pod| {
            let ns = pod.namespace();
            quotas
                .state()
                .into_iter()
                .filter(|q| q.namespace() == ns)
                .map(|q| ObjectRef::from_obj(q.as_ref()))
                .collect::<Vec<_>>()
        },
    );
    let ctx = Ctx::new(
        client,
        "resourcequota-controller",
        State {
            discovered: Mutex::new(None),
            pending: Mutex::new(HashMap::new()),
        },
    );
    run_controller(controller, reconcile, ctx, shutdown).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
            .collect()
    }

    #[test]
    fn increases_apply_at_once_and_decreases_only_after_a_confirming_count() {
        let mut pending = HashMap::new();
        let t0 = Instant::now();
        let cur = list(&[("pods", "2")]);
        let (w, waiting) = settle("q", list(&[("pods", "3")]), Some(&cur), &mut pending, t0);
        assert_eq!(w, list(&[("pods", "3")]));
        assert!(!waiting);
        // A count taken between a charge and the object's storage: held back.
        let (w, waiting) = settle("q", list(&[("pods", "1")]), Some(&cur), &mut pending, t0);
        assert_eq!(w, list(&[("pods", "2")]));
        assert!(waiting);
        let soon = t0 + Duration::from_millis(300);
        let (w, _) = settle("q", list(&[("pods", "1")]), Some(&cur), &mut pending, soon);
        assert_eq!(w, list(&[("pods", "2")]));
        let later = t0 + CONFIRM;
        let (w, waiting) = settle("q", list(&[("pods", "1")]), Some(&cur), &mut pending, later);
        assert_eq!(w, list(&[("pods", "1")]));
        assert!(!waiting);
    }
}
