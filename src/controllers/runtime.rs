//! The one shared controller runtime: watch → reflector cache → work queue → per-key
//! serialization → backoff (all through `kube::runtime::Controller`), leader election through
//! a `coordination.k8s.io/v1` Lease, and the events recorder.
//!
//! Owns: the reconcile contract (`reconcile(Arc<K>, Arc<Ctx>) -> Result<Action, Error>` +
//! [`error_policy`]), per-key exponential backoff, leadership. May call: the API server.

use futures::{Future, StreamExt};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Errors a reconciler can return; the runtime retries them with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("api request failed: {0}")]
    Kube(#[from] kube::Error),
    /// An object lacks a field the controller needs.
    #[error("object {object} has no {field}")]
    MissingField {
        /// The object (`ns/name`).
        object: String,
        /// The missing field.
        field: &'static str,
    },
    /// An object's content cannot be used (bad selector, quantity, …).
    #[error("invalid object {object}: {reason}")]
    Invalid {
        /// The object (`ns/name`).
        object: String,
        /// Why.
        reason: String,
    },
    /// JSON (de)serialisation failed.
    #[error("serialisation failed: {0}")]
    Json(#[from] serde_json::Error),
}

/// Shared context handed to every reconcile of one controller.
pub struct Ctx<C> {
    /// The API client.
    pub client: Client,
    /// Controller-specific configuration / state.
    pub data: C,
    /// Publishes `events.k8s.io/v1` events as this controller.
    pub recorder: Recorder,
    failures: Mutex<HashMap<String, u32>>,
}

impl<C> Ctx<C> {
    /// A context for the controller named `controller` (the events' reporting controller).
    pub fn new(client: Client, controller: &str, data: C) -> Arc<Self> {
        let reporter = Reporter {
            controller: controller.to_string(),
            instance: std::env::var("HOSTNAME").ok(),
        };
        Arc::new(Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            data,
            failures: Mutex::new(HashMap::new()),
        })
    }

    /// Publish an event about `obj`; failures are logged, never fatal (events are best effort).
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let ev = Event {
            type_,
            reason: reason.to_string(),
            note: Some(note),
            action: reason.to_string(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::debug!(error = %e, reason, "cannot publish event");
        }
    }

    /// Publish an event about `obj` concerning `related` (the pod or claim acted on). The
    /// related object is part of the recorder's aggregation key, so one event per child is
    /// kept instead of one series whose note is the first child's.
    pub async fn event_related<K: Resource<DynamicType = ()>, R: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        related: &R,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let ev = Event {
            type_,
            reason: reason.to_string(),
            note: Some(note),
            action: reason.to_string(),
            secondary: Some(related.object_ref(&())),
        };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::debug!(error = %e, reason, "cannot publish event");
        }
    }

    fn backoff(&self, key: String) -> Duration {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = f.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        // 200 ms doubling, capped at 60 s.
        let ms = 200u64.saturating_mul(1u64 << (*n).min(9));
        Duration::from_millis(ms.min(60_000))
    }

    fn reset(&self, key: &str) {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        f.remove(key);
    }
}

/// The shared error policy: log, then retry the key with per-key exponential backoff.
pub fn error_policy<K: Resource, C>(obj: Arc<K>, err: &Error, ctx: Arc<Ctx<C>>) -> Action {
    let key = key_of(obj.as_ref());
    tracing::debug!(error = %err, object = %key, "reconcile failed; retrying with backoff");
    Action::requeue(ctx.backoff(key))
}

fn key_of<K: Resource>(obj: &K) -> String {
    format!(
        "{}/{}",
        obj.meta().namespace.as_deref().unwrap_or(""),
        obj.meta().name.as_deref().unwrap_or("")
    )
}

/// Run `controller` with `reconcile` until `shutdown`; successes reset the key's backoff.
pub async fn run_controller<K, C, F, Fut>(
    controller: Controller<K>,
    reconcile: F,
    ctx: Arc<Ctx<C>>,
    shutdown: CancellationToken,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    C: Send + Sync + 'static,
    F: Fn(Arc<K>, Arc<Ctx<C>>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, Error>> + Send + 'static,
{
    let reconcile = Arc::new(reconcile);
    controller
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(
            move |obj: Arc<K>, ctx: Arc<Ctx<C>>| {
                let reconcile = reconcile.clone();
                async move {
                    let key = key_of(obj.as_ref());
                    let r = reconcile(obj, ctx.clone()).await;
                    if r.is_ok() {
                        ctx.reset(&key);
                    }
                    r
                }
            },
            error_policy,
            ctx,
        )
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "controller stream error");
            }
        })
        .await;
}

/// The runtime's concurrency config for controllers that must decide one key at a time
/// globally (the scheduler).
pub fn serial_config() -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default().concurrency(1)
}

/// Map a child to its controller owner of kind `K` (for `watches`).
pub fn controller_owner<K: Resource<DynamicType = ()>>(
    child: &impl Resource,
) -> Option<ObjectRef<K>> {
    let kind = K::kind(&());
    child
        .meta()
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true) && o.kind == kind)
        .map(|o| {
            let r = ObjectRef::<K>::new(&o.name);
            match child.meta().namespace.as_deref() {
                Some(ns) => r.within(ns),
                None => r,
            }
        })
}

/// Leader-election timings.
#[derive(Clone, Debug)]
pub struct LeaseTimings {
    /// How long a lease is valid without renewal.
    pub duration: Duration,
    /// How often the holder renews.
    pub renew: Duration,
    /// How often a candidate tries to take the lease (upstream's retry period, 2 s): a
    /// successor starts at most this long after the lease expires.
    pub retry: Duration,
}

impl Default for LeaseTimings {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(15),
            renew: Duration::from_secs(5),
            retry: Duration::from_secs(2),
        }
    }
}

/// The lease every k3rs server competes for.
pub const LEASE_NAMESPACE: &str = "kube-system";
/// The lease name.
pub const LEASE_NAME: &str = "k3rs-controllers";

/// Hold `kube-system/<name>` while running `work`; `work` gets a token that is cancelled when the
/// lease is lost (then we compete again) or on `shutdown` (then we release and return).
pub async fn lead<F, Fut>(
    client: Client,
    name: &str,
    identity: String,
    timings: LeaseTimings,
    shutdown: CancellationToken,
    work: F,
) where
    F: Fn(CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let api: Api<Lease> = Api::namespaced(client, LEASE_NAMESPACE);
    loop {
        // Acquire.
        loop {
            match try_hold(&api, name, &identity, &timings).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => tracing::debug!(error = %e, "cannot acquire the leader lease"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(timings.retry) => {}
            }
        }
        tracing::info!(lease = name, %identity, "became leader");
        let term = shutdown.child_token();
        let task = tokio::spawn(work(term.clone()));
        let mut last_renew = tokio::time::Instant::now();
        let released = loop {
            tokio::select! {
                _ = shutdown.cancelled() => break true,
                _ = tokio::time::sleep(timings.renew) => {}
            }
            match try_hold(&api, name, &identity, &timings).await {
                Ok(true) => last_renew = tokio::time::Instant::now(),
                Ok(false) => break false,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot renew the leader lease");
                    if last_renew.elapsed() >= timings.duration {
                        break false;
                    }
                }
            }
        };
        term.cancel();
        let _ = task.await;
        if released {
            release(&api, name, &identity).await;
            return;
        }
        tracing::warn!(lease = name, "lost the leader lease; controllers stopped");
    }
}

fn now() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

/// Create, renew or take over an expired lease. `Ok(false)`: someone else holds it. A write
/// conflict is re-read (the scheduler and the controllers of one process share the identity).
async fn try_hold(
    api: &Api<Lease>,
    name: &str,
    identity: &str,
    timings: &LeaseTimings,
) -> Result<bool, kube::Error> {
    for _ in 0..3 {
        match try_hold_once(api, name, identity, timings).await {
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            other => return other,
        }
    }
    Ok(false)
}

async fn try_hold_once(
    api: &Api<Lease>,
    name: &str,
    identity: &str,
    timings: &LeaseTimings,
) -> Result<bool, kube::Error> {
    let secs = i32::try_from(timings.duration.as_secs()).unwrap_or(15);
    match api.get_opt(name).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(identity.to_string()),
                    lease_duration_seconds: Some(secs),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            api.create(&PostParams::default(), &lease).await?;
            Ok(true)
        }
        Some(mut lease) => {
            let spec = lease.spec.get_or_insert_with(Default::default);
            let holder = spec.holder_identity.clone().unwrap_or_default();
            let expired = match &spec.renew_time {
                None => true,
                Some(t) => {
                    let d = spec.lease_duration_seconds.unwrap_or(secs);
                    t.0 + jiff::SignedDuration::from_secs(i64::from(d)) < jiff::Timestamp::now()
                }
            };
            if holder != identity && !holder.is_empty() && !expired {
                return Ok(false);
            }
            if holder != identity {
                spec.holder_identity = Some(identity.to_string());
                spec.acquire_time = Some(now());
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            spec.lease_duration_seconds = Some(secs);
            spec.renew_time = Some(now());
            // The resourceVersion in `lease` makes this a compare-and-swap.
            api.replace(name, &PostParams::default(), &lease).await?;
            Ok(true)
        }
    }
}

/// Give the lease up on clean shutdown so a peer takes over without waiting for expiry.
async fn release(api: &Api<Lease>, name: &str, identity: &str) {
    if let Ok(Some(mut lease)) = api.get_opt(name).await {
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() == Some(identity) {
            spec.holder_identity = None;
            spec.renew_time = None;
            let _ = api.replace(name, &PostParams::default(), &lease).await;
        }
    }
}

/// Name of `obj` as `ns/name` for messages.
pub fn describe<K: Resource>(obj: &K) -> String {
    key_of(obj)
}

/// The `Normal` event type, re-exported so controllers need not import kube's events module.
pub const NORMAL: EventType = EventType::Normal;
/// The `Warning` event type.
pub const WARNING: EventType = EventType::Warning;

/// Whether the object is being deleted.
pub fn deleting<K: Resource>(obj: &K) -> bool {
    obj.meta().deletion_timestamp.is_some()
}
