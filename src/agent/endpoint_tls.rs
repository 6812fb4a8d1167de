//! TLS of the agent endpoint (`:10250`): the node's serving certificate (issued by the cluster
//! CA at join time, or by the server itself for its built-in agent) and client-certificate
//! authentication. Only the API server's `kube-apiserver-kubelet-client` certificate, signed
//! by the cluster CA, may use the endpoint: the handshake refuses clients without a
//! certificate of the CA, and [`authorized`] refuses every other common name.
//!
//! Owns: the endpoint's rustls server config and the client-name check. May call: rustls,
//! x509-parser.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

/// PEM material of the endpoint.
#[derive(Clone)]
pub struct EndpointTls {
    /// The cluster CA: verifies clients.
    pub ca_pem: String,
    /// The node's serving certificate and key.
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for EndpointTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointTls").finish_non_exhaustive()
    }
}

/// Why the TLS configuration cannot be built.
#[derive(Debug, thiserror::Error)]
#[error("agent endpoint tls: {0}")]
pub struct TlsError(String);

fn err(e: impl std::fmt::Display) -> TlsError {
    TlsError(e.to_string())
}

/// A server config that requires a client certificate of the cluster CA.
///
/// # Errors
/// On unreadable PEM material.
pub fn server_config(t: &EndpointTls) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(t.ca_pem.as_bytes()) {
        roots.add(c.map_err(err)?).map_err(err)?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(err)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(t.cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(err)?;
    let key = PrivateKeyDer::from_pem_slice(t.key_pem.as_bytes()).map_err(err)?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(err)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The subject common name of a DER certificate.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    Some(cn)
}

/// Whether the verified client certificate chain belongs to the API server; the error is
/// the refusal message.
pub fn authorized(peer: Option<&[CertificateDer<'_>]>) -> Result<(), String> {
    let cn = peer
        .and_then(|c| c.first())
        .and_then(|c| common_name(c.as_ref()));
    match cn.as_deref() {
        Some(crate::pki::KUBELET_CLIENT_CN) => Ok(()),
        Some(other) => Err(format!(
            "forbidden: user {other:?} may not use the node's agent endpoint (only {:?})",
            crate::pki::KUBELET_CLIENT_CN
        )),
        None => Err("forbidden: no client certificate".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_kubelet_client_certificate_is_authorized() {
        let dir = tempfile::tempdir().unwrap();
        let sans = crate::pki::serving_sans("h", None, &[]);
        let pki = crate::pki::ensure_server_pki(dir.path(), &sans).unwrap();
        let der = |pem: &str| {
            CertificateDer::pem_slice_iter(pem.as_bytes())
                .next()
                .unwrap()
                .unwrap()
        };
        let kc = der(&pki.kubelet_client_cert_pem);
        assert!(authorized(Some(std::slice::from_ref(&kc))).is_ok());
        let admin = der(&pki.admin_cert_pem);
        let e = authorized(Some(std::slice::from_ref(&admin))).unwrap_err();
        assert!(e.contains("system:admin"), "{e}");
        assert!(authorized(None).is_err());
        let (cert, key) = pki
            .issue_kubelet_serving("n1", &["10.0.0.9".into()])
            .unwrap();
        let tls = EndpointTls {
            ca_pem: pki.ca_cert_pem.clone(),
            cert_pem: cert,
            key_pem: key,
        };
        assert!(server_config(&tls).is_ok());
    }
}
