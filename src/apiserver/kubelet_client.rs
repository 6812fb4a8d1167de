//! The API server's client of node agent endpoints (the kubelet port, `:10250`): TLS that
//! verifies the node's serving certificate against the cluster CA (the node's IP must be a
//! SAN) and presents the `kube-apiserver-kubelet-client` certificate.
//!
//! Owns: dialing an agent endpoint. May call: the network.

use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// How long dialing a node (TCP and TLS) may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Dials agent endpoints for `pods/log`, `pods/exec`, `pods/attach`.
pub struct KubeletDialer {
    tls: Arc<rustls::ClientConfig>,
    /// The built-in agent: its node name and the address its endpoint listens on, dialed
    /// instead of the node's InternalIP (it may listen on loopback only).
    local: Option<(String, SocketAddr)>,
}

impl std::fmt::Debug for KubeletDialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletDialer")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

/// Why the client cannot be built.
#[derive(Debug, thiserror::Error)]
#[error("kubelet client tls: {0}")]
pub struct KubeletClientError(String);

impl KubeletDialer {
    /// A dialer trusting `ca_pem` and presenting the given client pair.
    ///
    /// # Errors
    /// On unreadable PEM material.
    pub fn new(
        ca_pem: &str,
        client_cert_pem: &str,
        client_key_pem: &str,
        local: Option<(String, SocketAddr)>,
    ) -> Result<Self, KubeletClientError> {
        let err = |e: &dyn std::fmt::Display| KubeletClientError(e.to_string());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(c.map_err(|e| err(&e))?).map_err(|e| err(&e))?;
        }
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(client_cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| err(&e))?;
        let key = PrivateKeyDer::from_pem_slice(client_key_pem.as_bytes()).map_err(|e| err(&e))?;
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| err(&e))?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .map_err(|e| err(&e))?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(KubeletDialer {
            tls: Arc::new(cfg),
            local,
        })
    }

    /// The address to dial for `node` advertising `ip` and `port`.
    pub fn address(&self, node: &str, ip: IpAddr, port: u16) -> SocketAddr {
        match &self.local {
            Some((name, addr)) if name == node => {
                if addr.ip().is_unspecified() {
                    SocketAddr::new(ip, addr.port())
                } else {
                    *addr
                }
            }
            _ => SocketAddr::new(ip, port),
        }
    }

    /// Opens an HTTP/1.1 connection (upgrades allowed) to the endpoint at `addr`; the
    /// serving certificate must carry `addr`'s IP.
    ///
    /// # Errors
    /// The message says what failed (dial, handshake, certificate).
    pub async fn connect(&self, addr: SocketAddr) -> Result<SendRequest<Empty<Bytes>>, String> {
        let tcp = tokio::time::timeout(DIAL_TIMEOUT, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| format!("dial tcp {addr}: i/o timeout"))?
            .map_err(|e| format!("dial tcp {addr}: {e}"))?;
        let name = ServerName::IpAddress(addr.ip().into());
        let tls = tokio::time::timeout(
            DIAL_TIMEOUT,
            tokio_rustls::TlsConnector::from(self.tls.clone()).connect(name, tcp),
        )
        .await
        .map_err(|_| format!("tls handshake with {addr}: i/o timeout"))?
        .map_err(|e| format!("tls handshake with {addr}: {e}"))?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("http handshake with {addr}: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(send)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_dialed_at_their_ip_and_the_built_in_agent_at_its_endpoint() {
        let dir = tempfile::tempdir().unwrap();
        let sans = crate::pki::serving_sans("h", None, &[]);
        let pki = crate::pki::ensure_server_pki(dir.path(), &sans).unwrap();
        let local: SocketAddr = "127.0.0.1:20250".parse().unwrap();
        let d = KubeletDialer::new(
            &pki.ca_cert_pem,
            &pki.kubelet_client_cert_pem,
            &pki.kubelet_client_key_pem,
            Some(("server-1".into(), local)),
        )
        .unwrap();
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        assert_eq!(
            d.address("node-2", ip, 10250),
            "10.0.0.7:10250".parse().unwrap()
        );
        assert_eq!(d.address("server-1", ip, 10250), local);
        let any = KubeletDialer::new(
            &pki.ca_cert_pem,
            &pki.kubelet_client_cert_pem,
            &pki.kubelet_client_key_pem,
            Some(("server-1".into(), "0.0.0.0:10251".parse().unwrap())),
        )
        .unwrap();
        assert_eq!(
            any.address("server-1", ip, 10250),
            "10.0.0.7:10251".parse().unwrap()
        );
    }

    #[tokio::test]
    async fn an_unreachable_node_is_a_dial_error() {
        let dir = tempfile::tempdir().unwrap();
        let sans = crate::pki::serving_sans("h", None, &[]);
        let pki = crate::pki::ensure_server_pki(dir.path(), &sans).unwrap();
        let d = KubeletDialer::new(
            &pki.ca_cert_pem,
            &pki.kubelet_client_cert_pem,
            &pki.kubelet_client_key_pem,
            None,
        )
        .unwrap();
        // A port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = d
            .connect(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .err()
            .unwrap();
        assert!(e.starts_with("dial tcp 127.0.0.1:"), "{e}");
    }
}
