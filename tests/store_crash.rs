//! Crash safety of the real binary: `k3rs server` is SIGKILLed while clients stream writes
//! through the Kubernetes API, then restarted on the same data dir. Every acknowledged write
//! must be there afterwards, and a write that was in flight is either fully there or absent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rand::Rng;

const WRITERS: usize = 4;

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// One server's fixed identity: data dir and ports, reused on every restart.
struct Server {
    dir: PathBuf,
    https: u16,
    raft: u16,
    etcd: u16,
    child: Option<Child>,
}

impl Server {
    fn new(dir: &Path) -> Self {
        Server {
            dir: dir.to_path_buf(),
            https: free_port(),
            raft: free_port(),
            etcd: free_port(),
            child: None,
        }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kc.yaml")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    async fn start(&mut self) -> kube::Client {
        let _ = std::fs::remove_file(self.kubeconfig());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_k3rs"))
            .args(["server", "--disable-agent", "--bind-address", "127.0.0.1"])
            .arg("-d")
            .arg(self.dir.join("data"))
            .args(["--https-listen-port", &self.https.to_string()])
            .args(["--raft-listen-port", &self.raft.to_string()])
            .args(["--etcd-listen-address", &format!("127.0.0.1:{}", self.etcd)])
            .arg("-o")
            .arg(self.kubeconfig())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("server exited with {status}: {}", self.log());
            }
            if let Some(client) = self.try_client().await {
                let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
                if api.list(&ListParams::default().limit(1)).await.is_ok() {
                    return client;
                }
            }
            assert!(
                Instant::now() < deadline,
                "server did not become ready: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn try_client(&self) -> Option<kube::Client> {
        let kc = kube::config::Kubeconfig::read_from(self.kubeconfig()).ok()?;
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .ok()?;
        kube::Client::try_from(cfg).ok()
    }

    fn sigkill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.sigkill();
    }
}

fn config_map(name: &str, value: &str) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(name.to_string());
    // Several keys: a half-applied write would show some of them missing or stale.
    cm.data = Some(
        ["a", "b", "c"]
            .iter()
            .map(|k| (k.to_string(), format!("{k}-{value}")))
            .collect(),
    );
    cm
}

#[derive(Default)]
struct Record {
    /// name -> value, for creates the server acknowledged.
    acked: BTreeMap<String, String>,
    /// name -> value, for creates sent but not acknowledged (in flight at the kill).
    unacked: BTreeMap<String, String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_sigkill_of_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::new(dir.path());
    let mut client = server.start().await;
    let record = Arc::new(Mutex::new(Record::default()));

    for round in 0..3 {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
            let record = record.clone();
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let name = format!("r{round}-w{w}-{i}");
                    let value = format!("{round}.{w}.{i}");
                    record
                        .lock()
                        .unwrap()
                        .unacked
                        .insert(name.clone(), value.clone());
                    match api
                        .create(&PostParams::default(), &config_map(&name, &value))
                        .await
                    {
                        Ok(_) => {
                            let mut r = record.lock().unwrap();
                            r.unacked.remove(&name);
                            r.acked.insert(name, value);
                        }
                        // The server died: this write stays "maybe applied".
                        Err(_) => break,
                    }
                }
            }));
        }
        // Kill at a random point, but only once this round has acknowledged something.
        let kill_after = Duration::from_millis(rand::rng().random_range(300..1500));
        let started = Instant::now();
        let deadline = started + Duration::from_secs(20);
        loop {
            let n = record
                .lock()
                .unwrap()
                .acked
                .keys()
                .filter(|k| k.starts_with(&format!("r{round}-")))
                .count();
            if n > 0 && started.elapsed() >= kill_after {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no write acknowledged: {}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        server.sigkill();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for t in tasks {
            t.await.unwrap();
        }

        client = server.start().await;
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let present: BTreeMap<String, ConfigMap> = api
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|cm| (cm.metadata.name.clone().unwrap(), cm))
            .collect();
        let mut r = record.lock().unwrap();
        for (name, value) in &r.acked {
            let cm = present
                .get(name)
                .unwrap_or_else(|| panic!("round {round}: acknowledged {name} lost"));
            assert_eq!(cm.data, config_map(name, value).data, "{name}");
        }
        // In-flight writes: all or nothing. Once observed, they count as acknowledged.
        let unacked = std::mem::take(&mut r.unacked);
        for (name, value) in unacked {
            if let Some(cm) = present.get(&name) {
                assert_eq!(cm.data, config_map(&name, &value).data, "{name}");
                r.acked.insert(name, value);
            }
        }
        // Nothing the clients never sent appears.
        for name in present.keys().filter(|n| n.starts_with('r')) {
            assert!(r.acked.contains_key(name), "unexpected {name}");
        }
        eprintln!(
            "round {round}: killed after {:?}, {} acknowledged in total",
            kill_after,
            r.acked.len()
        );
    }
}
