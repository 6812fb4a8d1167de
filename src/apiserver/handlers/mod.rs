//! Generic handlers for every verb on every kind, written against [`Backend`].
//!
//! One file per verb family: `read` (get, list), `watch`, `write` (create, update, patch),
//! `delete` (delete, deletecollection), `subresources` (scale, binding, eviction, token).

mod delete;
mod eviction;
mod read;
mod reviews;
mod subresources;
mod watch;
mod write;

pub use read::list_all;

use super::object::{from_kv, to_stored};
use super::registry::{Registry, ResourceKind};
use super::status::ApiError;
use super::storage::Backend;
use crate::store::types::*;
use bytes::Bytes;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// Shared state of the API server.
pub struct Api {
    pub backend: Arc<dyn Backend>,
    pub registry: Registry,
    /// Signs and verifies service-account tokens (absent in some unit tests).
    pub tokens: Option<crate::apiserver::auth::TokenSigner>,
    /// Generated OpenAPI documents.
    pub openapi: crate::apiserver::openapi_docs::OpenApiCache,
    /// Client of node agents for `pods/log`, `pods/exec`, `pods/attach` (set at start).
    pub kubelet: std::sync::OnceLock<crate::apiserver::kubelet_client::KubeletDialer>,
    /// `--service-cidr`: where Service ClusterIPs come from.
    pub service_range: crate::apiserver::allocator::ServiceRange,
}

/// Decoded query string (last value wins).
#[derive(Clone, Debug, Default)]
pub struct Query(pub HashMap<String, String>);

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Query {
    pub fn parse(q: Option<&str>) -> Self {
        let mut m = HashMap::new();
        for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            m.insert(pct_decode(k), pct_decode(v));
        }
        Self(m)
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|s| !s.is_empty())
    }

    pub fn flag(&self, k: &str) -> bool {
        matches!(
            self.0.get(k).map(String::as_str),
            Some("true" | "True" | "1")
        )
    }

    pub fn dry_run(&self) -> bool {
        self.0.get("dryRun").is_some_and(|v| v == "All")
    }
}

/// One API request after routing.
pub struct Req {
    pub kind: Arc<ResourceKind>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub sub: Option<String>,
    pub query: Query,
    pub accept: String,
    pub content_type: String,
    pub body: Bytes,
    /// The client's `User-Agent` (default field manager name).
    pub user_agent: String,
    /// The authenticated caller (`None` only for internal requests).
    pub user: Option<crate::apiserver::auth::User>,
}

impl Req {
    /// `?fieldManager=`, else the user agent's program name, as upstream defaults it.
    pub fn field_manager(&self) -> String {
        if let Some(m) = self.query.get("fieldManager") {
            return m.to_string();
        }
        let ua = self.user_agent.split('/').next().unwrap_or("").trim();
        if ua.is_empty() {
            "unknown".into()
        } else {
            ua.chars().take(128).collect()
        }
    }
}

/// A handler's answer.
pub enum Reply {
    Json {
        code: u16,
        body: Value,
        warnings: Vec<String>,
    },
    /// A body already encoded (large lists spliced from stored bytes) with its content type.
    Raw {
        content_type: &'static str,
        body: Bytes,
    },
    /// A streaming body (watch, log) with its content type.
    Stream {
        content_type: String,
        rx: tokio::sync::mpsc::Receiver<Bytes>,
    },
}

impl Reply {
    pub fn ok(body: Value) -> Self {
        Self::Json {
            code: 200,
            body,
            warnings: vec![],
        }
    }
    pub fn code(code: u16, body: Value) -> Self {
        Self::Json {
            code,
            body,
            warnings: vec![],
        }
    }
}

/// Dispatch a routed request by method.
pub async fn handle(api: &Api, method: &http::Method, req: Req) -> Result<Reply, ApiError> {
    use http::Method;
    if req.kind.create_only {
        return reviews::handle(api, method, req).await;
    }
    if let Some(sub) = req.sub.clone() {
        return subresources::handle(api, method, req, &sub).await;
    }
    let watch = req.query.flag("watch");
    match (method, req.name.is_some()) {
        (&Method::GET, false) if watch => watch::watch(api, req).await,
        (&Method::GET, true) if watch => watch::watch(api, req).await,
        (&Method::GET, true) => read::get(api, req).await,
        (&Method::GET, false) => read::list(api, req).await,
        (&Method::POST, false) => write::create(api, req).await,
        (&Method::PUT, true) => write::update(api, req, None).await,
        (&Method::PATCH, true) => write::patch(api, req, None).await,
        (&Method::DELETE, true) => delete::delete(api, req).await,
        (&Method::DELETE, false) => delete::delete_collection(api, req).await,
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({method})"
        ))),
    }
}

/// Read one object and its mod revision.
pub(crate) async fn get_obj(
    api: &Api,
    kind: &ResourceKind,
    ns: Option<&str>,
    name: &str,
) -> Result<(Value, i64), ApiError> {
    let key = kind.key(ns, name);
    let resp = api
        .backend
        .range(RangeRequest {
            key: key.into_bytes(),
            ..Default::default()
        })
        .await?;
    let kv = resp
        .kvs
        .first()
        .ok_or_else(|| ApiError::not_found(&kind.group, &kind.plural, name))?;
    Ok((from_kv(kind, kv)?, kv.mod_revision))
}

/// Write `obj` (of `kind`, in its version) at `key` iff its mod revision is still `expect` (0 = must not exist).
/// Returns the new revision, or `None` when the compare failed.
pub(crate) async fn put_if(
    api: &Api,
    kind: &ResourceKind,
    key: &str,
    expect: i64,
    obj: &Value,
) -> Result<Option<i64>, ApiError> {
    let resp = api
        .backend
        .txn(TxnRequest {
            compare: vec![Compare {
                key: key.as_bytes().to_vec(),
                range_end: vec![],
                target: CompareTarget::ModRevision(expect),
                result: CompareResult::Equal,
            }],
            success: vec![RequestOp::Put(PutRequest {
                key: key.as_bytes().to_vec(),
                value: to_stored(kind, obj),
                ..Default::default()
            })],
            failure: vec![],
        })
        .await?;
    Ok(resp.succeeded.then_some(resp.header.revision))
}

/// Delete `key` iff its mod revision is still `expect`. Returns the delete's revision.
pub(crate) async fn delete_if(api: &Api, key: &str, expect: i64) -> Result<Option<i64>, ApiError> {
    let resp = api
        .backend
        .txn(TxnRequest {
            compare: vec![Compare {
                key: key.as_bytes().to_vec(),
                range_end: vec![],
                target: CompareTarget::ModRevision(expect),
                result: CompareResult::Equal,
            }],
            success: vec![RequestOp::DeleteRange(DeleteRangeRequest {
                key: key.as_bytes().to_vec(),
                ..Default::default()
            })],
            failure: vec![],
        })
        .await?;
    Ok(resp.succeeded.then_some(resp.header.revision))
}

/// Re-read every CRD and refresh the served custom resources.
pub async fn refresh_crds(api: &Api) -> Result<(), ApiError> {
    let Some(crd_kind) =
        api.registry
            .find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    else {
        return Ok(());
    };
    let (items, _) = list_all(api, &crd_kind, None, 0).await?;
    api.registry.set_crds(&items);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_percent_decoded() {
        let q = Query::parse(Some("labelSelector=app%3Dweb%2Ctier+in+(a)&watch=1&x"));
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a)"));
        assert!(q.flag("watch"));
        assert_eq!(q.get("x"), None);
    }
}

#[cfg(test)]
mod handler_tests;
