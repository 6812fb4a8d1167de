//! Pod subresources served by the node's agent: `pods/log` (streamed, so `kubectl logs -f`
//! works) and `pods/exec` over the Kubernetes WebSocket channel protocol
//! (`v5.channel.k8s.io` / `v4.channel.k8s.io`: channel 1 stdout, 3 the closing `Status`).
//!
//! The agent endpoint is plain HTTP on loopback, so the proxy reaches the node's agent at
//! `127.0.0.1:<daemonEndpoints.kubeletEndpoint.Port>`: this works for the built-in agent of
//! a single-node server only. Exec runs the command to completion on the agent and then
//! sends its output: no stdin, no tty, stdout and stderr interleaved on channel 1. SPDY
//! (kubectl < 1.30) and `pods/attach` are answered with an error saying so.
//!
//! Owns: pod → node → agent resolution and both proxies. May call: the store (pods,
//! nodes), the agent endpoint over HTTP.

use super::handlers::{Api, Reply, get_obj};
use super::router::Body;
use super::status::ApiError;
use base64::Engine;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

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
    let node_name = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if node_name.is_empty() {
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
        )));
    }
    let nodes = api
        .registry
        .find("", "v1", "nodes")
        .ok_or_else(ApiError::path_not_found)?;
    let (node, _) = get_obj(api, &nodes, None, node_name).await?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .unwrap_or(10250);
    Ok((
        container,
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
    ))
}

async fn agent_request(
    addr: std::net::SocketAddr,
    method: http::Method,
    path_and_query: String,
) -> Result<Response<Incoming>, ApiError> {
    let unreachable = |e: String| {
        ApiError::new(
            502,
            "InternalError",
            format!("cannot reach the node agent: {e}"),
        )
    };
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(path_and_query)
        .header(header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|e| unreachable(e.to_string()))?;
    send.send_request(req)
        .await
        .map_err(|e| unreachable(e.to_string()))
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
    let resp = agent_request(
        addr,
        http::Method::GET,
        format!("/containerLogs/{ns}/{name}/{container}?{q}"),
    )
    .await?;
    if !resp.status().is_success() {
        let code = resp.status().as_u16();
        let msg = error_text(resp).await;
        return Err(if code == 404 {
            ApiError::bad_request(msg)
        } else {
            ApiError::new(500, "InternalError", msg)
        });
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

fn ws_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= u16::MAX as usize => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

fn channel_msg(ch: u8, data: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(data.len() + 1);
    p.push(ch);
    p.extend_from_slice(data);
    ws_frame(2, &p)
}

/// The closing `Status` of an exec.
pub fn exit_status(code: u64) -> Value {
    if code == 0 {
        return json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success"});
    }
    json!({
        "kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
        "message": format!("command terminated with non-zero exit code: error executing command [command], exit code {code}"),
        "reason":"NonZeroExitCode",
        "details":{"causes":[{"reason":"ExitCode","message": code.to_string()}]}
    })
}

/// `pods/{name}/exec` and `pods/{name}/attach` (WebSocket upgrade).
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
    if !hdr("upgrade").eq_ignore_ascii_case("websocket") {
        return Err(ApiError::bad_request(
            "only WebSocket streaming (kubectl >= 1.30, v5.channel.k8s.io) is supported; SPDY is not",
        ));
    }
    if sub == "attach" {
        return Err(ApiError::not_implemented(
            "pods/attach is not implemented yet",
        ));
    }
    let offered = hdr("sec-websocket-protocol");
    let protocol = ["v5.channel.k8s.io", "v4.channel.k8s.io"]
        .into_iter()
        .find(|p| offered.split(',').any(|o| o.trim() == *p))
        .ok_or_else(|| {
            ApiError::bad_request(
                "no supported subprotocol: need v5.channel.k8s.io or v4.channel.k8s.io",
            )
        })?;
    let raw_query = req.uri().query().map(str::to_string);
    if query_value(raw_query.as_deref(), "tty").is_some_and(|v| v == "true" || v == "1") {
        tracing::debug!("exec tty requested; running without a tty");
    }
    let (container, addr) = resolve(
        api,
        ns,
        name,
        query_value(raw_query.as_deref(), "container"),
        true,
    )
    .await?;
    let key = hdr("sec-websocket-key");
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{}{WS_GUID}", key.trim()).as_bytes(),
    );
    let accept = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
    let upgrade = hyper::upgrade::on(&mut req);
    let path = format!(
        "/exec/{ns}/{name}/{container}?{}",
        raw_query.unwrap_or_default()
    );
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut io = TokioIo::new(upgraded);
        let (out, status) = match agent_request(addr, http::Method::POST, path).await {
            Ok(resp) if resp.status().is_success() => {
                let body = error_text(resp).await;
                let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let output = v
                    .get("output")
                    .and_then(Value::as_str)
                    .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                    .unwrap_or_default();
                let code = v.get("exitCode").and_then(Value::as_u64).unwrap_or(1);
                (output, exit_status(code))
            }
            Ok(resp) => {
                let msg = error_text(resp).await;
                (
                    Vec::new(),
                    ApiError::new(500, "InternalError", msg).to_status(),
                )
            }
            Err(e) => (Vec::new(), e.to_status()),
        };
        let mut bytes = Vec::new();
        if !out.is_empty() {
            bytes.extend(channel_msg(1, &out));
        }
        bytes.extend(channel_msg(3, status.to_string().as_bytes()));
        bytes.extend(ws_frame(8, &1000u16.to_be_bytes()));
        if io.write_all(&bytes).await.is_ok() {
            let _ = io.flush().await;
        }
        // Let the client read the close frame before the connection goes.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let _ = io.shutdown().await;
    });
    let mut resp = Response::new(UnsyncBoxBody::new(
        Empty::<Bytes>::new().map_err(|never| match never {}),
    ));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert("sec-websocket-accept", v);
    }
    h.insert("sec-websocket-protocol", HeaderValue::from_static(protocol));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_medium_frames_carry_their_length() {
        assert_eq!(ws_frame(2, b"ab"), vec![0x82, 2, b'a', b'b']);
        let f = ws_frame(2, &[0u8; 300]);
        assert_eq!(&f[..4], &[0x82, 126, 1, 44]);
        assert_eq!(f.len(), 304);
    }

    #[test]
    fn non_zero_exit_is_reported_as_an_exit_code_cause() {
        let s = exit_status(3);
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        assert_eq!(exit_status(0)["status"], "Success");
    }
}
