//! `--cluster-reset`: turn this member's data directory into a new one-member group, keeping
//! its data (the local raft log replayed in full) or replacing it by a snapshot file.
//!
//! Order matters so that a bad snapshot or a crash never costs data:
//! 1. everything is read and verified first (the snapshot file completely; or the local state
//!    caught up with the local log), and the old datastore is opened once, which also fails
//!    if a server still runs on it (sled's lock);
//! 2. the new `state/` + `raft/` are built and synced in `<db>/reset-tmp`;
//! 3. only then are the old `state/` and `raft/` moved to `<db>/old-<unix-seconds>/` (never
//!    deleted) and the new ones moved in.
//!
//! The new group has a new cluster id and member id, a raft snapshot at index 1 with a member
//! list of one, and the state at applied index 1: exactly what `--cluster-init` makes, so other
//! servers can join it as usual (with an empty data directory).

use std::fs;
use std::path::{Path, PathBuf};

use super::{BackupError, Summary, io_err, verify_file};
use crate::store::mvcc::verify_snapshot;
use crate::store::raft::membership::MemberMeta;
use crate::store::raft::reset::{bootstrap_single, catch_up};
use crate::store::setup::{StoreOptions, open_state};

/// What a reset did.
#[derive(Debug)]
pub struct ResetOutcome {
    /// Where the previous `state/` and `raft/` went (`None` when there were none).
    pub old_dir: Option<PathBuf>,
    /// The data the new group starts from.
    pub summary: Summary,
    /// The new member id (hex in logs, like etcd).
    pub member_id: u64,
    pub cluster_id: u64,
}

/// Resets the datastore under `db_dir` (`<data-dir>/server/db`) to a one-member group whose
/// only member is `me` (its id is assigned here). With `restore_from`, the data comes from that
/// snapshot file; otherwise from the local data. See the module doc for the order of steps.
///
/// # Errors
/// A missing, truncated or corrupt snapshot file (nothing touched); a datastore in use or
/// unreadable (nothing touched); I/O failures while swapping directories.
pub fn cluster_reset(
    db_dir: &Path,
    me: MemberMeta,
    restore_from: Option<&Path>,
) -> Result<ResetOutcome, BackupError> {
    let opts = StoreOptions::default();
    let state_dir = db_dir.join("state");
    let raft_dir = db_dir.join("raft");
    // 1. Read and verify.
    let data = match restore_from {
        Some(file) => {
            let (data, _) = verify_file(file)?;
            if state_dir.exists() {
                // Only to fail early, with the old data untouched, when a server runs on it.
                drop(open_state(&state_dir, &opts)?);
            }
            data
        }
        None => {
            fs::create_dir_all(&state_dir).map_err(io_err(&state_dir))?;
            let (mut sm, core) = open_state(&state_dir, &opts)?;
            catch_up(&raft_dir, sm.as_mut())?;
            let data = sm.snapshot()?;
            drop(sm);
            drop(core);
            data
        }
    };
    let summary = verify_snapshot(&data)?;

    // 2. Build the new datastore beside the old one.
    let tmp = db_dir.join("reset-tmp");
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
    }
    let new_state = tmp.join("state");
    fs::create_dir_all(&new_state).map_err(io_err(&new_state))?;
    let sm_snapshot = {
        let (mut sm, core) = open_state(&new_state, &opts)?;
        sm.restore(&data, 1)?;
        let s = sm.snapshot()?;
        drop(sm);
        drop(core);
        s
    };
    let file = bootstrap_single(&tmp.join("raft"), me, &sm_snapshot)?;

    // 3. Swap: the old directories are kept aside.
    let mut old_dir = None;
    if state_dir.exists() || raft_dir.exists() {
        let secs = jiff::Timestamp::now().as_second();
        let mut old = db_dir.join(format!("old-{secs}"));
        let mut n = 1;
        while old.exists() {
            old = db_dir.join(format!("old-{secs}-{n}"));
            n += 1;
        }
        fs::create_dir_all(&old).map_err(io_err(&old))?;
        for (from, name) in [(&state_dir, "state"), (&raft_dir, "raft")] {
            if from.exists() {
                let to = old.join(name);
                fs::rename(from, &to).map_err(io_err(&to))?;
            }
        }
        old_dir = Some(old);
    }
    for name in ["state", "raft"] {
        let to = db_dir.join(name);
        fs::rename(tmp.join(name), &to).map_err(io_err(&to))?;
    }
    fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
    fs::File::open(db_dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(db_dir))?;
    tracing::info!(
        member = format_args!("{:x}", file.id),
        revision = summary.revision,
        "datastore reset to a one-member group"
    );
    Ok(ResetOutcome {
        old_dir,
        summary,
        member_id: file.id,
        cluster_id: file.cluster_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::raft::Bootstrap;
    use crate::store::{PutRequest, RangeRequest, StoreConfig, open};

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reset_rebuilds_lost_state_from_the_raft_log_into_a_new_one_member_group() {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let peer = format!("http://127.0.0.1:{port}");
        let cfg = StoreConfig::new(
            dir.path(),
            "m1",
            &format!("127.0.0.1:{port}"),
            &peer,
            Bootstrap::ClusterInit,
        );
        let (store, node) = open(cfg.clone()).await.unwrap();
        let old_id = node.id();
        for i in 0..30 {
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
        // Lose the applied state entirely: only the log knows the writes now.
        fs::remove_dir_all(dir.path().join("state")).unwrap();

        let me = MemberMeta {
            id: 0,
            name: "m1".into(),
            peer_urls: vec![peer],
            client_urls: vec![],
        };
        let out = cluster_reset(dir.path(), me, None).unwrap();
        assert_ne!(out.member_id, old_id);
        let old = out.old_dir.unwrap();
        assert!(old.join("raft/member.json").exists(), "old data kept aside");

        let (store, node) = open(cfg).await.unwrap();
        assert_eq!(node.id(), out.member_id);
        let got = store
            .range(RangeRequest {
                key: b"/k/".to_vec(),
                range_end: b"/k0".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(got.count, 30);
        assert_eq!(store.members().await.unwrap().len(), 1);
        node.shutdown().await;
    }
}
