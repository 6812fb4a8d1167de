//! Image import (OCI layout or `docker save` tarballs, optionally gzip/zstd-compressed),
//! registration, unpacking into the overlayfs snapshotter, and lookup.
//!
//! containerd 1.6 has no Transfer service, so this does by hand what `ctr import` does:
//! blobs go into the content store with verified digests and GC labels, the image record
//! points at the platform manifest, and each layer is applied with Snapshots.Prepare +
//! Diff.Apply + Snapshots.Commit under chain IDs (OCI image spec), all under a lease.
//! Registry pulls ([`super::pull`]) reuse the same blob writer, unpacker and registration.
//!
//! Owns: image formats and the unpack algorithm. May call: containerd (Content, Images,
//! Leases, Snapshots, Diff) and the filesystem.

use super::containerd::{Containerd, SNAPSHOTTER};
use super::content::{Source, sha256_hex};
use super::error::RuntimeError;
use super::tarball::TarIndex;
use super::{ImageConfig, ImageInfo, PullPolicy};
use containerd_client::services::v1::diff_client::DiffClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::snapshots::{
    CommitSnapshotRequest, PrepareSnapshotRequest, RemoveSnapshotRequest, StatSnapshotRequest,
};
use containerd_client::services::v1::{
    ApplyRequest, CreateImageRequest, GetImageRequest, Image, UpdateImageRequest,
};
use containerd_client::types::Descriptor;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use tracing::info;

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// An image registered by an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedImage {
    pub name: String,
    pub manifest_digest: String,
    pub chain_id: String,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub(super) struct Desc {
    #[serde(default)]
    pub(super) media_type: String,
    pub(super) digest: String,
    pub(super) size: i64,
    #[serde(default)]
    pub(super) annotations: HashMap<String, String>,
    #[serde(default)]
    pub(super) platform: Option<Platform>,
}

#[derive(Debug, Deserialize, Clone)]
pub(super) struct Platform {
    architecture: String,
    os: String,
}

#[derive(Debug, Deserialize)]
struct Index {
    manifests: Vec<Desc>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Manifest {
    pub(super) config: Desc,
    pub(super) layers: Vec<Desc>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ConfigFile {
    #[serde(default)]
    config: Option<ConfigBody>,
    pub(super) rootfs: RootFs,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct ConfigBody {
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RootFs {
    pub(super) diff_ids: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

pub(super) fn bad(what: impl Into<String>, reason: impl Into<String>) -> RuntimeError {
    RuntimeError::BadImage {
        what: what.into(),
        reason: reason.into(),
    }
}

pub(super) fn json<T: serde::de::DeserializeOwned>(
    what: &str,
    bytes: &[u8],
) -> Result<T, RuntimeError> {
    serde_json::from_slice(bytes).map_err(|source| RuntimeError::Json {
        what: what.into(),
        source,
    })
}

/// Chain IDs per the OCI image spec: `C0 = D0`, `Cn = sha256(Cn-1 + " " + Dn)`.
pub(super) fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => sha256_hex(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// Docker-style reference normalisation: `busybox` -> `docker.io/library/busybox:latest`.
pub fn normalise_image_name(name: &str) -> String {
    let (path, digest) = match name.split_once('@') {
        Some((p, d)) => (p, Some(d)),
        None => (name, None),
    };
    let (domain, rest) = match path.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_string(), rest.to_string())
        }
        Some(_) => ("docker.io".to_string(), path.to_string()),
        None => ("docker.io".to_string(), format!("library/{path}")),
    };
    let last = rest.rsplit('/').next().unwrap_or(&rest);
    let mut out = format!("{domain}/{rest}");
    match digest {
        Some(d) => {
            out.push('@');
            out.push_str(d);
        }
        None if !last.contains(':') => out.push_str(":latest"),
        None => {}
    }
    out
}

pub(super) fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        other => other,
    }
}

fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

fn pick_platform(index: &Index) -> Option<&Desc> {
    index
        .manifests
        .iter()
        .find(|m| {
            m.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == host_arch())
        })
        .or_else(|| index.manifests.iter().find(|m| m.platform.is_none()))
}

fn descriptor(d: &Desc) -> Descriptor {
    Descriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size,
        annotations: HashMap::new(),
    }
}

fn blob_path(digest: &str) -> Result<String, RuntimeError> {
    let (alg, hex) = digest
        .split_once(':')
        .ok_or_else(|| bad(digest, "digest without algorithm"))?;
    Ok(format!("blobs/{alg}/{hex}"))
}

/// Decompresses gzip/zstd archives (by magic bytes) into `scratch`; returns the tar to read
/// and whether it is a temporary file.
fn decompress_if_needed(path: &Path, scratch: &Path) -> Result<(PathBuf, bool), RuntimeError> {
    let mut magic = [0u8; 4];
    let mut f = std::fs::File::open(path).map_err(|e| RuntimeError::io(path, e))?;
    let n = f.read(&mut magic).map_err(|e| RuntimeError::io(path, e))?;
    let tool = match &magic[..n] {
        [0x1f, 0x8b, ..] => "gzip",
        [0x28, 0xb5, 0x2f, 0xfd] => "zstd",
        _ => return Ok((path.to_path_buf(), false)),
    };
    let out = scratch.join(format!("import-{}.tar", uuid::Uuid::new_v4().simple()));
    let file = std::fs::File::create(&out).map_err(|e| RuntimeError::io(&out, e))?;
    let status = std::process::Command::new(tool)
        .arg("-dc")
        .arg(path)
        .stdout(file)
        .status()
        .map_err(|e| RuntimeError::io(path, e))?;
    if !status.success() {
        let _ = std::fs::remove_file(&out);
        return Err(bad(
            path.display().to_string(),
            format!("{tool} -dc failed: {status}"),
        ));
    }
    Ok((out, true))
}

fn hash_file_range(path: &Path, offset: u64, size: u64) -> Result<String, RuntimeError> {
    let mut f = std::fs::File::open(path).map_err(|e| RuntimeError::io(path, e))?;
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| RuntimeError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut take = f.take(size);
    std::io::copy(&mut take, &mut hasher).map_err(|e| RuntimeError::io(path, e))?;
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}

impl Containerd {
    /// Imports every image tarball in `dir` (`*.tar`, `*.tar.gz`, `*.tgz`, `*.tar.zst`).
    /// One bad file does not stop the others; its error is returned alongside.
    pub async fn import_dir(
        &self,
        dir: &Path,
    ) -> Vec<(PathBuf, Result<Vec<ImportedImage>, RuntimeError>)> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return out;
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_image_archive(p))
            .collect();
        paths.sort();
        for path in paths {
            let r = self.import_tarball(&path).await;
            match &r {
                Ok(imgs) => {
                    info!(file = %path.display(), images = ?imgs.iter().map(|i| &i.name).collect::<Vec<_>>(), "imported images")
                }
                Err(e) => tracing::warn!(file = %path.display(), error = %e, "image import failed"),
            }
            out.push((path, r));
        }
        out
    }

    /// Imports one image archive and unpacks its images for this platform.
    pub async fn import_tarball(&self, path: &Path) -> Result<Vec<ImportedImage>, RuntimeError> {
        let scratch = self.options.scratch_dir.clone();
        let src = path.to_path_buf();
        let (tar_path, temporary) =
            tokio::task::spawn_blocking(move || decompress_if_needed(&src, &scratch))
                .await
                .map_err(|e| RuntimeError::Invalid(format!("import task: {e}")))??;
        let lease = self.create_lease("import").await?;
        let result = self.import_under_lease(&tar_path, &lease).await;
        self.delete_lease(&lease).await;
        if temporary {
            let _ = std::fs::remove_file(&tar_path);
        }
        result
    }

    async fn import_under_lease(
        &self,
        tar_path: &Path,
        lease: &str,
    ) -> Result<Vec<ImportedImage>, RuntimeError> {
        let p = tar_path.to_path_buf();
        let index = tokio::task::spawn_blocking(move || TarIndex::open(&p))
            .await
            .map_err(|e| RuntimeError::Invalid(format!("import task: {e}")))??;
        let what = tar_path.display().to_string();
        let mut imported = Vec::new();
        if index.get("index.json").is_some() {
            let top: Index = json("index.json", &index.read("index.json")?)?;
            // docker save (v25+) also writes manifest.json with the repo tags.
            let tags: Vec<String> = match index.get("manifest.json") {
                Some(_) => json::<Vec<DockerManifestEntry>>(
                    "manifest.json",
                    &index.read("manifest.json")?,
                )?
                .into_iter()
                .flat_map(|e| e.repo_tags.unwrap_or_default())
                .collect(),
                None => Vec::new(),
            };
            for desc in &top.manifests {
                let mut names: Vec<String> = Vec::new();
                if let Some(n) = desc.annotations.get("io.containerd.image.name") {
                    names.push(normalise_image_name(n));
                } else if let Some(n) = desc.annotations.get("org.opencontainers.image.ref.name")
                    && (n.contains(':') || n.contains('/'))
                {
                    names.push(normalise_image_name(n));
                }
                if names.is_empty() && top.manifests.len() == 1 {
                    names.extend(tags.iter().map(|t| normalise_image_name(t)));
                }
                if names.is_empty() {
                    return Err(bad(&what, format!("no image name for {}", desc.digest)));
                }
                let mut manifest_desc = desc.clone();
                if is_index(&desc.media_type) {
                    let bytes = index.read(&blob_path(&desc.digest)?)?;
                    let inner: Index = json("image index", &bytes)?;
                    manifest_desc = pick_platform(&inner)
                        .cloned()
                        .ok_or_else(|| bad(&what, format!("no linux/{} manifest", host_arch())))?;
                }
                let manifest_bytes = index.read(&blob_path(&manifest_desc.digest)?)?;
                let chain_id = self
                    .import_manifest(&index, &manifest_desc, &manifest_bytes, None, lease)
                    .await?;
                for name in names {
                    self.register(&name, &manifest_desc, lease).await?;
                    imported.push(ImportedImage {
                        name,
                        manifest_digest: manifest_desc.digest.clone(),
                        chain_id: chain_id.clone(),
                    });
                }
            }
        } else if index.get("manifest.json").is_some() {
            let entries: Vec<DockerManifestEntry> =
                json("manifest.json", &index.read("manifest.json")?)?;
            for entry in entries {
                let (desc, bytes, layer_files) = self.docker_manifest(&index, &entry).await?;
                let chain_id = self
                    .import_manifest(&index, &desc, &bytes, Some(&layer_files), lease)
                    .await?;
                for tag in entry.repo_tags.unwrap_or_default() {
                    let name = normalise_image_name(&tag);
                    self.register(&name, &desc, lease).await?;
                    imported.push(ImportedImage {
                        name,
                        manifest_digest: desc.digest.clone(),
                        chain_id: chain_id.clone(),
                    });
                }
            }
        } else {
            return Err(bad(
                &what,
                "neither index.json (OCI) nor manifest.json (docker save)",
            ));
        }
        Ok(imported)
    }

    /// Builds an OCI manifest for a `docker save` entry (its layers are uncompressed tars
    /// whose digest we compute). Returns the manifest descriptor, its bytes and the paths of
    /// layer tars inside the archive.
    async fn docker_manifest(
        &self,
        index: &TarIndex,
        entry: &DockerManifestEntry,
    ) -> Result<(Desc, Vec<u8>, Vec<String>), RuntimeError> {
        let config = index.read(&entry.config)?;
        let mut layers = Vec::new();
        for layer in &entry.layers {
            let e = index
                .get(layer)
                .ok_or_else(|| bad(index.path.display().to_string(), format!("{layer} missing")))?;
            let path = index.path.clone();
            let digest =
                tokio::task::spawn_blocking(move || hash_file_range(&path, e.offset, e.size))
                    .await
                    .map_err(|e| RuntimeError::Invalid(format!("hash task: {e}")))??;
            layers.push(
                serde_json::json!({"mediaType": OCI_LAYER_TAR, "digest": digest, "size": e.size}),
            );
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256_hex(&config), "size": config.len()},
            "layers": layers,
        });
        let bytes = serde_json::to_vec(&manifest).map_err(|source| RuntimeError::Json {
            what: "generated manifest".into(),
            source,
        })?;
        let desc = Desc {
            media_type: OCI_MANIFEST.into(),
            digest: sha256_hex(&bytes),
            size: bytes.len() as i64,
            annotations: HashMap::new(),
            platform: None,
        };
        Ok((desc, bytes, entry.layers.clone()))
    }

    /// Writes config, layers and manifest into the content store, then unpacks. Layer and
    /// config bytes come from `blobs/<alg>/<hex>` unless `layer_files`/the docker config are
    /// given. Returns the top chain ID.
    async fn import_manifest(
        &self,
        index: &TarIndex,
        desc: &Desc,
        manifest_bytes: &[u8],
        docker_layers: Option<&[String]>,
        lease: &str,
    ) -> Result<String, RuntimeError> {
        let manifest: Manifest = json("manifest", manifest_bytes)?;
        let config_bytes = match docker_layers {
            // In docker-save archives the config is a named file, not a blob path.
            Some(_) => {
                let cfg = json::<Vec<DockerManifestEntry>>(
                    "manifest.json",
                    &index.read("manifest.json")?,
                )?
                .into_iter()
                .map(|e| e.config)
                .find(|c| {
                    index
                        .read(c)
                        .map(|b| sha256_hex(&b) == manifest.config.digest)
                        .unwrap_or(false)
                })
                .ok_or_else(|| bad(index.path.display().to_string(), "config not found"))?;
                index.read(&cfg)?
            }
            None => index.read(&blob_path(&manifest.config.digest)?)?,
        };
        let config: ConfigFile = json("image config", &config_bytes)?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(bad(
                &desc.digest,
                "layer count differs from rootfs.diff_ids",
            ));
        }
        let chains = chain_ids(&config.rootfs.diff_ids);
        let top = chains.last().cloned().unwrap_or_default();

        for (i, layer) in manifest.layers.iter().enumerate() {
            let name = match docker_layers {
                Some(files) => files[i].clone(),
                None => blob_path(&layer.digest)?,
            };
            let entry = index
                .get(&name)
                .ok_or_else(|| bad(index.path.display().to_string(), format!("{name} missing")))?;
            if entry.size as i64 != layer.size {
                return Err(bad(&layer.digest, "size differs from manifest"));
            }
            let labels = HashMap::from([(
                "containerd.io/uncompressed".to_string(),
                config.rootfs.diff_ids[i].clone(),
            )]);
            let source = Source::File {
                path: index.path.clone(),
                offset: entry.offset,
            };
            self.write_blob(&layer.digest, layer.size, source, labels, lease)
                .await?;
        }
        let mut cfg_labels = HashMap::new();
        if !top.is_empty() {
            cfg_labels.insert(
                format!("containerd.io/gc.ref.snapshot.{SNAPSHOTTER}"),
                top.clone(),
            );
        }
        self.write_blob(
            &manifest.config.digest,
            config_bytes.len() as i64,
            Source::Bytes(config_bytes),
            cfg_labels,
            lease,
        )
        .await?;
        let mut m_labels = HashMap::from([(
            "containerd.io/gc.ref.content.config".to_string(),
            manifest.config.digest.clone(),
        )]);
        for (i, l) in manifest.layers.iter().enumerate() {
            m_labels.insert(
                format!("containerd.io/gc.ref.content.l.{i}"),
                l.digest.clone(),
            );
        }
        self.write_blob(
            &desc.digest,
            desc.size,
            Source::Bytes(manifest_bytes.to_vec()),
            m_labels,
            lease,
        )
        .await?;
        self.unpack(&manifest.layers, &config.rootfs.diff_ids, lease)
            .await?;
        Ok(top)
    }

    /// Applies layers in order into committed snapshots named by chain ID.
    pub(super) async fn unpack(
        &self,
        layers: &[Desc],
        diff_ids: &[String],
        lease: &str,
    ) -> Result<(), RuntimeError> {
        let chains = chain_ids(diff_ids);
        let mut parent = String::new();
        for (i, layer) in layers.iter().enumerate() {
            let chain = &chains[i];
            let stat = self
                .snapshots()
                .stat(self.req(
                    StatSnapshotRequest {
                        snapshotter: SNAPSHOTTER.into(),
                        key: chain.clone(),
                    },
                    Some(lease),
                )?)
                .await;
            if stat.is_ok() {
                parent = chain.clone();
                continue;
            }
            let key = format!("extract-{}-{chain}", uuid::Uuid::new_v4().simple());
            let mounts = self
                .snapshots()
                .prepare(self.req(
                    PrepareSnapshotRequest {
                        snapshotter: SNAPSHOTTER.into(),
                        key: key.clone(),
                        parent: parent.clone(),
                        labels: HashMap::new(),
                    },
                    Some(lease),
                )?)
                .await
                .map_err(|e| RuntimeError::grpc("snapshot prepare", e))?
                .into_inner()
                .mounts;
            let applied = DiffClient::new(self.channel.clone())
                .apply(self.req(
                    ApplyRequest {
                        diff: Some(descriptor(layer)),
                        mounts,
                        payloads: HashMap::new(),
                        sync_fs: false,
                    },
                    Some(lease),
                )?)
                .await
                .map_err(|e| RuntimeError::grpc("diff apply", e))
                .map(|r| r.into_inner().applied.map(|d| d.digest).unwrap_or_default());
            let outcome = match applied {
                Ok(d) if d == diff_ids[i] => Ok(()),
                Ok(d) => Err(RuntimeError::DigestMismatch {
                    what: format!("layer {}", layer.digest),
                    expected: diff_ids[i].clone(),
                    actual: d,
                }),
                Err(e) => Err(e),
            };
            if let Err(e) = outcome {
                let _ = self
                    .snapshots()
                    .remove(self.req(
                        RemoveSnapshotRequest {
                            snapshotter: SNAPSHOTTER.into(),
                            key,
                        },
                        Some(lease),
                    )?)
                    .await;
                return Err(e);
            }
            let commit = self
                .snapshots()
                .commit(self.req(
                    CommitSnapshotRequest {
                        snapshotter: SNAPSHOTTER.into(),
                        name: chain.clone(),
                        key: key.clone(),
                        labels: HashMap::new(),
                    },
                    Some(lease),
                )?)
                .await;
            if let Err(e) = commit {
                // Someone else committed the same chain concurrently: theirs is identical.
                let _ = self
                    .snapshots()
                    .remove(self.req(
                        RemoveSnapshotRequest {
                            snapshotter: SNAPSHOTTER.into(),
                            key,
                        },
                        Some(lease),
                    )?)
                    .await;
                if e.code() != tonic::Code::AlreadyExists {
                    return Err(RuntimeError::grpc("snapshot commit", e));
                }
            }
            parent = chain.clone();
        }
        Ok(())
    }

    pub(super) async fn register(
        &self,
        name: &str,
        target: &Desc,
        lease: &str,
    ) -> Result<(), RuntimeError> {
        let image = Image {
            name: name.into(),
            labels: HashMap::from([("io.cri-containerd.image".to_string(), "managed".to_string())]),
            target: Some(descriptor(target)),
            ..Default::default()
        };
        let mut images = ImagesClient::new(self.channel.clone());
        let created = images
            .create(self.req(
                CreateImageRequest {
                    image: Some(image.clone()),
                    source_date_epoch: None,
                },
                Some(lease),
            )?)
            .await;
        match created {
            Ok(_) => {}
            Err(e) if e.code() == tonic::Code::AlreadyExists => {
                images
                    .update(self.req(
                        UpdateImageRequest {
                            image: Some(image),
                            update_mask: None,
                            source_date_epoch: None,
                        },
                        Some(lease),
                    )?)
                    .await
                    .map_err(|e| RuntimeError::grpc("image update", e))?;
            }
            Err(e) => return Err(RuntimeError::grpc("image create", e)),
        }
        if let Ok(mut cache) = self.images.lock() {
            cache.remove(name);
        }
        Ok(())
    }

    /// Finds a registered image (unpacking it if its snapshots are missing).
    pub(super) async fn resolve_image(
        &self,
        image: &str,
        policy: PullPolicy,
    ) -> Result<ImageInfo, RuntimeError> {
        let name = normalise_image_name(image);
        if let Ok(cache) = self.images.lock()
            && let Some(info) = cache.get(&name)
        {
            return Ok(info.clone());
        }
        let got = ImagesClient::new(self.channel.clone())
            .get(self.req(GetImageRequest { name: name.clone() }, None)?)
            .await;
        let record = match got {
            Ok(r) => r.into_inner().image,
            Err(e) if e.code() == tonic::Code::NotFound => None,
            Err(e) => return Err(RuntimeError::grpc("image get", e)),
        };
        let Some(target) = record.and_then(|i| i.target) else {
            let reason = match policy {
                PullPolicy::Never => "imagePullPolicy is Never".to_string(),
                _ => "not pulled yet".to_string(),
            };
            return Err(RuntimeError::ImageNotPresent {
                image: name,
                reason,
            });
        };
        let mut manifest_digest = target.digest.clone();
        let mut bytes = self.read_blob(&target.digest).await?;
        if is_index(&target.media_type) {
            let inner: Index = json("image index", &bytes)?;
            let d = pick_platform(&inner)
                .cloned()
                .ok_or_else(|| bad(&name, format!("no linux/{} manifest", host_arch())))?;
            manifest_digest = d.digest.clone();
            bytes = self.read_blob(&d.digest).await?;
        }
        let manifest: Manifest = json("manifest", &bytes)?;
        let config: ConfigFile = json(
            "image config",
            &self.read_blob(&manifest.config.digest).await?,
        )?;
        let chains = chain_ids(&config.rootfs.diff_ids);
        let chain_id = chains.last().cloned().unwrap_or_default();
        let present = self
            .snapshots()
            .stat(self.req(
                StatSnapshotRequest {
                    snapshotter: SNAPSHOTTER.into(),
                    key: chain_id.clone(),
                },
                None,
            )?)
            .await
            .is_ok();
        if !present {
            let lease = self.create_lease("unpack").await?;
            let r = self
                .unpack(&manifest.layers, &config.rootfs.diff_ids, &lease)
                .await;
            self.delete_lease(&lease).await;
            r?;
        }
        let body = config.config.unwrap_or_default();
        let repo = name.split(['@']).next().unwrap_or(&name);
        let repo = match repo.rsplit_once(':') {
            Some((r, tag)) if !tag.contains('/') => r,
            _ => repo,
        };
        let info = ImageInfo {
            name: name.clone(),
            id: format!("{repo}@{manifest_digest}"),
            chain_id,
            config: ImageConfig {
                entrypoint: body.entrypoint.unwrap_or_default(),
                cmd: body.cmd.unwrap_or_default(),
                env: body.env.unwrap_or_default(),
                working_dir: body.working_dir.unwrap_or_default(),
                user: body.user.unwrap_or_default(),
            },
        };
        if let Ok(mut cache) = self.images.lock() {
            cache.insert(name, info.clone());
        }
        Ok(info)
    }
}

/// True for file names we import from the images directory.
pub(super) fn is_image_archive(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    [".tar", ".tar.gz", ".tgz", ".tar.zst", ".tzst"]
        .iter()
        .any(|ext| name.ends_with(ext))
        && path.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_like_docker() {
        assert_eq!(
            normalise_image_name("busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(normalise_image_name("k3rs/test:1"), "docker.io/k3rs/test:1");
        assert_eq!(
            normalise_image_name("localhost:5000/a"),
            "localhost:5000/a:latest"
        );
        assert_eq!(
            normalise_image_name("ghcr.io/x/y@sha256:ab"),
            "ghcr.io/x/y@sha256:ab"
        );
    }

    #[test]
    fn chain_ids_follow_the_oci_image_spec() {
        let d = vec!["sha256:a".to_string(), "sha256:b".to_string()];
        let c = chain_ids(&d);
        assert_eq!(c[0], "sha256:a");
        assert_eq!(c[1], sha256_hex(b"sha256:a sha256:b"));
    }

    #[test]
    fn pull_policy_defaults_follow_kubernetes() {
        assert_eq!(PullPolicy::from_k8s(None, "busybox"), PullPolicy::Always);
        assert_eq!(
            PullPolicy::from_k8s(None, "busybox:1.36"),
            PullPolicy::IfNotPresent
        );
        assert_eq!(
            PullPolicy::from_k8s(None, "busybox:latest"),
            PullPolicy::Always
        );
        assert_eq!(
            PullPolicy::from_k8s(Some("Never"), "busybox"),
            PullPolicy::Never
        );
    }
}
