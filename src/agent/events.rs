//! Events the agent reports about pods (`Pulling`, `Pulled`, `Failed`, `BackOff`), as the
//! kubelet does: an [`EventSink`] the pod workers call without waiting, published through
//! the API as core/v1 events by [`ApiEvents`] (repeats aggregated into a count).
//!
//! Owns: event emission. May call: the API server (events only).

use k8s_openapi::api::core::v1::{Event as CoreEvent, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Normal,
    Warning,
}

/// Where pod workers send events. Must not block.
pub trait EventSink: Send + Sync {
    /// Reports `reason`/`message` about `pod` (`field` is e.g. `spec.containers{app}`).
    fn emit(&self, pod: &Pod, field: Option<String>, kind: Kind, reason: &str, message: String);
}

/// Publishes core/v1 events as the kubelet does (`kubectl describe pod` lists them),
/// aggregating repeats of one (object, reason, message) into a count.
pub struct ApiEvents {
    client: kube::Client,
    node: String,
    /// Event name and count by aggregation key.
    seen: Arc<Mutex<HashMap<String, (String, i32)>>>,
}

/// Aggregation entries kept before the table is cleared (repeats then start a new event).
const MAX_SEEN: usize = 4096;

impl ApiEvents {
    pub fn new(client: kube::Client, node_name: &str) -> Self {
        ApiEvents {
            client,
            node: node_name.to_string(),
            seen: Arc::default(),
        }
    }
}

fn reference(pod: &Pod, field: Option<String>) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        resource_version: pod.metadata.resource_version.clone(),
        field_path: field,
    }
}

impl EventSink for ApiEvents {
    fn emit(&self, pod: &Pod, field: Option<String>, kind: Kind, reason: &str, message: String) {
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let object = reference(pod, field);
        let key = format!(
            "{}\0{}\0{reason}\0{message}",
            object.uid.as_deref().unwrap_or(""),
            object.field_path.as_deref().unwrap_or("")
        );
        let now = Time(jiff::Timestamp::now());
        let fresh = format!(
            "{}.{:x}",
            object.name.as_deref().unwrap_or("pod"),
            jiff::Timestamp::now().as_nanosecond()
        );
        // `(name, Some(count))` for a repeat to patch, `(name, None)` for a new event.
        let (name, repeat) = match self.seen.lock() {
            Ok(mut seen) => {
                if seen.len() > MAX_SEEN {
                    seen.clear();
                }
                match seen.get_mut(&key) {
                    Some((name, count)) => {
                        *count += 1;
                        (name.clone(), Some(*count))
                    }
                    None => {
                        seen.insert(key, (fresh.clone(), 1));
                        (fresh, None)
                    }
                }
            }
            Err(_) => (fresh, None),
        };
        let event = CoreEvent {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            involved_object: object,
            reason: Some(reason.to_string()),
            message: Some(message),
            type_: Some(
                match kind {
                    Kind::Normal => "Normal",
                    Kind::Warning => "Warning",
                }
                .into(),
            ),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some(self.node.clone()),
            }),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now.clone()),
            count: Some(1),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(self.node.clone()),
            ..Default::default()
        };
        let api: Api<CoreEvent> = Api::namespaced(self.client.clone(), &ns);
        // Best effort, off the worker's path: a slow API must not delay containers.
        tokio::spawn(async move {
            let r = match repeat {
                Some(count) => {
                    let patch = serde_json::json!({"count": count, "lastTimestamp": now});
                    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .map(|_| ())
                }
                None => api.create(&PostParams::default(), &event).await.map(|_| ()),
            };
            if let Err(e) = r {
                tracing::debug!(error = %e, event = %name, "cannot publish event");
            }
        });
    }
}

/// Keeps events in memory (tests), as `(reason, message)`.
#[derive(Default)]
pub struct MemoryEvents(pub Mutex<Vec<(String, String)>>);

impl MemoryEvents {
    pub fn all(&self) -> Vec<(String, String)> {
        self.0.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl EventSink for MemoryEvents {
    fn emit(&self, _: &Pod, _: Option<String>, _: Kind, reason: &str, message: String) {
        if let Ok(mut e) = self.0.lock() {
            e.push((reason.to_string(), message));
        }
    }
}
