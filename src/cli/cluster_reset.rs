//! `k3rs server --cluster-reset [--cluster-reset-restore-path FILE]`: make this server the
//! only member of a new datastore group, keeping its data or restoring a snapshot, then exit
//! (k3s behaviour: the operator restarts the server without the flag).
//!
//! Owns: the messages of the reset. May call: [`crate::store::backup::cluster_reset`], which
//! verifies a snapshot completely before it touches anything and moves the old datastore
//! aside instead of deleting it.

use super::args::ServerArgs;
use crate::store::raft::membership::MemberMeta;
use anyhow::Context;

/// Runs the reset for the server described by `args`, named `node`, reachable by peers at
/// `peer_url` and by etcd clients at `client_url`.
pub fn run(
    args: &ServerArgs,
    node: &str,
    peer_url: String,
    client_url: String,
) -> anyhow::Result<()> {
    let db = args.data_dir.join("server").join("db");
    let me = MemberMeta {
        id: 0,
        name: node.to_string(),
        peer_urls: vec![peer_url],
        client_urls: vec![client_url],
    };
    let restore = args.cluster_reset_restore_path.as_deref();
    if let Some(p) = restore {
        tracing::info!(path = %p.display(), "restoring the datastore from a snapshot");
    }
    let out =
        crate::store::backup::cluster_reset(&db, me, restore).with_context(|| match restore {
            Some(p) => format!(
                "cannot restore {}; the existing data in {} was left untouched",
                p.display(),
                db.display()
            ),
            None => format!("cannot reset the datastore in {}", db.display()),
        })?;
    if let Some(old) = &out.old_dir {
        eprintln!("The previous datastore was moved to {}", old.display());
    }
    eprintln!(
        "Managed datastore membership has been reset (member {:x}, revision {}), restart without --cluster-reset flag now. \
         Backup and delete {} on each peer server and rejoin the nodes.",
        out.member_id,
        out.summary.revision,
        db.display()
    );
    Ok(())
}
