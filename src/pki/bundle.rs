//! The cluster CA bundle kept in the replicated store, so every server (and a server whose
//! local CA files were lost) can get it with the token: key `/k3rs/bootstrap/<hash>`, value
//! sealed with AES-256-GCM under a key derived from the token secret by PBKDF2-HMAC-SHA256
//! (random salt, stored beside the ciphertext), like k3s's bootstrap data.
//!
//! Owns: the key name and the sealed format. May call: `ring` only.

use base64::Engine;
use ring::{aead, pbkdf2};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::num::NonZeroU32;

const ITERATIONS: u32 = 20_000;
const AAD: &[u8] = b"k3rs-bootstrap-bundle-v1";

/// The shared secrets of a cluster's servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    pub ca_cert: String,
    pub ca_key: String,
    pub service_account_key: String,
}

/// Why a stored bundle cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    #[error("the stored bootstrap bundle is malformed")]
    Malformed,
    #[error("the stored bootstrap bundle cannot be decrypted (wrong token?)")]
    Open,
    #[error("the bootstrap bundle cannot be sealed")]
    Seal,
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    kdf: String,
    iterations: u32,
    salt: String,
    /// base64(nonce || ciphertext+tag)
    data: String,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// Store key of the bundle for a token secret: the secret itself never appears.
pub fn store_key(secret: &str) -> String {
    let h = hex::encode(Sha256::digest(secret.as_bytes()));
    format!("/k3rs/bootstrap/{}", &h[..12])
}

fn key(secret: &str, salt: &[u8], iterations: u32) -> Result<aead::LessSafeKey, BundleError> {
    let mut k = [0u8; 32];
    let it = NonZeroU32::new(iterations).ok_or(BundleError::Malformed)?;
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        it,
        salt,
        secret.as_bytes(),
        &mut k,
    );
    let unbound = aead::UnboundKey::new(&aead::AES_256_GCM, &k).map_err(|_| BundleError::Seal)?;
    Ok(aead::LessSafeKey::new(unbound))
}

/// Seal `bundle` with the token secret (the store value).
///
/// # Errors
/// Only if sealing itself fails.
pub fn seal(secret: &str, bundle: &Bundle) -> Result<Vec<u8>, BundleError> {
    let salt: [u8; 16] = rand::random();
    let nonce: [u8; 12] = rand::random();
    let mut data = serde_json::to_vec(bundle).map_err(|_| BundleError::Seal)?;
    key(secret, &salt, ITERATIONS)?
        .seal_in_place_append_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(AAD),
            &mut data,
        )
        .map_err(|_| BundleError::Seal)?;
    let mut raw = nonce.to_vec();
    raw.extend_from_slice(&data);
    serde_json::to_vec(&Sealed {
        kdf: "pbkdf2-sha256".into(),
        iterations: ITERATIONS,
        salt: b64().encode(salt),
        data: b64().encode(raw),
    })
    .map_err(|_| BundleError::Seal)
}

/// Open a value made by [`seal`].
///
/// # Errors
/// On a wrong secret or a malformed value.
pub fn open(secret: &str, value: &[u8]) -> Result<Bundle, BundleError> {
    let sealed: Sealed = serde_json::from_slice(value).map_err(|_| BundleError::Malformed)?;
    if sealed.kdf != "pbkdf2-sha256" {
        return Err(BundleError::Malformed);
    }
    let salt = b64()
        .decode(&sealed.salt)
        .map_err(|_| BundleError::Malformed)?;
    let raw = b64()
        .decode(&sealed.data)
        .map_err(|_| BundleError::Malformed)?;
    if raw.len() < 12 + 16 {
        return Err(BundleError::Malformed);
    }
    let (nonce, rest) = raw.split_at(12);
    let nonce =
        aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| BundleError::Malformed)?;
    let mut data = rest.to_vec();
    let plain = key(secret, &salt, sealed.iterations)?
        .open_in_place(nonce, aead::Aad::from(AAD), &mut data)
        .map_err(|_| BundleError::Open)?;
    serde_json::from_slice(plain).map_err(|_| BundleError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle() -> Bundle {
        Bundle {
            ca_cert: "cert".into(),
            ca_key: "key".into(),
            service_account_key: "sa".into(),
        }
    }

    #[test]
    fn a_sealed_bundle_opens_only_with_the_same_token_secret() {
        let v = seal("s3cret", &bundle()).unwrap();
        assert!(
            !String::from_utf8_lossy(&v).contains("key\""),
            "the CA key is not in clear"
        );
        assert_eq!(open("s3cret", &v).unwrap(), bundle());
        assert_eq!(open("other", &v), Err(BundleError::Open));
        assert_eq!(open("s3cret", b"{}"), Err(BundleError::Malformed));
        assert_ne!(seal("s3cret", &bundle()).unwrap(), v, "salted and nonced");
    }

    #[test]
    fn the_store_key_hides_the_secret_and_depends_on_it() {
        let k = store_key("s3cret");
        assert!(k.starts_with("/k3rs/bootstrap/") && !k.contains("s3cret"));
        assert_eq!(k.len(), "/k3rs/bootstrap/".len() + 12);
        assert_ne!(k, store_key("other"));
    }
}
