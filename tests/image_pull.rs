//! Registry pulls end to end (needs root, containerd, Debian's `docker-registry` and
//! `skopeo`): two loopback registries (anonymous, and htpasswd basic auth) get the test
//! busybox image pushed with skopeo; a real `k3rs server` with its built-in agent then runs
//! pods pulling it anonymously (and again with `Always` after the tag moved to a Docker
//! schema 2 manifest with a gzip layer), through a `registries.yaml` mirror of a made-up registry,
//! over HTTPS trusting a `registries.yaml` CA file, with `registries.yaml` credentials, and with an imagePullSecret; a wrong tag, missing
//! credentials and `imagePullPolicy: Never` fail with upstream's waiting reasons and events.
//! One server for the whole file.

mod common;

use common::images::build_busybox_image;
use common::process::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

fn have(bin: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A `docker-registry` on a loopback port, killed on drop.
struct Registry {
    port: u16,
    child: Child,
}

impl Registry {
    fn start(dir: &Path, htpasswd: Option<&Path>, tls: Option<(&Path, &Path)>) -> Registry {
        let port = free_port();
        std::fs::create_dir_all(dir.join("storage")).unwrap();
        let auth = match htpasswd {
            Some(p) => format!(
                "auth:\n  htpasswd:\n    realm: k3rs-test\n    path: {}\n",
                p.display()
            ),
            None => String::new(),
        };
        let tls = match tls {
            Some((cert, key)) => format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ),
            None => String::new(),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n{tls}{auth}",
            dir.join("storage").display()
        );
        let cfg = dir.join("config.yml");
        std::fs::write(&cfg, config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("registry.log")).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry { port, child }
    }

    fn push(&self, archive: &Path, repo: &str, creds: Option<&str>) {
        self.push_as(archive, repo, creds, &[]);
    }

    fn push_as(&self, archive: &Path, repo: &str, creds: Option<&str>, extra: &[&str]) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--quiet", "--dest-tls-verify=false"]);
        cmd.args(extra);
        if let Some(c) = creds {
            cmd.args(["--dest-creds", c]);
        }
        let out = cmd
            .arg(format!("oci-archive:{}", archive.display()))
            .arg(format!("docker://127.0.0.1:{}/{repo}", self.port))
            .output()
            .unwrap();
        assert!(out.status.success(), "skopeo: {out:?}");
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Server {
    dir: PathBuf,
    child: Child,
}

impl Server {
    fn start(dir: &Path, registries: &Path) -> Server {
        let kubeconfig = dir.join("kubeconfig.yaml");
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_k3rs"))
            .args(["server", "--bind-address", "127.0.0.1"])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--https-listen-port", &free_port().to_string()])
            .args(["--raft-listen-port", &free_port().to_string()])
            .args([
                "--etcd-listen-address",
                &format!("127.0.0.1:{}", free_port()),
            ])
            .args(["--agent-endpoint", &format!("127.0.0.1:{}", free_port())])
            .arg("--private-registry")
            .arg(registries)
            .arg("--write-kubeconfig")
            .arg(&kubeconfig)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let s = Server {
            dir: dir.to_path_buf(),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !(kubeconfig.exists() && s.kubectl(&["get", "--raw", "/readyz"]).status.success()) {
            assert!(Instant::now() < deadline, "server not ready: {}", s.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }

    fn log(&self) -> String {
        let s = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.dir.join("kubeconfig.yaml"))
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn pod(&self, name: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["get", "pod", name, "-o", "json"])).unwrap()
    }

    /// `(reason, note)` of the events about pod `name`.
    fn events(&self, name: &str) -> Vec<(String, String)> {
        let out = self.ok(&["get", "events", "-o", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["involvedObject"]["name"] == name)
            .map(|e| {
                (
                    e["reason"].as_str().unwrap_or("").to_string(),
                    e["message"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    /// Waits until pod `name`'s first container satisfies `f`; returns the pod.
    fn wait(
        &self,
        name: &str,
        what: &str,
        f: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let p = self.pod(name);
            if f(&p["status"]["containerStatuses"][0]) {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "pod {name} never {what}: {}\nevents: {:?}\nserver log:\n{}",
                p["status"],
                self.events(name),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn wait_running(&self, name: &str) -> serde_json::Value {
        self.wait(name, "ran", |c| c["state"]["running"].is_object())
    }

    fn wait_waiting(&self, name: &str, reason: &str) -> serde_json::Value {
        self.wait(name, &format!("waited with {reason}"), |c| {
            c["state"]["waiting"]["reason"] == reason
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.kubectl(&["delete", "pod", "--all", "--wait=false", "--grace-period=0"]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let out = self.kubectl(&["get", "pods", "-o", "name"]);
            if out.status.success() && out.stdout.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The supervised containerd of this data dir outlives a killed server.
        common::process::kill_supervised_containerd(&self.dir.join("data"));
    }
}

fn pod_yaml(name: &str, image: &str, policy: &str, secret: Option<&str>) -> String {
    let secrets = secret
        .map(|s| format!("  imagePullSecrets: [{{name: {s}}}]\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  hostNetwork: true\n  terminationGracePeriodSeconds: 0\n{secrets}  containers:\n  - name: c\n    image: {image}\n    imagePullPolicy: {policy}\n    command: [/bin/sh, -c, 'sleep 3600']\n---\n"
    )
}

#[test]
fn pods_pull_from_loopback_registries_anonymously_via_mirrors_and_with_credentials() {
    if !is_root() || !have("docker-registry") || !have("skopeo") || !have("htpasswd") {
        eprintln!("skipped: needs root, docker-registry, skopeo and htpasswd");
        return;
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let archive = build_busybox_image(tmp.path(), "busybox.tar", "k3rs.test/busybox:1");

    let open = Registry::start(&tmp.path().join("open"), None, None);
    // An HTTPS registry whose self-signed certificate only registries.yaml's ca_file trusts.
    let pair = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (cert, key) = (tmp.path().join("tls.crt"), tmp.path().join("tls.key"));
    std::fs::write(&cert, pair.cert.pem()).unwrap();
    std::fs::write(&key, pair.signing_key.serialize_pem()).unwrap();
    let secure = Registry::start(&tmp.path().join("secure"), None, Some((&cert, &key)));
    let htpasswd = tmp.path().join("htpasswd");
    let out = Command::new("htpasswd")
        .args(["-Bbn", "puller", "s3cret"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    std::fs::write(&htpasswd, &out.stdout).unwrap();
    let locked = Registry::start(&tmp.path().join("locked"), Some(&htpasswd), None);
    open.push(&archive, "busybox:1", None);
    secure.push(&archive, "busybox:1", None);
    locked.push(&archive, "busybox:1", Some("puller:s3cret"));

    let (po, pl, ps) = (open.port, locked.port, secure.port);
    let registries = tmp.path().join("registries.yaml");
    std::fs::write(
        &registries,
        format!(
            "mirrors:\n  registry.k3rs.test:\n    endpoint: [\"http://127.0.0.1:{po}\"]\n  tls.k3rs.test:\n    endpoint: [\"https://127.0.0.1:{ps}\"]\nconfigs:\n  \"127.0.0.1:{pl}\":\n    auth: {{username: puller, password: s3cret}}\n  \"127.0.0.1:{ps}\":\n    tls: {{ca_file: {}}}\n",
            cert.display()
        ),
    )
    .unwrap();
    let server = Server::start(tmp.path(), &registries);

    server.ok(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        &format!("--docker-server=localhost:{pl}"),
        "--docker-username=puller",
        "--docker-password=s3cret",
    ]);
    let manifests = [
        pod_yaml(
            "anon",
            &format!("127.0.0.1:{po}/busybox:1"),
            "IfNotPresent",
            None,
        ),
        pod_yaml("mirrored", "registry.k3rs.test/busybox:1", "Always", None),
        pod_yaml("https", "tls.k3rs.test/busybox:1", "Always", None),
        pod_yaml(
            "basic",
            &format!("127.0.0.1:{pl}/busybox:1"),
            "Always",
            None,
        ),
        pod_yaml(
            "secret",
            &format!("localhost:{pl}/busybox:1"),
            "Always",
            Some("regcred"),
        ),
        pod_yaml(
            "nocreds",
            &format!("localhost:{pl}/busybox:1"),
            "Always",
            None,
        ),
        pod_yaml(
            "wrongtag",
            &format!("127.0.0.1:{po}/busybox:nope"),
            "IfNotPresent",
            None,
        ),
        pod_yaml("never", &format!("127.0.0.1:{po}/busybox:2"), "Never", None),
    ]
    .concat();
    let file = tmp.path().join("pods.yaml");
    std::fs::write(&file, manifests).unwrap();
    server.ok(&["apply", "-f", file.to_str().unwrap()]);

    // Anonymous pull: Running, imageID is the repo digest, upstream's events.
    let p = server.wait_running("anon");
    let image_id = p["status"]["containerStatuses"][0]["imageID"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        image_id.starts_with(&format!("127.0.0.1:{po}/busybox@sha256:")),
        "{image_id}"
    );
    let ev = server.events("anon");
    assert!(
        ev.contains(&(
            "Pulling".into(),
            format!("Pulling image \"127.0.0.1:{po}/busybox:1\"")
        )),
        "{ev:?}"
    );
    assert!(
        ev.iter().any(|(r, n)| r == "Pulled"
            && n.starts_with(&format!(
                "Successfully pulled image \"127.0.0.1:{po}/busybox:1\" in "
            ))),
        "{ev:?}"
    );

    // The tag moves to a Docker schema 2 manifest with a gzip layer: a new `Always` pod
    // re-resolves it and runs the new digest.
    open.push_as(&archive, "busybox:1", None, &["--format", "v2s2"]);
    let file = tmp.path().join("always.yaml");
    std::fs::write(
        &file,
        pod_yaml(
            "always",
            &format!("127.0.0.1:{po}/busybox:1"),
            "Always",
            None,
        ),
    )
    .unwrap();
    server.ok(&["apply", "-f", file.to_str().unwrap()]);
    let p = server.wait_running("always");
    let moved = p["status"]["containerStatuses"][0]["imageID"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        moved.starts_with(&format!("127.0.0.1:{po}/busybox@sha256:")) && moved != image_id,
        "{moved} vs {image_id}"
    );

    // A made-up registry served by its registries.yaml mirror; credentials from
    // registries.yaml; credentials from an imagePullSecret.
    server.wait_running("mirrored");
    server.wait_running("https");
    server.wait_running("basic");
    server.wait_running("secret");

    // Failures: ErrImagePull, then ImagePullBackOff, with upstream's events.
    server.wait("wrongtag", "failed to pull", |c| {
        matches!(
            c["state"]["waiting"]["reason"].as_str(),
            Some("ErrImagePull" | "ImagePullBackOff")
        )
    });
    let p = server.wait_waiting("wrongtag", "ImagePullBackOff");
    assert_eq!(
        p["status"]["containerStatuses"][0]["state"]["waiting"]["message"],
        format!("Back-off pulling image \"127.0.0.1:{po}/busybox:nope\"")
    );
    let ev = server.events("wrongtag");
    let failed = ev
        .iter()
        .find(|(r, n)| r == "Failed" && n.starts_with("Failed to pull image"))
        .unwrap_or_else(|| panic!("{ev:?}"));
    assert!(failed.1.contains("not found"), "{failed:?}");
    assert!(
        ev.iter()
            .any(|(r, n)| r == "Failed" && n == "Error: ErrImagePull"),
        "{ev:?}"
    );
    assert!(
        ev.iter().any(|(r, n)| r == "BackOff"
            && *n == format!("Back-off pulling image \"127.0.0.1:{po}/busybox:nope\"")),
        "{ev:?}"
    );
    let describe = server.ok(&["describe", "pod", "wrongtag"]);
    assert!(describe.contains("Back-off pulling image"), "{describe}");
    server.wait_waiting("nocreds", "ImagePullBackOff");
    let ev = server.events("nocreds");
    assert!(
        ev.iter()
            .any(|(r, n)| r == "Failed"
                && n.contains("unauthorized: the registry requires credentials")),
        "{ev:?}"
    );
    let p = server.wait_waiting("never", "ErrImageNeverPull");
    assert!(
        p["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("is not present with pull policy of Never")),
        "{p}"
    );
    eprintln!("image pull scenarios took {:?}", started.elapsed());
}
