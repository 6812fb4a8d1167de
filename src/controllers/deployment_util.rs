//! Pure Deployment arithmetic: pod-template-hash, revisions, maxSurge/maxUnavailable, and the
//! rolling-update scale decisions, so they are unit-tested without an API server.
//!
//! Owns: upstream's `deployment/util` numbers. Pure; calls nothing.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The label carrying the template hash.
pub const HASH_LABEL: &str = "pod-template-hash";
/// The revision annotation on Deployments and their ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Desired replicas of the Deployment, stamped on its ReplicaSets.
pub const DESIRED: &str = "deployment.kubernetes.io/desired-replicas";
/// Desired + maxSurge, stamped on its ReplicaSets.
pub const MAX: &str = "deployment.kubernetes.io/max-replicas";

const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-1a 32 over the template's canonical JSON (+ collision count), encoded with upstream's
/// "safe" alphabet (no vowels, no look-alike digits).
pub fn template_hash(tpl: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |b: &[u8]| {
        for x in b {
            h ^= u32::from(*x);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    // serde_json maps are sorted, so the encoding is canonical.
    feed(serde_json::to_string(tpl).unwrap_or_default().as_bytes());
    if let Some(c) = collision_count {
        feed(&c.to_le_bytes());
    }
    h.to_string()
        .bytes()
        .map(|c| char::from(SAFE[usize::from(c) % SAFE.len()]))
        .collect()
}

/// Whether two templates are equal ignoring the pod-template-hash label.
pub fn templates_equal(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        if let Some(l) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            l.remove(HASH_LABEL);
        }
        serde_json::to_value(t).unwrap_or_default()
    };
    strip(a) == strip(b)
}

/// Revision annotation of a ReplicaSet (0 if none).
pub fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn resolve(v: Option<&IntOrString>, total: i32, round_up: bool, default_pct: i32) -> i32 {
    match v {
        Some(IntOrString::Int(i)) => *i,
        Some(IntOrString::String(s)) => {
            let pct = s
                .trim_end_matches('%')
                .parse::<i32>()
                .unwrap_or(default_pct);
            let x = f64::from(total) * f64::from(pct) / 100.0;
            if round_up {
                x.ceil() as i32
            } else {
                x.floor() as i32
            }
        }
        None => resolve(
            Some(&IntOrString::String(format!("{default_pct}%"))),
            total,
            round_up,
            default_pct,
        ),
    }
}

/// (maxSurge, maxUnavailable) for a Deployment; Recreate has (0, 0). Both zero → unavailable 1.
pub fn surge_unavailable(d: &Deployment) -> (i32, i32) {
    let spec = d.spec.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1);
    let strategy = spec.strategy.unwrap_or_default();
    if strategy.type_.as_deref() == Some("Recreate") {
        return (0, 0);
    }
    let ru = strategy.rolling_update.unwrap_or_default();
    let surge = resolve(ru.max_surge.as_ref(), replicas, true, 25).max(0);
    let mut unavailable = resolve(ru.max_unavailable.as_ref(), replicas, false, 25).max(0);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable.min(replicas))
}

/// Replicas of an RS's spec.
pub fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

/// Available replicas we can trust: never more than the RS's spec (the status may lag a
/// scale-down).
pub fn available(rs: &ReplicaSet) -> i32 {
    let a = rs
        .status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0);
    a.min(spec_replicas(rs))
}

/// New replica count for the new RS in a rolling update.
pub fn new_rs_target(d_replicas: i32, surge: i32, new_rs: i32, all_replicas: i32) -> i32 {
    if new_rs >= d_replicas {
        return d_replicas;
    }
    let max_total = d_replicas + surge;
    if all_replicas >= max_total {
        return new_rs;
    }
    new_rs + (max_total - all_replicas).min(d_replicas - new_rs)
}

/// Scale-down targets for old RSes (given oldest first as (spec, available)) in a rolling
/// update; returns the new spec replicas per old RS.
pub fn old_rs_targets(
    d_replicas: i32,
    max_unavailable: i32,
    new_spec: i32,
    new_available: i32,
    old: &[(i32, i32)],
) -> Vec<i32> {
    let mut out: Vec<i32> = old.iter().map(|(s, _)| *s).collect();
    let old_total: i32 = out.iter().sum();
    if old_total == 0 {
        return out;
    }
    let all = old_total + new_spec;
    let min_available = d_replicas - max_unavailable;
    let new_unavailable = (new_spec - new_available).max(0);
    let mut budget = all - min_available - new_unavailable;
    if budget <= 0 {
        return out;
    }
    // First remove unhealthy old replicas (they count against nothing).
    for (i, (spec, avail)) in old.iter().enumerate() {
        if budget <= 0 {
            break;
        }
        let unhealthy = (spec - avail).max(0);
        let cut = unhealthy.min(budget);
        out[i] -= cut;
        budget -= cut;
    }
    // Then available ones, keeping minAvailable.
    let avail_total: i32 = new_available
        + old
            .iter()
            .zip(&out)
            .map(|((_, a), s)| (*a).min(*s))
            .sum::<i32>();
    let mut cut_total = avail_total - min_available;
    for s in out.iter_mut() {
        if cut_total <= 0 {
            break;
        }
        let cut = (*s).min(cut_total);
        *s -= cut;
        cut_total -= cut;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d(replicas: i32, surge: serde_json::Value, unavail: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({"metadata": {"name": "d"}, "spec": {
            "replicas": replicas, "selector": {},
            "template": {},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavail}}
        }}))
        .unwrap()
    }

    #[test]
    fn surge_rounds_up_and_unavailable_rounds_down() {
        assert_eq!(
            surge_unavailable(&d(10, json!("25%"), json!("25%"))),
            (3, 2)
        );
        assert_eq!(surge_unavailable(&d(4, json!(1), json!(0))), (1, 0));
        assert_eq!(surge_unavailable(&d(4, json!(0), json!(0))), (0, 1));
    }

    #[test]
    fn template_hash_is_stable_and_sensitive_to_collisions() {
        let t: PodTemplateSpec =
            serde_json::from_value(json!({"metadata": {"labels": {"a": "b"}}})).unwrap();
        let h = template_hash(&t, None);
        assert_eq!(h, template_hash(&t, None));
        assert_ne!(h, template_hash(&t, Some(1)));
        assert!(h.bytes().all(|c| SAFE.contains(&c)));
    }

    #[test]
    fn rolling_update_steps_never_exceed_surge_or_unavailability() {
        // replicas 4, surge 1, unavailable 1: simulate until done, pods become available
        // immediately after each step.
        let (r, surge, unavail) = (4, 1, 1);
        let mut new = 0;
        let mut old = 4;
        for _ in 0..20 {
            new = new_rs_target(r, surge, new, new + old);
            assert!(new + old <= r + surge);
            assert!(new + old >= r - unavail);
            let t = old_rs_targets(r, unavail, new, new, &[(old, old)]);
            old = t[0];
            assert!(new + old >= r - unavail, "available {new}+{old}");
            if new == r && old == 0 {
                return;
            }
        }
        panic!("rollout did not finish: new {new} old {old}");
    }

    #[test]
    fn unavailable_new_pods_block_further_old_scale_down() {
        // New RS has 1 replica not yet available: with maxUnavailable 0 nothing old may go.
        assert_eq!(old_rs_targets(3, 0, 1, 0, &[(3, 3)]), vec![3]);
        // Once available, one old goes.
        assert_eq!(old_rs_targets(3, 0, 1, 1, &[(3, 3)]), vec![2]);
    }
}
