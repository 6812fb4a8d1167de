//! A `k3rs server` process with a fixed data dir, address and ports (kept across restarts),
//! started with `--disable-agent`, stopped with SIGKILL; talked to through `kube`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// SIGKILLs the containerd a k3rs agent supervised for `data_dir` (found by its `--config`
/// argument): it outlives a killed server by design (running pods survive restarts).
pub fn kill_supervised_containerd(data_dir: &Path) {
    let config = data_dir.join("agent/containerd/config.toml");
    let needle = format!("--config\0{}", config.display());
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// One server's fixed identity: data dir and ports, reused on every restart.
pub struct Server {
    /// Address every listener binds (a 127/8 address).
    pub host: String,
    /// Extra arguments (`--cluster-init`, `--server`, `--token`).
    pub args: Vec<String>,
    pub dir: PathBuf,
    pub https: u16,
    pub raft: u16,
    pub etcd: u16,
    pub child: Option<Child>,
}

impl Server {
    pub fn new(dir: &Path) -> Self {
        Server {
            host: "127.0.0.1".into(),
            args: Vec::new(),
            dir: dir.to_path_buf(),
            https: free_port(),
            raft: free_port(),
            etcd: free_port(),
            child: None,
        }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kc.yaml")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    pub async fn start(&mut self) -> kube::Client {
        let _ = std::fs::remove_file(self.kubeconfig());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .unwrap();
        let child = self
            .command()
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.wait_ready().await
    }

    /// The server command line (not started).
    pub fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_k3rs"));
        c.args(["server", "--disable-agent", "--bind-address", &self.host])
            .arg("-d")
            .arg(self.dir.join("data"))
            .args(["--https-listen-port", &self.https.to_string()])
            .args(["--raft-listen-port", &self.raft.to_string()])
            .args([
                "--etcd-listen-address",
                &format!("{}:{}", self.host, self.etcd),
            ])
            .arg("-o")
            .arg(self.kubeconfig())
            .args(&self.args);
        c
    }

    /// Wait until the kubeconfig is written and the API lists ConfigMaps.
    pub async fn wait_ready(&mut self) -> kube::Client {
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

    pub async fn try_client(&self) -> Option<kube::Client> {
        let kc = kube::config::Kubeconfig::read_from(self.kubeconfig()).ok()?;
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .ok()?;
        kube::Client::try_from(cfg).ok()
    }

    pub fn sigkill(&mut self) {
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
