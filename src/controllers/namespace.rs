//! Namespace controller: a namespace being deleted (phase `Terminating`) is emptied of every
//! namespaced resource, custom resources included (found through discovery), and then its
//! `kubernetes` finalizer is removed through `namespaces/{name}/finalize`.
//!
//! Owns: namespace teardown. May call: the API server.

use super::ControllersConfig;
use super::discovery;
use super::runtime::{Ctx, Error, run_controller};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const FINALIZER: &str = "kubernetes";

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
    let mut remaining = 0usize;
    for r in discovery::resources(&ctx.client)
        .await?
        .into_iter()
        .filter(|r| r.namespaced)
    {
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &name, &r.ar);
        let items = match api.list(&ListParams::default()).await {
            Ok(l) => l.items,
            Err(e) => {
                tracing::debug!(error = %e, kind = %r.ar.kind, "namespace cleanup cannot list");
                continue;
            }
        };
        for o in items {
            remaining += 1;
            if o.metadata.deletion_timestamp.is_some() {
                continue;
            }
            match api.delete(&o.name_any(), &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    if remaining > 0 {
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    let mut done = (*ns).clone();
    if let Some(f) = done.spec.as_mut().and_then(|s| s.finalizers.as_mut()) {
        f.retain(|x| x != FINALIZER);
    }
    let api: Api<Namespace> = Api::all(ctx.client.clone());
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
