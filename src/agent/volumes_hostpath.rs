//! The `type` check of hostPath volumes (and of hostPath/local PersistentVolumes), with
//! upstream's semantics and messages: `DirectoryOrCreate`/`FileOrCreate` create what is
//! missing (0755 directory, 0644 empty file), the other types must already be there as that
//! kind of file, and an empty type checks nothing.
//!
//! Owns: nothing but the check. May call: the local filesystem.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::PathBuf;

/// Checks (and for the `…OrCreate` types, creates) `path` as hostPath type `kind`.
///
/// # Errors
/// When the path is not of the type asked for, or cannot be created.
pub fn check(path: &str, kind: Option<&str>) -> Result<PathBuf, String> {
    let p = PathBuf::from(path);
    let meta = std::fs::metadata(&p).ok();
    let fail = |what: &str| Err(format!("hostPath type check failed: {path} is not {what}"));
    match kind.unwrap_or("") {
        "" => {}
        "DirectoryOrCreate" => match meta {
            None => {
                std::fs::create_dir_all(&p).map_err(|e| format!("hostPath {path}: {e}"))?;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
                    .map_err(|e| format!("hostPath {path}: {e}"))?;
            }
            Some(m) if !m.is_dir() => return fail("a directory"),
            Some(_) => {}
        },
        "Directory" if !meta.as_ref().is_some_and(|m| m.is_dir()) => return fail("a directory"),
        "FileOrCreate" => match meta {
            None => {
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| format!("hostPath {path}: {e}"))?;
                }
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&p)
                    .map_err(|e| format!("hostPath {path}: {e}"))?;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644))
                    .map_err(|e| format!("hostPath {path}: {e}"))?;
            }
            Some(m) if !m.is_file() => return fail("a file"),
            Some(_) => {}
        },
        "File" if !meta.as_ref().is_some_and(|m| m.is_file()) => return fail("a file"),
        "Socket" if !meta.as_ref().is_some_and(|m| m.file_type().is_socket()) => {
            return fail("a socket file");
        }
        "CharDevice"
            if !meta
                .as_ref()
                .is_some_and(|m| m.file_type().is_char_device()) =>
        {
            return fail("a character device");
        }
        "BlockDevice"
            if !meta
                .as_ref()
                .is_some_and(|m| m.file_type().is_block_device()) =>
        {
            return fail("a block device");
        }
        "Directory" | "File" | "Socket" | "CharDevice" | "BlockDevice" => {}
        other => return Err(format!("hostPath {path}: unknown type {other:?}")),
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn or_create_types_create_and_strict_types_check() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("a/b");
        let ds = d.to_str().unwrap();
        assert!(
            check(ds, Some("Directory"))
                .unwrap_err()
                .contains("is not a directory")
        );
        check(ds, Some("DirectoryOrCreate")).unwrap();
        assert!(d.is_dir());
        check(ds, Some("Directory")).unwrap();
        assert!(
            check(ds, Some("File"))
                .unwrap_err()
                .contains("is not a file")
        );
        let f = dir.path().join("c/f.txt");
        let fs = f.to_str().unwrap();
        check(fs, Some("FileOrCreate")).unwrap();
        assert!(f.is_file());
        check(fs, Some("File")).unwrap();
        assert!(check(fs, Some("DirectoryOrCreate")).is_err());
        assert!(check(fs, Some("Socket")).unwrap_err().contains("socket"));
        // An empty type checks nothing, not even existence.
        check("/nonexistent/k3rs", None).unwrap();
    }
}
