//! What image garbage collection needs from containerd beyond listing: the images every
//! container of the `k8s.io` namespace was created from, and deleting an image record
//! (containerd's GC then drops the blobs and snapshots only it referenced).
//!
//! Owns: nothing stored. May call: containerd (Containers, Images).

use super::containerd::Containerd;
use super::error::RuntimeError;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::{DeleteImageRequest, ListContainersRequest};
use std::collections::HashSet;

impl Containerd {
    /// Image names of every container in the namespace (running or not).
    ///
    /// # Errors
    /// When containerd cannot be asked.
    pub async fn images_in_use(&self) -> Result<HashSet<String>, RuntimeError> {
        let containers = self
            .containers()
            .list(self.req(ListContainersRequest { filters: vec![] }, None)?)
            .await
            .map_err(|e| RuntimeError::grpc("container list", e))?
            .into_inner()
            .containers;
        Ok(containers.into_iter().map(|c| c.image).collect())
    }

    /// Deletes the image record `name` and waits for containerd's GC; absent is fine.
    ///
    /// # Errors
    /// When containerd refuses the delete.
    pub async fn remove_image(&self, name: &str) -> Result<(), RuntimeError> {
        let r = ImagesClient::new(self.channel.clone())
            .delete(self.req(
                DeleteImageRequest {
                    name: name.to_string(),
                    sync: true,
                    target: None,
                },
                None,
            )?)
            .await;
        // Resolved images are cached by name: a stale entry would skip the pull next time.
        if let Ok(mut cache) = self.images.lock() {
            cache.remove(name);
        }
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.code() == tonic::Code::NotFound => Ok(()),
            Err(e) => Err(RuntimeError::grpc("image delete", e)),
        }
    }
}
