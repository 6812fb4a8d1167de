//! Secrets of the join protocol: node-password hashes and the sealed server-bootstrap payload.
//!
//! Owns: the hash format stored in `kube-system/<node>.node-password.k3rs` and the
//! encryption of the CA material handed to joining servers. May call: `ring` only.
//!
//! The bootstrap payload already travels over TLS pinned to the CA hash of the token; it is
//! sealed again (AES-256-GCM, key = HKDF-SHA256 of the token secret) so that the CA key is
//! readable only by a holder of the secret even if the TLS layer is misconfigured.

use base64::Engine;
use ring::{aead, hkdf, pbkdf2};
use std::num::NonZeroU32;

const PBKDF2_ITERATIONS: u32 = 20_000;
const HASH_PREFIX: &str = "pbkdf2-sha256";
const HKDF_SALT: &[u8] = b"k3rs-server-bootstrap-v1";

/// Why a sealed payload could not be opened or a hash could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JoinCryptoError {
    #[error("the bootstrap payload cannot be decrypted (wrong token secret or corrupted data)")]
    Open,
    #[error("the bootstrap payload is malformed")]
    Malformed,
    #[error("the bootstrap payload cannot be sealed")]
    Seal,
    #[error("the stored node password hash is malformed")]
    BadHash,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// Hash a node password for storage: `pbkdf2-sha256$<iterations>$<salt b64>$<hash b64>`.
pub fn hash_node_password(password: &str) -> String {
    let salt: [u8; 16] = rand::random();
    let mut out = [0u8; 32];
    let iterations = NonZeroU32::new(PBKDF2_ITERATIONS).unwrap_or(NonZeroU32::MIN);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt,
        password.as_bytes(),
        &mut out,
    );
    format!(
        "{HASH_PREFIX}${PBKDF2_ITERATIONS}${}${}",
        b64().encode(salt),
        b64().encode(out)
    )
}

/// Whether `password` matches a hash made by [`hash_node_password`].
///
/// # Errors
/// When the stored hash is not in the expected format.
pub fn verify_node_password(stored: &str, password: &str) -> Result<bool, JoinCryptoError> {
    let parts: Vec<&str> = stored.trim().split('$').collect();
    let [prefix, iterations, salt, hash] = parts.as_slice() else {
        return Err(JoinCryptoError::BadHash);
    };
    if *prefix != HASH_PREFIX {
        return Err(JoinCryptoError::BadHash);
    }
    let iterations = iterations
        .parse::<u32>()
        .ok()
        .and_then(NonZeroU32::new)
        .ok_or(JoinCryptoError::BadHash)?;
    let salt = b64().decode(salt).map_err(|_| JoinCryptoError::BadHash)?;
    let hash = b64().decode(hash).map_err(|_| JoinCryptoError::BadHash)?;
    Ok(pbkdf2::verify(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt,
        password.as_bytes(),
        &hash,
    )
    .is_ok())
}

fn key(secret: &str) -> Result<aead::LessSafeKey, JoinCryptoError> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(secret.as_bytes());
    let okm = prk
        .expand(&[b"aes-256-gcm"], &aead::AES_256_GCM)
        .map_err(|_| JoinCryptoError::Seal)?;
    Ok(aead::LessSafeKey::new(aead::UnboundKey::from(okm)))
}

/// Seal `plain` with a key derived from the token secret: `base64(nonce || ciphertext+tag)`.
///
/// # Errors
/// Only if the key cannot be derived or the input exceeds GCM's limit (never for kilobytes).
pub fn seal(secret: &str, plain: &[u8]) -> Result<String, JoinCryptoError> {
    let nonce_bytes: [u8; 12] = rand::random();
    let mut data = plain.to_vec();
    key(secret)?
        .seal_in_place_append_tag(
            aead::Nonce::assume_unique_for_key(nonce_bytes),
            aead::Aad::from(HKDF_SALT),
            &mut data,
        )
        .map_err(|_| JoinCryptoError::Seal)?;
    let mut out = nonce_bytes.to_vec();
    out.extend_from_slice(&data);
    Ok(b64().encode(out))
}

/// Open what [`seal`] produced.
///
/// # Errors
/// On a wrong secret or a malformed payload.
pub fn open(secret: &str, sealed: &str) -> Result<Vec<u8>, JoinCryptoError> {
    let raw = b64()
        .decode(sealed.trim())
        .map_err(|_| JoinCryptoError::Malformed)?;
    if raw.len() < 12 + 16 {
        return Err(JoinCryptoError::Malformed);
    }
    let (nonce, rest) = raw.split_at(12);
    let nonce = aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| JoinCryptoError::Open)?;
    let mut data = rest.to_vec();
    let plain = key(secret)?
        .open_in_place(nonce, aead::Aad::from(HKDF_SALT), &mut data)
        .map_err(|_| JoinCryptoError::Open)?;
    Ok(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_password_hash_accepts_the_same_password_only() {
        let h = hash_node_password("pw-1");
        assert!(verify_node_password(&h, "pw-1").unwrap());
        assert!(!verify_node_password(&h, "pw-2").unwrap());
        assert_ne!(h, hash_node_password("pw-1"), "hashes are salted");
        assert_eq!(
            verify_node_password("garbage", "x"),
            Err(JoinCryptoError::BadHash)
        );
    }

    #[test]
    fn sealed_payload_opens_only_with_the_same_secret() {
        let s = seal("secret-a", b"ca key material").unwrap();
        assert_eq!(open("secret-a", &s).unwrap(), b"ca key material");
        assert_eq!(open("secret-b", &s), Err(JoinCryptoError::Open));
        assert_eq!(open("secret-a", "!!"), Err(JoinCryptoError::Malformed));
    }
}
