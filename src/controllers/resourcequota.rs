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
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Quotas are recomputed this often even without pod events (services, config maps, …).
const RESYNC: Duration = Duration::from_secs(5);
/// How long a discovery result is reused.
const DISCOVERY_TTL: Duration = Duration::from_secs(30);

/// Controller state: a discovery cache (custom resources may appear at any time).
pub struct State {
    discovered: Mutex<Option<(Instant, Vec<discovery::Resource>)>>,
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
    let status = ResourceQuotaStatus {
        used: Some(used(&ctx, &ns, &hard).await?),
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
    Ok(Action::requeue(RESYNC))
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
        },
    );
    run_controller(controller, reconcile, ctx, shutdown).await;
}
