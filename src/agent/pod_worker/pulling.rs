//! Getting a container's image per its `imagePullPolicy`, like the kubelet's image manager:
//! `Never` uses only local images (`ErrImageNeverPull`), `IfNotPresent` pulls when absent,
//! `Always` re-resolves the tag on every start (the runtime skips what it already has).
//! Failures put the container in `ErrImagePull`, then `ImagePullBackOff` while the
//! container's back-off (10 s doubling to 5 min) runs; every step is reported as an event.
//!
//! Owns: pull policy, pull secrets lookup and pull events. May call: the runtime, the
//! pod sources (secrets) and the event sink.

use super::Worker;
use crate::agent::events::Kind;
use crate::agent::pod;
use crate::agent::runtime::{ImageInfo, PullPolicy, PullSecrets};
use crate::agent::status::CState;
use std::time::Instant;
use tracing::warn;

/// What a failed image step leaves in the container's waiting state.
pub(super) struct ImageFailure {
    pub reason: &'static str,
    pub message: String,
}

impl Worker {
    pub(super) fn field_path(&self, i: usize) -> Option<String> {
        let c = &self.ctrs[i].view;
        let list = if c.init {
            "initContainers"
        } else {
            "containers"
        };
        Some(format!("spec.{list}{{{}}}", c.name))
    }

    pub(super) fn event(&self, i: usize, kind: Kind, reason: &str, message: String) {
        self.deps
            .events
            .emit(&self.pod, self.field_path(i), kind, reason, message);
    }

    /// Credentials from the pod's `imagePullSecrets` (unreadable ones are skipped with a
    /// warning event, as upstream does).
    async fn pull_secrets(&self, i: usize) -> PullSecrets {
        let mut out = PullSecrets::default();
        let ns = self.pod.metadata.namespace.clone().unwrap_or_default();
        let names: Vec<String> = self
            .pod
            .spec
            .iter()
            .flat_map(|s| s.image_pull_secrets.iter().flatten())
            .map(|r| r.name.clone())
            .filter(|n| !n.is_empty())
            .collect();
        let Some(sources) = self.deps.sources.as_ref() else {
            return out;
        };
        for name in names {
            let data = match sources.secret(&ns, &name).await {
                Ok(Some(d)) => d,
                Ok(None) => {
                    self.event(
                        i,
                        Kind::Warning,
                        "FailedToRetrieveImagePullSecret",
                        format!("Unable to retrieve some image pull secrets ({name}); attempting to pull the image may not succeed."),
                    );
                    continue;
                }
                Err(e) => {
                    warn!(pod = %pod::pod_key(&self.pod), secret = %name, error = %e, "image pull secret");
                    continue;
                }
            };
            for key in [".dockerconfigjson", ".dockercfg"] {
                if let Some(json) = data.get(key)
                    && let Err(e) = out.add_docker_config(json)
                {
                    warn!(pod = %pod::pod_key(&self.pod), secret = %name, error = %e, "image pull secret");
                }
            }
        }
        out
    }

    /// Makes container `i`'s image available per its pull policy.
    pub(super) async fn obtain_image(&mut self, i: usize) -> Result<ImageInfo, ImageFailure> {
        let image = self.ctrs[i].view.image.clone();
        let policy = self.ctrs[i].pull_policy;
        let rt = self.deps.runtime.clone();
        if policy != PullPolicy::Always {
            match rt.local_image(&image).await {
                Ok(Some(info)) => {
                    self.event(
                        i,
                        Kind::Normal,
                        "Pulled",
                        format!("Container image \"{image}\" already present on machine"),
                    );
                    return Ok(info);
                }
                Ok(None) if policy == PullPolicy::Never => {
                    let message = format!(
                        "Container image \"{image}\" is not present with pull policy of Never"
                    );
                    self.event(i, Kind::Warning, "ErrImageNeverPull", message.clone());
                    return Err(ImageFailure {
                        reason: "ErrImageNeverPull",
                        message,
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    // containerd trouble: report it like a pull failure and back off.
                    return Err(ImageFailure {
                        reason: if policy == PullPolicy::Never {
                            "ErrImageNeverPull"
                        } else {
                            "ErrImagePull"
                        },
                        message: e.to_string(),
                    });
                }
            }
        }
        // A pull can take minutes: other pods may start meanwhile.
        self.slot = None;
        self.event(
            i,
            Kind::Normal,
            "Pulling",
            format!("Pulling image \"{image}\""),
        );
        let secrets = self.pull_secrets(i).await;
        let started = Instant::now();
        match rt.pull_image(&image, &secrets).await {
            Ok(pulled) => {
                let took = started.elapsed().as_secs_f64();
                self.event(
                    i,
                    Kind::Normal,
                    "Pulled",
                    format!(
                        "Successfully pulled image \"{image}\" in {took:.3}s ({took:.3}s including waiting). Image size: {} bytes.",
                        pulled.size
                    ),
                );
                Ok(pulled.info)
            }
            Err(e) => {
                let message = e.to_string();
                self.event(
                    i,
                    Kind::Warning,
                    "Failed",
                    format!("Failed to pull image \"{image}\": {message}"),
                );
                self.event(i, Kind::Warning, "Failed", "Error: ErrImagePull".into());
                Err(ImageFailure {
                    reason: "ErrImagePull",
                    message,
                })
            }
        }
    }

    /// While a failed pull backs off, `ErrImagePull` becomes `ImagePullBackOff`.
    pub(super) fn show_pull_backoff(&mut self, i: usize) {
        let CState::Waiting { reason, .. } = &self.ctrs[i].view.state else {
            return;
        };
        if reason != "ErrImagePull" {
            return;
        }
        let image = self.ctrs[i].view.image.clone();
        let message = format!("Back-off pulling image \"{image}\"");
        self.ctrs[i].view.state = CState::Waiting {
            reason: "ImagePullBackOff".into(),
            message: message.clone(),
        };
        self.event(i, Kind::Normal, "BackOff", message);
        self.event(i, Kind::Warning, "Failed", "Error: ImagePullBackOff".into());
    }

    /// When a container in `ErrImagePull` should show `ImagePullBackOff` (shortly after the
    /// failure, well before the back-off ends).
    pub(super) fn pull_backoff_wake(&self, now: Instant) -> Option<Instant> {
        self.ctrs
            .iter()
            .filter(|c| matches!(&c.view.state, CState::Waiting { reason, .. } if reason == "ErrImagePull"))
            .filter_map(|c| c.backoff.deadline())
            .filter(|d| *d > now)
            .map(|d| d.min(now + std::time::Duration::from_secs(1)))
            .min()
    }
}
