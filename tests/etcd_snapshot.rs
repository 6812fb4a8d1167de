//! Datastore snapshots end to end with the real binary and etcdctl 3.4: `k3rs etcd-snapshot
//! save|ls|delete|prune`, `etcdctl snapshot save` from k3rs, restore of both into a fresh server
//! with `--cluster-reset --cluster-reset-restore-path`, reset keeping the data, damaged files
//! refused with the data dir untouched, and the etcd API over mutual TLS off loopback.
//!
//! Scheduled snapshots share `take` (write + retention) with these paths and are tested in
//! `src/cli/snapshot_schedule.rs`: a cron schedule fires at most once a minute.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const K3RS: &str = env!("CARGO_BIN_EXE_k3rs");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The flags every server of a data dir uses (ports fixed per dir across restarts).
struct Node {
    data: PathBuf,
    etcd: String,
    api_port: u16,
    args: Vec<String>,
}

impl Node {
    fn new(root: &Path, name: &str, etcd_ip: &str) -> Node {
        let data = root.join(name);
        let etcd = format!("{etcd_ip}:{}", free_port());
        let api_port = free_port();
        let args = vec![
            "server".into(),
            "--disable-agent".into(),
            "--bind-address".into(),
            "127.0.0.1".into(),
            "--node-name".into(),
            "snapnode".into(),
            "--data-dir".into(),
            data.display().to_string(),
            "--https-listen-port".into(),
            api_port.to_string(),
            "--raft-listen-port".into(),
            free_port().to_string(),
            "--etcd-listen-address".into(),
            etcd.clone(),
            "--write-kubeconfig".into(),
            root.join(format!("{name}.kubeconfig"))
                .display()
                .to_string(),
        ];
        Node {
            data,
            etcd,
            api_port,
            args,
        }
    }

    /// A node that joins `leader`'s group (an empty data dir and the leader's token).
    fn joining(root: &Path, name: &str, leader: &Node) -> Node {
        let mut n = Node::new(root, name, "127.0.0.1");
        let token = std::fs::read_to_string(leader.data.join("server/token")).unwrap();
        n.args.extend([
            "--server".into(),
            format!("https://127.0.0.1:{}", leader.api_port),
            "--token".into(),
            token.trim().to_string(),
        ]);
        // Two members on one host need distinct node names.
        let at = n.args.iter().position(|a| a == "--node-name").unwrap() + 1;
        n.args[at] = format!("snapnode-{name}");
        n
    }

    fn k3rs(&self, extra: &[&str]) -> Command {
        let mut c = Command::new(K3RS);
        c.args(&self.args).args(extra);
        c
    }

    /// Runs `k3rs server … extra` to completion (the reset commands exit by themselves).
    fn run(&self, extra: &[&str]) -> Output {
        self.k3rs(extra).output().unwrap()
    }

    fn start(&self) -> Server {
        let log = self.data.with_extension("log");
        let child = self
            .k3rs(&[])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let s = Server { child, log };
        let deadline = Instant::now() + Duration::from_secs(40);
        while !etcdctl(&self.etcd, &[], &["get", "/ready-probe"])
            .status
            .success()
        {
            assert!(
                Instant::now() < deadline,
                "server did not serve etcd: {}",
                s.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        s
    }

    fn snapshot_cmd(&self, args: &[&str]) -> Output {
        Command::new(K3RS)
            .args(["etcd-snapshot", "--data-dir"])
            .arg(&self.data)
            .args([
                "--node-name",
                "snapnode",
                "--etcd-listen-address",
                &self.etcd,
            ])
            .args(args)
            .output()
            .unwrap()
    }

    fn snapshot_ok(&self, args: &[&str]) -> String {
        let out = self.snapshot_cmd(args);
        assert!(
            out.status.success(),
            "etcd-snapshot {args:?}: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    fn snapshots_dir(&self) -> PathBuf {
        self.data.join("server/db/snapshots")
    }
}

struct Server {
    child: Child,
    log: PathBuf,
}

impl Server {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// etcdctl 3.4 against `endpoint` with extra global flags (TLS).
fn etcdctl(endpoint: &str, global: &[&str], args: &[&str]) -> Output {
    Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            endpoint,
            "--dial-timeout",
            "2s",
            "--command-timeout",
            "5s",
        ])
        .args(global)
        .args(args)
        .output()
        .unwrap()
}

fn put_keys(endpoint: &str, n: usize) {
    for i in 0..n {
        let out = etcdctl(
            endpoint,
            &[],
            &["put", &format!("/snap/k{i:03}"), &format!("v{i}")],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
}

fn count_keys(endpoint: &str) -> usize {
    let out = etcdctl(endpoint, &[], &["get", "/snap/", "--prefix", "--keys-only"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).lines().filter(|l| !l.is_empty()).count()
}

fn member_count(endpoint: &str) -> usize {
    let out = etcdctl(endpoint, &[], &["member", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).lines().filter(|l| !l.is_empty()).count()
}

/// Every file under `dir` with its content, to prove a refused restore changed nothing.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn snapshots_from_the_cli_and_from_etcdctl_restore_into_fresh_servers_with_every_key() {
    let root = tempfile::tempdir().unwrap();
    let a = Node::new(root.path(), "a", "127.0.0.1");
    let server = a.start();
    put_keys(&a.etcd, 40);
    let saved = a.snapshot_ok(&["save"]);
    assert!(saved.starts_with("Snapshot on-demand-snapnode-"), "{saved}");
    let listed = a.snapshot_ok(&["ls"]);
    let mut lines = listed.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["Name", "Location", "Size", "Created"]
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert!(row[0].starts_with("on-demand-snapnode-"));
    assert_eq!(
        row[1],
        format!("file://{}/{}", a.snapshots_dir().display(), row[0])
    );
    let cli_file = a.snapshots_dir().join(row[0]);
    let etcdctl_file = root.path().join("etcdctl.db");
    let out = etcdctl(
        &a.etcd,
        &[],
        &["snapshot", "save", etcdctl_file.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // etcdctl can only read bbolt files: it refuses ours instead of misreading it.
    let out = etcdctl(
        &a.etcd,
        &[],
        &["snapshot", "status", etcdctl_file.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("invalid database"));
    drop(server);

    for (name, file) in [("b", &cli_file), ("c", &etcdctl_file)] {
        let node = Node::new(root.path(), name, "127.0.0.1");
        let out = node.run(&[
            "--cluster-reset",
            "--cluster-reset-restore-path",
            file.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains("restart without --cluster-reset"));
        let _s = node.start();
        assert_eq!(count_keys(&node.etcd), 40, "restored from {name}");
        assert_eq!(member_count(&node.etcd), 1);
        // The restored group takes writes at revisions after the snapshot's.
        put_keys(&node.etcd, 41);
        assert_eq!(count_keys(&node.etcd), 41);
        if name == "b" {
            // A fresh server joins the restored group and receives all of its data.
            let joiner = Node::joining(root.path(), "d", &node);
            let _j = joiner.start();
            assert_eq!(member_count(&joiner.etcd), 2);
            let deadline = Instant::now() + Duration::from_secs(20);
            while count_keys(&joiner.etcd) != 41 {
                assert!(Instant::now() < deadline, "the joined member lacks data");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

#[test]
fn ls_delete_and_prune_manage_the_snapshot_directory() {
    let root = tempfile::tempdir().unwrap();
    let a = Node::new(root.path(), "a", "127.0.0.1");
    let dir = a.snapshots_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for ts in 1..=4 {
        std::fs::write(dir.join(format!("on-demand-snapnode-{ts}")), b"x").unwrap();
    }
    std::fs::write(dir.join("etcd-snapshot-snapnode-9"), b"x").unwrap();
    assert!(a.snapshot_ok(&["ls"]).lines().count() == 6);

    let pruned = a.snapshot_ok(&["prune", "--snapshot-retention", "2"]);
    assert_eq!(pruned.lines().count(), 2, "{pruned}");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "etcd-snapshot-snapnode-9",
            "on-demand-snapnode-3",
            "on-demand-snapnode-4"
        ]
    );

    let out = a.snapshot_cmd(&["delete", "on-demand-snapnode-4", "no-such-snapshot"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no-such-snapshot"));
    assert!(dir.join("on-demand-snapnode-4").exists(), "nothing deleted");
    a.snapshot_ok(&["delete", "on-demand-snapnode-4", "etcd-snapshot-snapnode-9"]);
    assert_eq!(a.snapshot_ok(&["ls"]).lines().count(), 2);
}

#[test]
fn damaged_snapshots_are_refused_and_a_plain_reset_keeps_the_data() {
    let root = tempfile::tempdir().unwrap();
    let a = Node::new(root.path(), "a", "127.0.0.1");
    let server = a.start();
    put_keys(&a.etcd, 25);
    a.snapshot_ok(&["save"]);
    put_keys(&a.etcd, 30);
    drop(server);
    let good = std::fs::read_dir(a.snapshots_dir())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let bytes = std::fs::read(&good).unwrap();
    let truncated = root.path().join("truncated");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let flipped = root.path().join("flipped");
    let mut f = bytes.clone();
    f[bytes.len() / 2] ^= 0x04;
    std::fs::write(&flipped, &f).unwrap();

    let db = a.data.join("server/db");
    let before = tree(&db);
    for (file, why) in [
        (&truncated, "snapshot is truncated"),
        (&flipped, "checksum mismatch"),
    ] {
        let out = a.run(&[
            "--cluster-reset",
            "--cluster-reset-restore-path",
            file.to_str().unwrap(),
        ]);
        let err = text(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains(why), "{err}");
        assert!(err.contains("left untouched"), "{err}");
        assert_eq!(tree(&db), before, "a refused restore changed the data dir");
    }
    let out = a.run(&["--cluster-reset-restore-path", good.to_str().unwrap()]);
    assert!(
        !out.status.success(),
        "the restore path needs --cluster-reset"
    );

    // Reset without a file: same data (all 30 keys, past the snapshot), one member, old kept.
    let out = a.run(&["--cluster-reset"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let old: Vec<_> = std::fs::read_dir(&db)
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().into_string().unwrap();
            n.starts_with("old-").then_some(n)
        })
        .collect();
    assert_eq!(old.len(), 1);
    assert!(db.join(&old[0]).join("raft/member.json").exists());
    let _s = a.start();
    assert_eq!(count_keys(&a.etcd), 30);
    assert_eq!(member_count(&a.etcd), 1);
}

#[test]
fn an_invalid_snapshot_schedule_stops_the_server_at_start() {
    let root = tempfile::tempdir().unwrap();
    let a = Node::new(root.path(), "a", "127.0.0.1");
    let out = a.run(&["--etcd-snapshot-schedule-cron", "every noon"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--etcd-snapshot-schedule-cron"));
}

/// This host's first non-loopback IPv4 address, if it has one.
fn host_ip() -> Option<String> {
    let out = Command::new("hostname").arg("-I").output().ok()?;
    text(&out.stdout)
        .split_whitespace()
        .filter_map(|s| s.parse::<std::net::Ipv4Addr>().ok())
        .find(|ip| !ip.is_loopback())
        .map(|ip| ip.to_string())
}

#[test]
fn off_loopback_the_etcd_api_requires_a_client_certificate_of_the_cluster_ca() {
    let Some(ip) = host_ip() else {
        eprintln!("skipped: this host has no non-loopback IPv4 address");
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let a = Node::new(root.path(), "a", &ip);
    let log = a.data.with_extension("log");
    let _child = Server {
        child: a
            .k3rs(&[])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
        log,
    };
    let etcd_tls = a.data.join("server/tls/etcd");
    let flag = |f: &str| etcd_tls.join(f).display().to_string();
    let (ca, cert, key) = (
        flag("server-ca.crt"),
        flag("client.crt"),
        flag("client.key"),
    );
    let tls = [
        "--cacert",
        ca.as_str(),
        "--cert",
        cert.as_str(),
        "--key",
        key.as_str(),
    ];
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let out = etcdctl(&a.etcd, &tls, &["put", "/snap/tls", "yes"]);
        if out.status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "{}", text(&out.stderr));
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = etcdctl(&a.etcd, &tls, &["get", "/snap/tls", "--print-value-only"]);
    assert_eq!(text(&out.stdout).trim(), "yes");

    // No client certificate, plain text, or a certificate of the same CA for another role.
    let out = etcdctl(&a.etcd, &["--cacert", ca.as_str()], &["get", "/snap/tls"]);
    assert!(
        !out.status.success(),
        "a client without a certificate got in"
    );
    let out = etcdctl(&a.etcd, &[], &["get", "/snap/tls"]);
    assert!(!out.status.success(), "a plain-text client got in");
    let tls_dir = a.data.join("server/tls");
    let admin = [
        "--cacert".to_string(),
        ca.clone(),
        "--cert".into(),
        tls_dir.join("client-admin.crt").display().to_string(),
        "--key".into(),
        tls_dir.join("client-admin.key").display().to_string(),
    ];
    let admin: Vec<&str> = admin.iter().map(String::as_str).collect();
    let out = etcdctl(&a.etcd, &admin, &["get", "/snap/tls"]);
    assert!(
        !out.status.success(),
        "the kube admin certificate opened the datastore"
    );

    // `k3rs etcd-snapshot save` uses the operator pair from the data dir.
    let saved = a.snapshot_ok(&["save"]);
    assert!(saved.contains("saved to"), "{saved}");
}
