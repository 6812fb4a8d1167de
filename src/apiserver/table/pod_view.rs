//! The Pod row from a partial, typed decode of the stored bytes: only the fields
//! [`super::core::pod_cells`] reads, strings borrowed from the input, everything else
//! skipped. Used by the list Table path, where a full `serde_json::Value` per pod cost most
//! of the time.
//!
//! It reproduces `pod_cells` exactly for well-typed pods; [`PodView::parse`] fails on
//! anything it cannot borrow or whose type differs from the API's (a string with escapes,
//! a number where a string belongs, `null` metadata, duplicate fields), and the caller then
//! renders that pod the old way.
//!
//! Owns: the typed Pod view and its cells. Calls only the shared cell formatting.

use super::format::{human_duration, or_none, parse_time, since};
use jiff::Timestamp;
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny};
use serde_json::{Value, json};

/// A field that counts as present even when `null` (the Value code tests presence with
/// `pointer(..).is_some()`, which is true for `null`); `null` reads as `T::default()`.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Some(Option::<T>::deserialize(d)?.unwrap_or_default()))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct PodView<'a> {
    #[serde(borrow)]
    metadata: MetaView<'a>,
    #[serde(borrow)]
    spec: SpecView<'a>,
    #[serde(borrow)]
    status: StatusView<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct MetaView<'a> {
    name: Option<&'a str>,
    creation_timestamp: Option<&'a str>,
    deletion_timestamp: Option<IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct SpecView<'a> {
    #[serde(borrow)]
    init_containers: Option<Vec<InitSpec<'a>>>,
    containers: Option<Vec<IgnoredAny>>,
    node_name: Option<&'a str>,
    #[serde(borrow)]
    readiness_gates: Option<Vec<Gate<'a>>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct InitSpec<'a> {
    name: Option<&'a str>,
    restart_policy: Option<&'a str>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Gate<'a> {
    condition_type: Option<&'a str>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct StatusView<'a> {
    phase: Option<&'a str>,
    reason: Option<&'a str>,
    #[serde(borrow)]
    conditions: Option<Vec<Condition<'a>>>,
    #[serde(borrow)]
    init_container_statuses: Option<Vec<ContainerStatus<'a>>>,
    #[serde(borrow)]
    container_statuses: Option<Vec<ContainerStatus<'a>>>,
    #[serde(rename = "podIP")]
    pod_ip: Option<&'a str>,
    #[serde(rename = "podIPs", borrow)]
    pod_ips: Option<Vec<PodIp<'a>>>,
    nominated_node_name: Option<&'a str>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Condition<'a> {
    #[serde(rename = "type")]
    ty: Option<&'a str>,
    reason: Option<&'a str>,
    status: Option<&'a str>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PodIp<'a> {
    ip: Option<&'a str>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ContainerStatus<'a> {
    name: Option<&'a str>,
    restart_count: Option<i64>,
    #[serde(borrow)]
    last_state: Option<LastState<'a>>,
    #[serde(borrow)]
    state: Option<State<'a>>,
    started: Option<bool>,
    ready: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LastState<'a> {
    #[serde(borrow)]
    terminated: Option<Finished<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Finished<'a> {
    finished_at: Option<&'a str>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct State<'a> {
    #[serde(borrow, deserialize_with = "present")]
    terminated: Option<Terminated<'a>>,
    #[serde(borrow)]
    waiting: Option<Waiting<'a>>,
    #[serde(deserialize_with = "present")]
    running: Option<IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Terminated<'a> {
    exit_code: Option<i64>,
    reason: Option<&'a str>,
    signal: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Waiting<'a> {
    reason: Option<&'a str>,
}

impl<'a> ContainerStatus<'a> {
    /// `state.terminated`, present even when `null`.
    fn terminated(&self) -> Option<&Terminated<'a>> {
        self.state.as_ref().and_then(|s| s.terminated.as_ref())
    }

    /// A non-empty `state.waiting.reason`.
    fn waiting_reason(&self) -> Option<&'a str> {
        self.state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| non_empty(w.reason))
    }
}

fn slice<T>(v: &Option<Vec<T>>) -> &[T] {
    v.as_deref().unwrap_or_default()
}

/// `""` for absent, like `format::s`.
fn st(v: Option<&str>) -> &str {
    v.unwrap_or_default()
}

/// Absent or empty → `None`, like `format::opt`.
fn non_empty(v: Option<&str>) -> Option<&str> {
    v.filter(|s| !s.is_empty())
}

fn later(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

impl<'a> PodView<'a> {
    /// The view of a stored pod; `Err` when it needs the `Value` path.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    fn cond_true(&self, ty: &str) -> bool {
        slice(&self.status.conditions)
            .iter()
            .any(|c| st(c.ty) == ty && st(c.status) == "True")
    }

    /// The cells of upstream's `printPod`, equal to `pod_cells` of the decoded pod.
    pub fn cells(&self, now: Timestamp) -> Vec<Value> {
        let (spec, status) = (&self.spec, &self.status);
        let init_specs = slice(&spec.init_containers);
        let restartable = |n: &str| {
            init_specs
                .iter()
                .any(|c| st(c.name) == n && st(c.restart_policy) == "Always")
        };
        let total = slice(&spec.containers).len()
            + init_specs
                .iter()
                .filter(|c| st(c.restart_policy) == "Always")
                .count();
        let mut ready = 0usize;
        let mut restarts = 0i64;
        let mut sidecar_restarts = 0i64;
        let mut last_restart: Option<Timestamp> = None;
        let mut sidecar_last_restart: Option<Timestamp> = None;
        let phase = st(status.phase);
        let mut reason = non_empty(status.reason).unwrap_or(phase).to_string();
        if slice(&status.conditions)
            .iter()
            .any(|c| st(c.ty) == "PodScheduled" && st(c.reason) == "SchedulingGated")
        {
            reason = "SchedulingGated".into();
        }
        let finished = |c: &ContainerStatus| {
            c.last_state
                .as_ref()
                .and_then(|l| l.terminated.as_ref())
                .and_then(|t| non_empty(t.finished_at))
                .and_then(parse_time)
        };
        let mut initializing = false;
        for (idx, c) in slice(&status.init_container_statuses).iter().enumerate() {
            let count = c.restart_count.unwrap_or(0);
            restarts += count;
            last_restart = later(last_restart, finished(c));
            let is_sidecar = restartable(st(c.name));
            if is_sidecar {
                sidecar_restarts += count;
                sidecar_last_restart = later(sidecar_last_restart, finished(c));
            }
            let term = c.terminated();
            if term.is_some_and(|t| t.exit_code.unwrap_or(0) == 0) {
                continue;
            }
            if is_sidecar && c.started == Some(true) {
                if c.ready == Some(true) {
                    ready += 1;
                }
                continue;
            }
            if let Some(t) = term {
                let signal = t.signal.unwrap_or(0);
                reason = match non_empty(t.reason) {
                    Some(r) => format!("Init:{r}"),
                    None if signal != 0 => format!("Init:Signal:{signal}"),
                    None => format!("Init:ExitCode:{}", t.exit_code.unwrap_or(0)),
                };
            } else if let Some(w) = c.waiting_reason().filter(|r| *r != "PodInitializing") {
                reason = format!("Init:{w}");
            } else {
                reason = format!("Init:{idx}/{}", init_specs.len());
            }
            initializing = true;
            break;
        }
        if !initializing || self.cond_true("Initialized") {
            restarts = sidecar_restarts;
            last_restart = sidecar_last_restart;
            let mut has_running = false;
            for c in slice(&status.container_statuses).iter().rev() {
                restarts += c.restart_count.unwrap_or(0);
                last_restart = later(last_restart, finished(c));
                if let Some(w) = c.waiting_reason() {
                    reason = w.to_string();
                } else if let Some(t) = c.terminated() {
                    let signal = t.signal.unwrap_or(0);
                    reason = match non_empty(t.reason) {
                        Some(r) => r.to_string(),
                        None if signal != 0 => format!("Signal:{signal}"),
                        None => format!("ExitCode:{}", t.exit_code.unwrap_or(0)),
                    };
                } else if c.ready == Some(true)
                    && c.state.as_ref().is_some_and(|s| s.running.is_some())
                {
                    has_running = true;
                    ready += 1;
                }
            }
            if reason == "Completed" && has_running {
                reason = if self.cond_true("Ready") {
                    "Running".into()
                } else {
                    "NotReady".into()
                };
            }
        }
        if self.metadata.deletion_timestamp.is_some() {
            if st(status.reason) == "NodeLost" {
                reason = "Unknown".into();
            } else if phase != "Succeeded" && phase != "Failed" {
                reason = "Terminating".into();
            }
        }
        let restarts_str = match last_restart {
            Some(t) if restarts != 0 => format!(
                "{restarts} ({} ago)",
                human_duration(now.duration_since(t).as_secs())
            ),
            _ => restarts.to_string(),
        };
        let ip = slice(&status.pod_ips)
            .first()
            .map(|p| st(p.ip))
            .filter(|ip| !ip.is_empty())
            .or_else(|| non_empty(status.pod_ip))
            .unwrap_or("<none>");
        let gates = slice(&spec.readiness_gates);
        let gates_str = if gates.is_empty() {
            "<none>".to_string()
        } else {
            let ok = gates
                .iter()
                .filter(|g| {
                    let ty = st(g.condition_type);
                    slice(&status.conditions)
                        .iter()
                        .find(|c| st(c.ty) == ty)
                        .is_some_and(|c| st(c.status) == "True")
                })
                .count();
            format!("{ok}/{}", gates.len())
        };
        vec![
            json!(st(self.metadata.name)),
            json!(format!("{ready}/{total}")),
            json!(reason),
            json!(restarts_str),
            json!(since(non_empty(self.metadata.creation_timestamp), now)),
            json!(ip),
            json!(or_none(st(spec.node_name).to_string())),
            json!(or_none(st(status.nominated_node_name).to_string())),
            json!(gates_str),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-11-25T16:00:00Z".parse().unwrap()
    }

    /// The row from bytes must equal the row the Value printer renders.
    fn same_row(pod: Value) {
        let bytes = serde_json::to_vec(&pod).unwrap();
        let view = PodView::parse(&bytes).unwrap();
        assert_eq!(
            view.cells(now()),
            super::super::core::pod_cells(&pod, now()),
            "{pod}"
        );
    }

    fn pod(spec: Value, status: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "uid": "u1",
                "creationTimestamp": "2026-11-25T15:57:00Z", "labels": {"app": "web"}},
            "spec": spec,
            "status": status,
        })
    }

    fn containers() -> Value {
        json!([{"name": "a", "image": "nginx"}, {"name": "b", "image": "busybox"}])
    }

    #[test]
    fn running_and_pending_pods_render_the_same_rows() {
        same_row(pod(
            json!({"containers": containers(), "nodeName": "n1"}),
            json!({"phase": "Running", "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [
                    {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": "2026-11-25T15:57:10Z"}}},
                    {"name": "b", "ready": false, "restartCount": 0, "state": {"running": null}}]}),
        ));
        same_row(pod(
            json!({"containers": containers(), "schedulerName": "x"}),
            json!({"phase": "Pending"}),
        ));
        same_row(pod(json!({"containers": containers()}), json!({})));
        same_row(json!({"metadata": {"name": "bare"}}));
        same_row(pod(
            json!({"containers": containers()}),
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
        ));
    }

    #[test]
    fn restarts_and_terminated_containers_render_the_same_rows() {
        same_row(pod(
            json!({"containers": containers(), "nodeName": "n1"}),
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [
                    {"name": "a", "ready": false, "restartCount": 4,
                        "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-11-25T15:58:30Z"}},
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
                    {"name": "b", "ready": false, "restartCount": 2,
                        "lastState": {"terminated": {"exitCode": 0, "finishedAt": "2026-11-25T15:59:00Z"}},
                        "state": {"terminated": {"exitCode": 137, "signal": 9}}}]}),
        ));
        for term in [
            json!({"exitCode": 0, "reason": "Completed"}),
            json!({"exitCode": 2}),
            json!({"exitCode": 0, "signal": 15}),
            json!(null),
        ] {
            same_row(pod(
                json!({"containers": containers()}),
                json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                    "containerStatuses": [
                        {"name": "a", "ready": true, "restartCount": 0, "state": {"terminated": term}},
                        {"name": "b", "ready": true, "restartCount": 0, "state": {"running": {}}}]}),
            ));
        }
    }

    #[test]
    fn init_containers_and_sidecars_render_the_same_rows() {
        let spec = json!({"containers": containers(), "initContainers": [
            {"name": "side", "image": "x", "restartPolicy": "Always"},
            {"name": "init", "image": "y"}]});
        for init_statuses in [
            json!([{"name": "side", "started": true, "ready": true, "restartCount": 3,
                    "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-11-25T15:50:00Z"}},
                    "state": {"running": {}}},
                   {"name": "init", "restartCount": 1, "state": {"waiting": {"reason": "PodInitializing"}}}]),
            json!([{"name": "side", "started": false, "restartCount": 0, "state": {"waiting": {"reason": "ErrImagePull"}}},
                   {"name": "init", "restartCount": 0, "state": {"waiting": {}}}]),
            json!([{"name": "side", "started": true, "ready": false, "restartCount": 0, "state": {"running": {}}},
                   {"name": "init", "restartCount": 2, "state": {"terminated": {"exitCode": 3, "reason": "Error"}}}]),
            json!([{"name": "side", "started": true, "ready": true, "state": {"running": {}}},
                   {"name": "init", "state": {"terminated": {"exitCode": 0, "signal": 0}}}]),
            json!([{"name": "side", "state": {"terminated": {"exitCode": 1, "signal": 9}}}]),
        ] {
            for conditions in [
                json!([{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}]),
                json!([{"type": "Initialized", "status": "False"}]),
            ] {
                same_row(pod(
                    spec.clone(),
                    json!({"phase": "Pending", "conditions": conditions,
                        "initContainerStatuses": init_statuses,
                        "containerStatuses": [{"name": "a", "ready": true, "restartCount": 1,
                            "state": {"running": {}}}]}),
                ));
            }
        }
    }

    #[test]
    fn deletion_nominated_node_and_readiness_gates_render_the_same_rows() {
        for (reason, phase) in [
            (json!(null), "Running"),
            (json!("NodeLost"), "Running"),
            (json!(null), "Succeeded"),
        ] {
            let mut p = pod(
                json!({"containers": containers(), "nodeName": "n2",
                    "readinessGates": [{"conditionType": "example.com/ready"}, {"conditionType": "other"}]}),
                json!({"phase": phase, "reason": reason, "nominatedNodeName": "n3",
                    "podIPs": [{"ip": ""}], "podIP": "10.0.0.9",
                    "conditions": [{"type": "example.com/ready", "status": "True"},
                                   {"type": "other", "status": "False"}]}),
            );
            p["metadata"]["deletionTimestamp"] = json!("2026-11-25T15:59:00Z");
            same_row(p.clone());
            p["metadata"]["deletionTimestamp"] = json!(null);
            same_row(p);
        }
    }

    #[test]
    fn pods_the_view_cannot_borrow_are_refused_for_the_value_path() {
        assert!(PodView::parse(br#"{"metadata":{"name":"a\"b"}}"#).is_err());
        assert!(PodView::parse(br#"{"metadata":{"name":5}}"#).is_err());
        assert!(PodView::parse(br#"{"metadata":null}"#).is_err());
    }
}
