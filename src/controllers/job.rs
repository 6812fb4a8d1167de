//! Job controller: runs pods until `completions` succeed (or, without completions, until one
//! succeeds and the rest stop), at most `parallelism` at a time, recreating failed pods with
//! exponential backoff until `backoffLimit`; enforces `activeDeadlineSeconds` and `suspend`;
//! Indexed jobs get one pod per completion index. Pod outcomes are counted exactly through the
//! `batch.kubernetes.io/job-tracking` finalizer and `status.uncountedTerminatedPods`, as
//! upstream: record the pod in status, then drop its finalizer, then move it to the counters.
//!
//! Owns: Job pods and `Job.status`. May call: the API server.

use super::job_util::{
    self as util, FailureAction, TRACKING_FINALIZER, condition, failed, finish_time, index_of,
    succeeded, terminating, tracked,
};
use super::pod_control;
use super::pods::{claim, is_ready};
use super::runtime::{Ctx, Error, NORMAL, WARNING, describe, run_controller};
use super::{ControllersConfig, labels};
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Controller state.
pub struct State {
    backoff_base: Duration,
}

type C = Ctx<State>;

/// Drop the tracking finalizer from `pod`. `Ok(true)`: it is gone (or so is the pod).
pub(super) async fn release(api: &Api<Pod>, pod: &Pod) -> Result<bool, Error> {
    let name = pod.name_any();
    let mut cur = pod.clone();
    for _ in 0..5 {
        if !tracked(&cur) {
            return Ok(true);
        }
        let rest: Vec<String> = cur
            .metadata
            .finalizers
            .iter()
            .flatten()
            .filter(|f| f.as_str() != TRACKING_FINALIZER)
            .cloned()
            .collect();
        // The resourceVersion makes this a compare-and-swap against other finalizer edits.
        let patch = json!({"metadata": {
            "finalizers": rest,
            "resourceVersion": cur.metadata.resource_version,
        }});
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => match api.get_opt(&name).await? {
                Some(p) if p.metadata.uid == pod.metadata.uid => cur = p,
                _ => return Ok(true),
            },
            Err(e) => return Err(e.into()),
        }
    }
    Ok(false)
}

async fn delete_pods(api: &Api<Pod>, job: &Job, victims: Vec<Pod>, ctx: &C) -> Result<(), Error> {
    Ok(pod_control::delete_pods(ctx, job, api, victims).await?)
}

async fn create_pods(
    api: &Api<Pod>,
    job: &Job,
    indexes: Vec<Option<i32>>,
    ctx: &C,
) -> Result<(), Error> {
    let mut pods = Vec::new();
    for i in indexes {
        pods.push(util::new_pod(job, i).ok_or_else(|| Error::MissingField {
            object: describe(job),
            field: "spec.template.spec",
        })?);
    }
    pod_control::create_pods(ctx, job, api, pods).await?;
    Ok(())
}

/// Write `status` with a compare-and-swap on the job's resourceVersion; returns the new job.
async fn write_status(api: &Api<Job>, job: &Job, status: JobStatus) -> Result<Job, Error> {
    let mut next = job.clone();
    next.status = Some(status);
    Ok(api
        .replace_status(&job.name_any(), &PostParams::default(), &next)
        .await?)
}

fn ids(v: &Option<Vec<String>>) -> HashSet<String> {
    v.iter().flatten().cloned().collect()
}

async fn reconcile(trigger: Arc<Job>, ctx: Arc<C>) -> Result<Action, Error> {
    let ns = trigger.namespace().unwrap_or_default();
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    // Counting must never start from a stale status (it would count pods twice): read the job
    // fresh, and write status only with compare-and-swap.
    let Some(mut job) = jobs.get_opt(&trigger.name_any()).await? else {
        return Ok(Action::await_change());
    };
    if job.metadata.uid != trigger.metadata.uid {
        return Ok(Action::await_change());
    }
    let spec = job.spec.clone().unwrap_or_default();
    let Some(selector) = spec.selector.clone().filter(|s| !labels::is_empty(s)) else {
        return Err(Error::Invalid {
            object: describe(&job),
            reason: "empty selector".into(),
        });
    };
    let listed = pods_api
        .list(&ListParams::default().labels(&labels::to_query(&selector)))
        .await?
        .items;
    if job.metadata.deletion_timestamp.is_some() {
        // Being deleted: nothing more is counted; let the pods go.
        let uid = job.metadata.uid.clone().unwrap_or_default();
        for p in listed.iter().filter(|p| tracked(p)) {
            if super::pods::controller_of(&p.metadata).is_some_and(|o| o.uid == uid) {
                release(&pods_api, p).await?;
            }
        }
        return Ok(Action::await_change());
    }
    let pods = claim(&pods_api, &job, &selector, listed).await?;
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions = spec.completions;
    let old = job.status.clone().unwrap_or_default();
    let mut status = old.clone();
    let limit = completions.unwrap_or(0);
    let mut done = util::parse_indexes(status.completed_indexes.as_deref(), limit);
    let mut unc = status.uncounted_terminated_pods.clone().unwrap_or_default();
    let (mut unc_ok, mut unc_failed) = (ids(&unc.succeeded), ids(&unc.failed));

    // 1. Record finished tracked pods in status before their finalizers go.
    let mut to_release = Vec::new();
    let mut recorded = false;
    for p in pods.iter().filter(|p| tracked(p)) {
        let uid = p.metadata.uid.clone().unwrap_or_default();
        if succeeded(p) {
            if indexed {
                // The index alone prevents recounting; uids are not needed.
                if let Some(i) = index_of(p).filter(|i| *i < limit) {
                    recorded |= done.insert(i);
                }
            } else if unc_ok.insert(uid) {
                recorded = true;
            }
        } else if failed(p) {
            match util::failure_action(&job, p) {
                // Ignored failures are not counted; the finalizer still goes.
                FailureAction::Ignore => {}
                action => {
                    if let FailureAction::FailJob(message) = action {
                        let conds = status.conditions.get_or_insert_with(Vec::new);
                        if !conds
                            .iter()
                            .any(|c| c.type_ == "FailureTarget" && c.status == "True")
                        {
                            util::set_condition(
                                conds,
                                "FailureTarget",
                                "True",
                                "PodFailurePolicy",
                                &message,
                            );
                            recorded = true;
                        }
                    }
                    if unc_failed.insert(uid) {
                        recorded = true;
                    }
                }
            }
        } else {
            continue;
        }
        to_release.push(p);
    }
    let sorted = |s: &HashSet<String>| {
        let mut v: Vec<String> = s.iter().cloned().collect();
        v.sort();
        v
    };
    if recorded {
        unc.succeeded = Some(sorted(&unc_ok));
        unc.failed = Some(sorted(&unc_failed));
        status.uncounted_terminated_pods = Some(unc.clone());
        if indexed {
            status.completed_indexes = Some(util::compress(&done));
            status.succeeded = Some(done.len() as i32);
        }
        job = write_status(&jobs, &job, status.clone()).await?;
    }
    // 2. Drop the finalizers of recorded pods.
    let mut freed = HashSet::new();
    for p in to_release {
        if release(&pods_api, p).await? {
            freed.insert(p.metadata.uid.clone().unwrap_or_default());
        }
    }
    // 3. Move pods without a finalizer from the uncounted lists to the counters.
    let still: HashSet<String> = pods
        .iter()
        .filter(|p| tracked(p))
        .filter_map(|p| p.metadata.uid.clone())
        .filter(|u| !freed.contains(u))
        .collect();
    let moved_ok = unc_ok.iter().filter(|u| !still.contains(*u)).count() as i32;
    let moved_failed = unc_failed.iter().filter(|u| !still.contains(*u)).count() as i32;
    unc_ok.retain(|u| still.contains(u));
    unc_failed.retain(|u| still.contains(u));
    status.succeeded = Some(if indexed {
        done.len() as i32
    } else {
        status.succeeded.unwrap_or(0) + moved_ok
    });
    status.failed = Some(status.failed.unwrap_or(0) + moved_failed);
    status.uncounted_terminated_pods = Some(UncountedTerminatedPods {
        succeeded: Some(sorted(&unc_ok)),
        failed: Some(sorted(&unc_failed)),
    });
    let uncounted_left = !unc_ok.is_empty() || !unc_failed.is_empty();
    let succeeded_total = status.succeeded.unwrap_or(0) + unc_ok.len() as i32;
    let failed_total = status.failed.unwrap_or(0) + unc_failed.len() as i32;

    let active: Vec<&Pod> = pods
        .iter()
        .filter(|p| !succeeded(p) && !failed(p))
        .collect();
    let n_terminating = pods.iter().filter(|p| terminating(p)).count() as i32;
    let mut conds: Vec<JobCondition> = status.conditions.clone().unwrap_or_default();
    let mut requeue: Option<Duration> = None;
    let now = jiff::Timestamp::now();

    if !util::finished(&job) {
        let suspended = spec.suspend == Some(true);
        let was_suspended = condition(&job, "Suspended").is_some();
        if suspended && !was_suspended {
            util::set_condition(
                &mut conds,
                "Suspended",
                "True",
                "JobSuspended",
                "Job suspended",
            );
            ctx.event(&job, NORMAL, "Suspended", "Job suspended".into())
                .await;
        } else if !suspended && was_suspended {
            util::set_condition(
                &mut conds,
                "Suspended",
                "False",
                "JobResumed",
                "Job resumed",
            );
            // Upstream restarts the deadline clock on resume.
            status.start_time = Some(Time(now));
            ctx.event(&job, NORMAL, "Resumed", "Job resumed".into())
                .await;
        }
        if !suspended && status.start_time.is_none() {
            status.start_time = Some(Time(now));
        }
        let mut failure = conds
            .iter()
            .find(|c| c.type_ == "FailureTarget" && c.status == "True")
            .map(|c| {
                (
                    c.reason.clone().unwrap_or_default(),
                    c.message.clone().unwrap_or_default(),
                )
            });
        let mut success = conds
            .iter()
            .any(|c| c.type_ == "SuccessCriteriaMet" && c.status == "True");
        if failure.is_none() && !success {
            let deadline = spec
                .active_deadline_seconds
                .filter(|_| !suspended)
                .zip(status.start_time.as_ref())
                .map(|(s, t)| t.0 + jiff::SignedDuration::from_secs(s));
            let met = match (completions, indexed) {
                (Some(c), true) => done.len() as i32 >= c,
                (Some(c), false) => succeeded_total >= c,
                (None, _) => succeeded_total > 0 && active.is_empty(),
            };
            if failed_total > spec.backoff_limit.unwrap_or(6) {
                failure = Some((
                    "BackoffLimitExceeded".into(),
                    "Job has reached the specified backoff limit".into(),
                ));
            } else if deadline.is_some_and(|d| d <= now) {
                failure = Some((
                    "DeadlineExceeded".into(),
                    "Job was active longer than specified deadline".into(),
                ));
            } else if met {
                success = true;
                util::set_condition(
                    &mut conds,
                    "SuccessCriteriaMet",
                    "True",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                );
            } else if let Some(d) = deadline {
                requeue = Some(Duration::from_millis(
                    u64::try_from(d.duration_since(now).as_millis()).unwrap_or(0) + 50,
                ));
            }
            if let Some((reason, message)) = &failure {
                util::set_condition(&mut conds, "FailureTarget", "True", reason, message);
            }
        }
        if failure.is_some() || success {
            // Terminal: stop whatever still runs, then wait until every pod is accounted for.
            let victims: Vec<Pod> = active.iter().map(|p| (*p).clone()).collect();
            let waiting = !victims.is_empty() || n_terminating > 0 || uncounted_left;
            delete_pods(&pods_api, &job, victims, &ctx).await?;
            if !waiting {
                if let Some((reason, message)) = failure {
                    util::set_condition(&mut conds, "Failed", "True", &reason, &message);
                    ctx.event(&job, WARNING, &reason, message).await;
                } else {
                    util::set_condition(
                        &mut conds,
                        "Complete",
                        "True",
                        "CompletionsReached",
                        "Reached expected number of succeeded pods",
                    );
                    status.completion_time = Some(Time(now));
                    ctx.event(&job, NORMAL, "Completed", "Job completed".into())
                        .await;
                }
            } else {
                requeue = Some(Duration::from_secs(1));
            }
        } else if suspended {
            let victims: Vec<Pod> = active.iter().map(|p| (*p).clone()).collect();
            delete_pods(&pods_api, &job, victims, &ctx).await?;
        } else {
            let wait = manage(
                &pods_api,
                &job,
                &pods,
                &active,
                &done,
                succeeded_total,
                &ctx,
            )
            .await?;
            requeue = match (requeue, wait) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    } else {
        // Finished: anything still running goes (e.g. extra pods of a work queue).
        let victims: Vec<Pod> = active.iter().map(|p| (*p).clone()).collect();
        delete_pods(&pods_api, &job, victims, &ctx).await?;
    }

    status.conditions = (!conds.is_empty()).then_some(conds);
    let now_active = pods
        .iter()
        .filter(|p| !succeeded(p) && !failed(p) && p.metadata.deletion_timestamp.is_none())
        .collect::<Vec<_>>();
    // Pods deleted in this pass still show as active until the next pod event recounts them.
    status.active = Some(now_active.len() as i32);
    status.ready = Some(now_active.iter().filter(|p| is_ready(p)).count() as i32);
    status.terminating = Some(n_terminating);
    // Upstream omits zero counters and empty uid lists (`omitempty`); `ready` stays.
    let nonzero = |v: Option<i32>| v.filter(|n| *n != 0);
    status.active = nonzero(status.active);
    status.succeeded = nonzero(status.succeeded);
    status.failed = nonzero(status.failed);
    if let Some(u) = status.uncounted_terminated_pods.as_mut() {
        u.succeeded = u.succeeded.take().filter(|v| !v.is_empty());
        u.failed = u.failed.take().filter(|v| !v.is_empty());
    }
    if job.status.as_ref() != Some(&status) {
        write_status(&jobs, &job, status).await?;
    }
    Ok(match requeue {
        Some(d) => Action::requeue(d.max(Duration::from_millis(50))),
        None => Action::await_change(),
    })
}

/// Create or delete pods toward the wanted number of active pods. Returns when to look again
/// if creation waits for the failure backoff.
async fn manage(
    api: &Api<Pod>,
    job: &Job,
    pods: &[Pod],
    active: &[&Pod],
    done: &BTreeSet<i32>,
    succeeded_total: i32,
    ctx: &C,
) -> Result<Option<Duration>, Error> {
    let spec = job.spec.clone().unwrap_or_default();
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let n_active = active.len() as i32;
    let mut victims: Vec<Pod> = Vec::new();
    let mut create: Vec<Option<i32>> = Vec::new();
    if indexed {
        let completions = spec.completions.unwrap_or(0);
        // Pods of completed or duplicated indexes, and pods beyond parallelism, go.
        let mut running = BTreeSet::new();
        let mut keep = Vec::new();
        for p in active {
            match index_of(p) {
                Some(i) if i < completions && !done.contains(&i) && running.insert(i) => {
                    keep.push(*p)
                }
                _ => victims.push((*p).clone()),
            }
        }
        let over = keep.len() as i32 - parallelism;
        if over > 0 {
            keep.sort_by_key(|p| std::cmp::Reverse(index_of(p)));
            victims.extend(keep.iter().take(over as usize).map(|p| (*p).clone()));
        }
        let room = usize::try_from(parallelism - keep.len() as i32).unwrap_or(0);
        create = util::pending_indexes(completions, done, &running, room)
            .into_iter()
            .map(Some)
            .collect();
    } else {
        let want = match spec.completions {
            Some(c) => parallelism.min(c - succeeded_total).max(0),
            // Work queue: once any pod succeeded, no new pods start.
            None if succeeded_total > 0 => n_active.min(parallelism),
            None => parallelism,
        };
        if n_active > want {
            let owned: Vec<Pod> = active.iter().map(|p| (*p).clone()).collect();
            victims = super::replicaset::pods_to_delete(owned, (n_active - want) as usize);
        } else {
            create = vec![None; (want - n_active) as usize];
        }
    }
    delete_pods(api, job, victims, ctx).await?;
    if create.is_empty() {
        return Ok(None);
    }
    // Backoff: failures since the last success delay the next pod, doubling each time.
    let last_ok = pods
        .iter()
        .filter(|p| succeeded(p))
        .filter_map(finish_time)
        .max();
    let recent: Vec<jiff::Timestamp> = pods
        .iter()
        .filter(|p| failed(p) && util::failure_action(job, p) != FailureAction::Ignore)
        .filter_map(finish_time)
        .filter(|t| last_ok.is_none_or(|ok| *t > ok))
        .collect();
    if let Some(last) = recent.iter().max() {
        let delay = util::backoff(ctx.data.backoff_base, recent.len() as u32);
        let ready_at = *last + jiff::SignedDuration::try_from(delay).unwrap_or_default();
        let now = jiff::Timestamp::now();
        if ready_at > now {
            let left = u64::try_from(ready_at.duration_since(now).as_millis()).unwrap_or(0);
            return Ok(Some(Duration::from_millis(left + 10)));
        }
    }
    create_pods(api, job, create, ctx).await?;
    Ok(None)
}

/// Run the Job controller until `shutdown`.
pub async fn run(client: Client, config: ControllersConfig, shutdown: CancellationToken) {
    let controller = Controller::new(Api::<Job>::all(client.clone()), watcher::Config::default())
        .owns(Api::<Pod>::all(client.clone()), watcher::Config::default());
    let client_for_orphans = client.clone();
    let ctx = Ctx::new(
        client,
        "job-controller",
        State {
            backoff_base: config.job_backoff_base,
        },
    );
    futures::join!(
        run_controller(controller, reconcile, ctx, shutdown.clone()),
        super::job_orphans::run(client_for_orphans, shutdown),
    );
}
