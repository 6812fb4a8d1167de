//! TLS for the etcd API when it listens on a non-loopback address: the server requires a
//! client certificate of the cluster CA with an allowed common name, and a client side (used
//! by `k3rs etcd-snapshot save`) that presents the operator pair.
//!
//! Owns: the TLS policy of the etcd listener. May call: rustls and tonic's transport only.
//! tonic is built without its TLS features, so connections are wrapped here: accepted
//! streams become [`TlsConn`] (tonic's `Connected`), dialed ones a hyper-ready stream.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[error("etcd api tls: {0}")]
pub struct EtcdTlsError(String);

fn err(e: impl std::fmt::Display) -> EtcdTlsError {
    EtcdTlsError(e.to_string())
}

fn roots(ca_pem: &str) -> Result<Arc<rustls::RootCertStore>, EtcdTlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.map_err(err)?).map_err(err)?;
    }
    Ok(Arc::new(roots))
}

fn pair(
    cert_pem: &str,
    key_pem: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), EtcdTlsError> {
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(err)?;
    Ok((certs, key))
}

/// The server side: CA-verified client certificates with one of `allowed_cns`.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<rustls::ServerConfig>,
    allowed_cns: Arc<Vec<String>>,
}

impl ServerTls {
    /// # Errors
    /// On unparsable PEM material.
    pub fn new(
        ca_pem: &str,
        cert_pem: &str,
        key_pem: &str,
        allowed_cns: &[&str],
    ) -> Result<Self, EtcdTlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots(ca_pem)?,
            provider.clone(),
        )
        .build()
        .map_err(err)?;
        let (certs, key) = pair(cert_pem, key_pem)?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(err)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .map_err(err)?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(ServerTls {
            config: Arc::new(config),
            allowed_cns: Arc::new(allowed_cns.iter().map(|s| s.to_string()).collect()),
        })
    }

    /// Handshakes `tcp` and checks the client's common name.
    ///
    /// # Errors
    /// A failed handshake or a certificate with another common name.
    pub async fn accept(&self, tcp: TcpStream) -> io::Result<TlsConn> {
        tcp.set_nodelay(true)?;
        let s = tokio_rustls::TlsAcceptor::from(self.config.clone())
            .accept(tcp)
            .await?;
        let cn = s
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| common_name(c));
        match cn {
            Some(cn) if self.allowed_cns.contains(&cn) => Ok(TlsConn(Box::new(s))),
            other => Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("etcd client certificate common name {other:?} is not allowed"),
            )),
        }
    }
}

fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .map(String::from)
}

/// An accepted TLS connection, servable by tonic.
pub struct TlsConn(Box<tokio_rustls::server::TlsStream<TcpStream>>);

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = ();
    fn connect_info(&self) {}
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

/// The client side: trusts the CA, presents the operator pair.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<rustls::ClientConfig>,
}

impl ClientTls {
    /// # Errors
    /// On unparsable PEM material.
    pub fn new(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<Self, EtcdTlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (certs, key) = pair(cert_pem, key_pem)?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(err)?
            .with_root_certificates(roots(ca_pem)?)
            .with_client_auth_cert(certs, key)
            .map_err(err)?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(ClientTls {
            config: Arc::new(config),
        })
    }

    /// Dials `addr` and handshakes, expecting the server certificate to name `host`.
    ///
    /// # Errors
    /// Connection or handshake failures.
    pub async fn connect(
        &self,
        addr: std::net::SocketAddr,
    ) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::IpAddress(addr.ip().into());
        tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
    }
}
