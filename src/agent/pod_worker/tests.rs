//! Pod-worker logic against the fake runtime and network.

use super::*;
use crate::agent::network::FakeNetwork;
use crate::agent::runtime::{FakeCall, FakeRuntime};

struct Env {
    rt: Arc<FakeRuntime>,
    events: Arc<crate::agent::events::MemoryEvents>,
    net: Arc<FakeNetwork>,
    deps: Deps,
    _dir: tempfile::TempDir,
}

fn env(backoff: Duration) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(FakeRuntime::new());
    let net = Arc::new(FakeNetwork::default());
    let events = Arc::new(crate::agent::events::MemoryEvents::default());
    let config = Arc::new(PodConfig {
        node_name: "n1".into(),
        host_ip: "192.168.0.2".parse().unwrap(),
        pods_dir: dir.path().join("pods"),
        log_dir: dir.path().join("logs"),
        cgroup_root: "/k3rs".into(),
        cluster_dns: None,
        cluster_domain: "cluster.local".into(),
        backoff_initial: backoff,
        backoff_max: backoff * 4,
    });
    Env {
        deps: Deps {
            sources: None,
            runtime: rt.clone(),
            network: net.clone(),
            config,
            events: events.clone(),
        },
        events,
        rt,
        net,
        _dir: dir,
    }
}

fn pod(policy: &str, init: bool) -> Arc<Pod> {
    let mut spec = serde_json::json!({
        "restartPolicy": policy,
        "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "app", "image": "busybox", "command": ["sleep", "1d"]}]
    });
    if init {
        spec["initContainers"] = serde_json::json!([
            {"name": "init1", "image": "busybox", "command": ["true"]},
            {"name": "init2", "image": "busybox", "command": ["true"]}
        ]);
    }
    Arc::new(
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "0000-1111"},
            "spec": spec
        }))
        .unwrap(),
    )
}

async fn wait_status(
    h: &mut PodWorkerHandle,
    what: &str,
    f: impl Fn(&PodStatus) -> bool,
) -> PodStatus {
    let mut rx = h.status.clone();
    match tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|s| f(s))).await {
        Ok(r) => r.unwrap().clone(),
        Err(_) => panic!("timed out waiting for {what}: {:?}", h.status.borrow()),
    }
}

fn ctr(st: &PodStatus, name: &str) -> k8s_openapi::api::core::v1::ContainerStatus {
    st.init_container_statuses
        .iter()
        .flatten()
        .chain(st.container_statuses.iter().flatten())
        .find(|c| c.name == name)
        .unwrap()
        .clone()
}

fn running(st: &PodStatus, name: &str) -> bool {
    st.init_container_statuses
        .iter()
        .flatten()
        .chain(st.container_statuses.iter().flatten())
        .any(|c| c.name == name && c.state.as_ref().is_some_and(|s| s.running.is_some()))
}

#[tokio::test]
async fn init_containers_run_in_order_before_the_app_container() {
    let e = env(Duration::from_secs(1));
    let mut h = spawn(pod("Always", true), e.deps.clone());
    let st = wait_status(&mut h, "init1 running", |s| running(s, "init1")).await;
    assert_eq!(st.phase.as_deref(), Some("Pending"));
    assert!(!e.rt.calls().iter().any(
        |c| matches!(c, FakeCall::Start(id) if id.starts_with("init2") || id.starts_with("app"))
    ));
    e.rt.exit(&pod::container_id("0000-1111", "init1", 0), 0);
    wait_status(&mut h, "init2 running", |s| running(s, "init2")).await;
    assert!(
        !e.rt
            .calls()
            .iter()
            .any(|c| matches!(c, FakeCall::Start(id) if id.starts_with("app")))
    );
    e.rt.exit(&pod::container_id("0000-1111", "init2", 0), 0);
    let st = wait_status(&mut h, "pod running", |s| {
        s.phase.as_deref() == Some("Running")
    })
    .await;
    assert_eq!(st.pod_ip.as_deref(), Some("10.0.0.2"));
    assert!(ctr(&st, "app").ready);
    let ready = st
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True");
}

#[tokio::test]
async fn crashing_container_is_restarted_after_a_growing_back_off() {
    let e = env(Duration::from_millis(300));
    let mut h = spawn(pod("Always", false), e.deps.clone());
    wait_status(&mut h, "app running", |s| running(s, "app")).await;
    let first = std::time::Instant::now();
    e.rt.exit(&pod::container_id("0000-1111", "app", 0), 1);
    let st = wait_status(&mut h, "back-off", |s| {
        ctr(s, "app")
            .state
            .and_then(|s| s.waiting)
            .and_then(|w| w.reason)
            .as_deref()
            == Some("CrashLoopBackOff")
    })
    .await;
    assert_eq!(
        ctr(&st, "app")
            .last_state
            .unwrap()
            .terminated
            .unwrap()
            .exit_code,
        1
    );
    let st = wait_status(&mut h, "restart 1", |s| {
        running(s, "app") && ctr(s, "app").restart_count == 1
    })
    .await;
    let d1 = first.elapsed();
    assert!(d1 >= Duration::from_millis(300), "{d1:?}");
    assert!(ctr(&st, "app").container_id.unwrap().ends_with("-1"));
    let second = std::time::Instant::now();
    e.rt.exit(&pod::container_id("0000-1111", "app", 1), 2);
    wait_status(&mut h, "restart 2", |s| {
        running(s, "app") && ctr(s, "app").restart_count == 2
    })
    .await;
    let d2 = second.elapsed();
    assert!(
        d2 >= Duration::from_millis(600),
        "second back-off doubles: {d2:?}"
    );
    // The replaced attempt's container is removed.
    assert!(
        e.rt.calls()
            .contains(&FakeCall::Remove(pod::container_id("0000-1111", "app", 0)))
    );
}

#[tokio::test]
async fn completed_pod_with_restart_never_succeeds_and_releases_its_ip() {
    let e = env(Duration::from_secs(1));
    let mut h = spawn(pod("Never", false), e.deps.clone());
    wait_status(&mut h, "app running", |s| running(s, "app")).await;
    e.rt.exit(&pod::container_id("0000-1111", "app", 0), 0);
    let st = wait_status(&mut h, "succeeded", |s| {
        s.phase.as_deref() == Some("Succeeded")
    })
    .await;
    assert_eq!(
        ctr(&st, "app")
            .state
            .unwrap()
            .terminated
            .unwrap()
            .reason
            .as_deref(),
        Some("Completed")
    );
    for _ in 0..100 {
        if e.net.active.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(e.net.active.lock().unwrap().is_empty());
}

#[tokio::test]
async fn terminate_sends_sigterm_then_removes_everything() {
    let e = env(Duration::from_secs(1));
    let mut h = spawn(pod("Always", false), e.deps.clone());
    wait_status(&mut h, "app running", |s| running(s, "app")).await;
    h.terminate(Some(Duration::from_secs(5)));
    tokio::time::timeout(Duration::from_secs(10), h.terminated())
        .await
        .unwrap();
    let id = pod::container_id("0000-1111", "app", 0);
    assert!(e.rt.calls().contains(&FakeCall::Kill(id.clone(), 15)));
    assert!(e.rt.calls().contains(&FakeCall::Remove(id)));
    assert!(e.rt.container_ids().is_empty());
    assert!(e.net.active.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_new_worker_adopts_running_containers_instead_of_recreating_them() {
    let e = env(Duration::from_secs(1));
    let mut h = spawn(pod("Always", false), e.deps.clone());
    wait_status(&mut h, "app running", |s| running(s, "app")).await;
    h.detach().await;
    let creates =
        e.rt.calls()
            .iter()
            .filter(|c| matches!(c, FakeCall::Create(_)))
            .count();
    let mut h2 = spawn(pod("Always", false), e.deps.clone());
    let st = wait_status(&mut h2, "adopted", |s| {
        s.phase.as_deref() == Some("Running")
    })
    .await;
    assert_eq!(
        e.rt.calls()
            .iter()
            .filter(|c| matches!(c, FakeCall::Create(_)))
            .count(),
        creates
    );
    assert!(ctr(&st, "app").container_id.unwrap().ends_with("-0"));
    // And it still notices the adopted container's exit.
    e.rt.exit(&pod::container_id("0000-1111", "app", 0), 3);
    wait_status(&mut h2, "restart after adoption", |s| {
        ctr(s, "app").restart_count == 1 && running(s, "app")
    })
    .await;
}

fn probed_pod(kind: &str, threshold: i32) -> Arc<Pod> {
    let mut p = (*pod("Always", false)).clone();
    let mut c = serde_json::to_value(&p.spec.as_ref().unwrap().containers[0]).unwrap();
    c[kind] = serde_json::json!({
        "exec": {"command": ["check"]}, "periodSeconds": 1, "failureThreshold": threshold
    });
    p.spec.as_mut().unwrap().containers[0] = serde_json::from_value(c).unwrap();
    Arc::new(p)
}

#[tokio::test]
async fn readiness_probe_gates_ready_until_it_passes() {
    let e = env(Duration::from_secs(1));
    *e.rt.exec_exit_code.lock().unwrap() = 1;
    let mut h = spawn(probed_pod("readinessProbe", 1), e.deps.clone());
    let st = wait_status(&mut h, "running", |s| running(s, "app")).await;
    assert!(!ctr(&st, "app").ready);
    // Failing checks keep it unready; a passing one makes it ready.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(!ctr(&h.status.borrow(), "app").ready);
    *e.rt.exec_exit_code.lock().unwrap() = 0;
    let st = wait_status(&mut h, "ready", |s| {
        running(s, "app") && ctr(s, "app").ready
    })
    .await;
    let ready = st
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True");
    assert!(e.rt.calls().contains(&FakeCall::Exec(
        pod::container_id("0000-1111", "app", 0),
        vec!["check".into()]
    )));
}

async fn wait_restarted(h: &mut PodWorkerHandle) -> PodStatus {
    wait_status(h, "restarted after liveness failure", |s| {
        s.container_statuses
            .iter()
            .flatten()
            .any(|c| c.restart_count >= 1)
    })
    .await
}

/// The preStop hook `bye` of the first run of `app` ran before its SIGTERM.
fn assert_bye_ran_before_sigterm(calls: &[FakeCall]) {
    let id = pod::container_id("0000-1111", "app", 0);
    let hooked = calls
        .iter()
        .position(|c| *c == FakeCall::Exec(id.clone(), vec!["bye".into()]));
    let termed = calls
        .iter()
        .position(|c| *c == FakeCall::Kill(id.clone(), 15));
    assert!(hooked.unwrap() < termed.unwrap(), "{calls:?}");
}

#[tokio::test]
async fn failed_liveness_probe_restarts_the_container() {
    let e = env(Duration::from_millis(100));
    *e.rt.exec_exit_code.lock().unwrap() = 1;
    let mut h = spawn(probed_pod("livenessProbe", 2), e.deps.clone());
    let st = wait_restarted(&mut h).await;
    let last = ctr(&st, "app").last_state.unwrap().terminated.unwrap();
    assert_eq!(last.exit_code, 128 + 15, "killed with SIGTERM first");
    let events = e.events.all();
    assert!(
        events
            .iter()
            .any(|(r, m)| r == "Unhealthy" && m.starts_with("Liveness probe failed")),
        "{events:?}"
    );
    assert!(
        events.iter().any(|(r, m)| r == "Killing"
            && m == "Container app failed liveness probe, will be restarted"),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_container_killed_by_its_liveness_probe_runs_pre_stop_before_sigterm() {
    let e = env(Duration::from_millis(100));
    *e.rt.exec_exit_code.lock().unwrap() = 1;
    let mut p = (*probed_pod("livenessProbe", 1)).clone();
    let mut c = serde_json::to_value(&p.spec.as_ref().unwrap().containers[0]).unwrap();
    c["lifecycle"] = serde_json::json!({"preStop": {"exec": {"command": ["bye"]}}});
    p.spec.as_mut().unwrap().containers[0] = serde_json::from_value(c).unwrap();
    let mut h = spawn(Arc::new(p), e.deps.clone());
    wait_restarted(&mut h).await;
    assert_bye_ran_before_sigterm(&e.rt.calls());
}

#[tokio::test]
async fn missing_image_is_reported_as_a_waiting_reason() {
    let e = env(Duration::from_secs(1));
    e.rt.missing_images.lock().unwrap().push("busybox".into());
    let mut h = spawn(pod("Always", false), e.deps.clone());
    let st = wait_status(&mut h, "image error", |s| {
        s.container_statuses.as_ref().is_some_and(|_| {
            ctr(s, "app")
                .state
                .and_then(|s| s.waiting)
                .and_then(|w| w.reason)
                .as_deref()
                == Some("ErrImagePull")
        })
    })
    .await;
    assert_eq!(st.phase.as_deref(), Some("Pending"));
}

fn single(name: &str, image: &str, policy: Option<&str>, secret: Option<&str>) -> Arc<Pod> {
    let mut c = serde_json::json!({"name": "app", "image": image, "command": ["sleep", "1d"]});
    if let Some(p) = policy {
        c["imagePullPolicy"] = p.into();
    }
    let mut spec = serde_json::json!({"terminationGracePeriodSeconds": 1, "containers": [c]});
    if let Some(s) = secret {
        spec["imagePullSecrets"] = serde_json::json!([{"name": s}]);
    }
    Arc::new(
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
            "spec": spec
        }))
        .unwrap(),
    )
}

fn waiting_reason(s: &PodStatus) -> Option<String> {
    s.container_statuses.as_ref()?;
    ctr(s, "app").state?.waiting?.reason
}

#[tokio::test]
async fn failed_pulls_go_from_err_image_pull_to_image_pull_backoff_with_events() {
    let e = env(Duration::from_secs(3));
    e.rt.missing_images.lock().unwrap().push("busybox".into());
    let mut h = spawn(single("p", "busybox", None, None), e.deps.clone());
    wait_status(&mut h, "ErrImagePull", |s| {
        waiting_reason(s).as_deref() == Some("ErrImagePull")
    })
    .await;
    let st = wait_status(&mut h, "ImagePullBackOff", |s| {
        waiting_reason(s).as_deref() == Some("ImagePullBackOff")
    })
    .await;
    let w = ctr(&st, "app").state.unwrap().waiting.unwrap();
    assert_eq!(
        w.message.as_deref(),
        Some("Back-off pulling image \"busybox\"")
    );
    let ev = e.events.all();
    let reasons: Vec<&str> = ev.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(
        reasons,
        ["Pulling", "Failed", "Failed", "BackOff", "Failed"],
        "{ev:?}"
    );
    assert_eq!(ev[0].1, "Pulling image \"busybox\"");
    assert!(
        ev[1].1.starts_with("Failed to pull image \"busybox\": ")
            && ev[1].1.contains("fake: not found"),
        "{ev:?}"
    );
    assert_eq!(ev[2].1, "Error: ErrImagePull");
    assert_eq!(ev[4].1, "Error: ImagePullBackOff");
}

#[tokio::test]
async fn never_policy_without_the_image_is_err_image_never_pull_and_never_pulls() {
    let e = env(Duration::from_secs(3));
    e.rt.missing_images.lock().unwrap().push("app:1".into());
    let mut h = spawn(single("p", "app:1", Some("Never"), None), e.deps.clone());
    let st = wait_status(&mut h, "ErrImageNeverPull", |s| {
        waiting_reason(s).as_deref() == Some("ErrImageNeverPull")
    })
    .await;
    let w = ctr(&st, "app").state.unwrap().waiting.unwrap();
    assert_eq!(
        w.message.as_deref(),
        Some("Container image \"app:1\" is not present with pull policy of Never")
    );
    assert!(
        !e.rt
            .calls()
            .iter()
            .any(|c| matches!(c, FakeCall::PullImage(..)))
    );
}

#[tokio::test]
async fn if_not_present_uses_a_local_image_and_always_pulls_with_the_pod_secrets() {
    let e = env(Duration::from_secs(3));
    let mut sources = crate::agent::sources::StaticSources::default();
    sources.secrets.insert(
        ("default".into(), "regcred".into()),
        std::collections::BTreeMap::from([(
            ".dockerconfigjson".to_string(),
            br#"{"auths":{"r.example:5000":{"username":"u","password":"p"}}}"#.to_vec(),
        )]),
    );
    let mut deps = e.deps.clone();
    deps.sources = Some(Arc::new(sources));
    let mut a = spawn(single("a", "app:1", None, None), deps.clone());
    wait_status(&mut a, "a running", |s| {
        s.container_statuses.is_some() && ctr(s, "app").state.unwrap().running.is_some()
    })
    .await;
    assert!(
        !e.rt
            .calls()
            .iter()
            .any(|c| matches!(c, FakeCall::PullImage(..)))
    );
    assert!(e.events.all().contains(&(
        "Pulled".into(),
        "Container image \"app:1\" already present on machine".into()
    )));
    let mut b = spawn(
        single("b", "r.example:5000/app:1", Some("Always"), Some("regcred")),
        deps,
    );
    let st = wait_status(&mut b, "b running", |s| {
        s.container_statuses.is_some() && ctr(s, "app").state.unwrap().running.is_some()
    })
    .await;
    assert!(e.rt.calls().contains(&FakeCall::PullImage(
        "r.example:5000/app:1".into(),
        vec!["r.example:5000".into()]
    )));
    assert_eq!(ctr(&st, "app").image_id, "r.example:5000/app:1@sha256:fake");
    assert!(e.events.all().iter().any(|(r, m)| r == "Pulled"
        && m.starts_with("Successfully pulled image \"r.example:5000/app:1\" in ")
        && m.ends_with("Image size: 1234 bytes.")));
}

fn hooked_pod(lifecycle: serde_json::Value) -> Arc<Pod> {
    Arc::new(
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "0000-1111"},
            "spec": {"restartPolicy": "Always", "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "app", "image": "busybox", "command": ["sleep", "1d"],
                    "lifecycle": lifecycle}]}
        }))
        .unwrap(),
    )
}

#[tokio::test]
async fn post_start_hook_runs_in_the_started_container() {
    let e = env(Duration::from_secs(1));
    let mut h = spawn(
        hooked_pod(serde_json::json!({"postStart": {"exec": {"command": ["hello"]}}})),
        e.deps.clone(),
    );
    wait_status(&mut h, "app running", |s| running(s, "app")).await;
    let id = pod::container_id("0000-1111", "app", 0);
    let calls = e.rt.calls();
    let started = calls.iter().position(|c| *c == FakeCall::Start(id.clone()));
    let hooked = calls
        .iter()
        .position(|c| *c == FakeCall::Exec(id.clone(), vec!["hello".into()]));
    assert!(started.unwrap() < hooked.unwrap());
    assert!(!calls.iter().any(|c| matches!(c, FakeCall::Kill(..))));
    assert!(!e.events.all().iter().any(|(r, _)| r.contains("Hook")));
}

#[tokio::test]
async fn failed_post_start_hook_kills_the_container_with_an_event() {
    let e = env(Duration::from_millis(100));
    *e.rt.exec_exit_code.lock().unwrap() = 1;
    let mut h = spawn(
        hooked_pod(serde_json::json!({"postStart": {"exec": {"command": ["fail"]}}})),
        e.deps.clone(),
    );
    let st = wait_status(&mut h, "restarted after the hook failed", |s| {
        s.container_statuses
            .iter()
            .flatten()
            .any(|c| c.restart_count >= 1)
    })
    .await;
    let last = ctr(&st, "app").last_state.unwrap().terminated.unwrap();
    assert_eq!(last.exit_code, 128 + 9);
    let id = pod::container_id("0000-1111", "app", 0);
    assert!(e.rt.calls().contains(&FakeCall::Kill(id, 9)));
    assert!(
        e.events
            .all()
            .iter()
            .any(|(r, m)| r == "FailedPostStartHook" && m.contains("exit code 1"))
    );
}

#[tokio::test]
async fn pre_stop_hook_runs_before_sigterm_and_failures_are_events() {
    let e = env(Duration::from_secs(1));
    let mut h = spawn(
        hooked_pod(serde_json::json!({"preStop": {"exec": {"command": ["bye"]}}})),
        e.deps.clone(),
    );
    wait_status(&mut h, "app running", |s| running(s, "app")).await;
    *e.rt.exec_exit_code.lock().unwrap() = 2;
    h.terminate(None);
    tokio::time::timeout(Duration::from_secs(10), h.terminated())
        .await
        .unwrap();
    assert_bye_ran_before_sigterm(&e.rt.calls());
    assert!(e.events.all().iter().any(|(r, _)| r == "FailedPreStopHook"));
    assert!(e.rt.container_ids().is_empty());
}

#[tokio::test]
async fn pre_stop_sleep_is_cut_short_by_the_grace_period() {
    let e = env(Duration::from_secs(1));
    let mut h = spawn(
        hooked_pod(serde_json::json!({"preStop": {"sleep": {"seconds": 30}}})),
        e.deps.clone(),
    );
    wait_status(&mut h, "app running", |s| running(s, "app")).await;
    let t0 = Instant::now();
    h.terminate(Some(Duration::from_secs(1)));
    tokio::time::timeout(Duration::from_secs(10), h.terminated())
        .await
        .unwrap();
    let took = t0.elapsed();
    assert!(took >= Duration::from_secs(1), "the sleep ran: {took:?}");
    assert!(took < Duration::from_secs(5), "bounded by grace: {took:?}");
    let id = pod::container_id("0000-1111", "app", 0);
    assert!(e.rt.calls().contains(&FakeCall::Kill(id, 15)));
}

#[tokio::test]
async fn an_oom_killed_exit_is_reported_as_oom_killed() {
    let e = env(Duration::from_secs(1));
    let mut h = spawn(pod("Never", false), e.deps.clone());
    wait_status(&mut h, "app running", |s| running(s, "app")).await;
    let id = pod::container_id("0000-1111", "app", 0);
    e.rt.oom.lock().unwrap().push(id.clone());
    e.rt.exit(&id, 137);
    let st = wait_status(&mut h, "terminated", |s| {
        ctr(s, "app").state.is_some_and(|s| s.terminated.is_some())
    })
    .await;
    let t = ctr(&st, "app").state.unwrap().terminated.unwrap();
    assert_eq!(t.reason.as_deref(), Some("OOMKilled"));
    assert_eq!(t.exit_code, 137);
    assert_eq!(st.phase.as_deref(), Some("Failed"));
}

fn sidecar_pod() -> Arc<Pod> {
    Arc::new(
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "0000-1111"},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                "initContainers": [
                    {"name": "side", "image": "busybox", "command": ["s"], "restartPolicy": "Always"},
                    {"name": "init2", "image": "busybox", "command": ["i"]}
                ],
                "containers": [{"name": "app", "image": "busybox", "command": ["a"]}]}
        }))
        .unwrap(),
    )
}

fn init_status(st: &PodStatus, name: &str) -> k8s_openapi::api::core::v1::ContainerStatus {
    st.init_container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == name)
        .unwrap()
        .clone()
}

#[tokio::test]
async fn sidecars_start_in_order_restart_and_stop_after_the_containers_finish() {
    let e = env(Duration::from_millis(100));
    let mut h = spawn(sidecar_pod(), e.deps.clone());
    // The next init container starts while the sidecar keeps running.
    let st = wait_status(&mut h, "init2 running", |s| running(s, "init2")).await;
    assert!(running(&st, "side"));
    let side = init_status(&st, "side");
    assert_eq!((side.started, side.ready), (Some(true), true));
    assert!(!init_status(&st, "init2").ready);
    e.rt.exit(&pod::container_id("0000-1111", "init2", 0), 0);
    let st = wait_status(&mut h, "app running", |s| running(s, "app")).await;
    assert_eq!(st.phase.as_deref(), Some("Running"));
    // A sidecar that exits is restarted, even with restartPolicy Never.
    e.rt.exit(&pod::container_id("0000-1111", "side", 0), 1);
    wait_status(&mut h, "sidecar restarted", |s| {
        running(s, "side") && init_status(s, "side").restart_count == 1
    })
    .await;
    // The app finishing completes the pod; the sidecar is stopped, not restarted.
    e.rt.exit(&pod::container_id("0000-1111", "app", 0), 0);
    let st = wait_status(&mut h, "pod succeeded, sidecar stopped", |s| {
        s.phase.as_deref() == Some("Succeeded") && !running(s, "side")
    })
    .await;
    assert_eq!(init_status(&st, "side").restart_count, 1);
    let side1 = pod::container_id("0000-1111", "side", 1);
    assert!(e.rt.calls().contains(&FakeCall::Kill(side1, 15)));
    tokio::time::timeout(Duration::from_secs(5), async {
        while !e.net.active.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("sandbox released after the sidecar stopped");
}

#[tokio::test]
async fn sidecars_are_terminated_after_the_containers_on_deletion() {
    let e = env(Duration::from_secs(1));
    let mut h = spawn(sidecar_pod(), e.deps.clone());
    wait_status(&mut h, "init2 running", |s| running(s, "init2")).await;
    e.rt.exit(&pod::container_id("0000-1111", "init2", 0), 0);
    wait_status(&mut h, "app running", |s| running(s, "app")).await;
    h.terminate(None);
    tokio::time::timeout(Duration::from_secs(10), h.terminated())
        .await
        .unwrap();
    let calls = e.rt.calls();
    let app = pod::container_id("0000-1111", "app", 0);
    let side = pod::container_id("0000-1111", "side", 0);
    let app_at = calls
        .iter()
        .position(|c| *c == FakeCall::Kill(app.clone(), 15));
    let side_at = calls
        .iter()
        .position(|c| *c == FakeCall::Kill(side.clone(), 15));
    assert!(app_at.unwrap() < side_at.unwrap(), "{calls:?}");
    assert!(e.rt.container_ids().is_empty());
}
