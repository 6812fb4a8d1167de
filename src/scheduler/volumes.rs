//! Volume checks of the scheduler (upstream's VolumeBinding plugin, without delayed
//! binding): a pod whose PersistentVolumeClaims are missing or not bound yet stays pending
//! ("pod has unbound immediate PersistentVolumeClaims"), and a pod whose bound volumes carry
//! node affinity (local PVs) only fits the nodes those select.
//!
//! Owns: the per-pod volume view handed to the filter loop. May call: the API server (GET
//! of claims and volumes, only for pods that use claims).

use super::filters::term_matches;
use super::resources::NodeInfo;
use k8s_openapi::api::core::v1::{NodeSelector, PersistentVolume, PersistentVolumeClaim, Pod};
use kube::Api;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// What a pod's volumes require of a node.
#[derive(Debug, Default)]
pub(super) struct PodVolumes {
    /// Required node affinity of each bound PV.
    selectors: Vec<NodeSelector>,
}

impl PodVolumes {
    /// The filter reason when `node` is outside a volume's node affinity.
    pub(super) fn conflict(&self, node: &NodeInfo) -> Option<String> {
        self.selectors
            .iter()
            .any(|s| !s.node_selector_terms.iter().any(|t| term_matches(t, node)))
            .then(|| "node(s) had volume node affinity conflict".to_string())
    }
}

/// The upstream message of a failure that no node can fix (a PreFilter rejection).
pub(super) fn unresolvable_message(total: usize, why: &str) -> String {
    format!(
        "0/{total} nodes are available: {why}. preemption: 0/{total} nodes are available: {total} Preemption is not helpful for scheduling."
    )
}

/// The volume requirements of `pod`, or why it cannot be scheduled at all yet.
///
/// # Errors
/// When the API server fails (the caller retries).
pub(super) async fn check(
    client: &kube::Client,
    pod: &Pod,
) -> Result<Result<PodVolumes, String>, kube::Error> {
    let mut out = PodVolumes::default();
    let claims: Vec<&str> = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.as_str())
        .collect();
    if claims.is_empty() {
        return Ok(Ok(out));
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let mut unbound = false;
    for name in claims {
        let Some(pvc) = pvcs.get_opt(name).await? else {
            return Ok(Err(format!("persistentvolumeclaim \"{name}\" not found")));
        };
        if pvc.metadata.deletion_timestamp.is_some() {
            return Ok(Err(format!(
                "persistentvolumeclaim \"{name}\" is being deleted"
            )));
        }
        let volume = pvc
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .filter(|v| !v.is_empty());
        let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
        let (Some(volume), true) = (volume, bound) else {
            unbound = true;
            continue;
        };
        let Some(pv) = pvs.get_opt(&volume).await? else {
            return Ok(Err("pvc(s) bound to non-existent pv(s)".to_string()));
        };
        if let Some(sel) = pv
            .spec
            .and_then(|s| s.node_affinity)
            .and_then(|a| a.required)
        {
            out.selectors.push(sel);
        }
    }
    if unbound {
        return Ok(Err(
            "pod has unbound immediate PersistentVolumeClaims".to_string()
        ));
    }
    Ok(Ok(out))
}

/// Retries the unschedulable pods (through `retry`) whenever a claim becomes bound, so a
/// pod waiting for its claim is scheduled as soon as the binder is done.
pub(super) async fn retry_on_bound_claims(
    client: kube::Client,
    mut retry: futures::channel::mpsc::Sender<()>,
    waiting: Arc<Mutex<HashSet<String>>>,
) {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let mut events = std::pin::pin!(
        watcher(
            Api::<PersistentVolumeClaim>::all(client),
            watcher::Config::default()
        )
        .default_backoff()
    );
    while let Some(e) = events.next().await {
        let bound = match e {
            Ok(watcher::Event::Apply(c)) => {
                c.status.and_then(|s| s.phase).as_deref() == Some("Bound")
            }
            _ => false,
        };
        let any_waiting = !waiting.lock().unwrap_or_else(|p| p.into_inner()).is_empty();
        if bound && any_waiting {
            let _ = retry.try_send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Node;

    fn node(name: &str, host: &str) -> NodeInfo {
        let n: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": host}}
        }))
        .unwrap();
        NodeInfo::new(Arc::new(n))
    }

    #[test]
    fn volume_node_affinity_selects_nodes() {
        let sel: NodeSelector = serde_json::from_value(serde_json::json!({
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": ["a"]}
            ]}]
        }))
        .unwrap();
        let v = PodVolumes {
            selectors: vec![sel],
        };
        assert_eq!(v.conflict(&node("a", "a")), None);
        assert_eq!(
            v.conflict(&node("b", "b")).as_deref(),
            Some("node(s) had volume node affinity conflict")
        );
        assert_eq!(PodVolumes::default().conflict(&node("b", "b")), None);
    }

    #[test]
    fn unresolvable_messages_have_the_upstream_shape() {
        assert_eq!(
            unresolvable_message(1, "pod has unbound immediate PersistentVolumeClaims"),
            "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
        );
    }
}
