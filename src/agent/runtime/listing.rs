//! Listing the images of containerd's `k8s.io` namespace (for `k3rs images list`): name,
//! target digest and the size of this platform's manifest, config and layers.
//!
//! Owns: nothing stored. May call: containerd (Images, Content).

use super::containerd::Containerd;
use super::error::RuntimeError;
use containerd_client::services::v1::ListImagesRequest;
use containerd_client::services::v1::images_client::ImagesClient;
use serde_json::Value;

/// One image as `k3rs images list` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedImage {
    /// Reference, e.g. `docker.io/library/busybox:latest`.
    pub name: String,
    /// Digest of the image record's target (manifest or index).
    pub digest: String,
    /// Bytes of the platform manifest, its config and its layers (compressed, as stored);
    /// just the target's size when the manifest cannot be read.
    pub size: u64,
}

fn descriptor_size(d: &Value) -> u64 {
    d.get("size").and_then(Value::as_u64).unwrap_or(0)
}

impl Containerd {
    /// Every image of the namespace, sorted by name.
    ///
    /// # Errors
    /// When containerd cannot be asked for the list.
    pub async fn list_images(&self) -> Result<Vec<ListedImage>, RuntimeError> {
        let images = ImagesClient::new(self.channel.clone())
            .list(self.req(ListImagesRequest { filters: vec![] }, None)?)
            .await
            .map_err(|e| RuntimeError::grpc("image list", e))?
            .into_inner()
            .images;
        let mut out = Vec::with_capacity(images.len());
        for img in images {
            let Some(target) = img.target else { continue };
            let size = match self.image_size(&target.digest).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(image = %img.name, error = %e, "image size unknown");
                    u64::try_from(target.size).unwrap_or(0)
                }
            };
            out.push(ListedImage {
                name: img.name,
                digest: target.digest,
                size,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Size of the manifest at `digest` (or of this platform's manifest, for an index) plus
    /// its config and layers.
    async fn image_size(&self, digest: &str) -> Result<u64, RuntimeError> {
        let mut digest = digest.to_string();
        // An index points at manifests (one level is what import writes).
        for _ in 0..2 {
            let blob = self.read_blob(&digest).await?;
            let doc: Value =
                serde_json::from_slice(&blob).map_err(|source| RuntimeError::Json {
                    what: format!("manifest {digest}"),
                    source,
                })?;
            if let Some(manifests) = doc.get("manifests").and_then(Value::as_array) {
                let pick = manifests
                    .iter()
                    .find(|m| {
                        m.pointer("/platform/architecture").and_then(Value::as_str)
                            == Some(super::images::host_arch())
                    })
                    .or_else(|| manifests.first());
                match pick.and_then(|m| m.get("digest")).and_then(Value::as_str) {
                    Some(d) => digest = d.to_string(),
                    None => return Ok(blob.len() as u64),
                }
                continue;
            }
            let layers: u64 = doc
                .get("layers")
                .and_then(Value::as_array)
                .map(|ls| ls.iter().map(descriptor_size).sum())
                .unwrap_or(0);
            let config = doc.get("config").map(descriptor_size).unwrap_or(0);
            return Ok(blob.len() as u64 + config + layers);
        }
        Err(RuntimeError::Invalid(format!("nested index at {digest}")))
    }
}
