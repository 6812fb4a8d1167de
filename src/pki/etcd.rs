//! Certificates of the etcd API listener when it is not on loopback, under
//! `<data-dir>/server/tls/etcd/` (k3s's names):
//!
//! - `server-ca.crt`: the cluster CA that signs the two pairs below (clients trust it);
//! - `server-client.crt` / `.key`: the listener's serving certificate (re-issued when the
//!   wanted names change);
//! - `client.crt` / `.key`: the operator client pair (CN [`ETCD_CLIENT_CN`]) for
//!   `etcdctl --cacert server-ca.crt --cert client.crt --key client.key` and
//!   `k3rs etcd-snapshot save`.
//!
//! The listener accepts only client certificates of this CA with CN [`ETCD_CLIENT_CN`]: node
//! and admin certificates of the same CA do not open the datastore.

use super::certs::{ca_params, leaf_params, read_opt, san_type, write_secret};
use super::{PkiError, ServerPki, io_err};
use rcgen::{ExtendedKeyUsagePurpose, Issuer, KeyPair};
use std::path::{Path, PathBuf};

/// Common name every etcd client certificate must carry.
pub const ETCD_CLIENT_CN: &str = "k3rs-etcd-client";

/// PEM material of the etcd listener and its operator client.
#[derive(Clone, Debug)]
pub struct EtcdCerts {
    /// `<data-dir>/server/tls/etcd`.
    pub dir: PathBuf,
    pub ca_cert_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

/// Creates (or loads) the etcd certificates in `dir`, signed by the cluster CA of `pki`; the
/// serving certificate names `sans` (always with `localhost` and `127.0.0.1`).
///
/// # Errors
/// Filesystem errors, an unreadable CA key, an invalid name.
pub fn ensure_etcd_certs(
    pki: &ServerPki,
    dir: &Path,
    sans: &[String],
) -> Result<EtcdCerts, PkiError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let issuer = Issuer::new(ca_params(), KeyPair::from_pem(&pki.ca_key_pem)?);
    write_secret(&dir.join("server-ca.crt"), &pki.ca_cert_pem, 0o644)?;
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into()];
    for s in sans {
        if !names.contains(s) {
            names.push(s.clone());
        }
    }
    let want = names.join("\n");
    let (cert_path, key_path, sans_path) = (
        dir.join("server-client.crt"),
        dir.join("server-client.key"),
        dir.join("server-client.sans"),
    );
    let (server_cert_pem, server_key_pem) = match (
        read_opt(&cert_path)?,
        read_opt(&key_path)?,
        read_opt(&sans_path)?,
    ) {
        (Some(c), Some(k), Some(s)) if s == want => (c, k),
        _ => {
            let mut params = leaf_params("k3rs-etcd-server", None);
            params.subject_alt_names = names
                .iter()
                .map(|s| san_type(s))
                .collect::<Result<_, _>>()?;
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            let key = KeyPair::generate()?;
            let cert = params.signed_by(&key, &issuer)?;
            let (c, k) = (cert.pem(), key.serialize_pem());
            write_secret(&key_path, &k, 0o600)?;
            write_secret(&cert_path, &c, 0o644)?;
            write_secret(&sans_path, &want, 0o644)?;
            (c, k)
        }
    };
    let (ccert_path, ckey_path) = (dir.join("client.crt"), dir.join("client.key"));
    let (client_cert_pem, client_key_pem) = match (read_opt(&ccert_path)?, read_opt(&ckey_path)?) {
        (Some(c), Some(k)) => (c, k),
        _ => {
            let mut params = leaf_params(ETCD_CLIENT_CN, None);
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            let key = KeyPair::generate()?;
            let cert = params.signed_by(&key, &issuer)?;
            let (c, k) = (cert.pem(), key.serialize_pem());
            write_secret(&ckey_path, &k, 0o600)?;
            write_secret(&ccert_path, &c, 0o644)?;
            (c, k)
        }
    };
    Ok(EtcdCerts {
        dir: dir.to_path_buf(),
        ca_cert_pem: pki.ca_cert_pem.clone(),
        server_cert_pem,
        server_key_pem,
        client_cert_pem,
        client_key_pem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_certs_are_made_once_and_the_server_pair_follows_its_names() {
        let dir = tempfile::tempdir().unwrap();
        let pki = super::super::ensure_server_pki(&dir.path().join("tls"), &["h".into()]).unwrap();
        let etcd = dir.path().join("tls/etcd");
        let a = ensure_etcd_certs(&pki, &etcd, &["10.0.0.1".into()]).unwrap();
        let b = ensure_etcd_certs(&pki, &etcd, &["10.0.0.1".into()]).unwrap();
        assert_eq!(a.server_cert_pem, b.server_cert_pem);
        assert_eq!(a.client_key_pem, b.client_key_pem);
        let c = ensure_etcd_certs(&pki, &etcd, &["10.0.0.2".into()]).unwrap();
        assert_ne!(a.server_cert_pem, c.server_cert_pem);
        assert_eq!(a.client_cert_pem, c.client_cert_pem);
        for f in [
            "server-ca.crt",
            "server-client.crt",
            "server-client.key",
            "client.crt",
            "client.key",
        ] {
            assert!(etcd.join(f).exists(), "{f}");
        }
    }
}
