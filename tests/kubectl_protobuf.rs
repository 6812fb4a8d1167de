//! kubectl ≥ 1.31 sends protobuf bodies from its typed clients (`kubectl create deployment`,
//! `run`, `expose`, …). Starts the real `k3rs server` (no agent), runs those commands with
//! kubectl 1.32 and 1.33, and checks the objects through `kubectl get -o json`.

use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const K3RS: &str = env!("CARGO_BIN_EXE_k3rs");

/// A `k3rs server` on free loopback ports, killed on drop.
struct Server {
    child: Child,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, "{}\n").unwrap();
        let kubeconfig = dir.path().join("kubeconfig.yaml");
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = Command::new(K3RS)
            .args(["server", "--cluster-init", "--disable-agent"])
            .args([
                "--bind-address",
                "127.0.0.1",
                "--advertise-address",
                "127.0.0.1",
            ])
            .args(["--node-ip", "127.0.0.1"])
            .arg("--https-listen-port")
            .arg(free_port().to_string())
            .arg("--etcd-listen-address")
            .arg(format!("127.0.0.1:{}", free_port()))
            .arg("--raft-listen-port")
            .arg(free_port().to_string())
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--write-kubeconfig")
            .arg(&kubeconfig)
            .arg("--config")
            .arg(&config)
            .env_remove("KUBECONFIG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let server = Server {
            child,
            kubeconfig,
            _dir: dir,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.kubeconfig.exists()
                && kubectl(
                    &self.kubeconfig,
                    "kubectl",
                    &["get", "namespace", "default"],
                )
                .status
                .success()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("k3rs server did not become ready");
    }
}

fn kubectl(kubeconfig: &Path, bin: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .env("KUBECONFIG", kubeconfig)
        .args(args)
        .output()
        .unwrap()
}

/// kubectl 1.32 (on PATH) and 1.33; `None` where the machine lacks them.
fn kubectls() -> Vec<(&'static str, &'static str)> {
    let all = [
        ("kubectl", "v1.32"),
        ("/usr/lib/google-cloud-sdk/bin/kubectl.1.33", "v1.33"),
    ];
    all.into_iter()
        .filter(|(bin, version)| {
            Command::new(bin)
                .args(["version", "--client"])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(version))
        })
        .collect()
}

fn ok(kc: &Path, bin: &str, args: &[&str]) -> String {
    let o = kubectl(kc, bin, args);
    assert!(
        o.status.success(),
        "{bin} {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn get(kc: &Path, ns: &str, what: &str) -> Value {
    serde_json::from_str(&ok(kc, "kubectl", &["-n", ns, "get", what, "-o", "json"])).unwrap()
}

#[test]
fn kubectl_typed_commands_sending_protobuf_create_the_right_objects() {
    let versions = kubectls();
    if versions.is_empty() {
        eprintln!("skipping: kubectl 1.32/1.33 not installed");
        return;
    }
    let server = Server::start();
    let kc = server.kubeconfig.as_path();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let pair = rcgen::generate_simple_self_signed(vec!["example.com".into()]).unwrap();
    std::fs::write(&cert, pair.cert.pem()).unwrap();
    std::fs::write(&key, pair.signing_key.serialize_pem()).unwrap();

    for (bin, version) in versions {
        let ns = format!("pb-{}", version.replace('.', "-"));
        let ns = ns.as_str();
        // Proof that the body really is protobuf: kubectl logs the request content type.
        let o = kubectl(kc, bin, &["create", "namespace", ns, "-v=8"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(
            String::from_utf8_lossy(&o.stderr)
                .contains("Content-Type: application/vnd.kubernetes.protobuf"),
            "{version} did not send protobuf"
        );
        let cr = format!("cr-{ns}");
        let commands: Vec<Vec<&str>> = vec![
            vec![
                "create",
                "deployment",
                "web",
                "--image=nginx:1.25",
                "--replicas=3",
                "--port=80",
            ],
            vec![
                "create",
                "deployment",
                "zero",
                "--image=busybox",
                "--replicas=0",
            ],
            vec!["create", "service", "clusterip", "web", "--tcp=80:8080"],
            vec!["create", "service", "nodeport", "np", "--tcp=443:https"],
            vec![
                "create",
                "configmap",
                "cfg",
                "--from-literal=k=v",
                "--from-literal=empty=",
            ],
            vec![
                "create",
                "secret",
                "generic",
                "sec",
                "--from-literal=password=s3cr3t",
            ],
            vec![
                "create",
                "secret",
                "tls",
                "tls",
                "--cert",
                cert.to_str().unwrap(),
                "--key",
                key.to_str().unwrap(),
            ],
            vec![
                "create",
                "job",
                "job1",
                "--image=busybox",
                "--",
                "echo",
                "hi",
            ],
            vec![
                "create",
                "cronjob",
                "cj",
                "--image=busybox",
                "--schedule=*/5 * * * *",
                "--",
                "echo",
                "hi",
            ],
            vec!["create", "job", "fromcj", "--from=cronjob/cj"],
            vec!["create", "serviceaccount", "sa"],
            vec!["create", "role", "r", "--verb=get,list", "--resource=pods"],
            vec!["create", "rolebinding", "rb", "--role=r", "--user=bob"],
            vec![
                "create",
                "clusterrole",
                &cr,
                "--verb=get",
                "--resource=nodes",
            ],
            vec![
                "create",
                "pdb",
                "pdb0",
                "--selector=app=web",
                "--max-unavailable=0",
            ],
            vec!["create", "ingress", "ing", "--rule=foo.com/bar=web:80"],
            vec!["create", "priorityclass", &cr, "--value=1000"],
            vec![
                "run",
                "pod1",
                "--image=nginx",
                "--labels=app=p",
                "--port=80",
                "--env=A=b",
            ],
            vec![
                "expose",
                "deployment",
                "web",
                "--name=exposed",
                "--port=8080",
                "--target-port=80",
            ],
            vec!["set", "image", "deployment/web", "nginx=nginx:1.26"],
            vec!["scale", "deployment", "web", "--replicas=5"],
            // Last: a compute quota makes pods without requests (`run` above) forbidden.
            vec!["create", "quota", "q", "--hard=cpu=2,memory=1Gi,pods=10"],
        ];
        for c in &commands {
            let mut args = vec!["-n", ns];
            args.extend(c);
            ok(kc, bin, &args);
        }

        let d = get(kc, ns, "deployment/web");
        assert_eq!(d["spec"]["replicas"], 5, "{version}");
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["image"], "nginx:1.26");
        assert_eq!(c["ports"][0]["containerPort"], 80);
        assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web");
        assert_eq!(get(kc, ns, "deployment/zero")["spec"]["replicas"], 0);

        let svc = get(kc, ns, "service/web");
        assert_eq!(svc["spec"]["ports"][0]["port"], 80);
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
        assert_eq!(svc["spec"]["selector"]["app"], "web");
        assert_eq!(
            get(kc, ns, "service/np")["spec"]["ports"][0]["targetPort"],
            "https"
        );
        assert_eq!(
            get(kc, ns, "service/exposed")["spec"]["ports"][0]["targetPort"],
            80
        );

        let cm = get(kc, ns, "configmap/cfg");
        assert_eq!(cm["data"], serde_json::json!({"k": "v", "empty": ""}));
        assert_eq!(get(kc, ns, "secret/sec")["data"]["password"], "czNjcjN0");
        let tls = get(kc, ns, "secret/tls");
        assert_eq!(tls["type"], "kubernetes.io/tls");
        assert!(
            tls["data"]["tls.crt"]
                .as_str()
                .is_some_and(|s| s.len() > 100)
        );

        let job = get(kc, ns, "job/job1");
        let jc = &job["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(jc["command"], serde_json::json!(["echo", "hi"]));
        assert_eq!(get(kc, ns, "cronjob/cj")["spec"]["schedule"], "*/5 * * * *");
        let from = get(kc, ns, "job/fromcj");
        assert_eq!(
            from["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
            "manual"
        );

        let role = get(kc, ns, "role/r");
        assert_eq!(
            role["rules"][0]["verbs"],
            serde_json::json!(["get", "list"])
        );
        assert_eq!(role["rules"][0]["apiGroups"], serde_json::json!([""]));
        assert_eq!(get(kc, ns, "rolebinding/rb")["subjects"][0]["name"], "bob");
        assert_eq!(
            get(kc, ns, &format!("clusterrole/{cr}"))["rules"][0]["resources"][0],
            "nodes"
        );
        assert_eq!(
            get(kc, ns, "resourcequota/q")["spec"]["hard"]["memory"],
            "1Gi"
        );
        assert_eq!(get(kc, ns, "pdb/pdb0")["spec"]["maxUnavailable"], 0);
        let ing = get(kc, ns, "ingress/ing");
        let path = &ing["spec"]["rules"][0]["http"]["paths"][0];
        assert_eq!(ing["spec"]["rules"][0]["host"], "foo.com");
        assert_eq!(path["backend"]["service"]["port"]["number"], 80);
        assert_eq!(get(kc, ns, &format!("priorityclass/{cr}"))["value"], 1000);

        let pod = get(kc, ns, "pod/pod1");
        assert_eq!(pod["metadata"]["labels"]["app"], "p");
        let pc = &pod["spec"]["containers"][0];
        assert_eq!(pc["env"], serde_json::json!([{"name": "A", "value": "b"}]));
        assert_eq!(pc["ports"][0]["containerPort"], 80);
    }
}
