//! Certificate authorities, certificates, kubeconfigs and join tokens.
//!
//! Owns: everything under `<data-dir>/server/tls`. May call: nothing but the filesystem.
//!
//! On first start [`ensure_server_pki`] creates a cluster CA (ECDSA P-256), a serving
//! certificate for the API server and an admin client certificate (`system:admin` in
//! `system:masters`); later starts reuse them. The serving certificate is re-issued (by the
//! same CA) when the wanted subject alternative names change. The serving and admin
//! certificates are also re-issued when they expire within the renewal window (90 days by
//! default, [`ensure_server_pki_renewing`]); CA certificates are never re-issued. Agents
//! get a fresh node certificate from the server at every start.

pub mod accept_any;
pub mod bundle;
mod certs;
mod etcd;
pub mod join;
mod kubeconfig;
pub mod token;

pub use certs::{
    DEFAULT_RENEW_BEFORE, KUBELET_CLIENT_CN, PEER_CN, PEER_SAN, ServerPki, ensure_server_pki,
    ensure_server_pki_renewing, not_after, serving_sans,
};
pub use etcd::{ETCD_CLIENT_CN, EtcdCerts, ensure_etcd_certs};
pub use kubeconfig::{kubeconfig_yaml, write_kubeconfig};

/// Everything that can go wrong while creating or loading certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("io error at {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("invalid file mode {0:?} (want octal like 0600)")]
    BadMode(String),
    #[error("invalid subject alternative name {0:?}")]
    BadSan(String),
}

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.display().to_string(),
        source,
    }
}
