//! The etcd `KV` service: Range, Put, DeleteRange, Txn, Compact over an [`EtcdBackend`].
//!
//! The store answers plain key-ordered ranges; sorting, the min/max revision filters and the
//! limit that follows them are applied here exactly as etcd's `applierV3.Range` does (fetch
//! everything when sorting or filtering, then prune, sort, and cut to `limit`).

use super::backend::EtcdBackend;
use super::convert::{self, check_put, check_txn, empty_key, header, store_status};
use super::require_leader;
use crate::store::{RangeRequest, RangeResponse, RequestOp, ResponseOp, TxnRequest, TxnResponse};
use etcd_client::proto::{
    PbCompactionRequest, PbCompactionResponse, PbDeleteRequest, PbDeleteResponse, PbKvService,
    PbPutRequest, PbPutResponse, PbRangeRequest, PbRangeResponse, PbRangeStreamResponse,
    PbResponseOp, PbTxnOpRequest, PbTxnOpResponse, PbTxnRequest, PbTxnRequestOp, PbTxnResponse,
};
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct KvService {
    pub backend: Arc<dyn EtcdBackend>,
}

/// What etcd does to a range result after the storage read.
#[derive(Clone, Debug, Default)]
struct RangePost {
    limit: i64,
    sort_order: i32,
    sort_target: i32,
    min_mod: i64,
    max_mod: i64,
    min_create: i64,
    max_create: i64,
    keys_only: bool,
}

fn range_request(r: PbRangeRequest) -> Result<(RangeRequest, RangePost), Status> {
    if r.key.is_empty() {
        return Err(empty_key());
    }
    if !(0..=2).contains(&r.sort_order) {
        return Err(Status::invalid_argument("etcdserver: invalid sort option"));
    }
    if !(0..=4).contains(&r.sort_target) {
        return Err(Status::invalid_argument("etcdserver: invalid sort option"));
    }
    let fetch_all = r.sort_order != 0
        || r.min_mod_revision != 0
        || r.max_mod_revision != 0
        || r.min_create_revision != 0
        || r.max_create_revision != 0;
    // One extra key tells whether there are more.
    let limit = if fetch_all || r.limit <= 0 {
        0
    } else {
        r.limit.saturating_add(1)
    };
    let post = RangePost {
        limit: r.limit,
        sort_order: r.sort_order,
        sort_target: r.sort_target,
        min_mod: r.min_mod_revision,
        max_mod: r.max_mod_revision,
        min_create: r.min_create_revision,
        max_create: r.max_create_revision,
        keys_only: r.keys_only,
    };
    let req = RangeRequest {
        key: r.key,
        range_end: r.range_end,
        limit,
        revision: r.revision,
        keys_only: r.keys_only,
        count_only: r.count_only,
        serializable: r.serializable,
    };
    Ok((req, post))
}

fn range_response(mut r: RangeResponse, p: &RangePost) -> PbRangeResponse {
    let kvs = &mut r.kvs;
    if p.max_mod != 0 {
        kvs.retain(|kv| kv.mod_revision <= p.max_mod);
    }
    if p.min_mod != 0 {
        kvs.retain(|kv| kv.mod_revision >= p.min_mod);
    }
    if p.max_create != 0 {
        kvs.retain(|kv| kv.create_revision <= p.max_create);
    }
    if p.min_create != 0 {
        kvs.retain(|kv| kv.create_revision >= p.min_create);
    }
    // Results come in key order; etcd sorts ascending by default for non-key targets.
    let order = if p.sort_target != 0 && p.sort_order == 0 {
        1
    } else {
        p.sort_order
    };
    if order != 0 {
        // Stable sort: ties keep key order.
        match p.sort_target {
            1 => kvs.sort_by_key(|kv| kv.version),
            2 => kvs.sort_by_key(|kv| kv.create_revision),
            3 => kvs.sort_by_key(|kv| kv.mod_revision),
            4 => kvs.sort_by(|a, b| a.value.cmp(&b.value)),
            _ => kvs.sort_by(|a, b| a.key.cmp(&b.key)),
        }
        if order == 2 {
            kvs.reverse();
        }
    }
    let mut more = false;
    if p.limit > 0 && kvs.len() as i64 > p.limit {
        kvs.truncate(p.limit as usize);
        more = true;
    }
    if p.keys_only {
        for kv in kvs.iter_mut() {
            kv.value.clear();
        }
    }
    PbRangeResponse {
        header: header(&r.header),
        kvs: r.kvs.into_iter().map(convert::kv).collect(),
        more,
        count: r.count,
    }
}

/// The range post-processing of every range op in a txn, in request order (both branches).
#[derive(Default)]
struct TxnPost {
    success: Vec<OpPost>,
    failure: Vec<OpPost>,
}

enum OpPost {
    Range(RangePost),
    Txn(TxnPost),
    Other,
}

fn txn_request(t: PbTxnRequest) -> Result<(TxnRequest, TxnPost), Status> {
    let compare = t
        .compare
        .into_iter()
        .map(convert::compare)
        .collect::<Result<Vec<_>, _>>()?;
    let (success, sp) = ops(t.success)?;
    let (failure, fp) = ops(t.failure)?;
    Ok((
        TxnRequest {
            compare,
            success,
            failure,
        },
        TxnPost {
            success: sp,
            failure: fp,
        },
    ))
}

fn ops(list: Vec<PbTxnRequestOp>) -> Result<(Vec<RequestOp>, Vec<OpPost>), Status> {
    let mut reqs = Vec::with_capacity(list.len());
    let mut posts = Vec::with_capacity(list.len());
    for op in list {
        let (req, post) = match op.request {
            Some(PbTxnOpRequest::RequestRange(r)) => {
                let (r, p) = range_request(r)?;
                (RequestOp::Range(r), OpPost::Range(p))
            }
            Some(PbTxnOpRequest::RequestPut(p)) => {
                (RequestOp::Put(convert::put_request(p)), OpPost::Other)
            }
            Some(PbTxnOpRequest::RequestDeleteRange(d)) => (
                RequestOp::DeleteRange(convert::delete_request(d)),
                OpPost::Other,
            ),
            Some(PbTxnOpRequest::RequestTxn(t)) => {
                let (t, p) = txn_request(t)?;
                (RequestOp::Txn(t), OpPost::Txn(p))
            }
            None => return Err(Status::invalid_argument("etcdserver: empty txn operation")),
        };
        reqs.push(req);
        posts.push(post);
    }
    Ok((reqs, posts))
}

fn txn_response(t: TxnResponse, post: &TxnPost) -> PbTxnResponse {
    let posts = if t.succeeded {
        &post.success
    } else {
        &post.failure
    };
    let responses = t
        .responses
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let resp = match (r, posts.get(i)) {
                (ResponseOp::Range(r), Some(OpPost::Range(p))) => {
                    PbTxnOpResponse::ResponseRange(range_response(r, p))
                }
                (ResponseOp::Range(r), _) => {
                    PbTxnOpResponse::ResponseRange(range_response(r, &RangePost::default()))
                }
                (ResponseOp::Put(p), _) => PbTxnOpResponse::ResponsePut(convert::put_response(p)),
                (ResponseOp::DeleteRange(d), _) => {
                    PbTxnOpResponse::ResponseDeleteRange(convert::delete_response(d))
                }
                (ResponseOp::Txn(t), Some(OpPost::Txn(p))) => {
                    PbTxnOpResponse::ResponseTxn(txn_response(t, p))
                }
                (ResponseOp::Txn(t), _) => {
                    PbTxnOpResponse::ResponseTxn(txn_response(t, &TxnPost::default()))
                }
            };
            PbResponseOp {
                response: Some(resp),
            }
        })
        .collect();
    PbTxnResponse {
        header: header(&t.header),
        succeeded: t.succeeded,
        responses,
    }
}

type RangeStream = futures::stream::Empty<Result<PbRangeStreamResponse, Status>>;

#[tonic::async_trait]
impl PbKvService for KvService {
    async fn range(
        &self,
        request: Request<PbRangeRequest>,
    ) -> Result<Response<PbRangeResponse>, Status> {
        require_leader(&request, self.backend.as_ref())?;
        let (req, post) = range_request(request.into_inner())?;
        let resp = self.backend.range(req).await.map_err(store_status)?;
        Ok(Response::new(range_response(resp, &post)))
    }

    type RangeStreamStream = RangeStream;

    async fn range_stream(
        &self,
        _request: Request<PbRangeRequest>,
    ) -> Result<Response<Self::RangeStreamStream>, Status> {
        // Not part of etcd 3.4.
        Err(Status::unimplemented(
            "etcdserver: range stream is not supported",
        ))
    }

    async fn put(&self, request: Request<PbPutRequest>) -> Result<Response<PbPutResponse>, Status> {
        require_leader(&request, self.backend.as_ref())?;
        let req = request.into_inner();
        check_put(&req)?;
        let resp = self
            .backend
            .put(convert::put_request(req))
            .await
            .map_err(store_status)?;
        Ok(Response::new(convert::put_response(resp)))
    }

    async fn delete_range(
        &self,
        request: Request<PbDeleteRequest>,
    ) -> Result<Response<PbDeleteResponse>, Status> {
        require_leader(&request, self.backend.as_ref())?;
        let req = request.into_inner();
        if req.key.is_empty() {
            return Err(empty_key());
        }
        let resp = self
            .backend
            .delete_range(convert::delete_request(req))
            .await
            .map_err(store_status)?;
        Ok(Response::new(convert::delete_response(resp)))
    }

    async fn txn(&self, request: Request<PbTxnRequest>) -> Result<Response<PbTxnResponse>, Status> {
        require_leader(&request, self.backend.as_ref())?;
        let req = request.into_inner();
        check_txn(&req)?;
        let (req, post) = txn_request(req)?;
        let resp = self.backend.txn(req).await.map_err(store_status)?;
        Ok(Response::new(txn_response(resp, &post)))
    }

    async fn compact(
        &self,
        request: Request<PbCompactionRequest>,
    ) -> Result<Response<PbCompactionResponse>, Status> {
        require_leader(&request, self.backend.as_ref())?;
        // `physical` needs no waiting: compaction is applied before the store answers.
        let rev = request.into_inner().revision;
        let h = self.backend.compact(rev).await.map_err(store_status)?;
        Ok(Response::new(PbCompactionResponse { header: header(&h) }))
    }
}
