//! Joining with a token: `k3rs agent` gets a node certificate after checking the server's CA
//! against the token hash, node passwords protect node names, and a second server adopts the
//! cluster CA and joins the raft group.

mod common;

use common::cluster::ClusterServer as Server;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn kubectl_with(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .unwrap()
}

/// Run `k3rs agent` until it exits (it stops at the container runtime, which these tests do
/// not provide: the join itself happens before).
fn agent(server: &str, token: &str, data_dir: &Path, name: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_k3rs"))
        .args(["agent", "--server", server, "--token", token])
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--node-name", name])
        .arg("--container-runtime-endpoint")
        .arg(data_dir.join("no-containerd.sock"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (
        data_dir.join("agent/kubelet.kubeconfig").exists() && stderr.contains("joined"),
        stderr,
    )
}

/// `GET /cacerts` (answered before authentication; kubectl is just a convenient client).
fn get_cacerts(s: &Server) -> String {
    let out = s.kubectl(&["get", "--raw", "/cacerts"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn agent_joins_with_the_token_and_authenticates_as_its_node() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("s1"), "127.0.0.1", "server-1", &[]);
    let token = s.token();
    assert!(token.starts_with("K10"), "{token}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(s.dir.join("data/server/token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        get_cacerts(&s),
        std::fs::read_to_string(s.dir.join("data/server/tls/server-ca.crt")).unwrap()
    );

    let a = tmp.path().join("agent-a");
    let (joined, log) = agent(&s.url, &token, &a, "agent-a");
    assert!(joined, "{log}");
    let kc = a.join("agent/kubelet.kubeconfig");
    assert_eq!(
        std::fs::metadata(&kc).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(a.join("agent/node-password"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let who = kubectl_with(
        &kc,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username} {.status.userInfo.groups}",
        ],
    );
    let who = String::from_utf8_lossy(&who.stdout).into_owned();
    assert!(who.contains("system:node:agent-a"), "{who}");
    assert!(who.contains("system:nodes"), "{who}");
    let secret = s.kubectl(&[
        "get",
        "secret",
        "-n",
        "kube-system",
        "agent-a.node-password.k3rs",
        "-o",
        "name",
    ]);
    assert!(
        secret.status.success(),
        "{}",
        String::from_utf8_lossy(&secret.stderr)
    );
}

#[test]
fn wrong_secret_and_tampered_ca_hash_are_refused_with_clear_messages() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("s1"), "127.0.0.1", "server-1", &[]);
    let token = s.token();
    let (hash, _) = token.split_once("::").unwrap();
    let wrong_secret = format!("{hash}::server:not-the-secret");
    let (joined, log) = agent(&s.url, &wrong_secret, &tmp.path().join("a1"), "agent-b");
    assert!(!joined);
    assert!(log.contains("rejected the token secret (401"), "{log}");

    let mut tampered = token.clone();
    let c = if tampered.as_bytes()[3] == b'0' {
        "1"
    } else {
        "0"
    };
    tampered.replace_range(3..4, c);
    let (joined, log) = agent(&s.url, &tampered, &tmp.path().join("a2"), "agent-b");
    assert!(!joined);
    assert!(
        log.contains("the server's CA does not match the token hash"),
        "{log}"
    );
    assert!(!tmp.path().join("a2/agent/kubelet.kubeconfig").exists());
}

#[test]
fn a_node_name_is_bound_to_its_first_node_password() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("s1"), "127.0.0.1", "server-1", &[]);
    let token = s.token();
    let first = tmp.path().join("first");
    let (joined, log) = agent(&s.url, &token, &first, "agent-c");
    assert!(joined, "{log}");
    // Another host (its own data dir, so its own password) with the same name is refused.
    let (joined, log) = agent(&s.url, &token, &tmp.path().join("other"), "agent-c");
    assert!(!joined);
    assert!(log.contains("403") && log.contains("\"agent-c\""), "{log}");
    // The first host reconnecting (same password) is accepted again.
    std::fs::remove_file(first.join("agent/kubelet.kubeconfig")).unwrap();
    let (joined, log) = agent(&s.url, &token, &first, "agent-c");
    assert!(joined, "{log}");
}

#[test]
fn a_second_server_joins_with_the_token_and_shares_the_ca_and_the_data() {
    let tmp = tempfile::tempdir().unwrap();
    let s1 = Server::start(&tmp.path().join("s1"), "127.0.0.1", "server-1", &[]);
    let token = s1.token();
    let s2 = Server::start(
        &tmp.path().join("s2"),
        "127.0.0.2",
        "server-2",
        &["--server", &s1.url, "--token", &token],
    );
    assert_eq!(get_cacerts(&s1), get_cacerts(&s2));
    assert_eq!(
        s2.token(),
        token,
        "the joined server's token names the same CA"
    );
    let out = s1.kubectl(&["create", "configmap", "shared", "--from-literal=k=v1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = s2.kubectl(&["get", "configmap", "shared", "-o", "jsonpath={.data.k}"]);
        if String::from_utf8_lossy(&out.stdout) == "v1" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "s2 never saw the configmap: {}",
            s2.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The admin of one server is trusted by the other (same client CA).
    let out = kubectl_with(
        &s1.dir.join("kubeconfig.yaml"),
        &[
            "--server",
            &s2.url,
            "get",
            "configmap",
            "shared",
            "-o",
            "name",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn joined_agent_with_its_own_containerd_registers_a_ready_node() {
    if !nix::unistd::geteuid().is_root() || !Path::new("/usr/bin/containerd").exists() {
        eprintln!("skipped: needs root and containerd");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("s1"), "127.0.0.1", "server-1", &[]);
    let data = tmp.path().join("agent-r");
    let log = std::fs::File::create(tmp.path().join("agent.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_k3rs"))
        .args(["agent", "--server", &s.url, "--token", &s.token()])
        .arg("--data-dir")
        .arg(&data)
        .args(["--node-name", "agent-r"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = loop {
        let out = s.kubectl(&[
            "get",
            "node",
            "agent-r",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ]);
        if String::from_utf8_lossy(&out.stdout) == "True" {
            break true;
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    let agent_log = std::fs::read_to_string(tmp.path().join("agent.log")).unwrap();
    assert!(ready, "agent node never became Ready: {agent_log}");
}

fn sh(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", cmd])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A network namespace joined to the host by a veth pair (10.99.0.1 host, 10.99.0.2 inside);
/// removed on drop.
struct NetNs(String);

impl NetNs {
    fn create(name: &str) -> Option<NetNs> {
        sh(&format!(
            "ip netns del {name} 2>/dev/null; ip link del {name}-h 2>/dev/null; true"
        ));
        let ok = sh(&format!(
            "ip netns add {name} && ip link add {name}-h type veth peer name {name}-n && \
             ip link set {name}-n netns {name} && ip addr add 10.99.0.1/24 dev {name}-h && \
             ip link set {name}-h up && ip -n {name} addr add 10.99.0.2/24 dev {name}-n && \
             ip -n {name} link set {name}-n up && ip -n {name} link set lo up && \
             ip -n {name} route add default via 10.99.0.1"
        ));
        let ns = NetNs(name.to_string());
        ok.then_some(ns)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        sh(&format!(
            "ip link del {0}-h 2>/dev/null; ip netns del {0} 2>/dev/null; true",
            self.0
        ));
    }
}

#[test]
fn agent_in_its_own_network_namespace_joins_and_runs_a_pod() {
    if !nix::unistd::geteuid().is_root() || !Path::new("/usr/bin/containerd").exists() {
        eprintln!("skipped: needs root and containerd");
        return;
    }
    let Some(ns) = NetNs::create("k3rsjoin") else {
        eprintln!("skipped: cannot create a network namespace");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("s1"), "10.99.0.1", "server-1", &[]);
    let data = tmp.path().join("agent-n");
    let images = data.join("agent/images");
    std::fs::create_dir_all(&images).unwrap();
    common::images::build_busybox_image(&images, "busybox.tar", "k3rs.test/busybox:1");
    let log = std::fs::File::create(tmp.path().join("agent.log")).unwrap();
    // nsenter switches only the network namespace: `ip netns exec` would also remount /sys,
    // hiding the cgroup mounts runc needs.
    let mut child = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", ns.0))
        .arg(env!("CARGO_BIN_EXE_k3rs"))
        .args(["agent", "--server", &s.url, "--token", &s.token()])
        .arg("--data-dir")
        .arg(&data)
        .args(["--node-name", "agent-n", "--node-ip", "10.99.0.2"])
        // Small enough that the pod's output below is rotated.
        .args([
            "--container-log-max-size",
            "2Ki",
            "--container-log-max-files",
            "2",
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"far","namespace":"default"},
        "spec":{"terminationGracePeriodSeconds":1,"containers":[{"name":"c",
        "image":"k3rs.test/busybox:1","command":["/bin/sh","-c",
        "echo first; i=0; while [ $i -lt 200 ]; do echo line $i; i=$((i+1)); done; exec sleep 3600"]}]}}"#;
    let pod_file = tmp.path().join("pod.json");
    std::fs::write(&pod_file, pod).unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut created = false;
    let state = loop {
        if !created {
            let ready = s.kubectl(&[
                "get",
                "node",
                "agent-n",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ]);
            if String::from_utf8_lossy(&ready.stdout) == "True" {
                let out = s.kubectl(&["create", "-f", pod_file.to_str().unwrap()]);
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                created = true;
            }
        } else {
            let out = s.kubectl(&[
                "get",
                "pod",
                "far",
                "-o",
                "jsonpath={.spec.nodeName} {.status.phase} {.status.hostIP}",
            ]);
            let st = String::from_utf8_lossy(&out.stdout).into_owned();
            if st.ends_with("Running 10.99.0.2") || Instant::now() > deadline {
                break st;
            }
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break String::new();
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let remote = if state.ends_with("Running 10.99.0.2") {
        logs_and_exec_reach_the_remote_node(&s)
    } else {
        Err("the pod never ran".to_string())
    };
    let _ = s.kubectl(&[
        "delete",
        "pod",
        "far",
        "--grace-period=1",
        "--wait=true",
        "--timeout=20s",
    ]);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    let agent_log = std::fs::read_to_string(tmp.path().join("agent.log")).unwrap();
    assert_eq!(
        state,
        "agent-n Running 10.99.0.2",
        "agent log: {agent_log}\nserver log: {}",
        s.log()
    );
    if let Err(e) = remote {
        panic!("{e}\nagent log: {agent_log}\nserver log: {}", s.log());
    }
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kubectl logs`/`exec` for pod `far` on the netns node (10.99.0.2): the API server reaches
/// the agent's HTTPS endpoint, which serves only the API server's client certificate.
fn logs_and_exec_reach_the_remote_node(s: &Server) -> Result<(), String> {
    let check = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_string()) };
    let port = text(&s.kubectl(&[
        "get",
        "node",
        "agent-n",
        "-o",
        "jsonpath={.status.daemonEndpoints.kubeletEndpoint.Port}",
    ]));
    check(port == "10250", &format!("kubelet port {port:?}"))?;
    // The 200 lines pass 2Ki: rotated, and only the live file is shown (kubelet behaviour).
    let deadline = Instant::now() + Duration::from_secs(20);
    let logs = loop {
        let out = s.kubectl(&["logs", "far", "--tail=1"]);
        if text(&out) == "line 199\n" || Instant::now() > deadline {
            break format!("{}{}", text(&out), String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    check(
        logs == "line 199\n",
        &format!("kubectl logs --tail=1: {logs:?}"),
    )?;
    let all = text(&s.kubectl(&["logs", "far"]));
    check(
        !all.contains("first") && all.len() <= 2048 && all.ends_with("line 199\n"),
        &format!("logs after rotation: {all:?}"),
    )?;
    let uid = text(&s.kubectl(&["get", "pod", "far", "-o", "jsonpath={.metadata.uid}"]));
    let files: Vec<String> = std::fs::read_dir(format!("/var/log/pods/default_far_{uid}/c"))
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    check(
        files.len() == 2 && files.iter().any(|f| f.starts_with("0.log.20")),
        &format!("rotated files {files:?}"),
    )?;

    let out = s.kubectl(&["exec", "far", "--", "sh", "-c", "echo hi; echo err >&2"]);
    check(
        text(&out) == "hi\n" && String::from_utf8_lossy(&out.stderr) == "err\n",
        &format!("exec: {out:?}"),
    )?;
    let out = s.kubectl(&["exec", "far", "--", "sh", "-c", "exit 3"]);
    check(out.status.code() == Some(3), &format!("exit 3: {out:?}"))?;
    // stdin: piped in, closed at its end.
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(s.dir.join("kubeconfig.yaml"))
        .args(["exec", "-i", "far", "--", "sh", "-c"])
        .arg("while read l; do echo \"got $l\"; done; echo eof")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    use std::io::Write;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(b"hi from stdin\n")
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    check(
        text(&out) == "got hi from stdin\neof\n",
        &format!("exec -i: {out:?}"),
    )?;
    // A process that stops reading while stdin keeps coming still ends the exec.
    let cmd = format!(
        "yes | kubectl --kubeconfig {} exec -i far -- /bin/busybox head -n 1",
        s.dir.join("kubeconfig.yaml").display()
    );
    let out = Command::new("timeout")
        .args(["30", "sh", "-c", &cmd])
        .output()
        .map_err(|e| e.to_string())?;
    check(
        out.status.success() && text(&out) == "y\n",
        &format!("endless stdin: {out:?}"),
    )?;
    // A terminal: `script` gives kubectl a pty, so `-t` gets a tty in the container too.
    let cmd = format!(
        "kubectl --kubeconfig {} exec -it far -- sh -c 'tty; stty size; exit 4'",
        s.dir.join("kubeconfig.yaml").display()
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let tty = text(&out);
    check(
        tty.contains("/dev/pts/") && out.status.code() == Some(4),
        &format!("exec -it: {out:?}"),
    )?;

    // A pod no node runs: upstream's message, whichever streaming protocol kubectl tries.
    let pending = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"nowhere"},
        "spec":{"nodeSelector":{"no-such":"node"},"containers":[{"name":"c","image":"x"}]}}"#;
    let f = s.dir.join("nowhere.json");
    std::fs::write(&f, pending).map_err(|e| e.to_string())?;
    s.kubectl(&["create", "-f", f.to_str().unwrap_or_default()]);
    let out = s.kubectl(&["exec", "nowhere", "--", "true"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    check(
        !out.status.success() && err.contains("pod nowhere does not have a host assigned"),
        &format!("exec into an unscheduled pod: {err:?}"),
    )?;
    s.kubectl(&["delete", "pod", "nowhere", "--wait=false"]);

    // attach: the container's output from now on (written here through PID 1's stdout).
    let mut attach = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(s.dir.join("kubeconfig.yaml"))
        .args(["attach", "far"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = attach.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = false;
    while !seen && Instant::now() < deadline {
        s.kubectl(&[
            "exec",
            "far",
            "--",
            "sh",
            "-c",
            "echo attached > /proc/1/fd/1",
        ]);
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(700)) {
            if line == "attached" {
                seen = true;
                break;
            }
        }
    }
    let _ = attach.kill();
    let _ = attach.wait();
    check(seen, "kubectl attach never showed the container's output")?;

    // The endpoint itself: no client certificate, or another certificate of the cluster CA
    // (the admin's), is refused; the API server's kubelet-client certificate is served.
    let tls = s.dir.join("data/server/tls");
    let curl = |cert: Option<&str>| {
        let mut c = Command::new("curl");
        c.args(["-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg("--cacert")
            .arg(tls.join("server-ca.crt"));
        if let Some(name) = cert {
            c.arg("--cert")
                .arg(tls.join(format!("{name}.crt")))
                .arg("--key")
                .arg(tls.join(format!("{name}.key")));
        }
        let out = c
            .arg("https://10.99.0.2:10250/containerLogs/default/far/c")
            .output()
            .unwrap();
        (out.status.success(), text(&out))
    };
    let anonymous = curl(None);
    check(
        !anonymous.0 || anonymous.1 == "000",
        &format!("no client cert: {anonymous:?}"),
    )?;
    let admin = curl(Some("client-admin"));
    check(admin.1 == "403", &format!("admin cert: {admin:?}"))?;
    let apiserver = curl(Some("client-kube-apiserver-kubelet"));
    check(
        apiserver.1 == "200",
        &format!("kubelet-client cert: {apiserver:?}"),
    )?;
    Ok(())
}
