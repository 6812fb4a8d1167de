//! The etcd `Watch` service: one bidirectional stream carrying many watches.
//!
//! Per stream, one task reads client requests (create, cancel, progress) and owns the table
//! of watches; each watch runs in its own task pulling from the backend's [`EventStream`] and
//! writing responses to the shared outbound channel. The `created` response is queued before
//! the watch task starts, so it always comes first.

use super::backend::{EtcdBackend, EventStream};
use super::convert::{event, header, store_status};
use super::{has_leader, no_leader, wants_leader};
use crate::store::{StoreError, WatchRequest};
use etcd_client::proto::{
    PbEvent, PbWatchRequest, PbWatchRequestUnion, PbWatchResponse, PbWatchService,
};
use prost::Message;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

/// Responses larger than this are split when the client asked for fragments (etcd's default
/// `--max-request-bytes` is 1.5 MiB; stay below gRPC's 4 MiB default receive limit).
const FRAGMENT_BYTES: usize = 1536 * 1024;
/// How often a stream that requires a leader checks that there still is one.
const LEADER_CHECK: Duration = Duration::from_millis(500);

type Outbound = mpsc::Sender<Result<PbWatchResponse, Status>>;

pub struct WatchService {
    pub backend: Arc<dyn EtcdBackend>,
}

struct Running {
    cancel: CancellationToken,
    progress: Box<dyn Fn() + Send + Sync>,
}

/// The watches of one gRPC stream.
struct StreamState {
    backend: Arc<dyn EtcdBackend>,
    out: Outbound,
    watches: HashMap<i64, Running>,
    next_id: i64,
    /// Watch tasks report here when they end on their own (compaction, store stopped).
    done_tx: mpsc::UnboundedSender<i64>,
}

#[tonic::async_trait]
impl PbWatchService for WatchService {
    type WatchStream = ReceiverStream<Result<PbWatchResponse, Status>>;

    async fn watch(
        &self,
        request: Request<Streaming<PbWatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let require_leader = wants_leader(request.metadata());
        if require_leader && !has_leader(self.backend.as_ref()) {
            return Err(no_leader());
        }
        let (tx, rx) = mpsc::channel(256);
        let inbound = request.into_inner();
        tokio::spawn(run_stream(
            self.backend.clone(),
            inbound,
            tx,
            require_leader,
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

async fn run_stream(
    backend: Arc<dyn EtcdBackend>,
    mut inbound: Streaming<PbWatchRequest>,
    out: Outbound,
    require_leader: bool,
) {
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let mut st = StreamState {
        backend,
        out: out.clone(),
        watches: HashMap::new(),
        next_id: 0,
        done_tx,
    };
    let mut leader_check = tokio::time::interval(LEADER_CHECK);
    loop {
        tokio::select! {
            msg = inbound.message() => match msg {
                Ok(Some(req)) => {
                    if !st.handle(req).await {
                        break;
                    }
                }
                Ok(None) | Err(_) => break,
            },
            Some(id) = done_rx.recv() => {
                st.watches.remove(&id);
            }
            _ = leader_check.tick(), if require_leader => {
                if !has_leader(st.backend.as_ref()) {
                    let _ = out.send(Err(no_leader())).await;
                    break;
                }
            }
            () = out.closed() => break,
        }
    }
    for (_, w) in st.watches.drain() {
        w.cancel.cancel();
    }
}

impl StreamState {
    /// Handles one client request; `false` when the client is gone.
    async fn handle(&mut self, req: PbWatchRequest) -> bool {
        match req.request_union {
            Some(PbWatchRequestUnion::CreateRequest(c)) => {
                let id = if c.watch_id != 0 {
                    c.watch_id
                } else {
                    while self.watches.contains_key(&self.next_id) {
                        self.next_id += 1;
                    }
                    let id = self.next_id;
                    self.next_id += 1;
                    id
                };
                let header = header(&self.backend.status().header);
                if self.watches.contains_key(&id) || id < 0 {
                    // etcd: a duplicate id is refused with an invalid watch id.
                    let resp = PbWatchResponse {
                        header,
                        watch_id: -1,
                        created: true,
                        canceled: true,
                        cancel_reason: "mvcc: duplicate watch ID provided on the WatchStream"
                            .into(),
                        ..Default::default()
                    };
                    return self.out.send(Ok(resp)).await.is_ok();
                }
                let wreq = WatchRequest {
                    key: c.key,
                    range_end: c.range_end,
                    start_revision: c.start_revision,
                    prev_kv: c.prev_kv,
                    progress_notify: c.progress_notify,
                    filter_puts: c.filters.contains(&0),
                    filter_deletes: c.filters.contains(&1),
                };
                let created = PbWatchResponse {
                    header,
                    watch_id: id,
                    created: true,
                    ..Default::default()
                };
                match self.backend.watch(wreq) {
                    Ok(stream) => {
                        if self.out.send(Ok(created)).await.is_err() {
                            return false;
                        }
                        let cancel = CancellationToken::new();
                        let progress = stream.progress_requester();
                        tokio::spawn(run_watch(
                            id,
                            self.backend.clone(),
                            stream,
                            self.out.clone(),
                            cancel.clone(),
                            c.fragment,
                            self.done_tx.clone(),
                        ));
                        self.watches.insert(id, Running { cancel, progress });
                        true
                    }
                    Err(e) => {
                        if self.out.send(Ok(created)).await.is_err() {
                            return false;
                        }
                        self.out.send(Ok(end_response(id, header, e))).await.is_ok()
                    }
                }
            }
            Some(PbWatchRequestUnion::CancelRequest(c)) => {
                let Some(w) = self.watches.remove(&c.watch_id) else {
                    return true;
                };
                w.cancel.cancel();
                let resp = PbWatchResponse {
                    header: header(&self.backend.status().header),
                    watch_id: c.watch_id,
                    canceled: true,
                    ..Default::default()
                };
                self.out.send(Ok(resp)).await.is_ok()
            }
            Some(PbWatchRequestUnion::ProgressRequest(_)) => {
                if self.watches.is_empty() {
                    // Not tied to a watch: etcd answers with the invalid watch id.
                    let resp = PbWatchResponse {
                        header: header(&self.backend.status().header),
                        watch_id: -1,
                        ..Default::default()
                    };
                    return self.out.send(Ok(resp)).await.is_ok();
                }
                for w in self.watches.values() {
                    (w.progress)();
                }
                true
            }
            None => true,
        }
    }
}

/// The response that ends a watch on a store error: compaction like etcd (canceled with the
/// compact revision), anything else with a cancel reason.
fn end_response(
    id: i64,
    header: Option<etcd_client::proto::PbResponseHeader>,
    e: StoreError,
) -> PbWatchResponse {
    let mut resp = PbWatchResponse {
        header,
        watch_id: id,
        canceled: true,
        ..Default::default()
    };
    match e {
        StoreError::Compacted { compact_revision } => {
            resp.compact_revision = compact_revision.max(1);
        }
        e => resp.cancel_reason = store_status(e).message().to_string(),
    }
    resp
}

async fn run_watch(
    id: i64,
    backend: Arc<dyn EtcdBackend>,
    mut stream: Box<dyn EventStream>,
    out: Outbound,
    cancel: CancellationToken,
    fragment: bool,
    done: mpsc::UnboundedSender<i64>,
) {
    loop {
        let next = tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            next = stream.recv() => next,
        };
        let responses = match next {
            None => break,
            Some(Ok(resp)) => {
                let header = header(&resp.header);
                let events: Vec<PbEvent> = resp.events.into_iter().map(event).collect();
                split(id, header, events, fragment)
            }
            Some(Err(e)) => {
                let resp = end_response(id, header(&backend.status().header), e);
                let _ = out.send(Ok(resp)).await;
                break;
            }
        };
        for r in responses {
            tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                sent = out.send(Ok(r)) => if sent.is_err() { return },
            }
        }
    }
    let _ = done.send(id);
}

/// One response, or fragments of at most ~`FRAGMENT_BYTES` each when the client allows it.
fn split(
    id: i64,
    header: Option<etcd_client::proto::PbResponseHeader>,
    events: Vec<PbEvent>,
    fragment: bool,
) -> Vec<PbWatchResponse> {
    let total: usize = events.iter().map(Message::encoded_len).sum();
    if !fragment || total <= FRAGMENT_BYTES {
        return vec![PbWatchResponse {
            header,
            watch_id: id,
            events,
            ..Default::default()
        }];
    }
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut size = 0;
    for e in events {
        let n = e.encoded_len();
        if !cur.is_empty() && size + n > FRAGMENT_BYTES {
            out.push(std::mem::take(&mut cur));
            size = 0;
        }
        size += n;
        cur.push(e);
    }
    out.push(cur);
    let last = out.len() - 1;
    out.into_iter()
        .enumerate()
        .map(|(i, events)| PbWatchResponse {
            header,
            watch_id: id,
            fragment: i != last,
            events,
            ..Default::default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: usize) -> PbEvent {
        PbEvent {
            kv: Some(etcd_client::proto::PbKeyValue {
                key: b"k".to_vec(),
                value: vec![0; n],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn large_batches_are_fragmented_only_when_asked() {
        let events = vec![ev(1 << 20), ev(1 << 20), ev(10)];
        assert_eq!(split(3, None, events.clone(), false).len(), 1);
        let parts = split(3, None, events, true);
        assert_eq!(parts.len(), 2);
        assert!(parts[0].fragment);
        assert!(!parts[1].fragment);
        assert_eq!(parts[0].events.len() + parts[1].events.len(), 3);
    }
}
