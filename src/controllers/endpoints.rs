//! Endpoints controller: for each Service with a selector, an `Endpoints` object and one
//! `EndpointSlice` listing the selected pods (ready and not-ready), with named target ports
//! resolved per pod and `publishNotReadyAddresses` honoured.
//!
//! Owns: Endpoints and EndpointSlices named after their Service. May call: the API server.

use super::ControllersConfig;
use super::pods::{controller_ref, is_ready};
use super::runtime::{Ctx, Error, run_controller};
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
    ServicePort,
};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams, ObjectMeta};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

const MANAGER: &str = "k3rs";

fn target_port(sp: &ServicePort, pod: &Pod) -> Option<i32> {
    match &sp.target_port {
        None => Some(sp.port),
        Some(IntOrString::Int(p)) => Some(*p),
        Some(IntOrString::String(name)) => pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port),
    }
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx<ControllersConfig>>) -> Result<Action, Error> {
    let spec = svc.spec.clone().unwrap_or_default();
    let Some(selector) = spec.selector.clone().filter(|s| !s.is_empty()) else {
        return Ok(Action::await_change());
    };
    if svc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let q: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default().labels(&q.join(",")))
        .await?
        .items;
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let ports = spec.ports.clone().unwrap_or_default();
    // Subsets keyed by resolved port list (pods may resolve named ports differently).
    let mut subsets: BTreeMap<Vec<(Option<String>, i32, String)>, EndpointSubset> = BTreeMap::new();
    let mut slice_eps = Vec::new();
    let mut slice_ports: Option<Vec<SlicePort>> = None;
    for pod in &pods {
        let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.clone()) else {
            continue;
        };
        if pod.metadata.deletion_timestamp.is_some() && !publish_not_ready {
            continue;
        }
        let ready = is_ready(pod) || publish_not_ready;
        let resolved: Vec<(Option<String>, i32, String)> = ports
            .iter()
            .filter_map(|sp| {
                target_port(sp, pod).map(|p| {
                    (
                        sp.name.clone(),
                        p,
                        sp.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    )
                })
            })
            .collect();
        let addr = EndpointAddress {
            ip: ip.clone(),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                namespace: Some(ns.clone()),
                name: Some(pod.name_any()),
                uid: pod.metadata.uid.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let subset = subsets
            .entry(resolved.clone())
            .or_insert_with(|| EndpointSubset {
                ports: Some(
                    resolved
                        .iter()
                        .map(|(n, p, proto)| EndpointPort {
                            name: n.clone(),
                            port: *p,
                            protocol: Some(proto.clone()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            });
        let list = if ready {
            subset.addresses.get_or_insert_with(Vec::new)
        } else {
            subset.not_ready_addresses.get_or_insert_with(Vec::new)
        };
        list.push(addr.clone());
        if slice_ports.is_none() {
            slice_ports = Some(
                resolved
                    .iter()
                    .map(|(n, p, proto)| SlicePort {
                        name: n.clone(),
                        port: Some(*p),
                        protocol: Some(proto.clone()),
                        ..Default::default()
                    })
                    .collect(),
            );
        }
        slice_eps.push(Endpoint {
            addresses: vec![ip],
            conditions: Some(EndpointConditions {
                ready: Some(ready),
                serving: Some(is_ready(pod)),
                terminating: Some(pod.metadata.deletion_timestamp.is_some()),
            }),
            node_name: addr.node_name.clone(),
            target_ref: addr.target_ref.clone(),
            ..Default::default()
        });
    }
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.insert("endpoints.kubernetes.io/managed-by".into(), MANAGER.into());
    let ep = Endpoints {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            labels: Some(labels),
            ..Default::default()
        },
        subsets: Some(subsets.into_values().collect()),
    };
    ensure(&ctx, &ns, &name, ep).await?;
    let slice = EndpointSlice {
        metadata: ObjectMeta {
            name: Some(format!("{name}-k3rs")),
            namespace: Some(ns.clone()),
            labels: Some(BTreeMap::from([
                ("kubernetes.io/service-name".to_string(), name.clone()),
                (
                    "endpointslice.kubernetes.io/managed-by".to_string(),
                    "endpointslice-controller.k8s.io".to_string(),
                ),
            ])),
            owner_references: Some(vec![controller_ref(svc.as_ref())]),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: slice_eps,
        ports: slice_ports,
    };
    ensure(&ctx, &ns, &format!("{name}-k3rs"), slice).await?;
    Ok(Action::await_change())
}

/// Create or replace `obj` (its content is fully ours).
async fn ensure<K>(
    ctx: &Ctx<ControllersConfig>,
    ns: &str,
    name: &str,
    mut obj: K,
) -> Result<(), Error>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + PartialEq,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    match api.get_opt(name).await? {
        None => match api.create(&Default::default(), &obj).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        },
        Some(cur) => {
            obj.meta_mut().resource_version = cur.meta().resource_version.clone();
            obj.meta_mut().uid = cur.meta().uid.clone();
            obj.meta_mut().creation_timestamp = cur.meta().creation_timestamp.clone();
            obj.meta_mut().managed_fields = cur.meta().managed_fields.clone();
            obj.meta_mut().generation = cur.meta().generation;
            obj.meta_mut().annotations = cur.meta().annotations.clone();
            if obj == cur {
                return Ok(());
            }
            api.replace(name, &Default::default(), &obj).await?;
            Ok(())
        }
    }
}

fn services_for(store: &Store<Service>, pod: &Pod) -> Vec<ObjectRef<Service>> {
    let ns = pod.namespace();
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    store
        .state()
        .iter()
        .filter(|s| s.namespace() == ns)
        .filter(|s| {
            s.spec
                .as_ref()
                .and_then(|x| x.selector.as_ref())
                .is_some_and(|sel| {
                    !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
                })
        })
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

/// Run the endpoints controller until `shutdown`.
pub async fn run(client: Client, config: ControllersConfig, shutdown: CancellationToken) {
    let controller = Controller::new(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    );
    let store = controller.store();
    let controller = controller.watches(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default(),
        move |pod| services_for(&store, &pod),
    );
    let ctx = Ctx::new(client, "endpoint-controller", config);
    run_controller(controller, reconcile, ctx, shutdown).await;
}
