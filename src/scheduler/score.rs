//! Scheduler scoring: ranks the feasible nodes. Pure; calls nothing.
//!
//! Scores (0–100 each, summed): least-allocated, balanced allocation, preferred node affinity
//! (normalised), and spreading of a controller's replicas (fewer siblings is better).

use super::filters::preferred_node_affinity;
use super::resources::{NodeInfo, pod_requests};
use k8s_openapi::api::core::v1::Pod;

/// Upstream's defaults for pods that request nothing, so they still spread by count.
const DEFAULT_MILLI_CPU: f64 = 100.0;
const DEFAULT_MEMORY: f64 = 200.0 * 1024.0 * 1024.0;

fn fractions(pod: &Pod, node: &NodeInfo) -> (f64, f64) {
    let want = pod_requests(pod);
    let cpu = if want.milli_cpu > 0.0 {
        want.milli_cpu
    } else {
        DEFAULT_MILLI_CPU
    };
    let mem = if want.memory > 0.0 {
        want.memory
    } else {
        DEFAULT_MEMORY
    };
    // Bound pods without requests count with the same defaults.
    let mut used_cpu = 0.0;
    let mut used_mem = 0.0;
    for p in &node.pods {
        let r = pod_requests(p);
        used_cpu += if r.milli_cpu > 0.0 {
            r.milli_cpu
        } else {
            DEFAULT_MILLI_CPU
        };
        used_mem += if r.memory > 0.0 {
            r.memory
        } else {
            DEFAULT_MEMORY
        };
    }
    let frac = |used: f64, alloc: f64| {
        if alloc <= 0.0 {
            1.0
        } else {
            (used / alloc).min(1.0)
        }
    };
    (
        frac(used_cpu + cpu, node.allocatable.milli_cpu),
        frac(used_mem + mem, node.allocatable.memory),
    )
}

/// Least allocated: more free cpu and memory after placing the pod scores higher.
pub fn least_allocated(pod: &Pod, node: &NodeInfo) -> f64 {
    let (c, m) = fractions(pod, node);
    ((1.0 - c) + (1.0 - m)) * 50.0
}

/// Balanced allocation: cpu and memory fractions close together score higher.
pub fn balanced(pod: &Pod, node: &NodeInfo) -> f64 {
    let (c, m) = fractions(pod, node);
    (1.0 - (c - m).abs()) * 100.0
}

fn controller_uid(pod: &Pod) -> Option<&str> {
    pod.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str())
}

/// Number of pods on `node` with the same controller as `pod`.
pub fn siblings(pod: &Pod, node: &NodeInfo) -> usize {
    let Some(uid) = controller_uid(pod) else {
        return 0;
    };
    node.pods
        .iter()
        .filter(|p| controller_uid(p) == Some(uid))
        .count()
}

/// Total scores of `nodes` for `pod` (same order).
pub fn score(pod: &Pod, nodes: &[&NodeInfo]) -> Vec<f64> {
    let affinity: Vec<i64> = nodes
        .iter()
        .map(|n| preferred_node_affinity(pod, n))
        .collect();
    let max_aff = affinity.iter().copied().max().unwrap_or(0);
    let sib: Vec<usize> = nodes.iter().map(|n| siblings(pod, n)).collect();
    let max_sib = sib.iter().copied().max().unwrap_or(0);
    nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let aff = if max_aff > 0 {
                affinity[i] as f64 * 100.0 / max_aff as f64
            } else {
                0.0
            };
            let spread = if max_sib > 0 {
                (max_sib - sib[i]) as f64 * 100.0 / max_sib as f64
            } else {
                100.0
            };
            // Preferred affinity weighs double, as upstream's default plugin weights do.
            least_allocated(pod, n) + balanced(pod, n) + 2.0 * aff + spread
        })
        .collect()
}

/// Index of the best node (ties: the first, nodes are sorted by name).
pub fn best(pod: &Pod, nodes: &[&NodeInfo]) -> Option<usize> {
    let scores = score(pod, nodes);
    let mut best: Option<(usize, f64)> = None;
    for (i, s) in scores.into_iter().enumerate() {
        if best.is_none_or(|(_, b)| s > b + 1e-9) {
            best = Some((i, s));
        }
    }
    best.map(|(i, _)| i)
}
