//! Which pod goes first, as the kubelet ranks them: for memory, pods whose usage exceeds
//! their requests (pods without stats before all), then lower priority, then the larger
//! usage above requests; for disk the same with ephemeral-storage (bytes) or file counts
//! (inodes). Critical pods (static, mirror, or priority ≥ 2000000000) are never candidates.
//! Also the `Evicted` message.
//!
//! Owns: ranking and messages (pure). May call: nothing.

use super::signals::PodUsage;
use super::threshold::{Signal, format_quantity};
use k8s_openapi::api::core::v1::{Container, Pod};
use std::cmp::Ordering;

/// `scheduling.SystemCriticalPriority`: pods at or above it are never evicted.
pub const SYSTEM_CRITICAL_PRIORITY: i32 = 2_000_000_000;

/// A pod and what it uses.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub pod: Pod,
    pub usage: Option<PodUsage>,
}

/// Static or mirror pods and pods of system-critical priority (upstream `IsCriticalPod`).
pub fn is_critical(pod: &Pod) -> bool {
    let ann = pod.metadata.annotations.as_ref();
    let source = ann.and_then(|a| a.get("kubernetes.io/config.source"));
    let mirror = ann.is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
    let is_static = source.is_some_and(|s| s != "api");
    is_static || mirror || priority(pod) >= SYSTEM_CRITICAL_PRIORITY
}

fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

fn request_of(c: &Container, resource: &str) -> u64 {
    c.resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get(resource))
        .and_then(|q| crate::quantity::parse_quantity(&q.0))
        .map(|v| v.max(0.0).ceil() as u64)
        .unwrap_or(0)
}

/// The pod's request of `resource`: the larger of its containers' sum and any one init
/// container's (the effective request the scheduler uses).
pub fn pod_request(pod: &Pod, resource: &str) -> u64 {
    let Some(spec) = pod.spec.as_ref() else {
        return 0;
    };
    let sum: u64 = spec
        .containers
        .iter()
        .map(|c| request_of(c, resource))
        .sum();
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| request_of(c, resource))
        .max()
        .unwrap_or(0);
    sum.max(init)
}

/// (usage, request) of the resource `signal` is about.
fn usage_and_request(c: &Candidate, signal: Signal) -> (Option<u64>, u64) {
    match signal {
        Signal::MemoryAvailable => (
            c.usage.as_ref().and_then(|u| u.memory),
            pod_request(&c.pod, "memory"),
        ),
        Signal::NodeFsInodesFree | Signal::ImageFsInodesFree => {
            (c.usage.as_ref().and_then(|u| u.inodes), 0)
        }
        // Upstream ranks by priority, then by processes: with no request, every pod with
        // stats "exceeds" alike and the order falls to priority and count.
        Signal::PidAvailable => (c.usage.as_ref().and_then(|u| u.pids), 0),
        Signal::NodeFsAvailable | Signal::ImageFsAvailable => (
            c.usage.as_ref().and_then(|u| u.disk),
            pod_request(&c.pod, "ephemeral-storage"),
        ),
    }
}

fn compare(a: &Candidate, b: &Candidate, signal: Signal) -> Ordering {
    let (ua, ra) = usage_and_request(a, signal);
    let (ub, rb) = usage_and_request(b, signal);
    // Pods without stats first (upstream cannot judge them either and evicts them first).
    let (Some(ua), Some(ub)) = (ua, ub) else {
        return ua.is_some().cmp(&ub.is_some());
    };
    let exceeds_a = ua > ra;
    let exceeds_b = ub > rb;
    exceeds_b
        .cmp(&exceeds_a)
        .then_with(|| priority(&a.pod).cmp(&priority(&b.pod)))
        .then_with(|| {
            let over_a = ua as i128 - ra as i128;
            let over_b = ub as i128 - rb as i128;
            over_b.cmp(&over_a)
        })
}

/// Non-critical candidates, first to evict first, for pressure on `signal`.
pub fn rank(mut candidates: Vec<Candidate>, signal: Signal) -> Vec<Candidate> {
    candidates.retain(|c| !is_critical(&c.pod));
    candidates.sort_by(|a, b| compare(a, b, signal));
    candidates
}

/// The pod's status message, as upstream words it: the resource, the threshold and what
/// was available, then (for memory and ephemeral storage) each container using more than
/// its request.
pub fn eviction_message(signal: Signal, threshold: u64, available: u64, c: &Candidate) -> String {
    let mut msg = format!(
        "The node was low on resource: {}. Threshold quantity: {}, available: {}. ",
        signal.resource(),
        format_quantity(threshold),
        format_quantity(available)
    );
    if signal == Signal::MemoryAvailable
        && let Some(usage) = &c.usage
    {
        for container in c.pod.spec.iter().flat_map(|s| s.containers.iter()) {
            let Some((_, used)) = usage
                .container_memory
                .iter()
                .find(|(n, _)| *n == container.name)
            else {
                continue;
            };
            let req = request_of(container, "memory");
            if *used > req {
                msg.push_str(&format!(
                    "Container {} was using {}, request is {}, has larger consumption of {}. ",
                    container.name,
                    format_quantity(*used),
                    format_quantity(req),
                    signal.resource()
                ));
            }
        }
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, priority: i32, mem_request: Option<&str>) -> Pod {
        let resources = match mem_request {
            Some(r) => json!({"requests": {"memory": r}}),
            None => json!({}),
        };
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": name},
            "spec": {"priority": priority, "containers": [
                {"name": "c", "image": "busybox", "resources": resources}
            ]},
        }))
        .unwrap()
    }

    fn cand(p: Pod, mem: Option<u64>) -> Candidate {
        Candidate {
            pod: p,
            usage: mem.map(|m| PodUsage {
                memory: Some(m),
                container_memory: vec![("c".into(), m)],
                ..Default::default()
            }),
        }
    }

    fn names(v: &[Candidate]) -> Vec<String> {
        v.iter()
            .map(|c| c.pod.metadata.name.clone().unwrap())
            .collect()
    }

    const MI: u64 = 1024 * 1024;

    #[test]
    fn pods_exceeding_requests_go_before_higher_priority_ones() {
        let within = cand(pod("within", 0, Some("100Mi")), Some(50 * MI));
        let best_effort = cand(pod("besteffort", 1000, None), Some(10 * MI));
        let r = rank(vec![within, best_effort], Signal::MemoryAvailable);
        assert_eq!(names(&r), ["besteffort", "within"]);
    }

    #[test]
    fn lower_priority_goes_first_among_pods_exceeding_requests() {
        let a = cand(pod("high", 100, None), Some(500 * MI));
        let b = cand(pod("low", 10, None), Some(5 * MI));
        let r = rank(vec![a, b], Signal::MemoryAvailable);
        assert_eq!(names(&r), ["low", "high"]);
    }

    #[test]
    fn larger_usage_above_requests_goes_first_at_equal_priority() {
        let a = cand(pod("small", 0, Some("10Mi")), Some(20 * MI));
        let b = cand(pod("big", 0, Some("10Mi")), Some(200 * MI));
        let c = cand(pod("huge-request", 0, Some("1Gi")), Some(300 * MI));
        let r = rank(vec![a, b, c], Signal::MemoryAvailable);
        assert_eq!(names(&r), ["big", "small", "huge-request"]);
    }

    #[test]
    fn pods_without_stats_are_ranked_first() {
        let a = cand(pod("measured", 0, None), Some(20 * MI));
        let b = cand(pod("unknown", 0, None), None);
        let r = rank(vec![a, b], Signal::MemoryAvailable);
        assert_eq!(names(&r), ["unknown", "measured"]);
    }

    #[test]
    fn critical_static_and_mirror_pods_are_never_candidates() {
        let critical = cand(pod("critical", 2_000_001_000, None), Some(900 * MI));
        let mut st = pod("static", 0, None);
        st.metadata.annotations = Some(
            [(
                "kubernetes.io/config.source".to_string(),
                "file".to_string(),
            )]
            .into(),
        );
        let mut mirror = pod("mirror", 0, None);
        mirror.metadata.annotations =
            Some([("kubernetes.io/config.mirror".to_string(), "x".to_string())].into());
        let normal = cand(pod("normal", 0, None), Some(MI));
        let r = rank(
            vec![critical, cand(st, Some(MI)), cand(mirror, Some(MI)), normal],
            Signal::MemoryAvailable,
        );
        assert_eq!(names(&r), ["normal"]);
    }

    #[test]
    fn disk_ranking_uses_ephemeral_storage_usage() {
        let mut a = cand(pod("quiet", 0, None), None);
        a.usage = Some(PodUsage {
            disk: Some(10),
            ..Default::default()
        });
        let mut b = cand(pod("writer", 0, None), None);
        b.usage = Some(PodUsage {
            disk: Some(10_000),
            ..Default::default()
        });
        let r = rank(vec![a, b], Signal::NodeFsAvailable);
        assert_eq!(names(&r), ["writer", "quiet"]);
    }

    #[test]
    fn pid_ranking_is_by_priority_then_process_count() {
        let usage = |pids| {
            Some(PodUsage {
                pids: Some(pids),
                ..Default::default()
            })
        };
        let mut few = cand(pod("few", 0, None), None);
        few.usage = usage(2);
        let mut forky = cand(pod("forky", 0, None), None);
        forky.usage = usage(500);
        let mut important = cand(pod("important", 1000, None), None);
        important.usage = usage(5000);
        let r = rank(vec![few, important, forky], Signal::PidAvailable);
        assert_eq!(names(&r), ["forky", "few", "important"]);
    }

    #[test]
    fn memory_message_names_the_threshold_and_the_container_over_its_request() {
        let c = cand(pod("p", 0, Some("10Mi")), Some(50 * MI));
        let m = eviction_message(Signal::MemoryAvailable, 100 * MI, 50 * MI, &c);
        assert_eq!(
            m,
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. \
             Container c was using 50Mi, request is 10Mi, has larger consumption of memory. "
        );
    }
}
