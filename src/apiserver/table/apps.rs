//! Printers for workload kinds: apps (deployments, replica sets, stateful sets, daemon
//! sets, controller revisions), batch (jobs, cron jobs), autoscaling and policy.

use super::format::{
    arr, containers_images, human_duration, i, map_string, opt, parse_time, s, selector_string,
    since,
};
use super::{AGE, NAME, Printer, age, col, name, wide};
use jiff::Timestamp;
use serde_json::{Value, json};

const CONTAINERS: super::Col = wide(
    "Containers",
    "string",
    "Names of each container in the template.",
);
const IMAGES: super::Col = wide(
    "Images",
    "string",
    "Images referenced by each container in the template.",
);
const SELECTOR: super::Col = wide(
    "Selector",
    "string",
    "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
);

fn template(o: &Value, pointer: &str) -> (String, String) {
    containers_images(o.pointer(pointer).unwrap_or(&Value::Null))
}

fn spec_replicas(o: &Value) -> i64 {
    o.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

pub(super) fn printer(group: &str, kind: &str) -> Option<Printer> {
    let p = match (group, kind) {
        ("apps", "Deployment") => Printer {
            columns: vec![
                NAME,
                col("Ready", "string", "Number of the pod with ready state"),
                col(
                    "Up-to-date",
                    "integer",
                    "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
                ),
                col(
                    "Available",
                    "integer",
                    "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
                ),
                AGE,
                CONTAINERS,
                IMAGES,
                SELECTOR,
            ],
            cells: |o, now| {
                let (c, im) = template(o, "/spec/template/spec");
                vec![
                    name(o),
                    json!(format!(
                        "{}/{}",
                        i(o, "/status/readyReplicas"),
                        spec_replicas(o)
                    )),
                    json!(i(o, "/status/updatedReplicas")),
                    json!(i(o, "/status/availableReplicas")),
                    age(o, now),
                    json!(c),
                    json!(im),
                    json!(selector_string(o.pointer("/spec/selector"))),
                ]
            },
        },
        ("apps", "ReplicaSet") => Printer {
            columns: vec![
                NAME,
                col(
                    "Desired",
                    "integer",
                    "Replicas is the number of desired replicas.",
                ),
                col(
                    "Current",
                    "integer",
                    "Replicas is the most recently observed number of replicas.",
                ),
                col(
                    "Ready",
                    "integer",
                    "The number of ready replicas for this replica set.",
                ),
                AGE,
                CONTAINERS,
                IMAGES,
                SELECTOR,
            ],
            cells: |o, now| {
                let (c, im) = template(o, "/spec/template/spec");
                vec![
                    name(o),
                    json!(spec_replicas(o)),
                    json!(i(o, "/status/replicas")),
                    json!(i(o, "/status/readyReplicas")),
                    age(o, now),
                    json!(c),
                    json!(im),
                    json!(selector_string(o.pointer("/spec/selector"))),
                ]
            },
        },
        ("apps", "StatefulSet") => Printer {
            columns: vec![
                NAME,
                col("Ready", "string", "Number of the pod with ready state"),
                AGE,
                CONTAINERS,
                IMAGES,
            ],
            cells: |o, now| {
                let (c, im) = template(o, "/spec/template/spec");
                vec![
                    name(o),
                    json!(format!(
                        "{}/{}",
                        i(o, "/status/readyReplicas"),
                        spec_replicas(o)
                    )),
                    age(o, now),
                    json!(c),
                    json!(im),
                ]
            },
        },
        ("apps", "DaemonSet") => Printer {
            columns: vec![
                NAME,
                col(
                    "Desired",
                    "integer",
                    "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod).",
                ),
                col(
                    "Current",
                    "integer",
                    "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.",
                ),
                col(
                    "Ready",
                    "integer",
                    "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.",
                ),
                col(
                    "Up-to-date",
                    "integer",
                    "The total number of nodes that are running updated daemon pod",
                ),
                col(
                    "Available",
                    "integer",
                    "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)",
                ),
                col(
                    "Node Selector",
                    "string",
                    "NodeSelector is a selector which must be true for the pod to fit on a node.",
                ),
                AGE,
                CONTAINERS,
                IMAGES,
                SELECTOR,
            ],
            cells: |o, now| {
                let (c, im) = template(o, "/spec/template/spec");
                vec![
                    name(o),
                    json!(i(o, "/status/desiredNumberScheduled")),
                    json!(i(o, "/status/currentNumberScheduled")),
                    json!(i(o, "/status/numberReady")),
                    json!(i(o, "/status/updatedNumberScheduled")),
                    json!(i(o, "/status/numberAvailable")),
                    json!(map_string(o, "/spec/template/spec/nodeSelector")),
                    age(o, now),
                    json!(c),
                    json!(im),
                    json!(selector_string(o.pointer("/spec/selector"))),
                ]
            },
        },
        ("apps", "ControllerRevision") => Printer {
            columns: vec![
                NAME,
                col("Controller", "string", "Controller of the object"),
                col(
                    "Revision",
                    "integer",
                    "Revision indicates the revision of the state represented by Data.",
                ),
                AGE,
            ],
            cells: |o, now| {
                let controller = arr(o, "/metadata/ownerReferences")
                    .iter()
                    .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
                    .map(|r| {
                        let group = s(r, "/apiVersion").split('/').next().unwrap_or_default();
                        let kind = s(r, "/kind").to_lowercase();
                        let res = if s(r, "/apiVersion").contains('/') {
                            format!("{kind}.{group}")
                        } else {
                            kind
                        };
                        format!("{res}/{}", s(r, "/name"))
                    })
                    .unwrap_or_else(|| "<none>".into());
                vec![
                    name(o),
                    json!(controller),
                    json!(i(o, "/revision")),
                    age(o, now),
                ]
            },
        },
        ("batch", "Job") => Printer {
            columns: vec![
                NAME,
                col("Status", "string", "Status of the job."),
                col(
                    "Completions",
                    "string",
                    "The completed job pods and the number of desired pods.",
                ),
                col("Duration", "string", "Time required to complete the job."),
                AGE,
                CONTAINERS,
                IMAGES,
                SELECTOR,
            ],
            cells: job_cells,
        },
        ("batch", "CronJob") => Printer {
            columns: vec![
                NAME,
                col(
                    "Schedule",
                    "string",
                    "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
                ),
                col(
                    "Timezone",
                    "string",
                    "The time zone name for the given schedule.",
                ),
                col(
                    "Suspend",
                    "boolean",
                    "This flag tells the controller to suspend subsequent executions.",
                ),
                col(
                    "Active",
                    "integer",
                    "A list of pointers to currently running jobs.",
                ),
                col(
                    "Last Schedule",
                    "string",
                    "Information when was the last time the job was successfully scheduled.",
                ),
                AGE,
                CONTAINERS,
                IMAGES,
                SELECTOR,
            ],
            cells: |o, now| {
                let (c, im) = template(o, "/spec/jobTemplate/spec/template/spec");
                let last = match opt(o, "/status/lastScheduleTime") {
                    Some(t) => since(Some(t), now),
                    None => "<none>".into(),
                };
                vec![
                    name(o),
                    json!(s(o, "/spec/schedule")),
                    json!(opt(o, "/spec/timeZone").unwrap_or("<none>")),
                    json!(
                        o.pointer("/spec/suspend")
                            .and_then(Value::as_bool)
                            .unwrap_or(false)
                    ),
                    json!(arr(o, "/status/active").len()),
                    json!(last),
                    age(o, now),
                    json!(c),
                    json!(im),
                    json!(selector_string(
                        o.pointer("/spec/jobTemplate/spec/selector")
                    )),
                ]
            },
        },
        ("autoscaling", "HorizontalPodAutoscaler") => Printer {
            columns: vec![
                NAME,
                col("Reference", "string", "reference to scaled resource"),
                col(
                    "Targets",
                    "string",
                    "the target utilization and current utilization",
                ),
                col(
                    "MinPods",
                    "string",
                    "minReplicas is the lower limit for the number of replicas.",
                ),
                col(
                    "MaxPods",
                    "string",
                    "maxReplicas is the upper limit for the number of pods that can be set by the autoscaler.",
                ),
                col(
                    "Replicas",
                    "string",
                    "current number of replicas of pods managed by this autoscaler",
                ),
                AGE,
            ],
            cells: |o, now| {
                let min = o
                    .pointer("/spec/minReplicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1);
                vec![
                    name(o),
                    json!(format!(
                        "{}/{}",
                        s(o, "/spec/scaleTargetRef/kind"),
                        s(o, "/spec/scaleTargetRef/name")
                    )),
                    json!(hpa_targets(o)),
                    json!(min.to_string()),
                    json!(i(o, "/spec/maxReplicas")),
                    json!(i(o, "/status/currentReplicas")),
                    age(o, now),
                ]
            },
        },
        ("policy", "PodDisruptionBudget") => Printer {
            columns: vec![
                NAME,
                col(
                    "Min Available",
                    "string",
                    "The minimum number of pods that must be available simultaneously.",
                ),
                col(
                    "Max Unavailable",
                    "string",
                    "The maximum number of pods that may be unavailable simultaneously.",
                ),
                col(
                    "Allowed Disruptions",
                    "integer",
                    "Calculated number of pods that may be disrupted at this time",
                ),
                AGE,
            ],
            cells: |o, now| {
                let int_or_str = |p: &str| match o.pointer(p) {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => "N/A".into(),
                };
                vec![
                    name(o),
                    json!(int_or_str("/spec/minAvailable")),
                    json!(int_or_str("/spec/maxUnavailable")),
                    json!(i(o, "/status/disruptionsAllowed")),
                    age(o, now),
                ]
            },
        },
        _ => return None,
    };
    Some(p)
}

fn has_cond(o: &Value, ty: &str) -> bool {
    arr(o, "/status/conditions")
        .iter()
        .any(|c| s(c, "/type") == ty && s(c, "/status") == "True")
}

fn job_cells(job: &Value, now: Timestamp) -> Vec<Value> {
    let succeeded = i(job, "/status/succeeded");
    let completions = match (
        job.pointer("/spec/completions").and_then(Value::as_i64),
        job.pointer("/spec/parallelism").and_then(Value::as_i64),
    ) {
        (Some(c), _) => format!("{succeeded}/{c}"),
        (None, Some(p)) if p > 1 => format!("{succeeded}/1 of {p}"),
        _ => format!("{succeeded}/1"),
    };
    let start = opt(job, "/status/startTime").and_then(parse_time);
    let end = opt(job, "/status/completionTime").and_then(parse_time);
    let duration = match (start, end) {
        (None, _) => String::new(),
        (Some(s), None) => human_duration(now.duration_since(s).as_secs()),
        (Some(s), Some(e)) => human_duration(e.duration_since(s).as_secs()),
    };
    let deleting = job
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|d| !d.is_null());
    let status = if has_cond(job, "Complete") {
        "Complete"
    } else if has_cond(job, "Failed") {
        "Failed"
    } else if deleting {
        "Terminating"
    } else if has_cond(job, "Suspended") {
        "Suspended"
    } else if has_cond(job, "FailureTarget") {
        "FailureTarget"
    } else if has_cond(job, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    };
    let (c, im) = template(job, "/spec/template/spec");
    vec![
        name(job),
        json!(status),
        json!(completions),
        json!(duration),
        age(job, now),
        json!(c),
        json!(im),
        json!(selector_string(job.pointer("/spec/selector"))),
    ]
}

/// The HPA `Targets` cell for autoscaling/v2 resource metrics (`cpu: 12%/80%`).
fn hpa_targets(o: &Value) -> String {
    let metrics = arr(o, "/spec/metrics");
    if metrics.is_empty() {
        return match o
            .pointer("/spec/targetCPUUtilizationPercentage")
            .and_then(Value::as_i64)
        {
            Some(t) => {
                let cur = o
                    .pointer("/status/currentCPUUtilizationPercentage")
                    .and_then(Value::as_i64)
                    .map_or("<unknown>".to_string(), |c| format!("{c}%"));
                format!("cpu: {cur}/{t}%")
            }
            None => "<none>".into(),
        };
    }
    let current = arr(o, "/status/currentMetrics");
    let parts: Vec<String> = metrics
        .iter()
        .map(|m| {
            let res = s(m, "/resource/name");
            let target = match m
                .pointer("/resource/target/averageUtilization")
                .and_then(Value::as_i64)
            {
                Some(u) => format!("{u}%"),
                None => opt(m, "/resource/target/averageValue")
                    .unwrap_or("<unknown>")
                    .to_string(),
            };
            let cur = current
                .iter()
                .find(|c| s(c, "/resource/name") == res && !res.is_empty())
                .and_then(|c| {
                    c.pointer("/resource/current/averageUtilization")
                        .and_then(Value::as_i64)
                        .map(|u| format!("{u}%"))
                })
                .unwrap_or_else(|| "<unknown>".into());
            if res.is_empty() {
                format!("<unknown>/{target}")
            } else {
                format!("{res}: {cur}/{target}")
            }
        })
        .collect();
    parts.join(", ")
}
