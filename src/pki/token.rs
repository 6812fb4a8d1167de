//! Join tokens in k3s's format.
//!
//! Owns: generating, parsing and checking join tokens. May call: nothing (pure functions
//! plus the random number generator).
//!
//! Forms accepted (as k3s accepts them):
//! - secure server token `K10<sha256 hex of the CA bundle PEM>::server:<secret>`
//!   (any `<username>:<password>` after `::` is kept as such);
//! - secure bootstrap token `K10<sha256 hex>::<id>.<secret>` (`id` 6 and `secret` 16
//!   characters of `[a-z0-9]`, the kubeadm bootstrap token shape);
//! - a bare secret (no CA hash: the joining node cannot pin the CA, which callers must
//!   treat as trust-on-first-use) and a bare `<id>.<secret>` bootstrap token.
//!
//! The CA hash lets a joining node check, before it sends the secret anywhere, that the
//! CA bundle the server presents is the one the token was cut from.

use sha2::{Digest, Sha256};
use std::fmt;

/// Prefix of the secure token format (version 1.0 of k3s's token).
pub const PREFIX: &str = "K10";
/// User name of the server (full-access) token.
pub const SERVER_USER: &str = "server";

const BOOTSTRAP_ID_LEN: usize = 6;
const BOOTSTRAP_SECRET_LEN: usize = 16;
const BOOTSTRAP_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// What a token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// `<username>:<password>`; k3s's server token uses username `server`.
    Password {
        /// The user name (`server` for the server token).
        username: String,
        /// The secret.
        password: String,
    },
    /// A bootstrap token `<id>.<secret>`.
    Bootstrap {
        /// Public token id (6 characters of `[a-z0-9]`).
        id: String,
        /// Secret part (16 characters of `[a-z0-9]`).
        secret: String,
    },
}

/// A parsed join token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Lower-case hex sha256 of the CA bundle, absent for a bare secret.
    ca_hash: Option<String>,
    /// The credential the token carries.
    credential: Credential,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// The token is the empty string.
    #[error("token is empty")]
    Empty,
    /// `K10` token without the `::` separating the CA hash from the credential.
    #[error("token starts with K10 but has no '::' separating the CA hash from the credential")]
    MissingSeparator,
    /// The CA hash part is not 64 hex characters.
    #[error("token CA hash must be 64 hex characters (sha256), got {len} characters")]
    BadCaHash {
        /// Length of what was found.
        len: usize,
    },
    /// The credential after `::` is neither `<user>:<password>` nor `<id>.<secret>`.
    #[error(
        "token credential must be '<username>:<password>' or a bootstrap token '<id>.<secret>'"
    )]
    BadCredential,
    /// A token contains whitespace or control characters.
    #[error("token contains whitespace or control characters")]
    BadCharacters,
    /// The CA bundle presented does not match the hash in the token.
    #[error("the server's CA bundle does not match the CA hash in the token")]
    CaMismatch,
    /// The token carries no CA hash, so the CA cannot be checked.
    #[error("token has no CA hash (bare secret): the CA cannot be verified")]
    NoCaHash,
}

impl Token {
    /// Build a secure server token `K10<hash>::server:<secret>` for this CA bundle.
    pub fn server(ca_pem: &[u8], secret: &str) -> Token {
        Token {
            ca_hash: Some(ca_hash(ca_pem)),
            credential: Credential::Password {
                username: SERVER_USER.to_string(),
                password: secret.to_string(),
            },
        }
    }

    /// Build a secure bootstrap token `K10<hash>::<id>.<secret>` for this CA bundle.
    pub fn bootstrap(ca_pem: Option<&[u8]>, id: &str, secret: &str) -> Token {
        Token {
            ca_hash: ca_pem.map(ca_hash),
            credential: Credential::Bootstrap {
                id: id.to_string(),
                secret: secret.to_string(),
            },
        }
    }

    /// The CA hash (lower-case hex), if the token carries one.
    pub fn ca_hash(&self) -> Option<&str> {
        self.ca_hash.as_deref()
    }

    /// The credential.
    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// The secret the server compares (password or bootstrap secret).
    pub fn secret(&self) -> &str {
        match &self.credential {
            Credential::Password { password, .. } => password,
            Credential::Bootstrap { secret, .. } => secret,
        }
    }

    /// The same token with the CA hash of this bundle (used to upgrade a bare secret).
    pub fn with_ca(mut self, ca_pem: &[u8]) -> Token {
        self.ca_hash = Some(ca_hash(ca_pem));
        self
    }
}

impl fmt::Display for Token {
    /// The wire form: secure when a CA hash is known, else the bare credential.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cred = match &self.credential {
            Credential::Password { username, password } => format!("{username}:{password}"),
            Credential::Bootstrap { id, secret } => format!("{id}.{secret}"),
        };
        match &self.ca_hash {
            Some(h) => write!(f, "{PREFIX}{h}::{cred}"),
            // A bare server token is just the password, as k3s prints it.
            None => match &self.credential {
                Credential::Password { password, .. } => f.write_str(password),
                Credential::Bootstrap { .. } => f.write_str(&cred),
            },
        }
    }
}

/// Lower-case hex sha256 of a CA bundle (the exact bytes served as the CA PEM).
pub fn ca_hash(ca_pem: &[u8]) -> String {
    hex::encode(Sha256::digest(ca_pem))
}

/// Parse a token in any accepted form (see the module doc).
///
/// # Errors
/// A [`TokenError`] naming what is wrong with the token.
pub fn parse(token: &str) -> Result<Token, TokenError> {
    let token = token.trim();
    if token.is_empty() {
        return Err(TokenError::Empty);
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(TokenError::BadCharacters);
    }
    let Some(rest) = token.strip_prefix(PREFIX) else {
        // Bare forms: a bootstrap token if it has that exact shape, else a password.
        if let Some(cred) = parse_bootstrap(token) {
            return Ok(Token {
                ca_hash: None,
                credential: cred,
            });
        }
        return Ok(Token {
            ca_hash: None,
            credential: Credential::Password {
                username: SERVER_USER.to_string(),
                password: token.to_string(),
            },
        });
    };
    let (hash, cred) = rest.split_once("::").ok_or(TokenError::MissingSeparator)?;
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(TokenError::BadCaHash { len: hash.len() });
    }
    let credential = if let Some(b) = parse_bootstrap(cred) {
        b
    } else {
        match cred.split_once(':') {
            Some((user, pass)) if !user.is_empty() && !pass.is_empty() => Credential::Password {
                username: user.to_string(),
                password: pass.to_string(),
            },
            _ => return Err(TokenError::BadCredential),
        }
    };
    Ok(Token {
        ca_hash: Some(hash.to_ascii_lowercase()),
        credential,
    })
}

fn parse_bootstrap(s: &str) -> Option<Credential> {
    let (id, secret) = s.split_once('.')?;
    let ok =
        |p: &str, len: usize| p.len() == len && p.bytes().all(|b| BOOTSTRAP_ALPHABET.contains(&b));
    (ok(id, BOOTSTRAP_ID_LEN) && ok(secret, BOOTSTRAP_SECRET_LEN)).then(|| Credential::Bootstrap {
        id: id.to_string(),
        secret: secret.to_string(),
    })
}

/// Check that `ca_pem` is the CA bundle the token was cut from (constant-time compare).
///
/// # Errors
/// [`TokenError::NoCaHash`] for a bare secret, [`TokenError::CaMismatch`] when the hash differs.
pub fn verify_ca(token: &Token, ca_pem: &[u8]) -> Result<(), TokenError> {
    let want = token.ca_hash.as_deref().ok_or(TokenError::NoCaHash)?;
    if constant_time_eq(want.as_bytes(), ca_hash(ca_pem).as_bytes()) {
        Ok(())
    } else {
        Err(TokenError::CaMismatch)
    }
}

/// Compare without an early exit, so timing does not leak how much of a value matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh random server secret (32 lower-case hex characters, 128 bits, as k3s).
pub fn generate_secret() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

/// A fresh bootstrap token id and secret (`[a-z0-9]{6}`, `[a-z0-9]{16}`).
pub fn generate_bootstrap() -> (String, String) {
    let pick = |n: usize| -> String {
        (0..n)
            .map(|_| {
                let i = rand::random_range(0..BOOTSTRAP_ALPHABET.len());
                char::from(BOOTSTRAP_ALPHABET[i])
            })
            .collect()
    };
    (pick(BOOTSTRAP_ID_LEN), pick(BOOTSTRAP_SECRET_LEN))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &[u8] = b"-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";

    #[test]
    fn server_token_round_trips_through_its_string_form() {
        let secret = generate_secret();
        let t = Token::server(CA, &secret);
        let s = t.to_string();
        assert!(s.starts_with("K10"), "{s}");
        assert!(s.ends_with(&format!("::server:{secret}")), "{s}");
        let back = parse(&s).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.secret(), secret);
        verify_ca(&back, CA).unwrap();
    }

    #[test]
    fn bootstrap_token_round_trips_in_secure_and_bare_forms() {
        let (id, secret) = generate_bootstrap();
        let secure = Token::bootstrap(Some(CA), &id, &secret);
        assert_eq!(parse(&secure.to_string()).unwrap(), secure);
        let bare = Token::bootstrap(None, &id, &secret);
        assert_eq!(bare.to_string(), format!("{id}.{secret}"));
        assert_eq!(parse(&bare.to_string()).unwrap(), bare);
    }

    #[test]
    fn tampered_ca_hash_is_refused() {
        let s = Token::server(CA, "abc").to_string();
        // Flip one hex digit of the hash.
        let mut bytes = s.into_bytes();
        bytes[3] = if bytes[3] == b'0' { b'1' } else { b'0' };
        let tampered = parse(std::str::from_utf8(&bytes).unwrap()).unwrap();
        assert_eq!(verify_ca(&tampered, CA), Err(TokenError::CaMismatch));
        // And a different CA bundle is refused with the genuine token.
        let genuine = Token::server(CA, "abc");
        assert_eq!(
            verify_ca(&genuine, b"another ca"),
            Err(TokenError::CaMismatch)
        );
    }

    #[test]
    fn bare_secret_parses_as_server_password_without_ca_hash() {
        let t = parse("mysecret").unwrap();
        assert_eq!(t.ca_hash(), None);
        assert_eq!(
            t.credential(),
            &Credential::Password {
                username: "server".into(),
                password: "mysecret".into()
            }
        );
        assert_eq!(verify_ca(&t, CA), Err(TokenError::NoCaHash));
        assert_eq!(t.to_string(), "mysecret");
        assert!(verify_ca(&t.with_ca(CA), CA).is_ok());
    }

    #[test]
    fn garbage_tokens_are_refused_with_clear_errors() {
        assert_eq!(parse(""), Err(TokenError::Empty));
        assert_eq!(parse("   "), Err(TokenError::Empty));
        assert_eq!(parse("K10abc"), Err(TokenError::MissingSeparator));
        assert_eq!(
            parse("K10abc::server:x"),
            Err(TokenError::BadCaHash { len: 3 })
        );
        let h = ca_hash(CA);
        assert_eq!(
            parse(&format!("K10{h}::nocolon")),
            Err(TokenError::BadCredential)
        );
        assert_eq!(
            parse(&format!("K10{h}::server:")),
            Err(TokenError::BadCredential)
        );
        assert_eq!(parse("a b"), Err(TokenError::BadCharacters));
        let nonhex = "z".repeat(64);
        assert_eq!(
            parse(&format!("K10{nonhex}::server:x")),
            Err(TokenError::BadCaHash { len: 64 })
        );
        assert!(
            TokenError::CaMismatch
                .to_string()
                .contains("does not match")
        );
    }

    #[test]
    fn constant_time_eq_compares_length_and_content() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn generated_bootstrap_tokens_have_the_kubeadm_shape() {
        let (id, secret) = generate_bootstrap();
        assert_eq!(id.len(), 6);
        assert_eq!(secret.len(), 16);
        assert!(parse_bootstrap(&format!("{id}.{secret}")).is_some());
        assert_ne!(generate_secret(), generate_secret());
    }
}
