//! HTTP(S) for registry requests: one hyper HTTP/1.1 connection per request over TCP or
//! rustls (system roots plus per-host CA files, client certificates, optional
//! skip-verify), following redirects (blob downloads are often redirected to object
//! storage; credentials are dropped when the host changes).
//!
//! Owns: connections and TLS settings. May call: the network and the filesystem.

use super::RegistryError;
use super::config::TlsConfig;
use bytes::Bytes;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::{Request, Response, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Debian's (and most distributions') bundle of trusted roots.
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const MAX_REDIRECTS: usize = 5;

/// Builds TLS client configs (cached per host) and sends requests.
#[derive(Default)]
pub struct Http {
    tls: Mutex<HashMap<String, Arc<rustls::ClientConfig>>>,
}

fn net(url: &str, reason: impl std::fmt::Display) -> RegistryError {
    RegistryError::Http {
        url: url.to_string(),
        reason: reason.to_string(),
    }
}

fn tls_err(host: &str, reason: impl std::fmt::Display) -> RegistryError {
    RegistryError::Tls {
        host: host.to_string(),
        reason: reason.to_string(),
    }
}

fn read_pem(host: &str, path: &Path) -> Result<Vec<u8>, RegistryError> {
    std::fs::read(path).map_err(|e| tls_err(host, format!("{}: {e}", path.display())))
}

fn build_tls(host: &str, cfg: Option<&TlsConfig>) -> Result<rustls::ClientConfig, RegistryError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(host, e))?;
    let builder = if cfg.is_some_and(|c| c.insecure_skip_verify) {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(
                crate::pki::accept_any::AcceptAnyServerCert(provider),
            ))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        if let Ok(pem) = std::fs::read(SYSTEM_ROOTS) {
            // Individual unparsable roots are skipped, as every TLS stack does.
            let certs = CertificateDer::pem_slice_iter(&pem).flatten();
            let _ = roots.add_parsable_certificates(certs);
        }
        if let Some(ca) = cfg.and_then(|c| c.ca_file.as_deref()) {
            let pem = read_pem(host, ca)?;
            for c in CertificateDer::pem_slice_iter(&pem) {
                let c = c.map_err(|e| tls_err(host, format!("{}: {e}", ca.display())))?;
                roots
                    .add(c)
                    .map_err(|e| tls_err(host, format!("{}: {e}", ca.display())))?;
            }
        }
        builder.with_root_certificates(roots)
    };
    match cfg.and_then(|c| c.cert_file.as_deref().zip(c.key_file.as_deref())) {
        Some((cert, key)) => {
            let certs = CertificateDer::pem_slice_iter(&read_pem(host, cert)?)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| tls_err(host, format!("{}: {e}", cert.display())))?;
            let key = PrivateKeyDer::from_pem_slice(&read_pem(host, key)?)
                .map_err(|e| tls_err(host, format!("{}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| tls_err(host, e))
        }
        None => Ok(builder.with_no_client_auth()),
    }
}

/// A request to send: method, URL and headers (no bodies: registries are read-only here,
/// except the token endpoint's form POST).
#[derive(Debug, Clone)]
pub struct Req {
    pub method: http::Method,
    pub url: String,
    pub headers: Vec<(http::HeaderName, String)>,
    pub body: Option<(String, Vec<u8>)>,
}

impl Req {
    pub fn get(url: impl Into<String>) -> Req {
        Req {
            method: http::Method::GET,
            url: url.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn header(mut self, name: http::HeaderName, value: impl Into<String>) -> Req {
        self.headers.push((name, value.into()));
        self
    }
}

impl Http {
    fn tls_for(
        &self,
        host: &str,
        cfg: Option<&TlsConfig>,
    ) -> Result<Arc<rustls::ClientConfig>, RegistryError> {
        if let Ok(cache) = self.tls.lock()
            && let Some(c) = cache.get(host)
        {
            return Ok(c.clone());
        }
        let c = Arc::new(build_tls(host, cfg)?);
        if let Ok(mut cache) = self.tls.lock() {
            cache.insert(host.to_string(), c.clone());
        }
        Ok(c)
    }

    /// Sends `req`, following redirects. `tls` gives the settings of a host (by
    /// `host[:port]`).
    pub async fn send(
        &self,
        mut req: Req,
        tls: &(dyn Fn(&str) -> Option<TlsConfig> + Send + Sync),
    ) -> Result<Response<Incoming>, RegistryError> {
        for _ in 0..=MAX_REDIRECTS {
            let resp = self.send_once(&req, tls).await?;
            if !resp.status().is_redirection() {
                return Ok(resp);
            }
            let Some(location) = resp
                .headers()
                .get(http::header::LOCATION)
                .and_then(|l| l.to_str().ok())
            else {
                return Ok(resp);
            };
            let next = resolve_location(&req.url, location)
                .ok_or_else(|| net(&req.url, format!("bad redirect to {location:?}")))?;
            if authority(&next) != authority(&req.url) {
                req.headers
                    .retain(|(n, _)| n != http::header::AUTHORIZATION);
            }
            req.url = next;
        }
        Err(net(&req.url, "too many redirects"))
    }

    async fn send_once(
        &self,
        req: &Req,
        tls: &(dyn Fn(&str) -> Option<TlsConfig> + Send + Sync),
    ) -> Result<Response<Incoming>, RegistryError> {
        let url = req.url.as_str();
        let uri: Uri = url.parse().map_err(|e| net(url, e))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(net(url, "unsupported scheme")),
        };
        let host = uri.host().ok_or_else(|| net(url, "no host"))?.to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_else(|| host.clone());
        let bare = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let tcp = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::TcpStream::connect((bare.as_str(), port)),
        )
        .await
        .map_err(|_| net(url, "connect timed out"))?
        .map_err(|e| net(url, e))?;
        let path = uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let mut builder = Request::builder()
            .method(req.method.clone())
            .uri(path)
            .header(http::header::HOST, authority.clone())
            .header(http::header::USER_AGENT, "k3rs");
        for (n, v) in &req.headers {
            builder = builder.header(n, v);
        }
        let body = match &req.body {
            Some((ctype, bytes)) => {
                builder = builder.header(http::header::CONTENT_TYPE, ctype.as_str());
                http_body_util::Either::Left(http_body_util::Full::new(Bytes::from(bytes.clone())))
            }
            None => http_body_util::Either::Right(Empty::<Bytes>::new()),
        };
        let request = builder.body(body).map_err(|e| net(url, e))?;
        if https {
            let cfg = self.tls_for(&authority, tls(&authority).as_ref())?;
            let name = ServerName::try_from(bare.clone()).map_err(|e| tls_err(&authority, e))?;
            let stream = tokio_rustls::TlsConnector::from(cfg)
                .connect(name, tcp)
                .await
                .map_err(|e| tls_err(&authority, e))?;
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| net(url, e))?;
            tokio::spawn(conn);
            send.send_request(request).await.map_err(|e| net(url, e))
        } else {
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .map_err(|e| net(url, e))?;
            tokio::spawn(conn);
            send.send_request(request).await.map_err(|e| net(url, e))
        }
    }
}

/// `scheme://authority` of a URL.
fn authority(url: &str) -> String {
    url.parse::<Uri>()
        .ok()
        .and_then(|u| Some(format!("{}://{}", u.scheme_str()?, u.authority()?)))
        .unwrap_or_default()
}

/// Resolves a `Location` header against the request URL.
fn resolve_location(base: &str, location: &str) -> Option<String> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return Some(location.to_string());
    }
    let root = authority(base);
    if root.is_empty() {
        return None;
    }
    if location.starts_with('/') {
        return Some(format!("{root}{location}"));
    }
    let dir = base.rsplit_once('/').map(|(d, _)| d)?;
    Some(format!("{dir}/{location}"))
}

/// Reads a whole (small) body, refusing more than `limit` bytes.
pub async fn read_body(
    url: &str,
    resp: Response<Incoming>,
    limit: usize,
) -> Result<Vec<u8>, RegistryError> {
    use http_body_util::BodyExt;
    let mut body = resp.into_body();
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| net(url, e))?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(net(url, format!("response larger than {limit} bytes")));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_locations_resolve_against_the_request() {
        let base = "https://r.io/v2/a/blobs/sha256:x";
        assert_eq!(
            resolve_location(base, "https://s3.example/obj?sig=1").as_deref(),
            Some("https://s3.example/obj?sig=1")
        );
        assert_eq!(
            resolve_location(base, "/other/path").as_deref(),
            Some("https://r.io/other/path")
        );
        assert_eq!(
            resolve_location(base, "rel").as_deref(),
            Some("https://r.io/v2/a/blobs/rel")
        );
        assert_eq!(authority("http://h:5000/v2/x"), "http://h:5000");
    }
}
