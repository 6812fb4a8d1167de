//! Mutual TLS between raft peers: a [`Connector`] and an [`Acceptor`] over tokio-rustls.
//!
//! Owns: the TLS policy of the raft port. Both sides present a peer certificate signed by the
//! cluster CA and verify the other's chain against that CA; the dialer expects the fixed peer
//! name (`PEER_SAN`) and the acceptor requires the peer common name (`PEER_CN`), so other
//! certificates of the same CA (kubelets, admin) are refused. May call: rustls only.

use super::transport::{Acceptor, BoxStream, Connector};
use crate::store::state_machine::BoxFuture;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io;
use std::sync::Arc;
use tokio::net::TcpStream;

/// Why the peer TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[error("raft peer tls: {0}")]
pub struct PeerTlsError(String);

fn err(e: impl std::fmt::Display) -> PeerTlsError {
    PeerTlsError(e.to_string())
}

/// The TLS settings shared by the dialing and the accepting side.
pub struct PeerTls {
    client: Arc<rustls::ClientConfig>,
    server: Arc<rustls::ServerConfig>,
    peer_name: ServerName<'static>,
    peer_cn: String,
}

impl PeerTls {
    /// Build from the CA bundle, this server's peer pair, the expected DNS name and CN.
    ///
    /// # Errors
    /// On unparsable PEM material.
    pub fn new(
        ca_pem: &str,
        cert_pem: &str,
        key_pem: &str,
        peer_san: &str,
        peer_cn: &str,
    ) -> Result<Arc<Self>, PeerTlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(c.map_err(err)?).map_err(err)?;
        }
        let roots = Arc::new(roots);
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(err)?;
        let key = || PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(err);
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots.clone(),
            provider.clone(),
        )
        .build()
        .map_err(err)?;
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(err)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs.clone(), key()?)
            .map_err(err)?;
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(err)?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key()?)
            .map_err(err)?;
        let peer_name = ServerName::try_from(peer_san.to_string()).map_err(err)?;
        Ok(Arc::new(PeerTls {
            client: Arc::new(client),
            server: Arc::new(server),
            peer_name,
            peer_cn: peer_cn.to_string(),
        }))
    }
}

/// Dials peers over TLS (client certificate presented, server verified against the CA).
pub struct TlsConnector(pub Arc<PeerTls>);

impl Connector for TlsConnector {
    fn connect(&self, addr: String) -> BoxFuture<'static, io::Result<BoxStream>> {
        let tls = self.0.clone();
        Box::pin(async move {
            let tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let s = tokio_rustls::TlsConnector::from(tls.client.clone())
                .connect(tls.peer_name.clone(), tcp)
                .await?;
            Ok(Box::new(s) as BoxStream)
        })
    }
}

/// Accepts peers over TLS, requiring a CA-signed certificate with the peer common name.
pub struct TlsAcceptor(pub Arc<PeerTls>);

fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .map(String::from)
}

impl Acceptor for TlsAcceptor {
    fn accept(&self, tcp: TcpStream) -> BoxFuture<'static, io::Result<BoxStream>> {
        let tls = self.0.clone();
        Box::pin(async move {
            tcp.set_nodelay(true)?;
            let s = tokio_rustls::TlsAcceptor::from(tls.server.clone())
                .accept(tcp)
                .await?;
            let cn = s
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| common_name(c));
            if cn.as_deref() != Some(tls.peer_cn.as_str()) {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("raft peer certificate has common name {cn:?}, not a peer's"),
                ));
            }
            Ok(Box::new(s) as BoxStream)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{PEER_CN, PEER_SAN};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn tls_for(pki: &crate::pki::ServerPki, pair: (String, String)) -> Arc<PeerTls> {
        PeerTls::new(&pki.ca_cert_pem, &pair.0, &pair.1, PEER_SAN, PEER_CN).unwrap()
    }

    /// Accept one connection with `server` and dial it with `client`; returns whether bytes
    /// flowed both ways.
    async fn exchange(server: Arc<PeerTls>, client: Arc<PeerTls>) -> bool {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let srv = tokio::spawn(async move {
            let (tcp, _) = l.accept().await.unwrap();
            let mut s = TlsAcceptor(server).accept(tcp).await.ok()?;
            let mut b = [0u8; 4];
            s.read_exact(&mut b).await.ok()?;
            s.write_all(&b).await.ok()?;
            s.flush().await.ok()
        });
        let cli = async {
            let mut s = TlsConnector(client).connect(addr).await.ok()?;
            s.write_all(b"ping").await.ok()?;
            s.flush().await.ok()?;
            let mut b = [0u8; 4];
            s.read_exact(&mut b).await.ok()?;
            Some(b == *b"ping")
        };
        let c = cli.await;
        let s = srv.await.unwrap();
        c == Some(true) && s.is_some()
    }

    #[tokio::test]
    async fn peers_of_one_ca_connect_and_other_certificates_are_refused() {
        let d1 = tempfile::tempdir().unwrap();
        let d2 = tempfile::tempdir().unwrap();
        let sans = crate::pki::serving_sans("h", None, &[]);
        let pki = crate::pki::ensure_server_pki(d1.path(), &sans).unwrap();
        let other = crate::pki::ensure_server_pki(d2.path(), &sans).unwrap();
        let a = tls_for(&pki, pki.issue_peer().unwrap());
        let b = tls_for(&pki, pki.issue_peer().unwrap());
        assert!(exchange(a.clone(), b.clone()).await);
        // A kubelet certificate of the same CA is not a peer.
        let node = tls_for(
            &pki,
            pki.issue_client("system:node:x", Some("system:nodes"))
                .unwrap(),
        );
        assert!(!exchange(a.clone(), node).await);
        // A peer certificate of another cluster's CA is refused.
        let stranger = tls_for(&other, other.issue_peer().unwrap());
        assert!(!exchange(a, stranger).await);
    }
}
