//! Registry credentials and the auth handshake's pure parts: `WWW-Authenticate` challenges
//! (Basic, Bearer realm/service/scope), `registries.yaml` auth entries and
//! `kubernetes.io/dockerconfigjson` pull secrets, and the token endpoint's answer.
//!
//! Owns: credential formats. May call: nothing (the HTTP exchange is in [`super::client`]).

use super::config::AuthConfig;
use base64::Engine;
use serde::Deserialize;
use std::collections::HashMap;

/// Credentials for one registry host.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Basic {
        username: String,
        password: String,
    },
    /// OAuth2 refresh token exchanged at the token endpoint.
    IdentityToken(String),
}

impl std::fmt::Debug for Credentials {
    // Never log secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credentials::IdentityToken(_) => write!(f, "IdentityToken(<redacted>)"),
        }
    }
}

impl Credentials {
    /// The `Authorization` value for HTTP basic auth (identity tokens have none).
    pub fn basic_header(&self) -> Option<String> {
        match self {
            Credentials::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
            Credentials::IdentityToken(_) => None,
        }
    }
}

/// Decodes the base64 `user:password` form.
fn decode_auth(auth: &str) -> Option<Credentials> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some(Credentials::Basic {
        username: u.to_string(),
        password: p.to_string(),
    })
}

impl AuthConfig {
    /// The credentials this entry describes, if any.
    pub fn credentials(&self) -> Option<Credentials> {
        if let Some(t) = self.identity_token.as_ref().filter(|t| !t.is_empty()) {
            return Some(Credentials::IdentityToken(t.clone()));
        }
        if let (Some(u), Some(p)) = (&self.username, &self.password) {
            return Some(Credentials::Basic {
                username: u.clone(),
                password: p.clone(),
            });
        }
        self.auth.as_deref().and_then(decode_auth)
    }
}

#[derive(Debug, Deserialize)]
struct DockerConfigJson {
    #[serde(default)]
    auths: HashMap<String, DockerAuthEntry>,
}

#[derive(Debug, Deserialize)]
struct DockerAuthEntry {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    auth: Option<String>,
    #[serde(default, rename = "identitytoken")]
    identity_token: Option<String>,
}

/// Credentials by registry host, from pull secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullSecrets(pub Vec<(String, Credentials)>);

/// `https://index.docker.io/v1/` → `docker.io`; `host:port/path` → `host:port`.
fn secret_host(key: &str) -> String {
    let k = key
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = k.split('/').next().unwrap_or(k).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".into()
        }
        _ => host,
    }
}

impl PullSecrets {
    /// Adds the entries of one `.dockerconfigjson` (or legacy `.dockercfg`) document.
    pub fn add_docker_config(&mut self, json: &[u8]) -> Result<(), String> {
        let entries: HashMap<String, DockerAuthEntry> =
            match serde_json::from_slice::<DockerConfigJson>(json) {
                Ok(c) if !c.auths.is_empty() => c.auths,
                // `.dockercfg` is the `auths` map itself.
                _ => serde_json::from_slice(json).map_err(|e| format!("bad docker config: {e}"))?,
            };
        for (key, e) in entries {
            let cfg = AuthConfig {
                username: e.username,
                password: e.password,
                auth: e.auth,
                identity_token: e.identity_token,
            };
            if let Some(c) = cfg.credentials() {
                self.0.push((secret_host(&key), c));
            }
        }
        Ok(())
    }

    /// A digest identifying these credentials (for sharing work between equal callers).
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for (host, c) in &self.0 {
            h.update(host.as_bytes());
            match c {
                Credentials::Basic { username, password } => {
                    h.update(b"\0b\0");
                    h.update(username.as_bytes());
                    h.update(b"\0");
                    h.update(password.as_bytes());
                }
                Credentials::IdentityToken(t) => {
                    h.update(b"\0t\0");
                    h.update(t.as_bytes());
                }
            }
            h.update(b"\n");
        }
        hex::encode(h.finalize())
    }

    /// Credentials for `host` (the registry name, e.g. `docker.io`, or an endpoint host).
    pub fn for_host(&self, host: &str) -> Option<&Credentials> {
        let host = secret_host(host);
        self.0.iter().find(|(h, _)| *h == host).map(|(_, c)| c)
    }
}

/// One parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Lowercase scheme: `basic` or `bearer`.
    pub scheme: String,
    pub params: HashMap<String, String>,
}

/// Parses `Bearer realm="…",service="…",scope="repository:a:pull"` (quoted values may hold
/// commas). Returns `None` for an empty or malformed header.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = match header.split_once(char::is_whitespace) {
        Some((s, r)) => (s, r),
        None => (header, ""),
    };
    if scheme.is_empty() {
        return None;
    }
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('=') {
            return None;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return None;
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        params.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

/// The token endpoint's JSON answer (`token`, or OAuth2's `access_token`).
#[derive(Debug, Deserialize)]
pub struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
}

impl TokenResponse {
    pub fn bearer(self) -> Option<String> {
        self.token
            .filter(|t| !t.is_empty())
            .or(self.access_token.filter(|t| !t.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_keep_commas_inside_quotes() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.docker.io/token");
        assert_eq!(c.params["service"], "registry.docker.io");
        assert_eq!(c.params["scope"], "repository:a/b:pull,push");
    }

    #[test]
    fn basic_and_unquoted_challenges_parse() {
        let c = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.params["realm"], "Registry Realm");
        let c = parse_challenge("Bearer realm=https://t/x, service=s").unwrap();
        assert_eq!(c.params["realm"], "https://t/x");
        assert_eq!(c.params["service"], "s");
        assert!(parse_challenge(r#"Bearer realm="unterminated"#).is_none());
        assert!(parse_challenge("").is_none());
    }

    #[test]
    fn docker_config_json_secrets_map_hub_aliases_to_docker_io() {
        let mut s = PullSecrets::default();
        s.add_docker_config(
            br#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTE6cDE="},
                "127.0.0.1:5000":{"username":"u2","password":"p2"}}}"#,
        )
        .unwrap();
        assert_eq!(
            s.for_host("docker.io"),
            Some(&Credentials::Basic {
                username: "u1".into(),
                password: "p1".into()
            })
        );
        assert_eq!(
            s.for_host("127.0.0.1:5000")
                .unwrap()
                .basic_header()
                .unwrap(),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("u2:p2")
            )
        );
        assert!(s.for_host("ghcr.io").is_none());
        // Legacy .dockercfg: the map itself.
        let mut l = PullSecrets::default();
        l.add_docker_config(br#"{"quay.io":{"auth":"dTE6cDE="}}"#)
            .unwrap();
        assert!(l.for_host("quay.io").is_some());
        assert!(l.add_docker_config(b"nope").is_err());
    }

    #[test]
    fn identity_tokens_win_over_passwords_and_are_never_logged() {
        let a = AuthConfig {
            username: Some("u".into()),
            password: Some("secret".into()),
            identity_token: Some("tok".into()),
            ..Default::default()
        };
        let c = a.credentials().unwrap();
        assert_eq!(c, Credentials::IdentityToken("tok".into()));
        assert!(!format!("{c:?}").contains("tok\""));
        let b = AuthConfig {
            username: Some("u".into()),
            password: Some("secret".into()),
            ..Default::default()
        };
        assert!(!format!("{:?}", b.credentials().unwrap()).contains("secret"));
    }
}
