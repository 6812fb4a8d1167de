//! Garbage collector: deletes dependents whose owners are gone (Background), deletes
//! dependents of owners deleted in the foreground before removing `foregroundDeletion`, and
//! orphans dependents of owners deleted with `orphan` before removing that finalizer.
//!
//! Owns: ownerReference cascades for every resource (custom resources too, via discovery). It
//! rescans the object graph periodically (cheap against this API server) instead of keeping a
//! watch per resource; an owner missing from a scan is confirmed with a live GET before any
//! deletion. May call: the API server.

use super::discovery::{self, Resource};
use super::runtime::Error;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const FOREGROUND: &str = "foregroundDeletion";
const ORPHAN: &str = "orphan";
/// How often the graph is rescanned.
const PERIOD: Duration = Duration::from_millis(1000);
/// How often discovery is refreshed (new CRDs).
const DISCOVERY_TTL: Duration = Duration::from_secs(30);

struct Node {
    res: usize,
    obj: DynamicObject,
}

fn api(client: &Client, r: &Resource, ns: Option<&str>) -> Api<DynamicObject> {
    match (r.namespaced, ns) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &r.ar),
        _ => Api::all_with(client.clone(), &r.ar),
    }
}

fn finalizers(o: &DynamicObject) -> Vec<String> {
    o.metadata.finalizers.clone().unwrap_or_default()
}

async fn owner_exists(
    client: &Client,
    all: &[Resource],
    dep_ns: Option<&str>,
    r: &OwnerReference,
) -> Result<bool, Error> {
    let Some(res) = discovery::find(all, &r.api_version, &r.kind) else {
        // An unknown kind cannot be verified; keep the dependent (upstream does the same).
        return Ok(true);
    };
    match api(client, res, dep_ns).get_opt(&r.name).await? {
        Some(o) => Ok(o.metadata.uid.as_deref() == Some(r.uid.as_str())),
        None => Ok(false),
    }
}

async fn delete(
    client: &Client,
    r: &Resource,
    o: &DynamicObject,
    policy: &str,
) -> Result<(), Error> {
    let name = o.metadata.name.clone().unwrap_or_default();
    let dp = DeleteParams {
        propagation_policy: Some(match policy {
            "Foreground" => kube::api::PropagationPolicy::Foreground,
            _ => kube::api::PropagationPolicy::Background,
        }),
        preconditions: Some(kube::api::Preconditions {
            uid: o.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api(client, r, o.metadata.namespace.as_deref())
        .delete(&name, &dp)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn patch_meta(
    client: &Client,
    r: &Resource,
    o: &DynamicObject,
    meta: serde_json::Value,
) -> Result<(), Error> {
    let name = o.metadata.name.clone().unwrap_or_default();
    match api(client, r, o.metadata.namespace.as_deref())
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": meta })),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// One pass over the whole object graph.
async fn pass(client: &Client, all: &[Resource]) -> Result<(), Error> {
    let mut nodes: Vec<Node> = Vec::new();
    for (i, r) in all.iter().enumerate() {
        // Events never own anything and are numerous.
        if r.ar.kind == "Event" {
            continue;
        }
        let list = match api(client, r, None).list(&ListParams::default()).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, kind = %r.ar.kind, "gc cannot list");
                continue;
            }
        };
        nodes.extend(list.items.into_iter().map(|obj| Node { res: i, obj }));
    }
    let by_uid: HashMap<String, usize> = nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| n.obj.metadata.uid.clone().map(|u| (u, i)))
        .collect();
    // Dependents of each owner uid.
    let mut dependents: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for r in n.obj.metadata.owner_references.iter().flatten() {
            dependents.entry(r.uid.as_str()).or_default().push(i);
        }
    }
    let mut touched: HashSet<usize> = HashSet::new();
    for (i, n) in nodes.iter().enumerate() {
        let refs = n.obj.metadata.owner_references.clone().unwrap_or_default();
        if refs.is_empty() {
            continue;
        }
        let ns = n.obj.metadata.namespace.as_deref();
        let mut live = Vec::new();
        let mut foreground_owner = false;
        let mut orphaned = Vec::new();
        for r in &refs {
            let owner = by_uid.get(&r.uid).map(|j| &nodes[*j].obj);
            let exists = match owner {
                Some(_) => true,
                None => owner_exists(client, all, ns, r).await?,
            };
            if !exists {
                continue;
            }
            if let Some(o) = owner.filter(|o| o.metadata.deletion_timestamp.is_some()) {
                let f = finalizers(o);
                if f.iter().any(|x| x == ORPHAN) {
                    orphaned.push(r.uid.clone());
                    continue;
                }
                if f.iter().any(|x| x == FOREGROUND) {
                    foreground_owner = true;
                }
            }
            live.push(r.clone());
        }
        let res = &all[n.res];
        if live.is_empty() {
            if orphaned.is_empty() {
                if n.obj.metadata.deletion_timestamp.is_none() {
                    tracing::debug!(name = ?n.obj.metadata.name, kind = %res.ar.kind, "gc deletes dependent");
                    delete(client, res, &n.obj, "Background").await?;
                }
            } else {
                patch_meta(client, res, &n.obj, json!({"ownerReferences": live})).await?;
            }
            touched.insert(i);
        } else if live.len() != refs.len() {
            patch_meta(client, res, &n.obj, json!({"ownerReferences": live})).await?;
            touched.insert(i);
        } else if foreground_owner && live.len() == 1 && n.obj.metadata.deletion_timestamp.is_none()
        {
            delete(client, res, &n.obj, "Foreground").await?;
            touched.insert(i);
        }
    }
    // Owners waiting on finalizers.
    for n in &nodes {
        if n.obj.metadata.deletion_timestamp.is_none() {
            continue;
        }
        let f = finalizers(&n.obj);
        let uid = n.obj.metadata.uid.clone().unwrap_or_default();
        let deps = dependents.get(uid.as_str()).cloned().unwrap_or_default();
        let mut keep = f.clone();
        if f.iter().any(|x| x == ORPHAN) && deps.is_empty() {
            keep.retain(|x| x != ORPHAN);
        }
        if f.iter().any(|x| x == FOREGROUND) {
            // Wait for dependents that block their owner's deletion.
            let blocking = deps.iter().any(|d| {
                nodes[*d]
                    .obj
                    .metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|r| r.uid == uid && r.block_owner_deletion == Some(true))
            });
            if !blocking {
                keep.retain(|x| x != FOREGROUND);
            }
        }
        if keep.len() != f.len() {
            let res = &all[n.res];
            patch_meta(
                client,
                res,
                &n.obj,
                json!({"finalizers": keep, "resourceVersion": n.obj.metadata.resource_version}),
            )
            .await?;
        }
    }
    Ok(())
}

/// Run the garbage collector until `shutdown`.
pub async fn run(client: Client, shutdown: CancellationToken) {
    let work = async {
        let mut resources: Vec<Resource> = Vec::new();
        let mut fetched: Option<Instant> = None;
        loop {
            if fetched.is_none_or(|t| t.elapsed() > DISCOVERY_TTL) {
                match discovery::resources(&client).await {
                    Ok(r) => {
                        resources = r;
                        fetched = Some(Instant::now());
                    }
                    Err(e) => tracing::debug!(error = %e, "gc discovery failed"),
                }
            }
            let started = Instant::now();
            if let Err(e) = pass(&client, &resources).await {
                tracing::debug!(error = %e, "gc pass failed; retrying");
            }
            // Adaptive: a full scan never takes more than about a fifth of the API server.
            tokio::time::sleep(PERIOD.max(started.elapsed() * 4)).await;
        }
    };
    shutdown.run_until_cancelled(work).await;
}
