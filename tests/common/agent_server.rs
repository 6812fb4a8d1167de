//! A `k3rs server` with its built-in agent on a real containerd (tests that need root), for
//! the end-to-end files (`e2e_workloads`, `attach`, `eviction`, `volumes`): fixed ports so
//! it can be killed and restarted on the same data dir, kubectl helpers that put the
//! server's log into failure messages, and a `Drop` that deletes the pods through the API
//! (pods outlive the server by design: re-adoption) and then kills the containerd the agent
//! supervised for this data dir (it outlives the server too).

use super::process::free_port;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A fresh data directory for an [`AgentServer`] whose agent imports the busybox test image
/// `image` at start; returns it with its image directory (tests may drop more archives there).
pub fn data_dir_with_busybox(image: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("data/agent/images");
    std::fs::create_dir_all(&images).unwrap();
    super::images::build_busybox_image(&images, "busybox.tar", image);
    (tmp, images)
}

pub struct AgentServer {
    pub dir: PathBuf,
    /// https, raft, etcd, agent endpoint.
    pub ports: [u16; 4],
    /// Extra `k3rs server` arguments, used by every (re)start.
    pub extra: Vec<String>,
    child: Option<Child>,
}

impl AgentServer {
    pub fn start(dir: &Path) -> Self {
        Self::start_with(dir, &[])
    }

    pub fn start_with(dir: &Path, extra: &[String]) -> Self {
        let mut s = AgentServer {
            dir: dir.to_path_buf(),
            ports: [free_port(), free_port(), free_port(), free_port()],
            extra: extra.to_vec(),
            child: None,
        };
        s.spawn();
        s
    }

    /// (Re)starts the server on the same data dir and ports; waits for `/readyz`.
    pub fn spawn(&mut self) {
        let kubeconfig = self.kubeconfig();
        let _ = std::fs::remove_file(&kubeconfig);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .unwrap();
        let [https, raft, etcd, agent] = self.ports;
        let child = Command::new(env!("CARGO_BIN_EXE_k3rs"))
            .args(["server", "--bind-address", "127.0.0.1"])
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .args(["--https-listen-port", &https.to_string()])
            .args(["--raft-listen-port", &raft.to_string()])
            .args(["--etcd-listen-address", &format!("127.0.0.1:{etcd}")])
            .args(["--agent-endpoint", &format!("127.0.0.1:{agent}")])
            .arg("--write-kubeconfig")
            .arg(&kubeconfig)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.wait_for("the server to be ready", 30, |s| {
            kubeconfig.exists() && s.kubectl(&["get", "--raw", "/readyz"]).status.success()
        });
    }

    /// Restarts with other extra arguments.
    pub fn spawn_with(&mut self, extra: &[String]) {
        self.extra = extra.to_vec();
        self.spawn();
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn https(&self) -> u16 {
        self.ports[0]
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig.yaml")
    }

    /// The whole server log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// The last 60 lines of the server log, for failure messages.
    pub fn tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("kubectl");
        c.arg("--kubeconfig").arg(self.kubeconfig()).args(args);
        c
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.tail()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    pub fn apply(&self, yaml: &str) {
        let f = self.dir.join("apply.yaml");
        std::fs::write(&f, yaml).unwrap();
        self.ok(&["apply", "-f", f.to_str().unwrap()]);
    }

    /// The pods matching a label selector.
    pub fn pods(&self, selector: &str) -> Vec<Value> {
        let v = self.json(&["get", "pods", "-l", selector]);
        v["items"].as_array().cloned().unwrap_or_default()
    }

    /// `k3rs images list` against the agent's containerd.
    pub fn images(&self) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_k3rs"))
            .args(["images", "list", "--data-dir"])
            .arg(self.dir.join("data"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn wait_for(&self, what: &str, secs: u64, mut f: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !f(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\nserver log:\n{}",
                self.tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Polls `kubectl get … -o jsonpath=…` (30 s) until it prints `want`.
    pub fn wait_output(&self, args: &[&str], want: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.kubectl(args);
            let got = String::from_utf8_lossy(&out.stdout).to_string();
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{args:?}: {got:?}, want {want:?}\n{}",
                self.tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn wait_running(&self, pod: &str) {
        self.wait_for(&format!("pod {pod} running"), 60, |s| {
            let out = s.kubectl(&["get", "pod", pod, "-o", "jsonpath={.status.phase}"]);
            out.stdout == b"Running"
        });
    }
}

impl Drop for AgentServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.kubectl(&["delete", "deployment", "--all", "--wait=false"]);
            // One second of grace: a shell as PID 1 ignores SIGTERM.
            let _ = self.kubectl(&["delete", "pod", "--all", "--wait=false", "--grace-period=1"]);
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                let out = self.kubectl(&["get", "pods", "-o", "name"]);
                if out.status.success() && out.stdout.is_empty() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        }
        self.kill9();
        super::process::kill_supervised_containerd(&self.dir.join("data"));
    }
}
