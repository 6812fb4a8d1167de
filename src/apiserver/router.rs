//! HTTP routing: authentication gate, body limit, non-resource endpoints (health, version,
//! discovery, OpenAPI) and resource URL parsing into a handler [`Req`].

use super::auth::User;
use super::discovery;
use super::handlers::{self, Api, Query, Reply, Req};
use super::status::ApiError;
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use serde_json::Value;
use std::convert::Infallible;

/// Response body type of every route.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Largest accepted request body (upstream's limit).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed_unsync()
}

fn json_response(code: u16, v: &Value, content_type: &str, warnings: &[String]) -> Response<Body> {
    let mut resp = Response::new(full(v.to_string()));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(ct) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    for w in warnings {
        let escaped = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(h) = HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            resp.headers_mut().append("warning", h);
        }
    }
    resp
}

fn raw_response(body: impl Into<Bytes>, content_type: &str) -> Response<Body> {
    let mut resp = Response::new(full(body));
    if let Ok(ct) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    resp
}

fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code, &e.to_status(), "application/json", &[])
}

fn text(code: u16, s: &'static str) -> Response<Body> {
    let mut resp = Response::new(full(s));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn header_str(req: &Request<Incoming>, name: header::HeaderName) -> String {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

fn is_anonymous_path(path: &str) -> bool {
    ["/healthz", "/livez", "/readyz", "/version"]
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

/// Serve one request. `peer` is the user of a client certificate signed by the cluster CA.
pub async fn route(api: &Api, peer: Option<User>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let start = std::time::Instant::now();
    let user = peer.or_else(|| bearer_user(api, &req));
    let resp = match route_inner(api, user, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    tracing::debug!(%method, %path, status = resp.status().as_u16(), elapsed_ms = start.elapsed().as_millis() as u64, "request");
    resp
}

fn bearer_user(api: &Api, req: &Request<Incoming>) -> Option<User> {
    let h = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = h
        .strip_prefix("Bearer ")
        .or_else(|| h.strip_prefix("bearer "))?;
    api.tokens.as_ref()?.verify(token.trim())
}

async fn route_inner(
    api: &Api,
    user: Option<User>,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let authenticated = user.is_some();
    let path = req.uri().path().trim_end_matches('/').to_string();
    let path = if path.is_empty() {
        "/".to_string()
    } else {
        path
    };
    if !authenticated && !is_anonymous_path(&path) {
        return Err(ApiError::unauthorized());
    }
    if let [
        "api",
        "v1",
        "namespaces",
        ns,
        "pods",
        name,
        sub @ ("exec" | "attach"),
    ] = path
        .trim_start_matches('/')
        .split('/')
        .collect::<Vec<_>>()
        .as_slice()
    {
        let (ns, name, sub) = (ns.to_string(), name.to_string(), sub.to_string());
        return super::pod_proxy::exec(api, &ns, &name, &sub, req).await;
    }
    if let ["api", "v1", "namespaces", ns, "pods", name, "log"] = path
        .trim_start_matches('/')
        .split('/')
        .collect::<Vec<_>>()
        .as_slice()
        && req.method() == Method::GET
    {
        let (ns, name) = (ns.to_string(), name.to_string());
        let q = req.uri().query().map(str::to_string);
        return stream_reply(super::pod_proxy::logs(api, &ns, &name, q.as_deref()).await?);
    }
    let accept = header_str(&req, header::ACCEPT);
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let json = |v: Value| Ok(json_response(200, &v, "application/json", &[]));
    match segs.as_slice() {
        ["healthz" | "livez" | "readyz", ..] => return Ok(text(200, "ok")),
        ["version"] => return json(discovery::version_info()),
        ["api"] if discovery::wants_aggregated(&accept) => {
            let v = discovery::aggregated(&api.registry, true);
            return Ok(json_response(200, &v, discovery::AGGREGATED_V2, &[]));
        }
        ["api"] => return json(discovery::core_versions()),
        ["apis"] if discovery::wants_aggregated(&accept) => {
            let v = discovery::aggregated(&api.registry, false);
            return Ok(json_response(200, &v, discovery::AGGREGATED_V2, &[]));
        }
        ["apis"] => return json(discovery::group_list(&api.registry)),
        ["apis", g] => {
            return discovery::group(&api.registry, g)
                .map_or_else(|| Err(ApiError::path_not_found()), json);
        }
        ["openapi", "v2"] => {
            let pb = accept.contains("protobuf");
            let doc = api
                .openapi
                .get(&api.registry, if pb { "v2pb" } else { "v2" });
            let ct = if pb {
                super::openapi::V2_PROTOBUF_CONTENT_TYPE
            } else {
                "application/json"
            };
            return doc
                .map(|d| raw_response(d.as_ref().clone(), ct))
                .ok_or_else(ApiError::path_not_found);
        }
        ["openapi", "v3", rest @ ..] => {
            let name = if rest.is_empty() {
                "v3".to_string()
            } else {
                format!("v3/{}", rest.join("/"))
            };
            return api
                .openapi
                .get(&api.registry, &name)
                .map(|d| raw_response(d.as_ref().clone(), "application/json"))
                .ok_or_else(ApiError::path_not_found);
        }
        _ => {}
    }
    let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::path_not_found()),
    };
    if rest.is_empty() {
        return discovery::resource_list(&api.registry, group, version)
            .map_or_else(|| Err(ApiError::path_not_found()), json);
    }
    let (namespace, plural, name, sub) = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if !(tail.is_empty() && matches!(*plural, "status" | "finalize")) =>
        {
            let name = tail.first().map(|s| s.to_string());
            let sub = tail.get(1).map(|s| s.to_string());
            if tail.len() > 2 {
                return Err(ApiError::path_not_found());
            }
            (Some(ns.to_string()), plural.to_string(), name, sub)
        }
        [plural, tail @ ..] if tail.len() <= 2 => (
            None,
            plural.to_string(),
            tail.first().map(|s| s.to_string()),
            tail.get(1).map(|s| s.to_string()),
        ),
        _ => return Err(ApiError::path_not_found()),
    };
    let kind = api
        .registry
        .find(group, version, &plural)
        .ok_or_else(ApiError::path_not_found)?;
    if namespace.is_some() && !kind.namespaced {
        return Err(ApiError::path_not_found());
    }
    let method = req.method().clone();
    if kind.namespaced && namespace.is_none() && (method != Method::GET || name.is_some()) {
        return Err(ApiError::path_not_found());
    }
    let query = Query::parse(req.uri().query());
    let content_type = header_str(&req, header::CONTENT_TYPE);
    let user_agent = header_str(&req, header::USER_AGENT);
    let body = read_body(req).await?;
    let hreq = Req {
        kind,
        namespace,
        name,
        sub,
        query,
        accept,
        content_type,
        body,
        user_agent,
        user,
    };
    match handlers::handle(api, &method, hreq).await? {
        Reply::Json {
            code,
            body,
            warnings,
        } => Ok(json_response(code, &body, "application/json", &warnings)),
        Reply::Raw { content_type, body } => Ok(raw_response(body, content_type)),
        r @ Reply::Stream { .. } => stream_reply(r),
    }
}

fn stream_reply(r: Reply) -> Result<Response<Body>, ApiError> {
    match r {
        Reply::Json {
            code,
            body,
            warnings,
        } => Ok(json_response(code, &body, "application/json", &warnings)),
        Reply::Raw { content_type, body } => Ok(raw_response(body, content_type)),
        Reply::Stream { content_type, rx } => {
            let stream = tokio_stream::wrappers::ReceiverStream::new(rx)
                .map(|b| Ok::<_, Infallible>(Frame::data(b)));
            let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
            if let Ok(ct) = HeaderValue::from_str(&content_type) {
                resp.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            Ok(resp)
        }
    }
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > MAX_BODY {
            return Err(ApiError::too_large());
        }
    }
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ApiError::too_large())
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "cannot read request body: {e}"
        ))),
    }
}
