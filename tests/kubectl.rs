//! Stock kubectl (1.32 and 1.30) against a real `k3rs server`.

mod common;

use common::{KUBECTL, KUBECTL_130, TestServer, header};
use std::io::{BufRead, BufReader};
use std::process::Stdio;

const CM_YAML: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  labels: {app: web}
data:
  a: one
  b: two
";

const DEPLOY_YAML: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: c
        image: nginx:1.25
";

fn configmap_lifecycle(bin: &str) {
    let ts = TestServer::start();
    let f = ts.file("cm.yaml", CM_YAML.as_bytes());
    assert!(
        ts.ok(bin, &["create", "-f", &f])
            .contains("configmap/settings created")
    );
    let out = ts.ok(bin, &["get", "configmaps"]);
    assert_eq!(header(&out), ["NAME", "DATA", "AGE"]);
    assert!(
        out.lines()
            .any(|l| l.starts_with("settings") && l.split_whitespace().nth(1) == Some("2")),
        "{out}"
    );
    let yaml = ts.ok(bin, &["get", "cm", "settings", "-o", "yaml"]);
    assert!(
        yaml.contains("a: one") && yaml.contains("resourceVersion:") && yaml.contains("uid:"),
        "{yaml}"
    );
    let json = ts.ok(bin, &["get", "cm", "settings", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["metadata"]["namespace"], "default");
    assert!(
        ts.ok(bin, &["delete", "cm", "settings"])
            .contains("configmap \"settings\" deleted")
    );
    let err = ts.fails(bin, &["get", "cm", "settings"]);
    assert!(
        err.contains("Error from server (NotFound): configmaps \"settings\" not found"),
        "{err}"
    );
}

#[test]
fn kubectl_132_creates_lists_shows_and_deletes_configmaps() {
    configmap_lifecycle(KUBECTL);
}

#[test]
fn kubectl_130_creates_lists_shows_and_deletes_configmaps() {
    configmap_lifecycle(KUBECTL_130);
}

#[test]
fn namespaces_list_with_a_status_column_and_the_builtins_exist() {
    let ts = TestServer::start();
    let out = ts.ok(KUBECTL, &["get", "namespaces"]);
    assert_eq!(header(&out), ["NAME", "STATUS", "AGE"]);
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(ns) && l.contains("Active")),
            "{out}"
        );
    }
    let svc = ts.ok(
        KUBECTL,
        &[
            "get",
            "svc",
            "kubernetes",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ],
    );
    assert_eq!(svc, "10.43.0.1");
}

#[test]
fn apply_creates_then_updates_then_reports_unchanged() {
    let ts = TestServer::start();
    let f = ts.file("cm.yaml", CM_YAML.as_bytes());
    assert!(
        ts.ok(KUBECTL, &["apply", "-f", &f])
            .contains("configmap/settings created")
    );
    assert!(
        ts.ok(KUBECTL, &["apply", "-f", &f])
            .contains("configmap/settings unchanged")
    );
    let f2 = ts.file(
        "cm2.yaml",
        CM_YAML.replace("b: two\n", "c: three\n").as_bytes(),
    );
    assert!(
        ts.ok(KUBECTL, &["apply", "-f", &f2])
            .contains("configmap/settings configured")
    );
    let data = ts.ok(
        KUBECTL,
        &["get", "cm", "settings", "-o", "jsonpath={.data}"],
    );
    let v: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert_eq!(v, serde_json::json!({"a": "one", "c": "three"}));
    let d = ts.file("d.yaml", DEPLOY_YAML.as_bytes());
    assert!(
        ts.ok(KUBECTL_130, &["apply", "-f", &d])
            .contains("deployment.apps/web created")
    );
    assert!(
        ts.ok(KUBECTL_130, &["apply", "-f", &d])
            .contains("deployment.apps/web unchanged")
    );
}

#[test]
fn label_patch_and_scale_change_the_stored_object() {
    let ts = TestServer::start();
    let d = ts.file("d.yaml", DEPLOY_YAML.as_bytes());
    ts.ok(KUBECTL, &["create", "-f", &d]);
    assert!(
        ts.ok(KUBECTL, &["label", "deploy", "web", "tier=front"])
            .contains("labeled")
    );
    let out = ts.ok(
        KUBECTL,
        &["get", "deploy", "-l", "tier=front", "-o", "name"],
    );
    assert_eq!(out.trim(), "deployment.apps/web");
    assert!(
        ts.ok(
            KUBECTL,
            &["get", "deploy", "-l", "tier!=front", "-o", "name"]
        )
        .trim()
        .is_empty()
    );
    assert!(
        ts.ok(KUBECTL, &["scale", "deploy", "web", "--replicas=5"])
            .contains("scaled")
    );
    let r = ts.ok(
        KUBECTL,
        &[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.replicas} {.metadata.generation}",
        ],
    );
    assert_eq!(r, "5 2");
    ts.ok(
        KUBECTL,
        &[
            "patch",
            "deploy",
            "web",
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/spec/replicas","value":1}]"#,
        ],
    );
    ts.ok(
        KUBECTL,
        &[
            "patch",
            "deploy",
            "web",
            "--type=merge",
            "-p",
            r#"{"metadata":{"annotations":{"k":"v"}}}"#,
        ],
    );
    ts.ok(
        KUBECTL,
        &[
            "patch",
            "deploy",
            "web",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"nginx:1.27"}]}}}}"#,
        ],
    );
    let r = ts.ok(KUBECTL, &["get", "deploy", "web", "-o", "jsonpath={.spec.replicas} {.metadata.annotations.k} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].imagePullPolicy}"]);
    assert_eq!(r, "1 v nginx:1.27 IfNotPresent");
}

#[test]
fn get_watch_prints_an_object_created_after_it_started() {
    let ts = TestServer::start();
    let mut child = ts
        .command(
            KUBECTL,
            &["get", "cm", "--watch-only", "--request-timeout=20s"],
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Keep creating until the watcher (which may connect late) reports one of them.
    let mut seen = false;
    for i in 0..40 {
        let f = ts.file(
            &format!("w{i}.yaml"),
            CM_YAML.replace("settings", &format!("w{i}")).as_bytes(),
        );
        ts.ok(KUBECTL, &["create", "-f", &f]);
        if let Some(line) = rx
            .recv_timeout(std::time::Duration::from_millis(500))
            .ok()
            .filter(|l| !l.starts_with("NAME") && !l.starts_with("kube-root-ca.crt"))
        {
            assert!(line.starts_with('w'), "{line}");
            seen = true;
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen, "the watch never printed a created configmap");
}

#[test]
fn api_resources_lists_builtin_kinds_with_short_names() {
    let ts = TestServer::start();
    let out = ts.ok(KUBECTL, &["api-resources"]);
    for (name, short) in [
        ("pods", "po"),
        ("deployments", "deploy"),
        ("services", "svc"),
        ("configmaps", "cm"),
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(name) && l.contains(short)),
            "{name}: {out}"
        );
    }
    assert!(out.contains("horizontalpodautoscalers") && out.contains("customresourcedefinitions"));
    let all = ts.ok(
        KUBECTL,
        &["api-resources", "--categories=all", "-o", "name"],
    );
    assert!(
        all.contains("deployments.apps") && !all.contains("configmaps"),
        "{all}"
    );
}

#[test]
fn errors_carry_upstream_reasons_and_messages() {
    let ts = TestServer::start();
    let f = ts.file("cm.yaml", CM_YAML.as_bytes());
    ts.ok(KUBECTL, &["create", "-f", &f]);
    let err = ts.fails(KUBECTL, &["create", "-f", &f]);
    assert!(
        err.contains("(AlreadyExists)") && err.contains("configmaps \"settings\" already exists"),
        "{err}"
    );
    let bad = ts.file(
        "bad.yaml",
        CM_YAML.replace("settings", "Bad_Name").as_bytes(),
    );
    let err = ts.fails(KUBECTL, &["create", "-f", &bad]);
    assert!(err.contains("The ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"), "{err}");
    let err = ts.fails(KUBECTL, &["get", "deploy", "nope"]);
    assert!(err.contains("deployments.apps \"nope\" not found"), "{err}");
    let err = ts.fails(KUBECTL, &["create", "-n", "missing", "-f", &f]);
    assert!(err.contains("namespaces \"missing\" not found"), "{err}");
}

#[test]
fn bad_input_is_rejected_and_nothing_is_stored() {
    let ts = TestServer::start();
    let url = "/api/v1/namespaces/default/configmaps";
    let malformed = ts.file("m.json", b"{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",");
    let err = ts.fails(KUBECTL, &["create", "--raw", url, "-f", &malformed]);
    assert!(
        err.contains("BadRequest") || err.contains("json parse error"),
        "{err}"
    );
    let wrong = ts.file(
        "w.json",
        br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}"#,
    );
    let err = ts.fails(KUBECTL, &["create", "--raw", url, "-f", &wrong]);
    assert!(err.contains("does not match the expected kind"), "{err}");
    let wrong_v = ts.file(
        "v.json",
        br#"{"apiVersion":"apps/v1","kind":"ConfigMap","metadata":{"name":"x"}}"#,
    );
    assert!(
        ts.fails(KUBECTL, &["create", "--raw", url, "-f", &wrong_v])
            .contains("does not match the expected API version")
    );
    let mut huge =
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"a":""#.to_vec();
    huge.extend(std::iter::repeat_n(b'x', 4 * 1024 * 1024));
    huge.extend(br#""}}"#);
    let huge = ts.file("h.json", &huge);
    let err = ts.fails(KUBECTL, &["create", "--raw", url, "-f", &huge]);
    assert!(
        err.contains("Request entity too large") || err.contains("RequestEntityTooLarge"),
        "{err}"
    );
    let unknown = ts.file(
        "u.yaml",
        CM_YAML.replace("data:", "bogus: 1\ndata:").as_bytes(),
    );
    let err = ts.fails(KUBECTL, &["create", "-f", &unknown]);
    assert!(
        err.contains("strict decoding error: unknown field \"bogus\""),
        "{err}"
    );
    let badtype = ts.file(
        "t.yaml",
        DEPLOY_YAML
            .replace("replicas: 2", "replicas: two")
            .as_bytes(),
    );
    assert!(
        !ts.run(KUBECTL, &["create", "--validate=false", "-f", &badtype])
            .status
            .success()
    );
    // Controllers may add kube-root-ca.crt; nothing from the bad requests may exist.
    let out = ts.ok(KUBECTL, &["get", "cm,deploy", "-o", "name"]);
    assert!(
        out.lines().all(|l| l == "configmap/kube-root-ca.crt"),
        "something was stored: {out}"
    );
}

#[test]
fn deleting_a_namespace_removes_its_objects() {
    let ts = TestServer::start();
    ts.ok(
        KUBECTL,
        &[
            "create",
            "-f",
            &ts.file(
                "ns.yaml",
                b"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n",
            ),
        ],
    );
    let f = ts.file("cm.yaml", CM_YAML.as_bytes());
    ts.ok(KUBECTL, &["create", "-n", "team", "-f", &f]);
    assert!(
        ts.ok(KUBECTL, &["get", "cm", "-A", "-o", "name"])
            .contains("settings")
    );
    ts.ok(KUBECTL, &["delete", "ns", "team"]);
    let left = ts.ok(KUBECTL, &["get", "cm", "-A", "-o", "name"]);
    assert!(!left.contains("settings"), "{left}");
    assert!(
        ts.fails(KUBECTL, &["get", "ns", "team"])
            .contains("not found")
    );
}

const CRD_YAML: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer}
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
"#;

#[test]
fn custom_resources_are_served_with_their_printer_columns_and_schema() {
    let ts = TestServer::start();
    ts.ok(
        KUBECTL,
        &["apply", "-f", &ts.file("crd.yaml", CRD_YAML.as_bytes())],
    );
    let w = ts.file(
        "w.yaml",
        b"apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w1\nspec:\n  size: 3\n",
    );
    assert!(
        ts.ok(KUBECTL, &["apply", "-f", &w])
            .contains("widget.example.com/w1 created")
    );
    let out = ts.ok(KUBECTL, &["get", "wd"]);
    assert_eq!(header(&out), ["NAME", "SIZE"]);
    assert!(
        out.lines()
            .any(|l| l.starts_with("w1") && l.split_whitespace().nth(1) == Some("3")),
        "{out}"
    );
    let bad = ts.file(
        "b.yaml",
        b"apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w2\nspec:\n  size: big\n",
    );
    let err = ts.fails(KUBECTL, &["apply", "-f", &bad]);
    assert!(
        err.contains("Invalid") && err.contains("spec.size"),
        "{err}"
    );
    ts.ok(KUBECTL, &["delete", "crd", "widgets.example.com"]);
}

#[test]
fn unknown_fields_are_pruned_when_not_strict() {
    let ts = TestServer::start();
    let cm = ts.file(
        "cm.yaml",
        CM_YAML.replace("\ndata:", "\nbogus: 1\ndata:").as_bytes(),
    );
    // kubectl's --validate=warn sends fieldValidation=Warn: accepted, with a warning.
    let out = ts.run(KUBECTL, &["create", "--validate=warn", "-f", &cm]);
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown field \"bogus\""), "{stderr}");
    let stored = ts.ok(KUBECTL, &["get", "cm", "settings", "-o", "json"]);
    assert!(!stored.contains("bogus"), "unknown field stored: {stored}");
    assert!(stored.contains("\"a\": \"one\""), "{stored}");

    ts.ok(
        KUBECTL,
        &["apply", "-f", &ts.file("crd.yaml", CRD_YAML.as_bytes())],
    );
    let w = ts.file(
        "w.yaml",
        b"apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w1\nspec:\n  size: 3\n  colour: red\nstatus:\n  free: form\n",
    );
    ts.ok(KUBECTL, &["create", "--validate=ignore", "-f", &w]);
    let stored = ts.ok(KUBECTL, &["get", "wd", "w1", "-o", "json"]);
    assert!(!stored.contains("colour"), "CR not pruned: {stored}");
    assert!(stored.contains("\"size\": 3"), "{stored}");
}

#[test]
fn typed_kubectl_commands_send_protobuf_that_the_server_decodes() {
    let ts = TestServer::start();
    ts.ok(KUBECTL, &["create", "namespace", "team"]);
    ts.ok(
        KUBECTL,
        &[
            "-n",
            "team",
            "create",
            "configmap",
            "c",
            "--from-literal=k=v",
        ],
    );
    ts.ok(
        KUBECTL,
        &[
            "-n",
            "team",
            "create",
            "secret",
            "generic",
            "s",
            "--from-literal=p=q",
        ],
    );
    ts.ok(
        KUBECTL,
        &[
            "-n",
            "team",
            "create",
            "deployment",
            "web",
            "--image=nginx:1.25",
            "--replicas=0",
        ],
    );
    ts.ok(
        KUBECTL,
        &[
            "-n",
            "team",
            "run",
            "p",
            "--image=busybox:1.36",
            "--",
            "sleep",
            "60",
        ],
    );
    let cm = ts.ok(
        KUBECTL,
        &["-n", "team", "get", "cm", "c", "-o", "jsonpath={.data.k}"],
    );
    assert_eq!(cm, "v");
    let s = ts.ok(
        KUBECTL,
        &[
            "-n",
            "team",
            "get",
            "secret",
            "s",
            "-o",
            "jsonpath={.data.p} {.type}",
        ],
    );
    assert_eq!(s, "cQ== Opaque");
    let d = ts.ok(
        KUBECTL,
        &[
            "-n",
            "team",
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image}",
        ],
    );
    assert_eq!(d, "0 nginx:1.25", "replicas 0 must survive decoding");
    let p = ts.ok(
        KUBECTL,
        &[
            "-n",
            "team",
            "get",
            "pod",
            "p",
            "-o",
            "jsonpath={.spec.containers[0].args}",
        ],
    );
    assert_eq!(p, r#"["sleep","60"]"#);
}

#[test]
fn server_side_apply_tracks_managers_and_reports_conflicts() {
    let ts = TestServer::start();
    let d = ts.file("d.yaml", DEPLOY_YAML.as_bytes());
    assert!(
        ts.ok(KUBECTL, &["apply", "--server-side", "-f", &d])
            .contains("serverside-applied")
    );
    ts.ok(KUBECTL, &["scale", "deploy", "web", "--replicas=4"]);
    let err = ts.fails(KUBECTL, &["apply", "--server-side", "-f", &d]);
    assert!(
        err.contains("Apply failed with 1 conflict") && err.contains(".spec.replicas"),
        "{err}"
    );
    ts.ok(
        KUBECTL,
        &["apply", "--server-side", "--force-conflicts", "-f", &d],
    );
    let r = ts.ok(
        KUBECTL,
        &["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"],
    );
    assert_eq!(r, "2");
    let mf = ts.ok(
        KUBECTL,
        &[
            "get",
            "deploy",
            "web",
            "--show-managed-fields",
            "-o",
            "jsonpath={.metadata.managedFields[*].manager}",
        ],
    );
    assert!(mf.contains("kubectl"), "{mf}");
}

#[test]
fn auth_commands_and_service_account_tokens_work() {
    let ts = TestServer::start();
    assert_eq!(
        ts.ok(KUBECTL, &["auth", "can-i", "delete", "pods"]).trim(),
        "yes"
    );
    let who = ts.ok(KUBECTL, &["auth", "whoami"]);
    assert!(
        who.contains("system:admin") && who.contains("system:masters"),
        "{who}"
    );
    ts.ok(KUBECTL, &["create", "serviceaccount", "bot"]);
    let token = ts.ok(KUBECTL, &["create", "token", "bot"]);
    let server = format!("https://127.0.0.1:{}", ts.port);
    let empty = ts.file("empty.yaml", b"apiVersion: v1\nkind: Config\n");
    let base = [
        "--kubeconfig",
        empty.as_str(),
        "--server",
        server.as_str(),
        "--insecure-skip-tls-verify",
    ];
    let mut with_token: Vec<&str> = base.to_vec();
    with_token.extend(["--token", token.trim(), "get", "ns", "-o", "name"]);
    let out = std::process::Command::new(KUBECTL)
        .args(&with_token)
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("namespace/default")
    );
    let mut bad: Vec<&str> = base.to_vec();
    bad.extend(["--token", "not-a-token", "get", "ns"]);
    let out = std::process::Command::new(KUBECTL)
        .args(&bad)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("Unauthorized"));
}

#[test]
fn objects_survive_a_server_restart() {
    let ts = TestServer::start();
    ts.ok(
        KUBECTL,
        &["create", "-f", &ts.file("cm.yaml", CM_YAML.as_bytes())],
    );
    let rv = ts.ok(
        KUBECTL,
        &[
            "get",
            "cm",
            "settings",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ],
    );
    let ts = ts.restart();
    let after = ts.ok(
        KUBECTL,
        &[
            "get",
            "cm",
            "settings",
            "-o",
            "jsonpath={.metadata.resourceVersion} {.data.a}",
        ],
    );
    assert_eq!(after, format!("{rv} one"));
    let ns = ts.ok(KUBECTL, &["get", "ns", "-o", "name"]);
    assert_eq!(ns.lines().count(), 4, "{ns}");
}

#[test]
fn explain_reads_the_openapi_v3_documents() {
    let ts = TestServer::start();
    let out = ts.ok(KUBECTL, &["explain", "deployment.spec.replicas"]);
    assert!(
        out.contains("KIND:       Deployment") && out.contains("replicas <integer>"),
        "{out}"
    );
    let out = ts.ok(KUBECTL_130, &["explain", "pods.spec.containers.image"]);
    assert!(
        out.contains("image\t<string>") || out.contains("image <string>"),
        "{out}"
    );
    ts.ok(
        KUBECTL,
        &["apply", "-f", &ts.file("crd.yaml", CRD_YAML.as_bytes())],
    );
    let out = ts.ok(KUBECTL, &["explain", "widgets.spec.size"]);
    assert!(out.contains("size <integer>"), "{out}");
}

#[test]
fn services_get_addresses_from_the_service_cidr_and_unique_node_ports() {
    let ts = TestServer::start_with(&["--service-cidr", "10.96.0.0/16"]);
    let ip = |name: &str| {
        ts.ok(
            KUBECTL,
            &["get", "svc", name, "-o", "jsonpath={.spec.clusterIP}"],
        )
    };
    assert_eq!(ip("kubernetes"), "10.96.0.1");
    ts.ok(
        KUBECTL,
        &["create", "service", "nodeport", "np", "--tcp=80:8080"],
    );
    let np_ip = ip("np");
    assert!(
        np_ip.starts_with("10.96.") && np_ip != "10.96.0.1",
        "{np_ip}"
    );
    let port: u32 = ts
        .ok(
            KUBECTL,
            &[
                "get",
                "svc",
                "np",
                "-o",
                "jsonpath={.spec.ports[0].nodePort}",
            ],
        )
        .parse()
        .unwrap();
    assert!((30000..=32767).contains(&port), "{port}");
    let taken = ts.fails(
        KUBECTL,
        &[
            "create",
            "service",
            "nodeport",
            "np2",
            "--tcp=80:8080",
            &format!("--node-port={port}"),
        ],
    );
    assert!(
        taken.contains("provided port is already allocated"),
        "{taken}"
    );
    let outside = ts.fails(
        KUBECTL,
        &[
            "create",
            "service",
            "clusterip",
            "odd",
            "--tcp=80",
            "--clusterip=10.43.0.50",
        ],
    );
    assert!(outside.contains("not in the valid range"), "{outside}");
    // Deleting the Service releases its address and port for others.
    ts.ok(KUBECTL, &["delete", "svc", "np"]);
    ts.ok(
        KUBECTL,
        &[
            "create",
            "service",
            "clusterip",
            "same",
            "--tcp=80",
            &format!("--clusterip={np_ip}"),
        ],
    );
    ts.ok(
        KUBECTL,
        &[
            "create",
            "service",
            "nodeport",
            "np2",
            "--tcp=80:8080",
            &format!("--node-port={port}"),
        ],
    );
    assert_eq!(ip("same"), np_ip);
    // Nothing from the refused creates was stored.
    let names = ts.ok(KUBECTL, &["get", "svc", "-o", "name"]);
    assert!(!names.contains("service/odd"), "{names}");
}
