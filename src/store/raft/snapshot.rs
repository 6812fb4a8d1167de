//! Raft snapshots on disk and on the wire: the envelope (member metadata + the state
//! machine's own snapshot bytes) and the snapshot files `<dir>/<index:016x>.snap`.
//!
//! Owns: the files in the snapshot directory. Called by [`super::storage`] and the raft loop.
//!
//! Envelope: `[magic "K3SN"][members json length: u32 LE][members json][state machine
//! bytes]`. Member metadata travels with the snapshot because conf changes below the snapshot
//! index are gone from the log, yet `members()` must be the same on every member.
//!
//! A *light* envelope (magic `K3SL`, no state machine bytes) marks a log compaction whose
//! state lives in the synced state machine itself: compacting the log then costs a sled flush
//! instead of encoding the whole store (which grew with every revision and stalled the raft
//! loop for hundreds of milliseconds every 10 000 entries). It is never sent to a peer: a
//! member that needs a snapshot makes the loop write a full one first, like etcd, which also
//! builds its backend snapshot only when a follower needs it.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::store::error::{Result, StoreError};

use super::membership::MemberMeta;

const MAGIC: &[u8; 4] = b"K3SN";
const MAGIC_LIGHT: &[u8; 4] = b"K3SL";

/// Build a snapshot envelope.
///
/// # Errors
/// If the members cannot be serialised.
pub fn encode(members: &[MemberMeta], sm: &[u8]) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(members)
        .map_err(|e| StoreError::Raft(format!("encode snapshot members: {e}")))?;
    let len =
        u32::try_from(json.len()).map_err(|_| StoreError::Raft("member list too large".into()))?;
    let mut out = Vec::with_capacity(8 + json.len() + sm.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(sm);
    Ok(out)
}

/// Build a light envelope: the members only (see the module doc).
///
/// # Errors
/// If the members cannot be serialised.
pub fn encode_light(members: &[MemberMeta]) -> Result<Vec<u8>> {
    let mut out = encode(members, &[])?;
    out[..4].copy_from_slice(MAGIC_LIGHT);
    Ok(out)
}

/// Whether `data` starts like a light envelope (members only, no state).
pub fn is_light(data: &[u8]) -> bool {
    data.starts_with(MAGIC_LIGHT)
}

/// Whether the snapshot file for `index` is a light one (reads only its first bytes).
///
/// # Errors
/// On I/O errors (including a missing file).
pub fn file_is_light(dir: &Path, index: u64) -> Result<bool> {
    use std::io::Read;
    let p = path(dir, index);
    let mut head = [0u8; 4];
    File::open(&p)
        .and_then(|mut f| f.read_exact(&mut head))
        .map_err(|e| io_err(&p, e))?;
    Ok(is_light(&head))
}

/// Split a full envelope into members and state machine bytes.
///
/// # Errors
/// `Corrupt` when the envelope is malformed (a bad peer or a damaged file) or light.
pub fn decode(data: &[u8]) -> Result<(Vec<MemberMeta>, &[u8])> {
    if is_light(data) {
        return Err(StoreError::Corrupt(
            "the snapshot holds only the member list, not the state machine (it is in the \
             state machine's own files, which are behind it)"
                .into(),
        ));
    }
    split(data)
}

/// The members of a full or light envelope.
///
/// # Errors
/// `Corrupt` when the envelope is malformed.
pub fn decode_members(data: &[u8]) -> Result<Vec<MemberMeta>> {
    split(data).map(|(m, _)| m)
}

fn split(data: &[u8]) -> Result<(Vec<MemberMeta>, &[u8])> {
    if data.len() < 8 || (&data[..4] != MAGIC && &data[..4] != MAGIC_LIGHT) {
        return Err(StoreError::Corrupt("snapshot envelope: bad header".into()));
    }
    let len = u32::from_le_bytes([data[4], data[5], data[6], data[7]]) as usize;
    let json = data
        .get(8..8 + len)
        .ok_or_else(|| StoreError::Corrupt("snapshot envelope: truncated members".into()))?;
    let members = serde_json::from_slice(json)
        .map_err(|e| StoreError::Corrupt(format!("snapshot envelope members: {e}")))?;
    Ok((members, &data[8 + len..]))
}

fn io_err(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Path of the snapshot file for `index`.
pub fn path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("{index:016x}.snap"))
}

/// Durably write the snapshot for `index` (temp file, fsync, rename, fsync dir). Older files
/// stay until [`remove_older`]: the WAL still points at the previous one until its own
/// record for `index` is committed.
///
/// # Errors
/// On I/O errors.
pub fn write(dir: &Path, index: u64, data: &[u8]) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let tmp = dir.join(format!("{index:016x}.snap.tmp"));
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&tmp)
        .map_err(|e| io_err(&tmp, e))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(|e| io_err(&tmp, e))?;
    let dst = path(dir, index);
    fs::rename(&tmp, &dst).map_err(|e| io_err(&dst, e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, e))
}

/// Delete snapshot files older than `index` (and stray temp files). Failures only warn.
pub fn remove_older(dir: &Path, index: u64) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for ent in entries.flatten() {
        let name = ent.file_name();
        let Some(name) = name.to_str() else { continue };
        let old = name
            .strip_suffix(".snap")
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .is_some_and(|i| i < index);
        if (old || name.ends_with(".snap.tmp"))
            && let Err(e) = fs::remove_file(ent.path())
        {
            tracing::warn!(path = %ent.path().display(), error = %e, "raft: cannot remove old snapshot");
        }
    }
}

/// Read the snapshot file for `index`.
///
/// # Errors
/// On I/O errors (including a missing file).
pub fn read(dir: &Path, index: u64) -> Result<Vec<u8>> {
    let p = path(dir, index);
    fs::read(&p).map_err(|e| io_err(&p, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_round_trips_and_garbage_is_corrupt() {
        let m = vec![MemberMeta {
            id: 7,
            name: "a".into(),
            peer_urls: vec!["http://127.0.0.1:1".into()],
            client_urls: vec![],
        }];
        let env = encode(&m, b"state").unwrap();
        let (got, sm) = decode(&env).unwrap();
        assert_eq!(got, m);
        assert_eq!(sm, b"state");
        assert!(matches!(
            decode(b"K3SN\xff\xff\xff\x00{"),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(decode(b"xx"), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn a_light_envelope_carries_members_but_refuses_to_restore_state() {
        let m = vec![MemberMeta {
            id: 3,
            name: "b".into(),
            ..Default::default()
        }];
        let light = encode_light(&m).unwrap();
        assert!(is_light(&light));
        assert_eq!(decode_members(&light).unwrap(), m);
        assert!(matches!(decode(&light), Err(StoreError::Corrupt(_))));
        let full = encode(&m, b"s").unwrap();
        assert!(!is_light(&full));
        assert_eq!(decode_members(&full).unwrap(), m);
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 4, &light).unwrap();
        write(dir.path(), 5, &full).unwrap();
        assert!(file_is_light(dir.path(), 4).unwrap());
        assert!(!file_is_light(dir.path(), 5).unwrap());
        assert!(file_is_light(dir.path(), 6).is_err());
    }

    #[test]
    fn writing_a_snapshot_removes_older_ones() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 5, b"five").unwrap();
        write(dir.path(), 9, b"nine").unwrap();
        assert_eq!(
            read(dir.path(), 5).unwrap(),
            b"five",
            "kept until the wal moved on"
        );
        remove_older(dir.path(), 9);
        assert_eq!(read(dir.path(), 9).unwrap(), b"nine");
        assert!(read(dir.path(), 5).is_err());
    }
}
