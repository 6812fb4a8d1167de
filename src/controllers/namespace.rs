//! Namespace controller: a namespace being deleted (phase `Terminating`) is emptied of every
//! namespaced resource, custom resources included (found through discovery), and then its
//! `kubernetes` finalizer is removed through `namespaces/{name}/finalize`.
//!
//! Owns: namespace teardown. May call: the API server.

use super::ControllersConfig;
use super::discovery;
use super::runtime::{Ctx, Error, run_controller};
use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const FINALIZER: &str = "kubernetes";

/// What one cleanup pass found still present.
#[derive(Default)]
struct Remaining {
    /// `pods.` → instances (upstream names resources `<plural>.<group>`).
    content: BTreeMap<String, usize>,
    /// finalizer → instances carrying it.
    finalizers: BTreeMap<String, usize>,
    /// Resources whose listing or deletion failed.
    failures: Vec<String>,
}

/// The five deletion conditions upstream reports, from one pass's findings.
fn conditions(discovery_error: Option<&str>, r: &Remaining) -> Vec<NamespaceCondition> {
    let cond = |type_: &str, bad: bool, reason: &str, message: String| NamespaceCondition {
        type_: type_.to_string(),
        status: if bad { "True" } else { "False" }.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message),
        last_transition_time: None,
    };
    let list = |m: &BTreeMap<String, usize>, how: &str| {
        m.iter()
            .map(|(k, n)| format!("{k} {how} {n} resource instances"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        match discovery_error {
            Some(e) => cond(
                "NamespaceDeletionDiscoveryFailure",
                true,
                "DiscoveryFailed",
                format!("Discovery failed for some groups: {e}"),
            ),
            None => cond(
                "NamespaceDeletionDiscoveryFailure",
                false,
                "ResourcesDiscovered",
                "All resources successfully discovered".into(),
            ),
        },
        cond(
            "NamespaceDeletionGroupVersionParsingFailure",
            false,
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed".into(),
        ),
        if r.failures.is_empty() {
            cond(
                "NamespaceDeletionContentFailure",
                false,
                "ContentDeleted",
                "All content successfully deleted, may be waiting on finalization".into(),
            )
        } else {
            cond(
                "NamespaceDeletionContentFailure",
                true,
                "ContentDeletionFailed",
                format!(
                    "Failed to delete all resource types, {} remaining: {}",
                    r.failures.len(),
                    r.failures.join(", ")
                ),
            )
        },
        if r.content.is_empty() {
            cond(
                "NamespaceContentRemaining",
                false,
                "ContentRemoved",
                "All content successfully removed".into(),
            )
        } else {
            cond(
                "NamespaceContentRemaining",
                true,
                "SomeResourcesRemain",
                format!("Some resources are remaining: {}", list(&r.content, "has")),
            )
        },
        if r.finalizers.is_empty() {
            cond(
                "NamespaceFinalizersRemaining",
                false,
                "ContentHasNoFinalizers",
                "All content-preserving finalizers have been removed".into(),
            )
        } else {
            cond(
                "NamespaceFinalizersRemaining",
                true,
                "SomeFinalizersRemain",
                format!(
                    "Some content in the namespace has finalizers remaining: {}",
                    list(&r.finalizers, "in")
                ),
            )
        },
    ]
}

/// Write the conditions when they changed (transition times kept for unchanged statuses).
async fn set_conditions(
    api: &Api<Namespace>,
    ns: &Namespace,
    mut want: Vec<NamespaceCondition>,
) -> Result<(), Error> {
    let old = ns
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let now = Time(jiff::Timestamp::now());
    let mut changed = old.len() != want.len();
    for c in &mut want {
        match old.iter().find(|o| o.type_ == c.type_) {
            Some(o) if o.status == c.status => {
                c.last_transition_time = o.last_transition_time.clone();
                changed |= o.reason != c.reason || o.message != c.message;
            }
            _ => {
                c.last_transition_time = Some(now.clone());
                changed = true;
            }
        }
    }
    if !changed {
        return Ok(());
    }
    let mut next = ns.clone();
    let status = next.status.get_or_insert_with(Default::default);
    status.conditions = Some(want);
    match api
        .replace_status(&ns.name_any(), &PostParams::default(), &next)
        .await
    {
        Ok(_) => Ok(()),
        // A stale copy or a namespace already gone: the next pass decides again.
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Delete everything in `name`; report what is still there.
async fn empty(client: &Client, name: &str, all: &[discovery::Resource]) -> Remaining {
    let mut r = Remaining::default();
    for res in all.iter().filter(|r| r.namespaced) {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), name, &res.ar);
        let label = format!("{}.{}", res.ar.plural, res.ar.group);
        let items = match api.list(&ListParams::default()).await {
            Ok(l) => l.items,
            Err(e) => {
                tracing::debug!(error = %e, kind = %res.ar.kind, "namespace cleanup cannot list");
                r.failures.push(label);
                continue;
            }
        };
        let mut failed = false;
        for o in &items {
            for f in o.metadata.finalizers.iter().flatten() {
                *r.finalizers.entry(f.clone()).or_default() += 1;
            }
            if o.metadata.deletion_timestamp.is_some() {
                continue;
            }
            match api.delete(&o.name_any(), &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => {
                    tracing::debug!(error = %e, kind = %res.ar.kind, "namespace cleanup cannot delete");
                    failed = true;
                }
            }
        }
        if failed {
            r.failures.push(label.clone());
        }
        if !items.is_empty() {
            r.content.insert(label, items.len());
        }
    }
    r
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx<ControllersConfig>>) -> Result<Action, Error> {
    if ns.metadata.deletion_timestamp.is_none() {
        return Ok(Action::await_change());
    }
    let has_finalizer = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.as_ref())
        .is_some_and(|f| f.iter().any(|x| x == FINALIZER));
    if !has_finalizer {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let all = match discovery::resources(&ctx.client).await {
        Ok(all) => all,
        Err(e) => {
            let msg = e.to_string();
            set_conditions(&api, &ns, conditions(Some(&msg), &Remaining::default())).await?;
            return Err(e.into());
        }
    };
    // Upstream re-checks after deleting: what the first pass deleted at once is gone by now.
    let mut remaining = empty(&ctx.client, &name, &all).await;
    if !remaining.content.is_empty() {
        remaining = empty(&ctx.client, &name, &all).await;
    }
    set_conditions(&api, &ns, conditions(None, &remaining)).await?;
    if !remaining.content.is_empty() || !remaining.failures.is_empty() {
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    let mut done = (*ns).clone();
    if let Some(f) = done.spec.as_mut().and_then(|s| s.finalizers.as_mut()) {
        f.retain(|x| x != FINALIZER);
    }
    // Finalize against the latest copy's resourceVersion is not needed: the server only takes
    // spec.finalizers from the body.
    done.metadata.resource_version = None;
    match api
        .replace_subresource("finalize", &name, &PostParams::default(), &done)
        .await
    {
        Ok(_) => Ok(Action::await_change()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

/// Run the namespace controller until `shutdown`.
pub async fn run(client: Client, config: ControllersConfig, shutdown: CancellationToken) {
    let controller = Controller::new(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
    );
    let ctx = Ctx::new(client, "namespace-controller", config);
    run_controller(controller, reconcile, ctx, shutdown).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_content_and_finalizers_become_true_conditions_with_upstream_messages() {
        let mut r = Remaining::default();
        r.content.insert("configmaps.".into(), 2);
        r.finalizers.insert("example.com/keep".into(), 1);
        let cs = conditions(None, &r);
        let get = |t: &str| cs.iter().find(|c| c.type_ == t).unwrap();
        let content = get("NamespaceContentRemaining");
        assert_eq!(content.status, "True");
        assert_eq!(content.reason.as_deref(), Some("SomeResourcesRemain"));
        assert_eq!(
            content.message.as_deref(),
            Some("Some resources are remaining: configmaps. has 2 resource instances")
        );
        let fin = get("NamespaceFinalizersRemaining");
        assert_eq!(fin.status, "True");
        assert_eq!(
            fin.message.as_deref(),
            Some(
                "Some content in the namespace has finalizers remaining: example.com/keep in 1 resource instances"
            )
        );
        let clean = conditions(None, &Remaining::default());
        assert!(clean.iter().all(|c| c.status == "False"));
        assert_eq!(clean.len(), 5);
    }
}
