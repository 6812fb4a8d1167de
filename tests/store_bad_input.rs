//! Bad input to the real binary's store: a torn WAL tail (recovered), corruption in the middle
//! of the WAL (start refused with a clear message), garbage on the raft port (ignored), and a
//! full disk (writes refused, never acknowledged and lost).

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::process::Server;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};

fn config_map(name: &str, value: &str) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(name.to_string());
    cm.data = Some([("v".to_string(), value.to_string())].into());
    cm
}

async fn create_n(client: &kube::Client, prefix: &str, n: usize) -> Vec<String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut names = Vec::new();
    for i in 0..n {
        let name = format!("{prefix}-{i}");
        api.create(&PostParams::default(), &config_map(&name, &name))
            .await
            .unwrap();
        names.push(name);
    }
    names
}

async fn names(client: &kube::Client) -> Vec<String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|cm| cm.metadata.name)
        .collect()
}

/// WAL segments of a server's data dir, oldest first.
fn wal_segments(data: &Path) -> Vec<PathBuf> {
    let dir = data.join("data/server/db/raft/wal");
    let mut segs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    segs.sort();
    assert!(!segs.is_empty(), "no wal segment in {}", dir.display());
    segs
}

/// Run the server on its data dir, expecting it to exit by itself; returns its stderr.
fn start_expecting_exit(server: &Server) -> String {
    let mut child = server
        .command()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success(), "server exited successfully");
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            return err;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("server kept running on a corrupt WAL");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_wal_tail_is_recovered_and_mid_file_corruption_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::new(dir.path());
    let client = server.start().await;
    let acked = create_n(&client, "torn", 10).await;
    server.sigkill();

    // A crash in the middle of writing a new frame: a header promising more than is there.
    let last = wal_segments(dir.path()).pop().unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&last)
        .unwrap();
    f.write_all(&[0x40, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3])
        .unwrap();
    drop(f);
    let client = server.start().await;
    let present = names(&client).await;
    for n in &acked {
        assert!(present.contains(n), "{n} lost after torn-tail recovery");
    }
    assert!(
        server.log().contains("torn tail"),
        "no warning about the torn tail: {}",
        server.log()
    );
    // And it keeps accepting writes after the truncation point.
    create_n(&client, "after", 3).await;
    server.sigkill();

    // Flip a byte inside the first frame (valid frames follow): real corruption.
    let first = wal_segments(dir.path()).remove(0);
    let mut data = std::fs::read(&first).unwrap();
    assert!(data.len() > 64, "wal segment too small: {}", data.len());
    data[8 + 8 + 3] ^= 0xff;
    std::fs::write(&first, &data).unwrap();
    let err = start_expecting_exit(&server);
    eprintln!("refused: {}", err.lines().last().unwrap_or_default());
    assert!(
        err.contains("corrupt") && err.contains("valid data follows"),
        "unclear error: {err}"
    );
    // The damaged file is left for inspection.
    assert_eq!(std::fs::read(&first).unwrap(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_raft_port_does_not_disturb_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::new(dir.path());
    let client = server.start().await;
    let addr = format!("127.0.0.1:{}", server.raft);
    let payloads: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        vec![0xff; 4096],
        // A frame header announcing 4 GiB.
        vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0],
        (0..=255u8).cycle().take(10_000).collect(),
        Vec::new(),
    ];
    for p in &payloads {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        let _ = s.write_all(p);
        // Half-open connections left dangling must not block anything either.
        std::mem::forget(s);
    }
    let acked = create_n(&client, "garbage", 5).await;
    let present = names(&client).await;
    for n in &acked {
        assert!(present.contains(n));
    }
    assert!(server.child.as_mut().unwrap().try_wait().unwrap().is_none());
}

struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_instead_of_acknowledging_them() {
    let root = tempfile::tempdir().unwrap();
    // Only the data dir is on the tmpfs; the log and kubeconfig stay writable.
    let srv = root.path().join("srv");
    let mnt = srv.join("data");
    std::fs::create_dir_all(&mnt).unwrap();
    if let Err(e) = nix::mount::mount(
        Some("tmpfs"),
        &mnt,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=16m"),
    ) {
        panic!("cannot mount a tmpfs (this test needs root): {e}");
    }
    let guard = Tmpfs(mnt.clone());
    let mut server = Server::new(&srv);
    let client = server.start().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let big = "x".repeat(256 << 10);
    let mut acked = BTreeMap::new();
    let mut failed_at = None;
    let t0 = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(40);
    for i in 0.. {
        assert!(Instant::now() < deadline, "the disk never filled up");
        let name = format!("big-{i}");
        let res = tokio::time::timeout(
            Duration::from_secs(5),
            api.create(&PostParams::default(), &config_map(&name, &big)),
        )
        .await;
        match res {
            Ok(Ok(_)) => {
                acked.insert(name, i);
            }
            _ => {
                failed_at = Some(i);
                break;
            }
        }
    }
    let failed_at = failed_at.unwrap();
    eprintln!(
        "disk full after {} writes, at {:?}",
        acked.len(),
        t0.elapsed()
    );
    assert!(!acked.is_empty(), "nothing fit on the disk");
    // Once the disk is full, no write is acknowledged any more (the store stops rather than
    // guessing what reached the disk).
    // (The server answers 503 at once; the kube client keeps retrying those, hence timeouts.)
    for j in 1..2 {
        let name = format!("late-{j}");
        let res = tokio::time::timeout(
            Duration::from_secs(3),
            api.create(&PostParams::default(), &config_map(&name, "small")),
        )
        .await;
        assert!(
            !matches!(res, Ok(Ok(_))),
            "a write was acknowledged after ENOSPC (failed at {failed_at})"
        );
    }
    eprintln!("late writes refused at {:?}", t0.elapsed());
    let log = server.log();
    assert!(
        log.contains("member stopped") && log.to_lowercase().contains("no space left"),
        "the server does not say why: {log}"
    );
    server.sigkill();

    // Move the data to a roomy disk: every acknowledged write is there.
    let moved = root.path().join("moved");
    std::fs::create_dir(&moved).unwrap();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(&mnt)
        .arg(&moved)
        .status()
        .unwrap();
    assert!(status.success());
    drop(guard);
    let mut server2 = Server::new(&moved);
    server2.https = server.https;
    server2.raft = server.raft;
    server2.etcd = server.etcd;
    let client = server2.start().await;
    let present = names(&client).await;
    for n in acked.keys() {
        assert!(
            present.contains(n),
            "{n} acknowledged before ENOSPC but lost"
        );
    }
    assert!(!present.iter().any(|n| n.starts_with("late-")));
}
