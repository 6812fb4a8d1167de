//! Auto-deployed manifests (k3s's "deploy controller"): every `*.yaml`, `*.yml` and `*.json`
//! file in `<data-dir>/server/manifests/` is applied at start and again whenever it
//! changes, through the API server like any client (server-side apply, field manager
//! `k3rs-deploy`, forced).
//!
//! Owns: the manifests directory, the built-in manifests compiled in from `embedded/`, and
//! one record per file. May call: the API server (as an ordinary kube client) and the
//! filesystem.
//!
//! Bookkeeping, instead of k3s's `Addon` custom resource: a ConfigMap
//! `kube-system/k3rs-addon-<file name without extension>` whose `data.objects` is the JSON
//! list of the objects (apiVersion, kind, namespace, name) the file's last version named.
//! A ConfigMap needs no CRD, survives restarts and replicates with the store, and
//! `kubectl get cm -n kube-system` shows it. When the file changes, objects it no longer
//! names are deleted; when the file is deleted, its objects stay (as in k3s). A file whose
//! name ends in `.skip`, or with a `<file>.skip` sibling, is ignored.
//!
//! Change detection polls: each pass stats the files (cheap) and reads and hashes only
//! those whose size or mtime moved; a file is applied again only when its SHA-256 changed.
//! A file with failed documents is retried later; the failure is logged with the file and
//! the document number, and the other documents and files are applied regardless.
//!
//! `--disable NAME` (repeatable, comma lists) removes built-in manifest `NAME` from the
//! directory and deletes the objects its record lists.

mod apply;
mod builtin;
mod manifest;

pub use apply::{FIELD_MANAGER, RECORD_NAMESPACE, record_name};
pub use builtin::{BUILTIN, disabled_names};
pub use manifest::ObjectRef;

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Everything the deployer can fail at.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("io error at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot {what}: {source}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Settings of [`run`].
#[derive(Debug, Clone)]
pub struct DeployConfig {
    /// `<data-dir>/server/manifests`.
    pub dir: PathBuf,
    /// `--disable` values (comma lists allowed).
    pub disable: Vec<String>,
    /// How often the directory is looked at.
    pub interval: Duration,
    /// How long after a failure a file is tried again (when it did not change).
    pub retry: Duration,
}

impl DeployConfig {
    /// Defaults: a pass every 3 s, failed files retried every 15 s.
    pub fn new(dir: PathBuf, disable: Vec<String>) -> Self {
        DeployConfig {
            dir,
            disable,
            interval: Duration::from_secs(3),
            retry: Duration::from_secs(15),
        }
    }
}

/// What we know of one file since the last pass.
struct Seen {
    size: u64,
    mtime: Option<SystemTime>,
    checksum: String,
    /// `Some(when)` after a failed apply: try again at `when`.
    retry_at: Option<Instant>,
}

/// Write the built-in manifests, remove disabled ones, then apply the directory until
/// `shutdown`.
pub async fn run(client: kube::Client, cfg: DeployConfig, shutdown: CancellationToken) {
    let disabled = disabled_names(&cfg.disable);
    if let Err(e) = builtin::write(&cfg.dir, &disabled) {
        warn!(error = %e, "cannot write the built-in manifests");
    }
    let mut to_remove: Vec<String> = Vec::new();
    for name in disabled {
        if BUILTIN.iter().any(|(n, _)| *n == name) {
            to_remove.push(name);
        } else {
            warn!(name = %name, "--disable names no built-in manifest");
        }
    }
    let mut seen: HashMap<PathBuf, Seen> = HashMap::new();
    loop {
        // Disabled add-ons: delete their objects, retried each pass until it works.
        let mut failed = Vec::new();
        for name in to_remove.drain(..) {
            match apply::remove_addon(&client, &name).await {
                Ok(0) => {}
                Ok(n) => info!(addon = %name, objects = n, "disabled: deleted its objects"),
                Err(e) => {
                    warn!(addon = %name, error = %e, "cannot delete a disabled add-on; will retry");
                    failed.push(name);
                }
            }
        }
        to_remove = failed;
        pass(&client, &cfg, &mut seen).await;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(cfg.interval) => {}
        }
    }
}

fn checksum(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// One look at the directory: apply the files that are new, changed or due a retry.
async fn pass(client: &kube::Client, cfg: &DeployConfig, seen: &mut HashMap<PathBuf, Seen>) {
    let files = match manifest::list(&cfg.dir) {
        Ok(f) => f,
        Err(e) => {
            warn!(error = %e, "cannot list the manifests directory");
            return;
        }
    };
    seen.retain(|p, _| files.contains(p));
    for path in files {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue; // removed since the listing
        };
        let (size, mtime) = (meta.len(), meta.modified().ok());
        let due = seen.get(&path).is_none_or(|s| {
            s.size != size || s.mtime != mtime || s.retry_at.is_some_and(|at| Instant::now() >= at)
        });
        if !due {
            continue;
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                warn!(file = %path.display(), error = %e, "cannot read manifest");
                continue;
            }
        };
        let sum = checksum(&text);
        if let Some(s) = seen.get_mut(&path)
            && s.checksum == sum
            && s.retry_at.is_none()
        {
            // Touched, not changed.
            (s.size, s.mtime) = (size, mtime);
            continue;
        }
        let retry_at = apply_one(client, &path, &text, &sum)
            .await
            .then(|| Instant::now() + cfg.retry);
        seen.insert(
            path,
            Seen {
                size,
                mtime,
                checksum: sum,
                retry_at,
            },
        );
    }
}

/// Apply one file and log the result; returns whether it needs another try.
async fn apply_one(client: &kube::Client, path: &Path, text: &str, sum: &str) -> bool {
    let file = path.display().to_string();
    match apply::apply_file(client, path, text, sum).await {
        Ok(out) => {
            for (doc, error) in &out.errors {
                warn!(file = %file, document = doc, error = %error, "manifest document not applied");
            }
            for r in &out.deleted {
                info!(file = %file, object = %r, "deleted object no longer in manifest");
            }
            info!(
                file = %file,
                applied = out.applied.len(),
                failed = out.errors.len(),
                "applied manifest"
            );
            !out.errors.is_empty()
        }
        Err(e) => {
            warn!(file = %file, error = %e, "cannot apply manifest");
            true
        }
    }
}
