//! Join endpoints on the API port, answered before Kubernetes authentication (like k3s's
//! supervisor): `GET /cacerts` (anonymous, the CA bundle), `GET /v1-k3rs/ping`,
//! `POST /v1-k3rs/node-cert` (basic `node:<secret>`: a kubelet client certificate) and
//! `POST /v1-k3rs/server-bootstrap` (basic `server:<secret>`: the sealed cluster CA and
//! signing keys plus this server's raft peer URL).
//!
//! Owns: node-password Secrets `kube-system/<node>.node-password.k3rs`. May call: the
//! handlers (to read and create those Secrets) and [`crate::pki`].

use super::handlers::{Api, Query, Reply, Req, handle};
use super::router::Body;
use super::status::ApiError;
use crate::pki::ServerPki;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What the join endpoints need from the server.
#[derive(Clone, Debug)]
pub struct JoinConfig {
    /// The token secret (the part after `server:`).
    pub secret: String,
    /// The server's PKI (CA to serve and to sign node certificates with).
    pub pki: ServerPki,
    /// Where joining servers reach this server's raft listener (`http://host:port`).
    pub raft_peer_url: String,
}

/// Body of `POST /v1-k3rs/node-cert`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCertRequest {
    pub node_name: String,
    pub node_password: String,
    /// Addresses (IPs, names) of the node's agent endpoint: SANs of its serving certificate.
    #[serde(default)]
    pub addresses: Vec<String>,
}

/// Answer of `POST /v1-k3rs/node-cert`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCertResponse {
    pub cert: String,
    pub key: String,
    pub ca: String,
    /// Serving pair of the node's agent endpoint (`:10250`), signed by the cluster CA.
    #[serde(default)]
    pub serving_cert: String,
    #[serde(default)]
    pub serving_key: String,
}

/// The plaintext sealed in `POST /v1-k3rs/server-bootstrap`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerBootstrap {
    pub ca_cert: String,
    pub ca_key: String,
    pub service_account_key: String,
    pub raft_peer_url: String,
}

/// Whether the join endpoints answer `path`.
pub fn is_bootstrap_path(path: &str) -> bool {
    path == "/cacerts" || path.starts_with("/v1-k3rs/")
}

fn respond(code: u16, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()).boxed_unsync());
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    resp
}

fn error(code: u16, message: impl std::fmt::Display) -> Response<Body> {
    respond(code, "text/plain; charset=utf-8", format!("{message}\n"))
}

/// Basic-auth credentials `user:password` from the request, if any.
fn basic_auth(req: &Request<Incoming>) -> Option<(String, String)> {
    let h = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let b64 = h
        .strip_prefix("Basic ")
        .or_else(|| h.strip_prefix("basic "))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// Whether the request carries `<one of users>:<secret>`.
fn authorized(req: &Request<Incoming>, users: &[&str], secret: &str) -> bool {
    match basic_auth(req) {
        Some((u, p)) => {
            users.contains(&u.as_str())
                && !secret.is_empty()
                && crate::pki::token::constant_time_eq(p.as_bytes(), secret.as_bytes())
        }
        None => false,
    }
}

/// Serve one join request.
pub async fn handle_request(
    api: &Api,
    join: &JoinConfig,
    req: Request<Incoming>,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    match (method.as_str(), path.as_str()) {
        ("GET", "/cacerts") => respond(200, "application/x-pem-file", join.pki.ca_cert_pem.clone()),
        ("GET", "/v1-k3rs/ping") => respond(200, "text/plain; charset=utf-8", "pong"),
        ("POST", "/v1-k3rs/node-cert") => {
            // A server token also lets a node join (k3s accepts the server token for agents).
            if !authorized(&req, &["node", "server"], &join.secret) {
                return error(
                    401,
                    "unauthorized: the token secret is not valid for this server",
                );
            }
            match node_cert(api, join, req).await {
                Ok(r) => r,
                Err(e) => error(e.code, e.message),
            }
        }
        ("POST", "/v1-k3rs/server-bootstrap") => {
            if !authorized(&req, &["server"], &join.secret) {
                return error(
                    401,
                    "unauthorized: the server token secret is not valid for this server",
                );
            }
            let payload = ServerBootstrap {
                ca_cert: join.pki.ca_cert_pem.clone(),
                ca_key: join.pki.ca_key_pem.clone(),
                service_account_key: join.pki.service_account_key_pem.clone(),
                raft_peer_url: join.raft_peer_url.clone(),
            };
            let plain = match serde_json::to_vec(&payload) {
                Ok(p) => p,
                Err(e) => return error(500, e),
            };
            match crate::pki::join::seal(&join.secret, &plain) {
                Ok(sealed) => respond(
                    200,
                    "application/json",
                    json!({ "sealed": sealed }).to_string(),
                ),
                Err(e) => error(500, e),
            }
        }
        _ => error(404, format!("{method} {path}: not found")),
    }
}

struct Failure {
    code: u16,
    message: String,
}

impl Failure {
    fn new(code: u16, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::new(500, format!("storage: {}", e.message))
    }
}

fn valid_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !name.starts_with(['-', '.'])
        && !name.ends_with(['-', '.'])
}

async fn node_cert(
    api: &Api,
    join: &JoinConfig,
    req: Request<Incoming>,
) -> Result<Response<Body>, Failure> {
    let body = Limited::new(req.into_body(), 64 * 1024)
        .collect()
        .await
        .map_err(|e| Failure::new(400, format!("cannot read the request body: {e}")))?
        .to_bytes();
    let r: NodeCertRequest = serde_json::from_slice(&body)
        .map_err(|e| Failure::new(400, format!("bad node-cert request: {e}")))?;
    if !valid_node_name(&r.node_name) {
        return Err(Failure::new(
            400,
            format!(
                "invalid node name {:?} (want a DNS-1123 subdomain)",
                r.node_name
            ),
        ));
    }
    if r.node_password.len() < 16 {
        return Err(Failure::new(400, "node password too short"));
    }
    check_node_password(api, &r.node_name, &r.node_password).await?;
    let (cert, key) = join
        .pki
        .issue_client(
            &format!("system:node:{}", r.node_name),
            Some("system:nodes"),
        )
        .map_err(|e| Failure::new(500, e.to_string()))?;
    let (serving_cert, serving_key) = join
        .pki
        .issue_kubelet_serving(&r.node_name, &r.addresses)
        .map_err(|e| {
            Failure::new(
                400,
                format!("cannot issue the node serving certificate: {e}"),
            )
        })?;
    tracing::info!(node = %r.node_name, "issued a node client certificate");
    let out = NodeCertResponse {
        cert,
        key,
        serving_cert,
        serving_key,
        ca: join.pki.ca_cert_pem.clone(),
    };
    let text = serde_json::to_string(&out).map_err(|e| Failure::new(500, e.to_string()))?;
    Ok(respond(200, "application/json", text))
}

fn secret_req(api: &Api, name: Option<String>, body: Bytes) -> Result<Req, Failure> {
    let kind = api
        .registry
        .find("", "v1", "secrets")
        .ok_or_else(|| Failure::new(500, "secrets are not served"))?;
    Ok(Req {
        kind,
        namespace: Some("kube-system".into()),
        name,
        sub: None,
        query: Query::default(),
        accept: "application/json".into(),
        content_type: "application/json".into(),
        body,
        user_agent: "k3rs-join".into(),
        user: None,
    })
}

/// The stored password hash of `node`, if the node was seen before.
async fn stored_hash(api: &Api, secret_name: &str) -> Result<Option<String>, Failure> {
    let req = secret_req(api, Some(secret_name.to_string()), Bytes::new())?;
    let obj: Value = match handle(api, &http::Method::GET, req).await {
        Ok(Reply::Json { body, .. }) => body,
        Ok(_) => return Err(Failure::new(500, "unexpected reply reading a secret")),
        Err(e) if e.code == 404 => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let b64 = obj
        .pointer("/data/hash")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| {
            Failure::new(
                500,
                format!("secret kube-system/{secret_name} is malformed"),
            )
        })?;
    Ok(Some(String::from_utf8_lossy(&raw).into_owned()))
}

/// First sight of a node name stores its password hash; later requests must match it.
async fn check_node_password(api: &Api, node: &str, password: &str) -> Result<(), Failure> {
    let secret_name = format!("{node}.node-password.k3rs");
    for _ in 0..3 {
        if let Some(hash) = stored_hash(api, &secret_name).await? {
            return match crate::pki::join::verify_node_password(&hash, password) {
                Ok(true) => Ok(()),
                Ok(false) => Err(Failure::new(
                    403,
                    format!(
                        "node password rejected for node {node:?}: another host already joined with this name (delete secret kube-system/{secret_name} to reset it, or use a different --node-name)"
                    ),
                )),
                Err(e) => Err(Failure::new(
                    500,
                    format!("secret kube-system/{secret_name}: {e}"),
                )),
            };
        }
        let hash = crate::pki::join::hash_node_password(password);
        let obj = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret_name, "namespace": "kube-system"},
            "type": "k3rs.io/node-password",
            "data": {"hash": base64::engine::general_purpose::STANDARD.encode(hash.as_bytes())},
        });
        let req = secret_req(api, None, Bytes::from(obj.to_string()))?;
        match handle(api, &http::Method::POST, req).await {
            Ok(_) => return Ok(()),
            // Two requests for a new name raced: compare with the winner's password.
            Err(e) if e.code == 409 => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Failure::new(500, "cannot store the node password"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_must_be_dns_subdomains() {
        assert!(valid_node_name("agent-1.example"));
        assert!(!valid_node_name("Agent"));
        assert!(!valid_node_name("-a"));
        assert!(!valid_node_name("a/b"));
        assert!(!valid_node_name(""));
    }
}
