//! Admin kubeconfig rendering and writing.

use super::{PkiError, ServerPki, io_err};
use base64::Engine;
use std::path::Path;

/// A kubeconfig for `server_url` authenticating with the given client pair.
pub fn kubeconfig_yaml(server_url: &str, ca_pem: &str, cert_pem: &str, key_pem: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {}\n  name: default\ncontexts:\n- context:\n    cluster: default\n    user: default\n  name: default\ncurrent-context: default\npreferences: {{}}\nusers:\n- name: default\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        b64(ca_pem),
        server_url,
        b64(cert_pem),
        b64(key_pem)
    )
}

/// Write the admin kubeconfig to `path` with the octal `mode` (like `0600`).
///
/// # Errors
/// On a bad mode string or a filesystem error.
pub fn write_kubeconfig(
    path: &Path,
    mode: &str,
    server_url: &str,
    pki: &ServerPki,
) -> Result<(), PkiError> {
    use std::os::unix::fs::PermissionsExt;
    let mode_bits = u32::from_str_radix(mode.trim_start_matches("0o"), 8)
        .map_err(|_| PkiError::BadMode(mode.to_string()))?;
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
    }
    let yaml = kubeconfig_yaml(
        server_url,
        &pki.ca_cert_pem,
        &pki.admin_cert_pem,
        &pki.admin_key_pem,
    );
    std::fs::write(path, yaml).map_err(io_err(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode_bits)).map_err(io_err(path))
}
