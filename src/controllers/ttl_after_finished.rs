//! TTL-after-finished controller: deletes a finished Job (`Complete` or `Failed`) once
//! `spec.ttlSecondsAfterFinished` seconds have passed since it finished, with background
//! propagation so its pods follow through the garbage collector.
//!
//! Owns: deletion of expired Jobs. May call: the API server.

use super::job_util::{finished, finished_at};
use super::runtime::{Ctx, Error, run_controller};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams, Preconditions, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long until `job` expires: `None` if it never does (no TTL, not finished, deleting).
pub fn time_left(job: &Job, now: jiff::Timestamp) -> Option<Duration> {
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    if job.metadata.deletion_timestamp.is_some() || !finished(job) {
        return None;
    }
    let at = finished_at(job)? + jiff::SignedDuration::from_secs(i64::from(ttl.max(0)));
    Some(if at <= now {
        Duration::ZERO
    } else {
        Duration::try_from(at - now).unwrap_or_default()
    })
}

async fn reconcile(job: Arc<Job>, ctx: Arc<Ctx<()>>) -> Result<Action, Error> {
    let Some(left) = time_left(&job, jiff::Timestamp::now()) else {
        return Ok(Action::await_change());
    };
    if !left.is_zero() {
        return Ok(Action::requeue(left + Duration::from_millis(50)));
    }
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &job.namespace().unwrap_or_default());
    // The cache may be stale (the TTL may have been changed): confirm on a fresh read.
    let Some(fresh) = api.get_opt(&job.name_any()).await? else {
        return Ok(Action::await_change());
    };
    match time_left(&fresh, jiff::Timestamp::now()) {
        Some(d) if d.is_zero() => {}
        Some(d) => return Ok(Action::requeue(d)),
        None => return Ok(Action::await_change()),
    }
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        preconditions: Some(Preconditions {
            uid: fresh.metadata.uid.clone(),
            resource_version: fresh.metadata.resource_version.clone(),
        }),
        ..Default::default()
    };
    match api.delete(&fresh.name_any(), &dp).await {
        Ok(_) => tracing::debug!(job = %fresh.name_any(), "deleted expired job"),
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Action::await_change())
}

/// Run the TTL-after-finished controller until `shutdown`.
pub async fn run(client: Client, shutdown: CancellationToken) {
    let controller = Controller::new(Api::<Job>::all(client.clone()), watcher::Config::default());
    let ctx = Ctx::new(client, "ttl-after-finished-controller", ());
    run_controller(controller, reconcile, ctx, shutdown).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(ttl: Option<i32>, complete_at: Option<&str>) -> Job {
        let mut j = json!({"metadata": {"name": "j"}, "spec": {"ttlSecondsAfterFinished": ttl,
            "template": {}}});
        if let Some(t) = complete_at {
            j["status"] = json!({"completionTime": t, "conditions": [
                {"type": "Complete", "status": "True", "lastTransitionTime": t}]});
        }
        serde_json::from_value(j).unwrap()
    }

    #[test]
    fn finished_jobs_expire_ttl_seconds_after_completion() {
        let now: jiff::Timestamp = "2026-11-25T12:00:00Z".parse().unwrap();
        assert_eq!(time_left(&job(Some(5), None), now), None);
        assert_eq!(
            time_left(&job(None, Some("2026-11-25T11:00:00Z")), now),
            None
        );
        assert_eq!(
            time_left(&job(Some(30), Some("2026-11-25T11:59:50Z")), now),
            Some(Duration::from_secs(20))
        );
        assert_eq!(
            time_left(&job(Some(0), Some("2026-11-25T11:59:50Z")), now),
            Some(Duration::ZERO)
        );
    }
}
