//! Resource discovery for the generic controllers (garbage collector, namespace): every
//! listable, deletable resource the API server serves, including custom resources.
//!
//! Owns: the mapping (apiVersion, kind) → resource. May call: the API server's discovery.

use kube::Client;
use kube::api::ApiResource;
use kube::discovery::{Discovery, Scope, verbs};

/// A resource the controllers can list and delete.
#[derive(Clone, Debug)]
pub struct Resource {
    /// How to address it.
    pub ar: ApiResource,
    /// Whether it lives in namespaces.
    pub namespaced: bool,
}

/// All listable + deletable resources.
pub async fn resources(client: &Client) -> Result<Vec<Resource>, kube::Error> {
    let d = Discovery::new(client.clone()).run().await?;
    let mut out = Vec::new();
    for g in d.groups() {
        for (ar, caps) in g.recommended_resources() {
            if caps.supports_operation(verbs::LIST) && caps.supports_operation(verbs::DELETE) {
                out.push(Resource {
                    ar,
                    namespaced: caps.scope == Scope::Namespaced,
                });
            }
        }
    }
    Ok(out)
}

/// Find the resource of an ownerReference's `apiVersion` + `kind`.
pub fn find<'a>(all: &'a [Resource], api_version: &str, kind: &str) -> Option<&'a Resource> {
    all.iter()
        .find(|r| r.ar.api_version == api_version && r.ar.kind == kind)
        .or_else(|| {
            // Another served version of the same group.
            let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
            all.iter()
                .find(|r| r.ar.group == group && r.ar.kind == kind)
        })
}
