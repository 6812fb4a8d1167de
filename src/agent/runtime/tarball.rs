//! A minimal, read-only index of an uncompressed tar file (ustar, GNU long names, PAX paths,
//! symlinks), enough to find the blobs of an image archive without unpacking it.
//!
//! Owns: parsing tar headers. May call: the filesystem only.

use super::error::RuntimeError;
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Where a regular file's bytes live inside the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub offset: u64,
    pub size: u64,
}

/// Regular files and symlinks of one tar archive, by normalised path.
#[derive(Debug, Default)]
pub struct TarIndex {
    pub path: PathBuf,
    files: HashMap<String, Entry>,
    links: HashMap<String, String>,
}

fn bad(path: &Path, reason: impl Into<String>) -> RuntimeError {
    RuntimeError::BadImage {
        what: path.display().to_string(),
        reason: reason.into(),
    }
}

/// `./a//b/` -> `a/b`.
fn normalise(name: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

fn field_str(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn parse_size(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        // GNU base-256 encoding for sizes >= 8 GiB.
        let mut n: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            n = n.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(n);
    }
    let s = field_str(field);
    let s = s.trim_matches(|c: char| c == ' ' || c == '\0');
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

/// Extracts `path=` from a PAX extended header body.
fn pax_path(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    text.lines().find_map(|line| {
        let (_, kv) = line.split_once(' ')?;
        kv.strip_prefix("path=").map(str::to_string)
    })
}

impl TarIndex {
    /// Reads every header of `path` (seeking over file bodies).
    pub fn open(path: &Path) -> Result<TarIndex, RuntimeError> {
        let mut file = std::fs::File::open(path).map_err(|e| RuntimeError::io(path, e))?;
        let len = file
            .metadata()
            .map_err(|e| RuntimeError::io(path, e))?
            .len();
        let mut index = TarIndex {
            path: path.to_path_buf(),
            ..Default::default()
        };
        let mut pos = 0u64;
        let mut long_name: Option<String> = None;
        let mut header = [0u8; 512];
        while pos + 512 <= len {
            file.seek(SeekFrom::Start(pos))
                .map_err(|e| RuntimeError::io(path, e))?;
            file.read_exact(&mut header)
                .map_err(|e| RuntimeError::io(path, e))?;
            if header.iter().all(|b| *b == 0) {
                break;
            }
            let size = parse_size(&header[124..136]).ok_or_else(|| bad(path, "bad size field"))?;
            let body = pos + 512;
            let next = body + size.div_ceil(512) * 512;
            if body + size > len {
                return Err(bad(path, "truncated archive"));
            }
            let kind = header[156];
            let mut name = field_str(&header[0..100]);
            if &header[257..262] == b"ustar" {
                let prefix = field_str(&header[345..500]);
                if !prefix.is_empty() {
                    name = format!("{prefix}/{name}");
                }
            }
            if let Some(long) = long_name.take() {
                name = long;
            }
            match kind {
                b'L' | b'x' => {
                    if size > 1 << 20 {
                        return Err(bad(path, "oversized extended header"));
                    }
                    let mut buf = vec![0u8; size as usize];
                    file.read_exact(&mut buf)
                        .map_err(|e| RuntimeError::io(path, e))?;
                    long_name = if kind == b'L' {
                        Some(field_str(&buf))
                    } else {
                        pax_path(&buf)
                    };
                }
                b'0' | 0 | b'7' => {
                    index
                        .files
                        .insert(normalise(&name), Entry { offset: body, size });
                }
                b'1' | b'2' => {
                    let target = field_str(&header[157..257]);
                    let name = normalise(&name);
                    let resolved = if kind == b'1' || target.starts_with('/') {
                        normalise(&target)
                    } else {
                        let dir = name.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                        normalise(&format!("{dir}/{target}"))
                    };
                    index.links.insert(name, resolved);
                }
                _ => {}
            }
            pos = next;
        }
        Ok(index)
    }

    /// Looks a file up by path, following (a few levels of) links.
    pub fn get(&self, name: &str) -> Option<Entry> {
        let mut name = normalise(name);
        for _ in 0..8 {
            if let Some(entry) = self.files.get(&name) {
                return Some(*entry);
            }
            name = self.links.get(&name)?.clone();
        }
        None
    }

    /// Reads a (small) file fully: manifests, indexes, configs.
    pub fn read(&self, name: &str) -> Result<Vec<u8>, RuntimeError> {
        let entry = self
            .get(name)
            .ok_or_else(|| bad(&self.path, format!("{name} missing from archive")))?;
        if entry.size > 64 << 20 {
            return Err(bad(&self.path, format!("{name} is too large for metadata")));
        }
        let mut file =
            std::fs::File::open(&self.path).map_err(|e| RuntimeError::io(&self.path, e))?;
        file.seek(SeekFrom::Start(entry.offset))
            .map_err(|e| RuntimeError::io(&self.path, e))?;
        let mut buf = vec![0u8; entry.size as usize];
        file.read_exact(&mut buf)
            .map_err(|e| RuntimeError::io(&self.path, e))?;
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, kind: u8, size: usize, link: &str) -> [u8; 512] {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let s = format!("{size:011o}");
        h[124..135].copy_from_slice(s.as_bytes());
        h[156] = kind;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..262].copy_from_slice(b"ustar");
        h
    }

    #[test]
    fn index_finds_files_and_follows_relative_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar");
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&header("./blobs/sha256/abc", b'0', 5, ""));
        let mut body = [0u8; 512];
        body[..5].copy_from_slice(b"hello");
        bytes.extend_from_slice(&body);
        bytes.extend_from_slice(&header("x/layer.tar", b'2', 0, "../blobs/sha256/abc"));
        bytes.extend_from_slice(&[0u8; 1024]);
        std::fs::write(&path, &bytes).unwrap();
        let index = TarIndex::open(&path).unwrap();
        assert_eq!(index.read("blobs/sha256/abc").unwrap(), b"hello");
        assert_eq!(index.read("x/layer.tar").unwrap(), b"hello");
        assert!(index.get("missing").is_none());
    }

    #[test]
    fn truncated_archive_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.tar");
        std::fs::write(&path, header("f", b'0', 4096, "")).unwrap();
        assert!(TarIndex::open(&path).is_err());
    }
}
