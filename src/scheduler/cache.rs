//! The scheduler cache: node views ([`NodeInfo`]) kept up to date from node and pod watch
//! events, plus the pods this scheduler assumed (binding sent, not yet observed), so that a
//! decision reads the views instead of rebuilding them from every pod (upstream's scheduler
//! cache, in small).
//!
//! Owns: placements (pod key → node) and assumptions. Pure bookkeeping; calls nothing.

use super::resources::{NodeInfo, is_terminal};
use k8s_openapi::api::core::v1::{Node, Pod};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A pod counted on a node: the exact `Arc` added to the node's view (removal finds it by
/// pointer) and the node's name (the node may not be known yet).
struct Placement {
    pod: Arc<Pod>,
    node: String,
}

/// Node views plus the placements they are built from.
#[derive(Default)]
pub struct Cache {
    /// One view per known node, sorted by name (scores break ties by order).
    infos: Vec<NodeInfo>,
    /// Node name → index in `infos`.
    index: HashMap<String, usize>,
    /// Pod key → where it is counted (bound pods as observed, and assumed pods).
    placed: HashMap<String, Placement>,
    /// Assumed pods (pod key → when): bindings this scheduler sent that the pod watch has not
    /// shown yet.
    assumed: HashMap<String, Instant>,
}

/// `namespace/name`.
pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// The node a pod holds resources on: bound and not finished.
fn holding_node(pod: &Pod) -> Option<&str> {
    if is_terminal(pod) {
        return None;
    }
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

fn is_bound(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
}

impl Cache {
    /// The node views, sorted by node name.
    pub fn infos(&self) -> &[NodeInfo] {
        &self.infos
    }

    /// Whether the pod is counted on a node (observed bound, or assumed).
    pub fn is_placed(&self, key: &str) -> bool {
        self.placed.contains_key(key)
    }

    /// Whether the pod is assumed (binding sent, not observed).
    #[cfg(test)]
    pub fn is_assumed(&self, key: &str) -> bool {
        self.assumed.contains_key(key)
    }

    fn rebuild_index(&mut self) {
        self.index = self
            .infos
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name().to_string(), i))
            .collect();
    }

    fn place(&mut self, key: String, pod: Arc<Pod>, node: &str) {
        if let Some(&i) = self.index.get(node) {
            self.infos[i].add_pod(pod.clone());
        }
        self.placed.insert(
            key,
            Placement {
                pod,
                node: node.to_string(),
            },
        );
    }

    fn unplace(&mut self, key: &str) {
        if let Some(p) = self.placed.remove(key) {
            if let Some(&i) = self.index.get(&p.node) {
                self.infos[i].remove_pod(&p.pod);
            }
        }
    }

    /// A node was added or changed.
    pub fn apply_node(&mut self, node: Arc<Node>) {
        let name = node.metadata.name.clone().unwrap_or_default();
        if let Some(&i) = self.index.get(&name) {
            self.infos[i].set_node(node);
            return;
        }
        let mut info = NodeInfo::new(node);
        // Pods bound to a node before the node was seen count from now on.
        for p in self.placed.values().filter(|p| p.node == name) {
            info.add_pod(p.pod.clone());
        }
        let at = self.infos.partition_point(|n| n.name() < name.as_str());
        self.infos.insert(at, info);
        self.rebuild_index();
    }

    /// A node was deleted.
    pub fn delete_node(&mut self, name: &str) {
        if self.index.contains_key(name) {
            self.infos.retain(|n| n.name() != name);
            self.rebuild_index();
        }
    }

    /// The node watch (re)listed: exactly these nodes exist.
    pub fn reset_nodes(&mut self, nodes: Vec<Arc<Node>>) {
        let names: HashSet<String> = nodes
            .iter()
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        self.infos.retain(|n| names.contains(n.name()));
        self.rebuild_index();
        for n in nodes {
            self.apply_node(n);
        }
    }

    /// A pod was added or changed.
    pub fn apply_pod(&mut self, pod: Arc<Pod>) {
        let key = pod_key(&pod);
        if self.assumed.contains_key(&key) {
            // A pod re-created under the same name (StatefulSet members) is not the one we
            // assumed: drop the old assumption or the new pod would wait for its expiry.
            let same_pod = self
                .placed
                .get(&key)
                .is_some_and(|p| p.pod.metadata.uid == pod.metadata.uid);
            if same_pod && !is_bound(&pod) {
                // The watch has not caught up with our binding yet: keep the assumption.
                return;
            }
            self.assumed.remove(&key);
        }
        let Some(node) = holding_node(&pod).map(str::to_string) else {
            self.unplace(&key);
            return;
        };
        if let Some(p) = self.placed.get_mut(&key) {
            if p.node == node {
                let old = std::mem::replace(&mut p.pod, pod.clone());
                if let Some(&i) = self.index.get(&node) {
                    self.infos[i].replace_pod(&old, pod);
                }
                return;
            }
        }
        self.unplace(&key);
        self.place(key, pod, &node);
    }

    /// A pod was deleted.
    pub fn delete_pod(&mut self, pod: &Pod) {
        let key = pod_key(pod);
        self.assumed.remove(&key);
        self.unplace(&key);
    }

    /// The pod watch (re)listed: exactly these pods exist. Assumptions survive for listed
    /// pods that are still unbound.
    pub fn reset_pods(&mut self, pods: Vec<Arc<Pod>>) {
        let unbound: HashSet<String> = pods
            .iter()
            .filter(|p| !is_bound(p))
            .map(|p| pod_key(p))
            .collect();
        self.assumed.retain(|k, _| unbound.contains(k));
        let kept: Vec<(String, Arc<Pod>, String)> = self
            .placed
            .iter()
            .filter(|(k, _)| self.assumed.contains_key(*k))
            .map(|(k, p)| (k.clone(), p.pod.clone(), p.node.clone()))
            .collect();
        self.placed.clear();
        for info in &mut self.infos {
            info.clear_pods();
        }
        for (k, p, n) in kept {
            self.place(k, p, &n);
        }
        for p in pods {
            self.apply_pod(p);
        }
    }

    /// Count `pod` on `node` until the watch shows it bound (or [`Cache::expire`] or
    /// [`Cache::forget`] drops it).
    pub fn assume(&mut self, pod: Arc<Pod>, node: &str) {
        let key = pod_key(&pod);
        self.unplace(&key);
        self.place(key.clone(), pod, node);
        self.assumed.insert(key, Instant::now());
    }

    /// Drop an assumption (its binding failed).
    pub fn forget(&mut self, key: &str) {
        if self.assumed.remove(key).is_some() {
            self.unplace(key);
        }
    }

    /// Drop assumptions older than `ttl` (bindings never confirmed).
    pub fn expire(&mut self, ttl: Duration) {
        let old: Vec<String> = self
            .assumed
            .iter()
            .filter(|(_, at)| at.elapsed() >= ttl)
            .map(|(k, _)| k.clone())
            .collect();
        for k in old {
            self.forget(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::resources::build_node_infos;
    use serde_json::json;

    fn node(name: &str) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}
            }))
            .unwrap(),
        )
    }

    fn pod(name: &str, node: Option<&str>, cpu: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x",
                    "resources": {"requests": {"cpu": cpu}},
                    "ports": [{"containerPort": 80, "hostPort": 8080}]}]}
            }))
            .unwrap(),
        )
    }

    /// (node, milli-cpu requested, pod count, used ports) per node.
    fn summary(infos: &[NodeInfo]) -> Vec<(String, f64, usize, usize)> {
        infos
            .iter()
            .map(|n| {
                (
                    n.name().to_string(),
                    n.requested.milli_cpu,
                    n.pods.len(),
                    n.used_ports.len(),
                )
            })
            .collect()
    }

    #[test]
    fn incremental_views_equal_a_full_rebuild_after_adds_moves_and_deletes() {
        let mut c = Cache::default();
        let nodes = vec![node("b"), node("a")];
        c.reset_nodes(nodes.clone());
        let p1 = pod("p1", Some("a"), "100m");
        let p2 = pod("p2", Some("b"), "200m");
        let p3 = pod("p3", Some("c"), "300m");
        c.reset_pods(vec![p1.clone(), p2.clone(), p3.clone()]);
        // p2 moves to a (a re-created pod of the same name), p1 finishes, p3's node appears.
        let p2b = pod("p2", Some("a"), "250m");
        c.apply_pod(p2b.clone());
        let mut p1_done = (*p1).clone();
        p1_done.status = Some(serde_json::from_value(json!({"phase": "Succeeded"})).unwrap());
        c.apply_pod(Arc::new(p1_done.clone()));
        let all_nodes = vec![node("a"), node("b"), node("c")];
        c.apply_node(all_nodes[2].clone());
        let pods = vec![Arc::new(p1_done), p2b, p3];
        assert_eq!(
            summary(c.infos()),
            summary(&build_node_infos(&all_nodes, &pods, &[]))
        );
        assert_eq!(summary(c.infos())[0], ("a".to_string(), 250.0, 1, 1));
        c.delete_pod(&pods[1]);
        c.delete_node("c");
        assert_eq!(
            summary(c.infos()),
            vec![("a".into(), 0.0, 0, 0), ("b".into(), 0.0, 0, 0)]
        );
    }

    #[test]
    fn assumed_pods_count_until_observed_bound_or_forgotten() {
        let mut c = Cache::default();
        c.reset_nodes(vec![node("a"), node("b")]);
        let p = pod("p", None, "1");
        c.apply_pod(p.clone());
        assert!(!c.is_placed("default/p"));
        c.assume(p.clone(), "a");
        // The watch still shows the pod unbound: the assumption holds.
        c.apply_pod(p.clone());
        assert!(c.is_assumed("default/p"));
        assert_eq!(c.infos()[0].requested.milli_cpu, 1000.0);
        // Observed bound elsewhere (another scheduler won): counted where it really is.
        c.apply_pod(pod("p", Some("b"), "1"));
        assert!(!c.is_assumed("default/p"));
        assert_eq!(c.infos()[0].requested.milli_cpu, 0.0);
        assert_eq!(c.infos()[1].requested.milli_cpu, 1000.0);

        let q = pod("q", None, "2");
        c.assume(q, "a");
        c.forget("default/q");
        assert_eq!(c.infos()[0].requested.milli_cpu, 0.0);
        c.assume(pod("r", None, "2"), "a");
        c.expire(Duration::ZERO);
        assert!(!c.is_placed("default/r"));
        assert_eq!(c.infos()[0].pods.len(), 0);
    }

    #[test]
    fn a_relist_keeps_assumptions_of_listed_unbound_pods_only() {
        let mut c = Cache::default();
        c.reset_nodes(vec![node("a")]);
        c.assume(pod("kept", None, "1"), "a");
        c.assume(pod("gone", None, "1"), "a");
        c.reset_pods(vec![
            pod("kept", None, "1"),
            pod("other", Some("a"), "500m"),
        ]);
        assert!(c.is_assumed("default/kept"));
        assert!(!c.is_placed("default/gone"));
        assert_eq!(c.infos()[0].requested.milli_cpu, 1500.0);
        assert_eq!(c.infos()[0].pods.len(), 2);
    }
}
