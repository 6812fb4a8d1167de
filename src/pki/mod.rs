//! Certificate authorities, certificates, kubeconfigs and join tokens.
//!
//! Owns: everything under `<data-dir>/server/tls`. May call: nothing but the filesystem.
//!
//! On first start [`ensure_server_pki`] creates a cluster CA (ECDSA P-256), a serving
//! certificate for the API server and an admin client certificate (`system:admin` in
//! `system:masters`); later starts reuse them. The serving certificate is re-issued (by the
//! same CA) when the wanted subject alternative names change.

mod certs;
pub mod join;
mod kubeconfig;
pub mod token;

pub use certs::{KUBELET_CLIENT_CN, PEER_CN, PEER_SAN, ServerPki, ensure_server_pki, serving_sans};
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
