//! Releases job-tracking finalizers the Job controller can no longer release: pods whose Job
//! is gone (deleted in the background, or orphaned) or being deleted. Without this a pod
//! deleted together with its Job would stay `Terminating` forever.
//!
//! Owns: the `batch.kubernetes.io/job-tracking` finalizer of orphaned pods. May call: the API
//! server.

use super::job::release;
use super::job_util::tracked;
use super::pods::controller_of;
use super::runtime::{Ctx, Error, run_controller};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

async fn reconcile(pod: Arc<Pod>, ctx: Arc<Ctx<()>>) -> Result<Action, Error> {
    if !tracked(&pod) {
        return Ok(Action::await_change());
    }
    let ns = pod.namespace().unwrap_or_default();
    let owner = controller_of(&pod.metadata).filter(|o| o.kind == "Job");
    let alive = match owner {
        Some(o) => Api::<Job>::namespaced(ctx.client.clone(), &ns)
            .get_opt(&o.name)
            .await?
            .is_some_and(|j| {
                j.metadata.uid.as_deref() == Some(o.uid.as_str())
                    && j.metadata.deletion_timestamp.is_none()
            }),
        None => false,
    };
    if !alive {
        let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
        release(&api, &pod).await?;
    }
    Ok(Action::await_change())
}

/// Run until `shutdown`, watching only pods that belong to some Job.
pub async fn run(client: Client, shutdown: CancellationToken) {
    let pods = watcher::Config::default().labels("batch.kubernetes.io/job-name");
    let controller = Controller::new(Api::<Pod>::all(client.clone()), pods);
    let ctx = Ctx::new(client, "job-controller", ());
    run_controller(controller, reconcile, ctx, shutdown).await;
}
