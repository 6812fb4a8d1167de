//! Peer transport: raft messages and join requests between servers over TCP (or any stream
//! a [`Connector`]/[`Acceptor`] produces, so mTLS via tokio-rustls can wrap it).
//!
//! Owns: the peer listener and one outbound connection per peer. Called by the raft loop
//! (`Transport::send`, `set_peers`) and by [`super::start`] (`serve`, `join`). It may only
//! feed the raft loop's input channel; it never touches the `RawNode`.
//!
//! Wire format: frames `[len: u32 BE][kind: u8][payload]` where `len` counts kind+payload.
//! Kind 1 = a protobuf `eraftpb::Message`, 2/3 = join request/reply (JSON), 4/5 = membership
//! change request/reply (JSON; a follower hands member add/remove/promote to the leader, the
//! only member that can tell "a change is already in progress"), 6 = "you were removed" (the
//! member id, u64 BE), sent to a removed member that still talks to us: the leader stops
//! replicating to it, so it may never apply its own removal.
//! Proposals and ReadIndex need no frames of their own: raft-rs forwards `MsgPropose` and
//! `MsgReadIndex` from followers to the leader inside kind-1 frames.
//!
//! Each peer has a bounded queue; when it is full or the peer is unreachable, messages are
//! dropped (raft retransmits) and the loop is told (`report_unreachable`, and
//! `report_snapshot(Failure)` for a snapshot). Garbage from a peer drops that connection with
//! a warning; it never reaches raft.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::store::error::{Result, StoreError};
use crate::store::state_machine::BoxFuture;

use super::membership::{MemberMeta, Members};
use super::node::{Input, MemberOp};
use super::testing::NetFaults;

const KIND_RAFT: u8 = 1;
const KIND_JOIN: u8 = 2;
const KIND_JOIN_REPLY: u8 = 3;
const KIND_MEMBER: u8 = 4;
const KIND_MEMBER_REPLY: u8 = 5;
const KIND_REMOVED: u8 = 6;
/// Messages queued per peer before we start dropping.
const PEER_QUEUE: usize = 4096;
/// Messages written to a peer in one go at most.
const SEND_BATCH: usize = 256;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// A bidirectional byte stream to a peer.
pub trait PeerStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> PeerStream for T {}

/// A boxed peer stream.
pub type BoxStream = Box<dyn PeerStream>;

/// Opens outbound peer streams (plain TCP by default; wrap for TLS).
pub trait Connector: Send + Sync + 'static {
    /// Connect to `addr` (`host:port`).
    fn connect(&self, addr: String) -> BoxFuture<'static, io::Result<BoxStream>>;
}

/// Turns an accepted TCP connection into a peer stream (identity by default; wrap for TLS).
pub trait Acceptor: Send + Sync + 'static {
    /// Upgrade an accepted connection.
    fn accept(&self, tcp: TcpStream) -> BoxFuture<'static, io::Result<BoxStream>>;
}

/// Plain TCP connector.
pub struct TcpConnector;

impl Connector for TcpConnector {
    fn connect(&self, addr: String) -> BoxFuture<'static, io::Result<BoxStream>> {
        Box::pin(async move {
            let s = TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            Ok(Box::new(s) as BoxStream)
        })
    }
}

/// Plain TCP acceptor.
pub struct PlainAcceptor;

impl Acceptor for PlainAcceptor {
    fn accept(&self, tcp: TcpStream) -> BoxFuture<'static, io::Result<BoxStream>> {
        Box::pin(async move {
            tcp.set_nodelay(true)?;
            Ok(Box::new(tcp) as BoxStream)
        })
    }
}

/// A new server asking to be added to the group.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JoinRequest {
    pub token: String,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    /// Set when a follower passed the request on to the leader (forwarded at most once).
    #[serde(default)]
    pub forwarded: bool,
}

/// The answer to a [`JoinRequest`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum JoinReply {
    Ok {
        id: u64,
        cluster_id: u64,
        members: Vec<MemberMeta>,
    },
    Err(String),
}

/// A membership change handed to the leader.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemberRequest {
    pub token: String,
    pub op: MemberOp,
}

/// Errors a [`MemberRequest`] can come back with (the store errors that matter here).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum WireError {
    NoLeader,
    NotFound(u64),
    Invalid(String),
    Timeout,
    Other(String),
}

impl From<StoreError> for WireError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NoLeader => WireError::NoLeader,
            StoreError::MemberNotFound { id } => WireError::NotFound(id),
            StoreError::InvalidRequest(m) => WireError::Invalid(m),
            StoreError::Timeout => WireError::Timeout,
            other => WireError::Other(other.to_string()),
        }
    }
}

impl From<WireError> for StoreError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::NoLeader => StoreError::NoLeader,
            WireError::NotFound(id) => StoreError::MemberNotFound { id },
            WireError::Invalid(m) => StoreError::InvalidRequest(m),
            WireError::Timeout => StoreError::Timeout,
            WireError::Other(m) => StoreError::Raft(m),
        }
    }
}

/// The answer to a [`MemberRequest`]: the member as the leader applied it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum MemberReply {
    Ok {
        member: MemberMeta,
        is_learner: bool,
    },
    Err(WireError),
}

/// What the serving side answers besides raft messages.
pub trait PeerService: Send + Sync + 'static {
    /// A new server asks to be added.
    fn join(&self, req: JoinRequest) -> BoxFuture<'static, JoinReply>;
    /// A follower hands a membership change to us (the leader).
    fn member(&self, req: MemberRequest) -> BoxFuture<'static, MemberReply>;
}

/// Appends one frame to `out`.
fn push_frame(out: &mut Vec<u8>, kind: u8, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len() + 1)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    out.reserve(5 + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
    Ok(())
}

/// Writes one frame in one write.
async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, kind: u8, payload: &[u8]) -> io::Result<()> {
    let mut frame = Vec::new();
    push_frame(&mut frame, kind, payload)?;
    w.write_all(&frame).await?;
    w.flush().await
}

/// Read one frame; `None` on a clean end of stream.
async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: u32,
) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len);
    if len == 0 || len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad frame length {len}"),
        ));
    }
    // Grow the buffer as bytes arrive: a bogus length must not make us allocate it up front.
    let mut buf = Vec::with_capacity((len as usize).min(64 << 10));
    (&mut *r).take(u64::from(len)).read_to_end(&mut buf).await?;
    if buf.len() != len as usize {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "peer closed mid-frame",
        ));
    }
    let kind = buf[0];
    buf.remove(0);
    Ok(Some((kind, buf)))
}

struct Peer {
    addr: String,
    tx: mpsc::Sender<Message>,
    cancel: CancellationToken,
}

/// The outbound side, owned by the raft loop.
pub struct Transport {
    id: u64,
    rt: tokio::runtime::Handle,
    peers: HashMap<u64, Peer>,
    events: SyncSender<Input>,
    connector: Arc<dyn Connector>,
    faults: Option<Arc<NetFaults>>,
    cancel: CancellationToken,
    max_frame: u32,
}

impl Transport {
    /// A transport for member `id`; peer tasks run on `rt` until `cancel`.
    pub fn new(
        id: u64,
        rt: tokio::runtime::Handle,
        events: SyncSender<Input>,
        connector: Arc<dyn Connector>,
        faults: Option<Arc<NetFaults>>,
        cancel: CancellationToken,
        max_frame: u32,
    ) -> Self {
        Transport {
            id,
            rt,
            peers: HashMap::new(),
            events,
            connector,
            faults,
            cancel,
            max_frame,
        }
    }

    /// Our member id changes once, when a joining server learns it.
    pub fn set_id(&mut self, id: u64) {
        self.id = id;
    }

    /// Make the peer set match `members` (minus ourselves).
    pub fn set_peers(&mut self, members: &Members) {
        self.peers.retain(|id, p| {
            let keep = members.peer_addr(*id).as_deref() == Some(p.addr.as_str());
            if !keep {
                p.cancel.cancel();
            }
            keep
        });
        for id in members.by_id.keys() {
            if *id == self.id || self.peers.contains_key(id) {
                continue;
            }
            let Some(addr) = members.peer_addr(*id) else {
                continue;
            };
            let (tx, rx) = mpsc::channel(PEER_QUEUE);
            let cancel = self.cancel.child_token();
            let task = PeerTask {
                to: *id,
                addr: addr.clone(),
                rx,
                events: self.events.clone(),
                connector: self.connector.clone(),
                faults: self.faults.clone(),
                cancel: cancel.clone(),
                max_frame: self.max_frame,
            };
            self.rt.spawn(task.run());
            self.peers.insert(*id, Peer { addr, tx, cancel });
        }
    }

    /// Stop every peer task (the member stopped).
    pub fn shutdown(&mut self) {
        self.cancel.cancel();
        self.peers.clear();
    }

    /// Tell the (former) member `id` at `addr` that it was removed; best effort.
    pub fn notify_removed(&self, id: u64, addr: String) {
        if let Some(f) = &self.faults
            && !f.allows(self.id, id)
        {
            return;
        }
        let connector = self.connector.clone();
        self.rt.spawn(async move {
            let send = async {
                let mut s = connector.connect(addr).await?;
                write_frame(&mut s, KIND_REMOVED, &id.to_be_bytes()).await
            };
            if let Err(e) = tokio::time::timeout(CONNECT_TIMEOUT, send)
                .await
                .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "timed out")))
            {
                tracing::debug!(peer = id, error = %e, "raft: cannot notify a removed member");
            }
        });
    }

    /// Queue `msg` for its peer; returns false when it was dropped (unknown peer, full queue).
    pub fn send(&mut self, msg: Message) -> bool {
        let Some(peer) = self.peers.get(&msg.to) else {
            return false;
        };
        peer.tx.try_send(msg).is_ok()
    }
}

/// A peer task's connection and its reconnect backoff.
struct Link {
    conn: Option<BoxStream>,
    backoff: Duration,
    next_attempt: Instant,
}

struct PeerTask {
    to: u64,
    addr: String,
    rx: mpsc::Receiver<Message>,
    events: SyncSender<Input>,
    connector: Arc<dyn Connector>,
    faults: Option<Arc<NetFaults>>,
    cancel: CancellationToken,
    max_frame: u32,
}

impl PeerTask {
    async fn run(mut self) {
        let mut link = Link {
            conn: None,
            backoff: Duration::from_millis(50),
            next_attempt: Instant::now(),
        };
        let mut batch = Vec::new();
        let mut out = Vec::new();
        loop {
            let first = tokio::select! {
                () = self.cancel.cancelled() => return,
                m = self.rx.recv() => match m { Some(m) => m, None => return },
            };
            // Everything already queued goes out in one write: one syscall (and one TLS
            // record) per Ready instead of two per message.
            batch.push(first);
            while batch.len() < SEND_BATCH {
                match self.rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            out.clear();
            let mut snapshots = 0usize;
            for msg in batch.drain(..) {
                let is_snapshot = msg.get_msg_type() == MessageType::MsgSnapshot;
                let allowed = self
                    .faults
                    .as_ref()
                    .is_none_or(|f| f.allows(msg.from, msg.to));
                if !allowed || !self.connect(&mut link).await {
                    self.report(is_snapshot, false);
                    continue;
                }
                if self.append_frame(&mut out, &msg, is_snapshot) {
                    snapshots += usize::from(is_snapshot);
                }
            }
            let Some(stream) = link.conn.as_mut() else {
                continue;
            };
            if out.is_empty() {
                continue;
            }
            let sent = match stream.write_all(&out).await {
                Ok(()) => stream.flush().await,
                Err(e) => Err(e),
            };
            match sent {
                Ok(()) => {
                    for _ in 0..snapshots {
                        self.report(true, true);
                    }
                }
                Err(e) => {
                    tracing::debug!(peer = self.to, error = %e, "raft: send failed, reconnecting");
                    link.conn = None;
                    for _ in 0..snapshots {
                        self.report(true, false);
                    }
                    self.report(false, false);
                }
            }
            // A large batch (a snapshot) should not pin its buffer for the life of the peer.
            if out.capacity() > 1 << 20 {
                out = Vec::new();
            }
        }
    }

    /// Connects unless connected or still backing off; whether a connection is up.
    async fn connect(&self, link: &mut Link) -> bool {
        if link.conn.is_some() {
            return true;
        }
        if Instant::now() < link.next_attempt {
            return false;
        }
        let fut = self.connector.connect(self.addr.clone());
        match tokio::time::timeout(CONNECT_TIMEOUT, fut).await {
            Ok(Ok(s)) => {
                link.backoff = Duration::from_millis(50);
                link.conn = Some(s);
                true
            }
            res => {
                let err = match res {
                    Ok(Err(e)) => e.to_string(),
                    _ => "connect timed out".to_string(),
                };
                tracing::debug!(peer = self.to, addr = %self.addr, error = %err, "raft: peer unreachable");
                link.next_attempt = Instant::now() + link.backoff;
                link.backoff = (link.backoff * 2).min(MAX_BACKOFF);
                false
            }
        }
    }

    /// Encodes `msg` as a frame straight into `out`; false (reported where raft must know)
    /// when it cannot be sent.
    fn append_frame(&self, out: &mut Vec<u8>, msg: &Message, is_snapshot: bool) -> bool {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        out.push(KIND_RAFT);
        if let Err(e) = msg.write_to_vec(out) {
            out.truncate(start);
            tracing::warn!(error = %e, "raft: cannot encode message");
            return false;
        }
        let payload = out.len() - start - 5;
        if payload >= self.max_frame as usize {
            out.truncate(start);
            // The peer would drop the connection on it; say why instead of looping.
            tracing::error!(
                peer = self.to,
                bytes = payload,
                limit = self.max_frame,
                "raft: message larger than max_message_size (a snapshot?); raise the limit on every member"
            );
            self.report(is_snapshot, false);
            return false;
        }
        // `len` counts kind + payload, as `push_frame` writes it; below max_frame, so it fits.
        let len = (payload + 1) as u32;
        out[start..start + 4].copy_from_slice(&len.to_be_bytes());
        true
    }

    fn report(&self, is_snapshot: bool, ok: bool) {
        if is_snapshot {
            let _ = self.events.try_send(Input::SnapshotStatus(self.to, ok));
        }
        if !ok {
            let _ = self.events.try_send(Input::Unreachable(self.to));
        }
    }
}

/// Serve peers on `listener` until `cancel`: raft messages go to `input`, join requests to
/// `join`.
pub async fn serve(
    listener: TcpListener,
    acceptor: Arc<dyn Acceptor>,
    input: SyncSender<Input>,
    service: Arc<dyn PeerService>,
    faults: Option<Arc<NetFaults>>,
    max_frame: u32,
    cancel: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let (tcp, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "raft: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let input = input.clone();
        let service = service.clone();
        let faults = faults.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let stream = match acceptor.accept(tcp).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(%remote, error = %e, "raft: peer handshake failed");
                    return;
                }
            };
            tokio::select! {
                () = cancel.cancelled() => {}
                r = serve_conn(stream, input, service, faults, max_frame) => {
                    if let Err(e) = r {
                        tracing::warn!(%remote, error = %e, "raft: dropping peer connection");
                    }
                }
            }
        });
    }
}

async fn serve_conn(
    mut stream: BoxStream,
    input: SyncSender<Input>,
    service: Arc<dyn PeerService>,
    faults: Option<Arc<NetFaults>>,
    max_frame: u32,
) -> io::Result<()> {
    while let Some((kind, payload)) = read_frame(&mut stream, max_frame).await? {
        match kind {
            KIND_RAFT => {
                let msg = Message::parse_from_bytes(&payload)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                if let Some(f) = &faults
                    && !f.allows(msg.from, msg.to)
                {
                    continue;
                }
                // A full input queue drops the message; raft retransmits.
                let _ = input.try_send(Input::Step(Box::new(msg)));
            }
            KIND_JOIN => {
                let reply = service.join(decode_json(&payload)?).await;
                write_frame(&mut stream, KIND_JOIN_REPLY, &encode_json(&reply)?).await?;
            }
            KIND_REMOVED => {
                let id: [u8; 8] = payload.as_slice().try_into().map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidData, "bad removal notice")
                })?;
                let _ = input.try_send(Input::Removed(u64::from_be_bytes(id)));
            }
            KIND_MEMBER => {
                let reply = service.member(decode_json(&payload)?).await;
                write_frame(&mut stream, KIND_MEMBER_REPLY, &encode_json(&reply)?).await?;
            }
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unknown frame kind {other}"),
                ));
            }
        }
    }
    Ok(())
}

fn decode_json<T: serde::de::DeserializeOwned>(b: &[u8]) -> io::Result<T> {
    serde_json::from_slice(b).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

fn encode_json<T: Serialize>(v: &T) -> io::Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

/// One request/reply exchange on a fresh connection.
async fn call<Req: Serialize, Rep: serde::de::DeserializeOwned>(
    connector: &dyn Connector,
    addr: &str,
    (kind, reply_kind): (u8, u8),
    req: &Req,
    timeout: Duration,
) -> Result<Rep> {
    let body = encode_json(req).map_err(|e| StoreError::Raft(format!("encode request: {e}")))?;
    let fut = async {
        let mut s = connector.connect(addr.to_string()).await?;
        write_frame(&mut s, kind, &body).await?;
        match read_frame(&mut s, 64 << 20).await? {
            Some((k, b)) if k == reply_kind => decode_json::<Rep>(&b),
            _ => Err(io::Error::new(io::ErrorKind::InvalidData, "no reply")),
        }
    };
    match tokio::time::timeout(timeout, fut).await {
        Err(_) => Err(StoreError::Timeout),
        Ok(Err(e)) => Err(StoreError::Raft(format!("peer {addr}: {e}"))),
        Ok(Ok(rep)) => Ok(rep),
    }
}

/// Ask the member at `addr` to add us; returns `(id, cluster_id, members)`.
///
/// # Errors
/// `Timeout` when no answer came in `timeout`, `Raft` when the member refused or the
/// connection failed.
pub async fn join(
    connector: &dyn Connector,
    addr: &str,
    req: &JoinRequest,
    timeout: Duration,
) -> Result<(u64, u64, Vec<MemberMeta>)> {
    match call(connector, addr, (KIND_JOIN, KIND_JOIN_REPLY), req, timeout).await? {
        JoinReply::Err(e) => Err(StoreError::Raft(format!("join via {addr}: {e}"))),
        JoinReply::Ok {
            id,
            cluster_id,
            members,
        } => Ok((id, cluster_id, members)),
    }
}

/// Hand a membership change to the leader at `addr`; returns the member and whether it is
/// a learner.
///
/// # Errors
/// The leader's error, `Timeout`, or `Raft` when the connection failed.
pub async fn member_request(
    connector: &dyn Connector,
    addr: &str,
    req: &MemberRequest,
    timeout: Duration,
) -> Result<(MemberMeta, bool)> {
    match call(
        connector,
        addr,
        (KIND_MEMBER, KIND_MEMBER_REPLY),
        req,
        timeout,
    )
    .await?
    {
        MemberReply::Ok { member, is_learner } => Ok((member, is_learner)),
        MemberReply::Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_oversized_lengths_are_rejected() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        write_frame(&mut a, KIND_RAFT, b"hello").await.unwrap();
        let (k, p) = read_frame(&mut b, 1024).await.unwrap().unwrap();
        assert_eq!((k, p.as_slice()), (KIND_RAFT, &b"hello"[..]));
        a.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        assert!(read_frame(&mut b, 1024).await.is_err());
    }

    #[tokio::test]
    async fn batched_frames_read_back_one_by_one_and_oversized_messages_are_reported() {
        let (events, inputs) = std::sync::mpsc::sync_channel(8);
        let (_tx, rx) = mpsc::channel(1);
        let task = PeerTask {
            to: 2,
            addr: "127.0.0.1:1".into(),
            rx,
            events,
            connector: Arc::new(TcpConnector),
            faults: None,
            cancel: CancellationToken::new(),
            max_frame: 64,
        };
        let msg = |context: &[u8]| {
            let mut m = Message::default();
            m.set_msg_type(MessageType::MsgHeartbeat);
            m.to = 2;
            m.context = context.to_vec().into();
            m
        };
        let mut out = Vec::new();
        assert!(task.append_frame(&mut out, &msg(b"one"), false));
        assert!(task.append_frame(&mut out, &msg(b"two"), false));
        let framed = out.len();
        assert!(!task.append_frame(&mut out, &msg(&[7; 100]), false));
        assert_eq!(out.len(), framed, "a refused message leaves nothing behind");
        assert!(matches!(inputs.try_recv(), Ok(Input::Unreachable(2))));
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&out).await.unwrap();
        drop(a);
        for want in [&b"one"[..], b"two"] {
            let (kind, payload) = read_frame(&mut b, 64).await.unwrap().unwrap();
            assert_eq!(kind, KIND_RAFT);
            let got = Message::parse_from_bytes(&payload).unwrap();
            assert_eq!(&got.context[..], want);
        }
        assert!(read_frame(&mut b, 64).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_peer_sending_garbage_is_disconnected_without_reaching_raft() {
        let (tx, rx) = std::sync::mpsc::sync_channel(8);
        let (mut a, b) = tokio::io::duplex(1024);
        struct Refuse;
        impl PeerService for Refuse {
            fn join(&self, _: JoinRequest) -> BoxFuture<'static, JoinReply> {
                Box::pin(async { JoinReply::Err("no".into()) })
            }
            fn member(&self, _: MemberRequest) -> BoxFuture<'static, MemberReply> {
                Box::pin(async { MemberReply::Err(WireError::NoLeader) })
            }
        }
        let task = tokio::spawn(serve_conn(Box::new(b), tx, Arc::new(Refuse), None, 1 << 20));
        write_frame(&mut a, KIND_RAFT, b"\xff\xff\xff garbage")
            .await
            .unwrap();
        let res = task.await.unwrap();
        assert!(res.is_err());
        assert!(rx.try_recv().is_err());
    }
}
