//! The container log driver: containerd's shim runs `k3rs container-logger <path>` with the
//! container's stdout on fd 3, stderr on fd 4 and a readiness pipe on fd 5 ("binary" logging
//! URI), and we write the CRI log format the kubelet uses:
//! `2026-11-25T17:00:00.000000000Z stdout F line`. Living under the shim, the logger
//! survives agent and containerd restarts.
//!
//! Rotation is done here, by the only writer: past `max-size` the live file is renamed
//! with the kubelet's suffix (`0.log.20261125-170000`) and a new one started; at most
//! `max-files` files are kept, the live one included.
//!
//! containerd passes the URI's query as `key value` argument pairs in no fixed order, so
//! [`from_args`] reads them as a map.
//!
//! Owns: the CRI log line format, log rotation. May call: the filesystem only.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Arguments of the log driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggerArgs {
    pub path: PathBuf,
    /// Rotate past this many bytes; 0 never rotates.
    pub max_size: u64,
    /// Files kept, the live one included (at least 2 when rotating).
    pub max_files: u32,
}

/// The log driver's arguments from `key value` pairs (`container-logger <path>` required,
/// `max-size <bytes>` and `max-files <n>` optional), or `None` when this is not a logger
/// invocation.
pub fn from_args(args: &[String]) -> Option<LoggerArgs> {
    let mut out = LoggerArgs {
        path: PathBuf::new(),
        max_size: 0,
        max_files: 5,
    };
    let mut found = false;
    for pair in args.chunks(2) {
        let [k, v] = pair else { return None };
        match k.as_str() {
            "container-logger" => {
                out.path = PathBuf::from(v);
                found = true;
            }
            "max-size" => out.max_size = v.parse().ok()?,
            "max-files" => out.max_files = v.parse().ok()?,
            _ => return None,
        }
    }
    found.then_some(out)
}

/// A CRI log file that rotates itself by size.
pub struct RotatingWriter {
    path: PathBuf,
    file: std::fs::File,
    size: u64,
    max_size: u64,
    max_files: u32,
}

impl RotatingWriter {
    /// Opens (appends to) `path`.
    ///
    /// # Errors
    /// When the file cannot be opened.
    pub fn open(path: &Path, max_size: u64, max_files: u32) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingWriter {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_files: max_files.max(2),
        })
    }

    /// Appends one record, rotating first when it would pass the size limit.
    ///
    /// # Errors
    /// On write or rotation errors.
    pub fn write_record(&mut self, record: &[u8]) -> std::io::Result<()> {
        if self.max_size > 0 && self.size > 0 && self.size + record.len() as u64 > self.max_size {
            self.rotate()?;
        }
        self.file.write_all(record)?;
        self.size += record.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let stamp = jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S").to_string();
        let base = self.path.display().to_string();
        // Several rotations within a second: number them after the highest one left (the
        // unnumbered first counts as 0), so names keep sorting oldest first after pruning.
        let first = format!("{base}.{stamp}");
        let highest = self
            .rotated_files()?
            .iter()
            .filter_map(|p| {
                let name = p.display().to_string();
                let rest = name.strip_prefix(&first)?;
                if rest.is_empty() {
                    Some(0)
                } else {
                    rest.strip_prefix('.')?.parse::<u32>().ok()
                }
            })
            .max();
        let rotated = match highest {
            None => PathBuf::from(first),
            Some(n) => PathBuf::from(format!("{first}.{:03}", n + 1)),
        };
        std::fs::rename(&self.path, &rotated)?;
        *self = RotatingWriter::open(&self.path, self.max_size, self.max_files)?;
        self.prune()
    }

    /// Rotated files of this log, oldest first.
    fn rotated_files(&self) -> std::io::Result<Vec<PathBuf>> {
        let (Some(dir), Some(name)) = (self.path.parent(), self.path.file_name()) else {
            return Ok(Vec::new());
        };
        let prefix = format!("{}.", name.to_string_lossy());
        let mut rotated: Vec<PathBuf> = std::fs::read_dir(dir)?
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path())
            .collect();
        rotated.sort();
        Ok(rotated)
    }

    /// Removes the oldest rotated files beyond `max_files - 1`.
    fn prune(&self) -> std::io::Result<()> {
        let rotated = self.rotated_files()?;
        let keep = self.max_files.saturating_sub(1) as usize;
        let excess = rotated.len().saturating_sub(keep);
        for old in &rotated[..excess] {
            let _ = std::fs::remove_file(old);
        }
        Ok(())
    }
}

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
    sink: &Mutex<RotatingWriter>,
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
        f.write_record(&record)?;
    }
}

/// Entry point of `k3rs container-logger <path>` (run by the containerd shim).
pub fn run(args: &LoggerArgs) -> std::io::Result<()> {
    if let Some(dir) = args.path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = RotatingWriter::open(&args.path, args.max_size, args.max_files)?;
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
        let sink = Mutex::new(RotatingWriter::open(&path, 0, 5).unwrap());
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

    #[test]
    fn files_rotate_by_size_and_only_max_files_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut w = RotatingWriter::open(&path, 100, 3).unwrap();
        for i in 0..30 {
            w.write_record(format!("record {i:02} padding padding\n").as_bytes())
                .unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 3, "{names:?}");
        assert_eq!(names[0], "0.log");
        assert!(names[1].starts_with("0.log.20"), "{names:?}");
        let live = std::fs::read_to_string(&path).unwrap();
        assert!(live.len() <= 100 && live.ends_with("record 29 padding padding\n"));
        // The newest rotated file holds the records just before the live file's.
        let prev = std::fs::read_to_string(dir.path().join(&names[2])).unwrap();
        let first_live: u32 = live[7..9].parse().unwrap();
        assert!(
            prev.contains(&format!("record {:02} ", first_live - 1)),
            "{prev}"
        );
    }

    #[test]
    fn logger_arguments_come_in_any_order() {
        let args = |v: &[&str]| from_args(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let a = args(&[
            "max-files",
            "3",
            "container-logger",
            "/l/0.log",
            "max-size",
            "1024",
        ]);
        assert_eq!(
            a,
            Some(LoggerArgs {
                path: "/l/0.log".into(),
                max_size: 1024,
                max_files: 3
            })
        );
        assert_eq!(args(&["container-logger", "/l/0.log"]).unwrap().max_size, 0);
        assert_eq!(args(&["server", "--debug"]), None);
    }
}
