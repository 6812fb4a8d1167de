//! A second server joining with `--server URL --token T`: verify the CA against the token,
//! fetch the sealed bootstrap payload and install the shared CA and signing keys.

use super::args::ServerArgs;
use super::join;
use anyhow::Context;
use std::path::Path;

/// On a joining server's first start, write the cluster CA, its key and the service-account
/// key into `tls_dir`; returns the raft peer URL of the server joined (`None` when not joining
/// or when the PKI is already there).
pub async fn adopt_cluster_pki(
    args: &ServerArgs,
    tls_dir: &Path,
) -> anyhow::Result<Option<String>> {
    let Some(url) = args.server.as_deref() else {
        return Ok(None);
    };
    if tls_dir.join("server-ca.crt").exists() {
        return Ok(None);
    }
    let token = args
        .token
        .as_deref()
        .context("--server needs --token (the token file of the first server)")?;
    let tok = crate::pki::token::parse(token).context("invalid --token")?;
    let url = url.trim_end_matches('/');
    let ca = join::fetch_verified_ca(url, &tok).await?;
    let b = join::request_server_bootstrap(url, &ca, &tok).await?;
    join::write_private(&tls_dir.join("server-ca.key"), &b.ca_key)?;
    join::write_private(&tls_dir.join("service.key"), &b.service_account_key)?;
    // The certificate last: its presence marks the PKI as adopted.
    join::write_private(&tls_dir.join("server-ca.crt"), &b.ca_cert)?;
    tracing::info!(server = %url, raft_peer = %b.raft_peer_url, "adopted the cluster CA");
    Ok(Some(b.raft_peer_url))
}
