//! Image references (`[registry/]repository[:tag][@digest]`) with Docker's normalisation:
//! `busybox` is `docker.io/library/busybox:latest`, and docker.io is served by
//! `registry-1.docker.io`.
//!
//! Owns: parsing and validating references. May call: nothing.

use super::RegistryError;

/// The registry Docker Hub images live on.
pub const DOCKER_HUB: &str = "docker.io";

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Registry host (and port), e.g. `docker.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// Repository path inside the registry, e.g. `library/busybox`.
    pub repository: String,
    /// Tag (`latest` when neither tag nor digest was given).
    pub tag: Option<String>,
    /// `sha256:<hex>` when pinned by digest.
    pub digest: Option<String>,
}

fn valid_repository(r: &str) -> bool {
    !r.is_empty()
        && r.split('/').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
                && part.starts_with(|c: char| c.is_ascii_alphanumeric())
        })
}

fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

fn valid_digest(d: &str) -> bool {
    match d.split_once(':') {
        Some(("sha256", hex)) => hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()),
        _ => false,
    }
}

impl Reference {
    /// Parses and normalises `s`.
    pub fn parse(s: &str) -> Result<Reference, RegistryError> {
        let bad = |why: &str| RegistryError::BadReference {
            reference: s.to_string(),
            reason: why.to_string(),
        };
        let (path, digest) = match s.split_once('@') {
            Some((p, d)) if valid_digest(d) => (p, Some(d.to_string())),
            Some(_) => return Err(bad("invalid digest")),
            None => (s, None),
        };
        let (registry, rest) = match path.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            Some(_) => (DOCKER_HUB.to_string(), path.to_string()),
            None => (DOCKER_HUB.to_string(), format!("library/{path}")),
        };
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
            _ => registry,
        };
        // A tag is the part after the last ':' of the last path component.
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (repository, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (rest[..at].to_string(), Some(rest[at + 1..].to_string()))
            }
            None => (rest.clone(), None),
        };
        if !valid_repository(&repository) {
            return Err(bad("invalid repository name (must be lowercase)"));
        }
        if let Some(t) = &tag
            && !valid_tag(t)
        {
            return Err(bad("invalid tag"));
        }
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_string()),
            _ => tag,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// `registry/repository`, e.g. `docker.io/library/busybox`.
    pub fn repo_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The full normalised name (what containerd's image record is called).
    pub fn name(&self) -> String {
        let mut out = self.repo_name();
        if let Some(t) = &self.tag {
            out.push(':');
            out.push_str(t);
        }
        if let Some(d) = &self.digest {
            out.push('@');
            out.push_str(d);
        }
        out
    }

    /// What to ask the registry's manifests endpoint for: the digest if pinned, else the tag.
    pub fn object(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_normalised_to_docker_hub_library() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.name(), "docker.io/library/busybox:latest");
        assert_eq!(r.object(), "latest");
        let r = Reference::parse("rancher/k3s:v1.30").unwrap();
        assert_eq!(r.name(), "docker.io/rancher/k3s:v1.30");
        let r = Reference::parse("index.docker.io/library/alpine:3").unwrap();
        assert_eq!(r.registry, "docker.io");
    }

    #[test]
    fn registries_with_ports_are_not_mistaken_for_tags() {
        let r = Reference::parse("127.0.0.1:5000/busybox:1").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "busybox");
        assert_eq!(r.tag.as_deref(), Some("1"));
        let r = Reference::parse("localhost:5000/a/b").unwrap();
        assert_eq!(r.name(), "localhost:5000/a/b:latest");
    }

    #[test]
    fn digests_pin_the_manifest() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("ghcr.io/x/y@{d}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.object(), d);
        let r = Reference::parse(&format!("ghcr.io/x/y:1@{d}")).unwrap();
        assert_eq!(r.name(), format!("ghcr.io/x/y:1@{d}"));
    }

    #[test]
    fn malformed_references_are_rejected() {
        for bad in ["Busybox", "busybox:", "busybox@sha256:abc", "a//b", "x.io/"] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }
}
