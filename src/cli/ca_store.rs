//! The cluster CA in the replicated store (see [`crate::pki::bundle`]): published on every
//! start when missing, and recovered from this member's local state at start when the
//! local CA files are gone (a lost `tls` directory, a restored data dir) and the token is
//! known.

use super::args::ServerArgs;
use super::join;
use crate::pki::bundle::{self, Bundle};
use anyhow::Context;
use std::path::Path;

/// The token secret this server will use: the token file's, else `--token`'s.
fn known_secret(args: &ServerArgs) -> anyhow::Result<Option<String>> {
    let path = args.data_dir.join("server").join("token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = crate::pki::token::parse(&t)
            .with_context(|| format!("invalid token file {}", path.display()))?;
        return Ok(Some(t.secret().to_string()));
    }
    match args.token.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => Ok(Some(
            crate::pki::token::parse(t)
                .context("invalid --token")?
                .secret()
                .to_string(),
        )),
        None => Ok(None),
    }
}

/// Before the PKI is loaded: when `server-ca.crt` or its key is missing, this is not a
/// first start (the store has state) and the store holds the bundle of our token, write the
/// CA and signing keys back. Returns whether it did.
///
/// # Errors
/// When the stored bundle exists but cannot be opened with the token (a new CA would split
/// the cluster), or the files cannot be written.
pub fn recover_from_store(args: &ServerArgs, tls_dir: &Path) -> anyhow::Result<bool> {
    if tls_dir.join("server-ca.crt").exists() && tls_dir.join("server-ca.key").exists() {
        return Ok(false);
    }
    let db = args.data_dir.join("server").join("db");
    if !db.exists() {
        return Ok(false);
    }
    let Some(secret) = known_secret(args)? else {
        tracing::warn!(
            "the cluster CA files are missing and no token is known: a new CA will be created"
        );
        return Ok(false);
    };
    let key = bundle::store_key(&secret);
    let Some(value) = crate::store::peek::read_local(&db, key.as_bytes())
        .context("cannot read the local datastore for the cluster CA")?
    else {
        tracing::warn!(key = %key, "the cluster CA files are missing and the datastore has no copy: a new CA will be created");
        return Ok(false);
    };
    let b = bundle::open(&secret, &value)
        .with_context(|| format!("cannot recover the cluster CA from the datastore ({key})"))?;
    join::write_private(&tls_dir.join("server-ca.key"), &b.ca_key)?;
    join::write_private(&tls_dir.join("service.key"), &b.service_account_key)?;
    join::write_private(&tls_dir.join("server-ca.crt"), &b.ca_cert)?;
    tracing::info!(dir = %tls_dir.display(), "recovered the cluster CA from the datastore");
    Ok(true)
}

/// After the store is open: put the sealed bundle under its key unless a value is there
/// already (a create-only transaction, so servers never overwrite each other). Retries
/// while the store has no leader yet; gives up after a minute with a warning.
pub async fn publish(store: crate::store::Store, secret: String, pki: crate::pki::ServerPki) {
    use crate::store::{Compare, CompareResult, CompareTarget, PutRequest, RequestOp, TxnRequest};
    let b = Bundle {
        ca_cert: pki.ca_cert_pem.clone(),
        ca_key: pki.ca_key_pem.clone(),
        service_account_key: pki.service_account_key_pem.clone(),
    };
    let value = match bundle::seal(&secret, &b) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "cannot seal the bootstrap bundle");
            return;
        }
    };
    let key = bundle::store_key(&secret).into_bytes();
    let txn = TxnRequest {
        compare: vec![Compare {
            key: key.clone(),
            range_end: vec![],
            target: CompareTarget::Version(0),
            result: CompareResult::Equal,
        }],
        success: vec![RequestOp::Put(PutRequest {
            key: key.clone(),
            value,
            ..Default::default()
        })],
        failure: vec![],
    };
    let mut delay = std::time::Duration::from_millis(200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match store.txn(txn.clone()).await {
            Ok(r) if r.succeeded => {
                // The recovery reads this member's state before raft replays its log, so the
                // bundle must be in the state's files, not only in the log.
                if let Err(e) = store.sync_local().await {
                    tracing::warn!(error = %e, "cannot sync the stored cluster CA to disk");
                }
                tracing::info!("stored the sealed cluster CA in the datastore");
                return;
            }
            Ok(_) => {
                check_existing(&store, &key, &secret, &b).await;
                return;
            }
            Err(e) if std::time::Instant::now() < deadline => {
                tracing::debug!(error = %e, "cannot store the cluster CA yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot store the cluster CA in the datastore");
                return;
            }
        }
    }
}

/// The key existed: say so when it does not hold our CA (another CA under the same token).
async fn check_existing(store: &crate::store::Store, key: &[u8], secret: &str, ours: &Bundle) {
    let got = store
        .range(crate::store::RangeRequest {
            key: key.to_vec(),
            ..Default::default()
        })
        .await;
    let value = match got {
        Ok(r) => r.kvs.into_iter().next().map(|kv| kv.value),
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the stored cluster CA");
            return;
        }
    };
    match value.map(|v| bundle::open(secret, &v)) {
        Some(Ok(b)) if b.ca_cert == ours.ca_cert => {}
        Some(Ok(_)) => {
            tracing::warn!(
                "the datastore holds a different cluster CA for this token than the local one"
            )
        }
        Some(Err(e)) => tracing::warn!(error = %e, "the stored cluster CA is unreadable"),
        None => {}
    }
}
