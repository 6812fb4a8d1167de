//! The OCI distribution client: resolves a reference to the platform manifest (OCI and
//! Docker schema 2; image indexes and manifest lists narrowed to linux and this node's
//! architecture) and opens blobs for streaming, over the endpoints `registries.yaml` gives
//! (mirrors in order, then the registry), with anonymous, basic or bearer-token auth.
//!
//! Owns: the distribution API and the auth exchange. May call: [`super::http`].

use super::RegistryError;
use super::auth::{Credentials, PullSecrets, TokenResponse, parse_challenge};
use super::config::{Endpoint, RegistriesConfig, TlsConfig};
use super::http::{Http, Req, read_body};
use super::reference::Reference;
use hyper::Response;
use hyper::body::Incoming;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::sync::Mutex;
use tracing::debug;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const MAX_MANIFEST: usize = 4 << 20;

/// A manifest as fetched: its media type, digest (verified) and bytes.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub media_type: String,
    pub digest: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IndexEntry {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub platform: Option<IndexPlatform>,
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct IndexPlatform {
    pub architecture: String,
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

#[derive(Debug, Deserialize)]
struct IndexDoc {
    manifests: Vec<IndexEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MediaTypeOnly {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
}

/// This node's platform as OCI names it.
pub fn host_platform() -> (&'static str, Option<&'static str>) {
    match std::env::consts::ARCH {
        "x86_64" => ("amd64", None),
        "aarch64" => ("arm64", Some("v8")),
        "arm" => ("arm", Some("v7")),
        "x86" => ("386", None),
        other => (other, None),
    }
}

/// Picks the linux/`arch` entry of an image index (an exact variant first; arm64 entries
/// without a variant count as v8).
pub fn pick_platform<'a>(
    entries: &'a [IndexEntry],
    arch: &str,
    variant: Option<&str>,
) -> Option<&'a IndexEntry> {
    let candidates: Vec<&IndexEntry> = entries
        .iter()
        .filter(|e| {
            e.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == arch)
        })
        .collect();
    candidates
        .iter()
        .find(|e| e.platform.as_ref().and_then(|p| p.variant.as_deref()) == variant)
        .or_else(|| candidates.first())
        .copied()
}

fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One endpoint and repository being pulled from, with its current `Authorization`.
pub struct Session {
    pub endpoint: Endpoint,
    /// The image's own registry name (for pull-secret lookup).
    registry: String,
    credentials: Option<Credentials>,
    authorization: Mutex<Option<String>>,
}

/// A resolved reference: where it was found and its platform manifest.
pub struct Resolved {
    pub session: Session,
    /// The platform-specific manifest (after narrowing an index).
    pub manifest: Fetched,
}

/// A registry client (one per agent).
pub struct Client {
    config: RegistriesConfig,
    http: Http,
}

impl Client {
    pub fn new(config: RegistriesConfig) -> Client {
        Client {
            config,
            http: Http::default(),
        }
    }

    fn tls_lookup(&self) -> impl Fn(&str) -> Option<TlsConfig> + Send + Sync + '_ {
        move |host: &str| self.config.host(host).and_then(|h| h.tls.clone())
    }

    /// Resolves `r` to its platform manifest, trying each endpoint in order; a mirror's
    /// failure falls through to the next endpoint.
    pub async fn resolve(
        &self,
        r: &Reference,
        secrets: &PullSecrets,
    ) -> Result<Resolved, RegistryError> {
        let mut last = None;
        for endpoint in self.config.endpoints(r) {
            let credentials = secrets
                .for_host(&endpoint.host)
                .or_else(|| {
                    (!endpoint.mirror)
                        .then(|| secrets.for_host(&r.registry))
                        .flatten()
                })
                .cloned()
                .or_else(|| {
                    self.config
                        .host(&endpoint.host)
                        .and_then(|h| h.auth.as_ref())
                        .and_then(|a| a.credentials())
                });
            let session = Session {
                registry: r.registry.clone(),
                endpoint,
                credentials,
                authorization: Mutex::new(None),
            };
            match self.resolve_at(session, r).await {
                Ok(found) => return Ok(found),
                Err(e) => {
                    debug!(reference = %r.name(), error = %e, "endpoint failed");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| RegistryError::NotFound {
            reference: r.name(),
        }))
    }

    async fn resolve_at(&self, session: Session, r: &Reference) -> Result<Resolved, RegistryError> {
        let mut fetched = self.manifest(&session, r, r.object()).await?;
        if let Some(d) = &r.digest
            && fetched.digest != *d
        {
            return Err(RegistryError::DigestMismatch {
                what: r.name(),
                expected: d.clone(),
                actual: fetched.digest,
            });
        }
        if is_index(&fetched.media_type) {
            let index: IndexDoc =
                serde_json::from_slice(&fetched.bytes).map_err(|e| RegistryError::BadManifest {
                    reference: r.name(),
                    reason: e.to_string(),
                })?;
            let (arch, variant) = host_platform();
            let entry = pick_platform(&index.manifests, arch, variant).ok_or_else(|| {
                RegistryError::NoPlatform {
                    reference: r.name(),
                    platform: format!("linux/{arch}"),
                }
            })?;
            let digest = entry.digest.clone();
            fetched = self.manifest(&session, r, &digest).await?;
            if fetched.digest != digest {
                return Err(RegistryError::DigestMismatch {
                    what: r.name(),
                    expected: digest,
                    actual: fetched.digest,
                });
            }
        }
        if is_index(&fetched.media_type) {
            return Err(RegistryError::BadManifest {
                reference: r.name(),
                reason: "nested image index".into(),
            });
        }
        Ok(Resolved {
            session,
            manifest: fetched,
        })
    }

    async fn manifest(
        &self,
        session: &Session,
        r: &Reference,
        object: &str,
    ) -> Result<Fetched, RegistryError> {
        let url = format!(
            "{}/{}/manifests/{object}",
            session.endpoint.base(),
            session.endpoint.repository
        );
        let accept = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].join(", ");
        let resp = self
            .get(session, Req::get(&url).header(http::header::ACCEPT, accept))
            .await?;
        let status = resp.status();
        if status == http::StatusCode::NOT_FOUND {
            return Err(RegistryError::NotFound {
                reference: r.name(),
            });
        }
        if !status.is_success() {
            return Err(status_error(&url, resp).await);
        }
        let header_type = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
        let bytes = read_body(&url, resp, MAX_MANIFEST).await?;
        // The body's own mediaType wins over a generic Content-Type.
        let parsed: MediaTypeOnly =
            serde_json::from_slice(&bytes).map_err(|e| RegistryError::BadManifest {
                reference: r.name(),
                reason: e.to_string(),
            })?;
        let media_type = parsed
            .media_type
            .filter(|m| !m.is_empty())
            .or(header_type.filter(|h| h.starts_with("application/vnd.")))
            .unwrap_or_else(|| {
                if parsed.manifests.is_some() {
                    OCI_INDEX.into()
                } else {
                    OCI_MANIFEST.into()
                }
            });
        Ok(Fetched {
            media_type,
            digest: sha256(&bytes),
            bytes,
        })
    }

    /// Opens blob `digest` of the resolved repository (the caller streams and verifies it).
    pub async fn blob(
        &self,
        resolved: &Resolved,
        digest: &str,
    ) -> Result<Response<Incoming>, RegistryError> {
        let s = &resolved.session;
        let url = format!(
            "{}/{}/blobs/{digest}",
            s.endpoint.base(),
            s.endpoint.repository
        );
        let resp = self.get(s, Req::get(&url)).await?;
        if !resp.status().is_success() {
            return Err(status_error(&url, resp).await);
        }
        Ok(resp)
    }

    /// GET with the session's authorization; on 401 answers the challenge once and retries.
    async fn get(&self, session: &Session, req: Req) -> Result<Response<Incoming>, RegistryError> {
        let tls = self.tls_lookup();
        let current = session.authorization.lock().ok().and_then(|a| a.clone());
        let first = match &current {
            Some(a) => req.clone().header(http::header::AUTHORIZATION, a.clone()),
            None => req.clone(),
        };
        let resp = self.http.send(first, &tls).await?;
        if resp.status() != http::StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let challenge = resp
            .headers()
            .get(http::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge)
            .ok_or_else(|| RegistryError::Unauthorized {
                url: req.url.clone(),
                reason: "401 without a usable WWW-Authenticate challenge".into(),
            })?;
        let authorization = match challenge.scheme.as_str() {
            "basic" => session
                .credentials
                .as_ref()
                .and_then(Credentials::basic_header)
                .ok_or_else(|| RegistryError::Unauthorized {
                    url: req.url.clone(),
                    reason: format!(
                        "the registry requires credentials (none configured for {})",
                        session.endpoint.host
                    ),
                })?,
            "bearer" => {
                let token = self.token(session, &challenge.params).await?;
                format!("Bearer {token}")
            }
            other => {
                return Err(RegistryError::Unauthorized {
                    url: req.url.clone(),
                    reason: format!("unsupported auth scheme {other:?}"),
                });
            }
        };
        if current.as_deref() == Some(authorization.as_str()) {
            return Err(RegistryError::Unauthorized {
                url: req.url.clone(),
                reason: "credentials rejected".into(),
            });
        }
        if let Ok(mut a) = session.authorization.lock() {
            *a = Some(authorization.clone());
        }
        let url = req.url.clone();
        let resp = self
            .http
            .send(req.header(http::header::AUTHORIZATION, authorization), &tls)
            .await?;
        if resp.status() == http::StatusCode::UNAUTHORIZED {
            return Err(RegistryError::Unauthorized {
                url,
                reason: "credentials rejected".into(),
            });
        }
        Ok(resp)
    }

    /// The bearer-token flow: `GET realm?service=…&scope=repository:<repo>:pull` (with basic
    /// credentials when configured), or an OAuth2 refresh-token POST for identity tokens.
    async fn token(
        &self,
        session: &Session,
        params: &std::collections::HashMap<String, String>,
    ) -> Result<String, RegistryError> {
        let realm = params
            .get("realm")
            .ok_or_else(|| RegistryError::Unauthorized {
                url: session.endpoint.base(),
                reason: "bearer challenge without a realm".into(),
            })?;
        let scope = params
            .get("scope")
            .cloned()
            .unwrap_or_else(|| format!("repository:{}:pull", session.endpoint.repository));
        let service = params.get("service").cloned().unwrap_or_default();
        let req = match &session.credentials {
            Some(Credentials::IdentityToken(t)) => {
                let form = format!(
                    "grant_type=refresh_token&client_id=k3rs&service={}&scope={}&refresh_token={}",
                    form_encode(&service),
                    form_encode(&scope),
                    form_encode(t)
                );
                Req {
                    method: http::Method::POST,
                    url: realm.clone(),
                    headers: Vec::new(),
                    body: Some((
                        "application/x-www-form-urlencoded".into(),
                        form.into_bytes(),
                    )),
                }
            }
            other => {
                let sep = if realm.contains('?') { '&' } else { '?' };
                let mut url = format!("{realm}{sep}scope={}", form_encode(&scope));
                if !service.is_empty() {
                    url.push_str(&format!("&service={}", form_encode(&service)));
                }
                let mut req = Req::get(url);
                if let Some(h) = other.as_ref().and_then(|c| c.basic_header()) {
                    req = req.header(http::header::AUTHORIZATION, h);
                }
                req
            }
        };
        let url = req.url.clone();
        let tls = self.tls_lookup();
        let resp = self.http.send(req, &tls).await?;
        if !resp.status().is_success() {
            let status = resp.status();
            return Err(RegistryError::Unauthorized {
                url,
                reason: format!(
                    "token endpoint answered {status} (registry {})",
                    session.registry
                ),
            });
        }
        let body = read_body(&url, resp, 1 << 20).await?;
        serde_json::from_slice::<TokenResponse>(&body)
            .ok()
            .and_then(TokenResponse::bearer)
            .ok_or_else(|| RegistryError::Unauthorized {
                url,
                reason: "token endpoint answered without a token".into(),
            })
    }
}

async fn status_error(url: &str, resp: Response<Incoming>) -> RegistryError {
    let status = resp.status().as_u16();
    let body = read_body(url, resp, 64 << 10).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    RegistryError::Status {
        url: url.to_string(),
        status,
        body: text
            .chars()
            .take(200)
            .collect::<String>()
            .trim()
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(arch: &str, os: &str, variant: Option<&str>, d: &str) -> IndexEntry {
        IndexEntry {
            media_type: OCI_MANIFEST.into(),
            digest: d.into(),
            platform: Some(IndexPlatform {
                architecture: arch.into(),
                os: os.into(),
                variant: variant.map(str::to_string),
            }),
        }
    }

    #[test]
    fn the_linux_manifest_of_the_node_architecture_is_picked() {
        let list = vec![
            entry("amd64", "windows", None, "w"),
            entry("arm", "linux", Some("v6"), "v6"),
            entry("arm", "linux", Some("v7"), "v7"),
            entry("arm64", "linux", Some("v8"), "a64"),
            entry("amd64", "linux", None, "x64"),
        ];
        assert_eq!(pick_platform(&list, "amd64", None).unwrap().digest, "x64");
        assert_eq!(
            pick_platform(&list, "arm64", Some("v8")).unwrap().digest,
            "a64"
        );
        assert_eq!(
            pick_platform(&list, "arm", Some("v7")).unwrap().digest,
            "v7"
        );
        assert!(pick_platform(&list, "riscv64", None).is_none());
        // An arm64 entry without a variant still matches a v8 node.
        let plain = vec![entry("arm64", "linux", None, "p")];
        assert_eq!(
            pick_platform(&plain, "arm64", Some("v8")).unwrap().digest,
            "p"
        );
    }

    #[test]
    fn docker_manifest_lists_parse_as_index_entries() {
        let doc = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json",
            "manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":1,
            "digest":"sha256:aa","platform":{"architecture":"amd64","os":"linux"}}]}"#;
        let idx: IndexDoc = serde_json::from_slice(doc).unwrap();
        assert_eq!(
            pick_platform(&idx.manifests, "amd64", None).unwrap().digest,
            "sha256:aa"
        );
        assert!(is_index(DOCKER_LIST) && is_index(OCI_INDEX) && !is_index(DOCKER_MANIFEST));
    }

    #[test]
    fn token_request_parameters_are_form_encoded() {
        assert_eq!(
            form_encode("repository:library/busybox:pull"),
            "repository%3Alibrary%2Fbusybox%3Apull"
        );
    }

    /// A tiny registry that demands a bearer token from its own token endpoint, which in
    /// turn demands basic credentials `u:p`.
    async fn bearer_registry() -> (u16, std::sync::Arc<Mutex<Vec<String>>>) {
        use http_body_util::Full;
        use hyper::service::service_fn;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(Mutex::new(Vec::<String>::new()));
        let log = seen.clone();
        let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:c","size":1},"layers":[]}"#;
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let log = log.clone();
                let svc = service_fn(move |req: hyper::Request<Incoming>| {
                    let log = log.clone();
                    async move {
                        let auth = req
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        let uri = req.uri().to_string();
                        log.lock().unwrap().push(format!("{uri} {auth}"));
                        let basic_ok = format!(
                            "Basic {}",
                            base64::Engine::encode(
                                &base64::engine::general_purpose::STANDARD,
                                "u:p"
                            )
                        );
                        let resp = if uri.starts_with("/token") {
                            if auth == basic_ok {
                                hyper::Response::new(Full::new(bytes::Bytes::from_static(
                                    br#"{"token":"T1"}"#,
                                )))
                            } else {
                                let mut r = hyper::Response::new(Full::default());
                                *r.status_mut() = http::StatusCode::UNAUTHORIZED;
                                r
                            }
                        } else if auth == "Bearer T1" {
                            let mut r = hyper::Response::new(Full::new(bytes::Bytes::from_static(
                                manifest,
                            )));
                            r.headers_mut()
                                .insert("content-type", OCI_MANIFEST.parse().unwrap());
                            r
                        } else {
                            let mut r = hyper::Response::new(Full::default());
                            *r.status_mut() = http::StatusCode::UNAUTHORIZED;
                            r.headers_mut().insert(
                                "www-authenticate",
                                format!(
                                    r#"Bearer realm="http://127.0.0.1:{port}/token",service="test",scope="repository:repo:pull""#
                                )
                                .parse()
                                .unwrap(),
                            );
                            r
                        };
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc),
                );
            }
        });
        (port, seen)
    }

    fn config_with(port: u16, password: &str) -> RegistriesConfig {
        RegistriesConfig::parse(&format!(
            "configs:\n  \"127.0.0.1:{port}\":\n    auth: {{username: u, password: {password}}}\n"
        ))
        .unwrap()
    }

    #[tokio::test]
    async fn bearer_tokens_are_fetched_with_basic_credentials_and_used() {
        let (port, seen) = bearer_registry().await;
        let client = Client::new(config_with(port, "p"));
        let r = Reference::parse(&format!("127.0.0.1:{port}/repo:1")).unwrap();
        let resolved = client.resolve(&r, &PullSecrets::default()).await.unwrap();
        assert_eq!(resolved.manifest.media_type, OCI_MANIFEST);
        assert_eq!(resolved.manifest.digest, sha256(&resolved.manifest.bytes));
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert!(seen[0].starts_with("/v2/repo/manifests/1 "), "{seen:?}");
        assert!(
            seen[1].starts_with("/token?scope=repository%3Arepo%3Apull&service=test Basic "),
            "{seen:?}"
        );
        assert_eq!(seen[2], "/v2/repo/manifests/1 Bearer T1");
    }

    #[tokio::test]
    async fn rejected_token_credentials_are_an_unauthorized_error() {
        let (port, _) = bearer_registry().await;
        let client = Client::new(config_with(port, "wrong"));
        let r = Reference::parse(&format!("127.0.0.1:{port}/repo:1")).unwrap();
        let err = client
            .resolve(&r, &PullSecrets::default())
            .await
            .err()
            .unwrap();
        assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
        // Anonymous: the token endpoint refuses too.
        let client = Client::new(RegistriesConfig::default());
        assert!(client.resolve(&r, &PullSecrets::default()).await.is_err());
    }
}
