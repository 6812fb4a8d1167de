//! The cluster CA, the API serving certificate and the admin client certificate.

use super::{PkiError, io_err};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, date_time_ymd,
};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// PEM material of a server: CA, serving pair and admin client pair.
#[derive(Clone, Debug)]
pub struct ServerPki {
    /// Directory the files live in (`<data-dir>/server/tls`).
    pub dir: PathBuf,
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub serving_cert_pem: String,
    pub serving_key_pem: String,
    pub admin_cert_pem: String,
    pub admin_key_pem: String,
    /// Client pair the API server presents to agent endpoints (`pods/log`, `pods/exec`).
    pub kubelet_client_cert_pem: String,
    pub kubelet_client_key_pem: String,
    /// PKCS#8 PEM of the key that signs service-account tokens (ES256).
    pub service_account_key_pem: String,
}

const CA_CN: &str = "k3rs-server-ca";

pub(super) fn ca_params() -> CertificateParams {
    // Deterministic parameters: the issuer is rebuilt from them (and the stored key) on every
    // start, so the issuer name and key identifier always match the stored CA certificate.
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_CN);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let year = current_year();
    params.not_before = date_time_ymd(year - 1, 1, 1);
    params.not_after = date_time_ymd(year + 10, 1, 1);
    params
}

fn current_year() -> i32 {
    i32::from(
        jiff::Timestamp::now()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .year(),
    )
}

pub(super) fn leaf_params(cn: &str, org: Option<&str>) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    if let Some(o) = org {
        dn.push(DnType::OrganizationName, o);
    }
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let year = current_year();
    params.not_before = date_time_ymd(year - 1, 1, 1);
    params.not_after = date_time_ymd(year + 2, 1, 1);
    params
}

pub(super) fn write_secret(path: &Path, data: &str, mode: u32) -> Result<(), PkiError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    f.write_all(data.as_bytes()).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

pub(super) fn read_opt(path: &Path) -> Result<Option<String>, PkiError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Leaf certificates with less than this left are re-issued at start (`--cert-renew-before-days`).
pub const DEFAULT_RENEW_BEFORE: std::time::Duration = std::time::Duration::from_secs(90 * 86_400);

/// Seconds since the epoch at which the PEM certificate expires; `None` when unreadable.
pub fn not_after(cert_pem: &str) -> Option<i64> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).ok()?;
    let cert = pem.parse_x509().ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// Whether a leaf certificate must be re-issued: unreadable, or expiring within `before`.
fn expiring(cert_pem: &str, before: std::time::Duration) -> bool {
    let limit = jiff::Timestamp::now().as_second()
        + i64::try_from(before.as_secs()).unwrap_or(i64::MAX / 2);
    not_after(cert_pem).is_none_or(|t| t < limit)
}

/// The subject alternative names of the serving certificate, in a stable order.
pub fn serving_sans(hostname: &str, node_ip: Option<IpAddr>, extra: &[String]) -> Vec<String> {
    let mut sans: Vec<String> = vec![
        hostname.to_string(),
        "localhost".into(),
        "127.0.0.1".into(),
        "::1".into(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        "kubernetes.default.svc.cluster.local".into(),
        "10.43.0.1".into(),
    ];
    if let Some(ip) = node_ip {
        sans.push(ip.to_string());
    }
    sans.extend(extra.iter().cloned());
    let mut seen = std::collections::BTreeSet::new();
    sans.retain(|s| !s.is_empty() && seen.insert(s.clone()));
    sans
}

pub(super) fn san_type(s: &str) -> Result<SanType, PkiError> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    s.to_string()
        .try_into()
        .map(SanType::DnsName)
        .map_err(|_| PkiError::BadSan(s.to_string()))
}

/// Create (first start) or load (later starts) the server PKI under `dir`, re-issuing leaf
/// certificates that expire within [`DEFAULT_RENEW_BEFORE`].
///
/// # Errors
/// On filesystem errors, an unreadable stored key, or an invalid SAN.
pub fn ensure_server_pki(dir: &Path, sans: &[String]) -> Result<ServerPki, PkiError> {
    ensure_server_pki_renewing(dir, sans, DEFAULT_RENEW_BEFORE).map(|(pki, _)| pki)
}

/// [`ensure_server_pki`] with the renewal window given; also returns the file names of the
/// leaf certificates it re-issued because they were expiring (CA certificates are never
/// re-issued; one close to expiry is only logged).
///
/// # Errors
/// On filesystem errors, an unreadable stored key, or an invalid SAN.
pub fn ensure_server_pki_renewing(
    dir: &Path,
    sans: &[String],
    renew_before: std::time::Duration,
) -> Result<(ServerPki, Vec<String>), PkiError> {
    let mut renewed = Vec::new();
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let ca_cert_path = dir.join("server-ca.crt");
    let ca_key_path = dir.join("server-ca.key");
    let (ca_cert_pem, ca_key_pem) = match (read_opt(&ca_cert_path)?, read_opt(&ca_key_path)?) {
        (Some(c), Some(k)) => (c, k),
        _ => {
            let key = KeyPair::generate()?;
            let cert = ca_params().self_signed(&key)?;
            let (c, k) = (cert.pem(), key.serialize_pem());
            write_secret(&ca_key_path, &k, 0o600)?;
            write_secret(&ca_cert_path, &c, 0o644)?;
            (c, k)
        }
    };
    if expiring(&ca_cert_pem, renew_before) {
        tracing::warn!(path = %ca_cert_path.display(), "the cluster CA certificate expires soon; it is not renewed automatically");
    }
    let issuer = Issuer::new(ca_params(), KeyPair::from_pem(&ca_key_pem)?);

    // Serving certificate: reissued when the SAN list changes or it is expiring.
    let sans_path = dir.join("serving-kube-apiserver.sans");
    let serving_cert_path = dir.join("serving-kube-apiserver.crt");
    let serving_key_path = dir.join("serving-kube-apiserver.key");
    let want_sans = sans.join("\n");
    let (serving_cert_pem, serving_key_pem) = match (
        read_opt(&serving_cert_path)?,
        read_opt(&serving_key_path)?,
        read_opt(&sans_path)?,
    ) {
        (Some(c), Some(k), Some(s)) if s == want_sans && !expiring(&c, renew_before) => (c, k),
        (cert, _, s) => {
            if let Some(c) = cert.filter(|_| s.as_deref() == Some(want_sans.as_str())) {
                tracing::info!(path = %serving_cert_path.display(), not_after = ?not_after(&c), "renewing expiring certificate");
                renewed.push("serving-kube-apiserver.crt".to_string());
            }
            let mut params = leaf_params("kube-apiserver", None);
            params.subject_alt_names =
                sans.iter().map(|s| san_type(s)).collect::<Result<_, _>>()?;
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            let key = KeyPair::generate()?;
            let cert = params.signed_by(&key, &issuer)?;
            let (c, k) = (cert.pem(), key.serialize_pem());
            write_secret(&serving_key_path, &k, 0o600)?;
            write_secret(&serving_cert_path, &c, 0o644)?;
            write_secret(&sans_path, &want_sans, 0o644)?;
            (c, k)
        }
    };

    let admin_cert_path = dir.join("client-admin.crt");
    let admin_key_path = dir.join("client-admin.key");
    let (admin_cert_pem, admin_key_pem) = match (
        read_opt(&admin_cert_path)?,
        read_opt(&admin_key_path)?,
    ) {
        (Some(c), Some(k)) if !expiring(&c, renew_before) => (c, k),
        (cert, _) => {
            if let Some(c) = cert {
                tracing::info!(path = %admin_cert_path.display(), not_after = ?not_after(&c), "renewing expiring certificate");
                renewed.push("client-admin.crt".to_string());
            }
            let (c, k) = issue_client_cert(&issuer, "system:admin", Some("system:masters"))?;
            write_secret(&admin_key_path, &k, 0o600)?;
            write_secret(&admin_cert_path, &c, 0o644)?;
            (c, k)
        }
    };
    // Like k3s's `client-kube-apiserver`: the only client agent endpoints accept.
    let kc_cert_path = dir.join("client-kube-apiserver-kubelet.crt");
    let kc_key_path = dir.join("client-kube-apiserver-kubelet.key");
    let (kubelet_client_cert_pem, kubelet_client_key_pem) =
        match (read_opt(&kc_cert_path)?, read_opt(&kc_key_path)?) {
            (Some(c), Some(k)) if !expiring(&c, renew_before) => (c, k),
            (cert, _) => {
                if cert.is_some() {
                    renewed.push("client-kube-apiserver-kubelet.crt".to_string());
                }
                let (c, k) = issue_client_cert(&issuer, KUBELET_CLIENT_CN, Some("system:masters"))?;
                write_secret(&kc_key_path, &k, 0o600)?;
                write_secret(&kc_cert_path, &c, 0o644)?;
                (c, k)
            }
        };
    let sa_key_path = dir.join("service.key");
    let service_account_key_pem = match read_opt(&sa_key_path)? {
        Some(k) => k,
        None => {
            let k = KeyPair::generate()?.serialize_pem();
            write_secret(&sa_key_path, &k, 0o600)?;
            k
        }
    };
    let pki = ServerPki {
        dir: dir.to_path_buf(),
        service_account_key_pem,
        ca_cert_pem,
        ca_key_pem,
        serving_cert_pem,
        serving_key_pem,
        admin_cert_pem,
        admin_key_pem,
        kubelet_client_cert_pem,
        kubelet_client_key_pem,
    };
    Ok((pki, renewed))
}

fn issue_client_cert(
    issuer: &Issuer<'_, KeyPair>,
    cn: &str,
    org: Option<&str>,
) -> Result<(String, String), PkiError> {
    let mut params = leaf_params(cn, org);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

impl ServerPki {
    /// Issue a new client certificate (PEM cert, PEM key) signed by the cluster CA, for
    /// in-process clients (controllers, scheduler, agent) and tests.
    ///
    /// # Errors
    /// If the stored CA key is unreadable.
    pub fn issue_client(&self, cn: &str, org: Option<&str>) -> Result<(String, String), PkiError> {
        let issuer = Issuer::new(ca_params(), KeyPair::from_pem(&self.ca_key_pem)?);
        issue_client_cert(&issuer, cn, org)
    }

    /// Issue a raft peer certificate (PEM cert, PEM key): CN [`PEER_CN`], SAN [`PEER_SAN`],
    /// usable as both TLS server and client, signed by the cluster CA. Peers check the name,
    /// so other certificates of the CA (nodes, admin) cannot talk raft.
    ///
    /// # Errors
    /// If the stored CA key is unreadable.
    pub fn issue_peer(&self) -> Result<(String, String), PkiError> {
        let issuer = Issuer::new(ca_params(), KeyPair::from_pem(&self.ca_key_pem)?);
        let mut params = leaf_params(PEER_CN, None);
        params.subject_alt_names = vec![san_type(PEER_SAN)?];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

impl ServerPki {
    /// Issue the serving certificate of a node's agent endpoint (PEM cert, PEM key): CN
    /// `system:node:<name>`, the given names and IPs as SANs, signed by the cluster CA, so
    /// the API server can verify the node it proxies `kubectl logs/exec` to.
    ///
    /// # Errors
    /// If the stored CA key is unreadable or a SAN is invalid.
    pub fn issue_kubelet_serving(
        &self,
        node_name: &str,
        sans: &[String],
    ) -> Result<(String, String), PkiError> {
        let issuer = Issuer::new(ca_params(), KeyPair::from_pem(&self.ca_key_pem)?);
        let mut params = leaf_params(&format!("system:node:{node_name}"), Some("system:nodes"));
        let mut names: Vec<String> = vec![node_name.to_string(), "localhost".into()];
        names.extend(sans.iter().cloned());
        names.push("127.0.0.1".into());
        let mut seen = std::collections::BTreeSet::new();
        names.retain(|s| !s.is_empty() && seen.insert(s.clone()));
        params.subject_alt_names = names
            .iter()
            .map(|s| san_type(s))
            .collect::<Result<_, _>>()?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// Common name of the client certificate the API server presents to agent endpoints.
pub const KUBELET_CLIENT_CN: &str = "kube-apiserver-kubelet-client";

/// Common name of raft peer certificates.
pub const PEER_CN: &str = "k3rs-raft-peer";
/// DNS name every raft peer certificate carries (and every peer dials with as TLS name).
pub const PEER_SAN: &str = "k3rs-raft-peer.k3rs.internal";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pki_is_created_once_and_reused_on_restart() {
        let dir = tempfile::tempdir().unwrap();
        let sans = serving_sans("host1", None, &["example.com".into()]);
        let a = ensure_server_pki(dir.path(), &sans).unwrap();
        let b = ensure_server_pki(dir.path(), &sans).unwrap();
        assert_eq!(a.ca_cert_pem, b.ca_cert_pem);
        assert_eq!(a.serving_cert_pem, b.serving_cert_pem);
        assert_eq!(a.admin_key_pem, b.admin_key_pem);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("server-ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn new_sans_reissue_the_serving_cert_with_the_same_ca() {
        let dir = tempfile::tempdir().unwrap();
        let a = ensure_server_pki(dir.path(), &serving_sans("h", None, &[])).unwrap();
        let b = ensure_server_pki(dir.path(), &serving_sans("h", None, &["x.io".into()])).unwrap();
        assert_eq!(a.ca_cert_pem, b.ca_cert_pem);
        assert_ne!(a.serving_cert_pem, b.serving_cert_pem);
    }

    /// Overwrite `file` with a leaf of the stored CA valid for `days` more days.
    fn replace_with_short_lived(dir: &Path, file: &str, days: i64) -> String {
        let ca_key = std::fs::read_to_string(dir.join("server-ca.key")).unwrap();
        let issuer = Issuer::new(ca_params(), KeyPair::from_pem(&ca_key).unwrap());
        let mut params = leaf_params("short", None);
        let end = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * days);
        params.not_after = rcgen::date_time_ymd(
            i32::from(end.to_zoned(jiff::tz::TimeZone::UTC).year()),
            end.to_zoned(jiff::tz::TimeZone::UTC).month() as u8,
            end.to_zoned(jiff::tz::TimeZone::UTC).day() as u8,
        );
        let key = KeyPair::generate().unwrap();
        let pem = params.signed_by(&key, &issuer).unwrap().pem();
        std::fs::write(dir.join(file), &pem).unwrap();
        pem
    }

    #[test]
    fn leaf_certs_close_to_expiry_are_renewed_by_the_same_ca() {
        let dir = tempfile::tempdir().unwrap();
        let sans = serving_sans("h", None, &[]);
        let first = ensure_server_pki(dir.path(), &sans).unwrap();
        let short_serving = replace_with_short_lived(dir.path(), "serving-kube-apiserver.crt", 10);
        let short_admin = replace_with_short_lived(dir.path(), "client-admin.crt", 30);
        let (pki, renewed) =
            ensure_server_pki_renewing(dir.path(), &sans, DEFAULT_RENEW_BEFORE).unwrap();
        assert_eq!(renewed, ["serving-kube-apiserver.crt", "client-admin.crt"]);
        assert_ne!(pki.serving_cert_pem, short_serving);
        assert_ne!(pki.admin_cert_pem, short_admin);
        assert_eq!(pki.ca_cert_pem, first.ca_cert_pem, "the CA is untouched");
        assert_eq!(pki.ca_key_pem, first.ca_key_pem);
        let left = not_after(&pki.serving_cert_pem).unwrap() - jiff::Timestamp::now().as_second();
        assert!(left > 365 * 86_400, "renewed for a long time: {left}s");
        // The files hold the new certificates: the next start renews nothing.
        let (_, again) =
            ensure_server_pki_renewing(dir.path(), &sans, DEFAULT_RENEW_BEFORE).unwrap();
        assert!(again.is_empty(), "{again:?}");
    }

    #[test]
    fn the_renewal_window_is_configurable() {
        let dir = tempfile::tempdir().unwrap();
        let sans = serving_sans("h", None, &[]);
        ensure_server_pki(dir.path(), &sans).unwrap();
        let short = replace_with_short_lived(dir.path(), "serving-kube-apiserver.crt", 30);
        let week = std::time::Duration::from_secs(7 * 86_400);
        let (pki, renewed) = ensure_server_pki_renewing(dir.path(), &sans, week).unwrap();
        assert!(renewed.is_empty(), "30 days left is outside a 7-day window");
        assert_eq!(pki.serving_cert_pem, short);
        let (pki, renewed) = ensure_server_pki_renewing(
            dir.path(),
            &sans,
            std::time::Duration::from_secs(60 * 86_400),
        )
        .unwrap();
        assert_eq!(renewed, ["serving-kube-apiserver.crt"]);
        assert_ne!(pki.serving_cert_pem, short);
    }

    #[test]
    fn sans_include_the_kubernetes_service_names() {
        let sans = serving_sans("h", Some("10.0.0.5".parse().unwrap()), &["a.b".into()]);
        for want in [
            "kubernetes.default.svc.cluster.local",
            "10.43.0.1",
            "10.0.0.5",
            "a.b",
        ] {
            assert!(sans.iter().any(|s| s == want), "{want} missing");
        }
    }
}
