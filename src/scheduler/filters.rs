//! Scheduler filters: whether a pod fits a node. Each filter is a pure function returning the
//! upstream-worded reasons a node was rejected (empty = fits).
//!
//! Owns: feasibility rules. Pure; calls nothing.

use super::resources::{NodeInfo, host_ports, pod_requests};
use crate::controllers::labels;
use k8s_openapi::api::core::v1::{NodeSelectorTerm, Pod, PodAffinityTerm, Taint, Toleration};
use std::collections::{BTreeMap, HashMap};

/// Run every filter; all reasons of the failing filters.
pub fn filter(pod: &Pod, node: &NodeInfo, all: &[NodeInfo]) -> Vec<String> {
    let mut out = Vec::new();
    out.extend(unschedulable(pod, node));
    out.extend(node_affinity(pod, node));
    out.extend(taints(pod, node));
    out.extend(resources(pod, node));
    out.extend(ports(pod, node));
    out.extend(inter_pod_affinity(pod, node, all));
    out.extend(topology_spread(pod, node, all));
    out
}

/// `spec.unschedulable` nodes only take pods tolerating `node.kubernetes.io/unschedulable`.
pub fn unschedulable(pod: &Pod, node: &NodeInfo) -> Option<String> {
    let cordoned = node
        .node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    let taint = Taint {
        key: "node.kubernetes.io/unschedulable".into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    };
    (cordoned && !tolerated(tolerations(pod), &taint))
        .then(|| "node(s) were unschedulable".to_string())
}

/// Requests vs allocatable minus what bound pods request.
pub fn resources(pod: &Pod, node: &NodeInfo) -> Vec<String> {
    let want = pod_requests(pod);
    let (have, used) = (&node.allocatable, &node.requested);
    let mut out = Vec::new();
    if used.pods + 1.0 > have.pods {
        out.push("Too many pods".to_string());
    }
    if want.milli_cpu > 0.0 && used.milli_cpu + want.milli_cpu > have.milli_cpu {
        out.push("Insufficient cpu".to_string());
    }
    if want.memory > 0.0 && used.memory + want.memory > have.memory {
        out.push("Insufficient memory".to_string());
    }
    if want.ephemeral > 0.0 && used.ephemeral + want.ephemeral > have.ephemeral {
        out.push("Insufficient ephemeral-storage".to_string());
    }
    out
}

/// Host ports must be free (a 0.0.0.0 binding conflicts with every IP).
pub fn ports(pod: &Pod, node: &NodeInfo) -> Option<String> {
    let conflict = host_ports(pod).iter().any(|(proto, ip, port)| {
        node.used_ports.iter().any(|(p2, ip2, port2)| {
            p2 == proto && port2 == port && (ip == ip2 || ip == "0.0.0.0" || ip2 == "0.0.0.0")
        })
    });
    conflict.then(|| "node(s) didn't have free ports for the requested pod ports".to_string())
}

pub(super) fn term_matches(term: &NodeSelectorTerm, node: &NodeInfo) -> bool {
    let exprs_ok = term
        .match_expressions
        .iter()
        .flatten()
        .all(|e| labels::node_requirement_matches(e, node.labels()));
    let fields: BTreeMap<String, String> =
        BTreeMap::from([("metadata.name".to_string(), node.name().to_string())]);
    let fields_ok = term
        .match_fields
        .iter()
        .flatten()
        .all(|e| labels::node_requirement_matches(e, &fields));
    let empty = term.match_expressions.as_ref().is_none_or(|v| v.is_empty())
        && term.match_fields.as_ref().is_none_or(|v| v.is_empty());
    !empty && exprs_ok && fields_ok
}

/// Whether the node satisfies the pod's nodeSelector and required node affinity.
pub fn node_matches_pod(pod: &Pod, node: &NodeInfo) -> bool {
    let Some(spec) = &pod.spec else { return true };
    if let Some(sel) = &spec.node_selector {
        if sel.iter().any(|(k, v)| node.labels().get(k) != Some(v)) {
            return false;
        }
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        None => true,
        Some(r) => r.node_selector_terms.iter().any(|t| term_matches(t, node)),
    }
}

/// nodeSelector + required node affinity.
pub fn node_affinity(pod: &Pod, node: &NodeInfo) -> Option<String> {
    (!node_matches_pod(pod, node))
        .then(|| "node(s) didn't match Pod's node affinity/selector".to_string())
}

/// Preferred node affinity weight sum for a node (for scoring).
pub fn preferred_node_affinity(pod: &Pod, node: &NodeInfo) -> i64 {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|prefs| {
            prefs
                .iter()
                .filter(|p| term_matches(&p.preference, node))
                .map(|p| i64::from(p.weight))
                .sum()
        })
        .unwrap_or(0)
}

fn tolerations(pod: &Pod) -> &[Toleration] {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[])
}

/// Whether one toleration tolerates a taint.
pub fn toleration_matches(t: &Toleration, taint: &Taint) -> bool {
    if let Some(e) = t.effect.as_deref().filter(|e| !e.is_empty()) {
        if e != taint.effect {
            return false;
        }
    }
    let key = t.key.as_deref().unwrap_or("");
    let op = t.operator.as_deref().unwrap_or("Equal");
    if key.is_empty() {
        return op == "Exists";
    }
    if key != taint.key {
        return false;
    }
    match op {
        "Exists" => true,
        "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

/// Whether any of `tols` tolerates `taint`.
pub fn tolerated(tols: &[Toleration], taint: &Taint) -> bool {
    tols.iter().any(|t| toleration_matches(t, taint))
}

/// NoSchedule and NoExecute taints must be tolerated.
pub fn taints(pod: &Pod, node: &NodeInfo) -> Option<String> {
    let taints = node
        .node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[]);
    taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|t| !tolerated(tolerations(pod), t))
        .map(|t| {
            format!(
                "node(s) had untolerated taint {{{}: {}}}",
                t.key,
                t.value.as_deref().unwrap_or("")
            )
        })
}

fn term_selects(term: &PodAffinityTerm, owner_ns: &str, other: &Pod) -> bool {
    let ns = other.metadata.namespace.as_deref().unwrap_or("");
    let ns_ok = match (&term.namespaces, &term.namespace_selector) {
        (Some(list), _) if !list.is_empty() => list.iter().any(|n| n == ns),
        // A namespace selector needs namespace labels we do not cache: treat `{}` as all.
        (_, Some(sel)) => labels::is_empty(sel),
        _ => ns == owner_ns,
    };
    ns_ok && labels::matches(term.label_selector.as_ref(), other.metadata.labels.as_ref())
}

fn topology_value<'a>(node: &'a NodeInfo, key: &str) -> Option<&'a String> {
    node.labels().get(key)
}

fn same_domain(a: &NodeInfo, b: &NodeInfo, key: &str) -> bool {
    match (topology_value(a, key), topology_value(b, key)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// Required pod affinity / anti-affinity of the incoming pod, and existing pods' required
/// anti-affinity against the incoming pod.
pub fn inter_pod_affinity(pod: &Pod, node: &NodeInfo, all: &[NodeInfo]) -> Vec<String> {
    let mut out = Vec::new();
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    let aff = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    let affinity_terms = aff
        .and_then(|a| a.pod_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or(&[]);
    for term in affinity_terms {
        let anywhere = all
            .iter()
            .any(|n| n.pods.iter().any(|p| term_selects(term, ns, p)));
        let here = all.iter().any(|n| {
            same_domain(n, node, &term.topology_key)
                && n.pods.iter().any(|p| term_selects(term, ns, p))
        });
        // Upstream: the first pod of a group that selects itself may go anywhere.
        let self_match = !anywhere && term_selects(term, ns, pod);
        if !here && !self_match {
            out.push("node(s) didn't match pod affinity rules".to_string());
            break;
        }
    }
    let anti_terms = aff
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or(&[]);
    for term in anti_terms {
        let clash = all.iter().any(|n| {
            same_domain(n, node, &term.topology_key)
                && n.pods.iter().any(|p| term_selects(term, ns, p))
        });
        if clash {
            out.push("node(s) didn't match pod anti-affinity rules".to_string());
            break;
        }
    }
    let existing_clash = all.iter().filter(|n| n.anti_affinity_pods > 0).any(|n| {
        n.pods.iter().any(|p| {
            let pns = p.metadata.namespace.as_deref().unwrap_or("");
            p.spec
                .as_ref()
                .and_then(|s| s.affinity.as_ref())
                .and_then(|a| a.pod_anti_affinity.as_ref())
                .and_then(|a| {
                    a.required_during_scheduling_ignored_during_execution
                        .as_ref()
                })
                .is_some_and(|terms| {
                    terms
                        .iter()
                        .any(|t| term_selects(t, pns, pod) && same_domain(n, node, &t.topology_key))
                })
        })
    });
    if existing_clash {
        out.push("node(s) didn't satisfy existing pods anti-affinity rules".to_string());
    }
    out
}

/// `topologySpreadConstraints` with `whenUnsatisfiable: DoNotSchedule`.
pub fn topology_spread(pod: &Pod, node: &NodeInfo, all: &[NodeInfo]) -> Option<String> {
    let constraints = pod
        .spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_deref())
        .unwrap_or(&[]);
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    for c in constraints
        .iter()
        .filter(|c| c.when_unsatisfiable == "DoNotSchedule")
    {
        let Some(domain) = topology_value(node, &c.topology_key) else {
            return Some(
                "node(s) didn't match pod topology spread constraints (missing required label)"
                    .into(),
            );
        };
        let mut counts: HashMap<&String, i64> = HashMap::new();
        // Eligible domains: nodes with the key that the pod's node affinity allows (Honor).
        for n in all.iter().filter(|n| node_matches_pod(pod, n)) {
            if let Some(d) = topology_value(n, &c.topology_key) {
                let k = n
                    .pods
                    .iter()
                    .filter(|p| {
                        p.metadata.namespace.as_deref() == Some(ns)
                            && labels::matches(
                                c.label_selector.as_ref(),
                                p.metadata.labels.as_ref(),
                            )
                    })
                    .count() as i64;
                *counts.entry(d).or_insert(0) += k;
            }
        }
        let min = counts.values().copied().min().unwrap_or(0);
        let self_match = i64::from(labels::matches(
            c.label_selector.as_ref(),
            pod.metadata.labels.as_ref(),
        ));
        let here = counts.get(domain).copied().unwrap_or(0);
        if here + self_match - min > i64::from(c.max_skew) {
            return Some("node(s) didn't match pod topology spread constraints".into());
        }
    }
    None
}
