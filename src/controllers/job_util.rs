//! Pure Job logic: pod outcome classification, completion indexes and their compressed form
//! (`"0-2,5"`), job conditions, pod templates and the failure backoff.
//!
//! Owns: upstream `pkg/controller/job` helper semantics. Calls nothing.

use k8s_openapi::api::batch::v1::{Job, JobCondition};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::ObjectMeta;
use std::collections::BTreeSet;
use std::time::Duration;

/// Finalizer put on every Job pod so its outcome is counted before it can disappear.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// Annotation and label holding the completion index of an Indexed Job's pod.
pub const INDEX_KEY: &str = "batch.kubernetes.io/job-completion-index";
/// The env var an Indexed Job's containers get their index in.
pub const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// Upstream's cap on the pod-recreation backoff.
pub const MAX_BACKOFF: Duration = Duration::from_secs(360);

fn phase(p: &Pod) -> Option<&str> {
    p.status.as_ref().and_then(|s| s.phase.as_deref())
}

/// The pod finished successfully.
pub fn succeeded(p: &Pod) -> bool {
    phase(p) == Some("Succeeded")
}

/// The pod failed; with the default `podReplacementPolicy: TerminatingOrFailed` a pod being
/// deleted before it succeeded counts as failed too (it may never reach `Failed`).
pub fn failed(p: &Pod) -> bool {
    phase(p) == Some("Failed")
        || (p.metadata.deletion_timestamp.is_some() && phase(p) != Some("Succeeded"))
}

/// Terminating, but not in a terminal phase yet (`status.terminating`).
pub fn terminating(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some() && !matches!(phase(p), Some("Succeeded" | "Failed"))
}

/// Whether the pod still carries the job-tracking finalizer.
pub fn tracked(p: &Pod) -> bool {
    p.metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == TRACKING_FINALIZER)
}

/// The completion index of a pod (annotation first, then label, as upstream).
pub fn index_of(p: &Pod) -> Option<i32> {
    let from = |m: Option<&std::collections::BTreeMap<String, String>>| {
        m.and_then(|m| m.get(INDEX_KEY))
            .and_then(|v| v.parse::<i32>().ok())
            .filter(|i| *i >= 0)
    };
    from(p.metadata.annotations.as_ref()).or_else(|| from(p.metadata.labels.as_ref()))
}

/// When the pod finished: the latest container `finishedAt`, else its deletion or creation time.
pub fn finish_time(p: &Pod) -> Option<jiff::Timestamp> {
    let terminated = p
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max();
    terminated
        .or_else(|| p.metadata.deletion_timestamp.as_ref().map(|t| t.0))
        .or_else(|| p.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// Render indexes as upstream's compressed list: ascending, consecutive runs as `a-b`.
pub fn compress(indexes: &BTreeSet<i32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut run: Option<(i32, i32)> = None;
    for &i in indexes {
        run = match run {
            Some((a, b)) if i == b + 1 => Some((a, i)),
            Some(r) => {
                out.push(render(r));
                Some((i, i))
            }
            None => Some((i, i)),
        };
    }
    if let Some(r) = run {
        out.push(render(r));
    }
    out.join(",")
}

fn render((a, b): (i32, i32)) -> String {
    if a == b {
        a.to_string()
    } else {
        format!("{a}-{b}")
    }
}

/// Parse a compressed index list; malformed parts are skipped, indexes ≥ `limit` dropped.
pub fn parse_indexes(s: Option<&str>, limit: i32) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in s
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<i32>(), b.parse::<i32>()),
            None => (part.parse::<i32>(), part.parse::<i32>()),
        };
        if let (Ok(a), Ok(b)) = (a, b) {
            out.extend((a.max(0)..=b.min(limit.saturating_sub(1))).filter(|i| *i < limit));
        }
    }
    out
}

/// The condition of `type_` if it is `True`.
pub fn condition<'a>(job: &'a Job, type_: &str) -> Option<&'a JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// `Complete` or `Failed` is `True`: the job is finished for good.
pub fn finished(job: &Job) -> bool {
    condition(job, "Complete").is_some() || condition(job, "Failed").is_some()
}

/// When a finished job finished (`completionTime`, else the terminal condition's time).
pub fn finished_at(job: &Job) -> Option<jiff::Timestamp> {
    if let Some(t) = job.status.as_ref().and_then(|s| s.completion_time.as_ref()) {
        return Some(t.0);
    }
    ["Complete", "Failed"]
        .iter()
        .filter_map(|t| condition(job, t))
        .filter_map(|c| c.last_transition_time.as_ref().map(|t| t.0))
        .next()
}

/// Set a condition in a list, keeping `lastTransitionTime` when the status does not change.
pub fn set_condition(
    conds: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
) {
    let now = Time(jiff::Timestamp::now());
    if let Some(c) = conds.iter_mut().find(|c| c.type_ == type_) {
        if c.status != status {
            c.last_transition_time = Some(now.clone());
        }
        c.status = status.to_string();
        c.reason = Some(reason.to_string());
        c.message = Some(message.to_string());
        c.last_probe_time = Some(now);
        return;
    }
    conds.push(JobCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_probe_time: Some(now.clone()),
        last_transition_time: Some(now),
    });
}

/// Delay before the next pod may be created after `failures` consecutive failures.
pub fn backoff(base: Duration, failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32 << (failures - 1).min(20);
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

/// A new pod for `job` (at `index` for Indexed jobs), with the tracking finalizer and a
/// controller reference.
pub fn new_pod(job: &Job, index: Option<i32>) -> Option<Pod> {
    let tpl = job.spec.as_ref()?.template.clone();
    let meta = tpl.metadata.unwrap_or_default();
    let mut spec = tpl.spec?;
    let name = job.name_any();
    let mut labels = meta.labels.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    let mut finalizers = meta.finalizers.unwrap_or_default();
    if !finalizers.iter().any(|f| f == TRACKING_FINALIZER) {
        finalizers.push(TRACKING_FINALIZER.to_string());
    }
    let generate_name = match index {
        Some(i) => {
            annotations.insert(INDEX_KEY.into(), i.to_string());
            labels.insert(INDEX_KEY.into(), i.to_string());
            if spec.hostname.as_deref().is_none_or(str::is_empty) {
                spec.hostname = Some(format!("{name}-{i}"));
            }
            let env = EnvVar {
                name: INDEX_ENV.into(),
                value: None,
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        api_version: Some("v1".into()),
                        field_path: format!("metadata.annotations['{INDEX_KEY}']"),
                    }),
                    ..Default::default()
                }),
            };
            let containers = spec
                .containers
                .iter_mut()
                .chain(spec.init_containers.iter_mut().flatten());
            for c in containers {
                let vars = c.env.get_or_insert_with(Vec::new);
                if !vars.iter().any(|v| v.name == INDEX_ENV) {
                    vars.push(env.clone());
                }
            }
            format!("{name}-{i}-")
        }
        None => format!("{name}-"),
    };
    Some(Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name),
            namespace: job.namespace(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            finalizers: Some(finalizers),
            owner_references: Some(vec![super::pods::controller_ref(job)]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    })
}

/// The indexes an Indexed job still has to start: not completed and not held by an active pod,
/// lowest first, at most `n`.
pub fn pending_indexes(
    completions: i32,
    done: &BTreeSet<i32>,
    running: &BTreeSet<i32>,
    n: usize,
) -> Vec<i32> {
    (0..completions)
        .filter(|i| !done.contains(i) && !running.contains(i))
        .take(n)
        .collect()
}

/// What `spec.podFailurePolicy` says about a failed pod: the first matching rule's action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureAction {
    /// Fail the whole job now (`FailJob`), with upstream's condition message.
    FailJob(String),
    /// Do not count the failure (`Ignore`).
    Ignore,
    /// Count it toward `backoffLimit` (`Count`, `FailIndex`, or no rule matched).
    Count,
}

/// Evaluate `spec.podFailurePolicy` for a pod in phase `Failed` (other pods: [`Count`]).
///
/// [`Count`]: FailureAction::Count
pub fn failure_action(job: &Job, p: &Pod) -> FailureAction {
    let Some(policy) = job
        .spec
        .as_ref()
        .and_then(|s| s.pod_failure_policy.as_ref())
    else {
        return FailureAction::Count;
    };
    if phase(p) != Some("Failed") {
        return FailureAction::Count;
    }
    let status = p.status.clone().unwrap_or_default();
    let containers: Vec<_> = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .collect();
    let pod = format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any());
    for (i, rule) in policy.rules.iter().enumerate() {
        let matched = if let Some(req) = &rule.on_exit_codes {
            containers
                .iter()
                .filter(|c| req.container_name.as_ref().is_none_or(|n| *n == c.name))
                .filter_map(|c| Some((c.name.clone(), c.state.as_ref()?.terminated.as_ref()?.exit_code)))
                .find(|(_, code)| {
                    *code != 0 && (req.values.contains(code) == (req.operator == "In"))
                })
                .map(|(name, code)| {
                    format!(
                        "Container {name} for pod {pod} failed with exit code {code} matching {} rule at index {i}",
                        rule.action
                    )
                })
        } else {
            rule.on_pod_conditions.iter().flatten().find_map(|pc| {
                let want = if pc.status.is_empty() {
                    "True"
                } else {
                    pc.status.as_str()
                };
                status
                    .conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == pc.type_ && c.status == want)
                    .then(|| {
                        format!(
                            "Pod {pod} has condition {} matching {} rule at index {i}",
                            pc.type_, rule.action
                        )
                    })
            })
        };
        if let Some(message) = matched {
            return match rule.action.as_str() {
                "FailJob" => FailureAction::FailJob(message),
                "Ignore" => FailureAction::Ignore,
                _ => FailureAction::Count,
            };
        }
    }
    FailureAction::Count
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn completed_indexes_compress_into_runs_like_upstream() {
        let s: BTreeSet<i32> = [0, 1, 2, 5, 7, 8].into_iter().collect();
        assert_eq!(compress(&s), "0-2,5,7-8");
        assert_eq!(compress(&BTreeSet::new()), "");
        assert_eq!(compress(&[3].into_iter().collect()), "3");
        assert_eq!(parse_indexes(Some("0-2,5,7-8"), 100), s);
        assert_eq!(
            parse_indexes(Some("0-2,x,9"), 5),
            [0, 1, 2].into_iter().collect()
        );
    }

    #[test]
    fn backoff_doubles_from_the_base_and_caps_at_six_minutes() {
        let base = Duration::from_secs(10);
        assert_eq!(backoff(base, 0), Duration::ZERO);
        assert_eq!(backoff(base, 1), Duration::from_secs(10));
        assert_eq!(backoff(base, 3), Duration::from_secs(40));
        assert_eq!(backoff(base, 10), MAX_BACKOFF);
        assert_eq!(backoff(base, 400), MAX_BACKOFF);
    }

    #[test]
    fn indexed_pods_carry_index_hostname_env_and_finalizer() {
        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": "pi", "namespace": "default", "uid": "u1"},
            "spec": {"completionMode": "Indexed", "completions": 3, "template": {
                "metadata": {"labels": {"job-name": "pi"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}
        }))
        .unwrap();
        let pod = new_pod(&job, Some(2)).unwrap();
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("pi-2-"));
        assert_eq!(index_of(&pod), Some(2));
        assert_eq!(pod.metadata.labels.as_ref().unwrap()[INDEX_KEY], "2");
        assert!(tracked(&pod));
        let spec = pod.spec.unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("pi-2"));
        let env = &spec.containers[0].env.as_ref().unwrap()[0];
        assert_eq!(env.name, INDEX_ENV);
        assert_eq!(
            env.value_from
                .as_ref()
                .unwrap()
                .field_ref
                .as_ref()
                .unwrap()
                .field_path,
            "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        );
        assert_eq!(
            pending_indexes(
                5,
                &[0].into_iter().collect(),
                &[1, 3].into_iter().collect(),
                2
            ),
            [2, 4]
        );
    }

    #[test]
    fn pod_failure_policy_picks_the_first_matching_rule() {
        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": "j", "namespace": "default"},
            "spec": {"template": {}, "podFailurePolicy": {"rules": [
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                {"action": "FailJob", "onExitCodes": {"containerName": "main",
                    "operator": "In", "values": [42]}},
                {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [1]}}]}}
        }))
        .unwrap();
        let pod = |code: i32, cond: Option<&str>| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": "p", "namespace": "default"},
                "status": {"phase": "Failed",
                    "conditions": cond.map(|c| vec![json!({"type": c, "status": "True"})]),
                    "containerStatuses": [{"name": "main", "image": "", "imageID": "",
                        "ready": false, "restartCount": 0,
                        "state": {"terminated": {"exitCode": code}}}]}
            }))
            .unwrap()
        };
        assert_eq!(
            failure_action(&job, &pod(42, None)),
            FailureAction::FailJob(
                "Container main for pod default/p failed with exit code 42 matching FailJob rule at index 1"
                    .into()
            )
        );
        assert_eq!(
            failure_action(&job, &pod(42, Some("DisruptionTarget"))),
            FailureAction::Ignore
        );
        assert_eq!(failure_action(&job, &pod(1, None)), FailureAction::Count);
        assert_eq!(failure_action(&job, &pod(7, None)), FailureAction::Count);
    }

    #[test]
    fn deleted_unfinished_pods_count_as_failed() {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"phase": "Running"}
        }))
        .unwrap();
        assert!(failed(&p) && terminating(&p) && !succeeded(&p));
        let ok: Pod = serde_json::from_value(
            json!({"metadata": {"name": "p"}, "status": {"phase": "Succeeded"}}),
        )
        .unwrap();
        assert!(succeeded(&ok) && !failed(&ok) && !terminating(&ok));
    }
}
