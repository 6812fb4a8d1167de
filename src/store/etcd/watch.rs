//! The etcd `Watch` service: one bidirectional stream carrying many watches.
//!
//! Per stream, one task reads client requests (create, cancel, progress) and owns the table
//! of watches. The response stream itself ([`Outbound`]) polls every watch of the stream
//! directly, plus a control channel from the request task (created/canceled/progress
//! responses, watches added and removed). An event therefore reaches the HTTP/2 stream with
//! no task or channel in between (a task per watch feeding a channel cost a wake-up and a
//! send per event and watcher, which dominated fan-out to many watchers), and a slow client
//! is back-pressure on its watchers (they fall back to replaying history) instead of a
//! growing buffer. The `created` response is queued before its watch is added, so it always
//! comes first; a canceled watch is removed before its `canceled` response is queued, so
//! nothing of it follows.

use super::backend::{EtcdBackend, EventStream};
use super::convert::{event, header, store_status};
use super::{has_leader, no_leader, wants_leader};
use crate::store::{StoreError, WatchRequest, WatchResponse};
use etcd_client::proto::{
    PbEvent, PbWatchRequest, PbWatchRequestUnion, PbWatchResponse, PbWatchService,
};
use futures::Stream;
use prost::Message;
use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::StreamMap;
use tonic::{Request, Response, Status, Streaming};

/// Responses larger than this are split when the client asked for fragments (etcd's default
/// `--max-request-bytes` is 1.5 MiB; stay below gRPC's 4 MiB default receive limit).
const FRAGMENT_BYTES: usize = 1536 * 1024;
/// How often a stream that requires a leader checks that there still is one.
const LEADER_CHECK: Duration = Duration::from_millis(500);

type Item = Result<PbWatchResponse, Status>;

/// What the request task tells the response stream.
enum Ctl {
    Send(Item),
    Add {
        id: i64,
        events: WatchEvents,
        fragment: bool,
    },
    Remove(i64),
}

/// One watch as a stream: `Some(batch)` per `recv`, then one `None` when the store stopped.
type WatchEvents = Pin<Box<dyn Stream<Item = Option<crate::store::Result<WatchResponse>>> + Send>>;

fn watch_events(s: Box<dyn EventStream>) -> WatchEvents {
    Box::pin(futures::stream::unfold(Some(s), |st| async move {
        let mut s = st?;
        match s.recv().await {
            Some(r) => Some((Some(r), Some(s))),
            None => Some((None, None)),
        }
    }))
}

pub struct WatchService {
    pub backend: Arc<dyn EtcdBackend>,
}

/// The response side of one gRPC watch stream (see the module doc).
pub struct Outbound {
    backend: Arc<dyn EtcdBackend>,
    ctl: mpsc::Receiver<Ctl>,
    watches: StreamMap<i64, WatchEvents>,
    fragment: HashMap<i64, bool>,
    /// Fragments of a large response not yet sent.
    queue: VecDeque<Item>,
    /// Watches that ended on their own (compaction, store stopped), for the request task.
    done_tx: mpsc::UnboundedSender<i64>,
}

impl Outbound {
    fn end(&mut self, id: i64) {
        self.watches.remove(&id);
        self.fragment.remove(&id);
        let _ = self.done_tx.send(id);
    }
}

impl Stream for Outbound {
    type Item = Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        let this = self.get_mut();
        loop {
            if let Some(r) = this.queue.pop_front() {
                return Poll::Ready(Some(r));
            }
            match this.ctl.poll_recv(cx) {
                Poll::Ready(Some(Ctl::Send(r))) => return Poll::Ready(Some(r)),
                Poll::Ready(Some(Ctl::Add {
                    id,
                    events,
                    fragment,
                })) => {
                    this.watches.insert(id, events);
                    this.fragment.insert(id, fragment);
                    continue;
                }
                Poll::Ready(Some(Ctl::Remove(id))) => {
                    this.watches.remove(&id);
                    this.fragment.remove(&id);
                    continue;
                }
                // The request task ended (client closed its side, no leader, error).
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {}
            }
            match Pin::new(&mut this.watches).poll_next(cx) {
                Poll::Ready(Some((id, Some(Ok(resp))))) => {
                    let header = header(&resp.header);
                    let events: Vec<PbEvent> = resp.events.into_iter().map(event).collect();
                    let fragment = this.fragment.get(&id).copied().unwrap_or(false);
                    this.queue
                        .extend(split(id, header, events, fragment).into_iter().map(Ok));
                }
                Poll::Ready(Some((id, Some(Err(e))))) => {
                    this.end(id);
                    let resp = end_response(id, header(&this.backend.status().header), e);
                    return Poll::Ready(Some(Ok(resp)));
                }
                Poll::Ready(Some((id, None))) => this.end(id),
                // No watches (the control channel's waker is registered) or none ready.
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }
}

struct Running {
    progress: Box<dyn Fn() + Send + Sync>,
}

/// The watches of one gRPC stream.
struct StreamState {
    backend: Arc<dyn EtcdBackend>,
    out: mpsc::Sender<Ctl>,
    watches: HashMap<i64, Running>,
    next_id: i64,
}

#[tonic::async_trait]
impl PbWatchService for WatchService {
    type WatchStream = Outbound;

    async fn watch(
        &self,
        request: Request<Streaming<PbWatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let require_leader = wants_leader(request.metadata());
        if require_leader && !has_leader(self.backend.as_ref()) {
            return Err(no_leader());
        }
        let (tx, rx) = mpsc::channel(256);
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let inbound = request.into_inner();
        tokio::spawn(run_stream(
            self.backend.clone(),
            inbound,
            tx,
            done_rx,
            require_leader,
        ));
        Ok(Response::new(Outbound {
            backend: self.backend.clone(),
            ctl: rx,
            watches: StreamMap::new(),
            fragment: HashMap::new(),
            queue: VecDeque::new(),
            done_tx,
        }))
    }
}

async fn run_stream(
    backend: Arc<dyn EtcdBackend>,
    mut inbound: Streaming<PbWatchRequest>,
    out: mpsc::Sender<Ctl>,
    mut done_rx: mpsc::UnboundedReceiver<i64>,
    require_leader: bool,
) {
    let mut st = StreamState {
        backend,
        out: out.clone(),
        watches: HashMap::new(),
        next_id: 0,
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
                    let _ = out.send(Ctl::Send(Err(no_leader()))).await;
                    break;
                }
            }
            () = out.closed() => break,
        }
    }
    // Dropping the control sender ends the response stream, and with it every watch.
}

impl StreamState {
    async fn send(&self, resp: PbWatchResponse) -> bool {
        self.out.send(Ctl::Send(Ok(resp))).await.is_ok()
    }

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
                    return self.send(resp).await;
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
                        if !self.send(created).await {
                            return false;
                        }
                        let progress = stream.progress_requester();
                        let add = Ctl::Add {
                            id,
                            events: watch_events(stream),
                            fragment: c.fragment,
                        };
                        if self.out.send(add).await.is_err() {
                            return false;
                        }
                        self.watches.insert(id, Running { progress });
                        true
                    }
                    Err(e) => {
                        if !self.send(created).await {
                            return false;
                        }
                        self.send(end_response(id, header, e)).await
                    }
                }
            }
            Some(PbWatchRequestUnion::CancelRequest(c)) => {
                if self.watches.remove(&c.watch_id).is_none() {
                    return true;
                }
                if self.out.send(Ctl::Remove(c.watch_id)).await.is_err() {
                    return false;
                }
                let resp = PbWatchResponse {
                    header: header(&self.backend.status().header),
                    watch_id: c.watch_id,
                    canceled: true,
                    ..Default::default()
                };
                self.send(resp).await
            }
            Some(PbWatchRequestUnion::ProgressRequest(_)) => {
                if self.watches.is_empty() {
                    // Not tied to a watch: etcd answers with the invalid watch id.
                    let resp = PbWatchResponse {
                        header: header(&self.backend.status().header),
                        watch_id: -1,
                        ..Default::default()
                    };
                    return self.send(resp).await;
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
