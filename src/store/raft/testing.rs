//! Test helpers for the raft layer: network fault injection and a small state machine.
//!
//! Owns nothing persistent beyond the test state machine's sled tree. Used by unit tests and
//! `tests/raft_cluster.rs`; production code only consults [`NetFaults::allows`] when a test
//! installed one in the config.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::store::error::{Result, StoreError};
use crate::store::state_machine::{CommittedEntry, StateMachine};

#[derive(Default)]
struct FaultState {
    isolated: HashSet<u64>,
    /// When set, only members in the same group talk to each other.
    groups: Vec<HashSet<u64>>,
}

/// Shared fault switchboard: drop all traffic to/from isolated members, or split the group
/// into partitions. One instance is shared by every node of a test cluster.
#[derive(Default)]
pub struct NetFaults {
    state: Mutex<FaultState>,
}

impl NetFaults {
    /// A fresh switchboard with no faults.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Drop all traffic to and from member `id`.
    pub fn isolate(&self, id: u64) {
        if let Ok(mut s) = self.state.lock() {
            s.isolated.insert(id);
        }
    }

    /// Only members in the same group can talk.
    pub fn partition(&self, groups: &[&[u64]]) {
        if let Ok(mut s) = self.state.lock() {
            s.groups = groups.iter().map(|g| g.iter().copied().collect()).collect();
        }
    }

    /// Remove every fault.
    pub fn heal(&self) {
        if let Ok(mut s) = self.state.lock() {
            *s = FaultState::default();
        }
    }

    /// Whether a message from `from` to `to` gets through.
    pub fn allows(&self, from: u64, to: u64) -> bool {
        let Ok(s) = self.state.lock() else {
            return true;
        };
        if s.isolated.contains(&from) || s.isolated.contains(&to) {
            return false;
        }
        if s.groups.is_empty() {
            return true;
        }
        s.groups
            .iter()
            .any(|g| g.contains(&from) && g.contains(&to))
    }
}

/// A key→value state machine in a sled tree, with its applied index stored in the same
/// atomic batch. Payloads are `key=value` (UTF-8 not required; split at the first `=`).
pub struct KvStateMachine {
    db: sled::Db,
    applied: u64,
}

const APPLIED_KEY: &[u8] = b"\x00applied";

impl KvStateMachine {
    /// Open (or create) the state machine in `dir`.
    ///
    /// # Errors
    /// On sled errors.
    pub fn open(dir: &std::path::Path) -> Result<Self> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(4 << 20)
            .open()?;
        let applied = match db.get(APPLIED_KEY)? {
            Some(v) => decode_u64(&v)?,
            None => 0,
        };
        Ok(KvStateMachine { db, applied })
    }

    /// A read handle for tests (sled handles are cheap clones).
    pub fn handle(&self) -> KvHandle {
        KvHandle {
            db: self.db.clone(),
        }
    }
}

fn decode_u64(v: &[u8]) -> Result<u64> {
    let b: [u8; 8] = v
        .try_into()
        .map_err(|_| StoreError::Corrupt("applied index".into()))?;
    Ok(u64::from_be_bytes(b))
}

/// Reads the test state machine from outside the raft loop.
#[derive(Clone)]
pub struct KvHandle {
    db: sled::Db,
}

impl KvHandle {
    /// The value of `key`, if applied.
    pub fn get(&self, key: &str) -> Option<String> {
        self.db
            .get(key.as_bytes())
            .ok()
            .flatten()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    /// The persisted applied index.
    pub fn applied(&self) -> u64 {
        self.db
            .get(APPLIED_KEY)
            .ok()
            .flatten()
            .and_then(|v| decode_u64(&v).ok())
            .unwrap_or(0)
    }
}

impl StateMachine for KvStateMachine {
    fn apply(&mut self, entries: &[CommittedEntry<'_>], up_to: u64) -> Result<()> {
        let mut batch = sled::Batch::default();
        for e in entries {
            let Some(eq) = e.data.iter().position(|b| *b == b'=') else {
                continue;
            };
            batch.insert(&e.data[..eq], &e.data[eq + 1..]);
        }
        batch.insert(APPLIED_KEY, &up_to.to_be_bytes());
        self.db.apply_batch(batch)?;
        self.applied = up_to;
        Ok(())
    }

    fn applied_index(&self) -> u64 {
        self.applied
    }

    fn snapshot(&self) -> Result<Vec<u8>> {
        let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for kv in self.db.iter() {
            let (k, v) = kv?;
            if &*k != APPLIED_KEY {
                pairs.push((k.to_vec(), v.to_vec()));
            }
        }
        serde_json::to_vec(&pairs).map_err(|e| StoreError::Raft(format!("snapshot: {e}")))
    }

    fn restore(&mut self, snapshot: &[u8], index: u64) -> Result<()> {
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = serde_json::from_slice(snapshot)
            .map_err(|e| StoreError::Corrupt(format!("kv snapshot: {e}")))?;
        let mut batch = sled::Batch::default();
        for kv in self.db.iter() {
            let (k, _) = kv?;
            batch.remove(k);
        }
        for (k, v) in pairs {
            batch.insert(k, v);
        }
        batch.insert(APPLIED_KEY, &index.to_be_bytes());
        self.db.apply_batch(batch)?;
        self.applied = index;
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_and_isolation_filter_messages() {
        let f = NetFaults::new();
        assert!(f.allows(1, 2));
        f.isolate(1);
        assert!(!f.allows(1, 2) && !f.allows(2, 1) && f.allows(2, 3));
        f.heal();
        f.partition(&[&[1, 2], &[3]]);
        assert!(f.allows(1, 2) && !f.allows(1, 3));
    }

    #[test]
    fn the_kv_state_machine_applies_snapshots_and_restores() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = KvStateMachine::open(dir.path()).unwrap();
        sm.apply(
            &[CommittedEntry {
                index: 3,
                term: 1,
                data: b"a=1",
            }],
            4,
        )
        .unwrap();
        assert_eq!(sm.applied_index(), 4);
        let snap = sm.snapshot().unwrap();
        let dir2 = tempfile::tempdir().unwrap();
        let mut other = KvStateMachine::open(dir2.path()).unwrap();
        other.restore(&snap, 9).unwrap();
        assert_eq!(other.handle().get("a").as_deref(), Some("1"));
        assert_eq!(other.handle().applied(), 9);
    }
}
