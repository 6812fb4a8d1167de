//! ServiceAccount controller: every active namespace has a `default` ServiceAccount and the
//! `kube-root-ca.crt` ConfigMap holding the cluster CA.
//!
//! Owns: those two objects per namespace (recreated if deleted). May call: the API server.

use super::ControllersConfig;
use super::runtime::{Ctx, Error, run_controller};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The ConfigMap carrying the cluster CA in every namespace.
pub const ROOT_CA: &str = "kube-root-ca.crt";

async fn create<K>(api: Api<K>, obj: &K) -> Result<(), Error>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.create(&PostParams::default(), obj).await {
        Ok(_) => Ok(()),
        // Exists already, or the namespace is going away.
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 403 || s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx<ControllersConfig>>) -> Result<Action, Error> {
    if ns.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let sas: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &name);
    if sas.get_opt("default").await?.is_none() {
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some("default".into()),
                namespace: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        create(sas, &sa).await?;
    }
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &name);
    let want = BTreeMap::from([("ca.crt".to_string(), ctx.data.ca_pem.clone())]);
    match cms.get_opt(ROOT_CA).await? {
        None => {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(ROOT_CA.into()),
                    namespace: Some(name.clone()),
                    annotations: Some(BTreeMap::from([(
                        "kubernetes.io/description".to_string(),
                        "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.".to_string(),
                    )])),
                    ..Default::default()
                },
                data: Some(want),
                ..Default::default()
            };
            create(cms, &cm).await?;
        }
        Some(mut cm) if cm.data.as_ref() != Some(&want) => {
            cm.data = Some(want);
            cms.replace(ROOT_CA, &PostParams::default(), &cm).await?;
        }
        Some(_) => {}
    }
    Ok(Action::await_change())
}

fn to_namespace<K: kube::Resource>(o: K) -> Option<ObjectRef<Namespace>> {
    o.meta().namespace.clone().map(|ns| ObjectRef::new(&ns))
}

/// Run the ServiceAccount / root-CA controller until `shutdown`.
pub async fn run(client: Client, config: ControllersConfig, shutdown: CancellationToken) {
    let controller = Controller::new(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
    )
    .watches(
        Api::<ServiceAccount>::all(client.clone()),
        watcher::Config::default().fields("metadata.name=default"),
        to_namespace,
    )
    .watches(
        Api::<ConfigMap>::all(client.clone()),
        watcher::Config::default().fields(&format!("metadata.name={ROOT_CA}")),
        to_namespace,
    );
    let ctx = Ctx::new(client, "serviceaccount-controller", config);
    run_controller(controller, reconcile, ctx, shutdown).await;
}
