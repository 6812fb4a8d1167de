//! `k3rs images import` and `k3rs images list` (real binary) against a private containerd
//! started the way the agent starts it, under `<data-dir>/agent/containerd` (needs root).

mod common;

use common::images::build_busybox_image;
use k3rs::agent::runtime::{ContainerdPaths, start_containerd};
use std::process::Command;
use tokio_util::sync::CancellationToken;

fn k3rs(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_k3rs"))
        .args(args)
        .env_remove("K3RS_CONTAINER_RUNTIME_ENDPOINT")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_import_registers_a_tarball_and_list_shows_it() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data_s = data.to_str().unwrap();

    // No containerd yet: the error names the socket.
    let out = k3rs(&["images", "list", "--data-dir", data_s]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("containerd.sock"), "{err}");

    let shutdown = CancellationToken::new();
    let supervised = start_containerd(
        ContainerdPaths {
            dir: data.join("agent/containerd"),
        },
        shutdown.clone(),
    )
    .await
    .unwrap();
    let image = build_busybox_image(tmp.path(), "busybox.tar", "k3rs.test/images-cli:1");
    let garbage = tmp.path().join("garbage.tar");
    std::fs::write(&garbage, b"not a tarball").unwrap();

    let out = k3rs(&[
        "images",
        "import",
        "--data-dir",
        data_s,
        image.to_str().unwrap(),
        garbage.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "one file failed: exit code says so");
    assert!(
        stdout.contains("importing ") && stdout.contains("k3rs.test/images-cli:1 sha256:"),
        "progress per file: {stdout}"
    );
    assert!(
        stderr.contains("garbage.tar"),
        "the error names the file: {stderr}"
    );

    let out = k3rs(&["images", "list", "--data-dir", data_s]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["REF", "DIGEST", "SIZE"]);
    let row = table
        .lines()
        .find(|l| l.starts_with("k3rs.test/images-cli:1 "))
        .unwrap_or_else(|| panic!("image listed: {table}"));
    assert!(row.contains("sha256:"), "{row}");
    // busybox-static is about a megabyte or more: the size counts the layer.
    assert!(row.contains("MiB"), "{row}");

    // The explicit endpoint flag reaches the same containerd.
    let out = k3rs(&[
        "images",
        "list",
        "--container-runtime-endpoint",
        supervised.socket.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("k3rs.test/images-cli:1"));

    shutdown.cancel();
    supervised.stopped().await;
}
