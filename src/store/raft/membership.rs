//! Group membership: replicated member metadata, the conf-change context that carries it,
//! and this member's identity file (`<data_dir>/member.json`).
//!
//! Owns: `member.json`. Called by the raft loop and by [`super::start`].
//!
//! Every conf change carries a [`ConfChangeContext`] (JSON) with the member's name and URLs,
//! so every member applies the same metadata at the same log index and `members()` agrees
//! everywhere; snapshots carry the whole list (see [`super::snapshot`]).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use raft::eraftpb::ConfState;
use serde::{Deserialize, Serialize};

use crate::store::error::{Result, StoreError};
use crate::store::types::Member;

/// Replicated metadata of one member.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberMeta {
    pub id: u64,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
}

/// The context of every conf change we propose.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConfChangeContext {
    /// Request id of the proposer's waiter (0 when nobody waits).
    pub req: u64,
    pub member: MemberMeta,
}

/// Member metadata by id, as of the applied index.
#[derive(Clone, Debug, Default)]
pub struct Members {
    pub by_id: BTreeMap<u64, MemberMeta>,
}

impl Members {
    /// From a snapshot's member list.
    pub fn from_list(list: Vec<MemberMeta>) -> Self {
        Members {
            by_id: list.into_iter().map(|m| (m.id, m)).collect(),
        }
    }

    /// The list stored in snapshots.
    pub fn list(&self) -> Vec<MemberMeta> {
        self.by_id.values().cloned().collect()
    }

    /// The members the configuration `cs` contains, with metadata (unknown metadata shows as
    /// an empty name, e.g. right after a restart before the log replayed).
    pub fn view(&self, cs: &ConfState) -> Vec<Member> {
        let mut out = Vec::new();
        for (ids, learner) in [(&cs.voters, false), (&cs.learners, true)] {
            for id in ids {
                let meta = self.by_id.get(id).cloned().unwrap_or_default();
                out.push(Member {
                    id: *id,
                    name: meta.name,
                    peer_urls: meta.peer_urls,
                    client_urls: meta.client_urls,
                    is_learner: learner,
                });
            }
        }
        out.sort_by_key(|m| m.id);
        out
    }

    /// The peer address (`host:port`) of member `id`.
    pub fn peer_addr(&self, id: u64) -> Option<String> {
        self.by_id
            .get(&id)
            .and_then(|m| m.peer_urls.first())
            .map(|u| url_to_addr(u))
    }
}

/// `http://host:port/` → `host:port` (peer URLs are etcd-style URLs; we dial the authority).
pub fn url_to_addr(url: &str) -> String {
    let s = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .unwrap_or(url);
    s.trim_end_matches('/').to_string()
}

/// This member's identity, written once when it first joins or bootstraps. Its presence
/// means "resume", whatever the join flags say.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemberFile {
    pub id: u64,
    pub cluster_id: u64,
    pub name: String,
    /// True for the member that bootstrapped the group (`ClusterInit`).
    pub cluster_init: bool,
    /// Members as the join reply listed them (used until a snapshot arrives).
    pub initial_members: Vec<MemberMeta>,
    /// Set when this member applied its own removal; it then refuses to start.
    #[serde(default)]
    pub removed: bool,
}

impl MemberFile {
    /// Read `<dir>/member.json` if it exists.
    ///
    /// # Errors
    /// On I/O errors or a corrupt file.
    pub fn load(dir: &Path) -> Result<Option<MemberFile>> {
        let p = dir.join("member.json");
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("{}: {e}", p.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Io {
                path: p.display().to_string(),
                source: e,
            }),
        }
    }

    /// Durably write `<dir>/member.json` (temp file, fsync, rename, fsync dir).
    ///
    /// # Errors
    /// On I/O errors.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let p = dir.join("member.json");
        let tmp = dir.join("member.json.tmp");
        let io = |e: std::io::Error| StoreError::Io {
            path: p.display().to_string(),
            source: e,
        };
        let data = serde_json::to_vec_pretty(self)
            .map_err(|e| StoreError::Raft(format!("encode member file: {e}")))?;
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(&data).and_then(|()| f.sync_all()).map_err(io)?;
        fs::rename(&tmp, &p).map_err(io)?;
        File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        Ok(())
    }
}

/// A fresh random member id (never 0, which raft reserves for "none").
pub fn new_member_id(taken: &Members) -> u64 {
    loop {
        let id: u64 = rand::random();
        if id != 0 && !taken.by_id.contains_key(&id) {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_follows_the_conf_state_and_marks_learners() {
        let m = Members::from_list(vec![
            MemberMeta {
                id: 1,
                name: "a".into(),
                peer_urls: vec!["http://10.0.0.1:2380/".into()],
                client_urls: vec![],
            },
            MemberMeta {
                id: 2,
                name: "b".into(),
                ..Default::default()
            },
            MemberMeta {
                id: 3,
                name: "gone".into(),
                ..Default::default()
            },
        ]);
        let mut cs = ConfState::default();
        cs.voters = vec![1];
        cs.learners = vec![2];
        let v = m.view(&cs);
        assert_eq!(v.len(), 2);
        assert!(!v[0].is_learner && v[1].is_learner);
        assert_eq!(m.peer_addr(1).as_deref(), Some("10.0.0.1:2380"));
    }

    #[test]
    fn the_member_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert!(MemberFile::load(dir.path()).unwrap().is_none());
        let f = MemberFile {
            id: 9,
            cluster_id: 3,
            name: "n".into(),
            cluster_init: true,
            initial_members: vec![],
            removed: false,
        };
        f.save(dir.path()).unwrap();
        assert_eq!(MemberFile::load(dir.path()).unwrap().unwrap().id, 9);
    }
}
