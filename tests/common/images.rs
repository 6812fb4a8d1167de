//! Builds a tiny test image from Debian's `busybox-static` as an OCI image layout tarball
//! (no registry, no network): one uncompressed layer with `/bin/busybox`, `/bin/sh`, and
//! `/www/index.html` for `busybox httpd`.

#![allow(dead_code)]

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Text served at `/index.html` by the test image.
pub const INDEX_HTML: &str = "hello from k3rs\n";

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn write_blob(layout: &Path, bytes: &[u8]) -> (String, usize) {
    let d = digest(bytes);
    let hex = d.trim_start_matches("sha256:");
    std::fs::write(layout.join("blobs/sha256").join(hex), bytes).unwrap();
    (d, bytes.len())
}

fn tar(dir: &Path, out: &Path) {
    let status = Command::new("tar")
        .args([
            "--numeric-owner",
            "--owner=0",
            "--group=0",
            "--mtime=@0",
            "--sort=name",
            "-C",
        ])
        .arg(dir)
        .arg("-cf")
        .arg(out)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success(), "tar failed");
}

/// Writes `<dir>/<file>` as an OCI-layout image archive named `name` (e.g.
/// `k3rs.test/busybox:1`) and returns its path.
pub fn build_busybox_image(dir: &Path, file: &str, name: &str) -> PathBuf {
    let work = dir.join(format!("build-{file}"));
    let rootfs = work.join("rootfs");
    for d in ["bin", "etc", "tmp", "www", "proc", "sys", "dev"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
        .expect("busybox-static is installed (/bin/busybox)");
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/echo")).unwrap();
    std::fs::write(rootfs.join("www/index.html"), INDEX_HTML).unwrap();
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").unwrap();

    let layer_tar = work.join("layer.tar");
    tar(&rootfs, &layer_tar);
    let layout = work.join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let layer = std::fs::read(&layer_tar).unwrap();
    let (layer_digest, layer_size) = write_blob(&layout, &layer);

    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/bin", "IMAGE_VAR=from-image"],
            "Cmd": ["/bin/sh"],
            "WorkingDir": "/"
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]}
    });
    let (config_digest, config_size) = write_blob(&layout, &serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}]
    });
    let (manifest_digest, manifest_size) =
        write_blob(&layout, &serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name}
        }]
    });
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let out = dir.join(file);
    tar(&layout, &out);
    std::fs::remove_dir_all(&work).unwrap();
    out
}
