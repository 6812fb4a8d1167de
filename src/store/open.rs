//! Opening the whole store: the MVCC state on sled plus the raft member that replicates it.
//!
//! This is the one place that glues [`super::open_state`] to [`super::raft::start`]; callers
//! (`k3rs server`, tests, benchmarks) get a ready [`Store`] and the [`RaftNode`] to shut down.

use std::path::PathBuf;
use std::sync::Arc;

use super::error::Result;
use super::raft::{self, Bootstrap, RaftConfig, RaftNode};
use super::setup::{StoreOptions, open_state};
use super::{Store, state_machine::Replicator};

/// Everything needed to open a store member.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// `<data-dir>/server/db`: holds `state/` (sled) and `raft/` (WAL, snapshots, member.json).
    pub dir: PathBuf,
    /// Raft settings; `data_dir` is overwritten with `<dir>/raft`.
    pub raft: RaftConfig,
    pub options: StoreOptions,
}

impl StoreConfig {
    /// A member named `name` with its peer listener on `listen_addr` (`host:port`), reachable
    /// by others at `advertise_peer_url`, entering the group as `bootstrap` says.
    pub fn new(
        dir: impl Into<PathBuf>,
        name: &str,
        listen_addr: &str,
        advertise_peer_url: &str,
        bootstrap: Bootstrap,
    ) -> Self {
        let dir = dir.into();
        let raft = RaftConfig::new(
            dir.join("raft"),
            name,
            listen_addr,
            advertise_peer_url,
            bootstrap,
        );
        StoreConfig {
            dir,
            raft,
            options: StoreOptions::default(),
        }
    }
}

/// Open (or create, or join) the store: replays the raft log into sled and starts serving.
///
/// # Errors
/// Storage failures, a corrupt WAL, a refused join.
pub async fn open(mut config: StoreConfig) -> Result<(Store, RaftNode)> {
    let state_dir = config.dir.join("state");
    std::fs::create_dir_all(&state_dir).map_err(|source| super::StoreError::Io {
        path: state_dir.display().to_string(),
        source,
    })?;
    let (state_machine, core) = open_state(&state_dir, &config.options)?;
    config.raft.data_dir = config.dir.join("raft");
    let node = raft::start(config.raft, state_machine).await?;
    let replicator: Arc<dyn Replicator> = Arc::new(node.clone());
    Ok((core.into_store(replicator), node))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{PutRequest, RangeRequest};

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_single_member_store_keeps_acknowledged_writes_across_restart() {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let cfg = StoreConfig::new(
            dir.path(),
            "m1",
            &format!("127.0.0.1:{port}"),
            &format!("http://127.0.0.1:{port}"),
            Bootstrap::ClusterInit,
        );
        let (store, node) = open(cfg.clone()).await.unwrap();
        for i in 0..20 {
            store
                .put(PutRequest {
                    key: format!("/k/{i:02}").into_bytes(),
                    value: b"v".to_vec(),
                    ..Default::default()
                })
                .await
                .unwrap();
        }
        node.shutdown().await;
        drop(store);

        let (store, node) = open(cfg).await.unwrap();
        let got = store
            .range(RangeRequest {
                key: b"/k/".to_vec(),
                range_end: b"/k0".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(got.count, 20);
        assert_eq!(got.kvs.last().unwrap().key, b"/k/19".to_vec());
        node.shutdown().await;
    }
}
