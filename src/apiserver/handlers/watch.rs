//! watch: a chunked stream of JSON events (`ADDED`/`MODIFIED`/`DELETED`/`BOOKMARK`/`ERROR`),
//! one per line, from a resourceVersion, with selectors, bookmarks and timeouts.

use super::read::{Filter, list_all, wants_table};
use super::{Api, Reply, Req};
use crate::apiserver::object::{from_kv, set_resource_version};
use crate::apiserver::registry::ResourceKind;
use crate::apiserver::status::ApiError;
use crate::apiserver::storage::prefix_end;
use crate::apiserver::tables::{IncludeObject, table};
use crate::store::types::{EventType, WatchRequest};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How an event object is rendered (plain, or as a one-row Table).
#[derive(Clone)]
struct Render {
    kind: Arc<ResourceKind>,
    table: Option<IncludeObject>,
}

impl Render {
    fn line(&self, ty: &str, obj: &Value) -> Bytes {
        let object = match (self.table, ty) {
            (Some(include), "ADDED" | "MODIFIED" | "DELETED") => {
                let rv = obj
                    .pointer("/metadata/resourceVersion")
                    .cloned()
                    .unwrap_or(Value::Null);
                table(
                    &self.kind,
                    std::slice::from_ref(obj),
                    include,
                    json!({"resourceVersion": rv}),
                )
            }
            _ => return plain_line(ty, obj),
        };
        plain_line(ty, &object)
    }

    fn bookmark(&self, rev: i64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rev.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": self.kind.kind, "apiVersion": self.kind.api_version(), "metadata": meta});
        self.line("BOOKMARK", &obj)
    }
}

/// `{"type":…,"object":…}\n`, serialising `obj` in place (no copy of the object).
fn plain_line(ty: &str, obj: &Value) -> Bytes {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"{\"type\":");
    // Serialising a str or a Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, ty);
    out.extend_from_slice(b",\"object\":");
    let _ = serde_json::to_writer(&mut out, obj);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

fn error_line(e: &ApiError) -> Bytes {
    let mut s = json!({"type": "ERROR", "object": e.to_status()}).to_string();
    s.push('\n');
    Bytes::from(s)
}

/// `GET …?watch=true`.
pub async fn watch(api: &Api, req: Req) -> Result<Reply, ApiError> {
    let mut filter = Filter::from_req(&req)?;
    if let Some(name) = &req.name {
        filter.fields =
            crate::apiserver::selectors::FieldSelector::parse(&format!("metadata.name={name}"))?;
    }
    let q = &req.query;
    let bookmarks = q.flag("allowWatchBookmarks");
    let send_initial = q.flag("sendInitialEvents");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1800);
    let render = Render {
        kind: req.kind.clone(),
        table: wants_table(&req.accept)
            .then(|| crate::apiserver::tables::include_object(q.get("includeObject"))),
    };
    let rv = q.get("resourceVersion").unwrap_or("");
    let ns = req.namespace.as_deref();
    let (initial, start) = if rv.is_empty() || rv == "0" || send_initial {
        let (items, rev) = list_all(api, &req.kind, ns, 0).await?;
        (
            items.into_iter().filter(|o| filter.matches(o)).collect(),
            rev,
        )
    } else {
        let n: i64 = rv
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}")))?;
        (Vec::new(), n)
    };
    let prefix = req.kind.list_prefix(ns);
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let stream = api
        .backend
        .watch(WatchRequest {
            key: prefix.as_bytes().to_vec(),
            range_end: prefix_end(prefix.as_bytes()),
            start_revision: start + 1,
            prev_kv: true,
            ..Default::default()
        })
        .await;
    let mut stream = match stream {
        Ok(s) => s,
        Err(crate::store::StoreError::Compacted { compact_revision }) => {
            let e = ApiError::expired(format!(
                "too old resource version: {start} ({compact_revision})"
            ));
            let _ = tx.send(error_line(&e)).await;
            return Ok(Reply::Stream {
                content_type: "application/json".into(),
                rx,
            });
        }
        Err(e) => return Err(e.into()),
    };
    tokio::spawn(async move {
        for obj in &initial {
            if tx.send(render.line("ADDED", obj)).await.is_err() {
                return;
            }
        }
        if send_initial && bookmarks && tx.send(render.bookmark(start, true)).await.is_err() {
            return;
        }
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(Duration::from_secs(30));
        ticker.tick().await;
        let mut last_rev = start;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                _ = ticker.tick() => {
                    if bookmarks && tx.send(render.bookmark(last_rev, false)).await.is_err() {
                        return;
                    }
                }
                next = stream.next() => {
                    let resp = match next {
                        None => return,
                        Some(Err(e)) => {
                            let err: ApiError = match e {
                                crate::store::StoreError::Compacted { .. } => ApiError::expired(format!("too old resource version: {last_rev}")),
                                other => other.into(),
                            };
                            let _ = tx.send(error_line(&err)).await;
                            return;
                        }
                        Some(Ok(r)) => r,
                    };
                    last_rev = last_rev.max(resp.header.revision);
                    for ev in resp.events {
                        let Some(line) = event_line(&render, &filter, ev) else { continue };
                        if tx.send(line).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    });
    Ok(Reply::Stream {
        content_type: "application/json".into(),
        rx,
    })
}

/// Rendered plain event lines shared by every watcher of the same event: with many watchers
/// on one resource, decoding and encoding each event once instead of once per watcher is most
/// of the fan-out cost. Keyed by (key, mod revision, type): one store event per key and
/// revision, so a hit is always the same bytes.
type LineKey = (Vec<u8>, i64, &'static str);

fn shared_lines() -> &'static std::sync::Mutex<std::collections::HashMap<LineKey, Bytes>> {
    static LINES: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<LineKey, Bytes>>> =
        std::sync::OnceLock::new();
    LINES.get_or_init(Default::default)
}

/// Lines kept at most (~1–2 MiB); the map is simply emptied when full.
const SHARED_LINES: usize = 1024;

fn event_line(render: &Render, filter: &Filter, ev: crate::store::Event) -> Option<Bytes> {
    // Lines are shared by store key, so only between watchers of the stored version.
    if render.table.is_some() || !filter.is_empty() || render.kind.converts() {
        return render_event(render, filter, ev);
    }
    // Without selectors the type depends only on the event itself.
    let ty = match (&ev.kind, ev.prev_kv.is_some()) {
        (EventType::Delete, _) => "DELETED",
        (EventType::Put, false) => "ADDED",
        (EventType::Put, true) => "MODIFIED",
    };
    let key = (ev.kv.key.clone(), ev.kv.mod_revision, ty);
    let lines = shared_lines();
    if let Some(line) = lines.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Some(line.clone());
    }
    let line = render_event(render, filter, ev)?;
    let mut map = lines.lock().unwrap_or_else(|p| p.into_inner());
    if map.len() >= SHARED_LINES {
        map.clear();
    }
    map.insert(key, line.clone());
    Some(line)
}

fn render_event(render: &Render, filter: &Filter, ev: crate::store::Event) -> Option<Bytes> {
    // Without selectors only the previous object's existence matters for a put: skip
    // decoding it (each watcher decodes every event, so this halves the fan-out cost).
    let prev = match (&ev.kind, filter.is_empty()) {
        (EventType::Put, true) => ev.prev_kv.as_ref().map(|_| Value::Null),
        _ => ev
            .prev_kv
            .as_ref()
            .and_then(|kv| from_kv(&render.kind, kv).ok()),
    };
    let prev_match = prev
        .as_ref()
        .is_some_and(|p| filter.is_empty() || filter.matches(p));
    match ev.kind {
        EventType::Delete => {
            let mut obj = prev?;
            set_resource_version(&mut obj, ev.kv.mod_revision);
            prev_match.then(|| render.line("DELETED", &obj))
        }
        EventType::Put => {
            let obj = from_kv(&render.kind, &ev.kv).ok()?;
            let now_match = filter.matches(&obj);
            let ty = match (prev.is_some(), prev_match, now_match) {
                (false, _, true) => "ADDED",
                (true, true, true) => "MODIFIED",
                (true, false, true) => "ADDED",
                (true, true, false) => "DELETED",
                _ => return None,
            };
            Some(render.line(ty, &obj))
        }
    }
}
