//! Shared helpers of the integration tests: a real `k3rs server` on a free port with a temp
//! data dir, and kubectl runners bound to its kubeconfig.
#![allow(dead_code)]

pub mod agent_server;
pub mod cluster;
pub mod images;
pub mod process;

use process::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// kubectl 1.32 (on PATH).
pub const KUBECTL: &str = "kubectl";
/// kubectl 1.30.
pub const KUBECTL_130: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.30";

/// A running `k3rs server`, killed on drop.
pub struct TestServer {
    child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
}

/// The raft port of a data dir: chosen once, kept across restarts (the member's peer URL).
fn raft_port(dir: &Path) -> u16 {
    let f = dir.join("raft-port");
    if let Some(p) = std::fs::read_to_string(&f)
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return p;
    }
    let p = free_port();
    std::fs::write(&f, p.to_string()).unwrap();
    p
}

impl TestServer {
    /// Start a server and wait until its kubeconfig is written and `/readyz` answers.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), free_port(), extra)
    }

    /// Stop this server and start a new one on the same data dir and port.
    pub fn restart(mut self) -> Self {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        let _ = std::fs::remove_file(dir.path().join("kubeconfig.yaml"));
        Self::start_in(dir, self.port, &[])
    }

    pub fn start_in(dir: tempfile::TempDir, port: u16, extra: &[&str]) -> Self {
        let kubeconfig = dir.path().join("kubeconfig.yaml");
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_k3rs"))
            .args(["server", "--disable-agent", "--bind-address", "127.0.0.1"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--https-listen-port", &port.to_string()])
            .args(["--raft-listen-port", &raft_port(dir.path()).to_string()])
            .args([
                "--etcd-listen-address",
                &format!("127.0.0.1:{}", free_port()),
            ])
            .arg("--write-kubeconfig")
            .arg(&kubeconfig)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let ts = Self { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if kubeconfig.exists() {
                let out = ts.kubectl(&["get", "--raw", "/readyz"]);
                if out.status.success() {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "server did not become ready: {}",
                ts.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        ts
    }

    /// Stop the server with SIGTERM (a clean shutdown) and wait for it to exit.
    pub fn stop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig.yaml")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// A kubectl command (binary `bin`) with this server's kubeconfig and its own cache dir.
    pub fn command(&self, bin: &str, args: &[&str]) -> Command {
        let mut c = Command::new(bin);
        c.arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.dir.path().join(format!(
                "cache-{}",
                Path::new(bin).file_name().unwrap().to_string_lossy()
            )))
            .args(args);
        c
    }

    pub fn run(&self, bin: &str, args: &[&str]) -> Output {
        self.command(bin, args).output().unwrap()
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.run(KUBECTL, args)
    }

    /// Run kubectl, assert success, return stdout.
    pub fn ok(&self, bin: &str, args: &[&str]) -> String {
        let out = self.run(bin, args);
        assert!(
            out.status.success(),
            "{bin} {args:?} failed: {}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Run kubectl, assert failure, return stderr.
    pub fn fails(&self, bin: &str, args: &[&str]) -> String {
        let out = self.run(bin, args);
        assert!(
            !out.status.success(),
            "{bin} {args:?} unexpectedly succeeded"
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// Write a file in the test dir and return its path.
    pub fn file(&self, name: &str, content: &[u8]) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        p.to_string_lossy().into_owned()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The header line of a kubectl table, as words.
pub fn header(out: &str) -> Vec<String> {
    out.lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(String::from)
        .collect()
}
