//! Volumes end to end with a real `k3rs server` running its built-in agent on a real
//! containerd (needs root): the service-account token projection every pod gets
//! (`/var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt,namespace}`, and the token
//! authenticates against the API server), and PersistentVolumes (binding, a pod writing
//! through its claim to the host path, Released / deleted volumes after the claim goes).
//! One server for the whole file: it is heavy.

mod common;

use common::agent_server::{AgentServer as Server, data_dir_with_busybox};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn pod(name: &str, extra_spec: &str, command: &str) -> String {
    pod_with(name, extra_spec, command, "")
}

fn pod_with(name: &str, extra_spec: &str, command: &str, container_extra: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 1
{extra_spec}
  containers:
  - name: main
    image: k3rs.test/busybox:1
    imagePullPolicy: Never
    command: ["/bin/sh", "-c", "{command}"]
{container_extra}
"#
    )
}

const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

fn service_account_token_projection(s: &Server) {
    s.apply(&pod("reader", "", "sleep 3600"));
    s.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/reader",
        "--timeout=60s",
    ]);
    let p = s.json(&["get", "pod", "reader"]);
    assert_eq!(p["spec"]["serviceAccountName"], "default");
    let vol = &p["spec"]["volumes"][0];
    let name = vol["name"].as_str().unwrap();
    assert!(name.starts_with("kube-api-access-"), "{vol}");
    assert_eq!(
        vol["projected"],
        serde_json::json!({
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
            ]
        })
    );
    assert_eq!(
        p["spec"]["containers"][0]["volumeMounts"][0],
        serde_json::json!({"name": name, "readOnly": true, "mountPath": SA_DIR})
    );

    let cat = |f: &str| {
        s.ok(&[
            "exec",
            "reader",
            "--",
            "/bin/busybox",
            "cat",
            &format!("{SA_DIR}/{f}"),
        ])
    };
    assert_eq!(cat("namespace"), "default");
    let ca = cat("ca.crt");
    let published = s.ok(&[
        "get",
        "configmap",
        "kube-root-ca.crt",
        "-o",
        "jsonpath={.data.ca\\.crt}",
    ]);
    assert!(ca.contains("BEGIN CERTIFICATE"), "{ca:?}");
    assert_eq!(ca, published);
    let token = cat("token");
    assert_eq!(token.split('.').count(), 3, "a JWT: {token:?}");

    // The token, with that CA, authenticates from the host as the pod's service account.
    let ca_file = s.dir.join("sa-ca.crt");
    std::fs::write(&ca_file, &ca).unwrap();
    let kubeconfig = s.dir.join("sa-kubeconfig.yaml");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{}', certificate-authority: '{}'}}}}]\nusers: [{{name: u, user: {{token: '{token}'}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\ncurrent-context: x\n",
            s.https(),
            ca_file.display()
        ),
    )
    .unwrap();
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "system:serviceaccount:default:default",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A missing ServiceAccount is refused with upstream's words; automount can be declined.
    let f = s.dir.join("ghost.yaml");
    std::fs::write(&f, pod("ghost", "  serviceAccountName: ghost", "true")).unwrap();
    let out = s.kubectl(&["create", "-f", f.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "pods \"ghost\" is forbidden: error looking up service account default/ghost: serviceaccount \"ghost\" not found"
        ),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        &f,
        pod("quiet", "  automountServiceAccountToken: false", "true"),
    )
    .unwrap();
    let quiet: Value = serde_json::from_str(&s.ok(&[
        "create",
        "--dry-run=server",
        "-o",
        "json",
        "-f",
        f.to_str().unwrap(),
    ]))
    .unwrap();
    assert!(quiet["spec"].get("volumes").is_none(), "{quiet}");
    assert_eq!(quiet["spec"]["serviceAccountName"], "default");
}

fn pv(name: &str, size: &str, policy: &str, path: &Path, claim_ref: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: PersistentVolume
metadata: {{name: {name}}}
spec:
  capacity: {{storage: {size}}}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: {policy}
  hostPath: {{path: {}, type: DirectoryOrCreate}}
{claim_ref}
"#,
        path.display()
    )
}

fn pvc(name: &str, size: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: {name}}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: {size}}}}}
"#
    )
}

fn events_of(s: &Server, name: &str) -> String {
    s.ok(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={name}"),
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
    ])
}

fn wait_events(s: &Server, name: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ev = events_of(s, name);
        if ev.contains(want) {
            return;
        }
        assert!(Instant::now() < deadline, "events of {name}: {ev:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn persistent_volumes(s: &Server) {
    let small = s.dir.join("pv-small");
    let big = s.dir.join("pv-big");
    let reserved = s.dir.join("pv-reserved");
    s.apply(&pv("pv-small", "1Gi", "Retain", &small, ""));
    s.apply(&pv("pv-big", "5Gi", "Retain", &big, ""));
    s.apply(&pvc("data", "500Mi"));
    s.wait_output(
        &["get", "pvc", "data", "-o", "jsonpath={.status.phase}"],
        "Bound",
    );
    // The smallest volume that fits.
    let claim = s.json(&["get", "pvc", "data"]);
    assert_eq!(claim["spec"]["volumeName"], "pv-small", "{claim}");
    assert_eq!(claim["status"]["capacity"]["storage"], "1Gi");
    assert_eq!(
        claim["status"]["accessModes"],
        serde_json::json!(["ReadWriteOnce"])
    );
    s.wait_output(
        &["get", "pv", "pv-small", "-o", "jsonpath={.status.phase}"],
        "Bound",
    );
    let table = s.ok(&["get", "pv", "pv-small"]);
    assert_eq!(
        common::header(&table),
        [
            "NAME",
            "CAPACITY",
            "ACCESS",
            "MODES",
            "RECLAIM",
            "POLICY",
            "STATUS",
            "CLAIM",
            "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS",
            "REASON",
            "AGE"
        ],
        "{table}"
    );
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..6],
        ["pv-small", "1Gi", "RWO", "Retain", "Bound", "default/data"],
        "{table}"
    );
    let table = s.ok(&["get", "pvc", "data"]);
    assert_eq!(
        common::header(&table),
        [
            "NAME",
            "STATUS",
            "VOLUME",
            "CAPACITY",
            "ACCESS",
            "MODES",
            "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS",
            "AGE"
        ],
        "{table}"
    );
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..5],
        ["data", "Bound", "pv-small", "1Gi", "RWO"],
        "{table}"
    );

    // A pod writes through the claim into the volume's host path.
    s.apply(&pod_with(
        "writer",
        "  volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]",
        "echo hello > /data/hello.txt; sleep 3600",
        "    volumeMounts: [{name: data, mountPath: /data}]",
    ));
    s.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/writer",
        "--timeout=60s",
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(small.join("hello.txt"))
        .ok()
        .as_deref()
        != Some("hello\n")
    {
        assert!(
            Instant::now() < deadline,
            "no hello.txt in {}",
            small.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // No volume fits: the claim stays Pending with upstream's event, and so does its pod.
    s.apply(&pvc("lonely", "100Gi"));
    wait_events(
        s,
        "lonely",
        "FailedBinding: no persistent volumes available for this claim and no storage class is set",
    );
    assert_eq!(
        s.ok(&["get", "pvc", "lonely", "-o", "jsonpath={.status.phase}"]),
        "Pending"
    );
    s.apply(&pod(
        "waiter",
        "  volumes: [{name: d, persistentVolumeClaim: {claimName: lonely}}]",
        "true",
    ));
    wait_events(
        s,
        "waiter",
        "FailedScheduling: 0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims.",
    );
    assert_eq!(
        s.ok(&["get", "pod", "waiter", "-o", "jsonpath={.spec.nodeName}"]),
        ""
    );

    // The claim goes: Retain keeps the volume Released (data stays).
    s.ok(&["delete", "pod", "writer", "waiter", "--wait=true"]);
    s.ok(&["delete", "pvc", "data", "lonely"]);
    s.wait_output(
        &["get", "pv", "pv-small", "-o", "jsonpath={.status.phase}"],
        "Released",
    );
    assert!(small.join("hello.txt").exists());

    // claimRef pre-binding beats the smaller free volume; Delete deletes the object.
    s.apply(&pv(
        "pv-reserved",
        "10Gi",
        "Delete",
        &reserved,
        "  claimRef: {namespace: default, name: reserved}",
    ));
    s.apply(&pvc("reserved", "1Gi"));
    s.wait_output(
        &[
            "get",
            "pvc",
            "reserved",
            "-o",
            "jsonpath={.status.phase}/{.spec.volumeName}",
        ],
        "Bound/pv-reserved",
    );
    assert_eq!(
        s.ok(&["get", "pv", "pv-big", "-o", "jsonpath={.status.phase}"]),
        "Available"
    );
    s.ok(&["delete", "pvc", "reserved"]);
    s.wait_output(
        &["get", "pv", "-o", "jsonpath={.items[*].metadata.name}"],
        "pv-big pv-small",
    );
}

#[test]
fn pods_get_a_working_service_account_token_and_persistent_volumes_bind_mount_and_release() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let started = Instant::now();
    let (tmp, _) = data_dir_with_busybox("k3rs.test/busybox:1");
    let server = Server::start(tmp.path());
    service_account_token_projection(&server);
    persistent_volumes(&server);
    eprintln!("volumes e2e took {:?}", started.elapsed());
}
