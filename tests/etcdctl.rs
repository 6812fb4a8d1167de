//! etcdctl 3.4 end to end against the k3rs etcd API, and the same commands against Debian's
//! real etcd 3.4 in the same run: the normalised transcripts must be identical.
//!
//! The comparison needs a store nobody else writes to (revisions must match), so its k3rs
//! side is the real store behind a one-member raft group serving the etcd API in-process,
//! named and addressed like a default etcd member. The `k3rs server` binary (agent disabled)
//! is driven by the other tests: there the etcd API shows the Kubernetes objects.

use k3rs::store::StoreOptions;
use k3rs::store::raft::{self, Bootstrap, RaftConfig};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running etcd API server (k3rs or etcd) and its scratch directory.
struct Endpoint {
    addr: String,
    /// The member's peer URL when it is not etcd's default `http://localhost:2380`.
    peer: Option<String>,
    dir: tempfile::TempDir,
    kind: Kind,
}

enum Kind {
    Process(Child),
    InProcess {
        _rt: tokio::runtime::Runtime,
        shutdown: CancellationToken,
    },
}

impl Endpoint {
    /// Stops the server and hands over its directory (data included).
    fn stop(mut self) -> tempfile::TempDir {
        self.kill();
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    fn kill(&mut self) {
        match &mut self.kind {
            Kind::Process(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Kind::InProcess { shutdown, .. } => shutdown.cancel(),
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real store (MVCC on sled behind a one-member raft group) serving the etcd API
/// in-process, named and addressed like a default etcd member.
fn start_inproc() -> Endpoint {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (sm, core) =
        k3rs::store::open_state(&dir.path().join("db"), &StoreOptions::default()).unwrap();
    let mut cfg = RaftConfig::new(
        dir.path().join("raft"),
        "default",
        format!("127.0.0.1:{}", free_port()),
        "http://localhost:2380",
        Bootstrap::ClusterInit,
    );
    cfg.client_urls = vec![format!("http://{addr}")];
    let store = rt.block_on(async {
        let node = raft::start(cfg, sm).await.unwrap();
        core.into_store(Arc::new(node))
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.status().leader_id == 0 {
        assert!(Instant::now() < deadline, "the raft member never led");
        std::thread::sleep(Duration::from_millis(20));
    }
    let shutdown = CancellationToken::new();
    rt.spawn(k3rs::store::etcd::serve_listener(
        Arc::new(store),
        listener,
        shutdown.clone(),
    ));
    Endpoint {
        addr,
        peer: None,
        dir,
        kind: Kind::InProcess { _rt: rt, shutdown },
    }
}

/// `k3rs server` (no agent) with its etcd API on a free port, named like a default etcd.
fn start_k3rs() -> Endpoint {
    start_k3rs_in(tempfile::tempdir().unwrap())
}

fn start_k3rs_in(dir: tempfile::TempDir) -> Endpoint {
    let addr = format!("127.0.0.1:{}", free_port());
    let raft_port = free_port();
    let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_k3rs"))
        .args(["server", "--disable-agent", "--bind-address", "127.0.0.1"])
        .args(["--node-name", "default"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg(format!("--https-listen-port={}", free_port()))
        .arg(format!("--etcd-listen-address={addr}"))
        .arg(format!("--raft-listen-port={raft_port}"))
        .arg("--write-kubeconfig")
        .arg(dir.path().join("kubeconfig.yaml"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let ep = Endpoint {
        addr,
        peer: Some(format!("http://127.0.0.1:{raft_port}")),
        dir,
        kind: Kind::Process(child),
    };
    wait_healthy(&ep);
    ep
}

fn wait_healthy(ep: &Endpoint) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if ctl(ep, &["endpoint", "health"], None).0 == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(ep.dir.path().join("server.log")).unwrap_or_default();
    panic!("{} did not become healthy: {log}", ep.addr);
}

/// Debian's etcd 3.4 on free ports; `None` when it is not installed.
fn start_etcd() -> Option<Endpoint> {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let peer = format!("http://127.0.0.1:{}", free_port());
    let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
    let child = Command::new("etcd")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen-client-urls", &format!("http://{addr}")])
        .args(["--advertise-client-urls", &format!("http://{addr}")])
        .args(["--listen-peer-urls", &peer])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .ok()?;
    let ep = Endpoint {
        addr,
        peer: None,
        dir,
        kind: Kind::Process(child),
    };
    wait_healthy(&ep);
    Some(ep)
}

fn etcdctl(ep: &Endpoint, args: &[&str]) -> Command {
    let mut c = Command::new("etcdctl");
    c.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", ep.addr))
        .args(["--command-timeout=5s", "--dial-timeout=2s"])
        .args(args)
        .current_dir(ep.dir.path());
    c
}

/// Runs etcdctl; (exit code, stdout, stderr without etcdctl's JSON log lines).
fn ctl(ep: &Endpoint, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut child = etcdctl(ep, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("etcdctl is installed");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.starts_with('{'))
        .collect::<Vec<_>>()
        .join("\n");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

/// Starts `etcdctl watch …` and collects its stdout lines until `until` is printed, then
/// kills it.
struct WatchProc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl WatchProc {
    fn start(ep: &Endpoint, args: &[&str]) -> Self {
        let mut child = etcdctl(ep, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        WatchProc { child, lines }
    }

    /// Lines up to and including the first equal to `until`.
    fn until(mut self, until: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let done = l == until;
                    got.push(l);
                    if done {
                        break;
                    }
                }
                Err(_) => panic!("watch printed only {got:?}, never {until:?}"),
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        got
    }
}

/// Replaces every run of digits that follows `after` (up to `end`) by `N`.
fn blank_after(s: &str, after: &str, end: char) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find(after) {
        out.push_str(&rest[..i + after.len()]);
        rest = &rest[i + after.len()..];
        let j = rest.find(end).unwrap_or(rest.len());
        out.push('N');
        rest = &rest[j..];
    }
    out.push_str(rest);
    out
}

/// What legitimately differs between k3rs and etcd: ids, ports, sizes, timings, versions.
fn normalise(ep: &Endpoint, lease: Option<&str>, s: &str) -> String {
    let mut s = s.replace(&ep.addr, "ENDPOINT");
    if let Some(peer) = &ep.peer {
        s = s.replace(peer.as_str(), "http://localhost:2380");
    }
    // The member id: etcd derives it from name and peer URLs, raft-rs members pick one.
    if let Some(id) = s
        .lines()
        .find(|l| l.ends_with(", started, default, http://localhost:2380, http://ENDPOINT, false"))
        .and_then(|l| l.split(", ").next())
        .map(str::to_string)
    {
        s = s.replace(&id, "MEMBER");
    }
    if let Some(l) = lease {
        s = s.replace(l, "LEASE");
    }
    s = blank_after(&s, "remaining(", 's');
    s = blank_after(&s, "took = ", '\n');
    s.lines()
        .filter(|l| {
            !l.starts_with("\"ClusterID\"")
                && !l.starts_with("\"MemberID\"")
                && !l.starts_with("\"RaftTerm\"")
        })
        .map(|l| {
            if l.starts_with("ENDPOINT, ") && l.split(", ").count() >= 9 {
                // endpoint status: endpoint, id, VERSION, DB SIZE, leader, learner, TERM,
                // INDEX, APPLIED INDEX, errors.
                let f: Vec<&str> = l.split(", ").collect();
                format!("{}, ID, V, SIZE, {}, {}, T, I, A", f[0], f[4], f[5])
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs the scenario and returns its normalised transcript.
fn scenario(ep: &Endpoint) -> Vec<String> {
    let mut t = Vec::new();
    let mut lease: Option<String> = None;
    let run = |t: &mut Vec<String>, lease: &Option<String>, args: &[&str], input: Option<&str>| {
        let (code, out, err) = ctl(ep, args, input);
        let entry = format!(
            "$ etcdctl {}\n{out}\n{}exit {code}",
            args.join(" "),
            if err.is_empty() {
                String::new()
            } else {
                format!("stderr: {err}\n")
            },
        );
        let entry = normalise(ep, lease.as_deref(), &entry);
        t.push(entry);
        out
    };

    // KV.
    run(&mut t, &lease, &["put", "foo", "bar"], None);
    run(&mut t, &lease, &["put", "/a/1", "one"], None);
    run(&mut t, &lease, &["put", "/a/2", "two"], None);
    run(&mut t, &lease, &["put", "/b", "bee"], None);
    run(&mut t, &lease, &["put", "/a/1", "uno", "--prev-kv"], None);
    run(&mut t, &lease, &["get", "foo"], None);
    run(
        &mut t,
        &lease,
        &["get", "/", "--prefix", "--keys-only"],
        None,
    );
    run(
        &mut t,
        &lease,
        &["get", "/a", "--prefix", "-w", "fields"],
        None,
    );
    run(
        &mut t,
        &lease,
        &[
            "get",
            "/",
            "--prefix",
            "--sort-by=MODIFY",
            "--order=DESCEND",
            "--limit=2",
        ],
        None,
    );
    run(
        &mut t,
        &lease,
        &["get", "/", "--prefix", "--count-only", "-w", "fields"],
        None,
    );
    run(&mut t, &lease, &["get", "/a/1", "--rev=2"], None);
    run(
        &mut t,
        &lease,
        &["get", "/", "--prefix", "--limit=1", "-w", "fields"],
        None,
    );
    run(&mut t, &lease, &["put", "missing", "--ignore-value"], None);
    run(
        &mut t,
        &lease,
        &["del", "/a", "--prefix", "--prev-kv"],
        None,
    );
    run(&mut t, &lease, &["del", "nothing"], None);
    // Txn from stdin: compares, blank line, success ops, blank line, failure ops.
    run(
        &mut t,
        &lease,
        &["txn"],
        Some("mod(\"foo\") > \"0\"\n\nput foo updated\nget /b\n\nget foo\n\n"),
    );
    run(
        &mut t,
        &lease,
        &["txn"],
        Some("value(\"foo\") = \"nope\"\n\nput foo never\n\nget foo\n\n"),
    );

    // Watch: history from revision 1, then live changes from a revision in the future so
    // nothing can be missed whenever the watch registers.
    let history = WatchProc::start(ep, &["watch", "foo", "--rev=1"]).until("updated");
    t.push(format!("watch foo --rev=1\n{}", history.join("\n")));
    let fields = run(&mut t, &lease, &["get", "foo", "-w", "fields"], None);
    let rev: i64 = fields
        .lines()
        .find_map(|l| l.strip_prefix("\"Revision\" : "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let next = format!("--rev={}", rev + 1);
    let live = WatchProc::start(ep, &["watch", "live", "--prefix", "--prev-kv", &next]);
    run(&mut t, &lease, &["put", "live/x", "1"], None);
    run(&mut t, &lease, &["put", "live/x", "2"], None);
    run(&mut t, &lease, &["del", "live/x"], None);
    run(&mut t, &lease, &["put", "live/end", "end"], None);
    t.push(format!(
        "watch live --prefix\n{}",
        live.until("end").join("\n")
    ));

    // Leases.
    let grant = run(&mut t, &lease, &["lease", "grant", "100"], None);
    let id = grant
        .split_whitespace()
        .nth(1)
        .expect("lease id in grant output")
        .to_string();
    lease = Some(id.clone());
    // Re-normalise the grant entry now that the id is known.
    if let Some(last) = t.last_mut() {
        *last = last.replace(&id, "LEASE");
    }
    let lease_flag = format!("--lease={id}");
    run(&mut t, &lease, &["put", "leased", "v", &lease_flag], None);
    run(
        &mut t,
        &lease,
        &["lease", "timetolive", &id, "--keys"],
        None,
    );
    run(
        &mut t,
        &lease,
        &["lease", "keep-alive", "--once", &id],
        None,
    );
    run(&mut t, &lease, &["lease", "list"], None);
    run(&mut t, &lease, &["lease", "revoke", &id], None);
    run(&mut t, &lease, &["get", "leased"], None);
    run(&mut t, &lease, &["lease", "timetolive", &id], None);
    run(&mut t, &lease, &["lease", "revoke", &id], None);

    let short = run(&mut t, &lease, &["lease", "grant", "1"], None);
    if let Some(id) = short.split_whitespace().nth(1)
        && let Some(last) = t.last_mut()
    {
        *last = last.replace(id, "SHORT");
    }

    // Cluster and maintenance.
    run(&mut t, &lease, &["member", "list"], None);
    run(&mut t, &lease, &["endpoint", "status"], None);
    run(&mut t, &lease, &["endpoint", "health"], None);
    run(&mut t, &lease, &["alarm", "list"], None);
    run(&mut t, &lease, &["snapshot", "save", "snap.db"], None);
    let snap = std::fs::read(ep.dir.path().join("snap.db")).unwrap_or_default();
    let (data, sum) = snap.split_at(snap.len().saturating_sub(32));
    t.push(format!(
        "snapshot ends with sha256 of the rest: {}",
        !data.is_empty() && Sha256::digest(data).as_slice() == sum
    ));

    // Compaction.
    run(&mut t, &lease, &["compact", "5"], None);
    run(&mut t, &lease, &["get", "/a/1", "--rev=2"], None);
    run(&mut t, &lease, &["compact", "3"], None);
    let (code, out, err) = ctl_with_timeout(ep, &["watch", "foo", "--rev=2"]);
    t.push(format!(
        "watch foo --rev=2 (compacted)\n{out}\nstderr: {err}\nexit {code}"
    ));
    t
}

/// Runs a command that should end by itself (a canceled watch), killing it after 10 s.
fn ctl_with_timeout(ep: &Endpoint, args: &[&str]) -> (i32, String, String) {
    let mut child = etcdctl(ep, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.starts_with('{'))
        .collect::<Vec<_>>()
        .join("\n");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        err,
    )
}

fn entry<'a>(t: &'a [String], starts: &str) -> &'a str {
    t.iter()
        .find(|e| e.starts_with(starts))
        .unwrap_or_else(|| panic!("no transcript entry {starts:?}"))
}

#[test]
fn etcdctl_gets_the_same_answers_from_k3rs_as_from_etcd() {
    let k3rs = start_inproc();
    let ours = scenario(&k3rs);
    eprintln!("{}", ours.join("\n\n"));

    // Absolute checks, so the comparison cannot pass by both sides failing alike.
    assert!(entry(&ours, "$ etcdctl get foo\n").contains("foo\nbar\n"));
    assert!(entry(&ours, "$ etcdctl get / --prefix --keys-only").contains("/a/1\n\n/a/2\n\n/b\n"));
    assert!(entry(&ours, "$ etcdctl txn").starts_with("$ etcdctl txn\nSUCCESS"));
    assert!(entry(&ours, "watch foo --rev=1").ends_with("PUT\nfoo\nbar\nPUT\nfoo\nupdated"));
    assert!(
        entry(&ours, "$ etcdctl lease timetolive LEASE --keys").contains("attached keys([leased])")
    );
    assert!(
        entry(&ours, "$ etcdctl member list")
            .contains("MEMBER, started, default, http://localhost:2380, http://ENDPOINT, false")
    );
    assert!(entry(&ours, "snapshot ends").ends_with("true"));
    assert!(
        entry(&ours, "watch foo --rev=2 (compacted)")
            .contains("required revision has been compacted")
    );

    let Some(etcd) = start_etcd() else {
        eprintln!("etcd is not installed: comparison skipped");
        return;
    };
    let theirs = scenario(&etcd);
    for (a, b) in ours.iter().zip(&theirs) {
        assert_eq!(a, b, "k3rs (left) and etcd (right) differ");
    }
    assert_eq!(ours.len(), theirs.len());
}

#[test]
fn data_written_through_etcdctl_survives_a_k3rs_server_restart() {
    let ep = start_k3rs();
    assert_eq!(ctl(&ep, &["put", "persist", "me"], None).1, "OK\n");
    let dir = ep.stop();
    let ep = start_k3rs_in(dir);
    let (code, out, err) = ctl(&ep, &["get", "persist", "-w", "fields"], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"Value\" : \"me\""), "{out}");
}

#[test]
fn etcdctl_sees_the_kubernetes_objects_of_a_k3rs_server() {
    let ep = start_k3rs();
    let (code, out, err) = ctl(
        &ep,
        &["get", "/registry/namespaces/", "--prefix", "--keys-only"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("/registry/namespaces/default\n"), "{out}");
    assert!(out.contains("/registry/namespaces/kube-system\n"), "{out}");
    let (code, out, _) = ctl(&ep, &["member", "list"], None);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!(
            ", started, default, {}, http://{}, false",
            ep.peer.as_deref().unwrap(),
            ep.addr
        )),
        "{out}"
    );
    let (code, _, err) = ctl(&ep, &["snapshot", "save", "snap.db"], None);
    assert_eq!(code, 0, "{err}");
    let snap = std::fs::read(ep.dir.path().join("snap.db")).unwrap();
    assert!(k3rs::store::etcd::open_snapshot(&snap).is_some());
}
