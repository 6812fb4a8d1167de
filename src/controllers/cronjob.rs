//! CronJob controller: creates a Job for each scheduled time (in `spec.timeZone`), honouring
//! `concurrencyPolicy`, `startingDeadlineSeconds` and `suspend`; runs only the most recent of
//! missed starts; tracks `status.active` / `lastScheduleTime` / `lastSuccessfulTime`; prunes
//! finished jobs beyond the history limits. Requeues itself at the next scheduled time.
//!
//! Owns: CronJob jobs and `CronJob.status`. May call: the API server, `crate::cron`.

use super::ControllersConfig;
use super::cronjob_util::{self as util, SCHEDULED_ANNOTATION};
use super::job_util::{condition, finished};
use super::pods::{controller_of, controller_ref};
use super::runtime::{Ctx, Error, NORMAL, WARNING, run_controller};
use crate::cron::Schedule;
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

type C = Ctx<()>;

fn job_ref(j: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: j.metadata.name.clone(),
        namespace: j.metadata.namespace.clone(),
        uid: j.metadata.uid.clone(),
        resource_version: j.metadata.resource_version.clone(),
        ..Default::default()
    }
}

fn new_job(cj: &CronJob, scheduled: &jiff::Zoned) -> Job {
    let tpl = cj
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let meta = tpl.metadata.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_ANNOTATION.into(), util::rfc3339(scheduled));
    Job {
        metadata: ObjectMeta {
            name: Some(util::job_name(&cj.name_any(), scheduled)),
            namespace: cj.namespace(),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref(cj)]),
            ..Default::default()
        },
        spec: tpl.spec,
        status: None,
    }
}

/// Whether `name` looks like one of this cronjob's scheduled jobs (`<cronjob>-<minutes>`).
fn scheduled_name(cronjob: &str, name: &str) -> bool {
    name.strip_prefix(cronjob)
        .and_then(|r| r.strip_prefix('-'))
        .is_some_and(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()))
}

async fn delete_job(api: &Api<Job>, cj: &CronJob, j: &Job, ctx: &C) -> Result<(), Error> {
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    match api.delete(&j.name_any(), &dp).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    let note = format!("Deleted job {}", j.name_any());
    ctx.event_related(cj, j, NORMAL, "SuccessfulDelete", note)
        .await;
    Ok(())
}

async fn reconcile(trigger: Arc<CronJob>, ctx: Arc<C>) -> Result<Action, Error> {
    let ns = trigger.namespace().unwrap_or_default();
    let cjs: Api<CronJob> = Api::namespaced(ctx.client.clone(), &ns);
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    // Status is written with compare-and-swap from a fresh read, never from the cache.
    let Some(cj) = cjs.get_opt(&trigger.name_any()).await? else {
        return Ok(Action::await_change());
    };
    if cj.metadata.deletion_timestamp.is_some() || cj.metadata.uid != trigger.metadata.uid {
        return Ok(Action::await_change());
    }
    let spec = cj.spec.clone().unwrap_or_default();
    let uid = cj.metadata.uid.clone().unwrap_or_default();
    let name = cj.name_any();
    let owned: Vec<Job> = jobs_api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|j| controller_of(&j.metadata).is_some_and(|o| o.uid == uid))
        .collect();
    let old = cj.status.clone().unwrap_or_default();
    let mut status = old.clone();

    // Active list: drop jobs that are gone or finished, pick up our unfinished ones.
    let was_active: Vec<String> = old
        .active
        .iter()
        .flatten()
        .filter_map(|r| r.uid.clone())
        .collect();
    let mut active: Vec<ObjectReference> = Vec::new();
    for j in &owned {
        let juid = j.metadata.uid.clone().unwrap_or_default();
        let listed = was_active.contains(&juid);
        if !finished(j) {
            if listed || scheduled_name(&name, &j.name_any()) {
                active.push(job_ref(j));
            }
            continue;
        }
        if listed {
            let cond = if condition(j, "Complete").is_some() {
                "Complete"
            } else {
                "Failed"
            };
            let note = format!("Saw completed job: {}, condition: {cond}", j.name_any());
            ctx.event_related(&cj, j, NORMAL, "SawCompletedJob", note)
                .await;
        }
        if condition(j, "Complete").is_some() {
            let done = j.status.as_ref().and_then(|s| s.completion_time.clone());
            if let Some(t) = done {
                if status
                    .last_successful_time
                    .as_ref()
                    .is_none_or(|old| old.0 < t.0)
                {
                    status.last_successful_time = Some(t);
                }
            }
        }
    }
    active.sort_by(|a, b| a.name.cmp(&b.name));

    // History limits.
    let (ok, bad): (Vec<Job>, Vec<Job>) = owned
        .iter()
        .filter(|j| finished(j) && j.metadata.deletion_timestamp.is_none())
        .cloned()
        .partition(|j| condition(j, "Complete").is_some());
    let mut pruned = util::over_limit(ok, spec.successful_jobs_history_limit.unwrap_or(3));
    pruned.extend(util::over_limit(
        bad,
        spec.failed_jobs_history_limit.unwrap_or(1),
    ));
    for j in &pruned {
        delete_job(&jobs_api, &cj, j, &ctx).await?;
    }

    let mut requeue = None;
    if spec.suspend != Some(true) {
        requeue = schedule(&cj, &jobs_api, &owned, &mut active, &mut status, &ctx).await?;
    }
    status.active = (!active.is_empty()).then_some(active);
    if status != old {
        let mut next = cj.clone();
        next.status = Some(status);
        cjs.replace_status(&name, &PostParams::default(), &next)
            .await?;
    }
    Ok(match requeue {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}

/// Start the job that is due, if any; returns when the next start is due.
async fn schedule(
    cj: &CronJob,
    jobs_api: &Api<Job>,
    owned: &[Job],
    active: &mut Vec<ObjectReference>,
    status: &mut CronJobStatus,
    ctx: &C,
) -> Result<Option<Duration>, Error> {
    let spec = cj.spec.clone().unwrap_or_default();
    let tz = match spec.time_zone.as_deref() {
        Some(name) => match jiff::tz::TimeZone::get(name) {
            Ok(tz) => tz,
            Err(e) => {
                ctx.event(
                    cj,
                    WARNING,
                    "UnknownTimeZone",
                    format!("invalid timeZone: {name:?}: {e}"),
                )
                .await;
                return Ok(None);
            }
        },
        None => jiff::tz::TimeZone::system(),
    };
    let sched = match Schedule::parse(&spec.schedule) {
        Ok(s) => s,
        Err(e) => {
            ctx.event(
                cj,
                WARNING,
                "InvalidSchedule",
                format!("invalid schedule: {}: {e}", spec.schedule),
            )
            .await;
            return Ok(None);
        }
    };
    let now = jiff::Timestamp::now().to_zoned(tz.clone());
    let mut earliest = status
        .last_schedule_time
        .as_ref()
        .or(cj.metadata.creation_timestamp.as_ref())
        .map(|t| t.0)
        .unwrap_or(now.timestamp());
    let deadline = spec
        .starting_deadline_seconds
        .map(jiff::SignedDuration::from_secs);
    if let Some(d) = deadline {
        earliest = earliest.max(now.timestamp() - d);
    }
    let missed = util::missed_starts(&sched, &earliest.to_zoned(tz.clone()), &now);
    if missed.count > util::TOO_MANY_MISSED {
        ctx.event(
            cj,
            WARNING,
            "TooManyMissedTimes",
            format!(
                "too many missed start times: {}. Set or decrease .spec.startingDeadlineSeconds or check clock skew",
                missed.count
            ),
        )
        .await;
    }
    let next = sched.next_after(&now).map(|t| {
        // A little past the minute so the time is surely due when we look again.
        Duration::try_from(t.timestamp().duration_since(jiff::Timestamp::now())).unwrap_or_default()
            + Duration::from_millis(100)
    });
    let Some(t) = missed.most_recent else {
        return Ok(next);
    };
    if deadline.is_some_and(|d| t.timestamp() + d < now.timestamp()) {
        ctx.event(
            cj,
            WARNING,
            "MissSchedule",
            format!(
                "Missed scheduled time to start a job: {}",
                t.strftime("%a, %d %b %Y %H:%M:%S %z")
            ),
        )
        .await;
        return Ok(next);
    }
    let job_name = util::job_name(&cj.name_any(), &t);
    if let Some(j) = owned.iter().find(|j| j.name_any() == job_name) {
        // Already started (our status write may have been lost): just record it.
        status.last_schedule_time = Some(Time(t.timestamp()));
        if !finished(j) && !active.iter().any(|r| r.uid == j.metadata.uid) {
            active.push(job_ref(j));
        }
        return Ok(next);
    }
    match spec.concurrency_policy.as_deref() {
        Some("Forbid") if !active.is_empty() => {
            ctx.event(
                cj,
                NORMAL,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
            )
            .await;
            return Ok(next);
        }
        Some("Replace") => {
            for r in std::mem::take(active) {
                if let Some(j) = owned.iter().find(|j| j.metadata.uid == r.uid) {
                    delete_job(jobs_api, cj, j, ctx).await?;
                }
            }
        }
        _ => {}
    }
    let job = new_job(cj, &t);
    let created = match jobs_api.create(&PostParams::default(), &job).await {
        Ok(j) => j,
        Err(e) => {
            ctx.event(
                cj,
                WARNING,
                "FailedCreate",
                format!("Error creating job: {e}"),
            )
            .await;
            return Err(e.into());
        }
    };
    let note = format!("Created job {}", created.name_any());
    ctx.event_related(cj, &created, NORMAL, "SuccessfulCreate", note)
        .await;
    active.push(job_ref(&created));
    status.last_schedule_time = Some(Time(t.timestamp()));
    Ok(next)
}

/// Run the CronJob controller until `shutdown`.
pub async fn run(client: Client, _config: ControllersConfig, shutdown: CancellationToken) {
    let controller = Controller::new(
        Api::<CronJob>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<Job>::all(client.clone()), watcher::Config::default());
    let ctx = Ctx::new(client, "cronjob-controller", ());
    run_controller(controller, reconcile, ctx, shutdown).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_minute_suffixed_names_are_scheduled_jobs() {
        assert!(scheduled_name("backup", "backup-29402055"));
        assert!(!scheduled_name("backup", "backup-manual"));
        assert!(!scheduled_name("backup", "backup-"));
        assert!(!scheduled_name("backup", "backups-1"));
    }
}
