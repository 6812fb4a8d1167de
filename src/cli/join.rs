//! The joining side of the join protocol (agents and servers joining with `--server` and
//! `--token`), and the server's token file.
//!
//! Trust: `/cacerts` is fetched without verification, its sha256 is compared with the hash in
//! the token, and every later request is made with that CA pinned.

use crate::apiserver::bootstrap_endpoints::{NodeCertRequest, NodeCertResponse, ServerBootstrap};
use crate::pki::token::{self, Token};
use anyhow::{Context, bail};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::path::Path;
use std::sync::Arc;

/// Write (first start) or read (later starts) `<data-dir>/server/token`; returns the secret.
///
/// The secret is `--token`'s when given (a full `K10…` token or a bare secret), else random.
pub fn ensure_token_file(
    server_dir: &Path,
    ca_pem: &str,
    flag: Option<&str>,
) -> anyhow::Result<String> {
    let path = server_dir.join("token");
    let wanted = match flag {
        Some(t) if !t.is_empty() => Some(
            token::parse(t)
                .with_context(|| "invalid --token")?
                .secret()
                .to_string(),
        ),
        _ => None,
    };
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let t = token::parse(&existing)
            .with_context(|| format!("invalid token file {}", path.display()))?;
        if let Some(w) = &wanted {
            if w != t.secret() {
                tracing::warn!(path = %path.display(), "--token differs from the stored token; keeping the stored one");
            }
        }
        return Ok(t.secret().to_string());
    }
    let secret = wanted.unwrap_or_else(token::generate_secret);
    let full = Token::server(ca_pem.as_bytes(), &secret).to_string();
    write_private(&path, &format!("{full}\n"))?;
    tracing::info!(path = %path.display(), "wrote the join token");
    Ok(secret)
}

/// Write a file readable only by its owner (0600).
pub fn write_private(path: &Path, data: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(data.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// A small HTTPS client for the join endpoints of one server.
pub struct JoinClient {
    url: String,
    host: String,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
}

fn split_url(url: &str) -> anyhow::Result<(String, u16)> {
    let rest = url
        .strip_prefix("https://")
        .with_context(|| format!("server URL {url:?} must start with https://"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') => (
            h,
            p.parse::<u16>()
                .with_context(|| format!("bad port in server URL {url:?}"))?,
        ),
        _ => (authority, 6443),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        bail!("server URL {url:?} has no host");
    }
    Ok((host.to_string(), port))
}

impl JoinClient {
    fn new(url: &str, tls: rustls::ClientConfig) -> anyhow::Result<Self> {
        let (host, port) = split_url(url)?;
        Ok(JoinClient {
            url: url.trim_end_matches('/').to_string(),
            host,
            port,
            tls: Arc::new(tls),
        })
    }

    /// A client that does not verify the server (only for `/cacerts`).
    pub fn insecure(url: &str) -> anyhow::Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(
                crate::pki::accept_any::AcceptAnyServerCert(provider),
            ))
            .with_no_client_auth();
        Self::new(url, cfg)
    }

    /// A client that trusts only `ca_pem`.
    pub fn pinned(url: &str, ca_pem: &str) -> anyhow::Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(c.context("bad CA PEM")?)?;
        }
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Self::new(url, cfg)
    }

    /// One request; returns the status and body.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        basic: Option<(&str, &str)>,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<(u16, Bytes)> {
        let addr = format!("{}:{}", self.host, self.port);
        let fail = || format!("cannot reach the server at {}", self.url);
        let tcp = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            tokio::net::TcpStream::connect(&addr),
        )
        .await
        .with_context(fail)?
        .with_context(fail)?;
        let name = ServerName::try_from(self.host.clone())
            .with_context(|| format!("bad server host {:?}", self.host))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .with_context(|| format!("TLS handshake with {} failed", self.url))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .with_context(fail)?;
        tokio::spawn(conn);
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, format!("{}:{}", self.host, self.port));
        if let Some((u, p)) = basic {
            let cred = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            req = req.header(hyper::header::AUTHORIZATION, format!("Basic {cred}"));
        }
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let resp = sender.send_request(req).await.with_context(fail)?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .with_context(fail)?
            .to_bytes();
        Ok((status, body))
    }
}

/// Download `/cacerts` unverified and check it against the token's CA hash; returns the CA.
pub async fn fetch_verified_ca(url: &str, tok: &Token) -> anyhow::Result<String> {
    let client = JoinClient::insecure(url)?;
    let (status, body) = client.request("GET", "/cacerts", None, None).await?;
    if status != 200 {
        bail!("cannot get the CA from {url}/cacerts: HTTP {status}");
    }
    let ca = String::from_utf8(body.to_vec()).context("the server's CA is not text")?;
    match tok.ca_hash() {
        Some(want) => {
            if token::verify_ca(tok, ca.as_bytes()).is_err() {
                bail!(
                    "the server's CA does not match the token hash (token has {want}, {url} serves a CA with hash {}): refusing to join; check the token and the server URL",
                    token::ca_hash(ca.as_bytes())
                );
            }
        }
        None => {
            tracing::warn!("the token has no CA hash: trusting the CA {url} presents on first use")
        }
    }
    Ok(ca)
}

fn explain(status: u16, body: &Bytes, what: &str) -> anyhow::Error {
    let text = String::from_utf8_lossy(body).trim().to_string();
    match status {
        401 => anyhow::anyhow!(
            "the server rejected the token secret (401 Unauthorized) while {what}: check --token ({text})"
        ),
        403 => anyhow::anyhow!("the server refused {what} (403 Forbidden): {text}"),
        _ => anyhow::anyhow!("{what} failed: HTTP {status}: {text}"),
    }
}

/// Ask for a kubelet client certificate for `node_name`.
pub async fn request_node_cert(
    url: &str,
    ca: &str,
    tok: &Token,
    node_name: &str,
    node_password: &str,
    addresses: &[String],
) -> anyhow::Result<NodeCertResponse> {
    let client = JoinClient::pinned(url, ca)?;
    let body = serde_json::to_vec(&NodeCertRequest {
        node_name: node_name.to_string(),
        node_password: node_password.to_string(),
        addresses: addresses.to_vec(),
    })?;
    let (status, resp) = client
        .request(
            "POST",
            "/v1-k3rs/node-cert",
            Some(("node", tok.secret())),
            Some(body),
        )
        .await?;
    if status != 200 {
        return Err(explain(status, &resp, "issuing the node certificate"));
    }
    serde_json::from_slice(&resp).context("bad node-cert answer")
}

/// Fetch and open the server bootstrap payload (shared CA, signing keys, raft peer URL).
pub async fn request_server_bootstrap(
    url: &str,
    ca: &str,
    tok: &Token,
) -> anyhow::Result<ServerBootstrap> {
    let client = JoinClient::pinned(url, ca)?;
    let (status, resp) = client
        .request(
            "POST",
            "/v1-k3rs/server-bootstrap",
            Some(("server", tok.secret())),
            Some(b"{}".to_vec()),
        )
        .await?;
    if status != 200 {
        return Err(explain(status, &resp, "fetching the server bootstrap data"));
    }
    let v: serde_json::Value = serde_json::from_slice(&resp).context("bad bootstrap answer")?;
    let sealed = v
        .get("sealed")
        .and_then(|s| s.as_str())
        .context("bootstrap answer without a sealed payload")?;
    let plain = crate::pki::join::open(tok.secret(), sealed)?;
    let b: ServerBootstrap = serde_json::from_slice(&plain).context("bad bootstrap payload")?;
    if b.ca_cert != ca {
        bail!("the bootstrap CA differs from the CA the server presented");
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_split_into_host_and_port() {
        assert_eq!(
            split_url("https://10.0.0.1:6443").unwrap(),
            ("10.0.0.1".into(), 6443)
        );
        assert_eq!(
            split_url("https://example.com/").unwrap(),
            ("example.com".into(), 6443)
        );
        assert_eq!(
            split_url("https://[::1]:7443").unwrap(),
            ("::1".into(), 7443)
        );
        assert!(split_url("http://x").is_err());
    }

    #[test]
    fn token_file_is_created_once_with_the_ca_hash() {
        let dir = tempfile::tempdir().unwrap();
        let s1 = ensure_token_file(dir.path(), "CA", Some("abc")).unwrap();
        assert_eq!(s1, "abc");
        let text = std::fs::read_to_string(dir.path().join("token")).unwrap();
        assert_eq!(text.trim(), Token::server(b"CA", "abc").to_string());
        let s2 = ensure_token_file(dir.path(), "CA", None).unwrap();
        assert_eq!(s2, "abc");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
