//! `registries.yaml` in k3s's format: per-registry mirrors (tried in order before the
//! registry itself, with optional repository rewrites) and per-host auth and TLS settings.
//!
//! ```yaml
//! mirrors:
//!   docker.io:
//!     endpoint: ["https://mirror.example.com:5000"]
//!     rewrite: {"^library/(.*)": "mirrored/$1"}
//! configs:
//!   "mirror.example.com:5000":
//!     auth: {username: u, password: p}
//!     tls: {ca_file: /etc/ssl/mirror-ca.pem}
//! ```
//!
//! Owns: the file format and endpoint selection. May call: the filesystem.

use super::RegistryError;
use super::reference::{DOCKER_HUB, Reference};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct RegistriesConfig {
    #[serde(default)]
    pub mirrors: HashMap<String, Mirror>,
    #[serde(default)]
    pub configs: HashMap<String, HostConfig>,
}

/// Mirrors of one registry (`*` matches every registry).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Mirror {
    #[serde(default)]
    pub endpoint: Vec<String>,
    /// Repository rewrites applied on mirror endpoints: `^prefix(.*)` → `replacement$1`.
    #[serde(default)]
    pub rewrite: BTreeMap<String, String>,
}

/// Settings for one registry host (`host[:port]`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct HostConfig {
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// Credentials for one host.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct AuthConfig {
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// base64 of `username:password`.
    #[serde(default)]
    pub auth: Option<String>,
    /// An OAuth2 refresh token for the registry's token endpoint.
    #[serde(default)]
    pub identity_token: Option<String>,
}

/// TLS settings for one host.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct TlsConfig {
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// One place to try pulling from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https` or `http`.
    pub scheme: String,
    /// `host[:port]` (the key into `configs`).
    pub host: String,
    /// API root path, normally `/v2`.
    pub path: String,
    /// Repository name at this endpoint (after rewrites).
    pub repository: String,
    /// True for a mirror (a miss there falls through to the next endpoint).
    pub mirror: bool,
}

impl Endpoint {
    /// `scheme://host/path`.
    pub fn base(&self) -> String {
        format!("{}://{}{}", self.scheme, self.host, self.path)
    }
}

/// Loopback registries speak plain HTTP by default, like containerd's resolver.
fn is_loopback_host(host: &str) -> bool {
    let h = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    let h = h.trim_start_matches('[').trim_end_matches(']');
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Applies the first matching rewrite (`^literal(.*)` patterns; others are ignored).
fn rewrite(repo: &str, rules: &BTreeMap<String, String>) -> String {
    for (pattern, replacement) in rules {
        let Some(prefix) = pattern
            .strip_prefix('^')
            .and_then(|p| p.strip_suffix("(.*)"))
        else {
            tracing::warn!(pattern, "unsupported rewrite pattern (only ^prefix(.*))");
            continue;
        };
        // A '.' in a registry path is common and means itself here.
        if prefix.contains(['\\', '[', '(', '*', '+', '?', '|', '$']) {
            tracing::warn!(pattern, "unsupported rewrite pattern (only ^prefix(.*))");
            continue;
        }
        if let Some(rest) = repo.strip_prefix(prefix) {
            return replacement.replace("$1", rest);
        }
    }
    repo.to_string()
}

fn parse_endpoint(url: &str, repository: String) -> Option<Endpoint> {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) if s == "http" || s == "https" => (s.to_string(), r),
        Some(_) => return None,
        None => ("https".to_string(), url),
    };
    let (host, path) = match rest.split_once('/') {
        Some((h, p)) => (h.to_string(), format!("/{}", p.trim_end_matches('/'))),
        None => (rest.to_string(), String::new()),
    };
    if host.is_empty() {
        return None;
    }
    let path = if path.is_empty() || path == "/" {
        "/v2".to_string()
    } else {
        path
    };
    Some(Endpoint {
        scheme,
        host,
        path,
        repository,
        mirror: true,
    })
}

impl RegistriesConfig {
    /// Reads `path`; a missing file is an empty config (like k3s).
    pub fn load(path: &Path) -> Result<RegistriesConfig, RegistryError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text).map_err(|reason| RegistryError::Config {
                path: path.to_path_buf(),
                reason,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(RegistryError::Config {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }),
        }
    }

    /// Parses the YAML text (an empty document is an empty config).
    pub fn parse(text: &str) -> Result<RegistriesConfig, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_yaml::from_str(text).map_err(|e| e.to_string())
    }

    /// Where to pull `r` from, in order: its mirrors (or the `*` mirrors), then the
    /// registry itself (`registry-1.docker.io` for docker.io).
    pub fn endpoints(&self, r: &Reference) -> Vec<Endpoint> {
        let mut out = Vec::new();
        if let Some(m) = self
            .mirrors
            .get(&r.registry)
            .or_else(|| self.mirrors.get("*"))
        {
            let repository = rewrite(&r.repository, &m.rewrite);
            for url in &m.endpoint {
                match parse_endpoint(url, repository.clone()) {
                    Some(e) => out.push(e),
                    None => tracing::warn!(endpoint = %url, "ignoring a bad mirror endpoint"),
                }
            }
        }
        let host = if r.registry == DOCKER_HUB {
            "registry-1.docker.io".to_string()
        } else {
            r.registry.clone()
        };
        let default = Endpoint {
            scheme: if is_loopback_host(&host) {
                "http"
            } else {
                "https"
            }
            .into(),
            host,
            path: "/v2".into(),
            repository: r.repository.clone(),
            mirror: false,
        };
        // A mirror listing the registry itself is the default endpoint, tried once.
        if !out
            .iter()
            .any(|e| e.host == default.host && e.repository == default.repository)
        {
            out.push(default);
        }
        out
    }

    /// Settings for `host` (docker.io's are also found under its API host names).
    pub fn host(&self, host: &str) -> Option<&HostConfig> {
        self.configs.get(host).or_else(|| match host {
            "registry-1.docker.io" | "index.docker.io" => self.configs.get(DOCKER_HUB),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K3S_EXAMPLE: &str = r#"
mirrors:
  docker.io:
    endpoint:
      - "https://mirror.example.com:5000"
      - "http://10.0.0.2:5000/v2/cache"
    rewrite:
      "^library/(.*)": "mirrored/$1"
  registry.test:
    endpoint: ["127.0.0.1:5000"]
configs:
  "mirror.example.com:5000":
    auth:
      username: xxx
      password: yyy
    tls:
      ca_file: /etc/ssl/ca.pem
      insecure_skip_verify: true
  docker.io:
    auth:
      auth: dTpw
"#;

    #[test]
    fn the_k3s_example_file_parses() {
        let c = RegistriesConfig::parse(K3S_EXAMPLE).unwrap();
        let m = c.host("mirror.example.com:5000").unwrap();
        let auth = m.auth.as_ref().unwrap();
        assert_eq!(auth.username.as_deref(), Some("xxx"));
        assert_eq!(auth.password.as_deref(), Some("yyy"));
        let tls = m.tls.as_ref().unwrap();
        assert_eq!(tls.ca_file.as_deref(), Some(Path::new("/etc/ssl/ca.pem")));
        assert!(tls.insecure_skip_verify);
        // docker.io settings apply to its API host.
        let hub = c.host("registry-1.docker.io").unwrap();
        assert_eq!(hub.auth.as_ref().unwrap().auth.as_deref(), Some("dTpw"));
        assert!(RegistriesConfig::parse("").unwrap().mirrors.is_empty());
        assert!(RegistriesConfig::parse("mirrors: [1]").is_err());
    }

    #[test]
    fn mirrors_come_first_in_order_then_the_registry_itself() {
        let c = RegistriesConfig::parse(K3S_EXAMPLE).unwrap();
        let r = Reference::parse("busybox:1").unwrap();
        let e = c.endpoints(&r);
        let bases: Vec<String> = e.iter().map(|e| e.base()).collect();
        assert_eq!(
            bases,
            [
                "https://mirror.example.com:5000/v2",
                "http://10.0.0.2:5000/v2/cache",
                "https://registry-1.docker.io/v2"
            ]
        );
        // The rewrite applies on mirrors only.
        assert_eq!(e[0].repository, "mirrored/busybox");
        assert_eq!(e[2].repository, "library/busybox");
        assert!(e[0].mirror && !e[2].mirror);
    }

    #[test]
    fn a_mirror_for_a_made_up_registry_replaces_nothing_else() {
        let c = RegistriesConfig::parse(K3S_EXAMPLE).unwrap();
        let r = Reference::parse("registry.test/app:2").unwrap();
        let e = c.endpoints(&r);
        assert_eq!(e[0].base(), "https://127.0.0.1:5000/v2");
        assert_eq!(e[1].base(), "https://registry.test/v2");
        // No mirror: just the registry; loopback registries default to plain HTTP.
        let r = Reference::parse("127.0.0.1:5000/app:2").unwrap();
        let e = RegistriesConfig::default().endpoints(&r);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].base(), "http://127.0.0.1:5000/v2");
        assert_eq!(e[0].repository, "app");
    }

    #[test]
    fn a_missing_file_is_an_empty_config() {
        let c = RegistriesConfig::load(Path::new("/nonexistent/registries.yaml")).unwrap();
        assert_eq!(c, RegistriesConfig::default());
    }
}
