//! Container logs as `kubectl logs` shows them: finds the CRI log file of a container
//! (current or previous attempt) under `/var/log/pods`, strips the CRI framing (joining
//! partial lines), and applies `tailLines`, `timestamps`, `sinceSeconds` and `limitBytes`.
//!
//! Owns: reading the CRI log format. May call: the filesystem only.

use std::path::{Path, PathBuf};

/// `kubectl logs` options the agent honours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub tail_lines: Option<usize>,
    pub timestamps: bool,
    pub previous: bool,
    pub since_seconds: Option<i64>,
    pub limit_bytes: Option<usize>,
}

/// Errors reading logs.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("no logs for container {container} of pod {namespace}/{pod}{}", if *.previous { " (previous)" } else { "" })]
    NotFound {
        namespace: String,
        pod: String,
        container: String,
        previous: bool,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The log file of `container` in the newest pod directory `<ns>_<pod>_<uid>`: the highest
/// attempt, or the one before it with `previous`.
pub fn log_file(
    log_dir: &Path,
    ns: &str,
    pod: &str,
    container: &str,
    previous: bool,
) -> Option<PathBuf> {
    let prefix = format!("{ns}_{pod}_");
    let pod_dir = std::fs::read_dir(log_dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())?
        .path();
    let mut attempts: Vec<(u64, PathBuf)> = std::fs::read_dir(pod_dir.join(container))
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_suffix(".log")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    attempts.sort();
    let skip = usize::from(previous);
    attempts.into_iter().rev().nth(skip).map(|(_, p)| p)
}

/// Turns CRI records into plain log text.
pub fn render(content: &str, opts: &LogOptions, now: jiff::Timestamp) -> String {
    let since = opts
        .since_seconds
        .map(|s| now - jiff::SignedDuration::from_secs(s));
    let mut lines: Vec<String> = Vec::new();
    let mut partial = String::new();
    for record in content.lines() {
        let mut parts = record.splitn(4, ' ');
        let (Some(ts), Some(_stream), Some(tag), msg) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next().unwrap_or(""),
        ) else {
            continue;
        };
        partial.push_str(msg);
        if tag == "P" {
            continue;
        }
        let msg = std::mem::take(&mut partial);
        if let (Some(since), Ok(t)) = (since, ts.parse::<jiff::Timestamp>())
            && t < since
        {
            continue;
        }
        lines.push(if opts.timestamps {
            format!("{ts} {msg}\n")
        } else {
            format!("{msg}\n")
        });
    }
    let start = opts
        .tail_lines
        .map(|n| lines.len().saturating_sub(n))
        .unwrap_or(0);
    let mut out: String = lines[start..].concat();
    if let Some(limit) = opts.limit_bytes
        && out.len() > limit
    {
        let mut cut = limit;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

/// CRI records as the raw output they came from: `(stream, bytes)`, newline restored on
/// full records (attach shows output as written, without timestamps).
pub fn raw_records(content: &str) -> Vec<(String, Vec<u8>)> {
    content
        .lines()
        .filter_map(|record| {
            let mut parts = record.splitn(4, ' ');
            let (_ts, stream, tag) = (parts.next()?, parts.next()?, parts.next()?);
            let mut data = parts.next().unwrap_or("").as_bytes().to_vec();
            if tag != "P" {
                data.push(b'\n');
            }
            Some((stream.to_string(), data))
        })
        .collect()
}

/// The logs of a container, rendered.
pub fn read(
    log_dir: &Path,
    ns: &str,
    pod: &str,
    container: &str,
    opts: &LogOptions,
) -> Result<String, LogError> {
    let path =
        log_file(log_dir, ns, pod, container, opts.previous).ok_or_else(|| LogError::NotFound {
            namespace: ns.into(),
            pod: pod.into(),
            container: container.into(),
            previous: opts.previous,
        })?;
    let content = std::fs::read(&path).map_err(|source| LogError::Io { path, source })?;
    Ok(render(
        &String::from_utf8_lossy(&content),
        opts,
        jiff::Timestamp::now(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "2026-11-25T17:00:00.000000000Z stdout F one\n\
                       2026-11-25T17:00:01.000000000Z stderr P tw\n\
                       2026-11-25T17:00:01.100000000Z stderr F o\n\
                       2026-11-25T17:00:02.000000000Z stdout F three\n";

    fn now() -> jiff::Timestamp {
        "2026-11-25T17:00:03Z".parse().unwrap()
    }

    #[test]
    fn cri_records_become_plain_lines_with_partials_joined() {
        assert_eq!(
            render(LOG, &LogOptions::default(), now()),
            "one\ntwo\nthree\n"
        );
        let tail = LogOptions {
            tail_lines: Some(1),
            timestamps: true,
            ..Default::default()
        };
        assert_eq!(
            render(LOG, &tail, now()),
            "2026-11-25T17:00:02.000000000Z three\n"
        );
        let since = LogOptions {
            since_seconds: Some(2),
            ..Default::default()
        };
        assert_eq!(render(LOG, &since, now()), "two\nthree\n");
        let limit = LogOptions {
            limit_bytes: Some(5),
            ..Default::default()
        };
        assert_eq!(render(LOG, &limit, now()), "one\nt");
    }

    #[test]
    fn raw_records_keep_streams_and_restore_newlines() {
        let r = raw_records(LOG);
        assert_eq!(r[1], ("stderr".to_string(), b"tw".to_vec()));
        assert_eq!(r[2], ("stderr".to_string(), b"o\n".to_vec()));
        assert_eq!(r[3], ("stdout".to_string(), b"three\n".to_vec()));
    }

    #[test]
    fn previous_picks_the_attempt_before_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("default_web_u1/app");
        std::fs::create_dir_all(&c).unwrap();
        for n in [0, 1, 2] {
            std::fs::write(
                c.join(format!("{n}.log")),
                format!("2026-11-25T17:00:00Z stdout F run{n}\n"),
            )
            .unwrap();
        }
        let o = LogOptions::default();
        assert_eq!(
            read(dir.path(), "default", "web", "app", &o).unwrap(),
            "run2\n"
        );
        let p = LogOptions {
            previous: true,
            ..Default::default()
        };
        assert_eq!(
            read(dir.path(), "default", "web", "app", &p).unwrap(),
            "run1\n"
        );
        assert!(matches!(
            read(dir.path(), "default", "web", "nope", &o),
            Err(LogError::NotFound { .. })
        ));
    }
}
