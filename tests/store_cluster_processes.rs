//! Three real `k3rs server` processes on 127.0.0.1/2/3 form one raft group (`--cluster-init`,
//! then `--server … --token …`); writes go through each; the leader is SIGKILLed: a new leader
//! is elected, writes continue, nothing acknowledged is lost, and the killed member restarts
//! from its data dir and catches up.

mod common;

use std::time::{Duration, Instant};

use common::process::{Server, free_port};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};

const TOKEN: &str = "cluster-secret";

fn config_map(name: &str) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(name.to_string());
    cm.data = Some([("v".to_string(), name.to_string())].into());
    cm
}

/// Create `name` through `client`, retrying refusals (no leader yet) until `deadline`.
async fn create(client: &kube::Client, name: &str, deadline: Instant) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    loop {
        let res = tokio::time::timeout(
            Duration::from_secs(5),
            api.create(&PostParams::default(), &config_map(name)),
        )
        .await;
        match res {
            Ok(Ok(_)) => return,
            // An earlier attempt may have been applied after all.
            Ok(Err(kube::Error::Api(e))) if e.code == 409 => return,
            other => {
                assert!(Instant::now() < deadline, "cannot write {name}: {other:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

async fn names(client: &kube::Client) -> Option<Vec<String>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let list = tokio::time::timeout(Duration::from_secs(5), api.list(&ListParams::default()))
        .await
        .ok()?
        .ok()?;
    Some(
        list.items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect(),
    )
}

/// Wait until `client` lists every name in `want`.
async fn converged(client: &kube::Client, want: &[String], who: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(have) = names(client).await
            && want.iter().all(|w| have.contains(w))
        {
            return;
        }
        assert!(Instant::now() < deadline, "{who} did not converge");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn leader_lines(s: &Server) -> usize {
    s.log().matches("this member is now the leader").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_server_processes_survive_sigkill_of_the_leader() {
    let root = tempfile::tempdir().unwrap();
    // Joining dials the first server's host on our own raft port: one port, three hosts.
    let raft = free_port();
    let mut servers: Vec<Server> = (1..=3)
        .map(|i| {
            let dir = root.path().join(format!("s{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            let mut s = Server::new(&dir);
            s.host = format!("127.0.0.{i}");
            s.raft = raft;
            s.args = vec![
                "--node-name".into(),
                format!("s{i}"),
                "--token".into(),
                TOKEN.into(),
            ];
            s
        })
        .collect();
    servers[0].args.push("--cluster-init".into());
    let first = format!("https://127.0.0.1:{}", servers[0].https);
    for s in &mut servers[1..] {
        s.args.extend(["--server".to_string(), first.clone()]);
    }
    let mut clients = Vec::new();
    for s in &mut servers {
        clients.push(s.start().await);
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut acked: Vec<String> = Vec::new();
    for (i, c) in clients.iter().enumerate() {
        for j in 0..3 {
            let name = format!("before-s{}-{j}", i + 1);
            create(c, &name, deadline).await;
            acked.push(name);
        }
    }
    for (i, c) in clients.iter().enumerate() {
        converged(c, &acked, &format!("s{}", i + 1)).await;
    }

    let leaders: Vec<usize> = servers.iter().map(leader_lines).collect();
    let leader = (0..3)
        .find(|&i| leaders[i] > 0)
        .unwrap_or_else(|| panic!("no server logged leadership: {leaders:?}"));
    servers[leader].sigkill();
    let killed_at = Instant::now();
    let survivors: Vec<usize> = (0..3).filter(|&i| i != leader).collect();

    // A new leader among the survivors within a few seconds.
    let elect_deadline = Instant::now() + Duration::from_secs(15);
    let new_leader = loop {
        if let Some(&i) = survivors
            .iter()
            .find(|&&i| leader_lines(&servers[i]) > leaders[i])
        {
            break i;
        }
        assert!(Instant::now() < elect_deadline, "no new leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let election = killed_at.elapsed();

    // Writes continue through both survivors.
    let deadline = Instant::now() + Duration::from_secs(30);
    for &i in &survivors {
        for j in 0..3 {
            let name = format!("after-s{}-{j}", i + 1);
            create(&clients[i], &name, deadline).await;
            acked.push(name);
        }
    }
    for &i in &survivors {
        converged(&clients[i], &acked, &format!("s{}", i + 1)).await;
    }

    // The killed member restarts from disk and catches up.
    clients[leader] = servers[leader].start().await;
    converged(&clients[leader], &acked, "the restarted member").await;
    create(&clients[leader], "after-restart", deadline).await;
    acked.push("after-restart".into());
    for c in &clients {
        converged(c, &acked, "every member").await;
    }
    eprintln!(
        "killed s{}, s{} led after {election:?}",
        leader + 1,
        new_leader + 1
    );
}
