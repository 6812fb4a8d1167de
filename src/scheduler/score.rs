//! Scheduler scoring: ranks the feasible nodes. Pure; calls nothing.
//!
//! Scores (0–100 each, summed): least-allocated, balanced allocation, preferred node affinity
//! (normalised), and spreading of a controller's replicas (fewer siblings is better).

use super::filters::preferred_node_affinity;
use super::resources::{NodeInfo, nonzero_requests};
use k8s_openapi::api::core::v1::Pod;

fn fractions(pod: &Pod, node: &NodeInfo) -> (f64, f64) {
    let (cpu, mem) = nonzero_requests(pod);
    let (used_cpu, used_mem) = node.nonzero_requested;
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
