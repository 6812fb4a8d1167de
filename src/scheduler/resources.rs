//! Resource arithmetic for scheduling: quantities, pod requests, and a node's view
//! (`NodeInfo`: allocatable, requested by bound pods, used host ports).
//!
//! Owns: the numbers the filters and scores compare. Pure; calls nothing.

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

pub use crate::quantity::parse_quantity;

/// Resources in scheduler units: millicores, bytes, pod count.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Resources {
    /// CPU in millicores.
    pub milli_cpu: f64,
    /// Memory in bytes.
    pub memory: f64,
    /// Ephemeral storage in bytes.
    pub ephemeral: f64,
    /// Number of pods.
    pub pods: f64,
}

impl Resources {
    fn from_map(m: Option<&BTreeMap<String, Quantity>>) -> Self {
        let get = |k: &str| {
            m.and_then(|m| m.get(k))
                .and_then(|q| parse_quantity(&q.0))
                .unwrap_or(0.0)
        };
        Self {
            milli_cpu: get("cpu") * 1000.0,
            memory: get("memory"),
            ephemeral: get("ephemeral-storage"),
            pods: get("pods"),
        }
    }

    fn add(&mut self, o: &Resources) {
        self.milli_cpu += o.milli_cpu;
        self.memory += o.memory;
        self.ephemeral += o.ephemeral;
        self.pods += o.pods;
    }

    fn max(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral = self.ephemeral.max(o.ephemeral);
    }
}

/// A pod's effective request: max(sum of containers, each init container) + overhead; pods = 1.
pub fn pod_requests(pod: &Pod) -> Resources {
    let mut r = Resources::default();
    let Some(spec) = &pod.spec else {
        r.pods = 1.0;
        return r;
    };
    for c in &spec.containers {
        r.add(&Resources::from_map(
            c.resources.as_ref().and_then(|x| x.requests.as_ref()),
        ));
    }
    for c in spec.init_containers.iter().flatten() {
        r.max(&Resources::from_map(
            c.resources.as_ref().and_then(|x| x.requests.as_ref()),
        ));
    }
    r.add(&Resources::from_map(spec.overhead.as_ref()));
    r.pods = 1.0;
    r
}

/// Host ports a pod asks for, as (protocol, hostIP, port).
pub fn host_ports(pod: &Pod) -> Vec<(String, String, i32)> {
    let mut out = Vec::new();
    for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
        for p in c.ports.iter().flatten() {
            if let Some(hp) = p.host_port.filter(|p| *p > 0) {
                out.push((
                    p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    p.host_ip.clone().unwrap_or_else(|| "0.0.0.0".into()),
                    hp,
                ));
            }
        }
    }
    out
}

/// Whether a pod has finished and no longer holds node resources.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// A node plus what is already placed on it.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    /// The node.
    pub node: Arc<Node>,
    /// Pods bound (or assumed) to it that still hold resources.
    pub pods: Vec<Arc<Pod>>,
    /// Allocatable resources.
    pub allocatable: Resources,
    /// Sum of the pods' requests.
    pub requested: Resources,
    /// Host ports in use.
    pub used_ports: HashSet<(String, String, i32)>,
    /// Requests with upstream's non-zero defaults (100m cpu, 200Mi) for scoring.
    pub nonzero_requested: (f64, f64),
    /// How many of the pods carry required pod anti-affinity (skips the scan when 0).
    pub anti_affinity_pods: usize,
}

/// Upstream's scoring defaults for pods that request nothing: (millicores, bytes).
pub const NONZERO_DEFAULTS: (f64, f64) = (100.0, 200.0 * 1024.0 * 1024.0);

/// A pod's requests with the non-zero defaults applied: (millicores, bytes).
pub fn nonzero_requests(pod: &Pod) -> (f64, f64) {
    nonzero_of(&pod_requests(pod))
}

fn has_required_anti_affinity(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .is_some_and(|t| !t.is_empty())
}

fn nonzero_of(r: &Resources) -> (f64, f64) {
    (
        if r.milli_cpu > 0.0 {
            r.milli_cpu
        } else {
            NONZERO_DEFAULTS.0
        },
        if r.memory > 0.0 {
            r.memory
        } else {
            NONZERO_DEFAULTS.1
        },
    )
}

impl NodeInfo {
    /// An empty node view.
    pub fn new(node: Arc<Node>) -> Self {
        let allocatable = Resources::from_map(
            node.status
                .as_ref()
                .and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref())),
        );
        Self {
            node,
            pods: Vec::new(),
            allocatable,
            requested: Resources::default(),
            used_ports: HashSet::new(),
            nonzero_requested: (0.0, 0.0),
            anti_affinity_pods: 0,
        }
    }

    /// Account for a pod placed on this node.
    pub fn add_pod(&mut self, pod: Arc<Pod>) {
        let r = pod_requests(&pod);
        let nz = nonzero_of(&r);
        self.nonzero_requested.0 += nz.0;
        self.nonzero_requested.1 += nz.1;
        self.requested.add(&r);
        self.anti_affinity_pods += usize::from(has_required_anti_affinity(&pod));
        self.used_ports.extend(host_ports(&pod));
        self.pods.push(pod);
    }

    /// Stop accounting for a pod placed earlier with [`NodeInfo::add_pod`] (same `Arc`);
    /// whether it was there.
    pub fn remove_pod(&mut self, pod: &Arc<Pod>) -> bool {
        let Some(i) = self.pods.iter().position(|p| Arc::ptr_eq(p, pod)) else {
            return false;
        };
        self.pods.remove(i);
        // Recount from the remaining pods (a node holds ≤ ~110): subtracting floats would drift
        // from what a fresh count gives.
        self.recount();
        true
    }

    /// Swap a placed pod (same `Arc` as added) for its newer version; recounts only when
    /// what the node accounts for changed. Whether `old` was there.
    pub fn replace_pod(&mut self, old: &Arc<Pod>, new: Arc<Pod>) -> bool {
        let Some(i) = self.pods.iter().position(|p| Arc::ptr_eq(p, old)) else {
            return false;
        };
        let same = pod_requests(old) == pod_requests(&new)
            && host_ports(old) == host_ports(&new)
            && has_required_anti_affinity(old) == has_required_anti_affinity(&new);
        self.pods[i] = new;
        if !same {
            self.recount();
        }
        true
    }

    /// Forget every pod (the scheduler cache re-adds them after a relist).
    pub fn clear_pods(&mut self) {
        self.pods.clear();
        self.recount();
    }

    fn recount(&mut self) {
        let pods = std::mem::take(&mut self.pods);
        self.requested = Resources::default();
        self.used_ports.clear();
        self.nonzero_requested = (0.0, 0.0);
        self.anti_affinity_pods = 0;
        for p in pods {
            self.add_pod(p);
        }
    }

    /// Replace the node object (labels, taints, allocatable), keeping its pods.
    pub fn set_node(&mut self, node: Arc<Node>) {
        let pods = std::mem::take(&mut self.pods);
        *self = Self::new(node);
        self.pods = pods;
        self.recount();
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        self.node.metadata.name.as_deref().unwrap_or("")
    }

    /// The node's labels (empty if none).
    pub fn labels(&self) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.node.metadata.labels.as_ref().unwrap_or(&EMPTY)
    }
}

/// Build node views from the cluster's nodes and pods; `assumed` adds pods we bound whose
/// binding the cache has not seen yet (pod key → node name).
pub fn build_node_infos(
    nodes: &[Arc<Node>],
    pods: &[Arc<Pod>],
    assumed: &[(Arc<Pod>, String)],
) -> Vec<NodeInfo> {
    let mut infos: Vec<NodeInfo> = nodes.iter().cloned().map(NodeInfo::new).collect();
    infos.sort_by(|a, b| a.name().cmp(b.name()));
    let index: std::collections::HashMap<String, usize> = infos
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name().to_string(), i))
        .collect();
    let mut place = |pod: Arc<Pod>, node: &str| {
        if let Some(i) = index.get(node) {
            infos[*i].add_pod(pod);
        }
    };
    for p in pods {
        if is_terminal(p) {
            continue;
        }
        if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.clone()) {
            place(p.clone(), &n);
        }
    }
    for (p, n) in assumed {
        place(p.clone(), n);
    }
    infos
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_with_binary_and_decimal_suffixes() {
        let cases = [
            ("100m", 0.1),
            ("2", 2.0),
            ("1Gi", 1073741824.0),
            ("128Mi", 134217728.0),
            ("1k", 1000.0),
            ("1e3", 1000.0),
            ("0.5", 0.5),
        ];
        for (q, want) in cases {
            let got = parse_quantity(q).unwrap();
            assert!((got - want).abs() < 1e-9, "{q}: {got} != {want}");
        }
        assert_eq!(parse_quantity("12x"), None);
    }
}
