//! Registry pulls into containerd: resolve the reference with [`crate::agent::registry`],
//! stream config and layers into the content store (sha256 verified while streaming, in
//! chunks, blobs already present skipped), then unpack and register exactly like a tarball
//! import ([`super::images`]). Concurrent pulls of one image share one download.
//!
//! Owns: the pull sequence and its sharing. May call: the registry client and containerd.

use super::containerd::{Containerd, SNAPSHOTTER};
use super::content::Source;
use super::error::RuntimeError;
use super::images::{ConfigFile, Desc, Manifest, json};
use super::{PullPolicy, PullSecrets, PulledImage};
use crate::agent::registry::{Client, Reference, RegistriesConfig, RegistryError, Resolved};
use bytes::Bytes;
use containerd_client::services::v1::GetImageRequest;
use containerd_client::services::v1::InfoRequest;
use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::images_client::ImagesClient;
use hyper::body::{Body, Incoming};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;
use tracing::{debug, info};

/// Configs are small JSON documents; anything bigger is refused rather than buffered.
const MAX_CONFIG: usize = 8 << 20;

type Outcome = Result<PulledImage, String>;

/// Per-image slot: the last finished pull and when it finished.
type Slot = Arc<tokio::sync::Mutex<Option<(Instant, Outcome)>>>;

/// The registry client and the in-flight pulls of one [`Containerd`].
#[derive(Default)]
pub struct Pulls {
    client: RwLock<Option<Arc<Client>>>,
    slots: Mutex<HashMap<String, Slot>>,
}

impl Pulls {
    pub(super) fn set_config(&self, config: RegistriesConfig) {
        if let Ok(mut c) = self.client.write() {
            *c = Some(Arc::new(Client::new(config)));
        }
    }

    fn client(&self) -> Arc<Client> {
        if let Ok(c) = self.client.read()
            && let Some(c) = c.as_ref()
        {
            return c.clone();
        }
        let c = Arc::new(Client::new(RegistriesConfig::default()));
        if let Ok(mut slot) = self.client.write() {
            *slot = Some(c.clone());
        }
        c
    }

    fn slot(&self, name: &str) -> Slot {
        match self.slots.lock() {
            Ok(mut s) => {
                // Slots nobody waits on only remember a finished pull: drop them now and
                // then so the table stays small.
                if s.len() > 256 {
                    s.retain(|_, slot| Arc::strong_count(slot) > 1);
                }
                s.entry(name.to_string()).or_default().clone()
            }
            Err(_) => Slot::default(),
        }
    }
}

fn pull_error(image: &str, reason: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Pull {
        image: image.to_string(),
        reason: reason.to_string(),
    }
}

/// A registry body as an `AsyncRead` that hashes what passes through and fails at the end
/// if the digest or size differ (so a bad blob never reaches a commit).
struct Verified {
    body: Incoming,
    pending: Bytes,
    hasher: Sha256,
    seen: u64,
    digest: String,
    size: u64,
    done: bool,
}

impl Verified {
    fn new(body: Incoming, digest: &str, size: u64) -> Self {
        Verified {
            body,
            pending: Bytes::new(),
            hasher: Sha256::new(),
            seen: 0,
            digest: digest.to_string(),
            size,
            done: false,
        }
    }

    fn finish(&mut self) -> std::io::Result<()> {
        let actual = format!("sha256:{}", hex::encode(self.hasher.clone().finalize()));
        if self.seen != self.size {
            return Err(std::io::Error::other(format!(
                "blob {}: got {} bytes, expected {}",
                self.digest, self.seen, self.size
            )));
        }
        if actual != self.digest {
            return Err(std::io::Error::other(format!(
                "digest mismatch: expected {}, got {actual}",
                self.digest
            )));
        }
        Ok(())
    }
}

impl tokio::io::AsyncRead for Verified {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.remaining());
                let chunk = self.pending.split_to(n);
                buf.put_slice(&chunk);
                return Poll::Ready(Ok(()));
            }
            if self.done {
                return Poll::Ready(Ok(()));
            }
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    self.done = true;
                    self.finish()?;
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(std::io::Error::other(e))),
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.seen += data.len() as u64;
                        if self.seen > self.size {
                            return Poll::Ready(Err(std::io::Error::other(format!(
                                "blob {} is larger than {} bytes",
                                self.digest, self.size
                            ))));
                        }
                        self.hasher.update(&data);
                        self.pending = data;
                    }
                }
            }
        }
    }
}

impl Containerd {
    /// Pulls `image` (see [`super::ContainerRuntime::pull_image`]). A caller arriving while
    /// another pull of the same image runs waits for it and shares its outcome.
    pub(super) async fn pull(
        &self,
        image: &str,
        secrets: &PullSecrets,
    ) -> Result<PulledImage, RuntimeError> {
        let r = Reference::parse(image).map_err(|e| pull_error(image, e))?;
        let name = r.name();
        // Pulls are shared only between callers with the same credentials: a pod without
        // access must not ride on another pod's authorised pull.
        let slot = self
            .pulls
            .slot(&format!("{name} {}", secrets.fingerprint()));
        let asked = Instant::now();
        let mut last = slot.lock().await;
        if let Some((finished, outcome)) = last.as_ref()
            && *finished >= asked
        {
            debug!(image = %name, "shared a concurrent pull");
            return outcome.clone().map_err(|reason| pull_error(&name, reason));
        }
        let outcome = self.pull_now(&r, secrets).await;
        *last = Some((
            Instant::now(),
            outcome.as_ref().map(Clone::clone).map_err(|e| match e {
                RuntimeError::Pull { reason, .. } => reason.clone(),
                e => e.to_string(),
            }),
        ));
        outcome
    }

    async fn pull_now(
        &self,
        r: &Reference,
        secrets: &PullSecrets,
    ) -> Result<PulledImage, RuntimeError> {
        let name = r.name();
        let fail = |e: RegistryError| {
            pull_error(
                &name,
                format!("failed to resolve reference {:?}: {e}", name),
            )
        };
        let client = self.pulls.client();
        let resolved = client.resolve(r, secrets).await.map_err(fail)?;
        let m = &resolved.manifest;
        let manifest: Manifest = json("manifest", &m.bytes)?;
        let size = manifest.config.size.max(0) as u64
            + manifest
                .layers
                .iter()
                .map(|l| l.size.max(0) as u64)
                .sum::<u64>();
        let target = Desc {
            media_type: m.media_type.clone(),
            digest: m.digest.clone(),
            size: m.bytes.len() as i64,
            annotations: HashMap::new(),
            platform: None,
        };
        // Same manifest as the local record (Always on an unchanged tag): nothing to fetch.
        if self.image_target(&name).await?.as_deref() == Some(m.digest.as_str()) {
            let info = self.resolve_image(&name, PullPolicy::Never).await?;
            return Ok(PulledImage { info, size });
        }
        let lease = self.create_lease("pull").await?;
        let result = self
            .fetch_and_unpack(&client, &resolved, &manifest, &target, &name, &lease)
            .await;
        self.delete_lease(&lease).await;
        result?;
        info!(image = %name, digest = %m.digest, endpoint = %resolved.session.endpoint.base(), "pulled image");
        let info = self.resolve_image(&name, PullPolicy::Never).await?;
        Ok(PulledImage { info, size })
    }

    /// The manifest digest the image record `name` points at.
    async fn image_target(&self, name: &str) -> Result<Option<String>, RuntimeError> {
        let got = ImagesClient::new(self.channel.clone())
            .get(self.req(GetImageRequest { name: name.into() }, None)?)
            .await;
        match got {
            Ok(r) => Ok(r
                .into_inner()
                .image
                .and_then(|i| i.target)
                .map(|t| t.digest)),
            Err(e) if e.code() == tonic::Code::NotFound => Ok(None),
            Err(e) => Err(RuntimeError::grpc("image get", e)),
        }
    }

    async fn has_blob(&self, digest: &str, lease: &str) -> Result<bool, RuntimeError> {
        let info = ContentClient::new(self.channel.clone())
            .info(self.req(
                InfoRequest {
                    digest: digest.into(),
                },
                Some(lease),
            )?)
            .await;
        match info {
            Ok(_) => Ok(true),
            Err(e) if e.code() == tonic::Code::NotFound => Ok(false),
            Err(e) => Err(RuntimeError::grpc("content info", e)),
        }
    }

    async fn fetch_and_unpack(
        &self,
        client: &Client,
        resolved: &Resolved,
        manifest: &Manifest,
        target: &Desc,
        name: &str,
        lease: &str,
    ) -> Result<(), RuntimeError> {
        let fail = |e: RegistryError| pull_error(name, e);
        // The config first: it names the layers' uncompressed digests.
        let cfg_digest = &manifest.config.digest;
        let cfg_resp = client.blob(resolved, cfg_digest).await.map_err(fail)?;
        let mut reader = Verified::new(
            cfg_resp.into_body(),
            cfg_digest,
            manifest.config.size.max(0) as u64,
        );
        if manifest.config.size.max(0) as usize > MAX_CONFIG {
            return Err(pull_error(name, "image config too large"));
        }
        let mut config_bytes = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut config_bytes)
            .await
            .map_err(|e| pull_error(name, format!("config {cfg_digest}: {e}")))?;
        let config: ConfigFile = json("image config", &config_bytes)?;
        let diff_ids = &config.rootfs.diff_ids;
        if diff_ids.len() != manifest.layers.len() {
            return Err(pull_error(name, "layer count differs from rootfs.diff_ids"));
        }
        for (layer, diff_id) in manifest.layers.iter().zip(diff_ids) {
            if self.has_blob(&layer.digest, lease).await? {
                debug!(digest = %layer.digest, "layer already present");
                continue;
            }
            let started = Instant::now();
            let resp = client.blob(resolved, &layer.digest).await.map_err(fail)?;
            let reader = Verified::new(resp.into_body(), &layer.digest, layer.size.max(0) as u64);
            let labels =
                HashMap::from([("containerd.io/uncompressed".to_string(), diff_id.clone())]);
            self.write_blob(
                &layer.digest,
                layer.size,
                Source::Reader(Box::new(reader)),
                labels,
                lease,
            )
            .await
            .map_err(|e| pull_error(name, format!("layer {}: {e}", layer.digest)))?;
            debug!(digest = %layer.digest, size = layer.size, ms = started.elapsed().as_millis() as u64, "layer fetched");
        }
        let top = super::images::chain_ids(diff_ids)
            .last()
            .cloned()
            .unwrap_or_default();
        let mut cfg_labels = HashMap::new();
        if !top.is_empty() {
            cfg_labels.insert(format!("containerd.io/gc.ref.snapshot.{SNAPSHOTTER}"), top);
        }
        self.write_blob(
            cfg_digest,
            config_bytes.len() as i64,
            Source::Bytes(config_bytes),
            cfg_labels,
            lease,
        )
        .await?;
        let mut m_labels = HashMap::from([(
            "containerd.io/gc.ref.content.config".to_string(),
            cfg_digest.clone(),
        )]);
        for (i, l) in manifest.layers.iter().enumerate() {
            m_labels.insert(
                format!("containerd.io/gc.ref.content.l.{i}"),
                l.digest.clone(),
            );
        }
        self.write_blob(
            &target.digest,
            target.size,
            Source::Bytes(resolved.manifest.bytes.clone()),
            m_labels,
            lease,
        )
        .await?;
        self.unpack(&manifest.layers, diff_ids, lease).await?;
        self.register(name, target, lease).await
    }
}
