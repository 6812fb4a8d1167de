//! Pod subresources served by the node's agent: `pods/log` (streamed, so `kubectl logs -f`
//! works), `pods/exec` and `pods/attach` (WebSocket `v5.channel.k8s.io` /
//! `v4.channel.k8s.io`, forwarded as an upgraded connection: the agent speaks the channels).
//!
//! The agent is reached at the node's InternalIP and `daemonEndpoints.kubeletEndpoint.Port`
//! over TLS (see [`super::kubelet_client`]); the built-in agent at its configured endpoint.
//! SPDY (kubectl < 1.30) is answered with an error saying so.
//!
//! Owns: pod → node → agent resolution and the proxies. May call: the store (pods, nodes),
//! agent endpoints.

use super::handlers::{Api, Reply, get_obj};
use super::router::Body;
use super::status::ApiError;
use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Empty, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;

fn pods_kind(api: &Api) -> Result<std::sync::Arc<super::registry::ResourceKind>, ApiError> {
    api.registry
        .find("", "v1", "pods")
        .ok_or_else(ApiError::path_not_found)
}

fn query_value(q: Option<&str>, key: &str) -> Option<String> {
    super::handlers::Query::parse(q).0.get(key).cloned()
}

/// Resolves the pod's container and its agent address, with upstream's error messages.
async fn resolve(
    api: &Api,
    ns: &str,
    name: &str,
    container: Option<String>,
    need_running: bool,
) -> Result<(String, std::net::SocketAddr), ApiError> {
    let dialer = api
        .kubelet
        .get()
        .ok_or_else(|| ApiError::internal("the API server has no client for node agents"))?;
    let kind = pods_kind(api)?;
    let (pod, _) = get_obj(api, &kind, Some(ns), name).await?;
    let names: Vec<String> = ["initContainers", "containers"]
        .iter()
        .flat_map(|k| {
            pod.pointer(&format!("/spec/{k}"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    let regular: Vec<String> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let container = match container.filter(|c| !c.is_empty()) {
        Some(c) => c,
        None if regular.len() == 1 => regular[0].clone(),
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                regular.join(" ")
            )));
        }
    };
    if !names.contains(&container) {
        return Err(ApiError::bad_request(format!(
            "container {container} is not valid for pod {name}"
        )));
    }
    let status = ["initContainerStatuses", "containerStatuses"]
        .iter()
        .flat_map(|k| {
            pod.pointer(&format!("/status/{k}"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .find(|s| s.get("name").and_then(Value::as_str) == Some(container.as_str()));
    let waiting = status
        .as_ref()
        .map(|s| {
            let reason = s
                .pointer("/state/waiting/reason")
                .and_then(Value::as_str)
                .map(str::to_string);
            let ran_before = s.pointer("/lastState/terminated").is_some();
            (reason, ran_before, s.pointer("/state/running").is_some())
        })
        .unwrap_or((Some("ContainerCreating".into()), false, false));
    let node_name = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if node_name.is_empty() && need_running {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    match waiting {
        (Some(reason), false, _) => {
            return Err(ApiError::bad_request(format!(
                "container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"
            )));
        }
        (_, _, false) if need_running => {
            return Err(ApiError::bad_request(format!(
                "container {container} is not running in pod {name}"
            )));
        }
        _ => {}
    }
    if node_name.is_empty() {
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
        )));
    }
    let nodes = api
        .registry
        .find("", "v1", "nodes")
        .ok_or_else(ApiError::path_not_found)?;
    let (node, _) = get_obj(api, &nodes, None, &node_name).await?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .unwrap_or(10250);
    let ip = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .and_then(|a| {
            a.iter()
                .filter(|x| x.get("type").and_then(Value::as_str) == Some("InternalIP"))
                .find_map(|x| x.get("address").and_then(Value::as_str)?.parse().ok())
        });
    let ip = match ip {
        Some(ip) => ip,
        // The built-in agent is reachable without an address.
        None if dialer
            .address(&node_name, [0, 0, 0, 0].into(), port)
            .ip()
            .is_loopback() =>
        {
            std::net::IpAddr::from([127, 0, 0, 1])
        }
        None => {
            return Err(ApiError::internal(format!(
                "node {node_name} has no InternalIP address to reach its agent at"
            )));
        }
    };
    Ok((container, dialer.address(&node_name, ip, port)))
}

fn unreachable(e: String) -> ApiError {
    ApiError::new(500, "InternalError", format!("error dialing backend: {e}"))
}

async fn agent_request(
    api: &Api,
    addr: std::net::SocketAddr,
    req: Request<Empty<Bytes>>,
) -> Result<Response<Incoming>, ApiError> {
    let dialer = api
        .kubelet
        .get()
        .ok_or_else(|| ApiError::internal("the API server has no client for node agents"))?;
    let mut send = dialer.connect(addr).await.map_err(unreachable)?;
    send.send_request(req)
        .await
        .map_err(|e| unreachable(format!("{addr}: {e}")))
}

/// An error answer of the agent as the API's error.
async fn agent_error(resp: Response<Incoming>) -> ApiError {
    let code = resp.status().as_u16();
    let msg = error_text(resp).await;
    match code {
        400 | 404 => ApiError::bad_request(msg),
        403 => ApiError::new(
            500,
            "InternalError",
            format!("the node agent refused the API server: {msg}"),
        ),
        _ => ApiError::new(500, "InternalError", msg),
    }
}

fn get(addr: std::net::SocketAddr, path: String) -> Result<Request<Empty<Bytes>>, ApiError> {
    Request::builder()
        .method(http::Method::GET)
        .uri(path)
        .header(header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|e| ApiError::internal(e.to_string()))
}

async fn error_text(resp: Response<Incoming>) -> String {
    resp.into_body()
        .collect()
        .await
        .map(|c| String::from_utf8_lossy(&c.to_bytes()).trim().to_string())
        .unwrap_or_default()
}

/// `GET pods/{name}/log`: streams the agent's answer as it arrives.
pub async fn logs(
    api: &Api,
    ns: &str,
    name: &str,
    raw_query: Option<&str>,
) -> Result<Reply, ApiError> {
    let container = query_value(raw_query, "container");
    let (container, addr) = resolve(api, ns, name, container, false).await?;
    let q = raw_query.unwrap_or("");
    let req = get(addr, format!("/containerLogs/{ns}/{name}/{container}?{q}"))?;
    let resp = agent_request(api, addr, req).await?;
    if !resp.status().is_success() {
        return Err(agent_error(resp).await);
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return };
            if let Ok(data) = frame.into_data()
                && tx.send(data).await.is_err()
            {
                return;
            }
        }
    });
    Ok(Reply::Stream {
        content_type: "text/plain".into(),
        rx,
    })
}

/// `pods/{name}/exec` and `pods/{name}/attach`: forwards the WebSocket upgrade to the
/// node's agent and then copies bytes both ways.
pub async fn exec(
    api: &Api,
    ns: &str,
    name: &str,
    sub: &str,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let hdr = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let raw_query = req.uri().query().map(str::to_string);
    // Resolved first, so a client falling back to SPDY still gets the pod's real problem.
    let (container, addr) = resolve(
        api,
        ns,
        name,
        query_value(raw_query.as_deref(), "container"),
        true,
    )
    .await?;
    if !hdr("upgrade").eq_ignore_ascii_case("websocket") {
        return Err(ApiError::bad_request(
            "only WebSocket streaming (kubectl >= 1.30, v5.channel.k8s.io) is supported; SPDY is not",
        ));
    }
    let mut out = Request::builder()
        .method(http::Method::GET)
        .uri(format!(
            "/{sub}/{ns}/{name}/{container}?{}",
            raw_query.unwrap_or_default()
        ))
        .header(header::HOST, addr.to_string());
    for h in [
        "upgrade",
        "connection",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-protocol",
    ] {
        if let Some(v) = req.headers().get(h) {
            out = out.header(h, v.clone());
        }
    }
    let out = out
        .body(Empty::<Bytes>::new())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut resp = agent_request(api, addr, out).await?;
    if resp.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        return Err(agent_error(resp).await);
    }
    let mut reply = Response::new(UnsyncBoxBody::new(
        Empty::<Bytes>::new().map_err(|never| match never {}),
    ));
    *reply.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
    for (k, v) in resp.headers() {
        reply.headers_mut().insert(k.clone(), v.clone());
    }
    let upstream = hyper::upgrade::on(&mut resp);
    let downstream = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let (Ok(up), Ok(down)) = (upstream.await, downstream.await) else {
            return;
        };
        let (mut up, mut down) = (TokioIo::new(up), TokioIo::new(down));
        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
    });
    Ok(reply)
}
