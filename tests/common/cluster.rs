//! A `k3rs server` on a chosen loopback address with its own node name, for tests that run
//! several servers (joins, raft groups, failover). Killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct ClusterServer {
    pub child: Child,
    pub dir: PathBuf,
    pub url: String,
    pub name: String,
}

impl Drop for ClusterServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on `ip`.
pub fn free_port_on(ip: &str) -> u16 {
    let l = std::net::TcpListener::bind(format!("{ip}:0")).unwrap();
    l.local_addr().unwrap().port()
}

impl ClusterServer {
    /// Start `k3rs server --disable-agent` bound to `ip` with data in `dir`; wait until
    /// `/readyz` answers (60 s).
    pub fn start(dir: &Path, ip: &str, name: &str, extra: &[&str]) -> ClusterServer {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port_on(ip);
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_k3rs"))
            .args(["server", "--disable-agent", "--bind-address", ip])
            .args(["--node-name", name])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--https-listen-port", &port.to_string()])
            .args(["--raft-listen-port", &free_port_on(ip).to_string()])
            .args([
                "--etcd-listen-address",
                &format!("{ip}:{}", free_port_on(ip)),
            ])
            .arg("--write-kubeconfig")
            .arg(dir.join("kubeconfig.yaml"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let s = ClusterServer {
            child,
            dir: dir.to_path_buf(),
            url: format!("https://{ip}:{port}"),
            name: name.to_string(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if s.dir.join("kubeconfig.yaml").exists()
                && s.kubectl(&["get", "--raw", "/readyz"]).status.success()
            {
                break;
            }
            assert!(Instant::now() < deadline, "server not ready: {}", s.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// The join token the server wrote.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.dir.join("data/server/token"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// kubectl with this server's admin kubeconfig (5 s request timeout: a dead peer must not
    /// stall a polling loop).
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.dir.join("kubeconfig.yaml"))
            .args(["--request-timeout=5s"])
            .args(args)
            .output()
            .unwrap()
    }
}
