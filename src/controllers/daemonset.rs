//! DaemonSet controller: one pod per eligible node (nodeSelector, required node affinity,
//! untolerated NoSchedule/NoExecute taints), pinned with a required `matchFields
//! metadata.name In [node]` affinity so the default scheduler binds it; upstream's automatic
//! tolerations; RollingUpdate (maxUnavailable / maxSurge) and OnDelete; ControllerRevision
//! history; status for `kubectl rollout status`.
//!
//! Owns: DaemonSet pods, their ControllerRevisions and `DaemonSet.status`. May call: the API
//! server.

use super::controller_revision::{self as history, NewRevision, POD_HASH_LABEL};
use super::pod_control;
use super::pods::{claim, controller_ref, is_available, is_ready};
use super::runtime::{Ctx, Error, NORMAL, deleting, describe, run_controller};
use super::{ControllersConfig, labels};
use crate::scheduler::filters::{node_matches_pod, tolerated};
use crate::scheduler::resources::NodeInfo;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, Toleration,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Label with the DaemonSet generation a pod was created from (deprecated upstream, still set).
pub const GENERATION_LABEL: &str = "pod-template-generation";

/// Upstream's automatic DaemonSet tolerations: (key, effect, only for hostNetwork pods).
const AUTO_TOLERATIONS: &[(&str, &str, bool)] = &[
    ("node.kubernetes.io/not-ready", "NoExecute", false),
    ("node.kubernetes.io/unreachable", "NoExecute", false),
    ("node.kubernetes.io/disk-pressure", "NoSchedule", false),
    ("node.kubernetes.io/memory-pressure", "NoSchedule", false),
    ("node.kubernetes.io/pid-pressure", "NoSchedule", false),
    ("node.kubernetes.io/unschedulable", "NoSchedule", false),
    ("node.kubernetes.io/network-unavailable", "NoSchedule", true),
];

/// Add the automatic tolerations a DaemonSet pod gets, unless already tolerated that way.
pub fn add_auto_tolerations(spec: &mut PodSpec) {
    let host_network = spec.host_network.unwrap_or(false);
    let tols = spec.tolerations.get_or_insert_with(Vec::new);
    for (key, effect, host_only) in AUTO_TOLERATIONS {
        if *host_only && !host_network {
            continue;
        }
        let present = tols.iter().any(|t| {
            t.key.as_deref() == Some(key)
                && t.effect.as_deref() == Some(effect)
                && t.operator.as_deref() == Some("Exists")
        });
        if !present {
            tols.push(Toleration {
                key: Some((*key).to_string()),
                operator: Some("Exists".into()),
                effect: Some((*effect).to_string()),
                ..Default::default()
            });
        }
    }
}

/// Replace the pod's required node affinity with `matchFields metadata.name In [node]`, as
/// upstream does, so the scheduler can only bind it to `node`.
pub fn pin_to_node(spec: &mut PodSpec, node: &str) {
    let term = NodeSelectorTerm {
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".into(),
            operator: "In".into(),
            values: Some(vec![node.to_string()]),
        }]),
        match_expressions: None,
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let na = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    na.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![term],
    });
}

/// The node a daemon pod is for: its `nodeName`, else its single `matchFields` name.
pub fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_ref().filter(|n| !n.is_empty()) {
        return Some(n.clone());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|f| f.key == "metadata.name" && f.operator == "In")
        .and_then(|f| f.values.as_ref())
        .filter(|v| v.len() == 1)
        .and_then(|v| v.first().cloned())
}

/// Whether a daemon pod (template with automatic tolerations) should run on `node`, and whether
/// an existing one may keep running there (an untolerated NoSchedule taint only stops new pods).
pub fn eligibility(node: &Arc<Node>, pod: &Pod) -> (bool, bool) {
    let info = NodeInfo::new(node.clone());
    if let Some(n) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
        if !n.is_empty() && n != info.name() {
            return (false, false);
        }
    }
    if !node_matches_pod(pod, &info) {
        return (false, false);
    }
    let tols = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[]);
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[]);
    let mut out = (true, true);
    for t in taints.iter().filter(|t| !tolerated(tols, t)) {
        match t.effect.as_str() {
            "NoExecute" => return (false, false),
            "NoSchedule" => out.0 = false,
            _ => {}
        }
    }
    out
}

/// A daemon pod as the rollout logic sees it.
#[derive(Clone, Debug, Default)]
pub struct PodView {
    /// Pod name.
    pub name: String,
    /// Created from the current revision.
    pub updated: bool,
    /// Ready for minReadySeconds.
    pub available: bool,
    /// Ready now.
    pub ready: bool,
    /// Phase Failed (upstream deletes and recreates these).
    pub failed: bool,
    /// Being deleted.
    pub deleting: bool,
    /// Creation time (seconds), for "oldest first".
    pub created: i64,
}

/// One node and the daemon pods targeting it.
#[derive(Clone, Debug, Default)]
pub struct NodeView {
    /// Node name.
    pub name: String,
    /// A daemon pod should run here.
    pub should_run: bool,
    /// An existing daemon pod may stay here.
    pub should_continue: bool,
    /// Pods targeting this node.
    pub pods: Vec<PodView>,
}

/// The update strategy, resolved against the desired number of nodes.
#[derive(Clone, Debug)]
pub struct Rollout {
    /// OnDelete: never replace old pods.
    pub on_delete: bool,
    /// Nodes that may run an extra new pod beside the old one.
    pub max_surge: usize,
    /// Nodes that may be without an available pod.
    pub max_unavailable: usize,
}

/// What one reconcile does.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Nodes to create a pod for.
    pub create_on: Vec<String>,
    /// Pods to delete.
    pub delete: Vec<String>,
}

/// Percent or absolute value scaled against `total`, rounding up like upstream.
pub fn scaled(v: Option<&IntOrString>, total: usize, default: usize) -> usize {
    match v {
        None => default,
        Some(IntOrString::Int(i)) => usize::try_from(*i).unwrap_or(0),
        Some(IntOrString::String(s)) => {
            let pct = s.trim_end_matches('%').parse::<usize>().unwrap_or(0);
            (total * pct).div_ceil(100)
        }
    }
}

/// Resolve the DaemonSet's strategy; both limits zero means maxUnavailable 1.
pub fn rollout(ds: &DaemonSet, desired: usize) -> Rollout {
    let strategy = ds
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.clone())
        .unwrap_or_default();
    let on_delete = strategy.type_.as_deref() == Some("OnDelete");
    let ru = strategy.rolling_update.unwrap_or_default();
    let max_surge = scaled(ru.max_surge.as_ref(), desired, 0);
    let mut max_unavailable = scaled(ru.max_unavailable.as_ref(), desired, 1);
    if max_surge == 0 && max_unavailable == 0 {
        max_unavailable = 1;
    }
    Rollout {
        on_delete,
        max_surge,
        max_unavailable,
    }
}

/// Decide creations and deletions: upstream's `manage` (one pod per eligible node, none
/// elsewhere, failed pods replaced) followed by its rolling update.
pub fn plan(nodes: &[NodeView], r: &Rollout) -> Plan {
    let mut out = Plan::default();
    let mut touched: HashSet<&str> = HashSet::new();
    for n in nodes {
        let mut live: Vec<&PodView> = n.pods.iter().filter(|p| !p.deleting).collect();
        live.sort_by_key(|p| p.created);
        if n.should_run {
            let failed: Vec<&PodView> = live.iter().copied().filter(|p| p.failed).collect();
            if !failed.is_empty() {
                out.delete.extend(failed.iter().map(|p| p.name.clone()));
                touched.insert(&n.name);
            } else if n.pods.is_empty() {
                out.create_on.push(n.name.clone());
                touched.insert(&n.name);
            } else if live.len() > 1 {
                // Keep the oldest pod (the oldest of each revision while surging).
                let keep_new = live.iter().find(|p| p.updated).map(|p| p.name.as_str());
                let keep_old = live.iter().find(|p| !p.updated).map(|p| p.name.as_str());
                let keep: Vec<&str> = if r.max_surge > 0 {
                    [keep_new, keep_old].into_iter().flatten().collect()
                } else {
                    vec![live[0].name.as_str()]
                };
                let extra: Vec<String> = live
                    .iter()
                    .filter(|p| !keep.contains(&p.name.as_str()))
                    .map(|p| p.name.clone())
                    .collect();
                if !extra.is_empty() {
                    out.delete.extend(extra);
                    touched.insert(&n.name);
                }
            }
        } else if !n.should_continue {
            out.delete.extend(live.iter().map(|p| p.name.clone()));
        }
    }
    if r.on_delete {
        return out;
    }
    let mut unavailable = 0usize;
    let mut replace_now: Vec<String> = Vec::new();
    let mut candidates: Vec<String> = Vec::new();
    let mut surge_now: Vec<String> = Vec::new();
    let mut surge_candidates: Vec<String> = Vec::new();
    for n in nodes.iter().filter(|n| n.should_run) {
        if touched.contains(n.name.as_str()) {
            unavailable += 1;
            continue;
        }
        let live: Vec<&PodView> = n.pods.iter().filter(|p| !p.deleting).collect();
        let new: Vec<&&PodView> = live.iter().filter(|p| p.updated).collect();
        let old: Vec<&&PodView> = live.iter().filter(|p| !p.updated).collect();
        if new.len() > 1 || old.len() > 1 {
            unavailable += 1;
            continue;
        }
        match (new.first(), old.first()) {
            (None, None) => unavailable += 1,
            (Some(p), None) => unavailable += usize::from(!p.available),
            (None, Some(o)) if r.max_surge > 0 => {
                if !o.available {
                    surge_now.push(n.name.clone());
                } else {
                    surge_candidates.push(n.name.clone());
                }
            }
            (None, Some(o)) => {
                if !o.available {
                    replace_now.push(o.name.clone());
                    unavailable += 1;
                } else {
                    candidates.push(o.name.clone());
                }
            }
            (Some(p), Some(o)) => {
                if p.available {
                    replace_now.push(o.name.clone());
                } else {
                    // A surged pod still starting uses one unit of surge.
                    unavailable += 1;
                }
            }
        }
    }
    if r.max_surge > 0 {
        let room = r.max_surge.saturating_sub(unavailable);
        out.create_on.extend(surge_now);
        out.create_on
            .extend(surge_candidates.into_iter().take(room));
        out.delete.extend(replace_now);
    } else {
        let room = r.max_unavailable.saturating_sub(unavailable);
        out.delete.extend(replace_now);
        out.delete.extend(candidates.into_iter().take(room));
    }
    out
}

/// Controller state: the node cache.
pub struct State {
    nodes: Store<Node>,
}

type C = Ctx<State>;

fn view(p: &Pod, hash: &str, min_ready: i32, recheck: &mut Option<i64>) -> PodView {
    let available = is_available(p, min_ready, recheck);
    PodView {
        name: p.name_any(),
        updated: p.labels().get(POD_HASH_LABEL).map(String::as_str) == Some(hash),
        available,
        ready: is_ready(p),
        failed: p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"),
        deleting: p.metadata.deletion_timestamp.is_some(),
        created: p
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_second())
            .unwrap_or(0),
    }
}

fn new_pod(ds: &DaemonSet, hash: &str, node: &str) -> Result<Pod, Error> {
    let tpl = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .ok_or_else(|| Error::MissingField {
            object: describe(ds),
            field: "spec.template",
        })?;
    let meta = tpl.metadata.unwrap_or_default();
    let mut pod_labels = meta.labels.unwrap_or_default();
    pod_labels.insert(POD_HASH_LABEL.into(), hash.to_string());
    pod_labels.insert(
        GENERATION_LABEL.into(),
        ds.metadata.generation.unwrap_or(1).to_string(),
    );
    let mut spec = tpl.spec.unwrap_or_default();
    add_auto_tolerations(&mut spec);
    pin_to_node(&mut spec, node);
    Ok(Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", ds.name_any())),
            namespace: ds.namespace(),
            labels: Some(pod_labels),
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![controller_ref(ds)]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    })
}

/// The template as a pod with the automatic tolerations, for eligibility checks.
fn template_pod(ds: &DaemonSet) -> Pod {
    let tpl = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let mut spec = tpl.spec.unwrap_or_default();
    add_auto_tolerations(&mut spec);
    Pod {
        metadata: tpl.metadata.unwrap_or_default(),
        spec: Some(spec),
        status: None,
    }
}

async fn reconcile(ds: Arc<DaemonSet>, ctx: Arc<C>) -> Result<Action, Error> {
    if deleting(ds.as_ref()) {
        return Ok(Action::await_change());
    }
    let ns = ds.namespace().unwrap_or_default();
    let spec = ds.spec.clone().unwrap_or_default();
    if labels::is_empty(&spec.selector) {
        return Err(Error::Invalid {
            object: describe(ds.as_ref()),
            reason: "empty selector".into(),
        });
    }
    // History: the revision of the current template.
    let revs_api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &ns);
    let mut revs = history::owned(&revs_api, ds.as_ref(), &spec.selector).await?;
    let collision_count = ds
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    let tpl_value = serde_json::to_value(&spec.template)?;
    let (current, collision_count) = history::ensure(
        &revs_api,
        ds.as_ref(),
        &mut revs,
        history::patch_data(&spec.template)?,
        NewRevision {
            labels: spec
                .template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default(),
            annotations: ds.annotations().clone(),
            hash_input: &tpl_value,
            collision_count,
        },
    )
    .await?;
    let hash = current
        .labels()
        .get(history::REVISION_HASH_LABEL)
        .cloned()
        .unwrap_or_default();

    // Pods, grouped by the node they target.
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let all = pods_api
        .list(&ListParams::default().labels(&labels::to_query(&spec.selector)))
        .await?
        .items;
    let owned = claim(&pods_api, ds.as_ref(), &spec.selector, all).await?;
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let mut recheck = None;
    let mut by_node: BTreeMap<String, Vec<PodView>> = BTreeMap::new();
    let mut strays = Vec::new();
    for p in &owned {
        let terminal_deleting = p.metadata.deletion_timestamp.is_some()
            && matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            );
        if terminal_deleting {
            continue;
        }
        match target_node(p) {
            Some(n) => by_node
                .entry(n)
                .or_default()
                .push(view(p, &hash, min_ready, &mut recheck)),
            None if p.metadata.deletion_timestamp.is_none() => strays.push(p.name_any()),
            None => {}
        }
    }
    let tpl_pod = template_pod(&ds);
    let mut nodes: Vec<NodeView> = ctx
        .data
        .nodes
        .state()
        .iter()
        .map(|n| {
            let (should_run, should_continue) = eligibility(n, &tpl_pod);
            NodeView {
                name: n.name_any(),
                should_run,
                should_continue,
                pods: by_node.remove(&n.name_any()).unwrap_or_default(),
            }
        })
        .collect();
    // Pods on nodes that no longer exist.
    nodes.extend(by_node.into_iter().map(|(name, pods)| NodeView {
        name,
        pods,
        ..Default::default()
    }));
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let desired = nodes.iter().filter(|n| n.should_run).count();
    let mut todo = plan(&nodes, &rollout(&ds, desired));
    todo.delete.extend(strays);

    for name in &todo.delete {
        let r = match pods_api.delete(name, &DeleteParams::default()).await {
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            other => other.map(|_| ()),
        };
        match r {
            Ok(()) => {
                ctx.event_related(
                    ds.as_ref(),
                    &super::statefulset::pod_ref(ds.as_ref(), name),
                    NORMAL,
                    "SuccessfulDelete",
                    format!("Deleted pod: {name}"),
                )
                .await
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mut pods = Vec::with_capacity(todo.create_on.len());
    for node in &todo.create_on {
        pods.push(new_pod(&ds, &hash, node)?);
    }
    pod_control::create_pods(&ctx, ds.as_ref(), &pods_api, pods).await?;

    // Old history no pod uses any more.
    let live_hashes: HashSet<&str> = owned
        .iter()
        .filter_map(|p| p.labels().get(POD_HASH_LABEL).map(String::as_str))
        .collect();
    let live: HashSet<String> = revs
        .iter()
        .filter(|r| {
            r.name_any() == current.name_any()
                || r.labels()
                    .get(history::REVISION_HASH_LABEL)
                    .is_some_and(|h| live_hashes.contains(h.as_str()))
        })
        .map(|r| r.name_any())
        .collect();
    history::truncate(
        &revs_api,
        &revs,
        &live,
        spec.revision_history_limit.unwrap_or(10),
    )
    .await?;

    update_status(&ds, &nodes, collision_count, &ctx).await?;
    Ok(match recheck {
        Some(s) => Action::requeue(Duration::from_secs(u64::try_from(s.max(1)).unwrap_or(1))),
        None if !todo.delete.is_empty() || !todo.create_on.is_empty() => {
            // Pod events trigger us again; this is only a safety net.
            Action::requeue(Duration::from_secs(30))
        }
        None => Action::await_change(),
    })
}

/// Upstream's status counts, from the node views (before this reconcile's actions).
pub fn status_counts(nodes: &[NodeView]) -> DaemonSetStatus {
    let mut s = DaemonSetStatus::default();
    for n in nodes {
        let mut pods: Vec<&PodView> = n.pods.iter().collect();
        pods.sort_by_key(|p| p.created);
        if n.should_run {
            s.desired_number_scheduled += 1;
            if let Some(p) = pods.first() {
                s.current_number_scheduled += 1;
                if p.ready {
                    s.number_ready += 1;
                }
                if p.available {
                    *s.number_available.get_or_insert(0) += 1;
                }
                if p.updated {
                    *s.updated_number_scheduled.get_or_insert(0) += 1;
                }
            }
        } else if !pods.is_empty() {
            s.number_misscheduled += 1;
        }
    }
    let available = s.number_available.unwrap_or(0);
    s.number_available = Some(available);
    s.updated_number_scheduled = Some(s.updated_number_scheduled.unwrap_or(0));
    s.number_unavailable = Some(s.desired_number_scheduled - available);
    s
}

async fn update_status(
    ds: &DaemonSet,
    nodes: &[NodeView],
    collision_count: i32,
    ctx: &C,
) -> Result<(), Error> {
    let old = ds.status.clone().unwrap_or_default();
    let mut status = status_counts(nodes);
    status.observed_generation = ds.metadata.generation;
    status.collision_count = (collision_count != 0).then_some(collision_count);
    status.conditions = old.conditions.clone();
    if status != old {
        let api: Api<DaemonSet> =
            Api::namespaced(ctx.client.clone(), &ds.namespace().unwrap_or_default());
        api.patch_status(
            &ds.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await?;
    }
    Ok(())
}

/// What of a node decides eligibility: its labels and spec.
fn fingerprint(n: &Node) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(&(&n.metadata.labels, &n.spec))
        .unwrap_or_default()
        .hash(&mut h);
    h.finish()
}

/// Run the DaemonSet controller until `shutdown`.
pub async fn run(client: Client, _config: ControllersConfig, shutdown: CancellationToken) {
    let (nodes, writer) = reflector::store();
    // Only changes that can move eligibility (labels, spec: taints) and deletions trigger the
    // DaemonSets; kubelet heartbeats (status) would otherwise reconcile every set constantly.
    let mut seen: HashMap<String, u64> = HashMap::new();
    let node_events = reflector::reflector(
        writer,
        watcher(Api::<Node>::all(client.clone()), watcher::Config::default()).default_backoff(),
    )
    .filter_map(move |ev| {
        let out = match ev {
            Ok(watcher::Event::Apply(n) | watcher::Event::InitApply(n)) => {
                let f = fingerprint(&n);
                (seen.insert(n.name_any(), f) != Some(f)).then_some(Ok(n))
            }
            Ok(watcher::Event::Delete(n)) => {
                seen.remove(&n.name_any());
                Some(Ok(n))
            }
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        };
        futures::future::ready(out)
    });
    let controller = Controller::new(
        Api::<DaemonSet>::all(client.clone()),
        watcher::Config::default(),
    );
    let sets = controller.store();
    // Any node change may change eligibility for every DaemonSet.
    let controller = controller
        .owns(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .watches_stream(node_events, move |_: Node| {
            sets.state()
                .iter()
                .map(|d| ObjectRef::from_obj(d.as_ref()))
                .collect::<Vec<_>>()
        });
    let ctx = Ctx::new(client, "daemonset-controller", State { nodes });
    run_controller(controller, reconcile, ctx, shutdown).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(v: serde_json::Value) -> Arc<Node> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn tpl(v: serde_json::Value) -> Pod {
        let mut p: Pod = serde_json::from_value(v).unwrap();
        add_auto_tolerations(p.spec.get_or_insert_with(Default::default));
        p
    }

    #[test]
    fn eligibility_follows_selector_affinity_and_taints() {
        let plain = node(json!({"metadata": {"name": "a", "labels": {"disk": "ssd"}}}));
        let noexec = node(json!({"metadata": {"name": "b"},
            "spec": {"taints": [{"key": "k", "effect": "NoExecute"}]}}));
        let nosched = node(json!({"metadata": {"name": "c"},
            "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}}));
        let not_ready = node(
            json!({"metadata": {"name": "d"}, "spec": {"unschedulable": true,
            "taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"},
                       {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]}}),
        );
        let any = tpl(json!({"spec": {"containers": []}}));
        assert_eq!(eligibility(&plain, &any), (true, true));
        assert_eq!(eligibility(&noexec, &any), (false, false));
        assert_eq!(eligibility(&nosched, &any), (false, true));
        assert_eq!(
            eligibility(&not_ready, &any),
            (true, true),
            "auto tolerations"
        );
        let tolerant = tpl(json!({"spec": {"containers": [],
            "tolerations": [{"key": "k", "operator": "Exists"}]}}));
        assert_eq!(eligibility(&noexec, &tolerant), (true, true));
        let ssd = tpl(json!({"spec": {"containers": [], "nodeSelector": {"disk": "ssd"}}}));
        assert_eq!(eligibility(&plain, &ssd), (true, true));
        assert_eq!(eligibility(&nosched, &ssd), (false, false));
        let affinity = tpl(
            json!({"spec": {"containers": [], "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "disk", "operator": "NotIn", "values": ["ssd"]}]}]}}}}}),
        );
        assert_eq!(eligibility(&plain, &affinity), (false, false));
        assert_eq!(eligibility(&noexec, &affinity), (false, false));
    }

    #[test]
    fn pods_are_pinned_with_match_fields_and_get_host_network_toleration() {
        let mut spec: PodSpec = serde_json::from_value(json!({"containers": [],
            "hostNetwork": true,
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                "effect": "NoExecute", "tolerationSeconds": 5}]}))
        .unwrap();
        add_auto_tolerations(&mut spec);
        add_auto_tolerations(&mut spec);
        let tols = spec.tolerations.clone().unwrap();
        assert_eq!(tols.len(), 7, "{tols:?}");
        assert_eq!(tols[0].toleration_seconds, Some(5), "user toleration kept");
        pin_to_node(&mut spec, "n1");
        let pod = Pod {
            spec: Some(spec),
            ..Default::default()
        };
        assert_eq!(target_node(&pod).as_deref(), Some("n1"));
    }

    fn pv(name: &str, updated: bool, available: bool, created: i64) -> PodView {
        PodView {
            name: name.into(),
            updated,
            available,
            ready: available,
            created,
            ..Default::default()
        }
    }

    fn nv(name: &str, pods: Vec<PodView>) -> NodeView {
        NodeView {
            name: name.into(),
            should_run: true,
            should_continue: true,
            pods,
        }
    }

    fn ru(surge: usize, unavailable: usize) -> Rollout {
        Rollout {
            on_delete: false,
            max_surge: surge,
            max_unavailable: unavailable,
        }
    }

    #[test]
    fn manage_creates_missing_and_deletes_misplaced_pods() {
        let mut off = nv("c", vec![pv("c1", true, true, 1)]);
        off.should_run = false;
        off.should_continue = false;
        let mut kept = nv("d", vec![pv("d1", true, true, 1)]);
        kept.should_run = false;
        let nodes = vec![
            nv("a", vec![]),
            nv("b", vec![pv("b1", true, true, 1), pv("b2", true, true, 2)]),
            off,
            kept,
        ];
        let p = plan(&nodes, &ru(0, 1));
        assert_eq!(p.create_on, ["a"]);
        assert_eq!(p.delete, ["b2", "c1"]);
        let s = status_counts(&nodes);
        assert_eq!(
            (
                s.desired_number_scheduled,
                s.current_number_scheduled,
                s.number_misscheduled
            ),
            (2, 1, 2)
        );
        assert_eq!(s.number_unavailable, Some(1));
    }

    #[test]
    fn rolling_update_respects_max_unavailable() {
        let old = |n: &str| nv(n, vec![pv(&format!("{n}-old"), false, true, 1)]);
        let nodes = vec![old("a"), old("b"), old("c")];
        assert_eq!(plan(&nodes, &ru(0, 1)).delete, ["a-old"]);
        assert_eq!(plan(&nodes, &ru(0, 2)).delete, ["a-old", "b-old"]);
        // One node already without an available pod: nothing else may go.
        let nodes = vec![
            nv("a", vec![pv("a-new", true, false, 2)]),
            old("b"),
            old("c"),
        ];
        assert!(plan(&nodes, &ru(0, 1)).delete.is_empty());
        // Unavailable old pods are always replaced.
        let nodes = vec![nv("a", vec![pv("a-old", false, false, 1)]), old("b")];
        assert_eq!(plan(&nodes, &ru(0, 1)).delete, ["a-old"]);
        // OnDelete never replaces.
        let mut r = ru(0, 3);
        r.on_delete = true;
        assert_eq!(plan(&[old("a")], &r), Plan::default());
    }

    #[test]
    fn surge_creates_new_pods_first_and_deletes_old_once_available() {
        let old = |n: &str| nv(n, vec![pv(&format!("{n}-old"), false, true, 1)]);
        let p = plan(&[old("a"), old("b")], &ru(1, 0));
        assert_eq!(p.create_on, ["a"]);
        assert!(p.delete.is_empty());
        let starting = nv(
            "a",
            vec![pv("a-old", false, true, 1), pv("a-new", true, false, 2)],
        );
        let p = plan(&[starting, old("b")], &ru(1, 0));
        assert_eq!(p, Plan::default());
        let ready = nv(
            "a",
            vec![pv("a-old", false, true, 1), pv("a-new", true, true, 2)],
        );
        let p = plan(&[ready, old("b")], &ru(1, 0));
        assert_eq!(p.delete, ["a-old"]);
        assert_eq!(p.create_on, ["b"]);
    }

    #[test]
    fn percentages_round_up() {
        let pct = IntOrString::String("10%".into());
        assert_eq!(scaled(Some(&pct), 3, 1), 1);
        assert_eq!(scaled(Some(&pct), 11, 1), 2);
        assert_eq!(scaled(Some(&IntOrString::Int(2)), 3, 1), 2);
        assert_eq!(scaled(None, 3, 1), 1);
    }
}
