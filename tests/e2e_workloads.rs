//! End to end with a real `k3rs server` running its built-in agent on a real containerd
//! (needs root): a Deployment of busybox pods serving HTTP, `kubectl logs` (with `-f`),
//! `kubectl exec` (output and exit codes), a kill -9 restart that re-adopts running
//! pods, lifecycle hooks, OOMKilled and sidecars. One server for the whole file: it is heavy.

mod common;

use common::agent_server::{AgentServer as Server, data_dir_with_busybox};
use common::images::INDEX_HTML;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

fn http_get(ip: &str, port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let addr: std::net::SocketAddr = format!("{ip}:{port}").parse().ok()?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: k3rs.test/busybox:1
        imagePullPolicy: Never
        command: ["/bin/sh", "-c", "echo started; (i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done) & exec /bin/busybox httpd -f -p 8080 -h /www"]
"#;

#[test]
fn deployment_serves_http_logs_follow_exec_exit_codes_and_survives_a_kill_9_restart() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let started = Instant::now();
    let (tmp, _) = data_dir_with_busybox("k3rs.test/busybox:1");
    let mut server = Server::start(tmp.path());

    // A Deployment of 3 reaches Running, and each pod answers HTTP from the host.
    server.apply(DEPLOYMENT);
    server.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let pods = server.pods("app=web");
    assert_eq!(pods.len(), 3, "{pods:?}");
    for p in &pods {
        assert_eq!(p["status"]["phase"], "Running", "{p}");
        let ip = p["status"]["podIP"].as_str().unwrap();
        let body = http_get(ip, 8080).unwrap_or_default();
        assert!(body.contains(INDEX_HTML), "pod {ip}: {body:?}");
    }
    let name = pods[0]["metadata"]["name"].as_str().unwrap().to_string();

    // kubectl logs: the first line, and later ticks.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let logs = server.ok(&["logs", &name]);
        if logs.starts_with("started\n") && logs.contains("tick 1\n") {
            break;
        }
        assert!(Instant::now() < deadline, "logs: {logs:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let tail = server.ok(&["logs", &name, "--tail=1"]);
    assert_eq!(tail.lines().count(), 1, "{tail:?}");

    // kubectl logs -f streams new lines as they are written.
    let mut follow = server
        .cmd(&["logs", "-f", &name, "--tail=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(follow.stdout.take().unwrap());
    let mut seen = Vec::new();
    for _ in 0..3 {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        seen.push(line);
    }
    let _ = follow.kill();
    let _ = follow.wait();
    let ticks: Vec<u64> = seen
        .iter()
        .filter_map(|l| l.trim().strip_prefix("tick ")?.parse().ok())
        .collect();
    assert_eq!(ticks.len(), 3, "{seen:?}");
    assert!(ticks[0] < ticks[1] && ticks[1] < ticks[2], "{seen:?}");

    // Errors as upstream words them.
    let out = server.kubectl(&["logs", &name, "-c", "nope"]);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(&format!("container nope is not valid for pod {name}")),
        "{out:?}"
    );
    let out = server.kubectl(&["logs", "missing-pod"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not found"),
        "{out:?}"
    );

    // kubectl exec: output and exit codes.
    assert_eq!(server.ok(&["exec", &name, "--", "echo", "hi"]), "hi\n");
    let out = server.kubectl(&["exec", &name, "--", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let out = server.kubectl(&[
        "exec",
        &name,
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; true",
    ]);
    assert!(out.status.success(), "{out:?}");
    let both =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(both.contains("out") && both.contains("err"), "{both:?}");

    // kubectl < 1.30 speaks SPDY only: a clear error, not a hang.
    let old = "/usr/lib/google-cloud-sdk/bin/kubectl.1.29";
    if Path::new(old).exists() {
        let out = Command::new(old)
            .arg("--kubeconfig")
            .arg(server.kubeconfig())
            .args(["exec", &name, "--", "echo", "hi"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("SPDY is not"),
            "{out:?}"
        );
    }

    // kill -9 of the server (agent inside) and restart: same containers, no restarts.
    let before: Vec<(String, String, u64)> = server
        .pods("app=web")
        .iter()
        .map(|p| {
            let cs = &p["status"]["containerStatuses"][0];
            (
                p["metadata"]["name"].as_str().unwrap().to_string(),
                cs["containerID"].as_str().unwrap_or("").to_string(),
                cs["restartCount"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    server.kill9();
    server.spawn();
    // Give the restarted agent time to sync its pods and report status.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = server.pods("app=web").iter().all(|p| {
            p["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        });
        if ready
            && server
                .kubectl(&["exec", &name, "--", "echo", "hi"])
                .status
                .success()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pods not ready after restart: {}",
            server.tail()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let after: Vec<(String, String, u64)> = server
        .pods("app=web")
        .iter()
        .map(|p| {
            let cs = &p["status"]["containerStatuses"][0];
            (
                p["metadata"]["name"].as_str().unwrap().to_string(),
                cs["containerID"].as_str().unwrap_or("").to_string(),
                cs["restartCount"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let mut b = before.clone();
    let mut a = after.clone();
    b.sort();
    a.sort();
    assert_eq!(a, b, "containers changed across the restart");
    eprintln!("deployment, logs, exec, restart: {:?}", started.elapsed());

    restarts_probes_endpoints_and_cleanup(&server, tmp.path());
    eprintln!("e2e took {:?}", started.elapsed());
}

const POD_SCENARIOS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: crash}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: k3rs.test/busybox:1
    imagePullPolicy: Never
    command: ["/bin/sh", "-c", "echo crashing; exit 1"]
---
apiVersion: v1
kind: Pod
metadata: {name: live}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: k3rs.test/busybox:1
    imagePullPolicy: Never
    command: ["/bin/sh", "-c", "sleep 2; echo > /tmp/dead; exec sleep 3600"]
    livenessProbe:
      exec: {command: ["/bin/sh", "-c", "test ! -f /tmp/dead"]}
      periodSeconds: 1
      failureThreshold: 1
---
apiVersion: v1
kind: Pod
metadata: {name: gate, labels: {app: gate}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: k3rs.test/busybox:1
    imagePullPolicy: Never
    command: ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]
    readinessProbe:
      exec: {command: ["/bin/sh", "-c", "test -f /tmp/ready"]}
      periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: gate}
spec:
  selector: {app: gate}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: conf}
data: {greeting: one}
---
apiVersion: v1
kind: Pod
metadata: {name: reader}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: k3rs.test/busybox:1
    imagePullPolicy: Never
    command: ["/bin/sh", "-c", "exec sleep 3600"]
    volumeMounts: [{name: conf, mountPath: /etc/conf}]
  volumes: [{name: conf, configMap: {name: conf}}]
"#;

fn wait_for(what: &str, server: &Server, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out: {what}\n{}",
            server.tail()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn pod_json(server: &Server, name: &str) -> serde_json::Value {
    serde_json::from_str(&server.ok(&["get", "pod", name, "-o", "json"])).unwrap()
}

/// postStart/preStop hooks (writing to a hostPath), a failing postStart hook, and a
/// container over its memory limit.
const HOOK_SCENARIOS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: hooks}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: c
    image: k3rs.test/busybox:1
    imagePullPolicy: Never
    command: ["/bin/sh", "-c", "exec sleep 3600"]
    volumeMounts: [{name: out, mountPath: /out}]
    lifecycle:
      postStart: {exec: {command: ["/bin/sh", "-c", "echo started > /out/post"]}}
      preStop: {exec: {command: ["/bin/sh", "-c", "echo stopping > /out/pre"]}}
  volumes: [{name: out, hostPath: {path: HOOKDIR, type: DirectoryOrCreate}}]
---
apiVersion: v1
kind: Pod
metadata: {name: badhook}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: k3rs.test/busybox:1
    imagePullPolicy: Never
    command: ["/bin/sh", "-c", "exec sleep 3600"]
    lifecycle:
      postStart: {exec: {command: ["/bin/sh", "-c", "exit 3"]}}
---
apiVersion: v1
kind: Pod
metadata: {name: oom}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: k3rs.test/busybox:1
    imagePullPolicy: Never
    command: ["/bin/sh", "-c", "x=$(head -c 64m /dev/zero | tr '\\0' a); echo ${#x}"]
    resources: {limits: {memory: 16Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: sidecar}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: side
    image: k3rs.test/busybox:1
    imagePullPolicy: Never
    restartPolicy: Always
    command: ["/bin/sh", "-c", "exec sleep 3600"]
  containers:
  - name: c
    image: k3rs.test/busybox:1
    imagePullPolicy: Never
    command: ["/bin/sh", "-c", "sleep 1"]
"#;

fn restarts_probes_endpoints_and_cleanup(server: &Server, dir: &Path) {
    let hook_dir = dir.join("hooks");
    server.apply(&HOOK_SCENARIOS.replace("HOOKDIR", hook_dir.to_str().unwrap()));
    server.apply(POD_SCENARIOS);

    // A crashing container shows CrashLoopBackOff, and its restart count keeps growing.
    let mut first = 0;
    wait_for("CrashLoopBackOff in kubectl get pods", server, 40, || {
        let out = server.ok(&["get", "pod", "crash"]);
        let p = pod_json(server, "crash");
        first = p["status"]["containerStatuses"][0]["restartCount"]
            .as_u64()
            .unwrap_or(0);
        out.contains("CrashLoopBackOff") && first >= 1
    });
    wait_for("restartCount grows", server, 40, || {
        let p = pod_json(server, "crash");
        p["status"]["containerStatuses"][0]["restartCount"]
            .as_u64()
            .unwrap_or(0)
            > first
    });

    // A failing liveness probe restarts the container.
    wait_for("liveness restart", server, 30, || {
        let p = pod_json(server, "live");
        p["status"]["containerStatuses"][0]["restartCount"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    });

    // Readiness gates the Service's endpoints.
    let endpoints = || -> (Vec<String>, Vec<String>) {
        let out = server.kubectl(&["get", "endpoints", "gate", "-o", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let ips = |k: &str| -> Vec<String> {
            v["subsets"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|s| s[k].as_array().cloned().unwrap_or_default())
                .filter_map(|a| a["ip"].as_str().map(str::to_string))
                .collect()
        };
        (ips("addresses"), ips("notReadyAddresses"))
    };
    let mut ip = String::new();
    wait_for("gate pod running with an IP", server, 30, || {
        let p = pod_json(server, "gate");
        ip = p["status"]["podIP"].as_str().unwrap_or("").to_string();
        !ip.is_empty() && p["status"]["phase"] == "Running"
    });
    wait_for(
        "not-ready pod listed as notReadyAddresses",
        server,
        20,
        || {
            let (ready, not_ready) = endpoints();
            ready.is_empty() && not_ready.contains(&ip)
        },
    );
    let out = server.kubectl(&["exec", "gate", "--", "sh", "-c", "echo > /tmp/ready"]);
    assert!(out.status.success(), "{out:?}");
    wait_for("ready pod in endpoints", server, 20, || {
        endpoints().0.contains(&ip)
    });

    // A ConfigMap update reaches the mounted file in the running pod.
    let read_greeting = || {
        let out = server.kubectl(&[
            "exec",
            "reader",
            "--",
            "sh",
            "-c",
            "read l < /etc/conf/greeting; echo $l",
        ]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    wait_for("configmap file in the pod", server, 30, || {
        read_greeting() == "one"
    });
    server.ok(&[
        "patch",
        "configmap",
        "conf",
        "-p",
        r#"{"data":{"greeting":"two"}}"#,
    ]);
    wait_for("configmap update in the pod", server, 30, || {
        read_greeting() == "two"
    });

    // postStart ran in the started container; a failing one kills it with an event.
    wait_for("postStart hook output", server, 30, || {
        std::fs::read_to_string(hook_dir.join("post")).is_ok_and(|s| s == "started\n")
    });
    let terminated = |name: &str| -> serde_json::Value {
        pod_json(server, name)["status"]["containerStatuses"][0]["state"]["terminated"].clone()
    };
    wait_for("failed postStart kills the container", server, 30, || {
        terminated("badhook")["exitCode"] == 137
    });
    let events = server.ok(&["get", "events", "-o", "json"]);
    assert!(events.contains("FailedPostStartHook"), "{events}");
    // A container over its memory limit is OOMKilled.
    wait_for("OOMKilled", server, 30, || !terminated("oom").is_null());
    let t = terminated("oom");
    assert_eq!(t["reason"], "OOMKilled", "{t}");
    assert_eq!(t["exitCode"], 137, "{t}");
    // A sidecar runs beside the container and is stopped once it finished.
    wait_for("sidecar pod succeeded", server, 30, || {
        let p = pod_json(server, "sidecar");
        p["status"]["phase"] == "Succeeded"
            && !p["status"]["initContainerStatuses"][0]["state"]["terminated"].is_null()
    });
    server.ok(&["delete", "pod", "hooks", "badhook", "oom", "sidecar"]);
    // preStop ran before the container was stopped.
    assert_eq!(
        std::fs::read_to_string(hook_dir.join("pre")).unwrap_or_default(),
        "stopping\n"
    );

    // Deleting everything leaves no container, task, netns or IP allocation.
    let all: serde_json::Value =
        serde_json::from_str(&server.ok(&["get", "pods", "-o", "json"])).unwrap();
    let uids: Vec<String> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["uid"].as_str().unwrap().to_string())
        .collect();
    assert!(uids.len() >= 6, "{uids:?}");
    let netns_left = || {
        uids.iter()
            .filter(|u| Path::new(&format!("/run/netns/k3rs-{u}")).exists())
            .count()
    };
    assert_eq!(
        netns_left(),
        uids.len(),
        "every pod has a netns while running"
    );
    server.ok(&["delete", "deployment", "web"]);
    server.ok(&["delete", "pod", "crash", "live", "gate", "reader"]);
    server.ok(&["delete", "service", "gate"]);
    let sock = dir.join("data/agent/containerd/containerd.sock");
    let ctr = |what: &str| -> String {
        let out = Command::new("ctr")
            .arg("-a")
            .arg(&sock)
            .args(["-n", "k8s.io", what, "ls", "-q"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let ipam = dir.join("data/agent/cni/ipam/k3rs");
    let allocated = || -> Vec<String> {
        std::fs::read_dir(&ipam)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    wait_for("no pods left", server, 60, || {
        server.ok(&["get", "pods", "-o", "name"]).trim().is_empty()
    });
    wait_for(
        "no containers, tasks, netns or IPs left",
        server,
        30,
        || {
            ctr("containers").is_empty()
                && ctr("tasks").is_empty()
                && allocated().is_empty()
                && netns_left() == 0
        },
    );
}

/// Pod start latency (apply → Running as seen through the API, polled every 100 ms) for a
/// Deployment of `n` replicas; returns (p50, max).
fn measure_start(server: &Server, name: &str, n: usize) -> (Duration, Duration) {
    let yaml = DEPLOYMENT
        .replace("name: web", &format!("name: {name}"))
        .replace("app: web", &format!("app: {name}"))
        .replace("replicas: 3", &format!("replicas: {n}"));
    let t0 = Instant::now();
    server.apply(&yaml);
    let mut seen: std::collections::HashMap<String, Duration> = Default::default();
    while seen.len() < n {
        assert!(t0.elapsed() < Duration::from_secs(120), "{}", server.tail());
        for p in server.pods(&format!("app={name}")) {
            if p["status"]["phase"] == "Running" {
                let pod = p["metadata"]["name"].as_str().unwrap().to_string();
                seen.entry(pod).or_insert_with(|| t0.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut v: Vec<Duration> = seen.into_values().collect();
    v.sort();
    (v[v.len() / 2], v[v.len() - 1])
}

/// `cargo test --test e2e_workloads -- --ignored --nocapture pod_start`
#[test]
#[ignore = "measurement, not a check"]
fn pod_start_latency_for_1_and_30_pods() {
    if !is_root() {
        return;
    }
    let (tmp, _) = data_dir_with_busybox("k3rs.test/busybox:1");
    let server = Server::start(tmp.path());
    let (p50, max) = measure_start(&server, "one", 1);
    eprintln!("1 pod: p50 {p50:?} max {max:?}");
    let (p50, max) = measure_start(&server, "thirty", 30);
    eprintln!("30 pods: p50 {p50:?} max {max:?}");
}
