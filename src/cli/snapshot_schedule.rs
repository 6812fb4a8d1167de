//! The server's scheduled datastore snapshots (`--etcd-snapshot-schedule-cron`, default every
//! 12 hours; `--etcd-snapshot-retention`, default 5; off with `--etcd-disable-snapshots`).
//!
//! Owns: the schedule loop. May call: `crate::cron` (when), the store (what), and
//! [`crate::store::backup`] (where, and pruning). Each run writes
//! `<dir>/<name>-<node>-<unix-seconds>` in the same sealed format `etcdctl snapshot save` and
//! `k3rs etcd-snapshot save` produce, then keeps the newest `retention` files of that prefix.

use crate::cron::Schedule;
use crate::store::Store;
use crate::store::backup::{self, SnapshotFile};
use anyhow::Context;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

/// What and where to snapshot.
#[derive(Clone, Debug)]
pub struct SnapshotSchedule {
    pub schedule_expr: String,
    pub dir: PathBuf,
    /// Name prefix (`etcd-snapshot`).
    pub name: String,
    pub node: String,
    pub retention: usize,
}

/// Parses the schedule (so a bad expression stops the server at start, not 12 hours later).
///
/// # Errors
/// An invalid cron expression.
pub fn parse(expr: &str) -> anyhow::Result<Schedule> {
    Schedule::parse(expr).with_context(|| format!("invalid --etcd-snapshot-schedule-cron {expr:?}"))
}

/// Takes one scheduled snapshot now and applies the retention; returns the file written and
/// the files pruned.
///
/// # Errors
/// Store or I/O failures.
pub async fn take(
    store: &Store,
    cfg: &SnapshotSchedule,
    unix_secs: i64,
) -> anyhow::Result<(SnapshotFile, Vec<SnapshotFile>)> {
    let sealed = crate::store::etcd::seal_snapshot(&store.snapshot().await?);
    let file = backup::write_snapshot(&cfg.dir, &cfg.name, &cfg.node, unix_secs, &sealed)?;
    let pruned = backup::prune(
        &cfg.dir,
        &format!("{}-{}", cfg.name, cfg.node),
        cfg.retention.max(1),
    )?;
    Ok((file, pruned))
}

/// Runs the schedule until `shutdown`: sleeps to the next activation (local time), takes a
/// snapshot, prunes. Failures are logged and the next activation is awaited.
pub async fn run(
    store: Store,
    schedule: Schedule,
    cfg: SnapshotSchedule,
    shutdown: CancellationToken,
) {
    loop {
        let now = jiff::Zoned::now();
        let Some(next) = schedule.next_after(&now) else {
            tracing::warn!(schedule = %cfg.schedule_expr, "snapshot schedule never fires again");
            return;
        };
        let wait = next
            .timestamp()
            .duration_since(now.timestamp())
            .try_into()
            .unwrap_or(std::time::Duration::ZERO);
        tracing::debug!(next = %next, "next scheduled snapshot");
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        match take(&store, &cfg, jiff::Timestamp::now().as_second()).await {
            Ok((file, pruned)) => tracing::info!(
                path = %file.path.display(),
                size = file.size,
                pruned = pruned.len(),
                "scheduled snapshot saved"
            ),
            Err(e) => tracing::warn!(error = format!("{e:#}"), "scheduled snapshot failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::FakeReplicator;
    use crate::store::{PutRequest, StoreOptions, open_state};

    #[tokio::test]
    async fn scheduled_snapshots_are_restorable_files_and_keep_only_the_retention() {
        let db = tempfile::tempdir().unwrap();
        let (sm, core) = open_state(db.path(), &StoreOptions::default()).unwrap();
        let store = core.into_store(FakeReplicator::new(sm, 1));
        store
            .put(PutRequest {
                key: b"/registry/a".to_vec(),
                value: b"1".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cfg = SnapshotSchedule {
            schedule_expr: "0 */12 * * *".into(),
            dir: dir.path().to_path_buf(),
            name: "etcd-snapshot".into(),
            node: "n1".into(),
            retention: 3,
        };
        std::fs::write(dir.path().join("on-demand-n1-1"), b"kept").unwrap();
        for ts in 100..107 {
            let (file, _) = take(&store, &cfg, ts).await.unwrap();
            assert_eq!(file.name, format!("etcd-snapshot-n1-{ts}"));
            backup::verify_file(&file.path).unwrap();
        }
        let mut names: Vec<String> = backup::list(dir.path())
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "etcd-snapshot-n1-104",
                "etcd-snapshot-n1-105",
                "etcd-snapshot-n1-106",
                "on-demand-n1-1"
            ]
        );
    }

    #[test]
    fn the_default_schedule_fires_twice_a_day_and_garbage_is_refused() {
        let s = parse("0 */12 * * *").unwrap();
        let t: jiff::Zoned = "2026-11-25T13:05:00+00:00[UTC]".parse().unwrap();
        let next = s.next_after(&t).unwrap();
        assert_eq!(next.hour(), 0);
        assert_eq!(s.next_after(&next).unwrap().hour(), 12);
        assert!(parse("every day").is_err());
    }
}
