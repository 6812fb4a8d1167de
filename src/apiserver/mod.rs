//! The Kubernetes API server: HTTPS, discovery, OpenAPI, resource registry, verbs, watch.
//!
//! Owns: everything under `/api` and `/apis`. May call: [`crate::store`] (the only component
//! that does, through the [`storage::Backend`] trait) and [`crate::pki`].
//!
//! Layout: `server` (TLS listener) → `router` (auth gate, discovery, URL parsing) →
//! `handlers` (one file per verb family) → `storage` (the backend trait). Object rules live
//! in `admission` (defaults, validation, allocation, side effects), `fields` (schemas),
//! `object` (metadata helpers), `registry` (kinds), `tables` (Table output), `selectors`.

mod admission;
pub mod allocator;
pub mod auth;
mod bootstrap;
pub mod bootstrap_endpoints;
mod compactor;
pub mod defaults;
pub mod discovery;
pub(crate) mod event_versions;
mod fields;
pub mod handlers;
pub mod kubelet_client;
mod list_body;
mod object;
pub mod openapi;
mod openapi_docs;
pub mod patch;
mod pod_proxy;
pub mod protobuf;
mod raw_json;
pub mod registry;
mod router;
mod selectors;
pub mod server;
pub mod status;
pub mod storage;
pub mod table;
mod tables;
pub mod validation;

pub use handlers::Api;
pub use registry::Registry;
pub use server::ServeError;

use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What the API server needs to start.
pub struct ApiServerConfig {
    pub listen: SocketAddr,
    pub pki: crate::pki::ServerPki,
    /// Join endpoints (`/cacerts`, `/v1-k3rs/*`); `None` serves none of them.
    pub join: Option<bootstrap_endpoints::JoinConfig>,
}

/// Build the shared API state over a backend: load CRDs and create the built-in objects.
///
/// # Errors
/// When the backend cannot be read or written.
pub async fn new_api(
    backend: Arc<dyn storage::Backend>,
    service_account_key_pem: Option<&str>,
    service_range: allocator::ServiceRange,
) -> Result<Arc<Api>, status::ApiError> {
    let tokens = match service_account_key_pem {
        Some(pem) => Some(
            auth::TokenSigner::from_pem(pem)
                .map_err(|e| status::ApiError::internal(format!("bad service account key: {e}")))?,
        ),
        None => None,
    };
    let api = Arc::new(Api {
        backend,
        registry: Registry::new(),
        tokens,
        openapi: Default::default(),
        kubelet: Default::default(),
        service_range,
    });
    // A fresh raft member needs a moment to elect itself: retry what the store cannot answer
    // yet (503/504) for a while.
    let mut attempt = 0;
    loop {
        let r = async {
            handlers::refresh_crds(&api).await?;
            bootstrap::ensure_defaults(&api).await
        }
        .await;
        match r {
            Err(e) if matches!(e.code, 503 | 504) && attempt < 60 => {
                attempt += 1;
                tracing::debug!(error = %e, "store not ready yet; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            other => break other.map(|()| api),
        }
    }
}

/// Bind and serve until `shutdown`; returns once the listener is bound and serving.
///
/// # Errors
/// On bad TLS material or when the port cannot be bound.
pub async fn start(
    api: Arc<Api>,
    cfg: ApiServerConfig,
    shutdown: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, ServeError> {
    let tls = server::tls_config(&cfg.pki)?;
    let listener = server::bind(cfg.listen).await?;
    tracing::info!(addr = %cfg.listen, "kubernetes API listening (https)");
    tokio::spawn(compactor::run(
        api.backend.clone(),
        compactor::INTERVAL,
        shutdown.clone(),
    ));
    Ok(tokio::spawn(server::serve(
        api,
        listener,
        tls,
        cfg.join.map(Arc::new),
        shutdown,
    )))
}
