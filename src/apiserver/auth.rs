//! Who is calling: users from client certificates (CN = name, O = groups) and from
//! service-account bearer tokens (ES256 JWTs this server signs), plus token issuing for
//! `serviceaccounts/{name}/token`.
//!
//! There is no authorization yet: every authenticated user may do everything.

use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _};
use serde_json::{Value, json};

/// An authenticated user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
}

impl User {
    /// `UserInfo` as the authentication/authorization APIs print it.
    pub fn to_json(&self) -> Value {
        json!({"username": self.name, "uid": self.uid, "groups": self.groups})
    }
}

/// The user named by a client certificate (DER): CN is the name, each O a group.
pub fn user_from_cert(der: &[u8]) -> Option<User> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())?
        .to_string();
    let mut groups: Vec<String> = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok().map(String::from))
        .collect();
    groups.push("system:authenticated".into());
    Some(User {
        name,
        uid: String::new(),
        groups,
    })
}

/// Issues and verifies service-account tokens.
pub struct TokenSigner {
    key: EcdsaKeyPair,
    issuer: String,
}

const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// What a token is bound to, besides its service account.
pub struct TokenSubject<'a> {
    pub namespace: &'a str,
    pub service_account: &'a str,
    pub service_account_uid: &'a str,
    /// `(kind, name, uid)` of a bound Pod or Secret.
    pub bound: Option<(&'a str, &'a str, &'a str)>,
}

impl TokenSigner {
    /// From a PKCS#8 PEM P-256 key.
    ///
    /// # Errors
    /// When the key is not a P-256 PKCS#8 key.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let kp = rcgen::KeyPair::from_pem(pem).map_err(|e| e.to_string())?;
        let key = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &kp.serialize_der(),
            &SystemRandom::new(),
        )
        .map_err(|e| e.to_string())?;
        Ok(Self {
            key,
            issuer: ISSUER.into(),
        })
    }

    /// A signed token and its expiry (unix seconds).
    ///
    /// # Errors
    /// If signing fails.
    pub fn issue(
        &self,
        sub: &TokenSubject<'_>,
        audiences: &[String],
        ttl_secs: i64,
    ) -> Result<(String, i64), String> {
        let now = jiff::Timestamp::now().as_second();
        let exp = now + ttl_secs;
        let mut k8s = json!({
            "namespace": sub.namespace,
            "serviceaccount": {"name": sub.service_account, "uid": sub.service_account_uid},
        });
        if let Some((kind, name, uid)) = sub.bound {
            k8s[kind.to_lowercase()] = json!({"name": name, "uid": uid});
        }
        let aud: Vec<String> = if audiences.is_empty() {
            vec![self.issuer.clone()]
        } else {
            audiences.to_vec()
        };
        let claims = json!({
            "iss": self.issuer,
            "sub": format!("system:serviceaccount:{}:{}", sub.namespace, sub.service_account),
            "aud": aud,
            "iat": now,
            "nbf": now,
            "exp": exp,
            "kubernetes.io": k8s,
        });
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.key_id()});
        let signing_input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = self
            .key
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .map_err(|e| e.to_string())?;
        Ok((format!("{signing_input}.{}", b64(sig.as_ref())), exp))
    }

    fn key_id(&self) -> String {
        use sha2::{Digest, Sha256};
        b64(&Sha256::digest(self.key.public_key().as_ref())[..16])
    }

    /// The user a valid, unexpired token of ours stands for.
    pub fn verify(&self, token: &str) -> Option<User> {
        let mut parts = token.split('.');
        let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()?;
        signature::UnparsedPublicKey::new(
            &signature::ECDSA_P256_SHA256_FIXED,
            self.key.public_key().as_ref(),
        )
        .verify(format!("{h}.{c}").as_bytes(), &sig)
        .ok()?;
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(c)
                .ok()?,
        )
        .ok()?;
        if claims.get("exp").and_then(Value::as_i64)? < jiff::Timestamp::now().as_second() {
            return None;
        }
        let ns = claims
            .pointer("/kubernetes.io/namespace")
            .and_then(Value::as_str)?;
        Some(User {
            name: claims.get("sub").and_then(Value::as_str)?.to_string(),
            uid: claims
                .pointer("/kubernetes.io/serviceaccount/uid")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".into(),
            ],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_and_tampered_ones_do_not() {
        let pem = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let s = TokenSigner::from_pem(&pem).unwrap();
        let sub = TokenSubject {
            namespace: "ns",
            service_account: "bot",
            service_account_uid: "u1",
            bound: None,
        };
        let (tok, _) = s.issue(&sub, &[], 600).unwrap();
        let u = s.verify(&tok).unwrap();
        assert_eq!(u.name, "system:serviceaccount:ns:bot");
        assert!(u.groups.contains(&"system:serviceaccounts:ns".to_string()));
        let mut bad = tok.clone();
        bad.insert(tok.find('.').unwrap() + 2, 'x');
        assert!(s.verify(&bad).is_none());
        let (expired, _) = s.issue(&sub, &[], -10).unwrap();
        assert!(s.verify(&expired).is_none());
    }

    #[test]
    fn certificate_subjects_become_users() {
        use rustls_pki_types::pem::PemObject;
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::pki::ensure_server_pki(dir.path(), &["localhost".into()]).unwrap();
        let der = rustls_pki_types::CertificateDer::from_pem_slice(pki.admin_cert_pem.as_bytes())
            .unwrap();
        let u = user_from_cert(&der).unwrap();
        assert_eq!(u.name, "system:admin");
        assert!(u.groups.contains(&"system:masters".to_string()));
    }
}
