//! Controller failover in a three-server cluster: the holder of the controllers' Lease is
//! killed with SIGKILL, another server takes the lease, and a Deployment scaled after the kill
//! converges to exactly its replica count (no pod created twice by two leaders).

mod common;

use common::cluster::ClusterServer as Server;
use std::time::{Duration, Instant};

/// kubectl's stdout as text.
fn stdout(s: &Server, args: &[&str]) -> String {
    String::from_utf8_lossy(&s.kubectl(args).stdout).into_owned()
}

fn holder(s: &Server) -> String {
    stdout(
        s,
        &[
            "get",
            "lease",
            "-n",
            "kube-system",
            "k3rs-controllers",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
    )
}

/// Pods of the deployment that are not being deleted.
fn live_pods(s: &Server) -> Option<usize> {
    let out = s.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=fo",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
    ]);
    if !out.status.success() {
        return None;
    }
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.split_whitespace().count() == 1)
            .count(),
    )
}

fn wait(what: &str, secs: u64, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    t0.elapsed()
}

#[test]
fn killing_the_controller_leader_hands_the_lease_over_and_scaling_still_converges_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let s1 = Server::start(&tmp.path().join("s1"), "127.0.0.1", "server-1", &[]);
    let token = s1.token();
    let join = ["--server", s1.url.as_str(), "--token", token.as_str()];
    let s2 = Server::start(&tmp.path().join("s2"), "127.0.0.2", "server-2", &join);
    let s3 = Server::start(&tmp.path().join("s3"), "127.0.0.3", "server-3", &join);
    let mut servers = vec![s1, s2, s3];

    let manifest = tmp.path().join("deploy.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: fo\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: fo}\n  template:\n    metadata:\n      labels: {app: fo}\n    spec:\n      containers:\n      - {name: c, image: busybox}\n",
    )
    .unwrap();
    let out = servers[0].kubectl(&["apply", "-f", manifest.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait("two pods", 60, || live_pods(&servers[0]) == Some(2));

    let first = holder(&servers[0]);
    let idx = servers
        .iter()
        .position(|s| first.starts_with(&format!("{}_", s.name)))
        .unwrap_or_else(|| panic!("lease holder {first:?} is none of the servers"));
    let leader = servers.remove(idx);
    drop(leader); // SIGKILL: no clean release of the lease.
    let killed = Instant::now();

    let survivor = &servers[0];
    // Scale right away through a survivor (retried while the store elects a new leader).
    wait("scale accepted", 30, || {
        survivor
            .kubectl(&["scale", "deployment", "fo", "--replicas=5"])
            .status
            .success()
    });
    // Lease: 15 s without renewal, survivors retry every 2 s; a little more for the store's
    // own re-election when the killed server also led raft.
    wait("a survivor holds the lease", 25, || {
        let h = holder(survivor);
        !h.is_empty()
            && h != first
            && servers
                .iter()
                .any(|s| h.starts_with(&format!("{}_", s.name)))
    });
    let takeover = killed.elapsed();
    eprintln!(
        "lease taken over {:.1}s after the kill",
        takeover.as_secs_f64()
    );
    assert!(takeover <= Duration::from_secs(20), "{takeover:?}");

    wait("five pods", 30, || live_pods(survivor) == Some(5));
    // Stable: no second leader adds or removes pods.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(4) {
        assert_eq!(live_pods(survivor), Some(5), "pod count moved");
        std::thread::sleep(Duration::from_millis(400));
    }
    let rs = stdout(survivor, &["get", "rs", "-l", "app=fo", "-o", "name"]);
    assert_eq!(rs.lines().count(), 1, "one replica set: {rs}");
}
