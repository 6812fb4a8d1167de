//! Pod status as the kubelet reports it — phase, conditions, container statuses, IPs,
//! start time — computed from the pod worker's view of its containers.
//!
//! Owns: the phase rules and condition bookkeeping (pure). May call: nothing.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::HashMap;
use std::net::IpAddr;

/// State of one container as the worker tracks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CState {
    /// Not running and (re)start wanted; `reason` is what status shows.
    Waiting {
        reason: String,
        message: String,
    },
    Running {
        started_at: jiff::Timestamp,
    },
    /// Exited and not going to be restarted.
    Terminated {
        exit_code: i32,
        reason: String,
        started_at: jiff::Timestamp,
        finished_at: jiff::Timestamp,
    },
}

/// What status needs of one container.
#[derive(Debug, Clone)]
pub struct CtrView {
    pub name: String,
    pub init: bool,
    /// An init container with `restartPolicy: Always` (runs alongside the containers).
    pub sidecar: bool,
    pub image: String,
    pub image_id: String,
    pub container_id: Option<String>,
    pub state: CState,
    pub last_state: Option<CState>,
    pub restarts: i32,
    pub started_once: bool,
    /// Readiness probe verdict of the current run; `None` without a readiness probe.
    pub probe_ready: Option<bool>,
    /// False while a startup probe has not passed.
    pub startup_done: bool,
}

impl CtrView {
    pub fn new(name: &str, init: bool, image: &str) -> Self {
        CtrView {
            name: name.into(),
            init,
            sidecar: false,
            image: image.into(),
            image_id: String::new(),
            container_id: None,
            state: CState::Waiting {
                reason: "ContainerCreating".into(),
                message: String::new(),
            },
            last_state: None,
            restarts: 0,
            started_once: false,
            probe_ready: None,
            startup_done: true,
        }
    }
}

/// Remembers what must stay stable across computations: start time, condition transition
/// times, the (sticky) terminal phase.
#[derive(Debug, Clone)]
pub struct Tracker {
    start_time: jiff::Timestamp,
    conditions: HashMap<&'static str, (bool, jiff::Timestamp)>,
    phase: String,
    /// The pod was stopped on request (deletion).
    pub terminated: bool,
}

/// True once the pod reached Succeeded or Failed.
pub fn is_finished(t: &Tracker) -> bool {
    t.phase == "Succeeded" || t.phase == "Failed"
}

fn state_of(s: &CState, id: Option<&String>) -> ContainerState {
    let cid = id.map(|i| format!("containerd://{i}"));
    match s {
        CState::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: Some(message.clone()).filter(|m| !m.is_empty()),
            }),
            ..Default::default()
        },
        CState::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(Time(*started_at)),
            }),
            ..Default::default()
        },
        CState::Terminated {
            exit_code,
            reason,
            started_at,
            finished_at,
        } => ContainerState {
            terminated: Some(ContainerStateTerminated {
                container_id: cid,
                exit_code: *exit_code,
                reason: Some(reason.clone()),
                started_at: Some(Time(*started_at)),
                finished_at: Some(Time(*finished_at)),
                ..Default::default()
            }),
            ..Default::default()
        },
    }
}

impl Tracker {
    pub fn new(start_time: jiff::Timestamp) -> Self {
        Tracker {
            start_time,
            conditions: HashMap::new(),
            phase: "Pending".into(),
            terminated: false,
        }
    }

    fn condition(
        &mut self,
        kind: &'static str,
        ok: bool,
        reason: Option<&str>,
        message: Option<&str>,
    ) -> PodCondition {
        let now = jiff::Timestamp::now();
        let entry = self.conditions.entry(kind).or_insert((ok, now));
        if entry.0 != ok {
            *entry = (ok, now);
        }
        PodCondition {
            type_: kind.into(),
            status: if ok { "True" } else { "False" }.into(),
            last_transition_time: Some(Time(entry.1)),
            reason: if ok { None } else { reason.map(str::to_string) },
            message: if ok {
                None
            } else {
                message.map(str::to_string)
            },
            ..Default::default()
        }
    }

    /// The pod status for the current container views.
    #[allow(clippy::too_many_arguments)]
    pub fn compute(
        &mut self,
        _pod: &Pod,
        views: &[&CtrView],
        sandbox_ready: bool,
        sandbox_error: Option<&str>,
        ip: Option<IpAddr>,
        host_ip: IpAddr,
        restart_policy: &str,
    ) -> PodStatus {
        let inits: Vec<&&CtrView> = views.iter().filter(|v| v.init).collect();
        let regular: Vec<&&CtrView> = views.iter().filter(|v| !v.init).collect();
        let sidecars: Vec<&&CtrView> = inits.iter().copied().filter(|v| v.sidecar).collect();
        // Sidecars count once started (and past their startup probe while running).
        let initialized = inits.iter().all(|v| {
            if v.sidecar {
                v.started_once && (v.startup_done || !matches!(v.state, CState::Running { .. }))
            } else {
                matches!(v.state, CState::Terminated { exit_code: 0, .. })
            }
        });
        let init_failed = inits.iter().any(|v| {
            !v.sidecar && matches!(v.state, CState::Terminated { exit_code, .. } if exit_code != 0)
        });
        let runs_ready = |v: &&&CtrView| {
            matches!(v.state, CState::Running { .. }) && v.probe_ready != Some(false)
        };
        let all_running = !regular.is_empty()
            && regular.iter().all(runs_ready)
            && sidecars.iter().all(runs_ready);
        let all_done = !regular.is_empty()
            && regular
                .iter()
                .all(|v| matches!(v.state, CState::Terminated { .. }));

        let phase = if is_finished(self) {
            self.phase.clone()
        } else if init_failed && restart_policy == "Never" {
            "Failed".to_string()
        } else if !sandbox_ready || !initialized {
            "Pending".to_string()
        } else if all_done {
            let ok = regular
                .iter()
                .all(|v| matches!(v.state, CState::Terminated { exit_code: 0, .. }));
            if ok { "Succeeded" } else { "Failed" }.to_string()
        } else if regular.iter().any(|v| !v.started_once) {
            "Pending".to_string()
        } else {
            "Running".to_string()
        };
        self.phase = phase.clone();
        let finished = is_finished(self);

        let not_ready_reason = if finished {
            "PodCompleted"
        } else {
            "ContainersNotReady"
        };
        let conditions = vec![
            self.condition(
                "PodReadyToStartContainers",
                sandbox_ready,
                Some("SandboxNotReady"),
                sandbox_error,
            ),
            self.condition(
                "Initialized",
                initialized,
                Some("ContainersNotInitialized"),
                None,
            ),
            self.condition(
                "Ready",
                all_running && !finished,
                Some(not_ready_reason),
                None,
            ),
            self.condition(
                "ContainersReady",
                all_running && !finished,
                Some(not_ready_reason),
                None,
            ),
            self.condition("PodScheduled", true, None, None),
        ];

        let to_status = |v: &CtrView| {
            let mut state = v.state.clone();
            if let CState::Waiting { reason, message } = &state
                && reason == "ContainerCreating"
                && !v.init
                && !initialized
            {
                state = CState::Waiting {
                    reason: "PodInitializing".into(),
                    message: message.clone(),
                };
            }
            let running = matches!(state, CState::Running { .. });
            ContainerStatus {
                name: v.name.clone(),
                image: v.image.clone(),
                image_id: v.image_id.clone(),
                container_id: v.container_id.as_ref().map(|i| format!("containerd://{i}")),
                ready: running && (!v.init || v.sidecar) && v.probe_ready != Some(false),
                restart_count: v.restarts,
                started: Some(running && v.startup_done),
                state: Some(state_of(&state, v.container_id.as_ref())),
                last_state: Some(
                    v.last_state
                        .as_ref()
                        .map(|s| state_of(s, v.container_id.as_ref()))
                        .unwrap_or_default(),
                ),
                ..Default::default()
            }
        };
        PodStatus {
            phase: Some(phase),
            conditions: Some(conditions),
            container_statuses: Some(regular.iter().map(|v| to_status(v)).collect()),
            init_container_statuses: if inits.is_empty() {
                None
            } else {
                Some(inits.iter().map(|v| to_status(v)).collect())
            },
            pod_ip: ip.map(|i| i.to_string()),
            pod_ips: ip.map(|i| vec![PodIP { ip: i.to_string() }]),
            host_ip: Some(host_ip.to_string()),
            host_ips: Some(vec![HostIP {
                ip: host_ip.to_string(),
            }]),
            start_time: Some(Time(self.start_time)),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(name: &str, init: bool, state: CState) -> CtrView {
        let mut v = CtrView::new(name, init, "busybox");
        v.started_once = !matches!(state, CState::Waiting { .. });
        v.state = state;
        v
    }

    fn term(code: i32) -> CState {
        let t = jiff::Timestamp::now();
        CState::Terminated {
            exit_code: code,
            reason: "x".into(),
            started_at: t,
            finished_at: t,
        }
    }

    fn running() -> CState {
        CState::Running {
            started_at: jiff::Timestamp::now(),
        }
    }

    fn phase(views: &[CtrView], policy: &str) -> (String, PodStatus) {
        let mut t = Tracker::new(jiff::Timestamp::now());
        let refs: Vec<&CtrView> = views.iter().collect();
        let st = t.compute(
            &Pod::default(),
            &refs,
            true,
            None,
            None,
            "10.0.0.1".parse().unwrap(),
            policy,
        );
        (st.phase.clone().unwrap(), st)
    }

    #[test]
    fn phases_follow_container_states() {
        let waiting = CtrView::new("a", false, "x");
        assert_eq!(phase(&[waiting], "Always").0, "Pending");
        assert_eq!(phase(&[view("a", false, running())], "Always").0, "Running");
        assert_eq!(phase(&[view("a", false, term(0))], "Never").0, "Succeeded");
        assert_eq!(
            phase(
                &[view("a", false, term(0)), view("b", false, term(2))],
                "Never"
            )
            .0,
            "Failed"
        );
        assert_eq!(
            phase(
                &[view("i", true, term(1)), CtrView::new("a", false, "x")],
                "Never"
            )
            .0,
            "Failed"
        );
        let (p, st) = phase(
            &[view("i", true, running()), CtrView::new("a", false, "x")],
            "Always",
        );
        assert_eq!(p, "Pending");
        let c = &st.container_statuses.unwrap()[0];
        assert_eq!(
            c.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("PodInitializing")
        );
    }

    #[test]
    fn ready_conditions_are_true_only_when_every_container_runs() {
        let (_, st) = phase(
            &[view("a", false, running()), view("b", false, running())],
            "Always",
        );
        let ready = st
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
        let (_, st) = phase(
            &[view("a", false, running()), CtrView::new("b", false, "x")],
            "Always",
        );
        let ready = st
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "False");
        assert!(st.container_statuses.unwrap()[0].ready);
    }

    #[test]
    fn terminal_phase_is_sticky() {
        let mut t = Tracker::new(jiff::Timestamp::now());
        let done = view("a", false, term(0));
        t.compute(
            &Pod::default(),
            &[&done],
            true,
            None,
            None,
            "10.0.0.1".parse().unwrap(),
            "Never",
        );
        let again = view("a", false, running());
        let st = t.compute(
            &Pod::default(),
            &[&again],
            true,
            None,
            None,
            "10.0.0.1".parse().unwrap(),
            "Never",
        );
        assert_eq!(st.phase.as_deref(), Some("Succeeded"));
    }
}
