//! Events the agent reports about pods (`Pulling`, `Pulled`, `Failed`, `BackOff`), as the
//! kubelet does: an [`EventSink`] the pod workers call without waiting, published through
//! the API by [`ApiEvents`] (kube's recorder aggregates repeats into a series).
//!
//! Owns: event emission. May call: the API server (events only).

use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use std::sync::Mutex;

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

/// Publishes `events.k8s.io/v1` events as `kubelet` on this node.
pub struct ApiEvents {
    recorder: Recorder,
}

impl ApiEvents {
    pub fn new(client: kube::Client, node_name: &str) -> Self {
        ApiEvents {
            recorder: Recorder::new(
                client,
                Reporter {
                    controller: "kubelet".into(),
                    instance: Some(node_name.to_string()),
                },
            ),
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
        let recorder = self.recorder.clone();
        let object = reference(pod, field);
        let ev = Event {
            type_: match kind {
                Kind::Normal => EventType::Normal,
                Kind::Warning => EventType::Warning,
            },
            reason: reason.to_string(),
            note: Some(message),
            action: reason.to_string(),
            secondary: None,
        };
        // Best effort, off the worker's path: a slow API must not delay containers.
        tokio::spawn(async move {
            if let Err(e) = recorder.publish(&ev, &object).await {
                tracing::debug!(error = %e, reason = %ev.reason, "cannot publish event");
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
