//! Reading one key from this member's local state while the store is not running (server
//! start-up uses it to recover the cluster CA before raft, whose peer TLS needs that CA).
//!
//! Owns nothing. May call: [`super::mvcc`] only. The value is what this member had applied;
//! committed entries not yet applied (still only in the raft log) are not seen.

use super::mvcc::Mvcc;
use super::types::RangeRequest;
use std::path::Path;

/// The current value of `key` in the state under `db_dir` (`<data-dir>/server/db`); `None`
/// when the key or the state does not exist. The state is closed again before returning.
///
/// # Errors
/// Storage failures (including the state being open in another process).
pub fn read_local(db_dir: &Path, key: &[u8]) -> super::Result<Option<Vec<u8>>> {
    let state = db_dir.join("state");
    if !state.exists() {
        return Ok(None);
    }
    let mvcc = Mvcc::open(&state, 1 << 20)?;
    let resp = mvcc.range(&RangeRequest {
        key: key.to_vec(),
        ..Default::default()
    })?;
    Ok(resp.kvs.into_iter().next().map(|kv| kv.value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::types::PutRequest;

    #[test]
    fn a_key_written_by_a_closed_state_is_read_back_and_a_missing_state_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_local(dir.path(), b"/k").unwrap(), None);
        assert!(
            !dir.path().join("state").exists(),
            "peeking creates nothing"
        );
        {
            let m = Mvcc::open(&dir.path().join("state"), 1 << 20).unwrap();
            let mut b = m.begin();
            b.put(&PutRequest {
                key: b"/k".to_vec(),
                value: b"v1".to_vec(),
                ..Default::default()
            })
            .unwrap();
            b.commit(1).unwrap();
        }
        assert_eq!(read_local(dir.path(), b"/k").unwrap(), Some(b"v1".to_vec()));
        assert_eq!(read_local(dir.path(), b"/other").unwrap(), None);
    }
}
