//! Label selectors: matching label sets and rendering selectors as query strings.
//!
//! Owns: `LabelSelector` / node-selector-requirement semantics. Pure; calls nothing.

use k8s_openapi::api::core::v1::NodeSelectorRequirement;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use std::collections::BTreeMap;

/// Whether `labels` satisfy `sel`. An empty selector matches everything (`None` matches nothing,
/// as upstream treats a nil selector).
pub fn matches(sel: Option<&LabelSelector>, labels: Option<&BTreeMap<String, String>>) -> bool {
    let Some(sel) = sel else { return false };
    let empty = BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
    if let Some(ml) = &sel.match_labels {
        if ml.iter().any(|(k, v)| labels.get(k) != Some(v)) {
            return false;
        }
    }
    sel.match_expressions
        .iter()
        .flatten()
        .all(|e| expression_matches(e, labels))
}

fn expression_matches(e: &LabelSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let vals = e.values.as_deref().unwrap_or(&[]);
    let got = labels.get(&e.key);
    match e.operator.as_str() {
        "In" => got.is_some_and(|v| vals.contains(v)),
        "NotIn" => got.is_none_or(|v| !vals.contains(v)),
        "Exists" => got.is_some(),
        "DoesNotExist" => got.is_none(),
        _ => false,
    }
}

/// Whether a selector selects nothing in particular (no labels, no expressions).
pub fn is_empty(sel: &LabelSelector) -> bool {
    sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && sel.match_expressions.as_ref().is_none_or(|m| m.is_empty())
}

/// Render a selector as a `labelSelector=` query string.
pub fn to_query(sel: &LabelSelector) -> String {
    let mut parts = Vec::new();
    for (k, v) in sel.match_labels.iter().flatten() {
        parts.push(format!("{k}={v}"));
    }
    for e in sel.match_expressions.iter().flatten() {
        let vals = e.values.as_deref().unwrap_or(&[]).join(",");
        match e.operator.as_str() {
            "In" => parts.push(format!("{} in ({vals})", e.key)),
            "NotIn" => parts.push(format!("{} notin ({vals})", e.key)),
            "Exists" => parts.push(e.key.clone()),
            "DoesNotExist" => parts.push(format!("!{}", e.key)),
            _ => {}
        }
    }
    parts.join(",")
}

/// Node-selector requirement (node affinity) against a label set; `Gt`/`Lt` compare integers.
pub fn node_requirement_matches(
    e: &NodeSelectorRequirement,
    labels: &BTreeMap<String, String>,
) -> bool {
    let vals = e.values.as_deref().unwrap_or(&[]);
    let got = labels.get(&e.key);
    match e.operator.as_str() {
        "In" => got.is_some_and(|v| vals.contains(v)),
        "NotIn" => got.is_none_or(|v| !vals.contains(v)),
        "Exists" => got.is_some(),
        "DoesNotExist" => got.is_none(),
        "Gt" | "Lt" => {
            let (Some(g), Some(w)) = (
                got.and_then(|v| v.parse::<i64>().ok()),
                vals.first().and_then(|v| v.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if e.operator == "Gt" { g > w } else { g < w }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn req(key: &str, op: &str, vals: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(vals.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn selectors_match_like_upstream() {
        let sel = LabelSelector {
            match_labels: Some(l(&[("app", "web")])),
            match_expressions: Some(vec![
                req("tier", "In", &["a", "b"]),
                req("canary", "DoesNotExist", &[]),
                req("zone", "NotIn", &["x"]),
            ]),
        };
        let cases = [
            (l(&[("app", "web"), ("tier", "a")]), true),
            (l(&[("app", "web"), ("tier", "c")]), false),
            (l(&[("app", "web"), ("tier", "a"), ("canary", "1")]), false),
            (l(&[("app", "web"), ("tier", "b"), ("zone", "x")]), false),
            (l(&[("app", "db"), ("tier", "a")]), false),
        ];
        for (labels, want) in cases {
            assert_eq!(matches(Some(&sel), Some(&labels)), want, "{labels:?}");
        }
        assert!(matches(Some(&LabelSelector::default()), None));
        assert!(!matches(None, Some(&l(&[("a", "b")]))));
        assert_eq!(
            to_query(&sel),
            "app=web,tier in (a,b),!canary,zone notin (x)"
        );
    }

    #[test]
    fn node_requirements_compare_integers_for_gt_and_lt() {
        let e = NodeSelectorRequirement {
            key: "cores".into(),
            operator: "Gt".into(),
            values: Some(vec!["4".into()]),
        };
        assert!(node_requirement_matches(&e, &l(&[("cores", "8")])));
        assert!(!node_requirement_matches(&e, &l(&[("cores", "2")])));
        assert!(!node_requirement_matches(&e, &l(&[])));
    }
}
