//! Pulling images from OCI registries: references, `registries.yaml` (mirrors, auth, TLS),
//! pull-secret credentials and the distribution API client. The content it fetches is
//! written into containerd by [`crate::agent::runtime`] (the same path tarball imports use).
//!
//! Owns: talking to registries. May call: the network and the filesystem; never containerd.

pub mod auth;
pub mod client;
pub mod config;
mod http;
pub mod reference;

pub use auth::{Credentials, PullSecrets};
pub use client::{Client, Resolved};
pub use config::RegistriesConfig;
pub use reference::Reference;

use std::path::PathBuf;

/// Where k3s-style registry settings live by default.
pub const DEFAULT_REGISTRIES_FILE: &str = "/etc/k3rs/registries.yaml";

/// Everything that can go wrong pulling from a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid reference {reference:?}: {reason}")]
    BadReference { reference: String, reason: String },
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("{url}: {reason}")]
    Http { url: String, reason: String },
    #[error("tls with {host}: {reason}")]
    Tls { host: String, reason: String },
    #[error("{reference}: not found")]
    NotFound { reference: String },
    #[error("{url}: unauthorized: {reason}")]
    Unauthorized { url: String, reason: String },
    #[error("{url}: unexpected status {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("bad manifest for {reference}: {reason}")]
    BadManifest { reference: String, reason: String },
    #[error("no match for platform {platform} in manifest list of {reference}")]
    NoPlatform { reference: String, platform: String },
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
}
