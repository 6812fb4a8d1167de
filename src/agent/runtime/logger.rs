//! The container log driver: containerd's shim runs `k3rs container-logger <path>` with the
//! container's stdout on fd 3, stderr on fd 4 and a readiness pipe on fd 5 ("binary" logging
//! URI), and we write the CRI log format the kubelet uses:
//! `2026-11-25T17:00:00.000000000Z stdout F line`. Living under the shim, the logger
//! survives agent and containerd restarts.
//!
//! Owns: the CRI log line format. May call: the filesystem only.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Lines longer than this are split into partial (`P`) records, like the kubelet does.
const MAX_LINE: usize = 16 * 1024;

/// Formats one CRI log record. `partial` marks a line split because it was too long.
pub fn format_record(ts: jiff::Timestamp, stream: &str, partial: bool, line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len() + 48);
    let secs = ts.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    out.extend_from_slice(
        format!(
            "{secs}.{:09}Z {stream} {} ",
            ts.subsec_nanosecond(),
            if partial { 'P' } else { 'F' }
        )
        .as_bytes(),
    );
    out.extend_from_slice(line);
    out.push(b'\n');
    out
}

/// Copies `input` line by line into `sink` as CRI records until EOF.
pub fn copy_stream(
    input: impl std::io::Read,
    stream: &str,
    sink: &Mutex<std::fs::File>,
) -> std::io::Result<()> {
    let mut reader = BufReader::with_capacity(64 * 1024, input);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = std::io::Read::take(&mut reader, MAX_LINE as u64).read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(());
        }
        let full = line.last() == Some(&b'\n');
        if full {
            line.pop();
        }
        let record = format_record(
            jiff::Timestamp::now(),
            stream,
            !full && n == MAX_LINE,
            &line,
        );
        let mut f = sink
            .lock()
            .map_err(|_| std::io::Error::other("log sink poisoned"))?;
        f.write_all(&record)?;
    }
}

/// Entry point of `k3rs container-logger <path>` (run by the containerd shim).
pub fn run(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let sink = Arc::new(Mutex::new(file));
    // Re-open the inherited descriptors through /proc (no unsafe fd adoption needed).
    let stdout = std::fs::File::open("/proc/self/fd/3")?;
    let stderr = std::fs::File::open("/proc/self/fd/4")?;
    // One byte on the readiness pipe tells the shim we are up.
    if let Ok(mut ready) = std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/self/fd/5")
    {
        let _ = ready.write_all(b"1");
    }
    let _ = nix::unistd::close(5);
    let err_sink = sink.clone();
    let t = std::thread::spawn(move || copy_stream(stderr, "stderr", &err_sink));
    let r = copy_stream(stdout, "stdout", &sink);
    let r2 = t
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("stderr copier panicked")));
    r.and(r2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_use_the_cri_format_with_nanoseconds() {
        let ts: jiff::Timestamp = "2026-11-25T17:00:00.5Z".parse().unwrap();
        let r = format_record(ts, "stdout", false, b"hello");
        assert_eq!(r, b"2026-11-25T17:00:00.500000000Z stdout F hello\n");
    }

    #[test]
    fn long_lines_are_split_into_partial_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let sink = Mutex::new(std::fs::File::create(&path).unwrap());
        let mut input = vec![b'a'; MAX_LINE + 10];
        input.push(b'\n');
        input.extend_from_slice(b"short\n");
        copy_stream(&input[..], "stderr", &sink).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].contains(" stderr P "));
        assert!(lines[1].ends_with(" stderr F aaaaaaaaaa"));
        assert!(lines[2].ends_with(" stderr F short"));
    }
}
