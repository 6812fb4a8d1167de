//! Snapshot files in a directory: `<name>-<node>-<unix-seconds>` like k3s, written atomically,
//! listed newest first, pruned per name prefix, verified completely before use.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{BackupError, Summary, io_err};
use crate::store::etcd::unseal;
use crate::store::mvcc::verify_snapshot;

/// One snapshot file of a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotFile {
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    /// Unix seconds: from the name's suffix when it has one, else the file's mtime.
    pub created: i64,
}

/// `<name>-<node>-<unix_secs>`, the k3s naming.
pub fn snapshot_name(name: &str, node: &str, unix_secs: i64) -> String {
    format!("{name}-{node}-{unix_secs}")
}

fn check_name(name: &str) -> Result<(), BackupError> {
    if name.is_empty()
        || name.starts_with('.')
        || name.contains('/')
        || name.contains('\0')
        || name.ends_with(".tmp")
    {
        return Err(BackupError::BadName(name.to_string()));
    }
    Ok(())
}

/// Writes `sealed` (a sealed snapshot) as `<dir>/<name>-<node>-<ts>` atomically (temp file,
/// fsync, rename, fsync dir). When a file of that second exists, the next free second is
/// used so names stay unique and ordered. Returns the file written.
///
/// # Errors
/// I/O failures, or a name with a `/`.
pub fn write_snapshot(
    dir: &Path,
    name: &str,
    node: &str,
    unix_secs: i64,
    sealed: &[u8],
) -> Result<SnapshotFile, BackupError> {
    check_name(name)?;
    check_name(node)?;
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mut ts = unix_secs;
    let (file_name, path) = loop {
        let n = snapshot_name(name, node, ts);
        let p = dir.join(&n);
        if !p.exists() {
            break (n, p);
        }
        ts += 1;
    };
    let tmp = dir.join(format!(".{file_name}.tmp"));
    let mut f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(sealed)
        .and_then(|()| f.sync_all())
        .map_err(io_err(&tmp))?;
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    Ok(SnapshotFile {
        name: file_name,
        path,
        size: sealed.len() as u64,
        created: ts,
    })
}

/// The snapshot files of `dir`, newest first (a missing directory lists as empty). Hidden
/// and temporary files are skipped.
///
/// # Errors
/// I/O failures reading the directory.
pub fn list(dir: &Path) -> Result<Vec<SnapshotFile>, BackupError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut out = Vec::new();
    for ent in entries {
        let ent = ent.map_err(io_err(dir))?;
        let Ok(name) = ent.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') || name.ends_with(".tmp") {
            continue;
        }
        let path = ent.path();
        let meta = ent.metadata().map_err(io_err(&path))?;
        if !meta.is_file() {
            continue;
        }
        let created = suffix_secs(&name).unwrap_or_else(|| {
            meta.modified()
                .ok()
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs() as i64)
        });
        out.push(SnapshotFile {
            name,
            path,
            size: meta.len(),
            created,
        });
    }
    out.sort_by(|a, b| b.created.cmp(&a.created).then(b.name.cmp(&a.name)));
    Ok(out)
}

fn suffix_secs(name: &str) -> Option<i64> {
    name.rsplit_once('-')
        .and_then(|(_, ts)| ts.parse::<i64>().ok())
}

/// Deletes the named snapshots of `dir`; all names are checked first, so an unknown name
/// deletes nothing.
///
/// # Errors
/// An unknown or invalid name, or I/O failures.
pub fn delete(dir: &Path, names: &[String]) -> Result<Vec<PathBuf>, BackupError> {
    let mut paths = Vec::new();
    for n in names {
        check_name(n)?;
        let p = dir.join(n);
        if !p.is_file() {
            return Err(BackupError::NotFound(n.clone()));
        }
        paths.push(p);
    }
    for p in &paths {
        fs::remove_file(p).map_err(io_err(p))?;
    }
    Ok(paths)
}

/// Keeps the newest `retention` snapshots whose name starts with `<prefix>-` and deletes
/// the older ones (files of other prefixes are never touched). Returns the deleted files.
///
/// # Errors
/// I/O failures.
pub fn prune(dir: &Path, prefix: &str, retention: usize) -> Result<Vec<SnapshotFile>, BackupError> {
    let want = format!("{prefix}-");
    let doomed: Vec<SnapshotFile> = list(dir)?
        .into_iter()
        .filter(|f| f.name.starts_with(&want) && suffix_secs(&f.name).is_some())
        .skip(retention)
        .collect();
    for f in &doomed {
        fs::remove_file(&f.path).map_err(io_err(&f.path))?;
    }
    Ok(doomed)
}

/// Checks a whole sealed snapshot (envelope, checksum, every record) and returns the store
/// snapshot inside it with its summary.
///
/// # Errors
/// `Sealed` or `Content` naming the file and what is wrong.
pub fn verify_snapshot_bytes<'a>(
    path: &Path,
    file: &'a [u8],
) -> Result<(&'a [u8], Summary), BackupError> {
    let inner = unseal(file).map_err(|reason| BackupError::Sealed {
        path: path.display().to_string(),
        reason,
    })?;
    let summary = verify_snapshot(inner).map_err(|reason| BackupError::Content {
        path: path.display().to_string(),
        reason,
    })?;
    Ok((inner, summary))
}

/// Reads and verifies the snapshot file at `path` (see [`verify_snapshot_bytes`]); returns
/// the store snapshot bytes and summary.
///
/// # Errors
/// I/O failures, `Sealed`, `Content`.
pub fn verify_file(path: &Path) -> Result<(Vec<u8>, Summary), BackupError> {
    let file = fs::read(path).map_err(io_err(path))?;
    let (inner, summary) = verify_snapshot_bytes(path, &file)?;
    Ok((inner.to_vec(), summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_k3s_and_collisions_take_the_next_second() {
        let dir = tempfile::tempdir().unwrap();
        let a = write_snapshot(dir.path(), "on-demand", "n1", 100, b"a").unwrap();
        let b = write_snapshot(dir.path(), "on-demand", "n1", 100, b"b").unwrap();
        assert_eq!(a.name, "on-demand-n1-100");
        assert_eq!(b.name, "on-demand-n1-101");
        assert_eq!(fs::read(&b.path).unwrap(), b"b");
        assert!(write_snapshot(dir.path(), "../x", "n1", 1, b"").is_err());
    }

    #[test]
    fn prune_keeps_the_newest_of_one_prefix_and_leaves_others_alone() {
        let dir = tempfile::tempdir().unwrap();
        for ts in [5, 1, 4, 2, 3] {
            write_snapshot(dir.path(), "etcd-snapshot", "n1", ts, b"x").unwrap();
        }
        write_snapshot(dir.path(), "on-demand", "n1", 0, b"x").unwrap();
        fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
        let gone = prune(dir.path(), "etcd-snapshot-n1", 2).unwrap();
        let mut gone: Vec<i64> = gone.iter().map(|f| f.created).collect();
        gone.sort();
        assert_eq!(gone, vec![1, 2, 3]);
        let mut left: Vec<String> = list(dir.path())
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "etcd-snapshot-n1-4",
                "etcd-snapshot-n1-5",
                "notes.txt",
                "on-demand-n1-0"
            ]
        );
        assert!(dir.path().join("notes.txt").exists());
        assert!(dir.path().join("on-demand-n1-0").exists());
        assert_eq!(prune(dir.path(), "etcd-snapshot-n1", 0).unwrap().len(), 2);
    }

    #[test]
    fn delete_checks_every_name_before_deleting_any() {
        let dir = tempfile::tempdir().unwrap();
        let a = write_snapshot(dir.path(), "s", "n", 1, b"x").unwrap();
        let err = delete(dir.path(), &[a.name.clone(), "nope".into()]).unwrap_err();
        assert!(matches!(err, BackupError::NotFound(n) if n == "nope"));
        assert!(a.path.exists());
        delete(dir.path(), &[a.name]).unwrap();
        assert!(!a.path.exists());
        assert!(list(&dir.path().join("missing")).unwrap().is_empty());
    }
}
