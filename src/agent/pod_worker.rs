//! One worker per pod, the only place that acts on that pod's containers (so actions on a
//! pod never interleave): sandbox (namespaces + CNI + /etc files + volumes), init
//! containers in order, then the containers; postStart hooks; restartPolicy with
//! CrashLoopBackOff; stop with preStop hooks, SIGTERM, grace period, SIGKILL and full
//! cleanup; re-adoption of running containers after an agent restart; the pod status, published on a `watch` channel.
//!
//! Owns: the pod's lifecycle on this node. May call: [`ContainerRuntime`], [`PodNetwork`],
//! the pod helpers in [`crate::agent::pod`]. Never the API (the sync layer writes status).

use crate::agent::backoff::Backoff;
use crate::agent::events::EventSink;
use crate::agent::network::PodNetwork;
use crate::agent::pod::{self, PodConfig};
use crate::agent::probe;
use crate::agent::runtime::spec::{self, SandboxInfo};
use crate::agent::runtime::{
    ContainerCreate, ContainerRuntime, ExitInfo, PullPolicy, RuntimeError, TaskStatus,
};
use crate::agent::sources::{self as pod_sources, PodSources};
use crate::agent::status::{self, CState, CtrView};
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tracing::{debug, info, warn};

/// Pods of this agent that may be starting (sandbox + first container starts) at once: a
/// burst of hundreds of pods must not fork hundreds of CNI plugins, shims and runc at once.
/// Not held across image pulls or postStart hooks. One agent per process, so one node-wide
/// limiter, FIFO (tokio's semaphore is fair), so pods start in the order they arrived.
///
/// Why two per CPU: a start is mostly other processes' CPU (containerd, its shim, runc, the
/// CNI plugins). With every pod of a burst started at once they share the CPUs and all
/// finish together at the end; admitting a few at a time finishes the burst in about the
/// same total time but the first pods run much sooner (examples/pod_start_bench, BENCHMARKS).
/// `K3RS_POD_START_PARALLELISM` overrides it (for measurements).
static START_SLOTS: LazyLock<Arc<Semaphore>> = LazyLock::new(|| {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let slots = std::env::var("K3RS_POD_START_PARALLELISM")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or((2 * cpus).clamp(2, 16));
    Arc::new(Semaphore::new(slots))
});

/// What a worker needs, shared by all workers of a node.
#[derive(Clone)]
pub struct Deps {
    pub runtime: Arc<dyn ContainerRuntime>,
    /// ConfigMaps and Secrets (`None`: pods using them fail with a clear reason).
    pub sources: Option<Arc<dyn PodSources>>,
    pub network: Arc<dyn PodNetwork>,
    pub config: Arc<PodConfig>,
    /// Pod events (image pulls).
    pub events: Arc<dyn EventSink>,
}

enum Msg {
    Update(Arc<Pod>),
    Terminate(Option<Duration>),
}

/// The sync layer's handle on a worker. Dropping it stops the worker but leaves the pod's
/// containers running (agent shutdown/restart); [`PodWorkerHandle::terminate`] stops the pod.
pub struct PodWorkerHandle {
    tx: mpsc::UnboundedSender<Msg>,
    /// Latest computed pod status.
    pub status: watch::Receiver<PodStatus>,
    /// Becomes true once the pod is stopped and cleaned up after `terminate`.
    pub done: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl PodWorkerHandle {
    /// Hands the worker a newer version of the pod (a deletionTimestamp stops it).
    pub fn update(&self, pod: Arc<Pod>) {
        let _ = self.tx.send(Msg::Update(pod));
    }

    /// Stops the pod (grace period override, else the pod's own) and cleans up.
    pub fn terminate(&self, grace: Option<Duration>) {
        let _ = self.tx.send(Msg::Terminate(grace));
    }

    /// Waits until a terminated pod is fully cleaned up.
    pub async fn terminated(&mut self) {
        let _ = self.done.wait_for(|d| *d).await;
    }

    /// Ids of the containers currently running, by container name.
    pub fn container_ids(&self) -> HashMap<String, String> {
        let st = self.status.borrow();
        st.init_container_statuses
            .iter()
            .flatten()
            .chain(st.container_statuses.iter().flatten())
            .filter_map(|c| {
                let id = c.container_id.as_ref()?.strip_prefix("containerd://")?;
                Some((c.name.clone(), id.to_string()))
            })
            .collect()
    }

    /// Detaches: the worker ends, containers keep running.
    pub async fn detach(self) {
        drop(self.tx);
        let _ = self.task.await;
    }
}

/// Starts the worker of `pod`.
pub fn spawn(pod: Arc<Pod>, deps: Deps) -> PodWorkerHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let (status_tx, status) = watch::channel(PodStatus::default());
    let (done_tx, done) = watch::channel(false);
    let worker = Worker::new(pod, deps, status_tx);
    let task = tokio::spawn(worker.run(rx, done_tx));
    PodWorkerHandle {
        tx,
        status,
        done,
        task,
    }
}

struct Ctr {
    view: CtrView,
    /// The container's spec (probes, ports).
    spec: k8s_openapi::api::core::v1::Container,
    /// Probes of the current run.
    probes: Vec<probe::ProbeState>,
    pull_policy: PullPolicy,
    /// Attempt number of the next start.
    attempt: u32,
    id: Option<String>,
    /// When the current run started (monotonic, for back-off reset).
    since: Option<Instant>,
    backoff: Backoff,
}

struct Sandbox {
    info: SandboxInfo,
    ip: IpAddr,
}

struct Worker {
    deps: Deps,
    pod: Arc<Pod>,
    ctrs: Vec<Ctr>,
    sandbox: Option<Sandbox>,
    sandbox_error: Option<String>,
    sandbox_backoff: Backoff,
    /// Sandbox released after the pod finished (Succeeded/Failed).
    released: bool,
    exits_tx: mpsc::UnboundedSender<(String, Result<ExitInfo, RuntimeError>)>,
    exits_rx: mpsc::UnboundedReceiver<(String, Result<ExitInfo, RuntimeError>)>,
    status_tx: watch::Sender<PodStatus>,
    tracker: status::Tracker,
    /// When configMap/secret volumes were last re-read from the API.
    volumes_synced: Instant,
    /// Sidecars were signalled after the containers finished.
    sidecars_stopping: bool,
    /// Containers of this pod may exist from an earlier agent (or adoption failed): a new
    /// container's id is then cleared first. Skipped otherwise (several containerd calls).
    leftovers: bool,
    /// A [`START_SLOTS`] permit, held while this pod is first being started.
    slot: Option<OwnedSemaphorePermit>,
}

fn now_ts() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

/// The terminated reason of an exit, as upstream: `OOMKilled`, `Completed` or `Error`.
fn exit_reason(e: &ExitInfo) -> &'static str {
    if e.oom_killed {
        "OOMKilled"
    } else if e.exit_code == 0 {
        "Completed"
    } else {
        "Error"
    }
}

fn ts_of(t: Option<SystemTime>) -> jiff::Timestamp {
    t.and_then(|t| jiff::Timestamp::try_from(t).ok())
        .unwrap_or_else(now_ts)
}

impl Worker {
    fn new(pod: Arc<Pod>, deps: Deps, status_tx: watch::Sender<PodStatus>) -> Self {
        let cfg = deps.config.clone();
        let spec = pod.spec.clone().unwrap_or_default();
        let mut ctrs = Vec::new();
        for (init, c) in spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| (true, c))
            .chain(spec.containers.iter().map(|c| (false, c)))
        {
            let image = c.image.clone().unwrap_or_default();
            let mut view = CtrView::new(&c.name, init, &image);
            view.sidecar = init && c.restart_policy.as_deref() == Some("Always");
            ctrs.push(Ctr {
                spec: c.clone(),
                probes: Vec::new(),
                pull_policy: PullPolicy::from_k8s(c.image_pull_policy.as_deref(), &image),
                view,
                attempt: 0,
                id: None,
                since: None,
                backoff: Backoff::new(cfg.backoff_initial, cfg.backoff_max),
            });
        }
        let (exits_tx, exits_rx) = mpsc::unbounded_channel();
        Worker {
            sandbox_backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(30)),
            deps,
            pod,
            ctrs,
            sandbox: None,
            sandbox_error: None,
            released: false,
            exits_tx,
            exits_rx,
            status_tx,
            tracker: status::Tracker::new(now_ts()),
            volumes_synced: Instant::now(),
            sidecars_stopping: false,
            leftovers: true,
            slot: None,
        }
    }

    fn uid(&self) -> String {
        self.pod.metadata.uid.clone().unwrap_or_default()
    }

    fn restart_policy(&self) -> String {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into())
    }

    fn grace(&self) -> Duration {
        let secs = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| {
                self.pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30);
        Duration::from_secs(secs.max(0) as u64)
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>, done: watch::Sender<bool>) {
        let key = pod::pod_key(&self.pod);
        if let Err(e) = self.adopt().await {
            warn!(pod = %key, error = %e, "cannot look for existing containers");
        }
        let mut terminate: Option<Duration> = None;
        loop {
            if self.pod.metadata.deletion_timestamp.is_some() && terminate.is_none() {
                terminate = Some(self.grace());
            }
            if let Some(grace) = terminate {
                self.stop(grace).await;
                self.publish();
                let _ = done.send(true);
                return;
            }
            self.sync().await;
            self.publish();
            let wake = self.next_wake();
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(Msg::Update(p)) => self.pod = p,
                    Some(Msg::Terminate(g)) => terminate = Some(g.unwrap_or_else(|| self.grace())),
                    // Agent shutdown: leave the pod running for the next agent to adopt.
                    None => return,
                },
                Some((id, exit)) = self.exits_rx.recv() => self.on_exit(&id, exit).await,
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }

    /// Earliest back-off deadline, or a periodic resync.
    fn next_wake(&self) -> Instant {
        let mut wake = Instant::now() + Duration::from_secs(10);
        let now = Instant::now();
        for d in self
            .ctrs
            .iter()
            .filter_map(|c| c.backoff.deadline())
            .chain(self.sandbox_backoff.deadline())
            .filter(|d| *d > now)
            // Probes already due run at once (but never busy-loop).
            .chain(self.ctrs.iter().flat_map(|c| {
                c.probes
                    .iter()
                    .map(|p| p.next().max(now + Duration::from_millis(50)))
            }))
        {
            if d < wake {
                wake = d;
            }
        }
        if let Some(d) = self.pull_backoff_wake(now) {
            wake = wake.min(d);
        }
        wake
    }

    fn publish(&mut self) {
        let ip = self.sandbox.as_ref().map(|s| s.ip);
        let views: Vec<&CtrView> = self.ctrs.iter().map(|c| &c.view).collect();
        let st = self.tracker.compute(
            &self.pod,
            &views,
            self.sandbox.is_some() || self.released,
            self.sandbox_error.as_deref(),
            ip,
            self.deps.config.host_ip,
            &self.restart_policy(),
        );
        self.status_tx.send_if_modified(|old| {
            if *old == st {
                false
            } else {
                *old = st;
                true
            }
        });
    }

    /// Finds containers of this pod left by a previous agent and takes them over.
    async fn adopt(&mut self) -> Result<(), RuntimeError> {
        let uid = self.uid();
        let found = self
            .deps
            .runtime
            .list_containers(pod::LABEL_POD_UID, &uid)
            .await?;
        self.leftovers = !found.is_empty();
        for i in 0..self.ctrs.len() {
            let name = self.ctrs[i].view.name.clone();
            let mut mine: Vec<(u32, String, HashMap<String, String>)> = found
                .iter()
                .filter(|c| c.labels.get(pod::LABEL_CONTAINER_NAME) == Some(&name))
                .map(|c| {
                    let attempt = c
                        .labels
                        .get(pod::LABEL_ATTEMPT)
                        .and_then(|a| a.parse().ok())
                        .unwrap_or(0);
                    (attempt, c.id.clone(), c.labels.clone())
                })
                .collect();
            mine.sort_by_key(|(a, _, _)| *a);
            let Some((attempt, id, labels)) = mine.pop() else {
                continue;
            };
            for (_, old, _) in mine {
                let _ = self.deps.runtime.remove_container(&old).await;
            }
            let Some(state) = self.deps.runtime.container_state(&id).await? else {
                continue;
            };
            let c = &mut self.ctrs[i];
            c.attempt = attempt + 1;
            c.view.restarts = labels
                .get(pod::LABEL_RESTARTS)
                .and_then(|r| r.parse().ok())
                .unwrap_or(0);
            c.view.started_once = true;
            c.view.container_id = Some(id.clone());
            let started_at = labels
                .get(pod::LABEL_STARTED_AT)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| ts_of(state.created_at));
            match state.status {
                TaskStatus::Running => {
                    info!(pod = %pod::pod_key(&self.pod), container = %name, id = %id, "adopted running container");
                    c.id = Some(id.clone());
                    c.since = Some(Instant::now());
                    c.view.state = CState::Running { started_at };
                    Self::arm_probes(c);
                    self.spawn_waiter(id);
                }
                _ => {
                    c.id = Some(id.clone());
                    let exit = state.exit.unwrap_or(ExitInfo {
                        exit_code: 255,
                        exited_at: None,
                        oom_killed: false,
                    });
                    c.view.state = CState::Running { started_at };
                    self.on_exit(&id, Ok(exit)).await;
                }
            }
            // Image id for status; the image is local (the container exists).
            let image = self.ctrs[i].view.image.clone();
            let pp = self.ctrs[i].pull_policy;
            if let Ok(img) = self.deps.runtime.ensure_image(&image, pp).await {
                self.ctrs[i].view.image_id = img.id;
            }
        }
        Ok(())
    }

    fn spawn_waiter(&self, id: String) {
        let rt = self.deps.runtime.clone();
        let tx = self.exits_tx.clone();
        tokio::spawn(async move {
            loop {
                match rt.wait_container(&id).await {
                    Ok(exit) => {
                        let _ = tx.send((id, Ok(exit)));
                        return;
                    }
                    Err(e) if e.is_not_found() => {
                        let _ = tx.send((id, Err(e)));
                        return;
                    }
                    Err(e) => {
                        // containerd restarting: wait again once it is back.
                        debug!(id = %id, error = %e, "wait interrupted; retrying");
                        if tx.is_closed() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
    }

    fn should_restart(&self, init: bool, sidecar: bool, exit_code: i32) -> bool {
        if sidecar {
            // Sidecars always restart, until the pod is finished.
            return !status::is_finished(&self.tracker);
        }
        match self.restart_policy().as_str() {
            "Never" => false,
            "OnFailure" => exit_code != 0,
            // Init containers are never restarted after success.
            _ => !(init && exit_code == 0),
        }
    }

    async fn on_exit(&mut self, id: &str, exit: Result<ExitInfo, RuntimeError>) {
        let Some(i) = self.ctrs.iter().position(|c| c.id.as_deref() == Some(id)) else {
            return;
        };
        let CState::Running { started_at } = self.ctrs[i].view.state.clone() else {
            return;
        };
        let (exit_code, finished_at, reason) = match exit {
            Ok(e) => {
                let code = e.exit_code as i32;
                (code, ts_of(e.exited_at), exit_reason(&e))
            }
            Err(_) => (137, now_ts(), "ContainerStatusUnknown"),
        };
        let init = self.ctrs[i].view.init;
        self.ctrs[i].probes.clear();
        self.ctrs[i].view.probe_ready = None;
        let sidecar = self.ctrs[i].view.sidecar;
        let restart = self.should_restart(init, sidecar, exit_code);
        let c = &mut self.ctrs[i];
        info!(pod = %pod::pod_key(&self.pod), container = %c.view.name, exit_code, restart, "container exited");
        let terminated = CState::Terminated {
            exit_code,
            reason: reason.into(),
            started_at,
            finished_at,
        };
        if restart {
            let ran = c.since.map(|s| s.elapsed()).unwrap_or_default();
            let delay = c.backoff.failed(Instant::now(), ran);
            c.view.last_state = Some(terminated);
            c.view.state = CState::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: format!(
                    "back-off {}s restarting failed container={} pod={}",
                    delay.as_secs_f32().ceil(),
                    c.view.name,
                    pod::pod_key(&self.pod)
                ),
            };
        } else {
            c.view.state = terminated;
        }
    }

    /// One pass towards the desired state.
    async fn sync(&mut self) {
        if status::is_finished(&self.tracker) {
            // Sidecars stop once the containers finished; the sandbox goes after them.
            if !self.stop_sidecars().await {
                self.release_sandbox().await;
            }
            return;
        }
        if self.sandbox.is_none() {
            if self.sandbox_backoff.blocked(Instant::now()) {
                return;
            }
            // Released at the end of this pass (or before a pull or a postStart hook).
            self.slot = START_SLOTS.clone().acquire_owned().await.ok();
            let begun = Instant::now();
            let r = self.setup_sandbox().await;
            debug!(pod = %pod::pod_key(&self.pod), took_ms = begun.elapsed().as_millis() as u64, "pod sandbox set up");
            match r {
                Ok(sb) => {
                    self.sandbox = Some(sb);
                    self.sandbox_error = None;
                }
                Err(e) => {
                    warn!(pod = %pod::pod_key(&self.pod), error = %e, "pod sandbox");
                    self.sandbox_error = Some(e);
                    self.sandbox_backoff.failed(Instant::now(), Duration::ZERO);
                    self.slot = None;
                    return;
                }
            }
        }
        if self.start_inits().await {
            for i in 0..self.ctrs.len() {
                if !self.ctrs[i].view.init
                    && matches!(self.ctrs[i].view.state, CState::Waiting { .. })
                {
                    self.try_start(i).await;
                }
            }
        }
        self.slot = None;
        self.run_probes().await;
        self.resync_volumes().await;
        // Finished pods give their IP back right away (status keeps podIP).
        self.publish();
        if status::is_finished(&self.tracker) && !self.stop_sidecars().await {
            self.release_sandbox().await;
        }
    }

    /// Init containers, strictly in order; true once the containers may start (all
    /// succeeded or, for sidecars, started and past their startup probe). Once the
    /// containers ran, sidecars are just restarted.
    async fn start_inits(&mut self) -> bool {
        let initialized = self
            .ctrs
            .iter()
            .any(|c| !c.view.init && c.view.started_once);
        for i in 0..self.ctrs.len() {
            let v = &self.ctrs[i].view;
            if !v.init || (initialized && !v.sidecar) {
                continue;
            }
            if matches!(v.state, CState::Waiting { .. }) {
                self.try_start(i).await;
            }
            let v = &self.ctrs[i].view;
            let passed = match &v.state {
                CState::Running { .. } => v.sidecar && v.startup_done,
                CState::Terminated { exit_code: 0, .. } => !v.sidecar,
                _ => false,
            };
            if !passed && !initialized {
                return false;
            }
        }
        true
    }

    /// After the containers finished: SIGTERM the running sidecars (SIGKILL after the
    /// grace period). True while some still run.
    async fn stop_sidecars(&mut self) -> bool {
        let running: Vec<String> = self
            .ctrs
            .iter()
            .filter(|c| c.view.sidecar && matches!(c.view.state, CState::Running { .. }))
            .filter_map(|c| c.id.clone())
            .collect();
        if running.is_empty() {
            return false;
        }
        if !self.sidecars_stopping {
            self.sidecars_stopping = true;
            let rt = self.deps.runtime.clone();
            let grace = self.grace();
            for id in &running {
                let _ = rt
                    .kill_container(id, nix::sys::signal::Signal::SIGTERM as i32)
                    .await;
            }
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                for id in running {
                    let _ = rt
                        .kill_container(&id, nix::sys::signal::Signal::SIGKILL as i32)
                        .await;
                }
            });
        }
        true
    }

    /// Re-reads configMap/secret volumes every ~10 s (the worker wakes at least that often)
    /// so updates reach running containers, like the kubelet's volume manager.
    async fn resync_volumes(&mut self) {
        if self.sandbox.is_none() || self.volumes_synced.elapsed() < Duration::from_secs(9) {
            return;
        }
        self.volumes_synced = Instant::now();
        let base = pod::pod_dir(&self.deps.config, &self.uid()).join("volumes");
        if let Err(e) =
            pod_sources::materialize_volumes(self.deps.sources.as_deref(), &self.pod, &base).await
        {
            warn!(pod = %pod::pod_key(&self.pod), error = %e, "volume resync");
        }
    }

    async fn setup_sandbox(&mut self) -> Result<Sandbox, String> {
        let cfg = self.deps.config.clone();
        let pod = self.pod.clone();
        let uid = self.uid();
        let host_network = pod::is_host_network(&pod);
        let begun = Instant::now();
        let (ip, namespaces) = if host_network {
            (cfg.host_ip, None)
        } else {
            let sb = self
                .deps
                .network
                .setup(&pod::pod_ref(&pod))
                .await
                .map_err(|e| e.to_string())?;
            (sb.ip, Some(sb.namespaces))
        };
        debug!(pod = %pod::pod_key(&pod), took_ms = begun.elapsed().as_millis() as u64, "pod network set up");
        let etc = pod::write_etc_files(&cfg, &pod, ip).map_err(|e| format!("pod files: {e}"))?;
        let mut volumes = pod::prepare_volumes(&cfg, &pod)?;
        let base = pod::pod_dir(&cfg, &uid).join("volumes");
        volumes.extend(
            pod_sources::materialize_volumes(self.deps.sources.as_deref(), &pod, &base).await?,
        );
        let info = SandboxInfo {
            host_network,
            netns: namespaces
                .as_ref()
                .map(|n| n.net.clone())
                .unwrap_or_default(),
            ipc_ns: namespaces.as_ref().map(|n| n.ipc.clone()),
            uts_ns: namespaces.as_ref().map(|n| n.uts.clone()),
            hostname: if host_network {
                cfg.node_name.clone()
            } else {
                pod::hostname(&pod)
            },
            pod_ip: ip.to_string(),
            host_ip: cfg.host_ip.to_string(),
            node_name: cfg.node_name.clone(),
            etc_hosts: if host_network {
                Default::default()
            } else {
                etc.hosts
            },
            etc_hostname: if host_network {
                Default::default()
            } else {
                etc.hostname
            },
            resolv_conf: etc.resolv_conf,
            cgroup_parent: format!("{}/pod{uid}", cfg.cgroup_root.trim_end_matches('/')),
            volumes,
        };
        Ok(Sandbox { info, ip })
    }

    async fn release_sandbox(&mut self) {
        if self.released || self.sandbox.is_none() {
            return;
        }
        if !pod::is_host_network(&self.pod) {
            if let Err(e) = self.deps.network.teardown(&pod::pod_ref(&self.pod)).await {
                warn!(pod = %pod::pod_key(&self.pod), error = %e, "releasing the pod network");
                return;
            }
        }
        self.released = true;
    }

    /// Starts container `i` unless its back-off forbids it now.
    async fn try_start(&mut self, i: usize) {
        if self.ctrs[i].backoff.blocked(Instant::now()) {
            self.show_pull_backoff(i);
            return;
        }
        let Some(sandbox) = self.sandbox.as_ref() else {
            return;
        };
        let info = sandbox.info.clone();
        let rt = self.deps.runtime.clone();
        let cfg = self.deps.config.clone();
        let pod = self.pod.clone();
        let uid = self.uid();
        let name = self.ctrs[i].view.name.clone();
        let was_started = self.ctrs[i].view.started_once;

        let begun = Instant::now();
        let image = match self.obtain_image(i).await {
            Ok(img) => img,
            Err(f) => {
                self.fail_start(i, f.reason, f.message);
                return;
            }
        };
        self.ctrs[i].view.image_id = image.id.clone();
        // The previous attempt's container is replaced (its log file stays).
        if let Some(old) = self.ctrs[i].id.take() {
            if let Err(e) = rt.remove_container(&old).await {
                warn!(id = %old, error = %e, "removing the previous container");
            }
        }
        let attempt = self.ctrs[i].attempt;
        let id = pod::container_id(&uid, &name, attempt);
        if self.leftovers {
            let _ = rt.remove_container(&id).await;
        }
        let spec_c = pod
            .spec
            .iter()
            .flat_map(|s| {
                s.init_containers
                    .iter()
                    .flatten()
                    .chain(s.containers.iter())
            })
            .find(|c| c.name == name)
            .cloned();
        let Some(spec_c) = spec_c else {
            return;
        };
        let env = match pod_sources::resolve_env(self.deps.sources.as_deref(), &pod, &spec_c).await
        {
            Ok(e) => e,
            Err(e) => {
                self.fail_start(i, "CreateContainerConfigError", e);
                return;
            }
        };
        let oci = match spec::build(&pod, &spec_c, &image, &info, &env, &id) {
            Ok(s) => s,
            Err(e) => {
                self.fail_start(i, "CreateContainerConfigError", e.to_string());
                return;
            }
        };
        let restarts = if was_started {
            self.ctrs[i].view.restarts + 1
        } else {
            0
        };
        let started_at = now_ts();
        let labels = HashMap::from([
            (pod::LABEL_POD_UID.to_string(), uid.clone()),
            (
                pod::LABEL_POD_NAME.to_string(),
                pod.metadata.name.clone().unwrap_or_default(),
            ),
            (
                pod::LABEL_POD_NAMESPACE.to_string(),
                pod.metadata.namespace.clone().unwrap_or_default(),
            ),
            (pod::LABEL_CONTAINER_NAME.to_string(), name.clone()),
            (pod::LABEL_ATTEMPT.to_string(), attempt.to_string()),
            (pod::LABEL_RESTARTS.to_string(), restarts.to_string()),
            (pod::LABEL_STARTED_AT.to_string(), started_at.to_string()),
        ]);
        let create = ContainerCreate {
            id: id.clone(),
            image,
            spec: oci,
            labels,
            log_path: pod::container_log_path(&cfg, &pod, &name, attempt),
        };
        self.ctrs[i].attempt = attempt + 1;
        debug!(id = %id, took_ms = begun.elapsed().as_millis() as u64, "container prepared");
        let begun = Instant::now();
        if let Err(e) = rt.create_container(&create).await {
            let _ = rt.remove_container(&id).await;
            self.fail_start(i, "CreateContainerError", e.to_string());
            return;
        }
        debug!(id = %id, took_ms = begun.elapsed().as_millis() as u64, "container created");
        let begun = Instant::now();
        if let Err(e) = rt.start_container(&id).await {
            let _ = rt.remove_container(&id).await;
            self.fail_start(i, "RunContainerError", e.to_string());
            return;
        }
        info!(pod = %pod::pod_key(&pod), container = %name, id = %id, attempt, took_ms = begun.elapsed().as_millis() as u64, "container started");
        let c = &mut self.ctrs[i];
        c.id = Some(id.clone());
        c.since = Some(Instant::now());
        c.view.container_id = Some(id.clone());
        c.view.restarts = restarts;
        c.view.started_once = true;
        c.view.state = CState::Running { started_at };
        Self::arm_probes(c);
        self.spawn_waiter(id.clone());
        self.post_start(i, &id).await;
    }

    fn fail_start(&mut self, i: usize, reason: &str, message: String) {
        let c = &mut self.ctrs[i];
        warn!(container = %c.view.name, reason, %message, "cannot start container");
        c.backoff.failed(Instant::now(), Duration::ZERO);
        c.view.state = CState::Waiting {
            reason: reason.into(),
            message,
        };
    }

    /// SIGTERM, grace period, SIGKILL, then remove every trace of the pod.
    async fn stop(&mut self, grace: Duration) {
        let key = pod::pod_key(&self.pod);
        info!(pod = %key, grace = grace.as_secs(), "stopping pod");
        let rt = self.deps.runtime.clone();
        let begun = tokio::time::Instant::now();
        // preStop hooks run first, inside the grace period.
        self.pre_stop(grace).await;
        // Like upstream, a preStop hook that used up the grace period still leaves the
        // containers 2 s between SIGTERM and SIGKILL.
        let deadline =
            (begun + grace).max(tokio::time::Instant::now() + grace.min(Duration::from_secs(2)));
        // The containers first, then the sidecars they may depend on.
        for sidecars in [false, true] {
            let running: Vec<String> = self
                .ctrs
                .iter()
                .filter(|c| c.view.sidecar == sidecars)
                .filter(|c| matches!(c.view.state, CState::Running { .. }))
                .filter_map(|c| c.id.clone())
                .collect();
            for id in &running {
                if let Err(e) = rt
                    .kill_container(id, nix::sys::signal::Signal::SIGTERM as i32)
                    .await
                {
                    warn!(id = %id, error = %e, "sigterm");
                }
            }
            while self.ctrs.iter().any(|c| {
                c.view.sidecar == sidecars && matches!(c.view.state, CState::Running { .. })
            }) {
                match tokio::time::timeout_at(deadline, self.exits_rx.recv()).await {
                    Ok(Some((id, exit))) => self.mark_stopped(&id, exit),
                    _ => break,
                }
            }
        }
        // remove_container SIGKILLs whatever is still running.
        let uid = self.uid();
        let mut ids: Vec<String> = self.ctrs.iter().filter_map(|c| c.id.clone()).collect();
        if let Ok(found) = rt.list_containers(pod::LABEL_POD_UID, &uid).await {
            ids.extend(found.into_iter().map(|c| c.id));
        }
        ids.sort();
        ids.dedup();
        for id in ids {
            if let Err(e) = rt.remove_container(&id).await {
                warn!(id = %id, error = %e, "removing container");
            }
        }
        for c in &mut self.ctrs {
            if let CState::Running { started_at } = c.view.state.clone() {
                c.view.state = CState::Terminated {
                    exit_code: 137,
                    reason: "Error".into(),
                    started_at,
                    finished_at: now_ts(),
                };
            }
            c.id = None;
        }
        if self.sandbox.is_some() || !self.released {
            if !pod::is_host_network(&self.pod) {
                if let Err(e) = self.deps.network.teardown(&pod::pod_ref(&self.pod)).await {
                    warn!(pod = %key, error = %e, "pod network teardown");
                }
            }
            self.released = true;
        }
        if let Err(e) = pod::remove_pod_dir(&self.deps.config, &uid) {
            warn!(pod = %key, error = %e, "removing pod directory");
        }
        self.tracker.terminated = true;
    }

    fn mark_stopped(&mut self, id: &str, exit: Result<ExitInfo, RuntimeError>) {
        if let Some(c) = self.ctrs.iter_mut().find(|c| c.id.as_deref() == Some(id))
            && let CState::Running { started_at } = c.view.state.clone()
        {
            let (code, at, reason) = match exit {
                Ok(e) => (e.exit_code as i32, ts_of(e.exited_at), exit_reason(&e)),
                Err(_) => (137, now_ts(), "Error"),
            };
            c.view.state = CState::Terminated {
                exit_code: code,
                reason: reason.into(),
                started_at,
                finished_at: at,
            };
        }
    }
}

mod hooks;
mod probing;
mod pulling;
#[cfg(test)]
mod tests;
