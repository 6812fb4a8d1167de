//! get and list (selectors, pagination, resourceVersion semantics, Table output).

use super::{Api, Reply, Req, get_obj};
use crate::apiserver::list_body::{self, Fields};
use crate::apiserver::object::from_kv;
use crate::apiserver::registry::ResourceKind;
use crate::apiserver::selectors::{FieldSelector, LabelSelector};
use crate::apiserver::status::ApiError;
use crate::apiserver::storage::prefix_end;
use crate::apiserver::tables::table;
use crate::store::KeyValue;
use crate::store::types::RangeRequest;
use base64::Engine;
use serde_json::{Value, json};

/// Whether the client asked for a `meta.k8s.io` Table.
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

/// `GET …/{name}`.
pub async fn get(api: &Api, req: Req) -> Result<Reply, ApiError> {
    let name = req.name.as_deref().unwrap_or_default();
    let (obj, rev) = get_obj(api, &req.kind, req.namespace.as_deref(), name).await?;
    if wants_table(&req.accept) {
        let include = crate::apiserver::tables::include_object(req.query.get("includeObject"));
        return Ok(Reply::ok(table(
            &req.kind,
            &[obj],
            include,
            json!({"resourceVersion": rev.to_string()}),
        )));
    }
    Ok(Reply::ok(obj))
}

/// Every object of a kind under a namespace (all namespaces for `None`) at `revision`
/// (0 = current), with the revision read.
pub async fn list_all(
    api: &Api,
    kind: &ResourceKind,
    ns: Option<&str>,
    revision: i64,
) -> Result<(Vec<Value>, i64), ApiError> {
    let (kvs, rev) = list_kvs(api, kind, ns, revision).await?;
    let mut items = Vec::with_capacity(kvs.len());
    for kv in &kvs {
        items.push(from_kv(kind, kv)?);
    }
    Ok((items, rev))
}

/// The stored key-values of [`list_all`], undecoded, with the revision read.
async fn list_kvs(
    api: &Api,
    kind: &ResourceKind,
    ns: Option<&str>,
    revision: i64,
) -> Result<(Vec<KeyValue>, i64), ApiError> {
    let prefix = kind.list_prefix(ns);
    let resp = api
        .backend
        .range(RangeRequest {
            key: prefix.as_bytes().to_vec(),
            range_end: prefix_end(prefix.as_bytes()),
            revision,
            ..Default::default()
        })
        .await?;
    let rev = if revision > 0 {
        revision
    } else {
        resp.header.revision
    };
    Ok((resp.kvs, rev))
}

const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

fn encode_continue(rev: i64, start_name: &str) -> String {
    let tok = json!({"v": "meta.k8s.io/v1", "rv": rev, "start": start_name});
    base64::engine::general_purpose::STANDARD.encode(tok.to_string())
}

fn decode_continue(tok: &str) -> Result<(i64, String), ApiError> {
    let bad = || ApiError::bad_request(format!("invalid continue token {tok:?}"));
    let raw = base64::engine::general_purpose::STANDARD
        .decode(tok)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rev = v.get("rv").and_then(Value::as_i64).ok_or_else(bad)?;
    let start = v
        .get("start")
        .and_then(Value::as_str)
        .ok_or_else(bad)?
        .to_string();
    Ok((rev, start))
}

/// Parsed selectors of a list or watch.
pub struct Filter {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn from_req(req: &Req) -> Result<Self, ApiError> {
        Ok(Self {
            labels: LabelSelector::parse(req.query.get("labelSelector").unwrap_or(""))?,
            fields: FieldSelector::parse(req.query.get("fieldSelector").unwrap_or(""))?,
        })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }
}

/// Sort key inside a list: `namespace/name` (the store key suffix).
fn sort_key(obj: &Value) -> String {
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if ns.is_empty() {
        name.to_string()
    } else {
        format!("{ns}/{name}")
    }
}

/// The revision a list must read at, from `resourceVersion`/`resourceVersionMatch`.
async fn list_revision(api: &Api, req: &Req) -> Result<i64, ApiError> {
    let rv = req.query.get("resourceVersion");
    let Some(rv) = rv else { return Ok(0) };
    let n: i64 = rv
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}")))?;
    if n == 0 {
        return Ok(0);
    }
    match req.query.get("resourceVersionMatch") {
        Some("Exact") => Ok(n),
        _ => {
            let cur = api
                .backend
                .range(RangeRequest {
                    key: b"/registry/health".to_vec(),
                    count_only: true,
                    ..Default::default()
                })
                .await?
                .header
                .revision;
            if n > cur {
                return Err(ApiError::timeout(format!(
                    "Too large resource version: {n}, current: {cur}"
                )));
            }
            Ok(0)
        }
    }
}

/// `?limit=` (0 = none).
fn limit(req: &Req) -> usize {
    req.query
        .get("limit")
        .and_then(|l| l.parse::<i64>().ok())
        .filter(|l| *l > 0)
        .map_or(0, |l| l as usize)
}

/// Maps a store error of a list read to what upstream answers for an old revision.
fn list_error(e: ApiError, continuing: bool) -> ApiError {
    match e.code {
        410 if continuing => ApiError::expired(CONTINUE_EXPIRED),
        410 => ApiError::expired(format!(
            "The resourceVersion for the provided list is too old. {}",
            e.message
        )),
        _ => e,
    }
}

/// `GET …/{plural}` (not watch).
pub async fn list(api: &Api, req: Req) -> Result<Reply, ApiError> {
    let filter = Filter::from_req(&req)?;
    let limit = limit(&req);
    let (revision, start) = match req.query.get("continue") {
        Some(tok) => {
            let (rev, start) = decode_continue(tok)?;
            (rev, Some(start))
        }
        None => (list_revision(api, &req).await?, None),
    };
    let table = wants_table(&req.accept);
    // The stored bytes are what the client sees unless the kind converts versions; Tables
    // render from bytes only for kinds with a typed row view.
    let raw = !req.kind.converts()
        && (!table
            || (req.kind.crd.is_none()
                && crate::apiserver::table::has_stored_view(&req.kind.group, &req.kind.kind)));
    if raw {
        return list_raw(api, &req, &filter, limit, revision, start, table).await;
    }
    let result = list_all(api, &req.kind, req.namespace.as_deref(), revision).await;
    let (items, rev) = result.map_err(|e| list_error(e, start.is_some()))?;
    let mut items: Vec<Value> = items
        .into_iter()
        .filter(|o| filter.matches(o))
        .filter(|o| {
            start
                .as_ref()
                .is_none_or(|s| sort_key(o).as_str() > s.as_str())
        })
        .collect();
    let mut meta = json!({"resourceVersion": rev.to_string()});
    if limit > 0 && items.len() > limit {
        let remaining = items.len() - limit;
        items.truncate(limit);
        let last = items.last().map(sort_key).unwrap_or_default();
        meta["continue"] = json!(encode_continue(rev, &last));
        if filter.is_empty() {
            meta["remainingItemCount"] = json!(remaining);
        }
    }
    if table {
        let include = crate::apiserver::tables::include_object(req.query.get("includeObject"));
        return Ok(Reply::ok(crate::apiserver::tables::table(
            &req.kind, &items, include, meta,
        )));
    }
    // Built by hand: `json!` would serialise `items` into a deep copy of every object.
    let mut list = serde_json::Map::new();
    list.insert("kind".into(), json!(format!("{}List", req.kind.kind)));
    list.insert("apiVersion".into(), json!(req.kind.api_version()));
    list.insert("metadata".into(), meta);
    list.insert("items".into(), Value::Array(items));
    Ok(Reply::ok(Value::Object(list)))
}

/// The sort key of a stored object from its store key (`namespace/name`, or `name` for
/// cluster-scoped kinds): the key is built from exactly these, so it orders and compares
/// like [`sort_key`] of the decoded object without decoding it.
fn key_sort_key<'k>(kind: &ResourceKind, key: &'k [u8]) -> &'k str {
    let suffix = key.get(kind.storage_prefix.len()..).unwrap_or_default();
    std::str::from_utf8(suffix).unwrap_or_default()
}

/// [`list`] from the stored bytes: selectors read a pruned decode, the body splices the
/// stored objects ([`list_body`]).
#[allow(clippy::too_many_arguments)]
async fn list_raw(
    api: &Api,
    req: &Req,
    filter: &Filter,
    limit: usize,
    revision: i64,
    start: Option<String>,
    table: bool,
) -> Result<Reply, ApiError> {
    let kind = &req.kind;
    let (kvs, rev) = list_kvs(api, kind, req.namespace.as_deref(), revision)
        .await
        .map_err(|e| list_error(e, start.is_some()))?;
    let fields = Fields::for_selectors(!filter.labels.is_empty(), filter.fields.keys());
    let mut items = Vec::with_capacity(kvs.len());
    let mut more = 0usize;
    for kv in &kvs {
        if start
            .as_deref()
            .is_some_and(|s| key_sort_key(kind, &kv.key) <= s)
        {
            continue;
        }
        if !filter.is_empty() {
            let obj = match &fields {
                Some(f) => list_body::pruned(&kv.value, f, kv.mod_revision)?,
                None => from_kv(kind, kv)?,
            };
            if !filter.matches(&obj) {
                continue;
            }
        }
        if limit > 0 && items.len() == limit {
            more += 1;
            // With selectors upstream reports no remaining count: one more match is enough.
            if !filter.is_empty() {
                break;
            }
            continue;
        }
        items.push(kv);
    }
    let mut meta = json!({"resourceVersion": rev.to_string()});
    if more > 0 {
        let last = items
            .last()
            .map(|kv| key_sort_key(kind, &kv.key))
            .unwrap_or_default();
        meta["continue"] = json!(encode_continue(rev, last));
        if filter.is_empty() {
            meta["remainingItemCount"] = json!(more);
        }
    }
    let body = if table {
        let include = crate::apiserver::tables::include_object(req.query.get("includeObject"));
        list_body::table(kind, &items, include, &meta, jiff::Timestamp::now())?
    } else {
        list_body::list(kind, &items, &meta)?
    };
    Ok(Reply::Raw {
        content_type: "application/json",
        body: body.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let t = encode_continue(42, "ns/name");
        assert_eq!(decode_continue(&t).unwrap(), (42, "ns/name".to_string()));
        assert_eq!(decode_continue("!!").unwrap_err().code, 400);
    }

    #[test]
    fn table_is_detected_from_the_first_accept_entry() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
    }
}
