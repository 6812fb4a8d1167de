//! The raft layer under the store: raft-rs 0.7 driven by one loop thread, a write-ahead log
//! of our own, a TCP peer transport, snapshots and membership.
//!
//! Owns: `<data_dir>/{wal,snap,member.json}` and the peer listener. The store calls it only
//! through [`RaftNode`] (which implements [`Replicator`]); it calls the store only through the
//! [`StateMachine`] it was started with.
//!
//! ```text
//! start(RaftConfig, Box<dyn StateMachine>) -> RaftNode        // replays the WAL, joins or resumes
//! RaftNode: Replicator + Clone; node.shutdown().await; node.id(); node.error(); node.is_stopped()
//! ```
//!
//! Guarantees the store can rely on:
//! - `propose` → `Ok` means the entry reached raft (a follower forwards it to the leader
//!   inside raft); the outcome is the local `StateMachine::apply` of that entry. An entry is
//!   applied on every member or on none (one accepted by a cut-off leader is dropped), so a
//!   waiting proposer must time out.
//! - Entries reach `apply` only after they are fdatasynced here (the commit index is written
//!   lazily: it is volatile state, re-learnt after a restart).
//!   After a crash, every committed entry above the state machine's `applied_index()` is
//!   applied again; if the state machine is behind the last snapshot it is `restore`d first.
//! - `read_index` returns an index that is safe to read at once it is applied locally;
//!   it retries internally and fails with `NoLeader`/`Timeout` after `request_timeout`.
//! - `members()` lists the voters and learners of the applied configuration (sorted by id)
//!   with name, peer and client URLs replicated in the conf-change context, so every member
//!   returns the same list. Membership changes made on a follower are handed to the leader;
//!   a change requested while another is pending fails with `InvalidRequest("… in progress
//!   …")` (retry after it is applied).
//! - A member that applies its own removal, or hits a disk error (ENOSPC…), stops: every
//!   call then fails with `Stopped` and [`RaftNode::error`] says why.

// rust-protobuf messages carry hidden fields (unknown_fields, cached_size), so the idiom is
// `let mut m = M::default(); m.field = ...` (raft-rs allows the same lint for this reason).
#![allow(clippy::field_reassign_with_default)]

mod log;
pub mod membership;
mod node;
mod pipeline;
pub mod reset;
pub mod snapshot;
pub mod storage;
pub mod testing;
pub mod tls;
pub mod transport;
pub mod wal;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use raft::eraftpb::Snapshot;
use raft::{Config, RawNode};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::store::error::{Result, StoreError};
use crate::store::state_machine::{BoxFuture, RaftStatus, Refused, Replicator, StateMachine};
use crate::store::types::Member;

use membership::{MemberFile, MemberMeta, Members, url_to_addr};
use node::{Input, MemberOp, Node, ProposeReply, Shared};
use storage::WalStorage;
pub use testing::NetFaults;
pub use transport::{Acceptor, Connector, PlainAcceptor, TcpConnector};
use transport::{
    JoinReply, JoinRequest, MemberReply, MemberRequest, PeerService, Transport, WireError,
};

/// How a member with an empty data directory enters a group. Ignored once `member.json`
/// exists: a restarted member always resumes its membership.
#[derive(Clone, Debug)]
pub enum Bootstrap {
    /// Start a new one-member group.
    ClusterInit,
    /// Ask the member at `peer_addr` (`host:port` or a peer URL) to add us.
    Join { peer_addr: String, token: String },
}

/// Configuration of the raft member.
#[derive(Clone)]
pub struct RaftConfig {
    /// Directory holding `wal/`, `snap/` and `member.json`.
    pub data_dir: PathBuf,
    /// Member name (unique in the group).
    pub name: String,
    /// Address the peer listener binds (`host:port`; port 0 is not useful for peers).
    pub listen_addr: String,
    /// The peer URL other members dial (`http://host:port`).
    pub advertise_peer_url: String,
    /// Client URLs published in the member list.
    pub client_urls: Vec<String>,
    pub bootstrap: Bootstrap,
    /// Shared secret a joining server must present (joins are refused while it is empty).
    pub token: String,
    /// One raft tick (100 ms by default).
    pub tick_interval: Duration,
    /// Ticks without a leader before an election (10).
    pub election_tick: usize,
    /// Ticks between leader heartbeats (1).
    pub heartbeat_tick: usize,
    /// Deadline of proposals, ReadIndex, membership changes (5 s).
    pub request_timeout: Duration,
    /// Compact the log every this many applied entries (10 000).
    pub compact_every: u64,
    /// WAL segment size before rotation (64 MiB).
    pub segment_size: u64,
    /// Largest peer frame accepted, snapshots included (256 MiB).
    pub max_message_size: u32,
    /// Largest proposal accepted (16 MiB); bigger ones could never be replicated.
    pub max_proposal_size: usize,
    /// Dials peers (plain TCP by default).
    pub connector: Arc<dyn Connector>,
    /// Wraps accepted peer connections (identity by default).
    pub acceptor: Arc<dyn Acceptor>,
    /// Test-only network fault switchboard.
    pub faults: Option<Arc<NetFaults>>,
    /// Test-only disk fault hook: wraps every WAL segment file opened for writing.
    pub wal_file_wrapper: Option<wal::FileWrapper>,
}

impl std::fmt::Debug for RaftConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftConfig")
            .field("data_dir", &self.data_dir)
            .field("name", &self.name)
            .field("listen_addr", &self.listen_addr)
            .field("advertise_peer_url", &self.advertise_peer_url)
            .field("bootstrap", &self.bootstrap)
            .field("tick_interval", &self.tick_interval)
            .finish_non_exhaustive()
    }
}

impl RaftConfig {
    /// A config with the defaults above.
    pub fn new(
        data_dir: impl Into<PathBuf>,
        name: impl Into<String>,
        listen_addr: impl Into<String>,
        advertise_peer_url: impl Into<String>,
        bootstrap: Bootstrap,
    ) -> Self {
        RaftConfig {
            data_dir: data_dir.into(),
            name: name.into(),
            listen_addr: listen_addr.into(),
            advertise_peer_url: advertise_peer_url.into(),
            client_urls: Vec::new(),
            bootstrap,
            token: String::new(),
            tick_interval: Duration::from_millis(100),
            election_tick: 10,
            heartbeat_tick: 1,
            request_timeout: Duration::from_secs(5),
            compact_every: 10_000,
            segment_size: 64 << 20,
            max_message_size: 256 << 20,
            max_proposal_size: 16 << 20,
            connector: Arc::new(TcpConnector),
            acceptor: Arc::new(PlainAcceptor),
            faults: None,
            wal_file_wrapper: None,
        }
    }
}

struct Inner {
    tx: SyncSender<Input>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The peer listener task; awaited on shutdown so the port is free afterwards.
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
    request_timeout: Duration,
    election_timeout: Duration,
    tick: Duration,
    max_proposal_size: usize,
    token: String,
    connector: Arc<dyn Connector>,
}

/// A running raft member. Cheap to clone.
#[derive(Clone)]
pub struct RaftNode {
    inner: Arc<Inner>,
}

fn io_err(path: &std::path::Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Start (or resume) the raft member.
///
/// # Errors
/// On I/O errors, WAL corruption, a refused join, or a state machine ahead of the log.
pub async fn start(config: RaftConfig, mut sm: Box<dyn StateMachine>) -> Result<RaftNode> {
    let dir = config.data_dir.clone();
    std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
    let listener = TcpListener::bind(&config.listen_addr)
        .await
        .map_err(|e| io_err(std::path::Path::new(&config.listen_addr), e))?;
    let mut storage = WalStorage::open(&dir, config.segment_size, config.wal_file_wrapper.clone())?;
    let has_log = storage.snapshot_metadata().index > 0 || storage.last() > 0;
    let me = |id| MemberMeta {
        id,
        name: config.name.clone(),
        peer_urls: vec![config.advertise_peer_url.clone()],
        client_urls: config.client_urls.clone(),
    };
    let file = match MemberFile::load(&dir)? {
        Some(f) if f.removed => {
            return Err(StoreError::Raft(format!(
                "member {:x} was removed from the group; delete {} to join again",
                f.id,
                dir.display()
            )));
        }
        Some(f) => {
            tracing::info!(
                id = format_args!("{:x}", f.id),
                "raft: resuming membership from the data directory"
            );
            f
        }
        None if has_log => {
            return Err(StoreError::Corrupt(format!(
                "{} has a raft log but no member.json",
                dir.display()
            )));
        }
        None => {
            let f = match &config.bootstrap {
                Bootstrap::ClusterInit => {
                    let id = membership::new_member_id(&Members::default());
                    MemberFile {
                        id,
                        cluster_id: rand::random::<u64>().max(1),
                        name: config.name.clone(),
                        cluster_init: true,
                        initial_members: vec![me(id)],
                        removed: false,
                    }
                }
                Bootstrap::Join { peer_addr, token } => {
                    let (id, cluster_id, members) =
                        join_with_retry(&config, peer_addr, token).await?;
                    MemberFile {
                        id,
                        cluster_id,
                        name: config.name.clone(),
                        cluster_init: false,
                        initial_members: members,
                        removed: false,
                    }
                }
            };
            f.save(&dir)?;
            f
        }
    };
    if file.cluster_init && !has_log {
        // The group starts from a snapshot at index 1 so that every later member, starting
        // empty, is brought up by a snapshot and all members share one initial state.
        let data = snapshot::encode(&file.initial_members, &sm.snapshot()?)?;
        let mut snap = Snapshot::default();
        snap.data = data.into();
        let meta = snap.mut_metadata();
        meta.index = 1;
        meta.term = 1;
        meta.mut_conf_state().voters = vec![file.id];
        storage.install(&snap)?;
    }
    let snap_meta = storage.snapshot_metadata().clone();
    let members = if snap_meta.index > 0 {
        let data = storage.snapshot_data()?;
        if sm.applied_index() < snap_meta.index {
            // Fails on a light snapshot: the state it stands for should be in sled.
            let (_, sm_data) = snapshot::decode(&data)?;
            sm.restore(sm_data, snap_meta.index)?;
        }
        Members::from_list(snapshot::decode_members(&data)?)
    } else {
        Members::from_list(file.initial_members.clone())
    };
    let last = storage.last();
    let commit = storage.hard_state().commit;
    if commit > last || commit < snap_meta.index {
        // raft-rs would panic on this; refuse with a message instead.
        return Err(StoreError::Corrupt(format!(
            "raft log in {} is inconsistent: commit index {commit} outside [{}, {last}]",
            dir.display(),
            snap_meta.index
        )));
    }
    if sm.applied_index() > last {
        return Err(StoreError::Corrupt(format!(
            "state machine applied index {} is beyond the raft log (last index {last})",
            sm.applied_index()
        )));
    }
    let raft_cfg = Config {
        id: file.id,
        election_tick: config.election_tick,
        heartbeat_tick: config.heartbeat_tick,
        pre_vote: true,
        check_quorum: true,
        max_size_per_msg: 1 << 20,
        max_inflight_msgs: 256,
        ..Default::default()
    };
    raft_cfg
        .validate()
        .map_err(|e| StoreError::Raft(format!("config: {e}")))?;
    let conf_state = snap_meta.get_conf_state().clone();
    let raw = RawNode::new(&raft_cfg, storage, &log::logger(&config.name))
        .map_err(|e| StoreError::Raft(e.to_string()))?;
    let (tx, rx) = std::sync::mpsc::sync_channel(8192);
    let cancel = CancellationToken::new();
    let net = net_runtime(&config.name, cancel.clone())?;
    // Stops the peer runtime's thread if the start fails from here on.
    let stop_net_on_error = cancel.clone().drop_guard();
    let mut transport = Transport::new(
        file.id,
        net.clone(),
        tx.clone(),
        config.connector.clone(),
        config.faults.clone(),
        cancel.clone(),
        config.max_message_size,
    );
    transport.set_peers(&members);
    let shared = Arc::new(Shared::default());
    let node = Node {
        raw,
        sm: Box::new(pipeline::Pipelined::new(sm, &config.name)?),
        rx,
        transport,
        shared: shared.clone(),
        members,
        conf_state,
        cluster_id: file.cluster_id,
        tick: config.tick_interval,
        compact_every: config.compact_every.max(1),
        request_timeout: config.request_timeout,
        pending_reads: Default::default(),
        new_reads: Vec::new(),
        pending_cc: Default::default(),
        removed: false,
        removed_peers: Default::default(),
        data_dir: dir.clone(),
    };
    node.publish();
    let thread = std::thread::Builder::new()
        .name(format!("raft-{}", config.name))
        .spawn(move || node.run())
        .map_err(|e| StoreError::Raft(format!("spawn raft thread: {e}")))?;
    let handle = RaftNode {
        inner: Arc::new(Inner {
            tx: tx.clone(),
            shared,
            cancel: cancel.clone(),
            thread: Mutex::new(Some(thread)),
            server: Mutex::new(None),
            request_timeout: config.request_timeout,
            election_timeout: config.tick_interval * config.election_tick as u32,
            tick: config.tick_interval,
            max_proposal_size: config
                .max_proposal_size
                .min(config.max_message_size as usize / 2),
            token: config.token.clone(),
            connector: config.connector.clone(),
        }),
    };
    // The listener moves to the peer runtime's reactor (see `net_runtime`).
    let listener = listener.into_std().map_err(|e| StoreError::Io {
        path: config.listen_addr.clone(),
        source: e,
    })?;
    let service = Arc::new(Service {
        node: Arc::downgrade(&handle.inner),
    });
    let (acceptor, faults, max_frame) = (
        config.acceptor.clone(),
        config.faults.clone(),
        config.max_message_size,
    );
    let server = net.spawn(async move {
        match TcpListener::from_std(listener) {
            Ok(listener) => {
                transport::serve(listener, acceptor, tx, service, faults, max_frame, cancel).await;
            }
            Err(e) => tracing::error!(error = %e, "raft: cannot serve peers"),
        }
    });
    if let Ok(mut slot) = handle.inner.server.lock() {
        *slot = Some(server);
    }
    stop_net_on_error.disarm();
    Ok(handle)
}

/// A single-threaded tokio runtime of its own for the peer transport, on a thread that lives
/// until `cancel`. Replication must not queue behind client work: on the shared runtime a
/// raft message (the leader's append, a follower's answer) waited in the same run queues as
/// every watcher's delivery, so a write's round trip grew with the number of watchers.
fn net_runtime(name: &str, cancel: CancellationToken) -> Result<tokio::runtime::Handle> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name(format!("raftnet-{name}"))
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let _ = tx.send(Ok(rt.handle().clone()));
            rt.block_on(cancel.cancelled());
        })
        .map_err(|e| StoreError::Raft(format!("spawn peer transport thread: {e}")))?;
    match rx.recv() {
        Ok(Ok(handle)) => Ok(handle),
        Ok(Err(e)) => Err(StoreError::Raft(format!("peer transport runtime: {e}"))),
        Err(_) => Err(StoreError::Raft("peer transport thread died".into())),
    }
}

async fn join_with_retry(
    config: &RaftConfig,
    peer_addr: &str,
    token: &str,
) -> Result<(u64, u64, Vec<MemberMeta>)> {
    let req = JoinRequest {
        token: token.to_string(),
        name: config.name.clone(),
        peer_urls: vec![config.advertise_peer_url.clone()],
        client_urls: config.client_urls.clone(),
        forwarded: false,
    };
    let addr = url_to_addr(peer_addr);
    let deadline = Instant::now() + config.request_timeout * 3;
    loop {
        match transport::join(&*config.connector, &addr, &req, config.request_timeout * 2).await {
            // Only refusals are retried: after a timeout the member may have been added.
            Err(StoreError::Raft(msg)) if msg.contains("retry") && Instant::now() < deadline => {
                tracing::info!(reason = %msg, "raft: join refused for now, retrying");
                tokio::time::sleep(config.tick_interval * 5).await;
            }
            other => return other,
        }
    }
}

/// Answers join and membership requests from peers.
struct Service {
    node: std::sync::Weak<Inner>,
}

impl Service {
    fn node(&self) -> Option<RaftNode> {
        self.node.upgrade().map(|inner| RaftNode { inner })
    }
}

impl PeerService for Service {
    fn join(&self, req: JoinRequest) -> BoxFuture<'static, JoinReply> {
        let node = self.node();
        Box::pin(async move {
            let Some(node) = node else {
                return JoinReply::Err("member is shutting down".into());
            };
            node.handle_join(req).await
        })
    }

    fn member(&self, req: MemberRequest) -> BoxFuture<'static, MemberReply> {
        let node = self.node();
        Box::pin(async move {
            let Some(node) = node else {
                return MemberReply::Err(WireError::Other("member is shutting down".into()));
            };
            if req.token != node.inner.token {
                return MemberReply::Err(WireError::Invalid("bad token".into()));
            }
            // Never forwarded again: a leader change in between surfaces as an error.
            match node.member_op_local(req.op).await {
                Ok(m) => MemberReply::Ok {
                    is_learner: m.is_learner,
                    member: MemberMeta {
                        id: m.id,
                        name: m.name,
                        peer_urls: m.peer_urls,
                        client_urls: m.client_urls,
                    },
                },
                Err(e) => MemberReply::Err(e.into()),
            }
        })
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: stop the loop (it exits within a tick) and the transport.
        self.shared.stop_requested.store(true, Ordering::SeqCst);
        let _ = self.tx.try_send(Input::Shutdown);
        self.cancel.cancel();
    }
}

impl RaftNode {
    /// This member's id.
    pub fn id(&self) -> u64 {
        self.status().id
    }

    /// Why the member stopped on its own (removed, disk error), if it did.
    pub fn error(&self) -> Option<String> {
        self.inner.shared.error.lock().ok().and_then(|e| e.clone())
    }

    /// True once the raft loop has exited.
    pub fn is_stopped(&self) -> bool {
        self.inner.shared.stopped.load(Ordering::SeqCst)
    }

    /// Stop the loop and the transport; waits for the loop thread (the WAL and the state
    /// machine are closed after) and for the peer listener to close (its port is free).
    pub async fn shutdown(&self) {
        self.inner
            .shared
            .stop_requested
            .store(true, Ordering::SeqCst);
        let _ = self.inner.tx.try_send(Input::Shutdown);
        self.inner.cancel.cancel();
        let thread = self.inner.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        let server = self.inner.server.lock().ok().and_then(|mut s| s.take());
        if let Some(s) = server {
            let _ = s.await;
        }
    }

    fn check_proposal_size(&self, data: &[u8]) -> Result<()> {
        if data.len() > self.inner.max_proposal_size {
            return Err(StoreError::InvalidRequest(format!(
                "proposal of {} bytes exceeds the limit of {}",
                data.len(),
                self.inner.max_proposal_size
            )));
        }
        Ok(())
    }

    fn submit(&self, input: Input) -> Result<()> {
        if self.is_stopped() {
            return Err(StoreError::Stopped);
        }
        match self.inner.tx.try_send(input) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(StoreError::Timeout),
            Err(TrySendError::Disconnected(_)) => Err(StoreError::Stopped),
        }
    }

    async fn wait<T>(&self, rx: oneshot::Receiver<Result<T>>, timeout: Duration) -> Result<T> {
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(StoreError::Stopped),
            Err(_) => Err(StoreError::Timeout),
        }
    }

    fn peer_addr(&self, id: u64) -> Option<String> {
        let metas = self.inner.shared.metas.read().ok()?;
        let m = metas.iter().find(|m| m.id == id)?;
        m.peer_urls.first().map(|u| url_to_addr(u))
    }

    async fn handle_join(&self, req: JoinRequest) -> JoinReply {
        if self.inner.token.is_empty() {
            return JoinReply::Err("join refused: this member has no join token configured".into());
        }
        if req.token != self.inner.token {
            return JoinReply::Err("join refused: bad token".into());
        }
        let status = self.status();
        if status.leader_id != 0 && status.leader_id != status.id && !req.forwarded {
            // Hand the request to the leader: its member list is the newest, and only it
            // can tell "a change is already in progress".
            if let Some(addr) = self.peer_addr(status.leader_id) {
                let mut fwd = req.clone();
                fwd.forwarded = true;
                let timeout = self.inner.request_timeout * 2;
                return match transport::join(&*self.inner.connector, &addr, &fwd, timeout).await {
                    Ok((id, cluster_id, members)) => JoinReply::Ok {
                        id,
                        cluster_id,
                        members,
                    },
                    Err(StoreError::Raft(m)) => JoinReply::Err(m),
                    Err(e) => JoinReply::Err(e.to_string()),
                };
            }
        }
        // Added as a voter directly: the joining server is up and reachable (it is asking),
        // it is brought up by one snapshot, and etcd does the same; learner-then-promote
        // would need progress tracking and a second conf change for little gain here.
        let op = MemberOp::Add {
            name: req.name,
            peer_urls: req.peer_urls,
            client_urls: req.client_urls,
            learner: false,
        };
        match self.member_op_local(op).await {
            Ok(m) => JoinReply::Ok {
                id: m.id,
                cluster_id: self.status().cluster_id,
                members: self
                    .inner
                    .shared
                    .metas
                    .read()
                    .map(|v| v.clone())
                    .unwrap_or_default(),
            },
            Err(e @ StoreError::NoLeader) => JoinReply::Err(format!("{e} (retry)")),
            Err(StoreError::InvalidRequest(m)) if m.contains("in progress") => {
                JoinReply::Err(format!("{m} (retry)"))
            }
            Err(e) => JoinReply::Err(e.to_string()),
        }
    }

    /// A membership change: handed to the leader when we follow, proposed here otherwise.
    async fn member_op(&self, op: MemberOp) -> Result<Member> {
        let status = self.status();
        if status.leader_id != 0
            && status.leader_id != status.id
            && let Some(addr) = self.peer_addr(status.leader_id)
        {
            let req = MemberRequest {
                token: self.inner.token.clone(),
                op,
            };
            let timeout = self.inner.request_timeout + self.inner.tick * 4;
            let (m, is_learner) =
                transport::member_request(&*self.inner.connector, &addr, &req, timeout).await?;
            return Ok(Member {
                id: m.id,
                name: m.name,
                peer_urls: m.peer_urls,
                client_urls: m.client_urls,
                is_learner,
            });
        }
        self.member_op_local(op).await
    }

    async fn member_op_local(&self, op: MemberOp) -> Result<Member> {
        let (reply, rx) = oneshot::channel();
        self.submit(Input::ConfChange { op, reply })?;
        // The loop answers Timeout itself after request_timeout; leave it a margin.
        self.wait(rx, self.inner.request_timeout + self.inner.tick * 2)
            .await
    }

    async fn read_index_inner(self) -> Result<u64> {
        let deadline = Instant::now() + self.inner.request_timeout;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(if self.status().leader_id == 0 {
                    StoreError::NoLeader
                } else {
                    StoreError::Timeout
                });
            }
            let (reply, rx) = oneshot::channel();
            self.submit(Input::ReadIndex { reply })?;
            let attempt = self.inner.election_timeout.min(deadline - now);
            match tokio::time::timeout(attempt, rx).await {
                Ok(Ok(Ok(index))) => return Ok(index),
                Ok(Ok(Err(StoreError::NoLeader))) => {
                    tokio::time::sleep(self.inner.tick).await;
                }
                Ok(Ok(Err(e))) => return Err(e),
                // Dropped (expired, or the leader changed before answering): retry.
                Ok(Err(_)) if self.is_stopped() => return Err(StoreError::Stopped),
                Ok(Err(_)) | Err(_) => {}
            }
        }
    }
}

impl Replicator for RaftNode {
    fn propose(&self, data: Vec<u8>) -> BoxFuture<'static, Result<()>> {
        let this = self.clone();
        Box::pin(async move {
            this.check_proposal_size(&data)?;
            let (reply, rx) = oneshot::channel();
            this.submit(Input::Propose {
                data,
                reply: ProposeReply::Outcome(reply),
            })?;
            this.wait(rx, this.inner.request_timeout).await
        })
    }

    fn propose_detached(&self, data: Vec<u8>, refused: Refused) -> Result<()> {
        self.check_proposal_size(&data)?;
        self.submit(Input::Propose {
            data,
            reply: ProposeReply::Refusal(refused),
        })
    }

    fn read_index(&self) -> BoxFuture<'static, Result<u64>> {
        Box::pin(self.clone().read_index_inner())
    }

    fn status(&self) -> RaftStatus {
        self.inner
            .shared
            .status
            .read()
            .map(|s| *s)
            .unwrap_or_default()
    }

    fn members(&self) -> BoxFuture<'static, Result<Vec<Member>>> {
        let this = self.clone();
        Box::pin(async move {
            if this.is_stopped() {
                return Err(StoreError::Stopped);
            }
            Ok(this
                .inner
                .shared
                .members
                .read()
                .map(|m| m.clone())
                .unwrap_or_default())
        })
    }

    fn member_add(
        &self,
        name: String,
        peer_urls: Vec<String>,
        is_learner: bool,
    ) -> BoxFuture<'static, Result<Member>> {
        let this = self.clone();
        Box::pin(async move {
            this.member_op(MemberOp::Add {
                name,
                peer_urls,
                client_urls: Vec::new(),
                learner: is_learner,
            })
            .await
        })
    }

    fn member_remove(&self, id: u64) -> BoxFuture<'static, Result<()>> {
        let this = self.clone();
        Box::pin(async move { this.member_op(MemberOp::Remove(id)).await.map(|_| ()) })
    }

    fn member_promote(&self, id: u64) -> BoxFuture<'static, Result<()>> {
        let this = self.clone();
        Box::pin(async move { this.member_op(MemberOp::Promote(id)).await.map(|_| ()) })
    }

    fn transfer_leader(&self, id: u64) -> BoxFuture<'static, Result<()>> {
        let this = self.clone();
        Box::pin(async move {
            let member = this
                .inner
                .shared
                .members
                .read()
                .ok()
                .and_then(|m| m.iter().find(|m| m.id == id).cloned());
            match member {
                None => return Err(StoreError::MemberNotFound { id }),
                Some(m) if m.is_learner => {
                    return Err(StoreError::InvalidRequest(format!(
                        "member {id:x} is a learner and cannot lead"
                    )));
                }
                Some(_) => {}
            }
            if this.status().leader_id == id {
                return Ok(());
            }
            let deadline = Instant::now() + this.inner.request_timeout;
            let mut resend = Instant::now();
            loop {
                let st = this.status();
                if st.leader_id == id {
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    return Err(StoreError::Timeout);
                }
                if Instant::now() >= resend {
                    this.submit(Input::TransferLeader(id))?;
                    resend = Instant::now() + this.inner.election_timeout;
                }
                tokio::time::sleep(this.inner.tick).await;
            }
        })
    }
}
