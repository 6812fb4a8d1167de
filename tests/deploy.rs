//! Auto-deployed manifests against the real binary (`--disable-agent`): files in
//! `<data-dir>/server/manifests` applied at start, edits applied and pruned, new files picked
//! up while running, `.skip`, a broken document not blocking the rest, `--disable` of a
//! built-in.

mod common;

use common::TestServer;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn manifests(dir: &Path) -> PathBuf {
    dir.join("data/server/manifests")
}

fn cm(name: &str, value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  v: {value:?}\n")
}

/// kubectl get's jsonpath output, or None when the object does not exist.
fn get(ts: &TestServer, args: &[&str]) -> Option<String> {
    let out = ts.kubectl(args);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Poll `check` until it holds (the deployer looks every 3 s).
fn eventually(ts: &TestServer, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for: {what}\nserver log:\n{}",
            ts.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn cm_value(ts: &TestServer, name: &str) -> Option<String> {
    get(ts, &["get", "cm", name, "-o", "jsonpath={.data.v}"])
}

#[test]
fn manifests_are_applied_updated_pruned_picked_up_and_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifests(dir.path());
    std::fs::create_dir_all(&m).unwrap();
    std::fs::write(
        m.join("app.yaml"),
        format!("{}---\n{}", cm("app-a", "1"), cm("app-b", "1")),
    )
    .unwrap();
    std::fs::write(m.join("skipped.yaml"), cm("skipped", "1")).unwrap();
    std::fs::write(m.join("skipped.yaml.skip"), "").unwrap();
    std::fs::write(
        m.join("broken.yaml"),
        format!(
            "{}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{}}\n",
            cm("from-broken", "1")
        ),
    )
    .unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut ts = TestServer::start_in(dir, port, &[]);

    // At start: both files' objects, the built-in, and nothing from the skipped file.
    eventually(&ts, "app-a and app-b", || {
        cm_value(&ts, "app-a").as_deref() == Some("1") && cm_value(&ts, "app-b").is_some()
    });
    eventually(&ts, "the good document of broken.yaml", || {
        cm_value(&ts, "from-broken").is_some()
    });
    eventually(&ts, "built-in rolebindings", || {
        get(
            &ts,
            &["get", "clusterrolebinding", "kube-apiserver-kubelet-admin"],
        )
        .is_some()
    });
    assert!(
        cm_value(&ts, "skipped").is_none(),
        "a .skip sibling must skip the file"
    );
    let log = ts.log();
    assert!(
        log.contains("broken.yaml") && log.contains("document=2"),
        "the bad document is named in the log:\n{log}"
    );
    let managers = get(
        &ts,
        &[
            "get",
            "cm",
            "app-a",
            "-o",
            "jsonpath={.metadata.managedFields[*].manager}",
        ],
    )
    .unwrap();
    assert!(
        managers.contains("k3rs-deploy"),
        "field manager: {managers}"
    );
    let record = get(
        &ts,
        &[
            "get",
            "cm",
            "-n",
            "kube-system",
            "k3rs-addon-app",
            "-o",
            "jsonpath={.data.objects}",
        ],
    )
    .unwrap();
    assert!(
        record.contains("app-a") && record.contains("app-b"),
        "{record}"
    );

    // Edit: app-a changes, app-b leaves the file and is deleted.
    std::fs::write(m.join("app.yaml"), cm("app-a", "2")).unwrap();
    eventually(&ts, "app-a updated and app-b deleted", || {
        cm_value(&ts, "app-a").as_deref() == Some("2") && cm_value(&ts, "app-b").is_none()
    });

    // A new file while running; then deleting it leaves its objects (k3s behaviour).
    std::fs::write(m.join("later.yml"), cm("later", "x")).unwrap();
    eventually(&ts, "later.yml picked up", || {
        cm_value(&ts, "later").is_some()
    });
    std::fs::remove_file(m.join("later.yml")).unwrap();

    // Restart with --disable: the built-in file and its objects go, the rest stays.
    let dir = std::mem::replace(&mut ts.dir, tempfile::tempdir().unwrap());
    drop(ts);
    let ts = TestServer::start_in(dir, port, &["--disable", "rolebindings,other"]);
    eventually(&ts, "disabled built-in deleted", || {
        get(
            &ts,
            &["get", "clusterrolebinding", "kube-apiserver-kubelet-admin"],
        )
        .is_none()
    });
    assert!(!manifests(ts.dir.path()).join("rolebindings.yaml").exists());
    assert_eq!(cm_value(&ts, "app-a").as_deref(), Some("2"));
    assert!(
        cm_value(&ts, "later").is_some(),
        "a deleted file keeps its objects"
    );
    assert!(ts.log().contains("--disable names no built-in manifest"));
}
