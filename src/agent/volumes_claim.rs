//! `persistentVolumeClaim` volumes: the claim is followed to its bound PersistentVolume and
//! the PV's `hostPath` (checked like a hostPath volume) or `local` path is what containers
//! bind-mount. Other PV sources (NFS, CSI, …) are refused with a message naming them.
//!
//! Owns: the claim -> host path resolution. May call: the API through [`PodSources`].

use crate::agent::sources::PodSources;
use k8s_openapi::api::core::v1::PersistentVolume;
use std::path::PathBuf;

/// The host directory (or file) backing claim `ns/name`.
///
/// # Errors
/// When the claim is missing or not bound, the PV is missing or bound to another claim,
/// or the PV's source is not a local one.
pub async fn claim_path(
    sources: Option<&dyn PodSources>,
    ns: &str,
    name: &str,
) -> Result<PathBuf, String> {
    let Some(s) = sources else {
        return Err(format!(
            "persistentvolumeclaim {ns}/{name}: no API access on this agent"
        ));
    };
    let pvc = s
        .claim(ns, name)
        .await?
        .ok_or_else(|| format!("persistentvolumeclaim \"{name}\" not found"))?;
    let phase = pvc
        .status
        .as_ref()
        .and_then(|st| st.phase.clone())
        .unwrap_or_default();
    let volume = pvc
        .spec
        .as_ref()
        .and_then(|sp| sp.volume_name.clone())
        .unwrap_or_default();
    if phase != "Bound" || volume.is_empty() {
        // The kubelet's wording.
        return Err(format!(
            "PVC {ns}/{name} has non-bound phase (\"{phase}\") or empty pvc.Spec.VolumeName (\"{volume}\")"
        ));
    }
    let pv = s
        .persistent_volume(&volume)
        .await?
        .ok_or_else(|| format!("persistentvolume \"{volume}\" not found"))?;
    let claim_uid = pvc.metadata.uid.clone().unwrap_or_default();
    let bound_uid = pv
        .spec
        .as_ref()
        .and_then(|sp| sp.claim_ref.as_ref())
        .and_then(|r| r.uid.clone())
        .unwrap_or_default();
    if !claim_uid.is_empty() && !bound_uid.is_empty() && claim_uid != bound_uid {
        return Err(format!(
            "persistentvolume {volume} is bound to another claim (uid {bound_uid}, not {claim_uid})"
        ));
    }
    pv_path(&pv)
}

/// The host path of a PV with a hostPath or local source.
///
/// # Errors
/// For other sources, or a failed hostPath type check / missing local path.
pub fn pv_path(pv: &PersistentVolume) -> Result<PathBuf, String> {
    let name = pv.metadata.name.clone().unwrap_or_default();
    let spec = pv
        .spec
        .as_ref()
        .ok_or_else(|| format!("persistentvolume {name} has no spec"))?;
    if let Some(h) = &spec.host_path {
        return crate::agent::volumes_hostpath::check(&h.path, h.type_.as_deref());
    }
    if let Some(l) = &spec.local {
        let p = PathBuf::from(&l.path);
        if !p.exists() {
            return Err(format!(
                "persistentvolume {name}: local path {:?} does not exist",
                l.path
            ));
        }
        return Ok(p);
    }
    Err(format!(
        "persistentvolume {name}: only hostPath and local volumes can be mounted by this agent"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::sources::StaticSources;

    fn sources(dir: &std::path::Path, phase: &str) -> StaticSources {
        let mut s = StaticSources::default();
        s.claims.insert(
            ("ns".into(), "data".into()),
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "data", "namespace": "ns", "uid": "c1"},
                "spec": {"volumeName": "pv1"},
                "status": {"phase": phase}
            }))
            .unwrap(),
        );
        s.volumes.insert(
            "pv1".into(),
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "pv1"},
                "spec": {"hostPath": {"path": dir.join("pv1").to_str().unwrap(), "type": "DirectoryOrCreate"},
                         "claimRef": {"namespace": "ns", "name": "data", "uid": "c1"}}
            }))
            .unwrap(),
        );
        s
    }

    #[tokio::test]
    async fn a_bound_claim_resolves_to_its_volume_host_path() {
        let dir = tempfile::tempdir().unwrap();
        let s = sources(dir.path(), "Bound");
        let p = claim_path(Some(&s), "ns", "data").await.unwrap();
        assert_eq!(p, dir.path().join("pv1"));
        assert!(p.is_dir(), "DirectoryOrCreate made it");
        let e = claim_path(Some(&s), "ns", "nope").await.unwrap_err();
        assert_eq!(e, "persistentvolumeclaim \"nope\" not found");
    }

    #[tokio::test]
    async fn a_pending_claim_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = sources(dir.path(), "Pending");
        let e = claim_path(Some(&s), "ns", "data").await.unwrap_err();
        assert!(e.contains("non-bound phase (\"Pending\")"), "{e}");
    }
}
